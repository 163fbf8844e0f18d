#version 450
// KV-cache write: m token rows of k and v (f32, at floats k_off / v_off of each x
// row) become cache rows. The cache type is a define: -DKV_F16 (two halves per
// u32 word); quantized caches add a branch storing one block per invocation.
// Buffers: 0 x (f32 [m][row_stride]), 1 K cache, 2 V cache: each bound from the
// word-aligned start of the first written row; word0 is that row's word in the
// binding. Mapping: x over the row's words, y over tokens (the host splits token
// ranges beyond the y limit into several dispatches), z = 0 for K, 1 for V.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer K { uint kc[]; };
layout(std430, binding = 2) writeonly buffer V { uint vc[]; };

layout(push_constant) uniform P {
    uint row_stride, k_off, v_off;
    uint width;             // elements per cache row
    uint k_word0, v_word0;
    uint row_base;          // this dispatch's first token row
} p;

#if defined(KV_F16)
#define KV_ELEMS_PER_WORD 2u
uint kv_pack(uint src) { return packHalf2x16(vec2(x[src], x[src + 1u])); }
#else
#error define the cache type: KV_F16
#endif

void main() {
    uint j = gl_GlobalInvocationID.x;
    uint words = p.width / KV_ELEMS_PER_WORD;
    if (j >= words) return;
    uint tok = p.row_base + gl_WorkGroupID.y;
    bool is_v = gl_WorkGroupID.z == 1u;
    uint src = tok * p.row_stride + (is_v ? p.v_off : p.k_off) + j * KV_ELEMS_PER_WORD;
    uint w = kv_pack(src);
    if (is_v)
        vc[p.v_word0 + tok * words + j] = w;
    else
        kc[p.k_word0 + tok * words + j] = w;
}
