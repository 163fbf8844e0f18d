/* The OpenAI HTTP API's JSON for phivk serve: requests read into plain fields
 * (every field type-checked, unsupported options refused by name), responses,
 * stream chunks and errors written in OpenAI's shapes. No model or HTTP here. */
#ifndef PHIVK_APPS_SERVE_API_H
#define PHIVK_APPS_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phivk.h"

typedef enum srv_endpoint { SRV_EP_CHAT, SRV_EP_COMPLETION } srv_endpoint;

typedef struct srv_request {
    srv_endpoint ep;
    char *model;                 /* NULL: not given */
    phivk_chat_msg *msgs;        /* chat: roles and contents owned */
    int n_msgs;
    char *prompt;                /* completion */
    bool stream, include_usage;
    int32_t max_tokens;          /* -1: not given */
    phivk_sampler_params samp;
    bool seed_given;
    char **stop;
    int n_stop;
} srv_request;

/* An error response: HTTP status and OpenAI's error object. */
typedef struct srv_error {
    int status;
    const char *type;            /* "invalid_request_error", "authentication_error", "server_error" */
    const char *code;            /* NULL or "model_not_found", "context_length_exceeded", ... */
    const char *param;           /* NULL or the request field at fault */
    char message[512];
} srv_error;

void srv_error_set(srv_error *err, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error": {"message", "type", "param", "code"}}; caller frees. NULL when out of memory. */
char *srv_error_json(const srv_error *err);

/* What a request that leaves a field out gets: the server's command line. */
typedef struct srv_defaults {
    phivk_sampler_params samp;
    bool seed_given;             /* else every request draws its own seed */
    int32_t max_tokens;          /* -1: until a stop or the context is full */
} srv_defaults;

/* Reads a request body of the endpoint. False with err filled (400) when the
 * JSON is malformed, a field has the wrong type or value, or an option is not
 * supported. */
bool srv_request_parse(const char *body, size_t len, srv_endpoint ep, const srv_defaults *d, srv_request *out,
                       srv_error *err);
void srv_request_free(srv_request *r);

/* What the responses name: their id, creation time and model. */
typedef struct srv_reply_head {
    srv_endpoint ep;
    const char *id;
    long long created;
    const char *model;
} srv_reply_head;

typedef struct srv_usage {
    int32_t prompt_tokens, completion_tokens, cached_tokens;
} srv_usage;

/* finish: "stop" or "length". All return malloc'd JSON text or NULL. */
char *srv_response_json(const srv_reply_head *h, const char *text, const char *finish, const srv_usage *u);
/* One stream chunk: text (NULL: the chat's opening role delta), finish (NULL:
 * none yet); u: the usage chunk (choices empty). */
char *srv_chunk_json(const srv_reply_head *h, const char *text, const char *finish, const srv_usage *u);
/* GET /v1/models: the list of one model; GET /v1/models/{id}: the model. */
char *srv_models_json(const char *model, long long created);
char *srv_model_json(const char *model, long long created);

#endif
