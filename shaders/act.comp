#version 450
// Activations, one variant per -D:
//   SILU:   out[i] = x[i] * sigmoid(x[i])
//   GELU:   out[i] = gelu(x[i])
//   SWIGLU: out[r][i] = silu(gu[r][i]) * gu[r][n_ff + i], gu = [rows][2 n_ff]
//   GEGELU: Phi-3-small (docs/spec/phi3-small.md section 14) over the same [a | c]
//           halves: a' = min(a, limit), c' = clamp(c, -limit, limit) (no clamp when
//           limit is 0), out = a' sigmoid(1.702 a') (c' + 1)
//   COPY:   out[i] = x[i] (only with Q8)
// Buffers (f32): 0 input, 1 out (may alias the input for SILU/GELU).
// Mapping: one invocation per output element; workgroups beyond 65535 fold into y.
// -DQ8 also writes the result's int8 form (q8_store.glsl, binding 2) for the
// integer-dot matvec: one invocation per block of 32 outputs, rows of n_ff (every
// variant) with n_ff % 32 == 0; out is optional (flags 1) and bound to the int8 buffer when absent.
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
#ifdef Q8
#define Q8_BINDING 2
#include "q8_store.glsl"
#endif
#include "act.glsl"

layout(push_constant) uniform P {
    uint n;      // output elements
    uint n_ff;   // SWIGLU: half the width of a gu row; Q8: the width of an output row
    uint flags;  // Q8: 1 write out
    float limit; // GEGELU: the clamp; 0: none
} p;

float act(uint i) {
#if defined(SILU)
    return act_silu(x[i]);
#elif defined(GELU)
    return act_gelu(x[i]);
#elif defined(SWIGLU)
    uint r = i / p.n_ff, c = i - r * p.n_ff;
    return act_swiglu(x[2u * r * p.n_ff + c], x[2u * r * p.n_ff + p.n_ff + c]);
#elif defined(GEGELU)
    uint r = i / p.n_ff, c = i - r * p.n_ff;
    return act_gegelu(x[2u * r * p.n_ff + c], x[2u * r * p.n_ff + p.n_ff + c], p.limit);
#elif defined(COPY) && defined(Q8)
    return x[i];
#else
#error define SILU, GELU, SWIGLU, GEGELU or (with Q8) COPY
#endif
}

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG + gl_LocalInvocationID.x;
#ifdef Q8
    if (i >= p.n / 32u) return;
    uint row = 32u * i / p.n_ff;
    bool ho = (p.flags & 1u) != 0u;
    float v[32];
    [[unroll]] for (uint j = 0; j < 32u; j++) {
        v[j] = act(32u * i + j);
        if (ho) o[32u * i + j] = v[j];
    }
    q8_store(p.n / p.n_ff, p.n_ff, row, i - row * (p.n_ff / 32u), v);
#else
    if (i >= p.n) return;
    o[i] = act(i);
#endif
}
