/* Token sampling with the ChatRWKV pipeline's semantics (include/rwkv_sample.h,
 * docs/generation.md).
 *
 * Numerics follow the reference where it matters for the outcome: the
 * occurrence weights and the penalty sums are doubles (Python floats), the
 * penalty is rounded to float and subtracted from the float logit (a float32
 * torch tensor); the cumulative sum that decides the nucleus cut is a
 * sequential float32 sum (numpy cumsum) compared with top_p rounded to float;
 * the final draw walks the cumulative distribution in double, in id order
 * (numpy random.choice). The softmax is exp in float32 (as torch's) with
 * the normaliser summed in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
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
    int *order, *order2;
    uint32_t *keys; /* 2 * work_cap */
    size_t work_cap;
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
    free(s->order);
    free(s->order2);
    free(s->keys);
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

void rwkv_sampler_penalize(const rwkv_sampler *s, float *logits, int n_vocab) {
    for (size_t i = 0; i < s->n_ban; i++)
        if (s->ban[i] < n_vocab) logits[s->ban[i]] = -INFINITY;
    for (size_t i = 0; i < s->n_ids; i++) {
        int j = s->ids[i];
        if (j >= n_vocab) continue;
        float pen = (float)(s->p.alpha_presence + s->occ[j] * s->p.alpha_frequency);
        logits[j] -= pen;
    }
}

/* ---- the distribution -------------------------------------------------- */

static int grow_work(rwkv_sampler *s, size_t n) {
    if (n <= s->work_cap) return 0;
    float *w = realloc(s->work, n * sizeof *w);
    if (!w) return -1;
    s->work = w;
    int *o = realloc(s->order, n * sizeof *o);
    if (!o) return -1;
    s->order = o;
    o = realloc(s->order2, n * sizeof *o);
    if (!o) return -1;
    s->order2 = o;
    uint32_t *k = realloc(s->keys, 2 * n * sizeof *k);
    if (!k) return -1;
    s->keys = k;
    s->work_cap = n;
    return 0;
}

/* Sorts ids[0..n) by probs descending, ties by id ascending (the ids come
 * in ascending order): a stable LSD radix sort on the float bits, which
 * order like unsigned integers for the non-negative probabilities. */
static void sort_ids(rwkv_sampler *s, const float *probs, int *ids, size_t n) {
    enum { BITS = 11, BUCKETS = 1 << BITS }; /* 3 passes over 32 bits */
    uint32_t *kin = s->keys, *kout = s->keys + s->work_cap;
    int *iin = ids, *iout = s->order2;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &probs[ids[i]], 4);
        kin[i] = ~u; /* ascending ~bits = descending probability */
    }
    size_t count[BUCKETS];
    for (int shift = 0; shift < 32; shift += BITS) {
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++) count[(kin[i] >> shift) & (BUCKETS - 1)]++;
        size_t sum = 0;
        for (size_t b = 0; b < BUCKETS; b++) {
            size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            size_t d = count[(kin[i] >> shift) & (BUCKETS - 1)]++;
            kout[d] = kin[i];
            iout[d] = iin[i];
        }
        uint32_t *tk = kin;
        kin = kout;
        kout = tk;
        int *ti = iin;
        iin = iout;
        iout = ti;
    }
    if (iin != ids) memcpy(ids, iin, n * sizeof *ids);
}

/* Writes the sampling distribution of the (already penalised) logits into
 * probs. Returns 0, or -1 when nothing can be sampled. For temperature 0 the
 * index of the winner is returned through *greedy (else -1). */
static int distribution(rwkv_sampler *s, float *probs, int n, int *greedy) {
    *greedy = -1;
    float mx = -INFINITY;
    int arg = -1;
    for (int i = 0; i < n; i++) {
        float v = probs[i];
        if (isnan(v) || v == INFINITY) return -1;
        if (v > mx) {
            mx = v;
            arg = i;
        }
    }
    if (arg < 0) return -1; /* every logit -inf */
    if (s->p.temperature == 0) {
        for (int i = 0; i < n; i++) probs[i] = 0;
        probs[arg] = 1;
        *greedy = arg;
        return 0;
    }
    /* softmax */
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float e = expf(probs[i] - mx);
        sum += e;
        probs[i] = e;
    }
    for (int i = 0; i < n; i++) probs[i] = (float)((double)probs[i] / sum);

    const float top_p = (float)s->p.top_p;
    const int top_k = s->p.top_k;
    const int use_p = s->p.top_p < 1;
    const int use_k = top_k > 0 && top_k < n;
    if (use_p || use_k) {
        int *ord = s->order;
        size_t m = 0;
        int sorted_all = 0;
        if (use_p && !use_k) {
            /* Only the head of the sorted order matters: sort the ids with
             * p >= t, where the ids below t hold less than (1 - top_p)/2 of
             * the mass, so the cumulative sum reaches top_p among them; fall
             * back to the full sort when rounding says otherwise. */
            float t = (float)((1.0 - s->p.top_p) / (2.0 * n));
            for (int i = 0; i < n; i++)
                if (probs[i] >= t) ord[m++] = i;
            sort_ids(s, probs, ord, m);
        } else {
            for (int i = 0; i < n; i++) ord[i] = i;
            m = (size_t)n;
            sort_ids(s, probs, ord, m);
            sorted_all = 1;
        }
        if (use_p) {
            for (int pass = 0; pass < 2; pass++) {
                float c = 0;
                size_t k = m;
                for (size_t i = 0; i < m; i++) {
                    c += probs[ord[i]];
                    if (c >= top_p) {
                        k = i;
                        break;
                    }
                }
                if (k < m) {
                    float cutoff = probs[ord[k]];
                    for (int i = 0; i < n; i++)
                        if (probs[i] < cutoff) probs[i] = 0;
                    break;
                }
                if (sorted_all) break; /* never reaches top_p: keep everything */
                for (int i = 0; i < n; i++) ord[i] = i;
                m = (size_t)n;
                sort_ids(s, probs, ord, m);
                sorted_all = 1;
            }
        }
        if (use_k)
            for (size_t i = (size_t)top_k; i < m; i++) probs[ord[i]] = 0;
    }
    if (s->p.temperature != 1) {
        float e = (float)(1.0 / s->p.temperature);
        for (int i = 0; i < n; i++)
            if (probs[i] > 0) probs[i] = powf(probs[i], e);
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += probs[i];
    if (!(total > 0) || !isfinite(total)) {
        /* a very low temperature underflowed every survivor: the top one wins */
        for (int i = 0; i < n; i++) probs[i] = 0;
        probs[arg] = 1;
        *greedy = arg;
        return 0;
    }
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / total);
    return 0;
}

int rwkv_sampler_distribution(rwkv_sampler *s, const float *logits, int n_vocab, float *probs) {
    if (!s || !logits || !probs || n_vocab <= 0) return -1;
    memcpy(probs, logits, (size_t)n_vocab * sizeof *probs);
    rwkv_sampler_penalize(s, probs, n_vocab);
    if (grow_work(s, (size_t)n_vocab)) return -1;
    int greedy;
    return distribution(s, probs, n_vocab, &greedy);
}

int rwkv_sampler_sample(rwkv_sampler *s, const float *logits, int n_vocab) {
    if (!s || !logits || n_vocab <= 0) return -1;
    if (grow_work(s, (size_t)n_vocab)) return -1;
    float *probs = s->work;
    memcpy(probs, logits, (size_t)n_vocab * sizeof *probs);
    rwkv_sampler_penalize(s, probs, n_vocab);
    int greedy;
    if (distribution(s, probs, n_vocab, &greedy)) return -1;
    if (greedy >= 0) return greedy;
    double total = 0;
    int last = -1;
    for (int i = 0; i < n_vocab; i++)
        if (probs[i] > 0) {
            total += probs[i];
            last = i;
        }
    if (last < 0) return -1;
    double target = rwkv_sampler_uniform(s) * total, c = 0;
    for (int i = 0; i < n_vocab; i++) {
        c += probs[i];
        if (c > target && probs[i] > 0) return i;
    }
    return last; /* rounding: the target fell past the last step */
}
