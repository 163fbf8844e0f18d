/* phivk devices: every Vulkan device with the capabilities and limits phivk picks
 * kernels by; the one phivk opens by default is marked. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "phivk.h"

int cmd_devices(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: phivk devices [--json]\n"
                   "Lists every Vulkan device with its capabilities and limits; '*' marks the one\n"
                   "phivk uses by default (PHIVK_DEVICE=N or =NAME picks another).\n"
                   "  --json   a JSON array instead of the table\n");
            return 0;
        } else {
            fprintf(stderr, "phivk devices: unknown option '%s' (see 'phivk devices --help')\n", argv[i]);
            return 2;
        }
    }
    char *report = phivk_devices_report(json);
    if (!report) {
        fprintf(stderr, "phivk devices: %s\n", phivk_last_error());
        return 1;
    }
    fputs(report, stdout);
    if (json) fputc('\n', stdout);
    free(report);
    return 0;
}
