/* recall_probe: the synthetic long-range recall probe of docs/results.md
 * (include/rwkv_recall.h).
 *
 *   recall_probe gen --out FILE [--bytes N] [--dmin D] [--dmax D] [--log-uniform 0|1] [--seed S] [spec]
 *       writes a byte-level training text of recall examples (distances
 *       uniform in [dmin, dmax], or log-uniform)
 *   recall_probe eval --arch rwkv4|gpt --model FILE --distances D1,D2,... [--examples N]
 *                     [--seed S] [--threads T] [spec]
 *       scores a trained model: for every distance, N fresh examples (the
 *       same ones for every model with the same seed); prints
 *       "distance  example_bytes  queries  correct  accuracy" rows. A GPT
 *       cannot take an example longer than its context: such rows say "n/a".
 *   spec: --pairs P (6) --value-len K (1) --queries Q (P)
 *
 * Uses only the public API (rwkv.h, rwkv_gpt.h, rwkv_recall.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rwkv.h"
#include "rwkv_gpt.h"
#include "rwkv_recall.h"

static void usage(FILE *f) {
    fprintf(f, "usage: recall_probe gen --out FILE [--bytes N] [--dmin D] [--dmax D] [--log-uniform 0|1] [--seed S]\n"
               "                        [spec]\n"
               "       recall_probe eval --arch rwkv4|gpt --model FILE --distances D1,D2,... [--examples N]\n"
               "                         [--seed S] [--threads T] [spec]\n"
               "spec: --pairs P (6) --value-len K (1) --queries Q (= P)\n");
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "recall_probe: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "gen") && strcmp(cmd, "eval")) {
        fprintf(stderr, "recall_probe: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    const char *out = NULL, *arch = NULL, *model = NULL, *distances = NULL;
    long bytes = 1000000, dmin = 0, dmax = 128, seed = 1, examples = 100, threads = 0, pairs = 6, value_len = 1,
         queries = 0, log_uniform = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "recall_probe: %s expects a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--distances")) distances = v;
        else if (!strcmp(a, "--bytes")) bad = parse_long(a, v, 1, 1L << 32, &bytes);
        else if (!strcmp(a, "--dmin")) bad = parse_long(a, v, 0, 1 << 24, &dmin);
        else if (!strcmp(a, "--dmax")) bad = parse_long(a, v, 0, 1 << 24, &dmax);
        else if (!strcmp(a, "--log-uniform")) bad = parse_long(a, v, 0, 1, &log_uniform);
        else if (!strcmp(a, "--seed")) bad = parse_long(a, v, 0, 0x7fffffffffffffffL, &seed);
        else if (!strcmp(a, "--examples")) bad = parse_long(a, v, 1, 1 << 24, &examples);
        else if (!strcmp(a, "--threads")) bad = parse_long(a, v, 0, 4096, &threads);
        else if (!strcmp(a, "--pairs")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_PAIRS, &pairs);
        else if (!strcmp(a, "--value-len")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_VALUE, &value_len);
        else if (!strcmp(a, "--queries")) bad = parse_long(a, v, 0, RWKV_RECALL_MAX_PAIRS, &queries);
        else {
            fprintf(stderr, "recall_probe: unknown option '%s'\n", a);
            return 2;
        }
        if (bad) return 2;
    }
    rwkv_error err;
    rwkv_recall_spec spec = {(int)pairs, (int)value_len, (int)queries};
    if (rwkv_recall_spec_check(&spec, &err) != RWKV_OK) {
        fprintf(stderr, "recall_probe: %s\n", err.message);
        return 2;
    }

    if (!strcmp(cmd, "gen")) {
        if (!out) {
            fprintf(stderr, "recall_probe gen: --out FILE is required\n");
            return 2;
        }
        if (rwkv_recall_write_corpus(out, &spec, (size_t)bytes, (int)dmin, (int)dmax, (int)log_uniform, (uint64_t)seed,
                                     &err)) {
            fprintf(stderr, "recall_probe: %s\n", err.message);
            return 1;
        }
        return 0;
    }

    /* eval */
    if (!arch || !model || !distances || (strcmp(arch, "rwkv4") && strcmp(arch, "gpt"))) {
        fprintf(stderr, "recall_probe eval: --arch rwkv4|gpt, --model FILE and --distances are required\n");
        return 2;
    }
    long dist[64];
    int n_dist = 0;
    for (const char *p = distances; *p && n_dist < 64;) {
        char *end;
        errno = 0;
        long d = strtol(p, &end, 10);
        if (errno || end == p || d < 0 || d > (1 << 24) || (*end && *end != ',')) {
            fprintf(stderr, "recall_probe: --distances expects comma-separated integers, got '%s'\n", distances);
            return 2;
        }
        dist[n_dist++] = d;
        p = *end ? end + 1 : end;
    }
    const int is_gpt = !strcmp(arch, "gpt");
    rwkv_model *m = NULL;
    rwkv_state *st = NULL;
    rwkv_gpt *g = NULL;
    int V = 0, n_ctx = 0;
    rwkv_status s;
    if (is_gpt) {
        s = rwkv_gpt_load(model, &g, &err);
        if (s == RWKV_OK) {
            rwkv_gpt_info gi;
            rwkv_gpt_get_info(g, &gi);
            V = gi.n_vocab;
            n_ctx = gi.n_ctx;
            if (threads > 0) rwkv_gpt_set_threads(g, (int)threads);
        }
    } else {
        s = rwkv_model_load(model, &m, &err);
        if (s == RWKV_OK) s = rwkv_state_new(m, &st, &err);
        if (s == RWKV_OK) {
            rwkv_model_info mi;
            rwkv_model_get_info(m, &mi);
            V = mi.n_vocab;
            if (threads > 0) rwkv_model_set_threads(m, (int)threads);
        }
    }
    if (s == RWKV_OK && V < 128) {
        snprintf(err.message, sizeof err.message, "%s: vocabulary %d; the probe needs a byte-level model", model, V);
        s = RWKV_ERR_SHAPE;
    }
    if (s != RWKV_OK) {
        fprintf(stderr, "recall_probe: %s\n", err.message);
        rwkv_gpt_free(g);
        rwkv_state_free(st);
        rwkv_model_free(m);
        return 1;
    }
    printf("distance\texample_bytes\tqueries\tcorrect\taccuracy\n");
    for (int di = 0; di < n_dist && s == RWKV_OK; di++) {
        const int D = (int)dist[di];
        const size_t len = rwkv_recall_example_len(&spec, D);
        if (is_gpt && len > (size_t)n_ctx) {
            printf("%d\t%zu\tn/a\tn/a\tn/a\n", D, len);
            continue;
        }
        char *text = malloc(len);
        int *tokens = malloc(sizeof(int) * len);
        float *logits = malloc(sizeof(float) * len * (size_t)V);
        if (!text || !tokens || !logits) {
            fprintf(stderr, "recall_probe: out of memory\n");
            free(text), free(tokens), free(logits);
            s = RWKV_ERR_NOMEM;
            break;
        }
        rwkv_recall_rng rng;
        /* the examples of one distance depend only on the seed and the distance */
        rwkv_recall_seed(&rng, (uint64_t)seed * 1000003u + (uint64_t)D);
        long n_q = 0, n_ok = 0;
        for (long e = 0; e < examples && s == RWKV_OK; e++) {
            rwkv_recall_answers ans;
            rwkv_recall_example(&spec, &rng, D, text, len, &ans);
            for (size_t i = 0; i < len; i++) tokens[i] = (unsigned char)text[i];
            if (is_gpt) {
                s = rwkv_gpt_forward(g, tokens, len, logits, &err);
            } else {
                rwkv_state_reset(st);
                s = rwkv_eval_sequence(m, st, tokens, len, logits, 1, &err);
            }
            if (s != RWKV_OK) break;
            n_ok += rwkv_recall_score(&spec, text, len, &ans, logits, V);
            n_q += ans.n;
        }
        if (s == RWKV_OK)
            printf("%d\t%zu\t%ld\t%ld\t%.4f\n", D, len, n_q, n_ok, n_q ? (double)n_ok / (double)n_q : 0.0);
        else
            fprintf(stderr, "recall_probe: %s\n", err.message);
        fflush(stdout);
        free(text), free(tokens), free(logits);
    }
    rwkv_gpt_free(g);
    rwkv_state_free(st);
    rwkv_model_free(m);
    return s == RWKV_OK ? 0 : 1;
}
