/* Model-level ops: KV-cache writes (with RoPE) and attention. Each
 * checks its shapes against the buffers it is given (a bad shape is an error with
 * the numbers, never an out-of-range access), picks the kernel variant by the
 * table or cache types and the device's caps (pvk_kernels.h), reads the op set's
 * tuning, and records its dispatches. The mapping of each kernel is described in
 * its shader. */
#include "pvk_ops.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Push-constant blocks, laid out as the shaders declare them. */
typedef struct {
    uint32_t row_stride, k_off, v_off, width, k_byte0, v_byte0, row_base, x_row0;
    uint32_t pos0, q_off, n_q, head_dim, n_rot, neox, has_ff;
    float freq_exp, attn_factor;
} kv_store_push;
typedef struct {
    uint32_t q_stride4, q_off4, n_head, group, m, pos0, window;
    float scale;
    uint32_t kv_width, kv_row0, k_byte0, v_byte0, c_lo, c_hi, n_split, tile_base;
    uint32_t bs_block, bs_local, bs_stride, bs_hoff;
} attn_push;
typedef struct { uint32_t rows, hd4, n_split; } attn_reduce_push;
static_assert(sizeof(kv_store_push) <= 128 && sizeof(attn_push) <= 128, "push constants <= 128 bytes");

/* Split-K: at most this many KV slices, each of at least this many keys. */
#define ATTN_MAX_SPLIT 256u
#define ATTN_SPLIT_MIN_KEYS 128u
#define ATTN_MAX_HEAD_DIM 256u

static uint32_t div_up(uint64_t a, uint32_t b) { return (uint32_t)((a + b - 1) / b); }

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* PHIVK_ERR_INVALID unless b is present and holds `bytes`. */
static phivk_status check_buf(const char *op, const char *what, const pvk_buf *b, uint64_t bytes) {
    if (!b) return pvk_fail(PHIVK_ERR_INVALID, "%s: %s buffer missing", op, what);
    if (b->size < bytes)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %s buffer holds %llu bytes, needs %llu", op, what,
                        (unsigned long long)b->size, (unsigned long long)bytes);
    return PHIVK_OK;
}

/* Records one dispatch of the kernel. */
static phivk_status record(pvk_ops *o, pvk_cmd *c, const pvk_kernel *k, const pvk_binding *b,
                         const void *push, uint32_t gx, uint32_t gy, uint32_t gz) {
    pvk_pipe *p;
    phivk_status st = pvk_pipe_get(pvk_ops_dev(o), k, &p);
    if (st) return st;
    pvk_cmd_dispatch(c, p, b, push, gx, gy, gz);
    return PHIVK_OK;
}

/* Records gx x rows x gz workgroups, rows split at the device's y limit; the
 * shader adds *row_base (a field of push) to gl_WorkGroupID.y. */
static phivk_status record_rows(pvk_ops *o, pvk_cmd *c, const pvk_kernel *k, const pvk_binding *b,
                              void *push, uint32_t *row_base, uint32_t gx, uint32_t rows,
                              uint32_t gz) {
    uint32_t max_y = pvk_dev_caps(pvk_ops_dev(o))->max_wg_count[1];
    for (uint32_t r = 0; r < rows; r += max_y) {
        *row_base = r;
        phivk_status st = record(o, c, k, b, push, gx, min_u32(max_y, rows - r), gz);
        if (st) return st;
    }
    return PHIVK_OK;
}

/* Binds rows [r0, r1) of a buffer of row_bytes rows from the last aligned byte at
 * or before row r0 to the 4-byte word after row r1 - 1 (so only what a kernel
 * reads counts against the binding limit); *byte0 gets row r0's byte in the
 * binding. The buffer holds whole words (pvk_kv_bytes). */
static phivk_status bind_rows(const pvk_caps *caps, const char *op, const pvk_buf *b,
                            uint64_t row_bytes, uint32_t r0, uint32_t r1, pvk_binding *out,
                            uint32_t *byte0) {
    uint64_t align = caps->storage_align > 16 ? caps->storage_align : 16;
    uint64_t start = r0 * row_bytes, lo = start / align * align, n = (r1 * row_bytes + 3) / 4 * 4 - lo;
    if (n > caps->max_binding_bytes)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: %u cache rows of %llu bytes need one binding of %llu bytes; device %s "
                        "binds at most %llu: use a shorter context",
                        op, r1 - r0, (unsigned long long)row_bytes, (unsigned long long)n, caps->name,
                        (unsigned long long)caps->max_binding_bytes);
    *out = pvk_bind_range(b, lo, n);
    *byte0 = (uint32_t)(start - lo);
    return PHIVK_OK;
}

/* ---------------------------------------------------------------- kv_store */

/* Whether the kernels read a cache of K type kt and V type vt (shaders/kv_cache.glsl;
 * pvk_kv_types lists the types, kernels.py builds every pair). */
static bool kv_pair_built(pvk_type kt, pvk_type vt) {
    return (unsigned)kt < PVK_TYPE_COUNT && (unsigned)vt < PVK_TYPE_COUNT &&
           pvk_kernels_kv_store[PVK_STORE_PLAIN][kt][vt] != PVK_KERNEL_NONE;
}

static uint64_t kv_row_bytes(pvk_type t, uint32_t width) { return pvk_type_row_bytes(t, width); }

uint64_t pvk_kv_bytes(pvk_type t, uint32_t width, uint32_t rows) {
    return (kv_row_bytes(t, width) * rows + 7) / 8 * 8;
}

static uint32_t kv_n_chunks(const pvk_kv *kv) { return kv->n_chunks > 1 ? kv->n_chunks : 1; }

/* Positions [*lo, *hi) of chunk c. */
static void kv_chunk(const pvk_kv *kv, uint32_t c, uint32_t *lo, uint32_t *hi) {
    uint32_t n = kv->n_chunks > 1 ? kv->chunk_ctx : kv->ctx;
    *lo = c * n;
    *hi = min_u32(kv->ctx, *lo + n);
}

static uint32_t kv_chunk_of(const pvk_kv *kv, uint32_t pos) {
    return kv->n_chunks > 1 ? pos / kv->chunk_ctx : 0;
}

/* PHIVK_ERR_UNSUPPORTED unless the types and width make a cache the kernels read. */
static phivk_status check_kv_format(const char *op, pvk_type kt, pvk_type vt, uint32_t width) {
    if (!kv_pair_built(kt, vt)) {
        char types[64] = "";
        for (int i = 0, n = 0; i < PVK_KV_TYPE_COUNT && n < (int)sizeof types; i++)
            n += snprintf(types + n, sizeof types - (size_t)n, "%s%s", i ? " " : "",
                          pvk_type_get(pvk_kv_types[i])->name);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: a %s K / %s V cache is not supported (%s)", op,
                        pvk_type_get(kt)->name ? pvk_type_get(kt)->name : "?",
                        pvk_type_get(vt)->name ? pvk_type_get(vt)->name : "?", types);
    }
    if (!width || width % 2 || ((kt != PVK_F16 || vt != PVK_F16) && width % 32))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: cache width %u must be even, and a multiple of 32 for a quantized cache",
                        op, width);
    return PHIVK_OK;
}

static phivk_status check_kv(const char *op, const pvk_kv *kv, uint32_t m, uint32_t pos0) {
    if (!kv || !kv->width || !kv->ctx || !kv->k || !kv->v)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: empty KV cache", op);
    phivk_status st = check_kv_format(op, kv->k_type, kv->v_type, kv->width);
    if (st) return st;
    if ((uint64_t)pos0 + m > kv->ctx)
        return pvk_fail(PHIVK_ERR_CONTEXT_FULL, "%s: positions %u..%llu do not fit the cache of %u tokens",
                        op, pos0, (unsigned long long)pos0 + m - 1, kv->ctx);
    uint32_t n = kv_n_chunks(kv);
    if (n > 1 && (!kv->chunk_ctx || (uint64_t)kv->chunk_ctx * (n - 1) >= kv->ctx ||
                  (uint64_t)kv->chunk_ctx * n < kv->ctx))
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %u chunks of %u rows do not make a cache of %u", op, n,
                        kv->chunk_ctx, kv->ctx);
    for (uint32_t c = 0; c < n; c++) {
        uint32_t lo, hi;
        kv_chunk(kv, c, &lo, &hi);
        if ((st = check_buf(op, "K cache", &kv->k[c], pvk_kv_bytes(kv->k_type, kv->width, hi - lo))) ||
            (st = check_buf(op, "V cache", &kv->v[c], pvk_kv_bytes(kv->v_type, kv->width, hi - lo))))
            return st;
    }
    return PHIVK_OK;
}

/* PHIVK_ERR_INVALID unless r describes heads within rows of row_stride floats whose k
 * part (width floats at k_off) is whole heads. */
static phivk_status check_rope(const pvk_rope *r, uint32_t row_stride, uint32_t k_off, uint32_t width,
                             uint32_t m, uint32_t pos0) {
    if (!r->n_rot || r->n_rot % 2 || r->n_rot > r->head_dim)
        return pvk_fail(PHIVK_ERR_INVALID, "rope: n_rot %u must be even and within head_dim %u",
                        r->n_rot, r->head_dim);
    if (width % r->head_dim)
        return pvk_fail(PHIVK_ERR_INVALID, "rope: k of width %u is not whole heads of %u", width, r->head_dim);
    if ((uint64_t)r->q_off + (uint64_t)r->n_q_heads * r->head_dim > row_stride ||
        ((uint64_t)r->q_off < (uint64_t)k_off + width && k_off < r->q_off + (uint64_t)r->n_q_heads * r->head_dim))
        return pvk_fail(PHIVK_ERR_INVALID, "rope: %u q heads at %u of dim %u exceed the row of %u floats or "
                        "overlap k at %u", r->n_q_heads, r->q_off, r->head_dim, row_stride, k_off);
    if (!(r->freq_base > 1.0f) || !isfinite(r->attn_factor))
        return pvk_fail(PHIVK_ERR_INVALID, "rope: freq_base %g must be > 1 and attn_factor %g finite",
                        r->freq_base, r->attn_factor);
    if ((uint64_t)pos0 + m > (1u << 24))
        return pvk_fail(PHIVK_ERR_INVALID, "rope: position %llu is not exact in fp32",
                        (unsigned long long)pos0 + m - 1);
    return r->factors ? check_buf("rope", "factors", r->factors, r->n_rot / 2 * 4) : PHIVK_OK;
}

/* pvk_op_kv_store; with pos, pvk_op_kv_store_at. */
static phivk_status kv_store(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, uint32_t row_stride, uint32_t k_off,
                             uint32_t v_off, const pvk_kv *kv, uint32_t m, uint32_t pos0, const pvk_rope *rope,
                             const pvk_buf *pos) {
    phivk_status st;
    if (!m) return pvk_fail(PHIVK_ERR_INVALID, "kv_store: no rows");
    if ((st = check_kv("kv_store", kv, m, pos0))) return st;
    if ((uint64_t)k_off + kv->width > row_stride || (uint64_t)v_off + kv->width > row_stride)
        return pvk_fail(PHIVK_ERR_INVALID, "kv_store: k at %u and v at %u of width %u exceed the row of %u floats",
                        k_off, v_off, kv->width, row_stride);
    if ((st = check_buf("kv_store", "x", x, (uint64_t)m * row_stride * 4)) ||
        (rope && (st = check_rope(rope, row_stride, k_off, kv->width, m, pos0))))
        return st;

    const pvk_caps *caps = pvk_dev_caps(pvk_ops_dev(o));
    uint32_t wg = pvk_ops_get_tuning(o)->elt_wg;
    if (pos && kv_n_chunks(kv) > 1)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "kv_store: a position read at run time needs a cache of one chunk "
                        "(not %u)", kv_n_chunks(kv));
    uint32_t spec[2] = {wg, pos != NULL};
    pvk_kernel k = {pvk_kernels_kv_store[rope ? PVK_STORE_ROPE : PVK_STORE_PLAIN][kv->k_type][kv->v_type], "sssss",
                    sizeof(kv_store_push), 2, spec, 0};
    /* Units of a row: words of F16, 32-element blocks of the quantized types; with
     * RoPE also q's rotated pairs (grid z 2). */
    uint32_t k_units = kv->k_type == PVK_F16 ? kv->width / 2 : kv->width / 32;
    uint32_t v_units = kv->v_type == PVK_F16 ? kv->width / 2 : kv->width / 32;
    uint32_t q_pairs = rope ? rope->n_q_heads * (rope->n_rot / 2) : 0;
    uint32_t units = k_units > v_units ? k_units : v_units;
    uint32_t gx = div_up(units > q_pairs ? units : q_pairs, wg);
    kv_store_push base = {.row_stride = row_stride, .k_off = k_off, .v_off = v_off, .width = kv->width,
                          .pos0 = pos0};
    if (rope) {
        base.q_off = rope->q_off, base.n_q = rope->n_q_heads, base.head_dim = rope->head_dim;
        base.n_rot = rope->n_rot, base.neox = rope->neox, base.has_ff = rope->factors != NULL;
        /* The frequency exponent in double so the only fp32 rounding is the shader's. */
        base.freq_exp = (float)(-2.0 * log2((double)rope->freq_base) / rope->n_rot);
        base.attn_factor = rope->attn_factor;
    }
    uint64_t krb = kv_row_bytes(kv->k_type, kv->width), vrb = kv_row_bytes(kv->v_type, kv->width);
    for (uint32_t ci = kv_chunk_of(kv, pos0); ci <= kv_chunk_of(kv, pos0 + m - 1); ci++) {
        /* Chunks are separate buffers and their token ranges disjoint, but with RoPE
         * every dispatch binds x writable (q's rotation): the recorder orders them
         * (as the validation layer, it sees whole bindings). Only a batch that
         * crosses a chunk boundary pays it. */
        uint32_t lo, hi;
        kv_chunk(kv, ci, &lo, &hi);
        uint32_t t0 = pos0 > lo ? pos0 : lo, t1 = min_u32(pos0 + m, hi);
        kv_store_push p = base;
        p.x_row0 = t0 - pos0;
        if (pos) {
            /* Any row of the chunk may be the one written: bound whole, from the row
             * at the push constant's pos0. */
            t0 = p.pos0 = lo;
            t1 = hi;
        }
        /* Without factors or a position buffer their bindings get x, which the
         * shader then never reads. */
        pvk_binding b[5] = {pvk_bind(x), {0}, {0}, pvk_bind(rope && rope->factors ? rope->factors : x),
                            pvk_bind(pos ? pos : x)};
        if ((st = bind_rows(caps, "kv_store", &kv->k[ci], krb, t0 - lo, t1 - lo, &b[1], &p.k_byte0)) ||
            (st = bind_rows(caps, "kv_store", &kv->v[ci], vrb, t0 - lo, t1 - lo, &b[2], &p.v_byte0)) ||
            (st = record_rows(o, c, &k, b, &p, &p.row_base, gx, pos ? 1 : t1 - t0, q_pairs ? 3 : 2)))
            return st;
    }
    return PHIVK_OK;
}

phivk_status pvk_op_kv_store(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, uint32_t row_stride,
                           uint32_t k_off, uint32_t v_off, const pvk_kv *kv, uint32_t m,
                           uint32_t pos0, const pvk_rope *rope) {
    return kv_store(o, c, x, row_stride, k_off, v_off, kv, m, pos0, rope, NULL);
}

phivk_status pvk_op_kv_store_at(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, uint32_t row_stride,
                              uint32_t k_off, uint32_t v_off, const pvk_kv *kv, const pvk_buf *pos,
                              uint32_t pos0, const pvk_rope *rope) {
    if (!pos) return pvk_fail(PHIVK_ERR_INVALID, "kv_store_at: no position buffer");
    return kv_store(o, c, x, row_stride, k_off, v_off, kv, 1, pos0, rope, pos);
}

phivk_status pvk_kv_view(pvk_dev *d, const pvk_buf *cache, uint64_t bytes, VkBufferView *out) {
    const pvk_caps *caps = pvk_dev_caps(d);
    *out = VK_NULL_HANDLE;
    /* RG32UI: 4 f16 elements per texel, the unit attn.comp loads. */
    if (!caps->texel || bytes % 8 || bytes / 8 > caps->max_texel_elems) return PHIVK_OK;
    return pvk_buf_view(d, cache, 0, bytes, VK_FORMAT_R32G32_UINT, out);
}

phivk_status pvk_kv_alloc(pvk_dev *d, pvk_type k_type, pvk_type v_type, uint32_t width,
                        uint32_t ctx, pvk_kv *out) {
    *out = (pvk_kv){0};
    phivk_status st = check_kv_format("KV cache", k_type, v_type, width);
    if (st) return st;
    if (!ctx) return pvk_fail(PHIVK_ERR_INVALID, "KV cache: no positions");
    const pvk_caps *caps = pvk_dev_caps(d);
    /* A chunk must fit what reads it whole: attention's texel view (its byte
     * offsets are 32-bit) or else its storage binding. PHIVK_MAX_BINDING_BYTES,
     * which lowers max_binding_bytes below the device's range, lowers both, so
     * tests reach chunking with small caches on either path. */
    bool lowered = caps->max_binding_bytes < (caps->max_storage_range & ~(uint64_t)255);
    uint64_t limit = caps->max_binding_bytes;
    if (caps->texel && !lowered) {
        limit = (uint64_t)caps->max_texel_elems * 8;
        if (limit > (1ull << 31)) limit = 1ull << 31;
    }
    if (limit > caps->max_alloc) limit = caps->max_alloc;
    uint64_t row = kv_row_bytes(k_type, width) > kv_row_bytes(v_type, width) ? kv_row_bytes(k_type, width)
                                                                            : kv_row_bytes(v_type, width);
    uint64_t rows = limit > 64 ? (limit - 64) / row : 0;   /* 64: alignment and word rounding */
    if (!rows)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "KV cache: a row of %llu bytes exceeds the device's binding limit "
                        "of %llu bytes", (unsigned long long)row, (unsigned long long)limit);
    if (rows >= ctx) {
        out->n_chunks = 1;
        out->chunk_ctx = ctx;
    } else {
        out->chunk_ctx = (uint32_t)(rows >= 256 ? rows / 256 * 256 : rows);
        out->n_chunks = div_up(ctx, out->chunk_ctx);
    }
    out->width = width;
    out->ctx = ctx;
    out->k_type = k_type;
    out->v_type = v_type;
    uint32_t n = out->n_chunks;
    out->k = calloc(n, sizeof *out->k);
    out->v = calloc(n, sizeof *out->v);
    if (caps->texel) {
        out->k_views = calloc(n, sizeof *out->k_views);
        out->v_views = calloc(n, sizeof *out->v_views);
    }
    if (!out->k || !out->v || (caps->texel && (!out->k_views || !out->v_views))) {
        st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "KV cache: out of host memory");
        goto fail;
    }
    for (uint32_t c = 0; c < n; c++) {
        uint32_t lo, hi;
        kv_chunk(out, c, &lo, &hi);
        uint64_t kb = pvk_kv_bytes(k_type, width, hi - lo), vb = pvk_kv_bytes(v_type, width, hi - lo);
        if ((st = pvk_buf_create(d, kb, PVK_MEM_DEVICE, &out->k[c])) ||
            (st = pvk_buf_create(d, vb, PVK_MEM_DEVICE, &out->v[c])))
            goto fail;
        if (!caps->texel) continue;
        if ((st = pvk_kv_view(d, &out->k[c], kb, &out->k_views[c])) ||
            (st = pvk_kv_view(d, &out->v[c], vb, &out->v_views[c])))
            goto fail;
        if (!out->k_views[c] || !out->v_views[c]) {
            st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "KV cache: no texel view of a %llu-byte chunk",
                          (unsigned long long)kb);
            goto fail;
        }
    }
    return PHIVK_OK;
fail:
    pvk_kv_free(d, out);
    return st;
}

void pvk_kv_free(pvk_dev *d, pvk_kv *kv) {
    for (uint32_t c = 0; c < kv->n_chunks; c++) {
        if (kv->k_views) pvk_view_destroy(d, kv->k_views[c]);
        if (kv->v_views) pvk_view_destroy(d, kv->v_views[c]);
        if (kv->k) pvk_buf_destroy(d, &kv->k[c]);
        if (kv->v) pvk_buf_destroy(d, &kv->v[c]);
    }
    free(kv->k_views);
    free(kv->v_views);
    free(kv->k);
    free(kv->v);
    *kv = (pvk_kv){0};
}

/* --------------------------------------------------------------- attention */

/* The dispatch shape of one attention call. */
typedef struct attn_shape {
    uint32_t lanes, kl, rows_per_wg, tiles;   /* kl: key lanes; tiles: workgroups per KV head and split */
    uint32_t kv_lo, kv_hi;                /* cache rows any query reads */
    uint32_t splits;                      /* before the scratch cap */
    uint32_t min_splits;                  /* what max_iter requires */
    uint64_t split_bytes;                 /* scratch bytes per split */
} attn_shape;

static uint32_t pow2_floor(uint32_t v) {
    uint32_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

static attn_shape attn_plan(const pvk_attn *a, const pvk_attn_tuning *t) {
    attn_shape s;
    uint32_t hd4 = a->head_dim / 4, group = a->n_head / a->n_kv_head;
    /* Lanes split the head dimension evenly: a power of two dividing hd4. */
    uint32_t rows = a->m * group;
    s.lanes = pow2_floor(min_u32(t->lanes, t->wg));
    s.kl = 1;
    if (t->fill_rows) {
        /* One invocation per row; a batch of fewer rows than the workgroup holds
         * gives the rest to key lanes (which need the shuffles lanes > 1 says the
         * tuning may use). */
        uint32_t rows_wg = min_u32(pow2_floor(2 * rows - 1), pow2_floor(t->wg));
        s.kl = min_u32(pow2_floor(t->wg) / rows_wg, s.lanes);
        s.lanes = 1;
    }
    while (hd4 % s.lanes) s.lanes /= 2;
    /* Rows per workgroup: as the tuning says, fewer when the batch has fewer. */
    uint32_t r_max = t->wg / (s.lanes * s.kl);
    s.rows_per_wg = rows >= r_max ? r_max : pow2_floor(2 * rows - 1);
    s.tiles = div_up(rows, s.rows_per_wg);
    s.kv_hi = a->pos0 + a->m;
    s.kv_lo = a->window && a->pos0 + 1 > a->window ? a->pos0 + 1 - a->window : 0;
    /* Split the KV range when the batch alone leaves the device idle. */
    uint32_t span = a->pos0 + 1 - s.kv_lo;   /* keys of the first query */
    uint64_t base = (uint64_t)s.tiles * a->n_kv_head;
    uint32_t splits = t->splits;
    if (!splits) {
        splits = base >= t->target_wgs ? 1 : div_up(t->target_wgs, (uint32_t)base);
        splits = min_u32(splits, span / ATTN_SPLIT_MIN_KEYS);
    }
    s.splits = splits < 1 ? 1 : min_u32(min_u32(splits, ATTN_MAX_SPLIT), span);
    /* A workgroup's range reaches from its first token's window start to its last
     * token: at most the whole range the batch reads. */
    s.min_splits = t->max_iter ? div_up(s.kv_hi - s.kv_lo, t->max_iter * s.kl) : 1;
    if (s.splits < s.min_splits) s.splits = s.min_splits;
    s.split_bytes = (uint64_t)a->m * a->n_head * (hd4 + 1) * 16;
    return s;
}

/* The splits s records with fit of them fitting the scratch buffer. */
static uint32_t fit_splits(const attn_shape *s, uint64_t fit) {
    return s->splits <= fit ? s->splits : fit > s->min_splits ? (uint32_t)fit : s->min_splits;
}

uint32_t pvk_op_attention_grid(const pvk_ops *o, const pvk_attn *a, const pvk_kv *kv) {
    const pvk_attn_tuning *t = &pvk_ops_get_tuning(o)->attn;
    attn_shape s = attn_plan(a, t);
    uint32_t chunks = kv_chunk_of(kv, s.kv_hi - 1) - kv_chunk_of(kv, s.kv_lo) + 1;
    return fit_splits(&s, a->scratch ? a->scratch->size / s.split_bytes : 0) * chunks;
}

static phivk_status check_attn(const pvk_attn *a, const pvk_kv *kv, const pvk_buf *x, const pvk_buf *out) {
    const char *op = "attention";
    if (!a->m) return pvk_fail(PHIVK_ERR_INVALID, "%s: no query rows", op);
    if (!a->n_head || !a->n_kv_head || a->n_head % a->n_kv_head)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %u heads do not share %u KV heads evenly", op,
                        a->n_head, a->n_kv_head);
    if (!a->head_dim || a->head_dim % 4 || a->head_dim > ATTN_MAX_HEAD_DIM || a->q_stride % 4 || a->q_off % 4)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: head_dim %u, q_stride %u and q_off %u must be multiples of 4 "
                        "(head_dim at most %u)", op, a->head_dim, a->q_stride, a->q_off, ATTN_MAX_HEAD_DIM);
    if ((uint64_t)a->q_off + (uint64_t)a->n_head * a->head_dim > a->q_stride)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %u q heads at %u exceed the row of %u floats", op,
                        a->n_head, a->q_off, a->q_stride);
    if (!isfinite(a->scale)) return pvk_fail(PHIVK_ERR_INVALID, "%s: scale is not finite", op);
    if (a->bs_block && (!a->bs_local || !a->bs_stride))
        return pvk_fail(PHIVK_ERR_INVALID, "%s: block-sparse blocks of %u need local blocks (%u) and a "
                        "vertical stride (%u)", op, a->bs_block, a->bs_local, a->bs_stride);
    phivk_status st;
    if ((st = check_kv(op, kv, a->m, a->pos0))) return st;
    if (kv->width != a->n_kv_head * a->head_dim)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: cache width %u is not %u KV heads x %u", op, kv->width,
                        a->n_kv_head, a->head_dim);
    if ((st = check_buf(op, "x", x, ((uint64_t)(a->m - 1) * a->q_stride + a->q_off +
                                     (uint64_t)a->n_head * a->head_dim) * 4)) ||
        (st = check_buf(op, "out", out, (uint64_t)a->m * a->n_head * a->head_dim * 4)))
        return st;
    return PHIVK_OK;
}

phivk_status pvk_op_attention(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_attn *a,
                            const pvk_kv *kv, const pvk_buf *out) {
    phivk_status st;
    if ((st = check_attn(a, kv, x, out))) return st;
    const pvk_attn_tuning *t = &pvk_ops_get_tuning(o)->attn;
    const pvk_caps *caps = pvk_dev_caps(pvk_ops_dev(o));
    attn_shape s = attn_plan(a, t);
    /* At most t->lanes, which pvk_ops_create_tuned held to shuffles within a subgroup. */
    uint32_t per_row = s.lanes * s.kl;
    /* The cache chunks the keys lie in; a range over several carries each slice's
     * state from one chunk's dispatch to the next in the scratch buffer. */
    uint32_t c_first = kv_chunk_of(kv, s.kv_lo), c_last = kv_chunk_of(kv, s.kv_hi - 1);
    if (a->pos && kv_n_chunks(kv) > 1)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "attention: a position read at run time needs a cache of one "
                        "chunk (not %u)", kv_n_chunks(kv));
    uint64_t fit = a->scratch ? a->scratch->size / s.split_bytes : 0;
    if (c_last > c_first && !fit)
        return pvk_fail(PHIVK_ERR_INVALID,
                        "attention: keys %u..%u lie in %u cache chunks, which needs a scratch buffer of "
                        "at least %llu bytes (pvk_op_attention_scratch_bytes_kv)",
                        s.kv_lo, s.kv_hi - 1, c_last - c_first + 1, (unsigned long long)s.split_bytes);
    if (s.min_splits > ATTN_MAX_SPLIT || (s.min_splits > 1 && fit < s.min_splits))
        return pvk_fail(s.min_splits > ATTN_MAX_SPLIT ? PHIVK_ERR_UNSUPPORTED : PHIVK_ERR_INVALID,
                        "attention: %u keys need %u split-K slices on this device (at most %u keys per "
                        "invocation), which needs a scratch buffer of %llu bytes (pvk_op_attention_scratch_bytes_kv)",
                        s.kv_hi - s.kv_lo, s.min_splits, t->max_iter,
                        (unsigned long long)(s.min_splits * s.split_bytes));
    uint32_t splits = fit_splits(&s, fit);

    uint32_t hd4 = a->head_dim / 4, wg = s.rows_per_wg * per_row;
    bool texel = kv->k_views && kv->v_views;
    attn_push p = {a->q_stride / 4, a->q_off / 4, a->n_head, a->n_head / a->n_kv_head, a->m, a->pos0,
                   a->window, a->scale, kv->width, 0, 0, 0, 0, 0, splits, 0,
                   a->bs_block, a->bs_local, a->bs_stride, a->bs_stride ? a->bs_step % a->bs_stride : 0};
    /* Without scratch its binding gets out, which the shader then never reads. */
    bool scratch = splits > 1 || c_last > c_first;
    pvk_binding b[6] = {pvk_bind(x), {0}, {0}, pvk_bind(out), pvk_bind(scratch ? a->scratch : out),
                        pvk_bind(a->pos ? a->pos : x)};
    uint32_t spec[5] = {wg, s.lanes, a->head_dim, s.kl, a->pos != NULL};
    /* Full subgroups keep each row's lanes inside one subgroup. */
    uint32_t sg = per_row > 1 && caps->subgroup_size && wg % caps->subgroup_size == 0 ? caps->subgroup_size : 0;
    pvk_kernel k = {pvk_kernels_attn[kv->k_type][kv->v_type][texel ? PVK_FETCH_TEX : PVK_FETCH_BUF]
                                    [per_row > 1 ? PVK_REDUCE_SUBGROUP : PVK_REDUCE_SHARED],
                    texel ? "sttsss" : "ssssss", sizeof p, 5, spec, sg};
    uint32_t max_x = caps->max_wg_count[0];
    uint64_t krb = kv_row_bytes(kv->k_type, kv->width), vrb = kv_row_bytes(kv->v_type, kv->width);
    for (uint32_t ci = c_first; ci <= c_last; ci++) {
        uint32_t lo, hi;
        kv_chunk(kv, ci, &lo, &hi);
        p.c_lo = lo;
        p.c_hi = hi;
        if (texel) {
            b[1] = pvk_bind_view(kv->k_views[ci], &kv->k[ci], 0, kv->k[ci].size);
            b[2] = pvk_bind_view(kv->v_views[ci], &kv->v[ci], 0, kv->v[ci].size);
            p.kv_row0 = lo;
        } else {
            uint32_t r0 = s.kv_lo > lo ? s.kv_lo : lo, r1 = min_u32(s.kv_hi, hi);
            if (a->pos) r0 = lo, r1 = hi;   /* the keys of any position: the whole chunk */
            p.kv_row0 = r0;
            if ((st = bind_rows(caps, "attention", &kv->k[ci], krb, r0 - lo, r1 - lo, &b[1], &p.k_byte0)) ||
                (st = bind_rows(caps, "attention", &kv->v[ci], vrb, r0 - lo, r1 - lo, &b[2], &p.v_byte0)))
                return st;
        }
        for (uint32_t tb = 0; tb < s.tiles; tb += max_x) {
            p.tile_base = tb;
            if ((st = record(o, c, &k, b, &p, min_u32(max_x, s.tiles - tb), a->n_kv_head, splits))) return st;
        }
    }
    if (splits == 1) return PHIVK_OK;

    uint32_t rows = a->m * a->n_head, rwg = min_u32(pow2_floor(t->wg), pow2_floor(2 * hd4 - 1));
    attn_reduce_push rp = {rows, hd4, splits};
    pvk_binding rb[2] = {pvk_bind(a->scratch), pvk_bind(out)};
    pvk_kernel rk = {PVK_KERNEL_ATTN_REDUCE, "ss", sizeof rp, 1, &rwg, 0};
    uint32_t gx = min_u32(rows, max_x);
    return record(o, c, &rk, rb, &rp, gx, div_up(rows, gx), 1);
}

size_t pvk_op_attention_scratch_bytes_kv(const pvk_ops *o, const pvk_attn *a, const pvk_kv *kv) {
    uint32_t kv_len_max = kv->ctx;
    if (!a->m || !a->n_kv_head || !a->head_dim || !kv_len_max || a->m > kv_len_max) return 0;
    /* The largest split is the one of the last query position. */
    pvk_attn last = *a;
    last.pos0 = kv_len_max - a->m;
    attn_shape s = attn_plan(&last, &pvk_ops_get_tuning(o)->attn);
    /* Several chunks need one entry per split (at least one) to carry the state. */
    uint32_t entries = s.splits > 1 ? s.splits : kv_n_chunks(kv) > 1 ? 1 : 0;
    return (size_t)(entries * s.split_bytes);
}

size_t pvk_op_attention_scratch_bytes(const pvk_ops *o, const pvk_attn *a, uint32_t kv_len_max) {
    pvk_kv one = {.ctx = kv_len_max};
    return pvk_op_attention_scratch_bytes_kv(o, a, &one);
}
