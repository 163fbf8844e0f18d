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

/* What the rounding of the kernels' sums scales with, per weight of type t with
 * exact values w[0..n) (rows of whole blocks). Plain types: |w|. Block types are
 * summed as a*sum(q*x) + b*sum(x) per 16 elements (matvec.comp), whose terms reach
 * |a q| + |b| <= |w| + 2|b|; every format's offset b is at most about the largest
 * |w| of its 32-element group (Q4_0/Q5_0: 8d, 16d = the block's amax; Q4_1/Q5_1:
 * the block's min; K-quants: the sub-block's rounded-up min or 32 d sc), so
 * |w| + 2.2 max|w| of the group bounds it. */
void check_weight_magnitudes(pvk_type t, const float *w, float *mag, size_t n);

/* y = x W^T (+ bias) (+ y) through pvk_op_matmul on random W of type t [n][k] and
 * x [m][k], against ref_matmul. Returns the number of mismatches (printing the
 * first) or -1 when a call failed; *chunks (unless NULL) gets W's chunk count. */
int check_matmul(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                 uint64_t seed, uint32_t *chunks);

#endif
