/* A session's internals other parts of phivk use. Its memory plan: the model load
 * checks it from the file's header before uploading any weight, tests compare it
 * with what the session allocated. Its KV cache, for tests and benchmarks that
 * need a long context without computing it token by token: they write cache rows
 * with pvk_op_kv_store (the session's own quantizing write) or read them back,
 * then move the session to the position those rows end at. */
#ifndef PHIVK_SESSION_KV_H
#define PHIVK_SESSION_KV_H

#include "phivk.h"
#include "plan.h"
#include "pvk_ops.h"

/* The plan of a session with parameters p on m's device: m's header, hyper-
 * parameters and runtime are enough (no weight need be uploaded yet). int8: count
 * the int8 activation buffers (model_reads_q8; true before the load has tuned
 * the kernels, an upper bound). With p->share_scratch, the plan of its KV cache
 * alone (p->ctx and p->batch: the caller gives the owner's where they were 0)
 * against what the device has left. */
phivk_status session_plan(const phivk_model *m, const phivk_session_params *p, bool int8, plan *out);
/* Attention over the model's heads for m rows, without a position or scratch yet. */
pvk_attn session_attn_heads(const arch_hparams *hp, uint32_t m);
/* Attention's split-K partials at most over a cache laid out as kv, as m's op set
 * splits them (prefill batch or decode step, whichever needs more). */
uint64_t session_attn_bytes(const phivk_model *m, int32_t batch, const pvk_kv *kv);
/* The table of what s allocated (its plan at its context and the device's layout). */
const plan *session_plan_of(const phivk_session *s);

/* Layer l's cache (owned by the session), or NULL for a layer it does not have. */
const pvk_kv *session_kv_layer(const phivk_session *s, int32_t layer);
/* Makes the session hold pos tokens (ids in tokens, kept for a LongRoPE
 * re-prefill) whose K and V are whatever cache rows 0..pos-1 hold, rotated with
 * the factor table the session's mode picks for that length. */
phivk_status session_seek(phivk_session *s, const int32_t *tokens, int32_t pos);

/* How often the command buffer s records into (its owner's with share_scratch)
 * was recorded: a decode replayed (PHIVK_REPLAY=1) leaves it as it was. */
uint64_t session_recordings(const phivk_session *s);

#endif
