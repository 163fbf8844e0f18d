/* The tokenizer vectors in tests/data/vocab (README there: inputs split on
 * "\n__ggml_vocab_test__\n", one line of expected ids per input), for the tests and
 * the benchmark. */
#ifndef PHIVK_TESTS_TOKENIZER_TOK_VECTORS_H
#define PHIVK_TESTS_TOKENIZER_TOK_VECTORS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf_bytes.h"

#define TV_MAX 128

typedef struct tok_vectors {
    int n;
    const char *inp[TV_MAX]; /* into data; not NUL-terminated */
    size_t inp_len[TV_MAX];
    const char *out[TV_MAX]; /* expected ids line, NUL-terminated */
    char *data, *out_data;
} tok_vectors;

static inline char *tv_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (size_t k; p && (k = fread(p + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (n + 1 == cap) p = realloc(p, cap *= 2);
    }
    fclose(f);
    if (p) p[n] = 0;
    if (len) *len = n;
    return p;
}

/* name: "phi-3", "llama-spm" or "gpt-2". False when the files are missing. */
static inline bool tv_load(const char *name, tok_vectors *tv) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char rel[256];
    size_t len = 0;
    memset(tv, 0, sizeof *tv);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    tv->data = tv_slurp(testdata_path(rel), &len);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    tv->out_data = tv_slurp(testdata_path(rel), NULL);
    if (!tv->data || !tv->out_data) return false;
    const char *p = tv->data, *end = tv->data + len;
    while (p < end && tv->n < TV_MAX) {
        const char *s = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        if (!s) break; /* the file ends with a separator: the rest is not an input */
        tv->inp[tv->n] = p;
        tv->inp_len[tv->n] = (size_t)(s - p);
        tv->n++;
        p = s + sizeof sep - 1;
    }
    char *line = tv->out_data;
    for (int i = 0; i < tv->n; i++) {
        char *nl = line ? strchr(line, '\n') : NULL;
        tv->out[i] = line ? line : "";
        if (nl) *nl = 0;
        line = nl ? nl + 1 : NULL;
    }
    return true;
}

static inline void tv_free(tok_vectors *tv) {
    free(tv->data);
    free(tv->out_data);
}

/* name: one of tv_load's, or "cl100k" (tiktoken's rank file, Phi-3-small's vocabulary). */
static inline char *tv_vocab_path(const char *name) {
    static char rel[256];
    if (!strcmp(name, "cl100k")) snprintf(rel, sizeof rel, "vocab/cl100k/cl100k_base.tiktoken");
    else snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    return (char *)testdata_path(rel);
}

/* xorshift64: the next of *state's random numbers, below n. */
static inline uint32_t tv_rnd(uint64_t *state, uint32_t n) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state % n);
}

/* Code point cp (not a surrogate, at most U+10FFFF) as UTF-8 into p; its length. */
static inline size_t tv_utf8(uint32_t cp, char *p) {
    if (cp < 0x80) { p[0] = (char)cp; return 1; }
    if (cp < 0x800) { p[0] = (char)(0xC0 | cp >> 6); p[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        p[0] = (char)(0xE0 | cp >> 12); p[1] = (char)(0x80 | ((cp >> 6) & 63)); p[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    p[0] = (char)(0xF0 | cp >> 18); p[1] = (char)(0x80 | ((cp >> 12) & 63));
    p[2] = (char)(0x80 | ((cp >> 6) & 63)); p[3] = (char)(0x80 | (cp & 63));
    return 4;
}

#endif
