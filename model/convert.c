/* phivk_convert: Hugging Face folders and llama2.c checkpoints to GGUF.
 *
 * A source is read into a list of output tensors (GGUF name, shape, where its rows
 * come from) plus the hyperparameters; a gguf_writer lays the file out, and each
 * tensor is then read row by row as float and quantized in place into the image. The keys, names and layouts are
 * those of llama.cpp's convert_hf_to_gguf.py (Phi2Model, Phi3MiniModel, LlamaModel)
 * and convert-llama2c-to-ggml (phi-spec 4.2, llama2c.md), so the files run there too;
 * GPT-Neo, which llama.cpp lacks, gets phivk's own keys (docs/gguf-keys.md).
 * Phi-3-small, which llama.cpp does not run either, gets phivk's own keys too
 * (docs/gguf-keys.md, docs/spec/phi3-small.md): its fused QKV rows, grouped per KV head
 * in the checkpoint, are written as [all Q | all K | all V], and its interleaved GEGELU
 * up_proj rows as [gelu half | linear half]. A row permutation at convert costs
 * nothing (quant blocks run along rows) and lets the kernels phi3 already uses
 * (the QKV split, the cache write, the [gate | up] activations) read them as they are.
 * Every tensor of a checkpoint must be one the architecture's table names, or a
 * known non-weight buffer (rotary inv_freq, attention masks), which is ignored. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "convert_vocab.h"
#include "file_text.h"
#include "gguf.h"
#include "phivk.h"
#include "quant.h"
#include "safetensors.h"
#include "synth.h"
#include "tok.h"

/* ------------------------------------------------------------- the types */

typedef struct out_type {
    const char *name;
    pvk_type type;
    uint32_t file_type; /* general.file_type (llama_ftype) */
    bool q4_k_m;        /* llama.cpp's per-tensor mix on top of type */
} out_type;

static const out_type out_types[] = {
    {"f32", PVK_F32, 0, false},   {"f16", PVK_F16, 1, false},   {"bf16", PVK_BF16, 32, false},
    {"q8_0", PVK_Q8_0, 7, false}, {"q4_0", PVK_Q4_0, 2, false}, {"q4_1", PVK_Q4_1, 3, false},
    {"q5_0", PVK_Q5_0, 8, false}, {"q5_1", PVK_Q5_1, 9, false}, {"q4_k", PVK_Q4_K, 14, false},
    {"q5_k", PVK_Q5_K, 16, false}, {"q6_k", PVK_Q6_K, 18, false}, {"q4_k_m", PVK_Q4_K, 15, true},
};
#define N_OUT_TYPES (sizeof out_types / sizeof out_types[0])

const char *const *phivk_convert_types(void) {
    static const char *names[N_OUT_TYPES + 1];
    for (size_t i = 0; i < N_OUT_TYPES; i++) names[i] = out_types[i].name;
    return names;
}

phivk_convert_params phivk_convert_default_params(void) {
    return (phivk_convert_params){.type = "f16"};
}

/* ------------------------------------------------------- the model read */

typedef enum kind { K_PHI2, K_PHI3, K_LLAMA, K_GPTNEO, K_PHI3S } kind;

/* Phi-3-small's vocabulary: cl100k_base's ranks and 96 special tokens
 * (docs/spec/phi3-small.md 18). */
#define PHI3S_VOCAB 100352

typedef struct hparams {
    int64_t vocab, embd, layers, heads, heads_kv, ff, ctx, orig_ctx, rot, swa;
    double eps, theta;
    bool has_theta;
    double attn_factor;      /* phi3 LongRoPE; 0: none */
    int64_t window;          /* gptneo: the local window */
    bool untied;             /* gptneo, phi3small: tie_word_embeddings false (the default is true) */
    /* phi3small (docs/gguf-keys.md) */
    double attn_factor_short, embd_scale, attn_scale, logit_divisor, gegelu_limit, pos_scale;
    int64_t dense_every, bs_block, bs_local, bs_stride;
    bool bs_homo;
} hparams;

typedef struct otensor {
    char name[64];
    int64_t cols, rows;      /* ne0, ne1; rows 0: a 1-D tensor */
    const safet_tensor *st;  /* a safetensors source, or */
    const uint8_t *raw;      /* little-endian float32 (llama2.c, rope factors) */
    int64_t permute_heads;   /* > 0: HF rotate-half rows of that many heads (llama q/k) */
    int64_t group_q;         /* > 0: Phi-3-small's QKV rows grouped per KV head, group_q
                                query heads per group (of head_dim rows each) */
    bool halves;             /* interleaved rows (even, odd) as [even half | odd half] */
    int32_t layer;           /* -1 outside the blocks */
} otensor;

typedef struct conv {
    const char *src;
    kind kind;
    hparams hp;
    otensor *t;
    int n_t, cap_t;
    safet_set *st;
    cvocab *vocab;
    void *map;               /* llama2.c mapping */
    size_t map_size;
    float *factors;          /* phi3 rope factor tables: long, then short */
    const char **kinds;      /* gptneo: per layer "global" or "local" (static strings) */
    char *config_text;
    char *tiktoken;          /* phi3small: the cl100k_base.tiktoken rank file */
    size_t tiktoken_len;
} conv;

static const char *const arch_names[] = {[K_PHI2] = "phi2", [K_PHI3] = "phi3", [K_LLAMA] = "llama",
                                         [K_GPTNEO] = "gptneo", [K_PHI3S] = "phi3small"};

static void conv_free(conv *c) {
    safet_close(c->st);
    cvocab_destroy(c->vocab);
    if (c->map) munmap(c->map, c->map_size);
    free(c->factors);
    free(c->kinds);
    free(c->config_text);
    free(c->tiktoken);
    free(c->t);
}

static phivk_status push(conv *c, const otensor *t) {
    if (c->n_t == c->cap_t) {
        int nc = c->cap_t ? 2 * c->cap_t : 64;
        otensor *n = realloc(c->t, (size_t)nc * sizeof *n);
        if (!n) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
        c->t = n;
        c->cap_t = nc;
    }
    c->t[c->n_t++] = *t;
    return PHIVK_OK;
}

/* -------------------------------------------------------- Hugging Face */

/* Shapes in the tensor tables, resolved from the hyperparameters. */
typedef enum dim { D_NONE, D_EMBD, D_VOCAB, D_FF, D_FF2, D_KV, D_QKV, D_CTX } dim;
enum { F_LAYER = 1, F_OPTIONAL = 2, F_PERM_Q = 4, F_PERM_K = 8, F_QKV_GROUPS = 16, F_HALVES = 32, F_UNTIED = 64 };

typedef struct tname {
    const char *hf, *gguf;
    dim rows, cols;          /* PyTorch [rows, cols]; rows D_NONE: 1-D of cols */
    unsigned flags;
} tname;

#define L_ "model.layers.%d."
static const tname phi2_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight", D_VOCAB, D_EMBD, 0},
    {L_ "input_layernorm.weight", "blk.%d.attn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "input_layernorm.bias", "blk.%d.attn_norm.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "self_attn.q_proj.weight", "blk.%d.attn_q.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "self_attn.q_proj.bias", "blk.%d.attn_q.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "self_attn.k_proj.weight", "blk.%d.attn_k.weight", D_KV, D_EMBD, F_LAYER},
    {L_ "self_attn.k_proj.bias", "blk.%d.attn_k.bias", D_NONE, D_KV, F_LAYER},
    {L_ "self_attn.v_proj.weight", "blk.%d.attn_v.weight", D_KV, D_EMBD, F_LAYER},
    {L_ "self_attn.v_proj.bias", "blk.%d.attn_v.bias", D_NONE, D_KV, F_LAYER},
    {L_ "self_attn.dense.weight", "blk.%d.attn_output.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "self_attn.dense.bias", "blk.%d.attn_output.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "mlp.fc1.weight", "blk.%d.ffn_up.weight", D_FF, D_EMBD, F_LAYER},
    {L_ "mlp.fc1.bias", "blk.%d.ffn_up.bias", D_NONE, D_FF, F_LAYER},
    {L_ "mlp.fc2.weight", "blk.%d.ffn_down.weight", D_EMBD, D_FF, F_LAYER},
    {L_ "mlp.fc2.bias", "blk.%d.ffn_down.bias", D_NONE, D_EMBD, F_LAYER},
    {"model.final_layernorm.weight", "output_norm.weight", D_NONE, D_EMBD, 0},
    {"model.final_layernorm.bias", "output_norm.bias", D_NONE, D_EMBD, 0},
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD, 0},
    {"lm_head.bias", "output.bias", D_NONE, D_VOCAB, 0},
};
static const tname phi3_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight", D_VOCAB, D_EMBD, 0},
    {L_ "input_layernorm.weight", "blk.%d.attn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "self_attn.qkv_proj.weight", "blk.%d.attn_qkv.weight", D_QKV, D_EMBD, F_LAYER},
    {L_ "self_attn.o_proj.weight", "blk.%d.attn_output.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "mlp.gate_up_proj.weight", "blk.%d.ffn_up.weight", D_FF2, D_EMBD, F_LAYER},
    {L_ "mlp.down_proj.weight", "blk.%d.ffn_down.weight", D_EMBD, D_FF, F_LAYER},
    {"model.norm.weight", "output_norm.weight", D_NONE, D_EMBD, 0},
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD, F_OPTIONAL},
};
static const tname llama_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight", D_VOCAB, D_EMBD, 0},
    {L_ "input_layernorm.weight", "blk.%d.attn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "self_attn.q_proj.weight", "blk.%d.attn_q.weight", D_EMBD, D_EMBD, F_LAYER | F_PERM_Q},
    {L_ "self_attn.k_proj.weight", "blk.%d.attn_k.weight", D_KV, D_EMBD, F_LAYER | F_PERM_K},
    {L_ "self_attn.v_proj.weight", "blk.%d.attn_v.weight", D_KV, D_EMBD, F_LAYER},
    {L_ "self_attn.o_proj.weight", "blk.%d.attn_output.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", D_FF, D_EMBD, F_LAYER},
    {L_ "mlp.up_proj.weight", "blk.%d.ffn_up.weight", D_FF, D_EMBD, F_LAYER},
    {L_ "mlp.down_proj.weight", "blk.%d.ffn_down.weight", D_EMBD, D_FF, F_LAYER},
    {"model.norm.weight", "output_norm.weight", D_NONE, D_EMBD, 0},
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD, F_OPTIONAL},
};
static const tname phi3s_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight", D_VOCAB, D_EMBD, 0},
    {L_ "input_layernorm.weight", "blk.%d.attn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "input_layernorm.bias", "blk.%d.attn_norm.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "self_attn.query_key_value.weight", "blk.%d.attn_qkv.weight", D_QKV, D_EMBD, F_LAYER | F_QKV_GROUPS},
    {L_ "self_attn.query_key_value.bias", "blk.%d.attn_qkv.bias", D_NONE, D_QKV, F_LAYER | F_QKV_GROUPS},
    {L_ "self_attn.dense.weight", "blk.%d.attn_output.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "self_attn.dense.bias", "blk.%d.attn_output.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "post_attention_layernorm.bias", "blk.%d.ffn_norm.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "mlp.up_proj.weight", "blk.%d.ffn_up.weight", D_FF2, D_EMBD, F_LAYER | F_HALVES},
    {L_ "mlp.up_proj.bias", "blk.%d.ffn_up.bias", D_NONE, D_FF2, F_LAYER | F_HALVES},
    {L_ "mlp.down_proj.weight", "blk.%d.ffn_down.weight", D_EMBD, D_FF, F_LAYER},
    {L_ "mlp.down_proj.bias", "blk.%d.ffn_down.bias", D_NONE, D_EMBD, F_LAYER},
    {"model.final_layernorm.weight", "output_norm.weight", D_NONE, D_EMBD, 0},
    {"model.final_layernorm.bias", "output_norm.bias", D_NONE, D_EMBD, 0},
    /* tied to the embedding unless tie_word_embeddings is false (phi3-small.md 2) */
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD, F_OPTIONAL | F_UNTIED},
};
#undef L_
/* nn.Linear [out, in] like the others (not GPT-2's Conv1D): no transposes. */
#define L_ "transformer.h.%d."
static const tname gptneo_names[] = {
    {"transformer.wte.weight", "token_embd.weight", D_VOCAB, D_EMBD, 0},
    {"transformer.wpe.weight", "position_embd.weight", D_CTX, D_EMBD, 0},
    {L_ "ln_1.weight", "blk.%d.attn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "ln_1.bias", "blk.%d.attn_norm.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "attn.attention.q_proj.weight", "blk.%d.attn_q.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "attn.attention.k_proj.weight", "blk.%d.attn_k.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "attn.attention.v_proj.weight", "blk.%d.attn_v.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "attn.attention.out_proj.weight", "blk.%d.attn_output.weight", D_EMBD, D_EMBD, F_LAYER},
    {L_ "attn.attention.out_proj.bias", "blk.%d.attn_output.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "ln_2.weight", "blk.%d.ffn_norm.weight", D_NONE, D_EMBD, F_LAYER},
    {L_ "ln_2.bias", "blk.%d.ffn_norm.bias", D_NONE, D_EMBD, F_LAYER},
    {L_ "mlp.c_fc.weight", "blk.%d.ffn_up.weight", D_FF, D_EMBD, F_LAYER},
    {L_ "mlp.c_fc.bias", "blk.%d.ffn_up.bias", D_NONE, D_FF, F_LAYER},
    {L_ "mlp.c_proj.weight", "blk.%d.ffn_down.weight", D_EMBD, D_FF, F_LAYER},
    {L_ "mlp.c_proj.bias", "blk.%d.ffn_down.bias", D_NONE, D_EMBD, F_LAYER},
    {"transformer.ln_f.weight", "output_norm.weight", D_NONE, D_EMBD, 0},
    {"transformer.ln_f.bias", "output_norm.bias", D_NONE, D_EMBD, 0},
    /* absent in the published checkpoints (tied to wte); kept when a file has it */
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD, F_OPTIONAL},
};
#undef L_

typedef struct hf_arch {
    const char *name;        /* config.json architectures[0] */
    const char *model_type;  /* config.json model_type */
    kind kind;
    const tname *names;
    size_t n_names;
} hf_arch;

static const hf_arch hf_archs[] = {
    {"PhiForCausalLM", "phi", K_PHI2, phi2_names, sizeof phi2_names / sizeof phi2_names[0]},
    {"Phi3ForCausalLM", "phi3", K_PHI3, phi3_names, sizeof phi3_names / sizeof phi3_names[0]},
    {"LlamaForCausalLM", "llama", K_LLAMA, llama_names, sizeof llama_names / sizeof llama_names[0]},
    {"GPTNeoForCausalLM", "gpt_neo", K_GPTNEO, gptneo_names, sizeof gptneo_names / sizeof gptneo_names[0]},
    {"Phi3SmallForCausalLM", "phi3small", K_PHI3S, phi3s_names, sizeof phi3s_names / sizeof phi3s_names[0]},
};
#define N_HF_ARCHS (sizeof hf_archs / sizeof hf_archs[0])

/* Buffers checkpoints carry that are not weights. */
static bool ignored_buffer(const char *name) {
    static const char *const suffixes[] = {".rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias",
                                           ".attention.bias", ".attention.masked_bias"};
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        const size_t s = strlen(suffixes[i]);
        if (n >= s && !strcmp(name + n - s, suffixes[i])) return true;
    }
    return false;
}

static int64_t dim_value(const hparams *hp, dim d) {
    const int64_t kv = hp->embd / hp->heads * hp->heads_kv;
    switch (d) {
    case D_EMBD: return hp->embd;
    case D_VOCAB: return hp->vocab;
    case D_FF: return hp->ff;
    case D_FF2: return 2 * hp->ff;
    case D_KV: return kv;
    case D_QKV: return hp->embd + 2 * kv;
    case D_CTX: return hp->ctx;
    default: return 0;
    }
}

/* A config.json number: a missing required key is named; a present one must be a
 * positive integer (integer) or a finite number. *found (may be NULL) says whether
 * it was there; an absent optional key leaves *out as it was. */
static phivk_status cfg_get(const cJSON *cfg, const char *key, bool required, bool integer, double *out, bool *found) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (found) *found = false;
    if (!j || cJSON_IsNull(j)) {
        if (required) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key '%s'", key);
        return PHIVK_OK;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) ||
        (integer && (j->valuedouble < 1 || j->valuedouble > 1e9 || j->valuedouble != floor(j->valuedouble))))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: '%s' must be a %s", key,
                        integer ? "positive integer" : "number");
    *out = j->valuedouble;
    if (found) *found = true;
    return PHIVK_OK;
}

static phivk_status cfg_int(const cJSON *cfg, const char *key, int64_t *out) {
    double d;
    phivk_status st = cfg_get(cfg, key, true, true, &d, NULL);
    if (!st) *out = (int64_t)d;
    return st;
}

/* A LongRoPE factor table of rot/2 entries into dst. */
static phivk_status read_factors(const cJSON *rs, const char *key, int64_t n, float *dst) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!cJSON_IsArray(a)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'rope_scaling.%s'", key);
    if (cJSON_GetArraySize(a) != n)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: rope_scaling.%s has %d entries, the rotary dimensions need %" PRId64, key,
                        cJSON_GetArraySize(a), n);
    int64_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: rope_scaling.%s[%" PRId64 "] is not a positive number", key, i);
        dst[i] = (float)e->valuedouble;
    }
    return PHIVK_OK;
}

/* Phi-3's rope_scaling: LongRoPE tables and the attention factor (phi-spec 3.1, 3.3). */
static phivk_status read_longrope(conv *c, const cJSON *cfg) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return PHIVK_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'rope_scaling.type'");
    const bool yarn = !strcmp(type->valuestring, "yarn");
    if (!yarn && strcmp(type->valuestring, "su") && strcmp(type->valuestring, "longrope"))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: rope_scaling.type '%s' is not supported (su, longrope, yarn)",
                        type->valuestring);
    const int64_t half = c->hp.rot / 2;
    if (!(c->factors = malloc(2 * (size_t)half * sizeof *c->factors)))
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    phivk_status st = read_factors(rs, "long_factor", half, c->factors);
    if (!st) st = read_factors(rs, "short_factor", half, c->factors + half);
    if (st) return st;
    const double s = (double)c->hp.ctx / (double)c->hp.orig_ctx;
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(rs, "attention_factor");
    c->hp.attn_factor = cJSON_IsNumber(af) ? af->valuedouble
                        : s <= 1.0         ? 1.0
                        : yarn             ? 0.1 * log(s) + 1.0
                                           : sqrt(1.0 + log(s) / log((double)c->hp.orig_ctx));
    static const char *const names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (int i = 0; i < 2 && !st; i++) {
        otensor t = {.cols = half, .raw = (const uint8_t *)(c->factors + i * half), .layer = -1};
        snprintf(t.name, sizeof t.name, "%s", names[i]);
        st = push(c, &t);
    }
    return st;
}


/* An integer key that may go by two names (GPT-Neo's num_layers / num_hidden_layers):
 * one is required; both must agree. */
static phivk_status cfg_int_alias(const cJSON *cfg, const char *key, const char *alias, int64_t *out) {
    double a = 0, b = 0;
    bool fa, fb;
    phivk_status st;
    if ((st = cfg_get(cfg, key, false, true, &a, &fa)) || (st = cfg_get(cfg, alias, false, true, &b, &fb))) return st;
    if (!fa && !fb) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key '%s'", key);
    if (fa && fb && a != b)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: '%s' %" PRId64 " contradicts '%s' %" PRId64, key, (int64_t)a,
                        alias, (int64_t)b);
    *out = (int64_t)(fa ? a : b);
    return PHIVK_OK;
}

static const char neo_local[] = "local", neo_global[] = "global";

/* One attention kind by name into *kind (neo_local or neo_global). */
static phivk_status neo_kind(const cJSON *j, const char *where, const char **kind) {
    if (cJSON_IsString(j) && !strcmp(j->valuestring, neo_local)) *kind = neo_local;
    else if (cJSON_IsString(j) && !strcmp(j->valuestring, neo_global)) *kind = neo_global;
    else return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: %s is not \"global\" or \"local\"", where);
    return PHIVK_OK;
}

/* attention_types ([[pattern, n], ...]: each pattern n times, in order) expanded
 * into c->kinds, checked against num_layers and against attention_layers when
 * the file also has that (gpt-neo.md 1). */
static phivk_status read_neo_layers(conv *c, const cJSON *cfg) {
    const int64_t L = c->hp.layers;
    if (!(c->kinds = calloc((size_t)L, sizeof *c->kinds))) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(cfg, "attention_types");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cfg, "attention_layers");
    if (!cJSON_IsArray(types) && !cJSON_IsArray(layers))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'attention_types'");
    phivk_status st;
    char where[64];
    if (cJSON_IsArray(types)) {
        int64_t n = 0, item = 0;
        for (const cJSON *e = types->child; e; e = e->next, item++) {
            const cJSON *pat = cJSON_GetArrayItem(e, 0), *rep = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsArray(pat) || !cJSON_IsNumber(rep) ||
                rep->valuedouble < 0 || rep->valuedouble != floor(rep->valuedouble) || rep->valuedouble > 1e6)
                return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: attention_types[%" PRId64 "] is not [[kinds...], count]",
                                item);
            for (int r = 0; r < (int)rep->valuedouble; r++)
                for (const cJSON *k = pat->child; k; k = k->next, n++) {
                    snprintf(where, sizeof where, "attention_types[%" PRId64 "]", item);
                    const char *kind;
                    if ((st = neo_kind(k, where, &kind))) return st;
                    if (n < L) c->kinds[n] = kind;
                }
        }
        if (n != L)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: attention_types gives %" PRId64 " layers but num_layers is %"
                            PRId64, n, L);
    }
    if (!cJSON_IsArray(layers)) return PHIVK_OK;
    if (cJSON_GetArraySize(layers) != L)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: attention_layers lists %d layers but num_layers is %" PRId64,
                        cJSON_GetArraySize(layers), L);
    int64_t i = 0;
    for (const cJSON *k = layers->child; k; k = k->next, i++) {
        snprintf(where, sizeof where, "attention_layers[%" PRId64 "]", i);
        const char *kind;
        if ((st = neo_kind(k, where, &kind))) return st;
        if (!cJSON_IsArray(types)) c->kinds[i] = kind;
        else if (kind != c->kinds[i])
            return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: attention_layers[%" PRId64 "] is %s but attention_types "
                            "makes layer %" PRId64 " %s", i, kind, i, c->kinds[i]);
    }
    return PHIVK_OK;
}

/* GPTNeoConfig (gpt-neo.md 1): its own key names, no rotary. */
static phivk_status read_hparams_neo(conv *c, const cJSON *cfg) {
    hparams *hp = &c->hp;
    phivk_status st;
    double d = 50257;
    bool found;
    if ((st = cfg_int(cfg, "hidden_size", &hp->embd)) ||
        (st = cfg_int_alias(cfg, "num_layers", "num_hidden_layers", &hp->layers)) ||
        (st = cfg_int_alias(cfg, "num_heads", "num_attention_heads", &hp->heads)) ||
        (st = cfg_int(cfg, "max_position_embeddings", &hp->ctx)) ||
        (st = cfg_get(cfg, "vocab_size", false, true, &d, NULL)))
        return st;
    hp->vocab = (int64_t)d;
    hp->ff = 4 * hp->embd; /* intermediate_size null */
    if ((st = cfg_get(cfg, "intermediate_size", false, true, &d, &found))) return st;
    if (found) hp->ff = (int64_t)d;
    d = 256;
    if ((st = cfg_get(cfg, "window_size", false, true, &d, NULL))) return st;
    hp->window = (int64_t)d;
    hp->eps = 1e-5;
    if ((st = cfg_get(cfg, "layer_norm_epsilon", false, false, &hp->eps, NULL))) return st;
    if (!(hp->eps > 0)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: 'layer_norm_epsilon' must be positive");
    hp->heads_kv = hp->heads;
    if (hp->embd % hp->heads)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: hidden_size %" PRId64 " is not a multiple of num_heads %" PRId64,
                        hp->embd, hp->heads);
    hp->untied = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings"));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "activation_function");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "gelu_new")))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: activation_function %s is not supported (gelu_new)",
                        cJSON_IsString(act) ? act->valuestring : "(not a string)");
    return read_neo_layers(c, cfg);
}

static phivk_status read_hparams(conv *c, const cJSON *cfg) {
    hparams *hp = &c->hp;
    double d;
    bool found;
    phivk_status st = PHIVK_OK;
    if (c->kind == K_GPTNEO) return read_hparams_neo(c, cfg);
    if ((st = cfg_int(cfg, "hidden_size", &hp->embd)) || (st = cfg_int(cfg, "num_hidden_layers", &hp->layers)) ||
        (st = cfg_int(cfg, "num_attention_heads", &hp->heads)) ||
        (st = cfg_int(cfg, "intermediate_size", &hp->ff)) || (st = cfg_int(cfg, "vocab_size", &hp->vocab)) ||
        (st = cfg_int(cfg, "max_position_embeddings", &hp->ctx)))
        return st;
    hp->heads_kv = hp->heads;
    if ((st = cfg_get(cfg, "num_key_value_heads", false, true, &d, &found))) return st;
    if (found) hp->heads_kv = (int64_t)d;
    if ((st = cfg_get(cfg, c->kind == K_PHI2 ? "layer_norm_eps" : "rms_norm_eps", true, false, &hp->eps, NULL)))
        return st;
    if ((st = cfg_get(cfg, "rope_theta", c->kind == K_PHI3, false, &hp->theta, &hp->has_theta))) return st;
    if (hp->embd % hp->heads)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: hidden_size %" PRId64 " is not a multiple of num_attention_heads %" PRId64,
                        hp->embd, hp->heads);
    if (hp->heads % hp->heads_kv)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: num_attention_heads %" PRId64 " is not a multiple of num_key_value_heads %" PRId64,
                        hp->heads, hp->heads_kv);
    const int64_t head_dim = hp->embd / hp->heads;
    if (!(st = cfg_get(cfg, "head_dim", false, true, &d, &found)) && found && (int64_t)d != head_dim)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: head_dim %" PRId64 " contradicts hidden_size / num_attention_heads = %" PRId64,
                        (int64_t)d, head_dim);
    /* convert_hf_to_gguf: int(partial_rotary_factor * n_embd) // n_head */
    double partial = 1.0;
    if ((st = cfg_get(cfg, "partial_rotary_factor", c->kind == K_PHI2, false, &partial, NULL))) return st;
    hp->rot = (int64_t)(partial * (double)hp->embd) / hp->heads;
    if (hp->rot < 2 || hp->rot > head_dim || hp->rot % 2)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: partial_rotary_factor %g gives %" PRId64 " rotary dimensions of a %" PRId64
                        "-wide head (need an even number from 2 to the head size)",
                        partial, hp->rot, head_dim);
    if (c->kind != K_PHI3) {
        /* llama.cpp's linear/yarn/llama3 scalings for these would need keys phivk does not run */
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
        if (rs && !cJSON_IsNull(rs))
            return pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: rope_scaling is not supported for %s models",
                            arch_names[c->kind]);
        return PHIVK_OK;
    }
    if ((st = cfg_int(cfg, "original_max_position_embeddings", &hp->orig_ctx))) return st;
    if (hp->orig_ctx > hp->ctx)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: original_max_position_embeddings %" PRId64 " exceeds max_position_embeddings %" PRId64,
                        hp->orig_ctx, hp->ctx);
    if ((st = cfg_get(cfg, "sliding_window", false, true, &d, &found))) return st;
    hp->swa = found ? (int64_t)d : 0;
    return read_longrope(c, cfg);
}

/* An optional config.json boolean; absent or null: def. */
static phivk_status cfg_bool(const cJSON *cfg, const char *key, bool def, bool *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = def;
    if (!j || cJSON_IsNull(j)) return PHIVK_OK;
    if (!cJSON_IsBool(j)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: '%s' must be true or false", key);
    *out = cJSON_IsTrue(j);
    return PHIVK_OK;
}

/* An optional config.json count that may be 0 (absent or null: 0). */
static phivk_status cfg_count(const cJSON *cfg, const char *key, int64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = 0;
    if (!j || cJSON_IsNull(j)) return PHIVK_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 1e9 || j->valuedouble != floor(j->valuedouble))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: '%s' must be a whole number, 0 or more", key);
    *out = (int64_t)j->valuedouble;
    return PHIVK_OK;
}

/* Phi-3-small's rope_scaling: LongRoPE over the whole head, with its own mscale
 * rules (phi3-small.md 8): long_mscale if given, else the Phi-3 formula; short
 * short_mscale if given, else 1. */
static phivk_status read_longrope_phi3s(conv *c, const cJSON *cfg) {
    hparams *hp = &c->hp;
    hp->orig_ctx = hp->ctx;
    hp->attn_factor = 0;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return PHIVK_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'rope_scaling.type'");
    if (strcmp(type->valuestring, "su") && strcmp(type->valuestring, "longrope"))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: rope_scaling.type '%s' is not supported for "
                        "Phi-3-small (su, longrope)", type->valuestring);
    /* the key inside rope_scaling first, then the top-level one */
    double o;
    bool found;
    phivk_status st = cfg_get(rs, "original_max_position_embeddings", false, true, &o, &found);
    if (!st && !found) st = cfg_get(cfg, "original_max_position_embeddings", false, true, &o, &found);
    if (st) return st;
    if (!found) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'rope_scaling.original_max_position_embeddings'");
    hp->orig_ctx = (int64_t)o;
    if (hp->orig_ctx > hp->ctx)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: original_max_position_embeddings %" PRId64 " exceeds max_position_embeddings %" PRId64,
                        hp->orig_ctx, hp->ctx);
    const int64_t half = hp->rot / 2;
    if (!(c->factors = malloc(2 * (size_t)half * sizeof *c->factors)))
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    if ((st = read_factors(rs, "long_factor", half, c->factors)) ||
        (st = read_factors(rs, "short_factor", half, c->factors + half)))
        return st;
    const double s = (double)hp->ctx / (double)hp->orig_ctx;
    double lm = 0, sm = 0;
    if ((st = cfg_get(rs, "long_mscale", false, false, &lm, NULL)) ||
        (st = cfg_get(rs, "short_mscale", false, false, &sm, NULL)))
        return st;
    hp->attn_factor = lm > 0 ? lm : s <= 1.0 ? 1.0 : sqrt(1.0 + log(s) / log((double)hp->orig_ctx));
    hp->attn_factor_short = sm > 0 ? sm : 1.0;
    static const char *const names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (int i = 0; i < 2 && !st; i++) {
        otensor t = {.cols = half, .raw = (const uint8_t *)(c->factors + i * half), .layer = -1};
        snprintf(t.name, sizeof t.name, "%s", names[i]);
        st = push(c, &t);
    }
    return st;
}

/* Phi-3-small's config.json (phi3-small.md 1): muP multipliers, GEGELU, the
 * block-sparse pattern, LongRoPE for 128K. */
static phivk_status read_hparams_phi3s(conv *c, const cJSON *cfg) {
    hparams *hp = &c->hp;
    double d;
    bool found, mup;
    phivk_status st;
    if ((st = cfg_int(cfg, "hidden_size", &hp->embd)) || (st = cfg_int(cfg, "num_hidden_layers", &hp->layers)) ||
        (st = cfg_int(cfg, "num_attention_heads", &hp->heads)) ||
        (st = cfg_int(cfg, "num_key_value_heads", &hp->heads_kv)) || (st = cfg_int(cfg, "vocab_size", &hp->vocab)) ||
        (st = cfg_int(cfg, "max_position_embeddings", &hp->ctx)) ||
        (st = cfg_get(cfg, "layer_norm_epsilon", true, false, &hp->eps, NULL)) ||
        (st = cfg_get(cfg, "rope_embedding_base", true, false, &hp->theta, NULL)) ||
        (st = cfg_int(cfg, "blocksparse_block_size", &hp->bs_block)) ||
        (st = cfg_int(cfg, "blocksparse_num_local_blocks", &hp->bs_local)) ||
        (st = cfg_int(cfg, "blocksparse_vert_stride", &hp->bs_stride)) ||
        (st = cfg_count(cfg, "dense_attention_every_n_layers", &hp->dense_every)) ||
        (st = cfg_bool(cfg, "blocksparse_homo_head_pattern", false, &hp->bs_homo)) ||
        (st = cfg_bool(cfg, "mup_use_scaling", true, &mup)) ||
        (st = cfg_bool(cfg, "tie_word_embeddings", true, &hp->untied)))
        return st;
    hp->untied = !hp->untied;
    hp->has_theta = true;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (!cJSON_IsString(act)) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'hidden_act'");
    if (strcmp(act->valuestring, "gegelu"))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not supported for Phi-3-small (gegelu)",
                        act->valuestring);
    if (hp->embd % hp->heads || hp->heads % hp->heads_kv)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "config.json: hidden_size %" PRId64 ", num_attention_heads %" PRId64 " and num_key_value_heads %"
                        PRId64 " do not divide evenly", hp->embd, hp->heads, hp->heads_kv);
    if (hp->vocab != PHI3S_VOCAB)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: vocab_size %" PRId64 ", but Phi-3-small's tiktoken vocabulary "
                        "(cl100k_base and its special tokens) has %d", hp->vocab, PHI3S_VOCAB);
    const int64_t head_dim = hp->embd / hp->heads;
    hp->rot = head_dim;
    /* ff_intermediate_size, or from ff_dim_multiplier (rounded up to 256 when asked) */
    if ((st = cfg_get(cfg, "ff_intermediate_size", false, true, &d, &found))) return st;
    if (found) {
        hp->ff = (int64_t)d;
    } else {
        bool pad;
        if ((st = cfg_get(cfg, "ff_dim_multiplier", true, false, &d, NULL)) ||
            (st = cfg_bool(cfg, "gegelu_pad_to_256", false, &pad)))
            return st;
        hp->ff = (int64_t)(d * (double)(hp->embd / 3)) * 2;
        if (pad) hp->ff = (hp->ff + 255) / 256 * 256;
        if (hp->ff < 1) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: ff_dim_multiplier %g gives no MLP", d);
    }
    /* muP: each multiplier applies when present and positive */
    double emb = 0, width = 0, attn = 1, limit = 0;
    if ((st = cfg_get(cfg, "mup_embedding_multiplier", false, false, &emb, NULL)) ||
        (st = cfg_get(cfg, "mup_width_multiplier", false, false, &width, NULL)) ||
        (st = cfg_get(cfg, "mup_attn_multiplier", false, false, &attn, NULL)) ||
        (st = cfg_get(cfg, "gegelu_limit", false, false, &limit, NULL)))
        return st;
    hp->embd_scale = emb > 0 ? emb : 1.0;
    hp->logit_divisor = width > 0 ? width : 1.0;
    hp->attn_scale = mup ? attn / (double)head_dim : 1.0 / sqrt((double)head_dim);
    if (!(hp->attn_scale > 0))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: mup_attn_multiplier %g must be positive", attn);
    if (limit < 0) return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: gegelu_limit %g must not be negative", limit);
    hp->gegelu_limit = limit;
    hp->pos_scale = 1.0;
    if ((st = cfg_get(cfg, "rope_position_scale", false, false, &hp->pos_scale, NULL))) return st;
    if (!(hp->pos_scale > 0))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: rope_position_scale %g must be positive", hp->pos_scale);
    hp->attn_factor_short = 1.0;
    return read_longrope_phi3s(c, cfg);
}

/* Checks the checkpoint tensor for table entry e (layer l) and queues it. */
static phivk_status map_tensor(conv *c, const tname *e, int l, bool *used) {
    char hf[128], gg[64];
    snprintf(hf, sizeof hf, e->hf, l);
    snprintf(gg, sizeof gg, e->gguf, l);
    const safet_tensor *t = safet_find(c->st, hf);
    if (!t) {
        if (e->flags & F_OPTIONAL) return PHIVK_OK;
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' is missing", c->src, hf);
    }
    used[t - safet_at(c->st, 0)] = true;
    if ((e->flags & F_UNTIED) && !c->hp.untied) return PHIVK_OK; /* the tied head is the embedding */
    const int64_t rows = dim_value(&c->hp, e->rows), cols = dim_value(&c->hp, e->cols);
    const bool ok = e->rows == D_NONE ? t->n_dims == 1 && t->shape[0] == cols
                                      : t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!ok) {
        char have[96] = "";
        for (int d = 0; d < t->n_dims; d++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%" PRId64, d ? ", " : "", t->shape[d]);
        char want[48];
        if (e->rows == D_NONE) snprintf(want, sizeof want, "%" PRId64, cols);
        else snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, rows, cols);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' has shape [%s], config.json makes it [%s]", c->src, hf, have,
                        want);
    }
    if (t->dtype != SAFET_F32 && t->dtype != SAFET_F16 && t->dtype != SAFET_BF16)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; phivk converts F32, F16 and BF16 weights",
                        t->file, hf, safet_dtype_name(t->dtype));
    otensor o = {.cols = cols, .rows = e->rows == D_NONE ? 0 : rows, .st = t, .layer = e->flags & F_LAYER ? l : -1};
    snprintf(o.name, sizeof o.name, "%s", gg);
    if (e->flags & F_PERM_Q) o.permute_heads = c->hp.heads;
    if (e->flags & F_PERM_K) o.permute_heads = c->hp.heads_kv;
    if (e->flags & F_QKV_GROUPS) o.group_q = c->hp.heads / c->hp.heads_kv;
    o.halves = (e->flags & F_HALVES) != 0;
    return push(c, &o);
}

static phivk_status map_tensors(conv *c, const hf_arch *a) {
    bool *used = calloc((size_t)safet_count(c->st) + 1, 1);
    if (!used) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    phivk_status st = PHIVK_OK;
    /* file order: the entries before the blocks, the blocks layer by layer, the rest */
    for (size_t i = 0; i < a->n_names && !st; i++) {
        if (!(a->names[i].flags & F_LAYER)) {
            st = map_tensor(c, &a->names[i], -1, used);
            continue;
        }
        size_t end = i;
        while (end < a->n_names && (a->names[end].flags & F_LAYER)) end++;
        for (int l = 0; l < c->hp.layers && !st; l++)
            for (size_t j = i; j < end && !st; j++) st = map_tensor(c, &a->names[j], l, used);
        i = end - 1;
    }
    for (int64_t i = 0; i < safet_count(c->st) && !st; i++)
        if (!used[i] && !ignored_buffer(safet_at(c->st, i)->name))
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: tensor '%s' is not part of a %s model", safet_at(c->st, i)->file,
                          safet_at(c->st, i)->name, a->name);
    free(used);
    return st;
}

static phivk_status load_hf(conv *c, const char *dir, const char *tokenizer) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    phivk_status st = file_read_text(path, &c->config_text, NULL);
    if (st) return st;
    cJSON *cfg = cJSON_Parse(c->config_text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: not a JSON object", path);
    }
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *name = cJSON_IsArray(archs) ? archs->child : NULL;
    const hf_arch *a = NULL;
    char supported[160] = "";
    for (size_t i = 0; i < N_HF_ARCHS; i++) {
        snprintf(supported + strlen(supported), sizeof supported - strlen(supported), "%s%s", i ? ", " : "",
                 hf_archs[i].name);
        if (cJSON_IsString(name) && !strcmp(name->valuestring, hf_archs[i].name)) a = &hf_archs[i];
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(name))
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: missing key 'architectures'");
    else if (!a)
        st = pvk_fail(PHIVK_ERR_UNSUPPORTED, "config.json: architecture '%s' is not supported (phivk converts %s)",
                      name->valuestring, supported);
    else if (cJSON_IsString(mt) && strcmp(mt->valuestring, a->model_type))
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "config.json: architectures says %s but model_type says '%s' (not '%s')",
                      a->name, mt->valuestring, a->model_type);
    if (!st) {
        c->kind = a->kind;
        st = a->kind == K_PHI3S ? read_hparams_phi3s(c, cfg) : read_hparams(c, cfg);
    }
    cJSON_Delete(cfg);
    if (!st) st = safet_open_dir(dir, &c->st);
    if (!st) st = map_tensors(c, a);
    bool has_output = false;
    for (int i = 0; i < c->n_t; i++) has_output |= !strcmp(c->t[i].name, "output.weight");
    if (!st && c->hp.untied && !has_output)
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: config.json says tie_word_embeddings false but there is no "
                      "'lm_head.weight'", dir);
    if (!st && c->kind == K_PHI3S) {
        /* the rank file in the folder (or --tokenizer's folder, or --tokenizer itself) */
        const char *from = tokenizer ? tokenizer : dir;
        struct stat sb;
        if (!stat(from, &sb) && S_ISDIR(sb.st_mode)) snprintf(path, sizeof path, "%s/cl100k_base.tiktoken", from);
        else snprintf(path, sizeof path, "%s", from);
        return file_read_text(path, &c->tiktoken, &c->tiktoken_len);
    }
    if (!st)
        st = cvocab_read_hf(tokenizer ? tokenizer : dir, (int32_t)c->hp.vocab, c->config_text,
                            c->kind == K_PHI2 ? "phi-2" : "gpt-2", &c->vocab);
    /* as Phi2Model writes; GPT-Neo's tokenizer adds no BOS either (gpt-neo.md 4) */
    if (!st && (c->kind == K_PHI2 || c->kind == K_GPTNEO)) cvocab_set_add_bos(c->vocab, false);
    return st;
}

/* ------------------------------------------------------------- llama2.c */

#define LLAMA2C_MAGIC 0x616b3432u

/* The float arrays of a checkpoint, in the order of the v0 file. */
enum seg { S_EMB, S_ATT, S_WQ, S_WK, S_WV, S_WO, S_FFN, S_W1, S_W2, S_W3, S_FINAL, S_FREQ, S_CLS, S_N };

static phivk_status load_llama2c(conv *c, const char *path, const char *tokenizer) {
    if (!tokenizer)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: a llama2.c checkpoint needs its tokenizer (--tokenizer tokenizer.bin)", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pvk_fail(PHIVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || sb.st_size < 28) {
        close(fd);
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: too short for a llama2.c checkpoint", path);
    }
    c->map_size = (size_t)sb.st_size;
    c->map = mmap(NULL, c->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        return pvk_fail(PHIVK_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    }
    const uint8_t *b = c->map;
    if (!memcmp(b, "GGUF", 4)) return pvk_fail(PHIVK_ERR_INVALID, "%s is already a GGUF file", path);
    int32_t h[9] = {0};
    memcpy(h, b, sizeof h < c->map_size ? sizeof h : 28);
    size_t data = 28, cfg = 0;
    bool shared;
    if ((uint32_t)h[0] == LLAMA2C_MAGIC) {
        if (h[1] != 1)
            return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: llama2.c export version %d is not supported (versions 0 and 1 are)",
                            path, (int)h[1]);
        if (c->map_size < 256) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: too short for a llama2.c v1 header", path);
        data = 256;
        cfg = 2;
        shared = b[36] != 0;
    } else {
        shared = h[5] > 0;
    }
    const int64_t D = h[cfg], F = h[cfg + 1], L = h[cfg + 2], H = h[cfg + 3], KVH = h[cfg + 4],
                  V = h[cfg + 5] < 0 ? -(int64_t)h[cfg + 5] : h[cfg + 5], S = h[cfg + 6];
    if (D <= 0 || F <= 0 || L <= 0 || H <= 0 || KVH <= 0 || V <= 0 || S <= 0 || D % H || H % KVH || (D / H) % 2)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: not a llama2.c checkpoint (header dim %" PRId64 ", hidden_dim %" PRId64 ", layers %" PRId64
                        ", heads %" PRId64 "/%" PRId64 ", vocab %" PRId64 ", seq_len %" PRId64 ")",
                        path, D, F, L, H, KVH, V, S);
    const int64_t KV = D / H * KVH;
    const int64_t n[S_N] = {
        [S_EMB] = V * D, [S_ATT] = L * D, [S_WQ] = L * D * D, [S_WK] = L * KV * D, [S_WV] = L * KV * D,
        [S_WO] = L * D * D, [S_FFN] = L * D, [S_W1] = L * F * D, [S_W2] = L * D * F, [S_W3] = L * F * D,
        [S_FINAL] = D, [S_FREQ] = data == 28 ? S * (D / H) : 0, [S_CLS] = shared ? 0 : V * D,
    };
    static const enum seg v0[S_N] = {S_EMB, S_ATT, S_WQ, S_WK, S_WV, S_WO, S_FFN,
                                     S_W1, S_W2, S_W3, S_FINAL, S_FREQ, S_CLS};
    static const enum seg v1[S_N] = {S_ATT, S_FFN, S_FINAL, S_EMB, S_WQ, S_WK, S_WV,
                                     S_WO, S_W1, S_W2, S_W3, S_FREQ, S_CLS};
    const enum seg *order = data == 28 ? v0 : v1;
    uint64_t off[S_N], at = data;
    bool overflow = false;
    for (int i = 0; i < S_N; i++) {
        off[order[i]] = at;
        overflow |= (uint64_t)n[order[i]] > UINT64_MAX / 8 || __builtin_add_overflow(at, 4 * (uint64_t)n[order[i]], &at);
    }
    if (overflow || at != c->map_size)
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "%s: a llama2.c v%d checkpoint with dim %" PRId64 ", hidden_dim %" PRId64 ", %" PRId64
                        " layers, %" PRId64 "/%" PRId64 " heads, vocab %" PRId64 " (%s classifier), seq_len %" PRId64
                        " is %" PRIu64 " bytes, the file is %zu",
                        path, data == 28 ? 0 : 1, D, F, L, H, KVH, V, shared ? "shared" : "separate", S, at, c->map_size);
    c->kind = K_LLAMA;
    c->hp = (hparams){.vocab = V, .embd = D, .layers = L, .heads = H, .heads_kv = KVH, .ff = F, .ctx = S,
                      .rot = D / H, .eps = 1e-5, .theta = 10000, .has_theta = true}; /* run.c's constants */
    /* convert-llama2c-to-ggml's names; it always writes output.weight */
    struct {
        const char *name;
        enum seg s;
        int64_t cols, rows; /* rows 0: 1-D */
    } const map[] = {
        {"blk.%d.attn_norm.weight", S_ATT, D, 0},  {"blk.%d.attn_q.weight", S_WQ, D, D},
        {"blk.%d.attn_k.weight", S_WK, D, KV},     {"blk.%d.attn_v.weight", S_WV, D, KV},
        {"blk.%d.attn_output.weight", S_WO, D, D}, {"blk.%d.ffn_norm.weight", S_FFN, D, 0},
        {"blk.%d.ffn_gate.weight", S_W1, D, F},    {"blk.%d.ffn_down.weight", S_W2, F, D},
        {"blk.%d.ffn_up.weight", S_W3, D, F},
    };
    otensor t = {.cols = D, .rows = V, .raw = b + off[S_EMB], .layer = -1};
    strcpy(t.name, "token_embd.weight");
    phivk_status st = push(c, &t);
    for (int64_t l = 0; l < L && !st; l++)
        for (size_t i = 0; i < sizeof map / sizeof map[0] && !st; i++) {
            const int64_t per = map[i].cols * (map[i].rows ? map[i].rows : 1);
            t = (otensor){.cols = map[i].cols, .rows = map[i].rows, .raw = b + off[map[i].s] + 4 * (uint64_t)(l * per),
                          .layer = (int32_t)l};
            snprintf(t.name, sizeof t.name, map[i].name, (int)l);
            st = push(c, &t);
        }
    t = (otensor){.cols = D, .raw = b + off[S_FINAL], .layer = -1};
    strcpy(t.name, "output_norm.weight");
    if (!st) st = push(c, &t);
    t = (otensor){.cols = D, .rows = V, .raw = b + off[shared ? S_EMB : S_CLS], .layer = -1};
    strcpy(t.name, "output.weight");
    if (!st) st = push(c, &t);
    if (!st) st = cvocab_read_llama2c(tokenizer, (int32_t)V, &c->vocab);
    return st;
}

/* ------------------------------------------------------------- writing */

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every
 * third one between. */
static bool more_bits(int32_t l, int64_t n) { return l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2; }

static bool has_suffix(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The type tensor t is stored in: 1-D tensors stay F32; Q4_K_M is llama-quant.cpp's
 * mix (output, or the embedding when it doubles as output: Q6_K; attn_qkv: Q5_K;
 * attn_v and ffn_down: Q6_K on more_bits layers); then the fallback for rows the
 * block does not divide (synth_legal_type). */
static pvk_type tensor_type(const conv *c, const otensor *t, const out_type *ot, bool has_output) {
    if (!t->rows) return PVK_F32;
    pvk_type ty = ot->type;
    if (ot->q4_k_m) {
        if (!strcmp(t->name, "output.weight") || (!has_output && !strcmp(t->name, "token_embd.weight")))
            ty = PVK_Q6_K;
        else if (has_suffix(t->name, ".attn_qkv.weight"))
            ty = PVK_Q5_K;
        else if ((has_suffix(t->name, ".attn_v.weight") || has_suffix(t->name, ".ffn_down.weight")) &&
                 more_bits(t->layer, c->hp.layers))
            ty = PVK_Q6_K;
    }
    return synth_legal_type(ty, t->cols);
}

/* Row r of t as float into dst. HF Llama q/k rows are in rotate-half order per head
 * (i, j) = (half, index); GGUF llama wants adjacent pairs: row (j, i) of the head
 * (convert_hf_to_gguf LlamaModel.permute). */
/* Phi-3-small: where output row (or bias entry) r of [Q | K | V] or [even | odd]
 * comes from in the checkpoint's layout (docs/spec/phi3-small.md 6 and 14). */
static int64_t phi3s_source(const otensor *t, const hparams *hp, int64_t r) {
    const int64_t n = t->rows ? t->rows : t->cols;
    if (t->halves) return r < n / 2 ? 2 * r : 2 * (r - n / 2) + 1;
    const int64_t d = hp->embd / hp->heads, m = t->group_q, q = hp->heads * d, kv = hp->heads_kv * d;
    const int64_t group = (m + 2) * d;
    if (r < q) return r / (m * d) * group + r % (m * d);           /* query head r/d = g*m + j */
    if (r < q + kv) return (r - q) / d * group + m * d + (r - q) % d; /* key head g */
    return (r - q - kv) / d * group + (m + 1) * d + (r - q - kv) % d; /* value head g */
}

static phivk_status read_row(const otensor *t, const hparams *hp, int64_t r, float *dst) {
    int64_t src = r;
    if (t->permute_heads) {
        const int64_t hd = t->rows / t->permute_heads, in_head = r % hd;
        src = r - in_head + (in_head % 2) * (hd / 2) + in_head / 2;
    }
    if (t->group_q || t->halves) {
        if (t->rows) {
            src = phi3s_source(t, hp, r);
        } else { /* a bias: its entries move like the rows */
            phivk_status st = PHIVK_OK;
            for (int64_t i = 0; i < t->cols && !st; i++) st = safet_read_f32(t->st, phi3s_source(t, hp, i), 1, dst + i);
            return st;
        }
    }
    if (t->st) return safet_read_f32(t->st, src * t->cols, t->cols, dst);
    memcpy(dst, t->raw + 4 * (uint64_t)(src * t->cols), 4 * (size_t)t->cols);
    return PHIVK_OK;
}

static void write_hparams(const conv *c, gguf_writer *w, const out_type *ot) {
    const hparams *hp = &c->hp;
    const char *arch = arch_names[c->kind];
    char key[96], name[256];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    /* general.name: the source's file or folder name */
    size_t len = strlen(c->src);
    while (len > 1 && c->src[len - 1] == '/') len--;
    const char *base = c->src + len;
    while (base > c->src && base[-1] != '/') base--;
    snprintf(name, sizeof name, "%.*s", (int)(c->src + len - base), base);
    if (c->map && has_suffix(name, ".bin")) name[strlen(name) - 4] = 0;
    gguf_writer_set_str(w, "general.architecture", arch);
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "general.file_type", ot->file_type);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)hp->ctx);
    gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)hp->embd);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->ff);
    gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)hp->layers);
    gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->heads);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->heads_kv);
    if (c->kind == K_GPTNEO) {
        gguf_writer_set_arr_str(w, KEY("attention.layer_types"), c->kinds, (uint64_t)hp->layers);
        gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)hp->window);
        gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), (float)hp->eps);
        return;
    }
    gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->rot);
    gguf_writer_set_f32(w, KEY(c->kind == K_PHI2 || c->kind == K_PHI3S ? "attention.layer_norm_epsilon"
                                                                        : "attention.layer_norm_rms_epsilon"),
                        (float)hp->eps);
    if (hp->has_theta) gguf_writer_set_f32(w, KEY("rope.freq_base"), (float)hp->theta);
    if (c->kind == K_LLAMA) gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)hp->vocab);
    if (c->kind == K_PHI3) {
        gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->orig_ctx);
        gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)hp->swa);
        if (c->factors) gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), (float)hp->attn_factor);
    }
    if (c->kind == K_PHI3S) {
        /* docs/gguf-keys.md "Phi-3-small" */
        gguf_writer_set_f32(w, KEY("embedding_scale"), (float)hp->embd_scale);
        gguf_writer_set_f32(w, KEY("attention.scale"), (float)hp->attn_scale);
        gguf_writer_set_f32(w, KEY("logit_divisor"), (float)hp->logit_divisor);
        gguf_writer_set_f32(w, KEY("gegelu_limit"), (float)hp->gegelu_limit);
        gguf_writer_set_u32(w, KEY("attention.dense_every_n_layers"), (uint32_t)hp->dense_every);
        gguf_writer_set_u32(w, KEY("attention.blocksparse.block_size"), (uint32_t)hp->bs_block);
        gguf_writer_set_u32(w, KEY("attention.blocksparse.local_blocks"), (uint32_t)hp->bs_local);
        gguf_writer_set_u32(w, KEY("attention.blocksparse.vert_stride"), (uint32_t)hp->bs_stride);
        gguf_writer_set_bool(w, KEY("attention.blocksparse.homo_head_pattern"), hp->bs_homo);
        int32_t masked[ARCH_PHI3SMALL_N_MASKED]; /* spec 15 */
        arch_phi3small_masked_ids(masked);
        gguf_writer_set_arr(w, KEY("logit_masked_ids"), GGUF_I32, masked, ARCH_PHI3SMALL_N_MASKED);
        if (hp->pos_scale != 1.0 && !c->factors) {
            /* positions times the scale: linear scaling by its inverse */
            gguf_writer_set_str(w, KEY("rope.scaling.type"), "linear");
            gguf_writer_set_f32(w, KEY("rope.scaling.factor"), (float)(1.0 / hp->pos_scale));
        }
        if (c->factors) {
            gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->orig_ctx);
            gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), (float)hp->attn_factor);
            gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor_short"), (float)hp->attn_factor_short);
        }
    }
#undef KEY
}

/* Lays the file out with every tensor's type and shape (data left zero), then
 * fills each tensor in place in the image, row by row: a model is held once in
 * memory (the image's untouched pages are not even resident until filled). */
static phivk_status build_image(const conv *c, gguf_writer *w, const out_type *ot, const phivk_convert_params *p,
                              void **data, size_t *size) {
    bool has_output = false;
    int64_t widest = 0;
    for (int i = 0; i < c->n_t; i++) {
        has_output |= !strcmp(c->t[i].name, "output.weight");
        if (c->t[i].cols > widest) widest = c->t[i].cols;
    }
    pvk_type *types = malloc((size_t)c->n_t * sizeof *types);
    float *row = malloc((size_t)widest * sizeof *row);
    phivk_status st = types && row ? PHIVK_OK : pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < c->n_t && !st; i++) {
        const otensor *t = &c->t[i];
        const int64_t ne[2] = {t->cols, t->rows ? t->rows : 1};
        types[i] = tensor_type(c, t, ot, has_output);
        gguf_writer_add_tensor(w, t->name, types[i], t->rows ? 2 : 1, ne, NULL);
    }
    if (!st) st = gguf_writer_build(w, data, size);
    gguf_file *g = NULL;
    if (!st) st = gguf_open_memory(*data, *size, &g);
    for (int i = 0; i < c->n_t && !st; i++) {
        const otensor *t = &c->t[i];
        if (p->progress) p->progress(p->progress_user, t->name, (uint64_t)i, (uint64_t)c->n_t);
        uint8_t *dst = (uint8_t *)*data + gguf_find_tensor(g, t->name)->offset;
        const size_t rb = pvk_type_row_bytes(types[i], t->cols);
        for (int64_t r = 0; r < (t->rows ? t->rows : 1) && !st; r++) {
            st = read_row(t, &c->hp, r, row);
            if (!st) st = quant_quantize_row(types[i], row, dst + (size_t)r * rb, t->cols);
        }
    }
    if (!st && p->progress) p->progress(p->progress_user, "done", (uint64_t)c->n_t, (uint64_t)c->n_t);
    gguf_close(g);
    free(row);
    free(types);
    if (st) {
        free(*data);
        *data = NULL;
        *size = 0;
    }
    return st;
}

static phivk_status convert_image(const char *src, const phivk_convert_params *params, void **data, size_t *size) {
    const phivk_convert_params p = params ? *params : phivk_convert_default_params();
    const char *tname = p.type ? p.type : "f16";
    const out_type *ot = NULL;
    char list[160] = "";
    for (size_t i = 0; i < N_OUT_TYPES; i++) {
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", out_types[i].name);
        if (!strcmp(tname, out_types[i].name)) ot = &out_types[i];
    }
    if (!ot) return pvk_fail(PHIVK_ERR_INVALID, "unknown type '%s' (one of %s)", tname, list);
    if (!src) return pvk_fail(PHIVK_ERR_INVALID, "no source to convert");
    struct stat sb;
    if (stat(src, &sb)) return pvk_fail(PHIVK_ERR_IO, "%s: %s", src, strerror(errno));
    conv c = {.src = src};
    phivk_status st = S_ISDIR(sb.st_mode) ? load_hf(&c, src, p.tokenizer) : load_llama2c(&c, src, p.tokenizer);
    gguf_writer *w = st ? NULL : gguf_writer_create();
    if (!st && !w) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    if (!st) {
        write_hparams(&c, w, ot);
        if (c.tiktoken) st = tok_tiktoken_keys(c.tiktoken, c.tiktoken_len, w);
        else cvocab_write(c.vocab, w);
        if (!st) st = build_image(&c, w, ot, &p, data, size);
    }
    gguf_writer_destroy(w);
    conv_free(&c);
    return st;
}

phivk_status phivk_convert_memory(const char *src, const phivk_convert_params *p, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    return convert_image(src, p, data, size);
}

phivk_status phivk_convert(const char *src, const char *out, const phivk_convert_params *p) {
    if (!out) return pvk_fail(PHIVK_ERR_INVALID, "no output file");
    void *img;
    size_t size;
    phivk_status st = convert_image(src, p, &img, &size);
    if (st) return st;
    /* a temporary file beside out, renamed over it only once complete */
    char *tmp = malloc(strlen(out) + 16);
    int fd = -1;
    if (tmp) {
        sprintf(tmp, "%s.tmp-XXXXXX", out);
        fd = mkstemp(tmp);
    }
    if (fd < 0) {
        st = pvk_fail(PHIVK_ERR_IO, "%s: cannot create a file beside it: %s", out, strerror(errno));
    } else {
        const mode_t mask = umask(0);
        umask(mask);
        size_t done = 0;
        while (done < size) {
            ssize_t n = write(fd, (const char *)img + done, size - done);
            if (n <= 0) break;
            done += (size_t)n;
        }
        const bool ok = done == size && !fchmod(fd, 0666 & ~mask) && !fsync(fd);
        if (close(fd) || !ok || rename(tmp, out)) {
            st = pvk_fail(PHIVK_ERR_IO, "%s: cannot write: %s", out, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(img);
    return st;
}
