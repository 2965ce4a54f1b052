"""Metrics with Keras's names, protocol and history keys.

A metric accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``
adds a batch, ``result()`` is the value so far (a float), ``reset_state()`` starts again,
and ``name`` is the key it is logged under (``history.history[name]``). Most metrics are a
(weighted) mean of per-sample values, ``MeanMetricWrapper(fn)``, where ``fn(y_true, y_pred)``
returns one value per sample, as Keras's metric functions do; Precision, Recall and AUC
count a confusion matrix instead.

``'accuracy'`` (or ``'acc'``) is resolved as Keras resolves it, from the shapes of targets
and outputs at the first update: one output unit -> binary accuracy (threshold 0.5),
integer labels -> sparse categorical accuracy, one-hot rows -> categorical accuracy; it is
logged under the name written. :func:`get` resolves any metric identifier.
"""

import collections
import reprlib
import warnings

import numpy as np

from . import functional as F
from . import losses as losses_module

#: Keras's fuzz factor (``keras.backend.epsilon()``), used by AUC's end thresholds.
EPSILON = 1e-7


# ----------------------------------------------------------------------------- metric functions
# Per-sample values, (n,), like keras.metrics.<name>(y_true, y_pred).


def _as_arrays(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_pred = y_pred if y_pred.dtype.kind == "f" else y_pred.astype(np.float32)
    return np.asarray(y_true), y_pred


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the largest output is at the integer label y_true (n,) or (n, 1), else 0.0."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    labels = y_true.reshape(y_true.shape[0], -1)[:, 0] if y_true.ndim > 1 else y_true
    return (y_pred.argmax(axis=-1) == labels).astype(y_pred.dtype)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the largest output is where the one-hot y_true (n, k) has its largest entry."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return (y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).astype(y_pred.dtype)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 for each output on the target's side of ``threshold``, else 0.0: shaped like
    y_pred, as Keras's function (metrics average a sample's entries)."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    y_true = losses_module._same_rank(y_true, y_pred)
    return ((y_pred > y_pred.dtype.type(threshold)).astype(y_pred.dtype) == y_true).astype(y_pred.dtype)


def accuracy(y_true, y_pred):
    """keras.metrics.Accuracy's function: how often y_pred *equals* y_true, per sample."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    y_true = losses_module._same_rank(y_true, y_pred)
    equal = (y_true == y_pred).astype(y_pred.dtype)
    return equal.reshape(equal.shape[0], -1).mean(axis=-1, dtype=y_pred.dtype) if equal.ndim > 1 else equal


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the integer label is among the ``k`` largest outputs (ties count as in)."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    labels = y_true.reshape(y_true.shape[0], -1)[:, 0].astype(np.int64) if y_true.ndim > 1 else y_true.astype(np.int64)
    if k >= y_pred.shape[-1]:
        return np.ones(y_pred.shape[0], dtype=y_pred.dtype)
    label_score = y_pred[np.arange(y_pred.shape[0]), labels]
    larger = (y_pred > label_score[:, None]).sum(axis=-1)
    return (larger < k).astype(y_pred.dtype)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """As :func:`sparse_top_k_categorical_accuracy`, for one-hot targets."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return sparse_top_k_categorical_accuracy(y_true.argmax(axis=-1), y_pred, k)


mean_squared_error = losses_module.mean_squared_error
mean_absolute_error = losses_module.mean_absolute_error
binary_crossentropy = losses_module.binary_crossentropy
categorical_crossentropy = losses_module.categorical_crossentropy
sparse_categorical_crossentropy = losses_module.sparse_categorical_crossentropy


def _regression_arrays(y_true, y_pred):
    """Outputs as floats and targets of their rank and dtype, as Keras's regression functions take them."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return losses_module._same_rank(y_true.astype(y_pred.dtype, copy=False), y_pred), y_pred


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 · mean(|y_true - y_pred| / max(|y_true|, ε))`` over a sample's outputs (ε = 1e-7,
    so a zero target gives a huge value rather than inf, as in Keras): the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.mean_absolute_percentage_error(y_pred, y_true)


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean((log(max(y_pred, ε) + 1) - log(max(y_true, ε) + 1))²)`` over a sample's outputs:
    negative values are clipped to ε = 1e-7 first, as in Keras: the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.mean_squared_logarithmic_error(y_pred, y_true)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)))`` over a sample's outputs, computed so that large
    errors do not overflow (Keras's way): the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.log_cosh(y_pred, y_true)


def kl_divergence(y_true, y_pred):
    """``Σ t log(t / p)`` over a sample's outputs, both clipped to [1e-7, 1]: the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.kl_divergence(y_pred, y_true)


def poisson(y_true, y_pred):
    """``mean(p - t log(p + 1e-7))`` over a sample's outputs: the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.poisson(y_pred, y_true)


def hinge(y_true, y_pred):
    """``mean(max(1 - t p, 0))`` over a sample's outputs (0/1 targets read as -1/1): the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.hinge(y_pred, y_true)


def squared_hinge(y_true, y_pred):
    """``mean(max(1 - t p, 0)²)`` over a sample's outputs: the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.squared_hinge(y_pred, y_true)


def categorical_hinge(y_true, y_pred):
    """``max(1 + best other score - true class's score, 0)`` per sample: the loss's own function."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return F.categorical_hinge(y_pred, y_true)


def cosine_similarity(y_true, y_pred):
    """``Σ t̂ p̂`` over a sample's outputs (unit vectors): 1 for the same direction, as Keras's
    metric; the loss of that name is its negative, to be minimised."""
    y_true, y_pred = _regression_arrays(y_true, y_pred)
    return -F.cosine_similarity(y_pred, y_true)


# ----------------------------------------------------------------------------- the protocol


class Metric:
    """Base class: ``update_state`` / ``result`` / ``reset_state`` and ``name``, as Keras.

    Subclasses keep their running state in plain attributes set by ``reset_state`` (called
    by ``__init__``), or, as in Keras, in variables made by ``add_variable`` after
    ``super().__init__()``. Calling a metric, ``metric(y_true, y_pred)``, updates it and returns
    the result, as in Keras.
    """

    #: ``'up'`` when larger is better, ``'down'`` when smaller is (callbacks' ``mode='auto'``)
    direction = None

    def __init__(self, name=None, dtype=None):
        self.name = name if name is not None else _snake_case(type(self).__name__)
        self.dtype = dtype or "float32"
        try:
            self.reset_state()
        except AttributeError:
            # A Keras-style subclass makes its state (add_variable) after super().__init__()
            # returns, so its reset_state has nothing to reset yet.
            pass

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        """Back to the start: every variable made by :meth:`add_variable` to its initial value."""
        for variable in getattr(self, "_variables", []):
            variable.reset()

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """A :class:`Variable` holding part of the state, as Keras's ``Metric.add_variable``;
        the default :meth:`reset_state` puts it back to ``initializer``."""
        variable = Variable(shape, initializer, dtype or self.dtype, name)
        self.__dict__.setdefault("_variables", []).append(variable)
        return variable

    def add_weight(self, name=None, shape=(), initializer="zeros", dtype=None, **kwargs):
        """Keras 2's name for :meth:`add_variable` (``name`` first)."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    def __repr__(self):
        return f"<npnet metric {type(self).__name__} name={self.name!r}>"


class Variable:
    """A metric's state as ``Metric.add_variable`` returns it: a NumPy array changed in place
    by ``assign``, ``assign_add`` and ``assign_sub`` (the Keras variable methods metric code
    calls). ``float(v)``, ``np.asarray(v)`` and ``v.numpy()`` read it, so ``result()`` may
    return the variable itself, as in Keras."""

    def __init__(self, shape=(), initializer="zeros", dtype="float32", name=None):
        starts = {"zeros": 0.0, "ones": 1.0}
        if isinstance(initializer, str) and initializer not in starts:
            raise ValueError(f"add_variable takes initializer 'zeros', 'ones' or a number; received {initializer!r}")
        self.name, self._start = name, starts.get(initializer, initializer)
        self.value = np.full(shape, self._start, dtype=dtype)

    def reset(self):
        self.value[...] = self._start

    def assign(self, value):
        self.value[...] = np.asarray(value, dtype=self.value.dtype)
        return self

    def assign_add(self, delta):
        self.value += np.asarray(delta, dtype=self.value.dtype)
        return self

    def assign_sub(self, delta):
        self.value -= np.asarray(delta, dtype=self.value.dtype)
        return self

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        return self.value.copy()

    def __array__(self, dtype=None, copy=None):
        return np.array(self.value, dtype=dtype)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"<npnet metric variable {self.name!r} value={self.value!r}>"


def _snake_case(name):
    import re

    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _sample_weights(sample_weight, n_samples):
    """Weights (n,) as float64, or None; one weight per sample, broadcast from a scalar."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    weights = weights.reshape(weights.shape[0], -1).mean(axis=-1) if weights.ndim > 1 else weights
    return np.broadcast_to(weights, (n_samples,))


class Mean(Metric):
    """The (weighted) mean of the values given: ``update_state(values, sample_weight=None)``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        values = values.reshape(values.shape[0], -1).mean(axis=-1) if values.ndim > 1 else values.reshape(-1)
        weights = _sample_weights(sample_weight, values.shape[0])
        if weights is None:
            self.total += float(values.sum())
            self.count += values.shape[0]
        else:
            self.total += float((values * weights).sum())
            self.count += float(weights.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred, **kwargs)``, a per-sample metric function."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or "mean_metric_wrapper", dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the largest output is at the integer label."""

    direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the largest output is at the one-hot target's 1."""

    direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often an output is on the target's side of ``threshold`` (0.5)."""

    direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` (5) largest outputs."""

    direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the ``k`` (5) largest outputs."""

    direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k


class MeanSquaredError(MeanMetricWrapper):
    """The mean of the per-sample mean squared errors."""

    direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of the per-sample mean absolute errors."""

    direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """The mean of the per-sample mean absolute percentage errors (``'mape'``); targets'
    magnitudes below 1e-7 count as 1e-7, as in Keras."""

    direction = "down"

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name, dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """The mean of the per-sample mean squared logarithmic errors (``'msle'``); values below
    1e-7 count as 1e-7, as in Keras."""

    direction = "down"

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name, dtype)


class LogCoshError(MeanMetricWrapper):
    """The mean of the per-sample mean ``log(cosh(error))``; named ``'logcosh'`` as Keras's
    (the strings Keras 3 accepts for it are ``'log_cosh_error'`` and ``'LogCoshError'``)."""

    direction = "down"

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(log_cosh, name, dtype)


class KLDivergence(MeanMetricWrapper):
    """The mean of the per-sample Kullback-Leibler divergences of the outputs from the targets."""

    direction = "down"

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name, dtype)


class Poisson(MeanMetricWrapper):
    """The mean of the per-sample Poisson losses (outputs are rates, targets counts)."""

    direction = "down"

    def __init__(self, name="poisson", dtype=None):
        super().__init__(poisson, name, dtype)


class Hinge(MeanMetricWrapper):
    """The mean of the per-sample hinge losses (targets ±1, or 0/1 read as ±1)."""

    direction = "down"

    def __init__(self, name="hinge", dtype=None):
        super().__init__(hinge, name, dtype)


class SquaredHinge(MeanMetricWrapper):
    """The mean of the per-sample squared hinge losses."""

    direction = "down"

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name, dtype)


class CategoricalHinge(MeanMetricWrapper):
    """The mean of the per-sample categorical hinge losses (one-hot targets)."""

    direction = "down"

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name, dtype)


class CosineSimilarity(MeanMetricWrapper):
    """The mean cosine similarity of outputs and targets (1: the same direction). Keras's
    ``axis`` is the last one, the only one npnet's outputs have."""

    direction = "up"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        if axis not in (-1, 1):
            raise ValueError(f"CosineSimilarity compares the outputs of a sample along its last axis "
                             f"(axis=-1 or 1); received axis={axis!r}")
        super().__init__(cosine_similarity, name, dtype)


class RootMeanSquaredError(Mean):
    """``sqrt`` of the (weighted) mean squared error over every batch seen, as Keras's: the
    squared errors are averaged across batches and the root taken of that mean, so the result
    is not a mean of per-batch roots."""

    direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _regression_arrays(y_true, y_pred)
        super().update_state(np.square(y_pred - y_true), sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class R2Score(Metric):
    """The coefficient of determination over all the data seen, as Keras's: per output column
    ``1 - Σw(y - ŷ)² / Σw(y - ȳ)²`` from running sums (so not a mean of per-batch scores),
    then ``class_aggregation`` ``'uniform_average'`` (the mean over columns),
    ``'variance_weighted_average'`` or None (a list, one score a column); an infinite
    column score counts as 0. ``num_regressors`` > 0 gives the adjusted R², as Keras
    computes it (its sample count is the number of target entries)."""

    direction = "up"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError("R2Score class_aggregation must be None, 'uniform_average' or "
                             f"'variance_weighted_average'; received {class_aggregation!r}")
        if num_regressors < 0:
            raise ValueError(f"R2Score num_regressors must be >= 0; received {num_regressors!r}")
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self._sums = None  # per column: Σw·y, Σw·y², Σw·(y - ŷ)², Σw, made at the first batch
        super().__init__(name, dtype)

    def reset_state(self):
        self.num_samples = 0
        if self._sums is not None:
            self._sums[...] = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _regression_arrays(y_true, y_pred)
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim); received "
                             f"y_true.shape={y_true.shape} and y_pred.shape={y_pred.shape}")
        y_true, y_pred = y_true.astype(np.float64), y_pred.astype(np.float64)
        weights = np.ones(y_true.shape) if sample_weight is None else np.broadcast_to(
            _sample_weights(sample_weight, y_true.shape[0])[:, None], y_true.shape)
        if self._sums is None:
            self._sums = np.zeros((4, y_pred.shape[-1]))
        self._sums += [(weights * y_true).sum(axis=0), (weights * y_true * y_true).sum(axis=0),
                       (weights * (y_true - y_pred) ** 2).sum(axis=0), weights.sum(axis=0)]
        self.num_samples += y_true.size

    def result(self):
        if self._sums is None:
            return 0.0
        total_y, squared, residual, count = self._sums
        with np.errstate(divide="ignore", invalid="ignore"):
            total = squared - total_y * (total_y / count)
            scores = 1.0 - residual / total
        scores = np.where(np.isinf(scores), 0.0, scores)
        if self.class_aggregation is None:
            return [float(v) for v in scores]
        if self.class_aggregation == "uniform_average":
            score = float(np.mean(scores))
        else:
            score = float(np.sum(total * scores) / np.sum(total))
        n, p = self.num_samples, self.num_regressors
        if p and p < n - 1:
            score = 1.0 - (1.0 - score) * (n - 1) / (n - p - 1)
        elif p:
            warnings.warn("More independent predictors than data points (or as many as data points "
                          "less one) in the adjusted R2 score; the standard R2 score is returned",
                          stacklevel=2)
        return score

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


class _CrossentropyMetric(MeanMetricWrapper):
    """The mean over samples of a cross-entropy loss's per-sample values, the loss taking the
    same options (``from_logits``, ``label_smoothing``) as the loss class of that name."""

    direction = "down"
    loss_class = None

    def __init__(self, name, dtype, **options):
        self._loss = self.loss_class(**options)
        super().__init__(self._per_sample, name, dtype)
        self._options = options

    def _per_sample(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_pred = y_pred if y_pred.dtype.kind == "f" else y_pred.astype(np.float32)
        return self._loss.per_sample(self._loss.prepare_targets(np.asarray(y_true), y_pred), y_pred)

    def get_config(self):
        return {**super().get_config(), **self._options}


class BinaryCrossentropy(_CrossentropyMetric):
    """``keras.metrics.BinaryCrossentropy``: the binary cross-entropy loss, as a metric."""

    loss_class = losses_module.BinaryCrossentropy

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)


class CategoricalCrossentropy(_CrossentropyMetric):
    """``keras.metrics.CategoricalCrossentropy`` (one-hot targets), as a metric."""

    loss_class = losses_module.CategoricalCrossentropy

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0, axis=-1):
        _check_last_axis(type(self).__name__, axis)
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)

    def get_config(self):
        return {**super().get_config(), "axis": -1}


class SparseCategoricalCrossentropy(_CrossentropyMetric):
    """``keras.metrics.SparseCategoricalCrossentropy`` (integer labels), as a metric."""

    loss_class = losses_module.SparseCategoricalCrossentropy

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None, axis=-1):
        _check_last_axis(type(self).__name__, axis)
        if ignore_class is not None:
            raise ValueError(f"SparseCategoricalCrossentropy(ignore_class=...) is not available in npnet; "
                             f"received ignore_class={ignore_class!r}")
        super().__init__(name, dtype, from_logits=from_logits)

    def get_config(self):
        return {**super().get_config(), "ignore_class": None, "axis": -1}


def _check_last_axis(what, axis):
    """npnet's outputs have one axis of classes, the last: Keras's ``axis=-1`` (or 1)."""
    if axis not in (-1, 1):
        raise ValueError(f"{what} reads the classes on the last axis (axis=-1); received axis={axis!r}")


class Accuracy(MeanMetricWrapper):
    """``keras.metrics.Accuracy``: how often ``y_pred`` *equals* ``y_true`` (for a classifier's
    probabilities that is almost never: use ``'accuracy'``, which :func:`get` resolves).

    ``Accuracy(label_kind)`` with a loss's ``label_kind`` (``'sparse'``, ``'categorical'``,
    ``'binary'``...) is what npnet's training loops use: the accuracy those targets call
    for, with :meth:`count_correct` giving the number of correct samples in a batch.
    """

    direction = "up"

    def __init__(self, name="accuracy", dtype=None, label_kind=None):
        if label_kind is None and name in _LABEL_KINDS:
            label_kind, name = name, "accuracy"  # Accuracy(loss.label_kind), as the loops call it
        self.label_kind = label_kind
        fn = accuracy if label_kind is None else _accuracy_for_kind(label_kind)
        super().__init__(fn, name, dtype)

    def count_correct(self, y_true, y_pred):
        """The number of correctly classified samples (a fraction per sample for multi-output
        binary targets), so that batches of different sizes weigh by their samples."""
        if self.label_kind == "sparse":
            return F.count_correct(y_pred, y_true)
        if self.label_kind == "categorical":
            return F.count_correct(y_pred, y_true.argmax(axis=1))
        total = float(np.sum(self._fn(y_true, y_pred)))
        return int(total) if total.is_integer() else total


_LABEL_KINDS = ("sparse", "categorical", "binary", "regression", "any")


def _accuracy_for_kind(label_kind):
    return {"sparse": sparse_categorical_accuracy, "categorical": categorical_accuracy}.get(
        label_kind, _shape_resolved_accuracy)


def _accuracy_kind(y_true, y_pred):
    """Keras's rule for ``'accuracy'``: binary for one output unit, sparse when the targets
    have a lower rank (or one column against several outputs), categorical otherwise."""
    if y_pred.shape[-1] == 1:
        return "binary_accuracy"
    if y_true.ndim < y_pred.ndim or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


_ACCURACY_FUNCTIONS = {"binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
                       "sparse_categorical_accuracy": sparse_categorical_accuracy}


def _shape_resolved_accuracy(y_true, y_pred):
    """The accuracy :func:`_accuracy_kind` chooses for these targets and outputs."""
    y_true, y_pred = _as_arrays(y_true, y_pred)
    return _ACCURACY_FUNCTIONS[_accuracy_kind(y_true, y_pred)](y_true, y_pred)


class ResolvedAccuracy(MeanMetricWrapper):
    """``metrics=['accuracy']`` (or ``'acc'``): binary, sparse categorical or categorical
    accuracy as Keras chooses from the shapes at the first batch (see :func:`_accuracy_kind`),
    logged under the name written. ``kind`` says which, once a batch has been seen."""

    direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(self._resolve, name, dtype)
        self.kind = None

    def _resolve(self, y_true, y_pred):
        y_true, y_pred = _as_arrays(y_true, y_pred)
        if self.kind is None:
            self.kind = _accuracy_kind(y_true, y_pred)
        return _ACCURACY_FUNCTIONS[self.kind](y_true, y_pred)


# ----------------------------------------------------------------------------- confusion counts


class _ConfusionMetric(Metric):
    """Weighted true/false positive/negative counts at each threshold: ``y_pred > t`` is a
    positive, ``y_true != 0`` a real one. Every output entry counts (all units and samples)."""

    direction = "up"

    def __init__(self, thresholds, name=None, dtype=None, class_id=None):
        self.thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        self.class_id = class_id
        super().__init__(name, dtype)

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives, self.false_positives = np.zeros(n), np.zeros(n)
        self.true_negatives, self.false_negatives = np.zeros(n), np.zeros(n)

    def _prepare(self, y_true, y_pred, sample_weight):
        y_true, y_pred = _as_arrays(y_true, y_pred)
        y_true = losses_module._same_rank(y_true, y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"{type(self).__name__} ({self.name!r}) compares each output with a target of its own, "
                f"so it expects targets shaped like the outputs {y_pred.shape}; received {y_true.shape}. "
                "For integer class labels on several outputs, give one-hot targets "
                "(npnet.utils.to_categorical)")
        weights = np.ones(y_pred.shape) if sample_weight is None else np.broadcast_to(
            _sample_weights(sample_weight, y_pred.shape[0]).reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape)
        if self.class_id is not None:
            y_true, y_pred, weights = y_true[..., self.class_id], y_pred[..., self.class_id], weights[..., self.class_id]
        return y_true.reshape(-1) != 0, y_pred.reshape(-1), weights.reshape(-1)

    def update_state(self, y_true, y_pred, sample_weight=None):
        real, scores, weights = self._prepare(y_true, y_pred, sample_weight)
        predicted = scores[None, :] > self.thresholds[:, None].astype(scores.dtype)  # (thresholds, entries)
        self.true_positives += (predicted & real) @ weights
        self.false_positives += (predicted & ~real) @ weights
        self.true_negatives += (~predicted & ~real) @ weights
        self.false_negatives += (~predicted & real) @ weights


def _divide_no_nan(numerator, denominator):
    """numerator / denominator, and 0 where the denominator is 0 (Keras's ``divide_no_nan``)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _check_thresholds(metric, thresholds):
    """Keras's rule for the thresholds of a confusion metric: numbers in [0, 1], one or a list."""
    if thresholds is None:
        return
    for value in thresholds if isinstance(thresholds, (list, tuple)) else [thresholds]:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not 0 <= value <= 1:
            raise ValueError(f"{metric}: thresholds must be numbers in [0, 1], one or a list of them; "
                             f"received {reprlib.repr(thresholds)}")


def _check_top_k(metric, top_k):
    if top_k is not None:
        raise ValueError(f"{metric}(top_k=...) is not available in npnet; received top_k={top_k!r}. "
                         "Use thresholds (and class_id) instead.")


class _AtThresholds(_ConfusionMetric):
    """A confusion metric at the user's ``thresholds``, Keras's way: 0.5 by default, numbers
    in [0, 1], and a list of them gives a list of results (:meth:`_per_threshold`)."""

    def __init__(self, thresholds, name, dtype, class_id=None):
        _check_thresholds(type(self).__name__, thresholds)
        self._several = isinstance(thresholds, (list, tuple))
        self.init_thresholds = thresholds
        super().__init__(0.5 if thresholds is None else thresholds, name, dtype, class_id)

    def _per_threshold(self, values):
        return [float(v) for v in values] if self._several else float(values[0])

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class _ConfusionCount(_AtThresholds):
    """The weighted count of one cell of the confusion matrix, as Keras's ``TruePositives``
    and its three siblings. Keras gives a count no direction of improvement (its
    ``mode='auto'`` refuses to monitor one); npnet's true counts go up, its false ones down."""

    cell = None  # the attribute of _ConfusionMetric it reports

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name or self.cell, dtype)

    def result(self):
        return self._per_threshold(getattr(self, self.cell))


class TruePositives(_ConfusionCount):
    """Weighted count of real positives (``y_true != 0``) predicted positive (``y_pred > t``)."""

    direction = "up"
    cell = "true_positives"


class FalsePositives(_ConfusionCount):
    """Weighted count of real negatives predicted positive."""

    direction = "down"
    cell = "false_positives"


class TrueNegatives(_ConfusionCount):
    """Weighted count of real negatives predicted negative."""

    direction = "up"
    cell = "true_negatives"


class FalseNegatives(_ConfusionCount):
    """Weighted count of real positives predicted negative."""

    direction = "down"
    cell = "false_negatives"


class Precision(_AtThresholds):
    """``tp / (tp + fp)`` at ``thresholds`` (0.5; a list gives a list of results)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        _check_top_k("Precision", top_k)
        super().__init__(thresholds, name, dtype, class_id)

    def get_config(self):
        return {**super().get_config(), "top_k": None, "class_id": self.class_id}

    def result(self):
        return self._per_threshold(_divide_no_nan(self.true_positives, self.true_positives + self.false_positives))


class Recall(_AtThresholds):
    """``tp / (tp + fn)`` at ``thresholds`` (0.5; a list gives a list of results)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        _check_top_k("Recall", top_k)
        super().__init__(thresholds, name, dtype, class_id)

    def get_config(self):
        return {**super().get_config(), "top_k": None, "class_id": self.class_id}

    def result(self):
        return self._per_threshold(_divide_no_nan(self.true_positives, self.true_positives + self.false_negatives))


class AUC(_ConfusionMetric):
    """Area under the ROC (or precision-recall) curve, from confusion counts at
    ``num_thresholds`` (200) evenly spaced thresholds, as Keras approximates it.

    Thresholds ``[-ε, 1/(N-1), ..., (N-2)/(N-1), 1 + ε]`` (or ``[-ε, *thresholds, 1 + ε]``);
    ``summation_method`` ``'interpolation'`` (trapezoids; for PR Davis & Goadrich's
    interpolation, :meth:`_interpolated_pr_auc`), ``'minoring'`` or ``'majoring'``.
    ``from_logits=True`` applies the sigmoid to the outputs first.
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc",
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        if multi_label or label_weights is not None:
            raise ValueError("AUC(multi_label=True) and label_weights are not available in npnet; "
                             "every output entry is counted as one binary prediction")
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        if self.curve not in ("ROC", "PR"):
            raise ValueError(f"AUC curve must be 'ROC' or 'PR'; received {curve!r}")
        if self.summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError("AUC summation_method must be 'interpolation', 'minoring' or 'majoring'; "
                             f"received {summation_method!r}")
        if thresholds is None:
            if num_thresholds <= 1:
                raise ValueError(f"AUC num_thresholds must be > 1; received {num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in thresholds)
        self.num_thresholds = len(inner) + 2
        self.from_logits = bool(from_logits)
        self._given_thresholds = None if thresholds is None else inner
        super().__init__([0.0 - EPSILON] + inner + [1.0 + EPSILON], name, dtype)

    def get_config(self):
        """Keras's keys; ``thresholds`` only when they were given, as Keras writes them."""
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": False, "num_labels": None,
                  "label_weights": None, "from_logits": self.from_logits}
        if self._given_thresholds is not None:
            config["thresholds"] = list(self._given_thresholds)
        return config

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if self.from_logits:
            y_pred = F.sigmoid_forward(y_pred.astype(np.float32))
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr_auc()
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        pairs = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
                 "majoring": np.maximum(y[:-1], y[1:])}
        return float(np.sum((x[:-1] - x[1:]) * pairs[self.summation_method]))

    def _interpolated_pr_auc(self):
        """Precision is interpolated linearly in the number of true positives between two
        thresholds (Davis & Goadrich 2006), not in recall: with ``P = tp + fp`` the area of
        the interval from A to B is ``slope (ΔTP + intercept · log(P_A / P_B)) / positives``,
        where ``slope = ΔTP / ΔP`` and ``intercept = TP_B - slope · P_B``."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        d_tp = tp[:-1] - tp[1:]
        predicted = tp + fp
        d_p = predicted[:-1] - predicted[1:]
        slope = _divide_no_nan(d_tp, np.maximum(d_p, 0))
        intercept = tp[1:] - slope * predicted[1:]
        both_positive = (predicted[:-1] > 0) & (predicted[1:] > 0)
        ratio = np.where(both_positive, _divide_no_nan(predicted[:-1], np.maximum(predicted[1:], 0)), 1.0)
        increments = _divide_no_nan(slope * (d_tp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        return float(np.sum(increments))


# ----------------------------------------------------------------------------- resolving identifiers

_CLASSES = (Accuracy, SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy,
            SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, MeanSquaredError,
            MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, LogCoshError,
            RootMeanSquaredError, R2Score, Precision, Recall, AUC, BinaryCrossentropy, CategoricalCrossentropy,
            SparseCategoricalCrossentropy, TruePositives, FalsePositives, TrueNegatives, FalseNegatives,
            KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge, CosineSimilarity)
_FUNCTIONS = (sparse_categorical_accuracy, categorical_accuracy, binary_accuracy,
              sparse_top_k_categorical_accuracy, top_k_categorical_accuracy, mean_squared_error,
              mean_absolute_error, mean_absolute_percentage_error, mean_squared_logarithmic_error, log_cosh,
              kl_divergence, poisson, hinge, squared_hinge, categorical_hinge, cosine_similarity)
#: Keras's metric strings: class names, their snake_case and the short aliases.
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({_snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update({"mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
                 "MAE": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
                 "MAPE": MeanAbsolutePercentageError, "msle": MeanSquaredLogarithmicError,
                 "MSLE": MeanSquaredLogarithmicError, "auc": AUC, "kl_divergence": KLDivergence})


def get(identifier, loss=None):
    """A fresh :class:`Metric` for ``compile(metrics=[identifier])``, whose ``name`` is the
    Keras history key: the string as written (``'acc'``, ``'mse'``), a Metric's own name,
    or a function's ``__name__``.

    ``'accuracy'``/``'acc'`` give a :class:`ResolvedAccuracy` (Keras's choice by shapes).
    ``loss`` is accepted for the call sites that have one; the shapes decide, as in Keras.
    A plain function ``fn(y_true, y_pred) -> per-sample values`` is wrapped in a
    :class:`MeanMetricWrapper`.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            metric = ResolvedAccuracy(name=identifier)
        elif identifier in _BY_NAME:
            metric = _BY_NAME[identifier]()
            metric.name = identifier
        else:
            metric = None
        if metric is not None:
            metric._given_as = identifier  # a file writes the string, as Keras's compile_config does
            return metric
        raise ValueError(f"Unknown metric {identifier!r}; known metrics: accuracy, acc, "
                         f"{', '.join(sorted(_BY_NAME))}, a Metric instance or a function "
                         "fn(y_true, y_pred) returning one value per sample")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        module = (getattr(identifier, "__module__", "") or "").split(".")[0]
        if module in ("tensorflow", "keras", "tf_keras"):
            name = getattr(identifier, "__name__", repr(identifier))
            raise TypeError(f"metric {identifier!r} is a {module} function, which npnet cannot run "
                            f"(it computes with NumPy); write metrics=[{name!r}] or pass a NumPy function")
        # a function by its __name__; a loss object by its name, as Keras's compile names them
        name = getattr(identifier, "__name__", None) or getattr(identifier, "name", None)
        return MeanMetricWrapper(identifier, name=name if isinstance(name, str) else None)
    raise TypeError(f"A metric must be a name, an npnet.metrics.Metric or a function; received {identifier!r}")


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


def resolve_weighted(weighted_metrics, metrics, loss):
    """The metric objects for ``compile(weighted_metrics=...)``: as :func:`resolve`, and none
    of them an object also given in ``metrics`` (one object cannot keep two states)."""
    if weighted_metrics is not None and not isinstance(weighted_metrics, (list, tuple)):
        raise TypeError("weighted_metrics must be a list such as ['accuracy'], as in Keras; received "
                        f"{weighted_metrics!r}")
    resolved = resolve(weighted_metrics, loss)
    shared = [m.name for m in resolved if any(m is other for other in metrics)]
    if shared:
        raise ValueError(f"metrics and weighted_metrics were given the same metric objects {shared}; "
                         "pass a separate object (or the name as a string) to each, since each keeps "
                         "its own running state")
    return resolved


def logged_names(metric_names, weighted_names):
    """The log keys of ``compile(weighted_metrics=...)``, by Keras 3's rule: a weighted
    metric keeps its name unless an unweighted one (or an earlier weighted one) has it, then
    it is ``weighted_<name>`` (``weighted_<name>_1``, ... when that is taken too)."""
    taken = collections.Counter(metric_names)
    names = []
    for name in weighted_names:
        if name in taken:
            name = f"weighted_{name}"
            if name in taken:
                index = taken[name]
                taken[name] += 1
                name = f"{name}_{index}"
        taken[name] += 1
        names.append(name)
    return names


def counted_by_argmax(metric, label_kind, n_outputs):
    """True when ``metric`` is the fraction of samples whose largest output is the true class,
    which the backends count in their own loops (``Accuracy(label_kind).count_correct``), so
    the metric needs no copy of the outputs. ``n_outputs``: the model's output units."""
    if n_outputs is not None and n_outputs < 2:
        return False  # one output unit: binary accuracy, a threshold, not an argmax
    if isinstance(metric, ResolvedAccuracy):
        return label_kind in ("sparse", "categorical")
    if type(metric) is SparseCategoricalAccuracy:
        return label_kind == "sparse"
    if type(metric) is CategoricalAccuracy:
        return label_kind == "categorical"
    return False


#: Keras metrics npnet lacks; the advice lists the ones it has.
_KERAS_NAMES = dict.fromkeys(
    ("CosineSimilarity", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence",
     "Poisson", "F1Score", "FBetaScore", "IoU", "MeanIoU", "BinaryIoU", "OneHotIoU",
     "OneHotMeanIoU", "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
     "SpecificityAtSensitivity", "Sum", "cosine_similarity",
     "hinge", "squared_hinge", "kl_divergence", "poisson"),
    "not available in npnet. Its metrics are " + ", ".join(sorted(cls.__name__ for cls in _CLASSES))
    + ", Mean and MeanMetricWrapper (and functions of the same names in snake_case); write another "
    "as a Metric subclass "
    "(update_state, result, reset_state) with NumPy")


def __getattr__(name):
    from .utils import missing_name
    raise missing_name(__name__, name, _KERAS_NAMES)
