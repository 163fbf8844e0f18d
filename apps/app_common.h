/* Options and helpers shared by the commands that run a model (run, chat, eval,
 * bench, summarize). Flag names follow llama.cpp where one exists. */
#ifndef PHIVK_APPS_COMMON_H
#define PHIVK_APPS_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "phivk.h"

/* The most tokens -n asks for (and a restored chat's setting is clamped to). */
#define APP_MAX_N_PREDICT (1 << 30)

typedef struct app_opts {
    const char *model;          /* -m or the first positional argument */
    const char *tokenizer;      /* --tokenizer: a llama2.c .bin model's tokenizer.bin */
    const char *prompt;         /* -p */
    const char *prompt_file;    /* -f */
    int32_t n_predict;          /* -n; -1: until a stop token or the context is full */
    phivk_runtime_params rt;    /* --device */
    phivk_session_params sess;  /* -c, --kv-type, --rope-factors, --no-swa, -b */
    phivk_sampler_params samp;  /* --temp, --top-k, --top-p, --min-p, --repeat-penalty, -s */
    bool seed_given;
    bool temp_given;
} app_opts;

void app_opts_init(app_opts *o);

/* A command's own option: with a value (stored in *value) or a flag (*flag = true). */
typedef struct app_option {
    const char *name;
    const char **value;
    bool *flag;
} app_option;

/* The argument loop of every model command: -h/--help prints usage and returns 0;
 * the command's own options (own: a table ending with a NULL name, or NULL), then
 * the shared ones; plain words are the model and then, when second is not NULL,
 * one more (*second). Returns -1 to go on, or the exit status to leave with (2 and
 * a message on bad usage). */
int app_parse_args(app_opts *o, int argc, char **argv, const char *cmd, void (*usage)(void),
                   const app_option *own, const char **second);
/* Consumes argv[*i] (and its value) if it is a shared option. Returns 1 when it
 * took the option, 0 when it is not one of ours, -1 on a bad value (message
 * printed). */
int app_opts_parse(app_opts *o, int argc, char **argv, int *i);
/* The same for the options of the given groups only (bench takes the session's). */
enum { APP_OPT_MODEL = 1u, APP_OPT_SESSION = 2u };
int app_opts_parse_group(app_opts *o, int argc, char **argv, int *i, unsigned groups);
/* A decimal integer in [lo, hi] (the whole string); false otherwise. */
bool app_parse_long(const char *s, long lo, long hi, long *out);
/* The help lines for the shared options. */
void app_opts_usage(void);

/* On a CPU implementation of Vulkan (lavapipe) a note on stderr, once per process,
 * that the speed is the CPU's and a GPU driver would be used if installed. Called
 * once the model is loaded, so that a failure stays a one-line reason. */
void app_note_cpu_device(const phivk_runtime *rt);

/* Loads runtime + model + session from o, printing progress on stderr when it
 * takes long. On failure prints "phivk: <reason>" and returns false; whatever
 * was made is freed. */
typedef struct app_model {
    phivk_runtime *rt;
    phivk_model *model;
    phivk_session *sess;
    void *image;                /* the GGUF a llama2.c model was converted to in memory */
} app_model;
bool app_model_open(const app_opts *o, app_model *am);
void app_model_close(app_model *am);

/* Writes generated text to out and flushes it: as it is into a file or a pipe; on
 * a terminal with control characters other than newline and tab made visible
 * (phivk_text_visible), since a model can emit escape sequences. */
void app_write_generated(FILE *out, const char *text, size_t n);
/* Reads a whole file (text) into a NUL-terminated buffer; NULL with a message. */
char *app_read_file(const char *path, size_t *len);
/* A progress callback that draws "stage: done/total" bars on stderr when the
 * work takes more than a second. */
void app_progress(void *user, const char *stage, uint64_t done, uint64_t total);
double app_now(void);

#endif
