/* phivk_text_visible, the one filter between untrusted text (model-file strings,
 * generated text) and a terminal: what a terminal acts on becomes visible \xNN,
 * UTF-8 passes unchanged, a cut never splits an escape or a character. Built
 * with ASan + UBSan (meson.build), so a write past cap fails the run. */
#define HARNESS_MAIN
#include "harness.h"

#include "phivk.h"
#include "tok.h"

/* The filtered text of s (static storage, cap bytes offered). */
static const char *vis(const char *s, size_t n, bool keep_lines, size_t cap) {
    static char out[4096];
    size_t got = phivk_text_visible(s, n, keep_lines, out, cap);
    CHECK(got < cap && out[got] == 0 && strlen(out) == got, "'%s': %zu bytes written for cap %zu", s, got, cap);
    return out;
}

static void expect(const char *s, size_t n, bool keep_lines, const char *want) {
    const char *got = vis(s, n, keep_lines, 4 * n + 1);
    CHECK(!strcmp(got, want), "%s lines: got '%s', want '%s'", keep_lines ? "keeping" : "escaping", got, want);
}
#define EXPECT(s, keep, want) expect(s, sizeof s - 1, keep, want)

TEST(escape_sequences_become_visible_text) {
    EXPECT("\x1b]0;owned\x07", false, "\\x1b]0;owned\\x07");       /* retitles the window */
    EXPECT("\x1b[2J\x1b[H", false, "\\x1b[2J\\x1b[H");              /* clears the screen */
    EXPECT("a\rb\bc\x7f", true, "a\\x0db\\x08c\\x7f");              /* CR, BS, DEL */
    EXPECT("nul\0here", true, "nul\\x00here");
}

TEST(newline_and_tab_are_kept_only_when_asked) {
    EXPECT("one\ntwo\tthree", true, "one\ntwo\tthree");
    EXPECT("one\ntwo\tthree", false, "one\\x0atwo\\x09three");
}

TEST(c1_controls_are_escaped_and_other_utf8_passes) {
    /* U+009B is CSI on terminals that honour C1; U+0080 and U+009F bound the range. */
    EXPECT("\xc2\x9b" "31m", true, "\\xc2\\x9b31m");
    EXPECT("\xc2\x80\xc2\x9f", true, "\\xc2\\x80\\xc2\\x9f");
    /* U+00A0 (just past C1), é, 日本 and an emoji are text. */
    EXPECT("\xc2\xa0\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80", true,
           "\xc2\xa0\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80");
}

TEST(bytes_that_are_not_utf8_are_escaped_one_by_one) {
    EXPECT("\x9b" "2J", true, "\\x9b2J");                           /* a lone C1 byte (8-bit CSI) */
    EXPECT("a\xff", true, "a\\xff");
    EXPECT("\xc0\xaf", true, "\\xc0\\xaf");                         /* overlong '/' */
    EXPECT("\xed\xa0\x80", true, "\\xed\\xa0\\x80");                /* a surrogate */
    EXPECT("x\xe6\x97", true, "x\\xe6\\x97");                       /* cut short at the end */
    EXPECT("\xe6\x97" "a", true, "\\xe6\\x97a");                    /* cut short before text */
}

/* Every cap from 1 up: the output fits, and is the full result or a prefix of it
 * that ends between characters, followed by "..." where that fits. */
TEST(a_cut_falls_between_characters_and_says_so) {
    static const char s[] = "ab\x1b[1m\xe6\x97\xa5\xc2\x9b\xff" "cd\xf0\x9f\x98\x80";
    char full[256];
    size_t nfull = phivk_text_visible(s, sizeof s - 1, false, full, sizeof full);
    /* The offsets in full where a character or an escape starts or ends. */
    static const size_t bounds[] = {0, 1, 2, 6, 7, 8, 9, 12, 20, 24, 25, 26, 30};
    const size_t n_bounds = sizeof bounds / sizeof *bounds;
    REQUIRE(nfull == bounds[n_bounds - 1], "full result '%s' is %zu bytes, want %zu", full, nfull,
            bounds[n_bounds - 1]);
    int cut = 0;
    for (size_t cap = 1; cap <= nfull + 1; cap++) {
        const char *got = vis(s, sizeof s - 1, false, cap);
        size_t n = strlen(got);
        if (!strcmp(got, full)) continue;
        cut++;
        bool dots = n >= 3 && !strcmp(got + n - 3, "...");
        size_t kept = dots ? n - 3 : n;
        bool at_bound = false;
        for (size_t b = 0; b < n_bounds; b++) at_bound |= bounds[b] == kept;
        CHECK(at_bound && !strncmp(got, full, kept), "cap %zu: '%s' is not a prefix of '%s' cut between characters",
              cap, got, full);
        CHECK(dots || cap < 4, "cap %zu: '%s' does not end in '...' though it fits", cap, got);
    }
    CHECK(cut == (int)nfull, "%d of %zu caps below the full size cut the text", cut, nfull);
}

/* Random bytes: the output is well-formed UTF-8 with no control but newline and
 * tab, and 4 n + 1 bytes hold all of it. */
TEST(random_bytes_come_out_as_clean_utf8) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char in[64], out[4 * sizeof in + 1], roomy[1024];
    int checked = 0;
    for (int round = 0; round < 20000; round++) {
        for (size_t i = 0; i < sizeof in; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* half ASCII, half high bytes, so multi-byte sequences occur often */
            in[i] = (char)(x & 0x80 ? 0xC0 | (x >> 8 & 0x3F) : x >> 16);
            if (x & 0x100) in[i] = (char)(0x80 | (x >> 24 & 0x3F));
        }
        size_t n = phivk_text_visible(in, sizeof in, true, out, sizeof out);
        bool whole = phivk_text_visible(in, sizeof in, true, roomy, sizeof roomy) == n && !strcmp(out, roomy);
        size_t bad = tok_utf8_invalid_at(out, n);
        bool ctrl = false;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];
            ctrl |= (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
                    (c == 0xC2 && i + 1 < n && (unsigned char)out[i + 1] < 0xA0);
        }
        if (bad != n || ctrl || !whole) {
            CHECK(0, "round %d: invalid UTF-8 at %zu of %zu, control %d, whole %d", round, bad, n, ctrl, whole);
            break;
        }
        checked++;
    }
    CHECK(checked == 20000, "%d of 20000 random inputs came out clean", checked);
}
