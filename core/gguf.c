/* GGUF reader: one validating pass over an untrusted file.
 *
 * Every read goes through a cursor that knows how many bytes remain, and every
 * count is compared with the bytes remaining (divided by the smallest encoding of
 * one item) before anything is allocated for it, so a forged count can neither
 * overrun the buffer nor make us allocate more than a small multiple of the file
 * size. Integers are decoded byte by byte (little-endian) so the reader does not
 * depend on the host's byte order or on the mapping's alignment.
 *
 * kv->data points at the stored value: for a string at its u64 length, for an
 * array at its first element; data_bytes covers exactly that much. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u       /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_NAME 64u
#define GGUF_MAX_DIMS 4u
/* Arrays of arrays are legal; a depth limit keeps a forged file from exhausting the stack. */
#define GGUF_MAX_ARRAY_DEPTH 16
/* Smallest encodings, used to bound counts before allocating: a kv is key length (8),
 * type (4) and a 1-byte value; a tensor info is name length (8), n_dims (4), one
 * dimension (8), type (4) and offset (8); an array header is elem type (4) + count (8). */
#define GGUF_MIN_KV_BYTES 13u
#define GGUF_MIN_TENSOR_BYTES 32u
#define GGUF_ARRAY_HEADER_BYTES 12u

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    bool mapped;               /* munmap on close */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start;
    uint64_t n_kv;             /* keys read so far (all of them once open) */
    uint64_t kv_alloc;         /* entries in kv and kv_strs */
    gguf_kv *kv;
    gguf_str **kv_strs;        /* per kv: index of a top-level string array, else NULL */
    uint32_t *kv_hash;         /* open addressing, UINT32_MAX = empty; kv_hash_mask + 1 slots */
    uint64_t kv_hash_mask;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint32_t *tensor_hash;
    uint64_t tensor_hash_mask;
};

/* ------------------------------------------------------------------ cursor */

typedef struct rd {
    const uint8_t *b;
    uint64_t size, pos;
    const char *name;          /* file name for messages */
} rd;

static const uint8_t vtype_size[] = {
    [GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4,
    [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_STRING] = 0, [GGUF_ARRAY] = 0,
    [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

static bool vtype_valid(uint32_t t) { return t <= GGUF_F64; }

static uint64_t le_u64(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t rd_left(const rd *r) { return r->size - r->pos; }

static phivk_status rd_need(rd *r, uint64_t n, const char *what) {
    if (n > rd_left(r))
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: truncated: %s at offset %" PRIu64 " needs %" PRIu64
                        " bytes, only %" PRIu64 " remain (file size %" PRIu64 ")",
                        r->name, what, r->pos, n, rd_left(r), r->size);
    return PHIVK_OK;
}

static phivk_status rd_uint(rd *r, unsigned bytes, uint64_t *out, const char *what) {
    phivk_status st = rd_need(r, bytes, what);
    if (st) return st;
    *out = le_u64(r->b + r->pos, bytes);
    r->pos += bytes;
    return PHIVK_OK;
}

static phivk_status rd_u32(rd *r, uint32_t *out, const char *what) {
    uint64_t v = 0;
    phivk_status st = rd_uint(r, 4, &v, what);
    *out = (uint32_t)v;
    return st;
}

static phivk_status rd_str(rd *r, gguf_str *out, const char *what) {
    uint64_t at = r->pos, len;
    phivk_status st = rd_uint(r, 8, &len, what);
    if (st) return st;
    if (len > rd_left(r))
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: %s at offset %" PRIu64 " has length %" PRIu64
                        " but only %" PRIu64 " bytes remain (file size %" PRIu64 ")",
                        r->name, what, at, len, rd_left(r), r->size);
    out->ptr = (const char *)r->b + r->pos;
    out->len = len;
    r->pos += len;
    return PHIVK_OK;
}

/* A file's string, made safe to print: at most 64 bytes, non-printable bytes as '?'. */
static const char *printable(const gguf_str *s, char buf[GGUF_MAX_NAME + 4]) {
    uint64_t n = s->len < GGUF_MAX_NAME ? s->len : GGUF_MAX_NAME;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->ptr[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    strcpy(buf + n, s->len > n ? "..." : "");
    return buf;
}

/* --------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Slots for n entries at most half full. n is already bounded by the file size. */
static uint32_t *hash_alloc(uint64_t n, uint64_t *mask) {
    uint64_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    uint32_t *t = malloc(slots * sizeof *t);
    if (t) memset(t, 0xff, slots * sizeof *t);
    *mask = slots - 1;
    return t;
}

static gguf_str kv_name(const gguf_file *f, uint32_t i) { return f->kv[i].key; }

static gguf_str tensor_name(const gguf_file *f, uint32_t i) {
    gguf_str s = {f->tensors[i].name, strlen(f->tensors[i].name)};
    return s;
}

/* Finds name in table; returns the slot, which holds UINT32_MAX when absent. */
static uint64_t hash_slot(const gguf_file *f, const uint32_t *table, uint64_t mask,
                          gguf_str (*name_of)(const gguf_file *, uint32_t),
                          const char *name, uint64_t len) {
    uint64_t s = hash_bytes(name, len) & mask;
    while (table[s] != UINT32_MAX) {
        gguf_str e = name_of(f, table[s]);
        if (e.len == len && !memcmp(e.ptr, name, len)) break;
        s = (s + 1) & mask;
    }
    return s;
}

/* ------------------------------------------------------------------ values */

static phivk_status rd_array_body(rd *r, uint32_t et, uint64_t n, int depth, gguf_str *strs,
                                const char *key);

static phivk_status rd_array_header(rd *r, uint32_t *et, uint64_t *n, const char *key) {
    phivk_status st = rd_u32(r, et, "array element type");
    if (!st) st = rd_uint(r, 8, n, "array length");
    if (st) return st;
    if (!vtype_valid(*et))
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: key '%s': unknown array element type %" PRIu32 " at offset %" PRIu64,
                        r->name, key, *et, r->pos - 12);
    return PHIVK_OK;
}

static phivk_status rd_array_body(rd *r, uint32_t et, uint64_t n, int depth, gguf_str *strs,
                                const char *key) {
    uint64_t at = r->pos;
    uint64_t min = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? GGUF_ARRAY_HEADER_BYTES : vtype_size[et];
    if (n > rd_left(r) / min)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: key '%s': array of %" PRIu64 " elements at offset %" PRIu64
                        " cannot fit in the %" PRIu64 " bytes that remain",
                        r->name, key, n, at, rd_left(r));
    if (et == GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            gguf_str s;
            phivk_status st = rd_str(r, &s, "array string");
            if (st) return st;
            if (strs) strs[i] = s;
        }
    } else if (et == GGUF_ARRAY) {
        if (depth >= GGUF_MAX_ARRAY_DEPTH)
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: key '%s': arrays nested deeper than %d at offset %" PRIu64,
                            r->name, key, GGUF_MAX_ARRAY_DEPTH, at);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t et2;
            uint64_t n2;
            phivk_status st = rd_array_header(r, &et2, &n2, key);
            if (!st) st = rd_array_body(r, et2, n2, depth + 1, NULL, key);
            if (st) return st;
        }
    } else {
        r->pos += n * min;
    }
    return PHIVK_OK;
}

static phivk_status rd_kv(rd *r, gguf_file *f, uint64_t i) {
    gguf_kv *kv = &f->kv[i];
    char kbuf[GGUF_MAX_NAME + 4];
    uint64_t at = r->pos;
    uint32_t t;
    phivk_status st = rd_str(r, &kv->key, "key");
    if (!st) st = rd_u32(r, &t, "value type");
    if (st) return st;
    const char *key = printable(&kv->key, kbuf);
    if (!vtype_valid(t))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' at offset %" PRIu64 ": unknown value type %" PRIu32,
                        r->name, key, at, t);
    kv->type = (gguf_vtype)t;
    if (t == GGUF_ARRAY) {
        uint32_t et;
        st = rd_array_header(r, &et, &kv->arr_n, key);
        if (st) return st;
        kv->arr_type = (gguf_vtype)et;
        kv->data = r->b + r->pos;
        if (et == GGUF_STRING && kv->arr_n <= rd_left(r) / 8) {
            /* calloc(0) may return NULL: index at least one slot. */
            f->kv_strs[i] = calloc(kv->arr_n ? kv->arr_n : 1, sizeof(gguf_str));
            if (!f->kv_strs[i])
                return pvk_fail(PHIVK_ERR_HOST_MEMORY, "%s: out of memory indexing key '%s'",
                                r->name, key);
        }
        st = rd_array_body(r, et, kv->arr_n, 0, f->kv_strs[i], key);
    } else if (t == GGUF_STRING) {
        gguf_str s;
        kv->data = r->b + r->pos;
        st = rd_str(r, &s, "string value");
    } else {
        kv->data = r->b + r->pos;
        st = rd_need(r, vtype_size[t], "value");
        r->pos += st ? 0 : vtype_size[t];
    }
    if (st) return st;
    kv->data_bytes = (uint64_t)(r->b + r->pos - kv->data);

    uint64_t slot = hash_slot(f, f->kv_hash, f->kv_hash_mask, kv_name, kv->key.ptr, kv->key.len);
    if (f->kv_hash[slot] != UINT32_MAX)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: duplicate key '%s' at offset %" PRIu64, r->name, key, at);
    f->kv_hash[slot] = (uint32_t)i;
    return PHIVK_OK;
}

/* ----------------------------------------------------------------- tensors */

static phivk_status rd_tensor_info(rd *r, gguf_file *f, uint64_t i, uint64_t *rel_offset) {
    gguf_tensor *t = &f->tensors[i];
    uint64_t at = r->pos;
    char nbuf[GGUF_MAX_NAME + 4];
    gguf_str name;
    phivk_status st = rd_str(r, &name, "tensor name");
    if (st) return st;
    if (name.len > GGUF_MAX_NAME)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: tensor name '%s' at offset %" PRIu64 " is %" PRIu64
                        " bytes long (at most %u allowed)",
                        r->name, printable(&name, nbuf), at, name.len, GGUF_MAX_NAME);
    if (memchr(name.ptr, 0, name.len))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor name '%s' at offset %" PRIu64 " contains a NUL byte",
                        r->name, printable(&name, nbuf), at);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = 0;
    const char *tn = printable(&name, nbuf);

    st = rd_u32(r, &t->n_dims, "tensor dimension count");
    if (st) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' at offset %" PRIu64 " has %" PRIu32
                        " dimensions (1 to %u allowed)", r->name, tn, at, t->n_dims, GGUF_MAX_DIMS);
    int64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && (st = rd_uint(r, 8, &ne, "tensor dimension"))) return st;
        if (ne == 0 || ne > INT64_MAX || __builtin_mul_overflow(elems, (int64_t)ne, &elems))
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: tensor '%s' at offset %" PRIu64 ": dimension %" PRIu32 " is %" PRIu64
                            " (must be positive and the element count must fit in 63 bits)",
                            r->name, tn, at, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    uint32_t type;
    if ((st = rd_u32(r, &type, "tensor type")) || (st = rd_uint(r, 8, rel_offset, "tensor offset")))
        return st;
    const pvk_type_info *ti = pvk_type_get(type);
    if (!ti->name)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown type id %" PRIu32, r->name, tn, type);
    t->type = (pvk_type)type;
    if (t->ne[0] % ti->block_elems)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: tensor '%s': row length %" PRId64 " is not a multiple of %s's block of %" PRIu32,
                        r->name, tn, t->ne[0], ti->name, ti->block_elems);
    uint64_t bytes = ti->block_bytes;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(bytes, (uint64_t)(d ? t->ne[d] : t->ne[0] / ti->block_elems), &bytes))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s': byte size overflows", r->name, tn);
    t->bytes = bytes;

    uint64_t slot = hash_slot(f, f->tensor_hash, f->tensor_hash_mask, tensor_name, t->name, name.len);
    if (f->tensor_hash[slot] != UINT32_MAX)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: duplicate tensor name '%s' at offset %" PRIu64, r->name, tn, at);
    f->tensor_hash[slot] = (uint32_t)i;
    return PHIVK_OK;
}

/* Places each tensor in the data section once its start is known. */
static phivk_status place_tensors(rd *r, gguf_file *f, const uint64_t *rel) {
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        if (rel[i] % f->alignment)
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: tensor '%s' data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                            r->name, t->name, rel[i], f->alignment);
        if (__builtin_add_overflow(f->data_start, rel[i], &start) ||
            __builtin_add_overflow(start, t->bytes, &end) || end > f->size)
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: tensor '%s' data [%" PRIu64 " + %" PRIu64 ", %" PRIu64
                            " bytes] exceeds file size %" PRIu64,
                            r->name, t->name, f->data_start, rel[i], t->bytes, f->size);
        t->offset = start;
        t->data = f->base + start;
    }
    return PHIVK_OK;
}

/* -------------------------------------------------------------------- open */

static phivk_status parse(gguf_file *f, const char *name) {
    rd r = {f->base, f->size, 0, name};
    uint32_t magic;
    uint64_t n;
    phivk_status st;
    if (rd_u32(&r, &magic, "magic") || magic != GGUF_MAGIC)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: not a GGUF file (no 'GGUF' magic at offset 0)", name);
    if ((st = rd_u32(&r, &f->version, "version"))) return st;
    if (f->version == 0x03000000u || f->version == 0x02000000u)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: big-endian GGUF file (version bytes 00 00 00 0%u); only little-endian files are supported",
                        name, f->version >> 24);
    if (f->version != 2 && f->version != 3)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported (2 and 3 are)",
                        name, f->version);
    if ((st = rd_uint(&r, 8, &f->n_tensors, "tensor count")) || (st = rd_uint(&r, 8, &n, "key count")))
        return st;
    if (n > rd_left(&r) / GGUF_MIN_KV_BYTES || n >= UINT32_MAX)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key count %" PRIu64 " at offset 16 cannot fit in the file (size %" PRIu64 ")",
                        name, n, f->size);
    if (f->n_tensors > rd_left(&r) / GGUF_MIN_TENSOR_BYTES || f->n_tensors >= UINT32_MAX)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor count %" PRIu64 " at offset 8 cannot fit in the file (size %" PRIu64 ")",
                        name, f->n_tensors, f->size);

    f->kv = calloc(n ? n : 1, sizeof *f->kv);
    f->kv_strs = calloc(n ? n : 1, sizeof *f->kv_strs);
    f->kv_hash = hash_alloc(n, &f->kv_hash_mask);
    f->kv_alloc = f->kv_strs ? n : 0;
    if (!f->kv || !f->kv_strs || !f->kv_hash)
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "%s: out of memory for %" PRIu64 " keys", name, n);
    for (f->n_kv = 0; f->n_kv < n; f->n_kv++)
        if ((st = rd_kv(&r, f, f->n_kv))) return st;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        uint32_t a = al->type == GGUF_U32 ? (uint32_t)le_u64(al->data, 4) : 0;
        if (al->type != GGUF_U32 || a == 0 || (a & (a - 1)))
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: general.alignment must be a u32 power of two (type %d, value %" PRIu32 ")",
                            name, (int)al->type, a);
        f->alignment = a;
    }

    uint64_t nt = f->n_tensors;
    f->n_tensors = 0; /* counts tensors read so far */
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    f->tensor_hash = hash_alloc(nt, &f->tensor_hash_mask);
    uint64_t *rel = calloc(nt ? nt : 1, sizeof *rel);
    if (!f->tensors || !f->tensor_hash || !rel) {
        free(rel);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "%s: out of memory for %" PRIu64 " tensors", name, nt);
    }
    for (; f->n_tensors < nt; f->n_tensors++)
        if ((st = rd_tensor_info(&r, f, f->n_tensors, &rel[f->n_tensors]))) break;
    if (!st) {
        /* The data section starts at the next multiple of the alignment. */
        uint64_t pad = (f->alignment - r.pos % f->alignment) % f->alignment;
        f->data_start = r.pos + pad;
        st = place_tensors(&r, f, rel);
    }
    free(rel);
    return st;
}

static phivk_status open_common(gguf_file *f, const char *name, gguf_file **out) {
    phivk_status st = parse(f, name);
    if (st) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return PHIVK_OK;
}

phivk_status gguf_open_memory(const void *data, size_t size, gguf_file **out) {
    *out = NULL;
    if (!data && size)
        return pvk_fail(PHIVK_ERR_INVALID, "gguf_open_memory: NULL buffer of %zu bytes", size);
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of memory opening a GGUF buffer");
    f->base = data;
    f->size = size;
    return open_common(f, "(GGUF in memory)", out);
}

phivk_status gguf_open(const char *path, gguf_file **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pvk_fail(PHIVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return pvk_fail(PHIVK_ERR_IO, "%s: not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    if (sb.st_size < 8) {
        close(fd);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: not a GGUF file (only %lld bytes)", path, (long long)sb.st_size);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return pvk_fail(PHIVK_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(p, (size_t)sb.st_size);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "%s: out of memory", path);
    }
    f->base = p;
    f->size = (uint64_t)sb.st_size;
    f->mapped = true;
    return open_common(f, path, out);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kv_strs)
        for (uint64_t i = 0; i < f->kv_alloc; i++) free(f->kv_strs[i]);
    free(f->kv_strs);
    free(f->kv);
    free(f->kv_hash);
    free(f->tensors);
    free(f->tensor_hash);
    if (f->mapped) munmap((void *)f->base, (size_t)f->size);
    free(f);
}

/* ---------------------------------------------------------------- queries */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_kv_count(const gguf_file *f) { return f->n_kv; }
uint64_t gguf_tensor_count(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) { return i < f->n_kv ? &f->kv[i] : NULL; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    uint64_t s = hash_slot(f, f->kv_hash, f->kv_hash_mask, kv_name, key, strlen(key));
    return f->kv_hash[s] == UINT32_MAX ? NULL : &f->kv[f->kv_hash[s]];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    uint64_t s = hash_slot(f, f->tensor_hash, f->tensor_hash_mask, tensor_name, name, strlen(name));
    return f->tensor_hash[s] == UINT32_MAX ? NULL : &f->tensors[f->tensor_hash[s]];
}

/* An integer of any GGUF width at p, widened; false for non-integer types. The
 * value is split into sign and magnitude so u64 and i64 both fit. */
static bool int_at(gguf_vtype t, const uint8_t *p, bool *neg, uint64_t *mag) {
    static const struct { uint8_t bytes; bool is_signed; } it[] = {
        [GGUF_U8] = {1, false}, [GGUF_I8] = {1, true}, [GGUF_U16] = {2, false}, [GGUF_I16] = {2, true},
        [GGUF_U32] = {4, false}, [GGUF_I32] = {4, true}, [GGUF_U64] = {8, false}, [GGUF_I64] = {8, true},
    };
    if (t > GGUF_F64 || t == GGUF_F32 || t == GGUF_BOOL || t == GGUF_STRING || t == GGUF_ARRAY ||
        t == GGUF_F64)
        return false;
    unsigned n = it[t].bytes;
    uint64_t v = le_u64(p, n);
    uint64_t sign = 1ull << (8 * n - 1);
    *neg = it[t].is_signed && (v & sign);
    if (*neg) {
        uint64_t ext = n == 8 ? v : v | ~((sign << 1) - 1);
        *mag = ~ext + 1; /* two's complement magnitude; INT64_MIN gives 2^63 */
    } else {
        *mag = v;
    }
    return true;
}

static bool to_i64(bool neg, uint64_t mag, int64_t *out) {
    if (!neg) {
        if (mag > INT64_MAX) return false;
        *out = (int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX + 1) return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    }
    return true;
}

static bool float_at(gguf_vtype t, const uint8_t *p, float *out) {
    if (t == GGUF_F32) {
        uint32_t b = (uint32_t)le_u64(p, 4);
        memcpy(out, &b, 4);
        return true;
    }
    if (t == GGUF_F64) {
        uint64_t b = le_u64(p, 8);
        double d;
        memcpy(&d, &b, 8);
        *out = (float)d;
        return true;
    }
    return false;
}

bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    bool neg;
    uint64_t mag;
    if (!kv || !int_at(kv->type, kv->data, &neg, &mag) || (neg && mag) || mag > UINT32_MAX) return false;
    *out = (uint32_t)mag;
    return true;
}

bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    bool neg;
    uint64_t mag;
    return kv && int_at(kv->type, kv->data, &neg, &mag) && to_i64(neg, mag, out);
}

bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(f, key);
    return kv && float_at(kv->type, kv->data, out);
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_BOOL) return false;
    *out = kv->data[0] != 0;
    return true;
}

bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_STRING) return false;
    out->len = le_u64(kv->data, 8);
    out->ptr = (const char *)kv->data + 8;
    return true;
}

bool gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out) {
    if (!kv || kv < f->kv || kv >= f->kv + f->n_kv || kv->type != GGUF_ARRAY ||
        kv->arr_type != GGUF_STRING || i >= kv->arr_n)
        return false;
    *out = f->kv_strs[kv - f->kv][i];
    return true;
}

bool gguf_arr_f32(const gguf_kv *kv, uint64_t i, float *out) {
    if (!kv || kv->type != GGUF_ARRAY || i >= kv->arr_n ||
        (kv->arr_type != GGUF_F32 && kv->arr_type != GGUF_F64))
        return false;
    return float_at(kv->arr_type, kv->data + i * vtype_size[kv->arr_type], out);
}

bool gguf_arr_i64(const gguf_kv *kv, uint64_t i, int64_t *out) {
    bool neg;
    uint64_t mag;
    if (!kv || kv->type != GGUF_ARRAY || i >= kv->arr_n || kv->arr_type > GGUF_F64) return false;
    return int_at(kv->arr_type, kv->data + i * vtype_size[kv->arr_type], &neg, &mag) &&
           to_i64(neg, mag, out);
}
