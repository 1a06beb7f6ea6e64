/* A decode pass as one persistent kernel (decode_program.cu).
 *
 * A decode step of a 1.5B model is about 200 short kernels; each costs a few
 * microseconds of launch, ramp and tail beyond the time its bytes take, as
 * much again as the weights' own reading time. So the pass is recorded once
 * per shape, as a graph is, into a list of phases (a layer norm, a layer
 * norm + token shift, a group of few-row products, RWKV-7's decode step),
 * and replayed by one kernel whose blocks stay resident: each phase's work
 * is spread over the blocks, a grid-wide barrier separates it from the next,
 * and meanwhile the blocks ask the L2 cache for the weights the next phases
 * will read, a window running ahead of the products, so the memory never
 * waits for a launch. Every phase runs the device code of the launch it
 * replaces (gemv.cuh, layernorm.cuh, ln_shift.cuh, wkv7_step.cuh), so both
 * paths compute the same bits.
 *
 * Recording: while rwkv_infer.recording is set, the launch sites that have
 * a phase append it instead of launching; the pass runs inside a stream
 * capture, so a step without a phase shows as a captured node and the
 * program is dropped for that shape (the graph path runs it instead). */
#ifndef RWKV_CUDA_DECODE_PROGRAM_CUH
#define RWKV_CUDA_DECODE_PROGRAM_CUH

#include "cuda/gemv.cuh"
#include "cuda/ln_shift.cuh"
#include "cuda/wkv7_step.cuh"

/* Records into a new program whose products read matrices of type wt
 * (CUDA_F32, CUDA_BF16 or CUDA_Q8); NULL when out of memory. */
decode_program *program_new(cuda_dtype wt);
void program_free(decode_program *p);

/* y[r] = LN(x[r]; w, b) for r < rows (x[tok[r]] when tok is set: the embedding). */
void program_layernorm(decode_program *p, const float *x, const int *tok, const float *w, const float *b, int rows,
                       int C, float *y);
/* ln_shift_chunk over rows one-row streams. */
void program_ln_shift(decode_program *p, enum shift_form form, const ln_shift_step *a, float *out, int rows);
/* n products of the same rows (rows <= CUDA_GEMV_ROWS), as cuda_gemv_group. */
void program_products(decode_program *p, const cuda_gemv_op *ops, int n, int rows);
/* RWKV-7's decode step, heads of 64, over rows one-row streams. */
void program_wkv7_step(decode_program *p, const step_args *q, int heads, int rows);

/* Whether every recorded step had a phase (false after an allocation failed). */
int program_complete(const decode_program *p);
/* Copies the phases to the device; the program can then be launched. */
rwkv_status program_upload(decode_program *p, rwkv_error *err);
/* Runs the program on stream s; `barrier` is the context's two zeroed words
 * of device memory that the grid-wide barrier counts in. */
rwkv_status program_launch(const decode_program *p, unsigned *barrier, cudaStream_t s, rwkv_error *err);

#endif
