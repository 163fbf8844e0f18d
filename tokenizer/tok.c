/* The vocabulary (loading from GGUF, indexes, special tokens, stop tokens), the
 * special-token partition, and encoding through the vocabulary's tokenizer. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ loading */

static phivk_status get_array(const gguf_file *f, const char *key, bool required,
                            const gguf_kv **out) {
    const gguf_kv *kv = gguf_find(f, key);
    *out = NULL;
    if (!kv) {
        if (required) return pvk_fail(PHIVK_ERR_BAD_FILE, "the file has no %s: not a model or vocabulary file", key);
        return PHIVK_OK;
    }
    if (kv->type != GGUF_ARRAY) return pvk_fail(PHIVK_ERR_BAD_FILE, "%s is not an array", key);
    *out = kv;
    return PHIVK_OK;
}

/* An id key: absent -> fallback; present -> must name a token. */
static phivk_status get_id(const gguf_file *f, const char *key, int32_t n_tokens, int32_t fallback,
                         int32_t *out) {
    int64_t id;
    *out = fallback < n_tokens ? fallback : -1;
    if (!gguf_find(f, key)) return PHIVK_OK;
    if (!gguf_get_i64(f, key, &id))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s is not an integer", key);
    if (id < 0 || id >= n_tokens)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "%s = %lld is outside the vocabulary (%d tokens)", key,
                        (long long)id, n_tokens);
    *out = (int32_t)id;
    return PHIVK_OK;
}

static bool get_bool_or(const gguf_file *f, const char *key, bool fallback) {
    bool b;
    return gguf_get_bool(f, key, &b) ? b : fallback;
}

static char *dup_str(gguf_str s) {
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
    }
    return p;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int byte_token_value(const char *t, uint32_t n) {
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    int hi = hexval(t[3]), lo = hexval(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Writes what detokenization prints for token t into out (room for text_len bytes:
 * no rendering is longer than the stored text). */
static uint32_t render_piece(tok_model model, const tok_token *t, char *out) {
    switch (t->type) {
    case TOK_UNUSED:
        return 0; /* as llama.cpp: never printed */
    case TOK_BYTE: {
        int b = byte_token_value(t->text, t->text_len);
        if (b >= 0) {
            out[0] = (char)b;
            return 1;
        }
        break;
    }
    case TOK_NORMAL:
    case TOK_UNDEFINED:
        if (model == TOK_MODEL_BPE) return tok_bpe_decode_piece(t->text, t->text_len, out);
        if (model == TOK_MODEL_TIKTOKEN) break; /* the stored text is the token's bytes */
        {
            uint32_t o = 0;
            for (uint32_t i = 0; i < t->text_len; i++) {
                if (i + 2 < t->text_len && memcmp(t->text + i, "\xE2\x96\x81", 3) == 0) {
                    out[o++] = ' ';
                    i += 2;
                } else {
                    out[o++] = t->text[i];
                }
            }
            return o;
        }
    default:
        break;
    }
    memcpy(out, t->text, t->text_len); /* CONTROL, UNKNOWN, USER_DEFINED: as stored */
    return t->text_len;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tok_token *tk = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (tk[x].text_len != tk[y].text_len) return tk[x].text_len > tk[y].text_len ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void add_stop(tok_vocab *v, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < v->n_stop; i++)
        if (v->stop[i] == id) return;
    if (v->n_stop < (int)(sizeof v->stop / sizeof v->stop[0])) v->stop[v->n_stop++] = id;
}

static void add_stop_text(tok_vocab *v, const char *text) {
    add_stop(v, tok_find(v, text, strlen(text)));
}

static phivk_status load_tokens(const gguf_file *f, tok_vocab *v) {
    const gguf_kv *toks, *scores, *types;
    phivk_status st = get_array(f, "tokenizer.ggml.tokens", true, &toks);
    if (!st) st = get_array(f, "tokenizer.ggml.scores", false, &scores);
    if (!st) st = get_array(f, "tokenizer.ggml.token_type", false, &types);
    if (st) return st;
    if (toks->arr_type != GGUF_STRING || toks->arr_n == 0 || toks->arr_n > (1u << 24))
        return pvk_fail(PHIVK_ERR_BAD_FILE,
                        "tokenizer.ggml.tokens must be 1 to 16777216 strings (has %llu of type %d)",
                        (unsigned long long)toks->arr_n, (int)toks->arr_type);
    if (scores && scores->arr_n != toks->arr_n)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.scores has %llu entries for %llu tokens",
                        (unsigned long long)scores->arr_n, (unsigned long long)toks->arr_n);
    if (types && types->arr_n != toks->arr_n)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                        (unsigned long long)types->arr_n, (unsigned long long)toks->arr_n);

    v->n_tokens = (int32_t)toks->arr_n;
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    if (!v->tokens) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %d tokens", v->n_tokens);

    uint64_t text_bytes = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        gguf_str s;
        if (!gguf_arr_str(f, toks, (uint64_t)i, &s))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.tokens[%d] is unreadable", i);
        if (s.len > 65536)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.tokens[%d] is %llu bytes long", i,
                            (unsigned long long)s.len);
        text_bytes += s.len + 1;
    }
    /* text + NUL, then the rendering (never longer than the text). */
    v->arena = malloc(text_bytes * 2);
    if (!v->arena) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the token texts");
    char *p = v->arena;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        tok_token *t = &v->tokens[i];
        gguf_str s;
        gguf_arr_str(f, toks, (uint64_t)i, &s);
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
        t->text = p;
        t->text_len = (uint32_t)s.len;
        p += s.len + 1;
        int64_t ty = TOK_NORMAL;
        if (types && (!gguf_arr_i64(types, (uint64_t)i, &ty) || ty < 0 || ty > TOK_BYTE))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.token_type[%d] is not a token type (0..6)", i);
        t->type = (uint8_t)ty;
        if (scores && !gguf_arr_f32(scores, (uint64_t)i, &t->score))
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.scores[%d] is not a number", i);
    }
    st = tok_map_init(&v->by_text, (uint64_t)v->n_tokens);
    if (st) return st;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const tok_token *t = &v->tokens[i];
        if (tok_find(v, t->text, t->text_len) < 0)
            tok_map_put(&v->by_text, tok_hash(t->text, t->text_len), (uint32_t)i);
    }
    /* Early Phi-3 files type the end-of-turn texts as plain tokens; llama.cpp
     * overrides that, and so do we, so they never print or match as text. */
    static const char *const control_texts[] = {"<|end|>", "<|endoftext|>"};
    for (size_t k = 0; k < sizeof control_texts / sizeof *control_texts; k++) {
        int32_t id = tok_find(v, control_texts[k], strlen(control_texts[k]));
        if (id >= 0) v->tokens[id].type = TOK_CONTROL;
    }
    for (int32_t i = 0; i < v->n_tokens; i++) {
        tok_token *t = &v->tokens[i];
        t->out = p;
        t->out_len = render_piece(v->model, t, p);
        p += t->out_len;
        if (t->type == TOK_CONTROL || t->type == TOK_UNKNOWN) t->attr |= TOK_ATTR_HIDDEN;
    }
    return PHIVK_OK;
}

static phivk_status load_specials(tok_vocab *v) {
    v->specials = malloc((size_t)v->n_tokens * sizeof *v->specials);
    if (!v->specials) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for special tokens");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint8_t ty = v->tokens[i].type;
        if ((ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN) &&
            v->tokens[i].text_len > 0)
            v->specials[v->n_specials++] = i;
    }
    qsort_r(v->specials, (size_t)v->n_specials, sizeof *v->specials, cmp_special, v->tokens);

    /* phi-spec choice 4: Phi-3's added tokens strip the whitespace after them
     * (HF AddedToken rstrip=True). llama.cpp keys this on general.name; we key it
     * on the vocabulary itself (SentencePiece with <|end|>), which also covers
     * renamed fine-tunes and Phi-3 files converted as arch llama. */
    if (v->model == TOK_MODEL_SPM && tok_find(v, "<|end|>", 7) >= 0) {
        for (int32_t i = 0; i < v->n_specials; i++) v->tokens[v->specials[i]].attr |= TOK_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
            int32_t id = tok_find(v, keep[k], strlen(keep[k]));
            if (id >= 0) v->tokens[id].attr &= (uint8_t)~TOK_ATTR_RSTRIP;
        }
    }
    return PHIVK_OK;
}

static phivk_status load_ids(const gguf_file *f, tok_vocab *v) {
    bool spm = v->model == TOK_MODEL_SPM;
    /* llama.cpp's SPM defaults; for BPE a missing id means none. */
    phivk_status st = get_id(f, "tokenizer.ggml.bos_token_id", v->n_tokens, spm ? 1 : -1, &v->bos);
    if (!st) st = get_id(f, "tokenizer.ggml.eos_token_id", v->n_tokens, spm ? 2 : -1, &v->eos);
    if (!st) st = get_id(f, "tokenizer.ggml.unknown_token_id", v->n_tokens, spm ? 0 : -1, &v->unk);
    if (!st) st = get_id(f, "tokenizer.ggml.eot_token_id", v->n_tokens, -1, &v->eot);
    if (st) return st;
    v->add_bos = get_bool_or(f, "tokenizer.ggml.add_bos_token", spm);
    v->add_eos = get_bool_or(f, "tokenizer.ggml.add_eos_token", false);
    v->add_space_prefix = get_bool_or(f, "tokenizer.ggml.add_space_prefix", spm);
    if (v->add_bos && v->bos < 0)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.add_bos_token is true but the file names no BOS token");
    if (v->add_eos && v->eos < 0)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.add_eos_token is true but the file names no EOS token");

    add_stop(v, v->eos);
    add_stop(v, v->eot);
    if (spm && tok_find(v, "<|end|>", 7) >= 0) {
        /* Phi-3 generation_config: eos_token_id [32000, 32001, 32007], by text. */
        add_stop_text(v, "<|endoftext|>");
        add_stop_text(v, "<|assistant|>");
        add_stop_text(v, "<|end|>");
    }
    if (!spm) add_stop_text(v, "<|endoftext|>");
    return PHIVK_OK;
}

phivk_status tok_vocab_from_gguf(const gguf_file *f, tok_vocab **out) {
    *out = NULL;
    gguf_str s;
    if (!gguf_get_str(f, "tokenizer.ggml.model", &s))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "the file has no tokenizer (tokenizer.ggml.model is missing)");
    tok_model model;
    if (s.len == 5 && !memcmp(s.ptr, "llama", 5)) model = TOK_MODEL_SPM;
    else if (s.len == 4 && !memcmp(s.ptr, "gpt2", 4)) model = TOK_MODEL_BPE;
    else if (s.len == 8 && !memcmp(s.ptr, "tiktoken", 8)) model = TOK_MODEL_TIKTOKEN;
    else {
        char shown[128];
        phivk_text_visible(s.ptr, s.len, false, shown, sizeof shown);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                        "tokenizer model '%s' is not supported (phivk runs 'llama' SentencePiece, 'gpt2' BPE and 'tiktoken')",
                        shown);
    }

    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary");
    v->model = model;
    phivk_status st = load_tokens(f, v);
    if (!st) st = load_specials(v);
    if (!st) st = tok_trie_create(v, &v->special_trie);
    if (!st) st = load_ids(f, v);
    if (st) goto fail;

    gguf_str arch = {"", 0}, tmpl;
    gguf_get_str(f, "general.architecture", &arch);
    v->arch = dup_str(arch);
    bool oom = !v->arch;
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl)) {
        v->chat_template = dup_str(tmpl);
        oom = oom || !v->chat_template;
    }
    if (oom) {
        st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary");
        goto fail;
    }

    for (int b = 0; b < 256; b++) v->byte_id[b] = -1;
    if (model == TOK_MODEL_SPM) {
        v->spm_words = tok_spm_words_independent(v);
        for (int b = 0; b < 256; b++) {
            char hex[7];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            v->byte_id[b] = tok_find(v, hex, 6);
            if (v->byte_id[b] < 0 && b < 0x80) { /* a vocabulary without byte tokens */
                char c = (char)b;
                int32_t id = tok_find(v, &c, 1);
                if (id >= 0 && tok_type_spellable(v->tokens[id].type)) v->byte_id[b] = id;
            }
        }
    } else if (model == TOK_MODEL_BPE) {
        st = tok_bpe_create(f, v, &v->bpe);
        if (st) goto fail;
    } else {
        st = tok_tt_create(f, v, &v->tt);
        if (st) goto fail;
    }
    *out = v;
    return PHIVK_OK;
fail:
    tok_vocab_destroy(v);
    return st;
}

void tok_vocab_destroy(tok_vocab *v) {
    if (!v) return;
    tok_bpe_free(v->bpe);
    tok_tt_free(v->tt);
    tok_map_free(&v->by_text);
    free(v->tokens);
    free(v->specials);
    tok_trie_free(v->special_trie);
    free(v->arch);
    free(v->chat_template);
    free(v->arena);
    free(v);
}

/* ------------------------------------------------------------ encoding */

/* Occurrences of special token specials[rank] at bytes start .. start+count-1:
 * in a run of one character, a token made of it occurs at every position, and
 * one entry per token keeps the list as short as the run's distinct tokens. */
typedef struct tok_hit {
    int32_t rank;
    uint32_t start, count;
} tok_hit;

typedef struct hits {
    tok_hit *v;
    size_t n, cap;
} hits;

static phivk_status hits_push(hits *h, tok_hit x) {
    tok_hit *nv = tok_grow(h->v, &h->cap, h->n + 1, sizeof *nv);
    if (!nv) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for special-token matches");
    h->v = nv;
    h->v[h->n++] = x;
    return PHIVK_OK;
}

static int cmp_hit(const void *a, const void *b) {
    const tok_hit *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_frag(const void *a, const void *b) {
    const tok_frag *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static bool is_c_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Whether [s, e) overlaps one of the sorted, disjoint plain spans. */
static bool in_plain(const tok_encode_params *p, size_t s, size_t e) {
    size_t lo = 0, hi = p->n_plain; /* the first span that ends after s */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->plain[mid].off + p->plain[mid].len <= s) lo = mid + 1;
        else hi = mid;
    }
    return lo < p->n_plain && p->plain[lo].off < e;
}

/* Every occurrence of a special token that may be cut, from one pass of the
 * automaton: the matches ending at a byte are the hit chain of its state. The
 * j-th match extends the entry of the j-th match one byte earlier when it is the
 * same token one byte further on (the chain repeats itself along a run). */
static phivk_status find_hits(const tok_vocab *v, const char *text, size_t len, const tok_encode_params *p,
                            hits *out) {
    const tok_trie *t = v->special_trie;
    size_t *prev = NULL, *cur = NULL, n_prev = 0, cap_prev = 0, cap_cur = 0;
    int32_t s = 0;
    phivk_status st = PHIVK_OK;
    for (size_t i = 0; i < len && !st; i++) {
        s = tok_trie_step(t, s, (uint8_t)text[i]);
        size_t j = 0;
        for (int32_t m = t->rank[s] >= 0 ? s : t->hit[s]; m >= 0 && !st; m = t->hit[m]) {
            /* Of tokens with the same text, the first that may be cut here. */
            for (int32_t r = t->rank[m]; r >= 0 && !st; r = t->same[r]) {
                const tok_token *tk = &v->tokens[v->specials[r]];
                size_t start = i + 1 - tk->text_len;
                if (tk->type != TOK_USER_DEFINED && (!p->parse_special || in_plain(p, start, i + 1))) continue;
                size_t *nc = j < cap_cur ? cur : tok_grow(cur, &cap_cur, j + 1, sizeof *nc);
                if (!nc) {
                    st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for special-token matches");
                    break;
                }
                cur = nc;
                tok_hit *e = j < n_prev ? &out->v[prev[j]] : NULL;
                bool extends = e && e->rank == r; /* then its last start is one byte back */
                if (extends) e->count++;
                else st = hits_push(out, (tok_hit){r, (uint32_t)start, 1});
                cur[j] = extends ? prev[j] : out->n - 1;
                j++;
                break;
            }
        }
        size_t *swap = prev, cap = cap_prev;
        prev = cur, cap_prev = cap_cur;
        cur = swap, cap_cur = cap;
        n_prev = j;
    }
    free(prev);
    free(cur);
    return st;
}

static bool is_taken(const uint8_t *bits, size_t i) { return bits[i / 8] >> (i % 8) & 1; }
static void take(uint8_t *bits, size_t i) { bits[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* The first i' in [i, end) not taken, or end; whole taken bytes at a time. */
static size_t next_free(const uint8_t *bits, size_t i, size_t end) {
    while (i < end && is_taken(bits, i)) i = i % 8 == 0 && bits[i / 8] == 0xFF ? i + 8 : i + 1;
    return i < end ? i : end;
}

/* The cuts llama.cpp's one-token-at-a-time loop makes, from the list of every
 * occurrence: in priority order (rank, then position), an occurrence is cut when
 * all its bytes are still raw. Checking its first and last byte suffices: what is
 * already taken is runs of at least its length (earlier ranks are no shorter, and
 * eaten white space extends the token before it), and such a run cannot lie
 * strictly inside it. */
phivk_status tok_partition(const tok_vocab *v, const char *text, size_t len, const tok_encode_params *p,
                         tok_frag **out, size_t *n_out) {
    hits h = {0};
    uint8_t *taken = NULL; /* a bit per byte: cut or eaten */
    tok_frag *cuts = NULL, *fs = NULL;
    size_t n_cuts = 0, n_fs = 0;
    *out = NULL;
    *n_out = 0;
    phivk_status st = find_hits(v, text, len, p, &h);
    if (!st && h.n) {
        taken = calloc(len / 8 + 1, 1);
        if (!taken) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the special-token partition");
    }
    if (!st && h.n) qsort(h.v, h.n, sizeof *h.v, cmp_hit);
    size_t cap_cuts = 0;
    for (size_t k = 0; k < h.n && !st; k++) {
        int32_t id = v->specials[h.v[k].rank];
        const tok_token *tk = &v->tokens[id];
        size_t s = h.v[k].start, last = s + h.v[k].count; /* its starts: [s, last) */
        while (!st && (s = next_free(taken, s, last)) < last) {
            size_t e = s + tk->text_len;
            if (is_taken(taken, e - 1)) {
                s++;
                continue;
            }
            for (size_t i = s; i < e; i++) take(taken, i);
            for (; (tk->attr & TOK_ATTR_RSTRIP) && e < len && !is_taken(taken, e) && is_c_space(text[e]); e++)
                take(taken, e);
            tok_frag *nc = tok_grow(cuts, &cap_cuts, n_cuts + 1, sizeof *nc);
            if (!nc) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the special-token partition");
            else (cuts = nc)[n_cuts++] = (tok_frag){id, s, e - s}; /* len: the token and what it ate */
            s = e;
        }
    }
    if (!st) {
        if (n_cuts) qsort(cuts, n_cuts, sizeof *cuts, cmp_frag);
        fs = malloc((2 * n_cuts + 1) * sizeof *fs);
        if (!fs) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for text fragments");
    }
    size_t pos = 0;
    for (size_t k = 0; k < n_cuts && !st; k++) {
        if (cuts[k].off > pos) fs[n_fs++] = (tok_frag){-1, pos, cuts[k].off - pos};
        fs[n_fs++] = (tok_frag){cuts[k].id, cuts[k].off, v->tokens[cuts[k].id].text_len};
        pos = cuts[k].off + cuts[k].len;
    }
    if (!st && pos < len) fs[n_fs++] = (tok_frag){-1, pos, len - pos};
    free(h.v);
    free(taken);
    free(cuts);
    if (st) {
        free(fs);
        return st;
    }
    *out = fs;
    *n_out = n_fs;
    return PHIVK_OK;
}

phivk_status tok_encode(const tok_vocab *v, const char *text, size_t len,
                      const tok_encode_params *p, tok_ids *out) {
    if (len > (1u << 30))
        return pvk_fail(PHIVK_ERR_INVALID, "text of %zu bytes is too long to tokenize at once (limit 1 GiB)", len);
    size_t bad = tok_utf8_invalid_at(text, len);
    if (bad < len) return pvk_fail(PHIVK_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
    if (p->add_bos && v->bos < 0)
        return pvk_fail(PHIVK_ERR_INVALID, "this vocabulary has no BOS token to add");
    if (p->add_eos && v->eos < 0)
        return pvk_fail(PHIVK_ERR_INVALID, "this vocabulary has no EOS token to add");

    size_t n0 = out->n, n_fs;
    tok_frag *fs;
    phivk_status st = tok_partition(v, text, len, p, &fs, &n_fs);
    if (!st && p->add_bos) st = tok_ids_push(out, v->bos);
    /* SPM prefixes a space to the first raw fragment and to each one after a special. */
    bool prev_special = true;
    for (size_t i = 0; i < n_fs && !st; i++) {
        tok_frag f = fs[i];
        if (f.id >= 0) {
            st = tok_ids_push(out, f.id);
        } else if (v->model == TOK_MODEL_SPM) {
            st = tok_spm_encode(v, text + f.off, f.len, v->add_space_prefix && prev_special, out);
        } else if (v->model == TOK_MODEL_BPE) {
            st = tok_bpe_encode(v, text + f.off, f.len, out);
        } else {
            st = tok_tt_encode(v, text + f.off, f.len, out);
        }
        prev_special = f.id >= 0;
    }
    if (!st && p->add_eos) st = tok_ids_push(out, v->eos);
    free(fs);
    if (st) out->n = n0;
    return st;
}
