// The int8 form of f32 activation rows that matvec.comp -DINT_DOT reads: for `rows`
// rows of n elements (n % 32 == 0) in blocks of 32, one buffer holding
//   bytes [0, rows*n):       q, row-major, element i of row r at byte r*n + i
//   vec4 [rows*n/16 + r*n/32 + blk]: (d, d*sum(q[0..16)), d*sum(q[16..32)), 0)
// with x ~= d*q, d = max|x|/127 of the block, q = roundEven(x / d) (ggml's Q8_1
// with the sum split per half, as the weights' offsets are per 16 elements).
// The includer defines Q8_BINDING and calls q8_store once per block.
layout(std430, binding = Q8_BINDING) writeonly buffer Q8Words { uint q8_words[]; };
layout(std430, binding = Q8_BINDING) writeonly buffer Q8Meta { vec4 q8_meta[]; };

void q8_store(uint rows, uint n, uint row, uint blk, float v[32]) {
    float amax = 0.0;
    [[unroll]] for (uint j = 0; j < 32u; j++) amax = max(amax, abs(v[j]));
    float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
    int sums[2] = int[2](0, 0);
    uint w0 = (row * n + 32u * blk) >> 2;
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        ivec4 q = ivec4(roundEven(vec4(v[4u * w], v[4u * w + 1u], v[4u * w + 2u], v[4u * w + 3u]) * id));
        sums[w >> 2] += q.x + q.y + q.z + q.w;
        uvec4 b = uvec4(q) & 0xffu;
        q8_words[w0 + w] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
    }
    q8_meta[rows * n / 16u + row * (n / 32u) + blk] = vec4(d, d * float(sums[0]), d * float(sums[1]), 0.0);
}
