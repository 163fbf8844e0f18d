/* Test-side writers of the checkpoint formats `phivk convert` reads, written from
 * the format descriptions and independent of model/: safetensors files (any dtype,
 * optionally split into shards with an index), Hugging Face config.json /
 * tokenizer.json / tokenizer_config.json made from a synthetic GGUF model, and
 * llama2.c .bin checkpoints with their tokenizer.bin (docs/spec/llama2c.md). */
#ifndef PHIVK_TESTS_HF_WRITER_H
#define PHIVK_TESTS_HF_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

typedef struct hf_opts {
    const char *dtype;       /* "F32" (default), "F16", "BF16", or "F64" (unsupported) */
    int shards;              /* > 1: model-0000i-of-0000n.safetensors + index */
    const char *skip;        /* an HF tensor name to leave out */
    bool inv_freq;           /* add rotary_emb.inv_freq buffers (must be ignored) */
    const char *tiktoken;    /* phi3small: the rank file copied in as cl100k_base.tiktoken */
    bool neo_buffers;        /* gptneo: add the attn.attention.bias / masked_bias buffers */
} hf_opts;

/* Writes the Hugging Face folder dir (created) of the synthetic GGUF g: weights in
 * HF names and layouts (Llama q/k rows in rotate-half order; Phi-3-small's QKV rows
 * grouped per KV head and its up_proj rows interleaved), config.json from its
 * hyperparameters and the tokenizer files from its vocabulary. */
bool hf_write_folder(const gguf_file *g, const char *dir, const hf_opts *o);

/* Replaces (json != NULL, a JSON value) or deletes key in dir/config.json. */
bool hf_edit_config(const char *dir, const char *key, const char *json);

/* A llama2.c checkpoint of the synthetic llama g: version 0 or 1; shared: the
 * classifier is the embedding (the file must then have no output.weight, or the
 * one it has is ignored). And tokenizer.bin beside it at tok_path. */
bool llama2c_write(const gguf_file *g, const char *path, int version, bool shared, const char *tok_path);

/* Floats of a GGUF tensor (malloc'd), rounded through dtype ("F32", "F16", "BF16")
 * as a checkpoint stored in that dtype holds them. */
float *tensor_floats(const gguf_tensor *t, const char *dtype);

#endif
