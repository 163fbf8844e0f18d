#include "check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

#define EPS FLT_EPSILON

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

int check_matmul(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                 uint64_t seed, uint32_t *chunks) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    size_t wn = (size_t)n * k;
    void *stored = malloc(pvk_type_row_bytes(t, k) * n);
    float *wv = malloc(wn * 4), *wmag = malloc(wn * 4), *x = malloc((size_t)m * k * 4), *bv = malloc(n * 4);
    float *absdot = malloc((size_t)m * n * 4), *scratch = malloc((size_t)m * n * 4);
    float *y0 = malloc((size_t)m * n * 4), *want = malloc((size_t)m * n * 4);
    float *got = malloc((size_t)m * n * 4), *tol = malloc((size_t)m * n * 4);
    ref_weights(&rng, t, n, k, stored, wv);
    ref_fill(&rng, x, (size_t)m * k, -1, 1);
    ref_fill(&rng, bv, n, -1, 1);
    ref_fill(&rng, y0, (size_t)m * n, -1, 1);
    memcpy(want, y0, (size_t)m * n * 4);
    ref_matmul(wv, bias ? bv : NULL, x, want, scratch, m, n, k, acc);
    check_weight_magnitudes(t, wv, wmag, wn);
    ref_matmul(wmag, NULL, x, scratch, absdot, m, n, k, false);
    /* The weights are exact (dequantized the same way on both sides); the products
     * are exact in fp32 up to one rounding; the K-term sum carries (4 sqrt(K) + 16)
     * eps of sum|x| mag(w) (check_weight_magnitudes); adding bias and y rounds twice more. */
    for (size_t i = 0; i < (size_t)m * n; i++)
        tol[i] = (float)((4 * sqrt(k) + 16) * EPS * absdot[i] +
                         2 * EPS * (fabs(want[i]) + (bias ? fabs(bv[i % n]) : 0) + (acc ? fabs(y0[i]) : 0)));

    int bad = -1;
    pvk_tensor w = {0};
    pvk_buf bx = {0}, bb = {0}, by = {0};
    if (pvk_tensor_create(d, t, k, n, stored, &w)) goto out;
    bx = check_upload(d, x, (size_t)m * k), bb = check_upload(d, bv, n), by = check_upload(d, y0, (size_t)m * n);
    if (pvk_cmd_begin(cmd) || pvk_op_matmul(o, cmd, &w, bias ? &bb : NULL, &bx, &by, m, acc) ||
        pvk_cmd_submit(cmd) || pvk_buf_read(d, &by, 0, got, (size_t)m * n * 4))
        goto out;
    char what[96];
    snprintf(what, sizeof what, "y(%s m %d n %d k %d bias %d acc %d)", pvk_type_get(t)->name, m, n, k, bias, acc);
    bad = check_mismatches(what, got, want, tol, 0, (size_t)m * n);
    if (chunks) *chunks = w.n_chunks;
out:
    if (bad < 0) printf("    matmul %s m %d n %d k %d: %s\n", pvk_type_get(t)->name, m, n, k, pvk_errmsg());
    pvk_tensor_destroy(d, &w);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bb);
    pvk_buf_destroy(d, &by);
    free(stored), free(wv), free(wmag), free(absdot), free(scratch);
    free(x), free(bv), free(y0), free(want), free(got), free(tol);
    return bad;
}

