/* A session's KV cache from inside phivk, for tests and benchmarks that need a
 * long context without computing it token by token: they write cache rows with
 * pvk_op_kv_store (the session's own quantizing write) or read them back, then
 * move the session to the position those rows end at. */
#ifndef PHIVK_SESSION_KV_H
#define PHIVK_SESSION_KV_H

#include "phivk.h"
#include "pvk_ops.h"

/* Layer l's cache (owned by the session), or NULL for a layer it does not have. */
const pvk_kv *session_kv_layer(const phivk_session *s, int32_t layer);
/* Makes the session hold pos tokens (ids in tokens, kept for a LongRoPE
 * re-prefill) whose K and V are whatever cache rows 0..pos-1 hold, rotated with
 * the factor table the session's mode picks for that length. */
phivk_status session_seek(phivk_session *s, const int32_t *tokens, int32_t pos);

#endif
