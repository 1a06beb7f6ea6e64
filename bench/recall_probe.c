/* recall_probe: the synthetic recall probe of docs/results.md
 * (include/rwkv_recall.h: multi-query associative recall).
 *
 *   recall_probe gen --out FILE [--tokens N] [--pairs-min P] [--pairs-max P] [spec] [--seed S]
 *       writes a training token file of examples, each with its number of
 *       pairs drawn uniformly from [pairs-min, pairs-max]
 *   recall_probe eval --arch rwkv4|gpt --model FILE --pairs P1,P2,... [spec] [--examples N]
 *                     [--lead L] [--seed S] [--threads T]
 *       scores a trained model: for every number of pairs, N fresh examples
 *       (the same ones for every model with the same seed), each run after L
 *       other examples of the same size, from a fresh state at position 0;
 *       prints "pairs  tokens  queries  correct  accuracy  unbound" rows
 *       (tokens: of the whole input; unbound: the accuracy of the best model
 *       that knows which values occurred but not which key holds which,
 *       rwkv_recall_unbound_score). A GPT cannot take an input longer than
 *       its context: such rows say "n/a".
 *   recall_probe show [--pairs P] [spec] [--examples N] [--seed S]
 *       prints examples as text
 *   spec: --keys K (256) --values V (10) --queries Q (0: every pair) --echo 0|1 (1)
 *         --question-first 0|1 (0; 1: the queried keys are announced before the pairs)
 *
 * Uses only the public API (rwkv.h, rwkv_recall.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rwkv.h"
#include "rwkv_recall.h"

static void usage(FILE *f) {
    fprintf(f, "usage: recall_probe gen --out FILE [--tokens N] [--pairs-min P] [--pairs-max P] [spec] [--seed S]\n"
               "       recall_probe eval --arch rwkv4|gpt --model FILE --pairs P1,P2,... [spec] [--examples N]\n"
               "                         [--lead L] [--seed S] [--threads T]\n"
               "       recall_probe show [--pairs P] [spec] [--examples N] [--seed S]\n"
               "spec: --keys K (256) --values V (10) --queries Q (0: every pair) --echo 0|1 (1)\n"
               "      --question-first 0|1 (0: the queried keys are announced before the pairs)\n"
               "defaults: --tokens 1000000 --pairs-min 1 --pairs-max 8 --examples 100 (show: 3) --lead 0 --seed 1\n");
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

/* a comma-separated list of integers in [lo, hi]; returns the count, -1 when malformed */
static int parse_list(const char *opt, const char *v, long lo, long hi, long *out, int cap) {
    int n = 0;
    for (const char *p = v;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < lo || x > hi || (*end && *end != ',') || n == cap) {
            fprintf(stderr, "recall_probe: %s expects up to %d comma-separated integers in [%ld, %ld], got '%s'\n",
                    opt, cap, lo, hi, v);
            return -1;
        }
        out[n++] = x;
        if (!*end) return n;
        p = end + 1;
    }
}

#define MAX_LIST 64

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    const int is_gen = !strcmp(cmd, "gen"), is_eval = !strcmp(cmd, "eval"), is_show = !strcmp(cmd, "show");
    if (!is_gen && !is_eval && !is_show) {
        fprintf(stderr, "recall_probe: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    const char *out = NULL, *arch = NULL, *model = NULL;
    long n_tokens = 1000000, pmin = 1, pmax = 8, seed = 1, examples = is_show ? 3 : 100, threads = 0, lead = 0;
    rwkv_recall_spec spec = rwkv_recall_spec_default();
    long keys = spec.n_keys, values = spec.n_values, queries = 0, echo = spec.echo, qfirst = 0;
    long pairs[MAX_LIST] = {spec.n_pairs};
    int n_pairs = is_show ? 1 : 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "recall_probe: %s expects a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        /* options of every command, then those of one */
        if (!strcmp(a, "--seed")) bad = parse_long(a, v, 0, 0x7fffffffffffffffL, &seed);
        else if (!strcmp(a, "--keys")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_KEYS, &keys);
        else if (!strcmp(a, "--values")) bad = parse_long(a, v, 2, RWKV_RECALL_MAX_VALUES, &values);
        else if (!strcmp(a, "--queries")) bad = parse_long(a, v, 0, RWKV_RECALL_MAX_KEYS, &queries);
        else if (!strcmp(a, "--echo")) bad = parse_long(a, v, 0, 1, &echo);
        else if (!strcmp(a, "--question-first")) bad = parse_long(a, v, 0, 1, &qfirst);
        else if (is_gen && !strcmp(a, "--out")) out = v;
        else if (is_gen && !strcmp(a, "--tokens")) bad = parse_long(a, v, 1, 1L << 32, &n_tokens);
        else if (is_gen && !strcmp(a, "--pairs-min")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_KEYS, &pmin);
        else if (is_gen && !strcmp(a, "--pairs-max")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_KEYS, &pmax);
        else if (is_show && !strcmp(a, "--pairs")) bad = parse_long(a, v, 1, RWKV_RECALL_MAX_KEYS, &pairs[0]);
        else if (is_eval && !strcmp(a, "--pairs"))
            bad = (n_pairs = parse_list(a, v, 1, RWKV_RECALL_MAX_KEYS, pairs, MAX_LIST)) < 0;
        else if (!is_gen && !strcmp(a, "--examples")) bad = parse_long(a, v, 1, 1 << 24, &examples);
        else if (is_eval && !strcmp(a, "--arch")) arch = v;
        else if (is_eval && !strcmp(a, "--model")) model = v;
        else if (is_eval && !strcmp(a, "--lead")) bad = parse_long(a, v, 0, 1024, &lead);
        else if (is_eval && !strcmp(a, "--threads")) bad = parse_long(a, v, 0, 4096, &threads);
        else {
            fprintf(stderr, "recall_probe %s: unknown option '%s'\n", cmd, a);
            return 2;
        }
        if (bad) return 2;
    }
    rwkv_error err;
    spec.n_keys = (int)keys;
    spec.n_values = (int)values;
    spec.n_queries = (int)queries;
    spec.echo = (int)echo;
    spec.question_first = (int)qfirst;

    if (is_gen) {
        if (!out) {
            fprintf(stderr, "recall_probe gen: --out FILE is required\n");
            return 2;
        }
        rwkv_status s = rwkv_recall_write_corpus(out, &spec, (int)pmin, (int)pmax, (size_t)n_tokens, (uint64_t)seed, &err);
        if (s != RWKV_OK) {
            fprintf(stderr, "recall_probe: %s\n", err.message);
            return s == RWKV_ERR_ARG ? 2 : 1;
        }
        return 0;
    }

    /* the specs of the rows (eval) or of the examples (show) */
    for (int i = 0; i < n_pairs; i++) {
        rwkv_recall_spec e = spec;
        e.n_pairs = (int)pairs[i];
        if (e.n_queries > e.n_pairs) e.n_queries = e.n_pairs;
        if (rwkv_recall_spec_check(&e, &err) != RWKV_OK) {
            fprintf(stderr, "recall_probe: %s\n", err.message);
            return 2;
        }
    }

    if (is_show) {
        rwkv_recall_spec e = spec;
        e.n_pairs = (int)pairs[0];
        if (e.n_queries > e.n_pairs) e.n_queries = e.n_pairs;
        const size_t len = rwkv_recall_example_len(&e);
        int *tokens = malloc(sizeof(int) * len);
        char *text = malloc(len * 16 + 1);
        if (!tokens || !text) {
            free(tokens), free(text);
            fprintf(stderr, "recall_probe: out of memory\n");
            return 1;
        }
        rwkv_recall_rng rng;
        rwkv_recall_seed(&rng, (uint64_t)seed);
        for (long x = 0; x < examples; x++) {
            rwkv_recall_example(&e, &rng, tokens, len, NULL);
            rwkv_recall_render(&e, tokens, len, text, len * 16 + 1);
            printf("%s\n", text);
        }
        free(tokens), free(text);
        return 0;
    }

    /* eval */
    if (!arch || !model || !n_pairs || (strcmp(arch, "rwkv4") && strcmp(arch, "gpt"))) {
        fprintf(stderr, "recall_probe eval: --arch rwkv4|gpt, --model FILE and --pairs are required\n");
        return 2;
    }
    const int is_gpt = !strcmp(arch, "gpt");
    rwkv_model *m = NULL;
    rwkv_state *st = NULL;
    int V = 0, n_ctx = 0;
    rwkv_status s = rwkv_model_load(model, &m, &err);
    if (s == RWKV_OK) s = rwkv_state_new(m, &st, &err);
    if (s == RWKV_OK) {
        rwkv_model_info mi;
        rwkv_model_get_info(m, &mi);
        V = mi.n_vocab;
        n_ctx = mi.n_ctx;
        if ((mi.arch == RWKV_ARCH_GPT) != is_gpt) {
            snprintf(err.message, sizeof err.message, "%s is not an --arch %s checkpoint", model, arch);
            s = RWKV_ERR_ARG;
        }
        if (threads > 0) rwkv_model_set_threads(m, (int)threads);
    }
    if (s == RWKV_OK && V != rwkv_recall_vocab(&spec)) {
        snprintf(err.message, sizeof err.message,
                 "%s: vocabulary %d, but --keys %d --values %d make %d tokens: train and score with the same spec",
                 model, V, spec.n_keys, spec.n_values, rwkv_recall_vocab(&spec));
        s = RWKV_ERR_SHAPE;
    }
    if (s != RWKV_OK) {
        fprintf(stderr, "recall_probe: %s\n", err.message);
        rwkv_state_free(st);
        rwkv_model_free(m);
        return 1;
    }
    printf("pairs\ttokens\tqueries\tcorrect\taccuracy\tunbound\n");
    for (int pi = 0; pi < n_pairs && s == RWKV_OK; pi++) {
        rwkv_recall_spec e = spec;
        e.n_pairs = (int)pairs[pi];
        if (e.n_queries > e.n_pairs) e.n_queries = e.n_pairs;
        const size_t one = rwkv_recall_example_len(&e), len = one * (size_t)(lead + 1);
        if (n_ctx && len > (size_t)n_ctx) {
            printf("%d\t%zu\tn/a\tn/a\tn/a\tn/a\n", e.n_pairs, len);
            continue;
        }
        int *tokens = malloc(sizeof(int) * len);
        float *logits = malloc(sizeof(float) * len * (size_t)V);
        if (!tokens || !logits) {
            fprintf(stderr, "recall_probe: out of memory\n");
            free(tokens), free(logits);
            s = RWKV_ERR_NOMEM;
            break;
        }
        rwkv_recall_rng rng;
        /* the examples of one row depend only on the seed and the number of pairs */
        rwkv_recall_seed(&rng, (uint64_t)seed * 1000003u + (uint64_t)e.n_pairs);
        long n_q = 0, n_ok = 0;
        double unbound = 0;
        for (long x = 0; x < examples && s == RWKV_OK; x++) {
            rwkv_recall_answers ans;
            for (long l = 0; l <= lead; l++)
                rwkv_recall_example(&e, &rng, tokens + (size_t)l * one, one, l == lead ? &ans : NULL);
            rwkv_state_reset(st);
            s = rwkv_eval_sequence(m, st, tokens, len, logits, 1, &err);
            if (s != RWKV_OK) break;
            const size_t o = len - one; /* the scored example */
            n_ok += rwkv_recall_score(tokens + o, one, &ans, logits + o * (size_t)V, V);
            unbound += rwkv_recall_unbound_score(&e, tokens + o, one, &ans);
            n_q += ans.n;
        }
        if (s == RWKV_OK)
            printf("%d\t%zu\t%ld\t%ld\t%.4f\t%.4f\n", e.n_pairs, len, n_q, n_ok, n_q ? (double)n_ok / (double)n_q : 0.0,
                   n_q ? unbound / (double)n_q : 0.0);
        else
            fprintf(stderr, "recall_probe: %s\n", err.message);
        fflush(stdout);
        free(tokens), free(logits);
    }
    rwkv_state_free(st);
    rwkv_model_free(m);
    return s == RWKV_OK ? 0 : 1;
}
