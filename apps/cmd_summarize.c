/* phivk summarize: a summary of a text or markdown file, streamed to stdout.
 *
 * A document that fits the context is summarized in one pass. A longer one goes
 * map-reduce: it is split into chunks that fit (summarize_split.c), each chunk is
 * summarized on its own with the KV cache reset in between, and the joined chunk
 * summaries are summarized again, in as many passes as it takes to fit.
 *
 * The prompt is the model's chat template around the instruction and the
 * document, tokenized as a conversation (phivk_chat_tokenize): the document is
 * message text, so one that mentions "<|end|>" cannot close the user's turn. What
 * the splitter measures for a chunk is what it adds to the prompt's tokens. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_common.h"
#include "commands.h"
#include "summarize_split.h"

#define SYSTEM_PROMPT "You summarize documents concisely and faithfully."
/* The fewest tokens a chunk of the document may have. */
#define MIN_CHUNK_TOKENS 8

typedef struct textbuf {
    char *p;
    size_t n, cap;
} textbuf;

typedef struct summarizer {
    app_model am;
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
    bool verbose;
    int64_t n_prompt, n_gen;    /* totals over every pass, for the closing line */
} summarizer;

static void usage(void) {
    printf("usage: phivk summarize MODEL.gguf FILE [--words N] [--ctx N] [OPTIONS]\n\n"
           "Summarizes a UTF-8 text or markdown file (FILE '-' reads standard input) with\n"
           "the model's chat template and streams the summary to stdout. A document longer\n"
           "than the context is split into chunks at paragraphs (then sentences, then\n"
           "words); each chunk is summarized, then the summaries are summarized.\n"
           "Greedy unless --temp is given.\n\n"
           "  --words N               length of the summary in words (default 150)\n"
           "  --ctx N                 context in tokens (same as -c)\n"
           "  -n N                    most tokens per summary (default: 2 x --words)\n"
           "  -v, --verbose           print each chunk's summary on stderr\n\n");
    app_opts_usage();
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
 * phivk_chat_tokenize; -1 after a message. */
static int64_t prompt_tokens(summarizer *S, const char *text, size_t len, int32_t *out, int64_t cap) {
    S->user.n = 0;
    if (!buf_add(&S->user, S->instruction, strlen(S->instruction)) || !buf_add(&S->user, text, len) ||
        !buf_add(&S->user, S->cue, strlen(S->cue))) {
        fprintf(stderr, "phivk summarize: out of host memory\n");
        return -1;
    }
    phivk_chat_msg msgs[] = {{"system", SYSTEM_PROMPT}, {"user", S->user.p}};
    /* Plain text has no place for a system message. */
    int skip = S->fmt == PHIVK_CHAT_PLAIN;
    int64_t n = phivk_chat_tokenize(S->vocab, S->fmt, msgs + skip, 2 - skip, true, S->bos, out, cap);
    if (n < 0) fprintf(stderr, "phivk summarize: %s\n", phivk_last_error());
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
    fprintf(stderr, "phivk summarize: the prompt template alone is %lld tokens and the context holds %d; "
                    "use a larger --ctx\n", (long long)n, S->ctx);
    return false;
}

/* Summarizes one text that fits (its tokens <= ctx - template - answer): streams
 * to stdout when out is NULL, else appends to out. At most answer tokens. */
static bool summarize_once(summarizer *S, const char *text, size_t len, int32_t answer, textbuf *out) {
    int64_t n64 = prompt_tokens(S, text, len, S->ids, S->ctx);
    if (n64 < 0) return false;
    if (n64 > S->ctx) {
        fprintf(stderr, "phivk summarize: a chunk does not fit the context (a splitter bug)\n");
        return false;
    }
    int32_t n = (int32_t)n64;
    if (answer > S->ctx - n) answer = S->ctx - n;
    int32_t n_vocab = phivk_model_n_vocab(S->am.model);
    phivk_sampler_reset(S->smp);
    if (phivk_session_truncate(S->am.sess, 0) != PHIVK_OK ||
        phivk_decode(S->am.sess, S->ids, n, S->logits, false) != PHIVK_OK) {
        fprintf(stderr, "phivk summarize: %s\n", phivk_last_error());
        return false;
    }
    S->n_prompt += n;
    char piece[256];
    bool started = false, ok = true;
    for (int32_t k = 0; k < answer; k++) {
        int32_t tok = phivk_sampler_sample(S->smp, S->logits, n_vocab);
        if (tok < 0) {
            fprintf(stderr, "\nphivk summarize: %s\n", phivk_last_error());
            return false;
        }
        if (phivk_token_is_stop(S->vocab, tok)) break;
        S->n_gen++;
        size_t m = phivk_detok_push(S->dt, tok, piece, sizeof piece);
        /* The template ends in a newline: white space before the first word is
         * not part of the summary. */
        const char *p = piece;
        while (!started && m && (*p == ' ' || *p == '\n')) p++, m--;
        started |= m > 0;
        if (out)
            ok = buf_add(out, p, m);
        else
            app_write_generated(stdout, p, m);
        if (!ok || k + 1 == answer) break;
        if (phivk_decode(S->am.sess, &tok, 1, S->logits, false) != PHIVK_OK) {
            fprintf(stderr, "\nphivk summarize: %s\n", phivk_last_error());
            return false;
        }
    }
    size_t m = phivk_detok_flush(S->dt, piece, sizeof piece);
    if (out) {
        ok = ok && buf_add(out, piece, m);
    } else {
        app_write_generated(stdout, piece, m);
        putchar('\n');
    }
    if (!ok) fprintf(stderr, "phivk summarize: out of host memory\n");
    return ok;
}

/* One map pass: every chunk of text[0, len) summarized, the summaries joined by
 * blank lines into *next. Returns the number of chunks, -1 on failure. */
static int64_t map_pass(summarizer *S, const char *text, size_t len, int64_t budget, int32_t answer,
                        int pass, textbuf *next) {
    size_t *b;
    const char *why;
    int64_t n = sumsplit_text(text, len, budget, doc_tokens, S, &b, &why);
    if (n < 0) {
        fprintf(stderr, "phivk summarize: %s\n", why);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t tokens = doc_tokens(S, text + b[i], b[i + 1] - b[i]);
        if (pass == 1) fprintf(stderr, "chunk %lld/%lld (%lld tokens)\n", (long long)i + 1, (long long)n, (long long)tokens);
        else fprintf(stderr, "pass %d: chunk %lld/%lld (%lld tokens of summaries)\n", pass, (long long)i + 1,
                     (long long)n, (long long)tokens);
        size_t at = next->n;
        if (at && !buf_add(next, "\n\n", 2)) goto oom;
        size_t start = next->n;
        if (!summarize_once(S, text + b[i], b[i + 1] - b[i], answer, next)) goto fail;
        if (next->n == start) next->n = at; /* an empty summary adds nothing */
        if (S->verbose)
            fprintf(stderr, "--- summary of chunk %lld/%lld ---\n%.*s\n---\n", (long long)i + 1, (long long)n,
                    (int)(next->n - start), next->p + start);
    }
    free(b);
    return n;
oom:
    fprintf(stderr, "phivk summarize: out of host memory\n");
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
    if (avail / 3 < MIN_CHUNK_TOKENS) {
        fprintf(stderr, "phivk summarize: the prompt template takes %d of the context's %d tokens and "
                        "leaves no room for a document; use a larger --ctx\n", S->n_template, S->ctx);
        return false;
    }
    if (answer_final < answer)
        fprintf(stderr, "phivk summarize: summaries are limited to %d tokens to leave room for the document "
                        "in a context of %d (use a larger --ctx for longer ones)\n", answer_final, S->ctx);
    textbuf cur = {0}, next = {0};
    const char *text = doc;
    int64_t n_prev = INT64_MAX;
    bool ok = false;
    for (int pass = 1;; pass++) {
        int64_t tokens = doc_tokens(S, text, len);
        if (tokens < 0) break;
        if (tokens <= avail - answer_final) {
            if (pass > 1) fprintf(stderr, "final summary of %lld chunk summaries (%lld tokens)\n", (long long)n_prev,
                                  (long long)tokens);
            ok = summarize_once(S, text, len, answer_final, NULL);
            break;
        }
        next.n = 0;
        int64_t n = map_pass(S, text, len, avail - answer_map, answer_map, pass, &next);
        if (n < 0) break;
        if (n >= n_prev) {
            fprintf(stderr, "phivk summarize: the summaries do not get shorter (%lld chunks again); "
                            "use a larger --ctx or fewer --words\n", (long long)n);
            break;
        }
        if (!next.n) {
            fprintf(stderr, "phivk summarize: the model wrote no summary for any chunk\n");
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

/* Reads FILE and checks that it is text; NULL with a one-line reason. */
static char *read_document(const char *path, const char *model, size_t *len) {
    char *text = app_read_file(strcmp(path, "-") ? path : "/dev/stdin", len);
    if (!text) return NULL;
    size_t n = *len, i = 0;
    while (i < n && isspace((unsigned char)text[i])) i++;
    if (i == n) {
        fprintf(stderr, "phivk summarize: %s is %s: nothing to summarize\n", path, n ? "only white space" : "empty");
        goto fail;
    }
    /* UTF-8 is checked by the model's tokenizer (its message names the offset) up
     * to the first NUL byte, which the tokenizer would take as text. */
    const char *nul = memchr(text, 0, n);
    phivk_vocab *v = phivk_vocab_load(model);
    if (!v) {
        fprintf(stderr, "phivk: %s\n", phivk_last_error());
        goto fail;
    }
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    tp.bos = PHIVK_BOS_NO;
    bool utf8 = phivk_tokenize(v, text, nul ? (size_t)(nul - text) : n, &tp, NULL, 0) >= 0;
    if (!utf8) fprintf(stderr, "phivk summarize: %s is not UTF-8 text: %s\n", path, phivk_last_error());
    phivk_vocab_free(v);
    if (!utf8) goto fail;
    if (nul) {
        fprintf(stderr, "phivk summarize: %s is not text: a NUL byte at byte %zu (a binary file?)\n", path,
                (size_t)(nul - text));
        goto fail;
    }
    return text;
fail:
    free(text);
    return NULL;
}

int cmd_summarize(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    const char *file = NULL, *words_text = NULL;
    bool verbose = false;
    const app_option own[] = {{"-v", NULL, &verbose}, {"--verbose", NULL, &verbose},
                              {"--words", &words_text, NULL}, {NULL, NULL, NULL}};
    int done = app_parse_args(&o, argc, argv, "summarize", usage, own, &file);
    if (done >= 0) return done;
    long words = 150;
    if (words_text && !app_parse_long(words_text, 1, 100000, &words)) {
        fprintf(stderr, "phivk summarize: bad value '%s' for --words\n", words_text);
        return 2;
    }
    if (o.prompt_file) {
        if (file) {
            fprintf(stderr, "phivk summarize: give the document once (FILE or -f FILE)\n");
            return 2;
        }
        file = o.prompt_file;
    }
    if (!o.model || !file || o.prompt) {
        fprintf(stderr, "phivk summarize: needs a model and a document FILE (not -p); see --help\n");
        return 2;
    }
    if (!o.temp_given) o.samp.temp = 0;
    if (!o.seed_given) o.samp.seed = (uint64_t)time(NULL);
    int32_t answer = o.n_predict > 0 ? o.n_predict : 2 * (int32_t)words;

    size_t len;
    char *doc = read_document(file, o.model, &len);
    if (!doc) return 1;
    /* A byte order mark is not part of the text. */
    const char *text = doc;
    if (len >= 3 && !memcmp(doc, "\xEF\xBB\xBF", 3)) text += 3, len -= 3;

    summarizer S = {.verbose = verbose};
    int status = 1;
    if (!app_model_open(&o, &S.am)) goto done;
    S.vocab = phivk_model_vocab(S.am.model);
    S.ctx = phivk_session_ctx(S.am.sess);
    S.ids = malloc(sizeof *S.ids * (size_t)S.ctx);
    S.logits = malloc(sizeof *S.logits * (size_t)phivk_model_n_vocab(S.am.model));
    S.smp = phivk_sampler_create(&o.samp);
    S.dt = phivk_detok_create(S.vocab, false);
    if (!S.ids || !S.logits || !S.smp || !S.dt) {
        fprintf(stderr, "phivk summarize: out of host memory\n");
        goto done;
    }
    if (!make_template(&S, (int32_t)words)) goto done;
    double t0 = app_now();
    if (!summarize(&S, text, len, answer)) goto done;
    double dt = app_now() - t0;
    fprintf(stderr, "summarized in %.2f s: %lld prompt tokens (%.1f tokens/s), %lld generated\n", dt,
            (long long)S.n_prompt, S.n_prompt / (dt + 1e-9), (long long)S.n_gen);
    status = 0;
done:
    phivk_detok_free(S.dt);
    phivk_sampler_free(S.smp);
    free(S.logits);
    free(S.user.p);
    free(S.ids);
    app_model_close(&S.am);
    free(doc);
    return status;
}
