/* Splitting a document into chunks that fit a token budget, for the map-reduce of
 * `phivk summarize`. Pure text logic: what a piece of text costs comes from a
 * callback (the model's tokenizer in the app, anything in the tests). */
#ifndef PHIVK_APPS_SUMMARIZE_SPLIT_H
#define PHIVK_APPS_SUMMARIZE_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* The tokens len bytes of text take, or -1 on failure. Roughly monotonic: a
 * longer stretch of text does not cost less than a piece of it. */
typedef int64_t (*sumsplit_cost_fn)(void *user, const char *text, size_t len);

/* Splits len bytes of UTF-8 text into chunks whose cost is at most budget each.
 * Chunks end at paragraph breaks (a blank line) where whole paragraphs fit, else
 * at line ends, sentence ends, between words, and as the last resort between two
 * characters: never inside a UTF-8 sequence. Chunks are packed as full as the
 * budget allows. On success returns the number of chunks n and *bounds (malloc'd,
 * caller frees) holds n + 1 offsets: chunk i is text[bounds[i], bounds[i+1]),
 * bounds[0] = 0 and bounds[n] = len, so the chunks concatenate to the text. Empty
 * text is 0 chunks. Returns -1 with *why set (static text) when a cost fails, a
 * single character costs more than the budget, or memory runs out. */
int64_t sumsplit_text(const char *text, size_t len, int64_t budget, sumsplit_cost_fn cost,
                      void *user, size_t **bounds, const char **why);

#endif
