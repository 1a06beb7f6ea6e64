"""Tokenizers: text <-> token ids (byte level, GPT-NeoX BPE, RWKV World)."""

import ctypes
import os
from ctypes import POINTER, byref, c_int, c_size_t, c_void_p

from . import _buffers
from ._handle import Handle, Owner
from ._lib import Error, lib
from ._paths import path_bytes
from .errors import check

_STREAM_REPLACE = 0
_STREAM_RAW = 1


def _text_bytes(text):
    """str -> UTF-8 bytes; bytes-like objects pass unchanged."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"text must be str or bytes, not {type(text).__name__}")


def _take_bytes(ptr, n):
    """Copies n bytes the library allocated and releases them."""
    try:
        return ctypes.string_at(ptr, n) if n else b""
    finally:
        lib.rwkv_free(ptr)


class Tokenizer(Owner):
    """A tokenizer of one of three kinds, chosen from the file's content.

    ``Tokenizer("bytes")`` (the default) is the byte-level tokenizer of the
    small models ``rwkv init`` and ``rwkv train`` make (ids 0..255 are the
    bytes); a Hugging Face ``tokenizer.json`` gives the GPT-NeoX BPE of the
    RWKV-4 Pile models; a World vocabulary file (``rwkv_vocab_v20230424.txt``)
    gives the tokenizer of World RWKV-4 and of all RWKV-5/6/7 models.
    A tokenizer is read-only: one object may be used from several threads.
    """

    _what = "Tokenizer"

    def __init__(self, path="bytes"):
        """Loads the tokenizer at ``path`` (str or os.PathLike), or the byte-level one for ``"bytes"``."""
        err = Error()
        out = c_void_p()
        check(lib.rwkv_tokenizer_load(path_bytes(path), byref(out), byref(err)), err)
        self._handle = Handle(out.value, lib.rwkv_tokenizer_free)
        self.path = os.fspath(path)
        self.kind = lib.rwkv_tokenizer_kind(out).decode()
        self.vocab_size = lib.rwkv_tokenizer_vocab_size(out)
        eos = lib.rwkv_tokenizer_eos(out)
        self.eos = None if eos < 0 else eos

    def __repr__(self):
        return f"<rwkvc.Tokenizer {self.kind} vocab_size={self.vocab_size}>"

    def encode(self, text):
        """The token ids of ``text`` (str, encoded as UTF-8, or bytes) as a list of ints.

        NeoX needs valid UTF-8 (an ArgumentError names the byte offset
        otherwise); World and bytes accept any bytes. No BOS/EOS is added.
        """
        data = _text_bytes(text)
        h = self._live()
        ids = POINTER(c_int)()
        n = c_size_t()
        err = Error()
        check(lib.rwkv_tokenize(h.ptr, data, len(data), byref(ids), byref(n), byref(err)), err)
        try:
            return ids[:n.value] if n.value else []
        finally:
            lib.rwkv_free(ids)

    def decode_bytes(self, ids):
        """The bytes of the tokens ``ids`` concatenated (end-of-text tokens decode to nothing).

        An id outside [0, vocab_size) is an ArgumentError.
        """
        ptr, n, keepalive = _buffers.tokens_in(ids, "ids")
        h = self._live()
        text = c_void_p()
        size = c_size_t()
        err = Error()
        check(lib.rwkv_detokenize(h.ptr, ptr, n, byref(text), byref(size), byref(err)), err)
        return _take_bytes(text, size.value)

    def decode(self, ids, errors="replace"):
        """The text of the tokens ``ids``: their bytes decoded as UTF-8 (``errors`` as in bytes.decode)."""
        return self.decode_bytes(ids).decode("utf-8", errors)

    def stream(self, raw=False):
        """A TokenStream decoding this tokenizer's ids one at a time into printable text."""
        return TokenStream(self, raw)


class TokenStream(Owner):
    """Streaming decoder: push one id at a time, get back the text it completes.

    An incomplete UTF-8 tail (at most 3 bytes) is held back until a later
    token completes it; a sequence that can never complete becomes U+FFFD
    (Python's ``errors="replace"`` rule) or, with ``raw=True``, its raw bytes
    (and ``push`` and ``flush`` then return bytes instead of str).
    """

    _what = "TokenStream"

    def __init__(self, tokenizer, raw=False):
        """A decoder for ``tokenizer`` (a Tokenizer); ``raw`` keeps ill-formed bytes unchanged."""
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a Tokenizer, not {type(tokenizer).__name__}")
        tok = tokenizer._live()
        out = c_void_p()
        err = Error()
        check(lib.rwkv_token_stream_new(tok.ptr, _STREAM_RAW if raw else _STREAM_REPLACE, byref(out), byref(err)),
              err)
        self._handle = Handle(out.value, lib.rwkv_token_stream_free, (tok,))
        self.raw = bool(raw)

    def _result(self, text, size):
        data = ctypes.string_at(text, size.value) if size.value else b""
        return data if self.raw else data.decode("utf-8")

    def push(self, token):
        """Feeds one id; returns the newly completed text (possibly empty).

        An id outside the vocabulary is an ArgumentError and leaves the stream unchanged.
        """
        value = _buffers.token_in(token)
        h = self._live()
        text = c_void_p()
        size = c_size_t()
        err = Error()
        check(lib.rwkv_token_stream_push(h.ptr, value, byref(text), byref(size), byref(err)), err)
        return self._result(text, size)

    def flush(self):
        """Ends the stream: returns the held-back tail (as U+FFFD, or raw), leaving the stream empty."""
        h = self._live()
        text = c_void_p()
        size = c_size_t()
        lib.rwkv_token_stream_flush(h.ptr, byref(text), byref(size))
        return self._result(text, size)

    @property
    def pending(self):
        """Bytes currently held back (0..3)."""
        return lib.rwkv_token_stream_pending(self._live().ptr)
