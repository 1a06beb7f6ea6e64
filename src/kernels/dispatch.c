/* Which kernel table runs: CPU feature detection (CPUID + XGETBV) and the
 * choice, made once at the first call.
 *
 * Tables: "scalar" (portable C, the reference), "avx2" (AVX2 + FMA + F16C)
 * and "avx512" (AVX-512 F/BW/VL/DQ on top of those). Each SIMD table lives
 * in its own file, compiled for its instruction set with a target pragma, so
 * the default build stays portable; a table is only ever used when CPUID
 * says the CPU has the instructions and XGETBV says the OS saves the
 * registers. RWKV_KERNELS=scalar|avx2|avx512 overrides the choice. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define KERNELS_X86 1
#include <cpuid.h>
#endif

static int have_avx2, have_avx512;
/* Features of the integer dot products (kernels/dot_int8.h): AVX-VNNI
 * (vpdpbusd on ymm, VEX), and AVX-512 VNNI with VBMI (byte permutes). */
static int have_avxvnni, have_avx512vnni;
/* AVX-512 BF16 (vdpbf16ps): the bf16 prompt products (kernels/matmul_bf16.h). */
static int have_avx512bf16;

#ifdef KERNELS_X86
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    unsigned long long xcr0 = xgetbv0();
    int os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    have_avx2 = os_ymm && avx2 && fma && f16c;
    have_avx512 = have_avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
    const int vbmi = (c >> 1) & 1, vnni512 = (c >> 11) & 1;
    have_avx512vnni = have_avx512 && vbmi && vnni512;
    if (a >= 1) { /* leaf 7 has a subleaf 1 */
        __cpuid_count(7, 1, a, b, c, d);
        have_avxvnni = have_avx2 && ((a >> 4) & 1);
        have_avx512bf16 = have_avx512 && ((a >> 5) & 1);
    }
}
#else
static void detect(void) {}
#endif

static int supported(const char *name) {
    if (strcmp(name, "scalar") == 0) return 1;
    if (strcmp(name, "avx2") == 0) return have_avx2;
    if (strcmp(name, "avx512") == 0) return have_avx512;
    if (strcmp(name, "avxvnni") == 0) return have_avxvnni;
    if (strcmp(name, "avx512vnni") == 0) return have_avx512vnni;
    if (strcmp(name, "avx512bf16") == 0) return have_avx512bf16;
    return 0;
}

/* Every table compiled in, from the reference to the widest. */
static const kernel_ops *const table[] = {
    &kernels_scalar,
#ifdef KERNELS_X86
    &kernels_avx2,
    &kernels_avx512,
#endif
    NULL,
};
static const kernel_ops *active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    detect();
    for (int i = 0; table[i]; i++) /* the widest this CPU runs */
        if (supported(table[i]->name)) active = table[i];
    const char *env = getenv("RWKV_KERNELS");
    if (env && *env) {
        for (int i = 0; table[i]; i++)
            if (strcmp(table[i]->name, env) == 0 && supported(env)) active = table[i];
    }
}

int kernels_cpu_supports(const char *name) {
    pthread_once(&once, init);
    return supported(name);
}

const kernel_ops *kernels_active(void) {
    pthread_once(&once, init);
    return active;
}

const kernel_ops *kernels_get(const char *name) {
    pthread_once(&once, init);
    if (!kernels_cpu_supports(name)) return NULL;
    for (int i = 0; table[i]; i++)
        if (strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}

int kernels_select(const char *name) {
    const kernel_ops *k = kernels_get(name);
    if (!k) return -1;
    active = k;
    return 0;
}

const kernel_ops *const *kernels_all(void) {
    pthread_once(&once, init);
    return table;
}
