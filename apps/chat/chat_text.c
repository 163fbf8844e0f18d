#include "chat_text.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool tb_reserve(text_buf *b, size_t need) {
    if (need + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) return false;
    b->s = s;
    b->cap = cap;
    return true;
}

bool tb_insert(text_buf *b, size_t at, const char *s, size_t n) {
    if (at > b->len || !tb_reserve(b, b->len + n)) return false;
    memmove(b->s + at + n, b->s + at, b->len - at);
    memcpy(b->s + at, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return true;
}

bool tb_append(text_buf *b, const char *s, size_t n) { return tb_insert(b, b->len, s, n); }

bool tb_set(text_buf *b, const char *s, size_t n) {
    b->len = 0;
    if (b->s) b->s[0] = 0;
    return tb_insert(b, 0, s, n);
}

void tb_erase(text_buf *b, size_t at, size_t n) {
    if (at >= b->len) return;
    if (n > b->len - at) n = b->len - at;
    memmove(b->s + at, b->s + at + n, b->len - at - n);
    b->len -= n;
    b->s[b->len] = 0;
}

const char *tb_str(const text_buf *b) { return b->s ? b->s : ""; }

void tb_free(text_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t utf8_prev(const char *s, size_t i) {
    if (!i) return 0;
    i--;
    while (i && is_cont((unsigned char)s[i])) i--;
    return i;
}

size_t utf8_next(const char *s, size_t len, size_t i) {
    if (i >= len) return len;
    i++;
    while (i < len && is_cont((unsigned char)s[i])) i++;
    return i;
}

size_t utf8_floor(const char *s, size_t n) {
    if (!n) return 0;
    size_t start = utf8_prev(s, n); /* the last code point's lead byte */
    unsigned char c = (unsigned char)s[start];
    size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return n - start >= need ? n : start;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t k;
    uint32_t cp;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) k = 2, cp = s[0] & 0x1F;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) k = 3, cp = s[0] & 0x0F;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) k = 4, cp = s[0] & 0x07;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if (!is_cont(s[i])) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

char *utf8_clean(const char *s, size_t n, size_t *out_len) {
    /* Worst case: every byte becomes U+FFFD (3 bytes) or a tab four spaces. */
    char *out = malloc(n * 4 + 1);
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else if (u[i] == '\r') {
            out[o++] = '\n';
            i += i + 1 < n && u[i + 1] == '\n' ? 2 : 1;
        } else if (u[i] == '\t') {
            memcpy(out + o, "    ", 4);
            o += 4;
            i++;
        } else if ((u[i] < 0x20 && u[i] != '\n') || u[i] == 0x7F) {
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

bool tf_selection(const text_field *f, size_t *begin, size_t *end) {
    size_t a = f->anchor < f->text.len ? f->anchor : f->text.len;
    *begin = a < f->cursor ? a : f->cursor;
    *end = a < f->cursor ? f->cursor : a;
    return *begin < *end;
}

static bool erase_selection(text_field *f) {
    size_t b, e;
    if (!tf_selection(f, &b, &e)) return false;
    tb_erase(&f->text, b, e - b);
    f->cursor = f->anchor = b;
    return true;
}

bool tf_insert(text_field *f, const char *s, size_t n) {
    size_t len;
    char *clean = utf8_clean(s, n, &len);
    if (clean) erase_selection(f);
    bool ok = clean && tb_insert(&f->text, f->cursor, clean, len);
    if (ok) f->cursor += len;
    f->anchor = f->cursor;
    free(clean);
    return ok;
}

void tf_backspace(text_field *f) {
    if (erase_selection(f)) return;
    size_t p = utf8_prev(tb_str(&f->text), f->cursor);
    tb_erase(&f->text, p, f->cursor - p);
    f->cursor = f->anchor = p;
}

void tf_delete(text_field *f) {
    if (erase_selection(f)) return;
    size_t n = utf8_next(tb_str(&f->text), f->text.len, f->cursor);
    tb_erase(&f->text, f->cursor, n - f->cursor);
    f->anchor = f->cursor;
}

void tf_move_to(text_field *f, size_t pos, bool extend) {
    const char *s = tb_str(&f->text);
    if (pos > f->text.len) pos = f->text.len;
    while (pos && (s[pos] & 0xC0) == 0x80) pos--;
    f->cursor = pos;
    if (!extend) f->anchor = pos;
}

void tf_left(text_field *f) { tf_move_to(f, utf8_prev(tb_str(&f->text), f->cursor), false); }
void tf_right(text_field *f) { tf_move_to(f, utf8_next(tb_str(&f->text), f->text.len, f->cursor), false); }

void tf_home(text_field *f) {
    const char *s = tb_str(&f->text);
    size_t p = f->cursor;
    while (p && s[p - 1] != '\n') p--;
    tf_move_to(f, p, false);
}

void tf_end(text_field *f) {
    const char *s = tb_str(&f->text);
    size_t p = f->cursor;
    while (p < f->text.len && s[p] != '\n') p++;
    tf_move_to(f, p, false);
}

static bool is_space(char c) { return c == ' ' || c == '\n'; }

void tf_word_left(text_field *f) {
    const char *s = tb_str(&f->text);
    size_t p = f->cursor;
    while (p && is_space(s[p - 1])) p--;
    while (p && !is_space(s[p - 1])) p--;
    tf_move_to(f, p, false);
}

void tf_word_right(text_field *f) {
    const char *s = tb_str(&f->text);
    size_t p = f->cursor;
    while (p < f->text.len && !is_space(s[p])) p++;
    while (p < f->text.len && is_space(s[p])) p++;
    tf_move_to(f, p, false);
}

bool tf_set(text_field *f, const char *s) {
    f->compose[0] = 0;
    f->cursor = f->anchor = 0;
    tb_set(&f->text, "", 0);
    return tf_insert(f, s, strlen(s));
}

void tf_free(text_field *f) {
    tb_free(&f->text);
    memset(f, 0, sizeof *f);
}

static bool push_line(text_lines *l, size_t off, size_t len, int w) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        text_line *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (text_line){off, len, w};
    return true;
}

bool text_wrap(const char *s, size_t len, int width, text_fit_fn fit, void *ctx, text_lines *out) {
    out->n = 0;
    size_t pos = 0;
    for (;;) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - s) : len;
        if (pos == end && !push_line(out, pos, 0, 0)) return false;
        while (pos < end) {
            int w = 0;
            size_t n = fit(ctx, s + pos, end - pos, width, &w);
            size_t brk = 0, next = 0;
            if (n >= end - pos) {
                brk = next = end;
            } else {
                /* Break after the last space that fits (or the one right after). */
                for (size_t i = pos + n; i > pos; i--)
                    if (s[i] == ' ') {
                        brk = i;
                        break;
                    }
                if (brk) {
                    next = brk;
                    while (next < end && s[next] == ' ') next++;
                    while (brk > pos && s[brk - 1] == ' ') brk--;
                    fit(ctx, s + pos, brk - pos, INT_MAX, &w);
                } else {
                    /* A word wider than the line: cut it, at least one code point. */
                    brk = n ? pos + n : utf8_next(s, end, pos);
                    if (!n) fit(ctx, s + pos, brk - pos, INT_MAX, &w);
                    next = brk;
                }
            }
            if (!push_line(out, pos, brk - pos, w)) return false;
            pos = next;
        }
        if (!nl) break;
        pos = end + 1;
        if (pos == len && !push_line(out, pos, 0, 0)) return false;
        if (pos == len) break;
    }
    return true;
}

int text_line_of(const text_lines *l, size_t pos) {
    for (int i = 0; i + 1 < l->n; i++)
        if (pos < l->v[i + 1].off) return i;
    return l->n - 1;
}

void text_lines_free(text_lines *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}
