#include "pvk_arena.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint64_t round_up(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }

/* Makes room for one more free range at position i. */
static phivk_status insert_at(pvk_arena *a, uint32_t i, uint64_t off, uint64_t size) {
    if (a->n_free == a->cap_free) {
        uint32_t cap = a->cap_free ? a->cap_free * 2 : 16;
        pvk_arena_range *r = realloc(a->free, cap * sizeof *r);
        if (!r) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory growing a free list");
        a->free = r;
        a->cap_free = cap;
    }
    memmove(a->free + i + 1, a->free + i, (a->n_free - i) * sizeof *a->free);
    a->free[i] = (pvk_arena_range){off, size};
    a->n_free++;
    return PHIVK_OK;
}

static void remove_at(pvk_arena *a, uint32_t i) {
    memmove(a->free + i, a->free + i + 1, (a->n_free - i - 1) * sizeof *a->free);
    a->n_free--;
}

phivk_status pvk_arena_init(pvk_arena *a, uint64_t size, uint64_t granule) {
    *a = (pvk_arena){.size = size, .granule = granule ? granule : 1};
    return size ? insert_at(a, 0, 0, size) : PHIVK_OK;
}

void pvk_arena_release(pvk_arena *a) {
    free(a->free);
    *a = (pvk_arena){0};
}

phivk_status pvk_arena_alloc(pvk_arena *a, uint64_t size, uint64_t align, uint64_t *off) {
    if (!align) align = 1;
    size = round_up(size ? size : 1, a->granule);
    for (uint32_t i = 0; i < a->n_free; i++) {
        pvk_arena_range r = a->free[i];
        uint64_t start = round_up(r.off, align);
        if (start < r.off || start - r.off > r.size || r.size - (start - r.off) < size) continue;
        uint64_t head = start - r.off, tail = r.size - head - size;
        /* The alignment gap stays free in front; the rest stays free behind. */
        if (head && tail) {
            a->free[i].size = head;
            phivk_status s = insert_at(a, i + 1, start + size, tail);
            if (s) {
                a->free[i] = r;
                return s;
            }
        } else if (head) {
            a->free[i].size = head;
        } else if (tail) {
            a->free[i] = (pvk_arena_range){start + size, tail};
        } else {
            remove_at(a, i);
        }
        a->used += size;
        *off = start;
        return PHIVK_OK;
    }
    return PHIVK_ERR_DEVICE_MEMORY;
}

phivk_status pvk_arena_free(pvk_arena *a, uint64_t off, uint64_t size) {
    size = round_up(size ? size : 1, a->granule);
    if (off > a->size || size > a->size - off || size > a->used)
        return pvk_fail(PHIVK_ERR_INVALID, "arena free of [%llu, +%llu) is outside the block of %llu bytes",
                        (unsigned long long)off, (unsigned long long)size, (unsigned long long)a->size);
    /* Position of the first free range after off (binary search on the sorted list). */
    uint32_t lo = 0, hi = a->n_free;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (a->free[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    bool prev_touches = lo > 0 && a->free[lo - 1].off + a->free[lo - 1].size == off;
    bool next_touches = lo < a->n_free && off + size == a->free[lo].off;
    if ((lo > 0 && a->free[lo - 1].off + a->free[lo - 1].size > off) ||
        (lo < a->n_free && off + size > a->free[lo].off))
        return pvk_fail(PHIVK_ERR_INVALID, "arena free of [%llu, +%llu) overlaps free space (double free?)",
                        (unsigned long long)off, (unsigned long long)size);
    if (prev_touches && next_touches) {
        a->free[lo - 1].size += size + a->free[lo].size;
        remove_at(a, lo);
    } else if (prev_touches) {
        a->free[lo - 1].size += size;
    } else if (next_touches) {
        a->free[lo].off = off;
        a->free[lo].size += size;
    } else {
        phivk_status s = insert_at(a, lo, off, size);
        if (s) return s;
    }
    a->used -= size;
    return PHIVK_OK;
}

uint64_t pvk_arena_largest(const pvk_arena *a) {
    uint64_t m = 0;
    for (uint32_t i = 0; i < a->n_free; i++)
        if (a->free[i].size > m) m = a->free[i].size;
    return m;
}
