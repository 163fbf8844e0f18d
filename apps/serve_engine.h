/* The engine of phivk serve: one thread owns the model and its slots (one session
 * each) and runs every step for all of them. A step is at most one prefill chunk
 * of a new request's prompt, then one decode for every slot that is generating,
 * so streaming answers keep flowing while a prompt is read. A slot keeps its
 * cache between requests; a new request goes to the idle slot whose cache shares
 * the longest prefix with its prompt and only the rest is prefilled.
 *
 * Requests come from the HTTP threads (srv_engine_submit) and their text goes back
 * through srv_job_take; everything the two sides share is behind the engine's
 * mutex. */
#ifndef PHIVK_APPS_SERVE_ENGINE_H
#define PHIVK_APPS_SERVE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "phivk.h"

typedef struct srv_engine srv_engine;
typedef struct srv_job srv_job;

typedef enum srv_finish {
    SRV_RUNNING = 0,
    SRV_STOP,        /* a stop token or a stop string */
    SRV_LENGTH,      /* max_tokens, or the slot's context is full */
    SRV_ERROR,       /* the device failed (message in srv_job_state.error) */
} srv_finish;

typedef struct srv_job_params {
    int32_t *tokens;             /* the prompt (the engine takes ownership) */
    int32_t n_tokens;
    int32_t max_tokens;          /* -1: until a stop or the context is full */
    phivk_sampler_params samp;
    char **stop;                 /* stop strings (the engine takes ownership) */
    int n_stop;
    bool trim_leading_space;     /* chat: the answer starts after the template's newline */
} srv_job_params;

typedef struct srv_engine_params {
    int queue_max;               /* requests waiting for a slot before 503 */
    int32_t chunk;               /* prefill chunk while other slots generate */
} srv_engine_params;

/* The engine over n sessions of model (their owner stays the caller; they must
 * outlive it). Starts its thread. NULL with phivk_last_error() on failure. */
srv_engine *srv_engine_create(phivk_model *model, phivk_session *const *sessions, int n,
                              const srv_engine_params *p);
/* Ends every job (their waiters see SRV_ERROR "the server is shutting down"),
 * joins the thread. Accepts NULL. */
void srv_engine_destroy(srv_engine *e);
/* Tells every waiter to finish (a shutdown has begun) without joining. */
void srv_engine_shutdown(srv_engine *e);

/* Queues a request. NULL when the queue is full or the device was lost (the
 * params are left to the caller then; srv_engine_stats_get says which);
 * otherwise the job, held by the caller until srv_job_release. */
srv_job *srv_engine_submit(srv_engine *e, srv_job_params *p);

typedef struct srv_job_state {
    srv_finish finish;
    int32_t prompt_tokens, completion_tokens, cached_tokens;
    char error[256];
} srv_job_state;
/* Waits up to timeout_ms for text; returns the text generated since the last
 * call (malloc'd, NUL-terminated, may be "" when nothing came) and the job's
 * state. NULL when out of memory. */
char *srv_job_take(srv_job *j, int timeout_ms, srv_job_state *st);
/* The caller is done with the job; a job still running is cancelled (its slot is
 * freed within one step, a running prefill is stopped). */
void srv_job_release(srv_job *j);

/* The upper bounds (seconds) of the time-to-first-token histogram's buckets. */
#define SRV_TTFT_BOUNDS {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
#define SRV_TTFT_N 10

typedef struct srv_engine_stats {
    int queued, active, slots;
    double tokens_per_s;         /* generated tokens per second over the last seconds */
    uint64_t prompt_tokens, prompt_tokens_reused, generated_tokens; /* since the start */
    /* time from a request's arrival to its first token: requests per bucket
     * (ttft_le[i]: at most SRV_TTFT_BOUNDS[i], cumulative), their sum and count */
    uint64_t ttft_le[SRV_TTFT_N], ttft_count;
    double ttft_sum;
    bool lost;                   /* the device was lost: nothing more can be answered */
    char lost_reason[256];
} srv_engine_stats;
void srv_engine_stats_get(srv_engine *e, srv_engine_stats *out);

#endif
