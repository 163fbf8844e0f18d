#version 450
// Split-K combine for attn.comp: each of n_split slices left, per (token, head), an
// un-normalised O[head_dim] and its (M, L). With M* = max M_s:
//   out = sum_s O_s exp(M_s - M*) / sum_s L_s exp(M_s - M*)
// An empty slice has M_s = -FLT_MAX/2 and L_s = 0 and drops out.
// Buffers: 0 scratch (vec4 entries of hd4 + 1, index (s * m + t) * n_head + h),
// 1 out (f32 [m][n_head * hd4 * 4]). One workgroup per (token, head) row (rows
// beyond the x limit fold into y); its invocations stride over the vec4s.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;

layout(std430, binding = 0) readonly buffer S { vec4 sc[]; };
layout(std430, binding = 1) writeonly buffer O { vec4 o[]; };

layout(push_constant) uniform P {
    uint rows;       // m * n_head
    uint hd4, n_split;
} p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return;   // uniform per workgroup
    uint es = p.hd4 + 1u;
    float mx = -3.4028235e38;
    for (uint s = 0u; s < p.n_split; s++) mx = max(mx, sc[(s * p.rows + row) * es + p.hd4].x);
    float sum = 0.0;
    for (uint s = 0u; s < p.n_split; s++) {
        vec4 ml = sc[(s * p.rows + row) * es + p.hd4];
        sum += ml.y * exp(ml.x - mx);
    }
    for (uint c = gl_LocalInvocationID.x; c < p.hd4; c += WG) {
        vec4 acc = vec4(0.0);
        for (uint s = 0u; s < p.n_split; s++) {
            uint e = (s * p.rows + row) * es;
            acc += sc[e + c] * exp(sc[e + p.hd4].x - mx);
        }
        o[row * p.hd4 + c] = acc / sum;
    }
}
