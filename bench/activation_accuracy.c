/* activation_accuracy: what decoding a quantized model with int8 or float32
 * activations costs in accuracy. Feeds the bytes of a text (one token per
 * byte: a byte-vocabulary model) token by token in RNN mode through a
 * reference model and a quantized one, side by side, and prints one JSON
 * line: the perplexity of each on the text, and the difference of their
 * logits (root mean square over all logits, and the largest).
 *
 *   activation_accuracy REFERENCE QUANTIZED TEXT [N_TOKENS]
 *
 * The activation mode is the process's (RWKV_ACTIVATIONS=int8|f32; it only
 * changes the block formats, so an f16/f32 reference is not affected): run
 * it once per mode. Uses only the public API (rwkv.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rwkv.h"

/* log of the softmax probability of `target` */
static double log_prob(const float *logits, int n, int target) {
    double mx = logits[0], sum = 0;
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++) sum += exp(logits[i] - mx);
    return logits[target] - mx - log(sum);
}

static int fail(const rwkv_error *err) {
    fprintf(stderr, "activation_accuracy: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: activation_accuracy REFERENCE QUANTIZED TEXT [N_TOKENS]\n");
        return 2;
    }
    const long limit = argc > 4 ? atol(argv[4]) : 2000;
    FILE *f = fopen(argv[3], "rb");
    if (!f) {
        perror(argv[3]);
        return 1;
    }
    unsigned char *text = malloc((size_t)limit + 1);
    const long n = text ? (long)fread(text, 1, (size_t)limit + 1, f) : 0;
    fclose(f);
    rwkv_error err;
    rwkv_model *m[2];
    rwkv_state *st[2];
    for (int i = 0; i < 2; i++) {
        if (rwkv_model_load(argv[1 + i], &m[i], &err) != RWKV_OK) return fail(&err);
        if (rwkv_state_new(m[i], &st[i], &err) != RWKV_OK) return fail(&err);
    }
    rwkv_model_info info;
    rwkv_model_get_info(m[0], &info);
    const int V = info.n_vocab;
    if (V < 256 || n < 2) {
        fprintf(stderr, "activation_accuracy: needs a byte-vocabulary model and at least 2 bytes of text\n");
        return 1;
    }
    float *logits[2] = {malloc(sizeof(float) * (size_t)V), malloc(sizeof(float) * (size_t)V)};
    double nll[2] = {0, 0}, sq = 0, worst = 0;
    for (long t = 0; t + 1 < n; t++) {
        for (int i = 0; i < 2; i++) {
            if (rwkv_eval(m[i], st[i], text[t], logits[i], &err) != RWKV_OK) return fail(&err);
            nll[i] -= log_prob(logits[i], V, text[t + 1]);
        }
        for (int v = 0; v < V; v++) {
            const double d = fabs((double)logits[1][v] - logits[0][v]);
            sq += d * d;
            worst = d > worst ? d : worst;
        }
    }
    const char *mode = getenv("RWKV_ACTIVATIONS");
    printf("{\"quantized\": \"%s\", \"activations\": \"%s\", \"tokens\": %ld, \"ppl_reference\": %.5f, "
           "\"ppl_quantized\": %.5f, \"rms_logit_diff\": %.6f, \"max_logit_diff\": %.6f}\n",
           argv[2], mode && *mode ? mode : "int8", n - 1, exp(nll[0] / (double)(n - 1)), exp(nll[1] / (double)(n - 1)),
           sqrt(sq / ((double)(n - 1) * V)), worst);
    for (int i = 0; i < 2; i++) {
        rwkv_state_free(st[i]);
        rwkv_model_free(m[i]);
        free(logits[i]);
    }
    free(text);
    return 0;
}
