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
#extension GL_EXT_control_flow_attributes : require
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
shared float xs[BK * BM];
shared float ws[BK * WS];

void main() {
    uint n0 = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * BN;
    if (n0 >= p.N) return;   // uniform per workgroup
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

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        if (vec) {
            for (uint q = l; q < BN * (BK / W_VEC); q += WG) {
                uint nl = q / (BK / W_VEC), kc = (q % (BK / W_VEC)) * W_VEC, k = k0 + kc;
                vec4 lo = vec4(0.0), hi = vec4(0.0);
                if (k < p.K) w_load8(min(n0 + nl, p.N - 1u) * p.K + k, lo, hi);
                [[unroll]] for (uint t = 0; t < 4u; t++) {
                    ws[(kc + t) * WS + nl] = lo[t];
                    ws[(kc + 4u + t) * WS + nl] = hi[t];
                }
            }
            for (uint q = l; q < BM * (BK / 4u); q += WG) {
                uint ml = q / (BK / 4u), kc = (q % (BK / 4u)) * 4u, k = k0 + kc;
                vec4 v = vec4(0.0);
                if (k < p.K) v = x4[(min(m0 + ml, p.M - 1u) * p.K + k) >> 2];
                [[unroll]] for (uint t = 0; t < 4u; t++) xs[(kc + t) * BM + ml] = v[t];
            }
        }
#ifdef W_SCALAR
        else {
            for (uint q = l; q < BN * BK; q += WG) {
                uint nl = q / BK, kc = q % BK, k = k0 + kc;
                ws[kc * WS + nl] = k < p.K ? w_load1(min(n0 + nl, p.N - 1u) * p.K + k) : 0.0;
            }
            for (uint q = l; q < BM * BK; q += WG) {
                uint ml = q / BK, kc = q % BK, k = k0 + kc;
                xs[kc * BM + ml] = k < p.K ? x1[min(m0 + ml, p.M - 1u) * p.K + k] : 0.0;
            }
        }
#endif
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = xs[kk * BM + ty + i * TY];
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = ws[kk * WS + tx + j * TX];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
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
