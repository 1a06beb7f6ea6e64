/* A linear, allocation-free pass over JSON text that counts what a JSON
 * parser would build from it, so that a reader can refuse a header declaring
 * millions of entries before jansson spends seconds and gigabytes on them. */
#ifndef RWKV_FORMATS_JSON_BOUNDS_H
#define RWKV_FORMATS_JSON_BOUNDS_H

#include <stddef.h>

#include <jansson.h>

#include "core/error.h"

typedef struct json_counts {
    size_t top_members; /* members of the outermost object (or elements of the outermost array) */
    size_t values;      /* every value at every depth: the nodes a parser would allocate */
} json_counts;

/* Counts over text[0, len); strings (with escapes) are skipped, so ',' and ':'
 * inside them do not count. Malformed text gives counts that are still upper
 * bounds of what a parser could build before it fails. */
json_counts json_count(const char *text, size_t len);

/* A small JSON file (a config.json): a regular file of at most max_bytes
 * holding at most max_values values, parsed with jansson's `flags`. Errors
 * name the file and, for bad JSON, the line. */
rwkv_status json_read_file(const char *path, size_t max_bytes, size_t max_values, size_t flags, json_t **out,
                           rwkv_error *err);

#endif
