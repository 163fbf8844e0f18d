#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_text.h"
#include "quant.h"

typedef struct mapped {
    char *path;
    void *map;
    size_t size;
} mapped;

struct safet_set {
    mapped *files;
    int n_files;
    safet_tensor *t;
    int64_t n_t, cap_t;
};

static const struct {
    const char *name;
    unsigned size;
} dtypes[] = {
    [SAFET_F32] = {"F32", 4},  [SAFET_F16] = {"F16", 2},   [SAFET_BF16] = {"BF16", 2},
    [SAFET_F64] = {"F64", 8},  [SAFET_I64] = {"I64", 8},   [SAFET_I32] = {"I32", 4},
    [SAFET_I16] = {"I16", 2},  [SAFET_I8] = {"I8", 1},     [SAFET_U8] = {"U8", 1},
    [SAFET_BOOL] = {"BOOL", 1}, [SAFET_F8_E4M3] = {"F8_E4M3", 1}, [SAFET_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *safet_dtype_name(safet_dtype t) { return (unsigned)t < N_DTYPES ? dtypes[t].name : "?"; }

void safet_close(safet_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    for (int64_t i = 0; i < s->n_t; i++) free((char *)s->t[i].name);
    free(s->files);
    free(s->t);
    free(s);
}

int64_t safet_count(const safet_set *s) { return s->n_t; }
const safet_tensor *safet_at(const safet_set *s, int64_t i) { return i >= 0 && i < s->n_t ? &s->t[i] : NULL; }

const safet_tensor *safet_find(const safet_set *s, const char *name) {
    for (int64_t i = 0; i < s->n_t; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

/* A non-negative integer JSON number that a double holds exactly. */
static bool json_u53(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Maps path and appends its tensors to s. */
static phivk_status add_file(safet_set *s, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pvk_fail(PHIVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return pvk_fail(PHIVK_ERR_IO, "%s: not a regular file", path);
    }
    mapped *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) {
        close(fd);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    }
    s->files = nf;
    mapped *m = &s->files[s->n_files++];
    *m = (mapped){.path = strdup(path), .size = (size_t)sb.st_size};
    if (m->size) m->map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m->map == MAP_FAILED) m->map = NULL;
    if (!m->path || (m->size && !m->map)) return pvk_fail(PHIVK_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    if (m->size < 8) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: %zu bytes is too short for a safetensors file", path, m->size);

    const uint8_t *b = m->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    if (hlen > m->size - 8)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: header of %" PRIu64 " bytes is larger than the file (%zu bytes)",
                        path, hlen, m->size);
    const uint64_t data_bytes = m->size - 8 - hlen;
    const uint8_t *data = b + 8 + hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: the header is not a JSON object", path);
    }
    int n = cJSON_GetArraySize(root);
    span *spans = calloc((size_t)n + 1, sizeof *spans);
    int n_spans = 0;
    phivk_status st = spans ? PHIVK_OK : pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    for (const cJSON *e = root->child; e && !st; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' lacks dtype, shape or data_offsets", path, e->string);
            break;
        }
        safet_tensor t = {.n_dims = cJSON_GetArraySize(shape), .numel = 1};
        unsigned k = 0;
        while (k < N_DTYPES && strcmp(dt->valuestring, dtypes[k].name)) k++;
        if (k == N_DTYPES) {
            st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype '%s', which phivk does not know", path,
                          e->string, dt->valuestring);
            break;
        }
        t.dtype = (safet_dtype)k;
        if (t.n_dims > SAFET_MAX_DIMS) {
            st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d)", path, e->string,
                          t.n_dims, SAFET_MAX_DIMS);
            break;
        }
        uint64_t begin, end, bytes = dtypes[k].size;
        for (int d = 0; d < t.n_dims && !st; d++) {
            uint64_t v = 0;
            if (!json_u53(cJSON_GetArrayItem(shape, d), &v) || __builtin_mul_overflow(bytes, v, &bytes) ||
                bytes > ((uint64_t)1 << 53))
                st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' has a bad shape", path, e->string);
            t.shape[d] = (int64_t)v;
            t.numel *= (int64_t)v;
        }
        if (st) break;
        if (!json_u53(cJSON_GetArrayItem(offs, 0), &begin) || !json_u53(cJSON_GetArrayItem(offs, 1), &end) ||
            end < begin) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' has bad data_offsets", path, e->string);
            break;
        }
        if (end > data_bytes) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE,
                          "%s: tensor '%s' ends at data byte %" PRIu64 " but the file holds %" PRIu64
                          " bytes of data (truncated?)",
                          path, e->string, end, data_bytes);
            break;
        }
        if (end - begin != bytes) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' spans %" PRIu64 " bytes, its shape and %s need %" PRIu64,
                          path, e->string, end - begin, dtypes[k].name, bytes);
            break;
        }
        if (safet_find(s, e->string)) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' appears twice", path, e->string);
            break;
        }
        if (s->n_t == s->cap_t) {
            int64_t nc = s->cap_t ? 2 * s->cap_t : 64;
            safet_tensor *nt = realloc(s->t, (size_t)nc * sizeof *nt);
            if (!nt) {
                st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
                break;
            }
            s->t = nt;
            s->cap_t = nc;
        }
        t.name = strdup(e->string);
        t.data = data + begin;
        t.file = m->path;
        if (!t.name) {
            st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
            break;
        }
        s->t[s->n_t++] = t;
        spans[n_spans++] = (span){begin, end, s->t[s->n_t - 1].name};
    }
    if (!st) {
        qsort(spans, (size_t)n_spans, sizeof *spans, span_cmp);
        for (int i = 1; i < n_spans && !st; i++)
            if (spans[i].begin < spans[i - 1].end && spans[i].begin < spans[i].end)
                st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensors '%s' and '%s' overlap (data bytes %" PRIu64 "..%" PRIu64
                              " and %" PRIu64 "..%" PRIu64 ")",
                              path, spans[i - 1].name, spans[i].name, spans[i - 1].begin, spans[i - 1].end,
                              spans[i].begin, spans[i].end);
    }
    free(spans);
    cJSON_Delete(root);
    return st;
}

phivk_status safet_open_file(const char *path, safet_set **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    phivk_status st = add_file(*out, path);
    if (st) {
        safet_close(*out);
        *out = NULL;
    }
    return st;
}

/* The shards of an index: every weight_map entry must name a shard beside it that
 * holds the tensor. */
static phivk_status open_index(safet_set *s, const char *dir, const char *index) {
    char *text;
    phivk_status st = file_read_text(index, &text, NULL);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child)
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: no weight_map object", index);
    for (const cJSON *e = wm ? wm->child : NULL; e && !st; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' maps to a bad shard name", index, e->string);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        bool have = false;
        for (int i = 0; i < s->n_files && !have; i++) have = !strcmp(s->files[i].path, path);
        if (!have) st = add_file(s, path);
        const safet_tensor *t = st ? NULL : safet_find(s, e->string);
        if (!st && (!t || strcmp(t->file, path)))
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: names tensor '%s' in %s, which does not hold it", index, e->string,
                          e->valuestring);
    }
    cJSON_Delete(root);
    return st;
}

phivk_status safet_open_dir(const char *dir, safet_set **out) {
    char index[4096], single[4096];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    if (access(index, F_OK)) return safet_open_file(single, out);
    *out = calloc(1, sizeof **out);
    if (!*out) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    phivk_status st = open_index(*out, dir, index);
    if (st) {
        safet_close(*out);
        *out = NULL;
    }
    return st;
}

phivk_status safet_read_f32(const safet_tensor *t, int64_t first, int64_t n, float *dst) {
    if (first < 0 || n < 0 || first + n > t->numel)
        return pvk_fail(PHIVK_ERR_INVALID, "tensor '%s': elements %" PRId64 "..%" PRId64 " out of range", t->name,
                        first, first + n);
    const uint8_t *p = (const uint8_t *)t->data;
    switch (t->dtype) {
    case SAFET_F32: memcpy(dst, p + 4 * first, (size_t)n * 4); break;
    case SAFET_F16:
    case SAFET_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (first + i), 2);
            dst[i] = t->dtype == SAFET_F16 ? quant_f16_to_f32(h) : quant_bf16_to_f32(h);
        }
        break;
    default:
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; phivk converts F32, F16 and BF16 weights",
                        t->file, t->name, safet_dtype_name(t->dtype));
    }
    return PHIVK_OK;
}
