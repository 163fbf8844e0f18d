/* CPU side of the block formats in pvk_type.h: dequantization of every supported
 * type and quantization of those that tests and `phivk bench` build fixtures in.
 * Layouts are in docs/spec/phi-spec.md section 4.4 (ggml-compatible, bit for bit). */
#ifndef PHIVK_QUANT_H
#define PHIVK_QUANT_H

#include <stdint.h>

#include "pvk_err.h"
#include "pvk_type.h"

float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);       /* round to nearest even */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);      /* round to nearest even */

/* n elements (a multiple of the block size) of type t at src -> dst.
 * PHIVK_ERR_UNSUPPORTED for types without a dequantizer. */
phivk_status quant_dequantize_row(pvk_type t, const void *src, float *dst, int64_t n);
/* dst receives pvk_type_row_bytes(t, n) bytes. Supported targets: F32, F16, BF16,
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. */
phivk_status quant_quantize_row(pvk_type t, const float *src, void *dst, int64_t n);
/* Largest |dequant(quant(x)) - x| the format allows for a block of values whose
 * largest magnitude is amax: the bound the round-trip tests assert. */
float quant_error_bound(pvk_type t, float amax);

#endif
