// The device's read bandwidth (`phivk bench`'s roofline): workgroup g sums the uvec4s
// [g * per, (g + 1) * per) of src, its invocations on neighbouring 16 bytes at each
// step (coalesced on a GPU; on a CPU device each SIMD slice walks the workgroup's
// tile at a fixed stride, which the prefetchers follow), and the grid sweeps the
// buffer once. The sum (wrapping uint32 arithmetic, exact and order-free) is written
// per invocation, so the loads cannot be optimised away and the host can check that
// every word was read: the partials add up to the sum of the buffer's words.
// Buffers: 0 src (n4 uvec4s; with -DREAD_TEXEL a uniform texel buffer of RGBA32UI,
// the fetch path lavapipe's matvec takes, there ~10x faster than storage loads),
// 1 partial (one uint per invocation of the grid).
// Mapping: workgroup size x is specialization constant 0; a 1-D grid of
// ceil(n4 / per) workgroups.
#version 450

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

#ifdef READ_TEXEL
layout(binding = 0) uniform usamplerBuffer src_tex;
#define LOAD(i) texelFetch(src_tex, int(i))
#else
layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
#define LOAD(i) src[i]
#endif
layout(std430, binding = 1) writeonly buffer Partial { uint partial[]; };

layout(push_constant) uniform P {
    uint n4;         // uvec4s in src
    uint per;        // uvec4s per workgroup, a multiple of WG
} p;

void main() {
    uint base = gl_WorkGroupID.x * p.per, end = min(base + p.per, p.n4);
    uvec4 acc = uvec4(0u);
    for (uint i = base + gl_LocalInvocationID.x; i < end; i += WG) acc += LOAD(i);
    partial[gl_GlobalInvocationID.x] = acc.x + acc.y + acc.z + acc.w;
}
