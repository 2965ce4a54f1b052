"""Learning-rate schedules, ``npnet.optimizers.schedules``, with Keras's names and formulas.

A schedule maps the optimizer's step count to a learning rate: ``schedule(step) -> float``;
an array of steps (``schedule(np.linspace(0, 100000))``, to plot it) gives a float32 array
of rates, as Keras gives a tensor.
Give one as an optimizer's ``learning_rate`` and every update uses ``schedule(iterations)``,
with ``iterations`` counted *before* that update (0 for the first), as Keras does. The
arithmetic is float32, the type Keras's schedules compute in for a Python float.
"""

import math

import numpy as np

from .validation import finite_in

_f32 = np.float32


def _elementwise(rate_of_one_step):
    """Let ``__call__`` take an array of steps too: the rate of each, as a float32 array."""
    import functools

    @functools.wraps(rate_of_one_step)
    def call(self, step):
        if np.ndim(step) == 0:
            return rate_of_one_step(self, step)
        steps = np.asarray(step)
        rates = [rate_of_one_step(self, s) for s in steps.ravel()]
        return np.asarray(rates, dtype=_f32).reshape(steps.shape)
    return call


class LearningRateSchedule:
    """Base class: subclasses define ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _positive(name, value, integer=False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}; received {name}={value!r}")
    return _finite_in_float32(name, value)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; received {name}={value!r}")
    return _finite_in_float32(name, value)


def _finite_in_float32(name, value):
    """``value``, refused when float32, the schedules' arithmetic, makes it inf (1e39 is a
    finite float64)."""
    if not finite_in(value, _f32):
        raise ValueError(f"{name} must be finite in float32, the type the schedule computes in; "
                         f"received {name}={value!r}")
    return value


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate · decay_rate ^ (step / decay_steps)``; with ``staircase`` the
    exponent is floored, so the rate drops every ``decay_steps`` steps."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name

    @_elementwise
    def __call__(self, step):
        exponent = _f32(step) / _f32(self.decay_steps)
        if self.staircase:
            exponent = np.floor(exponent)
        return float(_f32(self.initial_learning_rate) * np.power(_f32(self.decay_rate), exponent))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate · step / decay_steps)`` (floored ratio with
    ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _number("decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name

    @_elementwise
    def __call__(self, step):
        ratio = _f32(step) / _f32(self.decay_steps)
        if self.staircase:
            ratio = np.floor(ratio)
        return float(_f32(self.initial_learning_rate) / (_f32(1) + _f32(self.decay_rate) * ratio))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay needs one more value than boundaries; received "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        if boundaries != sorted(boundaries):
            raise ValueError(f"boundaries must increase; received {boundaries}")
        self.boundaries = [_number("boundaries", b) for b in boundaries]
        self.values = [_number("values", v) for v in values]
        self.name = name

    @_elementwise
    def __call__(self, step):
        index = int(np.searchsorted(np.asarray(self.boundaries), step, side="left"))
        return float(_f32(self.values[index]))

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha`` times it over ``decay_steps``:
    ``lr · ((1 - alpha) · ½ (1 + cos(π · min(step, decay_steps) / decay_steps)) + alpha)``.

    With ``warmup_target``, the rate first rises linearly from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps`` steps, then decays from ``warmup_target``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = _number("alpha", alpha)
        self.warmup_target = None if warmup_target is None else _number("warmup_target", warmup_target)
        self.warmup_steps = _number("warmup_steps", warmup_steps)
        self.name = name

    def _decay(self, step, decay_from):
        completed = step / _f32(self.decay_steps)
        cosine = _f32(0.5) * (_f32(1) + np.cos(_f32(math.pi) * completed))
        return decay_from * ((_f32(1) - _f32(self.alpha)) * cosine + _f32(self.alpha))

    @_elementwise
    def __call__(self, step):
        step, initial = _f32(step), _f32(self.initial_learning_rate)
        if self.warmup_target is None:
            return float(self._decay(np.minimum(step, _f32(self.decay_steps)), initial))
        warmup_steps, target = _f32(self.warmup_steps), _f32(self.warmup_target)
        step = np.minimum(step, _f32(self.decay_steps) + warmup_steps)
        if step < warmup_steps:
            return float((target - initial) * (step / warmup_steps) + initial)
        return float(self._decay(step - warmup_steps, target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule):
    """``{"class_name": "ExponentialDecay", "config": {...}}``, Keras's layout."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(spec):
    """The schedule :func:`serialize` described."""
    try:
        cls = _CLASSES[spec["class_name"]]
    except KeyError:
        raise ValueError(f"Unknown learning-rate schedule {spec.get('class_name')!r}; known: "
                         f"{', '.join(sorted(_CLASSES))}") from None
    return cls.from_config(dict(spec.get("config", {})))
