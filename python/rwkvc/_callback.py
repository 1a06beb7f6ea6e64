"""Python callbacks called from inside the library (progress reports).

ctypes would print and swallow an exception raised in a callback. Instead a
guard catches it (KeyboardInterrupt too), answers "stop" to the library, which
then ends its run cleanly (a trainer first writes its checkpoint), and the
caller re-raises it once the C call has returned.
"""


class CallbackGuard:
    """Wraps ``fn`` for the library: a true result or an exception asks it to stop."""

    def __init__(self, fn, convert):
        """``convert`` turns the C arguments into the arguments of ``fn``."""
        if not callable(fn):
            raise TypeError(f"the progress callback must be callable, not {type(fn).__name__}")
        self._fn = fn
        self._convert = convert
        self.error = None

    def __call__(self, *c_args):
        if self.error is not None:  # stopping already: the user's function is not called again
            return 1
        try:
            return 1 if self._fn(*self._convert(*c_args)) else 0
        except BaseException as e:  # noqa: B036 - re-raised by reraise() after the C call returns
            self.error = e
            return 1

    def reraise(self):
        """Raises the exception the callback raised, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
