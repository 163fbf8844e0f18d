/* phivk_info_write: what a GGUF file holds and what a session on it would cost.
 *
 * The facts are gathered once into an info struct, then written either as a
 * human report or as JSON (cJSON), so both always say the same thing. It reads
 * the generic {arch}.* keys for any architecture (not only those phivk runs), so
 * vocabulary-only files and foreign models are described too. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "gguf.h"
#include "phivk.h"
#include "plan.h"
#include "pvk_fmt.h"

#define INFO_MAX_TYPES PVK_TYPE_COUNT

typedef struct info_hp {
    bool present;             /* the architecture's core keys exist */
    int64_t ctx, n_embd, n_layer, n_head, n_head_kv, head_dim, v_dim, n_ff, n_rot;
    bool n_ff_per_layer;      /* feed_forward_length is an array: n_ff is its largest entry */
    float rope_base;
    bool rope_base_default;
    float eps;
    const char *norm;         /* "rms", "layer" or NULL */
    int64_t sliding_window;   /* -1: absent */
    float attn_factor;        /* NAN: absent */
    int64_t orig_ctx;         /* -1: absent */
    bool rope_factor_tables;
    /* Phi-3-small's own keys (docs/gguf-keys.md); bs_block -1: absent */
    int64_t bs_block, bs_local, bs_stride, bs_dense_every;
    float embd_scale, attn_scale, logit_divisor, gegelu_limit;   /* NAN: absent */
    bool learned_pos;         /* position_embd.weight: learned absolute positions, no rotary */
    int64_t n_local;          /* {arch}.attention.layer_types: local layers; -1: absent */
} info_hp;

/* The integer hyperparameters both reports list, in order: label, JSON key, field. */
static const struct { const char *label, *json; size_t off; } hp_ints[] = {
    {"context", "context_length", offsetof(info_hp, ctx)},
    {"embedding", "embedding_length", offsetof(info_hp, n_embd)},
    {"layers", "block_count", offsetof(info_hp, n_layer)},
    {"heads", "head_count", offsetof(info_hp, n_head)},
    {"kv heads", "head_count_kv", offsetof(info_hp, n_head_kv)},
    {"head dim", "head_dim", offsetof(info_hp, head_dim)},
    {"ffn", "feed_forward_length", offsetof(info_hp, n_ff)},
    {"rope dims", "rope_dimension_count", offsetof(info_hp, n_rot)},
};
#define N_HP_INTS (sizeof hp_ints / sizeof hp_ints[0])

static int64_t hp_int(const info_hp *hp, size_t i) {
    return *(const int64_t *)((const char *)hp + hp_ints[i].off);
}

typedef struct info_tok {
    gguf_str model, pre;      /* ptr NULL when absent */
    int64_t n_vocab;          /* -1: no token list */
    int64_t bos, eos;         /* -1: absent */
    int add_bos;              /* -1 absent, 0 no, 1 yes */
    bool chat_template;
} info_tok;

typedef struct info_type_total {
    uint64_t count, bytes, params;
} info_type_total;

typedef struct info {
    const char *path;
    const gguf_file *f;
    gguf_str arch, name;
    info_hp hp;
    info_tok tok;
    info_type_total by_type[INFO_MAX_TYPES];
    uint64_t n_tensors, params, weight_bytes;
    int64_t ctx;              /* for the memory estimate; 0 when unknown */
    uint64_t kv_elems;        /* K and V elements of all layers at ctx */
} info;

/* The cache of a session at the report's context in each cache type a session
 * offers, sized as the session's plan sizes it (plan.h). */
static uint64_t kv_bytes(const info *in, int t) {
    const info_hp *hp = &in->hp;
    pvk_type type = plan_kv_type((phivk_kv_type)t);
    return plan_kv_bytes(hp->n_layer, hp->n_head_kv * hp->head_dim, hp->n_head_kv * hp->v_dim, type, type, in->ctx);
}


/* ------------------------------------------------------------- gathering */

/* "{arch}.suffix" into buf. */
static const char *arch_key(const info *in, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s.%s", (int)(in->arch.len < 64 ? in->arch.len : 64), in->arch.ptr, suffix);
    return buf;
}

static int64_t get_int(const info *in, const char *suffix, int64_t dflt) {
    char k[128];
    int64_t v;
    return gguf_get_i64(in->f, arch_key(in, suffix, k, sizeof k), &v) ? v : dflt;
}

static bool get_float(const info *in, const char *suffix, float *out) {
    char k[128];
    return gguf_get_f32(in->f, arch_key(in, suffix, k, sizeof k), out);
}

static void gather_hp(info *in) {
    info_hp *hp = &in->hp;
    char k[128];
    hp->ctx = get_int(in, "context_length", -1);
    hp->n_embd = get_int(in, "embedding_length", -1);
    hp->n_layer = get_int(in, "block_count", -1);
    hp->n_head = get_int(in, "attention.head_count", -1);
    hp->present = in->arch.ptr && hp->n_embd > 0 && hp->n_layer > 0 && hp->n_head > 0;
    if (!hp->present) return;
    hp->n_head_kv = get_int(in, "attention.head_count_kv", hp->n_head);
    hp->head_dim = get_int(in, "attention.key_length", hp->n_embd / hp->n_head);
    hp->v_dim = get_int(in, "attention.value_length", hp->head_dim);
    hp->n_ff = get_int(in, "feed_forward_length", -1);
    const gguf_kv *ff = gguf_find(in->f, arch_key(in, "feed_forward_length", k, sizeof k));
    if (ff && ff->type == GGUF_ARRAY) {
        hp->n_ff_per_layer = true;
        for (uint64_t i = 0; i < ff->arr_n; i++) {
            int64_t v;
            if (gguf_arr_i64(ff, i, &v) && v > hp->n_ff) hp->n_ff = v;
        }
    }
    hp->learned_pos = gguf_find_tensor(in->f, "position_embd.weight") != NULL;
    hp->n_rot = get_int(in, "rope.dimension_count", hp->learned_pos ? 0 : hp->head_dim);
    const gguf_kv *kinds = gguf_find(in->f, arch_key(in, "attention.layer_types", k, sizeof k));
    hp->n_local = kinds && kinds->type == GGUF_ARRAY ? 0 : -1;
    for (uint64_t i = 0; hp->n_local >= 0 && i < kinds->arr_n; i++) {
        gguf_str t;
        hp->n_local += gguf_arr_str(in->f, kinds, i, &t) && t.len == 5 && !memcmp(t.ptr, "local", 5);
    }
    hp->rope_base_default = !get_float(in, "rope.freq_base", &hp->rope_base);
    if (hp->rope_base_default) hp->rope_base = 10000.0f;
    if (get_float(in, "attention.layer_norm_rms_epsilon", &hp->eps))
        hp->norm = "rms";
    else if (get_float(in, "attention.layer_norm_epsilon", &hp->eps))
        hp->norm = "layer";
    hp->sliding_window = get_int(in, "attention.sliding_window", -1);
    if (!get_float(in, "rope.scaling.attn_factor", &hp->attn_factor)) hp->attn_factor = NAN;
    hp->orig_ctx = get_int(in, "rope.scaling.original_context_length", -1);
    hp->rope_factor_tables = gguf_find_tensor(in->f, "rope_factors_long.weight") &&
                             gguf_find_tensor(in->f, "rope_factors_short.weight");
    hp->bs_block = get_int(in, "attention.blocksparse.block_size", -1);
    hp->bs_local = get_int(in, "attention.blocksparse.local_blocks", -1);
    hp->bs_stride = get_int(in, "attention.blocksparse.vert_stride", -1);
    hp->bs_dense_every = get_int(in, "attention.dense_every_n_layers", -1);
    float *fs[] = {&hp->embd_scale, &hp->attn_scale, &hp->logit_divisor, &hp->gegelu_limit};
    static const char *const fk[] = {"embedding_scale", "attention.scale", "logit_divisor", "gegelu_limit"};
    for (int i = 0; i < 4; i++)
        if (!get_float(in, fk[i], fs[i])) *fs[i] = NAN;
}

static void gather_tok(info *in) {
    info_tok *t = &in->tok;
    int64_t v;
    bool b;
    if (!gguf_get_str(in->f, "tokenizer.ggml.model", &t->model)) t->model.ptr = NULL;
    if (!gguf_get_str(in->f, "tokenizer.ggml.pre", &t->pre)) t->pre.ptr = NULL;
    const gguf_kv *toks = gguf_find(in->f, "tokenizer.ggml.tokens");
    t->n_vocab = toks && toks->type == GGUF_ARRAY ? (int64_t)toks->arr_n : -1;
    t->bos = gguf_get_i64(in->f, "tokenizer.ggml.bos_token_id", &v) ? v : -1;
    t->eos = gguf_get_i64(in->f, "tokenizer.ggml.eos_token_id", &v) ? v : -1;
    t->add_bos = gguf_get_bool(in->f, "tokenizer.ggml.add_bos_token", &b) ? b : -1;
    t->chat_template = gguf_find(in->f, "tokenizer.chat_template") != NULL;
}

static phivk_status gather(info *in, const phivk_info_params *p) {
    if (!gguf_get_str(in->f, "general.architecture", &in->arch)) in->arch.ptr = NULL;
    if (!gguf_get_str(in->f, "general.name", &in->name)) in->name.ptr = NULL;
    gather_hp(in);
    gather_tok(in);
    in->n_tensors = gguf_tensor_count(in->f);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = gguf_tensor_at(in->f, i);
        uint64_t n = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]); /* checked at open */
        in->by_type[t->type].count++;
        in->by_type[t->type].bytes += t->bytes;
        in->by_type[t->type].params += n;
        in->params += n;
        in->weight_bytes += t->bytes;
    }
    in->ctx = p->ctx > 0 ? p->ctx : in->hp.present && in->hp.ctx > 0 ? in->hp.ctx : 0;
    if (in->hp.present && in->ctx > 0 && in->hp.n_head_kv > 0 && in->hp.head_dim > 0 && in->hp.v_dim > 0) {
        /* per token: n_layer * n_head_kv * (K dim + V dim), times ctx tokens. The
         * file's values are unbounded, so each step is checked before it is taken,
         * and the total leaves 64x headroom for the byte counts of kv_bytes. */
        uint64_t dims, per_layer, per_tok, elems;
        if (__builtin_add_overflow((uint64_t)in->hp.head_dim, (uint64_t)in->hp.v_dim, &dims) ||
            __builtin_mul_overflow((uint64_t)in->hp.n_head_kv, dims, &per_layer) ||
            __builtin_mul_overflow((uint64_t)in->hp.n_layer, per_layer, &per_tok) ||
            __builtin_mul_overflow(per_tok, (uint64_t)in->ctx, &elems) || elems > UINT64_MAX / 64)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: KV cache size overflows (hyperparameters are absurd)", in->path);
        in->kv_elems = elems;
    }
    return PHIVK_OK;
}

/* ----------------------------------------------------------------- human */

/* Text from the file as a terminal should show it: control characters as \xNN,
 * one line, cut to fit buf. */
static const char *shown(const char *text, size_t len, char *buf, size_t cap) {
    phivk_text_visible(text, len, false, buf, cap);
    return buf;
}

static void print_str(FILE *out, const char *label, gguf_str s, const char *absent) {
    char buf[256];
    fprintf(out, "%-14s%s\n", label, s.ptr ? shown(s.ptr, s.len, buf, sizeof buf) : absent);
}

static void print_opt_int(FILE *out, const char *label, int64_t v) {
    if (v >= 0)
        fprintf(out, "  %-18s%" PRId64 "\n", label, v);
    else
        fprintf(out, "  %-18s(not set)\n", label);
}

static void write_human(const info *in, FILE *out) {
    char b1[32], b2[32], text[256];
    const info_hp *hp = &in->hp;
    pvk_fmt_bytes(b1, gguf_file_size(in->f));
    fprintf(out, "%-14s%s (%s, GGUF v%" PRIu32 ", alignment %" PRIu64 ", %" PRIu64 " keys, %" PRIu64 " tensors)\n",
            "file", in->path, b1, gguf_version(in->f), gguf_alignment(in->f), gguf_kv_count(in->f), in->n_tensors);
    print_str(out, "architecture", in->arch, "(not set)");
    print_str(out, "name", in->name, "(not set)");
    if (in->n_tensors == 0) fprintf(out, "%-14s%s\n", "contents", "vocabulary-only file (no tensors)");

    fprintf(out, "\nhyperparameters\n");
    if (!hp->present) {
        fprintf(out, "  none: the file has no %s.block_count / embedding_length / attention.head_count keys\n",
                in->arch.ptr ? shown(in->arch.ptr, in->arch.len, text, sizeof text) : "arch");
    } else {
        for (size_t i = 0; i < N_HP_INTS; i++)
            if (hp_ints[i].off == offsetof(info_hp, n_ff) && hp->n_ff_per_layer)
                fprintf(out, "  %-18s%" PRId64 " (largest of a per-layer list)\n", "ffn", hp->n_ff);
            else
                print_opt_int(out, hp_ints[i].label, hp_int(hp, i));
        if (hp->learned_pos) fprintf(out, "  %-18s%s\n", "positions", "learned (position_embd), no rotary");
        else fprintf(out, "  %-18s%g%s\n", "rope base", (double)hp->rope_base, hp->rope_base_default ? " (default)" : "");
        if (hp->norm)
            fprintf(out, "  %-18s%g (%s norm)\n", "norm eps", (double)hp->eps, hp->norm);
        else
            fprintf(out, "  %-18s(not set)\n", "norm eps");
        if (hp->n_local >= 0)
            fprintf(out, "  %-18s%" PRId64 " of %" PRId64 " layers local (window %" PRId64 "), the others global\n",
                    "attention", hp->n_local, hp->n_layer, hp->sliding_window);
        else if (hp->sliding_window >= 0)
            fprintf(out, "  %-18s%" PRId64 "%s\n", "sliding window", hp->sliding_window,
                    hp->sliding_window == 0 ? " (none)" : "");
        if (!isnan(hp->attn_factor) || hp->orig_ctx >= 0 || hp->rope_factor_tables) {
            fprintf(out, "  %-18s", "longrope");
            if (!isnan(hp->attn_factor)) fprintf(out, "attn_factor %g, ", (double)hp->attn_factor);
            if (hp->orig_ctx >= 0) fprintf(out, "original context %" PRId64 ", ", hp->orig_ctx);
            fprintf(out, "%s\n", hp->rope_factor_tables ? "short/long factor tables" : "no factor tables");
        }
        if (!isnan(hp->embd_scale) || !isnan(hp->attn_scale) || !isnan(hp->logit_divisor))
            fprintf(out, "  %-18sembedding x%g, attention scale %g, logits / %g\n", "muP", (double)hp->embd_scale,
                    (double)hp->attn_scale, (double)hp->logit_divisor);
        if (!isnan(hp->gegelu_limit)) fprintf(out, "  %-18slimit %g\n", "gegelu", (double)hp->gegelu_limit);
        if (hp->bs_block >= 0) {
            fprintf(out, "  %-18sblocks of %" PRId64 ", %" PRId64 " local, vertical stride %" PRId64 ", ", "block-sparse",
                    hp->bs_block, hp->bs_local, hp->bs_stride);
            if (hp->bs_dense_every > 0) fprintf(out, "layer l dense iff (l + 1) %% %" PRId64 " == 0\n", hp->bs_dense_every);
            else fprintf(out, "on every layer\n");
        }
    }

    const info_tok *t = &in->tok;
    fprintf(out, "\ntokenizer\n");
    if (t->model.ptr) {
        fprintf(out, "  %-18s%s", "model", shown(t->model.ptr, t->model.len, text, sizeof text));
        if (t->pre.ptr) fprintf(out, " (pre: %s)", shown(t->pre.ptr, t->pre.len, text, sizeof text));
        fputc('\n', out);
    } else
        fprintf(out, "  %-18s(none)\n", "model");
    print_opt_int(out, "vocab size", t->n_vocab);
    print_opt_int(out, "bos id", t->bos);
    print_opt_int(out, "eos id", t->eos);
    fprintf(out, "  %-18s%s\n", "add bos", t->add_bos < 0 ? "(not set)" : t->add_bos ? "yes" : "no");
    fprintf(out, "  %-18s%s\n", "chat template", t->chat_template ? "yes" : "no");

    if (in->n_tensors) {
        fprintf(out, "\ntensors\n  %-36s %-6s %-24s %12s\n", "name", "type", "shape", "bytes");
        for (uint64_t i = 0; i < in->n_tensors; i++) {
            const gguf_tensor *g = gguf_tensor_at(in->f, i);
            char shape[96];
            int n = 0;
            for (uint32_t d = 0; d < g->n_dims; d++)
                n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? " x " : "", g->ne[d]);
            fprintf(out, "  %-36s %-6s %-24s %12" PRIu64 "\n", shown(g->name, strlen(g->name), text, sizeof text),
                    pvk_type_get(g->type)->name, shape, g->bytes);
        }
    }
    fprintf(out, "\ntotals\n");
    for (int ty = 0; ty < INFO_MAX_TYPES; ty++) {
        const info_type_total *tt = &in->by_type[ty];
        if (!tt->count) continue;
        pvk_fmt_bytes(b1, tt->bytes);
        fprintf(out, "  %-6s %5" PRIu64 " tensor(s) %14" PRIu64 " params %12s\n", pvk_type_get((uint32_t)ty)->name,
                tt->count, tt->params, b1);
    }
    pvk_fmt_bytes(b1, in->weight_bytes);
    fprintf(out, "  %-6s %5" PRIu64 " tensor(s) %14" PRIu64 " params %12s\n", "all", in->n_tensors, in->params, b1);

    fprintf(out, "\nmemory\n");
    if (in->n_tensors == 0) {
        fprintf(out, "  no weights (vocabulary-only file)\n");
    } else if (!in->kv_elems) {
        fprintf(out, "  weights %s; no KV cache estimate (hyperparameters or context unknown)\n", b1);
    } else {
        fprintf(out, "  at context %" PRId64 " (%" PRIu64 " KV elements per token):\n", in->ctx,
                in->kv_elems / (uint64_t)in->ctx);
        fprintf(out, "  %-18s%12s\n", "weights", b1);
        for (int k = 0; k < PLAN_KV_TYPE_COUNT; k++) {
            char label[32];
            snprintf(label, sizeof label, "KV cache %s", phivk_kv_type_name((phivk_kv_type)k));
            pvk_fmt_bytes(b1, kv_bytes(in, k));
            pvk_fmt_bytes(b2, kv_bytes(in, k) + in->weight_bytes);
            fprintf(out, "  %-18s%12s   total %s\n", label, b1, b2);
        }
    }
}

/* ------------------------------------------------------------------ JSON */

static void json_str(cJSON *o, const char *key, gguf_str s) {
    if (!s.ptr) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char *c = malloc(s.len + 1);
    if (!c) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    cJSON_AddStringToObject(o, key, c);
    free(c);
}

static void json_int(cJSON *o, const char *key, int64_t v) {
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)v);
}

/* A float key as the decimal its f32 value was written from (1e-05, not 9.99999974737875e-06). */
static void json_float(cJSON *o, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    cJSON_AddNumberToObject(o, key, strtod(buf, NULL));
}

static cJSON *json_build(const info *in) {
    cJSON *root = cJSON_CreateObject();
    const info_hp *hp = &in->hp;
    cJSON_AddStringToObject(root, "file", in->path);
    cJSON_AddNumberToObject(root, "file_bytes", (double)gguf_file_size(in->f));
    cJSON_AddNumberToObject(root, "gguf_version", gguf_version(in->f));
    cJSON_AddNumberToObject(root, "alignment", (double)gguf_alignment(in->f));
    cJSON_AddNumberToObject(root, "n_kv", (double)gguf_kv_count(in->f));
    json_str(root, "architecture", in->arch);
    json_str(root, "name", in->name);
    cJSON_AddBoolToObject(root, "vocab_only", in->n_tensors == 0);

    if (hp->present) {
        cJSON *h = cJSON_AddObjectToObject(root, "hparams");
        for (size_t i = 0; i < N_HP_INTS; i++) json_int(h, hp_ints[i].json, hp_int(hp, i));
        cJSON_AddBoolToObject(h, "feed_forward_per_layer", hp->n_ff_per_layer);
        json_float(h, "rope_freq_base", hp->rope_base);
        if (hp->norm) {
            json_float(h, "norm_eps", hp->eps);
            cJSON_AddStringToObject(h, "norm", hp->norm);
        } else {
            cJSON_AddNullToObject(h, "norm_eps");
            cJSON_AddNullToObject(h, "norm");
        }
        json_int(h, "sliding_window", hp->sliding_window);
        cJSON_AddStringToObject(h, "positions", hp->learned_pos ? "learned" : "rope");
        json_int(h, "local_layers", hp->n_local);
        if (isnan(hp->attn_factor))
            cJSON_AddNullToObject(h, "rope_attn_factor");
        else
            json_float(h, "rope_attn_factor", hp->attn_factor);
        json_int(h, "rope_original_context_length", hp->orig_ctx);
        cJSON_AddBoolToObject(h, "rope_factor_tables", hp->rope_factor_tables);
        if (hp->bs_block >= 0) {
            cJSON *bs = cJSON_AddObjectToObject(h, "blocksparse");
            json_int(bs, "block_size", hp->bs_block);
            json_int(bs, "local_blocks", hp->bs_local);
            json_int(bs, "vert_stride", hp->bs_stride);
            json_int(bs, "dense_every_n_layers", hp->bs_dense_every);
        }
        static const char *const fj[] = {"embedding_scale", "attention_scale", "logit_divisor", "gegelu_limit"};
        const float fv[] = {hp->embd_scale, hp->attn_scale, hp->logit_divisor, hp->gegelu_limit};
        for (int i = 0; i < 4; i++)
            if (!isnan(fv[i])) json_float(h, fj[i], fv[i]);
    } else {
        cJSON_AddNullToObject(root, "hparams");
    }

    cJSON *t = cJSON_AddObjectToObject(root, "tokenizer");
    json_str(t, "model", in->tok.model);
    json_str(t, "pre", in->tok.pre);
    json_int(t, "vocab_size", in->tok.n_vocab);
    json_int(t, "bos_token_id", in->tok.bos);
    json_int(t, "eos_token_id", in->tok.eos);
    if (in->tok.add_bos < 0)
        cJSON_AddNullToObject(t, "add_bos_token");
    else
        cJSON_AddBoolToObject(t, "add_bos_token", in->tok.add_bos);
    cJSON_AddBoolToObject(t, "chat_template", in->tok.chat_template);

    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *g = gguf_tensor_at(in->f, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddStringToObject(o, "type", pvk_type_get(g->type)->name);
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < g->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)g->ne[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)g->bytes);
        cJSON_AddItemToArray(arr, o);
    }

    cJSON *tot = cJSON_AddObjectToObject(root, "totals");
    cJSON *bt = cJSON_AddArrayToObject(tot, "by_type");
    for (int ty = 0; ty < INFO_MAX_TYPES; ty++) {
        if (!in->by_type[ty].count) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", pvk_type_get((uint32_t)ty)->name);
        cJSON_AddNumberToObject(o, "tensors", (double)in->by_type[ty].count);
        cJSON_AddNumberToObject(o, "params", (double)in->by_type[ty].params);
        cJSON_AddNumberToObject(o, "bytes", (double)in->by_type[ty].bytes);
        cJSON_AddItemToArray(bt, o);
    }
    cJSON_AddNumberToObject(tot, "tensors", (double)in->n_tensors);
    cJSON_AddNumberToObject(tot, "params", (double)in->params);
    cJSON_AddNumberToObject(tot, "bytes", (double)in->weight_bytes);

    if (in->n_tensors && in->kv_elems) {
        cJSON *m = cJSON_AddObjectToObject(root, "memory");
        cJSON_AddNumberToObject(m, "ctx", (double)in->ctx);
        cJSON_AddNumberToObject(m, "weights_bytes", (double)in->weight_bytes);
        cJSON_AddNumberToObject(m, "kv_elements", (double)in->kv_elems);
        cJSON *kv = cJSON_AddObjectToObject(m, "kv_cache_bytes");
        cJSON *total = cJSON_AddObjectToObject(m, "total_bytes");
        for (int k = 0; k < PLAN_KV_TYPE_COUNT; k++) {
            cJSON_AddNumberToObject(kv, phivk_kv_type_name((phivk_kv_type)k), (double)kv_bytes(in, k));
            cJSON_AddNumberToObject(total, phivk_kv_type_name((phivk_kv_type)k), (double)(kv_bytes(in, k) + in->weight_bytes));
        }
    } else {
        cJSON_AddNullToObject(root, "memory");
    }
    return root;
}

/* ----------------------------------------------------------------- public */

phivk_info_params phivk_info_default_params(void) {
    phivk_info_params p = {.json = false, .ctx = 0};
    return p;
}

phivk_status phivk_info_write(const char *path, const phivk_info_params *params, FILE *out) {
    phivk_info_params p = params ? *params : phivk_info_default_params();
    if (!path || !out) return pvk_fail(PHIVK_ERR_INVALID, "phivk_info_write: NULL path or stream");
    if (p.ctx < 0) return pvk_fail(PHIVK_ERR_INVALID, "context %d is negative", p.ctx);
    gguf_file *f;
    phivk_status st = gguf_open(path, &f);
    if (st) return st;
    info *in = calloc(1, sizeof *in);
    if (!in) {
        gguf_close(f);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    }
    in->path = path;
    in->f = f;
    st = gather(in, &p);
    if (!st && p.json) {
        cJSON *root = json_build(in);
        char *s = root ? cJSON_Print(root) : NULL;
        if (s)
            fprintf(out, "%s\n", s);
        else
            st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory building JSON");
        free(s);
        cJSON_Delete(root);
    } else if (!st) {
        write_human(in, out);
    }
    if (!st && ferror(out)) st = pvk_fail(PHIVK_ERR_IO, "writing the report failed");
    free(in);
    gguf_close(f);
    return st;
}

phivk_status phivk_model_brief_read(const char *path, phivk_model_brief *out) {
    if (!path || !out) return pvk_fail(PHIVK_ERR_INVALID, "phivk_model_brief_read: NULL path or output");
    *out = (phivk_model_brief){0};
    gguf_file *f;
    phivk_status st = gguf_open(path, &f);
    if (st) return st;
    info *in = calloc(1, sizeof *in);
    if (!in) {
        gguf_close(f);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    }
    in->path = path;
    in->f = f;
    phivk_info_params p = phivk_info_default_params();
    st = gather(in, &p);
    if (!st) {
        if (in->arch.ptr) phivk_text_visible(in->arch.ptr, in->arch.len, false, out->arch, sizeof out->arch);
        if (in->name.ptr) phivk_text_visible(in->name.ptr, in->name.len, false, out->name, sizeof out->name);
        int most = -1;
        for (int ty = 0; ty < INFO_MAX_TYPES; ty++)
            if (in->by_type[ty].bytes && (most < 0 || in->by_type[ty].bytes > in->by_type[most].bytes)) most = ty;
        if (most >= 0) snprintf(out->quant, sizeof out->quant, "%s", pvk_type_get((uint32_t)most)->name);
        out->file_bytes = gguf_file_size(f);
        out->ctx = in->hp.present && in->hp.ctx > 0 ? in->hp.ctx : 0;
        out->params = in->params;
    }
    free(in);
    gguf_close(f);
    return st;
}
