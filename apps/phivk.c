/* phivk: the command-line tool. Each subcommand lives in its own cmd_*.c file and
 * uses only the public API (include/phivk.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "phivk.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} command;

static int cmd_version(int argc, char **argv) {
    printf("phivk %s\n", PHIVK_VERSION);
    return 0;
}

/* One line per subcommand; its cmd_*.c defines the function (see commands.h). */
static const command commands[] = {
    {"version", "print the version", cmd_version},
    {"devices", "list Vulkan devices and their capabilities", cmd_devices},
    {"tokenize", "print the token ids of a text", cmd_tokenize},
    {"detokenize", "print the text of token ids", cmd_detokenize},
    {"info", "describe a GGUF file and the memory a session needs", cmd_info},
    {"convert", "turn a Hugging Face folder or llama2.c checkpoint into GGUF", cmd_convert},
    {"run", "complete a prompt and stream the answer", cmd_run},
    {"chat", "talk with a model in the terminal", cmd_chat},
    {"eval", "perplexity and logits of a token sequence", cmd_eval},
    {"bench", "prompt and generation speed, and the device's copy bandwidth", cmd_bench},
    {"summarize", "summarize a text or markdown file, however long", cmd_summarize},
    {"serve", "an OpenAI-compatible HTTP server; concurrent requests decode together", cmd_serve},
};

static void usage(FILE *out) {
    fprintf(out, "usage: phivk COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'phivk COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "phivk: unknown command '%s' (see 'phivk --help')\n", argv[1]);
    return 2;
}
