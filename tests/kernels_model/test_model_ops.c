/* Model-level kernels (get_rows, rope, kv_store, attention) on the shared validated
 * device against plain CPU references in double precision. */
#define HARNESS_MAIN
#include "harness.h"

#include <float.h>
#include <stdint.h>
#include <unistd.h>

#include "gpu.h"
#include "kernels/ref.h"
#include "pvk_ops.h"
#include "quant.h"

#define U32 (1.0 / 16777216.0) /* fp32 unit roundoff, 2^-24 */
#define N_CASES(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    pvk_dev *d;
    pvk_ops *o;
    pvk_cmd *c;
} gpu;

static bool gpu_open(gpu *g) {
    memset(g, 0, sizeof *g);
    if (!(g->d = test_gpu())) return false;
    if (pvk_ops_create(g->d, &g->o) || pvk_cmd_create(g->d, &g->c) || pvk_cmd_begin(g->c)) {
        printf("    gpu_open: %s\n", pvk_errmsg());
        return false;
    }
    return true;
}

static void gpu_close(gpu *g) {
    pvk_cmd_destroy(g->c);
    pvk_ops_destroy(g->o);
}

/* A device buffer holding n bytes of src (zeroed n bytes when src is NULL). */
static bool upload(pvk_dev *d, const void *src, size_t n, pvk_buf *b) {
    void *zero = src ? NULL : calloc(1, n);
    bool ok = !pvk_buf_create(d, n, PVK_MEM_DEVICE, b) && !pvk_buf_write(d, b, 0, src ? src : zero, n);
    free(zero);
    CHECK(ok, "upload: %s", pvk_errmsg());
    return ok;
}

/* Floats filled with NaN, so an element a kernel forgets to write fails. */
static bool upload_nan(pvk_dev *d, size_t floats, pvk_buf *b) {
    float *v = malloc(floats * sizeof *v);
    for (size_t i = 0; i < floats; i++) v[i] = NAN;
    bool ok = upload(d, v, floats * sizeof *v, b);
    free(v);
    return ok;
}

static bool submit_read(gpu *g, const pvk_buf *b, void *dst, size_t n) {
    pvk_cmd_barrier(g->c, PVK_COMPUTE_TO_HOST);
    bool ok = !pvk_cmd_submit(g->c) && !pvk_buf_read(g->d, b, 0, dst, n) && !pvk_cmd_begin(g->c);
    CHECK(ok, "submit_read: %s", pvk_errmsg());
    return ok;
}

/* ---------------------------------------------------------------- get_rows */

/* Looks up ids (with repeats, the first and last rows, and one id past the end)
 * in a rows x cols table of type t and compares exactly: F16/BF16 -> f32 is exact. */
static void check_get_rows(gpu *g, pvk_type t, int64_t rows, int64_t cols, uint32_t min_chunks) {
    ref_rng rng = {0x1234 + (uint64_t)t * 77 + (uint64_t)cols};
    size_t esz = t == PVK_F32 ? 4 : 2;
    void *stored = malloc((size_t)(rows * cols) * esz);
    float *values = malloc((size_t)(rows * cols) * sizeof(float));
    ref_weights(&rng, t, rows, cols, stored, values);
    uint32_t ids[] = {3, 0, (uint32_t)rows - 1, 3, (uint32_t)rows, 7, (uint32_t)rows / 2, 1};
    uint32_t n = sizeof ids / sizeof ids[0];
    pvk_tensor tab = {0};
    pvk_buf ib = {0}, ob = {0};
    float *out = malloc(n * (size_t)cols * sizeof *out);
    if (pvk_tensor_create(g->d, t, cols, rows, stored, &tab)) {
        CHECK(0, "tensor_create: %s", pvk_errmsg());
        goto done;
    }
    CHECK(tab.n_chunks >= min_chunks, "%u chunks, want at least %u", tab.n_chunks, min_chunks);
    if (!upload(g->d, ids, sizeof ids, &ib) || !upload_nan(g->d, n * (size_t)cols, &ob)) goto done;
    CHECK(!pvk_op_get_rows(g->o, g->c, &tab, &ib, &ob, n), "get_rows: %s", pvk_errmsg());
    if (!submit_read(g, &ob, out, n * (size_t)cols * sizeof *out)) goto done;
    int bad = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++) {
            float want = ids[i] < rows ? values[ids[i] * cols + j] : 0.0f;
            float got = out[i * cols + j];
            if (got != want && bad++ < 5)
                CHECK(0, "%s %lldx%lld (%u chunks): row %u (id %u) col %lld = %g, want %g exactly",
                      pvk_type_get(t)->name, (long long)rows, (long long)cols, tab.n_chunks, i,
                      ids[i], (long long)j, got, want);
        }
done:
    pvk_tensor_destroy(g->d, &tab);
    pvk_buf_destroy(g->d, &ib);
    pvk_buf_destroy(g->d, &ob);
    free(stored);
    free(values);
    free(out);
}

/* add_rows (learned positions): out[i] += table row pos0 + i, for n rows from pos0
 * (across chunk boundaries when the table is split); fp32 adds, compared exactly
 * with the same fp32 add. Rows past the table are refused. */
static void check_add_rows(gpu *g, pvk_type t, int64_t rows, int64_t cols, uint32_t pos0, uint32_t n,
                           uint32_t min_chunks) {
    ref_rng rng = {0x4321 + (uint64_t)t * 31 + (uint64_t)cols + pos0};
    size_t esz = t == PVK_F32 ? 4 : 2;
    void *stored = malloc((size_t)(rows * cols) * esz);
    float *values = malloc((size_t)(rows * cols) * sizeof(float));
    float *base = malloc(n * (size_t)cols * sizeof *base), *out = malloc(n * (size_t)cols * sizeof *out);
    ref_weights(&rng, t, rows, cols, stored, values);
    ref_fill(&rng, base, (size_t)n * (size_t)cols, -2.0f, 2.0f);
    pvk_tensor tab = {0};
    pvk_buf ob = {0};
    if (pvk_tensor_create(g->d, t, cols, rows, stored, &tab)) {
        CHECK(0, "tensor_create: %s", pvk_errmsg());
        goto done;
    }
    CHECK(tab.n_chunks >= min_chunks, "%u chunks, want at least %u", tab.n_chunks, min_chunks);
    if (!upload(g->d, base, n * (size_t)cols * sizeof *base, &ob)) goto done;
    CHECK(pvk_op_add_rows(g->o, g->c, &tab, (uint32_t)rows - n + 1, &ob, n) == PHIVK_ERR_INVALID,
          "a row past the table is refused");
    CHECK(!pvk_op_add_rows(g->o, g->c, &tab, pos0, &ob, n), "add_rows: %s", pvk_errmsg());
    if (!submit_read(g, &ob, out, n * (size_t)cols * sizeof *out)) goto done;
    int bad = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++) {
            float want = base[i * cols + j] + values[(pos0 + i) * cols + j], got = out[i * cols + j];
            if (got != want && bad++ < 5)
                CHECK(0, "%s %lldx%lld (%u chunks) from row %u: out[%u][%lld] = %g, want %g exactly",
                      pvk_type_get(t)->name, (long long)rows, (long long)cols, tab.n_chunks, pos0, i, (long long)j,
                      got, want);
        }
done:
    pvk_tensor_destroy(g->d, &tab);
    pvk_buf_destroy(g->d, &ob);
    free(stored);
    free(values);
    free(base);
    free(out);
}

TEST(add_rows_adds_the_rows_from_a_position_of_each_type_exactly) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    pvk_type types[] = {PVK_F32, PVK_F16, PVK_BF16};
    for (int i = 0; i < 3; i++) {
        check_add_rows(&g, types[i], 50, 64, 0, 12, 1);   /* a prefill from position 0 */
        check_add_rows(&g, types[i], 50, 64, 49, 1, 1);   /* decode at the last position */
        check_add_rows(&g, types[i], 37, 13, 5, 9, 1);    /* odd width: single-element loads */
    }
    gpu_close(&g);
}

TEST(get_rows_copies_table_rows_of_each_type_exactly) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    pvk_type types[] = {PVK_F32, PVK_F16, PVK_BF16};
    for (int i = 0; i < 3; i++) {
        check_get_rows(&g, types[i], 50, 64, 1);   /* 8-element loads */
        check_get_rows(&g, types[i], 37, 13, 1);   /* odd width: single-element loads */
    }
    gpu_close(&g);
}

TEST(get_rows_looks_up_tables_split_across_bindings) {
    /* Devices whose binding limit (4 KiB) splits a 200 x 64 table into 7 (F16) or
     * 13 (F32) chunks, read through texel views and through storage buffers. */
    for (int texel = 1; texel >= 0; texel--) {
        setenv("PHIVK_MAX_BINDING_BYTES", "4096", 1);
        if (!texel) setenv("PHIVK_DISABLE_TEXEL", "1", 1);
        pvk_dev_params p = pvk_dev_default_params();
        p.validate = true;
        gpu g = {0};
        phivk_status st = pvk_dev_create(&p, &g.d);
        unsetenv("PHIVK_MAX_BINDING_BYTES");
        unsetenv("PHIVK_DISABLE_TEXEL");
        REQUIRE(!st, "device: %s", pvk_errmsg());
        CHECK(pvk_dev_caps(g.d)->texel == texel, "texel caps %d", texel);
        uint64_t seen = 0;
        if (!pvk_ops_create(g.d, &g.o) && !pvk_cmd_create(g.d, &g.c) && !pvk_cmd_begin(g.c)) {
            check_get_rows(&g, PVK_F32, 200, 64, 13);
            check_get_rows(&g, PVK_F16, 200, 64, 7);
            check_add_rows(&g, PVK_F32, 200, 64, 10, 12, 13);   /* rows 10..21 span two chunks */
        } else {
            CHECK(0, "setup: %s", pvk_errmsg());
        }
        gpu_close(&g);
        const char *msg = test_gpu_new_messages(g.d, &seen);
        CHECK(!msg, "%s", msg);
        pvk_dev_destroy(g.d);
    }
}

/* -------------------------------------------------------------------- rope */

/* RoPE runs inside the cache write (pvk_op_kv_store with a pvk_rope): q rotated in
 * place in x, K rotated as it is stored. */

/* Rotates n_heads heads of dim hd at float off of each of m rows like ggml
 * (phi-spec 2.5), the angle in double. */
static void ref_rope(float *x, uint32_t stride, uint32_t off, uint32_t n_heads, const pvk_rope *r,
                     const float *ff, uint32_t m, uint32_t pos0, double *theta_max) {
    uint32_t half = r->n_rot / 2;
    for (uint32_t t = 0; t < m; t++)
        for (uint32_t h = 0; h < n_heads; h++) {
            float *hx = x + (size_t)t * stride + off + h * r->head_dim;
            for (uint32_t i = 0; i < half; i++) {
                double theta = (double)(pos0 + t) * pow(r->freq_base, -2.0 * i / r->n_rot) / (ff ? ff[i] : 1.0);
                if (theta > *theta_max) *theta_max = theta;
                double c = cos(theta) * r->attn_factor, s = sin(theta) * r->attn_factor;
                uint32_t i0 = r->neox ? i : 2 * i, i1 = r->neox ? i + half : 2 * i + 1;
                double x0 = hx[i0], x1 = hx[i1];
                hx[i0] = (float)(x0 * c - x1 * s);
                hx[i1] = (float)(x0 * s + x1 * c);
            }
        }
}

/* The GPU's angle is an fp32 value: pos * exp2(i * e) / factor carries about 10 ulp
 * of theta (the product roundings, exp2 and the division, each a few ulp by
 * Vulkan's precision rules); range reduction and sin/cos add ~1e-6 absolute. A
 * rotated pair's outputs then move by at most |x0| + |x1| times that angle error
 * (times attn_factor), plus fp32 rounding of the result. At position 131071 the
 * bound is ~0.08 |x| rad: fp32 cannot hold that angle closer. Dims past n_rot: 0. */
static double rope_tol(const pvk_rope *r, const float *ff, uint32_t hd, uint32_t pos, float want) {
    if (hd >= r->n_rot) return 0;
    uint32_t i = r->neox ? hd % (r->n_rot / 2) : hd / 2;
    double theta = (double)pos * pow(r->freq_base, -2.0 * i / r->n_rot) / (ff ? ff[i] : 1.0);
    return r->attn_factor * 4.0 * (theta * 10 * U32 + 2e-6) + 4 * U32 * fabs(want);
}

static void check_rope(gpu *g, pvk_rope r, uint32_t n_k, bool factors, uint32_t m, uint32_t pos0) {
    /* Rows hold q heads, k heads, then v: kv_store rotates q in x and writes K and V
     * to an F16 cache of pos0 + m rows. */
    uint32_t hd = r.head_dim, width = n_k * hd, k_off = r.n_q_heads * hd, v_off = k_off + width;
    uint32_t stride = v_off + width, ctx = pos0 + m;
    r.q_off = 0;
    size_t n = (size_t)m * stride, cn = (size_t)ctx * width;
    ref_rng rng = {0x5eed + pos0 + r.n_rot};
    float *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    uint16_t *kc = malloc(cn * 2);
    float ff[64];
    ref_fill(&rng, x, n, -2.0f, 2.0f);
    ref_fill(&rng, ff, r.n_rot / 2, 1.0f, 4.0f);   /* LongRoPE factors lie in [1, ~60] */
    memcpy(want, x, n * sizeof *x);
    double theta_max = 0;
    ref_rope(want, stride, 0, r.n_q_heads, &r, factors ? ff : NULL, m, pos0, &theta_max);
    ref_rope(want, stride, k_off, n_k, &r, factors ? ff : NULL, m, pos0, &theta_max);
    pvk_buf xb = {0}, fb = {0}, kb = {0}, vb = {0};
    if (!upload(g->d, x, n * sizeof *x, &xb) || !upload(g->d, ff, sizeof ff, &fb) ||
        !upload(g->d, NULL, pvk_kv_bytes(PVK_F16, width, ctx), &kb) ||
        !upload(g->d, NULL, pvk_kv_bytes(PVK_F16, width, ctx), &vb))
        goto done;
    r.factors = factors ? &fb : NULL;
    pvk_kv kv = {.k = &kb, .v = &vb, .width = width, .ctx = ctx, .k_type = PVK_F16, .v_type = PVK_F16};
    CHECK(!pvk_op_kv_store(g->o, g->c, &xb, stride, k_off, v_off, &kv, m, pos0, &r), "kv_store: %s", pvk_errmsg());
    if (!submit_read(g, &xb, got, n * sizeof *got) || pvk_buf_read(g->d, &kb, 0, kc, cn * 2)) goto done;
    double worst = 0;
    int bad = 0;
    for (size_t e = 0; e < n; e++) {
        uint32_t t = (uint32_t)(e / stride), col = (uint32_t)(e % stride);
        bool is_k = col >= k_off && col < v_off;
        /* q: rotated in x; k and v: x keeps them as they were, bit for bit. */
        float w = is_k || col >= v_off ? x[e] : want[e];
        double tol = col < k_off ? rope_tol(&r, factors ? ff : NULL, col % hd, pos0 + t, w) : 0;
        double err = fabs((double)got[e] - w);
        if (col < k_off && col % hd < r.n_rot && err > worst) worst = err;
        if (!(err <= tol) && bad++ < 5)
            CHECK(0, "rope %s n_rot %u/%u pos %u: x[%u][%u] = %.9g, want %.9g +- %.3g (fp32 angle bound)",
                  r.neox ? "neox" : "adjacent", r.n_rot, hd, pos0 + t, t, col, got[e], w, tol);
        if (!is_k) continue;
        /* K in the cache: rotated, then one f16 rounding (2^-11 relative; the
         * implementation's rounding mode: one f16 ulp). */
        float kw = want[e], kg = quant_f16_to_f32(kc[(size_t)(pos0 + t) * width + col - k_off]);
        double ktol = rope_tol(&r, factors ? ff : NULL, (col - k_off) % hd, pos0 + t, kw) + fabs(kw) / 1024.0;
        if (!(fabs((double)kg - kw) <= ktol) && bad++ < 5)
            CHECK(0, "rope %s n_rot %u/%u pos %u: K[%u][%u] = %.9g, want %.9g +- %.3g (angle bound, f16)",
                  r.neox ? "neox" : "adjacent", r.n_rot, hd, pos0 + t, pos0 + t, col - k_off, kg, kw, ktol);
    }
    printf("    rope %s n_rot %u/%u pos %u..%u: max |err| of q %.3g (theta up to %.0f)\n",
           r.neox ? "neox" : "adjacent", r.n_rot, hd, pos0, pos0 + m - 1, worst, theta_max);
done:
    pvk_buf_destroy(g->d, &xb);
    pvk_buf_destroy(g->d, &fb);
    pvk_buf_destroy(g->d, &kb);
    pvk_buf_destroy(g->d, &vb);
    free(x);
    free(want);
    free(got);
    free(kc);
}

/* One rope call: heads of dim head_dim, n_rot rotated, m rows from pos0. */
typedef struct {
    uint32_t n_q, n_k, head_dim, n_rot;
    bool neox, factors;
    float attn_factor;
    uint32_t m, pos0;
} rope_case;

static void run_rope(const rope_case *cs, size_t n) {
    gpu g;
    if (!gpu_open(&g)) {
        CHECK(0, "no device");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        pvk_rope r = {.n_q_heads = cs[i].n_q, .head_dim = cs[i].head_dim, .n_rot = cs[i].n_rot,
                      .neox = cs[i].neox, .freq_base = 10000.0f, .attn_factor = cs[i].attn_factor};
        check_rope(&g, r, cs[i].n_k, cs[i].factors, cs[i].m, cs[i].pos0);
    }
    gpu_close(&g);
}

TEST(rope_rotates_neox_and_adjacent_pairs) {
    rope_case cs[] = {{4, 2, 64, 64, true, false, 1.0f, 5, 0}, {4, 2, 64, 64, false, false, 1.0f, 5, 0}};
    run_rope(cs, N_CASES(cs));
}

TEST(rope_partial_rotary_passes_the_other_dims_through) {
    /* phi-2: 32 of 80 dims, exponent over 32 */
    rope_case cs[] = {{3, 3, 80, 32, true, false, 1.0f, 4, 7}, {3, 3, 64, 32, false, false, 1.0f, 4, 7}};
    run_rope(cs, N_CASES(cs));
}

/* Phi-3 128K: head_dim 96, factors per pair, attn_factor sqrt(1 + ln 32 / ln 4096) */
#define PHI3_MSCALE 1.1902381f

TEST(rope_applies_longrope_factors_and_attn_factor) {
    rope_case cs[] = {{4, 4, 96, 96, true, true, PHI3_MSCALE, 3, 0}, {4, 4, 96, 96, true, false, PHI3_MSCALE, 3, 100}};
    run_rope(cs, N_CASES(cs));
}

TEST(rope_keeps_angles_at_long_positions) {
    rope_case cs[] = {
        {2, 1, 96, 96, true, true, PHI3_MSCALE, 2, 4095},      /* 4095 and 4096: the LongRoPE switch */
        {2, 1, 96, 96, true, false, PHI3_MSCALE, 1, 131071},   /* the last position of a 128K context */
        {2, 1, 96, 96, false, false, PHI3_MSCALE, 2, 131070},
    };
    run_rope(cs, N_CASES(cs));
}

/* ---------------------------------------------------------------- kv_store */

TEST(kv_store_writes_f16_rows_at_positions_only) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    /* width 6: 12-byte rows, so a start row is rarely 16-byte aligned; and width 64. */
    uint32_t widths[] = {6, 64}, pos0s[] = {3, 0}, ms[] = {5, 16}, ctx = 24;
    for (int c = 0; c < 2; c++) {
        uint32_t w = widths[c], m = ms[c], pos0 = pos0s[c];
        uint32_t stride = 3 * w + 2, k_off = w + 1, v_off = 2 * w + 2;
        ref_rng rng = {99 + c};
        float *x = malloc((size_t)m * stride * sizeof *x);
        ref_fill(&rng, x, (size_t)m * stride, -300.0f, 300.0f);
        size_t cn = (size_t)ctx * w;
        uint16_t *sentinel = malloc(cn * 2), *kc = malloc(cn * 2), *vc = malloc(cn * 2);
        for (size_t i = 0; i < cn; i++) sentinel[i] = 0x7e00 | (uint16_t)(i & 0xff);  /* NaNs */
        pvk_buf xb = {0}, kb = {0}, vb = {0};
        if (upload(g.d, x, (size_t)m * stride * 4, &xb) && upload(g.d, sentinel, cn * 2, &kb) &&
            upload(g.d, sentinel, cn * 2, &vb)) {
            pvk_kv kv = {.k = &kb, .v = &vb, .width = w, .ctx = ctx, .k_type = PVK_F16, .v_type = PVK_F16};
            CHECK(!pvk_op_kv_store(g.o, g.c, &xb, stride, k_off, v_off, &kv, m, pos0, NULL), "kv_store: %s", pvk_errmsg());
            if (submit_read(&g, &kb, kc, cn * 2) && !pvk_buf_read(g.d, &vb, 0, vc, cn * 2)) {
                int bad = 0;
                for (uint32_t p = 0; p < ctx; p++)
                    for (uint32_t j = 0; j < w; j++) {
                        size_t i = (size_t)p * w + j;
                        bool in = p >= pos0 && p < pos0 + m;
                        for (int kvsel = 0; kvsel < 2; kvsel++) {
                            uint16_t h = kvsel ? vc[i] : kc[i];
                            if (!in) {
                                if (h != sentinel[i] && bad++ < 5)
                                    CHECK(0, "row %u outside the written range changed", p);
                                continue;
                            }
                            float want = x[(p - pos0) * stride + (kvsel ? v_off : k_off) + j];
                            /* f16 keeps 11 bits; the rounding mode of packHalf2x16 is
                             * the implementation's, so allow one f16 ulp (2^-10 relative). */
                            double tol = fabs(want) / 1024.0;
                            float got = quant_f16_to_f32(h);
                            if (!(fabs(got - want) <= tol) && bad++ < 5)
                                CHECK(0, "width %u %c[%u][%u] = %g, want %g +- %.3g (one f16 ulp)",
                                      w, kvsel ? 'V' : 'K', p, j, got, want, tol);
                        }
                    }
            }
            pvk_kv full = {.k = &kb, .v = &vb, .width = w, .ctx = ctx, .k_type = PVK_F16, .v_type = PVK_F16};
            CHECK(pvk_op_kv_store(g.o, g.c, &xb, stride, k_off, v_off, &full, m, ctx - m + 1, NULL) ==
                      PHIVK_ERR_CONTEXT_FULL, "writing past the context must fail");
        }
        pvk_buf_destroy(g.d, &xb);
        pvk_buf_destroy(g.d, &kb);
        pvk_buf_destroy(g.d, &vb);
        free(x);
        free(sentinel);
        free(kc);
        free(vc);
    }
    gpu_close(&g);
}

/* ------------------------------------------------------------------ tuning */

/* The workgroup size PHIVK_PROFILE printed for the first dispatch of the variant
 * whose name starts with prefix in text, or 0. */
static unsigned profiled_wg(const char *text, const char *prefix) {
    for (const char *l = strstr(text, "phivk profile:"); l; l = strstr(l + 1, "phivk profile:")) {
        unsigned i, wg;
        char name[64];
        if (sscanf(l, "phivk profile: %u %63s wg %u", &i, name, &wg) == 3 &&
            !strncmp(name, prefix, strlen(prefix)))
            return wg;
    }
    return 0;
}

/* get_rows and kv_store run the workgroup sizes of the op set they are recorded
 * through (row_wg, elt_wg), not the device's defaults: the profile names each
 * dispatch's workgroup size. */
TEST(get_rows_and_kv_store_use_the_tuning_of_their_op_set) {
    pvk_dev *d = test_gpu();
    REQUIRE(d, "no device");
    if (!pvk_dev_caps(d)->timestamps) {
        printf("    skipped: the device has no timestamps, so no profile to read\n");
        return;
    }
    pvk_ops_tuning t = pvk_ops_default_tuning(pvk_dev_caps(d));
    t.row_wg = t.row_wg > 1 ? t.row_wg / 2 : 2;
    t.elt_wg = t.elt_wg > 1 ? t.elt_wg / 2 : 2;
    enum { COLS = 64 };
    static const uint16_t zeros[4 * COLS];
    pvk_ops *o = NULL;
    pvk_cmd *c = NULL;
    pvk_tensor table = {0};
    pvk_buf ids = {0}, out = {0}, x = {0};
    pvk_kv kv = {0};
    setenv("PHIVK_PROFILE", "1", 1);   /* read when the command object is made */
    bool ok = !pvk_ops_create_tuned(d, &t, &o) && !pvk_cmd_create(d, &c) &&
              !pvk_tensor_create(d, PVK_F16, COLS, 4, zeros, &table) &&
              !pvk_kv_alloc(d, PVK_F16, PVK_F16, COLS, 4, &kv) && !pvk_cmd_begin(c);
    unsetenv("PHIVK_PROFILE");
    CHECK(ok, "setup: %s", pvk_errmsg());
    ok = ok && upload(d, NULL, 4, &ids) && upload(d, NULL, 4 * COLS, &out) && upload(d, NULL, 4 * 2 * COLS, &x);
    char text[8192] = "";
    if (ok) {
        CHECK(!pvk_op_get_rows(o, c, &table, &ids, &out, 1) &&
                  !pvk_op_kv_store(o, c, &x, 2 * COLS, 0, COLS, &kv, 1, 0, NULL),
              "record: %s", pvk_errmsg());
        fflush(stderr);
        int saved = dup(2);
        FILE *log = tmpfile();
        dup2(fileno(log), 2);
        phivk_status st = pvk_cmd_submit(c);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        rewind(log);
        text[fread(text, 1, sizeof text - 1, log)] = 0;
        fclose(log);
        CHECK(!st, "submit: %s", pvk_errmsg());
    }
    CHECK(profiled_wg(text, "get_rows_f16_") == t.row_wg, "get_rows ran workgroups of %u, the op set's row_wg is %u",
          profiled_wg(text, "get_rows_f16_"), t.row_wg);
    CHECK(profiled_wg(text, "kv_store_f16_f16") == t.elt_wg,
          "kv_store ran workgroups of %u, the op set's elt_wg is %u", profiled_wg(text, "kv_store_f16_f16"), t.elt_wg);
    pvk_kv_free(d, &kv);
    pvk_tensor_destroy(d, &table);
    pvk_buf_destroy(d, &ids);
    pvk_buf_destroy(d, &out);
    pvk_buf_destroy(d, &x);
    pvk_cmd_destroy(c);
    pvk_ops_destroy(o);
}

/* --------------------------------------------------------------- attention */

typedef struct {
    uint32_t n_head, n_kv_head, head_dim, m, kv_len, window;
    const pvk_attn_tuning *tuning;   /* NULL: the device default; else an op set tuned so */
    bool scratch;                    /* pass a scratch buffer sized for the shape */
    bool views;                      /* read the cache through texel views */
    pvk_type k_type, v_type;         /* 0: F16 */
    uint32_t chunk;                  /* cache rows per chunk; 0: one chunk */
} attn_case;

/* Softmax attention in double over the cache's K/V values, with a bound on the GPU's
 * error per output: out is a convex combination of V rows, so |err| <= max|V| x
 * the relative error of the weights. Those come from the fp32 q.k (head_dim
 * products, relative to sum |q k|), exp (3 + 2|x| ulp by Vulkan's rules) and the
 * sequential fp32 sums over n keys (n ulp each for the numerator and the sum). */
/* The block-sparse pattern {block, local blocks, vertical stride, head step}
 * (docs/spec/phi3-small.md section 11), written from the spec's predicate; NULL:
 * dense. */
static bool bs_visible(const uint32_t *bs, uint32_t h, uint32_t qpos, uint32_t kpos) {
    if (!bs) return true;
    uint32_t qb = qpos / bs[0], kb = kpos / bs[0];
    return qb - kb < bs[1] || (kb + h * bs[3] + 1) % bs[2] == 0;
}

static void ref_attention(const float *q, const float *k, const float *v, const attn_case *ac,
                          const uint32_t *bs, float scale, float *out, float *tol) {
    uint32_t hd = ac->head_dim, group = ac->n_head / ac->n_kv_head, w = ac->n_kv_head * hd;
    uint32_t pos0 = ac->kv_len - ac->m;
    double *s = malloc(ac->kv_len * sizeof *s);
    for (uint32_t t = 0; t < ac->m; t++)
        for (uint32_t h = 0; h < ac->n_head; h++) {
            uint32_t qpos = pos0 + t, kvh = h / group;
            uint32_t lo = ac->window && qpos + 1 > ac->window ? qpos + 1 - ac->window : 0;
            const float *qh = q + ((size_t)t * ac->n_head + h) * hd;
            double mx = -INFINITY, mn = INFINITY, sabs = 0, vmax = 0, sum = 0, n = 0;
            for (uint32_t kp = lo; kp <= qpos; kp++) {
                if (!bs_visible(bs, h, qpos, kp)) continue;
                double d = 0, da = 0;
                for (uint32_t i = 0; i < hd; i++) {
                    double p = (double)qh[i] * k[(size_t)kp * w + kvh * hd + i];
                    d += p;
                    da += fabs(p);
                }
                s[kp] = d * scale;
                mx = fmax(mx, s[kp]);
                mn = fmin(mn, s[kp]);
                sabs = fmax(sabs, da * scale);
                n++;
            }
            for (uint32_t kp = lo; kp <= qpos; kp++)
                if (bs_visible(bs, h, qpos, kp)) sum += exp(s[kp] - mx);
            float *o = out + ((size_t)t * ac->n_head + h) * hd;
            for (uint32_t i = 0; i < hd; i++) {
                double acc = 0;
                for (uint32_t kp = lo; kp <= qpos; kp++) {
                    if (!bs_visible(bs, h, qpos, kp)) continue;
                    double vv = v[(size_t)kp * w + kvh * hd + i];
                    acc += exp(s[kp] - mx) * vv;
                    vmax = fmax(vmax, fabs(vv));
                }
                o[i] = (float)(acc / sum);
            }
            double eps_s = (hd + 2) * U32 * sabs + (5 + 2 * (mx - mn)) * U32;
            tol[(size_t)t * ac->n_head + h] = (float)(vmax * (2 * (n + 2) * U32 + 2 * eps_s) + 1e-7);
        }
    free(s);
}

/* A cache of ctx rows holding `k` and `v` (rows in k_type / v_type), in chunks of
 * `chunk` rows (0: one) with texel views when asked. Free with pvk_kv_free. */
static bool cache_make(gpu *g, pvk_kv *kv, pvk_type kt, pvk_type vt, uint32_t width, uint32_t ctx,
                       uint32_t chunk, bool views, const uint8_t *k, const uint8_t *v) {
    uint32_t cc = chunk ? chunk : ctx, n = (ctx + cc - 1) / cc;
    *kv = (pvk_kv){.k = calloc(n, sizeof(pvk_buf)), .v = calloc(n, sizeof(pvk_buf)), .width = width,
                   .ctx = ctx, .k_type = kt, .v_type = vt, .n_chunks = n, .chunk_ctx = cc};
    if (views) kv->k_views = calloc(n, sizeof(VkBufferView)), kv->v_views = calloc(n, sizeof(VkBufferView));
    size_t krb = pvk_type_row_bytes(kt, width), vrb = pvk_type_row_bytes(vt, width);
    bool ok = true;
    for (uint32_t c = 0; c < n && ok; c++) {
        uint32_t rows = c + 1 < n ? cc : ctx - c * cc;
        uint64_t kn = pvk_kv_bytes(kt, width, rows), vn = pvk_kv_bytes(vt, width, rows);
        uint8_t *kbuf = calloc(1, kn), *vbuf = calloc(1, vn);
        memcpy(kbuf, k + (size_t)c * cc * krb, rows * krb);
        memcpy(vbuf, v + (size_t)c * cc * vrb, rows * vrb);
        ok = upload(g->d, kbuf, kn, &kv->k[c]) && upload(g->d, vbuf, vn, &kv->v[c]);
        free(kbuf), free(vbuf);
        if (ok && views) {
            ok = !pvk_kv_view(g->d, &kv->k[c], kn, &kv->k_views[c]) &&
                 !pvk_kv_view(g->d, &kv->v[c], vn, &kv->v_views[c]) && kv->k_views[c] && kv->v_views[c];
            CHECK(ok, "the device gives no texel views of the cache: %s", pvk_errmsg());
        }
    }
    return ok;
}

/* Random cache rows in type t: stored bytes and their exact (dequantized) values. */
static void cache_rows(ref_rng *rng, pvk_type t, uint32_t rows, uint32_t width, uint8_t *stored, float *values) {
    size_t rb = pvk_type_row_bytes(t, width);
    ref_fill(rng, values, (size_t)rows * width, -1.0f, 1.0f);
    for (uint32_t r = 0; r < rows; r++) {
        quant_quantize_row(t, values + (size_t)r * width, stored + r * rb, width);
        quant_dequantize_row(t, stored + r * rb, values + (size_t)r * width, width);
    }
}

static const char *type_name(pvk_type t) { return pvk_type_get(t)->name; }

/* Checks one case; bs (NULL: dense) is the block-sparse pattern. Returns the
 * count of outputs where the dense result differs from the sparse one by more
 * than the bound (0 for a dense case), so that a sparse test can show its mask
 * bit. */
static size_t check_attention_bs(gpu *g, const attn_case *ac, const uint32_t *bs) {
    size_t differs = 0;
    uint32_t hd = ac->head_dim, w = ac->n_kv_head * hd, m = ac->m, ctx = ac->kv_len + 3;
    pvk_type kt = ac->k_type ? ac->k_type : PVK_F16, vt = ac->v_type ? ac->v_type : PVK_F16;
    uint32_t q_stride = (ac->n_head + 2 * ac->n_kv_head) * hd;  /* fused [Q | K | V] rows */
    ref_rng rng = {0xa77 + hd * 31 + m * 7 + ac->kv_len + ac->window};
    size_t xn = (size_t)m * q_stride, on = (size_t)m * ac->n_head * hd, cn = (size_t)ctx * w;
    float *x = malloc(xn * sizeof *x), *q = malloc(on * sizeof *q);
    float *kf = malloc(cn * sizeof *kf), *vf = malloc(cn * sizeof *vf);
    uint8_t *ks = malloc(ctx * pvk_type_row_bytes(kt, w)), *vs = malloc(ctx * pvk_type_row_bytes(vt, w));
    float *want = malloc(on * sizeof *want), *got = malloc(on * sizeof *got);
    float *tol = malloc((size_t)m * ac->n_head * sizeof *tol);
    /* q spans [-3, 3] so that the scores spread over several units: softmax is peaked. */
    ref_fill(&rng, x, xn, -3.0f, 3.0f);
    for (uint32_t t = 0; t < m; t++) memcpy(q + (size_t)t * ac->n_head * hd, x + (size_t)t * q_stride, ac->n_head * hd * 4);
    cache_rows(&rng, kt, ctx, w, ks, kf);
    cache_rows(&rng, vt, ctx, w, vs, vf);
    float scale = 1.0f / sqrtf((float)hd);
    /* The reference reads the cache's exact values, so quantized caches have the
     * same (fp32 arithmetic) bound as f16 ones. */
    ref_attention(q, kf, vf, ac, bs, scale, want, tol);
    if (bs) {
        float *dense = malloc(on * sizeof *dense), *dtol = malloc((size_t)m * ac->n_head * sizeof *dtol);
        ref_attention(q, kf, vf, ac, NULL, scale, dense, dtol);
        for (size_t e = 0; e < on; e++) differs += fabs((double)dense[e] - want[e]) > tol[e / hd];
        free(dense), free(dtol);
    }

    pvk_buf xb = {0}, ob = {0}, sb = {0};
    pvk_kv kv = {0};
    pvk_ops *o = g->o, *tuned = NULL;
    pvk_attn a = {.q_stride = q_stride, .q_off = 0, .n_head = ac->n_head, .n_kv_head = ac->n_kv_head,
                  .head_dim = hd, .m = m, .pos0 = ac->kv_len - m, .window = ac->window, .scale = scale};
    if (bs) a.bs_block = bs[0], a.bs_local = bs[1], a.bs_stride = bs[2], a.bs_step = bs[3];
    if (!cache_make(g, &kv, kt, vt, w, ctx, ac->chunk, ac->views, ks, vs)) goto done;
    if (ac->tuning) {
        pvk_ops_tuning t = *pvk_ops_get_tuning(g->o);
        t.attn = *ac->tuning;
        if (pvk_ops_create_tuned(g->d, &t, &tuned)) {
            CHECK(0, "tuning: %s", pvk_errmsg());
            goto done;
        }
        o = tuned;
    }
    /* Scratch as the op set sizes it for its tuning: its split, a forced one, and
     * the slices max_iter requires (too little would be refused or split less). */
    size_t sbytes = pvk_op_attention_scratch_bytes_kv(o, &a, &kv);
    if (!upload(g->d, x, xn * 4, &xb) || !upload_nan(g->d, on, &ob) ||
        (ac->scratch && sbytes && !upload(g->d, NULL, sbytes, &sb)))
        goto done;
    a.scratch = ac->scratch && sbytes ? &sb : NULL;
    phivk_status st = pvk_op_attention(o, g->c, &xb, &a, &kv, &ob);
    CHECK(!st, "attention: %s", pvk_errmsg());
    if (!submit_read(g, &ob, got, on * sizeof *got)) goto done;
    int bad = 0;
    double worst = 0, worst_tol = 0;
    char what[160];
    snprintf(what, sizeof what, "heads %u/%u hd %u m %u kv %u window %u K %s V %s chunk %u scratch %zu%s%s",
             ac->n_head, ac->n_kv_head, hd, m, ac->kv_len, ac->window, type_name(kt), type_name(vt),
             ac->chunk, a.scratch ? sbytes : 0, ac->views ? " views" : "", bs ? " block-sparse" : "");
    for (size_t e = 0; e < on; e++) {
        double err = fabs((double)got[e] - want[e]), t = tol[e / hd];
        if (err > worst) worst = err, worst_tol = t;
        if (!(err <= t) && bad++ < 5)
            CHECK(0, "%s: out[%zu][%zu] = %.9g, want %.9g +- %.3g (fp32 dot/exp/sum bound)", what,
                  e / (ac->n_head * hd), e % (ac->n_head * hd), got[e], want[e], t);
    }
    printf("    %s: max |err| %.3g (bound there %.3g)\n", what, worst, worst_tol);
done:
    pvk_ops_destroy(tuned);
    pvk_kv_free(g->d, &kv);
    pvk_buf_destroy(g->d, &xb);
    pvk_buf_destroy(g->d, &ob);
    pvk_buf_destroy(g->d, &sb);
    free(x), free(q), free(kf), free(vf), free(ks), free(vs), free(want), free(got), free(tol);
    return differs;
}

static void check_attention(gpu *g, const attn_case *ac) { check_attention_bs(g, ac, NULL); }

static void run_attention(const attn_case *cs, size_t n) {
    gpu g;
    if (!gpu_open(&g)) {
        CHECK(0, "no device");
        return;
    }
    for (size_t i = 0; i < n; i++) check_attention(&g, &cs[i]);
    gpu_close(&g);
}

TEST(attention_decode_matches_reference_over_kv_lengths) {
    attn_case cs[] = {
        {8, 2, 64, 1, 1, 0, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 1, 7, 0, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 1, 64, 0, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 1, 257, 0, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 1, 1000, 0, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 1, 1000, 0, NULL, false, false, 0, 0, 0},   /* no scratch: one slice */
    };
    run_attention(cs, N_CASES(cs));
}

TEST(attention_prefill_matches_reference_causal_gqa) {
    attn_case cs[11];
    uint32_t ms[] = {3, 31, 33}, kvs[] = {7, 64, 257, 1000};
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            if (kvs[j] >= ms[i]) cs[n++] = (attn_case){8, 2, 64, ms[i], kvs[j], 0, NULL, true, false, 0, 0, 0};
    run_attention(cs, n);
}

TEST(attention_honours_sliding_windows) {
    attn_case cs[] = {
        {8, 2, 64, 1, 1000, 16, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 33, 257, 16, NULL, true, false, 0, 0, 0},
        {8, 2, 64, 3, 16, 16, NULL, true, false, 0, 0, 0},      /* window == kv length: nothing masked */
        /* Phi-3 4K: window 2047; q at 2046 sees key 0, q at 2047 does not */
        {8, 2, 32, 1, 2047, 2047, NULL, true, false, 0, 0, 0},
        {8, 2, 32, 1, 2048, 2047, NULL, true, false, 0, 0, 0},
        {8, 2, 32, 3, 2100, 2047, NULL, true, false, 0, 0, 0},
    };
    run_attention(cs, N_CASES(cs));
}

TEST(attention_supports_head_dims_8_to_128) {
    uint32_t hds[] = {8, 16, 32, 80, 96, 128};
    attn_case cs[12];
    for (int i = 0; i < 6; i++) {
        cs[2 * i] = (attn_case){8, 2, hds[i], 1, 257, 0, NULL, true, false, 0, 0, 0};
        cs[2 * i + 1] = (attn_case){4, 4, hds[i], 33, 64, 0, NULL, true, false, 0, 0, 0};
    }
    run_attention(cs, N_CASES(cs));
}

/* A GPU's shape (8 rows of 8 lanes per workgroup: rows span tokens and heads), one
 * invocation per row (the no-subgroup kernel), forced split-K in prefill. */
static const pvk_attn_tuning gpu_shape = {64, 8, 512, 0, false, 0}, one_lane = {8, 1, 16, 0, false, 32768},
                             split3 = {8, 8, 16, 3, false, 32768}, split5_wide = {64, 4, 16, 5, false, 0};

TEST(attention_tunings_agree_gpu_shapes_single_lane_and_forced_splits) {
    attn_case cs[] = {
        {8, 2, 64, 33, 257, 16, &gpu_shape, true, false, 0, 0, 0},
        {8, 2, 80, 31, 1000, 0, &gpu_shape, true, false, 0, 0, 0},
        {8, 2, 64, 1, 1000, 0, &gpu_shape, true, false, 0, 0, 0},
        {8, 2, 64, 3, 257, 0, &one_lane, true, false, 0, 0, 0},
        {8, 2, 96, 1, 1000, 16, &one_lane, true, false, 0, 0, 0},
        {8, 2, 64, 31, 1000, 0, &split3, true, false, 0, 0, 0},
        {8, 2, 64, 33, 257, 16, &split3, true, false, 0, 0, 0},
        {8, 2, 128, 3, 1000, 0, &split5_wide, true, false, 0, 0, 0},
    };
    run_attention(cs, N_CASES(cs));
}

/* Split-K sized for the device (pvk_caps.resident_subgroups): a GPU that runs 132 x
 * 64 subgroups of 32 (an H200's SMs and warps per SM) gets 4224 workgroups of 64
 * lanes as its target, a discrete one that does not say keeps 4096; decode attention
 * under that tuning (max_iter as lavapipe needs) matches the reference at depths 1
 * to 20000 over F16, Q8_0 and Q4_0 caches, the splits growing with the depth. */
static pvk_attn_tuning device_sized;

TEST(decode_attention_split_for_the_device_matches_reference_at_every_depth) {
    pvk_dev *d = test_gpu();
    REQUIRE(d, "no device");
    pvk_caps gc = *pvk_dev_caps(d);
    gc.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    gc.subgroup_size = 32;
    gc.resident_subgroups = 0;
    CHECK(pvk_ops_default_tuning(&gc).attn.target_wgs == 4096, "a discrete GPU that does not say: 4096");
    gc.resident_subgroups = 132 * 64;
    device_sized = pvk_ops_default_tuning(&gc).attn;
    CHECK(device_sized.target_wgs == 4224, "132 x 64 subgroups of 32: %u workgroups of 64", device_sized.target_wgs);
    device_sized.max_iter = 32768;
    uint32_t depths[] = {1, 257, 4096, 20000};
    pvk_type kt[] = {PVK_F16, PVK_Q8_0, PVK_Q4_0};
    attn_case cs[12];
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            cs[n++] = (attn_case){8, 2, 64, 1, depths[i], 0, &device_sized, true, false, kt[j], kt[j], 0};
    CHECK(n == 12, "%zu cases", n);
    run_attention(cs, n);
}

/* lavapipe ends an invocation's loops after 65535 iterations in all (silently):
 * long key ranges are split so that no invocation loops over more than max_iter
 * keys, even when the tuning asks for one slice or 8 lanes per row. */
static const pvk_attn_tuning one_slice = {8, 8, 16, 1, false, 32768}, key_lanes = {8, 8, 16, 0, true, 32768};

TEST(attention_splits_key_ranges_longer_than_an_invocation_may_loop) {
    attn_case cs[] = {
        {2, 2, 64, 1, 70000, 0, &one_slice, true, true, 0, 0, 0},
        {2, 2, 64, 1, 70000, 0, &key_lanes, true, false, PVK_Q4_0, PVK_Q8_0, 0},
        {4, 2, 16, 9, 66000, 0, &one_slice, true, true, 0, 0, 10000},
    };
    run_attention(cs, N_CASES(cs));
}

TEST(attention_reads_the_cache_through_texel_views) {
    attn_case cs[] = {
        {8, 2, 64, 1, 1000, 0, NULL, true, true, 0, 0, 0},
        {8, 2, 64, 33, 257, 16, NULL, true, true, 0, 0, 0},
        {8, 2, 80, 31, 1000, 0, &gpu_shape, true, true, 0, 0, 0},
        {8, 2, 96, 1, 1000, 16, &one_lane, true, true, 0, 0, 0},
        {8, 2, 32, 3, 2100, 2047, NULL, true, true, 0, 0, 0},
    };
    run_attention(cs, N_CASES(cs));
}

/* Whether a GPU quant q of element value x may differ from quant.c's qr: by one
 * step, where x/d lies within 1e-4 of a step's rounding boundary (the GPU's 1/d
 * and x*id may round differently from the CPU's there). */
static bool quant_tie(pvk_type t, float x, float d, int q, int qr) {
    if (abs(q - qr) != 1 || d == 0) return false;
    double v = (double)x / d + (t == PVK_Q4_0 ? 8.5 : 0.0);
    double f = t == PVK_Q4_0 ? v - floor(v) : fabs(v) - floor(fabs(v)) - 0.5;
    return fmin(fabs(f), fabs(1 - fabs(f))) < 1e-4 * fmax(1, fabs(v));
}

/* Compares the GPU's block (bytes g) of 32 values x with quant.c's (bytes r): d to
 * one f16 ulp (packHalf2x16 rounds as the implementation does), each quant equal
 * or a rounding tie. Returns the number of differing quants, -1 when wrong. */
static int compare_block(pvk_type t, const float *x, const uint8_t *g, const uint8_t *r) {
    uint16_t gd = (uint16_t)(g[0] | g[1] << 8), rd = (uint16_t)(r[0] | r[1] << 8);
    if (abs((int)gd - (int)rd) > 1) return -1;
    float d = quant_f16_to_f32(rd);
    int ties = 0;
    for (int j = 0; j < 32; j++) {
        int q, qr;
        if (t == PVK_Q8_0) {
            q = (int8_t)g[2 + j], qr = (int8_t)r[2 + j];
        } else {
            int sh = j < 16 ? 0 : 4;
            q = g[2 + j % 16] >> sh & 15, qr = r[2 + j % 16] >> sh & 15;
        }
        if (q == qr) continue;
        if (!quant_tie(t, x[j], d, q, qr)) return -1;
        ties++;
    }
    return ties;
}

/* Quantized writes: rows of blocks that start at either 2 mod 4 or 0 mod 4 (row
 * widths of 3 blocks), a range crossing chunk buffers, blocks of zeros, of equal
 * +-max (the first wins as in ggml), and of exact half steps. The bytes must be
 * quant.c's (up to rounding ties) and every byte outside the written rows stays. */
TEST(kv_store_quantizes_blocks_like_quant_c) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    struct { pvk_type k, v; uint32_t width, chunk; } cs[] = {
        {PVK_Q8_0, PVK_Q4_0, 96, 0}, {PVK_Q4_0, PVK_F16, 96, 4}, {PVK_F16, PVK_Q8_0, 32, 3},
        {PVK_Q4_0, PVK_Q4_0, 32, 0},
    };
    const uint32_t ctx = 13, m = 6, pos0 = 3;
    for (size_t c = 0; c < N_CASES(cs); c++) {
        uint32_t w = cs[c].width, stride = 2 * w + 4;
        ref_rng rng = {0x9a + c};
        float *x = malloc((size_t)m * stride * sizeof *x);
        ref_fill(&rng, x, (size_t)m * stride, -300.0f, 300.0f);
        for (uint32_t j = 0; j < 32; j++) {
            x[j] = 0.0f;                                 /* row 0, first K block: zeros */
            x[stride + j] = j == 3 ? 2.0f : j == 9 ? -2.0f : 0.5f;   /* +-max tie */
            x[2 * stride + 2 + w + j] = (float)j - 15.5f; /* V block of half steps */
        }
        pvk_type types[2] = {cs[c].k, cs[c].v};
        size_t rb[2] = {pvk_type_row_bytes(cs[c].k, w), pvk_type_row_bytes(cs[c].v, w)};
        uint8_t *before[2], *after[2];
        for (int s = 0; s < 2; s++) {
            before[s] = malloc(ctx * rb[s]), after[s] = malloc(ctx * rb[s] + 8);
            for (size_t i = 0; i < ctx * rb[s]; i++) before[s][i] = (uint8_t)(0xa5 ^ i);
        }
        pvk_kv kv = {0};
        pvk_buf xb = {0};
        if (cache_make(&g, &kv, cs[c].k, cs[c].v, w, ctx, cs[c].chunk, false, before[0], before[1]) &&
            upload(g.d, x, (size_t)m * stride * 4, &xb)) {
            CHECK(!pvk_op_kv_store(g.o, g.c, &xb, stride, 2, 2 + w, &kv, m, pos0, NULL), "kv_store: %s", pvk_errmsg());
            pvk_cmd_barrier(g.c, PVK_COMPUTE_TO_HOST);
            bool ok = !pvk_cmd_submit(g.c) && !pvk_cmd_begin(g.c);
            for (uint32_t ch = 0; ok && ch < kv.n_chunks; ch++) {
                uint32_t lo = ch * kv.chunk_ctx, rows = ch + 1 < kv.n_chunks ? kv.chunk_ctx : ctx - lo;
                ok = !pvk_buf_read(g.d, &kv.k[ch], 0, after[0] + lo * rb[0], rows * rb[0]) &&
                     !pvk_buf_read(g.d, &kv.v[ch], 0, after[1] + lo * rb[1], rows * rb[1]);
            }
            CHECK(ok, "read back: %s", pvk_errmsg());
            int bad = 0, ties = 0;
            for (int s = 0; ok && s < 2; s++)
                for (uint32_t r = 0; r < ctx; r++) {
                    const uint8_t *gr = after[s] + r * rb[s], *br = before[s] + r * rb[s];
                    if (r < pos0 || r >= pos0 + m) {
                        if (memcmp(gr, br, rb[s]) && bad++ < 5) CHECK(0, "%c row %u outside the write changed", "KV"[s], r);
                        continue;
                    }
                    const float *xr = x + (r - pos0) * stride + 2 + s * w;
                    uint8_t want[256];
                    quant_quantize_row(types[s], xr, want, w);
                    if (types[s] == PVK_F16) {
                        for (uint32_t j = 0; j < w; j++) {
                            float gv = quant_f16_to_f32((uint16_t)(gr[2 * j] | gr[2 * j + 1] << 8));
                            if (!(fabs(gv - xr[j]) <= fabs(xr[j]) / 1024) && bad++ < 5)
                                CHECK(0, "f16 V[%u][%u] = %g, want %g (one f16 ulp)", r, j, gv, xr[j]);
                        }
                        continue;
                    }
                    size_t bb = pvk_type_get(types[s])->block_bytes;
                    for (uint32_t b = 0; b < w / 32; b++) {
                        int n = compare_block(types[s], xr + 32 * b, gr + b * bb, want + b * bb);
                        if (n < 0 && bad++ < 5)
                            CHECK(0, "%s %c[%u] block %u differs from quant.c beyond rounding ties",
                                  type_name(types[s]), "KV"[s], r, b);
                        ties += n > 0 ? n : 0;
                    }
                }
            printf("    K %s V %s width %u chunk %u: %d quants at rounding ties differ\n", type_name(cs[c].k),
                   type_name(cs[c].v), w, cs[c].chunk, ties);
        }
        pvk_kv_free(g.d, &kv);
        pvk_buf_destroy(g.d, &xb);
        for (int s = 0; s < 2; s++) free(before[s]), free(after[s]);
        free(x);
    }
    gpu_close(&g);
}

/* Quantized caches: the kernel dequantizes each block as quant.c does (the
 * reference reads those values), for K and V types alone and mixed, through both
 * fetch paths, head dims whose heads start mid-block (16: two heads per block;
 * 96: rows of 3 blocks, so Q8_0 rows alternate 4-byte alignment), decode with
 * split-K and prefill. */
TEST(attention_dequantizes_q8_0_and_q4_0_caches) {
    attn_case cs[] = {
        {8, 2, 64, 1, 1000, 0, NULL, true, false, PVK_Q8_0, PVK_Q8_0, 0},
        {8, 2, 64, 1, 1000, 0, NULL, true, true, PVK_Q4_0, PVK_Q4_0, 0},
        {4, 2, 16, 33, 257, 0, NULL, true, false, PVK_Q4_0, PVK_Q8_0, 0},
        {4, 2, 16, 3, 64, 0, NULL, true, true, PVK_Q8_0, PVK_Q4_0, 0},
        {8, 1, 96, 1, 300, 16, NULL, true, true, PVK_Q8_0, PVK_F16, 0},
        {4, 1, 96, 31, 100, 0, NULL, true, false, PVK_F16, PVK_Q4_0, 0},
        {8, 2, 32, 5, 300, 0, &one_lane, true, false, PVK_Q4_0, PVK_Q4_0, 0},
        {8, 2, 64, 3, 257, 0, &gpu_shape, true, true, PVK_Q8_0, PVK_Q8_0, 0},
    };
    run_attention(cs, N_CASES(cs));
}

/* A cache split by positions into chunks (as on devices whose binding limit one
 * layer's cache exceeds): split-K slices and query tiles that cross chunk
 * boundaries carry their state from one chunk's dispatch to the next. */
TEST(attention_reads_caches_split_into_chunks) {
    attn_case cs[] = {
        {8, 2, 64, 1, 1000, 0, NULL, true, false, 0, 0, 100},      /* 10 chunks, 7 splits */
        {8, 2, 64, 1, 1000, 0, NULL, true, true, PVK_Q4_0, PVK_Q8_0, 96},
        {8, 2, 64, 1, 1000, 0, &split3, true, false, 0, 0, 64},    /* slices span several chunks */
        {8, 2, 32, 33, 257, 0, NULL, true, false, 0, 0, 50},       /* prefill tiles cross chunks */
        {8, 2, 32, 33, 257, 16, NULL, true, true, PVK_Q8_0, PVK_Q4_0, 40},
        {8, 2, 32, 1, 2100, 2047, NULL, true, false, 0, 0, 1000},  /* window starts mid-chunk */
        {4, 4, 16, 31, 300, 0, &gpu_shape, true, false, 0, 0, 7},
        {8, 2, 64, 1, 64, 0, NULL, true, false, 0, 0, 10},         /* one slice over 7 chunks */
    };
    run_attention(cs, N_CASES(cs));
}

/* Awkward prefill lengths (a single row, one below and above 32, and one past
 * the 4096 of Phi-3's original context) against the plain double reference. */
TEST(attention_prefill_awkward_lengths_match_reference) {
    attn_case cs[] = {
        {4, 2, 32, 1, 1, 0, NULL, true, false, 0, 0, 0},
        {4, 2, 32, 31, 31, 0, NULL, true, false, 0, 0, 0},
        {4, 2, 32, 33, 33, 0, NULL, true, true, 0, 0, 0},
        {2, 1, 16, 4097, 4097, 0, NULL, true, true, 0, 0, 0},
    };
    run_attention(cs, N_CASES(cs));
}

/* Block-sparse attention (Phi-3-small): each case's mask must differ from dense at
 * some outputs (beyond the bound), or the test would not see the mask. Patterns
 * {block, local blocks, vertical stride, head step}: the real model's shape scaled
 * down (B 16, 2 local, stride 4, step 1: 8 heads over 4 offsets), a stride larger
 * than the heads (step 2), homo heads (step 0); decode, prefill chunks that start
 * mid-block, tunings with key lanes, split-K and one lane, a quantized cache. */
TEST(attention_block_sparse_skips_unseen_blocks_and_matches_the_mask) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    static const uint32_t real[4] = {16, 2, 4, 1}, wide[4] = {8, 3, 16, 2}, homo[4] = {16, 1, 3, 0};
    struct { attn_case ac; const uint32_t *bs; } cs[] = {
        {{8, 2, 64, 1, 300, 0, NULL, true, false, 0, 0, 0}, real},
        {{8, 2, 64, 1, 1000, 0, NULL, false, false, 0, 0, 0}, real},
        {{8, 2, 64, 37, 300, 0, NULL, true, false, 0, 0, 0}, real},
        {{8, 2, 64, 300, 300, 0, NULL, true, false, 0, 0, 0}, real},
        {{8, 8, 32, 70, 250, 0, NULL, true, false, 0, 0, 0}, wide},
        {{4, 1, 32, 50, 200, 0, NULL, true, false, 0, 0, 0}, homo},
        {{8, 2, 64, 1, 1000, 0, &key_lanes, true, false, 0, 0, 0}, real},
        {{8, 2, 64, 33, 257, 0, &split3, true, false, 0, 0, 0}, real},
        {{8, 2, 64, 31, 400, 0, &one_lane, true, false, 0, 0, 0}, real},
        {{8, 2, 80, 31, 400, 0, &gpu_shape, true, false, 0, 0, 0}, real},
        {{8, 2, 64, 9, 600, 0, NULL, true, false, PVK_Q8_0, PVK_Q4_0, 0}, real},
    };
    for (size_t i = 0; i < N_CASES(cs); i++) {
        size_t differs = check_attention_bs(&g, &cs[i].ac, cs[i].bs);
        CHECK(differs > 0, "case %zu: the block-sparse reference equals the dense one everywhere", i);
        printf("    case %zu: %zu outputs differ from dense attention\n", i, differs);
    }
    gpu_close(&g);
}

TEST(attention_rejects_bad_shapes_with_a_message) {
    gpu g;
    REQUIRE(gpu_open(&g), "no device");
    pvk_buf xb = {0}, kb = {0}, ob = {0};
    if (upload(g.d, NULL, 4096, &xb) && upload(g.d, NULL, 4096, &kb) && upload(g.d, NULL, 4096, &ob)) {
        pvk_kv kv = {.k = &kb, .v = &kb, .width = 12, .ctx = 8, .k_type = PVK_F16, .v_type = PVK_F16};
        pvk_attn a = {.q_stride = 36, .n_head = 2, .n_kv_head = 2, .head_dim = 6, .m = 1, .scale = 1};
        CHECK(pvk_op_attention(g.o, g.c, &xb, &a, &kv, &ob) == PHIVK_ERR_UNSUPPORTED, "head_dim 6");
        CHECK(strstr(pvk_errmsg(), "head_dim 6"), "message names head_dim: %s", pvk_errmsg());
        a.head_dim = 8, a.q_stride = 48, kv.width = 16;
        a.pos0 = 8;
        CHECK(pvk_op_attention(g.o, g.c, &xb, &a, &kv, &ob) == PHIVK_ERR_CONTEXT_FULL, "past the context");
        a.pos0 = 0, a.n_kv_head = 3;
        CHECK(pvk_op_attention(g.o, g.c, &xb, &a, &kv, &ob) == PHIVK_ERR_INVALID, "2 heads over 3 KV heads");
        pvk_rope r = {.n_q_heads = 2, .head_dim = 8, .n_rot = 10, .freq_base = 1e4f, .attn_factor = 1};
        CHECK(pvk_op_kv_store(g.o, g.c, &xb, 48, 16, 32, &kv, 1, 0, &r) == PHIVK_ERR_INVALID, "n_rot > head_dim");
        r.n_rot = 8, r.q_off = 12;
        CHECK(pvk_op_kv_store(g.o, g.c, &xb, 48, 16, 32, &kv, 1, 0, &r) == PHIVK_ERR_INVALID, "q overlapping k");
        pvk_tensor t = {.type = PVK_Q8_K};
        CHECK(pvk_op_get_rows(g.o, g.c, &t, &xb, &ob, 1) == PHIVK_ERR_UNSUPPORTED, "q8_K table");
        a.n_kv_head = 2;
        kv.k_type = PVK_Q4_1;
        CHECK(pvk_op_attention(g.o, g.c, &xb, &a, &kv, &ob) == PHIVK_ERR_UNSUPPORTED, "q4_1 K cache");
        kv.k_type = PVK_Q8_0;
        CHECK(pvk_op_attention(g.o, g.c, &xb, &a, &kv, &ob) == PHIVK_ERR_UNSUPPORTED, "q8_0 K of width 16");
    }
    pvk_buf_destroy(g.d, &xb);
    pvk_buf_destroy(g.d, &kb);
    pvk_buf_destroy(g.d, &ob);
    gpu_close(&g);
}
