#include "pvk_err.h"

#include <stdio.h>

static _Thread_local char last_msg[512];

pvk_status pvk_failv(pvk_status code, const char *fmt, va_list ap) {
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    return code;
}

pvk_status pvk_fail(pvk_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pvk_failv(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *pvk_errmsg(void) { return last_msg; }

const char *pvk_status_name(pvk_status code) {
    switch (code) {
    case PVK_OK: return "ok";
    case PVK_ERR_INVALID: return "invalid argument";
    case PVK_ERR_IO: return "I/O error";
    case PVK_ERR_BAD_FILE: return "bad file";
    case PVK_ERR_UNSUPPORTED: return "unsupported";
    case PVK_ERR_HOST_MEMORY: return "out of host memory";
    case PVK_ERR_DEVICE_MEMORY: return "out of device memory";
    case PVK_ERR_DEVICE_LOST: return "device lost";
    case PVK_ERR_NO_DEVICE: return "no Vulkan device";
    case PVK_ERR_CONTEXT_FULL: return "context full";
    case PVK_ERR_CANCELLED: return "cancelled";
    case PVK_ERR_VULKAN: return "Vulkan error";
    }
    return "unknown status";
}

/* The public face of the same message (include/phivk.h). */
#include "phivk.h"

_Static_assert((int)PHIVK_ERR_VULKAN == (int)PVK_ERR_VULKAN, "public and runtime status codes agree");

const char *phivk_last_error(void) { return pvk_errmsg(); }
