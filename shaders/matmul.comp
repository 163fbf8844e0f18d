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
// -DCOOPMAT (with -DF16; -DCM_M, -DCM_N, -DCM_K the device's shape): the same fp16
// tiles are multiplied by the subgroups' matrix units (VK_NV_cooperative_matrix) into
// f32 accumulators:
// subgroup s (of BM/(TM CM_M) x BN/(TN CM_N), the op layer sizes WG so) owns TM x TN
// CM_M x CM_N blocks of the tile, rows (s / (BN/(TN CM_N))) TM CM_M.., columns
// (s % (BN/(TN CM_N))) TN CM_N..; BK is a multiple of CM_K. The accumulators go
// through shared memory (cs) to the epilogue, which adds bias and y as above.
// Error: x and W rounded to fp16 (2 eps16 of sum_k |x w|), products exact in the
// f32 accumulation (the units widen before adding) within the f32 path's rounding:
// inside the -DF16 bound. Debian 12's glslang (11.13) has no GL_KHR_cooperative_matrix,
// and its GL_EXT_spirv_intrinsics takes no type among a spirv_type's operands (the
// component type of OpTypeCooperativeMatrixKHR is one), nor does its spirv-val know
// the KHR opcodes: the NV form is what this toolchain can build and check.
#extension GL_EXT_control_flow_attributes : require
#ifdef F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define TILE float16_t
const uint RUN = 8u;   // products summed in fp16 before widening (BK % 8 == 0)
#else
#define TILE float
#endif
#ifdef COOPMAT
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#define CM_A fcoopmatNV<16, gl_ScopeSubgroup, CM_M, CM_K>
#define CM_B fcoopmatNV<16, gl_ScopeSubgroup, CM_K, CM_N>
#define CM_C fcoopmatNV<32, gl_ScopeSubgroup, CM_M, CM_N>
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

#ifdef COOPMAT
const uint WS = BN + 8u;   // padded by 16 bytes: matrix loads want 16-byte aligned rows
shared float cs[BM * BN];  // the accumulators, row-major, for the epilogue
#else
const uint WS = BN + 1u;   // padded row of ws
#endif
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

#ifdef COOPMAT
    const uint SGX = BN / (TN * CM_N);
    uint sg = gl_SubgroupID, r0 = (sg / SGX) * TM * CM_M, c0 = (sg % SGX) * TN * CM_N;
    bool owner = sg < SGX * (BM / (TM * CM_M));   // uniform per subgroup
    CM_C acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = CM_C(0.0);
#else
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
#endif
#if defined(F16) && !defined(COOPMAT)
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
#ifdef COOPMAT
        if (owner)
            for (uint kk = 0; kk < BK; kk += CM_K) {
                CM_A a[TM];
                CM_B b[TN];
                // A (x, M x K) is column-major in xs, B (W^T, K x N) row-major in ws.
                [[unroll]] for (uint i = 0; i < TM; i++) coopMatLoadNV(a[i], xs, kk * BM + r0 + i * CM_M, BM, true);
                [[unroll]] for (uint j = 0; j < TN; j++) coopMatLoadNV(b[j], ws, kk * WS + c0 + j * CM_N, WS, false);
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
            }
#else
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
#endif
        barrier();
    }

#ifdef COOPMAT
    if (owner)
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                coopMatStoreNV(acc[i][j], cs, (r0 + i * CM_M) * BN + c0 + j * CM_N, BN, false);
    barrier();
    for (uint q = l; q < BM * BN; q += WG) {
        uint m = m0 + q / BN, n = n0 + q % BN;
        if (m < p.M && n < p.N) {
            float s = cs[q];
            if ((p.flags & 1u) != 0u) s += bias[p.y_off + n];
            uint yi = m * p.y_stride + p.y_off + n;
            if ((p.flags & 2u) != 0u) s += y[yi];
            y[yi] = s;
        }
    }
#else
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
#endif
}
