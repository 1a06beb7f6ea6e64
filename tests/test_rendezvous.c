/* The start of a multi-process run (core/rendezvous.h) between real
 * processes: rank 0's blob reaches every other rank over TCP and through a
 * file; a rank with another world size, a missing peer and a malformed
 * address end with one clear message instead of a hang. */
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "core/rendezvous.h"
#include "test.h"

enum { BLOB = 128 };

static void fill_blob(unsigned char *b) {
    for (int i = 0; i < BLOB; i++) b[i] = (unsigned char)(i * 37 + 11);
}

/* A port nothing listens on right now (the kernel's pick for port 0). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* A child process as rank `rank` of `world`: exit 0 when it got rank 0's blob. */
static pid_t spawn_peer(const char *spec, int rank, int world) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    unsigned char got[BLOB], want[BLOB];
    memset(got, 0, sizeof got);
    fill_blob(want);
    rwkv_error err;
    rwkv_status s = rendezvous_exchange(spec, rank, world, got, BLOB, 10.0, &err);
    _exit(s == RWKV_OK && memcmp(got, want, BLOB) == 0 ? 0 : s == RWKV_OK ? 2 : 1);
}

static int wait_ok(pid_t pid) {
    int st = 0;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Rank 0 in this process, world - 1 peers in children. */
static void exchange_world(const char *spec, int world) {
    pid_t pids[8];
    for (int r = 1; r < world; r++) pids[r] = spawn_peer(spec, r, world);
    unsigned char blob[BLOB];
    fill_blob(blob);
    rwkv_error err;
    rwkv_status s = rendezvous_exchange(spec, 0, world, blob, BLOB, 10.0, &err);
    CHECK(s == RWKV_OK, "rank 0: %s", err.message);
    for (int r = 1; r < world; r++) CHECK(wait_ok(pids[r]), "rank %d did not receive rank 0's blob", r);
    rendezvous_finish(spec, 0);
}

static void test_tcp_four_ranks(void) {
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%d", free_port());
    exchange_world(spec, 4);
}

static void test_file_three_ranks(void) {
    char spec[128];
    snprintf(spec, sizeof spec, "file:/tmp/rwkv_rdv_%d.bin", (int)getpid());
    exchange_world(spec, 3);
    CHECK(access(spec + 5, F_OK) != 0, "rank 0 left %s behind", spec + 5);
}

static void test_world_one_needs_no_peer(void) {
    unsigned char blob[BLOB];
    rwkv_error err;
    CHECK(rendezvous_exchange("127.0.0.1:1", 0, 1, blob, BLOB, 0.1, &err) == RWKV_OK, "%s", err.message);
}

static void test_world_mismatch_refused(void) {
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%d", free_port());
    pid_t peer = spawn_peer(spec, 1, 3); /* expects 3, rank 0 has 2 */
    unsigned char blob[BLOB];
    fill_blob(blob);
    rwkv_error err;
    rwkv_status s = rendezvous_exchange(spec, 0, 2, blob, BLOB, 10.0, &err);
    CHECK(s == RWKV_ERR_IO && strstr(err.message, "rank 1 was started with --world 3, rank 0 with 2"), "got %d: %s",
          s, err.message);
    CHECK(!wait_ok(peer), "the peer with the wrong world size succeeded");
}

static void test_missing_peer_times_out(void) {
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%d", free_port());
    unsigned char blob[BLOB];
    rwkv_error err;
    rwkv_status s = rendezvous_exchange(spec, 0, 3, blob, BLOB, 0.3, &err);
    CHECK(s == RWKV_ERR_IO && strstr(err.message, "only 1 of 3 ranks joined"), "got %d: %s", s, err.message);
    s = rendezvous_exchange(spec, 2, 3, blob, BLOB, 0.3, &err);
    CHECK(s == RWKV_ERR_IO && strstr(err.message, "rank 0 did not answer in time"), "got %d: %s", s, err.message);
}

static void test_bad_specs(void) {
    rwkv_error err;
    const char *bad[] = {"localhost", "host:0", "host:70000", ":29500", "file:", "host:12x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(rendezvous_check_spec(bad[i], &err) == RWKV_ERR_ARG && strstr(err.message, "HOST:PORT or file:PATH"),
              "'%s' accepted", bad[i]);
    CHECK(rendezvous_check_spec("node-1.example:29500", &err) == RWKV_OK, "%s", err.message);
    CHECK(rendezvous_check_spec("file:/shared/run.id", &err) == RWKV_OK, "%s", err.message);
}

static void test_stale_file_refused(void) {
    char path[96], spec[128];
    snprintf(path, sizeof path, "/tmp/rwkv_rdv_stale_%d.bin", (int)getpid());
    snprintf(spec, sizeof spec, "file:%s", path);
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    unsigned char blob[BLOB];
    rwkv_error err;
    rwkv_status s = rendezvous_exchange(spec, 0, 2, blob, BLOB, 1.0, &err);
    CHECK(s == RWKV_ERR_IO && strstr(err.message, "already exists"), "got %d: %s", s, err.message);
    unlink(path);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_tcp_four_ranks);
    RUN(test_file_three_ranks);
    RUN(test_world_one_needs_no_peer);
    RUN(test_world_mismatch_refused);
    RUN(test_missing_peer_times_out);
    RUN(test_bad_specs);
    RUN(test_stale_file_refused);
    return test_summary();
}
