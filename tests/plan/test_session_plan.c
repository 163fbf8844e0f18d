/* Sessions against their memory plan on lavapipe, with synthetic models: the
 * context -c auto picks where files declare unusual trained contexts, the bytes a
 * session allocates against its table, and a load refused from the header. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdlib.h>

#include <cJSON.h>

#include "model_impl.h"
#include "session_kv.h"
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
    if (synth_build(&p, image, &size) != PHIVK_OK) return NULL;
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
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = -5;
    s = phivk_session_create(m, &sp);
    CHECK(!s && strstr(phivk_last_error(), "context of -5"), "a negative context is refused as such: %s",
          phivk_last_error());
    phivk_session_free(s);
    phivk_model_free(m);
    free(image);
}

/* ------------------------------------------------- the table is what is allocated */

/* What a 1-byte buffer takes: the allocator's granule, which every buffer's size
 * is rounded up to. */
static uint64_t granule(pvk_dev *d) {
    uint64_t before, after;
    pvk_buf b;
    pvk_mem_stats(d, NULL, &before);
    if (pvk_buf_create(d, 1, PVK_MEM_DEVICE, &b) != PHIVK_OK) return 0;
    pvk_mem_stats(d, NULL, &after);
    pvk_buf_destroy(d, &b);
    return after - before;
}

/* The bytes the table says the session holds, each buffer rounded to the granule. */
static uint64_t table_bytes(const plan *p, uint64_t g) {
    uint64_t sum = 0;
    for (int i = 0; i < PLAN_N_BUFS; i++) sum += p->rows[i].count * ((p->rows[i].bytes + g - 1) / g * g);
    return sum;
}

/* The KV table of `phivk info` on the model's file at ctx, for the cache type named. */
static double info_kv_bytes(const void *image, size_t size, int32_t ctx, const char *type) {
    char path[64] = "/tmp/phivk-test-plan-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "wb");
    bool ok = f && fwrite(image, 1, size, f) == size;
    if (f) fclose(f);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    phivk_info_params ip = {.json = true, .ctx = ctx};
    ok = ok && out && phivk_info_write(path, &ip, out) == PHIVK_OK;
    if (out) fclose(out);
    remove(path);
    cJSON *j = ok ? cJSON_Parse(text) : NULL;
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "memory"), "kv_cache_bytes"), type);
    double bytes = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    free(text);
    return bytes;
}

typedef struct layout_case {
    const char *arch;
    int32_t n_head_kv;
    bool tied;
    pvk_type wtype;
    int32_t ctx, batch;
    phivk_kv_type k, v;
} layout_case;

/* Creates a session of c on rt's device and checks that the runtime's memory
 * stats grew by the table's bytes exactly, and not at all through a decode. */
static void check_case(phivk_runtime *r, const layout_case *c, bool want_chunks) {
    synth_params sp;
    synth_shape_by_name("tiny", &sp);
    sp.arch = c->arch;
    sp.n_head_kv = c->n_head_kv;
    sp.tied_output = c->tied;
    sp.wtype = c->wtype;
    sp.n_ctx = 4096;
    void *image = NULL;
    size_t size = 0;
    REQUIRE(synth_build(&sp, &image, &size) == PHIVK_OK, "%s", pvk_errmsg());
    phivk_model *m = phivk_model_load_memory(r, image, size, "tiny", NULL);
    REQUIRE(m, "%s: %s", c->arch, phivk_last_error());
    pvk_dev *d = r->dev;
    uint64_t g = granule(d), before, after, later;
    phivk_session_params p = phivk_session_default_params();
    p.ctx = c->ctx;
    p.batch = c->batch;
    p.k_type = c->k;
    p.v_type = c->v;
    pvk_mem_stats(d, NULL, &before);
    phivk_session *s = phivk_session_create(m, &p);
    pvk_mem_stats(d, NULL, &after);
    const plan *pl = s ? session_plan_of(s) : NULL;
    CHECK(s && g, "%s ctx %d: %s", c->arch, c->ctx, phivk_last_error());
    if (pl) {
        char kt[8], vt[8];
        snprintf(kt, sizeof kt, "%s", pvk_type_get(plan_kv_type(c->k))->name);
        snprintf(vt, sizeof vt, "%s", pvk_type_get(plan_kv_type(c->v))->name);
        CHECK(after - before == table_bytes(pl, g),
              "%s kv %d, ctx %d, K %s V %s: allocated %llu bytes, the table says %llu (granule %llu)", c->arch,
              c->n_head_kv, c->ctx, kt, vt, (unsigned long long)(after - before),
              (unsigned long long)table_bytes(pl, g), (unsigned long long)g);
        CHECK((pl->rows[PLAN_K_LAST].count > 0) == want_chunks, "cache chunked: %s",
              want_chunks ? "want yes" : "want no");
        CHECK(pl->ctx == c->ctx && pl->total == pl->weight_bytes + pl->kv_bytes + pl->scratch_bytes &&
                  pl->kv_bytes == plan_rows_bytes(pl->rows, PLAN_K, PLAN_N_BUFS),
              "the plan's sums are its table's");
        uint64_t n_bufs = 0;
        for (int i = 0; i < PLAN_N_BUFS; i++) n_bufs += pl->rows[i].count;
        printf("    %s %s ctx %d: %llu bytes in %llu buffers, int8 %s, partials %llu\n", c->arch,
               pvk_type_get(c->wtype)->name, c->ctx, (unsigned long long)table_bytes(pl, g),
               (unsigned long long)n_bufs,
               pl->rows[PLAN_HQ].count ? "yes" : "no", (unsigned long long)pl->rows[PLAN_ATTN].bytes);
        int32_t ids[8] = {3, 4, 5, 6, 7, 8, 9, 10};
        CHECK(phivk_decode(s, ids, 8, NULL, false) == PHIVK_OK && phivk_decode(s, ids, 1, NULL, false) == PHIVK_OK,
              "decode: %s", phivk_last_error());
        pvk_mem_stats(d, NULL, &later);
        CHECK(later == after, "a prefill and a decode step allocate nothing more (%llu -> %llu bytes)",
              (unsigned long long)after, (unsigned long long)later);
        if (c->k == c->v && !want_chunks)
            CHECK(info_kv_bytes(image, size, c->ctx, kt) == (double)pl->kv_bytes,
                  "phivk info's %s cache at %d tokens: %.0f bytes, the session's %llu", kt, c->ctx,
                  info_kv_bytes(image, size, c->ctx, kt), (unsigned long long)pl->kv_bytes);
    }
    phivk_session_free(s);
    uint64_t freed;
    pvk_mem_stats(d, NULL, &freed);
    CHECK(freed == before, "the session frees what it took");
    phivk_model_free(m);
    free(image);
}

/* Shapes (phi3 with and without GQA, phi2's GELU and parallel block, llama's
 * tied head), weight types (q8_0 and q4_0 read int8 activations where the device
 * has integer dot products), contexts off the multiples of 256, and every cache
 * type, mixed too. */
TEST(a_session_allocates_exactly_its_table) {
    static const layout_case cases[] = {
        {"phi3", 4, false, PVK_F32, 64, 0, PHIVK_KV_F16, PHIVK_KV_F16},
        {"phi3", 2, false, PVK_Q8_0, 300, 32, PHIVK_KV_Q8_0, PHIVK_KV_Q8_0},
        {"phi3", 2, false, PVK_Q4_0, 1000, 0, PHIVK_KV_Q4_0, PHIVK_KV_Q4_0},
        {"phi3", 4, false, PVK_F16, 777, 100, PHIVK_KV_Q8_0, PHIVK_KV_Q4_0},
        {"phi2", 4, false, PVK_Q8_0, 256, 0, PHIVK_KV_F16, PHIVK_KV_Q8_0},
        {"llama", 2, true, PVK_F16, 129, 0, PHIVK_KV_Q4_0, PHIVK_KV_Q4_0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(runtime(), &cases[i], false);
}

/* A device that binds 1 MiB at most (PHIVK_MAX_BINDING_BYTES) splits each
 * layer's cache into chunks; the table's chunk rows are what pvk_kv_alloc made. */
TEST(a_session_on_a_device_that_splits_the_cache_allocates_exactly_its_table) {
    setenv("PHIVK_MAX_BINDING_BYTES", "1048576", 1);
    phivk_runtime_params rp = phivk_runtime_default_params();
    rp.validate = true;
    phivk_runtime *r = phivk_runtime_create(&rp);
    unsetenv("PHIVK_MAX_BINDING_BYTES");
    REQUIRE(r, "runtime: %s", phivk_last_error());
    /* 128-byte f16 rows: chunks of 7936 rows, so 20000 = 2 chunks + 4128 */
    layout_case c = {"phi3", 4, false, PVK_F16, 20000, 0, PHIVK_KV_F16, PHIVK_KV_Q8_0};
    check_case(r, &c, true);
    CHECK(pvk_dev_validation_count(r->dev) == 0, "validation layer: %s", pvk_dev_validation_last(r->dev));
    phivk_runtime_free(r);
}

/* ------------------------------------------------- the plan before the weights */

static void count_upload(void *user, const char *stage, uint64_t done, uint64_t total) {
    (void)total;
    if (!strcmp(stage, "loading") && done > 0) ++*(int *)user;
}

/* A model loaded for a session that cannot fit is refused from its header, before
 * one weight is uploaded (a 7.6 GB model used to load in full, then be refused),
 * with the same advice as the session would give. */
TEST(a_load_for_a_session_that_cannot_fit_is_refused_before_any_upload) {
    synth_params sp;
    synth_shape_by_name("tiny", &sp);
    void *image = NULL;
    size_t size = 0;
    REQUIRE(synth_build(&sp, &image, &size) == PHIVK_OK, "%s", pvk_errmsg());
    phivk_session_params p = phivk_session_default_params();
    p.ctx = 1 << 30; /* 512 GiB of f16 cache */
    int uploads = 0;
    phivk_model_params mp = phivk_model_default_params();
    mp.progress = count_upload;
    mp.progress_user = &uploads;
    mp.session = &p;
    phivk_model *m = phivk_model_load_memory(runtime(), image, size, "tiny", &mp);
    const char *msg = phivk_last_error();
    CHECK(!m && uploads == 0 && strstr(msg, "does not fit") && strstr(msg, "use -c auto (256 tokens, the model's trained context)"),
          "refused before uploading (%d progress reports): %s", uploads, m ? "(loaded)" : msg);
    phivk_model_free(m);
    p.ctx = 256;
    m = phivk_model_load_memory(runtime(), image, size, "tiny", &mp);
    CHECK(m && uploads > 0, "a session that fits: loaded (%s)", m ? "" : phivk_last_error());
    phivk_model_free(m);
    free(image);
}
