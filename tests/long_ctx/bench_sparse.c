/* Prefill attention of Phi-3-small's block-sparse layers against the same layers
 * run dense, on the same shape: a prompt of T tokens (default 16384) prefilled in
 * chunks of 512 over an f16 cache, head_dim 128, 4 query heads per KV head, blocks
 * of 64 tokens, 16 local blocks, vertical stride 8 (docs/spec/phi3-small.md 11).
 * The block-sparse kernel skips the key blocks a row does not see; the dense run
 * is the same op with the pattern off. Prints the seconds of each, their ratio, and
 * the share of (query, key) pairs the pattern keeps, which bounds the speed-up.
 * Per-head work is the same whatever the head count, so a fraction of the model's
 * 32 heads (default 8, over 2 KV heads) gives the same ratio in less time. Then
 * the same for decode: DECODE_STEPS one-token steps at the last position.
 *   bench_sparse [tokens] [query heads] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model_impl.h"

#define HD 128
#define GROUP 4
#define CHUNK 512u
#define BLOCK 64u
#define LOCAL 16u
#define STRIDE 8u
#define DECODE_STEPS 16

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* The share of causal (query, key) pairs the pattern keeps, over heads 0..n_head-1
 * with head step 1 (as the real model: max(1, 8 / 32)). */
static double kept_share(uint32_t tokens, uint32_t n_head) {
    double kept = 0, all = 0;
    for (uint32_t h = 0; h < n_head; h++)
        for (uint32_t qb = 0; qb <= (tokens - 1) / BLOCK; qb++)
            for (uint32_t kb = 0; kb <= qb; kb++) {
                double pairs = kb < qb ? (double)BLOCK * BLOCK : BLOCK * (BLOCK + 1) / 2.0;
                all += pairs;
                if (qb - kb < LOCAL || (kb + h + 1) % STRIDE == 0) kept += pairs;
            }
    return kept / all;
}

int main(int argc, char **argv) {
    uint32_t tokens = argc > 1 ? (uint32_t)atoi(argv[1]) : 16384, n_head = argc > 2 ? (uint32_t)atoi(argv[2]) : 8;
    if (tokens < CHUNK || tokens % CHUNK || !n_head || n_head % GROUP) {
        fprintf(stderr, "bench_sparse [tokens: a multiple of %u] [query heads: a multiple of %d]\n", CHUNK, GROUP);
        return 1;
    }
    uint32_t n_kv = n_head / GROUP, q_stride = (n_head + 2 * n_kv) * HD;
    phivk_runtime *rt = phivk_runtime_create(NULL);
    if (!rt) {
        fprintf(stderr, "%s\n", phivk_last_error());
        return 1;
    }
    pvk_dev *d = rt->dev;
    pvk_ops *o = rt->ops;
    pvk_kv kv = {0};
    pvk_buf x = {0}, out = {0}, scratch = {0};
    pvk_cmd *c = NULL;
    pvk_attn a = {.q_stride = q_stride, .n_head = n_head, .n_kv_head = n_kv, .head_dim = HD, .m = CHUNK,
                  .scale = 1.0f / HD};
    size_t sbytes = 0;
    phivk_status st = pvk_kv_alloc(d, PVK_F16, PVK_F16, n_kv * HD, tokens, &kv);
    if (!st) sbytes = pvk_op_attention_scratch_bytes_kv(o, &a, &kv);
    if (!st) st = pvk_buf_create(d, 4ull * CHUNK * q_stride, PVK_MEM_DEVICE, &x);
    if (!st) st = pvk_buf_create(d, 4ull * CHUNK * n_head * HD, PVK_MEM_DEVICE, &out);
    if (!st && sbytes) st = pvk_buf_create(d, sbytes, PVK_MEM_DEVICE, &scratch);
    if (!st) st = pvk_cmd_create(d, &c);
    /* zeros: attention's cost does not depend on the values */
    if (!st) st = pvk_cmd_begin(c);
    if (!st) {
        for (uint32_t i = 0; i < kv.n_chunks; i++) {
            pvk_cmd_fill(c, &kv.k[i], 0, kv.k[i].size, 0);
            pvk_cmd_fill(c, &kv.v[i], 0, kv.v[i].size, 0);
        }
        pvk_cmd_fill(c, &x, 0, x.size, 0);
        pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE);
        st = pvk_cmd_submit(c);
    }
    a.scratch = sbytes ? &scratch : NULL;
    printf("device: %s\n", pvk_dev_caps(d)->name);
    printf("prefill attention, %u tokens in chunks of %u, %u query heads / %u KV heads, head_dim %d, f16 cache\n",
           tokens, CHUNK, n_head, n_kv, HD);
    /* Each chunk runs block-sparse, then dense, so that a machine whose load changes
     * (a shared VM) weighs on both alike; chunk 0 first compiles the pipeline. */
    double secs[2] = {0, 0};
    for (uint32_t pos = 0, warm = 1; pos < tokens && !st; pos += warm ? 0 : CHUNK, warm = 0)
        for (int sparse = 1; sparse >= 0 && !st; sparse--) {
            a.bs_block = sparse ? BLOCK : 0;
            a.bs_local = sparse ? LOCAL : 0;
            a.bs_stride = sparse ? STRIDE : 0;
            a.bs_step = sparse ? 1 : 0;
            a.pos0 = pos;
            double t0 = now();
            if (!(st = pvk_cmd_begin(c)) && !(st = pvk_op_attention(o, c, &x, &a, &kv, &out))) st = pvk_cmd_submit(c);
            if (!warm) secs[sparse] += now() - t0;
        }
    if (!st) printf("  %-12s %8.2f s\n  %-12s %8.2f s\n", "block-sparse", secs[1], "dense", secs[0]);
    if (!st) {
        double share = kept_share(tokens, n_head);
        printf("  dense / block-sparse: %.2fx; the pattern keeps %.1f%% of the causal (query, key) pairs "
               "(at most %.2fx)\n", secs[0] / secs[1], 100 * share, 1 / share);
    }
    /* decode: one query row per head at the last position, sparse then dense per step */
    double dsecs[2] = {0, 0};
    a.m = 1;
    a.pos0 = tokens - 1;
    for (int step = -1; step < DECODE_STEPS && !st; step++)
        for (int sparse = 1; sparse >= 0 && !st; sparse--) {
            a.bs_block = sparse ? BLOCK : 0;
            a.bs_local = sparse ? LOCAL : 0;
            a.bs_stride = sparse ? STRIDE : 0;
            a.bs_step = sparse ? 1 : 0;
            double t0 = now();
            if (!(st = pvk_cmd_begin(c)) && !(st = pvk_op_attention(o, c, &x, &a, &kv, &out))) st = pvk_cmd_submit(c);
            if (step >= 0) dsecs[sparse] += now() - t0;   /* step -1 compiles the pipelines */
        }
    if (!st) {
        printf("decode at position %u, %d steps: block-sparse %.2f ms, dense %.2f ms per step (%.2fx)\n", tokens - 1,
               DECODE_STEPS, 1e3 * dsecs[1] / DECODE_STEPS, 1e3 * dsecs[0] / DECODE_STEPS, dsecs[0] / dsecs[1]);
    } else {
        fprintf(stderr, "%s\n", pvk_errmsg());
    }
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &x);
    pvk_buf_destroy(d, &out);
    pvk_buf_destroy(d, &scratch);
    pvk_kv_free(d, &kv);
    phivk_runtime_free(rt);
    return st ? 1 : 0;
}
