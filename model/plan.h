/* The memory plan of a session: what the weights, the KV cache and the scratch
 * activations take on the device for a context and KV types, and the largest
 * context that fits. Pure arithmetic (no Vulkan), so it is tested with the real
 * models' shapes without loading them. */
#ifndef PHIVK_PLAN_H
#define PHIVK_PLAN_H

#include <stdint.h>

#include "arch.h"
#include "pvk_err.h"
#include "pvk_type.h"

typedef struct plan_input {
    const arch_hparams *hp;
    uint64_t weight_bytes;     /* as stored in the GGUF */
    pvk_type k_type, v_type;   /* PVK_F16, PVK_Q8_0 or PVK_Q4_0 */
    int32_t ctx;               /* tokens; 0: the largest that fits, at most the model's */
    int32_t batch;             /* prefill chunk */
    int32_t logit_rows;        /* rows of the host logits buffer */
    uint64_t budget;           /* device memory the session may use */
    uint64_t attn_bytes;       /* attention's split-K partials at most, from the device's
                                  tuning (pvk_op_attention_scratch_bytes); 0: an estimate */
} plan_input;

typedef struct plan {
    int32_t ctx;
    uint64_t kv_bytes_per_token; /* K and V, all layers */
    uint64_t kv_bytes;
    uint64_t weight_bytes;
    uint64_t scratch_bytes;      /* activations for one batch, logits, attention partials */
    uint64_t total;
    uint64_t budget;
} plan;

/* Bytes of one token's K and V over all layers. */
uint64_t plan_kv_bytes_per_token(const arch_hparams *hp, pvk_type k_type, pvk_type v_type);
/* Activations of one batch, the logits rows, and attention's split-K partials: at
 * least attn_bytes, at least an estimate of a GPU's (64 splits of a decode step). */
uint64_t plan_scratch_bytes(const arch_hparams *hp, int32_t batch, int32_t logit_rows, uint64_t attn_bytes);

/* Fills *out. When in->ctx is 0 picks the largest context (a multiple of 256, at
 * most the model's) that fits in 90% of the budget. PVK_ERR_DEVICE_MEMORY when it
 * does not fit, with the numbers and what to change in the message. */
pvk_status plan_make(const plan_input *in, plan *out);

/* "1.50 GiB", "24.0 MiB", "512 KiB" */
void plan_fmt_bytes(char *out, size_t n, uint64_t bytes);

#endif
