/* SIMD_CLONES before a function of plain C loops (omp simd) compiles it for
 * AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and baseline x86-64, and the
 * variant this CPU runs is picked when the library loads (GCC's
 * target_clones). For loops not worth a slot in the kernel tables
 * (kernels/kernels.h): the default build targets baseline x86-64, whose
 * vectors are four floats wide. The build is ISO C (-std=c11), so no clone
 * contracts a multiply and an add into one rounding: element-wise results
 * are the same bits in every variant; only the order of an omp simd
 * reduction's additions follows the vector width. Elsewhere (other
 * compilers or CPUs): one plain build. */
#ifndef RWKV_KERNELS_SIMD_CLONES_H
#define RWKV_KERNELS_SIMD_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

#endif
