/* GPU kernels against the CPU references (ref.c) on the shared validated device.
 * meson runs this binary once per fetch/reduction path (texel + subgroup, then
 * PHIVK_DISABLE_TEXEL, then PHIVK_DISABLE_SUBGROUP); the cases check which path
 * the device took so a run cannot silently test the other one.
 *
 * Tolerances: the GPU sums in fp32 in its own order, the reference in double. A sum
 * of n terms carries rounding error that grows like sqrt(n) * eps * sum|terms| for
 * the strided/tiled orders the kernels use, so the checks allow
 * (4 sqrt(n) + 16) * eps * sum|terms| plus the documented ULP error of the GLSL
 * builtins involved (exp: 3 + 2|x| ULP, inversesqrt: 2 ULP, division: 2.5 ULP). */
#define HARNESS_MAIN
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "gpu.h"
#include "pvk_ops.h"
#include "check.h"
#include "ref.h"

#define EPS FLT_EPSILON

static pvk_ops *ops_list[3];
#define ops_default ops_list[0]
#define ops_tiled ops_list[1]
#define ops_gpu_like ops_list[2]
static pvk_cmd *cmd;

/* The shared device with three op layers: the device's defaults (on lavapipe matvec
 * for every m); the tiled matmul for every m; and a discrete GPU's shapes (several
 * subgroups per workgroup, so the cross-subgroup reduction runs on lavapipe too, and
 * the switch from matvec to the tiled kernel between m 8 and 9). */
static pvk_dev *setup(void) {
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    const pvk_caps *caps = pvk_dev_caps(d);
    pvk_ops_tuning t[3] = {pvk_ops_default_tuning(caps), pvk_ops_default_tuning(caps), check_gpu_like_tuning(caps)};
    t[1].mv_max_m = 0;
    return check_setup(3, t, ops_list, &cmd);
}

/* Every case records one op, submits and waits. */
#define RUN(call)                                                                      \
    do {                                                                               \
        REQUIRE(pvk_cmd_begin(cmd) == PHIVK_OK, "begin: %s", pvk_errmsg());            \
        REQUIRE((call) == PHIVK_OK, "%s: %s", #call, pvk_errmsg());                     \
        REQUIRE(pvk_cmd_submit(cmd) == PHIVK_OK, "submit: %s", pvk_errmsg());          \
    } while (0)

TEST(device_takes_the_paths_the_environment_asks_for) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *c = pvk_dev_caps(d);
    if (getenv("PHIVK_DISABLE_TEXEL")) CHECK(!c->texel, "PHIVK_DISABLE_TEXEL set but caps.texel");
    if (getenv("PHIVK_DISABLE_SUBGROUP")) CHECK(!c->subgroup, "PHIVK_DISABLE_SUBGROUP set but caps.subgroup");
    printf("    %s: texel %d, subgroup %d (size %u)\n", c->name, c->texel, c->subgroup, c->subgroup_size);
    uint16_t h[4] = {0x3c00, 0x4000, 0x4200, 0x4400};
    pvk_tensor t;
    REQUIRE(pvk_tensor_create(d, PVK_F16, 4, 1, h, &t) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK((t.views != NULL) == c->texel, "texel views exist iff caps.texel");
    CHECK(t.n_chunks == 1 && t.chunk_rows == 1, "a small tensor is one chunk");
    pvk_tensor_destroy(d, &t);
}

/* ------------------------------------------------------------ normalisation */

static void norm_case(pvk_ops *o, bool layer, int rows, int n, bool with_w, bool with_b,
                      bool in_place, uint64_t seed) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    size_t total = (size_t)rows * n;
    float *x = malloc(total * 4), *w = malloc(n * 4), *b = malloc(n * 4);
    float *want = malloc(total * 4), *got = malloc(total * 4), *tol = malloc(total * 4);
    ref_fill(&rng, x, total, -1.0f, 2.0f);   /* a mean of 0.5 for layernorm to remove */
    ref_fill(&rng, w, n, -2.0f, 2.0f);
    ref_fill(&rng, b, n, -1.0f, 1.0f);
    const float eps = 1e-5f;
    if (layer) ref_layernorm(x, with_w ? w : NULL, with_b ? b : NULL, want, rows, n, eps);
    else ref_rmsnorm(x, with_w ? w : NULL, want, rows, n, eps);
    /* The sums carry (4 sqrt(n) + 16) eps relative error (see top); the scale
     * inversesqrt 2 ULP more. Layernorm's x - mean loses what |mean| adds to |x|, and
     * its bias adds its own rounding. */
    for (int r = 0; r < rows; r++) {
        double mean = 0, ms = 0;
        for (int i = 0; i < n; i++) mean += x[r * n + i];
        mean = layer ? mean / n : 0;
        for (int i = 0; i < n; i++) ms += (x[r * n + i] - mean) * (x[r * n + i] - mean);
        double s = 1 / sqrt(ms / n + eps);
        for (int i = 0; i < n; i++) {
            size_t k = (size_t)r * n + i;
            double mag = (fabs(x[k]) + fabs(mean)) * s * (with_w ? fabs(w[i]) : 1) + (with_b ? fabs(b[i]) : 0);
            tol[k] = (float)((4 * sqrt(n) + 16) * EPS * mag);
        }
    }
    pvk_buf bx = check_upload(d, x, total), bw = check_upload(d, w, n), bb = check_upload(d, b, n);
    pvk_buf bo = in_place ? bx : check_upload(d, NULL, total);
    const pvk_buf *pw = with_w ? &bw : NULL, *pb = with_b ? &bb : NULL;
    if (pvk_cmd_begin(cmd) ||
        (layer ? pvk_op_layernorm(o, cmd, &bx, pw, pb, &bo, rows, n, eps)
               : pvk_op_rmsnorm(o, cmd, &bx, pw, &bo, rows, n, eps)) ||
        pvk_cmd_submit(cmd) || pvk_buf_read(d, &bo, 0, got, total * 4))
        CHECK(0, "%s %dx%d: %s", layer ? "layernorm" : "rmsnorm", rows, n, pvk_errmsg());
    else
        CHECK(!check_mismatches(layer ? "layernorm" : "rmsnorm", got, want, tol, 0, total),
              "%s rows %d n %d w %d b %d in place %d", layer ? "layernorm" : "rmsnorm", rows, n,
              with_w, with_b, in_place);
    if (!in_place) pvk_buf_destroy(d, &bo);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bw);
    pvk_buf_destroy(d, &bb);
    free(x), free(w), free(b), free(want), free(got), free(tol);
}

TEST(rmsnorm_matches_reference_for_odd_and_model_widths) {
    REQUIRE(setup(), "no device");
    int ns[] = {1, 7, 100, 3072};
    for (int i = 0; i < 4; i++) norm_case(ops_default, false, 3, ns[i], true, false, false, 10 + i);
    norm_case(ops_default, false, 2, 33, false, false, false, 20);   /* no weight */
    norm_case(ops_default, false, 2, 257, true, false, true, 21);    /* in place */
    norm_case(ops_gpu_like, false, 3, 3072, true, false, false, 22); /* several subgroups */
}

TEST(layernorm_matches_reference_with_and_without_weight_and_bias) {
    REQUIRE(setup(), "no device");
    norm_case(ops_default, true, 3, 2560, true, true, false, 30);
    norm_case(ops_default, true, 2, 7, true, true, false, 31);
    norm_case(ops_default, true, 2, 33, false, false, false, 32);
    norm_case(ops_default, true, 1, 1, true, true, false, 33);   /* var 0: out = b */
    norm_case(ops_default, true, 2, 100, true, true, true, 34);
    norm_case(ops_gpu_like, true, 3, 2560, true, true, false, 35);
}

/* ------------------------------------------------------------------ softmax */

static void softmax_case(pvk_ops *o, int rows, int n, float lo, float hi, bool in_place, uint64_t seed) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    size_t total = (size_t)rows * n;
    float *x = malloc(total * 4), *want = malloc(total * 4), *got = malloc(total * 4), *tol = malloc(total * 4);
    ref_fill(&rng, x, total, lo, hi);
    ref_softmax(x, want, rows, n);
    /* exp is within 3 + 2|x - max| <= 3 + 2 (hi - lo) ULP for the term and for each
     * term of the sum; the sum adds (4 sqrt(n) + 16) eps; then a division. */
    for (size_t i = 0; i < total; i++)
        tol[i] = (float)((4 * sqrt(n) + 16 + 2 * (3 + 2 * (hi - lo)) + 3) * EPS * want[i]) + 1e-30f;
    pvk_buf bx = check_upload(d, x, total), bo = in_place ? bx : check_upload(d, NULL, total);
    if (pvk_cmd_begin(cmd) || pvk_op_softmax(o, cmd, &bx, &bo, rows, n) || pvk_cmd_submit(cmd) ||
        pvk_buf_read(d, &bo, 0, got, total * 4))
        CHECK(0, "softmax %dx%d: %s", rows, n, pvk_errmsg());
    else
        CHECK(!check_mismatches("softmax", got, want, tol, 0, total), "softmax rows %d n %d in [%g, %g]", rows,
              n, lo, hi);
    if (!in_place) pvk_buf_destroy(d, &bo);
    pvk_buf_destroy(d, &bx);
    free(x), free(want), free(got), free(tol);
}

TEST(softmax_matches_reference_including_vocab_width_and_large_logits) {
    REQUIRE(setup(), "no device");
    softmax_case(ops_default, 1, 1, -1, 1, false, 40);        /* a single element: 1 */
    softmax_case(ops_default, 4, 7, -8, 8, false, 41);
    softmax_case(ops_default, 2, 1000, -8, 8, true, 42);
    softmax_case(ops_default, 2, 32064, -8, 8, false, 43);
    softmax_case(ops_default, 2, 300, 990, 1000, false, 44);  /* exp(1000) would overflow without the max */
    softmax_case(ops_gpu_like, 3, 1000, -8, 8, false, 45);
}

TEST(softmax_of_a_fully_masked_row_is_zeros_not_nan) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    float x[2 * 40], got[2 * 40];
    for (int i = 0; i < 80; i++) x[i] = i < 40 ? -INFINITY : (i == 50 ? 0.0f : -INFINITY);
    pvk_buf b = check_upload(d, x, 80);
    REQUIRE(pvk_cmd_begin(cmd) == PHIVK_OK && pvk_op_softmax(ops_default, cmd, &b, &b, 2, 40) == PHIVK_OK &&
                pvk_cmd_submit(cmd) == PHIVK_OK && pvk_buf_read(d, &b, 0, got, sizeof got) == PHIVK_OK,
            "softmax: %s", pvk_errmsg());
    int bad = 0;
    for (int i = 0; i < 80; i++) bad += got[i] != (i == 50 ? 1.0f : 0.0f);   /* exact: exp(0) / 1 */
    CHECK(bad == 0, "row 0 (all -inf) all zeros, row 1 one-hot at its only finite logit (%d wrong)", bad);
    pvk_buf_destroy(d, &b);
}

/* -------------------------------------------------------------- activations */

enum act_kind { ACT_SILU, ACT_GELU, ACT_SWIGLU, ACT_GEGELU };

/* Phi-3-small's GEGELU (docs/spec/phi3-small.md section 14) in double: the gelu half
 * clamped above, the linear half on both sides, quick GELU, times (c + 1). */
static double ref_gegelu(double a, double c, double limit) {
    if (limit > 0) {
        a = fmin(a, limit);
        c = fmax(-limit, fmin(c, limit));
    }
    return a / (1 + exp(-1.702 * a)) * (c + 1);
}

/* GEGELU's limit in act_case. */
static float gegelu_limit;

static void act_case(pvk_ops *o, enum act_kind kind, int rows, int n, float range, uint64_t seed) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    bool halves = kind == ACT_SWIGLU || kind == ACT_GEGELU;
    size_t out_n = (size_t)rows * n, in_n = halves ? 2 * out_n : out_n;
    float *x = malloc(in_n * 4), *want = malloc(out_n * 4), *got = malloc(out_n * 4), *tol = malloc(out_n * 4);
    ref_fill(&rng, x, in_n, -range, range);
    for (size_t i = 0; i < out_n; i++) {
        float g = halves ? x[(i / n) * 2 * n + i % n] : x[i];
        float u = halves ? x[(i / n) * 2 * n + n + i % n] : 1.0f;
        want[i] = kind == ACT_GELU ? ref_gelu(g) : kind == ACT_GEGELU ? (float)ref_gegelu(g, u, gegelu_limit)
                                                                       : ref_silu(g) * u;
        /* sigmoid(v) = 1 / (1 + exp(-v)): exp's 3 + 2|v| ULP, the division's 2.5, the
         * products' 1 each. GELU's v = 2 sqrt(2/pi)(x + 0.044715 x^3) adds 3 ULP of
         * its own, amplified by |v| where sigmoid is exponential. */
        double v = kind == ACT_GELU ? 1.5957691216 * (fabs(g) + 0.044715 * fabs(g * g * g))
                 : kind == ACT_GEGELU ? 1.702 * fabs(g) : fabs(g);
        /* (GEGELU's c + 1 of an exact c rounds relative to the sum: one product more.) */
        tol[i] = (float)((8 + 5 * v) * EPS * fabs(want[i])) + 1e-30f;
    }
    pvk_buf bx = check_upload(d, x, in_n), bo = check_upload(d, NULL, out_n);
    phivk_status st = PHIVK_OK;
    if (!(st = pvk_cmd_begin(cmd))) {
        if (kind == ACT_SILU) st = pvk_op_silu(o, cmd, &bx, &bo, (uint32_t)out_n);
        else if (kind == ACT_GELU) st = pvk_op_gelu(o, cmd, &bx, &bo, (uint32_t)out_n);
        else if (kind == ACT_GEGELU) st = pvk_op_gegelu(o, cmd, &bx, &bo, rows, n, gegelu_limit);
        else st = pvk_op_swiglu(o, cmd, &bx, &bo, rows, n);
    }
    const char *name = kind == ACT_SILU ? "silu" : kind == ACT_GELU ? "gelu" : kind == ACT_GEGELU ? "gegelu" : "swiglu";
    if (st || pvk_cmd_submit(cmd) || pvk_buf_read(d, &bo, 0, got, out_n * 4))
        CHECK(0, "%s: %s", name, pvk_errmsg());
    else
        CHECK(!check_mismatches(name, got, want, tol, 0, out_n), "%s %d x %d in +-%g", name, rows, n, range);
    pvk_buf_destroy(d, &bx);
    pvk_buf_destroy(d, &bo);
    free(x), free(want), free(got), free(tol);
}

TEST(silu_and_gelu_match_reference) {
    REQUIRE(setup(), "no device");
    act_case(ops_default, ACT_SILU, 1, 1, 12, 50);
    act_case(ops_default, ACT_SILU, 1, 10007, 12, 51);
    act_case(ops_default, ACT_GELU, 1, 1, 6, 52);
    act_case(ops_default, ACT_GELU, 1, 10007, 6, 53);
    act_case(ops_gpu_like, ACT_GELU, 1, 777, 6, 54);
}

TEST(swiglu_matches_reference_and_folds_a_large_grid) {
    REQUIRE(setup(), "no device");
    act_case(ops_default, ACT_SWIGLU, 3, 7, 8, 60);
    act_case(ops_default, ACT_SWIGLU, 2, 8192, 8, 61);
    /* 520 x 8192 outputs need more than 65535 workgroups of 64: the grid folds into y. */
    act_case(ops_default, ACT_SWIGLU, 520, 8192, 8, 62);
}

/* Inputs in +-30 cross Phi-3-small's limit of 20 on both halves; limit 0 clamps
 * nothing (inputs in +-8, where quick GELU and c + 1 stay finite). */
TEST(gegelu_matches_reference_with_and_without_its_limit) {
    REQUIRE(setup(), "no device");
    gegelu_limit = 20.0f;
    act_case(ops_default, ACT_GEGELU, 3, 7, 30, 70);
    act_case(ops_default, ACT_GEGELU, 2, 8192, 30, 71);
    act_case(ops_gpu_like, ACT_GEGELU, 5, 4096, 30, 72);
    gegelu_limit = 0.0f;
    act_case(ops_default, ACT_GEGELU, 3, 1000, 8, 73);
}

TEST(add_and_mul_match_reference_in_place) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const int n = 1001;
    ref_rng rng = {70};
    float a[1001], b[1001], got[1001], want[1001];
    ref_fill(&rng, a, n, -4, 4);
    ref_fill(&rng, b, n, -4, 4);
    for (int op = 0; op < 2; op++) {
        pvk_buf ba = check_upload(d, a, n), bb = check_upload(d, b, n);
        for (int i = 0; i < n; i++) want[i] = op ? a[i] * b[i] : a[i] + b[i];
        RUN(op ? pvk_op_mul(ops_default, cmd, &ba, &bb, &ba, n) : pvk_op_add(ops_default, cmd, &ba, &bb, &ba, n));
        REQUIRE(pvk_buf_read(d, &ba, 0, got, sizeof got) == PHIVK_OK, "%s", pvk_errmsg());
        /* One fp32 operation, correctly rounded both sides: exact equality. */
        CHECK(!check_mismatches(op ? "mul" : "add", got, want, NULL, 0, n), "%s", op ? "mul" : "add");
        pvk_buf_destroy(d, &ba);
        pvk_buf_destroy(d, &bb);
    }
}

/* ---------------------------------------------------------- matrix products */

static const pvk_type wtypes[] = {PVK_F32, PVK_F16, PVK_BF16};

TEST(matmul_odd_k_takes_the_scalar_path_for_every_type) {
    REQUIRE(setup(), "no device");
    for (int i = 0; i < 3; i++) {
        pvk_type t = wtypes[i];
        CHECK(check_matmul(cmd, ops_default, t, 1, 37, 1, false, false, 100, NULL) == 0, "k 1");
        CHECK(check_matmul(cmd, ops_default, t, 3, 37, 7, true, false, 101, NULL) == 0, "k 7");
        CHECK(check_matmul(cmd, ops_default, t, 9, 37, 33, false, true, 102, NULL) == 0, "k 33, m 9");
        CHECK(check_matmul(cmd, ops_default, t, 12, 19, 7, true, true, 103, NULL) == 0, "k 7, m 12");
    }
}

TEST(matmul_m_1_to_9_with_both_kernels_around_the_switch) {
    REQUIRE(setup(), "no device");
    /* K 200: whole 8-element chunks, but not a multiple of the matvec stride (8 x 8)
     * nor of the matmul tile's K (16). */
    for (int i = 0; i < 3; i++)
        for (int m = 1; m <= 9; m++) {
            bool bias = m % 2, acc = m % 3 == 0;
            pvk_ops *os[3] = {ops_default, ops_tiled, ops_gpu_like};
            for (int j = 0; j < 3; j++)
                CHECK(check_matmul(cmd, os[j], wtypes[i], m, 45, 200, bias, acc, 200 + 10 * j + m, NULL) == 0,
                      "%s m %d", j == 0 ? "default" : j == 1 ? "tiled" : "gpu-like", m);
        }
}

/* On CPU devices (mv_lane_rows) every m > 1 has lanes owning whole rows and reads x
 * as f32 through a texel view: the int8 form is not asked for there. Rows past a
 * workgroup's 64 (141 = 2 x 64 + 13) and a second, partial group of columns (m 11)
 * leave lanes and columns without work, which must not be written. */
TEST(several_columns_on_a_cpu_device_have_lanes_owning_whole_rows) {
    REQUIRE(setup(), "no device");
    uint32_t lane_rows = pvk_ops_get_tuning(ops_default)->mv_lane_rows;
    if (!lane_rows) SKIP("the device's tuning keeps lanes splitting K (not a CPU device, or no texel buffers)");
    CHECK(!pvk_ops_reads_q8(ops_default, PVK_Q4_0, 2) && !pvk_ops_reads_q8(ops_default, PVK_Q4_K, 8),
          "m > 1 reads f32");
    CHECK(pvk_ops_reads_q8(ops_default, PVK_Q4_0, 1) == (pvk_ops_mm_choice(ops_default, PVK_Q4_0).int8 &&
                                                        !pvk_ops_mm_choice(ops_default, PVK_Q4_0).lanes),
          "m 1 follows the type's choice");
    pvk_type ts[] = {PVK_F16, PVK_BF16, PVK_Q4_0, PVK_Q4_K, PVK_Q6_K};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        for (int m = 8; m <= 11; m += 3)
            CHECK(check_matmul(cmd, ops_default, ts[i], m, 141, 256, m == 8, m == 11, 470 + 10 * i + m, NULL) == 0,
                  "%s m %d, %u rows per lane", pvk_type_get(ts[i])->name, m, lane_rows);
}

TEST(phivk_lane_rows_0_keeps_lanes_splitting_k_and_bad_values_are_refused) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    pvk_ops *o = NULL;
    setenv("PHIVK_LANE_ROWS", "0", 1);
    CHECK(pvk_ops_create(d, &o) == PHIVK_OK && pvk_ops_get_tuning(o)->mv_lane_rows == 0, "0: %s", pvk_errmsg());
    if (o) CHECK(check_matmul(cmd, o, PVK_F16, 4, 45, 200, true, false, 466, NULL) == 0, "K split at m 4");
    pvk_ops_destroy(o);
    o = NULL;
    setenv("PHIVK_LANE_ROWS", "4", 1);
    phivk_status st = pvk_ops_create(d, &o);
    CHECK(pvk_dev_caps(d)->texel ? st == PHIVK_OK && pvk_ops_get_tuning(o)->mv_lane_rows == 4
                                 : st == PHIVK_ERR_INVALID && !o,
          "4 rows per lane where the device has texel buffers, else refused: %s", pvk_errmsg());
    if (o) CHECK(check_matmul(cmd, o, PVK_Q4_K, 5, 45, 256, false, true, 467, NULL) == 0, "4 rows per lane at m 5");
    pvk_ops_destroy(o);
    const char *bad[] = {"3", "32", "yes", "-1"};
    for (int i = 0; i < 4; i++) {
        o = NULL;
        setenv("PHIVK_LANE_ROWS", bad[i], 1);
        CHECK(pvk_ops_create(d, &o) == PHIVK_ERR_INVALID && !o && strstr(pvk_errmsg(), "lane"),
              "PHIVK_LANE_ROWS=%s is refused, naming the knob: %s", bad[i], pvk_errmsg());
        pvk_ops_destroy(o);
    }
    unsetenv("PHIVK_LANE_ROWS");
}

TEST(matmul_large_shapes_vocab_rows_and_long_k) {
    REQUIRE(setup(), "no device");
    CHECK(check_matmul(cmd, ops_default, PVK_F16, 1, 32064, 64, true, false, 450, NULL) == 0, "32064 rows, m 1");
    CHECK(check_matmul(cmd, ops_default, PVK_F16, 20, 32064, 64, false, false, 451, NULL) == 0, "32064 rows, m 20");
    CHECK(check_matmul(cmd, ops_tiled, PVK_F16, 20, 32064, 64, true, true, 452, NULL) == 0, "32064 rows, tiled");
    CHECK(check_matmul(cmd, ops_default, PVK_F16, 1, 24, 17920, false, true, 453, NULL) == 0, "k 17920, m 1");
    CHECK(check_matmul(cmd, ops_tiled, PVK_BF16, 10, 24, 17920, true, false, 454, NULL) == 0, "k 17920, tiled");
    CHECK(check_matmul(cmd, ops_default, PVK_F32, 4, 3072, 3072, true, true, 455, NULL) == 0, "3072^2 f32, m 4");
}

TEST(matmul_with_discrete_gpu_shapes) {
    REQUIRE(setup(), "no device");
    int ms[] = {1, 3, 8, 9, 70};
    for (int i = 0; i < 5; i++)
        CHECK(check_matmul(cmd, ops_gpu_like, PVK_F16, ms[i], 133, 200, i % 2, i % 3 == 0, 500 + i, NULL) == 0,
              "m %d", ms[i]);
    CHECK(check_matmul(cmd, ops_gpu_like, PVK_BF16, 2, 40, 33, true, false, 510, NULL) == 0, "odd k");
}

static const pvk_type qtypes[] = {PVK_Q4_0, PVK_Q6_K, PVK_Q8_0, PVK_Q4_1, PVK_Q5_0, PVK_Q5_1, PVK_Q4_K, PVK_Q5_K};
#define N_QTYPES (int)(sizeof qtypes / sizeof qtypes[0])

/* Block weights are read in place (no dequantized copy); the reference multiplies
 * their CPU dequantization (quant_dequantize_row), so only the summation differs
 * (tolerance in check.c). K runs from one K-quant super-block (or three legacy
 * blocks: an odd count) to Phi-3-medium's 17920; matvec with 1 and 4 columns per
 * workgroup (partly filled), the tiled kernel and GPU shapes. Each shape is a
 * pipeline that lavapipe compiles cold in 1-7 s, so the column counts 2 and 8 run
 * on one legacy and one K-quant type (the next test): the decoding is shared. */
TEST(quant_matmul_matches_dequantized_reference_for_every_type) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    /* Without subgroup ops only the final reduction differs, which every type
     * shares: two types (a legacy and a K-quant) keep that run's compile time down. */
    int n_types = pvk_dev_caps(d)->subgroup ? N_QTYPES : 2;
    for (int i = 0; i < n_types; i++) {
        pvk_type t = qtypes[i];
        int kmin = pvk_type_get(t)->block_elems == 32 ? 96 : 256;
        struct { pvk_ops *o; int m, n, k; } cases[] = {
            {ops_default, 1, 37, kmin}, {ops_default, 3, 45, 512}, {ops_default, 1, 8, 17920},
            {ops_default, 4, 64, 3072}, {ops_tiled, 9, 40, 512},   {ops_tiled, 2, 33, kmin},
            {ops_gpu_like, 3, 45, 768},
        };
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
            CHECK(check_matmul(cmd, cases[j].o, t, cases[j].m, cases[j].n, cases[j].k, j % 2, j % 3 == 0,
                               600 + 20 * i + j, NULL) == 0,
                  "%s case %zu", pvk_type_get(t)->name, j);
    }
}

TEST(quant_matvec_every_column_count_from_m_1_to_9) {
    REQUIRE(setup(), "no device");
    pvk_type ts[2] = {PVK_Q4_0, PVK_Q4_K};
    for (int i = 0; i < 2; i++)
        for (int m = 1; m <= 9; m++)
            CHECK(check_matmul(cmd, ops_default, ts[i], m, 21, 512, m % 2, m % 3 == 0, 800 + 10 * i + m, NULL) == 0,
                  "%s m %d", pvk_type_get(ts[i])->name, m);
}

/* get_rows computes each weight as a*q + b with the same fp32 a and b as
 * quant_dequantize_row (K-quants: d*sc and dmin*m). A device may contract a*q + b
 * into one fma, rounding once instead of twice, so the bound is 1 ulp of the terms'
 * magnitude (check_weight_magnitudes); on lavapipe the rows come out identical. */
TEST(get_rows_reads_every_quantized_table_type) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    enum { ROWS = 20, COLS = 512, N = 5 };
    uint32_t ids[N] = {3, 0, 19, 3, 1000};   /* a repeat and an id past the table (zeros) */
    for (int i = 0; i < N_QTYPES; i++) {
        pvk_type t = qtypes[i];
        ref_rng rng = {700 + i};
        uint8_t *stored = malloc(pvk_type_row_bytes(t, COLS) * ROWS);
        float *v = malloc(sizeof *v * ROWS * COLS), *mag = malloc(sizeof *mag * ROWS * COLS);
        float got[N * COLS], want[N * COLS] = {0}, tol[N * COLS] = {0};
        ref_weights(&rng, t, ROWS, COLS, stored, v);
        check_weight_magnitudes(t, v, mag, (size_t)ROWS * COLS);
        for (int r = 0; r < N; r++)
            for (int c = 0; ids[r] < ROWS && c < COLS; c++) {
                want[r * COLS + c] = v[ids[r] * COLS + c];
                tol[r * COLS + c] = EPS * mag[ids[r] * COLS + c];
            }
        pvk_tensor w;
        REQUIRE(pvk_tensor_create(d, t, COLS, ROWS, stored, &w) == PHIVK_OK, "%s", pvk_errmsg());
        pvk_buf bi = {0}, bo = check_upload(d, NULL, N * COLS);
        REQUIRE(pvk_buf_create(d, sizeof ids, PVK_MEM_DEVICE, &bi) == PHIVK_OK &&
                    pvk_buf_write(d, &bi, 0, ids, sizeof ids) == PHIVK_OK,
                "%s", pvk_errmsg());
        RUN(pvk_op_get_rows(ops_default, cmd, &w, &bi, &bo, N));
        REQUIRE(pvk_buf_read(d, &bo, 0, got, sizeof got) == PHIVK_OK, "%s", pvk_errmsg());
        CHECK(!check_mismatches(pvk_type_get(t)->name, got, want, tol, 0, N * COLS), "get_rows %s",
              pvk_type_get(t)->name);
        pvk_tensor_destroy(d, &w);
        pvk_buf_destroy(d, &bi);
        pvk_buf_destroy(d, &bo);
        free(stored), free(v), free(mag);
    }
}

/* Warm-up records the pipelines of a model's types into one submit; it has to run
 * cleanly (validation on) and refuse a type without kernels by name. */
TEST(warmup_runs_the_pipelines_of_the_given_types_and_refuses_unknown_ones) {
    REQUIRE(setup(), "no device");
    pvk_type types[3] = {PVK_Q4_0, PVK_F16, PVK_Q4_0};
    CHECK(pvk_ops_warmup(ops_default, types, 3, PVK_Q8_0) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(pvk_ops_warmup(ops_gpu_like, types, 2, PVK_F16) == PHIVK_OK, "gpu-like shapes: %s", pvk_errmsg());
    pvk_type bad = PVK_Q2_K;
    CHECK(pvk_ops_warmup(ops_default, &bad, 1, PVK_F16) == PHIVK_ERR_UNSUPPORTED, "q2_K has no kernel");
    CHECK(strstr(pvk_errmsg(), "q2_K") != NULL, "message names the type: %s", pvk_errmsg());
}

TEST(ops_reject_bad_arguments_with_a_message) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    pvk_tensor w;
    uint16_t h[64] = {0};
    REQUIRE(pvk_tensor_create(d, PVK_F16, 8, 8, h, &w) == PHIVK_OK, "%s", pvk_errmsg());
    pvk_buf x = check_upload(d, NULL, 16), small = check_upload(d, NULL, 4);
    REQUIRE(pvk_cmd_begin(cmd) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(pvk_op_matmul(ops_default, cmd, &w, NULL, &x, &small, 2, false) == PHIVK_ERR_INVALID, "y too small");
    CHECK(strstr(pvk_errmsg(), "y buffer") != NULL, "message names y: %s", pvk_errmsg());
    CHECK(pvk_op_rmsnorm(ops_default, cmd, &x, NULL, &x, 3, 8, 1e-5f) == PHIVK_ERR_INVALID, "x too small");
    CHECK(pvk_op_softmax(ops_default, cmd, &x, &x, 0, 8) == PHIVK_ERR_INVALID, "empty softmax");
    CHECK(pvk_cmd_submit(cmd) == PHIVK_OK, "nothing bad was recorded: %s", pvk_errmsg());
    pvk_tensor bad;
    CHECK(pvk_tensor_create(d, PVK_Q8_1, 32, 1, NULL, &bad) == PHIVK_ERR_UNSUPPORTED, "q8_1 tensors");
    CHECK(pvk_tensor_create(d, PVK_F16, 0, 1, NULL, &bad) == PHIVK_ERR_INVALID, "0 columns");
    pvk_ops_tuning t = pvk_ops_default_tuning(pvk_dev_caps(d));
    t.mm_tm = 3;
    pvk_ops *o;
    CHECK(pvk_ops_create_tuned(d, &t, &o) == PHIVK_ERR_INVALID, "tm 3 is not a power of two");
    pvk_tensor_destroy(d, &w);
    pvk_buf_destroy(d, &x);
    pvk_buf_destroy(d, &small);
}
