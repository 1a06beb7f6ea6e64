/*
 * rwkv_train.h — training RWKV-4 and RWKV-7 models (and the GPT baseline
 * they are compared with) from scratch or from a checkpoint on the CPU, with
 * the recipes of docs/model.md §3 and docs/training-rwkv7.md.
 *
 * Same conventions as rwkv.h: every fallible call returns an rwkv_status and
 * fills `err` (may be NULL); the library never prints and never exits.
 *
 * A run lives in one output directory:
 *   DIR/config.json                      the run's settings (all of them; --resume needs nothing else)
 *   DIR/tokens.bin                       the token file made from a text --data (absent for a token-file --data)
 *   DIR/train.jsonl                      one JSON object per step: step, loss, lr, tokens_per_s, grad_norm,
 *                                        mfu, elapsed_s, and val_loss on the steps that evaluate
 *   DIR/model-SSSSSSSS.safetensors       the weights after step S (float32; RWKV-4, RWKV-7: official key
 *                                        names and shapes; gpt: nanoGPT names, see src/model/gpt.h)
 *   DIR/train_state-SSSSSSSS.bin         Adam moments, step, RNG state, data position of step S
 *   DIR/model.safetensors                the final weights, written when the run completes
 * Every file is written atomically (temp file + fsync + rename). A checkpoint
 * is complete when both of its files are there and agree (the state file
 * holds a hash of the weights); a resume takes the newest complete one.
 */
#ifndef RWKV_TRAIN_H
#define RWKV_TRAIN_H

#include <stdint.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Token files                                                              */
/* ------------------------------------------------------------------------ */

/* Turns a text file into a token file with the byte-level tokenizer (token =
 * byte value, vocabulary 256). Token file: 32-byte header "RWKVTOK\0", u32
 * version 1, u32 bytes per token (2 or 4), u32 vocabulary size, u32 0, u64
 * token count; then the tokens, little-endian. Written atomically. */
RWKV_API rwkv_status rwkv_tokenize_file(const char *text_path, const char *token_path, rwkv_error *err);

/* The same with any tokenizer of rwkv_tokenizer.h: `tokenizer` is a file
 * (tokenizer.json, World vocabulary) or "bytes" (NULL: "bytes"). The header's
 * vocabulary size is the tokenizer's (rwkv_tokenizer_vocab_size); tokens are
 * stored as uint16 when it is at most 65536, else uint32. *n_tokens (may be
 * NULL) receives the token count, *n_vocab (may be NULL) the vocabulary size. */
RWKV_API rwkv_status rwkv_tokenize_file_with(const char *text_path, const char *tokenizer, const char *token_path,
                                    uint64_t *n_tokens, int *n_vocab, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* Fresh models                                                             */
/* ------------------------------------------------------------------------ */

typedef struct rwkv_init_options {
    const char *arch; /* "rwkv4" (NULL: rwkv4), "rwkv7", "gpt", or "rwkv5" / "rwkv6" (random models for
                         benchmarks and tests, with uniform only: nothing trains RWKV-5/6) */
    int n_layer;      /* 6 */
    int n_embd;       /* 256 */
    int n_vocab;      /* 256 (byte level) */
    int n_ffn;        /* 0: 4 * n_embd (rwkv5/6: 3.5 * n_embd rounded down to a multiple of 32, as officially) */
    uint64_t seed;    /* 42 */
    double emb_scale; /* 6e-4: emb.weight ~ U(-emb_scale, +emb_scale), the run's initial LR (§3.2); rwkv4 */
    int n_head;       /* gpt: attention heads; 0: n_embd/64 (at least 1, lowered to a divisor of n_embd) */
    int n_ctx;        /* gpt: positions (the longest context); 0: 1024 */
    int head_size;    /* rwkv5/6/7: channels per head; 0: 64 (n_embd when smaller) */
    int uniform;      /* rwkv7: draw the matrices uniform with the variance of the orthogonal init instead
                         (no QR: fast at any size, for benchmarks); 0: orthogonal. rwkv5/6: required */
    rwkv_dtype dtype; /* the tensors' type in the file: RWKV_DTYPE_F32 (KEEP: f32), _BF16 or _F16 */
} rwkv_init_options;

RWKV_API rwkv_init_options rwkv_init_options_default(void);

/* Writes a freshly initialised model as safetensors, atomically:
 * RWKV-4 with the paper's init (docs §3.1-§3.2) and the official key names,
 * RWKV-7 with the official x070 init (docs/training-rwkv7.md), the GPT
 * baseline with GPT-2's init (src/model/gpt.h), or a random RWKV-5.2 / RWKV-6
 * model of the official x052 / x060 layout. All load with rwkv_model_load.
 * The tensors are made and written one at a time: memory holds the largest
 * tensor, never the whole model. */
RWKV_API rwkv_status rwkv_init_checkpoint(const rwkv_init_options *opt, const char *out_path, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct rwkv_train_options {
    /* data */
    const char *data_path;  /* text file (byte-level tokens) or a token file; required */
    const char *out_dir;    /* required; must not hold a run already */
    const char *init_path;  /* start from this checkpoint instead of a fresh init (NULL) */
    const char *tokenizer;  /* how a text --data is tokenized: "bytes" (default) or a tokenizer file
                               (tokenizer.json, World vocabulary; rwkv_tokenizer.h) */
    double val_fraction;    /* 0.1: the last 10% of the tokens are held out */
    int val_windows;        /* 64: validation windows of ctx tokens, evenly spread; 0 = all */
    /* model (sizes ignored with init_path) */
    const char *arch;       /* "rwkv4" (default; NULL = rwkv4), "rwkv7" or "gpt" (the transformer baseline) */
    int n_layer;            /* 6 */
    int n_embd;             /* 256 */
    int n_ffn;              /* 0: 4 * n_embd */
    int n_head;             /* gpt: attention heads; 0: n_embd/64 (at least 1, lowered to a divisor of
                               n_embd). The position table has ctx_len rows. */
    int head_size;          /* rwkv7: channels per head; 0: 64 (n_embd when smaller) */
    /* batches */
    int ctx_len;            /* 128 */
    int batch;              /* 8 sequences per micro-batch */
    int grad_accum;         /* 1 micro-batch per optimizer step */
    long steps;             /* 1000 optimizer steps */
    /* optimizer: Adam, docs §3.3 */
    double lr_init;         /* 6e-4 */
    double lr_final;        /* 1e-5 */
    long warmup_steps;      /* 0: linear warm-up, LR x (0.2 + 0.8 s/W) over the first W steps */
    long const_steps;       /* -1: steps x 361/8043 (the 169M run's constant share); constant-LR phase */
    double beta1, beta2;    /* 0.9, 0.99 */
    double adam_eps;        /* 1e-8 */
    double weight_decay;    /* 0 (decoupled, matrices only, when > 0) */
    double grad_clip;       /* 1.0: global gradient norm; 0 disables */
    double l2wrap;          /* 1e-4; 0 disables (RWKV-4 and RWKV-7) */
    int layerwise_lr;       /* 1: RWKV-4 time_decay x2, time_first x3; RWKV-7 w0 x2 */
    double emb_init;        /* 0: emb.weight ~ U(+-lr_init); otherwise that half-width (RWKV-4 only) */
    /* where the steps run */
    const char *device;     /* "cpu" (default; NULL = cpu), "cuda" (= cuda:0) or "cuda:N": an NVIDIA GPU
                               (RWKV-4 only; RWKV_ERR_UNSUPPORTED for another arch or a build without CUDA) */
    const char *precision;  /* NULL: the device's default, "fp32" on the cpu, "bf16" on cuda (bf16
                               activations and matrix operands, fp32 weights, gradients and Adam state);
                               "fp32" on cuda multiplies in strict fp32. The cpu trains in fp32 only. */
    /* data parallel over several GPUs (docs/multigpu.md); this session only, not stored in config.json */
    int world_size;         /* 0: one process; N >= 1: this process is rank `rank` of N, one GPU each,
                               joined through NCCL; --batch is the global micro-batch (divisible by N) */
    int rank;               /* 0..N-1; only rank 0 writes the run directory */
    const char *rendezvous; /* "HOST:PORT" (rank 0 listens there) or "file:PATH" (on a shared file
                               system): where rank 0 hands the NCCL id to the others */
    const char *allreduce;  /* the gradients on the wire: "bf16" or "fp32"; NULL: as the precision */
    double dist_timeout_s;  /* 0: 600; a collective (or the rendezvous) that takes longer ends the run */
    /* bookkeeping */
    long eval_every;        /* 100 steps (and the last step); 0: only the last step */
    long save_every;        /* 500 steps (and the last step); 0: only the last step */
    int keep_checkpoints;   /* 2 newest checkpoints kept; 0 keeps all */
    uint64_t seed;          /* 42: init and data order */
    int threads;            /* 0: all cores */
    int skip_nonfinite;     /* 0: a non-finite loss or gradient stops the run; 1: skip that batch */
    int measure_peak;       /* 1: measure the peak at start for the MFU figure (the CPU's fp32 FMA peak,
                               a GPU's bf16 matrix-product peak) */
    /* testing hooks (not stored in config.json) */
    int debug_save_pause_ms;  /* pause in the middle of each training-state write */
    long debug_nan_step;      /* >0: poison the gradient at this step (1-based) */
} rwkv_train_options;

RWKV_API rwkv_train_options rwkv_train_options_default(void);

/* What may change when a run is resumed; everything else comes from DIR/config.json. */
typedef struct rwkv_resume_options {
    long steps;             /* 0: keep the stored total */
    int threads;            /* 0: keep the stored count (the per-step losses then repeat exactly) */
    const char *device;     /* NULL: keep the stored device; else this session runs there (a checkpoint
                               does not depend on the device, so a GPU run continues on the CPU and
                               the other way round) */
    const char *precision;  /* NULL: the stored one, or the default of a new device */
    int skip_nonfinite;     /* -1: keep */
    int measure_peak;       /* 1 */
    int world_size, rank;   /* data parallel, as in rwkv_train_options: a run may resume on another */
    const char *rendezvous; /* number of GPUs than it was saved from */
    const char *allreduce;
    double dist_timeout_s;
    int restart;            /* 0: continue from the newest complete checkpoint, or from step 0 when none
                               was written yet; a run whose checkpoints (or final model) exist but none
                               can be resumed (damaged, or a config.json that no longer matches them) is
                               RWKV_ERR_FORMAT and its checkpoints are left as they are. 1: start over from step 0 with the
                               stored settings, deleting the run's checkpoints, final model and log. */
    int debug_save_pause_ms;
    long debug_nan_step;
} rwkv_resume_options;

RWKV_API rwkv_resume_options rwkv_resume_options_default(void);

typedef enum rwkv_train_event {
    RWKV_TRAIN_START = 0, /* before the first step: sizes, peak, resumed step */
    RWKV_TRAIN_STEP,      /* after every optimizer step (or skipped batch) */
    RWKV_TRAIN_SAVED,     /* after a checkpoint was written */
    RWKV_TRAIN_DONE       /* the run ended (all steps, or stopped by the callback) */
} rwkv_train_event;

typedef struct rwkv_train_progress {
    rwkv_train_event event;
    long step;              /* optimizer steps done */
    long steps;             /* total steps of the run */
    double loss;            /* this step's mean training loss (nats/token) */
    double val_loss;        /* validation loss after this step, NaN when not evaluated */
    double last_val_loss;   /* the latest validation loss, NaN before the first */
    double lr;              /* base LR of this step */
    double grad_norm;       /* global gradient norm before clipping */
    double tokens_per_s;    /* training tokens/s of this step */
    double avg_tokens_per_s;/* over this session's steps */
    double mfu;             /* training FLOPs per token * avg_tokens_per_s / peak, 0 without a peak
                               (RWKV-4: 6 * n_params; RWKV-7: that + the WKV state update;
                               gpt: 6 * matmul params + the attention terms) */
    double elapsed_s;       /* wall time of the run so far, over all sessions */
    double eta_s;           /* estimate of the time to the last step */
    int skipped;            /* this step's batch was skipped (non-finite) */
    int stopped;            /* DONE: stopped early by the callback */
    const char *path;       /* SAVED: the model file; START: the output directory */
    const char *note;       /* START: what was resumed or ignored, or NULL */
    /* START */
    int64_t n_params;
    const char *arch;       /* "rwkv4", "rwkv7" or "gpt" */
    int n_layer, n_embd, n_ffn, n_vocab, ctx_len, batch, grad_accum, threads;
    int n_head;             /* gpt and rwkv7 (0 for RWKV-4) */
    long start_step;        /* 0, or the checkpoint step resumed from */
    int64_t train_tokens, val_tokens, val_windows;
    double peak_gflops;     /* measured peak that MFU is quoted against, 0 when not measured */
    const char *peak_kind;  /* what peak_gflops measured: "fp32 FMA" (cpu) or "bf16 matmul" (cuda) */
    const char *device;     /* "cpu", "cuda:N" */
    const char *precision;  /* "fp32" or "bf16" */
} rwkv_train_progress;

/* Called on every event; a non-zero return stops the run after the current
 * step (a checkpoint is written first, so --resume continues from there). */
typedef int (*rwkv_train_callback)(const rwkv_train_progress *p, void *user);

/* Starts a run in opt->out_dir. */
RWKV_API rwkv_status rwkv_train_run(const rwkv_train_options *opt, rwkv_train_callback cb, void *user,
                           rwkv_error *err);

/* Continues the run in `dir` from its newest complete checkpoint (or from
 * the start when none was written yet, or with opt->restart) with its stored
 * settings; entries of train.jsonl past that checkpoint are dropped first.
 * Checkpoints of which none can be resumed are an error (see restart). */
RWKV_API rwkv_status rwkv_train_resume(const char *dir, const rwkv_resume_options *opt, rwkv_train_callback cb,
                              void *user, rwkv_error *err);

/* Measured float32 FMA peak of this machine in GFLOP/s on `threads` threads (<= 0: all cores). */
RWKV_API double rwkv_fma_peak_gflops(int threads);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_TRAIN_H */
