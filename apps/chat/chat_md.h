/* Markdown answers, parsed by md4c into a flat list of blocks of styled runs
 * that chat_draw.c lays out. No SDL here, so the tests check the parse (which
 * block, which font, which link) without a window.
 *
 * Nesting deeper than CHAT_MD_MAX_DEPTH lists or quotes is drawn at that depth:
 * a Markdown bomb cannot push text off the window or make the layout deep. */
#ifndef PHIVK_CHAT_MD_H
#define PHIVK_CHAT_MD_H

#include <stdbool.h>
#include <stddef.h>

#include "chat_text.h"

/* A paragraph or code block longer than CHAT_MD_SPLIT bytes goes on in a new
 * block (cut after a space or a line end), so that laying out one block costs a
 * bounded time and the window can lay out a long answer a few blocks per frame. */
enum { CHAT_MD_MAX_DEPTH = 8, CHAT_MD_SPLIT = 4096 };

/* The font a run is drawn in; chat_draw.c maps each to an SDL_ttf font. */
typedef enum chat_md_font {
    CHAT_MDF_REGULAR = 0,
    CHAT_MDF_BOLD,
    CHAT_MDF_ITALIC,
    CHAT_MDF_BOLD_ITALIC,
    CHAT_MDF_MONO,    /* inline code and code blocks */
    CHAT_MDF_HEADING, /* bold, larger */
    CHAT_MDF_FONTS
} chat_md_font;

typedef enum chat_md_kind {
    CHAT_MD_PARA = 0, /* a paragraph, or a tight list item's text */
    CHAT_MD_HEADING,
    CHAT_MD_CODE,     /* fenced or indented code: one run, verbatim, '\n' between lines */
    CHAT_MD_RULE,
    CHAT_MD_CELL,     /* a table cell; a row's cells follow each other */
} chat_md_kind;

typedef struct chat_md_run {
    size_t off, len;   /* in the doc's text */
    chat_md_font font;
    bool code_span;    /* `inline code`: drawn on a tinted background */
    int link;          /* index into links, -1: none */
} chat_md_run;

typedef struct chat_md_block {
    chat_md_kind kind;
    int depth;         /* list nesting, 0..CHAT_MD_MAX_DEPTH */
    int quote;         /* block-quote nesting, 0..CHAT_MD_MAX_DEPTH */
    char marker[16];   /* "\u2022" or "12." on a list item's first block, else "" */
    int level;         /* heading level 1..6 */
    int table, row, col, n_cols; /* cells: which table (count from 0), row (0: header) */
    int first_run, n_runs;
    bool cont;         /* the rest of the paragraph or code block before it (CHAT_MD_SPLIT) */
} chat_md_block;

typedef struct chat_md_doc {
    text_buf text;     /* what the runs show, entities decoded */
    chat_md_run *runs;
    int n_runs, cap_runs;
    chat_md_block *blocks;
    int n_blocks, cap_blocks;
    char **links;      /* link targets as written */
    int n_links;
} chat_md_doc;

/* Replaces d's contents with the parse of s[0..n). Text that is not finished
 * (an open code fence while an answer streams) parses as CommonMark says: the
 * fence runs to the end. False only when out of memory (d is then empty). */
bool chat_md_parse(chat_md_doc *d, const char *s, size_t n);
void chat_md_free(chat_md_doc *d);

/* A code block's text with the parts it was split into (what Copy puts on the
 * clipboard), not NUL-terminated. */
const char *chat_md_code(const chat_md_doc *d, int block, size_t *len);

#endif
