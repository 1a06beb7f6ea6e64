/* A whole file mapped read-only into memory; the readers bound-check every
 * offset they take from its bytes against `size`. */
#ifndef RWKV_MAPPED_FILE_H
#define RWKV_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct mapped_file {
    const uint8_t *data;
    size_t size;
    int is_mapped; /* 1: munmap, 2: read into memory (free), 0: nothing owned */
} mapped_file;

/* Maps the file (read-only, private). While it is mapped, its range is
 * registered for rwkv_mapped_file_at, so that a program can name the file
 * when another process truncates it under the mapping (SIGBUS). */
rwkv_status mapped_file_open(const char *path, mapped_file *mf, rwkv_error *err);
/* The same, but the bytes are read into memory (page-aligned): nothing that
 * happens to the file afterwards can affect them. */
rwkv_status mapped_file_read(const char *path, mapped_file *mf, rwkv_error *err);
void mapped_file_close(mapped_file *mf);

/* Little-endian reads; the caller has checked the bounds. */
static inline uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

/* 1 when [off, off+len) lies inside a buffer of `size` bytes (no overflow). */
static inline int in_bounds(uint64_t off, uint64_t len, uint64_t size) {
    return off <= size && len <= size - off;
}

#endif
