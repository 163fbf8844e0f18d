#version 450
// Matrix-vector product for decode and small batches:
//   y[c][y_off + j] (+)= sum_k x[c][k] * W[j][k] (+ bias[y_off + j]), c < M, j < N
// Buffers: 0 W [N][K] in its stored type (dequant.glsl; texel or storage buffer; GGUF's
// layout, or with -DW_REPACK quants and scales in streams of their own),
// 1 x [M][K] f32, 2 bias f32 (optional, flags), 3 y f32 with row stride y_stride.
// Mapping: a workgroup (WG invocations, ideally one subgroup) owns NR weight rows
// and NC columns of x; invocation l takes the 8-element K chunks l, l+WG, ... so
// every W load is a 16-byte word and each x chunk is reused for NR rows. Partial
// sums stay in registers (acc[NC][NR]) and finish with one reduction each.
// Block types (W_BLOCKED) step in units of 32 elements instead (invocation l takes
// units l, l+WG, ...): per half unit of 16 the sum is a*sum(q*x) + b*sum(x), with
// the unit's scale a and offset b fetched once per row and sum(x) once for all NR
// rows, so the per-weight work is only nibble extraction and a dot product
// (docs/kernels.md B: lavapipe is instruction-bound).
// -DINT_DOT (block types): x comes as int8 blocks (q8_store.glsl) and each half
// unit's sum(q*x) is four 4x8-bit integer dot products (OpSDot), scaled once by
// the x block's d; sum(x) is the block's stored half sum. A quarter of the x loads
// and no conversions to float per weight.
// -DPRO_ACT with -DSWIGLU, -DGELU or -DCOPY (with INT_DOT): x comes as the
// activation's input (f32, rows of 2K: gate then up, or of K; COPY: x itself, as the
// out projection reads attention's output) and each invocation makes the int8
// blocks it reads itself (act.glsl, q8_block.glsl: the values and encoding
// act.comp -DQ8 would have stored), so the activation needs no dispatch of its own;
// every workgroup recomputes the blocks, cheap at decode's few columns.
// -DPRO_NORM (with INT_DOT, -DLAYERNORM for LayerNorm): the same for the norm
// before a projection: x is the norm's input, 4 its weight, 5 its bias (flags 4, 8;
// an absent one bound to x and never read), eps a push constant; the workgroup
// first reduces each column's statistics as norm.comp does, then every invocation
// normalises and encodes the blocks it reads.
// -DLANE_ROWS (CPU devices, several columns): lanes own rows instead of K chunks.
// Lane l of the WG takes rows row0 + l + WG*i (i < NR) whole, so there is no
// reduction, and decodes each of its weights once for all NC columns; x is read
// through a texel view (binding 1), every lane fetching the same texel. On lavapipe a
// storage load is a loop over the lanes with a branch each and cross-lane operations
// loop likewise, while a texel fetch is a branch-free gather: at 8 columns this took
// about half the time of the K-split form (tests/kernels/bench_kernels).
// Grid: x = ceil(N / NR) (LANE_ROWS: N / (WG * NR); beyond 65535 folded into z),
// y = ceil(M / NC).
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint NR = 8;
layout(constant_id = 2) const uint NC = 1;
// The smallest subgroup the device may run (0: unknown): see reduce.glsl (on
// lavapipe the barrier-free path made K = 768 products ~2.5x faster).
layout(constant_id = 3) const uint SG_MIN = 0;
// Units of 32 weights each invocation loads per iteration of the block paths (1, 2
// or 4; the tuner's loads in flight); the plain types' path ignores it.
layout(constant_id = 4) const uint LF = 1;

#define W_BINDING 0
#include "dequant.glsl"
#include "reduce.glsl"

#ifdef INT_DOT
#extension GL_EXT_spirv_intrinsics : require
// OpSDot of two words of 4 signed bytes (SPV_KHR_integer_dot_product; Debian 12's
// glslang has no GL_EXT_integer_dot_product, so the instruction is declared here).
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(int a, int b, spirv_literal int packed_vector_format);
int sdot(uint a, uint b) { return sdot4x8(int(a), int(b), 0); }
#if defined(PRO_ACT) || defined(PRO_NORM)
#include "act.glsl"
#include "q8_block.glsl"
layout(std430, binding = 1) readonly buffer XP { vec4 xp4[]; };
#ifdef PRO_NORM
layout(std430, binding = 4) readonly buffer NW { vec4 nw4[]; };
layout(std430, binding = 5) readonly buffer NB { vec4 nb4[]; };
#endif
#else
// The q8_store.glsl layout, as 16-byte words: q, then (d, half sums).
layout(std430, binding = 1) readonly buffer XQ { uvec4 xq4[]; };
layout(std430, binding = 1) readonly buffer XM { vec4 xm4[]; };
#endif
#elif defined(LANE_ROWS)
layout(binding = 1) uniform samplerBuffer x_tex;   // x as RGBA32F texels
#else
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
#endif
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) buffer Y { float y[]; };

layout(push_constant) uniform P {
    uint K, N, M, y_stride, y_off;
    uint flags;   // 1: add bias, 2: accumulate into y (PRO_NORM: 4 norm weight, 8 norm bias)
#ifdef PRO_NORM
    float eps;
#endif
} p;

// Writes the sum s of weight row `row` and x column `col`: y (+)= s (+ bias).
void store_y(uint row, uint col, float s) {
    if ((p.flags & 1u) != 0u) s += bias[p.y_off + row];
    uint yi = col * p.y_stride + p.y_off + row;
    if ((p.flags & 2u) != 0u) s += y[yi];
    y[yi] = s;
}

#ifdef PRO_NORM
// Block u of the normalised row whose elements start at xc (mean and scale: its
// statistics), in its int8 form: norm.comp's arithmetic, per element.
void x_block_norm(uint xc, uint u, float mean, float scale, out uvec4 lo, out uvec4 hi, out vec4 meta) {
    float v[32];
    bool hw = (p.flags & 4u) != 0u, hb = (p.flags & 8u) != 0u;
    uint x4 = (xc + 32u * u) >> 2;
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        vec4 a = xp4[x4 + j], wv = hw ? nw4[8u * u + j] : vec4(1.0), bv = hb ? nb4[8u * u + j] : vec4(0.0);
        [[unroll]] for (uint e = 0; e < 4u; e++) {
            float t = (a[e] - mean) * scale;
            if (hw) t *= wv[e];
            if (hb) t += bv[e];
            v[4u * j + e] = t;
        }
    }
    q8_block(v, lo, hi, meta);
}
#endif

#ifdef PRO_ACT
// Block u of the activation of the row whose elements start at xc (a multiple of K),
// in its int8 form.
void x_block(uint xc, uint u, out uvec4 lo, out uvec4 hi, out vec4 meta) {
    float v[32];
#if defined(SWIGLU)
    uint g4 = (2u * xc + 32u * u) >> 2, u4 = g4 + (p.K >> 2);
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        vec4 g = xp4[g4 + j], up = xp4[u4 + j];
        [[unroll]] for (uint e = 0; e < 4u; e++) v[4u * j + e] = act_swiglu(g[e], up[e]);
    }
#elif defined(GELU) || defined(COPY)
    uint x4 = (xc + 32u * u) >> 2;
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        vec4 a = xp4[x4 + j];
#ifdef GELU
        [[unroll]] for (uint e = 0; e < 4u; e++) v[4u * j + e] = act_gelu(a[e]);
#else
        [[unroll]] for (uint e = 0; e < 4u; e++) v[4u * j + e] = a[e];
#endif
    }
#else
#error PRO_ACT needs SWIGLU, GELU or COPY
#endif
    q8_block(v, lo, hi, meta);
}
#endif

#ifdef LANE_ROWS
// x's 8 elements from e of every column c < NC, each fetched alike by every lane (a
// texel fetch, which lavapipe gathers without branches, where a storage load is a loop
// over the lanes), times the lane's rows: acc[i][c] += w[i] . x[c][e .. e+7].
void lane_rows_fma(inout float acc[NR][NC], vec4 w[NR][2], uint col0, uint e) {
    [[unroll]] for (uint c = 0; c < NC; c++) {
        int t = int((min(col0 + c, p.M - 1u) * p.K + e) >> 2);
        vec4 xa = texelFetch(x_tex, t), xb = texelFetch(x_tex, t + 1);
        [[unroll]] for (uint i = 0; i < NR; i++) acc[i][c] += dot(w[i][0], xa) + dot(w[i][1], xb);
    }
}

void main() {
    uint row0 = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG * NR;
    if (row0 >= p.N) return;   // uniform per workgroup
    W_LAYOUT_INIT(p.N, p.K);
    uint l = gl_LocalInvocationID.x, col0 = gl_WorkGroupID.y * NC, wrow[NR];
    // Rows past the end are computed on a clamped index (a valid load) and never written.
    [[unroll]] for (uint i = 0; i < NR; i++) wrow[i] = min(row0 + l + WG * i, p.N - 1u) * p.K;
    float acc[NR][NC];
    [[unroll]] for (uint i = 0; i < NR; i++)
        [[unroll]] for (uint c = 0; c < NC; c++) acc[i][c] = 0.0;
#ifdef W_BLOCKED
    // Each lane decodes its rows' units (w = a*q + b) once for all NC columns.
    const uint UB = W_BE / 32u;
    for (uint u = 0; u < p.K / 32u; u++) {
        uint s = u % UB, blk[NR];
        vec4 ab[NR];
        [[unroll]] for (uint i = 0; i < NR; i++) {
            blk[i] = (wrow[i] / 32u + u) / UB;
            ab[i] = w_ab(blk[i], s);
        }
        [[unroll]] for (uint g = 0; g < 4u; g++) {
            vec4 w[NR][2];
            [[unroll]] for (uint i = 0; i < NR; i++) {
                w_q8(blk[i], s, g, w[i][0], w[i][1]);
                vec2 a = g < 2u ? ab[i].xy : ab[i].zw;
                w[i][0] = w[i][0] * a.x + a.y;
                w[i][1] = w[i][1] * a.x + a.y;
            }
            lane_rows_fma(acc, w, col0, 32u * u + 8u * g);
        }
    }
#else
    for (uint k = 0; k < p.K; k += W_VEC) {
        vec4 w[NR][2];
        [[unroll]] for (uint i = 0; i < NR; i++) w_load8(wrow[i] + k, w[i][0], w[i][1]);
        lane_rows_fma(acc, w, col0, k);
    }
#endif
    [[unroll]] for (uint i = 0; i < NR; i++) {
        uint row = row0 + l + WG * i;
        [[unroll]] for (uint c = 0; c < NC; c++) {
            uint col = col0 + c;
            if (row < p.N && col < p.M) store_y(row, col, acc[i][c]);
        }
    }
}
#else
void main() {
    uint row0 = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NR;
    if (row0 >= p.N) return;   // uniform per workgroup
    W_LAYOUT_INIT(p.N, p.K);
    uint col0 = gl_WorkGroupID.y * NC, l = gl_LocalInvocationID.x;
    // Rows and columns past the end are computed on clamped indices (valid loads,
    // no divergence) and never written.
    uint wrow[NR], xcol[NC];
    [[unroll]] for (uint r = 0; r < NR; r++) wrow[r] = min(row0 + r, p.N - 1u) * p.K;
    [[unroll]] for (uint c = 0; c < NC; c++) xcol[c] = min(col0 + c, p.M - 1u) * p.K;
    float acc[NC][NR];
    [[unroll]] for (uint c = 0; c < NC; c++)
        [[unroll]] for (uint r = 0; r < NR; r++) acc[c][r] = 0.0;

#if defined(INT_DOT)
    const uint UB = W_BE / 32u;
    uint ku = p.K / 32u, xq[NC], xm[NC];
    [[unroll]] for (uint c = 0; c < NC; c++) {
        xq[c] = xcol[c] / 16u;
        xm[c] = p.M * p.K / 16u + xcol[c] / 32u;
    }
#ifdef PRO_NORM
    // Each column's statistics, as norm.comp computes them (every invocation takes
    // part in the reductions).
    float mean[NC], scale[NC];
    [[unroll]] for (uint c = 0; c < NC; c++) {
        mean[c] = 0.0;
#ifdef LAYERNORM
        float sm = 0.0;
        for (uint i = l; i < p.K / 4u; i += WG) sm += dot(xp4[xcol[c] / 4u + i], vec4(1.0));
        mean[c] = wg_sum(sm) / float(p.K);
#endif
        float ss = 0.0;
        for (uint i = l; i < p.K / 4u; i += WG) {
            vec4 d = xp4[xcol[c] / 4u + i] - mean[c];
            ss += dot(d, d);
        }
        scale[c] = inversesqrt(wg_sum(ss) / float(p.K) + p.eps);
    }
#endif
    // LF units in flight per invocation: their loads issue before their products.
    for (uint u0 = l; u0 < ku; u0 += WG * LF) {
        [[unroll]] for (uint f = 0; f < LF; f++) {
            uint u = u0 + f * WG;
            if (u >= ku) break;
            uint s = u % UB;
            uvec4 xa[NC], xb[NC];
            vec4 xd[NC];
            [[unroll]] for (uint c = 0; c < NC; c++) {
#if defined(PRO_NORM)
                x_block_norm(xcol[c], u, mean[c], scale[c], xa[c], xb[c], xd[c]);
#elif defined(PRO_ACT)
                x_block(xcol[c], u, xa[c], xb[c], xd[c]);
#else
                xa[c] = xq4[xq[c] + 2u * u];
                xb[c] = xq4[xq[c] + 2u * u + 1u];
                xd[c] = xm4[xm[c] + u];
#endif
            }
            [[unroll]] for (uint r = 0; r < NR; r++) {
                uint blk = (wrow[r] / 32u + u) / UB;
                vec4 ab = w_ab(blk, s);
                uvec2 q0 = w_qp(blk, s, 0u), q1 = w_qp(blk, s, 1u), q2 = w_qp(blk, s, 2u), q3 = w_qp(blk, s, 3u);
                [[unroll]] for (uint c = 0; c < NC; c++) {
                    int lo = sdot(q0.x, xa[c].x) + sdot(q0.y, xa[c].y) + sdot(q1.x, xa[c].z) + sdot(q1.y, xa[c].w);
                    int hi = sdot(q2.x, xb[c].x) + sdot(q2.y, xb[c].y) + sdot(q3.x, xb[c].z) + sdot(q3.y, xb[c].w);
                    acc[c][r] += xd[c].x * (ab.x * float(lo) + ab.z * float(hi)) + ab.y * xd[c].y + ab.w * xd[c].z;
                }
            }
        }
    }
#elif defined(W_BLOCKED)
    // K % W_BE == 0, so every row starts a block and a unit's place in its block
    // is the same for every row.
    const uint UB = W_BE / 32u;
    uint ku = p.K / 32u;
    // LF units in flight per invocation: their loads issue before their products.
    for (uint u0 = l; u0 < ku; u0 += WG * LF) {
        [[unroll]] for (uint f = 0; f < LF; f++) {
            uint u = u0 + f * WG;
            if (u >= ku) break;
            uint s = u % UB, blk[NR];
            vec4 ab[NR];
            [[unroll]] for (uint r = 0; r < NR; r++) {
                blk[r] = (wrow[r] / 32u + u) / UB;
                ab[r] = w_ab(blk[r], s);
            }
            [[unroll]] for (uint h = 0; h < 2u; h++) {
                vec4 xv[NC][4];
                float xs[NC];
                [[unroll]] for (uint c = 0; c < NC; c++) {
                    uint xi = (xcol[c] + u * 32u + h * 16u) >> 2;
                    [[unroll]] for (uint j = 0; j < 4u; j++) xv[c][j] = x4[xi + j];
                    xs[c] = dot(xv[c][0] + xv[c][1] + xv[c][2] + xv[c][3], vec4(1.0));
                }
                [[unroll]] for (uint r = 0; r < NR; r++) {
                    vec4 q0, q1, q2, q3;
                    w_q8(blk[r], s, 2u * h, q0, q1);
                    w_q8(blk[r], s, 2u * h + 1u, q2, q3);
                    vec2 a = h == 0u ? ab[r].xy : ab[r].zw;
                    [[unroll]] for (uint c = 0; c < NC; c++)
                        acc[c][r] += a.x * (dot(q0, xv[c][0]) + dot(q1, xv[c][1]) + dot(q2, xv[c][2]) +
                                            dot(q3, xv[c][3])) + a.y * xs[c];
                }
            }
        }
    }
#else
    if (p.K % W_VEC == 0u) {
        for (uint k = l * W_VEC; k < p.K; k += WG * W_VEC) {
            vec4 xa[NC], xb[NC];
            [[unroll]] for (uint c = 0; c < NC; c++) {
                xa[c] = x4[(xcol[c] + k) >> 2];
                xb[c] = x4[((xcol[c] + k) >> 2) + 1u];
            }
            [[unroll]] for (uint r = 0; r < NR; r++) {
                vec4 lo, hi;
                w_load8(wrow[r] + k, lo, hi);
                [[unroll]] for (uint c = 0; c < NC; c++)
                    acc[c][r] += dot(lo, xa[c]) + dot(hi, xb[c]);
            }
        }
    } else {
        for (uint k = l; k < p.K; k += WG) {
            [[unroll]] for (uint r = 0; r < NR; r++) {
                float wv = w_load1(wrow[r] + k);
                [[unroll]] for (uint c = 0; c < NC; c++) acc[c][r] += wv * x1[xcol[c] + k];
            }
        }
    }
#endif

    // Sum i = c * NR + r lands on invocation i % WG, which writes it: every
    // invocation stores ceil(NC * NR / WG) results instead of each result being a
    // store of its own under a one-lane condition (lavapipe scalarises stores, so
    // that cost a loop over the lanes per result).
    const uint NS = (NC * NR + WG - 1u) / WG;
    float mine[NS];
    [[unroll]] for (uint j = 0; j < NS; j++) mine[j] = 0.0;
    [[unroll]] for (uint c = 0; c < NC; c++) {
        [[unroll]] for (uint r = 0; r < NR; r++) {
            float s = wg_sum(acc[c][r]);
            uint i = c * NR + r;
            if (l == i % WG) mine[i / WG] = s;
        }
    }
    [[unroll]] for (uint j = 0; j < NS; j++) {
        uint i = j * WG + l, row = row0 + i % NR, col = col0 + i / NR;
        if (i < NC * NR && row < p.N && col < p.M) store_y(row, col, mine[j]);
    }
}
#endif
