/* Helpers for the model tests: a growable byte buffer for hand-crafting GGUF
 * images (including broken ones), and the path of the shared test data. */
#ifndef PHIVK_TESTS_MODEL_GGUF_BYTES_H
#define PHIVK_TESTS_MODEL_GGUF_BYTES_H

#include "testdata.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

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

/* Touches everything an open gguf_file exposes (every key through every getter,
 * every string array element, the first and last byte of every tensor) so a
 * sanitizer sees any read outside the file. Returns a checksum to keep it live. */
static inline uint64_t gguf_walk(const gguf_file *f) {
    uint64_t sum = gguf_version(f) + gguf_alignment(f);
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char key[96];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 95 ? kv->key.len : 95), kv->key.ptr);
        uint32_t u;
        int64_t v;
        float x;
        bool b;
        gguf_str s;
        sum += gguf_get_u32(f, key, &u) + gguf_get_i64(f, key, &v) + gguf_get_f32(f, key, &x) +
               gguf_get_bool(f, key, &b);
        if (gguf_get_str(f, key, &s) && s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
        if (kv->data_bytes) sum += kv->data[0] + kv->data[kv->data_bytes - 1];
        if (kv->type != GGUF_ARRAY) continue;
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            if (gguf_arr_str(f, kv, j, &s) && s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
            sum += gguf_arr_f32(kv, j, &x) + gguf_arr_i64(kv, j, &v);
        }
    }
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const uint8_t *d = t->data;
        sum += d[0] + d[t->bytes - 1] + (gguf_find_tensor(f, t->name) == t);
    }
    return sum;
}

#endif
