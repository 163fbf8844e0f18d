/* Small formatting and environment helpers every floor uses, so a byte count reads the
 * same in `phivk info`, the memory plan's messages, device listings and the bench. */
#ifndef PVK_FMT_H
#define PVK_FMT_H

#include <stdbool.h>
#include <stdint.h>

/* n bytes as "512 bytes", "1.50 KiB", "2.09 GiB" (binary units, two decimals) into
 * buf; returns buf. */
const char *pvk_fmt_bytes(char buf[32], uint64_t n);

/* True when the environment variable is set, non-empty and not "0" (the kill switches
 * PHIVK_DISABLE_* and PHIVK_PROFILE read this way). */
bool pvk_env_flag(const char *name);

/* Seconds on the monotonic clock, for host-side timings. */
double pvk_now_s(void);

#endif
