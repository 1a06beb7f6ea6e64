/* OpenAI response bodies: whole completions, server-sent-event chunks,
 * error objects and the model list. Every function returns a malloc'd,
 * NUL-terminated string (NULL: out of memory); text may be any bytes (the
 * JSON encoder replaces nothing: replies are valid UTF-8 by construction). */
#ifndef RWKV_SERVE_RESPONSE_H
#define RWKV_SERVE_RESPONSE_H

#include <stddef.h>

#include "request.h"

/* What every response of one request shares. */
typedef struct response_ids {
    char id[48];        /* "cmpl-N" / "chatcmpl-N" */
    long long created;  /* Unix seconds */
    const char *model;  /* the name the server reports */
} response_ids;

void response_ids_make(response_ids *ids, request_kind kind, const char *model);

/* The finished job as one JSON body (choices[0] and usage). */
char *response_complete(const response_ids *ids, request_kind kind, const job *j);
/* One "data: {...}\n\n" event of a stream: a piece of text; with role set
 * (chat), the first chunk announcing the assistant; with finish_reason, the
 * last chunk of the choice. */
char *response_chunk(const response_ids *ids, request_kind kind, const char *text, size_t len, int role,
                     const char *finish_reason);
/* The usage chunk (stream_options.include_usage): choices [] and usage. */
char *response_usage_chunk(const response_ids *ids, request_kind kind, const job *j);
/* {"error": {"message", "type", "param", "code"}}. */
char *response_error(const char *message, const char *type, const char *param, const char *code);
/* GET /v1/models. */
char *response_models(const char *model, long long created);

#endif
