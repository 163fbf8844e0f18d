/* phivk_convert: synthetic models are written as Hugging Face folders and llama2.c
 * checkpoints (hf_writer.c), converted, and compared with the GGUF they came from:
 * the same hyperparameter keys, tokenizer and tensors (bit for bit: each converted
 * tensor equals the source floats, rounded through the checkpoint's dtype,
 * quantized to the tensor's type by quant_quantize_row), and the CPU reference gives
 * the same logits. Every bad input fails with one named message and leaves no file. */
#define HARNESS_MAIN
#include "harness.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "hf_writer.h"
#include "phivk.h"
#include "quant.h"
#include "ref.h"
#include "synth.h"
#include "testdata.h"

static char root[256];

/* A fresh folder under the test's temporary root. */
static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/phivk-convert-XXXXXX");
        if (!mkdtemp(root)) abort();
    }
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", root, name);
    return p;
}

/* A synthetic model as a GGUF image with its reader. */
typedef struct model {
    void *data;
    size_t size;
    gguf_file *f;
} model;

static void model_free(model *m) {
    gguf_close(m->f);
    free(m->data);
    memset(m, 0, sizeof *m);
}

static bool model_build(const synth_params *p, model *m) {
    memset(m, 0, sizeof *m);
    return !synth_build(p, &m->data, &m->size) && !gguf_open_memory(m->data, m->size, &m->f);
}

static bool model_convert(const char *src, const char *type, const char *tokenizer, model *m) {
    phivk_convert_params p = phivk_convert_default_params();
    p.type = type;
    p.tokenizer = tokenizer;
    memset(m, 0, sizeof *m);
    if (phivk_convert_memory(src, &p, &m->data, &m->size) != PHIVK_OK) return false;
    return !gguf_open_memory(m->data, m->size, &m->f);
}

static synth_params small(const char *arch) {
    synth_params p = synth_default_params();
    p.arch = arch;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = strcmp(arch, "phi2") ? 2 : 4;
    p.n_ff = 96;
    p.n_vocab = 2000; /* the SentencePiece vocabularies reach two- and three-letter pieces */
    p.n_ctx = 64;
    p.n_layer = 2;
    p.separate_qkv = !strcmp(arch, "phi2"); /* HF PhiForCausalLM has q/k/v */
    if (!strcmp(arch, "phi2")) p.n_rot = 8;  /* partial rotary, as phi-2's 32 of 80 */
    return p;
}

/* ---------------------------------------------------------------- checks */

/* Every {arch}.* key of the source has the same type and value in the conversion. */
static void check_keys(const gguf_file *want, const gguf_file *got) {
    int n = 0;
    gguf_str arch;
    REQUIRE(gguf_get_str(want, "general.architecture", &arch), "source has no architecture");
    for (uint64_t i = 0; i < gguf_kv_count(want); i++) {
        const gguf_kv *kv = gguf_kv_at(want, i);
        if (kv->key.len <= arch.len || memcmp(kv->key.ptr, arch.ptr, arch.len) || kv->key.ptr[arch.len] != '.') continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        const gguf_kv *g = gguf_find(got, key);
        CHECK(g && g->type == kv->type && g->data_bytes == kv->data_bytes && !memcmp(g->data, kv->data, kv->data_bytes),
              "key %s differs or is missing", key);
        n++;
    }
    CHECK(n >= 8, "only %d architecture keys compared", n); /* phi2 has the fewest */
}

/* Tokens, types, merges and special ids equal; scores equal when scores_equal (a
 * tokenizer.json's merges give other scores with the same order: see
 * check_tokenization). */
static void check_vocab(const gguf_file *want, const gguf_file *got, bool scores_equal) {
    static const char *const arrays[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                                         "tokenizer.ggml.scores"};
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                                      "tokenizer.ggml.model", "tokenizer.chat_template"};
    for (int i = 0; i < 4; i++) {
        const gguf_kv *a = gguf_find(want, arrays[i]), *b = gguf_find(got, arrays[i]);
        if (i == 3 && !scores_equal) continue;
        CHECK(!a == !b, "%s present in only one file", arrays[i]);
        if (a && b)
            CHECK(a->arr_n == b->arr_n && a->data_bytes == b->data_bytes && !memcmp(a->data, b->data, a->data_bytes),
                  "%s differs (%llu vs %llu elements)", arrays[i], (unsigned long long)a->arr_n,
                  (unsigned long long)b->arr_n);
    }
    for (int i = 0; i < 6; i++) {
        const gguf_kv *a = gguf_find(want, ids[i]), *b = gguf_find(got, ids[i]);
        if (!a) continue;
        CHECK(b && a->data_bytes == b->data_bytes && !memcmp(a->data, b->data, a->data_bytes), "%s differs", ids[i]);
    }
}

/* Pieces that merges make (two or more characters) are scored in the same order
 * in both files: the SentencePiece merge loop then makes the same choices. */
static void check_score_order(const gguf_file *want, const gguf_file *got) {
    const gguf_kv *ws = gguf_find(want, "tokenizer.ggml.scores"), *gs = gguf_find(got, "tokenizer.ggml.scores");
    const gguf_kv *types = gguf_find(want, "tokenizer.ggml.token_type"), *toks = gguf_find(want, "tokenizer.ggml.tokens");
    REQUIRE(ws && gs && ws->arr_n == gs->arr_n, "scores missing or of other lengths");
    int64_t prev = -1, compared = 0;
    for (uint64_t i = 0; i < ws->arr_n; i++) {
        int64_t type;
        gguf_str s;
        gguf_arr_i64(types, i, &type);
        gguf_arr_str(want, toks, i, &s);
        int chars = 0;
        for (uint64_t k = 0; k < s.len; k++) chars += ((uint8_t)s.ptr[k] & 0xC0) != 0x80;
        if (type != 1 || chars < 2) continue;
        if (prev >= 0) {
            float wa, wb, ga, gb;
            gguf_arr_f32(ws, (uint64_t)prev, &wa);
            gguf_arr_f32(ws, i, &wb);
            gguf_arr_f32(gs, (uint64_t)prev, &ga);
            gguf_arr_f32(gs, i, &gb);
            CHECK((wa > wb) == (ga > gb) && (wa < wb) == (ga < gb), "tokens %lld and %llu are scored in another order",
                  (long long)prev, (unsigned long long)i);
            compared++;
        }
        prev = (int64_t)i;
    }
    CHECK(compared > 1000, "only %lld score pairs compared", (long long)compared);
}

/* The same texts give the same ids in both vocabularies. */
static void check_tokenization(const model *want, const model *got) {
    const char *a = tmp_path("want.gguf"), *b = tmp_path("got.gguf");
    FILE *f = fopen(a, "wb");
    REQUIRE(f && fwrite(want->data, 1, want->size, f) == want->size && !fclose(f), "cannot write %s", a);
    f = fopen(b, "wb");
    REQUIRE(f && fwrite(got->data, 1, got->size, f) == got->size && !fclose(f), "cannot write %s", b);
    phivk_vocab *va = phivk_vocab_load(a), *vb = phivk_vocab_load(b);
    REQUIRE(va && vb, "vocabularies do not load: %s", phivk_last_error());
    static const char *const texts[] = {"hello world", " the quick brown fox", "abc  def\n\tghi", "zz top 123 !?",
                                        "mixed CASE and ascii ~|{}"};
    int compared = 0;
    for (int i = 0; i < 5; i++) {
        int32_t x[256], y[256];
        phivk_tokenize_params tp = phivk_tokenize_default_params();
        const int64_t nx = phivk_tokenize(va, texts[i], strlen(texts[i]), &tp, x, 256);
        const int64_t ny = phivk_tokenize(vb, texts[i], strlen(texts[i]), &tp, y, 256);
        CHECK(nx > 0 && nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x), "'%s': %lld vs %lld tokens differ", texts[i],
              (long long)nx, (long long)ny);
        compared += nx > 1;
    }
    CHECK(compared == 5, "only %d texts made several tokens", compared);
    phivk_vocab_free(va);
    phivk_vocab_free(vb);
}

/* Each converted tensor: the same shape as the source's (output.weight may be the
 * embedding's copy) and bytes equal to the source floats rounded through dtype and
 * quantized to the converted tensor's type. Returns the number compared. */
static int check_tensors(const gguf_file *want, const gguf_file *got, const char *dtype) {
    int n = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(got); i++) {
        const gguf_tensor *g = gguf_tensor_at(got, i);
        const gguf_tensor *w = gguf_find_tensor(want, g->name);
        if (!w && !strcmp(g->name, "output.weight")) w = gguf_find_tensor(want, "token_embd.weight");
        CHECK(w, "tensor %s is not in the source", g->name);
        if (!w) continue;
        CHECK(g->n_dims == w->n_dims && g->ne[0] == w->ne[0] && g->ne[1] == w->ne[1], "%s: shape differs", g->name);
        /* rope factor tables travel through config.json as decimals: F32 exact */
        float *v = tensor_floats(w, strncmp(g->name, "rope_factors", 12) ? dtype : "F32");
        const int64_t rows = g->ne[1], cols = g->ne[0];
        const size_t rb = pvk_type_row_bytes(g->type, cols);
        uint8_t *q = malloc(rb * (size_t)rows);
        bool ok = v && q;
        for (int64_t r = 0; r < rows && ok; r++) ok = !quant_quantize_row(g->type, v + r * cols, q + r * rb, cols);
        CHECK(ok && g->bytes == rb * (size_t)rows && !memcmp(g->data, q, g->bytes), "%s (%s) differs from the source",
              g->name, pvk_type_get(g->type)->name);
        free(v);
        free(q);
        n++;
    }
    CHECK(n == (int)gguf_tensor_count(got), "compared %d of %llu tensors", n,
          (unsigned long long)gguf_tensor_count(got));
    return n;
}

/* The CPU reference on both files: identical logits at every position (the same
 * bytes and hyperparameters make the same arithmetic, so the tolerance is 0). */
static void check_logits(const gguf_file *want, const gguf_file *got) {
    ref_model *a = NULL, *b = NULL;
    ref_state *sa = NULL, *sb = NULL;
    ref_state_params sp = ref_state_default_params();
    static const int32_t ids[8] = {1, 300, 17, 42, 1999, 5, 1250, 123};
    phivk_status st = ref_model_create(want, "source", &a);
    if (!st) st = ref_model_create(got, "converted", &b);
    if (!st) st = ref_state_create(a, &sp, &sa);
    if (!st) st = ref_state_create(b, &sp, &sb);
    REQUIRE(!st, "reference: %s", pvk_errmsg());
    const int nv = ref_model_hparams(a)->n_vocab;
    float *la = malloc(8 * (size_t)nv * sizeof *la), *lb = malloc(8 * (size_t)nv * sizeof *lb);
    st = ref_forward(sa, ids, 8, la, true);
    if (!st) st = ref_forward(sb, ids, 8, lb, true);
    CHECK(!st, "forward: %s", pvk_errmsg());
    double maxd = 0;
    for (size_t i = 0; !st && i < 8 * (size_t)nv; i++) maxd = fmax(maxd, fabs((double)la[i] - lb[i]));
    CHECK(!st && maxd == 0, "logits of 8 positions differ by up to %g", maxd);
    free(la);
    free(lb);
    ref_state_destroy(sa);
    ref_state_destroy(sb);
    ref_model_destroy(a);
    ref_model_destroy(b);
}

/* Phi-3-small: the tiktoken keys of docs/gguf-keys.md, and the text of the spec's
 * chat example tokenizes to its ids (phi3-small.md 18). */
static void check_tiktoken(const model *got) {
    gguf_str s = {0};
    const gguf_kv *toks = gguf_find(got->f, "tokenizer.ggml.tokens");
    CHECK(gguf_get_str(got->f, "tokenizer.ggml.model", &s) && s.len == 8 && !memcmp(s.ptr, "tiktoken", 8),
          "tokenizer.ggml.model is not tiktoken");
    CHECK(toks && toks->arr_n == 100352, "%llu tokens, want 100352", toks ? (unsigned long long)toks->arr_n : 0ull);
    const char *path = tmp_path("tiktoken.gguf");
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(got->data, 1, got->size, f) == got->size && !fclose(f), "cannot write %s", path);
    phivk_vocab *v = phivk_vocab_load(path);
    REQUIRE(v, "vocabulary does not load: %s", phivk_last_error());
    static const char text[] = "<|endoftext|><|user|>\nHello<|end|>\n<|assistant|>\n";
    static const int32_t want[] = {100257, 100262, 198, 9906, 100266, 198, 100263, 198};
    int32_t ids[32];
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    tp.parse_special = true;
    const int64_t n = phivk_tokenize(v, text, strlen(text), &tp, ids, 32);
    CHECK(n == 8 && !memcmp(ids, want, sizeof want), "the chat example gives %lld ids, not the spec's 8", (long long)n);
    phivk_vocab_free(v);
}

/* Converts an HF folder of p (written with o) at type and checks everything. */
static void round_trip(const synth_params *p, const hf_opts *o, const char *type, const char *folder) {
    model src, got;
    REQUIRE(model_build(p, &src), "synth: %s", pvk_errmsg());
    const char *dir = tmp_path(folder);
    REQUIRE(hf_write_folder(src.f, dir, o), "cannot write %s", dir);
    const bool ok = model_convert(dir, type, NULL, &got);
    CHECK(ok, "convert %s: %s", dir, phivk_last_error());
    const bool tiktoken = !strcmp(p->arch, "phi3small"); /* the folder's tokenizer is cl100k's rank file */
    if (ok) {
        check_keys(src.f, got.f);
        const bool byte_level = !strcmp(p->arch, "phi2") || !strcmp(p->arch, "gptneo"); /* no scores */
        if (!tiktoken) check_vocab(src.f, got.f, byte_level);
        if (!byte_level && !tiktoken) check_score_order(src.f, got.f);
        if (!byte_level && !tiktoken) check_tokenization(&src, &got);
        if (tiktoken) check_tiktoken(&got);
        check_tensors(src.f, got.f, o && o->dtype ? o->dtype : "F32");
        if (!strcmp(type, "f32") && (!o || !o->dtype || !strcmp(o->dtype, "F32"))) check_logits(src.f, got.f);
    }
    model_free(&got);
    model_free(&src);
}

/* ------------------------------------------------------------- the cases */

TEST(phi2_folder_converts_to_the_gguf_it_was_written_from) {
    synth_params p = small("phi2");
    round_trip(&p, &(hf_opts){.inv_freq = true}, "f32", "phi2");
}

TEST(phi3_folder_with_longrope_and_sliding_window_converts) {
    synth_params p = small("phi3");
    p.longrope = true;
    p.n_ctx = 256;
    p.rope_orig_ctx = 64;
    p.sliding_window = 48;
    round_trip(&p, NULL, "f32", "phi3");
}

/* Phi-3-small: QKV rows grouped per KV head (2 query heads per group here) and
 * interleaved up_proj rows come back as [Q | K | V] and [gelu | linear]: every
 * tensor equals the GGUF the folder was written from; LongRoPE with its mscales;
 * the cl100k rank file becomes the tiktoken keys. */
static synth_params small_phi3small(void) {
    synth_params p = small("phi3small");
    p.n_vocab = 100352;
    p.tied_output = true;
    p.bs_block = 4;
    p.bs_local = 2;
    p.bs_stride = 4;
    return p;
}

TEST(phi3small_folder_is_regrouped_and_converts_to_the_gguf_it_was_written_from) {
    synth_params p = small_phi3small();
    char tk[4096];
    snprintf(tk, sizeof tk, "%s", testdata_path("vocab/cl100k/cl100k_base.tiktoken"));
    const hf_opts o = {.tiktoken = tk, .inv_freq = true};
    round_trip(&p, &o, "f32", "phi3small");
    p.longrope = true;
    p.n_ctx = 256;
    p.rope_orig_ctx = 64;
    round_trip(&p, &o, "f32", "phi3small-128k");
}

TEST(llama_folder_q_and_k_are_permuted_from_rotate_half) {
    synth_params p = small("llama");
    round_trip(&p, NULL, "f32", "llama");
    p.tied_output = true;
    round_trip(&p, NULL, "f32", "llama-tied");
}

TEST(sharded_folder_converts_like_a_single_file) {
    synth_params p = small("phi3");
    round_trip(&p, &(hf_opts){.shards = 3}, "f32", "phi3-sharded");
}

TEST(f16_and_bf16_checkpoints_convert_exactly) {
    synth_params p = small("phi2");
    round_trip(&p, &(hf_opts){.dtype = "F16"}, "f16", "phi2-f16");
    p = small("llama");
    round_trip(&p, &(hf_opts){.dtype = "BF16"}, "bf16", "llama-bf16");
    round_trip(&p, &(hf_opts){.dtype = "BF16"}, "f32", "llama-bf16-f32");
}

/* GPT-Neo: phivk's own keys (docs/gguf-keys.md), learned positions, the old mask
 * buffers ignored; F32 and BF16 sources. */
TEST(gptneo_folder_converts_to_the_gguf_it_was_written_from) {
    synth_params p = small("phi2");
    p.arch = "gptneo";
    p.n_rot = 0;
    p.tied_output = true;
    p.sliding_window = 16;
    p.n_layer = 3; /* global, local, global */
    round_trip(&p, &(hf_opts){.neo_buffers = true}, "f32", "gptneo");
    round_trip(&p, &(hf_opts){.dtype = "BF16", .shards = 2}, "bf16", "gptneo-bf16");
}

TEST(tokenizer_is_taken_from_another_folder_or_file) {
    synth_params p = small("llama");
    model src, got;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    const char *dir = tmp_path("llama-no-tok"), *tok = tmp_path("llama-tok");
    REQUIRE(hf_write_folder(src.f, dir, NULL), "cannot write %s", dir);
    mkdir(tok, 0755);
    char a[600], b[600];
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", tok, files[i]);
        REQUIRE(!rename(a, b), "cannot move %s", a);
    }
    CHECK(!model_convert(dir, "f32", NULL, &got) && strstr(phivk_last_error(), "tokenizer.json"),
          "a folder without its tokenizer converted, or the message does not name the file: %s", phivk_last_error());
    model_free(&got);
    REQUIRE(model_convert(dir, "f32", tok, &got), "with --tokenizer DIR: %s", phivk_last_error());
    check_vocab(src.f, got.f, false);
    model_free(&got);
    snprintf(b, sizeof b, "%s/tokenizer.json", tok);
    REQUIRE(model_convert(dir, "f32", b, &got), "with --tokenizer FILE: %s", phivk_last_error());
    check_vocab(src.f, got.f, false);
    model_free(&got);
    model_free(&src);
}

/* 256 columns so the K-quants apply without their fallback */
static synth_params wide(const char *arch) {
    synth_params p = small(arch);
    p.n_embd = 256;
    p.n_ff = 512;
    p.n_head = 8;
    p.n_head_kv = 4;
    return p;
}

TEST(every_type_quantizes_each_tensor_as_quant_does) {
    synth_params p = wide("phi3");
    int n = 0;
    for (const char *const *t = phivk_convert_types(); *t; t++, n++) {
        round_trip(&p, NULL, *t, *t);
        if (harness_failed_now()) {
            printf("    (type %s)\n", *t);
            return;
        }
    }
    CHECK(n == 12, "%d types", n);
}

/* The type of name in m, or -1. */
static int type_of(const model *m, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(m->f, name);
    return t ? (int)t->type : -1;
}

TEST(q4_k_m_mixes_types_per_tensor_as_llama_quantize) {
    synth_params p = wide("llama");
    p.n_layer = 8; /* use_more_bits: layers 0, 3, 6, 7 */
    model src, got;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    const char *dir = tmp_path("llama-q4km");
    REQUIRE(hf_write_folder(src.f, dir, NULL), "cannot write %s", dir);
    REQUIRE(model_convert(dir, "q4_k_m", NULL, &got), "convert: %s", phivk_last_error());
    check_tensors(src.f, got.f, "F32");
    CHECK(type_of(&got, "output.weight") == PVK_Q6_K, "output not q6_K");
    CHECK(type_of(&got, "token_embd.weight") == PVK_Q4_K, "token_embd not q4_K");
    CHECK(type_of(&got, "output_norm.weight") == PVK_F32, "norm not f32");
    for (int l = 0; l < 8; l++) {
        const bool more = l == 0 || l == 3 || l == 6 || l == 7;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        CHECK(type_of(&got, name) == (more ? PVK_Q6_K : PVK_Q4_K), "%s", name);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        CHECK(type_of(&got, name) == (more ? PVK_Q6_K : PVK_Q4_K), "%s", name);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        CHECK(type_of(&got, name) == PVK_Q4_K, "%s", name);
    }
    model_free(&got);
    model_free(&src);
    /* phi3: the fused qkv gets q5_K; a tied embedding doubles as output: q6_K */
    p = wide("phi3");
    p.tied_output = true;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    dir = tmp_path("phi3-q4km");
    REQUIRE(hf_write_folder(src.f, dir, NULL), "cannot write %s", dir);
    REQUIRE(model_convert(dir, "q4_k_m", NULL, &got), "convert: %s", phivk_last_error());
    CHECK(type_of(&got, "blk.0.attn_qkv.weight") == PVK_Q5_K, "attn_qkv not q5_K");
    CHECK(type_of(&got, "token_embd.weight") == PVK_Q6_K, "tied token_embd not q6_K");
    model_free(&got);
    model_free(&src);
}

TEST(k_quants_fall_back_where_rows_are_not_256_wide) {
    synth_params p = small("llama"); /* 64 and 96 columns */
    model src, got;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    const char *dir = tmp_path("llama-fallback");
    REQUIRE(hf_write_folder(src.f, dir, NULL), "cannot write %s", dir);
    REQUIRE(model_convert(dir, "q6_k", NULL, &got), "convert: %s", phivk_last_error());
    CHECK(type_of(&got, "blk.0.attn_q.weight") == PVK_Q8_0, "q6_K on 64 columns is not q8_0");
    check_tensors(src.f, got.f, "F32");
    model_free(&got);
    model_free(&src);
}

/* llama2.c: a synthetic llama as .bin + tokenizer.bin, versions 0 and 1, shared and
 * separate classifier; the conversion always has output.weight (as
 * convert-llama2c-to-ggml writes it) and keeps the tokenizer's scores. */
static void llama2c_case(int version, bool shared) {
    synth_params p = small("llama");
    p.tied_output = shared;
    model src, got;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    char name[64];
    snprintf(name, sizeof name, "stories-v%d-%s.bin", version, shared ? "shared" : "sep");
    const char *bin = tmp_path(name), *tok = tmp_path("tokenizer.bin");
    REQUIRE(llama2c_write(src.f, bin, version, shared, tok), "cannot write %s", bin);
    REQUIRE(model_convert(bin, "f32", tok, &got), "convert: %s", phivk_last_error());
    check_keys(src.f, got.f);
    check_vocab(src.f, got.f, true);
    CHECK(check_tensors(src.f, got.f, "F32") == (int)gguf_tensor_count(src.f) + shared, "tensor count");
    check_logits(src.f, got.f);
    model_free(&got);
    model_free(&src);
}

TEST(llama2c_v0_shared_classifier_converts) { llama2c_case(0, true); }
TEST(llama2c_v0_separate_classifier_converts) { llama2c_case(0, false); }
TEST(llama2c_v1_converts) { llama2c_case(1, false); }

/* The Hugging Face folders in tests/data/hf, written by Hugging Face's own
 * code from the weights of the reference GGUF files: converted at f32, the CPU
 * reference gives llama.cpp's logits within the README's tolerances (5e-3, top-1
 * at all 32 positions) and exactly the logits of the GGUF made from the same weights
 * (the same rows in the same order give the same double sums; Phi-2's separate
 * q/k/v rows are the reference file's fused qkv rows). */
static void hf_reference_case(const char *name, const char *logits_name) {
    char rel[256], gguf_path[4096];
    snprintf(rel, sizeof rel, "reference/%s.gguf", name);
    snprintf(gguf_path, sizeof gguf_path, "%s", testdata_path(rel));
    snprintf(rel, sizeof rel, "hf/%s", name);
    int32_t ids[64];
    const int n = testdata_ids("ids32.txt", ids, 64);
    float *want = testdata_logits(logits_name, (size_t)n * 512);
    model got;
    gguf_file *theirs = NULL;
    REQUIRE(n == 32 && want && !gguf_open(gguf_path, &theirs), "cannot read the %s reference under %s", name,
            testdata_path(""));
    REQUIRE(model_convert(testdata_path(rel), "f32", NULL, &got), "convert %s: %s", rel, phivk_last_error());
    /* the same pieces and special ids; types may differ where llama.cpp's converter
     * types a special added token CONTROL (<unk>) and the reference file UNKNOWN */
    static const char *const keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                                       "tokenizer.ggml.eos_token_id", "tokenizer.ggml.model"};
    for (int k = 0; k < 5; k++) {
        const gguf_kv *x = gguf_find(theirs, keys[k]), *y = gguf_find(got.f, keys[k]);
        CHECK(!x || (y && x->data_bytes == y->data_bytes && !memcmp(x->data, y->data, x->data_bytes)), "%s: %s differs",
              name, keys[k]);
    }
    ref_model *a = NULL, *b = NULL;
    ref_state *sa = NULL, *sb = NULL;
    ref_state_params sp = ref_state_default_params();
    phivk_status st = ref_model_create(got.f, "converted", &a);
    if (!st) st = ref_model_create(theirs, "reference", &b);
    if (!st) st = ref_state_create(a, &sp, &sa);
    if (!st) st = ref_state_create(b, &sp, &sb);
    float *la = malloc((size_t)n * 512 * sizeof *la), *lb = malloc((size_t)n * 512 * sizeof *lb);
    if (!st) st = ref_forward(sa, ids, n, la, true);
    if (!st) st = ref_forward(sb, ids, n, lb, true);
    CHECK(!st, "%s: %s", name, pvk_errmsg());
    double d_llama = 0, d_gguf = 0;
    int top1 = 0;
    for (int i = 0; !st && i < n; i++) {
        top1 += vec_argmax(la + i * 512, 512) == vec_argmax(want + i * 512, 512);
        for (int j = 0; j < 512; j++) {
            d_llama = fmax(d_llama, fabs((double)la[i * 512 + j] - want[i * 512 + j]));
            d_gguf = fmax(d_gguf, fabs((double)la[i * 512 + j] - lb[i * 512 + j]));
        }
    }
    printf("    %s: max |logit - llama.cpp| %.3g, top-1 %d/%d, max |logit - reference gguf| %.3g\n", name, d_llama,
           top1, n, d_gguf);
    CHECK(!st && d_llama <= 5e-3 && top1 == n, "%s: %g from llama.cpp's logits, top-1 %d/%d", name, d_llama, top1, n);
    CHECK(!st && d_gguf == 0, "%s: %g from the reference GGUF's logits", name, d_gguf);
    free(la);
    free(lb);
    free(want);
    ref_state_destroy(sa);
    ref_state_destroy(sb);
    ref_model_destroy(a);
    ref_model_destroy(b);
    gguf_close(theirs);
    model_free(&got);
}

TEST(testdata_phi3_folder_gives_llama_cpp_logits) { hf_reference_case("phi3-f32", "phi3-f32.logits"); }
TEST(testdata_phi3_128k_folder_gives_llama_cpp_logits) { hf_reference_case("phi3-128k", "phi3-128k.short.logits"); }
TEST(testdata_phi2_folder_gives_llama_cpp_logits) { hf_reference_case("phi2", "phi2.logits"); }

/* ------------------------------------------------------------ bad input */

/* Converting src to a file fails with a message containing each of want[], and
 * leaves the folder of the output as it was (an older file stays untouched). */
static void expect_failure(const char *src, const char *tokenizer, const char *const *want, int n_want) {
    const char *dir = tmp_path("out");
    mkdir(dir, 0755);
    char out[600];
    snprintf(out, sizeof out, "%s/model.gguf", dir);
    FILE *f = fopen(out, "wb");
    REQUIRE(f && fputs("older", f) >= 0 && !fclose(f), "cannot write %s", out);
    phivk_convert_params p = phivk_convert_default_params();
    p.tokenizer = tokenizer;
    const phivk_status st = phivk_convert(src, out, &p);
    const char *msg = phivk_last_error();
    CHECK(st != PHIVK_OK, "converting %s succeeded", src);
    CHECK(!strchr(msg, '\n'), "message has several lines: %s", msg);
    for (int i = 0; i < n_want; i++) CHECK(strstr(msg, want[i]), "message lacks '%s': %s", want[i], msg);
    int entries = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(entries == 1, "%d files in the output folder after a failure", entries);
    char buf[16] = "";
    f = fopen(out, "rb");
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "older"), "the older output was touched");
    if (f) fclose(f);
}

/* A fresh small phi3 folder named name. */
static const char *bad_folder(const char *name, const hf_opts *o) {
    synth_params p = small("phi3");
    model src;
    if (!model_build(&p, &src)) return NULL;
    const char *dir = tmp_path(name);
    const bool ok = hf_write_folder(src.f, dir, o);
    model_free(&src);
    return ok ? dir : NULL;
}

TEST(missing_config_key_is_named) {
    const char *dir = bad_folder("bad-missing-key", NULL);
    REQUIRE(dir && hf_edit_config(dir, "num_hidden_layers", NULL), "setup");
    expect_failure(dir, NULL, (const char *const[]){"config.json", "num_hidden_layers"}, 2);
}

TEST(contradictory_config_keys_are_named) {
    const char *dir = bad_folder("bad-heads", NULL);
    REQUIRE(dir && hf_edit_config(dir, "num_attention_heads", "5"), "setup");
    expect_failure(dir, NULL, (const char *const[]){"hidden_size 64", "num_attention_heads 5"}, 2);
    dir = bad_folder("bad-model-type", NULL);
    REQUIRE(dir && hf_edit_config(dir, "model_type", "\"llama\""), "setup");
    expect_failure(dir, NULL, (const char *const[]){"Phi3ForCausalLM", "model_type", "llama"}, 3);
}

TEST(llama_rope_scaling_is_refused) {
    synth_params p = small("llama");
    model src;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    const char *dir = tmp_path("bad-llama-scaling");
    const bool ok = hf_write_folder(src.f, dir, NULL);
    model_free(&src);
    REQUIRE(ok && hf_edit_config(dir, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}"), "setup");
    expect_failure(dir, NULL, (const char *const[]){"rope_scaling", "llama"}, 2);
}

/* Phi-3-small's own config keys and its rank file: each bad one is named. */
TEST(phi3small_bad_config_and_missing_rank_file_are_named) {
    synth_params p = small_phi3small();
    p.n_layer = 1;
    model src;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    char tk[4096];
    snprintf(tk, sizeof tk, "%s", testdata_path("vocab/cl100k/cl100k_base.tiktoken"));
    static const struct {
        const char *key, *json, *want[2];
    } cases[] = {
        {"ff_intermediate_size", NULL, {"config.json", "ff_dim_multiplier"}},
        {"hidden_act", "\"gelu\"", {"hidden_act 'gelu'", "gegelu"}},
        {"vocab_size", "32064", {"vocab_size 32064", "100352"}},
        {"blocksparse_vert_stride", NULL, {"config.json", "blocksparse_vert_stride"}},
        {"rope_scaling", "{\"type\": \"yarn\"}", {"rope_scaling.type 'yarn'", "Phi-3-small"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad-phi3small-%zu", i);
        const char *dir = tmp_path(name);
        REQUIRE(hf_write_folder(src.f, dir, &(hf_opts){.tiktoken = tk}) && hf_edit_config(dir, cases[i].key, cases[i].json),
                "setup");
        expect_failure(dir, NULL, cases[i].want, 2);
    }
    const char *dir = tmp_path("bad-phi3small-no-ranks");
    REQUIRE(hf_write_folder(src.f, dir, &(hf_opts){.tiktoken = tk}), "setup");
    char ranks[4200];
    snprintf(ranks, sizeof ranks, "%s/cl100k_base.tiktoken", dir);
    unlink(ranks);
    expect_failure(dir, NULL, (const char *const[]){"cl100k_base.tiktoken"}, 1);
    model_free(&src);
}

TEST(unsupported_architecture_lists_the_supported_ones) {
    const char *dir = bad_folder("bad-arch", NULL);
    REQUIRE(dir && hf_edit_config(dir, "architectures", "[\"MambaForCausalLM\"]"), "setup");
    expect_failure(dir, NULL,
                   (const char *const[]){"MambaForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM", "LlamaForCausalLM",
                                         "GPTNeoForCausalLM"}, 5);
}

TEST(missing_tensor_is_named) {
    const char *dir = bad_folder("bad-missing-tensor", &(hf_opts){.skip = "model.layers.1.mlp.down_proj.weight"});
    REQUIRE(dir, "setup");
    expect_failure(dir, NULL, (const char *const[]){"model.layers.1.mlp.down_proj.weight", "missing"}, 2);
}

TEST(wrong_shape_names_the_tensor_and_both_shapes) {
    const char *dir = bad_folder("bad-shape", NULL);
    REQUIRE(dir && hf_edit_config(dir, "intermediate_size", "128"), "setup");
    expect_failure(dir, NULL, (const char *const[]){"model.layers.0.mlp.gate_up_proj.weight", "[192, 64]", "[256, 64]"}, 3);
}

TEST(unsupported_dtype_is_named) {
    const char *dir = bad_folder("bad-dtype", &(hf_opts){.dtype = "F64"});
    REQUIRE(dir, "setup");
    expect_failure(dir, NULL, (const char *const[]){"dtype F64", "model.embed_tokens.weight"}, 2);
}

/* Rewrites dir/model.safetensors: keep its first keep bytes, or replace it by bytes. */
static bool rewrite(const char *dir, long keep, const void *bytes, size_t n) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (keep >= 0) return truncate(path, keep) == 0;
    FILE *f = fopen(path, "wb");
    return f && fwrite(bytes, 1, n, f) == n && !fclose(f);
}

TEST(truncated_safetensors_is_rejected) {
    const char *dir = bad_folder("bad-truncated", NULL);
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    REQUIRE(dir && !stat(path, &sb) && rewrite(dir, (long)sb.st_size - 10, NULL, 0), "setup");
    expect_failure(dir, NULL, (const char *const[]){"model.safetensors", "truncated"}, 2);
}

/* A safetensors image: 8-byte length, header, data. */
static size_t st_image(uint8_t *buf, const char *header, size_t data_bytes, uint64_t claimed_len) {
    const size_t hl = strlen(header);
    const uint64_t len = claimed_len ? claimed_len : hl;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0, data_bytes);
    return 8 + hl + data_bytes;
}

TEST(overlapping_tensors_are_rejected) {
    const char *dir = bad_folder("bad-overlap", NULL);
    uint8_t buf[1024];
    const size_t n = st_image(buf,
                              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                              24, 0);
    REQUIRE(dir && rewrite(dir, -1, buf, n), "setup");
    expect_failure(dir, NULL, (const char *const[]){"'a'", "'b'", "overlap"}, 3);
}

TEST(header_larger_than_the_file_is_rejected) {
    const char *dir = bad_folder("bad-header", NULL);
    uint8_t buf[256];
    const size_t n = st_image(buf, "{\"a\":{}}", 0, 1000000);
    REQUIRE(dir && rewrite(dir, -1, buf, n), "setup");
    expect_failure(dir, NULL, (const char *const[]){"header of 1000000 bytes is larger than the file"}, 1);
}

TEST(llama2c_file_whose_sizes_do_not_add_up_is_rejected) {
    synth_params p = small("llama");
    p.tied_output = true;
    model src;
    REQUIRE(model_build(&p, &src), "synth: %s", pvk_errmsg());
    const char *bin = tmp_path("short.bin"), *tok = tmp_path("short-tokenizer.bin");
    REQUIRE(llama2c_write(src.f, bin, 0, true, tok), "setup");
    model_free(&src);
    struct stat sb;
    REQUIRE(!stat(bin, &sb) && !truncate(bin, sb.st_size - 4), "setup");
    char want[64];
    snprintf(want, sizeof want, "is %lld bytes, the file is %lld", (long long)sb.st_size, (long long)sb.st_size - 4);
    expect_failure(bin, tok, (const char *const[]){"llama2.c", want}, 2);
    /* without its tokenizer */
    REQUIRE(!truncate(bin, sb.st_size), "setup");
    expect_failure(bin, NULL, (const char *const[]){"--tokenizer"}, 1);
}

TEST(a_successful_conversion_replaces_the_output_and_leaves_no_temporary) {
    const char *dir = bad_folder("good", NULL), *outdir = tmp_path("good-out");
    REQUIRE(dir, "setup");
    mkdir(outdir, 0755);
    char out[600];
    snprintf(out, sizeof out, "%s/model.gguf", outdir);
    FILE *f = fopen(out, "wb");
    REQUIRE(f && fputs("older", f) >= 0 && !fclose(f), "setup");
    phivk_convert_params p = phivk_convert_default_params();
    REQUIRE(phivk_convert(dir, out, &p) == PHIVK_OK, "convert: %s", phivk_last_error());
    gguf_file *g = NULL;
    CHECK(!gguf_open(out, &g), "output does not open: %s", pvk_errmsg());
    gguf_close(g);
    int entries = 0;
    DIR *d = opendir(outdir);
    for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(entries == 1, "%d files beside the output", entries);
}

/* Removes the temporary tree when every case is done. */
__attribute__((destructor)) static void cleanup(void) {
    if (!root[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
}
