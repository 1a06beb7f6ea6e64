/* The partial sums of the RWKV-5/6/7 row kernels (kernels/wkv5.c,
 * kernels/wkv7.c). A dot product over a state row keeps WKV_LANES
 * independent partial sums, combined in a fixed order, so it is not one
 * serial chain of dependent additions and the compiler keeps the lanes in
 * one vector register (8 floats: one AVX2 register). The scalar and AVX2
 * builds of a row run the same operations in the same order (ISO C mode:
 * no contraction into FMA), so they agree bit for bit. */
#ifndef RWKV_KERNELS_WKV_LANES_H
#define RWKV_KERNELS_WKV_LANES_H

enum { WKV_LANES = 8 };

/* The row body is one source compiled twice (scalar, AVX2): always inlined
 * into each build. */
#if defined(__GNUC__)
#define WKV_INLINE static inline __attribute__((always_inline))
#else
#define WKV_INLINE static inline
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define WKV_X86 1
#endif

WKV_INLINE float lanes_sum(const float *p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

#endif
