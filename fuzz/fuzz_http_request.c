/* Fuzz target for the request bodies of `rwkv serve` (request_parse: POST
 * /v1/completions and /v1/chat/completions). The first input byte picks the
 * endpoint, the rest is the body; the byte-level tokenizer counts the
 * prompt. See fuzz/README.md. */
#include "fuzz_file.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rwkv_tokenizer *tok;
    if (!tok && rwkv_tokenizer_new_bytes(&tok, NULL) != RWKV_OK) abort();
    if (size == 0) return 0;
    request_context ctx = {tok, 256, {4096, 256, 30.0}};
    request_kind kind = data[0] & 1 ? REQ_CHAT : REQ_COMPLETION;
    char *body = fuzz_text(data + 1, size - 1);
    request req;
    request_error e;
    memset(&req, 0, sizeof req);
    int status = request_parse(body, size - 1, kind, &ctx, &req, &e);
    if (status == 0) {
        if (!req.j) abort();
        job_release(req.j);
    } else if ((status != 400 && status != 500) || !e.message[0] || strchr(e.message, '\n')) {
        abort();
    }
    free(body);
    return 0;
}
