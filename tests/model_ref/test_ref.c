/* The CPU reference against logits another engine (llama.cpp) computed for the
 * models in tests/data/reference, and the reference's own invariants. */
#define HARNESS_MAIN
#include "harness.h"
#include "testdata.h"

#include <stdint.h>

#include "arch.h"
#include "gguf.h"
#include "ref.h"


/* Runs model on ids (one prefill, every position's logits) and compares with the
 * expected file: the largest |diff| over all positions must be <= tol and the
 * argmax must agree on at least min_top1 positions. */
static void check_reference(const char *model, const char *ids_file, const char *logits_file,
                            phivk_rope_factors rope, double tol, int min_top1) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/%s", model);
    snprintf(path, sizeof path, "%s", testdata_path(rel)); /* the helper's buffer is reused */
    int32_t ids[256];
    const int n = testdata_ids(ids_file, ids, 256);
    REQUIRE(n > 0, "cannot read %s under %s", ids_file, testdata_path(""));
    gguf_file *f = NULL;
    REQUIRE(gguf_open(path, &f) == PHIVK_OK, "gguf_open %s: %s", path, pvk_errmsg());
    ref_model *m = NULL;
    ref_state *s = NULL;
    float *want = NULL, *got = NULL;
    if (ref_model_create(f, model, &m) != PHIVK_OK) {
        CHECK(0, "ref_model_create: %s", pvk_errmsg());
        goto done;
    }
    const int V = ref_model_hparams(m)->n_vocab;
    ref_state_params sp = ref_state_default_params();
    sp.n_ctx = 256;
    sp.rope_factors = rope;
    want = testdata_logits(logits_file, (size_t)n * V);
    got = malloc((size_t)n * V * sizeof *got);
    if (!want || !got || ref_state_create(m, &sp, &s) != PHIVK_OK) {
        CHECK(0, "setup failed for %s: %s", model, pvk_errmsg());
        goto done;
    }
    phivk_status st = ref_forward(s, ids, n, got, true);
    CHECK(st == PHIVK_OK, "ref_forward: %s", pvk_errmsg());
    if (st == PHIVK_OK) {
        double maxd;
        int top1;
        testdata_compare(got, want, n, V, &maxd, &top1);
        printf("    %s (%s): max abs diff %.3g over %d positions, top-1 %d/%d\n", model,
               logits_file, maxd, n, top1, n);
        CHECK(maxd <= tol, "%s: max abs diff %g > %g (README tolerance)", model, maxd, tol);
        CHECK(top1 >= min_top1, "%s: top-1 agrees on %d/%d positions, want >= %d", model, top1, n,
              min_top1);
    }
done:
    free(want);
    free(got);
    ref_state_destroy(s);
    ref_model_destroy(m);
    gguf_close(f);
}

/* Tolerances are the README's: llama.cpp's F16 KV cache and CPU GELU table bound
 * the float models to 5e-3 (3e-2 for the large-logit llama file); the Q4_0 file's
 * logits come from the Vulkan backend (0.15, top-1 on 60 of 64). */
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

TEST(reference_phi3_128k_auto_uses_short_factors_for_32_tokens) {
    check_reference("phi3-128k.gguf", "ids32.txt", "phi3-128k.short.logits", PHIVK_ROPE_AUTO, 5e-3,
                    32);
}

TEST(reference_phi3_128k_long_mode_matches_long_factors) {
    check_reference("phi3-128k.gguf", "ids32.txt", "phi3-128k.long.logits", PHIVK_ROPE_LONG, 5e-3,
                    32);
}

TEST(reference_phi3_q4_0_matches_llama_cpp_vulkan) {
    check_reference("phi3-q4_0.gguf", "ids64.txt", "phi3-q4_0.logits", PHIVK_ROPE_AUTO, 0.15, 60);
}

/* The two LongRoPE tables must give different logits, or the two tests above could
 * not tell a wrong table choice from a right one. */
TEST(reference_phi3_128k_short_and_long_differ) {
    float *s = testdata_logits("phi3-128k.short.logits", 32 * 512);
    float *l = testdata_logits("phi3-128k.long.logits", 32 * 512);
    REQUIRE(s && l, "cannot read the phi3-128k logits under %s", testdata_path(""));
    double maxd = 0;
    for (int i = 0; i < 32 * 512; i++) maxd = fmax(maxd, fabs((double)s[i] - l[i]));
    CHECK(maxd > 0.05, "short and long logits differ by only %g", maxd);
    free(s);
    free(l);
}
