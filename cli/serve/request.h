/* OpenAI request bodies -> jobs (POST /v1/completions and
 * /v1/chat/completions). Every field is checked for its type and range; a
 * bad body is a 400 with a message naming the field. Fields of the OpenAI
 * API this server does not implement (n > 1, logprobs, tools, ...) are
 * refused rather than ignored; unknown fields are ignored. */
#ifndef RWKV_SERVE_REQUEST_H
#define RWKV_SERVE_REQUEST_H

#include <stddef.h>

#include "job.h"
#include "rwkv_tokenizer.h"

typedef enum request_kind { REQ_COMPLETION, REQ_CHAT } request_kind;

typedef struct request_limits {
    size_t max_prompt_tokens; /* longer prompts are refused */
    long max_tokens_cap;      /* max_tokens may not exceed it; also the default */
    double timeout_s;         /* per request; 0: none */
} request_limits;

typedef struct request_context {
    const rwkv_tokenizer *tok;
    int n_vocab;  /* the model's: token ids must be below it */
    request_limits limits;
} request_context;

typedef struct request {
    request_kind kind;
    int stream, include_usage;
    job *j; /* owned (one reference) after a successful parse */
} request;

/* A client error: the message and the field at fault (param may be ""). */
typedef struct request_error {
    char message[256];
    char param[64];
} request_error;

/* Parses a JSON body into req (req->j made and filled). Returns 0, or the
 * HTTP status of the error (400; 500 when out of memory) with e filled. */
int request_parse(const char *body, size_t len, request_kind kind, const request_context *ctx, request *req,
                  request_error *e);

#endif
