// The KV-cache formats shared by kv_store.comp (writes) and attn.comp (reads).
// A cache row is `width` elements of one type, rows contiguous, ggml block layout:
//   F16   2 bytes per element
//   Q8_0  blocks of 32: {f16 d; int8 qs[32]}            34 bytes, x = d * qs[j]
//   Q4_0  blocks of 32: {f16 d; uint8 qs[16]}           18 bytes, x = d * (nibble - 8);
//         qs[j] holds element j (low nibble) and j + 16 (high nibble)
// Quantized blocks are 2-byte aligned only: every access is through 32-bit words
// (the portable unit of storage buffers and R/RG32UI texel views), and a 16-bit
// field or a 4-byte group starting at 2 mod 4 is assembled from two words. The
// includer sets K_KIND and V_KIND from -DK_<TYPE> / -DV_<TYPE>.
#define KV_F16 0u
#define KV_Q8_0 1u
#define KV_Q4_0 2u

#if defined(K_F16)
#define K_KIND KV_F16
#define K_QUANT 0
#elif defined(K_Q8_0)
#define K_KIND KV_Q8_0
#define K_QUANT 1
#elif defined(K_Q4_0)
#define K_KIND KV_Q4_0
#define K_QUANT 1
#else
#error define the K cache type: K_F16, K_Q8_0 or K_Q4_0
#endif
#if defined(V_F16)
#define V_KIND KV_F16
#define V_QUANT 0
#elif defined(V_Q8_0)
#define V_KIND KV_Q8_0
#define V_QUANT 1
#elif defined(V_Q4_0)
#define V_KIND KV_Q4_0
#define V_QUANT 1
#else
#error define the V cache type: V_F16, V_Q8_0 or V_Q4_0
#endif

// Bytes of a row of w elements (w % 32 == 0 for the block types).
uint kv_row_bytes(uint kind, uint w) {
    return kind == KV_F16 ? w * 2u : (w >> 5) * (kind == KV_Q8_0 ? 34u : 18u);
}
// Bytes of one 32-element block (0 for F16, which is not blocked).
uint kv_block_bytes(uint kind) { return kind == KV_Q8_0 ? 34u : kind == KV_Q4_0 ? 18u : 0u; }
