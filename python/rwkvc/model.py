"""Models and their states: load a checkpoint, feed tokens, read logits."""

import collections
from ctypes import byref, c_int, c_size_t, c_void_p, cast

from . import _buffers
from ._handle import Handle, Owner
from ._lib import Draw, Error, LoadOptions, lib
from ._lib import ModelInfo as _CModelInfo
from ._paths import path_bytes
from .errors import NumericError, UnsupportedError, check
from .sampler import Sampler
from .tokenizer import Tokenizer

_ARCH_NAMES = {0: "rwkv", 1: "gpt"}

ModelInfo = collections.namedtuple("ModelInfo", [name for name, _ in _CModelInfo._fields_])
ModelInfo.__doc__ = """What a loaded checkpoint holds (include/rwkv.h, rwkv_model_info).

arch is "rwkv" or "gpt"; format "safetensors", "pth" or "rwkv.cpp"; layout
"official", or "transformers" for a Hugging Face RwkvForCausalLM model; version
the RWKV version ("4" .. "7", "gpt" for the GPT baseline); dtype the weights'
storage type; n_ctx the GPT's context (0 for RWKV: unbounded); state_floats
the size of an RWKV state (0 for the GPT, whose state is a KV cache)."""


def _info_from(c_info):
    values = []
    for name, _ in _CModelInfo._fields_:
        value = getattr(c_info, name)
        if isinstance(value, bytes):
            value = value.decode()
        values.append(value)
    info = ModelInfo(*values)
    return info._replace(arch=_ARCH_NAMES.get(info.arch, str(info.arch)))


_DTYPES = {None: 0, "keep": 0, "f32": 1, "f16": 2, "bf16": 3}


def _convert(convert, in_path, out_path, out_name, dtype):
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of f32, f16, bf16 or None, not {dtype!r}")
    err = Error()
    check(convert(path_bytes(in_path, "in_path"), path_bytes(out_path, out_name), _DTYPES[dtype], byref(err)), err)


def convert_to_safetensors(in_path, out_path, dtype=None):
    """Writes any loadable checkpoint as safetensors with the official key names, atomically (``rwkv convert``).

    ``dtype``: None (each tensor keeps its dtype; rwkv.cpp's quantized blocks
    become f32), "f32", "f16" or "bf16".
    """
    _convert(lib.rwkv_convert_to_safetensors, in_path, out_path, "out_path", dtype)


def convert_to_hf(in_path, out_dir, dtype=None):
    """Writes an RWKV-4 checkpoint as a Hugging Face transformers folder (``rwkv convert --layout hf``).

    ``out_dir`` (created when missing) receives config.json and model.safetensors
    with transformers' names, which ``RwkvForCausalLM.from_pretrained`` loads.
    ``dtype`` as for convert_to_safetensors; other architectures raise UnsupportedError.
    """
    _convert(lib.rwkv_convert_to_hf, in_path, out_dir, "out_dir", dtype)


def _batch_in(tokens, states):
    """The checked arguments of a batched step: the tokens' pointer, count and keepalive, the states' live
    handles (held for the call) and their pointer array."""
    states = list(states)
    for state in states:
        if not isinstance(state, State):
            raise TypeError(f"states must hold States, not {type(state).__name__}")
    if _buffers.is_int(tokens):
        raise TypeError("tokens must be a sequence of ints, one per state")
    ptr, n, keepalive = _buffers.tokens_in(tokens)
    if n != len(states):
        raise ValueError(f"{n} tokens for {len(states)} states: one token per state expected")
    if n == 0:
        raise ValueError("no states to feed")
    handles = [state._live() for state in states]
    return ptr, n, keepalive, handles, (c_void_p * n)(*(h.ptr for h in handles))


def _logits_out(shape, out):
    """(logits, pointer): a new array of ``shape``, or the caller's ``out`` buffer of that size."""
    if out is None:
        return _buffers.new_floats(shape)
    n = 1
    for d in shape:
        n *= d
    pointer, _ = _buffers.floats_out(out, "out", n)  # the pointer's cells keep out's buffer exported
    return out, pointer


class Model(Owner):
    """A checkpoint loaded for inference: RWKV-4, 5, 6, 7 or the GPT baseline.

    The format (safetensors, PyTorch .pth, rwkv.cpp) and the architecture are
    detected from the file. ``tokenizer`` is the one ``generate``,
    ``perplexity`` and ``lambada`` use when given text: a Tokenizer or a path
    (default "bytes", as for the rwkv command). Evaluation runs on
    ``threads`` worker threads (None: all cores); results do not depend on it.
    One model may serve several states, but not from several threads at once.
    """

    _what = "Model"

    def __init__(self, path, threads=None, tokenizer="bytes", device=None, precision=None):
        """Loads the checkpoint at ``path`` (str or os.PathLike) on ``device`` (None: "cpu"; "cuda" or
        "cuda:N": an RWKV-4 model on an NVIDIA GPU) in ``precision`` (the GPU's: None or "fp32", or "bf16")."""
        raw_path = path_bytes(path)
        if not isinstance(tokenizer, Tokenizer):
            tokenizer = Tokenizer(tokenizer)
        opts = LoadOptions()
        if device is not None:
            if not isinstance(device, str):
                raise TypeError(f"device must be a str, not {type(device).__name__}")
            device_bytes = device.encode()
            opts.device = device_bytes
        if precision is not None:
            if not isinstance(precision, str):
                raise TypeError(f"precision must be a str, not {type(precision).__name__}")
            precision_bytes = precision.encode()
            opts.precision = precision_bytes
        out = c_void_p()
        err = Error()
        check(lib.rwkv_model_load_ex(raw_path, byref(opts), byref(out), byref(err)), err)
        self._handle = Handle(out.value, lib.rwkv_model_free)
        self.path = path
        self.device = device or "cpu"
        self.tokenizer = tokenizer
        c_info = _CModelInfo()
        lib.rwkv_model_get_info(out, byref(c_info))
        self.info = _info_from(c_info)
        self._threads = None
        self.threads = threads

    def __repr__(self):
        state = "closed" if self.closed else f"{self.info.format}, {self.info.dtype}"
        return (f"<rwkvc.Model {self.info.arch} v{self.info.version} L{self.info.n_layer} "
                f"C{self.info.n_embd} V{self.info.n_vocab} ({state})>")

    @property
    def n_vocab(self):
        """Rows of the model's embedding: logits have this many values."""
        return self.info.n_vocab

    @property
    def threads(self):
        """Worker threads of evaluation (None: all cores); settable."""
        return self._threads

    @threads.setter
    def threads(self, n):
        if n is not None:
            n = _buffers.token_in(n, "threads")
            if n <= 0:
                n = None
        lib.rwkv_model_set_threads(self._live().ptr, n or 0)
        self._threads = n

    @property
    def fingerprint(self):
        """A 64-bit fingerprint of the weights (the one state files are bound to)."""
        return lib.rwkv_model_fingerprint(self._live().ptr)

    def new_state(self):
        """A fresh State of this model: the memory of one sequence."""
        return State(self)

    def eval(self, tokens, state, all_logits=False, out=None):
        """Feeds ``tokens`` (an int, or a sequence of ints) into ``state`` and returns logits.

        One int gives the next-token logits (``n_vocab`` floats). A sequence is
        fed in sequence mode and gives the last position's logits, or with
        ``all_logits`` one row per token (shape ``(len(tokens), n_vocab)``).
        ``out``: a writable float32 buffer of that size to fill instead of a
        new array. A token outside [0, n_vocab) is an ArgumentError raised
        before anything is fed.
        """
        if not isinstance(state, State):
            raise TypeError(f"state must be a State, not {type(state).__name__}")
        single = _buffers.is_int(tokens)
        ptr, n, keepalive = _buffers.tokens_in(tokens)
        if n == 0:
            raise ValueError("no tokens to feed")
        every_row = bool(all_logits) and not single
        logits, logits_ptr = _logits_out((n, self.n_vocab) if every_row else (self.n_vocab,), out)
        self._feed(state, ptr, n, logits_ptr, every_row)
        return logits

    def eval_batch(self, tokens, states, out=None):
        """Feeds ``tokens[i]`` into ``states[i]`` for every i in one batched step; returns the logits rows.

        ``states``: distinct States of this model, one stream each; ``tokens``:
        as many ints. The result has shape ``(len(states), n_vocab)`` (``out``:
        a writable float32 buffer of that size to fill instead). RWKV runs
        every row through the matrix-matrix kernels, so a row does not depend
        on the others and agrees with ``eval`` of that token alone to float
        rounding (about 1e-6 relative); the GPT decodes the rows one after the
        other. Lengths that differ or a closed state raise before anything is
        fed; so do, from the library as ArgumentError, a token outside
        [0, n_vocab), a state given twice, a state of a model of another
        shape or device, or a full GPT context.
        """
        ptr, n, keepalive, handles, state_ptrs = _batch_in(tokens, states)
        logits, logits_ptr = _logits_out((n, self.n_vocab), out)
        m = self._live()
        err = Error()
        check(lib.rwkv_eval_batch(m.ptr, state_ptrs, ptr, n, logits_ptr, byref(err)), err)
        return logits

    def eval_batch_sample(self, tokens, states, samplers, n_ids=0):
        """Feeds ``tokens[i]`` into ``states[i]`` in one batched step and draws each row's next token; returns them.

        ``samplers[i]`` (a Sampler per state) gives row i its rules, bans,
        penalties and one random number, and the token is the one
        ``samplers[i].sample`` would draw from that row's logits (on the CPU
        exactly; a model on a GPU draws on the device, where no logits are
        copied back, and can differ only within float rounding of a
        boundary). Accepting the tokens (``Sampler.accept``) is the caller's
        part, as after ``sample``. ``n_ids`` > 0 draws among the first ``n_ids``
        ids only (as ``sample(logits[:n_ids])``). Raises as ``eval_batch``, and
        NumericError, after the states have advanced, where a row has no token
        to draw.
        """
        samplers = list(samplers)
        for sampler in samplers:
            if not isinstance(sampler, Sampler):
                raise TypeError(f"samplers must hold Samplers, not {type(sampler).__name__}")
        ptr, n, keepalive, handles, state_ptrs = _batch_in(tokens, states)
        if len(samplers) != n:
            raise ValueError(f"{len(samplers)} samplers for {n} states: one sampler per state expected")
        n_ids = _buffers.token_in(n_ids, "n_ids")
        draws = (Draw * n)()
        err = Error()
        sampler_handles = [sampler._live() for sampler in samplers]
        for i, h in enumerate(sampler_handles):
            check(lib.rwkv_sampler_draw(h.ptr, self.n_vocab, byref(draws[i]), byref(err)), err)
            draws[i].n_ids = n_ids
        next_tokens = (c_int * n)()
        m = self._live()
        check(lib.rwkv_eval_batch_sample(m.ptr, state_ptrs, ptr, n, draws, next_tokens, byref(err)), err)
        if any(t < 0 for t in next_tokens):
            raise NumericError("no token can be drawn for a row: every logit is banned or not finite")
        return list(next_tokens)

    def feed(self, tokens, state):
        """Feeds ``tokens`` into ``state`` without computing logits (a prompt whose logits are not needed)."""
        if not isinstance(state, State):
            raise TypeError(f"state must be a State, not {type(state).__name__}")
        ptr, n, keepalive = _buffers.tokens_in(tokens)
        if n:
            self._feed(state, ptr, n, None, False)

    def _feed(self, state, ptr, n, logits_ptr, all_logits):
        m = self._live()
        s = state._live()
        err = Error()
        check(lib.rwkv_eval_sequence(m.ptr, s.ptr, ptr, n, logits_ptr, 1 if all_logits else 0, byref(err)), err)

    def generate(self, prompt, max_tokens=200, **options):
        """Generates text after ``prompt``; returns an iterator of text pieces (a Generation).

        ``prompt``: str (encoded with the model's tokenizer) or a list of ids.
        Options, with the defaults of ``rwkv generate``: temperature (1.0;
        0 = greedy), top_p (0.85), top_k (0), alpha_presence (0.2),
        alpha_frequency (0.2), alpha_decay (0.996), ban (()), seed (None:
        random), or sampler= a Sampler instead of those; stop (strings that
        end the text, not included), stop_tokens (ids that end it),
        ignore_eos (False), state (a State to continue and update; None: a
        fresh one). ``"".join(m.generate("Hello", max_tokens=16,
        temperature=0.0))`` is the text of ``rwkv generate -m PATH -p Hello
        -n 16 --temp 0``.
        """
        from .generation import Generation
        return Generation(self, prompt, max_tokens, **options)

    def score(self, text, **options):
        """Perplexity details of ``text`` (str, bytes or token ids): a PerplexityResult.

        Options: tokenizer (default the model's), bos (an id put before the
        text so that its first token is scored too), window, stride (as
        ``rwkv eval --data``), progress (a callable(done, total) -> stop?).
        """
        from .evaluation import score
        return score(self, text, **options)

    def perplexity(self, text, **options):
        """The perplexity of ``text`` under this model (``score(text, ...).perplexity``)."""
        return self.score(text, **options).perplexity

    def lambada(self, source, **options):
        """LAMBADA accuracy and perplexity: a LambadaResult.

        ``source``: the path of a JSON Lines file ({"text": ...} per line,
        lambada_openai's format) or a list of passages (str). Options:
        tokenizer (default the model's), limit (first N passages; 0 all),
        progress (a callable(LambadaStep) -> stop?).
        """
        from .evaluation import lambada
        return lambada(self, source, **options)


class State(Owner):
    """The memory of one sequence for one model: an RWKV recurrent state or the GPT's KV cache.

    RWKV states can be copied, saved to a file (bound to the model's weights),
    loaded, and read or written in place through ``data``.
    """

    _what = "State"

    def __init__(self, model):
        """A fresh state of ``model`` (a Model)."""
        if not isinstance(model, Model):
            raise TypeError(f"model must be a Model, not {type(model).__name__}")
        m = model._live()
        out = c_void_p()
        err = Error()
        check(lib.rwkv_state_new(m.ptr, byref(out), byref(err)), err)
        self._handle = Handle(out.value, lib.rwkv_state_free, (m,))
        self.model = model

    def __repr__(self):
        if self.closed:
            return "<rwkvc.State (closed)>"
        return f"<rwkvc.State pos={self.pos} floats={self.size}>"

    @property
    def pos(self):
        """Tokens fed since the state was made or reset (a loaded state counts from 0)."""
        return lib.rwkv_state_pos(self._live().ptr)

    @property
    def size(self):
        """Floats of an RWKV state (0 for the GPT's KV cache)."""
        return lib.rwkv_state_size(self._live().ptr)

    @property
    def memory(self):
        """(used, reserved) bytes of the state."""
        used, reserved = c_size_t(), c_size_t()
        lib.rwkv_state_memory(self._live().ptr, byref(used), byref(reserved))
        return used.value, reserved.value

    @property
    def data(self):
        """The state's floats, a writable array over the library's memory (no copy).

        The layout is that of include/rwkv.h (rwkv_state_new). The array keeps
        the memory alive even after ``close()``. The GPT's KV cache has no
        such view (UnsupportedError).
        """
        h = self._live()
        n = lib.rwkv_state_size(h.ptr)
        if n == 0:
            raise UnsupportedError("a GPT state is a KV cache; only RWKV states expose their data")
        address = cast(lib.rwkv_state_data(h.ptr), c_void_p).value
        return _buffers.view_floats(address, n, h)

    def reset(self):
        """Back to a fresh state."""
        lib.rwkv_state_reset(self._live().ptr)

    def copy(self):
        """A new State of the same model holding the same values (RWKV states only)."""
        twin = State(self.model)
        twin.copy_from(self)
        return twin

    def copy_from(self, other):
        """Overwrites this state with ``other``'s values (a state of a model of the same shape)."""
        if not isinstance(other, State):
            raise TypeError(f"other must be a State, not {type(other).__name__}")
        dst, src = self._live(), other._live()
        err = Error()
        check(lib.rwkv_state_copy(dst.ptr, src.ptr, byref(err)), err)

    def save(self, path):
        """Writes the state to ``path`` atomically, bound to the model's weights (``rwkv generate --state-in`` reads it)."""
        raw = path_bytes(path)
        err = Error()
        check(lib.rwkv_state_save(self._live().ptr, raw, byref(err)), err)

    def load(self, path):
        """Reads a state file into this state (one of another model, truncated or corrupted is an error
        and leaves the state unchanged); returns self."""
        raw = path_bytes(path)
        err = Error()
        check(lib.rwkv_state_load(self._live().ptr, raw, byref(err)), err)
        return self
