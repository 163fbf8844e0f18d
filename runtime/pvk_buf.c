/* Device memory: a few large VkDeviceMemory blocks, one VkBuffer over each, ranges
 * suballocated by pvk_arena; staging copies for memory the host cannot map; texel
 * views. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pvk_fault.h"
#include "pvk_impl.h"

/* Small tensors share blocks this large; a larger request gets a block of its own. */
static const VkDeviceSize block_bytes[2] = {[PVK_MEM_DEVICE] = 256ull << 20, [PVK_MEM_HOST] = 64ull << 20};
static const VkDeviceSize staging_bytes = 16ull << 20;
static const char *mem_name[2] = {[PVK_MEM_DEVICE] = "device", [PVK_MEM_HOST] = "host"};

static const VkBufferUsageFlags block_usage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
    VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

static VkDeviceSize round_up(VkDeviceSize v, VkDeviceSize m) { return (v + m - 1) / m * m; }

static VkDeviceSize gcd(VkDeviceSize a, VkDeviceSize b) {
    while (b) {
        VkDeviceSize t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The memory type in bits with every required flag, most preferred and fewest
 * avoided flags; -1 when none has the required ones. Protected memory and AMD's
 * device-coherent types need features phivk does not enable, so they never count. */
static int find_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, VkMemoryPropertyFlags required,
                     VkMemoryPropertyFlags preferred, VkMemoryPropertyFlags avoided) {
    const VkMemoryPropertyFlags forbidden = VK_MEMORY_PROPERTY_PROTECTED_BIT |
                                            VK_MEMORY_PROPERTY_DEVICE_COHERENT_BIT_AMD;
    int best = -1, best_score = 0;
    for (uint32_t t = 0; t < mp->memoryTypeCount; t++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[t].propertyFlags;
        if (!(bits & (1u << t)) || (f & required) != required || (f & forbidden)) continue;
        int score = 2 * __builtin_popcount(f & preferred) - __builtin_popcount(f & avoided);
        if (best < 0 || score > best_score) {
            best = (int)t;
            best_score = score;
        }
    }
    return best;
}

phivk_status pvk_mem_init(pvk_dev *d) {
    vkGetPhysicalDeviceMemoryProperties(d->phys, &d->mem_props);
    VkDeviceSize a = d->caps.storage_align ? d->caps.storage_align : 1, b = d->caps.texel_align ? d->caps.texel_align : 1;
    d->align = a / gcd(a, b) * b;
    if (d->align < 16) d->align = round_up(16, d->align);

    /* Buffers with one usage share memory type bits whatever their size, so a
     * small probe tells which types a block's buffer can live in. */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 4096, .usage = block_usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer probe;
    VkResult r = vkCreateBuffer(d->vk, &bi, NULL, &probe);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateBuffer (memory type probe)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->vk, probe, &req);
    vkDestroyBuffer(d->vk, probe, NULL);

    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    const VkPhysicalDeviceMemoryProperties *mp = &d->mem_props;
    /* Host memory: cached for fast readback; off the GPU's own heap when it has one. */
    d->mem_type[PVK_MEM_HOST] = find_type(mp, req.memoryTypeBits, hv, VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
                                          d->caps.uma ? 0 : dl);
    d->mapped[PVK_MEM_HOST] = true;
    d->mem_type[PVK_MEM_DEVICE] = d->caps.uma ? find_type(mp, req.memoryTypeBits, dl | hv, 0, 0) : -1;
    d->mapped[PVK_MEM_DEVICE] = d->mem_type[PVK_MEM_DEVICE] >= 0;
    if (d->mem_type[PVK_MEM_DEVICE] < 0) {
        /* A mappable window of VRAM is small on discrete cards: keep tensors out of it. */
        d->mem_type[PVK_MEM_DEVICE] = find_type(mp, req.memoryTypeBits, dl, 0, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        d->mapped[PVK_MEM_DEVICE] = false;
    }
    if (d->mem_type[PVK_MEM_DEVICE] < 0) d->mem_type[PVK_MEM_DEVICE] = find_type(mp, req.memoryTypeBits, 0, dl, 0);
    if (d->mem_type[PVK_MEM_HOST] < 0 || d->mem_type[PVK_MEM_DEVICE] < 0)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "%s has no host-visible coherent memory type for storage buffers",
                        d->caps.name);
    return PHIVK_OK;
}

/* Destroys the block's views that lie within [off, off + n). */
static void drop_views(pvk_dev *d, pvk_block *b, VkDeviceSize off, VkDeviceSize n) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < b->n_views; i++) {
        struct pvk_block_view *v = &b->views[i];
        if (v->off >= off && v->off + v->n <= off + n) vkDestroyBufferView(d->vk, v->v, NULL);
        else b->views[kept++] = *v;
    }
    b->n_views = kept;
}

static void block_release(pvk_dev *d, pvk_block *b) {
    if (!b->mem) return;
    drop_views(d, b, 0, b->size);
    free(b->views);
    vkDestroyBuffer(d->vk, b->buf, NULL);
    vkFreeMemory(d->vk, b->mem, NULL);
    d->allocated -= b->size;
    d->heap_allocated[b->heap] -= b->size;
    pvk_arena_release(&b->arena);
    *b = (pvk_block){0};
}

void pvk_mem_release(pvk_dev *d) {
    for (uint32_t i = 0; i < d->n_blocks; i++) block_release(d, &d->blocks[i]);
    free(d->blocks);
    d->blocks = NULL;
    d->n_blocks = 0;
}

/* What heap h can still give: its budget less its usage with VK_EXT_memory_budget,
 * else its size less what phivk took from it. */
static VkDeviceSize heap_free(pvk_dev *d, uint32_t h) {
    if (d->caps.memory_budget) {
        VkPhysicalDeviceMemoryBudgetPropertiesEXT mb = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
        VkPhysicalDeviceMemoryProperties2 m = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                               .pNext = &mb};
        vkGetPhysicalDeviceMemoryProperties2(d->phys, &m);
        d->caps.heaps[h].budget = mb.heapBudget[h];
        d->caps.heaps[h].usage = mb.heapUsage[h];
        return mb.heapBudget[h] > mb.heapUsage[h] ? mb.heapBudget[h] - mb.heapUsage[h] : 0;
    }
    VkDeviceSize size = d->mem_props.memoryHeaps[h].size;
    /* A CPU device (lavapipe) reports a fixed heap (2 GiB) but allocates from system
     * RAM: what the system has available is the limit there. */
    if (d->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU) return pvk_host_available();
    return size > d->heap_allocated[h] ? size - d->heap_allocated[h] : 0;
}

uint64_t pvk_host_available(void) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

uint64_t pvk_dev_budget(const pvk_dev *d) {
    const pvk_caps *c = &d->caps;
    /* What phivk already holds counts: the budget is the whole session's. */
    if (c->type == VK_PHYSICAL_DEVICE_TYPE_CPU) return pvk_host_available() + d->allocated;
    uint64_t best = 0;
    for (uint32_t i = 0; i < c->heap_count; i++)
        if (c->heaps[i].device_local && c->heaps[i].budget > best) best = c->heaps[i].budget;
    return best;
}

static phivk_status too_big(pvk_dev *d, VkDeviceSize need, pvk_mem mem, const char *why, VkDeviceSize limit) {
    char a[32], b[32], c[32];
    return pvk_fail(PHIVK_ERR_DEVICE_MEMORY,
                    "cannot allocate %s of %s memory on %s: %s is %s (phivk already holds %s): use a smaller "
                    "model, context or quantized KV cache, or free GPU memory",
                    pvk_fmt_bytes(a, need), mem_name[mem], d->caps.name, why, pvk_fmt_bytes(b, limit),
                    pvk_fmt_bytes(c, d->allocated));
}

/* A new block of kind mem that fits need bytes; *index is its slot. */
static phivk_status block_create(pvk_dev *d, pvk_mem mem, VkDeviceSize need, uint32_t *index) {
    uint32_t type = (uint32_t)d->mem_type[mem];
    uint32_t heap = d->mem_props.memoryTypes[type].heapIndex;
    if (need > d->caps.max_alloc)
        return too_big(d, need, mem, "the largest single allocation (maxMemoryAllocationSize)", d->caps.max_alloc);
    VkDeviceSize avail = heap_free(d, heap);
    if (need > avail)
        return too_big(d, need, mem, d->caps.memory_budget ? "the memory budget left on its heap"
                                                           : "the memory left on its heap", avail);
    VkDeviceSize size = need > block_bytes[mem] ? need : block_bytes[mem];
    if (size > d->caps.max_alloc) size = d->caps.max_alloc;
    if (size > avail) size = need;

    uint32_t slot = 0;
    while (slot < d->n_blocks && d->blocks[slot].mem) slot++;
    if (slot == d->n_blocks) {
        pvk_block *nb = realloc(d->blocks, (d->n_blocks + 1) * sizeof *nb);
        if (!nb) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory growing the block table");
        d->blocks = nb;
        d->blocks[d->n_blocks++] = (pvk_block){0};
    }
    pvk_block *b = &d->blocks[slot];
    *b = (pvk_block){.size = size, .kind = mem, .heap = heap};
    phivk_status s = pvk_arena_init(&b->arena, size, d->align);
    if (s) return s;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = block_usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(d->vk, &bi, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        s = pvk_vk_fail(r, "vkCreateBuffer (memory block)");
        goto fail;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->vk, b->buf, &req);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = type};
    r = vkAllocateMemory(d->vk, &ai, NULL, &b->mem);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        s = too_big(d, size, mem, "more than the driver could allocate; its heap size", d->mem_props.memoryHeaps[heap].size);
        goto fail;
    }
    if (r != VK_SUCCESS) {
        s = pvk_vk_fail(r, "vkAllocateMemory");
        goto fail;
    }
    d->allocated += size;
    d->heap_allocated[heap] += size;
    r = vkBindBufferMemory(d->vk, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && d->mapped[mem]) r = vkMapMemory(d->vk, b->mem, 0, VK_WHOLE_SIZE, 0, (void **)&b->map);
    if (r != VK_SUCCESS) {
        s = pvk_vk_fail(r, "binding or mapping a memory block");
        goto fail;
    }
    pvk_name(d, VK_OBJECT_TYPE_BUFFER, (uint64_t)b->buf, "phivk block %u (%s)", slot, mem_name[mem]);
    pvk_name(d, VK_OBJECT_TYPE_DEVICE_MEMORY, (uint64_t)b->mem, "phivk block %u (%s)", slot, mem_name[mem]);
    *index = slot;
    return PHIVK_OK;
fail:
    if (b->mem) {
        block_release(d, b);
    } else {
        if (b->buf) vkDestroyBuffer(d->vk, b->buf, NULL);
        pvk_arena_release(&b->arena);
        *b = (pvk_block){0};
    }
    return s;
}

phivk_status pvk_buf_create(pvk_dev *d, VkDeviceSize size, pvk_mem mem, pvk_buf *out) {
    *out = (pvk_buf){0};
    if (mem != PVK_MEM_DEVICE && mem != PVK_MEM_HOST)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_create: unknown memory kind %d", (int)mem);
    if (size == 0) return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_create: a buffer needs at least one byte");
    VkDeviceSize need = round_up(size, d->align);
    if (need < size) return too_big(d, size, mem, "beyond any limit; maxMemoryAllocationSize", d->caps.max_alloc);
    phivk_status s = pvk_dev_usable(d);
    if (s) return s;
    if (pvk_fault_alloc()) {
        char a[32], c[32];
        return pvk_fail(PHIVK_ERR_DEVICE_MEMORY, "cannot allocate %s of %s memory on %s: allocation %llu failed "
                        "(a fault injected by PHIVK_FAULT; phivk holds %s)", pvk_fmt_bytes(a, need), mem_name[mem],
                        d->caps.name, (unsigned long long)pvk_fault_allocs(), pvk_fmt_bytes(c, d->allocated));
    }
    uint64_t off = 0;
    uint32_t i;
    s = PHIVK_ERR_DEVICE_MEMORY;
    for (i = 0; i < d->n_blocks; i++) {
        pvk_block *b = &d->blocks[i];
        if (b->mem && b->kind == mem && (s = pvk_arena_alloc(&b->arena, need, d->align, &off)) != PHIVK_ERR_DEVICE_MEMORY)
            break;
    }
    if (s == PHIVK_ERR_HOST_MEMORY) return s;
    if (s) {
        if ((s = block_create(d, mem, need, &i))) return s;
        if ((s = pvk_arena_alloc(&d->blocks[i].arena, need, d->align, &off)))
            return pvk_fail(s, "a fresh memory block of %llu bytes did not fit %llu bytes",
                            (unsigned long long)d->blocks[i].size, (unsigned long long)need);
    }
    pvk_block *b = &d->blocks[i];
    d->used += need;
    *out = (pvk_buf){.vk = b->buf, .offset = off, .size = size, .map = b->map ? b->map + off : NULL,
                     .block = i, .mem = mem};
    return PHIVK_OK;
}

void pvk_buf_destroy(pvk_dev *d, pvk_buf *b) {
    if (!b || !b->vk) return;
    pvk_block *blk = &d->blocks[b->block];
    VkDeviceSize need = round_up(b->size, d->align);
    if (pvk_arena_free(&blk->arena, b->offset, need) == PHIVK_OK) d->used -= need;
    drop_views(d, blk, b->offset, need);
    /* A block made for one large request goes back as soon as it is empty. */
    if (blk->arena.used == 0 && blk->size > block_bytes[blk->kind]) block_release(d, blk);
    *b = (pvk_buf){0};
}

static phivk_status check_range(const pvk_buf *b, VkDeviceSize off, size_t n, const char *what) {
    if (!b || !b->vk) return pvk_fail(PHIVK_ERR_INVALID, "%s: the buffer was not created", what);
    if (off > b->size || n > b->size - off)
        return pvk_fail(PHIVK_ERR_INVALID, "%s: [%llu, +%zu) is outside the buffer of %llu bytes", what,
                        (unsigned long long)off, n, (unsigned long long)b->size);
    return PHIVK_OK;
}

static phivk_status staging_ready(pvk_dev *d) {
    phivk_status s = PHIVK_OK;
    if (!d->staging.vk) s = pvk_buf_create(d, staging_bytes, PVK_MEM_HOST, &d->staging);
    if (!s && !d->xfer) s = pvk_cmd_create(d, &d->xfer);
    return s;
}

phivk_status pvk_buf_write(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, const void *src, size_t n) {
    phivk_status s = check_range(b, off, n, "pvk_buf_write");
    if (s || n == 0) return s;
    if (b->map) {
        memcpy((uint8_t *)b->map + off, src, n);
        return PHIVK_OK;
    }
    if ((s = staging_ready(d))) return s;
    for (size_t done = 0; done < n; done += staging_bytes) {
        size_t len = n - done < staging_bytes ? n - done : staging_bytes;
        memcpy(d->staging.map, (const uint8_t *)src + done, len);
        if ((s = pvk_cmd_begin(d->xfer))) return s;
        pvk_cmd_copy(d->xfer, &d->staging, 0, b, off + done, len);
        /* Later submissions read what the copy wrote. */
        pvk_cmd_barrier(d->xfer, PVK_TRANSFER_TO_COMPUTE);
        if ((s = pvk_cmd_submit(d->xfer))) return s;
    }
    return PHIVK_OK;
}

phivk_status pvk_buf_read(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, void *dst, size_t n) {
    phivk_status s = check_range(b, off, n, "pvk_buf_read");
    if (s || n == 0) return s;
    if (b->map) {
        memcpy(dst, (const uint8_t *)b->map + off, n);
        return PHIVK_OK;
    }
    if ((s = staging_ready(d))) return s;
    for (size_t done = 0; done < n; done += staging_bytes) {
        size_t len = n - done < staging_bytes ? n - done : staging_bytes;
        if ((s = pvk_cmd_begin(d->xfer))) return s;
        /* Earlier submissions' dispatches wrote what the copy reads. */
        pvk_cmd_barrier(d->xfer, PVK_COMPUTE_TO_TRANSFER);
        pvk_cmd_copy(d->xfer, b, off + done, &d->staging, 0, len);
        if ((s = pvk_cmd_submit(d->xfer))) return s;
        memcpy((uint8_t *)dst + done, d->staging.map, len);
    }
    return PHIVK_OK;
}

static uint32_t texel_bytes(VkFormat f) {
    switch (f) {
    case VK_FORMAT_R32_UINT:
    case VK_FORMAT_R32_SFLOAT: return 4;
    case VK_FORMAT_R32G32_UINT:
    case VK_FORMAT_R32G32_SFLOAT:
    case VK_FORMAT_R16G16B16A16_SFLOAT: return 8;
    case VK_FORMAT_R32G32B32A32_UINT:
    case VK_FORMAT_R32G32B32A32_SFLOAT: return 16;
    default: return 0;
    }
}

phivk_status pvk_buf_view(pvk_dev *d, const pvk_buf *b, VkDeviceSize off, VkDeviceSize n, VkFormat fmt,
                        VkBufferView *out) {
    *out = VK_NULL_HANDLE;
    if (!d->caps.texel)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "uniform texel buffers are off on %s (unsupported or "
                        "PHIVK_DISABLE_TEXEL): use the storage-buffer kernels", d->caps.name);
    phivk_status s = check_range(b, off, n, "pvk_buf_view");
    if (s) return s;
    uint32_t tb = texel_bytes(fmt);
    if (!tb) return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_view: format %d is not a texel format phivk uses", (int)fmt);
    if (n == 0 || n % tb || (b->offset + off) % d->caps.texel_align)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_view: range [%llu, +%llu) must be whole %u-byte texels at a "
                        "multiple of %llu bytes", (unsigned long long)off, (unsigned long long)n, tb,
                        (unsigned long long)d->caps.texel_align);
    if (n / tb > d->caps.max_texel_elems)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_view: %llu texels exceed maxTexelBufferElements (%u): split it",
                        (unsigned long long)(n / tb), d->caps.max_texel_elems);
    VkBufferViewCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO, .buffer = b->vk,
                                 .format = fmt, .offset = b->offset + off, .range = n};
    VkResult r = vkCreateBufferView(d->vk, &ci, NULL, out);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateBufferView");
    pvk_name(d, VK_OBJECT_TYPE_BUFFER_VIEW, (uint64_t)*out, "phivk view block %u +%llu", b->block,
             (unsigned long long)(b->offset + off));
    return PHIVK_OK;
}

phivk_status pvk_buf_texels(pvk_dev *d, const pvk_buf *b, VkBufferView *view) {
    *view = VK_NULL_HANDLE;
    if (!b->vk || b->block >= d->n_blocks || d->blocks[b->block].buf != b->vk)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_buf_texels: not a live buffer");
    pvk_block *blk = &d->blocks[b->block];
    for (uint32_t i = 0; i < blk->n_views; i++)
        if (blk->views[i].off == b->offset && blk->views[i].n == b->size) {
            *view = blk->views[i].v;
            return PHIVK_OK;
        }
    struct pvk_block_view *nv = realloc(blk->views, (blk->n_views + 1) * sizeof *nv);
    if (!nv) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for a texel view");
    blk->views = nv;
    pvk_buf whole = {.vk = blk->buf, .offset = 0, .size = blk->size, .block = b->block, .mem = blk->kind};
    phivk_status s = pvk_buf_view(d, &whole, b->offset, b->size, VK_FORMAT_R32G32B32A32_SFLOAT, view);
    if (s) return s;
    blk->views[blk->n_views++] = (struct pvk_block_view){b->offset, b->size, *view};
    return PHIVK_OK;
}

void pvk_view_destroy(pvk_dev *d, VkBufferView v) {
    if (v) vkDestroyBufferView(d->vk, v, NULL);
}

void pvk_mem_stats(const pvk_dev *d, uint64_t *allocated, uint64_t *used) {
    if (allocated) *allocated = d->allocated;
    if (used) *used = d->used;
}
