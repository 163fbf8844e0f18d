/* Every kernel variant the op layer can ask for is compiled in. The op layer picks
 * variants by id from the tables shaders/kernels.py generates (pvk_kernels.h); a
 * combination the build does not make reads PVK_KERNEL_NONE there. These cases walk
 * every combination the op layer records, by its rules (stated with each case), and
 * require an embedded module for each, and NONE exactly where it refuses. No device
 * is needed. */
#define HARNESS_MAIN
#include "harness.h"

#include "phivk.h"
#include "pvk_ops.h"
#include "pvk_spirv.h"

#define SPIRV_MAGIC 0x07230203u

/* id names an embedded SPIR-V module. */
static bool built(pvk_kernel_id id) {
    return id > PVK_KERNEL_NONE && id < PVK_KERNEL_COUNT && pvk_spirv_modules[id].code &&
           pvk_spirv_modules[id].bytes >= 20 && pvk_spirv_modules[id].code[0] == SPIRV_MAGIC;
}

TEST(every_kernel_id_names_an_embedded_spirv_module) {
    int n = 0;
    for (int id = PVK_KERNEL_NONE + 1; id < PVK_KERNEL_COUNT; id++) {
        CHECK(built((pvk_kernel_id)id) && pvk_spirv_modules[id].name, "id %d has no SPIR-V module", id);
        n++;
    }
    CHECK(n > 0 && !pvk_spirv_modules[PVK_KERNEL_NONE].code, "%d modules; NONE has none", n);
}

/* pvk_tensor_create accepts the types marked supported; for each, matmul asks for
 * matvec over both fetch paths and reductions with f32 activations, with int8
 * activations (subgroup reduction only: need_q8) for block types, given as int8 or
 * as the input of GELU or SwiGLU or a norm (pvk_ops_can_fuse), and the tiled
 * kernel in f32 and fp16 and on cooperative matrices in each form; get_rows and add_rows for both fetch paths. Other types have none. */
TEST(weight_types_the_runtime_accepts_have_every_matrix_and_lookup_variant) {
    int types = 0, repacked = 0;
    for (int t = 0; t < PVK_TYPE_COUNT; t++) {
        const pvk_type_info *ti = pvk_type_get((uint32_t)t);
        bool ok = ti->name && ti->supported, blocked = ti->block_elems > 1;
        const char *name = ti->name ? ti->name : "?";
        types += ok;
        CHECK(pvk_ops_reads_weights((pvk_type)t) == ok, "type %d (%s): reads_weights %d", t, name, !ok);
        for (int f = 0; f < PVK_FETCH_COUNT; f++) {
            const pvk_kernel_id *mv = pvk_kernels_matvec[t][PVK_LAYOUT_GGUF][f][PVK_REDUCE_SUBGROUP];
            const pvk_kernel_id *sh = pvk_kernels_matvec[t][PVK_LAYOUT_GGUF][f][PVK_REDUCE_SHARED];
            CHECK(built(mv[PVK_ACTS_F32]) == ok && built(sh[PVK_ACTS_F32]) == ok, "%s fetch %d: matvec", name, f);
            CHECK(built(mv[PVK_ACTS_Q8]) == (ok && blocked),
                  "%s fetch %d: an int8 matvec is built for block types and only them", name, f);
            CHECK(sh[PVK_ACTS_Q8] == PVK_KERNEL_NONE, "%s fetch %d: no int8 matvec without subgroups", name, f);
            /* The int8 matvec that applies the down projection's activation itself. */
            CHECK(built(pvk_kernels_matvec_act[t][PVK_LAYOUT_GGUF][f][PVK_ACT_SWIGLU]) == (ok && blocked) &&
                  built(pvk_kernels_matvec_act[t][PVK_LAYOUT_GGUF][f][PVK_ACT_GELU]) == (ok && blocked) &&
                  built(pvk_kernels_matvec_act[t][PVK_LAYOUT_GGUF][f][PVK_ACT_COPY]) == (ok && blocked),
                  "%s fetch %d: a matvec with the activation in its prologue for block types", name, f);
            CHECK(built(pvk_kernels_matvec_norm[t][PVK_LAYOUT_GGUF][f][PVK_NORM_RMS]) == (ok && blocked) &&
                  built(pvk_kernels_matvec_norm[t][PVK_LAYOUT_GGUF][f][PVK_NORM_LAYER]) == (ok && blocked),
                  "%s fetch %d: a matvec with the norm in its prologue for block types", name, f);
            for (int p = 0; p < PVK_PREC_COUNT; p++)
                CHECK(built(pvk_kernels_matmul[t][PVK_LAYOUT_GGUF][f][p]) == ok, "%s fetch %d prec %d: matmul", name, f, p);
            /* The repacked layout (dequant.glsl W_REPACK): Q4_0 and Q8_0, every matrix form. */
            bool rp = t == PVK_Q4_0 || t == PVK_Q8_0;
            const pvk_kernel_id *mvr = pvk_kernels_matvec[t][PVK_LAYOUT_REPACK][f][PVK_REDUCE_SUBGROUP];
            CHECK(built(mvr[PVK_ACTS_F32]) == rp && built(mvr[PVK_ACTS_Q8]) == rp &&
                      built(pvk_kernels_matvec[t][PVK_LAYOUT_REPACK][f][PVK_REDUCE_SHARED][PVK_ACTS_F32]) == rp &&
                      built(pvk_kernels_matvec_act[t][PVK_LAYOUT_REPACK][f][PVK_ACT_SWIGLU]) == rp &&
                      built(pvk_kernels_matvec_norm[t][PVK_LAYOUT_REPACK][f][PVK_NORM_LAYER]) == rp &&
                      built(pvk_kernels_matmul[t][PVK_LAYOUT_REPACK][f][PVK_PREC_F16]) == rp,
                  "%s fetch %d: repacked matrix kernels for Q4_0 and Q8_0 only", name, f);
            repacked += rp;
            /* The tiled kernel on cooperative matrices, in every form pvk_cm_choose may pick. */
            for (int cm = 0; cm < PVK_CM_COUNT; cm++)
                CHECK(built(pvk_kernels_matmul_cm[t][f][cm]) == ok, "%s fetch %d form %d: matmul_cm", name, f, cm);
            CHECK(built(pvk_kernels_get_rows[t][f]) == ok, "%s fetch %d: get_rows", name, f);
            CHECK(built(pvk_kernels_add_rows[t][f]) == ok, "%s fetch %d: add_rows", name, f);
        }
    }
    CHECK(types >= 11, "%d weight types (f32, f16, bf16 and 8 block types at least)", types);
    CHECK(repacked == 2 * PVK_FETCH_COUNT, "%d repacked type and fetch pairs", repacked);
}

/* The session maps phivk_kv_type to PVK_<same name>; kv_store asks for every K/V pair
 * with and without RoPE, attention for every pair, fetch path and reduction. */
TEST(kv_cache_types_of_the_public_api_have_every_store_and_attention_variant) {
    CHECK(PVK_KV_TYPE_COUNT == PHIVK_KV_Q4_0 + 1 && pvk_kv_types[PHIVK_KV_F16] == PVK_F16 &&
              pvk_kv_types[PHIVK_KV_Q8_0] == PVK_Q8_0 && pvk_kv_types[PHIVK_KV_Q4_0] == PVK_Q4_0,
          "pvk_kv_types follows phivk_kv_type");
    int pairs = 0;
    for (int i = 0; i < PVK_KV_TYPE_COUNT; i++)
        for (int j = 0; j < PVK_KV_TYPE_COUNT; j++) {
            pvk_type k = pvk_kv_types[i], v = pvk_kv_types[j];
            for (int s = 0; s < PVK_STORE_COUNT; s++)
                CHECK(built(pvk_kernels_kv_store[s][k][v]), "kv_store %d K %d V %d", s, k, v);
            for (int f = 0; f < PVK_FETCH_COUNT; f++)
                for (int r = 0; r < PVK_REDUCE_COUNT; r++)
                    CHECK(built(pvk_kernels_attn[k][v][f][r]), "attention K %d V %d fetch %d reduce %d", k, v, f, r);
            pairs++;
        }
    CHECK(pairs == 9, "%d K/V pairs", pairs);
    CHECK(pvk_kernels_kv_store[PVK_STORE_PLAIN][PVK_F32][PVK_F16] == PVK_KERNEL_NONE,
          "an f32 cache has no kernels (check_kv_format refuses it)");
}

/* Norms: both reductions in f32, int8 output with subgroups only (need_q8). Softmax:
 * both reductions. Activations: silu, gelu, swiglu, gegelu in f32; copy, gelu, swiglu, gegelu with
 * int8 output; pvk_op_act_q8 refuses silu, and copy has no f32 op. */
TEST(norms_softmax_and_activations_have_the_forms_the_op_layer_records) {
    for (int n = 0; n < PVK_NORM_COUNT; n++) {
        CHECK(built(pvk_kernels_norm[n][PVK_REDUCE_SUBGROUP][PVK_ACTS_F32]) &&
                  built(pvk_kernels_norm[n][PVK_REDUCE_SHARED][PVK_ACTS_F32]) &&
                  built(pvk_kernels_norm[n][PVK_REDUCE_SUBGROUP][PVK_ACTS_Q8]),
              "norm %d", n);
        CHECK(pvk_kernels_norm[n][PVK_REDUCE_SHARED][PVK_ACTS_Q8] == PVK_KERNEL_NONE,
              "norm %d: int8 needs subgroups", n);
    }
    for (int r = 0; r < PVK_REDUCE_COUNT; r++) CHECK(built(pvk_kernels_softmax[r]), "softmax reduce %d", r);
    static const bool f32[PVK_ACT_COUNT] = {[PVK_ACT_SILU] = true, [PVK_ACT_GELU] = true, [PVK_ACT_SWIGLU] = true,
                                            [PVK_ACT_GEGELU] = true};
    static const bool q8[PVK_ACT_COUNT] = {[PVK_ACT_GELU] = true, [PVK_ACT_SWIGLU] = true, [PVK_ACT_COPY] = true,
                                           [PVK_ACT_GEGELU] = true};
    for (int a = 0; a < PVK_ACT_COUNT; a++) {
        CHECK(built(pvk_kernels_act[a][PVK_ACTS_F32]) == f32[a], "activation %d in f32", a);
        CHECK(built(pvk_kernels_act[a][PVK_ACTS_Q8]) == q8[a], "activation %d with int8 output", a);
    }
    CHECK(built(PVK_KERNEL_ADD) && built(PVK_KERNEL_MUL) && built(PVK_KERNEL_ATTN_REDUCE), "add, mul, attn_reduce");
}
