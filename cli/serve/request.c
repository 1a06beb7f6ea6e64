/* OpenAI request bodies -> jobs (serve/request.h). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_prompt.h"
#include "request.h"

#define MAX_STOPS 4 /* OpenAI's limit */

/* e->message made one line: its control characters written as escapes (\n,
 * \x1b...), as the library writes its own messages. A message may quote the
 * body: jansson's own, for a body that is not JSON, quotes the bytes near
 * the error, raw newlines included. */
static void one_line(request_error *e) {
    char out[sizeof e->message];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)e->message; *p && n + 5 < sizeof out; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            out[n++] = (char)*p;
        } else if (*p == '\n' || *p == '\t' || *p == '\r') {
            out[n++] = '\\';
            out[n++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
        } else {
            n += (size_t)snprintf(out + n, sizeof out - n, "\\x%02x", *p);
        }
    }
    out[n] = '\0';
    memcpy(e->message, out, n + 1);
}

static int bad(request_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(request_error *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    one_line(e);
    snprintf(e->param, sizeof e->param, "%s", param);
    return 400;
}

static int oom(request_error *e) {
    snprintf(e->message, sizeof e->message, "out of memory");
    e->param[0] = '\0';
    return 500;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* An optional number in [lo, hi] (null or absent: *out unchanged). */
static int get_number(json_t *body, const char *key, double lo, double hi, double *out, request_error *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(e, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return bad(e, key, "'%s' must be between %g and %g", key, lo, hi);
    *out = d;
    return 0;
}

/* An optional integer in [lo, hi]. */
static int get_int(json_t *body, const char *key, long long lo, long long hi, long long *out, request_error *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad(e, key, "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(e, key, "'%s' must be between %lld and %lld", key, lo, hi);
    *out = x;
    return 0;
}

static int get_bool(json_t *obj, const char *key, int *out, request_error *e) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad(e, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* Fields of the API this server does not implement: absent, null, false or
 * their neutral value only. */
static int refuse_unsupported(json_t *body, request_error *e) {
    static const char *const keys[] = {"logprobs", "top_logprobs", "echo", "suffix", "best_of", "tools",
                                       "functions", "logit_bias", "response_format"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_integer(v) && json_integer_value(v) == 0) &&
            !(json_is_object(v) && json_object_size(v) == 0))
            return bad(e, keys[i], "'%s' is not supported by this server", keys[i]);
    }
    long long n = 1;
    int rc = get_int(body, "n", 1, 1, &n, e);
    if (rc) snprintf(e->message, sizeof e->message, "'n' must be 1: one choice per request");
    return rc;
}

static int add_stop(job *j, const char *s, request_error *e) {
    if (!*s) return 0;
    if (j->n_stops >= JOB_MAX_STOPS) return bad(e, "stop", "too many stop strings");
    if (!(j->stops[j->n_stops] = strdup(s))) return oom(e);
    j->n_stops++;
    return 0;
}

static int parse_stops(json_t *body, job *j, request_error *e) {
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) return add_stop(j, json_string_value(v), e);
    if (!json_is_array(v) || json_array_size(v) > MAX_STOPS)
        return bad(e, "stop", "'stop' must be a string or an array of at most %d strings", MAX_STOPS);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) return bad(e, "stop", "'stop' must be a string or an array of strings");
        int rc = add_stop(j, json_string_value(s), e);
        if (rc) return rc;
    }
    return 0;
}

/* The sampling fields, by their OpenAI names, plus top_k and seed. */
static int parse_sampling(json_t *body, job *j, request_error *e) {
    static atomic_ullong counter;
    rwkv_sampler_params *p = &j->sampling;
    rwkv_sampler_params_default(p);
    p->temperature = 1.0;
    p->top_p = 1.0;
    p->alpha_presence = p->alpha_frequency = 0.0;
    p->alpha_decay = 1.0;     /* OpenAI's penalties count every earlier token fully */
    p->whitespace_exempt = 0; /* and every token alike */
    long long top_k = 0, seed = -1;
    int rc;
    if ((rc = get_number(body, "temperature", 0, 2, &p->temperature, e)) ||
        (rc = get_number(body, "top_p", 0, 1, &p->top_p, e)) ||
        (rc = get_number(body, "presence_penalty", -2, 2, &p->alpha_presence, e)) ||
        (rc = get_number(body, "frequency_penalty", -2, 2, &p->alpha_frequency, e)) ||
        (rc = get_int(body, "top_k", 0, 1 << 30, &top_k, e)) ||
        (rc = get_int(body, "seed", INT64_MIN, INT64_MAX, &seed, e)))
        return rc;
    p->top_k = (int)top_k;
    if (json_object_get(body, "seed") && !json_is_null(json_object_get(body, "seed"))) {
        j->seed = (uint64_t)seed;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        j->seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (atomic_fetch_add(&counter, 1) << 40);
    }
    return 0;
}

/* The text of a message's content (a string, or an array of text parts),
 * NUL bytes included: a client may send back a reply that held one. */
static int content_text(json_t *content, char **out, size_t *len, request_error *e) {
    *len = 0;
    if (!content || json_is_null(content)) return (*out = calloc(1, 1)) ? 0 : oom(e);
    json_t *one[1] = {content};
    size_t n_parts = json_is_string(content) ? 1 : json_is_array(content) ? json_array_size(content) : 0;
    if (!n_parts && !json_is_array(content))
        return bad(e, "messages", "a message's 'content' must be a string or an array");
    char *text = calloc(1, 1);
    for (size_t i = 0; text && i < n_parts; i++) {
        json_t *part = json_is_string(content) ? one[0] : json_array_get(content, i);
        json_t *type = json_object_get(part, "type"), *t = json_is_string(part) ? part : json_object_get(part, "text");
        if (!json_is_string(part) &&
            (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(t))) {
            free(text);
            return bad(e, "messages", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
        }
        size_t n = json_string_length(t);
        char *p = realloc(text, *len + n + 1);
        if (!p) break;
        memcpy(p + *len, json_string_value(t), n + 1);
        *len += n;
        text = p;
    }
    if (!text) return oom(e);
    *out = text;
    return 0;
}

/* messages -> prompt text in the chat format of the tokenizer. */
static int render_chat(json_t *body, const request_context *ctx, char **prompt, size_t *len, request_error *e) {
    json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(e, "messages", "'messages' must be a non-empty array");
    chat_names names = chat_names_for(rwkv_tokenizer_kind(ctx->tok));
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        json_t *role = json_object_get(m, "role");
        const char *r = json_is_string(role) ? json_string_value(role) : "";
        if (!json_is_object(m) || (strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "user") &&
                                   strcmp(r, "assistant")))
            return bad(e, "messages", "message %zu needs a 'role' of system, developer, user or assistant", i);
        char *text = NULL;
        size_t text_len;
        int rc = content_text(json_object_get(m, "content"), &text, &text_len, e);
        if (rc) return rc;
        rc = chat_prompt_add(prompt, len, &names, r, text, text_len);
        free(text);
        if (rc) return oom(e);
    }
    return chat_prompt_finish(prompt, len, &names) ? oom(e) : 0;
}

/* The prompt as token ids: chat messages rendered, or the completion's
 * "prompt" (a string, an array of one string, or an array of token ids). */
static int prompt_tokens(json_t *body, request_kind kind, const request_context *ctx, job *j, request_error *e) {
    char *text = NULL;
    size_t len = 0;
    json_t *p = json_object_get(body, "prompt");
    if (kind == REQ_CHAT) {
        int rc = render_chat(body, ctx, &text, &len, e);
        if (rc) {
            free(text);
            return rc;
        }
    } else if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) {
        size_t n = json_array_size(p), i;
        if (!(j->prompt = malloc(n * sizeof(int)))) return oom(e);
        json_t *v;
        json_array_foreach(p, i, v) {
            long long id = json_is_integer(v) ? json_integer_value(v) : -1;
            if (id < 0 || id >= ctx->n_vocab) return bad(e, "prompt", "token %zu of 'prompt' is not an id of the model", i);
            j->prompt[i] = (int)id;
        }
        j->n_prompt = n;
        return 0;
    } else {
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (!json_is_string(p))
            return bad(e, "prompt", "'prompt' must be a string, an array of one string, or an array of token ids");
        len = json_string_length(p);
        if (!(text = malloc(len + 1))) return oom(e);
        memcpy(text, json_string_value(p), len + 1);
    }
    rwkv_error err;
    rwkv_status s = rwkv_tokenize(ctx->tok, text ? text : "", len, &j->prompt, &j->n_prompt, &err);
    free(text);
    if (s != RWKV_OK) return bad(e, kind == REQ_CHAT ? "messages" : "prompt", "%s", err.message);
    for (size_t i = 0; i < j->n_prompt; i++)
        if (j->prompt[i] >= ctx->n_vocab)
            return bad(e, "prompt", "the tokenizer gave id %d, outside the model's vocabulary", j->prompt[i]);
    return 0;
}

static int parse_limits(json_t *body, const request_context *ctx, job *j, request_error *e) {
    const request_limits *lim = &ctx->limits;
    if (j->n_prompt == 0) return bad(e, "prompt", "the prompt is empty");
    if (j->n_prompt > lim->max_prompt_tokens)
        return bad(e, "prompt", "the prompt has %zu tokens; this server takes at most %zu", j->n_prompt,
                   lim->max_prompt_tokens);
    long long max_tokens = lim->max_tokens_cap;
    int rc;
    if ((rc = get_int(body, "max_tokens", 0, lim->max_tokens_cap, &max_tokens, e)) ||
        (rc = get_int(body, "max_completion_tokens", 0, lim->max_tokens_cap, &max_tokens, e)))
        return rc;
    j->max_tokens = (long)max_tokens;
    j->t_arrival = now_s();
    j->deadline = lim->timeout_s > 0 ? j->t_arrival + lim->timeout_s : 0;
    j->stop_at_eos = rwkv_tokenizer_eos(ctx->tok) >= 0;
    return 0;
}

static int parse_body(json_t *body, request_kind kind, const request_context *ctx, request *req, request_error *e) {
    job *j = req->j;
    json_t *model = json_object_get(body, "model"), *so = json_object_get(body, "stream_options");
    int rc;
    if (model && !json_is_null(model) && !json_is_string(model)) return bad(e, "model", "'model' must be a string");
    if ((rc = refuse_unsupported(body, e)) || (rc = get_bool(body, "stream", &req->stream, e))) return rc;
    if (so && !json_is_null(so) && !json_is_object(so))
        return bad(e, "stream_options", "'stream_options' must be an object");
    if (so && (rc = get_bool(so, "include_usage", &req->include_usage, e))) return rc;
    if ((rc = parse_sampling(body, j, e)) || (rc = parse_stops(body, j, e))) return rc;
    /* a chat reply ends where the model ends its turn: at a blank line */
    if (kind == REQ_CHAT && (rc = add_stop(j, "\n\n", e))) return rc;
    if ((rc = prompt_tokens(body, kind, ctx, j, e)) || (rc = parse_limits(body, ctx, j, e))) return rc;
    return 0;
}

int request_parse(const char *body, size_t len, request_kind kind, const request_context *ctx, request *req,
                  request_error *e) {
    memset(req, 0, sizeof *req);
    memset(e, 0, sizeof *e);
    req->kind = kind;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) return bad(e, "", "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return bad(e, "", "the body must be a JSON object");
    }
    if (!(req->j = job_new())) {
        json_decref(root);
        return oom(e);
    }
    int rc = parse_body(root, kind, ctx, req, e);
    json_decref(root);
    if (rc) {
        job_release(req->j);
        req->j = NULL;
    }
    return rc;
}
