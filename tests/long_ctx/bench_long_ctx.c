/* Decode speed at depth: tokens/s of one-token decode steps at positions 0, 4K,
 * 32K and 128K of a 131072-token session, for f16, q8_0 and q4_0 KV caches, on a
 * synthetic model (shape "tiny" or "150m", F16 weights, no sliding window), next
 * to the bytes each step must read (weights + the cache up to that depth).
 * The cache is zero-filled and the session moved to each depth (session_seek):
 * attention reads every cached row whatever it holds, so the timing is that of a
 * real context of that length, without prefilling 128K tokens. Last, each
 * quantized cache's speed over f16's at each depth (best repetitions), and whether
 * it is at least as fast (issue 13 item 7: on the H200 Q4_0 was slower).
 *   bench_long_ctx [tiny|150m] [steps per depth] [repetitions] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_impl.h"
#include "session_kv.h"
#include "synth.h"

#define CTX 131072

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Zeroes every chunk of every layer's K and V. */
static bool zero_cache(phivk_runtime *rt, phivk_session *s, int32_t n_layer) {
    pvk_cmd *c = NULL;
    bool ok = !pvk_cmd_create(rt->dev, &c) && !pvk_cmd_begin(c);
    for (int32_t l = 0; ok && l < n_layer; l++) {
        const pvk_kv *kv = session_kv_layer(s, l);
        for (uint32_t i = 0; i < kv->n_chunks; i++) {
            pvk_cmd_fill(c, &kv->k[i], 0, kv->k[i].size, 0);
            pvk_cmd_fill(c, &kv->v[i], 0, kv->v[i].size, 0);
        }
    }
    pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE);
    ok = ok && !pvk_cmd_submit(c);
    pvk_cmd_destroy(c);
    return ok;
}

int main(int argc, char **argv) {
    const char *shape = argc > 1 ? argv[1] : "tiny";
    int steps = argc > 2 ? atoi(argv[2]) : 8, reps = argc > 3 ? atoi(argv[3]) : 3;
    synth_params sp;
    if (synth_shape_by_name(shape, &sp)) {
        fprintf(stderr, "%s\n", pvk_errmsg());
        return 1;
    }
    sp.wtype = PVK_F16;
    sp.n_ctx = CTX;
    sp.sliding_window = 0;
    sp.repeat_weights = true;
    void *image = NULL;
    size_t size = 0;
    phivk_runtime *rt = phivk_runtime_create(NULL);
    if (!rt || synth_build(&sp, &image, &size)) {
        fprintf(stderr, "setup: %s\n", phivk_last_error());
        return 1;
    }
    phivk_model *m = phivk_model_load_memory(rt, image, size, shape, NULL);
    if (!m) {
        fprintf(stderr, "load: %s\n", phivk_last_error());
        return 1;
    }
    const arch_hparams *hp = &m->hp;
    int32_t *ids = calloc(CTX, sizeof *ids);
    enum { N_TYPES = 3, N_DEPTHS = 4 };
    const int32_t depths[N_DEPTHS] = {0, 4096, 32768, CTX - 1 - 64};
    const phivk_kv_type types[N_TYPES] = {PHIVK_KV_F16, PHIVK_KV_Q8_0, PHIVK_KV_Q4_0};
    const char *const names[N_TYPES] = {"f16", "q8_0", "q4_0"};
    const pvk_type ptypes[N_TYPES] = {PVK_F16, PVK_Q8_0, PVK_Q4_0};
    double best[N_TYPES][N_DEPTHS] = {{0}};   /* tokens/s, the best repetition */
    printf("%s: %.1fM parameters, weights %.1f MiB (f16), %d layers, KV width %d, device %s\n", shape,
           synth_param_count(&sp) / 1e6, phivk_model_weight_bytes(m) / 1048576.0, hp->n_layer,
           hp->n_embd_kv, pvk_dev_caps(rt->dev)->name);
    printf("%-5s %8s %12s %14s %14s   (median of %d steps; per repetition)\n", "kv", "depth", "MiB/token",
           "cache share", "tokens/s", steps);
    for (int t = 0; t < N_TYPES; t++) {
        phivk_session_params p = phivk_session_default_params();
        p.ctx = CTX;
        p.k_type = p.v_type = types[t];
        p.no_swa = true;
        phivk_session *s = phivk_session_create(m, &p);
        if (!s || !zero_cache(rt, s, hp->n_layer)) {
            fprintf(stderr, "session: %s\n", phivk_last_error());
            return 1;
        }
        double kv_per_token = 2.0 * pvk_type_row_bytes(ptypes[t], hp->n_embd_kv) * hp->n_layer;
        /* Warm-up: every pipeline compiled before timing. */
        float *logits = malloc(sizeof *logits * hp->n_vocab);
        session_seek(s, ids, 0);
        phivk_decode(s, ids, 1, logits, false);
        for (size_t d = 0; d < N_DEPTHS; d++) {
            double bytes = (double)phivk_model_weight_bytes(m) + kv_per_token * depths[d];
            printf("%-5s %8d %12.1f %13.0f%% ", names[t], depths[d], bytes / 1048576.0,
                   100.0 * kv_per_token * depths[d] / bytes);
            for (int r = 0; r < reps; r++) {
                double *dt = malloc(sizeof *dt * steps);
                session_seek(s, ids, depths[d]);
                for (int i = 0; i < steps; i++) {
                    double t0 = now();
                    if (phivk_decode(s, ids, 1, logits, false)) {
                        fprintf(stderr, "decode: %s\n", phivk_last_error());
                        return 1;
                    }
                    dt[i] = now() - t0;
                }
                qsort(dt, steps, sizeof *dt, cmp_double);
                printf(" %7.1f", 1.0 / dt[steps / 2]);
                if (1.0 / dt[steps / 2] > best[t][d]) best[t][d] = 1.0 / dt[steps / 2];
                free(dt);
            }
            printf("\n");
            fflush(stdout);
        }
        free(logits);
        phivk_session_free(s);
    }
    printf("quantized cache vs f16 at equal depth (tokens/s ratio, best repetitions):\n");
    for (int t = 1; t < N_TYPES; t++)
        for (size_t d = 0; d < N_DEPTHS; d++)
            printf("  %-5s depth %6d: %.2fx %s\n", names[t], depths[d], best[t][d] / best[0][d],
                   best[t][d] >= best[0][d] ? "(at least as fast)" : "(SLOWER than f16)");
    phivk_model_free(m);
    free(image);
    free(ids);
    phivk_runtime_free(rt);
    return 0;
}
