/* Loading writes each weight to the device in pieces (PHIVK_UPLOAD_CHUNK bytes
 * here, not a divisor of any tensor size), one part after another for the
 * projections made of several GGUF tensors (llama's Q/K/V and gate/up, phi2's
 * separate Q/K/V). Every device tensor must then hold exactly the bytes of its
 * parts in order: a wrong offset anywhere shows as a mismatch. The arithmetic is
 * 64-bit, so the same code places parts past 2 GiB (the old int offsets wrapped
 * there and wrote outside the buffer). */
#define HARNESS_MAIN
#include "gpu.h"
#include "harness.h"

#include "model_impl.h"
#include "synth.h"

#define CHUNK 100

static phivk_runtime *runtime(void) { return test_gpu_runtime(); }

static uint64_t pieces;

static void count_pieces(void *user, const char *stage, uint64_t done, uint64_t total) {
    (void)user, (void)done, (void)total;
    pieces += !strcmp(stage, "loading");
}

/* Whether the device tensor holds parts[0..n) back to back; counts compared bytes. */
static bool holds(const pvk_tensor *t, const gguf_tensor *const *parts, int n, uint64_t *compared) {
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += parts[i]->bytes;
    uint8_t *got = malloc(bytes);
    bool same = got && pvk_buf_read(runtime()->dev, &t->buf, 0, got, bytes) == PHIVK_OK;
    for (uint64_t i = 0, off = 0; same && i < (uint64_t)n; off += parts[i]->bytes, i++)
        same = !memcmp(got + off, parts[i]->data, parts[i]->bytes);
    free(got);
    *compared += bytes;
    return same;
}

/* joins: projections per layer made of several GGUF tensors. */
static void check_model(const char *arch, bool separate_qkv, int joins) {
    synth_params p = synth_default_params();
    p.arch = arch;
    p.n_vocab = 400;
    p.separate_qkv = separate_qkv;
    p.wtype = PVK_Q8_0;
    void *img;
    size_t size;
    REQUIRE(synth_build(&p, &img, &size) == PHIVK_OK, "%s: %s", arch, pvk_errmsg());
    setenv("PHIVK_UPLOAD_CHUNK", "100", 1);
    phivk_model_params mp = phivk_model_default_params();
    mp.progress = count_pieces;
    pieces = 0;
    phivk_model *m = phivk_model_load_memory(runtime(), img, size, arch, &mp);
    unsetenv("PHIVK_UPLOAD_CHUNK");
    REQUIRE(m, "%s: %s", arch, phivk_last_error());

    const arch_weights *w = m->w;
    uint64_t compared = 0, want_pieces = 0;
    int mismatched = 0, tensors = 0, joined = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        if (t->n_dims == 2) want_pieces += (t->bytes + CHUNK - 1) / CHUNK;
    }
    mismatched += !holds(&m->embd, &w->token_embd, 1, &compared);
    tensors++;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const arch_layer *a = &w->layers[l];
        const gpu_layer *g = &m->layers[l];
        const gguf_tensor *qkv[3] = {a->attn_q, a->attn_k, a->attn_v}, *up[2] = {a->ffn_gate, a->ffn_up};
        if (a->attn_qkv) {
            mismatched += !holds(&g->qkv.part[0], &a->attn_qkv, 1, &compared);
        } else {
            mismatched += !holds(&g->qkv.part[0], qkv, 3, &compared);
            joined++;
        }
        if (a->ffn_gate) {
            mismatched += !holds(&g->up.part[0], up, 2, &compared);
            joined++;
        } else {
            mismatched += !holds(&g->up.part[0], &a->ffn_up, 1, &compared);
        }
        mismatched += !holds(&g->out.part[0], &a->attn_output, 1, &compared);
        mismatched += !holds(&g->down.part[0], &a->ffn_down, 1, &compared);
        tensors += 4;
    }
    printf("    %s%s: %d device tensors (%d joined from parts), %llu bytes compared, %llu progress "
           "reports for %llu matrix pieces of %d bytes\n", arch, separate_qkv ? " (separate Q/K/V)" : "",
           tensors, joined, (unsigned long long)compared, (unsigned long long)pieces,
           (unsigned long long)want_pieces, CHUNK);
    CHECK(mismatched == 0, "%s: %d of %d device tensors differ from their GGUF parts", arch, mismatched, tensors);
    CHECK(joined == joins * m->hp.n_layer, "%s: %d joined projections, want %d per layer", arch, joined, joins);
    CHECK(pieces >= want_pieces, "%s: %llu progress reports, want one per piece (%llu): the chunk was not used",
          arch, (unsigned long long)pieces, (unsigned long long)want_pieces);
    phivk_model_free(m);
    free(img);
}

TEST(llama_qkv_and_gate_up_parts_land_back_to_back_in_100_byte_pieces) { check_model("llama", false, 2); }
TEST(phi2_separate_qkv_parts_land_back_to_back_in_100_byte_pieces) { check_model("phi2", true, 1); }

TEST(a_bad_upload_chunk_is_refused_with_the_variable_named) {
    synth_params p = synth_default_params();
    void *img;
    size_t size;
    REQUIRE(synth_build(&p, &img, &size) == PHIVK_OK, "%s", pvk_errmsg());
    setenv("PHIVK_UPLOAD_CHUNK", "0", 1);
    phivk_model *m = phivk_model_load_memory(runtime(), img, size, "tiny", NULL);
    unsetenv("PHIVK_UPLOAD_CHUNK");
    CHECK(!m && strstr(phivk_last_error(), "PHIVK_UPLOAD_CHUNK"), "refused: %s", m ? "(loaded)" : phivk_last_error());
    phivk_model_free(m);
    free(img);
}
