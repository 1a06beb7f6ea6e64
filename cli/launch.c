/* The launcher of `rwkv train --gpus N` and `rwkv bench --train --gpus N` (cli/launch.h). The ranks run in
 * their own process group, so a Ctrl-C at the terminal reaches this process
 * only and is passed on exactly once; each rank also dies with this process
 * (PR_SET_PDEATHSIG), so a killed launcher leaves nothing behind. */
#include "launch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t pending_signal;
static void on_signal(int sig) { pending_signal = sig; }

/* 1 when argv[i] is `flag` or `flag=...`; *skip: how many words it takes. */
static int is_flag(char **argv, int i, const char *flag, int *skip) {
    size_t n = strlen(flag);
    if (strncmp(argv[i], flag, n) != 0) return 0;
    if (argv[i][n] == '=') return *skip = 1, 1;
    if (argv[i][n] == '\0') return *skip = 2, 1;
    return 0;
}

int cli_first_gpu(const char *device) {
    if (!device || strcmp(device, "cuda") == 0) return 0;
    if (strncmp(device, "cuda:", 5) == 0 && device[5] >= '0' && device[5] <= '9') return atoi(device + 5);
    return -1;
}

static int dropped(char **argv, int i, const cli_launch *l, int *skip) {
    if (is_flag(argv, i, "--device", skip)) return 1;
    for (int k = 0; l->drop && l->drop[k]; k++)
        if (is_flag(argv, i, l->drop[k], skip)) return 1;
    return 0;
}

/* The rank's command line: this program, the command, the user's flags
 * less the dropped ones, the extra ones, then the rank's own. */
static char **rank_argv(const cli_launch *l, const char *self, int rank, const char *rdv, char *buf) {
    int n_extra = 0;
    while (l->extra && l->extra[n_extra]) n_extra++;
    char **out = calloc((size_t)(l->argc + n_extra) + 16, sizeof *out);
    if (!out) return NULL;
    int k = 0;
    out[k++] = (char *)self;
    out[k++] = (char *)l->cmd;
    for (int i = 1; i < l->argc;) {
        int skip = 0;
        if (dropped(l->argv, i, l, &skip)) {
            i += skip;
            continue;
        }
        out[k++] = l->argv[i++];
    }
    for (int j = 0; j < n_extra; j++) out[k++] = (char *)l->extra[j];
    char *device = buf, *r = buf + 32, *w = buf + 48;
    snprintf(device, 32, "cuda:%d", l->first_gpu + rank);
    snprintf(r, 16, "%d", rank);
    snprintf(w, 16, "%d", l->n);
    const char *own[] = {"--device", device, "--rank", r, "--world", w, "--rendezvous", rdv};
    for (size_t j = 0; j < sizeof own / sizeof own[0]; j++) out[k++] = (char *)own[j];
    if (rank > 0 && l->quiet) out[k++] = (char *)l->quiet;
    out[k] = NULL;
    return out;
}

static pid_t start_rank(char **args, pid_t parent) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the launcher is already gone */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execv(args[0], args);
    fprintf(stderr, "rwkv %s: cannot start %s: %s\n", args[1], args[0], strerror(errno));
    _exit(127);
}

static void describe(const char *cmd, int rank, int status) {
    if (WIFSIGNALED(status))
        fprintf(stderr, "rwkv %s: rank %d was killed by signal %d (%s); stopped the other ranks\n", cmd, rank,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        fprintf(stderr, "rwkv %s: rank %d exited with status %d; stopped the other ranks\n", cmd, rank,
                WEXITSTATUS(status));
}

static void signal_all(const pid_t *pids, int n, int sig) {
    for (int r = 0; r < n; r++)
        if (pids[r] > 0) kill(pids[r], sig);
}

/* Waits for every rank; the first failure kills the rest. */
static int watch(const char *cmd, pid_t *pids, int n) {
    int result = 0, left = n;
    while (left > 0) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno != EINTR) break;
            if (pending_signal) signal_all(pids, n, pending_signal);
            pending_signal = 0;
            continue;
        }
        int rank = -1;
        for (int r = 0; r < n; r++)
            if (pids[r] == pid) rank = r;
        if (rank < 0) continue;
        pids[rank] = 0;
        left--;
        const int stopped = WIFEXITED(status) && WEXITSTATUS(status) == 130;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        if (stopped) {
            if (result == 0) result = 130;
            continue;
        }
        if (result != 1) {
            describe(cmd, rank, status);
            signal_all(pids, n, SIGKILL); /* ranks blocked in a collective with this one would wait in vain */
        }
        result = 1;
    }
    return result;
}

int cli_launch_ranks(const cli_launch *l) {
    const int n = l->n;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "rwkv %s: cannot find this program to start the ranks\n", l->cmd);
        return 1;
    }
    self[len] = '\0';
    /* the ranks meet through a file in a private folder: no port to pick, none to collide */
    const char *tmp = getenv("TMPDIR");
    char dir[2048], rdv[2100];
    snprintf(dir, sizeof dir, "%s/rwkv-ranks-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "rwkv %s: cannot make a folder for the ranks to meet in (%s): %s\n", l->cmd, dir,
                strerror(errno));
        return 1;
    }
    snprintf(rdv, sizeof rdv, "file:%s/nccl.id", dir);
    setenv("NCCL_NVLS_ENABLE", "0", 1); /* NVLink multicast off, in every rank's environment */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    char(*bufs)[64] = calloc((size_t)n, sizeof *bufs);
    char ***args = calloc((size_t)n, sizeof *args);
    int result = pids && bufs && args ? 0 : 1;
    for (int r = 0; r < n && result == 0; r++) {
        args[r] = rank_argv(l, self, r, rdv, bufs[r]);
        pids[r] = args[r] ? start_rank(args[r], getpid()) : -1;
        if (pids[r] < 0) {
            fprintf(stderr, "rwkv %s: cannot start rank %d: %s\n", l->cmd, r, strerror(errno));
            pids[r] = 0;
            signal_all(pids, n, SIGKILL);
            result = 1;
        }
    }
    if (result == 0) result = watch(l->cmd, pids, n);
    else
        while (wait(NULL) > 0) {
        }
    unlink(rdv + 5); /* rank 0 removes it once all are in; not when it failed before */
    rmdir(dir);
    for (int r = 0; args && r < n; r++) free(args[r]);
    free(args);
    free(bufs);
    free(pids);
    return result;
}
