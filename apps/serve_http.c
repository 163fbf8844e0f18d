#include "serve_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "serve_api.h"
#include "serve_metrics.h"

/* How often a waiting answer looks whether its client is still there. */
#define POLL_MS 50
/* A stream that has had nothing to send this long (a long prompt being read) sends
 * an SSE comment, so that proxies and clients with idle timeouts keep it. */
#define KEEPALIVE_POLLS (15000 / POLL_MS)

struct srv_http {
    srv_http_params p;
    struct MHD_Daemon *d;
    srv_metrics metrics;
    atomic_uint_fast64_t next_id;
    atomic_int answers;       /* jobs whose answer is being awaited or sent */
    int port;
};

typedef enum route { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_MODEL, R_CHAT, R_COMPLETION } route;

/* One connection's request: its route and body. */
typedef struct conn {
    route r;
    char *model;              /* R_MODEL: the id asked for */
    char *body;
    size_t len, cap;
    bool too_big;
} conn;

/* An answer being awaited: its job and head; for a stream, the bytes of server-sent
 * events not yet sent. */
typedef struct stream {
    srv_http *h;
    srv_job *job;
    int fd;
    srv_reply_head head;
    char id[48];
    bool include_usage, opened, ended;
    char *buf;
    size_t len, off, cap;
} stream;

/* True once the client closed its side or the socket failed: a peek that reads
 * end of file. Bytes it sent (a pipelined request) leave the socket alone. */
static bool client_gone(int fd) {
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int conn_fd(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Queues body (malloc'd, taken) with status, counting it. */
static enum MHD_Result respond(srv_http *h, struct MHD_Connection *mc, int status, char *body, const char *type) {
    if (!body) {
        status = 500;
        body = strdup("{\"error\":{\"message\":\"out of host memory\",\"type\":\"server_error\",\"param\":null,"
                      "\"code\":null}}");
        type = "application/json";
        if (!body) return MHD_NO;
    }
    struct MHD_Response *res = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!res) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 503) MHD_add_response_header(res, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(res, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result r = MHD_queue_response(mc, (unsigned)status, res);
    MHD_destroy_response(res);
    srv_metrics_count(&h->metrics, status);
    return r;
}

static enum MHD_Result respond_error(srv_http *h, struct MHD_Connection *mc, const srv_error *err) {
    return respond(h, mc, err->status, srv_error_json(err), "application/json");
}

static enum MHD_Result fail(srv_http *h, struct MHD_Connection *mc, int status, const char *type, const char *code,
                            const char *msg) {
    srv_error err;
    srv_error_set(&err, status, type, code, NULL, "%s", msg);
    return respond_error(h, mc, &err);
}

static route find_route(const char *url, const char *method, bool *method_ok) {
    static const struct {
        const char *url, *method;
        route r;
    } routes[] = {
        {"/health", "GET", R_HEALTH},         {"/metrics", "GET", R_METRICS},
        {"/v1/models", "GET", R_MODELS},      {"/v1/chat/completions", "POST", R_CHAT},
        {"/v1/completions", "POST", R_COMPLETION},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].url)) {
            *method_ok = !strcmp(method, routes[i].method);
            return routes[i].r;
        }
    *method_ok = !strcmp(method, "GET");
    return !strncmp(url, "/v1/models/", 11) && url[11] ? R_MODEL : R_NONE;
}

/* Compares without stopping at the first difference, so that the time taken does
 * not tell how much of a guessed key was right. */
static bool key_matches(const char *got, const char *want) {
    size_t n = strlen(got), m = strlen(want);
    unsigned diff = n != m;
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < n ? got[i] : 0);
    return !diff;
}

/* ------------------------------------------------------------ the jobs */

/* The request's prompt as tokens: the chat through the model's format (message
 * contents stay plain text), a completion's prompt as plain text. */
static bool request_tokens(srv_http *h, const srv_request *r, srv_job_params *jp, srv_error *err) {
    const phivk_vocab *v = h->p.vocab;
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    int64_t n = r->ep == SRV_EP_CHAT
                    ? phivk_chat_tokenize(v, PHIVK_CHAT_AUTO, r->msgs, r->n_msgs, true, PHIVK_BOS_AUTO, NULL, 0)
                    : phivk_tokenize(v, r->prompt, strlen(r->prompt), &tp, NULL, 0);
    if (n < 0) {
        srv_error_set(err, 400, "invalid_request_error", NULL, r->ep == SRV_EP_CHAT ? "messages" : "prompt",
                      "cannot tokenize the prompt: %s", phivk_last_error());
        return false;
    }
    if (n == 0) {
        srv_error_set(err, 400, "invalid_request_error", NULL, "prompt", "the prompt is empty");
        return false;
    }
    if (n >= h->p.ctx) {
        srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded",
                      r->ep == SRV_EP_CHAT ? "messages" : "prompt",
                      "the prompt is %lld tokens and a slot's context holds %d (one more is needed to answer): "
                      "shorten it, or start the server with a larger -c",
                      (long long)n, h->p.ctx);
        return false;
    }
    jp->tokens = malloc(sizeof *jp->tokens * (size_t)n);
    if (!jp->tokens) return false;
    if (r->ep == SRV_EP_CHAT)
        phivk_chat_tokenize(v, PHIVK_CHAT_AUTO, r->msgs, r->n_msgs, true, PHIVK_BOS_AUTO, jp->tokens, n);
    else
        phivk_tokenize(v, r->prompt, strlen(r->prompt), &tp, jp->tokens, n);
    jp->n_tokens = (int32_t)n;
    return true;
}

static const char *finish_name(srv_finish f) { return f == SRV_LENGTH ? "length" : "stop"; }

static void usage_of(const srv_job_state *st, srv_usage *u) {
    u->prompt_tokens = st->prompt_tokens;
    u->completion_tokens = st->completion_tokens;
    u->cached_tokens = st->cached_tokens;
}

/* Waits for the whole answer; NULL when the client left (or out of memory). */
static char *await_all(srv_job *job, int fd, srv_job_state *st) {
    char *all = NULL;
    size_t len = 0;
    for (;;) {
        char *t = srv_job_take(job, POLL_MS, st);
        if (!t) break;
        size_t k = strlen(t);
        char *bigger = realloc(all, len + k + 1);
        if (!bigger) {
            free(t);
            break;
        }
        all = bigger;
        memcpy(all + len, t, k + 1);
        len += k;
        free(t);
        if (st->finish != SRV_RUNNING) return all;
        if (client_gone(fd)) break;
    }
    free(all);
    return NULL;
}

/* ---------------------------------------------------------- the stream */

/* Appends text to what the stream has to send. */
static bool stream_put(stream *s, const char *text) {
    size_t k = strlen(text);
    if (s->len + k + 1 > s->cap) {
        size_t cap = s->cap * 2 + k + 1;
        char *b = realloc(s->buf, cap);
        if (!b) return false;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, k + 1);
    s->len += k;
    return true;
}

/* Appends "data: JSON\n\n" (json taken; NULL is out of memory). */
static bool stream_event(stream *s, char *json) {
    bool ok = json && stream_put(s, "data: ") && stream_put(s, json) && stream_put(s, "\n\n");
    free(json);
    return ok;
}

/* Refills s->buf with the next events; false when the client left or memory ran out. */
static bool stream_fill(stream *s) {
    s->len = s->off = 0;
    if (!s->opened) {
        s->opened = true;
        if (s->head.ep == SRV_EP_CHAT) return stream_event(s, srv_chunk_json(&s->head, NULL, NULL, NULL));
    }
    for (int idle = 1;; idle++) {
        srv_job_state st;
        char *t = srv_job_take(s->job, POLL_MS, &st);
        if (!t) return false;
        bool ok = !*t || stream_event(s, srv_chunk_json(&s->head, t, NULL, NULL));
        free(t);
        if (!ok) return false;
        if (st.finish == SRV_ERROR) {
            srv_error err;
            srv_error_set(&err, 500, "server_error", NULL, NULL, "%s", st.error);
            ok = stream_event(s, srv_error_json(&err));
        } else if (st.finish != SRV_RUNNING) {
            srv_usage u;
            usage_of(&st, &u);
            ok = stream_event(s, srv_chunk_json(&s->head, NULL, finish_name(st.finish), NULL)) &&
                 (!s->include_usage || stream_event(s, srv_chunk_json(&s->head, NULL, NULL, &u)));
        }
        if (st.finish != SRV_RUNNING) {
            s->ended = true;
            return ok && stream_put(s, "data: [DONE]\n\n");
        }
        if (s->len) return true;
        if (client_gone(s->fd)) return false;
        if (idle % KEEPALIVE_POLLS == 0) return stream_put(s, ": keep-alive\n\n");
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *s = cls;
    while (s->off == s->len) {
        if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!stream_fill(s)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t k = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->buf + s->off, k);
    s->off += k;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    stream *s = cls;
    srv_job_release(s->job);
    atomic_fetch_sub(&s->h->answers, 1);
    free(s->buf);
    free(s);
}

/* ------------------------------------------------------------- handlers */

static enum MHD_Result handle_generate(srv_http *h, struct MHD_Connection *mc, conn *c) {
    srv_request r;
    srv_error err;
    srv_endpoint ep = c->r == R_CHAT ? SRV_EP_CHAT : SRV_EP_COMPLETION;
    if (!srv_request_parse(c->body ? c->body : "", c->len, ep, &h->p.defaults, &r, &err)) return respond_error(h, mc, &err);
    srv_job_params jp = {.max_tokens = r.max_tokens, .samp = r.samp, .trim_leading_space = ep == SRV_EP_CHAT};
    enum MHD_Result res;
    if (r.model && strcmp(r.model, h->p.model_id) && strcmp(r.model, h->p.model_alias)) {
        srv_error_set(&err, 404, "invalid_request_error", "model_not_found", "model",
                      "the model '%s' does not exist: this server has '%s'", r.model, h->p.model_id);
        res = respond_error(h, mc, &err);
        goto done;
    }
    srv_error_set(&err, 500, "server_error", NULL, NULL, "out of host memory");
    if (!request_tokens(h, &r, &jp, &err)) {
        res = respond_error(h, mc, &err);
        goto done;
    }
    uint64_t n = atomic_fetch_add(&h->next_id, 1);
    if (!r.seed_given) jp.samp.seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + n;
    jp.stop = r.stop;
    jp.n_stop = r.n_stop;
    r.stop = NULL;
    r.n_stop = 0;
    srv_job *job = srv_engine_submit(h->p.engine, &jp);
    if (!job) {
        /* 503 either way: a load balancer sends the request to another server */
        srv_engine_stats st;
        srv_engine_stats_get(h->p.engine, &st);
        if (st.lost) res = fail(h, mc, 503, "server_error", "device_lost", st.lost_reason);
        else res = fail(h, mc, 503, "server_error", "queue_full", "every slot is busy and the queue is full: retry after a second");
        goto done;
    }
    stream *s = calloc(1, sizeof *s);
    if (!s) {
        srv_job_release(job);
        res = fail(h, mc, 500, "server_error", NULL, "out of host memory");
        goto done;
    }
    atomic_fetch_add(&h->answers, 1);
    s->h = h;
    s->job = job;
    s->fd = conn_fd(mc);
    snprintf(s->id, sizeof s->id, "%s-%llx", ep == SRV_EP_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)n);
    s->head = (srv_reply_head){.ep = ep, .id = s->id, .created = (long long)time(NULL), .model = h->p.model_id};
    s->include_usage = r.include_usage;
    if (r.stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
        if (!resp) {
            stream_free(s);
            res = MHD_NO;
            goto done;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        /* nginx passes the events on as they come instead of buffering them */
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        res = MHD_queue_response(mc, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        srv_metrics_count(&h->metrics, 200);
        goto done;
    }
    srv_job_state st;
    char *text = await_all(job, s->fd, &st);
    if (!text) {
        res = MHD_NO; /* the client left: close */
    } else if (st.finish == SRV_ERROR) {
        res = fail(h, mc, 500, "server_error", NULL, st.error);
    } else {
        srv_usage u;
        usage_of(&st, &u);
        res = respond(h, mc, 200, srv_response_json(&s->head, text, finish_name(st.finish), &u), "application/json");
    }
    free(text);
    stream_free(s);
done:
    free(jp.tokens);
    for (int i = 0; i < jp.n_stop; i++) free(jp.stop[i]);
    free(jp.stop);
    srv_request_free(&r);
    return res;
}

static enum MHD_Result handle(srv_http *h, struct MHD_Connection *mc, conn *c) {
    switch (c->r) {
    case R_HEALTH: {
        srv_engine_stats st;
        srv_engine_stats_get(h->p.engine, &st);
        if (st.lost) /* a load balancer's probe takes this server out */
            return fail(h, mc, 503, "server_error", "device_lost", st.lost_reason);
        char body[160];
        snprintf(body, sizeof body, "{\"status\":\"ok\",\"slots_idle\":%d,\"slots_processing\":%d,\"queue\":%d}",
                 st.slots - st.active, st.active, st.queued);
        return respond(h, mc, 200, strdup(body), "application/json");
    }
    case R_METRICS: {
        srv_engine_stats st;
        srv_engine_stats_get(h->p.engine, &st);
        return respond(h, mc, 200, srv_metrics_text(&h->metrics, &st), "text/plain; version=0.0.4");
    }
    case R_MODELS: return respond(h, mc, 200, srv_models_json(h->p.model_id, 0), "application/json");
    case R_MODEL:
        if (strcmp(c->model, h->p.model_id) && strcmp(c->model, h->p.model_alias)) {
            srv_error err;
            srv_error_set(&err, 404, "invalid_request_error", "model_not_found", "model",
                          "the model '%s' does not exist: this server has '%s'", c->model, h->p.model_id);
            return respond_error(h, mc, &err);
        }
        return respond(h, mc, 200, srv_model_json(h->p.model_id, 0), "application/json");
    default: return handle_generate(h, mc, c);
    }
}

/* The first call sees the headers: the route, the key and the declared length are
 * checked before any body is read. */
static enum MHD_Result on_headers(srv_http *h, struct MHD_Connection *mc, const char *url, const char *method,
                                  void **con_cls) {
    bool method_ok = false;
    route r = find_route(url, method, &method_ok);
    if (r == R_NONE) return fail(h, mc, 404, "invalid_request_error", "not_found", "no such endpoint");
    if (!method_ok) return fail(h, mc, 405, "invalid_request_error", "method_not_allowed", "method not allowed here");
    if (h->p.api_key && r != R_HEALTH && r != R_METRICS) {
        const char *auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncmp(auth, "Bearer ", 7))
            return fail(h, mc, 401, "invalid_request_error", "invalid_api_key",
                        "missing API key: send the header 'Authorization: Bearer KEY'");
        if (!key_matches(auth + 7, h->p.api_key))
            return fail(h, mc, 401, "invalid_request_error", "invalid_api_key", "incorrect API key");
    }
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > h->p.max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", h->p.max_body);
        return fail(h, mc, 413, "invalid_request_error", "request_too_large", msg);
    }
    conn *c = calloc(1, sizeof *c);
    if (!c || (r == R_MODEL && !(c->model = strdup(url + 11)))) {
        free(c);
        return MHD_NO;
    }
    c->r = r;
    *con_cls = c;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    srv_http *h = cls;
    conn *c = *con_cls;
    if (!c) return on_headers(h, mc, url, method, con_cls);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_big || c->len + n > h->p.max_body) {
            c->too_big = true; /* a chunked body has no declared length: read and drop it */
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = c->cap * 2 + n + 1;
            char *b = realloc(c->body, cap);
            if (!b) return MHD_NO;
            c->body = b;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        c->body[c->len] = 0;
        return MHD_YES;
    }
    if (c->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", h->p.max_body);
        return fail(h, mc, 413, "invalid_request_error", "request_too_large", msg);
    }
    return handle(h, mc, c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode t) {
    conn *c = *con_cls;
    if (c) {
        free(c->body);
        free(c->model);
    }
    free(c);
    *con_cls = NULL;
}

srv_http *srv_http_start(const srv_http_params *p, char *msg, size_t msg_cap) {
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int gai = getaddrinfo(p->host, port, &hints, &ai);
    if (gai) {
        snprintf(msg, msg_cap, "cannot use the host '%s': %s", p->host, gai_strerror(gai));
        return NULL;
    }
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        snprintf(msg, msg_cap, "out of host memory");
        return NULL;
    }
    h->p = *p;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT, 512u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(msg, msg_cap, "cannot listen on %s port %d (in use, or not an address of this machine)", p->host,
                 p->port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : p->port;
    return h;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_stop(srv_http *h) {
    if (!h) return;
    /* The answers in flight end with an error event once the engine has shut down;
     * they get a moment to reach their clients before the connections close. */
    for (int i = 0; i < 100 && atomic_load(&h->answers) > 0; i++) nanosleep(&(struct timespec){0, 50000000L}, NULL);
    MHD_stop_daemon(h->d);
    free(h);
}
