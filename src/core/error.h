/* Internal error helpers: every fallible function fills an rwkv_error (when
 * the caller passed one) and returns its code, so `return rwkv_fail(...)`
 * is the one way to report a problem. */
#ifndef RWKV_ERROR_H
#define RWKV_ERROR_H

#include "rwkv.h"

#if defined(__GNUC__)
#define RWKV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RWKV_PRINTF(f, a)
#endif

/* Sets err (if not NULL) to code and the formatted message; returns code.
 * A message longer than err->message holds loses its middle, not its end
 * (where the reason is): "/very/long/pa...th/model.bin: cannot open: ...". */
rwkv_status rwkv_fail(rwkv_error *err, rwkv_status code, const char *fmt, ...) RWKV_PRINTF(3, 4);
/* rwkv_fail with ": <strerror(errno)>" appended (errno as it was on entry):
 * the reason a read or write failed (no space left, permission denied...). */
rwkv_status rwkv_fail_errno(rwkv_error *err, rwkv_status code, const char *fmt, ...) RWKV_PRINTF(3, 4);

/* Clears err to RWKV_OK with an empty message; returns RWKV_OK. */
rwkv_status rwkv_ok(rwkv_error *err);

/* Prefixes err's message with "prefix: " (used to add a file name to errors
 * raised by code that only sees bytes). Returns err's code. */
rwkv_status rwkv_error_prefix(rwkv_error *err, const char *prefix);

#endif
