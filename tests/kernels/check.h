/* GPU-vs-reference checks shared by the kernel test binaries. Tolerances are
 * explained at the top of test_kernels.c. */
#ifndef PHIVK_TESTS_KERNELS_CHECK_H
#define PHIVK_TESTS_KERNELS_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "pvk_ops.h"

/* A device buffer of n floats holding v (NULL: uninitialised); prints a failure
 * and returns a zeroed pvk_buf, which the ops reject. */
pvk_buf check_upload(pvk_dev *d, const float *v, size_t n);

/* Elements outside |got - want| <= tol[i] (tol NULL: the scalar tol0); prints the
 * first few. */
int check_mismatches(const char *what, const float *got, const float *want, const float *tol,
                     float tol0, size_t n);

/* y = x W^T (+ bias) (+ y) through pvk_op_matmul on random W of type t [n][k] and
 * x [m][k], against ref_matmul. Returns the number of mismatches (printing the
 * first) or -1 when a call failed; *chunks (unless NULL) gets W's chunk count. */
int check_matmul(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                 uint64_t seed, uint32_t *chunks);

#endif
