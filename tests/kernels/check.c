#include "check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "ref.h"

#define EPS FLT_EPSILON
#define EPS16 0x1p-10   /* one fp16 ulp at 1 */

pvk_buf check_upload(pvk_dev *d, const float *v, size_t n) {
    pvk_buf b = {0};
    if (pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &b) || (v && pvk_buf_write(d, &b, 0, v, n * 4)))
        printf("    upload: %s\n", pvk_errmsg());
    return b;
}

int check_mismatches(const char *what, const float *got, const float *want, const float *tol,
                     float tol0, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float t = tol ? tol[i] : tol0;
        if (fabsf(got[i] - want[i]) <= t) continue;
        if (bad++ < 3)
            printf("    %s[%zu] = %.9g, want %.9g +- %.3g\n", what, i, got[i], want[i], t);
    }
    return bad;
}

void check_weight_magnitudes(pvk_type t, const float *w, float *mag, size_t n) {
    size_t group = pvk_type_get(t)->block_elems > 1 ? 32 : 1;
    for (size_t g = 0; g < n; g += group) {
        float amax = 0;
        for (size_t i = g; i < g + group; i++) amax = fmaxf(amax, fabsf(w[i]));
        for (size_t i = g; i < g + group; i++) mag[i] = group > 1 ? fabsf(w[i]) + 2.2f * amax : fabsf(w[i]);
    }
}

void check_q8_decode(const uint8_t *q8, int rows, int n, float *x) {
    const float *meta = (const float *)(q8 + (size_t)rows * n);
    for (size_t i = 0; i < (size_t)rows * n; i++) x[i] = meta[4 * (i / 32)] * (float)(int8_t)q8[i];
}

/* The matmul of check_matmul, with x given to the op in f32 and (q8) also as int8
 * made by pvk_op_act_q8; when the op reads the int8 form, the reference multiplies
 * what it holds (check_q8_decode), so the comparison is of the product alone.
 * With pre (an activation, GELU or SWIGLU), x is that activation's input and the op
 * applies it in its prologue; the reference multiplies the int8 that the standalone
 * pvk_op_act_q8 makes of the same input. */
static int matmul_case(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias,
                       bool acc, uint64_t seed, uint32_t *chunks, bool q8, const pvk_act *pre,
                       const pvk_norm *norm_form) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    size_t wn = (size_t)n * k;
    void *stored = malloc(pvk_type_row_bytes(t, k) * n);
    float *wv = malloc(wn * 4), *wmag = malloc(wn * 4), *x = malloc((size_t)m * k * 4), *bv = malloc(n * 4);
    float *absdot = malloc((size_t)m * n * 4), *scratch = malloc((size_t)m * n * 4);
    float *y0 = malloc((size_t)m * n * 4), *want = malloc((size_t)m * n * 4);
    float *got = malloc((size_t)m * n * 4), *tol = malloc((size_t)m * n * 4);
    size_t pre_n = (size_t)m * k * (pre && *pre == PVK_ACT_SWIGLU ? 2 : 1);
    float *xp = pre ? malloc(pre_n * 4) : NULL;
    ref_weights(&rng, t, n, k, stored, wv);
    ref_fill(&rng, x, (size_t)m * k, -1, 1);
    if (pre) ref_fill(&rng, xp, pre_n, -2, 2);
    /* With norm_form (and pre = COPY, which sizes x), x is the norm's input. */
    float *nw = norm_form ? malloc((size_t)k * 4) : NULL, *nb = norm_form ? malloc((size_t)k * 4) : NULL;
    if (norm_form) {
        ref_fill(&rng, xp, pre_n, -1, 3);   /* a mean for layernorm to remove */
        ref_fill(&rng, nw, k, -2, 2);
        ref_fill(&rng, nb, k, -1, 1);
    }
    ref_fill(&rng, bv, n, -1, 1);
    ref_fill(&rng, y0, (size_t)m * n, -1, 1);

    int bad = -1;
    pvk_tensor w = {0};
    pvk_buf bx = {0}, bb = {0}, by = {0}, bq = {0}, bnw = {0}, bnb = {0};
    uint8_t *xq = NULL;
    bool reads_q8 = (q8 && pvk_ops_reads_q8(o, t, (uint32_t)m)) || pre;
    uint64_t q8_bytes = pvk_q8_bytes((uint32_t)m, (uint32_t)k);
    /* In the layout o gives the type (pvk_ops_repacks: PHIVK_REPACK or its choice). */
    if (pvk_tensor_create_layout(d, t, k, n, stored, pvk_ops_repacks(o, t), &w)) goto out;
    bx = pre ? check_upload(d, xp, pre_n) : check_upload(d, x, (size_t)m * k);
    bb = check_upload(d, bv, n), by = check_upload(d, y0, (size_t)m * n);
    if (norm_form) bnw = check_upload(d, nw, k), bnb = check_upload(d, nb, k);
    const float eps = 1e-5f;
    struct pvk_norm_in nin = {norm_form ? *norm_form : PVK_NORM_RMS, &bnw, norm_form && *norm_form == PVK_NORM_LAYER ? &bnb : NULL, eps};
    if (reads_q8 && (!(xq = malloc(q8_bytes)) || pvk_buf_create(d, q8_bytes, PVK_MEM_DEVICE, &bq))) goto out;
    pvk_input in = {.f32 = &bx, .q8 = reads_q8 ? &bq : NULL};
    if (pre) in = (pvk_input){.pre = &bx, .act = *pre, .norm = norm_form ? &nin : NULL};
    if (pvk_cmd_begin(cmd)) goto out;
    /* The standalone kernel's int8 of the same input, for the reference; the recorder
     * orders the matmul's reads after it (and, with pre, the matmul reads none of it). */
    if (norm_form && (*norm_form == PVK_NORM_RMS
                          ? pvk_op_rmsnorm_q8(o, cmd, &bx, &bnw, NULL, &bq, (uint32_t)m, (uint32_t)k, eps)
                          : pvk_op_layernorm_q8(o, cmd, &bx, &bnw, &bnb, NULL, &bq, (uint32_t)m, (uint32_t)k, eps)))
        goto out;
    if (!norm_form && reads_q8 &&
        pvk_op_act_q8(o, cmd, pre ? *pre : PVK_ACT_COPY, &bx, NULL, &bq, (uint32_t)m, (uint32_t)k))
        goto out;
    if (pvk_op_matmul_in(o, cmd, &w, bias ? &bb : NULL, &in, &by, (uint32_t)m, acc, (uint32_t)n, 0) ||
        pvk_cmd_submit(cmd) || pvk_buf_read(d, &by, 0, got, (size_t)m * n * 4) ||
        (reads_q8 && pvk_buf_read(d, &bq, 0, xq, q8_bytes)))
        goto out;
    if (reads_q8) check_q8_decode(xq, m, k, x);

    memcpy(want, y0, (size_t)m * n * 4);
    ref_matmul(wv, bias ? bv : NULL, x, want, scratch, m, n, k, acc);
    check_weight_magnitudes(t, wv, wmag, wn);
    ref_matmul(wmag, NULL, x, scratch, absdot, m, n, k, false);
    /* The weights are exact (dequantized the same way on both sides); the products
     * are exact in fp32 up to one rounding (int8 x: exact integer sums, then a few
     * roundings per 16 terms); the K-term sum carries (4 sqrt(K) + 16) eps of
     * sum|x| mag(w) (check_weight_magnitudes); adding bias and y rounds twice more. */
    for (size_t i = 0; i < (size_t)m * n; i++)
        tol[i] = (float)((4 * sqrt(k) + 16) * EPS * absdot[i] +
                         2 * EPS * (fabs(want[i]) + (bias ? fabs(bv[i % n]) : 0) + (acc ? fabs(y0[i]) : 0)));
    /* The prologue encodes each block with the standalone kernel's code (act.glsl,
     * q8_block.glsl); where the two compute an activation or a norm's statistics an
     * ulp apart (the norm sums in another order), an element may round to the
     * neighbouring int8 step. That takes an input within ~1e-7 of a rounding
     * boundary, about 1e-5 of the elements: one element's step, d max|w| of the worst
     * block, is allowed per output (a 1% error in a statistic or weight moves an
     * output by ~25 such steps at k 768). */
    if (pre) {
        const float *meta = (const float *)(xq + (size_t)m * k);
        for (size_t i = 0; i < (size_t)m * n; i++) {
            size_t r = i / n, j = i % n;
            float step = 0;
            for (int b = 0; b < k / 32; b++) {
                float wmax = 0;
                for (int e = 0; e < 32; e++) wmax = fmaxf(wmax, wmag[j * k + b * 32 + e]);
                step = fmaxf(step, meta[4 * (r * (k / 32) + b)] * wmax);
            }
            tol[i] += step;
        }
    }
    /* The tiled kernel's fp16 variant (pvk_ops_matmul_f16) adds its own rounding: 10
     * eps16 of sum|x w| to first order (shaders/matmul.comp; 11 covers the higher
     * orders), and per k up to 2^-14 for each of x, w, product and run sum that falls
     * below fp16's normal range: (3 + max|w|) 2^-14 with |x| <= 1. */
    if (pvk_ops_matmul_f16(o, t, (uint32_t)m)) {
        float wmax = 0;
        for (size_t i = 0; i < wn; i++) wmax = fmaxf(wmax, wmag[i] = fabsf(wv[i]));
        ref_matmul(wmag, NULL, x, scratch, absdot, m, n, k, false);
        for (size_t i = 0; i < (size_t)m * n; i++)
            tol[i] += (float)(11 * EPS16 * absdot[i] + (3 + wmax) * k * 0x1p-14);
    }
    char what[96];
    snprintf(what, sizeof what, "y(%s m %d n %d k %d bias %d acc %d%s)", pvk_type_get(t)->name, m, n, k,
             bias, acc, pre ? " activation prologue" : reads_q8 ? " int8 x" : "");
    bad = check_mismatches(what, got, want, tol, 0, (size_t)m * n);
    if (chunks) *chunks = w.n_chunks;
out:
    if (bad < 0) printf("    matmul %s m %d n %d k %d: %s\n", pvk_type_get(t)->name, m, n, k, pvk_errmsg());
    pvk_tensor_destroy(d, &w);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bb);
    pvk_buf_destroy(d, &by);
    pvk_buf_destroy(d, &bq);
    pvk_buf_destroy(d, &bnw);
    pvk_buf_destroy(d, &bnb);
    free(nw), free(nb);
    free(xq);
    free(stored), free(wv), free(wmag), free(absdot), free(scratch);
    free(x), free(bv), free(y0), free(want), free(got), free(tol), free(xp);
    return bad;
}


int check_matmul(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                 uint64_t seed, uint32_t *chunks) {
    return matmul_case(cmd, o, t, m, n, k, bias, acc, seed, chunks, false, NULL, NULL);
}

int check_matmul_q8(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                    uint64_t seed) {
    return matmul_case(cmd, o, t, m, n, k, bias, acc, seed, NULL, true, NULL, NULL);
}

int check_matmul_act(pvk_cmd *cmd, pvk_ops *o, pvk_type t, pvk_act act, int m, int n, int k, bool acc,
                     uint64_t seed) {
    return matmul_case(cmd, o, t, m, n, k, false, acc, seed, NULL, true, &act, NULL);
}

int check_matmul_norm(pvk_cmd *cmd, pvk_ops *o, pvk_type t, pvk_norm form, int m, int n, int k, bool acc,
                      uint64_t seed) {
    pvk_act copy = PVK_ACT_COPY;   /* x is [m][k] */
    return matmul_case(cmd, o, t, m, n, k, false, acc, seed, NULL, true, &copy, &form);
}

pvk_ops_tuning check_gpu_like_tuning(const pvk_caps *caps) {
    pvk_ops_tuning t = pvk_ops_default_tuning(caps);
    t.row_wg = 64, t.elt_wg = 256, t.mv_wg = 32, t.mv_rows = 2, t.mv_rows_blocked = 2, t.mv_max_m = 8;
    t.mm_bm = 64, t.mm_bn = 64, t.mm_bk = 16, t.mm_tm = 4, t.mm_tn = 4;
    t.mv_lane_rows = 0;   /* lanes split K at every m */
    return t;
}

void check_k_split_tunings(const pvk_caps *caps, pvk_ops_tuning t[2]) {
    t[0] = pvk_ops_default_tuning(caps);
    t[0].mv_lane_rows = 0;
    t[1] = check_gpu_like_tuning(caps);
}

enum { SETUP_MAX = 4 };
static pvk_ops *setup_ops[SETUP_MAX];
static pvk_cmd *setup_cmd;

static void setup_teardown(void) {
    for (int i = 0; i < SETUP_MAX; i++) {
        pvk_ops_destroy(setup_ops[i]);
        setup_ops[i] = NULL;
    }
    pvk_cmd_destroy(setup_cmd);
    setup_cmd = NULL;
}

pvk_dev *check_setup(int n, const pvk_ops_tuning *t, pvk_ops **ops, pvk_cmd **cmd) {
    pvk_dev *d = test_gpu();
    if (!d || setup_cmd) return d;
    for (int i = 0; i < n && i < SETUP_MAX; i++)
        if (pvk_ops_create_tuned(d, &t[i], &setup_ops[i])) goto fail;
    if (n > SETUP_MAX || pvk_cmd_create(d, &setup_cmd)) goto fail;
    for (int i = 0; i < n; i++) ops[i] = setup_ops[i];
    *cmd = setup_cmd;
    atexit(setup_teardown);
    return d;
fail:
    printf("    setup: %s\n", n > SETUP_MAX ? "too many op layers" : pvk_errmsg());
    setup_teardown();
    return NULL;
}
