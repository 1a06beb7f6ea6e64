"""Ownership of the library's objects.

A ``Handle`` owns one C object and frees it when the last Python reference
to it is gone. The wrapper classes (Model, State, ...) hold their handle
until ``close()``; every other holder keeps it alive for as long as it needs
the memory: a State holds its Model's handle, an array over a state's data
holds the State's handle, a call in progress holds the handle it runs on.
So ``close()`` makes the wrapper unusable at once (a ValueError on any later
use, never a crash), while the memory is released only when nothing can
reach it any more.
"""


class Handle:
    """One C object: its address, the function that frees it, the handles it depends on."""

    __slots__ = ("ptr", "_free", "_needs")

    def __init__(self, ptr, free, needs=()):
        self.ptr = ptr
        self._free = free
        self._needs = needs  # referenced only to keep them alive

    def __del__(self):
        if self.ptr:
            self._free(self.ptr)
            self.ptr = None


class Owner:
    """Base of the wrapper classes: a handle, ``close()`` and the context-manager protocol."""

    _handle = None
    _what = "object"

    def _live(self):
        """The handle, or a ValueError when this object is closed (hold it for the duration of the call)."""
        h = self._handle
        if h is None:
            raise ValueError(f"operation on a closed {self._what}")
        return h

    @property
    def closed(self):
        """True once ``close()`` was called."""
        return self._handle is None

    def close(self):
        """Releases this object; any later use raises ValueError.

        The C memory is freed as soon as nothing else uses it (an array over
        a state's data, a state of this model, a call in progress); closing
        twice is harmless.
        """
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
