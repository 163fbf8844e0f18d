/* GGUF reader on the shared reference files and on hand-crafted images; writer
 * round trips. */
#define HARNESS_MAIN
#include "harness.h"

#include <math.h>

#include "gguf.h"
#include "gguf_bytes.h"

static bool str_is(gguf_str s, const char *want) {
    return s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

TEST(reader_opens_reference_phi3_with_its_keys_and_tensors) {
    gguf_file *f;
    phivk_status st = gguf_open(testdata_path("reference/phi3-f32.gguf"), &f);
    REQUIRE(st == PHIVK_OK, "open: %s", pvk_errmsg());
    CHECK(gguf_version(f) == 3, "version %u", gguf_version(f));
    CHECK(gguf_alignment(f) == 32, "alignment");
    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s) && str_is(s, "phi3"), "architecture");
    uint32_t u;
    CHECK(gguf_get_u32(f, "phi3.context_length", &u) && u == 4096, "context_length");
    float eps;
    CHECK(gguf_get_f32(f, "phi3.attention.layer_norm_rms_epsilon", &eps) && eps == 1e-5f, "eps");
    bool b;
    CHECK(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b), "add_bos is a bool");
    const gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    REQUIRE(tok && tok->type == GGUF_ARRAY && tok->arr_type == GGUF_STRING && tok->arr_n == 512, "tokens");
    CHECK(gguf_arr_str(f, tok, 0, &s) && str_is(s, "<unk>"), "token 0 is <unk>");
    CHECK(!gguf_arr_str(f, tok, 512, &s), "index past the end is refused");
    const gguf_kv *sc = gguf_find(f, "tokenizer.ggml.scores");
    float x;
    CHECK(sc && gguf_arr_f32(sc, 511, &x) && isfinite(x), "scores are f32");
    CHECK(!gguf_arr_i64(sc, 0, &(int64_t){0}), "f32 elements are not integers");
    CHECK(gguf_find(f, "no.such.key") == NULL, "absent key");

    CHECK(gguf_tensor_count(f) == 15, "tensor count %lu", (unsigned long)gguf_tensor_count(f));
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    REQUIRE(t, "token_embd.weight present");
    CHECK(t->type == PVK_F32 && t->n_dims == 2 && t->ne[0] == 128 && t->ne[1] == 512 && t->ne[2] == 1 &&
              t->ne[3] == 1, "token_embd shape");
    CHECK(t->bytes == 128 * 512 * 4, "bytes");
    CHECK(t->offset % 32 == 0 && t->offset + t->bytes <= gguf_file_size(f), "placement");
    float first;
    memcpy(&first, t->data, 4);
    CHECK(isfinite(first) && fabsf(first) < 100, "first weight %g plausible", first);
    CHECK(gguf_find_tensor(f, "token_embd") == NULL, "prefix is not a match");
    gguf_close(f);
}

TEST(reader_opens_vocab_only_files) {
    static const struct { const char *file; uint64_t n_tokens; } v[] = {
        {"vocab/ggml-vocab-gpt-2.gguf", 50257},
        {"vocab/ggml-vocab-llama-spm.gguf", 32000},
        {"vocab/ggml-vocab-phi-3.gguf", 32064},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        gguf_file *f;
        phivk_status st = gguf_open(testdata_path(v[i].file), &f);
        CHECK(st == PHIVK_OK, "%s: %s", v[i].file, pvk_errmsg());
        if (st) continue;
        CHECK(gguf_tensor_count(f) == 0, "%s has no tensors", v[i].file);
        const gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
        gguf_str s;
        CHECK(tok && tok->arr_n == v[i].n_tokens, "%s token count", v[i].file);
        CHECK(gguf_arr_str(f, tok, v[i].n_tokens - 1, &s) && s.len > 0, "%s last token", v[i].file);
        gguf_close(f);
    }
}

/* One key of every value type, a nested array, and one Q8_0 tensor. */
static bytes every_type_file(void) {
    bytes b = {0};
    b_header(&b, 3, 1, 16);
    b_str(&b, "u8"); b_u32(&b, GGUF_U8); b_uint(&b, 200, 1);
    b_str(&b, "i8"); b_u32(&b, GGUF_I8); b_uint(&b, 0x80, 1);          /* -128 */
    b_str(&b, "u16"); b_u32(&b, GGUF_U16); b_uint(&b, 65535, 2);
    b_str(&b, "i16"); b_u32(&b, GGUF_I16); b_uint(&b, 0xfffe, 2);      /* -2 */
    b_str(&b, "u32"); b_u32(&b, GGUF_U32); b_u32(&b, 4000000000u);
    b_str(&b, "i32"); b_u32(&b, GGUF_I32); b_u32(&b, (uint32_t)-7);
    b_str(&b, "f32"); b_u32(&b, GGUF_F32); b_u32(&b, 0x3fc00000u);     /* 1.5 */
    b_str(&b, "bool"); b_u32(&b, GGUF_BOOL); b_uint(&b, 1, 1);
    b_str(&b, "str"); b_u32(&b, GGUF_STRING); b_str(&b, "h\xc3\xa9llo");
    b_str(&b, "u64"); b_u32(&b, GGUF_U64); b_u64(&b, UINT64_MAX);
    b_str(&b, "i64"); b_u32(&b, GGUF_I64); b_u64(&b, (uint64_t)INT64_MIN);
    b_str(&b, "f64"); b_u32(&b, GGUF_F64); b_u64(&b, 0x4004000000000000ull); /* 2.5 */
    b_str(&b, "arr_i16"); b_u32(&b, GGUF_ARRAY); b_u32(&b, GGUF_I16); b_u64(&b, 3);
    b_uint(&b, 1, 2); b_uint(&b, 0xffff, 2); b_uint(&b, 300, 2);
    b_str(&b, "arr_str"); b_u32(&b, GGUF_ARRAY); b_u32(&b, GGUF_STRING); b_u64(&b, 3);
    b_str(&b, "a"); b_str(&b, ""); b_str(&b, "ccc");
    /* [[1.0f, 2.0f], [], [["x"]]] as arrays of arrays */
    b_str(&b, "nested"); b_u32(&b, GGUF_ARRAY); b_u32(&b, GGUF_ARRAY); b_u64(&b, 3);
    b_u32(&b, GGUF_F32); b_u64(&b, 2); b_u32(&b, 0x3f800000u); b_u32(&b, 0x40000000u);
    b_u32(&b, GGUF_U8); b_u64(&b, 0);
    b_u32(&b, GGUF_ARRAY); b_u64(&b, 1); b_u32(&b, GGUF_STRING); b_u64(&b, 1); b_str(&b, "x");
    b_str(&b, "arr_f64"); b_u32(&b, GGUF_ARRAY); b_u32(&b, GGUF_F64); b_u64(&b, 1);
    b_u64(&b, 0xbff0000000000000ull); /* -1.0 */
    /* tensor: q8_0, 64 x 2 */
    b_str(&b, "w"); b_u32(&b, 2); b_u64(&b, 64); b_u64(&b, 2); b_u32(&b, PVK_Q8_0); b_u64(&b, 0);
    b_pad(&b, 32);
    for (int i = 0; i < 4 * 34; i++) b_uint(&b, (uint64_t)i, 1);
    return b;
}

TEST(reader_decodes_every_value_type_and_converts_as_documented) {
    bytes b = every_type_file();
    gguf_file *f;
    phivk_status st = gguf_open_memory(b.p, b.n, &f);
    REQUIRE(st == PHIVK_OK, "open: %s", pvk_errmsg());
    uint32_t u;
    int64_t i;
    float x;
    bool bo;
    gguf_str s;
    CHECK(gguf_get_u32(f, "u8", &u) && u == 200, "u8");
    CHECK(gguf_get_i64(f, "i8", &i) && i == -128, "i8");
    CHECK(!gguf_get_u32(f, "i8", &u), "negative does not convert to u32");
    CHECK(gguf_get_u32(f, "u16", &u) && u == 65535, "u16");
    CHECK(gguf_get_i64(f, "i16", &i) && i == -2, "i16");
    CHECK(gguf_get_u32(f, "u32", &u) && u == 4000000000u, "u32");
    CHECK(gguf_get_i64(f, "i32", &i) && i == -7, "i32");
    CHECK(gguf_get_f32(f, "f32", &x) && x == 1.5f, "f32");
    CHECK(!gguf_get_u32(f, "f32", &u), "floats are not integers");
    CHECK(gguf_get_bool(f, "bool", &bo) && bo, "bool");
    CHECK(gguf_get_str(f, "str", &s) && str_is(s, "h\xc3\xa9llo"), "string");
    CHECK(!gguf_get_i64(f, "u64", &i), "u64 max is out of i64 range");
    CHECK(!gguf_get_u32(f, "u64", &u), "u64 max is out of u32 range");
    CHECK(gguf_get_i64(f, "i64", &i) && i == INT64_MIN, "i64 min");
    CHECK(gguf_get_f32(f, "f64", &x) && x == 2.5f, "f64 -> f32");
    CHECK(!gguf_get_str(f, "u8", &s), "u8 is not a string");

    const gguf_kv *a = gguf_find(f, "arr_i16");
    CHECK(a && gguf_arr_i64(a, 1, &i) && i == -1, "arr_i16[1]");
    CHECK(a && gguf_arr_i64(a, 2, &i) && i == 300, "arr_i16[2]");
    CHECK(a && !gguf_arr_i64(a, 3, &i), "arr_i16[3] out of range");
    CHECK(a && a->data_bytes == 6, "array data_bytes");
    a = gguf_find(f, "arr_str");
    CHECK(a && gguf_arr_str(f, a, 2, &s) && str_is(s, "ccc"), "arr_str[2]");
    CHECK(a && gguf_arr_str(f, a, 1, &s) && s.len == 0, "arr_str[1] empty");
    a = gguf_find(f, "nested");
    CHECK(a && a->type == GGUF_ARRAY && a->arr_type == GGUF_ARRAY && a->arr_n == 3, "nested header");
    CHECK(a && !gguf_arr_str(f, a, 0, &s) && !gguf_arr_f32(a, 0, &x), "nested elements are not scalars");
    a = gguf_find(f, "arr_f64");
    CHECK(a && gguf_arr_f32(a, 0, &x) && x == -1.0f, "arr_f64[0]");
    CHECK(gguf_kv_count(f) == 16, "kv count");
    CHECK(gguf_kv_at(f, 16) == NULL, "kv_at past the end");
    const gguf_kv *k0 = gguf_kv_at(f, 0);
    CHECK(k0 && str_is(k0->key, "u8") && k0->type == GGUF_U8, "kv_at(0)");

    const gguf_tensor *t = gguf_find_tensor(f, "w");
    REQUIRE(t, "tensor w");
    CHECK(t->type == PVK_Q8_0 && t->ne[0] == 64 && t->ne[1] == 2 && t->bytes == 4 * 34, "shape");
    CHECK(t->offset % 32 == 0 && ((const uint8_t *)t->data)[5] == 5, "data placement");
    gguf_close(f);
    free(b.p);
}

/* Opens a crafted image, expects failure with code and a message containing want. */
static void expect_fail(const bytes *b, phivk_status code, const char *want) {
    gguf_file *f = (gguf_file *)1;
    phivk_status st = gguf_open_memory(b->p, b->n, &f);
    CHECK(st == code, "status %d, want %d (%s)", st, code, pvk_errmsg());
    CHECK(f == NULL, "*out is NULL on failure");
    CHECK(strstr(pvk_errmsg(), want) != NULL, "message '%s' should mention '%s'", pvk_errmsg(), want);
    gguf_close(f);
}

/* A file with one f32 tensor "t" of n elements whose info is given by the caller. */
static bytes one_tensor(const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                        uint64_t offset, size_t data_bytes) {
    bytes b = {0};
    b_header(&b, 3, 1, 0);
    b_str(&b, name);
    b_u32(&b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(&b, ne[d]);
    b_u32(&b, type);
    b_u64(&b, offset);
    b_pad(&b, 32);
    for (size_t i = 0; i < data_bytes; i++) b_uint(&b, 0, 1);
    return b;
}

TEST(reader_rejects_bad_headers_with_a_reason) {
    bytes b = {0};
    b_raw(&b, "GGML", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 0);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "not a GGUF file");
    b.n = 0;
    b_raw(&b, "GGUF", 4); b_u32(&b, 0x03000000u); b_u64(&b, 0); b_u64(&b, 0);
    expect_fail(&b, PHIVK_ERR_UNSUPPORTED, "big-endian");
    b.n = 0;
    b_header(&b, 1, 0, 0);
    expect_fail(&b, PHIVK_ERR_UNSUPPORTED, "version 1");
    b.n = 0;
    b_header(&b, 4, 0, 0);
    expect_fail(&b, PHIVK_ERR_UNSUPPORTED, "version 4");
    b.n = 0;
    b_header(&b, 3, 0, 1000000);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "key count 1000000");
    b.n = 0;
    b_header(&b, 3, UINT64_MAX, 0);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "tensor count");
    b.n = 0;
    b_header(&b, 3, 0, 2);
    b_str(&b, "k"); b_u32(&b, GGUF_U8); b_uint(&b, 1, 1);
    b_str(&b, "k"); b_u32(&b, GGUF_U8); b_uint(&b, 2, 1);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "duplicate key 'k' at offset 38");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.alignment"); b_u32(&b, GGUF_U32); b_u32(&b, 48);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "power of two");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "k"); b_u32(&b, 13); b_u64(&b, 0);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "unknown value type 13");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "k"); b_u32(&b, GGUF_STRING); b_u64(&b, UINT64_MAX - 3); b_u64(&b, 0);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "has length");
    free(b.p);
}

TEST(reader_rejects_bad_tensor_infos_with_a_reason) {
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    bytes b = one_tensor("blk.0.attn_qkv.weight", 2, ne, PVK_F32, 0, 100);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "tensor 'blk.0.attn_qkv.weight' data [");
    CHECK(strstr(pvk_errmsg(), "exceeds file size"), "%s", pvk_errmsg());
    free(b.p);
    b = one_tensor("t", 2, ne, 19, 0, 256);
    expect_fail(&b, PHIVK_ERR_UNSUPPORTED, "unknown type id 19");
    free(b.p);
    b = one_tensor("t", 2, ne, PVK_F32, 16, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "not a multiple of the alignment");
    free(b.p);
    b = one_tensor("t", 5, ne, PVK_F32, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "5 dimensions");
    free(b.p);
    b = one_tensor("t", 2, (uint64_t[]){48, 2}, PVK_Q4_0, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "not a multiple of q4_0's block of 32");
    free(b.p);
    b = one_tensor("t", 2, (uint64_t[]){32, 0}, PVK_F32, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "dimension 1 is 0");
    free(b.p);
    b = one_tensor("t", 4, (uint64_t[]){1u << 20, 1u << 20, 1u << 20, 1u << 20}, PVK_F32, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "63 bits");
    free(b.p);
    b = one_tensor("t", 1, (uint64_t[]){(uint64_t)1 << 62}, PVK_F32, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "overflows");
    free(b.p);
    char longname[70];
    memset(longname, 'n', 65);
    longname[65] = 0;
    b = one_tensor(longname, 1, ne, PVK_F32, 0, 512);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "65 bytes long");
    free(b.p);

    b = (bytes){0};
    b_header(&b, 3, 2, 0);
    for (int i = 0; i < 2; i++) {
        b_str(&b, "same"); b_u32(&b, 1); b_u64(&b, 8); b_u32(&b, PVK_F32); b_u64(&b, 32 * (uint64_t)i);
    }
    b_pad(&b, 32);
    for (int i = 0; i < 64; i++) b_uint(&b, 0, 1);
    expect_fail(&b, PHIVK_ERR_BAD_FILE, "duplicate tensor name 'same'");
    free(b.p);
}

TEST(reader_reports_missing_and_non_gguf_files) {
    gguf_file *f;
    CHECK(gguf_open("/nonexistent/model.gguf", &f) == PHIVK_ERR_IO && f == NULL, "missing file");
    CHECK(strstr(pvk_errmsg(), "/nonexistent/model.gguf"), "message names the file: %s", pvk_errmsg());
    CHECK(gguf_open(testdata_path("README.md"), &f) == PHIVK_ERR_BAD_FILE, "README is not GGUF");
    CHECK(strstr(pvk_errmsg(), "not a GGUF file"), "%s", pvk_errmsg());
    CHECK(gguf_open(testdata_path("vocab"), &f) == PHIVK_ERR_IO, "directory");
}

/* ------------------------------------------------------------------ writer */

static gguf_writer *sample_writer(void) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "phi3");
    gguf_writer_set_u32(w, "phi3.context_length", 4096);
    gguf_writer_set_i32(w, "neg", -5);
    gguf_writer_set_f32(w, "eps", 1e-5f);
    gguf_writer_set_bool(w, "flag", true);
    gguf_writer_set_str(w, "bad_utf8", "\xff\xfe\xc3");
    static const float fa[3] = {0.5f, -2.0f, 1e30f};
    static const int32_t ia[4] = {0, -1, 2147483647, -2147483647 - 1};
    static const uint8_t ua[2] = {7, 255};
    static const char *const sa[4] = {"<unk>", "", "\xe2\x96\x81hello", "a b"};
    gguf_writer_set_arr(w, "fa", GGUF_F32, fa, 3);
    gguf_writer_set_arr(w, "ia", GGUF_I32, ia, 4);
    gguf_writer_set_arr(w, "ua", GGUF_U8, ua, 2);
    gguf_writer_set_arr(w, "empty", GGUF_U32, NULL, 0);
    gguf_writer_set_arr_str(w, "sa", sa, 4);
    gguf_writer_set_u32(w, "phi3.context_length", 8192); /* replaces, keeps position */
    float t0[3 * 2] = {1, 2, 3, 4, 5, 6};
    gguf_writer_add_tensor(w, "t0", PVK_F32, 2, (int64_t[]){3, 2}, t0);
    uint8_t q[34 * 3];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (uint8_t)(i * 7);
    gguf_writer_add_tensor(w, "blk.0.attn_qkv.weight", PVK_Q8_0, 3, (int64_t[]){32, 1, 3}, q);
    gguf_writer_add_tensor(w, "zeros", PVK_F16, 1, (int64_t[]){5}, NULL);
    return w;
}

TEST(writer_round_trips_keys_values_and_tensors_through_the_reader) {
    gguf_writer *w = sample_writer();
    void *img;
    size_t size;
    phivk_status st = gguf_writer_build(w, &img, &size);
    REQUIRE(st == PHIVK_OK, "build: %s", pvk_errmsg());
    gguf_file *f;
    st = gguf_open_memory(img, size, &f);
    REQUIRE(st == PHIVK_OK, "reopen: %s", pvk_errmsg());
    CHECK(gguf_version(f) == 3 && gguf_alignment(f) == 32, "v3, alignment 32");
    CHECK(gguf_kv_count(f) == 11, "11 keys, got %lu", (unsigned long)gguf_kv_count(f));
    const gguf_kv *k1 = gguf_kv_at(f, 1);
    uint32_t u;
    CHECK(k1 && str_is(k1->key, "phi3.context_length") && gguf_get_u32(f, "phi3.context_length", &u) &&
              u == 8192, "replaced key keeps its position and takes the new value");
    int64_t i;
    float x;
    bool b;
    gguf_str s;
    CHECK(gguf_get_i64(f, "neg", &i) && i == -5, "i32");
    CHECK(gguf_get_f32(f, "eps", &x) && x == 1e-5f, "f32 exact");
    CHECK(gguf_get_bool(f, "flag", &b) && b, "bool");
    CHECK(gguf_get_str(f, "bad_utf8", &s) && s.len == 3 && !memcmp(s.ptr, "\xff\xfe\xc3", 3),
          "strings are bytes: invalid UTF-8 survives");
    const gguf_kv *a = gguf_find(f, "fa");
    CHECK(a && a->arr_n == 3 && gguf_arr_f32(a, 2, &x) && x == 1e30f, "f32 array");
    a = gguf_find(f, "ia");
    CHECK(a && gguf_arr_i64(a, 3, &i) && i == INT32_MIN, "i32 array");
    a = gguf_find(f, "ua");
    CHECK(a && gguf_arr_i64(a, 1, &i) && i == 255, "u8 array");
    a = gguf_find(f, "empty");
    CHECK(a && a->arr_n == 0 && a->arr_type == GGUF_U32, "empty array");
    a = gguf_find(f, "sa");
    CHECK(a && a->arr_n == 4 && gguf_arr_str(f, a, 2, &s) && str_is(s, "\xe2\x96\x81hello"), "string array");
    CHECK(a && gguf_arr_str(f, a, 1, &s) && s.len == 0, "empty string element");

    CHECK(gguf_tensor_count(f) == 3, "tensors");
    const gguf_tensor *t = gguf_find_tensor(f, "t0");
    CHECK(t && t->type == PVK_F32 && t->ne[0] == 3 && t->ne[1] == 2 && t->bytes == 24 &&
              ((const float *)t->data)[5] == 6.0f, "t0");
    t = gguf_find_tensor(f, "blk.0.attn_qkv.weight");
    CHECK(t && t->n_dims == 3 && t->ne[2] == 3 && t->bytes == 102 && t->offset % 32 == 0 &&
              ((const uint8_t *)t->data)[101] == (uint8_t)(101 * 7), "q8_0 tensor");
    t = gguf_find_tensor(f, "zeros");
    CHECK(t && t->bytes == 10 && ((const uint8_t *)t->data)[9] == 0, "NULL data is zeros");
    gguf_close(f);
    free(img);

    char path[] = "/tmp/phivk-test-gguf-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    st = gguf_writer_save(w, path);
    CHECK(st == PHIVK_OK, "save: %s", pvk_errmsg());
    st = gguf_open(path, &f);
    CHECK(st == PHIVK_OK && gguf_tensor_count(f) == 3, "saved file opens: %s", pvk_errmsg());
    gguf_close(f);
    remove(path);
    gguf_writer_destroy(w);
}

TEST(writer_keeps_the_first_error_until_build) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_add_tensor(w, "bad", PVK_Q4_0, 1, (int64_t[]){31}, NULL);
    gguf_writer_add_tensor(w, "fine", PVK_F32, 1, (int64_t[]){4}, NULL);
    void *img = (void *)1;
    size_t size = 1;
    CHECK(gguf_writer_build(w, &img, &size) == PHIVK_ERR_INVALID && img == NULL && size == 0, "sticky error");
    CHECK(strstr(pvk_errmsg(), "'bad'"), "message names the tensor: %s", pvk_errmsg());
    gguf_writer_destroy(w);

    w = gguf_writer_create();
    gguf_writer_add_tensor(w, "a", PVK_F32, 1, (int64_t[]){4}, NULL);
    gguf_writer_add_tensor(w, "a", PVK_F32, 1, (int64_t[]){4}, NULL);
    CHECK(gguf_writer_build(w, &img, &size) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "duplicate"),
          "duplicate tensor: %s", pvk_errmsg());
    gguf_writer_destroy(w);

    w = gguf_writer_create();
    char name[70];
    memset(name, 'x', 65);
    name[65] = 0;
    gguf_writer_add_tensor(w, name, PVK_F32, 1, (int64_t[]){4}, NULL);
    CHECK(gguf_writer_build(w, &img, &size) == PHIVK_ERR_INVALID, "65-byte name refused");
    gguf_writer_destroy(w);
    gguf_writer_destroy(NULL);
}

TEST(writer_honours_a_custom_alignment) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_u32(w, "general.alignment", 256);
    gguf_writer_add_tensor(w, "a", PVK_F32, 1, (int64_t[]){3}, (float[]){1, 2, 3});
    gguf_writer_add_tensor(w, "b", PVK_F32, 1, (int64_t[]){3}, (float[]){4, 5, 6});
    void *img;
    size_t size;
    REQUIRE(gguf_writer_build(w, &img, &size) == PHIVK_OK, "%s", pvk_errmsg());
    gguf_file *f;
    REQUIRE(gguf_open_memory(img, size, &f) == PHIVK_OK, "%s", pvk_errmsg());
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    CHECK(gguf_alignment(f) == 256 && b && b->offset % 256 == 0 && ((const float *)b->data)[2] == 6.0f,
          "tensor b at a multiple of 256");
    gguf_close(f);
    free(img);
    gguf_writer_destroy(w);
}

TEST(reader_accepts_version_2_files) {
    /* v2 has the v3 layout (64-bit counts); only the version field differs */
    bytes b = every_type_file();
    b.p[4] = 2;
    gguf_file *f;
    REQUIRE(gguf_open_memory(b.p, b.n, &f) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(gguf_version(f) == 2 && gguf_kv_count(f) == 16 && gguf_tensor_count(f) == 1, "v2 contents");
    gguf_close(f);
    free(b.p);
}
