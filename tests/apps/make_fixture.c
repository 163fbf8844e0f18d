/* Writes a small synthetic model for the CLI tests: make_fixture PATH [ARCH]. */
#include <stdio.h>

#include "synth.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: make_fixture PATH [phi3|llama|phi2]\n");
        return 2;
    }
    synth_params p = synth_default_params();
    if (argc > 2) p.arch = argv[2];
    p.n_vocab = 400;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_ff = 128;
    p.n_ctx = 256;
    p.wtype = PVK_F16;
    if (synth_save(&p, argv[1]) != PVK_OK) {
        fprintf(stderr, "make_fixture: %s\n", pvk_errmsg());
        return 1;
    }
    return 0;
}
