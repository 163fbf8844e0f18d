/* Weights repacked at load (issue 13 item 5): Q4_0 and Q8_0 matrices stored as every
 * block's quants in 16-byte words, then the blocks' f16 scales (shaders/dequant.glsl
 * W_REPACK, pvk_tensor_write). The switch PHIVK_REPACK (0, 1, unset: the tuner's
 * choice), the layout in device memory byte for byte, and every matrix kernel that
 * reads the layout (matvec with f32 or int8 activations, with its activation or norm
 * in the prologue, the tiled kernel) against the CPU reference. Tolerances are
 * check.c's (the kernels do the arithmetic of GGUF's layout; only the fetches
 * differ). meson also runs test_kernels, test_int_dot and test_matmul_split with
 * PHIVK_REPACK=1. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpu.h"
#include "pvk_ops.h"
#include "ref.h"

static pvk_ops *ops_list[2];
static pvk_cmd *cmd;

/* The device's defaults and a discrete GPU's shapes (the tiled kernel from m 9),
 * each with Q4_0 and Q8_0 chosen repacked (the environment's PHIVK_REPACK unset). */
static pvk_dev *setup(void) {
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    pvk_ops_tuning t[2];
    check_k_split_tunings(pvk_dev_caps(d), t);
    if (!check_setup(2, t, ops_list, &cmd)) return NULL;
    pvk_type ts[2] = {PVK_Q4_0, PVK_Q8_0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            pvk_mm_choice c = pvk_ops_mm_choice(ops_list[i], ts[j]);
            c.repack = true;
            if (pvk_ops_set_mm_choice(ops_list[i], ts[j], c)) return NULL;
        }
    return d;
}

TEST(phivk_repack_0_keeps_ggufs_layout_1_repacks_q4_0_and_q8_0_unset_follows_the_choice) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const char *vals[] = {"0", "1", NULL};
    for (int v = 0; v < 3; v++) {
        if (vals[v]) setenv("PHIVK_REPACK", vals[v], 1);
        else unsetenv("PHIVK_REPACK");
        pvk_ops *o = NULL;
        REQUIRE(pvk_ops_create(d, &o) == PHIVK_OK, "%s", pvk_errmsg());
        pvk_mm_choice c = pvk_ops_mm_choice(o, PVK_Q4_0);
        c.repack = true;
        REQUIRE(pvk_ops_set_mm_choice(o, PVK_Q4_0, c) == PHIVK_OK, "%s", pvk_errmsg());
        bool want = !vals[v] || vals[v][0] == '1';
        CHECK(pvk_ops_repacks(o, PVK_Q4_0) == want, "PHIVK_REPACK=%s: q4_0 repacked %d", vals[v] ? vals[v] : "",
              !want);
        CHECK(pvk_ops_repacks(o, PVK_Q8_0) == (vals[v] && vals[v][0] == '1'),
              "PHIVK_REPACK=%s: q8_0 (its choice: GGUF's layout)", vals[v] ? vals[v] : "");
        CHECK(!pvk_ops_repacks(o, PVK_Q4_K) && !pvk_ops_repacks(o, PVK_F16), "types without the layout never");
        pvk_ops_destroy(o);
    }
    setenv("PHIVK_REPACK", "yes", 1);
    pvk_ops *o = NULL;
    CHECK(pvk_ops_create(d, &o) == PHIVK_ERR_INVALID && !o, "PHIVK_REPACK=yes is refused");
    printf("    %s\n", pvk_errmsg());
    unsetenv("PHIVK_REPACK");
    CHECK(pvk_ops_can_repack(PVK_Q4_0) && pvk_ops_can_repack(PVK_Q8_0) && !pvk_ops_can_repack(PVK_Q4_K) &&
              !pvk_ops_can_repack(PVK_F32),
          "Q4_0 and Q8_0 have the repacked kernels");
}

/* Per chunk: the quants of every block (16 bytes for Q4_0, 32 for Q8_0) in order,
 * then the blocks' f16 scales; the same bytes as GGUF's layout in all. Rows of 5
 * blocks, written in pieces of 3 blocks (pieces cross rows, as the loader's do). */
TEST(repacked_tensor_holds_the_quants_then_the_scales) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    pvk_type ts[2] = {PVK_Q4_0, PVK_Q8_0};
    int checked = 0;
    for (int i = 0; i < 2; i++) {
        enum { ROWS = 7, COLS = 160 };
        size_t bb = pvk_type_row_bytes(ts[i], 32), qb = bb - 2, nblk = ROWS * COLS / 32, bytes = nblk * bb;
        uint8_t *src = malloc(bytes), *got = malloc(bytes);
        for (size_t j = 0; j < bytes; j++) src[j] = (uint8_t)(j * 131 + 7);
        pvk_tensor t = {0};
        bool ok = src && got && !pvk_tensor_create_layout(d, ts[i], COLS, ROWS, NULL, true, &t);
        for (size_t at = 0; ok && at < bytes; at += 3 * bb)
            ok = !pvk_tensor_write(d, &t, at, src + at, bytes - at < 3 * bb ? bytes - at : 3 * bb);
        ok = ok && !pvk_buf_read(d, &t.buf, 0, got, bytes);
        CHECK(ok, "%s: %s", pvk_type_get(ts[i])->name, pvk_errmsg());
        CHECK(t.n_chunks == 1 && t.repacked, "one chunk, repacked");
        int bad = 0;
        for (size_t b = 0; ok && b < nblk; b++) {
            bad += memcmp(got + b * qb, src + b * bb + 2, qb) != 0;
            bad += memcmp(got + nblk * qb + 2 * b, src + b * bb, 2) != 0;
            checked++;
        }
        CHECK(ok && bad == 0, "%s: %d of %zu blocks misplaced", pvk_type_get(ts[i])->name, bad, nblk);
        pvk_tensor_destroy(d, &t);
        free(src);
        free(got);
    }
    CHECK(checked == 2 * 35, "%d blocks compared", checked);
}

TEST(partial_blocks_other_types_and_repacked_tables_are_refused) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    pvk_tensor t = {0};
    CHECK(pvk_tensor_create_layout(d, PVK_Q4_K, 256, 2, NULL, true, &t) == PHIVK_ERR_UNSUPPORTED,
          "q4_K has no repacked layout");
    REQUIRE(pvk_tensor_create_layout(d, PVK_Q4_0, 64, 2, NULL, true, &t) == PHIVK_OK, "%s", pvk_errmsg());
    uint8_t z[72] = {0};
    CHECK(pvk_tensor_write(d, &t, 1, z, 18) == PHIVK_ERR_INVALID, "a write not on a block");
    CHECK(pvk_tensor_write(d, &t, 0, z, 17) == PHIVK_ERR_INVALID, "a partial block");
    CHECK(pvk_tensor_write(d, &t, 18, z, 72) == PHIVK_ERR_INVALID, "past the end");
    CHECK(pvk_tensor_write(d, &t, 0, z, 72) == PHIVK_OK, "the whole tensor: %s", pvk_errmsg());
    pvk_buf ids = check_upload(d, NULL, 1), out = check_upload(d, NULL, 64);
    CHECK(pvk_cmd_begin(cmd) == PHIVK_OK &&
              pvk_op_get_rows(ops_list[0], cmd, &t, &ids, &out, 1) == PHIVK_ERR_UNSUPPORTED,
          "get_rows refuses a repacked table");
    printf("    %s\n", pvk_errmsg());
    CHECK(pvk_cmd_submit(cmd) == PHIVK_OK, "the empty submit");
    pvk_buf_destroy(d, &ids);
    pvk_buf_destroy(d, &out);
    pvk_tensor_destroy(d, &t);
}

/* Every matrix kernel of the repacked layout: m 1 to 9 (matvec up to 8 columns on
 * the GPU shapes, the tiled kernel at 9 and 64), f32 and int8 activations, the
 * prologue forms where the device fuses (int8). */
TEST(repacked_q4_0_and_q8_0_products_match_the_cpu_reference) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    pvk_type ts[2] = {PVK_Q4_0, PVK_Q8_0};
    int ms[] = {1, 2, 5, 8, 9, 64}, cases = 0, fused = 0;
    for (int i = 0; i < 2; i++) {
        const char *name = pvk_type_get(ts[i])->name;
        for (int o = 0; o < 2; o++) {
            CHECK(pvk_ops_repacks(ops_list[o], ts[i]), "%s: repacked", name);
            for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++, cases++)
                CHECK(check_matmul(cmd, ops_list[o], ts[i], ms[j], 133, 512, j % 2, j % 3 == 0, 40 + j, NULL) == 0,
                      "%s ops %d m %d", name, o, ms[j]);
            CHECK(check_matmul_q8(cmd, ops_list[o], ts[i], 1, 77, 768, true, false, 60 + o) == 0, "%s int8 m 1", name);
            CHECK(check_matmul_q8(cmd, ops_list[o], ts[i], 3, 77, 768, false, true, 62 + o) == 0, "%s int8 m 3", name);
            cases += 2;
            if (!pvk_ops_can_fuse(ops_list[o], ts[i], 1)) continue;
            CHECK(check_matmul_act(cmd, ops_list[o], ts[i], PVK_ACT_SWIGLU, 1, 45, 256, false, 70 + o) == 0,
                  "%s swiglu prologue", name);
            CHECK(check_matmul_act(cmd, ops_list[o], ts[i], PVK_ACT_GELU, 2, 45, 256, true, 72 + o) == 0,
                  "%s gelu prologue", name);
            CHECK(check_matmul_norm(cmd, ops_list[o], ts[i], PVK_NORM_RMS, 1, 45, 256, false, 74 + o) == 0,
                  "%s rmsnorm prologue", name);
            CHECK(check_matmul_norm(cmd, ops_list[o], ts[i], PVK_NORM_LAYER, 1, 45, 256, true, 76 + o) == 0,
                  "%s layernorm prologue", name);
            fused += 4;
        }
    }
    CHECK(cases == 2 * 2 * 8, "%d products compared", cases);
    if (!fused) printf("    skipped: the prologue forms (no integer dot product on this device)\n");
}

/* The tuner's other matvec dimensions: subgroups per workgroup (1 and 2 times the
 * tuning's width, where the device allows) and loads in flight (1 and 4 units per
 * invocation per iteration, also past the row's end: k 768 is 24 units), in both
 * layouts (Q4_0 repacked, Q4_K) and with f32 and int8 activations, compute the same
 * product. (Each choice is a pipeline of its own: lavapipe compiles each, so the
 * test keeps to the extremes.) */
TEST(every_workgroup_width_and_loads_in_flight_compute_the_same_product) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    pvk_ops *o = ops_list[0];
    uint32_t wg0 = pvk_ops_get_tuning(o)->mv_wg, cap = pvk_dev_caps(d)->max_wg_invocations;
    pvk_type ts[2] = {PVK_Q4_0, PVK_Q4_K};
    int cases = 0;
    for (int i = 0; i < 2; i++) {
        pvk_mm_choice saved = pvk_ops_mm_choice(o, ts[i]);
        for (uint32_t wg = wg0; wg <= 2 * wg0 && wg <= cap; wg *= 2)
            for (uint32_t lf = 1; lf <= 4; lf *= 4) {
                pvk_mm_choice c = saved;
                c.wg = wg, c.lf = lf;
                REQUIRE(pvk_ops_set_mm_choice(o, ts[i], c) == PHIVK_OK, "%s", pvk_errmsg());
                CHECK(check_matmul(cmd, o, ts[i], 1, 77, 768, true, false, 100 + wg + lf, NULL) == 0 &&
                          check_matmul_q8(cmd, o, ts[i], 2, 77, 768, false, true, 200 + wg + lf) == 0,
                      "%s wg %u lf %u", pvk_type_get(ts[i])->name, wg, lf);
                cases++;
            }
        REQUIRE(pvk_ops_set_mm_choice(o, ts[i], saved) == PHIVK_OK, "restore");
    }
    CHECK(cases >= 2 * 2, "%d choices compared", cases);
    pvk_mm_choice bad = pvk_ops_mm_choice(o, PVK_Q4_0);
    bad.lf = 3;
    CHECK(pvk_ops_set_mm_choice(o, PVK_Q4_0, bad) == PHIVK_ERR_INVALID, "3 loads in flight are refused");
    bad.lf = 1, bad.wg = 2 * cap;
    CHECK(pvk_ops_set_mm_choice(o, PVK_Q4_0, bad) == PHIVK_ERR_INVALID, "a workgroup past the device's limit");
    bad.wg = 0, bad.repack = true;
    CHECK(pvk_ops_set_mm_choice(o, PVK_Q4_K, bad) == PHIVK_ERR_INVALID, "q4_K has no repacked layout");
}
