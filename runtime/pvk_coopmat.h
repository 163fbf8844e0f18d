/* Cooperative matrices: what the device lists (VK_KHR_cooperative_matrix and
 * VK_NV_cooperative_matrix) as pvk_cm_shape entries,
 * and the form of the tiled matmul (shaders/matmul.comp -DCOOPMAT, pvk_cm_forms)
 * that runs on them. Debian 12's Vulkan headers (1.3.239) predate the KHR
 * extension (1.3.255): what pvk_dev.c needs of it is declared here, as the
 * registry fixes it, and only where the headers lack it. */
#ifndef PVK_COOPMAT_H
#define PVK_COOPMAT_H

#include "pvk.h"

#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506002)
/* The KHR enums took the NV ones' values (the registry aliases them). */
typedef VkComponentTypeNV VkComponentTypeKHR;
typedef VkScopeNV VkScopeKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    VkComponentTypeKHR AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    VkShaderStageFlags cooperativeMatrixSupportedStages;
} VkPhysicalDeviceCooperativeMatrixPropertiesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice physicalDevice, uint32_t *pPropertyCount, VkCooperativeMatrixPropertiesKHR *pProperties);
#endif

/* The component types and scope the matmul forms need (VkComponentTypeKHR, VkScopeKHR). */
enum { PVK_CM_FP16 = 0, PVK_CM_FP32 = 1, PVK_CM_SCOPE_SUBGROUP = 3 };

/* The device's list as pvk_cm_shapes (nv: which extension listed it), at most cap of
 * them; returns how many were written. Entries past cap are dropped (the forms phivk
 * builds are few and common, listed early by every driver seen). */
uint32_t pvk_cm_from_khr(const VkCooperativeMatrixPropertiesKHR *p, uint32_t n, pvk_cm_shape *out, uint32_t cap);
uint32_t pvk_cm_from_nv(const VkCooperativeMatrixPropertiesNV *p, uint32_t n, pvk_cm_shape *out, uint32_t cap);

/* The form (pvk_cm_forms) the tiled matmul takes on a device with caps c: one whose
 * extension is on (caps.coopmat for KHR, caps.coopmat_nv for NV) and whose M x N x K
 * that extension lists as fp16 x fp16 + f32 -> f32 at subgroup scope (the kernels
 * accumulate in f32; shapes with fp16 accumulators or results, or another scope, do
 * not match). Needs caps.fp16 (the tiles are fp16 in shared memory) and
 * caps.subgroup (subgroups own the blocks). Of several, the one with most products
 * per instruction (M N K). PVK_CM_COUNT: none, the tiled kernel's fp16/f32 path
 * runs. The build has NV forms only (shaders/kernels.py says why): a KHR-only
 * driver (AMD, Intel) gets none. */
pvk_cm pvk_cm_choose(const pvk_caps *c);

#endif
