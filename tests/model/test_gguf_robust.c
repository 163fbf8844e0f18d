/* The GGUF reader on hostile input, built with ASan + UBSan (see meson.build):
 * every truncation of a writer-made file, seeded random byte flips, hand-made
 * absurd counts / lengths / offsets / shapes / alignments, bytes that are not
 * UTF-8, and the real files in the shared test data. Each bad input must give a
 * non-OK status and a non-empty message; each accepted one is walked in full so
 * the sanitizers see any read outside the buffer (buffers are malloc'd to their
 * exact size). */
#define HARNESS_MAIN
#include "harness.h"

#include "gguf.h"
#include "gguf_bytes.h"

/* Opens a private exact-size copy of data; returns the status (and walks an accepted file). */
static phivk_status open_copy(const void *data, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    if (!p) abort();
    if (n) memcpy(p, data, n);
    pvk_fail(PHIVK_OK, "%s", ""); /* so a message left by an earlier case cannot pass for this one */
    gguf_file *f = NULL;
    phivk_status st = gguf_open_memory(p, n, &f);
    if (st == PHIVK_OK) gguf_walk(f);
    gguf_close(f);
    free(p);
    return st;
}

static void expect_bad(const bytes *b, const char *what) {
    phivk_status st = open_copy(b->p, b->n);
    CHECK(st != PHIVK_OK, "%s: accepted", what);
    printf("    %-45s %s\n", what, pvk_errmsg());
    CHECK(pvk_errmsg()[0] != 0, "%s: empty message", what);
}

/* A small file with every value kind, a nested array and three tensors; the last
 * tensor is a whole number of alignment units, so every strict prefix is broken. */
static void small_file(void **img, size_t *n) {
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    static const char *const toks[4] = {"<unk>", "\xe2\x96\x81" "a", "", "\xff"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    static const float sc[4] = {0, -1, -2, -3};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, sc, 4);
    static const int32_t tt[4] = {2, 1, 1, 6};
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, tt, 4);
    gguf_writer_add_tensor(w, "a", PVK_F32, 1, (int64_t[]){3}, (float[]){1, 2, 3});
    gguf_writer_add_tensor(w, "blk.0.attn_q.weight", PVK_Q8_0, 2, (int64_t[]){32, 2}, NULL);
    gguf_writer_add_tensor(w, "z", PVK_F16, 2, (int64_t[]){16, 4}, NULL); /* 128 bytes */
    if (gguf_writer_build(w, img, n) != PHIVK_OK) abort();
    gguf_writer_destroy(w);
}

TEST(every_truncation_of_a_valid_file_is_rejected_with_a_message) {
    void *img;
    size_t n;
    small_file(&img, &n);
    REQUIRE(open_copy(img, n) == PHIVK_OK, "the whole file opens: %s", pvk_errmsg());
    int accepted = 0, silent = 0;
    for (size_t len = 0; len < n; len++) {
        if (open_copy(img, len) == PHIVK_OK) {
            if (accepted++ < 3) CHECK(0, "prefix of %zu of %zu bytes accepted", len, n);
        } else if (!pvk_errmsg()[0]) {
            silent++;
        }
    }
    CHECK(accepted == 0 && silent == 0, "%d prefixes accepted, %d rejected without a message (file %zu bytes)",
          accepted, silent, n);
    free(img);
}

TEST(random_byte_flips_never_crash_and_failures_have_messages) {
    void *img;
    size_t n;
    small_file(&img, &n);
    uint8_t *m = malloc(n);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(m, img, n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            /* favour the metadata, where a flip changes a count, length or type */
            size_t at = (size_t)(s >> 8) % (iter % 2 ? n : (n < 300 ? n : 300));
            m[at] ^= (uint8_t)(s & 0xff ? s & 0xff : 1);
        }
        phivk_status st = open_copy(m, n);
        if (st == PHIVK_OK) {
            ok++;
        } else {
            bad++;
            if (!pvk_errmsg()[0]) CHECK(0, "iteration %d: rejected without a message", iter);
        }
    }
    printf("    4000 mutants: %d accepted, %d rejected\n", ok, bad);
    CHECK(bad > 1000, "most mutants of the header and metadata are rejected (%d)", bad);
    free(m);
    free(img);
}

TEST(absurd_counts_lengths_and_offsets_are_rejected) {
    bytes b = {0};
#define CASE(what, ...)              \
    do {                             \
        b.n = 0;                     \
        __VA_ARGS__;                 \
        expect_bad(&b, what);        \
    } while (0)
    CASE("empty file", (void)0);
    CASE("3 bytes", b_raw(&b, "GGU", 3));
    CASE("magic only", b_raw(&b, "GGUF", 4));
    CASE("no counts", b_raw(&b, "GGUF", 4); b_u32(&b, 3));
    CASE("n_kv = 2^64-1", b_header(&b, 3, 0, UINT64_MAX));
    CASE("n_kv just over what fits", b_header(&b, 3, 0, 2); b_str(&b, "k"); b_u32(&b, GGUF_U8); b_uint(&b, 0, 1));
    CASE("n_tensors = 2^63", b_header(&b, 3, (uint64_t)1 << 63, 0));
    CASE("key length 2^64-1", b_header(&b, 3, 0, 1); b_u64(&b, UINT64_MAX); b_u32(&b, 0); b_u64(&b, 0));
    CASE("key length = remaining + 1", b_header(&b, 3, 0, 1); b_u64(&b, 6); b_raw(&b, "abcde", 5));
    CASE("value type 2^32-1", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, UINT32_MAX); b_u64(&b, 0));
    CASE("string value length 2^63", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_STRING);
         b_u64(&b, (uint64_t)1 << 63));
    for (uint32_t et = 0; et <= GGUF_F64; et++)
        CASE("array count 2^61 of every element type", b_header(&b, 3, 0, 1); b_str(&b, "k");
             b_u32(&b, GGUF_ARRAY); b_u32(&b, et); b_u64(&b, (uint64_t)1 << 61); b_u64(&b, 0));
    CASE("array of 2^62 u64 (count x size overflows)", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_ARRAY);
         b_u32(&b, GGUF_U64); b_u64(&b, (uint64_t)1 << 62); b_u64(&b, 0));
    CASE("array element type 99", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_ARRAY); b_u32(&b, 99);
         b_u64(&b, 1); b_u64(&b, 0));
    CASE("arrays nested 10000 deep", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_ARRAY);
         for (int d = 0; d < 10000; d++) { b_u32(&b, GGUF_ARRAY); b_u64(&b, 1); } b_u32(&b, GGUF_U8); b_u64(&b, 0));
    CASE("string in an array runs past the end", b_header(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, GGUF_ARRAY);
         b_u32(&b, GGUF_STRING); b_u64(&b, 2); b_str(&b, "ok"); b_u64(&b, 1000); b_raw(&b, "short", 5));
    CASE("alignment 0", b_header(&b, 3, 0, 1); b_str(&b, "general.alignment"); b_u32(&b, GGUF_U32); b_u32(&b, 0));
    CASE("alignment 3", b_header(&b, 3, 0, 1); b_str(&b, "general.alignment"); b_u32(&b, GGUF_U32); b_u32(&b, 3));
    CASE("alignment as a string", b_header(&b, 3, 0, 1); b_str(&b, "general.alignment"); b_u32(&b, GGUF_STRING);
         b_str(&b, "32"));

    /* tensor infos: name, n_dims, ne..., type, offset, then padding and data */
#define TENSOR(name, n_dims, type, off, ...)                                       \
    do {                                                                            \
        uint64_t ne_[] = {__VA_ARGS__};                                             \
        b_str(&b, name);                                                            \
        b_u32(&b, n_dims);                                                          \
        for (size_t d_ = 0; d_ < sizeof ne_ / sizeof ne_[0]; d_++) b_u64(&b, ne_[d_]); \
        b_u32(&b, type);                                                            \
        b_u64(&b, off);                                                             \
    } while (0)
#define DATA(n) do { b_pad(&b, 32); for (int i_ = 0; i_ < (n); i_++) b_uint(&b, 0, 1); } while (0)
    CASE("n_dims 2^32-1", b_header(&b, 3, 1, 0); TENSOR("t", UINT32_MAX, PVK_F32, 0, 1); DATA(64));
    CASE("n_dims 0", b_header(&b, 3, 1, 0); TENSOR("t", 0, PVK_F32, 0, 1); DATA(64));
    CASE("ne = 2^64-1", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, 0, UINT64_MAX); DATA(64));
    CASE("ne = 2^63", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, 0, (uint64_t)1 << 63); DATA(64));
    CASE("ne product overflows", b_header(&b, 3, 1, 0);
         TENSOR("t", 4, PVK_F32, 0, 1 << 16, 1 << 16, 1 << 16, 1 << 16); DATA(64));
    CASE("bytes overflow", b_header(&b, 3, 1, 0); TENSOR("t", 2, PVK_F32, 0, (uint64_t)1 << 40, 1 << 22); DATA(64));
    CASE("offset 2^64-32", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, UINT64_MAX - 31, 8); DATA(64));
    CASE("offset 2^63", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, (uint64_t)1 << 63, 8); DATA(64));
    CASE("data one byte past the end", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, 0, 17); DATA(64));
    CASE("misaligned offset", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_F32, 4, 8); DATA(64));
    CASE("type id 2^32-1", b_header(&b, 3, 1, 0); TENSOR("t", 1, UINT32_MAX, 0, 8); DATA(64));
    CASE("removed type id 4 (q4_2)", b_header(&b, 3, 1, 0); TENSOR("t", 1, 4, 0, 32); DATA(64));
    CASE("row not a whole block", b_header(&b, 3, 1, 0); TENSOR("t", 1, PVK_Q4_K, 0, 255); DATA(512));
    CASE("name length 2^64-1", b_header(&b, 3, 1, 0); b_u64(&b, UINT64_MAX); DATA(64));
    CASE("name with a NUL", b_header(&b, 3, 1, 0); b_u64(&b, 3); b_raw(&b, "a\0b", 3); b_u32(&b, 1);
         b_u64(&b, 8); b_u32(&b, PVK_F32); b_u64(&b, 0); DATA(64));
    CASE("tensors past the end of a huge alignment", b_header(&b, 3, 1, 1); b_str(&b, "general.alignment");
         b_u32(&b, GGUF_U32); b_u32(&b, 1u << 31); TENSOR("t", 1, PVK_F32, 0, 8); DATA(64));
    CASE("second tensor name runs past the end", b_header(&b, 3, 2, 0); TENSOR("t", 1, PVK_F32, 0, 8);
         b_u64(&b, 100); b_raw(&b, "0123456789012345678901234567890123456789", 40));
#undef CASE
#undef TENSOR
#undef DATA
    free(b.p);
}

TEST(strings_that_are_not_utf8_are_carried_as_bytes) {
    bytes b = {0};
    b_header(&b, 3, 1, 2);
    b_str(&b, "\xff\xfe key");
    b_u32(&b, GGUF_STRING);
    b_str(&b, "\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80");
    b_str(&b, "general.name");
    b_u32(&b, GGUF_STRING);
    b_str(&b, "\x80");
    b_str(&b, "\xe2\x82 bad");
    b_u32(&b, 1);
    b_u64(&b, 8);
    b_u32(&b, PVK_F32);
    b_u64(&b, 0);
    b_pad(&b, 32);
    for (int i = 0; i < 32; i++) b_uint(&b, 0, 1);
    CHECK(open_copy(b.p, b.n) == PHIVK_OK, "accepted: %s", pvk_errmsg());
    gguf_file *f;
    REQUIRE(gguf_open_memory(b.p, b.n, &f) == PHIVK_OK, "%s", pvk_errmsg());
    gguf_str s;
    CHECK(gguf_get_str(f, "\xff\xfe key", &s) && s.len == 11 && !memcmp(s.ptr, "\xc3\x28 \xed", 4), "value bytes kept");
    CHECK(gguf_find_tensor(f, "\xe2\x82 bad") != NULL, "tensor name bytes kept");
    gguf_close(f);
    /* a duplicate non-UTF-8 name: the message stays printable */
    b.n = 0;
    b_header(&b, 3, 0, 2);
    for (int i = 0; i < 2; i++) {
        b_str(&b, "\x1b[31m\xff");
        b_u32(&b, GGUF_U8);
        b_uint(&b, 0, 1);
    }
    CHECK(open_copy(b.p, b.n) == PHIVK_ERR_BAD_FILE, "duplicate rejected");
    for (const char *c = pvk_errmsg(); *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
            CHECK(0, "message byte 0x%02x is not printable: %s", (unsigned char)*c, pvk_errmsg());
            break;
        }
    free(b.p);
}

TEST(every_shared_test_file_opens_cleanly) {
    static const char *files[] = {
        "reference/phi3-f32.gguf", "reference/phi2.gguf", "reference/llama-gqa-tied.gguf",
        "reference/phi3-128k.gguf", "reference/phi3-q4_0.gguf", "vocab/ggml-vocab-gpt-2.gguf",
        "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        gguf_file *f;
        phivk_status st = gguf_open(testdata_path(files[i]), &f);
        CHECK(st == PHIVK_OK, "%s: %s", files[i], pvk_errmsg());
        if (st) continue;
        gguf_walk(f);
        gguf_close(f);
    }
}
