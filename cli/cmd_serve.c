/* rwkv serve: an OpenAI-compatible HTTP server (docs/serve.md). The HTTP
 * side, the scheduler and the state cache live in cli/serve/. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rwkv_tokenizer.h"
#include "serve/server.h"

static const char about[] =
    "Serves the model over HTTP with the OpenAI API: POST /v1/completions, POST /v1/chat/completions\n"
    "(\"stream\": true for server-sent events), GET /v1/models, GET /health (503 while loading) and\n"
    "GET /metrics (Prometheus). Up to --parallel requests are decoded together, one batched step per\n"
    "token; the state at the end of every prompt and reply is cached, so a conversation's next turn\n"
    "feeds only its new tokens. The bound address is printed on stderr (--port 0: any free port).\n"
    "Stops on SIGINT or SIGTERM.\n";

typedef struct serve_opts {
    const char *model, *tok, *host, *api_key, *name, *device, *precision;
    int port, parallel, threads, max_queue, no_mmap;
    long cache_mb, max_body_kb, max_prompt, max_tokens;
    double timeout;
} serve_opts;

/* The model's name in responses: the file name without its folder. */
static const char *model_name(const serve_opts *o) {
    if (o->name) return o->name;
    const char *slash = strrchr(o->model, '/');
    return slash ? slash + 1 : o->model;
}

/* Loads the tokenizer and the model, starts the scheduler, opens the
 * server to requests and waits for SIGINT/SIGTERM. */
static int serve(const serve_opts *o, server *srv, const sigset_t *stop_signals) {
    rwkv_error err = {0};
    rwkv_tokenizer *tok = NULL;
    rwkv_model *m = NULL;
    scheduler *sch = NULL;
    int rc = 1;
    /* every step is a batched product: on the CPU the weights are packed once, at load */
    const rwkv_load_options lo = {
        .device = o->device, .precision = o->precision, .no_mmap = o->no_mmap, .pack_weights = 1};
    if (cli_tokenizer_for_model(o->tok, o->model, &tok, &err) != RWKV_OK ||
        rwkv_model_load_ex(o->model, &lo, &m, &err) != RWKV_OK)
        goto out;
    rwkv_model_set_threads(m, o->threads);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    scheduler_config sc = {m, tok, o->parallel, o->max_queue, (size_t)o->cache_mb << 20};
    if (scheduler_start(&sc, &sch, &err) != RWKV_OK) goto out;
    request_context ctx = {tok, info.n_vocab, {(size_t)o->max_prompt, o->max_tokens, o->timeout}};
    if (info.n_ctx && ctx.limits.max_prompt_tokens > (size_t)info.n_ctx) ctx.limits.max_prompt_tokens = (size_t)info.n_ctx;
    server_ready(srv, sch, &ctx);
    fprintf(stderr, "rwkv serve: ready (RWKV-%s, %d layers, %s tokenizer, %d parallel, state cache %ld MiB, on %s)\n",
            info.version, info.n_layer, rwkv_tokenizer_kind(tok), o->parallel, info.state_floats ? o->cache_mb : 0L,
            o->device ? o->device : "cpu");
    int sig;
    sigwait(stop_signals, &sig);
    fprintf(stderr, "rwkv serve: stopping (signal %d)\n", sig);
    rc = 0;
out:
    if (rc) cli_report(&err);
    server_quiesce(srv);
    scheduler_stop(sch);
    rwkv_model_free(m);
    rwkv_tokenizer_free(tok);
    return rc;
}

int cmd_serve(int argc, char **argv) {
    serve_opts o = {.host = "127.0.0.1", .port = 8080, .parallel = 8, .max_queue = 256,
                    .cache_mb = 256, .max_body_kb = 1024, .max_prompt = 16384, .max_tokens = 2048, .timeout = 600};
    cli_opt opts[] = {
        CLI_OPT_MODEL(&o.model, "checkpoint (any model `rwkv generate` runs)"),
        CLI_OPT_MODEL_TOKENIZER(&o.tok),
        CLI_OPT_DEVICE(&o.device),
        CLI_OPT_RUN_PRECISION(&o.precision),
        {"--host", 0, CLI_STR, &o.host, 0, 0, "ADDR", "address to listen on (IPv4 or IPv6)", NULL, NULL, NULL, NULL},
        {"--port", 0, CLI_INT, &o.port, 0, 65535, "N", "port; 0 = any free port", NULL, NULL, NULL, NULL},
        {"--parallel", 0, CLI_INT, &o.parallel, 1, 1024, "N", "requests decoded together", NULL, NULL, NULL, NULL},
        {"--api-key", 0, CLI_STR, &o.api_key, 0, 0, "KEY",
         "require \"Authorization: Bearer KEY\" on /v1/* (or set RWKV_API_KEY,\nwhich other users cannot read in the process list)",
         "", NULL, NULL, NULL},
        {"--state-cache-mb", 0, CLI_LONG, &o.cache_mb, 0, 1 << 20, "M", "state cache budget in MiB; 0 = off", NULL,
         NULL, NULL, NULL},
        CLI_OPT_NO_MMAP(&o.no_mmap),
        CLI_OPT_THREADS(&o.threads),
        {NULL, 0, CLI_SECTION, NULL, 0, 0, NULL, "limits per request", NULL, NULL, NULL, NULL},
        {"--max-body-kb", 0, CLI_LONG, &o.max_body_kb, 1, 1 << 20, "N", "request body size in KiB", NULL, NULL, NULL,
         NULL},
        {"--max-prompt-tokens", 0, CLI_LONG, &o.max_prompt, 1, 100000000, "N", "prompt tokens", NULL, NULL, NULL, NULL},
        {"--max-tokens", 'n', CLI_LONG, &o.max_tokens, 0, 100000000, "N",
         "the largest max_tokens a request may ask (also the default)", NULL, NULL, NULL, NULL},
        {"--timeout", 0, CLI_DOUBLE, &o.timeout, 0, 1e9, "S", "seconds a request may run; 0 = no limit", NULL, NULL,
         NULL, NULL},
        {"--max-queue", 0, CLI_INT, &o.max_queue, 1, 1 << 20, "N", "requests waiting for a slot (more: 503)", NULL,
         NULL, NULL, NULL},
        {"--name", 0, CLI_STR, &o.name, 0, 0, "NAME", "the model's name in responses", "the file name", NULL, NULL,
         NULL},
    };
    cli_spec spec = {"serve", "rwkv serve -m MODEL [--tokenizer FILE] [--host ADDR] [--port N] [options]", about, opts,
                     CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) goto done;
    if (!o.model) {
        rc = cli_usage_error("serve", "a model is required (-m MODEL)");
        goto done;
    }
    if (!o.api_key && getenv("RWKV_API_KEY") && *getenv("RWKV_API_KEY")) o.api_key = getenv("RWKV_API_KEY");
    /* SIGINT/SIGTERM are taken by sigwait in this thread only: every thread
     * started from here inherits the blocked mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    server_config cfg = {o.host, o.port, o.api_key, (size_t)o.max_body_kb << 10, model_name(&o)};
    server *srv;
    int port;
    char why[256];
    if (server_start(&cfg, &srv, &port, why, sizeof why) != 0) {
        fprintf(stderr, "rwkv: %s\n", why);
        rc = 1;
        goto done;
    }
    fprintf(stderr, "rwkv serve: listening on http://%s%s%s:%d (loading %s)\n", strchr(o.host, ':') ? "[" : "", o.host,
            strchr(o.host, ':') ? "]" : "", port, o.model);
    rc = serve(&o, srv, &stop_signals);
    server_free(srv);
done:
    cli_opts_free(&spec);
    return rc;
}
