/* libFuzzer entry for the tokenizers (clang only; see tests/tokenizer/meson.build
 * for how to build and run it). The real Phi-3, Llama (SentencePiece) and GPT-2
 * vocabularies are loaded once; each input is tokenized with and without
 * special-token parsing, detokenized whole and streamed, made visible for a
 * terminal, and rendered as a conversation (its NUL bytes split the messages).
 * Besides what the sanitizers catch, the public contracts are checked: invalid
 * UTF-8 is refused with a message, plain text round-trips and never becomes a
 * control token (nor does a message's text in a chat prompt), every text that
 * comes out is UTF-8, and counting calls agree with writing calls. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phivk.h"
#include "tok.h"
#include "tok_vectors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_names[] = {"phi-3", "llama-spm", "gpt-2"};
#define N_VOCABS (sizeof vocab_names / sizeof vocab_names[0])
static phivk_vocab *vocabs[N_VOCABS];

/* Like abort(), but names the broken contract first. */
static void fail(const char *vocab, const char *what) {
    fprintf(stderr, "fuzz_tokenize: %s: %s (last error: %s)\n", vocab, what, phivk_last_error());
    abort();
}

static bool is_utf8(const char *s, size_t n) { return tok_utf8_invalid_at(s, n) == n; }

/* Counted, then written: the two calls must agree. NULL for -1 (with *n = -1). */
static int32_t *tokenize(const phivk_vocab *v, const char *vn, const char *s, size_t len, bool special,
                         int64_t *n) {
    phivk_tokenize_params p = {PHIVK_BOS_AUTO, special};
    *n = phivk_tokenize(v, s, len, &p, NULL, 0);
    if (*n < 0) return NULL;
    int32_t *ids = malloc((size_t)(*n + 1) * sizeof *ids);
    if (!ids) abort();
    if (phivk_tokenize(v, s, len, &p, ids, *n) != *n) fail(vn, "counting and writing disagree");
    for (int64_t i = 0; i < *n; i++)
        if (ids[i] < 0 || ids[i] >= phivk_vocab_size(v)) fail(vn, "token id outside the vocabulary");
    return ids;
}

/* The streaming detokenizer with a small buffer, pushed and flushed to the end
 * (text may hold NUL bytes: the count, not strlen, says where it ends). */
static void stream(const phivk_vocab *v, const char *vn, const int32_t *ids, int64_t n, bool special) {
    phivk_detok *d = phivk_detok_create(v, special);
    if (!d) fail(vn, "detok_create");
    char out[64];
    for (int64_t i = 0; i < n; i++) {
        size_t k = phivk_detok_push(d, ids[i], out, sizeof out);
        if (k >= sizeof out || out[k] || !is_utf8(out, k)) fail(vn, "detok_push overran its cap or broke UTF-8");
    }
    size_t k;
    while ((k = phivk_detok_flush(d, out, sizeof out)))
        if (k >= sizeof out || out[k] || !is_utf8(out, k)) fail(vn, "detok_flush overran its cap or broke UTF-8");
    phivk_detok_free(d);
}

static void tokenize_one(const phivk_vocab *v, const char *vn, const char *s, size_t len, bool valid) {
    for (int special = 0; special < 2; special++) {
        int64_t n;
        int32_t *ids = tokenize(v, vn, s, len, special, &n);
        if (!valid) {
            if (n != -1 || !strstr(phivk_last_error(), "invalid UTF-8")) fail(vn, "invalid UTF-8 not refused");
            continue;
        }
        if (n < 0) fail(vn, "valid UTF-8 refused");
        /* Without special-token parsing, the only control tokens are the BOS and
         * EOS the vocabulary adds. */
        for (int64_t i = 0; !special && i < n; i++)
            if (v->tokens[ids[i]].type == TOK_CONTROL && !(i == 0 && ids[i] == v->bos) &&
                !(i == n - 1 && ids[i] == v->eos))
                fail(vn, "plain text became a control token");
        char *back = phivk_detokenize(v, ids, n, special);
        if (!back || !is_utf8(back, strlen(back))) fail(vn, "detokenized text is not UTF-8");
        /* Plain text comes back as it was. Not checked: a NUL ends the returned
         * string, SentencePiece reads its space marker U+2581 as a space, and
         * after a user-defined token (matched in plain text too, as llama.cpp
         * does) SentencePiece starts the next span with a space of its own. */
        bool user_defined = false;
        for (int64_t i = 0; i < n; i++) user_defined |= v->tokens[ids[i]].type == TOK_USER_DEFINED;
        if (!special && !user_defined && !memchr(s, 0, len) && !memmem(s, len, "\xE2\x96\x81", 3) &&
            (strlen(back) != len || memcmp(back, s, len)))
            fail(vn, "plain text did not round-trip");
        free(back);
        stream(v, vn, ids, n, special);
        free(ids);
    }
}

static void visible(const char *s, size_t len, size_t small_cap) {
    char *out = malloc(4 * len + 1);
    if (!out) abort();
    for (int keep = 0; keep < 2; keep++) {
        size_t k = phivk_text_visible(s, len, keep, out, 4 * len + 1);
        if (strlen(out) != k || !is_utf8(out, k)) fail("visible", "output miscounted or not UTF-8");
        for (size_t i = 0; i < k; i++) {
            unsigned char c = (unsigned char)out[i];
            if ((c < 0x20 && !(keep && (c == '\n' || c == '\t'))) || c == 0x7F) fail("visible", "a control came through");
            if (c == 0xC2 && i + 1 < k && (unsigned char)out[i + 1] < 0xA0) fail("visible", "a C1 control came through");
        }
        k = phivk_text_visible(s, len, keep, out, small_cap);
        if (k >= small_cap || strlen(out) != k || !is_utf8(out, k)) fail("visible", "cut output overran or broke UTF-8");
    }
    free(out);
}

/* The control tokens in the prompt of msgs, after checking that counting and
 * writing agree and every id is in the vocabulary; -1 when the prompt is refused
 * (a message that is not UTF-8). */
static int64_t chat_controls(const phivk_vocab *v, const char *vn, phivk_chat_format fmt,
                             const phivk_chat_msg *msgs, int n_msgs, bool add) {
    int64_t n = phivk_chat_tokenize(v, fmt, msgs, n_msgs, add, PHIVK_BOS_AUTO, NULL, 0);
    if (n < 0) return -1;
    int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
    if (!ids) abort();
    if (phivk_chat_tokenize(v, fmt, msgs, n_msgs, add, PHIVK_BOS_AUTO, ids, n) != n)
        fail(vn, "chat: counting and writing disagree");
    int64_t controls = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= phivk_vocab_size(v)) fail(vn, "chat: token id outside the vocabulary");
        controls += v->tokens[ids[i]].type == TOK_CONTROL;
    }
    free(ids);
    return controls;
}

/* The input's NUL bytes split it into messages: system, then user and assistant
 * in turn. */
static void chat(const phivk_vocab *v, const char *vn, const char *s, size_t len) {
    enum { MAX_MSGS = 8 };
    static const char *const roles[] = {"system", "user", "assistant"};
    phivk_chat_msg msgs[MAX_MSGS];
    int n_msgs = 0;
    for (size_t at = 0; at <= len && n_msgs < MAX_MSGS;) {
        const char *end = memchr(s + at, 0, len - at);
        size_t k = end ? (size_t)(end - (s + at)) : len - at;
        msgs[n_msgs].role = roles[n_msgs ? 1 + (n_msgs - 1) % 2 : 0];
        msgs[n_msgs].content = s + at; /* ends at a NUL: the copy has one at len */
        n_msgs++;
        at += k + 1;
    }
    phivk_chat_msg empty[MAX_MSGS];
    for (int i = 0; i < n_msgs; i++) empty[i] = (phivk_chat_msg){msgs[i].role, ""};
    static const phivk_chat_format fmts[] = {PHIVK_CHAT_AUTO, PHIVK_CHAT_PHI3, PHIVK_CHAT_PHI2, PHIVK_CHAT_PLAIN};
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
        bool add = f & 1;
        int64_t n = chat_controls(v, vn, fmts[f], msgs, n_msgs, add);
        /* Only the markup makes control tokens: the contents add none. */
        if (n >= 0 && n != chat_controls(v, vn, fmts[f], empty, n_msgs, add))
            fail(vn, "chat: a message's text became a control token");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vocabs[0])
        for (size_t k = 0; k < N_VOCABS; k++)
            if (!(vocabs[k] = phivk_vocab_load(tv_vocab_path(vocab_names[k])))) fail(vocab_names[k], "cannot load");
    /* The input itself for the calls that take a length (libFuzzer's buffer is
     * exactly size bytes, so ASan catches a read past the end); a NUL-terminated
     * copy for the messages. */
    const char *text = (const char *)data;
    bool valid = is_utf8(text, size);
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    for (size_t k = 0; k < N_VOCABS; k++) {
        tokenize_one(vocabs[k], vocab_names[k], text, size, valid);
        chat(vocabs[k], vocab_names[k], s, size);
    }
    visible(text, size, size ? 1 + data[0] % 64 : 1);
    free(s);
    return 0;
}
