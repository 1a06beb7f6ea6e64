/* A tiny test harness. Each test program defines test functions, runs them
 * with RUN(fn) from main and ends with `return test_summary();`.
 * Output, one line per test: "PASS name", "FAIL name: why (file:line)" or
 * "SKIP name: why"; tests/run.sh adds them up across programs. */
#ifndef RWKV_TEST_H
#define RWKV_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static int test_passed, test_failed, test_skipped;
static int test_current_failed, test_current_skipped;
static char test_current_msg[1024];

static void test_fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static void test_fail_at(const char *file, int line, const char *fmt, ...) {
    if (test_current_failed) return; /* keep the first failure */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(test_current_msg, sizeof test_current_msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof test_current_msg)
        snprintf(test_current_msg + n, sizeof test_current_msg - (size_t)n, " (%s:%d)", file, line);
    test_current_failed = 1;
}

/* CHECK(cond, "fmt", ...): on failure records the message and returns from the test. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* SKIP("why"): marks the test skipped (e.g. ../shared is absent) and returns. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        snprintf(test_current_msg, sizeof test_current_msg, __VA_ARGS__);                          \
        test_current_skipped = 1;                                                                  \
        return;                                                                                    \
    } while (0)

static void test_run(const char *name, void (*fn)(void)) {
    test_current_failed = test_current_skipped = 0;
    test_current_msg[0] = '\0';
    fn();
    if (test_current_failed) {
        printf("FAIL %s: %s\n", name, test_current_msg);
        test_failed++;
    } else if (test_current_skipped) {
        printf("SKIP %s: %s\n", name, test_current_msg);
        test_skipped++;
    } else {
        printf("PASS %s\n", name);
        test_passed++;
    }
    fflush(stdout);
}
#define RUN(fn) test_run(#fn, fn)

static int test_summary(void) {
    printf("%d passed, %d failed, %d skipped\n", test_passed, test_failed, test_skipped);
    return test_failed ? 1 : 0;
}

/* The shared reference data lives beside the repository; tests skip cleanly
 * when it is absent. RWKV_SHARED overrides the location. */
__attribute__((unused)) static const char *shared_dir(void) {
    const char *env = getenv("RWKV_SHARED");
    return env && *env ? env : "../shared";
}
__attribute__((unused)) static int shared_path(char *buf, size_t size, const char *rel) {
    snprintf(buf, size, "%s/%s", shared_dir(), rel);
    struct stat st;
    return stat(buf, &st) == 0;
}

/* Deletes a temporary directory a test made, with everything below it. */
__attribute__((unused)) static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        DIR *sub = opendir(path);
        if (sub) {
            closedir(sub);
            remove_tree(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Max of |got - want| / (atol + rtol*|want|) over n elements: <= 1 passes. */
__attribute__((unused)) static double tol_ratio(const float *got, const float *want, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (atol + rtol * fabs((double)want[i]));
        if (!(r <= worst)) worst = r; /* NaN propagates as a failure */
    }
    return worst;
}

#endif
