#include "pvk_err.h"

#include <stdio.h>

static _Thread_local char last_msg[512];

phivk_status pvk_failv(phivk_status code, const char *fmt, va_list ap) {
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    return code;
}

phivk_status pvk_fail(phivk_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pvk_failv(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *pvk_errmsg(void) { return last_msg; }

const char *phivk_last_error(void) { return last_msg; }
