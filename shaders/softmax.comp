#version 450
// Softmax of each row: out = exp(x - max) / sum(exp(x - max)), fp32 throughout.
// Buffers (f32): 0 x [rows][n], 1 out [rows][n] (may alias x).
// Mapping: one workgroup per row (rows beyond 65535 fold into y); pass 1 max,
// pass 2 writes exp(x - max) and sums it, pass 3 scales by 1/sum. Each invocation
// rereads only elements it wrote itself, so passes 2-3 need no barrier. A row that is
// all -inf (fully masked) has no distribution: it becomes zeros, not NaN.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint SG_MIN = 0;   // the device's smallest subgroup (reduce.glsl)
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer O { float o[]; };

layout(push_constant) uniform P { uint rows, n; } p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return;
    uint base = row * p.n, l = gl_LocalInvocationID.x;
    float m = -3.402823466e38;
    for (uint i = l; i < p.n; i += WG) m = max(m, x[base + i]);
    m = wg_max(m);
    float s = 0.0;
    for (uint i = l; i < p.n; i += WG) {
        float e = exp(x[base + i] - m);
        o[base + i] = e;
        s += e;
    }
    float sum = wg_sum(s);
    float inv = sum > 0.0 ? 1.0 / sum : 0.0;
    for (uint i = l; i < p.n; i += WG) o[base + i] *= inv;
}
