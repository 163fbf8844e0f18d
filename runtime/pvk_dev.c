/* Instance, validation messages, device enumeration and choice, capabilities, and
 * the VkDevice with exactly the features the capabilities say are on. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvk_coopmat.h"
#include "pvk_fault.h"
#include "pvk_impl.h"

static bool has_ext(const VkExtensionProperties *e, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name)) return true;
    return false;
}

/* ----------------------------------------------------------------- instance */

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user) {
    pvk_dev *d = user;
    /* The messenger subscribes to warnings and errors only; info is not a failure. */
    atomic_fetch_add(&d->validation_count, 1);
    pthread_mutex_lock(&d->validation_lock);
    snprintf(d->validation_last, sizeof d->validation_last, "%s", data->pMessage ? data->pMessage : "");
    pthread_mutex_unlock(&d->validation_lock);
    fprintf(stderr, "phivk: validation %s: %s\n",
            (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
            data->pMessage ? data->pMessage : "");
    return VK_FALSE;
}

static VkDebugUtilsMessengerCreateInfoEXT messenger_info(pvk_dev *d) {
    return (VkDebugUtilsMessengerCreateInfoEXT){
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = d};
}

/* An instance at Vulkan 1.3 where the loader has it, else 1.2. With d (validation
 * requested) the Khronos layer and a messenger counting into d. */
static phivk_status instance_create(pvk_dev *d, VkInstance *out, bool *debug_utils) {
    uint32_t loader = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion(&loader) != VK_SUCCESS || loader < VK_API_VERSION_1_2)
        return pvk_fail(PHIVK_ERR_NO_DEVICE, "the Vulkan loader supports version %u.%u; phivk needs 1.2: "
                        "update the Vulkan loader (libvulkan1)",
                        VK_API_VERSION_MAJOR(loader), VK_API_VERSION_MINOR(loader));
    uint32_t n_ext = 0;
    vkEnumerateInstanceExtensionProperties(NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof *ext);
    if (!ext) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory listing Vulkan extensions");
    vkEnumerateInstanceExtensionProperties(NULL, &n_ext, ext);
    const char *names[4];
    uint32_t n_names = 0;
    VkInstanceCreateFlags flags = 0;
    /* Portability drivers (MoltenVK) are only listed when the app asks for them. */
    if (has_ext(ext, n_ext, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        names[n_names++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    *debug_utils = has_ext(ext, n_ext, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (*debug_utils) names[n_names++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    free(ext);

    const char *layer = "VK_LAYER_KHRONOS_validation";
    if (d) {
        uint32_t n_layers = 0;
        vkEnumerateInstanceLayerProperties(&n_layers, NULL);
        VkLayerProperties *layers = calloc(n_layers ? n_layers : 1, sizeof *layers);
        if (!layers) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory listing Vulkan layers");
        vkEnumerateInstanceLayerProperties(&n_layers, layers);
        for (uint32_t i = 0; i < n_layers; i++)
            if (!strcmp(layers[i].layerName, layer)) d->layer_version = layers[i].specVersion;
        free(layers);
        if (!d->layer_version)
            return pvk_fail(PHIVK_ERR_UNSUPPORTED, "validation was requested (PHIVK_VALIDATE=1) but the Khronos "
                            "validation layer %s is not installed: install vulkan-validationlayers "
                            "or unset PHIVK_VALIDATE", layer);
        if (!*debug_utils)
            return pvk_fail(PHIVK_ERR_UNSUPPORTED, "validation was requested but the Vulkan loader lacks "
                            "VK_EXT_debug_utils, which phivk reads validation messages through");
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "phivk",
                             .pEngineName = "phivk",
                             .apiVersion = loader >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2};
    /* Chained so that messages from vkCreateInstance/vkDestroyInstance count too. */
    VkDebugUtilsMessengerCreateInfoEXT mi = messenger_info(d);
    /* Synchronization validation also reports missing or wrong barriers. */
    VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT vf = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT, .pNext = &mi,
                                  .enabledValidationFeatureCount = 1, .pEnabledValidationFeatures = &sync};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pNext = d ? (void *)&vf : NULL,
                               .flags = flags, .pApplicationInfo = &app,
                               .enabledLayerCount = d ? 1 : 0, .ppEnabledLayerNames = &layer,
                               .enabledExtensionCount = n_names, .ppEnabledExtensionNames = names};
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return pvk_fail(PHIVK_ERR_NO_DEVICE, "no Vulkan driver is installed (vkCreateInstance: %s): install "
                        "your GPU's Vulkan driver, or mesa-vulkan-drivers for lavapipe",
                        pvk_vk_result_name(r));
    return r == VK_SUCCESS ? PHIVK_OK : pvk_vk_fail(r, "vkCreateInstance");
}

/* ------------------------------------------------------------- capabilities */

/* What one physical device offers beyond pvk_caps: what device creation needs. */
typedef struct phys_info {
    VkPhysicalDevice pd;
    uint32_t api;               /* min(device, instance) version */
    uint32_t queue_family;
    bool ext_sgsc, ext_int_dot, ext_push, ext_budget, ext_coopmat, ext_coopmat_nv, ext_portability;
    bool ext_sm, ext_amd_core;     /* properties only: how many subgroups run at once */
    bool full_subgroups;
    bool uniform16, uniform8, int16;
} phys_info;

/* Every feature and property struct phivk reads, linked into one pNext chain each. */
typedef struct query {
    VkPhysicalDeviceFeatures2 f;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceVulkan13Features f13;
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT f_sgsc;
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR f_dot;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR f_cm;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV f_cm_nv;
    VkPhysicalDeviceProperties2 p;
    VkPhysicalDeviceVulkan11Properties p11;
    VkPhysicalDeviceVulkan12Properties p12;
    VkPhysicalDeviceVulkan13Properties p13;
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT p_sgsc;
    VkPhysicalDeviceShaderIntegerDotProductPropertiesKHR p_dot;
    VkPhysicalDeviceCooperativeMatrixPropertiesKHR p_cm;
    VkPhysicalDeviceCooperativeMatrixPropertiesNV p_cm_nv;
    VkPhysicalDeviceMemoryProperties2 m;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT m_budget;
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV p_sm;
    VkPhysicalDeviceShaderCorePropertiesAMD p_amd;
} query;

#define LINK(tail, s) do { *(tail) = &(s); (tail) = &(s).pNext; } while (0)

static bool all_format_texel(VkPhysicalDevice pd) {
    static const VkFormat fmts[] = {VK_FORMAT_R32G32B32A32_UINT, VK_FORMAT_R32G32B32A32_SFLOAT,
                                    VK_FORMAT_R32_UINT};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        VkFormatProperties fp;
        vkGetPhysicalDeviceFormatProperties(pd, fmts[i], &fp);
        if (!(fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT)) return false;
    }
    return true;
}

/* PHIVK_MAX_BINDING_BYTES as a byte count; 0 when unset. */
static phivk_status env_binding_limit(uint64_t *out) {
    const char *v = getenv("PHIVK_MAX_BINDING_BYTES");
    *out = 0;
    if (!v || !*v) return PHIVK_OK;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || n < 256 || v[0] == '-')
        return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_MAX_BINDING_BYTES=\"%s\" is not a byte count of at least 256", v);
    *out = n;
    return PHIVK_OK;
}

/* PHIVK_DEVICE_PROFILE: the limits of a class of GPU laid over the real device's, so
 * that lavapipe runs the kernel choices such a GPU gets. A profile only lowers limits
 * and turns features off (it never claims what the device lacks), and it acts where
 * the capabilities are read, so everything that picks a kernel or sizes a buffer
 * sees the profile's figures. */
typedef struct dev_profile {
    const char *name;
    uint32_t max_wg_invocations;
    uint32_t max_shared;            /* bytes */
    uint64_t max_storage_range;     /* bytes of one binding */
    uint64_t max_alloc;             /* bytes of one allocation */
    bool int_dot;                   /* false: turned off */
    bool storage16;                 /* false: turned off */
} dev_profile;

static const dev_profile profiles[] = {
    /* Phone GPUs (Mali, Adreno, PowerVR): 256 invocations per workgroup, the
     * spec's minimum of 16 KiB shared memory, 128 MiB storage bindings, 1 GiB
     * allocations, and drivers that lack integer dot products and 16-bit storage. */
    {"mobile", 256, 16u << 10, 128ull << 20, 1ull << 30, false, false},
};
#define N_PROFILES (sizeof profiles / sizeof profiles[0])

/* The profile PHIVK_DEVICE_PROFILE names; NULL when unset or empty. */
static phivk_status env_profile(const dev_profile **out) {
    const char *v = getenv("PHIVK_DEVICE_PROFILE");
    *out = NULL;
    if (!v || !*v) return PHIVK_OK;
    char known[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < N_PROFILES; i++) {
        if (!strcmp(v, profiles[i].name)) {
            *out = &profiles[i];
            return PHIVK_OK;
        }
        if (len < sizeof known) len += snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", profiles[i].name);
    }
    return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_DEVICE_PROFILE=\"%s\" is not a device profile: use one of %s, "
                    "or unset it for the device's own limits", v, known);
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Lowers c's limits and features to prof's (nothing when prof is NULL). */
static void profile_clamp(const dev_profile *prof, pvk_caps *c) {
    if (!prof) return;
    c->max_wg_invocations = (uint32_t)min_u64(c->max_wg_invocations, prof->max_wg_invocations);
    for (int i = 0; i < 3; i++) c->max_wg_size[i] = (uint32_t)min_u64(c->max_wg_size[i], c->max_wg_invocations);
    c->max_shared = (uint32_t)min_u64(c->max_shared, prof->max_shared);
    c->max_storage_range = min_u64(c->max_storage_range, prof->max_storage_range);
    c->max_alloc = min_u64(c->max_alloc, prof->max_alloc);
    c->int_dot = c->int_dot && prof->int_dot;
    c->int_dot_accel = c->int_dot_accel && c->int_dot;
    c->storage16 = c->storage16 && prof->storage16;
}

/* The shapes the cooperative-matrix extensions that are on list, into c (KHR's, then
 * NV's; none when the driver lacks the query or it fails: the tiled kernel's other
 * paths run). The two property structs differ, so each has its query. */
static phivk_status query_cm_shapes(VkInstance inst, VkPhysicalDevice pd, pvk_caps *c) {
    uint32_t n = 0;
    if (c->coopmat) {
        PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)
            vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
        VkCooperativeMatrixPropertiesKHR *k = NULL;
        if (get && get(pd, &n, NULL) == VK_SUCCESS && n) {
            if (!(k = calloc(n, sizeof *k))) goto oom;
            for (uint32_t i = 0; i < n; i++) k[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
            if (get(pd, &n, k) >= 0) c->n_cm_shapes = pvk_cm_from_khr(k, n, c->cm_shapes, PVK_CM_MAX_SHAPES);
            free(k);
        }
    }
    if (c->coopmat_nv) {
        PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)
            vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
        VkCooperativeMatrixPropertiesNV *v = NULL;
        n = 0;
        if (get && get(pd, &n, NULL) == VK_SUCCESS && n) {
            if (!(v = calloc(n, sizeof *v))) goto oom;
            for (uint32_t i = 0; i < n; i++) v[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
            if (get(pd, &n, v) >= 0)
                c->n_cm_shapes += pvk_cm_from_nv(v, n, c->cm_shapes + c->n_cm_shapes, PVK_CM_MAX_SHAPES - c->n_cm_shapes);
            free(v);
        }
    }
    return PHIVK_OK;
oom:
    return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory listing cooperative matrices");
}

static phivk_status query_device(VkInstance inst, VkPhysicalDevice pd, uint32_t index, uint32_t instance_api,
                               uint32_t layer_version, const dev_profile *prof, pvk_caps *c, phys_info *pi) {
    memset(c, 0, sizeof *c);
    memset(pi, 0, sizeof *pi);
    pi->pd = pd;
    c->index = index;
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    snprintf(c->name, sizeof c->name, "%s", base.deviceName);
    c->type = base.deviceType;
    c->vendor_id = base.vendorID;
    c->device_id = base.deviceID;
    c->api_version = base.apiVersion;
    pi->api = base.apiVersion < instance_api ? base.apiVersion : instance_api;

    uint32_t n_qf = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_qf, NULL);
    VkQueueFamilyProperties qf[32];
    if (n_qf > 32) n_qf = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_qf, qf);
    pi->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < n_qf && pi->queue_family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) pi->queue_family = i;
    c->usable = pi->api >= VK_API_VERSION_1_2 && pi->queue_family != UINT32_MAX;
    if (!c->usable) return PHIVK_OK; /* the 1.1/1.2 structs below are invalid on it */

    uint32_t n_ext = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof *ext);
    if (!ext) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory listing device extensions");
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, ext);
    bool api13 = pi->api >= VK_API_VERSION_1_3;
    pi->ext_sgsc = !api13 && has_ext(ext, n_ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    pi->ext_int_dot = !api13 && has_ext(ext, n_ext, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    pi->ext_push = has_ext(ext, n_ext, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    pi->ext_budget = has_ext(ext, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    /* A validation layer older than VK_KHR_cooperative_matrix (1.3.255) cannot check
     * it and reports its mere use, so a validated run goes without it (NV's stays). */
    pi->ext_coopmat = has_ext(ext, n_ext, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME) &&
                      !(layer_version && layer_version < VK_MAKE_API_VERSION(0, 1, 3, 255));
    pi->ext_coopmat_nv = has_ext(ext, n_ext, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    pi->ext_portability = has_ext(ext, n_ext, "VK_KHR_portability_subset");
    pi->ext_sm = has_ext(ext, n_ext, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME);
    pi->ext_amd_core = has_ext(ext, n_ext, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME);
    free(ext);

    query q = {
        .f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2},
        .f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES},
        .f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES},
        .f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES},
        .f_sgsc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES},
        .f_dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES},
        .f_cm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR},
        .f_cm_nv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV},
        .p = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2},
        .p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES},
        .p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES},
        .p13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_PROPERTIES},
        .p_sgsc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES},
        .p_dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES},
        .p_cm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR},
        .p_cm_nv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV},
        .m = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2},
        .m_budget = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT},
        .p_sm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV},
        .p_amd = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD},
    };
    void **ft = &q.f.pNext, **pt = &q.p.pNext, **mt = &q.m.pNext;
    LINK(ft, q.f11);
    LINK(ft, q.f12);
    LINK(pt, q.p11);
    LINK(pt, q.p12);
    if (api13) {
        LINK(ft, q.f13);
        LINK(pt, q.p13);
    }
    if (pi->ext_sgsc) {
        LINK(ft, q.f_sgsc);
        LINK(pt, q.p_sgsc);
    }
    if (pi->ext_int_dot) {
        LINK(ft, q.f_dot);
        LINK(pt, q.p_dot);
    }
    if (pi->ext_coopmat) {
        LINK(ft, q.f_cm);
        LINK(pt, q.p_cm);
    }
    if (pi->ext_coopmat_nv) {
        LINK(ft, q.f_cm_nv);
        LINK(pt, q.p_cm_nv);
    }
    if (pi->ext_budget) LINK(mt, q.m_budget);
    if (pi->ext_sm) LINK(pt, q.p_sm);
    if (pi->ext_amd_core) LINK(pt, q.p_amd);
    vkGetPhysicalDeviceFeatures2(pd, &q.f);
    vkGetPhysicalDeviceProperties2(pd, &q.p);
    vkGetPhysicalDeviceMemoryProperties2(pd, &q.m);

    const VkPhysicalDeviceLimits *lim = &q.p.properties.limits;
    snprintf(c->driver, sizeof c->driver, "%s %s", q.p12.driverName, q.p12.driverInfo);

    bool sgsc = api13 ? q.f13.subgroupSizeControl : q.f_sgsc.subgroupSizeControl;
    pi->full_subgroups = api13 ? q.f13.computeFullSubgroups : q.f_sgsc.computeFullSubgroups;
    VkShaderStageFlags sgsc_stages = api13 ? q.p13.requiredSubgroupSizeStages : q.p_sgsc.requiredSubgroupSizeStages;
    bool int_dot = api13 ? q.f13.shaderIntegerDotProduct : q.f_dot.shaderIntegerDotProduct;
    bool int_dot_accel = api13 ? q.p13.integerDotProduct4x8BitPackedSignedAccelerated
                               : q.p_dot.integerDotProduct4x8BitPackedSignedAccelerated;

    c->fp16 = q.f12.shaderFloat16 && !pvk_env_flag("PHIVK_DISABLE_F16");
    c->storage16 = q.f11.storageBuffer16BitAccess && !pvk_env_flag("PHIVK_DISABLE_F16");
    c->storage8 = q.f12.storageBuffer8BitAccess && q.f12.shaderInt8 && !pvk_env_flag("PHIVK_DISABLE_INT8");
    c->int_dot = int_dot && !pvk_env_flag("PHIVK_DISABLE_INT_DOT");
    c->int_dot_accel = c->int_dot && int_dot_accel;

    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    bool sg_compute = q.p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
    c->subgroup = sg_compute && (q.p11.subgroupSupportedOperations & need) == need &&
                  !pvk_env_flag("PHIVK_DISABLE_SUBGROUP");
    c->subgroup_ops = c->subgroup ? q.p11.subgroupSupportedOperations : 0;
    c->subgroup_size = q.p11.subgroupSize;
    c->subgroup_min = c->subgroup_max = q.p11.subgroupSize;
    if (sgsc) {
        c->subgroup_min = api13 ? q.p13.minSubgroupSize : q.p_sgsc.minSubgroupSize;
        c->subgroup_max = api13 ? q.p13.maxSubgroupSize : q.p_sgsc.maxSubgroupSize;
    }
    c->subgroup_size_control = sgsc && (sgsc_stages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                               !pvk_env_flag("PHIVK_DISABLE_SUBGROUP_SIZE_CONTROL");
    /* Sizes split-K attention for the device (pvk_ops.c): vendors that say it. */
    if (pi->ext_sm)
        c->resident_subgroups = q.p_sm.shaderSMCount * q.p_sm.shaderWarpsPerSM;
    else if (pi->ext_amd_core)
        c->resident_subgroups = q.p_amd.shaderEngineCount * q.p_amd.shaderArraysPerEngineCount *
                                q.p_amd.computeUnitsPerShaderArray * q.p_amd.simdPerComputeUnit *
                                q.p_amd.wavefrontsPerSimd;
    pi->full_subgroups = pi->full_subgroups && c->subgroup_size_control;
    bool cm_off = pvk_env_flag("PHIVK_DISABLE_COOPMAT");
    c->coopmat = pi->ext_coopmat && q.f_cm.cooperativeMatrix &&
                 (q.p_cm.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && !cm_off;
    c->coopmat_nv = pi->ext_coopmat_nv && q.f_cm_nv.cooperativeMatrix &&
                    (q.p_cm_nv.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && !cm_off;
    phivk_status s = query_cm_shapes(inst, pd, c);
    if (s) return s;
    c->push_descriptor = pi->ext_push && !pvk_env_flag("PHIVK_DISABLE_PUSH_DESCRIPTOR");
    c->texel = all_format_texel(pd) && !pvk_env_flag("PHIVK_DISABLE_TEXEL");
    c->memory_budget = pi->ext_budget && !pvk_env_flag("PHIVK_DISABLE_MEMORY_BUDGET");
    c->timestamps = qf[pi->queue_family].timestampValidBits > 0 && lim->timestampPeriod > 0;
    c->timestamp_period = lim->timestampPeriod;

    c->max_storage_range = lim->maxStorageBufferRange;
    c->max_alloc = q.p11.maxMemoryAllocationSize;
    c->storage_align = lim->minStorageBufferOffsetAlignment;
    c->texel_align = lim->minTexelBufferOffsetAlignment;
    c->max_texel_elems = lim->maxTexelBufferElements;
    c->max_shared = lim->maxComputeSharedMemorySize;
    c->max_wg_invocations = lim->maxComputeWorkGroupInvocations;
    memcpy(c->max_wg_size, lim->maxComputeWorkGroupSize, sizeof c->max_wg_size);
    memcpy(c->max_wg_count, lim->maxComputeWorkGroupCount, sizeof c->max_wg_count);
    profile_clamp(prof, c);
    /* Device creation enables what the (possibly clamped) capabilities keep. */
    pi->uniform16 = c->storage16 && q.f11.uniformAndStorageBuffer16BitAccess;
    pi->uniform8 = c->storage8 && q.f12.uniformAndStorageBuffer8BitAccess;
    pi->int16 = c->storage16 && q.f.features.shaderInt16;

    uint64_t env_limit;
    s = env_binding_limit(&env_limit);
    if (s) return s;
    c->max_binding_bytes = c->max_storage_range;
    if (env_limit && env_limit < c->max_binding_bytes) c->max_binding_bytes = env_limit;
    c->max_binding_bytes &= ~(uint64_t)255;

    const VkPhysicalDeviceMemoryProperties *mp = &q.m.memoryProperties;
    c->heap_count = mp->memoryHeapCount;
    uint32_t largest_local = UINT32_MAX;
    for (uint32_t h = 0; h < mp->memoryHeapCount; h++) {
        c->heaps[h].size = mp->memoryHeaps[h].size;
        c->heaps[h].device_local = mp->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
        c->heaps[h].budget = c->memory_budget ? q.m_budget.heapBudget[h] : c->heaps[h].size;
        c->heaps[h].usage = c->memory_budget ? q.m_budget.heapUsage[h] : 0;
        if (c->heaps[h].device_local &&
            (largest_local == UINT32_MAX || c->heaps[h].size > c->heaps[largest_local].size))
            largest_local = h;
    }
    /* UMA: the main device-local heap is also mappable, so weights need no staging.
     * (A small host-visible window of a discrete card's VRAM does not count, and
     * neither does a discrete card whose whole VRAM is mappable (resizable BAR):
     * host reads of it are slow, so it keeps the staging path.) */
    const VkMemoryPropertyFlags uma = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                      VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (uint32_t t = 0; t < mp->memoryTypeCount; t++)
        if ((mp->memoryTypes[t].propertyFlags & uma) == uma && mp->memoryTypes[t].heapIndex == largest_local)
            c->uma = true;
    c->uma = c->uma && c->type != VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU && !pvk_env_flag("PHIVK_DISABLE_UMA");
    return PHIVK_OK;
}

/* Every physical device of inst with its caps; *n may be 0. Caller frees both arrays. */
static phivk_status query_all(VkInstance inst, uint32_t layer_version, pvk_caps **caps, phys_info **info,
                              uint32_t *n) {
    *caps = NULL;
    *info = NULL;
    *n = 0;
    uint32_t count = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, &count, NULL);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkEnumeratePhysicalDevices");
    VkPhysicalDevice *pd = calloc(count ? count : 1, sizeof *pd);
    pvk_caps *c = calloc(count ? count : 1, sizeof *c);
    phys_info *pi = calloc(count ? count : 1, sizeof *pi);
    phivk_status s = PHIVK_ERR_HOST_MEMORY;
    if (!pd || !c || !pi) {
        pvk_fail(s, "out of host memory listing Vulkan devices");
        goto fail;
    }
    r = vkEnumeratePhysicalDevices(inst, &count, pd);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        s = pvk_vk_fail(r, "vkEnumeratePhysicalDevices");
        goto fail;
    }
    uint32_t instance_api = VK_API_VERSION_1_2;
    vkEnumerateInstanceVersion(&instance_api);
    instance_api = instance_api >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
    const dev_profile *prof;
    if ((s = env_profile(&prof))) goto fail;
    for (uint32_t i = 0; i < count; i++)
        if ((s = query_device(inst, pd[i], i, instance_api, layer_version, prof, &c[i], &pi[i]))) goto fail;
    free(pd);
    *caps = c;
    *info = pi;
    *n = count;
    return PHIVK_OK;
fail:
    free(pd);
    free(c);
    free(pi);
    return s;
}

phivk_status pvk_dev_enumerate(pvk_caps **out, uint32_t *n) {
    *out = NULL;
    *n = 0;
    VkInstance inst;
    bool debug_utils;
    phivk_status s = instance_create(NULL, &inst, &debug_utils);
    if (s) return s;
    phys_info *info;
    s = query_all(inst, 0, out, &info, n);
    free(info);
    vkDestroyInstance(inst, NULL);
    return s;
}

/* ------------------------------------------------------------------- choice */

static int type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

const char *pvk_dev_type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static phivk_status no_match(const pvk_caps *caps, uint32_t n, const char *why) {
    char list[400] = "";
    size_t len = 0;
    for (uint32_t i = 0; i < n && len < sizeof list; i++)
        len += snprintf(list + len, sizeof list - len, "%s%u: %s (%s%s)", i ? "; " : "", i, caps[i].name,
                        pvk_dev_type_name(caps[i].type), caps[i].usable ? "" : ", unusable: Vulkan < 1.2");
    return pvk_fail(PHIVK_ERR_NO_DEVICE, "%s; devices: %s", why, n ? list : "none");
}

phivk_status pvk_dev_choose(const pvk_caps *caps, uint32_t n, const char *select, uint32_t *index) {
    const char *src = "params.select";
    if (!select || !*select) {
        select = getenv("PHIVK_DEVICE");
        src = "PHIVK_DEVICE";
    }
    char why[400];
    if (!select || !*select) {
        int best = -1;
        for (uint32_t i = 0; i < n; i++)
            if (caps[i].usable && (best < 0 || type_rank(caps[i].type) > type_rank(caps[best].type))) best = (int)i;
        if (best < 0) return no_match(caps, n, "no Vulkan 1.2 device with a compute queue was found");
        *index = (uint32_t)best;
        return PHIVK_OK;
    }
    bool digits = true;
    for (const char *p = select; *p; p++) digits &= isdigit((unsigned char)*p) != 0;
    for (uint32_t i = 0; i < n; i++) {
        bool match = digits ? strtoul(select, NULL, 10) == i : strcasestr(caps[i].name, select) != NULL;
        if (!match) continue;
        if (!caps[i].usable) {
            snprintf(why, sizeof why, "device %u (%s) chosen by %s=\"%s\" lacks Vulkan 1.2 or a compute queue",
                     i, caps[i].name, src, select);
            return no_match(caps, n, why);
        }
        *index = i;
        return PHIVK_OK;
    }
    snprintf(why, sizeof why, "no Vulkan device matches %s=\"%s\" (an index or part of a name)", src, select);
    return no_match(caps, n, why);
}

/* ------------------------------------------------------------------- device */

pvk_dev_params pvk_dev_default_params(void) { return (pvk_dev_params){0}; }

static phivk_status device_create(pvk_dev *d, const phys_info *pi) {
    const pvk_caps *c = &d->caps;
    bool api13 = pi->api >= VK_API_VERSION_1_3;
    const char *ext[8];
    uint32_t n_ext = 0;
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT f_sgsc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR f_dot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR f_cm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV f_cm_nv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    void **tail = &f.pNext;
    LINK(tail, f11);
    LINK(tail, f12);

    f.features.shaderInt16 = pi->int16;
    f11.storageBuffer16BitAccess = c->storage16;
    f11.uniformAndStorageBuffer16BitAccess = pi->uniform16;
    f12.shaderFloat16 = c->fp16;
    f12.shaderInt8 = c->storage8;
    f12.storageBuffer8BitAccess = c->storage8;
    f12.uniformAndStorageBuffer8BitAccess = pi->uniform8;
    if (api13) {
        LINK(tail, f13);
        f13.subgroupSizeControl = c->subgroup_size_control;
        f13.computeFullSubgroups = pi->full_subgroups;
        f13.shaderIntegerDotProduct = c->int_dot;
    } else {
        if (c->subgroup_size_control) {
            ext[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
            f_sgsc.subgroupSizeControl = VK_TRUE;
            f_sgsc.computeFullSubgroups = pi->full_subgroups;
            LINK(tail, f_sgsc);
        }
        if (c->int_dot) {
            ext[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
            f_dot.shaderIntegerDotProduct = VK_TRUE;
            LINK(tail, f_dot);
        }
    }
    if (c->coopmat) {
        ext[n_ext++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
        f_cm.cooperativeMatrix = VK_TRUE;
        LINK(tail, f_cm);
    }
    if (c->coopmat_nv) {
        ext[n_ext++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
        f_cm_nv.cooperativeMatrix = VK_TRUE;
        LINK(tail, f_cm_nv);
    }
    if (c->push_descriptor) ext[n_ext++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (c->memory_budget) ext[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    /* The spec requires enabling it wherever a driver exposes it (MoltenVK). */
    if (pi->ext_portability) ext[n_ext++] = "VK_KHR_portability_subset";

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = pi->queue_family, .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = n_ext, .ppEnabledExtensionNames = ext};
    VkResult r = vkCreateDevice(pi->pd, &ci, NULL, &d->vk);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateDevice");
    vkGetDeviceQueue(d->vk, pi->queue_family, 0, &d->queue);
    if (c->push_descriptor)
        d->push_descriptor = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(d->vk, "vkCmdPushDescriptorSetKHR");
    if (c->push_descriptor && !d->push_descriptor)
        return pvk_fail(PHIVK_ERR_VULKAN, "the driver lists VK_KHR_push_descriptor but has no vkCmdPushDescriptorSetKHR");
    return PHIVK_OK;
}

phivk_status pvk_dev_create(const pvk_dev_params *p, pvk_dev **out) {
    pvk_dev_params defaults = pvk_dev_default_params();
    if (!p) p = &defaults;
    *out = NULL;
    pvk_dev *d = calloc(1, sizeof *d);
    if (!d) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory creating a device");
    pthread_mutex_init(&d->validation_lock, NULL);
    phivk_status s = pvk_fault_init();
    if (s) {
        pthread_mutex_destroy(&d->validation_lock);
        free(d);
        return s;
    }
    bool validate = p->validate || pvk_env_flag("PHIVK_VALIDATE");
    bool debug_utils;
    pvk_caps *caps = NULL;
    phys_info *info = NULL;
    uint32_t n = 0, chosen;
    s = instance_create(validate ? d : NULL, &d->instance, &debug_utils);
    if (s) goto fail;
    if (debug_utils)
        d->set_name = (PFN_vkSetDebugUtilsObjectNameEXT)vkGetInstanceProcAddr(d->instance, "vkSetDebugUtilsObjectNameEXT");
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            d->instance, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = messenger_info(d);
        VkResult r = create ? create(d->instance, &mi, NULL, &d->messenger) : VK_ERROR_EXTENSION_NOT_PRESENT;
        if (r != VK_SUCCESS) {
            s = pvk_vk_fail(r, "vkCreateDebugUtilsMessengerEXT");
            goto fail;
        }
    }
    if ((s = query_all(d->instance, d->layer_version, &caps, &info, &n))) goto fail;
    if ((s = pvk_dev_choose(caps, n, p->select, &chosen))) goto fail;
    d->caps = caps[chosen];
    d->phys = info[chosen].pd;
    d->queue_family = info[chosen].queue_family;
    d->full_subgroups = info[chosen].full_subgroups;
    if ((s = device_create(d, &info[chosen]))) goto fail;
    pvk_name(d, VK_OBJECT_TYPE_DEVICE, (uint64_t)(uintptr_t)d->vk, "phivk %s", d->caps.name);
    if ((s = pvk_mem_init(d))) goto fail;
    pvk_pipe_cache_open(d);
    free(caps);
    free(info);
    *out = d;
    return PHIVK_OK;
fail:
    free(caps);
    free(info);
    pvk_dev_destroy(d);
    return s;
}

void pvk_dev_destroy(pvk_dev *d) {
    if (!d) return;
    if (d->vk) {
        vkDeviceWaitIdle(d->vk);
        pvk_cmd_destroy(d->xfer);
        pvk_buf_destroy(d, &d->staging);
        pvk_pipes_release(d);
        pvk_mem_release(d);
        vkDestroyDevice(d->vk, NULL);
    }
    if (d->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            d->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(d->instance, d->messenger, NULL);
    }
    if (d->instance) vkDestroyInstance(d->instance, NULL);
    pthread_mutex_destroy(&d->validation_lock);
    free(d);
}

const pvk_caps *pvk_dev_caps(const pvk_dev *d) { return &d->caps; }
VkDevice pvk_dev_vk(const pvk_dev *d) { return d->vk; }
uint64_t pvk_dev_validation_count(const pvk_dev *d) { return atomic_load(&d->validation_count); }
const char *pvk_dev_validation_last(const pvk_dev *d) { return d->validation_last; }
