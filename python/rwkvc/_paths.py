"""File-system paths handed to the library."""

import os


def path_bytes(path, name="path"):
    """A file-system path as the bytes the C library expects (TypeError for anything else)."""
    try:
        data = os.fsencode(path)
    except TypeError:
        raise TypeError(f"{name} must be a str, bytes or os.PathLike, not {type(path).__name__}") from None
    if b"\0" in data:
        raise ValueError(f"{name} holds a NUL byte")
    return data
