/* The memory planner on the real models' shapes (phi-spec section 7 gives the
 * KV-cache figures these must reproduce exactly). */
#define HARNESS_MAIN
#include "harness.h"

#include "plan.h"

static const uint64_t KiB = 1024, MiB = 1024 * 1024, GiB = 1024ull * 1024 * 1024;

static arch_hparams phi3_mini(void) {
    return (arch_hparams){.arch = ARCH_PHI3, .n_vocab = 32064, .n_ctx_train = 131072, .n_embd = 3072,
                          .n_layer = 32, .n_head = 32, .n_head_kv = 32, .head_dim = 96,
                          .n_embd_q = 3072, .n_embd_kv = 3072, .n_ff = 8192};
}

static arch_hparams phi3_medium(void) {
    return (arch_hparams){.arch = ARCH_PHI3, .n_vocab = 32064, .n_ctx_train = 131072, .n_embd = 5120,
                          .n_layer = 40, .n_head = 40, .n_head_kv = 10, .head_dim = 128,
                          .n_embd_q = 5120, .n_embd_kv = 1280, .n_ff = 17920};
}

TEST(kv_bytes_per_token_match_the_spec_table) {
    arch_hparams mini = phi3_mini(), medium = phi3_medium();
    CHECK(plan_kv_bytes_per_token(&mini, PVK_F16, PVK_F16) == 384 * KiB, "mini f16 384 KiB");
    CHECK(plan_kv_bytes_per_token(&mini, PVK_Q8_0, PVK_Q8_0) == 204 * KiB, "mini q8_0 204 KiB");
    CHECK(plan_kv_bytes_per_token(&mini, PVK_Q4_0, PVK_Q4_0) == 108 * KiB, "mini q4_0 108 KiB");
    CHECK(plan_kv_bytes_per_token(&medium, PVK_F16, PVK_F16) == 200 * KiB, "medium f16 200 KiB");
    CHECK(plan_kv_bytes_per_token(&medium, PVK_Q8_0, PVK_Q8_0) == 106 * KiB + 256, "medium q8_0 106.25 KiB");
    CHECK(plan_kv_bytes_per_token(&medium, PVK_Q4_0, PVK_Q4_0) == 56 * KiB + 256, "medium q4_0 56.25 KiB");
    CHECK(plan_kv_bytes_per_token(&mini, PVK_Q8_0, PVK_Q4_0) == 156 * KiB, "K and V types differ");
}

/* Cache totals at 4K / 32K / 128K for each KV type, phi-spec section 7. */
TEST(cache_totals_at_4k_32k_128k_for_each_kv_type) {
    struct { arch_hparams hp; pvk_type t; int32_t ctx; uint64_t want; } cases[] = {
        {phi3_mini(), PVK_F16, 4096, 3 * GiB / 2},
        {phi3_mini(), PVK_F16, 32768, 12 * GiB},
        {phi3_mini(), PVK_F16, 131072, 48 * GiB},
        {phi3_mini(), PVK_Q8_0, 4096, 816 * MiB},
        {phi3_mini(), PVK_Q8_0, 32768, 6528 * MiB},
        {phi3_mini(), PVK_Q8_0, 131072, 51 * GiB / 2},
        {phi3_mini(), PVK_Q4_0, 4096, 432 * MiB},
        {phi3_mini(), PVK_Q4_0, 32768, 3456 * MiB},
        {phi3_mini(), PVK_Q4_0, 131072, 27 * GiB / 2},
        {phi3_medium(), PVK_F16, 4096, 800 * MiB},
        {phi3_medium(), PVK_F16, 32768, 6400 * MiB},
        {phi3_medium(), PVK_F16, 131072, 25 * GiB},
        {phi3_medium(), PVK_Q8_0, 4096, 425 * MiB},
        {phi3_medium(), PVK_Q4_0, 4096, 225 * MiB},
        {phi3_medium(), PVK_Q4_0, 131072, 7200 * MiB},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plan_input in = {.hp = &cases[i].hp, .weight_bytes = 1, .k_type = cases[i].t,
                         .v_type = cases[i].t, .ctx = cases[i].ctx, .batch = 512,
                         .budget = 1024 * GiB};
        plan p;
        CHECK(plan_make(&in, &p) == PHIVK_OK, "case %zu: %s", i, pvk_errmsg());
        CHECK(p.kv_bytes == cases[i].want, "case %zu: cache %llu bytes, want %llu", i,
              (unsigned long long)p.kv_bytes, (unsigned long long)cases[i].want);
    }
}

/* The target: Phi-3-mini (Q4_K_M weights, 2.39 GB) at 131072 tokens with
 * Q4_0 K and V plans under 16 GiB in total. */
TEST(phi3_mini_128k_with_q4_0_cache_plans_under_16_gib) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_Q4_0,
                     .v_type = PVK_Q4_0, .ctx = 131072, .batch = 512, .budget = 24 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(p.total < 16 * GiB, "total %.2f GiB", p.total / (double)GiB);
    CHECK(p.scratch_bytes < 256 * MiB, "scratch %.1f MiB stays small", p.scratch_bytes / (double)MiB);
}

/* Attention's partials as a device's tuning sizes them: lavapipe splits every
 * query row's keys at a fixed loop limit, so its partials grow with the context. */
static uint64_t lavapipe_like_attn(void *user, int32_t ctx, int32_t batch) {
    const arch_hparams *hp = user;
    uint64_t splits = ((uint64_t)ctx + 4095) / 4096;
    return splits * (uint64_t)batch * hp->n_head * (hp->head_dim + 2) * 4;
}

/* The partials count in full, in their own row of the table. */
TEST(the_devices_attention_partials_are_a_row_of_the_table) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_Q4_0,
                     .v_type = PVK_Q4_0, .ctx = 131072, .batch = 512, .budget = 24 * GiB};
    plan base, more;
    CHECK(plan_make(&in, &base) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(base.rows[PLAN_ATTN].count == 0, "no partials without a device that splits");
    in.attn_bytes = lavapipe_like_attn;
    in.user = &hp;
    CHECK(plan_make(&in, &more) == PHIVK_OK, "%s", pvk_errmsg());
    uint64_t want = lavapipe_like_attn(&hp, 131072, 512);
    CHECK(more.rows[PLAN_ATTN].count == 1 && more.rows[PLAN_ATTN].bytes == want &&
              more.scratch_bytes == base.scratch_bytes + want &&
              more.total == more.scratch_bytes + more.kv_bytes + more.weight_bytes,
          "%.1f MiB of partials are planned for (scratch %.1f -> %.1f MiB)", want / (double)MiB,
          base.scratch_bytes / (double)MiB, more.scratch_bytes / (double)MiB);
}

/* Every row of the table on Phi-3-mini at 4096 tokens, batch 512: the sizes the
 * session's buffers must have (f32 activations, ggml's int8 blocks: 32 bytes +
 * 16 of scale per 32 values as pvk_q8_bytes). */
TEST(the_table_lists_every_buffer_with_its_size) {
    arch_hparams hp = phi3_mini();
    plan_shape s = {.hp = &hp, .k_type = PVK_F16, .v_type = PVK_Q8_0, .ctx = 4096, .batch = 512,
                    .attn_bytes = 1000, .int8 = true};
    plan_row r[PLAN_N_BUFS];
    plan_layout(&s, r);
    struct { plan_buf b; uint64_t count, bytes; } want[] = {
        {PLAN_IDS, 1, 512 * 4 + 16 /* the replay position */}, {PLAN_X, 1, 512 * 3072 * 4}, {PLAN_H, 1, 512 * 3072 * 4},
        {PLAN_QKV, 1, 512 * 9216 * 4}, {PLAN_ATT, 1, 512 * 3072 * 4}, {PLAN_FF, 1, 512 * 16384 * 4},
        {PLAN_ACT, 1, 512 * 8192 * 4}, {PLAN_LAST, 1, 3072 * 4}, {PLAN_LAST_N, 1, 3072 * 4},
        {PLAN_LOGITS, 1, 261ull * 32064 * 4}, {PLAN_ATTN, 1, 1000},
        {PLAN_HQ, 1, 512 * 3072 * 3 / 2}, {PLAN_AQ, 1, 512 * 8192 * 3 / 2},
        {PLAN_K, 32, 4096 * 3072 * 2}, {PLAN_V, 32, 4096 * 3072 / 32 * 34},
        {PLAN_K_LAST, 0, 0}, {PLAN_V_LAST, 0, 0},
    };
    CHECK(sizeof want / sizeof want[0] == PLAN_N_BUFS, "every row is checked");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(r[want[i].b].count == want[i].count && (!want[i].count || r[want[i].b].bytes == want[i].bytes),
              "%s: %llu x %llu bytes, want %llu x %llu", r[want[i].b].name, (unsigned long long)r[want[i].b].count,
              (unsigned long long)r[want[i].b].bytes, (unsigned long long)want[i].count,
              (unsigned long long)want[i].bytes);
    /* A device that binds 1000 rows at most: 4 full chunks and one of 96 per layer. */
    s.kv_chunk = 1000;
    plan_layout(&s, r);
    CHECK(r[PLAN_K].count == 4 * 32 && r[PLAN_K].bytes == 1000 * 3072 * 2 && r[PLAN_K_LAST].count == 32 &&
              r[PLAN_K_LAST].bytes == 96 * 3072 * 2 && r[PLAN_V_LAST].bytes == 96 * 3072 / 32 * 34,
          "chunked cache rows");
    CHECK(plan_rows_bytes(r, PLAN_K, PLAN_N_BUFS) == plan_kv_bytes_per_token(&hp, PVK_F16, PVK_Q8_0) * 4096,
          "the chunks hold the same cache");
    s.int8 = false;
    plan_layout(&s, r);
    CHECK(r[PLAN_HQ].count == 0 && r[PLAN_AQ].count == 0, "no int8 buffers where no projection reads them");
}

/* The number after "-c " in msg, or -1. */
static long advised_ctx(const char *msg) {
    const char *at = strstr(msg, "use -c ");
    return at ? strtol(at + 7, NULL, 10) : -1;
}

TEST(a_context_that_does_not_fit_is_refused_with_numbers_and_options) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_F16,
                     .v_type = PVK_F16, .ctx = 131072, .batch = 512, .budget = 24 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "48 GiB of cache in 24 GiB");
    const char *msg = pvk_errmsg();
    CHECK(strstr(msg, "131072") && strstr(msg, "48.00 GiB") && strstr(msg, "q8_0 or q4_0") &&
              strstr(msg, "-c auto"),
          "message gives the numbers and the options: %s", msg);
}

/* The advice is what -c auto picks with everything else the same: both come from
 * one computation, also where attention's partials grow with the context (the
 * session sized them at the asked context for the advice, at the trained one for
 * auto: asked for 10^6 here, it advised 48384 while auto picked 51968). */
TEST(the_refusal_advises_the_context_auto_would_pick) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_F16, .v_type = PVK_F16,
                     .ctx = 1000000, .batch = 512, .budget = 24 * GiB, .attn_bytes = lavapipe_like_attn,
                     .user = &hp};
    plan p, a;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "366 GiB of cache in 24 GiB");
    long advised = advised_ctx(pvk_errmsg());
    in.ctx = 0;
    CHECK(plan_make(&in, &a) == PHIVK_OK, "auto: %s", pvk_errmsg());
    CHECK(advised == a.ctx && a.why == PLAN_CTX_MEMORY, "advice -c %ld, auto picks %d", advised, a.ctx);
    in.ctx = a.ctx;
    CHECK(plan_make(&in, &p) == PHIVK_OK, "the advised context fits: %s", pvk_errmsg());
    in.ctx = a.ctx + 256;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "256 more tokens do not");
}

/* Only cache types smaller than the one in use are suggested. */
TEST(the_refusal_does_not_suggest_the_cache_type_in_use) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_Q8_0, .v_type = PVK_Q8_0,
                     .ctx = 131072, .batch = 512, .budget = 16 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "25.5 GiB of cache in 16 GiB");
    const char *msg = pvk_errmsg();
    CHECK(strstr(msg, "--kv-type q4_0)") && !strstr(msg, "q8_0 or"), "q8_0 in use: only q4_0: %s", msg);
    in.k_type = in.v_type = PVK_Q4_0;
    in.budget = 8 * GiB;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "13.5 GiB of cache in 8 GiB");
    msg = pvk_errmsg();
    CHECK(!strstr(msg, "--kv-type") && advised_ctx(msg) > 0, "q4_0 in use: no smaller type: %s", msg);
}

TEST(auto_context_is_the_largest_multiple_of_256_that_fits) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2 * GiB, .k_type = PVK_F16, .v_type = PVK_F16,
                     .ctx = 0, .batch = 512, .budget = 8 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_OK, "%s", pvk_errmsg());
    CHECK(p.ctx % 256 == 0 && p.ctx > 0 && p.why == PLAN_CTX_MEMORY, "ctx %d", p.ctx);
    CHECK(p.total <= in.budget / 10 * 9, "fits in 90%% of the budget");
    CHECK(p.total + 256 * p.kv_bytes_per_token > in.budget / 10 * 9, "256 more tokens would not fit");
    in.budget = 1024 * GiB;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.ctx == 131072 && p.why == PLAN_CTX_TRAINED,
          "with room: the model's context");
    in.budget = 2 * GiB;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "weights alone fill the device");
}

/* A file may declare any trained context (2^24 in 430 KB): auto stops at 131072
 * and says so; the user may still ask for more. */
TEST(auto_context_never_exceeds_131072_unless_asked) {
    arch_hparams hp = phi3_mini();
    hp.n_ctx_train = 1 << 24;
    plan_input in = {.hp = &hp, .weight_bytes = 1 * GiB, .k_type = PVK_Q4_0, .v_type = PVK_Q4_0,
                     .ctx = 0, .batch = 512, .budget = 4096 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.ctx == PLAN_AUTO_CTX_MAX && p.why == PLAN_CTX_CAPPED,
          "auto: %d, want %d", p.ctx, PLAN_AUTO_CTX_MAX);
    char why[96];
    plan_ctx_text(&p, &hp, why, sizeof why);
    CHECK(strstr(why, "131072 of the model's trained 16777216"), "says what it chose: %s", why);
    in.ctx = 1 << 20;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.ctx == 1 << 20 && p.why == PLAN_CTX_ASKED, "asked: 2^20");
}

/* A model trained for fewer than 256 tokens gets its whole context (the plan
 * used to refuse any auto context under 256 as "does not fit"). */
TEST(auto_context_of_a_model_trained_for_64_tokens_is_64) {
    arch_hparams hp = phi3_mini();
    hp.n_ctx_train = 64;
    plan_input in = {.hp = &hp, .weight_bytes = 1 * GiB, .k_type = PVK_F16, .v_type = PVK_F16,
                     .ctx = 0, .batch = 512, .budget = 4 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.ctx == 64 && p.why == PLAN_CTX_TRAINED, "auto: %d (%s)", p.ctx,
          pvk_errmsg());
    in.budget = GiB + GiB / 10;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY && strstr(pvk_errmsg(), "64-token"),
          "where not even 64 fit: refused naming 64 tokens: %s", pvk_errmsg());
}

/* ------------------------------------------------------------ server slots */

/* A server's N slots: N caches of the context, one set of scratch. Phi-3-mini
 * Q4_K_M (2.23 GiB) with 4 slots of 4096 f16 tokens (1.50 GiB each, 6 GiB) in an
 * 8 GiB budget (7.2 GiB usable) is refused with the cache per slot, the slots'
 * total and the budget, advising the context that 4 slots fit; that context fits
 * and 256 more tokens per slot do not. */
TEST(slots_that_do_not_fit_are_refused_with_the_cache_per_slot_and_the_total) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_F16, .v_type = PVK_F16,
                     .ctx = 4096, .batch = 512, .budget = 8 * GiB, .slots = 4};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "6 GiB of caches + 2.23 GiB in 7.2 GiB usable");
    const char *msg = pvk_errmsg();
    CHECK(strstr(msg, "4 slots of a context of 4096 tokens") && strstr(msg, "1.50 GiB per slot") &&
              strstr(msg, "x 4 = 6.00 GiB") && strstr(msg, "7.20 GiB usable of 8.00 GiB") &&
              strstr(msg, "fewer slots") && strstr(msg, "q8_0 or q4_0"),
          "the numbers: %s", msg);
    long advised = advised_ctx(msg);
    CHECK(advised > 0 && advised < 4096 && advised % 256 == 0, "advises -c %ld", advised);
    in.ctx = (int32_t)advised;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.slots == 4 &&
              p.total == p.weight_bytes + 4 * p.kv_bytes + p.scratch_bytes && p.total <= in.budget / 10 * 9,
          "the advised context fits 4 slots: %s", pvk_errmsg());
    in.ctx += 256;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY, "256 more tokens per slot do not");
    in.slots = 1;
    in.ctx = 4096;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.slots == 1, "one slot of 4096 fits: %s", pvk_errmsg());
}

/* -c auto with slots picks the largest context that many caches fit. */
TEST(auto_context_with_slots_fits_all_of_them) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2 * GiB, .k_type = PVK_Q8_0, .v_type = PVK_Q8_0,
                     .ctx = 0, .batch = 512, .budget = 16 * GiB, .slots = 8};
    plan p, one;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.why == PLAN_CTX_MEMORY, "%s", pvk_errmsg());
    CHECK(p.ctx % 256 == 0 && p.total <= in.budget / 10 * 9 &&
              p.total + 8 * 256 * p.kv_bytes_per_token > in.budget / 10 * 9,
          "8 slots of %d tokens: the most that fit", p.ctx);
    in.slots = 0;
    CHECK(plan_make(&in, &one) == PHIVK_OK && one.ctx > 4 * p.ctx, "one slot gets more: %d vs %d", one.ctx, p.ctx);
}

/* A slot that shares another session's scratch plans its cache alone, against
 * what the device has left. */
TEST(a_slot_sharing_scratch_plans_only_its_cache) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 0, .k_type = PVK_F16, .v_type = PVK_F16, .ctx = 4096,
                     .batch = 512, .budget = 2 * GiB, .int8 = true, .shared = true};
    plan p;
    CHECK(plan_make(&in, &p) == PHIVK_OK && p.scratch_bytes == 0 && p.total == p.kv_bytes &&
              p.kv_bytes == 3 * GiB / 2,
          "1.5 GiB of cache, no scratch: %s", pvk_errmsg());
    in.budget = GiB;
    CHECK(plan_make(&in, &p) == PHIVK_ERR_DEVICE_MEMORY && strstr(pvk_errmsg(), "another slot") &&
              strstr(pvk_errmsg(), "1.50 GiB"),
          "refused where it does not fit: %s", pvk_errmsg());
}
