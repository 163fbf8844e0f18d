#include "lsan_libs.h"

#include <dlfcn.h>
#include <stddef.h>

void test_keep_system_libraries_loaded(void) {
    static const char *const libs[] = {
        "libvulkan_lvp.so", "libvulkan_intel.so", "libvulkan_intel_hasvk.so", "libvulkan_radeon.so",
        "libVkLayer_khronos_validation.so", "libVkLayer_MESA_device_select.so", "libGL.so.1",
        "libGLX_mesa.so.0", "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so", "libX11.so.6",
        "libXext.so.6", "libXcursor.so.1", "libXi.so.6", "libXrandr.so.2", "libXss.so.1",
        "libXfixes.so.3", "libXinerama.so.1", "libXrender.so.1", "libxkbcommon.so.0",
        "libdbus-1.so.3", NULL};
    for (int i = 0; libs[i]; i++) dlopen(libs[i], RTLD_NOW | RTLD_NODELETE);
}
