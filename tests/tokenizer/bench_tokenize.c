/* Tokenizer throughput: bench_tokenize VOCAB.gguf [BYTES (default 1 MiB) [SPECIALS [TOTAL]]].
 * Generates English-like text (common words, capitals, punctuation, numbers,
 * paragraphs) from a fixed seed, tokenizes it with phivk_tokenize (no BOS, no
 * special parsing) and reports the best of three runs.
 *
 * With SPECIALS, the vocabulary is VOCAB's tokenizer plus that many added tokens
 * (half user-defined, which plain text is searched for, half control; one in a
 * thousand spells a word of the text, so some are cut), padded with unused tokens
 * to TOTAL entries (default 200000): the shape of vocabularies with large added
 * sets, whose special-token partition must not cost (specials x text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "phivk.h"

static const char *const words[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
    "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
    "more", "when", "will", "would", "who", "so", "no", "time", "people", "water", "little", "world",
    "model", "language", "between", "through", "because", "different", "following", "important",
    "government", "understanding", "computation", "tokenizer", "beautiful", "mountains", "river",
    "children", "morning", "evening", "question", "answer", "history", "science", "kitchen", "garden",
    "walked", "quickly", "thought", "remembered", "discovered", "yesterday", "tomorrow", "although",
    "however", "therefore", "nevertheless", "Hello", "world", "Apfel", "don't", "it's", "we'll",
    "they're", "I've", "café", "naïve", "résumé", "über", "jalapeño", "Zürich", "São", "Paulo",
};
#define N_WORDS (sizeof words / sizeof words[0])

static uint64_t rng = 42;
static uint32_t rnd(uint32_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng >> 33) % n);
}

static char *make_text(size_t size) {
    char *t = malloc(size + 64);
    size_t n = 0;
    int in_sentence = 0;
    while (t && n < size) {
        const char *w = words[rnd(N_WORDS)];
        char num[16];
        if (rnd(40) == 0) {
            snprintf(num, sizeof num, "%u", rnd(100000));
            w = num;
        }
        size_t k = strlen(w);
        if (n + k + 4 > size) break;
        if (in_sentence) t[n++] = ' ';
        memcpy(t + n, w, k);
        if (!in_sentence && t[n] >= 'a' && t[n] <= 'z') t[n] -= 32;
        n += k;
        in_sentence++;
        if (rnd(12) == 0) t[n++] = ',';
        if (in_sentence > 6 && rnd(8) == 0) {
            t[n++] = ".?!"[rnd(3)];
            t[n++] = rnd(6) ? ' ' : '\n';
            in_sentence = 0;
        }
    }
    while (t && n < size) t[n++] = ' ';
    return t;
}

static void copy_int(const gguf_file *f, gguf_writer *w, const char *key) {
    int64_t x;
    if (gguf_get_i64(f, key, &x)) gguf_writer_set_i32(w, key, (int32_t)x);
}

static void copy_bool(const gguf_file *f, gguf_writer *w, const char *key) {
    bool b;
    if (gguf_get_bool(f, key, &b)) gguf_writer_set_bool(w, key, b);
}

/* Writes VOCAB's tokenizer with the added tokens to path; false with a message. */
static bool crowded_vocab(const char *vocab, long specials, long total, const char *path) {
    gguf_file *f = NULL;
    if (gguf_open(vocab, &f)) {
        fprintf(stderr, "bench_tokenize: %s\n", phivk_last_error());
        return false;
    }
    const gguf_kv *toks = gguf_find(f, "tokenizer.ggml.tokens"), *types = gguf_find(f, "tokenizer.ggml.token_type");
    const gguf_kv *scores = gguf_find(f, "tokenizer.ggml.scores"), *merges = gguf_find(f, "tokenizer.ggml.merges");
    gguf_str model, arch = {"", 0};
    if (!toks || !gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        fprintf(stderr, "bench_tokenize: %s has no tokenizer\n", vocab);
        gguf_close(f);
        return false;
    }
    gguf_get_str(f, "general.architecture", &arch);
    size_t n0 = toks->arr_n, n = n0 + (size_t)specials;
    if ((size_t)total > n) n = (size_t)total;
    char **text = calloc(n, sizeof *text);
    int32_t *type = malloc(n * sizeof *type);
    float *score = calloc(n, sizeof *score);
    char **merge = merges ? calloc(merges->arr_n, sizeof *merge) : NULL;
    bool ok = text && type && score && (!merges || merge);
    for (size_t i = 0; ok && i < n; i++) {
        gguf_str t;
        int64_t ty = 1;
        char buf[64];
        if (i < n0) {
            gguf_arr_str(f, toks, i, &t);
            if (types) gguf_arr_i64(types, i, &ty);
            if (scores) gguf_arr_f32(scores, i, &score[i]);
        } else if (i < n0 + (size_t)specials) {
            long k = (long)(i - n0);
            ty = k % 2 ? 3 : 4; /* control, user-defined */
            if (k % 1000 == 0) snprintf(buf, sizeof buf, "%s", words[(size_t)k / 1000 % N_WORDS]);
            else snprintf(buf, sizeof buf, k % 4 < 2 ? "<|added_%ld|>" : "[extra%ld]", k);
            t = (gguf_str){buf, strlen(buf)};
        } else {
            ty = 5; /* unused */
            snprintf(buf, sizeof buf, "<unused_%zu>", i);
            t = (gguf_str){buf, strlen(buf)};
        }
        type[i] = (int32_t)ty;
        text[i] = strndup(t.ptr, t.len);
        ok = text[i] != NULL;
    }
    for (uint64_t i = 0; ok && merges && i < merges->arr_n; i++) {
        gguf_str m;
        gguf_arr_str(f, merges, i, &m);
        ok = (merge[i] = strndup(m.ptr, m.len)) != NULL;
    }
    gguf_writer *w = ok ? gguf_writer_create() : NULL;
    if (w) {
        char a[64], mo[16];
        snprintf(a, sizeof a, "%.*s", (int)arch.len, arch.ptr);
        snprintf(mo, sizeof mo, "%.*s", (int)model.len, model.ptr);
        gguf_writer_set_str(w, "general.architecture", a);
        gguf_writer_set_str(w, "tokenizer.ggml.model", mo);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)text, n);
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, type, n);
        gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, score, n);
        if (merges) gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merge, merges->arr_n);
        static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.eot_token_id"};
        for (size_t i = 0; i < 4; i++) copy_int(f, w, ids[i]);
        copy_bool(f, w, "tokenizer.ggml.add_bos_token");
        copy_bool(f, w, "tokenizer.ggml.add_eos_token");
        copy_bool(f, w, "tokenizer.ggml.add_space_prefix");
        ok = gguf_writer_save(w, path) == PHIVK_OK;
    }
    if (!ok) fprintf(stderr, "bench_tokenize: cannot write the crowded vocabulary: %s\n", phivk_last_error());
    gguf_writer_destroy(w);
    for (size_t i = 0; text && i < n; i++) free(text[i]);
    for (uint64_t i = 0; merge && i < merges->arr_n; i++) free(merge[i]);
    free(text);
    free(type);
    free(score);
    free(merge);
    gguf_close(f);
    return ok;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tokenize VOCAB.gguf [BYTES [SPECIALS [TOTAL]]]\n");
        return 2;
    }
    size_t size = argc > 2 ? strtoull(argv[2], NULL, 10) : (1u << 20);
    long specials = argc > 3 ? strtol(argv[3], NULL, 10) : 0, total = argc > 4 ? strtol(argv[4], NULL, 10) : 200000;
    const char *path = argv[1];
    char tmp[] = "/tmp/bench_tokenize_XXXXXX";
    if (specials > 0) {
        int fd = mkstemp(tmp);
        if (fd < 0 || close(fd) || !crowded_vocab(argv[1], specials, total, tmp)) return 1;
        path = tmp;
    }
    double t0 = now();
    phivk_vocab *v = phivk_vocab_load(path);
    if (specials > 0) unlink(tmp);
    if (!v) {
        fprintf(stderr, "bench_tokenize: %s\n", phivk_last_error());
        return 1;
    }
    double t_load = now() - t0;
    char *text = make_text(size);
    int32_t *ids = malloc((size + 8) * sizeof *ids);
    if (!text || !ids) return 1;
    phivk_tokenize_params p = {PHIVK_BOS_NO, false};
    double best = 1e30;
    int64_t n = 0;
    for (int r = 0; r < 3; r++) {
        t0 = now();
        n = phivk_tokenize(v, text, size, &p, ids, (int64_t)size + 8);
        double dt = now() - t0;
        if (n < 0) {
            fprintf(stderr, "bench_tokenize: %s\n", phivk_last_error());
            return 1;
        }
        if (dt < best) best = dt;
    }
    t0 = now();
    char *back = phivk_detokenize(v, ids, n, false);
    double t_detok = now() - t0;
    int same = back && strlen(back) == size && !memcmp(back, text, size);
    printf("vocab %s", argv[1]);
    if (specials > 0) printf(" + %ld added tokens, %d entries", specials, phivk_vocab_size(v));
    printf(": load %.1f ms\n", t_load * 1e3);
    uint64_t sum = 0xcbf29ce484222325ull; /* FNV-1a of the ids: compares builds */
    for (int64_t i = 0; i < n; i++) sum = (sum ^ (uint32_t)ids[i]) * 0x100000001b3ull;
    printf("tokenize %zu bytes -> %lld tokens (%.2f bytes/token, ids hash %016llx): %.1f ms, %.2f MB/s, %.0f tokens/s\n",
           size, (long long)n, (double)size / (double)n, (unsigned long long)sum, best * 1e3, size / best / 1e6, n / best);
    /* Added tokens that spell words eat the space after them in a vocabulary with
     * Phi-3's rule (spec choice 4), so only a plain vocabulary must round-trip. */
    printf("detokenize: %.1f ms, round trip %s\n", t_detok * 1e3,
           same ? "exact" : specials > 0 ? "differs (added tokens ate white space)" : "DIFFERS");
    free(back);
    free(ids);
    free(text);
    phivk_vocab_free(v);
    return same || specials > 0 ? 0 : 1;
}
