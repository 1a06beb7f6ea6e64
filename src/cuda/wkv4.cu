/* The RWKV-4 WKV operator over a training batch (docs/model.md
 * §1.3, §2): the stable forward recurrence from the zero state and the
 * stable two-sweep backward, both exactly the algorithms of
 * kernels/wkv4.c. One thread per (row b,
 * channel c), time sequential inside it, consecutive threads on consecutive
 * channels so every time step is a coalesced read. The state, every
 * exponential and every sum are float32 (the decay e^d can be within 1e-6 of
 * 1: no exponent ever exceeds 0, and nothing is stored in bf16 but the
 * inputs and outputs). The receptance gate σ(r) is fused in on both sides. */
#include "cuda/common.cuh"

#define EMPTY_P (-1e38f) /* "no past terms yet" (§1.3) */

/* Each thread's time loop is latency-bound (a few hundred threads per
 * multiprocessor, each a serial chain), so the inputs of the next WKV_U
 * steps are loaded into registers while the current ones are computed. */
enum { WKV_U = 8 };

template <typename T>
__device__ __forceinline__ void load_steps(float (&dst)[WKV_U], const T *__restrict__ p, int t0,
                                           int T_len, int C) {
#pragma unroll
    for (int j = 0; j < WKV_U; j++) dst[j] = t0 + j < T_len ? ld(p + (size_t)(t0 + j) * C) : 0.0f;
}

__device__ __forceinline__ void load_steps(float (&dst)[WKV_U], const float *__restrict__ p,
                                           int t0, int T_len, int C) {
#pragma unroll
    for (int j = 0; j < WKV_U; j++) dst[j] = t0 + j < T_len ? p[(size_t)(t0 + j) * C] : 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(64) wkv_forward_kernel(int B, int T_len, int C,
                                                         const float *__restrict__ theta,
                                                         const float *__restrict__ u_,
                                                         const T *__restrict__ k, const T *__restrict__ v,
                                                         const T *__restrict__ r, T *__restrict__ y,
                                                         T *__restrict__ ry) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * C) return;
    const int b = idx / C, c = idx % C;
    const float d = -expf(theta[c]), u = u_[c];
    float a = 0.0f, bs = 0.0f, p = EMPTY_P;
    const size_t o = (size_t)b * T_len * C + c;
    k += o, v += o, r += o, y += o, ry += o;
    float kn[WKV_U], vn[WKV_U], rn[WKV_U];
    load_steps(kn, k, 0, T_len, C);
    load_steps(vn, v, 0, T_len, C);
    load_steps(rn, r, 0, T_len, C);
    for (int t0 = 0; t0 < T_len; t0 += WKV_U) {
        float kc[WKV_U], vc[WKV_U], rc[WKV_U];
#pragma unroll
        for (int j = 0; j < WKV_U; j++) kc[j] = kn[j], vc[j] = vn[j], rc[j] = rn[j];
        if (t0 + WKV_U < T_len) {
            load_steps(kn, k, t0 + WKV_U, T_len, C);
            load_steps(vn, v, t0 + WKV_U, T_len, C);
            load_steps(rn, r, t0 + WKV_U, T_len, C);
        }
#pragma unroll
        for (int j = 0; j < WKV_U; j++) {
            if (t0 + j >= T_len) break;
            const size_t i = (size_t)(t0 + j) * C;
            const float kt = kc[j], vt = vc[j];
            const float uk = u + kt;
            float q = fmaxf(p, uk);
            float e1 = expf(p - q), e2 = expf(uk - q);
            const float yt = (e1 * a + e2 * vt) / (e1 * bs + e2);
            st(y + i, yt);
            st(ry + i, sigmoid(rc[j]) * yt);
            const float pd = p + d;
            q = fmaxf(pd, kt);
            e1 = expf(pd - q);
            e2 = expf(kt - q);
            a = e1 * a + e2 * vt;
            bs = e1 * bs + e2;
            p = q;
        }
    }
}

void cuda_wkv_forward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                      const void *d_k, const void *d_v, const void *d_r, void *d_y, void *d_ry,
                      cuda_stream stream) {
    const int threads = C < 64 ? 32 : 64;
    CUDA_DISPATCH(t, wkv_forward_kernel<act_t><<<cuda_blocks((size_t)B * C, threads), threads, 0, stream>>>(
                         B, T, C, d_theta, d_u, (const act_t *)d_k, (const act_t *)d_v,
                         (const act_t *)d_r, (act_t *)d_y, (act_t *)d_ry));
}

/* One (b, c) of the two-sweep backward (see kernels/wkv4.c for the
 * derivation of each line); g is dL/d(σ(r)·y). Sweep 1 stores
 * s_t = gy_t e^q / D_t and q_t in the float32 scratch; sweep 2 runs back in
 * time over (P~, Q~) sharing the exponent P. */
template <typename T>
__global__ void __launch_bounds__(64) wkv_backward_kernel(
    int B, int T_len, int C, const float *__restrict__ theta, const float *__restrict__ u_,
    const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ r, const T *__restrict__ y,
    const T *__restrict__ g, T *__restrict__ gk, T *__restrict__ gv, T *__restrict__ gr,
    float *__restrict__ s_buf, float *__restrict__ q_buf, double *__restrict__ rowsum) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * C) return;
    const int b = idx / C, c = idx % C;
    const float d = -expf(theta[c]), u = u_[c];
    const size_t o = (size_t)b * T_len * C + c;
    k += o, v += o, r += o, y += o, g += o, gk += o, gv += o, gr += o, s_buf += o, q_buf += o;
    float a = 0.0f, bs = 0.0f, ad = 0.0f, bd = 0.0f, p = EMPTY_P;
    double gd_sum = 0.0, gu_sum = 0.0;
    float kn[WKV_U], vn[WKV_U], yn[WKV_U], rn[WKV_U], gn[WKV_U];
    load_steps(kn, k, 0, T_len, C);
    load_steps(vn, v, 0, T_len, C);
    load_steps(yn, y, 0, T_len, C);
    load_steps(rn, r, 0, T_len, C);
    load_steps(gn, g, 0, T_len, C);
    for (int t0 = 0; t0 < T_len; t0 += WKV_U) {
        float kc[WKV_U], vc[WKV_U], yc[WKV_U], rc[WKV_U], gc[WKV_U];
#pragma unroll
        for (int j = 0; j < WKV_U; j++) kc[j] = kn[j], vc[j] = vn[j], yc[j] = yn[j], rc[j] = rn[j], gc[j] = gn[j];
        if (t0 + WKV_U < T_len) {
            load_steps(kn, k, t0 + WKV_U, T_len, C);
            load_steps(vn, v, t0 + WKV_U, T_len, C);
            load_steps(yn, y, t0 + WKV_U, T_len, C);
            load_steps(rn, r, t0 + WKV_U, T_len, C);
            load_steps(gn, g, t0 + WKV_U, T_len, C);
        }
#pragma unroll
        for (int j = 0; j < WKV_U; j++) {
            if (t0 + j >= T_len) break;
            const size_t i = (size_t)(t0 + j) * C;
            const float kt = kc[j], vt = vc[j], yt = yc[j];
            const float sg = sigmoid(rc[j]), gt = gc[j];
            st(gr + i, gt * yt * sg * (1.0f - sg));
            const float gy = gt * sg;
            const float uk = u + kt;
            float q, e1, e2;
            if (p > uk) q = p, e1 = 1.0f, e2 = expf(uk - p);
            else q = uk, e1 = expf(p - uk), e2 = 1.0f;
            const float s = gy / (e1 * bs + e2);
            gd_sum += (double)((ad - yt * bd) * e1 * s);
            gu_sum += (double)((vt - yt) * e2 * s);
            s_buf[i] = s;
            q_buf[i] = q;
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
    }
    rowsum[idx] = gd_sum;
    rowsum[(size_t)B * C + idx] = gu_sum;
    /* sweep 2, backwards in time, in chunks [t0, t0 + WKV_U) from the end */
    float Pt = 0.0f, Qt = 0.0f;
    p = EMPTY_P;
    const int last0 = (T_len - 1) / WKV_U * WKV_U;
    float sn[WKV_U], qn[WKV_U];
    load_steps(kn, k, last0, T_len, C);
    load_steps(vn, v, last0, T_len, C);
    load_steps(yn, y, last0, T_len, C);
    load_steps(sn, s_buf, last0, T_len, C);
    load_steps(qn, q_buf, last0, T_len, C);
    for (int t0 = last0; t0 >= 0; t0 -= WKV_U) {
        float kc[WKV_U], vc[WKV_U], yc[WKV_U], sc[WKV_U], qc[WKV_U];
#pragma unroll
        for (int j = 0; j < WKV_U; j++) kc[j] = kn[j], vc[j] = vn[j], yc[j] = yn[j], sc[j] = sn[j], qc[j] = qn[j];
        if (t0 > 0) {
            load_steps(kn, k, t0 - WKV_U, T_len, C);
            load_steps(vn, v, t0 - WKV_U, T_len, C);
            load_steps(yn, y, t0 - WKV_U, T_len, C);
            load_steps(sn, s_buf, t0 - WKV_U, T_len, C);
            load_steps(qn, q_buf, t0 - WKV_U, T_len, C);
        }
#pragma unroll
        for (int j = WKV_U - 1; j >= 0; j--) {
            if (t0 + j >= T_len) continue;
            const size_t i = (size_t)(t0 + j) * C;
            const float kj = kc[j], vj = vc[j], yj = yc[j], s = sc[j], q = qc[j];
            const float c1 = s * expf(u + kj - q); /* g_j e^{u+k_j} / D_j */
            const float c2 = expf(kj + p);
            st(gk + i, c1 * (vj - yj) + c2 * (Pt * vj - Qt));
            st(gv + i, c1 + c2 * Pt);
            const float E = -q; /* g_j / D_j = s_j e^E */
            const float pd = p + d;
            float M, f1, f2;
            if (pd > E) M = pd, f1 = 1.0f, f2 = s * expf(E - pd);
            else M = E, f1 = expf(pd - E), f2 = s;
            Pt = f1 * Pt + f2;
            Qt = f1 * Qt + f2 * yj;
            p = M;
        }
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
    const int threads = C < 64 ? 32 : 64;
    CUDA_DISPATCH(t, wkv_backward_kernel<act_t><<<cuda_blocks((size_t)B * C, threads), threads, 0, stream>>>(
                         B, T, C, d_theta, d_u, (const act_t *)d_k, (const act_t *)d_v,
                         (const act_t *)d_r, (const act_t *)d_y, (const act_t *)d_g, (act_t *)d_gk,
                         (act_t *)d_gv, (act_t *)d_gr, d_s, d_q, d_rowsum));
    wkv_param_grads_kernel<<<cuda_blocks(C, 256), 256, 0, stream>>>(B, C, d_theta, d_rowsum,
                                                                     d_gtheta, d_gu);
}
