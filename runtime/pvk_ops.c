/* The op layer: weight tensors on the device and the recording of elementwise,
 * normalisation and matrix-product kernels. Variant choice (weight type, texel or
 * storage fetch, subgroup or shared-memory reduction: an id from pvk_kernels.h's
 * tables) and tuning (pvk_ops_tuning) follow the device's caps; see the shaders for
 * each kernel's mapping. */
#include "pvk_ops.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvk_coopmat.h"
#include "pvk_fmt.h"

struct pvk_ops {
    pvk_dev *dev;
    const pvk_caps *caps;
    pvk_ops_tuning t;
    bool mv_set[PVK_TYPE_COUNT];   /* a per-type choice was set (pvk_ops_set_mm_choice) */
    pvk_mm_choice mv[PVK_TYPE_COUNT];
    pvk_fusion fusion;             /* PHIVK_FUSION, else the device's default */
    pvk_cm cm;                     /* the tiled kernel's cooperative-matrix form, or PVK_CM_COUNT */
    int repack;                    /* PHIVK_REPACK: 0 never, 1 always, -1 the type's choice */
};

/* Weights are fetched as 16-byte words for every type, also for blocks that do not
 * sit on 16-byte boundaries (dequant.glsl says why): texel views of RGBA32UI. */
#define W_TEXEL_FMT VK_FORMAT_R32G32B32A32_UINT
#define W_TEXEL_BYTES 16u

/* Bytes every binding of a tensor extends past its rows (after rounding up to 16):
 * block kernels fetch the 16-byte words covering a block plus up to one more
 * (dequant.glsl, w_window). */
#define TENSOR_PAD 16u

bool pvk_ops_reads_weights(pvk_type t) {
    return (unsigned)t < PVK_TYPE_COUNT &&
           pvk_kernels_matmul[t][PVK_LAYOUT_GGUF][PVK_FETCH_BUF][PVK_PREC_F32] != PVK_KERNEL_NONE;
}

/* The fetch path of a weight tensor's kernels. */
static pvk_fetch tensor_fetch(const pvk_tensor *t) { return t->views ? PVK_FETCH_TEX : PVK_FETCH_BUF; }
static pvk_layout tensor_layout(const pvk_tensor *t) { return t->repacked ? PVK_LAYOUT_REPACK : PVK_LAYOUT_GGUF; }

bool pvk_ops_can_repack(pvk_type t) {
    return (unsigned)t < PVK_TYPE_COUNT &&
           pvk_kernels_matmul[t][PVK_LAYOUT_REPACK][PVK_FETCH_BUF][PVK_PREC_F32] != PVK_KERNEL_NONE;
}

/* Push-constant blocks, laid out as the shaders declare them. */
typedef struct { uint32_t rows, n; float eps; uint32_t flags; } norm_push;
typedef struct { uint32_t rows, n; } softmax_push;
typedef struct { uint32_t n, n_ff, flags; float limit; } act_push;
typedef struct { uint32_t n, row_len; } eltwise_push;
typedef struct { uint32_t k, n, m, y_stride, y_off, flags; } mm_push;
typedef struct { mm_push mm; float eps; } mm_norm_push;   /* matvec.comp -DPRO_NORM */
static_assert(sizeof(norm_push) <= 128 && sizeof(softmax_push) <= 128 && sizeof(act_push) <= 128 &&
                  sizeof(eltwise_push) <= 128 && sizeof(mm_push) <= 128,
              "push constants <= 128 bytes");

enum { MM_BIAS = 1, MM_ACCUMULATE = 2, MM_NORM_W = 4, MM_NORM_B = 8 };
/* x columns one matvec workgroup reads per weight load (spec constant NC). */
#define MV_MAX_COLS 8u
/* Most accumulators (rows x columns) per matvec invocation for block types: 32 rows
 * x 8 columns took 10 s to compile cold on lavapipe (16 x 8: 7 s) and spills. */
#define MV_MAX_ACC 128u

#define ROUND_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* ------------------------------------------------------------------ tensors */

phivk_status pvk_tensor_create(pvk_dev *d, pvk_type type, int64_t cols, int64_t rows,
                             const void *data, pvk_tensor *t) {
    return pvk_tensor_create_layout(d, type, cols, rows, data, false, t);
}

phivk_status pvk_tensor_create_layout(pvk_dev *d, pvk_type type, int64_t cols, int64_t rows,
                                    const void *data, bool repack, pvk_tensor *t) {
    memset(t, 0, sizeof *t);
    const pvk_type_info *ti = pvk_type_get(type);
    if (!ti->name || !ti->supported)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "tensor: type %u is not supported", (unsigned)type);
    if (repack && !pvk_ops_can_repack(type))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "tensor: %s has no repacked layout: load it with PHIVK_REPACK=0",
                        ti->name);
    if (cols <= 0 || rows <= 0 || cols % ti->block_elems || cols > UINT32_MAX || rows > UINT32_MAX)
        return pvk_fail(PHIVK_ERR_INVALID,
                        "tensor: bad shape %lld x %lld of %s (cols must be a positive multiple of %u)",
                        (long long)rows, (long long)cols, ti->name, ti->block_elems);
    const pvk_caps *caps = pvk_dev_caps(d);
    bool texel = caps->texel && pvk_ops_reads_weights(type);
    uint64_t row_bytes = pvk_type_row_bytes(type, cols);

    /* Chunk offsets must suit storage and texel bindings and 16-byte words; a
     * chunk's binding (rounded up to 16 bytes) must fit every binding limit, and its
     * element indices must fit the kernels' 32-bit arithmetic. */
    uint64_t align = 16;   /* Vulkan's alignments are powers of two: their lcm is the largest */
    if (caps->storage_align > align) align = caps->storage_align;
    if (caps->texel_align > align) align = caps->texel_align;
    uint64_t limit = caps->max_binding_bytes;
    if (texel && (uint64_t)caps->max_texel_elems * W_TEXEL_BYTES < limit)
        limit = (uint64_t)caps->max_texel_elems * W_TEXEL_BYTES;
    limit = limit / 16 * 16 - TENSOR_PAD;
    uint64_t row_pow2 = row_bytes & (~row_bytes + 1);   /* largest power of two dividing it */
    uint64_t step = align / (row_pow2 < align ? row_pow2 : align);   /* rows per aligned offset */
    uint64_t max_rows = limit / row_bytes;
    uint64_t elem_rows = ((uint64_t)1 << 31) / (uint64_t)cols;
    if (elem_rows < max_rows) max_rows = elem_rows;
    if ((uint64_t)rows <= max_rows) {
        t->chunk_rows = rows;
    } else {
        t->chunk_rows = (int64_t)(max_rows / step * step);
        if (!t->chunk_rows)
            return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                            "tensor: a row of %lld %s elements (%llu bytes, %llu rows per aligned "
                            "chunk) exceeds the device's binding limit of %llu bytes",
                            (long long)cols, ti->name, (unsigned long long)row_bytes,
                            (unsigned long long)step, (unsigned long long)limit);
    }
    t->n_chunks = (uint32_t)((rows + t->chunk_rows - 1) / t->chunk_rows);

    uint64_t bytes = row_bytes * (uint64_t)rows;
    phivk_status st = pvk_buf_create(d, ROUND_UP(bytes, 16) + TENSOR_PAD, PVK_MEM_DEVICE, &t->buf);
    if (st) return st;
    t->type = type;
    t->cols = cols;
    t->rows = rows;
    t->repacked = repack;
    if (data && (st = pvk_tensor_write(d, t, 0, data, bytes))) goto fail;
    if (texel) {
        t->views = calloc(t->n_chunks, sizeof *t->views);
        if (!t->views) {
            st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "tensor: out of host memory");
            goto fail;
        }
        for (uint32_t i = 0; i < t->n_chunks; i++) {
            uint64_t off = (uint64_t)i * t->chunk_rows * row_bytes;
            uint64_t n = ROUND_UP(pvk_tensor_chunk_rows(t, i) * row_bytes, 16) + TENSOR_PAD;
            if ((st = pvk_buf_view(d, &t->buf, off, n, W_TEXEL_FMT, &t->views[i]))) goto fail;
        }
    }
    return PHIVK_OK;
fail:
    pvk_tensor_destroy(d, t);
    return st;
}

/* Blocks [b0, b0 + n) of one chunk (the chunk's first block is 0) from GGUF blocks
 * at src, written repacked: their quants at q_bytes each from the chunk's start, their
 * f16 scales after the chunk's nblk quants. Q4_0 and Q8_0 start with the scale. */
static phivk_status write_repacked(pvk_dev *d, const pvk_tensor *t, uint64_t chunk_off, uint64_t nblk, uint64_t b0,
                                   uint64_t n, const uint8_t *src) {
    uint64_t bb = pvk_type_row_bytes(t->type, pvk_type_get(t->type)->block_elems), qb = bb - 2;
    uint8_t *q = malloc(n * bb);
    if (!q) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "tensor: out of host memory");
    uint8_t *sc = q + n * qb;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(sc + 2 * i, src + i * bb, 2);
        memcpy(q + i * qb, src + i * bb + 2, qb);
    }
    phivk_status st = pvk_buf_write(d, &t->buf, chunk_off + b0 * qb, q, n * qb);
    if (!st) st = pvk_buf_write(d, &t->buf, chunk_off + nblk * qb + 2 * b0, sc, 2 * n);
    free(q);
    return st;
}

phivk_status pvk_tensor_write(pvk_dev *d, const pvk_tensor *t, uint64_t at, const void *src, uint64_t len) {
    const pvk_type_info *ti = pvk_type_get(t->type);
    uint64_t bb = pvk_type_row_bytes(t->type, ti->block_elems), row_bytes = pvk_type_row_bytes(t->type, t->cols);
    uint64_t total = row_bytes * (uint64_t)t->rows;
    if (at % bb || len % bb || at > total || len > total - at)
        return pvk_fail(PHIVK_ERR_INVALID, "tensor: a write of %llu bytes at %llu is not whole %s blocks of the "
                        "tensor's %llu bytes", (unsigned long long)len, (unsigned long long)at, ti->name,
                        (unsigned long long)total);
    if (!t->repacked) return pvk_buf_write(d, &t->buf, at, src, (size_t)len);
    /* Chunk by chunk: each has its own scale stream. Chunks start at the same bytes
     * as in the GGUF layout, as a block's quants and scale take its bytes. */
    const uint8_t *s = src;
    uint64_t chunk_bytes = row_bytes * (uint64_t)t->chunk_rows;
    while (len) {
        uint32_t ci = (uint32_t)(at / chunk_bytes);
        uint64_t chunk_off = ci * chunk_bytes, in_chunk = pvk_tensor_chunk_rows(t, ci) * row_bytes;
        uint64_t n = (chunk_off + in_chunk - at) < len ? (chunk_off + in_chunk - at) : len;
        phivk_status st = write_repacked(d, t, chunk_off, in_chunk / bb, (at - chunk_off) / bb, n / bb, s);
        if (st) return st;
        at += n, s += n, len -= n;
    }
    return PHIVK_OK;
}

void pvk_tensor_destroy(pvk_dev *d, pvk_tensor *t) {
    if (!t) return;
    if (t->views)
        for (uint32_t i = 0; i < t->n_chunks; i++) pvk_view_destroy(d, t->views[i]);
    free(t->views);
    pvk_buf_destroy(d, &t->buf);
    memset(t, 0, sizeof *t);
}

uint32_t pvk_tensor_chunk_rows(const pvk_tensor *t, uint32_t chunk) {
    int64_t left = t->rows - (int64_t)chunk * t->chunk_rows;
    return (uint32_t)(left < t->chunk_rows ? left : t->chunk_rows);
}

pvk_binding pvk_tensor_bind(const pvk_tensor *t, uint32_t chunk) {
    uint64_t row_bytes = pvk_type_row_bytes(t->type, t->cols);
    uint64_t off = (uint64_t)chunk * t->chunk_rows * row_bytes;
    uint64_t n = ROUND_UP(pvk_tensor_chunk_rows(t, chunk) * row_bytes, 16) + TENSOR_PAD;
    return t->views ? pvk_bind_view(t->views[chunk], &t->buf, off, n) : pvk_bind_range(&t->buf, off, n);
}

/* ---------------------------------------------------------------------- ops */

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* Subgroup shuffles, which attention's lanes sharing a row need. */
static bool has_shuffle(const pvk_caps *caps) {
    return caps->subgroup && (caps->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) &&
           caps->subgroup_min >= 2;
}

static pvk_attn_tuning attn_default_tuning(const pvk_caps *caps) {
    pvk_attn_tuning t = {.lanes = 8, .splits = 0};
    if (caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        /* lavapipe-like: one subgroup per workgroup, a handful of threads to fill. */
        t.wg = caps->subgroup_size ? caps->subgroup_size : 8;
        t.target_wgs = 16;
        t.fill_rows = true;
        t.max_iter = 32768;
    } else {
        /* A decode row's workgroup is one row of lanes, so a big GPU needs thousands
         * of them: on an H200, 4096 (256 splits) ran a 131072-key decode 7x faster
         * than 512. */
        t.wg = 64;
        t.target_wgs = caps->type == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? 4096 : 512;
        /* Where the driver says how many subgroups run at once, as many workgroups of
         * wg lanes as fill it (an H200: 132 SMs x 64 warps / 2 warps = 4224, where
         * 4096 was measured best); a phone's few cores get fewer, not 512. */
        uint32_t per_wg = caps->subgroup_size ? (t.wg + caps->subgroup_size - 1) / caps->subgroup_size : 1;
        if (caps->resident_subgroups / per_wg >= 16) t.target_wgs = caps->resident_subgroups / per_wg;
    }
    if (!has_shuffle(caps)) t.lanes = 1;
    while (t.lanes > caps->subgroup_min && t.lanes > 1) t.lanes /= 2;
    while (t.wg > caps->max_wg_invocations) t.wg /= 2;
    return t;
}

/* matvec.comp -DLANE_ROWS reads x through a texel view. */
static bool lane_rows_fit(const pvk_caps *caps) { return caps->texel; }

pvk_ops_tuning pvk_ops_default_tuning(const pvk_caps *caps) {
    uint32_t sg = caps->subgroup_size ? caps->subgroup_size : 1;
    pvk_ops_tuning t;
    if (caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        /* lavapipe-like: instruction-bound, barriers are coroutine switches. One
         * subgroup per workgroup and several rows each (docs/kernels.md, B). */
        t.row_wg = sg;
        t.elt_wg = 64;
        t.mv_wg = sg;
        /* 16 rows: x's loads (storage buffer, scalarised) shared by twice the rows;
         * 10-20% less CPU time than 8 for f16 at K 768 and 3072 (bench_kernels). */
        t.mv_rows = 16;
        /* Block types decode a 32-element unit per row and share x's loads and
         * sums over the rows: 16 rows took 13% less CPU time than 8 for Q4_0 and
         * Q4_K on 8192x3072 (bench_kernels), 32 another 11% (phi3-mini Q4_0 decode
         * 0.84 -> 0.95 tokens/s); matmul caps rows x columns (MV_MAX_ACC). */
        t.mv_rows_blocked = 32;
        t.mm_bm = 32, t.mm_bn = 32, t.mm_bk = 16, t.mm_tm = 4, t.mm_tn = 4;
        /* Shared-memory loads are scalarised and barriers switch coroutines there: the
         * tiled kernel ran ~6x slower per FLOP than matvec on 8 columns at a time
         * (bench_kernels, m 32 vs 8), so matvec takes every m. */
        t.mv_max_m = UINT32_MAX;
        /* Block types at 8 columns keep 16 rows (MV_MAX_ACC), so each x load serves
         * half as many rows as at 4 columns and 32: 4 columns twice took 35% less
         * CPU time than 8 once for Q4_0 at m 8 on Phi-3-mini's shapes with f32
         * activations, 2-37% less with int8 ones (bench_kernels; f16 the same
         * either way), without 32 x 8's cold compile. */
        t.mv_cols = 4;
        /* f16 at m 8: 64 rows took 4.3x the CPU time of m 1 (its best, 32 rows),
         * 32 rows 5.5x, 16 rows 6x (bench_kernels, Phi-3-mini and 150M shapes);
         * Q4_0 with int8 activations, tuned to 16 rows at m 1, gets 32 (128
         * sums): phi3-mini x8 1.05 tokens/s where 16 rows gave 0.85. */
        t.mv_rows_cols = 64;
        /* Lanes owning 8 rows each, x through the sampler: at 8 columns 1.3-2x the
         * time of one where the K split took 3-5x (bench_kernels, f16 and Q4_0 on
         * Phi-3-mini's and the 150M shapes); 16 rows were no faster, 4 slower. */
        t.mv_lane_rows = 8;
    } else {
        t.row_wg = 256;
        t.elt_wg = 256;
        t.mv_wg = sg < 32 ? 32 : sg;
        t.mv_rows = 2;
        t.mv_rows_blocked = 2;
        t.mm_bm = 64, t.mm_bn = 64, t.mm_bk = 16, t.mm_tm = 4, t.mm_tn = 4;
        t.mv_max_m = 8;
        t.mv_cols = MV_MAX_COLS;
        t.mv_rows_cols = 0;
        t.mv_lane_rows = 0;
    }
    if (!lane_rows_fit(caps)) t.mv_lane_rows = 0;
    t.mv_int_dot = caps->int_dot && caps->subgroup;
    uint32_t cap = caps->max_wg_invocations;
    while (t.row_wg > cap) t.row_wg /= 2;
    while (t.elt_wg > cap) t.elt_wg /= 2;
    while (t.mv_wg > cap) t.mv_wg /= 2;
    t.attn = attn_default_tuning(caps);
    return t;
}

/* The tiled kernel's geometry on cooperative matrices of form f (matmul.comp
 * -DCOOPMAT): the tuning's BM x BN tile, BK at least the form's K, and each subgroup
 * owning up to 32 x 32 of the tile (TM x TN blocks, the accumulators one subgroup
 * keeps: 4 on 16x16, 16 on 8x8). false when that does not fit the device. */
typedef struct cm_tile { uint32_t wg, bm, bn, bk, tm, tn; } cm_tile;

static bool cm_tile_of(const pvk_caps *caps, const pvk_ops_tuning *t, pvk_cm f, cm_tile *out) {
    const pvk_cm_form *fm = &pvk_cm_forms[f];
    cm_tile c = {0, t->mm_bm, t->mm_bn, t->mm_bk < fm->k ? fm->k : t->mm_bk, 0, 0};
    if (c.bm < fm->m || c.bn < fm->n || !caps->subgroup_size) return false;
    c.tm = (c.bm < 32 ? c.bm : 32) / fm->m;
    c.tn = (c.bn < 32 ? c.bn : 32) / fm->n;
    uint64_t groups = (uint64_t)(c.bm / (c.tm * fm->m)) * (c.bn / (c.tn * fm->n));
    uint64_t wg = groups * caps->subgroup_size;
    uint64_t shared = 2ull * c.bk * c.bm + 2ull * c.bk * (c.bn + 8) + 4ull * c.bm * c.bn;
    if (!c.tm || !c.tn || wg > caps->max_wg_invocations || wg > caps->max_wg_size[0] || shared > caps->max_shared)
        return false;
    c.wg = (uint32_t)wg;
    *out = c;
    return true;
}

phivk_status pvk_ops_create_tuned(pvk_dev *d, const pvk_ops_tuning *t, pvk_ops **out) {
    *out = NULL;
    const pvk_caps *caps = pvk_dev_caps(d);
    uint32_t cap = caps->max_wg_invocations;
    const char *bad = NULL;
    if (!is_pow2(t->row_wg) || t->row_wg > cap) bad = "row_wg";
    else if (!is_pow2(t->elt_wg) || t->elt_wg > cap) bad = "elt_wg";
    else if (!is_pow2(t->mv_wg) || t->mv_wg > cap) bad = "mv_wg";
    else if (!is_pow2(t->mv_rows) || t->mv_rows > 64) bad = "mv_rows";
    else if (!is_pow2(t->mv_rows_blocked) || t->mv_rows_blocked > 64) bad = "mv_rows_blocked";
    else if (!is_pow2(t->mv_cols) || t->mv_cols > MV_MAX_COLS) bad = "mv_cols";
    else if (t->mv_rows_cols > 64 || (t->mv_rows_cols && !is_pow2(t->mv_rows_cols))) bad = "mv_rows_cols";
    else if (t->mv_lane_rows > 16 || (t->mv_lane_rows && (!is_pow2(t->mv_lane_rows) || !lane_rows_fit(caps))))
        bad = "mv_lane_rows";
    else if (!is_pow2(t->mm_bk) || t->mm_bk < 8) bad = "mm_bk";
    else if (!is_pow2(t->mm_tm) || !is_pow2(t->mm_bm) || t->mm_tm > t->mm_bm) bad = "mm_tm/mm_bm";
    else if (!is_pow2(t->mm_tn) || !is_pow2(t->mm_bn) || t->mm_tn > t->mm_bn) bad = "mm_tn/mm_bn";
    else if ((t->mm_bm / t->mm_tm) * (t->mm_bn / t->mm_tn) > cap) bad = "matmul workgroup size";
    else if (4u * t->mm_bk * (t->mm_bm + t->mm_bn + 1) > caps->max_shared) bad = "matmul shared memory";
    else if (t->mv_int_dot && !(caps->int_dot && caps->subgroup)) bad = "mv_int_dot";
    else if (!is_pow2(t->attn.wg) || t->attn.wg > cap) bad = "attn.wg";
    /* Lanes of a row (also key lanes, fill_rows) exchange through shuffles within one
     * subgroup: up to attn.lanes of them (pvk_ops_model.c, attn_plan). */
    else if (!is_pow2(t->attn.lanes) ||
             (t->attn.lanes > 1 && (!has_shuffle(caps) || t->attn.lanes > caps->subgroup_min)))
        bad = "attn.lanes";
    if (bad)
        return pvk_fail(PHIVK_ERR_INVALID, "ops: tuning knob %s does not fit device %s", bad, caps->name);
    pvk_ops *o = calloc(1, sizeof *o);
    if (!o) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "ops: out of host memory");
    o->dev = d;
    o->caps = caps;
    o->t = *t;
    cm_tile tile;
    o->cm = pvk_cm_choose(caps);
    if (o->cm != PVK_CM_COUNT && !cm_tile_of(caps, t, o->cm, &tile)) o->cm = PVK_CM_COUNT;
    /* The prologues re-read their inputs per workgroup: L2 hits on a GPU, but on
     * lavapipe (storage loads are slow, and an exp per element per workgroup costs)
     * one decode token of the 150M Q4_0 shape took 155 ms with the activations fused
     * and ~200 ms with the norms too, against 64 ms with none (PHIVK_PROFILE). */
    o->fusion = caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU ? PVK_FUSION_NONE : PVK_FUSION_ALL;
    const char *f = getenv("PHIVK_FUSION");
    if (f && *f) {
        static const char *const names[] = {"none", "act", "all"};
        int i = 0;
        while (i < 3 && strcmp(f, names[i])) i++;
        if (i == 3) {
            free(o);
            return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_FUSION=%s: use none, act (the activations and attention's "
                            "int8 copy in the next projection's prologue) or all (also the norms)", f);
        }
        o->fusion = (pvk_fusion)i;
    }
    const char *r = getenv("PHIVK_REPACK");
    o->repack = -1;
    if (r && *r) {
        if (strcmp(r, "0") && strcmp(r, "1")) {
            free(o);
            return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_REPACK=%s: use 0 (weights in GGUF's layout), 1 (Q4_0 and "
                            "Q8_0 repacked) or leave it unset (the tuner's choice)", r);
        }
        o->repack = r[0] == '1';
    }
    *out = o;
    return PHIVK_OK;
}

phivk_status pvk_ops_create(pvk_dev *d, pvk_ops **out) {
    pvk_ops_tuning t = pvk_ops_default_tuning(pvk_dev_caps(d));
    /* PHIVK_LANE_ROWS: 0 keeps lanes splitting K at every m (the kill switch), else the
     * rows each lane owns (matvec.comp -DLANE_ROWS), checked as the tuning is. */
    const char *lr = getenv("PHIVK_LANE_ROWS");
    if (lr && *lr) {
        char *end;
        unsigned long v = strtoul(lr, &end, 10);
        if (*end || v > 16) {
            *out = NULL;
            return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_LANE_ROWS=%s: use 0 (lanes split K) or the rows each lane "
                            "owns (1, 2, 4, 8 or 16)", lr);
        }
        t.mv_lane_rows = (uint32_t)v;
    }
    return pvk_ops_create_tuned(d, &t, out);
}

void pvk_ops_destroy(pvk_ops *o) { free(o); }

pvk_dev *pvk_ops_dev(const pvk_ops *o) { return o->dev; }

static bool is_blocked(pvk_type t) { return pvk_type_get(t)->block_elems > 1; }

/* Whether matvec reads int8 activations for weights of type t (a build with its
 * variant: block types, kernels.py). */
static bool has_int8(pvk_type t) {
    return pvk_ops_reads_weights(t) &&
           pvk_kernels_matvec[t][PVK_LAYOUT_GGUF][PVK_FETCH_BUF][PVK_REDUCE_SUBGROUP][PVK_ACTS_Q8] != PVK_KERNEL_NONE;
}

const pvk_ops_tuning *pvk_ops_get_tuning(const pvk_ops *o) { return &o->t; }

pvk_mm_choice pvk_ops_mm_default(const pvk_ops *o, pvk_type t) {
    bool blocked = pvk_ops_reads_weights(t) && is_blocked(t);
    return (pvk_mm_choice){has_int8(t) && o->t.mv_int_dot, blocked ? o->t.mv_rows_blocked : o->t.mv_rows,
                           o->caps->fp16, o->cm != PVK_CM_COUNT, false, o->t.mv_wg, 1, false};
}

bool pvk_ops_repacks(const pvk_ops *o, pvk_type t) {
    return pvk_ops_can_repack(t) && (o->repack == 1 || (o->repack < 0 && pvk_ops_mm_choice(o, t).repack));
}

pvk_cm pvk_ops_coopmat(const pvk_ops *o) { return o->cm; }

pvk_mm_choice pvk_ops_mm_choice(const pvk_ops *o, pvk_type t) {
    if ((unsigned)t < PVK_TYPE_COUNT && o->mv_set[t]) return o->mv[t];
    return pvk_ops_mm_default(o, t);
}

phivk_status pvk_ops_set_mm_choice(pvk_ops *o, pvk_type t, pvk_mm_choice c) {
    if (!pvk_ops_reads_weights(t)) return pvk_fail(PHIVK_ERR_INVALID, "matvec: no kernel reads type %u", (unsigned)t);
    if (c.int8 && (!has_int8(t) || !o->caps->int_dot || !o->caps->subgroup))
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: %s cannot read int8 activations on %s",
                        pvk_type_get(t)->name, o->caps->name);
    if (c.f16 && !o->caps->fp16)
        return pvk_fail(PHIVK_ERR_INVALID, "matmul: %s has no fp16 arithmetic", o->caps->name);
    if (c.coopmat && o->cm == PVK_CM_COUNT)
        return pvk_fail(PHIVK_ERR_INVALID, "matmul: %s has no cooperative-matrix form of the tiled kernel "
                        "(or PHIVK_DISABLE_COOPMAT is set)", o->caps->name);
    if (c.repack && !pvk_ops_can_repack(t))
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: %s has no repacked layout", pvk_type_get(t)->name);
    if (c.wg && (!is_pow2(c.wg) || c.wg > o->caps->max_wg_invocations))
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: %u invocations per workgroup is not a power of two <= %u",
                        c.wg, o->caps->max_wg_invocations);
    if (c.lf > 4 || (c.lf && !is_pow2(c.lf)))
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: %u loads in flight (1, 2 or 4)", c.lf);
    if (c.lanes && !o->t.mv_lane_rows)
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: lanes owning rows at m 1, but the tuning's mv_lane_rows is 0");
    if (!is_pow2(c.rows) || c.rows > 64)
        return pvk_fail(PHIVK_ERR_INVALID, "matvec: %u rows per workgroup is not a power of two <= 64", c.rows);
    o->mv[t] = c;
    o->mv_set[t] = true;
    return PHIVK_OK;
}

bool pvk_ops_matmul_coopmat(const pvk_ops *o, pvk_type t, uint32_t m) {
    return m > o->t.mv_max_m && o->cm != PVK_CM_COUNT && pvk_ops_mm_choice(o, t).coopmat;
}

bool pvk_ops_matmul_f16(const pvk_ops *o, pvk_type t, uint32_t m) {
    return m > o->t.mv_max_m && (pvk_ops_mm_choice(o, t).f16 || pvk_ops_matmul_coopmat(o, t, m));
}

/* Spreads `groups` workgroups over the device's x limit: gx along x and *fold rows
 * of them along another axis; shaders index by fold * gl_NumWorkGroups.x + x and
 * skip indices past their count. */
static phivk_status fold_grid(const pvk_ops *o, const char *op, uint32_t groups, int axis,
                            uint32_t *gx, uint32_t *fold) {
    uint32_t max_x = o->caps->max_wg_count[0] ? o->caps->max_wg_count[0] : 65535;
    *gx = groups < max_x ? groups : max_x;
    *fold = (groups + *gx - 1) / *gx;
    if (*fold > o->caps->max_wg_count[axis])
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %u workgroups exceed the device's grid", op, groups);
    return PHIVK_OK;
}

/* The reduction the device's kernels use. */
static pvk_reduce reduce_of(const pvk_ops *o) { return o->caps->subgroup ? PVK_REDUCE_SUBGROUP : PVK_REDUCE_SHARED; }

/* Gets the pipeline (cached by the device) and records one dispatch; sg: the
 * subgroup size the kernel needs (0: any). */
static phivk_status dispatch_sg(pvk_ops *o, pvk_cmd *c, pvk_kernel_id id, const char *bindings,
                                const uint32_t *spec, uint32_t n_spec, const void *push,
                                uint32_t push_bytes, const pvk_binding *b, uint32_t gx, uint32_t gy,
                                uint32_t gz, uint32_t sg) {
    pvk_kernel k = {id, bindings, push_bytes, n_spec, spec, sg};
    pvk_pipe *p;
    phivk_status st = pvk_pipe_get(o->dev, &k, &p);
    if (st) return st;
    pvk_cmd_dispatch(c, p, b, push, gx, gy, gz);
    return PHIVK_OK;
}

static phivk_status dispatch(pvk_ops *o, pvk_cmd *c, pvk_kernel_id id, const char *bindings,
                           const uint32_t *spec, uint32_t n_spec, const void *push,
                           uint32_t push_bytes, const pvk_binding *b, uint32_t gx, uint32_t gy,
                           uint32_t gz) {
    return dispatch_sg(o, c, id, bindings, spec, n_spec, push, push_bytes, b, gx, gy, gz, 0);
}

/* One workgroup per row (norms, softmax), rows folded into y. */
static phivk_status dispatch_rows(pvk_ops *o, pvk_cmd *c, const char *op, pvk_kernel_id id, const char *bindings,
                                const void *push, uint32_t push_bytes, const pvk_binding *b,
                                uint32_t rows) {
    uint32_t gx, gy;
    phivk_status st = fold_grid(o, op, rows, 1, &gx, &gy);
    if (st) return st;
    uint32_t spec[2] = {o->t.row_wg, o->caps->subgroup_min};
    return dispatch(o, c, id, bindings, spec, 2, push, push_bytes, b, gx, gy, 1);
}

/* PHIVK_ERR_INVALID unless b is present and holds `floats` f32 values. */
static phivk_status need(const char *op, const char *what, const pvk_buf *b, uint64_t floats) {
    if (!b) return pvk_fail(PHIVK_ERR_INVALID, "%s: %s buffer missing", op, what);
    if (b->size < floats * 4)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %s buffer holds %llu bytes, needs %llu", op, what,
                        (unsigned long long)b->size, (unsigned long long)floats * 4);
    return PHIVK_OK;
}

/* ---------------------------------------------------------------- get_rows */

typedef struct { uint32_t n, cols, row0, nrows, table_rows, pos0; float scale; } get_rows_push;

/* get_rows (ids; times scale) or add_rows (ids NULL: rows pos0.. added). */
/* get_rows with ids, else add_rows: at rows pos0.., or with pos (n 1) at the row
 * read from it when the work runs. */
static phivk_status rows_op(pvk_ops *o, pvk_cmd *c, const char *op, const pvk_tensor *table, const pvk_buf *ids,
                            uint32_t pos0, const pvk_buf *pos, const pvk_buf *out, uint32_t n, float scale) {
    if (!table || !pvk_ops_reads_weights(table->type))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: table type %s has no lookup kernel", op,
                        table ? pvk_type_get(table->type)->name : "(none)");
    if (table->repacked)   /* the loader repacks projections only, never a table */
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: the table is repacked: create it in GGUF's layout", op);
    if (!n) return pvk_fail(PHIVK_ERR_INVALID, "%s: no rows to look up", op);
    phivk_status st;
    if (ids && ids->size < (uint64_t)n * 4)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: ids buffer smaller than %u ids", op, n);
    if (!ids && !pos && (uint64_t)pos0 + n > (uint64_t)table->rows)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: rows %u..%u are past the table's %lld", op, pos0, pos0 + n - 1,
                        (long long)table->rows);
    if ((st = need(op, "out", out, (uint64_t)n * table->cols))) return st;
    uint32_t gx, gy;
    if ((st = fold_grid(o, op, n, 1, &gx, &gy))) return st;
    uint32_t spec[2] = {o->t.row_wg, pos != NULL};
    pvk_kernel_id id = (ids ? pvk_kernels_get_rows : pvk_kernels_add_rows)[table->type][tensor_fetch(table)];
    /* Chunks write the rows whose ids fall in them; the recorder, seeing one output
     * range, orders them (only a table larger than a binding has several). */
    for (uint32_t i = 0; i < table->n_chunks; i++) {
        get_rows_push p = {n, (uint32_t)table->cols, (uint32_t)(i * table->chunk_rows),
                           pvk_tensor_chunk_rows(table, i), (uint32_t)table->rows, pos0, scale};
        /* add_rows reads no ids: its slot holds the position buffer, or a word of out */
        pvk_binding b[3] = {pvk_tensor_bind(table, i), ids ? pvk_bind(ids) : pos ? pvk_bind(pos) : pvk_bind_range(out, 0, 4),
                            pvk_bind(out)};
        if ((st = dispatch(o, c, id, table->views ? "tss" : "sss", spec, 2, &p, sizeof p, b, gx, gy, 1)))
            return st;
    }
    return PHIVK_OK;
}

phivk_status pvk_op_get_rows(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *ids,
                             const pvk_buf *out, uint32_t n) {
    return pvk_op_get_rows_scaled(o, c, table, ids, out, n, 1.0f);
}

phivk_status pvk_op_get_rows_scaled(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *ids,
                                    const pvk_buf *out, uint32_t n, float scale) {
    if (!ids) return pvk_fail(PHIVK_ERR_INVALID, "get_rows: no ids buffer");
    return rows_op(o, c, "get_rows", table, ids, 0, NULL, out, n, scale);
}

phivk_status pvk_op_add_rows(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, uint32_t pos0, const pvk_buf *out,
                             uint32_t n) {
    return rows_op(o, c, "add_rows", table, NULL, pos0, NULL, out, n, 1.0f);
}

phivk_status pvk_op_add_rows_at(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *pos,
                                const pvk_buf *out) {
    if (!pos) return pvk_fail(PHIVK_ERR_INVALID, "add_rows_at: no position buffer");
    return rows_op(o, c, "add_rows", table, NULL, 0, pos, out, 1, 1.0f);
}

uint64_t pvk_q8_bytes(uint32_t rows, uint32_t n) {
    return (uint64_t)rows * n + (uint64_t)rows * (n / 32) * 16;
}

/* PHIVK_ERR_INVALID unless the int8 kernels can run: the device's path, rows of whole
 * blocks, and a q8 buffer that holds them. */
static phivk_status need_q8(const pvk_ops *o, const char *op, const pvk_buf *q8, uint32_t rows, uint32_t n) {
    if (!o->caps->int_dot || !o->caps->subgroup)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: %s has no integer dot product (or subgroup operations)",
                        op, o->caps->name);
    if (n % 32)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: int8 rows of %u are not whole blocks of 32", op, n);
    if (!q8 || q8->size < pvk_q8_bytes(rows, n))
        return pvk_fail(PHIVK_ERR_INVALID, "%s: the int8 buffer is missing or too small for %u x %u", op,
                        rows, n);
    return PHIVK_OK;
}

/* out and/or (q8) its int8 form; out may be NULL only with q8. */
static phivk_status norm(pvk_ops *o, pvk_cmd *c, pvk_norm form, const pvk_buf *x,
                       const pvk_buf *w, const pvk_buf *b, const pvk_buf *out, const pvk_buf *q8,
                       uint32_t rows, uint32_t n, float eps) {
    phivk_status st;
    const char *name = form == PVK_NORM_LAYER ? "layernorm" : "rmsnorm";
    if (!rows || !n) return pvk_fail(PHIVK_ERR_INVALID, "%s: empty shape %u x %u", name, rows, n);
    if ((st = need(name, "x", x, (uint64_t)rows * n)) ||
        ((out || !q8) && (st = need(name, "out", out, (uint64_t)rows * n))) ||
        (w && (st = need(name, "weight", w, n))) || (b && (st = need(name, "bias", b, n))) ||
        (q8 && (st = need_q8(o, name, q8, rows, n))))
        return st;
    /* need_q8 holds the int8 form to subgroup devices, where the build makes it. */
    pvk_kernel_id id = pvk_kernels_norm[form][reduce_of(o)][q8 ? PVK_ACTS_Q8 : PVK_ACTS_F32];
    norm_push p = {rows, n, eps, (w ? 1u : 0u) | (b ? 2u : 0u) | (out ? 4u : 0u)};
    pvk_binding bd[5] = {pvk_bind(x), pvk_bind(w ? w : x), pvk_bind(b ? b : x), pvk_bind(out ? out : q8 ? q8 : x),
                         pvk_bind(q8 ? q8 : x)};
    return dispatch_rows(o, c, name, id, q8 ? "sssss" : "ssss", &p, sizeof p, bd, rows);
}

phivk_status pvk_op_rmsnorm(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                          const pvk_buf *out, uint32_t rows, uint32_t n, float eps) {
    return norm(o, c, PVK_NORM_RMS, x, w, NULL, out, NULL, rows, n, eps);
}

phivk_status pvk_op_layernorm(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                            const pvk_buf *b, const pvk_buf *out, uint32_t rows, uint32_t n,
                            float eps) {
    return norm(o, c, PVK_NORM_LAYER, x, w, b, out, NULL, rows, n, eps);
}

phivk_status pvk_op_rmsnorm_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                             const pvk_buf *out, const pvk_buf *q8, uint32_t rows, uint32_t n,
                             float eps) {
    if (!q8) return pvk_fail(PHIVK_ERR_INVALID, "rmsnorm: int8 buffer missing");
    return norm(o, c, PVK_NORM_RMS, x, w, NULL, out, q8, rows, n, eps);
}

phivk_status pvk_op_layernorm_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                               const pvk_buf *b, const pvk_buf *out, const pvk_buf *q8,
                               uint32_t rows, uint32_t n, float eps) {
    if (!q8) return pvk_fail(PHIVK_ERR_INVALID, "layernorm: int8 buffer missing");
    return norm(o, c, PVK_NORM_LAYER, x, w, b, out, q8, rows, n, eps);
}

phivk_status pvk_op_softmax(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out,
                          uint32_t rows, uint32_t n) {
    phivk_status st;
    if (!rows || !n) return pvk_fail(PHIVK_ERR_INVALID, "softmax: empty shape %u x %u", rows, n);
    if ((st = need("softmax", "x", x, (uint64_t)rows * n)) ||
        (st = need("softmax", "out", out, (uint64_t)rows * n)))
        return st;
    softmax_push p = {rows, n};
    pvk_binding bd[2] = {pvk_bind(x), pvk_bind(out)};
    return dispatch_rows(o, c, "softmax", pvk_kernels_softmax[reduce_of(o)], "ss", &p, sizeof p, bd, rows);
}

/* One invocation per output element of `n` (act.comp); in_floats is what the
 * input must hold. */
static phivk_status act(pvk_ops *o, pvk_cmd *c, const char *name, pvk_act a, const pvk_buf *x,
                      uint64_t in_floats, const pvk_buf *out, uint32_t n, uint32_t n_ff, float limit) {
    phivk_status st;
    uint32_t wg = o->t.elt_wg, gx, gy;
    if (!n) return pvk_fail(PHIVK_ERR_INVALID, "%s: no elements", name);
    if ((st = need(name, "input", x, in_floats)) || (st = need(name, "out", out, n)) ||
        (st = fold_grid(o, name, (n + wg - 1) / wg, 1, &gx, &gy)))
        return st;
    act_push p = {n, n_ff, 0, limit};
    pvk_binding bd[2] = {pvk_bind(x), pvk_bind(out)};
    return dispatch(o, c, pvk_kernels_act[a][PVK_ACTS_F32], "ss", &wg, 1, &p, sizeof p, bd, gx, gy, 1);
}

static phivk_status act_q8(pvk_ops *o, pvk_cmd *c, pvk_act a, const pvk_buf *x, const pvk_buf *out,
                           const pvk_buf *q8, uint32_t rows, uint32_t n, float limit) {
    const char *name = "act_q8";
    pvk_kernel_id id = (unsigned)a < PVK_ACT_COUNT ? pvk_kernels_act[a][PVK_ACTS_Q8] : PVK_KERNEL_NONE;
    if (!id) return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: activation %d has no int8 kernel", name, (int)a);
    uint64_t total = (uint64_t)rows * n;
    uint32_t wg = o->t.elt_wg, gx, gy;
    phivk_status st;
    if (!total || total > UINT32_MAX / 2)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: bad shape %u x %u", name, rows, n);
    bool halves = a == PVK_ACT_SWIGLU || a == PVK_ACT_GEGELU;
    if ((st = need(name, "input", x, halves ? 2 * total : total)) ||
        (out && (st = need(name, "out", out, total))) || (st = need_q8(o, name, q8, rows, n)) ||
        (st = fold_grid(o, name, (uint32_t)(total / 32 + wg - 1) / wg, 1, &gx, &gy)))
        return st;
    act_push p = {(uint32_t)total, n, out ? 1u : 0u, limit};
    pvk_binding bd[3] = {pvk_bind(x), pvk_bind(out ? out : q8), pvk_bind(q8)};
    return dispatch(o, c, id, "sss", &wg, 1, &p, sizeof p, bd, gx, gy, 1);
}

phivk_status pvk_op_act_q8(pvk_ops *o, pvk_cmd *c, pvk_act a, const pvk_buf *x, const pvk_buf *out,
                         const pvk_buf *q8, uint32_t rows, uint32_t n) {
    return act_q8(o, c, a, x, out, q8, rows, n, 0.0f);
}

phivk_status pvk_op_gegelu_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out,
                            const pvk_buf *q8, uint32_t rows, uint32_t n, float limit) {
    return act_q8(o, c, PVK_ACT_GEGELU, x, out, q8, rows, n, limit);
}

/* out = a OP b (eltwise.comp): one invocation per element. */
static phivk_status binary(pvk_ops *o, pvk_cmd *c, const char *name, pvk_kernel_id id, const pvk_buf *a,
                         const pvk_buf *b, const pvk_buf *out, uint32_t n) {
    phivk_status st;
    uint32_t wg = o->t.elt_wg, gx, gy;
    if (!n) return pvk_fail(PHIVK_ERR_INVALID, "%s: no elements", name);
    if ((st = need(name, "a", a, n)) || (st = need(name, "b", b, n)) || (st = need(name, "out", out, n)) ||
        (st = fold_grid(o, name, (n + wg - 1) / wg, 1, &gx, &gy)))
        return st;
    eltwise_push p = {n, gx * wg};
    pvk_binding bd[3] = {pvk_bind(a), pvk_bind(b), pvk_bind(out)};
    return dispatch(o, c, id, "sss", &wg, 1, &p, sizeof p, bd, gx, gy, 1);
}

phivk_status pvk_op_add(pvk_ops *o, pvk_cmd *c, const pvk_buf *a, const pvk_buf *b,
                      const pvk_buf *out, uint32_t n) {
    return binary(o, c, "add", PVK_KERNEL_ADD, a, b, out, n);
}

phivk_status pvk_op_mul(pvk_ops *o, pvk_cmd *c, const pvk_buf *a, const pvk_buf *b,
                      const pvk_buf *out, uint32_t n) {
    return binary(o, c, "mul", PVK_KERNEL_MUL, a, b, out, n);
}

phivk_status pvk_op_silu(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out, uint32_t n) {
    return act(o, c, "silu", PVK_ACT_SILU, x, n, out, n, 0, 0.0f);
}

phivk_status pvk_op_gelu(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out, uint32_t n) {
    return act(o, c, "gelu", PVK_ACT_GELU, x, n, out, n, 0, 0.0f);
}

phivk_status pvk_op_swiglu(pvk_ops *o, pvk_cmd *c, const pvk_buf *gu, const pvk_buf *out,
                         uint32_t rows, uint32_t n_ff) {
    uint64_t n = (uint64_t)rows * n_ff;
    if (n > UINT32_MAX / 2)
        return pvk_fail(PHIVK_ERR_INVALID, "swiglu: %u x %u elements are too many", rows, n_ff);
    return act(o, c, "swiglu", PVK_ACT_SWIGLU, gu, 2 * n, out, (uint32_t)n, n_ff, 0.0f);
}

phivk_status pvk_op_gegelu(pvk_ops *o, pvk_cmd *c, const pvk_buf *gu, const pvk_buf *out,
                         uint32_t rows, uint32_t n_ff, float limit) {
    uint64_t n = (uint64_t)rows * n_ff;
    if (n > UINT32_MAX / 2)
        return pvk_fail(PHIVK_ERR_INVALID, "gegelu: %u x %u elements are too many", rows, n_ff);
    if (!(limit >= 0) || !isfinite(limit))
        return pvk_fail(PHIVK_ERR_INVALID, "gegelu: limit %g must be finite and not negative", (double)limit);
    return act(o, c, "gegelu", PVK_ACT_GEGELU, gu, 2 * n, out, (uint32_t)n, n_ff, limit);
}

phivk_status pvk_op_matmul(pvk_ops *o, pvk_cmd *c, const pvk_tensor *w, const pvk_buf *bias,
                         const pvk_buf *x, const pvk_buf *y, uint32_t m, bool accumulate) {
    pvk_input in = {.f32 = x};
    return pvk_op_matmul_in(o, c, w, bias, &in, y, m, accumulate, w ? (uint32_t)w->rows : 0, 0);
}

/* Whether a matvec of t at m columns has lanes owning rows (mv_lane_rows): it reads f32 x. */
static bool lane_rows_at(const pvk_ops *o, pvk_type t, uint32_t m) {
    return m <= o->t.mv_max_m && o->t.mv_lane_rows && (m > 1 || pvk_ops_mm_choice(o, t).lanes);
}

bool pvk_ops_reads_q8(const pvk_ops *o, pvk_type t, uint32_t m) {
    return m <= o->t.mv_max_m && pvk_ops_reads_weights(t) && !lane_rows_at(o, t, m) && pvk_ops_mm_choice(o, t).int8;
}

bool pvk_ops_can_fuse(const pvk_ops *o, pvk_type t, uint32_t m) {
    return pvk_ops_reads_q8(o, t, m) && o->caps->int_dot && o->caps->subgroup &&
           pvk_kernels_matvec_act[t][PVK_LAYOUT_GGUF][PVK_FETCH_BUF][PVK_ACT_SWIGLU] != PVK_KERNEL_NONE;
}

bool pvk_ops_fuses(const pvk_ops *o, pvk_fusion what, pvk_type t, uint32_t m) {
    return what != PVK_FUSION_NONE && o->fusion >= what && pvk_ops_can_fuse(o, t, m);
}

phivk_status pvk_op_matmul_in(pvk_ops *o, pvk_cmd *c, const pvk_tensor *w, const pvk_buf *bias,
                            const pvk_input *in, const pvk_buf *y, uint32_t m, bool accumulate,
                            uint32_t y_stride, uint32_t y_col) {
    phivk_status st;
    if (!w || !pvk_ops_reads_weights(w->type))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "matmul: weight type %s has no matrix kernel",
                        w ? pvk_type_get(w->type)->name : "(none)");
    if (!m) return pvk_fail(PHIVK_ERR_INVALID, "matmul: m is 0");
    uint32_t k = (uint32_t)w->cols, n = (uint32_t)w->rows;
    if (y_col + (uint64_t)n > y_stride)
        return pvk_fail(PHIVK_ERR_INVALID, "matmul: columns %u..%u outside rows of %u", y_col, y_col + n, y_stride);
    const struct pvk_norm_in *nin = in->pre ? in->norm : NULL;
    bool pre = in->pre != NULL, swiglu = pre && !nin && in->act == PVK_ACT_SWIGLU;
    if (pre && ((!nin && (in->act == PVK_ACT_SILU || (unsigned)in->act >= PVK_ACT_COUNT)) ||
                (nin && (unsigned)nin->form >= PVK_NORM_COUNT) || !pvk_ops_can_fuse(o, w->type, m) || k % 32))
        return pvk_fail(PHIVK_ERR_INVALID, "matmul: %s at m %u cannot make its input in its prologue "
                        "(pvk_ops_can_fuse)", pvk_type_get(w->type)->name, m);
    if (nin && ((nin->w && (st = need("matmul", "norm weight", nin->w, k))) ||
                (nin->b && (st = need("matmul", "norm bias", nin->b, k)))))
        return st;
    bool q8 = pre || (in->q8 && pvk_ops_reads_q8(o, w->type, m));
    const pvk_buf *x = pre ? in->pre : q8 ? in->q8 : in->f32;
    if ((st = pre ? need("matmul", "activation input", x, (uint64_t)m * k * (swiglu ? 2 : 1))
              : q8 ? need_q8(o, "matmul", x, m, k) : need("matmul", "x", x, (uint64_t)m * k)) ||
        (st = need("matmul", "y", y, (uint64_t)(m - 1) * y_stride + y_col + n)) ||
        (bias && (st = need("matmul", "bias", bias, (uint64_t)y_col + n))))
        return st;

    bool mv = m <= o->t.mv_max_m;
    pvk_kernel_id id;
    uint32_t spec[6], n_spec, per_group, gy, sg = 0;
    cm_tile cm;
    /* Lanes own rows, x through the sampler: its range whole 16-byte texels. */
    bool lanes = mv && lane_rows_at(o, w->type, m) && !q8 && (is_blocked(w->type) || k % 8 == 0) &&
                 x->offset % o->caps->texel_align == 0 && x->size % 16 == 0 &&
                 x->size / 16 <= o->caps->max_texel_elems;
    if (lanes) {
        uint32_t nc = 1;
        while (nc < m && nc < MV_MAX_COLS) nc *= 2;
        id = pvk_kernels_matvec_lanes[w->type][tensor_layout(w)][tensor_fetch(w)];
        spec[0] = o->t.mv_wg, spec[1] = o->t.mv_lane_rows, spec[2] = nc, spec[3] = o->caps->subgroup_min, spec[4] = 1;
        n_spec = 5;
        per_group = o->t.mv_wg * o->t.mv_lane_rows;
        gy = (m + nc - 1) / nc;
    } else if (mv) {
        uint32_t nc = 1;
        while (nc < m && nc < o->t.mv_cols) nc *= 2;
        /* q8 only where the type has the variant (pvk_ops_reads_q8) and on subgroup devices (need_q8). */
        pvk_layout lay = tensor_layout(w);
        id = nin ? pvk_kernels_matvec_norm[w->type][lay][tensor_fetch(w)][nin->form]
             : pre ? pvk_kernels_matvec_act[w->type][lay][tensor_fetch(w)][in->act]
                 : pvk_kernels_matvec[w->type][lay][tensor_fetch(w)][reduce_of(o)][q8 ? PVK_ACTS_Q8 : PVK_ACTS_F32];
        pvk_mm_choice mc = pvk_ops_mm_choice(o, w->type);
        per_group = mc.rows;
        if (nc > 1 && per_group < o->t.mv_rows_cols)
            per_group = o->t.mv_rows_cols;
        if (is_blocked(w->type))
            while (per_group > 1 && per_group * nc > MV_MAX_ACC) per_group /= 2;
        spec[0] = mc.wg ? mc.wg : o->t.mv_wg, spec[1] = per_group, spec[2] = nc, spec[3] = o->caps->subgroup_min;
        spec[4] = mc.lf ? mc.lf : 1;
        n_spec = 5;
        gy = (m + nc - 1) / nc;
    } else if (pvk_ops_matmul_coopmat(o, w->type, m) && tensor_layout(w) == PVK_LAYOUT_GGUF &&
               cm_tile_of(o->caps, &o->t, o->cm, &cm)) {
        /* (the cooperative-matrix forms read GGUF's layout only: kernels.py) */
        /* Subgroups own the blocks (gl_SubgroupID): the pipeline gets the device's
         * subgroup size, which the workgroup size was counted in. */
        id = pvk_kernels_matmul_cm[w->type][tensor_fetch(w)][o->cm];
        spec[0] = cm.wg, spec[1] = cm.bm, spec[2] = cm.bn, spec[3] = cm.bk, spec[4] = cm.tm, spec[5] = cm.tn;
        n_spec = 6;
        per_group = cm.bn;
        gy = (m + cm.bm - 1) / cm.bm;
        sg = o->caps->subgroup_size;
    } else {
        pvk_prec prec = pvk_ops_matmul_f16(o, w->type, m) ? PVK_PREC_F16 : PVK_PREC_F32;
        id = pvk_kernels_matmul[w->type][tensor_layout(w)][tensor_fetch(w)][prec];
        const pvk_ops_tuning *t = &o->t;
        spec[0] = (t->mm_bm / t->mm_tm) * (t->mm_bn / t->mm_tn);
        spec[1] = t->mm_bm, spec[2] = t->mm_bn, spec[3] = t->mm_bk, spec[4] = t->mm_tm, spec[5] = t->mm_tn;
        n_spec = 6;
        per_group = t->mm_bn;
        gy = (m + t->mm_bm - 1) / t->mm_bm;
    }
    /* Chunks (and the parts of a projection, each a call) write disjoint columns of y.
     * Of one row those are one range: bound alone where its offset may be, the
     * recorder sees them apart and orders nothing between them (nor does the
     * validation layer, which sees bindings whole). */
    for (uint32_t i = 0; i < w->n_chunks; i++) {
        uint32_t rows = pvk_tensor_chunk_rows(w, i), y_off = y_col + (uint32_t)(i * w->chunk_rows);
        bool narrow = m == 1 && 4ull * y_off % o->caps->storage_align == 0;
        mm_norm_push p = {{k, rows, m, y_stride, narrow ? 0 : y_off,
                            (bias ? MM_BIAS : 0u) | (accumulate ? MM_ACCUMULATE : 0u) |
                                (nin && nin->w ? MM_NORM_W : 0u) | (nin && nin->b ? MM_NORM_B : 0u)},
                           nin ? nin->eps : 0};
        pvk_binding yb = narrow ? pvk_bind_range(y, 4ull * y_off, 4ull * rows) : pvk_bind(y);
        pvk_binding bb = !bias ? pvk_bind(x) /* a read-only stand-in: no hazard */
                         : narrow ? pvk_bind_range(bias, 4ull * y_off, 4ull * rows) : pvk_bind(bias);
        /* The norm's weight and bias (absent: x, never read) follow for -DPRO_NORM. */
        pvk_binding bd[6] = {pvk_tensor_bind(w, i), pvk_bind(x), bb, yb,
                             pvk_bind(nin && nin->w ? nin->w : x), pvk_bind(nin && nin->b ? nin->b : x)};
        const char *bindings = w->views ? (nin ? "tsssss" : "tsss") : (nin ? "ssssss" : "ssss");
        if (lanes) {   /* x through the sampler (matvec.comp -DLANE_ROWS) */
            VkBufferView xv;
            if ((st = pvk_buf_texels(o->dev, x, &xv))) return st;
            bd[1] = pvk_bind_view(xv, x, 0, x->size);
            bindings = w->views ? "ttss" : "stss";
        }
        uint32_t gx, gz;
        if ((st = fold_grid(o, "matmul", (rows + per_group - 1) / per_group, 2, &gx, &gz)) ||
            (st = dispatch_sg(o, c, id, bindings, spec, n_spec, &p, nin ? sizeof p : sizeof p.mm, bd, gx, gy, gz, sg)))
            return st;
    }
    return PHIVK_OK;
}

/* The distinct types of types[0..n) before index i do not include types[i]. */
static bool first_of_type(const pvk_type *types, int i) {
    for (int j = 0; j < i; j++)
        if (types[j] == types[i]) return false;
    return true;
}

phivk_status pvk_ops_warmup(pvk_ops *o, const pvk_type *types, int n_types, pvk_type table_type) {
    enum { COLS = 256 };   /* one K-quant super-block: a valid row for every type */
    uint32_t ms[2] = {1, MV_MAX_COLS};
    if (o->t.mv_max_m < MV_MAX_COLS) ms[1] = o->t.mv_max_m + 1;   /* the tiled kernel */
    pvk_dev *d = o->dev;
    pvk_cmd *c = NULL;
    pvk_tensor *ws = calloc((size_t)n_types + 1, sizeof *ws);
    pvk_buf x = {0}, y = {0}, ids = {0}, xq = {0};
    int n_ws = 0;
    phivk_status st = ws ? PHIVK_OK : pvk_fail(PHIVK_ERR_HOST_MEMORY, "warmup: out of host memory");
    if (st || (st = pvk_buf_create(d, 4ull * COLS * MV_MAX_COLS, PVK_MEM_DEVICE, &x)) ||
        (st = pvk_buf_create(d, 4ull * COLS * MV_MAX_COLS, PVK_MEM_DEVICE, &y)) ||
        (st = pvk_buf_create(d, 4, PVK_MEM_DEVICE, &ids)) ||
        (st = pvk_buf_create(d, pvk_q8_bytes(MV_MAX_COLS, COLS), PVK_MEM_DEVICE, &xq)) ||
        (st = pvk_cmd_create(d, &c)) ||
        (st = pvk_cmd_begin(c)))
        goto out;
    /* Zero weights and inputs: the results are discarded, but nothing reads
     * uninitialised memory. The tensors live until the submit has finished. */
    for (int i = 0; i <= n_types; i++) {
        pvk_type t = i < n_types ? types[i] : table_type;
        if (i < n_types && !first_of_type(types, i)) continue;
        if (!pvk_ops_reads_weights(t)) {
            st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "warmup: weight type %s has no kernels",
                          pvk_type_get(t)->name ? pvk_type_get(t)->name : "(unknown)");
            goto out;
        }
        /* In the layout the loader will create the type's matrices in. */
        bool repack = i < n_types && pvk_ops_repacks(o, t);
        if ((st = pvk_tensor_create_layout(d, t, COLS, 1, NULL, repack, &ws[n_ws]))) goto out;
        pvk_cmd_fill(c, &ws[n_ws].buf, 0, ws[n_ws].buf.size, 0);
        n_ws++;
    }
    pvk_cmd_fill(c, &x, 0, x.size, 0);
    pvk_cmd_fill(c, &ids, 0, ids.size, 0);
    pvk_cmd_fill(c, &xq, 0, xq.size, 0);
    pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE);
    pvk_input in = {.f32 = &x, .q8 = &xq};   /* the int8 variants where the type reads them */
    for (int i = 0; i < n_ws && !st; i++) {
        if (i == n_ws - 1) {
            st = pvk_op_get_rows(o, c, &ws[i], &ids, &y, 1);
        } else {
            for (int k = 0; k < 2 && !st; k++) {
                st = pvk_op_matmul_in(o, c, &ws[i], NULL, &in, &y, ms[k], false, 1, 0);
            }
        }
    }
    if (!st) st = pvk_cmd_submit(c);
out:
    pvk_cmd_destroy(c);
    for (int i = 0; i < n_ws; i++) pvk_tensor_destroy(d, &ws[i]);
    free(ws);
    pvk_buf_destroy(d, &x);
    pvk_buf_destroy(d, &y);
    pvk_buf_destroy(d, &ids);
    pvk_buf_destroy(d, &xq);
    return st;
}
