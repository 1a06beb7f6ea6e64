/* OpenAI response bodies (serve/response.h), built with jansson. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "response.h"

void response_ids_make(response_ids *ids, request_kind kind, const char *model) {
    static atomic_ullong next = 1;
    snprintf(ids->id, sizeof ids->id, "%s-%llu", kind == REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_fetch_add(&next, 1));
    ids->created = (long long)time(NULL);
    ids->model = model;
}

static char *dump(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

static json_t *envelope(const response_ids *ids, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", ids->id, "object", object, "created", (json_int_t)ids->created,
                     "model", ids->model);
}

static json_t *usage(const job *j) {
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)j->n_prompt, "completion_tokens",
                     (json_int_t)j->completion_tokens, "total_tokens", (json_int_t)(j->n_prompt + j->completion_tokens),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)j->cached_tokens);
}

static json_t *reason(const char *r) { return r ? json_string(r) : json_null(); }

char *response_complete(const response_ids *ids, request_kind kind, const job *j) {
    json_t *root = envelope(ids, kind == REQ_CHAT ? "chat.completion" : "text_completion");
    json_t *text = json_stringn_nocheck(j->text ? j->text : "", j->len);
    json_t *choice = kind == REQ_CHAT
                         ? json_pack("{s:i, s:{s:s, s:o}, s:o}", "index", 0, "message", "role", "assistant", "content",
                                     text, "finish_reason", reason(j->finish_reason))
                         : json_pack("{s:o, s:i, s:n, s:o}", "text", text, "index", 0, "logprobs", "finish_reason",
                                     reason(j->finish_reason));
    if (!root || !choice) {
        json_decref(root);
        json_decref(choice);
        return NULL;
    }
    json_object_set_new(root, "choices", json_pack("[o]", choice));
    json_object_set_new(root, "usage", usage(j));
    return dump(root);
}

/* "data: JSON\n\n" around a body. */
static char *event(char *json) {
    if (!json) return NULL;
    size_t n = strlen(json);
    char *out = malloc(n + 9);
    if (out) snprintf(out, n + 9, "data: %s\n\n", json);
    free(json);
    return out;
}

char *response_chunk(const response_ids *ids, request_kind kind, const char *text, size_t len, int role,
                     const char *finish_reason) {
    json_t *root = envelope(ids, kind == REQ_CHAT ? "chat.completion.chunk" : "text_completion");
    json_t *choice;
    if (kind == REQ_CHAT) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (len || role) json_object_set_new(delta, "content", json_stringn_nocheck(text, len));
        choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason", reason(finish_reason));
    } else {
        choice = json_pack("{s:s%, s:i, s:n, s:o}", "text", len ? text : "", len, "index", 0, "logprobs",
                           "finish_reason", reason(finish_reason));
    }
    if (!root || !choice) {
        json_decref(root);
        json_decref(choice);
        return NULL;
    }
    json_object_set_new(root, "choices", json_pack("[o]", choice));
    return event(dump(root));
}

char *response_usage_chunk(const response_ids *ids, request_kind kind, const job *j) {
    json_t *root = envelope(ids, kind == REQ_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices", json_array());
    json_object_set_new(root, "usage", usage(j));
    return event(dump(root));
}

char *response_error(const char *message, const char *type, const char *param, const char *code) {
    json_t *err = json_pack("{s:s, s:s}", "message", message, "type", type);
    if (!err) return NULL;
    json_object_set_new(err, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    return dump(json_pack("{s:o}", "error", err));
}

char *response_models(const char *model, long long created) {
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id", model, "object", "model",
                          "created", (json_int_t)created, "owned_by", "rwkv.c"));
}
