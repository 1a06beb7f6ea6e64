/* A main() for the fuzz targets when libFuzzer is not available (plain gcc):
 *
 *   fuzz_pth [-n N] [-s SEED] FILE...
 *
 * Runs every FILE through LLVMFuzzerTestOneInput, then, with -n N, N mutated
 * copies of each (bit flips, random bytes, truncation, cut-outs and
 * duplicated chunks; deterministic for a given SEED). Every input is passed
 * in a heap buffer of exactly its size, so ASan catches a read past its end.
 * A contract violation aborts; otherwise it prints how many inputs ran. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 1;
static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *size = n;
    return buf;
}

static void run_copy(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return;
    if (size) memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

/* Offsets near the start matter most (headers), so half the edits go to the
 * first 4 KiB. */
static size_t pick(size_t size) {
    if (size == 0) return 0;
    size_t range = (rng() & 1) && size > 4096 ? 4096 : size;
    return (size_t)(rng() % range);
}

/* One mutated copy of seed into out (capacity 2 * size + 64); its length. */
static size_t mutate(const uint8_t *seed, size_t size, uint8_t *out) {
    memcpy(out, seed, size);
    size_t n = size;
    int edits = 1 + (int)(rng() % 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = pick(n);
        switch (rng() % 6) {
        case 0: out[at] ^= (uint8_t)(1u << (rng() % 8)); break;
        case 1: out[at] = (uint8_t)rng(); break;
        case 2: { /* an interesting value: 0, 0xff.., small ints, length-like numbers */
            static const uint32_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 64, 1000};
            uint32_t v = vals[rng() % (sizeof vals / sizeof vals[0])];
            for (int k = 0; k < 4 && at + (size_t)k < n; k++) out[at + (size_t)k] = (uint8_t)(v >> (8 * k));
            break;
        }
        case 3: n = at; break; /* truncate */
        case 4: {              /* cut out a chunk */
            size_t len = (size_t)(rng() % 64) + 1;
            if (at + len > n) len = n - at;
            memmove(out + at, out + at + len, n - at - len);
            n -= len;
            break;
        }
        default: { /* duplicate a chunk (stays within the 2*size+64 buffer) */
            size_t len = (size_t)(rng() % 64) + 1;
            if (at + len > n) len = n - at;
            if (n + len > 2 * size + 64) break;
            memmove(out + at + len, out + at, n - at);
            n += len;
            break;
        }
        }
    }
    return n;
}

int main(int argc, char **argv) {
    long rounds = 0;
    int first = 1;
    while (first < argc && argv[first][0] == '-' && first + 1 < argc) {
        if (strcmp(argv[first], "-n") == 0) rounds = strtol(argv[first + 1], NULL, 10);
        else if (strcmp(argv[first], "-s") == 0) rng_state = strtoull(argv[first + 1], NULL, 10) | 1;
        else break;
        first += 2;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [-n MUTATIONS] [-s SEED] FILE...\n", argv[0]);
        return 2;
    }
    long inputs = 0;
    for (int i = first; i < argc; i++) {
        size_t size = 0;
        uint8_t *seed = read_file(argv[i], &size);
        if (!seed) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 2;
        }
        run_copy(seed, size);
        inputs++;
        uint8_t *buf = malloc(2 * size + 64);
        for (long r = 0; buf && r < rounds; r++) {
            size_t n = mutate(seed, size, buf);
            run_copy(buf, n);
            inputs++;
        }
        free(buf);
        free(seed);
    }
    printf("%ld inputs ran without a contract violation\n", inputs);
    return 0;
}
