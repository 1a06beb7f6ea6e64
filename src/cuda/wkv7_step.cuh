/* RWKV-7's decode step of one (stream, head): the preparation of the WKV
 * inputs, the WKV step on the state and GroupNorm + bonus + gate, in one
 * block of 4N threads; the device side that the decode launches
 * (rwkv7_block.cu) and the persistent decode program (decode_program.cu)
 * share. */
#ifndef RWKV_CUDA_WKV7_STEP_CUH
#define RWKV_CUDA_WKV7_STEP_CUH

#include "cuda/rwkv_infer.cuh"

#define KK_EPS 1e-12f                    /* the clamp of kappa's per-head L2 norm */
#define DECAY_SCALE 0.60653065971263342f /* e^-1/2, as model/rwkv7.c */

typedef struct prepare_args {
    const float *w0, *a0, *v0, *k_k, *k_a; /* v0 NULL in block 0 */
    float *dec, *al, *neg, *k, *v, *v_first;
    const float *v_mix;
} prepare_args;

/* Decode (every stream one row): prepare, the WKV step and finish of one
 * (stream, head) in one block of 4N threads, the head's vectors in shared
 * memory: one launch where a sequence takes three. The state rows are read
 * first, so their loads overlap the preparation. Thread t < N prepares
 * channel t as prepare_kernel does; 4 threads share each state row (float4
 * columns 16c + 4q, c < Q = N / 16); then GroupNorm, bonus and gate as
 * finish_kernel. Heads of 16 to 256 channels. */
typedef struct step_args {
    prepare_args p;
    const float *r, *g, *r_k, *lnx_w, *lnx_b;
    float *const *states;
    size_t off;
    int H;
    float eps;
    float *y;
    bf16 *y16; /* when set, y goes here in bf16 (the output GEMM's input) instead */
} step_args;

/* Head h of stream (row) b; every thread of the block calls it. */
template <int Q>
__device__ __forceinline__ void wkv7_decode_unit(const step_args &q, int h, int b) {
    constexpr int N = 16 * Q;
    __shared__ float part[32];
    __shared__ float4 vec4[7 * N / 4]; /* r, w, k, a (= -kappa), b (= kappa alpha), v, y */
    float *vec = (float *)vec4;
    const int t = threadIdx.x, row = t / 4, q4 = t % 4;
    float4 *st = (float4 *)(q.states[b] + q.off + ((size_t)h * N + row) * N) + q4;
    float4 s[Q];
#pragma unroll
    for (int c = 0; c < Q; c++) s[c] = __ldcs(st + 4 * c); /* streamed: read once, written once, not kept in L2 */
    cuda_wait_for_prior_grids(); /* launched early: the state (no earlier kernel of the pass writes it) is read first */
    const size_t base = (size_t)b * q.H * N + (size_t)h * N; /* row b, head h */
    float *sr = vec, *sw = vec + N, *sk = vec + 2 * N, *sa = vec + 3 * N, *sb = vec + 4 * N, *sv = vec + 5 * N,
          *sy = vec + 6 * N;
    const prepare_args &p = q.p;
    float kk = 0.0f, al = 0.0f, kraw = 0.0f;
    if (t < N) {
        const size_t i = base + t;
        const int ch = h * N + t;
        sr[t] = q.r[i];
        sw[t] = expf(-DECAY_SCALE * (1.0f / (1.0f + expf(-(p.w0[ch] + p.dec[i])))));
        al = 1.0f / (1.0f + expf(-(p.a0[ch] + p.al[i])));
        float v = p.v[i];
        if (!p.v0) p.v_first[i] = v;
        else v += (p.v_first[i] - v) * (1.0f / (1.0f + expf(-(p.v0[ch] + p.v_mix[i]))));
        sv[t] = v;
        kraw = p.k[i];
        kk = kraw * p.k_k[ch];
    }
    const float norm = sqrtf(block_sum(kk * kk, part)), inv = 1.0f / (norm > KK_EPS ? norm : KK_EPS);
    if (t < N) {
        const float kappa = kk * inv;
        sa[t] = -kappa;
        sb[t] = kappa * al;
        sk[t] = kraw * (1.0f + (al - 1.0f) * p.k_a[h * N + t]);
    }
    __syncthreads();
    const float4 *in = vec4; /* r, w, k, a, b as N / 4 float4 each */
    float sum_a = 0.0f, acc = 0.0f;
#pragma unroll
    for (int c = 0; c < Q; c++) {
        const float4 av = in[3 * N / 4 + 4 * c + q4];
        sum_a += s[c].x * av.x + s[c].y * av.y + s[c].z * av.z + s[c].w * av.w;
    }
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 1);
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 2);
    const float vi = sv[row];
#pragma unroll
    for (int c = 0; c < Q; c++) {
        const int j = 4 * c + q4;
        acc += wkv7_step4(s[c], in[j], in[N / 4 + j], in[2 * N / 4 + j], in[4 * N / 4 + j], sum_a, vi);
        __stcs(st + 4 * c, s[c]);
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (q4 == 0) sy[row] = acc;
    __syncthreads();
    const float yt = t < N ? sy[t] : 0.0f;
    const float mean = block_sum(yt, part) / N;
    const float var = block_sum(t < N ? (yt - mean) * (yt - mean) : 0.0f, part) / N;
    const float bonus = block_sum(t < N ? sr[t] * sk[t] * q.r_k[h * N + t] : 0.0f, part);
    if (t < N) {
        const int ch = h * N + t;
        const float gn = (yt - mean) * (1.0f / sqrtf(var + q.eps)) * q.lnx_w[ch] + q.lnx_b[ch];
        const float out = (gn + bonus * sv[t]) * q.g[base + t];
        if (q.y16) q.y16[base + t] = __float2bfloat16(out);
        else q.y[base + t] = out;
    }
}

#endif
