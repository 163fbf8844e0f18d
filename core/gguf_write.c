/* GGUF writer: collects keys and tensors, then lays out a v3 image in memory.
 *
 * Setters return nothing so fixture code stays readable; the first failure (out of
 * memory, an invalid tensor) is remembered with its message and returned by
 * gguf_writer_build, and later calls are ignored. Setting a key again replaces its
 * value in place, as ggml's gguf_set_* do. Values are encoded when set, so build
 * only concatenates. A tensor added with data == NULL is written as zeros. */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITER_ALIGNMENT 32u /* unless the caller sets general.alignment (u32) */
#define WRITER_MAX_NAME 64u

typedef struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val;            /* encoded value (what follows the type in the file) */
    size_t val_bytes;
} wkv;

typedef struct wtensor {
    char name[WRITER_MAX_NAME + 1];
    pvk_type type;
    uint32_t n_dims;
    int64_t ne[4];
    uint8_t *data;           /* NULL: zeros */
    size_t bytes;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    phivk_status err;          /* sticky: the first failure */
    char errmsg[256];
};

static void w_fail(gguf_writer *w, phivk_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void w_fail(gguf_writer *w, phivk_status code, const char *fmt, ...) {
    if (w->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
    w->err = code;
}

/* Grows *arr (of *cap elements of size sz) to hold one more. */
static bool grow(gguf_writer *w, void **arr, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * sz);
    if (!p) {
        w_fail(w, PHIVK_ERR_HOST_MEMORY, "gguf writer: out of host memory");
        return false;
    }
    *arr = p;
    *cap = nc;
    return true;
}

gguf_writer *gguf_writer_create(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_destroy(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].data);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Stores key = (type, val): val (malloc'd, val_bytes long) is taken over. */
static void set_encoded(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t val_bytes) {
    if (!w) {
        free(val);
        return;
    }
    if (!val) w_fail(w, PHIVK_ERR_HOST_MEMORY, "gguf writer: out of host memory for key '%s'", key ? key : "");
    if (!key) w_fail(w, PHIVK_ERR_INVALID, "gguf writer: NULL key");
    if (w->err) {
        free(val);
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_bytes = val_bytes;
            return;
        }
    char *k = strdup(key);
    if (!k || !grow(w, (void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        w_fail(w, PHIVK_ERR_HOST_MEMORY, "gguf writer: out of host memory for key '%s'", key);
        free(k);
        free(val);
        return;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, val_bytes};
}

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void set_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t bits, unsigned n) {
    uint8_t *v = malloc(n);
    if (v) put_le(v, bits, n);
    set_encoded(w, key, type, v, n);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, GGUF_U32, v, 4); }
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    set_scalar(w, key, GGUF_I32, (uint32_t)v, 4);
}
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    set_scalar(w, key, GGUF_F32, b, 4);
}
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) { set_scalar(w, key, GGUF_BOOL, v, 1); }

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *s) {
    size_t n = s ? strlen(s) : 0;
    uint8_t *v = malloc(8 + n);
    if (v) {
        put_le(v, n, 8);
        memcpy(v + 8, s ? s : "", n);
    }
    set_encoded(w, key, GGUF_STRING, v, 8 + n);
}

static unsigned scalar_size(gguf_vtype t) {
    static const uint8_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)t < sizeof sz ? sz[t] : 0;
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem_type, const void *data,
                         uint64_t n) {
    unsigned es = scalar_size(elem_type);
    size_t bytes;
    if (!w) return;
    if (!es) {
        w_fail(w, PHIVK_ERR_INVALID, "gguf writer: key '%s': set_arr takes scalar elements, not type %d",
               key ? key : "", (int)elem_type);
        return;
    }
    if (__builtin_mul_overflow(n, (uint64_t)es, &bytes) || bytes > SIZE_MAX - 12 || (n && !data)) {
        w_fail(w, PHIVK_ERR_INVALID, "gguf writer: key '%s': bad array of %" PRIu64 " elements",
               key ? key : "", n);
        return;
    }
    uint8_t *v = malloc(12 + bytes);
    if (v) {
        put_le(v, elem_type, 4);
        put_le(v + 4, n, 8);
        if (bytes) memcpy(v + 12, data, bytes);
    }
    set_encoded(w, key, GGUF_ARRAY, v, 12 + bytes);
}

/* lens NULL: each string runs to its NUL. */
static void set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                        uint64_t n) {
    size_t bytes = 12;
    if (!w) return;
    for (uint64_t i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strs[i] ? strlen(strs[i]) : 0;
        if (__builtin_add_overflow(bytes, 8 + l, &bytes)) {
            w_fail(w, PHIVK_ERR_INVALID, "gguf writer: key '%s': string array too large", key ? key : "");
            return;
        }
    }
    uint8_t *v = malloc(bytes);
    if (v) {
        put_le(v, GGUF_STRING, 4);
        put_le(v + 4, n, 8);
        uint8_t *p = v + 12;
        for (uint64_t i = 0; i < n; i++) {
            size_t l = lens ? lens[i] : strs[i] ? strlen(strs[i]) : 0;
            put_le(p, l, 8);
            if (l) memcpy(p + 8, strs[i], l);
            p += 8 + l;
        }
    }
    set_encoded(w, key, GGUF_ARRAY, v, bytes);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    set_arr_str(w, key, strs, NULL, n);
}

void gguf_writer_set_arr_bytes(gguf_writer *w, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n) {
    set_arr_str(w, key, strs, lens, n);
}

void gguf_writer_add_tensor(gguf_writer *w, const char *name, pvk_type type, uint32_t n_dims,
                            const int64_t *ne, const void *data) {
    if (!w || w->err) return;
    const pvk_type_info *ti = pvk_type_get(type);
    size_t len = name ? strlen(name) : 0;
    if (!name || len == 0 || len > WRITER_MAX_NAME) {
        w_fail(w, PHIVK_ERR_INVALID, "gguf writer: tensor name '%s' must be 1 to %u bytes",
               name ? name : "(null)", WRITER_MAX_NAME);
        return;
    }
    if (!ti->name || n_dims < 1 || n_dims > 4 || !ne) {
        w_fail(w, PHIVK_ERR_INVALID, "gguf writer: tensor '%s': type %d / %" PRIu32 " dimensions not writable",
               name, (int)type, n_dims);
        return;
    }
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    memcpy(t.name, name, len + 1);
    uint64_t bytes = ti->block_bytes;
    for (uint32_t d = 0; d < n_dims; d++) t.ne[d] = ne[d];
    for (uint32_t d = 0; d < 4; d++) {
        uint64_t f = d ? (uint64_t)t.ne[d] : (uint64_t)t.ne[0] / ti->block_elems;
        if (t.ne[d] <= 0 || (d == 0 && t.ne[0] % ti->block_elems) || __builtin_mul_overflow(bytes, f, &bytes) ||
            bytes > SIZE_MAX / 2) {
            w_fail(w, PHIVK_ERR_INVALID,
                   "gguf writer: tensor '%s': bad shape (dimension %" PRIu32 " = %" PRId64 ", %s block %" PRIu32 ")",
                   name, d, t.ne[d], ti->name, ti->block_elems);
            return;
        }
    }
    t.bytes = (size_t)bytes;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) {
            w_fail(w, PHIVK_ERR_INVALID, "gguf writer: duplicate tensor name '%s'", name);
            return;
        }
    if (data) {
        t.data = malloc(t.bytes);
        if (!t.data) {
            w_fail(w, PHIVK_ERR_HOST_MEMORY, "gguf writer: out of host memory for tensor '%s' (%zu bytes)",
                   name, t.bytes);
            return;
        }
        memcpy(t.data, data, t.bytes);
    }
    if (!grow(w, (void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(t.data);
        return;
    }
    w->t[w->n_t++] = t;
}

static size_t pad_to(size_t n, size_t a) { return (n + a - 1) / a * a; }

phivk_status gguf_writer_build(gguf_writer *w, void **out, size_t *size) {
    *out = NULL;
    *size = 0;
    if (!w) return pvk_fail(PHIVK_ERR_INVALID, "gguf writer: NULL writer");
    if (w->err) return pvk_fail(w->err, "%s", w->errmsg);

    size_t align = WRITER_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment")) {
            uint32_t a = 0;
            if (w->kv[i].type == GGUF_U32)
                for (int b = 0; b < 4; b++) a |= (uint32_t)w->kv[i].val[b] << (8 * b);
            if (!a || (a & (a - 1)))
                return pvk_fail(PHIVK_ERR_INVALID, "gguf writer: general.alignment must be a u32 power of two");
            align = a;
        }
    /* Sizes are bounded by what the setters already allocated, so plain sums fit. */
    size_t meta = 24;
    for (size_t i = 0; i < w->n_kv; i++) meta += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_bytes;
    for (size_t i = 0; i < w->n_t; i++) meta += 8 + strlen(w->t[i].name) + 4 + 8 * w->t[i].n_dims + 4 + 8;
    size_t data_start = pad_to(meta, align), total = data_start;
    for (size_t i = 0; i < w->n_t; i++) total += pad_to(w->t[i].bytes, align);

    uint8_t *img = calloc(1, total);
    if (!img) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "gguf writer: out of host memory for a %zu-byte image", total);
    uint8_t *p = img;
    memcpy(p, "GGUF", 4);
    put_le(p + 4, 3, 4);
    put_le(p + 8, w->n_t, 8);
    put_le(p + 16, w->n_kv, 8);
    p += 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        size_t kl = strlen(w->kv[i].key);
        put_le(p, kl, 8);
        memcpy(p + 8, w->kv[i].key, kl);
        put_le(p + 8 + kl, w->kv[i].type, 4);
        memcpy(p + 12 + kl, w->kv[i].val, w->kv[i].val_bytes);
        p += 12 + kl + w->kv[i].val_bytes;
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        put_le(p, nl, 8);
        memcpy(p + 8, t->name, nl);
        p += 8 + nl;
        put_le(p, t->n_dims, 4);
        p += 4;
        for (uint32_t d = 0; d < t->n_dims; d++, p += 8) put_le(p, (uint64_t)t->ne[d], 8);
        put_le(p, t->type, 4);
        put_le(p + 4, off, 8);
        p += 12;
        if (t->data) memcpy(img + data_start + off, t->data, t->bytes);
        off += pad_to(t->bytes, align);
    }
    *out = img;
    *size = total;
    return PHIVK_OK;
}

phivk_status gguf_writer_save(gguf_writer *w, const char *path) {
    void *img;
    size_t size;
    phivk_status st = gguf_writer_build(w, &img, &size);
    if (st) return st;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        st = pvk_fail(PHIVK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        bool ok = fwrite(img, 1, size, fp) == size;
        ok = (fclose(fp) == 0) && ok;
        if (!ok) st = pvk_fail(PHIVK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    free(img);
    return st;
}
