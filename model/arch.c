#include "arch.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phivk.h"

/* Upper bounds that keep every size product below 2^62 and reject nonsense early. */
#define ARCH_MAX_DIM (1 << 20)
#define ARCH_MAX_CTX (1 << 24)

static const struct {
    const char *name;
    arch_kind kind;
    const char *eps_key; /* the norm epsilon key decides the norm kind too */
    arch_norm norm;
} arch_table[] = {
    {"phi2", ARCH_PHI2, "attention.layer_norm_epsilon", ARCH_NORM_LAYER},
    {"phi3", ARCH_PHI3, "attention.layer_norm_rms_epsilon", ARCH_NORM_RMS},
    {"llama", ARCH_LLAMA, "attention.layer_norm_rms_epsilon", ARCH_NORM_RMS},
    {"phi3small", ARCH_PHI3SMALL, "attention.layer_norm_epsilon", ARCH_NORM_LAYER},
    {"gptneo", ARCH_GPTNEO, "attention.layer_norm_epsilon", ARCH_NORM_LAYER},
};

const char *arch_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "{arch}.{suffix}" into buf. */
static const char *akey(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* An integer key in [lo, hi]; absent keys take def unless def < 0 (required). */
static phivk_status read_int(const gguf_file *f, const char *what, const char *arch,
                           const char *suffix, int64_t def, int64_t lo, int64_t hi, int32_t *out) {
    char key[128];
    akey(key, sizeof key, arch, suffix);
    int64_t v;
    if (!gguf_get_i64(f, key, &v)) {
        const gguf_kv *kv = gguf_find(f, key);
        if (kv && kv->type == GGUF_ARRAY && kv->arr_n > 0 && gguf_arr_i64(kv, 0, &v)) {
            /* per-layer arrays (feed_forward_length) are accepted when uniform */
            for (uint64_t i = 1; i < kv->arr_n; i++) {
                int64_t x;
                if (!gguf_arr_i64(kv, i, &x) || x != v)
                    return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                                    "%s: key '%s' varies per layer, which phivk does not support",
                                    what, key);
            }
        } else if (kv) {
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' is not an integer", what, key);
        } else if (def < 0) {
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing key '%s'", what, key);
        } else {
            v = def;
        }
    }
    if (v < lo || v > hi)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' = %lld is out of range [%lld, %lld]", what,
                        key, (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return PHIVK_OK;
}

static phivk_status read_float(const gguf_file *f, const char *what, const char *arch,
                             const char *suffix, bool required, float def, float *out) {
    char key[128];
    akey(key, sizeof key, arch, suffix);
    if (gguf_get_f32(f, key, out)) {
        if (!isfinite(*out) || *out < 0)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' = %g is not a valid value", what, key,
                            (double)*out);
        return PHIVK_OK;
    }
    if (gguf_find(f, key))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' is not a number", what, key);
    if (required) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing key '%s'", what, key);
    *out = def;
    return PHIVK_OK;
}

/* A boolean key; absent: def. */
static phivk_status read_bool(const gguf_file *f, const char *what, const char *arch, const char *suffix,
                              bool def, bool *out) {
    char key[128];
    akey(key, sizeof key, arch, suffix);
    const gguf_kv *kv = gguf_find(f, key);
    *out = def;
    if (!kv) return PHIVK_OK;
    if (!gguf_get_bool(f, key, out))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' is not a boolean", what, key);
    return PHIVK_OK;
}

/* Phi-3-small's own keys (docs/gguf-keys.md): muP scales, GEGELU, the block-sparse
 * pattern, the short table's mscale. */
static phivk_status read_phi3small(const gguf_file *f, const char *what, arch_hparams *hp) {
    const char *a = hp->arch_name;
    float width_mult;
    int32_t bs_vs;
    phivk_status st;
    if ((st = read_float(f, what, a, "embedding_scale", true, 0, &hp->embd_scale)) ||
        (st = read_float(f, what, a, "attention.scale", true, 0, &hp->attn_scale)) ||
        (st = read_float(f, what, a, "logit_divisor", true, 0, &width_mult)) ||
        (st = read_float(f, what, a, "gegelu_limit", false, 0, &hp->gegelu_limit)) ||
        (st = read_float(f, what, a, "rope.scaling.attn_factor_short", false, 1.0f,
                         &hp->rope_attn_factor_short)) ||
        (st = read_int(f, what, a, "attention.dense_every_n_layers", -1, 0, ARCH_MAX_LAYERS,
                       &hp->bs_dense_every)) ||
        (st = read_int(f, what, a, "attention.blocksparse.block_size", -1, 1, ARCH_MAX_CTX,
                       &hp->bs_block)) ||
        (st = read_int(f, what, a, "attention.blocksparse.local_blocks", -1, 1, ARCH_MAX_CTX,
                       &hp->bs_local)) ||
        (st = read_int(f, what, a, "attention.blocksparse.vert_stride", -1, 1, ARCH_MAX_CTX,
                       &bs_vs)) ||
        (st = read_bool(f, what, a, "attention.blocksparse.homo_head_pattern", false, &hp->bs_homo)))
        return st;
    static const char *const scale_keys[] = {"embedding_scale", "attention.scale", "logit_divisor"};
    const float scales[] = {hp->embd_scale, hp->attn_scale, width_mult};
    for (int i = 0; i < 3; i++)
        if (!(scales[i] > 0))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s.%s' = %g must be positive", what, a, scale_keys[i],
                            (double)scales[i]);
    hp->bs_stride = bs_vs;
    hp->logit_scale = 1.0f / width_mult;
    hp->gegelu = true;
    if (hp->n_rot != hp->head_dim)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s.rope.dimension_count' = %d: phi3small rotates "
                        "the whole head (%d)", what, a, hp->n_rot, hp->head_dim);
    return PHIVK_OK;
}

/* GPT-Neo's positions and attention (gpt-neo.md 3a, docs/gguf-keys.md): no rotary
 * (the rope keys' defaults above go unused), no score scaling, the per-layer
 * kinds and the local window. */
static phivk_status read_gptneo(const gguf_file *f, const char *what, arch_hparams *hp) {
    hp->n_rot = 0;
    hp->attn_scale = 1.0f;
    hp->pos_embd = true;
    const char *key = "gptneo.attention.layer_types";
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing key '%s'", what, key);
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || kv->arr_n != (uint64_t)hp->n_layer)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' must list \"global\" or \"local\" for each of the %d layers",
                        what, key, hp->n_layer);
    bool any_local = false;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        gguf_str t = {0};
        gguf_arr_str(f, kv, (uint64_t)l, &t);
        bool local = t.len == 5 && !memcmp(t.ptr, "local", 5);
        if (!local && !(t.len == 6 && !memcmp(t.ptr, "global", 6))) {
            char shown[64];
            phivk_text_visible(t.ptr, t.len, false, shown, sizeof shown);
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' entry %d is '%s', not \"global\" or \"local\"", what,
                            key, (int)l, shown);
        }
        if (local) hp->local_layers[l / 64] |= 1ull << (l % 64);
        any_local |= local;
    }
    return any_local ? read_int(f, what, "gptneo", "attention.sliding_window", -1, 1, INT32_MAX, &hp->local_window)
                     : PHIVK_OK;
}

phivk_status arch_hparams_read(const gguf_file *f, const char *what, arch_hparams *out) {
    memset(out, 0, sizeof *out);
    gguf_str an;
    if (!gguf_get_str(f, "general.architecture", &an))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing key 'general.architecture'", what);
    size_t ai = sizeof arch_table / sizeof arch_table[0];
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (an.len == strlen(arch_table[i].name) && !memcmp(an.ptr, arch_table[i].name, an.len))
            ai = i;
    char shown[128]; /* the file's text as a terminal should show it */
    if (ai == sizeof arch_table / sizeof arch_table[0]) {
        phivk_text_visible(an.ptr, an.len, false, shown, sizeof shown);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: architecture '%s' is not supported (phivk runs phi2, phi3, llama, gptneo, "
                        "phi3small)", what,
                        shown);
    }
    const char *a = arch_table[ai].name;
    arch_hparams *hp = out;
    hp->arch = arch_table[ai].kind;
    hp->arch_name = a;
    hp->norm = arch_table[ai].norm;

    phivk_status st;
    if ((st = read_int(f, what, a, "context_length", -1, 1, ARCH_MAX_CTX, &hp->n_ctx_train)) ||
        (st = read_int(f, what, a, "embedding_length", -1, 1, ARCH_MAX_DIM, &hp->n_embd)) ||
        (st = read_int(f, what, a, "block_count", -1, 1, ARCH_MAX_LAYERS, &hp->n_layer)) ||
        (st = read_int(f, what, a, "feed_forward_length", -1, 1, ARCH_MAX_DIM, &hp->n_ff)) ||
        (st = read_int(f, what, a, "attention.head_count", -1, 1, ARCH_MAX_DIM, &hp->n_head)) ||
        (st = read_int(f, what, a, "attention.head_count_kv", hp->n_head, 1, hp->n_head,
                       &hp->n_head_kv)))
        return st;
    if (hp->n_head % hp->n_head_kv)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: head_count %d is not a multiple of head_count_kv %d",
                        what, hp->n_head, hp->n_head_kv);
    if (hp->n_embd % hp->n_head)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: embedding_length %d is not a multiple of head_count %d", what,
                        hp->n_embd, hp->n_head);
    int32_t vdim;
    if ((st = read_int(f, what, a, "attention.key_length", hp->n_embd / hp->n_head, 2,
                       ARCH_MAX_HEAD_DIM, &hp->head_dim)) ||
        (st = read_int(f, what, a, "attention.value_length", hp->head_dim, 2, ARCH_MAX_HEAD_DIM,
                       &vdim)))
        return st;
    if (vdim != hp->head_dim || hp->head_dim % 2)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: key/value head sizes %d/%d are not supported (equal and even)", what,
                        hp->head_dim, vdim);
    hp->n_embd_q = hp->n_head * hp->head_dim;
    hp->n_embd_kv = hp->n_head_kv * hp->head_dim;
    if ((st = read_int(f, what, a, "rope.dimension_count", hp->head_dim, 2, hp->head_dim,
                       &hp->n_rot)))
        return st;
    if (hp->n_rot % 2)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s.rope.dimension_count' = %d is odd", what, a,
                        hp->n_rot);
    if ((st = read_float(f, what, a, arch_table[ai].eps_key, true, 0, &hp->norm_eps)) ||
        (st = read_float(f, what, a, "rope.freq_base", false, 10000.0f, &hp->rope_base)) ||
        (st = read_float(f, what, a, "rope.scaling.attn_factor", false, 1.0f,
                         &hp->rope_attn_factor)) ||
        (st = read_int(f, what, a, "rope.scaling.original_context_length", hp->n_ctx_train, 1,
                       ARCH_MAX_CTX, &hp->rope_orig_ctx)))
        return st;
    /* Dimension i turns by pos * base^(-2i/n_rot): with a base above 1 no angle
     * exceeds the position; below 1 they grow with i (1e-38 overflows to inf at
     * once), and at 1 every dimension turns alike (the RoPE kernel refuses it). */
    if (!(hp->rope_base > 1.0f))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s.rope.freq_base' = %g must be greater than 1",
                        what, a, (double)hp->rope_base);

    /* Only linear scaling (or none) exists in the supported families. */
    hp->rope_freq_scale = 1.0f;
    char key[128];
    gguf_str stype;
    if (gguf_get_str(f, akey(key, sizeof key, a, "rope.scaling.type"), &stype) &&
        !(stype.len == 6 && !memcmp(stype.ptr, "linear", 6)) &&
        !(stype.len == 4 && !memcmp(stype.ptr, "none", 4))) {
        phivk_text_visible(stype.ptr, stype.len, false, shown, sizeof shown);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: rope scaling '%s' is not supported (linear only)",
                        what, shown);
    }
    float factor;
    if ((st = read_float(f, what, a, "rope.scaling.factor", false, 0.0f, &factor))) return st;
    if (factor > 0) hp->rope_freq_scale = 1.0f / factor;

    hp->rope_attn_factor_short = hp->rope_attn_factor;
    hp->embd_scale = 1.0f;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->logit_scale = 1.0f;
    if (hp->arch == ARCH_PHI3SMALL && (st = read_phi3small(f, what, hp))) return st;

    hp->rope_neox = hp->arch != ARCH_LLAMA;
    hp->parallel_block = hp->arch == ARCH_PHI2;
    hp->gelu = hp->arch == ARCH_PHI2 || hp->arch == ARCH_GPTNEO;
    if (hp->arch == ARCH_GPTNEO && (st = read_gptneo(f, what, hp))) return st;
    hp->fused_gate_up = hp->arch == ARCH_PHI3 || hp->arch == ARCH_PHI3SMALL;
    if (hp->arch == ARCH_PHI3 && (st = read_int(f, what, a, "attention.sliding_window", 0, 0,
                                                INT32_MAX, &hp->sliding_window)))
        return st;

    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing tensor 'token_embd.weight'", what);
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor 'token_embd.weight' has %lld rows", what,
                        (long long)te->ne[1]);
    hp->n_vocab = (int32_t)te->ne[1];
    /* Token ids index the embedding rows: a tokenizer with more tokens than rows
     * hands out ids past the table, one with fewer leaves rows no text reaches
     * (the converters pad the token list to the rows, so they agree). A file
     * without a token list fails when the tokenizer loads. */
    const gguf_kv *toks = gguf_find(f, "tokenizer.ggml.tokens");
    if (toks && toks->type == GGUF_ARRAY && toks->arr_n != (uint64_t)te->ne[1])
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: key 'tokenizer.ggml.tokens' lists %llu tokens but tensor "
                        "'token_embd.weight' has %lld rows (one per token)", what,
                        (unsigned long long)toks->arr_n, (long long)te->ne[1]);
    /* phi3 loaders always fuse, llama never does; phi2 files come in both forms. */
    hp->fused_qkv = hp->arch == ARCH_PHI3 || hp->arch == ARCH_PHI3SMALL ||
                    (hp->arch == ARCH_PHI2 && gguf_find_tensor(f, "blk.0.attn_qkv.weight"));
    hp->tied_output = !gguf_find_tensor(f, "output.weight") && hp->arch != ARCH_PHI2;
    const gguf_tensor *fl = gguf_find_tensor(f, "rope_factors_long.weight");
    const gguf_tensor *fs = gguf_find_tensor(f, "rope_factors_short.weight");
    if (!fl != !fs)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing tensor '%s'", what,
                        fl ? "rope_factors_short.weight" : "rope_factors_long.weight");
    hp->has_rope_factors = fl != NULL;
    return PHIVK_OK;
}

enum { USE_NO, USE_OPT, USE_REQ };

typedef struct finder {
    const gguf_file *f;
    const char *what;
} finder;

/* Looks up name and checks it is {ne0} (ne1 == 0, then F32) or {ne0, ne1}. */
static phivk_status want(const finder *fd, const char *name, int use, int64_t ne0, int64_t ne1,
                       const gguf_tensor **out) {
    *out = NULL;
    if (use == USE_NO) return PHIVK_OK;
    const gguf_tensor *t = gguf_find_tensor(fd->f, name);
    if (!t) {
        if (use == USE_OPT) return PHIVK_OK;
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: missing tensor '%s'", fd->what, name);
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        if (ne1)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' has shape {%lld, %lld, %lld, %lld}, "
                            "expected {%lld, %lld}", fd->what, name, (long long)t->ne[0],
                            (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                            (long long)ne0, (long long)ne1);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' has shape {%lld, %lld, %lld, %lld}, "
                        "expected {%lld}", fd->what, name, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3], (long long)ne0);
    }
    const pvk_type_info *ti = pvk_type_get(t->type);
    if (!ti->supported)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has type %s, which phivk does not support", fd->what, name,
                        ti->name ? ti->name : "(unknown)");
    if (!ne1 && t->type != PVK_F32)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: 1-D tensor '%s' has type %s; phivk expects f32",
                        fd->what, name, ti->name);
    *out = t;
    return PHIVK_OK;
}

/* A LongRoPE table: RoPE divides each angle (at most the position) by its entry,
 * so every entry must be finite, positive and keep the angle of the last position
 * a session can hold finite: 0 gives inf, and sin(inf) is NaN. */
static phivk_status check_rope_factors(const finder *fd, const gguf_tensor *t) {
    if (!t) return PHIVK_OK;
    for (int64_t i = 0; i < t->ne[0]; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
        if (!(v > 0) || !isfinite(v) || !isfinite((float)ARCH_MAX_CTX / v))
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "%s: tensor '%s' entry %lld is %g; LongRoPE factors must be finite and "
                            "at least %g", fd->what, t->name, (long long)i, (double)v,
                            (double)((float)ARCH_MAX_CTX / FLT_MAX));
    }
    return PHIVK_OK;
}

/* "{prefix}{base}.weight" {in, out} and "{prefix}{base}.bias" {out}. A norm passes
 * in = 0: its weight is 1-D of length out. */
static phivk_status want_pair(const finder *fd, const char *prefix, const char *base, int use_w,
                            int use_b, int64_t in, int64_t out, const gguf_tensor **w,
                            const gguf_tensor **b) {
    char name[96];
    phivk_status st;
    snprintf(name, sizeof name, "%s%s.weight", prefix, base);
    if ((st = in ? want(fd, name, use_w, in, out, w) : want(fd, name, use_w, out, 0, w))) return st;
    snprintf(name, sizeof name, "%s%s.bias", prefix, base);
    return want(fd, name, *w ? use_b : USE_NO, out, 0, b);
}

phivk_status arch_weights_create(const gguf_file *f, const arch_hparams *hp, const char *what,
                               arch_weights **out) {
    *out = NULL;
    arch_weights *w = calloc(1, sizeof *w);
    if (w) w->layers = calloc((size_t)hp->n_layer, sizeof *w->layers);
    if (!w || !w->layers) {
        arch_weights_destroy(w);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the weight table");
    }
    w->n_layer = hp->n_layer;
    finder fd = {f, what};
    const bool phi2 = hp->arch == ARCH_PHI2, neo = hp->arch == ARCH_GPTNEO, p3s = hp->arch == ARCH_PHI3SMALL;
    /* phi2, gptneo and phi3small have biases everywhere (but gptneo's q, k, v and the
     * tied heads of gptneo and phi3small) */
    const int bias = phi2 || neo || p3s ? USE_REQ : USE_OPT;
    const int qkv_bias = neo ? USE_OPT : bias;        /* gptneo: none on q, k, v */
    const int lnb = hp->norm == ARCH_NORM_LAYER ? USE_REQ : USE_NO;
    const int64_t E = hp->n_embd, Q = hp->n_embd_q, KV = hp->n_embd_kv, F = hp->n_ff;
    const gguf_tensor *unused;
    phivk_status st;

    if ((st = want(&fd, "token_embd.weight", USE_REQ, E, hp->n_vocab, &w->token_embd)) ||
        (st = want_pair(&fd, "", "output_norm", USE_REQ, lnb, 0, E, &w->output_norm,
                        &w->output_norm_b)) ||
        (st = want_pair(&fd, "", "output", hp->tied_output ? USE_NO : USE_REQ, neo || p3s ? USE_OPT : bias, E,
                        hp->n_vocab, &w->output, &w->output_b)) ||
        (st = want(&fd, "position_embd.weight", hp->pos_embd ? USE_REQ : USE_NO, E, hp->n_ctx_train,
                   &w->position_embd)) ||
        (st = want(&fd, "rope_factors_long.weight", hp->has_rope_factors ? USE_REQ : USE_NO,
                   hp->n_rot / 2, 0, &w->rope_factors_long)) ||
        (st = want(&fd, "rope_factors_short.weight", hp->has_rope_factors ? USE_REQ : USE_NO,
                   hp->n_rot / 2, 0, &w->rope_factors_short)) ||
        (st = check_rope_factors(&fd, w->rope_factors_long)) ||
        (st = check_rope_factors(&fd, w->rope_factors_short)))
        goto fail;
    if (hp->tied_output) w->output = w->token_embd;

    for (int32_t l = 0; l < hp->n_layer; l++) {
        arch_layer *L = &w->layers[l];
        char p[32];
        snprintf(p, sizeof p, "blk.%d.", (int)l);
        const int fused = hp->fused_qkv ? USE_REQ : USE_NO, sep = hp->fused_qkv ? USE_NO : USE_REQ;
        if ((st = want_pair(&fd, p, "attn_norm", USE_REQ, lnb, 0, E, &L->attn_norm,
                            &L->attn_norm_b)) ||
            (st = want_pair(&fd, p, "attn_qkv", fused, bias, E, Q + 2 * KV, &L->attn_qkv,
                            &L->attn_qkv_b)) ||
            (st = want_pair(&fd, p, "attn_q", sep, qkv_bias, E, Q, &L->attn_q, &L->attn_q_b)) ||
            (st = want_pair(&fd, p, "attn_k", sep, qkv_bias, E, KV, &L->attn_k, &L->attn_k_b)) ||
            (st = want_pair(&fd, p, "attn_v", sep, qkv_bias, E, KV, &L->attn_v, &L->attn_v_b)) ||
            (st = want_pair(&fd, p, "attn_output", USE_REQ, bias, Q, E, &L->attn_output,
                            &L->attn_output_b)) ||
            (st = want_pair(&fd, p, "ffn_norm", hp->parallel_block ? USE_NO : USE_REQ, lnb, 0, E,
                            &L->ffn_norm, &L->ffn_norm_b)) ||
            (st = want_pair(&fd, p, "ffn_gate", hp->arch == ARCH_LLAMA ? USE_REQ : USE_NO, USE_NO,
                            E, F, &L->ffn_gate, &unused)) ||
            (st = want_pair(&fd, p, "ffn_up", USE_REQ, bias, E, hp->fused_gate_up ? 2 * F : F,
                            &L->ffn_up, &L->ffn_up_b)) ||
            (st = want_pair(&fd, p, "ffn_down", USE_REQ, bias, F, E, &L->ffn_down, &L->ffn_down_b)))
            goto fail;
    }
    *out = w;
    return PHIVK_OK;
fail:
    arch_weights_destroy(w);
    return st;
}

void arch_weights_destroy(arch_weights *w) {
    if (!w) return;
    free(w->layers);
    free(w);
}

arch_rope_table arch_rope_factors_choice(const arch_hparams *hp, phivk_rope_factors mode,
                                         int64_t seq_len) {
    if (!hp->has_rope_factors) return ARCH_ROPE_TABLE_NONE;
    switch (mode) {
    case PHIVK_ROPE_SHORT: return ARCH_ROPE_TABLE_SHORT;
    case PHIVK_ROPE_LONG: return ARCH_ROPE_TABLE_LONG;
    case PHIVK_ROPE_AUTO: break;
    }
    return seq_len > hp->rope_orig_ctx ? ARCH_ROPE_TABLE_LONG : ARCH_ROPE_TABLE_SHORT;
}

const gguf_tensor *arch_rope_factors(const arch_weights *w, arch_rope_table t) {
    switch (t) {
    case ARCH_ROPE_TABLE_SHORT: return w->rope_factors_short;
    case ARCH_ROPE_TABLE_LONG: return w->rope_factors_long;
    case ARCH_ROPE_TABLE_NONE: break;
    }
    return NULL;
}

int32_t arch_layer_window(const arch_hparams *hp, bool no_swa, int32_t l) {
    if (hp->arch == ARCH_GPTNEO) return hp->local_layers[l / 64] >> (l % 64) & 1 ? hp->local_window : 0;
    return no_swa ? 0 : hp->sliding_window;
}

bool arch_key_visible(const arch_hparams *hp, bool no_swa, int64_t q_pos, int64_t k_pos) {
    if (k_pos > q_pos) return false;
    if (no_swa || hp->sliding_window <= 0) return true;
    return q_pos - k_pos < hp->sliding_window;
}

void arch_sparse_pattern(const arch_hparams *hp, int32_t layer, uint32_t *block, uint32_t *local,
                         uint32_t *stride, uint32_t *step) {
    *block = *local = *stride = *step = 0;
    bool dense = hp->bs_block <= 0 || (hp->bs_dense_every > 0 && (layer + 1) % hp->bs_dense_every == 0);
    if (dense) return;
    *block = (uint32_t)hp->bs_block;
    *local = (uint32_t)hp->bs_local;
    *stride = (uint32_t)hp->bs_stride;
    /* The head sliding step spreads the heads' vertical offsets over the stride. */
    uint32_t s = *stride / (uint32_t)hp->n_head;
    *step = hp->bs_homo ? 0 : s < 1 ? 1 : s;
}

bool arch_sparse_visible(const arch_hparams *hp, int32_t layer, int32_t head, int64_t q_pos,
                         int64_t k_pos) {
    uint32_t block, local, stride, step;
    arch_sparse_pattern(hp, layer, &block, &local, &stride, &step);
    if (k_pos > q_pos) return false;
    if (!block) return true;
    int64_t qb = q_pos / block, kb = k_pos / block;
    return qb - kb < local || (kb + (int64_t)head * step + 1) % stride == 0;
}

phivk_status arch_masked_ids(const gguf_file *f, const arch_hparams *hp, const char *what, int32_t **ids,
                             int32_t *n) {
    *ids = NULL;
    *n = 0;
    char key[128];
    const gguf_kv *kv = gguf_find(f, akey(key, sizeof key, hp->arch_name, "logit_masked_ids"));
    if (!kv) return PHIVK_OK;
    if (kv->type != GGUF_ARRAY || kv->arr_n > (uint64_t)hp->n_vocab)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' is not an array of at most %d token ids", what, key,
                        hp->n_vocab);
    int32_t *out = malloc(sizeof *out * (kv->arr_n ? kv->arr_n : 1));
    if (!out) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the masked token ids");
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        int64_t v;
        if (!gguf_arr_i64(kv, i, &v) || v < 0 || v >= hp->n_vocab) {
            free(out);
            return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: key '%s' entry %llu is not a token id (0..%d)", what, key,
                            (unsigned long long)i, hp->n_vocab - 1);
        }
        out[i] = (int32_t)v;
    }
    *ids = out;
    *n = (int32_t)kv->arr_n;
    return PHIVK_OK;
}

void arch_phi3small_masked_ids(int32_t *out) {
    int n = 0;
    for (int32_t id = 100256; id < 100352; id++)
        if (id != 100257 && id != 100261 && id != 100262 && id != 100263 && id != 100266) out[n++] = id;
}
