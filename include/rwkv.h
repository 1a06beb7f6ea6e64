/*
 * rwkv.h — the public API of rwkv.c.
 *
 * Conventions (the same everywhere in this header):
 *  - Handles are opaque. Whatever a function returns through an `out`
 *    pointer is owned by the caller and released with the matching _free().
 *  - Every fallible call returns an rwkv_status and, when `err` is not NULL,
 *    fills it with the same code and a one-line, human-readable message that
 *    names the file, field or offset at fault. `err` may always be NULL.
 *  - The library never prints and never exits the process.
 *  - Logits and states are float32.
 *
 * Companion headers, each self-contained: rwkv_tokenizer.h (byte-level,
 * GPT-NeoX BPE, World), rwkv_sample.h (ChatRWKV sampling), rwkv_train.h
 * (training and init), rwkv_eval.h (perplexity, LAMBADA), rwkv_quant.h,
 * rwkv_bench.h, rwkv_recall.h (the synthetic recall probe).
 */
#ifndef RWKV_H
#define RWKV_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv_export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rwkv_status {
    RWKV_OK = 0,
    RWKV_ERR_IO,          /* open/read/write/mmap failed */
    RWKV_ERR_FORMAT,      /* the bytes are not what the format says they must be */
    RWKV_ERR_UNSUPPORTED, /* a valid file of a kind we do not handle (yet) */
    RWKV_ERR_SHAPE,       /* tensors missing or of the wrong shape/dtype */
    RWKV_ERR_NOMEM,       /* an allocation failed or would be absurdly large */
    RWKV_ERR_ARG,         /* a bad argument from the caller */
    RWKV_ERR_NUMERIC      /* a non-finite value where a finite one is required */
} rwkv_status;

#define RWKV_ERROR_MESSAGE_MAX 512
typedef struct rwkv_error {
    rwkv_status code;
    char message[RWKV_ERROR_MESSAGE_MAX];
} rwkv_error;

/* A short constant name for a status ("format error", ...). */
RWKV_API const char *rwkv_status_name(rwkv_status status);

/* The version of these headers, MAJOR.MINOR.PATCH; rwkv_version() returns
 * the version of the library actually linked or loaded (the two differ only
 * when a program runs against another build than it was compiled with). */
#define RWKV_VERSION "0.1.0"
RWKV_API const char *rwkv_version(void);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct rwkv_model rwkv_model;
typedef struct rwkv_state rwkv_state;

/* The architectures a checkpoint may hold, told apart by its tensor names. */
typedef enum rwkv_arch {
    RWKV_ARCH_RWKV = 0, /* RWKV-4, 5, 6 or 7: a recurrent network */
    RWKV_ARCH_GPT = 1   /* the GPT baseline written by `rwkv train --arch gpt`: a transformer with a KV cache */
} rwkv_arch;

typedef struct rwkv_model_info {
    rwkv_arch arch;
    const char *format;      /* "safetensors", "pth" or "rwkv.cpp" */
    const char *version;     /* RWKV version, e.g. "4"; "gpt" for the GPT baseline */
    const char *device;      /* where the model runs: "cpu" */
    const char *dtype;       /* weight storage type: "f32", "f16", "bf16" or "mixed" (the GPT: "f32") */
    int n_vocab, n_embd, n_layer, n_ffn, dim_att;
    int head_size, n_head;   /* 0 for RWKV-4 */
    int n_ctx;               /* GPT: positions of its learned position table, the longest
                                sequence; 0 for RWKV (unbounded) */
    int64_t n_params;        /* elements over all weights */
    int64_t n_params_pos;    /* GPT: of which the position table (n_ctx x n_embd); 0 for RWKV */
    int64_t file_bytes;
    int64_t weight_bytes;    /* bytes of the weights as held in memory */
    size_t state_floats;     /* floats in one RWKV rwkv_state; 0 for the GPT (a KV cache) */
    /* RWKV-5/6/7 additions (0 where a version has none): */
    int d_mix_lora;          /* v6: token-shift LoRA rank (time_maa_w1 is [C, 5*d_mix_lora]) */
    int d_decay_lora;        /* v6: time_decay_w1 columns; v7: w1 columns */
    int d_aaa_lora, d_mv_lora, d_gate_lora; /* v7: a1, v1, g1 columns */
    float gn_eps;            /* epsilon of the per-head GroupNorm ln_x, set by the file's origin */
    const char *layout;      /* the tensor names: "official", or "transformers" (Hugging Face's
                                RwkvForCausalLM layout, renamed when read) */
} rwkv_model_info;

/* Loads a checkpoint of any architecture the library knows (RWKV-4/5/6/7
 * or the GPT baseline; info.arch says which). The format is detected from
 * the file's bytes: safetensors, PyTorch .pth (zip) or rwkv.cpp's ggmf files.
 * `path` may also be a Hugging Face transformers RWKV-4 folder (config.json
 * with model.safetensors, shards and their model.safetensors.index.json, or
 * pytorch_model.bin) or its shard index; transformers' tensor names are
 * recognised from the names themselves, in any of these containers.
 * RWKV weights stay in the file's dtype (mapped from the file where the
 * layout allows); the GPT's are converted to float32. */
RWKV_API rwkv_status rwkv_model_load(const char *path, rwkv_model **out, rwkv_error *err);

/* Where and how a model is loaded; zero-initialise, then set what you need. */
typedef struct rwkv_load_options {
    const char *device; /* NULL or "cpu"; "cuda" or "cuda:N" runs RWKV models (any
                           version) on an NVIDIA GPU (RWKV_ERR_UNSUPPORTED for the
                           GPT baseline, and in a build without CUDA) */
    const char *precision; /* the GPU's: NULL or "fp32", "bf16" (matrices in
                              bfloat16, fp32 accumulation; state and WKV fp32), or
                              "int8" (RWKV-5/6/7: matrices as int8 with one fp16 scale
                              per 32 weights, the q8_0 rule, activations as bf16) */
    int no_mmap;           /* 1: read the weights file into memory instead of mapping
                              it, so that the file may change or be truncated on disk
                              while the model is in use (docs/limits.md) */
    int pack_weights;      /* 1: an RWKV model on the CPU also keeps its f32, f16 and bf16
                              matrices packed once in the layout of the matrix-matrix
                              kernels, so that rwkv_eval_batch and sequence mode read
                              them directly instead of repacking every weight on every
                              call (batched decoding of a few streams then costs about
                              what rwkv_eval costs). One more copy of those matrices in
                              memory; results are the same, bit for bit. */
} rwkv_load_options;
/* rwkv_model_load with options (opt may be NULL: the defaults). */
RWKV_API rwkv_status rwkv_model_load_ex(const char *path, const rwkv_load_options *opt, rwkv_model **out,
                               rwkv_error *err);
RWKV_API void rwkv_model_free(rwkv_model *model);
/* The path of the file rwkv.c has mapped into memory at address addr (a
 * model's weights, a training token file), or NULL. When another process
 * truncates a mapped file, reading the lost pages raises SIGBUS; a program's
 * handler may call this (it takes no lock and allocates nothing) with the
 * signal's si_addr to name the file. */
RWKV_API const char *rwkv_mapped_file_at(const void *addr);
RWKV_API void rwkv_model_get_info(const rwkv_model *model, rwkv_model_info *info);

/* Worker threads used by this model's evaluation (default: all cores;
 * <= 0: all cores). Results do not depend on it. */
RWKV_API void rwkv_model_set_threads(rwkv_model *model, int n_threads);

/* A fresh state for `model`: the memory of one sequence.
 * RWKV: the recurrent state, float32 data of a fixed size. Layout, RWKV-4:
 * per layer l, five vectors att_xx[C], att_aa[A], att_bb[A], att_pp[A],
 * ffn_xx[C] (docs/model.md §1.4); fresh: att_pp = -1e38, rest 0.
 * RWKV-5/6/7: per layer att_xx[C], S[H][N][N] (S[h][value i][key j]),
 * ffn_xx[C], i.e. (N+2)*C floats when A = C; fresh: all zeros.
 * GPT: its KV cache (the keys and values of every position fed so far),
 * which grows with the sequence up to n_ctx positions. */
RWKV_API rwkv_status rwkv_state_new(const rwkv_model *model, rwkv_state **out, rwkv_error *err);
RWKV_API void rwkv_state_free(rwkv_state *state);
/* Back to a fresh state (the GPT keeps its cache memory for reuse). */
RWKV_API void rwkv_state_reset(rwkv_state *state);
/* Tokens fed since rwkv_state_new or rwkv_state_reset (a state read from a
 * file counts from 0). The GPT takes at most info.n_ctx. */
RWKV_API size_t rwkv_state_pos(const rwkv_state *state);
/* Bytes of the state: *used = what the tokens fed so far occupy (RWKV: the
 * whole state; GPT: 2 x n_layer x pos x n_embd floats), *reserved = what is
 * allocated (the GPT's cache grows by doubling). Either may be NULL. */
RWKV_API void rwkv_state_memory(const rwkv_state *state, size_t *used, size_t *reserved);

/* RNN states only (the GPT's KV cache is refused with RWKV_ERR_UNSUPPORTED,
 * or has size 0 and data NULL): */
RWKV_API rwkv_status rwkv_state_copy(rwkv_state *dst, const rwkv_state *src, rwkv_error *err);
RWKV_API size_t rwkv_state_size(const rwkv_state *state);   /* in floats */
RWKV_API float *rwkv_state_data(rwkv_state *state);          /* read/write view (a GPU state is downloaded
                                                                 into it; what you write there is uploaded
                                                                 at the next evaluation) */

/* Feed one token, update the state, write n_vocab logits (logits may be
 * NULL when they are not needed). RWKV_ERR_ARG for a token outside
 * [0, n_vocab) or, for the GPT, one past its context of n_ctx positions. */
RWKV_API rwkv_status rwkv_eval(rwkv_model *model, rwkv_state *state, int token,
                      float *logits, rwkv_error *err);

/* Sequence mode: feed n tokens at once from the given state (RWKV: matrix-
 * matrix products; the GPT: one position after the other through its KV
 * cache). With all_logits, logits receives n*n_vocab floats (position-major);
 * otherwise only the last position's n_vocab logits. logits may be NULL.
 * The same errors as rwkv_eval, checked before any token is fed. */
RWKV_API rwkv_status rwkv_eval_sequence(rwkv_model *model, rwkv_state *state,
                               const int *tokens, size_t n, float *logits,
                               int all_logits, rwkv_error *err);

/* Batched decode: feed tokens[i] to states[i] for each i < n (n distinct
 * states of this model, each a stream of its own), and write n rows of
 * n_vocab logits (row-major; logits may be NULL). RWKV: one matrix-matrix
 * product per weight for all n rows, so n streams cost little more weight
 * traffic than one. Every product runs through the matrix-matrix kernels,
 * also for n = 1, so a row's logits and new state do not depend on n, on
 * the other rows or on their order, bit for bit, and equal the rows of
 * rwkv_eval_sequence (which uses the same kernels for every chunk of more
 * than one token). rwkv_eval (one token: matrix-vector kernels) agrees to
 * float rounding (about 1e-6 relative), not bit for bit. Block-quantized
 * matrices: rwkv_eval rounds its activations to 8 bits for the formats'
 * integer dot products; the products of q8_0, q4_0, q4_1, q5_0, q5_1, q4_k,
 * q5_k and q6_k matrices of several rows go through the same integer
 * kernels where the CPU has AVX-512 VNNI (each row's product bit for bit
 * rwkv_eval's), and elsewhere keep the activations in float: the two then
 * agree to that rounding (about 1e-3 relative).
 * GPT: its rows are decoded one after the other, each through its own KV
 * cache (exactly as rwkv_eval; no batching gain).
 * RWKV_ERR_ARG for a token outside the vocabulary, a NULL or repeated
 * state, a state of another model, or a full GPT context, checked before
 * any row is fed. */
RWKV_API rwkv_status rwkv_eval_batch(rwkv_model *model, rwkv_state *const *states, const int *tokens, size_t n,
                                     float *logits, rwkv_error *err);

/* Host memory for n_rows rows of n_vocab logits which a GPU model copies its
 * results into directly (page-locked memory: the logits of a large batch
 * cost one DMA instead of a copy staged through a bounce buffer); plain
 * memory for a model on the CPU. Every call takes any logits buffer; this
 * one is the fast kind. Free it with rwkv_logits_free on the same model,
 * before the model. NULL (and err) when out of memory or n_rows is 0. */
RWKV_API float *rwkv_logits_alloc(rwkv_model *model, size_t n_rows, rwkv_error *err);
RWKV_API void rwkv_logits_free(rwkv_model *model, float *logits);

/* ------------------------------------------------------------------------ */
/* Checkpoint conversion                                                    */
/* ------------------------------------------------------------------------ */

typedef enum rwkv_dtype {
    RWKV_DTYPE_KEEP = 0,  /* keep every tensor's dtype */
    RWKV_DTYPE_F32,
    RWKV_DTYPE_F16,
    RWKV_DTYPE_BF16
} rwkv_dtype;

/* Writes any loadable checkpoint as safetensors with the official RWKV key
 * names and raw parameter values, atomically (temp file + rename). */
RWKV_API rwkv_status rwkv_convert_to_safetensors(const char *in_path, const char *out_path,
                                        rwkv_dtype dtype, rwkv_error *err);

/* Writes an RWKV-4 checkpoint as a Hugging Face transformers model folder
 * (created when missing): config.json and model.safetensors with
 * transformers' tensor names, which RwkvForCausalLM.from_pretrained loads.
 * Other architectures are RWKV_ERR_UNSUPPORTED. */
RWKV_API rwkv_status rwkv_convert_to_hf(const char *in_path, const char *out_dir,
                                        rwkv_dtype dtype, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* State files (src/model/state_file.c; format in docs/generation.md)       */
/* ------------------------------------------------------------------------ */

/* A 64-bit fingerprint of the model's weights: every tensor's name, dtype and
 * shape, and a fixed sample of its bytes (all of a small tensor; the first
 * and last 4 KiB and 16 strided 1 KiB blocks of a large one). Independent of
 * the order in which the file lists the tensors. Cheap even for big models,
 * but computed on every call: cache it if you need it often. */
RWKV_API uint64_t rwkv_model_fingerprint(const rwkv_model *model);

/* State files hold RWKV states only: a GPT's is refused (RWKV_ERR_UNSUPPORTED).
 * Writes the state to `path` atomically (temp file + fsync + rename): a
 * header binding it to the model (RWKV version, V/C/L/F/A, state size, the
 * weight fingerprint, a checksum of the data), then the floats. */
RWKV_API rwkv_status rwkv_state_save(const rwkv_state *state, const char *path, rwkv_error *err);

/* Reads a state written by rwkv_state_save into `state`. A file of another
 * model (version, shape or fingerprint), a truncated or corrupted file is an
 * error with a one-line message, and `state` is then left unchanged. */
RWKV_API rwkv_status rwkv_state_load(rwkv_state *state, const char *path, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* Writing files safely (docs/file-safety.md)                               */
/* ------------------------------------------------------------------------ */

/* RWKV_ERR_ARG when out_path names an existing file that is one of the n
 * input files: the same device and inode, so also through a symbolic or a
 * hard link; RWKV_OK otherwise (an output that does not exist yet, an input
 * that cannot be examined). NULL entries are skipped. Every writer of the
 * library that takes input paths (conversion, quantization, token files)
 * checks its output with it before reading anything; a program that writes
 * a file of its own from inputs it chose (a state file next to a model)
 * calls it itself. */
RWKV_API rwkv_status rwkv_check_output(const char *out_path, const char *const *inputs, size_t n_inputs,
                                       rwkv_error *err);

/* Every file the library writes goes first to a temporary file created
 * exclusively next to it (OUT.tmp.XXXXXX; never through a link), which is
 * renamed over OUT once complete and removed on any error. This removes the
 * temporary files of the writes still in progress; it is async-signal-safe
 * (it only calls unlink), for a SIGINT/SIGTERM handler that then ends the
 * process. The library installs no signal handler itself. */
RWKV_API void rwkv_remove_temp_files(void);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_H */
