/* The scalar kernel table: the portable C reference of every op that has
 * variants, the one every other table is tested against and the one used
 * on CPUs without AVX2 (or with RWKV_KERNELS=scalar). Each reference lives
 * with its operator (kernels/matvec.c, matmul.c, layernorm.c, wkv4.c,
 * wkv5.c, wkv7.c); this file only lists them. */
#include "kernels/kernels.h"
#include "kernels/wkv.h"

/* dtype_to_f32 under the table's signature (int count). */
static void row_to_f32_scalar(dtype t, const void *src, float *dst, int n) { dtype_to_f32(t, src, dst, (size_t)n); }

/* The reference on all channels (it also serves the SIMD tables' tails). */
static void wkv4_forward_all_channels(int T, int C, const float *d, const float *u, const float *k, const float *v,
                                      float *aa, float *bb, float *pp, float *y) {
    wkv4_forward_scalar(T, C, 0, C, d, u, k, v, aa, bb, pp, y);
}

const kernel_ops kernels_scalar = {
    .name = "scalar",
    .matvec_rows = matvec_rows_scalar,
    .row_to_f32 = row_to_f32_scalar,
    .mm = {4, 8, matmul_ukernel_scalar, matmul_ukernel_scalar_f16, matmul_ukernel_scalar_xt, NULL, NULL, NULL,
           matmul_ukernel_scalar_bf16},
    .pack = matmul_pack_scalar,
    .layernorm = layernorm_scalar,
    .token_mix = token_mix_scalar,
    .relu_square = relu_square_scalar,
    .sigmoid_mul = sigmoid_mul_scalar,
    .sigmoid = sigmoid_scalar,
    .exp = exp_scalar,
    .add_sigmoid_mul = add_sigmoid_mul_scalar,
    .wkv4_forward = wkv4_forward_all_channels,
    .wkv5_row = wkv5_row_scalar,
    .wkv7_row = wkv7_row_scalar,
    .wkv7_backward_chunk = wkv7_backward_chunk_scalar,
    .wkv4_backward_block = wkv4_backward_block_scalar,
};
