/* The sampling flags of generate and chat and the sampler they configure. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_sampling_init(cli_sampling *s) {
    memset(s, 0, sizeof *s);
    rwkv_sampler_params_default(&s->p);
}

uint64_t cli_sampling_seed(cli_sampling *s) {
    if (!s->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        s->seed %= 1000000000000ull; /* short enough to retype */
        s->seed_set = 1;
    }
    return s->seed;
}

rwkv_status cli_sampler_new(cli_sampling *s, int n_vocab, rwkv_sampler **out, rwkv_error *err) {
    for (size_t i = 0; i < s->ban.n; i++)
        if (s->ban.v[i] >= n_vocab) {
            snprintf(err->message, sizeof err->message, "--ban %d is outside the model's vocabulary [0, %d)",
                     s->ban.v[i], n_vocab);
            return err->code = RWKV_ERR_ARG;
        }
    s->p.token_ban = s->ban.v;
    s->p.n_token_ban = s->ban.n;
    return rwkv_sampler_new(&s->p, cli_sampling_seed(s), out, err);
}
