#version 450
// Attention over the KV cache, flash-attention style: scores are never stored; each
// query row keeps a running max M, sum L and output O in fp32 (online softmax).
//   out[t][h] = sum_k softmax_k(q[t][h] . K[k] * scale) V[k]
//   over keys k <= pos0 + t (causal) with pos0 + t - k < window when window > 0.
// Rows are (token, head) pairs of one KV head's GQA group, head fastest, so the
// heads sharing a KV head run side by side and read the same K/V rows. Each row is
// handled by L lanes splitting the head dimension (q.k partials summed with subgroup
// shuffles, -DUSE_SUBGROUP; L = 1 without it); a workgroup holds WG/L rows.
// No shared memory and no barriers: on lavapipe both are expensive, and on GPUs the
// K/V rows a workgroup re-reads across its rows hit the cache.
// Split-K: workgroup z takes one of n_split slices of the tile's key range. With
// n_split == 1 it writes the normalised result to out; otherwise it writes its
// un-normalised O and (M, L) to scratch and attn_reduce.comp combines the slices.
// Cache chunks: a long cache may be split by positions into chunks that each fit
// one binding; the host records one dispatch per chunk [c_lo, c_hi) with barriers
// between them. A slice that continues from an earlier chunk resumes its (O, M, L)
// from its scratch entry, and one that goes on into a later chunk leaves it there;
// only the dispatch of the chunk where a slice ends finishes it. One chunk spans
// the whole cache in the common case, where nothing is resumed.
// Buffers: 0 x (f32, q rows), 1 K cache, 2 V cache, 3 out, 4 scratch (may be out
// itself when unused).
// The cache (kv_cache.glsl formats, -DK_<T> -DV_<T>) is read in 32-bit words: a
// storage buffer bound from the 16-byte aligned start before row kv_row0 (at byte
// k_byte0 / v_byte0 of the bindings), or, with -DKV_TEXEL, a uniform texel view
// (RG32UI) of the chunk's whole buffer. F16 reads a word pair per 4 elements;
// Q8_0 and Q4_0 read the block's d (one word) and 4 quants (one word, or two when
// they start at 2 mod 4) per 4 elements.
// Key lanes (-DUSE_SUBGROUP, KL > 1): when a batch has fewer rows than a workgroup
// has invocations (decode), KL invocations of a row take every KL-th key of its
// range, each with its own (O, M, L), merged by subgroup shuffles at the end: no
// per-key shuffles or repeated softmax work, unlike lanes splitting the head.
// Block-sparse (bs_block > 0, Phi-3-small): query head h at qpos sees key k <= qpos
// iff its block k / B is one of the LB local blocks up to qpos / B or lies on the
// head's vertical stride, (k / B + hoff + 1) % VS == 0 with hoff = h * step % VS.
// Each row jumps from a block it does not see to the next one it does (the keys
// of its residue mod KL), so skipped blocks cost no loads and no loop iterations;
// the rows of a workgroup may then loop different counts, and the shuffles inside
// the key loop stay within one row's lanes, which always loop together.
// Grid: x = tiles of rows (from tile_base), y = KV head, z = split.
// Spec constants: 0 WG, 1 L (a power of two <= subgroup size), 2 HD (head_dim,
// a multiple of 4 L), 3 KL (a power of two; L * KL <= subgroup size), 4 POS_BUF:
// the query position pos0 is read from binding 5 (a uint the host writes per token,
// for a decode recorded once and replayed); without it binding 5 is bound to x and
// never read.
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "kv_cache.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint L = 8;
layout(constant_id = 2) const uint HD = 64;
layout(constant_id = 3) const uint KL = 1;
layout(constant_id = 4) const bool POS_BUF = false;
const uint HD4 = HD / 4u;          // vec4s per head
const uint D4 = HD / (4u * L);     // vec4s per lane
const uint R = WG / (L * KL);      // rows per workgroup

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 3) writeonly buffer O { vec4 out4[]; };
layout(std430, binding = 4) buffer S { vec4 sc[]; };
layout(std430, binding = 5) readonly buffer Pos { uint pos_dyn[]; };

layout(push_constant) uniform P {
    uint q_stride4, q_off4;   // in vec4s
    uint n_head, group;       // group = n_head / n_kv_head
    uint m, pos0, window;
    float scale;
    uint kv_width;            // elements per cache row
    uint kv_row0;             // position of the bound range's first row
    uint k_byte0, v_byte0;    // that row's byte in the K and V bindings
    uint c_lo, c_hi;          // this dispatch's chunk of positions
    uint n_split, tile_base;
    uint bs_block, bs_local, bs_stride, bs_hoff;   // block-sparse pattern; bs_block 0: dense
} p;

#ifdef KV_TEXEL
layout(binding = 1) uniform usamplerBuffer k_tex;
layout(binding = 2) uniform usamplerBuffer v_tex;
uvec2 kv_pair(bool is_v, uint i) { return is_v ? texelFetch(v_tex, int(i >> 1)).xy : texelFetch(k_tex, int(i >> 1)).xy; }
uint kv_word(bool is_v, uint i) { return kv_pair(is_v, i)[i & 1u]; }
#else
layout(std430, binding = 1) readonly buffer K { uint kw[]; };
layout(std430, binding = 2) readonly buffer V { uint vw[]; };
uint kv_word(bool is_v, uint i) { return is_v ? vw[i] : kw[i]; }
uvec2 kv_pair(bool is_v, uint i) { return uvec2(kv_word(is_v, i), kv_word(is_v, i + 1u)); }
#endif

// The 16 bits at byte b (even).
uint kv_half(bool is_v, uint b) {
    uint w = kv_word(is_v, b >> 2);
    return (b & 2u) != 0u ? w >> 16 : w & 0xffffu;
}
// The 4 bytes at byte b (even), from one word or two.
uint kv_bytes4(bool is_v, uint b) {
    uint w = kv_word(is_v, b >> 2);
    return (b & 2u) == 0u ? w : (w >> 16) | (kv_word(is_v, (b >> 2) + 1u) << 16);
}

// Elements e..e+3 (e % 4 == 0) of the row starting at byte rb.
vec4 kv_load4(uint kind, bool is_v, uint rb, uint e) {
    if (kind == KV_F16) {
        uvec2 w = kv_pair(is_v, (rb >> 2) + (e >> 1));   // rb % 8 == 0: one texel
        return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    }
    uint bb = rb + (e >> 5) * kv_block_bytes(kind), j = e & 31u;
    float d = unpackHalf2x16(kv_half(is_v, bb)).x;
    if (kind == KV_Q8_0) {
        int q = int(kv_bytes4(is_v, bb + 2u + j));
        return d * vec4(ivec4(q << 24, q << 16, q << 8, q) >> 24);
    }
    uint q = kv_bytes4(is_v, bb + 2u + (j & 15u)) >> ((j & 16u) >> 2);   // high nibbles for j >= 16
    return d * (vec4(uvec4(q, q >> 8, q >> 16, q >> 24) & 15u) - 8.0);
}

// The row's query (pre-scaled) and output accumulator, D4 vec4s per lane.
vec4 q[D4], o[D4];

// Whole blocks, when one lane holds a head that starts on a block (L == 1,
// HD % 32 == 0, as key lanes have on CPU devices): d and the quants are fetched
// once per block (Q8_0: 9 words, Q4_0: 5, both nibbles of each quant byte used)
// instead of once per 4 elements. Straight-line code: no loop to count against
// llvmpipe's iteration limit.
#define BLOCKWISE(quant) ((quant) != 0 && L == 1u && HD % 32u == 0u)
float blk_d;
uint blk_g[8];   // quant bytes 4i..4i+3 of the block (Q4_0: i < 4)

uint blk_word(bool is_v, uint i, bool hi_half, uint lo_word) {
    uint w = kv_word(is_v, i);
    return hi_half ? (lo_word >> 16) | (w << 16) : w;
}

void load_block(uint kind, bool is_v, uint bb) {
    uint i0 = bb >> 2, w0 = kv_word(is_v, i0);
    bool split = (bb & 2u) == 0u;   // d fills w0's low half: every quant group spans two words
    blk_d = unpackHalf2x16(split ? w0 : w0 >> 16).x;
    blk_g[0] = blk_word(is_v, i0 + 1u, split, w0);
    blk_g[1] = blk_word(is_v, i0 + 2u, split, kv_word(is_v, i0 + 1u));
    blk_g[2] = blk_word(is_v, i0 + 3u, split, kv_word(is_v, i0 + 2u));
    blk_g[3] = blk_word(is_v, i0 + 4u, split, kv_word(is_v, i0 + 3u));
    if (kind == KV_Q8_0) {
        blk_g[4] = blk_word(is_v, i0 + 5u, split, kv_word(is_v, i0 + 4u));
        blk_g[5] = blk_word(is_v, i0 + 6u, split, kv_word(is_v, i0 + 5u));
        blk_g[6] = blk_word(is_v, i0 + 7u, split, kv_word(is_v, i0 + 6u));
        blk_g[7] = blk_word(is_v, i0 + 8u, split, kv_word(is_v, i0 + 7u));
    }
}

// Elements 4i..4i+3 of the loaded block, without d.
vec4 blk_q4(uint kind, uint i) {
    if (kind == KV_Q8_0) {
        int w = int(blk_g[i]);
        return vec4(ivec4(w << 24, w << 16, w << 8, w) >> 24);
    }
    uint w = blk_g[i & 3u] >> ((i & 4u) != 0u ? 4 : 0);   // i >= 4: high nibbles
    return vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 15u) - 8.0;
}

// q . K over the block at byte bb, which holds the row's elements 32 b ...
float block_dot(uint kind, uint bb, uint b) {
    load_block(kind, false, bb);
    float s = 0.0;
    for (uint i = 0u; i < 8u; i++) s += dot(q[8u * b + i], blk_q4(kind, i));
    return s * blk_d;
}

// ... and o += e V.
void block_acc(uint kind, uint bb, uint b, float e) {
    load_block(kind, true, bb);
    float ed = e * blk_d;
    for (uint i = 0u; i < 8u; i++) o[8u * b + i] += ed * blk_q4(kind, i);
}

// Unrolled by hand: llvmpipe ends any invocation's loops after 65535 iterations
// in all, so the per-key work must not loop (the host bounds the key loop).
float row_sum(float v) {
#ifdef USE_SUBGROUP
    if (L > 32u) v += subgroupShuffleXor(v, 32u);
    if (L > 16u) v += subgroupShuffleXor(v, 16u);
    if (L > 8u) v += subgroupShuffleXor(v, 8u);
    if (L > 4u) v += subgroupShuffleXor(v, 4u);
    if (L > 2u) v += subgroupShuffleXor(v, 2u);
    if (L > 1u) v += subgroupShuffleXor(v, 1u);
#endif
    return v;
}

// Block-sparse: the first key >= k that the row (query block qb, vertical offset
// hoff) sees, with k0's residue mod KL; k itself when its block is seen or the
// layer is dense. A candidate past a seen block's end is checked again by the caller.
uint bs_next(uint k, uint k0, uint qb, uint hoff) {
    if (p.bs_block == 0u) return k;
    uint kb = k / p.bs_block;
    uint local0 = qb + 1u > p.bs_local ? qb + 1u - p.bs_local : 0u;
    uint r = (kb + hoff + 1u) % p.bs_stride;
    if (kb >= local0 || r == 0u) return k;
    uint nb = min(kb + p.bs_stride - r, local0);   // next vertical block, or the local window
    uint start = nb * p.bs_block;
    return start + ((k0 - start) & (KL - 1u));
}

bool bs_sees(uint k, uint qb, uint hoff) {
    if (p.bs_block == 0u) return true;
    uint kb = k / p.bs_block;
    return qb - kb < p.bs_local || (kb + hoff + 1u) % p.bs_stride == 0u;
}

void main() {
    uint pos0 = POS_BUF ? pos_dyn[0] : p.pos0;
    uint lane = gl_LocalInvocationID.x % L;
    uint kl = (gl_LocalInvocationID.x / L) % KL;   // key lane
    uint rows = p.m * p.group;
    uint row0 = (p.tile_base + gl_WorkGroupID.x) * R;
    uint row = row0 + gl_LocalInvocationID.x / (L * KL);
    bool live = row < rows;
    uint rr = min(row, rows - 1u);       // padding rows shadow the last row
    uint tok = rr / p.group;
    uint h = gl_WorkGroupID.y * p.group + rr % p.group;
    uint qpos = pos0 + tok;

    // The workgroup's key range (uniform): up to its last token, from its first
    // token's window start; split z takes one slice [ks, ke) of it.
    uint tok_first = row0 / p.group, tok_last = (min(row0 + R, rows) - 1u) / p.group;
    uint k_end = pos0 + tok_last + 1u;
    uint first_pos = pos0 + tok_first;
    uint k_begin = (p.window != 0u && first_pos >= p.window) ? first_pos + 1u - p.window : 0u;
    uint span = (k_end - k_begin + p.n_split - 1u) / p.n_split;
    uint ks = min(k_begin + gl_WorkGroupID.z * span, k_end);
    uint ke = min(ks + span, k_end);
    // The chunk that holds a slice's first key (or, for an empty slice, the last
    // key of the range) starts it; the one that holds its last key finishes it.
    uint a0 = min(ks, k_end - 1u), a1 = max(ke, a0 + 1u);
    if (a1 <= p.c_lo || a0 >= p.c_hi) return;   // uniform: no barriers follow
    bool finish = a1 <= p.c_hi;
    bool resume = a0 < p.c_lo && kl == 0u;   // the state continues in key lane 0

    uint qb = tok * p.q_stride4 + p.q_off4 + h * HD4 + lane;
    uint eb = ((gl_WorkGroupID.z * p.m + tok) * p.n_head + h) * (HD4 + 1u);   // scratch entry
    for (uint v = 0u; v < D4; v++) {
        q[v] = x4[qb + v * L] * p.scale;
        o[v] = resume ? sc[eb + lane + v * L] : vec4(0.0);
    }
    // -FLT_MAX/2, not -inf: the first rescale exp(M - s) must be 0, not NaN.
    float M = -1.7014117e38, sum = 0.0;
    if (resume) {
        vec4 ml = sc[eb + HD4];
        M = ml.x;
        sum = ml.y;
    }
    uint e0 = gl_WorkGroupID.y * HD + 4u * lane;   // this lane's first element of the row
    uint k_rb = kv_row_bytes(K_KIND, p.kv_width), v_rb = kv_row_bytes(V_KIND, p.kv_width);
    uint k_lo = max(ks, p.c_lo), k_hi = min(ke, p.c_hi);
    uint qblk = p.bs_block != 0u ? qpos / p.bs_block : 0u;
    uint hoff = p.bs_block != 0u ? h * p.bs_hoff % p.bs_stride : 0u;
    for (uint k = bs_next(k_lo + kl, k_lo + kl, qblk, hoff); k < k_hi; k = bs_next(k + KL, k_lo + kl, qblk, hoff)) {
        uint r = k - p.kv_row0;
        uint kr = p.k_byte0 + r * k_rb, vr = p.v_byte0 + r * v_rb;
        float s = 0.0;
        if (BLOCKWISE(K_QUANT))
            for (uint b = 0u; b < HD / 32u; b++) s += block_dot(K_KIND, kr + ((e0 >> 5) + b) * kv_block_bytes(K_KIND), b);
        else
            for (uint v = 0u; v < D4; v++) s += dot(q[v], kv_load4(K_KIND, false, kr, e0 + 4u * L * v));
        s = row_sum(s);
        if (k > qpos || (p.window != 0u && qpos - k >= p.window) || !bs_sees(k, qblk, hoff)) continue;
        if (s > M) {   // rescale only when the max grows
            float c = exp(M - s);
            sum *= c;
            for (uint v = 0u; v < D4; v++) o[v] *= c;
            M = s;
        }
        float e = exp(s - M);
        sum += e;
        if (BLOCKWISE(V_QUANT))
            for (uint b = 0u; b < HD / 32u; b++) block_acc(V_KIND, vr + ((e0 >> 5) + b) * kv_block_bytes(V_KIND), b, e);
        else
            for (uint v = 0u; v < D4; v++) o[v] += e * kv_load4(V_KIND, true, vr, e0 + 4u * L * v);
    }
#ifdef USE_SUBGROUP
    // Merge the key lanes' states: rescale both to the larger max and add.
    for (uint st = L; st < L * KL; st <<= 1) {
        float Mo = subgroupShuffleXor(M, st), so = subgroupShuffleXor(sum, st);
        float Mn = max(M, Mo), ca = exp(M - Mn), cb = exp(Mo - Mn);
        sum = sum * ca + so * cb;
        for (uint v = 0u; v < D4; v++) o[v] = o[v] * ca + subgroupShuffleXor(o[v], st) * cb;
        M = Mn;
    }
#endif
    if (!live || kl != 0u) return;
    if (finish && p.n_split == 1u) {
        uint ob = (tok * p.n_head + h) * HD4 + lane;
        for (uint v = 0u; v < D4; v++) out4[ob + v * L] = o[v] / sum;
    } else {
        for (uint v = 0u; v < D4; v++) sc[eb + lane + v * L] = o[v];
        if (lane == 0u) sc[eb + HD4] = vec4(M, sum, 0.0, 0.0);
    }
}
