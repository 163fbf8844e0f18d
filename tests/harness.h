/* A minimal test harness: TEST(name) registers a case, CHECK*() record failures
 * with file:line and keep going, main() runs every case (or those whose name
 * contains argv[1]) and ends with "N passed, N failed".
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

#ifdef HARNESS_MAIN
#include <stdarg.h>

#define HARNESS_MAX 1024
static struct { const char *name; harness_fn fn; } harness_cases[HARNESS_MAX];
static int harness_n, harness_cur_failed;
const char *(*harness_after_each)(void);

void harness_register(const char *name, harness_fn fn) {
    if (harness_n < HARNESS_MAX) {
        harness_cases[harness_n].name = name;
        harness_cases[harness_n].fn = fn;
        harness_n++;
    }
}

void harness_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    harness_cur_failed++;
}

int harness_failed_now(void) { return harness_cur_failed; }

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < harness_n; i++) {
        if (argc > 1 && !strstr(harness_cases[i].name, argv[1])) continue;
        harness_cur_failed = 0;
        printf("--- %s\n", harness_cases[i].name);
        harness_cases[i].fn();
        if (harness_after_each) {
            const char *msg = harness_after_each();
            if (msg) harness_fail(__FILE__, __LINE__, "%s", msg);
        }
        if (harness_cur_failed) {
            printf("FAIL %s\n", harness_cases[i].name);
            failed++;
        } else {
            printf("ok   %s\n", harness_cases[i].name);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif /* HARNESS_MAIN */
#endif
