#include "gpu.h"

#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "model_impl.h"

static pvk_dev *shared;
static uint64_t shared_seen;

const char *test_gpu_new_messages(const pvk_dev *d, uint64_t *seen) {
    static char msg[2400];
    uint64_t n = pvk_dev_validation_count(d);
    if (n == *seen) return NULL;
    snprintf(msg, sizeof msg, "%llu new validation message(s); the last: %s", (unsigned long long)(n - *seen),
             pvk_dev_validation_last(d));
    *seen = n;
    return msg;
}

static const char *after_each(void) { return shared ? test_gpu_new_messages(shared, &shared_seen) : NULL; }

static void destroy_shared(void) {
    pvk_dev_destroy(shared);
    shared = NULL;
}

pvk_dev *test_gpu(void) {
    if (shared) return shared;
    pvk_dev_params p = pvk_dev_default_params();
    p.validate = true;
    if (pvk_dev_create(&p, &shared)) {
        printf("    test_gpu: %s\n", pvk_errmsg());
        return NULL;
    }
    harness_after_each = after_each;
    atexit(destroy_shared);
    return shared;
}

static phivk_runtime *shared_rt;

static const char *after_each_rt(void) {
    return shared_rt ? test_gpu_new_messages(shared_rt->dev, &shared_seen) : NULL;
}

static void free_shared_rt(void) {
    phivk_runtime_free(shared_rt);
    shared_rt = NULL;
}

phivk_runtime *test_gpu_runtime(void) {
    if (shared_rt) return shared_rt;
    phivk_runtime_params p = phivk_runtime_default_params();
    p.validate = true;
    shared_rt = phivk_runtime_create(&p);
    if (!shared_rt) {
        printf("cannot open a Vulkan device: %s\n", phivk_last_error());
        exit(1);
    }
    harness_after_each = after_each_rt;
    atexit(free_shared_rt);
    return shared_rt;
}
