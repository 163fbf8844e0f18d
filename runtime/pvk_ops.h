/* The op layer: records one kernel (or a short fixed sequence) into a pvk_cmd.
 * Each op family has one shader; variants (weight type, fetch path, ...) are -D
 * defines compiled into separate SPIR-V modules, listed by shaders/kernels.py and
 * picked by id from its generated tables (pvk_kernels.h); tuning knobs are
 * specialization constants. Both are chosen here from the device's pvk_caps and the
 * op set's tuning.
 *
 * Activations are f32 row-major buffers: row r of a [rows][n] buffer starts at
 * element r*n. Weights are pvk_tensors in their stored type (ggml block layout).
 * Ops return PHIVK_OK or the failure of creating their pipeline; recording errors are
 * sticky in the pvk_cmd and come back from pvk_cmd_submit. Callers put the
 * barriers between dependent ops (pvk_cmd_barrier); ops that run several
 * dispatches put their own internal barriers. */
#ifndef PVK_OPS_H
#define PVK_OPS_H

#include "pvk.h"

/* A weight matrix on the device: rows of `cols` elements in `type`, contiguous. */
typedef struct pvk_tensor {
    pvk_buf buf;
    pvk_type type;
    int64_t cols;             /* ne0: elements per row (the reduction dimension K) */
    int64_t rows;             /* ne1*ne2*ne3 (the output dimension N) */
    /* Kernels bind the rows in chunks that each fit one binding (caps.max_binding_bytes,
     * maxTexelBufferElements, < 2^31 elements): chunk i is rows [i*chunk_rows,
     * min(rows, (i+1)*chunk_rows)) at byte i*chunk_rows*row_bytes of buf, an offset
     * aligned for storage and texel bindings. One chunk unless the tensor is larger.
     * Bind a chunk with pvk_tensor_bind: kernels index elements from its start and
     * may read whole 16-byte words (the binding is rounded up to 16 bytes and
     * extends 16 bytes further, into padding or the next chunk). */
    int64_t chunk_rows;
    uint32_t n_chunks;
    VkBufferView *views;      /* per chunk, when the device reads weights through texel
                                 buffers (caps.texel and the type has a texel format);
                                 NULL: storage-buffer bindings */
    bool repacked;            /* stored repacked (Q4_0, Q8_0; pvk_tensor_write): in each
                                 chunk every block's quants, then the blocks' f16 scales;
                                 only the matrix kernels read it (get_rows refuses) */
} pvk_tensor;

/* Uploads a host tensor (its rows in stored type). The caller owns t: pvk_tensor_destroy. */
phivk_status pvk_tensor_create(pvk_dev *d, pvk_type type, int64_t cols, int64_t rows,
                             const void *data, pvk_tensor *t);
/* The same, repacked where repack is set (PHIVK_ERR_UNSUPPORTED for a type without a
 * repacked layout: pvk_ops_can_repack). Chunks and sizes are those of the GGUF layout. */
phivk_status pvk_tensor_create_layout(pvk_dev *d, pvk_type type, int64_t cols, int64_t rows,
                                    const void *data, bool repack, pvk_tensor *t);
/* Writes len bytes of the tensor's GGUF-layout image, starting at byte at of it, into
 * its layout: at and len whole blocks (PHIVK_ERR_INVALID otherwise, or past the end). */
phivk_status pvk_tensor_write(pvk_dev *d, const pvk_tensor *t, uint64_t at, const void *src, uint64_t len);
void pvk_tensor_destroy(pvk_dev *d, pvk_tensor *t);   /* accepts a zeroed pvk_tensor */
/* The binding of chunk i: its texel view, or its storage-buffer range. */
pvk_binding pvk_tensor_bind(const pvk_tensor *t, uint32_t chunk);
/* Rows in chunk i. */
uint32_t pvk_tensor_chunk_rows(const pvk_tensor *t, uint32_t chunk);

/* Whether the matrix and lookup kernels read weights of type t (shaders/dequant.glsl). */
bool pvk_ops_reads_weights(pvk_type t);

typedef struct pvk_ops pvk_ops;
/* Pipelines for every op on d, created on first use; owned by the caller. */
phivk_status pvk_ops_create(pvk_dev *d, pvk_ops **out);

/* Attention's knobs (shaders/attn.comp). */
typedef struct pvk_attn_tuning {
    uint32_t wg;              /* invocations per workgroup: rows x lanes (power of two) */
    uint32_t lanes;           /* most invocations sharing one row's head dimension
                                 (power of two; 1 when the device lacks subgroup shuffles) */
    uint32_t target_wgs;      /* about the workgroups that fill the device: split-K
                                 splits short batches over long KV ranges up to this */
    uint32_t splits;          /* 0: chosen from target_wgs and the KV length; else this
                                 many (capped by the scratch buffer) */
    bool fill_rows;           /* fewer lanes per row when the batch has more rows, so a
                                 workgroup holds up to wg rows: on lavapipe, where lanes
                                 are SIMD slots, one invocation per row of a prefill is
                                 5x faster than 8 lanes sharing its head dimension (and
                                 repeating its softmax); GPUs keep their lanes for
                                 register pressure and coalescing */
    uint32_t max_iter;        /* most keys one invocation may loop over (split-K splits
                                 further): llvmpipe ends an invocation's loops after
                                 65535 iterations in all, silently; 0: no limit */
} pvk_attn_tuning;

/* The knobs the op layer sets as specialization constants and dispatch shapes; every
 * op of an op set reads its set's. pvk_ops_create picks them from the device's caps;
 * tests and benchmarks may pass others (e.g. a discrete GPU's shapes on lavapipe).
 * All counts are powers of two. */
typedef struct pvk_ops_tuning {
    uint32_t row_wg;          /* invocations per row of norms, softmax and get_rows */
    uint32_t elt_wg;          /* invocations per workgroup of elementwise kernels and kv_store */
    uint32_t mv_wg;           /* matvec: invocations per workgroup */
    uint32_t mv_rows;         /* matvec: weight rows per workgroup */
    uint32_t mv_rows_blocked; /* matvec: weight rows per workgroup for block types
                                 (halved while rows x x-columns exceed 128) */
    uint32_t mv_max_m;        /* m <= this uses matvec (x columns in groups of up to
                                 mv_cols), larger m the tiled kernel; 0: always tiled */
    uint32_t mv_cols;         /* matvec: most x columns per workgroup (<= 8), each weight
                                 load used for all of them */
    uint32_t mv_rows_cols;    /* matvec at several columns: at least this many weight
                                 rows per workgroup (<= 64; block types within
                                 MV_MAX_ACC), as x's loads then weigh more; 0: as at m 1 */
    uint32_t mv_lane_rows;    /* matvec at m > 1 (and at m 1 where pvk_mm_choice.lanes):
                                 0, lanes split K; else each lane owns this many weight
                                 rows and reads x through a texel view (matvec.comp
                                 -DLANE_ROWS; caps.texel), in f32 */
    bool mv_int_dot;          /* matvec of block types reads int8 activations with
                                 integer dot products (needs caps.int_dot and
                                 caps.subgroup; pvk_ops_reads_q8) */
    uint32_t mm_bm, mm_bn, mm_bk; /* tiled matmul: tile of x rows, weight rows, K (mm_bk % 8 == 0) */
    uint32_t mm_tm, mm_tn;    /* tiled matmul: sub-tile per invocation */
    pvk_attn_tuning attn;
} pvk_ops_tuning;
pvk_ops_tuning pvk_ops_default_tuning(const pvk_caps *caps);
/* PHIVK_ERR_INVALID naming the knob when t does not fit the device. */
phivk_status pvk_ops_create_tuned(pvk_dev *d, const pvk_ops_tuning *t, pvk_ops **out);
void pvk_ops_destroy(pvk_ops *o);
pvk_dev *pvk_ops_dev(const pvk_ops *o);

/* The matrix-product variants for one weight type. Unless set (pvk_ops_tune
 * measures them), the tuning's: int8 where mv_int_dot, mv_rows_blocked or mv_rows
 * rows, fp16 where caps.fp16, cooperative matrices where pvk_ops_coopmat has a form. */
typedef struct pvk_mm_choice {
    bool int8;                /* matvec reads int8 activations (block types; caps.int_dot) */
    uint32_t rows;            /* matvec weight rows per workgroup (a power of two <= 64) */
    bool f16;                 /* the tiled kernel runs in fp16 (caps.fp16) */
    bool coopmat;             /* the tiled kernel runs on cooperative matrices (fp16
                                 tiles, f32 sums; pvk_ops_coopmat), else as f16 says */
    bool repack;              /* weights of the type are uploaded repacked (pvk_ops_repacks) */
    uint32_t wg;              /* matvec invocations per workgroup, so subgroups per row
                                 group (a power of two <= caps.max_wg_invocations); 0:
                                 the tuning's mv_wg */
    uint32_t lf;              /* matvec loads in flight: 32-weight units each invocation
                                 loads per iteration of the block paths (1, 2, 4); 0: 1 */
    bool lanes;               /* matvec at m 1 too has lanes owning rows (mv_lane_rows;
                                 f32 activations), as it always has at larger m */
} pvk_mm_choice;
/* The cooperative-matrix form the op set's tiled kernel can take (pvk_cm_choose on
 * the device's caps, where its tile fits the tuning and the device's limits), or
 * PVK_CM_COUNT: none. PHIVK_DISABLE_COOPMAT=1 turns it off (pvk_dev.c). */
pvk_cm pvk_ops_coopmat(const pvk_ops *o);
/* Whether a matmul of type t at m rows of x runs on cooperative matrices. */
bool pvk_ops_matmul_coopmat(const pvk_ops *o, pvk_type t, uint32_t m);
/* Whether type t has a repacked layout and its matrix kernels (Q4_0, Q8_0). */
bool pvk_ops_can_repack(pvk_type t);
/* Whether a weight matrix of type t is to be created repacked: PHIVK_REPACK=0 never,
 * =1 wherever the type can be, unset the type's choice (the tuner's measurement). */
bool pvk_ops_repacks(const pvk_ops *o, pvk_type t);
pvk_mm_choice pvk_ops_mm_choice(const pvk_ops *o, pvk_type t);
pvk_mm_choice pvk_ops_mm_default(const pvk_ops *o, pvk_type t);   /* the tuning's */
const pvk_ops_tuning *pvk_ops_get_tuning(const pvk_ops *o);
/* PHIVK_ERR_INVALID when the type has no matvec or the device cannot run c. */
phivk_status pvk_ops_set_mm_choice(pvk_ops *o, pvk_type t, pvk_mm_choice c);

/* Measures the variants of each weight type in types[0..n) (duplicates allowed) on
 * the device, on a zero matrix of 4096 rows of k columns: matvec with int8 or f32
 * activations and half, the tuning's and twice its rows per workgroup (m 1); the
 * tiled kernel in fp16 or f32, and on cooperative matrices where pvk_ops_coopmat has
 * a form (m 64, where the device has fp16 and m 64 is tiled).
 * Keeps the fastest (pvk_ops_set_mm_choice). Choices are kept per device and driver in
 * pvk_cache_path(d, "tuning", ".txt") (text, one line per type and k), so a later load on
 * the same device reads them instead of measuring. PHIVK_TUNE=0 keeps the
 * tuning's choices. progress (may be NULL) is called before the first and after each
 * type measured, with the count of types to measure. */
phivk_status pvk_ops_tune(pvk_ops *o, const pvk_type *types, int n, uint32_t k,
                        void (*progress)(void *user, int done, int total), void *user);
/* Whether a matmul of type t at m rows of x runs the tiled kernel with fp16 tiles
 * (in fp16 arithmetic, or on cooperative matrices), whose rounding is coarser than
 * the f32 path's (bounds in shaders/matmul.comp). */
bool pvk_ops_matmul_f16(const pvk_ops *o, pvk_type t, uint32_t m);

/* ---- elementwise and normalisation (shaders/eltwise.comp, norm.comp, act.comp, softmax.comp) */
phivk_status pvk_op_add(pvk_ops *o, pvk_cmd *c, const pvk_buf *a, const pvk_buf *b,
                      const pvk_buf *out, uint32_t n);                 /* out = a + b; out may alias */
phivk_status pvk_op_mul(pvk_ops *o, pvk_cmd *c, const pvk_buf *a, const pvk_buf *b,
                      const pvk_buf *out, uint32_t n);                 /* out = a * b */
/* out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w  (w may be NULL: no scale) */
phivk_status pvk_op_rmsnorm(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                          const pvk_buf *out, uint32_t rows, uint32_t n, float eps);
/* out[r] = (x[r] - mean) / sqrt(var + eps) * w + b  (w, b may be NULL) */
phivk_status pvk_op_layernorm(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                            const pvk_buf *b, const pvk_buf *out, uint32_t rows, uint32_t n,
                            float eps);
phivk_status pvk_op_softmax(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out,
                          uint32_t rows, uint32_t n);                  /* fp32 accumulation */
phivk_status pvk_op_silu(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out, uint32_t n);
phivk_status pvk_op_gelu(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out,
                       uint32_t n);                                    /* tanh approximation */
/* out[r][i] = silu(gu[r][i]) * gu[r][n_ff + i]  for gu = [rows][2*n_ff] (gate | up) */
phivk_status pvk_op_swiglu(pvk_ops *o, pvk_cmd *c, const pvk_buf *gu, const pvk_buf *out,
                         uint32_t rows, uint32_t n_ff);
/* Phi-3-small's GEGELU over the same [a | c] halves (docs/spec/phi3-small.md 14):
 * out[r][i] = a' sigmoid(1.702 a') (c' + 1), a' = min(a, limit), c' = clamp(c, +-limit);
 * limit 0: no clamp. */
phivk_status pvk_op_gegelu(pvk_ops *o, pvk_cmd *c, const pvk_buf *gu, const pvk_buf *out,
                         uint32_t rows, uint32_t n_ff, float limit);

/* ---- int8 activations for the integer-dot-product matvec (shaders/q8_store.glsl)
 * A norm or activation can also write its result as int8 blocks of 32 with a scale
 * each (ggml's Q8_1), which matvec then reads with 4x8-bit dot products: for rows of
 * n (n % 32 == 0), a buffer of pvk_q8_bytes(rows, n). The f32 result is then
 * optional (out NULL). The producer and the matmul must agree on the rows (m). */
uint64_t pvk_q8_bytes(uint32_t rows, uint32_t n);
/* Whether a matmul of a weight of type t at m rows reads int8 activations when it is
 * given them (pvk_op_matmul_in): block types on the matvec path with mv_int_dot. */
bool pvk_ops_reads_q8(const pvk_ops *o, pvk_type t, uint32_t m);   /* also per choice */
phivk_status pvk_op_rmsnorm_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                             const pvk_buf *out, const pvk_buf *q8, uint32_t rows, uint32_t n,
                             float eps);
phivk_status pvk_op_layernorm_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *w,
                               const pvk_buf *b, const pvk_buf *out, const pvk_buf *q8,
                               uint32_t rows, uint32_t n, float eps);
/* out and q8 = act(x) for rows of n (SWIGLU: x is [rows][2n], gate | up); COPY, GELU
 * and SWIGLU have int8 kernels (pvk_act: pvk_kernels.h). */
phivk_status pvk_op_act_q8(pvk_ops *o, pvk_cmd *c, pvk_act act, const pvk_buf *x,
                         const pvk_buf *out, const pvk_buf *q8, uint32_t rows, uint32_t n);
/* The same for GEGELU with its limit (x is [rows][2n]). */
phivk_status pvk_op_gegelu_q8(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_buf *out,
                            const pvk_buf *q8, uint32_t rows, uint32_t n, float limit);

/* ---- matrix products (shaders/matvec.comp for small m, matmul.comp tiled) */
/* y[i][j] (+)= sum_k x[i][k] * w[j][k] (+ bias[j]) for i < m, j < w->rows.
 * x is [m][w->cols], y is [m][w->rows]. accumulate: add to y (a fused residual).
 * Picks the matrix-vector kernel for small m and the tiled kernel otherwise; a
 * weight larger than caps.max_binding_bytes is split by rows across dispatches. */
phivk_status pvk_op_matmul(pvk_ops *o, pvk_cmd *c, const pvk_tensor *w, const pvk_buf *bias,
                         const pvk_buf *x, const pvk_buf *y, uint32_t m, bool accumulate);
/* The same into columns [y_col, y_col + w->rows) of a y whose rows are y_stride
 * floats (bias, when given, is indexed the same way: bias[y_col + j]; separate
 * projections write one fused output this way), with x in f32 and/or int8 (either
 * may be NULL): the int8 form when pvk_ops_reads_q8(w->type, m) and it is given,
 * else the f32 one (PHIVK_ERR_INVALID when that is missing). */
typedef struct pvk_input {
    const pvk_buf *f32, *q8;
    /* Or x = act(pre) (GELU, COPY: pre [m][cols]; SWIGLU: pre [m][2 cols], gate | up), made
     * into int8 by the matvec itself (no dispatch for the activation) where
     * pvk_ops_can_fuse says it can; f32 and q8 are then ignored. */
    const pvk_buf *pre;
    pvk_act act;
    /* Or, with norm set, x = that norm of pre (pre [m][cols], w and b [cols] each
     * optional), made into int8 the same way. */
    const struct pvk_norm_in {
        pvk_norm form;
        const pvk_buf *w, *b;
        float eps;
    } *norm;
} pvk_input;
/* Whether a weight of type t at m rows can take its input as an activation's or a
 * norm's (pvk_input pre): the integer-dot matvec path. */
bool pvk_ops_can_fuse(const pvk_ops *o, pvk_type t, uint32_t m);
/* What the op set fuses where it can: every workgroup encodes the blocks it reads,
 * which pays on GPUs (all by default) but not on CPU devices (none by default);
 * PHIVK_FUSION=none|act|all chooses. The caller fuses only where that is cheaper
 * than a dispatch (the session: decode). */
typedef enum pvk_fusion {
    PVK_FUSION_NONE,   /* every norm and activation a dispatch of its own */
    PVK_FUSION_ACT,    /* the activations and attention's int8 copy in the next projection */
    PVK_FUSION_ALL,    /* also the norms */
} pvk_fusion;
bool pvk_ops_fuses(const pvk_ops *o, pvk_fusion what, pvk_type t, uint32_t m);
phivk_status pvk_op_matmul_in(pvk_ops *o, pvk_cmd *c, const pvk_tensor *w, const pvk_buf *bias,
                            const pvk_input *x, const pvk_buf *y, uint32_t m, bool accumulate,
                            uint32_t y_stride, uint32_t y_col);

/* Creates and runs once, on tiny tensors in one submit, the matrix-product
 * pipelines for weights of types[0..n_types) (duplicates allowed) at m = 1 (decode)
 * and at a prompt chunk's m (matvec with 8 columns, or the tiled kernel where the
 * device switches to it), and the embedding lookup of table_type. A driver that
 * compiles at first dispatch (lavapipe's LLVM JIT: 0.04-7 s per pipeline when
 * cold) then does so at model load, not in the first token. Prompts of 2-7
 * tokens use matvec variants that are left to first use. */
phivk_status pvk_ops_warmup(pvk_ops *o, const pvk_type *types, int n_types, pvk_type table_type);

/* ---- model-level kernels (shaders/get_rows.comp, kv_store.comp with rope.glsl, attn.comp) */
/* out[i] = dequant(table row ids[i]) for i < n; ids is a u32 buffer. An id past the
 * table gives a zero row (callers check token ids on the host). */
phivk_status pvk_op_get_rows(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *ids,
                           const pvk_buf *out, uint32_t n);
/* The same times scale (one rounding: Phi-3-small's muP embedding multiplier). */
phivk_status pvk_op_get_rows_scaled(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *ids,
                                  const pvk_buf *out, uint32_t n, float scale);
/* out[i] += dequant(table row pos0 + i) for i < n: learned absolute positions.
 * PHIVK_ERR_INVALID when a row is past the table. */
phivk_status pvk_op_add_rows(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, uint32_t pos0, const pvk_buf *out,
                             uint32_t n);
/* out[0] += dequant(table row p) for one row, p read when the work runs from the
 * first uint of pos (a decode recorded once and replayed); a p past the table adds
 * nothing. */
phivk_status pvk_op_add_rows_at(pvk_ops *o, pvk_cmd *c, const pvk_tensor *table, const pvk_buf *pos,
                                const pvk_buf *out);

/* Rotary position embedding, applied by pvk_op_kv_store: K's heads (the cache row,
 * width / head_dim of them) as they are written, q's in place. */
typedef struct pvk_rope {
    uint32_t q_off, n_q_heads; /* q heads start at float q_off of each x row (n_q_heads may be 0) */
    uint32_t head_dim;
    uint32_t n_rot;           /* rotated dims per head (<= head_dim); the rest pass through */
    bool neox;                /* pairs (i, i + n_rot/2); else adjacent (2i, 2i+1) */
    float freq_base;
    float attn_factor;        /* multiplies cos and sin (LongRoPE mscale); 1 otherwise */
    const pvk_buf *factors;   /* n_rot/2 frequency divisors, or NULL */
} pvk_rope;

/* One layer's cache: K and V as [ctx][width] rows, each in its type (F16, or Q8_0 /
 * Q4_0 in ggml's block layout, width % 32 == 0), written quantized by kv_store and
 * dequantized by attention. A cache longer than one binding holds is split by
 * positions into chunks of chunk_ctx rows (the last may be shorter), each its own
 * buffer; attention and kv_store record one dispatch per chunk they touch.
 * pvk_kv_alloc makes one sized and viewed for the device; tests may also describe
 * buffers of their own (n_chunks 0 reads as 1, a chunk buffer holding at least
 * pvk_kv_bytes of its rows). */
typedef struct pvk_kv {
    pvk_buf *k, *v;           /* n_chunks buffers each: k[c] holds rows [c*chunk_ctx, ...) */
    uint32_t width;
    uint32_t ctx;
    pvk_type k_type, v_type;  /* PVK_F16, PVK_Q8_0 or PVK_Q4_0 */
    uint32_t n_chunks;
    uint32_t chunk_ctx;       /* rows per chunk (used when n_chunks > 1) */
    /* Optional uniform texel views of each chunk's k and v (pvk_kv_view), n_chunks
     * each. Attention reads through them when set: faster on lavapipe, and one
     * view spans up to maxTexelBufferElements x 8 bytes (1 GiB on lavapipe) where
     * a storage binding stops at caps.max_binding_bytes. */
    VkBufferView *k_views, *v_views;
} pvk_kv;
/* Bytes a chunk buffer of `rows` cache rows needs (rounded up to 8-byte texels). */
uint64_t pvk_kv_bytes(pvk_type t, uint32_t width, uint32_t rows);
/* The texel view attention reads a cache buffer through (first `bytes` of it), or
 * VK_NULL_HANDLE with PHIVK_OK when the device cannot (no texel buffers, or more
 * texels than maxTexelBufferElements): attention then binds storage ranges. */
phivk_status pvk_kv_view(pvk_dev *d, const pvk_buf *cache, uint64_t bytes, VkBufferView *out);
/* Allocates one layer's cache of ctx rows: chunks as long as one binding allows
 * (a texel view's reach when the device reads the cache through views, else
 * caps.max_binding_bytes; PHIVK_MAX_BINDING_BYTES lowers both) and their views.
 * Contents are undefined. The caller owns *out: pvk_kv_free. */
phivk_status pvk_kv_alloc(pvk_dev *d, pvk_type k_type, pvk_type v_type, uint32_t width,
                        uint32_t ctx, pvk_kv *out);
void pvk_kv_free(pvk_dev *d, pvk_kv *kv);   /* accepts a zeroed pvk_kv */
/* Writes m token rows of k (at float k_off of each x row) and v (at v_off) into the
 * cache at positions pos0..pos0+m-1 (PHIVK_ERR_CONTEXT_FULL past kv->ctx), quantizing
 * for Q8_0 / Q4_0 as model/quant.c does. The width must be even. With rope (may be
 * NULL), K is rotated as it is written (x keeps the unrotated k) and the q heads of
 * x are rotated in place: the QKV projection's output needs no other pass before
 * attention. Row i has position pos0 + i. */
phivk_status pvk_op_kv_store(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, uint32_t row_stride,
                           uint32_t k_off, uint32_t v_off, const pvk_kv *kv, uint32_t m,
                           uint32_t pos0, const pvk_rope *rope);
/* pvk_op_kv_store of one row whose position is read when the work runs, from the
 * first uint of pos (a decode recorded once and replayed per token): any position
 * of a cache of one chunk (else PHIVK_ERR_UNSUPPORTED); pos0 is only checked. */
phivk_status pvk_op_kv_store_at(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, uint32_t row_stride,
                              uint32_t k_off, uint32_t v_off, const pvk_kv *kv, const pvk_buf *pos,
                              uint32_t pos0, const pvk_rope *rope);

typedef struct pvk_attn {
    uint32_t q_stride, q_off; /* q of token i, head h at x[i*q_stride + q_off + h*head_dim] */
    uint32_t n_head, n_kv_head, head_dim;
    uint32_t m;               /* query tokens, positions pos0..pos0+m-1 */
    uint32_t pos0;
    uint32_t window;          /* sliding window (key visible iff qpos - kpos < window); 0 = none */
    float scale;              /* applied to q·k (1/sqrt(head_dim)) */
    /* Block-sparse attention (Phi-3-small, docs/spec/phi3-small.md section 11): with
     * bs_block > 0, query head h at qpos sees key kpos <= qpos iff
     * qpos/bs_block - kpos/bs_block < bs_local or (kpos/bs_block + h*bs_step + 1) %
     * bs_stride == 0. Each row skips the key blocks it does not see. 0: dense. */
    uint32_t bs_block, bs_local, bs_stride, bs_step;
    /* Split-K partials (un-normalised O, max, sum per KV slice) when the KV range is
     * split across workgroups or cache chunks: a buffer of
     * pvk_op_attention_scratch_bytes_kv, allocated once by the caller. NULL, or too
     * small for the split the op would pick: fewer splits (correct, slower on long
     * contexts); a query range over several chunks needs one split's worth
     * (PHIVK_ERR_INVALID otherwise). Must not alias x or out. */
    const pvk_buf *scratch;
    /* NULL: the query position is pos0. Else (a decode recorded once, replayed per
     * token) it is read at run time from this buffer's first uint; the grid is the
     * one pos0 gives (the caller re-records when that changes), the cache must be
     * one chunk. */
    const pvk_buf *pos;
} pvk_attn;
/* out[i][h*head_dim ..] = softmax(q·K^T * scale, causal (+window)) · V over cache
 * positions 0..pos0+i; q·k, max and sums in fp32. GQA: head h reads kv head
 * h / (n_head / n_kv_head). out is [m][n_head*head_dim].
 * head_dim must be a multiple of 4 and at most 256 (else PHIVK_ERR_UNSUPPORTED), as
 * must q_stride and q_off. With a split it records two dispatches and the barrier
 * between them. */
phivk_status pvk_op_attention(pvk_ops *o, pvk_cmd *c, const pvk_buf *x, const pvk_attn *a,
                            const pvk_kv *kv, const pvk_buf *out);
/* The grid pvk_op_attention records for a over kv, as one number (its split-K
 * slices times the cache chunks it reads): a decode recorded once with a->pos is
 * replayed while this stays the same. */
uint32_t pvk_op_attention_grid(const pvk_ops *o, const pvk_attn *a, const pvk_kv *kv);
/* Scratch bytes pvk_op_attention of o uses with a's shape (m, heads, head_dim,
 * window) for any KV length up to kv_len_max, with o's tuning; 0 when it never
 * splits (scratch may then be NULL). */
size_t pvk_op_attention_scratch_bytes(const pvk_ops *o, const pvk_attn *a, uint32_t kv_len_max);
/* The same for a cache laid out as kv (its chunks; its ctx is kv_len_max). */
size_t pvk_op_attention_scratch_bytes_kv(const pvk_ops *o, const pvk_attn *a, const pvk_kv *kv);

#endif
