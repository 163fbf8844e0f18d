/* The conversation on disk: one JSON file per chat (cJSON) under
 * $XDG_DATA_HOME/phivk/chats, rewritten whole through a temp file and rename so
 * a crash leaves either the old or the new file, never half of one. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat_app.h"

static const char *const state_names[] = {"done", "queued", "streaming", "stopped", "failed"};

static bool mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        bool ok = mkdir(path, 0700) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok) return false;
    }
    return mkdir(path, 0700) == 0 || errno == EEXIST;
}

char *chat_store_dir(const char *data_dir) {
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char buf[4096];
    if (data_dir) snprintf(buf, sizeof buf, "%s/chats", data_dir);
    else if (xdg && *xdg == '/') snprintf(buf, sizeof buf, "%s/phivk/chats", xdg);
    else if (home && *home) snprintf(buf, sizeof buf, "%s/.local/share/phivk/chats", home);
    else {
        fprintf(stderr, "phivk-chat: neither XDG_DATA_HOME nor HOME is set; use --data-dir DIR\n");
        return NULL;
    }
    if (!mkdir_p(buf)) {
        fprintf(stderr, "phivk-chat: cannot create %s: %s\n", buf, strerror(errno));
        return NULL;
    }
    return strdup(buf);
}

/* chat-YYYYmmdd-HHMMSS-NN.json: names sort by creation, so the latest is the
 * greatest name. */
char *chat_store_new_path(const char *dir) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    size_t cap = strlen(dir) + 64;
    char *p = malloc(cap);
    if (!p) return NULL;
    for (int n = 0; n < 100; n++) {
        snprintf(p, cap, "%s/chat-%s-%02d.json", dir, stamp, n);
        if (access(p, F_OK) != 0) return p;
    }
    free(p);
    return NULL;
}

char *chat_store_latest(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (!strncmp(de->d_name, "chat-", 5) && n > 5 && n < sizeof best &&
            !strcmp(de->d_name + n - 5, ".json") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    closedir(d);
    if (!*best) return NULL;
    size_t cap = strlen(dir) + strlen(best) + 2;
    char *p = malloc(cap);
    if (p) snprintf(p, cap, "%s/%s", dir, best);
    return p;
}

/* Flushes the folder that holds path, so that a rename in it is on disk. */
static bool sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    return close(fd) == 0 && ok;
}

/* Replaces path with data so that a crash, kill -9 or power cut at any moment
 * leaves the old file or the new one, whole: the bytes go to path.tmp in the same
 * folder (rename is atomic only within one file system) and reach the disk before
 * the rename makes them the file; then the folder is flushed so the rename lasts.
 * A kill leaves at most that one stale path.tmp, which the next save reuses. */
static bool write_atomic(const char *path, const char *data, size_t n) {
    size_t cap = strlen(path) + 8;
    char *tmp = malloc(cap);
    if (!tmp) return false;
    snprintf(tmp, cap, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < n;) {
        ssize_t k = write(fd, data + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        ok = k > 0;
        if (ok) done += (size_t)k;
    }
    if (fd >= 0) {
        bool synced = fsync(fd) == 0;
        ok = close(fd) == 0 && synced && ok;
    }
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) unlink(tmp);
    free(tmp);
    return ok && sync_parent(path);
}

static cJSON *to_json(const chat_app *a) {
    cJSON *root = cJSON_CreateObject(), *msgs = NULL, *set = NULL;
    if (!root) return NULL;
    bool ok = cJSON_AddNumberToObject(root, "version", 1) &&
              cJSON_AddStringToObject(root, "model", a->model_path) &&
              cJSON_AddStringToObject(root, "draft", tb_str(&a->input.text)) &&
              (set = cJSON_AddObjectToObject(root, "settings")) &&
              cJSON_AddStringToObject(set, "system", tb_str(&a->system.text)) &&
              cJSON_AddNumberToObject(set, "temp", a->set.temp) &&
              cJSON_AddNumberToObject(set, "top_p", a->set.top_p) &&
              cJSON_AddNumberToObject(set, "n_predict", a->set.n_predict) &&
              cJSON_AddNumberToObject(set, "ctx", a->set.ctx) &&
              cJSON_AddStringToObject(set, "device", a->set.device) &&
              (msgs = cJSON_AddArrayToObject(root, "messages"));
    for (int i = 0; ok && i < a->n_msgs; i++) {
        const chat_msg *m = &a->msgs[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(msgs, o) &&
             cJSON_AddStringToObject(o, "role", m->role == CHAT_USER ? "user" : "assistant") &&
             cJSON_AddStringToObject(o, "content", tb_str(&m->text)) &&
             cJSON_AddStringToObject(o, "state", state_names[m->state]) &&
             (!*m->note || cJSON_AddStringToObject(o, "note", m->note));
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

bool chat_store_save(const chat_app *a, const char *path) {
    cJSON *root = to_json(a);
    char *text = root ? cJSON_Print(root) : NULL;
    bool ok = text && write_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    return ok;
}

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool num_of(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = v->valuedouble;
    return true;
}

bool chat_store_load(chat_app *a, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *d = realloc(data, cap);
            if (!d) break;
            data = d;
        }
        size_t k = fread(data + n, 1, cap - n - 1, f);
        n += k;
        if (!k) break;
    }
    fclose(f);
    cJSON *root = data ? cJSON_ParseWithLength(data, n) : NULL;
    free(data);
    if (!root) return false;
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "settings");
    const char *s;
    double v;
    if ((s = str_of(root, "model"))) snprintf(a->model_path, sizeof a->model_path, "%s", s);
    if ((s = str_of(root, "draft"))) tf_set(&a->input, s);
    if (!a->cfg.system_given && (s = str_of(set, "system"))) tf_set(&a->system, s);
    if (a->cfg.settings_given) set = NULL; /* the command line wins */
    if (num_of(set, "temp", &v) && v >= 0 && v <= 100) a->set.temp = (float)v;
    if (num_of(set, "top_p", &v) && v > 0 && v <= 1) a->set.top_p = (float)v;
    if (num_of(set, "n_predict", &v) && v >= -1) a->set.n_predict = (int32_t)v;
    if (num_of(set, "ctx", &v) && v >= 0 && v <= (1 << 24)) a->set.ctx = (int32_t)v;
    if ((s = str_of(set, "device"))) snprintf(a->set.device, sizeof a->set.device, "%s", s);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "messages")) {
        const char *role = str_of(m, "role"), *content = str_of(m, "content");
        const char *state = str_of(m, "state"), *note = str_of(m, "note");
        if (!role || !content) continue;
        chat_state st = CHAT_DONE;
        for (int i = 0; state && i < (int)(sizeof state_names / sizeof *state_names); i++)
            if (!strcmp(state, state_names[i])) st = (chat_state)i;
        /* An answer cut off by a crash or kill is a stopped one now. */
        if (st == CHAT_STREAMING) st = CHAT_STOPPED;
        chat_msg *msg = chat_msg_add(a, a->n_msgs, strcmp(role, "user") ? CHAT_ASSISTANT : CHAT_USER,
                                     st, content, strlen(content));
        if (msg && note) snprintf(msg->note, sizeof msg->note, "%s", note);
    }
    cJSON_Delete(root);
    return true;
}

char *chat_store_export(const chat_app *a, const char *json_path) {
    size_t n = strlen(json_path);
    char *md = malloc(n + 4);
    if (!md) return NULL;
    memcpy(md, json_path, n + 1);
    if (n > 5 && !strcmp(md + n - 5, ".json")) md[n - 5] = 0;
    strcat(md, ".md");
    text_buf out = {0};
    char line[512];
    snprintf(line, sizeof line, "# Chat with %s\n\n", *a->model_name ? a->model_name : "phivk");
    bool ok = tb_append(&out, line, strlen(line));
    const char *sys = tb_str(&a->system.text);
    if (*sys) {
        ok = ok && tb_append(&out, "**System:** ", 12) && tb_append(&out, sys, strlen(sys)) &&
             tb_append(&out, "\n\n", 2);
    }
    for (int i = 0; ok && i < a->n_msgs; i++) {
        const chat_msg *m = &a->msgs[i];
        snprintf(line, sizeof line, "## %s\n\n",
                 m->role == CHAT_USER ? "You" : (*a->model_name ? a->model_name : "Assistant"));
        ok = tb_append(&out, line, strlen(line)) && tb_append(&out, tb_str(&m->text), m->text.len) &&
             tb_append(&out, "\n\n", 2);
        if (ok && *m->note) {
            snprintf(line, sizeof line, "_(%s)_\n\n", m->note);
            ok = tb_append(&out, line, strlen(line));
        }
    }
    ok = ok && write_atomic(md, tb_str(&out), out.len);
    tb_free(&out);
    if (!ok) {
        free(md);
        return NULL;
    }
    return md;
}
