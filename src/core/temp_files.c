/* The temporary files of the writes in progress (core/temp_files.h).
 *
 * Each slot is a path buffer with an atomic state: FREE, FILLING (a writer
 * copies its path in), ACTIVE (the path names a temp file), TAKEN (being
 * removed by rwkv_remove_temp_files), REMOVED. Every change of state is a
 * compare-and-swap, so the remover only reads a complete path, and a slot
 * goes back to FREE only through its writer, from ACTIVE (nobody removed the
 * file) or REMOVED (the remover is done with the path), never while a remover
 * in another thread still reads it. Lock-free atomics and unlink keep
 * rwkv_remove_temp_files async-signal-safe. */
#include "core/temp_files.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "rwkv.h"

enum { FREE, FILLING, ACTIVE, TAKEN, REMOVED };
#define TEMP_SLOTS 16 /* writes in progress at once (a training checkpoint is two, one after the other) */

static struct {
    atomic_int state;
    char path[FS_PATH_MAX + 16];
} slots[TEMP_SLOTS];

int temp_files_remember(const char *path) {
    size_t n = strlen(path);
    if (n >= sizeof slots[0].path) return -1;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int expected = FREE;
        if (!atomic_compare_exchange_strong(&slots[i].state, &expected, FILLING)) continue;
        memcpy(slots[i].path, path, n + 1);
        atomic_store(&slots[i].state, ACTIVE);
        return i;
    }
    return -1;
}

void temp_files_forget(int handle) {
    if (handle < 0 || handle >= TEMP_SLOTS) return;
    int expected = ACTIVE;
    if (atomic_compare_exchange_strong(&slots[handle].state, &expected, FREE)) return;
    expected = REMOVED; /* (a slot still TAKEN is left so: a remover is reading it) */
    atomic_compare_exchange_strong(&slots[handle].state, &expected, FREE);
}

void rwkv_remove_temp_files(void) {
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int expected = ACTIVE;
        if (!atomic_compare_exchange_strong(&slots[i].state, &expected, TAKEN)) continue;
        unlink(slots[i].path);
        atomic_store(&slots[i].state, REMOVED);
    }
}
