/* What the tokenizers and the vocabulary share, below all of them: UTF-8 rules, the
 * hash index, growing arrays, byte fallback, and the merge loop of both BPE kinds. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ UTF-8 */

int tok_utf8_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

/* The second byte carries the overlong / surrogate / > U+10FFFF exclusions. */
bool tok_utf8_cont_ok(uint8_t lead, int k, uint8_t b) {
    if (k == 1) {
        if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
        if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
        if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
        if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    }
    return (b & 0xC0) == 0x80;
}

size_t tok_utf8_invalid_at(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int n = tok_utf8_len(p[i]);
        if (n == 0 || len - i < (size_t)n) return i;
        for (int k = 1; k < n; k++)
            if (!tok_utf8_cont_ok(p[i], k, p[i + k])) return i;
        i += (size_t)n;
    }
    return len;
}

/* ------------------------------------------------------------ hash index */

uint64_t tok_hash(const void *p, size_t n) {
    /* FNV-1a, then a finaliser so the low bits (the slot) depend on every byte. */
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

phivk_status tok_map_init(tok_map *m, uint64_t n_entries) {
    uint64_t slots = 16;
    while (slots < n_entries * 2) slots *= 2; /* load factor <= 1/2 */
    m->hash = calloc(slots, sizeof *m->hash);
    m->idx = calloc(slots, sizeof *m->idx);
    m->mask = slots - 1;
    if (!m->hash || !m->idx) {
        tok_map_free(m);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a tokenizer index");
    }
    return PHIVK_OK;
}

void tok_map_free(tok_map *m) {
    free(m->hash);
    free(m->idx);
    m->hash = NULL;
    m->idx = NULL;
}

void tok_map_put(tok_map *m, uint64_t hash, uint32_t entry) {
    uint64_t s = hash & m->mask;
    while (m->idx[s]) s = (s + 1) & m->mask;
    m->hash[s] = hash;
    m->idx[s] = entry + 1;
}

int64_t tok_map_get(const tok_map *m, uint64_t hash, tok_map_eq_fn eq, const void *ctx,
                    const void *key) {
    for (uint64_t s = hash & m->mask; m->idx[s]; s = (s + 1) & m->mask)
        if (m->hash[s] == hash && eq(ctx, m->idx[s] - 1, key)) return m->idx[s] - 1;
    return -1;
}

typedef struct span {
    const char *p;
    size_t n;
} span;

static bool text_eq(const void *ctx, uint32_t entry, const void *key) {
    const tok_token *t = &((const tok_vocab *)ctx)->tokens[entry];
    const span *k = key;
    return t->text_len == k->n && memcmp(t->text, k->p, k->n) == 0;
}

int32_t tok_find(const tok_vocab *v, const char *text, size_t len) {
    span k = {text, len};
    return (int32_t)tok_map_get(&v->by_text, tok_hash(text, len), text_eq, v, &k);
}

void *tok_grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 16;
    while (c < need && c <= SIZE_MAX / 2) c *= 2;
    void *np = c >= need && c <= SIZE_MAX / elem ? realloc(p, c * elem) : NULL;
    if (np) *cap = c;
    return np;
}

phivk_status tok_ids_push(tok_ids *ids, int32_t id) {
    int32_t *nv = tok_grow(ids->v, &ids->cap, ids->n + 1, sizeof *nv);
    if (!nv) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %zu tokens", ids->n + 1);
    ids->v = nv;
    ids->v[ids->n++] = id;
    return PHIVK_OK;
}

phivk_status tok_push_bytes(const tok_vocab *v, const char *bytes, size_t n, tok_ids *out) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)bytes[i];
        int32_t id = v->byte_id[b] >= 0 ? v->byte_id[b] : v->unk;
        if (id < 0)
            return pvk_fail(PHIVK_ERR_UNSUPPORTED,
                            "byte 0x%02X has no token in this vocabulary and it has no unknown token",
                            b);
        phivk_status st = tok_ids_push(out, id);
        if (st) return st;
    }
    return PHIVK_OK;
}

/* ------------------------------------------------------------ merge loop */

typedef struct tok_pair {
    float key;
    int32_t left, right;
    uint32_t len;          /* bytes of the merged span: detects stale pairs */
} tok_pair;

struct tok_heap {
    tok_pair *v;
    size_t n, cap;
};

tok_heap *tok_heap_create(void) { return calloc(1, sizeof(tok_heap)); }

void tok_heap_free(tok_heap *h) {
    if (!h) return;
    free(h->v);
    free(h);
}

static bool pair_before(const tok_pair *a, const tok_pair *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static phivk_status heap_push(tok_heap *h, tok_pair p) {
    tok_pair *nv = tok_grow(h->v, &h->cap, h->n + 1, sizeof *nv);
    if (!nv) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the merge queue");
    h->v = nv;
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = p;
    return PHIVK_OK;
}

static tok_pair heap_pop(tok_heap *h) {
    tok_pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c])) c++;
        if (!pair_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static phivk_status try_pair(tok_heap *h, const char *buf, const tok_sym *syms, int32_t l,
                           int32_t r, tok_pair_fn pair, const void *ctx) {
    if (l < 0 || r < 0) return PHIVK_OK;
    tok_pair p = {0, l, r, syms[l].len + syms[r].len};
    if (!pair(ctx, buf, syms[l].off, syms[l].len, p.len, &p.key)) return PHIVK_OK;
    return heap_push(h, p);
}

phivk_status tok_merge(tok_heap *h, const char *buf, tok_sym *syms, int32_t n, tok_pair_fn pair,
                     const void *ctx) {
    phivk_status st = PHIVK_OK;
    h->n = 0;
    for (int32_t i = 1; i < n && !st; i++) st = try_pair(h, buf, syms, i - 1, i, pair, ctx);
    while (h->n && !st) {
        tok_pair p = heap_pop(h);
        tok_sym *l = &syms[p.left], *r = &syms[p.right];
        /* Spans only grow, so unchanged lengths mean the pair is still adjacent. */
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.len) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = p.left;
        st = try_pair(h, buf, syms, l->prev, p.left, pair, ctx);
        if (!st) st = try_pair(h, buf, syms, p.left, l->next, pair, ctx);
    }
    return st;
}

phivk_status tok_merge_bytes(tok_heap *h, const char *text, size_t off, size_t len, tok_sym **syms, size_t *cap,
                             tok_pair_fn pair, const void *ctx) {
    tok_sym *ns = tok_grow(*syms, cap, len, sizeof *ns);
    if (!ns) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a %zu-byte piece", len);
    *syms = ns;
    const int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++) ns[i] = (tok_sym){(uint32_t)(off + (size_t)i), 1, i - 1, i + 1 < n ? i + 1 : -1};
    return tok_merge(h, text, ns, n, pair, ctx);
}
