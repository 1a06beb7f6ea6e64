/* The reference vector checker: runs every case of a test-vector set folder
 * (format: ../shared/testvectors/rwkv4/README.md, and the /2 format of the
 * v5-v7 sets) through every checkpoint the case ships, comparing elementwise
 * with the case's suggested tolerances:
 *   - logits of sequence mode (all positions at once) and of RNN mode,
 *   - the state after `after_tokens` inputs and after all inputs,
 *   - sequence mode continued from the expected state_mid,
 *   - the loss, and for sets with grads/ every parameter gradient, through the
 *     training math of the case's version (RWKV-4, RWKV-7; train/arch.h).
 * A case folder with an `hf/` subfolder (the same weights as a transformers
 * model folder) has that folder checked like its other checkpoints.
 * Prints one PASS/FAIL line per check with the worst ratio
 * |got - want| / (atol + rtol |want|) (<= 1 passes) and ends with
 * "N passed, N failed, N skipped". Nothing here depends on the shapes of
 * any particular case: everything is read from case.txt.
 *
 *   check_vectors FOLDER */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/formats.h"
#include "rwkv.h"
#include "train/arch.h"

static int n_pass, n_fail, n_skip;

static void report(const char *what, const char *fmt_detail, double worst) {
    if (worst <= 1.0) {
        printf("PASS %s (worst %.3g of tolerance)%s\n", what, worst, fmt_detail);
        n_pass++;
    } else {
        printf("FAIL %s: worst error is %.3g times the tolerance%s\n", what, worst, fmt_detail);
        n_fail++;
    }
}

static void fail(const char *what, const char *msg) {
    printf("FAIL %s: %s\n", what, msg);
    n_fail++;
}

typedef struct tolerance {
    double atol, rtol;
} tolerance;

typedef struct vcase {
    char dir[1024], name[256];
    int V, C, L, B, T;
    int *inputs, *targets;
    double loss;
    char ckpt_file[16][256];
    int n_ckpt;
    char grad_name[512][96], grad_file[512][160];
    size_t grad_numel[512];
    int n_grads;
    char version[16]; /* rwkv_version ("" for the RWKV-4 sets) */
    int after_tokens;
    tolerance tol_logits, tol_state, tol_loss, tol_grads;
    int has_tol_grads;
} vcase;

static int read_ints(char **save, int n, int *out) {
    for (int i = 0; i < n; i++) {
        char *tok = strtok_r(NULL, " \n", save);
        if (!tok) return -1;
        out[i] = atoi(tok);
    }
    return 0;
}

/* Parses case.txt (one fact per line; see the vector README). */
static int parse_case(const char *dir, vcase *c, char *msg, size_t msz) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msz, "cannot open %s", path);
        return -1;
    }
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    int ok = 1;
    c->after_tokens = -1;
    while (ok && fgets(line, (int)cap, f)) {
        char *save, *key = strtok_r(line, " \n", &save);
        if (!key) continue;
        if (strcmp(key, "case") == 0) {
            char *v = strtok_r(NULL, " \n", &save);
            snprintf(c->name, sizeof c->name, "%s", v ? v : "?");
        } else if (strcmp(key, "config") == 0) {
            char *k;
            while ((k = strtok_r(NULL, " \n", &save))) {
                char *v = strtok_r(NULL, " \n", &save);
                if (!v) break;
                if (!strcmp(k, "n_vocab")) c->V = atoi(v);
                else if (!strcmp(k, "n_embd")) c->C = atoi(v);
                else if (!strcmp(k, "n_layer")) c->L = atoi(v);
                else if (!strcmp(k, "batch")) c->B = atoi(v);
                else if (!strcmp(k, "seq_len")) c->T = atoi(v);
            }
        } else if (strcmp(key, "inputs") == 0 || strcmp(key, "targets") == 0) {
            int b, t;
            char *sb = strtok_r(NULL, " \n", &save), *st = strtok_r(NULL, " \n", &save);
            if (!sb || !st || (b = atoi(sb)) <= 0 || (t = atoi(st)) <= 0) { ok = 0; break; }
            int *arr = malloc(sizeof(int) * (size_t)b * t);
            if (read_ints(&save, b * t, arr)) { free(arr); ok = 0; break; }
            if (key[0] == 'i') c->inputs = arr; else c->targets = arr;
        } else if (strcmp(key, "loss") == 0) {
            char *v = strtok_r(NULL, " \n", &save);
            c->loss = v ? atof(v) : NAN;
        } else if (strcmp(key, "checkpoint") == 0 && c->n_ckpt < 16) {
            char *v = strtok_r(NULL, " \n", &save);
            if (v) snprintf(c->ckpt_file[c->n_ckpt++], 256, "%s", v);
        } else if (strcmp(key, "array") == 0) {
            char *name = strtok_r(NULL, " \n", &save), *tok;
            if (name && strcmp(name, "state_mid") == 0)
                while ((tok = strtok_r(NULL, " \n", &save)))
                    if (strcmp(tok, "after_tokens") == 0) {
                        char *v = strtok_r(NULL, " \n", &save);
                        c->after_tokens = v ? atoi(v) : -1;
                    }
        } else if (strcmp(key, "rwkv_version") == 0) {
            char *v = strtok_r(NULL, " \n", &save);
            snprintf(c->version, sizeof c->version, "%s", v ? v : "");
        } else if (strcmp(key, "grad") == 0 && c->n_grads < 512) {
            char *name = strtok_r(NULL, " \n", &save), *file = strtok_r(NULL, " \n", &save);
            char *nd = strtok_r(NULL, " \n", &save), *dim;
            if (name && file && nd) {
                size_t numel = 1;
                for (int d = atoi(nd); d > 0 && (dim = strtok_r(NULL, " \n", &save)); d--) numel *= (size_t)atol(dim);
                snprintf(c->grad_name[c->n_grads], 96, "%s", name);
                snprintf(c->grad_file[c->n_grads], 160, "%s", file);
                c->grad_numel[c->n_grads] = numel;
                c->n_grads++;
            }
        } else if (strcmp(key, "tolerance") == 0) {
            char *kind = strtok_r(NULL, " \n", &save), *a = strtok_r(NULL, " \n", &save),
                 *r = strtok_r(NULL, " \n", &save);
            if (!kind || !a || !r) { ok = 0; break; }
            tolerance t = {atof(a), atof(r)};
            if (!strcmp(kind, "logits")) c->tol_logits = t;
            else if (!strcmp(kind, "state")) c->tol_state = t;
            else if (!strcmp(kind, "loss")) c->tol_loss = t;
            else if (!strcmp(kind, "grads")) { c->tol_grads = t; c->has_tol_grads = 1; }
        }
    }
    free(line);
    fclose(f);
    if (!ok || !c->inputs || !c->targets || c->B <= 0 || c->T <= 0 || c->V <= 0 || c->n_ckpt == 0) {
        snprintf(msg, msz, "%s: incomplete or malformed case description", path);
        return -1;
    }
    return 0;
}

static void free_case(vcase *c) {
    free(c->inputs);
    free(c->targets);
}

/* Reads a raw float32 array of exactly n elements; NULL on any mismatch. */
static float *read_f32(const char *dir, const char *file, size_t n, char *msg, size_t msz) {
    char path[1500];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msz, "cannot open %s", path);
        return NULL;
    }
    float *a = malloc(n * sizeof(float) + 1);
    size_t got = fread(a, sizeof(float), n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        snprintf(msg, msz, "%s: expected %zu floats", path, n);
        free(a);
        return NULL;
    }
    return a;
}

static double ratio(const float *got, const float *want, size_t n, tolerance t) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (t.atol + t.rtol * fabs((double)want[i]));
        if (!(r <= worst)) worst = r;
    }
    return worst;
}

/* Mean cross entropy of the targets under the logits [n][V], in double. */
static double cross_entropy(const float *logits, const int *targets, size_t n, int V) {
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * V;
        double mx = z[0], s = 0;
        for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < V; j++) s += exp(z[j] - mx);
        total += mx + log(s) - z[targets[i]];
    }
    return total / (double)n;
}

static void check_checkpoint(const vcase *c, const char *ckpt) {
    char what[1024], path[1500], msg[2048];
    snprintf(path, sizeof path, "%s/%s", c->dir, ckpt);
    rwkv_error err;
    rwkv_model *m;
    snprintf(what, sizeof what, "%s/%s load", c->name, ckpt);
    if (rwkv_model_load(path, &m, &err) != RWKV_OK) {
        fail(what, err.message);
        return;
    }
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    if (info.n_vocab != c->V || (c->C && info.n_embd != c->C) || (c->L && info.n_layer != c->L)) {
        snprintf(msg, sizeof msg, "model is V=%d C=%d L=%d, case says V=%d C=%d L=%d", info.n_vocab, info.n_embd,
                 info.n_layer, c->V, c->C, c->L);
        fail(what, msg);
        rwkv_model_free(m);
        return;
    }
    const int B = c->B, T = c->T, V = c->V;
    const size_t S = info.state_floats, BTV = (size_t)B * T * V;
    float *want_par = read_f32(c->dir, "logits_parallel.f32", BTV, msg, sizeof msg);
    float *want_rnn = want_par ? read_f32(c->dir, "logits_rnn.f32", BTV, msg, sizeof msg) : NULL;
    float *want_fin = want_rnn ? read_f32(c->dir, "state_final.f32", (size_t)B * S, msg, sizeof msg) : NULL;
    float *want_mid = want_fin ? read_f32(c->dir, "state_mid.f32", (size_t)B * S, msg, sizeof msg) : NULL;
    if (!want_mid) {
        snprintf(what, sizeof what, "%s/%s expected arrays", c->name, ckpt);
        fail(what, msg);
        goto done;
    }
    float *par = malloc(BTV * sizeof(float)), *rnn = malloc(BTV * sizeof(float));
    float *st_par = malloc((size_t)B * S * sizeof(float)), *st_fin = malloc((size_t)B * S * sizeof(float));
    float *st_mid = malloc((size_t)B * S * sizeof(float)), *cont = malloc(BTV * sizeof(float));
    rwkv_state *st;
    if (rwkv_state_new(m, &st, &err) != RWKV_OK) {
        fail(what, err.message);
        goto done2;
    }
    int mid = c->after_tokens;
    int ok = 1;
    for (int b = 0; b < B && ok; b++) {
        const int *in = c->inputs + (size_t)b * T;
        float *row_par = par + (size_t)b * T * V, *row_rnn = rnn + (size_t)b * T * V;
        /* sequence mode over the whole row */
        rwkv_state_reset(st);
        ok = rwkv_eval_sequence(m, st, in, (size_t)T, row_par, 1, &err) == RWKV_OK;
        memcpy(st_par + b * S, rwkv_state_data(st), S * sizeof(float));
        /* RNN mode, one token at a time */
        rwkv_state_reset(st);
        for (int t = 0; t < T && ok; t++) {
            ok = rwkv_eval(m, st, in[t], row_rnn + (size_t)t * V, &err) == RWKV_OK;
            if (t + 1 == mid) memcpy(st_mid + b * S, rwkv_state_data(st), S * sizeof(float));
        }
        memcpy(st_fin + b * S, rwkv_state_data(st), S * sizeof(float));
        /* sequence mode continued from the expected state_mid */
        if (ok && mid > 0 && mid < T) {
            memcpy(rwkv_state_data(st), want_mid + b * S, S * sizeof(float));
            ok = rwkv_eval_sequence(m, st, in + mid, (size_t)(T - mid), cont + (size_t)b * T * V, 1, &err) ==
                 RWKV_OK;
        }
    }
    if (!ok) {
        snprintf(what, sizeof what, "%s/%s eval", c->name, ckpt);
        fail(what, err.message);
        goto done3;
    }
    snprintf(what, sizeof what, "%s/%s logits_parallel", c->name, ckpt);
    report(what, "", ratio(par, want_par, BTV, c->tol_logits));
    snprintf(what, sizeof what, "%s/%s logits_rnn", c->name, ckpt);
    report(what, "", ratio(rnn, want_rnn, BTV, c->tol_logits));
    snprintf(what, sizeof what, "%s/%s state_final (RNN mode)", c->name, ckpt);
    report(what, "", ratio(st_fin, want_fin, (size_t)B * S, c->tol_state));
    snprintf(what, sizeof what, "%s/%s state_final (sequence mode)", c->name, ckpt);
    report(what, "", ratio(st_par, want_fin, (size_t)B * S, c->tol_state));
    if (mid > 0 && mid <= T) {
        snprintf(what, sizeof what, "%s/%s state_mid after %d tokens", c->name, ckpt, mid);
        report(what, "", ratio(st_mid, want_mid, (size_t)B * S, c->tol_state));
    }
    if (mid > 0 && mid < T) {
        double worst = 0;
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)b * T * V;
            double r = ratio(cont + off, want_par + off + (size_t)mid * V, (size_t)(T - mid) * V, c->tol_logits);
            if (!(r <= worst)) worst = r;
        }
        snprintf(what, sizeof what, "%s/%s logits continued from state_mid", c->name, ckpt);
        report(what, "", worst);
    }
    {
        float got = (float)cross_entropy(par, c->targets, (size_t)B * T, V), want = (float)c->loss;
        snprintf(what, sizeof what, "%s/%s loss", c->name, ckpt);
        snprintf(msg, sizeof msg, " [got %.8f, want %.8f]", got, want);
        report(what, msg, ratio(&got, &want, 1, c->tol_loss));
    }
done3:
    rwkv_state_free(st);
done2:
    free(par);
    free(rnn);
    free(st_par);
    free(st_fin);
    free(st_mid);
    free(cont);
done:
    free(want_par);
    free(want_rnn);
    free(want_fin);
    free(want_mid);
    rwkv_model_free(m);
}

/* The trainer of the case's version: the RWKV-4 sets have no version line. */
static const train_arch *arch_of(const vcase *c) {
    if (!c->version[0] || strncmp(c->version, "4", 1) == 0) return train_arch_find("rwkv4");
    if (strncmp(c->version, "7", 1) == 0) return train_arch_find("rwkv7");
    return NULL;
}

/* Gradients of the mean loss for every parameter, through the training
 * math of the case's architecture (train/arch.h). A gradient the case lists
 * for a tensor the training layout leaves out must be zero (a parameter the
 * forward does not use). */
static void check_grads(const vcase *c, const char *ckpt) {
    char what[1024], path[1500], msg[2048];
    snprintf(path, sizeof path, "%s/%s", c->dir, ckpt);
    snprintf(what, sizeof what, "%s/%s grads", c->name, ckpt);
    const train_arch *arch = arch_of(c);
    if (!arch) {
        snprintf(msg, sizeof msg, "no training math for rwkv_version %s", c->version);
        fail(what, msg);
        return;
    }
    rwkv_error err;
    arch_shape shape = {0};
    param_layout layout;
    float *params = NULL, *grads = NULL, loss = 0;
    void *ctx = NULL;
    if (arch->load(path, &shape, &layout, &params, &err) != RWKV_OK) {
        fail(what, err.message);
        return;
    }
    grads = calloc(layout.total, sizeof(float));
    /* the vectors' gradients are of the plain mean loss: no L2Wrap */
    int ok = grads && arch->ctx_new(&shape, &layout, c->B, c->T, 0, &ctx, &err) == RWKV_OK &&
             arch->forward_backward(ctx, params, c->inputs, c->targets, 0.0f, grads, &loss, &err) == RWKV_OK;
    if (!ok) {
        fail(what, err.message);
        goto out;
    }
    {
        float want = (float)c->loss;
        snprintf(what, sizeof what, "%s/%s training-forward loss", c->name, ckpt);
        snprintf(msg, sizeof msg, " [got %.8f, want %.8f]", loss, want);
        report(what, msg, ratio(&loss, &want, 1, c->tol_loss));
    }
    for (int i = 0; i < c->n_grads; i++) {
        snprintf(what, sizeof what, "%s/%s grad %s", c->name, ckpt, c->grad_name[i]);
        const param_info *p = param_layout_find(&layout, c->grad_name[i]);
        const size_t n = p ? p->numel : c->grad_numel[i];
        float *want = read_f32(c->dir, c->grad_file[i], n, msg, sizeof msg);
        float *zeros = p ? NULL : calloc(n + 1, sizeof(float));
        if (!want || (!p && !zeros)) {
            fail(what, want ? "out of memory" : msg);
        } else if (p) {
            report(what, "", ratio(grads + p->offset, want, n, c->tol_grads));
        } else {
            report(what, " (not in the training layout: must be zero)", ratio(zeros, want, n, c->tol_grads));
        }
        free(want);
        free(zeros);
    }
out:
    if (ctx) arch->ctx_free(ctx);
    free(params);
    free(grads);
    param_layout_free(&layout);
}

static void check_case(const char *dir) {
    vcase c;
    char msg[1400];
    if (parse_case(dir, &c, msg, sizeof msg) != 0) {
        fail(dir, msg);
        return;
    }
    char hf[1500];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    struct stat st;
    if (c.n_ckpt < 16 && stat(hf, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(c.ckpt_file[c.n_ckpt++], 256, "hf");
    for (int i = 0; i < c.n_ckpt; i++) {
        check_checkpoint(&c, c.ckpt_file[i]);
        if (c.n_grads > 0) {
            if (c.has_tol_grads) check_grads(&c, c.ckpt_file[i]);
            else fail(c.name, "case has grads but no grads tolerance");
        }
    }
    free_case(&c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: check_vectors FOLDER\n");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/index.json", argv[1]);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *cases = root ? json_object_get(root, "cases") : NULL;
    if (!json_is_array(cases)) {
        printf("FAIL %s: cannot read the case list (%s)\n", path, root ? "no \"cases\" array" : jerr.text);
        printf("0 passed, 1 failed\n");
        json_decref(root);
        return 1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(cases, i, e) {
        const char *d = json_string_value(json_object_get(e, "dir"));
        if (!d) {
            fail(path, "case without \"dir\"");
            continue;
        }
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/%s", argv[1], d);
        check_case(dir);
    }
    json_decref(root);
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
