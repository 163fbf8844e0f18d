// The int8 form of f32 activation rows that matvec.comp -DINT_DOT reads: for `rows`
// rows of n elements (n % 32 == 0) in blocks of 32, one buffer holding
//   bytes [0, rows*n):       q, row-major, element i of row r at byte r*n + i
//   vec4 [rows*n/16 + r*n/32 + blk]: (d, d*sum(q[0..16)), d*sum(q[16..32)), 0)
// with x ~= d*q, d = max|x|/127 of the block, q = roundEven(x / d) (ggml's Q8_1
// with the sum split per half, as the weights' offsets are per 16 elements;
// q8_block.glsl encodes a block).
// The includer defines Q8_BINDING and calls q8_store once per block.
#include "q8_block.glsl"

layout(std430, binding = Q8_BINDING) writeonly buffer Q8Words { uvec4 q8_words4[]; };
layout(std430, binding = Q8_BINDING) writeonly buffer Q8Meta { vec4 q8_meta[]; };

void q8_store(uint rows, uint n, uint row, uint blk, float v[32]) {
    uvec4 lo, hi;
    vec4 meta;
    q8_block(v, lo, hi, meta);
    uint w4 = (row * n + 32u * blk) >> 4;
    q8_words4[w4] = lo;
    q8_words4[w4 + 1u] = hi;
    q8_meta[rows * n / 16u + row * (n / 32u) + blk] = meta;
}
