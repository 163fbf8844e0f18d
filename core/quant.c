/* CPU dequantization and quantization of the ggml block formats.
 *
 * Dequantization follows ggml's dequantize_row_* bit for bit. The legacy
 * quantizers (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) are ggml's reference quantizers,
 * including their float rounding steps, so quantizing what a Q4_0 tensor
 * dequantizes to gives back its bytes. The K-quant quantizers are simpler than
 * ggml's (no error-minimizing search): each sub-block's scale and min are rounded
 * up, never down, so every value stays inside the representable range and the
 * error is at most half a step (quant_error_bound). */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define QK 32     /* legacy block */
#define QK_K 256  /* K-quant super-block */

/* ------------------------------------------------------------- f16 / bf16 */

float quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);             /* inf / nan, payload kept */
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);     /* rebias 15 -> 127 */
    } else if (man) {
        float f = (float)man * 0x1p-24f;                     /* subnormal: exact in f32 */
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* quiet nan */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to inf */
    if (ax >= 0x38800000u) {                     /* normal f16: >= 2^-14 */
        uint32_t r = ax - 0x38000000u;           /* rebias 127 -> 15, still shifted by 13 */
        r += 0xfff + ((r >> 13) & 1);            /* round to nearest even */
        return sign | (uint16_t)(r >> 13);
    }
    /* subnormal f16: value = k * 2^-24 with k = m * 2^(e-126) */
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, s = 126 - e;
    if (s > 24) return sign;                     /* below 2^-25: rounds to zero */
    uint32_t k = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    if (rem > half || (rem == half && (k & 1))) k++;
    return sign | (uint16_t)k;                   /* k == 0x400 is the smallest normal */
}

float quant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet nan */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);                /* as ggml rounds */
}

static float rd_f16(const uint8_t *p) { return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void wr_f16(uint8_t *p, float f) {
    uint16_t h = quant_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* The smallest positive f16 at least f (f >= 0, in range): K-quant scales round up. */
static float f16_ceil(float f) {
    uint16_t h = quant_f32_to_f16(f);
    if (quant_f16_to_f32(h) < f) h++;
    return quant_f16_to_f32(h);
}

/* ------------------------------------------------------------ plain types */

static void deq_f32(const uint8_t *b, float *y) { memcpy(y, b, 4); }
static void deq_f16(const uint8_t *b, float *y) { *y = rd_f16(b); }
static void deq_bf16(const uint8_t *b, float *y) { *y = quant_bf16_to_f32((uint16_t)(b[0] | b[1] << 8)); }
static void q_f32(const float *x, uint8_t *b) { memcpy(b, x, 4); }
static void q_f16(const float *x, uint8_t *b) { wr_f16(b, *x); }
static void q_bf16(const float *x, uint8_t *b) {
    uint16_t h = quant_f32_to_bf16(*x);
    b[0] = (uint8_t)h;
    b[1] = (uint8_t)(h >> 8);
}

/* ----------------------------------------------------------------- Q8_0 */

static void deq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)b[2 + j];
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < QK; j++) {
        const float v = x[j] * id;
        b[2 + j] = (uint8_t)(int8_t)roundf(v);
    }
}

/* ------------------------------------------- Q4_0, Q4_1, Q5_0, Q5_1 (legacy) */

/* Where the fields of a legacy block are; m and qh are absent when 0. */
typedef struct legacy {
    int bits;      /* 4 or 5 */
    bool affine;   /* y = d*q + m (Q4_1, Q5_1) instead of y = d*(q - 2^(bits-1)) */
    int m_at, qh_at, qs_at;
} legacy;

static const legacy L_Q4_0 = {4, false, 0, 0, 2};
static const legacy L_Q4_1 = {4, true, 2, 0, 4};
static const legacy L_Q5_0 = {5, false, 0, 2, 6};
static const legacy L_Q5_1 = {5, true, 2, 4, 8};

/* qs[j] holds element j (low nibble) and j+16 (high nibble); the 5th bit of
 * element j is bit j of the little-endian u32 qh. */
static void legacy_unpack(const legacy *f, const uint8_t *b, int *q) {
    uint32_t qh = f->qh_at ? (uint32_t)b[f->qh_at] | (uint32_t)b[f->qh_at + 1] << 8 |
                                 (uint32_t)b[f->qh_at + 2] << 16 | (uint32_t)b[f->qh_at + 3] << 24
                           : 0;
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (b[f->qs_at + j] & 15) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (b[f->qs_at + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

static void legacy_pack(const legacy *f, const int *q, uint8_t *b) {
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        b[f->qs_at + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    if (f->qh_at)
        for (int i = 0; i < 4; i++) b[f->qh_at + i] = (uint8_t)(qh >> (8 * i));
}

static void legacy_deq(const legacy *f, const uint8_t *b, float *y) {
    int q[QK];
    legacy_unpack(f, b, q);
    const float d = rd_f16(b);
    if (f->affine) {
        const float m = rd_f16(b + f->m_at);
        for (int j = 0; j < QK; j++) y[j] = (float)q[j] * d + m;
    } else {
        const int off = 1 << (f->bits - 1);
        for (int j = 0; j < QK; j++) y[j] = (float)(q[j] - off) * d;
    }
}

/* ggml's quantize_row_q{4,5}_{0,1}_ref, step for step. */
static void legacy_quant(const legacy *f, const float *x, uint8_t *b) {
    const int levels = 1 << f->bits;
    int q[QK];
    if (f->affine) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / (float)(levels - 1), id = d ? 1.0f / d : 0.0f;
        wr_f16(b, d);
        wr_f16(b + f->m_at, min);
        for (int j = 0; j < QK; j++) {
            const float v = (x[j] - min) * id;
            const int qi = (int8_t)(v + 0.5f);
            q[j] = qi < levels - 1 ? qi : levels - 1;
        }
    } else {
        /* d is the signed extreme over -2^(bits-1): that element maps to level 0 */
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float half = (float)(levels / 2);
        const float d = max / -half, id = d ? 1.0f / d : 0.0f;
        wr_f16(b, d);
        for (int j = 0; j < QK; j++) {
            const float v = x[j] * id;
            const int qi = (int8_t)(v + (half + 0.5f));
            q[j] = qi < levels - 1 ? qi : levels - 1;
        }
    }
    legacy_pack(f, q, b);
}

#define LEGACY_FNS(T, L)                                                         \
    static void deq_##T(const uint8_t *b, float *y) { legacy_deq(&L, b, y); }    \
    static void q_##T(const float *x, uint8_t *b) { legacy_quant(&L, x, b); }
LEGACY_FNS(q4_0, L_Q4_0)
LEGACY_FNS(q4_1, L_Q4_1)
LEGACY_FNS(q5_0, L_Q5_0)
LEGACY_FNS(q5_1, L_Q5_1)

/* ------------------------------------------------------------ Q4_K, Q5_K */

/* Block: f16 d, f16 dmin, u8 scales[12], [Q5_K: u8 qh[32]], u8 qs[128].
 * Eight sub-blocks of 32 with 6-bit scale and min packed in scales[12]. */
static void kq_get_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void kq_set_scale_min(int j, uint8_t *s, int sc, int m) {
    if (j < 4) {
        s[j] = (uint8_t)(s[j] | sc);
        s[j + 4] = (uint8_t)(s[j + 4] | m);
    } else {
        s[j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
        s[j - 4] = (uint8_t)(s[j - 4] | (sc >> 4) << 6);
        s[j] = (uint8_t)(s[j] | (m >> 4) << 6);
    }
}

/* Chunk c of 64 elements: qs[32c+l] low nibble -> element 64c+l (sub-block 2c),
 * high nibble -> 64c+32+l (sub-block 2c+1); for Q5_K bit 2c / 2c+1 of qh[l] adds 16. */
static void kq_deq(const uint8_t *b, float *y, bool five) {
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            int sc, m;
            kq_get_scale_min(2 * c + h, s, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = h ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
                if (five && (qh[l] >> (2 * c + h) & 1)) q += 16;
                y[64 * c + 32 * h + l] = d1 * (float)q - m1;
            }
        }
}

static void kq_quant(const float *x, uint8_t *b, bool five) {
    const int qmax = five ? 31 : 15;
    float mins[8], need[8], max_min = 0, max_need = 0;
    for (int j = 0; j < 8; j++) {
        float lo = 0, hi = -FLT_MAX; /* the format subtracts a non-negative min */
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * j + l]);
            hi = fmaxf(hi, x[32 * j + l]);
        }
        mins[j] = -lo;
        max_min = fmaxf(max_min, mins[j]);
    }
    memset(b, 0, five ? 176 : 144);
    const float dmin = f16_ceil(max_min / 63);
    int msc[8], ssc[8];
    for (int j = 0; j < 8; j++) {
        msc[j] = dmin > 0 ? (int)ceilf(mins[j] / dmin) : 0;
        if (msc[j] > 63) msc[j] = 63;
        float hi = -FLT_MAX;
        for (int l = 0; l < 32; l++) hi = fmaxf(hi, x[32 * j + l]);
        /* the step must cover [-(effective min), hi] in qmax steps */
        need[j] = fmaxf(0, (hi + dmin * (float)msc[j]) / (float)qmax);
        max_need = fmaxf(max_need, need[j]);
    }
    const float d = f16_ceil(max_need / 63);
    for (int j = 0; j < 8; j++) {
        ssc[j] = d > 0 ? (int)ceilf(need[j] / d) : 0;
        if (ssc[j] > 63) ssc[j] = 63;
        kq_set_scale_min(j, b + 4, ssc[j], msc[j]);
    }
    wr_f16(b, d);
    wr_f16(b + 2, dmin);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            const int j = 2 * c + h;
            const float step = d * (float)ssc[j], m = dmin * (float)msc[j];
            for (int l = 0; l < 32; l++) {
                int q = step > 0 ? (int)lrintf((x[32 * j + l] + m) / step) : 0;
                q = q < 0 ? 0 : q > qmax ? qmax : q;
                qs[32 * c + l] |= (uint8_t)((q & 15) << (4 * h));
                if (q > 15) qh[l] |= (uint8_t)(1 << j);
            }
        }
}

static void deq_q4_K(const uint8_t *b, float *y) { kq_deq(b, y, false); }
static void deq_q5_K(const uint8_t *b, float *y) { kq_deq(b, y, true); }
static void q_q4_K(const float *x, uint8_t *b) { kq_quant(x, b, false); }
static void q_q5_K(const float *x, uint8_t *b) { kq_quant(x, b, true); }

/* ----------------------------------------------------------------- Q6_K */

/* Block: u8 ql[128], u8 qh[64], i8 scales[16], f16 d (last). Element e of half n
 * (e < 128) sits in ql[64n + e%64] (low nibble for e < 64), 2 bits of qh[32n + e%32]
 * at shift 2*(e/32), and uses scale 8n + e/16. */
static void q6k_locate(int i, int *ql, int *ql_shift, int *qh, int *qh_shift) {
    const int n = i / 128, e = i % 128;
    *ql = 64 * n + e % 64;
    *ql_shift = e < 64 ? 0 : 4;
    *qh = 128 + 32 * n + e % 32;
    *qh_shift = 2 * (e / 32);
}

static void deq_q6_K(const uint8_t *b, float *y) {
    const float d = rd_f16(b + 208);
    for (int i = 0; i < QK_K; i++) {
        int ql, qls, qh, qhs;
        q6k_locate(i, &ql, &qls, &qh, &qhs);
        const int q = ((b[ql] >> qls) & 15) | ((b[qh] >> qhs) & 3) << 4;
        y[i] = d * (float)(int8_t)b[192 + i / 16] * (float)(q - 32);
    }
}

static void q_q6_K(const float *x, uint8_t *b) {
    float need[16], max_need = 0;
    for (int j = 0; j < 16; j++) {
        float amax = 0;
        for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * j + l]));
        need[j] = amax / 31; /* q in -31..31 keeps the grid symmetric */
        max_need = fmaxf(max_need, need[j]);
    }
    memset(b, 0, 210);
    const float d = f16_ceil(max_need / 127);
    wr_f16(b + 208, d);
    for (int j = 0; j < 16; j++) {
        int sc = d > 0 ? (int)ceilf(need[j] / d) : 0;
        sc = sc > 127 ? 127 : sc;
        b[192 + j] = (uint8_t)sc;
        const float step = d * (float)sc;
        for (int l = 0; l < 16; l++) {
            const int i = 16 * j + l;
            int q = step > 0 ? (int)lrintf(x[i] / step) : 0;
            q = (q < -32 ? -32 : q > 31 ? 31 : q) + 32;
            int ql, qls, qh, qhs;
            q6k_locate(i, &ql, &qls, &qh, &qhs);
            b[ql] |= (uint8_t)((q & 15) << qls);
            b[qh] |= (uint8_t)((q >> 4) << qhs);
        }
    }
}

/* ---------------------------------------------------------------- dispatch */

typedef struct codec {
    void (*deq)(const uint8_t *block, float *y);
    void (*quant)(const float *x, uint8_t *block);
} codec;

static const codec codecs[PVK_TYPE_COUNT] = {
    [PVK_F32] = {deq_f32, q_f32},     [PVK_F16] = {deq_f16, q_f16},     [PVK_BF16] = {deq_bf16, q_bf16},
    [PVK_Q8_0] = {deq_q8_0, q_q8_0},  [PVK_Q4_0] = {deq_q4_0, q_q4_0},  [PVK_Q4_1] = {deq_q4_1, q_q4_1},
    [PVK_Q5_0] = {deq_q5_0, q_q5_0},  [PVK_Q5_1] = {deq_q5_1, q_q5_1},  [PVK_Q4_K] = {deq_q4_K, q_q4_K},
    [PVK_Q5_K] = {deq_q5_K, q_q5_K},  [PVK_Q6_K] = {deq_q6_K, q_q6_K},
};

/* Fails unless t has the codec (quantizer or dequantizer) and n is whole blocks. */
static phivk_status check(pvk_type t, int64_t n, bool quant, const pvk_type_info **ti) {
    const char *what = quant ? "quantize" : "dequantize";
    *ti = pvk_type_get(t);
    bool has = (unsigned)t < PVK_TYPE_COUNT && (quant ? codecs[t].quant != NULL : codecs[t].deq != NULL);
    if (!has)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: no CPU code for type %s (id %d)", what,
                        (*ti)->name ? (*ti)->name : "unknown", (int)t);
    if (n < 0 || n % (*ti)->block_elems)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: %lld elements is not a multiple of %s's block of %u", what,
                        (long long)n, (*ti)->name, (*ti)->block_elems);
    return PHIVK_OK;
}

phivk_status quant_dequantize_row(pvk_type t, const void *src, float *dst, int64_t n) {
    const pvk_type_info *ti;
    phivk_status st = check(t, n, false, &ti);
    if (st) return st;
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / ti->block_elems; i++)
        codecs[t].deq(b + i * ti->block_bytes, dst + i * ti->block_elems);
    return PHIVK_OK;
}

phivk_status quant_quantize_row(pvk_type t, const float *src, void *dst, int64_t n) {
    const pvk_type_info *ti;
    phivk_status st = check(t, n, true, &ti);
    if (st) return st;
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / ti->block_elems; i++)
        codecs[t].quant(src + i * ti->block_elems, b + i * ti->block_bytes);
    return PHIVK_OK;
}

/* Half a quantization step at the format's coarsest grid for a block of largest
 * magnitude amax, plus what rounding d (and m) to f16 can add: relative 2^-11,
 * or absolute 2^-25 where d is subnormal, times the largest level |q|. */
float quant_error_bound(pvk_type t, float amax) {
    const float h = 0x1p-11f, sub = 0x1p-25f;
    switch (t) {
    case PVK_F32: return 0;
    case PVK_F16: return amax * h + sub;           /* half an ulp; subnormal spacing 2^-24 */
    case PVK_BF16: return amax * 0x1p-8f;          /* 8 significant bits */
    case PVK_Q8_0: return amax * (0.5f / 127 + h) + 127 * sub;
    /* q = -8..7 with d = max/-8: the opposite extreme +amax clamps to 7d, an error of d */
    case PVK_Q4_0: return amax * (1.0f / 8 + h) + 8 * sub;
    case PVK_Q5_0: return amax * (1.0f / 16 + h) + 16 * sub;
    /* affine: range up to 2*amax over 15 / 31 steps, d and m rounded to f16 */
    case PVK_Q4_1: return amax * (1.0f / 15 + 4 * h) + 16 * sub;
    case PVK_Q5_1: return amax * (1.0f / 31 + 4 * h) + 32 * sub;
    /* as the affine formats, plus scales and mins rounded up (never down) to a 6-bit
     * multiple of d and dmin (each at most (range/qmax)/63 and amax/63) */
    case PVK_Q4_K: return amax * (1.0f / 15 + (2.0f / 15 + 1) / 63 + 4 * h) + 16 * sub;
    case PVK_Q5_K: return amax * (1.0f / 31 + (2.0f / 31 + 1) / 63 + 4 * h) + 32 * sub;
    /* symmetric -31..31 per 16 values, scale rounded up to a multiple of d = max/127 */
    case PVK_Q6_K: return amax * (0.5f / 31 + 1.0f / (31 * 127) + 4 * h) + 32 * sub;
    default: return INFINITY;
    }
}
