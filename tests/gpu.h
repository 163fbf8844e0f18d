/* The device every GPU test shares: created on first use with the Khronos validation
 * layer on (select it with PHIVK_DEVICE), destroyed at exit. While it exists, any new
 * validation warning or error fails the test case that caused it, with the message.
 * Link tests/gpu.c into the test binary. */
#ifndef PHIVK_TESTS_GPU_H
#define PHIVK_TESTS_GPU_H

#include "phivk.h"
#include "pvk.h"

/* NULL (with the reason printed) when no device can be opened: use
 * REQUIRE(d = test_gpu(), "no device") so the case fails rather than crashes. */
pvk_dev *test_gpu(void);

/* NULL, or a message naming validation messages that arrived on d since *seen
 * (which it updates): for tests that open devices of their own. */
const char *test_gpu_new_messages(const pvk_dev *d, uint64_t *seen);

/* The same for the public API: a runtime with validation on, shared by the binary's
 * cases, freed at exit (before the loader unloads the layer); exits when no device
 * opens, since every case of such a binary needs it. */
phivk_runtime *test_gpu_runtime(void);

#endif
