#include "plan.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "pvk_fmt.h"
#include "pvk_ops.h"

/* The host-visible logits buffer holds at most this many bytes of rows; eval's
 * all-positions mode runs in chunks of that many tokens. */
#define LOGITS_BUDGET (32u << 20)

int32_t plan_batch(int32_t asked, int32_t ctx) {
    int32_t b = asked > 0 ? asked : PLAN_DEFAULT_BATCH;
    return b < ctx ? b : ctx;
}

int32_t plan_logit_rows(const arch_hparams *hp, int32_t batch) {
    int32_t rows = (int32_t)(LOGITS_BUDGET / (4ull * hp->n_vocab));
    if (rows < 1) rows = 1;
    return rows < batch ? rows : batch;
}

/* The cache types are pvk_kv_types, in phivk_kv_type order (shaders/kernels.py reads
 * them from phivk.h): their names are the tensor types'. */
static_assert(PLAN_KV_TYPE_COUNT == PVK_KV_TYPE_COUNT, "the kernels read every phivk_kv_type");

pvk_type plan_kv_type(phivk_kv_type t) { return (unsigned)t < PLAN_KV_TYPE_COUNT ? pvk_kv_types[t] : PVK_F16; }

const char *phivk_kv_type_name(phivk_kv_type t) {
    return (unsigned)t < PLAN_KV_TYPE_COUNT ? pvk_type_get(pvk_kv_types[t])->name : NULL;
}

bool phivk_kv_type_parse(const char *name, phivk_kv_type *out) {
    for (int t = 0; t < PLAN_KV_TYPE_COUNT; t++)
        if (!strcmp(name, phivk_kv_type_name((phivk_kv_type)t))) {
            *out = (phivk_kv_type)t;
            return true;
        }
    return false;
}

/* One layer's K or V of `rows` rows as pvk_kv_alloc sizes a buffer of them; 0 on
 * overflow (absurd hyperparameters in a file `phivk info` describes). */
static uint64_t kv_buf_bytes(pvk_type t, int64_t width, int64_t rows) {
    if (width <= 0 || rows <= 0 || width > UINT32_MAX || rows > UINT32_MAX) return 0;
    uint64_t row = pvk_type_row_bytes(t, width);
    if (row > (UINT64_MAX - 7) / (uint64_t)rows) return 0;
    return pvk_kv_bytes(t, (uint32_t)width, (uint32_t)rows);
}

uint64_t plan_kv_bytes(int64_t n_layer, int64_t k_width, int64_t v_width, pvk_type k_type,
                       pvk_type v_type, int64_t ctx) {
    uint64_t k = kv_buf_bytes(k_type, k_width, ctx), v = kv_buf_bytes(v_type, v_width, ctx);
    if (!k || !v || n_layer <= 0 || k > UINT64_MAX - v || k + v > UINT64_MAX / (uint64_t)n_layer) return 0;
    return (k + v) * (uint64_t)n_layer;
}

uint64_t plan_kv_bytes_per_token(const arch_hparams *hp, pvk_type k_type, pvk_type v_type) {
    uint64_t per_layer = pvk_type_row_bytes(k_type, hp->n_embd_kv) + pvk_type_row_bytes(v_type, hp->n_embd_kv);
    return per_layer * (uint64_t)hp->n_layer;
}

void plan_layout(const plan_shape *s, plan_row rows[PLAN_N_BUFS]) {
    const arch_hparams *hp = s->hp;
    uint64_t b = (uint64_t)s->batch, f = 4; /* f32 activations */
    uint64_t qkv = (uint64_t)hp->n_embd_q + 2ull * hp->n_embd_kv;
    uint64_t ff = (uint64_t)hp->n_ff * (hp->gelu ? 1 : 2);
    uint32_t wide = (uint32_t)(hp->n_ff > hp->n_embd_q ? hp->n_ff : hp->n_embd_q);
    uint64_t n_int8 = s->int8 && !s->shared ? 1 : 0, one = s->shared ? 0 : 1;
    rows[PLAN_IDS] = (plan_row){"token ids", true, one, plan_pos_offset(b) + PLAN_POS_BYTES};
    rows[PLAN_X] = (plan_row){"residual", false, one, f * b * hp->n_embd};
    rows[PLAN_H] = (plan_row){"normed", false, one, f * b * hp->n_embd};
    rows[PLAN_QKV] = (plan_row){"q|k|v", false, one, f * b * qkv};
    rows[PLAN_ATT] = (plan_row){"attention out", false, one, f * b * hp->n_embd_q};
    rows[PLAN_FF] = (plan_row){"mlp in", false, one, f * b * ff};
    rows[PLAN_ACT] = (plan_row){"mlp act", false, one, f * b * hp->n_ff};
    rows[PLAN_LAST] = (plan_row){"last row", false, one, f * hp->n_embd};
    rows[PLAN_LAST_N] = (plan_row){"last row normed", false, one, f * hp->n_embd};
    rows[PLAN_LOGITS] = (plan_row){"logits", true, one,
                                   f * (uint64_t)plan_logit_rows(hp, s->batch) * hp->n_vocab};
    rows[PLAN_ATTN] = (plan_row){"attention partials", false, s->attn_bytes ? one : 0, s->attn_bytes};
    rows[PLAN_HQ] = (plan_row){"normed int8", false, n_int8,
                               pvk_q8_bytes((uint32_t)b, (uint32_t)hp->n_embd)};
    rows[PLAN_AQ] = (plan_row){"activation int8", false, n_int8, pvk_q8_bytes((uint32_t)b, wide)};

    /* The cache as pvk_kv_alloc splits it: full chunks, then a shorter last one. */
    uint64_t ctx = (uint64_t)s->ctx, chunk = s->kv_chunk && s->kv_chunk < ctx ? s->kv_chunk : ctx;
    uint64_t full = ctx / chunk, rest = ctx % chunk, layers = (uint64_t)hp->n_layer;
    rows[PLAN_K] = (plan_row){"K cache", false, layers * full, kv_buf_bytes(s->k_type, hp->n_embd_kv, (int64_t)chunk)};
    rows[PLAN_V] = (plan_row){"V cache", false, layers * full, kv_buf_bytes(s->v_type, hp->n_embd_kv, (int64_t)chunk)};
    rows[PLAN_K_LAST] = (plan_row){"K cache, last chunk", false, rest ? layers : 0,
                                   kv_buf_bytes(s->k_type, hp->n_embd_kv, (int64_t)rest)};
    rows[PLAN_V_LAST] = (plan_row){"V cache, last chunk", false, rest ? layers : 0,
                                   kv_buf_bytes(s->v_type, hp->n_embd_kv, (int64_t)rest)};
}

uint64_t plan_rows_bytes(const plan_row *rows, plan_buf first, plan_buf end) {
    uint64_t sum = 0;
    for (int i = first; i < (int)end; i++) sum += rows[i].count * rows[i].bytes;
    return sum;
}

plan_shape plan_shape_at(const plan_input *in, int32_t ctx) {
    int32_t batch = plan_batch(in->batch, ctx);
    return (plan_shape){
        .hp = in->hp, .k_type = in->k_type, .v_type = in->v_type, .ctx = ctx, .batch = batch,
        .attn_bytes = in->attn_bytes ? in->attn_bytes(in->user, ctx, batch) : 0, .int8 = in->int8,
        .shared = in->shared, .slots = in->slots,
    };
}

void plan_set_layout(plan *p, const plan_shape *s) {
    p->ctx = s->ctx;
    p->batch = s->batch;
    p->slots = s->slots > 1 ? s->slots : 1;
    p->shared = s->shared;
    plan_layout(s, p->rows);
    p->kv_bytes_per_token = plan_kv_bytes_per_token(s->hp, s->k_type, s->v_type);
    p->kv_bytes = plan_rows_bytes(p->rows, PLAN_K, PLAN_N_BUFS);
    p->scratch_bytes = plan_rows_bytes(p->rows, 0, PLAN_N_SCRATCH);
    p->total = p->weight_bytes + p->kv_bytes * (uint64_t)p->slots + p->scratch_bytes;
}

/* The table's total at ctx. */
static uint64_t total_at(const plan_input *in, int32_t ctx) {
    plan p = {.weight_bytes = in->weight_bytes};
    plan_shape s = plan_shape_at(in, ctx);
    plan_set_layout(&p, &s);
    return p.total;
}

/* The context `-c auto` picks for in (its ctx ignored): the trained context up to
 * PLAN_AUTO_CTX_MAX when it fits, else the largest multiple of 256 that does
 * (the total grows with the context: a binary search); 0 when none does. */
static int32_t auto_ctx(const plan_input *in, uint64_t usable, plan_ctx_why *why) {
    int32_t cap = in->hp->n_ctx_train;
    *why = PLAN_CTX_TRAINED;
    if (cap > PLAN_AUTO_CTX_MAX) {
        cap = PLAN_AUTO_CTX_MAX;
        *why = PLAN_CTX_CAPPED;
    }
    if (total_at(in, cap) <= usable) return cap;
    *why = PLAN_CTX_MEMORY;
    /* 256 * lo fits (or is 0); 256 * hi does not (past cap, or tried) */
    int32_t lo = 0, hi = cap / 256 + 1;
    while (hi - lo > 1) {
        int32_t mid = lo + (hi - lo) / 2;
        if (total_at(in, 256 * mid) <= usable) lo = mid;
        else hi = mid;
    }
    return 256 * lo;
}

/* ", or a smaller cache (--kv-type q8_0 or q4_0)": the types whose cache per token
 * is smaller than the one in use; "" when there is none. */
static void smaller_types(const plan_input *in, char *out, size_t n) {
    uint64_t now = plan_kv_bytes_per_token(in->hp, in->k_type, in->v_type);
    int k = 0, len = 0;
    out[0] = 0;
    for (int t = 0; t < PLAN_KV_TYPE_COUNT; t++) {
        pvk_type pt = plan_kv_type((phivk_kv_type)t);
        if (plan_kv_bytes_per_token(in->hp, pt, pt) >= now) continue;
        len += snprintf(out + len, n - (size_t)len, "%s%s", k++ ? " or " : ", or a smaller cache (--kv-type ",
                        pvk_type_get(pt)->name);
        if ((size_t)len >= n) return;
    }
    if (k) snprintf(out + len, n - (size_t)len, ")");
}

/* The sums of p and the budget as text, for refusals. */
typedef struct sizes { char w[32], kv[32], sc[32], usable[32], budget[32]; } sizes;

static sizes sizes_of(const plan *p, uint64_t usable) {
    sizes z;
    pvk_fmt_bytes(z.w, p->weight_bytes);
    pvk_fmt_bytes(z.kv, p->kv_bytes);
    pvk_fmt_bytes(z.sc, p->scratch_bytes);
    pvk_fmt_bytes(z.usable, usable);
    pvk_fmt_bytes(z.budget, p->budget);
    return z;
}

phivk_status plan_make(const plan_input *in, plan *out) {
    uint64_t usable = in->budget / 10 * 9;
    plan_ctx_why why = PLAN_CTX_ASKED;
    int32_t ctx = in->ctx ? in->ctx : auto_ctx(in, usable, &why);
    char smaller[64];
    smaller_types(in, smaller, sizeof smaller);
    *out = (plan){.why = why, .weight_bytes = in->weight_bytes, .budget = in->budget};
    char slots[96] = "";
    if (in->slots > 1) snprintf(slots, sizeof slots, " x %d slots", in->slots);
    if (!ctx) {
        int32_t least = in->hp->n_ctx_train < 256 ? in->hp->n_ctx_train : 256;
        plan_shape s = plan_shape_at(in, least);
        plan_set_layout(out, &s);
        sizes z = sizes_of(out, usable);
        return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                        "the model does not fit: weights %s + scratch %s + a %d-token KV cache %s%s > %s usable "
                        "of %s of device memory%s%s", z.w, z.sc, least, z.kv, slots, z.usable, z.budget, smaller,
                        in->slots > 1 ? ", or fewer slots" : "");
    }
    plan_shape s = plan_shape_at(in, ctx);
    plan_set_layout(out, &s);
    if (out->total <= usable) return PHIVK_OK;
    if (in->shared) {
        sizes z = sizes_of(out, usable);
        return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                        "the KV cache of another slot (%d tokens, sharing a session's scratch) does not fit: %s "
                        "(%.1f KiB per token) > %s usable of the %s the device has left; use fewer slots or a "
                        "shorter context%s", ctx, z.kv, out->kv_bytes_per_token / 1024.0, z.usable, z.budget, smaller);
    }
    /* What -c auto would pick with everything else the same. */
    plan_ctx_why auto_why;
    int32_t fits = auto_ctx(in, usable, &auto_why);
    char advice[96];
    if (!fits) snprintf(advice, sizeof advice, "the model does not fit at any context%s",
                        in->slots > 1 ? " with this many slots" : "");
    else if (auto_why == PLAN_CTX_MEMORY)
        snprintf(advice, sizeof advice, "use -c %d or less (what -c auto picks%s)", fits,
                 in->slots > 1 ? " for them" : "");
    else snprintf(advice, sizeof advice, "use -c auto (%d tokens, %s) or a shorter context", fits,
                  auto_why == PLAN_CTX_TRAINED ? "the model's trained context" : "the most auto picks");
    sizes z = sizes_of(out, usable);
    if (in->slots > 1) {
        char all[32];
        pvk_fmt_bytes(all, out->kv_bytes * (uint64_t)out->slots);
        return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                        "%d slots of a context of %d tokens do not fit: KV cache %s per slot (%.1f KiB per token) "
                        "x %d = %s + weights %s + scratch %s > %s usable of %s; %s, or fewer slots%s",
                        in->slots, ctx, z.kv, out->kv_bytes_per_token / 1024.0, in->slots, all, z.w, z.sc,
                        z.usable, z.budget, advice, smaller);
    }
    return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                    "a context of %d tokens does not fit: KV cache %s (%.1f KiB per token) + weights %s + scratch "
                    "%s > %s usable of %s; %s%s",
                    ctx, z.kv, out->kv_bytes_per_token / 1024.0, z.w, z.sc, z.usable, z.budget, advice, smaller);
}

void plan_ctx_text(const plan *p, const arch_hparams *hp, char *out, size_t n) {
    switch (p->why) {
    case PLAN_CTX_ASKED: snprintf(out, n, "as asked"); break;
    case PLAN_CTX_TRAINED: snprintf(out, n, "auto: the model's trained context"); break;
    case PLAN_CTX_CAPPED:
        snprintf(out, n, "auto: %d of the model's trained %d (more with -c N)", p->ctx, hp->n_ctx_train);
        break;
    case PLAN_CTX_MEMORY:
        snprintf(out, n, "auto: the most that fits of the model's %d", hp->n_ctx_train);
        break;
    }
}
