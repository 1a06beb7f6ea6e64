/* The RWKV-4 WKV operator over a training batch (docs/rwkv-architecture.md
 * §1.3, §2): the stable forward recurrence from the zero state and the
 * stable two-sweep backward, exactly the algorithms of kernels/wkv4.c. The
 * state, every exponential and every sum are float32 (the decay e^d can be
 * within 1e-6 of 1: no exponent ever exceeds 0, and nothing is stored in
 * bf16 but the inputs and outputs). The receptance gate σ(r) is fused in on
 * both sides.
 *
 * Layout: a block owns one row b and 32 adjacent channels. Its first warp
 * runs the recurrences, one lane per channel, time sequential; the other
 * warps stage the inputs of the next WKV_TT time steps into shared memory
 * while it computes the current ones (double buffered). A lone thread per
 * channel is a serial chain with few loads in flight, bound by memory
 * latency; with the loads moved to loader warps, the chain only waits on
 * shared memory. */
#include "cuda/common.cuh"

#define EMPTY_P (-1e38f) /* "no past terms yet" (§1.3) */

enum { WKV_TT = 32, WKV_WARPS = 4 };

/* Loader threads (warps 1..) copy steps [t0, t0 + WKV_TT) of one stream for
 * the block's channels into dst[step][lane], zeros past the end. */
template <typename T>
__device__ __forceinline__ void stage(float (*dst)[32], const T *src, int t0, int T_len, int C, int nc) {
    const int lt = threadIdx.x - 32, nl = blockDim.x - 32;
    for (int e = lt; e < WKV_TT * 32; e += nl) {
        const int tt = e >> 5, cc = e & 31, t = t0 + tt;
        dst[tt][cc] = t < T_len && cc < nc ? ld(src + (size_t)t * C + cc) : 0.0f;
    }
}

template <typename T>
__global__ void __launch_bounds__(WKV_WARPS * 32) wkv_forward_kernel(int T_len, int C,
                                                                     const float *theta, const float *u_,
                                                                     const T *k, const T *v, const T *r,
                                                                     T *y, T *ry) {
    __shared__ float buf[2][3][WKV_TT][32];
    const int c0 = blockIdx.x * 32, lane = threadIdx.x & 31, loader = threadIdx.x >= 32;
    const int nc = min(32, C - c0);
    const size_t o = (size_t)blockIdx.y * T_len * C + c0;
    k += o, v += o, r += o, y += o, ry += o;
    if (loader) stage(buf[0][0], k, 0, T_len, C, nc), stage(buf[0][1], v, 0, T_len, C, nc),
        stage(buf[0][2], r, 0, T_len, C, nc);
    __syncthreads();
    const int c = c0 + (lane < nc ? lane : 0);
    const float d = -expf(theta[c]), u = u_[c];
    float a = 0.0f, bs = 0.0f, p = EMPTY_P;
    for (int t0 = 0, cur = 0; t0 < T_len; t0 += WKV_TT, cur ^= 1) {
        if (loader) {
            if (t0 + WKV_TT < T_len)
                stage(buf[cur ^ 1][0], k, t0 + WKV_TT, T_len, C, nc),
                    stage(buf[cur ^ 1][1], v, t0 + WKV_TT, T_len, C, nc),
                    stage(buf[cur ^ 1][2], r, t0 + WKV_TT, T_len, C, nc);
        } else if (lane < nc) {
            const int steps = min(WKV_TT, T_len - t0);
            for (int tt = 0; tt < steps; tt++) {
                const size_t i = (size_t)(t0 + tt) * C + lane;
                const float kt = buf[cur][0][tt][lane], vt = buf[cur][1][tt][lane];
                const float uk = u + kt;
                float q = fmaxf(p, uk);
                float e1 = expf(p - q), e2 = expf(uk - q);
                const float yt = (e1 * a + e2 * vt) / (e1 * bs + e2);
                st(y + i, yt);
                st(ry + i, sigmoid(buf[cur][2][tt][lane]) * yt);
                const float pd = p + d;
                q = fmaxf(pd, kt);
                e1 = expf(pd - q);
                e2 = expf(kt - q);
                a = e1 * a + e2 * vt;
                bs = e1 * bs + e2;
                p = q;
            }
        }
        __syncthreads();
    }
}

static dim3 wkv_grid(int B, int C) { return dim3((unsigned)((C + 31) / 32), (unsigned)B); }

void cuda_wkv_forward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                      const void *d_k, const void *d_v, const void *d_r, void *d_y, void *d_ry,
                      cuda_stream stream) {
    CUDA_DISPATCH(t, wkv_forward_kernel<act_t><<<wkv_grid(B, C), WKV_WARPS * 32, 0, stream>>>(
                         T, C, d_theta, d_u, (const act_t *)d_k, (const act_t *)d_v, (const act_t *)d_r,
                         (act_t *)d_y, (act_t *)d_ry));
}

/* Sweep 1 of the backward for one (b, c) lane over the staged steps
 * [t0, t0 + steps) (see kernels/wkv4.c for each line): the forward
 * recurrence again with the derivative sums a', b'; stores
 * s_t = gy_t e^q / D_t and q_t, the gate's gradient gr, and sums Gd, Gu. */
struct sweep1_state {
    float a, bs, ad, bd, p;
    double gd, gu;
};

template <typename T>
__device__ __forceinline__ void sweep1_steps(sweep1_state &S, float (*const in)[WKV_TT][32], int t0, int steps,
                                             int C, int lane, float d, float u, T *gr, float *s_buf,
                                             float *q_buf) {
    for (int tt = 0; tt < steps; tt++) {
        const size_t i = (size_t)(t0 + tt) * C + lane;
        const float kt = in[0][tt][lane], vt = in[1][tt][lane], yt = in[2][tt][lane];
        const float sg = sigmoid(in[3][tt][lane]), gt = in[4][tt][lane];
        st(gr + i, gt * yt * sg * (1.0f - sg));
        const float gy = gt * sg;
        const float uk = u + kt;
        float q, e1, e2;
        if (S.p > uk) q = S.p, e1 = 1.0f, e2 = expf(uk - S.p);
        else q = uk, e1 = expf(S.p - uk), e2 = 1.0f;
        const float s = gy / (e1 * S.bs + e2);
        S.gd += (double)((S.ad - yt * S.bd) * e1 * s);
        S.gu += (double)((vt - yt) * e2 * s);
        s_buf[i] = s;
        q_buf[i] = q;
        const float pd = S.p + d;
        float q2, f1, f2;
        if (pd > kt) q2 = pd, f1 = 1.0f, f2 = expf(kt - pd);
        else q2 = kt, f1 = expf(pd - kt), f2 = 1.0f;
        S.ad = f1 * (S.a + S.ad);
        S.bd = f1 * (S.bs + S.bd);
        S.a = f1 * S.a + f2 * vt;
        S.bs = f1 * S.bs + f2;
        S.p = q2;
    }
}

/* Sweep 2, backwards in time over the staged steps: (P~, Q~) sharing the
 * exponent P give gk and gv. */
template <typename T>
__device__ __forceinline__ void sweep2_steps(float &Pt, float &Qt, float &P, float (*const in)[WKV_TT][32],
                                             int t0, int steps, int C, int lane, float d, float u, T *gk,
                                             T *gv) {
    for (int tt = steps - 1; tt >= 0; tt--) {
        const size_t i = (size_t)(t0 + tt) * C + lane;
        const float kj = in[0][tt][lane], vj = in[1][tt][lane], yj = in[2][tt][lane];
        const float s = in[3][tt][lane], q = in[4][tt][lane];
        const float c1 = s * expf(u + kj - q); /* g_j e^{u+k_j} / D_j */
        const float c2 = expf(kj + P);
        st(gk + i, c1 * (vj - yj) + c2 * (Pt * vj - Qt));
        st(gv + i, c1 + c2 * Pt);
        const float E = -q; /* g_j / D_j = s_j e^E */
        const float pd = P + d;
        float M, f1, f2;
        if (pd > E) M = pd, f1 = 1.0f, f2 = s * expf(E - pd);
        else M = E, f1 = expf(pd - E), f2 = s;
        Pt = f1 * Pt + f2;
        Qt = f1 * Qt + f2 * yj;
        P = M;
    }
}

template <typename T>
__global__ void __launch_bounds__(WKV_WARPS * 32) wkv_backward_kernel(
    int B, int T_len, int C, const float *theta, const float *u_, const T *k, const T *v, const T *r,
    const T *y, const T *g, T *gk, T *gv, T *gr, float *s_buf, float *q_buf, double *rowsum) {
    __shared__ float buf[2][5][WKV_TT][32];
    const int b = blockIdx.y, c0 = blockIdx.x * 32, lane = threadIdx.x & 31, loader = threadIdx.x >= 32;
    const int nc = min(32, C - c0);
    const size_t o = (size_t)b * T_len * C + c0;
    k += o, v += o, r += o, y += o, g += o, gk += o, gv += o, gr += o, s_buf += o, q_buf += o;
    const int c = c0 + (lane < nc ? lane : 0);
    const float d = -expf(theta[c]), u = u_[c];
    /* sweep 1, forward in time */
    if (loader) stage(buf[0][0], k, 0, T_len, C, nc), stage(buf[0][1], v, 0, T_len, C, nc),
        stage(buf[0][2], y, 0, T_len, C, nc), stage(buf[0][3], r, 0, T_len, C, nc),
        stage(buf[0][4], g, 0, T_len, C, nc);
    __syncthreads();
    sweep1_state S = {0.0f, 0.0f, 0.0f, 0.0f, EMPTY_P, 0.0, 0.0};
    int cur = 0;
    for (int t0 = 0; t0 < T_len; t0 += WKV_TT, cur ^= 1) {
        const int t1 = t0 + WKV_TT;
        if (loader) {
            if (t1 < T_len)
                stage(buf[cur ^ 1][0], k, t1, T_len, C, nc), stage(buf[cur ^ 1][1], v, t1, T_len, C, nc),
                    stage(buf[cur ^ 1][2], y, t1, T_len, C, nc), stage(buf[cur ^ 1][3], r, t1, T_len, C, nc),
                    stage(buf[cur ^ 1][4], g, t1, T_len, C, nc);
        } else if (lane < nc) {
            sweep1_steps(S, buf[cur], t0, min(WKV_TT, T_len - t0), C, lane, d, u, gr, s_buf, q_buf);
        }
        __syncthreads(); /* also makes this tile's s, q visible to the loaders */
    }
    if (!loader && lane < nc) {
        rowsum[(size_t)b * C + c0 + lane] = S.gd;
        rowsum[(size_t)(B + b) * C + c0 + lane] = S.gu;
    }
    /* sweep 2, backwards in time, tiles from the last */
    const int last0 = (T_len - 1) / WKV_TT * WKV_TT;
    cur = 0;
    if (loader) stage(buf[0][0], k, last0, T_len, C, nc), stage(buf[0][1], v, last0, T_len, C, nc),
        stage(buf[0][2], y, last0, T_len, C, nc), stage(buf[0][3], s_buf, last0, T_len, C, nc),
        stage(buf[0][4], q_buf, last0, T_len, C, nc);
    __syncthreads();
    float Pt = 0.0f, Qt = 0.0f, P = EMPTY_P;
    for (int t0 = last0; t0 >= 0; t0 -= WKV_TT, cur ^= 1) {
        const int tp = t0 - WKV_TT;
        if (loader) {
            if (tp >= 0)
                stage(buf[cur ^ 1][0], k, tp, T_len, C, nc), stage(buf[cur ^ 1][1], v, tp, T_len, C, nc),
                    stage(buf[cur ^ 1][2], y, tp, T_len, C, nc), stage(buf[cur ^ 1][3], s_buf, tp, T_len, C, nc),
                    stage(buf[cur ^ 1][4], q_buf, tp, T_len, C, nc);
        } else if (lane < nc) {
            sweep2_steps(Pt, Qt, P, buf[cur], t0, min(WKV_TT, T_len - t0), C, lane, d, u, gk, gv);
        }
        __syncthreads();
    }
}

/* gθ += d·Σ_b Gd, gu += Σ_b Gu, the rows in order (∂θ = d·∂d, §2). */
__global__ static void wkv_param_grads_kernel(int B, int C, const float *theta, const double *rowsum,
                                              float *gtheta, float *gu) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sd = 0.0, su = 0.0;
    for (int b = 0; b < B; b++) {
        sd += rowsum[(size_t)b * C + c];
        su += rowsum[(size_t)(B + b) * C + c];
    }
    gtheta[c] += (float)(-(double)expf(theta[c]) * sd);
    gu[c] += (float)su;
}

void cuda_wkv_backward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                       const void *d_k, const void *d_v, const void *d_r, const void *d_y,
                       const void *d_g, void *d_gk, void *d_gv, void *d_gr, float *d_gtheta,
                       float *d_gu, float *d_s, float *d_q, double *d_rowsum, cuda_stream stream) {
    CUDA_DISPATCH(t, wkv_backward_kernel<act_t><<<wkv_grid(B, C), WKV_WARPS * 32, 0, stream>>>(
                         B, T, C, d_theta, d_u, (const act_t *)d_k, (const act_t *)d_v, (const act_t *)d_r,
                         (const act_t *)d_y, (const act_t *)d_g, (act_t *)d_gk, (act_t *)d_gv, (act_t *)d_gr,
                         d_s, d_q, d_rowsum));
    wkv_param_grads_kernel<<<cuda_blocks(C, 256), 256, 0, stream>>>(B, C, d_theta, d_rowsum,
                                                                     d_gtheta, d_gu);
}
