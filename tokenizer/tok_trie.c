/* The special-token matcher: an Aho-Corasick automaton over the texts of the
 * vocabulary's special tokens, built once at load. One pass over a text finds
 * every occurrence of every special token, where cutting them one token at a time
 * costs (specials x text) and takes seconds on vocabularies with 100k added tokens.
 *
 * The trie is built from the texts in byte order, so each new text shares a path
 * with the previous one up to their common prefix and a node's children appear in
 * increasing byte order (no lookups while building). Edges are then grouped per
 * node (first[]), and a node's failure link is the longest proper suffix of its
 * text that is also a node; hit[] chains the nodes on that suffix path that end a
 * token, so the matches ending at a position are a walk along hit[]. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

static int cmp_text(const void *a, const void *b, void *ctx) {
    const tok_vocab *v = ctx;
    const tok_token *x = &v->tokens[v->specials[*(const int32_t *)a]];
    const tok_token *y = &v->tokens[v->specials[*(const int32_t *)b]];
    uint32_t n = x->text_len < y->text_len ? x->text_len : y->text_len;
    int c = memcmp(x->text, y->text, n);
    if (c) return c;
    if (x->text_len != y->text_len) return x->text_len < y->text_len ? -1 : 1;
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1; /* same text: lower rank first */
}

/* The child of node s along byte b, or -1 (binary search over s's edges). */
static int32_t child(const tok_trie *t, int32_t s, uint8_t b) {
    int32_t lo = t->first[s], hi = t->first[s + 1];
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (t->edge_byte[mid] < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->first[s + 1] && t->edge_byte[lo] == b ? t->edge_node[lo] : -1;
}

int32_t tok_trie_step(const tok_trie *t, int32_t s, uint8_t b) {
    for (;;) {
        int32_t c = child(t, s, b);
        if (c >= 0) return c;
        if (s == 0) return 0;
        s = t->fail[s];
    }
}

/* Nodes: one per distinct prefix of the texts, the root (the empty prefix) 0. */
static phivk_status build_nodes(tok_trie *t, const tok_vocab *v, const int32_t *order,
                              int32_t *parent, uint8_t *byte) {
    int32_t *path = NULL; /* path[d]: the node of the previous text's first d bytes */
    uint32_t max_len = 0;
    for (int32_t i = 0; i < v->n_specials; i++) {
        uint32_t n = v->tokens[v->specials[i]].text_len;
        if (n > max_len) max_len = n;
    }
    path = malloc(((size_t)max_len + 1) * sizeof *path);
    if (!path) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the special-token index");
    path[0] = 0;
    t->rank[0] = -1;
    t->n_nodes = 1;
    const tok_token *prev = NULL;
    for (int32_t i = 0; i < v->n_specials; i++) {
        const tok_token *tk = &v->tokens[v->specials[order[i]]];
        uint32_t common = 0;
        while (prev && common < prev->text_len && common < tk->text_len &&
               prev->text[common] == tk->text[common])
            common++;
        for (uint32_t d = common; d < tk->text_len; d++) {
            int32_t c = t->n_nodes++;
            parent[c] = path[d];
            byte[c] = (uint8_t)tk->text[d];
            t->rank[c] = -1;
            path[d + 1] = c;
        }
        int32_t end = path[tk->text_len];
        t->same[order[i]] = -1;
        if (t->rank[end] < 0) t->rank[end] = order[i];
        else t->same[order[i - 1]] = order[i]; /* a duplicate text, after its lower rank */
        prev = tk;
    }
    free(path);
    return PHIVK_OK;
}

/* Groups edges per parent. Nodes were made in byte order within each parent,
 * so a stable grouping keeps every node's edges sorted by byte. */
static void build_edges(tok_trie *t, const int32_t *parent, const uint8_t *byte) {
    int32_t n = t->n_nodes;
    memset(t->first, 0, ((size_t)n + 1) * sizeof *t->first);
    for (int32_t c = 1; c < n; c++) t->first[parent[c] + 1]++;
    for (int32_t s = 0; s < n; s++) t->first[s + 1] += t->first[s];
    int32_t *fill = t->fail; /* scratch until the links are made */
    memcpy(fill, t->first, (size_t)n * sizeof *fill);
    for (int32_t c = 1; c < n; c++) {
        int32_t e = fill[parent[c]]++;
        t->edge_byte[e] = byte[c];
        t->edge_node[e] = c;
    }
}

/* Failure and hit links, breadth first: a node's links come from shallower ones. */
static void build_links(tok_trie *t, int32_t *queue) {
    int32_t head = 0, tail = 0;
    t->fail[0] = 0;
    t->hit[0] = -1;
    queue[tail++] = 0;
    while (head < tail) {
        int32_t s = queue[head++];
        for (int32_t e = t->first[s]; e < t->first[s + 1]; e++) {
            int32_t c = t->edge_node[e], f = 0;
            if (s != 0) f = tok_trie_step(t, t->fail[s], t->edge_byte[e]);
            t->fail[c] = f;
            t->hit[c] = t->rank[f] >= 0 ? f : t->hit[f];
            queue[tail++] = c;
        }
    }
}

phivk_status tok_trie_create(const tok_vocab *v, tok_trie **out) {
    *out = NULL;
    size_t nodes = 1;
    for (int32_t i = 0; i < v->n_specials; i++) nodes += v->tokens[v->specials[i]].text_len;
    if (nodes > INT32_MAX - 1)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "the special tokens' texts are too long in all (%zu bytes)", nodes);
    tok_trie *t = calloc(1, sizeof *t);
    int32_t *order = malloc(((size_t)v->n_specials + 1) * sizeof *order);
    int32_t *parent = malloc(nodes * sizeof *parent);
    uint8_t *byte = malloc(nodes);
    if (t) {
        t->first = malloc((nodes + 1) * sizeof *t->first);
        t->edge_node = malloc(nodes * sizeof *t->edge_node);
        t->edge_byte = malloc(nodes);
        t->fail = malloc(nodes * sizeof *t->fail);
        t->hit = malloc(nodes * sizeof *t->hit);
        t->rank = malloc(nodes * sizeof *t->rank);
        t->same = malloc(((size_t)v->n_specials + 1) * sizeof *t->same);
    }
    phivk_status st = PHIVK_OK;
    if (!t || !order || !parent || !byte || !t->first || !t->edge_node || !t->edge_byte || !t->fail ||
        !t->hit || !t->rank || !t->same) {
        st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the special-token index");
        goto done;
    }
    for (int32_t i = 0; i < v->n_specials; i++) order[i] = i;
    qsort_r(order, (size_t)v->n_specials, sizeof *order, cmp_text, (void *)v);
    st = build_nodes(t, v, order, parent, byte);
    if (st) goto done;
    build_edges(t, parent, byte);
    build_links(t, parent); /* parent[] is no longer needed: the queue */
    *out = t;
    t = NULL;
done:
    tok_trie_free(t);
    free(order);
    free(parent);
    free(byte);
    return st;
}

void tok_trie_free(tok_trie *t) {
    if (!t) return;
    free(t->first);
    free(t->edge_node);
    free(t->edge_byte);
    free(t->fail);
    free(t->hit);
    free(t->rank);
    free(t->same);
    free(t);
}
