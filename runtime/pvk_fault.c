/* PHIVK_FAULT: which allocation or submit fails (pvk_fault.h). */
#include "pvk_fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fault_kind { FAULT_ALLOC, FAULT_SUBMIT, FAULT_DEVICE_LOST, FAULT_KINDS } fault_kind;
static const char *const kind_names[FAULT_KINDS] = {"alloc", "submit", "device_lost"};

/* first == 0: off. Counts are 1-based: the first event is number 1. */
static struct { uint64_t first, last; } ranges[FAULT_KINDS];
static atomic_uint_fast64_t n_allocs, n_submits;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool configured;
static phivk_status init_status;
static char init_msg[256];   /* its message: pvk_fail's text is per thread */

static bool in_range(fault_kind k, uint64_t n) { return ranges[k].first && n >= ranges[k].first && n <= ranges[k].last; }

/* "N", "N-M" or "N-" into *first, *last; false when it is none of them. */
static bool parse_range(const char *s, size_t len, uint64_t *first, uint64_t *last) {
    char buf[64];
    if (!len || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    if (buf[0] < '0' || buf[0] > '9') return false;
    *first = strtoull(buf, &end, 10);
    *last = *first;
    if (*end == '-') {
        const char *m = end + 1;
        *last = UINT64_MAX;
        if (*m) {
            if (*m < '0' || *m > '9') return false;
            *last = strtoull(m, &end, 10);
        } else {
            end = (char *)m;
        }
    }
    return !*end && *first >= 1 && *last >= *first;
}

static phivk_status configure(const char *spec) {
    memset(ranges, 0, sizeof ranges);
    atomic_store(&n_allocs, 0);
    atomic_store(&n_submits, 0);
    /* Entries up to each comma; an empty one (",," or a trailing comma) is an error. */
    for (const char *p = spec; p && *spec; p += strcspn(p, ",") + 1) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        int k = FAULT_KINDS;
        if (colon)
            for (k = 0; k < FAULT_KINDS; k++)
                if (strlen(kind_names[k]) == (size_t)(colon - p) && !strncmp(p, kind_names[k], (size_t)(colon - p)))
                    break;
        if (k == FAULT_KINDS ||
            !parse_range(colon + 1, len - (size_t)(colon + 1 - p), &ranges[k].first, &ranges[k].last)) {
            memset(ranges, 0, sizeof ranges);
            return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_FAULT: cannot read '%.*s' in '%s': want alloc:N, submit:N or "
                            "device_lost:N (N, N-M or N-), separated by commas", (int)len, p, spec);
        }
        if (!p[len]) break;
    }
    return PHIVK_OK;
}

phivk_status pvk_fault_init(void) {
    pthread_mutex_lock(&init_lock);
    if (!configured) {
        init_status = configure(getenv("PHIVK_FAULT"));
        if (init_status) snprintf(init_msg, sizeof init_msg, "%s", pvk_errmsg());
        configured = true;
    }
    phivk_status s = init_status ? pvk_fail(init_status, "%s", init_msg) : PHIVK_OK;
    pthread_mutex_unlock(&init_lock);
    return s;
}

phivk_status pvk_fault_set(const char *spec) {
    pthread_mutex_lock(&init_lock);
    configured = true;
    init_status = configure(spec);
    if (init_status) snprintf(init_msg, sizeof init_msg, "%s", pvk_errmsg());
    phivk_status s = init_status;
    pthread_mutex_unlock(&init_lock);
    return s;
}

bool pvk_fault_alloc(void) { return in_range(FAULT_ALLOC, atomic_fetch_add(&n_allocs, 1) + 1); }

VkResult pvk_fault_submit(void) {
    uint64_t n = atomic_fetch_add(&n_submits, 1) + 1;
    if (in_range(FAULT_SUBMIT, n)) return VK_ERROR_OUT_OF_DEVICE_MEMORY;
    if (in_range(FAULT_DEVICE_LOST, n)) return VK_ERROR_DEVICE_LOST;
    return VK_SUCCESS;
}

uint64_t pvk_fault_allocs(void) { return atomic_load(&n_allocs); }
uint64_t pvk_fault_submits(void) { return atomic_load(&n_submits); }
