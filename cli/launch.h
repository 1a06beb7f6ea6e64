/* `rwkv train --gpus N`: one process per GPU, started and watched here
 * (docs/multigpu.md). */
#ifndef RWKV_CLI_LAUNCH_H
#define RWKV_CLI_LAUNCH_H

/* Runs N copies of this program's `train` command with argv (argv[0] is
 * "train"; its --gpus and --device flags are dropped), rank r on GPU
 * first_gpu + r with --rank r --world N --rendezvous file:DIR/nccl.id (DIR a
 * fresh private folder, removed at the end), NCCL_NVLS_ENABLE=0 in their
 * environment and --quiet on every rank but 0. Waits for them; when one fails (a non-zero status other than the
 * 130 of a Ctrl-C stop, or a signal) it kills the others and says which
 * rank and how. Ctrl-C and SIGTERM are passed on to every rank, which then
 * stop together after a checkpoint. Returns the exit status of the run: 0,
 * 130 when stopped, 1 when a rank failed. */
int cli_launch_ranks(int argc, char **argv, int n, int first_gpu);

#endif
