"""Token sampling with the semantics of the ChatRWKV pipeline (include/rwkv_sample.h)."""

import os
from ctypes import byref, c_int, c_void_p

from . import _buffers
from ._handle import Handle, Owner
from ._lib import Error, SamplerParams, lib
from .errors import NumericError, check


def _default_params():
    p = SamplerParams()
    lib.rwkv_sampler_params_default(byref(p))
    return p


_DEFAULTS = _default_params()


def random_seed():
    """A fresh 63-bit seed from the operating system's random source."""
    return int.from_bytes(os.urandom(8), "little") >> 1


class Sampler(Owner):
    """Draws token ids from logits: bans, repetition penalties, top-p/top-k, temperature.

    The defaults are ChatRWKV's PIPELINE_ARGS (temperature 1.0, top_p 0.85,
    alpha_frequency 0.2, alpha_presence 0.2, alpha_decay 0.996), the defaults
    of ``rwkv generate`` too. ``temperature=0`` is greedy: the largest logit
    after bans and penalties, no random draw. The same seed, parameters and
    logits give the same ids on every platform, and the same ids as
    ``rwkv generate --seed``. Not thread-safe: one sampler per generation.
    """

    _what = "Sampler"

    def __init__(self, temperature=_DEFAULTS.temperature, top_p=_DEFAULTS.top_p, top_k=_DEFAULTS.top_k,
                 alpha_frequency=_DEFAULTS.alpha_frequency, alpha_presence=_DEFAULTS.alpha_presence,
                 alpha_decay=_DEFAULTS.alpha_decay, ban=(), whitespace_exempt=True, seed=None):
        """Checks the parameters (a bad one is an ArgumentError) and seeds the generator.

        ``ban``: ids never sampled. ``whitespace_exempt``: tokens made only of
        spaces, tabs and digits add no frequency penalty (the pipeline's rule;
        False is the chat programs' rule). ``seed``: an int in [0, 2**64), or
        None for a random one (``self.seed`` tells which).
        """
        p = SamplerParams()
        numbers = {"temperature": temperature, "top_p": top_p, "alpha_frequency": alpha_frequency,
                   "alpha_presence": alpha_presence, "alpha_decay": alpha_decay}
        for name, value in numbers.items():
            if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            setattr(p, name, float(value))
        p.top_k = _buffers.token_in(top_k, "top_k")
        p.whitespace_exempt = 1 if whitespace_exempt else 0
        self.ban = tuple(_buffers.token_list(ban, "ban"))
        ban_ptr, n_ban, keepalive = _buffers.tokens_in(self.ban, "ban")  # copied by rwkv_sampler_new
        p.token_ban = ban_ptr if n_ban else None
        p.n_token_ban = n_ban
        self.seed = random_seed() if seed is None else _seed_in(seed)
        out = c_void_p()
        err = Error()
        check(lib.rwkv_sampler_new(byref(p), self.seed, byref(out), byref(err)), err)
        self._handle = Handle(out.value, lib.rwkv_sampler_free)
        self.temperature, self.top_p, self.top_k = p.temperature, p.top_p, p.top_k
        self.alpha_frequency, self.alpha_presence, self.alpha_decay = (p.alpha_frequency, p.alpha_presence,
                                                                       p.alpha_decay)
        self.whitespace_exempt = bool(whitespace_exempt)

    def __repr__(self):
        return (f"<rwkvc.Sampler temperature={self.temperature} top_p={self.top_p} top_k={self.top_k} "
                f"seed={self.seed}>")

    def sample(self, logits):
        """Draws one id from ``logits`` (float32 buffer or sequence of numbers; not modified).

        Raises NumericError when no id can be drawn (every logit banned or
        not finite, or no logits at all).
        """
        ptr, n, keepalive = _buffers.floats_in(logits, "logits")
        h = self._live()
        token = lib.rwkv_sampler_sample(h.ptr, ptr, n)
        if token < 0:
            raise _no_token(n)
        return token

    def distribution(self, logits):
        """The probabilities ``sample`` would draw from (an array of len(logits) floats summing to 1)."""
        ptr, n, keepalive = _buffers.floats_in(logits, "logits")
        probs, out = _buffers.new_floats((n,))
        h = self._live()
        if lib.rwkv_sampler_distribution(h.ptr, ptr, n, out) != 0:
            raise _no_token(n)
        return probs

    def penalize(self, logits):
        """Applies the bans and penalties in place to ``logits``, a writable float32 buffer."""
        view = _buffers.float_view(logits)
        if view is None:
            raise TypeError(f"logits must be a writable float32 buffer, not {type(logits).__name__}")
        n = view.nbytes // 4
        ptr, keepalive = _buffers.floats_out(logits, "logits", n)
        h = self._live()
        lib.rwkv_sampler_penalize(h.ptr, ptr, n)

    def accept(self, token, text=b""):
        """Records that ``token`` was generated; ``text`` is its decoded bytes (or str).

        The occurrence weights decay by alpha_decay, then the token's weight
        grows by 1 (0 when ``text`` is only spaces, tabs and digits and the
        sampler is whitespace-exempt).
        """
        value = _buffers.token_in(token)
        if isinstance(text, str):
            text = text.encode("utf-8")
        elif not isinstance(text, (bytes, bytearray)):
            raise TypeError(f"text must be bytes or str, not {type(text).__name__}")
        text = bytes(text)
        h = self._live()
        err = Error()
        check(lib.rwkv_sampler_accept(h.ptr, value, text, len(text), byref(err)), err)

    def occurrence(self, token):
        """The occurrence weight of ``token``, or None when it has no entry yet."""
        value = _buffers.token_in(token)
        present = c_int()
        weight = lib.rwkv_sampler_occurrence(self._live().ptr, value, byref(present))
        return weight if present.value else None

    def reset(self):
        """Empties the occurrence table: the start of a new, independent generation."""
        lib.rwkv_sampler_reset(self._live().ptr)

    def reseed(self, seed):
        """Re-seeds the random generator with ``seed`` (an int in [0, 2**64))."""
        self.seed = _seed_in(seed)
        lib.rwkv_sampler_seed(self._live().ptr, self.seed)

    def uniform(self):
        """One raw draw of the generator, uniform in [0, 1)."""
        return lib.rwkv_sampler_uniform(self._live().ptr)


def _seed_in(seed):
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    seed = seed.__index__()
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed {seed} is outside [0, 2**64)")
    return seed


def _no_token(n):
    if n <= 0:
        return NumericError("no token can be sampled from empty logits")
    return NumericError("no token can be sampled: every logit is banned or not finite")

