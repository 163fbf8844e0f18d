/* Device measurements that guide and judge the kernels: copy bandwidth, the
 * roofline a memory-bound decode is compared against (`phivk bench`). */
#ifndef PVK_BENCH_H
#define PVK_BENCH_H

#include "pvk.h"

/* Copies a device-local buffer of bytes to another with vkCmdCopyBuffer: submits
 * of 1 and of 9 copies, reps times each after an untimed round (which also faults
 * the pages in on CPU devices); the difference of their best wall times is 8
 * copies without the submit and wait (on an H200 the submit cost more than a
 * 256 MiB copy). *gb_per_s is bytes read per second / 1e9. Needs 2 x bytes of
 * device memory; PHIVK_ERR_DEVICE_MEMORY when they do not fit. */
phivk_status pvk_bench_copy(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s);

#endif
