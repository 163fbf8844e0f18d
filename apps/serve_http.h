/* The HTTP side of phivk serve (GNU libmicrohttpd, a thread per connection): the
 * routes, the API key, the body limit, requests turned into engine jobs (prompts
 * tokenized here, so a prompt longer than a slot's context is refused before it
 * queues) and their answers as JSON or server-sent events. A client that goes away
 * is noticed while its answer is awaited and its job released. */
#ifndef PHIVK_APPS_SERVE_HTTP_H
#define PHIVK_APPS_SERVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "phivk.h"
#include "serve_api.h"
#include "serve_engine.h"

typedef struct srv_http_params {
    const char *host;            /* an address or a name to bind */
    int port;                    /* 0: any free port */
    const char *api_key;         /* NULL: none asked */
    size_t max_body;             /* bytes */
    const char *model_id;        /* the id /v1/models lists */
    const char *model_alias;     /* also accepted in requests (the file's general.name) */
    const phivk_vocab *vocab;
    int32_t ctx;                 /* a slot's context */
    srv_defaults defaults;       /* for the fields a request leaves out */
    srv_engine *engine;
} srv_http_params;

typedef struct srv_http srv_http;
/* Listens and serves until srv_http_stop. NULL with the reason in msg. */
srv_http *srv_http_start(const srv_http_params *p, char *msg, size_t msg_cap);
int srv_http_port(const srv_http *h);
/* Waits up to 5 s for the answers in flight to end (the engine must have been told
 * to shut down: they end with an error), closes every connection and waits for
 * their threads, frees. Accepts NULL. */
void srv_http_stop(srv_http *h);

#endif
