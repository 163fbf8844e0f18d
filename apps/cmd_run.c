/* phivk run: complete a prompt and stream the answer to stdout; timings go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_common.h"
#include "commands.h"

static void usage(void) {
    printf("usage: phivk run MODEL.gguf -p TEXT [OPTIONS]\n"
           "       phivk run -m MODEL.gguf -f PROMPT.txt [OPTIONS]\n\n"
           "Completes the prompt (control tokens such as <|user|> in it are parsed) and\n"
           "streams the answer; prompt and generation speed are printed on stderr.\n\n");
    app_opts_usage();
}

int cmd_run(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    int done = app_parse_args(&o, argc, argv, "run", usage, NULL, NULL);
    if (done >= 0) return done;
    if (!o.model || (!o.prompt && !o.prompt_file)) {
        fprintf(stderr, "phivk run: needs a model and a prompt (-p TEXT or -f FILE); see --help\n");
        return 2;
    }
    char *file_text = NULL;
    size_t prompt_len;
    if (o.prompt_file) {
        file_text = app_read_file(o.prompt_file, &prompt_len);
        if (!file_text) return 1;
    } else {
        prompt_len = strlen(o.prompt);
    }
    const char *prompt = file_text ? file_text : o.prompt;
    if (!o.seed_given) o.samp.seed = (uint64_t)time(NULL);

    int status = 1;
    app_model am = {0};
    int32_t *ids = NULL;
    float *logits = NULL;
    phivk_sampler *smp = NULL;
    phivk_detok *dt = NULL;
    if (!app_model_open(&o, &am)) goto done;

    const phivk_vocab *vocab = phivk_model_vocab(am.model);
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    tp.parse_special = true;
    int64_t n_ids = phivk_tokenize(vocab, prompt, prompt_len, &tp, NULL, 0);
    if (n_ids < 0) {
        fprintf(stderr, "phivk run: prompt: %s\n", phivk_last_error());
        goto done;
    }
    int32_t ctx = phivk_session_ctx(am.sess);
    if (n_ids >= ctx) {
        fprintf(stderr, "phivk run: the prompt is %lld tokens but the context holds %d; "
                        "use a larger -c or a shorter prompt\n", (long long)n_ids, ctx);
        goto done;
    }
    if (n_ids == 0) {
        fprintf(stderr, "phivk run: the prompt is empty and the model adds no BOS token\n");
        goto done;
    }
    int32_t n_vocab = phivk_model_n_vocab(am.model);
    ids = malloc(sizeof *ids * (size_t)n_ids);
    logits = malloc(sizeof *logits * (size_t)n_vocab);
    smp = phivk_sampler_create(&o.samp);
    dt = phivk_detok_create(vocab, false);
    if (!ids || !logits || !smp || !dt) {
        fprintf(stderr, "phivk run: out of host memory\n");
        goto done;
    }
    phivk_tokenize(vocab, prompt, prompt_len, &tp, ids, n_ids);
    for (int64_t i = 0; i < n_ids; i++) phivk_sampler_accept(smp, ids[i]);

    double t0 = app_now();
    if (phivk_decode(am.sess, ids, (int32_t)n_ids, logits, false) != PHIVK_OK) {
        fprintf(stderr, "phivk run: %s\n", phivk_last_error());
        goto done;
    }
    double t1 = app_now();
    int32_t n_gen = 0;
    char text[256];
    while (o.n_predict < 0 || n_gen < o.n_predict) {
        int32_t tok = phivk_sampler_sample(smp, logits, n_vocab);
        if (tok < 0) {
            fprintf(stderr, "\nphivk run: %s\n", phivk_last_error());
            goto done;
        }
        if (phivk_token_is_stop(vocab, tok)) break;
        n_gen++;
        app_write_generated(stdout, text, phivk_detok_push(dt, tok, text, sizeof text));
        if (phivk_session_pos(am.sess) >= ctx) {
            fprintf(stderr, "\nphivk run: the context (%d tokens) is full\n", ctx);
            break;
        }
        if (phivk_decode(am.sess, &tok, 1, logits, false) != PHIVK_OK) {
            fprintf(stderr, "\nphivk run: %s\n", phivk_last_error());
            goto done;
        }
    }
    app_write_generated(stdout, text, phivk_detok_flush(dt, text, sizeof text));
    printf("\n");
    double t2 = app_now();
    fprintf(stderr, "prompt: %lld tokens in %.2f s (%.2f tokens/s); generation: %d tokens in %.2f s "
                    "(%.2f tokens/s)\n",
            (long long)n_ids, t1 - t0, n_ids / (t1 - t0), n_gen, t2 - t1,
            n_gen ? n_gen / (t2 - t1) : 0.0);
    status = 0;
done:
    phivk_detok_free(dt);
    phivk_sampler_free(smp);
    free(logits);
    free(ids);
    app_model_close(&am);
    free(file_text);
    return status;
}
