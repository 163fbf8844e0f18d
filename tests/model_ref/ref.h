/* The CPU reference: a plain fp32 forward pass over the same GGUF the GPU runs,
 * written for clarity (like llama2.c's run.c), with double accumulation in every
 * reduction. It is the oracle every GPU kernel and every whole-model result is
 * tested against, not a product path.
 *
 * Weights stay in their stored type inside the GGUF mapping; each matrix row is
 * dequantized with quant_dequantize_row when it is used, once per batch, so the
 * reference runs any model that fits the mapping. The math is
 * docs/spec/phi-spec.md section 2 with phivk's choices 1-3 (LongRoPE table by
 * sequence length with a re-prefill at the switch, the Phi-3 sliding window unless
 * no_swa, fp32 attention with Q pre-scaled by 1/sqrt(head_dim)); GPT-Neo is
 * docs/spec/gpt-neo.md 3 (learned positions, Q unscaled, local windows). */
#ifndef PHIVK_REF_H
#define PHIVK_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "arch.h"
#include "gguf.h"
#include "pvk_err.h"

/* ---- building blocks (also the per-kernel oracles) ---- */

/* y = norm(x) * w (+ b); w and b may be NULL (treated as 1 and 0). y may equal x. */
void ref_norm(arch_norm kind, float eps, const float *x, const float *w, const float *b, float *y,
              int64_t n);
/* For i < n, r < rows: y[i*ys + r] = W[r] . x[i*xs .. +cols] (+ b[r]), where W is
 * rows x cols of type t stored row-major at w (a GGUF 2-D tensor: ne0 = cols).
 * b may be NULL. PHIVK_ERR_UNSUPPORTED for a type quant.h cannot dequantize. */
phivk_status ref_matmul(pvk_type t, const void *w, int64_t rows, int64_t cols, const float *b,
                      const float *x, int64_t xs, float *y, int64_t ys, int64_t n);
/* Rotates the first n_rot dims of each of n_heads heads (head_dim apart) at pos:
 * pair i (< n_rot/2) is (i, i + n_rot/2) when neox, else (2i, 2i+1); angle
 * pos * base^(-2i/n_rot) * freq_scale / factors[i] (factors may be NULL), and cos
 * and sin are both multiplied by mscale (phi-spec 2.5). */
void ref_rope(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, bool neox, int64_t pos,
              float base, float freq_scale, const float *factors, float mscale);
/* tanh-approximated GELU ("gelu_new") and SiLU. */
float ref_gelu(float x);
float ref_silu(float x);
/* One query token, all heads (head_dim <= ARCH_MAX_HEAD_DIM): q is n_head * head_dim, already
 * scaled by 1/sqrt(head_dim). k and v hold positions 0.. with row stride kv_stride floats; the
 * query sees positions k_first..k_last inclusive. Query head h reads kv head h / (n_head /
 * n_head_kv). out is n_head * head_dim. */
void ref_attention(const float *q, int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                   const float *k, const float *v, int64_t kv_stride, int64_t k_first,
                   int64_t k_last, float *out);

/* ---- whole model ---- */

typedef struct ref_model ref_model;

/* Reads hyperparameters and weights of f (which must outlive the model); what names
 * the file in messages. Caller owns *out: ref_model_destroy. */
phivk_status ref_model_create(const gguf_file *f, const char *what, ref_model **out);
void ref_model_destroy(ref_model *m); /* accepts NULL */
const arch_hparams *ref_model_hparams(const ref_model *m);
const arch_weights *ref_model_weights(const ref_model *m);

typedef struct ref_state_params {
    int32_t n_ctx;               /* KV cache positions; 0: the model's training context */
    phivk_rope_factors rope_factors; /* LongRoPE table choice (default AUTO) */
    bool no_swa;                 /* ignore the Phi-3 sliding window */
    uint64_t int8_types;         /* bit t set: matrices of block type t read their input
                                    through int8 blocks of 32 (ggml's Q8_1 rounding), as
                                    llama.cpp's CPU backend and phivk's integer-dot
                                    matvec do */
    bool kv_f16;                 /* cache K and V rounded to f16, as the GPU stores them:
                                    then int8 rounding sees the same inputs on both */
} ref_state_params;
ref_state_params ref_state_default_params(void);

typedef struct ref_state ref_state;

/* An fp32 KV cache for m (which must outlive it) at position 0. Caller owns *out. */
phivk_status ref_state_create(const ref_model *m, const ref_state_params *p, ref_state **out);
void ref_state_destroy(ref_state *s); /* accepts NULL */
int32_t ref_state_pos(const ref_state *s);

/* Runs n tokens at the current position and appends them to the cache. logits (may
 * be NULL) receives the last position's n_vocab logits, or every position's
 * (n x n_vocab) when all_logits. PHIVK_ERR_CONTEXT_FULL when they do not fit,
 * PHIVK_ERR_INVALID for an out-of-range token id; the state is unchanged on error.
 * With rope_factors AUTO, the call that takes the sequence past the original
 * context recomputes the cached tokens with the long table first. */
phivk_status ref_forward(ref_state *s, const int32_t *tokens, int32_t n, float *logits,
                       bool all_logits);

#endif
