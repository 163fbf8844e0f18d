#include "ref.h"

#include <math.h>

#include "quant.h"

float ref_uniform(ref_rng *r, float lo, float hi) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    uint64_t v = r->s * 0x2545F4914F6CDD1DULL;
    return lo + (hi - lo) * (float)((double)(v >> 40) / (double)(1ULL << 24));
}

void ref_fill(ref_rng *r, float *v, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) v[i] = ref_uniform(r, lo, hi);
}

/* A random normal half or bfloat16: sign, exponent 2^-6 .. 2^0, random mantissa.
 * Built from bits so the test needs no f32 -> f16 rounding of its own. */
static uint16_t rand_bits16(ref_rng *r, pvk_type t, float *value) {
    unsigned sign = ref_uniform(r, 0, 1) < 0.5f;
    int e = (int)ref_uniform(r, 0, 6.999f) - 6;
    unsigned mbits = t == PVK_F16 ? 10 : 7;
    unsigned mant = (unsigned)ref_uniform(r, 0, (float)(1u << mbits) - 0.001f);
    *value = (sign ? -1.0f : 1.0f) * ldexpf(1.0f + (float)mant / (float)(1u << mbits), e);
    if (t == PVK_F16) return (uint16_t)(sign << 15 | (unsigned)(e + 15) << 10 | mant);
    return (uint16_t)(sign << 15 | (unsigned)(e + 127) << 7 | mant);
}

void ref_weights(ref_rng *r, pvk_type t, int64_t rows, int64_t cols, void *stored, float *values) {
    size_t n = (size_t)(rows * cols);
    if (pvk_type_get(t)->block_elems > 1) {
        /* Off-centre values, so the formats' offsets (Q4_1 m, K-quant mins) are used. */
        size_t row_bytes = pvk_type_row_bytes(t, cols);
        for (int64_t i = 0; i < rows; i++) {
            float *v = values + (size_t)i * cols;
            void *q = (uint8_t *)stored + (size_t)i * row_bytes;
            ref_fill(r, v, (size_t)cols, -1.0f, 2.0f);
            quant_quantize_row(t, v, q, cols);
            quant_dequantize_row(t, q, v, cols);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (t == PVK_F32) {
            values[i] = ref_uniform(r, -2.0f, 2.0f);
            ((float *)stored)[i] = values[i];
        } else {
            ((uint16_t *)stored)[i] = rand_bits16(r, t, &values[i]);
        }
    }
}

void ref_rmsnorm(const float *x, const float *w, float *out, int rows, int n, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / n + eps);
        for (int i = 0; i < n; i++) out[(size_t)r * n + i] = (float)(xr[i] * s * (w ? w[i] : 1.0));
    }
}

void ref_layernorm(const float *x, const float *w, const float *b, float *out, int rows, int n,
                   float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += xr[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean);
        double s = 1.0 / sqrt(var / n + eps);
        for (int i = 0; i < n; i++)
            out[(size_t)r * n + i] = (float)((xr[i] - mean) * s * (w ? w[i] : 1.0) + (b ? b[i] : 0.0));
    }
}

void ref_softmax(const float *x, float *out, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        double m = xr[0], s = 0;
        for (int i = 1; i < n; i++) m = fmax(m, xr[i]);
        for (int i = 0; i < n; i++) s += exp(xr[i] - m);
        for (int i = 0; i < n; i++) out[(size_t)r * n + i] = (float)(exp(xr[i] - m) / s);
    }
}

float ref_silu(float x) { return (float)(x / (1.0 + exp(-(double)x))); }

float ref_gelu(float x) {
    double v = x;
    return (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
}

void ref_matmul(const float *w, const float *bias, const float *x, float *y, float *absdot,
                int m, int n, int k, bool accumulate) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0, a = 0;
            for (int q = 0; q < k; q++) {
                double p = (double)x[(size_t)i * k + q] * w[(size_t)j * k + q];
                s += p;
                a += fabs(p);
            }
            if (bias) s += bias[j];
            size_t yi = (size_t)i * n + j;
            if (accumulate) s += y[yi];
            y[yi] = (float)s;
            absdot[yi] = (float)a;
        }
    }
}
