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

/* Reads a device-local buffer of bytes (rounded down to 16, at most one binding)
 * with read_bw.comp: 16-byte loads, neighbouring invocations on neighbouring words,
 * a grid that fills the device, timed as the copy (1 and 9 passes), through storage
 * buffers and (where the device has them) texel buffers; the faster counts. The
 * roofline of a memory-bound decode: it reads as a matvec reads its weights, where a
 * copy engine may run far below the memory's speed. Checks that the kernel's sum is
 * the buffer's (every word read). *gb_per_s is bytes read per second / 1e9. */
phivk_status pvk_bench_read(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s);
/* One pass of the read kernel (texel or storage fetch) over src (size a multiple of
 * 16): *sum is the wrapping uint32 sum of its words, as the kernel computed it. */
phivk_status pvk_bench_read_sum(pvk_dev *d, const pvk_buf *src, bool texel, uint32_t *sum);

#endif
