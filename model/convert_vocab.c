#include "convert_vocab.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_text.h"

/* llama_token_type values (phi-spec 4.3) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

struct cvocab {
    bool spm;                /* "llama" (scores) rather than "gpt2" (merges) */
    const char *pre;         /* tokenizer.ggml.pre */
    int32_t n;
    char **text;
    float *score;
    int32_t *type;
    char **merges;
    int64_t n_merges;
    int32_t bos, eos, unk, pad; /* -1: none */
    int add_bos, add_eos, add_space_prefix; /* -1: not written */
    char *chat_template;
};

void cvocab_destroy(cvocab *v) {
    if (!v) return;
    for (int32_t i = 0; v->text && i < v->n; i++) free(v->text[i]);
    for (int64_t i = 0; v->merges && i < v->n_merges; i++) free(v->merges[i]);
    free(v->text);
    free(v->score);
    free(v->type);
    free(v->merges);
    free(v->chat_template);
    free(v);
}

static phivk_status cvocab_alloc(int32_t n, bool spm, cvocab **out) {
    cvocab *v = calloc(1, sizeof *v);
    if (v) {
        *v = (cvocab){.spm = spm, .pre = "default", .n = n, .bos = -1, .eos = -1, .unk = -1, .pad = -1,
                      .add_bos = -1, .add_eos = -1, .add_space_prefix = -1};
        v->text = calloc((size_t)n, sizeof *v->text);
        v->score = calloc((size_t)n, sizeof *v->score);
        v->type = calloc((size_t)n, sizeof *v->type);
    }
    if (!v || !v->text || !v->score || !v->type) {
        cvocab_destroy(v);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a vocabulary of %d tokens", (int)n);
    }
    *out = v;
    return PHIVK_OK;
}

void cvocab_set_add_bos(cvocab *v, bool add_bos) { v->add_bos = add_bos; }

/* "<0xHH>" */
static bool is_byte_piece(const char *s) {
    unsigned x;
    char tail;
    return strlen(s) == 6 && sscanf(s, "<0x%2X>%c", &x, &tail) == 1;
}

/* Pads rows no token claimed with "[PADn]" (UNUSED), as convert_hf_to_gguf does. */
static phivk_status pad_holes(cvocab *v) {
    for (int32_t i = 0; i < v->n; i++) {
        if (v->text[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", (int)i);
        v->type[i] = TT_UNUSED;
        if (!(v->text[i] = strdup(pad))) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    }
    return PHIVK_OK;
}

/* ------------------------------------------------------ text -> id lookup */

/* Open addressing over the token texts, for merges and named special tokens. */
typedef struct lookup {
    int32_t *slot; /* id + 1, 0 empty */
    size_t mask;
} lookup;

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static bool lookup_build(lookup *l, const cvocab *v) {
    size_t cap = 16;
    while (cap < 2 * (size_t)v->n) cap *= 2;
    l->slot = calloc(cap, sizeof *l->slot);
    l->mask = cap - 1;
    if (!l->slot) return false;
    for (int32_t i = 0; i < v->n; i++) {
        if (!v->text[i]) continue;
        size_t h = hash_str(v->text[i], strlen(v->text[i])) & l->mask;
        while (l->slot[h]) h = (h + 1) & l->mask;
        l->slot[h] = i + 1;
    }
    return true;
}

/* The lowest id whose text is s[0..n), or -1. */
static int32_t lookup_find(const lookup *l, const cvocab *v, const char *s, size_t n) {
    int32_t best = -1;
    for (size_t h = hash_str(s, n) & l->mask; l->slot[h]; h = (h + 1) & l->mask) {
        const char *t = v->text[l->slot[h] - 1];
        if (strlen(t) == n && !memcmp(t, s, n) && (best < 0 || l->slot[h] - 1 < best)) best = l->slot[h] - 1;
    }
    return best;
}

/* ----------------------------------------------------------- Hugging Face */

/* A special token named in tokenizer_config.json: a string or {"content": ...}. */
static const char *token_text(const cJSON *j) {
    if (cJSON_IsString(j)) return j->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int json_bool_or(const cJSON *obj, const char *key, int dflt) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : dflt;
}

/* Whether a normalizer or pre-tokenizer (nested in Sequences) prepends "▁". */
static bool prepends_space(const cJSON *j) {
    if (!cJSON_IsObject(j)) return false;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(t, "Prepend")) return true;
    if (!strcmp(t, "Metaspace")) {
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
        if (cJSON_IsString(scheme)) return strcmp(scheme->valuestring, "never") != 0;
        return json_bool_or(j, "add_prefix_space", 1);
    }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!items) items = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    for (const cJSON *e = items ? items->child : NULL; e; e = e->next)
        if (prepends_space(e)) return true;
    return false;
}

/* A JSON token id as an integer; -1 for anything that is not one. */
static int64_t json_id(const cJSON *j) {
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble < 2147483648.0) ||
        j->valuedouble != (double)(int64_t)j->valuedouble)
        return -1;
    return (int64_t)j->valuedouble;
}

static phivk_status set_token(cvocab *v, const char *path, int64_t id, const char *text, int32_t type) {
    if (id < 0) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: token '%s' has no valid id", path, text);
    if (id >= v->n)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: token '%s' has id %" PRId64 ", beyond the model's %d embedding rows",
                        path, text, id, (int)v->n);
    if (v->text[id] && strcmp(v->text[id], text))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: id %" PRId64 " is both '%s' and '%s'", path, id, v->text[id], text);
    free(v->text[id]);
    v->type[id] = type;
    return (v->text[id] = strdup(text)) ? PHIVK_OK : pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
}

/* The vocabulary, added tokens and merges of tokenizer.json. */
static phivk_status read_tokenizer_json(cvocab **out, const char *path, int32_t n_vocab, const char *byte_pre,
                                      const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE"))
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (phivk converts BPE)", path,
                        cJSON_IsString(mtype) ? mtype->valuestring : "(none)");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: model.vocab or model.merges is missing", path);
    const bool spm = json_bool_or(model, "byte_fallback", 0);
    cvocab *v;
    phivk_status st = cvocab_alloc(n_vocab, spm, &v);
    if (st) return st;
    *out = v;
    v->pre = spm ? "default" : byte_pre;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    for (const cJSON *e = vocab->child; e && !st; e = e->next) {
        if (!cJSON_IsNumber(e)) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: vocab entry '%s' has no id", path, e->string);
        const int32_t type = spm && is_byte_piece(e->string)                             ? TT_BYTE
                             : cJSON_IsString(unk) && !strcmp(unk->valuestring, e->string) ? TT_UNKNOWN
                                                                                           : TT_NORMAL;
        const int64_t id = json_id(e);
        st = set_token(v, path, id, e->string, type);
        if (!st && type == TT_UNKNOWN) v->unk = (int32_t)id;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *e = added ? added->child : NULL; e && !st; e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *text = token_text(e);
        if (!cJSON_IsNumber(id) || !text) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s: an added token lacks id or content", path);
        st = set_token(v, path, json_id(id), text,
                       json_bool_or(e, "special", 0) ? TT_CONTROL : TT_USER_DEFINED);
    }
    if (st) return st;

    const int64_t n_merges = cJSON_GetArraySize(merges);
    lookup l = {0};
    if (!(v->merges = calloc((size_t)n_merges + 1, sizeof *v->merges)) || (spm && !lookup_build(&l, v))) {
        free(l.slot);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %" PRId64 " merges", n_merges);
    }
    /* SentencePiece style: llama.cpp merges the pair whose joined text scores highest,
     * HF the pair of lowest merge rank; a token scored minus the rank of the first
     * merge that makes it gives the same choices. Tokens no merge makes keep 0. */
    bool *scored = spm ? calloc((size_t)v->n, 1) : NULL;
    if (spm && !scored) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    for (const cJSON *e = merges->child; e && !st; e = e->next) {
        char *m = NULL;
        size_t split = 0;
        if (cJSON_IsString(e) && (m = strdup(e->valuestring))) {
            const char *sp = strchr(m + (m[0] != 0), ' ');
            split = sp ? (size_t)(sp - m) : 0;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            const char *a = e->child->valuestring, *b = e->child->next->valuestring;
            split = strlen(a);
            if ((m = malloc(split + strlen(b) + 2))) sprintf(m, "%s %s", a, b);
        }
        if (!m || !split) {
            free(m);
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: merge %" PRId64 " is not a pair", path, v->n_merges);
            break;
        }
        if (spm) {
            char joined[1024];
            const size_t rn = strlen(m + split + 1);
            if (split + rn < sizeof joined) {
                memcpy(joined, m, split);
                memcpy(joined + split, m + split + 1, rn);
                const int32_t id = lookup_find(&l, v, joined, split + rn);
                if (id >= 0 && !scored[id]) {
                    v->score[id] = -(float)v->n_merges;
                    scored[id] = true;
                }
            }
        }
        v->merges[v->n_merges++] = m;
    }
    free(scored);
    free(l.slot);
    if (!st && spm) {
        /* SPM vocabularies carry scores, not merges */
        for (int64_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
        v->n_merges = 0;
        v->add_space_prefix = prepends_space(cJSON_GetObjectItemCaseSensitive(root, "normalizer")) ||
                              prepends_space(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    }
    return st ? st : pad_holes(v);
}

/* Special ids, add_bos/add_eos and the chat template from tokenizer_config.json,
 * then config.json's bos/eos ids for what it leaves open. */
static phivk_status read_specials(cvocab *v, const char *path, const cJSON *tc, const char *config) {
    lookup l;
    if (!lookup_build(&l, v)) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *ids[] = {&v->bos, &v->eos, &v->unk, &v->pad};
    phivk_status st = PHIVK_OK;
    for (int k = 0; k < 4 && tc && !st; k++) {
        const char *text = token_text(cJSON_GetObjectItemCaseSensitive(tc, keys[k]));
        if (!text) continue;
        const int32_t id = lookup_find(&l, v, text, strlen(text));
        if (id < 0)
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: %s '%s' is not in the vocabulary", path, keys[k], text);
        *ids[k] = id;
    }
    free(l.slot);
    if (st) return st;
    if (tc) {
        v->add_bos = json_bool_or(tc, "add_bos_token", v->add_bos);
        v->add_eos = json_bool_or(tc, "add_eos_token", v->add_eos);
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
        for (const cJSON *e = cJSON_IsArray(tpl) ? tpl->child : NULL; e; e = e->next) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        }
        if (cJSON_IsString(tpl) && !(v->chat_template = strdup(tpl->valuestring)))
            return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
    }
    cJSON *cfg = config ? cJSON_Parse(config) : NULL;
    static const char *const cfg_keys[] = {"bos_token_id", "eos_token_id"};
    for (int k = 0; k < 2 && cfg; k++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, cfg_keys[k]);
        if (cJSON_IsArray(j)) j = j->child; /* generation configs list several eos ids */
        if (*ids[k] < 0 && json_id(j) >= 0 && json_id(j) < v->n) *ids[k] = (int32_t)json_id(j);
    }
    cJSON_Delete(cfg);
    return PHIVK_OK;
}

phivk_status cvocab_read_hf(const char *path, int32_t n_vocab, const char *config, const char *byte_level_pre,
                          cvocab **out) {
    *out = NULL;
    char tj[4096], tcp[4096];
    struct stat sb;
    if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) {
        snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
        snprintf(tcp, sizeof tcp, "%s/tokenizer_config.json", path);
    } else {
        snprintf(tj, sizeof tj, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(tcp, sizeof tcp, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    }
    char *text = NULL, *tctext = NULL;
    phivk_status st = file_read_text(tj, &text, NULL);
    cJSON *root = st ? NULL : cJSON_Parse(text);
    if (!st && !cJSON_IsObject(root)) st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: not a JSON object", tj);
    if (!st) st = read_tokenizer_json(out, tj, n_vocab, byte_level_pre, root);
    cJSON *tc = NULL;
    if (!st && !file_read_text(tcp, &tctext, NULL)) {
        tc = cJSON_Parse(tctext);
        if (!cJSON_IsObject(tc)) st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: not a JSON object", tcp);
    }
    if (!st) st = read_specials(*out, tcp, tc, config);
    cJSON_Delete(tc);
    cJSON_Delete(root);
    free(tctext);
    free(text);
    if (st) {
        cvocab_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* -------------------------------------------------------------- llama2.c */

phivk_status cvocab_read_llama2c(const char *path, int32_t n_vocab, cvocab **out) {
    *out = NULL;
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, !stat(path, &sb) && S_ISDIR(sb.st_mode) ? "%s/tokenizer.bin" : "%s", path);
    char *buf;
    size_t size;
    phivk_status st = file_read_text(p, &buf, &size);
    if (st) return st;
    cvocab *v = NULL;
    st = cvocab_alloc(n_vocab, true, &v);
    size_t off = 4; /* after max_token_length */
    for (int32_t id = 0; id < n_vocab && !st; id++) {
        float score;
        int32_t len;
        if (size < off + 8) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: ends at token %d of the model's %d (a tokenizer of another model?)",
                          p, (int)id, (int)n_vocab);
            break;
        }
        memcpy(&score, buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        off += 8;
        if (len < 0 || (size_t)len > size - off) {
            st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: token %d claims %d bytes, past the end of the file", p, (int)id, (int)len);
            break;
        }
        /* convert-llama2c-to-ggml: fixed names for 0..2, spaces back to "▁" */
        static const char *const fixed[3] = {"<unk>", "<s>", "</s>"};
        char *text = malloc(3 * (size_t)len + 8);
        if (!text) {
            st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory");
            break;
        }
        size_t n = 0;
        if (id < 3) {
            n = strlen(strcpy(text, fixed[id]));
        } else {
            for (int32_t i = 0; i < len; i++) {
                if (buf[off + i] == ' ') n += (size_t)sprintf(text + n, "\xe2\x96\x81");
                else text[n++] = buf[off + i];
            }
            text[n] = 0;
        }
        off += (size_t)len;
        v->text[id] = text;
        v->score[id] = score;
        v->type[id] = id == 0 ? TT_UNKNOWN : id < 3 || len == 0 ? TT_CONTROL : is_byte_piece(text) ? TT_BYTE : TT_NORMAL;
    }
    if (!st && off != size)
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "%s: %zu bytes follow the model's %d tokens (a tokenizer of another model?)", p,
                      size - off, (int)n_vocab);
    free(buf);
    if (st) {
        cvocab_destroy(v);
        return st;
    }
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    v->add_bos = true; /* run.c starts every prompt with BOS */
    *out = v;
    return PHIVK_OK;
}

/* -------------------------------------------------------------- writing */

void cvocab_write(const cvocab *v, gguf_writer *w) {
    gguf_writer_set_str(w, "tokenizer.ggml.model", v->spm ? "llama" : "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->text, (uint64_t)v->n);
    if (v->spm) gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, v->score, (uint64_t)v->n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->type, (uint64_t)v->n);
    if (!v->spm) gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (uint64_t)v->n_merges);
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    const int32_t ids[] = {v->bos, v->eos, v->unk, v->pad};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0) gguf_writer_set_u32(w, keys[k], (uint32_t)ids[k]);
    if (v->add_bos >= 0) gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->add_eos >= 0) gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    if (v->add_space_prefix >= 0) gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    if (v->chat_template) gguf_writer_set_str(w, "tokenizer.chat_template", v->chat_template);
}
