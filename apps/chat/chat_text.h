/* Text without SDL: growable UTF-8 buffers, an editable field (cursor, IME
 * composition), word wrap over a caller's measuring function. Pure, so the
 * tests run it without a display. */
#ifndef PHIVK_CHAT_TEXT_H
#define PHIVK_CHAT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Always NUL-terminated once anything was stored; s may be NULL while empty. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
} text_buf;

bool tb_insert(text_buf *b, size_t at, const char *s, size_t n);
bool tb_append(text_buf *b, const char *s, size_t n);
bool tb_set(text_buf *b, const char *s, size_t n);
void tb_erase(text_buf *b, size_t at, size_t n);
const char *tb_str(const text_buf *b); /* "" while empty */
void tb_free(text_buf *b);

/* Byte offset of the code point before / after i. */
size_t utf8_prev(const char *s, size_t i);
size_t utf8_next(const char *s, size_t len, size_t i);
/* The longest prefix of s[0..n) that ends on a code point boundary. */
size_t utf8_floor(const char *s, size_t n);
/* A copy fit for display and for the tokenizer: invalid UTF-8 becomes U+FFFD,
 * CR LF and CR become LF, tabs become four spaces, other controls are dropped.
 * Caller frees. */
char *utf8_clean(const char *s, size_t n, size_t *out_len);

/* An edit field: the text, the cursor (byte offset), the selection's other
 * end (anchor == cursor: nothing selected) and the IME's uncommitted
 * composition, drawn at the cursor but not part of the text. Typing, Backspace
 * and Delete replace a selection; every move without extend drops it. */
typedef struct text_field {
    text_buf text;
    size_t cursor, anchor;
    char compose[128];
} text_field;

bool tf_insert(text_field *f, const char *s, size_t n); /* cleaned first */
void tf_backspace(text_field *f);
void tf_delete(text_field *f);
void tf_left(text_field *f);
void tf_right(text_field *f);
void tf_home(text_field *f); /* start of the cursor's line */
void tf_end(text_field *f);
void tf_word_left(text_field *f);  /* to the start of this or the previous word */
void tf_word_right(text_field *f); /* past this word and the spaces after it */
/* Cursor to pos (backed off to a code point's start); extend keeps the anchor. */
void tf_move_to(text_field *f, size_t pos, bool extend);
bool tf_selection(const text_field *f, size_t *begin, size_t *end); /* false: none */
bool tf_set(text_field *f, const char *s); /* cursor at the end */
void tf_free(text_field *f);

/* How many bytes of s[0..len) fit in width pixels (at least what the font
 * needs for the first code point is not guaranteed: 0 is allowed), and their
 * width in *w. */
typedef size_t (*text_fit_fn)(void *ctx, const char *s, size_t len, int width, int *w);

typedef struct text_line {
    size_t off, len;
    int w;
} text_line;
typedef struct text_lines {
    text_line *v;
    int n, cap;
} text_lines;

/* Breaks s into lines no wider than width: at spaces, inside a word only when
 * the word alone is wider, always after '\n'. A trailing '\n' yields an empty
 * last line (where an edit cursor goes). Replaces out's lines. */
bool text_wrap(const char *s, size_t len, int width, text_fit_fn fit, void *ctx, text_lines *out);
/* The line holding byte offset pos (the last one when pos is at the end). */
int text_line_of(const text_lines *l, size_t pos);
void text_lines_free(text_lines *l);

#endif
