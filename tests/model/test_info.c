/* phivk_info_write on fixtures from the GGUF writer (JSON numbers checked
 * exactly, including the KV-cache table of phi-spec section 7) and on the shared
 * reference and vocabulary files. */
#define HARNESS_MAIN
#include "harness.h"

#include <cJSON.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_bytes.h"
#include "phivk.h"
#include "synth.h"

/* Writes a model-shaped fixture with the given attention geometry to a temp file. */
static void fixture(char *path, uint32_t ctx, uint32_t n_embd, uint32_t n_layer, uint32_t n_head,
                    uint32_t n_head_kv) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "phi3");
    gguf_writer_set_str(w, "general.name", "info fixture");
    gguf_writer_set_u32(w, "phi3.context_length", ctx);
    gguf_writer_set_u32(w, "phi3.embedding_length", n_embd);
    gguf_writer_set_u32(w, "phi3.block_count", n_layer);
    gguf_writer_set_u32(w, "phi3.attention.head_count", n_head);
    gguf_writer_set_u32(w, "phi3.attention.head_count_kv", n_head_kv);
    gguf_writer_set_f32(w, "phi3.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_f32(w, "phi3.rope.scaling.attn_factor", 1.25f);
    gguf_writer_set_u32(w, "phi3.rope.scaling.original_context_length", 4096);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    static const char *const toks[3] = {"<unk>", "<s>", "</s>"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    gguf_writer_set_str(w, "tokenizer.chat_template", "{{ x }}");
    gguf_writer_add_tensor(w, "token_embd.weight", PVK_Q8_0, 2, (int64_t[]){64, 10}, NULL); /* 680 B */
    gguf_writer_add_tensor(w, "output_norm.weight", PVK_F32, 1, (int64_t[]){64}, NULL);     /* 256 B */
    strcpy(path, "/tmp/phivk-test-info-XXXXXX");
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    if (gguf_writer_save(w, path) != PHIVK_OK) path[0] = 0;
    gguf_writer_destroy(w);
}

/* Runs phivk_info_write into a string (caller frees). */
static char *info_text(const char *path, bool json, int ctx, phivk_status *st) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    phivk_info_params p = phivk_info_default_params();
    p.json = json;
    p.ctx = ctx;
    *st = phivk_info_write(path, &p, m);
    fclose(m);
    return buf;
}

static double num(const cJSON *root, const char *a, const char *b) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b) o = cJSON_GetObjectItemCaseSensitive(o, b);
    return cJSON_IsNumber(o) ? o->valuedouble : -1;
}

TEST(info_json_reports_hparams_tokenizer_totals_and_kv_memory) {
    char path[64];
    fixture(path, 1000, 64, 3, 4, 2);
    REQUIRE(path[0], "fixture: %s", pvk_errmsg());
    phivk_status st;
    char *s = info_text(path, true, 0, &st);
    REQUIRE(st == PHIVK_OK, "%s", phivk_last_error());
    cJSON *j = cJSON_Parse(s);
    REQUIRE(j, "output is JSON: %s", s);
    CHECK(num(j, "hparams", "head_dim") == 16 && num(j, "hparams", "head_count_kv") == 2, "geometry");
    CHECK(num(j, "hparams", "norm_eps") == 1e-5, "eps printed as written");
    CHECK(num(j, "hparams", "rope_attn_factor") == 1.25, "attn_factor");
    CHECK(num(j, "tokenizer", "vocab_size") == 3 && num(j, "tokenizer", "eos_token_id") == 2, "tokenizer");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tokenizer"), "chat_template")), "template");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tokenizer"), "add_bos_token")), "add_bos");
    CHECK(num(j, "totals", "bytes") == 680 + 256 && num(j, "totals", "params") == 640 + 64, "totals");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tensors")) == 2, "tensor table");
    /* 3 layers x 2 kv heads x (16 + 16) = 192 elements per token, 1000 tokens (the model's context) */
    const cJSON *mem = cJSON_GetObjectItem(j, "memory");
    CHECK(num(mem, "kv_cache_bytes", "f16") == 192000 * 2, "f16: 2 bytes per element");
    CHECK(num(mem, "kv_cache_bytes", "q8_0") == 192000 * 34 / 32, "q8_0: 34/32");
    CHECK(num(mem, "kv_cache_bytes", "q4_0") == 192000 * 18 / 32, "q4_0: 18/32");
    CHECK(num(mem, "total_bytes", "f16") == 192000 * 2 + 936, "weights + cache");
    cJSON_Delete(j);
    free(s);

    s = info_text(path, true, 2048, &st);
    j = cJSON_Parse(s);
    CHECK(j && num(j, "memory", "ctx") == 2048 && num(cJSON_GetObjectItem(j, "memory"), "kv_cache_bytes", "f16") ==
                                                   192.0 * 2048 * 2, "--ctx overrides the model's context");
    cJSON_Delete(j);
    free(s);

    s = info_text(path, false, 0, &st);
    CHECK(st == PHIVK_OK && strstr(s, "kv heads          2") && strstr(s, "token_embd.weight") &&
              strstr(s, "KV cache q4_0") && strstr(s, "attn_factor 1.25"), "human report:\n%s", s);
    free(s);
    remove(path);
}

TEST(info_kv_memory_matches_the_phi3_mini_table) {
    /* phi-spec section 7: Phi-3-mini (32 x 32 x 96) F16 @4K = 1.5 GiB, Q8_0 816 MiB,
     * Q4_0 432 MiB; F16 @128K = 48 GiB. */
    char path[64];
    fixture(path, 4096, 3072, 32, 32, 32);
    REQUIRE(path[0], "fixture");
    phivk_status st;
    char *s = info_text(path, true, 0, &st);
    cJSON *j = cJSON_Parse(s);
    const cJSON *mem = cJSON_GetObjectItem(j, "memory");
    CHECK(num(mem, "kv_cache_bytes", "f16") == 1.5 * 1024 * 1024 * 1024, "f16 @4K");
    CHECK(num(mem, "kv_cache_bytes", "q8_0") == 816.0 * 1024 * 1024, "q8_0 @4K");
    CHECK(num(mem, "kv_cache_bytes", "q4_0") == 432.0 * 1024 * 1024, "q4_0 @4K");
    cJSON_Delete(j);
    free(s);
    s = info_text(path, true, 131072, &st);
    j = cJSON_Parse(s);
    CHECK(num(cJSON_GetObjectItem(j, "memory"), "kv_cache_bytes", "f16") == 48.0 * 1024 * 1024 * 1024, "f16 @128K");
    cJSON_Delete(j);
    free(s);
    remove(path);
}

TEST(info_describes_reference_and_vocab_only_files) {
    static const char *files[] = {"reference/phi3-f32.gguf", "reference/phi2.gguf", "reference/llama-gqa-tied.gguf",
                                  "reference/phi3-128k.gguf", "reference/phi3-q4_0.gguf",
                                  "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf",
                                  "vocab/ggml-vocab-phi-3.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        phivk_status st;
        char *s = info_text(testdata_path(files[i]), false, 0, &st);
        CHECK(st == PHIVK_OK, "%s: %s", files[i], phivk_last_error());
        bool vocab = !strncmp(files[i], "vocab/", 6);
        CHECK(!vocab || strstr(s, "vocabulary-only file (no tensors)"), "%s says it is vocabulary-only", files[i]);
        CHECK(vocab || strstr(s, "KV cache f16"), "%s has a memory estimate", files[i]);
        free(s);
        s = info_text(testdata_path(files[i]), true, 0, &st);
        cJSON *j = cJSON_Parse(s);
        CHECK(st == PHIVK_OK && j, "%s: JSON parses", files[i]);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "memory")) == vocab, "%s: memory present iff weights", files[i]);
        cJSON_Delete(j);
        free(s);
    }
    phivk_status st;
    char *s = info_text(testdata_path("reference/phi3-128k.gguf"), false, 0, &st);
    CHECK(strstr(s, "original context 4096") && strstr(s, "short/long factor tables"), "LongRoPE line:\n%s", s);
    free(s);
}

/* Phi-3-small: the architecture, its muP scales, GEGELU limit and block-sparse
 * pattern in both reports. */
TEST(info_reports_phi3small_and_its_block_sparse_pattern) {
    synth_params sp = synth_default_params();
    sp.arch = "phi3small";
    sp.n_vocab = 400;
    sp.n_head_kv = 2;
    sp.tied_output = true;
    char path[] = "/tmp/phivk-info-p3s-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0 && !close(fd) && synth_save(&sp, path) == PHIVK_OK, "fixture: %s", pvk_errmsg());
    phivk_status st;
    char *text = info_text(path, false, 0, &st);
    CHECK(!st && text && strstr(text, "phi3small") && strstr(text, "blocks of 64, 16 local, vertical stride 8") &&
              strstr(text, "embedding x10, attention scale 0.0625, logits / 8") && strstr(text, "limit 20") &&
              strstr(text, "layer norm"),
          "human report: %s", text ? text : "(none)");
    free(text);
    text = info_text(path, true, 0, &st);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "hparams");
    CHECK(!st && root && num(h, "blocksparse", "block_size") == 64 && num(h, "blocksparse", "vert_stride") == 8 &&
              num(h, "blocksparse", "dense_every_n_layers") == 2 && num(root, "hparams", "embedding_scale") == 10,
          "JSON report: %s", text ? text : "(none)");
    cJSON_Delete(root);
    free(text);
    unlink(path);
}

TEST(info_fails_with_a_reason_on_missing_and_corrupt_files) {
    phivk_status st;
    char *s = info_text("/nonexistent/x.gguf", false, 0, &st);
    CHECK(st == PHIVK_ERR_IO && strstr(phivk_last_error(), "/nonexistent/x.gguf"), "missing: %s", phivk_last_error());
    free(s);
    s = info_text(testdata_path("README.md"), false, 0, &st);
    CHECK(st == PHIVK_ERR_BAD_FILE && strstr(phivk_last_error(), "not a GGUF"), "%s", phivk_last_error());
    free(s);
    phivk_info_params p = {.ctx = -1};
    CHECK(phivk_info_write(testdata_path("reference/phi2.gguf"), &p, stdout) == PHIVK_ERR_INVALID, "negative ctx");
}

/* The brief of a model list: what the report says, from the header alone. The
 * fixture's q8_0 embedding (680 bytes) outweighs its f32 norm (256 bytes). */
TEST(info_brief_names_architecture_quantization_size_and_context) {
    char path[64];
    fixture(path, 2048, 64, 2, 4, 4);
    REQUIRE(*path, "fixture");
    phivk_model_brief b;
    REQUIRE(phivk_model_brief_read(path, &b) == PHIVK_OK, "%s", phivk_last_error());
    CHECK(!strcmp(b.arch, "phi3") && !strcmp(b.name, "info fixture"), "arch '%s', name '%s'", b.arch, b.name);
    CHECK(!strcmp(b.quant, "q8_0"), "the type with the most bytes: '%s'", b.quant);
    CHECK(b.ctx == 2048 && b.params == 64 * 10 + 64, "context %lld, %llu params", (long long)b.ctx,
          (unsigned long long)b.params);
    FILE *f = fopen(path, "rb");
    REQUIRE(f && fseek(f, 0, SEEK_END) == 0, "size of %s", path);
    CHECK(b.file_bytes == (uint64_t)ftell(f), "file size %llu, want %ld", (unsigned long long)b.file_bytes, ftell(f));
    fclose(f);
    unlink(path);
    CHECK(phivk_model_brief_read(testdata_path("README.md"), &b) == PHIVK_ERR_BAD_FILE &&
          strstr(phivk_last_error(), "not a GGUF"), "not a model: %s", phivk_last_error());
    CHECK(phivk_model_brief_read("/nonexistent/x.gguf", &b) == PHIVK_ERR_IO, "missing file");
}

/* A file whose strings carry terminal escape sequences: OSC retitles the window,
 * CSI 2J clears the screen, U+009B is CSI as one (C1) character. */
static void hostile_strings_fixture(char *path) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "phi3\x1b]0;owned\x07");
    gguf_writer_set_str(w, "general.name", "\x1b[2J\x1b[Hname\xc2\x9b" "31m\nforged line");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama\x1b[5m");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "\x1b[8m");
    gguf_writer_add_tensor(w, "blk.0.\x1b[31mred", PVK_F32, 1, (int64_t[]){4}, NULL);
    strcpy(path, "/tmp/phivk-test-info-XXXXXX");
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    if (gguf_writer_save(w, path) != PHIVK_OK) path[0] = 0;
    gguf_writer_destroy(w);
}

TEST(info_shows_escape_sequences_from_the_file_as_visible_text) {
    char path[64];
    hostile_strings_fixture(path);
    REQUIRE(path[0], "fixture: %s", pvk_errmsg());
    phivk_status st;
    char *s = info_text(path, false, 0, &st);
    REQUIRE(st == PHIVK_OK && s, "%s", phivk_last_error());
    CHECK(!strchr(s, 0x1b) && !strchr(s, 0x07) && !strstr(s, "\xc2\x9b"), "no ESC, BEL or C1 byte reaches the report:\n%s", s);
    CHECK(strstr(s, "phi3\\x1b]0;owned\\x07"), "the architecture is shown with \\x1b:\n%s", s);
    CHECK(strstr(s, "\\x1b[2J\\x1b[Hname\\xc2\\x9b31m\\x0aforged line"), "the name is one visible line:\n%s", s);
    CHECK(strstr(s, "llama\\x1b[5m") && strstr(s, "\\x1b[8m"), "tokenizer model and pre:\n%s", s);
    CHECK(strstr(s, "blk.0.\\x1b[31mred"), "the tensor name:\n%s", s);
    free(s);
    /* JSON escapes control characters itself ("\u001b"): no raw ESC either. */
    s = info_text(path, true, 0, &st);
    CHECK(st == PHIVK_OK && s && !strchr(s, 0x1b), "no ESC in the JSON report");
    cJSON *j = cJSON_Parse(s);
    const cJSON *name = cJSON_GetObjectItem(j, "name");
    CHECK(cJSON_IsString(name) && !strncmp(name->valuestring, "\x1b[2J", 4), "JSON keeps the exact name as data");
    cJSON_Delete(j);
    free(s);
    remove(path);
}

/* Attention geometry written as 64-bit keys, so any value can be tried. */
static void geometry_fixture(char *path, int64_t n_layer, int64_t n_head, int64_t key_len, int64_t value_len) {
    const struct { const char *key; int64_t v; } keys[] = {
        {"phi3.context_length", 4096}, {"phi3.embedding_length", 64}, {"phi3.block_count", n_layer},
        {"phi3.attention.head_count", n_head}, {"phi3.attention.key_length", key_len},
        {"phi3.attention.value_length", value_len},
    };
    const uint64_t n_keys = sizeof keys / sizeof keys[0];
    bytes b = {0};
    b_header(&b, 3, 1, n_keys + 1);
    b_str(&b, "general.architecture");
    b_u32(&b, GGUF_STRING);
    b_str(&b, "phi3");
    for (uint64_t i = 0; i < n_keys; i++) {
        b_str(&b, keys[i].key);
        b_u32(&b, GGUF_I64);
        b_u64(&b, (uint64_t)keys[i].v);
    }
    b_str(&b, "token_embd.weight"); /* a weight, so the report estimates memory */
    b_u32(&b, 1);
    b_u64(&b, 8);
    b_u32(&b, PVK_F32);
    b_u64(&b, 0);
    b_pad(&b, 32);
    for (int i = 0; i < 8; i++) b_u32(&b, 0);
    strcpy(path, "/tmp/phivk-test-info-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f || fwrite(b.p, 1, b.n, f) != b.n) path[0] = 0;
    if (f) fclose(f);
    free(b.p);
}

/* K + V dimensions, heads and layers each fit 64 bits but their products do not;
 * the first case's sum already overflows a signed 64-bit integer (UBSan stops
 * this binary there), the second's product is exactly 2^64 (0 when it wraps). */
TEST(info_refuses_kv_sizes_that_would_overflow_before_computing_them) {
    static const struct { int64_t n_layer, n_head, key_len, value_len; } cases[] = {
        {1, 1, INT64_MAX, INT64_MAX},
        {(int64_t)1 << 31, (int64_t)1 << 31, 2, 2},
        {(int64_t)1 << 40, 1, (int64_t)1 << 30, (int64_t)1 << 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        geometry_fixture(path, cases[i].n_layer, cases[i].n_head, cases[i].key_len, cases[i].value_len);
        REQUIRE(path[0], "fixture %zu", i);
        for (int json = 0; json < 2; json++) {
            phivk_status st;
            char *s = info_text(path, json, 0, &st);
            CHECK(st == PHIVK_ERR_BAD_FILE && strstr(phivk_last_error(), "overflows"),
                  "case %zu (%s): status %d, '%s'", i, json ? "JSON" : "text", st, phivk_last_error());
            free(s);
        }
        remove(path);
    }
}
