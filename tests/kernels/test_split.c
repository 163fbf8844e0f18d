/* A weight larger than one binding: PHIVK_MAX_BINDING_BYTES is lowered before the
 * device opens, so pvk_tensor_create splits the rows into chunks (each with its own
 * texel view on the texel path) and pvk_op_matmul dispatches once per chunk. meson
 * runs it on the texel and the storage-buffer path. Tolerances as in test_kernels.c. */
#define HARNESS_MAIN
#include "harness.h"

#include <float.h>

#include "gpu.h"
#include "pvk_ops.h"
#include "ref.h"

#define MAX_BINDING 65536

static pvk_dev *dev(void) {
    setenv("PHIVK_MAX_BINDING_BYTES", "65536", 1);
    return test_gpu();
}

/* y = x W^T + bias (+ y) with W f16 [n][k]; the number of mismatches, -1 on failure. */
static int split_case(pvk_dev *d, pvk_ops *o, pvk_cmd *c, int m, int n, int k, bool acc, uint32_t *chunks) {
    ref_rng rng = {900 + m};
    size_t wn = (size_t)n * k;
    uint16_t *stored = malloc(wn * 2);
    float *wv = malloc(wn * 4), *x = malloc((size_t)m * k * 4), *bv = malloc(n * 4);
    float *y0 = malloc((size_t)m * n * 4), *want = malloc((size_t)m * n * 4);
    float *got = malloc((size_t)m * n * 4), *tol = malloc((size_t)m * n * 4);
    ref_weights(&rng, PVK_F16, n, k, stored, wv);
    ref_fill(&rng, x, (size_t)m * k, -1, 1);
    ref_fill(&rng, bv, n, -1, 1);
    ref_fill(&rng, y0, (size_t)m * n, -1, 1);
    memcpy(want, y0, (size_t)m * n * 4);
    ref_matmul(wv, bv, x, want, tol, m, n, k, acc);
    for (size_t i = 0; i < (size_t)m * n; i++)
        tol[i] = (float)((4 * sqrt(k) + 16) * FLT_EPSILON * tol[i] +
                         2 * FLT_EPSILON * (fabs(want[i]) + fabs(bv[i % n]) + (acc ? fabs(y0[i]) : 0)));
    int bad = -1;
    pvk_tensor w = {0};
    pvk_buf bx = {0}, bb = {0}, by = {0};
    if (pvk_tensor_create(d, PVK_F16, k, n, stored, &w) ||
        pvk_buf_create(d, (size_t)m * k * 4, PVK_MEM_DEVICE, &bx) || pvk_buf_write(d, &bx, 0, x, (size_t)m * k * 4) ||
        pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &bb) || pvk_buf_write(d, &bb, 0, bv, n * 4) ||
        pvk_buf_create(d, (size_t)m * n * 4, PVK_MEM_DEVICE, &by) ||
        pvk_buf_write(d, &by, 0, y0, (size_t)m * n * 4) || pvk_cmd_begin(c) ||
        pvk_op_matmul(o, c, &w, &bb, &bx, &by, m, acc) || pvk_cmd_submit(c) ||
        pvk_buf_read(d, &by, 0, got, (size_t)m * n * 4)) {
        printf("    split m %d: %s\n", m, pvk_errmsg());
        goto out;
    }
    *chunks = w.n_chunks;
    bad = 0;
    for (size_t i = 0; i < (size_t)m * n; i++)
        if (!(fabsf(got[i] - want[i]) <= tol[i]) && bad++ < 3)
            printf("    y[%zu] (row %zu) = %.9g, want %.9g +- %.3g\n", i, i % n, got[i], want[i], tol[i]);
out:
    pvk_tensor_destroy(d, &w);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bb);
    pvk_buf_destroy(d, &by);
    free(stored), free(wv), free(x), free(bv), free(y0), free(want), free(got), free(tol);
    return bad;
}

TEST(matmul_splits_a_weight_larger_than_one_binding_by_rows) {
    pvk_dev *d;
    REQUIRE(d = dev(), "no device");
    const pvk_caps *caps = pvk_dev_caps(d);
    REQUIRE(caps->max_binding_bytes == MAX_BINDING, "PHIVK_MAX_BINDING_BYTES took no effect: %llu",
            (unsigned long long)caps->max_binding_bytes);
    pvk_cmd *c = NULL;
    pvk_ops *mv = NULL, *tiled = NULL;
    pvk_ops_tuning t = pvk_ops_default_tuning(caps);
    REQUIRE(pvk_cmd_create(d, &c) == PVK_OK && pvk_ops_create_tuned(d, &t, &mv) == PVK_OK, "%s", pvk_errmsg());
    t.mv_max_m = 0;
    REQUIRE(pvk_ops_create_tuned(d, &t, &tiled) == PVK_OK, "%s", pvk_errmsg());
    /* 1000 rows of 200 f16 = 400 KB: 7 chunks of at most 64 KiB. Rows of 71 f16 (142
     * bytes) do not tile 16-byte words, so chunks hold multiples of 8 rows. x and y
     * stay within one binding. */
    struct { pvk_ops *o; int m, n, k; bool acc; } cases[] = {
        {mv, 1, 1000, 200, false}, {mv, 5, 1000, 200, true}, {mv, 12, 1000, 200, false},
        {tiled, 12, 1000, 200, true},
        {mv, 2, 1001, 71, false}, {tiled, 9, 1001, 71, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t chunks = 0;
        int bad = split_case(d, cases[i].o, c, cases[i].m, cases[i].n, cases[i].k, cases[i].acc, &chunks);
        CHECK(bad == 0, "m %d n %d k %d: %d wrong", cases[i].m, cases[i].n, cases[i].k, bad);
        uint64_t bytes = (uint64_t)cases[i].n * cases[i].k * 2;
        CHECK(chunks >= (bytes + MAX_BINDING - 1) / MAX_BINDING, "%u chunks for %llu bytes", chunks,
              (unsigned long long)bytes);
    }
    pvk_ops_destroy(mv);
    pvk_ops_destroy(tiled);
    pvk_cmd_destroy(c);
}
