/* CPU references for the kernel tests: the same math as the shaders with double
 * accumulation (so the reference's own rounding is negligible next to the GPU's
 * fp32), plus deterministic random data. */
#ifndef PHIVK_TESTS_KERNELS_REF_H
#define PHIVK_TESTS_KERNELS_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvk_type.h"

/* xorshift64*: the same sequence on every run, so failures reproduce. */
typedef struct { uint64_t s; } ref_rng;
float ref_uniform(ref_rng *r, float lo, float hi);
void ref_fill(ref_rng *r, float *v, size_t n, float lo, float hi);

/* Random weights of type t (F32, F16, BF16 or a quant.h block type): `stored`
 * receives rows of pvk_type_row_bytes(t, cols), `values` the exact f32 value of
 * each element (its dequantization). Plain types: magnitudes in [1/64, 2); block
 * types: quantized from [-1, 2). */
void ref_weights(ref_rng *r, pvk_type t, int64_t rows, int64_t cols, void *stored, float *values);

void ref_rmsnorm(const float *x, const float *w, float *out, int rows, int n, float eps);
void ref_layernorm(const float *x, const float *w, const float *b, float *out, int rows, int n,
                   float eps);
void ref_softmax(const float *x, float *out, int rows, int n);
float ref_silu(float x);
float ref_gelu(float x);   /* tanh approximation */
/* y[i][j] (+)= sum_k x[i][k] w[j][k] (+ bias[j]); absdot[i][j] = sum_k |x w|, the
 * scale of the fp32 accumulation error. */
void ref_matmul(const float *w, const float *bias, const float *x, float *y, float *absdot,
                int m, int n, int k, bool accumulate);

#endif
