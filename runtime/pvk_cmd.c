/* Command recording: dispatches with push constants and descriptors (pushed with
 * VK_KHR_push_descriptor, else from descriptor pools reset per recording), the one
 * barrier helper, copies, submit + fence wait, and the PHIVK_PROFILE timestamps.
 * Recording calls return nothing: their first error sticks and submit returns it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvk_fault.h"
#include "pvk_impl.h"

enum {
    MAX_BIND = 32,
    PROFILE_MAX = 4096,          /* dispatches timed per recording */
    POOL_SETS = 256,             /* descriptor sets per pool */
};

/* Where barriers between dispatches come from (PHIVK_BARRIERS). */
typedef enum barrier_mode {
    BARRIERS_DEPS,               /* from the dispatches' dependencies (the default) */
    BARRIERS_ALL,                /* one after every dispatch */
    BARRIERS_OFF,                /* only those the callers record */
} barrier_mode;

/* A byte range of a VkBuffer a dispatch binds; buf NULL: a texel view whose range is
 * not known, which conflicts with everything. */
typedef struct span {
    VkBuffer buf;
    VkDeviceSize lo, hi;
} span;

typedef struct span_set {
    span *v;
    uint32_t n, cap;
} span_set;

typedef struct timed_dispatch {
    const char *shader;          /* the variant's name (static) */
    uint32_t wg, g[3];           /* workgroup size along x, grid */
} timed_dispatch;

struct pvk_cmd {
    pvk_dev *d;
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    bool recording;
    phivk_status err;
    char errmsg[512];

    VkDescriptorPool *dpools;    /* without push descriptors */
    uint32_t n_dpools, cur_dpool;

    VkQueryPool queries;         /* with PHIVK_PROFILE=1 */
    timed_dispatch *timed;
    uint32_t n_timed, n_untimed;

    barrier_mode barriers;
    span_set wrote, read;        /* by dispatches since the last compute barrier */

    uint64_t recording_id;       /* counts pvk_cmd_begin calls: names what cb holds */
    bool replayable;             /* cb holds a recording submitted without error */
    double t_begin;              /* pvk_now_s() at pvk_cmd_begin */
    pvk_cmd_stats cur, last;     /* the recording under way, the last one submitted */
};

/* Keeps the first error of a recording for submit; returns false for "not recorded". */
static bool cmd_error(pvk_cmd *c, phivk_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool cmd_error(pvk_cmd *c, phivk_status code, const char *fmt, ...) {
    if (c->err) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    c->err = code;
    return false;
}

phivk_status pvk_cmd_create(pvk_dev *d, pvk_cmd **out) {
    *out = NULL;
    pvk_cmd *c = calloc(1, sizeof *c);
    if (!c) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory creating a command buffer");
    c->d = d;
    phivk_status s;
    const char *mode = getenv("PHIVK_BARRIERS");
    if (mode && *mode && strcmp(mode, "deps")) {
        c->barriers = !strcmp(mode, "all") ? BARRIERS_ALL : !strcmp(mode, "off") ? BARRIERS_OFF : (barrier_mode)-1;
        if (c->barriers == (barrier_mode)-1) {
            free(c);
            return pvk_fail(PHIVK_ERR_INVALID, "PHIVK_BARRIERS=%s: use deps (the default: barriers from the "
                            "dispatches' dependencies), all (one after every dispatch) or off", mode);
        }
    }
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
                                  .queueFamilyIndex = d->queue_family};
    VkResult r = vkCreateCommandPool(d->vk, &pi, NULL, &c->pool);
    if (r != VK_SUCCESS) goto vk_fail;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = c->pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if ((r = vkAllocateCommandBuffers(d->vk, &ai, &c->cb)) != VK_SUCCESS) goto vk_fail;
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateFence(d->vk, &fi, NULL, &c->fence)) != VK_SUCCESS) goto vk_fail;
    if (pvk_env_flag("PHIVK_PROFILE") && d->caps.timestamps) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2 * PROFILE_MAX};
        if ((r = vkCreateQueryPool(d->vk, &qi, NULL, &c->queries)) != VK_SUCCESS) goto vk_fail;
        if (!(c->timed = calloc(PROFILE_MAX, sizeof *c->timed))) {
            s = pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the profile");
            goto fail;
        }
    }
    pvk_name(d, VK_OBJECT_TYPE_COMMAND_BUFFER, (uint64_t)(uintptr_t)c->cb, "phivk commands");
    *out = c;
    return PHIVK_OK;
vk_fail:
    s = pvk_vk_fail(r, "creating a command buffer");
fail:
    pvk_cmd_destroy(c);
    return s;
}

void pvk_cmd_destroy(pvk_cmd *c) {
    if (!c) return;
    VkDevice vk = c->d->vk;
    if (c->recording) vkEndCommandBuffer(c->cb);
    for (uint32_t i = 0; i < c->n_dpools; i++) vkDestroyDescriptorPool(vk, c->dpools[i], NULL);
    free(c->dpools);
    if (c->queries) vkDestroyQueryPool(vk, c->queries, NULL);
    free(c->timed);
    free(c->wrote.v);
    free(c->read.v);
    if (c->fence) vkDestroyFence(vk, c->fence, NULL);
    if (c->pool) vkDestroyCommandPool(vk, c->pool, NULL);
    free(c);
}

phivk_status pvk_cmd_begin(pvk_cmd *c) {
    VkDevice vk = c->d->vk;
    phivk_status s = pvk_dev_usable(c->d);
    if (s) return s;
    if (c->recording) vkEndCommandBuffer(c->cb);
    c->recording = false;
    c->replayable = false;
    c->recording_id++;
    c->err = PHIVK_OK;
    c->n_timed = c->n_untimed = 0;
    c->cur_dpool = 0;
    c->t_begin = pvk_now_s();
    c->cur = (pvk_cmd_stats){0};
    c->wrote.n = c->read.n = 0;
    VkResult r = vkResetCommandPool(vk, c->pool, 0);
    for (uint32_t i = 0; i < c->n_dpools && r == VK_SUCCESS; i++) r = vkResetDescriptorPool(vk, c->dpools[i], 0);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "resetting a command buffer");
    /* Not one-time: a recording may be submitted again (pvk_cmd_replay). */
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if ((r = vkBeginCommandBuffer(c->cb, &bi)) != VK_SUCCESS) return pvk_vk_fail(r, "vkBeginCommandBuffer");
    if (c->queries) vkCmdResetQueryPool(c->cb, c->queries, 0, 2 * PROFILE_MAX);
    c->recording = true;
    return PHIVK_OK;
}

/* A descriptor set for p from the recording's pools, adding a pool when all are full. */
static VkDescriptorSet alloc_set(pvk_cmd *c, const struct pvk_pipe *p) {
    VkDevice vk = c->d->vk;
    for (;;) {
        if (c->cur_dpool == c->n_dpools) {
            VkDescriptorPool *np = realloc(c->dpools, (c->n_dpools + 1) * sizeof *np);
            if (!np) {
                cmd_error(c, PHIVK_ERR_HOST_MEMORY, "out of host memory growing descriptor pools");
                return VK_NULL_HANDLE;
            }
            c->dpools = np;
            VkDescriptorPoolSize sizes[] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, POOL_SETS * 8},
                                            {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, POOL_SETS * 4}};
            VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                             .maxSets = POOL_SETS, .poolSizeCount = 2, .pPoolSizes = sizes};
            VkResult r = vkCreateDescriptorPool(vk, &ci, NULL, &c->dpools[c->n_dpools]);
            if (r != VK_SUCCESS) {
                pvk_vk_fail(r, "vkCreateDescriptorPool");
                cmd_error(c, r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? PHIVK_ERR_DEVICE_MEMORY : PHIVK_ERR_VULKAN, "%s",
                          pvk_errmsg());
                return VK_NULL_HANDLE;
            }
            c->n_dpools++;
        }
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = c->dpools[c->cur_dpool], .descriptorSetCount = 1,
                                          .pSetLayouts = &p->set_layout};
        VkDescriptorSet set;
        VkResult r = vkAllocateDescriptorSets(vk, &ai, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) {
            cmd_error(c, pvk_vk_fail(r, "vkAllocateDescriptorSets"), "%s", pvk_errmsg());
            return VK_NULL_HANDLE;
        }
        c->cur_dpool++;
    }
}

static bool check_bindings(pvk_cmd *c, const struct pvk_pipe *p, const pvk_binding *b) {
    const pvk_caps *caps = &c->d->caps;
    for (uint32_t i = 0; i < p->n_bind; i++) {
        if (p->bindings[i] == 't') {
            if (!b[i].view)
                return cmd_error(c, PHIVK_ERR_INVALID, "%s: binding %u is a texel buffer but got no view", p->shader, i);
            continue;
        }
        if (!b[i].buf || !b[i].range || b[i].offset % caps->storage_align)
            return cmd_error(c, PHIVK_ERR_INVALID, "%s: binding %u needs a storage buffer range at a multiple of %llu "
                             "bytes", p->shader, i, (unsigned long long)caps->storage_align);
        if (b[i].range > caps->max_binding_bytes)
            return cmd_error(c, PHIVK_ERR_INVALID, "%s: binding %u spans %llu bytes, more than the %llu one binding "
                             "may (maxStorageBufferRange or PHIVK_MAX_BINDING_BYTES): split the tensor", p->shader,
                             i, (unsigned long long)b[i].range, (unsigned long long)caps->max_binding_bytes);
    }
    return true;
}

static bool dispatch_ok(pvk_cmd *c, const struct pvk_pipe *p, const pvk_binding *b, const void *push, uint32_t gx,
                        uint32_t gy, uint32_t gz) {
    const uint32_t *max = c->d->caps.max_wg_count;
    if (!c->recording) return cmd_error(c, PHIVK_ERR_INVALID, "pvk_cmd_dispatch outside pvk_cmd_begin/submit");
    if (!p) return cmd_error(c, PHIVK_ERR_INVALID, "pvk_cmd_dispatch without a pipeline");
    if ((p->n_bind && !b) || (p->push_bytes && !push))
        return cmd_error(c, PHIVK_ERR_INVALID, "%s: dispatch lacks its bindings or push constants", p->shader);
    if (gx > max[0] || gy > max[1] || gz > max[2])
        return cmd_error(c, PHIVK_ERR_INVALID, "%s: %u x %u x %u workgroups exceed the device limit %u x %u x %u",
                         p->shader, gx, gy, gz, max[0], max[1], max[2]);
    return check_bindings(c, p, b);
}

static span span_of(const pvk_binding *b) { return (span){b->buf, b->offset, b->offset + b->range}; }

static bool overlaps(const span_set *set, span x) {
    for (uint32_t i = 0; i < set->n; i++) {
        const span *y = &set->v[i];
        if (!x.buf || !y->buf || (x.buf == y->buf && x.lo < y->hi && y->lo < x.hi)) return true;
    }
    return false;
}

static bool add_span(pvk_cmd *c, span_set *set, span x) {
    if (set->n == set->cap) {
        uint32_t cap = set->cap ? 2 * set->cap : 16;
        span *v = realloc(set->v, cap * sizeof *v);
        if (!v) return cmd_error(c, PHIVK_ERR_HOST_MEMORY, "out of host memory tracking barriers");
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = x;
    return true;
}

/* The barrier p's dispatch needs after what was recorded since the last one: when
 * it reads or writes what one wrote (read-after-write, write-after-write) or writes
 * what one read (write-after-read). Every dispatch writes something, so the last
 * never comes without a write pending: one kind of barrier orders all three. */
static void track(pvk_cmd *c, const struct pvk_pipe *p, const pvk_binding *b) {
    if (c->barriers != BARRIERS_DEPS) return;
    bool hazard = false;
    for (uint32_t i = 0; i < p->n_bind && !hazard; i++) {
        span x = span_of(&b[i]);
        hazard = overlaps(&c->wrote, x) || ((p->written >> i & 1) && overlaps(&c->read, x));
    }
    if (hazard) pvk_cmd_barrier(c, PVK_COMPUTE_TO_COMPUTE);
    for (uint32_t i = 0; i < p->n_bind; i++)
        if (!add_span(c, p->written >> i & 1 ? &c->wrote : &c->read, span_of(&b[i]))) return;
}

void pvk_cmd_dispatch(pvk_cmd *c, pvk_pipe *p, const pvk_binding *b, const void *push, uint32_t gx, uint32_t gy,
                      uint32_t gz) {
    if (c->err || !dispatch_ok(c, p, b, push, gx, gy, gz)) return;
    track(c, p, b);

    VkDescriptorBufferInfo bi[MAX_BIND];
    VkWriteDescriptorSet w[MAX_BIND];
    for (uint32_t i = 0; i < p->n_bind; i++) {
        bool texel = p->bindings[i] == 't';
        bi[i] = (VkDescriptorBufferInfo){b[i].buf, b[i].offset, b[i].range};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstBinding = i, .descriptorCount = 1,
            .descriptorType = texel ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = texel ? NULL : &bi[i], .pTexelBufferView = texel ? &b[i].view : NULL};
    }
    vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->vk);
    if (p->n_bind && c->d->push_descriptor) {
        c->d->push_descriptor(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, p->n_bind, w);
    } else if (p->n_bind) {
        VkDescriptorSet set = alloc_set(c, p);
        if (!set) return;
        for (uint32_t i = 0; i < p->n_bind; i++) w[i].dstSet = set;
        vkUpdateDescriptorSets(c->d->vk, p->n_bind, w, 0, NULL);
        vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    }
    if (p->push_bytes)
        vkCmdPushConstants(c->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_bytes, push);
    bool timed = c->queries && c->n_timed < PROFILE_MAX;
    if (timed) vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 2 * c->n_timed);
    vkCmdDispatch(c->cb, gx, gy, gz);
    c->cur.dispatches++;
    if (c->barriers == BARRIERS_ALL) pvk_cmd_barrier(c, PVK_COMPUTE_TO_COMPUTE);
    if (timed) {
        vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->queries, 2 * c->n_timed + 1);
        c->timed[c->n_timed++] = (timed_dispatch){p->shader, p->wg_x, {gx, gy, gz}};
    } else if (c->queries) {
        c->n_untimed++;
    }
}

/* The masks each hazard needs; a comment per case says what it orders. */
static const struct hazard_masks {
    VkPipelineStageFlags src_stage, dst_stage;
    VkAccessFlags src_access, dst_access;
} hazards[] = {
    /* Read-after-write and write-after-write between dispatches; the execution
     * dependency also orders write-after-read. */
    [PVK_COMPUTE_TO_COMPUTE] = {VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                VK_ACCESS_SHADER_WRITE_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT},
    /* A copy or fill feeds dispatches; later copies of the same range are ordered
     * too, so fill-then-copy needs no second helper. */
    [PVK_TRANSFER_TO_COMPUTE] = {VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_ACCESS_TRANSFER_WRITE_BIT,
                                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                     VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT},
    /* A dispatch's output is copied (e.g. to a readback buffer) or overwritten by a fill. */
    [PVK_COMPUTE_TO_TRANSFER] = {VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_ACCESS_SHADER_WRITE_BIT, VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT},
    /* The host reads mapped memory after the fence: device writes become visible to it. */
    [PVK_COMPUTE_TO_HOST] = {VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                             VK_ACCESS_HOST_READ_BIT},
};

void pvk_cmd_barrier(pvk_cmd *c, pvk_hazard h) {
    if (c->err || !c->recording) return;
    if ((unsigned)h >= sizeof hazards / sizeof hazards[0]) {
        cmd_error(c, PHIVK_ERR_INVALID, "pvk_cmd_barrier: unknown hazard %d", (int)h);
        return;
    }
    const struct hazard_masks *m = &hazards[h];
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = m->src_access,
                          .dstAccessMask = m->dst_access};
    vkCmdPipelineBarrier(c->cb, m->src_stage, m->dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
    c->cur.barriers++;
    /* What dispatches recorded so far did is ordered before later dispatches. */
    if (h == PVK_COMPUTE_TO_COMPUTE) c->wrote.n = c->read.n = 0;
}

static bool check_span(pvk_cmd *c, const pvk_buf *b, VkDeviceSize off, VkDeviceSize n, const char *what) {
    if (c->err) return false;
    if (!c->recording) return cmd_error(c, PHIVK_ERR_INVALID, "%s outside pvk_cmd_begin/submit", what);
    if (!b || !b->vk || off > b->size || n > b->size - off)
        return cmd_error(c, PHIVK_ERR_INVALID, "%s: [%llu, +%llu) is outside the buffer of %llu bytes", what,
                         (unsigned long long)off, (unsigned long long)n, (unsigned long long)(b ? b->size : 0));
    return true;
}

void pvk_cmd_copy(pvk_cmd *c, const pvk_buf *src, VkDeviceSize src_off, const pvk_buf *dst, VkDeviceSize dst_off,
                  VkDeviceSize n) {
    if (!check_span(c, src, src_off, n, "pvk_cmd_copy source") ||
        !check_span(c, dst, dst_off, n, "pvk_cmd_copy destination") || n == 0)
        return;
    VkBufferCopy region = {src->offset + src_off, dst->offset + dst_off, n};
    vkCmdCopyBuffer(c->cb, src->vk, dst->vk, 1, &region);
}

void pvk_cmd_fill(pvk_cmd *c, const pvk_buf *dst, VkDeviceSize off, VkDeviceSize n, uint32_t word) {
    if (!check_span(c, dst, off, n, "pvk_cmd_fill") || n == 0) return;
    if (off % 4 || n % 4) {
        cmd_error(c, PHIVK_ERR_INVALID, "pvk_cmd_fill: offset %llu and size %llu must be multiples of 4",
                  (unsigned long long)off, (unsigned long long)n);
        return;
    }
    vkCmdFillBuffer(c->cb, dst->vk, dst->offset + off, n, word);
}

/* Per-dispatch times, then per-shader totals, most expensive first. */
static void print_profile(pvk_cmd *c) {
    uint64_t *ts = malloc(2 * c->n_timed * sizeof *ts);
    timed_dispatch *tot = calloc(c->n_timed, sizeof *tot);
    double *ms = calloc(c->n_timed, sizeof *ms);
    uint32_t *count = calloc(c->n_timed, sizeof *count);
    if (!ts || !tot || !ms || !count ||
        vkGetQueryPoolResults(c->d->vk, c->queries, 0, 2 * c->n_timed, 2 * c->n_timed * sizeof *ts, ts,
                              sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS) {
        fprintf(stderr, "phivk profile: timestamps unavailable\n");
        goto done;
    }
    double period_ms = c->d->caps.timestamp_period * 1e-6, all = 0;
    uint32_t n_tot = 0;
    for (uint32_t i = 0; i < c->n_timed; i++) {
        double t = (double)(ts[2 * i + 1] - ts[2 * i]) * period_ms;
        const timed_dispatch *e = &c->timed[i];
        fprintf(stderr, "phivk profile: %5u %-28s wg %4u %6u x %-5u x %-3u %10.4f ms\n", i, e->shader, e->wg,
                e->g[0], e->g[1], e->g[2], t);
        uint32_t k = 0;
        while (k < n_tot && strcmp(tot[k].shader, e->shader)) k++;
        if (k == n_tot) tot[n_tot++].shader = e->shader;
        ms[k] += t;
        count[k]++;
        all += t;
    }
    for (uint32_t done = 0; done < n_tot; done++) {
        uint32_t best = 0;
        for (uint32_t k = 1; k < n_tot; k++)
            if (ms[k] > ms[best]) best = k;
        fprintf(stderr, "phivk profile: total %-28s %5u dispatches %10.4f ms %5.1f%%\n", tot[best].shader,
                count[best], ms[best], all > 0 ? 100 * ms[best] / all : 0);
        ms[best] = -1;
    }
    fprintf(stderr, "phivk profile: all %u dispatches %.4f ms%s\n", c->n_timed, all,
            c->n_untimed ? " (more were not timed: the query pool is full)" : "");
done:
    free(ts);
    free(tot);
    free(ms);
    free(count);
}

static phivk_status run(pvk_cmd *c);

phivk_status pvk_cmd_submit(pvk_cmd *c) {
    if (!c->recording && !c->err) return pvk_fail(PHIVK_ERR_INVALID, "pvk_cmd_submit without pvk_cmd_begin");
    if (!c->recording) return pvk_fail(c->err, "%s", c->errmsg);
    /* The host may read any mapped result once this returns. */
    pvk_cmd_barrier(c, PVK_COMPUTE_TO_HOST);
    c->recording = false;
    VkResult r = vkEndCommandBuffer(c->cb);
    if (c->err) return pvk_fail(c->err, "%s", c->errmsg);
    if (r != VK_SUCCESS) return pvk_vk_fail(r, "vkEndCommandBuffer");
    return run(c);
}

/* Submits what cb holds and waits; the counters of this run become the last. */
static phivk_status run(pvk_cmd *c) {
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cb};
    /* An injected out-of-memory submits nothing; an injected loss lets the work
     * finish (nothing stays in flight) and reports it from the wait. */
    VkResult fault = pvk_fault_submit();
    VkResult r = fault == VK_ERROR_OUT_OF_DEVICE_MEMORY ? fault : vkQueueSubmit(c->d->queue, 1, &si, c->fence);
    double t_submitted = pvk_now_s();
    c->cur.host_s = t_submitted - c->t_begin;
    if (r == VK_SUCCESS) {
        r = vkWaitForFences(c->d->vk, 1, &c->fence, VK_TRUE, UINT64_MAX);
        vkResetFences(c->d->vk, 1, &c->fence);
        if (r == VK_SUCCESS) r = fault;
    }
    c->cur.wait_s = pvk_now_s() - t_submitted;
    c->last = c->cur;
    c->d->lost |= r == VK_ERROR_DEVICE_LOST;
    if (r != VK_SUCCESS)
        return pvk_vk_fail(r, fault ? "submitting work to the GPU (a fault injected by PHIVK_FAULT)"
                                    : "submitting work to the GPU");
    c->replayable = true;
    if (c->n_timed) print_profile(c);
    return PHIVK_OK;
}

phivk_status pvk_cmd_replay(pvk_cmd *c) {
    phivk_status s = pvk_dev_usable(c->d); /* a lost device says so first */
    if (s) return s;
    if (!c->replayable || c->recording)
        return pvk_fail(PHIVK_ERR_INVALID, "pvk_cmd_replay: no finished recording to submit again");
    c->replayable = false;   /* until this run succeeds */
    c->t_begin = pvk_now_s();
    s = run(c);
    /* A recording whose run failed is no one's any more: its holder records anew. */
    if (s) c->recording_id++;
    return s;
}

uint64_t pvk_cmd_recording_id(const pvk_cmd *c) { return c->recording_id; }

pvk_cmd_stats pvk_cmd_last_stats(const pvk_cmd *c) { return c->last; }

/* ----------------------------------------------------------------- bindings */

pvk_binding pvk_bind(const pvk_buf *b) { return (pvk_binding){b->vk, b->offset, b->size, VK_NULL_HANDLE}; }

pvk_binding pvk_bind_range(const pvk_buf *b, VkDeviceSize off, VkDeviceSize n) {
    return (pvk_binding){b->vk, b->offset + off, n, VK_NULL_HANDLE};
}

pvk_binding pvk_bind_view(VkBufferView v, const pvk_buf *b, VkDeviceSize off, VkDeviceSize n) {
    return (pvk_binding){b->vk, b->offset + off, n, v};
}
