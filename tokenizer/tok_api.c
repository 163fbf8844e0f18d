/* The tokenizer and chat sections of include/phivk.h over tok.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phivk.h"
#include "tok.h"

/* A rank file becomes the GGUF keys a converter would write, then a vocabulary
 * like any other: one loader for both. */
static phivk_status vocab_from_rank_file(const char *path, tok_vocab **out) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return pvk_fail(PHIVK_ERR_IO, "cannot open the rank file");
    char *data = NULL;
    long size = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    phivk_status st = PHIVK_OK;
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) st = pvk_fail(PHIVK_ERR_IO, "cannot read the rank file");
    else if (size > TOK_TIKTOKEN_MAX_FILE)
        st = pvk_fail(PHIVK_ERR_BAD_FILE, "%ld bytes (limit %d) is not a tiktoken rank file", size, TOK_TIKTOKEN_MAX_FILE);
    else if (!(data = malloc((size_t)size + 1))) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the rank file");
    else if (fread(data, 1, (size_t)size, fp) != (size_t)size) st = pvk_fail(PHIVK_ERR_IO, "cannot read the rank file");
    fclose(fp);

    gguf_writer *w = st ? NULL : gguf_writer_create();
    void *image = NULL;
    size_t image_size = 0;
    gguf_file *f = NULL;
    if (!st && !w) st = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the vocabulary keys");
    if (!st) st = tok_tiktoken_keys(data, (size_t)size, w);
    free(data);
    if (!st) st = gguf_writer_build(w, &image, &image_size);
    if (!st) st = gguf_open_memory(image, image_size, &f);
    if (!st) st = tok_vocab_from_gguf(f, out); /* copies what it needs */
    gguf_close(f);
    free(image);
    gguf_writer_destroy(w);
    return st;
}

phivk_vocab *phivk_vocab_load(const char *path) {
    if (!path) {
        pvk_fail(PHIVK_ERR_INVALID, "no vocabulary path given");
        return NULL;
    }
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    size_t n = strlen(path);
    bool rank_file = n > 9 && !strcmp(path + n - 9, ".tiktoken"); /* Phi-3-small's cl100k ranks */
    if (!rank_file && gguf_open(path, &f)) return NULL;
    phivk_status st = rank_file ? vocab_from_rank_file(path, &v) : tok_vocab_from_gguf(f, &v);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pvk_errmsg());
        pvk_fail(st, "%s: %s", path, msg);
    }
    gguf_close(f);
    return v;
}

void phivk_vocab_free(phivk_vocab *v) { tok_vocab_destroy(v); }

int32_t phivk_vocab_size(const phivk_vocab *v) { return v ? v->n_tokens : 0; }
int32_t phivk_token_bos(const phivk_vocab *v) { return v ? v->bos : -1; }
int32_t phivk_token_eos(const phivk_vocab *v) { return v ? v->eos : -1; }
bool phivk_vocab_adds_bos(const phivk_vocab *v) { return v && v->add_bos; }

bool phivk_token_is_stop(const phivk_vocab *v, int32_t id) {
    for (int i = 0; v && i < v->n_stop; i++)
        if (v->stop[i] == id) return true;
    return false;
}

const char *phivk_token_piece(const phivk_vocab *v, int32_t id) {
    return v && id >= 0 && id < v->n_tokens ? v->tokens[id].text : NULL;
}

phivk_tokenize_params phivk_tokenize_default_params(void) {
    return (phivk_tokenize_params){.bos = PHIVK_BOS_AUTO, .parse_special = false};
}

/* AUTO is llama.cpp's add_special: BOS and EOS as the file says. */
static tok_encode_params encode_params(const phivk_vocab *v, phivk_bos bos, bool parse_special) {
    return (tok_encode_params){
        .add_bos = bos == PHIVK_BOS_YES || (bos == PHIVK_BOS_AUTO && v->add_bos),
        .add_eos = bos == PHIVK_BOS_AUTO && v->add_eos,
        .parse_special = parse_special,
    };
}

/* Copies what fits of ids to out and returns the full count (-1 after st). */
static int64_t hand_out(phivk_status st, tok_ids *ids, int32_t *out, int64_t cap) {
    int64_t n = st ? -1 : (int64_t)ids->n;
    int64_t copy = n < cap ? n : cap;
    if (copy > 0) memcpy(out, ids->v, (size_t)copy * sizeof *out);
    free(ids->v);
    return n;
}

int64_t phivk_tokenize(const phivk_vocab *v, const char *text, size_t len,
                       const phivk_tokenize_params *params, int32_t *out, int64_t cap) {
    if (!v || (!text && len) || cap < 0 || (!out && cap > 0)) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_tokenize: no vocabulary, text or output buffer");
        return -1;
    }
    phivk_tokenize_params dp = phivk_tokenize_default_params();
    if (!params) params = &dp;
    tok_encode_params p = encode_params(v, params->bos, params->parse_special);
    tok_ids ids = {0};
    phivk_status st = tok_encode(v, text ? text : "", len, &p, &ids);
    return hand_out(st, &ids, out, cap);
}

/* ------------------------------------------------------------ detokenizing */

struct phivk_detok {
    const tok_vocab *v;
    bool special;
    bool strip_next;       /* after BOS: the next piece loses one leading space */
    bool oom;
    uint8_t pend[4];       /* an incomplete UTF-8 sequence */
    int n_pend, need;
    char *q;               /* complete UTF-8 not yet handed out */
    size_t q_len, q_off, q_cap;
};

static void q_add(phivk_detok *d, const void *p, size_t n) {
    char *nq = tok_grow(d->q, &d->q_cap, d->q_len + n + 1, 1);
    if (!nq) {
        d->oom = true;
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for detokenized text");
        return;
    }
    d->q = nq;
    memcpy(d->q + d->q_len, p, n);
    d->q_len += n;
}

static void q_bad(phivk_detok *d) { q_add(d, "\xEF\xBF\xBD", 3); /* U+FFFD */ }

/* Byte by byte, so that byte tokens can spell a character across pieces; what is
 * not well-formed UTF-8 comes out as U+FFFD, so the output always is. */
static void feed_byte(phivk_detok *d, uint8_t b) {
    if (d->n_pend && !tok_utf8_cont_ok(d->pend[0], d->n_pend, b)) {
        q_bad(d);
        d->n_pend = 0;
    }
    if (d->n_pend) {
        d->pend[d->n_pend++] = b;
        if (d->n_pend == d->need) {
            q_add(d, d->pend, (size_t)d->need);
            d->n_pend = 0;
        }
        return;
    }
    int need = tok_utf8_len(b);
    if (need == 1) {
        q_add(d, &b, 1);
    } else if (need == 0) {
        q_bad(d);
    } else {
        d->pend[0] = b;
        d->n_pend = 1;
        d->need = need;
    }
}

static void feed(phivk_detok *d, int32_t id) {
    const tok_vocab *v = d->v;
    if (id < 0 || id >= v->n_tokens) return;
    const tok_token *t = &v->tokens[id];
    bool shown = d->special || !(t->attr & TOK_ATTR_HIDDEN);
    const char *p = shown ? t->out : "";
    uint32_t n = shown ? t->out_len : 0;
    /* The space the tokenizer put before a text (add_space_prefix) is not part of
     * it: drop it from the piece after BOS (llama2.c) and, in phivk_detokenize,
     * from the first piece (llama.cpp's detokenize). A stream usually continues a
     * prompt, so its first piece keeps its space. */
    if (id == v->bos) {
        d->strip_next = true;
    } else {
        if (d->strip_next && v->add_space_prefix && n && p[0] == ' ') {
            p++;
            n--;
        }
        d->strip_next = false;
    }
    for (uint32_t i = 0; i < n; i++) feed_byte(d, (uint8_t)p[i]);
}

static size_t drain(phivk_detok *d, char *out, size_t cap) {
    if (!out || cap == 0) return 0;
    size_t n = d->q_len - d->q_off;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((uint8_t)d->q[d->q_off + n] & 0xC0) == 0x80) n--; /* whole characters */
    }
    if (n) memcpy(out, d->q + d->q_off, n);
    out[n] = 0;
    d->q_off += n;
    if (d->q_off == d->q_len) d->q_off = d->q_len = 0;
    return n;
}

phivk_detok *phivk_detok_create(const phivk_vocab *v, bool special) {
    if (!v) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_detok_create: no vocabulary");
        return NULL;
    }
    phivk_detok *d = calloc(1, sizeof *d);
    if (!d) {
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a detokenizer");
        return NULL;
    }
    d->v = v;
    d->special = special;
    return d;
}

void phivk_detok_free(phivk_detok *d) {
    if (!d) return;
    free(d->q);
    free(d);
}

size_t phivk_detok_push(phivk_detok *d, int32_t id, char *out, size_t cap) {
    if (!d) return 0;
    feed(d, id);
    return drain(d, out, cap);
}

size_t phivk_detok_flush(phivk_detok *d, char *out, size_t cap) {
    if (!d) return 0;
    if (d->n_pend) q_bad(d);
    d->n_pend = 0;
    return drain(d, out, cap);
}

char *phivk_detokenize(const phivk_vocab *v, const int32_t *ids, int64_t n, bool special) {
    if (!v || n < 0 || (n > 0 && !ids)) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_detokenize: no vocabulary or ids");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n_tokens) {
            pvk_fail(PHIVK_ERR_INVALID, "token id %d (position %lld) is outside the vocabulary (0..%d)",
                     ids[i], (long long)i, v->n_tokens - 1);
            return NULL;
        }
    phivk_detok *d = phivk_detok_create(v, special);
    if (!d) return NULL;
    d->strip_next = true; /* a whole sequence: its start counts as a BOS */
    for (int64_t i = 0; i < n; i++) feed(d, ids[i]);
    if (d->n_pend) q_bad(d);
    q_add(d, "", 1); /* the NUL, and a buffer even for no text */
    char *s = d->oom ? NULL : d->q;
    if (s) d->q = NULL;
    phivk_detok_free(d);
    return s;
}

/* ------------------------------------------------------------ chat */

phivk_chat_format phivk_vocab_chat_format(const phivk_vocab *v) {
    return v ? tok_chat_format(v) : PHIVK_CHAT_PLAIN;
}

char *phivk_chat_prompt(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n,
                        bool add_assistant) {
    char *s;
    return tok_chat_prompt(fmt, msgs, n, add_assistant, &s) ? NULL : s;
}

int64_t phivk_chat_tokenize(const phivk_vocab *v, phivk_chat_format fmt, const phivk_chat_msg *msgs,
                            int n, bool add_assistant, phivk_bos bos, int32_t *out, int64_t cap) {
    if (!v || cap < 0 || (!out && cap > 0)) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_chat_tokenize: no vocabulary or output buffer");
        return -1;
    }
    if (fmt == PHIVK_CHAT_AUTO) fmt = tok_chat_format(v);
    tok_encode_params p = encode_params(v, bos, true);
    tok_ids ids = {0};
    phivk_status st = tok_chat_encode(v, fmt, msgs, n, add_assistant, &p, &ids);
    return hand_out(st, &ids, out, cap);
}
