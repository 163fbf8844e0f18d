#include "hf_writer.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quant.h"

/* ------------------------------------------------------------ safetensors */

typedef struct st_entry {
    char name[128];
    int n_dims;
    int64_t shape[4];
    float *vals;             /* owned */
    int64_t n;
    const char *dtype;       /* NULL: the file's; else this one (GPT-Neo's U8 masks) */
} st_entry;

static unsigned dtype_size(const char *dtype) {
    return !strcmp(dtype, "F64") ? 8 : !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "U8") ? 1 : 2;
}

static void encode(const char *dtype, const float *v, int64_t n, uint8_t *out) {
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(dtype, "U8")) {
            out[i] = (uint8_t)v[i];
        } else if (!strcmp(dtype, "F32")) {
            memcpy(out + 4 * i, &v[i], 4);
        } else if (!strcmp(dtype, "F64")) {
            double d = v[i];
            memcpy(out + 8 * i, &d, 8);
        } else {
            uint16_t h = !strcmp(dtype, "F16") ? quant_f32_to_f16(v[i]) : quant_f32_to_bf16(v[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    }
}

/* One file: 8-byte header length, the JSON header padded with spaces to 8 bytes,
 * then the tensors back to back. */
static bool write_safetensors(const char *path, const st_entry *e, int n, const char *file_dtype) {
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < n; i++) {
        const char *dtype = e[i].dtype ? e[i].dtype : file_dtype;
        cJSON *t = cJSON_AddObjectToObject(h, e[i].name);
        cJSON_AddStringToObject(t, "dtype", dtype);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e[i].n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        const uint64_t bytes = (uint64_t)e[i].n * dtype_size(dtype);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t hl = strlen(text);
    const size_t padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    ok = ok && fwrite(len, 1, 8, f) == 8 && fwrite(text, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        const char *dtype = e[i].dtype ? e[i].dtype : file_dtype;
        const size_t bytes = (size_t)e[i].n * dtype_size(dtype);
        uint8_t *buf = malloc(bytes);
        encode(dtype, e[i].vals, e[i].n, buf);
        ok = fwrite(buf, 1, bytes, f) == bytes;
        free(buf);
    }
    if (f) ok = (fclose(f) == 0) && ok;
    free(text);
    return ok;
}

/* ------------------------------------------------------------ GGUF helpers */

float *tensor_floats(const gguf_tensor *t, const char *dtype) {
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *v = malloc((size_t)n * sizeof *v);
    if (!v || quant_dequantize_row(t->type, t->data, v, n)) {
        free(v);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(dtype, "F16")) v[i] = quant_f16_to_f32(quant_f32_to_f16(v[i]));
        if (!strcmp(dtype, "BF16")) v[i] = quant_bf16_to_f32(quant_f32_to_bf16(v[i]));
    }
    return v;
}

static uint32_t key_u32(const gguf_file *g, const char *arch, const char *suffix) {
    char key[128];
    uint32_t v = 0;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gguf_get_u32(g, key, &v);
    return v;
}

static float key_f32(const gguf_file *g, const char *arch, const char *suffix) {
    char key[128];
    float v = 0;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gguf_get_f32(g, key, &v);
    return v;
}

static void arch_of(const gguf_file *g, char *arch) {
    gguf_str s = {0};
    gguf_get_str(g, "general.architecture", &s);
    snprintf(arch, 16, "%.*s", (int)s.len, s.ptr);
}

static char *token(const gguf_file *g, int64_t i) {
    static char buf[256];
    gguf_str s;
    gguf_arr_str(g, gguf_find(g, "tokenizer.ggml.tokens"), (uint64_t)i, &s);
    snprintf(buf, sizeof buf, "%.*s", (int)s.len, s.ptr);
    return buf;
}

static int32_t token_type(const gguf_file *g, int64_t i) {
    int64_t t = 0;
    gguf_arr_i64(gguf_find(g, "tokenizer.ggml.token_type"), (uint64_t)i, &t);
    return (int32_t)t;
}

/* ------------------------------------------------------------ HF names */

/* GGUF name -> Hugging Face name: {gguf role, HF role} per architecture. */
static const char *const names_phi2[][2] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.final_layernorm"}, {"output", "lm_head"},
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},           {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.dense"},       {"ffn_up", "mlp.fc1"},
    {"ffn_down", "mlp.fc2"},             {NULL, NULL}};
static const char *const names_phi3[][2] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"},       {"output", "lm_head"},
    {"attn_norm", "input_layernorm"},    {"attn_qkv", "self_attn.qkv_proj"},  {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"}, {"ffn_up", "mlp.gate_up_proj"}, {"ffn_down", "mlp.down_proj"},
    {NULL, NULL}};
static const char *const names_llama[][2] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"},   {"output", "lm_head"},
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},  {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},       {"ffn_down", "mlp.down_proj"},
    {NULL, NULL}};

static const char *const names_phi3s[][2] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.final_layernorm"}, {"output", "lm_head"},
    {"attn_norm", "input_layernorm"},    {"attn_qkv", "self_attn.query_key_value"}, {"attn_output", "self_attn.dense"},
    {"ffn_norm", "post_attention_layernorm"}, {"ffn_up", "mlp.up_proj"},         {"ffn_down", "mlp.down_proj"},
    {NULL, NULL}};

static const char *const names_gptneo[][2] = {
    {"token_embd", "transformer.wte"}, {"position_embd", "transformer.wpe"}, {"output_norm", "transformer.ln_f"},
    {"output", "lm_head"},             {"attn_norm", "ln_1"},                {"attn_q", "attn.attention.q_proj"},
    {"attn_k", "attn.attention.k_proj"}, {"attn_v", "attn.attention.v_proj"},
    {"attn_output", "attn.attention.out_proj"}, {"ffn_norm", "ln_2"},     {"ffn_up", "mlp.c_fc"},
    {"ffn_down", "mlp.c_proj"},        {NULL, NULL}};

static bool hf_name(const char *arch, const char *gguf, char *out, size_t cap) {
    const bool neo = !strcmp(arch, "gptneo");
    const char *const(*m)[2] = !strcmp(arch, "phi2")        ? names_phi2
                               : !strcmp(arch, "phi3")      ? names_phi3
                               : !strcmp(arch, "phi3small") ? names_phi3s
                               : neo                        ? names_gptneo
                                                            : names_llama;
    int layer = -1, used = 0;
    char role[64], suffix[16];
    if (sscanf(gguf, "blk.%d.%63[^.].%15s%n", &layer, role, suffix, &used) != 3 &&
        sscanf(gguf, "%63[^.].%15s", role, suffix) != 2)
        return false;
    for (; (*m)[0]; m++) {
        if (strcmp((*m)[0], role)) continue;
        if (layer >= 0) snprintf(out, cap, "%s.%d.%s.%s", neo ? "transformer.h" : "model.layers", layer, (*m)[1], suffix);
        else snprintf(out, cap, "%s.%s", (*m)[1], suffix);
        return true;
    }
    return false;
}

/* HF Llama q/k rows are rotate-half ordered: HF row (head, i, j), i < 2, j < hd/2,
 * holds GGUF row (head, 2j + i) (the inverse of convert_hf_to_gguf's permute). */
static void to_rotate_half(float *v, int64_t rows, int64_t cols, int64_t heads) {
    float *src = malloc((size_t)(rows * cols) * sizeof *src);
    memcpy(src, v, (size_t)(rows * cols) * sizeof *src);
    const int64_t hd = rows / heads;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < 2; i++)
            for (int64_t j = 0; j < hd / 2; j++)
                memcpy(v + (h * hd + i * hd / 2 + j) * cols, src + (h * hd + 2 * j + i) * cols,
                       (size_t)cols * sizeof *v);
    free(src);
}

/* Phi-3-small's checkpoint layouts (docs/spec/phi3-small.md 6, 14), from the GGUF's
 * [Q | K | V] and [gelu | linear] rows (cols 1 for a bias): QKV as n_kv groups of
 * m query heads, the key head, the value head; up_proj with the gelu row of unit k
 * at 2k and its linear row at 2k + 1. */
static void to_phi3s_layout(float *v, int64_t rows, int64_t cols, bool qkv, int64_t heads, int64_t heads_kv) {
    float *src = malloc((size_t)(rows * cols) * sizeof *src);
    memcpy(src, v, (size_t)(rows * cols) * sizeof *src);
    const size_t rb = (size_t)cols * sizeof *v;
    if (qkv) {
        const int64_t m = heads / heads_kv, d = rows / (heads + 2 * heads_kv), q = heads * d, kv = heads_kv * d;
        for (int64_t g = 0; g < heads_kv; g++) {
            float *grp = v + g * (m + 2) * d * cols;
            for (int64_t j = 0; j < m; j++) memcpy(grp + j * d * cols, src + (g * m + j) * d * cols, (size_t)d * rb);
            memcpy(grp + m * d * cols, src + (q + g * d) * cols, (size_t)d * rb);
            memcpy(grp + (m + 1) * d * cols, src + (q + kv + g * d) * cols, (size_t)d * rb);
        }
    } else {
        for (int64_t k = 0; k < rows / 2; k++) {
            memcpy(v + 2 * k * cols, src + k * cols, rb);
            memcpy(v + (2 * k + 1) * cols, src + (rows / 2 + k) * cols, rb);
        }
    }
    free(src);
}

/* ------------------------------------------------------------ the folder */

static bool write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return (fclose(f) == 0) && ok;
}

static bool write_json(const char *dir, const char *name, cJSON *j) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = cJSON_Print(j);
    bool ok = text && write_text(path, text);
    free(text);
    cJSON_Delete(j);
    return ok;
}

/* Phi-3-small's config.json (phi3-small.md 1) from phivk's keys. */
static cJSON *make_config_phi3s(const gguf_file *g) {
    const char *arch = "phi3small", *hf = "Phi3SmallForCausalLM";
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(&hf, 1));
    cJSON_AddStringToObject(c, "model_type", "phi3small");
    const uint32_t E = key_u32(g, arch, "embedding_length"), H = key_u32(g, arch, "attention.head_count");
    cJSON_AddNumberToObject(c, "hidden_size", E);
    cJSON_AddNumberToObject(c, "num_hidden_layers", key_u32(g, arch, "block_count"));
    cJSON_AddNumberToObject(c, "num_attention_heads", H);
    cJSON_AddNumberToObject(c, "num_key_value_heads", key_u32(g, arch, "attention.head_count_kv"));
    cJSON_AddNumberToObject(c, "ff_intermediate_size", key_u32(g, arch, "feed_forward_length"));
    cJSON_AddNumberToObject(c, "vocab_size", (double)gguf_find_tensor(g, "token_embd.weight")->ne[1]);
    cJSON_AddNumberToObject(c, "max_position_embeddings", key_u32(g, arch, "context_length"));
    cJSON_AddNumberToObject(c, "rope_embedding_base", key_f32(g, arch, "rope.freq_base"));
    cJSON_AddNumberToObject(c, "rope_position_scale", 1.0);
    cJSON_AddNumberToObject(c, "layer_norm_epsilon", key_f32(g, arch, "attention.layer_norm_epsilon"));
    cJSON_AddStringToObject(c, "hidden_act", "gegelu");
    cJSON_AddNumberToObject(c, "gegelu_limit", key_f32(g, arch, "gegelu_limit"));
    cJSON_AddNumberToObject(c, "dense_attention_every_n_layers", key_u32(g, arch, "attention.dense_every_n_layers"));
    cJSON_AddNumberToObject(c, "blocksparse_block_size", key_u32(g, arch, "attention.blocksparse.block_size"));
    cJSON_AddNumberToObject(c, "blocksparse_num_local_blocks", key_u32(g, arch, "attention.blocksparse.local_blocks"));
    cJSON_AddNumberToObject(c, "blocksparse_vert_stride", key_u32(g, arch, "attention.blocksparse.vert_stride"));
    cJSON_AddBoolToObject(c, "blocksparse_homo_head_pattern", false);
    cJSON_AddNumberToObject(c, "blocksparse_triton_kernel_block_size", key_u32(g, arch, "attention.blocksparse.block_size"));
    /* muP: scale = multiplier / head_dim */
    cJSON_AddBoolToObject(c, "mup_use_scaling", true);
    cJSON_AddNumberToObject(c, "mup_attn_multiplier", key_f32(g, arch, "attention.scale") * (float)(E / H));
    cJSON_AddNumberToObject(c, "mup_embedding_multiplier", key_f32(g, arch, "embedding_scale"));
    cJSON_AddNumberToObject(c, "mup_width_multiplier", key_f32(g, arch, "logit_divisor"));
    cJSON_AddNumberToObject(c, "bos_token_id", 100257);
    cJSON_AddNumberToObject(c, "eos_token_id", 100257);
    cJSON_AddNumberToObject(c, "embedding_dropout_prob", 0.1);
    const gguf_tensor *lf = gguf_find_tensor(g, "rope_factors_long.weight");
    const gguf_tensor *sf = gguf_find_tensor(g, "rope_factors_short.weight");
    if (!lf || !sf) {
        cJSON_AddNullToObject(c, "rope_scaling");
        return c;
    }
    cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
    cJSON_AddStringToObject(rs, "type", "longrope");
    cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateFloatArray((const float *)lf->data, (int)lf->ne[0]));
    cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateFloatArray((const float *)sf->data, (int)sf->ne[0]));
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings",
                            key_u32(g, arch, "rope.scaling.original_context_length"));
    cJSON_AddNumberToObject(rs, "long_mscale", key_f32(g, arch, "rope.scaling.attn_factor"));
    cJSON_AddNumberToObject(rs, "short_mscale", 1.0);
    return c;
}

/* GPTNeoConfig as the TinyStories folders have it: attention_types run-length
 * coded from the layer kinds, attention_layers expanded, intermediate_size null
 * when it is 4 x hidden (gpt-neo.md 1). */
static cJSON *make_config_gptneo(const gguf_file *g) {
    cJSON *c = cJSON_CreateObject();
    const char *hf = "GPTNeoForCausalLM";
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(&hf, 1));
    cJSON_AddStringToObject(c, "model_type", "gpt_neo");
    const uint32_t E = key_u32(g, "gptneo", "embedding_length"), L = key_u32(g, "gptneo", "block_count");
    const uint32_t F = key_u32(g, "gptneo", "feed_forward_length");
    cJSON_AddNumberToObject(c, "hidden_size", E);
    cJSON_AddNumberToObject(c, "num_layers", L);
    cJSON_AddNumberToObject(c, "num_heads", key_u32(g, "gptneo", "attention.head_count"));
    if (F == 4 * E) cJSON_AddNullToObject(c, "intermediate_size");
    else cJSON_AddNumberToObject(c, "intermediate_size", F);
    cJSON_AddNumberToObject(c, "vocab_size", (double)gguf_find_tensor(g, "token_embd.weight")->ne[1]);
    cJSON_AddNumberToObject(c, "max_position_embeddings", key_u32(g, "gptneo", "context_length"));
    cJSON_AddNumberToObject(c, "window_size", key_u32(g, "gptneo", "attention.sliding_window"));
    cJSON_AddNumberToObject(c, "layer_norm_epsilon", key_f32(g, "gptneo", "attention.layer_norm_epsilon"));
    cJSON_AddStringToObject(c, "activation_function", "gelu_new");
    const gguf_kv *kinds = gguf_find(g, "gptneo.attention.layer_types");
    cJSON *types = cJSON_AddArrayToObject(c, "attention_types"), *layers = cJSON_AddArrayToObject(c, "attention_layers");
    /* a run of the pair [first, second] repeated; a layer left over gets its own item */
    for (uint32_t l = 0; l < L;) {
        gguf_str a, b = {0};
        gguf_arr_str(g, kinds, l, &a);
        char ka[16], kb[16];
        snprintf(ka, sizeof ka, "%.*s", (int)a.len, a.ptr);
        uint32_t n = 1, width = 1;
        if (l + 1 < L) {
            gguf_arr_str(g, kinds, l + 1, &b);
            snprintf(kb, sizeof kb, "%.*s", (int)b.len, b.ptr);
            width = 2;
            for (n = 1; l + 2 * n + 1 < L; n++) {
                gguf_str x, y;
                gguf_arr_str(g, kinds, l + 2 * n, &x);
                gguf_arr_str(g, kinds, l + 2 * n + 1, &y);
                if (x.len != a.len || memcmp(x.ptr, a.ptr, a.len) || y.len != b.len || memcmp(y.ptr, b.ptr, b.len)) break;
            }
        }
        cJSON *item = cJSON_CreateArray(), *pat = cJSON_CreateArray();
        cJSON_AddItemToArray(pat, cJSON_CreateString(ka));
        if (width == 2) cJSON_AddItemToArray(pat, cJSON_CreateString(kb));
        cJSON_AddItemToArray(item, pat);
        cJSON_AddItemToArray(item, cJSON_CreateNumber(n));
        cJSON_AddItemToArray(types, item);
        for (uint32_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(layers, cJSON_CreateString(ka));
            if (width == 2) cJSON_AddItemToArray(layers, cJSON_CreateString(kb));
        }
        l += n * width;
    }
    uint32_t bos = 0, eos = 0;
    gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos);
    gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos);
    cJSON_AddNumberToObject(c, "bos_token_id", bos);
    cJSON_AddNumberToObject(c, "eos_token_id", eos);
    return c;
}

static cJSON *make_config(const gguf_file *g, const char *arch) {
    if (!strcmp(arch, "phi3small")) return make_config_phi3s(g);
    if (!strcmp(arch, "gptneo")) return make_config_gptneo(g);
    cJSON *c = cJSON_CreateObject();
    const char *hf = !strcmp(arch, "phi2") ? "PhiForCausalLM" : !strcmp(arch, "phi3") ? "Phi3ForCausalLM" : "LlamaForCausalLM";
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(&hf, 1));
    cJSON_AddStringToObject(c, "model_type", !strcmp(arch, "phi2") ? "phi" : arch);
    const uint32_t E = key_u32(g, arch, "embedding_length"), H = key_u32(g, arch, "attention.head_count");
    cJSON_AddNumberToObject(c, "hidden_size", E);
    cJSON_AddNumberToObject(c, "num_hidden_layers", key_u32(g, arch, "block_count"));
    cJSON_AddNumberToObject(c, "num_attention_heads", H);
    cJSON_AddNumberToObject(c, "num_key_value_heads", key_u32(g, arch, "attention.head_count_kv"));
    cJSON_AddNumberToObject(c, "intermediate_size", key_u32(g, arch, "feed_forward_length"));
    cJSON_AddNumberToObject(c, "vocab_size", (double)gguf_find_tensor(g, "token_embd.weight")->ne[1]);
    cJSON_AddNumberToObject(c, "max_position_embeddings", key_u32(g, arch, "context_length"));
    cJSON_AddNumberToObject(c, "rope_theta", 10000);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", (double)key_u32(g, arch, "rope.dimension_count") / (E / H));
    if (!strcmp(arch, "phi2")) {
        cJSON_AddNumberToObject(c, "layer_norm_eps", key_f32(g, arch, "attention.layer_norm_epsilon"));
        return c;
    }
    cJSON_AddNumberToObject(c, "rms_norm_eps", key_f32(g, arch, "attention.layer_norm_rms_epsilon"));
    cJSON_AddBoolToObject(c, "tie_word_embeddings", !gguf_find_tensor(g, "output.weight"));
    if (strcmp(arch, "phi3")) return c;
    cJSON_AddNumberToObject(c, "original_max_position_embeddings",
                            key_u32(g, arch, "rope.scaling.original_context_length"));
    const uint32_t swa = key_u32(g, arch, "attention.sliding_window");
    if (swa) cJSON_AddNumberToObject(c, "sliding_window", swa);
    else cJSON_AddNullToObject(c, "sliding_window");
    const gguf_tensor *lf = gguf_find_tensor(g, "rope_factors_long.weight");
    const gguf_tensor *sf = gguf_find_tensor(g, "rope_factors_short.weight");
    if (!lf || !sf) {
        cJSON_AddNullToObject(c, "rope_scaling");
        return c;
    }
    cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
    cJSON_AddStringToObject(rs, "type", "longrope");
    cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateFloatArray((const float *)lf->data, (int)lf->ne[0]));
    cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateFloatArray((const float *)sf->data, (int)sf->ne[0]));
    return c;
}

/* tokenizer.json: BPE with byte fallback and scores turned into merges (Llama,
 * Phi-3), or byte-level with the GGUF's merges (GPT-2/CodeGen). */
static cJSON *make_tokenizer(const gguf_file *g) {
    gguf_str model = {0};
    gguf_get_str(g, "tokenizer.ggml.model", &model);
    const bool spm = model.len == 5 && !memcmp(model.ptr, "llama", 5);
    const int64_t n = (int64_t)gguf_find(g, "tokenizer.ggml.tokens")->arr_n;
    cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddBoolToObject(m, "byte_fallback", spm);
    if (spm) {
        cJSON_AddStringToObject(m, "unk_token", "<unk>");
        cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(norm, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(norm, "normalizers");
        cJSON *pre = cJSON_CreateObject();
        cJSON_AddStringToObject(pre, "type", "Prepend");
        cJSON_AddStringToObject(pre, "prepend", "\xe2\x96\x81");
        cJSON_AddItemToArray(list, pre);
    } else {
        cJSON *pt = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON_AddStringToObject(pt, "type", "ByteLevel");
    }
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab"), *merges = cJSON_AddArrayToObject(m, "merges");
    char **text = calloc((size_t)n, sizeof *text);
    for (int64_t i = 0; i < n; i++) text[i] = strdup(token(g, i));
    for (int64_t i = 0; i < n; i++) {
        const int32_t ty = token_type(g, i);
        if (ty == 5) continue; /* [PADn]: the converter adds them back */
        if (ty == 3) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", text[i]);
            cJSON_AddBoolToObject(a, "special", true);
            cJSON_AddItemToArray(added, a);
            if (!spm) continue; /* GPT-2 keeps <|endoftext|> out of the BPE vocab */
        }
        cJSON_AddNumberToObject(vocab, text[i], (double)i);
        if (!spm || ty != 1) continue;
        /* every split of the piece whose halves are pieces, in the order of the
         * pieces' scores (descending = id order here) */
        const size_t len = strlen(text[i]);
        for (size_t k = 1; k < len; k++) {
            if ((text[i][k] & 0xC0) == 0x80) continue;
            bool left = false, right = false;
            for (int64_t j = 0; j < n; j++) {
                left |= strlen(text[j]) == k && !memcmp(text[j], text[i], k);
                right |= !strcmp(text[j], text[i] + k);
            }
            if (!left || !right) continue;
            char pair[300];
            snprintf(pair, sizeof pair, "%.*s %s", (int)k, text[i], text[i] + k);
            cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
        }
    }
    const gguf_kv *gm = gguf_find(g, "tokenizer.ggml.merges");
    for (uint64_t i = 0; !spm && gm && i < gm->arr_n; i++) {
        gguf_str s;
        gguf_arr_str(g, gm, i, &s);
        char pair[300];
        snprintf(pair, sizeof pair, "%.*s", (int)s.len, s.ptr);
        cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
    }
    for (int64_t i = 0; i < n; i++) free(text[i]);
    free(text);
    return root;
}

static cJSON *make_tokenizer_config(const gguf_file *g) {
    cJSON *c = cJSON_CreateObject();
    uint32_t id;
    if (gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id)) cJSON_AddStringToObject(c, "bos_token", token(g, id));
    if (gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id)) cJSON_AddStringToObject(c, "eos_token", token(g, id));
    if (gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &id)) cJSON_AddStringToObject(c, "unk_token", token(g, id));
    bool b;
    if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) cJSON_AddBoolToObject(c, "add_bos_token", b);
    gguf_str s;
    if (gguf_get_str(g, "tokenizer.chat_template", &s)) {
        char *t = strndup(s.ptr, s.len);
        cJSON_AddStringToObject(c, "chat_template", t);
        free(t);
    }
    return c;
}

bool hf_write_folder(const gguf_file *g, const char *dir, const hf_opts *o) {
    const char *dtype = o && o->dtype ? o->dtype : "F32";
    const int shards = o && o->shards > 1 ? o->shards : 1;
    char arch[16];
    arch_of(g, arch);
    mkdir(dir, 0755);
    const uint64_t nt = gguf_tensor_count(g);
    st_entry *e = calloc(nt + 64 + 2 * (size_t)key_u32(g, arch, "block_count"), sizeof *e);
    int n = 0;
    const int64_t heads = key_u32(g, arch, "attention.head_count"), heads_kv = key_u32(g, arch, "attention.head_count_kv");
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        char name[128];
        if (!hf_name(arch, t->name, name, sizeof name)) continue; /* rope factors live in config.json */
        if (o && o->skip && !strcmp(name, o->skip)) continue;
        st_entry *x = &e[n++];
        snprintf(x->name, sizeof x->name, "%s", name);
        x->n_dims = t->n_dims;
        x->shape[0] = t->n_dims == 2 ? t->ne[1] : t->ne[0];
        x->shape[1] = t->ne[0];
        x->n = t->ne[0] * t->ne[1];
        x->vals = tensor_floats(t, "F32");
        if (!strcmp(arch, "llama") && strstr(t->name, ".attn_q."))
            to_rotate_half(x->vals, t->ne[1], t->ne[0], heads);
        if (!strcmp(arch, "llama") && strstr(t->name, ".attn_k."))
            to_rotate_half(x->vals, t->ne[1], t->ne[0], heads_kv);
        const bool qkv = strstr(t->name, ".attn_qkv.") != NULL, up = strstr(t->name, ".ffn_up.") != NULL;
        if (!strcmp(arch, "phi3small") && (qkv || up)) {
            const bool bias = t->n_dims == 1;
            to_phi3s_layout(x->vals, bias ? t->ne[0] : t->ne[1], bias ? 1 : t->ne[0], qkv, heads, heads_kv);
        }
    }
    const int64_t P = key_u32(g, arch, "context_length");
    for (uint32_t l = 0; o && o->neo_buffers && l < key_u32(g, arch, "block_count"); l++) {
        /* the 2021 buffers: the causal mask as U8 [1, 1, P, P] (local layers windowed,
         * here all causal: a reader must not use it) and the scalar masked_bias */
        st_entry *x = &e[n++];
        snprintf(x->name, sizeof x->name, "transformer.h.%u.attn.attention.bias", l);
        x->n_dims = 4;
        x->shape[0] = x->shape[1] = 1;
        x->shape[2] = x->shape[3] = P;
        x->n = P * P;
        x->vals = calloc((size_t)x->n, sizeof(float));
        for (int64_t q = 0; q < P; q++)
            for (int64_t k = 0; k <= q; k++) x->vals[q * P + k] = 1;
        x->dtype = "U8";
        x = &e[n++];
        snprintf(x->name, sizeof x->name, "transformer.h.%u.attn.attention.masked_bias", l);
        x->n_dims = 0;
        x->n = 1;
        x->vals = malloc(sizeof(float));
        x->vals[0] = -1e9f;
        x->dtype = "F32";
    }
    for (uint32_t l = 0; o && o->inv_freq && l < key_u32(g, arch, "block_count"); l++) {
        st_entry *x = &e[n++];
        snprintf(x->name, sizeof x->name, "model.layers.%u.self_attn.rotary_emb.inv_freq", l);
        x->n_dims = 1;
        x->shape[0] = x->n = 4;
        x->vals = calloc(4, sizeof(float));
    }
    bool ok = true;
    if (shards == 1) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        ok = write_safetensors(path, e, n, dtype);
    } else {
        cJSON *index = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(index, "weight_map");
        for (int s = 0; s < shards && ok; s++) {
            const int from = n * s / shards, to = n * (s + 1) / shards;
            char file[64], path[4096];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, shards);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            ok = write_safetensors(path, e + from, to - from, dtype);
            for (int i = from; i < to; i++) cJSON_AddStringToObject(wm, e[i].name, file);
        }
        ok = write_json(dir, "model.safetensors.index.json", index) && ok;
    }
    for (int i = 0; i < n; i++) free(e[i].vals);
    free(e);
    if (!strcmp(arch, "phi3small")) {
        /* the tokenizer is the rank file (tokenization_phi3_small.py reads it) */
        char path[4096];
        FILE *in = o && o->tiktoken ? fopen(o->tiktoken, "rb") : NULL;
        snprintf(path, sizeof path, "%s/cl100k_base.tiktoken", dir);
        FILE *out = in ? fopen(path, "wb") : NULL;
        char buf[1 << 16];
        size_t got;
        while (out && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, out) == got && ok;
        ok = out && fclose(out) == 0 && ok;
        if (in) fclose(in);
        return ok && write_json(dir, "config.json", make_config(g, arch));
    }
    return ok && write_json(dir, "config.json", make_config(g, arch)) &&
           write_json(dir, "tokenizer.json", make_tokenizer(g)) &&
           write_json(dir, "tokenizer_config.json", make_tokenizer_config(g));
}

bool hf_edit_config(const char *dir, const char *key, const char *json) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *c = cJSON_Parse(buf);
    if (!c) return false;
    cJSON_DeleteItemFromObjectCaseSensitive(c, key);
    if (json) cJSON_AddItemToObject(c, key, cJSON_Parse(json));
    char *text = cJSON_Print(c);
    bool ok = write_text(path, text);
    free(text);
    cJSON_Delete(c);
    return ok;
}

/* ------------------------------------------------------------ llama2.c */

static bool put_floats(FILE *f, const float *v, int64_t n) { return fwrite(v, sizeof *v, (size_t)n, f) == (size_t)n; }

/* Every layer's copy of role, layer 0 first. */
static bool put_layers(FILE *f, const gguf_file *g, const char *role, int64_t layers) {
    bool ok = true;
    for (int64_t l = 0; l < layers && ok; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.%s.weight", (int)l, role);
        const gguf_tensor *t = gguf_find_tensor(g, name);
        float *v = t ? tensor_floats(t, "F32") : NULL;
        ok = v && put_floats(f, v, t->ne[0] * t->ne[1]);
        free(v);
    }
    return ok;
}

static bool put_tensor(FILE *f, const gguf_file *g, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    float *v = t ? tensor_floats(t, "F32") : NULL;
    bool ok = v && put_floats(f, v, t->ne[0] * t->ne[1]);
    free(v);
    return ok;
}

bool llama2c_write(const gguf_file *g, const char *path, int version, bool shared, const char *tok_path) {
    const int32_t D = (int32_t)key_u32(g, "llama", "embedding_length"), F = (int32_t)key_u32(g, "llama", "feed_forward_length"),
                  L = (int32_t)key_u32(g, "llama", "block_count"), H = (int32_t)key_u32(g, "llama", "attention.head_count"),
                  KVH = (int32_t)key_u32(g, "llama", "attention.head_count_kv"),
                  V = (int32_t)gguf_find_tensor(g, "token_embd.weight")->ne[1],
                  S = (int32_t)key_u32(g, "llama", "context_length");
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    const int32_t cfg[7] = {D, F, L, H, KVH, version == 0 && !shared ? -V : V, S};
    bool ok = true;
    if (version == 1) {
        uint8_t hdr[256] = {0};
        const uint32_t magic = 0x616b3432, ver = 1;
        memcpy(hdr, &magic, 4);
        memcpy(hdr + 4, &ver, 4);
        memcpy(hdr + 8, cfg, sizeof cfg);
        hdr[36] = shared;
        ok = fwrite(hdr, 1, 256, f) == 256;
        ok = ok && put_layers(f, g, "attn_norm", L) && put_layers(f, g, "ffn_norm", L) &&
             put_tensor(f, g, "output_norm.weight") && put_tensor(f, g, "token_embd.weight");
    } else {
        ok = fwrite(cfg, sizeof cfg, 1, f) == 1 && put_tensor(f, g, "token_embd.weight") &&
             put_layers(f, g, "attn_norm", L);
    }
    ok = ok && put_layers(f, g, "attn_q", L) && put_layers(f, g, "attn_k", L) && put_layers(f, g, "attn_v", L) &&
         put_layers(f, g, "attn_output", L);
    if (version == 0) ok = ok && put_layers(f, g, "ffn_norm", L);
    ok = ok && put_layers(f, g, "ffn_gate", L) && put_layers(f, g, "ffn_down", L) && put_layers(f, g, "ffn_up", L);
    if (version == 0) {
        ok = ok && put_tensor(f, g, "output_norm.weight");
        const int32_t hs = D / H;
        for (int table = 0; table < 2 && ok; table++) /* freq_cis_real, freq_cis_imag */
            for (int32_t p = 0; p < S && ok; p++)
                for (int32_t j = 0; j < hs / 2 && ok; j++) {
                    const double a = p * pow(10000.0, -2.0 * j / hs);
                    const float v = (float)(table ? sin(a) : cos(a));
                    ok = put_floats(f, &v, 1);
                }
    }
    if (!shared) ok = ok && put_tensor(f, g, "output.weight");
    ok = (fclose(f) == 0) && ok;

    /* tokenizer.bin: max_token_length, then score, length, bytes per token, with
     * "▁" as a space and BOS/EOS as tokenizer.py writes them */
    f = fopen(tok_path, "wb");
    if (!f) return false;
    const uint32_t maxlen = 64;
    ok = ok && fwrite(&maxlen, 4, 1, f) == 1;
    const gguf_kv *scores = gguf_find(g, "tokenizer.ggml.scores");
    for (int32_t i = 0; i < V && ok; i++) {
        char piece[256];
        const char *t = i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : token(g, i);
        int32_t n = 0;
        for (const char *c = t; *c;)
            if (!strncmp(c, "\xe2\x96\x81", 3)) piece[n++] = ' ', c += 3;
            else piece[n++] = *c++;
        float score = 0;
        gguf_arr_f32(scores, (uint64_t)i, &score);
        ok = fwrite(&score, 4, 1, f) == 1 && fwrite(&n, 4, 1, f) == 1 && fwrite(piece, 1, (size_t)n, f) == (size_t)n;
    }
    return (fclose(f) == 0) && ok;
}
