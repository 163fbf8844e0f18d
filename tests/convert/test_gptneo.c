/* GPT-Neo (the TinyStories models) end to end: a synthetic GPTNeoForCausalLM folder
 * written by the test (hf_writer.c, F32 / F16 / BF16 safetensors), converted by
 * phivk_convert, run on the GPU, and its logits compared with two references:
 *   - tests/convert/gptneo_ref.py: docs/spec/gpt-neo.md in float64, pure Python,
 *     reading the folder itself (independent of every line of C here);
 *   - the CPU reference (tests/model_ref/ref.c) on the converted GGUF.
 * Head sizes 4 and 48 as the published 1M and 33M models have; a local window short
 * enough that most positions see fewer keys than global layers do, checked where
 * the two masks differ. Bad config.json files fail with one named message. Runs with
 * the validation layer on. */
#define HARNESS_MAIN
#include "gpu.h"
#include "harness.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "hf_writer.h"
#include "model_impl.h"
#include "phivk.h"
#include "ref.h"
#include "synth.h"

#define T 24 /* tokens per run: positions 0..23 */

static char root[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/phivk-gptneo-XXXXXX");
        if (!mkdtemp(root)) abort();
    }
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", root, name);
    return p;
}

/* TinyStories-1M's head size 4 (8 heads of 32) or 33M's 48 (2 heads of 96); layers
 * global, local, global, local with a window of 5. */
static synth_params neo(int head_dim) {
    synth_params p = synth_default_params();
    p.arch = "gptneo";
    p.n_vocab = 300;
    p.n_embd = head_dim == 4 ? 32 : 96;
    p.n_head = p.n_embd / head_dim;
    p.n_head_kv = 0;
    p.n_ff = head_dim == 4 ? 128 : 160; /* 4 x n_embd (config: null), and not */
    p.n_ctx = 64;
    p.n_layer = 4;
    p.n_rot = 0;
    p.sliding_window = 5;
    p.tied_output = true;
    p.wtype = PVK_F32;
    p.seed = (uint64_t)head_dim;
    return p;
}

typedef struct image {
    void *data;
    size_t size;
    gguf_file *f;
} image;

static void image_free(image *m) {
    gguf_close(m->f);
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* The folder dir of synthetic model p, in dtype. */
static bool write_folder(const synth_params *p, const char *dir, const char *dtype, bool buffers) {
    image src = {0};
    bool ok = !synth_build(p, &src.data, &src.size) && !gguf_open_memory(src.data, src.size, &src.f);
    hf_opts o = {.dtype = dtype, .neo_buffers = buffers};
    ok = ok && hf_write_folder(src.f, dir, &o);
    image_free(&src);
    return ok;
}

static bool convert(const char *dir, const char *type, image *m) {
    phivk_convert_params p = phivk_convert_default_params();
    p.type = type;
    memset(m, 0, sizeof *m);
    if (phivk_convert_memory(dir, &p, &m->data, &m->size) != PHIVK_OK) {
        printf("    convert %s: %s\n", type, phivk_last_error());
        return false;
    }
    return !gguf_open_memory(m->data, m->size, &m->f);
}

static void ids_of(int32_t *ids, int n, int n_vocab) {
    uint32_t s = 11;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)n_vocab);
    }
}

/* gptneo_ref.py's logits for the folder (T x nv), or NULL. */
static double *py_logits(const char *dir, const int32_t *ids, int nv, bool all_global) {
    const char *script = getenv("PHIVK_GPTNEO_REF");
    if (!script) return NULL;
    char list[T * 8] = "", cmd[2048];
    for (int i = 0; i < T; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", ids[i]);
    const char *out = tmp_path(all_global ? "py-global.txt" : "py.txt");
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' %s '%s'%s", script, dir, list, out, all_global ? " --all-global" : "");
    if (system(cmd) != 0) return NULL;
    FILE *f = fopen(out, "r");
    double *v = malloc(sizeof *v * T * (size_t)nv);
    size_t n = 0;
    while (f && v && n < (size_t)T * nv && fscanf(f, "%lf", &v[n]) == 1) n++;
    if (f) fclose(f);
    if (n != (size_t)T * nv) {
        free(v);
        return NULL;
    }
    return v;
}

/* The CPU reference's logits (n x nv). kv_f16: its cache rounded to f16 as the GPU's. */
static float *ref_logits(const gguf_file *f, const int32_t *ids, int n, int nv, bool kv_f16, uint64_t int8_types) {
    ref_model *rm = NULL;
    ref_state *rs = NULL;
    ref_state_params rp = ref_state_default_params();
    rp.kv_f16 = kv_f16;
    rp.int8_types = int8_types;
    float *out = malloc(sizeof *out * (size_t)n * (size_t)nv);
    if (!out || ref_model_create(f, "converted", &rm) || ref_state_create(rm, &rp, &rs) ||
        ref_forward(rs, ids, n, out, true)) {
        printf("    reference: %s\n", pvk_errmsg());
        free(out);
        out = NULL;
    }
    ref_state_destroy(rs);
    ref_model_destroy(rm);
    return out;
}

/* The GPU's logits (n x nv) of the converted image: prefill of all n when split is
 * 0, else prefill of split tokens and decode of the others one at a time (the
 * single-query attention path with its key lanes and split-K). batch > 0: the
 * session prefills in chunks of that many (positions from pos0 > 0 in one pass). */
static float *gpu_logits(const image *m, const int32_t *ids, int n, int nv, int split, int batch) {
    phivk_model *pm = phivk_model_load_memory(test_gpu_runtime(), m->data, m->size, "gptneo", NULL);
    if (!pm) {
        printf("    load: %s\n", phivk_last_error());
        return NULL;
    }
    phivk_session_params sp = phivk_session_default_params();
    if (batch) sp.batch = batch; /* the context: auto, every learned position */
    phivk_session *s = phivk_session_create(pm, &sp);
    float *out = malloc(sizeof *out * (size_t)n * (size_t)nv);
    bool ok = s && out;
    if (ok && !split) ok = phivk_decode(s, ids, n, out, true) == PHIVK_OK;
    if (ok && split) ok = phivk_decode(s, ids, split, out, true) == PHIVK_OK;
    for (int i = split; ok && split && i < n; i++) ok = phivk_decode(s, ids + i, 1, out + (size_t)i * nv, false) == PHIVK_OK;
    if (!ok) {
        printf("    GPU: %s\n", phivk_last_error());
        free(out);
        out = NULL;
    }
    phivk_session_free(s);
    phivk_model_free(pm);
    return out;
}

static double amax_of(const double *v, size_t n) {
    double a = 0;
    for (size_t i = 0; i < n; i++) a = fmax(a, fabs(v[i]));
    return a;
}

/* max |a - b| over positions [p0, p1). */
static double diff_f(const float *a, const double *b, int nv, int p0, int p1) {
    double w = 0;
    for (size_t i = (size_t)p0 * nv; i < (size_t)p1 * nv; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

static double diff_d(const double *a, const double *b, int nv, int p0, int p1) {
    double w = 0;
    for (size_t i = (size_t)p0 * nv; i < (size_t)p1 * nv; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

/* The error model. The GPU computes in fp32 but stores K and V in f16 (relative
 * rounding 2^-11 ~ 4.9e-4 per element); the scores are UNSCALED, so a key's
 * rounding moves a score by up to 2^-11 * sum|q_d k_d|, which on these fixtures
 * (unit-variance q and k, head size 4..48) is a few 1e-3 of a score of a few
 * units: the attention weights move by that relative amount. Through 4 layers
 * of LayerNorm-bounded residuals that stays below 1% of the logits' range:
 * GPU_BOUND = 1e-2 * max(1, max|logit|) against float64. The CPU reference with
 * its cache in f16 shares that rounding: the fp32-vs-fp32 ordering bound of
 * tests/model_gpu (3e-3 of the range). The fp32 CPU reference against float64
 * differs only by fp32 rounding of sums of at most a few hundred terms (relative
 * ~1e-6): REF_BOUND = 1e-4 of the range, a hundred times that margin. A mask, a
 * scale or a bias gone wrong moves the logits by their whole range. */
#define GPU_BOUND 1e-2
#define GPU_REF_BOUND 3e-3
#define REF_BOUND 1e-4

/* One folder in dtype, converted to type (keeping the source's values: f32 for
 * any dtype, or the dtype itself), against both references. */
static void check_against_references(int head_dim, const char *dtype, const char *type, bool buffers, int split,
                                     int batch) {
    synth_params p = neo(head_dim);
    char name[64];
    snprintf(name, sizeof name, "neo%d-%s", head_dim, dtype);
    const char *dir = tmp_path(name);
    REQUIRE(write_folder(&p, dir, dtype, buffers), "cannot write %s", dir);
    image m;
    REQUIRE(convert(dir, type, &m), "convert %s --type %s", dir, type);
    const int nv = p.n_vocab;
    int32_t ids[T];
    ids_of(ids, T, nv);
    double *py = py_logits(dir, ids, nv, false);
    float *ref = ref_logits(m.f, ids, T, nv, false, 0);
    float *ref16 = ref_logits(m.f, ids, T, nv, true, 0);
    float *gpu = gpu_logits(&m, ids, T, nv, split, batch);
    CHECK(py, "gptneo_ref.py failed (PHIVK_GPTNEO_REF=%s)", getenv("PHIVK_GPTNEO_REF"));
    CHECK(ref && ref16 && gpu, "a run failed");
    if (py && ref && ref16 && gpu) {
        const double range = fmax(1.0, amax_of(py, (size_t)T * nv));
        const double g_py = diff_f(gpu, py, nv, 0, T), r_py = diff_f(ref, py, nv, 0, T);
        double g_ref = 0;
        for (size_t i = 0; i < (size_t)T * nv; i++) g_ref = fmax(g_ref, fabs(gpu[i] - ref16[i]));
        printf("    head %d, %s -> %s%s%s: %d x %d logits (max |logit| %.3g): GPU vs float64 %.3g, GPU vs CPU ref "
               "(f16 cache) %.3g, CPU ref vs float64 %.3g\n", head_dim, dtype, type, split ? ", decoded" : "",
               batch ? ", prefill in chunks" : "", T, nv,
               range, g_py, g_ref, r_py);
        CHECK(g_py <= GPU_BOUND * range, "GPU vs float64: %g > %g", g_py, GPU_BOUND * range);
        CHECK(g_ref <= GPU_REF_BOUND * range, "GPU vs CPU reference: %g > %g", g_ref, GPU_REF_BOUND * range);
        CHECK(r_py <= REF_BOUND * range, "CPU reference vs float64: %g > %g", r_py, REF_BOUND * range);
    }
    free(py);
    free(ref);
    free(ref16);
    free(gpu);
    image_free(&m);
}

TEST(head_size_4_f32_folder_matches_float64_and_cpu_reference) { check_against_references(4, "F32", "f32", false, 0, 0); }
TEST(head_size_4_f16_folder_with_old_mask_buffers_matches_both) { check_against_references(4, "F16", "f16", true, 0, 0); }
TEST(head_size_4_bf16_folder_matches_both) { check_against_references(4, "BF16", "bf16", false, 0, 0); }
TEST(head_size_48_f32_folder_matches_both) { check_against_references(48, "F32", "f32", false, 0, 0); }
TEST(head_size_48_bf16_folder_to_f32_matches_both) { check_against_references(48, "BF16", "f32", false, 0, 0); }
TEST(decoding_one_token_at_a_time_past_the_window_matches_both) { check_against_references(4, "F32", "f32", false, 8, 0); }
TEST(decoding_with_head_size_48_matches_both) { check_against_references(48, "F16", "f16", false, 3, 0); }
TEST(prefill_in_chunks_of_7_matches_both) { check_against_references(4, "F32", "f32", false, 0, 7); }

/* The local layers' window, where it changes the result: positions 0..W-1 see the
 * same keys in a local and a global layer (the float64 logits agree exactly); from
 * W on they do not, and there the float64 logits of an all-global model are far
 * (more than ten GPU bounds) from the real ones, which the GPU matches. */
TEST(local_window_mask_matters_where_it_differs_from_global) {
    synth_params p = neo(4);
    const char *dir = tmp_path("neo-mask");
    REQUIRE(write_folder(&p, dir, "F32", false), "cannot write %s", dir);
    image m;
    REQUIRE(convert(dir, "f32", &m), "convert");
    const int nv = p.n_vocab, W = p.sliding_window;
    int32_t ids[T];
    ids_of(ids, T, nv);
    double *local = py_logits(dir, ids, nv, false), *global = py_logits(dir, ids, nv, true);
    float *gpu = gpu_logits(&m, ids, T, nv, 0, 0);
    REQUIRE(local && global && gpu, "a run failed");
    const double range = fmax(1.0, amax_of(local, (size_t)T * nv));
    const double same = diff_d(local, global, nv, 0, W), apart = diff_d(local, global, nv, W, T);
    int differing = 0;
    for (int q = W; q < T; q++) differing += diff_d(local, global, nv, q, q + 1) > 10 * GPU_BOUND * range;
    const double g = diff_f(gpu, local, nv, W, T);
    printf("    window %d: local vs global %.3g at positions < %d, %.3g after (%d of %d positions beyond 10 GPU bounds); "
           "GPU vs local %.3g\n", W, same, W, apart, differing, T - W, g);
    CHECK(same == 0, "positions before the window differ between local and global: %g", same);
    CHECK(differing >= (T - W) / 2, "only %d of %d positions past the window show it", differing, T - W);
    CHECK(g <= GPU_BOUND * range, "GPU vs float64 past the window: %g > %g", g, GPU_BOUND * range);
    free(local);
    free(global);
    free(gpu);
    image_free(&m);
}

/* A prefill longer than one workgroup's tile of attention rows, so tiles start at
 * other positions and each takes its own range of keys (from its first token's
 * window start); windows of 5 and 37, against the CPU reference (the float64 one
 * would take minutes at this length). */
TEST(long_prefill_across_attention_tiles_matches_cpu_reference) {
    enum { N = 200 };
    for (int k = 0; k < 2; k++) {
        synth_params p = neo(4);
        p.n_ctx = 256;
        p.sliding_window = k ? 37 : 5;
        const char *dir = tmp_path(k ? "neo-long37" : "neo-long5");
        REQUIRE(write_folder(&p, dir, "F32", false), "cannot write %s", dir);
        image m;
        REQUIRE(convert(dir, "f32", &m), "convert");
        const int nv = p.n_vocab;
        int32_t ids[N];
        ids_of(ids, N, nv);
        float *ref = ref_logits(m.f, ids, N, nv, true, 0), *gpu = gpu_logits(&m, ids, N, nv, 0, 0);
        CHECK(ref && gpu, "a run failed");
        double range = 0, worst = 0;
        for (size_t i = 0; ref && gpu && i < (size_t)N * nv; i++) {
            range = fmax(range, fabs(ref[i]));
            worst = fmax(worst, fabs(gpu[i] - ref[i]));
        }
        printf("    %d tokens, window %d: GPU vs CPU reference %.3g (max |logit| %.3g)\n", N, p.sliding_window, worst,
               range);
        CHECK(worst <= GPU_REF_BOUND * fmax(1.0, range), "window %d: %g > %g", p.sliding_window, worst,
              GPU_REF_BOUND * fmax(1.0, range));
        free(ref);
        free(gpu);
        image_free(&m);
    }
}

/* Which block types the GPU feeds int8 activations at m rows (as tests/model_gpu):
 * the CPU reference then rounds their inputs alike. */
static uint64_t gpu_int8_types(int m) {
    uint64_t mask = 0;
    phivk_runtime *rt = test_gpu_runtime();
    for (int t = 0; t < PVK_TYPE_COUNT && t < 64; t++)
        if (pvk_type_get((pvk_type)t)->name && pvk_ops_reads_q8(rt->ops, (pvk_type)t, (uint32_t)m)) mask |= 1ull << t;
    return mask;
}

/* Quantized conversions against the CPU reference of the same GGUF (the weights'
 * rounding shared): the bound of tests/model_gpu, ten times it where int8
 * activations can flip a rounding step on one side only (its int8_flip_allowance). */
static void check_quantized(const char *type) {
    synth_params p = neo(4);
    p.n_embd = 64;
    p.n_head = 16;
    p.n_ff = 256; /* the K-quants' 256-column blocks fit */
    char name[64];
    snprintf(name, sizeof name, "neo-q-%s", type);
    const char *dir = tmp_path(name);
    REQUIRE(write_folder(&p, dir, "F32", false), "cannot write %s", dir);
    image m;
    REQUIRE(convert(dir, type, &m), "convert --type %s", type);
    const int nv = p.n_vocab;
    int32_t ids[T];
    ids_of(ids, T, nv);
    const uint64_t int8 = gpu_int8_types(T);
    float *ref = ref_logits(m.f, ids, T, nv, true, int8), *gpu = gpu_logits(&m, ids, T, nv, 0, 0);
    REQUIRE(ref && gpu, "a run failed");
    double range = 0, worst = 0;
    for (size_t i = 0; i < (size_t)T * nv; i++) {
        range = fmax(range, fabs(ref[i]));
        worst = fmax(worst, fabs(gpu[i] - ref[i]));
    }
    const pvk_type wt = gguf_find_tensor(m.f, "blk.0.attn_q.weight")->type;
    const double bound = GPU_REF_BOUND * fmax(1.0, range) * (int8 >> wt & 1 ? 10 : 1);
    printf("    --type %s (attn_q %s%s): GPU vs CPU reference %.3g (bound %.3g)\n", type, pvk_type_get(wt)->name,
           int8 >> wt & 1 ? ", int8 activations" : "", worst, bound);
    CHECK(worst <= bound, "--type %s: GPU vs CPU reference %g > %g", type, worst, bound);
    free(ref);
    free(gpu);
    image_free(&m);
}

TEST(q8_0_conversion_matches_cpu_reference) { check_quantized("q8_0"); }
TEST(q4_0_conversion_matches_cpu_reference) { check_quantized("q4_0"); }
TEST(q4_k_m_conversion_matches_cpu_reference) { check_quantized("q4_k_m"); }

/* ------------------------------------------------------------ the GGUF */

/* The keys of docs/gguf-keys.md, the tensors under their names, and what loads. */
TEST(converted_file_has_phivks_gptneo_keys_and_ignores_buffers) {
    synth_params p = neo(4);
    const char *dir = tmp_path("neo-keys");
    REQUIRE(write_folder(&p, dir, "F32", true), "cannot write %s", dir);
    image m;
    REQUIRE(convert(dir, "f32", &m), "convert");
    gguf_str s = {0};
    CHECK(gguf_get_str(m.f, "general.architecture", &s) && s.len == 6 && !memcmp(s.ptr, "gptneo", 6), "architecture");
    uint32_t w = 0, ctx = 0;
    CHECK(gguf_get_u32(m.f, "gptneo.attention.sliding_window", &w) && w == 5, "window %u", w);
    CHECK(gguf_get_u32(m.f, "gptneo.context_length", &ctx) && ctx == 64, "context %u", ctx);
    const gguf_kv *kinds = gguf_find(m.f, "gptneo.attention.layer_types");
    REQUIRE(kinds && kinds->arr_n == 4, "layer_types");
    for (uint64_t l = 0; l < 4; l++) {
        gguf_arr_str(m.f, kinds, l, &s);
        CHECK(s.len == (l % 2 ? 5u : 6u), "layer %llu kind", (unsigned long long)l);
    }
    CHECK(!gguf_find(m.f, "gptneo.rope.dimension_count"), "no rotary key");
    const gguf_tensor *pe = gguf_find_tensor(m.f, "position_embd.weight");
    CHECK(pe && pe->ne[0] == 32 && pe->ne[1] == 64, "position_embd {32, 64}");
    CHECK(!gguf_find_tensor(m.f, "output.weight"), "output tied to token_embd");
    bool b = true;
    CHECK(gguf_get_bool(m.f, "tokenizer.ggml.add_bos_token", &b) && !b, "no BOS added");
    arch_hparams hp;
    CHECK(arch_hparams_read(m.f, "converted", &hp) == PHIVK_OK, "hparams: %s", pvk_errmsg());
    CHECK(hp.arch == ARCH_GPTNEO && hp.attn_scale == 1.0f && hp.n_rot == 0 && hp.pos_embd && hp.head_dim == 4,
          "hparams: arch %d scale %g rot %d", hp.arch, (double)hp.attn_scale, hp.n_rot);
    CHECK(arch_layer_window(&hp, false, 0) == 0 && arch_layer_window(&hp, false, 1) == 5 &&
              arch_layer_window(&hp, true, 3) == 5, "global, local; no_swa leaves GPT-Neo's windows");
    image_free(&m);
}

/* The tokenizer from elsewhere (--tokenizer DIR), as the TinyStories folders load
 * GPT-Neo-125M's: the folder without tokenizer files converts with it. */
TEST(tokenizer_from_another_folder) {
    synth_params p = neo(4);
    const char *dir = tmp_path("neo-notok"), *tok = tmp_path("neo-tok");
    REQUIRE(write_folder(&p, dir, "F32", false) && write_folder(&p, tok, "F32", false), "cannot write folders");
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    phivk_convert_params cp = phivk_convert_default_params();
    void *data = NULL;
    size_t size = 0;
    CHECK(phivk_convert_memory(dir, &cp, &data, &size) != PHIVK_OK, "a folder without a tokenizer converts");
    free(data);
    cp.tokenizer = tok;
    CHECK(phivk_convert_memory(dir, &cp, &data, &size) == PHIVK_OK, "with --tokenizer: %s", phivk_last_error());
    free(data);
}

/* ------------------------------------------------------------ bad input */

/* config.json edited with key = json (NULL: removed) must fail naming want. */
static void check_bad_config(const char *key, const char *json, const char *want) {
    synth_params p = neo(4);
    const char *dir = tmp_path("neo-bad");
    REQUIRE(write_folder(&p, dir, "F32", false), "cannot write %s", dir);
    REQUIRE(hf_edit_config(dir, key, json), "cannot edit config.json");
    image m;
    const bool ok = convert(dir, "f16", &m);
    CHECK(!ok, "config.json with %s = %s converted", key, json ? json : "(removed)");
    if (ok) image_free(&m);
    else CHECK(strstr(phivk_last_error(), want), "message '%s' does not name '%s'", phivk_last_error(), want);
}

TEST(missing_num_heads_is_named) { check_bad_config("num_heads", NULL, "'num_heads'"); }
TEST(missing_hidden_size_is_named) { check_bad_config("hidden_size", NULL, "'hidden_size'"); }
TEST(num_layers_contradicting_num_hidden_layers_is_named) {
    check_bad_config("num_hidden_layers", "6", "'num_layers' 4 contradicts 'num_hidden_layers' 6");
}
TEST(attention_types_for_other_layer_count_is_named) {
    check_bad_config("attention_types", "[[[\"global\",\"local\"],3]]", "attention_types gives 6 layers but num_layers is 4");
}
TEST(attention_layers_contradicting_attention_types_is_named) {
    check_bad_config("attention_layers", "[\"global\",\"global\",\"global\",\"local\"]",
                     "attention_layers[1] is global but attention_types makes layer 1 local");
}
TEST(unknown_attention_kind_is_named) {
    check_bad_config("attention_types", "[[[\"global\",\"sparse\"],2]]", "attention_types[0]");
}
TEST(other_activation_is_refused) { check_bad_config("activation_function", "\"relu\"", "activation_function relu"); }
TEST(untied_output_without_lm_head_is_named) {
    check_bad_config("tie_word_embeddings", "false", "tie_word_embeddings false but there is no 'lm_head.weight'");
}
TEST(window_of_zero_is_refused) { check_bad_config("window_size", "0", "'window_size'"); }
TEST(wrong_tensor_shape_names_both_shapes) {
    /* 8 heads of 4 become 8 heads of... a hidden size the tensors do not have */
    check_bad_config("hidden_size", "40", "tensor 'transformer.wte.weight' has shape [300, 32], config.json makes it [300, 40]");
}
TEST(missing_tensor_is_named) {
    synth_params p = neo(4);
    const char *dir = tmp_path("neo-missing");
    image src = {0};
    REQUIRE(!synth_build(&p, &src.data, &src.size) && !gguf_open_memory(src.data, src.size, &src.f), "build");
    hf_opts o = {.skip = "transformer.h.2.ln_2.bias"};
    REQUIRE(hf_write_folder(src.f, dir, &o), "write");
    image_free(&src);
    image m;
    CHECK(!convert(dir, "f16", &m), "converted without ln_2.bias");
    CHECK(strstr(phivk_last_error(), "'transformer.h.2.ln_2.bias' is missing"), "message: %s", phivk_last_error());
}

/* A gptneo GGUF header with the layer kinds kinds[0..n) (NULL: no key) and the
 * window (0: no key), read by arch_hparams_read; the status, the message in
 * pvk_errmsg. */
static phivk_status read_neo_header(const char *const *kinds, int n, uint32_t window) {
    gguf_writer *w = gguf_writer_create();
    if (!w) return PHIVK_ERR_HOST_MEMORY;
    gguf_writer_set_str(w, "general.architecture", "gptneo");
    gguf_writer_set_u32(w, "gptneo.context_length", 64);
    gguf_writer_set_u32(w, "gptneo.embedding_length", 32);
    gguf_writer_set_u32(w, "gptneo.block_count", 2);
    gguf_writer_set_u32(w, "gptneo.feed_forward_length", 128);
    gguf_writer_set_u32(w, "gptneo.attention.head_count", 8);
    gguf_writer_set_f32(w, "gptneo.attention.layer_norm_epsilon", 1e-5f);
    if (kinds) gguf_writer_set_arr_str(w, "gptneo.attention.layer_types", kinds, (uint64_t)n);
    if (window) gguf_writer_set_u32(w, "gptneo.attention.sliding_window", window);
    void *data = NULL;
    size_t size;
    gguf_file *f = NULL;
    arch_hparams hp;
    phivk_status st = gguf_writer_build(w, &data, &size);
    if (!st) st = gguf_open_memory(data, size, &f);
    if (!st) st = arch_hparams_read(f, "neo.gguf", &hp);
    gguf_close(f);
    free(data);
    gguf_writer_destroy(w);
    return st;
}

TEST(gguf_layer_kinds_and_window_are_checked_at_load) {
    static const char *const ok[] = {"global", "local"}, *const three[] = {"global", "local", "global"},
                             *const bad[] = {"global", "sparse"};
    CHECK(read_neo_header(NULL, 0, 5) == PHIVK_ERR_BAD_FILE &&
              !strcmp(pvk_errmsg(), "neo.gguf: missing key 'gptneo.attention.layer_types'"), "no kinds: %s", pvk_errmsg());
    CHECK(read_neo_header(three, 3, 5) == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), "for each of the 2 layers"),
          "three kinds: %s", pvk_errmsg());
    CHECK(read_neo_header(bad, 2, 5) == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), "entry 1 is 'sparse'"),
          "sparse: %s", pvk_errmsg());
    CHECK(read_neo_header(ok, 2, 0) == PHIVK_ERR_BAD_FILE &&
              strstr(pvk_errmsg(), "missing key 'gptneo.attention.sliding_window'"), "no window: %s", pvk_errmsg());
    /* with both, the header is complete: the next thing missing is a tensor */
    CHECK(read_neo_header(ok, 2, 5) == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), "missing tensor 'token_embd.weight'"),
          "complete header: %s", pvk_errmsg());
}

TEST(gguf_without_position_embeddings_is_refused_naming_the_tensor) {
    synth_params p = neo(4);
    p.skip_tensor = "position_embd.weight";
    void *data;
    size_t size;
    REQUIRE(!synth_build(&p, &data, &size), "build: %s", pvk_errmsg());
    phivk_model *pm = phivk_model_load_memory(test_gpu_runtime(), data, size, "neo.gguf", NULL);
    CHECK(!pm && strstr(phivk_last_error(), "missing tensor 'position_embd.weight'"), "load: %s",
          pm ? "loaded" : phivk_last_error());
    phivk_model_free(pm);
    free(data);
}

/* A GGUF whose learned positions end at 64 refuses a longer context by name. */
TEST(context_past_the_learned_positions_is_refused) {
    synth_params p = neo(4);
    void *data;
    size_t size;
    REQUIRE(!synth_build(&p, &data, &size), "build");
    phivk_model *pm = phivk_model_load_memory(test_gpu_runtime(), data, size, "gptneo", NULL);
    REQUIRE(pm, "load: %s", phivk_last_error());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 65;
    phivk_session *s = phivk_session_create(pm, &sp);
    CHECK(!s && strstr(phivk_last_error(), "learned positions for 64 tokens"), "ctx 65: %s", s ? "created" : phivk_last_error());
    phivk_session_free(s);
    sp.ctx = 0; /* auto: the 64 positions */
    s = phivk_session_create(pm, &sp);
    CHECK(s && phivk_session_ctx(s) == 64, "auto context %d", s ? phivk_session_ctx(s) : -1);
    phivk_session_free(s);
    phivk_model_free(pm);
    free(data);
}

/* Removes the temporary tree when every case is done. */
__attribute__((destructor)) static void cleanup(void) {
    if (!root[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
}
