/* The element-wise and per-head steps that the RWKV-5/6/7 inference blocks
 * share (cuda/rwkv_infer.cuh): the token shift continuing each stream's
 * state, the per-head GroupNorm ln_x with its gate, tanh and sigmoid.
 * Float32 throughout, mirroring model/common.c. */
#include "cuda/rwkv_infer.cuh"

typedef struct mix_set {
    const float *mu[SHIFT_MAX_MIX];
} mix_set;

/* One thread per (stream, channel) walks the stream's rows in order, so the
 * state slot is read before and written after every row that needs it. */
template <int FORM>
__global__ void shift_kernel(const float *z, float *const *states, size_t off, int per, int n_streams, int C,
                             int n_mix, mix_set mu, float *out) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x, stream = blockIdx.y;
    if (ch >= C || stream >= n_streams) return;
    float *slot = states[stream] + off + ch;
    const size_t rows = (size_t)n_streams * per;
    float prev = *slot;
    for (int t = 0; t < per; t++) {
        const size_t r = (size_t)stream * per + t;
        const float cur = z[r * C + ch];
        for (int m = 0; m < n_mix; m++) {
            float o;
            if (FORM == SHIFT_DELTA) o = prev - cur;
            else {
                const float w = mu.mu[m][ch];
                o = FORM == SHIFT_LERP ? cur + (prev - cur) * w : w * cur + (1.0f - w) * prev;
            }
            out[(m * rows + r) * C + ch] = o;
        }
        prev = cur;
    }
    *slot = prev;
}

void infer_shift(rwkv_infer *c, enum shift_form form, const float *z, const infer_rows *rows, size_t off,
                 int n_mix, const float *const *mu, float *out) {
    const int C = c->sh.n_embd;
    mix_set m;
    for (int i = 0; i < SHIFT_MAX_MIX; i++) m.mu[i] = mu && i < n_mix ? mu[i] : NULL;
    const dim3 grid((C + 127) / 128, rows->n_streams);
    if (form == SHIFT_LERP)
        shift_kernel<SHIFT_LERP><<<grid, 128, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n_streams, C,
                                                              n_mix, m, out);
    else if (form == SHIFT_MIX)
        shift_kernel<SHIFT_MIX><<<grid, 128, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n_streams, C,
                                                             n_mix, m, out);
    else
        shift_kernel<SHIFT_DELTA><<<grid, 128, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n_streams, C,
                                                               1, m, out);
}

/* One warp per (row, head): GN over the head's N channels (two passes, the
 * CPU's layernorm), the affine of ln_x, then the SiLU gate. */
__global__ void group_norm_gate_kernel(float *y, const float *g, const float *w, const float *b, size_t units,
                                       int H, int N, float eps) {
    const size_t unit = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; /* row * H + head */
    const int lane = threadIdx.x & 31;
    if (unit >= units) return;
    const size_t base = unit * N;
    const int ch0 = (int)(unit % H) * N;
    float s = 0.0f;
    for (int j = lane; j < N; j += 32) s += y[base + j];
    const float mean = warp_sum(s) / N;
    float var = 0.0f;
    for (int j = lane; j < N; j += 32) var += (y[base + j] - mean) * (y[base + j] - mean);
    const float inv = 1.0f / sqrtf(warp_sum(var) / N + eps);
    for (int j = lane; j < N; j += 32) {
        float o = (y[base + j] - mean) * inv * w[ch0 + j] + b[ch0 + j];
        if (g) {
            const float gj = g[base + j];
            o *= gj * (1.0f / (1.0f + expf(-gj)));
        }
        y[base + j] = o;
    }
}

void infer_group_norm_gate(rwkv_infer *c, float *y, const float *g, const float *w, const float *b, int rows) {
    const int H = c->sh.n_head, N = c->sh.head_size;
    const size_t units = (size_t)rows * H;
    group_norm_gate_kernel<<<(unsigned)((units + 7) / 8), 256, 0, c->stream>>>(y, g, w, b, units, H, N, c->sh.gn_eps);
}

template <int SIG>
__global__ void squash_kernel(float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = SIG ? 1.0f / (1.0f + expf(-x[i])) : tanhf(x[i]);
}

void infer_tanh(rwkv_infer *c, float *x, size_t n) {
    squash_kernel<0><<<cuda_blocks(n, 256) < 2048 ? cuda_blocks(n, 256) : 2048, 256, 0, c->stream>>>(x, n);
}

void infer_sigmoid(rwkv_infer *c, float *x, size_t n) {
    squash_kernel<1><<<cuda_blocks(n, 256) < 2048 ? cuda_blocks(n, 256) : 2048, 256, 0, c->stream>>>(x, n);
}
