#include "pvk_bench.h"

#include <stdlib.h>

#include "pvk_fmt.h"

/* The best wall time of a submit of 1 and of 1 + EXTRA operations: their difference
 * is EXTRA operations without the submit and wait, which on a discrete GPU cost
 * more than one pass over a few hundred MiB. */
enum { EXTRA = 8 };

/* Records the j-th operation of a submit (j > 0: after the previous one). */
typedef void (*record_fn)(pvk_cmd *c, const void *ctx, int j);

/* Seconds one operation takes, from reps timed rounds after an untimed one. */
static phivk_status time_op(pvk_cmd *c, int reps, record_fn record, const void *ctx, double *seconds) {
    double best[2] = {0, 0};
    phivk_status st;
    for (int i = 0; i <= reps; i++) {
        for (int k = 0; k < 2; k++) {
            if ((st = pvk_cmd_begin(c))) return st;
            for (int j = 0; j < 1 + k * EXTRA; j++) record(c, ctx, j);
            double t0 = pvk_now_s();
            if ((st = pvk_cmd_submit(c))) return st;
            double dt = pvk_now_s() - t0;
            if (i > 0 && (best[k] == 0 || dt < best[k])) best[k] = dt; /* i == 0 warms up */
        }
    }
    *seconds = (best[1] - best[0]) / EXTRA;
    if (*seconds <= 0) *seconds = best[1] / (1 + EXTRA); /* timer noise on a fast device */
    return PHIVK_OK;
}

typedef struct copy_ctx {
    const pvk_buf *src, *dst;
    uint64_t bytes;
} copy_ctx;

static void record_copy(pvk_cmd *c, const void *ctx, int j) {
    const copy_ctx *x = ctx;
    if (j) pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE); /* orders the copies' writes */
    pvk_cmd_copy(c, x->src, 0, x->dst, 0, x->bytes);
}

phivk_status pvk_bench_copy(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s) {
    *gb_per_s = 0;
    if (bytes < 4 || reps < 1)
        return pvk_fail(PHIVK_ERR_INVALID, "copy bandwidth: needs at least 4 bytes and 1 repetition");
    bytes &= ~(uint64_t)3;
    pvk_buf src = {0}, dst = {0};
    pvk_cmd *c = NULL;
    phivk_status st;
    double s = 0;
    if ((st = pvk_buf_create(d, bytes, PVK_MEM_DEVICE, &src)) ||
        (st = pvk_buf_create(d, bytes, PVK_MEM_DEVICE, &dst)) || (st = pvk_cmd_create(d, &c)))
        goto done;
    /* Both buffers written once, so no copy below pays for first-touch page faults. */
    if ((st = pvk_cmd_begin(c))) goto done;
    pvk_cmd_fill(c, &src, 0, bytes, 0x3f800000u);
    pvk_cmd_fill(c, &dst, 0, bytes, 0);
    if ((st = pvk_cmd_submit(c))) goto done;
    if (!(st = time_op(c, reps, record_copy, &(copy_ctx){&src, &dst, bytes}, &s)))
        *gb_per_s = (double)bytes / s * 1e-9;
done:
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &dst);
    pvk_buf_destroy(d, &src);
    return st;
}

/* ------------------------------------------------------------ read kernel */

/* Loads per invocation: 64 KiB per workgroup, so 512 MiB make 8192 workgroups, 2M
 * invocations, enough to fill any device (an H100 holds ~270k), and each
 * invocation's loop outweighs its start. */
#define READ_PER_INVOCATION 16u
#define READ_WG 256u

typedef struct read_ctx {
    pvk_pipe *p;
    pvk_binding b[2];
    uint32_t push[2];   /* n4, per: read_bw.comp's push constants */
    uint32_t groups;
    VkBufferView view;  /* the texel path's, owned */
    pvk_buf partial;    /* owned */
} read_ctx;

static void record_read(pvk_cmd *c, const void *ctx, int j) {
    const read_ctx *x = ctx;
    (void)j; /* the recorder orders each pass's rewrite of the partials */
    pvk_cmd_dispatch(c, x->p, x->b, x->push, x->groups, 1, 1);
}

static void read_free(pvk_dev *d, read_ctx *x) {
    if (x->view) pvk_view_destroy(d, x->view);
    pvk_buf_destroy(d, &x->partial);
}

/* Whether the texel path can read all of src. */
static bool read_texel_fits(const pvk_dev *d, const pvk_buf *src) {
    const pvk_caps *c = pvk_dev_caps(d);
    return c->texel && src->size / 16 <= c->max_texel_elems;
}

/* The read kernel's pipeline (texel or storage fetch), grid and partials for src;
 * read_free undoes it, also halfway. */
static phivk_status read_setup(pvk_dev *d, const pvk_buf *src, bool texel, read_ctx *x) {
    *x = (read_ctx){0};
    if (src->size < 16 || src->size % 16 || src->size / 16 > (1u << 31))
        return pvk_fail(PHIVK_ERR_INVALID, "read bandwidth: the buffer must hold 16 bytes to 32 GiB in "
                        "multiples of 16, not %llu bytes", (unsigned long long)src->size);
    if (texel && !read_texel_fits(d, src))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "read bandwidth: %s has no texel buffer of %llu bytes",
                        pvk_dev_caps(d)->name, (unsigned long long)src->size);
    static const uint32_t wg = READ_WG;
    pvk_kernel k = {pvk_kernels_read_bw[texel ? PVK_FETCH_TEX : PVK_FETCH_BUF], texel ? "ts" : "ss",
                    sizeof x->push, 1, &wg, 0};
    uint32_t n4 = (uint32_t)(src->size / 16), per = READ_WG * READ_PER_INVOCATION;
    uint32_t max_x = pvk_dev_caps(d)->max_wg_count[0];
    while ((n4 + per - 1) / per > max_x) per *= 2;   /* past 4 GiB on a 65535-wide grid */
    x->push[0] = n4;
    x->push[1] = per;
    x->groups = (n4 + per - 1) / per;
    phivk_status st = pvk_pipe_get(d, &k, &x->p);
    if (!st && texel) st = pvk_buf_view(d, src, 0, src->size, VK_FORMAT_R32G32B32A32_UINT, &x->view);
    if (!st) st = pvk_buf_create(d, 4ull * x->groups * READ_WG, PVK_MEM_DEVICE, &x->partial);
    if (st) return st;
    x->b[0] = texel ? pvk_bind_view(x->view, src, 0, src->size) : pvk_bind(src);
    x->b[1] = pvk_bind(&x->partial);
    return PHIVK_OK;
}

/* The sum of the partials the last pass left. */
static phivk_status read_partials(pvk_dev *d, const pvk_buf *partial, uint32_t *sum) {
    size_t n = partial->size / 4;
    uint32_t *h = malloc(partial->size);
    if (!h) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "read bandwidth: out of host memory");
    phivk_status st = pvk_buf_read(d, partial, 0, h, partial->size);
    *sum = 0;
    for (size_t i = 0; i < n && !st; i++) *sum += h[i];
    free(h);
    return st;
}

phivk_status pvk_bench_read_sum(pvk_dev *d, const pvk_buf *src, bool texel, uint32_t *sum) {
    *sum = 0;
    read_ctx x;
    pvk_cmd *c = NULL;
    phivk_status st;
    if (!(st = read_setup(d, src, texel, &x)) && !(st = pvk_cmd_create(d, &c)) && !(st = pvk_cmd_begin(c))) {
        record_read(c, &x, 0);
        if (!(st = pvk_cmd_submit(c))) st = read_partials(d, &x.partial, sum);
    }
    pvk_cmd_destroy(c);
    read_free(d, &x);
    return st;
}

phivk_status pvk_bench_read(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s) {
    *gb_per_s = 0;
    if (reps < 1) return pvk_fail(PHIVK_ERR_INVALID, "read bandwidth: needs at least 1 repetition");
    uint64_t max = pvk_dev_caps(d)->max_binding_bytes;
    if (bytes > max) bytes = max; /* one binding reads it */
    bytes &= ~(uint64_t)15;
    enum { WORD = 0x01234567u };   /* odd: its multiples wrap to 0 only at 2^32 words */
    pvk_buf src = {0};
    pvk_cmd *c = NULL;
    phivk_status st;
    if ((st = pvk_buf_create(d, bytes ? bytes : 16, PVK_MEM_DEVICE, &src)) || (st = pvk_cmd_create(d, &c)) ||
        (st = pvk_cmd_begin(c)))
        goto done;
    pvk_cmd_fill(c, &src, 0, src.size, WORD); /* also faults the pages in on CPU devices */
    if ((st = pvk_cmd_submit(c))) goto done;
    uint32_t want = WORD * (uint32_t)(src.size / 4);
    /* The faster of the two fetch paths: what a kernel can read at best. */
    for (int texel = 0; texel < 2 && !st; texel++) {
        if (texel && !read_texel_fits(d, &src)) break;
        read_ctx x;
        double s = 0;
        uint32_t sum = 0;
        if (!(st = read_setup(d, &src, texel, &x)) && !(st = time_op(c, reps, record_read, &x, &s)) &&
            !(st = read_partials(d, &x.partial, &sum)) && sum != want)
            /* The bandwidth counts only when every word was read. */
            st = pvk_fail(PHIVK_ERR_VULKAN, "read bandwidth: the kernel's sum %08x is not the buffer's %08x: "
                          "the device did not read every word", sum, want);
        read_free(d, &x);
        if (!st && (double)src.size / s * 1e-9 > *gb_per_s) *gb_per_s = (double)src.size / s * 1e-9;
    }
done:
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &src);
    if (st) *gb_per_s = 0;
    return st;
}
