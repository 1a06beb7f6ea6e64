/* A random RWKV-7 checkpoint of a given shape (official key names, f32
 * safetensors), for benchmarks that need the weights of a released size
 * without the released weights (bench/gguf.sh). Speed depends on the shape
 * and the storage type, not on the values.
 *
 *   rwkv7_random OUT.safetensors V C L F Dw Da Dv Dg [HEAD_SIZE] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"

typedef struct builder {
    tensor *t;
    int n, cap;
    uint64_t rng;
} builder;

static float uniform(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (1.0 / 16777216.0));
}

/* kind: 'm' matrix ~ U(-1, 1)/sqrt(cols), 'u' U(0, 1), or a constant */
static int add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, char kind, float c) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->t = realloc(b->t, sizeof *b->t * (size_t)b->cap);
        if (!b->t) return -1;
    }
    tensor *t = &b->t[b->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->type = DT_F32;
    t->ndim = ndim;
    int64_t dims[3] = {d0, d1, d2};
    for (int i = 0; i < ndim; i++) t->shape[i] = dims[i];
    int64_t n = shape_numel(ndim, t->shape);
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!t->name || !v) return -1;
    float scale = kind == 'm' ? 1.0f / sqrtf((float)t->shape[ndim - 1]) : 1.0f;
    for (int64_t i = 0; i < n; i++)
        v[i] = kind == 'm' ? (2 * uniform(&b->rng) - 1) * scale : kind == 'u' ? uniform(&b->rng) : c;
    t->data = v;
    t->nbytes = (size_t)n * sizeof(float);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: rwkv7_random OUT.safetensors V C L F Dw Da Dv Dg [HEAD_SIZE]\n");
        return 2;
    }
    const int64_t V = atoll(argv[2]), C = atoll(argv[3]), L = atoll(argv[4]), F = atoll(argv[5]);
    const int64_t Dw = atoll(argv[6]), Da = atoll(argv[7]), Dv = atoll(argv[8]), Dg = atoll(argv[9]);
    const int64_t N = argc > 10 ? atoll(argv[10]) : 64;
    if (V < 1 || C < 1 || L < 1 || F < 1 || N < 1 || C % N) {
        fprintf(stderr, "rwkv7_random: bad shape\n");
        return 2;
    }
    builder b = {.rng = 7};
    char n[128];
    int bad = add(&b, "emb.weight", 2, V, C, 0, 'm', 0) || add(&b, "head.weight", 2, V, C, 0, 'm', 0) ||
              add(&b, "blocks.0.ln0.weight", 1, C, 0, 0, 'c', 1) || add(&b, "blocks.0.ln0.bias", 1, C, 0, 0, 'c', 0) ||
              add(&b, "ln_out.weight", 1, C, 0, 0, 'c', 1) || add(&b, "ln_out.bias", 1, C, 0, 0, 'c', 0);
    static const char *const mixes[] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    for (int64_t l = 0; l < L && !bad; l++) {
#define NAME(s) (snprintf(n, sizeof n, "blocks.%lld.%s", (long long)l, s), n)
        bad |= add(&b, NAME("ln1.weight"), 1, C, 0, 0, 'c', 1) || add(&b, NAME("ln1.bias"), 1, C, 0, 0, 'c', 0) ||
               add(&b, NAME("ln2.weight"), 1, C, 0, 0, 'c', 1) || add(&b, NAME("ln2.bias"), 1, C, 0, 0, 'c', 0);
        for (int m = 0; m < 6; m++) {
            char s[32];
            snprintf(s, sizeof s, "att.%s", mixes[m]);
            bad |= add(&b, NAME(s), 3, 1, 1, C, 'u', 0);
        }
        bad |= add(&b, NAME("att.w0"), 3, 1, 1, C, 'c', -0.5f) || add(&b, NAME("att.w1"), 2, C, Dw, 0, 'm', 0) ||
               add(&b, NAME("att.w2"), 2, Dw, C, 0, 'm', 0) || add(&b, NAME("att.a0"), 3, 1, 1, C, 'c', 0) ||
               add(&b, NAME("att.a1"), 2, C, Da, 0, 'm', 0) || add(&b, NAME("att.a2"), 2, Da, C, 0, 'm', 0) ||
               add(&b, NAME("att.v0"), 3, 1, 1, C, 'c', 1) || add(&b, NAME("att.v1"), 2, C, Dv, 0, 'm', 0) ||
               add(&b, NAME("att.v2"), 2, Dv, C, 0, 'm', 0) || add(&b, NAME("att.g1"), 2, C, Dg, 0, 'm', 0) ||
               add(&b, NAME("att.g2"), 2, Dg, C, 0, 'm', 0) || add(&b, NAME("att.k_k"), 3, 1, 1, C, 'c', 0.85f) ||
               add(&b, NAME("att.k_a"), 3, 1, 1, C, 'c', 1) || add(&b, NAME("att.r_k"), 2, C / N, N, 0, 'u', 0) ||
               add(&b, NAME("att.receptance.weight"), 2, C, C, 0, 'm', 0) ||
               add(&b, NAME("att.key.weight"), 2, C, C, 0, 'm', 0) ||
               add(&b, NAME("att.value.weight"), 2, C, C, 0, 'm', 0) ||
               add(&b, NAME("att.output.weight"), 2, C, C, 0, 'm', 0) ||
               add(&b, NAME("att.ln_x.weight"), 1, C, 0, 0, 'c', 1) || add(&b, NAME("att.ln_x.bias"), 1, C, 0, 0, 'c', 0) ||
               add(&b, NAME("ffn.x_k"), 3, 1, 1, C, 'u', 0) || add(&b, NAME("ffn.key.weight"), 2, F, C, 0, 'm', 0) ||
               add(&b, NAME("ffn.value.weight"), 2, C, F, 0, 'm', 0);
#undef NAME
    }
    rwkv_error err;
    if (bad) {
        fprintf(stderr, "rwkv7_random: out of memory\n");
        return 1;
    }
    if (safetensors_write(argv[1], b.t, b.n, DT_COUNT, &err) != RWKV_OK) {
        fprintf(stderr, "rwkv7_random: %s\n", err.message);
        return 1;
    }
    for (int i = 0; i < b.n; i++) free(b.t[i].name), free((void *)b.t[i].data);
    free(b.t);
    return 0;
}
