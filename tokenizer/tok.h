/* Tokenizers of GGUF files: SentencePiece-BPE (tokenizer.ggml.model "llama") and
 * GPT-2 byte-level BPE ("gpt2"), as llama.cpp runs them (docs/phi-spec.md 5), and
 * tiktoken's rank-ordered byte BPE ("tiktoken", phivk's own keys: docs/gguf-keys.md)
 * for Phi-3-small (docs/spec/phi3-small.md 18).
 *
 * A tok_vocab is built once from a gguf_file and copies everything it needs, so the
 * file may be closed afterwards. It is immutable after creation: any number of
 * threads may tokenize with one vocab at the same time. The public phivk_vocab
 * (include/phivk.h) is this same struct, so the model code can hand out its
 * tok_vocab as a phivk_vocab. Fields are read-only outside tokenizer/. */
#ifndef PHIVK_TOK_H
#define PHIVK_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "phivk.h"
#include "pvk_err.h"

/* tokenizer.ggml.token_type values. */
typedef enum tok_type {
    TOK_UNDEFINED = 0, TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3,
    TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6,
} tok_type;

typedef enum tok_model { TOK_MODEL_SPM, TOK_MODEL_BPE, TOK_MODEL_TIKTOKEN } tok_model;

enum {
    TOK_ATTR_RSTRIP = 1,   /* a matched special token eats the whitespace after it */
    TOK_ATTR_HIDDEN = 2,   /* detokenization prints it only when asked for specials */
};

typedef struct tok_token {
    const char *text;      /* the stored piece, NUL-terminated */
    const char *out;       /* the bytes detokenization prints (not NUL-terminated) */
    uint32_t text_len, out_len;
    float score;           /* SPM merge priority (higher first) */
    uint8_t type;          /* tok_type */
    uint8_t attr;          /* TOK_ATTR_* */
} tok_token;

/* Open-addressing hash index over entries the owner stores elsewhere; the owner
 * supplies the equality test, so one index type serves every key layout. */
typedef struct tok_map {
    uint64_t *hash;
    uint32_t *idx;         /* entry + 1; 0 = empty slot */
    uint64_t mask;
} tok_map;

typedef struct tok_bpe tok_bpe;
typedef struct tok_tt tok_tt;

/* tok_trie.c: the special tokens' texts as an Aho-Corasick automaton. Node 0 is
 * the start; rank is an index into v->specials. Read-only outside tok_trie.c. */
typedef struct tok_trie {
    int32_t n_nodes;
    int32_t *first;        /* node s's edges are first[s] .. first[s+1]-1, by byte */
    int32_t *edge_node;
    uint8_t *edge_byte;
    int32_t *fail;         /* the node of the longest proper suffix of s's text */
    int32_t *rank;         /* the lowest rank whose text s spells exactly, or -1 */
    int32_t *hit;          /* the nearest node on s's failure path with a rank, or -1 */
    int32_t *same;         /* by rank: the next rank with the same text, or -1 */
} tok_trie;

struct phivk_vocab {
    tok_model model;
    int32_t n_tokens;
    tok_token *tokens;
    tok_map by_text;       /* stored text -> id (the first id wins on duplicates) */
    int32_t bos, eos, unk, eot;             /* -1 when the file has none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t *specials;     /* CONTROL, USER_DEFINED, UNKNOWN ids, longest text first */
    int32_t n_specials;
    tok_trie *special_trie; /* the texts of specials, for the partition */
    int32_t byte_id[256];  /* the token of one raw byte (SPM <0xNN>, BPE byte symbol); -1 none */
    int32_t stop[8];       /* phivk_token_is_stop */
    int n_stop;
    char *arch;            /* general.architecture, "" when absent */
    char *chat_template;   /* tokenizer.chat_template, NULL when absent */
    tok_bpe *bpe;          /* GPT-2 only: byte-space index, merges, pre-tokenizer */
    tok_tt *tt;            /* tiktoken only: pre-tokenizer */
    bool spm_words;        /* SPM: no token has U+2581 after another character (tok_spm.c) */
    char *arena;           /* owns every token's text and out */
};
typedef struct phivk_vocab tok_vocab;

/* Builds the tokenizer of f. Fails with PHIVK_ERR_BAD_FILE / PHIVK_ERR_UNSUPPORTED and
 * a message naming the key when the tokenizer keys are missing or inconsistent. */
phivk_status tok_vocab_from_gguf(const gguf_file *f, tok_vocab **out);
void tok_vocab_destroy(tok_vocab *v); /* accepts NULL */

/* The id whose stored text is exactly text[0..len), or -1. */
int32_t tok_find(const tok_vocab *v, const char *text, size_t len);

/* A growable id array: the caller zero-initialises it and frees v. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
phivk_status tok_ids_push(tok_ids *ids, int32_t id);

/* A byte range of a text. */
typedef struct tok_span {
    size_t off, len;
} tok_span;

typedef struct tok_encode_params {
    bool add_bos;          /* put the vocab's BOS first (fails when it has none) */
    bool add_eos;          /* put the vocab's EOS last (fails when it has none) */
    bool parse_special;    /* cut CONTROL / UNKNOWN token texts out of the text */
    /* Ranges (sorted, disjoint) that are plain text even with parse_special: a
     * CONTROL / UNKNOWN text that overlaps one is not cut (chat message bodies). */
    const tok_span *plain;
    size_t n_plain;
} tok_encode_params;

/* Appends the tokens of len bytes of UTF-8 text to out. PHIVK_ERR_INVALID with
 * "invalid UTF-8 at byte N" for malformed input; out keeps what it had before. */
phivk_status tok_encode(const tok_vocab *v, const char *text, size_t len,
                      const tok_encode_params *p, tok_ids *out);

/* The special-token partition: special tokens (id >= 0) and the raw text between
 * them (id -1), in text order. As llama.cpp's tokenizer_st_partition: each special
 * token in turn, longest text first (then lowest id), is cut at every leftmost
 * non-overlapping occurrence that lies within raw text; one with TOK_ATTR_RSTRIP
 * eats the white space after it. Without parse_special only USER_DEFINED texts are
 * cut (spec 5.1 step 1). Caller frees *out. */
typedef struct tok_frag {
    int32_t id;
    size_t off, len;
} tok_frag;
phivk_status tok_partition(const tok_vocab *v, const char *text, size_t len, const tok_encode_params *p,
                         tok_frag **out, size_t *n_out);

/* Offset of the first byte that is not well-formed UTF-8 (overlongs, surrogates and
 * code points above U+10FFFF included), or len when all of it is. */
size_t tok_utf8_invalid_at(const char *s, size_t len);

/* tok_chat.c: the prompt format the vocabulary's template or architecture implies
 * (never PHIVK_CHAT_AUTO), and the prompt text (caller frees *out). Templates are
 * recognised, never executed. */
phivk_chat_format tok_chat_format(const tok_vocab *v);
phivk_status tok_chat_prompt(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n,
                           bool add_assistant, char **out);
/* Appends the tokens of that prompt to out, as tok_encode with parse_special
 * would, except that the messages' contents are plain spans: only the format's
 * markup becomes control tokens. Of p, only add_bos and add_eos count. */
phivk_status tok_chat_encode(const tok_vocab *v, phivk_chat_format fmt, const phivk_chat_msg *msgs,
                           int n, bool add_assistant, const tok_encode_params *p, tok_ids *out);

/* ---- shared by the tokenizer implementations (tokenizer/ only) ---- */

/* Token types that merges may produce and text may spell: the rest (CONTROL,
 * UNKNOWN, UNUSED, BYTE) only come from special-token parsing or byte fallback, so
 * the plain text "<s>" never becomes BOS. */
static inline bool tok_type_spellable(uint8_t type) {
    return type == TOK_NORMAL || type == TOK_UNDEFINED || type == TOK_USER_DEFINED;
}

/* UTF-8 helpers: the sequence length a lead byte announces (0: not a lead byte),
 * and whether b may be byte k (1..3) of a sequence led by lead. */
int tok_utf8_len(uint8_t lead);
bool tok_utf8_cont_ok(uint8_t lead, int k, uint8_t b);

/* Pushes the byte-fallback tokens of n raw bytes (the vocab's UNK for a byte
 * without a token; fails when there is no UNK either). */
phivk_status tok_push_bytes(const tok_vocab *v, const char *bytes, size_t n, tok_ids *out);

/* Growable arrays: returns p reallocated to hold at least need elements of elem
 * bytes (capacity doubling; *cap updated), or NULL with p untouched. */
void *tok_grow(void *p, size_t *cap, size_t need, size_t elem);

uint64_t tok_hash(const void *p, size_t n);
phivk_status tok_map_init(tok_map *m, uint64_t n_entries);
void tok_map_free(tok_map *m);
typedef bool (*tok_map_eq_fn)(const void *ctx, uint32_t entry, const void *key);
void tok_map_put(tok_map *m, uint64_t hash, uint32_t entry);
/* The entry for which eq(ctx, entry, key) holds among those stored with hash, or -1. */
int64_t tok_map_get(const tok_map *m, uint64_t hash, tok_map_eq_fn eq, const void *ctx,
                    const void *key);

/* The BPE merge loop both tokenizers share: symbols are spans of one buffer in a
 * linked list; the adjacent pair with the lowest key (ties: leftmost) merges first,
 * until no pair qualifies. pair() says whether the span [off, off+len) made of a
 * left part of left_len bytes may merge, and with what key. */
typedef struct tok_sym {
    uint32_t off, len;     /* len 0: merged into its left neighbour */
    int32_t prev, next;
} tok_sym;
typedef bool (*tok_pair_fn)(const void *ctx, const char *buf, uint32_t off, uint32_t left_len,
                            uint32_t len, float *key);
typedef struct tok_heap tok_heap;
/* Scratch reused across calls; tok_heap_free accepts NULL. */
tok_heap *tok_heap_create(void);
void tok_heap_free(tok_heap *h);
phivk_status tok_merge(tok_heap *h, const char *buf, tok_sym *syms, int32_t n, tok_pair_fn pair,
                     const void *ctx);
/* The bytes text[off, off + len) as one symbol each, merged with tok_merge: the
 * byte-pair kinds' (GPT-2 BPE, tiktoken) step for one pre-tokenized piece. *syms
 * grows as needed (*cap its capacity); the result is the list from symbol 0. */
phivk_status tok_merge_bytes(tok_heap *h, const char *text, size_t off, size_t len, tok_sym **syms, size_t *cap,
                             tok_pair_fn pair, const void *ctx);

/* tok_spm.c: one raw fragment (no special tokens in it). prefix_space: prepend ' '. */
bool tok_spm_words_independent(const tok_vocab *v);
phivk_status tok_spm_encode(const tok_vocab *v, const char *text, size_t len, bool prefix_space,
                          tok_ids *out);

/* tok_trie.c: built from v->specials; tok_trie_free accepts NULL. */
phivk_status tok_trie_create(const tok_vocab *v, tok_trie **out);
void tok_trie_free(tok_trie *t);
/* The state after byte b in state s (0: nothing read yet). */
int32_t tok_trie_step(const tok_trie *t, int32_t s, uint8_t b);

/* tok_regex.c: a compiled pre-tokenizer pattern (PCRE2, UTF and Unicode classes).
 * what names it in messages. tok_regex_free accepts NULL. */
typedef struct tok_regex tok_regex;
phivk_status tok_regex_create(const char *pattern, const char *what, tok_regex **out);
void tok_regex_free(tok_regex *r);
/* Calls piece for every match of r in text[0..len) and every unmatched gap between
 * matches, in text order, until one fails. text is valid UTF-8. */
typedef phivk_status (*tok_piece_fn)(void *ctx, const char *text, size_t off, size_t len);
phivk_status tok_regex_split(const tok_regex *r, const char *text, size_t len, tok_piece_fn piece, void *ctx);

/* tok_bpe.c */
phivk_status tok_bpe_create(const gguf_file *f, tok_vocab *v, tok_bpe **out);
void tok_bpe_free(tok_bpe *b);
/* Maps a stored GPT-2 piece back to bytes (code point -> byte); code points outside
 * the byte map are kept as their UTF-8. Writes at most len bytes to out. */
uint32_t tok_bpe_decode_piece(const char *text, uint32_t len, char *out);
phivk_status tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out);

/* tok_tiktoken.c. A rank file (`.tiktoken`: base64 token, space, rank, one per
 * line, ranks 0..N-1 each once) with Phi-3-small's 96 special tokens after it, as
 * the tokenizer keys of docs/gguf-keys.md written to w. Malformed input fails with
 * PHIVK_ERR_BAD_FILE and a message naming the line. */
enum { TOK_TIKTOKEN_MAX_FILE = 64 << 20 }; /* bytes; cl100k's is 1.7 MB */
phivk_status tok_tiktoken_keys(const char *data, size_t size, gguf_writer *w);
/* Called by tok_vocab_from_gguf for model "tiktoken" once v's tokens are loaded. */
phivk_status tok_tt_create(const gguf_file *f, tok_vocab *v, tok_tt **out);
void tok_tt_free(tok_tt *t); /* accepts NULL */
/* One raw fragment, as tiktoken's encode_ordinary. */
phivk_status tok_tt_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out);

#endif
