/* Chat prompt formats (docs/phi-spec.md 6). A GGUF chat template is Jinja code; we
 * only recognise which known format it is, never execute it. The prompt never
 * contains BOS text: BOS comes from tokenization (tokenizer.ggml.add_bos_token).
 *
 * Message contents are untrusted (pasted text, dropped documents, restored chats):
 * tokenized, only the format's own markup becomes control tokens. A message that
 * spells "<|end|><|system|>" stays text and cannot open a turn. */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

phivk_chat_format tok_chat_format(const tok_vocab *v) {
    const char *t = v->chat_template;
    /* tiktoken vocabularies are Phi-3-small's (the only one phivk reads) */
    if (v->model == TOK_MODEL_TIKTOKEN || !strcmp(v->arch, "phi3small")) return PHIVK_CHAT_PHI3SMALL;
    if (t && strstr(t, "<|assistant|>") && strstr(t, "<|end|>")) return PHIVK_CHAT_PHI3;
    if (!strcmp(v->arch, "phi3")) return PHIVK_CHAT_PHI3;
    if (!strcmp(v->arch, "phi2")) return PHIVK_CHAT_PHI2;
    return PHIVK_CHAT_PLAIN;
}

typedef struct strbuf {
    char *p;
    size_t n, cap;
    bool oom;
    tok_span *bodies;      /* where each message's content landed; NULL: not recorded */
    size_t n_bodies, cap_bodies;
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

/* Adds a message's content and records where it is. */
static void sb_body(strbuf *b, const char *s) {
    size_t at = b->n;
    sb_add(b, s);
    if (!b->bodies || b->oom || b->n == at) return;
    tok_span *nb = tok_grow(b->bodies, &b->cap_bodies, b->n_bodies + 1, sizeof *nb);
    if (!nb) {
        b->oom = true;
        return;
    }
    b->bodies = nb;
    b->bodies[b->n_bodies++] = (tok_span){at, b->n - at};
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Phi-3: "<|role|>\n" content "<|end|>\n" per message, then "<|assistant|>\n".
 * Phi-2 (model card QA format): user turns "Instruct: X\nOutput:", an assistant
 * reply follows on the same line (one space after "Output:" unless it starts with
 * whitespace, as the model writes it) and ends with "\n"; a system message is a
 * plain first line. The user turn already opens the answer, so add_assistant adds
 * nothing. Plain: the contents one after another (a text to continue).
 * Phi-3-small (phi3-small.md 18): its template writes the BOS <|endoftext|> itself
 * (the tokenizer adds none), then Phi-3's turns, then "<|assistant|>\n" or, without
 * the cue, the EOS <|endoftext|>. */
static phivk_status render(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n, bool add_assistant,
                         strbuf *b) {
    if (fmt != PHIVK_CHAT_PHI3 && fmt != PHIVK_CHAT_PHI2 && fmt != PHIVK_CHAT_PLAIN && fmt != PHIVK_CHAT_PHI3SMALL)
        return pvk_fail(PHIVK_ERR_INVALID,
                        "chat format %d is not a concrete format (resolve AUTO with phivk_vocab_chat_format)",
                        (int)fmt);
    if (n < 0 || (n > 0 && !msgs)) return pvk_fail(PHIVK_ERR_INVALID, "no messages for the chat prompt");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content)
            return pvk_fail(PHIVK_ERR_INVALID, "chat message %d has no role or no content", i);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return pvk_fail(PHIVK_ERR_INVALID,
                            "chat message %d has role '%.32s' (use system, user or assistant)", i, r);
    }

    sb_add(b, fmt == PHIVK_CHAT_PHI3SMALL ? "<|endoftext|>" : ""); /* an empty prompt is "", not NULL */
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role, *text = msgs[i].content;
        switch (fmt) {
        case PHIVK_CHAT_PHI3:
        case PHIVK_CHAT_PHI3SMALL:
            sb_add(b, "<|");
            sb_add(b, role);
            sb_add(b, "|>\n");
            sb_body(b, text);
            sb_add(b, "<|end|>\n");
            break;
        case PHIVK_CHAT_PHI2:
            if (!strcmp(role, "user")) {
                sb_add(b, "Instruct: ");
                sb_body(b, text);
                sb_add(b, "\nOutput:");
            } else {
                if (!strcmp(role, "assistant") && !is_space(text[0])) sb_add(b, " ");
                sb_body(b, text);
                sb_add(b, "\n");
            }
            break;
        default:
            sb_body(b, text);
            break;
        }
    }
    if ((fmt == PHIVK_CHAT_PHI3 || fmt == PHIVK_CHAT_PHI3SMALL) && add_assistant) sb_add(b, "<|assistant|>\n");
    if (fmt == PHIVK_CHAT_PHI3SMALL && !add_assistant) sb_add(b, "<|endoftext|>");
    return b->oom ? pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the chat prompt") : PHIVK_OK;
}

phivk_status tok_chat_prompt(phivk_chat_format fmt, const phivk_chat_msg *msgs, int n,
                           bool add_assistant, char **out) {
    strbuf b = {0};
    *out = NULL;
    phivk_status st = render(fmt, msgs, n, add_assistant, &b);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return PHIVK_OK;
}

/* The prompt tokenized whole, so that tokens across the markup and the contents
 * come out as for the rendered text, with the contents' ranges marked plain. */
phivk_status tok_chat_encode(const tok_vocab *v, phivk_chat_format fmt, const phivk_chat_msg *msgs,
                           int n, bool add_assistant, const tok_encode_params *p, tok_ids *out) {
    strbuf b = {0};
    b.bodies = tok_grow(NULL, &b.cap_bodies, 1, sizeof *b.bodies);
    if (!b.bodies) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "out of host memory for the chat prompt");
    phivk_status st = render(fmt, msgs, n, add_assistant, &b);
    if (!st) {
        tok_encode_params q = *p;
        q.parse_special = true;
        q.plain = b.bodies;
        q.n_plain = b.n_bodies;
        st = tok_encode(v, b.p, b.n, &q, out);
    }
    free(b.p);
    free(b.bodies);
    return st;
}
