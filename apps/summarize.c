/* The map-reduce of summarize.h.
 *
 * The prompt is the model's chat template around the instruction and the
 * document, tokenized as a conversation (phivk_chat_tokenize): the document is
 * message text, so one that mentions "<|end|>" cannot close the user's turn. What
 * the splitter measures for a chunk is what it adds to the prompt's tokens. */
#include "summarize.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "summarize_split.h"

#define SYSTEM_PROMPT "You summarize documents concisely and faithfully."
/* The fewest tokens a chunk of the document may have. */
#define MIN_CHUNK_TOKENS 8

typedef struct textbuf {
    char *p;
    size_t n, cap;
} textbuf;

typedef struct summarizer {
    const summ_params *p;
    const phivk_vocab *vocab;
    int32_t ctx;
    phivk_chat_format fmt;
    phivk_bos bos;
    char instruction[96];       /* the user's message before the document */
    const char *cue;            /* and after it */
    textbuf user;               /* instruction, document, cue */
    int32_t *ids;               /* ctx tokens: one prompt */
    int32_t n_template;         /* the prompt's tokens without a document */
    float *logits;
    phivk_sampler *smp;
    phivk_detok *dt;
    summ_stats stats;
    phivk_status status;        /* of the first failure */
    char *why;
    size_t why_cap;
} summarizer;

static bool fail(summarizer *S, phivk_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(summarizer *S, phivk_status st, const char *fmt, ...) {
    if (S->status == PHIVK_OK) {
        S->status = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(S->why, S->why_cap, fmt, ap);
        va_end(ap);
    }
    return false;
}

static void event(summarizer *S, summ_event e) {
    if (S->p->on_event) S->p->on_event(S->p->user, &e);
}

static bool buf_add(textbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

/* The prompt for len bytes of document, counted (and written up to cap) as by
 * phivk_chat_tokenize; -1 after a failure. */
static int64_t prompt_tokens(summarizer *S, const char *text, size_t len, int32_t *out, int64_t cap) {
    S->user.n = 0;
    if (!buf_add(&S->user, S->instruction, strlen(S->instruction)) || !buf_add(&S->user, text, len) ||
        !buf_add(&S->user, S->cue, strlen(S->cue)))
        return fail(S, PHIVK_ERR_HOST_MEMORY, "out of host memory"), -1;
    phivk_chat_msg msgs[] = {{"system", SYSTEM_PROMPT}, {"user", S->user.p}};
    /* Plain text has no place for a system message. */
    int skip = S->fmt == PHIVK_CHAT_PLAIN;
    int64_t n = phivk_chat_tokenize(S->vocab, S->fmt, msgs + skip, 2 - skip, true, S->bos, out, cap);
    if (n < 0) fail(S, PHIVK_ERR_INVALID, "%s", phivk_last_error());
    return n;
}

/* What a text adds to the prompt: the splitter's cost. */
static int64_t doc_tokens(void *summ, const char *text, size_t len) {
    summarizer *S = summ;
    int64_t n = prompt_tokens(S, text, len, NULL, 0);
    return n < 0 ? -1 : n > S->n_template ? n - S->n_template : 0;
}

/* The instruction and the template's own cost. */
static bool make_template(summarizer *S, int32_t words) {
    S->fmt = phivk_vocab_chat_format(S->vocab);
    S->bos = phivk_vocab_adds_bos(S->vocab) ? PHIVK_BOS_YES : PHIVK_BOS_NO;
    snprintf(S->instruction, sizeof S->instruction, "Summarize the following document in about %d words:\n\n",
             (int)words);
    /* A completion model (no chat format) needs a cue after the document. */
    S->cue = S->fmt == PHIVK_CHAT_PLAIN ? "\n\nSummary:" : "";
    int64_t n = prompt_tokens(S, "", 0, NULL, 0);
    if (n < 0) return false;
    S->n_template = (int32_t)(n < S->ctx ? n : S->ctx);
    if (n <= S->ctx) return true;
    return fail(S, PHIVK_ERR_CONTEXT_FULL, "the prompt template alone is %lld tokens and the context holds %d; "
                "use a larger --ctx", (long long)n, S->ctx);
}

static bool decode(summarizer *S, const int32_t *t, int32_t n) {
    phivk_status st = phivk_decode(S->p->sess, t, n, S->logits, false);
    if (st == PHIVK_ERR_CANCELLED) return fail(S, st, "cancelled");
    if (st != PHIVK_OK) return fail(S, st, "%s", phivk_last_error());
    return true;
}

/* Summarizes one text that fits (its tokens <= ctx - template - answer):
 * streams through on_text when out is NULL, else appends to out. At most
 * answer tokens. */
static bool summarize_once(summarizer *S, const char *text, size_t len, int32_t answer, textbuf *out) {
    int64_t n64 = prompt_tokens(S, text, len, S->ids, S->ctx);
    if (n64 < 0) return false;
    if (n64 > S->ctx) return fail(S, PHIVK_ERR_INVALID, "a chunk does not fit the context (a splitter bug)");
    int32_t n = (int32_t)n64;
    if (answer > S->ctx - n) answer = S->ctx - n;
    int32_t n_vocab = phivk_model_n_vocab(S->p->model);
    phivk_sampler_reset(S->smp);
    phivk_status st = phivk_session_truncate(S->p->sess, 0);
    if (st != PHIVK_OK) return fail(S, st, "%s", phivk_last_error());
    if (!decode(S, S->ids, n)) return false;
    S->stats.n_prompt += n;
    char piece[256];
    bool started = false;
    for (int32_t k = 0; k < answer; k++) {
        int32_t tok = phivk_sampler_sample(S->smp, S->logits, n_vocab);
        if (tok < 0) return fail(S, PHIVK_ERR_INVALID, "%s", phivk_last_error());
        if (phivk_token_is_stop(S->vocab, tok)) break;
        S->stats.n_gen++;
        size_t m = phivk_detok_push(S->dt, tok, piece, sizeof piece);
        /* The template ends in a newline: white space before the first word is
         * not part of the summary. */
        const char *p = piece;
        while (!started && m && (*p == ' ' || *p == '\n')) p++, m--;
        started |= m > 0;
        if (!out) S->p->on_text(S->p->user, p, m);
        else if (!buf_add(out, p, m)) return fail(S, PHIVK_ERR_HOST_MEMORY, "out of host memory");
        if (k + 1 == answer) break;
        if (!decode(S, &tok, 1)) return false;
    }
    size_t m = phivk_detok_flush(S->dt, piece, sizeof piece);
    if (!out) S->p->on_text(S->p->user, piece, m);
    else if (!buf_add(out, piece, m)) return fail(S, PHIVK_ERR_HOST_MEMORY, "out of host memory");
    return true;
}

/* One map pass: every chunk of text[0, len) summarized, the summaries joined by
 * blank lines into *next. Returns the number of chunks, -1 on failure. */
static int64_t map_pass(summarizer *S, const char *text, size_t len, int64_t budget, int32_t answer,
                        int pass, textbuf *next) {
    size_t *b;
    const char *why;
    int64_t n = sumsplit_text(text, len, budget, doc_tokens, S, &b, &why);
    if (n < 0) return fail(S, PHIVK_ERR_INVALID, "%s", why), -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t tokens = doc_tokens(S, text + b[i], b[i + 1] - b[i]);
        event(S, (summ_event){.kind = SUMM_CHUNK, .pass = pass, .chunk = i + 1, .n_chunks = n, .tokens = tokens});
        size_t at = next->n;
        if (at && !buf_add(next, "\n\n", 2)) {
            fail(S, PHIVK_ERR_HOST_MEMORY, "out of host memory");
            goto fail;
        }
        size_t start = next->n;
        if (!summarize_once(S, text + b[i], b[i + 1] - b[i], answer, next)) goto fail;
        if (next->n == start) next->n = at; /* an empty summary adds nothing */
        event(S, (summ_event){.kind = SUMM_CHUNK_DONE, .pass = pass, .chunk = i + 1, .n_chunks = n,
                              .tokens = tokens, .text = next->p + start, .len = next->n - start});
    }
    free(b);
    return n;
fail:
    free(b);
    return -1;
}

/* Map passes until the text fits one final, streamed pass. */
static bool summarize(summarizer *S, const char *doc, size_t len, int32_t answer) {
    int32_t avail = S->ctx - S->n_template;
    /* The final summary may take half of what the template leaves; chunk
     * summaries a third, so at least two fit in the next pass's chunk and every
     * pass shrinks the text. */
    int32_t answer_final = answer < avail / 2 ? answer : avail / 2;
    int32_t answer_map = answer < avail / 3 ? answer : avail / 3;
    if (avail / 3 < MIN_CHUNK_TOKENS)
        return fail(S, PHIVK_ERR_CONTEXT_FULL, "the prompt template takes %d of the context's %d tokens and "
                    "leaves no room for a document; use a larger --ctx", S->n_template, S->ctx);
    if (answer_final < answer) {
        char note[200];
        snprintf(note, sizeof note, "summaries are limited to %d tokens to leave room for the document "
                 "in a context of %d (use a larger --ctx for longer ones)", answer_final, S->ctx);
        event(S, (summ_event){.kind = SUMM_NOTE, .text = note, .len = strlen(note)});
    }
    textbuf cur = {0}, next = {0};
    const char *text = doc;
    int64_t n_prev = INT64_MAX;
    bool ok = false;
    for (int pass = 1;; pass++) {
        int64_t tokens = doc_tokens(S, text, len);
        if (tokens < 0) break;
        if (tokens <= avail - answer_final) {
            event(S, (summ_event){.kind = SUMM_FINAL, .pass = pass, .n_chunks = pass > 1 ? n_prev : 1,
                                  .tokens = tokens});
            ok = summarize_once(S, text, len, answer_final, NULL);
            break;
        }
        next.n = 0;
        int64_t n = map_pass(S, text, len, avail - answer_map, answer_map, pass, &next);
        if (n < 0) break;
        if (n >= n_prev) {
            fail(S, PHIVK_ERR_INVALID, "the summaries do not get shorter (%lld chunks again); "
                 "use a larger --ctx or fewer --words", (long long)n);
            break;
        }
        if (!next.n) {
            fail(S, PHIVK_ERR_INVALID, "the model wrote no summary for any chunk");
            break;
        }
        n_prev = n;
        textbuf t = cur;
        cur = next;
        next = t;
        text = cur.p;
        len = cur.n;
    }
    free(cur.p);
    free(next.p);
    return ok;
}

phivk_status summ_run(const summ_params *p, const char *doc, size_t len, summ_stats *stats, char *why,
                      size_t cap) {
    summarizer S = {.p = p, .why = why, .why_cap = cap};
    if (cap) *why = 0;
    S.vocab = phivk_model_vocab(p->model);
    S.ctx = phivk_session_ctx(p->sess);
    S.ids = malloc(sizeof *S.ids * (size_t)S.ctx);
    S.logits = malloc(sizeof *S.logits * (size_t)phivk_model_n_vocab(p->model));
    S.smp = phivk_sampler_create(&p->samp);
    S.dt = phivk_detok_create(S.vocab, false);
    if (!S.ids || !S.logits || !S.smp || !S.dt) fail(&S, PHIVK_ERR_HOST_MEMORY, "out of host memory");
    else if (make_template(&S, p->words)) summarize(&S, doc, len, p->answer);
    phivk_detok_free(S.dt);
    phivk_sampler_free(S.smp);
    free(S.logits);
    free(S.user.p);
    free(S.ids);
    if (stats) *stats = S.stats;
    return S.status;
}
