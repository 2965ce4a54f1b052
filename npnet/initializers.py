"""Weight initializers with Keras's names and formulas, drawing from npnet's seeded generator.

Each is a function ``(shape, dtype) -> array``. The random ones are Keras's variance-scaling
family: for a kernel of shape ``(fan_in, fan_out)`` (a bias ``(n,)`` counts ``n`` for both),
a uniform one draws from ``U(-limit, limit)`` with ``limit = sqrt(3 · scale / n)``, a normal
one from a normal of standard deviation ``sqrt(scale / n) / 0.8796...`` cut at two standard
deviations (the factor keeps the variance ``scale / n`` after the cut), where ``n`` is
``fan_in`` (He, LeCun) or the mean of both fans (Glorot), and ``scale`` is 2 for He, 1 otherwise.
The numbers differ from Keras's (another generator); the distributions are the same.
"""

import reprlib

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


class Constant:
    """Fills a weight with ``value``: a number, or an array that broadcasts to the weight's
    shape, as Keras's ``Constant`` (``Constant(np.log([pos / neg]))`` starts a sigmoid output's
    bias at the log-odds of the classes, as the TF tutorial on imbalanced data does)."""

    def __init__(self, value=0.0):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):  # a ragged list
            array = np.asarray(None)
        if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)):
            raise ValueError("Constant: value must be a finite number or an array of them; received "
                             f"{reprlib.repr(value)}")
        array = array.astype(np.float64)
        self.value = float(array) if array.ndim == 0 else array

    def __call__(self, shape, dtype):
        shape = tuple(shape)
        try:
            filled = np.broadcast_to(self.value, shape)
        except ValueError:
            raise ValueError(f"Constant: a value of shape {np.shape(self.value)} cannot fill a weight of "
                             f"shape {shape}; give a number or an array that broadcasts to it") from None
        with np.errstate(over="ignore"):
            cast = filled.astype(dtype)
        if not np.all(np.isfinite(cast)):
            raise ValueError(f"Constant: the value does not fit in {np.dtype(dtype).name} (it would be inf)")
        return cast

    def get_config(self):
        return {"value": self.value if isinstance(self.value, float) else self.value.tolist()}

    def __eq__(self, other):
        return isinstance(other, Constant) and np.array_equal(self.value, other.value)  # shapes too

    __hash__ = None

    def __repr__(self):
        return f"Constant({self.get_config()['value']!r})"


_BY_NAME = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform,
                                    lecun_normal, zeros, ones)}


def serialize(initializer):
    """What a layer's config holds for ``initializer``: its name, ``{"class_name": "Constant",
    "config": {"value": ...}}``, or None for a function of your own (it cannot be written)."""
    if isinstance(initializer, Constant):
        return {"class_name": "Constant", "config": initializer.get_config()}
    name = getattr(initializer, "__name__", None)
    return name if _BY_NAME.get(name) is initializer else None


def _deserialize(config):
    """The initializer of a config dict :func:`serialize` wrote; only ``Constant`` has one."""
    if config.get("class_name") != "Constant" or not isinstance(config.get("config", {}), dict) \
            or set(config) - {"class_name", "config"} or set(config.get("config", {})) - {"value"}:
        raise ValueError(f"Unknown initializer {reprlib.repr(config)}; a config dict must be "
                         "{'class_name': 'Constant', 'config': {'value': ...}}")
    return Constant(config.get("config", {}).get("value", 0.0))


def get(identifier):
    """Resolve a name, a Constant config dict or a ``(shape, dtype) -> array`` callable.
    ``None`` is Keras 3's choice for a float weight given no initializer
    (``Dense(bias_initializer=None)``): glorot_uniform."""
    if identifier is None:
        return glorot_uniform
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        return _deserialize(identifier)
    try:
        return _BY_NAME[identifier]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown initializer {reprlib.repr(identifier)}; known initializers: {', '.join(sorted(_BY_NAME))}, "
            "None, Constant(value), or a function (shape, dtype) -> array"
        ) from None
