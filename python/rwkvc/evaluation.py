"""Scoring a model: perplexity over a text and the LAMBADA last-word task (include/rwkv_eval.h)."""

import collections
import os
from ctypes import byref, c_size_t

from . import _buffers
from ._callback import CallbackGuard
from ._lib import (Error, EvalProgress, LambadaCallback, LambadaExample, LambadaResult as _CLambadaResult,
                   LambadaSet, LambadaStep as _CLambadaStep, PplOptions, PplResult as _CPplResult, lib)
from ._paths import path_bytes
from .errors import check
from .tokenizer import Tokenizer


def _record(name, struct, doc):
    cls = collections.namedtuple(name, [f for f, _ in struct._fields_])
    cls.__doc__ = doc
    return cls


PerplexityResult = _record("PerplexityResult", _CPplResult, """Perplexity of a text (rwkv_ppl_result).

nll: summed negative log-likelihood (nats) of the scored tokens; n_tokens:
tokens scored (all but the first); n_bytes: bytes they decode to; n_top1:
tokens that were the argmax of their prediction; loss = nll / n_tokens;
perplexity = exp(loss); bits_per_byte; stopped: the progress callback ended
it early; window, stride, context, n_windows: how the text was cut.""")

LambadaResult = _record("LambadaResult", _CLambadaResult, """LAMBADA scores (rwkv_lambada_result).

n_examples passages scored, n_correct of them with every target token the
argmax, accuracy, perplexity = exp(-sum_logprob / n_examples), stopped,
n_truncated (GPT passages longer than its context).""")

LambadaStep = _record("LambadaStep", _CLambadaStep, """Progress of a LAMBADA run, after each passage.

index (0-based) of the passage just scored out of total; its logprob and
n_target_tokens; whether it was correct; the running accuracy and perplexity.""")


def _values(struct):
    return [getattr(struct, f) for f, _ in struct._fields_]


def _tokenizer_of(model, tokenizer):
    if tokenizer is None:
        return model.tokenizer
    return tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)


def _count(value, name):
    value = _buffers.token_in(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return value


def score(model, text, tokenizer=None, bos=None, window=0, stride=0, progress=None):
    """Scores ``text`` with ``model`` as ``rwkv eval --data`` does; returns a PerplexityResult.

    ``text``: str or bytes (encoded with ``tokenizer``, default the model's)
    or a sequence of token ids. Every token but the first is scored given
    all before it; ``bos`` (an id) is put in front so the first is scored
    too. ``window``/``stride``: tokens per call (RWKV) or the sliding window
    of the GPT (0: the defaults). ``progress(done, total)`` is called after
    each window; a true result stops early (the result then has ``stopped``).
    """
    tok = _tokenizer_of(model, tokenizer)
    ids = tok.encode(text) if isinstance(text, (str, bytes, bytearray)) else text
    if bos is not None:
        ids = [_buffers.token_in(bos, "bos")] + list(ids)
    ptr, n, keepalive = _buffers.tokens_in(ids)
    if n < 2:
        raise ValueError(f"too short to score ({n} tokens; need 2)")
    opts = PplOptions()
    opts.window = _count(window, "window")
    opts.stride = _count(stride, "stride")
    guard = None
    if progress is not None:
        guard = CallbackGuard(progress, lambda done, total, user: (done, total))
        opts.progress = EvalProgress(guard)
    t, m = tok._live(), model._live()
    opts.tokenizer = t.ptr
    result = _CPplResult()
    err = Error()
    status = lib.rwkv_eval_perplexity(m.ptr, ptr, n, byref(opts), byref(result), byref(err))
    if guard is not None:
        guard.reraise()
    check(status, err)
    return PerplexityResult(*_values(result))


def _lambada_set(texts, limit):
    """A rwkv_lambada_set over Python strings, and the array it points into."""
    if limit:
        texts = texts[:limit]
    items = (LambadaExample * max(1, len(texts)))()  # holds the texts assigned to it (ctypes keeps them)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"passage {i} must be a str, not {type(text).__name__}")
        data = text.encode("utf-8")
        split = c_size_t()
        if not lib.rwkv_lambada_split(data, len(data), byref(split)):
            raise ValueError(f"passage {i} has no space: no last word to predict")
        items[i].text, items[i].len, items[i].split = data, len(data), split.value
    return LambadaSet(items=items, count=len(texts)), items


def lambada(model, source, tokenizer=None, limit=0, progress=None):
    """LAMBADA with ``model`` as ``rwkv eval --lambada`` scores it; returns a LambadaResult.

    ``source``: the path of a JSON Lines file ({"text": ...} per line) or a
    list of passages (str), each split at its last space into context and
    target word. ``limit``: the first N passages only (0: all).
    ``progress(step)`` gets a LambadaStep after each passage; a true result
    stops early.
    """
    tok = _tokenizer_of(model, tokenizer)
    limit = _count(limit, "limit")
    guard = CallbackGuard(progress or (lambda step: False), lambda step, user: (LambadaStep(*_values(step[0])),))
    callback = LambadaCallback(guard)
    result = _CLambadaResult()
    err = Error()
    if isinstance(source, (str, bytes, os.PathLike)):
        path = path_bytes(source, "source")
        t, m = tok._live(), model._live()
        status = lib.rwkv_eval_lambada_file(m.ptr, t.ptr, path, limit, callback, None, byref(result), byref(err))
    elif isinstance(source, (list, tuple)):
        c_set, keepalive = _lambada_set(source, limit)
        t, m = tok._live(), model._live()
        status = lib.rwkv_eval_lambada(m.ptr, t.ptr, byref(c_set), callback, None, byref(result), byref(err))
    else:
        raise TypeError(f"source must be a path or a list of passages, not {type(source).__name__}")
    guard.reraise()
    check(status, err)
    return LambadaResult(*_values(result))


