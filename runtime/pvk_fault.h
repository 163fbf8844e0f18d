/* Device faults on demand, for tests of the paths a healthy driver never takes
 * (lavapipe never runs out of device memory nor loses the device).
 *
 * PHIVK_FAULT is a comma-separated list of KIND:RANGE, read once (at the first
 * pvk_dev_create). KIND is
 *   alloc        the Nth pvk_buf_create fails as out of device memory
 *   submit       the Nth pvk_cmd_submit fails as out of device memory (nothing runs)
 *   device_lost  the Nth pvk_cmd_submit runs, then its wait reports
 *                VK_ERROR_DEVICE_LOST: that device is lost from then on
 * RANGE is N, N-M (N through M) or N- (N and every later one), counting from 1
 * since the process started (or since pvk_fault_set). Allocations and submits are
 * counted in every build: one atomic increment each, nothing next to a submit.
 * Example: PHIVK_FAULT=alloc:12 or PHIVK_FAULT=submit:3,device_lost:9. */
#ifndef PVK_FAULT_H
#define PVK_FAULT_H

#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "pvk_err.h"

/* Reads PHIVK_FAULT unless pvk_fault_set came first; later calls return the first
 * call's status. PHIVK_ERR_INVALID naming the part it cannot read. */
phivk_status pvk_fault_init(void);
/* Replaces the faults with spec (NULL or "": none) and restarts both counts; for
 * tests that inject in-process. Call it while no device is in use on another thread. */
phivk_status pvk_fault_set(const char *spec);

/* Counts one buffer allocation; true when it must fail. */
bool pvk_fault_alloc(void);
/* Counts one submit; VK_SUCCESS, or the VkResult it must report. */
VkResult pvk_fault_submit(void);
/* Allocations and submits counted so far. */
uint64_t pvk_fault_allocs(void);
uint64_t pvk_fault_submits(void);

#endif
