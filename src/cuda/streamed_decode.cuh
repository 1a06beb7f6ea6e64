/* A one-token decode pass of one stream as one kernel whose weights stream
 * through shared memory (streamed_decode.cu).
 *
 * As a graph of launches, a decode step of a 1.5B model is about 200
 * short kernels, and the memory idles at every boundary: each product's
 * reads ramp up after its launch and drain at its tail, and the small
 * steps between products (norms, the WKV step) read no weights at all.
 * Yet no weight depends on anything the pass computes. So here each
 * multiprocessor runs one resident block that owns a fixed share of every
 * product's rows, and one of its threads keeps bulk copies of the block's
 * next weight tiles in flight into a ring of shared-memory slots, in the
 * pass's order, whatever the block is waiting for: while the block waits
 * for the phase ahead (a counter per phase that every block raises when
 * done), its next product's weights are already arriving. The phases run
 * the device code of the launches they replace (gemv.cuh's row_dot over
 * the staged rows in the GEMV's order, ln_shift.cuh's row statistics,
 * wkv7_step.cuh's step), so the pass computes the same bits as the graph.
 *
 * A program is built once per context from its phases, in pass order:
 *   norm + products  the row's layer norm and the token shift's mixes
 *                    (each block computes them from the residual stream
 *                    itself), then products reading the mixes or vectors;
 *                    the norm's output replaces the state's slot once every
 *                    block has read the slot;
 *   products         products reading vectors the phases ahead wrote;
 *   RWKV-7 step      decode_step_unit, a block per head.
 * bf16 matrices only, rows of at most STREAMED_SLOT_BYTES. */
#ifndef RWKV_CUDA_STREAMED_DECODE_CUH
#define RWKV_CUDA_STREAMED_DECODE_CUH

#include "cuda/wkv7_step.cuh"

typedef struct streamed_program streamed_program;

enum { STREAMED_SLOT_BYTES = 32 * 1024 };

/* A product of the pass: op's W (bf16 [out][in]), Y, accumulate and act;
 * its input X is mix `mix` of the phase's norm + shift when mix >= 0, else
 * op.X (in floats). */
typedef struct streamed_product {
    cuda_gemv_op op;
    int mix;
} streamed_product;

/* The norm + shift of a phase: z = LN(x; ln_w, ln_b) of the stream's one
 * row (C floats), mix m = z + (slot - z) mu[m] (SHIFT_LERP) against the
 * state's slot (`slot_off` floats into states[0]), which then holds z. */
typedef struct streamed_norm {
    const float *x, *ln_w, *ln_b;
    float *const *states;
    size_t slot_off;
    int n_mix;
    const float *mu[SHIFT_MAX_MIX];
} streamed_norm;

streamed_program *streamed_new(int C);
void streamed_free(streamed_program *p);
void streamed_norm_products(streamed_program *p, const streamed_norm *norm, const streamed_product *ops, int n);
void streamed_products(streamed_program *p, const streamed_product *ops, int n);
void streamed_wkv7_step(streamed_program *p, const step_args *q);

/* Plans every block's tiles and copies the program to the device:
 * RWKV_ERR_UNSUPPORTED where it does not fit this device or these shapes
 * (the caller keeps the graph of launches), RWKV_ERR_NOMEM and CUDA errors
 * as such. */
rwkv_status streamed_build(streamed_program *p, rwkv_error *err);
/* One pass on stream s (capturable into a graph). */
rwkv_status streamed_launch(const streamed_program *p, cudaStream_t s, rwkv_error *err);

#endif
