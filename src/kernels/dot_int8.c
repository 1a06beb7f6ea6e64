/* The integer decode path of the block formats (kernels/dot_int8.h): the
 * activation layout, the scalar reference every variant is tested against,
 * and which variant runs. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot_int8.h"
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

/* The choice for every table, made once (matvec_rows_with asks per chunk). */
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

/* ---- one thread's rows ----------------------------------------------------- */

/* x of up to this many elements is quantized on the stack (66 KB) */
#define ACT_STACK_ELEMS 16384

int int8_product_prepare(const kernel_ops *k, const matrix *W, const float *x, int8_product *p) {
    p->mem = p->kq = NULL;
    p->k = k;
    if (!kernels_int8_activations()) return 0;
    if (k->kquant_prepare && (p->kq = k->kquant_prepare(W, x)) != NULL) return 1; /* a k-quant */
    if (!int8_dot_handles(W->type) || W->cols % 32) return 0;
    if (!(p->mem = aligned_alloc(64, act_q8_bytes(W->cols)))) return 0;
    p->d = int8_dot_for(k);
    act_q8_bind(&p->a, p->mem, W->cols);
    p->d->quantize(x, &p->a);
    return 1;
}

void int8_product_rows(const int8_product *p, const matrix *W, float *y, int r0, int r1) {
    if (p->kq) p->k->kquant_rows(W, p->kq, y, r0, r1);
    else int8_dot_rows(p->d, W, &p->a, y, r0, r1);
}

void int8_product_release(int8_product *p) {
    free(p->mem);
    free(p->kq);
    p->mem = p->kq = NULL;
}

void matvec_rows_int8(const int8_dot_ops *d, const kernel_ops *k, const matrix *W, const float *x, float *y, int r0,
                      int r1) {
    _Alignas(64) uint8_t stack_mem[ACT_STACK_ELEMS * 4 + 512];
    void *mem = stack_mem;
    if (W->cols > ACT_STACK_ELEMS && !(mem = aligned_alloc(64, act_q8_bytes(W->cols)))) {
        k->matvec_rows(W, x, y, r0, r1);
        return;
    }
    act_q8 a;
    act_q8_bind(&a, mem, W->cols);
    d->quantize(x, &a);
    int8_dot_rows(d, W, &a, y, r0, r1);
    if (mem != stack_mem) free(mem);
}
