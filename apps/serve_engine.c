#include "serve_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_common.h"

struct srv_job {
    srv_engine *e;
    /* set at submit, read-only afterwards */
    int32_t *tokens;
    int32_t n_tokens, max_tokens;
    phivk_sampler_params samp;
    char **stop;
    int n_stop;
    bool trim;
    /* the engine thread's alone */
    phivk_sampler *smp;
    phivk_detok *dt;
    /* under e->mu: the generated text, how much of it may be sent (a tail that could
     * begin a stop string is held back) and how much was taken */
    char *gen;
    size_t len, cap, pub, taken;
    srv_job_state st;
    int slot;                 /* -1 while queued */
    double t_submit;          /* app_now() at srv_engine_submit */
    bool in_engine;           /* queued or in a slot */
    bool released;            /* the HTTP side let go */
    pthread_cond_t cv;
    srv_job *next;            /* the queue */
};

typedef enum slot_state { SLOT_IDLE, SLOT_PREFILL, SLOT_GEN } slot_state;

typedef struct slot {
    phivk_session *sess;
    int32_t ctx;
    int32_t *cached;          /* the tokens in the session's cache, in order */
    int32_t n_cached;
    slot_state state;
    srv_job *job;
    int32_t next;             /* SLOT_GEN: the sampled token the next step decodes */
} slot;

struct srv_engine {
    const phivk_vocab *vocab;
    int32_t n_vocab;
    srv_engine_params p;
    slot *slots;
    int n_slots;
    float *logits;            /* n_slots x n_vocab: one decode step */
    phivk_session **step_sess;
    int32_t *step_tok;
    int *step_slot;
    int rr;                   /* the slot whose prefill goes next, round robin */

    pthread_mutex_t mu;
    pthread_cond_t wake;
    srv_job *qhead, *qtail;
    int n_queued;
    int prefilling;           /* the slot inside a prefill call (phivk_cancel target), -1 */
    bool stopping;
    char lost[256];           /* "": the device works; else why it does not (under mu) */
    bool thread_started;
    pthread_t thread;
    /* statistics, under mu */
    uint64_t prompt_tokens, reused_tokens, generated_tokens;
    uint64_t ttft_le[SRV_TTFT_N], ttft_count;
    double ttft_sum;
    double win_busy, last_step, rate; /* decode time in the window, its tokens per second */
    uint64_t win_count;
};

static void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void job_free(srv_job *j) {
    free(j->tokens);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->stop);
    phivk_sampler_free(j->smp);
    phivk_detok_free(j->dt);
    free(j->gen);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ------------------------------------------------------- text and stops */

/* Appends n bytes to the job's text (under mu). */
static bool job_append(srv_job *j, const char *s, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = (j->cap ? j->cap * 2 : 256) + n;
        char *g = realloc(j->gen, cap);
        if (!g) return false;
        j->gen = g;
        j->cap = cap;
    }
    memcpy(j->gen + j->len, s, n);
    j->len += n;
    j->gen[j->len] = 0;
    return true;
}

/* Moves j->pub forward over the text no stop string can still claim (under mu).
 * True when a stop string occurred: the text is cut where it begins. A stop can
 * only begin at or after pub, since nothing that could begin one is published. */
static bool job_publish(srv_job *j, bool final) {
    size_t first = SIZE_MAX;
    for (int i = 0; i < j->n_stop; i++) {
        const char *hit = memmem(j->gen + j->pub, j->len - j->pub, j->stop[i], strlen(j->stop[i]));
        if (hit && (size_t)(hit - j->gen) < first) first = (size_t)(hit - j->gen);
    }
    if (first != SIZE_MAX) {
        j->len = j->pub = first;
        return true;
    }
    size_t hold = 0;
    for (int i = 0; !final && i < j->n_stop; i++) {
        size_t sl = strlen(j->stop[i]), k = sl - 1 < j->len - j->pub ? sl - 1 : j->len - j->pub;
        for (; k > hold; k--)
            if (!memcmp(j->gen + j->len - k, j->stop[i], k)) break;
        if (k > hold) hold = k;
    }
    j->pub = j->len - hold;
    return false;
}

/* ------------------------------------------------------------ the slots */

/* Ends the slot's job (under mu): the text held back is released (a detokenizer's
 * pending bytes too, unless a stop string cut the text and dropped it), the waiter
 * woken. */
static void slot_finish(srv_engine *e, slot *s, srv_finish why, const char *error) {
    srv_job *j = s->job;
    char tail[256];
    size_t k;
    while (j->dt && (k = phivk_detok_flush(j->dt, tail, sizeof tail))) job_append(j, tail, k);
    if (job_publish(j, true)) why = SRV_STOP;
    j->st.finish = why;
    if (error) snprintf(j->st.error, sizeof j->st.error, "%s", error);
    j->in_engine = false;
    j->slot = -1;
    pthread_cond_broadcast(&j->cv);
    if (j->released) job_free(j);
    s->job = NULL;
    s->state = SLOT_IDLE;
}

/* Takes a sampled token for the slot's job: its text, the stops, the limits
 * (under mu). The slot stays generating with s->next when the answer goes on. */
static void slot_take_token(srv_engine *e, slot *s, int32_t tok) {
    srv_job *j = s->job;
    if (tok < 0) {
        slot_finish(e, s, SRV_ERROR, phivk_last_error());
        return;
    }
    if (phivk_token_is_stop(e->vocab, tok)) {
        slot_finish(e, s, SRV_STOP, NULL);
        return;
    }
    j->st.completion_tokens++;
    e->generated_tokens++;
    e->win_count++;
    char piece[256];
    size_t k = phivk_detok_push(j->dt, tok, piece, sizeof piece);
    const char *p = piece;
    while (j->trim && !j->len && k && *p == ' ') p++, k--;
    if (!job_append(j, p, k)) {
        slot_finish(e, s, SRV_ERROR, "out of host memory for the answer");
        return;
    }
    if (job_publish(j, false)) {
        phivk_detok_free(j->dt); /* what it holds comes after the stop string */
        j->dt = NULL;
        slot_finish(e, s, SRV_STOP, NULL);
        return;
    }
    pthread_cond_broadcast(&j->cv);
    if (j->st.completion_tokens == j->max_tokens || s->n_cached >= s->ctx) {
        slot_finish(e, s, SRV_LENGTH, NULL);
        return;
    }
    s->state = SLOT_GEN;
    s->next = tok;
}

/* Puts a queued job into the idle slot whose cache shares the longest prefix with
 * its prompt; the rest of the cache is forgotten (under mu). */
static void slot_assign(srv_engine *e, srv_job *j) {
    int best = -1;
    int32_t best_keep = -1;
    for (int i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->state != SLOT_IDLE) continue;
        int32_t keep = 0;
        while (keep < s->n_cached && keep < j->n_tokens && s->cached[keep] == j->tokens[keep]) keep++;
        if (keep > best_keep) best = i, best_keep = keep;
    }
    slot *s = &e->slots[best];
    if (best_keep == j->n_tokens) best_keep--; /* one token must run to give logits */
    s->job = j;
    s->state = SLOT_PREFILL;
    j->slot = best;
    j->st.cached_tokens = best_keep;
    e->prompt_tokens += (uint64_t)j->n_tokens;
    e->reused_tokens += (uint64_t)best_keep;
    j->smp = phivk_sampler_create(&j->samp);
    j->dt = phivk_detok_create(e->vocab, false);
    if (!j->smp || !j->dt || phivk_session_truncate(s->sess, best_keep) != PHIVK_OK) {
        slot_finish(e, s, SRV_ERROR, phivk_last_error());
        return;
    }
    s->n_cached = best_keep;
}

/* Ends a job that never reached a slot (under mu). */
static void queued_fail(srv_job *j, const char *why) {
    j->in_engine = false;
    j->st.finish = SRV_ERROR;
    snprintf(j->st.error, sizeof j->st.error, "%s", why);
    pthread_cond_broadcast(&j->cv);
    if (j->released) job_free(j);
}

/* Fills idle slots from the queue and frees slots whose client left (under mu).
 * Once the device is lost the queue is answered with that. */
static void schedule(srv_engine *e) {
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].job && e->slots[i].job->released) slot_finish(e, &e->slots[i], SRV_ERROR, "cancelled");
    while (e->lost[0] && e->qhead) {
        srv_job *j = e->qhead;
        e->qhead = j->next;
        e->n_queued--;
        queued_fail(j, e->lost);
    }
    if (!e->qhead) e->qtail = NULL;
    for (int i = 0; i < e->n_slots && e->qhead; i++) {
        if (e->slots[i].state != SLOT_IDLE) continue;
        srv_job *j = e->qhead;
        e->qhead = j->next;
        if (!e->qhead) e->qtail = NULL;
        e->n_queued--;
        slot_assign(e, j);
        i = -1; /* the best slot for this job need not be slot i: look again */
    }
}

/* The cache now holds what the session says after a call that ran fed tokens (or
 * failed partway): the mirror follows (the engine thread's alone). */
static void slot_sync(slot *s, const int32_t *fed) {
    int32_t pos = phivk_session_pos(s->sess);
    if (pos > s->n_cached) memcpy(s->cached + s->n_cached, fed, sizeof *fed * (size_t)(pos - s->n_cached));
    s->n_cached = pos;
}

/* ---------------------------------------------------------------- steps */

/* One decode step for the n sessions in e->step_sess with one token each, logits
 * n x n_vocab into e->logits: the projections read each weight once for all. A
 * cancel left in a session by a request that ended (it came after that request's
 * prefill) stops the call before any session advanced and is consumed: run again. */
static phivk_status decode_step(srv_engine *e, int n) {
    phivk_status st = PHIVK_ERR_CANCELLED;
    for (int tries = 0; st == PHIVK_ERR_CANCELLED && tries <= n; tries++)
        st = phivk_decode_batch(e->step_sess, e->step_tok, n, e->logits);
    return st;
}

/* One chunk of one prompt (the whole rest when no slot is generating: nobody
 * waits on the step then, and phivk_cancel can stop it). */
static void step_prefill(srv_engine *e, int n_gen) {
    slot *s = NULL;
    for (int k = 0; k < e->n_slots && !s; k++) {
        int i = (e->rr + k) % e->n_slots;
        if (e->slots[i].state == SLOT_PREFILL) {
            s = &e->slots[i];
            e->rr = i + 1;
        }
    }
    if (!s) return;
    srv_job *j = s->job;
    int32_t fed = s->n_cached, n = j->n_tokens - fed;
    if (n_gen && n > e->p.chunk) n = e->p.chunk;
    bool last = fed + n == j->n_tokens;
    pthread_mutex_lock(&e->mu);
    e->prefilling = (int)(s - e->slots);
    pthread_mutex_unlock(&e->mu);
    phivk_status st = phivk_decode(s->sess, j->tokens + fed, n, last ? e->logits : NULL, false);
    pthread_mutex_lock(&e->mu);
    e->prefilling = -1;
    slot_sync(s, j->tokens + fed);
    /* A cancel that came after its request's prefill had ended waits in the session
     * and stops this call before any token: the next step runs it again. */
    if (st == PHIVK_ERR_CANCELLED && !j->released) st = PHIVK_OK, last = false;
    if (st == PHIVK_ERR_DEVICE_LOST) snprintf(e->lost, sizeof e->lost, "%s", phivk_last_error());
    if (st != PHIVK_OK) {
        if (!j->released) slot_finish(e, s, SRV_ERROR, phivk_last_error());
    } else if (last && !j->released) {
        static const double bounds[SRV_TTFT_N] = SRV_TTFT_BOUNDS;
        double ttft = app_now() - j->t_submit;
        for (int b = 0; b < SRV_TTFT_N; b++) e->ttft_le[b] += ttft <= bounds[b];
        e->ttft_sum += ttft;
        e->ttft_count++;
        slot_take_token(e, s, phivk_sampler_sample(j->smp, e->logits, e->n_vocab));
    }
    pthread_mutex_unlock(&e->mu);
}

/* One decode step for every generating slot. */
static void step_decode(srv_engine *e) {
    int n = 0;
    for (int i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->state != SLOT_GEN) continue;
        e->step_sess[n] = s->sess;
        e->step_tok[n] = s->next;
        e->step_slot[n++] = i;
    }
    if (!n) return;
    double t0 = app_now();
    phivk_status st = decode_step(e, n);
    const char *why = st ? phivk_last_error() : NULL;
    pthread_mutex_lock(&e->mu);
    if (st == PHIVK_ERR_DEVICE_LOST) snprintf(e->lost, sizeof e->lost, "%s", why);
    for (int k = 0; k < n; k++) {
        slot *s = &e->slots[e->step_slot[k]];
        if (st) {
            phivk_session_truncate(s->sess, s->n_cached);
            slot_finish(e, s, SRV_ERROR, why);
            continue;
        }
        s->cached[s->n_cached++] = s->next;
        if (s->job->released) continue;
        slot_take_token(e, s, phivk_sampler_sample(s->job->smp, e->logits + (size_t)k * e->n_vocab, e->n_vocab));
    }
    /* the rate while decoding: idle time between requests does not dilute it */
    double now = app_now();
    e->last_step = now;
    e->win_busy += now - t0;
    if (e->win_busy >= 1.0) {
        e->rate = e->win_count / e->win_busy;
        e->win_busy = 0;
        e->win_count = 0;
    }
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg) {
    srv_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        schedule(e);
        if (e->stopping) break;
        int n_gen = 0, n_pre = 0;
        for (int i = 0; i < e->n_slots; i++) {
            n_gen += e->slots[i].state == SLOT_GEN;
            n_pre += e->slots[i].state == SLOT_PREFILL;
        }
        if (!n_gen && !n_pre) {
            pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        if (n_pre) step_prefill(e, n_gen);
        step_decode(e);
        pthread_mutex_lock(&e->mu);
    }
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].job) slot_finish(e, &e->slots[i], SRV_ERROR, "the server is shutting down");
    while (e->qhead) {
        srv_job *j = e->qhead;
        e->qhead = j->next;
        queued_fail(j, "the server is shutting down");
    }
    e->qtail = NULL;
    e->n_queued = 0;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ------------------------------------------------------------ the API */

srv_engine *srv_engine_create(phivk_model *model, phivk_session *const *sessions, int n,
                              const srv_engine_params *p) {
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->vocab = phivk_model_vocab(model);
    e->n_vocab = phivk_model_n_vocab(model);
    e->p = *p;
    e->n_slots = n;
    e->prefilling = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->slots = calloc((size_t)n, sizeof *e->slots);
    e->logits = malloc(sizeof *e->logits * (size_t)n * (size_t)e->n_vocab);
    e->step_sess = malloc(sizeof *e->step_sess * (size_t)n);
    e->step_tok = malloc(sizeof *e->step_tok * (size_t)n);
    e->step_slot = malloc(sizeof *e->step_slot * (size_t)n);
    bool ok = e->slots && e->logits && e->step_sess && e->step_tok && e->step_slot;
    for (int i = 0; ok && i < n; i++) {
        slot *s = &e->slots[i];
        s->sess = sessions[i];
        s->ctx = phivk_session_ctx(sessions[i]);
        s->n_cached = phivk_session_pos(sessions[i]);
        ok = (s->cached = malloc(sizeof *s->cached * (size_t)s->ctx)) != NULL && s->n_cached == 0;
    }
    if (ok) ok = e->thread_started = pthread_create(&e->thread, NULL, engine_main, e) == 0;
    if (!ok) {
        srv_engine_destroy(e);
        return NULL;
    }
    return e;
}

void srv_engine_shutdown(srv_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    if (e->prefilling >= 0) phivk_cancel(e->slots[e->prefilling].sess);
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_destroy(srv_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        srv_engine_shutdown(e);
        pthread_join(e->thread, NULL);
    }
    for (int i = 0; e->slots && i < e->n_slots; i++) free(e->slots[i].cached);
    free(e->slots);
    free(e->logits);
    free(e->step_sess);
    free(e->step_tok);
    free(e->step_slot);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

srv_job *srv_engine_submit(srv_engine *e, srv_job_params *p) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_lock(&e->mu);
    /* the queue holds what waits beyond the idle slots the engine has yet to fill */
    int idle = 0;
    for (int i = 0; i < e->n_slots; i++) idle += e->slots[i].state == SLOT_IDLE;
    if (e->n_queued >= e->p.queue_max + idle || e->stopping || e->lost[0]) {
        pthread_mutex_unlock(&e->mu);
        free(j);
        return NULL;
    }
    j->e = e;
    j->tokens = p->tokens;
    j->n_tokens = p->n_tokens;
    j->max_tokens = p->max_tokens;
    j->samp = p->samp;
    j->stop = p->stop;
    j->n_stop = p->n_stop;
    j->trim = p->trim_leading_space;
    j->slot = -1;
    j->in_engine = true;
    j->st.prompt_tokens = p->n_tokens;
    j->t_submit = app_now();
    cond_init_monotonic(&j->cv);
    p->tokens = NULL;
    p->stop = NULL;
    p->n_stop = 0;
    if (e->qtail) e->qtail->next = j;
    else e->qhead = j;
    e->qtail = j;
    e->n_queued++;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return j;
}

char *srv_job_take(srv_job *j, int timeout_ms, srv_job_state *st) {
    srv_engine *e = j->e;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&e->mu);
    while (j->taken == j->pub && j->st.finish == SRV_RUNNING)
        if (pthread_cond_timedwait(&j->cv, &e->mu, &until) == ETIMEDOUT) break;
    size_t n = j->pub - j->taken;
    char *text = malloc(n + 1);
    if (text) {
        if (n) memcpy(text, j->gen + j->taken, n);
        text[n] = 0;
        j->taken = j->pub;
    }
    *st = j->st;
    if (j->taken < j->pub) st->finish = SRV_RUNNING; /* not all of it was taken yet */
    pthread_mutex_unlock(&e->mu);
    return text;
}

void srv_job_release(srv_job *j) {
    if (!j) return;
    srv_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    j->released = true;
    bool free_now = !j->in_engine;
    if (j->in_engine && j->slot < 0) {
        /* still queued: out of the queue */
        srv_job **pp = &e->qhead, *prev = NULL;
        while (*pp != j) prev = *pp, pp = &(*pp)->next;
        *pp = j->next;
        if (e->qtail == j) e->qtail = prev;
        e->n_queued--;
        free_now = true;
    } else if (j->in_engine) {
        if (e->prefilling == j->slot) phivk_cancel(e->slots[j->slot].sess);
        pthread_cond_broadcast(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
    if (free_now) job_free(j);
}

void srv_engine_stats_get(srv_engine *e, srv_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    out->queued = e->n_queued;
    out->slots = e->n_slots;
    out->active = 0;
    for (int i = 0; i < e->n_slots; i++) out->active += e->slots[i].state != SLOT_IDLE;
    out->tokens_per_s = app_now() - e->last_step < 5.0 ? e->rate : 0;
    out->prompt_tokens = e->prompt_tokens;
    out->prompt_tokens_reused = e->reused_tokens;
    out->generated_tokens = e->generated_tokens;
    memcpy(out->ttft_le, e->ttft_le, sizeof out->ttft_le);
    out->ttft_count = e->ttft_count;
    out->ttft_sum = e->ttft_sum;
    out->lost = e->lost[0] != 0;
    snprintf(out->lost_reason, sizeof out->lost_reason, "%s", e->lost);
    pthread_mutex_unlock(&e->mu);
}
