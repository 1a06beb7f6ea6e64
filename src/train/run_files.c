/* The checkpoint files of a run directory (train/run_files.h). */
#include "train/run_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ckpt_model_path(const char *dir, long step, char *buf, size_t size) {
    snprintf(buf, size, "%s/model-%08ld.safetensors", dir, step);
}

void ckpt_state_path(const char *dir, long step, char *buf, size_t size) {
    snprintf(buf, size, "%s/train_state-%08ld.bin", dir, step);
}

/* Parses "<prefix>DDDDDDDD<suffix>" (at least 8 digits) into *step. */
static int parse_step_name(const char *name, const char *prefix, const char *suffix, long *step) {
    size_t lp = strlen(prefix), ls = strlen(suffix), ln = strlen(name);
    if (ln < lp + ls + 8 || strncmp(name, prefix, lp) != 0 || strcmp(name + ln - ls, suffix) != 0) return 0;
    long v = 0;
    for (size_t i = lp; i < ln - ls; i++) {
        if (name[i] < '0' || name[i] > '9' || v > 100000000000L) return 0;
        v = v * 10 + (name[i] - '0');
    }
    *step = v;
    return 1;
}

static int cmp_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int ckpt_list(const char *dir, long **steps, rwkv_error *err) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    long *s = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long step;
        if (!parse_step_name(e->d_name, "train_state-", ".bin", &step)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long *ns = realloc(s, (size_t)cap * sizeof *ns);
            if (!ns) {
                free(s);
                closedir(d);
                rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
                return -1;
            }
            s = ns;
        }
        s[n++] = step;
    }
    closedir(d);
    if (n > 1) qsort(s, (size_t)n, sizeof *s, cmp_desc);
    *steps = s;
    return n;
}

/* 1 when a file of this name in a run directory is the run's: one it writes
 * (checkpoints, the final model, settings, token file, log) or the temp file
 * of one ("NAME.tmp.XXXXXX"). */
static int is_run_file(const char *name) {
    static const char *const fixed[] = {"model.safetensors", "config.json", "tokens.bin", "train.jsonl"};
    char base[256];
    const char *tmp = strstr(name, ".tmp.");
    size_t n = tmp ? (size_t)(tmp - name) : strlen(name);
    if (n >= sizeof base) return 0;
    memcpy(base, name, n);
    base[n] = '\0';
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(base, fixed[i]) == 0) return 1;
    long step;
    return parse_step_name(base, "model-", ".safetensors", &step) ||
           parse_step_name(base, "train_state-", ".bin", &step);
}

void ckpt_remove_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, ".tmp.") || !is_run_file(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int run_dir_find_run_file(const char *dir, const char *data_path, char *name, size_t size) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (!is_run_file(e->d_name) || strstr(e->d_name, ".tmp.")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, "tokens.bin") == 0 && data_path && rwkv_check_output(path, &data_path, 1, NULL))
            continue; /* the data itself */
        snprintf(name, size, "%s", e->d_name);
        found = 1;
    }
    closedir(d);
    return found;
}

void ckpt_prune(const char *dir, int keep) {
    long *steps;
    int n = ckpt_list(dir, &steps, NULL);
    if (n <= 0) {
        free(steps);
        return;
    }
    int kept = keep > 0 && keep < n ? keep : n;
    char path[4096];
    for (int i = kept; i < n; i++) {
        ckpt_state_path(dir, steps[i], path, sizeof path);
        unlink(path); /* the state first: a model without its state is never taken */
        ckpt_model_path(dir, steps[i], path, sizeof path);
        unlink(path);
    }
    /* models whose state was never written (killed between the two files),
     * older than the newest checkpoint */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            long step;
            if (!parse_step_name(e->d_name, "model-", ".safetensors", &step) || step >= steps[0]) continue;
            int has_state = 0;
            for (int i = 0; i < kept; i++)
                if (steps[i] == step) has_state = 1;
            if (has_state) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    free(steps);
}

