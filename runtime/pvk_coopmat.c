/* What the device lists of cooperative matrices, and the matmul form chosen from it
 * (pvk_coopmat.h). Pure functions of their inputs: tests feed them simulated lists. */
#include "pvk_coopmat.h"

static uint32_t add(pvk_cm_shape *out, uint32_t n, uint32_t cap, pvk_cm_shape s) {
    if (n < cap) out[n++] = s;
    return n;
}

uint32_t pvk_cm_from_khr(const VkCooperativeMatrixPropertiesKHR *p, uint32_t n, pvk_cm_shape *out, uint32_t cap) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k = add(out, k, cap,
                (pvk_cm_shape){p[i].MSize, p[i].NSize, p[i].KSize, (uint32_t)p[i].AType, (uint32_t)p[i].BType,
                               (uint32_t)p[i].CType, (uint32_t)p[i].ResultType, (uint32_t)p[i].scope, false});
    return k;
}

uint32_t pvk_cm_from_nv(const VkCooperativeMatrixPropertiesNV *p, uint32_t n, pvk_cm_shape *out, uint32_t cap) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k = add(out, k, cap,
                (pvk_cm_shape){p[i].MSize, p[i].NSize, p[i].KSize, (uint32_t)p[i].AType, (uint32_t)p[i].BType,
                               (uint32_t)p[i].CType, (uint32_t)p[i].DType, (uint32_t)p[i].scope, true});
    return k;
}

pvk_cm pvk_cm_choose(const pvk_caps *c) {
    pvk_cm best = PVK_CM_COUNT;
    uint64_t best_mnk = 0;
    if (!c->fp16 || !c->subgroup) return best;
    for (uint32_t i = 0; i < c->n_cm_shapes; i++) {
        const pvk_cm_shape *s = &c->cm_shapes[i];
        if (!(s->nv ? c->coopmat_nv : c->coopmat) || s->a != PVK_CM_FP16 || s->b != PVK_CM_FP16 ||
            s->c != PVK_CM_FP32 || s->r != PVK_CM_FP32 || s->scope != PVK_CM_SCOPE_SUBGROUP)
            continue;
        for (int f = 0; f < PVK_CM_COUNT; f++) {
            const pvk_cm_form *fm = &pvk_cm_forms[f];
            uint64_t mnk = (uint64_t)fm->m * fm->n * fm->k;
            if ((fm->nv != 0) == s->nv && fm->m == s->m && fm->n == s->n && fm->k == s->k && mnk > best_mnk)
                best = (pvk_cm)f, best_mnk = mnk;
        }
    }
    return best;
}
