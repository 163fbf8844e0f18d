/* pvk_arena on its own: offsets honour the alignment, live ranges never overlap,
 * freed space is reused and neighbours coalesce back into one range. */
#define HARNESS_MAIN
#include <stdbool.h>

#include "harness.h"
#include "pvk_arena.h"

typedef struct live {
    uint64_t off, size;
} live;

TEST(offsets_are_multiples_of_the_alignment) {
    pvk_arena a;
    REQUIRE(pvk_arena_init(&a, 1 << 20, 16) == PHIVK_OK, "init");
    static const uint64_t aligns[] = {1, 16, 64, 256, 48, 4096, 80};
    for (int i = 0; i < 7; i++) {
        uint64_t off = 1;
        /* An odd size first, so the next allocation has to skip a gap. */
        CHECK(pvk_arena_alloc(&a, 17, 1, &off) == PHIVK_OK, "odd alloc");
        CHECK(pvk_arena_alloc(&a, 100, aligns[i], &off) == PHIVK_OK, "alloc at align %llu", (unsigned long long)aligns[i]);
        CHECK(off % aligns[i] == 0, "offset %llu not a multiple of %llu", (unsigned long long)off,
              (unsigned long long)aligns[i]);
        CHECK(off % 16 == 0, "offset %llu not on the 16-byte granule", (unsigned long long)off);
    }
    pvk_arena_release(&a);
}

static bool overlaps(const live *l, int n, uint64_t off, uint64_t size) {
    for (int i = 0; i < n; i++)
        if (off < l[i].off + l[i].size && l[i].off < off + size) return true;
    return false;
}

TEST(random_allocations_never_overlap_and_all_coalesce_back) {
    const uint64_t block = 1 << 22;
    pvk_arena a;
    REQUIRE(pvk_arena_init(&a, block, 64) == PHIVK_OK, "init");
    live l[256];
    int n = 0, fits = 0, full = 0;
    uint32_t rng = 12345;
    for (int step = 0; step < 5000; step++) {
        rng = rng * 1664525u + 1013904223u;
        if (n > 0 && (rng >> 28) < 7) { /* free a random live range */
            int k = (int)((rng >> 8) % (uint32_t)n);
            CHECK(pvk_arena_free(&a, l[k].off, l[k].size) == PHIVK_OK, "free");
            l[k] = l[--n];
            continue;
        }
        if (n == 256) continue;
        uint64_t size = 1 + (rng >> 10) % 100000, align = (uint64_t)64 << ((rng >> 4) % 4), off;
        phivk_status s = pvk_arena_alloc(&a, size, align, &off);
        if (s == PHIVK_ERR_DEVICE_MEMORY) {
            full++;
            continue;
        }
        REQUIRE(s == PHIVK_OK, "alloc failed with %d", (int)s);
        fits++;
        uint64_t rounded = (size + 63) / 64 * 64;
        CHECK(off % align == 0 && off + rounded <= block, "range [%llu, +%llu) misplaced", (unsigned long long)off,
              (unsigned long long)rounded);
        CHECK(!overlaps(l, n, off, rounded), "range [%llu, +%llu) overlaps a live one", (unsigned long long)off,
              (unsigned long long)rounded);
        l[n++] = (live){off, size};
    }
    CHECK(fits > 1000 && full > 0, "the mix should both fill the block and fit most requests (%d fit, %d full)",
          fits, full);
    for (; n > 0; n--) CHECK(pvk_arena_free(&a, l[n - 1].off, l[n - 1].size) == PHIVK_OK, "free");
    CHECK(a.used == 0, "used %llu after freeing everything", (unsigned long long)a.used);
    CHECK(a.n_free == 1 && a.free[0].off == 0 && a.free[0].size == block, "%u free ranges, not one whole block",
          a.n_free);
    pvk_arena_release(&a);
}

TEST(freed_space_is_reused) {
    pvk_arena a;
    REQUIRE(pvk_arena_init(&a, 4096, 16) == PHIVK_OK, "init");
    uint64_t x, y, z, w;
    REQUIRE(!pvk_arena_alloc(&a, 1000, 16, &x) && !pvk_arena_alloc(&a, 1000, 16, &y) &&
            !pvk_arena_alloc(&a, 1000, 16, &z), "three allocations");
    CHECK(pvk_arena_alloc(&a, 2000, 16, &w) == PHIVK_ERR_DEVICE_MEMORY, "a fourth large one cannot fit");
    CHECK(pvk_arena_free(&a, y, 1000) == PHIVK_OK, "free the middle");
    CHECK(pvk_arena_alloc(&a, 900, 16, &w) == PHIVK_OK && w == y, "the hole at %llu is reused (got %llu)",
          (unsigned long long)y, (unsigned long long)w);
    pvk_arena_release(&a);
}

TEST(neighbours_coalesce_on_free) {
    pvk_arena a;
    REQUIRE(pvk_arena_init(&a, 4096, 16) == PHIVK_OK, "init");
    uint64_t o[4], big;
    for (int i = 0; i < 4; i++) REQUIRE(!pvk_arena_alloc(&a, 1024, 16, &o[i]), "alloc %d", i);
    CHECK(pvk_arena_largest(&a) == 0, "the block is full");
    CHECK(!pvk_arena_free(&a, o[0], 1024) && !pvk_arena_free(&a, o[2], 1024), "free 0 and 2");
    CHECK(pvk_arena_largest(&a) == 1024 && a.n_free == 2, "two separate holes");
    CHECK(!pvk_arena_free(&a, o[1], 1024), "free 1");
    CHECK(a.n_free == 1 && pvk_arena_largest(&a) == 3072, "holes 0-2 merged into one of 3072 (largest %llu)",
          (unsigned long long)pvk_arena_largest(&a));
    CHECK(pvk_arena_alloc(&a, 3000, 16, &big) == PHIVK_OK && big == o[0], "a 3000-byte range fits the merged hole");
    pvk_arena_release(&a);
}

TEST(bad_frees_are_refused) {
    pvk_arena a;
    REQUIRE(pvk_arena_init(&a, 4096, 16) == PHIVK_OK, "init");
    uint64_t x;
    REQUIRE(!pvk_arena_alloc(&a, 100, 16, &x), "alloc");
    CHECK(pvk_arena_free(&a, x, 100) == PHIVK_OK, "free");
    CHECK(pvk_arena_free(&a, x, 100) == PHIVK_ERR_INVALID, "a double free is refused");
    CHECK(pvk_arena_free(&a, 8192, 16) == PHIVK_ERR_INVALID, "a range outside the block is refused");
    CHECK(a.n_free == 1 && a.used == 0, "the free list is intact");
    pvk_arena_release(&a);
}
