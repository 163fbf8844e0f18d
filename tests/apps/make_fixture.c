/* Writes a synthetic model for the CLI tests and measurements:
 *   make_fixture PATH [phi3|llama|phi2]   a tiny model of that architecture
 *   make_fixture PATH SHAPE [TYPE]        a named shape (synth_shape_names), F16 or TYPE */
#include <stdio.h>
#include <string.h>

#include "synth.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: make_fixture PATH [phi3|llama|phi2 | SHAPE [f16|f32|bf16]]\n");
        return 2;
    }
    synth_params p = synth_default_params();
    const char *what = argc > 2 ? argv[2] : "phi3";
    if (!strcmp(what, "phi3") || !strcmp(what, "llama") || !strcmp(what, "phi2")) {
        p.arch = what;
        p.n_vocab = 400;
        p.n_embd = 64;
        p.n_layer = 2;
        p.n_head = 4;
        p.n_head_kv = 0;
        p.n_ff = 128;
        p.n_ctx = 256;
        p.wtype = PVK_F16;
    } else if (synth_shape_by_name(what, &p) != PHIVK_OK) {
        fprintf(stderr, "make_fixture: %s\n", pvk_errmsg());
        return 2;
    }
    if (argc > 3) p.wtype = !strcmp(argv[3], "f32") ? PVK_F32 : !strcmp(argv[3], "bf16") ? PVK_BF16 : PVK_F16;
    if (synth_save(&p, argv[1]) != PHIVK_OK) {
        fprintf(stderr, "make_fixture: %s\n", pvk_errmsg());
        return 1;
    }
    return 0;
}
