#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rwkv_status_name(rwkv_status status) {
    switch (status) {
    case RWKV_OK: return "ok";
    case RWKV_ERR_IO: return "I/O error";
    case RWKV_ERR_FORMAT: return "format error";
    case RWKV_ERR_UNSUPPORTED: return "unsupported";
    case RWKV_ERR_SHAPE: return "shape error";
    case RWKV_ERR_NOMEM: return "out of memory";
    case RWKV_ERR_ARG: return "bad argument";
    case RWKV_ERR_NUMERIC: return "numeric error";
    }
    return "unknown error";
}

rwkv_status rwkv_fail(rwkv_error *err, rwkv_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

rwkv_status rwkv_ok(rwkv_error *err) {
    if (err) {
        err->code = RWKV_OK;
        err->message[0] = '\0';
    }
    return RWKV_OK;
}

rwkv_status rwkv_error_prefix(rwkv_error *err, const char *prefix) {
    if (!err) return RWKV_ERR_ARG;
    char tmp[2 * RWKV_ERROR_MESSAGE_MAX];
    snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->message);
    snprintf(err->message, sizeof err->message, "%.*s", RWKV_ERROR_MESSAGE_MAX - 1, tmp);
    return err->code;
}
