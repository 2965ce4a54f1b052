"""Weight initializers with Keras's names and formulas, drawing from npnet's seeded generator.

Each is a function ``(shape, dtype) -> array``. The random ones are Keras's variance-scaling
family: for a kernel of shape ``(fan_in, fan_out)`` (a bias ``(n,)`` counts ``n`` for both),
a uniform one draws from ``U(-limit, limit)`` with ``limit = sqrt(3 · scale / n)``, a normal
one from a normal of standard deviation ``sqrt(scale / n) / 0.8796...`` cut at two standard
deviations (the factor keeps the variance ``scale / n`` after the cut), where ``n`` is
``fan_in`` (He, LeCun) or the mean of both fans (Glorot), and ``scale`` is 2 for He, 1 otherwise.
The numbers differ from Keras's (another generator); the distributions are the same.
"""

import numpy as np

from . import utils

#: The standard deviation of a standard normal cut at ±2, which the normal ones divide by.
_CUT_NORMAL_STDDEV = 0.87962566103423978


def _fans(shape):
    """``(fan_in, fan_out)`` as Keras counts them for a Dense kernel or a bias."""
    return (shape[0], shape[-1]) if len(shape) else (1, 1)


def _uniform(shape, dtype, variance):
    limit = np.sqrt(3.0 * variance)
    return utils.rng().uniform(-limit, limit, size=shape).astype(dtype)


def _cut_normal(shape, dtype, stddev):
    """Normal draws of ``stddev``, each beyond two standard deviations drawn again."""
    values = utils.rng().standard_normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = utils.rng().standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev).astype(dtype)


def glorot_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""
    fan_in, fan_out = _fans(shape)
    return _uniform(shape, dtype, 2.0 / (fan_in + fan_out))


def glorot_normal(shape, dtype):
    """Cut normal of variance ``2 / (fan_in + fan_out)``."""
    fan_in, fan_out = _fans(shape)
    return _cut_normal(shape, dtype, np.sqrt(2.0 / (fan_in + fan_out)) / _CUT_NORMAL_STDDEV)


def he_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(6 / fan_in)`` (He et al.), for ReLU layers."""
    return _uniform(shape, dtype, 2.0 / _fans(shape)[0])


def he_normal(shape, dtype):
    """Cut normal of variance ``2 / fan_in`` (He et al.), for ReLU layers."""
    return _cut_normal(shape, dtype, np.sqrt(2.0 / _fans(shape)[0]) / _CUT_NORMAL_STDDEV)


def lecun_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(3 / fan_in)`` (LeCun)."""
    return _uniform(shape, dtype, 1.0 / _fans(shape)[0])


def lecun_normal(shape, dtype):
    """Cut normal of variance ``1 / fan_in`` (LeCun), what SELU networks expect."""
    return _cut_normal(shape, dtype, np.sqrt(1.0 / _fans(shape)[0]) / _CUT_NORMAL_STDDEV)


def zeros(shape, dtype):
    """All zeros: Keras's default for biases."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype):
    """All ones."""
    return np.ones(shape, dtype=dtype)


_BY_NAME = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform,
                                    lecun_normal, zeros, ones)}


def get(identifier):
    """Resolve a name or a ``(shape, dtype) -> array`` callable. ``None`` is Keras 3's choice
    for a float weight given no initializer (``Dense(bias_initializer=None)``): glorot_uniform."""
    if identifier is None:
        return glorot_uniform
    if callable(identifier):
        return identifier
    try:
        return _BY_NAME[identifier]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown initializer {identifier!r}; known initializers: {', '.join(sorted(_BY_NAME))}, "
            "None, or a function (shape, dtype) -> array"
        ) from None
