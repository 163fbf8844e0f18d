/* phivk: Phi and Llama language models on any Vulkan GPU.
 *
 * The only header apps and embedders include. Handles are opaque. Functions that
 * create return NULL on failure (phivk_last_error() says why); functions that act
 * return a phivk_status. Every object has one owner, written on its create call;
 * every *_free accepts NULL. A handle is used from one thread at a time unless a
 * function says otherwise. */
#ifndef PHIVK_H
#define PHIVK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum phivk_status {
    PHIVK_OK = 0,
    PHIVK_ERR_INVALID = 1,
    PHIVK_ERR_IO = 2,
    PHIVK_ERR_BAD_FILE = 3,
    PHIVK_ERR_UNSUPPORTED = 4,
    PHIVK_ERR_HOST_MEMORY = 5,
    PHIVK_ERR_DEVICE_MEMORY = 6,
    PHIVK_ERR_DEVICE_LOST = 7,
    PHIVK_ERR_NO_DEVICE = 8,
    PHIVK_ERR_CONTEXT_FULL = 9,
    PHIVK_ERR_CANCELLED = 10,
    PHIVK_ERR_VULKAN = 11,
} phivk_status;

/* The message of the last failure on the calling thread: what went wrong and,
 * where there is one, what to do. Valid until the next failing call. */
const char *phivk_last_error(void);

/* n bytes as "512 bytes", "1.50 KiB", "2.09 GiB" into buf (binary units, two
 * decimals): the one way phivk writes a size. Returns buf. */
const char *phivk_format_bytes(char buf[32], uint64_t n);

/* ----------------------------------------------------------------- devices */

/* A human table (json=false) or a JSON array of every Vulkan device with its
 * capabilities and limits. Caller frees with free(). NULL on failure. */
char *phivk_devices_report(bool json);

typedef struct phivk_device_desc {
    int index;
    char name[256];
    const char *kind;        /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint64_t memory_bytes;   /* largest device-local heap */
} phivk_device_desc;
/* *out is malloc'd (caller frees with free()). */
phivk_status phivk_devices(phivk_device_desc **out, int *n);

/* ------------------------------------------------------------- model files */

typedef struct phivk_info_params {
    bool json;               /* JSON instead of the human report */
    int ctx;                 /* context for the memory estimate; 0 = the model's */
} phivk_info_params;
phivk_info_params phivk_info_default_params(void);
/* Architecture, hyperparameters, tokenizer summary, tensor table, totals per type
 * and the memory a session would need at params->ctx, written to out. Works on
 * any valid GGUF, vocabulary-only files included. */
phivk_status phivk_info_write(const char *path, const phivk_info_params *params, FILE *out);

/* What a model file is, for a list to choose from, as phivk_info_write reports
 * it: read from the GGUF header (the file is mapped; no weight is read). */
typedef struct phivk_model_brief {
    char arch[32];           /* general.architecture; "" when absent */
    char name[128];          /* general.name; "" when absent */
    char quant[16];          /* the tensor type holding the most bytes ("q4_0", "f16") */
    uint64_t file_bytes;
    int64_t ctx;             /* {arch}.context_length; 0 when absent */
    uint64_t params;
} phivk_model_brief;
phivk_status phivk_model_brief_read(const char *path, phivk_model_brief *out);

/* -------------------------------------------------------------- tokenizer */

typedef struct phivk_vocab phivk_vocab;

/* Loads the tokenizer of a GGUF file (model or vocabulary-only), or of a tiktoken
 * rank file (path ending in ".tiktoken": cl100k with Phi-3-small's special tokens). Caller owns it:
 * phivk_vocab_free. NULL on failure. */
phivk_vocab *phivk_vocab_load(const char *path);
void phivk_vocab_free(phivk_vocab *v);

int32_t phivk_vocab_size(const phivk_vocab *v);
int32_t phivk_token_bos(const phivk_vocab *v);       /* -1 if none */
int32_t phivk_token_eos(const phivk_vocab *v);       /* -1 if none */
bool phivk_vocab_adds_bos(const phivk_vocab *v);     /* what the file asks for */
/* True for the file's EOS and the template's end tokens (phi-spec "choices" 5). */
bool phivk_token_is_stop(const phivk_vocab *v, int32_t id);
/* The stored piece text (NUL-terminated, owned by v), NULL for an invalid id. */
const char *phivk_token_piece(const phivk_vocab *v, int32_t id);

typedef enum phivk_bos { PHIVK_BOS_AUTO = 0, PHIVK_BOS_NO = 1, PHIVK_BOS_YES = 2 } phivk_bos;
typedef struct phivk_tokenize_params {
    phivk_bos bos;           /* AUTO: as the file says (EOS too, when it asks for one) */
    bool parse_special;      /* recognise control tokens (<|user|> ...) in the text */
} phivk_tokenize_params;
phivk_tokenize_params phivk_tokenize_default_params(void);

/* Tokenizes len bytes of UTF-8 text. Returns the number of tokens; when that is
 * more than cap, only cap are written (call again with a larger buffer). Returns
 * -1 on failure (invalid UTF-8, with the byte offset in the message). */
int64_t phivk_tokenize(const phivk_vocab *v, const char *text, size_t len,
                       const phivk_tokenize_params *params, int32_t *out, int64_t cap);

/* Streaming detokenizer: holds back a piece that ends inside a UTF-8 sequence
 * until it is complete; bytes that are not UTF-8 come out as U+FFFD. special:
 * also print control tokens' text. When the vocabulary adds a space prefix
 * (SentencePiece), the piece after a BOS loses one leading space; a stream's first
 * piece keeps it (it usually continues a prompt). Out-of-range ids print nothing. */
typedef struct phivk_detok phivk_detok;
phivk_detok *phivk_detok_create(const phivk_vocab *v, bool special);
void phivk_detok_free(phivk_detok *d);
/* Appends the text that token id completes to out (NUL-terminated, at most cap-1
 * bytes; cap >= 64 suffices for one token of the Phi-3 and Llama vocabularies,
 * GPT-2 has pieces of up to 128 bytes). Returns the bytes written. Text that does
 * not fit stays queued for the next push or flush. */
size_t phivk_detok_push(phivk_detok *d, int32_t id, char *out, size_t cap);
/* Flushes what is held back (an incomplete sequence comes out as U+FFFD); with a
 * small cap, call it until it returns 0. */
size_t phivk_detok_flush(phivk_detok *d, char *out, size_t cap);

/* Whole-sequence convenience: caller frees the result with free(). The start of
 * the sequence counts as a BOS, so detokenize(tokenize(s)) == s. NULL (with a
 * message) when an id is out of range. */
char *phivk_detokenize(const phivk_vocab *v, const int32_t *ids, int64_t n, bool special);

/* Text for a terminal. Model files and models are untrusted: a name or a piece of
 * generated text may hold escape sequences that retitle the window or clear the
 * screen. This copies n bytes of text to out with what a terminal acts on written
 * as visible \xNN escapes, one per byte: C0 controls, DEL, C1 controls (U+0080 to
 * U+009F, two bytes each) and bytes that are not UTF-8. keep_lines leaves newline
 * and tab as they are (generated text); without it they are escaped as well (a
 * name on one line of a report). Other UTF-8 passes unchanged. out gets at most
 * cap - 1 bytes and a NUL (cap >= 1); text that does not fit is cut between
 * characters and ends in "...". 4 * n + 1 bytes always suffice. Returns the bytes
 * written. */
size_t phivk_text_visible(const char *text, size_t n, bool keep_lines, char *out, size_t cap);

/* ------------------------------------------------------------ chat prompts */

typedef enum phivk_chat_format {
    PHIVK_CHAT_AUTO = 0,     /* from tokenizer.chat_template or the architecture */
    PHIVK_CHAT_PHI3,         /* <|system|>\n..<|end|>\n<|user|>\n..<|end|>\n<|assistant|>\n */
    PHIVK_CHAT_PHI2,         /* Instruct: ...\nOutput: */
    PHIVK_CHAT_PLAIN,        /* the messages' text, one after another */
    PHIVK_CHAT_PHI3SMALL,    /* <|endoftext|> then PHI3's turns; without the assistant cue
                                it ends in <|endoftext|> (Phi-3-small's template) */
} phivk_chat_format;

typedef struct phivk_chat_msg {
    const char *role;        /* "system", "user" or "assistant" */
    const char *content;
} phivk_chat_msg;

phivk_chat_format phivk_vocab_chat_format(const phivk_vocab *v);
/* The prompt text for msgs, ending with the assistant's opening when add_assistant.
 * Caller frees with free(). NULL on failure. */
char *phivk_chat_prompt(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n,
                        bool add_assistant);
/* The tokens of that prompt (fmt AUTO: the vocabulary's), counted and written as
 * by phivk_tokenize. Only the format's markup becomes control tokens: message
 * contents are plain text, so a message that spells "<|end|><|system|>" cannot
 * end its turn or open another. -1 on failure. */
int64_t phivk_chat_tokenize(const phivk_vocab *v, phivk_chat_format fmt, const phivk_chat_msg *msgs,
                            int n, bool add_assistant, phivk_bos bos, int32_t *out, int64_t cap);

/* ------------------------------------------------------- runtime and models */

typedef struct phivk_runtime phivk_runtime;
typedef struct phivk_model phivk_model;
typedef struct phivk_session phivk_session;

/* Long work reports progress: stage is a short label ("loading", "prefill"). */
typedef void (*phivk_progress_fn)(void *user, const char *stage, uint64_t done, uint64_t total);

typedef struct phivk_runtime_params {
    const char *device;      /* NULL: PHIVK_DEVICE or the best; "N" or a name substring */
    bool validate;           /* Khronos validation layer (also PHIVK_VALIDATE=1) */
} phivk_runtime_params;
phivk_runtime_params phivk_runtime_default_params(void);
/* Opens a Vulkan device. Caller owns it; it must outlive its models. */
phivk_runtime *phivk_runtime_create(const phivk_runtime_params *p);
void phivk_runtime_free(phivk_runtime *rt);
const char *phivk_runtime_device_name(const phivk_runtime *rt);
/* The device's kind, as phivk_device_desc.kind: "cpu" for a CPU implementation of
 * Vulkan (lavapipe, SwiftShader). */
const char *phivk_runtime_device_kind(const phivk_runtime *rt);

typedef struct phivk_model_params {
    phivk_progress_fn progress;
    void *progress_user;
    /* The session the model is loaded for (NULL: none): its memory plan is made
     * from the file's header before any weight is uploaded, and the load fails
     * as phivk_session_create would when it does not fit. */
    const struct phivk_session_params *session;
} phivk_model_params;
phivk_model_params phivk_model_default_params(void);
/* Loads a GGUF model onto rt's device. Caller owns it; it must outlive its sessions. */
phivk_model *phivk_model_load(phivk_runtime *rt, const char *path, const phivk_model_params *p);
/* The same from a GGUF image in memory (data must outlive the model); name stands
 * for the file in messages and for a missing general.name. */
phivk_model *phivk_model_load_memory(phivk_runtime *rt, const void *data, size_t size,
                                     const char *name, const phivk_model_params *p);
void phivk_model_free(phivk_model *m);
const phivk_vocab *phivk_model_vocab(const phivk_model *m);   /* owned by m */
const char *phivk_model_arch(const phivk_model *m);           /* "phi3", "llama", "phi2" */
const char *phivk_model_name(const phivk_model *m);           /* general.name or the file name */
int32_t phivk_model_n_vocab(const phivk_model *m);
int32_t phivk_model_ctx_train(const phivk_model *m);

typedef enum phivk_kv_type { PHIVK_KV_F16 = 0, PHIVK_KV_Q8_0 = 1, PHIVK_KV_Q4_0 = 2 } phivk_kv_type;
/* "f16", "q8_0", "q4_0" (the GGUF type names); NULL for a value out of range. */
const char *phivk_kv_type_name(phivk_kv_type t);
/* The cache type of that name; false when there is none. */
bool phivk_kv_type_parse(const char *name, phivk_kv_type *out);
typedef enum phivk_rope_factors {
    PHIVK_ROPE_AUTO = 0,     /* short while the sequence fits the original context, then long */
    PHIVK_ROPE_SHORT = 1,
    PHIVK_ROPE_LONG = 2,
} phivk_rope_factors;

typedef struct phivk_session_params {
    /* tokens; 0 (auto): the model's trained context, at most 131072, reduced to
     * what fits (phivk_session_plan_text says which) */
    int32_t ctx;
    phivk_kv_type k_type, v_type;
    phivk_rope_factors rope_factors;
    bool no_swa;             /* ignore the Phi-3 sliding window (as llama.cpp does) */
    int32_t batch;           /* prefill chunk; 0: default (512) */
    phivk_progress_fn progress;
    void *progress_user;
    /* Serving several sequences (phivk_decode_batch). A server holds N sessions, one
     * per slot, each with its own KV cache; the scratch activations and the command
     * buffer can be shared, since one thread runs them one step at a time. */
    int32_t slots;           /* this session plans room for itself and slots - 1 more
                                KV caches of its context that will share its scratch:
                                N x context is checked against the device (and -c
                                auto picks a context N caches fit) before anything is
                                allocated; 0 or 1: itself alone */
    /* NULL: the session has its own scratch. Else a session of the same model whose
     * scratch and command buffer this one uses (it must outlive this one, and is
     * never run at the same time from another thread): this one allocates only its
     * KV cache, of ctx tokens (0: the owner's context; at most the owner's), and
     * prefills in the owner's batch. batch and slots are then ignored. */
    struct phivk_session *share_scratch;
} phivk_session_params;
phivk_session_params phivk_session_default_params(void);
/* A KV cache on the device plus a position. Caller owns it. */
phivk_session *phivk_session_create(phivk_model *m, const phivk_session_params *p);
void phivk_session_free(phivk_session *s);
int32_t phivk_session_ctx(const phivk_session *s);
int32_t phivk_session_pos(const phivk_session *s);    /* tokens in the cache */
/* One line: weights, KV cache (its context and how it was chosen), scratch and
 * what is left of the device's memory. Caller frees with free(). */
char *phivk_session_plan_text(const phivk_session *s);
/* KV-cache bytes of one position (every layer's K and V in the session's types):
 * a decode token at depth d reads d times this. */
uint64_t phivk_session_kv_bytes_per_token(const phivk_session *s);

/* Runs n tokens at the current position and appends them to the cache. logits
 * (may be NULL) receives the logits of the last position (n_vocab floats), or of
 * every position (n x n_vocab) when all_logits. PHIVK_ERR_CONTEXT_FULL when they
 * do not fit; PHIVK_ERR_CANCELLED after phivk_cancel (the cache keeps what was
 * completed). */
phivk_status phivk_decode(phivk_session *s, const int32_t *tokens, int32_t n, float *logits,
                          bool all_logits);
/* One decode step for several sessions of one model at once: tokens[i] is appended
 * to sessions[i] (n distinct sessions that all use one scratch: the same owner's,
 * share_scratch, or n == 1), and logits (may be NULL) receives n x n_vocab floats,
 * row i for sessions[i]. The projections read each weight once for all n rows (a
 * small matrix-matrix product); attention reads each session's own cache at its own
 * position, with its own sliding window and LongRoPE table (a session whose table
 * must switch is re-prefilled first, as phivk_decode does). Each row's logits equal
 * that session decoding the token alone up to the kernels' rounding (the
 * projections at m = n rows may run another kernel than at m = 1). n is at most
 * the owner's batch. Errors: PHIVK_ERR_CONTEXT_FULL when one is full, INVALID for a
 * token out of range, a repeated session or sessions of different scratch,
 * CANCELLED when phivk_cancel was called on one (the requests of all n are
 * consumed; the message names the first): then none advanced. UNSUPPORTED when the model's rows
 * cannot be bound one by one on this device (storage offset alignment). */
phivk_status phivk_decode_batch(phivk_session *const *sessions, const int32_t *tokens, int32_t n,
                                float *logits);
/* Forgets every token from pos on (a checkpoint: keep earlier chat turns). */
phivk_status phivk_session_truncate(phivk_session *s, int32_t pos);
/* Safe from any thread: the running or next phivk_decode stops at a token boundary. */
void phivk_cancel(phivk_session *s);

/* What the last command buffer of phivk_decode cost (its last chunk of tokens; one
 * token when decoding): `phivk bench` reports these per decode token. */
typedef struct phivk_step_stats {
    int32_t tokens;          /* positions it ran; 0 before the first phivk_decode */
    uint32_t dispatches;     /* compute dispatches recorded */
    uint32_t barriers;       /* pipeline barriers recorded */
    double host_s;           /* host time recording and submitting it */
    double wait_s;           /* host time then waiting for the device */
} phivk_step_stats;
phivk_step_stats phivk_session_last_step(const phivk_session *s);

/* ---------------------------------------------------------------- sampling */

typedef struct phivk_sampler_params {
    float temp;              /* 0: greedy */
    int32_t top_k;           /* 0: off */
    float top_p;             /* 1: off */
    float min_p;             /* 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* tokens the penalty looks back over */
    uint64_t seed;
} phivk_sampler_params;
phivk_sampler_params phivk_sampler_default_params(void);
typedef struct phivk_sampler phivk_sampler;
phivk_sampler *phivk_sampler_create(const phivk_sampler_params *p);
void phivk_sampler_free(phivk_sampler *s);
/* Picks a token from n_vocab logits (the array may be modified) and remembers it
 * for the repetition penalty. NaN logits never win; when every one is NaN (the
 * forward pass broke down) it returns -1 and phivk_last_error() says so. */
int32_t phivk_sampler_sample(phivk_sampler *s, float *logits, int32_t n_vocab);
/* Adds prompt tokens to the penalty's history without sampling. */
void phivk_sampler_accept(phivk_sampler *s, int32_t id);
void phivk_sampler_reset(phivk_sampler *s);

/* -------------------------------------------------------------- benchmarks */

/* The device memory a session may plan with (the largest device-local heap's
 * budget; on a CPU device the available RAM when that is more). */
uint64_t phivk_runtime_memory_budget(const phivk_runtime *rt);
/* Copies a device buffer of bytes to another (vkCmdCopyBuffer, needs 2 x bytes),
 * timed without the submit's fixed cost; *gb_per_s counts bytes read per second / 1e9. */
phivk_status phivk_runtime_copy_bandwidth(phivk_runtime *rt, uint64_t bytes, double *gb_per_s);
/* Reads a device buffer of bytes with a compute kernel (16-byte loads over a grid
 * that fills the device, a checksum so every word is read and checked), timed
 * without the submit's fixed cost: the roofline of a memory-bound decode. */
phivk_status phivk_runtime_read_bandwidth(phivk_runtime *rt, uint64_t bytes, double *gb_per_s);

uint64_t phivk_model_weight_bytes(const phivk_model *m);  /* matrices on the device, as stored */
/* Weight bytes one decode token reads: every layer matrix and the output head. */
uint64_t phivk_model_token_bytes(const phivk_model *m);
int64_t phivk_model_param_count(const phivk_model *m);    /* elements of every tensor */
const char *phivk_model_weight_type(const phivk_model *m); /* the matrices' main type, "q4_K" */
/* The matrix kernels chosen for the model's weight types on this device (measured
 * at load unless PHIVK_TUNE=0), one line: "q4_K int8 x 32 rows (8 lanes, 1 in flight),
 * q6_K f32 x 64 rows (8 lanes, 1 in flight)" (+ "fp16 tiles" where prompts run the
 * tiled kernel in fp16, "repacked" where the type's matrices were repacked at load:
 * PHIVK_REPACK; "f16 f32 x 8 rows per lane" where each lane takes whole rows, and
 * "; several columns: 8 rows per lane" where batches and prompts do).
 * Caller frees with free(). */
char *phivk_model_kernels_text(const phivk_model *m);

/* Synthetic models with the real models' shapes and random weights, built in
 * memory for benchmarks. Layers share their bytes (the shapes, types and sizes
 * are the real ones), so even Phi-3-mini builds in seconds. */
const char *const *phivk_synth_shapes(void);  /* "tiny", "150m", "phi3-mini", ...; NULL-terminated */
const char *const *phivk_synth_types(void);   /* "q4_k_m", "q4_0", ..., "f32"; NULL-terminated */
typedef struct phivk_synth_info {
    const char *arch;
    int64_t params;
    uint64_t bytes;                /* tensor data */
    uint64_t kv_bytes_per_token;   /* f16 K and V of every layer */
    int32_t n_vocab;
} phivk_synth_info;
/* What phivk_synth_build would make, without making it (to check memory first).
 * PHIVK_ERR_INVALID naming the known shapes or types for an unknown one. */
phivk_status phivk_synth_describe(const char *shape, const char *type, phivk_synth_info *out);
/* The GGUF image; the caller frees *data with free(). */
phivk_status phivk_synth_build(const char *shape, const char *type, void **data, size_t *size);

/* ------------------------------------------------------------- conversion */

/* Hugging Face checkpoints and llama2.c files turned into GGUF: PhiForCausalLM ->
 * phi2, Phi3ForCausalLM -> phi3, LlamaForCausalLM and llama2.c .bin -> llama, with
 * the keys, tensor names and layouts llama.cpp's converters write. */
typedef struct phivk_convert_params {
    const char *type;        /* weight type, one of phivk_convert_types(); NULL: "f16" */
    const char *tokenizer;   /* folder or file; NULL: the source folder's. A llama2.c
                                .bin needs its tokenizer.bin here */
    phivk_progress_fn progress; /* stage: the GGUF tensor name; done/total: tensors */
    void *progress_user;
} phivk_convert_params;
phivk_convert_params phivk_convert_default_params(void);
/* "f32", "f16", "bf16", "q8_0", ..., "q4_k_m"; NULL-terminated. */
const char *const *phivk_convert_types(void);
/* Converts src (a Hugging Face folder or a llama2.c .bin) to the GGUF file out. The
 * file is written beside out under a temporary name and renamed when complete;
 * on failure nothing is left behind. */
phivk_status phivk_convert(const char *src, const char *out, const phivk_convert_params *p);
/* The same GGUF image in memory; the caller frees *data with free(). */
phivk_status phivk_convert_memory(const char *src, const phivk_convert_params *p, void **data, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
