/* The public runtime and model handles: opening a device, loading a GGUF's
 * weights onto it in their stored types. */
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "quant.h"
#include "session_kv.h"

/* ------------------------------------------------------------------ runtime */

phivk_runtime_params phivk_runtime_default_params(void) {
    return (phivk_runtime_params){0};
}

phivk_runtime *phivk_runtime_create(const phivk_runtime_params *p) {
    phivk_runtime_params defaults = phivk_runtime_default_params();
    if (!p) p = &defaults;
    phivk_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    pvk_dev_params dp = pvk_dev_default_params();
    dp.select = p->device;
    dp.validate = dp.validate || p->validate;
    if (pvk_dev_create(&dp, &rt->dev) != PHIVK_OK) goto fail;
    if (pvk_ops_create(rt->dev, &rt->ops) != PHIVK_OK) goto fail;
    return rt;
fail:
    phivk_runtime_free(rt);
    return NULL;
}

void phivk_runtime_free(phivk_runtime *rt) {
    if (!rt) return;
    pvk_ops_destroy(rt->ops);
    pvk_dev_destroy(rt->dev);
    free(rt);
}

const char *phivk_runtime_device_name(const phivk_runtime *rt) {
    return pvk_dev_caps(rt->dev)->name;
}

const char *phivk_runtime_device_kind(const phivk_runtime *rt) {
    return pvk_dev_type_name(pvk_dev_caps(rt->dev)->type);
}

/* -------------------------------------------------------------------- model */

phivk_model_params phivk_model_default_params(void) {
    return (phivk_model_params){0};
}

typedef struct loader {
    phivk_model *m;
    const phivk_model_params *p;
    uint64_t done, total;     /* bytes uploaded / to upload, for progress */
    uint64_t chunk;           /* bytes of a weight written at a time */
    bool tuned[PVK_TYPE_COUNT]; /* matrix types measured before their first upload */
} loader;

static void tune_progress(void *user, int done, int total) {
    const loader *l = user;
    if (l->p->progress) l->p->progress(l->p->progress_user, "tuning kernels", (uint64_t)done, (uint64_t)total);
}

/* Whether a projection's matrix of type t is uploaded repacked (pvk_ops_repacks):
 * the tuner's choice, so the type is measured (or its kept choice read) before its
 * first upload. Measuring is optional, as in warmup. */
static bool repack_type(loader *l, pvk_type t) {
    pvk_ops *o = l->m->rt->ops;
    if ((unsigned)t < PVK_TYPE_COUNT && !l->tuned[t] && pvk_ops_reads_weights(t)) {
        l->tuned[t] = true;
        pvk_ops_tune(o, &t, 1, (uint32_t)l->m->hp.n_embd, tune_progress, l);
    }
    return pvk_ops_repacks(o, t);
}

/* Matrices go to the device in pieces, so progress moves within a large one.
 * PHIVK_UPLOAD_CHUNK=N (bytes) makes the pieces smaller: tests use it to run the
 * offset arithmetic across many pieces and the parts of joined projections. */
static phivk_status upload_chunk(uint64_t *out) {
    const char *v = getenv("PHIVK_UPLOAD_CHUNK");
    *out = 64ull << 20;
    if (!v || !*v) return PHIVK_OK;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || !n || v[0] == '-')
        return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_UPLOAD_CHUNK=\"%s\" is not a positive byte count", v);
    *out = n;
    return PHIVK_OK;
}

static void loader_progress(loader *l, uint64_t bytes) {
    l->done += bytes;
    if (l->p->progress) l->p->progress(l->p->progress_user, "loading", l->done, l->total);
}

/* A 1-D weight (norm, bias, rope factors) as f32 on the device, times scale;
 * absent -> zeroed. */
static phivk_status upload_vector_scaled(loader *l, const gguf_tensor *t, float scale, pvk_buf *out) {
    memset(out, 0, sizeof *out);
    if (!t) return PHIVK_OK;
    pvk_dev *dev = l->m->rt->dev;
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *tmp = malloc(sizeof *tmp * (size_t)n);
    if (!tmp) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory loading %s", t->name);
    phivk_status st = quant_dequantize_row(t->type, t->data, tmp, n);
    if (scale != 1.0f)
        for (int64_t i = 0; i < n; i++) tmp[i] *= scale;
    if (st == PHIVK_OK) st = pvk_buf_create(dev, sizeof *tmp * (size_t)n, PVK_MEM_DEVICE, out);
    if (st == PHIVK_OK) st = pvk_buf_write(dev, out, 0, tmp, sizeof *tmp * (size_t)n);
    free(tmp);
    if (st == PHIVK_OK) loader_progress(l, t->bytes);
    return st;
}

static phivk_status upload_vector(loader *l, const gguf_tensor *t, pvk_buf *out) {
    return upload_vector_scaled(l, t, 1.0f, out);
}

/* One GGUF matrix (or several of one type, concatenated by rows) as a device
 * tensor: the parts are written straight from the file, one after another. A
 * part may pass 2 GiB, so every offset is 64-bit. */
static phivk_status upload_tensor(loader *l, const gguf_tensor *const *parts, int n, bool repack,
                                  pvk_tensor *out) {
    pvk_dev *dev = l->m->rt->dev;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) rows += parts[i]->ne[1] * parts[i]->ne[2] * parts[i]->ne[3];
    phivk_status st = pvk_tensor_create_layout(dev, parts[0]->type, parts[0]->ne[0], rows, NULL, repack, out);
    /* Pieces of whole blocks (pvk_tensor_write); parts are whole rows. */
    const pvk_type_info *ti = pvk_type_get(parts[0]->type);
    uint64_t bb = ti->name ? pvk_type_row_bytes(parts[0]->type, ti->block_elems) : 1;
    uint64_t piece = l->chunk > bb ? l->chunk / bb * bb : bb;
    uint64_t at = 0; /* where parts[i] starts in the tensor */
    for (int i = 0; i < n && !st; at += parts[i]->bytes, i++) {
        const uint8_t *src = parts[i]->data;
        for (uint64_t done = 0; done < parts[i]->bytes && !st; done += piece) {
            uint64_t len = parts[i]->bytes - done < piece ? parts[i]->bytes - done : piece;
            st = pvk_tensor_write(dev, out, at + done, src + done, len);
            if (!st) loader_progress(l, len);
        }
    }
    if (!st) l->m->weight_bytes += at;
    return st; /* a tensor made but not filled is freed with the model */
}

/* The projection made of the matrices parts[0..n) (one input width) and their
 * biases (biases NULL, or all present). */
static phivk_status upload_proj(loader *l, const gguf_tensor *const *parts, int n,
                              const gguf_tensor *const *biases, gpu_proj *out) {
    memset(out, 0, sizeof *out);
    bool one_type = true;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        if (parts[i]->ne[0] != parts[0]->ne[0])
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s and %s have different widths", parts[0]->name,
                            parts[i]->name);
        one_type &= parts[i]->type == parts[0]->type;
        rows += parts[i]->ne[1] * parts[i]->ne[2] * parts[i]->ne[3];
    }
    phivk_status st = PHIVK_OK;
    out->n_parts = one_type ? 1 : (uint32_t)n;
    for (uint32_t i = 0; i < out->n_parts && !st; i++)
        st = one_type ? upload_tensor(l, parts, n, repack_type(l, parts[0]->type), &out->part[0])
                      : upload_tensor(l, &parts[i], 1, repack_type(l, parts[i]->type), &out->part[i]);
    if (st || !biases || !biases[0]) return st;

    float *b = malloc(sizeof *b * (size_t)rows);
    if (!b) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    int64_t at = 0;
    for (int i = 0; i < n && st == PHIVK_OK; i++) {
        if (!biases[i]) {
            st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s has a bias but %s has none", biases[0]->name,
                          parts[i]->name);
            break;
        }
        st = quant_dequantize_row(biases[i]->type, biases[i]->data, b + at, biases[i]->ne[0]);
        at += biases[i]->ne[0];
    }
    if (st == PHIVK_OK) st = pvk_buf_create(l->m->rt->dev, sizeof *b * (size_t)rows, PVK_MEM_DEVICE, &out->bias);
    if (st == PHIVK_OK) st = pvk_buf_write(l->m->rt->dev, &out->bias, 0, b, sizeof *b * (size_t)rows);
    free(b);
    return st;
}

static void destroy_proj(pvk_dev *d, gpu_proj *p) {
    for (uint32_t i = 0; i < 3; i++) pvk_tensor_destroy(d, &p->part[i]);
    pvk_buf_destroy(d, &p->bias);
}

static phivk_status upload_layer(loader *l, const arch_layer *a, gpu_layer *g) {
    const arch_hparams *hp = &l->m->hp;
    phivk_status st;
    if ((st = upload_vector(l, a->attn_norm, &g->attn_norm)) ||
        (st = upload_vector(l, a->attn_norm_b, &g->attn_norm_b)) ||
        (st = upload_vector(l, a->ffn_norm, &g->ffn_norm)) ||
        (st = upload_vector(l, a->ffn_norm_b, &g->ffn_norm_b)))
        return st;
    if (hp->fused_qkv) {
        st = upload_proj(l, &a->attn_qkv, 1, &a->attn_qkv_b, &g->qkv);
    } else {
        const gguf_tensor *w[3] = {a->attn_q, a->attn_k, a->attn_v};
        const gguf_tensor *b[3] = {a->attn_q_b, a->attn_k_b, a->attn_v_b};
        st = upload_proj(l, w, 3, b, &g->qkv);
    }
    if (st) return st;
    if ((st = upload_proj(l, &a->attn_output, 1, &a->attn_output_b, &g->out)))
        return st;
    if (a->ffn_gate) {
        const gguf_tensor *w[2] = {a->ffn_gate, a->ffn_up};
        st = upload_proj(l, w, 2, NULL, &g->up);
    } else {
        st = upload_proj(l, &a->ffn_up, 1, &a->ffn_up_b, &g->up);
    }
    if (st) return st;
    return upload_proj(l, &a->ffn_down, 1, &a->ffn_down_b, &g->down);
}

static void destroy_layer(pvk_dev *d, gpu_layer *g) {
    pvk_buf_destroy(d, &g->attn_norm);
    pvk_buf_destroy(d, &g->attn_norm_b);
    pvk_buf_destroy(d, &g->ffn_norm);
    pvk_buf_destroy(d, &g->ffn_norm_b);
    gpu_proj *projs[] = {&g->qkv, &g->out, &g->up, &g->down};
    for (size_t i = 0; i < sizeof projs / sizeof projs[0]; i++) destroy_proj(d, projs[i]);
}

int model_matrix_types(const phivk_model *m, pvk_type *types) {
    int n = 0;
    types[n++] = m->hp.tied_output ? m->embd.type : m->output.part[0].type;
    for (int32_t i = 0; i < m->hp.n_layer; i++) {
        const gpu_layer *g = &m->layers[i];
        const gpu_proj *ps[4] = {&g->qkv, &g->out, &g->up, &g->down};
        for (int j = 0; j < 4; j++)
            for (uint32_t part = 0; part < ps[j]->n_parts; part++) {
                int k = 0;
                while (k < n && types[k] != ps[j]->part[part].type) k++;
                if (k == n) types[n++] = ps[j]->part[part].type;
            }
    }
    return n;
}

bool model_reads_q8(const phivk_model *m) {
    pvk_type types[PVK_TYPE_COUNT];
    int n = model_matrix_types(m, types);
    for (int i = 0; i < n; i++)
        if (pvk_ops_reads_q8(m->rt->ops, types[i], 1)) return true;
    return false;
}

/* Picks the matvec variants of the model's weight types by measuring them on the
 * device (once per device: pvk_ops_tune keeps the choices), then compiles the
 * matrix and embedding pipelines now (pvk_ops_warmup), so that the first token does
 * not pay a JIT. */
static phivk_status warmup(loader *l) {
    const phivk_model *m = l->m;
    pvk_type types[PVK_TYPE_COUNT];
    int n = model_matrix_types(m, types);
    /* Measuring is optional: where it fails (its 4096-row matrix does not fit, say)
     * the built-in choices stay, and a real fault shows again in the warm-up. */
    pvk_type todo[PVK_TYPE_COUNT];   /* those not measured before their upload */
    int n_todo = 0;
    for (int i = 0; i < n; i++)
        if ((unsigned)types[i] >= PVK_TYPE_COUNT || !l->tuned[types[i]]) todo[n_todo++] = types[i];
    pvk_ops_tune(m->rt->ops, todo, n_todo, (uint32_t)m->hp.n_embd, tune_progress, l);
    return pvk_ops_warmup(m->rt->ops, types, n, m->embd.type);
}

/* From the file at path, or (path NULL) from the GGUF image data; what names it in
 * messages and stands in for a missing general.name. */
static phivk_model *load(phivk_runtime *rt, const char *path, const void *data, size_t size,
                         const char *what, const phivk_model_params *p) {
    phivk_model_params defaults = phivk_model_default_params();
    if (!p) p = &defaults;
    phivk_model *m = calloc(1, sizeof *m);
    if (!m) {
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    m->rt = rt;
    if ((path ? gguf_open(path, &m->file) : gguf_open_memory(data, size, &m->file)) != PHIVK_OK)
        goto fail;
    if (arch_hparams_read(m->file, what, &m->hp) != PHIVK_OK) goto fail;
    if (arch_weights_create(m->file, &m->hp, what, &m->w) != PHIVK_OK) goto fail;
    if (arch_masked_ids(m->file, &m->hp, what, &m->masked_ids, &m->n_masked) != PHIVK_OK) goto fail;
    if (tok_vocab_from_gguf(m->file, &m->vocab) != PHIVK_OK) goto fail;
    gguf_str name;
    /* The name reaches terminals and window titles: its control characters are
     * made visible here, once, for every caller. */
    if (gguf_get_str(m->file, "general.name", &name) && name.len)
        phivk_text_visible(name.ptr, name.len, false, m->name, sizeof m->name);
    else
        snprintf(m->name, sizeof m->name, "%s", what);

    /* The session the model is loaded for must fit before any weight is uploaded:
     * a refusal after minutes of upload helps nobody. */
    plan pl;
    if (p->session && session_plan(m, p->session, true, &pl) != PHIVK_OK) goto fail;

    loader l = {.m = m, .p = p};
    if (upload_chunk(&l.chunk) != PHIVK_OK) goto fail;
    for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) l.total += gguf_tensor_at(m->file, i)->bytes;
    const arch_weights *w = m->w;
    /* Tables stay in GGUF's layout: get_rows reads them (and a tied output). */
    if (upload_tensor(&l, &w->token_embd, 1, false, &m->embd) != PHIVK_OK) goto fail;
    if (w->position_embd && upload_tensor(&l, &w->position_embd, 1, false, &m->pos_embd) != PHIVK_OK) goto fail;
    if (!m->hp.tied_output && upload_proj(&l, &w->output, 1, &w->output_b, &m->output) != PHIVK_OK)
        goto fail;
    /* Phi-3-small divides its logits by the muP width multiplier: folded into the
     * final norm's weight and bias (exact for its power of two, 8), as the head
     * is linear and has no bias. */
    if (upload_vector_scaled(&l, w->output_norm, m->hp.logit_scale, &m->output_norm) != PHIVK_OK ||
        upload_vector_scaled(&l, w->output_norm_b, m->hp.logit_scale, &m->output_norm_b) != PHIVK_OK ||
        upload_vector(&l, w->rope_factors_long, &m->rope_long) != PHIVK_OK ||
        upload_vector(&l, w->rope_factors_short, &m->rope_short) != PHIVK_OK)
        goto fail;
    if (m->hp.tied_output && upload_vector(&l, w->output_b, &m->output.bias) != PHIVK_OK) goto fail;
    m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
        goto fail;
    }
    for (int32_t i = 0; i < m->hp.n_layer; i++)
        if (upload_layer(&l, &w->layers[i], &m->layers[i]) != PHIVK_OK) goto fail;
    if (warmup(&l) != PHIVK_OK) goto fail;
    if (p->progress) p->progress(p->progress_user, "loading", l.total, l.total);
    return m;
fail:
    phivk_model_free(m);
    return NULL;
}

phivk_model *phivk_model_load(phivk_runtime *rt, const char *path, const phivk_model_params *p) {
    if (!rt || !path) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_model_load: no runtime or path");
        return NULL;
    }
    return load(rt, path, NULL, 0, arch_basename(path), p);
}

phivk_model *phivk_model_load_memory(phivk_runtime *rt, const void *data, size_t size,
                                     const char *name, const phivk_model_params *p) {
    if (!rt || !data) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_model_load_memory: no runtime or data");
        return NULL;
    }
    return load(rt, NULL, data, size, name ? name : "model in memory", p);
}

void phivk_model_free(phivk_model *m) {
    if (!m) return;
    pvk_dev *d = m->rt->dev;
    if (m->layers)
        for (int32_t i = 0; i < m->hp.n_layer; i++) destroy_layer(d, &m->layers[i]);
    free(m->layers);
    pvk_tensor_destroy(d, &m->embd);
    pvk_tensor_destroy(d, &m->pos_embd);
    destroy_proj(d, &m->output);
    pvk_buf *bufs[] = {&m->output_norm, &m->output_norm_b, &m->rope_long, &m->rope_short};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) pvk_buf_destroy(d, bufs[i]);
    tok_vocab_destroy(m->vocab);
    free(m->masked_ids);
    arch_weights_destroy(m->w);
    gguf_close(m->file);
    free(m);
}

const phivk_vocab *phivk_model_vocab(const phivk_model *m) { return m->vocab; }
const char *phivk_model_arch(const phivk_model *m) { return m->hp.arch_name; }
const char *phivk_model_name(const phivk_model *m) { return m->name; }
int32_t phivk_model_n_vocab(const phivk_model *m) { return m->hp.n_vocab; }
int32_t phivk_model_ctx_train(const phivk_model *m) { return m->hp.n_ctx_train; }
