/* A weight larger than one binding: PHIVK_MAX_BINDING_BYTES is lowered before the
 * device opens, so pvk_tensor_create splits the rows into chunks (each with its own
 * texel view on the texel path) and pvk_op_matmul dispatches once per chunk, for
 * plain and block types. meson runs it on the texel and the storage-buffer path.
 * Tolerances as in test_kernels.c and check.c. */
#define HARNESS_MAIN
#include "harness.h"

#include "check.h"
#include "gpu.h"

#define MAX_BINDING 65536

TEST(matmul_splits_a_weight_larger_than_one_binding_by_rows) {
    setenv("PHIVK_MAX_BINDING_BYTES", "65536", 1);
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const pvk_caps *caps = pvk_dev_caps(d);
    REQUIRE(caps->max_binding_bytes == MAX_BINDING, "PHIVK_MAX_BINDING_BYTES took no effect: %llu",
            (unsigned long long)caps->max_binding_bytes);
    pvk_cmd *c = NULL;
    pvk_ops *mv = NULL, *tiled = NULL;
    pvk_ops_tuning t = pvk_ops_default_tuning(caps);
    REQUIRE(pvk_cmd_create(d, &c) == PHIVK_OK && pvk_ops_create_tuned(d, &t, &mv) == PHIVK_OK, "%s", pvk_errmsg());
    t.mv_max_m = 0;
    REQUIRE(pvk_ops_create_tuned(d, &t, &tiled) == PHIVK_OK, "%s", pvk_errmsg());
    /* 1000 rows of 200 f16 = 400 KB: 7 chunks of at most 64 KiB. Rows of 71 f16 (142
     * bytes) do not tile 16-byte words, so chunks hold multiples of 8 rows. x and y
     * stay within one binding. */
    /* Block types: Q4_0 rows of 5 blocks (90 bytes) and Q6_K rows of 210 bytes sit
     * on 2-byte boundaries; Q4_K rows are 288 bytes. */
    struct { pvk_ops *o; pvk_type t; int m, n, k; bool acc; } cases[] = {
        {mv, PVK_F16, 1, 1000, 200, false}, {mv, PVK_F16, 5, 1000, 200, true},
        {mv, PVK_F16, 12, 1000, 200, false}, {tiled, PVK_F16, 12, 1000, 200, true},
        {mv, PVK_F16, 2, 1001, 71, false}, {tiled, PVK_F16, 9, 1001, 71, true},
        {mv, PVK_Q4_0, 1, 1001, 160, false}, {tiled, PVK_Q4_0, 9, 1001, 160, true},
        {mv, PVK_Q6_K, 3, 1001, 256, true}, {mv, PVK_Q4_K, 1, 600, 512, false},
        {tiled, PVK_Q8_0, 10, 1001, 128, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t chunks = 0;
        int m = cases[i].m, n = cases[i].n, k = cases[i].k;
        CHECK(check_matmul(c, cases[i].o, cases[i].t, m, n, k, true, cases[i].acc, 900 + i, &chunks) == 0,
              "%s m %d n %d k %d", pvk_type_get(cases[i].t)->name, m, n, k);
        uint64_t bytes = pvk_type_row_bytes(cases[i].t, k) * n;
        CHECK(chunks >= (bytes + MAX_BINDING - 1) / MAX_BINDING, "%u chunks for %llu bytes", chunks,
              (unsigned long long)bytes);
    }
    pvk_ops_destroy(mv);
    pvk_ops_destroy(tiled);
    pvk_cmd_destroy(c);
}
