/* Safetensors reader: one model.safetensors file or the shards a
 * model.safetensors.index.json names, mapped read-only.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}})
 * and the data, whose offsets count from the end of the header. Everything is
 * checked when a file is opened, so a tensor handed out is always in bounds: the
 * header fits the file, every dtype is known, every tensor's byte count equals its
 * shape times its element size, lies inside the data and overlaps no other tensor,
 * and no name appears twice (in a file or across shards). */
#ifndef PHIVK_SAFETENSORS_H
#define PHIVK_SAFETENSORS_H

#include <stdint.h>

#include "pvk_err.h"

#define SAFET_MAX_DIMS 4

typedef enum safet_dtype {
    SAFET_F32, SAFET_F16, SAFET_BF16, /* the float types a weight may have */
    SAFET_F64, SAFET_I64, SAFET_I32, SAFET_I16, SAFET_I8, SAFET_U8, SAFET_BOOL,
    SAFET_F8_E4M3, SAFET_F8_E5M2,     /* known, so buffers of these types load; not weights */
} safet_dtype;

typedef struct safet_tensor {
    const char *name;         /* NUL-terminated, owned by the set */
    safet_dtype dtype;
    int n_dims;
    int64_t shape[SAFET_MAX_DIMS]; /* PyTorch order: shape[0] is the slowest (rows) */
    int64_t numel;
    const void *data;         /* into the mapping */
    const char *file;         /* the file it lives in, for messages */
} safet_tensor;

typedef struct safet_set safet_set;

/* Opens dir/model.safetensors.index.json and its shards when the index exists,
 * else dir/model.safetensors. Caller owns *out: safet_close. */
phivk_status safet_open_dir(const char *dir, safet_set **out);
/* Opens one file. */
phivk_status safet_open_file(const char *path, safet_set **out);
void safet_close(safet_set *s); /* accepts NULL */

int64_t safet_count(const safet_set *s);
const safet_tensor *safet_at(const safet_set *s, int64_t i);
/* NULL when absent. */
const safet_tensor *safet_find(const safet_set *s, const char *name);

const char *safet_dtype_name(safet_dtype t);
/* Converts n elements starting at element first of t to float.
 * PHIVK_ERR_UNSUPPORTED (naming the tensor and its dtype) unless F32, F16 or BF16. */
phivk_status safet_read_f32(const safet_tensor *t, int64_t first, int64_t n, float *dst);

#endif
