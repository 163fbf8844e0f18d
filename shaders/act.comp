#version 450
// Activations, one variant per -D:
//   SILU:   out[i] = x[i] * sigmoid(x[i])
//   GELU:   out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as
//           x * sigmoid(2u): same function, no inf/inf for large |x|
//   SWIGLU: out[r][i] = silu(gu[r][i]) * gu[r][n_ff + i], gu = [rows][2 n_ff]
// Buffers (f32): 0 input, 1 out (may alias the input for SILU/GELU).
// Mapping: one invocation per output element; workgroups beyond 65535 fold into y.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };

layout(push_constant) uniform P {
    uint n;      // output elements
    uint n_ff;   // SWIGLU: half the width of a gu row
} p;

float sigmoid(float v) { return 1.0 / (1.0 + exp(-v)); }

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
#if defined(SILU)
    float v = x[i];
    o[i] = v * sigmoid(v);
#elif defined(GELU)
    float v = x[i];
    o[i] = v * sigmoid(1.5957691216057308 * (v + 0.044715 * v * v * v));
#elif defined(SWIGLU)
    uint r = i / p.n_ff, c = i - r * p.n_ff;
    float g = x[2u * r * p.n_ff + c];
    o[i] = g * sigmoid(g) * x[2u * r * p.n_ff + p.n_ff + c];
#else
#error define SILU, GELU or SWIGLU
#endif
}
