"""Random seeding and small helpers shared by the library."""

import contextlib
import json
import os
import random
import signal
import threading
import uuid

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed every source of randomness npnet uses: initial weights, shuffling and dropout.

    After ``set_random_seed(s)`` the same code produces the same History, weights and
    predictions, as ``keras.utils.set_random_seed`` promises. Python's ``random`` and NumPy's
    legacy global generator are seeded too, for user code that relies on them.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; received {seed!r}")
    global _rng
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


#: Byte boundary on which parameters, optimizer state and the numba backend's buffers start:
#: a cache line, and the width of an AVX-512 vector. NumPy promises only 16 bytes, and a
#: vector load that spans two cache lines is slower (measured in docs/performance.md).
MEMORY_ALIGNMENT = 64


def aligned_empty(shape, dtype=np.float32):
    """An uninitialised C-contiguous array whose data starts on a ``MEMORY_ALIGNMENT`` boundary."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n_bytes + MEMORY_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % MEMORY_ALIGNMENT
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


def aligned_copy(array):
    """A copy of ``array`` (same shape and dtype) whose data starts on a ``MEMORY_ALIGNMENT`` boundary."""
    array = np.asarray(array)
    out = aligned_empty(array.shape, array.dtype)
    np.copyto(out, array)
    return out


def rng():
    """The generator npnet draws from (weights, shuffles, dropout masks)."""
    return _rng


def format_shape(shape):
    """``(None, 28, 28)`` style text for a shape tuple."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Write a file so that nobody ever sees it half-written.

    Yields a file opened on a hidden temporary name in the same directory; when the block
    ends without error the file is renamed over ``path`` (an atomic replace on one file
    system), otherwise it is removed and ``path`` is left as it was. The file gets the usual
    permissions of a new file (not ``mkstemp``'s owner-only mode)::

        with atomic_write("model.npnet") as handle:
            handle.write(data)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, mode.replace("w", "x")) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_json_atomic(path, data):
    """Write ``data`` as indented JSON through :func:`atomic_write`."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


class interrupts_deferred:
    """Context manager: a Ctrl-C (SIGINT) that arrives inside the block is raised as
    ``KeyboardInterrupt`` when the block ends, so the block is never left half done.

    Only the main thread receives signals; elsewhere, and when SIGINT is not Python's
    default handler (the user installed their own), it does nothing.
    """

    def __enter__(self):
        self._previous = None
        self._received = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._record)
        return self

    def _record(self, signum, frame):
        self._received = True

    def __exit__(self, exc_type, exc, traceback):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            if self._received and exc_type is None:
                raise KeyboardInterrupt
        return False
