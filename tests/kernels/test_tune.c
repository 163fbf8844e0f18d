/* pvk_ops_tune: matvec variants picked by measurement on the device, kept per device
 * in the cache folder and read back instead of measured again. The cache folder is
 * a fresh one under /tmp (PHIVK_CACHE_DIR), so the test sees its own file. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpu.h"
#include "pvk_ops.h"

static pvk_ops *ops_list[1];
static pvk_cmd *cmd;
static char cache_dir[64], tuning_path[1100], pipelines_path[1100];

static void remove_cache(void) { remove(tuning_path); }

/* Registered before the device opens, so it runs after the device (which writes
 * its pipeline cache at exit) is gone. */
static void remove_cache_dir(void) {
    remove(tuning_path);
    remove(pipelines_path);
    rmdir(cache_dir);
}

/* PHIVK_CACHE_DIR must be set before the device opens (its pipeline cache too). */
static pvk_dev *setup(void) {
    if (!cache_dir[0]) {
        snprintf(cache_dir, sizeof cache_dir, "/tmp/phivk-tune-test-%ld", (long)getpid());
        setenv("PHIVK_CACHE_DIR", cache_dir, 1);
        atexit(remove_cache_dir);
    }
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    if (!tuning_path[0] && (!pvk_cache_path(d, "tuning", ".txt", tuning_path, sizeof tuning_path) ||
                            !pvk_cache_path(d, "pipelines", ".bin", pipelines_path, sizeof pipelines_path)))
        return NULL;
    pvk_ops_tuning t = pvk_ops_default_tuning(pvk_dev_caps(d));
    return check_setup(1, &t, ops_list, &cmd);
}

static int measured;
static void count(void *user, int done, int total) {
    (void)user, (void)total;
    measured = done;
}

/* A fresh op layer (no choices set) on the shared device. */
static pvk_ops *fresh_ops(pvk_dev *d) {
    pvk_ops *o = NULL;
    if (pvk_ops_create(d, &o)) printf("    ops: %s\n", pvk_errmsg());
    return o;
}

static bool valid_choice(const pvk_ops *o, pvk_type t, pvk_mm_choice c, const pvk_caps *caps) {
    pvk_mm_choice def = pvk_ops_mm_default(o, t);
    bool rows_ok = c.rows == def.rows || c.rows == def.rows * 2 || c.rows * 2 == def.rows;
    bool int8_ok = !c.int8 || (pvk_type_get(t)->block_elems > 1 && caps->int_dot);
    return rows_ok && int8_ok && (!c.f16 || caps->fp16);
}

TEST(tuning_measures_once_and_reads_the_kept_choice_later) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *caps = pvk_dev_caps(d);
    remove_cache();
    pvk_type types[] = {PVK_Q4_0, PVK_F16, PVK_Q4_0, PVK_Q6_K};
    pvk_ops *a = fresh_ops(d), *b = fresh_ops(d);
    REQUIRE(a && b, "ops");
    measured = 0;
    CHECK(pvk_ops_tune(a, types, 4, 512, count, NULL) == PHIVK_OK, "tune: %s", pvk_errmsg());
    CHECK(measured == 3, "the three distinct types were measured (%d)", measured);
    for (int i = 0; i < 4; i++) {
        pvk_mm_choice c = pvk_ops_mm_choice(a, types[i]);
        printf("    %s: int8 %d, %u rows\n", pvk_type_get(types[i])->name, c.int8, c.rows);
        CHECK(valid_choice(a, types[i], c, caps), "%s: the choice is one of the candidates",
              pvk_type_get(types[i])->name);
    }
    CHECK(access(tuning_path, R_OK) == 0, "the choices are kept in %s", tuning_path);

    measured = 0;
    CHECK(pvk_ops_tune(b, types, 4, 512, count, NULL) == PHIVK_OK, "tune again: %s", pvk_errmsg());
    CHECK(measured == 0, "a second tuning reads the file instead of measuring");
    for (int i = 0; i < 4; i++) {
        pvk_mm_choice ca = pvk_ops_mm_choice(a, types[i]), cb = pvk_ops_mm_choice(b, types[i]);
        CHECK(ca.int8 == cb.int8 && ca.rows == cb.rows, "%s: the same choice", pvk_type_get(types[i])->name);
    }
    measured = 0;
    CHECK(pvk_ops_tune(b, types, 4, 1024, count, NULL) == PHIVK_OK && measured == 3,
          "another k is measured on its own");
    pvk_ops_destroy(a);
    pvk_ops_destroy(b);
}

TEST(a_damaged_tuning_file_is_measured_over_not_trusted) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    remove_cache();
    REQUIRE(pvk_cache_make_parent(tuning_path), "cache folder");
    FILE *f = fopen(tuning_path, "w");
    REQUIRE(f, "write %s", tuning_path);
    /* Garbage, a bad row count for q4_0 under lavapipe's keys, a line of the older
     * five-field format, a truncated line. */
    fprintf(f, "\x01\x02 not a line\nq4_0 256 i1h0w8r32 1 3 0\nq4_0 256 i0h0w8r32 0 3 0\n"
               "q4_0 256 i1h0w8r32 1 48 0\nq4_0 256 i1w8r32 1 32\nq4_0 256\n");
    fclose(f);
    pvk_ops *o = fresh_ops(d);
    REQUIRE(o, "ops");
    pvk_type t = PVK_Q4_0;
    measured = 0;
    CHECK(pvk_ops_tune(o, &t, 1, 256, count, NULL) == PHIVK_OK, "tune: %s", pvk_errmsg());
    CHECK(measured == 1, "the unusable entry was measured over");
    CHECK(valid_choice(o, t, pvk_ops_mm_choice(o, t), pvk_dev_caps(d)), "a valid choice");
    pvk_ops_destroy(o);
}

TEST(phivk_tune_0_keeps_the_tunings_choices_and_writes_nothing) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    remove_cache();
    pvk_ops *o = fresh_ops(d);
    REQUIRE(o, "ops");
    setenv("PHIVK_TUNE", "0", 1);
    pvk_type t = PVK_Q8_0;
    measured = 0;
    CHECK(pvk_ops_tune(o, &t, 1, 256, count, NULL) == PHIVK_OK && measured == 0, "nothing measured");
    unsetenv("PHIVK_TUNE");
    pvk_mm_choice c = pvk_ops_mm_choice(o, t), def = pvk_ops_mm_default(o, t);
    CHECK(c.int8 == def.int8 && c.rows == def.rows, "the tuning's choice");
    CHECK(access(tuning_path, F_OK) != 0, "no file written");
    pvk_ops_destroy(o);
}

/* Where m 64 runs the tiled kernel (a GPU's tuning) and the device has fp16, the
 * tuner also measures the tiled kernel in fp16 and f32; both compute the product
 * (check_matmul allows the fp16 rounding where pvk_ops_matmul_f16 says so). */
TEST(on_a_gpu_tuning_the_tiled_kernel_is_measured_in_fp16_and_f32) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *caps = pvk_dev_caps(d);
    remove_cache();
    pvk_ops_tuning gt = check_gpu_like_tuning(caps);
    pvk_ops *o = NULL;
    REQUIRE(pvk_ops_create_tuned(d, &gt, &o) == PHIVK_OK, "%s", pvk_errmsg());
    pvk_type t = PVK_Q4_K;
    measured = 0;
    CHECK(pvk_ops_tune(o, &t, 1, 256, count, NULL) == PHIVK_OK && measured == 1, "tune: %s", pvk_errmsg());
    pvk_mm_choice c = pvk_ops_mm_choice(o, t);
    printf("    gpu-like q4_K: int8 %d, %u rows, tiled fp16 %d (device fp16 %d)\n", c.int8, c.rows, c.f16, caps->fp16);
    CHECK(valid_choice(o, t, c, caps), "a valid choice");
    FILE *f = fopen(tuning_path, "r");
    char line[128] = "";
    CHECK(f && fgets(line, sizeof line, f), "a line kept");
    if (f) fclose(f);
    CHECK(strstr(line, caps->fp16 ? "h1" : "h0") != NULL, "its key says whether fp16 was measured: %s", line);
    for (int f16 = 0; f16 <= (int)caps->fp16; f16++) {
        c.f16 = f16;
        REQUIRE(pvk_ops_set_mm_choice(o, t, c) == PHIVK_OK, "%s", pvk_errmsg());
        CHECK(pvk_ops_matmul_f16(o, t, 64) == (bool)f16, "the choice picks the kernel");
        CHECK(check_matmul(cmd, o, t, 64, 40, 256, true, false, 950 + f16, NULL) == 0, "tiled fp16 %d", f16);
    }
    pvk_ops_destroy(o);
}

TEST(every_choice_the_tuner_may_set_computes_the_same_product) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *caps = pvk_dev_caps(d);
    pvk_ops *o = ops_list[0];
    pvk_type types[] = {PVK_Q4_K, PVK_F16};
    for (int i = 0; i < 2; i++) {
        pvk_type t = types[i];
        pvk_mm_choice def = pvk_ops_mm_default(o, t);
        bool int8_offered = pvk_type_get(t)->block_elems > 1 && caps->int_dot && caps->subgroup;
        for (int int8 = 0; int8 <= (int)int8_offered; int8++)
            for (uint32_t rows = def.rows / 2; rows <= def.rows * 2 && rows <= 64; rows *= 2) {
                REQUIRE(pvk_ops_set_mm_choice(o, t, (pvk_mm_choice){int8, rows, false, false, false, 0, 0, false}) == PHIVK_OK,
                        "%s", pvk_errmsg());
                CHECK(check_matmul_q8(cmd, o, t, 3, 77, 512, true, false, 900 + rows + int8) == 0,
                      "%s int8 %d rows %u", pvk_type_get(t)->name, int8, rows);
            }
        /* Lanes owning whole rows at m 1 (f32 x through the sampler), in GGUF's layout. */
        pvk_mm_choice lanes = def;
        lanes.lanes = true;
        if (pvk_ops_get_tuning(o)->mv_lane_rows) {
            REQUIRE(pvk_ops_set_mm_choice(o, t, lanes) == PHIVK_OK, "%s", pvk_errmsg());
            CHECK(!pvk_ops_reads_q8(o, t, 1), "%s: lanes owning rows read f32", pvk_type_get(t)->name);
            CHECK(check_matmul_q8(cmd, o, t, 1, 77, 512, true, true, 930) == 0, "%s lanes at m 1",
                  pvk_type_get(t)->name);
        } else {
            CHECK(pvk_ops_set_mm_choice(o, t, lanes) == PHIVK_ERR_INVALID, "no lanes choice without mv_lane_rows");
        }
        REQUIRE(pvk_ops_set_mm_choice(o, t, def) == PHIVK_OK, "restore");
    }
    CHECK(pvk_ops_set_mm_choice(o, PVK_F16, (pvk_mm_choice){true, 8, false, false, false, 0, 0, false}) == PHIVK_ERR_INVALID,
          "plain weights cannot read int8");
    CHECK(pvk_ops_set_mm_choice(o, PVK_Q4_0, (pvk_mm_choice){false, 3, false, false, false, 0, 0, false}) == PHIVK_ERR_INVALID,
          "rows must be a power of two");
}

/* Q4_0 and Q8_0 are also measured repacked (unless PHIVK_REPACK decides): the key
 * says so (p1), the kept line records the layout chosen, and the choice computes the
 * product in that layout (check_matmul creates the tensor as pvk_ops_repacks says).
 * With PHIVK_REPACK set the layout is not a candidate (p0), another key. */
TEST(the_repacked_layout_is_a_candidate_and_its_choice_is_kept) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    remove_cache();
    pvk_type t = PVK_Q8_0;
    pvk_ops *o = fresh_ops(d);
    REQUIRE(o, "ops");
    measured = 0;
    CHECK(pvk_ops_tune(o, &t, 1, 256, count, NULL) == PHIVK_OK && measured == 1, "tune: %s", pvk_errmsg());
    pvk_mm_choice c = pvk_ops_mm_choice(o, t);
    printf("    q8_0: int8 %d, %u rows, repacked %d\n", c.int8, c.rows, c.repack);
    CHECK(pvk_ops_repacks(o, t) == c.repack, "the loader follows the choice");
    FILE *f = fopen(tuning_path, "r");
    char line[128] = "", key[32] = "";
    unsigned int8 = 9, rows = 0, f16 = 9, cm = 9, repack = 9, k = 0, wg = 0, lf = 0, lanes = 9;
    CHECK(f && fgets(line, sizeof line, f), "a line kept");
    if (f) fclose(f);
    CHECK(sscanf(line, "q8_0 %u %31s %u %u %u %u %u %u %u %u", &k, key, &int8, &rows, &f16, &cm, &repack, &wg, &lf,
                 &lanes) == 10 &&
              strstr(key, "p1") && cm <= 1 && repack == c.repack && lanes == c.lanes,
          "the line records the layout and the lanes measured and chosen: %s", line);
    CHECK(check_matmul(cmd, o, t, 1, 133, 256, true, false, 990, NULL) == 0, "the chosen layout's product");
    pvk_ops_destroy(o);

    setenv("PHIVK_REPACK", "0", 1);
    o = fresh_ops(d);
    REQUIRE(o, "ops");
    measured = 0;
    CHECK(pvk_ops_tune(o, &t, 1, 256, count, NULL) == PHIVK_OK && measured == 1,
          "measured again under PHIVK_REPACK (another key)");
    CHECK(!pvk_ops_repacks(o, t), "PHIVK_REPACK=0 keeps GGUF's layout");
    unsetenv("PHIVK_REPACK");
    pvk_ops_destroy(o);
}
