/* GGUF v2/v3 reader and writer.
 *
 * The reader maps the file (or takes a caller's buffer) and validates everything
 * before returning: every count, length, offset and size is checked against the
 * file size with overflow-safe arithmetic, so code that reads a gguf_file never has
 * to re-check bounds. Strings point into the mapping and are NOT NUL-terminated.
 *
 * The writer builds a GGUF image in memory (for test fixtures and `phivk bench`'s
 * synthetic models) and can save it to a file. */
#ifndef PHIVK_GGUF_H
#define PHIVK_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvk_err.h"
#include "pvk_type.h"

typedef enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12,
} gguf_vtype;

typedef struct gguf_str {
    const char *ptr; /* into the file; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    gguf_vtype type;         /* GGUF_ARRAY for arrays */
    gguf_vtype arr_type;     /* element type when type == GGUF_ARRAY */
    uint64_t arr_n;          /* element count when type == GGUF_ARRAY */
    const uint8_t *data;     /* raw little-endian value (or first array element) in the file */
    uint64_t data_bytes;     /* bytes of the whole value */
} gguf_kv;

typedef struct gguf_tensor {
    char name[65];           /* NUL-terminated copy; names are at most 64 bytes */
    uint32_t n_dims;
    int64_t ne[4];           /* unused dims are 1; ne[0] is contiguous */
    pvk_type type;
    uint64_t offset;         /* from the start of the file */
    uint64_t bytes;
    const void *data;        /* into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Maps and validates path. On failure returns a status and sets the message;
 * *out is NULL. The caller owns the result: gguf_close. */
phivk_status gguf_open(const char *path, gguf_file **out);
/* Same on a caller-owned buffer that must outlive the gguf_file. */
phivk_status gguf_open_memory(const void *data, size_t size, gguf_file **out);
/* Accepts NULL. */
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);

uint64_t gguf_kv_count(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
/* NULL when the key is absent. */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);

/* Typed getters: false when the key is absent or its value does not convert
 * (integers of any width convert if in range; f32/f64 convert to each other). */
bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
bool gguf_get_f32(const gguf_file *f, const char *key, float *out);
bool gguf_get_bool(const gguf_file *f, const char *key, bool *out);
bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array element access; false when out of range or of another type. String arrays
 * are indexed at open time, so gguf_arr_str is O(1). */
bool gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out);
bool gguf_arr_f32(const gguf_kv *kv, uint64_t i, float *out);
bool gguf_arr_i64(const gguf_kv *kv, uint64_t i, int64_t *out); /* any integer element type */

uint64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;

/* Returns NULL only when out of host memory. */
gguf_writer *gguf_writer_create(void);
void gguf_writer_destroy(gguf_writer *w); /* accepts NULL */
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Arrays of scalars (elem_type not STRING/ARRAY); data is copied. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem_type,
                         const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* The same with explicit lengths: strings that are byte strings (NUL bytes included). */
void gguf_writer_set_arr_bytes(gguf_writer *w, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n);
/* Adds a tensor; data (pvk_type_row_bytes(type, ne[0]) * ne[1]*ne[2]*ne[3] bytes) is copied;
 * NULL data writes zeros. */
void gguf_writer_add_tensor(gguf_writer *w, const char *name, pvk_type type,
                            uint32_t n_dims, const int64_t *ne, const void *data);
/* The whole file image (v3, alignment 32, or a general.alignment the caller set as a
 * u32 power of two). The caller owns *out (free()). */
phivk_status gguf_writer_build(gguf_writer *w, void **out, size_t *size);
phivk_status gguf_writer_save(gguf_writer *w, const char *path);

#endif
