/* Float32 products on the tensor cores: a warp's m16n8k8 TF32 product, and
 * the same product carried to float32's precision by splitting each operand
 * into a TF32 "big" part and the float remainder ("3xTF32").
 *
 * A TF32 operand keeps 10 of float32's 23 mantissa bits, so one TF32 product
 * is good to about 1e-3 of its terms. With x = big + small (big: x rounded to
 * TF32, small: the exact remainder, which the tensor core reads as TF32 by
 * dropping its 13 low bits, an error of at most 2^-21 of x),
 * x·y = big·big + big·small + small·big + small·small, and the last term is
 * below float32's rounding of the sum: three products give what a float32
 * multiply-add would, to within a few units in the last place.
 *
 * Fragments (PTX ISA, mma.m16n8k8 .tf32; g = lane / 4, t = lane % 4):
 *     A (16 x 8, row):  a0 (g, t)  a1 (g + 8, t)  a2 (g, t + 4)  a3 (g + 8, t + 4)
 *     B (8 x 8, col):   b0 (t, g)  b1 (t + 4, g)
 *     C (16 x 8):       c0 (g, 2t) c1 (g, 2t + 1) c2 (g + 8, 2t) c3 (g + 8, 2t + 1)
 * A C fragment serves as an A fragment without moving between lanes when the
 * product's k index is permuted: A's column t is taken to be column 2t of the
 * C tile and column t + 4 column 2t + 1 (a0 = c0, a1 = c2, a2 = c1, a3 = c3),
 * and B's rows are read in the same order (b0 = row 2t, b1 = row 2t + 1), so
 * a lane's two B values are adjacent where B is stored with k contiguous. */
#ifndef RWKV_CUDA_MMA_TF32_CUH
#define RWKV_CUDA_MMA_TF32_CUH

#include <cstdint>

/* x as TF32 (rounded to nearest, ties away from zero: half of the last
 * kept bit added, then the 13 low bits cleared; no care for infinities,
 * which no caller holds) and the float remainder, exact. */
struct tf32_pair {
    uint32_t big, small;
};

__device__ __forceinline__ tf32_pair tf32_split(float x) {
    const uint32_t big = (__float_as_uint(x) + 0x1000u) & 0xffffe000u;
    return {big, __float_as_uint(x - __uint_as_float(big))};
}

/* A fragment split once and used against several B fragments. */
struct tf32_a_frag {
    uint32_t big[4], small[4];
};

/* The A fragment of four values in fragment order (a0 .. a3). */
__device__ __forceinline__ tf32_a_frag tf32_a(float a0, float a1, float a2, float a3) {
    const float x[4] = {a0, a1, a2, a3};
    tf32_a_frag f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const tf32_pair p = tf32_split(x[i]);
        f.big[i] = p.big, f.small[i] = p.small;
    }
    return f;
}

/* The A fragment of a C fragment, under the permuted k order above. */
__device__ __forceinline__ tf32_a_frag tf32_a_of_c(const float (&c)[4]) { return tf32_a(c[0], c[2], c[1], c[3]); }

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* b = (b0, b1) as two floats, split. */
struct tf32_b_frag {
    uint32_t big[2], small[2];
};

__device__ __forceinline__ tf32_b_frag tf32_b(float2 b) {
    const tf32_pair b0 = tf32_split(b.x), b1 = tf32_split(b.y);
    return {{b0.big, b1.big}, {b0.small, b1.small}};
}

/* The two terms of a float32-precision product below its big one:
 * c += big·small + small·big. A caller adds them into their own
 * accumulator, apart from c_big += big·big (mma_tf32_big), so that the
 * products of one k-tile do not wait for each other: a product's result
 * comes tens of cycles after it is issued. */
__device__ __forceinline__ void mma_tf32_small(float (&c)[4], const tf32_a_frag &a, const tf32_b_frag &b) {
    mma_tf32(c, a.small, b.big[0], b.big[1]);
    mma_tf32(c, a.big, b.small[0], b.small[1]);
}
__device__ __forceinline__ void mma_tf32_big(float (&c)[4], const tf32_a_frag &a, const tf32_b_frag &b) {
    mma_tf32(c, a.big, b.big[0], b.big[1]);
}

#endif
