/* Writes synthetic checkpoints for the convert CLI test:
 *   make_checkpoint DIR   DIR/phi3 (a Hugging Face folder), DIR/stories.bin and
 *                         DIR/tokenizer.bin (a llama2.c v0 checkpoint, shared classifier),
 *                         DIR/tinystories (a GPT-Neo folder, head size 16, window 8) */
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"
#include "hf_writer.h"
#include "synth.h"

/* The synthetic model of arch, or NULL. */
static gguf_file *build(const char *arch, void **data) {
    synth_params p = synth_default_params();
    size_t size;
    gguf_file *f = NULL;
    p.arch = arch;
    p.n_vocab = 400;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_ff = 128;
    p.n_ctx = 256;
    p.tied_output = arch[0] == 'l' || arch[0] == 'g';
    if (arch[0] == 'g') p.sliding_window = 8;
    if (synth_build(&p, data, &size) || gguf_open_memory(*data, size, &f)) return NULL;
    return f;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_checkpoint DIR\n");
        return 2;
    }
    char a[4096], b[4096];
    void *d1 = NULL, *d2 = NULL;
    void *d3 = NULL;
    gguf_file *phi3 = build("phi3", &d1), *llama = build("llama", &d2), *neo = build("gptneo", &d3);
    snprintf(a, sizeof a, "%s/phi3", argv[1]);
    bool ok = phi3 && llama && hf_write_folder(phi3, a, NULL);
    snprintf(a, sizeof a, "%s/stories.bin", argv[1]);
    snprintf(b, sizeof b, "%s/tokenizer.bin", argv[1]);
    ok = ok && llama2c_write(llama, a, 0, true, b);
    snprintf(a, sizeof a, "%s/tinystories", argv[1]);
    ok = ok && neo && hf_write_folder(neo, a, NULL);
    gguf_close(neo);
    free(d3);
    gguf_close(phi3);
    gguf_close(llama);
    free(d1);
    free(d2);
    if (!ok) fprintf(stderr, "make_checkpoint: cannot write the checkpoints in %s\n", argv[1]);
    return ok ? 0 : 1;
}
