/* A read-only view of a zip archive held in memory (docs/model.md
 * §4.1 "ZIP layer"): enough of the format to read PyTorch .pth files, which
 * store every member uncompressed. Entries point into the caller's buffer;
 * nothing is copied. Error messages carry no file name: the caller prefixes
 * it (rwkv_error_prefix). */
#ifndef RWKV_ZIP_H
#define RWKV_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct zip_entry {
    const char *name;      /* into the central directory; NOT NUL-terminated */
    size_t name_len;
    uint16_t flags, method;
    uint64_t size;         /* uncompressed size */
    uint64_t csize;        /* compressed size */
    uint64_t local_offset; /* of the local header */
    uint64_t cd_offset;    /* of the central directory entry (for messages) */
} zip_entry;

typedef struct zip_archive {
    const uint8_t *data;
    uint64_t size;
    zip_entry *entries; /* in central-directory order */
    size_t count;
    const zip_entry **sorted; /* the entries sorted by name, for zip_find */
} zip_archive;

/* Reads the end-of-central-directory record (ZIP64 when present) and every
 * central directory entry. The archive views `data`, which must outlive it. */
rwkv_status zip_open(const uint8_t *data, size_t size, zip_archive *za, rwkv_error *err);
void zip_close(zip_archive *za);

/* The entry called exactly `name` (NUL-terminated), or NULL. */
const zip_entry *zip_find(const zip_archive *za, const char *name);

/* Locates the member's bytes through its LOCAL header (whose extra field may
 * differ from the central one). Only stored (method 0), unencrypted members
 * are supported. */
rwkv_status zip_entry_data(const zip_archive *za, const zip_entry *e, const uint8_t **out,
                           uint64_t *out_size, rwkv_error *err);

#endif
