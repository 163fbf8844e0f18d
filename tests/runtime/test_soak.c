/* A long session does not grow: 10000 decode steps of a tiny model with the cache
 * cut back at random (as chat turns and regenerations do) keep the device memory
 * phivk holds exactly where it was, the bytes malloc has handed out (every thread,
 * the driver's included) within a margin that a leak of 26 bytes per step would
 * exceed, and the resident memory within 2 MiB. Resident memory alone would miss
 * a leak: malloc serves it from pages freed during the warm-up. */
#define HARNESS_MAIN
#include "harness.h"

#include <malloc.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gpu.h"
#include "model_impl.h"
#include "synth.h"

enum { CTX = 256, STEPS = 10000 };
/* glibc keeps freed memory in its arenas, so resident memory moves by pages
 * between two checks of a healthy process. */
#define RSS_MARGIN (2u << 20)
/* What a healthy run's malloc'd bytes move by (the driver's and the validation
 * layer's bookkeeping): 256 KiB over 10000 steps is 26 bytes a step. */
#define HEAP_MARGIN (256u << 10)

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out and not had back, in every arena and mmap'd. */
static uint64_t heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

TEST(ten_thousand_decode_steps_with_truncations_keep_host_and_device_memory_flat) {
    synth_params p = synth_default_params();
    p.wtype = PVK_F16;
    p.n_ctx = CTX;
    void *gguf;
    size_t size;
    REQUIRE(synth_build(&p, &gguf, &size) == PHIVK_OK, "fixture: %s", pvk_errmsg());
    phivk_runtime *rt = phivk_runtime_create(NULL);
    phivk_model *m = rt ? phivk_model_load_memory(rt, gguf, size, "tiny", NULL) : NULL;
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = CTX;
    phivk_session *s = m ? phivk_session_create(m, &sp) : NULL;
    int32_t n_vocab = m ? phivk_model_n_vocab(m) : 0;
    float *logits = malloc(sizeof *logits * (size_t)(n_vocab ? n_vocab : 1));
    if (!s || !logits) {
        CHECK(false, "setup: %s", phivk_last_error());
        goto out;
    }

    /* Warm-up: one pass over the whole context, so every recording (per bucket
     * of cache length) and every pipeline exists before the baseline. */
    int32_t tok = 1;
    phivk_status st = PHIVK_OK;
    for (int32_t i = 0; i < CTX && !st; i++) st = phivk_decode(s, &tok, 1, logits, false);
    REQUIRE(st == PHIVK_OK, "warm-up: %s", phivk_last_error());
    phivk_session_truncate(s, 0);
    uint64_t alloc0, used0, rss0 = rss_bytes(), heap0 = heap_bytes();
    pvk_mem_stats(rt->dev, &alloc0, &used0);

    uint64_t seed = 7;
    int steps = 0, cuts = 0;
    double t0 = now_s();
    for (; steps < STEPS; steps++) {
        int32_t pos = phivk_session_pos(s);
        /* A full cache, or now and then anyway: cut back to a random point. */
        if (pos == CTX || (pos > 0 && lcg(&seed) % 64 == 0)) {
            int32_t to = (int32_t)(lcg(&seed) % (uint64_t)pos);
            if ((st = phivk_session_truncate(s, to))) break;
            cuts++;
        }
        tok = (int32_t)(3 + lcg(&seed) % (uint64_t)(n_vocab - 3));
        if ((st = phivk_decode(s, &tok, 1, logits, false))) break;
    }
    double secs = now_s() - t0;
    CHECK(st == PHIVK_OK && steps == STEPS, "%d of %d steps ran: %s", steps, STEPS,
          st ? phivk_last_error() : "");
    uint64_t alloc1, used1, rss1 = rss_bytes(), heap1 = heap_bytes();
    pvk_mem_stats(rt->dev, &alloc1, &used1);
    printf("    %d steps, %d truncations, %.1f s; device allocated %llu -> %llu, used %llu -> %llu bytes; "
           "malloc'd %llu -> %llu bytes; RSS %.1f -> %.1f MiB\n", steps, cuts, secs, (unsigned long long)alloc0,
           (unsigned long long)alloc1, (unsigned long long)used0, (unsigned long long)used1,
           (unsigned long long)heap0, (unsigned long long)heap1, rss0 / 1048576.0, rss1 / 1048576.0);
    /* One step in 64 cuts, plus every full cache: about 160 with this seed. */
    CHECK(cuts >= 100, "%d truncations, want at least 100", cuts);
    /* Decoding allocates nothing on the device: any growth is a leak. */
    CHECK(alloc1 == alloc0 && used1 == used0, "device memory moved: allocated %llu -> %llu, used %llu -> %llu",
          (unsigned long long)alloc0, (unsigned long long)alloc1, (unsigned long long)used0,
          (unsigned long long)used1);
    CHECK(heap1 <= heap0 + HEAP_MARGIN, "malloc'd bytes grew %.1f KiB, more than the %.0f KiB margin",
          ((double)heap1 - (double)heap0) / 1024, HEAP_MARGIN / 1024.0);
    CHECK(rss1 <= rss0 + RSS_MARGIN, "resident memory grew %.2f MiB, more than the %.0f MiB margin",
          (rss1 - rss0) / 1048576.0, RSS_MARGIN / 1048576.0);
    uint64_t seen = 0;
    const char *v = test_gpu_new_messages(rt->dev, &seen);
    CHECK(!v, "validation: %s", v);
out:
    free(logits);
    phivk_session_free(s);
    phivk_model_free(m);
    phivk_runtime_free(rt);
    free(gguf);
}
