#version 450
// Tiled matrix-matrix product for prefill (same contract as matvec.comp):
//   y[m][y_off + n] (+)= sum_k x[m][k] * W[n][k] (+ bias[y_off + n]), m < M, n < N
// Buffers: 0 W [N][K] in its stored type (dequant.glsl; texel or storage buffer),
// 1 x [M][K] f32, 2 bias f32 (optional, flags), 3 y f32 with row stride y_stride.
// Mapping: a workgroup computes a BM x BN tile of y, stepping through K by BK:
// it stages x[BM][BK] and dequantized W[BN][BK] in shared memory (k-major, W padded
// by one column against bank conflicts), then each of the WG = (BM/TM)*(BN/TN)
// invocations accumulates a TM x TN sub-tile (rows ty + i*BM/TM, columns
// tx + j*BN/TN) in registers. Out-of-range k is staged as zero; out-of-range rows and
// columns load clamped indices and are not written.
// Grid: x = ceil(N / BN) (beyond 65535 folded into z), y = ceil(M / BM).
// -DF16 (devices with shaderFloat16): the tiles hold fp16 (half the shared memory
// and its loads) and the products are summed in fp16 over runs of RUN = 8 k, each
// run's sum then added into the f32 accumulators. Error per output, to first order
// in eps16 = 2^-10 (one fp16 ulp: covers RTZ as well as RTE devices): x and W
// rounded to fp16 (2 eps16), the run's 8 products and sums (8 eps16), so
// 10 eps16 * sum_k |x w| on top of the f32 path's own rounding; values below fp16's
// normal range (2^-14) may lose up to 2^-14 each. x, W, products and run sums beyond
// 65504 overflow (normed activations times weights stay far below).
#extension GL_EXT_control_flow_attributes : require
#ifdef F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define TILE float16_t
const uint RUN = 8u;   // products summed in fp16 before widening (BK % 8 == 0)
#else
#define TILE float
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint BM = 32;
layout(constant_id = 2) const uint BN = 32;
layout(constant_id = 3) const uint BK = 16;   // a multiple of W_VEC
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;

#define W_BINDING 0
#include "dequant.glsl"

layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) buffer Y { float y[]; };

layout(push_constant) uniform P {
    uint K, N, M, y_stride, y_off;
    uint flags;   // 1: add bias, 2: accumulate into y
} p;

const uint WS = BN + 1u;   // padded row of ws
shared TILE xs[BK * BM];
shared TILE ws[BK * WS];

void main() {
    uint n0 = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * BN;
    if (n0 >= p.N) return;   // uniform per workgroup
    W_LAYOUT_INIT(p.N, p.K);
    uint m0 = gl_WorkGroupID.y * BM, l = gl_LocalInvocationID.x;
    const uint TX = BN / TN, TY = BM / TM;
    uint tx = l % TX, ty = l / TX;
#ifdef W_SCALAR
    bool vec = p.K % W_VEC == 0u;
#else
    const bool vec = true;   // block types: K is a multiple of their block
#endif

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
#ifdef F16
    float16_t run[TM][TN];   // the current run's fp16 sums
#define SUMS run
#else
#define SUMS acc
#endif

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        if (vec) {
            for (uint q = l; q < BN * (BK / W_VEC); q += WG) {
                uint nl = q / (BK / W_VEC), kc = (q % (BK / W_VEC)) * W_VEC, k = k0 + kc;
                vec4 lo = vec4(0.0), hi = vec4(0.0);
                if (k < p.K) w_load8(min(n0 + nl, p.N - 1u) * p.K + k, lo, hi);
                [[unroll]] for (uint t = 0; t < 4u; t++) {
                    ws[(kc + t) * WS + nl] = TILE(lo[t]);
                    ws[(kc + 4u + t) * WS + nl] = TILE(hi[t]);
                }
            }
            for (uint q = l; q < BM * (BK / 4u); q += WG) {
                uint ml = q / (BK / 4u), kc = (q % (BK / 4u)) * 4u, k = k0 + kc;
                vec4 v = vec4(0.0);
                if (k < p.K) v = x4[(min(m0 + ml, p.M - 1u) * p.K + k) >> 2];
                [[unroll]] for (uint t = 0; t < 4u; t++) xs[(kc + t) * BM + ml] = TILE(v[t]);
            }
        }
#ifdef W_SCALAR
        else {
            for (uint q = l; q < BN * BK; q += WG) {
                uint nl = q / BK, kc = q % BK, k = k0 + kc;
                ws[kc * WS + nl] = TILE(k < p.K ? w_load1(min(n0 + nl, p.N - 1u) * p.K + k) : 0.0);
            }
            for (uint q = l; q < BM * BK; q += WG) {
                uint ml = q / BK, kc = q % BK, k = k0 + kc;
                xs[kc * BM + ml] = TILE(k < p.K ? x1[min(m0 + ml, p.M - 1u) * p.K + k] : 0.0);
            }
        }
#endif
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
#ifdef F16
            if (kk % RUN == 0u)
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++) run[i][j] = float16_t(0.0);
#endif
            TILE a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = xs[kk * BM + ty + i * TY];
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = ws[kk * WS + tx + j * TX];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) SUMS[i][j] += a[i] * b[j];
#ifdef F16
            if (kk % RUN == RUN - 1u)
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += float(run[i][j]);
#endif
        }
        barrier();
    }

    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint m = m0 + ty + i * TY;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint n = n0 + tx + j * TX;
            if (m < p.M && n < p.N) {
                float s = acc[i][j];
                if ((p.flags & 1u) != 0u) s += bias[p.y_off + n];
                uint yi = m * p.y_stride + p.y_off + n;
                if ((p.flags & 2u) != 0u) s += y[yi];
                y[yi] = s;
            }
        }
    }
}
