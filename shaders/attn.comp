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
// Buffers: 0 x (f32, q rows), 1 K cache, 2 V cache, 3 dst (out or scratch).
// The cache is a storage buffer bound from row kv_row0 (at uvec2 kv_word0 of the
// binding) or, with -DKV_TEXEL, a uniform texel view (RG32UI) of the whole cache.
// Grid: x = tiles of rows (from tile_base), y = KV head, z = split.
// Spec constants: 0 WG, 1 L (a power of two <= subgroup size), 2 HD (head_dim,
// a multiple of 4 L).
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint L = 8;
layout(constant_id = 2) const uint HD = 64;
const uint HD4 = HD / 4u;          // vec4s per head
const uint D4 = HD / (4u * L);     // vec4s per lane
const uint R = WG / L;             // rows per workgroup

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 3) writeonly buffer D { vec4 dst[]; };

layout(push_constant) uniform P {
    uint q_stride4, q_off4;   // in vec4s
    uint n_head, group;       // group = n_head / n_kv_head
    uint m, pos0, window;
    float scale;
    uint kv_width4;           // cache row in uvec2s (4 elements each)
    uint kv_row0, kv_word0;
    uint n_split, tile_base;
} p;

// The cache: 4 consecutive elements at 8-byte index i of K or V. The fetch path
// (-DKV_TEXEL or a storage buffer) gives the 8 bytes, the format (-DKV_F16;
// quantized caches add a branch) decodes them.
#ifdef KV_TEXEL
layout(binding = 1) uniform usamplerBuffer k_tex;
layout(binding = 2) uniform usamplerBuffer v_tex;
#define K_WORDS(i) texelFetch(k_tex, int(i)).xy
#define V_WORDS(i) texelFetch(v_tex, int(i)).xy
#else
layout(std430, binding = 1) readonly buffer K { uvec2 kc[]; };
layout(std430, binding = 2) readonly buffer V { uvec2 vc[]; };
#define K_WORDS(i) kc[i]
#define V_WORDS(i) vc[i]
#endif
#if defined(KV_F16)
vec4 kv_decode4(uvec2 w) { return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); }
#else
#error define the cache type: KV_F16
#endif
#define K_LOAD4(i) kv_decode4(K_WORDS(i))
#define V_LOAD4(i) kv_decode4(V_WORDS(i))

float row_sum(float v) {
#ifdef USE_SUBGROUP
    for (uint s = L / 2u; s > 0u; s >>= 1) v += subgroupShuffleXor(v, s);
#endif
    return v;
}

void main() {
    uint lane = gl_LocalInvocationID.x % L;
    uint rows = p.m * p.group;
    uint row0 = (p.tile_base + gl_WorkGroupID.x) * R;
    uint row = row0 + gl_LocalInvocationID.x / L;
    bool live = row < rows;
    uint rr = min(row, rows - 1u);       // padding rows shadow the last row
    uint tok = rr / p.group;
    uint h = gl_WorkGroupID.y * p.group + rr % p.group;
    uint qpos = p.pos0 + tok;

    // The workgroup's key range (uniform): up to its last token, from its first
    // token's window start; split z takes one slice of it.
    uint tok_first = row0 / p.group, tok_last = (min(row0 + R, rows) - 1u) / p.group;
    uint k_end = p.pos0 + tok_last + 1u;
    uint first_pos = p.pos0 + tok_first;
    uint k_begin = (p.window != 0u && first_pos >= p.window) ? first_pos + 1u - p.window : 0u;
    uint chunk = (k_end - k_begin + p.n_split - 1u) / p.n_split;
    uint ks = min(k_begin + gl_WorkGroupID.z * chunk, k_end);
    uint ke = min(ks + chunk, k_end);

    vec4 q[D4], o[D4];
    uint qb = tok * p.q_stride4 + p.q_off4 + h * HD4 + lane;
    for (uint v = 0u; v < D4; v++) {
        q[v] = x4[qb + v * L] * p.scale;
        o[v] = vec4(0.0);
    }
    // -FLT_MAX/2, not -inf: the first rescale exp(M - s) must be 0, not NaN.
    float M = -1.7014117e38, sum = 0.0;
    uint kvb = p.kv_word0 + gl_WorkGroupID.y * HD4 + lane;
    for (uint k = ks; k < ke; k++) {
        uint kb = kvb + (k - p.kv_row0) * p.kv_width4;
        float s = 0.0;
        for (uint v = 0u; v < D4; v++) s += dot(q[v], K_LOAD4(kb + v * L));
        s = row_sum(s);
        if (k > qpos || (p.window != 0u && qpos - k >= p.window)) continue;
        if (s > M) {   // rescale only when the max grows
            float c = exp(M - s);
            sum *= c;
            for (uint v = 0u; v < D4; v++) o[v] *= c;
            M = s;
        }
        float e = exp(s - M);
        sum += e;
        for (uint v = 0u; v < D4; v++) o[v] += e * V_LOAD4(kb + v * L);
    }
    if (!live) return;
    if (p.n_split == 1u) {
        uint ob = (tok * p.n_head + h) * HD4 + lane;
        for (uint v = 0u; v < D4; v++) dst[ob + v * L] = o[v] / sum;
    } else {
        uint eb = ((gl_WorkGroupID.z * p.m + tok) * p.n_head + h) * (HD4 + 1u);
        for (uint v = 0u; v < D4; v++) dst[eb + lane + v * L] = o[v];
        if (lane == 0u) dst[eb + HD4] = vec4(M, sum, 0.0, 0.0);
    }
}
