/* Pre-tokenizer patterns (PCRE2, Unicode classes, JIT where the platform has it):
 * the text cut into the matches of a pattern and the gaps between them, in order.
 * GPT-2 BPE and tiktoken both pre-tokenize this way. */
#include "tok.h"

#include <stdlib.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct tok_regex {
    pcre2_code *re;
};

phivk_status tok_regex_create(const char *pattern, const char *what, tok_regex **out) {
    *out = NULL;
    tok_regex *r = calloc(1, sizeof *r);
    if (!r) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the %s pre-tokenizer", what);
    int err;
    PCRE2_SIZE err_off;
    r->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &err_off, NULL);
    if (!r->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        free(r);
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "PCRE2 cannot compile the %s pre-tokenizer: %s", what, (char *)msg);
    }
    pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE); /* the interpreter runs it when JIT is unavailable */
    *out = r;
    return PHIVK_OK;
}

void tok_regex_free(tok_regex *r) {
    if (!r) return;
    pcre2_code_free(r->re);
    free(r);
}

phivk_status tok_regex_split(const tok_regex *r, const char *text, size_t len, tok_piece_fn piece, void *ctx) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
    if (!md) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory to tokenize %zu bytes", len);
    phivk_status st = PHIVK_OK;
    size_t pos = 0;
    while (pos < len && !st) {
        /* The text was validated by tok_encode: skip PCRE2's own UTF check. */
        int rc = pcre2_match(r->re, (PCRE2_SPTR)text, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* deep backtracking: the interpreter uses the heap */
            rc = pcre2_match(r->re, (PCRE2_SPTR)text, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        size_t start = len, end = len;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            start = ov[0];
            end = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = pvk_fail(PHIVK_ERR_INVALID, "pre-tokenizing at byte %zu failed: %s", pos, (char *)msg);
            break;
        }
        if (end == start && start < len) /* an empty match: take one character to keep progress */
            end = start + (size_t)tok_utf8_len((uint8_t)text[start]);
        if (start > pos) st = piece(ctx, text, pos, start - pos); /* unmatched gap */
        if (!st && end > start) st = piece(ctx, text, start, end - start);
        pos = end;
    }
    pcre2_match_data_free(md);
    return st;
}
