/* The special-token partition (tok_partition, one pass of an Aho-Corasick
 * automaton) against its specification run literally: llama.cpp's
 * tokenizer_st_partition, which cuts one special token at a time, longest first,
 * at every leftmost non-overlapping occurrence left in raw text. Compared on the
 * real vocabularies' reference inputs and on random texts over a synthetic
 * vocabulary whose special tokens are prefixes of, contained in and overlapping
 * each other, with white-space eating (RSTRIP), duplicates, and plain spans. */
#define HARNESS_MAIN
#include "harness.h"

#include "phivk.h"
#include "tok.h"
#include "tok_vectors.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t n) { return tv_rnd(&rng, n); }

static bool is_c_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool overlaps_plain(const tok_encode_params *p, size_t s, size_t e) {
    for (size_t i = 0; i < p->n_plain; i++)
        if (p->plain[i].off < e && p->plain[i].off + p->plain[i].len > s) return true;
    return false;
}

/* The specification: every special token in priority order cut out of the raw
 * fragments left by the ones before it. Returns the fragment count. */
static size_t oracle(const tok_vocab *v, const char *text, size_t len, const tok_encode_params *p,
                     tok_frag *out, size_t cap) {
    static tok_frag a[1 << 14], b[1 << 14];
    tok_frag *cur = a, *next = b;
    size_t n = 0;
    if (len) cur[n++] = (tok_frag){-1, 0, len};
    for (int32_t r = 0; r < v->n_specials; r++) {
        int32_t id = v->specials[r];
        const tok_token *t = &v->tokens[id];
        bool control = t->type != TOK_USER_DEFINED;
        if (control && !p->parse_special) continue;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            tok_frag f = cur[i];
            if (f.id >= 0) {
                next[m++] = f;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len, from = pos;
            while (from + t->text_len <= end) {
                const char *hit = memmem(text + from, end - from, t->text, t->text_len);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                if (control && overlaps_plain(p, at, at + t->text_len)) {
                    from = at + 1;
                    continue;
                }
                if (at > pos) next[m++] = (tok_frag){-1, pos, at - pos};
                next[m++] = (tok_frag){id, at, t->text_len};
                pos = at + t->text_len;
                if (t->attr & TOK_ATTR_RSTRIP)
                    while (pos < end && is_c_space(text[pos])) pos++;
                from = pos;
            }
            if (pos < end) next[m++] = (tok_frag){-1, pos, end - pos};
        }
        tok_frag *swap = cur;
        cur = next;
        next = swap;
        n = m;
    }
    if (n > cap) n = cap;
    memcpy(out, cur, n * sizeof *out);
    return n;
}

static int n_compared, n_cut;

/* Whether tok_partition gives the oracle's fragments; counts the comparison and
 * the special tokens cut, so a test can show it compared something. */
static bool same_partition(const tok_vocab *v, const char *text, size_t len, const tok_encode_params *p) {
    static tok_frag want[1 << 14];
    size_t n_want = oracle(v, text, len, p, want, sizeof want / sizeof *want);
    tok_frag *got;
    size_t n_got;
    if (tok_partition(v, text, len, p, &got, &n_got)) {
        printf("    tok_partition failed: %s\n", pvk_errmsg());
        return false;
    }
    bool same = n_got == n_want;
    for (size_t i = 0; same && i < n_got; i++)
        same = got[i].id == want[i].id && got[i].off == want[i].off && got[i].len == want[i].len;
    if (!same) {
        printf("    differs on \"%.*s\" (special %d, %zu plain spans): %zu vs %zu fragments\n", (int)len, text,
               p->parse_special, p->n_plain, n_got, n_want);
        for (size_t i = 0; i < n_got || i < n_want; i++)
            printf("      %zu: got %d@%zu+%zu want %d@%zu+%zu\n", i, i < n_got ? got[i].id : -9,
                   i < n_got ? got[i].off : 0, i < n_got ? got[i].len : 0, i < n_want ? want[i].id : -9,
                   i < n_want ? want[i].off : 0, i < n_want ? want[i].len : 0);
    }
    for (size_t i = 0; i < n_want; i++) n_cut += want[i].id >= 0;
    n_compared++;
    free(got);
    return same;
}

/* A text of random pieces: special tokens' texts (whole or cut short), white
 * space, letters of the alphabet the special tokens are made of, and runs of one
 * character (where tokens made of it occur at every position). */
static size_t random_text(const tok_vocab *v, const char *alphabet, char *buf, size_t cap) {
    size_t n = 0, target = rnd((uint32_t)cap / 2);
    while (n < target) {
        uint32_t kind = rnd(5);
        if (kind == 4) {
            char c = rnd(2) ? " \n\t"[rnd(3)] : alphabet[rnd((uint32_t)strlen(alphabet))];
            for (uint32_t k = rnd(40); k > 0 && n + 1 < cap; k--) buf[n++] = c;
        } else if (kind == 0 && v->n_specials) {
            const tok_token *t = &v->tokens[v->specials[rnd((uint32_t)v->n_specials)]];
            uint32_t k = rnd(3) ? t->text_len : rnd(t->text_len + 1);
            if (n + k >= cap) break;
            memcpy(buf + n, t->text, k);
            n += k;
        } else if (kind == 1) {
            buf[n++] = " \n\t"[rnd(3)];
        } else {
            buf[n++] = alphabet[rnd((uint32_t)strlen(alphabet))];
        }
    }
    return n;
}

/* Random sorted disjoint spans over [0, len). */
static size_t random_spans(size_t len, tok_span *s, size_t cap) {
    size_t n = 0, pos = 0;
    while (n < cap && len && pos < len) {
        pos += rnd((uint32_t)(len - pos) + 1);
        if (pos >= len) break;
        size_t k = 1 + rnd((uint32_t)(len - pos));
        s[n++] = (tok_span){pos, k};
        pos += k + 1;
    }
    return n;
}

/* Every kind of comparison for one text: special parsing off, on, and on with
 * random plain spans. */
static bool check_text(const tok_vocab *v, const char *text, size_t len) {
    tok_span spans[8];
    tok_encode_params off = {0}, on = {.parse_special = true};
    tok_encode_params spanned = {.parse_special = true, .plain = spans};
    spanned.n_plain = random_spans(len, spans, 8);
    return same_partition(v, text, len, &off) && same_partition(v, text, len, &on) &&
           same_partition(v, text, len, &spanned);
}

TEST(partition_of_real_vocabularies_equals_cutting_each_special_token_in_turn) {
    static const char *const names[] = {"phi-3", "llama-spm", "gpt-2"};
    char buf[512];
    for (size_t k = 0; k < 3; k++) {
        phivk_vocab *v = phivk_vocab_load(tv_vocab_path(names[k]));
        REQUIRE(v, "%s: %s", names[k], phivk_last_error());
        tok_vectors tv;
        REQUIRE(tv_load(names[k], &tv), "vectors for %s", names[k]);
        int before = n_compared, fails = 0;
        for (int i = 0; i < tv.n; i++) fails += !check_text(v, tv.inp[i], tv.inp_len[i]);
        for (int it = 0; it < 300 && fails < 3; it++) {
            size_t n = random_text(v, "ab <>|/es", buf, sizeof buf);
            fails += !check_text(v, buf, n);
        }
        CHECK(fails == 0, "%s: %d texts partitioned differently", names[k], fails);
        CHECK(n_compared - before == 3 * (tv.n + 300), "%s: %d comparisons", names[k], n_compared - before);
        tv_free(&tv);
        phivk_vocab_free(v);
    }
    CHECK(n_cut > 1000, "the random texts contain special tokens to cut (%d cut)", n_cut);
}

/* A SentencePiece vocabulary of single letters and many special tokens made of
 * the same few letters; with "<|end|>" in it, the Phi-3 rule gives the specials
 * RSTRIP (spec choice 4). */
static tok_vocab *crowded_vocab(int n_random) {
    enum { U = TOK_UNKNOWN, C = TOK_CONTROL, N = TOK_NORMAL, D = TOK_USER_DEFINED };
    static const struct { const char *text; int32_t type; } fixed[] = {
        {"<unk>", U}, {"<s>", C}, {"</s>", C}, {"<|end|>", C},
        {"a", N}, {"b", N}, {"c", N}, {"<", N}, {">", N}, {"|", N},
        /* prefixes of each other */
        {"<a", C}, {"<a>", D}, {"<a>b", C}, {"<a>bc", D}, {"<a>bca", C},
        /* contained in and overlapping each other */
        {"ab", D}, {"abc", C}, {"bcd", D}, {"xab", C}, {"cab", D}, {"bca", C}, {"b>", D}, {"a>b", C},
        /* white space, runs of one letter, and a duplicate text (the first id wins) */
        {"  ", D}, {"   ", C}, {" \n", D}, {"\n", C}, {"aaa", C}, {"aaaaa", D}, {"ab", C},
    };
    size_t n_fixed = sizeof fixed / sizeof *fixed, n = n_fixed + (size_t)n_random;
    const char **toks = malloc(n * sizeof *toks);
    char *store = malloc((size_t)n_random * 8);
    int32_t *types = malloc(n * sizeof *types);
    float *scores = calloc(n, sizeof *scores);
    tok_vocab *v = NULL;
    if (!toks || !store || !types || !scores) goto done;
    for (size_t i = 0; i < n_fixed; i++) {
        toks[i] = fixed[i].text;
        types[i] = fixed[i].type;
    }
    /* Random specials of 1..7 letters from "abc<> ": the text alphabet, so that
     * they occur everywhere and overlap in every way. */
    for (int i = 0; i < n_random; i++) {
        char *s = store + (size_t)i * 8;
        int k = 1 + (int)rnd(7);
        for (int j = 0; j < k; j++) s[j] = "abc<> "[rnd(6)];
        s[k] = 0;
        toks[n_fixed + (size_t)i] = s;
        types[n_fixed + (size_t)i] = rnd(2) ? TOK_CONTROL : TOK_USER_DEFINED;
    }
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, n);
    void *img = NULL;
    size_t size;
    gguf_file *f = NULL;
    if (gguf_writer_build(w, &img, &size) == PHIVK_OK && gguf_open_memory(img, size, &f) == PHIVK_OK)
        if (tok_vocab_from_gguf(f, &v)) printf("    crowded vocab: %s\n", pvk_errmsg());
    gguf_close(f);
    gguf_writer_destroy(w);
    free(img);
done:
    free(toks);
    free(store);
    free(types);
    free(scores);
    return v;
}

TEST(partition_with_prefix_overlapping_and_duplicate_specials_equals_cutting_each_in_turn) {
    /* 100000: nearly every string of up to 5 of these letters is a special token
     * (a deep, shared automaton, several matches ending at every byte); the
     * literal specification is slow there, so fewer texts. */
    static const struct { int n_random, texts; } cases[] = {{0, 400}, {40, 400}, {2000, 400}, {100000, 20}};
    char buf[400];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int n_random = cases[k].n_random, texts = cases[k].texts;
        tok_vocab *v = crowded_vocab(n_random);
        REQUIRE(v, "vocab with %d random specials", n_random);
        CHECK(v->tokens[tok_find(v, "<a>", 3)].attr & TOK_ATTR_RSTRIP, "specials eat white space after them");
        int before = n_compared, cut_before = n_cut, fails = 0;
        for (int it = 0; it < texts && fails < 3; it++)
            fails += !check_text(v, buf, random_text(v, "abcx<>|", buf, sizeof buf));
        CHECK(fails == 0, "%d random specials: %d texts partitioned differently", n_random, fails);
        CHECK(n_compared - before == 3 * texts, "%d comparisons", n_compared - before);
        CHECK(n_cut - cut_before > 10 * texts, "%d random specials: %d cuts compared", n_random, n_cut - cut_before);
        tok_vocab_destroy(v);
    }
}

TEST(a_special_token_inside_a_plain_span_is_text_and_one_outside_is_cut) {
    tok_vocab *v = crowded_vocab(0);
    REQUIRE(v, "vocab");
    int32_t end = tok_find(v, "<|end|>", 7), ab = tok_find(v, "ab", 2);
    REQUIRE(v->tokens[end].type == TOK_CONTROL && v->tokens[ab].type == TOK_USER_DEFINED, "types");
    const char *text = "<|end|>x<|end|>y<|end|>ab";
    /* The middle <|end|> is in a plain span, the last one straddles one. */
    const tok_span spans[] = {{8, 7}, {20, 5}};
    tok_encode_params p = {.parse_special = true, .plain = spans, .n_plain = 2};
    tok_frag *fs;
    size_t n;
    REQUIRE(tok_partition(v, text, strlen(text), &p, &fs, &n) == PHIVK_OK, "%s", pvk_errmsg());
    int ends = 0, abs = 0;
    for (size_t i = 0; i < n; i++) ends += fs[i].id == end, abs += fs[i].id == ab;
    CHECK(ends == 1 && fs[0].id == end, "only the first <|end|> is a control token (%d)", ends);
    CHECK(abs == 1, "user-defined 'ab' is cut inside a plain span too, as in plain text (%d)", abs);
    free(fs);
    tok_vocab_destroy(v);
}
