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

/* Read bandwidth from main memory in GB/s (1e9 bytes/s), measured by
 * summing a buffer of `bytes` float32 values (<= 0: 512 MiB, far larger than
 * any cache) split across `threads` threads (<= 0: all cores), with the
 * widest vector loads the CPU offers, enough independent accumulators to
 * keep the loads in flight, and each 4 KB page asked for 8 KB before it is
 * read (the hardware prefetchers restart at page boundaries), from 2 MB pages
 * where the kernel gives them: the most a stream reads, not a typical loop.
 * The buffer is touched once before timing; the result is the best of
 * `passes` (<= 0: 5) timed passes. Returns 0 when the buffer cannot be
 * allocated. Takes about 0.1 s per pass at 30 GB/s. */
double machine_read_gbps(int threads, long long bytes, int passes);

/* The same measurement one pass at a time, for interleaving with other
 * timed work (rwkv bench): a touched buffer, then passes on demand. */
typedef struct machine_read_buffer machine_read_buffer;
machine_read_buffer *machine_read_buffer_new(int threads, long long bytes); /* NULL when out of memory */
double machine_read_pass_gbps(machine_read_buffer *b);                    /* one timed pass */
void machine_read_buffer_free(machine_read_buffer *b);

/* The CPU: its name (CPUID brand string, else /proc/cpuinfo's "model name",
 * else "unknown") and, on x86, the display family and model numbers
 * (e.g. family 26 = AMD Zen 5); -1 where unknown. */
typedef struct machine_cpu_info {
    char name[64];
    int family, model;
} machine_cpu_info;
void machine_cpu(machine_cpu_info *info);

/* The 1-minute load average (/proc/loadavg), -1 where the system has none. */
double machine_load_avg(void);

#endif
