/* Sessions: the KV cache, the scratch activations, and the forward pass recorded
 * into one command buffer per chunk of tokens (DESIGN.md "One token, end to end"). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "plan.h"
#include "pvk_fmt.h"
#include "session_kv.h"

struct phivk_session {
    phivk_model *m;
    phivk_session_params p;
    int32_t ctx, batch, logit_rows;
    int32_t pos;
    int32_t *tokens;          /* what the cache holds, for re-prefill on a RoPE table switch */
    arch_rope_table table;    /* the table the cache was computed with */
    atomic_bool cancel;

    plan plan;                /* the table of every buffer below, as allocated */
    pvk_kv *kv;               /* per layer: K and V, [ctx][n_embd_kv] in k_type / v_type */
    pvk_buf own[PLAN_N_SCRATCH]; /* the scratch rows of the table (a row of count 0: none) */
    phivk_session *owner;     /* share_scratch: whose scratch and command buffer these are */
    pvk_buf *buf;             /* own, or the owner's */
    pvk_cmd *cmd;             /* its own, or the owner's */
    int32_t ctx_refused;      /* -c auto: the context the device refused first, 0: none */
    phivk_step_stats step;    /* what the last forward's command buffer cost */

    /* A decode of one token recorded once and replayed (unless PHIVK_REPLAY=0):
     * the position comes from pos_buf, written per token; the recording is replayed
     * while it is still the command buffer's and was made for the same RoPE table
     * and the same attention grid of every layer (which grows with the KV length). */
    bool replay;
    pvk_buf pos_buf;          /* its position, one uint: a range of the ids buffer (plan_pos_offset) */
    uint64_t rec_id;          /* pvk_cmd_recording_id of its recording, 0: none */
    arch_rope_table rec_table;
    uint32_t *rec_grid;       /* per layer: pvk_op_attention_grid it was recorded for */
    bool recording_once;      /* store_kv and attend read the position from pos_buf */
};

phivk_session_params phivk_session_default_params(void) {
    return (phivk_session_params){.batch = PLAN_DEFAULT_BATCH};
}

static pvk_attn attn_desc(const phivk_session *s, int32_t l, uint32_t m, uint32_t pos0) {
    const arch_hparams *hp = &s->m->hp;
    pvk_attn a = session_attn_heads(hp, m);
    int32_t window = arch_layer_window(hp, s->p.no_swa, l);
    a.pos0 = pos0;
    a.window = window > 0 && window < s->ctx ? (uint32_t)window : 0;
    a.scratch = s->buf[PLAN_ATTN].vk ? &s->buf[PLAN_ATTN] : NULL;
    arch_sparse_pattern(hp, l, &a.bs_block, &a.bs_local, &a.bs_stride, &a.bs_step);
    return a;
}

/* The KV cache of s->ctx tokens, the scratch rows of the table as the device laid
 * the cache out (its chunks, attention over them) and the command buffer.
 * free_buffers undoes it, also halfway. */
static phivk_status alloc_buffers(phivk_session *s, bool int8) {
    phivk_model *m = s->m;
    const arch_hparams *hp = &m->hp;
    pvk_dev *dev = m->rt->dev;
    s->batch = s->owner ? s->owner->batch : plan_batch(s->p.batch, s->ctx);
    s->logit_rows = plan_logit_rows(hp, s->batch);
    s->buf = s->owner ? s->owner->own : s->own;
    s->tokens = malloc(sizeof *s->tokens * (size_t)s->ctx);
    s->kv = calloc((size_t)hp->n_layer, sizeof *s->kv);
    s->rec_grid = calloc((size_t)hp->n_layer, sizeof *s->rec_grid);
    if (!s->tokens || !s->kv || !s->rec_grid) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    phivk_status st;
    pvk_type kt = plan_kv_type(s->p.k_type), vt = plan_kv_type(s->p.v_type);
    for (int32_t l = 0; l < hp->n_layer; l++)
        if ((st = pvk_kv_alloc(dev, kt, vt, (uint32_t)hp->n_embd_kv, (uint32_t)s->ctx, &s->kv[l]))) return st;
    const pvk_kv *kv = &s->kv[0];
    plan_shape shape = {
        .hp = hp, .k_type = kt, .v_type = vt, .ctx = s->ctx, .batch = s->batch,
        .kv_chunk = kv->n_chunks > 1 ? kv->chunk_ctx : 0,
        .attn_bytes = session_attn_bytes(m, s->batch, kv), .int8 = int8,
        .shared = s->owner != NULL, .slots = s->p.slots,
    };
    plan_set_layout(&s->plan, &shape);
    if (s->owner) {
        /* Its decode's attention partials go in the owner's buffer. */
        uint64_t have = s->owner->own[PLAN_ATTN].size;
        if (shape.attn_bytes > have)
            return pvk_fail(PHIVK_ERR_INVALID, "a session sharing another's scratch needs %llu bytes of attention "
                            "partials for its cache of %d tokens, the owner has %llu: give it the owner's context "
                            "and cache types", (unsigned long long)shape.attn_bytes, s->ctx, (unsigned long long)have);
        s->cmd = s->owner->cmd;
    } else {
        for (int i = 0; i < PLAN_N_SCRATCH; i++) {
            const plan_row *r = &s->plan.rows[i];
            if (r->count && (st = pvk_buf_create(dev, r->bytes, r->host ? PVK_MEM_HOST : PVK_MEM_DEVICE, &s->own[i])))
                return st;
        }
        if ((st = pvk_cmd_create(dev, &s->cmd))) return st;
    }
    /* The position a replayed decode reads: a range of the (owner's) ids buffer.
     * Sessions sharing it never have recordings live at once (replays). */
    uint64_t at = plan_pos_offset((uint64_t)s->batch);
    s->pos_buf = s->buf[PLAN_IDS];
    s->pos_buf.offset += at;
    s->pos_buf.size = PLAN_POS_BYTES;
    s->pos_buf.map = (char *)s->pos_buf.map + at;
    return PHIVK_OK;
}

static void free_buffers(phivk_session *s) {
    pvk_dev *dev = s->m->rt->dev;
    if (!s->owner) pvk_cmd_destroy(s->cmd);
    s->cmd = NULL;
    for (int32_t l = 0; s->kv && l < s->m->hp.n_layer; l++) pvk_kv_free(dev, &s->kv[l]);
    for (int i = 0; i < PLAN_N_SCRATCH; i++) pvk_buf_destroy(dev, &s->own[i]);
    free(s->kv);
    free(s->tokens);
    free(s->rec_grid);
    s->kv = NULL;
    s->tokens = NULL;
    s->rec_grid = NULL;
    s->rec_id = 0;
}

/* When the device refuses memory, -c auto halves the context to a multiple of this
 * many tokens, and never goes below it. */
#define AUTO_CTX_MIN 256

/* Buffers for s->ctx tokens. With -c auto a refused allocation halves the context
 * and tries again: the plan counts on a budget that other programs can take from,
 * or that a driver does not honour. */
static phivk_status alloc_fitting(phivk_session *s, bool int8) {
    int32_t first = s->ctx;
    phivk_status st;
    while ((st = alloc_buffers(s, int8)) == PHIVK_ERR_DEVICE_MEMORY && s->p.ctx == 0) {
        int32_t next = s->ctx / 2 / AUTO_CTX_MIN * AUTO_CTX_MIN;
        if (next < AUTO_CTX_MIN) break;
        free_buffers(s);
        s->ctx_refused = first;
        s->ctx = next;
    }
    if (st != PHIVK_ERR_DEVICE_MEMORY || s->p.ctx != 0) return st;
    char why[512], kv[32], w[32];
    snprintf(why, sizeof why, "%s", pvk_errmsg());
    pvk_fmt_bytes(kv, s->plan.kv_bytes_per_token * (uint64_t)s->ctx);
    pvk_fmt_bytes(w, s->plan.weight_bytes);
    return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                    "-c auto: the device refused memory for every context from %d down to %d tokens "
                    "(KV cache %s at %d tokens, weights %s): %s", first, s->ctx, kv, s->ctx, w, why);
}

phivk_session *phivk_session_create(phivk_model *m, const phivk_session_params *p) {
    phivk_session_params defaults = phivk_session_default_params();
    if (!p) p = &defaults;
    phivk_session *s = calloc(1, sizeof *s);
    if (!s) {
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    s->m = m;
    s->p = *p;
    const char *replay = getenv("PHIVK_REPLAY");
    s->replay = !replay || strcmp(replay, "0") != 0; /* on unless PHIVK_REPLAY=0 */
    if (p->share_scratch) {
        s->owner = p->share_scratch->owner ? p->share_scratch->owner : p->share_scratch;
        s->p.share_scratch = s->owner;
        if (s->owner->m != m) {
            pvk_fail(PHIVK_ERR_INVALID, "share_scratch: a session of another model");
            goto fail;
        }
        if (p->ctx > s->owner->ctx) {
            pvk_fail(PHIVK_ERR_INVALID, "share_scratch: a context of %d tokens is longer than the owner's %d",
                     (int)p->ctx, (int)s->owner->ctx);
            goto fail;
        }
        if (!p->ctx) s->p.ctx = s->owner->ctx;
        s->p.batch = s->owner->batch;
    }
    bool int8 = model_reads_q8(m);
    if (session_plan(m, &s->p, int8, &s->plan) != PHIVK_OK) goto fail;
    s->ctx = s->plan.ctx;
    if (alloc_fitting(s, int8) != PHIVK_OK) goto fail;
    s->table = arch_rope_factors_choice(&m->hp, p->rope_factors, 1);
    return s;
fail:
    phivk_session_free(s);
    return NULL;
}

void phivk_session_free(phivk_session *s) {
    if (!s) return;
    free_buffers(s);
    free(s);
}

int32_t phivk_session_ctx(const phivk_session *s) { return s->ctx; }
int32_t phivk_session_pos(const phivk_session *s) { return s->pos; }

char *phivk_session_plan_text(const phivk_session *s) {
    const plan *p = &s->plan;
    uint64_t budget = pvk_dev_budget(s->m->rt->dev);
    char w[32], kv[32], sc[32], left[32], why[96];
    pvk_fmt_bytes(w, p->weight_bytes);
    pvk_fmt_bytes(kv, p->kv_bytes);
    pvk_fmt_bytes(sc, p->scratch_bytes);
    pvk_fmt_bytes(left, budget > p->total ? budget - p->total : 0);
    plan_ctx_text(p, &s->m->hp, why, sizeof why);
    char *out = malloc(1024), refused[128] = "", slots[96] = "";
    if (s->ctx_refused)
        snprintf(refused, sizeof refused, " (-c auto: the device refused the cache of %d tokens)", s->ctx_refused);
    if (p->slots > 1) snprintf(slots, sizeof slots, " (x %d slots planned)", p->slots);
    if (out && s->owner)
        snprintf(out, 1024, "memory: KV cache %s (%d tokens; K %s, V %s), sharing another session's weights and "
                 "scratch; %s left on %s", kv, s->ctx, pvk_type_get(plan_kv_type(s->p.k_type))->name,
                 pvk_type_get(plan_kv_type(s->p.v_type))->name, left, pvk_dev_caps(s->m->rt->dev)->name);
    else if (out)
        snprintf(out, 1024, "memory: weights %s + KV cache %s%s (%d tokens, %s; K %s, V %s) + scratch %s; "
                 "%s left on %s%s", w, kv, slots, s->ctx, why, pvk_type_get(plan_kv_type(s->p.k_type))->name,
                 pvk_type_get(plan_kv_type(s->p.v_type))->name, sc, left, pvk_dev_caps(s->m->rt->dev)->name,
                 refused);
    return out;
}

const plan *session_plan_of(const phivk_session *s) { return &s->plan; }

uint64_t phivk_session_kv_bytes_per_token(const phivk_session *s) { return s->plan.kv_bytes_per_token; }

/* ------------------------------------------------------------- forward pass */

/* Which forms of an activation the weights t[0..n) read at m rows: sets *f32 and/or
 * *q8 (int8, pvk_ops_reads_q8). */
static void reads(const phivk_session *s, const pvk_tensor *t, uint32_t n, uint32_t m, bool *f32, bool *q8) {
    for (uint32_t i = 0; i < n; i++) {
        if (pvk_ops_reads_q8(s->m->rt->ops, t[i].type, m)) *q8 = true;
        else *f32 = true;
    }
}

/* The forms an activation is written in for the projections a and b (b may be
 * NULL): f32 and/or int8, as they read it. */
static pvk_input input_for(const phivk_session *s, const pvk_buf *f32, const pvk_buf *q8, uint32_t m,
                           const gpu_proj *a, const gpu_proj *b) {
    bool wf = false, wq = false;
    reads(s, a->part, a->n_parts, m, &wf, &wq);
    if (b) reads(s, b->part, b->n_parts, m, &wf, &wq);
    return (pvk_input){.f32 = wf ? f32 : NULL, .q8 = wq ? q8 : NULL};
}

/* The model's norm of x into out (f32 and/or int8, see input_for). */
static void norm(phivk_session *s, const pvk_buf *x, const pvk_buf *w, const pvk_buf *b,
                 const pvk_input *out, uint32_t rows, phivk_status *st) {
    const arch_hparams *hp = &s->m->hp;
    pvk_ops *o = s->m->rt->ops;
    uint32_t n = (uint32_t)hp->n_embd;
    if (*st) return;
    bool rms = hp->norm == ARCH_NORM_RMS;
    if (out->q8)
        *st = rms ? pvk_op_rmsnorm_q8(o, s->cmd, x, w, out->f32, out->q8, rows, n, hp->norm_eps)
                  : pvk_op_layernorm_q8(o, s->cmd, x, w, model_opt(b), out->f32, out->q8, rows, n,
                                        hp->norm_eps);
    else
        *st = rms ? pvk_op_rmsnorm(o, s->cmd, x, w, out->f32, rows, n, hp->norm_eps)
                  : pvk_op_layernorm(o, s->cmd, x, w, model_opt(b), out->f32, rows, n, hp->norm_eps);
}

/* Whether the projection p (every part) makes its int8 input itself: at decode
 * (m 1) only, where recomputing the blocks in every workgroup costs less than a
 * dispatch; a prompt's rows would be encoded once per workgroup row instead of once. */
static bool fuses(const phivk_session *s, pvk_fusion what, const gpu_proj *p, uint32_t m) {
    if (m != 1) return false;
    for (uint32_t i = 0; i < p->n_parts; i++)
        if (!pvk_ops_fuses(s->m->rt->ops, what, p->part[i].type, m)) return false;
    return p->n_parts > 0;
}

/* The model's norm of x as the projection p's input, into *h: left to p's prologue
 * when only p reads the norm, and as int8 that it can make itself (*n describes the
 * norm then; it must live until p is recorded); else recorded here (norm). */
static void norm_for(phivk_session *s, const pvk_buf *x, const pvk_buf *w, const pvk_buf *b, const gpu_proj *p,
                     pvk_input *h, struct pvk_norm_in *n, uint32_t m, phivk_status *st) {
    const arch_hparams *hp = &s->m->hp;
    if (!h->f32 && h->q8 && fuses(s, PVK_FUSION_ALL, p, m)) {
        *n = (struct pvk_norm_in){hp->norm == ARCH_NORM_RMS ? PVK_NORM_RMS : PVK_NORM_LAYER, w,
                                  b ? model_opt(b) : NULL, hp->norm_eps};
        *h = (pvk_input){.pre = x, .norm = n};
    } else {
        norm(s, x, w, b, h, m, st);
    }
}

/* y (+)= x . proj^T (+ bias): one matmul, or one per part into its columns. */
static void project(phivk_session *s, const gpu_proj *p, const pvk_input *x, const pvk_buf *y,
                    uint32_t m, bool accumulate, phivk_status *st) {
    pvk_ops *o = s->m->rt->ops;
    const pvk_buf *bias = model_opt(&p->bias);
    uint32_t stride = 0, col = 0;
    for (uint32_t i = 0; i < p->n_parts; i++) stride += (uint32_t)p->part[i].rows;
    for (uint32_t i = 0; i < p->n_parts && !*st; col += (uint32_t)p->part[i].rows, i++)
        *st = pvk_op_matmul_in(o, s->cmd, &p->part[i], bias, x, y, m, accumulate, stride, col);
}

/* The rows of one forward pass and whose caches they extend: m tokens of one
 * session (a prompt chunk at its position; n 1), or one token of each of m
 * sessions (a batch step; n m). s, the first, records into its scratch, which
 * all of them share. */
typedef struct step {
    phivk_session *const *who;
    uint32_t n, m;
} step;

/* Row i of a scratch buffer of rows of row_bytes, bound as a buffer of its own. */
static pvk_buf row_of(const pvk_buf *b, uint32_t i, uint64_t row_bytes) {
    pvk_buf r = *b;
    r.offset += i * row_bytes;
    r.size = row_bytes;
    r.map = NULL;
    return r;
}

/* Part i of the step: its session's rows of q|k|v, its output rows and its m. */
static phivk_session *part(const phivk_session *s, const step *t, uint32_t i, pvk_buf *qkv, pvk_buf *att,
                           uint32_t *m) {
    const arch_hparams *hp = &s->m->hp;
    *qkv = s->buf[PLAN_QKV];
    *att = s->buf[PLAN_ATT];
    *m = t->n == 1 ? t->m : 1;
    if (t->n > 1) {
        *qkv = row_of(qkv, i, 4ull * (uint64_t)(hp->n_embd_q + 2 * hp->n_embd_kv));
        *att = row_of(att, i, 4ull * (uint64_t)hp->n_embd_q);
    }
    return t->who[i];
}

/* RoPE is applied by the cache write: K as it is stored, q in place; with each
 * session's factor table and position. */
static void store_kv(phivk_session *s, const step *t, uint32_t i, int32_t l, phivk_status *st) {
    const arch_hparams *hp = &s->m->hp;
    pvk_buf qkv, att;
    uint32_t m;
    phivk_session *c = part(s, t, i, &qkv, &att, &m);
    const pvk_buf *factors = NULL;
    if (c->table == ARCH_ROPE_TABLE_LONG) factors = &s->m->rope_long;
    if (c->table == ARCH_ROPE_TABLE_SHORT) factors = &s->m->rope_short;
    pvk_rope r = {
        .q_off = 0,
        .n_q_heads = (uint32_t)hp->n_head,
        .head_dim = (uint32_t)hp->head_dim,
        .n_rot = (uint32_t)hp->n_rot,
        .neox = hp->rope_neox,
        .freq_base = hp->rope_base,
        .attn_factor = c->table == ARCH_ROPE_TABLE_SHORT ? hp->rope_attn_factor_short : hp->rope_attn_factor,
        .factors = factors,
    };
    uint32_t stride = (uint32_t)(hp->n_embd_q + 2 * hp->n_embd_kv);
    if (!*st && s->recording_once)
        *st = pvk_op_kv_store_at(s->m->rt->ops, s->cmd, &qkv, stride, (uint32_t)hp->n_embd_q,
                                 (uint32_t)(hp->n_embd_q + hp->n_embd_kv), &c->kv[l], &c->pos_buf, (uint32_t)c->pos,
                                 hp->n_rot ? &r : NULL);
    else if (!*st)
        *st = pvk_op_kv_store(s->m->rt->ops, s->cmd, &qkv, stride, (uint32_t)hp->n_embd_q,
                              (uint32_t)(hp->n_embd_q + hp->n_embd_kv), &c->kv[l], m, (uint32_t)c->pos,
                              hp->n_rot ? &r : NULL);
}

/* Attention of part i over its session's cache (its window), its split-K
 * partials at *scratch_at in the scratch's partials buffer: the parts of a batch
 * step run side by side, each in its own range of it, starting over where the
 * buffer is used up. */
static void attend(phivk_session *s, const step *t, uint32_t i, int32_t l, uint64_t *scratch_at, phivk_status *st) {
    pvk_buf qkv, att;
    uint32_t m;
    phivk_session *c = part(s, t, i, &qkv, &att, &m);
    pvk_attn a = attn_desc(c, l, m, (uint32_t)c->pos);
    if (s->recording_once) a.pos = &c->pos_buf;
    pvk_buf range;
    if (t->n > 1 && a.scratch) {
        uint64_t align = pvk_dev_caps(s->m->rt->dev)->storage_align, have = s->buf[PLAN_ATTN].size;
        uint64_t need = pvk_op_attention_scratch_bytes_kv(s->m->rt->ops, &a, &c->kv[l]);
        need = (need + align - 1) / align * align;
        if (*scratch_at + need > have) *scratch_at = 0; /* the recorder orders the reuse (WAW) */
        range = row_of(&s->buf[PLAN_ATTN], 0, need < have ? need : have);
        range.offset += *scratch_at;
        *scratch_at += need;
        a.scratch = need ? &range : NULL;
    }
    if (!*st) *st = pvk_op_attention(s->m->rt->ops, s->cmd, &qkv, &a, &c->kv[l], &att);
}

/* Records one layer for the step's rows (x in, x out). */
static void record_layer(phivk_session *s, int32_t l, const step *t, phivk_status *st) {
    const arch_hparams *hp = &s->m->hp;
    const gpu_layer *g = &s->m->layers[l];
    pvk_ops *o = s->m->rt->ops;
    pvk_cmd *c = s->cmd;
    uint32_t m = t->m;

    pvk_input h = input_for(s, &s->buf[PLAN_H], &s->buf[PLAN_HQ], m, &g->qkv, hp->parallel_block ? &g->up : NULL);
    struct pvk_norm_in hn;
    /* The parallel block's up reads h after out has added to x: h is stored. */
    if (hp->parallel_block) norm(s, &s->buf[PLAN_X], &g->attn_norm, &g->attn_norm_b, &h, m, st);
    else norm_for(s, &s->buf[PLAN_X], &g->attn_norm, &g->attn_norm_b, &g->qkv, &h, &hn, m, st);
    project(s, &g->qkv, &h, &s->buf[PLAN_QKV], m, false, st);
    for (uint32_t i = 0; i < t->n; i++) store_kv(s, t, i, l, st);
    uint64_t scratch_at = 0;
    for (uint32_t i = 0; i < t->n; i++) attend(s, t, i, l, &scratch_at, st);
    pvk_input att = input_for(s, &s->buf[PLAN_ATT], &s->buf[PLAN_AQ], m, &g->out, NULL);
    if (att.q8 && fuses(s, PVK_FUSION_ACT, &g->out, m)) {
        att = (pvk_input){.pre = &s->buf[PLAN_ATT], .act = PVK_ACT_COPY};   /* out makes its int8 itself */
    } else if (att.q8) {
        att.f32 = &s->buf[PLAN_ATT];
        if (!*st) *st = pvk_op_act_q8(o, c, PVK_ACT_COPY, &s->buf[PLAN_ATT], NULL, &s->buf[PLAN_AQ], m, (uint32_t)hp->n_embd_q);
    }

    if (hp->parallel_block) {
        /* x + attn(h) + mlp(h): both branches read the same h and add into x. */
        project(s, &g->out, &att, &s->buf[PLAN_X], m, true, st);
        project(s, &g->up, &h, &s->buf[PLAN_FF], m, false, st);
    } else {
        project(s, &g->out, &att, &s->buf[PLAN_X], m, true, st);
        pvk_input h2 = input_for(s, &s->buf[PLAN_H], &s->buf[PLAN_HQ], m, &g->up, NULL);
        struct pvk_norm_in h2n;
        norm_for(s, &s->buf[PLAN_X], &g->ffn_norm, &g->ffn_norm_b, &g->up, &h2, &h2n, m, st);
        project(s, &g->up, &h2, &s->buf[PLAN_FF], m, false, st);
    }
    /* The activation of up's output, as down reads it (the recorder orders the
     * parallel block's out projection, which read aq, before aq is rewritten). */
    uint32_t n_ff = (uint32_t)hp->n_ff;
    pvk_input act = input_for(s, &s->buf[PLAN_ACT], &s->buf[PLAN_AQ], m, &g->down, NULL);
    pvk_act form = hp->gelu ? PVK_ACT_GELU : PVK_ACT_SWIGLU;
    /* Where it can, down applies the activation itself (one dispatch fewer; GEGELU has
     * no such prologue). */
    if (act.q8 && !hp->gegelu && fuses(s, PVK_FUSION_ACT, &g->down, m))
        act = (pvk_input){.pre = &s->buf[PLAN_FF], .act = form};
    else if (!*st) {
        if (hp->gegelu && act.q8) *st = pvk_op_gegelu_q8(o, c, &s->buf[PLAN_FF], act.f32, act.q8, m, n_ff, hp->gegelu_limit);
        else if (hp->gegelu) *st = pvk_op_gegelu(o, c, &s->buf[PLAN_FF], &s->buf[PLAN_ACT], m, n_ff, hp->gegelu_limit);
        else if (act.q8) *st = pvk_op_act_q8(o, c, form, &s->buf[PLAN_FF], act.f32, act.q8, m, n_ff);
        else if (hp->gelu) *st = pvk_op_gelu(o, c, &s->buf[PLAN_FF], &s->buf[PLAN_ACT], m * n_ff);
        else *st = pvk_op_swiglu(o, c, &s->buf[PLAN_FF], &s->buf[PLAN_ACT], m, n_ff);
    }
    project(s, &g->down, &act, &s->buf[PLAN_X], m, true, st);
}

/* Whether the step is one token of one session that is recorded once and
 * replayed: not PHIVK_REPLAY=0, and each layer's cache one chunk (a longer cache's
 * chunk changes with the position; it records every token). */
static bool records_once(const phivk_session *s, const step *t) {
    if (!s->replay || t->n != 1 || t->m != 1) return false;
    for (int32_t l = 0; l < s->m->hp.n_layer; l++)
        if (s->kv[l].n_chunks > 1) return false;
    return true;
}

/* The attention grid layer l records at s's position. */
static uint32_t grid_of(const phivk_session *s, int32_t l) {
    pvk_attn a = attn_desc(s, l, 1, (uint32_t)s->pos);
    return pvk_op_attention_grid(s->m->rt->ops, &a, &s->kv[l]);
}

/* Whether s's recording is still in its command buffer and fits this token: the
 * same RoPE table, and every layer's attention grid the same (it grows with the
 * KV length, up to the window or the device's fill). */
static bool replays(const phivk_session *s) {
    if (!s->rec_id || s->rec_id != pvk_cmd_recording_id(s->cmd) || s->rec_table != s->table) return false;
    for (int32_t l = 0; l < s->m->hp.n_layer; l++)
        if (grid_of(s, l) != s->rec_grid[l]) return false;
    return true;
}

static void remember_recording(phivk_session *s) {
    s->rec_id = pvk_cmd_recording_id(s->cmd);
    s->rec_table = s->table;
    for (int32_t l = 0; l < s->m->hp.n_layer; l++) s->rec_grid[l] = grid_of(s, l);
}

/* Runs the step's tokens (ids, one per row) in one command buffer and appends
 * them to their sessions' caches. out (may be NULL) receives the last row's
 * logits, or every row's when all (m <= logit_rows). */
static phivk_status forward_step(const step *t, const int32_t *ids, float *out, bool all) {
    phivk_session *s = t->who[0];
    const phivk_model *mod = s->m;
    const arch_hparams *hp = &mod->hp;
    pvk_ops *o = mod->rt->ops;
    pvk_cmd *c = s->cmd;
    uint32_t m = t->m;
    memcpy(s->buf[PLAN_IDS].map, ids, sizeof *ids * m);
    uint32_t rows = all ? m : 1;

    phivk_status st;
    s->recording_once = records_once(s, t);
    if (s->recording_once) {
        memcpy(s->pos_buf.map, &(uint32_t){(uint32_t)s->pos}, sizeof(uint32_t));
        if (replays(s)) {
            st = pvk_cmd_replay(c);
            goto ran;
        }
    }
    st = pvk_cmd_begin(c);
    if (!st) st = pvk_op_get_rows_scaled(o, c, &mod->embd, &s->buf[PLAN_IDS], &s->buf[PLAN_X], m, hp->embd_scale);
    if (hp->pos_embd) {
        /* learned absolute positions: rows pos.. of each session added to its token rows */
        for (uint32_t i = 0; i < t->n && !st; i++) {
            pvk_buf x = t->n == 1 ? s->buf[PLAN_X] : row_of(&s->buf[PLAN_X], i, 4ull * (uint64_t)hp->n_embd);
            st = s->recording_once ? pvk_op_add_rows_at(o, c, &mod->pos_embd, &s->pos_buf, &x)
                                   : pvk_op_add_rows(o, c, &mod->pos_embd, (uint32_t)t->who[i]->pos, &x, t->n == 1 ? m : 1);
        }
        }
    for (int32_t l = 0; l < hp->n_layer && !st; l++) record_layer(s, l, t, &st);
    if (st) return st;

    const pvk_buf *final_in = &s->buf[PLAN_X];
    if (!all && m > 1) {
        /* Only the last position's logits: norm and project that row alone (of one
         * token, x is that row). */
        uint64_t row = 4ull * hp->n_embd;
        pvk_cmd_barrier(c, PVK_COMPUTE_TO_TRANSFER);
        pvk_cmd_copy(c, &s->buf[PLAN_X], row * (m - 1), &s->buf[PLAN_LAST], 0, row);
        pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE);
        final_in = &s->buf[PLAN_LAST];
    }
    bool wf = false, wq = false;
    if (hp->tied_output) reads(s, &mod->embd, 1, rows, &wf, &wq);
    else reads(s, mod->output.part, mod->output.n_parts, rows, &wf, &wq);
    pvk_input normed = {.f32 = !wf ? NULL : all ? &s->buf[PLAN_H] : &s->buf[PLAN_LAST_N], .q8 = wq ? &s->buf[PLAN_HQ] : NULL};
    struct pvk_norm_in fn;
    if (hp->tied_output) norm(s, final_in, &mod->output_norm, &mod->output_norm_b, &normed, rows, &st);
    else norm_for(s, final_in, &mod->output_norm, &mod->output_norm_b, &mod->output, &normed, &fn, rows, &st);
    if (!hp->tied_output) project(s, &mod->output, &normed, &s->buf[PLAN_LOGITS], rows, false, &st);
    else if (!st)
        st = pvk_op_matmul_in(o, c, &mod->embd, model_opt(&mod->output.bias), &normed, &s->buf[PLAN_LOGITS], rows, false,
                              (uint32_t)mod->embd.rows, 0);
    if (!st) st = pvk_cmd_submit(c); /* which orders the logits for the host */
    if (!st && s->recording_once) remember_recording(s);
ran:
    s->recording_once = false;
    if (st) return st;
    pvk_cmd_stats cs = pvk_cmd_last_stats(c);
    s->step = (phivk_step_stats){(int32_t)m, cs.dispatches, cs.barriers, cs.host_s, cs.wait_s};
    for (uint32_t i = 0; i < t->n; i++) {
        phivk_session *w = t->who[i];
        uint32_t k = t->n == 1 ? m : 1;
        memmove(w->tokens + w->pos, ids + i, sizeof *ids * k); /* ids may be s->tokens (re-prefill) */
        w->pos += (int32_t)k;
    }
    if (out) memcpy(out, s->buf[PLAN_LOGITS].map, sizeof(float) * rows * (size_t)hp->n_vocab);
    for (uint32_t r = 0; out && r < rows; r++) /* Phi-3-small's dummy ids (arch_masked_ids) */
        for (int32_t i = 0; i < mod->n_masked; i++) out[(size_t)r * hp->n_vocab + mod->masked_ids[i]] = -FLT_MAX;
    return PHIVK_OK;
}

/* Runs m tokens at s->pos (see forward_step). */
static phivk_status forward(phivk_session *s, const int32_t *ids, uint32_t m, float *out, bool all) {
    step t = {&s, 1, m};
    return forward_step(&t, ids, out, all);
}

/* Runs n tokens in chunks, reporting prefill progress. */
static phivk_status run_chunks(phivk_session *s, const int32_t *ids, int32_t n, float *logits,
                             bool all, const char *stage) {
    int32_t chunk = all ? s->logit_rows : s->batch;
    bool report = s->p.progress && n > chunk;
    if (report) s->p.progress(s->p.progress_user, stage, 0, (uint64_t)n); /* a new bar starts */
    for (int32_t done = 0; done < n;) {
        if (atomic_exchange(&s->cancel, false))
            return pvk_fail(PHIVK_ERR_CANCELLED, "cancelled after %d of %d tokens", done, n);
        int32_t m = n - done < chunk ? n - done : chunk;
        bool last = done + m == n;
        float *out = NULL;
        if (logits && all) out = logits + (size_t)done * s->m->hp.n_vocab;
        else if (logits && last) out = logits;
        phivk_status st = forward(s, ids + done, (uint32_t)m, out, all);
        if (st) return st;
        done += m;
        if (report) s->p.progress(s->p.progress_user, stage, (uint64_t)done, (uint64_t)n);
    }
    return PHIVK_OK;
}

/* LongRoPE: the table follows the sequence length; a switch before n more tokens
 * recomputes the cache with the new table (phi-spec "choices" 1). */
static phivk_status rope_switch(phivk_session *s, int32_t n) {
    arch_rope_table want = arch_rope_factors_choice(&s->m->hp, s->p.rope_factors, (int64_t)s->pos + n);
    if (want == s->table) return PHIVK_OK;
    int32_t keep = s->pos;
    s->table = want;
    s->pos = 0;
    phivk_status st = keep ? run_chunks(s, s->tokens, keep, NULL, false, "re-prefill (RoPE switch)") : PHIVK_OK;
    if (st) s->pos = 0;
    return st;
}

phivk_status phivk_decode(phivk_session *s, const int32_t *tokens, int32_t n, float *logits,
                          bool all_logits) {
    const arch_hparams *hp = &s->m->hp;
    if (n <= 0 || !tokens) return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode: no tokens");
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return pvk_fail(PHIVK_ERR_INVALID, "token id %d is outside the vocabulary (0..%d)",
                                          tokens[i], hp->n_vocab - 1);
    if (n > s->ctx - s->pos)
        return pvk_fail(PHIVK_ERR_CONTEXT_FULL,
                                      "%d more tokens do not fit: %d of the context's %d are used",
                                      n, s->pos, s->ctx);
    phivk_status st = rope_switch(s, n);
    return st ? st : run_chunks(s, tokens, n, logits, all_logits, "prefill");
}

/* The scratch s runs in: its own or its owner's. */
static const phivk_session *scratch_of(const phivk_session *s) { return s->owner ? s->owner : s; }

/* PHIVK_OK when sessions[0..n) and tokens make one batch step; else why not
 * (nothing has run yet). */
static phivk_status check_batch(phivk_session *const *sessions, const int32_t *tokens, int32_t n) {
    if (n <= 0 || !sessions || !tokens) return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode_batch: no sessions");
    for (int32_t i = 0; i < n; i++)
        if (!sessions[i]) return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode_batch: session %d is NULL", i);
    const phivk_session *s0 = sessions[0];
    const arch_hparams *hp = &s0->m->hp;
    if (n > s0->batch || n > s0->logit_rows)
        return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode_batch: %d sessions, but their scratch holds %d rows "
                        "(the owner's batch)", n, s0->batch < s0->logit_rows ? s0->batch : s0->logit_rows);
    for (int32_t i = 0; i < n; i++) {
        const phivk_session *s = sessions[i];
        if (scratch_of(s) != scratch_of(s0))
            return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode_batch: sessions 0 and %d do not share one scratch: "
                            "create them with share_scratch set to one owner", i);
        for (int32_t j = 0; j < i; j++)
            if (sessions[j] == s)
                return pvk_fail(PHIVK_ERR_INVALID, "phivk_decode_batch: sessions %d and %d are the same", j, i);
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return pvk_fail(PHIVK_ERR_INVALID, "token id %d (session %d) is outside the vocabulary (0..%d)",
                            tokens[i], i, hp->n_vocab - 1);
        if (s->pos >= s->ctx)
            return pvk_fail(PHIVK_ERR_CONTEXT_FULL, "session %d of %d is full: its context holds %d tokens", i, n,
                            s->ctx);
    }
    /* Each row's cache write and attention bind its rows of q|k|v and of the
     * output as buffers of their own. */
    uint64_t align = pvk_dev_caps(s0->m->rt->dev)->storage_align;
    uint64_t qkv = 4ull * (uint64_t)(hp->n_embd_q + 2 * hp->n_embd_kv), att = 4ull * (uint64_t)hp->n_embd_q;
    uint64_t x = hp->pos_embd ? 4ull * (uint64_t)hp->n_embd : 0;   /* learned positions: per row too */
    if (n > 1 && (qkv % align || att % align || x % align))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "phivk_decode_batch: rows of %llu, %llu and %llu bytes are not "
                        "all aligned to the device's %llu-byte storage offsets: decode the sessions one by one",
                        (unsigned long long)qkv, (unsigned long long)att, (unsigned long long)x,
                        (unsigned long long)align);
    int32_t cancelled = -1;
    for (int32_t i = 0; i < n; i++)
        if (atomic_exchange(&sessions[i]->cancel, false) && cancelled < 0) cancelled = i;
    if (cancelled >= 0)
        return pvk_fail(PHIVK_ERR_CANCELLED, "session %d of %d was cancelled: no session advanced", cancelled, n);
    return PHIVK_OK;
}

phivk_status phivk_decode_batch(phivk_session *const *sessions, const int32_t *tokens, int32_t n, float *logits) {
    phivk_status st = check_batch(sessions, tokens, n);
    for (int32_t i = 0; i < n && !st; i++) st = rope_switch(sessions[i], 1);
    if (st) return st;
    step t = {sessions, (uint32_t)n, (uint32_t)n};
    return forward_step(&t, tokens, logits, true);
}

phivk_status phivk_session_truncate(phivk_session *s, int32_t pos) {
    if (pos < 0 || pos > s->pos)
        return pvk_fail(PHIVK_ERR_INVALID, "cannot truncate to %d: the cache holds %d tokens",
                                      pos, s->pos);
    s->pos = pos;
    return PHIVK_OK;
}

void phivk_cancel(phivk_session *s) { atomic_store(&s->cancel, true); }

phivk_step_stats phivk_session_last_step(const phivk_session *s) { return s->step; }

/* ------------------------------------------- cache access (session_kv.h) */

const pvk_kv *session_kv_layer(const phivk_session *s, int32_t layer) {
    return layer >= 0 && layer < s->m->hp.n_layer ? &s->kv[layer] : NULL;
}

phivk_status session_seek(phivk_session *s, const int32_t *tokens, int32_t pos) {
    if (pos < 0 || pos > s->ctx)
        return pvk_fail(PHIVK_ERR_INVALID, "cannot seek to %d in a context of %d", pos, s->ctx);
    memcpy(s->tokens, tokens, sizeof *tokens * (size_t)pos);
    s->pos = pos;
    s->table = arch_rope_factors_choice(&s->m->hp, s->p.rope_factors, pos ? pos : 1);
    return PHIVK_OK;
}

uint64_t session_recordings(const phivk_session *s) { return pvk_cmd_recording_id(s->cmd); }
