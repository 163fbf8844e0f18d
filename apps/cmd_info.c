/* phivk info MODEL.gguf [--ctx N] [--json]: what the file holds and what a
 * session on it would need (include/phivk.h phivk_info_write). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "phivk.h"

static void info_usage(FILE *out) {
    fprintf(out,
            "usage: phivk info MODEL.gguf [--ctx N] [--json]\n"
            "  Architecture, hyperparameters, tokenizer, tensors, totals per type and\n"
            "  the memory a session needs (weights + KV cache in f16, q8_0 and q4_0).\n"
            "  --ctx N   context for the memory estimate (default: the model's)\n"
            "  --json    machine-readable output\n");
}

int cmd_info(int argc, char **argv) {
    phivk_info_params p = phivk_info_default_params();
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            info_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            p.json = true;
        } else if (!strcmp(argv[i], "--ctx")) {
            char *end;
            errno = 0;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || errno || *end || end == argv[i + 1] || v <= 0 || v > INT_MAX) {
                fprintf(stderr, "phivk info: --ctx needs a positive number of tokens\n");
                info_usage(stderr);
                return 2;
            }
            p.ctx = (int)v;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "phivk info: unknown option '%s'\n", argv[i]);
            info_usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "phivk info: one model file at a time ('%s' and '%s')\n", path, argv[i]);
            info_usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        info_usage(stderr);
        return 2;
    }
    if (phivk_info_write(path, &p, stdout) != PHIVK_OK) {
        fprintf(stderr, "phivk info: %s\n", phivk_last_error());
        return 1;
    }
    return 0;
}
