/* The window's state that events (chat_ui.c), drawing (chat_draw.c) and saving
 * (chat_store.c) all read or change: notices, the message list and its actions,
 * the settings the panel steps through, and the unsaved mark. Below all three, so
 * none of them depends on another's file. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_app.h"

double chat_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void chat_app_notice(chat_app *a, bool error, const char *fmt, ...) {
    if (a->n_notices == CHAT_MAX_NOTICES) {
        memmove(a->notices, a->notices + 1, sizeof a->notices[0] * (CHAT_MAX_NOTICES - 1));
        a->n_notices--;
    }
    chat_notice *n = &a->notices[a->n_notices++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->text, sizeof n->text, fmt, ap);
    va_end(ap);
    n->error = error;
    n->action = 0;
    n->label = NULL;
    /* Notices quote model names and paths from files: shown safely on a terminal. */
    char shown[4 * sizeof n->text + 1];
    phivk_text_visible(n->text, strlen(n->text), true, shown, sizeof shown);
    fprintf(stderr, "phivk-chat: %s\n", shown);
}

void chat_app_mark_dirty(chat_app *a) {
    if (!a->dirty) a->dirty_since = chat_now();
    a->dirty = true;
}

/* ---------------------------------------------------------------- messages */

void chat_md_layout_free(chat_md_layout *l) {
    free(l->pieces);
    free(l->boxes);
    free(l->block_y);
    *l = (chat_md_layout){0};
}


chat_msg *chat_msg_add(chat_app *a, int at, chat_role role, chat_state st, const char *text, size_t n) {
    if (a->n_msgs == a->cap_msgs) {
        int cap = a->cap_msgs ? a->cap_msgs * 2 : 32;
        chat_msg *m = realloc(a->msgs, sizeof *m * (size_t)cap);
        if (!m) return NULL;
        a->msgs = m;
        a->cap_msgs = cap;
    }
    chat_msg m = {.id = ++a->next_id, .role = role, .state = st};
    if (n && !tb_set(&m.text, text, n)) return NULL;
    memmove(a->msgs + at + 1, a->msgs + at, sizeof m * (size_t)(a->n_msgs - at));
    a->msgs[at] = m;
    a->n_msgs++;
    if (a->selected >= at) a->selected++;
    return &a->msgs[at];
}

/* Removes the messages from index `from` on. */
void chat_msgs_drop_from(chat_app *a, int from) {
    for (int i = from; i < a->n_msgs; i++) {
        tb_free(&a->msgs[i].text);
        text_lines_free(&a->msgs[i].lines);
        chat_md_free(&a->msgs[i].md);
        chat_md_layout_free(&a->msgs[i].lay);
    }
    a->n_msgs = from;
    if (a->selected >= from) a->selected = -1;
}

void chat_msgs_clear(chat_app *a) { chat_msgs_drop_from(a, 0); }

int chat_msg_action(const chat_app *a, int i) {
    const chat_msg *m = &a->msgs[i];
    if (m->role == CHAT_ASSISTANT && i == a->n_msgs - 1 && !a->answering && a->loaded && i > 0)
        return CHAT_ACT_REGENERATE;
    if (m->role == CHAT_USER && i == a->selected && m->state == CHAT_DONE && !a->editing) return CHAT_ACT_EDIT;
    return 0;
}

/* ---------------------------------------------------------------- settings */

enum { SET_TEMP, SET_TOP_P, SET_N_PREDICT, SET_CTX, SET_DEVICE, SET_COUNT };
static const char *const set_labels[SET_COUNT] = {"Temperature", "Top-p", "Max tokens", "Context",
                                                  "Device"};
static const int32_t n_predict_steps[] = {32, 64, 128, 256, 512, 1024, 2048, 4096, -1};
static const int32_t ctx_steps[] = {0, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072};

int chat_setting_count(void) { return SET_COUNT; }
const char *chat_setting_label(int i) { return i >= 0 && i < SET_COUNT ? set_labels[i] : ""; }

void chat_setting_value(const chat_app *a, int i, char *out, size_t cap) {
    switch (i) {
    case SET_TEMP: snprintf(out, cap, a->set.temp == 0 ? "%.1f (greedy)" : "%.1f", (double)a->set.temp); break;
    case SET_TOP_P: snprintf(out, cap, "%.2f", (double)a->set.top_p); break;
    case SET_N_PREDICT:
        if (a->set.n_predict < 0) snprintf(out, cap, "no limit");
        else snprintf(out, cap, "%d", a->set.n_predict);
        break;
    case SET_CTX:
        if (a->set.ctx) snprintf(out, cap, "%d", a->set.ctx);
        else snprintf(out, cap, "auto");
        break;
    case SET_DEVICE: {
        int d = *a->set.device ? atoi(a->set.device) : -1;
        if (a->set.device[strspn(a->set.device, "0123456789")]) snprintf(out, cap, "%s", a->set.device);
        else if (d >= 0 && d < a->n_devices) snprintf(out, cap, "%d: %s", d, a->devices[d].name);
        else if (d >= 0) snprintf(out, cap, "device %d", d);
        else snprintf(out, cap, "best available");
        break;
    }
    default: snprintf(out, cap, "?");
    }
}

/* The index of the first step >= v, so a value off the list moves to a neighbour. */
static int step_index(const int32_t *steps, int n, int32_t v) {
    for (int i = 0; i < n; i++)
        if (steps[i] == v || (steps[i] > v && v >= 0)) return i;
    return n - 1;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

void chat_setting_step(chat_app *a, int i, int dir) {
    int k;
    switch (i) {
    case SET_TEMP: a->set.temp = clampf(roundf((a->set.temp + 0.1f * dir) * 10) / 10, 0, 2); break;
    case SET_TOP_P: a->set.top_p = clampf(roundf((a->set.top_p + 0.05f * dir) * 20) / 20, 0.05f, 1); break;
    case SET_N_PREDICT: {
        int n = (int)(sizeof n_predict_steps / sizeof *n_predict_steps);
        k = step_index(n_predict_steps, n, a->set.n_predict) + dir;
        a->set.n_predict = n_predict_steps[k < 0 ? 0 : k >= n ? n - 1 : k];
        break;
    }
    case SET_CTX: {
        int n = (int)(sizeof ctx_steps / sizeof *ctx_steps);
        k = step_index(ctx_steps, n, a->set.ctx) + dir;
        a->set.ctx = ctx_steps[k < 0 ? 0 : k >= n ? n - 1 : k];
        break;
    }
    case SET_DEVICE: {
        int d = (*a->set.device ? atoi(a->set.device) : -1) + dir;
        if (d < -1) d = a->n_devices - 1;
        if (d >= a->n_devices) d = -1;
        if (d < 0) a->set.device[0] = 0;
        else snprintf(a->set.device, sizeof a->set.device, "%d", d);
        break;
    }
    }
    chat_app_mark_dirty(a);
}

bool chat_settings_need_reload(const chat_app *a) {
    return *a->model_path && a->loaded &&
           (a->set.ctx != a->loaded_ctx_req || strcmp(a->set.device, a->loaded_device));
}
