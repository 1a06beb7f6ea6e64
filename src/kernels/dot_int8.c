/* The integer decode path of the block formats (kernels/dot_int8.h): the
 * activation layout, the scalar reference every variant is tested against,
 * and which variant runs. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot_int8.h"
#include "kernels/kquant_q8.h"
#include "kernels/row_groups.h"

size_t act_q8_bytes(int n) {
    const size_t lanes = (size_t)n / 4 + 8;
    return ((size_t)n + 32 + 63) / 64 * 64 + 3 * ((lanes * 4 + 63) / 64 * 64);
}

void act_q8_bind(act_q8 *a, void *mem, int n) {
    const size_t lanes = (size_t)n / 4 + 8, lane_bytes = (lanes * 4 + 63) / 64 * 64;
    uint8_t *p = mem;
    a->n = n;
    a->q = (int8_t *)p;
    p += ((size_t)n + 32 + 63) / 64 * 64;
    a->d = (float *)p;
    a->qneg8 = (int32_t *)(p + lane_bytes);
    a->xsum = (float *)(p + 2 * lane_bytes);
}

/* ---- the scalar reference ------------------------------------------------ */

void act_q8_clear_pad(act_q8 *a) {
    memset(a->q + a->n, 0, 32);
    const int l = a->n / 4;
    memset(a->d + l, 0, 8 * sizeof(float));
    memset(a->qneg8 + l, 0, 8 * sizeof(int32_t));
    memset(a->xsum + l, 0, 8 * sizeof(float));
}

/* d = max|x| / 127 and q = x · (1/d) rounded to nearest even: the same float
 * operations as the SIMD quantizers, so they produce the same codes. */
static void quantize_scalar(const float *x, act_q8 *a) {
    for (int b = 0; b < a->n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0, sum = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f, id = activation_scale_ok(d) ? 1.0f / d : 0.0f;
        int qs = 0;
        for (int j = 0; j < 32; j++) {
            float v = fminf(fmaxf(nearbyintf(xb[j] * id), -127.0f), 127.0f);
            a->q[32 * b + j] = (int8_t)v;
            qs += (int)v;
            sum += xb[j];
        }
        for (int l = 0; l < 8; l++) {
            a->d[8 * b + l] = d;
            a->qneg8[8 * b + l] = l == 0 ? -8 * qs : 0;
            a->xsum[8 * b + l] = l == 0 ? sum : 0.0f;
        }
    }
    act_q8_clear_pad(a);
}

static float f16_le(const uint8_t *p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* The 32 codes of one block as stored (before the format's offset), its
 * scale, its minimum (0 for the symmetric formats) and the offset
 * (8 for Q4_0, 16 for Q5_0, else 0). */
static void block_codes(dtype t, const uint8_t *b, int c[32], float *d, float *m, int *offset) {
    *d = f16_le(b);
    *m = 0.0f;
    *offset = 0;
    if (t == DT_Q8_0) {
        for (int j = 0; j < 32; j++) c[j] = (int8_t)b[2 + j];
        return;
    }
    const int has_min = t == DT_Q4_1 || t == DT_Q5_1, five = t == DT_Q5_0 || t == DT_Q5_1;
    if (has_min) *m = f16_le(b + 2);
    const uint8_t *qh = b + (has_min ? 4 : 2), *qs = qh + (five ? 4 : 0);
    const uint32_t hi = five ? (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24 : 0;
    for (int j = 0; j < 32; j++) c[j] = (qs[j & 15] >> (j < 16 ? 0 : 4) & 15) | (int)((hi >> j) & 1) << 4;
    if (!has_min) *offset = five ? 16 : 8;
}

static void rows_scalar(const matrix *W, const act_q8 *a, float *y, int r0, int r1) {
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols), bb = dtype_block_bytes(W->type);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * rb;
        float acc = 0.0f;
        for (int b = 0; b < W->cols / 32; b++) {
            int c[32], offset;
            float d, m;
            block_codes(W->type, row + (size_t)b * bb, c, &d, &m, &offset);
            int dot = offset / 8 * a->qneg8[8 * b];
            for (int j = 0; j < 32; j++) dot += c[j] * a->q[32 * b + j];
            acc += d * a->d[8 * b] * (float)dot + m * a->xsum[8 * b];
        }
        y[r - r0] = acc;
    }
}

const int8_dot_ops int8_dot_scalar = {"scalar", "scalar", quantize_scalar, rows_scalar, NULL, NULL, NULL, NULL};

void int8_dot_rows(const int8_dot_ops *d, const matrix *W, const act_q8 *a, float *y, int r0, int r1) {
    const int end = d->groups ? row_groups_end(W, r0, r1) : r0;
    if (end > r0) d->groups(W, a, y, r0 / ROW_GROUP, end / ROW_GROUP);
    if (end < r1) d->rows(W, a, y + (end - r0), end, r1);
}

/* ---- which variant runs ---------------------------------------------------- */

int int8_dot_handles(dtype t) {
    return t == DT_Q8_0 || t == DT_Q4_0 || t == DT_Q4_1 || t == DT_Q5_0 || t == DT_Q5_1;
}

static const int8_dot_ops *const variants[] = {
    &int8_dot_scalar,
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    &int8_dot_avx2,
    &int8_dot_avxvnni,
    &int8_dot_avx512vnni,
#endif
    NULL,
};

const int8_dot_ops *const *int8_dot_all(void) { return variants; }

int int8_dot_supported(const int8_dot_ops *d) {
    return kernels_cpu_supports(d->base) && (d == &int8_dot_scalar || d == &int8_dot_avx2 || kernels_cpu_supports(d->name));
}

/* Instruction-set rank of a kernel table: scalar < avx2 < avx512. */
static int rank(const char *table) { return strcmp(table, "avx512") == 0 ? 2 : strcmp(table, "avx2") == 0; }

static const int8_dot_ops *best_of(const kernel_ops *k) {
    const int8_dot_ops *best = &int8_dot_scalar;
    for (int i = 0; variants[i]; i++)
        if (int8_dot_supported(variants[i]) && rank(variants[i]->base) <= rank(k->name)) best = variants[i];
    return best;
}

/* The choice for every table, made once (every decode product asks). */
#define MAX_TABLES 8
static const kernel_ops *tables[MAX_TABLES];
static const int8_dot_ops *choice[MAX_TABLES];
static pthread_once_t choice_once = PTHREAD_ONCE_INIT;

static void choice_init(void) {
    const kernel_ops *const *all = kernels_all();
    for (int i = 0; all[i] && i < MAX_TABLES; i++) tables[i] = all[i], choice[i] = best_of(all[i]);
}

const int8_dot_ops *int8_dot_for(const kernel_ops *k) {
    pthread_once(&choice_once, choice_init);
    for (int i = 0; i < MAX_TABLES && tables[i]; i++)
        if (tables[i] == k) return choice[i];
    return best_of(k);
}

static int int8_on = 1;
static pthread_once_t mode_once = PTHREAD_ONCE_INIT;

static void mode_init(void) {
    const char *env = getenv("RWKV_ACTIVATIONS");
    if (env && strcmp(env, "f32") == 0) int8_on = 0;
}

int kernels_int8_activations(void) {
    pthread_once(&mode_once, mode_init);
    return int8_on;
}

void kernels_set_int8_activations(int on) {
    pthread_once(&mode_once, mode_init);
    int8_on = on != 0;
}

/* ---- a product's x, quantized by each thread for itself ---------------------- */

int int8_product_prepare(const kernel_ops *k, const matrix *W, const float *x, int8_product *p) {
    static _Atomic unsigned long next_id = 1;
    *p = (int8_product){.k = k, .x = x};
    if (!kernels_int8_activations()) return 0;
    if (dtype_block_elems(W->type) == QK_K) { /* a k-quant */
        if (!k->kquant_prepare || W->cols % QK_K || W->cols > KQ8_MAX_COLS) return 0;
        p->bytes = k->kquant_bytes(W->cols);
    } else if (int8_dot_handles(W->type) && W->cols % 32 == 0) {
        p->d = int8_dot_for(k);
        p->bytes = act_q8_bytes(W->cols);
    } else {
        return 0;
    }
    p->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    return 1;
}

/* One quantized copy of a product's x on one thread. */
typedef struct act_slot {
    unsigned long id; /* the product (0: none) */
    void *mem;
    size_t bytes;
    const void *acts; /* what the rows read, in mem; NULL: the float path */
    act_q8 a;
} act_slot;

/* A group job's products have consecutive ids, so each keeps its own slot. */
#define ACT_SLOTS MATMUL_GROUP_MAX

static _Thread_local act_slot *thread_slots;
static pthread_key_t slots_key; /* frees a thread's slots when it exits */
static int slots_key_ok;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static void slots_free(void *p) {
    act_slot *s = p;
    for (int i = 0; i < ACT_SLOTS; i++) free(s[i].mem);
    free(s);
}

static void slots_init(void) { slots_key_ok = pthread_key_create(&slots_key, slots_free) == 0; }

static act_slot *my_slots(void) {
    if (thread_slots) return thread_slots;
    pthread_once(&slots_once, slots_init);
    act_slot *s = slots_key_ok ? calloc(ACT_SLOTS, sizeof *s) : NULL;
    if (s && pthread_setspecific(slots_key, s) != 0) {
        free(s);
        s = NULL;
    }
    return thread_slots = s;
}

/* This thread's copy of p's x, quantized on its first call for p; NULL
 * where no memory could be had. */
static const act_slot *my_copy(const int8_product *p, const matrix *W) {
    act_slot *slots = my_slots();
    if (!slots) return NULL;
    act_slot *s = &slots[p->id % ACT_SLOTS];
    if (s->id == p->id) return s;
    s->id = 0;
    if (s->bytes < p->bytes) {
        free(s->mem);
        s->bytes = (s->mem = aligned_alloc(64, p->bytes)) ? p->bytes : 0;
        if (!s->mem) return NULL;
    }
    if (p->d) {
        act_q8_bind(&s->a, s->mem, W->cols);
        p->d->quantize(p->x, &s->a);
        s->acts = &s->a;
    } else {
        s->acts = p->k->kquant_prepare(W, p->x, s->mem);
    }
    s->id = p->id;
    return s;
}

void int8_product_rows(const int8_product *p, const matrix *W, float *y, int r0, int r1) {
    const act_slot *s = my_copy(p, W);
    if (!s || !s->acts) p->k->matvec_rows(W, p->x, y, r0, r1);
    else if (p->d) int8_dot_rows(p->d, W, s->acts, y, r0, r1);
    else p->k->kquant_rows(W, s->acts, y, r0, r1);
}
