/* phivk tokenize / phivk detokenize: text <-> token ids with a file's tokenizer.
 * Work on vocabulary-only GGUF files too: nothing here touches a device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "phivk.h"

static void tokenize_usage(FILE *out) {
    fprintf(out,
            "usage: phivk tokenize MODEL.gguf [OPTIONS] [TEXT]\n"
            "Prints the token ids of TEXT (byte for byte; standard input when absent) on one line.\n"
            "  --no-bos    add no BOS token (default: as the file says)\n"
            "  --special   parse control tokens such as <|user|> in the text (default: plain text)\n"
            "  --pieces    print one 'id<TAB>piece' line per token\n"
            "  --          the next argument is the text even if it starts with --\n");
}

static void detokenize_usage(FILE *out) {
    fprintf(out,
            "usage: phivk detokenize MODEL.gguf [--special] [IDS...]\n"
            "Prints the text of the token ids (arguments, or whitespace-separated on standard\n"
            "input when none are given) exactly, with no newline added.\n"
            "  --special   also print control tokens (<s>, <|end|>, ...)\n");
}

/* Reads all of stdin; NULL when out of memory or on a read error. */
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    while (p) {
        size_t k = fread(p + n, 1, cap - n - 1, stdin);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            char *np = realloc(p, cap *= 2);
            if (!np) free(p);
            p = np;
        }
    }
    if (p && ferror(stdin)) {
        free(p);
        p = NULL;
    }
    if (p) p[n] = 0;
    *len = n;
    return p;
}

/* Splits argv into options (handled by opt(), which returns false for unknown
 * ones) and positionals. Returns the number of positionals, or -1 after a usage
 * error / -2 after --help. */
typedef bool (*opt_fn)(void *ctx, const char *arg);
static int split_args(int argc, char **argv, opt_fn opt, void *ctx, char **pos, int max_pos,
                      const char *cmd) {
    int n = 0;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (opts && (!strcmp(a, "--help") || !strcmp(a, "-h"))) return -2;
        if (opts && !strcmp(a, "--")) {
            opts = false;
            continue;
        }
        if (opts && !strncmp(a, "--", 2)) {
            if (!opt(ctx, a)) {
                fprintf(stderr, "phivk %s: unknown option '%s' (see 'phivk %s --help')\n", cmd, a, cmd);
                return -1;
            }
            continue;
        }
        if (n == max_pos) {
            fprintf(stderr, "phivk %s: unexpected argument '%s' (quote TEXT as one argument)\n", cmd, a);
            return -1;
        }
        pos[n++] = a;
    }
    return n;
}

typedef struct tok_opts {
    bool no_bos, special, pieces;
} tok_opts;

static bool tokenize_opt(void *ctx, const char *a) {
    tok_opts *o = ctx;
    if (!strcmp(a, "--no-bos")) o->no_bos = true;
    else if (!strcmp(a, "--special")) o->special = true;
    else if (!strcmp(a, "--pieces")) o->pieces = true;
    else return false;
    return true;
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    char *pos[2];
    int n_pos = split_args(argc, argv, tokenize_opt, &o, pos, 2, "tokenize");
    if (n_pos == -2) {
        tokenize_usage(stdout);
        return 0;
    }
    if (n_pos < 1) {
        if (n_pos == 0) tokenize_usage(stderr);
        return 2;
    }

    int rc = 1;
    char *owned = NULL;
    int32_t *ids = NULL;
    const char *text = pos[1];
    size_t len = n_pos == 2 ? strlen(pos[1]) : 0;
    phivk_vocab *v = phivk_vocab_load(pos[0]);
    if (!v) {
        fprintf(stderr, "phivk tokenize: %s\n", phivk_last_error());
        goto done;
    }
    if (n_pos < 2) {
        text = owned = read_stdin(&len);
        if (!owned) {
            fprintf(stderr, "phivk tokenize: cannot read standard input: %s\n", strerror(errno));
            goto done;
        }
    }
    phivk_tokenize_params p = phivk_tokenize_default_params();
    p.bos = o.no_bos ? PHIVK_BOS_NO : PHIVK_BOS_AUTO;
    p.parse_special = o.special;
    int64_t cap = (int64_t)len + 8, n; /* rarely more tokens than bytes; else retry */
    for (;;) {
        ids = malloc((size_t)cap * sizeof *ids);
        n = ids ? phivk_tokenize(v, text, len, &p, ids, cap) : -1;
        if (n <= cap) break;
        free(ids);
        cap = n;
    }
    if (n < 0) {
        fprintf(stderr, "phivk tokenize: %s\n", ids ? phivk_last_error() : "out of host memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!o.pieces) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        /* A piece is the vocabulary file's text: one visible line per token. */
        const char *piece = phivk_token_piece(v, ids[i]);
        size_t len = strlen(piece);
        char *shown = malloc(4 * len + 1);
        if (shown) phivk_text_visible(piece, len, false, shown, 4 * len + 1);
        printf("%d\t%s\n", ids[i], shown ? shown : "(out of host memory)");
        free(shown);
    }
    if (!o.pieces) putchar('\n');
    rc = fflush(stdout) ? 1 : 0;
done:
    free(ids);
    free(owned);
    phivk_vocab_free(v);
    return rc;
}

static bool detokenize_opt(void *ctx, const char *a) {
    if (strcmp(a, "--special")) return false;
    *(bool *)ctx = true;
    return true;
}

/* Appends the ids in s (whitespace-separated; s is cut up) to *ids; false with a message. */
static bool parse_ids(char *s, const phivk_vocab *v, int32_t **ids, int64_t *n, int64_t *cap) {
    for (char *tok = strtok(s, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        char *end;
        errno = 0;
        long long id = strtoll(tok, &end, 10);
        if (*end || errno || end == tok) {
            fprintf(stderr, "phivk detokenize: '%.40s' is not a token id\n", tok);
            return false;
        }
        if (id < 0 || id >= phivk_vocab_size(v)) {
            fprintf(stderr, "phivk detokenize: token id %lld is outside the vocabulary (0..%d)\n", id,
                    phivk_vocab_size(v) - 1);
            return false;
        }
        if (*n == *cap) {
            int32_t *ni = realloc(*ids, (size_t)(*cap = *cap ? *cap * 2 : 256) * sizeof *ni);
            if (!ni) {
                fprintf(stderr, "phivk detokenize: out of host memory\n");
                return false;
            }
            *ids = ni;
        }
        (*ids)[(*n)++] = (int32_t)id;
    }
    return true;
}

int cmd_detokenize(int argc, char **argv) {
    bool special = false;
    char **pos = malloc((size_t)argc * sizeof *pos);
    if (!pos) {
        fprintf(stderr, "phivk detokenize: out of host memory\n");
        return 1;
    }
    int n_pos = split_args(argc, argv, detokenize_opt, &special, pos, argc, "detokenize");
    if (n_pos < 1) {
        free(pos);
        if (n_pos == -2) detokenize_usage(stdout);
        if (n_pos == 0) detokenize_usage(stderr);
        return n_pos == -2 ? 0 : 2;
    }

    int rc = 1;
    int32_t *ids = NULL;
    int64_t n = 0, cap = 0;
    char *in = NULL, *text = NULL;
    phivk_vocab *v = phivk_vocab_load(pos[0]);
    if (!v) {
        fprintf(stderr, "phivk detokenize: %s\n", phivk_last_error());
        goto done;
    }
    if (n_pos == 1) {
        size_t len;
        in = read_stdin(&len);
        if (!in) {
            fprintf(stderr, "phivk detokenize: cannot read standard input: %s\n", strerror(errno));
            goto done;
        }
        if (!parse_ids(in, v, &ids, &n, &cap)) goto done;
    }
    for (int i = 1; i < n_pos; i++)
        if (!parse_ids(pos[i], v, &ids, &n, &cap)) goto done;
    text = phivk_detokenize(v, ids, n, special);
    if (!text) {
        fprintf(stderr, "phivk detokenize: %s\n", phivk_last_error());
        goto done;
    }
    fwrite(text, 1, strlen(text), stdout);
    rc = fflush(stdout) ? 1 : 0;
done:
    free(text);
    free(in);
    free(ids);
    free(pos);
    phivk_vocab_free(v);
    return rc;
}
