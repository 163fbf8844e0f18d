/* The document splitter of phivk summarize (apps/summarize_split.c): where chunks
 * end, that each fits its budget, that no UTF-8 sequence is cut and that the chunks
 * give the document back. Costs come from a byte count (exact and additive, so the
 * expected boundaries are known) and from a real SentencePiece tokenizer (a
 * synthetic model's vocabulary, where the cost of a concatenation is not the sum of
 * its parts). No GPU. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "phivk.h"
#include "summarize_split.h"
#include "synth.h"

static int64_t byte_cost(void *user, const char *text, size_t len) {
    (void)user;
    (void)text;
    return (int64_t)len;
}

static int64_t failing_cost(void *user, const char *text, size_t len) {
    (void)user;
    (void)text;
    return len > 8 ? -1 : (int64_t)len;
}

static int64_t vocab_cost(void *user, const char *text, size_t len) {
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    tp.bos = PHIVK_BOS_NO;
    return phivk_tokenize(user, text, len, &tp, NULL, 0);
}

/* The properties every split has; returns the number of failures it recorded. */
static int check_split(const char *text, size_t len, int64_t budget, sumsplit_cost_fn cost,
                       void *user, const size_t *b, int64_t n) {
    int before = harness_failed_now();
    CHECK(b[0] == 0 && b[n] == len, "bounds run from 0 to %zu: got %zu..%zu", len, b[0], b[n]);
    char *joined = malloc(len + 1);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        CHECK(b[i] < b[i + 1], "chunk %lld is empty or reversed (%zu, %zu)", (long long)i, b[i], b[i + 1]);
        if (b[i] >= b[i + 1]) break;
        int64_t c = cost(user, text + b[i], b[i + 1] - b[i]);
        CHECK(c >= 0 && c <= budget, "chunk %lld costs %lld, budget %lld", (long long)i, (long long)c,
              (long long)budget);
        CHECK(((unsigned char)text[b[i]] & 0xC0) != 0x80, "chunk %lld starts inside a UTF-8 sequence (byte %zu)",
              (long long)i, b[i]);
        /* Packed full: a chunk and the next one together would not have fitted. */
        if (i + 2 <= n) {
            int64_t two = cost(user, text + b[i], b[i + 2] - b[i]);
            CHECK(two > budget, "chunks %lld and %lld fit together (%lld <= %lld)", (long long)i,
                  (long long)i + 1, (long long)two, (long long)budget);
        }
        memcpy(joined + at, text + b[i], b[i + 1] - b[i]);
        at += b[i + 1] - b[i];
    }
    CHECK(at == len && !memcmp(joined, text, len), "the chunks concatenate to the document");
    free(joined);
    return harness_failed_now() - before;
}

/* Splits and checks; returns the bounds (caller frees) or NULL. */
static size_t *split_checked(const char *text, int64_t budget, sumsplit_cost_fn cost, void *user, int64_t *n) {
    size_t *b;
    const char *why;
    size_t len = strlen(text);
    *n = sumsplit_text(text, len, budget, cost, user, &b, &why);
    CHECK(*n >= 0, "split failed: %s", why ? why : "(no reason)");
    if (*n < 0) return NULL;
    if (check_split(text, len, budget, cost, user, b, *n)) {
        free(b);
        return NULL;
    }
    return b;
}

TEST(short_text_is_one_chunk) {
    int64_t n;
    size_t *b = split_checked("A short note.\n\nTwo paragraphs.", 100, byte_cost, NULL, &n);
    CHECK(n == 1, "one chunk, got %lld", (long long)n);
    free(b);
}

TEST(empty_text_is_no_chunk) {
    size_t *b;
    const char *why;
    int64_t n = sumsplit_text("", 0, 10, byte_cost, NULL, &b, &why);
    CHECK(n == 0 && b && b[0] == 0, "0 chunks and bounds {0}, got %lld", (long long)n);
    free(b);
}

/* Paragraphs of 40 bytes (with their blank line), budget 100: two per chunk, and
 * every chunk ends at a blank line although more bytes would fit mid-paragraph. */
TEST(chunks_end_at_paragraph_breaks_when_paragraphs_fit) {
    const char *para = "This paragraph has exactly forty bytes\n\n";
    REQUIRE(strlen(para) == 40, "the test paragraph is 40 bytes");
    char text[40 * 7 + 1] = "";
    for (int i = 0; i < 7; i++) strcat(text, para);
    int64_t n;
    size_t *b = split_checked(text, 100, byte_cost, NULL, &n);
    REQUIRE(b, "split");
    CHECK(n == 4, "7 paragraphs, 2 per chunk: 4 chunks, got %lld", (long long)n);
    for (int64_t i = 1; i < n; i++)
        CHECK(b[i] == (size_t)(80 * i), "chunk %lld ends after paragraph %lld: at %zu", (long long)i - 1,
              (long long)2 * i, b[i]);
    free(b);
}

/* A piece that does not fit is cut at the next finer boundary: each case's cuts
 * all follow one of its endings. */
static const struct cut_case {
    const char *what, *text;
    int64_t budget, min_chunks;
    const char *endings[3];
} cut_cases[] = {
    {"a long paragraph at sentence ends",
     "First sentence is here. Then a question? Then a shout! More words follow here. "
     "And the last sentence ends.",
     30, 5, {". ", "? ", "! "}},
    {"a markdown list at line ends",
     "- first item of the list\n- second item of it\n- third item here\n- fourth item here\n"
     "- fifth and last item\n",
     50, 2, {"\n"}},
    {"a long sentence between words",
     "one two three four five six seven eight nine ten eleven twelve thirteen fourteen", 20, 4, {" "}},
    {"CJK sentences after the full stop (no space follows it)",
     "日本語の文です。次の文もあります。最後の文。", 30, 2, {"。"}},
};

TEST(long_pieces_are_cut_at_the_next_finer_boundary) {
    for (size_t k = 0; k < sizeof cut_cases / sizeof cut_cases[0]; k++) {
        const struct cut_case *c = &cut_cases[k];
        int64_t n;
        size_t *b = split_checked(c->text, c->budget, byte_cost, NULL, &n);
        CHECK(b && n >= c->min_chunks, "%s: %lld chunks, want >= %lld", c->what, (long long)n,
              (long long)c->min_chunks);
        for (int64_t i = 1; b && i < n; i++) {
            bool ok = false;
            for (int e = 0; e < 3 && c->endings[e]; e++) {
                size_t m = strlen(c->endings[e]);
                ok |= b[i] >= m && !memcmp(c->text + b[i] - m, c->endings[e], m);
            }
            CHECK(ok, "%s: cut %lld at byte %zu follows '%.8s'", c->what, (long long)i, b[i],
                  c->text + (b[i] >= 4 ? b[i] - 4 : 0));
        }
        free(b);
    }
}

/* A word of 4-byte characters under a byte budget: cuts fall between characters. */
TEST(utf8_sequences_are_never_cut) {
    char text[4 * 9 + 2 * 5 + 1] = "";
    for (int i = 0; i < 9; i++) strcat(text, "\xF0\x9F\x98\x80"); /* U+1F600 */
    for (int i = 0; i < 5; i++) strcat(text, "\xC3\xA9");         /* é */
    int64_t n;
    size_t *b = split_checked(text, 9, byte_cost, NULL, &n);
    REQUIRE(b, "split");
    /* Budget 9 holds two emoji (8 bytes): 5 chunks for 9, then 4 x 2-byte é. */
    CHECK(n == 6, "4 chunks of two emoji, one of emoji + 2 é, one of 3 é: got %lld", (long long)n);
    free(b);
}

TEST(a_character_over_the_budget_is_an_error) {
    size_t *b;
    const char *why;
    const char *text = "ab \xF0\x9F\x98\x80 cd";
    int64_t n = sumsplit_text(text, strlen(text), 3, byte_cost, NULL, &b, &why);
    CHECK(n == -1 && !b, "a 4-byte character cannot fit 3: got %lld", (long long)n);
    CHECK(why && strstr(why, "character"), "the reason names the character: %s", why ? why : "(none)");
}

TEST(a_failing_cost_is_an_error) {
    size_t *b;
    const char *why;
    const char *text = "a longer text than eight bytes";
    int64_t n = sumsplit_text(text, strlen(text), 100, failing_cost, NULL, &b, &why);
    CHECK(n == -1 && !b && why, "the failure comes back with a reason: %lld", (long long)n);
}

/* A document like a user's: markdown headings, paragraphs of sentences, a list, a
 * long unbroken token (a URL), accented and CJK words and emoji. */
static char *make_document(int n_paragraphs, uint32_t seed) {
    static const char *const words[] = {
        "the", "model", "reads", "a", "long", "document", "and", "writes", "summary", "café",
        "naïve", "日本語", "😀", "context", "tokens", "GPU", "Vulkan", "shader", "of", "in"};
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    uint32_t x = seed;
#define RND(m) ((x = x * 1664525u + 1013904223u) >> 8) % (m)
#define ADD(s) (n += (size_t)snprintf(t + n, cap - n, "%s", (s)))
    for (int p = 0; p < n_paragraphs; p++) {
        uint32_t kind = RND(8);
        if (kind == 0) {
            ADD("## Section heading\n\n");
        } else if (kind == 1) {
            for (uint32_t i = 0, k = 2 + RND(4); i < k; i++) {
                ADD("- item ");
                ADD(words[RND(20)]);
                ADD("\n");
            }
            ADD("\n");
        } else if (kind == 2) {
            ADD("See https://example.org/");
            for (int i = 0; i < 120; i++) ADD(words[RND(9)]);
            ADD(" for more.\n\n");
        } else {
            for (uint32_t s = 0, k = 1 + RND(6); s < k; s++) {
                for (uint32_t w = 0, m = 4 + RND(14); w < m; w++) {
                    if (w) ADD(" ");
                    ADD(words[RND(20)]);
                }
                ADD(s + 1 < k ? (RND(3) ? ". " : "? ") : ".\n\n");
            }
        }
    }
#undef ADD
#undef RND
    return t;
}

static phivk_vocab *fixture_vocab(void) {
    char path[] = "/tmp/phivk_summarize_vocab_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    close(fd);
    synth_params p = synth_default_params();
    p.n_vocab = 400;
    p.n_embd = 32;
    p.n_layer = 1;
    p.n_head = 4;
    p.n_ff = 64;
    phivk_vocab *v = synth_save(&p, path) == PHIVK_OK ? phivk_vocab_load(path) : NULL;
    unlink(path);
    return v;
}

/* With a real tokenizer the cost of a chunk is not the sum of its units' costs:
 * every chunk must still fit, by the tokenizer's own count, at several budgets. */
TEST(every_chunk_fits_the_budget_by_real_tokenizer_count) {
    phivk_vocab *v = fixture_vocab();
    REQUIRE(v, "fixture vocabulary: %s", phivk_last_error());
    char *doc = make_document(60, 7);
    int64_t total = vocab_cost(v, doc, strlen(doc));
    REQUIRE(total > 2000, "a document of several thousand tokens: %lld", (long long)total);
    static const int64_t budgets[] = {16, 64, 200, 1000};
    for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++) {
        int64_t n;
        size_t *b = split_checked(doc, budgets[k], vocab_cost, v, &n);
        CHECK(b, "budget %lld", (long long)budgets[k]);
        /* Adjacent chunks do not fit together, so n chunks cost over (n - 1) / 2
         * budgets: a loose bound that catches half-empty packing. */
        CHECK(b && (n - 1) / 2 * budgets[k] < total, "%lld chunks at budget %lld for %lld tokens",
              (long long)n, (long long)budgets[k], (long long)total);
        free(b);
    }
    free(doc);
    phivk_vocab_free(v);
}
