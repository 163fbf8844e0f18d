/* phivk-chat driven through its state: text wrapping and editing, the saved
 * conversation, and a scripted session on a fixture model in a real SDL window
 * (under Xvfb, software renderer): typing, streaming, stopping, queueing,
 * settings, dropped files, selection and copy, scrolling, resizing, a
 * screenshot, and restoring the conversation and draft after a restart.
 *
 * usage: test_chat [CASE] (SCREENSHOT_PATH in $CHAT_SCREENSHOT) */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app_common.h"
#include "chat_app.h"
#include "lsan_libs.h"
#include "model_impl.h"
#include "pvk_fault.h"
#include "synth.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ pure parts */

/* Every code point is 10 px wide. */
static size_t fit10(void *ctx, const char *s, size_t len, int width, int *w) {
    (void)ctx;
    size_t i = 0;
    int x = 0;
    while (i < len) {
        size_t n = utf8_next(s, len, i);
        if (x + 10 > width) break;
        x += 10;
        i = n;
    }
    *w = x;
    return i;
}

static void check_lines(const char *s, int width, const char *const *want, int n_want) {
    text_lines l = {0};
    REQUIRE(text_wrap(s, strlen(s), width, fit10, NULL, &l), "wrap failed");
    CHECK(l.n == n_want, "'%s' at %d px: %d lines, want %d", s, width, l.n, n_want);
    for (int i = 0; i < l.n && i < n_want; i++)
        CHECK(strlen(want[i]) == l.v[i].len && !strncmp(s + l.v[i].off, want[i], l.v[i].len),
              "line %d is '%.*s', want '%s'", i, (int)l.v[i].len, s + l.v[i].off, want[i]);
    text_lines_free(&l);
}

TEST(chat_text_wraps_at_spaces_newlines_and_long_words) {
    check_lines("hello world foo", 60, (const char *const[]){"hello", "world", "foo"}, 3);
    check_lines("hello world foo", 100, (const char *const[]){"hello", "world foo"}, 2);
    check_lines("abcdefghij", 40, (const char *const[]){"abcd", "efgh", "ij"}, 3);
    check_lines("a\n\nb\n", 100, (const char *const[]){"a", "", "b", ""}, 4);
    check_lines("", 100, (const char *const[]){""}, 1);
    /* Multi-byte code points are never split: 4 x "é" (2 bytes) at 30 px. */
    check_lines("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 30,
                (const char *const[]){"\xC3\xA9\xC3\xA9\xC3\xA9", "\xC3\xA9"}, 2);
    /* Narrower than one code point still makes progress. */
    check_lines("ab", 5, (const char *const[]){"a", "b"}, 2);
}

TEST(chat_text_field_edits_by_code_point) {
    text_field f = {0};
    tf_insert(&f, "a\xE6\x97\xA5", 4); /* a + 日 */
    CHECK(f.cursor == 4, "cursor %zu after insert, want 4", f.cursor);
    tf_backspace(&f);
    CHECK(f.text.len == 1 && !strcmp(tb_str(&f.text), "a"), "backspace removed '%s'", tb_str(&f.text));
    tf_insert(&f, "b\r\nc\td", 7);
    CHECK(!strcmp(tb_str(&f.text), "ab\nc    d"), "CR LF and tab cleaned: '%s'", tb_str(&f.text));
    tf_home(&f);
    CHECK(f.cursor == 3, "home goes to the line start (3), got %zu", f.cursor);
    tf_left(&f);
    tf_left(&f);
    tf_delete(&f);
    CHECK(!strcmp(tb_str(&f.text), "a\nc    d"), "delete at 1: '%s'", tb_str(&f.text));
    size_t n;
    char *clean = utf8_clean("x\xFF\xC3", 3, &n);
    CHECK(clean && !strcmp(clean, "x\xEF\xBF\xBD\xEF\xBF\xBD"), "invalid bytes become U+FFFD");
    free(clean);
    CHECK(utf8_floor("ab\xE6\x97", 4) == 2, "a cut inside a sequence backs off to its start");
    tf_free(&f);
}

/* -------------------------------------------------------- the app session */

static struct {
    char dir[256], model[300], data[300];
    chat_app *a;
    chat_config cfg;
} g;

static bool setup(void) {
    if (*g.dir) return true;
    test_keep_system_libraries_loaded();
    snprintf(g.dir, sizeof g.dir, "%s/phivk-chat-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g.dir)) return false;
    snprintf(g.model, sizeof g.model, "%s/tiny-phi3.gguf", g.dir);
    snprintf(g.data, sizeof g.data, "%s/data", g.dir);
    synth_params p = synth_default_params(); /* "tiny": phi3, 64 wide, 2 layers, 4 heads */
    p.name = "tiny phi3 fixture";
    p.n_vocab = 400;
    p.n_ctx = 1024;
    p.wtype = PVK_F16;
    if (synth_save(&p, g.model) != PHIVK_OK) return false;
    g.cfg = (chat_config){.data_dir = g.data, .software = true, .scale = 1, .width = 900, .height = 640};
    g.cfg.settings.samp = phivk_sampler_default_params();
    g.cfg.settings.temp = 0; /* greedy: the same answers every run */
    g.cfg.settings.top_p = 1;
    g.cfg.settings.n_predict = 24;
    g.cfg.settings.ctx = 512;
    return true;
}

typedef bool (*cond_fn)(chat_app *a);

/* Steps the app until cond holds; false after secs (a stuck app fails, not hangs). */
static bool pump(cond_fn cond, double secs) {
    double end = now_s() + secs;
    while (!cond(g.a)) {
        if (now_s() > end) return false;
        chat_app_step(g.a, 5);
    }
    return true;
}

static bool idle(chat_app *a) { return a->loaded && !a->loads_pending && !a->answering; }
static bool not_loading(chat_app *a) { return !a->loads_pending; }

static void push(SDL_Event e) { SDL_PushEvent(&e); }

static void type(const char *s) {
    while (*s) {
        SDL_Event e = {.type = SDL_TEXTINPUT};
        size_t n = utf8_floor(s, strlen(s) < 16 ? strlen(s) : 16);
        memcpy(e.text.text, s, n);
        push(e);
        s += n;
    }
}

static SDL_Event key_event(SDL_Keycode sym, Uint16 mod) {
    SDL_Event e = {.type = SDL_KEYDOWN};
    e.key.state = SDL_PRESSED;
    e.key.keysym.sym = sym;
    e.key.keysym.mod = mod;
    return e;
}

static void key(SDL_Keycode sym, Uint16 mod) { push(key_event(sym, mod)); }

/* A left click at renderer pixel (x, y). */
static void click(int x, int y) {
    SDL_Event e = {.type = SDL_MOUSEBUTTONDOWN};
    e.button.button = SDL_BUTTON_LEFT;
    e.button.x = (int)(x / g.a->px_per_coord);
    e.button.y = (int)(y / g.a->px_per_coord);
    push(e);
    e.type = SDL_MOUSEBUTTONUP;
    push(e);
}

static const chat_button *find_button(int action, int arg) {
    for (int i = 0; i < g.a->n_buttons; i++)
        if (g.a->buttons[i].action == action && g.a->buttons[i].arg == arg) return &g.a->buttons[i];
    return NULL;
}

static void click_button(int action, int arg) {
    const chat_button *b = find_button(action, arg);
    CHECK(b, "button %d/%d is on screen", action, arg);
    if (b) click(b->r.x + b->r.w / 2, b->r.y + b->r.h / 2);
    chat_app_step(g.a, 5);
}

static chat_msg *last_msg(void) { return g.a->n_msgs ? &g.a->msgs[g.a->n_msgs - 1] : NULL; }

static const char *validation_problem(void) {
    phivk_runtime *rt = g.a ? chat_worker_runtime(g.a->worker) : NULL;
    if (rt && pvk_dev_validation_count(rt->dev))
        return pvk_dev_validation_last(rt->dev);
    return NULL;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static bool streaming_text(chat_app *a) {
    chat_msg *m = last_msg();
    return !a->answering || (m && m->text.len);
}

TEST(chat_loads_fixture_and_streams_an_answer_while_the_ui_keeps_running) {
    REQUIRE(setup(), "cannot write the fixture model in %s", g.dir);
    g.cfg.model = g.model;
    g.a = chat_app_create(&g.cfg);
    REQUIRE(g.a, "the window did not open (is Xvfb running?)");
    REQUIRE(pump(not_loading, 60), "the fixture model did not load in 60 s");
    CHECK(g.a->loaded, "model loaded");
    CHECK(!strcmp(g.a->model_name, "tiny phi3 fixture"), "model name '%s'", g.a->model_name);
    CHECK(*g.a->device_name, "device name shown");
    CHECK(g.a->ctx_total == 512, "context %d, want the 512 asked for", g.a->ctx_total);
    CHECK(g.a->n_notices == 0, "no notices after loading: '%s'", g.a->n_notices ? g.a->notices[0].text : "");

    type("Hello there");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->n_msgs == 2, "Enter sent the message: %d messages", g.a->n_msgs);
    CHECK(!strcmp(tb_str(&g.a->msgs[0].text), "Hello there"), "user message '%s'", tb_str(&g.a->msgs[0].text));
    CHECK(g.a->input.text.len == 0, "the input box is cleared");
    CHECK(g.a->answering == g.a->msgs[1].id, "the answer is being generated");

    /* While the answer streams the UI keeps drawing and taking input: type one
     * character per frame and time every step. */
    REQUIRE(pump(streaming_text, 60), "no text arrived");
    uint64_t f0 = g.a->frames, e0 = g.a->events;
    double times[4096];
    int n_times = 0, typed = 0;
    double end = now_s() + 60;
    while (g.a->answering && now_s() < end) {
        type("x");
        typed++;
        double t0 = now_s();
        chat_app_step(g.a, 0);
        if (n_times < 4096) times[n_times++] = (now_s() - t0) * 1e3;
    }
    REQUIRE(!g.a->answering, "the answer did not end in 60 s");
    uint64_t frames = g.a->frames - f0, events = g.a->events - e0;
    CHECK(frames >= 3 && events >= 3, "frames (%llu) and events (%llu) advance while the answer streams",
          (unsigned long long)frames, (unsigned long long)events);
    size_t xs = 0;
    for (const char *s = tb_str(&g.a->input.text); *s; s++) xs += *s == 'x';
    CHECK((int)xs == typed, "every character typed during the answer arrived (%zu of %d)", xs, typed);
    if (n_times) {
        qsort(times, (size_t)n_times, sizeof *times, cmp_double);
        printf("    frame times while streaming (%d frames, %llu events): min %.2f ms, median %.2f ms, "
               "max %.2f ms\n", n_times, (unsigned long long)events, times[0], times[n_times / 2],
               times[n_times - 1]);
    }
    chat_msg *ans = &g.a->msgs[1];
    CHECK(ans->role == CHAT_ASSISTANT && ans->state == CHAT_DONE, "answer done (state %d)", ans->state);
    CHECK(ans->text.len > 0 && ans->n_tokens == g.a->last_tokens, "the answer has text and its tokens");
    CHECK(g.a->last_tokens > 0 && g.a->last_tokens <= 24, "%d tokens, want 1..24 (-n 24)", g.a->last_tokens);
    CHECK(g.a->tok_per_s > 0, "tokens/s reported");
    CHECK(g.a->ctx_used > 0 && g.a->ctx_used <= 512, "context used %d", g.a->ctx_used);
    tf_set(&g.a->input, "");
}

static bool three_tokens(chat_app *a) { return !a->answering || chat_worker_tokens(a->worker) >= 3; }

TEST(chat_stop_ends_the_answer_within_one_token) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    g.a->set.n_predict = 400;
    type("Tell me a long story");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->answering, "answering");
    REQUIRE(pump(three_tokens, 60), "no tokens");
    REQUIRE(g.a->answering, "the answer ended before Stop could be pressed");
    SDL_Event esc = key_event(SDLK_ESCAPE, 0);
    chat_app_handle_event(g.a, &esc);
    int32_t at_stop = chat_worker_tokens(g.a->worker);
    REQUIRE(pump(idle, 60), "the answer did not stop");
    int32_t made = chat_worker_tokens(g.a->worker);
    /* The worker checks the flag before each token: at most the one it was
     * sampling when the flag was set follows. */
    CHECK(made <= at_stop + 1, "%d tokens after Stop at %d", made, at_stop);
    chat_msg *m = last_msg();
    CHECK(m->state == CHAT_STOPPED && !strcmp(m->note, "stopped"), "marked stopped (state %d, note '%s')",
          m->state, m->note);
    g.a->set.n_predict = 24;
}

static bool second_queued(chat_app *a) { return a->n_msgs && last_msg()->state == CHAT_QUEUED; }

TEST(chat_message_sent_while_answering_is_queued_then_answered) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    int before = g.a->n_msgs;
    type("first");
    key(SDLK_RETURN, 0);
    type("second");
    key(SDLK_RETURN, 0);
    /* Handle the typed events up to the second Enter and look at once: a whole
     * step may also take the worker's "done" (a 24-token answer of the tiny
     * fixture can end within one step) and send the queued message already. */
    for (int enters = 0; enters < 2;) {
        SDL_Event e;
        if (!SDL_PollEvent(&e)) break;
        chat_app_handle_event(g.a, &e);
        enters += e.type == SDL_KEYDOWN && e.key.keysym.sym == SDLK_RETURN;
    }
    CHECK(second_queued(g.a), "the second message is shown as queued");
    REQUIRE(pump(idle, 60), "the queue did not drain");
    REQUIRE(g.a->n_msgs == before + 4, "%d messages, want %d", g.a->n_msgs, before + 4);
    const chat_msg *m = g.a->msgs + before;
    CHECK(m[0].role == CHAT_USER && !strcmp(tb_str(&m[0].text), "first"), "first");
    CHECK(m[1].role == CHAT_ASSISTANT && m[1].state == CHAT_DONE, "first answered");
    CHECK(m[2].role == CHAT_USER && m[2].state == CHAT_DONE && !strcmp(tb_str(&m[2].text), "second"),
          "second sent after the first answer");
    CHECK(m[3].role == CHAT_ASSISTANT && m[3].state == CHAT_DONE && m[3].text.len, "second answered");
}

TEST(chat_history_ime_paste_and_copy) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    type("draft");
    key(SDLK_UP, 0);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "second"), "Up recalls the last message: '%s'", tb_str(&g.a->input.text));
    key(SDLK_UP, 0);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "first"), "Up again: '%s'", tb_str(&g.a->input.text));
    key(SDLK_DOWN, 0);
    key(SDLK_DOWN, 0);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "draft"), "Down returns to the draft: '%s'", tb_str(&g.a->input.text));

    SDL_Event e = {.type = SDL_TEXTEDITING};
    snprintf(e.edit.text, sizeof e.edit.text, "\xE3\x81\xAB\xE3\x81\xBB"); /* にほ */
    push(e);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(g.a->input.compose, "\xE3\x81\xAB\xE3\x81\xBB"), "the composition is shown");
    CHECK(!strcmp(tb_str(&g.a->input.text), "draft"), "but not part of the text yet");
    type("\xE6\x97\xA5\xE6\x9C\xAC"); /* 日本 */
    chat_app_step(g.a, 0);
    CHECK(!g.a->input.compose[0] && !strcmp(tb_str(&g.a->input.text), "draft\xE6\x97\xA5\xE6\x9C\xAC"),
          "committed text replaces the composition: '%s'", tb_str(&g.a->input.text));

    key(SDLK_RETURN, KMOD_LSHIFT);
    SDL_SetClipboardText("pasted \xE2\x9C\x93");
    key(SDLK_v, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "draft\xE6\x97\xA5\xE6\x9C\xAC\npasted \xE2\x9C\x93"),
          "Shift+Enter and Ctrl+V: '%s'", tb_str(&g.a->input.text));
    CHECK(g.a->n_msgs == 8, "Shift+Enter did not send");

    /* Click the first answer, copy it. */
    chat_scroll_to(g.a, 0);
    chat_app_step(g.a, 0);
    const chat_msg *m = &g.a->msgs[1];
    int y = g.a->r_transcript.y - g.a->scroll + m->y + m->h / 2;
    click(g.a->r_transcript.x + m->x + m->w / 2, y);
    chat_app_step(g.a, 0);
    CHECK(g.a->selected == 1, "the click selected message %d, want 1", g.a->selected);
    key(SDLK_c, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    char *clip = SDL_GetClipboardText();
    CHECK(clip && !strcmp(clip, tb_str(&m->text)), "Ctrl+C copied the message: '%s'", clip ? clip : "");
    SDL_free(clip);
    tf_set(&g.a->input, "");
}

TEST(chat_scrolls_with_keys_wheel_and_scrollbar_and_reflows_on_resize) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    SDL_SetWindowSize(g.a->win, 900, 360);
    for (int i = 0; i < 20 && g.a->out_h != 360; i++) chat_app_step(g.a, 10);
    REQUIRE(g.a->content_h > g.a->view_h, "content (%d) taller than the view (%d)", g.a->content_h, g.a->view_h);
    chat_scroll_to(g.a, INT32_MAX);
    int bottom = g.a->scroll;
    key(SDLK_PAGEUP, 0);
    chat_app_step(g.a, 0);
    CHECK(g.a->scroll < bottom, "PgUp scrolls up (%d -> %d)", bottom, g.a->scroll);
    key(SDLK_PAGEDOWN, 0);
    chat_app_step(g.a, 0);
    CHECK(g.a->scroll == bottom, "PgDn back to the bottom (%d, want %d)", g.a->scroll, bottom);
    SDL_Event w = {.type = SDL_MOUSEWHEEL};
    w.wheel.y = 1;
    push(w);
    chat_app_step(g.a, 0);
    CHECK(g.a->scroll < bottom, "the wheel scrolls up");
    /* Drag the thumb to the top of its track. */
    SDL_Rect th = g.a->r_scroll_thumb;
    REQUIRE(th.h > 0, "a scrollbar is shown");
    SDL_Event b = {.type = SDL_MOUSEBUTTONDOWN};
    b.button.button = SDL_BUTTON_LEFT;
    b.button.x = th.x + th.w / 2;
    b.button.y = th.y + th.h / 2;
    push(b);
    SDL_Event mv = {.type = SDL_MOUSEMOTION};
    mv.motion.x = b.button.x;
    mv.motion.y = g.a->r_scroll_track.y - 50;
    push(mv);
    b.type = SDL_MOUSEBUTTONUP;
    push(b);
    chat_app_step(g.a, 0);
    CHECK(g.a->scroll == 0, "dragging the thumb up scrolls to the top (%d)", g.a->scroll);

    type("Please describe in detail how a graphics processor runs compute shaders, and why memory "
         "bandwidth matters so much for the speed of token generation.");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer");
    int lines_wide = 0, lines_narrow = 0;
    for (int i = 0; i < g.a->n_msgs; i++) lines_wide += g.a->msgs[i].lines.n;
    SDL_SetWindowSize(g.a->win, 480, 640);
    for (int i = 0; i < 20 && g.a->out_w != 480; i++) chat_app_step(g.a, 10);
    CHECK(g.a->out_w == 480, "the window is 480 wide (%d)", g.a->out_w);
    for (int i = 0; i < g.a->n_msgs; i++) lines_narrow += g.a->msgs[i].lines.n;
    CHECK(lines_narrow > lines_wide, "narrower window, more lines (%d -> %d)", lines_wide, lines_narrow);
    SDL_SetWindowSize(g.a->win, 900, 640);
    for (int i = 0; i < 20 && g.a->out_w != 900; i++) chat_app_step(g.a, 10);
}

TEST(chat_screenshot_and_export) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    const char *shot = getenv("CHAT_SCREENSHOT");
    char path[400];
    snprintf(path, sizeof path, "%s", shot ? shot : "");
    if (!shot) snprintf(path, sizeof path, "%s/phivk-chat.png", g.dir);
    type("What is Vulkan?");
    chat_scroll_to(g.a, INT32_MAX);
    g.a->follow = true;
    key(SDLK_F2, 0); /* the settings panel is in the picture */
    chat_app_step(g.a, 0);
    CHECK(chat_app_screenshot(g.a, path), "screenshot written to %s", path);
    key(SDLK_F2, 0);
    FILE *f = fopen(path, "rb");
    unsigned char sig[8] = {0};
    long size = 0;
    if (f) {
        CHECK(fread(sig, 1, 8, f) == 8, "read the signature");
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    CHECK(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8), "a PNG file");
    CHECK(size > 1000 && size < 200 * 1024, "%ld bytes, want 1 KB .. 200 KB", size);
    printf("    screenshot: %s (%ld bytes)\n", path, size);
    tf_set(&g.a->input, "");

    key(SDLK_e, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->n_notices, "a notice says where the export went");
    const char *text = g.a->notices[g.a->n_notices - 1].text, *at = strstr(text, " to ");
    CHECK(!g.a->notices[g.a->n_notices - 1].error && at, "export notice: '%s'", text);
    if (at) {
        f = fopen(at + 4, "r");
        char buf[4096] = "";
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = 0;
        if (f) fclose(f);
        CHECK(strstr(buf, "## You\n\nHello there"), "the Markdown holds the conversation");
    }
    key(SDLK_ESCAPE, 0); /* dismisses the notice */
    chat_app_step(g.a, 0);
    CHECK(g.a->n_notices == 0, "Esc dismissed the notice");
}

static bool write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

static void drop(const char *path) {
    SDL_Event e = {.type = SDL_DROPFILE};
    e.drop.file = SDL_strdup(path);
    push(e);
}

TEST(chat_dropping_a_corrupt_model_keeps_the_previous_one) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    char bad[400];
    snprintf(bad, sizeof bad, "%s/broken.gguf", g.dir);
    static const char junk[] = "GGUF\x03\0\0\0\xff\xff\xff\xff\xff\xff\xff\x7f this is not a model";
    REQUIRE(write_file(bad, junk, sizeof junk), "write %s", bad);
    drop(bad);
    chat_app_step(g.a, 0);
    REQUIRE(pump(not_loading, 60), "the load did not finish");
    REQUIRE(g.a->n_notices == 1, "one notice, got %d", g.a->n_notices);
    const chat_notice *n = &g.a->notices[0];
    CHECK(n->error && strstr(n->text, "broken.gguf") && strstr(n->text, "Still using tiny phi3 fixture"),
          "error names the file and the model kept: '%s'", n->text);
    CHECK(g.a->loaded && !strcmp(g.a->model_name, "tiny phi3 fixture"), "the previous model is loaded");
    click_button(CHAT_ACT_DISMISS, 0);
    CHECK(g.a->n_notices == 0, "the × button dismissed it");
    /* In a new chat: the one so far is near the 512-token context, and how near
     * depends on when the stop test's Stop landed. */
    click_button(CHAT_ACT_NEW, 0);
    int before = g.a->n_msgs;
    type("still there?");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer");
    CHECK(g.a->n_msgs == before + 2 && last_msg()->state == CHAT_DONE && last_msg()->text.len,
          "the previous model still answers");
}

TEST(chat_device_lost_ends_the_answer_with_a_notice_keeps_the_transcript_and_reloads_the_model) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    int before = g.a->n_msgs;
    phivk_runtime *lost_rt = chat_worker_runtime(g.a->worker);
    /* Submits count from 1 again: the answer's prompt is the first, then one per
     * token, so the third token's step is lost (-n 24: the answer still runs). */
    REQUIRE(pvk_fault_set("device_lost:4") == PHIVK_OK, "%s", pvk_errmsg());
    type("are you there?");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    /* The answer may already have failed: a save (fsync) follows the send, and the worker is quick. */
    REQUIRE(g.a->n_msgs == before + 2 && last_msg()->role == CHAT_ASSISTANT, "the answer started");
    bool ok = pump(idle, 90);
    pvk_fault_set(NULL);
    REQUIRE(ok, "the answer did not end, or the model did not load again, in 90 s");
    REQUIRE(g.a->n_msgs == before + 2, "%d messages, want %d", g.a->n_msgs, before + 2);
    const chat_msg *u = &g.a->msgs[before], *m = &g.a->msgs[before + 1];
    CHECK(!strcmp(tb_str(&u->text), "are you there?"), "the message is kept: '%s'", tb_str(&u->text));
    CHECK(m->state == CHAT_FAILED && strstr(m->note, "lost the device"), "the answer failed and says why "
          "(state %d, note '%s')", m->state, m->note);
    CHECK(m->n_tokens == 3, "the answer has the 3 tokens sampled before the loss (the third's step was lost), "
          "got %d", m->n_tokens);
    REQUIRE(g.a->n_notices >= 1, "a notice");
    const chat_notice *n = &g.a->notices[g.a->n_notices - 1];
    CHECK(n->error && strstr(n->text, "The GPU was lost") && strstr(n->text, "reloading"), "notice: '%s'", n->text);
    CHECK(g.a->loaded && chat_worker_runtime(g.a->worker) != lost_rt, "the model is loaded on a new runtime");
    click_button(CHAT_ACT_DISMISS, g.a->n_notices - 1);

    type("and now?");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer after the reload");
    CHECK(g.a->n_msgs == before + 4 && last_msg()->state == CHAT_DONE && last_msg()->n_tokens > 0,
          "the reloaded model answers (state %d, %d tokens, note '%s')", last_msg()->state, last_msg()->n_tokens,
          last_msg()->note);
}

TEST(chat_settings_reload_with_a_new_context_and_a_long_document_is_summarized_in_parts_with_progress_and_cancel) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    key(SDLK_F2, 0);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->panel_open, "F2 opens the settings");
    float t = g.a->set.temp;
    click_button(CHAT_ACT_STEP, 0 * 2 + 1);
    CHECK_NEAR(g.a->set.temp, t + 0.1f, 1e-6, "one step of the temperature is 0.1");
    click_button(CHAT_ACT_STEP, 0 * 2);
    CHECK_NEAR(g.a->set.temp, t, 1e-6, "and back");
    click_button(CHAT_ACT_STEP, 3 * 2 + 1); /* context 512 -> 1024 */
    CHECK(g.a->set.ctx == 1024, "context setting %d, want 1024", g.a->set.ctx);
    chat_app_step(g.a, 0);
    click_button(CHAT_ACT_APPLY, 0);
    REQUIRE(pump(not_loading, 60), "the reload did not finish");
    CHECK(g.a->loaded && g.a->ctx_total == 1024, "reloaded with context %d, want 1024", g.a->ctx_total);
    CHECK(g.a->n_notices == 0, "no error: '%s'", g.a->n_notices ? g.a->notices[0].text : "");

    /* A new chat, then a document longer than the context. */
    click_button(CHAT_ACT_NEW, 0);
    CHECK(g.a->n_msgs == 0, "New chat empties the transcript");
    char doc_path[400];
    snprintf(doc_path, sizeof doc_path, "%s/notes.md", g.dir);
    char doc[8000];
    size_t n = 0;
    for (int i = 0; n + 80 < sizeof doc; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "Paragraph %d: the quick brown fox jumps over the lazy dog.\n", i);
    REQUIRE(write_file(doc_path, doc, n), "write the document");
    drop(doc_path);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->n_msgs == 2, "the document became a message (%d)", g.a->n_msgs);
    int64_t most_chunks = 0, most_done = 0;
    int passes_seen = 0, events0 = g.a->summary_events;
    bool saw_cancel = false;
    double end = now_s() + 120;
    while (!idle(g.a) && now_s() < end) {
        chat_app_step(g.a, 1);
        if (g.a->summary_id && g.a->summary_pass > passes_seen) passes_seen = g.a->summary_pass;
        if (g.a->summary_id && g.a->summary_pass && g.a->summary_chunks > most_chunks) most_chunks = g.a->summary_chunks;
        if (g.a->summary_id && g.a->summary_done > most_done) most_done = g.a->summary_done;
        saw_cancel |= find_button(CHAT_ACT_CANCEL_SUMMARY, 0) != NULL;
    }
    REQUIRE(idle(g.a), "no summary in 120 s");
    int events = g.a->summary_events - events0;
    printf("    %zu bytes in a 1024-token context: %d progress events, %lld chunks in pass 1\n", n, events,
           (long long)most_chunks);
    CHECK(most_chunks >= 2 && most_done >= 1, "progress named the chunks: %lld done of %lld", (long long)most_done,
          (long long)most_chunks);
    CHECK(events >= 2 * most_chunks, "an event as each chunk starts and ends (%d for %lld chunks)", events,
          (long long)most_chunks);
    /* The final pass may start and end between two frames: its event is the last one kept. */
    CHECK(passes_seen >= 1 && g.a->summary_pass == 0, "a map pass, then the final pass (pass %d, then %d)",
          passes_seen, g.a->summary_pass);
    CHECK(saw_cancel, "Cancel is offered while the chunks are summarized");
    const chat_msg *u = &g.a->msgs[0];
    CHECK(!strcmp(tb_str(&u->text), "Summarize the document notes.md (8 KiB).") && strstr(u->note, "summarized in parts"),
          "the message names the document: '%.60s' ('%s')", tb_str(&u->text), u->note);
    /* The fixture's tokens may all be control bytes, which the window drops. */
    CHECK(g.a->msgs[1].state == CHAT_DONE && g.a->msgs[1].n_tokens > 0,
          "summary written (state %d, %d tokens, note '%s')", g.a->msgs[1].state, g.a->msgs[1].n_tokens,
          g.a->msgs[1].note);
    CHECK(!g.a->summary_id && g.a->n_notices == 0, "done, no error: '%s'", g.a->n_notices ? g.a->notices[0].text : "");

    /* Again, cancelled while the first chunks are read. */
    events0 = g.a->summary_events;
    drop(doc_path);
    chat_app_step(g.a, 0);
    end = now_s() + 60;
    while (g.a->summary_events == events0 && now_s() < end) chat_app_step(g.a, 1);
    REQUIRE(g.a->summary_id, "the second summary started");
    click_button(CHAT_ACT_CANCEL_SUMMARY, 0);
    REQUIRE(pump(idle, 60), "Cancel did not end it");
    CHECK(last_msg()->state == CHAT_STOPPED && !g.a->summary_id, "Cancel stopped it (state %d)", last_msg()->state);
    CHECK(g.a->n_notices == 0, "no error: '%s'", g.a->n_notices ? g.a->notices[0].text : "");
    key(SDLK_F2, 0);
    chat_app_step(g.a, 0);
}

TEST(chat_restores_the_conversation_and_draft_after_a_restart) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    type("unsent draft \xE2\x9C\x8D");
    chat_app_step(g.a, 0);
    int n = g.a->n_msgs;
    char first[64];
    snprintf(first, sizeof first, "%.60s", tb_str(&g.a->msgs[0].text));
    const char *problem = validation_problem();
    CHECK(!problem, "validation layer: %s", problem ? problem : "");
    int line_h = g.a->line_h;
    chat_app_destroy(g.a);
    g.a = NULL;

    g.cfg.model = NULL; /* the saved chat names it */
    g.cfg.scale = 2;    /* as on a 192-dpi display */
    g.a = chat_app_create(&g.cfg);
    REQUIRE(g.a, "the window reopened");
    CHECK(g.a->n_msgs == n, "%d messages restored, want %d", g.a->n_msgs, n);
    CHECK(n && !strncmp(tb_str(&g.a->msgs[0].text), first, strlen(first)), "the same conversation");
    CHECK(!strcmp(tb_str(&g.a->input.text), "unsent draft \xE2\x9C\x8D"), "draft restored: '%s'",
          tb_str(&g.a->input.text));
    CHECK(g.a->set.ctx == 1024, "settings restored (context %d)", g.a->set.ctx);
    CHECK(g.a->line_h >= line_h * 2 - 2 && g.a->line_h <= line_h * 2 + 2,
          "text follows the scale: line height %d at 2x, %d at 1x (rounding of font metrics: +-2)",
          g.a->line_h, line_h);
    REQUIRE(pump(not_loading, 60), "the saved chat's model did not load");
    CHECK(g.a->loaded && !strcmp(g.a->model_name, "tiny phi3 fixture"), "the saved chat's model is loaded");
    problem = validation_problem();
    CHECK(!problem, "validation layer: %s", problem ? problem : "");
    chat_app_destroy(g.a);
    g.a = NULL;
}

static bool loading(chat_app *a) { return a->loads_pending > 0; }

/* A chat file from elsewhere (no mark of this installation) names the fixture
 * model: the window must not load it by itself but offer it in a notice with a
 * button; after the user's yes, the next save carries the mark and a restart
 * loads the model without asking. */
TEST(chat_asks_before_loading_a_model_named_by_a_chat_file_it_did_not_save) {
    REQUIRE(setup(), "fixture");
    char path[600];
    snprintf(path, sizeof path, "%s/chats/chat-99991231-235959-00.json", g.data); /* the latest name */
    char json[1400];
    int n = snprintf(json, sizeof json,
                     "{\"version\": 1, \"model\": \"%s\", \"settings\": {\"ctx\": 512},"
                     " \"messages\": [{\"role\": \"user\", \"content\": \"from elsewhere\"}]}", g.model);
    REQUIRE(write_file(path, json, (size_t)n), "write %s", path);
    g.cfg.model = NULL;
    g.cfg.scale = 1;
    g.a = chat_app_create(&g.cfg);
    REQUIRE(g.a, "the window opened");
    CHECK(g.a->n_msgs == 1 && !strcmp(tb_str(&g.a->msgs[0].text), "from elsewhere"), "the conversation is shown");
    for (int i = 0; i < 20; i++) chat_app_step(g.a, 5);
    CHECK(!g.a->loaded && !g.a->loads_pending, "no model was loaded without asking (loaded %d, pending %d)",
          g.a->loaded, g.a->loads_pending);
    REQUIRE(g.a->n_notices == 1, "one notice asks, got %d", g.a->n_notices);
    CHECK(strstr(g.a->notices[0].text, g.model) && strstr(g.a->notices[0].text, "not saved by phivk-chat here"),
          "the notice names the model and why it asks: '%s'", g.a->notices[0].text);
    click_button(CHAT_ACT_LOAD_ASKED, 0);
    CHECK(g.a->n_notices == 0, "the button took the notice away");
    REQUIRE(pump(not_loading, 60), "the model did not load");
    CHECK(g.a->loaded && !strcmp(g.a->model_name, "tiny phi3 fixture"), "loaded after the click ('%s')", g.a->model_name);
    chat_app_destroy(g.a);

    g.a = chat_app_create(&g.cfg);
    REQUIRE(g.a, "the window reopened");
    CHECK(loading(g.a) && g.a->n_notices == 0, "our own save now names it: loaded without asking "
          "(pending %d, %d notices)", g.a->loads_pending, g.a->n_notices);
    REQUIRE(pump(not_loading, 60), "the model did not load");
    const char *problem = validation_problem();
    CHECK(!problem, "validation layer: %s", problem ? problem : "");
    chat_app_destroy(g.a);
    g.a = NULL;
    remove(path);
}

TEST(chat_store_writes_atomically_and_reads_back) {
    REQUIRE(setup(), "temp dir");
    char dir[400];
    snprintf(dir, sizeof dir, "%s/store", g.dir);
    char *chats = chat_store_dir(dir);
    REQUIRE(chats, "store dir");
    chat_app *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    REQUIRE(a && b, "memory");
    a->set.temp = 0.5f;
    a->set.top_p = 0.9f;
    a->set.n_predict = 77;
    chat_msg_add(a, 0, CHAT_USER, CHAT_DONE, "quote \" and \xE2\x9C\x93", 12);
    chat_msg *m = chat_msg_add(a, 1, CHAT_ASSISTANT, CHAT_STREAMING, "partial", 7);
    tf_set(&a->input, "draft\nline 2");
    char *path = chat_store_new_path(chats);
    REQUIRE(path && chat_store_save(a, path), "save");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "no temp file left behind");
    char *latest = chat_store_latest(chats);
    CHECK(latest && !strcmp(latest, path), "the latest chat is the one saved");
    REQUIRE(chat_store_load(b, path), "load");
    CHECK(b->n_msgs == 2 && !strcmp(tb_str(&b->msgs[0].text), tb_str(&a->msgs[0].text)), "messages read back");
    CHECK(b->n_msgs == 2 && b->msgs[1].state == CHAT_STOPPED, "an answer cut off by a crash reads as stopped");
    CHECK(!strcmp(tb_str(&b->input.text), "draft\nline 2"), "draft read back");
    CHECK_NEAR(b->set.temp, 0.5, 1e-6, "settings read back");
    CHECK(b->set.n_predict == 77, "n_predict");
    (void)m;
    chat_msgs_clear(a);
    chat_msgs_clear(b);
    free(a->msgs);
    free(b->msgs);
    tf_free(&a->input);
    tf_free(&b->input);
    tf_free(&b->system);
    free(a);
    free(b);
    free(path);
    free(latest);
    free(chats);
}

/* A model whose logits are all NaN (output_norm.weight NaN): the answer fails
 * with the sampler's reason, never an out-of-vocabulary token id. */
TEST(chat_answer_from_nan_logits_fails_with_the_reason) {
    REQUIRE(setup(), "fixture");
    char nan_model[400], data[400];
    snprintf(nan_model, sizeof nan_model, "%s/nan-logits.gguf", g.dir);
    snprintf(data, sizeof data, "%s/nan-data", g.dir);
    synth_params p = synth_default_params();
    p.n_vocab = 400;
    p.wtype = PVK_F16;
    void *img;
    size_t n;
    gguf_file *f;
    REQUIRE(synth_build(&p, &img, &n) == PHIVK_OK && gguf_open_memory(img, n, &f) == PHIVK_OK, "%s", pvk_errmsg());
    const gguf_tensor *t = gguf_find_tensor(f, "output_norm.weight");
    float *norm = (float *)((char *)img + ((const char *)t->data - (const char *)img));
    for (int64_t i = 0; i < t->ne[0]; i++) norm[i] = NAN;
    gguf_close(f);
    bool written = write_file(nan_model, img, n);
    free(img);
    REQUIRE(written, "write %s", nan_model);
    chat_config cfg = g.cfg;
    cfg.model = nan_model;
    cfg.data_dir = data;
    g.a = chat_app_create(&cfg);
    REQUIRE(g.a, "the window opened");
    REQUIRE(pump(not_loading, 60) && g.a->loaded, "the NaN model did not load: '%s'",
            g.a->n_notices ? g.a->notices[0].text : "");
    type("hello");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "the answer did not end");
    const chat_msg *m = last_msg();
    CHECK(m && m->state == CHAT_FAILED && strstr(m->note, "NaN"), "the answer failed naming NaN (state %d, note '%s')",
          m ? (int)m->state : -1, m ? m->note : "");
    CHECK(g.a->n_notices && strstr(g.a->notices[g.a->n_notices - 1].text, "NaN") &&
          !strstr(g.a->notices[g.a->n_notices - 1].text, "outside the vocabulary"),
          "the notice gives the reason: '%s'", g.a->n_notices ? g.a->notices[g.a->n_notices - 1].text : "");
    chat_app_destroy(g.a);
    g.a = NULL;
}

static chat_app *store_app(const uint8_t *key) {
    chat_app *a = calloc(1, sizeof *a);
    if (a && key) {
        memcpy(a->key, key, CHAT_KEY_BYTES);
        a->have_key = true;
    }
    return a;
}

static void store_app_free(chat_app *a) {
    chat_msgs_clear(a);
    free(a->msgs);
    tf_free(&a->input);
    tf_free(&a->system);
    free(a);
}

/* Loads the JSON text into a fresh app with key; NULL if the load failed. */
static chat_app *load_text(const char *json, const uint8_t *key) {
    char path[400];
    snprintf(path, sizeof path, "%s/store-case.json", g.dir);
    chat_app *a = store_app(key);
    if (!a || !write_file(path, json, strlen(json)) || !chat_store_load(a, path)) {
        if (a) store_app_free(a);
        return NULL;
    }
    return a;
}

TEST(chat_store_clamps_numbers_before_converting_and_cleans_text) {
    REQUIRE(setup(), "temp dir");
    /* 1e300 does not fit int32_t: converting it is undefined behaviour. */
    static const struct { const char *n; int32_t want; } nums[] = {
        {"1e300", APP_MAX_N_PREDICT}, {"-1e300", -1}, {"2147483648", APP_MAX_N_PREDICT}, {"77", 77}, {"-1", -1},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"settings\": {\"n_predict\": %s}}", nums[i].n);
        chat_app *a = load_text(json, NULL);
        REQUIRE(a, "load n_predict %s", nums[i].n);
        CHECK(a->set.n_predict == nums[i].want, "n_predict %s -> %d, want %d", nums[i].n, a->set.n_predict,
              nums[i].want);
        store_app_free(a);
    }
    /* cJSON keeps bytes that are not UTF-8 as they are: every string must come
     * out valid, as utf8_clean makes typed text (cleaning it again changes nothing). */
    chat_app *a = load_text("{\"model\": \"/m\xff.gguf\", \"draft\": \"d\xc3\", \"settings\": "
                            "{\"system\": \"s\xed\xa0\x80\", \"device\": \"\x1b[2Jgpu\xfe\"}, "
                            "\"messages\": [{\"role\": \"user\", \"content\": \"hi\xc0\xaf !\", "
                            "\"note\": \"n\xff\"}]}", NULL);
    REQUIRE(a, "load the file with broken text");
    REQUIRE(a->n_msgs == 1, "%d messages", a->n_msgs);
    const char *strs[] = {a->ask_model, tb_str(&a->input.text), tb_str(&a->system.text), a->set.device,
                          tb_str(&a->msgs[0].text), a->msgs[0].note};
    const char *names[] = {"model", "draft", "system", "device", "content", "note"};
    for (int i = 0; i < 6; i++) {
        size_t len = strlen(strs[i]), n2;
        char *again = utf8_clean(strs[i], len, &n2);
        CHECK(again && n2 == len && !memcmp(again, strs[i], len), "%s '%s' is clean UTF-8", names[i], strs[i]);
        free(again);
        CHECK(strstr(strs[i], "\xEF\xBF\xBD") || i == 3, "%s '%s' shows U+FFFD where the bad bytes were", names[i], strs[i]);
    }
    size_t n;
    char *clean = utf8_clean("hi\xc0\xaf", 4, &n);
    CHECK(clean && !strncmp(tb_str(&a->msgs[0].text), clean, n), "content '%s'", tb_str(&a->msgs[0].text));
    free(clean);
    store_app_free(a);
}

TEST(chat_store_marks_the_model_of_its_own_saves_only) {
    REQUIRE(setup(), "temp dir");
    char dir[400], path[600];
    snprintf(dir, sizeof dir, "%s/marks", g.dir);
    char *chats = chat_store_dir(dir);
    REQUIRE(chats, "store dir");
    uint8_t key[CHAT_KEY_BYTES], again[CHAT_KEY_BYTES], other[CHAT_KEY_BYTES] = {1, 2, 3};
    REQUIRE(chat_store_key(chats, key) && chat_store_key(chats, again), "key made, then read back");
    CHECK(!memcmp(key, again, sizeof key), "the key is made once and kept");
    char keyfile[600];
    snprintf(keyfile, sizeof keyfile, "%s/.key", chats);
    struct stat st;
    CHECK(stat(keyfile, &st) == 0 && (st.st_mode & 0777) == 0600, "the key file is private (mode %o)",
          (unsigned)(st.st_mode & 0777));

    chat_app *a = store_app(key);
    REQUIRE(a, "memory");
    snprintf(a->model_path, sizeof a->model_path, "/models/phi3.gguf");
    snprintf(path, sizeof path, "%s/own.json", chats);
    REQUIRE(chat_store_save(a, path), "save");
    store_app_free(a);

    a = store_app(key);
    REQUIRE(a && chat_store_load(a, path), "load our own save");
    CHECK(!strcmp(a->model_path, "/models/phi3.gguf") && !*a->ask_model, "our save's model loads without asking "
          "(model '%s', ask '%s')", a->model_path, a->ask_model);
    store_app_free(a);

    a = store_app(other);
    REQUIRE(a && chat_store_load(a, path), "load with another installation's key");
    CHECK(!*a->model_path && !strcmp(a->ask_model, "/models/phi3.gguf"), "another key: asked for "
          "(model '%s', ask '%s')", a->model_path, a->ask_model);
    store_app_free(a);

    a = store_app(NULL);
    REQUIRE(a && chat_store_load(a, path), "load without a key");
    CHECK(!*a->model_path && *a->ask_model, "no key: asked for");
    store_app_free(a);

    /* Our mark copied next to another path does not vouch for it. */
    FILE *f = fopen(path, "rb");
    char buf[4096] = "";
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = 0;
    char *at = strstr(buf, "/models/phi3.gguf");
    REQUIRE(at, "the saved file names the model:\n%s", buf);
    memcpy(at, "/models/evil.gguf", 17);
    a = load_text(buf, key);
    REQUIRE(a, "load the edited file");
    CHECK(!*a->model_path && !strcmp(a->ask_model, "/models/evil.gguf"), "an edited path is asked for "
          "(model '%s', ask '%s')", a->model_path, a->ask_model);
    /* Saved again before the user said yes: the path is kept, unmarked. */
    snprintf(path, sizeof path, "%s/again.json", chats);
    REQUIRE(chat_store_save(a, path), "save");
    store_app_free(a);
    a = store_app(key);
    REQUIRE(a && chat_store_load(a, path), "reload");
    CHECK(!*a->model_path && !strcmp(a->ask_model, "/models/evil.gguf"), "still asked for after a save");
    store_app_free(a);
    free(chats);
}

/* Version v of a chat: 1 + v % 24 messages of 6 KB, each naming v, so a file read
 * back tells which version it is and whether it is whole. */
static void set_version(chat_app *a, int v) {
    chat_msgs_clear(a);
    char text[6144];
    for (int i = 0; i < 1 + v % 24; i++) {
        int len = snprintf(text, sizeof text, "message %d of version %d:", i, v);
        memset(text + len, 'a' + i % 26, sizeof text - (size_t)len);
        chat_msg_add(a, i, i % 2 ? CHAT_ASSISTANT : CHAT_USER, CHAT_DONE, text, sizeof text);
    }
}

/* The version a saved file holds; -1 when it is not one whole version. */
static int version_of(const char *path) {
    chat_app *b = calloc(1, sizeof *b);
    int v = -1;
    if (b && chat_store_load(b, path) && b->n_msgs && sscanf(tb_str(&b->msgs[0].text), "message 0 of version %d:", &v) == 1) {
        bool whole = b->n_msgs == 1 + v % 24;
        for (int i = 0; whole && i < b->n_msgs; i++) {
            char head[64];
            int len = snprintf(head, sizeof head, "message %d of version %d:", i, v);
            whole = b->msgs[i].text.len == 6144 && !strncmp(tb_str(&b->msgs[i].text), head, (size_t)len);
        }
        if (!whole) v = -1;
    }
    if (b) {
        chat_msgs_clear(b);
        free(b->msgs);
        tf_free(&b->input);
        tf_free(&b->system);
        free(b);
    }
    return v;
}

TEST(chat_store_save_killed_at_any_moment_leaves_the_previous_or_the_new_version) {
    REQUIRE(setup(), "temp dir");
    char dir[400];
    snprintf(dir, sizeof dir, "%s/killed", g.dir);
    char *chats = chat_store_dir(dir), *path = chats ? chat_store_new_path(chats) : NULL;
    chat_app *a = calloc(1, sizeof *a);
    REQUIRE(chats && path && a, "store dir and memory");
    uint64_t seed = 12345;
    int runs = 0, mid_save = 0, acked_total = 0;
    for (int it = 0; it < 50; it++) {
        /* The parent saves version 0; a child saves 1, 2, ... and writes each
         * finished version's number to a pipe until it is killed at a random time. */
        set_version(a, 0);
        REQUIRE(chat_store_save(a, path), "save version 0");
        int fds[2];
        REQUIRE(pipe(fds) == 0, "pipe");
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork");
        if (pid == 0) {
            close(fds[0]);
            for (int v = 1; v < 100000; v++) {
                set_version(a, v);
                if (!chat_store_save(a, path) || write(fds[1], &v, sizeof v) != sizeof v) _exit(1);
            }
            _exit(0);
        }
        close(fds[1]);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        /* Up to 250 ms: a save (cJSON, write, two fsyncs) takes milliseconds to tens of them. */
        usleep((useconds_t)(seed >> 33) % 250000);
        kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);
        int acked = 0, v;
        while (read(fds[0], &v, sizeof v) == sizeof v) acked = v;
        close(fds[0]);
        CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "run %d: the child was killed (status %d)", it, wst);
        int got = version_of(path);
        CHECK(got == acked || got == acked + 1, "run %d: the file holds version %d; the last finished save was "
              "%d, so it must be %d or %d", it, got, acked, acked, acked + 1);
        char *latest = chat_store_latest(chats);
        CHECK(latest && !strcmp(latest, path), "run %d: the chat found is the chat file, not a temp file", it);
        free(latest);
        runs++;
        mid_save += got == acked + 1;
        acked_total += acked;
    }
    printf("    %d kills after %.1f finished saves on average; %d found the new version, done but not yet "
           "acknowledged\n", runs, runs ? (double)acked_total / runs : 0, mid_save);
    CHECK(acked_total > runs, "the kills land among saves: %d saves finished in %d runs", acked_total, runs);
    chat_msgs_clear(a);
    free(a->msgs);
    free(a);
    free(path);
    free(chats);
}

/* ------------------------------------------------------------- Markdown */

static const char md_answer[] =
    "# Vulkan compute\n\n"
    "A **bold** claim, an *aside* and `inline code`; see [the spec](https://www.khronos.org/vulkan/).\n\n"
    "```c\nint main(void) {\n    return 0;\n}\n```\n\n"
    "1. first\n2. second\n   - nested\n\n"
    "> quoted\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n";

static int md_block_of(const chat_md_doc *d, chat_md_kind kind, int nth) {
    for (int i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].kind == kind && nth-- == 0) return i;
    return -1;
}

static const chat_md_run *md_run_with(const chat_md_doc *d, const char *s) {
    for (int i = 0; i < d->n_runs; i++)
        if (d->runs[i].len == strlen(s) && !memcmp(tb_str(&d->text) + d->runs[i].off, s, strlen(s)))
            return &d->runs[i];
    return NULL;
}

TEST(chat_md_parses_headings_spans_code_lists_quotes_tables_and_links) {
    chat_md_doc d = {0};
    REQUIRE(chat_md_parse(&d, md_answer, strlen(md_answer)), "parse");
    int h = md_block_of(&d, CHAT_MD_HEADING, 0), code = md_block_of(&d, CHAT_MD_CODE, 0);
    CHECK(h == 0 && d.blocks[0].level == 1, "the first block is a level-1 heading (%d)", h);
    const chat_md_run *r;
    CHECK((r = md_run_with(&d, "Vulkan compute")) && r->font == CHAT_MDF_HEADING, "heading font");
    CHECK((r = md_run_with(&d, "bold")) && r->font == CHAT_MDF_BOLD, "**bold** is bold");
    CHECK((r = md_run_with(&d, "aside")) && r->font == CHAT_MDF_ITALIC, "*aside* is italic");
    CHECK((r = md_run_with(&d, "inline code")) && r->font == CHAT_MDF_MONO && r->code_span, "`code` is mono");
    r = md_run_with(&d, "the spec");
    CHECK(r && r->link >= 0 && r->link < d.n_links && !strcmp(d.links[r->link], "https://www.khronos.org/vulkan/"),
          "the link keeps its target");
    REQUIRE(code >= 0, "a code block");
    size_t n;
    const char *c = chat_md_code(&d, code, &n);
    static const char want[] = "int main(void) {\n    return 0;\n}\n";
    CHECK(n == strlen(want) && !memcmp(c, want, n), "code block text verbatim: '%.*s'", (int)n, c);
    CHECK(d.runs[d.blocks[code].first_run].font == CHAT_MDF_MONO, "code block in mono");
    int li1 = md_block_of(&d, CHAT_MD_PARA, 1), li2 = li1 + 1, nested = li1 + 2;
    CHECK(li1 > 0 && !strcmp(d.blocks[li1].marker, "1.") && !strcmp(d.blocks[li2].marker, "2."),
          "ordered markers 1. 2. ('%s' '%s')", li1 > 0 ? d.blocks[li1].marker : "", li1 > 0 ? d.blocks[li2].marker : "");
    CHECK(nested < d.n_blocks && d.blocks[nested].depth == 2 && !strcmp(d.blocks[nested].marker, "\xE2\x80\xA2"),
          "the nested item is at depth 2 with a bullet");
    CHECK(nested + 1 < d.n_blocks && d.blocks[nested + 1].quote == 1, "the quote is at quote depth 1");
    int cell = md_block_of(&d, CHAT_MD_CELL, 0);
    CHECK(cell >= 0 && d.n_blocks - cell == 4, "a 2x2 table is 4 cells (%d)", cell >= 0 ? d.n_blocks - cell : 0);
    CHECK(cell >= 0 && d.blocks[cell].n_cols == 2 && d.blocks[cell + 3].row == 1 && d.blocks[cell + 3].col == 1,
          "cells know their row and column");
    CHECK((r = md_run_with(&d, "a")) && r->font == CHAT_MDF_BOLD, "header cells are bold");
    CHECK((r = md_run_with(&d, "1")) && r->font == CHAT_MDF_REGULAR, "body cells are regular");
    chat_md_free(&d);
}

TEST(chat_md_unfinished_fence_shows_as_code_while_streaming) {
    chat_md_doc d = {0};
    static const char s[] = "Here:\n\n```python\nprint(1)\nfor i in";
    REQUIRE(chat_md_parse(&d, s, strlen(s)), "parse");
    int code = md_block_of(&d, CHAT_MD_CODE, 0);
    size_t n = 0;
    const char *c = code >= 0 ? chat_md_code(&d, code, &n) : "";
    CHECK(code == 1 && n == strlen("print(1)\nfor i in\n") && !memcmp(c, "print(1)\nfor i in", 17),
          "the open fence runs to the end as code: block %d, '%.*s'", code, (int)n, c);
    chat_md_free(&d);
}

/* Deep nesting, a 1 MB line, a 512 KB line of code, ten thousand list items. */
static char *md_bomb(size_t *len) {
    size_t cap = (4u << 20), n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int i = 0; i < 5000; i++) s[n++] = '>';
    n += (size_t)sprintf(s + n, " deep quote\n\n");
    for (int i = 0; i < 300; i++) {
        memset(s + n, ' ', (size_t)i * 2);
        n += (size_t)i * 2;
        n += (size_t)sprintf(s + n, "- level %d\n", i);
    }
    s[n++] = '\n';
    for (size_t end = n + (1u << 20); n < end;) n += (size_t)sprintf(s + n, "lorem ipsum dolor ");
    s[n++] = '\n';
    s[n++] = '\n';
    /* and a 512 KB line of code without a space */
    n += (size_t)sprintf(s + n, "```\n");
    for (size_t end = n + (512u << 10); n < end;) n += (size_t)sprintf(s + n, "0123456789abcdef");
    n += (size_t)sprintf(s + n, "\n```\n\n");
    for (int i = 0; i < 10000; i++) n += (size_t)sprintf(s + n, "- item %d\n", i);
    *len = n;
    return s;
}

TEST(chat_md_caps_nesting_of_a_markdown_bomb) {
    size_t n;
    char *s = md_bomb(&n);
    REQUIRE(s, "memory");
    chat_md_doc d = {0};
    double t0 = now_s();
    REQUIRE(chat_md_parse(&d, s, n), "parse");
    double ms = (now_s() - t0) * 1e3;
    int max_depth = 0, max_quote = 0;
    for (int i = 0; i < d.n_blocks; i++) {
        if (d.blocks[i].depth > max_depth) max_depth = d.blocks[i].depth;
        if (d.blocks[i].quote > max_quote) max_quote = d.blocks[i].quote;
    }
    CHECK(max_depth == CHAT_MD_MAX_DEPTH && max_quote == CHAT_MD_MAX_DEPTH,
          "nesting drawn at most %d deep: lists %d, quotes %d", CHAT_MD_MAX_DEPTH, max_depth, max_quote);
    CHECK(d.n_blocks >= 10000 + 300, "every list item is a block (%d)", d.n_blocks);
    /* Long paragraphs and code go on in blocks of CHAT_MD_SPLIT bytes at most;
     * Copy still takes the whole code block. */
    int longest = 0, code = -1, code_parts = 0;
    for (int i = 0; i < d.n_blocks; i++) {
        size_t len;
        const chat_md_block *b = &d.blocks[i];
        if (b->n_runs) {
            const chat_md_run *r0 = &d.runs[b->first_run], *r1 = r0 + b->n_runs - 1;
            len = r1->off + r1->len - r0->off;
            if ((int)len > longest) longest = (int)len;
        }
        if (b->kind == CHAT_MD_CODE && code < 0) code = i;
        code_parts += b->kind == CHAT_MD_CODE;
    }
    CHECK(longest <= CHAT_MD_SPLIT, "no block holds more than %d bytes (%d)", CHAT_MD_SPLIT, longest);
    size_t code_len = 0;
    if (code >= 0) chat_md_code(&d, code, &code_len);
    CHECK(code >= 0 && code_parts == (512 << 10) / CHAT_MD_SPLIT + 1 && code_len == (512u << 10) + 1,
          "the 512 KB line of code is %d parts, and Copy takes all %zu bytes", code_parts, code_len);
    printf("    parsed %zu bytes into %d blocks in %.1f ms\n", n, d.n_blocks, ms);
    chat_md_free(&d);
    free(s);
}

/* A session of its own for the tests below, on a fresh data folder. */
static bool open_session(void) {
    if (!setup()) return false;
    snprintf(g.data, sizeof g.data, "%s/data-md", g.dir);
    g.cfg.data_dir = g.data;
    g.cfg.model = g.model;
    g.cfg.scale = 1;
    g.a = chat_app_create(&g.cfg);
    return g.a && pump(not_loading, 60) && g.a->loaded;
}

static void close_session(void) {
    const char *problem = validation_problem();
    CHECK(!problem, "validation layer: %s", problem ? problem : "");
    chat_app_destroy(g.a);
    g.a = NULL;
}

/* Renderer pixel of point (x, y) inside message m's bubble. */
static SDL_Point msg_point(const chat_msg *m, int x, int y) {
    return (SDL_Point){g.a->r_transcript.x + m->x + x, g.a->r_transcript.y - g.a->scroll + m->y + y};
}

static const chat_md_box *md_box(const chat_msg *m, chat_md_box_kind kind) {
    for (int i = 0; i < m->lay.n_boxes; i++)
        if (m->lay.boxes[i].kind == kind) return &m->lay.boxes[i];
    return NULL;
}

static uint32_t pixel(const unsigned char *rgb, int pitch, int x, int y) {
    const unsigned char *p = rgb + (size_t)y * (size_t)pitch + (size_t)x * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

TEST(chat_markdown_answer_draws_a_code_block_in_monospace_with_copy_and_confirmed_links) {
    REQUIRE(open_session(), "the session with the fixture model did not start");
    chat_msg_add(g.a, g.a->n_msgs, CHAT_USER, CHAT_DONE, "Show me **Markdown**", 20);
    chat_msg *m = chat_msg_add(g.a, g.a->n_msgs, CHAT_ASSISTANT, CHAT_DONE, md_answer, strlen(md_answer));
    REQUIRE(m, "memory");
    chat_scroll_to(g.a, 0);
    chat_app_step(g.a, 0);
    m = last_msg();
    CHECK(!strcmp(tb_str(&g.a->msgs[0].text), "Show me **Markdown**") && g.a->msgs[0].md.n_blocks == 0,
          "the user's message stays plain text");
    const chat_md_box *code = md_box(m, CHAT_BOX_CODE), *copy = md_box(m, CHAT_BOX_COPY);
    REQUIRE(code && copy, "the code block has a box and a Copy button");

    /* Structure of the picture: the code box is filled with one colour that is
     * not the bubble's, except where its text and Copy button are drawn. */
    const char *shot = getenv("CHAT_SCREENSHOT"), *slash = shot ? strrchr(shot, '/') : NULL;
    char path[400];
    if (slash) snprintf(path, sizeof path, "%.*s/phivk-chat-markdown.png", (int)(slash - shot), shot);
    else snprintf(path, sizeof path, "%s/phivk-chat-markdown.png", g.dir);
    CHECK(chat_app_screenshot(g.a, path), "screenshot %s", path);
    printf("    screenshot: %s\n", path);
    chat_draw_frame(g.a);
    int pitch = g.a->out_w * 3;
    unsigned char *rgb = malloc((size_t)pitch * (size_t)g.a->out_h);
    REQUIRE(rgb && SDL_RenderReadPixels(g.a->ren, NULL, SDL_PIXELFORMAT_RGB24, rgb, pitch) == 0, "read pixels");
    SDL_Point c0 = msg_point(m, code->r.x, code->r.y);
    uint32_t code_bg = pixel(rgb, pitch, c0.x + 3, c0.y + 3), bubble = pixel(rgb, pitch, c0.x - 3, c0.y - 3);
    long same = 0, total = 0;
    for (int y = c0.y + 1; y < c0.y + code->r.h - 1 && y < g.a->out_h; y++)
        for (int x = c0.x + 1; x < c0.x + code->r.w - 1 && x < g.a->out_w; x++, total++)
            same += pixel(rgb, pitch, x, y) == code_bg;
    CHECK(code_bg != bubble, "the code block's background (%06x) differs from the bubble's (%06x)", code_bg, bubble);
    CHECK(total > 0 && same * 10 >= total * 6, "%ld of %ld pixels of the code box are its background: want >= 60%% "
          "(text and the button cover the rest)", same, total);
    free(rgb);

    /* The code is drawn in a fixed-width font. */
    int mono_pieces = 0, other = 0;
    for (int i = 0; i < m->lay.n_pieces; i++) {
        const chat_md_piece *p = &m->lay.pieces[i];
        if (p->run < 0 || p->y < code->r.y || p->y >= code->r.y + code->r.h) continue;
        if (m->md.runs[p->run].font == CHAT_MDF_MONO) mono_pieces++;
        else other++;
    }
    CHECK(mono_pieces == 3 && !other, "the 3 code lines are mono pieces (%d mono, %d other)", mono_pieces, other);
    CHECK(TTF_FontFaceIsFixedWidth(g.a->mono), "the mono font (%s) is fixed-width", g.a->mono_path);

    SDL_SetClipboardText("");
    SDL_Point cp = msg_point(m, copy->r.x + copy->r.w / 2, copy->r.y + copy->r.h / 2);
    click(cp.x, cp.y);
    chat_app_step(g.a, 0);
    char *clip = SDL_GetClipboardText();
    CHECK(clip && !strcmp(clip, "int main(void) {\n    return 0;\n}\n"), "Copy copied the code: '%s'", clip ? clip : "");
    SDL_free(clip);

    /* A link asks first; Cancel opens nothing, Open runs xdg-open (a stand-in on PATH). */
    m = last_msg();
    const chat_md_piece *link = NULL;
    for (int i = 0; i < m->lay.n_pieces && !link; i++)
        if (m->lay.pieces[i].run >= 0 && m->md.runs[m->lay.pieces[i].run].link >= 0) link = &m->lay.pieces[i];
    REQUIRE(link, "the link is laid out");
    SDL_Point lp = msg_point(m, link->x + link->w / 2, link->y + g.a->line_h / 2);
    click(lp.x, lp.y);
    chat_app_step(g.a, 0);
    CHECK(g.a->link_url && !strcmp(g.a->link_url, "https://www.khronos.org/vulkan/"), "the address is shown first");
    click_button(CHAT_ACT_CANCEL_LINK, 0);
    CHECK(!g.a->link_url, "Cancel drops it");
    char bin[300], out[300], script[1200];
    snprintf(bin, sizeof bin, "%s/bin", g.dir);
    snprintf(out, sizeof out, "%s/opened.txt", g.dir);
    mkdir(bin, 0755);
    snprintf(script, sizeof script, "#!/bin/sh\nprintf '%%s' \"$1\" > %s.tmp && mv %s.tmp %s\n", out, out, out);
    char xdg[450];
    snprintf(xdg, sizeof xdg, "%s/xdg-open", bin);
    REQUIRE(write_file(xdg, script, strlen(script)) && chmod(xdg, 0755) == 0, "write %s", xdg);
    char *old_path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    char new_path[4096];
    snprintf(new_path, sizeof new_path, "%s:%s", bin, old_path);
    setenv("PATH", new_path, 1);
    click(lp.x, lp.y);
    chat_app_step(g.a, 0);
    click_button(CHAT_ACT_OPEN_LINK, 0);
    char got[256] = "";
    for (double end = now_s() + 10; now_s() < end && !*got; chat_app_step(g.a, 20)) {
        FILE *f = fopen(out, "r");
        if (f) {
            got[fread(got, 1, sizeof got - 1, f)] = 0;
            fclose(f);
        }
    }
    setenv("PATH", old_path, 1);
    free(old_path);
    CHECK(!strcmp(got, "https://www.khronos.org/vulkan/"), "xdg-open got the address: '%s'", got);
    CHECK(g.a->n_notices == 0, "no error: '%s'", g.a->n_notices ? g.a->notices[0].text : "");
}

/* One frame drawn and presented, in milliseconds of this thread's CPU time: on
 * a shared machine other processes' load does not count (the software
 * renderer draws on this thread, so the whole frame's work does). */
static double draw_cpu_ms(void) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    chat_app_draw(g.a);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
}

/* A long Markdown answer arriving 48 bytes a frame: each frame lays out only
 * the blocks that changed, and the result equals laying it all out at once. */
TEST(chat_markdown_streams_with_frames_under_50_ms_and_the_same_layout_as_whole) {
    REQUIRE(g.a, "needs the session");
    char *s = malloc(40000);
    REQUIRE(s, "memory");
    size_t n = 0;
    for (int i = 0; n < 36000; i++)
        n += (size_t)sprintf(s + n, i % 5 == 4 ? "```c\nint x%d = %d; /* code */\n```\n\n"
                                   : i % 5 == 3 ? "- item **%d** with `code` and text %d\n\n"
                                                : "Paragraph %d says *something* about %d things, long enough to wrap "
                                                  "over a line or two in a bubble of this width.\n\n",
                             i, i * 7);
    chat_msg *m = chat_msg_add(g.a, g.a->n_msgs, CHAT_ASSISTANT, CHAT_STREAMING, NULL, 0);
    REQUIRE(m, "memory");
    int id = m->id, frames = 0, most_relaid = 0;
    double worst = 0, *times = malloc(sizeof *times * (n / 48 + 1));
    REQUIRE(times, "memory");
    for (size_t at = 0; at < n; at += 48, frames++) {
        m = last_msg();
        tb_append(&m->text, s + at, n - at < 48 ? n - at : 48);
        m->wrap_w = 0; /* as a CHAT_EV_TEXT does */
        double ms = draw_cpu_ms();
        if (frames && ms > worst) worst = ms;
        times[frames] = ms;
        if (frames && last_msg()->lay.relaid > most_relaid) most_relaid = last_msg()->lay.relaid;
    }
    m = last_msg();
    REQUIRE(m->id == id, "the streamed message is last");
    qsort(times + 1, (size_t)frames - 1, sizeof *times, cmp_double);
    double median = times[1 + (frames - 1) / 2], p95 = times[1 + (frames - 1) * 95 / 100];
    printf("    streamed %zu bytes of Markdown (%d blocks) in %d frames: CPU a frame median %.1f ms, 95th percentile "
           "%.1f ms, max %.1f ms; at most %d blocks laid out again a frame\n", n, m->md.n_blocks, frames, median, p95,
           worst, most_relaid);
    /* 48 bytes can end the last block, hold a short one and start another;
     * everything before them stays laid out (laying out all would be ~400). */
    CHECK(most_relaid <= 3, "at most 3 blocks laid out again per frame while streaming, saw %d", most_relaid);
    /* The 95th percentile, not the max: under ASan one frame in ~70 pays for
     * the allocator's recycling (it lands in SDL_RenderPresent as often as in
     * the layout). A layout that grew with the answer's length would push most
     * frames of the second half over the bound. */
    CHECK(p95 < 50, "95%% of frames under 50 ms while streaming (%.1f ms)", p95);
    free(times);
    int n_pieces = m->lay.n_pieces, n_boxes = m->lay.n_boxes, h = m->lay.h;
    chat_md_piece *pieces = malloc(sizeof *pieces * (size_t)n_pieces);
    REQUIRE(pieces, "memory");
    memcpy(pieces, m->lay.pieces, sizeof *pieces * (size_t)n_pieces);
    m->lay.width = 0; /* forces a layout from the start, a share of it each frame */
    m->wrap_w = 0;
    int relayout_frames = 0;
    do {
        chat_app_draw(g.a);
        relayout_frames++;
    } while (m->lay.next < m->md.n_blocks && relayout_frames < 1000);
    printf("    laid out again from the start in %d frames\n", relayout_frames);
    CHECK(m->lay.n_pieces == n_pieces && m->lay.n_boxes == n_boxes && m->lay.h == h,
          "the same layout as at once: %d/%d pieces, %d/%d boxes, height %d/%d", n_pieces, m->lay.n_pieces, n_boxes,
          m->lay.n_boxes, h, m->lay.h);
    int moved = 0;
    for (int i = 0; i < n_pieces && i < m->lay.n_pieces; i++) {
        const chat_md_piece *p = &pieces[i], *q = &m->lay.pieces[i];
        moved += p->x != q->x || p->y != q->y || p->w != q->w || p->off != q->off || p->len != q->len || p->run != q->run;
    }
    CHECK(!moved, "every piece at the same place (%d moved)", moved);
    free(pieces);
    free(s);
    m->state = CHAT_DONE;
    chat_app_new_chat(g.a);
}

/* The bomb is laid out a share per frame (CHAT_LAYOUT_BUDGET_MS), so no frame
 * waits for all of it: its first frame (the parse and the first share), every
 * frame until the layout is done, then frames that only draw, at the top, the
 * middle and the end. The bound is the 50 ms for a responsive window,
 * on this thread's CPU time (the software renderer draws on it); the budget
 * is 12 ms and a frame's drawing a few ms, so ASan's ~2x leaves the margin. */
TEST(chat_markdown_bomb_draws_frames_under_50_ms) {
    REQUIRE(g.a, "needs the session");
    size_t n;
    char *s = md_bomb(&n);
    REQUIRE(s, "memory");
    chat_msg *m = chat_msg_add(g.a, g.a->n_msgs, CHAT_ASSISTANT, CHAT_DONE, s, n);
    free(s);
    REQUIRE(m, "memory");
    double first = draw_cpu_ms(), worst_laying = first, total = first;
    int frames = 1;
    m = last_msg();
    while (m->lay.next < m->md.n_blocks && frames < 5000) {
        double ms = draw_cpu_ms();
        total += ms;
        if (ms > worst_laying) worst_laying = ms;
        frames++;
        m = last_msg();
    }
    CHECK(m->lay.next == m->md.n_blocks, "laid out in %d frames (%d of %d blocks)", frames, m->lay.next,
          m->md.n_blocks);
    CHECK(m->lay.w <= m->wrap_w, "nothing is laid out wider than the bubble (%d > %d)", m->lay.w, m->wrap_w);
    double worst = 0;
    int positions[] = {m->y, m->y + m->h / 2, INT32_MAX};
    for (int k = 0; k < 3; k++) {
        chat_scroll_to(g.a, positions[k]);
        for (int i = 0; i < 4; i++) {
            double ms = draw_cpu_ms();
            if (ms > worst) worst = ms;
        }
    }
    printf("    Markdown bomb (%zu bytes, %d blocks, %d pieces): first frame %.1f ms CPU, laid out in %d frames "
           "(%.0f ms in all, the slowest %.1f ms), then frames that only draw at most %.1f ms\n", n,
           m->md.n_blocks, m->lay.n_pieces, first, frames, total, worst_laying, worst);
    CHECK(first < 50, "the first frame took %.1f ms, want < 50 ms", first);
    CHECK(worst_laying < 50, "the slowest frame while laying out took %.1f ms, want < 50 ms", worst_laying);
    CHECK(worst < 50, "frame time %.1f ms, want < 50 ms", worst);
    chat_app_new_chat(g.a);
}

/* ----------------------------------------------------------- the input box */

/* Renderer pixel of byte offset off on the first row of the input box. */
static SDL_Point input_point(const char *text, size_t off) {
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)off, text);
    int w = 0;
    TTF_SizeUTF8(g.a->font, buf, &w, NULL);
    int pad = (int)lroundf(10 * g.a->scale); /* the field's padding (chat_draw.c) */
    return (SDL_Point){g.a->r_input.x + pad + w, g.a->r_input.y + pad + g.a->line_h / 2};
}

static void mouse(Uint32 type, SDL_Point p) {
    SDL_Event e = {.type = type};
    if (type == SDL_MOUSEMOTION) {
        e.motion.x = (int)(p.x / g.a->px_per_coord);
        e.motion.y = (int)(p.y / g.a->px_per_coord);
    } else {
        e.button.button = SDL_BUTTON_LEFT;
        e.button.x = (int)(p.x / g.a->px_per_coord);
        e.button.y = (int)(p.y / g.a->px_per_coord);
    }
    push(e);
}

TEST(chat_input_caret_follows_clicks_drag_selects_and_keys_move_by_word) {
    REQUIRE(g.a, "needs the session");
    static const char text[] = "hello brave new world";
    tf_set(&g.a->input, text);
    chat_app_step(g.a, 0);
    /* Just right of "hello b" is nearer the boundary after the "b" than before it. */
    SDL_Point p = input_point(text, 7);
    click(p.x - 1, p.y);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 7, "a click after 'hello b' puts the caret at 7, got %zu", g.a->input.cursor);
    click(g.a->r_input.x + g.a->r_input.w - 20, p.y);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == strlen(text), "a click right of the text: caret at the end (%zu)", g.a->input.cursor);
    click(g.a->r_input.x + 2, p.y);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 0, "a click at the left edge: caret at 0 (%zu)", g.a->input.cursor);

    /* Drag over "brave", copy it, type over it. */
    mouse(SDL_MOUSEBUTTONDOWN, input_point(text, 6));
    mouse(SDL_MOUSEMOTION, input_point(text, 11));
    mouse(SDL_MOUSEBUTTONUP, input_point(text, 11));
    chat_app_step(g.a, 0);
    size_t b = 0, e = 0;
    CHECK(tf_selection(&g.a->input, &b, &e) && b == 6 && e == 11, "the drag selected [6, 11), got [%zu, %zu)", b, e);
    SDL_SetClipboardText("");
    key(SDLK_c, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    char *clip = SDL_GetClipboardText();
    CHECK(clip && !strcmp(clip, "brave"), "Ctrl+C copies the selection: '%s'", clip ? clip : "");
    SDL_free(clip);
    type("bold");
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "hello bold new world"), "typing replaces it: '%s'", tb_str(&g.a->input.text));

    /* Ctrl+Left / Right by word, Home / End, Shift to select. */
    key(SDLK_END, 0);
    key(SDLK_LEFT, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 15, "Ctrl+Left from the end: start of 'world' (15), got %zu", g.a->input.cursor);
    key(SDLK_LEFT, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 11, "again: start of 'new' (11), got %zu", g.a->input.cursor);
    key(SDLK_RIGHT, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 15, "Ctrl+Right: past 'new ' (15), got %zu", g.a->input.cursor);
    key(SDLK_HOME, 0);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 0 && !tf_selection(&g.a->input, &b, &e), "Home: 0, nothing selected");
    key(SDLK_RIGHT, KMOD_LCTRL | KMOD_LSHIFT);
    chat_app_step(g.a, 0);
    CHECK(tf_selection(&g.a->input, &b, &e) && b == 0 && e == 6, "Ctrl+Shift+Right selects 'hello ' ([%zu, %zu))", b, e);
    key(SDLK_BACKSPACE, 0);
    chat_app_step(g.a, 0);
    CHECK(!strcmp(tb_str(&g.a->input.text), "bold new world"), "Backspace deletes the selection: '%s'", tb_str(&g.a->input.text));
    key(SDLK_END, 0);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == g.a->input.text.len, "End: the end (%zu)", g.a->input.cursor);

    /* A click on the second row. */
    tf_set(&g.a->input, "line one\nline two");
    chat_app_step(g.a, 0);
    p = input_point("", 0);
    click(p.x, p.y + g.a->line_h);
    chat_app_step(g.a, 0);
    CHECK(g.a->input.cursor == 9, "a click at the start of row 2: caret at 9, got %zu", g.a->input.cursor);
    tf_set(&g.a->input, "");
}

/* ------------------------------------------------- regenerate and edit */

/* The tokens of the prompt the window sends for messages [0, n), message
 * `at` replaced by text (NULL: none), as chat_ui.c builds it. Caller frees. */
static int64_t conversation_tokens(const phivk_vocab *v, int n, int at, const char *text, bool add_assistant,
                                   int32_t **ids) {
    phivk_chat_msg msgs[64];
    int k = 0;
    const char *sys = tb_str(&g.a->system.text);
    if (*sys) msgs[k++] = (phivk_chat_msg){"system", sys};
    for (int i = 0; i < n && k < 64; i++) {
        const chat_msg *m = &g.a->msgs[i];
        if (m->role == CHAT_ASSISTANT && !m->text.len) continue;
        msgs[k++] = (phivk_chat_msg){m->role == CHAT_USER ? "user" : "assistant",
                                     i == at && text ? text : tb_str(&m->text)};
    }
    char *prompt = phivk_chat_prompt(phivk_vocab_chat_format(v), msgs, k, add_assistant);
    phivk_tokenize_params tp = phivk_tokenize_default_params();
    tp.parse_special = true;
    int64_t count = prompt ? phivk_tokenize(v, prompt, strlen(prompt), &tp, NULL, 0) : -1;
    *ids = count > 0 ? malloc(sizeof **ids * (size_t)count) : NULL;
    if (*ids) phivk_tokenize(v, prompt, strlen(prompt), &tp, *ids, count);
    free(prompt);
    return *ids ? count : -1;
}

static int64_t common_prefix(const int32_t *x, int64_t nx, const int32_t *y, int64_t ny) {
    int64_t k = 0;
    while (k < nx && k < ny && x[k] == y[k]) k++;
    return k;
}

TEST(chat_regenerate_replaces_the_last_answer_and_edit_resend_truncates_the_cache_to_the_edit) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    phivk_vocab *v = phivk_vocab_load(g.model);
    REQUIRE(v, "the fixture's vocabulary");
    chat_app_new_chat(g.a);
    type("first question");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no first answer");
    type("second question");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no second answer");
    REQUIRE(g.a->n_msgs == 4, "4 messages, got %d", g.a->n_msgs);

    /* Regenerate: same prompt, so the whole prompt but its last token stays in
     * the cache (one token must run again to give logits). Greedy sampling
     * makes the new answer the same text: the cache reuse changes nothing. */
    int old_id = g.a->msgs[3].id;
    char *old_text = strdup(tb_str(&g.a->msgs[3].text));
    int32_t *p2 = NULL;
    int64_t n2 = conversation_tokens(v, 3, -1, NULL, true, &p2);
    REQUIRE(n2 > 0 && old_text, "the prompt's tokens");
    chat_app_step(g.a, 0);
    click_button(CHAT_ACT_REGENERATE, 3);
    CHECK(g.a->answering || (g.a->n_msgs == 4 && g.a->msgs[3].id != old_id), "Regenerate started an answer (it may "
          "have ended already: the worker is quick)");
    REQUIRE(pump(idle, 60), "no regenerated answer");
    CHECK(g.a->n_msgs == 4, "still 4 messages, got %d", g.a->n_msgs);
    const chat_msg *m = &g.a->msgs[3];
    CHECK(m->role == CHAT_ASSISTANT && m->state == CHAT_DONE && m->id != old_id, "a new answer replaced the old one");
    CHECK(!strcmp(tb_str(&m->text), old_text), "greedy: the same text ('%s' vs '%s')", tb_str(&m->text), old_text);
    CHECK(g.a->ctx_kept == n2 - 1, "the cache kept %d tokens, want the prompt's %lld - 1", g.a->ctx_kept, (long long)n2);
    free(old_text);

    /* Edit the second question: the cache keeps the shared prefix of the old
     * and the new prompt, which covers the whole first exchange. */
    m = &g.a->msgs[2];
    int y = g.a->r_transcript.y - g.a->scroll + m->y + m->h / 2;
    click(g.a->r_transcript.x + m->x + m->w / 2, y);
    chat_app_step(g.a, 0);
    CHECK(g.a->selected == 2, "the click selected the question (%d)", g.a->selected);
    click_button(CHAT_ACT_EDIT, 2);
    CHECK(g.a->editing == g.a->msgs[2].id && !strcmp(tb_str(&g.a->input.text), "second question"),
          "Edit puts the message in the input box: '%s'", tb_str(&g.a->input.text));
    key(SDLK_ESCAPE, 0);
    chat_app_step(g.a, 0);
    CHECK(!g.a->editing && !g.a->input.text.len, "Esc cancels the edit");
    chat_app_edit(g.a, 2);
    tf_set(&g.a->input, "another question");
    int32_t *pn = NULL, *p1 = NULL;
    int64_t nn = conversation_tokens(v, 3, 2, "another question", true, &pn);
    int64_t n1 = conversation_tokens(v, 2, -1, NULL, false, &p1);
    REQUIRE(nn > 0 && n1 > 0, "the prompts' tokens");
    int64_t shared = common_prefix(p2, n2, pn, nn);
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer to the edited question");
    CHECK(g.a->n_msgs == 4, "the edit replaced the question and its answer: %d messages", g.a->n_msgs);
    CHECK(g.a->n_msgs == 4 && !strcmp(tb_str(&g.a->msgs[2].text), "another question") && g.a->msgs[3].state == CHAT_DONE,
          "the edited question is answered");
    CHECK(g.a->ctx_kept == shared, "the cache was cut to the edit point: kept %d, want the shared prefix %lld",
          g.a->ctx_kept, (long long)shared);
    CHECK(shared >= n1 && shared < n2, "the shared prefix (%lld) holds the first exchange (%lld tokens) and ends "
          "before the old prompt's end (%lld)", (long long)shared, (long long)n1, (long long)n2);
    free(p1);
    free(p2);
    free(pn);
    phivk_vocab_free(v);
    close_session();
}

/* ------------------------------------------------------ conversation list */

static bool file_bytes(const char *path, char *buf, size_t cap, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    *n = fread(buf, 1, cap, f);
    fclose(f);
    return true;
}

static int conv_index(const char *path) {
    for (int i = 0; i < g.a->n_convs; i++)
        if (!strcmp(g.a->convs[i].path, path)) return i;
    return -1;
}

static int convs_shown(void) {
    int n = 0;
    for (int i = 0; i < g.a->n_convs; i++) n += chat_conv_shown(g.a, i);
    return n;
}

static bool prefilled(chat_app *a) { return !a->prefilling && !a->loads_pending; }

static char corrupt_path[512], corrupt_bytes[64], rivers_path[512];
static size_t corrupt_n;

TEST(chat_list_skips_a_corrupt_chat_file_with_a_notice_and_never_writes_it) {
    REQUIRE(setup(), "fixture");
    char chats[400];
    snprintf(g.data, sizeof g.data, "%s/data-list", g.dir);
    snprintf(chats, sizeof chats, "%s/chats", g.data);
    mkdir(g.data, 0700);
    mkdir(chats, 0700);
    /* The newest name is the corrupt one: the window must open the next. */
    snprintf(corrupt_path, sizeof corrupt_path, "%s/chat-20300101-000000-00.json", chats);
    static const char junk[] = "{\"version\": 1, \"messages\": [ {\"role\": \"user\", \"con";
    REQUIRE(write_file(corrupt_path, junk, sizeof junk - 1), "write %s", corrupt_path);
    corrupt_n = sizeof junk - 1;
    memcpy(corrupt_bytes, junk, corrupt_n);
    snprintf(rivers_path, sizeof rivers_path, "%s/chat-20000102-000000-00.json", chats);
    static const char rivers[] =
        "{\"version\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"Tell me about rivers\", \"state\": \"done\"},"
        "{\"role\": \"assistant\", \"content\": \"Rivers run to the sea.\", \"state\": \"done\"}]}";
    REQUIRE(write_file(rivers_path, rivers, sizeof rivers - 1), "write %s", rivers_path);
    char stale[520];
    snprintf(stale, sizeof stale, "%s/.trash-chat-20000101-000000-00.json", chats);
    REQUIRE(write_file(stale, "{}", 2), "write %s", stale);

    g.cfg.data_dir = g.data;
    g.cfg.model = g.model;
    g.a = chat_app_create(&g.cfg);
    REQUIRE(g.a && pump(not_loading, 60) && g.a->loaded, "the session did not start");
    bool named = false;
    for (int i = 0; i < g.a->n_notices; i++)
        named |= g.a->notices[i].error && strstr(g.a->notices[i].text, "chat-20300101-000000-00.json") &&
                 strstr(g.a->notices[i].text, "left as it is");
    CHECK(named, "a notice names the corrupt file (%d notices: '%s')", g.a->n_notices,
          g.a->n_notices ? g.a->notices[0].text : "");
    CHECK(g.a->n_convs == 1 && conv_index(rivers_path) == 0, "the list holds the readable chat only (%d)", g.a->n_convs);
    CHECK(access(stale, F_OK) != 0, "a chat deleted before a crash is gone at the start");
    CHECK(g.a->chat_path && !strcmp(g.a->chat_path, rivers_path), "the newest readable chat is open: %s",
          g.a->chat_path ? g.a->chat_path : "(none)");
    CHECK(!strcmp(g.a->convs[0].title, "Tell me about rivers"), "its title is its first message: '%s'",
          g.a->convs[0].title);
    while (g.a->n_notices) click_button(CHAT_ACT_DISMISS, 0);
}

TEST(chat_new_chat_goes_first_and_switching_restores_the_text_and_reads_it_into_the_cache) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    click_button(CHAT_ACT_NEW, 0);
    CHECK(g.a->n_convs == 2 && chat_conv_current(g.a) == 0, "New chat is first in the list (%d chats, current %d)",
          g.a->n_convs, chat_conv_current(g.a));
    type("What about lakes?");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer");
    chat_app_step(g.a, 0);
    CHECK(!strcmp(g.a->convs[0].title, "What about lakes?"), "the new chat's title: '%s'", g.a->convs[0].title);
    char *lakes = strdup(g.a->chat_path), *answer = strdup(tb_str(&g.a->msgs[1].text));
    REQUIRE(lakes && answer, "memory");

    click_button(CHAT_ACT_SWITCH, conv_index(rivers_path));
    CHECK(g.a->chat_path && !strcmp(g.a->chat_path, rivers_path), "switched to the rivers chat");
    CHECK(g.a->n_msgs == 2 && !strcmp(tb_str(&g.a->msgs[0].text), "Tell me about rivers") &&
          !strcmp(tb_str(&g.a->msgs[1].text), "Rivers run to the sea."), "its messages are back (%d)", g.a->n_msgs);
    CHECK(g.a->prefilling, "the model reads it into its cache");
    REQUIRE(pump(prefilled, 60), "the conversation was not read in 60 s");
    phivk_vocab *v = phivk_vocab_load(g.model);
    REQUIRE(v, "the fixture's vocabulary");
    int32_t *ids = NULL;
    int64_t n = conversation_tokens(v, 2, -1, NULL, false, &ids);
    CHECK(n > 0 && g.a->prefill_tokens == n && g.a->ctx_used == n, "the cache holds the conversation: %d tokens, "
          "want %lld", g.a->prefill_tokens, (long long)n);
    free(ids);
    /* The next message only adds itself: the whole conversation stays cached. */
    type("And seas?");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(idle, 60), "no answer");
    CHECK(g.a->ctx_kept == n, "the answer kept the %lld cached tokens (kept %d)", (long long)n, g.a->ctx_kept);

    click_button(CHAT_ACT_SWITCH, conv_index(lakes));
    CHECK(g.a->n_msgs == 2 && !strcmp(tb_str(&g.a->msgs[0].text), "What about lakes?") &&
          !strcmp(tb_str(&g.a->msgs[1].text), answer), "back: the lakes chat's text is restored");
    REQUIRE(pump(prefilled, 60), "not read");
    n = conversation_tokens(v, 2, -1, NULL, false, &ids);
    CHECK(g.a->prefill_tokens == n, "and read into the cache (%d tokens, want %lld)", g.a->prefill_tokens, (long long)n);
    free(ids);
    phivk_vocab_free(v);
    free(lakes);
    free(answer);
}

TEST(chat_list_renames_searches_and_deletes_with_undo) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    int cur = chat_conv_current(g.a);
    REQUIRE(cur >= 0, "the open chat is listed");
    char *path = strdup(g.a->chat_path);
    REQUIRE(path, "memory");
    click_button(CHAT_ACT_RENAME, cur);
    CHECK(g.a->renaming == cur && g.a->focus == CHAT_FOCUS_RENAME, "Rename edits the title");
    type("Lakes and ponds");
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    cur = chat_conv_current(g.a);
    CHECK(g.a->renaming < 0 && !strcmp(g.a->convs[cur].title, "Lakes and ponds"), "renamed: '%s'",
          g.a->convs[cur].title);
    /* On disk too, for the next start. */
    chat_entry *list;
    int n, n_bad;
    char **bad;
    REQUIRE(chat_store_list(g.a->chats_dir, &list, &n, &bad, &n_bad), "list");
    bool found = false;
    for (int i = 0; i < n; i++) found |= !strcmp(list[i].path, path) && !strcmp(list[i].title, "Lakes and ponds");
    CHECK(found && n_bad == 1, "the file has the new title (%d chats, %d unreadable)", n, n_bad);
    chat_entries_free(list, n);
    for (int i = 0; i < n_bad; i++) free(bad[i]);
    free(bad);
    /* Renaming another chat rewrites its file, not the open one. */
    chat_app_rename_begin(g.a, conv_index(rivers_path));
    tf_set(&g.a->rename, "Rivers");
    chat_app_rename_end(g.a, true);
    CHECK(!strcmp(g.a->convs[conv_index(rivers_path)].title, "Rivers") && !strcmp(g.a->title, "Lakes and ponds"),
          "the other chat is renamed, the open one is not");

    /* Search: by message text, any case. */
    const chat_button *b = NULL;
    click(g.a->r_search.x + 10, g.a->r_search.y + g.a->r_search.h / 2);
    chat_app_step(g.a, 0);
    CHECK(g.a->focus == CHAT_FOCUS_SEARCH, "a click in the search box focuses it");
    type("SEAS");
    chat_app_step(g.a, 0);
    CHECK(convs_shown() == 1 && chat_conv_shown(g.a, conv_index(rivers_path)), "'SEAS' finds the chat that says "
          "'And seas?' (%d shown)", convs_shown());
    for (int i = 0; i < g.a->n_buttons; i++)
        if (g.a->buttons[i].action == CHAT_ACT_SWITCH) b = &g.a->buttons[i];
    CHECK(b && b->arg == conv_index(rivers_path), "only its row is drawn");
    type("zzz");
    chat_app_step(g.a, 0);
    CHECK(convs_shown() == 0, "no chat matches 'SEASzzz'");
    key(SDLK_ESCAPE, 0);
    chat_app_step(g.a, 0);
    CHECK(!g.a->search.text.len && convs_shown() == g.a->n_convs && g.a->focus == CHAT_FOCUS_INPUT,
          "Esc empties the search");

    /* Delete the open chat: the file goes, the window opens the next, Undo brings it back. */
    int before = g.a->n_convs;
    cur = chat_conv_current(g.a);
    click_button(CHAT_ACT_DELETE, cur);
    CHECK(g.a->n_convs == before - 1 && conv_index(path) < 0 && access(path, F_OK) != 0,
          "deleted: %d chats, the file is gone", g.a->n_convs);
    CHECK(g.a->chat_path && strcmp(g.a->chat_path, path), "another chat is open");
    REQUIRE(g.a->n_notices && g.a->notices[g.a->n_notices - 1].action == CHAT_ACT_UNDO_DELETE, "Undo is offered");
    CHECK(strstr(g.a->notices[g.a->n_notices - 1].text, "Lakes and ponds"), "the notice names it: '%s'",
          g.a->notices[g.a->n_notices - 1].text);
    pump(prefilled, 60);
    click_button(CHAT_ACT_UNDO_DELETE, g.a->n_notices - 1);
    CHECK(access(path, F_OK) == 0 && g.a->n_convs == before && g.a->chat_path && !strcmp(g.a->chat_path, path),
          "Undo restored the file and opened it");
    CHECK(!strcmp(g.a->title, "Lakes and ponds") && g.a->n_msgs == 2, "with its title and messages");
    pump(prefilled, 60);
    /* A chat that is not open goes without touching the open one. */
    chat_app_delete(g.a, conv_index(rivers_path));
    chat_app_step(g.a, 0);
    CHECK(access(rivers_path, F_OK) != 0 && conv_index(rivers_path) < 0 && !strcmp(g.a->chat_path, path),
          "the rivers chat is deleted, the open chat stays");
    REQUIRE(g.a->n_notices && g.a->notices[g.a->n_notices - 1].action == CHAT_ACT_UNDO_DELETE, "Undo is offered");
    click_button(CHAT_ACT_UNDO_DELETE, g.a->n_notices - 1);
    CHECK(access(rivers_path, F_OK) == 0 && conv_index(rivers_path) >= 0 && !strcmp(g.a->chat_path, path),
          "Undo brought it back to the list and kept the open chat");
    free(path);
}

/* ------------------------------------------------------------- Open model */

static bool copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) return false;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    bool ok = buf && feof(f) && write_file(to, buf, n);
    fclose(f);
    free(buf);
    return ok;
}

static const chat_model_file *picked(const char *path) {
    char *abs = realpath(path, NULL);
    const chat_model_file *found = NULL;
    for (int i = 0; abs && i < g.a->n_models; i++)
        if (!strcmp(g.a->models[i].path, abs)) found = &g.a->models[i];
    free(abs);
    return found;
}

TEST(chat_open_model_lists_the_models_of_a_home_folder_and_a_failed_load_keeps_the_current_one) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    char home[400], xdg[400], p[6][500];
    snprintf(home, sizeof home, "%s/home", g.dir);
    snprintf(xdg, sizeof xdg, "%s/home/xdg", g.dir);
    const char *dirs[] = {"", "/models", "/Downloads", "/Downloads/phi", "/xdg", "/xdg/phivk", "/xdg/phivk/models"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(p[0], sizeof p[0], "%s%s", home, dirs[i]);
        mkdir(p[0], 0700);
    }
    snprintf(p[1], sizeof p[1], "%s/models/a.gguf", home);
    snprintf(p[2], sizeof p[2], "%s/Downloads/phi/b.gguf", home);
    snprintf(p[3], sizeof p[3], "%s/xdg/phivk/models/c.GGUF", home);
    snprintf(p[4], sizeof p[4], "%s/models/broken.gguf", home);
    snprintf(p[5], sizeof p[5], "%s/Downloads/notes.txt", home);
    for (int i = 1; i <= 3; i++) REQUIRE(copy_file(g.model, p[i]), "copy the fixture to %s", p[i]);
    REQUIRE(write_file(p[4], "GGUF\x03\0\0\0junk", 12) && write_file(p[5], "notes", 5), "write the others");
    char *old_home = strdup(getenv("HOME") ? getenv("HOME") : "/");
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    setenv("HOME", home, 1);
    setenv("XDG_DATA_HOME", xdg, 1);

    /* More than the window shows: the wheel scrolls them. */
    char more[520];
    snprintf(more, sizeof more, "%s/models/more", home);
    mkdir(more, 0700);
    for (int i = 0; i < 14; i++) {
        char m[560];
        snprintf(m, sizeof m, "%s/m%02d.gguf", more, i);
        REQUIRE(copy_file(g.model, m), "copy the fixture to %s", m);
    }

    key(SDLK_o, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    REQUIRE(g.a->picker_open, "Ctrl+O opens the picker");
    int rows = 0;
    for (int i = 0; i < g.a->n_buttons; i++) rows += g.a->buttons[i].action == CHAT_ACT_PICK;
    CHECK(rows > 0 && rows < g.a->n_models && find_button(CHAT_ACT_PICK, 0), "the first %d of %d rows are drawn", rows,
          g.a->n_models);
    SDL_Event wheel = {.type = SDL_MOUSEWHEEL};
    wheel.wheel.y = -3; /* down */
    push(wheel);
    chat_app_step(g.a, 0);
    CHECK(g.a->picker_first == 3 && find_button(CHAT_ACT_PICK, 3) && !find_button(CHAT_ACT_PICK, 2),
          "the wheel scrolled 3 rows (first row %d)", g.a->picker_first);
    wheel.wheel.y = 3;
    push(wheel);
    chat_app_step(g.a, 0);
    CHECK(g.a->picker_first == 0, "and back");
    {
        const char *shot = getenv("CHAT_SCREENSHOT"), *slash = shot ? strrchr(shot, '/') : NULL;
        char path[400];
        if (slash) snprintf(path, sizeof path, "%.*s/phivk-chat-open-model.png", (int)(slash - shot), shot);
        else snprintf(path, sizeof path, "%s/phivk-chat-open-model.png", g.dir);
        CHECK(chat_app_screenshot(g.a, path), "screenshot %s", path);
    }
    struct stat st;
    REQUIRE(stat(g.model, &st) == 0, "stat the fixture");
    for (int i = 1; i <= 3; i++) {
        const chat_model_file *f = picked(p[i]);
        CHECK(f && !*f->error && !strcmp(f->brief.arch, "phi3") && !strcmp(f->brief.quant, "f16") &&
              f->brief.ctx == 1024 && f->brief.file_bytes == (uint64_t)st.st_size,
              "%s listed as phi3, f16, %lld bytes, context 1024 (%s, %s, %llu, %lld; %s)", p[i], (long long)st.st_size,
              f ? f->brief.arch : "-", f ? f->brief.quant : "-", f ? (unsigned long long)f->brief.file_bytes : 0ull,
              f ? (long long)f->brief.ctx : 0ll, f ? f->error : "not listed");
    }
    const chat_model_file *broken = picked(p[4]);
    CHECK(broken && *broken->error, "the broken file is listed with why: '%s'", broken ? broken->error : "not listed");
    CHECK(!picked(p[5]), "a .txt file is not listed");
    char *loaded = realpath(g.a->model_path, NULL);
    CHECK(g.a->n_models && loaded && !strcmp(g.a->models[0].path, loaded), "the model opened last comes first");
    free(loaded);
    int a_index = (int)(picked(p[1]) - g.a->models);
    REQUIRE(picked(p[1]) && find_button(CHAT_ACT_PICK, a_index), "a.gguf has a row");
    click_button(CHAT_ACT_PICK, a_index);
    CHECK(!g.a->picker_open, "picking closes the picker");
    REQUIRE(pump(not_loading, 60) && g.a->loaded, "a.gguf did not load");
    char *a_abs = realpath(p[1], NULL);
    CHECK(a_abs && !strcmp(g.a->model_path, p[1]) && g.a->n_recent && !strcmp(g.a->recent[0], a_abs),
          "a.gguf is loaded and first of the recent models");
    /* Remembered on disk for the next start. */
    char recent_file[500], buf[4096];
    size_t n = 0;
    snprintf(recent_file, sizeof recent_file, "%s/recent-models", g.data);
    CHECK(file_bytes(recent_file, buf, sizeof buf - 1, &n) && a_abs && !strncmp(buf, a_abs, strlen(a_abs)),
          "recent-models starts with it");
    free(a_abs);

    /* A path that does not load keeps the model in use. */
    key(SDLK_o, KMOD_LCTRL);
    chat_app_step(g.a, 0);
    type(p[4]);
    key(SDLK_RETURN, 0);
    chat_app_step(g.a, 0);
    REQUIRE(pump(not_loading, 60), "the failed load did not finish");
    CHECK(g.a->loaded && !strcmp(g.a->model_path, p[1]), "still using a.gguf: %s", g.a->model_path);
    CHECK(g.a->n_notices && strstr(g.a->notices[g.a->n_notices - 1].text, "Still using"), "a notice says so: '%s'",
          g.a->n_notices ? g.a->notices[g.a->n_notices - 1].text : "");
    while (g.a->n_notices) click_button(CHAT_ACT_DISMISS, 0);
    setenv("HOME", old_home, 1);
    if (old_xdg) setenv("XDG_DATA_HOME", old_xdg, 1);
    else unsetenv("XDG_DATA_HOME");
    free(old_home);
    free(old_xdg);
}

/* The README's picture: the list beside an answer with a code block. */
TEST(chat_screenshot_with_the_conversation_list_and_a_code_block) {
    REQUIRE(g.a && idle(g.a), "needs the session");
    click_button(CHAT_ACT_NEW, 0);
    static const char q[] = "How do I read a file in C?";
    static const char ans[] =
        "Open it with `fopen`, read with `fread`, and close it:\n\n"
        "```c\n#include <stdio.h>\n\nint main(void) {\n    FILE *f = fopen(\"notes.txt\", \"rb\");\n"
        "    char buf[4096];\n    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;\n"
        "    printf(\"%zu bytes\\n\", n);\n    if (f) fclose(f);\n}\n```\n\n"
        "- **Check** the result of `fopen`.\n- Read in a loop for files larger than the buffer.\n";
    chat_msg_add(g.a, g.a->n_msgs, CHAT_USER, CHAT_DONE, q, strlen(q));
    chat_msg_add(g.a, g.a->n_msgs, CHAT_ASSISTANT, CHAT_DONE, ans, strlen(ans));
    chat_app_save(g.a);
    chat_scroll_to(g.a, 0);
    for (int i = 0; i < 3; i++) chat_app_step(g.a, 0);
    CHECK(g.a->n_convs >= 3 && !strcmp(g.a->convs[0].title, q), "the list shows it first: '%s'", g.a->convs[0].title);
    CHECK(md_box(last_msg(), CHAT_BOX_CODE) && g.a->r_sidebar.w > 0, "a code block and the sidebar are drawn");
    const char *shot = getenv("CHAT_SCREENSHOT"), *slash = shot ? strrchr(shot, '/') : NULL;
    char path[400];
    if (slash) snprintf(path, sizeof path, "%.*s/phivk-chat-list.png", (int)(slash - shot), shot);
    else snprintf(path, sizeof path, "%s/phivk-chat-list.png", g.dir);
    CHECK(chat_app_screenshot(g.a, path), "screenshot %s", path);
    printf("    screenshot: %s\n", path);
    close_session();
}

/* Last: the corrupt chat file was never opened for writing. */
TEST(chat_corrupt_chat_file_is_left_untouched) {
    char buf[64];
    size_t n = 0;
    REQUIRE(*corrupt_path, "needs the list tests");
    CHECK(file_bytes(corrupt_path, buf, sizeof buf, &n) && n == corrupt_n && !memcmp(buf, corrupt_bytes, n),
          "the corrupt file has its %zu bytes (read %zu)", corrupt_n, n);
}
