// Weight loads for matvec.comp, matmul.comp and get_rows.comp: one weight type
// (-DW_F32, -DW_F16, -DW_BF16, or a ggml block type -DW_Q8_0, -DW_Q4_0, -DW_Q4_1,
// -DW_Q5_0, -DW_Q5_1, -DW_Q4_K, -DW_Q5_K, -DW_Q6_K) through one fetch path
// (-DW_TEXEL: uniform texel buffer, faster on lavapipe; else a storage buffer).
// The includer defines W_BINDING. Elements are addressed by their index e within
// the bound range (row * K + k; rows are contiguous in stored order):
//   W_VEC                     elements per w_load8 (8): K % W_VEC == 0 enables it
//   void w_load8(e, lo, hi)   e .. e+7 as two vec4, e a multiple of W_VEC
//   W_SCALAR, float w_load1(e) plain types only: one element, any e (the path for
//                             K % W_VEC != 0; block types always have K % 32 == 0)
// Block types also define W_BLOCKED and W_BE (elements per block) and decode in
// units of 32 elements: unit s of block blk is elements 32s .. 32s+31 of the block
// (W_BE / 32 units per block), and its weights are w = a*q + b with small integers
// q and, per half of 16 elements, the affine pair from
//   vec4 w_ab(blk, s)            (a, b) of elements 0..15, (a, b) of 16..31
//   uvec2 w_qp(blk, s, i)        q of elements 8i .. 8i+7 of the unit (i < 4), one
//                                byte each in element order (int8: -128..127 for
//                                Q8_0, else 0..63), for integer dot products
//   void w_q8(blk, s, i, lo, hi) the same as two vec4
// so matvec can hoist the scale and offset out of the dot product:
// sum w*x = a*sum(q*x) + b*sum(x) per half, and sum(x) is shared by every row.
//
// Fetch: every type reads 16-byte words (uniform texel buffer of RGBA32UI, or a
// uvec4 storage buffer). lavapipe is bound by the number of fetches, not bytes or
// ALU (docs/kernels.md B; here a Q4_0 matvec spent ~70% of its time in fetches
// and removing the nibble arithmetic changed nothing): one R32UI fetch per 32-bit
// word took 5-6 fetches per Q4_0 block and 12 per Q4_K unit, where 16-byte words
// take 2 and 3. Q4_K and Q5_K blocks (144, 176 bytes) are whole 16-byte words and
// are read in place; the others (18, 20, 22, 24, 34, 210 bytes) are read through
// w_window, which fetches the 2-3 texels covering a range and shifts them to the
// range's byte offset with selects. Each w_q8 call of a unit rebuilds the same
// window; the compiler merges the identical fetches and selects.
// The host rounds every binding up to 16 bytes and pads it by 16 more, so a
// window's last texel stays in range.
#define W_VEC 8u
#ifndef W_REPACK
#define W_LAYOUT_INIT(n, k)   // the GGUF layout needs no set-up
#endif
#extension GL_EXT_control_flow_attributes : enable

#ifdef W_TEXEL
layout(binding = W_BINDING) uniform usamplerBuffer w_tex;
uvec4 w_word4(uint i) { return texelFetch(w_tex, int(i)); }
uint w_word(uint i) { return texelFetch(w_tex, int(i >> 2))[i & 3u]; }
#else
layout(std430, binding = W_BINDING) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = W_BINDING) readonly buffer W1 { uint w1[]; };
uvec4 w_word4(uint i) { return w4[i]; }
uint w_word(uint i) { return w1[i]; }
#endif

#if defined(W_F32)
#define W_SCALAR
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    lo = uintBitsToFloat(w_word4(e >> 2));
    hi = uintBitsToFloat(w_word4((e >> 2) + 1u));
}
float w_load1(uint e) { return uintBitsToFloat(w_word(e)); }
#elif defined(W_F16)
#define W_SCALAR
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    uvec4 u = w_word4(e >> 3);
    lo = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    hi = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
float w_load1(uint e) { return unpackHalf2x16(w_word(e >> 1))[e & 1u]; }
#elif defined(W_BF16)
#define W_SCALAR
vec2 bf16x2(uint u) { return uintBitsToFloat(uvec2(u << 16, u & 0xffff0000u)); }
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    uvec4 u = w_word4(e >> 3);
    lo = vec4(bf16x2(u.x), bf16x2(u.y));
    hi = vec4(bf16x2(u.z), bf16x2(u.w));
}
float w_load1(uint e) { return bf16x2(w_word(e >> 1))[e & 1u]; }
#else
#define W_BLOCKED

#ifdef W_REPACK
// The repacked layout of Q4_0 and Q8_0 (pvk_tensor_write, chosen per type by the
// tuner): in each bound chunk, first every block's quants, W_QW 16-byte words per
// block in GGUF's byte order, then the blocks' f16 scales, 8 per word, from word
// w_sbase on. The includer sets w_sbase with W_LAYOUT_INIT(chunk rows, K). A unit's
// quants are one aligned word (Q4_0) or two (Q8_0) and its scale one more: no window
// of 2-3 texels shifted by selects, and no fetch straddles two blocks.
uint w_sbase = 0u;
float w_scale(uint blk) {
    uvec4 s = w_word4(w_sbase + (blk >> 3));
    uint j = (blk >> 1) & 3u, w = j == 0u ? s.x : j == 1u ? s.y : j == 2u ? s.z : s.w;
    return unpackHalf2x16(w >> (16u * (blk & 1u))).x;
}
#define W_LAYOUT_INIT(n, k) w_sbase = (n) * ((k) / W_BE) * W_QW
#if !defined(W_Q4_0) && !defined(W_Q8_0)
#error W_REPACK is defined for Q4_0 and Q8_0 only
#endif
#endif

// Words v[j] = bytes o+4j .. o+4j+3 of the bound range (o even) for j < 9, from the
// NT (<= 3) 16-byte words covering byte o onwards: shifted by o % 16 bytes with a
// fixed tree of selects (no dynamically indexed array, which lavapipe puts on the
// stack). Words past the NT fetched ones read as 0; callers ask for no more.
void w_window(uint o, uint NT, out uint v[9]) {
    uint t = o >> 4, a = (o >> 2) & 3u, w[12], u[11], x[10];
    uvec4 t0 = w_word4(t), t1 = NT > 1u ? w_word4(t + 1u) : uvec4(0u), t2 = NT > 2u ? w_word4(t + 2u) : uvec4(0u);
    w = uint[12](t0.x, t0.y, t0.z, t0.w, t1.x, t1.y, t1.z, t1.w, t2.x, t2.y, t2.z, t2.w);
    [[unroll]] for (uint k = 0; k < 11u; k++) u[k] = (a & 1u) != 0u ? w[k + 1u] : w[k];
    [[unroll]] for (uint k = 0; k < 10u; k++) x[k] = (a & 2u) != 0u ? (k + 2u < 11u ? u[k + 2u] : 0u) : u[k];
    [[unroll]] for (uint j = 0; j < 9u; j++) v[j] = (o & 2u) != 0u ? (x[j] >> 16) | (x[j + 1u] << 16) : x[j];
}
// The word at byte 2 + 4j of a window: fields after a block's leading f16.
uint odd_word(uint v[9], uint j) { return (v[j] >> 16) | (v[j + 1u] << 16); }
// Nibbles sh of the 4 bytes of each word: (w >> sh) & 0x0f0f0f0f keeps them in byte order.
#define NIBBLES(w, sh) (((w) >> (sh)) & 0x0f0f0f0fu)
// 32 bits of qh from a block's 4 qh bytes: bit j of element j, shifted to byte lanes:
// elements 8i .. 8i+3 and 8i+4 .. 8i+7 take bit 0 of each byte of the two results.
void qh_spread(uint qh, uint i, out uint a, out uint b) {
    uint v = qh >> (8u * i);
    a = (v & 1u) | ((v & 2u) << 7) | ((v & 4u) << 14) | ((v & 8u) << 21);
    v >>= 4;
    b = (v & 1u) | ((v & 2u) << 7) | ((v & 4u) << 14) | ((v & 8u) << 21);
}

// Legacy blocks (32 elements, 18 to 34 bytes) are read as one window of the 2 or 3
// texels covering the block; its fields then sit at fixed offsets.
#if defined(W_Q8_0) && defined(W_REPACK)
#define W_BE 32u
#define W_QW 2u
vec4 w_ab(uint blk, uint s) {
    float d = w_scale(blk);
    return vec4(d, 0.0, d, 0.0);
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uvec4 q = w_word4(W_QW * blk + (i >> 1));
    return (i & 1u) == 0u ? q.xy : q.zw;
}
#elif defined(W_Q4_0) && defined(W_REPACK)
#define W_BE 32u
#define W_QW 1u
vec4 w_ab(uint blk, uint s) {
    float d = w_scale(blk);
    return vec4(d, -8.0 * d, d, -8.0 * d);
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uvec4 q = w_word4(blk);
    return NIBBLES((i & 1u) == 0u ? q.xy : q.zw, (i >> 1) * 4u);
}
#elif defined(W_Q8_0)   // f16 d; i8 qs[32]: w = d*q
#define W_BE 32u
#define W_BB 34u
#define W_NT 3u
vec4 w_ab(uint blk, uint s) {
    uint v[9];
    w_window(blk * W_BB, W_NT, v);
    float d = unpackHalf2x16(v[0]).x;
    return vec4(d, 0.0, d, 0.0);
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uint v[9];
    w_window(blk * W_BB, W_NT, v);
    return uvec2(odd_word(v, 2u * i), odd_word(v, 2u * i + 1u));
}
#elif defined(W_Q4_0) || defined(W_Q4_1) || defined(W_Q5_0) || defined(W_Q5_1)
// d (, m) (, u32 qh); u8 qs[16]: q = nibble (| qh bit << 4). Element j < 16 is the
// low nibble of qs[j], element j + 16 the high one; qh bit j belongs to element j.
#define W_BE 32u
#if defined(W_Q4_0)
#define W_BB 18u
#define W_NT 2u
#define QS_WORD(v, j) odd_word(v, j)
#elif defined(W_Q4_1)
#define W_BB 20u
#define W_NT 2u
#define QS_WORD(v, j) v[1u + (j)]
#elif defined(W_Q5_0)
#define W_BB 22u
#define W_NT 3u
#define QH_WORD(v) odd_word(v, 0u)
#define QS_WORD(v, j) odd_word(v, 1u + (j))
#else
#define W_BB 24u
#define W_NT 2u
#define QH_WORD(v) v[1]
#define QS_WORD(v, j) v[2u + (j)]
#endif
vec4 w_ab(uint blk, uint s) {
    uint v[9];
    w_window(blk * W_BB, W_NT, v);
    vec2 dm = unpackHalf2x16(v[0]);
#if defined(W_Q4_0)
    return vec4(dm.x, -8.0 * dm.x, dm.x, -8.0 * dm.x);
#elif defined(W_Q5_0)
    return vec4(dm.x, -16.0 * dm.x, dm.x, -16.0 * dm.x);
#else
    return dm.xyxy;   // w = d*q + m
#endif
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uint v[9];
    w_window(blk * W_BB, W_NT, v);
    uint sh = (i >> 1) * 4u, j = 2u * (i & 1u);
    uvec2 q = NIBBLES(uvec2(QS_WORD(v, j), QS_WORD(v, j + 1u)), sh);
#ifdef QH_WORD
    uint ha, hb;
    qh_spread(QH_WORD(v), i, ha, hb);
    q |= uvec2(ha, hb) << 4;
#endif
    return q;
}
#elif defined(W_Q4_K) || defined(W_Q5_K)
// f16 d, dmin; u8 scales[12]; (Q5_K: u8 qh[32];) u8 qs[128]. Unit s is sub-block s
// with 6-bit scale sc and min m: w = d*sc*q - dmin*m. Its q are the low (s even) or
// high (s odd) nibbles of qs[32*(s/2) ..], plus (Q5_K) bit s of qh[0..31] as 16.
// Blocks of 144 and 176 bytes are whole 16-byte words: d, dmin and the scales are
// word 0, and a unit's q fill two words, so they are read as RGBA32UI texels.
#define W_BE 256u
#ifdef W_Q4_K
#define W_BT 9u
#define W_QS 1u
#else
#define W_BT 11u
#define W_QS 3u
#endif
uint sbyte(uvec3 sw, uint j) {
    uint w = j < 4u ? sw.x : j < 8u ? sw.y : sw.z;
    return (w >> (8u * (j & 3u))) & 0xffu;
}
vec4 w_ab(uint blk, uint s) {
    uvec4 h = w_word4(blk * W_BT);
    vec2 dm = unpackHalf2x16(h.x);
    uint sc, m;
    if (s < 4u) {
        sc = sbyte(h.yzw, s) & 63u;
        m = sbyte(h.yzw, s + 4u) & 63u;
    } else {
        uint v = sbyte(h.yzw, s + 4u);
        sc = (v & 15u) | ((sbyte(h.yzw, s - 4u) >> 6) << 4);
        m = (v >> 4) | ((sbyte(h.yzw, s) >> 6) << 4);
    }
    vec2 ab = vec2(dm.x * float(sc), -dm.y * float(m));
    return ab.xyxy;
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uint b = blk * W_BT, sh = (s & 1u) * 4u;
    uvec4 q = w_word4(b + W_QS + 2u * (s >> 1) + (i >> 1));
    uvec2 r = NIBBLES((i & 1u) == 0u ? q.xy : q.zw, sh);
#ifdef W_Q5_K
    uvec4 qh = w_word4(b + 1u + (i >> 1));
    r |= (((i & 1u) == 0u ? qh.xy : qh.zw) >> s & 0x01010101u) << 4;
#endif
    return r;
}
#elif defined(W_Q6_K)
// u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d. Half n = s/4 holds 128 elements;
// its quarter t = s%4 is y[32t + l], l < 32: q = (nibble t/2 of ql[64n + 32(t&1) + l])
// | (bits 2t, 2t+1 of qh[32n + l]) << 4, minus 32, scaled by d*scales[8n + 2t + l/16].
// A unit reads three windows: its 32 ql bytes, its 32 qh bytes, scales and d.
#define W_BE 256u
#define W_BB 210u
vec4 w_ab(uint blk, uint s) {
    uint v[9], n = s >> 2, t = s & 3u, k = 2u * n + (t >> 1);
    w_window(blk * W_BB + 192u, 2u, v);
    float d = unpackHalf2x16(v[4]).x;
    uint sc = k == 0u ? v[0] : k == 1u ? v[1] : k == 2u ? v[2] : v[3];
    sc >>= (t & 1u) * 16u;
    vec2 a = d * vec2(ivec2(uvec2(sc << 24, sc << 16)) >> 24);
    return vec4(a.x, -32.0 * a.x, a.y, -32.0 * a.y);
}
uvec2 w_qp(uint blk, uint s, uint i) {
    uint o = blk * W_BB, n = s >> 2, t = s & 3u, ql[9], qh[9];
    w_window(o + 64u * n + 32u * (t & 1u), 3u, ql);
    w_window(o + 128u + 32u * n, 3u, qh);
    return NIBBLES(uvec2(ql[2u * i], ql[2u * i + 1u]), (t >> 1) * 4u) |
           ((uvec2(qh[2u * i], qh[2u * i + 1u]) >> (2u * t) & 0x03030303u) << 4);
}
#else
#error define the weight type: W_F32, W_F16, W_BF16 or a block type (W_Q4_0, ...)
#endif

// The bytes of a w_qp word as four numbers (Q8_0's are signed).
#ifdef W_Q8_0
vec4 w_unpack(uint w) { return vec4(ivec4(uvec4(w) << uvec4(24u, 16u, 8u, 0u)) >> 24); }
#else
vec4 w_unpack(uint w) { return vec4(ivec4(uvec4(w) >> uvec4(0u, 8u, 16u, 24u) & 0xffu)); }
#endif
void w_q8(uint blk, uint s, uint i, out vec4 lo, out vec4 hi) {
    uvec2 q = w_qp(blk, s, i);
    lo = w_unpack(q.x);
    hi = w_unpack(q.y);
}

// Elements e .. e+7 (e a multiple of 8) dequantized.
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    uint blk = e / W_BE, r = e % W_BE, s = r >> 5, i = (r >> 3) & 3u;
    vec4 ab = w_ab(blk, s);
    vec2 h = i < 2u ? ab.xy : ab.zw;
    w_q8(blk, s, i, lo, hi);
    lo = lo * h.x + h.y;
    hi = hi * h.x + h.y;
}
#endif
