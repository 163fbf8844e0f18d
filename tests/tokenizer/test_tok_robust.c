/* Robustness of the tokenizers under ASan + UBSan: random bytes, random and broken
 * UTF-8, huge whitespace runs, out-of-range ids, malformed tokenizer keys and
 * malformed tiktoken rank files. The
 * inputs come from a fixed-seed generator, so a failure reproduces. */
#define HARNESS_MAIN
#include "harness.h"

#include "phivk.h"
#include "tok.h"
#include "tok_vectors.h"

static const char *const vocab_names[] = {"phi-3", "llama-spm", "gpt-2", "cl100k"};
#define N_VOCABS (sizeof vocab_names / sizeof vocab_names[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) { return tv_rnd(&rng, n); }

/* Appends one random well-formed character, mostly ASCII, some 2-, 3- and 4-byte. */
static size_t rand_char(char *p) {
    uint32_t kind = rnd(10), cp;
    if (kind < 6) cp = 0x20 + rnd(0x5F) - (rnd(8) == 0 ? 0x16 : 0); /* ASCII incl. \t \n */
    else if (kind < 8) cp = 0x80 + rnd(0x780);
    else if (kind < 9) {
        do cp = 0x800 + rnd(0xF800); /* not U+2581: SentencePiece's space marker reads as ' ' */
        while ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581);
    } else cp = 0x10000 + rnd(0x100000);
    return tv_utf8(cp, p);
}

static int64_t tokenize(const phivk_vocab *v, const char *s, size_t len, bool special, int32_t **ids) {
    phivk_tokenize_params p = {PHIVK_BOS_NO, special};
    int64_t n = phivk_tokenize(v, s, len, &p, NULL, 0);
    *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof **ids);
    if (n > 0 && phivk_tokenize(v, s, len, &p, *ids, n) != n) return -2;
    return n;
}

TEST(random_bytes_either_tokenize_or_fail_with_the_utf8_offset) {
    char buf[512];
    for (size_t k = 0; k < N_VOCABS; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(vocab_names[k]));
        REQUIRE(v, "%s: %s", vocab_names[k], phivk_last_error());
        for (int it = 0; it < 300; it++) {
            size_t len = rnd(sizeof buf);
            for (size_t i = 0; i < len; i++) buf[i] = (char)rnd(256);
            int32_t *ids;
            int64_t n = tokenize(v, buf, len, it & 1, &ids);
            size_t bad = tok_utf8_invalid_at(buf, len);
            char want[64];
            snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad);
            if (bad < len) CHECK(n == -1 && strstr(phivk_last_error(), want), "%s: '%s'", vocab_names[k], phivk_last_error());
            else CHECK(n >= 0, "%s: valid random bytes refused: %s", vocab_names[k], phivk_last_error());
            free(ids);
        }
        phivk_vocab_free(v);
    }
}

TEST(random_valid_utf8_round_trips_and_one_broken_byte_is_reported_where_it_is) {
    char buf[2048];
    for (size_t k = 0; k < N_VOCABS; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(vocab_names[k]));
        REQUIRE(v, "%s", vocab_names[k]);
        int fails = 0;
        for (int it = 0; it < 200; it++) {
            size_t len = 0, target = rnd(sizeof buf - 8);
            while (len < target) len += rand_char(buf + len);
            int32_t *ids;
            int64_t n = tokenize(v, buf, len, false, &ids);
            char *back = n >= 0 ? phivk_detokenize(v, ids, n, false) : NULL;
            if (!back || strlen(back) != len || memcmp(back, buf, len)) {
                fails++;
                printf("    %s: '%.*s' came back as '%s'\n", vocab_names[k], (int)len, buf, back ? back : "(null)");
            }
            free(back);
            free(ids);

            size_t at = rnd((uint32_t)len + 1); /* a lone continuation byte is never valid */
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = (char)0x80;
            size_t want_at = tok_utf8_invalid_at(buf, len + 1);
            char want[64];
            snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", want_at);
            CHECK(tokenize(v, buf, len + 1, it & 1, &ids) == -1 && strstr(phivk_last_error(), want),
                  "%s: %s (want %s)", vocab_names[k], phivk_last_error(), want);
            free(ids);
        }
        CHECK(fails == 0, "%s: %d of 200 random texts did not round-trip", vocab_names[k], fails);
        phivk_vocab_free(v);
    }
}

TEST(markup_soup_with_special_parsing_never_breaks) {
    static const char *const atoms[] = {"<", "|", ">", "s", "/", " ", "\n", "\t", "<|end|>", "<|user|>",
                                        "</s>", "<s>", "[PAD32011]", "<0x0A>", "<unk>", "<|endoftext|>", "é"};
    char buf[1024];
    for (size_t k = 0; k < N_VOCABS; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(vocab_names[k]));
        REQUIRE(v, "%s", vocab_names[k]);
        for (int it = 0; it < 300; it++) {
            size_t len = 0;
            while (len < 900) {
                const char *a = atoms[rnd(sizeof atoms / sizeof atoms[0])];
                memcpy(buf + len, a, strlen(a));
                len += strlen(a);
            }
            int32_t *ids;
            int64_t n = tokenize(v, buf, len, it & 1, &ids);
            CHECK(n > 0, "%s: %s", vocab_names[k], phivk_last_error());
            char *s = n > 0 ? phivk_detokenize(v, ids, n, it & 2) : NULL;
            CHECK(s && tok_utf8_invalid_at(s, strlen(s)) == strlen(s), "%s: detokenized text is UTF-8", vocab_names[k]);
            free(s);
            free(ids);
        }
        phivk_vocab_free(v);
    }
}

TEST(huge_whitespace_and_letter_runs_tokenize) {
    /* One 1 MiB pre-token stresses PCRE2's backtracking and the merge heap. */
    size_t len = 1 << 20;
    char *buf = malloc(len);
    REQUIRE(buf, "alloc");
    for (size_t k = 0; k < N_VOCABS; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(vocab_names[k]));
        REQUIRE(v, "%s", vocab_names[k]);
        for (int kind = 0; kind < 2; kind++) {
            for (size_t i = 0; i < len; i++) buf[i] = kind ? 'a' : " \n\t "[i % 4];
            int32_t *ids;
            int64_t n = tokenize(v, buf, len, false, &ids);
            char *s = n > 0 ? phivk_detokenize(v, ids, n, false) : NULL;
            CHECK(s && strlen(s) == len && !memcmp(s, buf, len), "%s kind %d: n %lld %s", vocab_names[k], kind,
                  (long long)n, phivk_last_error());
            free(s);
            free(ids);
        }
        phivk_vocab_free(v);
    }
    free(buf);
}

TEST(out_of_range_ids_are_refused_or_ignored_and_any_valid_ids_give_utf8) {
    for (size_t k = 0; k < N_VOCABS; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(vocab_names[k]));
        REQUIRE(v, "%s", vocab_names[k]);
        int32_t nv = phivk_vocab_size(v);
        const int32_t wild[] = {-1, nv, nv + 1, INT32_MAX, INT32_MIN};
        phivk_detok *d = phivk_detok_create(v, true);
        REQUIRE(d, "detok");
        char out[64];
        for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
            CHECK(phivk_detokenize(v, &wild[i], 1, true) == NULL && strstr(phivk_last_error(), "outside"),
                  "id %d refused", wild[i]);
            CHECK(phivk_detok_push(d, wild[i], out, sizeof out) == 0, "detok ignores id %d", wild[i]);
            CHECK(phivk_token_piece(v, wild[i]) == NULL && !phivk_token_is_stop(v, wild[i]), "no piece for %d", wild[i]);
        }
        int32_t ids[256];
        for (int it = 0; it < 200; it++) {
            for (int i = 0; i < 256; i++) ids[i] = (int32_t)rnd((uint32_t)nv);
            char *s = phivk_detokenize(v, ids, 256, it & 1);
            CHECK(s && tok_utf8_invalid_at(s, strlen(s)) == strlen(s), "%s: random ids give UTF-8", vocab_names[k]);
            free(s);
            for (int i = 0; i < 256; i++) {
                size_t n = phivk_detok_push(d, ids[i], out, sizeof out);
                CHECK(n < sizeof out && out[n] == 0, "push output fits and is terminated"); /* <0x00> is a NUL */
            }
        }
        while (phivk_detok_flush(d, out, sizeof out)) {}
        phivk_detok_free(d);
        char *empty = phivk_detokenize(v, NULL, 0, false);
        CHECK(empty && !*empty, "no ids: empty text");
        free(empty);
        int32_t one;
        CHECK(phivk_tokenize(v, NULL, 3, NULL, &one, 1) == -1, "NULL text with a length");
        CHECK(phivk_tokenize(v, "x", 1, NULL, NULL, 5) == -1, "NULL output with a capacity");
        phivk_vocab_free(v);
    }
}

/* A tokenizer GGUF image with one key replaced by a broken value. */
typedef enum breakage {
    BREAK_NONE, BREAK_TYPE_RANGE, BREAK_SCORES_SHORT, BREAK_BOS_RANGE, BREAK_TOKENS_INTS,
    BREAK_MERGE_NO_SPACE, BREAK_NO_MERGES, BREAK_MODEL, BREAK_NO_TOKENS, BREAK_ADD_BOS_NO_BOS,
} breakage;

static phivk_status build(const char *model, breakage b, tok_vocab **v) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
    const int32_t types[] = {2, 3, 3, 1, 1, b == BREAK_TYPE_RANGE ? 9 : 1};
    static const float scores[] = {0, 0, 0, -1, -1, -0.5f};
    static const int32_t ints[] = {1, 2, 3};
    const char *merges[] = {b == BREAK_MERGE_NO_SPACE ? "ab" : "a b"};
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", b == BREAK_MODEL ? "t5" : model);
    if (b == BREAK_TOKENS_INTS) gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_I32, ints, 3);
    else if (b != BREAK_NO_TOKENS) gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 6);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, b == BREAK_SCORES_SHORT ? 5 : 6);
    if (b == BREAK_BOS_RANGE) gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 6);
    if (b == BREAK_ADD_BOS_NO_BOS) gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (b != BREAK_NO_MERGES) gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    void *img = NULL;
    size_t size;
    gguf_file *f = NULL;
    phivk_status st = gguf_writer_build(w, &img, &size);
    if (!st) st = gguf_open_memory(img, size, &f);
    *v = NULL;
    if (!st) st = tok_vocab_from_gguf(f, v);
    gguf_close(f);
    gguf_writer_destroy(w);
    free(img);
    return st;
}

TEST(malformed_tokenizer_keys_give_a_message_naming_the_key) {
    static const struct { const char *model; breakage b; phivk_status want; const char *msg; } cases[] = {
        {"llama", BREAK_NONE, PHIVK_OK, ""},
        {"gpt2", BREAK_NONE, PHIVK_OK, ""},
        {"llama", BREAK_TYPE_RANGE, PHIVK_ERR_BAD_FILE, "token_type[5]"},
        {"llama", BREAK_SCORES_SHORT, PHIVK_ERR_BAD_FILE, "scores"},
        {"llama", BREAK_BOS_RANGE, PHIVK_ERR_BAD_FILE, "bos_token_id"},
        {"llama", BREAK_TOKENS_INTS, PHIVK_ERR_BAD_FILE, "tokenizer.ggml.tokens"},
        {"llama", BREAK_NO_TOKENS, PHIVK_ERR_BAD_FILE, "tokenizer.ggml.tokens"},
        {"gpt2", BREAK_MERGE_NO_SPACE, PHIVK_ERR_BAD_FILE, "merges[0]"},
        {"gpt2", BREAK_NO_MERGES, PHIVK_ERR_BAD_FILE, "merges"},
        {"gpt2", BREAK_MODEL, PHIVK_ERR_UNSUPPORTED, "'t5'"},
        {"gpt2", BREAK_ADD_BOS_NO_BOS, PHIVK_ERR_BAD_FILE, "add_bos_token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok_vocab *v;
        phivk_status st = build(cases[i].model, cases[i].b, &v);
        CHECK(st == cases[i].want && strstr(pvk_errmsg(), cases[i].msg), "case %zu: status %d, '%s'", i, (int)st,
              pvk_errmsg());
        CHECK((v != NULL) == (st == PHIVK_OK), "case %zu: a vocab only on success", i);
        tok_vocab_destroy(v);
    }
}

/* A tiktoken rank file made of the 256 single bytes (ranks 0..255) and then
 * extra; the caller frees the result. */
static char *rank_file(const char *extra, size_t *len) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t cap = 256 * 16 + strlen(extra) + 1, n = 0;
    char *s = malloc(cap);
    for (int b = 0; s && b < 256; b++)
        n += (size_t)snprintf(s + n, cap - n, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    if (s) memcpy(s + n, extra, strlen(extra) + 1);
    *len = s ? n + strlen(extra) : 0;
    return s;
}

TEST(malformed_tiktoken_rank_files_give_one_message_naming_the_fault) {
    static const struct { const char *extra, *msg; } cases[] = {
        {"YWI* 256\n", "line 257: the token is not base64"},
        {"YWI 256\n", "line 257: the token is not base64"},           /* not a multiple of 4 */
        {"=YWI 256\n", "line 257: the token is not base64"},
        {" 256\n", "line 257: the token is not base64"},              /* empty token */
        {"YWI= 255\n", "line 257: rank 255 appears twice"},
        {"YWI= 258\n", "rank 258 with 257 lines"},                    /* a gap at 256 */
        {"YWI= 256\n\nYWM= 258\n", "no rank 257"},                   /* a gap hidden by an empty line */
        {"YWI= 99999999999\n", "the rank is not a number"},           /* 11 digits */
        {"YWI= -1\n", "the rank is not a number"},
        {"YWI=\t256\n", "no space"},
        {"YQ== 256\n", "ranks 97 and 256 the same token"},            /* "a" again */
        {"YWI= 256\n", "has 257 ranks, but Phi-3-small's special tokens start at id 100256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *data = rank_file(cases[i].extra, &len);
        gguf_writer *w = gguf_writer_create();
        REQUIRE(data && w, "alloc");
        phivk_status st = tok_tiktoken_keys(data, len, w);
        CHECK(st == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), cases[i].msg), "case %zu: status %d, '%s' (want '%s')",
              i, (int)st, pvk_errmsg(), cases[i].msg);
        gguf_writer_destroy(w);
        free(data);
    }
    /* Absurd sizes: more lines than any vocabulary, and a token longer than any. */
    size_t big = (4u << 20) + 16;
    char *data = malloc(big * 2 + 16);
    REQUIRE(data, "alloc");
    memset(data, '\n', big);
    gguf_writer *w = gguf_writer_create();
    CHECK(tok_tiktoken_keys(data, big, w) == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), "lines (limit"), "%s", pvk_errmsg());
    memset(data, 'Q', big * 2);
    memcpy(data + big * 2, " 0\n", 3);
    CHECK(tok_tiktoken_keys(data, big * 2 + 3, w) == PHIVK_ERR_BAD_FILE && strstr(pvk_errmsg(), "line 1: the token is not base64"),
          "%s", pvk_errmsg());
    gguf_writer_destroy(w);
    free(data);
    /* Random bytes, and the real file with bytes flipped: a vocabulary or a message, never a crash. */
    size_t real_len;
    char *real = tv_slurp(tv_vocab_path("cl100k"), &real_len);
    REQUIRE(real, "%s", tv_vocab_path("cl100k"));
    for (int it = 0; it < 40; it++) {
        char junk[512];
        size_t n = rnd(sizeof junk);
        for (size_t k = 0; k < n; k++) junk[k] = rnd(4) ? "AZaz09+/= \n\r"[rnd(13)] : (char)rnd(256);
        bool flip = it % 4 == 0;
        if (flip) real[rnd((uint32_t)real_len)] ^= (char)(1 + rnd(255));
        w = gguf_writer_create();
        phivk_status st = tok_tiktoken_keys(flip ? real : junk, flip ? real_len : n, w);
        /* junk has too few lines to be a whole vocabulary; a flip may leave a valid one */
        CHECK((flip && st == PHIVK_OK) || (st == PHIVK_ERR_BAD_FILE && *pvk_errmsg()), "case %d: status %d", it, (int)st);
        gguf_writer_destroy(w);
    }
    free(real);
}
