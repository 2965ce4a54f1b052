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
