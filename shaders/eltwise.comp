// Elementwise binary op on f32 vectors: out[i] = a[i] OP b[i] for i < n, where OP is
// + with -DOP_ADD and * with -DOP_MUL (variants "add" and "mul").
// Layout: binding 0 = a, 1 = b, 2 = out, each a storage buffer of n floats (out may
// alias a or b: every invocation reads its own element before writing it).
// Push constants: n, then the number of invocations per grid row (row_len), so a
// vector longer than maxComputeWorkGroupCount[0] workgroups can spread over y.
// Mapping: one invocation per element; workgroup size x is specialization constant
// 0 (default 64); element index = gl_GlobalInvocationID.y * row_len + .x.
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint row_len;
} pc;

void main() {
    uint i = gl_GlobalInvocationID.y * pc.row_len + gl_GlobalInvocationID.x;
    if (i >= pc.n) return;
#if defined(OP_ADD)
    o[i] = a[i] + b[i];
#elif defined(OP_MUL)
    o[i] = a[i] * b[i];
#else
#error "define OP_ADD or OP_MUL"
#endif
}
