/* A suballocator for ranges of one memory block: first fit, any alignment, a free
 * list kept sorted by offset and coalesced on free so freed space is reused.
 * Pure bookkeeping, no Vulkan: the device memory code owns one per block. */
#ifndef PVK_ARENA_H
#define PVK_ARENA_H

#include <stdint.h>

#include "pvk_err.h"

typedef struct pvk_arena_range {
    uint64_t off, size;
} pvk_arena_range;

typedef struct pvk_arena {
    uint64_t size;            /* of the block */
    uint64_t granule;         /* every allocation's size is rounded up to this */
    uint64_t used;            /* bytes in live allocations (rounded sizes) */
    pvk_arena_range *free;    /* sorted by offset, never adjacent (coalesced) */
    uint32_t n_free, cap_free;
} pvk_arena;

/* A block of size bytes, all free. granule >= 1. PHIVK_ERR_HOST_MEMORY on malloc failure. */
phivk_status pvk_arena_init(pvk_arena *a, uint64_t size, uint64_t granule);
void pvk_arena_release(pvk_arena *a);   /* accepts a zeroed arena */
/* The first free range that fits size bytes at an offset that is a multiple of align
 * (>= 1). PHIVK_ERR_DEVICE_MEMORY without a message when nothing fits (the caller
 * knows what to say); PHIVK_ERR_HOST_MEMORY when the free list cannot grow. */
phivk_status pvk_arena_alloc(pvk_arena *a, uint64_t size, uint64_t align, uint64_t *off);
/* Returns [off, off+size) from an earlier pvk_arena_alloc with the same size. */
phivk_status pvk_arena_free(pvk_arena *a, uint64_t off, uint64_t size);
/* The largest free range, in bytes. */
uint64_t pvk_arena_largest(const pvk_arena *a);

#endif
