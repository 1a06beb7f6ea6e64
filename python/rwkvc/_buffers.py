"""Float and token arrays passed to and from the C library.

With numpy installed, logits and states are numpy arrays: logits are written
by the library straight into a fresh array, and a state's data is an array
over the library's own memory (no copy either way). Without numpy they are
Python memoryviews of format "f" over the same memory, which numpy, array and
struct users can wrap later without copying.

Inputs are checked here, before any pointer reaches the library: a float
buffer must hold float32 values and have the expected length, a token list
must hold integers that fit a C int.
"""

import array
import ctypes
from ctypes import POINTER, c_float, c_int

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

HAVE_NUMPY = _np is not None


def new_floats(shape):
    """A fresh zeroed float32 array of ``shape`` and a ctypes pointer to its first element."""
    n = 1
    for d in shape:
        n *= d
    if _np is not None:
        a = _np.zeros(shape, dtype=_np.float32)
        return a, a.ctypes.data_as(POINTER(c_float))
    storage = bytearray(4 * n)
    pointer = ctypes.cast((c_float * n).from_buffer(storage), POINTER(c_float))
    return memoryview(storage).cast("f", list(shape)), pointer


def view_floats(address, n, owner):
    """A writable float32 array of ``n`` elements over C memory at ``address``.

    The array holds a reference to ``owner`` (the object that frees that
    memory), so the memory outlives every view of it.
    """
    cells = (c_float * n).from_address(address)
    cells._owner = owner
    if _np is not None:
        return _np.frombuffer(cells, dtype=_np.float32)
    return memoryview(cells).cast("B").cast("f")


def float_view(obj):
    """A memoryview of ``obj`` when it is a C-contiguous float32 buffer, else None."""
    try:
        view = memoryview(obj)
    except TypeError:
        return None
    if view.format not in ("f", "<f", "=f", "@f") or not view.c_contiguous:
        return None
    return view


def floats_in(obj, name, length=None):
    """Reads ``obj`` (a float32 buffer, or any sequence of numbers) as 1-D float32 input.

    Returns ``(pointer, n, keepalive)``: keep ``keepalive`` referenced while
    the library uses the pointer. A buffer of another type or layout is
    converted (a copy); a length different from ``length`` is a ValueError.
    """
    if isinstance(obj, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be a sequence of numbers or a float32 buffer, not {type(obj).__name__}")
    view = float_view(obj)
    if view is not None and view.ndim <= 1 and not view.readonly:
        n = view.nbytes // 4
        cells = (c_float * n).from_buffer(view) if n else (c_float * 1)()
    else:
        try:
            if _np is not None:
                converted = _np.ascontiguousarray(obj, dtype=_np.float32)
                shape = converted.shape
                data = array.array("f", converted.tobytes())
            else:
                data = array.array("f", obj)
                shape = (len(data),)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a sequence of numbers or a float32 buffer: {e}") from None
        if len(shape) != 1:
            raise ValueError(f"{name} must be one-dimensional, not of shape {shape}")
        n = len(data)
        cells = (c_float * n).from_buffer(data) if n else (c_float * 1)()
        view = data
    if length is not None and n != length:
        raise ValueError(f"{name} holds {n} values; {length} expected")
    return ctypes.cast(cells, POINTER(c_float)), n, (view, cells)


def floats_out(obj, name, length):
    """A ctypes pointer into ``obj``, a writable C-contiguous float32 buffer of ``length`` values.

    Anything else (wrong type, read-only, wrong size) is a TypeError or a
    ValueError: the library never writes outside the caller's buffer.
    """
    view = float_view(obj)
    if view is None:
        raise TypeError(f"{name} must be a writable C-contiguous float32 buffer (numpy float32 array, "
                        f"array('f'), memoryview of format 'f'), not {type(obj).__name__}")
    if view.readonly:
        raise ValueError(f"{name} is read-only")
    if view.nbytes != 4 * length:
        raise ValueError(f"{name} holds {view.nbytes // 4} floats; {length} expected")
    return ctypes.cast((c_float * length).from_buffer(view), POINTER(c_float)), view


def tokens_in(tokens, name="tokens"):
    """Reads an int, or a sequence of ints, as C ints.

    Returns ``(pointer, n, keepalive)``. A value that is not an integer is a
    TypeError; one that does not fit a C int an OverflowError (the library
    then checks the range of the vocabulary).
    """
    if isinstance(tokens, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be token ids (ints), not {type(tokens).__name__}: encode text with a "
                        "Tokenizer first")
    try:
        data = array.array("i", [tokens] if is_int(tokens) else tokens)
    except TypeError as e:
        raise TypeError(f"{name} must be an int or a sequence of ints: {e}") from None
    except OverflowError:
        raise OverflowError(f"{name}: a token id does not fit a C int") from None
    n = len(data)
    cells = (c_int * n).from_buffer(data) if n else (c_int * 1)()
    return ctypes.cast(cells, POINTER(c_int)), n, (data, cells)


def token_list(tokens, name="tokens"):
    """A sequence of ints as a list of Python ints that fit a C int (TypeError / OverflowError otherwise)."""
    return tokens_in(list(tokens), name)[2][0].tolist()


def token_in(token, name="token"):
    """One token id as a Python int that fits a C int (TypeError / OverflowError otherwise)."""
    if not is_int(token):
        raise TypeError(f"{name} must be an int, not {type(token).__name__}")
    value = token.__index__()
    if not -2**31 <= value < 2**31:
        raise OverflowError(f"{name} {value} does not fit a C int")
    return value


def is_int(x):
    try:
        x.__index__()
    except (AttributeError, TypeError):
        return False
    return not hasattr(x, "__len__")
