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


def _status_class(name, code, builtin, doc):
    return type(name, (RwkvError, builtin), {"code": code, "__doc__": doc, "__module__": __name__})


# One class per status of include/rwkv.h (rwkv_status), in the order of its codes.
RwkvIOError = _status_class("RwkvIOError", 1, OSError, "A file could not be opened, read, written or mapped.")
FormatError = _status_class("FormatError", 2, ValueError, "The bytes of a file are not what its format says.")
UnsupportedError = _status_class("UnsupportedError", 3, NotImplementedError,
                                 "A valid input of a kind the library does not handle.")
ShapeError = _status_class("ShapeError", 4, ValueError, "Tensors are missing or of the wrong shape or dtype.")
OutOfMemoryError = _status_class("OutOfMemoryError", 5, MemoryError,
                                 "An allocation failed, or would be absurdly large.")
ArgumentError = _status_class("ArgumentError", 6, ValueError, "A bad argument, found by the library.")
NumericError = _status_class("NumericError", 7, ArithmeticError,
                             "A non-finite value where a finite one is required.")

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
