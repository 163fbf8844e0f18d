/* The memory plan of a session: ONE table of every buffer a session allocates
 * (what it holds, how many, the bytes of each as a function of the context, the
 * K/V types and what the device decides), the context `-c auto` picks, and the
 * refusal when a context does not fit. session.c allocates from the table,
 * plan_make sums it, the plan message and `phivk info` print it.
 *
 * Pure arithmetic (no Vulkan calls): what the device decides (attention's split-K
 * partials from its tuning, the cache's chunking from its binding limit) comes in
 * as numbers, so the real models' shapes are tested without loading them. */
#ifndef PHIVK_PLAN_H
#define PHIVK_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "phivk.h"
#include "pvk_err.h"
#include "pvk_type.h"

/* `-c auto` never goes past this without the user asking (-c N): a file may
 * declare any trained context (2^24 in 430 KB), and a cache sized for it is
 * gigabytes for a toy model. */
#define PLAN_AUTO_CTX_MAX 131072
/* The prefill chunk when none is asked for. */
#define PLAN_DEFAULT_BATCH 512
/* Where the token-ids buffer of a batch of b holds the position a replayed decode
 * reads: past the ids, at the largest storage offset alignment Vulkan allows (256),
 * so any device can bind it as a buffer of its own; PLAN_POS_BYTES long. */
#define PLAN_POS_BYTES 16
static inline uint64_t plan_pos_offset(uint64_t b) { return (4 * b + 255) / 256 * 256; }

/* The rows of the table. The scratch rows are one buffer each, allocated by the
 * session in this order; the cache rows are n_layer buffers each (per chunk when
 * the device splits a layer's cache), allocated by pvk_kv_alloc. */
typedef enum plan_buf {
    PLAN_IDS,      /* token ids of one batch, then the position a replayed decode
                      reads (plan_pos_offset; host-visible) */
    PLAN_X,        /* residual stream, one batch */
    PLAN_H,        /* normed input */
    PLAN_QKV,      /* q | k | v */
    PLAN_ATT,      /* attention output */
    PLAN_FF,       /* MLP input ([gate | up] for SwiGLU) */
    PLAN_ACT,      /* MLP activation */
    PLAN_LAST,     /* the last position's row */
    PLAN_LAST_N,   /* ... normed */
    PLAN_LOGITS,   /* logits rows (host-visible) */
    PLAN_ATTN,     /* attention's split-K partials (the device's tuning sizes them) */
    PLAN_HQ,       /* int8 form of h / last_n, for integer-dot projections */
    PLAN_AQ,       /* int8 form of att or act */
    PLAN_N_SCRATCH,
    PLAN_K = PLAN_N_SCRATCH, /* K cache: a full chunk (the whole context when unchunked) */
    PLAN_V,
    PLAN_K_LAST,   /* a chunked cache's last, shorter chunk */
    PLAN_V_LAST,
    PLAN_N_BUFS
} plan_buf;

typedef struct plan_row {
    const char *name;
    bool host;                 /* host-visible memory, else device-local */
    uint64_t count;            /* buffers of this row; 0: the session makes none */
    uint64_t bytes;            /* each (as asked of pvk_buf_create, before its alignment) */
} plan_row;

/* What a session's buffers depend on. */
typedef struct plan_shape {
    const arch_hparams *hp;
    pvk_type k_type, v_type;   /* PVK_F16, PVK_Q8_0 or PVK_Q4_0 */
    int32_t ctx;
    int32_t batch;             /* prefill chunk (plan_batch) */
    uint32_t kv_chunk;         /* cache rows per buffer as pvk_kv_alloc splits; 0: one per layer */
    uint64_t attn_bytes;       /* attention's partials (pvk_op_attention_scratch_bytes_kv) */
    bool int8;                 /* some projection reads int8 activations (pvk_ops_reads_q8) */
    bool shared;               /* the session uses another's scratch: no scratch rows */
    int32_t slots;             /* KV caches of this shape the plan holds room for (0: 1):
                                  this session's and those that will share its scratch */
} plan_shape;

/* Fills rows[PLAN_N_BUFS]. */
void plan_layout(const plan_shape *s, plan_row rows[PLAN_N_BUFS]);
/* Bytes of rows [first, end): count x bytes each. */
uint64_t plan_rows_bytes(const plan_row *rows, plan_buf first, plan_buf end);
/* The prefill chunk for a context: the asked one (0: the default), at most ctx. */
int32_t plan_batch(int32_t asked, int32_t ctx);
/* Rows of the host logits buffer (at most 32 MiB of them, at most one batch). */
int32_t plan_logit_rows(const arch_hparams *hp, int32_t batch);
/* The cache of n_layer layers of K rows k_width wide and V rows v_width wide at
 * ctx, unchunked: the table's cache rows, and `phivk info`'s KV table for any
 * architecture. 0 when it would overflow. */
uint64_t plan_kv_bytes(int64_t n_layer, int64_t k_width, int64_t v_width, pvk_type k_type,
                       pvk_type v_type, int64_t ctx);
/* Bytes of one token's K and V over all layers. */
uint64_t plan_kv_bytes_per_token(const arch_hparams *hp, pvk_type k_type, pvk_type v_type);
/* The cache types a session offers (phivk_kv_type), as tensor types. */
#define PLAN_KV_TYPE_COUNT (PHIVK_KV_Q4_0 + 1)
pvk_type plan_kv_type(phivk_kv_type t);

/* How the context was chosen (plan_ctx_text says it in words). */
typedef enum plan_ctx_why {
    PLAN_CTX_ASKED,            /* -c N */
    PLAN_CTX_TRAINED,          /* auto: the model's trained context */
    PLAN_CTX_CAPPED,           /* auto: the trained context is larger than PLAN_AUTO_CTX_MAX */
    PLAN_CTX_MEMORY,           /* auto: the most that fits, a multiple of 256 */
} plan_ctx_why;

typedef struct plan_input {
    const arch_hparams *hp;
    uint64_t weight_bytes;     /* what the model holds on the device */
    pvk_type k_type, v_type;
    int32_t ctx;               /* tokens; 0: auto */
    int32_t batch;             /* prefill chunk asked for; 0: the default */
    uint64_t budget;           /* device memory the session may use */
    bool int8;
    bool shared;               /* plan_shape's: then weight_bytes is 0 and budget what is left */
    int32_t slots;             /* plan_shape's */
    /* Attention's partials at most for a cache of ctx rows and a batch (the
     * device's tuning: pvk_op_attention_scratch_bytes); NULL: none. */
    uint64_t (*attn_bytes)(void *user, int32_t ctx, int32_t batch);
    void *user;
} plan_input;

typedef struct plan {
    int32_t ctx;
    int32_t batch;             /* the prefill chunk the scratch rows hold */
    int32_t slots;             /* KV caches counted in total (>= 1) */
    bool shared;
    plan_ctx_why why;
    plan_row rows[PLAN_N_BUFS];
    uint64_t kv_bytes_per_token; /* K and V, all layers */
    uint64_t kv_bytes;         /* the cache rows (one session's) */
    uint64_t scratch_bytes;    /* the scratch rows */
    uint64_t weight_bytes;
    uint64_t total;            /* weights + slots x KV cache + scratch */
    uint64_t budget;
} plan;

/* The plan's shape at a context (unchunked cache, attention from in). */
plan_shape plan_shape_at(const plan_input *in, int32_t ctx);
/* Sets p's table to s's (the session's, once its cache is allocated) and its sums. */
void plan_set_layout(plan *p, const plan_shape *s);
/* Fills *out: the table at in->ctx, or at the context `-c auto` picks (the
 * model's trained context up to PLAN_AUTO_CTX_MAX, or the largest multiple of
 * 256 below it that fits in 90% of the budget). PHIVK_ERR_DEVICE_MEMORY when it
 * does not fit, with the numbers, the context auto would pick, and the smaller
 * cache types than the one in use. With slots, the total holds that many caches
 * (auto picks a context they all fit) and the refusal gives the bytes per slot. */
phivk_status plan_make(const plan_input *in, plan *out);
/* "the model's trained context", "auto: 131072 of the trained 16777216 (more with -c N)". */
void plan_ctx_text(const plan *p, const arch_hparams *hp, char *out, size_t n);


#endif
