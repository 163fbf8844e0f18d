/* The map-reduce summary of a document on a loaded model, shared by
 * `phivk summarize` and phivk-chat: a document that fits the context is
 * summarized in one pass; a longer one is split into chunks that fit
 * (summarize_split.c), each chunk is summarized with the KV cache reset in
 * between, and the joined chunk summaries are summarized again, in as many
 * passes as it takes to fit. The final summary streams through a callback;
 * progress goes to another. Only the public API (phivk.h) is used. */
#ifndef PHIVK_APPS_SUMMARIZE_H
#define PHIVK_APPS_SUMMARIZE_H

#include <stddef.h>
#include <stdint.h>

#include "phivk.h"

typedef enum summ_ev_kind {
    SUMM_NOTE,       /* text: something the user should know (summaries limited) */
    SUMM_CHUNK,      /* chunk (from 1) of n_chunks of pass is being summarized: tokens of text */
    SUMM_CHUNK_DONE, /* that chunk's summary is text[0..len) */
    SUMM_FINAL,      /* the final pass over n_chunks summaries (tokens) begins; pass 1: the document fits */
} summ_ev_kind;

typedef struct summ_event {
    summ_ev_kind kind;
    int pass;                /* 1: the document itself; 2 and on: summaries of summaries */
    int64_t chunk, n_chunks;
    int64_t tokens;
    const char *text;
    size_t len;
} summ_event;

typedef struct summ_params {
    phivk_model *model;
    phivk_session *sess;     /* its cache is reset for every chunk */
    phivk_sampler_params samp;
    int32_t words;           /* the length asked for, in words */
    int32_t answer;          /* most tokens per summary */
    /* The final summary, a piece at a time, white space before it dropped. */
    void (*on_text)(void *user, const char *s, size_t n);
    void (*on_event)(void *user, const summ_event *e); /* may be NULL */
    void *user;
} summ_params;

typedef struct summ_stats {
    int64_t n_prompt, n_gen; /* tokens over every pass */
} summ_stats;

/* Summarizes doc[0..len). PHIVK_OK, or the failure with a one-line reason in
 * why[cap]; PHIVK_ERR_CANCELLED when phivk_cancel stopped a decode. */
phivk_status summ_run(const summ_params *p, const char *doc, size_t len, summ_stats *stats, char *why,
                      size_t cap);

#endif
