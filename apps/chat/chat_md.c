/* Markdown to blocks of styled runs through md4c's callbacks. The parser state
 * is the containers we are in (lists, quotes, a table) and the spans open
 * (strong, emphasis, code, link); each leaf block (paragraph, heading, code,
 * cell) becomes one chat_md_block and its text runs. */
#include <md4c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_md.h"

/* Deeper lists keep counting (so leaving them is right) but draw at the cap. */
enum { LIST_STACK = 64 };

typedef struct parse {
    chat_md_doc *d;
    bool oom;
    int depth, quote;          /* uncapped */
    bool ordered[LIST_STACK];
    unsigned next_no[LIST_STACK];
    char marker[16];           /* for the next leaf block of the current item */
    int open;                  /* index of the open leaf block, -1: none */
    int strong, em, code_span, heading;
    int link;                  /* open link's index, -1: none */
    int table, row, col, n_cols;
    bool in_code;
} parse;

static int capped(int v) { return v < CHAT_MD_MAX_DEPTH ? v : CHAT_MD_MAX_DEPTH; }

static bool grow(void **v, int n, int *cap, size_t size) {
    if (n < *cap) return true;
    int c = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, size * (size_t)c);
    if (!p) return false;
    *v = p;
    *cap = c;
    return true;
}

static void open_block(parse *p, chat_md_kind kind) {
    chat_md_doc *d = p->d;
    if (!grow((void **)&d->blocks, d->n_blocks, &d->cap_blocks, sizeof *d->blocks)) {
        p->oom = true;
        return;
    }
    chat_md_block *b = &d->blocks[d->n_blocks];
    *b = (chat_md_block){.kind = kind, .depth = capped(p->depth), .quote = capped(p->quote),
                         .level = p->heading, .first_run = d->n_runs};
    if (kind == CHAT_MD_CELL) {
        b->table = p->table - 1;
        b->row = p->row - 1;
        b->col = p->col;
        b->n_cols = p->n_cols;
    }
    memcpy(b->marker, p->marker, sizeof b->marker);
    p->marker[0] = 0;
    p->open = d->n_blocks++;
}

static chat_md_font run_font(const parse *p) {
    if (p->in_code || p->code_span) return CHAT_MDF_MONO;
    if (p->heading) return CHAT_MDF_HEADING;
    bool bold = p->strong > 0 || (p->row == 1 && p->table);
    if (bold && p->em) return CHAT_MDF_BOLD_ITALIC;
    if (bold) return CHAT_MDF_BOLD;
    return p->em ? CHAT_MDF_ITALIC : CHAT_MDF_REGULAR;
}

/* Appends text to the open block (opening a paragraph for a tight list item's
 * bare text), merging with the last run when the style is the same. */
static void append_text(parse *p, const char *s, size_t n) {
    chat_md_doc *d = p->d;
    if (!n || p->oom) return;
    if (p->open < 0) open_block(p, CHAT_MD_PARA);
    if (p->oom) return;
    chat_md_run r = {.off = d->text.len, .len = n, .font = run_font(p), .code_span = p->code_span > 0,
                     .link = p->link};
    if (!tb_append(&d->text, s, n)) {
        p->oom = true;
        return;
    }
    chat_md_block *b = &d->blocks[p->open];
    chat_md_run *last = b->n_runs ? &d->runs[d->n_runs - 1] : NULL;
    if (last && last->off + last->len == r.off && last->font == r.font && last->code_span == r.code_span &&
        last->link == r.link) {
        last->len += n;
        return;
    }
    if (!grow((void **)&d->runs, d->n_runs, &d->cap_runs, sizeof *d->runs)) {
        p->oom = true;
        return;
    }
    d->runs[d->n_runs++] = r;
    b->n_runs++;
}

/* The bytes of text the open block holds. */
static size_t open_len(const parse *p) {
    const chat_md_block *b = &p->d->blocks[p->open];
    if (!b->n_runs) return 0;
    const chat_md_run *first = &p->d->runs[b->first_run], *last = first + b->n_runs - 1;
    return last->off + last->len - first->off;
}

/* append_text, going on in a new block of the same paragraph or code block
 * each time the open one reaches CHAT_MD_SPLIT bytes: cut after the last space
 * (in code, the last line end) that fits, else (a word or line that long)
 * between two code points. */
static void add_text(parse *p, const char *s, size_t n) {
    if (p->open < 0 && n) open_block(p, CHAT_MD_PARA);
    chat_md_kind kind = p->open >= 0 ? p->d->blocks[p->open].kind : CHAT_MD_PARA;
    char sep = kind == CHAT_MD_CODE ? '\n' : ' ';
    while (!p->oom && n && (kind == CHAT_MD_PARA || kind == CHAT_MD_CODE) && open_len(p) + n > CHAT_MD_SPLIT) {
        size_t room = CHAT_MD_SPLIT - open_len(p), cut = room;
        while (cut && s[cut - 1] != sep) cut--;
        if (!cut && !open_len(p)) cut = utf8_floor(s, room);
        append_text(p, s, cut);
        s += cut;
        n -= cut;
        open_block(p, kind);
        if (p->oom) return;
        p->d->blocks[p->open].cont = true;
    }
    append_text(p, s, n);
}

static int enter_block(MD_BLOCKTYPE type, void *detail, void *user) {
    parse *p = user;
    switch (type) {
    case MD_BLOCK_QUOTE: p->open = -1; p->quote++; break;
    case MD_BLOCK_UL:
    case MD_BLOCK_OL:
        p->open = -1;
        if (p->depth < LIST_STACK) {
            p->ordered[p->depth] = type == MD_BLOCK_OL;
            p->next_no[p->depth] = type == MD_BLOCK_OL ? ((MD_BLOCK_OL_DETAIL *)detail)->start : 0;
        }
        p->depth++;
        break;
    case MD_BLOCK_LI: {
        p->open = -1;
        int k = p->depth - 1;
        if (k >= 0 && k < LIST_STACK && p->ordered[k])
            snprintf(p->marker, sizeof p->marker, "%u.", p->next_no[k]++);
        else
            snprintf(p->marker, sizeof p->marker, "\xE2\x80\xA2");
        break;
    }
    case MD_BLOCK_HR: open_block(p, CHAT_MD_RULE); p->open = -1; break;
    case MD_BLOCK_H:
        p->heading = (int)((MD_BLOCK_H_DETAIL *)detail)->level;
        open_block(p, CHAT_MD_HEADING);
        break;
    case MD_BLOCK_CODE: p->in_code = true; open_block(p, CHAT_MD_CODE); break;
    case MD_BLOCK_P: open_block(p, CHAT_MD_PARA); break;
    case MD_BLOCK_TABLE:
        p->table++;
        p->row = 0;
        p->n_cols = (int)((MD_BLOCK_TABLE_DETAIL *)detail)->col_count;
        break;
    case MD_BLOCK_TR: p->row++; p->col = 0; break;
    case MD_BLOCK_TH:
    case MD_BLOCK_TD: open_block(p, CHAT_MD_CELL); break;
    default: break;
    }
    return p->oom ? -1 : 0;
}

static int leave_block(MD_BLOCKTYPE type, void *detail, void *user) {
    parse *p = user;
    (void)detail;
    switch (type) {
    case MD_BLOCK_QUOTE: p->quote--; break;
    case MD_BLOCK_UL:
    case MD_BLOCK_OL: p->depth--; break;
    case MD_BLOCK_H: p->heading = 0; break;
    case MD_BLOCK_CODE: p->in_code = false; break;
    case MD_BLOCK_TH:
    case MD_BLOCK_TD: p->col++; break;
    case MD_BLOCK_TABLE: p->row = 0; break;
    default: break;
    }
    p->open = -1;
    return 0;
}

static int enter_span(MD_SPANTYPE type, void *detail, void *user) {
    parse *p = user;
    chat_md_doc *d = p->d;
    switch (type) {
    case MD_SPAN_STRONG: p->strong++; break;
    case MD_SPAN_EM: p->em++; break;
    case MD_SPAN_CODE: p->code_span++; break;
    case MD_SPAN_A: {
        const MD_ATTRIBUTE *h = &((MD_SPAN_A_DETAIL *)detail)->href;
        char **l = realloc(d->links, sizeof *l * (size_t)(d->n_links + 1));
        if (!l) return p->oom = true, -1;
        d->links = l;
        if (!(l[d->n_links] = strndup(h->text, h->size))) return p->oom = true, -1;
        p->link = d->n_links++;
        break;
    }
    default: break;
    }
    return 0;
}

static int leave_span(MD_SPANTYPE type, void *detail, void *user) {
    parse *p = user;
    (void)detail;
    switch (type) {
    case MD_SPAN_STRONG: p->strong--; break;
    case MD_SPAN_EM: p->em--; break;
    case MD_SPAN_CODE: p->code_span--; break;
    case MD_SPAN_A: p->link = -1; break;
    default: break;
    }
    return 0;
}

static const char *entity(const char *s, size_t n) {
    static const char *const map[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
                                         {"&apos;", "'"}, {"&nbsp;", " "}, {"&#39;", "'"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strlen(map[i][0]) == n && !memcmp(map[i][0], s, n)) return map[i][1];
    return NULL;
}

static int text(MD_TEXTTYPE type, const MD_CHAR *s, MD_SIZE n, void *user) {
    parse *p = user;
    switch (type) {
    case MD_TEXT_BR: add_text(p, "\n", 1); break;
    case MD_TEXT_SOFTBR: add_text(p, " ", 1); break;
    case MD_TEXT_NULLCHAR: add_text(p, "\xEF\xBF\xBD", 3); break;
    case MD_TEXT_ENTITY: {
        const char *e = entity(s, n);
        add_text(p, e ? e : s, e ? strlen(e) : n);
        break;
    }
    default: add_text(p, s, n); break;
    }
    return p->oom ? -1 : 0;
}

void chat_md_free(chat_md_doc *d) {
    if (!d) return;
    tb_free(&d->text);
    free(d->runs);
    free(d->blocks);
    for (int i = 0; i < d->n_links; i++) free(d->links[i]);
    free(d->links);
    *d = (chat_md_doc){0};
}

bool chat_md_parse(chat_md_doc *d, const char *s, size_t n) {
    chat_md_free(d);
    parse p = {.d = d, .open = -1, .link = -1};
    MD_PARSER parser = {
        /* No strikethrough: it would drop the tildes with nothing drawn instead.
         * Raw HTML shows as the text it is. */
        .flags = MD_FLAG_TABLES | MD_FLAG_PERMISSIVEURLAUTOLINKS | MD_FLAG_PERMISSIVEWWWAUTOLINKS | MD_FLAG_NOHTML,
        .enter_block = enter_block, .leave_block = leave_block,
        .enter_span = enter_span, .leave_span = leave_span, .text = text,
    };
    if (md_parse(s, (MD_SIZE)n, &parser, &p) != 0 || p.oom) {
        chat_md_free(d);
        return false;
    }
    return true;
}

const char *chat_md_code(const chat_md_doc *d, int block, size_t *len) {
    *len = 0;
    if (block < 0 || block >= d->n_blocks || !d->blocks[block].n_runs) return "";
    int end = block + 1; /* the parts it was split into follow it */
    while (end < d->n_blocks && d->blocks[end].cont && d->blocks[end].n_runs) end++;
    const chat_md_block *b = &d->blocks[block], *e = &d->blocks[end - 1];
    const chat_md_run *first = &d->runs[b->first_run], *last = &d->runs[e->first_run + e->n_runs - 1];
    *len = last->off + last->len - first->off;
    return tb_str(&d->text) + first->off;
}
