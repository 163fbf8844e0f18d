#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "gguf.h"
#include "quant.h"

synth_params synth_default_params(void) {
    synth_params p;
    synth_shape_by_name("tiny", &p);
    p.wtype = PVK_F32;
    return p;
}

/* ------------------------------------------------------------------ shapes */

typedef struct shape {
    const char *name;
    const char *arch;
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_rot;
    bool longrope, tied;
    int32_t sliding_window;
} shape;

static const shape shapes[] = {
    {"tiny", "phi3", 512, 64, 2, 4, 4, 128, 256, 0, false, false, 0},
    /* ~160M parameters: Phi-3's layout at GPT-2-small width */
    {"150m", "phi3", 32064, 768, 12, 12, 12, 3072, 4096, 0, false, false, 2047},
    {"phi3-mini", "phi3", 32064, 3072, 32, 32, 32, 8192, 4096, 0, false, false, 2047},
    {"phi3-mini-128k", "phi3", 32064, 3072, 32, 32, 32, 8192, 131072, 0, true, false, 262144},
    {"phi3-medium", "phi3", 32064, 5120, 40, 40, 10, 17920, 4096, 0, false, false, 2047},
    {"phi3-small", "phi3small", 100352, 4096, 32, 32, 8, 14336, 8192, 0, false, true, 0},
    {"phi3-small-128k", "phi3small", 100352, 4096, 32, 32, 8, 14336, 131072, 0, true, true, 0},
    {"phi2", "phi2", 51200, 2560, 32, 32, 32, 10240, 2048, 32, false, false, 0},
    {"phi1.5", "phi2", 51200, 2048, 24, 32, 32, 8192, 2048, 32, false, false, 0},
    {"stories15m", "llama", 32000, 288, 6, 6, 6, 768, 256, 0, false, true, 0},
    /* the GPT-Neo TinyStories models: head sizes 4 and 48, local window 256 */
    {"tinystories-1m", "gptneo", 50257, 64, 8, 16, 16, 256, 2048, 0, false, true, 256},
    {"tinystories-33m", "gptneo", 50257, 768, 4, 16, 16, 3072, 2048, 0, false, true, 256},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

const char *const *synth_shape_names(void) {
    static const char *names[N_SHAPES + 1];
    for (size_t i = 0; i < N_SHAPES; i++) names[i] = shapes[i].name;
    return names;
}

phivk_status synth_shape_by_name(const char *name, synth_params *out) {
    for (size_t i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        if (strcmp(name, s->name)) continue;
        *out = (synth_params){
            .arch = s->arch, .n_vocab = s->n_vocab, .n_embd = s->n_embd, .n_layer = s->n_layer,
            .n_head = s->n_head, .n_head_kv = s->n_head_kv, .n_ff = s->n_ff, .n_ctx = s->n_ctx,
            .n_rot = s->n_rot, .longrope = s->longrope,
            .rope_orig_ctx = !s->longrope ? 0 : !strcmp(s->arch, "phi3small") ? 8192 : 4096,
            .sliding_window = s->sliding_window, .tied_output = s->tied, .wtype = PVK_F16,
            .seed = 1,
        };
        return PHIVK_OK;
    }
    char list[256] = "";
    for (size_t i = 0; i < N_SHAPES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 shapes[i].name);
    return pvk_fail(PHIVK_ERR_INVALID, "unknown model shape '%s' (known: %s)", name, list);
}

/* -------------------------------------------------------------- validation */

enum { ARCH_ID_PHI2, ARCH_ID_PHI3, ARCH_ID_LLAMA, ARCH_ID_GPTNEO, ARCH_ID_PHI3SMALL };

static int arch_id(const char *a) {
    if (!a) return -1;
    if (!strcmp(a, "phi2")) return ARCH_ID_PHI2;
    if (!strcmp(a, "phi3")) return ARCH_ID_PHI3;
    if (!strcmp(a, "llama")) return ARCH_ID_LLAMA;
    if (!strcmp(a, "phi3small")) return ARCH_ID_PHI3SMALL;
    if (!strcmp(a, "gptneo")) return ARCH_ID_GPTNEO;
    return -1;
}

/* The vocabulary layout: how many generated pieces, where the control block sits. */
#define N_PHI3_CTRL 11
static int32_t min_vocab(int arch) { return arch == ARCH_ID_PHI3 ? 310 : 300; }

static phivk_status check_params(const synth_params *p) {
    const int a = arch_id(p->arch);
    if (a < 0)
        return pvk_fail(PHIVK_ERR_INVALID, "synthetic models are phi3, llama, phi2, gptneo or phi3small, not '%s'",
                        p->arch ? p->arch : "(null)");
    const int32_t kv = p->n_head_kv ? p->n_head_kv : p->n_head;
    if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_ff <= 0 || p->n_ctx <= 0 ||
        kv <= 0 || p->n_embd % p->n_head || p->n_head % kv || (p->n_embd / p->n_head) % 2)
        return pvk_fail(PHIVK_ERR_INVALID,
                        "bad synthetic shape: embd %d, layers %d, heads %d/%d, ffn %d, ctx %d "
                        "(need positive sizes, heads dividing embd into even head sizes, kv "
                        "heads dividing heads)",
                        p->n_embd, p->n_layer, p->n_head, kv, p->n_ff, p->n_ctx);
    const int32_t hd = p->n_embd / p->n_head;
    if (p->n_rot < 0 || p->n_rot > hd || p->n_rot % 2)
        return pvk_fail(PHIVK_ERR_INVALID, "bad rotary size %d for head size %d", p->n_rot, hd);
    if (p->n_vocab < min_vocab(a))
        return pvk_fail(PHIVK_ERR_INVALID,
                        "synthetic %s vocabularies need at least %d tokens, not %d", p->arch,
                        min_vocab(a), p->n_vocab);
    if (p->longrope && a != ARCH_ID_PHI3 && a != ARCH_ID_PHI3SMALL)
        return pvk_fail(PHIVK_ERR_INVALID, "LongRoPE exists only for phi3 and phi3small");
    if (a == ARCH_ID_PHI3SMALL && (!p->tied_output || p->n_rot))
        return pvk_fail(PHIVK_ERR_INVALID, "phi3small models tie their output head and rotate whole heads");
    if (p->tied_output && a == ARCH_ID_PHI2)
        return pvk_fail(PHIVK_ERR_INVALID, "phi2 models have an untied output head");
    if (a == ARCH_ID_GPTNEO && (kv != p->n_head || p->n_rot || !p->tied_output || p->sliding_window <= 0))
        return pvk_fail(PHIVK_ERR_INVALID, "gptneo models have no GQA or rotary, a tied output head and a local "
                        "window");
    return PHIVK_OK;
}

pvk_type synth_legal_type(pvk_type t, int64_t cols) {
    for (;;) {
        const pvk_type_info *ti = pvk_type_get(t);
        if (ti->block_elems <= 1 || cols % ti->block_elems == 0) return t;
        switch (t) {
        case PVK_Q4_K: t = PVK_Q5_0; break;
        case PVK_Q5_K: t = PVK_Q5_1; break;
        case PVK_Q6_K: t = PVK_Q8_0; break;
        default: return PVK_F16;
        }
    }
}

/* ------------------------------------------------------------- random data */

/* splitmix64: tiny, fast and good enough for weights; one stream per tensor, seeded
 * from the model seed and the tensor name so the order of tensors never matters. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_sym(rng *r) { return (float)((double)(rng_next(r) >> 11) * 0x1.0p-52 - 1.0); }

static rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    return (rng){seed * 0x9e3779b97f4a7c15ull ^ h};
}

/* ------------------------------------------------------------ the tensors */

typedef enum fill { FILL_MATRIX, FILL_NORM, FILL_BIAS } fill;

/* With repeat_weights: the bytes of a layer tensor already made, by its name after
 * "blk.N." and its type (Q4_K_M gives ffn_down two types across layers). */
typedef struct made {
    char role[64];
    pvk_type type;
    uint8_t *data;
} made;
#define MAX_MADE 32

typedef struct builder {
    const synth_params *p;
    gguf_writer *w;
    float *row;
    phivk_status st;
    made made[MAX_MADE];
    int n_made;
    uint64_t bytes;         /* without a writer (synth_tensor_bytes): what add() would add */
} builder;

/* The earlier layer's bytes for name, or NULL when it must be generated (no reuse,
 * not a layer tensor, or the first of its role and type). */
static const made *made_find(const builder *b, const char *name, pvk_type type) {
    if (!b->p->repeat_weights || strncmp(name, "blk.", 4)) return NULL;
    const char *role = strchr(name + 4, '.') + 1;
    for (int i = 0; i < b->n_made; i++)
        if (b->made[i].type == type && !strcmp(b->made[i].role, role)) return &b->made[i];
    return NULL;
}

/* Keeps data (ownership passes to b) for the next layers; false when not kept. */
static bool made_keep(builder *b, const char *name, pvk_type type, uint8_t *data) {
    if (!b->p->repeat_weights || strncmp(name, "blk.", 4) || b->n_made == MAX_MADE) return false;
    made *m = &b->made[b->n_made++];
    snprintf(m->role, sizeof m->role, "%s", strchr(name + 4, '.') + 1);
    m->type = type;
    m->data = data;
    return true;
}

/* Adds name with ne = {cols, rows}; rows == 0 makes a 1-D F32 tensor of cols.
 * Matrices are uniform with std 1/sqrt(cols) (unit-variance outputs from
 * unit-variance inputs); norm weights are 1 +- 0.1, biases +- 0.1. */
static void add(builder *b, const char *name, pvk_type type, int64_t cols, int64_t rows, fill how) {
    if (b->st || (b->p->skip_tensor && !strcmp(name, b->p->skip_tensor))) return;
    if (!rows) type = PVK_F32;
    const int64_t nr = rows ? rows : 1;
    const int64_t ne[2] = {cols, nr};
    const size_t row_bytes = pvk_type_row_bytes(type, cols);
    if (!b->w) {
        b->bytes += row_bytes * (uint64_t)nr;
        return;
    }
    const made *prev = made_find(b, name, type);
    if (prev) {
        gguf_writer_add_tensor(b->w, name, type, rows ? 2 : 1, ne, prev->data);
        return;
    }
    rng r = rng_for(b->p->seed, name);
    uint8_t *data = malloc(row_bytes * (size_t)nr);
    if (!data) {
        b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for tensor '%s'", name);
        return;
    }
    const float amp = how == FILL_MATRIX ? (float)sqrt(3.0 / (double)cols) : 0.1f;
    const int64_t distinct = b->p->repeat_weights && nr > SYNTH_REPEAT_ROWS ? SYNTH_REPEAT_ROWS : nr;
    for (int64_t i = 0; i < distinct && !b->st; i++) {
        for (int64_t c = 0; c < cols; c++)
            b->row[c] = (how == FILL_NORM ? 1.0f : 0.0f) + amp * rng_sym(&r);
        b->st = quant_quantize_row(type, b->row, data + (size_t)i * row_bytes, cols);
    }
    for (int64_t i = distinct; i < nr && !b->st; i++)
        memcpy(data + (size_t)i * row_bytes, data + (size_t)(i % distinct) * row_bytes, row_bytes);
    if (!b->st) gguf_writer_add_tensor(b->w, name, type, rows ? 2 : 1, ne, data);
    if (b->st || !made_keep(b, name, type, data)) free(data);
}

/* The type a matrix gets under the mix (before the legality fallback). */
static pvk_type mix_type(const synth_params *p, const char *role, int32_t layer) {
    if (p->mix != SYNTH_MIX_Q4_K_M) return p->wtype;
    if (!strcmp(role, "output")) return PVK_Q6_K;
    if (!strcmp(role, "attn_qkv") || !strcmp(role, "attn_v")) return PVK_Q5_K;
    /* llama.cpp's use_more_bits: the first and last eighth and every third between */
    const int32_t n = p->n_layer;
    if (!strcmp(role, "ffn_down") &&
        (layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2))
        return PVK_Q6_K;
    return PVK_Q4_K;
}

/* "{prefix}{role}.weight" {cols, rows} and, when bias, "{prefix}{role}.bias". */
static void add_linear(builder *b, const char *prefix, const char *role, int32_t layer,
                       int64_t cols, int64_t rows, bool bias) {
    char name[96];
    snprintf(name, sizeof name, "%s%s.weight", prefix, role);
    add(b, name, synth_legal_type(mix_type(b->p, role, layer), cols), cols, rows, FILL_MATRIX);
    if (!bias) return;
    snprintf(name, sizeof name, "%s%s.bias", prefix, role);
    add(b, name, PVK_F32, rows, 0, FILL_BIAS);
}

static void add_norm(builder *b, const char *prefix, const char *role, int64_t n, bool bias) {
    char name[96];
    snprintf(name, sizeof name, "%s%s.weight", prefix, role);
    add(b, name, PVK_F32, n, 0, FILL_NORM);
    if (!bias) return;
    snprintf(name, sizeof name, "%s%s.bias", prefix, role);
    add(b, name, PVK_F32, n, 0, FILL_BIAS);
}

/* LongRoPE factor tables shaped like Phi-3.5's: short grows gently from 1, long
 * reaches ~60 at the lowest frequencies. */
static void add_rope_factors(builder *b, int32_t half) {
    if (!b->w) {
        b->bytes += 2 * sizeof(float) * (uint64_t)half;
        return;
    }
    float *fl = malloc((size_t)half * sizeof *fl), *fs = malloc((size_t)half * sizeof *fs);
    if (!fl || !fs) {
        b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    } else {
        for (int32_t i = 0; i < half; i++) {
            const double t = (double)i / half;
            fs[i] = (float)(1.0 + 1.8 * t * t);
            fl[i] = (float)(1.0 + 60.0 * t * t * t);
        }
        const int64_t ne[1] = {half};
        if (!b->p->skip_tensor || strcmp(b->p->skip_tensor, "rope_factors_long.weight"))
            gguf_writer_add_tensor(b->w, "rope_factors_long.weight", PVK_F32, 1, ne, fl);
        if (!b->p->skip_tensor || strcmp(b->p->skip_tensor, "rope_factors_short.weight"))
            gguf_writer_add_tensor(b->w, "rope_factors_short.weight", PVK_F32, 1, ne, fs);
    }
    free(fl);
    free(fs);
}

/* --------------------------------------------------------------- the vocab */

typedef struct vocab {
    char **text;
    float *score;
    int32_t *type;
    int32_t n;
} vocab;

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_UNUSED = 5, TT_BYTE = 6 };

static void vocab_free(vocab *v) {
    if (v->text)
        for (int32_t i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->score);
    free(v->type);
}

/* Sets token id (a copy of s). */
static bool vocab_set(vocab *v, int32_t id, const char *s, float score, int32_t type) {
    v->text[id] = strdup(s);
    v->score[id] = score;
    v->type[id] = type;
    return v->text[id] != NULL;
}

/* The k-th generated piece (k from 0), in an order where every piece's prefix pieces
 * come earlier: sp is the space symbol ("▁" or "Ġ"), alpha the single characters.
 * Returns false when the generator is exhausted. */
static bool gen_piece(int64_t k, const char *sp, bool singles, char *out, size_t cap) {
    static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
    if (singles) {
        if (k == 0) return snprintf(out, cap, "%s", sp), true;
        k--;
        if (k < 94) return snprintf(out, cap, "%c", (char)(0x21 + k)), true; /* printable ASCII */
        k -= 94;
        if (k < 94) return snprintf(out, cap, "%s%c", sp, (char)(0x21 + k)), true;
        k -= 94;
    } else {
        if (k < 26) return snprintf(out, cap, "%s%c", sp, lower[k]), true;
        k -= 26;
    }
    /* two letters with and without the space symbol, then three */
    for (int len = 2; len <= 3; len++) {
        int64_t count = len == 2 ? 26 * 26 : 26 * 26 * 26;
        for (int spaced = 1; spaced >= 0; spaced--) {
            if (k < count) {
                char letters[4] = {0};
                for (int j = len - 1; j >= 0; j--, k /= 26) letters[j] = lower[k % 26];
                snprintf(out, cap, "%s%s", spaced ? sp : "", letters);
                return true;
            }
            k -= count;
        }
    }
    return false;
}

static const char *const phi3_ctrl[N_PHI3_CTRL] = {
    "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
    "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
    "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
};

static const char phi3_template[] =
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + "
    "'<|end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

static void vocab_spm(builder *b, vocab *v, bool phi3) {
    char piece[64];
    bool ok = vocab_set(v, 0, "<unk>", 0, TT_UNKNOWN) && vocab_set(v, 1, "<s>", 0, TT_CONTROL) &&
              vocab_set(v, 2, "</s>", 0, TT_CONTROL);
    for (int i = 0; i < 256 && ok; i++) {
        snprintf(piece, sizeof piece, "<0x%02X>", i);
        ok = vocab_set(v, 3 + i, piece, 0, TT_BYTE);
    }
    /* Phi-3's control tokens at their real ids when the vocabulary is Phi-3 sized */
    const int32_t ctrl = !phi3 ? v->n : v->n >= 32064 ? 32000 : v->n - N_PHI3_CTRL;
    int64_t k = 0;
    for (int32_t id = 259; id < v->n && ok; id++) {
        if (phi3 && id >= ctrl && id < ctrl + N_PHI3_CTRL) {
            ok = vocab_set(v, id, phi3_ctrl[id - ctrl], 0, TT_CONTROL);
        } else if (id < ctrl && gen_piece(k, "\xe2\x96\x81", true, piece, sizeof piece)) {
            ok = vocab_set(v, id, piece, -(float)k, TT_NORMAL);
            k++;
        } else {
            snprintf(piece, sizeof piece, "[PAD%d]", (int)id);
            ok = vocab_set(v, id, piece, 0, TT_UNUSED);
        }
    }
    if (!ok) {
        b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary");
        return;
    }
    gguf_writer_set_str(b->w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_str(b->w, "tokenizer.ggml.pre", "default");
    gguf_writer_set_arr(b->w, "tokenizer.ggml.scores", GGUF_F32, v->score, (uint64_t)v->n);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.eos_token_id", phi3 ? (uint32_t)ctrl : 2);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_bool(b->w, "tokenizer.ggml.add_bos_token", true);
    if (phi3) gguf_writer_set_str(b->w, "tokenizer.chat_template", phi3_template);
}

/* GPT-2's bytes_to_unicode order: printable bytes keep their code point, the other
 * 68 map to U+0100.. in byte order. Writes the UTF-8 of byte i's symbol. */
static void gpt2_symbol(int i, char *out) {
    int cp;
    if (i < 94) cp = 0x21 + i;
    else if (i < 94 + 12) cp = 0xA1 + (i - 94);
    else if (i < 94 + 12 + 82) cp = 0xAE + (i - 106);
    else cp = 0x100 + (i - 188);
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        out[2] = 0;
    }
}

static void vocab_gpt2(builder *b, vocab *v) {
    char piece[64];
    /* <|endoftext|> at GPT-2's id when the vocabulary is that large, else last */
    const int32_t eot = v->n > 50256 ? 50256 : v->n - 1;
    char **merges = calloc((size_t)v->n, sizeof *merges);
    int32_t n_merges = 0;
    bool ok = merges != NULL;
    for (int i = 0; i < 256 && ok; i++) {
        gpt2_symbol(i, piece);
        ok = vocab_set(v, i, piece, 0, TT_NORMAL);
    }
    int64_t k = 0;
    for (int32_t id = 256; id < v->n && ok; id++) {
        if (id == eot) {
            ok = vocab_set(v, id, "<|endoftext|>", 0, TT_CONTROL);
        } else if (id < eot && gen_piece(k, "\xc4\xa0", false, piece, sizeof piece)) {
            /* the merge that makes it: everything but the last letter, then that letter */
            const size_t len = strlen(piece);
            char m[80];
            snprintf(m, sizeof m, "%.*s %c", (int)(len - 1), piece, piece[len - 1]);
            ok = vocab_set(v, id, piece, 0, TT_NORMAL) && (merges[n_merges++] = strdup(m));
            k++;
        } else {
            snprintf(piece, sizeof piece, "[PAD%d]", (int)id);
            ok = vocab_set(v, id, piece, 0, TT_UNUSED);
        }
    }
    if (ok) {
        gguf_writer_set_str(b->w, "tokenizer.ggml.model", "gpt2");
        gguf_writer_set_str(b->w, "tokenizer.ggml.pre", strcmp(b->p->arch, "phi2") ? "gpt-2" : "phi-2");
        gguf_writer_set_arr_str(b->w, "tokenizer.ggml.merges", (const char *const *)merges,
                                (uint64_t)n_merges);
        gguf_writer_set_u32(b->w, "tokenizer.ggml.bos_token_id", (uint32_t)eot);
        gguf_writer_set_u32(b->w, "tokenizer.ggml.eos_token_id", (uint32_t)eot);
        gguf_writer_set_u32(b->w, "tokenizer.ggml.unknown_token_id", (uint32_t)eot);
        gguf_writer_set_bool(b->w, "tokenizer.ggml.add_bos_token", false);
    } else {
        b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary");
    }
    for (int32_t i = 0; merges && i < n_merges; i++) free(merges[i]);
    free(merges);
}

static void add_vocab(builder *b, int arch) {
    vocab v = {.n = b->p->n_vocab};
    v.text = calloc((size_t)v.n, sizeof *v.text);
    v.score = calloc((size_t)v.n, sizeof *v.score);
    v.type = calloc((size_t)v.n, sizeof *v.type);
    if (!v.text || !v.score || !v.type) {
        b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary");
    } else {
        if (arch == ARCH_ID_PHI2 || arch == ARCH_ID_GPTNEO || arch == ARCH_ID_PHI3SMALL) vocab_gpt2(b, &v);
        else vocab_spm(b, &v, arch == ARCH_ID_PHI3);
        if (!b->st) {
            gguf_writer_set_arr_str(b->w, "tokenizer.ggml.tokens", (const char *const *)v.text,
                                    (uint64_t)v.n);
            gguf_writer_set_arr(b->w, "tokenizer.ggml.token_type", GGUF_I32, v.type, (uint64_t)v.n);
        }
    }
    vocab_free(&v);
}

/* ---------------------------------------------------------------- the file */

/* llama_ftype of the dominant type (informational, as in real files). */
static uint32_t file_type(const synth_params *p) {
    if (p->mix == SYNTH_MIX_Q4_K_M) return 15;
    switch (p->wtype) {
    case PVK_F32: return 0;
    case PVK_F16: return 1;
    case PVK_Q4_0: return 2;
    case PVK_Q4_1: return 3;
    case PVK_Q8_0: return 7;
    case PVK_Q5_0: return 8;
    case PVK_Q5_1: return 9;
    case PVK_Q4_K: return 14;
    case PVK_Q5_K: return 16;
    case PVK_Q6_K: return 18;
    case PVK_BF16: return 32;
    default: return 0;
    }
}

static void set_hparams(builder *b, int arch) {
    const synth_params *p = b->p;
    gguf_writer *w = b->w;
    char key[96], name[64];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", p->arch, suffix), key)
    snprintf(name, sizeof name, "synthetic %s", p->arch);
    gguf_writer_set_str(w, "general.architecture", p->arch);
    gguf_writer_set_str(w, "general.name", p->name ? p->name : name);
    gguf_writer_set_u32(w, "general.file_type", file_type(p));
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)p->n_ctx);
    gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)p->n_embd);
    gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)p->n_layer);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)p->n_ff);
    gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)p->n_head);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"),
                        (uint32_t)(p->n_head_kv ? p->n_head_kv : p->n_head));
    if (arch == ARCH_ID_GPTNEO) {
        /* the published layout: global, local, global, local, ... */
        const char **types = malloc(sizeof *types * (size_t)p->n_layer);
        if (!types) {
            b->st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
            return;
        }
        for (int32_t l = 0; l < p->n_layer; l++) types[l] = l % 2 ? "local" : "global";
        gguf_writer_set_arr_str(w, KEY("attention.layer_types"), types, (uint64_t)p->n_layer);
        free(types);
        gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)p->sliding_window);
        gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-5f);
        return;
    }
    gguf_writer_set_u32(w, KEY("rope.dimension_count"),
                        (uint32_t)(p->n_rot ? p->n_rot : p->n_embd / p->n_head));
    if (arch == ARCH_ID_PHI2) {
        gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-5f);
    } else if (arch == ARCH_ID_PHI3SMALL) {
        /* The real model's muP and block-sparse values (docs/spec/phi3-small.md 1). */
        const int32_t hd = p->n_embd / p->n_head;
        gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-5f);
        gguf_writer_set_f32(w, KEY("rope.freq_base"), p->rope_base > 0 ? p->rope_base : 1e6f);
        gguf_writer_set_f32(w, KEY("embedding_scale"), 10.0f);
        gguf_writer_set_f32(w, KEY("attention.scale"), 1.0f / (float)hd);
        gguf_writer_set_f32(w, KEY("logit_divisor"), 8.0f);
        gguf_writer_set_f32(w, KEY("gegelu_limit"), p->gegelu_limit > 0 ? p->gegelu_limit : 20.0f);
        gguf_writer_set_u32(w, KEY("attention.dense_every_n_layers"),
                            (uint32_t)(p->bs_dense_every ? p->bs_dense_every : 2));
        gguf_writer_set_u32(w, KEY("attention.blocksparse.block_size"), (uint32_t)(p->bs_block ? p->bs_block : 64));
        gguf_writer_set_u32(w, KEY("attention.blocksparse.local_blocks"), (uint32_t)(p->bs_local ? p->bs_local : 16));
        gguf_writer_set_u32(w, KEY("attention.blocksparse.vert_stride"), (uint32_t)(p->bs_stride ? p->bs_stride : 8));
        gguf_writer_set_bool(w, KEY("attention.blocksparse.homo_head_pattern"), false);
        if (p->n_vocab == 100352) { /* the real vocabulary: its dummy ids are masked (spec 15) */
            int32_t masked[ARCH_PHI3SMALL_N_MASKED];
            arch_phi3small_masked_ids(masked);
            gguf_writer_set_arr(w, KEY("logit_masked_ids"), GGUF_I32, masked, ARCH_PHI3SMALL_N_MASKED);
        }
        if (p->longrope) {
            const int32_t orig = p->rope_orig_ctx > 0 ? p->rope_orig_ctx : p->n_ctx;
            const double s = (double)p->n_ctx / orig;
            gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)orig);
            gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"),
                                (float)(s <= 1 ? 1.0 : sqrt(1.0 + log(s) / log((double)orig))));
        }
    } else {
        gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
        gguf_writer_set_f32(w, KEY("rope.freq_base"), p->rope_base > 0 ? p->rope_base : 10000.0f);
    }
    if (arch == ARCH_ID_PHI3) {
        const int32_t orig = p->rope_orig_ctx > 0 ? p->rope_orig_ctx : p->n_ctx;
        gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)orig);
        gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)p->sliding_window);
        if (p->longrope) {
            const double s = (double)p->n_ctx / orig;
            const double f = p->attn_factor > 0 ? p->attn_factor
                             : s <= 1           ? 1.0
                                                : sqrt(1.0 + log(s) / log((double)orig));
            gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), (float)f);
        }
    }
#undef KEY
}

/* Every tensor of the model, in file order. */
static void add_tensors(builder *b, int arch) {
    const synth_params *p = b->p;
    const int64_t E = p->n_embd, hd = E / p->n_head;
    const int64_t KV = hd * (p->n_head_kv ? p->n_head_kv : p->n_head), F = p->n_ff;
    const bool phi2 = arch == ARCH_ID_PHI2, neo = arch == ARCH_ID_GPTNEO, p3s = arch == ARCH_ID_PHI3SMALL;
    const bool bias = phi2 || neo || p3s; /* biases on the norms and the output, up and down projections */
    add_linear(b, "", "token_embd", -1, E, p->n_vocab, false);
    if (neo) add_linear(b, "", "position_embd", -1, E, p->n_ctx, false);
    if (p->longrope && !b->st) add_rope_factors(b, (int32_t)((p->n_rot ? p->n_rot : hd) / 2));
    for (int32_t l = 0; l < p->n_layer; l++) {
        char pre[32];
        snprintf(pre, sizeof pre, "blk.%d.", (int)l);
        add_norm(b, pre, "attn_norm", E, bias);
        if (arch == ARCH_ID_LLAMA || neo || (phi2 && p->separate_qkv)) {
            add_linear(b, pre, "attn_q", l, E, E, phi2);
            add_linear(b, pre, "attn_k", l, E, KV, phi2);
            add_linear(b, pre, "attn_v", l, E, KV, phi2);
        } else {
            add_linear(b, pre, "attn_qkv", l, E, E + 2 * KV, bias);
        }
        add_linear(b, pre, "attn_output", l, E, E, bias);
        if (!phi2) add_norm(b, pre, "ffn_norm", E, neo || p3s);
        if (arch == ARCH_ID_LLAMA) add_linear(b, pre, "ffn_gate", l, E, F, false);
        add_linear(b, pre, "ffn_up", l, E, arch == ARCH_ID_PHI3 || p3s ? 2 * F : F, bias);
        add_linear(b, pre, "ffn_down", l, F, E, bias);
    }
    add_norm(b, "", "output_norm", E, bias);
    if (!p->tied_output) add_linear(b, "", "output", -1, E, p->n_vocab, phi2);
}

phivk_status synth_build(const synth_params *p, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    phivk_status st = check_params(p);
    if (st) return st;
    const int arch = arch_id(p->arch);
    const int64_t E = p->n_embd, hd = E / p->n_head;
    const int64_t KV = hd * (p->n_head_kv ? p->n_head_kv : p->n_head), F = p->n_ff;
    /* the longest row: a matrix's columns or a bias's length (qkv, fused up, vocab) */
    int64_t widest = E + 2 * KV;
    if (p->n_ctx > widest && arch == ARCH_ID_GPTNEO) widest = p->n_ctx;
    if (2 * F > widest) widest = 2 * F;
    if (p->n_vocab > widest) widest = p->n_vocab;
    builder b = {.p = p, .w = gguf_writer_create()};
    b.row = malloc((size_t)widest * sizeof *b.row);
    if (!b.w || !b.row) {
        b.st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a synthetic model");
        goto done;
    }
    set_hparams(&b, arch);
    add_vocab(&b, arch);
    add_tensors(&b, arch);
    if (!b.st) b.st = gguf_writer_build(b.w, data, size);
done:
    for (int i = 0; i < b.n_made; i++) free(b.made[i].data);
    free(b.row);
    gguf_writer_destroy(b.w);
    return b.st;
}

phivk_status synth_tensor_bytes(const synth_params *p, uint64_t *bytes) {
    *bytes = 0;
    phivk_status st = check_params(p);
    if (st) return st;
    builder b = {.p = p}; /* no writer: add() only counts */
    add_tensors(&b, arch_id(p->arch));
    *bytes = b.bytes;
    return b.st;
}

phivk_status synth_save(const synth_params *p, const char *path) {
    void *data;
    size_t size;
    phivk_status st = synth_build(p, &data, &size);
    if (st) return st;
    FILE *f = fopen(path, "wb");
    if (!f) st = pvk_fail(PHIVK_ERR_IO, "cannot create '%s'", path);
    else if (fwrite(data, 1, size, f) != size) st = pvk_fail(PHIVK_ERR_IO, "cannot write '%s'", path);
    if (f && fclose(f) && !st) st = pvk_fail(PHIVK_ERR_IO, "cannot write '%s'", path);
    free(data);
    return st;
}

int64_t synth_param_count(const synth_params *p) {
    const int64_t E = p->n_embd, hd = p->n_head ? E / p->n_head : 0;
    const int64_t KV = hd * (p->n_head_kv ? p->n_head_kv : p->n_head), F = p->n_ff;
    const int arch = arch_id(p->arch);
    const bool neo = arch == ARCH_ID_GPTNEO;
    const int64_t ffn_in = arch == ARCH_ID_PHI2 || neo ? F : 2 * F; /* up (+gate) */
    int64_t layer = E * (E + 2 * KV) + E * E + E * ffn_in + F * E + 2 * E;
    if (arch == ARCH_ID_PHI2) layer += (E + 2 * KV) + E + F + E; /* biases; one norm w+b */
    if (arch == ARCH_ID_PHI3SMALL) layer += (E + 2 * KV) + E + 2 * F + E + 2 * E; /* biases; norm biases */
    if (neo) layer += E + F + E + 2 * E;                         /* out, up, down biases; norm biases */
    /* output norm; phi2 adds its bias and the output bias, gptneo its norm bias and
     * positions, phi3small its norm bias */
    const int64_t head = arch == ARCH_ID_PHI2 ? 2 * E + p->n_vocab
                         : neo                ? 2 * E + (int64_t)p->n_ctx * E
                         : arch == ARCH_ID_PHI3SMALL ? 2 * E
                                                     : E;
    return (int64_t)p->n_vocab * E * (p->tied_output ? 1 : 2) + p->n_layer * layer + head;
}
