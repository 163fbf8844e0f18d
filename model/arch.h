/* Model description per architecture: the hyperparameters read from a GGUF's
 * metadata and a pointer to every weight tensor by its role, shape-checked.
 *
 * phivk runs three GGUF architectures (docs/spec/phi-spec.md section 2):
 *   phi2  (phi-1, phi-1.5, phi-2): LayerNorm with bias, parallel attention + MLP
 *         block, partial NEOX rotary, tanh-GELU, biases everywhere incl. output;
 *   phi3  (Phi-3 mini/medium, Phi-3.5-mini): RMSNorm, fused QKV, NEOX rotary,
 *         LongRoPE factor tables, sliding window, fused [gate | up] SwiGLU;
 *   llama (llama2.c stories, TinyLlama): RMSNorm, separate Q/K/V, adjacent-pair
 *         rotary, separate gate/up SwiGLU, output tied to the embedding when
 *         output.weight is absent;
 *   phi3small (Phi-3-small, phivk's own keys, docs/gguf-keys.md and
 *         docs/spec/phi3-small.md): LayerNorm with bias, fused [Q | K | V] with GQA,
 *         NEOX rotary (LongRoPE for 128K), muP scales, GEGELU over [gelu | linear]
 *         halves, block-sparse attention on the layers that are not dense, output
 *         tied to the embedding.
 *   gptneo (the TinyStories models, docs/spec/gpt-neo.md; keys docs/gguf-keys.md):
 *         learned absolute positions instead of rotary, LayerNorm with bias,
 *         separate Q/K/V without bias, UNSCALED scores, global and windowed local
 *         attention per layer, tanh-GELU MLP with biases, output tied.
 * Both the GPU forward pass and the CPU reference (ref.h) are written against
 * arch_hparams + arch_weights, so what one reads the other reads too. */
#ifndef PHIVK_ARCH_H
#define PHIVK_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "phivk.h"
#include "pvk_err.h"

#define ARCH_MAX_HEAD_DIM 4096 /* the largest head size arch_hparams_read accepts */
#define ARCH_MAX_LAYERS 4096

typedef enum arch_kind { ARCH_PHI2 = 0, ARCH_PHI3 = 1, ARCH_LLAMA = 2, ARCH_GPTNEO = 3, ARCH_PHI3SMALL = 4 } arch_kind;

typedef enum arch_norm {
    ARCH_NORM_RMS = 0,   /* x * (mean(x^2) + eps)^-1/2 * w */
    ARCH_NORM_LAYER = 1, /* (x - mean) * (var + eps)^-1/2 * w + b */
} arch_norm;

/* Which frequency-factor table a sequence uses. */
typedef enum arch_rope_table {
    ARCH_ROPE_TABLE_NONE = 0, /* the model has no factor tensors: plain RoPE */
    ARCH_ROPE_TABLE_SHORT = 1,
    ARCH_ROPE_TABLE_LONG = 2,
} arch_rope_table;

typedef struct arch_hparams {
    arch_kind arch;
    const char *arch_name;    /* "phi2", "phi3", "llama", "gptneo" (static storage) */
    int32_t n_vocab;          /* rows of token_embd.weight */
    int32_t n_ctx_train;      /* {arch}.context_length */
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;        /* == n_head without GQA */
    int32_t head_dim;         /* {arch}.attention.key_length, default n_embd / n_head */
    int32_t n_embd_q;         /* n_head * head_dim (== n_embd for every supported model) */
    int32_t n_embd_kv;        /* n_head_kv * head_dim */
    int32_t n_ff;             /* MLP hidden width (phi3's fused ffn_up has 2 * n_ff rows) */
    int32_t n_rot;            /* rotated dims per head (even, <= head_dim); phi2: 32; gptneo: 0 */
    float rope_base;          /* theta, default 10000 */
    float rope_freq_scale;    /* 1 / linear scaling factor; 1 when unscaled */
    bool rope_neox;           /* pairs (i, i + n_rot/2) (phi2, phi3), else (2i, 2i+1) (llama) */
    arch_norm norm;
    float norm_eps;
    bool parallel_block;      /* phi2: one norm feeds attention and MLP, one residual add */
    bool gelu;                /* tanh-GELU MLP (phi2); otherwise SwiGLU */
    bool fused_qkv;           /* attn_qkv = [Q | K | V] rows instead of attn_q/k/v */
    bool fused_gate_up;       /* phi3: ffn_up = [gate | up] rows (gate FIRST) */
    bool tied_output;         /* no output.weight: logits use token_embd */
    int32_t sliding_window;   /* phi3: key visible iff q_pos - k_pos < window; 0 = none */
    /* LongRoPE (Phi-3 128K); without factor tensors orig ctx = n_ctx_train, factor 1. */
    bool has_rope_factors;    /* rope_factors_long/short tensors present ({n_rot/2} F32) */
    int32_t rope_orig_ctx;    /* {arch}.rope.scaling.original_context_length */
    float rope_attn_factor;   /* multiplies cos AND sin (the long table's, and the short
                                 one's unless rope_attn_factor_short says otherwise), default 1 */
    float rope_attn_factor_short; /* the short table's (phi3small: short_mscale, default 1) */
    float attn_scale;         /* multiplies q·k: 1/sqrt(head_dim); gptneo: 1 (unscaled);
                                 phi3small: its muP mup_attn_multiplier / head_dim */
    bool pos_embd;            /* gptneo: position_embd rows (n_ctx_train of them) added to
                                 the token embedding; positions past them do not exist */
    int32_t local_window;     /* gptneo: a local layer's key visible iff q_pos - k_pos < this */
    uint64_t local_layers[ARCH_MAX_LAYERS / 64]; /* gptneo: bit l set: layer l is local */
    /* phi3small (1 / 0 / false for the other archs) */
    float embd_scale;         /* token embeddings entering layer 0 are multiplied by this */
    float logit_scale;        /* logits are multiplied by this (1 / mup_width_multiplier) */
    bool gegelu;              /* GEGELU MLP; ffn_up = [gelu | linear] rows (de-interleaved) */
    float gegelu_limit;       /* clamp of GEGELU's inputs; 0: none */
    /* Block-sparse attention (phi3-small.md sections 10-11): layer l is dense iff
     * bs_dense_every > 0 and (l + 1) % bs_dense_every == 0; bs_block 0: every layer dense. */
    int32_t bs_dense_every, bs_block, bs_local, bs_stride;
    bool bs_homo;             /* every head uses head 0's vertical pattern (step 0) */
} arch_hparams;

/* Per-layer weights. A field the architecture does not use is NULL; optional biases
 * (phi3, llama) are NULL when absent. 2-D tensors have ne0 = input features,
 * ne1 = output features; 1-D tensors are F32. */
typedef struct arch_layer {
    const gguf_tensor *attn_norm, *attn_norm_b;          /* _b: LayerNorm only */
    const gguf_tensor *attn_qkv, *attn_qkv_b;            /* fused_qkv */
    const gguf_tensor *attn_q, *attn_q_b, *attn_k, *attn_k_b, *attn_v, *attn_v_b;
    const gguf_tensor *attn_output, *attn_output_b;
    const gguf_tensor *ffn_norm, *ffn_norm_b;            /* NULL for parallel_block; _b: LayerNorm */
    const gguf_tensor *ffn_gate;                         /* llama only */
    const gguf_tensor *ffn_up, *ffn_up_b;
    const gguf_tensor *ffn_down, *ffn_down_b;
} arch_layer;

typedef struct arch_weights {
    const gguf_tensor *token_embd;                       /* {n_embd, n_vocab} */
    const gguf_tensor *position_embd;                    /* {n_embd, n_ctx_train}; pos_embd only */
    const gguf_tensor *output_norm, *output_norm_b;
    const gguf_tensor *output;                           /* == token_embd when tied_output */
    const gguf_tensor *output_b;                         /* phi2 only */
    const gguf_tensor *rope_factors_long, *rope_factors_short; /* NULL without LongRoPE */
    int32_t n_layer;
    arch_layer *layers;                                  /* n_layer entries, owned */
} arch_weights;

/* Reads the hyperparameters of f. what names the file in messages (e.g. the path's
 * base name). PHIVK_ERR_UNSUPPORTED for another architecture, PHIVK_ERR_BAD_FILE for a
 * missing or inconsistent key; the message names the key. */
phivk_status arch_hparams_read(const gguf_file *f, const char *what, arch_hparams *out);

/* Finds and shape-checks every tensor hp needs in f. The tensors point into f,
 * which must outlive the result. Caller owns *out: arch_weights_destroy.
 * PHIVK_ERR_BAD_FILE names the first missing or mis-shaped tensor. */
phivk_status arch_weights_create(const gguf_file *f, const arch_hparams *hp, const char *what,
                               arch_weights **out);
void arch_weights_destroy(arch_weights *w); /* accepts NULL */

/* The factor table a sequence of seq_len tokens uses (phi-spec "choices" 1): AUTO
 * picks short while seq_len <= rope_orig_ctx (exactly the original context is
 * still short), long beyond. NONE when the model has no tables. */
arch_rope_table arch_rope_factors_choice(const arch_hparams *hp, phivk_rope_factors mode,
                                         int64_t seq_len);
/* The tensor for a table (NULL for NONE). */
const gguf_tensor *arch_rope_factors(const arch_weights *w, arch_rope_table t);

/* Whether a query at q_pos sees the key at k_pos <= q_pos under the sliding
 * window (phi-spec "choices" 2); no_swa ignores the window as llama.cpp does. */
bool arch_key_visible(const arch_hparams *hp, bool no_swa, int64_t q_pos, int64_t k_pos);

/* The attention window of layer l (key visible iff q_pos - k_pos < it), 0 for
 * none: phi3's sliding window on every layer unless no_swa (an approximation
 * llama.cpp offers), gptneo's local window on its local layers (the model's own
 * semantics, which no_swa does not change). */
int32_t arch_layer_window(const arch_hparams *hp, bool no_swa, int32_t l);
/* The block-sparse pattern of layer l as the attention kernel takes it: *block 0
 * for a dense layer; else block size, local blocks, vertical stride and the head
 * sliding step (phi3-small.md section 11). */
void arch_sparse_pattern(const arch_hparams *hp, int32_t layer, uint32_t *block, uint32_t *local,
                         uint32_t *stride, uint32_t *step);
/* Whether query head `head` at q_pos sees the key at k_pos under layer l's pattern
 * (causal; block-sparse on the layers that are not dense). */
bool arch_sparse_visible(const arch_hparams *hp, int32_t layer, int32_t head, int64_t q_pos,
                         int64_t k_pos);

/* The token ids whose logits are masked to -FLT_MAX (phi3small.logit_masked_ids:
 * Phi-3-small's 91 dummy ids, phi3-small.md 15), malloc'd into *ids (NULL and 0
 * when the file has none). PHIVK_ERR_BAD_FILE names the key when it is not an
 * integer array or an id is outside the vocabulary. */
phivk_status arch_masked_ids(const gguf_file *f, const arch_hparams *hp, const char *what, int32_t **ids,
                             int32_t *n);

/* Phi-3-small's dummy token ids (HF-M's dummy_token_indices: 100256..100351 but for
 * the five real special tokens), the list converters write as logit_masked_ids:
 * fills out (ARCH_PHI3SMALL_N_MASKED entries). */
#define ARCH_PHI3SMALL_N_MASKED 91
void arch_phi3small_masked_ids(int32_t *out);

/* The base name of a path, for the what argument above. */
const char *arch_basename(const char *path);

#endif
