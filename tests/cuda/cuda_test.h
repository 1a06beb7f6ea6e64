/* Helpers of the GPU tests: device buffers filled from host floats in
 * either storage type, read back as floats, poisoned with NaN, and the
 * bf16 rounding of host data (so a CPU reference can see exactly the inputs
 * the device sees). Every test starts with NEED_GPU(), which skips it with
 * "no CUDA device" where none exists. */
#ifndef RWKV_CUDA_TEST_H
#define RWKV_CUDA_TEST_H

#include <stdint.h>
#include <string.h>

#include "cuda/cuda_ops.h"
#include "test.h"

#define NEED_GPU()                                                                                 \
    do {                                                                                           \
        if (cuda_device_count() <= 0) SKIP("no CUDA device");                                      \
    } while (0)

static uint64_t test_rng = 0x9E3779B97F4A7C15ull;
/* uniform in [lo, hi) */
__attribute__((unused)) static float urand(float lo, float hi) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return lo + (hi - lo) * (float)((test_rng >> 40) * (1.0 / 16777216.0));
}

__attribute__((unused)) static float *random_floats(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    if (x)
        for (size_t i = 0; i < n; i++) x[i] = urand(lo, hi);
    return x;
}

/* Round to the nearest bfloat16 (ties to even), in place. */
__attribute__((unused)) static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        memcpy(&x[i], &u, 4);
    }
}

/* A device copy of host floats stored as t (NULL on failure). */
__attribute__((unused)) static void *to_device(cuda_dtype t, const float *x, size_t n) {
    void *f = NULL, *d = NULL;
    if (cuda_alloc(&f, n * 4, "test", NULL) || cuda_upload(f, x, n * 4, NULL)) {
        cuda_free(f);
        return NULL;
    }
    if (t == CUDA_F32) return f;
    if (cuda_alloc(&d, n * 2, "test", NULL)) d = NULL;
    else cuda_convert(t, d, CUDA_F32, f, n, 0);
    cuda_sync(0, "test", NULL);
    cuda_free(f);
    return d;
}

/* A device buffer of n elements of t full of NaN (outputs start poisoned). */
__attribute__((unused)) static void *poisoned(cuda_dtype t, size_t n) {
    void *d = NULL;
    if (cuda_alloc(&d, n * cuda_dtype_size(t), "test", NULL)) return NULL;
    cuda_fill(t, d, NAN, n, 0);
    return d;
}

/* Host floats of a device buffer stored as t (malloc'd; NULL on failure,
 * including any earlier asynchronous error). */
__attribute__((unused)) static float *to_host(cuda_dtype t, const void *d, size_t n) {
    float *x = malloc(n * sizeof(float));
    void *f = NULL;
    if (!x) return NULL;
    if (t == CUDA_F32) {
        if (cuda_sync(0, "test", NULL) || cuda_download(x, d, n * 4, NULL)) goto fail;
        return x;
    }
    if (cuda_alloc(&f, n * 4, "test", NULL)) goto fail;
    cuda_convert(CUDA_F32, f, t, d, n, 0);
    if (cuda_sync(0, "test", NULL) || cuda_download(x, f, n * 4, NULL)) goto fail;
    cuda_free(f);
    return x;
fail:
    cuda_free(f);
    free(x);
    return NULL;
}

__attribute__((unused)) static const char *dtype_label(cuda_dtype t) { return t == CUDA_BF16 ? "bf16" : "fp32"; }

#endif
