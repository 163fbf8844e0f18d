/* Kernel throughput on the current device (PHIVK_DEVICE selects it): decode matvec
 * in GB/s of weights streamed and prefill matmul in GFLOP/s, for weights of
 * 3072x3072 and 8192x3072 (Phi-3-mini's attention and MLP shapes) and 32064x768,
 * 6144x768 and 768x3072 (a 150M model's output head and MLP: short rows) in each type
 * asked for, beside a plain buffer copy measured in the same run. Each figure is the
 * median over repetitions of the wall time around one submit: 20 matvecs back to
 * back (barriers between them, amortising the submit), one matmul, one 256 MiB
 * copy. The first submit of each kernel (pipeline JIT) is not counted. Not a test:
 * speed is never asserted.
 * usage: bench_kernels [repetitions (default 5)] [matmul m (default 512; 0: none)]
 *                      [types (default f16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pvk_ops.h"
#include "ref.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of every thread of the process (lavapipe's workers included): on a
 * shared, loaded machine a steadier A/B measure than wall time. */
static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench {
    pvk_dev *d;
    pvk_ops *o;
    pvk_cmd *c;
    int reps;
    double copy_rate;         /* bytes read per second by the copy (the bandwidth bound) */
} bench;

typedef struct job {
    enum { JOB_COPY, JOB_MATMUL } kind;
    const pvk_buf *src, *dst;       /* copy */
    const pvk_tensor *w;            /* matmul */
    const pvk_buf *x, *y;
    uint32_t m;
} job;

static phivk_status record(bench *b, const job *j, int per_submit) {
    phivk_status st = pvk_cmd_begin(b->c);
    for (int i = 0; !st && i < per_submit; i++) {
        if (i) pvk_cmd_barrier(b->c, PVK_COMPUTE_TO_COMPUTE);
        if (j->kind == JOB_COPY) pvk_cmd_copy(b->c, j->src, 0, j->dst, 0, j->src->size);
        else st = pvk_op_matmul(b->o, b->c, j->w, NULL, j->x, j->y, j->m, false);
    }
    return st ? st : pvk_cmd_submit(b->c);
}

/* Seconds per operation over the repetitions: median, fastest and slowest wall
 * time, and the median CPU time. */
typedef struct timing {
    double med, min, max, cpu;
} timing;

/* med < 0 on failure (message printed). */
static timing measure(bench *b, const job *j, int per_submit) {
    double *t = malloc(sizeof(double) * 2 * b->reps), *cpu = t + b->reps;
    timing r = {-1, -1, -1, -1};
    if (!t || record(b, j, 1)) goto out;   /* warm-up: the pipeline's JIT runs here */
    for (int i = 0; i < b->reps; i++) {
        double t0 = now(), c0 = cpu_now();
        if (record(b, j, per_submit)) goto out;
        t[i] = (now() - t0) / per_submit;
        cpu[i] = (cpu_now() - c0) / per_submit;
    }
    qsort(t, b->reps, sizeof *t, cmp_double);
    qsort(cpu, b->reps, sizeof *cpu, cmp_double);
    r = (timing){t[b->reps / 2], t[0], t[b->reps - 1], cpu[b->reps / 2]};
out:
    if (r.med < 0) fprintf(stderr, "bench: %s\n", pvk_errmsg());
    free(t);
    return r;
}

static int bench_weight(bench *b, pvk_type t, uint32_t rows, uint32_t cols, uint32_t m) {
    size_t n = (size_t)rows * cols, bytes = pvk_type_row_bytes(t, cols) * rows;
    uint32_t xm = m > 1 ? m : 1;
    void *h = malloc(bytes);
    float *v = malloc(n * 4), *xs = calloc((size_t)xm * cols, 4);
    pvk_tensor w = {0};
    pvk_buf x = {0}, y = {0};
    int rc = 1;
    ref_rng rng = {1};
    if (!h || !v || !xs) goto out;
    ref_weights(&rng, t, rows, cols, h, v);
    ref_fill(&rng, xs, (size_t)xm * cols, -1, 1);
    if (pvk_tensor_create(b->d, t, cols, rows, h, &w) ||
        pvk_buf_create(b->d, (size_t)xm * cols * 4, PVK_MEM_DEVICE, &x) ||
        pvk_buf_write(b->d, &x, 0, xs, (size_t)xm * cols * 4) ||
        pvk_buf_create(b->d, (size_t)xm * rows * 4, PVK_MEM_DEVICE, &y)) {
        fprintf(stderr, "bench: %s\n", pvk_errmsg());
        goto out;
    }
    job mv = {.kind = JOB_MATMUL, .w = &w, .x = &x, .y = &y, .m = 1};
    job mm = mv;
    mm.m = m;
    timing t_mv = measure(b, &mv, 20), t_mm = {0, 0, 0, 0};
    if (m) t_mm = measure(b, &mm, 1);
    if (t_mv.med < 0 || t_mm.med < 0) goto out;
    printf("%-4s %5u x %-4u matvec m=1: %8.3f ms (cpu %7.3f ms)  %6.2f GB/s of weights (%5.2f-%5.2f) %5.1f%% of copy",
           pvk_type_get(t)->name, rows, cols, t_mv.med * 1e3, t_mv.cpu * 1e3, bytes / t_mv.med * 1e-9,
           bytes / t_mv.max * 1e-9, bytes / t_mv.min * 1e-9, 100 * bytes / t_mv.med / b->copy_rate);
    if (m)
        printf(" | matmul m=%u: %9.2f ms (fastest %.2f, cpu %8.2f ms)  %8.2f GFLOP/s", m, t_mm.med * 1e3,
               t_mm.min * 1e3, t_mm.cpu * 1e3, 2.0 * m * n / t_mm.med * 1e-9);
    printf("\n");
    rc = 0;
out:
    pvk_tensor_destroy(b->d, &w);
    pvk_buf_destroy(b->d, &x);
    pvk_buf_destroy(b->d, &y);
    free(h), free(v), free(xs);
    return rc;
}

static int bench_copy(bench *b, size_t bytes) {
    pvk_buf src = {0}, dst = {0};
    int rc = 1;
    if (pvk_buf_create(b->d, bytes, PVK_MEM_DEVICE, &src) || pvk_buf_create(b->d, bytes, PVK_MEM_DEVICE, &dst)) {
        fprintf(stderr, "bench: %s\n", pvk_errmsg());
        goto out;
    }
    phivk_status st = pvk_cmd_begin(b->c);
    if (!st) {
        pvk_cmd_fill(b->c, &src, 0, bytes, 0x3c003c00u);
        st = pvk_cmd_submit(b->c);
    }
    job j = {.kind = JOB_COPY, .src = &src, .dst = &dst};
    timing t = {-1, -1, -1, -1};
    if (!st) t = measure(b, &j, 1);   /* one copy per submit: no copy-to-copy hazard to order */
    if (t.med < 0) goto out;
    printf("copy %zu MiB: %.3f ms  %.2f GB/s copied (%.2f-%.2f; %.2f GB/s read + written)\n", bytes >> 20,
           t.med * 1e3, bytes / t.med * 1e-9, bytes / t.max * 1e-9, bytes / t.min * 1e-9, 2.0 * bytes / t.med * 1e-9);
    b->copy_rate = bytes / t.med;
    rc = 0;
out:
    pvk_buf_destroy(b->d, &src);
    pvk_buf_destroy(b->d, &dst);
    return rc;
}

int main(int argc, char **argv) {
    bench b = {.reps = argc > 1 ? atoi(argv[1]) : 5};
    int m = argc > 2 ? atoi(argv[2]) : 512;
    static const char *const defaults[] = {"f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"};
    const char *const *names = argc > 3 ? (const char *const *)argv + 3 : defaults;
    int n_types = argc > 3 ? argc - 3 : (int)(sizeof defaults / sizeof defaults[0]);
    pvk_type types[PVK_TYPE_COUNT];
    if (b.reps < 1 || m < 0 || n_types > PVK_TYPE_COUNT) {
        fprintf(stderr, "usage: bench_kernels [repetitions >= 1] [matmul m >= 0] [types...]\n");
        return 2;
    }
    for (int i = 0; i < n_types; i++) {
        int t = 0;
        while (t < PVK_TYPE_COUNT && !(pvk_type_get(t)->name && !strcmp(pvk_type_get(t)->name, names[i]))) t++;
        if (t == PVK_TYPE_COUNT || !pvk_ops_reads_weights(t)) {
            fprintf(stderr, "bench: no matrix kernel for type '%s'\n", names[i]);
            return 2;
        }
        types[i] = (pvk_type)t;
    }
    pvk_dev_params p = pvk_dev_default_params();
    if (pvk_dev_create(&p, &b.d) || pvk_ops_create(b.d, &b.o) || pvk_cmd_create(b.d, &b.c)) {
        fprintf(stderr, "bench: %s\n", pvk_errmsg());
        pvk_ops_destroy(b.o);
        pvk_dev_destroy(b.d);
        return 1;
    }
    const pvk_caps *c = pvk_dev_caps(b.d);
    printf("device: %s (%s); texel %d, subgroup %d (size %u); median of %d\n", c->name, c->driver, c->texel,
           c->subgroup, c->subgroup_size, b.reps);
    int rc = bench_copy(&b, (size_t)256 << 20);
    static const uint32_t shapes[][2] = {{3072, 3072}, {8192, 3072}, {32064, 768}, {6144, 768}, {768, 3072}};
    for (int i = 0; !rc && i < n_types; i++)
        for (size_t s = 0; !rc && s < sizeof shapes / sizeof shapes[0]; s++)
            rc = bench_weight(&b, types[i], shapes[s][0], shapes[s][1], (uint32_t)m);
    pvk_cmd_destroy(b.c);
    pvk_ops_destroy(b.o);
    pvk_dev_destroy(b.d);
    return rc;
}
