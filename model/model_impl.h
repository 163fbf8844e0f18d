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

/* One layer's weights on the device. Separate Q/K/V (and llama's gate/up) are
 * concatenated by rows at load, so every architecture runs one QKV and one
 * up-projection matmul. Absent biases are zeroed pvk_bufs (vk == NULL). */
typedef struct gpu_layer {
    pvk_buf attn_norm, attn_norm_b;
    pvk_tensor qkv;
    pvk_buf qkv_b;
    pvk_tensor out;
    pvk_buf out_b;
    pvk_buf ffn_norm;
    pvk_tensor up;            /* [gate | up] for SwiGLU, up alone for GELU */
    pvk_buf up_b;
    pvk_tensor down;
    pvk_buf down_b;
} gpu_layer;

struct phivk_model {
    phivk_runtime *rt;
    gguf_file *file;
    arch_hparams hp;
    arch_weights *w;
    tok_vocab *vocab;
    char name[256];
    pvk_tensor embd;
    pvk_tensor output;        /* unused (zeroed) when the output is tied to embd */
    pvk_buf output_norm, output_norm_b, output_b;
    pvk_buf rope_long, rope_short;
    gpu_layer *layers;
    uint64_t weight_bytes;
};

/* An optional weight (a bias) as the op layer takes it: NULL when absent. */
static inline const pvk_buf *model_opt(const pvk_buf *b) { return b->vk ? b : NULL; }

#endif
