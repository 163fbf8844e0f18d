/* The GPU forward pass (phivk_decode) against independent references: logits that
 * llama.cpp computed for tests/data/reference, and phivk's CPU reference
 * (model/ref.c) on synthetic fixtures of every architecture. Runs with the
 * validation layer on; a validation message fails the test that caused it. */
#define HARNESS_MAIN
#include "gpu.h"
#include "harness.h"
#include "testdata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_impl.h"
#include "ref.h"
#include "synth.h"

static phivk_runtime *runtime(void) { return test_gpu_runtime(); }


/* Runs ids through a fresh session on the GPU; every position's logits. */
static float *gpu_logits(phivk_model *m, const phivk_session_params *sp, const int32_t *ids, int n) {
    phivk_session *s = phivk_session_create(m, sp);
    if (!s) {
        printf("    session: %s\n", phivk_last_error());
        return NULL;
    }
    float *out = malloc(sizeof *out * (size_t)n * phivk_model_n_vocab(m));
    if (out && phivk_decode(s, ids, n, out, true) != PHIVK_OK) {
        printf("    decode: %s\n", phivk_last_error());
        free(out);
        out = NULL;
    }
    phivk_session_free(s);
    return out;
}

/* One reference file: max |gpu - llama.cpp| <= tol over every position and the top-1
 * token agrees at >= min_top1 positions (tolerances from testdata/README.md). */
static void check_reference(const char *model, const char *ids_file, const char *logits_file,
                            phivk_rope_factors rope, double tol, int min_top1) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/%s", model);
    snprintf(path, sizeof path, "%s", testdata_path(rel)); /* the helper's buffer is reused */
    int32_t ids[128];
    int n = testdata_ids(ids_file, ids, 128);
    REQUIRE(n > 0, "cannot read %s", ids_file);
    phivk_model *m = phivk_model_load(runtime(), path, NULL);
    REQUIRE(m, "load %s: %s", model, phivk_last_error());
    int nv = phivk_model_n_vocab(m);
    float *want = testdata_logits(logits_file, (size_t)n * nv);
    phivk_session_params sp = phivk_session_default_params();
    sp.rope_factors = rope;
    sp.ctx = 256;
    float *got = gpu_logits(m, &sp, ids, n);
    if (want && got) {
        double worst;
        int top1;
        testdata_compare(got, want, n, nv, &worst, &top1);
        printf("    %s: max abs diff %.3g, top-1 %d/%d\n", model, worst, top1, n);
        CHECK(worst <= tol, "%s: max abs diff %g > %g (testdata/README.md tolerance)", model, worst, tol);
        CHECK(top1 >= min_top1, "%s: top-1 agrees at %d of %d positions, want >= %d", model, top1,
              n, min_top1);
    } else {
        CHECK(want, "cannot read %s", logits_file);
        CHECK(got, "GPU run of %s failed", model);
    }
    free(want);
    free(got);
    phivk_model_free(m);
}

TEST(reference_phi3_f32_matches_llama_cpp) {
    check_reference("phi3-f32.gguf", "ids32.txt", "phi3-f32.logits", PHIVK_ROPE_AUTO, 5e-3, 32);
}

TEST(reference_llama_gqa_tied_matches_llama_cpp) {
    check_reference("llama-gqa-tied.gguf", "ids32.txt", "llama-gqa-tied.logits", PHIVK_ROPE_AUTO,
                    3e-2, 32);
}

TEST(reference_phi2_matches_llama_cpp) {
    check_reference("phi2.gguf", "ids32.txt", "phi2.logits", PHIVK_ROPE_AUTO, 5e-3, 32);
}

TEST(reference_phi3_128k_uses_short_factors_for_short_sequences) {
    check_reference("phi3-128k.gguf", "ids32.txt", "phi3-128k.short.logits", PHIVK_ROPE_AUTO, 5e-3, 32);
}

TEST(reference_phi3_128k_long_factors_on_request) {
    check_reference("phi3-128k.gguf", "ids32.txt", "phi3-128k.long.logits", PHIVK_ROPE_LONG, 5e-3, 32);
}

/* llama.cpp ran this one on its Vulkan backend with Q4_0 weights; phivk reads the
 * same blocks in place (matvec / matmul / get_rows on Q4_0). */
TEST(reference_phi3_q4_0_matches_llama_cpp_vulkan) {
    check_reference("phi3-q4_0.gguf", "ids64.txt", "phi3-q4_0.logits", PHIVK_ROPE_AUTO, 0.15, 60);
}

/* ------------------------------------------------------- synthetic fixtures */

typedef struct fixture {
    char path[64];
    gguf_file *file;
    ref_model *ref;
    phivk_model *gpu;
} fixture;

static bool fixture_open(fixture *fx, const synth_params *p) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "/tmp/phivk-fixture-XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0) return false;
    close(fd);
    if (synth_save(p, fx->path) != PHIVK_OK || gguf_open(fx->path, &fx->file) != PHIVK_OK ||
        ref_model_create(fx->file, "fixture", &fx->ref) != PHIVK_OK) {
        printf("    fixture: %s\n", pvk_errmsg());
        return false;
    }
    fx->gpu = phivk_model_load(runtime(), fx->path, NULL);
    if (!fx->gpu) printf("    load: %s\n", phivk_last_error());
    return fx->gpu != NULL;
}

static void fixture_close(fixture *fx) {
    phivk_model_free(fx->gpu);
    ref_model_destroy(fx->ref);
    gguf_close(fx->file);
    unlink(fx->path);
}

static void fixture_ids(int32_t *ids, int n, int n_vocab, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(n_vocab - 3));
    }
}

/* The bound for GPU vs CPU-reference logits: the GPU keeps K and V in f16
 * (relative rounding 2^-11 ~ 5e-4) and sums in another order; through a few
 * layers that stays within a few times that of the logits' range. */
static double logit_bound(const float *ref, size_t n) {
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(ref[i]));
    return 3e-3 * fmax(1.0, amax);
}

/* Which block types' matrix products read int8 activations on the GPU at m rows
 * (the integer-dot path, pvk_ops_reads_q8): the reference then rounds their inputs
 * the same way (ref_state_params.int8_types) and keeps its cache in f16 like the
 * GPU (kv_f16). The two still differ where an input sits within the float path's
 * difference of an int8 rounding boundary: each such value moves by a whole step
 * (1/127 of its block's largest) on one side only, and on these random-weight
 * fixtures that reaches 0.3-1.4% of the logits' range (measured on lavapipe, vs
 * 2-3% for int8 against f32 activations). int8_flip_allowance: ten times the float
 * bound, 3% of the range; a wrong block, scale or offset moves logits by their
 * whole range, and the greedy tests still ask for identical tokens. */
static uint64_t gpu_int8_types(int m) {
    uint64_t mask = 0;
    for (int t = 0; t < PVK_TYPE_COUNT && t < 64; t++)
        if (pvk_type_get((pvk_type)t)->name && pvk_ops_reads_q8(runtime()->ops, (pvk_type)t, (uint32_t)m))
            mask |= 1ull << t;
    return mask;
}

static void check_fixture_vs_reference(const synth_params *p, int n_tokens, bool no_swa) {
    fixture fx;
    bool ok = fixture_open(&fx, p);
    REQUIRE(ok, "fixture for %s", p->arch);
    int nv = phivk_model_n_vocab(fx.gpu);
    int32_t *ids = malloc(sizeof *ids * n_tokens);
    float *want = malloc(sizeof *want * (size_t)n_tokens * nv);
    fixture_ids(ids, n_tokens, nv, 7);
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 256;
    rp.no_swa = no_swa;
    rp.int8_types = gpu_int8_types(n_tokens);
    rp.kv_f16 = true;
    ref_state *rs = NULL;
    CHECK(ref_state_create(fx.ref, &rp, &rs) == PHIVK_OK, "ref state: %s", pvk_errmsg());
    CHECK(rs && ref_forward(rs, ids, n_tokens, want, true) == PHIVK_OK, "ref forward: %s", pvk_errmsg());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 256;
    sp.no_swa = no_swa;
    float *got = gpu_logits(fx.gpu, &sp, ids, n_tokens);
    CHECK(got, "GPU run failed");
    if (got && rs) {
        double bound = logit_bound(want, (size_t)n_tokens * nv), worst = 0;
        if (rp.int8_types && pvk_type_get(p->wtype)->block_elems > 1) bound *= 10;   /* int8_flip_allowance */
        for (size_t i = 0; i < (size_t)n_tokens * nv; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        printf("    %s: max abs diff %.3g (bound %.3g)\n", p->arch, worst, bound);
        CHECK(worst <= bound, "GPU vs CPU reference: max abs diff %g > %g", worst, bound);
    }
    free(got);
    free(want);
    free(ids);
    ref_state_destroy(rs);
    fixture_close(&fx);
}

static synth_params small(const char *arch) {
    synth_params p = synth_default_params();
    p.arch = arch;
    p.n_vocab = 400;
    p.n_embd = 128;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 0; /* as many as n_head */
    p.n_ff = 192;
    p.n_ctx = 512;
    p.wtype = PVK_F32;
    return p;
}

TEST(phi3_with_gqa_matches_cpu_reference) {
    synth_params p = small("phi3");
    p.n_head = 8;
    p.n_head_kv = 2;
    check_fixture_vs_reference(&p, 40, false);
}

/* Phi-3-small at a small shape: 8 query heads over 2 KV heads (4 vertical offsets
 * per KV group), blocks of 4 tokens, 2 local blocks, stride 4, every 2nd layer
 * dense, a GEGELU limit of 1.5 that the MLP's inputs cross, muP scales. */
static synth_params small_phi3small(void) {
    synth_params p = small("phi3small");
    p.n_head = 8;
    p.n_head_kv = 2;
    p.n_layer = 3;
    p.tied_output = true;
    p.bs_block = 4;
    p.bs_local = 2;
    p.bs_stride = 4;
    p.bs_dense_every = 2;
    p.gegelu_limit = 1.5f;
    return p;
}

TEST(phi3small_block_sparse_gqa_gegelu_matches_cpu_reference) {
    synth_params p = small_phi3small();
    check_fixture_vs_reference(&p, 60, false);
    p.wtype = PVK_Q8_0;   /* the int8 matvec path (with its allowance) */
    check_fixture_vs_reference(&p, 5, false);
}

/* Phi-3-small 128K: LongRoPE over the whole head; the long table's mscale is the
 * formula's, the short table's 1 (phi3-small.md 8). 40 tokens over an original
 * context of 32 run the long table, 20 the short one. */
TEST(phi3small_128k_longrope_short_and_long_match_cpu_reference) {
    synth_params p = small_phi3small();
    p.longrope = true;
    p.n_ctx = 256;
    p.rope_orig_ctx = 32;
    check_fixture_vs_reference(&p, 20, false);
    check_fixture_vs_reference(&p, 40, false);
}

/* The same weights with every layer dense (dense_every 1) in the CPU reference:
 * the GPU's block-sparse logits agree with it while every key is still local
 * (positions < 2 blocks of 4) and differ beyond the bound later, where the mask
 * drops keys; so the comparison above does see the mask. */
TEST(phi3small_sparse_logits_differ_from_dense_exactly_where_the_mask_drops_keys) {
    synth_params p = small_phi3small(), dense = p;
    dense.bs_dense_every = 1;
    fixture fx, fd;
    bool ok = fixture_open(&fx, &p) && fixture_open(&fd, &dense);
    REQUIRE(ok, "fixtures");
    int nv = phivk_model_n_vocab(fx.gpu), n = 40;
    int32_t ids[40];
    fixture_ids(ids, n, nv, 11);
    float *want = malloc(sizeof *want * (size_t)n * nv);
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 64;
    rp.kv_f16 = true;
    ref_state *rs = NULL;
    CHECK(ref_state_create(fd.ref, &rp, &rs) == PHIVK_OK && ref_forward(rs, ids, n, want, true) == PHIVK_OK,
          "dense reference: %s", pvk_errmsg());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 64;
    float *got = gpu_logits(fx.gpu, &sp, ids, n);
    CHECK(got, "GPU run failed");
    int local_ok = 0, later_differ = 0;
    for (int t = 0; got && rs && t < n; t++) {
        double worst = 0, bound = logit_bound(want + (size_t)t * nv, (size_t)nv);
        for (int v = 0; v < nv; v++) worst = fmax(worst, fabs(got[(size_t)t * nv + v] - want[(size_t)t * nv + v]));
        if (t < 8) local_ok += worst <= bound;
        else later_differ += worst > bound;
    }
    printf("    positions 0..7: %d of 8 equal dense; positions 8..39: %d of 32 differ\n", local_ok, later_differ);
    CHECK(local_ok == 8, "inside the local window the sparse model equals the dense one (%d of 8)", local_ok);
    CHECK(later_differ >= 24, "beyond it the mask changes the logits (%d of 32 positions)", later_differ);
    free(got);
    free(want);
    ref_state_destroy(rs);
    fixture_close(&fx);
    fixture_close(&fd);
}

TEST(llama_tied_output_f16_weights_matches_cpu_reference) {
    synth_params p = small("llama");
    p.tied_output = true;
    p.wtype = PVK_F16;
    check_fixture_vs_reference(&p, 40, false);
}

TEST(phi3_sliding_window_masks_old_keys_like_the_reference) {
    synth_params p = small("phi3");
    p.sliding_window = 9;
    check_fixture_vs_reference(&p, 40, false);
}

TEST(phi3_no_swa_ignores_the_window_like_the_reference) {
    synth_params p = small("phi3");
    p.sliding_window = 9;
    check_fixture_vs_reference(&p, 40, true);
}

TEST(odd_sizes_bf16_weights_match_cpu_reference) {
    synth_params p = small("llama");
    p.n_vocab = 333;
    p.n_embd = 96;   /* 3 heads of 32 */
    p.n_head = 3;
    p.n_head_kv = 1;
    p.n_ff = 100;
    p.n_layer = 3;
    p.wtype = PVK_BF16;
    check_fixture_vs_reference(&p, 23, false);
}

TEST(phi2_fused_qkv_head_dim_80_matches_cpu_reference) {
    synth_params p = small("phi2");
    p.n_embd = 160;
    p.n_head = 2;
    p.n_rot = 32;
    check_fixture_vs_reference(&p, 30, false);
}

TEST(phi2_separate_qkv_matches_cpu_reference) {
    synth_params p = small("phi2");
    p.separate_qkv = true;
    p.n_rot = 16;
    check_fixture_vs_reference(&p, 30, false);
}

/* Quantized weights: the CPU reference multiplies the dequantized blocks, the GPU
 * reads the blocks in place; both use the same dequantized values (and the same
 * int8 activations where the GPU uses them: gpu_int8_types), so the bound is the
 * float one (logit_bound). n_embd 256 and n_ff 512: K-quants need rows that
 * are whole 256-element super-blocks. */
static synth_params small_quant(const char *arch, pvk_type wtype, synth_mix mix) {
    synth_params p = small(arch);
    p.n_embd = 256;
    p.n_head = 4;
    p.n_ff = 512;
    p.wtype = wtype;
    p.mix = mix;
    return p;
}

TEST(phi3_q4_k_m_mix_matches_cpu_reference) {
    synth_params p = small_quant("phi3", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    check_fixture_vs_reference(&p, 24, false);
}

/* Separate Q/K/V in a Q4_K_M mix: V is Q5_K beside Q4_K Q and K, so the GPU keeps
 * the three apart and writes them side by side into one output. */
TEST(phi2_separate_qkv_of_different_types_matches_cpu_reference) {
    synth_params p = small_quant("phi2", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    p.separate_qkv = true;
    p.n_rot = 32;
    check_fixture_vs_reference(&p, 24, false);
}

TEST(llama_q4_k_m_mix_with_separate_projections_matches_cpu_reference) {
    synth_params p = small_quant("llama", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    check_fixture_vs_reference(&p, 24, false);
}

/* The tuner picks per type (pvk_ops_tune): here Q4_K and Q5_K read int8 and Q6_K
 * (the head, some V and down projections) f32, so norms and activations whose
 * readers disagree write both forms. Needs the int8 path; the choices are put back
 * afterwards. */
TEST(phi2_and_llama_q4_k_m_mix_with_int8_for_some_types_and_f32_for_others) {
    pvk_ops *o = runtime()->ops;
    if (!pvk_ops_mm_default(o, PVK_Q4_K).int8) SKIP("no integer dot product on this device: nothing to mix");
    pvk_type ts[3] = {PVK_Q4_K, PVK_Q5_K, PVK_Q6_K};
    pvk_mm_choice saved[3];
    for (int i = 0; i < 3; i++) {
        saved[i] = pvk_ops_mm_choice(o, ts[i]);
        pvk_mm_choice c = saved[i];
        c.int8 = ts[i] != PVK_Q6_K;
        REQUIRE(pvk_ops_set_mm_choice(o, ts[i], c) == PHIVK_OK, "%s", pvk_errmsg());
    }
    uint64_t k_quants = 1ull << PVK_Q4_K | 1ull << PVK_Q5_K | 1ull << PVK_Q6_K;
    CHECK((gpu_int8_types(1) & k_quants) == (1ull << PVK_Q4_K | 1ull << PVK_Q5_K), "the mix is what the GPU reads");
    synth_params p = small_quant("phi2", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    p.separate_qkv = true;
    p.n_rot = 32;
    check_fixture_vs_reference(&p, 24, false);
    p = small_quant("llama", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    check_fixture_vs_reference(&p, 24, false);
    for (int i = 0; i < 3; i++) pvk_ops_set_mm_choice(o, ts[i], saved[i]);
}

TEST(phi3_q4_0_weights_match_cpu_reference) {
    synth_params p = small_quant("phi3", PVK_Q4_0, SYNTH_MIX_NONE);
    check_fixture_vs_reference(&p, 24, false);
}

TEST(phi3_q8_0_weights_match_cpu_reference) {
    synth_params p = small_quant("phi3", PVK_Q8_0, SYNTH_MIX_NONE);
    check_fixture_vs_reference(&p, 24, false);
}

/* Weights repacked at load (PHIVK_REPACK, the tuner's choice: here set by hand) give
 * the logits of GGUF's layout bit for bit, prompt and decode: the kernels do the same
 * arithmetic in the same order, only their fetches differ, so the bound is 0. The
 * choices are put back afterwards. */
TEST(q4_0_and_q8_0_repacked_at_load_give_the_logits_of_ggufs_layout_bit_for_bit) {
    if (getenv("PHIVK_REPACK")) SKIP("PHIVK_REPACK is set: both loads would take its layout");
    pvk_ops *o = runtime()->ops;
    struct { const char *arch; pvk_type t; } cases[] = {{"phi3", PVK_Q4_0}, {"phi2", PVK_Q8_0}};
    int compared = 0;
    for (int i = 0; i < 2; i++) {
        pvk_type t = cases[i].t;
        pvk_mm_choice saved = pvk_ops_mm_choice(o, t), c = saved;
        synth_params p = small_quant(cases[i].arch, t, SYNTH_MIX_NONE);
        fixture fx[2];
        float *logits[2][2] = {{NULL, NULL}, {NULL, NULL}};   /* [layout][prompt, decode] */
        enum { N = 8 };
        int32_t ids[N];
        phivk_session_params sp = phivk_session_default_params();
        sp.ctx = 32;
        int nv = 0;
        for (int rp = 0; rp < 2; rp++) {
            c.repack = rp;
            REQUIRE(pvk_ops_set_mm_choice(o, t, c) == PHIVK_OK, "%s", pvk_errmsg());
            REQUIRE(fixture_open(&fx[rp], &p), "fixture %s", cases[i].arch);
            CHECK(pvk_ops_repacks(o, t) == (bool)rp, "%s loaded repacked %d", pvk_type_get(t)->name, rp);
            /* The choice as phivk bench reports it ("matrix kernels"). */
            char *text = phivk_model_kernels_text(fx[rp].gpu);
            CHECK(text && (strstr(text, " repacked") != NULL) == (bool)rp, "kernels text: %s", text ? text : "");
            if (rp) printf("    %s\n", text ? text : "");
            free(text);
            nv = phivk_model_n_vocab(fx[rp].gpu);
            fixture_ids(ids, N, nv, 21);
            logits[rp][0] = gpu_logits(fx[rp].gpu, &sp, ids, N);
            phivk_session *s = phivk_session_create(fx[rp].gpu, &sp);
            logits[rp][1] = malloc(sizeof(float) * N * (size_t)nv);
            bool run = s && logits[rp][1];
            for (int j = 0; run && j < N; j++)
                run = phivk_decode(s, ids + j, 1, logits[rp][1] + (size_t)j * nv, false) == PHIVK_OK;
            CHECK(run, "decode: %s", phivk_last_error());
            phivk_session_free(s);
        }
        pvk_ops_set_mm_choice(o, t, saved);
        for (int k = 0; k < 2; k++) {
            bool same = logits[0][k] && logits[1][k] &&
                        memcmp(logits[0][k], logits[1][k], sizeof(float) * N * (size_t)nv) == 0;
            CHECK(same, "%s %s: repacked logits differ from GGUF's layout", pvk_type_get(t)->name,
                  k ? "decode" : "prompt");
            compared += same;
        }
        for (int rp = 0; rp < 2; rp++) {
            free(logits[rp][0]);
            free(logits[rp][1]);
            fixture_close(&fx[rp]);
        }
    }
    CHECK(compared == 4, "%d logit sets compared", compared);
}

/* Greedy generation on the GPU equals the CPU reference's for `steps` steps. Where
 * the GPU's pick trails the reference's best by less than the numeric bound (a
 * genuine tie that rounding may break either way), both go on with the reference's
 * token, so every step is compared; ties stay rare (at most one in 16 steps), or
 * the bound would be hiding a wrong pick. */
static void check_greedy(const synth_params *p, int steps_wanted) {
    fixture fx;
    bool ok = fixture_open(&fx, p);
    REQUIRE(ok, "fixture");
    int nv = phivk_model_n_vocab(fx.gpu);
    float *lg = malloc(sizeof *lg * nv), *lr = malloc(sizeof *lr * nv);
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 128;
    phivk_session *s = phivk_session_create(fx.gpu, &sp);
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 128;
    rp.int8_types = gpu_int8_types(1);
    rp.kv_f16 = true;
    ref_state *rs = NULL;
    CHECK(ref_state_create(fx.ref, &rp, &rs) == PHIVK_OK, "ref state: %s", pvk_errmsg());
    REQUIRE(s && rs, "sessions: %s", phivk_last_error());
    int32_t prompt[4] = {1, 50, 60, 70};
    bool run_ok = phivk_decode(s, prompt, 4, lg, false) == PHIVK_OK &&
                  ref_forward(rs, prompt, 4, lr, false) == PHIVK_OK;
    int steps = 0, ties = 0;
    while (run_ok && steps < steps_wanted) {
        int32_t tg = vec_argmax(lg, nv), tr = vec_argmax(lr, nv);
        steps++;
        if (tg != tr) {
            double gap = lr[tr] - lr[tg], bound = logit_bound(lr, nv);
            CHECK(gap < bound, "step %d: GPU picked %d, the reference %d, which leads it by %g there (bound %g)",
                  steps, tg, tr, gap, bound);
            if (gap >= bound) break;
            ties++;
        }
        if (steps < steps_wanted)
            run_ok = phivk_decode(s, &tr, 1, lg, false) == PHIVK_OK &&
                     ref_forward(rs, &tr, 1, lr, false) == PHIVK_OK;
    }
    CHECK(run_ok, "decode failed at step %d: %s", steps, pvk_errmsg());
    printf("    %s: %d of %d greedy steps compared, %d of them ties\n", p->arch, steps, steps_wanted, ties);
    CHECK(steps == steps_wanted, "compared %d greedy steps, want %d", steps, steps_wanted);
    CHECK(ties * 16 <= steps_wanted, "%d ties in %d steps", ties, steps_wanted);
    ref_state_destroy(rs);
    phivk_session_free(s);
    free(lg);
    free(lr);
    fixture_close(&fx);
}

TEST(phi3_greedy_generation_equals_cpu_reference_for_64_steps) {
    synth_params p = small("phi3");
    p.n_head_kv = 2;
    check_greedy(&p, 64);
}

/* Decode (one query row per head, split-K) over block-sparse layers. */
TEST(phi3small_greedy_generation_equals_cpu_reference_for_64_steps) {
    synth_params p = small_phi3small();
    check_greedy(&p, 64);
}

TEST(llama_greedy_generation_equals_cpu_reference_for_64_steps) {
    synth_params p = small("llama");
    p.tied_output = true;
    check_greedy(&p, 64);
}

/* Phi-2's shape: head_dim 80 with 32 rotated dims, fused QKV. */
TEST(phi2_head_dim_80_greedy_generation_equals_cpu_reference_for_64_steps) {
    synth_params p = small("phi2");
    p.n_embd = 160;
    p.n_head = 2;
    p.n_rot = 32;
    check_greedy(&p, 64);
}

/* Prefill (matrix-matrix kernels, tiled attention) and one-token decode
 * (matrix-vector, split-K attention) are different kernels computing the same
 * math; fp32 both, so they agree to summation-order rounding. */
TEST(prefill_then_decode_equals_token_by_token) {
    synth_params p = small("llama");
    p.n_head_kv = 2;
    fixture fx;
    bool ok = fixture_open(&fx, &p);
    REQUIRE(ok, "fixture");
    int nv = phivk_model_n_vocab(fx.gpu), n = 20;
    int32_t ids[20];
    fixture_ids(ids, n, nv, 3);
    float *a = malloc(sizeof *a * nv), *b = malloc(sizeof *b * nv);
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 64;
    phivk_session *s1 = phivk_session_create(fx.gpu, &sp), *s2 = phivk_session_create(fx.gpu, &sp);
    REQUIRE(s1 && s2, "sessions: %s", phivk_last_error());
    CHECK(phivk_decode(s1, ids, n - 1, NULL, false) == PHIVK_OK, "prefill");
    CHECK(phivk_decode(s1, ids + n - 1, 1, a, false) == PHIVK_OK, "decode after prefill");
    for (int i = 0; i < n; i++) CHECK(phivk_decode(s2, ids + i, 1, b, false) == PHIVK_OK, "decode %d", i);
    double worst = 0;
    for (int v = 0; v < nv; v++) worst = fmax(worst, fabs(a[v] - b[v]));
    CHECK(worst <= 1e-3 * fmax(1, fabs(a[vec_argmax(a, nv)])), "prefill vs token-by-token: %g", worst);
    CHECK(phivk_session_pos(s1) == n && phivk_session_pos(s2) == n, "positions");
    phivk_session_free(s1);
    phivk_session_free(s2);
    free(a);
    free(b);
    fixture_close(&fx);
}

/* Two sessions of one model hold separate caches: interleaving their decodes
 * gives each the logits it gets alone (bit for bit: same kernels, same inputs). */
TEST(two_sessions_on_one_model_do_not_interfere) {
    synth_params p = small("phi3");
    fixture fx;
    bool ok = fixture_open(&fx, &p);
    REQUIRE(ok, "fixture");
    int nv = phivk_model_n_vocab(fx.gpu);
    int32_t a_ids[6] = {1, 10, 11, 12, 13, 14}, b_ids[6] = {1, 200, 201, 202, 203, 204};
    float *alone = malloc(sizeof *alone * nv), *mixed = malloc(sizeof *mixed * nv);
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 32;
    phivk_session *a = phivk_session_create(fx.gpu, &sp), *b = phivk_session_create(fx.gpu, &sp);
    REQUIRE(a && b, "sessions");
    bool run_ok = true;
    for (int i = 0; run_ok && i < 6; i++) run_ok = phivk_decode(a, a_ids + i, 1, alone, false) == PHIVK_OK;
    run_ok = run_ok && phivk_session_truncate(a, 0) == PHIVK_OK;
    for (int i = 0; run_ok && i < 6; i++)
        run_ok = phivk_decode(a, a_ids + i, 1, mixed, false) == PHIVK_OK &&
                 phivk_decode(b, b_ids + i, 1, NULL, false) == PHIVK_OK;
    CHECK(run_ok, "decode: %s", phivk_last_error());
    CHECK(run_ok && phivk_session_pos(a) == 6 && phivk_session_pos(b) == 6, "both sessions at position 6");
    CHECK(run_ok && memcmp(alone, mixed, sizeof *alone * nv) == 0, "session a's logits changed when b ran");
    phivk_session_free(a);
    phivk_session_free(b);
    free(alone);
    free(mixed);
    fixture_close(&fx);
}

/* Decode token by token (m 1: where the projections may make their int8 input in
 * their prologue, PHIVK_FUSION) against the CPU reference's logits at every position,
 * within the int8 bound of check_fixture_vs_reference; the suite runs this with
 * PHIVK_FUSION=act and =all too. */
static void check_decode_vs_reference(const synth_params *p, int n) {
    fixture fx;
    bool ok = fixture_open(&fx, p);
    REQUIRE(ok, "fixture for %s", p->arch);
    int nv = phivk_model_n_vocab(fx.gpu);
    int32_t *ids = malloc(sizeof *ids * n);
    float *want = malloc(sizeof *want * (size_t)n * nv), *got = malloc(sizeof *got * (size_t)n * nv);
    fixture_ids(ids, n, nv, 11);
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 64;
    rp.int8_types = gpu_int8_types(1);
    rp.kv_f16 = true;
    ref_state *rs = NULL;
    CHECK(ref_state_create(fx.ref, &rp, &rs) == PHIVK_OK, "ref state: %s", pvk_errmsg());
    CHECK(rs && ref_forward(rs, ids, n, want, true) == PHIVK_OK, "ref forward: %s", pvk_errmsg());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 64;
    phivk_session *s = phivk_session_create(fx.gpu, &sp);
    REQUIRE(s, "session: %s", phivk_last_error());
    bool run = true;
    for (int i = 0; run && i < n; i++) run = phivk_decode(s, ids + i, 1, got + (size_t)i * nv, false) == PHIVK_OK;
    CHECK(run, "decode: %s", phivk_last_error());
    if (run && rs) {
        double bound = 10 * logit_bound(want, (size_t)n * nv), worst = 0;   /* int8_flip_allowance */
        for (size_t i = 0; i < (size_t)n * nv; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        printf("    %s decode (%u dispatches a token): max abs diff %.3g (bound %.3g)\n", p->arch,
               phivk_session_last_step(s).dispatches, worst, bound);
        CHECK(worst <= bound, "decode vs CPU reference: max abs diff %g > %g", worst, bound);
    }
    phivk_session_free(s);
    ref_state_destroy(rs);
    free(ids);
    free(want);
    free(got);
    fixture_close(&fx);
}

TEST(quantized_decode_token_by_token_matches_cpu_reference) {
    synth_params p = small_quant("phi3", PVK_Q4_0, SYNTH_MIX_NONE);
    check_decode_vs_reference(&p, 12);
    p = small_quant("llama", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    check_decode_vs_reference(&p, 12);
    p = small_quant("phi2", PVK_Q8_0, SYNTH_MIX_NONE);
    check_decode_vs_reference(&p, 12);
}

/* Barriers from dependencies (the default) against one after every dispatch
 * (PHIVK_BARRIERS=all, read when a session makes its command buffer): the same
 * kernels in the same order, so the logits are identical bit for bit (the
 * validation layer's synchronization checks fail the case on a missing barrier),
 * and a decode token records fewer barriers. Prefill, then decode steps; int8
 * weights (phi3 Q4_0), a parallel block with separate Q/K/V (phi2), separate
 * projections (llama Q4_K_M). */
static void check_barrier_modes(const synth_params *p) {
    fixture fx;
    bool ok = fixture_open(&fx, p);
    REQUIRE(ok, "fixture for %s", p->arch);
    int nv = phivk_model_n_vocab(fx.gpu), n = 12, prompt = 8;
    int32_t ids[12];
    fixture_ids(ids, n, nv, 5);
    float *logits[2] = {malloc(sizeof(float) * (size_t)(n - prompt + 1) * nv),
                        malloc(sizeof(float) * (size_t)(n - prompt + 1) * nv)};
    uint32_t barriers[2] = {0, 0}, dispatches[2] = {0, 0};
    const char *env = getenv("PHIVK_BARRIERS");
    char *was = env ? strdup(env) : NULL;   /* the suite also runs under =all */
    for (int mode = 0; mode < 2; mode++) {
        phivk_session_params sp = phivk_session_default_params();
        sp.ctx = 64;
        setenv("PHIVK_BARRIERS", mode ? "all" : "deps", 1);
        phivk_session *s = phivk_session_create(fx.gpu, &sp);
        if (was) setenv("PHIVK_BARRIERS", was, 1);
        else unsetenv("PHIVK_BARRIERS");
        REQUIRE(s, "session: %s", phivk_last_error());
        bool run = phivk_decode(s, ids, prompt, logits[mode], false) == PHIVK_OK;
        for (int i = prompt; run && i < n; i++) {
            run = phivk_decode(s, ids + i, 1, logits[mode] + (size_t)(i - prompt + 1) * nv, false) == PHIVK_OK;
            phivk_step_stats st = phivk_session_last_step(s);
            CHECK(st.tokens == 1 && st.dispatches > 0, "step counters: %d tokens, %u dispatches", st.tokens,
                  st.dispatches);
            barriers[mode] = st.barriers;
            dispatches[mode] = st.dispatches;
        }
        CHECK(run, "decode: %s", phivk_last_error());
        phivk_session_free(s);
    }
    free(was);
    printf("    %s: per decode token %u dispatches, %u barriers from dependencies, %u with PHIVK_BARRIERS=all\n",
           p->arch, dispatches[0], barriers[0], barriers[1]);
    CHECK(dispatches[0] == dispatches[1], "the same dispatches both ways");
    CHECK(barriers[0] < barriers[1], "fewer barriers from dependencies (%u) than after every dispatch (%u)",
          barriers[0], barriers[1]);
    CHECK(memcmp(logits[0], logits[1], sizeof(float) * (size_t)(n - prompt + 1) * nv) == 0,
          "the logits differ between the barrier modes");
    free(logits[0]);
    free(logits[1]);
    fixture_close(&fx);
}

TEST(barriers_from_dependencies_give_the_logits_of_a_barrier_after_every_dispatch) {
    synth_params p = small_quant("phi3", PVK_Q4_0, SYNTH_MIX_NONE);
    check_barrier_modes(&p);
    p = small("phi2");
    p.separate_qkv = true;
    p.n_rot = 16;
    check_barrier_modes(&p);
    p = small_quant("llama", PVK_Q4_K, SYNTH_MIX_Q4_K_M);
    check_barrier_modes(&p);
}

TEST(bad_tokens_and_a_full_context_are_refused_with_a_reason) {
    synth_params p = small("llama");
    fixture fx;
    bool ok = fixture_open(&fx, &p);
    REQUIRE(ok, "fixture");
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 8;
    phivk_session *s = phivk_session_create(fx.gpu, &sp);
    REQUIRE(s, "session");
    int32_t bad = 100000, ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(phivk_decode(s, &bad, 1, NULL, false) == PHIVK_ERR_INVALID, "out-of-vocabulary id");
    CHECK(strstr(phivk_last_error(), "100000"), "message names the id: %s", phivk_last_error());
    CHECK(phivk_decode(s, ids, 9, NULL, false) == PHIVK_ERR_CONTEXT_FULL, "9 tokens in a context of 8");
    CHECK(phivk_session_pos(s) == 0, "a refused call leaves the cache as it was");
    phivk_session_free(s);
    fixture_close(&fx);
}

