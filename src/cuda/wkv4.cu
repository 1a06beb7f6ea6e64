/* The RWKV-4 WKV operator over a training batch (docs/model.md §1.3, §2):
 * the stable forward recurrence from the zero state and the stable
 * two-sweep backward, the algorithms of kernels/wkv4.c, with time cut into
 * chunks of WKV_CHUNK steps so that B·C·(T / WKV_CHUNK) threads share the
 * work instead of B·C (a serial chain of T steps per thread leaves most of
 * the GPU idle and waits on memory).
 *
 * Every recurrence here is linear in its state, so each runs in three
 * passes: (1) every chunk from the zero state, giving the chunk's own
 * contribution; (2) per (b, c), a short scan over the chunks: the state at a
 * chunk's start is the previous chunk's start state carried over that
 * chunk's L steps (L decays: exponent + L·d) plus that chunk's own
 * contribution; (3) every chunk again from its true start state, writing
 * the outputs. States keep the stable form of §1.3 (values scaled by e^p, p
 * a running maximum), so no exponent ever exceeds 0 and decays within 1e-6
 * of 1 lose nothing. The state, every exponential and every sum are
 * float32; only the inputs and outputs are bf16 in mixed precision. The
 * receptance gate σ(r) is fused in on both sides. */
#include "cuda/common.cuh"

#define EMPTY_P (-1e38f) /* "no past terms yet" (§1.3) */

enum { WKV_CHUNK = 64, WKV_THREADS = 128 };

__host__ __device__ static inline int wkv_chunks(int T) { return (T + WKV_CHUNK - 1) / WKV_CHUNK; }

void cuda_wkv_scratch(int B, int T, int C, size_t *floats, size_t *doubles) {
    const size_t n = (size_t)B * wkv_chunks(T) * C;
    *floats = 5 * n;  /* up to five state values per (b, chunk, c) */
    *doubles = 2 * n; /* the backward's per-chunk sums for ∂θ and ∂u */
}

/* Thread (b, chunk j, channel c), channels fastest: steps [t0, t1). */
struct wkv_slot {
    int b, j, c, t0, t1, nch;
    size_t idx, n, o; /* slot index, number of slots, offset of (b, 0, c) in [B][T][C] */
};

__device__ __forceinline__ bool wkv_slot_of(size_t idx, int B, int T, int C, wkv_slot &s) {
    s.nch = wkv_chunks(T);
    s.n = (size_t)B * s.nch * C;
    if (idx >= s.n) return false;
    s.idx = idx;
    s.c = (int)(idx % C);
    s.j = (int)(idx / C % s.nch);
    s.b = (int)(idx / ((size_t)C * s.nch));
    s.t0 = s.j * WKV_CHUNK;
    s.t1 = min(T, s.t0 + WKV_CHUNK);
    s.o = (size_t)s.b * T * C + s.c;
    return true;
}

__device__ __forceinline__ size_t thread_index() { return blockIdx.x * (size_t)blockDim.x + threadIdx.x; }

/* Pass 2 of every recurrence: for one (b, c), visits the chunks in time
 * order (forward) or reverse (backward). Each chunk's own contribution
 * (NV scaled values and their exponent, stored at [0..NV][slot]) is
 * replaced by the state at the chunk's entry, and the running state
 * becomes: entry state carried over the chunk's steps, plus the
 * contribution. `carry` adds the chunk's effect on a carried state beyond
 * the decay (the a' += L·a of the backward's derivative sums). */
template <int NV, int REVERSE, class Carry>
__device__ void chunk_scan(float *chunk, size_t n, int b, int c, int C, int T, float d, Carry carry) {
    const int nch = wkv_chunks(T);
    float x[NV], p = EMPTY_P;
#pragma unroll
    for (int i = 0; i < NV; i++) x[i] = 0.0f;
    for (int jj = 0; jj < nch; jj++) {
        const int j = REVERSE ? nch - 1 - jj : jj;
        const size_t slot = ((size_t)b * nch + j) * C + c;
        const int L = min(T, (j + 1) * WKV_CHUNK) - j * WKV_CHUNK;
        float e[NV];
#pragma unroll
        for (int i = 0; i < NV; i++) e[i] = chunk[i * n + slot], chunk[i * n + slot] = x[i];
        const float pe = chunk[NV * n + slot];
        chunk[NV * n + slot] = p;
        carry(x, L);
        const float pc = p + (float)L * d, q = fmaxf(pc, pe);
        const float w1 = expf(pc - q), w2 = expf(pe - q);
#pragma unroll
        for (int i = 0; i < NV; i++) x[i] = w1 * x[i] + w2 * e[i];
        p = q;
    }
}

struct no_carry {
    __device__ void operator()(float *, int) const {}
};

/* Pass 2 over every (b, c): one thread each. */
template <int NV, int REVERSE, class Carry>
__global__ void wkv_scan_kernel(int B, int T, int C, const float *theta, float *chunk) {
    const size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * C) return;
    const int c = (int)(idx % C), b = (int)(idx / C);
    chunk_scan<NV, REVERSE>(chunk, (size_t)B * wkv_chunks(T) * C, b, c, C, T, -expf(theta[c]), Carry());
}

/* ---- forward ------------------------------------------------------------------ */

/* One update of the (a, b, p) state by step (k, v) (§1.3). */
__device__ __forceinline__ void wkv_update(float &a, float &bs, float &p, float d, float kt, float vt) {
    const float pd = p + d, q = fmaxf(pd, kt);
    const float e1 = expf(pd - q), e2 = expf(kt - q);
    a = e1 * a + e2 * vt;
    bs = e1 * bs + e2;
    p = q;
}

/* Pass 1 (EMIT 0): each chunk's (a, b, p) from zero into chunk[0..2][slot].
 * Pass 3 (EMIT 1): from the entry state there, y and σ(r)·y. */
template <typename T, int EMIT>
__global__ void __launch_bounds__(WKV_THREADS)
    wkv_forward_pass(int B, int T_len, int C, const float *__restrict__ theta, const float *__restrict__ u_,
                     const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ r,
                     T *__restrict__ y, T *__restrict__ ry, float *__restrict__ chunk) {
    wkv_slot s;
    if (!wkv_slot_of(thread_index(), B, T_len, C, s)) return;
    const size_t n = s.n;
    const float d = -expf(theta[s.c]), u = u_[s.c];
    float a = 0.0f, bs = 0.0f, p = EMPTY_P;
    if (EMIT) a = chunk[s.idx], bs = chunk[n + s.idx], p = chunk[2 * n + s.idx];
    for (int t = s.t0; t < s.t1; t++) {
        const size_t i = s.o + (size_t)t * C;
        const float kt = ld(k + i), vt = ld(v + i);
        if (EMIT) {
            const float uk = u + kt, q = fmaxf(p, uk);
            const float e1 = expf(p - q), e2 = expf(uk - q);
            const float yt = (e1 * a + e2 * vt) / (e1 * bs + e2);
            st(y + i, yt);
            st(ry + i, sigmoid(ld(r + i)) * yt);
        }
        wkv_update(a, bs, p, d, kt, vt);
    }
    if (!EMIT) chunk[s.idx] = a, chunk[n + s.idx] = bs, chunk[2 * n + s.idx] = p;
}

static unsigned wkv_blocks(size_t n) { return cuda_blocks(n, WKV_THREADS); }

void cuda_wkv_forward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                      const void *d_k, const void *d_v, const void *d_r, void *d_y, void *d_ry, float *d_chunk,
                      cuda_stream stream) {
    const size_t slots = (size_t)B * wkv_chunks(T) * C;
    CUDA_DISPATCH(t, {
        const act_t *k = (const act_t *)d_k, *v = (const act_t *)d_v, *r = (const act_t *)d_r;
        act_t *y = (act_t *)d_y, *ry = (act_t *)d_ry;
        wkv_forward_pass<act_t, 0><<<wkv_blocks(slots), WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v,
                                                                                  r, y, ry, d_chunk);
        wkv_scan_kernel<2, 0, no_carry><<<wkv_blocks((size_t)B * C), WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_chunk);
        wkv_forward_pass<act_t, 1><<<wkv_blocks(slots), WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v,
                                                                                  r, y, ry, d_chunk);
    });
}

/* ---- backward, sweep 1 (forward in time) ------------------------------------------- */

/* The forward recurrence again with the derivative sums a', b' (true
 * α'_{t+1} = e^d (α_t + α'_t)): over L steps a start state (a, b, a', b')
 * becomes e^{Ld} (a, b, a' + L·a, b' + L·b) plus the chunk's own part. */
struct sweep1_carry {
    __device__ void operator()(float *x, int L) const {
        x[2] += (float)L * x[0];
        x[3] += (float)L * x[1];
    }
};

/* Pass 1 (EMIT 0): each chunk's (a, b, a', b', p) from zero. Pass 3
 * (EMIT 1): from the entry state, s_t = gy_t e^q / D_t and q_t (for sweep
 * 2), the gate's gradient gr, and the chunk's sums Gd, Gu (see
 * kernels/wkv4.c for each line). */
template <typename T, int EMIT>
__global__ void __launch_bounds__(WKV_THREADS)
    wkv_sweep1_pass(int B, int T_len, int C, const float *__restrict__ theta, const float *__restrict__ u_,
                    const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ r,
                    const T *__restrict__ y, const T *__restrict__ g, T *__restrict__ gr,
                    float *__restrict__ s_buf, float *__restrict__ q_buf, float *__restrict__ chunk,
                    double *__restrict__ sums) {
    wkv_slot s;
    if (!wkv_slot_of(thread_index(), B, T_len, C, s)) return;
    const size_t n = s.n;
    const float d = -expf(theta[s.c]), u = u_[s.c];
    float a = 0.0f, bs = 0.0f, ad = 0.0f, bd = 0.0f, p = EMPTY_P;
    if (EMIT)
        a = chunk[s.idx], bs = chunk[n + s.idx], ad = chunk[2 * n + s.idx], bd = chunk[3 * n + s.idx],
        p = chunk[4 * n + s.idx];
    double gd_sum = 0.0, gu_sum = 0.0;
    for (int t = s.t0; t < s.t1; t++) {
        const size_t i = s.o + (size_t)t * C;
        const float kt = ld(k + i), vt = ld(v + i);
        if (EMIT) {
            const float yt = ld(y + i), sg = sigmoid(ld(r + i)), gt = ld(g + i);
            st(gr + i, gt * yt * sg * (1.0f - sg));
            const float gy = gt * sg, uk = u + kt;
            float q, e1, e2;
            if (p > uk) q = p, e1 = 1.0f, e2 = expf(uk - p);
            else q = uk, e1 = expf(p - uk), e2 = 1.0f;
            const float sv = gy / (e1 * bs + e2);
            gd_sum += (double)((ad - yt * bd) * e1 * sv);
            gu_sum += (double)((vt - yt) * e2 * sv);
            s_buf[i] = sv;
            q_buf[i] = q;
        }
        const float pd = p + d;
        float q2, f1, f2;
        if (pd > kt) q2 = pd, f1 = 1.0f, f2 = expf(kt - pd);
        else q2 = kt, f1 = expf(pd - kt), f2 = 1.0f;
        ad = f1 * (a + ad);
        bd = f1 * (bs + bd);
        a = f1 * a + f2 * vt;
        bs = f1 * bs + f2;
        p = q2;
    }
    if (EMIT) {
        sums[s.idx] = gd_sum;
        sums[n + s.idx] = gu_sum;
    } else {
        chunk[s.idx] = a, chunk[n + s.idx] = bs, chunk[2 * n + s.idx] = ad, chunk[3 * n + s.idx] = bd;
        chunk[4 * n + s.idx] = p;
    }
}

/* ---- backward, sweep 2 (backwards in time) ----------------------------------------- */

/* (P~, Q~) sharing the exponent P: P_{j-1} = e^d P_j + g_j/D_j, Q likewise
 * with y_j; pass 1 (EMIT 0) from zero at each chunk's end, pass 3 (EMIT 1)
 * from the entry state (the sums over all later steps), writing gk, gv. */
template <typename T, int EMIT>
__global__ void __launch_bounds__(WKV_THREADS)
    wkv_sweep2_pass(int B, int T_len, int C, const float *__restrict__ theta, const float *__restrict__ u_,
                    const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ y,
                    const float *__restrict__ s_buf, const float *__restrict__ q_buf, T *__restrict__ gk,
                    T *__restrict__ gv, float *__restrict__ chunk) {
    wkv_slot s;
    if (!wkv_slot_of(thread_index(), B, T_len, C, s)) return;
    const size_t n = s.n;
    const float d = -expf(theta[s.c]), u = u_[s.c];
    float Pt = 0.0f, Qt = 0.0f, P = EMPTY_P;
    if (EMIT) Pt = chunk[s.idx], Qt = chunk[n + s.idx], P = chunk[2 * n + s.idx];
    for (int t = s.t1 - 1; t >= s.t0; t--) {
        const size_t i = s.o + (size_t)t * C;
        const float yj = ld(y + i), sv = s_buf[i], q = q_buf[i];
        if (EMIT) {
            const float kj = ld(k + i), vj = ld(v + i);
            const float c1 = sv * expf(u + kj - q); /* g_j e^{u+k_j} / D_j */
            const float c2 = expf(kj + P);
            st(gk + i, c1 * (vj - yj) + c2 * (Pt * vj - Qt));
            st(gv + i, c1 + c2 * Pt);
        }
        const float E = -q; /* g_j / D_j = s_j e^E */
        const float pd = P + d;
        float M, f1, f2;
        if (pd > E) M = pd, f1 = 1.0f, f2 = sv * expf(E - pd);
        else M = E, f1 = expf(pd - E), f2 = sv;
        Pt = f1 * Pt + f2;
        Qt = f1 * Qt + f2 * yj;
        P = M;
    }
    if (!EMIT) chunk[s.idx] = Pt, chunk[n + s.idx] = Qt, chunk[2 * n + s.idx] = P;
}

/* gθ += d·Σ Gd, gu += Σ Gu over rows and chunks in time order (∂θ = d·∂d, §2). */
__global__ static void wkv_param_grads_kernel(int B, int T, int C, const float *theta, const double *sums,
                                              float *gtheta, float *gu) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const size_t rows = (size_t)B * wkv_chunks(T), n = rows * C;
    double sd = 0.0, su = 0.0;
    for (size_t bj = 0; bj < rows; bj++) {
        sd += sums[bj * C + c];
        su += sums[n + bj * C + c];
    }
    gtheta[c] += (float)(-(double)expf(theta[c]) * sd);
    gu[c] += (float)su;
}

void cuda_wkv_backward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                       const void *d_k, const void *d_v, const void *d_r, const void *d_y,
                       const void *d_g, void *d_gk, void *d_gv, void *d_gr, float *d_gtheta,
                       float *d_gu, float *d_s, float *d_q, float *d_chunk, double *d_sums,
                       cuda_stream stream) {
    const size_t slots = (size_t)B * wkv_chunks(T) * C;
    const unsigned nb = wkv_blocks(slots), nb_scan = wkv_blocks((size_t)B * C);
    CUDA_DISPATCH(t, {
        const act_t *k = (const act_t *)d_k, *v = (const act_t *)d_v, *r = (const act_t *)d_r,
                    *y = (const act_t *)d_y, *g = (const act_t *)d_g;
        act_t *gk = (act_t *)d_gk, *gv = (act_t *)d_gv, *gr = (act_t *)d_gr;
        wkv_sweep1_pass<act_t, 0><<<nb, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v, r, y, g, gr, d_s,
                                                                  d_q, d_chunk, d_sums);
        wkv_scan_kernel<4, 0, sweep1_carry><<<nb_scan, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_chunk);
        wkv_sweep1_pass<act_t, 1><<<nb, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v, r, y, g, gr, d_s,
                                                                  d_q, d_chunk, d_sums);
        wkv_sweep2_pass<act_t, 0><<<nb, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v, y, d_s, d_q, gk,
                                                                  gv, d_chunk);
        wkv_scan_kernel<2, 1, no_carry><<<nb_scan, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_chunk);
        wkv_sweep2_pass<act_t, 1><<<nb, WKV_THREADS, 0, stream>>>(B, T, C, d_theta, d_u, k, v, y, d_s, d_q, gk,
                                                                  gv, d_chunk);
    });
    wkv_param_grads_kernel<<<cuda_blocks(C, 256), 256, 0, stream>>>(B, T, C, d_theta, d_sums, d_gtheta, d_gu);
}

/* ---- inference: one sequence continuing from its state ----------------------------- */

/* One thread per channel walks the T steps in order, exactly the CPU's
 * wkv4_forward (kernels/wkv4.c): the state (aa, bb, pp) is read at the
 * start and written back at the end. Decode (T = 1) and prefill chunks
 * both take this path; a chunk is short, so the serial chain is too. */
__global__ void wkv_state_kernel(int T, int C, const float *theta, const float *u, const float *k,
                                 const float *v, float *aa, float *bb, float *pp, float *y) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float a = aa[c], b = bb[c], p = pp[c];
    const float dc = -expf(theta[c]), uc = u[c];
    for (int t = 0; t < T; t++) {
        const size_t i = (size_t)t * C + c;
        const float kt = k[i], vt = v[i];
        float ww = uc + kt, q = fmaxf(p, ww);
        float e1 = expf(p - q), e2 = expf(ww - q);
        y[i] = (e1 * a + e2 * vt) / (e1 * b + e2);
        ww = p + dc;
        q = fmaxf(ww, kt);
        e1 = expf(ww - q);
        e2 = expf(kt - q);
        a = e1 * a + e2 * vt;
        b = e1 * b + e2;
        p = q;
    }
    aa[c] = a;
    bb[c] = b;
    pp[c] = p;
}

void cuda_wkv_forward_state(int T, int C, const float *d_theta, const float *d_u, const float *d_k,
                            const float *d_v, float *d_aa, float *d_bb, float *d_pp, float *d_y,
                            cuda_stream stream) {
    wkv_state_kernel<<<cuda_blocks((size_t)C, 64), 64, 0, stream>>>(T, C, d_theta, d_u, d_k, d_v, d_aa, d_bb,
                                                                   d_pp, d_y);
}
