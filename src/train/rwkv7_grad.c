/* RWKV-7 training math (train/rwkv7_grad.h): the training context, the
 * time-parallel forward of docs/model.md §4.5 with saved activations, and
 * its backward (equations in docs/training-math.md). */
#include "train/rwkv7_grad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/huge_pages.h"
#include "core/machine.h"
#include "kernels/kernels_train.h"
#include "kernels/simd_clones.h"
#include "kernels/train_ops.h"
#include "kernels/wkv.h"

#define GN_EPS 64e-5f                    /* ln_x, as the official training code amounts to */

enum { MIX_R, MIX_W, MIX_K, MIX_V, MIX_A, MIX_G, N_MIX };

/* A LoRA path: m1 [C][rank], m2 [rank][C], the bias vector (w0, a0, v0). */
typedef struct lora_offsets {
    size_t m1, m2, bias;
    int rank;
} lora_offsets;

typedef struct block_offsets {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, mix[N_MIX];
    lora_offsets w, a, v, g;
    size_t k_k, k_a, r_k, att_r, att_k, att_v, att_o, lnx_w, lnx_b, ffn_x_k, ffn_k, ffn_v;
} block_offsets;

/* Saved activations of one block, [N][width] each. */
typedef struct block_acts {
    float *x_in, *z1, *x_mid, *z2;     /* [C] residual in, LN1, residual after time mix, LN2 */
    float *r, *k0, *vraw, *v;          /* [C] Wr xr, Wk xk, Wv xv, v after the value residual (block 0: = vraw) */
    float *sigw, *alpha, *vgate, *g;   /* [C] sigmoid of the decay's argument, alpha, residual gate, gate */
    float *decay;                      /* [C] the WKV's decay multiplier exp(-e^-1/2 sigw) */
    float *kappa, *k, *y;              /* [C] normalised k k_k, the modified k, WKV output */
    float *hw, *ha, *hv, *hg;          /* LoRA hidden: tanh [Dw], linear [Da], linear [Dv], sigmoid [Dg] */
    float *knorm;                      /* [H] per-head norm of k k_k */
    float *kf;                         /* [F] W'k xk' before relu² */
    float *ckpt;                       /* WKV state checkpoints */
} block_acts;

struct rwkv7_train_ctx {
    int V, C, L, F, H, hs, B, T, N, nt, Dmax;
    size_t emb, ln0_w, ln0_b, ln_out_w, ln_out_b, head;
    block_offsets *blk;
    block_acts *act;
    float *emb_out, *x_out, *z_out, *logits, *row_loss, *lse;
    float *xm[N_MIX];                    /* [N][C] the mixed inputs of the time mix */
    float *gx, *gz, *dxc, *tmp;          /* [N][C] */
    float *t_ka, *t_kb, *t_yn, *t_out, *t_dg, *t_dyn, *t_dvb, *t_drb, *t_dkb, *t_drk, *t_dy; /* [N][C] */
    float *g_r, *g_w, *g_k, *g_v, *g_a, *g_b, *dvfirst; /* [N][C] */
    float *sd;                           /* [N][max(F, ranks)] */
    float *scratch, *mu, *dmu, *zeros, *wkv_scratch; /* scratch: the norms' row-block sums */
    float *arena;
    size_t arena_bytes; /* as huge_pages_map mapped it */
};

#define NO_OFFSET ((size_t)-1)

static size_t off_of(const param_layout *lay, int l, const char *suffix) {
    char name[64];
    if (l >= 0) snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);
    else snprintf(name, sizeof name, "%s", suffix);
    const param_info *p = param_layout_find(lay, name);
    return p ? p->offset : NO_OFFSET;
}

/* Offsets of block l; 0 when one is missing. */
static int block_offsets_of(const param_layout *lay, int l, block_offsets *o) {
    static const char *const mixes[N_MIX] = {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"};
    for (int m = 0; m < N_MIX; m++) o->mix[m] = off_of(lay, l, mixes[m]);
    o->w = (lora_offsets){off_of(lay, l, "att.w1"), off_of(lay, l, "att.w2"), off_of(lay, l, "att.w0"), 0};
    o->a = (lora_offsets){off_of(lay, l, "att.a1"), off_of(lay, l, "att.a2"), off_of(lay, l, "att.a0"), 0};
    o->v = (lora_offsets){off_of(lay, l, "att.v1"), off_of(lay, l, "att.v2"), off_of(lay, l, "att.v0"), 0};
    o->g = (lora_offsets){off_of(lay, l, "att.g1"), off_of(lay, l, "att.g2"), 0, 0};
    size_t *f[] = {&o->ln1_w, &o->ln1_b, &o->ln2_w, &o->ln2_b, &o->k_k,   &o->k_a,     &o->r_k,   &o->att_r,
                   &o->att_k, &o->att_v, &o->att_o, &o->lnx_w, &o->lnx_b, &o->ffn_x_k, &o->ffn_k, &o->ffn_v};
    static const char *const names[] = {"ln1.weight",        "ln1.bias",          "ln2.weight",       "ln2.bias",
                                        "att.k_k",           "att.k_a",           "att.r_k",          "att.receptance.weight",
                                        "att.key.weight",    "att.value.weight",  "att.output.weight", "att.ln_x.weight",
                                        "att.ln_x.bias",     "ffn.x_k",           "ffn.key.weight",   "ffn.value.weight"};
    int ok = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *f[i] = off_of(lay, l, names[i]);
        ok &= *f[i] != NO_OFFSET;
    }
    for (int m = 0; m < N_MIX; m++) ok &= o->mix[m] != NO_OFFSET;
    const lora_offsets *lo[] = {&o->w, &o->a, &o->g};
    for (int i = 0; i < 3; i++) ok &= lo[i]->m1 != NO_OFFSET && lo[i]->m2 != NO_OFFSET && lo[i]->bias != NO_OFFSET;
    if (l > 0) ok &= o->v.m1 != NO_OFFSET && o->v.m2 != NO_OFFSET && o->v.bias != NO_OFFSET;
    return ok;
}

/* Lays the buffers out in `arena` (NULL: only counts); returns the floats used. */
static size_t carve(rwkv7_train_ctx *c, const rwkv7_shape *s, float *arena) {
    const size_t N = (size_t)c->N, C = (size_t)c->C, F = (size_t)c->F;
    size_t used = 0;
#define TAKE(p, n) ((void)(arena ? ((p) = arena + used) : NULL), used += ((n) + 15) & ~(size_t)15)
    for (int l = 0; l < c->L; l++) {
        block_acts *a = &c->act[l];
        TAKE(a->x_in, N * C), TAKE(a->z1, N * C), TAKE(a->x_mid, N * C), TAKE(a->z2, N * C);
        TAKE(a->r, N * C), TAKE(a->k0, N * C), TAKE(a->vraw, N * C), TAKE(a->sigw, N * C);
        TAKE(a->alpha, N * C), TAKE(a->decay, N * C), TAKE(a->g, N * C), TAKE(a->kappa, N * C), TAKE(a->k, N * C), TAKE(a->y, N * C);
        TAKE(a->hw, N * s->d_decay), TAKE(a->ha, N * s->d_aaa), TAKE(a->hg, N * s->d_gate);
        if (l > 0) {
            TAKE(a->v, N * C), TAKE(a->vgate, N * C), TAKE(a->hv, N * s->d_mv);
        } else if (arena) {
            a->v = a->vraw;
        }
        TAKE(a->knorm, N * c->H), TAKE(a->kf, N * F);
        TAKE(a->ckpt, wkv7_checkpoint_floats(c->B, c->T, c->H, c->hs));
    }
    TAKE(c->emb_out, N * C), TAKE(c->x_out, N * C), TAKE(c->z_out, N * C), TAKE(c->logits, N * c->V);
    TAKE(c->row_loss, N), TAKE(c->lse, N);
    for (int m = 0; m < N_MIX; m++) TAKE(c->xm[m], N * C);
    float **nc[] = {&c->gx,    &c->gz,    &c->dxc,   &c->tmp,   &c->t_ka,  &c->t_kb,  &c->t_yn,
                    &c->t_out, &c->t_dg,  &c->t_dyn, &c->t_dvb, &c->t_drb, &c->t_dkb, &c->t_drk, &c->t_dy,
                    &c->g_r,   &c->g_w,   &c->g_k,   &c->g_v,   &c->g_a,   &c->g_b,   &c->dvfirst};
    for (size_t i = 0; i < sizeof nc / sizeof nc[0]; i++) TAKE(*nc[i], N * C);
    TAKE(c->sd, N * (size_t)(c->Dmax > c->F ? c->Dmax : c->F));
    TAKE(c->scratch, train_scratch_floats(C)), TAKE(c->mu, C), TAKE(c->dmu, C), TAKE(c->zeros, C);
    TAKE(c->wkv_scratch, wkv7_scratch_floats(c->hs, c->nt));
#undef TAKE
    return used;
}

rwkv_status rwkv7_train_ctx_new(const rwkv7_shape *shape, const param_layout *layout, int B, int T, int n_threads,
                                rwkv7_train_ctx **out, rwkv_error *err) {
    *out = NULL;
    rwkv7_shape s = *shape;
    rwkv_status st = rwkv7_shape_complete(&s, err);
    if (st != RWKV_OK) return st;
    if (B <= 0 || T <= 0 || (double)B * T > INT32_MAX / 2)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad batch shape B %d T %d", B, T);
    rwkv7_train_ctx *c = calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (training context)");
    c->V = s.n_vocab, c->C = s.n_embd, c->L = s.n_layer, c->F = s.n_ffn, c->hs = s.head_size, c->H = s.n_embd / s.head_size;
    c->B = B, c->T = T, c->N = B * T, c->nt = n_threads > 0 ? n_threads : machine_cores();
    const int ranks[] = {s.d_decay, s.d_aaa, s.d_mv, s.d_gate};
    for (int i = 0; i < 4; i++) c->Dmax = ranks[i] > c->Dmax ? ranks[i] : c->Dmax;
    c->blk = calloc((size_t)c->L, sizeof *c->blk);
    c->act = calloc((size_t)c->L, sizeof *c->act);
    int ok = c->blk && c->act;
    c->emb = off_of(layout, -1, "emb.weight"), c->head = off_of(layout, -1, "head.weight");
    c->ln_out_w = off_of(layout, -1, "ln_out.weight"), c->ln_out_b = off_of(layout, -1, "ln_out.bias");
    c->ln0_w = off_of(layout, 0, "ln0.weight"), c->ln0_b = off_of(layout, 0, "ln0.bias");
    const size_t top[] = {c->emb, c->head, c->ln_out_w, c->ln_out_b, c->ln0_w, c->ln0_b};
    for (int i = 0; ok && i < 6; i++) ok &= top[i] != NO_OFFSET;
    for (int l = 0; ok && l < c->L; l++) {
        ok &= block_offsets_of(layout, l, &c->blk[l]);
        c->blk[l].w.rank = s.d_decay, c->blk[l].a.rank = s.d_aaa, c->blk[l].v.rank = s.d_mv;
        c->blk[l].g.rank = s.d_gate;
    }
    if (!ok) {
        rwkv7_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_ARG, "parameter layout is not an RWKV-7 layout of this shape");
    }
    const size_t total = carve(c, &s, NULL);
    /* in 2 MB pages: the products read and write these a row apart (core/huge_pages.h) */
    if ((double)total > 1e14 || !(c->arena = huge_pages_map(total * sizeof(float), &c->arena_bytes))) {
        rwkv7_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (%.1f MiB of activations)",
                         (double)total * sizeof(float) / (1 << 20));
    }
    carve(c, &s, c->arena);
    memset(c->zeros, 0, sizeof(float) * (size_t)c->C);
    *out = c;
    return rwkv_ok(err);
}

void rwkv7_train_ctx_free(rwkv7_train_ctx *ctx) {
    if (!ctx) return;
    huge_pages_unmap(ctx->arena, ctx->arena_bytes);
    free(ctx->blk);
    free(ctx->act);
    free(ctx);
}

/* ---- layers of the time mix ------------------------------------------------ */

/* The mixes x_c = z + (z_prev - z) ⊙ x_c are the token shift of train_ops
 * with mu = 1 - x_c; d x_c = -d mu. */
static void mix_forward(rwkv7_train_ctx *c, const float *z, const float *x, float *out) {
    for (int i = 0; i < c->C; i++) c->mu[i] = 1.0f - x[i];
    token_shift_forward(z, c->mu, c->B, c->T, c->C, c->zeros, out, c->nt);
}

/* gz (+)= d z from dout; dx -= d mu. */
static void mix_backward(rwkv7_train_ctx *c, const float *z, const float *x, const float *dout, int accumulate,
                         float *dx) {
    for (int i = 0; i < c->C; i++) c->mu[i] = 1.0f - x[i], c->dmu[i] = 0.0f;
    token_shift_backward(dout, z, c->mu, c->B, c->T, c->C, c->gz, accumulate, c->dmu, c->nt);
    for (int i = 0; i < c->C; i++) dx[i] -= c->dmu[i];
}

/* Y[N][out] = X[N][in] @ M for a LoRA factor M [in][out] (the checkpoint's
 * layout): the input-gradient product of a linear layer whose weight is M,
 * so M is read as stored (its panels hold what Mᵀ's would). */
static void lora_forward(rwkv7_train_ctx *c, const float *M, int in, int out, const float *X, float *Y) {
    matmul_backward_input(M, in, out, X, c->N, Y, c->nt);
}

/* dM += Xᵀ dY; dX = dY Mᵀ (dX may be X: it is written last). */
static void lora_backward(rwkv7_train_ctx *c, const float *M, int in, int out, const float *X, const float *dY,
                          float *dX, float *dM) {
    matmul_backward_weight(X, dY, c->N, in, out, dM, c->nt);
    if (dX) matmul_forward_tiled(M, in, out, dY, c->N, dX, c->nt);
}

/* The per-token work of one block, one row (token) per call. Its loops read
 * and write more arrays than the compiler will check for overlap at run
 * time, so it left them scalar: `omp simd` says they do not overlap. */
typedef struct row_job {
    rwkv7_train_ctx *c;
    const float *P;
    const block_offsets *o;
    block_acts *a;
    int l;
} row_job;

/* Decay, alpha, value residual, kappa, the modified k and the kernel's w,
 * a = -kappa, b = kappa alpha (kernels/wkv7.c, as the inference takes them),
 * keeping what the backward needs: σ(w), alpha, kappa, the raw k and v and
 * the heads' norms. */
static void prepare_row(void *p, int n) {
    const row_job *j = p;
    rwkv7_train_ctx *c = j->c;
    const block_acts *a = j->a;
    const size_t o = (size_t)n * c->C;
    const float *P = j->P;
    const int residual = j->l > 0; /* block 0 has no value residual (nor its gate's memory) */
    const wkv7_prep prep = {P + j->o->w.bias, P + j->o->a.bias, residual ? P + j->o->v.bias : NULL,
                            P + j->o->k_k,    P + j->o->k_a,    a->sigw + o,
                            a->decay + o,     a->alpha + o,     residual ? a->vgate + o : NULL,
                            a->vraw + o,      c->act[0].v + o,  a->v + o,
                            a->k0 + o,        a->k + o,         a->kappa + o,
                            a->knorm + (size_t)n * c->H,        c->t_ka + o,
                            c->t_kb + o};
    wkv7_prepare(&prep, c->C, c->hs);
}

/* out = (GN(y) + (Σ_head r k r_k) v) ⊙ g, GN(y) in t_yn; out in t_out. */
SIMD_CLONES
static void finish_row(void *p, int n) {
    const row_job *j = p;
    rwkv7_train_ctx *c = j->c;
    const size_t o = (size_t)n * c->C;
    const float *r = j->a->r + o, *k = j->a->k + o, *v = j->a->v + o, *g = j->a->g + o, *rk = j->P + j->o->r_k;
    const float *yn = c->t_yn + o;
    float *out = c->t_out + o;
    for (int h = 0; h < c->H; h++) {
        const int b = h * c->hs, e = b + c->hs;
        float bonus = 0.0f;
#pragma omp simd reduction(+ : bonus)
        for (int i = b; i < e; i++) bonus += r[i] * k[i] * rk[i];
#pragma omp simd
        for (int i = b; i < e; i++) out[i] = (yn[i] + bonus * v[i]) * g[i];
    }
}

/* The backward of finish_row from dout = t_out: dg, d GN(y), and the
 * bonus's contributions to dv, dr, dk and (per row) d r_k. */
SIMD_CLONES
static void finish_backward_row(void *p, int n) {
    const row_job *j = p;
    rwkv7_train_ctx *c = j->c;
    const size_t o = (size_t)n * c->C;
    const float *r = j->a->r + o, *k = j->a->k + o, *v = j->a->v + o, *g = j->a->g + o, *rk = j->P + j->o->r_k;
    const float *yn = c->t_yn + o, *dout = c->t_out + o;
    float *dg = c->t_dg + o, *dyn = c->t_dyn + o, *dv = c->t_dvb + o, *dr = c->t_drb + o, *dk = c->t_dkb + o,
          *drk = c->t_drk + o;
    for (int h = 0; h < c->H; h++) {
        const int b = h * c->hs, e = b + c->hs;
        float bonus = 0.0f, dbonus = 0.0f;
#pragma omp simd reduction(+ : bonus)
        for (int i = b; i < e; i++) bonus += r[i] * k[i] * rk[i];
#pragma omp simd reduction(+ : dbonus)
        for (int i = b; i < e; i++) {
            const float dq = dout[i] * g[i];
            dg[i] = dout[i] * (yn[i] + bonus * v[i]);
            dyn[i] = dq;
            dv[i] = dq * bonus;
            dbonus += dq * v[i];
        }
#pragma omp simd
        for (int i = b; i < e; i++) {
            dr[i] = dbonus * k[i] * rk[i];
            dk[i] = dbonus * r[i] * rk[i];
            drk[i] = dbonus * r[i] * k[i];
        }
    }
}

/* The backward of prepare_row (and of the bonus's share), in place over the
 * WKV gradients g_*: afterwards g_r = dr, g_k = d(Wk xk), g_v = d(Wv xv),
 * g_w = d(w0 + LoRA), g_b = d(a0 + LoRA), t_dvb = d(v0 + LoRA) (blocks > 0);
 * t_dkb and g_a hold the per-row terms of d k_a and d k_k; dvfirst gains
 * this block's share. */
SIMD_CLONES
static void prepare_backward_row(void *p, int n) {
    const row_job *j = p;
    rwkv7_train_ctx *c = j->c;
    const block_acts *a = j->a;
    const int C = c->C, N = c->hs;
    const size_t o = (size_t)n * C;
    const float *restrict k_k = j->P + j->o->k_k, *restrict k_a = j->P + j->o->k_a;
    const float *restrict k0 = a->k0 + o, *restrict al = a->alpha + o, *restrict kap = a->kappa + o;
    const float *restrict sigw = a->sigw + o, *restrict decay = a->decay + o, *restrict drb = c->t_drb + o;
    float *restrict gr = c->g_r + o, *restrict gw = c->g_w + o, *restrict gk = c->g_k + o, *restrict gv = c->g_v + o;
    float *restrict ga = c->g_a + o, *restrict gb = c->g_b + o, *restrict dvb = c->t_dvb + o;
    float *restrict dkb = c->t_dkb + o, *restrict dvf = c->dvfirst + o;
#pragma omp simd
    for (int i = 0; i < C; i++) {
        const float dkm = gk[i] + dkb[i], dal = gb[i] * kap[i] + dkm * k0[i] * k_a[i];
        ga[i] = -ga[i] + gb[i] * al[i]; /* d kappa */
        dkb[i] = dkm * k0[i] * (al[i] - 1.0f);
        gk[i] = dkm * (1.0f + (al[i] - 1.0f) * k_a[i]);
        gb[i] = dal * al[i] * (1.0f - al[i]);
        gw[i] = gw[i] * decay[i] * -WKV7_DECAY_SCALE * sigw[i] * (1.0f - sigw[i]);
        gr[i] += drb[i];
        gv[i] += dvb[i]; /* dv: the WKV's and the bonus's */
    }
    if (j->l > 0) { /* v = vraw + (v_first - vraw) vgate */
        const float *restrict vg = a->vgate + o, *restrict vf = c->act[0].v + o, *restrict vr = a->vraw + o;
#pragma omp simd
        for (int i = 0; i < C; i++) {
            const float dv = gv[i];
            dvb[i] = dv * (vf[i] - vr[i]) * vg[i] * (1.0f - vg[i]);
            dvf[i] += dv * vg[i];
            gv[i] = dv * (1.0f - vg[i]);
        }
    } else {
#pragma omp simd
        for (int i = 0; i < C; i++) gv[i] += dvf[i];
    }
    /* kappa = kk / max(|kk|, eps) per head, kk = k0 k_k */
    for (int h = 0; h < c->H; h++) {
        const int b = h * N, e = b + N;
        const float norm = a->knorm[(size_t)n * c->H + h], inv = 1.0f / (norm > WKV7_KK_EPS ? norm : WKV7_KK_EPS);
        float dot = 0.0f;
        if (norm > WKV7_KK_EPS)
#pragma omp simd reduction(+ : dot)
            for (int i = b; i < e; i++) dot += kap[i] * ga[i];
#pragma omp simd
        for (int i = b; i < e; i++) {
            const float dkk = (ga[i] - kap[i] * dot) * inv;
            gk[i] += dkk * k_k[i];
            ga[i] = dkk * k0[i];
        }
    }
}

/* Pinned: each thread takes the same tokens every call, so it reads the rows
 * it wrote, and the WKV's jobs (also pinned, over whole sequences) meet the
 * same threads' rows (kernels/wkv7_train.c). */
static void run_rows(rwkv7_train_ctx *c, const float *P, int l, parallel_row_fn fn, size_t work) {
    row_job j = {c, P, &c->blk[l], &c->act[l], l};
    parallel_rows_pinned(c->nt, c->N, work * (size_t)c->C, fn, &j);
}

static void map_inplace(float *x, size_t n, float (*f)(float)) {
    for (size_t i = 0; i < n; i++) x[i] = f(x[i]);
}

static float tanh_f(float x) { return tanhf(x); }

/* ---- forward ------------------------------------------------------------------- */

static void time_mix_forward(rwkv7_train_ctx *c, const float *P, int l) {
    const block_offsets *o = &c->blk[l];
    block_acts *a = &c->act[l];
    const int C = c->C, N = c->N, nt = c->nt;
    layernorm_forward(a->x_in, P + o->ln1_w, P + o->ln1_b, N, C, a->z1, nt);
    for (int m = 0; m < N_MIX; m++) mix_forward(c, a->z1, P + o->mix[m], c->xm[m]);
    linear_forward(P + o->att_r, C, C, c->xm[MIX_R], N, a->r, nt);
    linear_forward(P + o->att_k, C, C, c->xm[MIX_K], N, a->k0, nt);
    linear_forward(P + o->att_v, C, C, c->xm[MIX_V], N, a->vraw, nt);
    lora_forward(c, P + o->w.m1, C, o->w.rank, c->xm[MIX_W], a->hw);
    map_inplace(a->hw, (size_t)N * o->w.rank, tanh_f);
    lora_forward(c, P + o->w.m2, o->w.rank, C, a->hw, a->sigw);
    lora_forward(c, P + o->a.m1, C, o->a.rank, c->xm[MIX_A], a->ha);
    lora_forward(c, P + o->a.m2, o->a.rank, C, a->ha, a->alpha);
    if (l > 0) {
        lora_forward(c, P + o->v.m1, C, o->v.rank, c->xm[MIX_V], a->hv);
        lora_forward(c, P + o->v.m2, o->v.rank, C, a->hv, a->vgate);
    }
    lora_forward(c, P + o->g.m1, C, o->g.rank, c->xm[MIX_G], a->hg);
    sigmoid_forward(a->hg, (size_t)N * o->g.rank, nt);
    lora_forward(c, P + o->g.m2, o->g.rank, C, a->hg, a->g);
    run_rows(c, P, l, prepare_row, 12);
    wkv7_forward_batch(c->B, c->T, c->H, c->hs, a->r, a->decay, a->k, a->v, c->t_ka, c->t_kb, a->ckpt, a->y,
                       c->wkv_scratch, nt);
    group_norm_forward(a->y, P + o->lnx_w, P + o->lnx_b, N, C, c->H, GN_EPS, c->t_yn, nt);
    run_rows(c, P, l, finish_row, 6);
    linear_forward(P + o->att_o, C, C, c->t_out, N, c->tmp, nt);
    residual_forward(a->x_in, c->tmp, a->x_mid, (size_t)N * C, nt);
}

static void channel_mix_forward(rwkv7_train_ctx *c, const float *P, int l, float *x_next) {
    const block_offsets *o = &c->blk[l];
    block_acts *a = &c->act[l];
    const int C = c->C, N = c->N, F = c->F, nt = c->nt;
    layernorm_forward(a->x_mid, P + o->ln2_w, P + o->ln2_b, N, C, a->z2, nt);
    mix_forward(c, a->z2, P + o->ffn_x_k, c->tmp);
    linear_forward(P + o->ffn_k, F, C, c->tmp, N, a->kf, nt);
    relu2_forward(a->kf, c->sd, (size_t)N * F, nt);
    linear_forward(P + o->ffn_v, C, F, c->sd, N, c->tmp, nt);
    residual_forward(a->x_mid, c->tmp, x_next, (size_t)N * C, nt);
}

static void forward(rwkv7_train_ctx *c, const float *P, const int *inputs, const int *targets) {
    const int N = c->N, C = c->C, nt = c->nt;
    embedding_forward(P + c->emb, inputs, N, C, c->emb_out, nt);
    layernorm_forward(c->emb_out, P + c->ln0_w, P + c->ln0_b, N, C, c->act[0].x_in, nt);
    for (int l = 0; l < c->L; l++) {
        time_mix_forward(c, P, l);
        channel_mix_forward(c, P, l, l + 1 < c->L ? c->act[l + 1].x_in : c->x_out);
    }
    layernorm_forward(c->x_out, P + c->ln_out_w, P + c->ln_out_b, N, C, c->z_out, nt);
    linear_forward(P + c->head, c->V, C, c->z_out, N, c->logits, nt);
    cross_entropy_forward(c->logits, targets, N, c->V, c->row_loss, c->lse, nt);
}

/* ---- backward ------------------------------------------------------------------ */

/* gx = dL/d(block output) on entry, dL/d x_mid on return. */
static void channel_mix_backward(rwkv7_train_ctx *c, const float *P, float *G, int l) {
    const block_offsets *o = &c->blk[l];
    const block_acts *a = &c->act[l];
    const int C = c->C, N = c->N, F = c->F, nt = c->nt;
    const size_t NF = (size_t)N * F;
    relu2_forward(a->kf, c->sd, NF, nt);
    linear_backward(P + o->ffn_v, C, F, c->sd, c->gx, N, c->sd, G + o->ffn_v, nt);
    relu2_backward(a->kf, c->sd, c->sd, NF, nt);
    mix_forward(c, a->z2, P + o->ffn_x_k, c->tmp);
    linear_backward(P + o->ffn_k, F, C, c->tmp, c->sd, N, c->tmp, G + o->ffn_k, nt);
    mix_backward(c, a->z2, P + o->ffn_x_k, c->tmp, 0, G + o->ffn_x_k);
    layernorm_backward(a->x_mid, P + o->ln2_w, c->gz, N, C, c->gx, G + o->ln2_w, G + o->ln2_b, c->scratch, nt);
}

/* From gx = dL/d x_mid: the output projection, the bonus and gate, group
 * norm, the WKV and prepare_row backwards, leaving the gradients of the
 * linear layers' and LoRA paths' outputs in g_r, g_k, g_v, g_w, g_b, t_dvb, t_dg. */
static void time_mix_backward_core(rwkv7_train_ctx *c, const float *P, float *G, int l) {
    const block_offsets *o = &c->blk[l];
    const block_acts *a = &c->act[l];
    const int C = c->C, N = c->N, nt = c->nt;
    const size_t NC = (size_t)N * C;
    for (size_t i = 0; i < NC; i++) {
        c->t_ka[i] = -a->kappa[i];
        c->t_kb[i] = a->kappa[i] * a->alpha[i];
    }
    group_norm_forward(a->y, P + o->lnx_w, P + o->lnx_b, N, C, c->H, GN_EPS, c->t_yn, nt);
    run_rows(c, P, l, finish_row, 6);
    linear_backward(P + o->att_o, C, C, c->t_out, c->gx, N, c->t_out, G + o->att_o, nt);
    run_rows(c, P, l, finish_backward_row, 12);
    sum_rows(c->t_drk, N, C, G + o->r_k, nt);
    memset(c->t_dy, 0, NC * sizeof(float));
    group_norm_backward(a->y, P + o->lnx_w, c->t_dyn, N, C, c->H, GN_EPS, c->t_dy, G + o->lnx_w, G + o->lnx_b,
                        c->scratch, nt);
    wkv7_backward(c->B, c->T, c->H, c->hs, a->r, a->decay, a->k, a->v, c->t_ka, c->t_kb, a->ckpt, c->t_dy, c->g_r,
                  c->g_w, c->g_k, c->g_v, c->g_a, c->g_b, c->wkv_scratch, nt);
    run_rows(c, P, l, prepare_backward_row, 16);
    sum_rows(c->g_w, N, C, G + o->w.bias, nt);
    sum_rows(c->g_b, N, C, G + o->a.bias, nt);
    if (l > 0) sum_rows(c->t_dvb, N, C, G + o->v.bias, nt);
    sum_rows(c->t_dkb, N, C, G + o->k_a, nt);
    sum_rows(c->g_a, N, C, G + o->k_k, nt);
}

/* The activation between a LoRA path's two factors. */
typedef enum { ACT_LINEAR, ACT_TANH, ACT_SIGMOID } lora_act;

/* d of a LoRA path's input from the gradient dY of its output, into dX;
 * hidden: the saved hidden activation (after `act`). */
static void lora_path_backward(rwkv7_train_ctx *c, const float *P, float *G, const lora_offsets *lo,
                               const float *x, const float *hidden, lora_act act, const float *dY, float *dX) {
    const int C = c->C, D = lo->rank;
    lora_backward(c, P + lo->m2, D, C, hidden, dY, c->sd, G + lo->m2);
    const size_t n = (size_t)c->N * D;
    if (act == ACT_TANH)
        for (size_t i = 0; i < n; i++) c->sd[i] *= 1.0f - hidden[i] * hidden[i];
    else if (act == ACT_SIGMOID)
        for (size_t i = 0; i < n; i++) c->sd[i] *= hidden[i] * (1.0f - hidden[i]);
    lora_backward(c, P + lo->m1, C, D, x, c->sd, dX, G + lo->m1);
}

/* gx = dL/d x_mid on entry, dL/d x_in on return. */
static void time_mix_backward(rwkv7_train_ctx *c, const float *P, float *G, int l) {
    const block_offsets *o = &c->blk[l];
    const block_acts *a = &c->act[l];
    const int C = c->C, N = c->N, nt = c->nt;
    time_mix_backward_core(c, P, G, l);
    for (int m = 0; m < N_MIX; m++) mix_forward(c, a->z1, P + o->mix[m], c->xm[m]);
    lora_path_backward(c, P, G, &o->w, c->xm[MIX_W], a->hw, ACT_TANH, c->g_w, c->dxc);
    mix_backward(c, a->z1, P + o->mix[MIX_W], c->dxc, 0, G + o->mix[MIX_W]);
    lora_path_backward(c, P, G, &o->a, c->xm[MIX_A], a->ha, ACT_LINEAR, c->g_b, c->dxc);
    mix_backward(c, a->z1, P + o->mix[MIX_A], c->dxc, 1, G + o->mix[MIX_A]);
    lora_path_backward(c, P, G, &o->g, c->xm[MIX_G], a->hg, ACT_SIGMOID, c->t_dg, c->dxc);
    mix_backward(c, a->z1, P + o->mix[MIX_G], c->dxc, 1, G + o->mix[MIX_G]);
    linear_backward(P + o->att_r, C, C, c->xm[MIX_R], c->g_r, N, c->dxc, G + o->att_r, nt);
    mix_backward(c, a->z1, P + o->mix[MIX_R], c->dxc, 1, G + o->mix[MIX_R]);
    linear_backward(P + o->att_k, C, C, c->xm[MIX_K], c->g_k, N, c->dxc, G + o->att_k, nt);
    mix_backward(c, a->z1, P + o->mix[MIX_K], c->dxc, 1, G + o->mix[MIX_K]);
    linear_backward(P + o->att_v, C, C, c->xm[MIX_V], c->g_v, N, c->dxc, G + o->att_v, nt);
    if (l > 0) {
        lora_path_backward(c, P, G, &o->v, c->xm[MIX_V], a->hv, ACT_LINEAR, c->t_dvb, c->tmp);
        residual_forward(c->dxc, c->tmp, c->dxc, (size_t)N * C, nt);
    }
    mix_backward(c, a->z1, P + o->mix[MIX_V], c->dxc, 1, G + o->mix[MIX_V]);
    layernorm_backward(a->x_in, P + o->ln1_w, c->gz, N, C, c->gx, G + o->ln1_w, G + o->ln1_b, c->scratch, nt);
}

static void backward(rwkv7_train_ctx *c, const float *P, const int *inputs, const int *targets, float l2wrap,
                     float *G) {
    const int N = c->N, C = c->C, V = c->V, nt = c->nt;
    const size_t NC = (size_t)N * C;
    cross_entropy_backward(c->logits, targets, c->lse, N, V, l2wrap, nt);
    linear_backward(P + c->head, V, C, c->z_out, c->logits, N, c->gz, G + c->head, nt);
    memset(c->gx, 0, NC * sizeof(float));
    layernorm_backward(c->x_out, P + c->ln_out_w, c->gz, N, C, c->gx, G + c->ln_out_w, G + c->ln_out_b, c->scratch,
                       nt);
    memset(c->dvfirst, 0, NC * sizeof(float));
    for (int l = c->L - 1; l >= 0; l--) {
        channel_mix_backward(c, P, G, l);
        time_mix_backward(c, P, G, l);
    }
    memset(c->gz, 0, NC * sizeof(float));
    layernorm_backward(c->emb_out, P + c->ln0_w, c->gx, N, C, c->gz, G + c->ln0_w, G + c->ln0_b, c->scratch, nt);
    embedding_backward(c->gz, inputs, N, C, G + c->emb, nt);
}

/* ---- entry points ---------------------------------------------------------------- */

static rwkv_status check_tokens(const rwkv7_train_ctx *c, const int *tok, const char *what, rwkv_error *err) {
    for (int n = 0; n < c->N; n++)
        if (tok[n] < 0 || tok[n] >= c->V)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s[%d][%d] = %d is outside the vocabulary (%d)", what, n / c->T,
                             n % c->T, tok[n], c->V);
    return RWKV_OK;
}

static rwkv_status mean_loss(const rwkv7_train_ctx *c, float *loss, rwkv_error *err) {
    double sum = 0;
    for (int n = 0; n < c->N; n++) sum += c->row_loss[n];
    *loss = (float)(sum / c->N);
    if (!isfinite(*loss)) return rwkv_fail(err, RWKV_ERR_NUMERIC, "the loss is not finite");
    return rwkv_ok(err);
}

rwkv_status rwkv7_forward_backward(rwkv7_train_ctx *ctx, const float *params, const int *inputs, const int *targets,
                                   float l2wrap, float *grads, float *loss, rwkv_error *err) {
    rwkv_status st;
    if ((st = check_tokens(ctx, inputs, "inputs", err)) || (st = check_tokens(ctx, targets, "targets", err)))
        return st;
    forward(ctx, params, inputs, targets);
    backward(ctx, params, inputs, targets, l2wrap, grads);
    return mean_loss(ctx, loss, err);
}

rwkv_status rwkv7_forward_loss(rwkv7_train_ctx *ctx, const float *params, const int *inputs, const int *targets,
                               float *logits, float *loss, rwkv_error *err) {
    rwkv_status st;
    if ((st = check_tokens(ctx, inputs, "inputs", err)) || (st = check_tokens(ctx, targets, "targets", err)))
        return st;
    forward(ctx, params, inputs, targets);
    if (logits) memcpy(logits, ctx->logits, (size_t)ctx->N * ctx->V * sizeof(float));
    return mean_loss(ctx, loss, err);
}
