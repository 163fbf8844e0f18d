/* The C side of the Phi-3-small check against an independent float64 reference
 * (tests/model_ref/phi3small_ref.py, written from docs/spec/phi3-small.md alone).
 *
 * usage: phi3small_fixture OUT_DIR RANK_FILE
 *
 * Writes into OUT_DIR a synthetic Phi-3-small Hugging Face folder (hf/: config.json,
 * model.safetensors in F32 with the checkpoint's own layouts, the rank file), the
 * token ids (ids.txt), and the logits of every position (float32, positions x
 * vocabulary) that phivk computes after `phivk_convert` of that folder: on the GPU
 * (gpu.f32, validation layer on: a message fails the run) and with the CPU reference (ref.f32, fp32 cache).
 * The script reads only the folder and compares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_writer.h"
#include "model_impl.h"
#include "phivk.h"
#include "ref.h"
#include "synth.h"

#define N_TOKENS 48

static int fail(const char *what, const char *why) {
    fprintf(stderr, "phi3small_fixture: %s: %s\n", what, why);
    return 1;
}

static int write_floats(const char *dir, const char *name, const float *v, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof *v, n, f) != n || fclose(f)) return fail(path, "cannot write");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) return fail("usage", "phi3small_fixture OUT_DIR RANK_FILE");
    const char *out = argv[1];
    /* The real model's layout at a small width: 4 query heads over 2 KV heads, the
     * real vocabulary (the tiktoken file fixes it), blocks of 4 tokens, 2 local
     * blocks, vertical stride 8 over 4 heads (head step 2: offsets 0, 2, 4, 6), every
     * 2nd layer dense, a GEGELU limit the MLP's inputs cross. */
    synth_params p = synth_default_params();
    p.arch = "phi3small";
    p.n_vocab = 100352;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 96;
    p.n_layer = 3;
    p.n_ctx = 128;
    p.tied_output = true;
    p.bs_block = 4;
    p.bs_local = 2;
    p.bs_stride = 8;
    p.bs_dense_every = 2;
    p.gegelu_limit = 1.5f;
    p.seed = 5;
    void *img = NULL;
    size_t img_size;
    gguf_file *src = NULL, *g = NULL;
    char hf[4096], gg[4096], path[4096];
    snprintf(hf, sizeof hf, "%s/hf", out);
    snprintf(gg, sizeof gg, "%s/model.gguf", out);
    mkdir(out, 0755);
    if (synth_build(&p, &img, &img_size) || gguf_open_memory(img, img_size, &src))
        return fail("synthetic model", pvk_errmsg());
    if (!hf_write_folder(src, hf, &(hf_opts){.tiktoken = argv[2]})) return fail(hf, "cannot write the folder");
    phivk_convert_params cp = phivk_convert_default_params();
    cp.type = "f32";
    if (phivk_convert(hf, gg, &cp)) return fail("convert", phivk_last_error());

    int32_t ids[N_TOKENS];
    uint32_t seed = 12345;
    snprintf(path, sizeof path, "%s/ids.txt", out);
    FILE *f = fopen(path, "w");
    if (!f) return fail(path, "cannot write");
    for (int i = 0; i < N_TOKENS; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = (int32_t)((seed >> 8) % 100256u); /* ordinary tokens */
        fprintf(f, "%d\n", (int)ids[i]);
    }
    if (fclose(f)) return fail(path, "cannot write");

    const size_t nv = (size_t)p.n_vocab, n = (size_t)N_TOKENS * nv;
    float *logits = malloc(n * sizeof *logits);
    if (!logits) return fail("logits", "out of host memory");
    phivk_runtime_params rtp = phivk_runtime_default_params();
    rtp.validate = true;
    phivk_runtime *rt = phivk_runtime_create(&rtp);
    if (!rt) return fail("runtime", phivk_last_error());
    phivk_model *m = phivk_model_load(rt, gg, NULL);
    if (!m) return fail("load", phivk_last_error());
    phivk_session_params sp = phivk_session_default_params();
    sp.ctx = 64;
    phivk_session *s = phivk_session_create(m, &sp);
    if (!s || phivk_decode(s, ids, N_TOKENS, logits, true)) return fail("GPU forward", phivk_last_error());
    phivk_session_free(s);
    phivk_model_free(m);
    /* a validation message fails the run, as in the GPU tests (tests/gpu.c) */
    if (pvk_dev_validation_count(rt->dev)) return fail("validation layer", pvk_dev_validation_last(rt->dev));
    phivk_runtime_free(rt);
    if (write_floats(out, "gpu.f32", logits, n)) return 1;

    ref_model *rm = NULL;
    ref_state *rs = NULL;
    ref_state_params rp = ref_state_default_params();
    rp.n_ctx = 64;
    if (gguf_open(gg, &g) || ref_model_create(g, "converted", &rm) || ref_state_create(rm, &rp, &rs) ||
        ref_forward(rs, ids, N_TOKENS, logits, true))
        return fail("CPU reference", pvk_errmsg());
    if (write_floats(out, "ref.f32", logits, n)) return 1;
    ref_state_destroy(rs);
    ref_model_destroy(rm);
    gguf_close(g);
    gguf_close(src);
    free(img);
    free(logits);
    return 0;
}
