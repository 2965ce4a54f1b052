"""Losses with Keras's names. Each knows its value and its gradient.

A loss sees the model's output ``y_pred``: ``value(y_true, y_pred)`` and
``gradient(y_true, y_pred)`` (dL/dy_pred). ``from_logits=True`` says that ``y_pred`` are
logits, not probabilities, as in Keras.

The cross-entropies also offer the two halves that the softmax head uses
(:mod:`npnet.heads`): ``value_of_logits(y_true, logits)`` and
``gradient_wrt_logits(y_true, probabilities)``, the gradient w.r.t. the logits given the
softmax of them (see :func:`npnet.functional.softmax_crossentropy_backward` for why).
"""

import numpy as np

from . import functional as F


class Loss:
    """Base class. ``loss(y_true, y_pred)`` returns the batch-mean loss, as in Keras."""

    name = "loss"
    #: "sparse" when labels are class indices (n,), "categorical" when one-hot rows (n, k).
    label_kind = "sparse"
    #: True for a cross-entropy whose gradient w.r.t. a softmax's logits is the combined
    #: ``(p - onehot) / n`` (see :mod:`npnet.heads`).
    combines_with_softmax = False

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        return self.value(np.asarray(y_true), np.asarray(y_pred))

    def value(self, y_true, y_pred):
        """Batch-mean loss of the model's output."""
        if self.from_logits:
            return self.value_of_logits(y_true, y_pred)
        return self.value_of_probabilities(y_true, y_pred)

    def gradient(self, y_true, y_pred):
        """dL/dy_pred, same shape as ``y_pred``."""
        if self.from_logits:
            return self.gradient_wrt_logits(y_true, F.softmax_forward(y_pred))
        return self.gradient_wrt_probabilities(y_true, y_pred)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer class labels ``y_true`` (n,) and ``y_pred`` (n, k)."""

    name = "sparse_categorical_crossentropy"
    label_kind = "sparse"
    combines_with_softmax = True

    def value_of_probabilities(self, labels, p):
        return F.sparse_categorical_crossentropy(p, labels)

    def gradient_wrt_probabilities(self, labels, p):
        return F.sparse_categorical_crossentropy_backward(p, labels)

    def value_of_logits(self, labels, z):
        return F.sparse_categorical_crossentropy_from_logits(z, labels)

    def gradient_wrt_logits(self, labels, p):
        """dL/dz w.r.t. the logits z, given their softmax probabilities p."""
        return F.softmax_crossentropy_backward(p, labels)


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot targets ``y_true`` (n, k) and ``y_pred`` (n, k)."""

    name = "categorical_crossentropy"
    label_kind = "categorical"
    combines_with_softmax = True

    def value_of_probabilities(self, targets, p):
        return F.categorical_crossentropy(p, targets)

    def gradient_wrt_probabilities(self, targets, p):
        # d/dp of -Σ t log(p / Σp): -t/p + Σt/Σp, then / n for the batch mean. Keras clips
        # p / Σp to [ε, 1 - ε]; entries held by the clip get no gradient through the log.
        total = p.sum(axis=1, keepdims=True)
        q = p / total
        inside = (q > 1e-7) & (q < 1 - 1e-7)
        dL_dq = np.where(inside, -targets / np.where(inside, q, 1), 0)
        # q = p / Σp  =>  dL/dp_j = (dL/dq_j - Σ_k dL/dq_k q_k) / Σp
        dL_dp = (dL_dq - np.sum(dL_dq * q, axis=1, keepdims=True)) / total
        return (dL_dp / p.shape[0]).astype(p.dtype, copy=False)

    def value_of_logits(self, targets, z):
        return F.categorical_crossentropy_from_logits(z, targets)

    def gradient_wrt_logits(self, targets, p):
        return F.softmax_categorical_crossentropy_backward(p, targets)


_BY_NAME = {cls.name: cls for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy)}


def get(identifier):
    """Resolve a loss name or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(
        f"Unknown loss {identifier!r}; known losses: {', '.join(sorted(_BY_NAME))} "
        "(or an npnet.losses.Loss instance)"
    )


def deserialize(name, config_):
    return _BY_NAME[name](**config_)
