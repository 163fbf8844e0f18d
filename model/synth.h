/* Synthetic GGUF models, built in memory with gguf_writer: random weights that
 * give well-conditioned logits, deterministic from a seed, plus a synthetic
 * vocabulary so that the tokenizer and `phivk run` work on them. Used by the tests
 * (fixtures of every architecture and weight type) and by `phivk bench` when no
 * model file is given (named shapes of the real models).
 *
 * Vocabulary: phi3 and llama get a SentencePiece one (tokenizer.ggml.model
 * "llama"): <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF> (BYTE), then
 * "▁", printable ASCII characters, "▁x", two-letter and three-letter pieces with
 * and without "▁" (every piece's prefixes come first, so BPE merges reach it), with
 * descending scores; phi3 adds <|endoftext|> <|assistant|> <|end|> <|user|>
 * <|system|> (CONTROL, eos = <|endoftext|>) and a chat template. phi2 gets a GPT-2
 * style byte-level BPE vocabulary (model "gpt2", pre "phi-2"): the 256 byte symbols
 * in GPT-2 order, merges building "Ġx", two- and three-letter pieces, then
 * <|endoftext|> (bos = eos, add_bos false); phi3small gets the same GPT-2 style
 * vocabulary (its real tiktoken one needs the cl100k rank file, which
 * `phivk convert` reads). Rows past the generated pieces are
 * "[PADn]" (UNUSED), as the converters pad real vocabularies. */
#ifndef PHIVK_SYNTH_H
#define PHIVK_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvk_err.h"
#include "pvk_type.h"

typedef enum synth_mix {
    SYNTH_MIX_NONE = 0,   /* every 2-D matrix in wtype */
    SYNTH_MIX_Q4_K_M = 1, /* llama.cpp's Q4_K_M shape: attn_qkv Q5_K, output Q6_K, rest Q4_K */
} synth_mix;

typedef struct synth_params {
    const char *arch;       /* "phi3", "llama", "phi2" or "phi3small" */
    const char *name;       /* general.name; NULL: "synthetic <arch>" */
    int32_t n_vocab;        /* >= 300 (phi3: 310) so the fixed pieces fit */
    int32_t n_embd, n_layer, n_head;
    int32_t n_head_kv;      /* 0: n_head */
    int32_t n_ff;
    int32_t n_ctx;          /* context_length */
    int32_t n_rot;          /* 0: head_dim (phi2's real models rotate 32) */
    float rope_base;        /* 0: 10000 */
    /* LongRoPE (phi3): factor tables of n_rot/2 entries and attn_factor
     * (0: sqrt(1 + ln(n_ctx/orig) / ln(orig))), original context rope_orig_ctx. */
    bool longrope;
    int32_t rope_orig_ctx;  /* 0: n_ctx (written for phi3 always) */
    float attn_factor;
    int32_t sliding_window; /* phi3: 0 = none */
    bool tied_output;       /* phi3/llama: no output.weight */
    bool separate_qkv;      /* phi2: attn_q/k/v instead of fused attn_qkv */
    pvk_type wtype;         /* type of 2-D matrices (F32, F16, BF16 or a quant.h target) */
    synth_mix mix;
    uint64_t seed;
    const char *skip_tensor; /* a tensor name to leave out (tests of incomplete files) */
    /* For benchmarks (`phivk bench`), which need the shapes, types and bytes of a
     * model, not distinct weights: each layer tensor is generated once (per type)
     * and its bytes copied into every later layer, and every matrix repeats its
     * first SYNTH_REPEAT_ROWS rows. Phi-3-mini Q4_K_M then builds in seconds, not
     * minutes. The model is still valid and runs like any other. */
    bool repeat_weights;
    /* phi3small: the block-sparse pattern (0: the real model's 64, 16, 8, every 2nd
     * layer dense) and the GEGELU limit (0: 20). */
    int32_t bs_block, bs_local, bs_stride, bs_dense_every;
    float gegelu_limit;
} synth_params;

/* The distinct rows of a matrix under repeat_weights. */
#define SYNTH_REPEAT_ROWS 64

/* The "tiny" phi3 shape with F32 weights and seed 1. */
synth_params synth_default_params(void);

/* Fills *out with a named shape: "tiny", "150m", "phi3-mini", "phi3-mini-128k",
 * "phi3-medium", "phi3-small", "phi3-small-128k", "phi2", "phi1.5", "stories15m" (F16 weights, seed 1; callers
 * change wtype/mix/seed). PHIVK_ERR_INVALID naming the known shapes otherwise. */
phivk_status synth_shape_by_name(const char *name, synth_params *out);
/* The names synth_shape_by_name knows, NULL-terminated. */
const char *const *synth_shape_names(void);
/* Parameters of a model built from p (tied embeddings counted once). */
int64_t synth_param_count(const synth_params *p);

/* The type a matrix of cols columns gets when wtype is asked for: K-quants need
 * cols % 256 == 0 and fall back like llama.cpp (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0),
 * 32-blocks need cols % 32 == 0, and F16 is the last resort (phi-spec 4.4). */
pvk_type synth_legal_type(pvk_type wtype, int64_t cols);

/* Builds the GGUF image. The caller owns *data (free()). */
phivk_status synth_build(const synth_params *p, void **data, size_t *size);
/* The bytes of tensor data synth_build(p) would write, without building it. */
phivk_status synth_tensor_bytes(const synth_params *p, uint64_t *bytes);
/* Builds and writes it to path. */
phivk_status synth_save(const synth_params *p, const char *path);

#endif
