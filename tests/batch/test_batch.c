/* Sessions decoding together (phivk_decode_batch) against the same sessions
 * decoding alone (phivk_decode), on synthetic models on lavapipe with the
 * validation layer on: each row's logits and greedy tokens, at different
 * positions, across a sliding window and a LongRoPE switch; a full context, a
 * cancel and bad batches refused with none advanced; sessions sharing one
 * scratch allocate only their caches; a server's slots that do not fit are
 * refused with the numbers. */
#define HARNESS_MAIN
#include "gpu.h"
#include "harness.h"
#include "testdata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "session_kv.h"
#include "synth.h"

/* At most this many sessions per test. */
#define MAX_N 8

static phivk_model *load(const synth_params *p, void **image) {
    size_t size;
    *image = NULL;
    if (synth_build(p, image, &size) != PHIVK_OK) {
        printf("    synth: %s\n", pvk_errmsg());
        return NULL;
    }
    phivk_model *m = phivk_model_load_memory(test_gpu_runtime(), *image, size, "batch", NULL);
    if (!m) printf("    load: %s\n", phivk_last_error());
    return m;
}

static synth_params small(const char *arch) {
    synth_params p = synth_default_params();
    p.arch = arch;
    p.n_vocab = 400;
    p.n_embd = 128;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_ff = 192;
    p.n_ctx = 512;
    p.wtype = PVK_F32;
    return p;
}

static void ids_for(int32_t *ids, int n, int n_vocab, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(n_vocab - 3));
    }
}

/* n sessions that decode together: the first owns the scratch (planned for n
 * slots), the others share it. */
static bool open_slots(phivk_model *m, int n, int32_t ctx, phivk_session **s) {
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = ctx;
    sp.slots = n;
    memset(s, 0, sizeof *s * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (i) sp.share_scratch = s[0];
        if (!(s[i] = phivk_session_create(m, &sp))) {
            printf("    slot %d: %s\n", i, phivk_last_error());
            return false;
        }
    }
    return true;
}

static void close_slots(phivk_session **s, int n) {
    for (int i = n - 1; i >= 0; i--) phivk_session_free(s[i]);   /* the owner last */
}

/* The bound for a row of the batch against the same session alone. Both run in
 * fp32 (f32 or f16 weights: no int8 activations on either path) and the same
 * attention kernel over the same cache, but the projections at m = n rows may
 * take another kernel than matvec at m = 1, which sums each dot product of K
 * terms in another order: |error| <= K 2^-24 sum|terms| per product, through two
 * layers and the head a few times 1e-5 of the logits' range; 1e-3 of it (as
 * prefill against token by token in tests/model_gpu) leaves room and still
 * catches a row that read another session's cache or position, which moves
 * logits by their whole range. */
static double bound_of(const float *v, int n) {
    double amax = 0;
    for (int i = 0; i < n; i++) amax = fmax(amax, fabs(v[i]));
    return 1e-3 * fmax(1.0, amax);
}

/* Sessions with prompts of prompt[i] tokens, then `steps` greedy steps decoded
 * together and alone: every step, each row within the bound of the session alone
 * and the same greedy token (a tie within the bound, where rounding may break
 * either way, continues with the lone session's pick and is counted; at most one
 * in 8). Returns the largest difference seen. */
static double check_together_vs_alone(const synth_params *p, int n, const int *prompt, int steps, int32_t ctx) {
    void *image;
    phivk_model *m = load(p, &image);
    double worst = -1;
    if (!m) {
        CHECK(false, "model");
        free(image);
        return worst;
    }
    int nv = phivk_model_n_vocab(m);
    phivk_session *batch[MAX_N], *alone[MAX_N] = {0};
    bool ok = open_slots(m, n, ctx, batch);
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = ctx;
    for (int i = 0; ok && i < n; i++) ok = (alone[i] = phivk_session_create(m, &sp)) != NULL;
    float *lb = malloc(sizeof *lb * (size_t)n * nv), *la = malloc(sizeof *la * (size_t)n * nv);
    int32_t next[MAX_N], ids[256];
    int compared = 0, ties = 0;
    for (int i = 0; ok && i < n; i++) {
        ids_for(ids, prompt[i], nv, 11 + (uint32_t)i);
        ok = phivk_decode(batch[i], ids, prompt[i], NULL, false) == PHIVK_OK &&
             phivk_decode(alone[i], ids, prompt[i], la + (size_t)i * nv, false) == PHIVK_OK;
        next[i] = vec_argmax(la + (size_t)i * nv, nv);
    }
    CHECK(ok, "prompts: %s", phivk_last_error());
    worst = 0;
    for (int t = 0; ok && t < steps; t++) {
        ok = phivk_decode_batch(batch, next, n, lb) == PHIVK_OK;
        CHECK(ok, "step %d together: %s", t, phivk_last_error());
        for (int i = 0; ok && i < n; i++) {
            const float *a = la + (size_t)i * nv, *b = lb + (size_t)i * nv;
            ok = phivk_decode(alone[i], &next[i], 1, la + (size_t)i * nv, false) == PHIVK_OK;
            CHECK(ok, "step %d alone, session %d: %s", t, i, phivk_last_error());
            if (!ok) break;
            double diff = 0, bound = bound_of(a, nv);
            for (int v = 0; v < nv; v++) diff = fmax(diff, fabs(a[v] - b[v]));
            worst = fmax(worst, diff);
            CHECK(diff <= bound, "step %d, session %d (position %d): together vs alone differ by %g > %g", t, i,
                  phivk_session_pos(alone[i]) - 1, diff, bound);
            int32_t ga = vec_argmax(a, nv), gb = vec_argmax(b, nv);
            if (ga != gb) {
                CHECK(a[ga] - a[gb] < bound, "step %d, session %d: greedy %d together, %d alone (gap %g)", t, i,
                      gb, ga, a[ga] - a[gb]);
                ties++;
            }
            next[i] = ga;
            compared++;
        }
        for (int i = 0; ok && i < n; i++)
            CHECK(phivk_session_pos(batch[i]) == phivk_session_pos(alone[i]), "session %d at %d, alone at %d", i,
                  phivk_session_pos(batch[i]), phivk_session_pos(alone[i]));
    }
    printf("    %s, %d sessions: %d rows compared over %d steps, max diff %.3g, %d ties\n", p->arch, n, compared,
           steps, worst, ties);
    CHECK(compared == n * steps, "compared %d rows, want %d", compared, n * steps);
    CHECK(ties * 8 <= compared, "%d ties in %d rows", ties, compared);
    free(lb);
    free(la);
    for (int i = 0; i < n; i++) phivk_session_free(alone[i]);
    close_slots(batch, n);
    phivk_model_free(m);
    free(image);
    return worst;
}

/* Four sessions at positions 2, 5, 8 and 13 with a sliding window of 9: in 12
 * steps each crosses the window at its own step (attention reads only its own
 * cache, from its own position). */
TEST(each_session_of_a_batch_gets_what_it_gets_alone_across_its_sliding_window) {
    synth_params p = small("phi3");
    p.sliding_window = 9;
    static const int prompt[4] = {2, 5, 8, 13};
    check_together_vs_alone(&p, 4, prompt, 12, 64);
}

/* Llama with GQA, f16 weights and a tied head, eight sessions: the batch's m = 8. */
TEST(eight_llama_gqa_sessions_decode_together_as_alone) {
    synth_params p = small("llama");
    p.n_head_kv = 2;
    p.tied_output = true;
    p.wtype = PVK_F16;
    static const int prompt[8] = {1, 2, 3, 5, 8, 13, 21, 34};
    check_together_vs_alone(&p, 8, prompt, 10, 64);
}

/* Phi-2's parallel block, head_dim 80 with 32 rotated dims. */
TEST(phi2_sessions_decode_together_as_alone) {
    synth_params p = small("phi2");
    p.n_embd = 160;
    p.n_head = 2;
    p.n_head_kv = 2;
    p.n_rot = 32;
    static const int prompt[3] = {4, 1, 9};
    check_together_vs_alone(&p, 3, prompt, 10, 64);
}

/* LongRoPE with an original context of 16: the session at 14 switches to the
 * long table after two steps (its cache is re-prefilled, as alone), the one at
 * 6 after ten, the one at 2 never; the others keep theirs meanwhile. */
TEST(a_longrope_switch_in_one_session_re_prefills_it_alone) {
    synth_params p = small("phi3");
    p.longrope = true;
    p.rope_orig_ctx = 16;
    static const int prompt[3] = {2, 14, 6};
    check_together_vs_alone(&p, 3, prompt, 12, 64);
}

/* ------------------------------------------------------------ refusals */

typedef struct pair {
    void *image;
    phivk_model *m;
    phivk_session *s[3];
} pair;

/* A model and three slots (ctx 32, the last 8); each holds 3 tokens. */
static bool open_pair(pair *q) {
    synth_params p = small("llama");
    memset(q, 0, sizeof *q);
    if (!(q->m = load(&p, &q->image))) return false;
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 32;
    sp.slots = 3;
    if (!(q->s[0] = phivk_session_create(q->m, &sp))) return false;
    sp.share_scratch = q->s[0];
    if (!(q->s[1] = phivk_session_create(q->m, &sp))) return false;
    sp.ctx = 8;
    if (!(q->s[2] = phivk_session_create(q->m, &sp))) return false;
    int32_t ids[3] = {5, 6, 7};
    for (int i = 0; i < 3; i++)
        if (phivk_decode(q->s[i], ids, 3, NULL, false) != PHIVK_OK) return false;
    return true;
}

static void close_pair(pair *q) {
    close_slots(q->s, 3);
    phivk_model_free(q->m);
    free(q->image);
}

static bool positions(const pair *q, int a, int b, int c) {
    return phivk_session_pos(q->s[0]) == a && phivk_session_pos(q->s[1]) == b && phivk_session_pos(q->s[2]) == c;
}

TEST(a_full_session_refuses_the_step_and_none_advances) {
    pair q;
    bool ok = open_pair(&q);
    REQUIRE(ok, "slots: %s", phivk_last_error());
    int32_t fill[5] = {9, 9, 9, 9, 9}, tok[3] = {10, 11, 12};
    CHECK(phivk_decode(q.s[2], fill, 5, NULL, false) == PHIVK_OK, "fill the short slot");
    CHECK(phivk_decode_batch(q.s, tok, 3, NULL) == PHIVK_ERR_CONTEXT_FULL, "a full slot: CONTEXT_FULL");
    CHECK(strstr(phivk_last_error(), "session 2"), "the message names it: %s", phivk_last_error());
    CHECK(positions(&q, 3, 3, 8), "none advanced");
    CHECK(phivk_decode_batch(q.s, tok, 2, NULL) == PHIVK_OK, "without it the others run: %s", phivk_last_error());
    CHECK(positions(&q, 4, 4, 8), "and advance by one");
    close_pair(&q);
}

TEST(a_cancelled_session_stops_the_step_before_it_runs_once) {
    pair q;
    bool ok = open_pair(&q);
    REQUIRE(ok, "slots: %s", phivk_last_error());
    int32_t tok[3] = {10, 11, 12};
    phivk_cancel(q.s[1]);
    CHECK(phivk_decode_batch(q.s, tok, 3, NULL) == PHIVK_ERR_CANCELLED, "cancelled");
    CHECK(strstr(phivk_last_error(), "session 1"), "the message names it: %s", phivk_last_error());
    CHECK(positions(&q, 3, 3, 3), "none advanced");
    CHECK(phivk_decode_batch(q.s, tok, 3, NULL) == PHIVK_OK, "the request is consumed: %s", phivk_last_error());
    CHECK(positions(&q, 4, 4, 4), "all advanced");
    close_pair(&q);
}

TEST(bad_batches_are_refused_with_a_reason_and_none_advances) {
    pair q;
    bool ok = open_pair(&q);
    REQUIRE(ok, "slots: %s", phivk_last_error());
    int32_t tok[3] = {10, 11, 12}, bad[3] = {10, 400, 12};
    phivk_session *twice[2] = {q.s[1], q.s[1]};
    CHECK(phivk_decode_batch(twice, tok, 2, NULL) == PHIVK_ERR_INVALID && strstr(phivk_last_error(), "same"),
          "one session twice: %s", phivk_last_error());
    CHECK(phivk_decode_batch(q.s, bad, 3, NULL) == PHIVK_ERR_INVALID && strstr(phivk_last_error(), "400"),
          "a token outside the vocabulary: %s", phivk_last_error());
    CHECK(phivk_decode_batch(q.s, tok, 0, NULL) == PHIVK_ERR_INVALID, "no sessions");
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 32;
    phivk_session *own = phivk_session_create(q.m, &sp);
    phivk_session *mixed[2] = {q.s[0], own};
    CHECK(own && phivk_decode_batch(mixed, tok, 2, NULL) == PHIVK_ERR_INVALID &&
              strstr(phivk_last_error(), "share"),
          "a session with a scratch of its own: %s", phivk_last_error());
    phivk_session_free(own);
    sp.batch = 2;
    phivk_session *small_owner = phivk_session_create(q.m, &sp), *more[3] = {small_owner, NULL, NULL};
    sp.share_scratch = small_owner;
    for (int i = 1; i < 3 && small_owner; i++) more[i] = phivk_session_create(q.m, &sp);
    CHECK(more[2] && phivk_decode_batch(more, tok, 3, NULL) == PHIVK_ERR_INVALID &&
              strstr(phivk_last_error(), "batch"),
          "three rows in a scratch of two: %s", phivk_last_error());
    close_slots(more, 3);
    sp.share_scratch = q.s[0];
    sp.ctx = 64;
    phivk_session *longer = phivk_session_create(q.m, &sp);
    CHECK(!longer && strstr(phivk_last_error(), "longer than the owner"), "a context longer than the owner's: %s",
          phivk_last_error());
    phivk_session_free(longer);
    CHECK(positions(&q, 3, 3, 3), "none advanced");
    close_pair(&q);
}

/* ------------------------------------------------------------ memory */

/* What the allocator takes for a buffer of bytes: its granule, measured. */
static uint64_t granule(pvk_dev *d) {
    uint64_t before, after;
    pvk_buf b;
    pvk_mem_stats(d, NULL, &before);
    if (pvk_buf_create(d, 1, PVK_MEM_DEVICE, &b) != PHIVK_OK) return 0;
    pvk_mem_stats(d, NULL, &after);
    pvk_buf_destroy(d, &b);
    return after - before;
}

/* A slot sharing the owner's scratch allocates its KV cache and nothing else,
 * exactly its table's cache rows; its plan says so. */
TEST(a_slot_sharing_scratch_allocates_only_its_kv_cache) {
    synth_params p = small("phi3");
    void *image;
    phivk_model *m = load(&p, &image);
    REQUIRE(m, "model");
    pvk_dev *d = test_gpu_runtime()->dev;
    uint64_t g = granule(d), a0, a1, a2;
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 100;
    sp.slots = 2;
    pvk_mem_stats(d, NULL, &a0);
    phivk_session *owner = phivk_session_create(m, &sp);
    pvk_mem_stats(d, NULL, &a1);
    sp.share_scratch = owner;
    sp.ctx = 0;   /* the owner's */
    phivk_session *slot = owner ? phivk_session_create(m, &sp) : NULL;
    pvk_mem_stats(d, NULL, &a2);
    REQUIRE(owner && slot && g, "slots: %s", phivk_last_error());
    const plan *pl = session_plan_of(slot);
    uint64_t want = 0;
    for (int i = 0; i < PLAN_N_BUFS; i++) want += pl->rows[i].count * ((pl->rows[i].bytes + g - 1) / g * g);
    CHECK(phivk_session_ctx(slot) == 100, "the owner's context: %d", phivk_session_ctx(slot));
    CHECK(pl->scratch_bytes == 0 && pl->kv_bytes > 0 && a2 - a1 == want,
          "the slot took %llu bytes, its cache rows %llu (scratch rows %llu)", (unsigned long long)(a2 - a1),
          (unsigned long long)want, (unsigned long long)pl->scratch_bytes);
    CHECK(a1 - a0 > a2 - a1, "the owner (%llu bytes) holds more than a slot", (unsigned long long)(a1 - a0));
    CHECK(session_plan_of(owner)->total ==
              session_plan_of(owner)->weight_bytes + 2 * session_plan_of(owner)->kv_bytes +
                  session_plan_of(owner)->scratch_bytes,
          "the owner's plan counts two caches");
    char *text = phivk_session_plan_text(slot);
    CHECK(text && strstr(text, "sharing"), "the slot's plan says it shares: %s", text ? text : "(none)");
    free(text);
    int32_t ids[2] = {5, 6};
    CHECK(phivk_decode(slot, ids, 2, NULL, false) == PHIVK_OK && phivk_decode(owner, ids, 1, NULL, false) == PHIVK_OK,
          "each still decodes alone: %s", phivk_last_error());
    phivk_session_free(slot);
    phivk_session_free(owner);
    phivk_model_free(m);
    free(image);
}

/* More slots than the device holds are refused before anything is allocated,
 * with the cache per slot, the slots' total and the budget. */
TEST(slots_that_do_not_fit_are_refused_with_the_numbers) {
    synth_params p = small("phi3");
    void *image;
    phivk_model *m = load(&p, &image);
    REQUIRE(m, "model");
    pvk_dev *d = test_gpu_runtime()->dev;
    uint64_t before, after;
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 512;
    sp.slots = 1 << 30;   /* 256 KiB per slot: 256 TiB */
    pvk_mem_stats(d, &before, NULL);
    phivk_session *s = phivk_session_create(m, &sp);
    pvk_mem_stats(d, &after, NULL);
    const char *msg = phivk_last_error();
    CHECK(!s && strstr(msg, "1073741824 slots") && strstr(msg, "per slot") && strstr(msg, "usable of"),
          "refused with the numbers: %s", s ? "(created)" : msg);
    CHECK(after == before, "nothing was allocated");
    phivk_session_free(s);
    phivk_model_free(m);
    free(image);
}
