/* Tokenizers of the checkpoints `phivk convert` reads, turned into the GGUF
 * tokenizer keys llama.cpp's converters write (phi-spec 4.3):
 *   - Hugging Face tokenizer.json BPE (+ tokenizer_config.json): byte-level
 *     (GPT-2/CodeGen: model "gpt2" with merges) or SentencePiece-style with byte
 *     fallback (Phi-3, Llama: model "llama" with scores); added tokens keep their ids,
 *     special ones become CONTROL, the others USER_DEFINED; rows the embedding has
 *     beyond the tokenizer become "[PADn]" (UNUSED).
 *   - llama2.c tokenizer.bin (llama2c.md section 5), as llama.cpp's
 *     convert-llama2c-to-ggml reads it: ids 0/1/2 become <unk>/<s>/</s>, spaces "▁",
 *     "<0xHH>" pieces BYTE. */
#ifndef PHIVK_CONVERT_VOCAB_H
#define PHIVK_CONVERT_VOCAB_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "pvk_err.h"

typedef struct cvocab cvocab;

/* Reads path: a folder (its tokenizer.json and tokenizer_config.json) or a
 * tokenizer.json file. n_vocab: the embedding's rows; the tokenizer may have fewer
 * (padded) but not more. config: config.json's text for bos/eos ids the tokenizer
 * files do not name (may be NULL). byte_level_pre: tokenizer.ggml.pre for a
 * byte-level BPE ("phi-2", "gpt-2"). Caller owns *out: cvocab_destroy. */
phivk_status cvocab_read_hf(const char *path, int32_t n_vocab, const char *config, const char *byte_level_pre,
                          cvocab **out);
/* Reads a llama2.c tokenizer.bin (a folder: its tokenizer.bin) of n_vocab records. */
phivk_status cvocab_read_llama2c(const char *path, int32_t n_vocab, cvocab **out);
void cvocab_destroy(cvocab *v); /* accepts NULL */

/* Overrides tokenizer.ggml.add_bos_token (phi2's converter writes false). */
void cvocab_set_add_bos(cvocab *v, bool add_bos);
/* Writes the tokenizer.* keys. */
void cvocab_write(const cvocab *v, gguf_writer *w);

#endif
