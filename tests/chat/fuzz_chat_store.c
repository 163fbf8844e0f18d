/* libFuzzer entry for phivk-chat's chat-file loader (clang only; see
 * tests/chat/meson.build for how to build and run it). A chat file is untrusted:
 * each input is written to a temp file and loaded into a fresh app (no window,
 * as the store tests in test_chat.c build one). Besides what the sanitizers
 * catch, the loader's promises are checked: every string it keeps is clean
 * UTF-8 (cleaning it again changes nothing) and every setting is in range. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_common.h"
#include "chat_app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *s) {
    fprintf(stderr, "fuzz_chat_store: %s: '%s'\n", what, s);
    abort();
}

static void check_clean(const char *what, const char *s) {
    size_t len = strlen(s), n;
    char *again = utf8_clean(s, len, &n);
    if (!again) abort();
    if (n != len || memcmp(again, s, len)) fail(what, s);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[] = "/tmp/fuzz_chat_store.XXXXXX";
    static int fd = -1;
    if (fd < 0 && (fd = mkstemp(path)) < 0) abort();
    if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) abort();

    chat_app *a = calloc(1, sizeof *a);
    if (!a) abort();
    /* With a key, so the model mark is computed and compared. */
    memset(a->key, 0x5A, CHAT_KEY_BYTES);
    a->have_key = true;
    if (chat_store_load(a, path)) {
        check_clean("model", a->model_path);
        check_clean("asked model", a->ask_model);
        check_clean("draft", tb_str(&a->input.text));
        check_clean("system", tb_str(&a->system.text));
        check_clean("device", a->set.device);
        for (int i = 0; i < a->n_msgs; i++) {
            check_clean("message", tb_str(&a->msgs[i].text));
            check_clean("note", a->msgs[i].note);
            if (a->msgs[i].state == CHAT_STREAMING) fail("a message still streaming", tb_str(&a->msgs[i].text));
        }
        if (!(a->set.temp >= 0 && a->set.temp <= 100) || !(a->set.top_p >= 0 && a->set.top_p <= 1) ||
            a->set.n_predict < -1 || a->set.n_predict > APP_MAX_N_PREDICT || a->set.ctx < 0 || a->set.ctx > (1 << 24))
            fail("a setting out of range", "");
    }
    chat_msgs_clear(a);
    free(a->msgs);
    tf_free(&a->input);
    tf_free(&a->system);
    free(a);
    return 0;
}
