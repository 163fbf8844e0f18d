/* The token sampler of include/phivk.h.
 *
 * Order (llama.cpp's): repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> a seeded draw. top-p and min-p therefore look at the
 * temperature-1 distribution, as in llama.cpp. temp <= 0 or top_k == 1 is greedy
 * (argmax after the penalty). Nothing sorts the whole vocabulary: top-k keeps a
 * k-heap (O(n log k)); top-p pops a heap built in O(n) only for the candidates it
 * keeps; min-p is one linear filter. The PRNG is our own (splitmix64-seeded
 * xoshiro256**), so a seed gives the same tokens on every platform. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "phivk.h"
#include "pvk_err.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct phivk_sampler {
    phivk_sampler_params p;
    uint64_t rng[4];
    int32_t *hist;       /* ring of the last repeat_last_n accepted tokens */
    int32_t hist_n, hist_head;
    cand *cands;         /* n_vocab scratch */
    uint8_t *seen;       /* n_vocab scratch: a token penalized once per call */
    int32_t cap;
};

phivk_sampler_params phivk_sampler_default_params(void) {
    return (phivk_sampler_params){
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0x5eed,
    };
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t s[4]) {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(uint64_t s[4]) { return (double)(xoshiro(s) >> 11) * 0x1.0p-53; }

void phivk_sampler_reset(phivk_sampler *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->hist_n = s->hist_head = 0;
}

phivk_sampler *phivk_sampler_create(const phivk_sampler_params *p) {
    phivk_sampler_params d = p ? *p : phivk_sampler_default_params();
    if (!(d.temp >= 0) || d.top_k < 0 || !(d.top_p > 0 && d.top_p <= 1) ||
        !(d.min_p >= 0 && d.min_p <= 1) || !(d.repeat_penalty > 0) || d.repeat_last_n < 0) {
        pvk_fail(PHIVK_ERR_INVALID,
                 "invalid sampler settings (temp %g, top-k %d, top-p %g, min-p %g, repeat penalty "
                 "%g, last-n %d): need temp >= 0, top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, "
                 "penalty > 0, last-n >= 0",
                 (double)d.temp, d.top_k, (double)d.top_p, (double)d.min_p,
                 (double)d.repeat_penalty, d.repeat_last_n);
        return NULL;
    }
    phivk_sampler *s = calloc(1, sizeof *s);
    if (s && d.repeat_last_n > 0) s->hist = malloc((size_t)d.repeat_last_n * sizeof *s->hist);
    if (!s || (d.repeat_last_n > 0 && !s->hist)) {
        free(s);
        pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the sampler");
        return NULL;
    }
    s->p = d;
    phivk_sampler_reset(s);
    return s;
}

void phivk_sampler_free(phivk_sampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->cands);
    free(s->seen);
    free(s);
}

void phivk_sampler_accept(phivk_sampler *s, int32_t id) {
    if (!s->p.repeat_last_n) return;
    s->hist[s->hist_head] = id;
    s->hist_head = (s->hist_head + 1) % s->p.repeat_last_n;
    if (s->hist_n < s->p.repeat_last_n) s->hist_n++;
}

/* llama.cpp semantics: each distinct recent token once; positive logits are divided
 * by the penalty, negative ones multiplied, so both move towards "less likely". */
static void apply_penalty(phivk_sampler *s, float *logits, int32_t n) {
    if (s->p.repeat_penalty == 1.0f) return;
    for (int32_t i = 0; i < s->hist_n; i++) {
        const int32_t id = s->hist[i];
        if (id < 0 || id >= n || s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] > 0 ? logits[id] / s->p.repeat_penalty
                                    : logits[id] * s->p.repeat_penalty;
    }
    for (int32_t i = 0; i < s->hist_n; i++)
        if (s->hist[i] >= 0 && s->hist[i] < n) s->seen[s->hist[i]] = 0;
}

/* Binary heaps over cand; "above" decides which element sits at the root. */
static bool heap_above(cand a, cand b, bool max_heap) {
    return max_heap ? a.logit > b.logit : a.logit < b.logit;
}

static void sift_down(cand *h, int32_t n, int32_t i, bool max_heap) {
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && heap_above(h[c + 1], h[c], max_heap)) c++;
        if (!heap_above(h[c], h[i], max_heap)) return;
        cand t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

static void heapify(cand *h, int32_t n, bool max_heap) {
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_down(h, n, i, max_heap);
}

/* Moves the root to h[n-1] and restores the heap over h[0..n-2]. */
static void heap_pop(cand *h, int32_t n, bool max_heap) {
    cand t = h[0];
    h[0] = h[n - 1];
    h[n - 1] = t;
    sift_down(h, n - 1, 0, max_heap);
}

/* Keeps the k largest of c[0..n) and leaves them sorted descending in c[0..k). */
static void top_k_sorted(cand *c, int32_t n, int32_t k) {
    heapify(c, k, false);                 /* min-heap of the best k so far */
    for (int32_t i = k; i < n; i++)
        if (c[i].logit > c[0].logit) {
            c[0] = c[i];
            sift_down(c, k, 0, false);
        }
    for (int32_t m = k; m > 1; m--) heap_pop(c, m, false); /* ascending pops -> descending array */
}

/* The first of the largest (ties go to the lowest index, as candidates are in id order). */
static int32_t argmax_id(const cand *c, int32_t m) {
    int32_t best = 0;
    for (int32_t i = 1; i < m; i++)
        if (c[i].logit > c[best].logit) best = i;
    return c[best].id;
}

int32_t phivk_sampler_sample(phivk_sampler *s, float *logits, int32_t n) {
    if (!logits || n <= 0) {
        pvk_fail(PHIVK_ERR_INVALID, "phivk_sampler_sample: no logits");
        return -1;
    }
    if (n > s->cap) {
        cand *c = realloc(s->cands, (size_t)n * sizeof *c);
        if (c) s->cands = c;
        uint8_t *seen = c ? realloc(s->seen, (size_t)n) : NULL;
        if (!seen) {
            pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for %d candidates", n);
            return -1;
        }
        memset(seen + s->cap, 0, (size_t)(n - s->cap));
        s->seen = seen;
        s->cap = n;
    }
    apply_penalty(s, logits, n);

    int32_t m = 0; /* candidates: NaN logits never win */
    for (int32_t i = 0; i < n; i++)
        if (!isnan(logits[i])) s->cands[m++] = (cand){logits[i], i};
    if (!m) {
        pvk_fail(PHIVK_ERR_INVALID, "every logit is NaN: the model's numbers broke down (a weight or "
                                  "hyperparameter in the file, or a device fault); no token to pick");
        return -1;
    }
    cand *c = s->cands;
    int32_t id;
    if (s->p.temp <= 0 || s->p.top_k == 1) {
        id = argmax_id(c, m);
        goto accept;
    }

    bool sorted = false; /* c[0..m) sorted descending, else an unordered set */
    if (s->p.top_k > 0 && s->p.top_k < m) {
        top_k_sorted(c, m, s->p.top_k);
        m = s->p.top_k;
        sorted = true;
    }
    float mx = c[0].logit;
    for (int32_t i = 1; i < m && !sorted; i++) mx = c[i].logit > mx ? c[i].logit : mx;
    if (!isfinite(mx)) { /* infinite logits have no distribution: take the best */
        id = argmax_id(c, m);
        goto accept;
    }

    if (s->p.top_p < 1.0f) {
        double sum = 0;
        for (int32_t i = 0; i < m; i++) sum += exp((double)c[i].logit - mx);
        if (!sorted) {
            /* pop the max-heap only as far as the nucleus reaches; the popped
             * elements collect at the end, so reverse them to the front */
            heapify(c, m, true);
            double cum = 0;
            int32_t kept = 0;
            while (kept < m && cum < s->p.top_p * sum) {
                cum += exp((double)c[0].logit - mx);
                heap_pop(c, m - kept, true);
                kept++;
            }
            for (int32_t i = 0; i < kept / 2; i++) {
                cand t = c[m - 1 - i];
                c[m - 1 - i] = c[m - kept + i];
                c[m - kept + i] = t;
            }
            memmove(c, c + m - kept, (size_t)kept * sizeof *c);
            m = kept;
            sorted = true;
        } else {
            double cum = 0;
            int32_t kept = 0;
            while (kept < m && cum < s->p.top_p * sum) cum += exp((double)c[kept++].logit - mx);
            m = kept;
        }
    }

    if (s->p.min_p > 0) {
        /* p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p) */
        const double thr = mx + log((double)s->p.min_p);
        int32_t kept = 0;
        for (int32_t i = 0; i < m; i++)
            if (c[i].logit >= thr) c[kept++] = c[i];
        m = kept; /* the max itself always passes */
    }

    {
        double sum = 0;
        for (int32_t i = 0; i < m; i++) sum += exp(((double)c[i].logit - mx) / s->p.temp);
        const double r = uniform(s->rng) * sum;
        double cum = 0;
        id = c[m - 1].id; /* rounding can leave r just above the last partial sum */
        for (int32_t i = 0; i < m; i++) {
            cum += exp(((double)c[i].logit - mx) / s->p.temp);
            if (r < cum) {
                id = c[i].id;
                break;
            }
        }
    }
accept:
    phivk_sampler_accept(s, id);
    return id;
}
