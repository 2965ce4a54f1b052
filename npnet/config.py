"""Global settings, as in ``keras.config``: the float type of weights and computations."""

import numpy as np

_FLOATX = "float32"
_KNOWN_FLOATX = ("float32", "float64")


def floatx():
    """The default float type as a string: ``'float32'`` (Keras's default) or ``'float64'``."""
    return _FLOATX


def set_floatx(value):
    """Set the float type used for new weights, inputs, losses and optimizer state.

    ``'float64'`` is for teaching and gradient checks; models built before the call keep
    their weights' dtype.
    """
    global _FLOATX
    name = np.dtype(value).name if not isinstance(value, str) else value
    if name not in _KNOWN_FLOATX:
        raise ValueError(f"floatx must be one of {_KNOWN_FLOATX}; received {value!r}")
    _FLOATX = name


def floatx_dtype():
    """The default float type as a NumPy dtype."""
    return np.dtype(_FLOATX)


# Threads for training. None: npnet decides per model (npnet.backends._threads.training_threads).
_NUM_THREADS = None


def num_threads():
    """The number of threads training uses, as set by :func:`set_num_threads`; ``None``
    (the default) lets npnet choose per model."""
    return _NUM_THREADS


def set_num_threads(n):
    """Share the large matrix products of training and evaluation among ``n`` threads.

    ``None`` (the default) chooses for each model: several threads only where a step's
    products are large enough to gain from them even when other programs keep the CPUs
    busy; one thread otherwise (a small model at batch 32 waits for a descheduled helper
    thread more than it gains). ``1`` keeps everything on the calling thread. Results are
    the same bit for bit whatever the number: each entry is computed the same way, only on
    another thread. Used by the numba backend; the NumPy backend keeps BLAS on one thread.
    """
    global _NUM_THREADS
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_num_threads takes a positive integer or None; received {n!r}")
    _NUM_THREADS = None if n is None else int(n)
