#include "serve_api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* OpenAI accepts up to 4 stop strings. */
#define MAX_STOP 4
#define MAX_STOP_LEN 256

void srv_error_set(srv_error *err, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) {
    err->status = status;
    err->type = type;
    err->code = code;
    err->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* Prints and frees j. */
static char *print_free(cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

char *srv_error_json(const srv_error *err) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    if (!e) return print_free(root);
    cJSON_AddStringToObject(e, "message", err->message);
    cJSON_AddStringToObject(e, "type", err->type);
    cJSON_AddItemToObject(e, "param", str_or_null(err->param));
    cJSON_AddItemToObject(e, "code", str_or_null(err->code));
    return print_free(root);
}

/* ------------------------------------------------------------- requests */

static bool bad(srv_error *err, const char *param, const char *fmt, const char *what) {
    srv_error_set(err, 400, "invalid_request_error", NULL, param, fmt, param, what);
    return false;
}

/* A number field in [lo, hi] (integer when integral): absent or null leaves *out. */
static bool get_number(const cJSON *o, const char *name, double lo, double hi, bool integral, double *out,
                       bool *given, srv_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v)) return bad(err, name, "'%s' must be %s", integral ? "an integer" : "a number");
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || (integral && d != floor(d))) {
        srv_error_set(err, 400, "invalid_request_error", NULL, name, "'%s' must be %s from %g to %g", name,
                      integral ? "an integer" : "a number", lo, hi);
        return false;
    }
    *out = d;
    if (given) *given = true;
    return true;
}

static bool get_bool(const cJSON *o, const char *name, bool *out, srv_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v)) return bad(err, name, "'%s' must be %s", "true or false");
    *out = cJSON_IsTrue(v);
    return true;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...}
 * parts joined. NULL with err on anything else. */
static char *content_text(const cJSON *c, srv_error *err) {
    if (cJSON_IsString(c)) return strdup(c->valuestring);
    if (cJSON_IsNull(c)) return strdup("");
    if (!cJSON_IsArray(c)) {
        bad(err, "messages", "'%s': a message's content must be %s", "a string or an array of text parts");
        return NULL;
    }
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            bad(err, "messages", "'%s': only %s are supported in a message's content", "text parts");
            return NULL;
        }
        len += strlen(text->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return NULL;
    len = 0;
    cJSON_ArrayForEach(part, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        memcpy(s + len, t, strlen(t));
        len += strlen(t);
    }
    s[len] = 0;
    return s;
}

static bool parse_messages(const cJSON *root, srv_request *r, srv_error *err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!m) return bad(err, "messages", "'%s' is %s", "required");
    if (!cJSON_IsArray(m) || !cJSON_GetArraySize(m))
        return bad(err, "messages", "'%s' must be %s", "a non-empty array of messages");
    int n = cJSON_GetArraySize(m);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs) return bad(err, "messages", "'%s': %s", "out of host memory");
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role) || !content)
            return bad(err, "messages", "'%s': each message must be %s", "an object with a string role and a content");
        const char *rs = role->valuestring;
        /* OpenAI's newer name for the system role */
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return bad(err, "messages", "'%s': a role must be %s", "system, developer, user or assistant");
        char *text = content_text(content, err);
        if (!text) return false;
        r->msgs[r->n_msgs].role = !strcmp(rs, "system") ? "system" : !strcmp(rs, "user") ? "user" : "assistant";
        r->msgs[r->n_msgs++].content = text;
    }
    return true;
}

static bool parse_prompt(const cJSON *root, srv_request *r, srv_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p) return bad(err, "prompt", "'%s' is %s", "required");
    /* a batch of prompts is OpenAI's too, but one request here is one sequence */
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (!cJSON_IsString(p)) return bad(err, "prompt", "'%s' must be %s", "a string (or an array of one string)");
    r->prompt = strdup(p->valuestring);
    return r->prompt != NULL;
}

static bool parse_stop(const cJSON *root, srv_request *r, srv_error *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s)) return true;
    int n = cJSON_IsString(s) ? 1 : cJSON_IsArray(s) ? cJSON_GetArraySize(s) : -1;
    if (n < 0 || n > MAX_STOP) return bad(err, "stop", "'%s' must be %s", "a string or an array of up to 4 strings");
    r->stop = calloc((size_t)n + 1, sizeof *r->stop);
    if (!r->stop) return false;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_IsString(s) ? s : cJSON_GetArrayItem(s, i);
        if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > MAX_STOP_LEN)
            return bad(err, "stop", "'%s' must hold %s", "non-empty strings of at most 256 bytes");
        if (!(r->stop[r->n_stop++] = strdup(v->valuestring))) return false;
    }
    return true;
}

/* Options phivk does not have are refused by name rather than ignored, so that a
 * client does not silently get something else than it asked for. */
static bool refuse_unsupported(const cJSON *root, srv_error *err) {
    static const char *const penalties[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, penalties[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsNumber(v)) return bad(err, penalties[i], "'%s' must be %s", "a number");
        if (v && cJSON_IsNumber(v) && v->valuedouble != 0) {
            srv_error_set(err, 400, "invalid_request_error", "unsupported_parameter", penalties[i],
                          "'%s' is not supported (phivk's sampler has a multiplicative repetition penalty, "
                          "not OpenAI's additive ones): leave it out or send 0", penalties[i]);
            return false;
        }
    }
    double n = 1;
    if (!get_number(root, "n", 1, 1e9, true, &n, NULL, err)) return false;
    if (n != 1) {
        srv_error_set(err, 400, "invalid_request_error", "unsupported_parameter", "n",
                      "'n' must be 1: one request is one answer (send several requests, they decode together)");
        return false;
    }
    static const char *const flags[] = {"logprobs", "echo"};
    for (int i = 0; i < 2; i++) {
        bool on = false;
        if (!get_bool(root, flags[i], &on, err)) return false;
        if (on) {
            srv_error_set(err, 400, "invalid_request_error", "unsupported_parameter", flags[i],
                          "'%s' is not supported by phivk serve", flags[i]);
            return false;
        }
    }
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (tools && !cJSON_IsNull(tools) && !(cJSON_IsArray(tools) && !cJSON_GetArraySize(tools))) {
        srv_error_set(err, 400, "invalid_request_error", "unsupported_parameter", "tools",
                      "'tools' is not supported by phivk serve");
        return false;
    }
    return true;
}

static bool parse_fields(const cJSON *root, srv_request *r, srv_error *err) {
    if (!cJSON_IsObject(root)) return bad(err, "body", "the %s must be %s", "a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) return bad(err, "model", "'%s' must be %s", "a string");
        if (!(r->model = strdup(model->valuestring))) return false;
    }
    if (!(r->ep == SRV_EP_CHAT ? parse_messages(root, r, err) : parse_prompt(root, r, err))) return false;
    if (!get_bool(root, "stream", &r->stream, err)) return false;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return bad(err, "stream_options", "'%s' must be %s", "an object");
        if (!get_bool(so, "include_usage", &r->include_usage, err)) return false;
    }
    double v;
    const char *max_name = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens") ? "max_completion_tokens"
                                                                                           : "max_tokens";
    v = r->max_tokens;
    if (!get_number(root, max_name, 1, 1 << 30, true, &v, NULL, err)) return false;
    r->max_tokens = (int32_t)v;
    v = r->samp.temp;
    if (!get_number(root, "temperature", 0, 2, false, &v, NULL, err)) return false;
    r->samp.temp = (float)v;
    v = r->samp.top_p;
    if (!get_number(root, "top_p", 0, 1, false, &v, NULL, err)) return false;
    if (v <= 0) return bad(err, "top_p", "'%s' must be %s", "above 0 (1: off)");
    r->samp.top_p = (float)v;
    v = r->samp.top_k; /* llama.cpp's servers take top_k, and so does phivk's sampler */
    if (!get_number(root, "top_k", 0, 1 << 30, true, &v, NULL, err)) return false;
    r->samp.top_k = (int32_t)v;
    v = (double)r->samp.seed;
    if (!get_number(root, "seed", -9007199254740991.0, 9007199254740991.0, true, &v, &r->seed_given, err))
        return false;
    r->samp.seed = (uint64_t)(int64_t)v;
    return parse_stop(root, r, err) && refuse_unsupported(root, err);
}

bool srv_request_parse(const char *body, size_t len, srv_endpoint ep, const srv_defaults *d, srv_request *out,
                       srv_error *err) {
    memset(out, 0, sizeof *out);
    out->ep = ep;
    out->max_tokens = d->max_tokens;
    out->samp = d->samp;
    out->seed_given = d->seed_given;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        srv_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                      "the request body is not valid JSON (near byte %zu)",
                      (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - body : 0));
        return false;
    }
    srv_error_set(err, 500, "server_error", NULL, NULL, "out of host memory");
    bool ok = parse_fields(root, out, err);
    cJSON_Delete(root);
    if (!ok) srv_request_free(out);
    return ok;
}

void srv_request_free(srv_request *r) {
    for (int i = 0; i < r->n_msgs; i++) free((char *)r->msgs[i].content);
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->model);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ responses */

static cJSON *head_object(const srv_reply_head *h, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", h->id);
    cJSON_AddStringToObject(o, "object", h->ep == SRV_EP_COMPLETION ? "text_completion"
                                         : chunk                     ? "chat.completion.chunk"
                                                                     : "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)h->created);
    cJSON_AddStringToObject(o, "model", h->model);
    return o;
}

static void add_usage(cJSON *o, const srv_usage *u) {
    cJSON *us = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(us, "prompt_tokens", u->prompt_tokens);
    cJSON_AddNumberToObject(us, "completion_tokens", u->completion_tokens);
    cJSON_AddNumberToObject(us, "total_tokens", u->prompt_tokens + u->completion_tokens);
    cJSON *d = cJSON_AddObjectToObject(us, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", u->cached_tokens);
}

/* One choice: the chat's message (or delta) or the completion's text. */
static cJSON *choice(const srv_reply_head *h, const char *text, const char *finish, bool chunk) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (h->ep == SRV_EP_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (!chunk || (!text && !finish)) cJSON_AddStringToObject(m, "role", "assistant");
        if (text) cJSON_AddStringToObject(m, "content", text);
        else if (chunk && !finish) cJSON_AddStringToObject(m, "content", "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
        cJSON_AddNullToObject(c, "logprobs");
    }
    cJSON_AddItemToObject(c, "finish_reason", str_or_null(finish));
    return c;
}

char *srv_response_json(const srv_reply_head *h, const char *text, const char *finish, const srv_usage *u) {
    cJSON *o = head_object(h, false);
    cJSON *cs = cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToArray(cs, choice(h, text, finish, false));
    add_usage(o, u);
    return print_free(o);
}

char *srv_chunk_json(const srv_reply_head *h, const char *text, const char *finish, const srv_usage *u) {
    cJSON *o = head_object(h, true);
    cJSON *cs = cJSON_AddArrayToObject(o, "choices");
    if (u) add_usage(o, u);
    else if (finish) cJSON_AddItemToArray(cs, choice(h, NULL, finish, true));
    else cJSON_AddItemToArray(cs, choice(h, text, NULL, true));
    return print_free(o);
}

static cJSON *model_object(const char *model, long long created) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "phivk");
    return m;
}

char *srv_model_json(const char *model, long long created) { return print_free(model_object(model, created)); }

char *srv_models_json(const char *model, long long created) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), model_object(model, created));
    return print_free(o);
}
