/* tiktoken's BPE (tokenizer.ggml.model "tiktoken"; docs/gguf-keys.md), as
 * Phi-3-small uses it (docs/spec/phi3-small.md 18): cl100k's pre-tokenizer pattern,
 * then, per piece, its bytes merged pair by pair, the pair whose concatenation has
 * the lowest rank first. Tokens are byte strings and a token's rank is its id, so
 * the vocabulary's by_text index is the rank table: the stored text of a tiktoken
 * token is its bytes (no byte-to-unicode alphabet as in GPT-2). */
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pre-tokenizer patterns by the name tokenizer.ggml.pre gives. */
static const struct {
    const char *name, *pattern;
} patterns[] = {
    {"cl100k", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
               "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

/* Phi-3-small's special tokens (spec 18): 96 ids from 100256 on, right after
 * cl100k's ranks. The first 21 have these names; the rest pad the vocabulary to
 * 100352 as <|dummy_id_{id - 100265}|>. */
enum { PHI3S_FIRST_SPECIAL = 100256, PHI3S_VOCAB = 100352 };
static const char *const phi3s_named[] = {
    "<|dummy_id_2|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|dummy_id_0|>", "<|dummy_id_1|>", "<|end|>",
    "<|dummy_id_3|>", "<|dummy_id_4|>", "<|dummy_id_5|>", "<|dummy_id_6|>", "<|dummy_id_7|>",
    "<|dummy_id_8|>", "<|dummy_id_9|>", "<|dummy_id_10|>", "<|dummy_id_11|>", "<|endofprompt|>",
};
#define N_NAMED ((int)(sizeof phi3s_named / sizeof *phi3s_named))

/* Limits far above any real rank file (cl100k: 1.7 MB, o200k: 3.6 MB), so that
 * a corrupt one fails with a message instead of exhausting memory. The rank count
 * also keeps ranks exact as the merge loop's float keys (below 2^24). */
enum { MAX_FILE = TOK_TIKTOKEN_MAX_FILE, MAX_RANKS = 1 << 22, MAX_TOKEN = 4096 };

/* ------------------------------------------------------------ the rank file */

static int b64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding; the decoded length, or -1 when malformed. */
static long b64_decode(const char *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t acc = 0;
        for (size_t k = 0; k < 4; k++) {
            bool padded = i + k >= n - pad;
            int d = padded ? 0 : b64_value((uint8_t)s[i + k]);
            if (d < 0) return -1;
            acc = acc << 6 | (uint32_t)d;
        }
        size_t bytes = i + 4 == n ? 3 - pad : 3;
        for (size_t k = 0; k < bytes; k++) out[o++] = (uint8_t)(acc >> (16 - 8 * k));
    }
    return o;
}

typedef struct rank_set {
    const char **strs;     /* by id: the token's bytes */
    size_t *lens;
    uint8_t *bytes;        /* owns the decoded ranks */
    int32_t n_ranks;
} rank_set;

static void rank_set_free(rank_set *r) {
    free(r->strs);
    free(r->lens);
    free(r->bytes);
}

typedef struct bytes_key {
    const char *p;
    size_t len;
} bytes_key;

static bool rank_eq(const void *ctx, uint32_t entry, const void *key) {
    const rank_set *r = ctx;
    const bytes_key *k = key;
    return r->lens[entry] == k->len && memcmp(r->strs[entry], k->p, k->len) == 0;
}

/* The lines of data into r: ranks 0..N-1, each once, each token's bytes once. */
static phivk_status parse_ranks(const char *data, size_t size, rank_set *r) {
    if (size > MAX_FILE)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "the rank file is %zu bytes (limit %d): not a tiktoken rank file", size,
                        MAX_FILE);
    size_t n_lines = 0;
    for (size_t i = 0; i < size; i++) n_lines += data[i] == '\n';
    n_lines += size && data[size - 1] != '\n';
    if (n_lines > MAX_RANKS)
        return pvk_fail(PHIVK_ERR_BAD_FILE, "the rank file has %zu lines (limit %d)", n_lines, MAX_RANKS);
    size_t cap = n_lines + (PHI3S_VOCAB - PHI3S_FIRST_SPECIAL);
    r->strs = calloc(cap ? cap : 1, sizeof *r->strs);
    r->lens = calloc(cap ? cap : 1, sizeof *r->lens);
    r->bytes = malloc(size ? size : 1); /* base64 only shrinks */
    if (!r->strs || !r->lens || !r->bytes)
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %zu ranks", n_lines);

    /* Each line puts its token at its rank: a rank beyond the line count or one
     * seen twice means a gap or a duplicate; empty lines may leave a gap below. */
    size_t line = 0, o = 0;
    int32_t n = 0;
    for (size_t pos = 0; pos < size;) {
        const char *s = data + pos, *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + 1;
        line++;
        if (len && s[len - 1] == '\r') len--;
        if (len == 0) continue; /* tiktoken skips empty lines */
        const char *sp = memchr(s, ' ', len);
        if (!sp) return pvk_fail(PHIVK_ERR_BAD_FILE, "rank file line %zu has no space between token and rank", line);
        size_t tl = (size_t)(sp - s), rl = len - tl - 1;
        uint64_t rank = 0;
        bool digits = rl > 0 && rl <= 10;
        for (size_t k = 0; digits && k < rl; k++) {
            digits = sp[1 + k] >= '0' && sp[1 + k] <= '9';
            rank = rank * 10 + (uint64_t)(sp[1 + k] - '0');
        }
        if (!digits) return pvk_fail(PHIVK_ERR_BAD_FILE, "rank file line %zu: the rank is not a number", line);
        if (rank >= n_lines)
            return pvk_fail(PHIVK_ERR_BAD_FILE,
                            "rank file line %zu: rank %llu with %zu lines: the ranks must be 0..N-1 without gaps",
                            line, (unsigned long long)rank, n_lines);
        if (r->strs[rank])
            return pvk_fail(PHIVK_ERR_BAD_FILE, "rank file line %zu: rank %llu appears twice", line,
                            (unsigned long long)rank);
        long bl = tl <= MAX_TOKEN * 2 ? b64_decode(s, tl, r->bytes + o) : -1;
        if (bl <= 0 || bl > MAX_TOKEN)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "rank file line %zu: the token is not base64 (of 1..%d bytes)", line,
                            MAX_TOKEN);
        r->strs[rank] = (const char *)r->bytes + o;
        r->lens[rank] = (size_t)bl;
        o += (size_t)bl;
        n++;
    }
    for (int32_t i = 0; i < n; i++) /* n distinct ranks below n_lines; empty lines leave gaps */
        if (!r->strs[i])
            return pvk_fail(PHIVK_ERR_BAD_FILE, "the rank file has no rank %d: the ranks must be 0..N-1 without gaps", i);
    r->n_ranks = n;

    tok_map seen;
    phivk_status st = tok_map_init(&seen, (uint64_t)n);
    for (int32_t i = 0; i < n && !st; i++) {
        bytes_key k = {r->strs[i], r->lens[i]};
        uint64_t h = tok_hash(k.p, k.len);
        int64_t j = tok_map_get(&seen, h, rank_eq, r, &k);
        if (j >= 0) st = pvk_fail(PHIVK_ERR_BAD_FILE, "the rank file gives ranks %lld and %d the same token", (long long)j, i);
        else tok_map_put(&seen, h, (uint32_t)i);
    }
    tok_map_free(&seen);
    return st;
}

phivk_status tok_tiktoken_keys(const char *data, size_t size, gguf_writer *w) {
    rank_set r = {0};
    int32_t *types = NULL;
    char (*dummy)[24] = NULL;
    phivk_status st = parse_ranks(data, size, &r);
    if (!st && r.n_ranks != PHI3S_FIRST_SPECIAL)
        st = pvk_fail(PHIVK_ERR_BAD_FILE,
                      "the rank file has %d ranks, but Phi-3-small's special tokens start at id %d (cl100k_base)",
                      r.n_ranks, PHI3S_FIRST_SPECIAL);
    if (!st) {
        types = malloc(PHI3S_VOCAB * sizeof *types);
        dummy = calloc(PHI3S_VOCAB - PHI3S_FIRST_SPECIAL - N_NAMED, sizeof *dummy);
        if (!types || !dummy) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary keys");
    }
    if (!st) {
        for (int32_t id = 0; id < PHI3S_VOCAB; id++) {
            types[id] = id < PHI3S_FIRST_SPECIAL ? TOK_NORMAL : TOK_CONTROL;
            int k = id - PHI3S_FIRST_SPECIAL;
            if (k < 0) continue;
            if (k >= N_NAMED) {
                char *d = dummy[k - N_NAMED];
                snprintf(d, sizeof *dummy, "<|dummy_id_%d|>", id - 100265);
                r.strs[id] = d;
            } else {
                r.strs[id] = phi3s_named[k];
            }
            r.lens[id] = strlen(r.strs[id]);
        }
        gguf_writer_set_str(w, "tokenizer.ggml.model", "tiktoken");
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "cl100k");
        gguf_writer_set_arr_bytes(w, "tokenizer.ggml.tokens", r.strs, r.lens, PHI3S_VOCAB);
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, PHI3S_VOCAB);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", PHI3S_FIRST_SPECIAL + 1); /* <|endoftext|> */
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", PHI3S_FIRST_SPECIAL + 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", PHI3S_FIRST_SPECIAL + 10); /* <|end|> */
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    }
    free(types);
    free(dummy);
    rank_set_free(&r);
    return st;
}

/* ------------------------------------------------------------ encoding */

struct tok_tt {
    tok_regex *re;
};

/* The id of the mergeable token with these bytes, or -1. */
static int32_t rank_of(const tok_vocab *v, const char *p, size_t len) {
    int32_t id = tok_find(v, p, len);
    return id >= 0 && v->tokens[id].type == TOK_NORMAL ? id : -1;
}

phivk_status tok_tt_create(const gguf_file *f, tok_vocab *v, tok_tt **out) {
    *out = NULL;
    gguf_str pre = {"", 0};
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    const char *pattern = NULL;
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++)
        if (pre.len == strlen(patterns[i].name) && !memcmp(pre.ptr, patterns[i].name, pre.len))
            pattern = patterns[i].pattern;
    if (!pattern) {
        char shown[64];
        phivk_text_visible(pre.ptr, pre.len, false, shown, sizeof shown);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "tokenizer.ggml.pre '%s' is not a tiktoken pattern phivk knows ('cl100k')",
                        shown);
    }
    if (v->n_tokens > MAX_RANKS + (PHI3S_VOCAB - PHI3S_FIRST_SPECIAL))
        return pvk_fail(PHIVK_ERR_BAD_FILE, "a tiktoken vocabulary of %d tokens is too large", v->n_tokens);
    /* Every byte must be a token: the merges start from single bytes. */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        v->byte_id[b] = rank_of(v, &c, 1);
        if (v->byte_id[b] < 0)
            return pvk_fail(PHIVK_ERR_BAD_FILE, "tokenizer.ggml.tokens has no token for the byte 0x%02X", b);
    }
    tok_tt *t = calloc(1, sizeof *t);
    if (!t) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the tiktoken tokenizer");
    phivk_status st = tok_regex_create(pattern, "tiktoken", &t->re);
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    return PHIVK_OK;
}

void tok_tt_free(tok_tt *t) {
    if (!t) return;
    tok_regex_free(t->re);
    free(t);
}

typedef struct tt_scratch {
    const tok_vocab *v;
    tok_ids *out;
    tok_sym *syms;
    size_t cap;
    tok_heap *heap;
} tt_scratch;

static bool tt_pair(const void *ctx, const char *buf, uint32_t off, uint32_t left_len, uint32_t len, float *key) {
    (void)left_len; /* a pair's rank is its concatenation's, however it splits */
    int32_t id = rank_of(ctx, buf + off, len);
    *key = (float)id; /* exact: ids stay below 2^24 (tok_tt_create) */
    return id >= 0;
}

/* One piece, as tiktoken: a piece that is a token is that token; otherwise its
 * bytes merge by rank. Every merge makes a token and every byte is one, so each
 * symbol left is a token. */
static phivk_status encode_piece(void *ctx, const char *text, size_t off, size_t len) {
    tt_scratch *s = ctx;
    int32_t id = rank_of(s->v, text + off, len);
    if (id >= 0) return tok_ids_push(s->out, id);
    phivk_status st = tok_merge_bytes(s->heap, text, off, len, &s->syms, &s->cap, tt_pair, s->v);
    for (int32_t i = 0; i >= 0 && !st; i = s->syms[i].next)
        st = tok_ids_push(s->out, rank_of(s->v, text + s->syms[i].off, s->syms[i].len));
    return st;
}

phivk_status tok_tt_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out) {
    tt_scratch s = {.v = v, .out = out, .heap = tok_heap_create()};
    phivk_status st = s.heap ? tok_regex_split(v->tt->re, text, len, encode_piece, &s)
                           : pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory to tokenize %zu bytes", len);
    tok_heap_free(s.heap);
    free(s.syms);
    return st;
}
