#version 450
// RMSNorm (default) or LayerNorm (-DLAYERNORM) of each row of x:
//   rms:   out = x / sqrt(mean(x^2) + eps) * w
//   layer: out = (x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b
// Buffers (f32): 0 x [rows][n], 1 w [n], 2 b [n], 3 out [rows][n] (may alias x).
// w and b are optional (push flags); an absent one is bound to x and never read.
// Mapping: one workgroup per row (rows beyond 65535 fold into y), WG invocations
// stride over the row; sums accumulate in fp32 and reduce through reduce.glsl.
// -DQ8 also writes the result's int8 form (q8_store.glsl, binding 4) for the
// integer-dot matvec, each invocation owning blocks of 32; out is then optional
// (flags 4) and bound to the int8 buffer when absent
// (bound to x it would read as a write of x to synchronization validation).
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint SG_MIN = 0;   // the device's smallest subgroup (reduce.glsl)
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { float w[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
#ifdef Q8
#define Q8_BINDING 4
#include "q8_store.glsl"
#endif

layout(push_constant) uniform P {
    uint rows, n;
    float eps;
    uint flags;   // 1: w present, 2: b present, 4: write out (Q8; always without)
} p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return;   // uniform per workgroup
    uint base = row * p.n, l = gl_LocalInvocationID.x;
    float mean = 0.0;
#ifdef LAYERNORM
    float s = 0.0;
    for (uint i = l; i < p.n; i += WG) s += x[base + i];
    mean = wg_sum(s) / float(p.n);
#endif
    float ss = 0.0;
    for (uint i = l; i < p.n; i += WG) {
        float d = x[base + i] - mean;
        ss += d * d;
    }
    float scale = inversesqrt(wg_sum(ss) / float(p.n) + p.eps);
    bool hw = (p.flags & 1u) != 0u, hb = (p.flags & 2u) != 0u;
#ifdef Q8
    bool ho = (p.flags & 4u) != 0u;
    for (uint blk = l; blk < p.n / 32u; blk += WG) {
        float v[32];
        [[unroll]] for (uint j = 0; j < 32u; j++) {
            uint i = 32u * blk + j;
            v[j] = (x[base + i] - mean) * scale;
            if (hw) v[j] *= w[i];
            if (hb) v[j] += b[i];
            if (ho) o[base + i] = v[j];
        }
        q8_store(p.rows, p.n, row, blk, v);
    }
#else
    for (uint i = l; i < p.n; i += WG) {
        float v = (x[base + i] - mean) * scale;
        if (hw) v *= w[i];
        if (hb) v += b[i];
        o[base + i] = v;
    }
#endif
}
