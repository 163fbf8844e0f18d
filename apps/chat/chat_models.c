/* Open model: the .gguf files in the usual places (~/Downloads, ~/models,
 * $XDG_DATA_HOME/phivk/models and the folders of the models opened last, each
 * with its direct subfolders), described from their headers
 * (phivk_model_brief_read), and the list of models opened last, kept in
 * recent-models next to the chats folder, one path a line, newest first. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat_app.h"

enum { RECENT_MAX = 8, PICKER_MAX = 200 };

/* recent-models beside the chats folder; NULL without one. Caller frees. */
static char *recent_path(const chat_app *a) {
    if (!a->chats_dir) return NULL;
    const char *slash = strrchr(a->chats_dir, '/');
    size_t n = slash ? (size_t)(slash - a->chats_dir) : 0, cap = n + 32;
    char *p = malloc(cap);
    if (p) snprintf(p, cap, "%.*s/recent-models", (int)n, a->chats_dir);
    return p;
}

void chat_recent_free(chat_app *a) {
    for (int i = 0; i < a->n_recent; i++) free(a->recent[i]);
    free(a->recent);
    a->recent = NULL;
    a->n_recent = 0;
}

void chat_recent_read(chat_app *a) {
    chat_recent_free(a);
    char *path = recent_path(a);
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f) return;
    a->recent = calloc(RECENT_MAX, sizeof *a->recent);
    char line[4096];
    while (a->recent && a->n_recent < RECENT_MAX && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (*line == '/' && (a->recent[a->n_recent] = strdup(line))) a->n_recent++;
    }
    fclose(f);
}

void chat_recent_add(chat_app *a, const char *model) {
    if (!a->recent && !(a->recent = calloc(RECENT_MAX, sizeof *a->recent))) return;
    char *abs = realpath(model, NULL);
    if (!abs) return;
    int k = 0;
    while (k < a->n_recent && strcmp(a->recent[k], abs)) k++;
    if (k == a->n_recent) {
        if (k == RECENT_MAX) free(a->recent[--k]);
        else a->n_recent++;
    } else {
        free(a->recent[k]);
    }
    memmove(a->recent + 1, a->recent, sizeof *a->recent * (size_t)k);
    a->recent[0] = abs;
    char *path = recent_path(a);
    FILE *f = path ? fopen(path, "w") : NULL;
    for (int i = 0; f && i < a->n_recent; i++) fprintf(f, "%s\n", a->recent[i]);
    if (f && fclose(f) != 0) chat_app_notice(a, true, "Cannot write %s.", path);
    free(path);
}

static bool has_gguf_ext(const char *name) {
    size_t n = strlen(name);
    return n > 5 && !strcasecmp(name + n - 5, ".gguf");
}

/* Adds path to the picker once (by its real path), with its description. */
static void add_model(chat_app *a, const char *path) {
    if (a->n_models >= PICKER_MAX) return;
    char *abs = realpath(path, NULL);
    if (!abs) return;
    for (int i = 0; i < a->n_models; i++)
        if (!strcmp(a->models[i].path, abs)) {
            free(abs);
            return;
        }
    chat_model_file *v = realloc(a->models, sizeof *v * (size_t)(a->n_models + 1));
    if (!v) {
        free(abs);
        return;
    }
    a->models = v;
    chat_model_file *f = &v[a->n_models++];
    *f = (chat_model_file){.path = abs};
    if (phivk_model_brief_read(abs, &f->brief) != PHIVK_OK) snprintf(f->error, sizeof f->error, "%s", phivk_last_error());
}

static int by_name(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The .gguf files in dir and, when depth > 0, in its subfolders, in name order. */
static void scan(chat_app *a, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < PICKER_MAX) {
        if (de->d_name[0] == '.') continue;
        char **v = realloc(names, sizeof *v * (size_t)(n + 1));
        if (!v) break;
        names = v;
        if ((names[n] = strdup(de->d_name))) n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && has_gguf_ext(names[i])) add_model(a, path);
        else if (depth > 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) scan(a, path, depth - 1);
        free(names[i]);
    }
    free(names);
}

void chat_picker_close(chat_app *a) {
    for (int i = 0; i < a->n_models; i++) free(a->models[i].path);
    free(a->models);
    a->models = NULL;
    a->n_models = 0;
    a->picker_open = false;
    if (a->focus == CHAT_FOCUS_MODEL_PATH) a->focus = CHAT_FOCUS_INPUT;
}

void chat_picker_open(chat_app *a) {
    chat_picker_close(a);
    a->picker_open = true;
    a->picker_first = 0;
    a->focus = CHAT_FOCUS_MODEL_PATH;
    const char *home = getenv("HOME"), *xdg = getenv("XDG_DATA_HOME");
    char dir[4096];
    /* The models opened last come first, then their folders and the usual places. */
    for (int i = 0; i < a->n_recent; i++) add_model(a, a->recent[i]);
    for (int i = 0; i < a->n_recent; i++) {
        snprintf(dir, sizeof dir, "%s", a->recent[i]);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) *slash = 0;
        scan(a, dir, 0);
    }
    if (home && *home) {
        snprintf(dir, sizeof dir, "%s/Downloads", home);
        scan(a, dir, 1);
        snprintf(dir, sizeof dir, "%s/models", home);
        scan(a, dir, 1);
    }
    if (xdg && *xdg == '/') snprintf(dir, sizeof dir, "%s/phivk/models", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.local/share/phivk/models", home);
    else dir[0] = 0;
    if (*dir) scan(a, dir, 1);
}
