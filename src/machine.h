/* Facts about the machine we run on, measured rather than assumed. */
#ifndef RWKV_MACHINE_H
#define RWKV_MACHINE_H

/* Number of usable cores (at least 1). */
int machine_cores(void);

/* The float32 FMA peak of this machine in GFLOP/s (2 FLOP per FMA), measured
 * with a short timed loop of independent FMA chains on `threads` threads
 * (<= 0: all cores), using the widest vector FMA the CPU offers (AVX-512,
 * AVX2+FMA, else scalar multiply-add). Takes about 0.3 s. Deterministic
 * apart from timing; never fails (returns > 0). */
double machine_fma_peak_gflops(int threads);

/* Which instruction set the measurement used: "avx512f", "avx2+fma" or "scalar". */
const char *machine_fma_isa(void);

#endif
