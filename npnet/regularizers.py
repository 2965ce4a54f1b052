"""Weight regularizers with Keras's names: a penalty on a weight added to the training loss.

``Dense(128, kernel_regularizer=npnet.regularizers.L2(0.01))`` (or ``kernel_regularizer='l2'``)
adds ``0.01 · Σ kernel²`` to the loss that ``fit`` minimises and reports, exactly as Keras
does, and ``2 · 0.01 · kernel`` to the kernel's gradient (see :func:`npnet.functional.l2_penalty`).
``L1`` adds ``l1 · Σ |kernel|`` and ``L1L2`` both; ``l1``, ``l2`` and ``l1_l2`` are the same
classes under Keras's lower-case names (``regularizers.l2(0.001)``).
"""

import math

import numpy as np

from . import config
from . import functional as F
from .validation import finite_in


class Regularizer:
    """Base class. ``regularizer(w)`` is the penalty (a scalar), ``gradient(w)`` its derivative."""

    def __call__(self, weight):
        raise NotImplementedError

    def gradient(self, weight):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _penalty_factor(name, value, default):
    """A non-negative finite float (None: Keras's default), or an error naming the argument."""
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number; received {value!r}")
    if not finite_in(value):
        raise ValueError(f"{name} must be finite in {config.floatx()}, the type the penalty is computed in; "
                         f"received {value!r}")
    return float(value)


class L2(Regularizer):
    """``l2 · Σ w²`` with Keras's default ``l2=0.01``; its gradient is ``2 · l2 · w``."""

    def __init__(self, l2=0.01):
        self.l2 = _penalty_factor("l2", l2, 0.01)

    def __call__(self, weight):
        return F.l2_penalty(weight, self.l2)

    def gradient(self, weight):
        return F.l2_penalty_backward(weight, self.l2)

    def get_config(self):
        return {"l2": self.l2}


class L1(Regularizer):
    """``l1 · Σ |w|`` with Keras's default ``l1=0.01``; its gradient is ``l1 · sign(w)``."""

    def __init__(self, l1=0.01):
        self.l1 = _penalty_factor("l1", l1, 0.01)

    def __call__(self, weight):
        return F.l1_penalty(weight, self.l1)

    def gradient(self, weight):
        return F.l1_penalty_backward(weight, self.l1)

    def get_config(self):
        return {"l1": self.l1}


class L1L2(Regularizer):
    """``l1 · Σ |w| + l2 · Σ w²``; Keras's defaults are 0 for both (a term at 0 is left out)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _penalty_factor("l1", l1, 0.0)
        self.l2 = _penalty_factor("l2", l2, 0.0)

    def __call__(self, weight):
        total = weight.dtype.type(0)
        if self.l1:
            total = total + F.l1_penalty(weight, self.l1)
        if self.l2:
            total = total + F.l2_penalty(weight, self.l2)
        return total

    def gradient(self, weight):
        grad = np.zeros_like(weight)
        if self.l1:
            grad = grad + F.l1_penalty_backward(weight, self.l1)
        if self.l2:
            grad = grad + F.l2_penalty_backward(weight, self.l2)
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


# Keras's lower-case names are the classes themselves: regularizers.l2(0.001) is L2(0.001).
l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}
_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def get(identifier):
    """Resolve ``None``, a name (``'l2'``: ``L2(0.01)``), a ``serialize`` dict or a Regularizer."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, one of "
                     f"{', '.join(sorted(_BY_NAME))} or an npnet.regularizers.Regularizer")


def serialize(regularizer):
    """``{"class_name": "L2", "config": {"l2": 0.01}}`` (Keras's layout), or None."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
