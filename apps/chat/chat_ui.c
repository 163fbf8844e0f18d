/* phivk-chat's behaviour: events in, actions, the worker's reports, saving.
 * Drawing is in chat_draw.c. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat_app.h"
#include "chat_png.h"

static void dismiss(chat_app *a, int i) {
    if (i < 0 || i >= a->n_notices) return;
    memmove(a->notices + i, a->notices + i + 1, sizeof a->notices[0] * (size_t)(a->n_notices - i - 1));
    a->n_notices--;
}

static chat_msg *msg_by_id(chat_app *a, int id) {
    for (int i = a->n_msgs - 1; i >= 0; i--)
        if (a->msgs[i].id == id) return &a->msgs[i];
    return NULL;
}

/* Starts the answer to the oldest queued user message, if the model is free. */
static void start_next_answer(chat_app *a) {
    if (a->answering || !a->loaded || a->loads_pending) return;
    int q = 0;
    while (q < a->n_msgs && !(a->msgs[q].role == CHAT_USER && a->msgs[q].state == CHAT_QUEUED)) q++;
    if (q == a->n_msgs) return;
    a->msgs[q].state = CHAT_DONE;
    int user_id = a->msgs[q].id;
    chat_msg *ans = chat_msg_add(a, q + 1, CHAT_ASSISTANT, CHAT_STREAMING, NULL, 0);
    phivk_chat_msg *gm = malloc(sizeof *gm * (size_t)(q + 2));
    if (!ans || !gm) {
        free(gm);
        chat_app_notice(a, true, "Out of memory: the message was not sent.");
        if (ans) ans->state = CHAT_FAILED;
        return;
    }
    int n = 0, fit = -1;
    const char *sys = tb_str(&a->system.text);
    if (*sys) gm[n++] = (phivk_chat_msg){"system", sys};
    for (int i = 0; i <= q; i++) {
        const chat_msg *m = &a->msgs[i];
        if (m->role == CHAT_ASSISTANT && !m->text.len) continue;
        if (i == q) fit = n;
        gm[n++] = (phivk_chat_msg){m->role == CHAT_USER ? "user" : "assistant", tb_str(&m->text)};
    }
    chat_gen g = {.msgs = gm, .n_msgs = n, .msg_id = ans->id, .fit_msg = fit, .fit_id = user_id,
                  .samp = a->set.samp, .n_predict = a->set.n_predict};
    if (*a->msgs[q].doc_name) {
        g.fit_doc = true;
        g.doc_at = sizeof CHAT_DOC_HEAD - 1;
        g.doc_name = a->msgs[q].doc_name;
    }
    g.samp.temp = a->set.temp;
    g.samp.top_p = a->set.top_p;
    if (chat_worker_generate(a->worker, &g)) {
        a->answering = ans->id;
        a->progress_stage[0] = 0;
    } else {
        ans->state = CHAT_FAILED;
        snprintf(ans->note, sizeof ans->note, "out of memory");
    }
    free(gm);
    a->follow = true;
}

void chat_app_load_model(chat_app *a, const char *path) {
    bool queued = chat_worker_load(a->worker, path, a->set.device, a->set.ctx);
    if (!queued) chat_app_notice(a, true, "Out of memory: cannot load %s.", path);
    if (a->picker_open) chat_picker_close(a); /* path may be one of its rows: closed after its last use */
    if (!queued) return;
    a->loads_pending++;
    a->pending_ctx = a->set.ctx;
    snprintf(a->pending_device, sizeof a->pending_device, "%s", a->set.device);
    snprintf(a->progress_stage, sizeof a->progress_stage, "loading");
    a->progress_done = 0;
    a->progress_total = 1;
}

static bool is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\n') return false;
    return true;
}

static void history_push(chat_app *a, const char *text) {
    if (a->n_history && !strcmp(a->history[a->n_history - 1], text)) goto reset;
    char **h = realloc(a->history, sizeof *h * (size_t)(a->n_history + 1));
    if (!h) goto reset;
    a->history = h;
    if ((h[a->n_history] = strdup(text))) a->n_history++;
reset:
    a->history_pos = a->n_history;
    free(a->history_draft);
    a->history_draft = NULL;
}

static void history_move(chat_app *a, int dir) {
    int pos = a->history_pos + dir;
    if (pos < 0 || pos > a->n_history) return;
    if (a->history_pos == a->n_history) {
        free(a->history_draft);
        a->history_draft = strdup(tb_str(&a->input.text));
    }
    a->history_pos = pos;
    tf_set(&a->input, pos == a->n_history ? (a->history_draft ? a->history_draft : "") : a->history[pos]);
    chat_app_mark_dirty(a);
}

/* Adds a user message (queued behind a running answer or a load). */
static bool send_text(chat_app *a, const char *text, size_t n) {
    bool busy = a->answering || a->loads_pending;
    if (!chat_msg_add(a, a->n_msgs, CHAT_USER, CHAT_QUEUED, text, n)) {
        chat_app_notice(a, true, "Out of memory: the message was not sent.");
        return false;
    }
    a->follow = true;
    if (!busy) start_next_answer(a);
    chat_app_save(a);
    return true;
}

bool chat_app_send(chat_app *a) {
    const char *s = tb_str(&a->input.text);
    if (is_blank(s)) return false;
    if (!a->loaded && !a->loads_pending) {
        chat_app_notice(a, true, "No model is loaded yet: drop a .gguf model file on this window. "
                                 "Your message stays in the input box.");
        return false;
    }
    size_t b = 0, e = a->input.text.len;
    while (s[b] == ' ' || s[b] == '\n') b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n')) e--;
    const chat_msg *edited = a->editing ? msg_by_id(a, a->editing) : NULL;
    a->editing = 0;
    if (edited) {
        /* The answer being written, if any, follows the edited message: it goes too. */
        if (a->answering) chat_worker_stop(a->worker, a->answering);
        chat_msgs_drop_from(a, (int)(edited - a->msgs));
    }
    if (!send_text(a, s + b, e - b)) return false;
    history_push(a, tb_str(&a->input.text));
    tf_set(&a->input, "");
    chat_app_save(a);
    return true;
}

bool chat_app_regenerate(chat_app *a) {
    int n = a->n_msgs;
    if (a->answering || !a->loaded || a->loads_pending || n < 2 || a->msgs[n - 1].role != CHAT_ASSISTANT ||
        a->msgs[n - 2].role != CHAT_USER)
        return false;
    chat_msgs_drop_from(a, n - 1);
    a->msgs[n - 2].state = CHAT_QUEUED;
    start_next_answer(a);
    chat_app_save(a);
    return true;
}

void chat_app_edit(chat_app *a, int i) {
    if (i < 0 || i >= a->n_msgs || a->msgs[i].role != CHAT_USER) return;
    a->editing = a->msgs[i].id;
    tf_set(&a->input, tb_str(&a->msgs[i].text));
    a->focus = CHAT_FOCUS_INPUT;
    a->selected = -1;
}

void chat_app_edit_cancel(chat_app *a) {
    a->editing = 0;
    tf_set(&a->input, "");
}

void chat_app_stop(chat_app *a) {
    if (!a->answering) return;
    chat_worker_stop(a->worker, a->answering);
    /* Queued messages stay queued: Stop ends this answer, not the conversation. */
}

void chat_app_new_chat(chat_app *a) {
    if (!a->n_msgs && a->chat_path) return; /* this one is new already */
    if (a->answering) chat_worker_stop(a->worker, a->answering);
    a->answering = 0;
    a->editing = 0;
    chat_app_save(a);
    chat_msgs_clear(a);
    free(a->chat_path);
    a->chat_path = NULL;
    a->title[0] = 0;
    a->scroll = 0;
    a->follow = true;
    chat_app_save(a);
}

bool chat_app_export(chat_app *a) {
    chat_app_save(a);
    char *md = a->chat_path ? chat_store_export(a, a->chat_path) : NULL;
    if (!md) {
        chat_app_notice(a, true, "Cannot export the conversation%s%s.", a->chat_path ? " next to " : "",
                        a->chat_path ? a->chat_path : "");
        return false;
    }
    chat_app_notice(a, false, "Exported the conversation to %s", md);
    free(md);
    return true;
}

static bool has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), k = strlen(ext);
    return n > k && !strcasecmp(path + n - k, ext);
}

/* A document longer than the context is summarized in parts; past this size
 * (a book or two) the rest is left out. */
#define CHAT_DOC_MAX (16u << 20)

void chat_app_open_file(chat_app *a, const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (has_ext(path, ".gguf")) {
        chat_app_load_model(a, path);
        return;
    }
    if (!has_ext(path, ".txt") && !has_ext(path, ".md")) {
        chat_app_notice(a, true, "%s: drop a .gguf model to load it, or a .txt / .md document "
                                 "to summarize it.", base);
        return;
    }
    if (!a->loaded && !a->loads_pending) {
        chat_app_notice(a, true, "%s: load a model first (drop a .gguf file), then drop the document.",
                        base);
        return;
    }
    size_t max = CHAT_DOC_MAX;
    FILE *f = fopen(path, "rb");
    char *raw = malloc(max);
    size_t n = f && raw ? fread(raw, 1, max, f) : 0;
    bool more = f && fgetc(f) != EOF;
    if (f) fclose(f);
    size_t len = 0;
    char *doc = f && raw ? utf8_clean(raw, n, &len) : NULL;
    free(raw);
    if (!doc) {
        chat_app_notice(a, true, "Cannot read %s.", base);
        return;
    }
    static const char head[] = CHAT_DOC_HEAD;
    char *msg = malloc(sizeof head + len);
    chat_msg *m = NULL;
    bool busy = a->answering || a->loads_pending;
    if (msg) {
        memcpy(msg, head, sizeof head - 1);
        memcpy(msg + sizeof head - 1, doc, len);
        m = chat_msg_add(a, a->n_msgs, CHAT_USER, CHAT_QUEUED, msg, sizeof head - 1 + len);
    }
    if (m) {
        snprintf(m->doc_name, sizeof m->doc_name, "%s", base);
        if (more)
            snprintf(m->note, sizeof m->note, "only the first %zu MiB of %s were read", max >> 20, base);
        a->follow = true;
        if (!busy) start_next_answer(a);
        chat_app_save(a);
    } else {
        chat_app_notice(a, true, "Out of memory: %s was not sent.", base);
    }
    free(msg);
    free(doc);
}

void chat_app_apply_settings(chat_app *a) {
    if (!*a->model_path) {
        chat_app_notice(a, true, "No model to reload: drop a .gguf file on the window.");
        return;
    }
    if (a->answering) chat_worker_stop(a->worker, a->answering);
    chat_app_load_model(a, a->model_path);
}

/* ---------------------------------------------------------- worker events */

static void on_done(chat_app *a, const chat_ev *e) {
    chat_msg *m = msg_by_id(a, e->msg_id);
    if (m) {
        m->state = e->stopped ? CHAT_STOPPED : e->status != PHIVK_OK ? CHAT_FAILED : CHAT_DONE;
        m->n_tokens = e->n_tokens;
        if (m->state == CHAT_STOPPED) snprintf(m->note, sizeof m->note, "stopped");
        else if (e->text) snprintf(m->note, sizeof m->note, "%s", e->text);
        else if (*e->note) snprintf(m->note, sizeof m->note, "%s", e->note);
        m->wrap_w = 0;
    }
    if (e->msg_id == a->answering) a->answering = 0;
    if (e->msg_id == a->summary_id) a->summary_id = 0;
    if (e->ctx_total) {
        a->ctx_used = e->ctx_used;
        a->ctx_total = e->ctx_total;
        a->ctx_kept = e->ctx_kept;
    }
    if (e->n_tokens) {
        a->tok_per_s = e->tok_per_s;
        a->last_tokens = e->n_tokens;
    }
    a->progress_stage[0] = 0;
    if (e->status == PHIVK_ERR_DEVICE_LOST) {
        /* The worker dropped the device; open it again so the next message works. */
        a->loaded = false;
        chat_app_notice(a, true, "The GPU was lost (%s). The conversation is kept; reloading %s.",
                        e->text ? e->text : "device lost", a->model_name);
        chat_app_load_model(a, a->model_path);
    } else if (e->status != PHIVK_OK && e->status != PHIVK_ERR_CANCELLED && e->text) {
        chat_app_notice(a, true, "The answer failed: %s", e->text);
    }
    chat_app_save(a);
    start_next_answer(a);
}

void chat_app_take_worker_events(chat_app *a) {
    chat_ev *list = chat_worker_poll(a->worker);
    for (chat_ev *e = list; e; e = e->next) {
        chat_msg *m;
        switch (e->kind) {
        case CHAT_EV_DEVICES:
            free(a->devices);
            a->devices = e->devices;
            a->n_devices = e->n_devices;
            e->devices = NULL;
            break;
        case CHAT_EV_PROGRESS:
            snprintf(a->progress_stage, sizeof a->progress_stage, "%s", e->stage);
            a->progress_done = e->done;
            a->progress_total = e->total;
            break;
        case CHAT_EV_LOADED:
            a->loads_pending--;
            a->loaded = true;
            snprintf(a->model_name, sizeof a->model_name, "%s", e->text);
            snprintf(a->device_name, sizeof a->device_name, "%s", e->device);
            snprintf(a->model_path, sizeof a->model_path, "%s", e->path);
            a->ask_model[0] = 0; /* the chat names the loaded model from now on */
            a->ctx_total = e->ctx_total;
            a->ctx_used = 0;
            if (!a->loads_pending) {
                a->loaded_ctx_req = a->pending_ctx;
                snprintf(a->loaded_device, sizeof a->loaded_device, "%s", a->pending_device);
            }
            a->progress_stage[0] = 0;
            char title[300];
            snprintf(title, sizeof title, "phivk chat \xE2\x80\x94 %s", a->model_name);
            SDL_SetWindowTitle(a->win, title);
            chat_recent_add(a, e->path);
            chat_app_mark_dirty(a);
            start_next_answer(a);
            break;
        case CHAT_EV_LOAD_FAILED: {
            a->loads_pending--;
            const char *base = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;
            if (a->loaded)
                chat_app_notice(a, true, "Could not load %s: %s. Still using %s.", base, e->text,
                                a->model_name);
            else
                chat_app_notice(a, true, "Could not load %s: %s", base, e->text);
            a->progress_stage[0] = 0;
            start_next_answer(a);
            break;
        }
        case CHAT_EV_FIT:
            if ((m = msg_by_id(a, e->msg_id))) {
                tb_set(&m->text, e->text, strlen(e->text));
                snprintf(m->note, sizeof m->note, "%s", e->note);
                m->doc_name[0] = 0; /* what is left of it is plain text */
                m->wrap_w = 0;
            }
            break;
        case CHAT_EV_TEXT:
            if ((m = msg_by_id(a, e->msg_id))) {
                /* Byte tokens can spell control characters; the detokenizer holds
                 * back split sequences, so each piece cleans on its own. */
                size_t n;
                char *clean = utf8_clean(e->text, strlen(e->text), &n);
                if (clean) tb_append(&m->text, clean, n);
                free(clean);
                m->wrap_w = 0;
                chat_app_mark_dirty(a);
                if (++a->unsaved_tokens >= 16) chat_app_save(a);
            }
            break;
        case CHAT_EV_DONE: on_done(a, e); break;
        case CHAT_EV_PREFILLED:
            a->prefilling = false;
            a->prefill_tokens = e->ctx_used;
            a->ctx_used = e->ctx_used;
            a->ctx_kept = e->ctx_kept;
            if (e->ctx_total) a->ctx_total = e->ctx_total;
            a->progress_stage[0] = 0;
            break;
        case CHAT_EV_SUMMARY:
            if (a->summary_id != e->msg_id || a->summary_pass != e->n_tokens || a->summary_chunks != (int64_t)e->total) {
                a->summary_t0 = chat_now(); /* the time left is of this pass */
                a->summary_id = e->msg_id;
                a->summary_pass = e->n_tokens;
                a->summary_chunks = (int64_t)e->total;
            }
            a->summary_done = (int64_t)e->done;
            a->summary_events++;
            break;
        }
    }
    chat_ev_free(list);
}

/* ------------------------------------------------------------------ events */

static text_field *focused(chat_app *a) {
    if (a->focus == CHAT_FOCUS_SYSTEM && a->panel_open) return &a->system;
    if (a->focus == CHAT_FOCUS_SEARCH) return &a->search;
    if (a->focus == CHAT_FOCUS_RENAME && a->renaming >= 0) return &a->rename;
    if (a->focus == CHAT_FOCUS_MODEL_PATH && a->picker_open) return &a->model_field;
    return &a->input;
}

/* The rectangle an edit field is drawn in (for clicks and drags). */
static SDL_Rect field_rect(chat_app *a, const text_field *f) {
    return f == &a->system ? a->r_system : f == &a->search ? a->r_search : f == &a->rename ? a->r_rename
           : f == &a->model_field ? a->r_model_path : a->r_input;
}

static void copy(chat_app *a) {
    text_field *f = focused(a);
    size_t b, e;
    if (tf_selection(f, &b, &e)) {
        char *sel = strndup(tb_str(&f->text) + b, e - b);
        if (!sel || SDL_SetClipboardText(sel) != 0) chat_app_notice(a, true, "Cannot copy: %s", SDL_GetError());
        free(sel);
        return;
    }
    const char *s = a->selected >= 0 && a->selected < a->n_msgs ? tb_str(&a->msgs[a->selected].text)
                                                                : tb_str(&f->text);
    if (*s && SDL_SetClipboardText(s) != 0)
        chat_app_notice(a, true, "Cannot copy: %s", SDL_GetError());
}

static void paste(chat_app *a) {
    if (!SDL_HasClipboardText()) return;
    char *s = SDL_GetClipboardText();
    if (s) tf_insert(focused(a), s, strlen(s));
    SDL_free(s);
    chat_app_mark_dirty(a);
}

static void edited(chat_app *a, text_field *f) {
    if (f == &a->system) snprintf(a->set.system, sizeof a->set.system, "%s", tb_str(&f->text));
    if (f == &a->search) {
        a->conv_scroll = 0;
        chat_convs_filter(a);
    }
    if (f == &a->system || f == &a->input) chat_app_mark_dirty(a);
}

static void on_key(chat_app *a, const SDL_KeyboardEvent *k) {
    text_field *f = focused(a);
    bool ctrl = k->keysym.mod & KMOD_CTRL, shift = k->keysym.mod & KMOD_SHIFT;
    if (f->compose[0]) return; /* the IME owns the keys while composing */
    int page = a->view_h * 9 / 10;
    size_t anchor = f->anchor; /* Shift with a move extends the selection */
    switch (k->keysym.sym) {
    case SDLK_RETURN:
    case SDLK_KP_ENTER:
        if (f == &a->rename) {
            chat_app_rename_end(a, true);
        } else if (f == &a->model_field) {
            if (a->model_field.text.len) chat_app_load_model(a, tb_str(&a->model_field.text));
        } else if (f == &a->search) {
            a->focus = CHAT_FOCUS_INPUT;
        } else if (shift || f != &a->input) {
            tf_insert(f, "\n", 1);
            edited(a, f);
        } else {
            chat_app_send(a);
        }
        break;
    case SDLK_ESCAPE:
        if (f == &a->rename) chat_app_rename_end(a, false);
        else if (a->picker_open) chat_picker_close(a);
        else if (f == &a->search) {
            tf_set(&a->search, "");
            edited(a, f);
            a->focus = CHAT_FOCUS_INPUT;
        } else if (a->answering) chat_app_stop(a);
        else if (a->editing) chat_app_edit_cancel(a);
        else if (a->n_notices) dismiss(a, a->n_notices - 1);
        else a->selected = -1;
        break;
    case SDLK_BACKSPACE: tf_backspace(f); edited(a, f); break;
    case SDLK_DELETE: tf_delete(f); edited(a, f); break;
    case SDLK_LEFT: if (ctrl) tf_word_left(f); else tf_left(f); if (shift) f->anchor = anchor; break;
    case SDLK_RIGHT: if (ctrl) tf_word_right(f); else tf_right(f); if (shift) f->anchor = anchor; break;
    case SDLK_HOME:
        if (ctrl) chat_scroll_to(a, 0);
        else tf_home(f);
        if (shift) f->anchor = anchor;
        break;
    case SDLK_END:
        if (ctrl) chat_scroll_to(a, INT_MAX);
        else tf_end(f);
        if (shift) f->anchor = anchor;
        break;
    case SDLK_UP: if (f == &a->input) history_move(a, -1); break;
    case SDLK_DOWN: if (f == &a->input) history_move(a, 1); break;
    case SDLK_PAGEUP: chat_scroll_to(a, a->scroll - page); break;
    case SDLK_PAGEDOWN: chat_scroll_to(a, a->scroll + page); break;
    case SDLK_TAB:
        if (a->panel_open) a->focus = a->focus == CHAT_FOCUS_INPUT ? CHAT_FOCUS_SYSTEM : CHAT_FOCUS_INPUT;
        break;
    case SDLK_F2: a->panel_open = !a->panel_open; break;
    default:
        if (!ctrl) break;
        switch (k->keysym.sym) {
        case SDLK_c: copy(a); break;
        case SDLK_v: paste(a); edited(a, f); break;
        case SDLK_n: chat_app_new_chat(a); break;
        case SDLK_o: if (a->picker_open) chat_picker_close(a); else chat_picker_open(a); break;
        case SDLK_f: a->focus = CHAT_FOCUS_SEARCH; break;
        case SDLK_r: chat_app_regenerate(a); break;
        case SDLK_e: chat_app_export(a); break;
        case SDLK_COMMA: a->panel_open = !a->panel_open; break;
        case SDLK_q: a->quit = true; break;
        }
    }
}

static bool inside(const SDL_Rect *r, int x, int y) {
    return x >= r->x && y >= r->y && x < r->x + r->w && y < r->y + r->h;
}

static void do_action(chat_app *a, const chat_button *b) {
    switch ((chat_action)b->action) {
    case CHAT_ACT_SEND: chat_app_send(a); break;
    case CHAT_ACT_STOP: chat_app_stop(a); break;
    case CHAT_ACT_NEW: chat_app_new_chat(a); break;
    case CHAT_ACT_EXPORT: chat_app_export(a); break;
    case CHAT_ACT_PANEL: a->panel_open = !a->panel_open; break;
    case CHAT_ACT_DISMISS: dismiss(a, b->arg); break;
    case CHAT_ACT_STEP: chat_setting_step(a, b->arg / 2, b->arg % 2 ? 1 : -1); break;
    case CHAT_ACT_APPLY: chat_app_apply_settings(a); break;
    case CHAT_ACT_OPEN_LINK: chat_app_open_link(a); break;
    case CHAT_ACT_CANCEL_LINK: free(a->link_url); a->link_url = NULL; break;
    case CHAT_ACT_REGENERATE: chat_app_regenerate(a); break;
    case CHAT_ACT_EDIT: chat_app_edit(a, b->arg); break;
    case CHAT_ACT_SWITCH: chat_app_switch(a, b->arg); break;
    case CHAT_ACT_RENAME: chat_app_rename_begin(a, b->arg); break;
    case CHAT_ACT_DELETE: chat_app_delete(a, b->arg); break;
    case CHAT_ACT_UNDO_DELETE:
        dismiss(a, b->arg);
        chat_app_undo_delete(a);
        break;
    case CHAT_ACT_PICKER:
        if (a->picker_open) chat_picker_close(a);
        else chat_picker_open(a);
        break;
    case CHAT_ACT_PICK:
        if (b->arg >= 0 && b->arg < a->n_models) chat_app_load_model(a, a->models[b->arg].path);
        break;
    case CHAT_ACT_OPEN_PATH:
        if (a->model_field.text.len) chat_app_load_model(a, tb_str(&a->model_field.text));
        break;
    case CHAT_ACT_CANCEL_SUMMARY: chat_app_stop(a); break;
    case CHAT_ACT_LOAD_ASKED:
        if (*a->ask_model) chat_app_load_model(a, a->ask_model);
        dismiss(a, b->arg);
        break;
    }
}

/* Scroll position for a pointer at y while dragging the thumb. */
static void drag_to(chat_app *a, int y) {
    int track = a->r_scroll_track.h - a->r_scroll_thumb.h;
    int range = a->content_h - a->view_h;
    if (track <= 0 || range <= 0) return;
    chat_scroll_to(a, (int)((int64_t)(y - a->drag_grab - a->r_scroll_track.y) * range / track));
}

/* A click at (x, y) from an answer's bubble's top left: Copy copies its code block, a
 * link asks whether to open it. */
static void md_click(chat_app *a, const chat_msg *m, int x, int y) {
    SDL_Point pt = {x, y};
    for (int i = 0; i < m->lay.n_boxes; i++) {
        const chat_md_box *b = &m->lay.boxes[i];
        if (b->kind != CHAT_BOX_COPY || !SDL_PointInRect(&pt, &b->r)) continue;
        size_t n;
        const char *code = chat_md_code(&m->md, b->block, &n);
        char *s = strndup(code, n);
        if (!s || SDL_SetClipboardText(s) != 0) chat_app_notice(a, true, "Cannot copy: %s", SDL_GetError());
        free(s);
        return;
    }
    for (int i = 0; i < m->lay.n_pieces; i++) {
        const chat_md_piece *p = &m->lay.pieces[i];
        if (p->run < 0 || m->md.runs[p->run].link < 0) continue;
        TTF_Font *f = chat_md_ttf(a, m->md.runs[p->run].font);
        SDL_Rect r = {p->x, p->y, p->w, TTF_FontLineSkip(f)};
        if (!SDL_PointInRect(&pt, &r)) continue;
        free(a->link_url);
        a->link_url = strdup(m->md.links[m->md.runs[p->run].link]);
        return;
    }
}

/* xdg-open in a grandchild: the browser it starts may run for hours, and a
 * grandchild is adopted by init, so no zombie waits on this process. */
bool chat_app_open_link(chat_app *a) {
    char *url = a->link_url;
    a->link_url = NULL;
    if (!url) return false;
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            execlp("xdg-open", "xdg-open", url, (char *)NULL);
            _exit(127);
        }
        _exit(0);
    }
    int st = 0;
    bool ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) chat_app_notice(a, true, "Cannot start xdg-open for %s.", url);
    free(url);
    return ok;
}

/* A press in an edit field puts the caret there (Shift extends the selection);
 * dragging selects. */
static void field_press(chat_app *a, int focus, int x, int y, bool extend) {
    a->focus = focus;
    text_field *f = focused(a);
    tf_move_to(f, chat_field_offset(a, f, field_rect(a, f), x, y), extend);
    a->selecting = true;
}

static void on_click(chat_app *a, int x, int y) {
    for (int i = a->n_buttons - 1; i >= 0; i--)
        if (inside(&a->buttons[i].r, x, y)) {
            do_action(a, &a->buttons[i]);
            return;
        }
    if (inside(&a->r_scroll_thumb, x, y)) {
        a->dragging = true;
        a->drag_grab = y - a->r_scroll_thumb.y;
        return;
    }
    if (inside(&a->r_scroll_track, x, y)) {
        chat_scroll_to(a, a->scroll + (y < a->r_scroll_thumb.y ? -1 : 1) * a->view_h * 9 / 10);
        return;
    }
    bool shift = SDL_GetModState() & KMOD_SHIFT;
    if (a->renaming >= 0 && !inside(&a->r_rename, x, y)) chat_app_rename_end(a, true);
    if (a->picker_open) {
        if (inside(&a->r_model_path, x, y)) field_press(a, CHAT_FOCUS_MODEL_PATH, x, y, shift);
        return; /* the picker is modal: the window under it waits */
    }
    if (inside(&a->r_search, x, y)) {
        field_press(a, CHAT_FOCUS_SEARCH, x, y, shift);
        return;
    }
    if (a->renaming >= 0 && inside(&a->r_rename, x, y)) {
        field_press(a, CHAT_FOCUS_RENAME, x, y, shift);
        return;
    }
    if (inside(&a->r_input, x, y)) {
        field_press(a, CHAT_FOCUS_INPUT, x, y, shift);
        return;
    }
    if (a->panel_open && inside(&a->r_system, x, y)) {
        field_press(a, CHAT_FOCUS_SYSTEM, x, y, shift);
        return;
    }
    if (inside(&a->r_transcript, x, y)) {
        int cy = y - a->r_transcript.y + a->scroll, cx = x - a->r_transcript.x;
        a->selected = -1;
        for (int i = 0; i < a->n_msgs; i++) {
            const chat_msg *m = &a->msgs[i];
            if (cy >= m->y && cy < m->y + m->h && cx >= m->x && cx < m->x + m->w) {
                a->selected = i;
                if (m->role == CHAT_ASSISTANT) md_click(a, m, cx - m->x, cy - m->y);
            }
        }
    }
}

void chat_app_handle_event(chat_app *a, const SDL_Event *e) {
    a->events++;
    int x, y;
    switch (e->type) {
    case SDL_QUIT: a->quit = true; break;
    case SDL_WINDOWEVENT:
        if (e->window.event == SDL_WINDOWEVENT_SIZE_CHANGED ||
            e->window.event == SDL_WINDOWEVENT_DISPLAY_CHANGED)
            chat_layout(a);
        break;
    case SDL_TEXTINPUT: {
        text_field *f = focused(a);
        f->compose[0] = 0;
        tf_insert(f, e->text.text, strlen(e->text.text));
        edited(a, f);
        break;
    }
    case SDL_TEXTEDITING:
        snprintf(focused(a)->compose, sizeof a->input.compose, "%s", e->edit.text);
        break;
    case SDL_KEYDOWN: on_key(a, &e->key); break;
    case SDL_MOUSEWHEEL: {
        int dy = e->wheel.y * (e->wheel.direction == SDL_MOUSEWHEEL_FLIPPED ? -1 : 1);
        SDL_GetMouseState(&x, &y);
        x = (int)(x * a->px_per_coord);
        y = (int)(y * a->px_per_coord);
        if (a->picker_open) {
            a->picker_first -= dy;
            if (a->picker_first < 0) a->picker_first = 0; /* the far end is clamped when drawn */
        } else if (inside(&a->r_sidebar, x, y)) {
            a->conv_scroll -= dy * 3 * a->line_h;
            if (a->conv_scroll < 0) a->conv_scroll = 0; /* the far end is clamped when drawn */
        } else {
            chat_scroll_to(a, a->scroll - dy * 3 * a->line_h);
        }
        break;
    }
    case SDL_MOUSEBUTTONDOWN:
        if (e->button.button != SDL_BUTTON_LEFT) break;
        x = (int)(e->button.x * a->px_per_coord);
        y = (int)(e->button.y * a->px_per_coord);
        on_click(a, x, y);
        break;
    case SDL_MOUSEMOTION:
        x = (int)(e->motion.x * a->px_per_coord);
        y = (int)(e->motion.y * a->px_per_coord);
        if (a->dragging) drag_to(a, y);
        else if (a->selecting)
            tf_move_to(focused(a), chat_field_offset(a, focused(a), field_rect(a, focused(a)), x, y), true);
        break;
    case SDL_MOUSEBUTTONUP: a->dragging = a->selecting = false; break;
    case SDL_DROPFILE:
        chat_app_open_file(a, e->drop.file);
        SDL_free(e->drop.file);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------- life cycle */

static void wake(void *user) {
    chat_app *a = user;
    SDL_Event e = {.type = a->wake_type};
    SDL_PushEvent(&e);
}

chat_app *chat_app_create(const chat_config *cfg) {
    chat_app *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = *cfg;
    a->set = cfg->settings;
    a->selected = -1;
    a->renaming = -1;
    a->follow = true;
    tf_set(&a->system, a->set.system);
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        fprintf(stderr, "phivk-chat: cannot open a window: %s\n", SDL_GetError());
        goto fail;
    }
    if (TTF_Init() != 0) {
        fprintf(stderr, "phivk-chat: SDL_ttf: %s\n", TTF_GetError());
        goto fail;
    }
    SDL_SetHint(SDL_HINT_IME_SHOW_UI, "1");
    a->wake_type = SDL_RegisterEvents(1);
    int w = cfg->width ? cfg->width : 960, h = cfg->height ? cfg->height : 680;
    a->win = SDL_CreateWindow("phivk chat", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, w, h,
                              SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
    if (!a->win) {
        fprintf(stderr, "phivk-chat: cannot open a window: %s\n", SDL_GetError());
        goto fail;
    }
    SDL_SetWindowMinimumSize(a->win, 420, 320);
    if (!cfg->software)
        a->ren = SDL_CreateRenderer(a->win, -1, SDL_RENDERER_ACCELERATED | SDL_RENDERER_PRESENTVSYNC);
    if (!a->ren) a->ren = SDL_CreateRenderer(a->win, -1, SDL_RENDERER_SOFTWARE);
    if (!a->ren) {
        fprintf(stderr, "phivk-chat: cannot draw in the window: %s\n", SDL_GetError());
        goto fail;
    }
    chat_layout(a); /* opens the fonts at the display's scale */
    if (!a->font) goto fail;
    a->chats_dir = chat_store_dir(cfg->data_dir);
    if (!a->chats_dir)
        chat_app_notice(a, true, "The conversation cannot be saved (see the terminal); it stays in this window.");
    else
        a->have_key = chat_store_key(a->chats_dir, a->key);
    /* The newest chat that reads; one that does not is named in a notice and
     * never written to (a new chat gets a new file). */
    chat_convs_refresh(a, true);
    char *latest = a->n_convs ? strdup(a->convs[0].path) : NULL;
    if (latest && chat_store_load(a, latest)) {
        a->chat_path = latest;
        snprintf(a->set.system, sizeof a->set.system, "%s", tb_str(&a->system.text));
    } else {
        free(latest);
    }
    chat_recent_read(a);
    a->history_pos = a->n_history;
    a->worker = chat_worker_create(wake, a);
    if (!a->worker) {
        fprintf(stderr, "phivk-chat: cannot start the model thread\n");
        goto fail;
    }
    const char *model = cfg->model ? cfg->model : *a->model_path ? a->model_path : NULL;
    if (!cfg->model && model && access(model, R_OK) != 0) {
        chat_app_notice(a, false, "The last model, %s, is not there any more: drop a .gguf file "
                                  "on the window to load one.", model);
        model = NULL;
    }
    if (model) {
        char path[sizeof a->model_path];
        snprintf(path, sizeof path, "%s", model);
        a->model_path[0] = 0;
        chat_app_load_model(a, path);
    } else if (*a->ask_model) {
        /* Loading runs a parser and allocates memory for whatever file the chat
         * names: for a chat this installation did not save, the user decides. */
        chat_app_notice(a, false, "This conversation names the model %s, but it was not saved by "
                                  "phivk-chat here. Load it only if you trust that file.", a->ask_model);
        a->notices[a->n_notices - 1].action = CHAT_ACT_LOAD_ASKED;
        a->notices[a->n_notices - 1].label = "Load this model";
    }
    /* Answers that were queued when the app last stopped wait for the model. */
    SDL_StartTextInput();
    chat_layout(a);
    return a;
fail:
    chat_app_destroy(a);
    return NULL;
}

void chat_app_destroy(chat_app *a) {
    if (!a) return;
    chat_worker_destroy(a->worker);
    a->worker = NULL;
    if (a->chats_dir && a->ren) chat_app_save(a);
    chat_msgs_clear(a);
    free(a->msgs);
    chat_convs_close(a);
    chat_picker_close(a);
    chat_recent_free(a);
    tf_free(&a->input);
    tf_free(&a->system);
    tf_free(&a->search);
    tf_free(&a->rename);
    tf_free(&a->model_field);
    for (int i = 0; i < a->n_history; i++) free(a->history[i]);
    free(a->history);
    free(a->history_draft);
    free(a->devices);
    free(a->chats_dir);
    free(a->chat_path);
    free(a->link_url);
    chat_text_cache_clear(a);
    chat_fonts_close(a);
    if (a->ren) SDL_DestroyRenderer(a->ren);
    if (a->win) SDL_DestroyWindow(a->win);
    if (TTF_WasInit()) TTF_Quit();
    SDL_Quit();
    free(a);
}

bool chat_app_step(chat_app *a, int wait_ms) {
    SDL_Event e;
    if (SDL_WaitEventTimeout(&e, wait_ms)) {
        chat_app_handle_event(a, &e);
        while (SDL_PollEvent(&e)) chat_app_handle_event(a, &e);
    }
    chat_app_take_worker_events(a);
    if (a->dirty && chat_now() - a->dirty_since > 0.3) chat_app_save(a);
    chat_app_draw(a);
    return !a->quit;
}

void chat_app_draw(chat_app *a) {
    double t0 = chat_now();
    chat_draw_frame(a);
    SDL_RenderPresent(a->ren);
    a->frames++;
    a->last_frame_ms = (chat_now() - t0) * 1e3;
}

bool chat_app_screenshot(chat_app *a, const char *path) {
    chat_draw_frame(a);
    int pitch = a->out_w * 3;
    unsigned char *px = malloc((size_t)pitch * (size_t)a->out_h);
    bool ok = px && SDL_RenderReadPixels(a->ren, NULL, SDL_PIXELFORMAT_RGB24, px, pitch) == 0 &&
              chat_png_write(path, px, a->out_w, a->out_h, pitch);
    free(px);
    SDL_RenderPresent(a->ren);
    if (!ok) chat_app_notice(a, true, "Cannot write the screenshot %s.", path);
    return ok;
}
