/* phivk chat: a terminal conversation with the model's chat template.
 *
 * The whole conversation is re-rendered with the template every turn and
 * tokenized; only the tokens after the longest prefix already in the KV cache are
 * run, so earlier turns are never prefilled twice and a changed system prompt
 * re-runs exactly what changed. Ctrl-C stops the current answer and keeps the
 * session. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "app_common.h"
#include "commands.h"

typedef struct chat {
    app_model am;
    const phivk_vocab *vocab;
    phivk_chat_format fmt;
    phivk_chat_msg *msgs;       /* contents are owned (strdup) */
    int n_msgs, cap_msgs;
    int32_t *cached;            /* the tokens now in the KV cache, in order */
    int32_t n_cached;
    float *logits;
    phivk_sampler *smp;
    int32_t n_predict;
    bool lost;                  /* the GPU was lost: nothing more can be answered */
} chat;

static phivk_session *volatile interrupt_target;

static void on_sigint(int sig) {
    (void)sig;
    if (interrupt_target) phivk_cancel(interrupt_target);
}

static void usage(void) {
    printf("usage: phivk chat MODEL.gguf [--system TEXT] [OPTIONS]\n\n"
           "Talk with the model using its chat template. Commands at the prompt:\n"
           "  /system TEXT   set the system prompt      /reset   start a new conversation\n"
           "  /quit          leave (also Ctrl-D)        Ctrl-C   stop the current answer\n\n");
    app_opts_usage();
}

static bool push_msg(chat *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == c->cap_msgs) {
        int cap = c->cap_msgs ? c->cap_msgs * 2 : 16;
        phivk_chat_msg *m = realloc(c->msgs, sizeof *m * cap);
        if (!m) return false;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    char *copy = strndup(content, len);
    if (!copy) return false;
    c->msgs[c->n_msgs].role = role;
    c->msgs[c->n_msgs].content = copy;
    c->n_msgs++;
    return true;
}

static void pop_msg(chat *c) {
    c->n_msgs--;
    free((char *)c->msgs[c->n_msgs].content);
}

static void clear_msgs(chat *c, bool keep_system) {
    int keep = keep_system && c->n_msgs && !strcmp(c->msgs[0].role, "system");
    while (c->n_msgs > keep) pop_msg(c);
}

/* Brings the KV cache to the conversation's tokens (messages as plain text, only
 * the format's markup as control tokens); logits of its last token land in
 * c->logits. */
static phivk_status sync_cache(chat *c) {
    int64_t n = phivk_chat_tokenize(c->vocab, c->fmt, c->msgs, c->n_msgs, true, PHIVK_BOS_AUTO, NULL, 0);
    int32_t ctx = phivk_session_ctx(c->am.sess);
    phivk_status st = PHIVK_OK;
    int32_t *ids = NULL;
    if (n < 0) {
        st = PHIVK_ERR_INVALID;
        goto done;
    }
    if (n >= ctx) {
        fprintf(stderr, "phivk chat: the conversation is %lld tokens and the context holds %d; "
                        "/reset to start over (Up recalls your message)\n", (long long)n, ctx);
        st = PHIVK_ERR_CONTEXT_FULL;
        goto done;
    }
    ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
    if (!ids) {
        st = PHIVK_ERR_HOST_MEMORY;
        goto done;
    }
    phivk_chat_tokenize(c->vocab, c->fmt, c->msgs, c->n_msgs, true, PHIVK_BOS_AUTO, ids, n);
    int32_t keep = 0;
    while (keep < c->n_cached && keep < n && c->cached[keep] == ids[keep]) keep++;
    if (keep == n) keep--; /* at least one token must run to produce logits */
    st = phivk_session_truncate(c->am.sess, keep);
    if (st == PHIVK_OK) {
        c->n_cached = keep;
        st = phivk_decode(c->am.sess, ids + keep, (int32_t)(n - keep), c->logits, false);
    }
    if (st == PHIVK_OK) {
        memcpy(c->cached + keep, ids + keep, sizeof *ids * (size_t)(n - keep));
        c->n_cached = (int32_t)n;
    } else {
        c->n_cached = phivk_session_pos(c->am.sess);
    }
done:
    free(ids);
    return st;
}

/* Streams one answer; returns its text (owned by the caller) or NULL. */
static char *answer(chat *c) {
    size_t cap = 1024, len = 0;
    char *text = malloc(cap);
    phivk_detok *dt = phivk_detok_create(c->vocab, false);
    int32_t n_vocab = phivk_model_n_vocab(c->am.model);
    int32_t ctx = phivk_session_ctx(c->am.sess);
    if (!text || !dt) goto fail;
    char piece[256];
    interrupt_target = c->am.sess;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigaction(SIGINT, &sa, &old);
    for (int32_t n = 0; c->n_predict < 0 || n < c->n_predict; n++) {
        int32_t tok = phivk_sampler_sample(c->smp, c->logits, n_vocab);
        if (tok < 0) {
            fprintf(stderr, "\nphivk chat: %s\n", phivk_last_error());
            break;
        }
        if (phivk_token_is_stop(c->vocab, tok)) break;
        size_t k = phivk_detok_push(dt, tok, piece, sizeof piece);
        /* The template ends in a newline, so the SPM space before the first word
         * is not part of the answer. */
        const char *p = piece;
        while (!len && k && *p == ' ') p++, k--;
        if (len + k + 1 > cap) {
            char *bigger = realloc(text, cap * 2 + k);
            if (!bigger) break;
            text = bigger;
            cap = cap * 2 + k;
        }
        memcpy(text + len, p, k);
        len += k;
        app_write_generated(stdout, p, k);
        if (c->n_cached >= ctx) {
            fprintf(stderr, "\n[the context is full: /reset to start over]");
            break;
        }
        phivk_status st = phivk_decode(c->am.sess, &tok, 1, c->logits, false);
        if (st == PHIVK_ERR_CANCELLED) {
            fprintf(stderr, " [stopped]");
            break;
        }
        if (st != PHIVK_OK) {
            fprintf(stderr, "\nphivk chat: %s\n", phivk_last_error());
            c->lost = st == PHIVK_ERR_DEVICE_LOST;
            break;
        }
        c->cached[c->n_cached++] = tok;
    }
    sigaction(SIGINT, &old, NULL);
    interrupt_target = NULL;
    len += phivk_detok_flush(dt, text + len, cap - len);
    text[len] = 0;
    fputc('\n', stdout);
    phivk_detok_free(dt);
    return text;
fail:
    phivk_detok_free(dt);
    free(text);
    return NULL;
}

/* Once the GPU is lost the chat ends; the conversation so far goes to stderr, so
 * that what was typed survives where stdin was a pipe (the answers are on stdout). */
static void print_transcript(const chat *c) {
    fprintf(stderr, "phivk chat: the GPU was lost, the chat ends; the conversation so far:\n");
    for (int i = 0; i < c->n_msgs; i++) fprintf(stderr, "[%s] %s\n", c->msgs[i].role, c->msgs[i].content);
}

static char *read_line(bool interactive) {
    if (interactive) {
        char *line = readline("> ");
        if (line && *line) add_history(line);
        return line;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n && line[n - 1] == '\n') line[n - 1] = 0;
    return line;
}

int cmd_chat(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    const char *system = NULL;
    const app_option own[] = {{"--system", &system, NULL}, {NULL, NULL, NULL}};
    int done = app_parse_args(&o, argc, argv, "chat", usage, own, NULL);
    if (done >= 0) return done;
    if (!o.model) {
        fprintf(stderr, "phivk chat: needs a model; see --help\n");
        return 2;
    }
    if (!o.seed_given) o.samp.seed = (uint64_t)time(NULL);

    chat c = {.n_predict = o.n_predict};
    int status = 1;
    if (!app_model_open(&o, &c.am)) return 1;
    c.vocab = phivk_model_vocab(c.am.model);
    c.fmt = phivk_vocab_chat_format(c.vocab);
    c.cached = malloc(sizeof *c.cached * (size_t)phivk_session_ctx(c.am.sess));
    c.logits = malloc(sizeof *c.logits * (size_t)phivk_model_n_vocab(c.am.model));
    c.smp = phivk_sampler_create(&o.samp);
    if (!c.cached || !c.logits || !c.smp || (system && !push_msg(&c, "system", system, strlen(system)))) {
        fprintf(stderr, "phivk chat: out of host memory\n");
        goto done;
    }
    bool interactive = isatty(STDIN_FILENO);
    if (interactive)
        fprintf(stderr, "phivk chat with %s on %s. /help for commands, Ctrl-D to leave.\n",
                phivk_model_name(c.am.model), phivk_runtime_device_name(c.am.rt));
    char *line;
    while ((line = read_line(interactive))) {
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) {
            free(line);
            break;
        } else if (!strcmp(line, "/help")) {
            usage();
        } else if (!strcmp(line, "/reset")) {
            clear_msgs(&c, true);
            phivk_sampler_reset(c.smp);
            fprintf(stderr, "[new conversation]\n");
        } else if (!strncmp(line, "/system", 7) && (line[7] == ' ' || !line[7])) {
            const char *text = line[7] ? line + 8 : "";
            clear_msgs(&c, false);
            if (*text) push_msg(&c, "system", text, strlen(text));
            fprintf(stderr, "[system prompt %s; new conversation]\n", *text ? "set" : "cleared");
        } else if (*line) {
            if (!push_msg(&c, "user", line, strlen(line))) {
                fprintf(stderr, "phivk chat: out of host memory\n");
            } else {
                phivk_status st = sync_cache(&c);
                c.lost = st == PHIVK_ERR_DEVICE_LOST;
                if (st != PHIVK_OK) {
                    if (st != PHIVK_ERR_CONTEXT_FULL) fprintf(stderr, "phivk chat: %s\n", phivk_last_error());
                    if (!c.lost) pop_msg(&c); /* kept for the transcript */
                } else {
                    char *reply = answer(&c);
                    if (reply) push_msg(&c, "assistant", reply, strlen(reply));
                    free(reply);
                }
            }
        }
        free(line);
        if (c.lost) break;
    }
    if (c.lost) print_transcript(&c);
    status = c.lost ? 1 : 0;
done:
    clear_msgs(&c, false);
    free(c.msgs);
    free(c.cached);
    free(c.logits);
    phivk_sampler_free(c.smp);
    app_model_close(&c.am);
    return status;
}
