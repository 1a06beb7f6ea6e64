"""Training over the C trainer (include/rwkv_train.h): fresh models, token files, runs, resumes."""

import collections
import ctypes
from ctypes import byref, c_char_p, c_int, c_uint64

from ._callback import CallbackGuard
from ._lib import Error, TrainCallback, TrainProgress as _CProgress, lib
from ._paths import path_bytes
from .model import _DTYPES
from .errors import check

_EVENTS = {0: "start", 1: "step", 2: "saved", 3: "done"}

TrainProgress = collections.namedtuple("TrainProgress", [f for f, _ in _CProgress._fields_])
TrainProgress.__doc__ = """One report of a training run (rwkv_train_progress).

event is "start" (sizes, peak, resumed step), "step" (after every optimizer
step: loss, val_loss when evaluated, lr, grad_norm, tokens_per_s, mfu,
elapsed_s, eta_s), "saved" (path: the checkpoint written) or "done"
(stopped: ended early). Fields that do not apply to an event hold their
last value; strings are str or None."""

_INT_RANGES = {c_int: (-2**31, 2**31), ctypes.c_long: (-2**63, 2**63), c_uint64: (0, 2**64)}
_PATH_FIELDS = ("data_path", "out_dir", "init_path")


def _progress_from(c_progress):
    values = []
    for name, _ in _CProgress._fields_:
        value = getattr(c_progress, name)
        values.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    p = TrainProgress(*values)
    return p._replace(event=_EVENTS.get(p.event, p.event))


def _set_options(struct, options, what):
    """Sets the fields of ``struct`` named by ``options``, checking names, types and ranges.

    A bytes value set in a string field is kept alive by the structure itself (ctypes).
    """
    types = dict(struct._fields_)
    for name, value in options.items():
        ctype = types.get(name)
        if ctype is None:
            raise TypeError(f"unknown {what} option {name!r}; the options are {', '.join(types)}")
        if ctype is c_char_p:
            if value is not None:
                value = path_bytes(value, name) if name in _PATH_FIELDS else str(value).encode()
        elif ctype in _INT_RANGES:
            if isinstance(value, bool):
                value = int(value)
            if not hasattr(value, "__index__"):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            value = value.__index__()
            low, high = _INT_RANGES[ctype]
            if not low <= value < high:
                raise ValueError(f"{name} {value} is out of range")
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}") from None
        setattr(struct, name, value)


class _Reports:
    """Forwards reports to the user's callback and remembers the last one."""

    def __init__(self, progress):
        self.last = None
        self._progress = progress

    def __call__(self, report):
        self.last = report
        return self._progress(report) if self._progress is not None else False


def _run(start, progress):
    reports = _Reports(progress)
    guard = CallbackGuard(reports, lambda p, user: (_progress_from(p[0]),))
    err = Error()
    status = start(TrainCallback(guard), err)
    guard.reraise()
    check(status, err)
    return reports.last


def train(data, out_dir, progress=None, **options):
    """Trains a model as ``rwkv train`` does; returns the last TrainProgress (event "done").

    ``data``: a text file (tokenized with ``tokenizer``, "bytes" by default)
    or a token file; ``out_dir``: a new run directory (config.json,
    train.jsonl, checkpoints, model.safetensors when complete). Options are
    the fields of rwkv_train_options with the same names and defaults:
    arch ("rwkv4", "rwkv7" or "gpt"), n_layer, n_embd, n_ffn, n_head,
    head_size, ctx_len, batch, grad_accum, steps, lr_init, lr_final,
    warmup_steps, const_steps, beta1, beta2, adam_eps, weight_decay,
    grad_clip, l2wrap, layerwise_lr, emb_init, eval_every, save_every,
    keep_checkpoints, seed, threads, skip_nonfinite, measure_peak,
    val_fraction, val_windows, init_path, tokenizer, device ("cpu",
    "cuda" or "cuda:N"; a GPU needs a build with CUDA), precision ("bf16"
    or "fp32"; None: the device's default). ``progress(report)`` is called with a TrainProgress at every
    event; a true result stops the run after the current step (a checkpoint
    is written first, so ``resume`` continues from there). An exception
    raised by ``progress`` (KeyboardInterrupt included) stops the run the
    same way and is then re-raised.
    """
    opts = lib.rwkv_train_options_default()
    _set_options(opts, dict(options, data_path=data, out_dir=out_dir), "train")
    return _run(lambda cb, err: lib.rwkv_train_run(byref(opts), cb, None, byref(err)), progress)


def resume(run_dir, progress=None, **options):
    """Continues the run in ``run_dir`` from its newest complete checkpoint; returns the last TrainProgress.

    Options (rwkv_resume_options): steps (a new total; 0 keeps it), threads
    (0 keeps the stored count), device and precision (None keeps the stored
    ones; a run may continue on another device), skip_nonfinite (-1 keeps),
    measure_peak, restart (True: start over from step 0, deleting the run's
    checkpoints; without it a run whose checkpoints all fail to load is an
    error and is left as it was).
    ``progress`` as for ``train``.
    """
    opts = lib.rwkv_resume_options_default()
    _set_options(opts, options, "resume")
    path = path_bytes(run_dir, "run_dir")
    return _run(lambda cb, err: lib.rwkv_train_resume(path, byref(opts), cb, None, byref(err)), progress)


def init_model(out_path, **options):
    """Writes a freshly initialised model to ``out_path`` (safetensors), as ``rwkv init``; returns the path.

    Options (rwkv_init_options, same defaults): arch ("rwkv4", "rwkv7",
    "gpt", or "rwkv5" / "rwkv6": random models for benchmarks and tests, with
    uniform=True), n_layer (6), n_embd (256), n_vocab (256), n_ffn (0: the
    architecture's default), seed (42), emb_scale (6e-4), n_head and n_ctx
    (gpt), head_size (rwkv5/6/7), uniform (rwkv7: uniform matrices instead of
    orthogonal), dtype ("f32", "bf16" or "f16": the tensors' type).
    """
    options = dict(options)
    dtype = options.pop("dtype", "f32")
    if dtype not in _DTYPES or dtype in (None, "keep"):
        raise ValueError(f"dtype must be one of f32, bf16, f16, not {dtype!r}")
    opts = lib.rwkv_init_options_default()
    _set_options(opts, dict(options, dtype=_DTYPES[dtype]), "init")
    err = Error()
    check(lib.rwkv_init_checkpoint(byref(opts), path_bytes(out_path, "out_path"), byref(err)), err)
    return out_path


def tokenize_file(text_path, token_path, tokenizer="bytes"):
    """Turns a text file into a token file for ``train``; returns (token count, vocabulary size).

    ``tokenizer``: "bytes" or the path of a tokenizer file (tokenizer.json,
    World vocabulary).
    """
    n_tokens, n_vocab = c_uint64(), c_int()
    err = Error()
    check(lib.rwkv_tokenize_file_with(path_bytes(text_path, "text_path"), path_bytes(tokenizer, "tokenizer"),
                                      path_bytes(token_path, "token_path"), byref(n_tokens), byref(n_vocab),
                                      byref(err)), err)
    return n_tokens.value, n_vocab.value

