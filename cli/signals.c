/* Signals: an interrupted command leaves no temporary file behind, and the
 * commands with work worth keeping (generate, chat, train) finish it on the
 * first Ctrl-C (docs/file-safety.md). */
#include <signal.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;

static void set_handler(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Removes the library's temporary files, then ends the process by the same
 * signal (SA_RESETHAND restored the default action on entry; the signal is
 * delivered again when the handler returns), so the exit status still says
 * which signal it was. Async-signal-safe: unlink, sigaction, raise. */
static void remove_temps_and_die(int sig) {
    rwkv_remove_temp_files();
    raise(sig);
}

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* A signal ignored from the start stays ignored (nohup's SIGHUP). */
void cli_signals_init(void) {
    for (size_t k = 0; k < sizeof fatal_signals / sizeof fatal_signals[0]; k++) {
        struct sigaction old;
        if (sigaction(fatal_signals[k], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            set_handler(fatal_signals[k], remove_temps_and_die, SA_RESETHAND);
    }
    /* a write past the file-size limit fails (EFBIG) with a message instead
     * of killing the process */
    set_handler(SIGXFSZ, SIG_IGN, 0);
}

/* The first SIGINT/SIGTERM: finish the current step; the next one is fatal
 * (and still removes the temporary files). No SA_RESTART: a blocking read
 * returns EINTR, so a command waiting for input sees the request at once. */
static void on_interrupt(int sig) {
    (void)sig;
    interrupted = 1;
    set_handler(SIGINT, remove_temps_and_die, SA_RESETHAND);
    set_handler(SIGTERM, remove_temps_and_die, SA_RESETHAND);
}

void cli_catch_interrupt(void) {
    set_handler(SIGINT, on_interrupt, 0);
    set_handler(SIGTERM, on_interrupt, 0);
}

int cli_interrupted(void) { return interrupted; }
