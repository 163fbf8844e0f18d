/* Chat prompt formats (docs/phi-spec.md 6). A GGUF chat template is Jinja code; we
 * only recognise which known format it is, never execute it. The prompt never
 * contains BOS text: BOS comes from tokenization (tokenizer.ggml.add_bos_token). */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

phivk_chat_format tok_chat_format(const tok_vocab *v) {
    const char *t = v->chat_template;
    if (t && strstr(t, "<|assistant|>") && strstr(t, "<|end|>")) return PHIVK_CHAT_PHI3;
    if (!strcmp(v->arch, "phi3")) return PHIVK_CHAT_PHI3;
    if (!strcmp(v->arch, "phi2")) return PHIVK_CHAT_PHI2;
    return PHIVK_CHAT_PLAIN;
}

typedef struct strbuf {
    char *p;
    size_t n, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *s) {
    size_t k = strlen(s);
    char *np = b->oom ? NULL : tok_grow(b->p, &b->cap, b->n + k + 1, 1);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Phi-3: "<|role|>\n" content "<|end|>\n" per message, then "<|assistant|>\n".
 * Phi-2 (model card QA format): user turns "Instruct: X\nOutput:", an assistant
 * reply follows on the same line (one space after "Output:" unless it starts with
 * whitespace, as the model writes it) and ends with "\n"; a system message is a
 * plain first line. The user turn already opens the answer, so add_assistant adds
 * nothing. Plain: the contents one after another (a text to continue). */
pvk_status tok_chat_prompt(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n,
                           bool add_assistant, char **out) {
    *out = NULL;
    if (fmt != PHIVK_CHAT_PHI3 && fmt != PHIVK_CHAT_PHI2 && fmt != PHIVK_CHAT_PLAIN)
        return pvk_fail(PVK_ERR_INVALID,
                        "chat format %d is not a concrete format (resolve AUTO with phivk_vocab_chat_format)",
                        (int)fmt);
    if (n < 0 || (n > 0 && !msgs)) return pvk_fail(PVK_ERR_INVALID, "no messages for the chat prompt");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content)
            return pvk_fail(PVK_ERR_INVALID, "chat message %d has no role or no content", i);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return pvk_fail(PVK_ERR_INVALID,
                            "chat message %d has role '%.32s' (use system, user or assistant)", i, r);
    }

    strbuf b = {0};
    sb_add(&b, ""); /* an empty prompt is "", not NULL */
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role, *text = msgs[i].content;
        switch (fmt) {
        case PHIVK_CHAT_PHI3:
            sb_add(&b, "<|");
            sb_add(&b, role);
            sb_add(&b, "|>\n");
            sb_add(&b, text);
            sb_add(&b, "<|end|>\n");
            break;
        case PHIVK_CHAT_PHI2:
            if (!strcmp(role, "user")) {
                sb_add(&b, "Instruct: ");
                sb_add(&b, text);
                sb_add(&b, "\nOutput:");
            } else {
                if (!strcmp(role, "assistant") && !is_space(text[0])) sb_add(&b, " ");
                sb_add(&b, text);
                sb_add(&b, "\n");
            }
            break;
        default:
            sb_add(&b, text);
            break;
        }
    }
    if (fmt == PHIVK_CHAT_PHI3 && add_assistant) sb_add(&b, "<|assistant|>\n");
    if (b.oom) {
        free(b.p);
        return pvk_fail(PVK_ERR_HOST_MEMORY, "out of host memory for the chat prompt");
    }
    *out = b.p;
    return PVK_OK;
}
