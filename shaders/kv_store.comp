#version 450
// KV-cache write: m token rows of k and v (f32, at floats k_off / v_off of each x
// row) become cache rows in the K and V types (kv_cache.glsl; -DK_<T> -DV_<T>).
// One invocation per unit of a row: a word (two halves) for F16, a whole
// 32-element block for Q8_0 / Q4_0, quantized as ggml's reference quantizers do
// (model/quant.c): Q8_0 d = amax / 127, q = roundf(x / d); Q4_0 d = max / -8 with
// max the signed element of largest magnitude, q = min(15, int(x / d + 8.5)).
// A block is 34 or 18 bytes, so it shares one 32-bit word with a neighbour block:
// that half word is merged with atomicAnd/atomicOr (each block only clears and
// sets its own 16 bits, in any order), the other words are plain stores.
// Buffers: 0 x (f32 [m][row_stride]), 1 K cache, 2 V cache: each bound from the
// 16-byte aligned start before the first written row (byte0 is that row's byte in
// the binding) to the 4-byte word after the last. Mapping: x over a row's units,
// y over tokens (from row_base; the host splits token ranges beyond the y limit),
// z = 0 for K, 1 for V.
#include "kv_cache.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer K { uint kc[]; };
layout(std430, binding = 2) buffer V { uint vc[]; };

layout(push_constant) uniform P {
    uint row_stride, k_off, v_off;
    uint width;             // elements per cache row
    uint k_byte0, v_byte0;  // byte of the first written row in the bindings
    uint row_base;          // this dispatch's first token (of the written range)
    uint x_row0;            // x row of the written range's first token
} p;

void put_word(bool is_v, uint w, uint val) {
    if (is_v) vc[w] = val;
    else kc[w] = val;
}

// Sets the 16-bit half (hi: bits 16..31) of word w, leaving the other half.
void put_half(bool is_v, uint w, bool hi, uint val) {
    uint sh = hi ? 16u : 0u;
    uint keep = hi ? 0x0000ffffu : 0xffff0000u;
    if (is_v) {
        atomicAnd(vc[w], keep);
        atomicOr(vc[w], val << sh);
    } else {
        atomicAnd(kc[w], keep);
        atomicOr(kc[w], val << sh);
    }
}

// The block being written: its f32 source, scale and (inverse) scale.
float blk_d, blk_id;
uint blk_src;

// roundf: halves away from zero (GLSL's round() may pick either way).
uint q8_byte(uint j) {
    float v = x[blk_src + j] * blk_id;
    return uint(int(sign(v) * floor(abs(v) + 0.5))) & 0xffu;
}
uint q4_nib(uint j) { return uint(min(15, int(x[blk_src + j] * blk_id + 8.5))); }

// Byte j (< 32 for Q8_0, < 16 for Q4_0) of the block's qs.
uint qs_byte(uint kind, uint j) {
    return kind == KV_Q8_0 ? q8_byte(j) : q4_nib(j) | q4_nib(j + 16u) << 4;
}

// Half word i of the block: 0 is d, i >= 1 holds qs bytes 2i-2 and 2i-1.
uint block_half(uint kind, uint i) {
    if (i == 0u) return packHalf2x16(vec2(blk_d, 0.0)) & 0xffffu;
    return qs_byte(kind, 2u * i - 2u) | qs_byte(kind, 2u * i - 1u) << 8;
}

void store_block(uint kind, bool is_v, uint a) {
    float amax = 0.0, mx = 0.0;
    for (uint j = 0u; j < 32u; j++) {
        float v = x[blk_src + j];
        if (amax < abs(v)) {   // strict: the first of equal magnitudes wins, as in ggml
            amax = abs(v);
            mx = v;
        }
    }
    blk_d = kind == KV_Q8_0 ? amax / 127.0 : mx / -8.0;
    blk_id = blk_d != 0.0 ? 1.0 / blk_d : 0.0;
    uint n = kind == KV_Q8_0 ? 17u : 9u;   // half words per block (odd)
    uint hw = a >> 1, i = 0u;
    if ((hw & 1u) != 0u) {                 // starts in a word's high half
        put_half(is_v, hw >> 1, true, block_half(kind, 0u));
        i = 1u;
    }
    for (; i + 1u < n; i += 2u)
        put_word(is_v, (hw + i) >> 1, block_half(kind, i) | block_half(kind, i + 1u) << 16);
    if (i < n) put_half(is_v, (hw + i) >> 1, false, block_half(kind, i));
}

void main() {
    bool is_v = gl_WorkGroupID.z == 1u;
    uint kind = is_v ? V_KIND : K_KIND;
    uint u = gl_GlobalInvocationID.x;
    uint units = kind == KV_F16 ? p.width / 2u : p.width / 32u;
    if (u >= units) return;
    uint tok = p.row_base + gl_WorkGroupID.y;
    uint src = (p.x_row0 + tok) * p.row_stride + (is_v ? p.v_off : p.k_off);
    uint row = (is_v ? p.v_byte0 : p.k_byte0) + tok * kv_row_bytes(kind, p.width);
    if (kind == KV_F16) {
        put_word(is_v, (row >> 2) + u, packHalf2x16(vec2(x[src + 2u * u], x[src + 2u * u + 1u])));
    } else {
        blk_src = src + 32u * u;
        store_block(kind, is_v, row + u * kv_block_bytes(kind));
    }
}
