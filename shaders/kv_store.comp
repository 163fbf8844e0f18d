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
// With -DROPE, RoPE is fused in (rope.glsl): K is rotated as it is read, from the
// unrotated row (each element's pair partner sits in the same row), and the q heads
// are rotated in place by a third slice of the grid, so the model's QKV output
// reaches attention through this one dispatch.
// Buffers: 0 x (f32 [m][row_stride]; q rotated in place with ROPE, else read only), 1 K cache, 2 V cache:
// each bound from the 16-byte aligned start before the first written row (byte0 is
// that row's byte in the binding) to the 4-byte word after the last; 3 RoPE factors
// (f32 [n_rot/2]; bound to x and never read when absent). Mapping: x over a row's
// units (or q's rotated pairs), y over tokens (from row_base; the host splits token
// ranges beyond the y limit), z = 0 for K, 1 for V, 2 for q.
// Spec constant 1 POS_BUF (a decode recorded once and replayed per token): the
// position of x row 0 is read from binding 4 (a uint the host writes per token);
// the bindings then start at cache row pos0 (the push constant's), so the written
// row lies (position - pos0) rows after byte0. Without it binding 4 is bound to x
// and never read.
#include "kv_cache.glsl"
#ifdef ROPE
#include "rope.glsl"
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const bool POS_BUF = false;

#ifdef ROPE
layout(std430, binding = 0) buffer X { float x[]; };
#else
layout(std430, binding = 0) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) buffer K { uint kc[]; };
layout(std430, binding = 2) buffer V { uint vc[]; };
layout(std430, binding = 3) readonly buffer F { float ff[]; };
layout(std430, binding = 4) readonly buffer Pos { uint pos_dyn[]; };

layout(push_constant) uniform P {
    uint row_stride, k_off, v_off;
    uint width;             // elements per cache row
    uint k_byte0, v_byte0;  // byte of the first written row in the bindings
    uint row_base;          // this dispatch's first token (of the written range)
    uint x_row0;            // x row of the written range's first token
    uint pos0;              // position of x row 0
    uint q_off, n_q;        // q heads to rotate (n_q 0: none)
    uint head_dim, n_rot;
    uint neox, has_ff;
    float freq_exp;         // -2 log2(base) / n_rot, from the host in double
    float attn_factor;
} p;

#ifdef ROPE
// (cos, sin) of pair i at position pos, scaled by attn_factor.
vec2 rope_cs_at(uint pos, uint i) {
    return rope_cs(pos, i, p.freq_exp, p.has_ff != 0u ? ff[i] : 1.0, p.attn_factor);
}

// Element d of the head starting at x[head], rotated at pos (dims >= n_rot pass).
float rope_elem(uint head, uint d, uint pos) {
    uint half_rot = p.n_rot / 2u;
    if (d >= p.n_rot) return x[head + d];
    bool first = p.neox != 0u ? d < half_rot : (d & 1u) == 0u;
    uint i = p.neox != 0u ? d % half_rot : d / 2u;
    uint d0 = p.neox != 0u ? i : 2u * i, d1 = p.neox != 0u ? i + half_rot : 2u * i + 1u;
    vec2 cs = rope_cs_at(pos, i);
    float x0 = x[head + d0], x1 = x[head + d1];
    return first ? x0 * cs.x - x1 * cs.y : x0 * cs.y + x1 * cs.x;
}
#endif

// The written row's element j: V as it is, K through RoPE.
uint src_row, src_pos;
bool src_is_v;
float src(uint j) {
#ifdef ROPE
    if (!src_is_v) return rope_elem(src_row + j / p.head_dim * p.head_dim, j % p.head_dim, src_pos);
#endif
    return x[src_row + j];
}

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

// The block being written: its first element, scale and (inverse) scale.
float blk_d, blk_id;
uint blk_src;

// roundf: halves away from zero (GLSL's round() may pick either way).
uint q8_byte(uint j) {
    float v = src(blk_src + j) * blk_id;
    return uint(int(sign(v) * floor(abs(v) + 0.5))) & 0xffu;
}
uint q4_nib(uint j) { return uint(min(15, int(src(blk_src + j) * blk_id + 8.5))); }

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
        float v = src(blk_src + j);
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

#ifdef ROPE
// q pair u of the token's row, rotated in place.
void rotate_q(uint xrow, uint pos, uint u) {
    uint half_rot = p.n_rot / 2u;
    if (u >= p.n_q * half_rot) return;
    uint head = xrow + p.q_off + u / half_rot * p.head_dim, i = u % half_rot;
    uint d0 = p.neox != 0u ? i : 2u * i, d1 = p.neox != 0u ? i + half_rot : 2u * i + 1u;
    vec2 cs = rope_cs_at(pos, i);
    float x0 = x[head + d0], x1 = x[head + d1];
    x[head + d0] = x0 * cs.x - x1 * cs.y;
    x[head + d1] = x0 * cs.y + x1 * cs.x;
}
#endif

void main() {
    uint u = gl_GlobalInvocationID.x, tok = p.row_base + gl_WorkGroupID.y;
    uint xrow = (p.x_row0 + tok) * p.row_stride;
    uint pos0 = POS_BUF ? pos_dyn[0] : p.pos0, shift = pos0 - p.pos0;
    src_pos = pos0 + p.x_row0 + tok;
#ifdef ROPE
    if (gl_WorkGroupID.z == 2u) {
        rotate_q(xrow, src_pos, u);
        return;
    }
#endif
    src_is_v = gl_WorkGroupID.z == 1u;
    uint kind = src_is_v ? V_KIND : K_KIND;
    uint units = kind == KV_F16 ? p.width / 2u : p.width / 32u;
    if (u >= units) return;
    src_row = xrow + (src_is_v ? p.v_off : p.k_off);
    uint row = (src_is_v ? p.v_byte0 : p.k_byte0) + (shift + tok) * kv_row_bytes(kind, p.width);
    if (kind == KV_F16) {
        put_word(src_is_v, (row >> 2) + u, packHalf2x16(vec2(src(2u * u), src(2u * u + 1u))));
    } else {
        blk_src = 32u * u;
        store_block(kind, src_is_v, row + u * kv_block_bytes(kind));
    }
}
