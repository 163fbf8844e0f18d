/* Reading the reference data in tests/data (tests/data/README.md): paths,
 * token id lists and llama.cpp's logits files. */
#ifndef PHIVK_TESTS_TESTDATA_H
#define PHIVK_TESTS_TESTDATA_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* $PHIVK_TESTDATA/rel, else <source root>/tests/data/rel (static buffer). */
static inline const char *testdata_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("PHIVK_TESTDATA");
    if (root && *root)
        snprintf(buf, sizeof buf, "%s/%s", root, rel);
#ifdef PHIVK_SOURCE_ROOT
    else
        snprintf(buf, sizeof buf, "%s/tests/data/%s", PHIVK_SOURCE_ROOT, rel);
#else
    else
        snprintf(buf, sizeof buf, "tests/data/%s", rel);
#endif
    return buf;
}

/* Whitespace-separated ids of reference/name; the count (0 when unreadable). */
static inline int testdata_ids(const char *name, int32_t *ids, int cap) {
    char rel[512];
    snprintf(rel, sizeof rel, "reference/%s", name);
    FILE *f = fopen(testdata_path(rel), "r");
    if (!f) return 0;
    int n = 0;
    while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    return n;
}

/* count little-endian f32 of reference/name (malloc'd), NULL when unreadable. */
static inline float *testdata_logits(const char *name, size_t count) {
    char rel[512];
    snprintf(rel, sizeof rel, "reference/%s", name);
    FILE *f = fopen(testdata_path(rel), "rb");
    if (!f) return NULL;
    float *v = malloc(count * sizeof *v);
    if (v && fread(v, sizeof *v, count, f) != count) {
        free(v);
        v = NULL;
    }
    fclose(f);
    return v;
}

static inline int vec_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Compares n positions of nv logits: the largest |got - want| (a NaN anywhere makes
 * it NaN, which fails any <= check) and the positions whose argmax agrees. */
static inline void testdata_compare(const float *got, const float *want, int n, int nv,
                                    double *max_diff, int *top1) {
    *max_diff = 0;
    *top1 = 0;
    for (int i = 0; i < n; i++) {
        for (int v = 0; v < nv; v++) {
            double d = fabs((double)got[(size_t)i * nv + v] - want[(size_t)i * nv + v]);
            if (!(d <= *max_diff)) *max_diff = d;
        }
        *top1 += vec_argmax(got + (size_t)i * nv, nv) == vec_argmax(want + (size_t)i * nv, nv);
    }
}

#endif
