/* A minimal test harness: TEST(name) registers a case, CHECK*() record failures
 * with file:line and keep going, SKIP() ends a case that needs what this machine
 * lacks, main() runs every case (or those whose name contains argv[1]) and ends
 * with "N passed, N failed", plus ", N skipped" when a case skipped.
 *
 * Exit status: 1 when a case failed or none ran (a filter that matches nothing, a
 * binary without cases: a test that tests nothing is a failure); 77, meson's "skipped",
 * when every case that ran skipped; 0 otherwise. A skip is never counted as a pass.
 *
 * A test file defines HARNESS_MAIN in exactly one translation unit. GPU tests set
 * harness_after_each to a hook that fails the case on validation messages. */
#ifndef PHIVK_TESTS_HARNESS_H
#define PHIVK_TESTS_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*harness_fn)(void);
void harness_register(const char *name, harness_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void harness_skip(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int harness_failed_now(void);
/* Runs after every case; returns a message (static storage) to fail the case, or NULL. */
extern const char *(*harness_after_each)(void);

#define TEST(name)                                                              \
    static void name(void);                                                     \
    __attribute__((constructor)) static void name##_register(void) {           \
        harness_register(#name, name);                                          \
    }                                                                           \
    static void name(void)

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) harness_fail(__FILE__, __LINE__, __VA_ARGS__);             \
    } while (0)

/* |got - want| <= tol; the caller's message says why that tolerance. */
#define CHECK_NEAR(got, want, tol, why)                                         \
    do {                                                                        \
        double g_ = (got), w_ = (want), t_ = (tol);                             \
        if (!(fabs(g_ - w_) <= t_))                                             \
            harness_fail(__FILE__, __LINE__, "%s = %.9g, want %.9g +- %.3g (%s)", \
                         #got, g_, w_, t_, why);                                \
    } while (0)

/* Stops the current case when cond is false (for setup that later checks need). */
#define REQUIRE(cond, ...)                                                      \
    do {                                                                        \
        if (!(cond)) {                                                          \
            harness_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
            return;                                                             \
        }                                                                       \
    } while (0)

/* Ends the current case as skipped, saying why (a device feature, a file that is
 * not there). A case that already failed stays failed. */
#define SKIP(...)                                                               \
    do {                                                                        \
        harness_skip(__FILE__, __LINE__, __VA_ARGS__);                          \
        return;                                                                 \
    } while (0)

#ifdef HARNESS_MAIN
#include <stdarg.h>

#define HARNESS_MAX 1024
static struct { const char *name; harness_fn fn; } harness_cases[HARNESS_MAX];
static int harness_n, harness_cur_failed, harness_cur_skipped;
const char *(*harness_after_each)(void);

/* Past HARNESS_MAX the count goes on, so main() can refuse to run a partial list. */
void harness_register(const char *name, harness_fn fn) {
    if (harness_n < HARNESS_MAX) {
        harness_cases[harness_n].name = name;
        harness_cases[harness_n].fn = fn;
    }
    harness_n++;
}

__attribute__((format(printf, 4, 0)))
static void harness_say(const char *what, const char *file, int line, const char *fmt, va_list ap) {
    printf("    %s%s:%d: ", what, file, line);
    vprintf(fmt, ap);
    putchar('\n');
}

void harness_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_say("", file, line, fmt, ap);
    va_end(ap);
    harness_cur_failed++;
}

void harness_skip(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_say("skipped at ", file, line, fmt, ap);
    va_end(ap);
    harness_cur_skipped++;
}

int harness_failed_now(void) { return harness_cur_failed; }

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (harness_n > HARNESS_MAX) {
        printf("FAIL %d cases registered, the harness holds %d: raise HARNESS_MAX in tests/harness.h\n",
               harness_n, HARNESS_MAX);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    for (int i = 0; i < harness_n; i++) {
        if (argc > 1 && !strstr(harness_cases[i].name, argv[1])) continue;
        harness_cur_failed = harness_cur_skipped = 0;
        printf("--- %s\n", harness_cases[i].name);
        harness_cases[i].fn();
        if (harness_after_each) {
            const char *msg = harness_after_each();
            if (msg) harness_fail(__FILE__, __LINE__, "%s", msg);
        }
        if (harness_cur_failed) {
            printf("FAIL %s\n", harness_cases[i].name);
            failed++;
        } else if (harness_cur_skipped) {
            printf("skip %s\n", harness_cases[i].name);
            skipped++;
        } else {
            printf("ok   %s\n", harness_cases[i].name);
            passed++;
        }
    }
    if (passed + failed + skipped == 0) {
        if (argc > 1) printf("FAIL no case matches \"%s\"\n", argv[1]);
        else printf("FAIL this binary has no cases\n");
        failed = 1;
    }
    printf("%d passed, %d failed", passed, failed);
    if (skipped) printf(", %d skipped", skipped);
    putchar('\n');
    return failed ? 1 : passed ? 0 : 77;
}
#endif /* HARNESS_MAIN */
#endif
