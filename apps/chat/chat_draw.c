/* phivk-chat's look: fonts at the display's scale, a cache of rendered text,
 * layout (wrapping messages and the input box to the window), and drawing. The
 * frame is laid out in renderer pixels; mouse coordinates are scaled to them in
 * chat_ui.c. Buttons are registered while drawing (immediate mode), so hit tests
 * always match what is on screen. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_app.h"
#include "chat_font.h"

typedef struct rgb { Uint8 r, g, b; } rgb;
#define RGB(x) ((rgb){(Uint8)((x) >> 16), (Uint8)((x) >> 8), (Uint8)(x)})

enum {
    C_BG = 0xF4F5F7, C_PANEL = 0xFFFFFF, C_LINE = 0xE2E4E8, C_TEXT = 0x1A1D21, C_MUTED = 0x6B7280,
    C_USER = 0xDCE8FF, C_BOT = 0xFFFFFF, C_ACCENT = 0x2F6FEB, C_STOP = 0xD92D20, C_BTN = 0xE9EBEF,
    C_WHITE = 0xFFFFFF, C_ERR_BG = 0xFDECEA, C_ERR = 0xB42318, C_INFO_BG = 0xEAF2FF,
    C_INFO = 0x1D3F8F, C_THUMB = 0xC4C8CF, C_TRACK = 0xE6E8EC, C_NOTE = 0x8A6D3B, C_FIELD = 0xC9CDD3,
    C_CODE_BG = 0xF0F2F5, C_CODE_LINE = 0xD5D9DF, C_QUOTE = 0xB8C4D6, C_SEL = 0xBFD4FF,
};

static int px(const chat_app *a, float v) { return (int)lroundf(v * a->scale); }

/* ------------------------------------------------------------------- fonts */

bool chat_fonts_open(chat_app *a) {
    if (!*a->font_path && !chat_font_find(CHAT_FONT_REGULAR, CHAT_FONT_REGULAR_PATH, a->font_path,
                                          sizeof a->font_path)) {
        fprintf(stderr, "phivk-chat: %s\n", a->font_path);
        SDL_ShowSimpleMessageBox(SDL_MESSAGEBOX_ERROR, "phivk chat", a->font_path, a->win);
        a->font_path[0] = 0;
        return false;
    }
    if (!*a->bold_path && !chat_font_find(CHAT_FONT_BOLD, CHAT_FONT_BOLD_PATH, a->bold_path,
                                          sizeof a->bold_path))
        snprintf(a->bold_path, sizeof a->bold_path, "%s", a->font_path); /* styled below */
    chat_fonts_close(a);
    a->font = TTF_OpenFont(a->font_path, px(a, 15));
    a->bold = TTF_OpenFont(a->bold_path, px(a, 15));
    a->small = TTF_OpenFont(a->font_path, px(a, 12.5f));
    /* DejaVu has no oblique in fonts-dejavu-core: SDL_ttf slants the regular. */
    a->italic = TTF_OpenFont(a->font_path, px(a, 15));
    a->bold_italic = TTF_OpenFont(a->bold_path, px(a, 15));
    a->heading = TTF_OpenFont(a->bold_path, px(a, 19));
    if (!*a->mono_path && !chat_font_find(CHAT_FONT_MONO, CHAT_FONT_MONO_PATH, a->mono_path, sizeof a->mono_path))
        snprintf(a->mono_path, sizeof a->mono_path, "%s", a->font_path); /* code still shows, boxed */
    a->mono = TTF_OpenFont(a->mono_path, px(a, 14));
    if (!a->font || !a->bold || !a->small || !a->italic || !a->bold_italic || !a->heading || !a->mono) {
        fprintf(stderr, "phivk-chat: cannot open the font %s: %s\n", a->font_path, TTF_GetError());
        chat_fonts_close(a);
        return false;
    }
    bool synth_bold = !strcmp(a->bold_path, a->font_path);
    if (synth_bold) {
        TTF_SetFontStyle(a->bold, TTF_STYLE_BOLD);
        TTF_SetFontStyle(a->heading, TTF_STYLE_BOLD);
    }
    TTF_SetFontStyle(a->italic, TTF_STYLE_ITALIC);
    TTF_SetFontStyle(a->bold_italic, TTF_STYLE_ITALIC | (synth_bold ? TTF_STYLE_BOLD : 0));
    a->line_h = TTF_FontLineSkip(a->font);
    a->heading_h = TTF_FontLineSkip(a->heading);
    a->small_h = TTF_FontLineSkip(a->small);
    return true;
}

void chat_fonts_close(chat_app *a) {
    chat_text_cache_clear(a);
    TTF_Font **f[] = {&a->font, &a->bold, &a->small, &a->italic, &a->bold_italic, &a->heading, &a->mono};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        if (*f[i]) TTF_CloseFont(*f[i]);
        *f[i] = NULL;
    }
}

/* ------------------------------------------------------------- text cache */

void chat_text_cache_clear(chat_app *a) {
    for (int i = 0; i < CHAT_TEXT_CACHE; i++) {
        if (a->texts[i].tex) SDL_DestroyTexture(a->texts[i].tex);
        free(a->texts[i].s);
    }
    memset(a->texts, 0, sizeof a->texts);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The texture of s in font and colour, rendered once and kept while it is drawn
 * every frame; the least recently drawn entry makes room. */
static chat_tex *text_tex(chat_app *a, TTF_Font *font, uint32_t color, const char *s, size_t n) {
    if (!n) return NULL;
    uint64_t h = fnv(fnv(fnv(0xcbf29ce484222325ull, &font, sizeof font), &color, sizeof color), s, n);
    chat_tex *victim = &a->texts[0];
    for (int i = 0; i < CHAT_TEXT_CACHE; i++) {
        chat_tex *t = &a->texts[i];
        if (t->tex && t->hash == h && t->font == font && t->color == color && !strncmp(t->s, s, n) &&
            !t->s[n]) {
            t->used = a->frames + 1;
            return t;
        }
        if (!t->tex || t->used < victim->used) victim = t;
    }
    char *copy = strndup(s, n);
    if (!copy) return NULL;
    rgb c = RGB(color);
    SDL_Surface *surf = TTF_RenderUTF8_Blended(font, copy, (SDL_Color){c.r, c.g, c.b, 255});
    SDL_Texture *tex = surf ? SDL_CreateTextureFromSurface(a->ren, surf) : NULL;
    if (!tex) {
        if (surf) SDL_FreeSurface(surf);
        free(copy);
        return NULL;
    }
    if (victim->tex) SDL_DestroyTexture(victim->tex);
    free(victim->s);
    *victim = (chat_tex){.hash = h, .font = font, .color = color, .s = copy, .tex = tex,
                         .w = surf->w, .h = surf->h, .used = a->frames + 1};
    SDL_FreeSurface(surf);
    return victim;
}

static int draw_text(chat_app *a, TTF_Font *font, uint32_t color, int x, int y, const char *s, size_t n) {
    chat_tex *t = text_tex(a, font, color, s, n);
    if (!t) return 0;
    SDL_Rect dst = {x, y, t->w, t->h};
    SDL_RenderCopy(a->ren, t->tex, NULL, &dst);
    return t->w;
}

static int text_w(TTF_Font *font, const char *s, size_t n) {
    char buf[1024];
    char *copy = n < sizeof buf ? buf : malloc(n + 1);
    int w = 0;
    if (!copy) return 0;
    memcpy(copy, s, n);
    copy[n] = 0;
    TTF_SizeUTF8(font, copy, &w, NULL);
    if (copy != buf) free(copy);
    return w;
}

/* text_fit_fn over SDL_ttf. A line never holds more bytes than 4 per pixel, so
 * long paragraphs are measured a line's worth at a time, not whole. */
static size_t ttf_fit(void *ctx, const char *s, size_t len, int width, int *w) {
    TTF_Font *font = ctx;
    size_t cap = width == INT_MAX ? len : (size_t)width * 4 + 64;
    size_t n = utf8_floor(s, len < cap ? len : cap);
    char buf[4096];
    char *copy = n < sizeof buf ? buf : malloc(n + 1);
    if (!copy) return len;
    memcpy(copy, s, n);
    copy[n] = 0;
    int extent = 0, count = 0;
    if (width == INT_MAX) {
        TTF_SizeUTF8(font, copy, &extent, NULL);
        count = -1;
    } else {
        TTF_MeasureUTF8(font, copy, width, &extent, &count);
    }
    size_t bytes = n;
    if (count >= 0) {
        bytes = 0;
        for (int i = 0; i < count && bytes < n; i++) bytes = utf8_next(copy, n, bytes);
    }
    if (copy != buf) free(copy);
    *w = extent;
    return bytes;
}

/* ------------------------------------------------------- Markdown layout */

TTF_Font *chat_md_ttf(const chat_app *a, chat_md_font f) {
    switch (f) {
    case CHAT_MDF_BOLD: return a->bold;
    case CHAT_MDF_ITALIC: return a->italic;
    case CHAT_MDF_BOLD_ITALIC: return a->bold_italic;
    case CHAT_MDF_MONO: return a->mono;
    case CHAT_MDF_HEADING: return a->heading;
    default: return a->font;
    }
}

typedef struct md_lay {
    const chat_app *a;
    const chat_md_doc *d;
    chat_md_layout *l;
    int pad; /* the bubble's padding, added to every position */
} md_lay;

/* A piece with run < 0 is the list marker of block -run - 1. */
static void add_piece(md_lay *L, int x, int y, int w, size_t off, size_t len, int run) {
    chat_md_layout *l = L->l;
    if (l->n_pieces == l->cap_pieces) {
        int cap = l->cap_pieces ? l->cap_pieces * 2 : 64;
        chat_md_piece *p = realloc(l->pieces, sizeof *p * (size_t)cap);
        if (!p) return; /* the rest of the answer is not drawn; the text stays */
        l->pieces = p;
        l->cap_pieces = cap;
    }
    l->pieces[l->n_pieces++] = (chat_md_piece){x + L->pad, y + L->pad, w, off, len, run};
    if (x + w > l->w) l->w = x + w;
}

static void add_box(md_lay *L, SDL_Rect r, chat_md_box_kind kind, int block) {
    chat_md_layout *l = L->l;
    if (l->n_boxes == l->cap_boxes) {
        int cap = l->cap_boxes ? l->cap_boxes * 2 : 16;
        chat_md_box *b = realloc(l->boxes, sizeof *b * (size_t)cap);
        if (!b) return;
        l->boxes = b;
        l->cap_boxes = cap;
    }
    if (r.x + r.w > l->w) l->w = r.x + r.w;
    r.x += L->pad;
    r.y += L->pad;
    l->boxes[l->n_boxes++] = (chat_md_box){r, kind, block};
}

/* Lays block b's runs out from (x0, y0) in width w, lines lh apart: a run
 * breaks after a space, inside a word only when the word alone is wider than
 * the line, and at '\n'. Returns the height. */
static int lay_runs(md_lay *L, const chat_md_block *b, int x0, int y0, int w, int lh) {
    const char *text = tb_str(&L->d->text);
    int x = 0, line = 0, last = b->first_run + b->n_runs - 1;
    for (int r = b->first_run; r <= last; r++) {
        const chat_md_run *run = &L->d->runs[r];
        TTF_Font *font = chat_md_ttf(L->a, run->font);
        size_t i = run->off, end = run->off + run->len;
        while (i < end) {
            if (text[i] == '\n') {
                if (i + 1 < end || r < last) line++, x = 0; /* a code block's final '\n' ends, not adds, a line */
                i++;
                continue;
            }
            const char *nl = memchr(text + i, '\n', end - i);
            size_t seg = (nl ? (size_t)(nl - text) : end) - i;
            /* Measure no more than could fit (a glyph is wider than 3 px), so a
             * 1 MB line costs about a line's worth per line; more is measured on. */
            size_t cap = (size_t)(w - x > 0 ? w - x : 0) / 3 + 16;
            size_t look = utf8_floor(text + i, seg < cap ? seg : cap);
            int pw = 0;
            size_t fit = ttf_fit(font, text + i, look, w - x, &pw);
            bool full = fit < look;
            if (full) {
                size_t cut = fit;
                while (cut > 0 && text[i + cut - 1] != ' ') cut--;
                if (!cut && x > 0) { /* the word goes to the next line */
                    line++, x = 0;
                    continue;
                }
                if (!cut) cut = fit ? fit : utf8_next(text + i, seg, 0);
                fit = cut;
                pw = text_w(font, text + i, fit);
            }
            add_piece(L, x0 + x, y0 + line * lh, pw, i, fit, r);
            x += pw;
            i += fit;
            if (full) line++, x = 0;
        }
    }
    return (line + 1) * lh;
}

/* Cells of one table row: equal columns, each wrapped in its own; returns the
 * row's height and the index of its last cell in *last. */
static int lay_row(md_lay *L, int first, int x0, int y, int w, int lh, int *last) {
    const chat_app *a = L->a;
    const chat_md_block *b0 = &L->d->blocks[first];
    int pad = px(a, 6), n = b0->n_cols > 0 ? b0->n_cols : 1, cw = w / n, h = 0, k = first;
    if (cw < 2 * pad + px(a, 16)) cw = 2 * pad + px(a, 16); /* a very wide table runs past the bubble, clipped */
    for (; k < L->d->n_blocks; k++) {
        const chat_md_block *c = &L->d->blocks[k];
        if (c->kind != CHAT_MD_CELL || c->table != b0->table || c->row != b0->row) break;
        int ch = lay_runs(L, c, x0 + c->col * cw + pad, y + pad, cw - 2 * pad, lh);
        if (ch > h) h = ch;
    }
    h += 2 * pad;
    for (int col = 0; col < n; col++) add_box(L, (SDL_Rect){x0 + col * cw, y, cw + 1, h + 1}, CHAT_BOX_CELL, first);
    *last = k - 1;
    return h;
}

static bool same_block(const chat_md_doc *x, const chat_md_doc *y, int i) {
    const chat_md_block *a = &x->blocks[i], *b = &y->blocks[i];
    if (a->kind != b->kind || a->depth != b->depth || a->quote != b->quote || strcmp(a->marker, b->marker) ||
        a->level != b->level || a->table != b->table || a->row != b->row || a->col != b->col ||
        a->n_cols != b->n_cols || a->first_run != b->first_run || a->n_runs != b->n_runs || a->cont != b->cont)
        return false;
    for (int r = a->first_run; r < a->first_run + a->n_runs; r++) {
        const chat_md_run *p = &x->runs[r], *q = &y->runs[r];
        if (p->off != q->off || p->len != q->len || p->font != q->font || p->code_span != q->code_span ||
            p->link != q->link || memcmp(tb_str(&x->text) + p->off, tb_str(&y->text) + q->off, p->len) ||
            (p->link >= 0 && strcmp(x->links[p->link], y->links[q->link])))
            return false;
    }
    return true;
}

/* The first block of nd that differs from od (a table row counts as one). */
static int first_changed(const chat_md_doc *od, const chat_md_doc *nd) {
    int k = 0;
    while (k < od->n_blocks && k < nd->n_blocks && same_block(od, nd, k)) k++;
    while (k > 0 && k < nd->n_blocks && nd->blocks[k].kind == CHAT_MD_CELL && nd->blocks[k - 1].kind == CHAT_MD_CELL &&
           nd->blocks[k].table == nd->blocks[k - 1].table && nd->blocks[k].row == nd->blocks[k - 1].row)
        k--;
    return k;
}

/* Drops what blocks from k on laid out (they were added in block order). */
static void layout_cut(chat_md_layout *l, const chat_md_doc *d, int k, int pad) {
    int first_run = k < d->n_blocks ? d->blocks[k].first_run : d->n_runs, n = 0;
    while (n < l->n_pieces && (l->pieces[n].run >= 0 ? l->pieces[n].run < first_run : -1 - l->pieces[n].run < k)) n++;
    l->n_pieces = n;
    for (n = 0; n < l->n_boxes && l->boxes[n].block < k;) n++;
    l->n_boxes = n;
    l->w = 0;
    for (int i = 0; i < l->n_pieces; i++)
        if (l->pieces[i].x - pad + l->pieces[i].w > l->w) l->w = l->pieces[i].x - pad + l->pieces[i].w;
    for (int i = 0; i < l->n_boxes; i++)
        if (l->boxes[i].r.x - pad + l->boxes[i].r.w > l->w) l->w = l->boxes[i].r.x - pad + l->boxes[i].r.w;
}

/* Lays out m's blocks from lay.next on until all are laid out or the clock
 * passes deadline (at least one block is, so every call makes progress). While
 * blocks are left, the height counts them at a line per 80 bytes, so the
 * scrollbar is about right before the layout is done. */
static void md_lay_blocks(const chat_app *a, chat_msg *m, double deadline) {
    md_lay L = {a, &m->md, &m->lay, m->lay.pad};
    const chat_md_doc *d = &m->md;
    int w = m->lay.width, lh = a->line_h, mono_h = TTF_FontLineSkip(a->mono), gap = a->line_h / 2;
    int ind = px(a, 22), qind = px(a, 14), cpad = px(a, 8), k = m->lay.next, y = m->lay.block_y[k];
    if (mono_h > lh) lh = mono_h;
    int i = k;
    for (; i < d->n_blocks && (i == k || chat_now() < deadline); i++) {
        const chat_md_block *b = &d->blocks[i];
        const chat_md_block *prev = i ? &d->blocks[i - 1] : NULL;
        m->lay.block_y[i] = y;
        bool same_table = prev && prev->kind == CHAT_MD_CELL && b->kind == CHAT_MD_CELL && prev->table == b->table;
        if (i && !same_table && !b->cont)
            y += b->kind == CHAT_MD_HEADING ? gap * 2 : b->depth && prev->depth ? gap / 2 : gap;
        int x0 = b->quote * qind + b->depth * ind, bw = w - x0, h, first = i;
        if (bw < px(a, 60)) bw = px(a, 60); /* too deep for the width: drawn clipped, never inverted */
        switch (b->kind) {
        case CHAT_MD_CODE: {
            /* The part of a split block goes on in the box; Copy is on the first. */
            int head = b->cont ? 0 : a->small_h + px(a, 8);
            h = lay_runs(&L, b, x0 + cpad, y + head, bw - 2 * cpad, mono_h) + head + cpad;
            add_box(&L, (SDL_Rect){x0, y, bw, h}, CHAT_BOX_CODE, i);
            int cw = text_w(a->small, "Copy", 4) + px(a, 14);
            if (!b->cont)
                add_box(&L, (SDL_Rect){x0 + bw - cw - px(a, 4), y + px(a, 4), cw, a->small_h}, CHAT_BOX_COPY, i);
            break;
        }
        case CHAT_MD_HEADING: h = lay_runs(&L, b, x0, y, bw, a->heading_h); break;
        case CHAT_MD_RULE:
            h = px(a, 9);
            add_box(&L, (SDL_Rect){x0, y + px(a, 4), bw, 1}, CHAT_BOX_RULE, i);
            break;
        case CHAT_MD_CELL: h = lay_row(&L, i, x0, y, bw, lh, &i); break;
        default: h = lay_runs(&L, b, x0, y, bw, lh); break;
        }
        if (*b->marker) add_piece(&L, x0 - ind + px(a, 4), y, 0, 0, 0, -1 - first);
        for (int q = 0; q < b->quote; q++) add_box(&L, (SDL_Rect){q * qind, y, px(a, 3), h}, CHAT_BOX_QUOTE, first);
        y += h;
    }
    m->lay.block_y[i] = y;
    m->lay.relaid += i - k;
    m->lay.next = i;
    m->lay.h = y;
    if (i < d->n_blocks) {
        int r = d->blocks[i].first_run; /* a rule has no runs: r may be n_runs */
        size_t left = r < d->n_runs ? d->text.len - d->runs[r].off : 0;
        m->lay.h += (int)((size_t)(d->n_blocks - i) * (size_t)(lh + gap) + left / 80 * (size_t)lh);
    }
}

/* Parses the answer's Markdown and starts its layout in width w, pad inside the
 * bubble's edge. Blocks that parse as before at the same width keep their
 * layout, so a streaming answer costs its last block per frame, not its length;
 * the rest is laid out by md_lay_blocks, a share of each frame. */
static void md_layout(const chat_app *a, chat_msg *m, int w, int pad) {
    chat_md_doc nd = {0};
    if (!chat_md_parse(&nd, tb_str(&m->text), m->text.len)) { /* out of memory: drawn empty */
        chat_md_free(&m->md);
        chat_md_layout_free(&m->lay);
        return;
    }
    int k = m->lay.width == w ? first_changed(&m->md, &nd) : 0;
    if (k > m->lay.next) k = m->lay.next;
    chat_md_free(&m->md);
    m->md = nd;
    if (!k) chat_md_layout_free(&m->lay);
    layout_cut(&m->lay, &m->md, k, pad);
    m->lay.width = w;
    m->lay.pad = pad;
    m->lay.next = k;
    m->lay.relaid = 0;
    if (m->lay.cap_block_y < nd.n_blocks + 1) {
        int *y = realloc(m->lay.block_y, sizeof *y * (size_t)(nd.n_blocks + 1));
        if (!y) {
            chat_md_layout_free(&m->lay);
            m->lay.next = nd.n_blocks; /* nothing is drawn, nothing more laid out */
            return;
        }
        m->lay.block_y = y;
        m->lay.cap_block_y = nd.n_blocks + 1;
    }
    if (!k) m->lay.block_y[0] = 0;
}

/* --------------------------------------------------------------- drawing */

static void fill(chat_app *a, SDL_Rect r, uint32_t color) {
    rgb c = RGB(color);
    SDL_SetRenderDrawColor(a->ren, c.r, c.g, c.b, 255);
    SDL_RenderFillRect(a->ren, &r);
}

static void outline(chat_app *a, SDL_Rect r, uint32_t color, int t) {
    for (int i = 0; i < t; i++) {
        fill(a, (SDL_Rect){r.x, r.y + i, r.w, 1}, color);
        fill(a, (SDL_Rect){r.x, r.y + r.h - 1 - i, r.w, 1}, color);
        fill(a, (SDL_Rect){r.x + i, r.y, 1, r.h}, color);
        fill(a, (SDL_Rect){r.x + r.w - 1 - i, r.y, 1, r.h}, color);
    }
}

static void add_button(chat_app *a, SDL_Rect r, int action, int arg) {
    if (a->n_buttons < CHAT_MAX_BUTTONS) a->buttons[a->n_buttons++] = (chat_button){r, action, arg};
}

/* A button labelled in font whose right edge is at -x when x < 0 (else x is
 * its left edge). */
static SDL_Rect font_button(chat_app *a, TTF_Font *font, int x, int y, int h, const char *label, uint32_t bg,
                            uint32_t fg, int action, int arg) {
    int tw = text_w(font, label, strlen(label)), pad = font == a->font ? px(a, 24) : px(a, 10);
    SDL_Rect r = {x, y, tw + pad, h};
    if (x < 0) r.x = -x - r.w;
    fill(a, r, bg);
    if (bg == C_BTN) outline(a, r, C_LINE, 1);
    draw_text(a, font, fg, r.x + (r.w - tw) / 2, r.y + (h - TTF_FontLineSkip(font)) / 2, label, strlen(label));
    add_button(a, r, action, arg);
    return r;
}

static SDL_Rect button(chat_app *a, int x, int y, int h, const char *label, uint32_t bg, uint32_t fg,
                       int action, int arg) {
    return font_button(a, a->font, x, y, h, label, bg, fg, action, arg);
}

static void progress_bar(chat_app *a, SDL_Rect r, uint64_t done, uint64_t total) {
    fill(a, r, C_TRACK);
    double f = total ? (double)done / (double)total : 0;
    if (f > 1) f = 1;
    fill(a, (SDL_Rect){r.x, r.y, (int)(r.w * f), r.h}, C_ACCENT);
}

static const char *stage_text(const char *stage) {
    if (!strcmp(stage, "loading")) return "Loading the model";
    if (!strcmp(stage, "prefill")) return "Reading the prompt";
    if (!strcmp(stage, "opening device")) return "Opening the device";
    return stage;
}

/* --------------------------------------------------------------- layout */

static void update_metrics(chat_app *a) {
    int ww = 1, wh = 1;
    SDL_GetWindowSize(a->win, &ww, &wh);
    SDL_GetRendererOutputSize(a->ren, &a->out_w, &a->out_h);
    a->px_per_coord = ww > 0 ? (float)a->out_w / (float)ww : 1;
    float scale = a->cfg.scale;
    if (scale <= 0) {
        /* macOS / Wayland scale through the drawable size; X11 and Windows leave it
         * to the app, which reads the display's DPI. */
        float ddpi = 0;
        int disp = SDL_GetWindowDisplayIndex(a->win);
        scale = a->px_per_coord;
        if (scale < 1.25f && disp >= 0 && SDL_GetDisplayDPI(disp, &ddpi, NULL, NULL) == 0 && ddpi > 120)
            scale = roundf(ddpi / 96 * 4) / 4;
        if (scale < 1) scale = 1;
        if (scale > 4) scale = 4;
    }
    if (scale != a->scale || !a->font) {
        a->scale = scale;
        if (!chat_fonts_open(a)) chat_app_notice(a, true, "Cannot open the font at scale %.2f", (double)scale);
        for (int i = 0; i < a->n_msgs; i++) a->msgs[i].wrap_w = 0;
    }
}

static int label_h(const chat_app *a) { return a->small_h + px(a, 4); }
static int action_h(const chat_app *a) { return a->line_h + px(a, 6); }

/* A document summarized in parts: a line of where it is, a bar, Cancel. */
static int summary_h(const chat_app *a) { return 2 * a->line_h + px(a, 22) + px(a, 8); }

static void draw_summary(chat_app *a, SDL_Rect r) {
    char s[256];
    int64_t done = a->summary_done, n = a->summary_chunks;
    double spent = chat_now() - a->summary_t0;
    if (!a->summary_pass && n > 1)
        snprintf(s, sizeof s, "Writing the summary of %lld parts...", (long long)n);
    else if (!a->summary_pass)
        snprintf(s, sizeof s, "Writing the summary...");
    else if (done > 0)
        snprintf(s, sizeof s, "Summarizing in parts: chunk %lld of %lld%s, about %.0f s left", (long long)done + 1,
                 (long long)n, a->summary_pass > 1 ? " (summaries of summaries)" : "",
                 spent / (double)done * (double)(n - done));
    else
        snprintf(s, sizeof s, "Summarizing in parts: chunk 1 of %lld%s", (long long)n,
                 a->summary_pass > 1 ? " (summaries of summaries)" : "");
    draw_text(a, a->font, C_MUTED, r.x, r.y, s, strlen(s));
    int bar_w = r.w - px(a, 100);
    progress_bar(a, (SDL_Rect){r.x, r.y + a->line_h + px(a, 6), bar_w > px(a, 40) ? bar_w : px(a, 40), px(a, 8)},
                 a->summary_pass ? (uint64_t)done : 1, a->summary_pass ? (uint64_t)n : 1);
    button(a, r.x, r.y + a->line_h + px(a, 22), a->line_h + px(a, 6), "Cancel", C_BTN, C_TEXT,
           CHAT_ACT_CANCEL_SUMMARY, 0);
}

/* The bytes of a user's message that are shown: a dropped document can be
 * megabytes, and wrapping all of it would stall the window. */
static size_t user_shown(const chat_msg *m) {
    return m->text.len > CHAT_USER_SHOWN ? utf8_floor(tb_str(&m->text), CHAT_USER_SHOWN) : m->text.len;
}

static bool msg_note(const chat_app *a, const chat_msg *m, char *out, size_t cap, uint32_t *color) {
    *color = C_NOTE;
    if (m->state == CHAT_QUEUED) {
        snprintf(out, cap, a->loads_pending ? "queued: sent when the model is loaded"
                                            : "queued: sent when the current answer ends");
        return true;
    }
    if (m->state == CHAT_FAILED) *color = C_ERR;
    if (!*m->note && m->role == CHAT_ASSISTANT && m->state == CHAT_DONE && !m->text.len)
        snprintf(out, cap, "the model ended its answer without text");
    else if (m->role == CHAT_USER && user_shown(m) < m->text.len)
        snprintf(out, cap, "%.180s%sshowing the first %d KiB of %zu KiB", m->note, *m->note ? "; " : "",
                 CHAT_USER_SHOWN >> 10, m->text.len >> 10);
    else
        snprintf(out, cap, "%s", m->note);
    return *out;
}

void chat_layout(chat_app *a) {
    /* Markdown not laid out by then waits for the next frame. */
    double deadline = chat_now() + CHAT_LAYOUT_BUDGET_MS * 1e-3;
    update_metrics(a);
    if (!a->font) return;
    int m = px(a, 16), pad = px(a, 10);
    int toolbar_h = a->line_h + px(a, 18), status_h = a->small_h + px(a, 12);
    int panel_w = a->panel_open ? px(a, 300) : 0;
    if (a->out_w - panel_w < px(a, 280)) panel_w = 0;
    /* The conversation list, where the window is wide enough to keep a
     * readable transcript beside it. */
    int side_w = px(a, 230);
    if (a->out_w - panel_w - side_w < px(a, 420)) side_w = 0;
    int main_w = a->out_w - panel_w - side_w;
    int send_w = px(a, 84);

    /* The input box grows with its text up to six lines. */
    text_lines tl = {0};
    int in_w = main_w - 2 * m - send_w - px(a, 8) - 2 * pad;
    text_wrap(tb_str(&a->input.text), a->input.text.len, in_w > 20 ? in_w : 20, ttf_fit, a->font, &tl);
    int rows = tl.n < 1 ? 1 : tl.n > 6 ? 6 : tl.n;
    text_lines_free(&tl);
    int in_h = rows * a->line_h + 2 * pad;
    a->r_status = (SDL_Rect){0, a->out_h - status_h, a->out_w, status_h};
    a->r_input = (SDL_Rect){side_w + m, a->r_status.y - m - in_h, main_w - 2 * m - send_w - px(a, 8), in_h};
    int top = toolbar_h;
    a->r_transcript = (SDL_Rect){side_w, top, main_w, a->r_input.y - px(a, 8) - top};
    a->r_sidebar = (SDL_Rect){0, top, side_w, a->r_status.y - top};
    a->view_h = a->r_transcript.h;

    int sb = px(a, 8);
    int avail = main_w - 2 * m - sb - px(a, 4);
    int y = m;
    for (int i = 0; i < a->n_msgs; i++) {
        chat_msg *msg = &a->msgs[i];
        int max_w = msg->role == CHAT_USER ? avail * 4 / 5 : avail;
        int wrap = max_w - 2 * pad;
        if (wrap < 20) wrap = 20;
        bool md = msg->role == CHAT_ASSISTANT;
        if (msg->wrap_w != wrap) {
            if (md) md_layout(a, msg, wrap, pad);
            else text_wrap(tb_str(&msg->text), user_shown(msg), wrap, ttf_fit, a->font, &msg->lines);
            msg->wrap_w = wrap;
        }
        if (md && msg->lay.next < msg->md.n_blocks) md_lay_blocks(a, msg, deadline);
        int w = md ? msg->lay.w : 0;
        for (int k = 0; !md && k < msg->lines.n; k++)
            if (msg->lines.v[k].w > w) w = msg->lines.v[k].w;
        w += 2 * pad;
        if (w < px(a, 48)) w = px(a, 48);
        if (msg->role == CHAT_ASSISTANT && msg->state == CHAT_STREAMING) w = max_w; /* no jitter */
        msg->w = w;
        msg->x = msg->role == CHAT_USER ? m + avail - w : m;
        msg->y = y + label_h(a);
        int text_h = md ? msg->lay.h : msg->lines.n * a->line_h;
        if (msg->id == a->summary_id && !msg->text.len) text_h = summary_h(a);
        msg->h = (text_h > a->line_h ? text_h : a->line_h) + 2 * pad;
        char note[256];
        uint32_t c;
        y = msg->y + msg->h + (msg_note(a, msg, note, sizeof note, &c) ? a->small_h + px(a, 4) : 0) +
            (chat_msg_action(a, i) ? action_h(a) + px(a, 4) : 0) + px(a, 14);
    }
    a->content_h = y + m;
    int max_scroll = a->content_h - a->view_h;
    if (max_scroll < 0) max_scroll = 0;
    if (a->follow || a->scroll > max_scroll) a->scroll = max_scroll;
    if (a->scroll < 0) a->scroll = 0;

    a->r_scroll_track = a->r_scroll_thumb = (SDL_Rect){0, 0, 0, 0};
    if (max_scroll > 0) {
        a->r_scroll_track = (SDL_Rect){side_w + main_w - sb - px(a, 4), top + px(a, 4), sb, a->view_h - px(a, 8)};
        int th = (int)((int64_t)a->r_scroll_track.h * a->view_h / a->content_h);
        if (th < px(a, 28)) th = px(a, 28);
        int ty = a->r_scroll_track.y +
                 (int)((int64_t)(a->r_scroll_track.h - th) * a->scroll / max_scroll);
        a->r_scroll_thumb = (SDL_Rect){a->r_scroll_track.x, ty, sb, th};
    }
}

void chat_scroll_to(chat_app *a, int y) {
    int max_scroll = a->content_h - a->view_h;
    if (max_scroll < 0) max_scroll = 0;
    a->scroll = y < 0 ? 0 : y > max_scroll ? max_scroll : y;
    a->follow = a->scroll >= max_scroll;
}

/* Draws wrapped paragraphs of s in r (for the empty transcript and notices);
 * returns the height used. */
static int draw_para(chat_app *a, TTF_Font *font, uint32_t color, SDL_Rect r, const char *s, bool draw) {
    text_lines tl = {0};
    text_wrap(s, strlen(s), r.w, ttf_fit, font, &tl);
    int lh = TTF_FontLineSkip(font);
    for (int i = 0; draw && i < tl.n; i++)
        draw_text(a, font, color, r.x, r.y + i * lh, s + tl.v[i].off, tl.v[i].len);
    int h = tl.n * lh;
    text_lines_free(&tl);
    return h;
}

static void draw_empty(chat_app *a) {
    SDL_Rect r = a->r_transcript;
    int w = r.w - px(a, 96);
    if (w > px(a, 620)) w = px(a, 620);
    char text[1024];
    if (!a->loaded && !a->loads_pending)
        snprintf(text, sizeof text,
                 "No model is loaded.\n\nDrop a GGUF model file on this window, or start the app "
                 "with one:\n    phivk-chat Phi-3-mini-4k-instruct-q4.gguf\n\nMicrosoft publishes "
                 "Phi-3-mini as GGUF: the file Phi-3-mini-4k-instruct-q4.gguf (2.2 GB) at "
                 "huggingface.co/microsoft/Phi-3-mini-4k-instruct-gguf.");
    else if (a->loads_pending)
        snprintf(text, sizeof text, "Loading the model...\n\nYou can type your first message now; "
                                    "it is sent when the model is ready.");
    else
        snprintf(text, sizeof text, "Ask %s anything.\n\nDrop a .txt or .md file on the window to "
                                    "summarize it. Settings (F2) hold the system prompt, sampling "
                                    "and the device.", a->model_name);
    SDL_Rect box = {r.x + (r.w - w) / 2, 0, w, 0};
    int h = draw_para(a, a->font, C_MUTED, box, text, false);
    box.y = r.y + (r.h - h) / 3;
    draw_para(a, a->font, C_MUTED, box, text, true);
}

/* An answer's laid-out Markdown in the bubble at (x, y): boxes under the text, then the
 * pieces in view (a long answer has many; only those in the clip are drawn). */
static void draw_md(chat_app *a, const chat_msg *m, int x, int y) {
    const chat_md_layout *l = &m->lay;
    SDL_Rect clip = a->r_transcript;
    int top = clip.y - y - a->heading_h, bottom = clip.y + clip.h - y;
    for (int i = 0; i < l->n_boxes; i++) {
        const chat_md_box *bx = &l->boxes[i];
        if (bx->r.y + bx->r.h < top || bx->r.y > bottom) continue;
        SDL_Rect r = {x + bx->r.x, y + bx->r.y, bx->r.w, bx->r.h};
        switch (bx->kind) {
        case CHAT_BOX_CODE: fill(a, r, C_CODE_BG); outline(a, r, C_CODE_LINE, 1); break;
        case CHAT_BOX_COPY:
            fill(a, r, C_WHITE);
            outline(a, r, C_CODE_LINE, 1);
            draw_text(a, a->small, C_MUTED, r.x + px(a, 7), r.y, "Copy", 4);
            break;
        case CHAT_BOX_QUOTE: fill(a, r, C_QUOTE); break;
        case CHAT_BOX_RULE: fill(a, r, C_LINE); break;
        case CHAT_BOX_CELL: outline(a, r, C_CODE_LINE, 1); break;
        }
    }
    const char *text = tb_str(&m->md.text);
    for (int i = 0; i < l->n_pieces; i++) {
        const chat_md_piece *p = &l->pieces[i];
        if (p->y < top || p->y > bottom) continue;
        if (p->run < 0) {
            const char *mk = m->md.blocks[-1 - p->run].marker;
            draw_text(a, a->font, C_MUTED, x + p->x, y + p->y, mk, strlen(mk));
            continue;
        }
        const chat_md_run *r = &m->md.runs[p->run];
        TTF_Font *font = chat_md_ttf(a, r->font);
        int lh = TTF_FontLineSkip(font);
        if (r->code_span) fill(a, (SDL_Rect){x + p->x - 1, y + p->y, p->w + 2, lh}, C_CODE_BG);
        draw_text(a, font, r->link >= 0 ? C_ACCENT : C_TEXT, x + p->x, y + p->y, text + p->off, p->len);
        if (r->link >= 0) fill(a, (SDL_Rect){x + p->x, y + p->y + lh - px(a, 3), p->w, 1}, C_ACCENT);
    }
}

static void draw_messages(chat_app *a) {
    SDL_Rect clip = a->r_transcript;
    SDL_RenderSetClipRect(a->ren, &clip);
    int pad = px(a, 10), oy = clip.y - a->scroll;
    for (int i = 0; i < a->n_msgs; i++) {
        chat_msg *m = &a->msgs[i];
        int top = oy + m->y - label_h(a), bottom = oy + m->y + m->h + a->small_h + px(a, 4);
        if (bottom < clip.y || top > clip.y + clip.h) continue;
        const char *who = m->role == CHAT_USER ? "You" : *a->model_name ? a->model_name : "Assistant";
        int lw = text_w(a->small, who, strlen(who));
        int lx = clip.x + (m->role == CHAT_USER ? m->x + m->w - lw : m->x);
        draw_text(a, a->small, C_MUTED, lx, top, who, strlen(who));
        SDL_Rect b = {clip.x + m->x, oy + m->y, m->w, m->h};
        fill(a, b, m->role == CHAT_USER ? C_USER : C_BOT);
        outline(a, b, i == a->selected ? C_ACCENT : C_LINE, i == a->selected ? px(a, 2) : 1);
        const char *s = tb_str(&m->text);
        if (m->role == CHAT_ASSISTANT) draw_md(a, m, b.x, b.y);
        for (int k = 0; m->role == CHAT_USER && k < m->lines.n; k++) {
            int ly = b.y + pad + k * a->line_h;
            if (ly + a->line_h < clip.y || ly > clip.y + clip.h) continue;
            draw_text(a, a->font, C_TEXT, b.x + pad, ly, s + m->lines.v[k].off, m->lines.v[k].len);
        }
        if (m->id == a->summary_id && !m->text.len) {
            draw_summary(a, (SDL_Rect){b.x + pad, b.y + pad, b.w - 2 * pad, summary_h(a)});
        } else if (m->state == CHAT_STREAMING && !m->text.len) {
            char wait[64] = "...";
            if (*a->progress_stage && a->progress_total)
                snprintf(wait, sizeof wait, "%s %d%%", stage_text(a->progress_stage),
                         (int)(100 * a->progress_done / a->progress_total));
            draw_text(a, a->font, C_MUTED, b.x + pad, b.y + pad, wait, strlen(wait));
        }
        char note[256];
        uint32_t c;
        int below = b.y + b.h + px(a, 4);
        if (msg_note(a, m, note, sizeof note, &c)) {
            int nw = text_w(a->small, note, strlen(note));
            int nx = m->role == CHAT_USER ? b.x + b.w - nw : b.x;
            draw_text(a, a->small, c, nx, b.y + b.h + px(a, 3), note, strlen(note));
            below += a->small_h + px(a, 4);
        }
        int act = chat_msg_action(a, i);
        if (act && below >= clip.y && below + action_h(a) <= clip.y + clip.h) {
            const char *label = act == CHAT_ACT_EDIT ? "Edit and resend" : "Regenerate";
            int right = m->role == CHAT_USER ? -(b.x + b.w) : b.x;
            button(a, right, below, action_h(a), label, C_BTN, C_TEXT, act, i);
        }
    }
    if (a->r_scroll_thumb.h) {
        fill(a, a->r_scroll_track, C_TRACK);
        fill(a, a->r_scroll_thumb, a->dragging ? C_MUTED : C_THUMB);
    }
    SDL_RenderSetClipRect(a->ren, NULL);
}

static void draw_notices(chat_app *a) {
    int m = px(a, 16), pad = px(a, 8), y = a->r_transcript.y + px(a, 8);
    int w = a->r_transcript.w - 2 * m - px(a, 16);
    m += a->r_transcript.x;
    for (int i = 0; i < a->n_notices; i++) {
        const chat_notice *n = &a->notices[i];
        int x_w = px(a, 28), bh = n->action ? a->line_h + px(a, 12) : 0;
        SDL_Rect tr = {m + pad, 0, w - 2 * pad - x_w, 0};
        int text_h = draw_para(a, a->font, 0, tr, n->text, false);
        int h = text_h + 2 * pad + (bh ? bh + pad : 0);
        SDL_Rect r = {m, y, w, h};
        fill(a, r, n->error ? C_ERR_BG : C_INFO_BG);
        outline(a, r, n->error ? C_ERR : C_ACCENT, 1);
        tr.y = y + pad;
        draw_para(a, a->font, n->error ? C_ERR : C_INFO, tr, n->text, true);
        if (n->action) button(a, tr.x, tr.y + text_h + pad, bh, n->label, C_ACCENT, C_WHITE, n->action, i);
        SDL_Rect x = {r.x + r.w - x_w - px(a, 4), y + px(a, 4), x_w, x_w};
        draw_text(a, a->bold, n->error ? C_ERR : C_INFO, x.x + px(a, 9), x.y + px(a, 4), "\xC3\x97", 2);
        add_button(a, x, CHAT_ACT_DISMISS, i);
        y += h + px(a, 6);
    }
}

/* While a sent message is being edited, the bottom of the transcript says so. */
static void draw_edit_banner(chat_app *a) {
    if (!a->editing) return;
    static const char text[] = "Editing a sent message: Enter sends it again and drops everything after it; "
                               "Esc cancels.";
    int m = px(a, 16), pad = px(a, 6);
    SDL_Rect tr = {a->r_transcript.x + m + pad, 0, a->r_transcript.w - 2 * m - 2 * pad, 0};
    int th = draw_para(a, a->small, 0, tr, text, false);
    SDL_Rect r = {tr.x - pad, a->r_transcript.y + a->r_transcript.h - th - 2 * pad, tr.w + 2 * pad, th + 2 * pad};
    fill(a, r, C_INFO_BG);
    outline(a, r, C_ACCENT, 1);
    tr.y = r.y + pad;
    draw_para(a, a->small, C_INFO, tr, text, true);
}

/* A clicked link is opened only after the user saw where it goes. */
static void draw_link_prompt(chat_app *a) {
    if (!a->link_url) return;
    int m = px(a, 16), pad = px(a, 8), w = a->r_transcript.w - 2 * m - px(a, 16);
    m += a->r_transcript.x;
    int bh = a->line_h + px(a, 8);
    char text[1200];
    snprintf(text, sizeof text, "Open this link in the browser?\n%s", a->link_url);
    SDL_Rect tr = {m + pad, 0, w - 2 * pad, 0};
    int th = draw_para(a, a->font, 0, tr, text, false);
    SDL_Rect r = {m, a->r_transcript.y + a->r_transcript.h - th - bh - 3 * pad, w, th + bh + 3 * pad};
    fill(a, r, C_INFO_BG);
    outline(a, r, C_ACCENT, 1);
    tr.y = r.y + pad;
    draw_para(a, a->font, C_INFO, tr, text, true);
    int by = tr.y + th + pad;
    SDL_Rect open = button(a, r.x + pad, by, bh, "Open", C_ACCENT, C_WHITE, CHAT_ACT_OPEN_LINK, 0);
    button(a, open.x + open.w + px(a, 8), by, bh, "Cancel", C_BTN, C_TEXT, CHAT_ACT_CANCEL_LINK, 0);
}

/* Wraps an edit field's text s (n bytes) for r and returns the first row shown:
 * the rows around the caret when the text is taller than the field. */
static int field_lines(chat_app *a, const char *s, size_t n, size_t caret, SDL_Rect r, text_lines *tl) {
    int pad = px(a, 10);
    text_wrap(s, n, r.w - 2 * pad, ttf_fit, a->font, tl);
    int cl = text_line_of(tl, caret), rows = (r.h - 2 * pad) / a->line_h;
    return cl - rows + 1 > 0 ? cl - rows + 1 : 0;
}

size_t chat_field_offset(chat_app *a, const text_field *f, SDL_Rect r, int x, int y) {
    int pad = px(a, 10);
    const char *s = tb_str(&f->text);
    text_lines tl = {0};
    int first = field_lines(a, s, f->text.len, f->cursor, r, &tl);
    int i = first + (y - r.y - pad) / a->line_h;
    if (y < r.y + pad) i = first;
    if (i >= tl.n) i = tl.n - 1;
    size_t off = f->text.len;
    if (i >= 0) {
        const text_line *l = &tl.v[i];
        /* The code point boundary nearest to x: past a glyph's middle is after it. */
        size_t p = l->off, end = l->off + l->len;
        int prev_w = 0;
        while (p < end) {
            size_t q = utf8_next(s, end, p);
            int w = text_w(a->font, s + l->off, q - l->off);
            if (x - r.x - pad < (prev_w + w) / 2) break;
            prev_w = w;
            p = q;
        }
        off = p;
    }
    text_lines_free(&tl);
    return off;
}

/* An edit field: wrapped text with the IME composition inline (underlined) and
 * a caret when focused. Shows the rows around the caret when it is taller. */
static void draw_field(chat_app *a, const text_field *f, SDL_Rect r, bool focus, const char *placeholder) {
    int pad = px(a, 10);
    fill(a, r, C_WHITE);
    outline(a, r, focus ? C_ACCENT : C_FIELD, focus ? px(a, 2) : 1);
    size_t clen = strlen(f->compose), n = f->text.len + clen;
    char *s = malloc(n + 1);
    if (!s) return;
    memcpy(s, tb_str(&f->text), f->cursor);
    memcpy(s + f->cursor, f->compose, clen);
    memcpy(s + f->cursor + clen, tb_str(&f->text) + f->cursor, f->text.len - f->cursor + 1);
    if (!n && placeholder) {
        draw_text(a, a->font, C_MUTED, r.x + pad, r.y + pad, placeholder, strlen(placeholder));
    }
    text_lines tl = {0};
    size_t caret = f->cursor + clen, sb = 0, se = 0;
    int first = field_lines(a, s, n, caret, r, &tl), rows = (r.h - 2 * pad) / a->line_h;
    if (!clen) tf_selection(f, &sb, &se);
    SDL_RenderSetClipRect(a->ren, &r);
    for (int i = first; i < tl.n && i < first + rows; i++) {
        int y = r.y + pad + (i - first) * a->line_h;
        const text_line *l = &tl.v[i];
        size_t s0 = sb > l->off ? sb : l->off, s1 = se < l->off + l->len ? se : l->off + l->len;
        if (s0 < s1 || (sb < se && sb <= l->off && se > l->off + l->len)) { /* the line's selected part (and its '\n') */
            int x0 = text_w(a->font, s + l->off, s0 - l->off), x1 = text_w(a->font, s + l->off, s1 - l->off);
            if (se > l->off + l->len) x1 += px(a, 5);
            fill(a, (SDL_Rect){r.x + pad + x0, y, x1 - x0, a->line_h}, C_SEL);
        }
        draw_text(a, a->font, C_TEXT, r.x + pad, y, s + l->off, l->len);
        /* underline the part of the composition on this line */
        size_t c0 = f->cursor > l->off ? f->cursor : l->off, c1 = caret < l->off + l->len ? caret : l->off + l->len;
        if (clen && c0 < c1) {
            int x0 = text_w(a->font, s + l->off, c0 - l->off), x1 = text_w(a->font, s + l->off, c1 - l->off);
            fill(a, (SDL_Rect){r.x + pad + x0, y + a->line_h - px(a, 2), x1 - x0, px(a, 1) > 0 ? px(a, 1) : 1},
                 C_TEXT);
        }
        if (focus && i == text_line_of(&tl, caret)) {
            size_t at = caret < l->off ? l->off : caret;
            int cx = text_w(a->font, s + l->off, at - l->off);
            fill(a, (SDL_Rect){r.x + pad + cx, y + px(a, 2), px(a, 2) > 0 ? px(a, 2) : 1, a->line_h - px(a, 4)},
                 C_ACCENT);
        }
    }
    SDL_RenderSetClipRect(a->ren, NULL);
    if (focus) {
        /* The IME's candidate window goes under the field (window coordinates). */
        float k = a->px_per_coord > 0 ? a->px_per_coord : 1;
        SDL_Rect ime = {(int)(r.x / k), (int)(r.y / k), (int)(r.w / k), (int)(r.h / k)};
        SDL_SetTextInputRect(&ime);
    }
    text_lines_free(&tl);
    free(s);
}

static void draw_toolbar(chat_app *a) {
    int h = a->r_transcript.y, m = px(a, 16);
    fill(a, (SDL_Rect){0, 0, a->out_w, h}, C_PANEL);
    fill(a, (SDL_Rect){0, h - 1, a->out_w, 1}, C_LINE);
    int x = m + draw_text(a, a->bold, C_TEXT, m, (h - a->line_h) / 2, "phivk chat", 10);
    const char *sub = a->loaded ? a->model_name : a->loads_pending ? "loading..." : "no model";
    draw_text(a, a->font, C_MUTED, x + px(a, 12), (h - a->line_h) / 2, sub, strlen(sub));
    int bh = a->line_h + px(a, 8), by = (h - bh) / 2;
    SDL_Rect b = button(a, -(a->out_w - m), by, bh, a->panel_open ? "Hide settings" : "Settings",
                        C_BTN, C_TEXT, CHAT_ACT_PANEL, 0);
    b = button(a, -(b.x - px(a, 8)), by, bh, "Export", C_BTN, C_TEXT, CHAT_ACT_EXPORT, 0);
    b = button(a, -(b.x - px(a, 8)), by, bh, "Open model...", C_BTN, C_TEXT, CHAT_ACT_PICKER, 0);
    button(a, -(b.x - px(a, 8)), by, bh, "New chat", C_BTN, C_TEXT, CHAT_ACT_NEW, 0);
}

static void draw_panel(chat_app *a) {
    int x0 = a->r_transcript.x + a->r_transcript.w, w = a->out_w - x0, m = px(a, 14);
    if (w <= 0) {
        a->r_system = (SDL_Rect){0, 0, 0, 0};
        return;
    }
    int top = a->r_transcript.y, bottom = a->r_status.y;
    fill(a, (SDL_Rect){x0, top, w, bottom - top}, C_PANEL);
    fill(a, (SDL_Rect){x0, top, 1, bottom - top}, C_LINE);
    int x = x0 + m, y = top + m, iw = w - 2 * m;
    draw_text(a, a->bold, C_TEXT, x, y, "Settings", 8);
    y += a->line_h + px(a, 10);
    draw_text(a, a->small, C_MUTED, x, y, "System prompt", 13);
    y += a->small_h + px(a, 4);
    a->r_system = (SDL_Rect){x, y, iw, 4 * a->line_h + px(a, 20)};
    draw_field(a, &a->system, a->r_system, a->focus == CHAT_FOCUS_SYSTEM, "e.g. You are a helpful assistant.");
    y += a->r_system.h + px(a, 12);
    int bh = a->line_h + px(a, 6);
    for (int i = 0; i < chat_setting_count(); i++) {
        const char *label = chat_setting_label(i);
        draw_text(a, a->small, C_MUTED, x, y, label, strlen(label));
        y += a->small_h + px(a, 2);
        SDL_Rect minus = button(a, x, y, bh, "\xE2\x88\x92", C_BTN, C_TEXT, CHAT_ACT_STEP, i * 2);
        SDL_Rect plus = button(a, -(x + iw), y, bh, "+", C_BTN, C_TEXT, CHAT_ACT_STEP, i * 2 + 1);
        char v[300];
        chat_setting_value(a, i, v, sizeof v);
        int span = plus.x - (minus.x + minus.w) - px(a, 8);
        size_t n = strlen(v);
        while (n && text_w(a->font, v, n) > span) n = utf8_prev(v, n);
        int vw = text_w(a->font, v, n);
        draw_text(a, a->font, C_TEXT, minus.x + minus.w + (plus.x - minus.x - minus.w - vw) / 2,
                  y + (bh - a->line_h) / 2, v, n);
        y += bh + px(a, 8);
    }
    if (chat_settings_need_reload(a)) {
        button(a, x, y, bh, "Apply: reload the model", C_ACCENT, C_WHITE, CHAT_ACT_APPLY, 0);
        y += bh + px(a, 8);
    }
    y += px(a, 6);
    static const char help[] =
        "Enter sends, Shift+Enter adds a line. Esc stops the answer. Click a message and "
        "Ctrl+C copies it; Ctrl+V pastes. Up/Down recall what you sent. Ctrl+E exports "
        "Markdown, Ctrl+N starts a new chat, Ctrl+R answers the last message again, Ctrl+O opens a model, Ctrl+F "
        "searches the chats, F2 shows or hides these settings. Drop a .gguf to load it or a .txt/.md to summarize it.";
    if (y < bottom - px(a, 40)) draw_para(a, a->small, C_MUTED, (SDL_Rect){x, y, iw, 0}, help, true);
}

static void draw_status(chat_app *a) {
    SDL_Rect r = a->r_status;
    fill(a, r, C_BTN);
    fill(a, (SDL_Rect){0, r.y, r.w, 1}, C_LINE);
    int x = px(a, 12), y = r.y + (r.h - a->small_h) / 2;
    char s[600];
    if (a->loaded) {
        snprintf(s, sizeof s, "%s  \xC2\xB7  %s  \xC2\xB7  context %d / %d", a->device_name, a->model_name,
                 a->ctx_used, a->ctx_total);
        x += draw_text(a, a->small, C_TEXT, x, y, s, strlen(s));
        if (a->last_tokens) {
            snprintf(s, sizeof s, "  \xC2\xB7  %.1f tokens/s (%d tokens)", a->tok_per_s, a->last_tokens);
            x += draw_text(a, a->small, C_TEXT, x, y, s, strlen(s));
        }
    } else {
        x += draw_text(a, a->small, C_MUTED, x, y, "no model", 8);
    }
    if (*a->progress_stage && a->progress_total) {
        int pct = (int)(100 * a->progress_done / a->progress_total);
        snprintf(s, sizeof s, "%s %d%%", stage_text(a->progress_stage), pct);
        int bw = px(a, 140), sw = text_w(a->small, s, strlen(s));
        int bx = r.w - px(a, 12) - bw;
        if (bx - sw - px(a, 8) > x + px(a, 16)) {
            draw_text(a, a->small, C_TEXT, bx - sw - px(a, 8), y, s, strlen(s));
            progress_bar(a, (SDL_Rect){bx, r.y + r.h / 2 - px(a, 4), bw, px(a, 8)}, a->progress_done,
                         a->progress_total);
        }
    }
}

/* The longest prefix of s (n bytes) that fits w pixels in font, "..." added
 * when cut, into out[cap]. */
static void fit_text(TTF_Font *font, const char *s, size_t n, int w, char *out, size_t cap) {
    if (n >= cap - 4) n = utf8_floor(s, cap - 4);
    if (text_w(font, s, n) <= w) {
        snprintf(out, cap, "%.*s", (int)n, s);
        return;
    }
    int dots = text_w(font, "...", 3);
    while (n && text_w(font, s, n) + dots > w) n = utf8_prev(s, n);
    snprintf(out, cap, "%.*s...", (int)n, s);
}

/* The conversation list: the search box, then a row per chat that matches it
 * (title, date; the open one with Rename and Delete). */
static void draw_sidebar(chat_app *a) {
    SDL_Rect r = a->r_sidebar;
    a->r_search = a->r_rename = (SDL_Rect){0, 0, 0, 0};
    if (r.w <= 0) return;
    fill(a, r, C_PANEL);
    fill(a, (SDL_Rect){r.x + r.w - 1, r.y, 1, r.h}, C_LINE);
    int m = px(a, 10), iw = r.w - 2 * m;
    a->r_search = (SDL_Rect){r.x + m, r.y + m, iw, a->line_h + px(a, 20)};
    draw_field(a, &a->search, a->r_search, a->focus == CHAT_FOCUS_SEARCH, "Search chats");
    SDL_Rect list = {r.x, a->r_search.y + a->r_search.h + px(a, 8), r.w - 1, 0};
    list.h = r.y + r.h - list.y;
    int row_h = a->line_h + a->small_h + px(a, 12), shown = 0, cur = chat_conv_current(a);
    for (int i = 0; i < a->n_convs; i++) shown += chat_conv_shown(a, i);
    int max_scroll = shown * row_h - list.h;
    if (a->conv_scroll > max_scroll) a->conv_scroll = max_scroll > 0 ? max_scroll : 0;
    SDL_RenderSetClipRect(a->ren, &list);
    int y = list.y - a->conv_scroll;
    for (int i = 0; i < a->n_convs; i++) {
        if (!chat_conv_shown(a, i)) continue;
        SDL_Rect row = {list.x, y, list.w, row_h};
        y += row_h;
        if (row.y + row.h <= list.y || row.y >= list.y + list.h) continue;
        const chat_entry *e = &a->convs[i];
        if (i == cur) fill(a, row, C_USER);
        fill(a, (SDL_Rect){row.x, row.y + row.h - 1, row.w, 1}, C_LINE);
        bool whole = row.y >= list.y && row.y + row.h <= list.y + list.h;
        if (whole && i != a->renaming) add_button(a, row, CHAT_ACT_SWITCH, i);
        char t[200];
        if (i == a->renaming) {
            a->r_rename = (SDL_Rect){row.x + m - px(a, 6), row.y + px(a, 2), iw + px(a, 6), a->line_h + px(a, 20)};
            draw_field(a, &a->rename, a->r_rename, a->focus == CHAT_FOCUS_RENAME, NULL);
            continue;
        }
        fit_text(i == cur ? a->bold : a->font, *e->title ? e->title : "New chat",
                 strlen(*e->title ? e->title : "New chat"), iw, t, sizeof t);
        draw_text(a, i == cur ? a->bold : a->font, *e->title ? C_TEXT : C_MUTED, row.x + m, row.y + px(a, 5), t,
                  strlen(t));
        /* Short enough to leave room for the open chat's buttons. */
        struct tm tm, now;
        time_t today = time(NULL);
        localtime_r(&e->mtime, &tm);
        localtime_r(&today, &now);
        char date[64];
        strftime(date, sizeof date, tm.tm_year != now.tm_year ? "%Y-%m-%d"
                                    : tm.tm_yday == now.tm_yday ? "Today %H:%M" : "%b %d %H:%M", &tm);
        int dy = row.y + px(a, 5) + a->line_h, room = iw;
        if (i == cur && whole) {
            int bh = a->small_h + px(a, 2);
            SDL_Rect del = font_button(a, a->small, -(row.x + row.w - m), dy, bh, "Delete", C_BTN, C_TEXT,
                                       CHAT_ACT_DELETE, i);
            SDL_Rect ren = font_button(a, a->small, -(del.x - px(a, 4)), dy, bh, "Rename", C_BTN, C_TEXT,
                                       CHAT_ACT_RENAME, i);
            room = ren.x - px(a, 4) - (row.x + m);
        }
        fit_text(a->small, date, strlen(date), room, t, sizeof t);
        draw_text(a, a->small, C_MUTED, row.x + m, dy, t, strlen(t));
    }
    if (!shown) {
        const char *none = a->n_convs ? "No chat matches." : "No saved chats yet.";
        draw_text(a, a->small, C_MUTED, r.x + m, list.y + px(a, 4), none, strlen(none));
    }
    SDL_RenderSetClipRect(a->ren, NULL);
}

/* Open model: the model files found, each with what its header says, and a
 * path field. Modal: only its buttons take clicks while it is open. */
static void draw_picker(chat_app *a) {
    a->r_model_path = (SDL_Rect){0, 0, 0, 0};
    if (!a->picker_open) return;
    a->n_buttons = 0;
    int m = px(a, 14), w = a->out_w - 2 * px(a, 40), h = a->out_h - 2 * px(a, 40);
    if (w > px(a, 680)) w = px(a, 680);
    SDL_Rect r = {(a->out_w - w) / 2, (a->out_h - h) / 2, w, h};
    fill(a, r, C_PANEL);
    outline(a, r, C_ACCENT, 1);
    int x = r.x + m, y = r.y + m, iw = w - 2 * m, bh = a->line_h + px(a, 8);
    draw_text(a, a->bold, C_TEXT, x, y + (bh - a->line_h) / 2, "Open model", 10);
    button(a, -(r.x + r.w - m), y, bh, "Close", C_BTN, C_TEXT, CHAT_ACT_PICKER, 0);
    y += bh + px(a, 4);
    static const char where[] = "Models in ~/Downloads, ~/models, $XDG_DATA_HOME/phivk/models and the folders "
                                "of models opened before. Click one to load it; the current model stays "
                                "until it has loaded.";
    y += draw_para(a, a->small, C_MUTED, (SDL_Rect){x, y, iw, 0}, where, true) + px(a, 8);
    int bottom = r.y + r.h - m - (a->line_h + px(a, 20)) - a->small_h - px(a, 12);
    int row_h = a->line_h + a->small_h + px(a, 10);
    char t[512], b1[32];
    if (!a->n_models) draw_text(a, a->font, C_MUTED, x, y, "No .gguf files there.", 21);
    int rows_bottom = bottom - a->small_h - px(a, 4); /* room for the line that says how many are shown */
    int fit = (rows_bottom - y) / row_h;
    if (fit < 1) fit = 1;
    if (a->picker_first > a->n_models - fit) a->picker_first = a->n_models - fit > 0 ? a->n_models - fit : 0;
    int i = a->picker_first;
    for (; i < a->n_models && y + row_h <= rows_bottom; i++, y += row_h) {
        const chat_model_file *f = &a->models[i];
        SDL_Rect row = {x - px(a, 4), y, iw + px(a, 8), row_h};
        bool current = !strcmp(f->path, a->model_path);
        fill(a, row, current ? C_USER : C_WHITE);
        outline(a, row, C_LINE, 1);
        add_button(a, row, CHAT_ACT_PICK, i);
        const char *base = strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path;
        fit_text(a->font, base, strlen(base), iw - px(a, 8), t, sizeof t);
        draw_text(a, a->font, C_TEXT, x, y + px(a, 4), t, strlen(t));
        char info[600];
        if (*f->error) {
            snprintf(info, sizeof info, "cannot be read: %s", f->error);
        } else {
            const phivk_model_brief *b = &f->brief;
            snprintf(info, sizeof info, "%s \xC2\xB7 %s \xC2\xB7 %s \xC2\xB7 context %lld \xC2\xB7 %s",
                     *b->arch ? b->arch : "?", *b->quant ? b->quant : "?", phivk_format_bytes(b1, b->file_bytes),
                     (long long)b->ctx, f->path);
        }
        fit_text(a->small, info, strlen(info), iw - px(a, 8), t, sizeof t);
        draw_text(a, a->small, *f->error ? C_ERR : C_MUTED, x, y + px(a, 4) + a->line_h, t, strlen(t));
    }
    if (i < a->n_models || a->picker_first) {
        snprintf(t, sizeof t, "%d of %d shown: the mouse wheel scrolls.", i - a->picker_first, a->n_models);
        draw_text(a, a->small, C_MUTED, x, y, t, strlen(t));
    }
    y = bottom + px(a, 6);
    draw_text(a, a->small, C_MUTED, x, y, "Or a path:", 10);
    y += a->small_h + px(a, 4);
    SDL_Rect open = button(a, -(x + iw), y + px(a, 6), bh, "Open", C_ACCENT, C_WHITE, CHAT_ACT_OPEN_PATH, 0);
    a->r_model_path = (SDL_Rect){x, y, open.x - x - px(a, 8), a->line_h + px(a, 20)};
    draw_field(a, &a->model_field, a->r_model_path, a->focus == CHAT_FOCUS_MODEL_PATH, "/path/to/model.gguf");
}

int chat_draw_frame(chat_app *a) {
    chat_layout(a);
    if (!a->font) return -1;
    a->n_buttons = 0;
    rgb bg = RGB(C_BG);
    SDL_SetRenderDrawColor(a->ren, bg.r, bg.g, bg.b, 255);
    SDL_RenderClear(a->ren);
    if (a->n_msgs) draw_messages(a);
    else draw_empty(a);
    draw_notices(a);
    draw_edit_banner(a);
    draw_link_prompt(a);
    draw_toolbar(a);
    const char *ph = !a->loaded && !a->loads_pending ? "Drop a .gguf model file on the window to start"
                                                      : "Message (Enter sends, Shift+Enter adds a line)";
    draw_field(a, &a->input, a->r_input, a->focus == CHAT_FOCUS_INPUT || !a->panel_open, ph);
    int bx = a->r_input.x + a->r_input.w + px(a, 8), bh = a->line_h + px(a, 14);
    int by = a->r_input.y + a->r_input.h - bh;
    if (a->answering) button(a, bx, by, bh, "Stop", C_STOP, C_WHITE, CHAT_ACT_STOP, 0);
    else button(a, bx, by, bh, "Send", C_ACCENT, C_WHITE, CHAT_ACT_SEND, 0);
    if (a->panel_open) draw_panel(a);
    draw_sidebar(a);
    draw_status(a);
    draw_picker(a);
    return 0;
}
