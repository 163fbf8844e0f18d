/* Faults a healthy lavapipe never has, injected with PHIVK_FAULT (pvk_fault.h):
 * a model load that fails at any allocation or submit gives back every byte it
 * took and says why in words; a lost device fails every later call on it, and a
 * new runtime works again; -c auto answers a refused KV cache with a smaller
 * context, or refuses with the numbers. Built with AddressSanitizer: a failure
 * path that leaks host memory fails the run at exit. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>

#include "gpu.h"
#include "lsan_libs.h"
#include "model_impl.h"
#include "pvk_fault.h"
#include "synth.h"

static struct {
    phivk_runtime *rt;
    void *gguf;
    size_t size;
    uint64_t seen;        /* validation messages already reported */
} g;

/* The tiny phi3 shape in F16 with a 1024-token context: -c auto plans 1024 and
 * has 512 and 256 to fall back to. */
static bool setup(void) {
    if (g.rt) return true;
    test_keep_system_libraries_loaded();
    synth_params p = synth_default_params();
    p.wtype = PVK_F16;
    p.n_ctx = 1024;
    if (synth_build(&p, &g.gguf, &g.size) != PHIVK_OK) return false;
    g.rt = phivk_runtime_create(NULL);
    return g.rt != NULL;
}

static const char *validation(void) { return g.rt ? test_gpu_new_messages(g.rt->dev, &g.seen) : NULL; }

static uint64_t used_now(void) {
    uint64_t used;
    pvk_mem_stats(g.rt->dev, NULL, &used);
    return used;
}

static phivk_model *load(void) { return phivk_model_load_memory(g.rt, g.gguf, g.size, "tiny", NULL); }

TEST(fault_spec_reads_kinds_and_ranges_and_refuses_anything_else) {
    REQUIRE(pvk_fault_set("alloc:3,submit:2-3,device_lost:5-") == PHIVK_OK, "%s", pvk_errmsg());
    bool a[5];
    for (int i = 0; i < 5; i++) a[i] = pvk_fault_alloc();
    CHECK(!a[0] && !a[1] && a[2] && !a[3] && !a[4], "alloc:3 fails the third allocation only");
    VkResult want[7] = {VK_SUCCESS, VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_SUCCESS,
                        VK_ERROR_DEVICE_LOST, VK_ERROR_DEVICE_LOST, VK_ERROR_DEVICE_LOST};
    for (int i = 0; i < 7; i++) {
        VkResult r = pvk_fault_submit();
        CHECK(r == want[i], "submit %d reports %d, want %d (submit:2-3, device_lost:5-)", i + 1, r, want[i]);
    }
    CHECK(pvk_fault_allocs() == 5 && pvk_fault_submits() == 7, "counted %llu allocations, %llu submits",
          (unsigned long long)pvk_fault_allocs(), (unsigned long long)pvk_fault_submits());
    static const char *const bad[] = {"alloc", "alloc:", "alloc:0", "alloc:x", "alloc:5-3", "alloc:2,leak:1",
                                      "alloc:1,", "submit:-4", "device_lost:3x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        phivk_status s = pvk_fault_set(bad[i]);
        CHECK(s == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "PHIVK_FAULT: cannot read"),
              "'%s' refused (status %d, '%s')", bad[i], s, pvk_errmsg());
        CHECK(!pvk_fault_alloc() && pvk_fault_submit() == VK_SUCCESS, "'%s' leaves no fault armed", bad[i]);
    }
    REQUIRE(pvk_fault_set(NULL) == PHIVK_OK, "no faults");
}

TEST(model_load_failing_at_any_allocation_gives_back_every_byte_and_says_why) {
    REQUIRE(setup(), "no runtime or fixture: %s", phivk_last_error());
    pvk_fault_set(NULL);
    uint64_t used0 = used_now();
    phivk_model *m = load();
    REQUIRE(m, "the fixture loads without faults: %s", phivk_last_error());
    uint64_t n_allocs = pvk_fault_allocs();
    phivk_model_free(m);
    CHECK(used_now() == used0, "a freed model gives back its memory (%llu bytes in use, want %llu)",
          (unsigned long long)used_now(), (unsigned long long)used0);
    /* Every allocation of the load in turn: the first, each tensor's, warm-up's last. */
    REQUIRE(n_allocs >= 10, "the load made %llu allocations; the fixture has more tensors than that",
            (unsigned long long)n_allocs);
    int failed = 0;
    for (uint64_t n = 1; n <= n_allocs; n++) {
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%llu", (unsigned long long)n);
        pvk_fault_set(spec);
        m = load();
        CHECK(!m, "%s: the load failed", spec);
        phivk_model_free(m);
        const char *e = phivk_last_error();
        CHECK(strstr(e, "cannot allocate") && strstr(e, "PHIVK_FAULT"), "%s: the message says what failed: '%s'",
              spec, e);
        CHECK(used_now() == used0, "%s: %llu bytes still in use after the failed load, want %llu", spec,
              (unsigned long long)used_now(), (unsigned long long)used0);
        failed += !m;
    }
    CHECK(failed == (int)n_allocs, "%d of %llu faulted loads failed", failed, (unsigned long long)n_allocs);
    printf("    %llu loads, each failing at its Nth allocation, gave back every byte\n",
           (unsigned long long)n_allocs);

    /* The warm-up's submit (the load's first) fails as out of device memory. */
    pvk_fault_set("submit:1");
    m = load();
    CHECK(!m && strstr(phivk_last_error(), "out of memory") && strstr(phivk_last_error(), "PHIVK_FAULT"),
          "submit:1 fails the load in words: '%s'", phivk_last_error());
    phivk_model_free(m);
    CHECK(used_now() == used0, "after a failed submit %llu bytes in use, want %llu",
          (unsigned long long)used_now(), (unsigned long long)used0);
    pvk_fault_set(NULL);
    const char *v = validation();
    CHECK(!v, "validation: %s", v);
}

TEST(auto_context_halves_when_the_device_refuses_the_cache_and_refuses_with_numbers_at_the_floor) {
    REQUIRE(setup(), "no runtime or fixture: %s", phivk_last_error());
    pvk_fault_set(NULL);
    phivk_model *m = load();
    REQUIRE(m, "load: %s", phivk_last_error());
    phivk_session *s = phivk_session_create(m, NULL);
    REQUIRE(s, "an auto session: %s", phivk_last_error());
    int32_t planned = phivk_session_ctx(s);
    phivk_session_free(s);
    REQUIRE(planned == 1024, "-c auto plans the model's 1024 tokens on lavapipe, got %d", planned);
    uint64_t used0 = used_now();

    /* The session's first allocation (the first layer's K) is refused once:
     * pvk_fault_set counts from 1 again. */
    pvk_fault_set("alloc:1");
    s = phivk_session_create(m, NULL);
    REQUIRE(s, "-c auto falls back instead of failing: %s", phivk_last_error());
    CHECK(phivk_session_ctx(s) == 512, "one refusal halves 1024 to %d, want 512", phivk_session_ctx(s));
    char *plan = phivk_session_plan_text(s);
    CHECK(plan && strstr(plan, "512 tokens") && strstr(plan, "refused the cache of 1024 tokens"),
          "the plan line says what -c auto chose and why: '%s'", plan ? plan : "");
    free(plan);
    int32_t tok = 1;
    float *logits = malloc(sizeof *logits * (size_t)phivk_model_n_vocab(m));
    CHECK(logits && phivk_decode(s, &tok, 1, logits, false) == PHIVK_OK, "the smaller session runs: %s",
          phivk_last_error());
    free(logits);
    phivk_session_free(s);

    /* Every allocation refused: 1024, 512, 256 tried, then the numbers. */
    pvk_fault_set("alloc:1-");
    s = phivk_session_create(m, NULL);
    const char *e = phivk_last_error();
    CHECK(!s && strstr(e, "-c auto") && strstr(e, "from 1024 down to 256 tokens") && strstr(e, "KV cache") &&
              strstr(e, "PHIVK_FAULT"), "refused with the sizes tried and the cause: '%s'", e);
    phivk_session_free(s);
    CHECK(used_now() == used0, "the refused tries gave back their memory (%llu in use, want %llu)",
          (unsigned long long)used_now(), (unsigned long long)used0);

    /* A context the user asked for is not changed behind their back. */
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 1024;
    pvk_fault_set("alloc:1");
    s = phivk_session_create(m, &sp);
    CHECK(!s && strstr(phivk_last_error(), "cannot allocate"), "-c 1024 fails as asked: '%s'", phivk_last_error());
    phivk_session_free(s);
    pvk_fault_set(NULL);
    phivk_model_free(m);
    const char *v = validation();
    CHECK(!v, "validation: %s", v);
}

TEST(device_lost_fails_that_decode_and_every_later_call_and_a_new_runtime_works) {
    REQUIRE(setup(), "no runtime or fixture: %s", phivk_last_error());
    pvk_fault_set(NULL);
    phivk_model *m = load();
    REQUIRE(m, "load: %s", phivk_last_error());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 256;
    phivk_session *s = phivk_session_create(m, &sp);
    REQUIRE(s, "session: %s", phivk_last_error());
    float *logits = malloc(sizeof *logits * (size_t)phivk_model_n_vocab(m));
    REQUIRE(logits, "host memory");
    int32_t prompt[4] = {1, 40, 41, 42};
    REQUIRE(phivk_decode(s, prompt, 4, logits, false) == PHIVK_OK, "prefill: %s", phivk_last_error());

    pvk_fault_set("device_lost:2"); /* counted from here */
    int32_t tok = 43;
    CHECK(phivk_decode(s, &tok, 1, logits, false) == PHIVK_OK, "the step before the loss runs");
    int32_t pos = phivk_session_pos(s);
    phivk_status st = phivk_decode(s, &tok, 1, logits, false);
    CHECK(st == PHIVK_ERR_DEVICE_LOST && strstr(phivk_last_error(), "lost the device"),
          "the lost step says so (status %d, '%s')", st, phivk_last_error());
    CHECK(phivk_session_pos(s) == pos, "the cache keeps the %d tokens before the loss (pos %d)", pos,
          phivk_session_pos(s));
    CHECK(pvk_dev_lost(g.rt->dev), "the device is marked lost");
    st = phivk_decode(s, &tok, 1, logits, false);
    CHECK(st == PHIVK_ERR_DEVICE_LOST && strstr(phivk_last_error(), "lost") &&
              strstr(phivk_last_error(), "earlier"), "a later step fails at once (status %d, '%s')", st,
          phivk_last_error());
    phivk_session *s2 = phivk_session_create(m, &sp);
    CHECK(!s2 && strstr(phivk_last_error(), "lost"), "no new session on a lost device: '%s'", phivk_last_error());
    phivk_session_free(s2);
    phivk_session_free(s);
    phivk_model_free(m);
    pvk_fault_set(NULL);
    const char *v = validation();
    CHECK(!v, "validation: %s", v);
    phivk_runtime_free(g.rt);
    g.rt = NULL;

    /* Reopening the device is the way back: the same model runs on a new runtime. */
    phivk_runtime *rt = phivk_runtime_create(NULL);
    REQUIRE(rt, "a new runtime: %s", phivk_last_error());
    m = phivk_model_load_memory(rt, g.gguf, g.size, "tiny", NULL);
    s = m ? phivk_session_create(m, &sp) : NULL;
    CHECK(s && phivk_decode(s, prompt, 4, logits, false) == PHIVK_OK, "the reloaded model runs: %s",
          phivk_last_error());
    phivk_session_free(s);
    phivk_model_free(m);
    uint64_t seen = 0;
    v = test_gpu_new_messages(rt->dev, &seen);
    CHECK(!v, "validation: %s", v);
    phivk_runtime_free(rt);
    free(logits);
}

TEST(zz_teardown) {
    phivk_runtime_free(g.rt);
    g.rt = NULL;
    free(g.gguf);
    g.gguf = NULL;
}
