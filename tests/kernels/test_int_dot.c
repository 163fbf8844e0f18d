/* The integer-dot-product path: norms and activations that also write int8
 * activations (shaders/q8_store.glsl), and matvec of block weights reading them
 * with 4x8-bit dot products. meson runs this binary twice: on the device's
 * defaults (lavapipe has shaderIntegerDotProduct, so the path is on) and with
 * PHIVK_DISABLE_INT_DOT=1, where the same matmuls must take the f32 path and the
 * int8 ops refuse cleanly. Tolerances as in test_kernels.c; the int8 encoding is
 * checked against the f32 values it encodes (half a quantization step). */
#define HARNESS_MAIN
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "gpu.h"
#include "pvk_ops.h"
#include "ref.h"

#define EPS FLT_EPSILON

static pvk_ops *ops_list[2];
#define ops ops_list[0]
#define ops_gpu_like ops_list[1]
static pvk_cmd *cmd;

/* The device's defaults, and a discrete GPU's shapes (several subgroups per row of
 * a norm; the tiled kernel, which reads f32, from m 9). */
static pvk_dev *setup(void) {
    pvk_dev *d = test_gpu();
    if (!d) return NULL;
    pvk_ops_tuning t[2];
    check_k_split_tunings(pvk_dev_caps(d), t);
    return check_setup(2, t, ops_list, &cmd);
}

static bool int_dot_on(void) { return !getenv("PHIVK_DISABLE_INT_DOT"); }

TEST(int8_path_follows_the_device_and_the_kill_switch) {
    pvk_dev *d;
    REQUIRE(d = setup(), "no device");
    const pvk_caps *c = pvk_dev_caps(d);
    printf("    %s: int_dot %d (accelerated %d), subgroup %d\n", c->name, c->int_dot, c->int_dot_accel,
           c->subgroup);
    if (!int_dot_on()) {
        CHECK(!c->int_dot, "PHIVK_DISABLE_INT_DOT set but caps.int_dot");
        CHECK(!pvk_ops_reads_q8(ops, PVK_Q4_0, 1), "no int8 matvec without integer dot products");
        pvk_ops_tuning t = pvk_ops_default_tuning(c);
        t.mv_int_dot = true;
        pvk_ops *o = NULL;
        CHECK(pvk_ops_create_tuned(d, &t, &o) == PHIVK_ERR_INVALID, "forcing mv_int_dot is refused");
        pvk_ops_destroy(o);
        pvk_buf x = check_upload(d, NULL, 64), q = check_upload(d, NULL, 64);
        CHECK(pvk_op_act_q8(ops, cmd, PVK_ACT_COPY, &x, NULL, &q, 1, 32) == PHIVK_ERR_UNSUPPORTED,
              "the int8 ops refuse with a reason: %s", pvk_errmsg());
        pvk_buf_destroy(d, &x);
        pvk_buf_destroy(d, &q);
        return;
    }
    if (strstr(c->name, "llvmpipe")) CHECK(c->int_dot, "lavapipe offers shaderIntegerDotProduct");
    CHECK(pvk_ops_reads_q8(ops, PVK_Q4_K, 1) == (c->int_dot && c->subgroup), "decode reads int8 where possible");
    CHECK(!pvk_ops_reads_q8(ops, PVK_F16, 1), "plain weights read f32");
    CHECK(!pvk_ops_reads_q8(ops_gpu_like, PVK_Q4_0, 9), "the tiled kernel reads f32");
}

/* ------------------------------------------------ int8 activations */

typedef enum { K_COPY, K_GELU, K_SWIGLU, K_RMSNORM, K_LAYERNORM, K_GEGELU } kind;
static const char *const kind_names[] = {"copy", "gelu", "swiglu", "rmsnorm", "layernorm", "gegelu"};
#define GEGELU_LIMIT 2.5f   /* inside the inputs' [-3, 4], so both clamps act */

/* Records the op of kind k on rows x n (SWIGLU: x is rows x 2n). */
static phivk_status record(pvk_ops *o, kind k, const pvk_buf *x, const pvk_buf *w, const pvk_buf *b,
                         const pvk_buf *out, const pvk_buf *q, int rows, int n) {
    switch (k) {
    case K_RMSNORM: return pvk_op_rmsnorm_q8(o, cmd, x, w, out, q, rows, n, 1e-5f);
    case K_LAYERNORM: return pvk_op_layernorm_q8(o, cmd, x, w, b, out, q, rows, n, 1e-5f);
    case K_GEGELU: return pvk_op_gegelu_q8(o, cmd, x, out, q, rows, n, GEGELU_LIMIT);
    default:
        return pvk_op_act_q8(o, cmd, k == K_COPY ? PVK_ACT_COPY : k == K_GELU ? PVK_ACT_GELU : PVK_ACT_SWIGLU, x,
                             out, q, rows, n);
    }
}

/* The f32 result of kind k (so its int8 form can be checked against it) is within
 * the op's own tolerance of the CPU reference; the int8 form encodes that result. */
static void act_case(pvk_ops *o, kind k, int rows, int n, uint64_t seed) {
    pvk_dev *d = pvk_ops_dev(o);
    ref_rng rng = {seed};
    size_t total = (size_t)rows * n, in_n = k == K_SWIGLU || k == K_GEGELU ? 2 * total : total;
    uint64_t qb = pvk_q8_bytes(rows, n);
    float *x = malloc(in_n * 4), *w = malloc(n * 4), *b = malloc(n * 4), *want = malloc(total * 4);
    float *got = malloc(total * 4), *dec = malloc(total * 4);
    uint8_t *q = malloc(qb), *q_only = malloc(qb);
    ref_fill(&rng, x, in_n, -3.0f, 4.0f);
    ref_fill(&rng, w, n, -2.0f, 2.0f);
    ref_fill(&rng, b, n, -1.0f, 1.0f);
    x[5] = 0.0f;   /* zero blocks encode as d 0 */
    if (n > 32) memset(x + 32, 0, 32 * sizeof *x);
    double tol_rel = (4 * sqrt(n) + 16) * EPS;   /* the norms' sums (test_kernels.c) */
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) {
            size_t j = (size_t)r * n + i;
            if (k == K_COPY) want[j] = x[j];
            else if (k == K_GELU) want[j] = ref_gelu(x[j]);
            else if (k == K_SWIGLU) want[j] = ref_silu(x[2 * (size_t)r * n + i]) * x[2 * (size_t)r * n + n + i];
            else if (k == K_GEGELU) {
                /* docs/spec/phi3-small.md section 14 */
                double a = fmin(x[2 * (size_t)r * n + i], GEGELU_LIMIT);
                double c = fmax(-GEGELU_LIMIT, fmin(x[2 * (size_t)r * n + n + i], GEGELU_LIMIT));
                want[j] = (float)(a / (1 + exp(-1.702 * a)) * (c + 1));
            }
        }
    if (k == K_RMSNORM) ref_rmsnorm(x, w, want, rows, n, 1e-5f);
    if (k == K_LAYERNORM) ref_layernorm(x, w, b, want, rows, n, 1e-5f);

    pvk_buf bx = check_upload(d, x, in_n), bw = check_upload(d, w, n), bb = check_upload(d, b, n);
    pvk_buf bo = check_upload(d, NULL, total), bq = {0}, bq2 = {0};
    bool ok = !pvk_buf_create(d, qb, PVK_MEM_DEVICE, &bq) && !pvk_buf_create(d, qb, PVK_MEM_DEVICE, &bq2) &&
              !pvk_cmd_begin(cmd) && !record(o, k, &bx, &bw, &bb, &bo, &bq, rows, n) &&
              !record(o, k, &bx, &bw, &bb, NULL, &bq2, rows, n) && !pvk_cmd_submit(cmd) &&
              !pvk_buf_read(d, &bo, 0, got, total * 4) && !pvk_buf_read(d, &bq, 0, q, qb) &&
              !pvk_buf_read(d, &bq2, 0, q_only, qb);
    CHECK(ok, "%s %d x %d: %s", kind_names[k], rows, n, pvk_errmsg());
    if (ok) {
        /* f32: the norms' tolerance (test_kernels.c); the activations' exp is
         * 3 + 2|x| ULP, a product or two more. */
        int bad = 0;
        for (size_t i = 0; i < total && bad < 3; i++) {
            /* norms: sum|terms| per element is at most 8 here (|x| <= 4 times s |w| <= 2,
             * plus |b| <= 1 and the mean) */
            double t = k == K_RMSNORM || k == K_LAYERNORM ? tol_rel * 8 : 32 * EPS * fabs(want[i]);
            if (fabs(got[i] - want[i]) > t) {
                printf("    %s out[%zu] = %.9g, want %.9g\n", kind_names[k], i, got[i], want[i]);
                bad++;
            }
        }
        CHECK(bad == 0, "%s rows %d n %d: f32 result within its tolerance", kind_names[k], rows, n);
        /* int8: d = max|v| / 127 of each block (one division: 2.5 ULP); every value
         * within half a step of d*q (a few ULP of d more for v*(127/amax)); the half
         * sums are d times the sum of the stored q. */
        check_q8_decode(q, rows, n, dec);
        const float *meta = (const float *)(q + total);
        int bad_d = 0, bad_q = 0, bad_s = 0;
        for (size_t blk = 0; blk < total / 32; blk++) {
            float amax = 0, dq = meta[4 * blk];
            int sum[2] = {0, 0};
            for (int j = 0; j < 32; j++) {
                amax = fmaxf(amax, fabsf(got[32 * blk + j]));
                sum[j / 16] += (int8_t)q[32 * blk + j];
            }
            bad_d += fabsf(dq - amax / 127) > 3 * EPS * amax / 127;
            for (int j = 0; j < 32; j++)
                bad_q += fabsf(dec[32 * blk + j] - got[32 * blk + j]) > (0.5f + 8 * EPS * 127) * dq;
            for (int h = 0; h < 2; h++)
                bad_s += fabsf(meta[4 * blk + 1 + h] - dq * sum[h]) > EPS * fabsf(dq * sum[h]);
        }
        CHECK(bad_d == 0 && bad_q == 0 && bad_s == 0,
              "%s rows %d n %d: int8 encodes the f32 result (bad scales %d, values %d, sums %d)",
              kind_names[k], rows, n, bad_d, bad_q, bad_s);
        CHECK(memcmp(q, q_only, qb) == 0, "%s: the int8 form alone equals the one written with f32",
              kind_names[k]);
        if (n > 32 && k != K_LAYERNORM) CHECK(dec[32] == 0 && meta[4] == 0, "a zero block encodes as d 0");
    }
    pvk_buf_destroy(d, &bx), pvk_buf_destroy(d, &bw), pvk_buf_destroy(d, &bb);
    pvk_buf_destroy(d, &bo), pvk_buf_destroy(d, &bq), pvk_buf_destroy(d, &bq2);
    free(x), free(w), free(b), free(want), free(got), free(dec), free(q), free(q_only);
}

TEST(norms_and_activations_write_int8_that_encodes_their_result) {
    REQUIRE(setup(), "no device");
    if (!int_dot_on()) return;
    for (int k = K_COPY; k <= K_GEGELU; k++) {
        act_case(ops, k, 3, 96, 10 + k);
        act_case(ops, k, 2, 3072, 20 + k);
    }
    act_case(ops_gpu_like, K_RMSNORM, 3, 3072, 30);   /* several subgroups per row */
    act_case(ops_gpu_like, K_SWIGLU, 5, 8192, 31);    /* rows of the Phi-3 MLP */
}

/* ------------------------------------------------ int8 matvec */

static const pvk_type qtypes[] = {PVK_Q4_0, PVK_Q4_1, PVK_Q5_0, PVK_Q5_1, PVK_Q8_0, PVK_Q4_K, PVK_Q5_K, PVK_Q6_K};
#define N_QTYPES (int)(sizeof qtypes / sizeof qtypes[0])

TEST(int8_matvec_matches_the_reference_for_every_block_type) {
    REQUIRE(setup(), "no device");
    for (int i = 0; i < N_QTYPES; i++) {
        pvk_type t = qtypes[i];
        const char *name = pvk_type_get(t)->name;
        int ms[] = {1, 3, 8, 9};
        for (int j = 0; j < 4; j++)
            CHECK(check_matmul_q8(cmd, ops, t, ms[j], 37, 768, j % 2, j == 2, 100 + 10 * i + j) == 0,
                  "%s m %d k 768", name, ms[j]);
        CHECK(check_matmul_q8(cmd, ops, t, 1, 133, 3072, true, true, 200 + i) == 0, "%s k 3072", name);
        CHECK(check_matmul_q8(cmd, ops_gpu_like, t, 2, 41, 512, false, true, 300 + i) == 0, "%s gpu-like", name);
    }
    CHECK(check_matmul_q8(cmd, ops, PVK_Q4_K, 1, 24, 17920, false, false, 400) == 0, "q4_K k 17920");
    CHECK(check_matmul_q8(cmd, ops, PVK_Q6_K, 4, 3072, 256, true, false, 401) == 0, "q6_K 3072 rows");
}

/* The down projection applying GELU or SwiGLU itself, and the out projection making
 * the int8 of its f32 input (COPY) itself (matvec.comp -DPRO_ACT): the
 * same products as on the int8 the activation kernel writes, for every block type
 * (the op's capability, whatever PHIVK_FUSION lets the session use). */
TEST(matvec_with_the_activation_in_its_prologue_matches_the_reference) {
    REQUIRE(setup(), "no device");
    if (!pvk_ops_can_fuse(ops, PVK_Q4_0, 1)) {
        CHECK(!int_dot_on(), "the fused path is there with integer dot products");
        SKIP("no fused prologue here (integer dot products off)");
    }
    for (int i = 0; i < N_QTYPES; i++) {
        pvk_type t = qtypes[i];
        const char *name = pvk_type_get(t)->name;
        CHECK(check_matmul_act(cmd, ops, t, PVK_ACT_SWIGLU, 1, 37, 768, true, 500 + i) == 0, "%s swiglu", name);
        CHECK(check_matmul_act(cmd, ops, t, PVK_ACT_GELU, 1, 29, 512, false, 600 + i) == 0, "%s gelu", name);
        CHECK(check_matmul_act(cmd, ops, t, PVK_ACT_COPY, 1, 33, 512, true, 650 + i) == 0, "%s copy", name);
        CHECK(check_matmul_act(cmd, ops_gpu_like, t, PVK_ACT_SWIGLU, 3, 41, 256, true, 700 + i) == 0,
              "%s swiglu m 3 gpu-like", name);
    }
    CHECK(check_matmul_act(cmd, ops, PVK_Q4_0, PVK_ACT_SWIGLU, 1, 3072, 8192, true, 800) == 0, "phi-3's down");
}

/* The projection after a norm applying it itself (matvec.comp -DPRO_NORM), RMS and
 * LayerNorm, one workgroup's reduction of each column's statistics first. */
TEST(matvec_with_the_norm_in_its_prologue_matches_the_reference) {
    REQUIRE(setup(), "no device");
    if (!pvk_ops_can_fuse(ops, PVK_Q4_0, 1)) SKIP("no fused prologue here (integer dot products off)");
    for (int i = 0; i < N_QTYPES; i++) {
        pvk_type t = qtypes[i];
        const char *name = pvk_type_get(t)->name;
        CHECK(check_matmul_norm(cmd, ops, t, PVK_NORM_RMS, 1, 37, 768, false, 900 + i) == 0, "%s rms", name);
        CHECK(check_matmul_norm(cmd, ops, t, PVK_NORM_LAYER, 1, 29, 512, true, 950 + i) == 0, "%s layer", name);
        CHECK(check_matmul_norm(cmd, ops_gpu_like, t, PVK_NORM_RMS, 2, 41, 256, false, 990 + i) == 0,
              "%s rms m 2 gpu-like", name);
    }
    CHECK(check_matmul_norm(cmd, ops, PVK_Q4_0, PVK_NORM_RMS, 1, 9216, 3072, false, 1000) == 0, "phi-3's qkv");
}
