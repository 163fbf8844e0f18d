/* GPU-vs-reference checks shared by the kernel test binaries. Tolerances are
 * explained at the top of test_kernels.c. */
#ifndef PHIVK_TESTS_KERNELS_CHECK_H
#define PHIVK_TESTS_KERNELS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* The same with x also made into int8 on the device (pvk_op_act_q8) and given to the
 * op in both forms: where the op reads the int8 one (pvk_ops_reads_q8), the
 * reference multiplies the values it holds. */
int check_matmul_q8(pvk_cmd *cmd, pvk_ops *o, pvk_type t, int m, int n, int k, bool bias, bool acc,
                    uint64_t seed);
/* The same with x the input of act (GELU: [m][k]; SWIGLU: [m][2k]), which the op
 * applies in its prologue (pvk_input pre), against the int8 that pvk_op_act_q8 makes
 * of it. */
int check_matmul_act(pvk_cmd *cmd, pvk_ops *o, pvk_type t, pvk_act act, int m, int n, int k, bool acc,
                     uint64_t seed);
/* The same with x the input of a norm (RMS with a weight, layer with weight and
 * bias), which the op applies in its prologue (pvk_input norm), against the int8
 * that the standalone norm (pvk_op_*norm_q8) makes of it. */
int check_matmul_norm(pvk_cmd *cmd, pvk_ops *o, pvk_type t, pvk_norm form, int m, int n, int k, bool acc,
                      uint64_t seed);
/* x[i] = d * q[i] of an int8 buffer (pvk_q8_bytes(rows, n) bytes, read back). */
void check_q8_decode(const uint8_t *q8, int rows, int n, float *x);

/* A discrete GPU's tuning on any device: several subgroups per workgroup (norms,
 * matvec), matvec up to m 8, the tiled kernel's 64x64x16 tile above. */
pvk_ops_tuning check_gpu_like_tuning(const pvk_caps *caps);
/* t[0]: the device's defaults with lanes splitting K at every m (mv_lane_rows 0), so
 * the int8 and repacked paths run (lanes owning rows read f32 in GGUF's layout too);
 * t[1]: check_gpu_like_tuning. */
void check_k_split_tunings(const pvk_caps *caps, pvk_ops_tuning t[2]);
/* The shared device (test_gpu) with an op layer per tuning t[0..n) (n <= 4) in ops
 * and a command object, made on the first call and destroyed at exit; later calls
 * return the device. NULL (the reason printed) when any of it fails. */
pvk_dev *check_setup(int n, const pvk_ops_tuning *t, pvk_ops **ops, pvk_cmd **cmd);

#endif
