#include "serve_metrics.h"

#include <stdio.h>
#include <stdlib.h>

static const int statuses[SRV_METRICS_STATUSES] = {200, 400, 401, 404, 405, 413, 429, 500, 503};

void srv_metrics_count(srv_metrics *m, int status) {
    int k = 0;
    while (k < SRV_METRICS_STATUSES && statuses[k] != status) k++;
    atomic_fetch_add(&m->requests[k], 1);
}

char *srv_metrics_text(srv_metrics *m, const srv_engine_stats *st) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "# HELP phivk_requests_total HTTP requests answered, by status.\n"
               "# TYPE phivk_requests_total counter\n");
    for (int k = 0; k <= SRV_METRICS_STATUSES; k++) {
        unsigned long long n = (unsigned long long)atomic_load(&m->requests[k]);
        if (k < SRV_METRICS_STATUSES) fprintf(f, "phivk_requests_total{status=\"%d\"} %llu\n", statuses[k], n);
        else fprintf(f, "phivk_requests_total{status=\"other\"} %llu\n", n);
    }
    fprintf(f,
            "# HELP phivk_prompt_tokens_total Prompt tokens of the requests started.\n"
            "# TYPE phivk_prompt_tokens_total counter\n"
            "phivk_prompt_tokens_total %llu\n"
            "# HELP phivk_prompt_tokens_reused_total Prompt tokens found in a slot's cache (not prefilled).\n"
            "# TYPE phivk_prompt_tokens_reused_total counter\n"
            "phivk_prompt_tokens_reused_total %llu\n"
            "# HELP phivk_generated_tokens_total Tokens generated.\n"
            "# TYPE phivk_generated_tokens_total counter\n"
            "phivk_generated_tokens_total %llu\n"
            "# HELP phivk_queue_depth Requests waiting for a slot.\n"
            "# TYPE phivk_queue_depth gauge\n"
            "phivk_queue_depth %d\n"
            "# HELP phivk_slots_active Slots prefilling or generating.\n"
            "# TYPE phivk_slots_active gauge\n"
            "phivk_slots_active %d\n"
            "# HELP phivk_slots_total Slots (--parallel).\n"
            "# TYPE phivk_slots_total gauge\n"
            "phivk_slots_total %d\n"
            "# HELP phivk_tokens_per_second Generated tokens per second over the last seconds, all slots.\n"
            "# TYPE phivk_tokens_per_second gauge\n"
            "phivk_tokens_per_second %.3f\n",
            (unsigned long long)st->prompt_tokens, (unsigned long long)st->prompt_tokens_reused,
            (unsigned long long)st->generated_tokens, st->queued, st->active, st->slots, st->tokens_per_s);
    static const double bounds[SRV_TTFT_N] = SRV_TTFT_BOUNDS;
    fprintf(f, "# HELP phivk_time_to_first_token_seconds From a request's arrival to its first token.\n"
               "# TYPE phivk_time_to_first_token_seconds histogram\n");
    for (int b = 0; b < SRV_TTFT_N; b++)
        fprintf(f, "phivk_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", bounds[b],
                (unsigned long long)st->ttft_le[b]);
    fprintf(f, "phivk_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n"
               "phivk_time_to_first_token_seconds_sum %.6f\n"
               "phivk_time_to_first_token_seconds_count %llu\n",
            (unsigned long long)st->ttft_count, st->ttft_sum, (unsigned long long)st->ttft_count);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
