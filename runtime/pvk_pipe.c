/* Compute pipelines from the embedded SPIR-V, cached per device by kernel id and
 * specialization, and
 * the VkPipelineCache persisted under $XDG_CACHE_HOME/phivk so that a second run
 * skips the driver's compile. Cache file trouble never fails anything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvk_impl.h"
#include "pvk_spirv.h"

/* ----------------------------------------------------------- pipeline cache */

bool pvk_cache_path(const pvk_dev *d, const char *kind, const char *ext, char *out, size_t cap) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(d->phys, &p);
    const char *own = getenv("PHIVK_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (own && *own) n = snprintf(out, cap, "%s", own);
    else if (xdg && *xdg) n = snprintf(out, cap, "%s/phivk", xdg);
    else if (home && *home) n = snprintf(out, cap, "%s/.cache/phivk", home);
    else return false;
    if (n < 0 || (size_t)n >= cap) return false;
    n += snprintf(out + n, cap - (size_t)n, "/%s-%04x-%04x-%u%s", kind, p.vendorID, p.deviceID, p.driverVersion, ext);
    return n > 0 && (size_t)n < cap;
}

/* Reads the file when its header says it was written for this very device and
 * driver; a stale or foreign cache would be ignored by the driver at best. */
static void *cache_load(const char *path, const VkPhysicalDeviceProperties *p, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *data = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 32 && len < (1l << 30) && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)len)) &&
        fread(data, 1, (size_t)len, f) == (size_t)len) {
        uint32_t hdr[4];
        memcpy(hdr, data, sizeof hdr);
        if (hdr[0] >= 32 && hdr[0] <= (uint32_t)len && hdr[1] == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
            hdr[2] == p->vendorID && hdr[3] == p->deviceID &&
            !memcmp(data + 16, p->pipelineCacheUUID, VK_UUID_SIZE)) {
            fclose(f);
            *n = (size_t)len;
            return data;
        }
    }
    free(data);
    fclose(f);
    return NULL;
}

void pvk_pipe_cache_open(pvk_dev *d) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(d->phys, &p);
    size_t n = 0;
    void *data = NULL;
    if (pvk_cache_path(d, "pipelines", ".bin", d->cache_path, sizeof d->cache_path)) data = cache_load(d->cache_path, &p, &n);
    else d->cache_path[0] = 0;
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = n, .pInitialData = data};
    if (vkCreatePipelineCache(d->vk, &ci, NULL, &d->pipeline_cache) != VK_SUCCESS && data) {
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        if (vkCreatePipelineCache(d->vk, &ci, NULL, &d->pipeline_cache) != VK_SUCCESS)
            d->pipeline_cache = VK_NULL_HANDLE;
    }
    free(data);
}

bool pvk_cache_make_parent(const char *path) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return true;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0755) && errno != EEXIST) return false;
        *p = '/';
    }
    return !mkdir(dir, 0755) || errno == EEXIST;
}

/* Written beside and renamed over, so a crash never leaves half a cache file. */
static void cache_save(pvk_dev *d) {
    size_t n = 0;
    if (!d->pipeline_cache || !d->cache_path[0] ||
        vkGetPipelineCacheData(d->vk, d->pipeline_cache, &n, NULL) != VK_SUCCESS || n == 0)
        return;
    void *data = malloc(n);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", d->cache_path, (long)getpid());
    FILE *f = NULL;
    if (data && vkGetPipelineCacheData(d->vk, d->pipeline_cache, &n, data) == VK_SUCCESS &&
        pvk_cache_make_parent(d->cache_path) && (f = fopen(tmp, "wb"))) {
        bool ok = fwrite(data, 1, n, f) == n;
        ok &= fclose(f) == 0;
        if (!ok || rename(tmp, d->cache_path)) remove(tmp);
    }
    free(data);
}

static void pipe_free(pvk_dev *d, struct pvk_pipe *p) {
    vkDestroyPipeline(d->vk, p->vk, NULL);
    vkDestroyPipelineLayout(d->vk, p->layout, NULL);
    vkDestroyDescriptorSetLayout(d->vk, p->set_layout, NULL);
    free(p->spec);
    free(p);
}

void pvk_pipes_release(pvk_dev *d) {
    cache_save(d);
    for (int id = 0; id < PVK_KERNEL_COUNT; id++) {
        struct pvk_pipe_set *set = &d->pipes[id];
        for (uint32_t i = 0; i < set->n; i++) pipe_free(d, set->v[i]);
        free(set->v);
        *set = (struct pvk_pipe_set){0};
    }
    if (d->pipeline_cache) vkDestroyPipelineCache(d->vk, d->pipeline_cache, NULL);
    d->pipeline_cache = VK_NULL_HANDLE;
}

/* ---------------------------------------------------------------- pipelines */

static bool same_key(const struct pvk_pipe *p, const pvk_kernel *k) {
    return p->push_bytes == k->push_bytes && p->n_spec == k->n_spec && p->subgroup_size == k->subgroup_size &&
           (!k->n_spec || !memcmp(p->spec, k->spec, k->n_spec * sizeof *k->spec));
}

/* Checked when a pipeline is made; lookups of a cached one compare numbers only. */
static phivk_status check_kernel(const pvk_kernel *k, const char *name) {
    if (!k->bindings || strlen(k->bindings) >= sizeof ((struct pvk_pipe *)0)->bindings)
        return pvk_fail(PHIVK_ERR_INVALID, "kernel %s: a binding string of at most 32 is needed", name);
    if (strspn(k->bindings, "st") != strlen(k->bindings))
        return pvk_fail(PHIVK_ERR_INVALID, "kernel %s: bindings \"%s\" may hold only 's' and 't'", name,
                        k->bindings);
    if (k->push_bytes > 128 || k->push_bytes % 4)
        return pvk_fail(PHIVK_ERR_INVALID, "kernel %s: %u push-constant bytes; phivk allows a multiple of 4 up to "
                        "128 (the minimum every device supports)", name, k->push_bytes);
    if (k->n_spec > 64 || (k->n_spec && !k->spec))
        return pvk_fail(PHIVK_ERR_INVALID, "kernel %s: %u specialization constants without values", name,
                        k->n_spec);
    return PHIVK_OK;
}

/* The workgroup's x size as the pipeline will run it: the LocalSize literal, or the
 * WorkgroupSize built-in's x (a specialization constant's value, else its default).
 * 0 when the module says neither. Lets pvk_pipe_get refuse a workgroup the device
 * cannot run, and require full subgroups only where x is a multiple of the size. */
static uint32_t local_size_x(const pvk_spirv *m, const uint32_t *spec, uint32_t n_spec) {
    enum { OP_EXECUTION_MODE = 16, OP_CONSTANT = 43, OP_SPEC_CONSTANT = 50, OP_SPEC_CONSTANT_COMPOSITE = 51,
           OP_DECORATE = 71, MODE_LOCAL_SIZE = 17, DEC_SPEC_ID = 1, DEC_BUILTIN = 11, BUILTIN_WORKGROUP_SIZE = 25 };
    const uint32_t *w = m->code;
    size_t n = m->bytes / 4;
    uint32_t literal = 0, wg_id = 0, x_id = 0, x_spec_id = UINT32_MAX, x_value = 0;
    /* Two passes: decorations come before the constants they name, but the x
     * constituent is known only after the composite. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 5; i < n;) {
            uint32_t len = w[i] >> 16, op = w[i] & 0xffff;
            if (len == 0 || i + len > n) return 0;
            const uint32_t *a = w + i + 1;
            if (pass == 0 && op == OP_EXECUTION_MODE && len >= 4 && a[1] == MODE_LOCAL_SIZE) literal = a[2];
            if (pass == 0 && op == OP_DECORATE && len >= 4 && a[1] == DEC_BUILTIN && a[2] == BUILTIN_WORKGROUP_SIZE)
                wg_id = a[0];
            if (pass == 0 && op == OP_SPEC_CONSTANT_COMPOSITE && len >= 4 && a[1] == wg_id && wg_id) x_id = a[2];
            if (pass == 1 && op == OP_DECORATE && len >= 4 && a[0] == x_id && a[1] == DEC_SPEC_ID) x_spec_id = a[2];
            if (pass == 1 && (op == OP_CONSTANT || op == OP_SPEC_CONSTANT) && len >= 4 && a[1] == x_id) x_value = a[2];
            i += len;
        }
        if (!x_id) return literal;
    }
    return x_spec_id < n_spec ? spec[x_spec_id] : x_value;
}

/* Bit i set: the module may write binding i (set 0), a storage buffer whose block is
 * not `readonly` (NonWritable on the variable or on every member). The barrier
 * tracker (pvk_cmd.c) reads it; a module it cannot parse has every bit set, which
 * costs barriers, never correctness. */
static uint32_t written_bindings(const pvk_spirv *m) {
    enum { OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32, OP_VARIABLE = 59, OP_DECORATE = 71, OP_MEMBER_DECORATE = 72,
           DEC_BUFFER_BLOCK = 3, DEC_NON_WRITABLE = 24, DEC_BINDING = 33, SC_UNIFORM = 2, SC_STORAGE_BUFFER = 12 };
    const uint32_t *w = m->code;
    size_t n = m->bytes / 4;
    uint32_t bound = n > 5 ? w[3] : 0;
    /* per id: binding + 1, flags, member counts, pointee */
    enum { F_NON_WRITABLE = 1, F_BUFFER_BLOCK = 2 };
    uint32_t *binding = calloc(bound, 4), *flags = calloc(bound, 4), *members = calloc(bound, 4),
             *nw_members = calloc(bound, 4), *pointee = calloc(bound, 4);
    uint32_t mask = 0;
    bool ok = binding && flags && members && nw_members && pointee;
    for (size_t i = 5; ok && i < n;) {
        uint32_t len = w[i] >> 16, op = w[i] & 0xffff;
        const uint32_t *a = w + i + 1;
        if (len == 0 || i + len > n) {
            ok = false;
            break;
        }
        bool used = op == OP_DECORATE || op == OP_MEMBER_DECORATE || op == OP_TYPE_STRUCT || op == OP_TYPE_POINTER ||
                    op == OP_VARIABLE;
        if (used && (len < 2 || a[0] >= bound)) {
            ok = false;
            break;
        }
        if (op == OP_DECORATE && len >= 3 && a[1] == DEC_NON_WRITABLE) flags[a[0]] |= F_NON_WRITABLE;
        if (op == OP_DECORATE && len >= 3 && a[1] == DEC_BUFFER_BLOCK) flags[a[0]] |= F_BUFFER_BLOCK;
        if (op == OP_DECORATE && len >= 4 && a[1] == DEC_BINDING) binding[a[0]] = a[2] + 1;
        if (op == OP_MEMBER_DECORATE && len >= 4 && a[2] == DEC_NON_WRITABLE) nw_members[a[0]]++;
        if (op == OP_TYPE_STRUCT) members[a[0]] = len - 2;
        if (op == OP_TYPE_POINTER && len >= 4 && a[2] < bound) pointee[a[0]] = a[2];
        if (op == OP_VARIABLE && len >= 4 && a[1] < bound && a[0] < bound && binding[a[1]]) {
            uint32_t block = pointee[a[0]];
            bool storage = a[2] == SC_STORAGE_BUFFER || (a[2] == SC_UNIFORM && (flags[block] & F_BUFFER_BLOCK));
            bool readonly = (flags[a[1]] & F_NON_WRITABLE) || (members[block] && nw_members[block] >= members[block]);
            if (storage && !readonly && binding[a[1]] <= 32) mask |= 1u << (binding[a[1]] - 1);
        }
        i += len;
    }
    free(binding);
    free(flags);
    free(members);
    free(nw_members);
    free(pointee);
    return ok ? mask : UINT32_MAX;
}

static phivk_status layouts_create(pvk_dev *d, struct pvk_pipe *p) {
    VkDescriptorSetLayoutBinding lb[32];
    for (uint32_t i = 0; i < p->n_bind; i++)
        lb[i] = (VkDescriptorSetLayoutBinding){
            .binding = i, .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
            .descriptorType = p->bindings[i] == 't' ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                    : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
    VkDescriptorSetLayoutCreateInfo si = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = p->n_bind, .pBindings = lb,
        .flags = d->caps.push_descriptor ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0};
    VkResult r = vkCreateDescriptorSetLayout(d->vk, &si, NULL, &p->set_layout);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = p->push_bytes};
    VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                     .pSetLayouts = &p->set_layout, .pushConstantRangeCount = p->push_bytes ? 1 : 0,
                                     .pPushConstantRanges = &pr};
    r = vkCreatePipelineLayout(d->vk, &li, NULL, &p->layout);
    return r == VK_SUCCESS ? PHIVK_OK : pvk_vk_fail(r, "vkCreatePipelineLayout");
}

static phivk_status pipeline_create(pvk_dev *d, struct pvk_pipe *p, const pvk_spirv *m) {
    uint32_t wg_x = p->wg_x = local_size_x(m, p->spec, p->n_spec);
    p->written = written_bindings(m);
    if (wg_x > d->caps.max_wg_size[0] || wg_x > d->caps.max_wg_invocations)
        return pvk_fail(PHIVK_ERR_UNSUPPORTED, "a workgroup of %u invocations along x is more than %s allows (%u, %u "
                        "in all): choose a smaller workgroup size", wg_x, d->caps.name, d->caps.max_wg_size[0],
                        d->caps.max_wg_invocations);
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = m->bytes,
                                   .pCode = m->code};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(d->vk, &mi, NULL, &mod);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateShaderModule");
    VkSpecializationMapEntry me[64];
    for (uint32_t i = 0; i < p->n_spec; i++)
        me[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
    VkSpecializationInfo spec = {.mapEntryCount = p->n_spec, .pMapEntries = me, .dataSize = p->n_spec * 4,
                                 .pData = p->spec};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo sg = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = p->subgroup_size};
    const pvk_caps *c = &d->caps;
    bool sized = p->subgroup_size && c->subgroup_size_control && p->subgroup_size >= c->subgroup_min &&
                 p->subgroup_size <= c->subgroup_max;
    bool full = sized && d->full_subgroups && wg_x && wg_x % p->subgroup_size == 0;
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = sized ? &sg : NULL,
                  .flags = full ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT : 0,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                  .pSpecializationInfo = p->n_spec ? &spec : NULL},
        .layout = p->layout};
    r = vkCreateComputePipelines(d->vk, d->pipeline_cache, 1, &ci, NULL, &p->vk);
    vkDestroyShaderModule(d->vk, mod, NULL);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkCreateComputePipelines");
    pvk_name(d, VK_OBJECT_TYPE_PIPELINE, (uint64_t)p->vk, "%s", p->shader);
    pvk_name(d, VK_OBJECT_TYPE_PIPELINE_LAYOUT, (uint64_t)p->layout, "%s", p->shader);
    pvk_name(d, VK_OBJECT_TYPE_DESCRIPTOR_SET_LAYOUT, (uint64_t)p->set_layout, "%s", p->shader);
    return PHIVK_OK;
}

/* Makes the pipeline of k from module m, or fails naming it. */
static phivk_status pipe_create(pvk_dev *d, const pvk_kernel *k, const pvk_spirv *m, struct pvk_pipe **out) {
    *out = NULL;
    phivk_status s = check_kernel(k, m->name);
    if (s) return s;
    struct pvk_pipe *p = calloc(1, sizeof *p);
    if (!p || (k->n_spec && !(p->spec = malloc(k->n_spec * sizeof *p->spec)))) {
        free(p);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory creating pipeline %s", m->name);
    }
    p->shader = m->name;
    snprintf(p->bindings, sizeof p->bindings, "%s", k->bindings);
    p->n_bind = (uint32_t)strlen(k->bindings);
    p->push_bytes = k->push_bytes;
    p->n_spec = k->n_spec;
    p->subgroup_size = k->subgroup_size;
    if (k->n_spec) memcpy(p->spec, k->spec, k->n_spec * sizeof *p->spec);
    if ((s = layouts_create(d, p)) || (s = pipeline_create(d, p, m))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pvk_errmsg());
        pipe_free(d, p);
        return pvk_fail(s, "pipeline %s: %s", m->name, msg);
    }
    *out = p;
    return PHIVK_OK;
}

phivk_status pvk_pipe_get(pvk_dev *d, const pvk_kernel *k, pvk_pipe **out) {
    *out = NULL;
    if (!k || k->id <= PVK_KERNEL_NONE || k->id >= PVK_KERNEL_COUNT || !pvk_spirv_modules[k->id].code)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_pipe_get: kernel id %d is not a compiled variant (pvk_kernels.h)",
                        k ? (int)k->id : -1);
    struct pvk_pipe_set *set = &d->pipes[k->id];
    for (uint32_t i = 0; i < set->n; i++)
        if (same_key(set->v[i], k)) {
            *out = set->v[i];
            return PHIVK_OK;
        }
    if (set->n == set->cap) {
        uint32_t cap = set->cap ? 2 * set->cap : 4;
        struct pvk_pipe **v = realloc(set->v, cap * sizeof *v);
        if (!v) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory caching pipelines");
        set->v = v;
        set->cap = cap;
    }
    struct pvk_pipe *p;
    phivk_status s = pipe_create(d, k, &pvk_spirv_modules[k->id], &p);
    if (s) return s;
    set->v[set->n++] = p;
    *out = p;
    return PHIVK_OK;
}
