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
                         .v_type = cases[i].t, .ctx = cases[i].ctx, .batch = 512, .logit_rows = 1,
                         .budget = 1024 * GiB};
        plan p;
        CHECK(plan_make(&in, &p) == PVK_OK, "case %zu: %s", i, pvk_errmsg());
        CHECK(p.kv_bytes == cases[i].want, "case %zu: cache %llu bytes, want %llu", i,
              (unsigned long long)p.kv_bytes, (unsigned long long)cases[i].want);
    }
}

/* The target: Phi-3-mini (Q4_K_M weights, 2.39 GB) at 131072 tokens with
 * Q4_0 K and V plans under 16 GiB in total. */
TEST(phi3_mini_128k_with_q4_0_cache_plans_under_16_gib) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_Q4_0,
                     .v_type = PVK_Q4_0, .ctx = 131072, .batch = 512, .logit_rows = 261,
                     .budget = 24 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PVK_OK, "%s", pvk_errmsg());
    CHECK(p.total < 16 * GiB, "total %.2f GiB", p.total / (double)GiB);
    CHECK(p.scratch_bytes < 256 * MiB, "scratch %.1f MiB stays small", p.scratch_bytes / (double)MiB);
}

/* Attention's partials as the device's tuning splits them (lavapipe splits a long
 * prefill for its loop limit) count in full when they exceed the estimate. */
TEST(the_devices_attention_partials_count_when_larger_than_the_estimate) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_Q4_0,
                     .v_type = PVK_Q4_0, .ctx = 131072, .batch = 512, .logit_rows = 261,
                     .budget = 24 * GiB};
    plan base, more;
    CHECK(plan_make(&in, &base) == PVK_OK, "%s", pvk_errmsg());
    in.attn_bytes = 1024;   /* below the estimate: the estimate stays */
    CHECK(plan_make(&in, &more) == PVK_OK && more.scratch_bytes == base.scratch_bytes, "estimate kept");
    in.attn_bytes = 64 * MiB;
    CHECK(plan_make(&in, &more) == PVK_OK, "%s", pvk_errmsg());
    CHECK(more.scratch_bytes > base.scratch_bytes + 60 * MiB && more.total == more.scratch_bytes +
              more.kv_bytes + more.weight_bytes,
          "64 MiB of partials are planned for (scratch %.1f -> %.1f MiB)", base.scratch_bytes / (double)MiB,
          more.scratch_bytes / (double)MiB);
}

TEST(a_context_that_does_not_fit_is_refused_with_numbers_and_options) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2393232384ull, .k_type = PVK_F16,
                     .v_type = PVK_F16, .ctx = 131072, .batch = 512, .logit_rows = 1,
                     .budget = 24 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PVK_ERR_DEVICE_MEMORY, "48 GiB of cache in 24 GiB");
    const char *msg = pvk_errmsg();
    CHECK(strstr(msg, "131072") && strstr(msg, "48.00 GiB") && strstr(msg, "q4_0") &&
              strstr(msg, "-c auto"),
          "message gives the numbers and the options: %s", msg);
}

TEST(auto_context_is_the_largest_multiple_of_256_that_fits) {
    arch_hparams hp = phi3_mini();
    plan_input in = {.hp = &hp, .weight_bytes = 2 * GiB, .k_type = PVK_F16, .v_type = PVK_F16,
                     .ctx = 0, .batch = 512, .logit_rows = 1, .budget = 8 * GiB};
    plan p;
    CHECK(plan_make(&in, &p) == PVK_OK, "%s", pvk_errmsg());
    CHECK(p.ctx % 256 == 0 && p.ctx > 0, "ctx %d", p.ctx);
    CHECK(p.total <= in.budget / 10 * 9, "fits in 90%% of the budget");
    CHECK(p.total + 256 * p.kv_bytes_per_token > in.budget / 10 * 9, "256 more tokens would not fit");
    in.budget = 1024 * GiB;
    CHECK(plan_make(&in, &p) == PVK_OK && p.ctx == 131072, "with room: the model's context");
    in.budget = 2 * GiB;
    CHECK(plan_make(&in, &p) == PVK_ERR_DEVICE_MEMORY, "weights alone fill the device");
}
