/* The public device listing (include/phivk.h): every Vulkan device with the
 * capabilities and limits phivk picks kernels by, as text or JSON. One field table
 * drives both formats, so they always list the same things. */
#include <cJSON.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phivk.h"
#include "pvk_impl.h"

typedef enum field_kind { F_BOOL, F_U32, F_HEX, F_BYTES, F_FLOAT, F_DIM3, F_SUBGROUP_OPS, F_CM_SHAPES } field_kind;

typedef struct field {
    const char *key;      /* JSON */
    const char *label;    /* text */
    field_kind kind;
    size_t off;
} field;

#define F(key, label, kind, member) {key, label, kind, offsetof(pvk_caps, member)}
static const field fields[] = {
    F("vendor_id", "vendor id", F_HEX, vendor_id),
    F("device_id", "device id", F_HEX, device_id),
    F("fp16", "fp16 arithmetic", F_BOOL, fp16),
    F("storage16", "16-bit storage", F_BOOL, storage16),
    F("storage8", "8-bit storage + int8", F_BOOL, storage8),
    F("int_dot", "integer dot product", F_BOOL, int_dot),
    F("int_dot_accel", "  4x8 packed accelerated", F_BOOL, int_dot_accel),
    F("subgroup", "subgroup arithmetic", F_BOOL, subgroup),
    F("subgroup_ops", "  operations", F_SUBGROUP_OPS, subgroup_ops),
    F("subgroup_size", "subgroup size", F_U32, subgroup_size),
    F("subgroup_min", "  min", F_U32, subgroup_min),
    F("subgroup_max", "  max", F_U32, subgroup_max),
    F("subgroup_size_control", "subgroup size control", F_BOOL, subgroup_size_control),
    F("coopmat", "cooperative matrix", F_BOOL, coopmat),
    F("coopmat_nv", "  NV cooperative matrix", F_BOOL, coopmat_nv),
    F("coopmat_shapes", "  shapes (MxNxK A.B.C.D)", F_CM_SHAPES, n_cm_shapes),
    F("push_descriptor", "push descriptors", F_BOOL, push_descriptor),
    F("texel", "uniform texel buffers", F_BOOL, texel),
    F("uma", "unified memory (UMA)", F_BOOL, uma),
    F("memory_budget", "memory budget", F_BOOL, memory_budget),
    F("timestamps", "timestamps", F_BOOL, timestamps),
    F("timestamp_period_ns", "  period (ns)", F_FLOAT, timestamp_period),
    F("max_storage_range", "max storage buffer range", F_BYTES, max_storage_range),
    F("max_binding_bytes", "max binding (phivk)", F_BYTES, max_binding_bytes),
    F("max_alloc", "max allocation", F_BYTES, max_alloc),
    F("storage_align", "storage offset alignment", F_BYTES, storage_align),
    F("texel_align", "texel offset alignment", F_BYTES, texel_align),
    F("max_texel_elems", "max texel elements", F_U32, max_texel_elems),
    F("max_shared", "shared memory (bytes)", F_U32, max_shared),
    F("max_wg_invocations", "workgroup invocations", F_U32, max_wg_invocations),
    F("max_wg_size", "workgroup size", F_DIM3, max_wg_size),
    F("max_wg_count", "workgroup count", F_DIM3, max_wg_count),
};
#undef F

static const char *subgroup_op_names[] = {"basic", "vote", "arithmetic", "ballot",
                                          "shuffle", "shuffle_relative", "clustered", "quad"};

/* VkComponentTypeKHR's values 0..10; scopes by VkScopeKHR. */
static const char *cm_type_names[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
static const char *cm_type(uint32_t t) { return t < sizeof cm_type_names / sizeof cm_type_names[0] ? cm_type_names[t] : "?"; }
static const char *cm_scope(uint32_t s) {
    return s == 1 ? "device" : s == 2 ? "workgroup" : s == 3 ? "subgroup" : s == 5 ? "queue family" : "?";
}

static void version_text(uint32_t v, char out[32]) {
    snprintf(out, 32, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

/* ------------------------------------------------------------------- text */

typedef struct text {
    char *s;
    size_t len, cap;
    bool oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = t->oom ? 0 : vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (t->oom || (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        char *ns = realloc(t->s, t->cap * 2 + (size_t)n);
        if (!ns) {
            t->oom = true;
            return;
        }
        t->s = ns;
        t->cap = t->cap * 2 + (size_t)n;
    }
}

static void field_text(text *t, const field *f, const pvk_caps *c) {
    const void *p = (const char *)c + f->off;
    char b[32];
    put(t, "    %-28s ", f->label);
    switch (f->kind) {
    case F_BOOL: put(t, "%s\n", *(const bool *)p ? "yes" : "no"); break;
    case F_U32: put(t, "%u\n", *(const uint32_t *)p); break;
    case F_HEX: put(t, "0x%04x\n", *(const uint32_t *)p); break;
    case F_BYTES: put(t, "%s\n", pvk_fmt_bytes(b, *(const uint64_t *)p)); break;
    case F_FLOAT: put(t, "%g\n", *(const float *)p); break;
    case F_DIM3: {
        const uint32_t *v = p;
        put(t, "%u x %u x %u\n", v[0], v[1], v[2]);
        break;
    }
    case F_SUBGROUP_OPS: {
        uint32_t ops = *(const uint32_t *)p;
        const char *sep = "";
        for (int i = 0; i < 8; i++)
            if (ops & (1u << i)) {
                put(t, "%s%s", sep, subgroup_op_names[i]);
                sep = " ";
            }
        put(t, "%s\n", ops ? "" : "-");
        break;
    }
    case F_CM_SHAPES:
        for (uint32_t i = 0; i < c->n_cm_shapes; i++) {
            const pvk_cm_shape *sh = &c->cm_shapes[i];
            put(t, "%s%s %ux%ux%u %s.%s.%s.%s%s%s", i ? ", " : "", sh->nv ? "nv" : "khr", sh->m, sh->n, sh->k,
                cm_type(sh->a), cm_type(sh->b), cm_type(sh->c), cm_type(sh->r), sh->scope == 3 ? "" : " ",
                sh->scope == 3 ? "" : cm_scope(sh->scope));
        }
        put(t, "%s\n", c->n_cm_shapes ? "" : "-");
        break;
    }
}

static char *report_text(const pvk_caps *caps, uint32_t n, uint32_t chosen) {
    text t = {.s = malloc(4096), .cap = 4096};
    if (!t.s) return NULL;
    t.s[0] = 0;
    if (!n) put(&t, "no Vulkan devices\n");
    for (uint32_t i = 0; i < n; i++) {
        const pvk_caps *c = &caps[i];
        char v[32], a[32], b[32], u[32];
        version_text(c->api_version, v);
        put(&t, "%s%u  %s  (%s, Vulkan %s)%s\n", i == chosen ? "* " : "  ", c->index, c->name,
            pvk_dev_type_name(c->type), v, i == chosen ? "  <- phivk's default" : "");
        if (!c->usable) {
            put(&t, "    unusable: phivk needs Vulkan 1.2 and a compute queue\n\n");
            continue;
        }
        put(&t, "    %-28s %s\n", "driver", c->driver);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) field_text(&t, &fields[f], c);
        for (uint32_t h = 0; h < c->heap_count; h++)
            put(&t, "    heap %-23u %s%s, budget %s, used %s\n", h, pvk_fmt_bytes(a, c->heaps[h].size),
                c->heaps[h].device_local ? " device-local" : "", pvk_fmt_bytes(b, c->heaps[h].budget),
                pvk_fmt_bytes(u, c->heaps[h].usage));
        put(&t, "\n");
    }
    if (chosen == UINT32_MAX && n) put(&t, "no default device: %s\n", pvk_errmsg());
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

/* ------------------------------------------------------------------- JSON */

static cJSON *dim3(const uint32_t *v) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *field_json(const field *f, const pvk_caps *c) {
    const void *p = (const char *)c + f->off;
    switch (f->kind) {
    case F_BOOL: return cJSON_CreateBool(*(const bool *)p);
    case F_U32:
    case F_HEX: return cJSON_CreateNumber(*(const uint32_t *)p);
    case F_BYTES: return cJSON_CreateNumber((double)*(const uint64_t *)p);
    case F_FLOAT: return cJSON_CreateNumber(*(const float *)p);
    case F_DIM3: return dim3(p);
    case F_SUBGROUP_OPS: {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < 8; i++)
            if (*(const uint32_t *)p & (1u << i)) cJSON_AddItemToArray(a, cJSON_CreateString(subgroup_op_names[i]));
        return a;
    }
    case F_CM_SHAPES: {
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < c->n_cm_shapes; i++) {
            const pvk_cm_shape *sh = &c->cm_shapes[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(a, o);
            cJSON_AddStringToObject(o, "extension", sh->nv ? "nv" : "khr");
            cJSON_AddNumberToObject(o, "m", sh->m);
            cJSON_AddNumberToObject(o, "n", sh->n);
            cJSON_AddNumberToObject(o, "k", sh->k);
            cJSON_AddStringToObject(o, "a", cm_type(sh->a));
            cJSON_AddStringToObject(o, "b", cm_type(sh->b));
            cJSON_AddStringToObject(o, "c", cm_type(sh->c));
            cJSON_AddStringToObject(o, "result", cm_type(sh->r));
            cJSON_AddStringToObject(o, "scope", cm_scope(sh->scope));
        }
        return a;
    }
    }
    return cJSON_CreateNull();
}

static char *report_json(const pvk_caps *caps, uint32_t n, uint32_t chosen) {
    cJSON *root = cJSON_CreateArray();
    for (uint32_t i = 0; root && i < n; i++) {
        const pvk_caps *c = &caps[i];
        char v[32];
        version_text(c->api_version, v);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(root, o);
        cJSON_AddNumberToObject(o, "index", c->index);
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddStringToObject(o, "type", pvk_dev_type_name(c->type));
        cJSON_AddStringToObject(o, "api_version", v);
        cJSON_AddBoolToObject(o, "default", i == chosen);
        cJSON_AddBoolToObject(o, "usable", c->usable);
        if (!c->usable) continue;
        cJSON_AddStringToObject(o, "driver", c->driver);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            cJSON_AddItemToObject(o, fields[f].key, field_json(&fields[f], c));
        cJSON *heaps = cJSON_AddArrayToObject(o, "heaps");
        for (uint32_t h = 0; h < c->heap_count; h++) {
            cJSON *ho = cJSON_CreateObject();
            cJSON_AddItemToArray(heaps, ho);
            cJSON_AddNumberToObject(ho, "size", (double)c->heaps[h].size);
            cJSON_AddNumberToObject(ho, "budget", (double)c->heaps[h].budget);
            cJSON_AddNumberToObject(ho, "usage", (double)c->heaps[h].usage);
            cJSON_AddBoolToObject(ho, "device_local", c->heaps[h].device_local);
        }
    }
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    /* cJSON's buffer comes from malloc (default hooks), so the caller's free() fits. */
    return s;
}

char *phivk_devices_report(bool json) {
    pvk_caps *caps;
    uint32_t n, chosen;
    if (pvk_dev_enumerate(&caps, &n)) return NULL;
    if (pvk_dev_choose(caps, n, NULL, &chosen)) chosen = UINT32_MAX;
    char *s = json ? report_json(caps, n, chosen) : report_text(caps, n, chosen);
    free(caps);
    if (!s) pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory writing the device report");
    return s;
}

phivk_status phivk_devices(phivk_device_desc **out, int *n) {
    *out = NULL;
    *n = 0;
    pvk_caps *caps;
    uint32_t count;
    phivk_status s = pvk_dev_enumerate(&caps, &count);
    if (s) return s;
    phivk_device_desc *d = calloc(count ? count : 1, sizeof *d);
    if (!d) {
        free(caps);
        return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory listing devices");
    }
    for (uint32_t i = 0; i < count; i++) {
        d[i].index = (int)caps[i].index;
        snprintf(d[i].name, sizeof d[i].name, "%s", caps[i].name);
        d[i].kind = pvk_dev_type_name(caps[i].type);
        for (uint32_t h = 0; h < caps[i].heap_count; h++)
            if (caps[i].heaps[h].device_local && caps[i].heaps[h].size > d[i].memory_bytes)
                d[i].memory_bytes = caps[i].heaps[h].size;
    }
    free(caps);
    *out = d;
    *n = (int)count;
    return PHIVK_OK;
}
