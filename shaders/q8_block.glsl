// One block of 32 activations in the int8 form matvec.comp -DINT_DOT reads
// (q8_store.glsl's layout): q = roundEven(v / d) with d = max|v| / 127, packed four
// to a word (lo: q[0..16), hi: q[16..32)), and meta = (d, d * sum(q[0..16)),
// d * sum(q[16..32)), 0). Shared by the kernels that store it and the matvec that
// makes it in its prologue, so both encode a block the same way.
void q8_block(float v[32], out uvec4 lo, out uvec4 hi, out vec4 meta) {
    float amax = 0.0;
    [[unroll]] for (uint j = 0; j < 32u; j++) amax = max(amax, abs(v[j]));
    float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
    int sums[2] = int[2](0, 0);
    uint words[8];
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        ivec4 q = ivec4(roundEven(vec4(v[4u * w], v[4u * w + 1u], v[4u * w + 2u], v[4u * w + 3u]) * id));
        sums[w >> 2] += q.x + q.y + q.z + q.w;
        uvec4 b = uvec4(q) & 0xffu;
        words[w] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
    }
    lo = uvec4(words[0], words[1], words[2], words[3]);
    hi = uvec4(words[4], words[5], words[6], words[7]);
    meta = vec4(d, d * float(sums[0]), d * float(sums[1]), 0.0);
}
