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
    int is_mapped; /* 1: munmap, 0: nothing owned */
} mapped_file;

rwkv_status mapped_file_open(const char *path, mapped_file *mf, rwkv_error *err);
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
