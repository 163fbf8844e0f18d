/* Writes the hostile model files of test_hostile.sh into DIR:
 *   escapes.gguf     terminal escape sequences in general.architecture,
 *                    general.name and a tensor name (not a runnable model)
 *   nan-logits.gguf  the tiny phi3 fixture with output_norm.weight all NaN, so
 *                    every logit is NaN
 *   esc-vocab.gguf   a SentencePiece vocabulary whose token 3 is an ESC
 *                    character (text "\x1b" tokenizes to it)
 * usage: make_hostile DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"
#include "synth.h"

static int fail(const char *what) {
    fprintf(stderr, "make_hostile: %s: %s\n", what, pvk_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_hostile DIR\n");
        return 2;
    }
    char path[4096];
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "phi3\x1b]0;owned\x07\x1b[2J");
    gguf_writer_set_str(w, "general.name", "\x1b]0;owned\x07\x1b[2Jname\xc2\x9b" "31m");
    gguf_writer_add_tensor(w, "blk.0.\x1b[31mred", PVK_F32, 1, (int64_t[]){4}, NULL);
    snprintf(path, sizeof path, "%s/escapes.gguf", argv[1]);
    phivk_status st = gguf_writer_save(w, path);
    gguf_writer_destroy(w);
    if (st) return fail(path);

    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\x1b", "\xe2\x96\x81"};
    static const float scores[] = {0, 0, 0, -1, -2};
    static const int32_t types[] = {2, 3, 3, 1, 1}; /* UNKNOWN, CONTROL, CONTROL, NORMAL, NORMAL */
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, 5);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 5);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    snprintf(path, sizeof path, "%s/esc-vocab.gguf", argv[1]);
    st = gguf_writer_save(w, path);
    gguf_writer_destroy(w);
    if (st) return fail(path);

    synth_params p = synth_default_params(); /* as make_fixture's phi3 */
    p.n_vocab = 400;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_ff = 128;
    p.n_ctx = 256;
    p.wtype = PVK_F16;
    void *img;
    size_t n;
    gguf_file *f;
    if (synth_build(&p, &img, &n) || gguf_open_memory(img, n, &f)) return fail("the NaN fixture");
    const gguf_tensor *t = gguf_find_tensor(f, "output_norm.weight");
    float *norm = (float *)((char *)img + ((const char *)t->data - (const char *)img));
    for (int64_t i = 0; i < t->ne[0]; i++) norm[i] = NAN;
    gguf_close(f);
    snprintf(path, sizeof path, "%s/nan-logits.gguf", argv[1]);
    FILE *out = fopen(path, "wb");
    int bad = !out || fwrite(img, 1, n, out) != n;
    if (out) bad |= fclose(out) != 0;
    free(img);
    if (bad) {
        fprintf(stderr, "make_hostile: cannot write %s\n", path);
        return 1;
    }
    return 0;
}
