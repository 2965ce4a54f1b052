"""Weight regularizers with Keras's names: a penalty on a weight added to the training loss.

``Dense(128, kernel_regularizer=npnet.regularizers.L2(0.01))`` (or ``kernel_regularizer='l2'``)
adds ``0.01 · Σ kernel²`` to the loss that ``fit`` minimises and reports, exactly as Keras
does, and ``2 · 0.01 · kernel`` to the kernel's gradient (see :func:`npnet.functional.l2_penalty`).
"""

import math

from . import functional as F


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


class L2(Regularizer):
    """``l2 · Σ w²`` with Keras's default ``l2=0.01``; its gradient is ``2 · l2 · w``."""

    def __init__(self, l2=0.01):
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not math.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a non-negative finite number; received {l2!r}")
        self.l2 = float(l2)

    def __call__(self, weight):
        return F.l2_penalty(weight, self.l2)

    def gradient(self, weight):
        return F.l2_penalty_backward(weight, self.l2)

    def get_config(self):
        return {"l2": self.l2}


_BY_NAME = {"l2": L2}
_CLASSES = {cls.__name__: cls for cls in (L2,)}


def get(identifier):
    """Resolve ``None``, a name (``'l2'``: ``L2(0.01)``), a ``serialize`` dict or a Regularizer."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, one of "
                     f"{', '.join(sorted(_BY_NAME))} or an npnet.regularizers.Regularizer")


def serialize(regularizer):
    """``{"class_name": "L2", "config": {"l2": 0.01}}`` (Keras's layout), or None."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
