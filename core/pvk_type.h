/* Tensor element types, numbered as GGUF / ggml number them, with their block
 * geometry. Vulkan-free data shared by the GGUF reader, the quant code, the CPU
 * reference and the GPU op layer (which picks shader variants by type). */
#ifndef PVK_TYPE_H
#define PVK_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pvk_type {
    PVK_F32 = 0,
    PVK_F16 = 1,
    PVK_Q4_0 = 2,
    PVK_Q4_1 = 3,
    PVK_Q5_0 = 6,
    PVK_Q5_1 = 7,
    PVK_Q8_0 = 8,
    PVK_Q8_1 = 9,
    PVK_Q2_K = 10,
    PVK_Q3_K = 11,
    PVK_Q4_K = 12,
    PVK_Q5_K = 13,
    PVK_Q6_K = 14,
    PVK_Q8_K = 15,
    PVK_BF16 = 30,
    PVK_TYPE_COUNT = 40,
} pvk_type;

typedef struct pvk_type_info {
    const char *name;     /* "q4_K", NULL for ids we do not know */
    uint32_t block_elems; /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* phivk can dequantize and compute with it */
} pvk_type_info;

/* Info for a type id; an info with name == NULL for unknown or out-of-range ids. */
const pvk_type_info *pvk_type_get(uint32_t type);
/* Bytes of a row of n elements (n must be a multiple of block_elems). */
size_t pvk_type_row_bytes(pvk_type t, int64_t n);

#endif
