// The activation functions, shared by act.comp and the matvec that applies them in
// its prologue (matvec.comp -DPRO_ACT), so both compute the same values.
//   gelu(x)      = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as
//                  x * sigmoid(2u): same function, no inf/inf for large |x|
//   swiglu(g, u) = silu(g) * u, silu(g) = g * sigmoid(g)
float sigmoid(float v) { return 1.0 / (1.0 + exp(-v)); }
float act_silu(float v) { return v * sigmoid(v); }
float act_gelu(float v) { return v * sigmoid(1.5957691216057308 * (v + 0.044715 * v * v * v)); }
float act_swiglu(float g, float u) { return g * sigmoid(g) * u; }
// gegelu(a, c) (Phi-3-small, docs/spec/phi3-small.md section 14): a' = min(a, limit),
// c' = clamp(c, -limit, limit) (no clamp when limit is 0), a' sigmoid(1.702 a') (c' + 1)
float act_gegelu(float a, float c, float limit) {
    if (limit > 0.0) {
        a = min(a, limit);
        c = clamp(c, -limit, limit);
    }
    return a * sigmoid(1.702 * a) * (c + 1.0);
}
