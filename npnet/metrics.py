"""Metrics. ``'accuracy'`` means what Keras makes of it: it follows the loss's label kind."""

from . import functional as F


class Accuracy:
    """Fraction of samples whose largest predicted probability is at the true class.

    ``count_correct(y_true, y_pred)`` returns a count, so batches of different sizes
    (the last, partial one) are weighted by their number of samples when averaged.
    """

    def __init__(self, label_kind="sparse", name="accuracy"):
        self.label_kind = label_kind
        self.name = name

    def count_correct(self, y_true, y_pred):
        labels = y_true if self.label_kind == "sparse" else y_true.argmax(axis=1)
        return F.count_correct(y_pred, labels)


_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def get(identifier, loss):
    """Resolve a metric name for a compiled loss."""
    if isinstance(identifier, Accuracy):
        return identifier
    if identifier in _NAMES:
        if identifier == "sparse_categorical_accuracy" and loss.label_kind != "sparse":
            raise ValueError("'sparse_categorical_accuracy' needs integer labels; use 'accuracy'")
        if identifier == "categorical_accuracy" and loss.label_kind != "categorical":
            raise ValueError("'categorical_accuracy' needs one-hot labels; use 'accuracy'")
        return Accuracy(loss.label_kind, name=identifier)
    raise ValueError(f"Unknown metric {identifier!r}; known metrics: {', '.join(_NAMES)}")


def resolve(metrics, loss):
    """The metric objects for ``compile(metrics=...)``, each named by its history key."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a list such as ['accuracy']; received the string {metrics!r}")
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list such as ['accuracy']; received {metrics!r}")
    resolved = [get(m, loss) for m in metrics]
    names = [m.name for m in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics must have distinct names; received {names}")
    return resolved
