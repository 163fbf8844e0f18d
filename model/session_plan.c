/* A session's memory plan for a model on its device (plan.h's table, filled from the
 * model's header and the op set's tuning), and the attention shape both the plan
 * and the session's decode use. Below model.c (which plans before uploading) and
 * session.c (which allocates what the plan says). */
#include <math.h>

#include "model_impl.h"
#include "session_kv.h"

/* Attention over the model's heads, without a position or scratch yet. */
pvk_attn session_attn_heads(const arch_hparams *hp, uint32_t m) {
    return (pvk_attn){
        .q_stride = (uint32_t)(hp->n_embd_q + 2 * hp->n_embd_kv),
        .q_off = 0,
        .n_head = (uint32_t)hp->n_head,
        .n_kv_head = (uint32_t)hp->n_head_kv,
        .head_dim = (uint32_t)hp->head_dim,
        .m = m,
        .scale = 1.0f / sqrtf((float)hp->head_dim),
    };
}

/* Attention's split-K partials at most over a cache laid out as kv (its rows and
 * chunks), as the op set's tuning splits them: a prefill batch's (state across
 * cache chunks) or a decode step's (split-K over a long cache, which keeps the
 * device busy), whichever needs more; without the sliding window, which only
 * shortens the ranges. The one place the session asks the op layer. */
uint64_t session_attn_bytes(const phivk_model *m, int32_t batch, const pvk_kv *kv) {
    pvk_attn prefill = session_attn_heads(&m->hp, (uint32_t)batch), decode = session_attn_heads(&m->hp, 1);
    uint64_t a = pvk_op_attention_scratch_bytes_kv(m->rt->ops, &prefill, kv);
    uint64_t b = pvk_op_attention_scratch_bytes_kv(m->rt->ops, &decode, kv);
    return a > b ? a : b;
}

/* The same for a cache of ctx rows in one buffer, for the plan. */
static uint64_t plan_attn_bytes(void *user, int32_t ctx, int32_t batch) {
    pvk_kv one = {.ctx = (uint32_t)ctx};
    return session_attn_bytes(user, batch, &one);
}

/* Every tensor of the file: what the load puts on the device. */
static uint64_t file_weight_bytes(const phivk_model *m) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) sum += gguf_tensor_at(m->file, i)->bytes;
    return sum;
}

phivk_status session_plan(const phivk_model *m, const phivk_session_params *p, bool int8, plan *out) {
    if ((unsigned)p->k_type > PHIVK_KV_Q4_0 || (unsigned)p->v_type > PHIVK_KV_Q4_0)
        return pvk_fail(PHIVK_ERR_INVALID, "unknown KV cache type %d / %d", (int)p->k_type, (int)p->v_type);
    if (p->ctx < 0) return pvk_fail(PHIVK_ERR_INVALID, "a context of %d tokens", (int)p->ctx);
    if (p->slots < 0) return pvk_fail(PHIVK_ERR_INVALID, "%d slots", (int)p->slots);
    plan_input in = {
        .hp = &m->hp,
        .weight_bytes = file_weight_bytes(m),
        .k_type = plan_kv_type(p->k_type),
        .v_type = plan_kv_type(p->v_type),
        .ctx = p->ctx,
        .batch = p->batch,
        .budget = pvk_dev_budget(m->rt->dev),
        .int8 = int8,
        .slots = p->slots,
        .attn_bytes = plan_attn_bytes,
        .user = (void *)m,
    };
    if (p->share_scratch) {
        /* Only its cache: the weights and the owner's scratch are on the device
         * already, so it is planned against what the device has left. */
        const plan *owner = session_plan_of(p->share_scratch);
        uint64_t held;
        pvk_mem_stats(m->rt->dev, &held, NULL);
        in.shared = true;
        in.slots = 1;
        in.weight_bytes = 0;
        in.ctx = p->ctx ? p->ctx : owner->ctx;
        in.batch = owner->batch;
        in.budget = in.budget > held ? in.budget - held : 0;
    }
    return plan_make(&in, out);
}
