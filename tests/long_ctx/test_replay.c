/* A decode recorded once and replayed (PHIVK_REPLAY=1, model/session.c "records_once")
 * against the same decode recorded every token (the kill switch, PHIVK_REPLAY=0), on
 * a tiny synthetic Phi-3 with LongRoPE whose original context is 200 tokens and a
 * sliding window of 384 in a context of 512: 300 single-token steps from position
 * 100 cross the LongRoPE switch (200), two growths of attention's split-K grid
 * (keys 256 and 384: one split per 128 keys, the window caps it at 3) and the start
 * of the window's sliding (384); the same for GPT-Neo (learned positions, local
 * layers). Validation layer on; a message fails the case. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu.h"
#include "model_impl.h"
#include "session_kv.h"
#include "synth.h"

#define CTX 512
#define ORIG_CTX 200
#define WINDOW 384
#define PROMPT 100
#define STEPS 300
#define NV 400

typedef struct fixture {
    char path[64];
    phivk_model *m;
} fixture;

/* The Phi-3 of the file's comment. */
static synth_params tiny_phi3(void) {
    synth_params p = synth_default_params();
    p.arch = "phi3";
    p.n_vocab = NV;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 128;
    p.n_ctx = CTX;
    p.longrope = true;
    p.rope_orig_ctx = ORIG_CTX;
    p.sliding_window = WINDOW;
    p.wtype = PVK_F32;
    return p;
}

/* GPT-Neo: learned positions (add_rows), local layers with a window of 9 beside
 * global ones, no RoPE. */
static synth_params tiny_gptneo(void) {
    synth_params p = tiny_phi3();
    p.arch = "gptneo";
    p.n_head_kv = p.n_head;
    p.longrope = false;
    p.rope_orig_ctx = 0;
    p.tied_output = true;
    p.sliding_window = 9;
    return p;
}

static bool fixture_open(fixture *fx, synth_params p) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "/tmp/phivk-replay-XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0) return false;
    close(fd);
    if (synth_save(&p, fx->path)) {
        printf("    fixture: %s\n", pvk_errmsg());
        return false;
    }
    fx->m = phivk_model_load(test_gpu_runtime(), fx->path, NULL);
    if (!fx->m) printf("    load: %s\n", phivk_last_error());
    return fx->m != NULL;
}

static void fixture_close(fixture *fx) {
    phivk_model_free(fx->m);
    unlink(fx->path);
}

static void token_ids(int32_t *ids, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((seed >> 8) % (NV - 3u));
    }
}

/* A session that replays its decode (replay) or records every token; PHIVK_REPLAY
 * is read when a session is created. */
static phivk_session *session(phivk_model *m, bool replay, phivk_kv_type t, phivk_session *share) {
    setenv("PHIVK_REPLAY", replay ? "1" : "0", 1);
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = CTX;
    sp.k_type = sp.v_type = t;
    sp.share_scratch = share;
    phivk_session *s = phivk_session_create(m, &sp);
    unsetenv("PHIVK_REPLAY");
    if (!s) printf("    session: %s\n", phivk_last_error());
    return s;
}

/* 300 steps of the model p, each token's logits compared. Both run the same kernels with the same
 * grids on the same inputs; only where the position comes from (a buffer, a push
 * constant) and how much of the cache is bound differ, so the logits are identical
 * (compared bit for bit). The replaying session records at its first step, at the
 * switch (after the re-prefill, which records itself) and at the two growths of the
 * grid: 4 steps of 300 record, the others replay. Its device memory stays as it was
 * after the first step. */
static void replay_matches(synth_params p, phivk_kv_type t, int want_recorded) {
    fixture fx;
    REQUIRE(fixture_open(&fx, p), "fixture");
    int32_t ids[PROMPT + STEPS];
    token_ids(ids, PROMPT + STEPS, 7);
    phivk_session *r = session(fx.m, true, t, NULL), *f = session(fx.m, false, t, NULL);
    bool ok = r && f && phivk_decode(r, ids, PROMPT, NULL, false) == PHIVK_OK &&
              phivk_decode(f, ids, PROMPT, NULL, false) == PHIVK_OK;
    int differ = 0, compared = 0, recorded = 0, first_differ = -1;
    double host[2][2] = {{0}};   /* [replaying, recording session][recorded, replayed steps] host seconds */
    int counted[2] = {0};
    uint64_t alloc0 = 0, used0 = 0;
    for (int i = 0; ok && i < STEPS; i++) {
        float a[NV], b[NV];
        uint64_t before = session_recordings(r);
        ok = phivk_decode(r, ids + PROMPT + i, 1, a, false) == PHIVK_OK &&
             phivk_decode(f, ids + PROMPT + i, 1, b, false) == PHIVK_OK;
        if (!ok) break;
        bool rec = session_recordings(r) != before;
        recorded += rec;
        if (rec) printf("    step at position %d recorded\n", PROMPT + i);
        host[0][!rec] += phivk_session_last_step(r).host_s;
        host[1][!rec] += phivk_session_last_step(f).host_s;
        counted[!rec]++;
        compared++;
        if (memcmp(a, b, sizeof a)) {
            differ++;
            if (first_differ < 0) first_differ = PROMPT + i;
        }
        if (i == 0) pvk_mem_stats(fx.m->rt->dev, &alloc0, &used0);
    }
    CHECK(ok, "runs: %s", pvk_errmsg());
    uint64_t alloc1 = 0, used1 = 0;
    pvk_mem_stats(fx.m->rt->dev, &alloc1, &used1);
    printf("    %s cache: %d steps compared, %d differ (first at %d); %d recorded, %d replayed\n",
           phivk_kv_type_name(t), compared, differ, first_differ, recorded, compared - recorded);
    for (int k = 0; k < 2 && counted[0] && counted[1]; k++)
        printf("    host ms per token, %s: the %d steps the replaying session recorded %.3f, the %d it "
               "replayed %.3f\n", k ? "session recording every token" : "replaying session", counted[0],
               1e3 * host[k][0] / counted[0], counted[1], 1e3 * host[k][1] / counted[1]);
    CHECK(compared == STEPS, "compared %d of %d steps", compared, STEPS);
    CHECK(differ == 0, "%d steps' logits differ from the recorded decode's, the first at position %d", differ,
          first_differ);
    CHECK(recorded == want_recorded, "%d steps recorded, not %d: the first, the switch (Phi-3) and two grid "
          "growths should", recorded, want_recorded);
    CHECK(alloc1 == alloc0 && used1 == used0, "device memory grew: allocated %llu -> %llu, used %llu -> %llu",
          (unsigned long long)alloc0, (unsigned long long)alloc1, (unsigned long long)used0,
          (unsigned long long)used1);
    phivk_session_free(r);
    phivk_session_free(f);
    fixture_close(&fx);
}

TEST(replayed_decode_matches_recorded_across_bucket_longrope_switch_and_window_f16) {
    replay_matches(tiny_phi3(), PHIVK_KV_F16, 4);
}

TEST(replayed_decode_matches_recorded_across_bucket_longrope_switch_and_window_q4_0) {
    replay_matches(tiny_phi3(), PHIVK_KV_Q4_0, 4);
}

/* GPT-Neo's position rows come from the same buffer; its global layers' grid grows
 * at 256 and 384 keys (its local layers' stays at the window's): 3 steps record. */
TEST(replayed_gptneo_decode_matches_recorded_with_learned_positions_and_local_layers) {
    replay_matches(tiny_gptneo(), PHIVK_KV_F16, 3);
}

/* A cancel before a replayed step stops it: nothing runs, the position stays; the
 * next step runs (replayed) and matches a session never cancelled. */
TEST(cancel_stops_a_replayed_decode_within_one_token) {
    fixture fx;
    REQUIRE(fixture_open(&fx, tiny_phi3()), "fixture");
    int32_t ids[16];
    token_ids(ids, 16, 3);
    phivk_session *r = session(fx.m, true, PHIVK_KV_F16, NULL), *f = session(fx.m, false, PHIVK_KV_F16, NULL);
    float a[NV], b[NV];
    bool ok = r && f && phivk_decode(r, ids, 8, NULL, false) == PHIVK_OK &&
              phivk_decode(f, ids, 8, NULL, false) == PHIVK_OK;
    for (int i = 8; ok && i < 11; i++) ok = phivk_decode(r, ids + i, 1, a, false) == PHIVK_OK;
    for (int i = 8; ok && i < 12; i++) ok = phivk_decode(f, ids + i, 1, b, false) == PHIVK_OK;
    REQUIRE(ok, "runs: %s", pvk_errmsg());
    phivk_cancel(r);
    phivk_status st = phivk_decode(r, ids + 11, 1, a, false);
    CHECK(st == PHIVK_ERR_CANCELLED, "a cancelled step returned %d", (int)st);
    CHECK(phivk_session_pos(r) == 11, "position after the cancel: %d, not 11", phivk_session_pos(r));
    uint64_t before = session_recordings(r);
    CHECK(phivk_decode(r, ids + 11, 1, a, false) == PHIVK_OK, "the next step: %s", pvk_errmsg());
    CHECK(session_recordings(r) == before, "the step after the cancel recorded instead of replaying");
    CHECK(!memcmp(a, b, sizeof a), "the step after the cancel differs from a session never cancelled");
    phivk_session_free(r);
    phivk_session_free(f);
    fixture_close(&fx);
}

/* Two sessions sharing one command buffer (share_scratch) take turns: each finds
 * the other's recording there and records its own, and both match sessions of
 * their own that record every token. */
TEST(sessions_sharing_scratch_take_turns_and_match) {
    fixture fx;
    REQUIRE(fixture_open(&fx, tiny_phi3()), "fixture");
    int32_t ids[2][40];
    token_ids(ids[0], 40, 21);
    token_ids(ids[1], 40, 22);
    phivk_session *o = session(fx.m, true, PHIVK_KV_F16, NULL);
    phivk_session *s = o ? session(fx.m, true, PHIVK_KV_F16, o) : NULL;
    phivk_session *fo = session(fx.m, false, PHIVK_KV_F16, NULL), *fs = session(fx.m, false, PHIVK_KV_F16, NULL);
    phivk_session *rep[2] = {o, s}, *fresh[2] = {fo, fs};
    bool ok = o && s && fo && fs;
    for (int k = 0; ok && k < 2; k++)
        ok = phivk_decode(rep[k], ids[k], 8 + k, NULL, false) == PHIVK_OK &&
             phivk_decode(fresh[k], ids[k], 8 + k, NULL, false) == PHIVK_OK;
    int differ = 0, compared = 0;
    for (int i = 0; ok && i < 20; i++)
        for (int k = 0; ok && k < 2; k++) {
            float a[NV], b[NV];
            ok = phivk_decode(rep[k], ids[k] + 8 + k + i, 1, a, false) == PHIVK_OK &&
                 phivk_decode(fresh[k], ids[k] + 8 + k + i, 1, b, false) == PHIVK_OK;
            compared += ok;
            differ += ok && memcmp(a, b, sizeof a) != 0;
        }
    CHECK(ok, "runs: %s", pvk_errmsg());
    CHECK(compared == 40 && differ == 0, "%d of %d steps differ", differ, compared);
    phivk_session_free(s);
    phivk_session_free(o);
    phivk_session_free(fo);
    phivk_session_free(fs);
    fixture_close(&fx);
}
