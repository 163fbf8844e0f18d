/* Synthetic models: every architecture and weight type loads into the reference and
 * gives finite logits, incremental decoding equals one prefill, the LongRoPE and
 * sliding-window choices behave as phi-spec "choices" 1-2 say, and incomplete or
 * foreign files are rejected with the named error. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdint.h>

#include "arch.h"
#include "phivk.h"
#include "gguf.h"
#include "ref.h"
#include "synth.h"

/* A built model and its reference, torn down by model_free. */
typedef struct model {
    void *data;
    gguf_file *f;
    ref_model *m;
} model;

static void model_free(model *x) {
    ref_model_destroy(x->m);
    gguf_close(x->f);
    free(x->data);
}

static phivk_status model_build(const synth_params *p, model *x) {
    size_t size;
    memset(x, 0, sizeof *x);
    phivk_status st = synth_build(p, &x->data, &size);
    if (!st) st = gguf_open_memory(x->data, size, &x->f);
    if (!st) st = ref_model_create(x->f, "synthetic.gguf", &x->m);
    return st;
}

static synth_params small(const char *arch) {
    synth_params p = synth_default_params();
    p.arch = arch;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = strcmp(arch, "phi2") ? 2 : 4; /* GQA where the architecture has it */
    p.n_ff = 96;
    p.n_vocab = 400;
    p.n_ctx = 64;
    p.n_layer = 2;
    return p;
}

static int32_t ids[24] = {1, 300, 17, 42, 399, 5, 250, 123, 77, 301, 2, 9,
                          64, 65, 66, 190, 311, 8, 350, 31, 3, 100, 200, 399};

/* Runs ids[0..n) as one prefill (all logits) and token by token; the logits of
 * every position must agree (both are fp32 with double reductions, the only
 * difference is the order of the batch loop, so 1e-4 is generous). */
static void check_incremental(const synth_params *p, int n) {
    model x;
    ref_state *a = NULL, *b = NULL;
    phivk_status st = model_build(p, &x);
    const int V = p->n_vocab;
    float *all = malloc((size_t)n * V * sizeof *all), *one = malloc((size_t)V * sizeof *one);
    ref_state_params sp = ref_state_default_params();
    if (!st) st = ref_state_create(x.m, &sp, &a);
    if (!st) st = ref_state_create(x.m, &sp, &b);
    if (!st) st = ref_forward(a, ids, n, all, true);
    CHECK(st == PHIVK_OK, "%s: %s", p->arch, pvk_errmsg());
    double maxd = 0;
    bool finite = true;
    for (int i = 0; i < n && !st; i++) {
        st = ref_forward(b, ids + i, 1, one, false);
        for (int j = 0; j < V; j++) {
            finite = finite && isfinite(all[(size_t)i * V + j]);
            maxd = fmax(maxd, fabs((double)one[j] - all[(size_t)i * V + j]));
        }
    }
    CHECK(st == PHIVK_OK, "%s decode: %s", p->arch, pvk_errmsg());
    CHECK(finite, "%s: non-finite logits", p->arch);
    CHECK(maxd <= 1e-4, "%s (%s): incremental vs prefill differ by %g", p->arch,
          pvk_type_get(p->wtype)->name, maxd);
    if (!st) CHECK(ref_state_pos(b) == n, "position %d after %d tokens", ref_state_pos(b), n);
    free(all);
    free(one);
    ref_state_destroy(a);
    ref_state_destroy(b);
    model_free(&x);
}

TEST(synth_phi3_incremental_decode_equals_prefill) {
    synth_params p = small("phi3");
    check_incremental(&p, 20);
}
TEST(synth_llama_incremental_decode_equals_prefill) {
    synth_params p = small("llama");
    check_incremental(&p, 20);
}
TEST(synth_phi2_incremental_decode_equals_prefill) {
    synth_params p = small("phi2");
    check_incremental(&p, 20);
}

TEST(synth_phi2_separate_qkv_and_llama_tied_run) {
    synth_params p = small("phi2");
    p.separate_qkv = true;
    check_incremental(&p, 6);
    p = small("llama");
    p.tied_output = true;
    check_incremental(&p, 6);
}

/* Each weight type the fixtures use, at widths where K-quants apply (256) and where
 * they must fall back (64 columns). */
TEST(synth_every_weight_type_runs_with_finite_logits) {
    static const pvk_type types[] = {PVK_F32, PVK_F16, PVK_BF16, PVK_Q8_0, PVK_Q4_0, PVK_Q4_1,
                                     PVK_Q5_0, PVK_Q5_1, PVK_Q4_K, PVK_Q5_K, PVK_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        synth_params p = small(i % 3 == 0 ? "phi2" : i % 3 == 1 ? "phi3" : "llama");
        p.n_embd = 256;
        p.n_ff = 256;
        p.wtype = types[i];
        check_incremental(&p, 4);
    }
    synth_params p = small("phi3");
    p.mix = SYNTH_MIX_Q4_K_M;
    check_incremental(&p, 4);
}

TEST(synth_q4_k_m_mix_types_and_fallbacks) {
    synth_params p = small("phi3");
    p.n_embd = 256;
    p.n_ff = 320; /* ffn_down has 320 columns: K-quants fall back */
    p.n_layer = 8;
    p.mix = SYNTH_MIX_Q4_K_M;
    model x;
    REQUIRE(model_build(&p, &x) == PHIVK_OK, "%s", pvk_errmsg());
    const arch_weights *w = ref_model_weights(x.m);
    CHECK(w->layers[0].attn_qkv->type == PVK_Q5_K, "qkv is %d", w->layers[0].attn_qkv->type);
    CHECK(w->output->type == PVK_Q6_K, "output is %d", w->output->type);
    CHECK(w->layers[0].ffn_up->type == PVK_Q4_K, "ffn_up is %d", w->layers[0].ffn_up->type);
    CHECK(w->layers[0].ffn_down->type == PVK_Q8_0, "more-bits ffn_down falls back Q6_K->Q8_0");
    CHECK(w->layers[1].ffn_down->type == PVK_Q5_0, "ffn_down falls back Q4_K->Q5_0");
    CHECK(synth_legal_type(PVK_Q4_0, 48) == PVK_F16, "48 columns cannot hold 32-blocks");
    model_free(&x);
}

/* repeat_weights (phivk bench) must keep every tensor's name, type, shape and size;
 * layers share bytes per role and type, matrices repeat their first rows, and
 * synth_tensor_bytes predicts the data size without building. */
TEST(synth_repeat_weights_keeps_shapes_types_and_size) {
    synth_params p = small("phi3");
    p.n_embd = 256;
    p.n_ff = 320;
    p.n_layer = 8;
    p.mix = SYNTH_MIX_Q4_K_M;
    model a, b;
    REQUIRE(model_build(&p, &a) == PHIVK_OK, "%s", pvk_errmsg());
    p.repeat_weights = true;
    REQUIRE(model_build(&p, &b) == PHIVK_OK, "%s", pvk_errmsg());
    REQUIRE(gguf_tensor_count(a.f) == gguf_tensor_count(b.f), "tensor counts differ");
    uint64_t sum = 0, predicted = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(a.f); i++) {
        const gguf_tensor *x = gguf_tensor_at(a.f, i), *y = gguf_tensor_at(b.f, i);
        CHECK(!strcmp(x->name, y->name) && x->type == y->type && x->bytes == y->bytes &&
                  !memcmp(x->ne, y->ne, sizeof x->ne),
              "%s differs under repeat_weights", x->name);
        sum += y->bytes;
    }
    CHECK(synth_tensor_bytes(&p, &predicted) == PHIVK_OK && predicted == sum,
          "predicted %llu bytes, built %llu", (unsigned long long)predicted, (unsigned long long)sum);
    const arch_weights *w = ref_model_weights(b.m);
    CHECK(!memcmp(w->layers[1].ffn_up->data, w->layers[6].ffn_up->data, w->layers[1].ffn_up->bytes),
          "layers share ffn_up bytes");
    CHECK(w->layers[0].ffn_down->type != w->layers[1].ffn_down->type,
          "the mix still gives ffn_down two types");
    const size_t row = pvk_type_row_bytes(w->token_embd->type, p.n_embd);
    const uint8_t *e = w->token_embd->data;
    CHECK(!memcmp(e, e + SYNTH_REPEAT_ROWS * row, row), "embedding rows repeat");
    CHECK(memcmp(e, e + row, row), "the first rows differ");
    model_free(&a);
    model_free(&b);
    check_incremental(&p, 4);
}

TEST(synth_is_deterministic_and_seeded) {
    synth_params p = small("phi3");
    void *a, *b, *c;
    size_t na, nb, nc;
    REQUIRE(synth_build(&p, &a, &na) == PHIVK_OK, "%s", pvk_errmsg());
    REQUIRE(synth_build(&p, &b, &nb) == PHIVK_OK, "%s", pvk_errmsg());
    p.seed = 2;
    REQUIRE(synth_build(&p, &c, &nc) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(na == nb && !memcmp(a, b, na), "same seed, different files");
    CHECK(na == nc && memcmp(a, c, na), "another seed must change the weights only");
    free(a);
    free(b);
    free(c);
}

TEST(synth_shapes_are_known_and_sized) {
    synth_params p;
    for (const char *const *n = synth_shape_names(); *n; n++)
        CHECK(synth_shape_by_name(*n, &p) == PHIVK_OK, "%s", *n);
    REQUIRE(synth_shape_by_name("phi3-mini", &p) == PHIVK_OK, "phi3-mini");
    /* phi-spec section 1: Phi-3-mini has 3.821B parameters, phi-2 2.780B */
    CHECK_NEAR(synth_param_count(&p) / 1e9, 3.821, 0.01, "published count");
    REQUIRE(synth_shape_by_name("phi2", &p) == PHIVK_OK, "phi2");
    CHECK_NEAR(synth_param_count(&p) / 1e9, 2.780, 0.01, "published count");
    REQUIRE(synth_shape_by_name("phi3-medium", &p) == PHIVK_OK, "phi3-medium");
    CHECK_NEAR(synth_param_count(&p) / 1e9, 13.96, 0.02, "published count");
    REQUIRE(synth_shape_by_name("150m", &p) == PHIVK_OK, "150m");
    CHECK(synth_param_count(&p) > 120000000 && synth_param_count(&p) < 180000000, "150m has %lld",
          (long long)synth_param_count(&p));
    CHECK(synth_shape_by_name("phi7", &p) == PHIVK_ERR_INVALID, "unknown shape accepted");
    CHECK(strstr(pvk_errmsg(), "phi3-mini") != NULL, "message lists the shapes: %s", pvk_errmsg());
}

TEST(synth_tiny_hparams_round_trip) {
    synth_params p = synth_default_params();
    p.longrope = true;
    p.n_ctx = 16384;
    p.rope_orig_ctx = 4096;
    p.sliding_window = 100;
    model x;
    REQUIRE(model_build(&p, &x) == PHIVK_OK, "%s", pvk_errmsg());
    const arch_hparams *hp = ref_model_hparams(x.m);
    CHECK(hp->arch == ARCH_PHI3 && hp->n_vocab == 512 && hp->n_embd == 64 && hp->n_layer == 2,
          "shape");
    CHECK(hp->fused_qkv && hp->fused_gate_up && hp->rope_neox && hp->norm == ARCH_NORM_RMS, "phi3");
    CHECK(hp->has_rope_factors && hp->rope_orig_ctx == 4096 && hp->sliding_window == 100, "rope");
    /* sqrt(1 + ln(16384/4096) / ln(4096)) */
    CHECK_NEAR(hp->rope_attn_factor, sqrt(1 + log(4.0) / log(4096.0)), 1e-6, "HF formula");
    CHECK(arch_rope_factors_choice(hp, PHIVK_ROPE_AUTO, 4096) == ARCH_ROPE_TABLE_SHORT,
          "exactly the original context is still short");
    CHECK(arch_rope_factors_choice(hp, PHIVK_ROPE_AUTO, 4097) == ARCH_ROPE_TABLE_LONG,
          "beyond: long");
    CHECK(arch_rope_factors_choice(hp, PHIVK_ROPE_SHORT, 9000) == ARCH_ROPE_TABLE_SHORT, "forced");
    CHECK(arch_rope_factors_choice(hp, PHIVK_ROPE_LONG, 1) == ARCH_ROPE_TABLE_LONG, "forced");
    CHECK(arch_key_visible(hp, false, 200, 101) && !arch_key_visible(hp, false, 200, 100),
          "window 100: q - k < 100 visible");
    CHECK(arch_key_visible(hp, true, 200, 0), "no_swa sees everything");
    model_free(&x);
}

/* AUTO switches to the long table when the sequence outgrows the original context
 * and recomputes the cache: the result equals a LONG run from the start, and the
 * prefix before the switch equals a SHORT run. */
TEST(ref_auto_rope_switches_tables_with_recompute) {
    synth_params p = small("phi3");
    p.longrope = true;
    p.n_ctx = 64;
    p.rope_orig_ctx = 8;
    model x;
    REQUIRE(model_build(&p, &x) == PHIVK_OK, "%s", pvk_errmsg());
    const int V = p.n_vocab;
    float *lg[3];
    ref_state *s[3] = {0};
    const phivk_rope_factors modes[3] = {PHIVK_ROPE_AUTO, PHIVK_ROPE_SHORT, PHIVK_ROPE_LONG};
    for (int i = 0; i < 3; i++) {
        ref_state_params sp = ref_state_default_params();
        sp.rope_factors = modes[i];
        lg[i] = malloc((size_t)12 * V * sizeof(float));
        REQUIRE(ref_state_create(x.m, &sp, &s[i]) == PHIVK_OK, "%s", pvk_errmsg());
        /* 8 tokens (still short for AUTO), then 4 one at a time */
        REQUIRE(ref_forward(s[i], ids, 8, lg[i], true) == PHIVK_OK, "%s", pvk_errmsg());
        for (int t = 8; t < 12; t++)
            REQUIRE(ref_forward(s[i], ids + t, 1, lg[i] + (size_t)t * V, false) == PHIVK_OK, "%s",
                    pvk_errmsg());
    }
    double d_short = 0, d_long = 0, d_tables = 0;
    for (int j = 0; j < 8 * V; j++) d_short = fmax(d_short, fabs(lg[0][j] - lg[1][j]));
    for (int j = 8 * V; j < 12 * V; j++) {
        d_long = fmax(d_long, fabs(lg[0][j] - lg[2][j]));
        d_tables = fmax(d_tables, fabs(lg[1][j] - lg[2][j]));
    }
    CHECK(d_short <= 1e-5, "AUTO within the original context must equal SHORT (%g)", d_short);
    CHECK(d_long <= 1e-4, "AUTO past it must equal a LONG run from the start (%g)", d_long);
    CHECK(d_tables > 1e-3, "the tables must matter for this test to mean anything (%g)", d_tables);
    for (int i = 0; i < 3; i++) {
        ref_state_destroy(s[i]);
        free(lg[i]);
    }
    model_free(&x);
}

/* With a window of 4, position 10 must not depend on token 0..6; with no_swa it must. */
TEST(ref_sliding_window_hides_old_keys_unless_no_swa) {
    synth_params p = small("phi3");
    p.sliding_window = 4;
    model x;
    REQUIRE(model_build(&p, &x) == PHIVK_OK, "%s", pvk_errmsg());
    const int V = p.n_vocab;
    float *a = malloc(V * sizeof *a), *b = malloc(V * sizeof *b);
    int32_t t1[11], t2[11];
    memcpy(t1, ids, sizeof t1);
    memcpy(t2, ids, sizeof t2);
    t2[0] = 7; /* differs only far outside the window (of every layer's reach) */
    for (int no_swa = 0; no_swa < 2; no_swa++) {
        ref_state_params sp = ref_state_default_params();
        sp.no_swa = no_swa;
        ref_state *s1 = NULL, *s2 = NULL;
        REQUIRE(ref_state_create(x.m, &sp, &s1) == PHIVK_OK &&
                    ref_state_create(x.m, &sp, &s2) == PHIVK_OK,
                "%s", pvk_errmsg());
        REQUIRE(ref_forward(s1, t1, 11, a, false) == PHIVK_OK &&
                    ref_forward(s2, t2, 11, b, false) == PHIVK_OK,
                "%s", pvk_errmsg());
        double d = 0;
        for (int j = 0; j < V; j++) d = fmax(d, fabs(a[j] - b[j]));
        /* 2 layers x window 4 reach back 6 positions: token 0 is invisible to 10 */
        if (no_swa) CHECK(d > 1e-4, "no_swa: token 0 must matter (%g)", d);
        else CHECK(d == 0, "window 4: token 0 must not matter (%g)", d);
        ref_state_destroy(s1);
        ref_state_destroy(s2);
    }
    free(a);
    free(b);
    model_free(&x);
}

TEST(ref_rejects_full_context_and_bad_tokens) {
    synth_params p = small("llama");
    model x;
    REQUIRE(model_build(&p, &x) == PHIVK_OK, "%s", pvk_errmsg());
    ref_state_params sp = ref_state_default_params();
    sp.n_ctx = 8;
    ref_state *s = NULL;
    REQUIRE(ref_state_create(x.m, &sp, &s) == PHIVK_OK, "%s", pvk_errmsg());
    int32_t bad = 400;
    CHECK(ref_forward(s, &bad, 1, NULL, false) == PHIVK_ERR_INVALID, "id 400 of 400 accepted");
    CHECK(strstr(pvk_errmsg(), "400") != NULL, "message: %s", pvk_errmsg());
    CHECK(ref_forward(s, ids, 6, NULL, false) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(ref_forward(s, ids, 3, NULL, false) == PHIVK_ERR_CONTEXT_FULL, "9 tokens in 8");
    CHECK(ref_state_pos(s) == 6, "a refused call keeps the position (%d)", ref_state_pos(s));
    ref_state_destroy(s);
    model_free(&x);
}

static void check_load_error(const synth_params *p, phivk_status want, const char *msg) {
    model x;
    phivk_status st = model_build(p, &x);
    CHECK(st == want, "status %d, want %d (%s)", st, want, pvk_errmsg());
    CHECK(strstr(pvk_errmsg(), msg) != NULL, "message '%s' lacks '%s'", pvk_errmsg(), msg);
    model_free(&x);
}

TEST(arch_missing_tensor_is_named) {
    synth_params p = small("phi3");
    p.n_layer = 4;
    p.skip_tensor = "blk.3.ffn_down.weight";
    check_load_error(&p, PHIVK_ERR_BAD_FILE,
                     "synthetic.gguf: missing tensor 'blk.3.ffn_down.weight'");
    p = small("phi2");
    p.skip_tensor = "output.bias";
    check_load_error(&p, PHIVK_ERR_BAD_FILE, "missing tensor 'output.bias'");
    p = small("phi3");
    p.longrope = true;
    p.skip_tensor = "rope_factors_short.weight";
    check_load_error(&p, PHIVK_ERR_BAD_FILE, "missing tensor 'rope_factors_short.weight'");
}

/* Reads the hyperparameters of a file that has only the given architecture name and
 * context length (0: no context key); returns the status, the message in pvk_errmsg. */
static phivk_status read_stub(const char *arch, uint32_t ctx) {
    gguf_writer *w = gguf_writer_create();
    if (!w) return PHIVK_ERR_HOST_MEMORY;
    gguf_writer_set_str(w, "general.architecture", arch);
    char key[64];
    snprintf(key, sizeof key, "%s.context_length", arch);
    if (ctx) gguf_writer_set_u32(w, key, ctx);
    void *data = NULL;
    size_t size;
    gguf_file *f = NULL;
    arch_hparams hp;
    phivk_status st = gguf_writer_build(w, &data, &size);
    if (!st) st = gguf_open_memory(data, size, &f);
    if (!st) st = arch_hparams_read(f, "m.gguf", &hp);
    gguf_close(f);
    free(data);
    gguf_writer_destroy(w);
    return st;
}

TEST(arch_unknown_architecture_is_refused) {
    CHECK(read_stub("mamba", 0) == PHIVK_ERR_UNSUPPORTED, "mamba accepted");
    CHECK(!strcmp(pvk_errmsg(), "m.gguf: architecture 'mamba' is not supported (phivk runs phi2, "
                                "phi3, llama, gptneo, phi3small)"),
          "message: %s", pvk_errmsg());
}

TEST(arch_missing_key_is_named) {
    CHECK(read_stub("phi3", 4096) == PHIVK_ERR_BAD_FILE, "incomplete file accepted");
    CHECK(!strcmp(pvk_errmsg(), "m.gguf: missing key 'phi3.embedding_length'"), "message: %s",
          pvk_errmsg());
    CHECK(read_stub("llama", 0) == PHIVK_ERR_BAD_FILE, "incomplete file accepted");
    CHECK(!strcmp(pvk_errmsg(), "m.gguf: missing key 'llama.context_length'"), "message: %s",
          pvk_errmsg());
}

TEST(synth_save_writes_a_loadable_file) {
    char dir[] = "/tmp/phivk-synth-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[64];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    synth_params p = synth_default_params();
    CHECK(synth_save(&p, path) == PHIVK_OK, "%s", pvk_errmsg());
    gguf_file *f = NULL;
    CHECK(gguf_open(path, &f) == PHIVK_OK, "%s", pvk_errmsg());
    gguf_str s;
    CHECK(f && gguf_get_str(f, "tokenizer.ggml.model", &s) && s.len == 5 &&
              !memcmp(s.ptr, "llama", 5),
          "SPM vocabulary");
    gguf_close(f);
    remove(path);
    remove(dir);
}

/* The synthetic vocabularies work with the real tokenizers: text survives a
 * tokenize/detokenize round trip, common words become single pieces rather than
 * bytes, and Phi-3's control tokens and stop tokens are found. */
TEST(synth_vocab_round_trips_through_the_tokenizer) {
    static const char *const archs[] = {"phi3", "llama", "phi2"};
    static const char text[] = "the cat sat on a mat, Hello World!\n\tok 42";
    char dir[] = "/tmp/phivk-vocab-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    for (int a = 0; a < 3; a++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, archs[a]);
        synth_params p = synth_default_params();
        p.arch = archs[a];
        p.n_vocab = 32064; /* Phi-3 sized: control tokens at their real ids */
        p.n_layer = 1;
        REQUIRE(synth_save(&p, path) == PHIVK_OK, "%s", pvk_errmsg());
        phivk_vocab *v = phivk_vocab_load(path);
        CHECK(v, "%s: %s", archs[a], phivk_last_error());
        if (v) {
            phivk_tokenize_params tp = phivk_tokenize_default_params();
            tp.bos = PHIVK_BOS_NO;
            int32_t ids[128];
            int64_t n = phivk_tokenize(v, text, strlen(text), &tp, ids, 128);
            CHECK(n > 0 && n < 30, "%s: %lld tokens for %zu bytes", archs[a], (long long)n,
                  strlen(text));
            char *back = n > 0 ? phivk_detokenize(v, ids, n, false) : NULL;
            CHECK(back && !strcmp(back, text), "%s: round trip gave '%s'", archs[a],
                  back ? back : "(null)");
            free(back);
            if (!strcmp(archs[a], "phi3")) {
                const char *end = phivk_token_piece(v, 32007);
                CHECK(end && !strcmp(end, "<|end|>"), "32007 is '%s'", end ? end : "(null)");
                CHECK(phivk_token_is_stop(v, 32007) && phivk_token_is_stop(v, 32000), "stop ids");
            }
            if (!strcmp(archs[a], "phi2")) /* <|endoftext|> is last below GPT-2's size */
                CHECK(phivk_token_eos(v) == 32063, "eos %d", phivk_token_eos(v));
        }
        phivk_vocab_free(v);
        remove(path);
    }
    remove(dir);
}
