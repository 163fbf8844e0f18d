/* The conversation on disk: one JSON file per chat (cJSON) under
 * $XDG_DATA_HOME/phivk/chats, rewritten whole through a temp file and rename so
 * a crash leaves either the old or the new file, never half of one.
 *
 * A chat file is untrusted when read: it may come from anywhere. Numbers are
 * range-checked before they are converted, text is cleaned like typed text, and
 * the model it names is loaded without asking only when the file carries the
 * mark this installation writes: a keyed hash (SipHash-2-4) of the model path
 * under a random key kept in the chats folder (mode 0600). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_common.h"
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

bool chat_store_key(const char *dir, uint8_t key[CHAT_KEY_BYTES]) {
    size_t cap = strlen(dir) + 16;
    char *path = malloc(cap);
    if (!path) return false;
    snprintf(path, cap, "%s/.key", dir);
    bool ok = false;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
        ok = getrandom(key, CHAT_KEY_BYTES, 0) == CHAT_KEY_BYTES &&
             write(fd, key, CHAT_KEY_BYTES) == CHAT_KEY_BYTES;
        ok = close(fd) == 0 && ok;
        if (!ok) remove(path);
    } else if (errno == EEXIST && (fd = open(path, O_RDONLY)) >= 0) {
        ok = read(fd, key, CHAT_KEY_BYTES) == CHAT_KEY_BYTES;
        close(fd);
    }
    if (!ok) fprintf(stderr, "phivk-chat: cannot use %s: saved chats' models will be asked for\n", path);
    free(path);
    return ok;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint64_t rotl(uint64_t x, int b) { return x << b | x >> (64 - b); }

static void sip_round(uint64_t v[4]) {
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static void sip_word(uint64_t v[4], uint64_t w) {
    v[3] ^= w;
    sip_round(v);
    sip_round(v);
    v[0] ^= w;
}

/* SipHash-2-4 (Aumasson and Bernstein), a keyed hash made for short inputs. */
static uint64_t siphash(const uint8_t key[CHAT_KEY_BYTES], const uint8_t *m, size_t n) {
    const uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
                     k1 ^ 0x7465646279746573ull};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) sip_word(v, le64(m + i));
    uint64_t last = (uint64_t)n << 56; /* the tail bytes and the length */
    for (size_t k = 0; i + k < n; k++) last |= (uint64_t)m[i + k] << (8 * k);
    sip_word(v, last);
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++) sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The mark of a model path under the key, as 16 hex digits. */
static void model_mark(const uint8_t key[CHAT_KEY_BYTES], const char *path, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)siphash(key, (const uint8_t *)path, strlen(path)));
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
    /* A model still waiting for the user's yes is kept, but not marked. */
    char mark[17];
    bool marked = *a->model_path && a->have_key;
    if (marked) model_mark(a->key, a->model_path, mark);
    bool ok = cJSON_AddNumberToObject(root, "version", 1) &&
              cJSON_AddStringToObject(root, "model", *a->model_path ? a->model_path : a->ask_model) &&
              (!marked || cJSON_AddStringToObject(root, "model_mark", mark)) &&
              cJSON_AddStringToObject(root, "draft", tb_str(&a->input.text)) &&
              (!*a->title || cJSON_AddStringToObject(root, "title", a->title)) &&
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

/* A string of the file, cleaned (invalid UTF-8 as U+FFFD, controls dropped) into
 * out[cap]; false when absent or out of memory. */
static bool clean_into(const cJSON *o, const char *key, char *out, size_t cap) {
    const char *s = str_of(o, key);
    size_t n;
    char *clean = s ? utf8_clean(s, strlen(s), &n) : NULL;
    if (clean) snprintf(out, cap, "%.*s", (int)utf8_floor(clean, n < cap ? n : cap - 1), clean);
    free(clean);
    return clean != NULL;
}

/* The JSON object in the file at path; NULL when it cannot be read or is not one. */
static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
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
    if (root && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

bool chat_store_load(chat_app *a, const char *path) {
    cJSON *root = read_json(path);
    if (!root) return false;
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "settings");
    const char *s;
    double v;
    char model[sizeof a->model_path], mark[17];
    a->model_path[0] = a->ask_model[0] = 0;
    if (clean_into(root, "model", model, sizeof model) && *model) {
        if (a->have_key) model_mark(a->key, model, mark);
        bool ours = a->have_key && (s = str_of(root, "model_mark")) && !strcmp(s, mark);
        snprintf(ours ? a->model_path : a->ask_model, sizeof model, "%s", model);
    }
    if ((s = str_of(root, "draft"))) tf_set(&a->input, s);
    a->title[0] = 0;
    clean_into(root, "title", a->title, sizeof a->title);
    if (!a->cfg.system_given && (s = str_of(set, "system"))) tf_set(&a->system, s);
    if (a->cfg.settings_given) set = NULL; /* the command line wins */
    if (num_of(set, "temp", &v) && v >= 0 && v <= 100) a->set.temp = (float)v;
    if (num_of(set, "top_p", &v) && v > 0 && v <= 1) a->set.top_p = (float)v;
    /* Clamped while still a double: converting one out of int32_t's range is undefined. */
    if (num_of(set, "n_predict", &v))
        a->set.n_predict = (int32_t)(v < -1 ? -1 : v > APP_MAX_N_PREDICT ? APP_MAX_N_PREDICT : v);
    if (num_of(set, "ctx", &v) && v >= 0 && v <= (1 << 24)) a->set.ctx = (int32_t)v;
    clean_into(set, "device", a->set.device, sizeof a->set.device);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "messages")) {
        const char *role = str_of(m, "role"), *state = str_of(m, "state"), *raw = str_of(m, "content");
        size_t len;
        char *content = role && raw ? utf8_clean(raw, strlen(raw), &len) : NULL;
        if (!content) continue;
        chat_state st = CHAT_DONE;
        for (int i = 0; state && i < (int)(sizeof state_names / sizeof *state_names); i++)
            if (!strcmp(state, state_names[i])) st = (chat_state)i;
        /* An answer cut off by a crash or kill is a stopped one now. */
        if (st == CHAT_STREAMING) st = CHAT_STOPPED;
        chat_msg *msg = chat_msg_add(a, a->n_msgs, strcmp(role, "user") ? CHAT_ASSISTANT : CHAT_USER,
                                     st, content, len);
        if (msg) clean_into(m, "note", msg->note, sizeof msg->note);
        free(content);
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

void chat_title_from(const char *text, char *out, size_t cap) {
    while (*text == ' ' || *text == '\n') text++;
    size_t n = strcspn(text, "\n");
    if (n >= cap) n = utf8_floor(text, cap - 1);
    memcpy(out, text, n);
    out[n] = 0;
}

static int newest_first(const void *x, const void *y) {
    return -strcmp(((const chat_entry *)x)->path, ((const chat_entry *)y)->path);
}

/* The entry of one chat file: its title and the text the search box looks in. */
static bool entry_of(cJSON *root, chat_entry *e) {
    text_buf t = {0};
    const char *first_user = NULL, *s;
    const cJSON *m;
    bool ok = true;
    if ((s = str_of(root, "title")) && *s) {
        chat_title_from(s, e->title, sizeof e->title);
        ok = tb_append(&t, s, strlen(s)) && tb_append(&t, "\n", 1);
    }
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "messages")) {
        const char *role = str_of(m, "role"), *c = str_of(m, "content");
        if (!role || !c) continue;
        if (!first_user && !strcmp(role, "user")) first_user = c;
        ok = ok && tb_append(&t, c, strlen(c)) && tb_append(&t, "\n", 1);
    }
    if (!*e->title && first_user) chat_title_from(first_user, e->title, sizeof e->title);
    /* Titles come from files: shown cleaned, like any text of theirs. */
    size_t n;
    char *clean = utf8_clean(e->title, strlen(e->title), &n);
    if (clean) snprintf(e->title, sizeof e->title, "%s", clean);
    free(clean);
    e->text = ok ? strdup(tb_str(&t)) : NULL;
    tb_free(&t);
    return e->text != NULL;
}

bool chat_store_list(const char *dir, chat_entry **out, int *n_out, char ***bad, int *n_bad) {
    *out = NULL;
    *n_out = 0;
    *bad = NULL;
    *n_bad = 0;
    DIR *d = opendir(dir);
    if (!d) return false;
    chat_entry *v = NULL;
    int n = 0, cap = 0;
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "chat-", 5) || len < 10 || strcmp(de->d_name + len - 5, ".json")) continue;
        size_t pcap = strlen(dir) + len + 2;
        char *path = malloc(pcap);
        if (!path) {
            ok = false;
            break;
        }
        snprintf(path, pcap, "%s/%s", dir, de->d_name);
        cJSON *root = read_json(path);
        if (!root) {
            char **b = realloc(*bad, sizeof *b * (size_t)(*n_bad + 1));
            ok = b != NULL;
            if (ok) {
                *bad = b;
                b[(*n_bad)++] = path;
            } else {
                free(path);
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            chat_entry *nv = realloc(v, sizeof *nv * (size_t)cap);
            if (!nv) ok = false;
            else v = nv;
        }
        struct stat st;
        if (ok) {
            v[n] = (chat_entry){.path = path, .mtime = stat(path, &st) == 0 ? st.st_mtime : 0};
            ok = entry_of(root, &v[n]);
            n++;
        } else {
            free(path);
        }
        cJSON_Delete(root);
    }
    closedir(d);
    if (!ok) {
        chat_entries_free(v, n);
        for (int i = 0; i < *n_bad; i++) free((*bad)[i]);
        free(*bad);
        *bad = NULL;
        *n_bad = 0;
        return false;
    }
    if (n) qsort(v, (size_t)n, sizeof *v, newest_first);
    *out = v;
    *n_out = n;
    return true;
}

void chat_entries_free(chat_entry *e, int n) {
    for (int i = 0; i < n; i++) {
        free(e[i].path);
        free(e[i].text);
    }
    free(e);
}

bool chat_store_set_title(const char *path, const char *title) {
    cJSON *root = read_json(path);
    if (!root) return false;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "title");
    char *text = NULL;
    bool ok = (!*title || cJSON_AddStringToObject(root, "title", title)) && (text = cJSON_Print(root)) &&
              write_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    return ok;
}
