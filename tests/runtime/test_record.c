/* The recorder on the default device (lavapipe here) with validation on, whose
 * synchronization checks report any barrier the recorder leaves out: the rules
 * that place barriers from the dispatches' dependencies (PHIVK_BARRIERS), the
 * per-recording counters, and the read-bandwidth kernel's checksum. */
#define HARNESS_MAIN
#include <stdint.h>

#include "gpu.h"
#include "harness.h"
#include "pvk_bench.h"
#include "pvk_ops.h"

/* Four buffers of N floats and the mul kernel (out = a * b; a and b read-only,
 * out written: the shader's qualifiers are what the recorder goes by). */
enum { N = 256, WG = 64 };
typedef struct rig {
    pvk_dev *d;
    pvk_buf buf[4];
    pvk_pipe *mul;
    pvk_cmd *c;
} rig;

static bool rig_open(rig *r, const char *barriers) {
    *r = (rig){0};
    if (!(r->d = test_gpu())) return false;
    static const uint32_t wg = WG;
    pvk_kernel k = {.id = PVK_KERNEL_MUL, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg};
    if (barriers) setenv("PHIVK_BARRIERS", barriers, 1);
    phivk_status st = pvk_cmd_create(r->d, &r->c);
    unsetenv("PHIVK_BARRIERS");
    for (int i = 0; i < 4 && !st; i++) st = pvk_buf_create(r->d, N * 4, PVK_MEM_DEVICE, &r->buf[i]);
    if (!st) st = pvk_pipe_get(r->d, &k, &r->mul);
    if (st) printf("    setup: %s\n", pvk_errmsg());
    return !st;
}

static void rig_close(rig *r) {
    pvk_cmd_destroy(r->c);
    for (int i = 0; i < 4; i++) pvk_buf_destroy(r->d, &r->buf[i]);
}

/* out = a * b over N floats of the given bindings. */
static void mul(rig *r, pvk_binding a, pvk_binding b, pvk_binding out) {
    static const uint32_t push[2] = {N, N};
    pvk_binding bd[3] = {a, b, out};
    pvk_cmd_dispatch(r->c, r->mul, bd, push, N / WG, 1, 1);
}

static pvk_binding whole(rig *r, int i) { return pvk_bind(&r->buf[i]); }

/* Compute barriers of the recording: submit adds one for the host. */
static uint32_t compute_barriers(rig *r) {
    phivk_status st = pvk_cmd_submit(r->c);
    CHECK(st == PHIVK_OK, "submit: %s", pvk_errmsg());
    pvk_cmd_stats s = pvk_cmd_last_stats(r->c);
    return s.barriers - 1;
}

#define BEGIN(r) REQUIRE(pvk_cmd_begin((r)->c) == PHIVK_OK, "begin: %s", pvk_errmsg())

TEST(a_dispatch_reading_what_the_previous_wrote_gets_a_barrier) {
    rig r;
    REQUIRE(rig_open(&r, NULL), "rig");
    BEGIN(&r);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
    mul(&r, whole(&r, 1), whole(&r, 0), whole(&r, 2));   /* reads 1: read after write */
    CHECK(compute_barriers(&r) == 1, "one barrier for RAW");
    pvk_cmd_stats s = pvk_cmd_last_stats(r.c);
    CHECK(s.dispatches == 2 && s.host_s > 0 && s.wait_s >= 0, "counters: %u dispatches, host %g s", s.dispatches,
          s.host_s);
    rig_close(&r);
}

TEST(dispatches_that_read_one_input_and_write_apart_run_without_a_barrier) {
    rig r;
    REQUIRE(rig_open(&r, NULL), "rig");
    BEGIN(&r);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 2));   /* same input, other output */
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 3));
    CHECK(compute_barriers(&r) == 0, "reads after reads need no barrier");
    rig_close(&r);
}

TEST(a_dispatch_overwriting_what_an_earlier_wrote_or_read_gets_a_barrier) {
    rig r;
    REQUIRE(rig_open(&r, NULL), "rig");
    BEGIN(&r);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));   /* write after write */
    CHECK(compute_barriers(&r) == 1, "one barrier for WAW");
    BEGIN(&r);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
    mul(&r, whole(&r, 2), whole(&r, 2), whole(&r, 0));   /* write after read */
    CHECK(compute_barriers(&r) == 1, "one barrier for WAR");
    rig_close(&r);
}

/* Ranges, not buffers: halves of one buffer are apart; overlapping ranges are not. */
TEST(disjoint_ranges_of_one_buffer_need_no_barrier_overlapping_ones_do) {
    rig r;
    REQUIRE(rig_open(&r, NULL), "rig");
    pvk_buf *b = &r.buf[1];
    uint64_t half = N * 2, align = pvk_dev_caps(r.d)->storage_align;
    REQUIRE(half % align == 0, "halves of %llu bytes are not aligned to %llu", (unsigned long long)half,
            (unsigned long long)align);
    static const uint32_t push[2] = {N / 2, N / 2};
    pvk_binding lo[3] = {whole(&r, 0), whole(&r, 0), pvk_bind_range(b, 0, half)};
    pvk_binding hi[3] = {whole(&r, 0), whole(&r, 0), pvk_bind_range(b, half, half)};
    BEGIN(&r);
    pvk_cmd_dispatch(r.c, r.mul, lo, push, N / 2 / WG, 1, 1);
    pvk_cmd_dispatch(r.c, r.mul, hi, push, N / 2 / WG, 1, 1);
    CHECK(compute_barriers(&r) == 0, "two halves written apart");
    BEGIN(&r);
    pvk_cmd_dispatch(r.c, r.mul, lo, push, N / 2 / WG, 1, 1);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));   /* the whole overlaps the low half */
    CHECK(compute_barriers(&r) == 1, "overlapping writes are ordered");
    rig_close(&r);
}

/* A barrier clears what is pending: the third dispatch depends on the second only. */
TEST(a_barrier_orders_everything_before_it) {
    rig r;
    REQUIRE(rig_open(&r, NULL), "rig");
    BEGIN(&r);
    mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
    mul(&r, whole(&r, 1), whole(&r, 1), whole(&r, 2));   /* barrier: reads 1 */
    mul(&r, whole(&r, 1), whole(&r, 1), whole(&r, 3));   /* 1 is ordered; 2 is not read */
    CHECK(compute_barriers(&r) == 1, "one barrier for the chain");
    rig_close(&r);
}

/* PHIVK_BARRIERS=all: one after every dispatch, as before the recorder tracked;
 * the results are the same either way (x^2, then ^2 again, checked on the host). */
TEST(barriers_all_puts_one_after_every_dispatch_with_the_same_results) {
    for (int mode = 0; mode < 2; mode++) {
        rig r;
        REQUIRE(rig_open(&r, mode ? "all" : NULL), "rig");
        float x[N], got[N];
        for (int i = 0; i < N; i++) x[i] = 0.5f + (float)i / N;
        REQUIRE(pvk_buf_write(r.d, &r.buf[0], 0, x, sizeof x) == PHIVK_OK, "write");
        BEGIN(&r);
        mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 1));
        mul(&r, whole(&r, 0), whole(&r, 0), whole(&r, 2));
        mul(&r, whole(&r, 1), whole(&r, 1), whole(&r, 3));
        uint32_t n = compute_barriers(&r);
        CHECK(n == (mode ? 3u : 1u), "%s: %u barriers", mode ? "all" : "deps", n);
        REQUIRE(pvk_buf_read(r.d, &r.buf[3], 0, got, sizeof got) == PHIVK_OK, "read");
        int bad = 0;
        for (int i = 0; i < N; i++) bad += got[i] != (x[i] * x[i]) * (x[i] * x[i]);   /* exact: IEEE products */
        CHECK(bad == 0, "%d of %d results differ", bad, N);
        rig_close(&r);
    }
}

TEST(an_unknown_barrier_mode_is_refused_with_the_choices) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    pvk_cmd *c = NULL;
    setenv("PHIVK_BARRIERS", "some", 1);
    CHECK(pvk_cmd_create(d, &c) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "use deps"), "%s", pvk_errmsg());
    unsetenv("PHIVK_BARRIERS");
    CHECK(!c, "nothing made");
}

/* The prologue fusions' switch: a CPU device (lavapipe) fuses nothing by default, a
 * GPU everything; an unknown value is refused with the choices. */
TEST(fusion_follows_the_device_and_phivk_fusion) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const char *names[] = {"none", "act", "all"};
    for (int i = 0; i < 3; i++) {
        setenv("PHIVK_FUSION", names[i], 1);
        pvk_ops *o = NULL;
        CHECK(pvk_ops_create(d, &o) == PHIVK_OK, "%s: %s", names[i], pvk_errmsg());
        if (o && pvk_ops_can_fuse(o, PVK_Q4_0, 1)) {
            CHECK(pvk_ops_fuses(o, PVK_FUSION_ACT, PVK_Q4_0, 1) == (i >= 1), "%s: activations", names[i]);
            CHECK(pvk_ops_fuses(o, PVK_FUSION_ALL, PVK_Q4_0, 1) == (i == 2), "%s: norms", names[i]);
        }
        pvk_ops_destroy(o);
    }
    unsetenv("PHIVK_FUSION");
    pvk_ops *o = NULL;
    CHECK(pvk_ops_create(d, &o) == PHIVK_OK, "default: %s", pvk_errmsg());
    bool cpu = pvk_dev_caps(d)->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (o && pvk_ops_can_fuse(o, PVK_Q4_0, 1))
        CHECK(pvk_ops_fuses(o, PVK_FUSION_ALL, PVK_Q4_0, 1) == !cpu, "the default follows the device kind");
    pvk_ops_destroy(o);
    o = NULL;
    setenv("PHIVK_FUSION", "most", 1);
    CHECK(pvk_ops_create(d, &o) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "use none"), "%s", pvk_errmsg());
    unsetenv("PHIVK_FUSION");
    CHECK(!o, "nothing made");
}

/* The read-bandwidth kernel sums every 16-byte word once: random words, a size
 * that leaves the last workgroup partial, checked against the host's sum (wrapping
 * uint32 arithmetic is exact, so any word skipped or read twice shows). */
TEST(read_kernel_reads_every_word_once_on_each_fetch_path) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const size_t words = 4 * (65536 + 37);
    uint32_t *h = malloc(words * 4), want = 0, seed = 12345;
    REQUIRE(h, "memory");
    for (size_t i = 0; i < words; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = seed;
        want += seed;
    }
    pvk_buf b;
    REQUIRE(pvk_buf_create(d, words * 4, PVK_MEM_DEVICE, &b) == PHIVK_OK && pvk_buf_write(d, &b, 0, h, words * 4) == PHIVK_OK,
            "buffer: %s", pvk_errmsg());
    int paths = 0;
    for (int texel = 0; texel < 2; texel++) {
        if (texel && !pvk_dev_caps(d)->texel) {
            printf("    texel path skipped: the device has no texel buffers\n");
            continue;
        }
        uint32_t got = 0;
        CHECK(pvk_bench_read_sum(d, &b, texel, &got) == PHIVK_OK, "read: %s", pvk_errmsg());
        CHECK(got == want, "%s path: sum %08x, want %08x", texel ? "texel" : "storage", got, want);
        paths++;
    }
    CHECK(paths >= 1, "no path ran");
    double gbps = 0;
    CHECK(pvk_bench_read(d, 8u << 20, 1, &gbps) == PHIVK_OK && gbps > 0, "bandwidth: %s", pvk_errmsg());
    pvk_buf_destroy(d, &b);
    free(h);
}
