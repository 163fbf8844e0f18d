/* phivk summarize: a summary of a text or markdown file, streamed to stdout.
 *
 * A document that fits the context is summarized in one pass; a longer one goes
 * map-reduce (summarize.c, shared with phivk-chat). Progress goes to stderr. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_common.h"
#include "commands.h"
#include "summarize.h"

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

/* Progress on stderr, as lines the tests and scripts read. */
static void on_event(void *user, const summ_event *e) {
    bool verbose = *(const bool *)user;
    switch (e->kind) {
    case SUMM_NOTE: fprintf(stderr, "phivk summarize: %.*s\n", (int)e->len, e->text); break;
    case SUMM_CHUNK:
        if (e->pass == 1)
            fprintf(stderr, "chunk %lld/%lld (%lld tokens)\n", (long long)e->chunk, (long long)e->n_chunks,
                    (long long)e->tokens);
        else
            fprintf(stderr, "pass %d: chunk %lld/%lld (%lld tokens of summaries)\n", e->pass, (long long)e->chunk,
                    (long long)e->n_chunks, (long long)e->tokens);
        break;
    case SUMM_CHUNK_DONE:
        if (verbose)
            fprintf(stderr, "--- summary of chunk %lld/%lld ---\n%.*s\n---\n", (long long)e->chunk,
                    (long long)e->n_chunks, (int)e->len, e->text);
        break;
    case SUMM_FINAL:
        if (e->pass > 1)
            fprintf(stderr, "final summary of %lld chunk summaries (%lld tokens)\n", (long long)e->n_chunks,
                    (long long)e->tokens);
        break;
    }
}

static void on_text(void *user, const char *s, size_t n) {
    (void)user;
    app_write_generated(stdout, s, n);
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

    app_model am;
    if (!app_model_open(&o, &am)) {
        free(doc);
        return 1;
    }
    summ_params sp = {.model = am.model, .sess = am.sess, .samp = o.samp, .words = (int32_t)words,
                      .answer = answer, .on_text = on_text, .on_event = on_event, .user = &verbose};
    summ_stats stats;
    char why[512];
    double t0 = app_now();
    int status = 1;
    if (summ_run(&sp, text, len, &stats, why, sizeof why) == PHIVK_OK) {
        putchar('\n');
        double dt = app_now() - t0;
        fprintf(stderr, "summarized in %.2f s: %lld prompt tokens (%.1f tokens/s), %lld generated\n", dt,
                (long long)stats.n_prompt, stats.n_prompt / (dt + 1e-9), (long long)stats.n_gen);
        status = 0;
    } else {
        fprintf(stderr, "phivk summarize: %s\n", why);
    }
    app_model_close(&am);
    free(doc);
    return status;
}
