/* The temporary files of the writes in progress (core/temp_files.h).
 *
 * Each slot holds a malloc'ed path or NULL. A slot changes hands only through
 * atomic exchanges: whoever takes the pointer out of it (the writer when it
 * is done, or the signal handler) is its only user, so the handler never sees
 * a path being freed, and it never frees anything itself (the process ends
 * right after). Lock-free pointer atomics and unlink keep it
 * async-signal-safe. */
#include "core/temp_files.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwkv.h"

#define TEMP_SLOTS 64 /* writes in progress at once (a training checkpoint is two, one after the other) */

static _Atomic(char *) slots[TEMP_SLOTS];

int temp_files_remember(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&slots[i], &expected, copy)) return i;
    }
    free(copy);
    return -1;
}

void temp_files_forget(int handle) {
    if (handle < 0 || handle >= TEMP_SLOTS) return;
    free(atomic_exchange(&slots[handle], NULL)); /* NULL when a handler took it first */
}

void rwkv_remove_temp_files(void) {
    for (int i = 0; i < TEMP_SLOTS; i++) {
        char *path = atomic_exchange(&slots[i], NULL);
        if (path) unlink(path);
    }
}
