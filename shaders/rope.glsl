// Rotary position embedding's angle (for kv_store.comp, which applies it):
//   pair i < n_rot/2 of a head is (i, i + n_rot/2) with NEOX pairing, else (2i, 2i+1)
//   theta = pos * base^(-2i/n_rot) / factor[i],  (c, s) = attn_factor * (cos, sin)(theta)
//   (x0, x1) <- (x0 c - x1 s, x0 s + x1 c); dims >= n_rot are not touched.

// theta modulo 2 pi, so cos/sin get an argument in [-pi, pi] where every Vulkan
// implementation is accurate (positions reach 131071 rad). Cody-Waite: 2 pi split
// into 8-bit pieces, so k * piece is exact for k < 2^16 (theta < 4e5).
float rope_reduce_2pi(float theta) {
    precise float k = round(theta * 0.15915494309189535);
    precise float r = theta - k * 6.28125;
    r = r - k * 0.00193023681640625;
    r = r - k * 5.070363386039389e-06;
    return r;
}

// (c, s) of pair i at pos; freq_exp = -2 log2(base) / n_rot (from the host in double).
vec2 rope_cs(uint pos, uint i, float freq_exp, float factor, float attn_factor) {
    float theta = float(pos) * exp2(float(i) * freq_exp) / factor;
    float r = rope_reduce_2pi(theta);
    return vec2(cos(r), sin(r)) * attn_factor;
}
