/* The HTTP side of `rwkv serve` (libmicrohttpd, one thread per connection):
 * routes, limits, the API key, request bodies -> jobs for the scheduler,
 * and jobs -> JSON bodies or server-sent events. See docs/serve.md. */
#ifndef RWKV_SERVE_SERVER_H
#define RWKV_SERVE_SERVER_H

#include <stddef.h>

#include "request.h"
#include "scheduler.h"

typedef struct server server;

typedef struct server_config {
    const char *host;     /* an IPv4 or IPv6 address to bind */
    int port;             /* 0: any free port */
    const char *api_key;  /* NULL: no key required */
    size_t max_body;      /* bytes of a request body */
    const char *model_name;
} server_config;

/* Listens; GET /health answers 503 until server_ready. *port receives the
 * port bound. Returns 0, or -1 with a message in why. */
int server_start(const server_config *cfg, server **out, int *port, char *why, size_t why_size);
/* The model is loaded: requests go to sch, parsed with ctx. */
void server_ready(server *s, scheduler *sch, const request_context *ctx);
/* Stops accepting requests and ends the open streams (call before scheduler_stop),
 * then server_free once the scheduler has stopped. */
void server_quiesce(server *s);
void server_free(server *s);

#endif
