#include "pvk_fmt.h"

#include "phivk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *pvk_fmt_bytes(char buf[32], uint64_t n) {
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, 32, "%llu bytes", (unsigned long long)n);
    else snprintf(buf, 32, "%.2f %s", v, unit[u]);
    return buf;
}

bool pvk_env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

double pvk_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *phivk_format_bytes(char buf[32], uint64_t n) { return pvk_fmt_bytes(buf, n); }
