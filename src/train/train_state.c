/* The training state file (train/train_state.h). */
#include "train/train_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/atomic_write.h"
#include "core/mapped_file.h"

uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Floats are hashed by their little-endian bytes, so the hash does not depend
 * on the host's byte order. */
static uint64_t fnv_floats(uint64_t h, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int b = 0; b < 4; b++) {
            h ^= (uint8_t)(u >> (8 * b));
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

uint64_t params_hash(const float *params, size_t n) { return fnv_floats(FNV_INIT, params, n); }

#define STATE_MAGIC "RWKVTST"
#define STATE_HEADER 112

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_f64(uint8_t *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(p, u);
}
static double rd_f64(const uint8_t *p) {
    uint64_t u = rd_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

typedef struct state_writer {
    const train_state *st;
    int pause_ms;
} state_writer;

/* Writes floats little-endian in chunks, hashing what it writes. */
static int write_floats(FILE *f, const float *x, size_t n, uint64_t *h) {
    uint8_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            put_u32(buf + 4 * k, u);
        }
        *h = fnv1a64(*h, buf, 4 * k);
        if (fwrite(buf, 4, k, f) != k) return 0;
    }
    return 1;
}

static rwkv_status write_state(FILE *f, void *ctx, rwkv_error *err) {
    state_writer *w = ctx;
    const train_state *st = w->st;
    uint8_t hdr[STATE_HEADER] = {0};
    memcpy(hdr, STATE_MAGIC, 8);
    put_u32(hdr + 8, 1);
    put_u64(hdr + 16, st->step);
    put_u64(hdr + 24, (uint64_t)st->n);
    for (int i = 0; i < 4; i++) put_u64(hdr + 32 + 8 * i, st->rng[i]);
    put_u64(hdr + 64, st->samples);
    put_u64(hdr + 72, st->tokens_seen);
    put_u64(hdr + 80, st->skipped);
    put_f64(hdr + 88, st->elapsed_s);
    put_f64(hdr + 96, st->last_val_loss);
    put_u64(hdr + 104, st->params_hash);
    uint64_t h = fnv1a64(FNV_INIT, hdr, sizeof hdr);
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || !write_floats(f, st->m, st->n, &h))
        return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    if (w->pause_ms > 0) { /* testing hook: a window for kill -9 in the middle of the write */
        fflush(f);
        struct timespec ts = {w->pause_ms / 1000, (long)(w->pause_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (!write_floats(f, st->v, st->n, &h)) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    uint8_t tail[8];
    put_u64(tail, h);
    if (fwrite(tail, 1, 8, f) != 8) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    return RWKV_OK;
}

rwkv_status train_state_write(const char *path, const train_state *st, int pause_ms, rwkv_error *err) {
    state_writer w = {st, pause_ms};
    rwkv_status s = atomic_write_file(path, write_state, &w, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

static void read_floats(const uint8_t *p, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = rd_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

rwkv_status train_state_read(const char *path, train_state *st, rwkv_error *err) {
    memset(st, 0, sizeof *st);
    mapped_file mf;
    rwkv_status s = mapped_file_open(path, &mf, err);
    if (s != RWKV_OK) return s;
    const uint8_t *p = mf.data;
    size_t size = mf.size;
    const char *why = NULL;
    uint64_t n = 0;
    if (size < STATE_HEADER + 8 || memcmp(p, STATE_MAGIC, 8) != 0)
        why = "not a training-state file (expected the \"RWKVTST\" header)";
    else if (rd_u32(p + 8) != 1)
        why = "unsupported version (expected 1) (offset 8)";
    else {
        n = rd_u64(p + 24);
        if (n > (size - STATE_HEADER - 8) / 8 || STATE_HEADER + 8 * n + 8 != size)
            why = "moment count does not match the file size (offset 24)";
        else if (fnv1a64(FNV_INIT, p, size - 8) != rd_u64(p + size - 8))
            why = "checksum mismatch (the file is damaged or was cut short)";
    }
    if (why) {
        mapped_file_close(&mf);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %s", path, why);
    }
    st->step = rd_u64(p + 16);
    st->n = (size_t)n;
    for (int i = 0; i < 4; i++) st->rng[i] = rd_u64(p + 32 + 8 * i);
    st->samples = rd_u64(p + 64);
    st->tokens_seen = rd_u64(p + 72);
    st->skipped = rd_u64(p + 80);
    st->elapsed_s = rd_f64(p + 88);
    st->last_val_loss = rd_f64(p + 96);
    st->params_hash = rd_u64(p + 104);
    st->m = malloc(st->n * sizeof(float) + 1);
    st->v = malloc(st->n * sizeof(float) + 1);
    if (!st->m || !st->v) {
        train_state_free(st);
        mapped_file_close(&mf);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory for %zu moments", path, (size_t)n);
    }
    read_floats(p + STATE_HEADER, st->m, st->n);
    read_floats(p + STATE_HEADER + 4 * n, st->v, st->n);
    mapped_file_close(&mf);
    return rwkv_ok(err);
}

void train_state_free(train_state *st) {
    free(st->m);
    free(st->v);
    st->m = st->v = NULL;
}

