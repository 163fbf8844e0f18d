/* Internal state behind the public runtime/model/session handles (model.c, session.c). */
#ifndef PHIVK_MODEL_IMPL_H
#define PHIVK_MODEL_IMPL_H

#include <stdatomic.h>

#include "arch.h"
#include "gguf.h"
#include "phivk.h"
#include "pvk.h"
#include "pvk_ops.h"
#include "tok.h"

struct phivk_runtime {
    pvk_dev *dev;
    pvk_ops *ops;
};

/* One projection's weights: the rows of one or more GGUF matrices (Q|K|V, gate|up)
 * fused into one tensor when they share a type, else kept apart and written side
 * by side into one output (a Q4_K_M file may store V in Q6_K next to Q4_K Q and K).
 * bias holds every part's bias, concatenated; zeroed (vk == NULL) when absent. */
typedef struct gpu_proj {
    pvk_tensor part[3];
    uint32_t n_parts;
    pvk_buf bias;
} gpu_proj;

/* One layer's weights on the device; absent norm biases are zeroed pvk_bufs. */
typedef struct gpu_layer {
    pvk_buf attn_norm, attn_norm_b;
    gpu_proj qkv;
    gpu_proj out;
    pvk_buf ffn_norm, ffn_norm_b;
    gpu_proj up;              /* [gate | up] for SwiGLU, up alone for GELU */
    gpu_proj down;
} gpu_layer;

struct phivk_model {
    phivk_runtime *rt;
    gguf_file *file;
    arch_hparams hp;
    arch_weights *w;
    tok_vocab *vocab;
    char name[256];
    pvk_tensor embd;
    pvk_tensor pos_embd;      /* hp.pos_embd: learned position rows; else empty */
    gpu_proj output;          /* no parts when the output is tied to embd; bias either way */
    pvk_buf output_norm, output_norm_b;
    pvk_buf rope_long, rope_short;
    gpu_layer *layers;
    uint64_t weight_bytes;
    int32_t *masked_ids, n_masked; /* logits set to -FLT_MAX (arch_masked_ids) */
};

/* The distinct types of the model's matrices (head, projections; not the embedding
 * table unless tied): fills types (PVK_TYPE_COUNT entries), returns the count. */
int model_matrix_types(const phivk_model *m, pvk_type *types);
/* Whether any matrix reads int8 activations in decode (pvk_ops_reads_q8 at m 1):
 * sessions then keep int8 buffers. */
bool model_reads_q8(const phivk_model *m);

/* An optional weight (a bias) as the op layer takes it: NULL when absent. */
static inline const pvk_buf *model_opt(const pvk_buf *b) { return b->vk ? b : NULL; }

#endif
