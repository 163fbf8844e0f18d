/* The generation thread. It owns the runtime, model, session and sampler; the
 * UI hands it jobs (load a model, answer a conversation) and takes back events
 * (text, progress, results) from a mutex-protected queue, so the UI thread never
 * waits on the model. Only the public API (phivk.h) is used. */
#ifndef PHIVK_CHAT_WORKER_H
#define PHIVK_CHAT_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "phivk.h"

typedef enum chat_ev_kind {
    CHAT_EV_DEVICES,     /* devices, n_devices */
    CHAT_EV_PROGRESS,    /* stage, done, total */
    CHAT_EV_LOADED,      /* text = model name, device, path, ctx_total */
    CHAT_EV_LOAD_FAILED, /* text = reason, path */
    CHAT_EV_FIT,         /* msg_id's content was cut: text = what is kept, note */
    CHAT_EV_TEXT,        /* msg_id, text: more of the answer */
    CHAT_EV_DONE,        /* msg_id, n_tokens, tok_per_s, stopped, status (+ text = reason), ctx_used, ctx_kept */
    CHAT_EV_PREFILLED,   /* a conversation is in the cache: ctx_used tokens, ctx_kept of them were there */
    CHAT_EV_SUMMARY,     /* msg_id's document in parts: chunk done of total in pass n_tokens (0: the final pass) */
} chat_ev_kind;

typedef struct chat_ev {
    chat_ev_kind kind;
    int msg_id;
    char *text;          /* owned */
    char note[256];
    char stage[32];
    uint64_t done, total;
    char device[256], path[1024];
    int32_t ctx_used, ctx_total;
    int32_t ctx_kept;    /* the cached tokens the answer's prompt shared, kept instead of read again */
    int32_t n_tokens;
    double tok_per_s;
    bool stopped;
    phivk_status status;
    phivk_device_desc *devices; /* owned */
    int n_devices;
    struct chat_ev *next;
} chat_ev;
void chat_ev_free(chat_ev *list); /* the whole list */

typedef struct chat_worker chat_worker;

/* wake is called from the worker thread after it queues an event into an empty
 * queue (the UI pushes an SDL event there to end its wait). */
chat_worker *chat_worker_create(void (*wake)(void *), void *wake_user);
/* Stops the current answer, drops queued jobs, joins the thread, frees the model. */
void chat_worker_destroy(chat_worker *w);

/* Loads path on device (NULL: best) with ctx tokens of context (0: auto). The
 * current model stays in use until the new one is ready, and stays when it fails. */
bool chat_worker_load(chat_worker *w, const char *path, const char *device, int32_t ctx);

typedef struct chat_gen {
    const phivk_chat_msg *msgs; /* copied */
    int n_msgs;
    int msg_id;                 /* the answer's id, echoed in events */
    int fit_msg;                /* index of a message that may be cut to fit, -1: none */
    int fit_id;                 /* its id, echoed in CHAT_EV_FIT */
    /* The fit message asks for a summary of a document that starts at byte
     * doc_at; a document too long for the context is then summarized in parts
     * (summarize.h) instead of cut, and the message becomes a line naming it. */
    bool fit_doc;
    size_t doc_at;
    const char *doc_name;       /* copied */
    phivk_sampler_params samp;
    int32_t n_predict;          /* -1: until a stop token or the context is full */
} chat_gen;
bool chat_worker_generate(chat_worker *w, const chat_gen *g);

/* Reads a conversation (no answer started) into the cache, keeping what it
 * shares with the cache's tokens: CHAT_EV_PREFILLED when done. */
bool chat_worker_prefill(chat_worker *w, const phivk_chat_msg *msgs, int n_msgs);

/* Ends answer msg_id (running or queued) within one token. Safe any time. */
void chat_worker_stop(chat_worker *w, int msg_id);
/* Takes every queued event, oldest first; NULL when none. Never blocks on the model. */
chat_ev *chat_worker_poll(chat_worker *w);
/* Tokens sampled so far by the running answer (for tests of stopping). */
int32_t chat_worker_tokens(chat_worker *w);
/* The runtime in use, for tests that check the validation layer's count. */
phivk_runtime *chat_worker_runtime(chat_worker *w);

#endif
