/* Document splitting for phivk summarize (see summarize_split.h).
 *
 * Two steps. First the text is cut into units that fit the budget on their own:
 * paragraphs, and only a paragraph that does not fit is cut into lines, a line
 * into sentences, a sentence into words, a word into characters. Then consecutive
 * units are packed into chunks. The cost of a concatenation is not the sum of its
 * parts (SentencePiece adds a space before each separately tokenized piece, BPE
 * merges across the seam), so the sum only gives a first guess; the chunk's end is
 * then searched for with exact costs (gallop up from the guess, bisect), a few
 * tokenizer calls per chunk instead of one per unit. */
#include "summarize_split.h"

#include <stdbool.h>
#include <stdlib.h>

enum { LVL_PARAGRAPH, LVL_LINE, LVL_SENTENCE, LVL_WORD, LVL_CHAR };

typedef struct unit {
    size_t start, end;
    int64_t cost;
} unit;

typedef struct splitter {
    const char *text;
    int64_t budget;
    sumsplit_cost_fn cost;
    void *user;
    unit *units;
    size_t n_units, cap_units;
    const char *why;
} splitter;

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_continuation(char c) { return ((unsigned char)c & 0xC0) == 0x80; }

static size_t skip_spaces(const char *t, size_t i, size_t end) {
    while (i < end && is_space(t[i])) i++;
    return i;
}

/* The ideographic full stop and the fullwidth ! and ?: CJK sentences end without
 * a following space. Returns the sequence's length at t[i], or 0. */
static size_t cjk_sentence_end(const char *t, size_t i, size_t end) {
    static const char *const marks[] = {"\xE3\x80\x82", "\xEF\xBC\x81", "\xEF\xBC\x9F"};
    for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++) {
        size_t j = 0;
        while (marks[k][j] && i + j < end && t[i + j] == marks[k][j]) j++;
        if (!marks[k][j]) return j;
    }
    return 0;
}

/* The end of the piece of the given level that starts at p (p < end): just past
 * the next boundary and the white space after it, or end. Never p. */
static size_t piece_end(int level, const char *t, size_t p, size_t end) {
    size_t i = p;
    switch (level) {
    case LVL_PARAGRAPH:
        /* A white-space run with two line breaks in it is a blank line. */
        for (; i < end; i++) {
            if (t[i] != '\n') continue;
            size_t run = skip_spaces(t, i, end), breaks = 0;
            for (size_t k = i; k < run; k++) breaks += t[k] == '\n';
            if (breaks >= 2) return run;
            i = run - 1;
        }
        return end;
    case LVL_LINE:
        while (i < end && t[i++] != '\n') {}
        return i;
    case LVL_SENTENCE:
        for (; i < end; i++) {
            size_t cjk = cjk_sentence_end(t, i, end);
            if (cjk) return skip_spaces(t, i + cjk, end);
            if ((t[i] == '.' || t[i] == '!' || t[i] == '?') && (i + 1 == end || is_space(t[i + 1])))
                return skip_spaces(t, i + 1, end);
        }
        return end;
    case LVL_WORD:
        i = skip_spaces(t, i, end);
        while (i < end && !is_space(t[i])) i++;
        return skip_spaces(t, i, end);
    default: /* LVL_CHAR */
        i++;
        while (i < end && is_continuation(t[i])) i++;
        return i;
    }
}

static bool push_unit(splitter *sp, size_t start, size_t end, int64_t cost) {
    if (sp->n_units == sp->cap_units) {
        size_t cap = sp->cap_units ? sp->cap_units * 2 : 256;
        unit *u = realloc(sp->units, sizeof *u * cap);
        if (!u) {
            sp->why = "out of host memory while splitting the document";
            return false;
        }
        sp->units = u;
        sp->cap_units = cap;
    }
    sp->units[sp->n_units++] = (unit){start, end, cost};
    return true;
}

static int64_t cost_of(splitter *sp, size_t start, size_t end) {
    int64_t c = sp->cost(sp->user, sp->text + start, end - start);
    if (c < 0) sp->why = "the tokenizer failed on a piece of the document";
    return c;
}

/* Cuts text[start, end), known to cost more than the budget, into pieces of the
 * given level; a piece that still does not fit is cut at the next level. */
static bool segment(splitter *sp, size_t start, size_t end, int level) {
    if (level > LVL_CHAR) {
        sp->why = "a single character of the document takes more tokens than the budget";
        return false;
    }
    for (size_t p = start; p < end;) {
        size_t q = piece_end(level, sp->text, p, end);
        /* No boundary of this level inside: the cost is known to be too high. */
        int64_t c = p == start && q == end ? sp->budget + 1 : cost_of(sp, p, q);
        if (c < 0) return false;
        if (c <= sp->budget ? !push_unit(sp, p, q, c) : !segment(sp, p, q, level + 1)) return false;
        p = q;
    }
    return true;
}

/* 1 when units [i, k) fit the budget together, 0 when not, -1 when a cost fails. */
static int fits(splitter *sp, size_t i, size_t k) {
    if (k == i + 1) return 1; /* every unit fits on its own */
    int64_t c = cost_of(sp, sp->units[i].start, sp->units[k - 1].end);
    return c < 0 ? -1 : c <= sp->budget;
}

/* The largest k such that units [i, k) fit the budget by exact cost (k > i), or
 * -1 when a cost fails. */
static int64_t chunk_end(splitter *sp, size_t i) {
    size_t n = sp->n_units, guess = i;
    int64_t sum = 0;
    while (guess < n && sum + sp->units[guess].cost <= sp->budget) sum += sp->units[guess++].cost;
    /* Invariant: [i, lo) fits, [i, hi) does not; hi == n + 1 until one fails. */
    size_t lo = i + 1, hi = n + 1;
    int f = fits(sp, i, guess);
    if (f < 0) return -1;
    if (!f) {
        hi = guess;
    } else {
        lo = guess;
        for (size_t step = 1; lo < n; step *= 2) {
            size_t k = lo + step < n ? lo + step : n;
            if ((f = fits(sp, i, k)) < 0) return -1;
            if (!f) {
                hi = k;
                break;
            }
            lo = k;
        }
    }
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((f = fits(sp, i, mid)) < 0) return -1;
        if (f) lo = mid;
        else hi = mid;
    }
    return (int64_t)lo;
}

int64_t sumsplit_text(const char *text, size_t len, int64_t budget, sumsplit_cost_fn cost,
                      void *user, size_t **bounds, const char **why) {
    splitter sp = {.text = text, .budget = budget, .cost = cost, .user = user};
    size_t *b = NULL;
    int64_t n = 0;
    *bounds = NULL;
    *why = NULL;
    if (len) {
        int64_t whole = cost_of(&sp, 0, len);
        if (whole < 0) goto fail;
        if (whole <= budget ? !push_unit(&sp, 0, len, whole) : !segment(&sp, 0, len, LVL_PARAGRAPH))
            goto fail;
    }
    /* At most one chunk per unit. */
    b = malloc(sizeof *b * (sp.n_units + 1));
    if (!b) {
        sp.why = "out of host memory while splitting the document";
        goto fail;
    }
    b[0] = 0;
    for (size_t i = 0; i < sp.n_units;) {
        int64_t j = chunk_end(&sp, i);
        if (j < 0) goto fail;
        b[++n] = sp.units[j - 1].end;
        i = (size_t)j;
    }
    free(sp.units);
    *bounds = b;
    return n;
fail:
    free(b);
    free(sp.units);
    *why = sp.why;
    return -1;
}
