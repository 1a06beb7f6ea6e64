/* RWKV-7's decode step for one (stream, head), shared by the decode step's
 * launch (rwkv7_block.cu) and the streamed decode (streamed_decode.cu), so
 * both compute the same bits: the preparation of the WKV's inputs, the WKV
 * step continuing the state, GroupNorm + bonus + gate. */
#ifndef RWKV_CUDA_WKV7_STEP_CUH
#define RWKV_CUDA_WKV7_STEP_CUH

#include "cuda/rwkv_infer.cuh"

typedef struct prepare_args {
    const float *w0, *a0, *v0, *k_k, *k_a; /* v0 NULL in block 0 */
    float *dec, *al, *neg, *k, *v, *v_first;
    const float *v_mix;
} prepare_args;

/* The value residual of element i (channel ch): v mixed toward the first
 * layer's values by σ(v0 + v_mix); block 0 (no v0) keeps its values as the
 * first layer's. Returns the v the WKV reads. */
__device__ __forceinline__ float value_residual(const prepare_args &p, size_t i, int ch) {
    const float v = p.v[i];
    if (!p.v0) {
        p.v_first[i] = v;
        return v;
    }
    return rwkv7_value_residual(v, p.v_first[i], p.v0[ch], p.v_mix[i]);
}

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

/* The head's parameter vectors (no kernel of the pass writes them) asked of
 * L2 before the wait: read after it, from memory that a token's stream of
 * weights has long evicted them from, they add three memory latencies in a
 * row to the end of a decode step. A hint: nothing depends on it for its
 * result; a thread per 64 bytes. */
__device__ __forceinline__ void prefetch_head_vectors(const step_args &q, int first, int t, int N) {
    if (t >= N || t % 16 != 0) return;
    const float *vecs[] = {q.p.w0, q.p.a0, q.p.v0, q.p.k_k, q.p.k_a, q.r_k, q.lnx_w, q.lnx_b, q.p.v0 ? q.p.v_first : NULL};
#pragma unroll
    for (int i = 0; i < 9; i++)
        if (vecs[i]) asm volatile("prefetch.global.L2 [%0];" ::"l"(vecs[i] + first + t));
}

/* Head h of stream `stream` in a block of 4N threads; wait() (called by
 * every thread) waits for whatever writes the step's inputs, after the
 * state rows and the head's vectors are asked for. */
template <int Q, class Wait>
__device__ __forceinline__ void decode_step_unit(const step_args &q, int h, int stream, Wait wait) {
    constexpr int N = 16 * Q;
    __shared__ float part[32];
    __shared__ float4 vec4[7 * N / 4]; /* r, w, k, a (= -kappa), b (= kappa alpha), v, y */
    float *vec = (float *)vec4;
    const int t = threadIdx.x, row = t / 4, q4 = t % 4;
    float4 *st = (float4 *)(q.states[stream] + q.off + ((size_t)h * N + row) * N) + q4;
    prefetch_head_vectors(q, h * N, t, N);
    float4 s[Q];
#pragma unroll
    for (int c = 0; c < Q; c++) s[c] = __ldcs(st + 4 * c); /* streamed: read once, written once, not kept in L2 */
    wait(); /* the state (which nothing ahead of the step writes) is read first */
    const size_t base = (size_t)stream * q.H * N + (size_t)h * N; /* row `stream`, head h */
    float *sr = vec, *sw = vec + N, *sk = vec + 2 * N, *sa = vec + 3 * N, *sb = vec + 4 * N, *sv = vec + 5 * N,
          *sy = vec + 6 * N;
    const prepare_args &p = q.p;
    float kk = 0.0f, al = 0.0f, kraw = 0.0f;
    if (t < N) {
        const size_t i = base + t;
        const int ch = h * N + t;
        sr[t] = q.r[i];
        sw[t] = expf(rwkv7_log_decay(p.w0[ch], p.dec[i]));
        al = rwkv7_alpha(p.a0[ch], p.al[i]);
        sv[t] = value_residual(p, i, ch);
        kraw = p.k[i];
        kk = kraw * p.k_k[ch];
    }
    const float inv = rwkv7_inv_norm(block_sum(kk * kk, part));
    if (t < N) {
        const float kappa = kk * inv;
        sa[t] = -kappa;
        sb[t] = kappa * al;
        sk[t] = rwkv7_scaled_k(kraw, al, p.k_a[h * N + t]);
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
