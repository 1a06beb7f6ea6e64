/* Rank 0's blob to every rank (core/rendezvous.h).
 *
 * TCP: each peer connects (retrying until rank 0 listens) and sends a hello
 * of magic, its rank, the world size it expects and the blob size; rank 0
 * checks them, and once all world - 1 peers are in, answers each with a
 * status and the blob. Holding every answer until the last peer has joined
 * means a peer that returns knows the whole world has assembled.
 * File: rank 0 writes magic, world size, blob size and blob through a temp
 * file and a rename, so a reader never sees half of it. */
#include "core/rendezvous.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic_write.h"

static const char MAGIC[8] = {'R', 'W', 'K', 'V', 'R', 'D', 'V', '1'};
enum { HELLO_BYTES = 20, FILE_HEAD = 16 };
enum { ST_OK = 0, ST_WORLD = 1, ST_DUP = 2, ST_RANK = 3, ST_SIZE = 4 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* "HOST:PORT" split at the last colon; 0 when malformed. */
static int split_host_port(const char *spec, char *host, size_t host_size, char *port, size_t port_size) {
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= host_size) return 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || p < 1 || p > 65535) return 0;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    snprintf(port, port_size, "%ld", p);
    return 1;
}

static int is_file_spec(const char *spec) { return strncmp(spec, "file:", 5) == 0; }

rwkv_status rendezvous_check_spec(const char *spec, rwkv_error *err) {
    char host[256], port[8];
    if (spec && is_file_spec(spec) && spec[5]) return RWKV_OK;
    if (spec && split_host_port(spec, host, sizeof host, port, sizeof port)) return RWKV_OK;
    return rwkv_fail(err, RWKV_ERR_ARG, "--rendezvous must be HOST:PORT or file:PATH, got '%s'",
                     spec ? spec : "(none)");
}

/* Reads or writes exactly n bytes before the deadline; 0 on success. */
static int io_full(int fd, void *buf, size_t n, double deadline, int writing) {
    unsigned char *p = buf;
    while (n > 0) {
        double left = deadline - now_s();
        if (left <= 0) return -1;
        struct pollfd pfd = {fd, (short)(writing ? POLLOUT : POLLIN), 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static struct addrinfo *resolve(const char *spec, int passive, rwkv_error *err) {
    char host[256], port[8];
    if (!split_host_port(spec, host, sizeof host, port, sizeof port)) {
        rendezvous_check_spec(spec, err);
        return NULL;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: cannot resolve '%s': %s", spec, host, gai_strerror(rc));
        return NULL;
    }
    return res;
}

/* Rank 0's listening socket on the spec's address, or -1. */
static int listen_on(const char *spec, int world, rwkv_error *err) {
    struct addrinfo *res = resolve(spec, 1, err);
    if (!res) return -1;
    int fd = -1, why = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, world) != 0) {
            why = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank 0 cannot listen there: %s", spec, strerror(why));
    return fd;
}

/* One peer's hello: the status rank 0 answers it with; *peer_rank is set. */
static int check_hello(const unsigned char *h, int world, size_t n, const int *fds, int *peer_rank,
                       int *peer_world) {
    *peer_rank = (int)get_u32(h + 8);
    *peer_world = (int)get_u32(h + 12);
    if (memcmp(h, MAGIC, 8) != 0) return -1;
    if (*peer_world != world) return ST_WORLD;
    if (get_u32(h + 16) != n) return ST_SIZE;
    if (*peer_rank < 1 || *peer_rank >= world) return ST_RANK;
    if (fds[*peer_rank] >= 0) return ST_DUP;
    return ST_OK;
}

static void answer(int fd, int status, const void *blob, size_t n, double deadline) {
    unsigned char head[12];
    memcpy(head, MAGIC, 8);
    put_u32(head + 8, (uint32_t)status);
    if (io_full(fd, head, sizeof head, deadline, 1) == 0 && status == ST_OK) io_full(fd, (void *)blob, n, deadline, 1);
}

static rwkv_status serve(const char *spec, int world, const void *blob, size_t n, double deadline, rwkv_error *err) {
    int lfd = listen_on(spec, world, err);
    if (lfd < 0) return err ? err->code : RWKV_ERR_IO;
    int *fds = malloc(sizeof(int) * (size_t)world);
    if (!fds) {
        close(lfd);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < world; i++) fds[i] = -1;
    rwkv_status s = RWKV_OK;
    for (int joined = 0; s == RWKV_OK && joined < world - 1;) {
        double left = deadline - now_s();
        struct pollfd pfd = {lfd, POLLIN, 0};
        int r = left > 0 ? poll(&pfd, 1, (int)(left * 1000) + 1) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: only %d of %d ranks joined in time", spec, joined + 1,
                          world);
            break;
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        unsigned char h[HELLO_BYTES];
        int pr = 0, pw = 0;
        int st = io_full(fd, h, sizeof h, now_s() + 10.0 < deadline ? now_s() + 10.0 : deadline, 0) == 0
                     ? check_hello(h, world, n, fds, &pr, &pw)
                     : -1;
        if (st == ST_OK) {
            fds[pr] = fd;
            joined++;
            continue;
        }
        if (st > 0) answer(fd, st, NULL, 0, deadline);
        close(fd);
        if (st == ST_WORLD)
            s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank %d was started with --world %d, rank 0 with %d",
                          spec, pr, pw, world);
        else if (st == ST_DUP || st == ST_RANK)
            s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: a second rank %d (or a rank outside 1..%d) joined",
                          spec, pr, world - 1);
        else if (st == ST_SIZE)
            s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank %d is another version of this program", spec, pr);
        /* st < 0: a stranger or a dropped connection; keep waiting */
    }
    for (int i = 1; i < world; i++)
        if (fds[i] >= 0) {
            if (s == RWKV_OK) answer(fds[i], ST_OK, blob, n, deadline);
            close(fds[i]);
        }
    free(fds);
    close(lfd);
    return s;
}

static int connect_once(const char *spec, rwkv_error *err) {
    struct addrinfo *res = resolve(spec, 0, err);
    if (!res) return -2;
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static rwkv_status join(const char *spec, int rank, int world, void *blob, size_t n, double deadline,
                        rwkv_error *err) {
    int fd;
    while ((fd = connect_once(spec, err)) < 0) {
        if (fd == -2) return err ? err->code : RWKV_ERR_IO;
        if (now_s() >= deadline)
            return rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank 0 did not answer in time", spec);
        sleep_ms(100);
    }
    unsigned char h[HELLO_BYTES], a[12];
    memcpy(h, MAGIC, 8);
    put_u32(h + 8, (uint32_t)rank);
    put_u32(h + 12, (uint32_t)world);
    put_u32(h + 16, (uint32_t)n);
    int ok = io_full(fd, h, sizeof h, deadline, 1) == 0 && io_full(fd, a, sizeof a, deadline, 0) == 0 &&
             memcmp(a, MAGIC, 8) == 0;
    int status = ok ? (int)get_u32(a + 8) : -1;
    if (status == ST_OK) ok = io_full(fd, blob, n, deadline, 0) == 0;
    close(fd);
    if (status == ST_WORLD)
        return rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank 0 runs with another --world than %d", spec, world);
    if (status > 0)
        return rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: rank 0 refused rank %d (given twice, or not below --world)",
                         spec, rank);
    if (!ok) return rwkv_fail(err, RWKV_ERR_IO, "--rendezvous %s: no answer from rank 0 in time", spec);
    return RWKV_OK;
}

/* ---- file: ---- */

typedef struct file_blob {
    int world;
    const void *blob;
    size_t n;
} file_blob;

static rwkv_status write_blob(FILE *f, void *ctx, rwkv_error *err) {
    const file_blob *b = ctx;
    unsigned char head[FILE_HEAD];
    memcpy(head, MAGIC, 8);
    put_u32(head + 8, (uint32_t)b->world);
    put_u32(head + 12, (uint32_t)b->n);
    if (fwrite(head, 1, sizeof head, f) != sizeof head || fwrite(b->blob, 1, b->n, f) != b->n)
        return rwkv_fail(err, RWKV_ERR_IO, "write failed");
    return RWKV_OK;
}

static rwkv_status file_publish(const char *path, int world, const void *blob, size_t n, rwkv_error *err) {
    struct stat st;
    if (stat(path, &st) == 0)
        return rwkv_fail(err, RWKV_ERR_IO,
                         "--rendezvous file:%s already exists (left by an earlier start?): remove it first", path);
    file_blob b = {world, blob, n};
    return atomic_write_file(path, write_blob, &b, err);
}

/* 1 when the file holds a whole blob (then checked), 0 while it is not there yet. */
static int file_read(const char *path, int world, void *blob, size_t n, rwkv_status *s, rwkv_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char head[FILE_HEAD];
    int whole = fread(head, 1, sizeof head, f) == sizeof head && fread(blob, 1, n, f) == n;
    fclose(f);
    if (!whole) return 0;
    *s = RWKV_OK;
    if (memcmp(head, MAGIC, 8) != 0 || get_u32(head + 12) != n)
        *s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous file:%s is not a rendezvous file of this program", path);
    else if ((int)get_u32(head + 8) != world)
        *s = rwkv_fail(err, RWKV_ERR_IO, "--rendezvous file:%s: rank 0 runs with --world %d, this rank with %d", path,
                       (int)get_u32(head + 8), world);
    return 1;
}

rwkv_status rendezvous_exchange(const char *spec, int rank, int world, void *blob, size_t n, double timeout_s,
                                rwkv_error *err) {
    rwkv_status s = rendezvous_check_spec(spec, err);
    if (s != RWKV_OK) return s;
    if (world < 1 || rank < 0 || rank >= world)
        return rwkv_fail(err, RWKV_ERR_ARG, "--rank %d is outside 0..%d (--world %d)", rank, world - 1, world);
    if (n > RENDEZVOUS_BLOB_MAX) return rwkv_fail(err, RWKV_ERR_ARG, "rendezvous blob of %zu bytes is too large", n);
    if (world == 1) return RWKV_OK;
    const double deadline = now_s() + timeout_s;
    if (!is_file_spec(spec))
        return rank == 0 ? serve(spec, world, blob, n, deadline, err) : join(spec, rank, world, blob, n, deadline, err);
    const char *path = spec + 5;
    if (rank == 0) return file_publish(path, world, blob, n, err);
    while (!file_read(path, world, blob, n, &s, err)) {
        if (now_s() >= deadline)
            return rwkv_fail(err, RWKV_ERR_IO, "--rendezvous file:%s: rank 0 did not write it in time", path);
        sleep_ms(50);
    }
    return s;
}

void rendezvous_finish(const char *spec, int rank) {
    if (rank == 0 && spec && is_file_spec(spec)) unlink(spec + 5);
}
