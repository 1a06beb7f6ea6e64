"""The C library: where it is, the structures and signatures of its public API.

librwkv.so is loaded through ctypes from the standard library, so installing
the package compiles nothing. The copy loaded is the one inside the package
(``rwkvc/librwkv.so``, put there by the repository's ``make``), the very build
the package was made with.

Every structure below mirrors one of include/*.h field by field;
tests/python/test_abi.py compiles a C program against the headers and fails
when a size or an offset differs.
"""

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int64, c_long,
                    c_size_t, c_uint64, c_void_p)

LIBRARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "librwkv.so")


def _load():
    if not os.path.exists(LIBRARY_PATH):
        raise ImportError(f"{LIBRARY_PATH} is missing: build the library with `make` at the root of the "
                          "rwkv.c repository, then reinstall the package (pip install ./python)")
    return ctypes.CDLL(LIBRARY_PATH)


lib = _load()

ERROR_MESSAGE_MAX = 512


class Error(Structure):
    _c_name = "rwkv_error"
    _fields_ = [("code", c_int), ("message", ctypes.c_char * ERROR_MESSAGE_MAX)]


class ModelInfo(Structure):
    _c_name = "rwkv_model_info"
    _fields_ = [("arch", c_int), ("format", c_char_p), ("version", c_char_p), ("device", c_char_p),
                ("dtype", c_char_p), ("n_vocab", c_int), ("n_embd", c_int), ("n_layer", c_int),
                ("n_ffn", c_int), ("dim_att", c_int), ("head_size", c_int), ("n_head", c_int),
                ("n_ctx", c_int), ("n_params", c_int64), ("n_params_pos", c_int64),
                ("file_bytes", c_int64), ("weight_bytes", c_int64), ("state_floats", c_size_t),
                ("d_mix_lora", c_int), ("d_decay_lora", c_int), ("d_aaa_lora", c_int), ("d_mv_lora", c_int),
                ("d_gate_lora", c_int), ("gn_eps", c_float), ("layout", c_char_p)]


class LoadOptions(Structure):
    _c_name = "rwkv_load_options"
    _fields_ = [("device", c_char_p), ("precision", c_char_p), ("no_mmap", c_int), ("pack_weights", c_int)]


class SamplerParams(Structure):
    _c_name = "rwkv_sampler_params"
    _fields_ = [("temperature", c_double), ("top_p", c_double), ("top_k", c_int),
                ("alpha_frequency", c_double), ("alpha_presence", c_double), ("alpha_decay", c_double),
                ("token_ban", POINTER(c_int)), ("n_token_ban", c_size_t), ("whitespace_exempt", c_int)]


class Draw(Structure):
    _c_name = "rwkv_draw"
    _fields_ = [("temperature", c_double), ("top_p", c_double), ("top_k", c_int), ("uniform", c_double),
                ("bias_ids", POINTER(c_int)), ("bias", POINTER(c_float)), ("n_bias", c_size_t), ("n_ids", c_int)]


EvalProgress = CFUNCTYPE(c_int, c_int64, c_int64, c_void_p)


class PplOptions(Structure):
    _c_name = "rwkv_ppl_options"
    _fields_ = [("window", c_size_t), ("tokenizer", c_void_p), ("progress", EvalProgress), ("user", c_void_p),
                ("stride", c_size_t)]


class PplResult(Structure):
    _c_name = "rwkv_ppl_result"
    _fields_ = [("nll", c_double), ("n_tokens", c_int64), ("n_bytes", c_int64), ("n_top1", c_int64),
                ("loss", c_double), ("perplexity", c_double), ("bits_per_byte", c_double), ("stopped", c_int),
                ("window", c_int64), ("stride", c_int64), ("context", c_int64), ("n_windows", c_int64)]


class LambadaExample(Structure):
    _c_name = "rwkv_lambada_example"
    _fields_ = [("text", c_char_p), ("len", c_size_t), ("split", c_size_t)]


class LambadaSet(Structure):
    _c_name = "rwkv_lambada_set"
    _fields_ = [("items", POINTER(LambadaExample)), ("count", c_size_t)]


class LambadaStep(Structure):
    _c_name = "rwkv_lambada_step"
    _fields_ = [("index", c_int64), ("total", c_int64), ("logprob", c_double), ("n_target_tokens", c_int),
                ("correct", c_int), ("accuracy", c_double), ("perplexity", c_double)]


LambadaCallback = CFUNCTYPE(c_int, POINTER(LambadaStep), c_void_p)


class LambadaResult(Structure):
    _c_name = "rwkv_lambada_result"
    _fields_ = [("n_examples", c_int64), ("n_correct", c_int64), ("n_target_tokens", c_int64),
                ("sum_logprob", c_double), ("accuracy", c_double), ("perplexity", c_double), ("stopped", c_int),
                ("n_truncated", c_int64)]


class InitOptions(Structure):
    _c_name = "rwkv_init_options"
    _fields_ = [("arch", c_char_p), ("n_layer", c_int), ("n_embd", c_int), ("n_vocab", c_int), ("n_ffn", c_int),
                ("seed", c_uint64), ("emb_scale", c_double), ("n_head", c_int), ("n_ctx", c_int), ("head_size", c_int),
                ("uniform", c_int), ("dtype", c_int)]


class TrainOptions(Structure):
    _c_name = "rwkv_train_options"
    _fields_ = [("data_path", c_char_p), ("out_dir", c_char_p), ("init_path", c_char_p), ("tokenizer", c_char_p),
                ("val_fraction", c_double), ("val_windows", c_int), ("arch", c_char_p), ("n_layer", c_int),
                ("n_embd", c_int), ("n_ffn", c_int), ("n_head", c_int), ("head_size", c_int), ("ctx_len", c_int),
                ("batch", c_int),
                ("grad_accum", c_int), ("steps", c_long), ("lr_init", c_double), ("lr_final", c_double),
                ("warmup_steps", c_long), ("const_steps", c_long), ("beta1", c_double), ("beta2", c_double),
                ("adam_eps", c_double), ("weight_decay", c_double), ("grad_clip", c_double), ("l2wrap", c_double),
                ("layerwise_lr", c_int), ("emb_init", c_double), ("device", c_char_p), ("precision", c_char_p),
                ("world_size", c_int), ("rank", c_int), ("rendezvous", c_char_p), ("allreduce", c_char_p),
                ("dist_timeout_s", c_double), ("eval_every", c_long), ("save_every", c_long),
                ("keep_checkpoints", c_int), ("seed", c_uint64), ("threads", c_int), ("skip_nonfinite", c_int),
                ("measure_peak", c_int), ("debug_save_pause_ms", c_int), ("debug_nan_step", c_long)]


class ResumeOptions(Structure):
    _c_name = "rwkv_resume_options"
    _fields_ = [("steps", c_long), ("threads", c_int), ("device", c_char_p), ("precision", c_char_p),
                ("skip_nonfinite", c_int), ("measure_peak", c_int), ("world_size", c_int), ("rank", c_int),
                ("rendezvous", c_char_p), ("allreduce", c_char_p), ("dist_timeout_s", c_double), ("restart", c_int),
                ("debug_save_pause_ms", c_int), ("debug_nan_step", c_long)]


class TrainProgress(Structure):
    _c_name = "rwkv_train_progress"
    _fields_ = [("event", c_int), ("step", c_long), ("steps", c_long), ("loss", c_double), ("val_loss", c_double),
                ("last_val_loss", c_double), ("lr", c_double), ("grad_norm", c_double),
                ("tokens_per_s", c_double), ("avg_tokens_per_s", c_double), ("mfu", c_double),
                ("elapsed_s", c_double), ("eta_s", c_double), ("skipped", c_int), ("stopped", c_int),
                ("path", c_char_p), ("note", c_char_p), ("n_params", c_int64), ("arch", c_char_p),
                ("n_layer", c_int), ("n_embd", c_int), ("n_ffn", c_int), ("n_vocab", c_int), ("ctx_len", c_int),
                ("batch", c_int), ("grad_accum", c_int), ("threads", c_int), ("n_head", c_int),
                ("start_step", c_long), ("train_tokens", c_int64), ("val_tokens", c_int64),
                ("val_windows", c_int64), ("peak_gflops", c_double), ("peak_kind", c_char_p),
                ("device", c_char_p), ("precision", c_char_p)]


TrainCallback = CFUNCTYPE(c_int, POINTER(TrainProgress), c_void_p)

#: Every mirrored structure, for the layout test.
STRUCTURES = (Error, ModelInfo, LoadOptions, SamplerParams, Draw, PplOptions, PplResult, LambadaExample, LambadaSet,
              LambadaStep, LambadaResult, InitOptions, TrainOptions, ResumeOptions, TrainProgress)

_ERR = POINTER(Error)
_P = c_void_p  # an opaque handle
_PP = POINTER(c_void_p)
_INTS = POINTER(c_int)
_FLOATS = POINTER(c_float)
_STATUS = c_int

# name: (result type, argument types)
_SIGNATURES = {
    "rwkv_version": (c_char_p, []),
    "rwkv_status_name": (c_char_p, [c_int]),
    # models and states (rwkv.h)
    "rwkv_model_load_ex": (_STATUS, [c_char_p, POINTER(LoadOptions), _PP, _ERR]),
    "rwkv_model_free": (None, [_P]),
    "rwkv_model_get_info": (None, [_P, POINTER(ModelInfo)]),
    "rwkv_model_set_threads": (None, [_P, c_int]),
    "rwkv_model_fingerprint": (c_uint64, [_P]),
    "rwkv_state_new": (_STATUS, [_P, _PP, _ERR]),
    "rwkv_state_free": (None, [_P]),
    "rwkv_state_reset": (None, [_P]),
    "rwkv_state_pos": (c_size_t, [_P]),
    "rwkv_state_memory": (None, [_P, POINTER(c_size_t), POINTER(c_size_t)]),
    "rwkv_state_copy": (_STATUS, [_P, _P, _ERR]),
    "rwkv_state_size": (c_size_t, [_P]),
    "rwkv_state_data": (_FLOATS, [_P]),
    "rwkv_state_save": (_STATUS, [_P, c_char_p, _ERR]),
    "rwkv_state_load": (_STATUS, [_P, c_char_p, _ERR]),
    "rwkv_eval": (_STATUS, [_P, _P, c_int, _FLOATS, _ERR]),
    "rwkv_eval_sequence": (_STATUS, [_P, _P, _INTS, c_size_t, _FLOATS, c_int, _ERR]),
    "rwkv_eval_batch": (_STATUS, [_P, _PP, _INTS, c_size_t, _FLOATS, _ERR]),
    "rwkv_eval_batch_sample": (_STATUS, [_P, _PP, _INTS, c_size_t, POINTER(Draw), _INTS, _ERR]),
    "rwkv_convert_to_safetensors": (_STATUS, [c_char_p, c_char_p, c_int, _ERR]),
    "rwkv_convert_to_hf": (_STATUS, [c_char_p, c_char_p, c_int, _ERR]),
    # tokenizers (rwkv_tokenizer.h)
    "rwkv_tokenizer_load": (_STATUS, [c_char_p, _PP, _ERR]),
    "rwkv_tokenizer_free": (None, [_P]),
    "rwkv_tokenizer_kind": (c_char_p, [_P]),
    "rwkv_tokenizer_vocab_size": (c_int, [_P]),
    "rwkv_tokenizer_eos": (c_int, [_P]),
    "rwkv_tokenize": (_STATUS, [_P, c_char_p, c_size_t, POINTER(_INTS), POINTER(c_size_t), _ERR]),
    "rwkv_detokenize": (_STATUS, [_P, _INTS, c_size_t, POINTER(c_void_p), POINTER(c_size_t), _ERR]),
    "rwkv_free": (None, [c_void_p]),
    "rwkv_token_stream_new": (_STATUS, [_P, c_int, _PP, _ERR]),
    "rwkv_token_stream_push": (_STATUS, [_P, c_int, POINTER(c_void_p), POINTER(c_size_t), _ERR]),
    "rwkv_token_stream_flush": (None, [_P, POINTER(c_void_p), POINTER(c_size_t)]),
    "rwkv_token_stream_pending": (c_size_t, [_P]),
    "rwkv_token_stream_free": (None, [_P]),
    # sampling (rwkv_sample.h)
    "rwkv_sampler_params_default": (None, [POINTER(SamplerParams)]),
    "rwkv_sampler_new": (_STATUS, [POINTER(SamplerParams), c_uint64, _PP, _ERR]),
    "rwkv_sampler_free": (None, [_P]),
    "rwkv_sampler_reset": (None, [_P]),
    "rwkv_sampler_seed": (None, [_P, c_uint64]),
    "rwkv_sampler_sample": (c_int, [_P, _FLOATS, c_int]),
    "rwkv_sampler_distribution": (c_int, [_P, _FLOATS, c_int, _FLOATS]),
    "rwkv_sampler_penalize": (None, [_P, _FLOATS, c_int]),
    "rwkv_sampler_accept": (_STATUS, [_P, c_int, c_char_p, c_size_t, _ERR]),
    "rwkv_sampler_occurrence": (c_double, [_P, c_int, _INTS]),
    "rwkv_sampler_uniform": (c_double, [_P]),
    "rwkv_sampler_draw": (_STATUS, [_P, c_int, POINTER(Draw), _ERR]),
    # evaluation (rwkv_eval.h)
    "rwkv_eval_perplexity": (_STATUS, [_P, _INTS, c_size_t, POINTER(PplOptions), POINTER(PplResult), _ERR]),
    "rwkv_lambada_split": (c_int, [c_char_p, c_size_t, POINTER(c_size_t)]),
    "rwkv_eval_lambada": (_STATUS, [_P, _P, POINTER(LambadaSet), LambadaCallback, c_void_p, POINTER(LambadaResult),
                                    _ERR]),
    "rwkv_eval_lambada_file": (_STATUS, [_P, _P, c_char_p, c_size_t, LambadaCallback, c_void_p,
                                         POINTER(LambadaResult), _ERR]),
    # training (rwkv_train.h)
    "rwkv_tokenize_file_with": (_STATUS, [c_char_p, c_char_p, c_char_p, POINTER(c_uint64), POINTER(c_int), _ERR]),
    "rwkv_init_options_default": (InitOptions, []),
    "rwkv_init_checkpoint": (_STATUS, [POINTER(InitOptions), c_char_p, _ERR]),
    "rwkv_train_options_default": (TrainOptions, []),
    "rwkv_resume_options_default": (ResumeOptions, []),
    "rwkv_train_run": (_STATUS, [POINTER(TrainOptions), TrainCallback, c_void_p, _ERR]),
    "rwkv_train_resume": (_STATUS, [c_char_p, POINTER(ResumeOptions), TrainCallback, c_void_p, _ERR]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
