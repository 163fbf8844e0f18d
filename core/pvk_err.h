/* The message that goes with the last failure on this thread. The status codes are
 * the public phivk_status (include/phivk.h): one enum for the library and its users.
 * Vulkan-free: every floor uses it.
 *
 * Convention: a function that fails calls pvk_fail(code, "what happened: what to do")
 * and returns that code; the caller either handles it or passes the code up. The
 * message stays readable through pvk_errmsg() (phivk_last_error() for users) until
 * the next pvk_fail on the thread. */
#ifndef PVK_ERR_H
#define PVK_ERR_H

#include <stdarg.h>

#include "phivk.h"

/* Records the message for this thread and returns code. */
phivk_status pvk_fail(phivk_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
phivk_status pvk_failv(phivk_status code, const char *fmt, va_list ap);
/* The message of the last pvk_fail on this thread ("" if none). */
const char *pvk_errmsg(void);

#endif
