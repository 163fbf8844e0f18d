/* GPT-2 byte-level BPE (tokenizer.ggml.model "gpt2"; docs/phi-spec.md 5.2).
 *
 * GPT-2 stores pieces and merges in a "byte-to-unicode" alphabet (' ' -> U+0120
 * ...). Every byte maps to exactly one code point, so we decode the vocabulary and
 * the merges back to raw bytes once, at load, and run the pre-tokenizer and the
 * merges directly on the input bytes: the same result without re-encoding text. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

/* The GPT-2 pre-tokenizer with real Unicode letter / number classes. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct bpe_merge {
    uint32_t off, len;     /* the merged bytes in merge_bytes */
    uint32_t left_len;     /* where the two parts meet */
} bpe_merge;

struct tok_bpe {
    tok_map by_bytes;      /* decoded bytes of spellable tokens -> id */
    tok_map merges;        /* (bytes, left_len) -> rank = index into merge */
    bpe_merge *merge;
    char *merge_bytes;
    tok_regex *re;
};

/* bytes_to_unicode: printable Latin-1 bytes keep their code point, the other 68
 * bytes take U+0100.. in increasing byte order: 0x00-0x20, 0x7F-0xA0, 0xAD. */
static int cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    return 0xAD;
}

uint32_t tok_bpe_decode_piece(const char *text, uint32_t len, char *out) {
    const uint8_t *p = (const uint8_t *)text;
    uint32_t o = 0;
    for (uint32_t i = 0; i < len;) {
        uint32_t n = (uint32_t)tok_utf8_len(p[i]);
        if (n == 0 || n > len - i || tok_utf8_invalid_at(text + i, n) != n) n = 1;
        uint32_t cp = p[i];
        if (n > 1) {
            cp &= 0x7Fu >> n;
            for (uint32_t k = 1; k < n; k++) cp = cp << 6 | (p[i + k] & 0x3F);
        }
        int b = n == 1 && p[i] >= 0x80 ? -1 : cp_to_byte(cp);
        if (b >= 0) {
            out[o++] = (char)b;
        } else {
            memcpy(out + o, text + i, n); /* outside the byte alphabet: keep as stored */
            o += n;
        }
        i += n;
    }
    return o;
}

static bool bytes_eq(const void *ctx, uint32_t entry, const void *key) {
    const tok_token *t = &((const tok_token *)ctx)[entry];
    const tok_token *k = key; /* only out / out_len are used */
    return t->out_len == k->out_len && memcmp(t->out, k->out, k->out_len) == 0;
}

static int32_t find_bytes(const tok_bpe *b, const tok_token *tokens, const char *p, uint32_t n) {
    tok_token k = {.out = p, .out_len = n};
    return (int32_t)tok_map_get(&b->by_bytes, tok_hash(p, n), bytes_eq, tokens, &k);
}

typedef struct merge_key {
    const char *p;
    uint32_t len, left_len;
} merge_key;

static uint64_t merge_hash(const char *p, uint32_t len, uint32_t left_len) {
    return tok_hash(p, len) ^ ((uint64_t)left_len * 0x9E3779B97F4A7C15ull);
}

static bool merge_eq(const void *ctx, uint32_t entry, const void *key) {
    const tok_bpe *b = ctx;
    const bpe_merge *m = &b->merge[entry];
    const merge_key *k = key;
    return m->len == k->len && m->left_len == k->left_len &&
           memcmp(b->merge_bytes + m->off, k->p, k->len) == 0;
}

static bool bpe_pair(const void *ctx, const char *buf, uint32_t off, uint32_t left_len,
                     uint32_t len, float *key) {
    const tok_bpe *b = ctx;
    merge_key k = {buf + off, len, left_len};
    int64_t rank = tok_map_get(&b->merges, merge_hash(k.p, len, left_len), merge_eq, b, &k);
    if (rank < 0) return false;
    *key = (float)rank; /* exact: tok_bpe_create caps the merge count at 2^24 */
    return true;
}

static phivk_status load_merges(const gguf_file *f, tok_bpe *b) {
    const gguf_kv *kv = gguf_find(f, "tokenizer.ggml.merges");
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "a gpt2 tokenizer needs tokenizer.ggml.merges (an array of strings)");
    if (kv->arr_n > (1u << 24))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.merges has %llu entries (limit 16777216)",
                        (unsigned long long)kv->arr_n);
    uint64_t total = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        gguf_str s;
        if (!gguf_arr_str(f, kv, i, &s) || s.len > 65536)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.merges[%llu] is unreadable", (unsigned long long)i);
        total += s.len;
    }
    b->merge = calloc(kv->arr_n ? kv->arr_n : 1, sizeof *b->merge);
    b->merge_bytes = malloc(total ? total : 1);
    if (!b->merge || !b->merge_bytes)
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %llu merges", (unsigned long long)kv->arr_n);
    phivk_status st = tok_map_init(&b->merges, kv->arr_n);
    if (st) return st;
    uint32_t o = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        gguf_str s;
        gguf_arr_str(f, kv, i, &s);
        /* "left right", split at the first space after index 0 */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.merges[%llu] has no space between its parts",
                            (unsigned long long)i);
        uint32_t l_text = (uint32_t)(sp - s.ptr);
        bpe_merge *m = &b->merge[i];
        m->off = o;
        m->left_len = tok_bpe_decode_piece(s.ptr, l_text, b->merge_bytes + o);
        m->len = m->left_len + tok_bpe_decode_piece(sp + 1, (uint32_t)(s.len - l_text - 1),
                                                     b->merge_bytes + o + m->left_len);
        o += m->len;
        merge_key k = {b->merge_bytes + m->off, m->len, m->left_len};
        uint64_t h = merge_hash(k.p, k.len, k.left_len);
        if (tok_map_get(&b->merges, h, merge_eq, b, &k) < 0) tok_map_put(&b->merges, h, (uint32_t)i);
    }
    return PHIVK_OK;
}

phivk_status tok_bpe_create(const gguf_file *f, tok_vocab *v, tok_bpe **out) {
    *out = NULL;
    tok_bpe *b = calloc(1, sizeof *b);
    if (!b) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the BPE tokenizer");
    phivk_status st = tok_map_init(&b->by_bytes, (uint64_t)v->n_tokens);
    if (st) goto fail;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const tok_token *t = &v->tokens[i];
        if (!tok_type_spellable(t->type) || t->out_len == 0) continue;
        if (find_bytes(b, v->tokens, t->out, t->out_len) < 0)
            tok_map_put(&b->by_bytes, tok_hash(t->out, t->out_len), (uint32_t)i);
    }
    for (int c = 0; c < 256; c++) {
        char byte = (char)c;
        v->byte_id[c] = find_bytes(b, v->tokens, &byte, 1);
    }
    st = load_merges(f, b);
    if (st) goto fail;

    st = tok_regex_create(gpt2_pattern, "GPT-2", &b->re);
    if (st) goto fail;
    *out = b;
    return PHIVK_OK;
fail:
    tok_bpe_free(b);
    return st;
}

void tok_bpe_free(tok_bpe *b) {
    if (!b) return;
    tok_map_free(&b->by_bytes);
    tok_map_free(&b->merges);
    free(b->merge);
    free(b->merge_bytes);
    tok_regex_free(b->re);
    free(b);
}

typedef struct bpe_scratch {
    const tok_vocab *v;
    tok_ids *out;
    tok_sym *syms;
    size_t cap;
    tok_heap *heap;
} bpe_scratch;

/* One pre-token: single bytes as symbols, merged by rank, then looked up. */
static phivk_status encode_word(void *ctx, const char *text, size_t off, size_t len) {
    bpe_scratch *s = ctx;
    const tok_vocab *v = s->v;
    tok_ids *out = s->out;
    if (len == 1 && v->byte_id[(uint8_t)text[off]] >= 0) return tok_ids_push(out, v->byte_id[(uint8_t)text[off]]);
    phivk_status st = tok_merge_bytes(s->heap, text, off, len, &s->syms, &s->cap, bpe_pair, v->bpe);
    for (int32_t i = 0; i >= 0 && !st; i = s->syms[i].next) {
        const tok_sym *y = &s->syms[i];
        int32_t id = find_bytes(v->bpe, v->tokens, text + y->off, y->len);
        st = id >= 0 ? tok_ids_push(out, id) : tok_push_bytes(v, text + y->off, y->len, out);
    }
    return st;
}

phivk_status tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out) {
    bpe_scratch s = {.v = v, .out = out, .heap = tok_heap_create()};
    phivk_status st = s.heap ? tok_regex_split(v->bpe->re, text, len, encode_word, &s)
                           : pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory to tokenize %zu bytes", len);
    tok_heap_free(s.heap);
    free(s.syms);
    return st;
}
