/* The sampler of include/phivk.h: greedy, top-k, top-p, min-p, temperature,
 * repetition penalty, seeded determinism. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdint.h>

#include "phivk.h"

static phivk_sampler_params plain(float temp) {
    phivk_sampler_params p = phivk_sampler_default_params();
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

/* Deterministic pseudo-random logits in [-5, 5). */
static void fill_logits(float *v, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / (float)(1u << 24) * 10.0f - 5.0f;
    }
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Draws n tokens from the same logits (copied each time: the sampler may modify
 * them) and counts each id. */
static void histogram(phivk_sampler *s, const float *logits, int V, int draws, int *count) {
    float *tmp = malloc((size_t)V * sizeof *tmp);
    memset(count, 0, (size_t)V * sizeof *count);
    for (int i = 0; i < draws; i++) {
        memcpy(tmp, logits, (size_t)V * sizeof *tmp);
        int id = phivk_sampler_sample(s, tmp, V);
        if (id >= 0 && id < V) count[id]++;
    }
    free(tmp);
}

TEST(sampler_greedy_is_argmax) {
    phivk_sampler_params p = plain(0.0f);
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    float v[1000], c[1000];
    for (uint32_t k = 0; k < 20; k++) {
        fill_logits(v, 1000, k);
        memcpy(c, v, sizeof v);
        CHECK(phivk_sampler_sample(s, c, 1000) == argmax(v, 1000), "seed %u", k);
    }
    phivk_sampler_free(s);
}

TEST(sampler_top_k_1_is_greedy_at_any_temperature) {
    phivk_sampler_params p = plain(1.5f);
    p.top_k = 1;
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    float v[51200], c[51200];
    for (uint32_t k = 0; k < 5; k++) {
        fill_logits(v, 51200, k + 100);
        memcpy(c, v, sizeof v);
        CHECK(phivk_sampler_sample(s, c, 51200) == argmax(v, 51200), "seed %u", k);
    }
    phivk_sampler_free(s);
}

TEST(sampler_same_seed_same_tokens_other_seed_others) {
    phivk_sampler_params p = phivk_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.min_p = 0;
    p.seed = 42;
    phivk_sampler *a = phivk_sampler_create(&p), *b = phivk_sampler_create(&p);
    p.seed = 43;
    phivk_sampler *c = phivk_sampler_create(&p);
    REQUIRE(a && b && c, "%s", phivk_last_error());
    float v[512], t[512];
    int same_ab = 0, same_ac = 0;
    int first[100];
    for (int i = 0; i < 100; i++) {
        fill_logits(v, 512, 7);
        for (int j = 0; j < 512; j++) v[j] *= 0.2f; /* flat: many candidates */
        memcpy(t, v, sizeof v);
        int x = phivk_sampler_sample(a, t, 512);
        memcpy(t, v, sizeof v);
        int y = phivk_sampler_sample(b, t, 512);
        memcpy(t, v, sizeof v);
        int z = phivk_sampler_sample(c, t, 512);
        first[i] = x;
        same_ab += x == y;
        same_ac += x == z;
    }
    CHECK(same_ab == 100, "same seed agreed on %d/100 draws", same_ab);
    CHECK(same_ac < 50, "another seed agreed on %d/100 draws", same_ac);
    /* reset replays the sequence */
    phivk_sampler_reset(a);
    int replay = 0;
    for (int i = 0; i < 100; i++) {
        fill_logits(v, 512, 7);
        for (int j = 0; j < 512; j++) v[j] *= 0.2f;
        replay += phivk_sampler_sample(a, v, 512) == first[i];
    }
    CHECK(replay == 100, "reset replayed %d/100", replay);
    phivk_sampler_free(a);
    phivk_sampler_free(b);
    phivk_sampler_free(c);
}

/* p = 0.5, 0.3, 0.15, 0.05: top-p 0.7 keeps the first two (0.5 < 0.7 <= 0.8). */
TEST(sampler_top_p_keeps_the_nucleus_only) {
    const float v[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    for (int k = 0; k <= 3; k += 3) { /* unsorted heap path and the top-k sorted path */
        phivk_sampler_params p = plain(1.0f);
        p.top_p = 0.7f;
        p.top_k = k;
        phivk_sampler *s = phivk_sampler_create(&p);
        REQUIRE(s, "%s", phivk_last_error());
        int count[4];
        histogram(s, v, 4, 2000, count);
        CHECK(count[2] == 0 && count[3] == 0, "top_k %d: outside the nucleus drawn %d, %d times", k,
              count[2], count[3]);
        /* renormalised 0.5/0.8 = 0.625: 2000 draws have std 11, allow 6 std */
        CHECK(abs(count[0] - 1250) < 66, "top_k %d: id 0 drawn %d times, want ~1250", k, count[0]);
        phivk_sampler_free(s);
    }
}

/* min-p 0.2 with p_max 0.5 drops everything below 0.1: only id 3 (0.05). */
TEST(sampler_min_p_drops_unlikely_tokens) {
    const float v[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    phivk_sampler_params p = plain(1.0f);
    p.min_p = 0.2f;
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    int count[4];
    histogram(s, v, 4, 2000, count);
    CHECK(count[3] == 0, "id 3 (p 0.05 < 0.2 * 0.5) drawn %d times", count[3]);
    CHECK(count[2] > 0, "id 2 (p 0.15 >= 0.1) never drawn");
    phivk_sampler_free(s);
}

TEST(sampler_top_k_draws_only_from_the_k_best) {
    enum { V = 51200, K = 40 };
    static float v[V], sorted[V];
    fill_logits(v, V, 99);
    memcpy(sorted, v, sizeof v);
    /* the K-th largest value, by selection */
    float kth = 0;
    for (int r = 0; r < K; r++) {
        int b = argmax(sorted, V);
        kth = sorted[b];
        sorted[b] = -INFINITY;
    }
    phivk_sampler_params p = plain(3.0f); /* hot: would roam widely without top-k */
    p.top_k = K;
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    static int count[V];
    histogram(s, v, V, 2000, count);
    int outside = 0, distinct = 0;
    for (int i = 0; i < V; i++) {
        if (count[i] && v[i] < kth) outside++;
        distinct += count[i] > 0;
    }
    CHECK(outside == 0, "%d ids outside the top %d were drawn", outside, K);
    CHECK(distinct > K / 2, "only %d distinct ids: temperature had no effect", distinct);
    phivk_sampler_free(s);
}

/* Frequencies of 20000 draws at temp 1 and 2 (p^(1/T) renormalised) within 0.02
 * of the exact probabilities (one draw's std is <= 0.0035, so 0.02 is > 5 std). */
TEST(sampler_temperature_draws_follow_the_distribution) {
    const double prob[4] = {0.1, 0.2, 0.3, 0.4};
    float v[4];
    for (int i = 0; i < 4; i++) v[i] = (float)log(prob[i]);
    const float temps[2] = {1.0f, 2.0f};
    for (int t = 0; t < 2; t++) {
        phivk_sampler_params p = plain(temps[t]);
        phivk_sampler *s = phivk_sampler_create(&p);
        REQUIRE(s, "%s", phivk_last_error());
        int count[4];
        histogram(s, v, 4, 20000, count);
        double z = 0;
        for (int i = 0; i < 4; i++) z += pow(prob[i], 1.0 / temps[t]);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(count[i] / 20000.0, pow(prob[i], 1.0 / temps[t]) / z, 0.02,
                       "sampling noise of 20000 draws");
        phivk_sampler_free(s);
    }
}

/* llama.cpp semantics: positive logits divided, negative multiplied, over the last
 * repeat_last_n accepted tokens only. */
TEST(sampler_repetition_penalty_discourages_recent_tokens) {
    phivk_sampler_params p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    phivk_sampler_accept(s, 0);
    float pos[3] = {2.0f, 1.5f, 0.0f}; /* 2.0 / 2 = 1.0 < 1.5 */
    CHECK(phivk_sampler_sample(s, pos, 3) == 1, "a positive logit must be divided");
    phivk_sampler_reset(s);
    phivk_sampler_accept(s, 0);
    float neg[3] = {-1.0f, -1.5f, -9.0f}; /* -1.0 * 2 = -2.0 < -1.5 */
    CHECK(phivk_sampler_sample(s, neg, 3) == 1, "a negative logit must be multiplied");
    /* history is now [0, 1]; accepting 2 pushes 0 out of the last 2 */
    phivk_sampler_accept(s, 2);
    float again[3] = {2.0f, 1.5f, 0.0f};
    CHECK(phivk_sampler_sample(s, again, 3) == 0, "token 0 left the window and is not penalised");
    phivk_sampler_free(s);
}

TEST(sampler_rejects_bad_settings_and_ignores_nan) {
    phivk_sampler_params p = plain(1.0f);
    p.top_p = 0.0f;
    CHECK(phivk_sampler_create(&p) == NULL, "top_p 0 accepted");
    CHECK(strstr(phivk_last_error(), "top-p") != NULL, "message: %s", phivk_last_error());
    p = plain(-1.0f);
    CHECK(phivk_sampler_create(&p) == NULL, "negative temperature accepted");
    p = plain(0.0f);
    phivk_sampler *s = phivk_sampler_create(&p);
    REQUIRE(s, "%s", phivk_last_error());
    float v[3] = {NAN, 1.0f, 0.5f};
    CHECK(phivk_sampler_sample(s, v, 3) == 1, "NaN must never win");
    CHECK(phivk_sampler_sample(s, v, 0) == -1, "no logits");
    phivk_sampler_free(s);
}
