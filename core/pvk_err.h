/* Status codes and the message that goes with the last failure on this thread.
 * Vulkan-free: gguf_, tok_ and the model code use it too.
 *
 * Convention: a function that fails calls pvk_fail(code, "what happened: what to do")
 * and returns that code; the caller either handles it or passes the code up. The
 * message stays readable through pvk_errmsg() until the next pvk_fail on the thread. */
#ifndef PVK_ERR_H
#define PVK_ERR_H

#include <stdarg.h>

/* Values are the public PHIVK_* status values (include/phivk.h). */
typedef enum pvk_status {
    PVK_OK = 0,
    PVK_ERR_INVALID = 1,       /* bad argument or state */
    PVK_ERR_IO = 2,            /* file missing or unreadable */
    PVK_ERR_BAD_FILE = 3,      /* malformed or corrupt input file */
    PVK_ERR_UNSUPPORTED = 4,   /* a feature, type or architecture we do not handle */
    PVK_ERR_HOST_MEMORY = 5,   /* malloc / host allocation failed */
    PVK_ERR_DEVICE_MEMORY = 6, /* the GPU ran out of memory */
    PVK_ERR_DEVICE_LOST = 7,   /* the driver lost the device */
    PVK_ERR_NO_DEVICE = 8,     /* no usable Vulkan device */
    PVK_ERR_CONTEXT_FULL = 9,  /* tokens do not fit the context */
    PVK_ERR_CANCELLED = 10,    /* stopped by phivk_cancel */
    PVK_ERR_VULKAN = 11,       /* any other Vulkan failure */
} pvk_status;

/* Records the message for this thread and returns code. */
pvk_status pvk_fail(pvk_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
pvk_status pvk_failv(pvk_status code, const char *fmt, va_list ap);
/* The message of the last pvk_fail on this thread ("" if none). */
const char *pvk_errmsg(void);
/* A short fixed name for a code ("out of device memory", ...). */
const char *pvk_status_name(pvk_status code);

#endif
