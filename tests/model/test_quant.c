/* Block formats: f16/bf16 conversions, hand-made blocks with known values for
 * every dequantizer, round trips within quant_error_bound for every quantizer,
 * and the Q4_0 tensors of a file llama.cpp wrote. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdint.h>

#include "gguf.h"
#include "gguf_bytes.h"
#include "quant.h"

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

TEST(f16_conversion_rounds_to_nearest_even_and_keeps_specials) {
    static const struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},                 /* below the midpoint to 65536 */
        {65520.0f, 0x7c00},                 /* the midpoint rounds to even: inf */
        {1e9f, 0x7c00}, {-1e9f, 0xfc00},
        {0x1p-14f, 0x0400},                 /* smallest normal */
        {0x1p-24f, 0x0001},                 /* smallest subnormal */
        {0x1p-25f, 0x0000},                 /* tie between 0 and 2^-24: even is 0 */
        {0x1.8p-25f, 0x0001},               /* above the tie */
        {0x3p-25f, 0x0002},                 /* 1.5 * 2^-24: tie, rounds to even 2 */
        {0x1.ffcp-15f, 0x0400},             /* largest subnormal + half ulp: tie, carries into the normal range */
        {0x1.ff8p-15f, 0x03ff},             /* largest subnormal */
        {1.0f + 0x1p-11f, 0x3c00},          /* tie: even mantissa */
        {1.0f + 0x3p-11f, 0x3c02},          /* tie: odd mantissa rounds up */
        {1.0f + 0x1.2p-11f, 0x3c01},        /* above the tie */
        {0.1f, 0x2e66},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = quant_f32_to_f16(cases[i].f);
        CHECK(h == cases[i].h, "f16(%a) = 0x%04x, want 0x%04x", (double)cases[i].f, h, cases[i].h);
    }
    CHECK(quant_f32_to_f16(INFINITY) == 0x7c00 && quant_f32_to_f16(-INFINITY) == 0xfc00, "inf");
    uint16_t hn = quant_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "nan stays nan: 0x%04x", hn);
    CHECK((quant_f32_to_f16(bits_f32(0x7f800001u)) & 0x3ff) != 0, "signalling nan with a low payload stays nan");
    CHECK(isnan(quant_f16_to_f32(0x7e00)) && isinf(quant_f16_to_f32(0xfc00)), "specials back to f32");
    CHECK(quant_f16_to_f32(0x0001) == 0x1p-24f && quant_f16_to_f32(0x83ff) == -0x3ffp-24f, "subnormals");

    /* every f16 survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        uint16_t back = quant_f32_to_f16(f);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) || (back & 0x3ff) == 0 : back != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);

#ifdef __FLT16_MAX__
    /* The compiler's own conversion (RNE) is an independent oracle on random bit patterns. */
    uint32_t s = 12345;
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 1664525u + 1013904223u;
        float f = bits_f32(s);
        if (isnan(f)) continue;
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        if (quant_f32_to_f16(f) != want) bad++;
        if (quant_f16_to_f32(want) != (float)r) bad++;
    }
    CHECK(bad == 0, "%d disagreements with _Float16", bad);
#endif
}

TEST(bf16_conversion_rounds_to_nearest_even_and_keeps_nan) {
    CHECK(quant_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(quant_f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(quant_f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(quant_f32_to_bf16(bits_f32(0x3f808001u)) == 0x3f81, "above the tie");
    CHECK(quant_f32_to_bf16(INFINITY) == 0x7f80 && quant_f32_to_bf16(-INFINITY) == 0xff80, "inf");
    CHECK(quant_f32_to_bf16(bits_f32(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
    uint16_t n = quant_f32_to_bf16(bits_f32(0x7f800001u));
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f), "nan with low payload stays nan: 0x%04x", n);
    CHECK(quant_bf16_to_f32(0x4049) == 3.140625f, "bf16 -> f32");
    CHECK(quant_bf16_to_f32(0x0001) == 0x1p-133f, "subnormal bf16 kept");
}

/* ---------------------------------------------------- known-value blocks */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void check_block(pvk_type t, const uint8_t *block, const float *want, int n) {
    float y[256];
    REQUIRE(quant_dequantize_row(t, block, y, n) == PHIVK_OK, "%s", pvk_errmsg());
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (y[i] != want[i] && bad++ < 4)
            CHECK(0, "%s element %d = %g, want %g", pvk_type_get(t)->name, i, y[i], want[i]);
    CHECK(bad == 0, "%s: %d wrong elements (all values here are exact in f32)", pvk_type_get(t)->name, bad);
}

TEST(legacy_blocks_dequantize_to_known_values) {
    uint8_t b[34];
    float want[32];
    /* Q8_0: d = 0.5, qs = j - 16 */
    put16(b, 0x3800);
    for (int j = 0; j < 32; j++) { b[2 + j] = (uint8_t)(int8_t)(j - 16); want[j] = 0.5f * (float)(j - 16); }
    check_block(PVK_Q8_0, b, want, 32);
    /* Q4_0: d = 2, low nibble j (element j), high nibble 15-j (element j+16) */
    put16(b, 0x4000);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 2.0f * (float)(j - 8);
        want[j + 16] = 2.0f * (float)(7 - j);
    }
    check_block(PVK_Q4_0, b, want, 32);
    /* Q4_1: d = 0.5, m = -1 */
    put16(b, 0x3800);
    put16(b + 2, 0xbc00);
    for (int j = 0; j < 16; j++) {
        b[4 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 0.5f * (float)j - 1;
        want[j + 16] = 0.5f * (float)(15 - j) - 1;
    }
    check_block(PVK_Q4_1, b, want, 32);
    /* Q5_0: d = 1, qh = 0x8000_0001 | odd bits: bit k is the 5th bit of element k */
    uint32_t qh = 0xA5C3F00Fu;
    put16(b, 0x3c00);
    for (int i = 0; i < 4; i++) b[2 + i] = (uint8_t)(qh >> (8 * i));
    for (int j = 0; j < 16; j++) {
        b[6 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = (float)((j | (int)((qh >> j) & 1) << 4) - 16);
        want[j + 16] = (float)(((15 - j) | (int)((qh >> (j + 16)) & 1) << 4) - 16);
    }
    check_block(PVK_Q5_0, b, want, 32);
    /* Q5_1: d = 0.25, m = 3, same bits: no -16 */
    put16(b, 0x3400);
    put16(b + 2, 0x4200);
    for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(qh >> (8 * i));
    for (int j = 0; j < 16; j++) {
        b[8 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 0.25f * (float)(j | (int)((qh >> j) & 1) << 4) + 3;
        want[j + 16] = 0.25f * (float)((15 - j) | (int)((qh >> (j + 16)) & 1) << 4) + 3;
    }
    check_block(PVK_Q5_1, b, want, 32);
    /* F16 / BF16 / F32 rows */
    uint8_t h[6];
    put16(h, 0x3c00); put16(h + 2, 0xc200); put16(h + 4, 0x0001);
    check_block(PVK_F16, h, (float[]){1.0f, -3.0f, 0x1p-24f}, 3);
    put16(h, 0x3f80); put16(h + 2, 0xc040); put16(h + 4, 0x7f80);
    check_block(PVK_BF16, h, (float[]){1.0f, -3.0f, INFINITY}, 3);
    float f[2] = {1.25f, -7.0f};
    check_block(PVK_F32, (const uint8_t *)f, f, 2);
}

/* Sub-block scales and mins chosen so that j >= 4 use the high two bits packed
 * into bytes 0..7; the scale bytes below were packed by hand:
 *   sc = 1 2 3 4 17 33 50 63,  m = 0 5 10 63 20 36 48 1 */
static const int KQ_SC[8] = {1, 2, 3, 4, 17, 33, 50, 63}, KQ_M[8] = {0, 5, 10, 63, 20, 36, 48, 1};
static const uint8_t KQ_SCALES[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x85, 0xCA, 0x3F,
                                      0x41, 0x41, 0x02, 0x1F};

static void kq_block(uint8_t *b, bool five, float *want) {
    put16(b, 0x3800);     /* d = 0.5 */
    put16(b + 2, 0x3400); /* dmin = 0.25 */
    memcpy(b + 4, KQ_SCALES, 12);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int l = 0; l < 32 && five; l++) qh[l] = (uint8_t)(l * 37 + 11);
    for (int i = 0; i < 128; i++) qs[i] = (uint8_t)((i % 16) | (15 - i % 16) << 4);
    /* ggml's dequantize_row_q{4,5}_K loop shape: 4 chunks of 64, low then high nibbles */
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        const uint8_t *q = qs + j / 2;
        for (int l = 0; l < 32; l++)
            want[j + l] = 0.5f * (float)KQ_SC[is] * (float)((q[l] & 15) + (five && (qh[l] & u1) ? 16 : 0)) -
                          0.25f * (float)KQ_M[is];
        for (int l = 0; l < 32; l++)
            want[j + 32 + l] = 0.5f * (float)KQ_SC[is + 1] * (float)((q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) -
                               0.25f * (float)KQ_M[is + 1];
        is += 2;
        u1 <<= 2;
        u2 <<= 2;
    }
}

TEST(q4_K_and_q5_K_blocks_dequantize_to_known_values_including_high_scale_bits) {
    uint8_t b[176];
    float want[256];
    kq_block(b, false, want);
    check_block(PVK_Q4_K, b, want, 256);
    kq_block(b, true, want);
    check_block(PVK_Q5_K, b, want, 256);
    /* spot values computed by hand: element 0 is q=0 in sub-block 0: 0.5*1*0 - 0.25*0 = 0;
     * element 224 (sub-block 7, high nibble of qs[96] = 15): 0.5*63*15 - 0.25*1 = 472.25 */
    float y[256];
    kq_block(b, false, want);
    quant_dequantize_row(PVK_Q4_K, b, y, 256);
    CHECK(y[0] == 0.0f && y[224] == 472.25f, "y[0] = %g, y[224] = %g", y[0], y[224]);
    /* element 128 (sub-block 4, low nibble of qs[64] = 0): -0.25 * 20 = -5 */
    CHECK(y[128] == -5.0f, "y[128] = %g", y[128]);
}

TEST(q6_K_block_with_d_last_dequantizes_to_known_values) {
    uint8_t b[210];
    float want[256];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < 64; i++) b[128 + i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < 16; i++) b[192 + i] = (uint8_t)(int8_t)(i - 8);
    put16(b + 208, 0x3400); /* d = 0.25 at the END of the block */
    /* ggml's dequantize_row_q6_K loop shape */
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            want[n + l] = 0.25f * (float)sc[is] * (float)q1;
            want[n + l + 32] = 0.25f * (float)sc[is + 2] * (float)q2;
            want[n + l + 64] = 0.25f * (float)sc[is + 4] * (float)q3;
            want[n + l + 96] = 0.25f * (float)sc[is + 6] * (float)q4;
        }
        ql += 64;
        qh += 32;
        sc += 8;
    }
    check_block(PVK_Q6_K, b, want, 256);
    /* by hand: element 0: ql[0]=3, qh[0]=5 -> bits 0-1 = 1 -> q = 3|16 = 19 - 32 = -13,
     * scale[0] = -8: 0.25 * -8 * -13 = 26 */
    float y[256];
    quant_dequantize_row(PVK_Q6_K, b, y, 256);
    CHECK(y[0] == 26.0f, "y[0] = %g, want 26", y[0]);
}

/* ------------------------------------------------------------ round trips */

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) * 0x1p-23f - 1.0f;
}

/* Fills n values in one of several shapes quantizers find hard. */
static void fill(float *x, int n, int shape) {
    for (int i = 0; i < n; i++) {
        float u = frand();
        switch (shape) {
        case 0: x[i] = u; break;                                     /* uniform */
        case 1: x[i] = u * u * u * 3; break;                         /* peaked, heavy tails */
        case 2: x[i] = fabsf(u) + 0.5f; break;                       /* all positive, away from 0 */
        case 3: x[i] = -fabsf(u) * 40 - 1; break;                    /* all negative */
        case 4: x[i] = i % 37 == 0 ? 20.0f * u : 0.01f * u; break;   /* outliers */
        case 5: x[i] = 0; break;                                     /* zeros */
        case 6: x[i] = 0.7f; break;                                  /* constant */
        default: x[i] = u * 1e-3f * (float)(1 + i % 7); break;       /* small, sub-block ranges differ */
        }
    }
}

TEST(every_quantizer_round_trips_within_its_error_bound) {
    static const pvk_type types[] = {PVK_F16, PVK_BF16, PVK_Q8_0, PVK_Q4_0, PVK_Q4_1, PVK_Q5_0,
                                     PVK_Q5_1, PVK_Q4_K, PVK_Q5_K, PVK_Q6_K, PVK_F32};
    enum { N = 1024 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        pvk_type t = types[ti];
        const pvk_type_info *info = pvk_type_get(t);
        for (int shape = 0; shape < 8; shape++) {
            fill(x, N, shape);
            REQUIRE(quant_quantize_row(t, x, q, N) == PHIVK_OK, "%s: %s", info->name, pvk_errmsg());
            REQUIRE(quant_dequantize_row(t, q, y, N) == PHIVK_OK, "%s: %s", info->name, pvk_errmsg());
            float worst = 0;
            for (int b0 = 0; b0 < N; b0 += (int)info->block_elems) {
                float amax = 0;
                for (uint32_t i = 0; i < info->block_elems; i++) amax = fmaxf(amax, fabsf(x[b0 + (int)i]));
                float bound = quant_error_bound(t, amax);
                for (uint32_t i = 0; i < info->block_elems; i++) {
                    float e = fabsf(y[b0 + (int)i] - x[b0 + (int)i]);
                    worst = fmaxf(worst, bound > 0 ? e / bound : e);
                    if (!(e <= bound)) {
                        CHECK(0, "%s shape %d element %d: %g -> %g, error %g > bound %g (block amax %g)",
                              info->name, shape, b0 + (int)i, x[b0 + (int)i], y[b0 + (int)i], e, bound, amax);
                        b0 = N;
                        break;
                    }
                }
            }
            printf("    %-5s shape %d: worst error %.3f of the bound\n", info->name, shape, worst);
        }
    }
}

TEST(q4_0_q5_0_and_q8_0_requantize_their_own_output_bit_for_bit) {
    /* ggml's reference quantizers map the extreme element to the end of the grid,
     * so dequantized blocks quantize back to the same bytes. */
    static const pvk_type types[] = {PVK_Q4_0, PVK_Q5_0, PVK_Q8_0};
    enum { N = 32 * 64 };
    static float x[N], y[N];
    static uint8_t q1[N * 2], q2[N * 2];
    for (size_t ti = 0; ti < 3; ti++) {
        for (int shape = 0; shape < 8; shape++) {
            fill(x, N, shape);
            size_t bytes = pvk_type_row_bytes(types[ti], N);
            quant_quantize_row(types[ti], x, q1, N);
            quant_dequantize_row(types[ti], q1, y, N);
            quant_quantize_row(types[ti], y, q2, N);
            CHECK(!memcmp(q1, q2, bytes), "%s shape %d: requantized bytes differ", pvk_type_get(types[ti])->name,
                  shape);
        }
    }
}

TEST(dequantize_and_quantize_refuse_unsupported_types_and_partial_blocks) {
    float y[256];
    uint8_t b[512] = {0};
    CHECK(quant_dequantize_row(PVK_Q2_K, b, y, 256) == PHIVK_ERR_UNSUPPORTED, "q2_K has no dequantizer");
    CHECK(strstr(pvk_errmsg(), "q2_K"), "message names the type: %s", pvk_errmsg());
    CHECK(quant_quantize_row(PVK_Q8_1, y, b, 32) == PHIVK_ERR_UNSUPPORTED, "q8_1 has no quantizer");
    CHECK(quant_dequantize_row((pvk_type)33, b, y, 1) == PHIVK_ERR_UNSUPPORTED, "unknown id");
    CHECK(quant_dequantize_row(PVK_Q4_0, b, y, 48) == PHIVK_ERR_INVALID, "48 is not a whole number of blocks");
    CHECK(quant_quantize_row(PVK_Q6_K, y, b, 128) == PHIVK_ERR_INVALID, "128 < 256");
}

TEST(reference_q4_0_file_dequantizes_plausibly_and_requantizes_to_its_bytes) {
    gguf_file *f;
    REQUIRE(gguf_open(testdata_path("reference/phi3-q4_0.gguf"), &f) == PHIVK_OK, "%s", pvk_errmsg());
    int n_q4 = 0, n_other = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        float *y = malloc((size_t)n * sizeof *y);
        uint8_t *q = malloc(t->bytes);
        REQUIRE(y && q, "malloc");
        CHECK(quant_dequantize_row(t->type, t->data, y, n) == PHIVK_OK, "%s: %s", t->name, pvk_errmsg());
        double sum_abs = 0;
        float amax = 0;
        bool finite = true;
        for (int64_t k = 0; k < n; k++) {
            finite = finite && isfinite(y[k]);
            sum_abs += fabsf(y[k]);
            amax = fmaxf(amax, fabsf(y[k]));
        }
        /* random weights of a small synthetic model: mean |w| well inside (1e-4, 10) */
        CHECK(finite, "%s: non-finite values", t->name);
        CHECK(sum_abs / (double)n > 1e-4 && sum_abs / (double)n < 10 && amax < 100,
              "%s: mean |w| %g, max %g implausible", t->name, sum_abs / (double)n, amax);
        if (t->type == PVK_Q4_0) {
            quant_quantize_row(PVK_Q4_0, y, q, n);
            size_t diff = 0;
            for (size_t k = 0; k < t->bytes; k++) diff += q[k] != ((const uint8_t *)t->data)[k];
            CHECK(diff == 0, "%s: %zu of %llu bytes differ after requantizing", t->name, diff,
                  (unsigned long long)t->bytes);
            n_q4++;
        } else {
            n_other++;
        }
        free(y);
        free(q);
    }
    CHECK(n_q4 == 9, "9 Q4_0 tensors, got %d", n_q4);
    CHECK(n_other == 6, "f32 norms and the q6_K output, got %d", n_other);
    gguf_close(f);
}
