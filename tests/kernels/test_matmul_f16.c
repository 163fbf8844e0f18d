/* The tiled matmul's fp16 variant (shaders/matmul.comp -DF16: fp16 tiles, products
 * summed in fp16 over runs of 8 k, then in f32). meson runs this binary twice: as
 * the device comes (lavapipe has shaderFloat16, so the fp16 path) and with
 * PHIVK_DISABLE_F16=1 (the f32 fallback); every case runs the tiled kernel through
 * two tunings, lavapipe's tile (32x32x16) for every m and a discrete GPU's (64x64x16)
 * above m 8. Three kinds of check:
 * - which path ran: x = 1 + 2^-12 is not an fp16 value, so only the fp16 path
 *   turns a sum of K such x times 1 into exactly K;
 * - data on which both paths are exact (multiples of 1/4 times small weights: every
 *   product and run sum fits fp16's 11 bits, every total f32's 24), so any indexing
 *   slip shows however small, up to K 17920 where a lost product hides within the
 *   random data's bound;
 * - random data against the double reference within the fp16 bound (check.c). */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpu.h"
#include "quant.h"
#include "ref.h"

/* lavapipe's tile (32x32x16) for every m; a discrete GPU's (64x64x16) above m 8. */
enum { TILED, GPU_LIKE };
static pvk_ops *ops[2];
static pvk_cmd *cmd;

static pvk_dev *setup(void) {
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    pvk_ops_tuning t[2] = {pvk_ops_default_tuning(pvk_dev_caps(d)), check_gpu_like_tuning(pvk_dev_caps(d))};
    t[TILED].mv_max_m = 0;
    return check_setup(2, t, ops, &cmd);
}

TEST(tiled_matmul_takes_the_fp16_path_exactly_when_the_device_has_fp16) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *c = pvk_dev_caps(d);
    bool off = getenv("PHIVK_DISABLE_F16") != NULL;
    printf("    %s: fp16 %d\n", c->name, c->fp16);
    if (off) CHECK(!c->fp16, "PHIVK_DISABLE_F16 set but caps.fp16");
    else if (strstr(c->name, "llvmpipe")) CHECK(c->fp16, "lavapipe offers shaderFloat16");
    CHECK(pvk_ops_matmul_f16(ops[TILED], PVK_F16, 1) == c->fp16 && pvk_ops_matmul_f16(ops[GPU_LIKE], PVK_Q4_0, 9) == c->fp16,
          "the tiled kernel is fp16 iff caps.fp16");
    CHECK(!pvk_ops_matmul_f16(ops[GPU_LIKE], PVK_Q4_0, 8), "matvec (m <= mv_max_m) stays f32");
}

/* y = x W^T + bias + y0 for stored W of type t [n][k] with exact values wv, against
 * the double reference of what the path multiplies (xref: x as the path holds it),
 * within tol (0: bit-exact). The number of mismatches, or -1 when a call failed. */
static int run_case(pvk_ops *o, pvk_type t, const void *stored, const float *wv, const float *x,
                    const float *xref, const float *bias, const float *y0, int m, int n, int k, float tol) {
    pvk_dev *d = pvk_ops_dev(o);
    size_t ny = (size_t)m * n;
    float *want = malloc(ny * 4), *got = malloc(ny * 4), *absdot = malloc(ny * 4);
    memcpy(want, y0, ny * 4);
    ref_matmul(wv, bias, xref, want, absdot, m, n, k, true);
    int bad = -1;
    pvk_tensor w = {0};
    pvk_buf bx = check_upload(d, x, (size_t)m * k), bb = check_upload(d, bias, n);
    pvk_buf by = check_upload(d, y0, ny);
    if (!pvk_tensor_create(d, t, k, n, stored, &w) && !pvk_cmd_begin(cmd) &&
        !pvk_op_matmul(o, cmd, &w, &bb, &bx, &by, (uint32_t)m, true) && !pvk_cmd_submit(cmd) &&
        !pvk_buf_read(d, &by, 0, got, ny * 4)) {
        char what[64];
        snprintf(what, sizeof what, "y(%s m %d n %d k %d)", pvk_type_get(t)->name, m, n, k);
        bad = check_mismatches(what, got, want, NULL, tol, ny);
    } else {
        printf("    %s m %d n %d k %d: %s\n", pvk_type_get(t)->name, m, n, k, pvk_errmsg());
    }
    pvk_tensor_destroy(d, &w);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bb);
    pvk_buf_destroy(d, &by);
    free(want), free(got), free(absdot);
    return bad;
}

TEST(x_is_rounded_to_fp16_only_on_the_fp16_path) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    bool f16 = pvk_dev_caps(d)->fp16;
    enum { M = 9, N = 3, K = 40 };   /* the 8-wide path with a partial BK tile */
    float w[N * K], x[M * K], xref[M * K], zero[M * N] = {0};
    /* fp16 holds each x as 1, so y is exactly 40; f32 gives 40 (1 + 2^-12), exact too. */
    for (int i = 0; i < N * K; i++) w[i] = 1;
    for (int i = 0; i < M * K; i++) x[i] = 1 + 0x1p-12f, xref[i] = f16 ? 1 : x[i];
    for (int j = 0; j < 2; j++)
        CHECK(run_case(ops[j], PVK_F32, w, w, x, xref, zero, zero, M, N, K, 0) == 0, "%s tuning, %s path",
              j == TILED ? "tiled" : "gpu-like", f16 ? "fp16" : "f32");
}

/* Weights of type t with values q/4, q an integer in [qmin, 7] (qmin >= -8), stored
 * exactly (block types: d = 1/4, Q8_0 q as is, Q4_0 q + 8 as the nibble). */
static void quarter_weights(ref_rng *r, pvk_type t, int n, int k, int qmin, uint8_t *stored, float *v) {
    size_t total = (size_t)n * k;
    for (size_t i = 0; i < total; i++) v[i] = (float)((int)ref_uniform(r, 0, 7.999f - qmin) + qmin) / 4;
    uint16_t d = quant_f32_to_f16(0.25f);
    size_t bb = t == PVK_Q8_0 ? 34 : 18;
    for (size_t i = 0; i < total; i++) {
        int q = (int)(v[i] * 4);
        if (t == PVK_F32) memcpy(stored + 4 * i, &v[i], 4);
        else if (t == PVK_F16 || t == PVK_BF16) {
            uint16_t h = t == PVK_F16 ? quant_f32_to_f16(v[i]) : quant_f32_to_bf16(v[i]);
            memcpy(stored + 2 * i, &h, 2);
        } else {
            uint8_t *b = stored + i / 32 * bb;
            memcpy(b, &d, 2);
            if (t == PVK_Q8_0) b[2 + i % 32] = (uint8_t)(int8_t)q;
            else if (i % 32 < 16) b[2 + i % 32] = (uint8_t)(q + 8);
            else b[2 + i % 16] |= (uint8_t)((q + 8) << 4);
        }
    }
}

/* One bit-exact case: weights q/4 with q in [qmin, 7], x, bias and y0 multiples of
 * 1/4 in [qmin/8, 1] (qmin -8: both signs; 0: none negative). The number of
 * mismatches, or -1 when a call failed. */
static int exact_case(pvk_ops *o, pvk_type t, int m, int n, int k, int qmin, uint64_t seed) {
    ref_rng r = {seed};
    uint8_t *stored = malloc(pvk_type_row_bytes(t, k) * n);
    float *w = malloc(sizeof *w * n * k), *x = malloc(sizeof *x * m * k);
    float *bias = malloc(sizeof *bias * n), *y0 = malloc(sizeof *y0 * m * n);
    quarter_weights(&r, t, n, k, qmin, stored, w);
    float *fill[3] = {x, bias, y0};
    size_t len[3] = {(size_t)m * k, (size_t)n, (size_t)m * n};
    for (int f = 0; f < 3; f++)
        for (size_t e = 0; e < len[f]; e++)
            fill[f][e] = (float)((int)ref_uniform(&r, 0, 4.999f - qmin / 2) + qmin / 2) / 4;
    int bad = run_case(o, t, stored, w, x, x, bias, y0, m, n, k, 0);
    free(stored), free(w), free(x), free(bias), free(y0);
    return bad;
}

/* x, bias, y0 multiples of 1/4 in [-1, 1], weights in [-2, 2]: products are
 * multiples of 1/16 up to 2, a run of 8 sums to at most 256 sixteenths (fp16 holds
 * 2048) and a total of K terms to at most 2K + 2 (f32: 2^24 sixteenths), so both
 * paths are exact and must match the reference bit for bit. */
TEST(exactly_representable_data_gives_bit_exact_results_on_either_path) {
    REQUIRE(setup(), "no device");
    pvk_type ts[] = {PVK_F32, PVK_F16, PVK_BF16, PVK_Q8_0, PVK_Q4_0};
    for (int i = 0; i < 5; i++) {
        bool blocks = pvk_type_get(ts[i])->block_elems > 1;
        /* Plain types: odd K (one element at a time) and K 1000 (8 at a time, a
         * partial BK tile); block types whole blocks. m and n odd, partial tiles. */
        struct { pvk_ops *o; int m, n, k; } cases[2] = {
            {ops[TILED], 9, 33, blocks ? 96 : 41}, {ops[GPU_LIKE], 70, 65, blocks ? 3072 : 1000}};
        for (int j = 0; j < 2; j++)
            CHECK(exact_case(cases[j].o, ts[i], cases[j].m, cases[j].n, cases[j].k, -8, 1000 + 10 * i + j) == 0,
                  "%s m %d n %d k %d", pvk_type_get(ts[i])->name, cases[j].m, cases[j].n, cases[j].k);
    }
}

/* At Phi-3-medium's K of 17920 (and 17921: one element at a time, a partial last
 * tile) the rounding bound of random data (next test) exceeds what a few products
 * weigh, so this is the check that every one of the K products is counted once.
 * Non-negative data, so the totals are large and nothing cancels: x, bias, y0 in
 * {0, 1/4, .., 1}, weights in {0, 1/4, .., 7/4}. Products are multiples of 1/16
 * up to 7/4, a run of 8 at most 14 (224 sixteenths: exact in fp16), a total at most
 * 7/4 K + 2 < 31400 (502,000 sixteenths: exact in f32, not in fp16, whose step is
 * 16 there), so the result is exact on either path only if every product is
 * counted once and the runs are widened to f32; a single product dropped or
 * repeated moves an output by a multiple of 1/16 (most by far more). */
TEST(long_k_exact_data_counts_every_product_once) {
    REQUIRE(setup(), "no device");
    pvk_type ts[] = {PVK_F32, PVK_F16, PVK_BF16, PVK_Q8_0, PVK_Q4_0};
    for (int i = 0; i < 5; i++) {
        bool blocks = pvk_type_get(ts[i])->block_elems > 1;
        struct { pvk_ops *o; int m, n, k; } cases[2] = {{ops[TILED], 9, 33, blocks ? 17920 : 17921},
                                                        {ops[GPU_LIKE], 9, 65, 17920}};
        for (int j = 0; j < 2; j++)
            CHECK(exact_case(cases[j].o, ts[i], cases[j].m, cases[j].n, cases[j].k, 0, 1200 + 10 * i + j) == 0,
                  "%s m %d n %d k %d", pvk_type_get(ts[i])->name, cases[j].m, cases[j].n, cases[j].k);
    }
}

/* Random weights (ref_weights) and x against the double reference, each output
 * within the fp16 path's bound for its own sum|x w| on the fp16 run (11 eps16 of it
 * on top of the f32 path's rounding, check.c) and the f32 bound on the fallback
 * run. At K 17920 that bound is tens (a worst case that grows with K, as the
 * outputs' spread grows with sqrt K), wider than a few products: the previous test
 * is the one that sees a lost product. */
TEST(random_data_matches_the_reference_within_the_fp16_rounding_bound) {
    REQUIRE(setup(), "no device");
    pvk_type ts[] = {PVK_F32, PVK_F16, PVK_BF16, PVK_Q4_0, PVK_Q4_K, PVK_Q6_K, PVK_Q8_0};
    for (int i = 0; i < 7; i++) {
        bool blocks = pvk_type_get(ts[i])->block_elems > 1;
        /* Plain types: odd K, K 1000 (not a multiple of BK) and 3072; block types one
         * K-quant super-block and 3072; every type Phi-3-medium's 17920. */
        struct { pvk_ops *o; int m, n, k; } cases[3] = {{ops[TILED], 9, 33, blocks ? 256 : 257},
                                                        {ops[GPU_LIKE], 70, 65, blocks ? 3072 : 1000},
                                                        {ops[TILED], 33, 17, 3072}};
        for (int j = 0; j < (blocks ? 2 : 3); j++)
            CHECK(check_matmul(cmd, cases[j].o, ts[i], cases[j].m, cases[j].n, cases[j].k, j != 1, j != 0,
                               1100 + 10 * i + j, NULL) == 0,
                  "%s m %d n %d k %d", pvk_type_get(ts[i])->name, cases[j].m, cases[j].n, cases[j].k);
        CHECK(check_matmul(cmd, ops[GPU_LIKE], ts[i], 9, 17, 17920, true, true, 1100 + 10 * i + 3, NULL) == 0,
              "%s m 9 n 17 k 17920", pvk_type_get(ts[i])->name);
    }
}
