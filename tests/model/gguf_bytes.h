/* Helpers for the model tests: a growable byte buffer for hand-crafting GGUF
 * images (including broken ones), and the path of the shared test data. */
#ifndef PHIVK_TESTS_MODEL_GGUF_BYTES_H
#define PHIVK_TESTS_MODEL_GGUF_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static inline void b_raw(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static inline void b_uint(bytes *b, uint64_t v, unsigned size) {
    uint8_t le[8];
    for (unsigned i = 0; i < size; i++) le[i] = (uint8_t)(v >> (8 * i));
    b_raw(b, le, size);
}
static inline void b_u32(bytes *b, uint32_t v) { b_uint(b, v, 4); }
static inline void b_u64(bytes *b, uint64_t v) { b_uint(b, v, 8); }
static inline void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_raw(b, s, strlen(s));
}
static inline void b_pad(bytes *b, size_t align) {
    while (b->n % align) b_uint(b, 0, 1);
}
static inline void b_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_raw(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

/* $PHIVK_TESTDATA/rel, else <source root>/../shared/testdata/rel (static buffer). */
static inline const char *testdata_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("PHIVK_TESTDATA");
    if (root && *root)
        snprintf(buf, sizeof buf, "%s/%s", root, rel);
    else
        snprintf(buf, sizeof buf, "%s/../shared/testdata/%s", PHIVK_SOURCE_ROOT, rel);
    return buf;
}

#endif
