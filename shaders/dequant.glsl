// Weight loads for matvec.comp and matmul.comp: one weight type (-DW_F32, -DW_F16,
// -DW_BF16; quantized types add a branch here) through one fetch path (-DW_TEXEL:
// uniform texel buffer of RGBA32UI, faster on lavapipe; else a storage buffer).
// The includer defines W_BINDING. Elements are addressed by their index e within
// the bound range (row * K + k; rows are contiguous in stored order):
//   W_VEC                     elements per w_load8 (8): K % W_VEC == 0 enables it
//   void w_load8(e, lo, hi)   e .. e+7 as two vec4, e a multiple of W_VEC
//   float w_load1(e)          one element, any e (the path for K % W_VEC != 0)
// The host rounds every binding up to 16 bytes, so whole-word reads stay in range.
#define W_VEC 8u

#ifdef W_TEXEL
layout(binding = W_BINDING) uniform usamplerBuffer w_tex;
uvec4 w_word4(uint i) { return texelFetch(w_tex, int(i)); }
uint w_word(uint i) { return texelFetch(w_tex, int(i >> 2))[i & 3u]; }
#else
layout(std430, binding = W_BINDING) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = W_BINDING) readonly buffer W1 { uint w1[]; };
uvec4 w_word4(uint i) { return w4[i]; }
uint w_word(uint i) { return w1[i]; }
#endif

#if defined(W_F32)
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    lo = uintBitsToFloat(w_word4(e >> 2));
    hi = uintBitsToFloat(w_word4((e >> 2) + 1u));
}
float w_load1(uint e) { return uintBitsToFloat(w_word(e)); }
#elif defined(W_F16)
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    uvec4 u = w_word4(e >> 3);
    lo = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    hi = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
float w_load1(uint e) { return unpackHalf2x16(w_word(e >> 1))[e & 1u]; }
#elif defined(W_BF16)
vec2 bf16x2(uint u) { return uintBitsToFloat(uvec2(u << 16, u & 0xffff0000u)); }
void w_load8(uint e, out vec4 lo, out vec4 hi) {
    uvec4 u = w_word4(e >> 3);
    lo = vec4(bf16x2(u.x), bf16x2(u.y));
    hi = vec4(bf16x2(u.z), bf16x2(u.w));
}
float w_load1(uint e) { return bf16x2(w_word(e >> 1))[e & 1u]; }
#else
#error define the weight type: W_F32, W_F16 or W_BF16
#endif
