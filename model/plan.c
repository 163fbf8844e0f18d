#include "plan.h"

#include <stdio.h>

uint64_t plan_kv_bytes_per_token(const arch_hparams *hp, pvk_type k_type, pvk_type v_type) {
    uint64_t per_layer = pvk_type_row_bytes(k_type, hp->n_embd_kv) + pvk_type_row_bytes(v_type, hp->n_embd_kv);
    return per_layer * (uint64_t)hp->n_layer;
}

uint64_t plan_scratch_bytes(const arch_hparams *hp, int32_t batch, int32_t logit_rows, uint64_t attn_bytes) {
    uint64_t b = (uint64_t)batch;
    uint64_t qkv = (uint64_t)hp->n_embd_q + 2ull * hp->n_embd_kv;
    uint64_t ff = (uint64_t)hp->n_ff * (hp->gelu ? 1 : 2);
    uint64_t floats = b                          /* token ids */
                      + b * hp->n_embd * 2       /* residual, normed */
                      + b * qkv                  /* q | k | v */
                      + b * hp->n_embd_q         /* attention output */
                      + b * ff + b * hp->n_ff    /* MLP input and activation */
                      + 2ull * hp->n_embd        /* last row, normed */
                      + (uint64_t)logit_rows * hp->n_vocab;
    /* Split-K decode partials: per head, up to 64 splits of (max, sum, head_dim). */
    uint64_t attn = 64ull * hp->n_head * (hp->head_dim + 2);
    if (attn_bytes > 4 * attn) attn = (attn_bytes + 3) / 4;
    /* int8 copies of the normed input and of the attention or MLP activation for
     * the integer-dot matvec (1.5 bytes per element; counted where unused too). */
    uint64_t wide = hp->n_ff > hp->n_embd_q ? (uint64_t)hp->n_ff : (uint64_t)hp->n_embd_q;
    uint64_t int8 = b * (hp->n_embd + wide) * 3 / 2;
    return 4 * (floats + attn) + int8;
}

static double gib(uint64_t b) { return b / (double)(1ull << 30); }

pvk_status plan_make(const plan_input *in, plan *out) {
    const arch_hparams *hp = in->hp;
    *out = (plan){
        .kv_bytes_per_token = plan_kv_bytes_per_token(hp, in->k_type, in->v_type),
        .weight_bytes = in->weight_bytes,
        .scratch_bytes = plan_scratch_bytes(hp, in->batch, in->logit_rows, in->attn_bytes),
        .budget = in->budget,
    };
    uint64_t fixed = out->weight_bytes + out->scratch_bytes;
    uint64_t usable = in->budget / 10 * 9;
    uint64_t room = usable > fixed ? usable - fixed : 0;
    uint64_t fit = room / out->kv_bytes_per_token;
    uint64_t ctx = (uint64_t)in->ctx;
    if (!ctx) {
        ctx = (uint64_t)hp->n_ctx_train;
        if (ctx > fit) ctx = fit & ~(uint64_t)255;
        if (ctx < 256)
            return pvk_fail(PVK_ERR_DEVICE_MEMORY,
                            "the model does not fit: weights %.2f GiB + scratch %.2f GiB leave no "
                            "room for a 256-token KV cache in %.2f GiB of device memory",
                            gib(out->weight_bytes), gib(out->scratch_bytes), gib(in->budget));
    } else if (ctx > fit) {
        return pvk_fail(PVK_ERR_DEVICE_MEMORY,
                        "a context of %llu tokens does not fit: KV cache %.2f GiB (%.1f KiB per "
                        "token) + weights %.2f GiB + scratch %.2f GiB > %.2f GiB usable of %.2f "
                        "GiB; use -c %llu or less, -c auto, or a smaller cache (--kv-type q8_0 or "
                        "q4_0)",
                        (unsigned long long)ctx, gib(out->kv_bytes_per_token * ctx),
                        out->kv_bytes_per_token / 1024.0, gib(out->weight_bytes),
                        gib(out->scratch_bytes), gib(usable), gib(in->budget),
                        (unsigned long long)(fit & ~(uint64_t)255));
    }
    out->ctx = (int32_t)ctx;
    out->kv_bytes = out->kv_bytes_per_token * ctx;
    out->total = fixed + out->kv_bytes;
    return PVK_OK;
}

void plan_fmt_bytes(char *out, size_t n, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(out, n, "%.2f GiB", gib(b));
    else if (b >= (1ull << 20)) snprintf(out, n, "%.1f MiB", b / (double)(1ull << 20));
    else snprintf(out, n, "%.0f KiB", b / 1024.0);
}
