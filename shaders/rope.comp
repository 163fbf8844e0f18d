#version 450
// Rotary position embedding, in place on the q and k heads of token rows of x:
//   pair i < n_rot/2 of a head is (i, i + n_rot/2) with NEOX pairing, else (2i, 2i+1)
//   theta = pos * base^(-2i/n_rot) / factor[i],  (c, s) = attn_factor * (cos, sin)(theta)
//   (x0, x1) <- (x0 c - x1 s, x0 s + x1 c); dims >= n_rot are not touched.
// Buffers: 0 x (f32 [m][row_stride]), 1 factors (f32 [n_rot/2]; bound to x and never
// read when absent). One invocation per rotated pair: x over (head, pair), y over
// tokens (the host splits token ranges beyond the y limit into several dispatches).
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer F { float ff[]; };

layout(push_constant) uniform P {
    uint row_stride;
    uint q_off, n_q;
    uint k_off, n_k;
    uint head_dim, n_rot;
    uint neox, has_ff;
    uint pos0, row_base;     // this dispatch's first token row
    float freq_exp;          // -2 log2(base) / n_rot, from the host in double
    float attn_factor;
} p;

// theta modulo 2 pi, so cos/sin get an argument in [-pi, pi] where every Vulkan
// implementation is accurate (positions reach 131071 rad). Cody-Waite: 2 pi split
// into 8-bit pieces, so k * piece is exact for k < 2^16 (theta < 4e5).
float reduce_2pi(float theta) {
    precise float k = round(theta * 0.15915494309189535);
    precise float r = theta - k * 6.28125;
    r = r - k * 0.00193023681640625;
    r = r - k * 5.070363386039389e-06;
    return r;
}

void main() {
    uint half_rot = p.n_rot / 2u;
    uint gi = gl_GlobalInvocationID.x;
    if (gi >= (p.n_q + p.n_k) * half_rot) return;
    uint head = gi / half_rot, i = gi % half_rot;
    uint tok = p.row_base + gl_WorkGroupID.y;
    uint base = tok * p.row_stride +
                (head < p.n_q ? p.q_off + head * p.head_dim : p.k_off + (head - p.n_q) * p.head_dim);
    uint i0 = p.neox != 0u ? i : 2u * i;
    uint i1 = p.neox != 0u ? i + half_rot : 2u * i + 1u;

    float theta = float(p.pos0 + tok) * exp2(float(i) * p.freq_exp);
    if (p.has_ff != 0u) theta /= ff[i];
    float r = reduce_2pi(theta);
    float c = cos(r) * p.attn_factor, s = sin(r) * p.attn_factor;
    float x0 = x[base + i0], x1 = x[base + i1];
    x[base + i0] = x0 * c - x1 * s;
    x[base + i1] = x0 * s + x1 * c;
}
