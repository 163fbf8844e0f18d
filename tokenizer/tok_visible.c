/* phivk_text_visible: text from a model file or a model, safe to show on a
 * terminal (include/phivk.h). The UTF-8 rules are the tokenizer's (tok.h). */
#include <string.h>

#include "phivk.h"
#include "tok.h"

/* Bytes of the well-formed UTF-8 character at s[0..n) (n >= 1), 0 if it is not one. */
static size_t char_len(const uint8_t *s, size_t n) {
    size_t len = (size_t)tok_utf8_len(s[0]);
    if (!len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if (!tok_utf8_cont_ok(s[0], (int)k, s[k])) return 0;
    return len;
}

/* Whether a terminal could act on the character: C0 (bar newline and tab when
 * they are kept), DEL, and C1, which UTF-8 spells 0xC2 0x80..0x9F. */
static bool is_control(const uint8_t *s, size_t len, bool keep_lines) {
    if (len == 1) return (s[0] < 0x20 && !(keep_lines && (s[0] == '\n' || s[0] == '\t'))) || s[0] == 0x7f;
    return len == 2 && s[0] == 0xC2 && s[1] < 0xA0;
}

size_t phivk_text_visible(const char *text, size_t n, bool keep_lines, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)text;
    size_t o = 0;
    if (!cap) return 0;
    for (size_t i = 0; i < n;) {
        size_t len = char_len(s + i, n - i);
        bool escape = !len || is_control(s + i, len, keep_lines);
        if (!len) len = 1; /* a byte that is not UTF-8 is escaped alone */
        size_t need = escape ? 4 * len : len;
        /* Room for "..." stays free while more text follows, so a cut can say so. */
        size_t room = cap - 1 - o, more = i + len < n ? 3 : 0;
        if (need + more > room) {
            if (room >= 3) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        for (size_t k = 0; k < len; k++) {
            if (!escape) {
                out[o++] = (char)s[i + k];
                continue;
            }
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i + k] >> 4];
            out[o++] = hex[s[i + k] & 15];
        }
        i += len;
    }
    out[o] = 0;
    return o;
}
