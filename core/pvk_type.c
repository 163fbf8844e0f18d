#include "pvk_type.h"

static const pvk_type_info type_table[PVK_TYPE_COUNT] = {
    [PVK_F32] = {"f32", 1, 4, true},
    [PVK_F16] = {"f16", 1, 2, true},
    [PVK_Q4_0] = {"q4_0", 32, 18, true},
    [PVK_Q4_1] = {"q4_1", 32, 20, true},
    [PVK_Q5_0] = {"q5_0", 32, 22, true},
    [PVK_Q5_1] = {"q5_1", 32, 24, true},
    [PVK_Q8_0] = {"q8_0", 32, 34, true},
    [PVK_Q8_1] = {"q8_1", 32, 36, false},
    [PVK_Q2_K] = {"q2_K", 256, 84, false},
    [PVK_Q3_K] = {"q3_K", 256, 110, false},
    [PVK_Q4_K] = {"q4_K", 256, 144, true},
    [PVK_Q5_K] = {"q5_K", 256, 176, true},
    [PVK_Q6_K] = {"q6_K", 256, 210, true},
    [PVK_Q8_K] = {"q8_K", 256, 292, false},
    [PVK_BF16] = {"bf16", 1, 2, true},
};

static const pvk_type_info unknown_type = {0};

const pvk_type_info *pvk_type_get(uint32_t type) {
    if (type >= PVK_TYPE_COUNT || !type_table[type].name) return &unknown_type;
    return &type_table[type];
}

size_t pvk_type_row_bytes(pvk_type t, int64_t n) {
    const pvk_type_info *ti = pvk_type_get(t);
    if (!ti->name || n < 0) return 0;
    return (size_t)(n / ti->block_elems) * ti->block_bytes;
}
