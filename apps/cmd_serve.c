/* phivk serve: an OpenAI-compatible HTTP server. One engine thread owns the model
 * and --parallel slots (a session each, docs/serving.md); the HTTP threads turn
 * requests into jobs for it. SIGINT or SIGTERM ends it: the answers in flight end
 * with an error event, the connections close, everything is freed. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_common.h"
#include "commands.h"
#include "serve_engine.h"
#include "serve_http.h"

/* A prefill chunk while other slots stream: one step stays short. */
#define SERVE_CHUNK 64

static void usage(void) {
    printf("usage: phivk serve MODEL.gguf [--host ADDR] [--port N] [--parallel N] [-c N|auto] [OPTIONS]\n\n"
           "An OpenAI-compatible server: POST /v1/chat/completions, POST /v1/completions,\n"
           "GET /v1/models, GET /health, GET /metrics (see docs/serving.md).\n\n"
           "  --host ADDR             address to listen on (default 127.0.0.1: this machine only)\n"
           "  --port N                port (default 8080; 0: any free port, printed at start)\n"
           "  --parallel N            slots: requests that decode together (default 4)\n"
           "  -c, --ctx N|auto        context of each slot (auto: the model's, reduced so that\n"
           "                          every slot fits)\n"
           "  --api-key KEY           require 'Authorization: Bearer KEY' on /v1/ (also PHIVK_API_KEY)\n"
           "  --queue N               requests that may wait for a slot before 503 (default 64)\n"
           "  --max-body BYTES        largest request body (default 1048576)\n"
           "The sampling options below are the defaults of the fields a request leaves out\n"
           "(-n: max_tokens); without -s every request draws its own seed.\n\n");
    app_opts_usage();
}

/* The model's id in /v1/models: the file name without its folder and ".gguf". */
static char *model_id(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    return strndup(base, n);
}

/* Slots 1.. beside the first (made by app_model_open, planned for n KV caches):
 * their own caches of its context, its scratch shared. False with the reason
 * printed. */
static bool more_slots(app_model *am, const app_opts *o, phivk_session **slots, int n) {
    phivk_session_params sp = o->sess;
    sp.share_scratch = am->sess;
    sp.ctx = 0;
    slots[0] = am->sess;
    for (int i = 1; i < n; i++) {
        if ((slots[i] = phivk_session_create(am->model, &sp))) continue;
        fprintf(stderr, "phivk serve: slot %d of %d: %s (lower --parallel or -c)\n", i + 1, n, phivk_last_error());
        return false;
    }
    return true;
}

/* One decode step of every slot together, then forgotten: what the device cannot
 * run together (more slots than the scratch's rows, rows its storage offsets
 * cannot bind one by one) is refused here, with the reason, instead of failing
 * every answer; and the first request does not wait for the pipelines. */
static bool probe_slots(phivk_session **slots, int n, const phivk_vocab *v) {
    int32_t *tok = malloc(sizeof *tok * (size_t)n);
    if (!tok) return false;
    for (int i = 0; i < n; i++) tok[i] = phivk_token_bos(v) >= 0 ? phivk_token_bos(v) : 0;
    phivk_status st = phivk_decode_batch(slots, tok, n, NULL);
    free(tok);
    if (st != PHIVK_OK)
        fprintf(stderr, "phivk serve: %d slots cannot decode together on this device: %s (use fewer slots, "
                        "--parallel 1 at the least)\n", n, phivk_last_error());
    for (int i = 0; i < n; i++) phivk_session_truncate(slots[i], 0);
    return st == PHIVK_OK;
}

int cmd_serve(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    const char *host = "127.0.0.1", *port_s = "8080", *parallel_s = "4", *key = getenv("PHIVK_API_KEY");
    const char *queue_s = "64", *body_s = "1048576";
    const app_option own[] = {{"--host", &host, NULL},         {"--port", &port_s, NULL},
                              {"--parallel", &parallel_s, NULL}, {"-np", &parallel_s, NULL},
                              {"--api-key", &key, NULL},       {"--queue", &queue_s, NULL},
                              {"--max-body", &body_s, NULL},   {NULL, NULL, NULL}};
    int done = app_parse_args(&o, argc, argv, "serve", usage, own, NULL);
    if (done >= 0) return done;
    long port, parallel, queue, max_body;
    if (!app_parse_long(port_s, 0, 65535, &port) || !app_parse_long(parallel_s, 1, 256, &parallel) ||
        !app_parse_long(queue_s, 0, 1 << 20, &queue) || !app_parse_long(body_s, 1024, 1L << 30, &max_body)) {
        fprintf(stderr, "phivk serve: --port is 0..65535, --parallel 1..256, --queue 0..1048576, "
                        "--max-body 1024..1073741824\n");
        return 2;
    }
    if (key && !*key) key = NULL;
    if (!o.model) {
        fprintf(stderr, "phivk serve: needs a model; see --help\n");
        return 2;
    }
    int n = (int)parallel;
    /* The first slot's plan holds n KV caches (-c auto: a context n of them fit, a
     * context that does not fit is refused with the numbers); one step decodes at
     * most a prefill chunk of rows, so the chunk holds every slot. */
    o.sess.slots = n;
    if (o.sess.batch && o.sess.batch < n) o.sess.batch = n;
    phivk_session **slots = calloc((size_t)n, sizeof *slots);
    char *id = model_id(o.model);
    app_model am;
    if (!slots || !id || !app_model_open(&o, &am)) {
        free(slots);
        free(id);
        return 1;
    }
    int status = 1;
    srv_engine *engine = NULL;
    srv_http *http = NULL;
    if (!more_slots(&am, &o, slots, n) || !probe_slots(slots, n, phivk_model_vocab(am.model))) goto out;
    int32_t ctx = phivk_session_ctx(am.sess);

    /* The threads made from here on leave SIGINT and SIGTERM to sigwait below. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_engine_params ep = {.queue_max = (int)queue, .chunk = SERVE_CHUNK};
    engine = srv_engine_create(am.model, slots, n, &ep);
    if (!engine) {
        fprintf(stderr, "phivk serve: cannot start the engine: out of host memory\n");
        goto out;
    }
    srv_http_params hp = {.host = host, .port = (int)port, .api_key = key, .max_body = (size_t)max_body,
                          .model_id = id, .model_alias = phivk_model_name(am.model),
                          .vocab = phivk_model_vocab(am.model), .ctx = ctx, .engine = engine,
                          .defaults = {.samp = o.samp, .seed_given = o.seed_given, .max_tokens = o.n_predict}};
    char msg[256];
    http = srv_http_start(&hp, msg, sizeof msg);
    if (!http) {
        fprintf(stderr, "phivk serve: %s\n", msg);
        goto out;
    }
    fprintf(stderr, "phivk serve: %s on %s, %d slot%s x %d tokens; listening on http://%s:%d%s\n", id,
            phivk_runtime_device_name(am.rt), n, n == 1 ? "" : "s", ctx, strchr(host, ':') ? "[::]" : host, srv_http_port(http),
            key ? " (API key required)" : "");
    int sig;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "phivk serve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    status = 0;
out:
    if (engine) srv_engine_shutdown(engine);
    srv_http_stop(http);
    srv_engine_destroy(engine);
    for (int i = n - 1; i > 0; i--) phivk_session_free(slots[i]); /* before the owner of their scratch */
    free(slots);
    app_model_close(&am);
    free(id);
    return status;
}
