/* Model files whose hyperparameters would turn every logit into NaN or index
 * past a table are refused when the model is read (arch_hparams_read and
 * arch_weights_create, the first steps of phivk_model_load), and the message
 * names the GGUF key or tensor at fault. Each case patches one value of a valid
 * synthetic model, which is accepted as written (so a refusal is the patch's). */
#define HARNESS_MAIN
#include "harness.h"

#include "arch.h"
#include "gguf.h"
#include "synth.h"

static synth_params tiny(void) {
    synth_params p = synth_default_params(); /* phi3, F32 */
    p.n_vocab = 400;
    p.longrope = true;
    p.n_ctx = 8192;
    p.rope_orig_ctx = 4096;
    p.tied_output = true; /* token_embd.weight is the only tensor with a row per token */
    return p;
}

/* Reads the model the way phivk_model_load starts to; the status, message in pvk_errmsg(). */
static phivk_status read_model(const void *img, size_t n) {
    pvk_fail(PHIVK_OK, "%s", ""); /* a message left by an earlier case cannot pass for this one */
    gguf_file *f;
    phivk_status st = gguf_open_memory(img, n, &f);
    if (st) return st;
    arch_hparams hp;
    arch_weights *w = NULL;
    if (!(st = arch_hparams_read(f, "fixture", &hp))) st = arch_weights_create(f, &hp, "fixture", &w);
    arch_weights_destroy(w);
    gguf_close(f);
    return st;
}

static uint8_t *build(const synth_params *p, size_t *n) {
    void *img = NULL;
    if (synth_build(p, &img, n) != PHIVK_OK) return NULL;
    if (read_model(img, *n) != PHIVK_OK) {
        printf("    the unpatched fixture is refused: %s\n", pvk_errmsg());
        free(img);
        return NULL;
    }
    return img;
}

static void expect_refused(const void *img, size_t n, const char *what, const char *named) {
    phivk_status st = read_model(img, n);
    CHECK(st == PHIVK_ERR_BAD_FILE, "%s: status %d, want a bad-file refusal ('%s')", what, st, pvk_errmsg());
    CHECK(strstr(pvk_errmsg(), named), "%s: the message names '%s': '%s'", what, named, pvk_errmsg());
    printf("    %-36s %s\n", what, pvk_errmsg());
}

/* Where the value of a scalar key starts: after its length, name and type. */
static uint8_t *key_value(uint8_t *img, size_t n, const char *key) {
    uint8_t pat[128];
    uint64_t len = strlen(key);
    memcpy(pat, &len, 8); /* GGUF is little-endian, as is every host phivk runs on */
    memcpy(pat + 8, key, len);
    uint8_t *at = memmem(img, n, pat, 8 + len);
    return at ? at + 8 + len + 4 : NULL;
}

/* The first float of a tensor's data inside the image. */
static float *tensor_floats(uint8_t *img, size_t n, const char *name) {
    gguf_file *f;
    if (gguf_open_memory(img, n, &f) != PHIVK_OK) return NULL;
    const gguf_tensor *t = gguf_find_tensor(f, name);
    float *at = t ? (float *)(img + ((const uint8_t *)t->data - img)) : NULL;
    gguf_close(f);
    return at;
}

TEST(rope_freq_base_of_1_or_less_is_refused_naming_the_key) {
    /* The angle of dimension i is pos * base^(-2i/d): a base below 1 makes it grow
     * with i, and 1e-38 overflows to inf (sin(inf) = NaN) at once; at 1 every
     * dimension turns alike. */
    static const float bases[] = {1e-38f, 0.5f, 1.0f};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        synth_params p = tiny();
        p.rope_base = bases[i];
        void *img = NULL;
        size_t n;
        REQUIRE(synth_build(&p, &img, &n) == PHIVK_OK, "build: %s", pvk_errmsg());
        char what[64];
        snprintf(what, sizeof what, "rope.freq_base = %g", (double)bases[i]);
        expect_refused(img, n, what, "phi3.rope.freq_base");
        free(img);
    }
}

TEST(norm_epsilon_nan_or_inf_is_refused_naming_the_key) {
    synth_params p = tiny();
    size_t n;
    uint8_t *img = build(&p, &n);
    REQUIRE(img, "fixture");
    uint8_t *v = key_value(img, n, "phi3.attention.layer_norm_rms_epsilon");
    REQUIRE(v, "the key is in the image");
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(v, &bad[i], 4);
        char what[64];
        snprintf(what, sizeof what, "norm epsilon %g", (double)bad[i]);
        expect_refused(img, n, what, "phi3.attention.layer_norm_rms_epsilon");
    }
    free(img);
}

TEST(longrope_factors_zero_negative_or_not_finite_are_refused_naming_the_tensor) {
    /* RoPE divides each angle by its factor: 0 gives inf, and so does a factor so
     * small that the last position of the largest context overflows. */
    static const float bad[] = {0.0f, -1.0f, NAN, INFINITY, 1e-38f};
    static const char *const tables[] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    synth_params p = tiny();
    size_t n;
    uint8_t *img = build(&p, &n);
    REQUIRE(img, "fixture");
    for (int t = 0; t < 2; t++) {
        float *f = tensor_floats(img, n, tables[t]);
        REQUIRE(f, "%s is in the image", tables[t]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            float keep = f[3];
            f[3] = bad[i];
            char what[64];
            snprintf(what, sizeof what, "%s[3] = %g", tables[t], (double)bad[i]);
            expect_refused(img, n, what, tables[t]);
            f[3] = keep;
        }
    }
    CHECK(read_model(img, n) == PHIVK_OK, "restored factors are accepted again: %s", pvk_errmsg());
    free(img);
}

TEST(a_vocabulary_that_differs_from_the_embedding_rows_is_refused_naming_both) {
    synth_params p = tiny();
    size_t n;
    uint8_t *img = build(&p, &n);
    REQUIRE(img, "fixture");
    /* token_embd.weight's tensor info: name, n_dims (u32), ne0, ne1 (u64 each).
     * One row fewer still lies inside the file, so only the count is wrong: the
     * tokenizer would hand out id 399 for a table of 399 rows. */
    uint8_t *info = key_value(img, n, "token_embd.weight");
    REQUIRE(info, "the tensor info is in the image");
    uint64_t rows;
    memcpy(&rows, info + 8, 8);
    REQUIRE(rows == 400, "token_embd.weight has %llu rows, want 400", (unsigned long long)rows);
    rows--;
    memcpy(info + 8, &rows, 8);
    expect_refused(img, n, "399 embedding rows, 400 tokens", "tokenizer.ggml.tokens");
    CHECK(strstr(pvk_errmsg(), "token_embd.weight"), "the message names the tensor too: %s", pvk_errmsg());
    free(img);
}

/* Phi-3-small's own keys and its biases: a scale that is not a positive number, a
 * block-sparse stride or block of 0, and a missing norm bias are refused by name. */
TEST(phi3small_bad_scales_sparse_pattern_and_missing_bias_are_refused_naming_them) {
    synth_params p = synth_default_params();
    p.arch = "phi3small";
    p.n_vocab = 400;
    p.n_head_kv = 2;
    p.tied_output = true;
    size_t n;
    uint8_t *img = build(&p, &n);
    REQUIRE(img, "fixture");
    static const struct { const char *key; float bad; } floats[] = {
        {"phi3small.embedding_scale", NAN}, {"phi3small.attention.scale", 0.0f}, {"phi3small.logit_divisor", -8.0f},
        {"phi3small.gegelu_limit", INFINITY},
    };
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++) {
        uint8_t *v = key_value(img, n, floats[i].key);
        REQUIRE(v, "%s is in the image", floats[i].key);
        float keep;
        memcpy(&keep, v, 4);
        memcpy(v, &floats[i].bad, 4);
        expect_refused(img, n, floats[i].key, floats[i].key);
        memcpy(v, &keep, 4);
    }
    static const char *const ints[] = {"phi3small.attention.blocksparse.block_size",
                                       "phi3small.attention.blocksparse.vert_stride",
                                       "phi3small.attention.blocksparse.local_blocks"};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        uint8_t *v = key_value(img, n, ints[i]);
        REQUIRE(v, "%s is in the image", ints[i]);
        uint32_t keep, zero = 0;
        memcpy(&keep, v, 4);
        memcpy(v, &zero, 4);
        expect_refused(img, n, ints[i], ints[i]);
        memcpy(v, &keep, 4);
    }
    free(img);
    p.skip_tensor = "blk.1.ffn_norm.bias";
    void *bad = NULL;
    REQUIRE(synth_build(&p, &bad, &n) == PHIVK_OK, "build: %s", pvk_errmsg());
    expect_refused(bad, n, "no ffn_norm bias", "blk.1.ffn_norm.bias");
    free(bad);
}
