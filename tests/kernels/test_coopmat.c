/* The tiled matmul on cooperative matrices (shaders/matmul.comp -DCOOPMAT).
 * - What a device lists (VK_KHR_cooperative_matrix and VK_NV_cooperative_matrix) is
 *   read into pvk_cm_shapes, and the form the op layer runs is chosen from them
 *   (pvk_cm_choose): simulated lists of what NVIDIA, AMD and Intel drivers report,
 *   and lists that must not match (fp16 accumulators, workgroup scope, an extension
 *   that is off, KHR shapes: this build has NV forms only). No device needed.
 * - On the device at hand: a device without cooperative matrices (lavapipe) gets the
 *   tiled kernel's fp16/f32 path, and so does any with PHIVK_DISABLE_COOPMAT=1 (meson
 *   runs this binary both ways).
 * - Where the device has a form: the coopmat matmul against the double reference
 *   within the fp16 tiles' bound (check.c), and bit-exact on exactly representable
 *   data. Elsewhere those cases print skipped: on this project's CI (lavapipe) they
 *   skip; scripts/gpu-check.sh runs them on a GPU. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpu.h"
#include "pvk_coopmat.h"
#include "ref.h"

enum { F16 = PVK_CM_FP16, F32 = PVK_CM_FP32, I8 = 3, I32 = 5, SG = PVK_CM_SCOPE_SUBGROUP, WGS = 2 };

/* A device with fp16 arithmetic and subgroups whose list is shapes[0..n), listed by
 * the KHR extension (nv false) or NV's, that extension on. */
static pvk_caps sim_caps(const pvk_cm_shape *shapes, uint32_t n, bool nv) {
    pvk_caps c;
    memset(&c, 0, sizeof c);
    c.fp16 = c.subgroup = true;
    c.coopmat = !nv;
    c.coopmat_nv = nv;
    c.n_cm_shapes = n;
    for (uint32_t i = 0; i < n; i++) c.cm_shapes[i] = shapes[i], c.cm_shapes[i].nv = nv;
    return c;
}

#define S(m, n, k, a, b, c, r, scope) {m, n, k, a, b, c, r, scope, false}

TEST(the_khr_properties_list_is_read_field_by_field_and_capped) {
    VkCooperativeMatrixPropertiesKHR p[3];
    memset(p, 0, sizeof p);
    for (int i = 0; i < 3; i++) {
        p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
        p[i].MSize = 16, p[i].NSize = 8u << i, p[i].KSize = 32;
        p[i].AType = (VkComponentTypeKHR)F16, p[i].BType = (VkComponentTypeKHR)F16;
        p[i].CType = (VkComponentTypeKHR)F32, p[i].ResultType = (VkComponentTypeKHR)(i == 2 ? F16 : F32);
        p[i].scope = (VkScopeKHR)SG;
    }
    pvk_cm_shape out[3];
    CHECK(pvk_cm_from_khr(p, 3, out, 3) == 3, "three entries");
    CHECK(out[1].m == 16 && out[1].n == 16 && out[1].k == 32 && out[1].a == F16 && out[1].b == F16 &&
              out[1].c == F32 && out[1].r == F32 && out[1].scope == SG && !out[1].nv,
          "entry 1 read as listed");
    CHECK(out[2].r == F16, "the result type is its own field");
    CHECK(pvk_cm_from_khr(p, 3, out, 2) == 2 && out[1].n == 16, "a longer list is cut at cap");
    VkCooperativeMatrixPropertiesNV q = {.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV,
                                         .MSize = 16, .NSize = 8, .KSize = 16, .AType = VK_COMPONENT_TYPE_FLOAT16_NV,
                                         .BType = VK_COMPONENT_TYPE_FLOAT16_NV, .CType = VK_COMPONENT_TYPE_FLOAT32_NV,
                                         .DType = VK_COMPONENT_TYPE_FLOAT32_NV, .scope = VK_SCOPE_SUBGROUP_NV};
    CHECK(pvk_cm_from_nv(&q, 1, out, 3) == 1 && out[0].nv && out[0].m == 16 && out[0].n == 8 && out[0].k == 16 &&
              out[0].a == F16 && out[0].c == F32 && out[0].r == F32 && out[0].scope == SG,
          "an NV entry is read with nv set");
}

/* NVIDIA lists both extensions: KHR 16x8x8, 16x8x16, 16x16x16, NV the same in fp16
 * and f32 accumulators. The NV form with most products per instruction, 16x16x16. */
TEST(an_nvidia_list_gets_the_largest_built_nv_form) {
    pvk_cm_shape khr[] = {S(16, 8, 8, F16, F16, F32, F32, SG), S(16, 8, 16, F16, F16, F32, F32, SG),
                          S(16, 16, 16, F16, F16, F16, F16, SG), S(16, 16, 16, F16, F16, F32, F32, SG),
                          S(16, 8, 32, I8, I8, I32, I32, SG)};
    pvk_caps c = sim_caps(khr, 5, false);
    pvk_caps nv = sim_caps(khr, 4, true);
    for (uint32_t i = 0; i < nv.n_cm_shapes; i++) c.cm_shapes[c.n_cm_shapes++] = nv.cm_shapes[i];
    c.coopmat_nv = true;
    CHECK(pvk_cm_choose(&c) == PVK_CM_NV_16X16X16, "got %d", (int)pvk_cm_choose(&c));
}

/* A driver whose NV list has 16x8x16 and 16x8x8 only (Turing-era): 16x8x16. */
TEST(an_nv_list_without_16x16x16_gets_the_16x8x16_form) {
    pvk_cm_shape l[] = {S(16, 8, 8, F16, F16, F32, F32, SG), S(16, 8, 16, F16, F16, F32, F32, SG),
                        S(16, 8, 16, F16, F16, F16, F16, SG)};
    pvk_caps c = sim_caps(l, 3, true);
    CHECK(pvk_cm_choose(&c) == PVK_CM_NV_16X8X16, "got %d", (int)pvk_cm_choose(&c));
}

/* AMD RDNA3 (RADV: KHR 16x16x16) and Intel Arc (ANV: KHR 8x8x16) list KHR shapes
 * only, and the build has no KHR form (Debian 12's glslang lacks it): the fallback. */
TEST(khr_only_lists_of_amd_and_intel_get_the_fallback_in_this_build) {
    pvk_cm_shape amd[] = {S(16, 16, 16, F16, F16, F16, F16, SG), S(16, 16, 16, F16, F16, F32, F32, SG)};
    pvk_cm_shape intel[] = {S(8, 8, 16, F16, F16, F32, F32, SG)};
    pvk_caps c = sim_caps(amd, 2, false);
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "AMD: got %d", (int)pvk_cm_choose(&c));
    c = sim_caps(intel, 1, false);
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "Intel: got %d", (int)pvk_cm_choose(&c));
    c = sim_caps(amd, 2, true);
    CHECK(pvk_cm_choose(&c) == PVK_CM_NV_16X16X16, "the same shape listed by NV matches");
}

TEST(shapes_that_do_not_match_fp16_in_f32_out_at_subgroup_scope_give_none) {
    pvk_cm_shape fp16_acc[] = {S(16, 16, 16, F16, F16, F16, F16, SG)};
    pvk_cm_shape f32_in_f16_out[] = {S(16, 16, 16, F16, F16, F32, F16, SG)};
    pvk_cm_shape workgroup[] = {S(16, 16, 16, F16, F16, F32, F32, WGS)};
    pvk_cm_shape int8[] = {S(16, 16, 16, I8, I8, I32, I32, SG)};
    pvk_cm_shape odd[] = {S(32, 32, 16, F16, F16, F32, F32, SG)};   /* not built */
    const pvk_cm_shape *lists[] = {fp16_acc, f32_in_f16_out, workgroup, int8, odd};
    const char *why[] = {"fp16 accumulators", "fp16 results", "workgroup scope", "int8", "an unbuilt shape"};
    for (int i = 0; i < 5; i++) {
        pvk_caps c = sim_caps(lists[i], 1, true);
        CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "%s: got %d", why[i], (int)pvk_cm_choose(&c));
    }
}

/* The extension off (PHIVK_DISABLE_COOPMAT),
 * no fp16 arithmetic, no subgroups, or no list (lavapipe): the fallback. */
TEST(without_the_extension_fp16_or_subgroups_the_tiled_kernel_falls_back) {
    pvk_cm_shape l[] = {S(16, 8, 16, F16, F16, F32, F32, SG)};
    pvk_caps c = sim_caps(l, 1, true);
    CHECK(pvk_cm_choose(&c) == PVK_CM_NV_16X8X16, "the list matches with everything on");
    c.coopmat_nv = false;
    c.coopmat = true;
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "NV off (another extension on does not list it)");
    c = sim_caps(l, 1, true);
    c.fp16 = false;
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "no fp16");
    c = sim_caps(l, 1, true);
    c.subgroup = false;
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "no subgroups");
    c = sim_caps(NULL, 0, true);
    CHECK(pvk_cm_choose(&c) == PVK_CM_COUNT, "an empty list");
}

/* ------------------------------------------------------------ on the device */

static pvk_ops *ops[1];
static pvk_cmd *cmd;

/* A discrete GPU's tiling (64x64 tiles above m 8) on the shared device. */
static pvk_dev *setup(void) {
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    pvk_ops_tuning t = check_gpu_like_tuning(pvk_dev_caps(d));
    return check_setup(1, &t, ops, &cmd);
}

TEST(the_op_layer_runs_cooperative_matrices_exactly_where_the_device_lists_a_form) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *c = pvk_dev_caps(d);
    pvk_cm cm = pvk_ops_coopmat(ops[0]);
    printf("    %s: KHR %d, NV %d, %u shapes, form %d\n", c->name, c->coopmat, c->coopmat_nv, c->n_cm_shapes, (int)cm);
    if (getenv("PHIVK_DISABLE_COOPMAT")) CHECK(!c->coopmat && !c->coopmat_nv, "PHIVK_DISABLE_COOPMAT set, yet on");
    if (strstr(c->name, "llvmpipe")) CHECK(!c->coopmat && !c->coopmat_nv && !c->n_cm_shapes, "lavapipe lists none");
    CHECK(cm == pvk_cm_choose(c) || cm == PVK_CM_COUNT, "the op set's form is the device's (or none where its tile does not fit)");
    bool on = cm != PVK_CM_COUNT;
    CHECK(pvk_ops_mm_default(ops[0], PVK_Q4_0).coopmat == on, "the default choice is coopmat iff a form exists");
    CHECK(pvk_ops_matmul_coopmat(ops[0], PVK_Q4_0, 9) == on && pvk_ops_matmul_coopmat(ops[0], PVK_F16, 64) == on,
          "the tiled sizes run coopmat iff a form exists");
    CHECK(!pvk_ops_matmul_coopmat(ops[0], PVK_Q4_0, 8), "matvec sizes (m <= mv_max_m) never do");
    if (on) CHECK(pvk_ops_matmul_f16(ops[0], PVK_Q4_0, 9), "coopmat counts as fp16 tiles (check.c's bound)");
    pvk_mm_choice ch = pvk_ops_mm_choice(ops[0], PVK_F16);
    ch.coopmat = true;
    CHECK((pvk_ops_set_mm_choice(ops[0], PVK_F16, ch) == PHIVK_OK) == on,
          "a coopmat choice is refused where there is no form");
    ch.coopmat = on;
    REQUIRE(pvk_ops_set_mm_choice(ops[0], PVK_F16, ch) == PHIVK_OK, "restore: %s", pvk_errmsg());
}

static bool has_form(void) { return pvk_ops_coopmat(ops[0]) != PVK_CM_COUNT; }

/* Random weights and x against the double reference, within the fp16 tiles' bound
 * (check.c: 11 eps16 of sum|x w| over the f32 rounding; the coopmat path rounds x
 * and W to fp16 and sums in f32, 2 eps16 of it): m and n not multiples of the tile,
 * K not a multiple of BK for plain types, and a long K. */
TEST(coopmat_matmul_matches_the_reference_within_the_fp16_tile_bound) {
    REQUIRE(setup(), "no device");
    if (!has_form()) SKIP("the device lists no fp16 x fp16 -> f32 subgroup shape phivk builds (or PHIVK_DISABLE_COOPMAT)");
    pvk_type ts[] = {PVK_F32, PVK_F16, PVK_BF16, PVK_Q4_0, PVK_Q4_K, PVK_Q6_K, PVK_Q8_0};
    int cases = 0;
    for (int i = 0; i < 7; i++) {
        bool blocks = pvk_type_get(ts[i])->block_elems > 1;
        struct { int m, n, k; } sh[3] = {{9, 33, blocks ? 256 : 257}, {70, 65, blocks ? 3072 : 1000}, {130, 200, 17920}};
        for (int j = 0; j < 3; j++, cases++)
            CHECK(check_matmul(cmd, ops[0], ts[i], sh[j].m, sh[j].n, sh[j].k, j != 1, j != 0, 1300 + 10 * i + j,
                               NULL) == 0,
                  "%s m %d n %d k %d", pvk_type_get(ts[i])->name, sh[j].m, sh[j].n, sh[j].k);
    }
    CHECK(cases == 21, "%d cases", cases);
}

/* Weights and x of few bits (multiples of 1/4 in [-2, 2] and [-1, 1]): exact in fp16,
 * their products exact and their sums exact in f32 up to K 2^18, so any block
 * misplaced or counted twice shows: the result must equal the reference exactly. */
TEST(coopmat_matmul_is_exact_on_exactly_representable_data) {
    REQUIRE(setup(), "no device");
    if (!has_form()) SKIP("the device lists no fp16 x fp16 -> f32 subgroup shape phivk builds (or PHIVK_DISABLE_COOPMAT)");
    pvk_dev *d = pvk_ops_dev(ops[0]);
    enum { M = 77, N = 70, K = 3072 };
    ref_rng r = {4242};
    float *w = malloc(sizeof *w * N * K), *x = malloc(sizeof *x * M * K), *want = calloc((size_t)M * N, 4);
    float *got = malloc(sizeof *got * M * N), *absdot = malloc(sizeof *absdot * M * N);
    for (int i = 0; i < N * K; i++) w[i] = (float)((int)ref_uniform(&r, 0, 16.999f) - 8) / 4;
    for (int i = 0; i < M * K; i++) x[i] = (float)((int)ref_uniform(&r, 0, 8.999f) - 4) / 4;
    ref_matmul(w, NULL, x, want, absdot, M, N, K, false);
    pvk_tensor t = {0};
    pvk_buf bx = check_upload(d, x, (size_t)M * K), by = check_upload(d, NULL, (size_t)M * N);
    int bad = -1;
    if (!pvk_tensor_create(d, PVK_F32, K, N, w, &t) && !pvk_cmd_begin(cmd) &&
        !pvk_op_matmul(ops[0], cmd, &t, NULL, &bx, &by, M, false) && !pvk_cmd_submit(cmd) &&
        !pvk_buf_read(d, &by, 0, got, sizeof *got * M * N))
        bad = check_mismatches("y (coopmat, exact data)", got, want, NULL, 0, (size_t)M * N);
    else
        printf("    %s\n", pvk_errmsg());
    CHECK(bad == 0, "%d mismatches of %d", bad, M * N);
    pvk_tensor_destroy(d, &t);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &by);
    free(w), free(x), free(want), free(got), free(absdot);
}
