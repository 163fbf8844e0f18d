/* What every Vulkan-calling file of the runtime shares: a failed VkResult as a status
 * with a message in words, whether the device was lost, and debug names on Vulkan
 * objects. Below pvk_dev, pvk_buf,
 * pvk_cmd and pvk_pipe, so none of them needs another to report an error. */
#include <stdarg.h>
#include <stdio.h>

#include "pvk_impl.h"

const char *pvk_vk_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION";
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED";
    default: return "VK_ERROR_UNKNOWN";
    }
}

phivk_status pvk_vk_fail(VkResult r, const char *what) {
    switch (r) {
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return pvk_fail(PHIVK_ERR_DEVICE_MEMORY, "%s: the GPU is out of memory (%s): free other GPU "
                        "work or use a smaller model or context", what, pvk_vk_result_name(r));
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "%s: out of host memory (%s)", what, pvk_vk_result_name(r));
    case VK_ERROR_DEVICE_LOST:
        return pvk_fail(PHIVK_ERR_DEVICE_LOST, "%s: the driver lost the device (%s): a kernel crashed or "
                        "timed out; restart the program", what, pvk_vk_result_name(r));
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_FORMAT_NOT_SUPPORTED:
    case VK_ERROR_INCOMPATIBLE_DRIVER:
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s: not supported by the driver (%s)", what, pvk_vk_result_name(r));
    default:
        return pvk_fail(PHIVK_ERR_VULKAN, "%s failed: %s", what, pvk_vk_result_name(r));
    }
}

void pvk_name(const pvk_dev *d, VkObjectType type, uint64_t handle, const char *fmt, ...) {
    if (!d->set_name || !handle) return;
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    VkDebugUtilsObjectNameInfoEXT info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_OBJECT_NAME_INFO_EXT,
        .objectType = type, .objectHandle = handle, .pObjectName = name};
    d->set_name(d->vk, &info);
}

phivk_status pvk_dev_usable(const pvk_dev *d) {
    if (!d->lost) return PHIVK_OK;
    return pvk_fail(PHIVK_ERR_DEVICE_LOST, "the driver lost %s earlier (VK_ERROR_DEVICE_LOST): nothing more "
                    "runs on it; open the device again (restart the program or reload the model)", d->caps.name);
}

bool pvk_dev_lost(const pvk_dev *d) { return d->lost; }
