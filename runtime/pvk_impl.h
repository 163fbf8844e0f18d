/* What the runtime core's files (pvk_dev, pvk_buf, pvk_pipe, pvk_cmd) share about a
 * device. Private to them: the op layer and everything above use pvk.h only. */
#ifndef PVK_IMPL_H
#define PVK_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "pvk.h"
#include "pvk_arena.h"
#include "pvk_fmt.h"

/* One VkDeviceMemory with one VkBuffer over all of it, suballocated by an arena. */
typedef struct pvk_block {
    VkDeviceMemory mem;       /* VK_NULL_HANDLE: a free slot */
    VkBuffer buf;
    uint8_t *map;             /* whole block, when host-visible and phivk maps it */
    VkDeviceSize size;
    pvk_arena arena;
    pvk_mem kind;
    uint32_t heap;
    /* RGBA32F views of ranges of the block (pvk_buf_texels), made on first use; a
     * range's view stays valid while the block lives, for whatever buffer holds it. */
    struct pvk_block_view {
        VkDeviceSize off, n;
        VkBufferView v;
    } *views;
    uint32_t n_views;
} pvk_block;

struct pvk_pipe {
    const char *shader;       /* the variant's name (pvk_spirv_modules), for messages */
    char bindings[33];
    uint32_t n_bind, push_bytes, n_spec, subgroup_size;
    uint32_t wg_x;            /* workgroup size along x as created (for profiles) */
    uint32_t written;         /* bit i: binding i may be written (the shader's `readonly`) */
    uint32_t *spec;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline vk;
};

struct pvk_dev {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t layer_version;   /* the validation layer's spec version, 0 without it */
    PFN_vkSetDebugUtilsObjectNameEXT set_name;   /* NULL without VK_EXT_debug_utils */
    VkPhysicalDevice phys;
    VkDevice vk;
    VkQueue queue;
    uint32_t queue_family;
    pvk_caps caps;
    bool lost;                /* a submit saw VK_ERROR_DEVICE_LOST: nothing more can run
                                 or be allocated (pvk_dev_usable) */
    bool full_subgroups;      /* computeFullSubgroups: may require full subgroups */
    PFN_vkCmdPushDescriptorSetKHR push_descriptor;   /* NULL unless caps.push_descriptor */

    atomic_uint_fast64_t validation_count;
    pthread_mutex_t validation_lock;
    char validation_last[2048];

    /* memory (pvk_buf.c) */
    VkPhysicalDeviceMemoryProperties mem_props;
    int mem_type[2];          /* memory type index per pvk_mem, -1 when none */
    bool mapped[2];           /* whether blocks of that kind are host-mapped */
    VkDeviceSize align;       /* of every suballocation */
    pvk_block *blocks;
    uint32_t n_blocks;
    uint64_t heap_allocated[VK_MAX_MEMORY_HEAPS];
    uint64_t allocated, used;
    pvk_buf staging;          /* lazily made for non-mapped writes and reads */
    pvk_cmd *xfer;

    /* pipelines (pvk_pipe.c): per kernel variant, one per specialization asked for */
    struct pvk_pipe_set {
        struct pvk_pipe **v;
        uint32_t n, cap;
    } pipes[PVK_KERNEL_COUNT];
    VkPipelineCache pipeline_cache;
    char cache_path[1024];
};

/* pvk_vk.c */
/* The phivk_status for a failed Vulkan call, with "what: VK_ERROR_..." as the message. */
phivk_status pvk_vk_fail(VkResult r, const char *what);
const char *pvk_vk_result_name(VkResult r);
/* Gives a Vulkan object a debug name (no-op without VK_EXT_debug_utils). */
void pvk_name(const pvk_dev *d, VkObjectType type, uint64_t handle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* PHIVK_ERR_DEVICE_LOST saying so once a submit lost the device, else PHIVK_OK. */
phivk_status pvk_dev_usable(const pvk_dev *d);

/* pvk_buf.c */
phivk_status pvk_mem_init(pvk_dev *d);
void pvk_mem_release(pvk_dev *d);
/* pvk_pipe.c */
void pvk_pipe_cache_open(pvk_dev *d);
void pvk_pipes_release(pvk_dev *d);     /* also writes the pipeline cache file */

#endif
