#include "ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* ------------------------------------------------------------ building blocks */

void ref_norm(arch_norm kind, float eps, const float *x, const float *w, const float *b, float *y,
              int64_t n) {
    double mean = 0, ss = 0;
    if (kind == ARCH_NORM_LAYER) {
        for (int64_t i = 0; i < n; i++) mean += x[i];
        mean /= (double)n;
    }
    for (int64_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    double scale = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++) {
        double v = (x[i] - mean) * scale;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = (float)v;
    }
}

phivk_status ref_matmul(pvk_type t, const void *w, int64_t rows, int64_t cols, const float *b,
                      const float *x, int64_t xs, float *y, int64_t ys, int64_t n) {
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a %lld-wide row",
                              (long long)cols);
    const size_t row_bytes = pvk_type_row_bytes(t, cols);
    phivk_status st = PHIVK_OK;
    for (int64_t r = 0; r < rows && st == PHIVK_OK; r++) {
        /* each row is dequantized once and used by every token of the batch */
        st = quant_dequantize_row(t, (const uint8_t *)w + (size_t)r * row_bytes, row, cols);
        for (int64_t i = 0; i < n && st == PHIVK_OK; i++) {
            const float *xi = x + i * xs;
            double acc = b ? b[r] : 0.0;
            for (int64_t c = 0; c < cols; c++) acc += (double)row[c] * xi[c];
            y[i * ys + r] = (float)acc;
        }
    }
    free(row);
    return st;
}

void ref_rope(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, bool neox, int64_t pos,
              float base, float freq_scale, const float *factors, float mscale) {
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        double theta = (double)pos * pow(base, -2.0 * i / n_rot) * freq_scale;
        if (factors) theta /= factors[i];
        const double c = cos(theta) * mscale, s = sin(theta) * mscale;
        const int32_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        for (int32_t h = 0; h < n_heads; h++) {
            float *xh = x + (int64_t)h * head_dim;
            const double x0 = xh[i0], x1 = xh[i1];
            xh[i0] = (float)(x0 * c - x1 * s);
            xh[i1] = (float)(x0 * s + x1 * c);
        }
    }
}

float ref_gelu(float x) {
    const double v = x;
    return (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
}

float ref_silu(float x) { return (float)(x / (1.0 + exp(-(double)x))); }

static double dot_qk(const float *q, const float *k, int32_t n) {
    double s = 0;
    for (int32_t d = 0; d < n; d++) s += (double)q[d] * k[d];
    return s;
}

void ref_attention(const float *q, int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                   const float *k, const float *v, int64_t kv_stride, int64_t k_first,
                   int64_t k_last, float *out) {
    const int32_t group = n_head / n_head_kv;
    double acc[ARCH_MAX_HEAD_DIM];
    for (int32_t h = 0; h < n_head; h++) {
        const float *qh = q + (int64_t)h * head_dim;
        const int64_t koff = (int64_t)(h / group) * head_dim;
        /* two plain passes (max, then exp-weighted sum), recomputing the dots
         * rather than keeping a score array of the context's length */
        double mx = -INFINITY;
        for (int64_t j = k_first; j <= k_last; j++) {
            const double sc = dot_qk(qh, k + j * kv_stride + koff, head_dim);
            if (sc > mx) mx = sc;
        }
        double sum = 0;
        for (int32_t d = 0; d < head_dim; d++) acc[d] = 0;
        for (int64_t j = k_first; j <= k_last; j++) {
            const double p = exp(dot_qk(qh, k + j * kv_stride + koff, head_dim) - mx);
            const float *vj = v + j * kv_stride + koff;
            sum += p;
            for (int32_t d = 0; d < head_dim; d++) acc[d] += p * vj[d];
        }
        for (int32_t d = 0; d < head_dim; d++)
            out[(int64_t)h * head_dim + d] = (float)(acc[d] / sum);
    }
}

/* ---------------------------------------------------------------- the model */

struct ref_model {
    const gguf_file *file;
    arch_hparams hp;
    arch_weights *w;
    int32_t *masked, n_masked; /* logits set to -FLT_MAX (phi3small's dummy ids) */
};

phivk_status ref_model_create(const gguf_file *f, const char *what, ref_model **out) {
    *out = NULL;
    ref_model *m = calloc(1, sizeof *m);
    if (!m) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    m->file = f;
    phivk_status st = arch_hparams_read(f, what, &m->hp);
    if (!st) st = arch_weights_create(f, &m->hp, what, &m->w);
    if (!st) st = arch_masked_ids(f, &m->hp, what, &m->masked, &m->n_masked);
    if (st) {
        ref_model_destroy(m);
        return st;
    }
    *out = m;
    return PHIVK_OK;
}

void ref_model_destroy(ref_model *m) {
    if (!m) return;
    arch_weights_destroy(m->w);
    free(m->masked);
    free(m);
}

const arch_hparams *ref_model_hparams(const ref_model *m) { return &m->hp; }
const arch_weights *ref_model_weights(const ref_model *m) { return m->w; }

ref_state_params ref_state_default_params(void) {
    return (ref_state_params){.n_ctx = 0, .rope_factors = PHIVK_ROPE_AUTO, .no_swa = false};
}

struct ref_state {
    const ref_model *m;
    ref_state_params p;
    int32_t pos;
    arch_rope_table table; /* the factor table the cached keys were rotated with */
    int32_t *history;      /* every cached token, for the LongRoPE re-prefill */
    float *k, *v;          /* [n_layer][n_ctx][n_embd_kv], K after RoPE */
};

phivk_status ref_state_create(const ref_model *m, const ref_state_params *p, ref_state **out) {
    *out = NULL;
    ref_state *s = calloc(1, sizeof *s);
    if (!s) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    s->m = m;
    s->p = p ? *p : ref_state_default_params();
    if (s->p.n_ctx <= 0) s->p.n_ctx = m->hp.n_ctx_train;
    if (m->hp.pos_embd && s->p.n_ctx > m->hp.n_ctx_train) {
        const int32_t n_ctx = s->p.n_ctx;
        free(s);
        return pvk_fail(PHIVK_ERR_INVALID, "a %d-token reference context: learned positions end at %d", (int)n_ctx,
                        m->hp.n_ctx_train);
    }
    const size_t kv = (size_t)m->hp.n_layer * (size_t)s->p.n_ctx * (size_t)m->hp.n_embd_kv;
    s->history = malloc((size_t)s->p.n_ctx * sizeof *s->history);
    s->k = malloc(kv * sizeof *s->k);
    s->v = malloc(kv * sizeof *s->v);
    if (!s->history || !s->k || !s->v) {
        const int32_t n_ctx = s->p.n_ctx;
        ref_state_destroy(s);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY,
                        "out of host memory for a %d-token fp32 reference KV cache (%zu MiB)",
                        (int)n_ctx, 2 * kv * sizeof(float) >> 20);
    }
    *out = s;
    return PHIVK_OK;
}

void ref_state_destroy(ref_state *s) {
    if (!s) return;
    free(s->history);
    free(s->k);
    free(s->v);
    free(s);
}

int32_t ref_state_pos(const ref_state *s) { return s->pos; }

static const float *f32(const gguf_tensor *t) { return t ? (const float *)t->data : NULL; }

/* Scratch for one batch of n tokens. */
typedef struct batch {
    float *x;   /* [n][E] residual stream */
    float *h;   /* [n][E] normed input */
    float *qkv; /* [n][Q + 2 KV] */
    float *att; /* [n][Q] attention output */
    float *o;   /* [n][E] projection output */
    float *gu;  /* [n][2 F] gate | up (or up alone for GELU) */
    float *act; /* [n][F] */
    uint64_t int8_types; /* ref_state_params.int8_types */
} batch;

/* x rows [n][cols] (stride xs) with each block of 32 replaced by what its int8 form
 * holds (d * q, q = roundEven(x * 127 / amax), d = amax / 127, in f32 as
 * shaders/q8_store.glsl computes them) into out [n][cols]. */
static void int8_round_trip(const float *x, int64_t xs, float *out, int64_t cols, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            const float *v = x + i * xs + c0;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
            for (int j = 0; j < 32; j++) out[i * cols + c0 + j] = d * nearbyintf(v[j] * id);
        }
}

/* y = x W^T (+ b) for a GGUF matrix, with x through int8 first where the batch asks
 * for it for W's block type. */
static phivk_status matmul_t(const batch *bt, const gguf_tensor *w, const gguf_tensor *b, const float *x,
                           int64_t xs, float *y, int64_t ys, int64_t n) {
    const float *bias = b ? (const float *)b->data : NULL;
    int64_t cols = w->ne[0];
    if (!(bt->int8_types >> w->type & 1) || pvk_type_get(w->type)->block_elems == 1 || cols % 32)
        return ref_matmul(w->type, w->data, w->ne[1], cols, bias, x, xs, y, ys, n);
    float *xq = malloc(sizeof *xq * (size_t)(n * cols));
    if (!xq) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for int8 activations");
    int8_round_trip(x, xs, xq, cols, n);
    phivk_status st = ref_matmul(w->type, w->data, w->ne[1], cols, bias, xq, cols, y, ys, n);
    free(xq);
    return st;
}

/* Phi-3-small's GEGELU of one [gelu | linear] pair (docs/spec/phi3-small.md 14). */
static float gegelu(double a, double c, double limit) {
    if (limit > 0) {
        a = fmin(a, limit);
        c = fmax(-limit, fmin(c, limit));
    }
    return (float)(a / (1.0 + exp(-1.702 * a)) * (c + 1.0));
}

/* Attention of one query token over the keys layer l's pattern lets head h see
 * (phi3small's block-sparse layers; arch_sparse_visible), as ref_attention does
 * over a contiguous range. */
static void attention_masked(const arch_hparams *hp, int32_t l, const float *q, const float *k,
                             const float *v, int64_t kv_stride, int64_t pos, float *out) {
    const int32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    double acc[ARCH_MAX_HEAD_DIM];
    for (int32_t h = 0; h < hp->n_head; h++) {
        const float *qh = q + (int64_t)h * hd;
        const int64_t koff = (int64_t)(h / group) * hd;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= pos; j++)
            if (arch_sparse_visible(hp, l, h, pos, j)) mx = fmax(mx, dot_qk(qh, k + j * kv_stride + koff, hd));
        for (int32_t d = 0; d < hd; d++) acc[d] = 0;
        for (int64_t j = 0; j <= pos; j++) {
            if (!arch_sparse_visible(hp, l, h, pos, j)) continue;
            const double p = exp(dot_qk(qh, k + j * kv_stride + koff, hd) - mx);
            sum += p;
            for (int32_t d = 0; d < hd; d++) acc[d] += p * v[j * kv_stride + koff + d];
        }
        for (int32_t d = 0; d < hd; d++) out[(int64_t)h * hd + d] = (float)(acc[d] / sum);
    }
}

/* The MLP of one layer on h into out ([n][E]). */
static phivk_status mlp(const arch_hparams *hp, const arch_layer *L, const batch *b,
                      const float *h, float *out, int64_t n) {
    const int64_t E = hp->n_embd, F = hp->n_ff;
    phivk_status st;
    if (hp->gelu) {
        if ((st = matmul_t(b, L->ffn_up, L->ffn_up_b, h, E, b->act, F, n))) return st;
        for (int64_t i = 0; i < n * F; i++) b->act[i] = ref_gelu(b->act[i]);
    } else {
        /* gu rows are [gate | up]: phi3 stores them fused (gate FIRST), llama apart */
        if (hp->fused_gate_up) st = matmul_t(b, L->ffn_up, L->ffn_up_b, h, E, b->gu, 2 * F, n);
        else if (!(st = matmul_t(b, L->ffn_gate, NULL, h, E, b->gu, 2 * F, n)))
            st = matmul_t(b, L->ffn_up, L->ffn_up_b, h, E, b->gu + F, 2 * F, n);
        if (st) return st;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < F; j++)
                b->act[i * F + j] = hp->gegelu ? gegelu(b->gu[i * 2 * F + j], b->gu[i * 2 * F + F + j], hp->gegelu_limit)
                                               : ref_silu(b->gu[i * 2 * F + j]) * b->gu[i * 2 * F + F + j];
    }
    return matmul_t(b, L->ffn_down, L->ffn_down_b, b->act, F, out, E, n);
}

/* Runs n tokens at s->pos through every layer; the caller has validated them. */
static phivk_status run_batch(ref_state *s, const int32_t *tokens, int32_t n, float *logits,
                            bool all_logits) {
    const arch_hparams *hp = &s->m->hp;
    const arch_weights *w = s->m->w;
    const int64_t E = hp->n_embd, Q = hp->n_embd_q, KV = hp->n_embd_kv, F = hp->n_ff;
    const int64_t T = Q + 2 * KV;
    const int64_t pos0 = s->pos;
    const float *factors = f32(arch_rope_factors(w, s->table));
    const float qscale = hp->attn_scale;
    const float mscale = s->table == ARCH_ROPE_TABLE_SHORT ? hp->rope_attn_factor_short : hp->rope_attn_factor;
    phivk_status st = PHIVK_OK;
    batch b = {.int8_types = s->p.int8_types};
    b.x = malloc((size_t)(n * E) * sizeof(float));
    b.h = malloc((size_t)(n * E) * sizeof(float));
    b.qkv = malloc((size_t)(n * T) * sizeof(float));
    b.att = malloc((size_t)(n * Q) * sizeof(float));
    b.o = malloc((size_t)(n * E) * sizeof(float));
    b.gu = malloc((size_t)(n * 2 * F) * sizeof(float));
    b.act = malloc((size_t)(n * F) * sizeof(float));
    if (!b.x || !b.h || !b.qkv || !b.att || !b.o || !b.gu || !b.act) {
        st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a %d-token reference batch", n);
        goto done;
    }

    const size_t embd_row = pvk_type_row_bytes(w->token_embd->type, E);
    for (int32_t i = 0; i < n; i++)
        if ((st = quant_dequantize_row(w->token_embd->type,
                                       (const uint8_t *)w->token_embd->data +
                                           (size_t)tokens[i] * embd_row,
                                       b.x + i * E, E)))
            goto done;
    /* phi3small's muP embedding multiplier (1 elsewhere) */
    for (int64_t i = 0; i < n * E; i++) b.x[i] *= hp->embd_scale;
    if (hp->pos_embd) {
        /* learned absolute positions: row pos0 + i added (gpt-neo.md 3) */
        const gguf_tensor *pe = w->position_embd;
        const size_t pe_row = pvk_type_row_bytes(pe->type, E);
        for (int32_t i = 0; i < n; i++) {
            if ((st = quant_dequantize_row(pe->type, (const uint8_t *)pe->data + (size_t)(pos0 + i) * pe_row, b.h, E)))
                goto done;
            for (int64_t d = 0; d < E; d++) b.x[i * E + d] += b.h[d];
        }
    }

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const arch_layer *L = &w->layers[l];
        float *kc = s->k + (size_t)l * (size_t)s->p.n_ctx * (size_t)KV;
        float *vc = s->v + (size_t)l * (size_t)s->p.n_ctx * (size_t)KV;
        for (int32_t i = 0; i < n; i++)
            ref_norm(hp->norm, hp->norm_eps, b.x + i * E, f32(L->attn_norm), f32(L->attn_norm_b),
                     b.h + i * E, E);
        /* qkv rows are [Q | K | V], fused in the file or not */
        if (hp->fused_qkv) st = matmul_t(&b, L->attn_qkv, L->attn_qkv_b, b.h, E, b.qkv, T, n);
        else if (!(st = matmul_t(&b, L->attn_q, L->attn_q_b, b.h, E, b.qkv, T, n)) &&
                 !(st = matmul_t(&b, L->attn_k, L->attn_k_b, b.h, E, b.qkv + Q, T, n)))
            st = matmul_t(&b, L->attn_v, L->attn_v_b, b.h, E, b.qkv + Q + KV, T, n);
        if (st) goto done;
        for (int32_t i = 0; i < n; i++) {
            float *q = b.qkv + i * T, *k = q + Q, *v = k + KV;
            const int64_t pos = pos0 + i;
            ref_rope(q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, pos, hp->rope_base,
                     hp->rope_freq_scale, factors, mscale);
            ref_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, pos, hp->rope_base,
                     hp->rope_freq_scale, factors, mscale);
            for (int64_t d = 0; d < Q; d++) q[d] *= qscale;
            for (int64_t d = 0; d < KV; d++) {
                kc[pos * KV + d] = s->p.kv_f16 ? quant_f16_to_f32(quant_f32_to_f16(k[d])) : k[d];
                vc[pos * KV + d] = s->p.kv_f16 ? quant_f16_to_f32(quant_f32_to_f16(v[d])) : v[d];
            }
        }
        for (int32_t i = 0; i < n && hp->bs_block > 0; i++)
            attention_masked(hp, l, b.qkv + i * T, kc, vc, KV, pos0 + i, b.att + i * Q);
        for (int32_t i = 0; i < n && hp->bs_block <= 0; i++) {
            const int64_t pos = pos0 + i;
            const int32_t window = arch_layer_window(hp, s->p.no_swa, l);
            const int64_t first = window > 0 && pos >= window ? pos - window + 1 : 0;
            ref_attention(b.qkv + i * T, hp->n_head, hp->n_head_kv, hp->head_dim, kc, vc, KV,
                          first, pos, b.att + i * Q);
        }
        if ((st = matmul_t(&b, L->attn_output, L->attn_output_b, b.att, Q, b.o, E, n))) goto done;
        if (hp->parallel_block) {
            /* phi2: attention and MLP both read the same normed input, one residual add */
            for (int64_t i = 0; i < n * E; i++) b.x[i] += b.o[i];
            if ((st = mlp(hp, L, &b, b.h, b.o, n))) goto done;
        } else {
            for (int64_t i = 0; i < n * E; i++) b.x[i] += b.o[i];
            for (int32_t i = 0; i < n; i++)
                ref_norm(hp->norm, hp->norm_eps, b.x + i * E, f32(L->ffn_norm), f32(L->ffn_norm_b),
                         b.h + i * E, E);
            if ((st = mlp(hp, L, &b, b.h, b.o, n))) goto done;
        }
        for (int64_t i = 0; i < n * E; i++) b.x[i] += b.o[i];
    }

    /* memmove: the re-prefill passes the history itself */
    memmove(s->history + pos0, tokens, (size_t)n * sizeof *tokens);
    s->pos += n;
    if (logits) {
        const int32_t first = all_logits ? 0 : n - 1;
        for (int32_t i = first; i < n; i++)
            ref_norm(hp->norm, hp->norm_eps, b.x + i * E, f32(w->output_norm),
                     f32(w->output_norm_b), b.h + i * E, E);
        st = matmul_t(&b, w->output, w->output_b, b.h + first * E, E, logits, hp->n_vocab, n - first);
        /* phi3small divides by its muP width multiplier (1 elsewhere) */
        for (int64_t i = 0; !st && hp->logit_scale != 1.0f && i < (n - first) * (int64_t)hp->n_vocab; i++)
            logits[i] *= hp->logit_scale;
        for (int64_t i = 0; !st && i < n - first; i++)
            for (int32_t k = 0; k < s->m->n_masked; k++) logits[i * hp->n_vocab + s->m->masked[k]] = -FLT_MAX;
    }
done:
    free(b.x);
    free(b.h);
    free(b.qkv);
    free(b.att);
    free(b.o);
    free(b.gu);
    free(b.act);
    return st;
}

phivk_status ref_forward(ref_state *s, const int32_t *tokens, int32_t n, float *logits,
                       bool all_logits) {
    const arch_hparams *hp = &s->m->hp;
    if (n <= 0 || !tokens) return pvk_fail(PHIVK_ERR_INVALID, "ref_forward: no tokens");
    if (n > s->p.n_ctx - s->pos)
        return pvk_fail(PHIVK_ERR_CONTEXT_FULL,
                        "%d tokens do not fit: %d of the %d-token context are in use", n, s->pos,
                        s->p.n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return pvk_fail(PHIVK_ERR_INVALID, "token id %d is out of range (the vocabulary has %d)",
                            tokens[i], hp->n_vocab);
    const arch_rope_table table = arch_rope_factors_choice(hp, s->p.rope_factors, s->pos + n);
    if (table != s->table && s->pos > 0) {
        /* the cached keys were rotated with the other table: recompute them (as HF does) */
        const int32_t n_old = s->pos;
        s->pos = 0;
        s->table = table;
        phivk_status st = run_batch(s, s->history, n_old, NULL, false);
        if (st) return st;
    }
    s->table = table;
    return run_batch(s, tokens, n, logits, all_logits);
}
