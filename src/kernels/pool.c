/* A small thread pool for the kernels' parallel loops (matvec, matmul).
 *
 * Why not OpenMP: a decode step runs ~85 short parallel loops (20-100 us
 * each). With a fork/join runtime every loop ends in a barrier that waits
 * for *every* thread; when another process holds the second core, the
 * waiting thread spins until the scheduler runs its partner again, and a
 * 5 ms token took 650 ms in our measurements (docs/perf.md). Here work is
 * split into chunks that threads *claim* from a shared counter; the calling
 * thread claims chunks too and waits only for chunks already claimed, so a
 * worker that never got the CPU simply takes no chunk and holds nothing up.
 *
 * Workers spin for 0.1 ms after each job, since the next one usually
 * follows within microseconds (yielding now and then once 20 us have
 * passed), then sleep on a condition variable; the caller likewise spins
 * briefly, then sleeps until the last claimed chunk is done. One job runs
 * at a time; a caller that finds the pool busy (e.g. another application
 * thread evaluating another model) runs its loop on its own thread. If the
 * caller keeps waiting on descheduled workers (an oversubscribed machine),
 * it runs jobs alone for a while: 2 ms after a lone long wait (a virtual
 * CPU paused by its host for a moment), twice as long each time the wait
 * recurs soon after, up to 50 ms (another process holding the core).
 *
 * A pinned loop (parallel_for_pinned) hands each thread the same chunks on
 * every call, for data that should stay in one core's caches between calls:
 * its ticket holds a mask of claimed chunks instead of a counter, and each
 * thread claims its own range first, then the others' from their far ends.
 *
 * Every parallel loop of the library runs here: mixing this pool with an
 * OpenMP runtime leaves one set of threads spinning on the core the other
 * set needs, which halved two-thread prefill (docs/perf.md). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_MAX_WORKERS 63
#define WORKER_SPIN_NS 100000L /* spin this long after a job before sleeping */
/* Spin without yielding this long first: sched_yield costs 1-3 us on a
 * virtual machine even with nothing else to run, and a worker inside it when
 * a job is published starts that much late (docs/perf.md, change 55). */
#define WORKER_YIELD_AFTER_NS 20000L
#define CALLER_SPINS 4000       /* pause loops before the caller sleeps on claimed chunks */
/* Back-off: when the caller spent most of a job (and > 0.2 ms) waiting for a
 * chunk a descheduled worker had claimed, jobs run on the caller alone for a
 * while, and helpers are tried again after that. On an idle machine the wait
 * is microseconds. A lone long wait (a host pausing the worker's virtual CPU)
 * costs only BACKOFF_FIRST_NS of one-thread jobs; waits that recur within
 * BACKOFF_RESET_NS of the last one (another process on the core) double the
 * window each time, up to BACKOFF_MAX_NS. A fixed 50 ms window left 4-15% of
 * a two-thread decode's jobs on one thread on an idle virtual machine. */
#define BACKOFF_MIN_WAIT_NS 200000L
#define BACKOFF_FIRST_NS 2000000L
#define BACKOFF_MAX_NS 50000000L
#define BACKOFF_RESET_NS 200000000L

/* A job as the workers read it. Generation g's job is in pool.jobs[g & 1],
 * a cache line of its own: the caller writes the next job's slot while a late
 * worker may still read the current one's (it then claims nothing, as the
 * ticket's generation has moved on), and without touching the line the
 * workers spin on (writing the fields into that line cost 0.6 us a job). */
typedef struct pool_job {
    _Alignas(64) _Atomic(parallel_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int n_chunks, n_workers_wanted, pinned;
    _Atomic unsigned done_target; /* pool.done once the job's last chunk is done */
} pool_job;

/* A worker's copy of the fields it needs to run chunks. */
typedef struct job_view {
    parallel_fn fn;
    void *ctx;
    int n_chunks;
    unsigned done_target;
} job_view;

static struct {
    pthread_mutex_t submit;   /* held by the thread running a job */
    pthread_mutex_t mu;       /* guards sleeping workers */
    pthread_cond_t cv;
    pthread_mutex_t done_mu;  /* the caller sleeps here for claimed chunks */
    pthread_cond_t done_cv;
    pool_job jobs[2]; /* published by the store of `ticket` */
    /* (generation << 32) | next chunk to claim (a pinned job: the mask of
     * claimed chunks) */
    _Alignas(64) _Atomic uint64_t ticket;
    /* chunks finished, counted on across jobs (so that no store resets it
     * at each job), and whether the caller sleeps waiting for it */
    _Alignas(64) _Atomic unsigned done;
    _Atomic int caller_asleep;
    _Alignas(64) _Atomic int sleepers;
    uint32_t generation;  /* the last job's (guarded by submit, as the rest) */
    unsigned done_target; /* the last job's */
    int n_workers;
    pthread_t threads[POOL_MAX_WORKERS];
    long solo_until_ns; /* back-off deadline (guarded by submit, as the two below) */
    long backoff_ns;    /* the last back-off's window */
    long backoff_at_ns; /* when it was decided */
} pool = {.submit = PTHREAD_MUTEX_INITIALIZER,
        .mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER,
        .done_mu = PTHREAD_MUTEX_INITIALIZER,
        .done_cv = PTHREAD_COND_INITIALIZER};

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Runs a claimed chunk and counts it done. */
static void run_chunk(const job_view *j, int chunk) {
    j->fn(j->ctx, chunk);
    /* the last chunk wakes the caller if it went to sleep waiting for it
     * (the caller sets caller_asleep before it reads done: one of the two
     * sees the other's store) */
    if (atomic_fetch_add(&pool.done, 1) + 1 == j->done_target && atomic_load(&pool.caller_asleep)) {
        pthread_mutex_lock(&pool.done_mu);
        pthread_cond_signal(&pool.done_cv);
        pthread_mutex_unlock(&pool.done_mu);
    }
}

/* Claims and runs chunks of generation `gen` until none are left. */
static void work(uint32_t gen, const job_view *j) {
    for (;;) {
        uint64_t t = atomic_load(&pool.ticket);
        for (;;) {
            if ((uint32_t)(t >> 32) != gen || (uint32_t)t >= (uint32_t)j->n_chunks) return;
            if (atomic_compare_exchange_weak(&pool.ticket, &t, t + 1)) break;
        }
        run_chunk(j, (int)(uint32_t)t);
    }
}

/* Claims chunk c of pinned generation `gen` (its bit in the ticket's mask). */
static int claim_pinned(uint32_t gen, int c) {
    const uint64_t bit = 1ull << c;
    uint64_t t = atomic_load(&pool.ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (t & bit)) return 0;
        if (atomic_compare_exchange_weak(&pool.ticket, &t, t | bit)) return 1;
    }
}

/* Thread `self` of n_threads (the caller is 0) on pinned generation `gen`:
 * its own range of chunks in order, then the others' from the far end, so
 * that a thread taking over a late thread's chunks meets it last. */
static void work_pinned(uint32_t gen, const job_view *j, int self, int n_threads) {
    const int first = self * j->n_chunks / n_threads, end = (self + 1) * j->n_chunks / n_threads;
    for (int c = first; c < end; c++)
        if (claim_pinned(gen, c)) run_chunk(j, c);
    for (int c = j->n_chunks - 1; c >= 0; c--) {
        if (c >= first && c < end) continue;
        if ((uint32_t)(atomic_load(&pool.ticket) >> 32) != gen) return;
        if (claim_pinned(gen, c)) run_chunk(j, c);
    }
}

/* The generation of the last published job. */
static uint32_t published(void) { return (uint32_t)(atomic_load(&pool.ticket) >> 32); }

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = published();
        if (gen == seen) {
            long t0 = now_ns();
            int spins = 0;
            while ((gen = published()) == seen) {
                cpu_relax();
                if (++spins % 256 == 0) {
                    long waited = now_ns() - t0;
                    if (waited > WORKER_SPIN_NS) break;
                    if (waited > WORKER_YIELD_AFTER_NS) sched_yield(); /* let a thread that shares this core run */
                }
            }
            if (gen == seen) {
                pthread_mutex_lock(&pool.mu);
                atomic_fetch_add(&pool.sleepers, 1);
                while ((gen = published()) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
                atomic_fetch_sub(&pool.sleepers, 1);
                pthread_mutex_unlock(&pool.mu);
            }
        }
        seen = gen;
        /* The slot holds generation `gen`'s job unless the caller has since
         * published the next one and begun writing the one after into this
         * slot. The caller writes a slot only after publishing the job before
         * it, so a field read from such a later job (each an acquire load of
         * a release store) is ordered after a ticket of another generation,
         * and work() claims nothing. */
        const pool_job *slot = &pool.jobs[gen & 1];
        const job_view j = {atomic_load_explicit(&slot->fn, memory_order_acquire),
                            atomic_load_explicit(&slot->ctx, memory_order_acquire),
                            atomic_load_explicit(&slot->n_chunks, memory_order_acquire),
                            atomic_load_explicit(&slot->done_target, memory_order_acquire)};
        int wanted = atomic_load_explicit(&slot->n_workers_wanted, memory_order_acquire);
        if (index >= wanted) continue;
        if (atomic_load_explicit(&slot->pinned, memory_order_acquire)) work_pinned(gen, &j, index + 1, wanted + 1);
        else work(gen, &j);
    }
    return NULL;
}

/* RWKV_THREADING=openmp runs every loop as an OpenMP parallel for (dynamic,
 * 1), for comparisons (docs/perf.md). */
static int use_openmp(void) {
    static _Atomic int mode = -1;
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m < 0) {
        const char *e = getenv("RWKV_THREADING");
        m = e && strcmp(e, "openmp") == 0;
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    return m;
}

static void omp_for(int n_threads, int n_chunks, parallel_fn fn, void *ctx, int pinned) {
    if (pinned) {
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int c = 0; c < n_chunks; c++) fn(ctx, c);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int c = 0; c < n_chunks; c++) fn(ctx, c);
}

static void pool_for(int n_threads, int n_chunks, parallel_fn fn, void *ctx, int pinned);

static void loop(int n_threads, int n_chunks, parallel_fn fn, void *ctx, int pinned) {
    if (n_chunks <= 0) return;
    if (use_openmp() && n_threads > 1 && n_chunks > 1)
        omp_for(n_threads < n_chunks ? n_threads : n_chunks, n_chunks, fn, ctx, pinned);
    else pool_for(n_threads, n_chunks, fn, ctx, pinned);
}

void parallel_for(int n_threads, int n_chunks, parallel_fn fn, void *ctx) { loop(n_threads, n_chunks, fn, ctx, 0); }

void parallel_for_pinned(int n_threads, int n_chunks, parallel_fn fn, void *ctx) {
    if (n_chunks > PARALLEL_PINNED_MAX) n_threads = 1; /* more chunks than the ticket's mask holds */
    loop(n_threads, n_chunks, fn, ctx, 1);
}

typedef struct rows_job {
    parallel_row_fn fn;
    void *ctx;
    int n_rows, per_chunk;
} rows_job;

static void rows_chunk(void *p, int chunk) {
    const rows_job *j = p;
    int r1 = (chunk + 1) * j->per_chunk;
    if (r1 > j->n_rows) r1 = j->n_rows;
    for (int r = chunk * j->per_chunk; r < r1; r++) j->fn(j->ctx, r);
}

static void rows_loop(int n_threads, int n_rows, size_t row_work, parallel_row_fn fn, void *ctx, int pinned) {
    if (n_threads <= 1 || n_rows < 2 || (double)n_rows * (double)row_work < PARALLEL_MIN_WORK) {
        for (int r = 0; r < n_rows; r++) fn(ctx, r);
        return;
    }
    /* a few ranges per thread: a thread that loses its core for a while
     * leaves only small ranges for the others to wait on */
    int chunks = 4 * n_threads < n_rows ? 4 * n_threads : n_rows;
    if (pinned && chunks > PARALLEL_PINNED_MAX) chunks = PARALLEL_PINNED_MAX;
    rows_job j = {fn, ctx, n_rows, (n_rows + chunks - 1) / chunks};
    loop(n_threads, (n_rows + j.per_chunk - 1) / j.per_chunk, rows_chunk, &j, pinned);
}

void parallel_rows(int n_threads, int n_rows, size_t row_work, parallel_row_fn fn, void *ctx) {
    rows_loop(n_threads, n_rows, row_work, fn, ctx, 0);
}

void parallel_rows_pinned(int n_threads, int n_rows, size_t row_work, parallel_row_fn fn, void *ctx) {
    rows_loop(n_threads, n_rows, row_work, fn, ctx, 1);
}

/* A long wait ended at t: the next jobs run on the caller alone (pool.submit held). */
static void back_off(long t) {
    const int recurs = pool.backoff_ns > 0 && t - pool.backoff_at_ns < BACKOFF_RESET_NS;
    long window = recurs ? 2 * pool.backoff_ns : BACKOFF_FIRST_NS;
    if (window > BACKOFF_MAX_NS) window = BACKOFF_MAX_NS;
    pool.backoff_ns = window;
    pool.backoff_at_ns = t;
    pool.solo_until_ns = t + window;
}

static void pool_for(int n_threads, int n_chunks, parallel_fn fn, void *ctx, int pinned) {
    if (n_threads > POOL_MAX_WORKERS + 1) n_threads = POOL_MAX_WORKERS + 1;
    if (n_threads > n_chunks) n_threads = n_chunks;
    if (n_threads <= 1 || pthread_mutex_trylock(&pool.submit) != 0) {
        for (int c = 0; c < n_chunks; c++) fn(ctx, c);
        return;
    }
    long t_start = now_ns();
    if (t_start < pool.solo_until_ns) {
        pthread_mutex_unlock(&pool.submit);
        for (int c = 0; c < n_chunks; c++) fn(ctx, c);
        return;
    }
    while (pool.n_workers < n_threads - 1) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&pool.threads[pool.n_workers], &attr, worker_main, (void *)(intptr_t)pool.n_workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) break; /* fewer helpers: the caller does the rest */
        pool.n_workers++;
    }
    /* Every chunk of the previous job is claimed and done, so the slot that
     * job did not use is free but for late readers (see worker_main). */
    const uint32_t gen = ++pool.generation;
    const unsigned target = pool.done_target += (unsigned)n_chunks;
    pool_job *slot = &pool.jobs[gen & 1];
    atomic_store_explicit(&slot->fn, fn, memory_order_release);
    atomic_store_explicit(&slot->ctx, ctx, memory_order_release);
    atomic_store_explicit(&slot->n_chunks, n_chunks, memory_order_release);
    atomic_store_explicit(&slot->n_workers_wanted, n_threads - 1, memory_order_release);
    atomic_store_explicit(&slot->pinned, pinned, memory_order_release);
    atomic_store_explicit(&slot->done_target, target, memory_order_release);
    atomic_store(&pool.ticket, (uint64_t)gen << 32);
    const job_view own = {fn, ctx, n_chunks, target};
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    if (pinned) work_pinned(gen, &own, 0, n_threads);
    else work(gen, &own);
    long t_own = atomic_load_explicit(&pool.done, memory_order_acquire) != target ? now_ns() : 0;
    /* wait only for chunks other threads have claimed and not finished:
     * briefly spinning, then asleep (a worker that was descheduled holding a
     * chunk needs this core more than a spinning caller does) */
    for (int spins = 0; atomic_load_explicit(&pool.done, memory_order_acquire) != target; spins++) {
        if (spins < CALLER_SPINS) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&pool.done_mu);
        atomic_store(&pool.caller_asleep, 1);
        while (atomic_load(&pool.done) != target) pthread_cond_wait(&pool.done_cv, &pool.done_mu);
        atomic_store(&pool.caller_asleep, 0);
        pthread_mutex_unlock(&pool.done_mu);
    }
    if (t_own) {
        long t_end = now_ns(), wait = t_end - t_own;
        if (wait > BACKOFF_MIN_WAIT_NS && 2 * wait > t_end - t_start) back_off(t_end);
    }
    pthread_mutex_unlock(&pool.submit);
}
