/* For tests built with AddressSanitizer: LeakSanitizer reports at exit, after the
 * Vulkan driver and layer (and the X11 libraries SDL loads itself) are unloaded
 * again; their frames would then have no module name for tests/chat/lsan.supp to
 * match. Call this before they load: RTLD_NODELETE keeps them mapped. Link
 * tests/lsan_libs.c. */
#ifndef PHIVK_TESTS_LSAN_LIBS_H
#define PHIVK_TESTS_LSAN_LIBS_H

void test_keep_system_libraries_loaded(void);

#endif
