/* How files are written (docs/file-safety.md): rwkv_check_output tells an
 * output that is one of the inputs (by path, symbolic or hard link); atomic
 * writes create their temp file exclusively (a link planted at a temp name is
 * never written through), honour the umask, and leave nothing behind on an
 * error or after rwkv_remove_temp_files. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_write.h"
#include "rwkv.h"
#include "test.h"

static char dir[256];

static void path_in(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", dir, name); }

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static int has_text(const char *path, const char *text) {
    char buf[256] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

/* Files of dir whose name contains ".tmp.". */
static int count_temps(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static rwkv_status write_hello(FILE *f, void *ctx, rwkv_error *err) {
    (void)ctx;
    return fputs("hello", f) >= 0 ? RWKV_OK : rwkv_fail(err, RWKV_ERR_IO, "write failed");
}

static rwkv_status write_then_fail(FILE *f, void *ctx, rwkv_error *err) {
    (void)ctx;
    fputs("half", f);
    return rwkv_fail(err, RWKV_ERR_FORMAT, "the writer failed");
}

/* What a signal handler does in the middle of a write: the temp file of the
 * write in progress is there, and rwkv_remove_temp_files removes it. */
static rwkv_status write_interrupted(FILE *f, void *ctx, rwkv_error *err) {
    (void)err;
    int *seen = ctx;
    fputs("partial", f);
    fflush(f);
    seen[0] = count_temps();
    rwkv_remove_temp_files();
    seen[1] = count_temps();
    return RWKV_OK;
}

static void test_check_output(void) {
    char in[512], out[512], sym[512], hard[512];
    path_in(in, sizeof in, "input.bin");
    path_in(out, sizeof out, "other.bin");
    path_in(sym, sizeof sym, "symlink.bin");
    path_in(hard, sizeof hard, "hardlink.bin");
    CHECK(write_text(in, "input") && write_text(out, "other"), "setup");
    CHECK(symlink(in, sym) == 0 && link(in, hard) == 0, "links");
    const char *inputs[] = {NULL, in};
    rwkv_error err;
    CHECK(rwkv_check_output(in, inputs, 2, &err) == RWKV_ERR_ARG && strstr(err.message, "same file as the input"),
          "the input's own path: %s", err.message);
    CHECK(rwkv_check_output(sym, inputs, 2, &err) == RWKV_ERR_ARG && strstr(err.message, in),
          "a symbolic link to the input: %s", err.message);
    CHECK(rwkv_check_output(hard, inputs, 2, &err) == RWKV_ERR_ARG, "a hard link to the input");
    const char *via_link[] = {sym};
    CHECK(rwkv_check_output(in, via_link, 1, &err) == RWKV_ERR_ARG, "the input named through a link");
    CHECK(rwkv_check_output(out, inputs, 2, &err) == RWKV_OK, "another file: %s", err.message);
    char missing[512];
    path_in(missing, sizeof missing, "missing.bin");
    CHECK(rwkv_check_output(missing, inputs, 2, &err) == RWKV_OK, "a new file: %s", err.message);
}

/* The temp name of the old writer ("OUT.tmp.<pid>") holds a link to a victim:
 * the write must neither follow it nor fail because of it. */
static void test_planted_link_not_followed(void) {
    char out[512], victim[512], planted[600];
    path_in(out, sizeof out, "planted.bin");
    path_in(victim, sizeof victim, "victim.txt");
    snprintf(planted, sizeof planted, "%s.tmp.%ld", out, (long)getpid());
    CHECK(write_text(victim, "precious") && symlink(victim, planted) == 0, "setup");
    rwkv_error err;
    CHECK(atomic_write_file(out, write_hello, NULL, &err) == RWKV_OK, "%s", err.message);
    CHECK(has_text(victim, "precious"), "the link's target was written through");
    CHECK(has_text(out, "hello"), "the output does not hold what was written");
    struct stat st;
    CHECK(lstat(planted, &st) == 0 && S_ISLNK(st.st_mode), "the planted link was replaced");
    unlink(planted);
}

static void test_mode_follows_umask(void) {
    char out[512];
    path_in(out, sizeof out, "mode.bin");
    mode_t old = umask(027);
    rwkv_error err;
    rwkv_status s = atomic_write_file(out, write_hello, NULL, &err);
    umask(old);
    CHECK(s == RWKV_OK, "%s", err.message);
    struct stat st;
    CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0640, "mode %o under umask 027, want 640",
          (unsigned)(st.st_mode & 0777));
}

static void test_error_leaves_nothing(void) {
    char out[512];
    path_in(out, sizeof out, "kept.bin");
    CHECK(write_text(out, "old"), "setup");
    int before = count_temps();
    rwkv_error err;
    CHECK(atomic_write_file(out, write_then_fail, NULL, &err) == RWKV_ERR_FORMAT, "the writer's error");
    CHECK(count_temps() == before, "a temp file was left after an error");
    CHECK(has_text(out, "old"), "the old file was changed by a failed write");
    char in_missing_dir[600];
    snprintf(in_missing_dir, sizeof in_missing_dir, "%s/no/such/dir/x.bin", dir);
    CHECK(atomic_write_file(in_missing_dir, write_hello, NULL, &err) == RWKV_ERR_IO &&
              strstr(err.message, "cannot create"),
          "a file in a missing folder: %s", err.message);
}

/* Also more times than there are slots for writes in progress: each write
 * gives its slot back. */
static void test_remove_temp_files(void) {
    char out[512];
    path_in(out, sizeof out, "interrupted.bin");
    int before = count_temps();
    for (int round = 0; round < 40; round++) {
        int seen[2] = {0, 0};
        rwkv_error err;
        rwkv_status s = atomic_write_file(out, write_interrupted, seen, &err);
        CHECK(seen[0] == before + 1, "round %d: %d temp files during the write, want %d", round, seen[0], before + 1);
        CHECK(seen[1] == before, "round %d: rwkv_remove_temp_files left %d temp files", round, seen[1] - before);
        CHECK(s == RWKV_ERR_IO && access(out, F_OK) != 0, "the removed write still produced %s", out);
        CHECK(count_temps() == before, "temp files left");
    }
    rwkv_remove_temp_files(); /* nothing in progress: nothing to do */
    rwkv_error err;
    CHECK(atomic_write_file(out, write_hello, NULL, &err) == RWKV_OK && has_text(out, "hello"), "%s", err.message);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/rwkv_test_files_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_check_output);
    RUN(test_planted_link_not_followed);
    RUN(test_mode_follows_umask);
    RUN(test_error_leaves_nothing);
    RUN(test_remove_temp_files);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
