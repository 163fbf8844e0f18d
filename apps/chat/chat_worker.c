#include "chat_worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_text.h"
#include "summarize.h"

typedef enum job_kind { JOB_LOAD, JOB_GEN, JOB_PREFILL } job_kind;

typedef struct job {
    job_kind kind;
    char *path, *device; /* load */
    int32_t ctx;
    phivk_chat_msg *msgs; /* gen: roles are static strings, contents owned */
    int n_msgs, msg_id, fit_msg, fit_id;
    bool fit_doc;
    size_t doc_at;
    char *doc_name;
    phivk_sampler_params samp;
    int32_t n_predict;
    struct job *next;
} job;

struct chat_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *jobs, **jobs_tail;
    chat_ev *evs, **evs_tail;
    bool quit;
    int stop_id;              /* answers with this id end at the next token */
    int running_id;           /* the answer being generated, 0: none */
    void (*wake)(void *);
    void *wake_user;
    /* Owned by the worker thread; the mutex guards the pointers' changes so that
     * chat_worker_stop can reach the session. */
    phivk_runtime *rt;
    phivk_model *model;
    phivk_session *sess;
    char path[1024], device[256];
    int32_t ctx_req;
    int32_t *cached;          /* the tokens in the KV cache */
    int32_t n_cached;
    float *logits;
    atomic_int tokens;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void chat_ev_free(chat_ev *e) {
    while (e) {
        chat_ev *next = e->next;
        free(e->text);
        free(e->devices);
        free(e);
        e = next;
    }
}

static void job_free(job *j) {
    if (!j) return;
    free(j->path);
    free(j->device);
    free(j->doc_name);
    for (int i = 0; i < j->n_msgs; i++) free((char *)j->msgs[i].content);
    free(j->msgs);
    free(j);
}

/* Queues e (taking it); merges text into a queued text event of the same answer
 * and replaces a queued progress report, so a slow UI sees fewer, larger events. */
static void post(chat_worker *w, chat_ev *e) {
    pthread_mutex_lock(&w->mu);
    bool was_empty = !w->evs;
    chat_ev *last = NULL;
    for (chat_ev *x = w->evs; x; x = x->next) last = x;
    if (last && last->kind == e->kind && e->kind == CHAT_EV_TEXT && last->msg_id == e->msg_id) {
        size_t a = strlen(last->text), b = strlen(e->text);
        char *t = realloc(last->text, a + b + 1);
        if (t) {
            memcpy(t + a, e->text, b + 1);
            last->text = t;
            chat_ev_free(e);
            e = NULL;
        }
    } else if (last && last->kind == CHAT_EV_PROGRESS && e->kind == CHAT_EV_PROGRESS &&
               !strcmp(last->stage, e->stage)) {
        last->done = e->done;
        last->total = e->total;
        chat_ev_free(e);
        e = NULL;
    }
    if (e) {
        *w->evs_tail = e;
        w->evs_tail = &e->next;
    }
    pthread_mutex_unlock(&w->mu);
    if (was_empty && w->wake) w->wake(w->wake_user);
}

static chat_ev *ev_new(chat_ev_kind kind, int msg_id, const char *text) {
    chat_ev *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->msg_id = msg_id;
    if (text && !(e->text = strdup(text))) {
        free(e);
        return NULL;
    }
    return e;
}

/* Events are small; when even they cannot be allocated the UI misses one update
 * and the next DONE or LOADED still arrives or the process is out of memory. */
static void post_new(chat_worker *w, chat_ev *e) {
    if (e) post(w, e);
}

static void on_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
    chat_worker *w = user;
    chat_ev *e = ev_new(CHAT_EV_PROGRESS, 0, NULL);
    if (!e) return;
    snprintf(e->stage, sizeof e->stage, "%s", stage);
    e->done = done;
    e->total = total;
    post(w, e);
}

static void post_devices(chat_worker *w) {
    chat_ev *e = ev_new(CHAT_EV_DEVICES, 0, NULL);
    if (!e) return;
    if (phivk_devices(&e->devices, &e->n_devices) != PHIVK_OK) {
        e->devices = NULL;
        e->n_devices = 0;
    }
    post(w, e);
}

/* Makes rt, model and sess the worker's: swapped under the lock, the old ones freed
 * outside it (freeing can take a while); a model or runtime kept is not freed. */
static void swap_in(chat_worker *w, phivk_runtime *rt, phivk_model *model, phivk_session *sess) {
    pthread_mutex_lock(&w->mu);
    phivk_session *old_sess = w->sess;
    phivk_model *old_model = w->model != model ? w->model : NULL;
    phivk_runtime *old_rt = w->rt != rt ? w->rt : NULL;
    w->rt = rt;
    w->model = model;
    w->sess = sess;
    pthread_mutex_unlock(&w->mu);
    phivk_session_free(old_sess);
    phivk_model_free(old_model);
    phivk_runtime_free(old_rt);
}

static void run_load(chat_worker *w, job *j) {
    const char *dev = j->device ? j->device : "";
    bool same_file = w->model && !strcmp(w->path, j->path);
    bool same_dev = w->rt && !strcmp(w->device, dev);
    phivk_runtime *rt = same_dev ? w->rt : NULL;
    phivk_model *model = same_file && same_dev ? w->model : NULL;
    phivk_session *sess = NULL;
    int32_t *cached = NULL;
    float *logits = NULL;
    chat_ev *e;
    char why[1024];
    if (!rt) {
        phivk_runtime_params rp = phivk_runtime_default_params();
        rp.device = j->device;
        on_progress(w, "opening device", 0, 1);
        rt = phivk_runtime_create(&rp);
        if (!rt) goto fail;
    }
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = j->ctx;
    sp.progress = on_progress;
    sp.progress_user = w;
    if (!model) {
        phivk_model_params mp = phivk_model_default_params();
        mp.progress = on_progress;
        mp.progress_user = w;
        mp.session = &sp;
        on_progress(w, "loading", 0, 1);
        model = phivk_model_load(rt, j->path, &mp);
        if (!model) goto fail;
    }
    sess = phivk_session_create(model, &sp);
    if (!sess) goto fail;
    cached = malloc(sizeof *cached * (size_t)phivk_session_ctx(sess));
    logits = malloc(sizeof *logits * (size_t)phivk_model_n_vocab(model));
    if (!cached || !logits) goto fail;

    swap_in(w, rt, model, sess);
    free(w->cached);
    free(w->logits);
    w->cached = cached;
    w->logits = logits;
    w->n_cached = 0;
    snprintf(w->path, sizeof w->path, "%s", j->path);
    snprintf(w->device, sizeof w->device, "%s", dev);
    w->ctx_req = j->ctx;

    e = ev_new(CHAT_EV_LOADED, 0, phivk_model_name(model));
    if (e) {
        snprintf(e->device, sizeof e->device, "%s", phivk_runtime_device_name(rt));
        snprintf(e->path, sizeof e->path, "%s", j->path);
        e->ctx_total = phivk_session_ctx(sess);
    }
    post_new(w, e);
    return;
fail:
    snprintf(why, sizeof why, "%s", sess ? "out of host memory" : phivk_last_error());
    free(cached);
    free(logits);
    phivk_session_free(sess);
    if (model != w->model) phivk_model_free(model);
    if (rt != w->rt) phivk_runtime_free(rt);
    e = ev_new(CHAT_EV_LOAD_FAILED, 0, why);
    if (e) snprintf(e->path, sizeof e->path, "%s", j->path);
    post_new(w, e);
}

static bool stopping(chat_worker *w, int id) {
    pthread_mutex_lock(&w->mu);
    bool s = w->stop_id == id || w->quit;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* phivk_cancel stays armed until a decode sees it; a stop that lands just after
 * an answer's last decode would cancel the next answer's first one. That check
 * comes before any work (the position has not moved), so running again is exact. */
static phivk_status decode(chat_worker *w, int id, const int32_t *t, int32_t n) {
    int32_t pos0 = phivk_session_pos(w->sess);
    phivk_status st = phivk_decode(w->sess, t, n, w->logits, false);
    if (st == PHIVK_ERR_CANCELLED && !stopping(w, id) && phivk_session_pos(w->sess) == pos0)
        st = phivk_decode(w->sess, t, n, w->logits, false);
    return st;
}

/* Message contents (typed, dropped, restored) are plain text: only the chat
 * format's own markup becomes control tokens. */
static int64_t prompt_tokens(chat_worker *w, job *j, int32_t **ids) {
    const phivk_vocab *v = phivk_model_vocab(w->model);
    bool answer = j->kind == JOB_GEN; /* a prefill reads the conversation, not an answer's start */
    int64_t n = phivk_chat_tokenize(v, PHIVK_CHAT_AUTO, j->msgs, j->n_msgs, answer, PHIVK_BOS_AUTO, NULL, 0);
    if (n < 0) return -1;
    *ids = malloc(sizeof **ids * (size_t)(n ? n : 1));
    if (!*ids) return -1;
    phivk_chat_tokenize(v, PHIVK_CHAT_AUTO, j->msgs, j->n_msgs, answer, PHIVK_BOS_AUTO, *ids, n);
    return n;
}

/* Cuts the fit message to the longest prefix whose prompt leaves `reserve`
 * tokens for the answer (binary search over UTF-8 boundaries). Returns the new
 * token count, or -1. */
static int64_t fit_prompt(chat_worker *w, job *j, int64_t n, int32_t reserve, int32_t **ids) {
    int32_t ctx = phivk_session_ctx(w->sess);
    if (j->fit_msg < 0 || n + reserve <= ctx) return n;
    char *full = (char *)j->msgs[j->fit_msg].content;
    size_t full_len = strlen(full), lo = 0, hi = full_len;
    while (lo < hi) {
        size_t mid = utf8_floor(full, lo + (hi - lo + 1) / 2);
        if (mid <= lo) mid = lo + 1;
        char keep = full[mid];
        full[mid] = 0;
        free(*ids);
        *ids = NULL;
        int64_t m = prompt_tokens(w, j, ids);
        full[mid] = keep;
        if (m < 0) return -1;
        if (m + reserve <= ctx) lo = mid;
        else hi = mid - 1;
    }
    lo = utf8_floor(full, lo);
    full[lo] = 0;
    free(*ids);
    *ids = NULL;
    n = prompt_tokens(w, j, ids);
    chat_ev *e = ev_new(CHAT_EV_FIT, j->fit_id, full);
    if (e)
        snprintf(e->note, sizeof e->note,
                 "cut to fit the context: the first %zu of %zu bytes (%d tokens of context, "
                 "%d kept for the answer)", lo, full_len, ctx, reserve);
    post_new(w, e);
    return n;
}

/* A lost device runs nothing more: the session, model and runtime go, so that the
 * next load opens the device again instead of reusing them. */
static void drop_device(chat_worker *w) {
    swap_in(w, NULL, NULL, NULL);
    w->n_cached = 0;
}

typedef struct summ_ctx {
    chat_worker *w;
    int msg_id;
} summ_ctx;

static void summ_text(void *user, const char *s, size_t n) {
    summ_ctx *c = user;
    char *piece = strndup(s, n);
    if (!piece) return;
    if (n) post_new(c->w, ev_new(CHAT_EV_TEXT, c->msg_id, piece));
    free(piece);
}

/* Chunks as CHAT_EV_SUMMARY: done counts the chunks finished, total the pass's. */
static void summ_event_cb(void *user, const summ_event *se) {
    summ_ctx *c = user;
    if (se->kind == SUMM_NOTE) return;
    chat_ev *e = ev_new(CHAT_EV_SUMMARY, c->msg_id, NULL);
    if (!e) return;
    e->n_tokens = se->kind == SUMM_FINAL ? 0 : se->pass;
    e->done = se->kind == SUMM_CHUNK ? (uint64_t)se->chunk - 1 : (uint64_t)se->chunk;
    e->total = (uint64_t)se->n_chunks;
    post(c->w, e);
}

/* The document of the fit message, too long for the context, summarized in
 * parts; the message becomes a line that names it. The cache then holds a
 * chunk's prompt, not the conversation: the next answer reads it again. */
static void summarize_doc(chat_worker *w, job *j, chat_ev *done, char *err, size_t cap) {
    const char *msg = j->msgs[j->fit_msg].content;
    size_t at = j->doc_at < strlen(msg) ? j->doc_at : strlen(msg), len = strlen(msg + at);
    chat_ev *e = ev_new(CHAT_EV_FIT, j->fit_id, NULL);
    if (e) {
        char line[512];
        snprintf(line, sizeof line, "Summarize the document %s (%zu KiB).", j->doc_name ? j->doc_name : "",
                 (len + 1023) >> 10);
        e->text = strdup(line);
        snprintf(e->note, sizeof e->note, "longer than the %d-token context: summarized in parts",
                 phivk_session_ctx(w->sess));
        if (!e->text) {
            chat_ev_free(e);
            e = NULL;
        }
    }
    post_new(w, e);
    summ_ctx c = {w, j->msg_id};
    summ_params sp = {.model = w->model, .sess = w->sess, .samp = j->samp, .words = 150,
                      .answer = j->n_predict > 0 ? j->n_predict : 300, .on_text = summ_text,
                      .on_event = summ_event_cb, .user = &c};
    summ_stats stats = {0};
    double t0 = now_s();
    phivk_status st = summ_run(&sp, msg + at, len, &stats, err, cap);
    w->n_cached = 0;
    done->n_tokens = (int32_t)stats.n_gen;
    done->tok_per_s = stats.n_gen / (now_s() - t0 + 1e-9);
    done->stopped = st == PHIVK_ERR_CANCELLED;
    done->status = st;
    if (done->stopped) *err = 0;
}

/* Reads a conversation into the cache: only what differs from the cached
 * tokens is decoded (phivk_session_truncate keeps the shared prefix). */
static void run_prefill(chat_worker *w, job *j) {
    chat_ev *done = ev_new(CHAT_EV_PREFILLED, 0, NULL);
    int32_t *ids = NULL;
    if (!done) return;
    int64_t n = w->model ? prompt_tokens(w, j, &ids) : -1;
    int32_t ctx = w->sess ? phivk_session_ctx(w->sess) : 0;
    if (n > 0 && n < ctx) {
        int32_t keep = 0;
        while (keep < w->n_cached && keep < n && w->cached[keep] == ids[keep]) keep++;
        if (keep == n) keep--;
        phivk_status st = phivk_session_truncate(w->sess, keep);
        w->n_cached = keep;
        done->ctx_kept = keep;
        on_progress(w, "prefill", 0, (uint64_t)(n - keep));
        if (st == PHIVK_OK) st = decode(w, 0, ids + keep, (int32_t)(n - keep));
        if (st == PHIVK_OK) {
            memcpy(w->cached + keep, ids + keep, sizeof *ids * (size_t)(n - keep));
            w->n_cached = (int32_t)n;
        } else {
            w->n_cached = phivk_session_pos(w->sess);
            done->status = st;
        }
    }
    /* A conversation longer than the context is read when the next answer cuts it. */
    if (w->sess) {
        done->ctx_used = w->n_cached;
        done->ctx_total = ctx;
    }
    if (done->status == PHIVK_ERR_DEVICE_LOST) drop_device(w);
    free(ids);
    post(w, done);
}

static void run_gen(chat_worker *w, job *j) {
    chat_ev *done = ev_new(CHAT_EV_DONE, j->msg_id, NULL);
    int32_t *ids = NULL;
    phivk_sampler *smp = NULL;
    phivk_detok *dt = NULL;
    char err[1024] = "";
    if (!done) return;
    atomic_store(&w->tokens, 0);
    if (!w->model) {
        done->status = PHIVK_ERR_INVALID;
        snprintf(err, sizeof err, "no model is loaded: drop a .gguf file on the window");
        goto out;
    }
    int32_t ctx = phivk_session_ctx(w->sess);
    int32_t reserve = j->n_predict > 0 && j->n_predict < ctx / 2 ? j->n_predict : ctx / 4;
    if (reserve < 1) reserve = 1;
    int64_t n = prompt_tokens(w, j, &ids);
    if (n >= 0 && j->fit_doc && n + reserve > ctx) {
        summarize_doc(w, j, done, err, sizeof err);
        goto out;
    }
    if (n >= 0) n = fit_prompt(w, j, n, reserve, &ids);
    if (n < 0) {
        done->status = PHIVK_ERR_INVALID;
        snprintf(err, sizeof err, "%s", phivk_last_error());
        goto out;
    }
    if (n >= ctx) {
        done->status = PHIVK_ERR_CONTEXT_FULL;
        snprintf(err, sizeof err,
                 "the conversation is %lld tokens and the context holds %d: start a New chat "
                 "or choose a larger context in Settings", (long long)n, ctx);
        goto out;
    }
    int32_t keep = 0;
    while (keep < w->n_cached && keep < n && w->cached[keep] == ids[keep]) keep++;
    if (keep == n) keep--; /* one token must run to give logits */
    phivk_status st = phivk_session_truncate(w->sess, keep);
    w->n_cached = keep;
    done->ctx_kept = keep;
    if (st == PHIVK_OK) st = decode(w, j->msg_id, ids + keep, (int32_t)(n - keep));
    if (st != PHIVK_OK) {
        w->n_cached = phivk_session_pos(w->sess);
        done->status = st;
        done->stopped = st == PHIVK_ERR_CANCELLED;
        if (!done->stopped) snprintf(err, sizeof err, "%s", phivk_last_error());
        goto out;
    }
    memcpy(w->cached + keep, ids + keep, sizeof *ids * (size_t)(n - keep));
    w->n_cached = (int32_t)n;

    smp = phivk_sampler_create(&j->samp);
    dt = phivk_detok_create(phivk_model_vocab(w->model), false);
    if (!smp || !dt) {
        done->status = PHIVK_ERR_INVALID;
        snprintf(err, sizeof err, "%s", phivk_last_error());
        goto out;
    }
    const phivk_vocab *v = phivk_model_vocab(w->model);
    int32_t n_vocab = phivk_model_n_vocab(w->model);
    char piece[256];
    double t0 = now_s();
    int32_t made = 0;
    while (j->n_predict < 0 || made < j->n_predict) {
        if (stopping(w, j->msg_id)) {
            done->stopped = true;
            break;
        }
        int32_t tok = phivk_sampler_sample(smp, w->logits, n_vocab);
        if (tok < 0) {
            done->status = PHIVK_ERR_INVALID;
            snprintf(err, sizeof err, "%s", phivk_last_error());
            break;
        }
        if (phivk_token_is_stop(v, tok)) break;
        made++;
        atomic_fetch_add(&w->tokens, 1);
        if (phivk_detok_push(dt, tok, piece, sizeof piece)) post_new(w, ev_new(CHAT_EV_TEXT, j->msg_id, piece));
        if (w->n_cached >= ctx) {
            snprintf(done->note, sizeof done->note, "the context is full: start a New chat");
            break;
        }
        st = decode(w, j->msg_id, &tok, 1);
        if (st == PHIVK_ERR_CANCELLED) {
            done->stopped = true;
            break;
        }
        if (st != PHIVK_OK) {
            done->status = st;
            snprintf(err, sizeof err, "%s", phivk_last_error());
            w->n_cached = phivk_session_pos(w->sess);
            break;
        }
        w->cached[w->n_cached++] = tok;
    }
    double dt_s = now_s() - t0;
    if (phivk_detok_flush(dt, piece, sizeof piece)) post_new(w, ev_new(CHAT_EV_TEXT, j->msg_id, piece));
    done->n_tokens = made;
    done->tok_per_s = dt_s > 0 ? made / dt_s : 0;
out:
    if (w->sess) {
        done->ctx_used = phivk_session_pos(w->sess);
        done->ctx_total = phivk_session_ctx(w->sess);
    }
    if (*err) done->text = strdup(err);
    if (done->status == PHIVK_ERR_DEVICE_LOST) drop_device(w);
    phivk_detok_free(dt);
    phivk_sampler_free(smp);
    free(ids);
    post(w, done);
}

static void *worker_main(void *arg) {
    chat_worker *w = arg;
    post_devices(w);
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        job *j = w->jobs;
        if (!j) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        w->jobs = j->next;
        if (!w->jobs) w->jobs_tail = &w->jobs;
        if (j->kind == JOB_GEN) w->running_id = j->msg_id;
        pthread_mutex_unlock(&w->mu);
        if (j->kind == JOB_LOAD) run_load(w, j);
        else if (j->kind == JOB_PREFILL) run_prefill(w, j);
        else run_gen(w, j);
        job_free(j);
        pthread_mutex_lock(&w->mu);
        w->running_id = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

chat_worker *chat_worker_create(void (*wake)(void *), void *wake_user) {
    chat_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->jobs_tail = &w->jobs;
    w->evs_tail = &w->evs;
    w->wake = wake;
    w->wake_user = wake_user;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void chat_worker_destroy(chat_worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    if (w->sess && w->running_id) phivk_cancel(w->sess);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->jobs) {
        job *j = w->jobs;
        w->jobs = j->next;
        job_free(j);
    }
    chat_ev_free(w->evs);
    phivk_session_free(w->sess);
    phivk_model_free(w->model);
    phivk_runtime_free(w->rt);
    free(w->cached);
    free(w->logits);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void enqueue(chat_worker *w, job *j) {
    pthread_mutex_lock(&w->mu);
    *w->jobs_tail = j;
    w->jobs_tail = &j->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool chat_worker_load(chat_worker *w, const char *path, const char *device, int32_t ctx) {
    job *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->kind = JOB_LOAD;
    j->path = strdup(path);
    j->device = device && *device ? strdup(device) : NULL;
    j->ctx = ctx;
    if (!j->path || (device && *device && !j->device)) {
        job_free(j);
        return false;
    }
    enqueue(w, j);
    return true;
}

/* A job of kind with a copy of the messages; NULL when out of memory. */
static job *msgs_job(job_kind kind, const phivk_chat_msg *msgs, int n_msgs) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    j->msgs = calloc((size_t)(n_msgs ? n_msgs : 1), sizeof *j->msgs);
    if (!j->msgs) goto fail;
    for (int i = 0; i < n_msgs; i++) {
        j->msgs[i].role = msgs[i].role;
        if (!(j->msgs[i].content = strdup(msgs[i].content))) goto fail;
        j->n_msgs++;
    }
    return j;
fail:
    job_free(j);
    return NULL;
}

bool chat_worker_prefill(chat_worker *w, const phivk_chat_msg *msgs, int n_msgs) {
    job *j = msgs_job(JOB_PREFILL, msgs, n_msgs);
    if (j) enqueue(w, j);
    return j != NULL;
}

bool chat_worker_generate(chat_worker *w, const chat_gen *g) {
    job *j = msgs_job(JOB_GEN, g->msgs, g->n_msgs);
    if (!j) return false;
    j->fit_doc = g->fit_doc;
    j->doc_at = g->doc_at;
    if (g->doc_name && !(j->doc_name = strdup(g->doc_name))) goto fail;
    j->msg_id = g->msg_id;
    j->fit_msg = g->fit_msg;
    j->fit_id = g->fit_id;
    j->samp = g->samp;
    j->n_predict = g->n_predict;
    enqueue(w, j);
    return true;
fail:
    job_free(j);
    return false;
}

void chat_worker_stop(chat_worker *w, int msg_id) {
    pthread_mutex_lock(&w->mu);
    w->stop_id = msg_id;
    if (w->sess && w->running_id == msg_id) phivk_cancel(w->sess);
    pthread_mutex_unlock(&w->mu);
}

chat_ev *chat_worker_poll(chat_worker *w) {
    pthread_mutex_lock(&w->mu);
    chat_ev *e = w->evs;
    w->evs = NULL;
    w->evs_tail = &w->evs;
    pthread_mutex_unlock(&w->mu);
    return e;
}

int32_t chat_worker_tokens(chat_worker *w) { return atomic_load(&w->tokens); }

phivk_runtime *chat_worker_runtime(chat_worker *w) {
    pthread_mutex_lock(&w->mu);
    phivk_runtime *rt = w->rt;
    pthread_mutex_unlock(&w->mu);
    return rt;
}
