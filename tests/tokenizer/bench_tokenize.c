/* Tokenizer throughput: bench_tokenize VOCAB.gguf [BYTES (default 1 MiB)].
 * Generates English-like text (common words, capitals, punctuation, numbers,
 * paragraphs) from a fixed seed, tokenizes it with phivk_tokenize (no BOS, no
 * special parsing) and reports the best of three runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tokenize VOCAB.gguf [BYTES]\n");
        return 2;
    }
    size_t size = argc > 2 ? strtoull(argv[2], NULL, 10) : (1u << 20);
    double t0 = now();
    phivk_vocab *v = phivk_vocab_load(argv[1]);
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
    printf("vocab %s: load %.1f ms\n", argv[1], t_load * 1e3);
    printf("tokenize %zu bytes -> %lld tokens (%.2f bytes/token): %.1f ms, %.2f MB/s, %.0f tokens/s\n", size,
           (long long)n, (double)size / (double)n, best * 1e3, size / best / 1e6, n / best);
    printf("detokenize: %.1f ms, round trip %s\n", t_detok * 1e3, same ? "exact" : "DIFFERS");
    free(back);
    free(ids);
    free(text);
    phivk_vocab_free(v);
    return same ? 0 : 1;
}
