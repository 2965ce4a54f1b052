"""Weight initializers with Keras's names and formulas, drawing from npnet's seeded generator.

Each is a function ``(shape, dtype) -> array``. The random ones are Keras's variance-scaling
family: for a kernel of shape ``(fan_in, fan_out)`` (a bias ``(n,)`` counts ``n`` for both),
a uniform one draws from ``U(-limit, limit)`` with ``limit = sqrt(3 · scale / n)``, a normal
one from a normal of standard deviation ``sqrt(scale / n) / 0.8796...`` cut at two standard
deviations (the factor keeps the variance ``scale / n`` after the cut), where ``n`` is
``fan_in`` (He, LeCun) or the mean of both fans (Glorot), and ``scale`` is 2 for He, 1 otherwise.
The numbers differ from Keras's (another generator); the distributions are the same.
"""

import functools
import inspect
import math
import reprlib

import numpy as np

from . import utils

#: The standard deviation of a standard normal cut at ±2, which the normal ones divide by.
_CUT_NORMAL_STDDEV = 0.87962566103423978


def _fans(shape):
    """``(fan_in, fan_out)`` as Keras counts them for a Dense kernel or a bias."""
    return (shape[0], shape[-1]) if len(shape) else (1, 1)


def _uniform(shape, dtype, variance, generator=None):
    limit = np.sqrt(3.0 * variance)
    return (generator or utils.rng()).uniform(-limit, limit, size=shape).astype(dtype)


def _cut_normal(shape, dtype, stddev, generator=None):
    """Normal draws of ``stddev``, each beyond two standard deviations drawn again."""
    generator = generator or utils.rng()
    values = generator.standard_normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = generator.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev).astype(dtype)


def _class_form(class_name):
    """Keras 3's lowercase names are its classes (``keras.initializers.he_normal(seed=1)``
    makes a ``HeNormal``): the function called without a shape gives that class's instance,
    and called with ``(shape, dtype)`` draws, as npnet calls it."""
    def wrap(function):
        @functools.wraps(function)
        def initializer(shape=None, dtype=None, **settings):
            if shape is None:
                return _CLASSES[class_name](**settings)
            if settings:
                raise TypeError(f"{function.__name__}(shape, dtype) takes no settings; to give a seed, make the "
                                f"class: {function.__name__}(seed=...) or {class_name}(seed=...)")
            return function(shape, dtype)
        return initializer
    return wrap


@_class_form("GlorotUniform")
def glorot_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""
    fan_in, fan_out = _fans(shape)
    return _uniform(shape, dtype, 2.0 / (fan_in + fan_out))


@_class_form("GlorotNormal")
def glorot_normal(shape, dtype):
    """Cut normal of variance ``2 / (fan_in + fan_out)``."""
    fan_in, fan_out = _fans(shape)
    return _cut_normal(shape, dtype, np.sqrt(2.0 / (fan_in + fan_out)) / _CUT_NORMAL_STDDEV)


@_class_form("HeUniform")
def he_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(6 / fan_in)`` (He et al.), for ReLU layers."""
    return _uniform(shape, dtype, 2.0 / _fans(shape)[0])


@_class_form("HeNormal")
def he_normal(shape, dtype):
    """Cut normal of variance ``2 / fan_in`` (He et al.), for ReLU layers."""
    return _cut_normal(shape, dtype, np.sqrt(2.0 / _fans(shape)[0]) / _CUT_NORMAL_STDDEV)


@_class_form("LecunUniform")
def lecun_uniform(shape, dtype):
    """Uniform on [-limit, limit] with ``limit = sqrt(3 / fan_in)`` (LeCun)."""
    return _uniform(shape, dtype, 1.0 / _fans(shape)[0])


@_class_form("LecunNormal")
def lecun_normal(shape, dtype):
    """Cut normal of variance ``1 / fan_in`` (LeCun), what SELU networks expect."""
    return _cut_normal(shape, dtype, np.sqrt(1.0 / _fans(shape)[0]) / _CUT_NORMAL_STDDEV)


@_class_form("Zeros")
def zeros(shape, dtype):
    """All zeros: Keras's default for biases."""
    return np.zeros(shape, dtype=dtype)


@_class_form("Ones")
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


class Initializer:
    """Keras's initializer classes: ``init(shape, dtype)`` draws a weight; ``get_config()``
    holds the settings, and ``type(init)(**init.get_config())`` makes it again. A ``seed``
    of its own makes an initializer draw the same numbers at every call (as a seeded Keras
    initializer does); ``seed=None`` draws from npnet's seeded generator
    (:func:`npnet.utils.set_random_seed`)."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < 2**63):
            raise ValueError(f"{type(self).__name__}: seed must be None or an integer from 0 to 2**63 - 1; "
                             f"received seed={seed!r}")
        self.seed = None if seed is None else int(seed)

    def _generator(self):
        return utils.rng() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({settings})"


def _real(owner, name, value, low=-math.inf, low_inclusive=True):
    """``value`` as a float: a finite number above ``low`` (or equal to it when inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < low or (value == low and not low_inclusive):
        bound = "" if low == -math.inf else f" {'>=' if low_inclusive else '>'} {low:g}"
        raise ValueError(f"{owner}: {name} must be a finite number{bound}; received {name}={value!r}")
    return float(value)


class RandomNormal(Initializer):
    """Normal draws of ``mean`` and ``stddev`` (Keras's defaults: 0 and 0.05)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = _real("RandomNormal", "mean", mean), _real("RandomNormal", "stddev", stddev, 0.0)

    def __call__(self, shape, dtype):
        return self._generator().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """Normal draws of ``mean`` and ``stddev``, each beyond two standard deviations drawn again."""

    def __call__(self, shape, dtype):
        return (self.mean + _cut_normal(shape, np.float64, self.stddev, self._generator())).astype(dtype)


class RandomUniform(Initializer):
    """Uniform draws on ``[minval, maxval)`` (Keras's defaults: -0.05 and 0.05)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _real("RandomUniform", "minval", minval)
        self.maxval = _real("RandomUniform", "maxval", maxval, self.minval)

    def __call__(self, shape, dtype):
        return self._generator().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class VarianceScaling(Initializer):
    """Draws of variance ``scale / n``, with ``n`` the kernel's fan in, fan out or their mean
    (``mode``), from a normal cut at two standard deviations (``distribution=
    'truncated_normal'``, Keras's ``'normal'`` too), a whole normal (``'untruncated_normal'``)
    or a uniform distribution (``'uniform'``): the family of Glorot, He and LeCun."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = _real(type(self).__name__, "scale", scale, 0.0, low_inclusive=False)
        for name, value, allowed in (("mode", mode, self._MODES), ("distribution", distribution, self._DISTRIBUTIONS)):
            if value not in allowed:
                raise ValueError(f"{type(self).__name__}: {name} must be one of {', '.join(allowed)}; "
                                 f"received {name}={value!r}")
        self.mode, self.distribution = mode, "truncated_normal" if distribution == "normal" else distribution

    def __call__(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            return _uniform(shape, dtype, variance, self._generator())
        if self.distribution == "untruncated_normal":
            return self._generator().normal(0.0, math.sqrt(variance), size=shape).astype(dtype)
        return _cut_normal(shape, dtype, math.sqrt(variance) / _CUT_NORMAL_STDDEV, self._generator())

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, **super().get_config()}


def _named_scaling(name, scale, mode, distribution, doc):
    """A Keras class such as ``HeNormal``: VarianceScaling with its settings fixed, and a seed."""
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    return type(name, (VarianceScaling,), {"__init__": __init__, "__doc__": doc, "get_config": Initializer.get_config,
                                          "__module__": __name__})


GlorotUniform = _named_scaling("GlorotUniform", 1.0, "fan_avg", "uniform", "The class form of :func:`glorot_uniform`.")
GlorotNormal = _named_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                              "The class form of :func:`glorot_normal`.")
HeUniform = _named_scaling("HeUniform", 2.0, "fan_in", "uniform", "The class form of :func:`he_uniform`.")
HeNormal = _named_scaling("HeNormal", 2.0, "fan_in", "truncated_normal", "The class form of :func:`he_normal`.")
LecunUniform = _named_scaling("LecunUniform", 1.0, "fan_in", "uniform", "The class form of :func:`lecun_uniform`.")
LecunNormal = _named_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal", "The class form of :func:`lecun_normal`.")


class Orthogonal(Initializer):
    """A (semi-)orthogonal kernel times ``gain``: the Q of a normal matrix's QR decomposition,
    its columns' signs fixed by R's diagonal (Saxe et al.), as Keras's ``Orthogonal``."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _real("Orthogonal", "gain", gain)

    def __call__(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializes weights of 2 or more dimensions; received shape {shape}")
        rows, columns = math.prod(shape[:-1]), shape[-1]
        draws = self._generator().standard_normal(size=(max(rows, columns), min(rows, columns)))
        q, r = np.linalg.qr(draws)
        q *= np.sign(np.diag(r))
        if rows < columns:
            q = q.T
        return (self.gain * q[:rows, :columns]).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


class Zeros(Initializer):
    """The class form of :func:`zeros`."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, shape, dtype):
        return zeros(shape, dtype)

    def get_config(self):
        return {}


class Ones(Zeros):
    """The class form of :func:`ones`."""

    def __call__(self, shape, dtype):
        return ones(shape, dtype)


_BY_NAME = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform,
                                    lecun_normal, zeros, ones)}
#: Keras's initializer classes by name, and the names Keras gives their default instances.
_CLASSES = {cls.__name__: cls for cls in (RandomNormal, TruncatedNormal, RandomUniform, VarianceScaling, GlorotUniform,
                                          GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal,
                                          Zeros, Ones, Constant)}
random_normal, truncated_normal, random_uniform = RandomNormal, TruncatedNormal, RandomUniform
variance_scaling, orthogonal, constant = VarianceScaling, Orthogonal, Constant
_CLASS_ALIASES = {"random_normal": RandomNormal, "truncated_normal": TruncatedNormal, "random_uniform": RandomUniform,
                  "variance_scaling": VarianceScaling, "orthogonal": Orthogonal, "constant": Constant}


def serialize(initializer):
    """What a layer's config holds for ``initializer``: the name of one of the functions above,
    ``{"class_name": ..., "config": ...}`` for a Keras class (``Constant``, ``RandomNormal``...),
    or None for a function of your own (it cannot be written)."""
    if type(initializer) in _CLASSES.values():
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    name = getattr(initializer, "__name__", None)
    return name if _BY_NAME.get(name) is initializer else None


def from_config(class_name, config, where="initializer"):
    """The Keras class ``class_name`` made from ``config`` (a file's, so every key is checked
    against the class's settings and every value by the class): a clear ValueError otherwise."""
    cls = _CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(f"{where}: unknown initializer class {reprlib.repr(class_name)}; known: "
                         f"{', '.join(sorted(_CLASSES))}")
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the config of {class_name} must be a dict; received {type(config).__name__}")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(map(str, set(config) - accepted))
    if unknown:
        raise ValueError(f"{where}: {class_name} has no setting {', '.join(map(repr, unknown))}; its settings "
                         f"are {', '.join(sorted(accepted)) or 'none'}")
    return cls(**config)


def _deserialize(config):
    """The initializer of a config dict :func:`serialize` wrote (or Keras's form of it)."""
    if not set(config) <= {"class_name", "config", "module", "registered_name"} or "class_name" not in config:
        raise ValueError(f"Unknown initializer {reprlib.repr(config)}; a config dict must be "
                         "{'class_name': 'RandomNormal', 'config': {...}} (any of Keras's initializer classes)")
    return from_config(config["class_name"], config.get("config", {}))


def get(identifier):
    """Resolve an initializer as Keras's ``initializers.get`` does: a name (``'he_normal'``,
    ``'random_normal'``, a class name such as ``'HeNormal'``), a config dict, an instance or a
    ``(shape, dtype) -> array`` callable. ``None`` is Keras 3's choice for a float weight given
    no initializer (``Dense(bias_initializer=None)``): glorot_uniform."""
    if identifier is None:
        return glorot_uniform
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        return _deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]
        cls = _CLASS_ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is not None:
            return cls()
    known = sorted(set(_BY_NAME) | set(_CLASS_ALIASES) | set(_CLASSES))
    raise ValueError(f"Unknown initializer {reprlib.repr(identifier)}; known initializers: {', '.join(known)}, "
                     "None, an instance of one of those classes (e.g. RandomNormal(stddev=0.01)), or a function "
                     "(shape, dtype) -> array")
