/* SentencePiece-BPE as GGUF stores it (tokenizer.ggml.model "llama") and llama.cpp
 * runs it (docs/phi-spec.md 5.1 steps 2-4): spaces become U+2581, the text splits
 * into UTF-8 characters, and the adjacent pair whose concatenation is the
 * highest-scoring token merges first (ties: leftmost). What is left that is not a
 * token falls back to <0xNN> byte tokens. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */

static bool is_space_at(const char *p, size_t left) { return left >= 3 && memcmp(p, SPM_SPACE, 3) == 0; }

/* Whether a U+2581 starts at s[i] right after a character that is not one. */
static bool word_starts_at(const char *s, size_t n, size_t i) {
    return i > 0 && is_space_at(s + i, n - i) && !(i >= 3 && is_space_at(s + i - 3, 3));
}

/* Merges only join spans whose concatenation is a token. When no token has U+2581
 * after another character (true of the Llama and Phi-3 vocabularies), no merge can
 * cross the start of a space run that follows text, so those "words" merge
 * independently with the same result: a small heap per word instead of one over
 * the whole text (which is cache-miss bound on megabytes of text). */
bool tok_spm_words_independent(const tok_vocab *v) {
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const tok_token *t = &v->tokens[i];
        if (!tok_type_spellable(t->type)) continue;
        for (uint32_t k = 1; k < t->text_len; k++)
            if (word_starts_at(t->text, t->text_len, k)) return false;
    }
    return true;
}

/* The token a span of escaped text spells, or -1 (control and byte tokens are never
 * spelled by text; see tok_type_spellable). */
static int32_t spm_lookup(const tok_vocab *v, const char *p, size_t n) {
    int32_t id = tok_find(v, p, n);
    return id >= 0 && tok_type_spellable(v->tokens[id].type) ? id : -1;
}

static bool spm_pair(const void *ctx, const char *buf, uint32_t off, uint32_t left_len,
                     uint32_t len, float *key) {
    const tok_vocab *v = ctx;
    int32_t id = spm_lookup(v, buf + off, len);
    if (id < 0) return false;
    *key = -v->tokens[id].score; /* the merge loop takes the lowest key first */
    return true;
}

/* Merges buf[start, end) and appends its tokens. */
static phivk_status encode_span(const tok_vocab *v, tok_heap *heap, tok_sym *syms, const char *buf,
                              size_t start, size_t end, tok_ids *out) {
    /* tok_encode validated the UTF-8, so every lead byte announces a full character. */
    int32_t n = 0;
    for (size_t i = start; i < end;) {
        uint32_t cl = (uint32_t)tok_utf8_len((uint8_t)buf[i]);
        syms[n] = (tok_sym){(uint32_t)i, cl, n - 1, i + cl < end ? n + 1 : -1};
        n++;
        i += cl;
    }
    if (n == 0) return PHIVK_OK;
    phivk_status st = tok_merge(heap, buf, syms, n, spm_pair, v);
    for (int32_t i = 0; i >= 0 && !st; i = syms[i].next) {
        int32_t id = spm_lookup(v, buf + syms[i].off, syms[i].len);
        st = id >= 0 ? tok_ids_push(out, id) : tok_push_bytes(v, buf + syms[i].off, syms[i].len, out);
    }
    return st;
}

phivk_status tok_spm_encode(const tok_vocab *v, const char *text, size_t len, bool prefix_space,
                          tok_ids *out) {
    size_t spaces = prefix_space;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t n_buf = len + prefix_space + 2 * spaces;
    char *buf = malloc(n_buf ? n_buf : 1);
    tok_sym *syms = malloc((n_buf ? n_buf : 1) * sizeof *syms);
    tok_heap *heap = tok_heap_create();
    phivk_status st = PHIVK_OK;
    if (!buf || !syms || !heap) {
        st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory to tokenize %zu bytes", len);
        goto done;
    }

    size_t o = 0;
    if (prefix_space) {
        memcpy(buf, SPM_SPACE, 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, SPM_SPACE, 3);
            o += 3;
        } else {
            buf[o++] = text[i];
        }
    }

    size_t start = 0;
    if (v->spm_words)
        for (size_t i = 1; i < n_buf && !st; i++)
            if (word_starts_at(buf, n_buf, i)) {
                st = encode_span(v, heap, syms, buf, start, i, out);
                start = i;
            }
    if (!st) st = encode_span(v, heap, syms, buf, start, n_buf, out);
done:
    tok_heap_free(heap);
    free(syms);
    free(buf);
    return st;
}
