/* The conversation list in the sidebar: every saved chat (chat_store_list),
 * newest first, filtered by the search box; switching, renaming, deleting with
 * Undo. A chat file that does not parse is named in a notice once and never
 * opened for writing. A deleted chat is moved aside (".trash-" + its name,
 * which the list does not read) until the next delete or the window closes, so
 * Undo is a rename back; one left by a crash goes at the next start. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_app.h"

void chat_convs_close(chat_app *a) {
    chat_entries_free(a->convs, a->n_convs);
    a->convs = NULL;
    a->n_convs = 0;
    if (a->trash) unlink(a->trash);
    free(a->trash);
    free(a->trash_from);
    a->trash = a->trash_from = NULL;
}

/* ASCII letters match either case; other bytes must be equal. */
static bool contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] &&
               (hay[k] == needle[k] || ((unsigned char)hay[k] < 128 && (unsigned char)needle[k] < 128 &&
                                        (hay[k] | 0x20) == (needle[k] | 0x20) && (hay[k] | 0x20) >= 'a' &&
                                        (hay[k] | 0x20) <= 'z')))
            k++;
        if (k == n) return true;
    }
    return !n;
}

/* Whether entry e matches the search box; kept in e->shown, so a frame does
 * not search every chat's text. */
static void filter_one(const chat_app *a, chat_entry *e) {
    const char *q = tb_str(&a->search.text);
    e->shown = !*q || contains(e->title, q) || (e->text && contains(e->text, q));
}

void chat_convs_filter(chat_app *a) {
    for (int i = 0; i < a->n_convs; i++) filter_one(a, &a->convs[i]);
}

bool chat_conv_shown(const chat_app *a, int i) { return a->convs[i].shown; }

/* A deleted chat that a crash kept from going for good (its Undo ended with
 * the window). */
static void drop_stale_trash(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[4096];
        if (strncmp(de->d_name, ".trash-chat-", 12)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

void chat_convs_refresh(chat_app *a, bool report_bad) {
    if (!a->chats_dir) return;
    if (report_bad && !a->trash) drop_stale_trash(a->chats_dir); /* at the start */
    chat_entry *v;
    int n;
    char **bad;
    int n_bad;
    if (!chat_store_list(a->chats_dir, &v, &n, &bad, &n_bad)) {
        chat_app_notice(a, true, "Cannot list the saved conversations in %s.", a->chats_dir);
        return;
    }
    chat_entries_free(a->convs, a->n_convs);
    a->convs = v;
    a->n_convs = n;
    chat_convs_filter(a);
    for (int i = 0; i < n_bad; i++) {
        if (report_bad && i < 3) {
            const char *base = strrchr(bad[i], '/') ? strrchr(bad[i], '/') + 1 : bad[i];
            chat_app_notice(a, true, "Skipped %s: it is not a readable chat file. It is left as it is.", base);
        }
        free(bad[i]);
    }
    if (report_bad && n_bad > 3) chat_app_notice(a, true, "Skipped %d more unreadable chat files.", n_bad - 3);
    free(bad);
    if (a->renaming >= a->n_convs) a->renaming = -1;
}

int chat_conv_current(const chat_app *a) {
    for (int i = 0; a->chat_path && i < a->n_convs; i++)
        if (!strcmp(a->convs[i].path, a->chat_path)) return i;
    return -1;
}

/* The open chat was saved: its entry follows (title, date, search text). */
static void convs_touch(chat_app *a) {
    if (!a->chat_path) return;
    int i = chat_conv_current(a);
    if (i < 0) {
        /* A new file: its name is the newest, so it goes first. */
        chat_entry *v = realloc(a->convs, sizeof *v * (size_t)(a->n_convs + 1));
        char *path = strdup(a->chat_path);
        if (!v || !path) {
            if (v) a->convs = v;
            free(path);
            return;
        }
        a->convs = v;
        memmove(v + 1, v, sizeof *v * (size_t)a->n_convs);
        v[0] = (chat_entry){.path = path};
        a->n_convs++;
        i = 0;
        if (a->renaming >= 0) a->renaming++;
    }
    chat_entry *e = &a->convs[i];
    e->mtime = time(NULL);
    const char *first_user = NULL;
    text_buf t = {0};
    bool ok = tb_append(&t, a->title, strlen(a->title)) && tb_append(&t, "\n", 1);
    for (int k = 0; k < a->n_msgs; k++) {
        const chat_msg *m = &a->msgs[k];
        if (!first_user && m->role == CHAT_USER) first_user = tb_str(&m->text);
        ok = ok && tb_append(&t, tb_str(&m->text), m->text.len) && tb_append(&t, "\n", 1);
    }
    if (*a->title) snprintf(e->title, sizeof e->title, "%s", a->title);
    else chat_title_from(first_user ? first_user : "", e->title, sizeof e->title);
    char *text = ok ? strdup(tb_str(&t)) : NULL;
    tb_free(&t);
    if (text) {
        free(e->text);
        e->text = text;
    }
    filter_one(a, e);
}

/* Here, not with the other actions (chat_ui.c): a save updates the list, and
 * switching and deleting save, so the list and saving are one module. */
void chat_app_save(chat_app *a) {
    a->dirty = false;
    a->unsaved_tokens = 0;
    if (!a->chats_dir) return;
    if (!a->chat_path && !(a->chat_path = chat_store_new_path(a->chats_dir))) return;
    if (chat_store_save(a, a->chat_path)) {
        a->save_failed_shown = false;
        convs_touch(a);
    } else if (!a->save_failed_shown) {
        a->save_failed_shown = true;
        chat_app_notice(a, true, "Cannot save the conversation to %s; it stays in this window.",
                        a->chat_path);
    }
}

/* The conversation as the model reads it: the system prompt, then every
 * message with text. Caller frees the array (not the strings). */
static phivk_chat_msg *conversation(chat_app *a, int *n) {
    phivk_chat_msg *gm = malloc(sizeof *gm * (size_t)(a->n_msgs + 1));
    *n = 0;
    if (!gm) return NULL;
    const char *sys = tb_str(&a->system.text);
    if (*sys) gm[(*n)++] = (phivk_chat_msg){"system", sys};
    for (int i = 0; i < a->n_msgs; i++) {
        const chat_msg *m = &a->msgs[i];
        if (!m->text.len || m->state == CHAT_QUEUED) continue;
        gm[(*n)++] = (phivk_chat_msg){m->role == CHAT_USER ? "user" : "assistant", tb_str(&m->text)};
    }
    return gm;
}

/* Leaves the current chat (saved) for an empty window. */
static void leave_current(chat_app *a) {
    if (a->answering) chat_worker_stop(a->worker, a->answering);
    a->answering = 0;
    a->editing = 0;
    if (a->chat_path) chat_app_save(a);
    chat_msgs_clear(a);
    free(a->chat_path);
    a->chat_path = NULL;
    a->title[0] = 0;
    tf_set(&a->input, "");
    a->scroll = 0;
    a->follow = true;
}

bool chat_app_switch(chat_app *a, int i) {
    if (i < 0 || i >= a->n_convs) return false;
    if (i == chat_conv_current(a)) return true;
    if (a->renaming >= 0) chat_app_rename_end(a, false);
    char *path = strdup(a->convs[i].path);
    if (!path) return false;
    leave_current(a);
    /* The model in use stays: the chat file's model is for a fresh start. */
    char model_path[sizeof a->model_path], ask[sizeof a->ask_model];
    memcpy(model_path, a->model_path, sizeof model_path);
    memcpy(ask, a->ask_model, sizeof ask);
    bool ok = chat_store_load(a, path);
    memcpy(a->model_path, model_path, sizeof model_path);
    memcpy(a->ask_model, ask, sizeof ask);
    if (!ok) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        chat_app_notice(a, true, "Cannot read %s any more; it is left as it is.", base);
        free(path);
        return false;
    }
    a->chat_path = path;
    snprintf(a->set.system, sizeof a->set.system, "%s", tb_str(&a->system.text));
    a->dirty = false;
    /* The model reads the conversation now, so the next message only adds itself. */
    int n;
    phivk_chat_msg *gm = a->loaded ? conversation(a, &n) : NULL;
    if (gm && n && chat_worker_prefill(a->worker, gm, n)) {
        a->prefilling = true;
        a->prefill_tokens = 0;
        snprintf(a->progress_stage, sizeof a->progress_stage, "prefill");
        a->progress_done = 0;
        a->progress_total = 1;
    }
    free(gm);
    return true;
}

void chat_app_rename_begin(chat_app *a, int i) {
    if (i < 0 || i >= a->n_convs) return;
    a->renaming = i;
    tf_set(&a->rename, a->convs[i].title);
    a->rename.anchor = 0; /* all selected: typing replaces it */
    a->focus = CHAT_FOCUS_RENAME;
}

void chat_app_rename_end(chat_app *a, bool commit) {
    int i = a->renaming;
    a->renaming = -1;
    a->focus = CHAT_FOCUS_INPUT;
    if (!commit || i < 0 || i >= a->n_convs) return;
    char title[sizeof a->title];
    chat_title_from(tb_str(&a->rename.text), title, sizeof title);
    if (i == chat_conv_current(a)) {
        snprintf(a->title, sizeof a->title, "%s", title);
        chat_app_save(a);
        return;
    }
    if (!chat_store_set_title(a->convs[i].path, title)) {
        chat_app_notice(a, true, "Cannot rename %s.", a->convs[i].path);
        return;
    }
    chat_convs_refresh(a, false);
}

void chat_app_delete(chat_app *a, int i) {
    if (i < 0 || i >= a->n_convs) return;
    if (a->renaming >= 0) chat_app_rename_end(a, false);
    const char *path = a->convs[i].path, *slash = strrchr(path, '/');
    size_t cap = strlen(path) + 8;
    char *trash = malloc(cap), *from = strdup(path);
    if (!trash || !from) {
        free(trash);
        free(from);
        return;
    }
    snprintf(trash, cap, "%.*s.trash-%s", (int)(slash ? slash + 1 - path : 0), path, slash ? slash + 1 : path);
    bool current = i == chat_conv_current(a);
    if (current) {
        /* Saved first, so Undo brings back what the window showed. */
        if (a->answering) chat_worker_stop(a->worker, a->answering);
        chat_app_save(a);
    }
    if (rename(from, trash) != 0) {
        chat_app_notice(a, true, "Cannot delete %s.", from);
        free(trash);
        free(from);
        return;
    }
    if (a->trash) unlink(a->trash); /* the previous delete is final now: its notice offers Undo no more */
    for (int k = 0; k < a->n_notices; k++)
        if (a->notices[k].action == CHAT_ACT_UNDO_DELETE) a->notices[k].action = 0;
    free(a->trash);
    free(a->trash_from);
    a->trash = trash;
    a->trash_from = from;
    a->trash_was_current = current;
    char title[sizeof a->convs[i].title];
    memcpy(title, a->convs[i].title, sizeof title);
    free(a->convs[i].path);
    free(a->convs[i].text);
    memmove(a->convs + i, a->convs + i + 1, sizeof *a->convs * (size_t)(a->n_convs - i - 1));
    a->n_convs--;
    if (current) {
        free(a->chat_path);
        a->chat_path = NULL; /* nothing more is written to the deleted file */
        leave_current(a);
        if (a->n_convs) chat_app_switch(a, i < a->n_convs ? i : a->n_convs - 1);
        else chat_app_save(a); /* an empty chat, first in the list */
    }
    chat_app_notice(a, false, "Deleted \"%s\".", *title ? title : "New chat");
    a->notices[a->n_notices - 1].action = CHAT_ACT_UNDO_DELETE;
    a->notices[a->n_notices - 1].label = "Undo";
}

bool chat_app_undo_delete(chat_app *a) {
    if (!a->trash) return false;
    if (access(a->trash_from, F_OK) == 0 || rename(a->trash, a->trash_from) != 0) {
        chat_app_notice(a, true, "Cannot bring back %s.", a->trash_from);
        return false;
    }
    char *from = a->trash_from;
    free(a->trash);
    a->trash = a->trash_from = NULL;
    chat_convs_refresh(a, false);
    for (int i = 0; a->trash_was_current && i < a->n_convs; i++)
        if (!strcmp(a->convs[i].path, from)) chat_app_switch(a, i);
    free(from);
    return true;
}
