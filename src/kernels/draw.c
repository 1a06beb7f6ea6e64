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

int draw_distribution(const draw_rule *rule, draw_work *w, float *probs, int n, int *greedy) {
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
    if (rule->temperature == 0) {
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

    const float top_p = (float)rule->top_p;
    const int top_k = rule->top_k;
    const int use_p = rule->top_p < 1;
    const int use_k = top_k > 0 && top_k < n;
    if (use_p || use_k) {
        int *ord = w->order;
        size_t m = 0;
        int sorted_all = 0;
        if (use_p && !use_k) {
            /* Only the head of the sorted order matters: sort the ids with
             * p >= t, where the ids below t hold less than (1 - top_p)/2 of
             * the mass, so the cumulative sum reaches top_p among them; fall
             * back to the full sort when rounding says otherwise. */
            float t = (float)((1.0 - rule->top_p) / (2.0 * n));
            for (int i = 0; i < n; i++)
                if (probs[i] >= t) ord[m++] = i;
            sort_ids(w, probs, ord, m);
        } else {
            for (int i = 0; i < n; i++) ord[i] = i;
            m = (size_t)n;
            sort_ids(w, probs, ord, m);
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
                sort_ids(w, probs, ord, m);
                sorted_all = 1;
            }
        }
        if (use_k)
            for (size_t i = (size_t)top_k; i < m; i++) probs[ord[i]] = 0;
    }
    if (rule->temperature != 1) {
        float e = (float)(1.0 / rule->temperature);
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

int draw_pick(const float *probs, int n, double u) {
    double total = 0;
    int last = -1;
    for (int i = 0; i < n; i++)
        if (probs[i] > 0) {
            total += probs[i];
            last = i;
        }
    if (last < 0) return -1;
    double target = u * total, c = 0;
    for (int i = 0; i < n; i++) {
        c += probs[i];
        if (c > target && probs[i] > 0) return i;
    }
    return last; /* rounding: the target fell past the last step */
}
