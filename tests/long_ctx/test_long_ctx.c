/* 128K context on a tiny synthetic Phi-3-128k (2 layers, 4 heads of 16 over 2 KV
 * heads, LongRoPE tables from synth, original context 4096): LongRoPE at and
 * across the switch, one decode step at position 131071 over a full cache of
 * each KV type, the sliding window there, and chunked caches, against the CPU
 * reference. Validation layer on; a validation message fails the test.
 *
 * Position 131071 is reached without computing 131071 tokens: the test writes
 * random K and V rows into the session's cache with the session's own kv_store
 * kernel (session_kv.h), moves the session there (session_seek), decodes one
 * token, and runs the reference for that step from the cache the GPU holds (read
 * back and dequantized) with the CPU reference's building blocks (ref.h). The
 * cached keys are large enough (|k| up to 3) that a few hundred of the 131071
 * win the softmax, so the step's logits depend on where the query is rotated. */
#define HARNESS_MAIN
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_impl.h"
#include "quant.h"
#include "ref.h"
#include "session_kv.h"
#include "synth.h"

#define LONG_CTX 131072
#define ORIG_CTX 4096
#define U32 (1.0 / 16777216.0)   /* fp32's unit roundoff, 2^-24 */

/* ------------------------------------------------------------ runtimes */

typedef struct gpu_rt {
    phivk_runtime *rt;
    uint64_t seen;   /* validation messages already reported */
} gpu_rt;

static gpu_rt plain_rt, chunked_rt;

static const char *check_validation(void) {
    static char msg[600];
    gpu_rt *rs[2] = {&plain_rt, &chunked_rt};
    for (int i = 0; i < 2; i++) {
        if (!rs[i]->rt) continue;
        uint64_t n = pvk_dev_validation_count(rs[i]->rt->dev);
        if (n == rs[i]->seen) continue;
        rs[i]->seen = n;
        snprintf(msg, sizeof msg, "validation layer: %s", pvk_dev_validation_last(rs[i]->rt->dev));
        return msg;
    }
    return NULL;
}

/* Frees the device at exit, before the loader unloads the driver and layers (a
 * destructor would run after them and crash inside the layer on some drivers). */
static void close_runtime(void) { phivk_runtime_free(plain_rt.rt); }

/* The device as found, or (chunked) one whose bindings stop at 1 MiB and which
 * reads the cache through storage buffers only: a tiny model's 8 MiB layer cache
 * of f16 then lies in 9 chunks of 16128 positions (no weight is split). */
static phivk_runtime *runtime(bool chunked) {
    gpu_rt *r = chunked ? &chunked_rt : &plain_rt;
    if (r->rt) return r->rt;
    if (chunked) {
        setenv("PHIVK_MAX_BINDING_BYTES", "1048576", 1);
        setenv("PHIVK_DISABLE_TEXEL", "1", 1);
    }
    phivk_runtime_params p = phivk_runtime_default_params();
    p.validate = true;
    r->rt = phivk_runtime_create(&p);
    unsetenv("PHIVK_MAX_BINDING_BYTES");
    unsetenv("PHIVK_DISABLE_TEXEL");
    if (!r->rt) {
        printf("cannot open a Vulkan device: %s\n", phivk_last_error());
        exit(1);
    }
    harness_after_each = check_validation;
    if (!chunked) atexit(close_runtime);
    return r->rt;
}


/* ------------------------------------------------------------- fixtures */

typedef struct fixture {
    char path[64];
    gguf_file *file;
    ref_model *ref;
    phivk_model *gpu, *gpu_chunked;
} fixture;

static synth_params tiny_128k(int32_t window) {
    synth_params p = synth_default_params();
    p.arch = "phi3";
    p.n_vocab = 400;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 128;
    p.n_ctx = LONG_CTX;
    p.longrope = true;
    p.rope_orig_ctx = ORIG_CTX;
    p.sliding_window = window;
    p.wtype = PVK_F32;
    return p;
}

static bool fixture_open(fixture *fx, int32_t window, bool chunked) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "/tmp/phivk-longctx-XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0) return false;
    close(fd);
    synth_params p = tiny_128k(window);
    if (synth_save(&p, fx->path) || gguf_open(fx->path, &fx->file) ||
        ref_model_create(fx->file, "fixture", &fx->ref)) {
        printf("    fixture: %s\n", pvk_errmsg());
        return false;
    }
    fx->gpu = phivk_model_load(runtime(false), fx->path, NULL);
    if (fx->gpu && chunked) fx->gpu_chunked = phivk_model_load(runtime(true), fx->path, NULL);
    if (!fx->gpu || (chunked && !fx->gpu_chunked)) printf("    load: %s\n", phivk_last_error());
    return fx->gpu && (!chunked || fx->gpu_chunked);
}

static void fixture_close(fixture *fx) {
    phivk_model_free(fx->gpu_chunked);
    phivk_model_free(fx->gpu);
    ref_model_destroy(fx->ref);
    gguf_close(fx->file);
    unlink(fx->path);
}

static void token_ids(int32_t *ids, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((seed >> 8) % 397u);
    }
}

static double max_abs(const float *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* GPU vs reference logits up to position 4097, the reference keeping K and V in f16
 * as the GPU does (kv_f16): what separates them is fp32 arithmetic, above all the
 * angles (at 4095 one rounding of theta, 2^-24 relative, turns the fastest pair by
 * 2.4e-4 rad, in every cached key the reference rotates in double). Measured on
 * lavapipe: from 1.6e-7 (position 0, no angle) to 1.1e-4 (position 4095) of the
 * logits' largest magnitude; 4e-4 of it leaves a margin of 3.5. (Without kv_f16
 * the f16 rounding of the cache alone reaches 2e-4.) */
static double switch_bound(const float *ref, size_t n) { return 4e-4 * fmax(1.0, max_abs(ref, n)); }

static phivk_session *session(phivk_model *m, int32_t ctx, phivk_kv_type t, phivk_rope_factors rope,
                              int32_t batch) {
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = ctx;
    sp.k_type = sp.v_type = t;
    sp.rope_factors = rope;
    if (batch) sp.batch = batch;
    phivk_session *s = phivk_session_create(m, &sp);
    if (!s) printf("    session: %s\n", phivk_last_error());
    return s;
}

/* ------------------------------------------------- LongRoPE at the switch */

/* AUTO: 4096 tokens use the short table (positions 0 and 4095 checked against the
 * reference), the 4097th takes the session past the original context, which
 * re-prefills the cache with the long table; positions 4096 and 4097 then match
 * the reference (which does the same) and a fresh session given all 4098 tokens
 * at once (which starts with the long table). attn_factor (sqrt(1 + ln 32 /
 * ln 4096)) scales both tables. */
TEST(longrope_switch_matches_reference_and_a_fresh_long_prefill) {
    fixture fx;
    bool ok = fixture_open(&fx, 0, false);
    REQUIRE(ok, "fixture");
    const int n = ORIG_CTX + 2, nv = 400;
    int32_t *ids = malloc(sizeof *ids * n);
    token_ids(ids, n, 11);
    float *got = malloc(sizeof *got * (size_t)ORIG_CTX * nv), *want = malloc(sizeof *want * (size_t)ORIG_CTX * nv);
    float fresh[2][400], step[2][400], ref_step[2][400];
    phivk_session *s = session(fx.gpu, 4352, PHIVK_KV_F16, PHIVK_ROPE_AUTO, 0);
    phivk_session *f = session(fx.gpu, 4352, PHIVK_KV_F16, PHIVK_ROPE_AUTO, 0);
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 4352;
    rp.kv_f16 = true;
    ref_state *rs = NULL;
    ok = s && f && !ref_state_create(fx.ref, &rp, &rs);
    ok = ok && phivk_decode(s, ids, ORIG_CTX, got, true) == PHIVK_OK &&
         ref_forward(rs, ids, ORIG_CTX, want, true) == PHIVK_OK;
    for (int i = 0; ok && i < 2; i++)
        ok = phivk_decode(s, ids + ORIG_CTX + i, 1, step[i], false) == PHIVK_OK &&
             ref_forward(rs, ids + ORIG_CTX + i, 1, ref_step[i], false) == PHIVK_OK;
    ok = ok && phivk_decode(f, ids, ORIG_CTX, NULL, false) == PHIVK_OK &&
         phivk_decode(f, ids + ORIG_CTX, 2, fresh[0], true) == PHIVK_OK;
    CHECK(ok, "runs: %s", pvk_errmsg());
    if (ok) {
        const int pos[2] = {0, ORIG_CTX - 1};
        for (int i = 0; i < 2; i++) {
            const float *g = got + (size_t)pos[i] * nv, *w = want + (size_t)pos[i] * nv;
            double d = max_diff(g, w, nv), b = switch_bound(w, nv);
            printf("    position %d (short table): max |gpu - ref| %.3g (bound %.3g)\n", pos[i], d, b);
            CHECK(d <= b, "position %d: %g > %g", pos[i], d, b);
        }
        for (int i = 0; i < 2; i++) {
            double d = max_diff(step[i], ref_step[i], nv), b = switch_bound(ref_step[i], nv);
            /* The same kernels on the same tokens in the same chunks: only the
             * last step's batch differs (the tiled matrix kernels instead of
             * matvec: another summation order over K <= 128), so fp32 rounding
             * alone separates them: measured 2.8e-7 and 5.3e-7 of the logits'
             * largest magnitude on lavapipe, 2e-6 a margin of 3.8. */
            double df = max_diff(step[i], fresh[i], nv), bf = 2e-6 * fmax(1.0, max_abs(fresh[i], nv));
            printf("    position %d (long table after the switch): max |gpu - ref| %.3g (bound %.3g), "
                   "|switch - fresh| %.3g (bound %.3g)\n", ORIG_CTX + i, d, b, df, bf);
            CHECK(d <= b, "position %d: %g > %g", ORIG_CTX + i, d, b);
            CHECK(df <= bf, "position %d: switched session vs fresh long prefill %g > %g", ORIG_CTX + i, df, bf);
        }
    }
    ref_state_destroy(rs);
    phivk_session_free(s);
    phivk_session_free(f);
    free(ids), free(got), free(want);
    fixture_close(&fx);
}

/* ---------------------------------------------- one step at position 131071 */

/* Writes cache rows 0..n-1 of every layer from seeded random K in [-3, 3] and V in
 * [-1, 1], through the session's kv_store (so quantized caches hold what the
 * kernel makes of them), in pieces that fit one binding of the device. */
static bool fill_cache(phivk_runtime *r, phivk_session *s, int32_t n_layer, uint32_t width, uint32_t n) {
    const pvk_caps *caps = pvk_dev_caps(r->dev);
    uint32_t stride = 2 * width, piece = (uint32_t)(caps->max_binding_bytes / (stride * 4ull)) & ~15u;
    size_t floats = (size_t)n * stride;
    float *x = malloc(floats * sizeof *x);
    pvk_buf xb = {0};
    pvk_cmd *c = NULL;
    bool ok = x && !pvk_buf_create(r->dev, floats * 4, PVK_MEM_DEVICE, &xb) && !pvk_cmd_create(r->dev, &c);
    for (int32_t l = 0; ok && l < n_layer; l++) {
        uint64_t seed = 0x5eed + (uint64_t)l;
        for (size_t i = 0; i < floats; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)((seed >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
            x[i] = i % stride < width ? 3.0f * u : u;
        }
        ok = !pvk_buf_write(r->dev, &xb, 0, x, floats * 4) && !pvk_cmd_begin(c);
        for (uint32_t p0 = 0; ok && p0 < n; p0 += piece) {
            uint32_t m = n - p0 < piece ? n - p0 : piece;
            pvk_buf part = xb;   /* rows p0.. of x: a 16-byte aligned sub-range */
            part.offset += (uint64_t)p0 * stride * 4;
            part.size = (uint64_t)m * stride * 4;
            ok = !pvk_op_kv_store(r->ops, c, &part, stride, 0, width, session_kv_layer(s, l), m, p0, NULL);
        }
        pvk_cmd_barrier(c, PVK_COMPUTE_TO_COMPUTE);
        ok = ok && !pvk_cmd_submit(c);
    }
    if (!ok) printf("    fill: %s\n", pvk_errmsg());
    pvk_cmd_destroy(c);
    pvk_buf_destroy(r->dev, &xb);
    free(x);
    return ok;
}

/* Layer l's cache rows 0..n-1 as floats (dequantized from what the GPU holds). */
static bool read_cache(phivk_runtime *r, const pvk_kv *kv, uint32_t n, float *k, float *v) {
    bool ok = true;
    for (int s = 0; s < 2 && ok; s++) {
        pvk_type t = s ? kv->v_type : kv->k_type;
        size_t rb = pvk_type_row_bytes(t, kv->width);
        uint32_t cc = kv->n_chunks > 1 ? kv->chunk_ctx : kv->ctx;
        uint8_t *raw = malloc(rb * cc);
        for (uint32_t lo = 0; ok && lo < n; lo += cc) {
            uint32_t rows = n - lo < cc ? n - lo : cc;
            ok = raw && !pvk_buf_read(r->dev, &(s ? kv->v : kv->k)[lo / cc], 0, raw, rb * rows);
            for (uint32_t i = 0; ok && i < rows; i++)
                ok = !quant_dequantize_row(t, raw + rb * i, (s ? v : k) + (size_t)(lo + i) * kv->width, kv->width);
        }
        free(raw);
    }
    if (!ok) printf("    read back: %s\n", pvk_errmsg());
    return ok;
}

static const float *f32(const gguf_tensor *t) { return t ? (const float *)t->data : NULL; }

static void matvec(const gguf_tensor *w, const float *x, float *y) {
    ref_matmul(w->type, w->data, w->ne[1], w->ne[0], NULL, x, w->ne[0], y, w->ne[1], 1);
}

/* The reference for one phi3 decode step at pos (ref.c's run_batch for one token):
 * cache rows 0..pos-1 of layer l are kc[l] / vc[l]; row pos is this step's k and v
 * stored in kt / vt (quantized and dequantized by quant.c). Angles are scaled by
 * freq_scale (1: exact) to measure how much fp32 angles can move the result. */
static void reference_step(const ref_model *rm, float **kc, float **vc, pvk_type kt, pvk_type vt,
                           int32_t tok, int64_t pos, arch_rope_table table, float freq_scale, float *logits) {
    const arch_hparams *hp = ref_model_hparams(rm);
    const arch_weights *w = ref_model_weights(rm);
    const int64_t E = hp->n_embd, Q = hp->n_embd_q, KV = hp->n_embd_kv, F = hp->n_ff;
    float x[64], h[64], qkv[128], att[64], o[64], gu[256], act[128], row[64];
    uint8_t blocks[256];
    const float *factors = f32(arch_rope_factors(w, table));
    quant_dequantize_row(w->token_embd->type,
                         (const uint8_t *)w->token_embd->data + pvk_type_row_bytes(w->token_embd->type, E) * tok,
                         x, E);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const arch_layer *L = &w->layers[l];
        ref_norm(hp->norm, hp->norm_eps, x, f32(L->attn_norm), NULL, h, E);
        matvec(L->attn_qkv, h, qkv);
        float *q = qkv, *k = qkv + Q, *v = k + KV;
        ref_rope(q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, pos, hp->rope_base, freq_scale,
                 factors, hp->rope_attn_factor);
        ref_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, pos, hp->rope_base, freq_scale,
                 factors, hp->rope_attn_factor);
        for (int64_t d = 0; d < Q; d++) q[d] *= (float)(1.0 / sqrt((double)hp->head_dim));
        quant_quantize_row(kt, k, blocks, KV);
        quant_dequantize_row(kt, blocks, kc[l] + pos * KV, KV);
        quant_quantize_row(vt, v, blocks, KV);
        quant_dequantize_row(vt, blocks, vc[l] + pos * KV, KV);
        int64_t first = 0;
        while (!arch_key_visible(hp, false, pos, first)) first++;
        ref_attention(q, hp->n_head, hp->n_head_kv, hp->head_dim, kc[l], vc[l], KV, first, pos, att);
        matvec(L->attn_output, att, o);
        for (int64_t i = 0; i < E; i++) x[i] += o[i];
        ref_norm(hp->norm, hp->norm_eps, x, f32(L->ffn_norm), NULL, h, E);
        matvec(L->ffn_up, h, gu);   /* [gate | up] */
        for (int64_t j = 0; j < F; j++) act[j] = ref_silu(gu[j]) * gu[F + j];
        matvec(L->ffn_down, act, o);
        for (int64_t i = 0; i < E; i++) x[i] += o[i];
    }
    ref_norm(hp->norm, hp->norm_eps, x, f32(w->output_norm), NULL, row, E);
    matvec(w->output, row, logits);
}

static phivk_kv_type kv_enum(pvk_type t) {
    return t == PVK_Q8_0 ? PHIVK_KV_Q8_0 : t == PVK_Q4_0 ? PHIVK_KV_Q4_0 : PHIVK_KV_F16;
}

/* Decodes one token at 131071 over a filled cache; the GPU's logits in out and
 * (when kc/vc are given) the cache rows it held, dequantized. */
static bool decode_at_depth(phivk_model *m, phivk_runtime *r, pvk_type t, phivk_rope_factors rope,
                            int32_t batch, int32_t tok, float *out, float **kc, float **vc) {
    const int32_t P = LONG_CTX - 1;
    phivk_session *s = session(m, LONG_CTX, kv_enum(t), rope, batch);
    int32_t *ids = calloc(LONG_CTX, sizeof *ids);
    bool ok = s && ids && fill_cache(r, s, 2, 32, P) && session_seek(s, ids, P) == PHIVK_OK &&
              phivk_decode(s, &tok, 1, out, false) == PHIVK_OK;
    for (int32_t l = 0; ok && kc && l < 2; l++) ok = read_cache(r, session_kv_layer(s, l), P, kc[l], vc[l]);
    if (!ok) printf("    depth run: %s\n", pvk_errmsg());
    phivk_session_free(s);
    free(ids);
    return ok;
}

/* One decode step at 131071: GPU vs reference. The reference multiplies the cache
 * the GPU holds (read back), so only this step's fp32 arithmetic separates them,
 * above all its angles: the fastest pair turns ~131071 rad, where one rounding of
 * theta (2^-24 relative) moves it by ~0.008 rad. The bound is what a coherent
 * angle error of that size moves the reference by: half the move under angles
 * scaled by 1 +- 2^-23 (one fp32 ulp; the move is linear in the scale there:
 * 1 +- 10 * 2^-24 moves it 5.1 times as far). The kernel's angles carry a few
 * roundings each, pointing different ways from pair to pair: on lavapipe the
 * logits moved 0.12-0.24 of the 1 +- 2^-23 move in the five cases below, so the
 * bound leaves a margin of 2-4, and a common angle error of a few 2^-24 fails it.
 * The other factor table's reference lies far beyond: the check tells the tables
 * apart. */
static void check_depth(fixture *fx, pvk_type t, phivk_rope_factors rope, arch_rope_table table,
                        const char *what) {
    const int32_t P = LONG_CTX - 1, nv = 400, tok = 77;
    float *kc[2], *vc[2];
    for (int l = 0; l < 2; l++) kc[l] = malloc(sizeof(float) * LONG_CTX * 32), vc[l] = malloc(sizeof(float) * LONG_CTX * 32);
    float got[400], want[400], moved[400], other[400];
    bool ok = decode_at_depth(fx->gpu, runtime(false), t, rope, 0, tok, got, kc, vc);
    CHECK(ok, "%s: GPU run", what);
    if (ok) {
        reference_step(fx->ref, kc, vc, t, t, tok, P, table, 1.0f, want);
        double ulp_move = 0;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            reference_step(fx->ref, kc, vc, t, t, tok, P, table, (float)(1.0 + sgn * 2 * U32), moved);
            ulp_move = fmax(ulp_move, max_diff(moved, want, nv));
        }
        reference_step(fx->ref, kc, vc, t, t, tok, P,
                       table == ARCH_ROPE_TABLE_LONG ? ARCH_ROPE_TABLE_SHORT : ARCH_ROPE_TABLE_LONG, 1.0f, other);
        double d = max_diff(got, want, nv), b = ulp_move / 2, dother = max_diff(got, other, nv);
        printf("    %s: max |gpu - ref| %.3g (bound %.3g: angles off by 2^-24; %.2f of it), other table %.3g\n",
               what, d, b, d / b, dother);
        CHECK(d <= b, "%s: %g > %g", what, d, b);
        CHECK(dother > b, "%s: the other table's reference is within the bound (%g <= %g)", what, dother, b);
    }
    for (int l = 0; l < 2; l++) free(kc[l]), free(vc[l]);
}

TEST(decode_at_131071_matches_reference_for_f16_q8_0_q4_0_caches) {
    fixture fx;
    bool ok = fixture_open(&fx, 0, false);
    REQUIRE(ok, "fixture");
    check_depth(&fx, PVK_F16, PHIVK_ROPE_AUTO, ARCH_ROPE_TABLE_LONG, "f16 cache, long table");
    check_depth(&fx, PVK_Q8_0, PHIVK_ROPE_AUTO, ARCH_ROPE_TABLE_LONG, "q8_0 cache, long table");
    check_depth(&fx, PVK_Q4_0, PHIVK_ROPE_AUTO, ARCH_ROPE_TABLE_LONG, "q4_0 cache, long table");
    check_depth(&fx, PVK_F16, PHIVK_ROPE_SHORT, ARCH_ROPE_TABLE_SHORT, "f16 cache, short table forced");
    fixture_close(&fx);
}

TEST(decode_at_131071_honours_a_2047_sliding_window) {
    fixture fx;
    bool ok = fixture_open(&fx, 2047, false);
    REQUIRE(ok, "fixture");
    check_depth(&fx, PVK_F16, PHIVK_ROPE_AUTO, ARCH_ROPE_TABLE_LONG, "f16 cache, window 2047");
    fixture_close(&fx);
}

/* -------------------------------------------------------- chunked caches */

/* The same model on a device whose bindings stop at 1 MiB, without texel views,
 * splits each layer's K and V into chunks. A 300-token prefill that crosses a
 * chunk boundary (kv_store and prefill attention over two chunks, after a filled
 * cache) and the step at 131071 over a q4_0 cache (3 chunks) give the unchunked device's logits:
 * the split-K slices are the same, carried across chunk dispatches, so only the
 * fetch path differs. */
TEST(chunked_cache_gives_the_unchunked_logits) {
    fixture fx;
    bool ok = fixture_open(&fx, 0, true);
    REQUIRE(ok, "fixture");
    const pvk_caps *caps = pvk_dev_caps(runtime(true)->dev);
    CHECK(caps->max_binding_bytes == 1048576 && !caps->texel, "chunked device: binding %llu, texel %d",
          (unsigned long long)caps->max_binding_bytes, caps->texel);
    const int32_t n = 300, nv = 400, at = 16000;   /* the first chunk ends at 16128 */
    int32_t *ids = calloc(LONG_CTX, sizeof *ids);
    token_ids(ids + at, n, 5);
    float a[2][400], b[2][400];
    phivk_model *models[2] = {fx.gpu, fx.gpu_chunked};
    float(*outs[2])[400] = {a, b};
    for (int i = 0; ok && i < 2; i++) {
        phivk_runtime *r = runtime(i == 1);
        phivk_session *s = session(models[i], LONG_CTX, PHIVK_KV_F16, PHIVK_ROPE_LONG, 0);
        ok = s && fill_cache(r, s, 2, 32, at) && session_seek(s, ids, at) == PHIVK_OK &&
             phivk_decode(s, ids + at, n, outs[i][0], false) == PHIVK_OK;
        if (ok && i == 1) {
            const pvk_kv *kv = session_kv_layer(s, 0);
            printf("    chunked session: %u chunks of %u positions per layer\n", kv->n_chunks, kv->chunk_ctx);
            CHECK(kv->n_chunks > 1 && kv->chunk_ctx < at + n && kv->chunk_ctx > at, "chunks: %u of %u",
                  kv->n_chunks, kv->chunk_ctx);
        }
        phivk_session_free(s);
        ok = ok && decode_at_depth(models[i], r, PVK_Q4_0, PHIVK_ROPE_LONG, 0, 77, outs[i][1], NULL, NULL);
    }
    CHECK(ok, "runs: %s", pvk_errmsg());
    const char *what[2] = {"prefill of 300 across a chunk boundary (f16 cache)", "step at 131071 (q4_0 cache, 3 chunks)"};
    for (int i = 0; ok && i < 2; i++) {
        /* Same arithmetic in the same order: equal up to the fp32 rounding of
         * differently compiled fetch paths (measured: the prefill bit for bit,
         * the step 2.4e-7 of the logits' largest magnitude on lavapipe); 1e-6
         * leaves a margin of 4 and is far below any misplaced key. */
        double d = max_diff(a[i], b[i], nv), bound = 1e-6 * fmax(1.0, max_abs(a[i], nv));
        printf("    %s: max |chunked - unchunked| %.3g (bound %.3g)\n", what[i], d, bound);
        CHECK(d <= bound, "%s: %g > %g", what[i], d, bound);
    }
    free(ids);
    fixture_close(&fx);
    /* Only this test uses the second device: close it here, after reporting its
     * validation messages (two devices left to exit-time destructors crash the
     * validation layer, which may be unloaded first). */
    const char *msg = check_validation();
    CHECK(!msg, "%s", msg);
    phivk_runtime_free(chunked_rt.rt);
    chunked_rt.rt = NULL;
}
