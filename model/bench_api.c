/* The public API `phivk bench` measures with: device copy bandwidth, what a model
 * weighs and reads per token, and synthetic models of the real models' shapes
 * built in memory (synth.h with repeat_weights). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "pvk_bench.h"
#include "synth.h"

/* Copies (and read passes) timed after the untimed first one; the best counts. */
#define COPY_REPS 10

uint64_t phivk_runtime_memory_budget(const phivk_runtime *rt) { return pvk_dev_budget(rt->dev); }

phivk_status phivk_runtime_copy_bandwidth(phivk_runtime *rt, uint64_t bytes, double *gb_per_s) {
    *gb_per_s = 0;
    if (!rt) return pvk_fail(PHIVK_ERR_INVALID, "copy bandwidth: no runtime");
    return pvk_bench_copy(rt->dev, bytes, COPY_REPS, gb_per_s);
}

phivk_status phivk_runtime_read_bandwidth(phivk_runtime *rt, uint64_t bytes, double *gb_per_s) {
    *gb_per_s = 0;
    if (!rt) return pvk_fail(PHIVK_ERR_INVALID, "read bandwidth: no runtime");
    return pvk_bench_read(rt->dev, bytes, COPY_REPS, gb_per_s);
}

uint64_t phivk_model_weight_bytes(const phivk_model *m) { return m->weight_bytes; }

uint64_t phivk_model_token_bytes(const phivk_model *m) {
    /* A decode token gathers one embedding row; the table is read whole only as the
     * tied output head, and weight_bytes counts it once either way. */
    return m->hp.tied_output ? m->weight_bytes : m->weight_bytes - m->w->token_embd->bytes;
}

int64_t phivk_model_param_count(const phivk_model *m) {
    int64_t n = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        n += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return n;
}

const char *phivk_model_weight_type(const phivk_model *m) {
    uint64_t bytes[PVK_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        if (t->n_dims >= 2 && t->type < PVK_TYPE_COUNT) bytes[t->type] += t->bytes;
    }
    int best = 0;
    for (int t = 1; t < PVK_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    return pvk_type_get((uint32_t)best)->name;
}

char *phivk_model_kernels_text(const phivk_model *m) {
    pvk_type types[PVK_TYPE_COUNT];
    int n = model_matrix_types(m, types);
    const pvk_ops *o = m->rt->ops;
    bool tiled = pvk_ops_get_tuning(o)->mv_max_m < UINT32_MAX;
    uint32_t lane_rows = pvk_ops_get_tuning(o)->mv_lane_rows;
    size_t cap = 112 * (size_t)n + 64, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        pvk_mm_choice c = pvk_ops_mm_choice(o, types[i]);
        const char *tiles = !tiled ? ""
                            : c.coopmat && pvk_ops_coopmat(o) != PVK_CM_COUNT ? " coopmat tiles"
                            : c.f16 ? " fp16 tiles" : "";
        const char *rep = pvk_ops_repacks(o, types[i]) ? " repacked" : "";
        if (c.lanes && lane_rows)
            len += (size_t)snprintf(out + len, cap - len, "%s%s f32 x %u rows per lane%s%s", i ? ", " : "",
                                    pvk_type_get(types[i])->name, lane_rows, tiles, rep);
        else
            len += (size_t)snprintf(out + len, cap - len, "%s%s %s x %u rows%s%s (%u lanes, %u in flight)",
                                    i ? ", " : "", pvk_type_get(types[i])->name, c.int8 ? "int8" : "f32", c.rows,
                                    tiles, rep, c.wg ? c.wg : pvk_ops_get_tuning(o)->mv_wg, c.lf ? c.lf : 1);
    }
    if (lane_rows && n)
        snprintf(out + len, cap - len, "; several columns: %u rows per lane", lane_rows);
    return out;
}

/* ---------------------------------------------------------------- synthetic */

typedef struct synth_type {
    const char *name;
    pvk_type wtype;
    synth_mix mix;
} synth_type;

static const synth_type types[] = {
    {"q4_k_m", PVK_Q4_K, SYNTH_MIX_Q4_K_M},
    {"q4_0", PVK_Q4_0, SYNTH_MIX_NONE},
    {"q4_1", PVK_Q4_1, SYNTH_MIX_NONE},
    {"q5_0", PVK_Q5_0, SYNTH_MIX_NONE},
    {"q5_1", PVK_Q5_1, SYNTH_MIX_NONE},
    {"q8_0", PVK_Q8_0, SYNTH_MIX_NONE},
    {"q4_k", PVK_Q4_K, SYNTH_MIX_NONE},
    {"q5_k", PVK_Q5_K, SYNTH_MIX_NONE},
    {"q6_k", PVK_Q6_K, SYNTH_MIX_NONE},
    {"f16", PVK_F16, SYNTH_MIX_NONE},
    {"bf16", PVK_BF16, SYNTH_MIX_NONE},
    {"f32", PVK_F32, SYNTH_MIX_NONE},
};
#define N_TYPES (sizeof types / sizeof types[0])

const char *const *phivk_synth_shapes(void) { return synth_shape_names(); }

const char *const *phivk_synth_types(void) {
    static const char *names[N_TYPES + 1];
    for (size_t i = 0; i < N_TYPES; i++) names[i] = types[i].name;
    return names;
}

/* The synth parameters of shape with weights of type, or a message naming the
 * known ones. */
static phivk_status synth_lookup(const char *shape, const char *type, synth_params *p) {
    if (!shape || !type) return pvk_fail(PHIVK_ERR_INVALID, "synthetic model: no shape or type");
    phivk_status st = synth_shape_by_name(shape, p);
    if (st) return st;
    for (size_t i = 0; i < N_TYPES; i++) {
        if (strcmp(type, types[i].name)) continue;
        p->wtype = types[i].wtype;
        p->mix = types[i].mix;
        p->name = shape;
        p->repeat_weights = true;
        return PHIVK_OK;
    }
    char list[160] = "";
    for (size_t i = 0; i < N_TYPES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", types[i].name);
    return pvk_fail(PHIVK_ERR_INVALID, "unknown weight type '%s' (known: %s)", type, list);
}

phivk_status phivk_synth_describe(const char *shape, const char *type, phivk_synth_info *out) {
    memset(out, 0, sizeof *out);
    synth_params p;
    phivk_status st = synth_lookup(shape, type, &p);
    if (!st) st = synth_tensor_bytes(&p, &out->bytes);
    if (st) return st;
    const int64_t kv_heads = p.n_head_kv ? p.n_head_kv : p.n_head;
    out->arch = p.arch;
    out->params = synth_param_count(&p);
    out->kv_bytes_per_token = 2ull * p.n_layer * (uint64_t)(kv_heads * (p.n_embd / p.n_head)) * sizeof(uint16_t);
    out->n_vocab = p.n_vocab;
    return PHIVK_OK;
}

phivk_status phivk_synth_build(const char *shape, const char *type, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    synth_params p;
    phivk_status st = synth_lookup(shape, type, &p);
    if (!st) st = synth_build(&p, data, size);
    return st;
}
