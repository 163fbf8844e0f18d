#include "pvk_bench.h"

#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

phivk_status pvk_bench_copy(pvk_dev *d, uint64_t bytes, int reps, double *gb_per_s) {
    *gb_per_s = 0;
    if (bytes < 4 || reps < 1)
        return pvk_fail(PHIVK_ERR_INVALID, "copy bandwidth: needs at least 4 bytes and 1 repetition");
    bytes &= ~(uint64_t)3;
    pvk_buf src = {0}, dst = {0};
    pvk_cmd *c = NULL;
    phivk_status st;
    if ((st = pvk_buf_create(d, bytes, PVK_MEM_DEVICE, &src)) ||
        (st = pvk_buf_create(d, bytes, PVK_MEM_DEVICE, &dst)) || (st = pvk_cmd_create(d, &c)))
        goto done;
    /* Both buffers written once, so no copy below pays for first-touch page faults. */
    if ((st = pvk_cmd_begin(c))) goto done;
    pvk_cmd_fill(c, &src, 0, bytes, 0x3f800000u);
    pvk_cmd_fill(c, &dst, 0, bytes, 0);
    if ((st = pvk_cmd_submit(c))) goto done;
    /* The best wall time of a submit of 1 and of 1 + EXTRA copies: their difference
     * is EXTRA copies without the submit and wait, which on a discrete GPU cost more
     * than one copy of a few hundred MiB. */
    enum { EXTRA = 8 };
    double best[2] = {0, 0};
    for (int i = 0; i <= reps; i++) {
        for (int k = 0; k < 2; k++) {
            if ((st = pvk_cmd_begin(c))) goto done;
            for (int j = 0; j < 1 + k * EXTRA; j++) {
                if (j) pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE); /* orders the copies' writes */
                pvk_cmd_copy(c, &src, 0, &dst, 0, bytes);
            }
            double t0 = now_s();
            if ((st = pvk_cmd_submit(c))) goto done;
            double dt = now_s() - t0;
            if (i > 0 && (best[k] == 0 || dt < best[k])) best[k] = dt; /* i == 0 warms up */
        }
    }
    double per_copy = (best[1] - best[0]) / EXTRA;
    if (per_copy <= 0) per_copy = best[1] / (1 + EXTRA); /* timer noise on a fast device */
    *gb_per_s = (double)bytes / per_copy * 1e-9;
done:
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &dst);
    pvk_buf_destroy(d, &src);
    return st;
}
