/* Device measurements that guide and judge the kernels: copy bandwidth, the
 * roofline a memory-bound decode is compared against (`phivk bench`). */
#ifndef PVK_BENCH_H
#define PVK_BENCH_H

#include "pvk.h"

/* Copies a device-local buffer of bytes to another with vkCmdCopyBuffer, one copy
 * per submit, reps times after one untimed copy (which also faults the pages in
 * on CPU devices); *gb_per_s is the best rate in bytes read per second / 1e9.
 * Wall time around submit and wait: for copies of tens of MiB the submit costs
 * well under 1%. Needs 2 x bytes of device memory; PVK_ERR_DEVICE_MEMORY when
 * they do not fit. */
pvk_status pvk_bench_copy(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s);

#endif
