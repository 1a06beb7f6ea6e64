/* Drawing a token from one row of logits (kernels/draw.h): the ChatRWKV
 * pipeline's rules after the penalties (include/rwkv_sample.h).
 *
 * Numerics follow the reference where it matters for the outcome: the
 * cumulative sum that decides the nucleus cut is a sequential float32 sum
 * (numpy cumsum) compared with top_p rounded to float; the final draw walks
 * the cumulative distribution in double, in id order (numpy random.choice).
 * The softmax is exp in float32 (as torch's) with the normaliser summed in
 * double. */
#include "kernels/draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int draw_work_reserve(draw_work *w, size_t n) {
    if (n <= w->cap) return 0;
    int *o = realloc(w->order, n * sizeof *o);
    if (!o) return -1;
    w->order = o;
    o = realloc(w->order2, n * sizeof *o);
    if (!o) return -1;
    w->order2 = o;
    uint32_t *k = realloc(w->keys, 2 * n * sizeof *k);
    if (!k) return -1;
    w->keys = k;
    w->cap = n;
    return 0;
}

void draw_work_free(draw_work *w) {
    free(w->order);
    free(w->order2);
    free(w->keys);
    memset(w, 0, sizeof *w);
}

void draw_apply_bias(float *logits, int n, const int *ids, const float *bias, size_t n_bias) {
    for (size_t i = 0; i < n_bias; i++) {
        const int j = ids[i];
        if (j < 0 || j >= n) continue;
        if (bias[i] == -INFINITY) logits[j] = -INFINITY;
        else logits[j] += bias[i];
    }
}

/* Sorts ids[0..n) by probs descending, ties by id ascending (the ids come
 * in ascending order): a stable LSD radix sort on the float bits, which
 * order like unsigned integers for the non-negative probabilities. */
static void sort_ids(draw_work *w, const float *probs, int *ids, size_t n) {
    enum { BITS = 11, BUCKETS = 1 << BITS }; /* 3 passes over 32 bits */
    uint32_t *kin = w->keys, *kout = w->keys + w->cap;
    int *iin = ids, *iout = w->order2;
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

/* The largest value and its lowest id; -1 for a NaN or +inf, or every value -inf. */
static int row_max(const float *probs, int n, float *mx_out) {
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
    *mx_out = mx;
    return arg;
}

static void one_hot(float *probs, int n, int arg) {
    memset(probs, 0, (size_t)n * sizeof *probs);
    probs[arg] = 1;
}

/* The nucleus cut: the sorted p at the first position where the float
 * running sum (in sorted order) reaches top_p; 0 when none does (nothing
 * cut). ord[0..m) are the ids sorted so far (*sorted_all: all of them). */
static float nucleus_cutoff(draw_work *w, const float *probs, int n, float top_p, size_t *m, int *sorted_all) {
    int *ord = w->order;
    for (;;) {
        float c = 0;
        for (size_t i = 0; i < *m; i++) {
            c += probs[ord[i]];
            if (c >= top_p) return probs[ord[i]];
        }
        if (*sorted_all) return 0; /* never reaches top_p: keep everything */
        for (int i = 0; i < n; i++) ord[i] = i;
        *m = (size_t)n;
        sort_ids(w, probs, ord, *m);
        *sorted_all = 1;
    }
}

/* The softmax's probabilities from the exponentials in probs, divided by
 * their sum; with t > 0 the ids of p >= t (ascending) gathered into ord. */
static size_t normalise_and_gather(float *probs, int n, double sum, float t, int *ord) {
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        const float p = (float)((double)probs[i] / sum);
        probs[i] = p;
        if (t > 0 && p >= t) ord[m++] = i;
    }
    return m;
}

/* The cuts (nucleus, then top-k) as zeros in probs, the other ids untouched. */
static void cut(const draw_rule *rule, draw_work *w, float *probs, int n, double sum) {
    const int top_k = rule->top_k;
    const int use_p = rule->top_p < 1, use_k = top_k > 0 && top_k < n;
    int *ord = w->order, sorted_all = 0;
    size_t m;
    if (use_p && !use_k) {
        /* Only the head of the sorted order matters: sort the ids with
         * p >= t, where the ids below t hold less than (1 - top_p)/2 of
         * the mass, so the cumulative sum reaches top_p among them; fall
         * back to the full sort when rounding says otherwise. */
        m = normalise_and_gather(probs, n, sum, (float)((1.0 - rule->top_p) / (2.0 * n)), ord);
    } else {
        normalise_and_gather(probs, n, sum, 0, NULL);
        if (!use_p && !use_k) return;
        for (int i = 0; i < n; i++) ord[i] = i;
        m = (size_t)n;
        sorted_all = 1;
    }
    sort_ids(w, probs, ord, m);
    const float cutoff = use_p ? nucleus_cutoff(w, probs, n, (float)rule->top_p, &m, &sorted_all) : 0;
    if (cutoff > 0)
        for (int i = 0; i < n; i++)
            if (probs[i] < cutoff) probs[i] = 0;
    if (use_k)
        for (size_t i = (size_t)top_k; i < m; i++) probs[ord[i]] = 0;
}

int draw_distribution(const draw_rule *rule, draw_work *w, float *probs, int n, int *greedy, draw_mass *mass) {
    *greedy = -1;
    float mx;
    const int arg = row_max(probs, n, &mx);
    if (arg < 0) return -1;
    if (rule->temperature == 0) {
        one_hot(probs, n, arg);
        *greedy = arg;
        return 0;
    }
    /* softmax: expf in float, the normaliser in double; exponentials below
     * -104 are 0 in float (no call needed) */
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float x = probs[i] - mx, e = x < -104.0f ? 0.0f : expf(x);
        sum += e;
        probs[i] = e;
    }
    cut(rule, w, probs, n, sum);
    /* temperature after the cuts, then the total; a zero adds nothing, so
     * the sums skip them */
    const int powered = rule->temperature != 1;
    const float e = (float)(1.0 / rule->temperature);
    double total = 0;
    for (int i = 0; i < n; i++)
        if (probs[i] > 0) {
            if (powered) probs[i] = powf(probs[i], e);
            total += probs[i];
        }
    if (!(total > 0) || !isfinite(total)) {
        /* a very low temperature underflowed every survivor: the top one wins */
        one_hot(probs, n, arg);
        *greedy = arg;
        return 0;
    }
    draw_mass sm = {0, -1};
    for (int i = 0; i < n; i++)
        if (probs[i] > 0) {
            probs[i] = (float)(probs[i] / total);
            if (probs[i] > 0) sm.total += probs[i], sm.last = i;
        }
    if (mass) *mass = sm;
    return 0;
}

int draw_pick(const float *probs, int n, double u, const draw_mass *mass) {
    draw_mass sm = {0, -1};
    if (mass) sm = *mass;
    else
        for (int i = 0; i < n; i++)
            if (probs[i] > 0) sm.total += probs[i], sm.last = i;
    if (sm.last < 0) return -1;
    const double target = u * sm.total;
    double c = 0;
    for (int i = 0; i <= sm.last; i++)
        if (probs[i] > 0) {
            c += probs[i];
            if (c > target) return i;
        }
    return sm.last; /* rounding: the target fell past the last step */
}
