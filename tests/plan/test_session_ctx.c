/* The context a session picks when none is asked for (-c auto), on lavapipe with
 * synthetic models whose files declare unusual trained contexts. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>

#include "model_impl.h"
#include "synth.h"

static phivk_runtime *rt;
static uint64_t validation_seen;

static void close_runtime(void) { phivk_runtime_free(rt); }

static const char *check_validation(void) {
    static char msg[600];
    uint64_t n = rt ? pvk_dev_validation_count(rt->dev) : 0;
    if (n == validation_seen) return NULL;
    validation_seen = n;
    snprintf(msg, sizeof msg, "validation layer: %s", pvk_dev_validation_last(rt->dev));
    return msg;
}

/* The runtime, validated: a validation message fails the case it came in. */
static phivk_runtime *runtime(void) {
    if (!rt) {
        phivk_runtime_params p = phivk_runtime_default_params();
        p.validate = true;
        rt = phivk_runtime_create(&p);
        if (!rt) {
            printf("cannot open a Vulkan device: %s\n", phivk_last_error());
            exit(1);
        }
        harness_after_each = check_validation;
        atexit(close_runtime);
    }
    return rt;
}

/* The tiny phi3 shape declaring a trained context of n_ctx tokens. */
static phivk_model *tiny_model(int32_t n_ctx, void **image) {
    synth_params p;
    if (synth_shape_by_name("tiny", &p)) return NULL;
    p.n_ctx = n_ctx;
    size_t size;
    if (synth_build(&p, image, &size) != PVK_OK) return NULL;
    phivk_model *m = phivk_model_load_memory(runtime(), *image, size, "tiny", NULL);
    if (!m) printf("    load: %s\n", phivk_last_error());
    return m;
}

/* A 430 KB file may declare 2^24 tokens; a toy model's cache sized for that is
 * gigabytes. -c auto stops at 131072 (2^20 here keeps the old behaviour's
 * allocation small: it took all 2^20) and says so; asking for more still works. */
TEST(auto_context_stops_at_131072_unless_the_user_asks_for_more) {
    void *image = NULL;
    phivk_model *m = tiny_model(1 << 20, &image);
    REQUIRE(m, "model: %s", phivk_last_error());
    phivk_session_params sp = phivk_session_default_params();
    sp.k_type = sp.v_type = PHIVK_KV_Q4_0;
    phivk_session *s = phivk_session_create(m, &sp);
    CHECK(s && phivk_session_ctx(s) == 131072, "auto: %d tokens, want 131072 (%s)", s ? phivk_session_ctx(s) : -1,
          s ? "" : phivk_last_error());
    char *text = s ? phivk_session_plan_text(s) : NULL;
    CHECK(text && strstr(text, "131072 tokens") && strstr(text, "trained 1048576"),
          "the plan says what auto chose and why: %s", text ? text : "(none)");
    free(text);
    phivk_session_free(s);
    sp.ctx = 200000;
    s = phivk_session_create(m, &sp);
    CHECK(s && phivk_session_ctx(s) == 200000, "asked for 200000: %s", s ? "other size" : phivk_last_error());
    phivk_session_free(s);
    phivk_model_free(m);
    free(image);
}

/* A model trained for 64 tokens gets its 64 (the plan used to refuse anything
 * under 256 and call it out of memory), and runs them. */
TEST(a_model_trained_for_64_tokens_runs_by_default) {
    void *image = NULL;
    phivk_model *m = tiny_model(64, &image);
    REQUIRE(m, "model: %s", phivk_last_error());
    phivk_session *s = phivk_session_create(m, NULL);
    CHECK(s && phivk_session_ctx(s) == 64, "auto: %s", s ? "not 64 tokens" : phivk_last_error());
    if (s) {
        int32_t ids[64];
        for (int i = 0; i < 64; i++) ids[i] = 3 + i;
        CHECK(phivk_decode(s, ids, 64, NULL, false) == PHIVK_OK, "64 tokens decode: %s", phivk_last_error());
        CHECK(phivk_decode(s, ids, 1, NULL, false) == PHIVK_ERR_CONTEXT_FULL, "the 65th does not fit");
    }
    phivk_session_free(s);
    phivk_model_free(m);
    free(image);
}
