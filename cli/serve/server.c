/* The HTTP side of `rwkv serve` (serve/server.h). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "chat_page.h"
#include "metrics.h"
#include "response.h"
#include "server.h"

#define WAKE_S 0.1 /* how often a waiting connection checks that its client is still there */

struct server {
    server_config cfg;
    struct MHD_Daemon *d;
    scheduler *sch;
    request_context ctx;
    atomic_int ready, stopping;
    long long started;
};

/* One connection's request: its body as it arrives. */
typedef struct conn_ctx {
    char *body;
    size_t len;
    int too_big;
} conn_ctx;

/* ---- responses ------------------------------------------------------------------ */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body, const char *type) {
    if (!body) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        if (!body) return MHD_NO;
    }
    if (status >= 400) metrics_add(M_REQUEST_ERRORS, 1);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *body) {
    return send_body(c, status, body, "application/json");
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *message, const char *param) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401 ? "invalid_api_key" : NULL;
    return send_json(c, status, response_error(message, type, param, code));
}

/* ---- checks --------------------------------------------------------------------- */

/* Compares in time that depends only on the key's length, never on how
 * much of it a guess got right. */
static int key_matches(const char *given, const char *key) {
    size_t gl = strlen(given), kl = strlen(key);
    unsigned diff = gl != kl;
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

static int authorized(const server *s, struct MHD_Connection *c) {
    if (!s->cfg.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    return key_matches(h + 7, s->cfg.api_key);
}

/* The client closed its end (a read would return end of file). */
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 1;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
}

/* ---- streaming ------------------------------------------------------------------ */

typedef struct stream {
    server *s;
    struct MHD_Connection *c;
    request req;
    response_ids ids;
    size_t seen;    /* reply bytes already sent */
    int role_sent, ended;
    char *pending;  /* events not yet handed to the connection */
    size_t pend_len, pend_off;
} stream;

static void stream_set(stream *st, char *events) {
    free(st->pending);
    st->pending = events;
    st->pend_len = events ? strlen(events) : 0;
    st->pend_off = 0;
}

/* The events that close a stream: the last chunk (or an error event), the
 * usage chunk when asked, then [DONE]. Called with the job's mutex held. */
static char *final_events(stream *st) {
    const job *j = st->req.j;
    char *last = j->error_status ? response_error(j->error, "server_error", NULL, NULL)
                                 : response_chunk(&st->ids, st->req.kind, "", 0, 0, j->finish_reason);
    char *usage = !j->error_status && st->req.include_usage ? response_usage_chunk(&st->ids, st->req.kind, j) : NULL;
    size_t n = (last ? strlen(last) : 0) + (usage ? strlen(usage) : 0) + 32;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s%s%sdata: [DONE]\n\n", j->error_status ? "data: " : "", last ? last : "",
                 j->error_status ? "\n\n" : "", usage ? usage : "");
    free(last);
    free(usage);
    return out;
}

/* Waits for the job's next output and turns it into events; 0 when there
 * is nothing yet, -1 when the stream must end (client gone, shutdown). */
static int next_events(stream *st) {
    job *j = st->req.j;
    if (st->req.kind == REQ_CHAT && !st->role_sent) {
        st->role_sent = 1;
        stream_set(st, response_chunk(&st->ids, st->req.kind, "", 0, 1, NULL));
        return st->pending ? 1 : -1;
    }
    job_wait_locked(j, st->seen, WAKE_S);
    char *ev = NULL;
    if (j->len > st->seen) {
        ev = response_chunk(&st->ids, st->req.kind, j->text + st->seen, j->len - st->seen, 0, NULL);
        st->seen = j->len;
    } else if (j->finished) {
        ev = final_events(st);
        st->ended = 1;
    }
    pthread_mutex_unlock(&j->mu);
    if (ev) {
        stream_set(st, ev);
        return 1;
    }
    if (st->ended) return -1; /* out of memory for the last events */
    return atomic_load(&st->s->stopping) || client_gone(st->c) ? -1 : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->pend_off >= st->pend_len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        int r = next_events(st);
        if (r < 0) return st->ended ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->pend_len - st->pend_off < max ? st->pend_len - st->pend_off : max;
    memcpy(buf, st->pending + st->pend_off, n);
    st->pend_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    atomic_store(&st->req.j->cancelled, 1); /* a no-op for a finished job */
    job_release(st->req.j);
    free(st->pending);
    free(st);
}

static enum MHD_Result start_stream(server *s, struct MHD_Connection *c, request *req) {
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        atomic_store(&req->j->cancelled, 1);
        job_release(req->j);
        return send_error(c, 500, "out of memory", NULL);
    }
    st->s = s;
    st->c = c;
    st->req = *req;
    response_ids_make(&st->ids, req->kind, s->cfg.model_name);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- generation requests -------------------------------------------------------- */

/* A whole (non-streamed) reply: waits in this connection's thread. */
static enum MHD_Result wait_whole(server *s, struct MHD_Connection *c, request *req) {
    job *j = req->j;
    for (;;) {
        job_wait_locked(j, SIZE_MAX, WAKE_S);
        int done = j->finished;
        pthread_mutex_unlock(&j->mu);
        if (done) break;
        if (atomic_load(&s->stopping) || client_gone(c)) {
            atomic_store(&j->cancelled, 1);
            job_release(j);
            return MHD_NO;
        }
    }
    response_ids ids;
    response_ids_make(&ids, req->kind, s->cfg.model_name);
    enum MHD_Result ok = j->error_status ? send_error(c, (unsigned)j->error_status, j->error, NULL)
                                         : send_json(c, MHD_HTTP_OK, response_complete(&ids, req->kind, j));
    job_release(j);
    return ok;
}

static enum MHD_Result generate(server *s, struct MHD_Connection *c, conn_ctx *cc, request_kind kind) {
    if (!atomic_load(&s->ready)) return send_error(c, 503, "the model is still loading", NULL);
    if (cc->too_big) return send_error(c, 413, "the request body is too large", NULL);
    request req;
    request_error e;
    int status = request_parse(cc->body ? cc->body : "", cc->len, kind, &s->ctx, &req, &e);
    if (status) return send_error(c, (unsigned)status, e.message, e.param);
    if (scheduler_submit(s->sch, req.j) != 0) {
        job_release(req.j);
        return send_error(c, 503, "the server is busy: too many queued requests", NULL);
    }
    return req.stream ? start_stream(s, c, &req) : wait_whole(s, c, &req);
}

/* ---- routes --------------------------------------------------------------------- */

static enum MHD_Result route(server *s, struct MHD_Connection *c, const char *url, const char *method,
                             conn_ctx *cc) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    int is_v1 = !strncmp(url, "/v1/", 4);
    if (!strcmp(url, "/health") && get)
        return atomic_load(&s->ready) ? send_json(c, 200, strdup("{\"status\":\"ok\"}"))
                                      : send_json(c, 503, strdup("{\"status\":\"loading\"}"));
    if (!strcmp(url, "/") && get) return send_body(c, 200, strdup(chat_page_html), "text/html; charset=utf-8");
    if (!strcmp(url, "/metrics") && get) {
        size_t n;
        return send_body(c, 200, metrics_text(&n), "text/plain; version=0.0.4");
    }
    if (is_v1 && !authorized(s, c)) return send_error(c, 401, "a valid API key is required (Authorization: Bearer KEY)", NULL);
    if (!strcmp(url, "/v1/models") && get) return send_json(c, 200, response_models(s->cfg.model_name, s->started));
    if (!strcmp(url, "/v1/completions") && post) return generate(s, c, cc, REQ_COMPLETION);
    if (!strcmp(url, "/v1/chat/completions") && post) return generate(s, c, cc, REQ_CHAT);
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/v1/completions") || !strcmp(url, "/v1/chat/completions") ||
        !strcmp(url, "/health") || !strcmp(url, "/metrics"))
        return send_error(c, 405, "method not allowed", NULL);
    return send_error(c, 404, "no such endpoint", NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc))) return MHD_NO;
        *con_cls = cc;
        metrics_add(M_REQUESTS, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->len + *upload_size > s->cfg.max_body) cc->too_big = 1;
        char *p = cc->too_big ? NULL : realloc(cc->body, cc->len + *upload_size + 1);
        if (p) {
            memcpy(p + cc->len, upload, *upload_size);
            cc->len += *upload_size;
            p[cc->len] = '\0';
            cc->body = p;
        } else {
            cc->too_big = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, cc);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    free(cc->body);
    free(cc);
    *con_cls = NULL;
}

/* ---- life cycle ----------------------------------------------------------------- */

int server_start(const server_config *cfg, server **out, int *port, char *why, size_t why_size) {
    server *s = calloc(1, sizeof *s);
    if (!s) return snprintf(why, why_size, "out of memory"), -1;
    s->cfg = *cfg;
    s->started = (long long)time(NULL);
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)cfg->port)};
    int v6 = strchr(cfg->host, ':') != NULL;
    if ((v6 ? inet_pton(AF_INET6, cfg->host, &a6.sin6_addr) : inet_pton(AF_INET, cfg->host, &a4.sin_addr)) != 1) {
        free(s);
        return snprintf(why, why_size, "--host %s is not an IPv4 or IPv6 address", cfg->host), -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                            v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, MHD_OPTION_NOTIFY_COMPLETED,
                            completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)1024, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return snprintf(why, why_size, "cannot listen on %s port %d (in use, or not allowed)", cfg->host, cfg->port),
               -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : cfg->port;
    *out = s;
    return 0;
}

void server_ready(server *s, scheduler *sch, const request_context *ctx) {
    s->sch = sch;
    s->ctx = *ctx;
    atomic_store(&s->ready, 1);
}

void server_quiesce(server *s) {
    atomic_store(&s->stopping, 1);
    MHD_stop_daemon(s->d);
    s->d = NULL;
}

void server_free(server *s) { free(s); }
