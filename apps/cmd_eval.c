/* phivk eval: run a token sequence, report its perplexity, optionally write the
 * logits of every position (little-endian f32, n_positions x n_vocab) for
 * comparison with other engines. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_common.h"
#include "commands.h"

static void usage(void) {
    printf("usage: phivk eval MODEL.gguf (--ids \"1 2 3\" | -p TEXT | -f FILE) [--logits OUT] [OPTIONS]\n\n"
           "Runs the sequence and prints its perplexity. --ids are used exactly as given\n"
           "(no BOS added); text gets BOS as the model file says.\n\n"
           "  --ids \"I1 I2 ...\"       token ids (space separated)\n"
           "  --logits OUT            write every position's logits (f32, n x n_vocab)\n\n");
    app_opts_usage();
}

/* Parses space-separated ids; returns the count or -1 with a message. */
static int64_t parse_ids(const char *s, int32_t **out) {
    int64_t n = 0, cap = 64;
    int32_t *ids = malloc(sizeof *ids * cap);
    while (ids) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "phivk eval: bad token id near '%.10s'\n", s);
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *bigger = realloc(ids, sizeof *ids * (cap *= 2));
            if (!bigger) break;
            ids = bigger;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    if (!ids) return -1;
    *out = ids;
    return n;
}

int cmd_eval(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    const char *ids_text = NULL, *logits_path = NULL;
    const app_option own[] = {{"--ids", &ids_text, NULL}, {"--logits", &logits_path, NULL}, {NULL, NULL, NULL}};
    int done = app_parse_args(&o, argc, argv, "eval", usage, own, NULL);
    if (done >= 0) return done;
    if (!o.model || (!!ids_text + !!o.prompt + !!o.prompt_file) != 1) {
        fprintf(stderr, "phivk eval: needs a model and exactly one of --ids, -p, -f; see --help\n");
        return 2;
    }

    int status = 1;
    app_model am = {0};
    int32_t *ids = NULL;
    float *logits = NULL;
    char *text = NULL;
    FILE *out = NULL;
    int64_t n = 0;
    if (ids_text && (n = parse_ids(ids_text, &ids)) < 0) return 2;
    if (o.prompt_file && !(text = app_read_file(o.prompt_file, NULL))) return 1;
    if (!app_model_open(&o, &am)) goto done;

    const phivk_vocab *vocab = phivk_model_vocab(am.model);
    int32_t n_vocab = phivk_model_n_vocab(am.model);
    if (!ids) {
        const char *t = text ? text : o.prompt;
        phivk_tokenize_params tp = phivk_tokenize_default_params();
        n = phivk_tokenize(vocab, t, strlen(t), &tp, NULL, 0);
        if (n < 0 || !(ids = malloc(sizeof *ids * (size_t)(n ? n : 1)))) {
            fprintf(stderr, "phivk eval: %s\n", n < 0 ? phivk_last_error() : "out of host memory");
            goto done;
        }
        phivk_tokenize(vocab, t, strlen(t), &tp, ids, n);
    }
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] >= n_vocab) {
            fprintf(stderr, "phivk eval: token id %d is outside the vocabulary (%d)\n", ids[i], n_vocab);
            goto done;
        }
    }
    int32_t ctx = phivk_session_ctx(am.sess);
    if (n < 1 || n > ctx) {
        fprintf(stderr, "phivk eval: the sequence is %lld tokens; it must be 1..%d (the context)\n",
                (long long)n, ctx);
        goto done;
    }
    if (logits_path && !(out = fopen(logits_path, "wb"))) {
        fprintf(stderr, "phivk eval: cannot write %s: %s\n", logits_path, strerror(errno));
        goto done;
    }
    /* Chunks keep the logits buffer bounded for long sequences. */
    const int32_t chunk = 256;
    logits = malloc(sizeof *logits * (size_t)n_vocab * chunk);
    if (!logits) {
        fprintf(stderr, "phivk eval: out of host memory\n");
        goto done;
    }
    double nll = 0, t0 = app_now();
    int64_t scored = 0;
    for (int64_t p = 0; p < n; p += chunk) {
        int32_t m = (int32_t)(n - p < chunk ? n - p : chunk);
        if (phivk_decode(am.sess, ids + p, m, logits, true) != PHIVK_OK) {
            fprintf(stderr, "phivk eval: %s\n", phivk_last_error());
            goto done;
        }
        if (out && fwrite(logits, sizeof *logits * n_vocab, m, out) != (size_t)m) {
            fprintf(stderr, "phivk eval: writing %s failed\n", logits_path);
            goto done;
        }
        for (int32_t i = 0; i < m && p + i + 1 < n; i++) {
            const float *row = logits + (size_t)i * n_vocab;
            double mx = row[0], sum = 0;
            for (int32_t v = 1; v < n_vocab; v++) mx = row[v] > mx ? row[v] : mx;
            for (int32_t v = 0; v < n_vocab; v++) sum += exp(row[v] - mx);
            nll -= row[ids[p + i + 1]] - mx - log(sum);
            scored++;
        }
    }
    double dt = app_now() - t0;
    if (out && fclose(out) != 0) {
        out = NULL;
        fprintf(stderr, "phivk eval: writing %s failed\n", logits_path);
        goto done;
    }
    out = NULL;
    if (scored)
        printf("perplexity: %.4f over %lld predicted tokens (%lld tokens, %.1f tokens/s)\n",
               exp(nll / scored), (long long)scored, (long long)n, n / dt);
    else
        printf("perplexity: n/a (one token predicts nothing); %lld tokens\n", (long long)n);
    status = 0;
done:
    if (out) fclose(out);
    free(logits);
    free(ids);
    free(text);
    app_model_close(&am);
    return status;
}
