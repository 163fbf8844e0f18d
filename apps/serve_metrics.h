/* The counters of phivk serve and their Prometheus text (GET /metrics). */
#ifndef PHIVK_APPS_SERVE_METRICS_H
#define PHIVK_APPS_SERVE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "serve_engine.h"

/* The statuses the server answers with; anything else counts as "other". */
#define SRV_METRICS_STATUSES 9

typedef struct srv_metrics {
    atomic_uint_fast64_t requests[SRV_METRICS_STATUSES + 1];
} srv_metrics;

/* One answered request of that HTTP status (safe from any thread). */
void srv_metrics_count(srv_metrics *m, int status);
/* The exposition text: requests by status, prompt, reused and generated tokens,
 * queue depth, active and total slots, generated tokens per second, the time to
 * first token as a histogram. Caller frees. */
char *srv_metrics_text(srv_metrics *m, const srv_engine_stats *st);

#endif
