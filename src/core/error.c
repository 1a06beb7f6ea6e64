#include "core/error.h"

/* Messages are formatted whole (up to two paths long) before they are fit
 * into an rwkv_error. */
#define MESSAGE_TEXT_MAX 8192

#include <errno.h>
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

/* Copies text[0, len) into err->message, control characters escaped (\n,
 * \t, \x1b...: a message is one line, whatever names from a file it
 * quotes); when it does not fit, the middle gives way to "...", cut between
 * UTF-8 characters: the start (a path's beginning) and the end (the reason)
 * stay. */
static void set_message(rwkv_error *err, const char *text, size_t len) {
    char esc[4 * MESSAGE_TEXT_MAX + 1]; /* "\xHH" is the longest escape */
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < sizeof esc; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != 0x7f) esc[n++] = (char)c;
        else if (c == '\n' || c == '\t' || c == '\r') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else
            n += (size_t)snprintf(esc + n, sizeof esc - n, "\\x%02x", c);
    }
    esc[n] = '\0';
    const size_t cap = sizeof err->message;
    if (n < cap) {
        memcpy(err->message, esc, n + 1);
        return;
    }
    size_t head = (cap - 4) / 3, tail = cap - 4 - head;
    while (head > 0 && ((unsigned char)esc[head] & 0xC0) == 0x80) head--;
    size_t from = n - tail;
    while (from < n && ((unsigned char)esc[from] & 0xC0) == 0x80) from++;
    memcpy(err->message, esc, head);
    memcpy(err->message + head, "...", 3);
    memcpy(err->message + head + 3, esc + from, n - from + 1);
}

static void vfail(rwkv_error *err, rwkv_status code, const char *suffix, const char *fmt, va_list ap) {
    char text[MESSAGE_TEXT_MAX];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if (n < 0) text[0] = '\0';
    size_t sl = suffix ? strlen(suffix) : 0;
    if (suffix && len + 2 + sl < sizeof text) { /* a reason from strerror is short */
        memcpy(text + len, ": ", 2);
        memcpy(text + len + 2, suffix, sl + 1);
        len += 2 + sl;
    }
    set_message(err, text, len);
    err->code = code;
}

rwkv_status rwkv_fail(rwkv_error *err, rwkv_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vfail(err, code, NULL, fmt, ap);
        va_end(ap);
    }
    return code;
}

rwkv_status rwkv_fail_errno(rwkv_error *err, rwkv_status code, const char *fmt, ...) {
    int e = errno;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vfail(err, code, e ? strerror(e) : "unknown error", fmt, ap);
        va_end(ap);
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
    char tmp[MESSAGE_TEXT_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->message);
    set_message(err, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    return err->code;
}
