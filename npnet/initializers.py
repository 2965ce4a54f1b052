"""Weight initializers with Keras's names and formulas, drawing from npnet's seeded generator."""

import numpy as np

from . import utils


def glorot_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return utils.rng().uniform(-limit, limit, size=shape).astype(dtype)


def zeros(shape, dtype):
    """All zeros: Keras's default for biases."""
    return np.zeros(shape, dtype=dtype)


_BY_NAME = {"glorot_uniform": glorot_uniform, "zeros": zeros}


def get(identifier):
    """Resolve a name or a ``(shape, dtype) -> array`` callable."""
    if callable(identifier):
        return identifier
    try:
        return _BY_NAME[identifier]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown initializer {identifier!r}; known initializers: {', '.join(sorted(_BY_NAME))}"
        ) from None
