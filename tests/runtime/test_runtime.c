/* The runtime core on the default device (lavapipe here) with validation on: device
 * choice and capabilities, kill switches, memory, pipelines, commands, profile. */
#define HARNESS_MAIN
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "gpu.h"
#include "harness.h"
#include "phivk.h"

/* A validated device opened with env=value set during creation (env may be NULL). */
static pvk_dev *open_with(const char *env, const char *value) {
    if (env) setenv(env, value, 1);
    pvk_dev_params p = pvk_dev_default_params();
    p.validate = true;
    pvk_dev *d = NULL;
    phivk_status s = pvk_dev_create(&p, &d);
    if (s) printf("    pvk_dev_create with %s=%s: %s\n", env ? env : "-", value ? value : "-", pvk_errmsg());
    if (env) unsetenv(env);
    return d;
}

/* Destroys d after failing the case on any validation message it collected. */
static void close_checked(pvk_dev *d) {
    uint64_t seen = 0;
    const char *msg = d ? test_gpu_new_messages(d, &seen) : NULL;
    CHECK(!msg, "%s", msg);
    pvk_dev_destroy(d);
}

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
}

/* out = a OP b through the add or mul kernel, repeated reps times in one
 * recording (reps > 1 exercises descriptor allocation); returns the number of
 * elements that differ from the CPU result. IEEE add and mul are correctly rounded
 * in Vulkan (SPIR-V OpFAdd/OpFMul), so the results must match bit for bit. */
static int run_eltwise(pvk_dev *d, pvk_kernel_id op, uint32_t n, int reps) {
    pvk_buf a = {0}, b = {0}, o = {0};
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *got = malloc(n * sizeof *got);
    int bad = -1;
    pvk_cmd *c = NULL;
    pvk_pipe *p = NULL;
    uint32_t seed = 7, wg = 64;
    for (uint32_t i = 0; i < n; i++) x[i] = frand(&seed), y[i] = frand(&seed);
    pvk_kernel k = {.id = op, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg};
    if (pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &a) || pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &b) ||
        pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &o) || pvk_buf_write(d, &a, 0, x, n * 4) ||
        pvk_buf_write(d, &b, 0, y, n * 4) || pvk_pipe_get(d, &k, &p) || pvk_cmd_create(d, &c) || pvk_cmd_begin(c)) {
        printf("    setup: %s\n", pvk_errmsg());
        goto done;
    }
    pvk_binding bind[3] = {pvk_bind(&a), pvk_bind(&b), pvk_bind(&o)};
    uint32_t groups = (n + wg - 1) / wg, push[2] = {n, groups * wg};
    for (int r = 0; r < reps; r++) {
        pvk_cmd_dispatch(c, p, bind, push, groups, 1, 1);
        pvk_cmd_barrier(c, PVK_COMPUTE_TO_COMPUTE);
    }
    if (pvk_cmd_submit(c) || pvk_buf_read(d, &o, 0, got, n * 4)) {
        printf("    run: %s\n", pvk_errmsg());
        goto done;
    }
    bad = 0;
    for (uint32_t i = 0; i < n; i++) bad += got[i] != (op == PVK_KERNEL_ADD ? x[i] + y[i] : x[i] * y[i]);
done:
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &a);
    pvk_buf_destroy(d, &b);
    pvk_buf_destroy(d, &o);
    free(x);
    free(y);
    free(got);
    return bad;
}

static bool pow2(uint64_t v) { return v && !(v & (v - 1)); }

TEST(default_device_has_sane_capabilities) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const pvk_caps *c = pvk_dev_caps(d);
    CHECK(c->name[0] && c->usable, "device has a name and is usable");
    CHECK(c->api_version >= VK_API_VERSION_1_2, "Vulkan 1.2 or later");
    CHECK(pow2(c->subgroup_size) && c->subgroup_min <= c->subgroup_size && c->subgroup_size <= c->subgroup_max,
          "subgroup size %u within [%u, %u]", c->subgroup_size, c->subgroup_min, c->subgroup_max);
    CHECK(c->max_binding_bytes <= c->max_storage_range && c->max_binding_bytes % 256 == 0 &&
          c->max_binding_bytes > 0, "binding limit %llu", (unsigned long long)c->max_binding_bytes);
    CHECK(c->max_alloc >= (1u << 20), "maxMemoryAllocationSize %llu", (unsigned long long)c->max_alloc);
    CHECK(pow2(c->storage_align) && pow2(c->texel_align), "alignments are powers of two");
    CHECK(c->max_wg_invocations >= 128 && c->max_wg_size[0] >= 128 && c->max_wg_count[0] >= 65535,
          "Vulkan's minimum workgroup limits");
    CHECK(c->max_shared >= 16384, "at least the 16 KiB of shared memory Vulkan guarantees");
    CHECK(c->heap_count >= 1 && c->heaps[0].size > 0, "a memory heap");
    CHECK(!c->timestamps || c->timestamp_period > 0, "timestamp period");
    CHECK(!c->subgroup || c->subgroup_ops, "subgroup ops listed when subgroups are on");
}

TEST(device_choice_by_index_name_and_bad_names) {
    pvk_caps *caps;
    uint32_t n, idx = 99;
    REQUIRE(pvk_dev_enumerate(&caps, &n) == PHIVK_OK && n > 0, "enumerate: %s", pvk_errmsg());
    CHECK(pvk_dev_choose(caps, n, "0", &idx) == PHIVK_OK && idx == 0, "index 0");
    char upper[sizeof caps[0].name];
    snprintf(upper, sizeof upper, "%s", caps[0].name);
    for (char *p = upper; *p; p++) *p = (char)toupper((unsigned char)*p);
    upper[4] = 0;
    CHECK(pvk_dev_choose(caps, n, upper, &idx) == PHIVK_OK && idx == 0, "case-insensitive name part \"%s\"", upper);
    CHECK(pvk_dev_choose(caps, n, "no such gpu", &idx) == PHIVK_ERR_NO_DEVICE, "unknown name is refused");
    CHECK(strstr(pvk_errmsg(), caps[0].name) != NULL, "the error lists the devices: %s", pvk_errmsg());
    CHECK(pvk_dev_choose(caps, n, "99", &idx) == PHIVK_ERR_NO_DEVICE, "out-of-range index is refused");
    setenv("PHIVK_DEVICE", "no such gpu", 1);
    CHECK(pvk_dev_choose(caps, n, NULL, &idx) == PHIVK_ERR_NO_DEVICE && strstr(pvk_errmsg(), "PHIVK_DEVICE"),
          "PHIVK_DEVICE is used and named: %s", pvk_errmsg());
    unsetenv("PHIVK_DEVICE");
    free(caps);
}

TEST(buffers_round_trip_in_device_and_host_memory) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const size_t n = (1 << 20) + 3;
    uint8_t *src = malloc(n), *dst = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)(i * 131 + 7);
    for (int m = 0; m < 2; m++) {
        pvk_buf b;
        REQUIRE(pvk_buf_create(d, n, (pvk_mem)m, &b) == PHIVK_OK, "create: %s", pvk_errmsg());
        CHECK(b.size == n && b.offset % pvk_dev_caps(d)->storage_align == 0, "size and alignment");
        CHECK(m == PVK_MEM_DEVICE || b.map, "host memory is mapped");
        CHECK(pvk_buf_write(d, &b, 0, src, n) == PHIVK_OK, "write: %s", pvk_errmsg());
        memset(dst, 0, n);
        CHECK(pvk_buf_read(d, &b, 0, dst, n) == PHIVK_OK, "read: %s", pvk_errmsg());
        CHECK(!memcmp(src, dst, n), "memory kind %d reads back what was written", m);
        CHECK(pvk_buf_read(d, &b, 5, dst, 100) == PHIVK_OK && !memcmp(src + 5, dst, 100), "partial read at 5");
        CHECK(pvk_buf_read(d, &b, n - 2, dst, 3) == PHIVK_ERR_INVALID, "a read past the end is refused");
        pvk_buf_destroy(d, &b);
    }
    free(src);
    free(dst);
}

TEST(staging_path_without_uma) {
    pvk_dev *d = open_with("PHIVK_DISABLE_UMA", "1");
    REQUIRE(d, "device");
    CHECK(!pvk_dev_caps(d)->uma, "PHIVK_DISABLE_UMA turns UMA off");
    /* More than the 16 MiB staging buffer, so the copy goes in chunks. */
    const size_t n = (20u << 20) + 12;
    uint32_t *src = malloc(n), *dst = calloc(1, n);
    for (size_t i = 0; i < n / 4; i++) src[i] = (uint32_t)(i * 2654435761u);
    pvk_buf b;
    REQUIRE(pvk_buf_create(d, n, PVK_MEM_DEVICE, &b) == PHIVK_OK, "create: %s", pvk_errmsg());
    CHECK(b.map == NULL, "device memory is not mapped without UMA");
    CHECK(pvk_buf_write(d, &b, 0, src, n) == PHIVK_OK && pvk_buf_read(d, &b, 0, dst, n) == PHIVK_OK, "copy: %s",
          pvk_errmsg());
    CHECK(!memcmp(src, dst, n), "20 MiB round trip through staging");
    pvk_buf_destroy(d, &b);
    CHECK(run_eltwise(d, PVK_KERNEL_ADD, 1000, 1) == 0, "add kernel with staged buffers");
    free(src);
    free(dst);
    close_checked(d);
}

TEST(over_allocation_is_a_clear_device_memory_error) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    pvk_buf b;
    uint64_t before, after;
    pvk_mem_stats(d, &before, NULL);
    CHECK(pvk_buf_create(d, 1ull << 50, PVK_MEM_DEVICE, &b) == PHIVK_ERR_DEVICE_MEMORY, "1 PiB is refused");
    CHECK(strstr(pvk_errmsg(), "1024.00 TiB") && strstr(pvk_errmsg(), "maxMemoryAllocationSize"),
          "the message gives the sizes: %s", pvk_errmsg());
    CHECK(b.vk == VK_NULL_HANDLE, "no buffer comes back");
    /* Within maxMemoryAllocationSize but beyond what the heap holds. */
    const pvk_caps *c = pvk_dev_caps(d);
    uint64_t heap = c->heaps[0].size;
    if (c->max_alloc > heap)
        CHECK(pvk_buf_create(d, heap + (1u << 20), PVK_MEM_DEVICE, &b) == PHIVK_ERR_DEVICE_MEMORY, "beyond the heap");
    pvk_mem_stats(d, &after, NULL);
    CHECK(after == before, "nothing was allocated by the failures (%llu -> %llu)", (unsigned long long)before,
          (unsigned long long)after);
    CHECK(run_eltwise(d, PVK_KERNEL_MUL, 100, 1) == 0, "the device still works");
}

TEST(memory_stats_follow_buffers_and_blocks_are_shared) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    uint64_t alloc0, used0, alloc1, used1, alloc2, used2;
    pvk_mem_stats(d, &alloc0, &used0);
    pvk_buf b[8];
    for (int i = 0; i < 8; i++) REQUIRE(pvk_buf_create(d, 1000 + i, PVK_MEM_DEVICE, &b[i]) == PHIVK_OK, "create");
    pvk_mem_stats(d, &alloc1, &used1);
    CHECK(used1 >= used0 + 8 * 1000, "used grows by at least the sizes");
    CHECK(b[0].vk == b[7].vk, "small buffers share one block's VkBuffer");
    for (int i = 1; i < 8; i++)
        CHECK(b[i].offset >= b[i - 1].offset + b[i - 1].size || b[i].offset + b[i].size <= b[i - 1].offset,
              "buffers %d and %d do not overlap", i - 1, i);
    for (int i = 0; i < 8; i++) pvk_buf_destroy(d, &b[i]);
    pvk_mem_stats(d, &alloc2, &used2);
    CHECK(used2 == used0, "used returns to %llu (got %llu)", (unsigned long long)used0, (unsigned long long)used2);
    CHECK(alloc1 <= alloc0 + (256u << 20), "at most one new block for small buffers");
}

TEST(binding_limit_comes_from_the_environment) {
    pvk_dev *d = open_with("PHIVK_MAX_BINDING_BYTES", "1000000");
    REQUIRE(d, "device");
    CHECK(pvk_dev_caps(d)->max_binding_bytes == 999936, "1000000 rounded down to 256 bytes, got %llu",
          (unsigned long long)pvk_dev_caps(d)->max_binding_bytes);
    /* A binding above the limit is refused at submit, with the limit named. */
    pvk_buf b;
    pvk_cmd *c;
    pvk_pipe *p;
    uint32_t wg = 64, push[2] = {1, 64};
    pvk_kernel k = {.id = PVK_KERNEL_ADD, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg};
    REQUIRE(!pvk_buf_create(d, 2000000, PVK_MEM_DEVICE, &b) && !pvk_pipe_get(d, &k, &p) && !pvk_cmd_create(d, &c),
            "setup: %s", pvk_errmsg());
    pvk_binding bind[3] = {pvk_bind(&b), pvk_bind_range(&b, 0, 256), pvk_bind_range(&b, 256, 256)};
    CHECK(pvk_cmd_begin(c) == PHIVK_OK, "begin");
    pvk_cmd_dispatch(c, p, bind, push, 1, 1, 1);
    CHECK(pvk_cmd_submit(c) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "PHIVK_MAX_BINDING_BYTES"),
          "an oversized binding is a sticky error: %s", pvk_errmsg());
    bind[0] = pvk_bind_range(&b, 512, 256);
    CHECK(pvk_cmd_begin(c) == PHIVK_OK, "begin again clears the error");
    pvk_cmd_dispatch(c, p, bind, push, 1, 1, 1);
    CHECK(pvk_cmd_submit(c) == PHIVK_OK, "a small binding works: %s", pvk_errmsg());
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &b);
    close_checked(d);
    setenv("PHIVK_MAX_BINDING_BYTES", "lots", 1);
    CHECK(pvk_dev_create(NULL, &d) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "PHIVK_MAX_BINDING_BYTES"),
          "a malformed limit is refused: %s", pvk_errmsg());
    unsetenv("PHIVK_MAX_BINDING_BYTES");
}

TEST(add_and_mul_kernels_match_the_cpu) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    static const uint32_t sizes[] = {1, 63, 64, 65, 10007};
    for (int i = 0; i < 5; i++) {
        CHECK(run_eltwise(d, PVK_KERNEL_ADD, sizes[i], 1) == 0, "add of %u elements is exact", sizes[i]);
        CHECK(run_eltwise(d, PVK_KERNEL_MUL, sizes[i], 1) == 0, "mul of %u elements is exact", sizes[i]);
    }
}

TEST(unknown_kernel_ids_and_bad_kernels_are_refused) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    pvk_pipe *p;
    pvk_kernel k = {.id = PVK_KERNEL_NONE, .bindings = "s"};
    CHECK(pvk_pipe_get(d, &k, &p) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "not a compiled variant"), "%s",
          pvk_errmsg());
    k.id = PVK_KERNEL_COUNT;
    CHECK(pvk_pipe_get(d, &k, &p) == PHIVK_ERR_INVALID, "an id past the table is refused");
    k = (pvk_kernel){.id = PVK_KERNEL_ADD, .bindings = "sss", .push_bytes = 132};
    CHECK(pvk_pipe_get(d, &k, &p) == PHIVK_ERR_INVALID, "more than 128 push bytes is refused");
    k = (pvk_kernel){.id = PVK_KERNEL_ADD, .bindings = "sxs", .push_bytes = 8};
    CHECK(pvk_pipe_get(d, &k, &p) == PHIVK_ERR_INVALID, "an unknown binding kind is refused");
}

TEST(pipelines_are_cached_by_key) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    uint32_t wg64 = 64, wg32 = 32;
    pvk_kernel k = {.id = PVK_KERNEL_ADD, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg64};
    pvk_pipe *a, *b, *c;
    REQUIRE(!pvk_pipe_get(d, &k, &a) && !pvk_pipe_get(d, &k, &b), "get: %s", pvk_errmsg());
    CHECK(a == b, "the same key gives the same pipeline");
    k.spec = &wg32;
    REQUIRE(!pvk_pipe_get(d, &k, &c), "get: %s", pvk_errmsg());
    CHECK(c != a, "another specialization gives another pipeline");
    const pvk_caps *caps = pvk_dev_caps(d);
    if (caps->subgroup_size_control) {
        k.subgroup_size = caps->subgroup_max;
        k.spec = &wg64; /* a multiple of every subgroup size up to 64 */
        CHECK(pvk_pipe_get(d, &k, &c) == PHIVK_OK && c != a, "a required subgroup size: %s", pvk_errmsg());
        /* 4 is no multiple of any subgroup size > 4: full subgroups must not be required
         * (the validation layer would object), yet the pipeline is made. */
        uint32_t wg4 = 4;
        k.spec = &wg4;
        k.subgroup_size = caps->subgroup_max > 4 ? caps->subgroup_max : 0;
        CHECK(pvk_pipe_get(d, &k, &c) == PHIVK_OK, "a workgroup smaller than the subgroup: %s", pvk_errmsg());
    } else {
        printf("    no subgroup size control on this device: required subgroup sizes not checked\n");
    }
    uint32_t huge = caps->max_wg_invocations * 2;
    k = (pvk_kernel){.id = PVK_KERNEL_ADD, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &huge};
    CHECK(pvk_pipe_get(d, &k, &c) == PHIVK_ERR_UNSUPPORTED && strstr(pvk_errmsg(), "workgroup"),
          "a workgroup beyond the device's limit is refused before Vulkan sees it: %s", pvk_errmsg());
}

/* Every kill switch turns its capability off (whether or not the device had it). */
TEST(kill_switches_turn_features_off) {
    static const struct {
        const char *env;
        size_t field;
    } sw[] = {
        {"PHIVK_DISABLE_F16", offsetof(pvk_caps, fp16)},
        {"PHIVK_DISABLE_F16", offsetof(pvk_caps, storage16)},
        {"PHIVK_DISABLE_INT8", offsetof(pvk_caps, storage8)},
        {"PHIVK_DISABLE_INT_DOT", offsetof(pvk_caps, int_dot)},
        {"PHIVK_DISABLE_SUBGROUP", offsetof(pvk_caps, subgroup)},
        {"PHIVK_DISABLE_SUBGROUP_SIZE_CONTROL", offsetof(pvk_caps, subgroup_size_control)},
        {"PHIVK_DISABLE_COOPMAT", offsetof(pvk_caps, coopmat)},
        {"PHIVK_DISABLE_PUSH_DESCRIPTOR", offsetof(pvk_caps, push_descriptor)},
        {"PHIVK_DISABLE_UMA", offsetof(pvk_caps, uma)},
        {"PHIVK_DISABLE_TEXEL", offsetof(pvk_caps, texel)},
        {"PHIVK_DISABLE_MEMORY_BUDGET", offsetof(pvk_caps, memory_budget)},
    };
    /* Enumeration reads the same switches, without opening a device for each. */
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++) {
        setenv(sw[i].env, "1", 1);
        pvk_caps *caps;
        uint32_t n;
        REQUIRE(pvk_dev_enumerate(&caps, &n) == PHIVK_OK, "enumerate: %s", pvk_errmsg());
        for (uint32_t j = 0; j < n; j++)
            CHECK(!*(const bool *)((const char *)&caps[j] + sw[i].field), "%s leaves a capability on", sw[i].env);
        free(caps);
        unsetenv(sw[i].env);
    }
    pvk_dev *d = open_with("PHIVK_DISABLE_F16", "1");
    REQUIRE(d, "device");
    CHECK(!pvk_dev_caps(d)->fp16 && !pvk_dev_caps(d)->storage16, "PHIVK_DISABLE_F16 on the device");
    close_checked(d);
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* PHIVK_DEVICE_PROFILE=mobile gives every device a phone GPU's limits: at most 256
 * workgroup invocations (and no dimension beyond them), 16 KiB of shared memory,
 * 128 MiB bindings, 1 GiB allocations, no integer dot product, no 16-bit storage.
 * Limits the device has below those stay its own; what the profile does not name
 * is unchanged. */
TEST(mobile_profile_clamps_the_capabilities_to_a_phone_gpu) {
    pvk_caps *own, *mob;
    uint32_t n_own, n_mob;
    REQUIRE(pvk_dev_enumerate(&own, &n_own) == PHIVK_OK, "enumerate: %s", pvk_errmsg());
    setenv("PHIVK_DEVICE_PROFILE", "mobile", 1);
    phivk_status s = pvk_dev_enumerate(&mob, &n_mob);
    unsetenv("PHIVK_DEVICE_PROFILE");
    REQUIRE(s == PHIVK_OK, "enumerate with the mobile profile: %s", pvk_errmsg());
    REQUIRE(n_own == n_mob && n_own > 0, "%u devices without the profile, %u with it", n_own, n_mob);
    for (uint32_t i = 0; i < n_own; i++) {
        const pvk_caps *a = &own[i], *b = &mob[i];
        if (!a->usable) continue;
        CHECK(b->max_wg_invocations == min_u64(a->max_wg_invocations, 256), "invocations %u", b->max_wg_invocations);
        for (int k = 0; k < 3; k++)
            CHECK(b->max_wg_size[k] == min_u64(a->max_wg_size[k], b->max_wg_invocations), "workgroup size[%d] %u",
                  k, b->max_wg_size[k]);
        CHECK(b->max_shared == min_u64(a->max_shared, 16u << 10), "shared memory %u", b->max_shared);
        CHECK(b->max_storage_range == min_u64(a->max_storage_range, 128ull << 20), "storage range %llu",
              (unsigned long long)b->max_storage_range);
        CHECK(b->max_binding_bytes <= b->max_storage_range, "binding %llu beyond the range",
              (unsigned long long)b->max_binding_bytes);
        CHECK(b->max_alloc == min_u64(a->max_alloc, 1ull << 30), "allocation %llu", (unsigned long long)b->max_alloc);
        CHECK(!b->int_dot && !b->int_dot_accel, "integer dot product off");
        CHECK(!b->storage16, "16-bit storage off");
        CHECK(b->fp16 == a->fp16 && b->storage8 == a->storage8 && b->subgroup == a->subgroup &&
              b->texel == a->texel && b->max_wg_count[0] == a->max_wg_count[0],
              "what the profile does not name is the device's own");
    }
    free(own);
    free(mob);
    /* The device opens with exactly the clamped features (validation watches). */
    pvk_dev *d = open_with("PHIVK_DEVICE_PROFILE", "mobile");
    REQUIRE(d, "device");
    CHECK(pvk_dev_caps(d)->max_wg_invocations <= 256 && !pvk_dev_caps(d)->storage16, "the device has the profile");
    CHECK(run_eltwise(d, PVK_KERNEL_ADD, 5000, 3) == 0, "a kernel runs under the profile");
    close_checked(d);
}

TEST(an_unknown_device_profile_is_refused_with_the_known_ones) {
    setenv("PHIVK_DEVICE_PROFILE", "phone", 1);
    pvk_caps *caps = NULL;
    uint32_t n;
    phivk_status s = pvk_dev_enumerate(&caps, &n);
    CHECK(s == PHIVK_ERR_INVALID, "enumerate: status %d", s);
    CHECK(strstr(pvk_errmsg(), "\"phone\"") && strstr(pvk_errmsg(), "mobile"), "message: %s", pvk_errmsg());
    free(caps);
    pvk_dev_params p = pvk_dev_default_params();
    pvk_dev *d = NULL;
    CHECK(pvk_dev_create(&p, &d) == PHIVK_ERR_INVALID && !d, "device creation refuses it too");
    unsetenv("PHIVK_DEVICE_PROFILE");
}

TEST(descriptor_pool_path_without_push_descriptors) {
    pvk_dev *d = open_with("PHIVK_DISABLE_PUSH_DESCRIPTOR", "1");
    REQUIRE(d, "device");
    CHECK(!pvk_dev_caps(d)->push_descriptor, "push descriptors are off");
    /* 600 dispatches in one recording need more than one 256-set pool. */
    CHECK(run_eltwise(d, PVK_KERNEL_ADD, 5000, 600) == 0, "add through descriptor sets");
    CHECK(run_eltwise(d, PVK_KERNEL_MUL, 5000, 3) == 0, "a second recording reuses the reset pools");
    close_checked(d);
}

TEST(texel_views_and_their_kill_switch) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    pvk_buf b;
    VkBufferView v;
    REQUIRE(pvk_buf_create(d, 4096, PVK_MEM_DEVICE, &b) == PHIVK_OK, "create");
    if (pvk_dev_caps(d)->texel) {
        CHECK(pvk_buf_view(d, &b, 0, 4096, VK_FORMAT_R32G32B32A32_SFLOAT, &v) == PHIVK_OK, "view: %s", pvk_errmsg());
        pvk_view_destroy(d, v);
        CHECK(pvk_buf_view(d, &b, 0, 4095, VK_FORMAT_R32_UINT, &v) == PHIVK_ERR_INVALID, "partial texels refused");
    } else {
        printf("    no texel buffers on this device: only the kill switch is checked\n");
    }
    pvk_buf_destroy(d, &b);
    pvk_dev *off = open_with("PHIVK_DISABLE_TEXEL", "1");
    REQUIRE(off, "device");
    REQUIRE(pvk_buf_create(off, 4096, PVK_MEM_DEVICE, &b) == PHIVK_OK, "create");
    CHECK(pvk_buf_view(off, &b, 0, 4096, VK_FORMAT_R32G32B32A32_UINT, &v) == PHIVK_ERR_UNSUPPORTED,
          "texel views are unsupported once switched off");
    pvk_buf_destroy(off, &b);
    close_checked(off);
}

TEST(pipeline_cache_file_is_written_and_reused) {
    char dir[] = "/tmp/phivk-cache-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char sub[64];
    snprintf(sub, sizeof sub, "%s/nested", dir); /* the folder does not exist yet */
    setenv("XDG_CACHE_HOME", sub, 1);
    pvk_dev *d = open_with(NULL, NULL);
    REQUIRE(d, "device");
    const pvk_caps *c = pvk_dev_caps(d);
    uint32_t vendor = c->vendor_id, device = c->device_id;
    CHECK(run_eltwise(d, PVK_KERNEL_ADD, 10, 1) == 0, "a pipeline to cache");
    close_checked(d);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/phivk/pipelines-%04x-%04x-*.bin >/dev/null 2>&1", sub, vendor, device);
    CHECK(system(cmd) == 0, "no pipeline cache file under %s/phivk", sub);
    d = open_with(NULL, NULL); /* loads the file it wrote */
    CHECK(d && run_eltwise(d, PVK_KERNEL_ADD, 10, 1) == 0, "a second device uses the cache");
    close_checked(d);
    unsetenv("XDG_CACHE_HOME");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "clean up");
}

TEST(profile_prints_per_dispatch_times_with_shader_names) {
    pvk_dev *d = open_with("PHIVK_PROFILE", "1");
    REQUIRE(d, "device");
    if (!pvk_dev_caps(d)->timestamps) {
        close_checked(d);
        SKIP("the device has no timestamp queries: nothing to profile");
    }
    /* PHIVK_PROFILE is read when the command object is made. */
    setenv("PHIVK_PROFILE", "1", 1);
    fflush(stderr);
    int saved = dup(2);
    FILE *log = tmpfile();
    dup2(fileno(log), 2);
    int bad = run_eltwise(d, PVK_KERNEL_MUL, 1000, 3);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("PHIVK_PROFILE");
    char text[8192] = "";
    rewind(log);
    size_t len = fread(text, 1, sizeof text - 1, log);
    text[len] = 0;
    fclose(log);
    CHECK(bad == 0, "mul with profiling");
    CHECK(strstr(text, "phivk profile:") && strstr(text, "mul") && strstr(text, "3 dispatches"),
          "stderr names the shader and counts dispatches: %s", text);
    close_checked(d);
}

TEST(missing_validation_layer_is_a_clear_error) {
    /* An empty layer search path hides the Khronos layer from the loader. */
    const char *old = getenv("VK_LAYER_PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("VK_LAYER_PATH", "/nonexistent-phivk-layers", 1);
    setenv("VK_ADD_LAYER_PATH", "", 1);
    pvk_dev_params p = pvk_dev_default_params();
    p.validate = true;
    pvk_dev *d = NULL;
    phivk_status s = pvk_dev_create(&p, &d);
    if (saved) setenv("VK_LAYER_PATH", saved, 1);
    else unsetenv("VK_LAYER_PATH");
    unsetenv("VK_ADD_LAYER_PATH");
    free(saved);
    CHECK(s == PHIVK_ERR_UNSUPPORTED && d == NULL, "status %d", (int)s);
    CHECK(strstr(pvk_errmsg(), "VK_LAYER_KHRONOS_validation"), "the message names the layer: %s", pvk_errmsg());
}

TEST(devices_report_marks_the_default_in_text_and_json) {
    char *text = phivk_devices_report(false);
    REQUIRE(text, "text report: %s", phivk_last_error());
    pvk_caps *caps;
    uint32_t n, chosen;
    REQUIRE(pvk_dev_enumerate(&caps, &n) == PHIVK_OK && pvk_dev_choose(caps, n, NULL, &chosen) == PHIVK_OK, "choose");
    CHECK(strstr(text, caps[chosen].name) && strstr(text, "<- phivk's default"), "text names the default: %s", text);
    CHECK(strstr(text, "max binding (phivk)") && strstr(text, "subgroup size"), "text lists limits");
    free(text);
    char *json = phivk_devices_report(true);
    REQUIRE(json, "json report: %s", phivk_last_error());
    cJSON *root = cJSON_Parse(json);
    CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) == (int)n, "a JSON array of %u devices: %s", n, json);
    cJSON *dev = cJSON_GetArrayItem(root, (int)chosen);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(dev, "default")), "the default is marked");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(dev, "subgroup_size")) == caps[chosen].subgroup_size &&
          cJSON_GetNumberValue(cJSON_GetObjectItem(dev, "max_storage_range")) == (double)caps[chosen].max_storage_range,
          "values agree with the caps");
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(dev, "heaps")), "heaps listed");
    cJSON_Delete(root);
    free(json);
    phivk_device_desc *desc;
    int nd;
    CHECK(phivk_devices(&desc, &nd) == PHIVK_OK && nd == (int)n, "phivk_devices");
    CHECK(nd < 1 || (desc[0].name[0] && desc[0].kind), "a described device");
    free(desc);
    free(caps);
}

TEST(fill_copy_and_barriers_order_transfers_around_dispatches) {
    pvk_dev *d;
    REQUIRE(d = test_gpu(), "no device");
    const uint32_t n = 1000, wg = 64, groups = (n + wg - 1) / wg, push[2] = {n, groups * wg};
    pvk_buf a, o, host;
    pvk_cmd *c;
    pvk_pipe *p;
    pvk_kernel k = {.id = PVK_KERNEL_ADD, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg};
    REQUIRE(!pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &a) && !pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &o) &&
            !pvk_buf_create(d, n * 4, PVK_MEM_HOST, &host) && !pvk_pipe_get(d, &k, &p) && !pvk_cmd_create(d, &c),
            "setup: %s", pvk_errmsg());
    REQUIRE(pvk_cmd_begin(c) == PHIVK_OK, "begin");
    pvk_cmd_fill(c, &a, 0, n * 4, 0x3fc00000u); /* 1.5f */
    pvk_cmd_barrier(c, PVK_TRANSFER_TO_COMPUTE);
    pvk_binding bind[3] = {pvk_bind(&a), pvk_bind(&a), pvk_bind(&o)};
    pvk_cmd_dispatch(c, p, bind, push, groups, 1, 1);
    pvk_cmd_barrier(c, PVK_COMPUTE_TO_TRANSFER);
    pvk_cmd_copy(c, &o, 0, &host, 0, n * 4);
    pvk_cmd_barrier(c, PVK_COMPUTE_TO_HOST);
    REQUIRE(pvk_cmd_submit(c) == PHIVK_OK, "submit: %s", pvk_errmsg());
    const float *got = host.map;
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) bad += got[i] != 3.0f;
    CHECK(bad == 0, "%d of %u elements differ from 1.5 + 1.5 = 3 (exact in binary)", bad, n);
    CHECK(pvk_cmd_begin(c) == PHIVK_OK, "begin");
    pvk_cmd_fill(c, &a, 2, 8, 0);
    CHECK(pvk_cmd_submit(c) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "multiples of 4"),
          "an unaligned fill is a sticky error: %s", pvk_errmsg());
    CHECK(pvk_cmd_begin(c) == PHIVK_OK, "begin");
    pvk_cmd_copy(c, &a, 0, &host, 8, n * 4);
    CHECK(pvk_cmd_submit(c) == PHIVK_ERR_INVALID && strstr(pvk_errmsg(), "outside the buffer"),
          "a copy past the end is refused: %s", pvk_errmsg());
    CHECK(pvk_cmd_submit(c) == PHIVK_ERR_INVALID, "submit without begin is refused");
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &a);
    pvk_buf_destroy(d, &o);
    pvk_buf_destroy(d, &host);
}

/* The messenger counts what the layer reports, synchronization hazards included:
 * a dispatch reading what the previous one wrote, with no barrier between (the
 * recorder places none with PHIVK_BARRIERS=off). */
TEST(validation_counts_a_missing_barrier) {
    pvk_dev *d = open_with(NULL, NULL);
    REQUIRE(d, "device");
    const uint32_t n = 256, wg = 64, push[2] = {n, n};
    pvk_buf a, o;
    pvk_cmd *c = NULL;
    pvk_pipe *p;
    pvk_kernel k = {.id = PVK_KERNEL_MUL, .bindings = "sss", .push_bytes = 8, .n_spec = 1, .spec = &wg};
    setenv("PHIVK_BARRIERS", "off", 1);
    phivk_status made = pvk_cmd_create(d, &c);
    unsetenv("PHIVK_BARRIERS");
    REQUIRE(!pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &a) && !pvk_buf_create(d, n * 4, PVK_MEM_DEVICE, &o) &&
            !pvk_pipe_get(d, &k, &p) && !made && !pvk_cmd_begin(c), "setup: %s", pvk_errmsg());
    pvk_binding first[3] = {pvk_bind(&a), pvk_bind(&a), pvk_bind(&o)}, second[3] = {pvk_bind(&o), pvk_bind(&o), pvk_bind(&a)};
    uint64_t before = pvk_dev_validation_count(d);
    pvk_cmd_dispatch(c, p, first, push, n / wg, 1, 1);
    pvk_cmd_dispatch(c, p, second, push, n / wg, 1, 1);
    CHECK(pvk_cmd_submit(c) == PHIVK_OK, "submit: %s", pvk_errmsg());
    CHECK(pvk_dev_validation_count(d) > before, "no validation message for a read-after-write hazard");
    CHECK(strstr(pvk_dev_validation_last(d), "HAZARD"), "the last message names the hazard: %s",
          pvk_dev_validation_last(d));
    pvk_cmd_destroy(c);
    pvk_buf_destroy(d, &a);
    pvk_buf_destroy(d, &o);
    pvk_dev_destroy(d);
}
