/* Token sampling with the ChatRWKV pipeline's semantics (include/rwkv_sample.h,
 * docs/generation.md): the occurrence table and the penalties here, the
 * distribution and the draw in kernels/draw.c.
 *
 * Numerics follow the reference where it matters for the outcome: the
 * occurrence weights and the penalty sums are doubles (Python floats), the
 * penalty is rounded to float and subtracted from the float logit (a float32
 * torch tensor). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/draw.h"
#include "rwkv_sample.h"

struct rwkv_sampler {
    rwkv_sampler_params p; /* p.token_ban points at ban */
    int *ban;
    size_t n_ban;
    /* occurrence table, indexed by token id (cap entries), plus the list of
     * ids that have an entry (for the decay step) */
    double *occ;
    unsigned char *present;
    size_t cap;
    int *ids;
    size_t n_ids, ids_cap;
    rng rng;
    /* scratch, n_vocab entries */
    float *work;
    size_t work_cap;
    draw_work draw;
    /* rwkv_sampler_draw's bias list */
    int *bias_ids;
    float *bias;
    size_t bias_cap;
};

void rwkv_sampler_seed(rwkv_sampler *s, uint64_t seed) {
    rng_seed(&s->rng, seed);
}

double rwkv_sampler_uniform(rwkv_sampler *s) { return rng_unit(rng_next(&s->rng)); }

/* ---- construction ------------------------------------------------------ */

void rwkv_sampler_params_default(rwkv_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0;
    p->top_p = 0.85;
    p->top_k = 0;
    p->alpha_frequency = 0.2;
    p->alpha_presence = 0.2;
    p->alpha_decay = 0.996;
    p->token_ban = NULL;
    p->n_token_ban = 0;
    p->whitespace_exempt = 1;
}

rwkv_status rwkv_sampler_new(const rwkv_sampler_params *params, uint64_t seed, rwkv_sampler **out,
                             rwkv_error *err) {
    if (!params || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_sampler_new: params and out are required");
    *out = NULL;
    const rwkv_sampler_params *p = params;
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return rwkv_fail(err, RWKV_ERR_ARG, "temperature must be a finite number >= 0, got %g", p->temperature);
    if (!(p->top_p >= 0 && p->top_p <= 1))
        return rwkv_fail(err, RWKV_ERR_ARG, "top_p must be in [0, 1], got %g", p->top_p);
    if (p->top_k < 0) return rwkv_fail(err, RWKV_ERR_ARG, "top_k must be >= 0, got %d", p->top_k);
    if (!isfinite(p->alpha_frequency) || !isfinite(p->alpha_presence))
        return rwkv_fail(err, RWKV_ERR_ARG, "the presence and frequency penalties must be finite");
    if (!(p->alpha_decay >= 0 && p->alpha_decay <= 1))
        return rwkv_fail(err, RWKV_ERR_ARG, "alpha_decay must be in [0, 1], got %g", p->alpha_decay);
    if (p->n_token_ban && !p->token_ban)
        return rwkv_fail(err, RWKV_ERR_ARG, "token_ban is NULL but n_token_ban is %zu", p->n_token_ban);
    for (size_t i = 0; i < p->n_token_ban; i++)
        if (p->token_ban[i] < 0)
            return rwkv_fail(err, RWKV_ERR_ARG, "banned token id %d is negative", p->token_ban[i]);
    rwkv_sampler *s = calloc(1, sizeof *s);
    if (!s) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s->p = *p;
    if (p->n_token_ban) {
        s->ban = malloc(p->n_token_ban * sizeof *s->ban);
        if (!s->ban) {
            free(s);
            return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        }
        memcpy(s->ban, p->token_ban, p->n_token_ban * sizeof *s->ban);
        s->n_ban = p->n_token_ban;
    }
    s->p.token_ban = s->ban;
    s->p.n_token_ban = s->n_ban;
    rwkv_sampler_seed(s, seed);
    *out = s;
    return rwkv_ok(err);
}

void rwkv_sampler_free(rwkv_sampler *s) {
    if (!s) return;
    free(s->ban);
    free(s->occ);
    free(s->present);
    free(s->ids);
    free(s->work);
    draw_work_free(&s->draw);
    free(s->bias_ids);
    free(s->bias);
    free(s);
}

void rwkv_sampler_reset(rwkv_sampler *s) {
    for (size_t i = 0; i < s->n_ids; i++) {
        s->occ[s->ids[i]] = 0;
        s->present[s->ids[i]] = 0;
    }
    s->n_ids = 0;
}

/* ---- occurrences ------------------------------------------------------- */

static int grow_table(rwkv_sampler *s, size_t need) {
    if (need <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < need) {
        if (cap > ((size_t)1 << 40)) return -1;
        cap *= 2;
    }
    double *occ = realloc(s->occ, cap * sizeof *occ);
    if (!occ) return -1;
    s->occ = occ;
    unsigned char *present = realloc(s->present, cap);
    if (!present) return -1;
    s->present = present;
    memset(s->occ + s->cap, 0, (cap - s->cap) * sizeof *occ);
    memset(s->present + s->cap, 0, cap - s->cap);
    s->cap = cap;
    return 0;
}

/* 1 when text[0..len) is a substring of " \t0123456789" (the empty string is). */
static int exempt_text(const char *text, size_t len) {
    static const char pool[] = " \t0123456789";
    const size_t n = sizeof pool - 1;
    if (len == 0) return 1;
    if (len > n) return 0;
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(pool + i, text, len) == 0) return 1;
    return 0;
}

rwkv_status rwkv_sampler_accept(rwkv_sampler *s, int token, const char *text, size_t len, rwkv_error *err) {
    if (!s || token < 0) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_sampler_accept: bad token %d", token);
    if (len && !text) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_sampler_accept: text is NULL");
    /* make room first so that a failure leaves the table unchanged */
    if (grow_table(s, (size_t)token + 1)) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (!s->present[token] && s->n_ids == s->ids_cap) {
        size_t cap = s->ids_cap ? s->ids_cap * 2 : 64;
        int *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        s->ids = ids;
        s->ids_cap = cap;
    }
    for (size_t i = 0; i < s->n_ids; i++) s->occ[s->ids[i]] *= s->p.alpha_decay;
    double w = (s->p.whitespace_exempt && exempt_text(text, len)) ? 0.0 : 1.0;
    if (!s->present[token]) {
        s->present[token] = 1;
        s->occ[token] = 0;
        s->ids[s->n_ids++] = token;
    }
    s->occ[token] += w;
    return rwkv_ok(err);
}

double rwkv_sampler_occurrence(const rwkv_sampler *s, int token, int *present) {
    int has = token >= 0 && (size_t)token < s->cap && s->present[token];
    if (present) *present = has;
    return has ? s->occ[token] : 0.0;
}

/* Token j's penalty (j has an occurrence entry): summed in double, rounded to float. */
static float penalty(const rwkv_sampler *s, int j) {
    return (float)(s->p.alpha_presence + s->occ[j] * s->p.alpha_frequency);
}

void rwkv_sampler_penalize(const rwkv_sampler *s, float *logits, int n_vocab) {
    for (size_t i = 0; i < s->n_ban; i++)
        if (s->ban[i] < n_vocab) logits[s->ban[i]] = -INFINITY;
    for (size_t i = 0; i < s->n_ids; i++) {
        int j = s->ids[i];
        if (j >= n_vocab) continue;
        logits[j] -= penalty(s, j);
    }
}

static draw_rule rule_of(const rwkv_sampler *s) {
    const draw_rule r = {s->p.temperature, s->p.top_p, s->p.top_k};
    return r;
}

static int grow_work(rwkv_sampler *s, size_t n) {
    if (draw_work_reserve(&s->draw, n)) return -1;
    if (n <= s->work_cap) return 0;
    float *w = realloc(s->work, n * sizeof *w);
    if (!w) return -1;
    s->work = w;
    s->work_cap = n;
    return 0;
}

int rwkv_sampler_distribution(rwkv_sampler *s, const float *logits, int n_vocab, float *probs) {
    if (!s || !logits || !probs || n_vocab <= 0) return -1;
    memcpy(probs, logits, (size_t)n_vocab * sizeof *probs);
    rwkv_sampler_penalize(s, probs, n_vocab);
    if (grow_work(s, (size_t)n_vocab)) return -1;
    const draw_rule rule = rule_of(s);
    int greedy;
    return draw_distribution(&rule, &s->draw, probs, n_vocab, &greedy, NULL);
}

int rwkv_sampler_sample(rwkv_sampler *s, const float *logits, int n_vocab) {
    if (!s || !logits || n_vocab <= 0) return -1;
    if (grow_work(s, (size_t)n_vocab)) return -1;
    float *probs = s->work;
    memcpy(probs, logits, (size_t)n_vocab * sizeof *probs);
    rwkv_sampler_penalize(s, probs, n_vocab);
    const draw_rule rule = rule_of(s);
    int greedy;
    draw_mass mass;
    if (draw_distribution(&rule, &s->draw, probs, n_vocab, &greedy, &mass)) return -1;
    if (greedy >= 0) return greedy;
    return draw_pick(probs, n_vocab, rwkv_sampler_uniform(s), &mass);
}

/* ---- the draw of a batched decode --------------------------------------- */

static int grow_bias(rwkv_sampler *s, size_t n) {
    if (n <= s->bias_cap) return 0;
    int *ids = realloc(s->bias_ids, n * sizeof *ids);
    if (!ids) return -1;
    s->bias_ids = ids;
    float *b = realloc(s->bias, n * sizeof *b);
    if (!b) return -1;
    s->bias = b;
    s->bias_cap = n;
    return 0;
}

/* The bans, then the penalties, as rwkv_sampler_penalize applies them: a
 * ban sets -inf whatever comes after, and logit + (-pen) is logit - pen. */
rwkv_status rwkv_sampler_draw(rwkv_sampler *s, int n_vocab, rwkv_draw *d, rwkv_error *err) {
    if (!s || !d || n_vocab <= 0) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_sampler_draw: bad argument");
    if (grow_bias(s, s->n_ban + s->n_ids)) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < s->n_ban; i++)
        if (s->ban[i] < n_vocab) s->bias_ids[n] = s->ban[i], s->bias[n++] = -INFINITY;
    for (size_t i = 0; i < s->n_ids; i++) {
        const int j = s->ids[i];
        if (j >= n_vocab) continue;
        s->bias_ids[n] = j;
        s->bias[n++] = -penalty(s, j);
    }
    memset(d, 0, sizeof *d);
    d->temperature = s->p.temperature;
    d->top_p = s->p.top_p;
    d->top_k = s->p.top_k;
    d->uniform = s->p.temperature == 0 ? 0.0 : rwkv_sampler_uniform(s);
    d->bias_ids = s->bias_ids;
    d->bias = s->bias;
    d->n_bias = n;
    return rwkv_ok(err);
}
