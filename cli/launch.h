/* `rwkv train --gpus N`: one process per GPU, started and watched here
 * (docs/multigpu.md). */
#ifndef RWKV_CLI_LAUNCH_H
#define RWKV_CLI_LAUNCH_H

/* What to start: this program's command `cmd` with argv (argv[0] is the
 * command's name) less the flags in `drop` (NULL-terminated; --device is
 * always dropped), plus `extra` (NULL-terminated, may be NULL), plus, for
 * rank r, --device cuda:(first_gpu + r) --rank r --world n --rendezvous
 * file:DIR/nccl.id (DIR a fresh private folder, removed at the end), and
 * `quiet` (may be NULL) on every rank but 0. */
typedef struct cli_launch {
    const char *cmd;
    int argc;
    char **argv;
    int n, first_gpu;
    const char *const *drop, *const *extra;
    const char *quiet;
} cli_launch;

/* The first GPU of --gpus: N of --device cuda:N, 0 for cuda or none; -1 for another device. */
int cli_first_gpu(const char *device);

/* Starts the N ranks with NCCL_NVLS_ENABLE=0 in their environment and waits
 * for them; when one fails (a non-zero status other than the 130 of a
 * Ctrl-C stop, or a signal) it kills the others and says which rank and
 * how. Ctrl-C and SIGTERM are passed on to every rank, which then stop
 * together after a checkpoint. Returns the exit status of the run: 0, 130
 * when stopped, 1 when a rank failed. */
int cli_launch_ranks(const cli_launch *l);

#endif
