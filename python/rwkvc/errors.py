"""Exceptions: one class per status code of the C library.

Every failing call of librwkv returns a status and a one-line message naming
the file, field or offset at fault; the package raises the class of that
status with the message as its text. Each class also derives from the
built-in exception a Python programmer would catch for that kind of failure
(OSError, ValueError, MemoryError, ...).
"""

from . import _lib


class RwkvError(Exception):
    """A call into librwkv failed.

    ``str(e)`` is the library's one-line message; ``e.code`` the numeric
    status (include/rwkv.h, ``rwkv_status``) and ``e.status`` its short name.
    """

    code = None

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def status(self):
        """The library's short name of the status code, e.g. ``"format error"``."""
        return _lib.lib.rwkv_status_name(self.code).decode()

    @property
    def message(self):
        """The library's one-line message."""
        return self.args[0]


class RwkvIOError(RwkvError, OSError):
    """A file could not be opened, read, written or mapped."""
    code = 1


class FormatError(RwkvError, ValueError):
    """The bytes of a file are not what its format says they must be."""
    code = 2


class UnsupportedError(RwkvError, NotImplementedError):
    """A valid input of a kind the library does not handle."""
    code = 3


class ShapeError(RwkvError, ValueError):
    """Tensors are missing or of the wrong shape or dtype."""
    code = 4


class OutOfMemoryError(RwkvError, MemoryError):
    """An allocation failed, or would be absurdly large."""
    code = 5


class ArgumentError(RwkvError, ValueError):
    """A bad argument, found by the library."""
    code = 6


class NumericError(RwkvError, ArithmeticError):
    """A non-finite value where a finite one is required."""
    code = 7


_BY_CODE = {cls.code: cls for cls in (RwkvIOError, FormatError, UnsupportedError, ShapeError, OutOfMemoryError,
                                      ArgumentError, NumericError)}


def error_for(code, message):
    """The exception for status ``code`` with ``message`` (an unknown code gives a plain RwkvError)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return RwkvError(message, code)
    return cls(message)


def check(status, err):
    """Raises the exception of a failed call (``status`` != 0), with the message left in ``err``."""
    if status != 0:
        message = err.message.decode("utf-8", "replace") or _lib.lib.rwkv_status_name(status).decode()
        raise error_for(status, message)
