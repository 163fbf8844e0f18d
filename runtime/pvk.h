/* The Vulkan runtime: device choice and capabilities, memory, pipelines and
 * command recording. Knows tensors and kernels, nothing about language models.
 *
 * Ownership: every *_create has a *_destroy that accepts NULL. Objects made by a
 * pvk_dev (buffers, pipelines, command objects) must be destroyed before it.
 * Every function that can fail returns pvk_status and sets pvk_errmsg(). */
#ifndef PVK_H
#define PVK_H

#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "pvk_err.h"
#include "pvk_type.h"

/* ------------------------------------------------------------------ device */

/* Everything phivk decides kernel variants by, filled from one pNext query chain.
 * Optional features read false when the device lacks them OR when the user turned
 * them off (PHIVK_DISABLE_F16, _INT8, _INT_DOT, _SUBGROUP, _SUBGROUP_SIZE_CONTROL,
 * _COOPMAT, _PUSH_DESCRIPTOR, _UMA, _TEXEL, _MEMORY_BUDGET). */
typedef struct pvk_caps {
    uint32_t index;                 /* position in vkEnumeratePhysicalDevices */
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 2];
    VkPhysicalDeviceType type;
    uint32_t vendor_id, device_id, api_version;

    bool fp16;                      /* shaderFloat16 arithmetic */
    bool storage16;                 /* 16-bit storage buffer access */
    bool storage8;                  /* 8-bit storage buffer access + shaderInt8 */
    bool int_dot;                   /* shaderIntegerDotProduct */
    bool int_dot_accel;             /* 4x8 packed signed dot is hardware accelerated */
    bool subgroup;                  /* basic + arithmetic subgroup ops in compute */
    uint32_t subgroup_ops;          /* VkSubgroupFeatureFlags in compute */
    uint32_t subgroup_size;         /* default size */
    uint32_t subgroup_min, subgroup_max;
    bool subgroup_size_control;     /* can require a size per pipeline */
    bool coopmat;                   /* VK_KHR_cooperative_matrix */
    bool push_descriptor;           /* VK_KHR_push_descriptor */
    bool texel;                     /* uniform texel buffers of RGBA32UI/RGBA32F usable */
    bool uma;                       /* a device-local heap is also host-visible */
    bool memory_budget;             /* VK_EXT_memory_budget */
    bool timestamps;
    float timestamp_period;         /* ns per tick */

    uint64_t max_storage_range;     /* maxStorageBufferRange */
    uint64_t max_binding_bytes;     /* what phivk binds at most: the range above,
                                       lowered by PHIVK_MAX_BINDING_BYTES */
    uint64_t max_alloc;             /* maxMemoryAllocationSize */
    uint64_t storage_align;         /* minStorageBufferOffsetAlignment */
    uint64_t texel_align;           /* minTexelBufferOffsetAlignment */
    uint32_t max_texel_elems;       /* maxTexelBufferElements */
    uint32_t max_shared;            /* maxComputeSharedMemorySize */
    uint32_t max_wg_invocations;
    uint32_t max_wg_size[3];
    uint32_t max_wg_count[3];

    uint32_t heap_count;
    struct {
        uint64_t size;
        uint64_t budget;            /* from VK_EXT_memory_budget, else size */
        uint64_t usage;
        bool device_local;
    } heaps[VK_MAX_MEMORY_HEAPS];

    bool usable;                    /* Vulkan >= 1.2 with a compute queue: phivk runs on it */
} pvk_caps;

/* Lists every Vulkan device. *out is malloc'd (caller frees); *n may be 0. */
pvk_status pvk_dev_enumerate(pvk_caps **out, uint32_t *n);

typedef struct pvk_dev_params {
    /* NULL: PHIVK_DEVICE, else the best (discrete > integrated > virtual > cpu).
     * "N": the index N. Otherwise a case-insensitive substring of the name. */
    const char *select;
    /* Khronos validation layer; also on when PHIVK_VALIDATE=1. */
    bool validate;
} pvk_dev_params;

pvk_dev_params pvk_dev_default_params(void);
/* The device pvk_dev_create would open for select (same rules as params.select)
 * among caps[0..n-1]; PVK_ERR_NO_DEVICE listing the devices when none matches. */
pvk_status pvk_dev_choose(const pvk_caps *caps, uint32_t n, const char *select, uint32_t *index);
/* "discrete", "integrated", "virtual", "cpu" or "other". */
const char *pvk_dev_type_name(VkPhysicalDeviceType t);
typedef struct pvk_dev pvk_dev;
pvk_status pvk_dev_create(const pvk_dev_params *p, pvk_dev **out);
void pvk_dev_destroy(pvk_dev *d);
const pvk_caps *pvk_dev_caps(const pvk_dev *d);
/* Whether a submit reported VK_ERROR_DEVICE_LOST (or PHIVK_FAULT=device_lost said
 * so): every later submit and allocation on d fails with PVK_ERR_DEVICE_LOST. */
bool pvk_dev_lost(const pvk_dev *d);
/* Validation-layer messages (warnings and errors) seen so far; the last one's text. */
uint64_t pvk_dev_validation_count(const pvk_dev *d);
const char *pvk_dev_validation_last(const pvk_dev *d);
VkDevice pvk_dev_vk(const pvk_dev *d);

/* ------------------------------------------------------------------ memory */

typedef enum pvk_mem {
    PVK_MEM_DEVICE,   /* device-local; on UMA also host-mapped (map != NULL) */
    PVK_MEM_HOST,     /* host-visible, coherent: staging, readback, small uniforms */
} pvk_mem;

/* A suballocated range of one large VkBuffer. Plain value; the device owns the
 * memory behind it until pvk_buf_destroy. */
typedef struct pvk_buf {
    VkBuffer vk;
    VkDeviceSize offset;      /* of this range within vk (aligned for storage and texel use) */
    VkDeviceSize size;
    void *map;                /* host pointer to the range, or NULL when not host-visible */
    uint32_t block;           /* allocator bookkeeping */
    pvk_mem mem;
} pvk_buf;

/* PVK_ERR_DEVICE_MEMORY with the sizes in the message when it does not fit. */
pvk_status pvk_buf_create(pvk_dev *d, VkDeviceSize size, pvk_mem mem, pvk_buf *out);
void pvk_buf_destroy(pvk_dev *d, pvk_buf *b);     /* accepts a zeroed pvk_buf */
/* Copies through a staging buffer when b is not mapped. Waits for completion. */
pvk_status pvk_buf_write(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, const void *src, size_t n);
pvk_status pvk_buf_read(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, void *dst, size_t n);
/* A uniform texel buffer view of [off, off+n) of b; destroy with pvk_view_destroy. */
pvk_status pvk_buf_view(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, VkDeviceSize n,
                        VkFormat fmt, VkBufferView *out);
void pvk_view_destroy(pvk_dev *d, VkBufferView v);
/* The device memory a session may plan with, what phivk holds already included:
 * the largest device-local heap's budget; on a CPU device (lavapipe), the system
 * RAM available now plus what phivk has allocated. */
uint64_t pvk_dev_budget(const pvk_dev *d);
/* System RAM available now (sysconf). */
uint64_t pvk_host_available(void);
/* Bytes currently allocated from Vulkan, and used by live pvk_bufs. */
void pvk_mem_stats(const pvk_dev *d, uint64_t *allocated, uint64_t *used);

/* ---------------------------------------------------------------- pipelines */

typedef struct pvk_kernel {
    const char *shader;       /* embedded SPIR-V module name, e.g. "rmsnorm" or "matvec_f16" */
    const char *bindings;     /* one char per binding 0..n-1: 's' storage buffer,
                                 't' uniform texel buffer */
    uint32_t push_bytes;      /* push-constant block size, <= 128 */
    uint32_t n_spec;          /* specialization constants with ids 0..n_spec-1 */
    const uint32_t *spec;
    uint32_t subgroup_size;   /* required subgroup size, 0 for the driver's choice; applied
                                 only when caps.subgroup_size_control and within
                                 [subgroup_min, subgroup_max], else ignored. Where the
                                 device can and local_size_x is a multiple of it, full
                                 subgroups are required too. */
} pvk_kernel;

typedef struct pvk_pipe pvk_pipe;
/* Created on first use and cached by (shader, bindings, spec, subgroup size); owned
 * by the device. Uses the VkPipelineCache stored under $XDG_CACHE_HOME/phivk. */
pvk_status pvk_pipe_get(pvk_dev *d, const pvk_kernel *k, pvk_pipe **out);
/* <folder>/<kind>-<vendor>-<device>-<driver version><ext>, the file of what phivk keeps
 * per device and driver; the folder is $PHIVK_CACHE_DIR, else $XDG_CACHE_HOME/phivk,
 * else ~/.cache/phivk. false without any, or when it does not fit cap.
 * pvk_cache_make_parent creates the folder. */
bool pvk_cache_path(const pvk_dev *d, const char *kind, const char *ext, char *out, size_t cap);
bool pvk_cache_make_parent(const char *path);

/* ----------------------------------------------------------------- commands */

typedef struct pvk_binding {
    VkBuffer buf;             /* storage buffer binding, or VK_NULL_HANDLE */
    VkDeviceSize offset, range;
    VkBufferView view;        /* texel binding, or VK_NULL_HANDLE */
} pvk_binding;

pvk_binding pvk_bind(const pvk_buf *b);                                  /* whole range */
pvk_binding pvk_bind_range(const pvk_buf *b, VkDeviceSize off, VkDeviceSize n);
pvk_binding pvk_bind_view(VkBufferView v);

/* The memory hazards phivk has between recorded commands; each names what the
 * barrier orders. */
typedef enum pvk_hazard {
    PVK_COMPUTE_TO_COMPUTE,   /* a dispatch writes what a later dispatch reads or writes */
    PVK_TRANSFER_TO_COMPUTE,  /* a copy/fill writes what a dispatch reads */
    PVK_COMPUTE_TO_TRANSFER,  /* a dispatch writes what a copy reads */
    PVK_COMPUTE_TO_HOST,      /* a dispatch or copy writes what the host reads after the wait */
} pvk_hazard;

typedef struct pvk_cmd pvk_cmd;
pvk_status pvk_cmd_create(pvk_dev *d, pvk_cmd **out);
void pvk_cmd_destroy(pvk_cmd *c);
/* Starts recording (resets what was recorded before). */
pvk_status pvk_cmd_begin(pvk_cmd *c);
/* Records one dispatch. Binding count comes from the kernel's `bindings`; push
 * may be NULL when push_bytes is 0. Errors are sticky and returned by submit. */
void pvk_cmd_dispatch(pvk_cmd *c, pvk_pipe *p, const pvk_binding *b, const void *push,
                      uint32_t gx, uint32_t gy, uint32_t gz);
/* The one barrier helper: every ordering between recorded commands goes here. */
void pvk_cmd_barrier(pvk_cmd *c, pvk_hazard h);
void pvk_cmd_copy(pvk_cmd *c, const pvk_buf *src, VkDeviceSize src_off,
                  const pvk_buf *dst, VkDeviceSize dst_off, VkDeviceSize n);
void pvk_cmd_fill(pvk_cmd *c, const pvk_buf *dst, VkDeviceSize off, VkDeviceSize n, uint32_t word);
/* Ends, submits, waits. With PHIVK_PROFILE=1 prints per-dispatch GPU times to stderr. */
pvk_status pvk_cmd_submit(pvk_cmd *c);

#endif
