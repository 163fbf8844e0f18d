/* phivk convert SRC -o OUT.gguf [--type T] [--tokenizer DIR|FILE]: Hugging Face
 * folders and llama2.c checkpoints to GGUF (include/phivk.h phivk_convert). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "phivk.h"

static void convert_usage(FILE *out) {
    fprintf(out,
            "usage: phivk convert SRC -o OUT.gguf [--type TYPE] [--tokenizer DIR|FILE]\n"
            "  SRC: a Hugging Face folder (config.json, model.safetensors or its sharded\n"
            "  index, tokenizer.json) of PhiForCausalLM, Phi3ForCausalLM or\n"
            "  LlamaForCausalLM, or a llama2.c .bin with --tokenizer tokenizer.bin.\n"
            "  --type TYPE          weight type (default f16):");
    for (const char *const *t = phivk_convert_types(); *t; t++) fprintf(out, " %s", *t);
    fprintf(out,
            "\n"
            "  --tokenizer DIR|FILE the tokenizer, when it is not in SRC\n"
            "  OUT is written under a temporary name and renamed when complete.\n");
}

static bool progress_line; /* a progress line is open on stderr */

/* One line, rewritten in place for each tensor. */
static void progress(void *user, const char *stage, uint64_t done, uint64_t total) {
    progress_line = done < total;
    if (done == total) fprintf(stderr, "\rconverted %llu tensors%-40s\n", (unsigned long long)total, "");
    else fprintf(stderr, "\rconverting tensor %llu of %llu: %-40s", (unsigned long long)done + 1,
                 (unsigned long long)total, stage);
    fflush(stderr);
}

int cmd_convert(int argc, char **argv) {
    phivk_convert_params p = phivk_convert_default_params();
    const char *src = NULL, *out = NULL;
    p.progress = progress;
    for (int i = 1; i < argc; i++) {
        const bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            convert_usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && has_value) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--type") && has_value) {
            p.type = argv[++i];
        } else if (!strcmp(argv[i], "--tokenizer") && has_value) {
            p.tokenizer = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "phivk convert: unknown option or missing value '%s'\n", argv[i]);
            convert_usage(stderr);
            return 2;
        } else if (src) {
            fprintf(stderr, "phivk convert: one source at a time ('%s' and '%s')\n", src, argv[i]);
            return 2;
        } else {
            src = argv[i];
        }
    }
    if (!src || !out) {
        convert_usage(stderr);
        return 2;
    }
    if (phivk_convert(src, out, &p) != PHIVK_OK) {
        fprintf(stderr, "%sphivk convert: %s\n", progress_line ? "\n" : "", phivk_last_error());
        return 1;
    }
    return 0;
}
