"""Losses with Keras's names and defaults. Each knows its value *and* its gradient.

npnet has no automatic differentiation, so a loss is an object with two methods, both of
the model's output ``y_pred`` (n, m) and the targets ``y_true``:

* ``value(y_true, y_pred)``: the batch-mean loss, a scalar (what ``fit`` reports);
* ``gradient(y_true, y_pred)``: dL/dy_pred of that batch mean, shaped like ``y_pred``.

Your own loss is a subclass that defines both (see :class:`Loss`). The built-in losses also
define ``per_sample(y_true, y_pred) -> (n,)``, Keras's loss functions
(``keras.losses.mean_squared_error``...): the batch mean of it is ``value``, and because row
``i`` of ``gradient`` depends on sample ``i`` only, a sample weight ``w_i`` scales loss and
gradient row alike (``loss(y_true, y_pred, sample_weight=w)``).

The cross-entropies take ``from_logits`` as in Keras, and offer the two halves that the
softmax and sigmoid heads use (:mod:`npnet.heads`): ``value_of_logits(y_true, logits)`` and
``gradient_wrt_logits(y_true, probabilities)``, the gradient w.r.t. the logits given the
softmax (sigmoid) of them: see :func:`npnet.functional.softmax_crossentropy_backward` for why.
"""

import numpy as np

from . import functional as F


class Loss:
    """Base class. ``loss(y_true, y_pred, sample_weight=None)`` returns the batch-mean loss.

    Subclass it to train with a loss of your own, defining the value and its gradient::

        class MeanCubicError(npnet.losses.Loss):
            label_kind = "regression"          # targets shaped like the output

            def value(self, y_true, y_pred):   # (n, m), (n, m) -> scalar
                return np.mean(np.abs(y_pred - y_true) ** 3)

            def gradient(self, y_true, y_pred):  # dL/dy_pred, (n, m)
                e = y_pred - y_true
                return 3 * e * np.abs(e) / e.size

    ``label_kind`` tells :func:`npnet.validation.check_labels` which targets the loss
    takes: ``"sparse"`` (class indices (n,)), ``"categorical"`` (one-hot rows (n, k)),
    ``"binary"`` (0/1 values (n,) or (n, m), given as (n, m)), ``"regression"`` (numbers
    (n,) or (n, m), given as (n, m)) or ``"any"`` (numbers, passed on as they are).
    """

    name = "loss"
    label_kind = "any"
    #: Only Keras's default reduction (the batch mean) is what ``fit`` minimises.
    reduction = "sum_over_batch_size"
    #: A cross-entropy whose gradient w.r.t. a softmax's (sigmoid's) logits is the combined
    #: ``(p - target) / n`` (see :mod:`npnet.heads`). Never for your own losses.
    combines_with_softmax = False
    combines_with_sigmoid = False
    from_logits = False

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction != "sum_over_batch_size":
            raise ValueError(f"npnet losses average over the batch (reduction='sum_over_batch_size', "
                             f"Keras's default); received reduction={reduction!r}")
        if name is not None:
            self.name = str(name)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(np.float32)
        y_true = self.prepare_targets(np.asarray(y_true), y_pred)
        if sample_weight is None:
            return self.value(y_true, y_pred)
        weights = np.broadcast_to(np.asarray(sample_weight, dtype=y_pred.dtype), y_pred.shape[:1])
        return (self.per_sample(y_true, y_pred) * weights).sum(dtype=y_pred.dtype) / y_pred.dtype.type(len(weights))

    def prepare_targets(self, y_true, y_pred):
        """Targets in the form ``value`` and ``gradient`` expect (fit passes them so already)."""
        return y_true

    def value(self, y_true, y_pred):
        """Batch-mean loss of the model's output: a scalar."""
        return self.per_sample(y_true, y_pred).mean(dtype=y_pred.dtype)

    def per_sample(self, y_true, y_pred):
        """The loss of each sample, (n,): needed for ``sample_weight``."""
        raise NotImplementedError(f"{type(self).__name__} defines no per_sample(y_true, y_pred), "
                                  "which sample weights need")

    def gradient(self, y_true, y_pred):
        """dL/dy_pred of the batch-mean loss, same shape as ``y_pred``."""
        raise NotImplementedError(f"{type(self).__name__} must define gradient(y_true, y_pred), "
                                  "the derivative of value() w.r.t. y_pred: npnet has no autodiff")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("name", "reduction"))
        return f"{type(self).__name__}({args})"


def _same_rank(y_true, y_pred):
    """Keras's ``squeeze_or_expand_to_same_rank``: targets (n,) for outputs (n, 1) become (n, 1)
    (and (n, 1) for (n,) become (n,)), cast to the output's dtype."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true.astype(y_pred.dtype, copy=False)


class _CrossEntropy(Loss):
    """A cross-entropy: of probabilities, or of logits with ``from_logits=True``."""

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        self.from_logits = bool(from_logits)

    def value(self, y_true, y_pred):
        if self.from_logits:
            return self.value_of_logits(y_true, y_pred)
        return self.value_of_probabilities(y_true, y_pred)

    def gradient(self, y_true, y_pred):
        if self.from_logits:
            return self.gradient_wrt_logits(y_true, self.probabilities_of_logits(y_pred))
        return self.gradient_wrt_probabilities(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy with integer class labels ``y_true`` (n,) and ``y_pred`` (n, k)."""

    name = "sparse_categorical_crossentropy"
    label_kind = "sparse"
    combines_with_softmax = True
    probabilities_of_logits = staticmethod(F.softmax_forward)

    def prepare_targets(self, labels, y_pred):
        labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
        return labels.astype(np.int64)

    def per_sample(self, labels, y_pred):
        if self.from_logits:
            return _rows(F.sparse_categorical_crossentropy_from_logits, y_pred, labels, y_pred.dtype)
        return _rows(F.sparse_categorical_crossentropy, y_pred, labels, y_pred.dtype)

    def value_of_probabilities(self, labels, p):
        return F.sparse_categorical_crossentropy(p, labels)

    def gradient_wrt_probabilities(self, labels, p):
        return F.sparse_categorical_crossentropy_backward(p, labels)

    def value_of_logits(self, labels, z):
        return F.sparse_categorical_crossentropy_from_logits(z, labels)

    def gradient_wrt_logits(self, labels, p):
        """dL/dz w.r.t. the logits z, given their softmax probabilities p."""
        return F.softmax_crossentropy_backward(p, labels)


def _rows(batch_mean, first, second, dtype):
    """Per-sample values of a batch-mean loss function: ``batch_mean`` of each row alone."""
    return np.array([batch_mean(first[i:i + 1], second[i:i + 1]) for i in range(first.shape[0])],
                    dtype=dtype)


class _SmoothedCrossEntropy(_CrossEntropy):
    """A cross-entropy with Keras's ``label_smoothing`` ε: targets become ``t (1 - ε) + ε / k``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(from_logits, name, reduction)
        self.label_smoothing = _fraction("label_smoothing", label_smoothing)

    def _smooth(self, targets):
        if not self.label_smoothing:
            return targets
        eps = targets.dtype.type(self.label_smoothing)
        return targets * (1 - eps) + eps / targets.dtype.type(self._smoothing_classes(targets))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_SmoothedCrossEntropy):
    """Cross-entropy with one-hot targets ``y_true`` (n, k) and ``y_pred`` (n, k).

    ``label_smoothing`` ε replaces the targets by ``t (1 - ε) + ε / k``, as in Keras.
    """

    name = "categorical_crossentropy"
    label_kind = "categorical"
    combines_with_softmax = True
    probabilities_of_logits = staticmethod(F.softmax_forward)

    def _smoothing_classes(self, targets):
        return targets.shape[-1]

    def prepare_targets(self, targets, y_pred):
        return targets.astype(y_pred.dtype, copy=False)

    def per_sample(self, targets, y_pred):
        if self.from_logits:
            return _rows(self.value_of_logits, targets, y_pred, y_pred.dtype)
        return _rows(self.value_of_probabilities, targets, y_pred, y_pred.dtype)

    def value_of_probabilities(self, targets, p):
        return F.categorical_crossentropy(p, self._smooth(targets))

    def gradient_wrt_probabilities(self, targets, p):
        # d/dp of -Σ t log(p / Σp): -t/p + Σt/Σp, then / n for the batch mean. Keras clips
        # p / Σp to [ε, 1 - ε]; entries held by the clip get no gradient through the log.
        targets = self._smooth(targets)
        total = p.sum(axis=1, keepdims=True)
        q = p / total
        inside = (q > 1e-7) & (q < 1 - 1e-7)
        dL_dq = np.where(inside, -targets / np.where(inside, q, 1), 0)
        # q = p / Σp  =>  dL/dp_j = (dL/dq_j - Σ_k dL/dq_k q_k) / Σp
        dL_dp = (dL_dq - np.sum(dL_dq * q, axis=1, keepdims=True)) / total
        return (dL_dp / p.shape[0]).astype(p.dtype, copy=False)

    def value_of_logits(self, targets, z):
        return F.categorical_crossentropy_from_logits(z, self._smooth(targets))

    def gradient_wrt_logits(self, targets, p):
        return F.softmax_categorical_crossentropy_backward(p, self._smooth(targets))


def _fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]; received {value!r}")
    return float(value)


class BinaryCrossentropy(_SmoothedCrossEntropy):
    """Binary cross-entropy for 0/1 targets and one probability (or logit) per output unit:
    ``Dense(1, activation='sigmoid')`` classifiers, and multi-label outputs (n, m).

    Targets (n,) or (n, 1) for one unit. After a sigmoid output layer the loss is computed
    from the sigmoid's logits, as Keras does (see :mod:`npnet.heads`): nothing is clipped
    and the gradient w.r.t. the logits is ``(p - t) / (n m)``. ``label_smoothing`` ε
    replaces the targets by ``t (1 - ε) + ε / 2``.
    """

    name = "binary_crossentropy"
    label_kind = "binary"
    combines_with_sigmoid = True
    probabilities_of_logits = staticmethod(F.sigmoid_forward)

    def _smoothing_classes(self, targets):
        return 2  # each output is a choice between two classes

    def prepare_targets(self, targets, y_pred):
        return _same_rank(targets, y_pred)

    def per_sample(self, targets, y_pred):
        if self.from_logits:
            return F.binary_crossentropy_from_logits(y_pred, self._smooth(targets))
        return F.binary_crossentropy(y_pred, self._smooth(targets))

    def value_of_probabilities(self, targets, p):
        return F.binary_crossentropy(p, self._smooth(targets)).mean(dtype=p.dtype)

    def gradient_wrt_probabilities(self, targets, p):
        return F.binary_crossentropy_backward(p, self._smooth(targets))

    def value_of_logits(self, targets, z):
        return F.binary_crossentropy_from_logits(z, self._smooth(targets)).mean(dtype=z.dtype)

    def gradient_wrt_logits(self, targets, p):
        """dL/dz w.r.t. the logits z, given their sigmoid p."""
        return F.sigmoid_binary_crossentropy_backward(p, self._smooth(targets))


class _Regression(Loss):
    """A loss on targets shaped like the output ((n,) targets for (n, 1) outputs are accepted),
    computed by a pair of :mod:`npnet.functional` functions ``(per_sample, backward)``."""

    label_kind = "regression"
    functions = None

    def prepare_targets(self, y_true, y_pred):
        return _same_rank(y_true, y_pred)

    def per_sample(self, y_true, y_pred):
        return self.functions[0](y_pred, y_true)

    def gradient(self, y_true, y_pred):
        return self.functions[1](y_pred, y_true)


class MeanSquaredError(_Regression):
    """Mean of ``(y_pred - y_true)²`` over the outputs, then over the batch (``'mse'``)."""

    name = "mean_squared_error"
    functions = (F.mean_squared_error, F.mean_squared_error_backward)


class MeanAbsoluteError(_Regression):
    """Mean of ``|y_pred - y_true|`` over the outputs, then over the batch (``'mae'``)."""

    name = "mean_absolute_error"
    functions = (F.mean_absolute_error, F.mean_absolute_error_backward)


class Huber(_Regression):
    """Squared error within ``delta`` of the target, absolute error beyond (see
    :func:`npnet.functional.huber`); Keras's default ``delta=1.0`` and name ``'huber_loss'``."""

    name = "huber_loss"

    def __init__(self, delta=1.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) \
                or not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"Huber delta must be a positive number; received delta={delta!r}")
        self.delta = float(delta)

    def per_sample(self, y_true, y_pred):
        return F.huber(y_pred, y_true, self.delta)

    def gradient(self, y_true, y_pred):
        return F.huber_backward(y_pred, y_true, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class MeanAbsolutePercentageError(_Regression):
    """``100 · mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` per sample, then the batch mean
    (``'mape'``): errors relative to the target, so a target of 0 weighs enormously."""

    name = "mean_absolute_percentage_error"
    functions = (F.mean_absolute_percentage_error, F.mean_absolute_percentage_error_backward)


class MeanSquaredLogarithmicError(_Regression):
    """Mean of ``(log(y_pred + 1) - log(y_true + 1))²``, values below 1e-7 taken as 1e-7
    (``'msle'``): squared error of orders of magnitude, for positive targets spanning many."""

    name = "mean_squared_logarithmic_error"
    functions = (F.mean_squared_logarithmic_error, F.mean_squared_logarithmic_error_backward)


class LogCosh(_Regression):
    """Mean of ``log(cosh(y_pred - y_true))``: squared error near the target, absolute error
    far from it, smooth everywhere (``'log_cosh'``)."""

    name = "log_cosh"
    functions = (F.log_cosh, F.log_cosh_backward)


class KLDivergence(_Regression):
    """Kullback-Leibler divergence ``Σ t log(t / p)`` of target distributions t (n, k) from
    predicted ones p, both clipped to [1e-7, 1] (``'kl_divergence'``, ``'kld'``). A sum over
    the k entries per sample; use it after a softmax output."""

    name = "kl_divergence"
    functions = (F.kl_divergence, F.kl_divergence_backward)


class Poisson(_Regression):
    """Mean of ``y_pred - y_true · log(y_pred + 1e-7)`` (``'poisson'``): for counts, with a
    positive predicted rate (an ``exponential`` or ``softplus`` output)."""

    name = "poisson"
    functions = (F.poisson, F.poisson_backward)


class Hinge(_Regression):
    """Mean of ``max(1 - y_true · y_pred, 0)`` for targets -1/1 (``'hinge'``); 0/1 targets
    are converted to -1/1 when all targets of a batch are 0 or 1, as in Keras."""

    name = "hinge"
    functions = (F.hinge, F.hinge_backward)


class SquaredHinge(_Regression):
    """Mean of ``max(1 - y_true · y_pred, 0)²``, targets as for :class:`Hinge` (``'squared_hinge'``)."""

    name = "squared_hinge"
    functions = (F.squared_hinge, F.squared_hinge_backward)


class CategoricalHinge(_Regression):
    """``max(1 + best other score - true class's score, 0)`` per sample for one-hot targets
    (n, k) (``'categorical_hinge'``): a multi-class margin of 1."""

    name = "categorical_hinge"
    functions = (F.categorical_hinge, F.categorical_hinge_backward)


class CosineSimilarity(_Regression):
    """``-cos(angle between y_true and y_pred)`` per sample, over the last axis
    (``'cosine_similarity'``): -1 when they point the same way, whatever their lengths; 0 when
    either is zero. ``axis`` is the features axis, -1 (Keras's default, the only one here)."""

    name = "cosine_similarity"
    functions = (F.cosine_similarity, F.cosine_similarity_backward)

    def __init__(self, axis=-1, name=None, reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis != -1:
            raise ValueError("npnet's CosineSimilarity compares the last axis, the features of a Dense "
                             f"output: expected axis=-1 (Keras's default); received axis={axis!r}")
        self.axis = -1

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# -- Keras's loss functions: per-sample values, ``keras.losses.mean_squared_error(y_true, y_pred)``


def _loss_function(cls, name):
    def function(y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_pred = y_pred if y_pred.dtype.kind == "f" else y_pred.astype(np.float32)
        loss = cls()
        return loss.per_sample(loss.prepare_targets(np.asarray(y_true), y_pred), y_pred)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"Per-sample {cls.__name__} loss (n,), as ``keras.losses.{name}``; the batch mean is the loss."
    function.loss_class = cls
    return function


sparse_categorical_crossentropy = _loss_function(SparseCategoricalCrossentropy, "sparse_categorical_crossentropy")
categorical_crossentropy = _loss_function(CategoricalCrossentropy, "categorical_crossentropy")
binary_crossentropy = _loss_function(BinaryCrossentropy, "binary_crossentropy")
mean_squared_error = _loss_function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _loss_function(MeanAbsoluteError, "mean_absolute_error")
huber = _loss_function(Huber, "huber")
mean_absolute_percentage_error = _loss_function(MeanAbsolutePercentageError, "mean_absolute_percentage_error")
mean_squared_logarithmic_error = _loss_function(MeanSquaredLogarithmicError, "mean_squared_logarithmic_error")
log_cosh = _loss_function(LogCosh, "log_cosh")
kl_divergence = _loss_function(KLDivergence, "kl_divergence")
poisson = _loss_function(Poisson, "poisson")
hinge = _loss_function(Hinge, "hinge")
squared_hinge = _loss_function(SquaredHinge, "squared_hinge")
categorical_hinge = _loss_function(CategoricalHinge, "categorical_hinge")
cosine_similarity = _loss_function(CosineSimilarity, "cosine_similarity")

_CLASSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
            MeanSquaredError, MeanAbsoluteError, Huber, MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError, LogCosh, KLDivergence, Poisson, Hinge, SquaredHinge,
            CategoricalHinge, CosineSimilarity)
#: Every name ``get`` resolves: Keras's function names, short aliases and class names.
_BY_NAME = {cls.name: cls for cls in _CLASSES}
_BY_NAME.update({cls.__name__: cls for cls in _CLASSES})
#: the short aliases keras.losses.get accepts (its function names ``huber`` and ``log_cosh`` too)
_BY_NAME.update(mse=MeanSquaredError, MSE=MeanSquaredError, mae=MeanAbsoluteError, MAE=MeanAbsoluteError,
                bce=BinaryCrossentropy, BCE=BinaryCrossentropy, huber=Huber, mape=MeanAbsolutePercentageError,
                MAPE=MeanAbsolutePercentageError, msle=MeanSquaredLogarithmicError,
                MSLE=MeanSquaredLogarithmicError, kld=KLDivergence, KLD=KLDivergence)
#: Keras 2 names that keras.losses.get of Keras 3 refuses: the error says what to write.
_KERAS_2_NAMES = {"logcosh": "log_cosh", "kullback_leibler_divergence": "kl_divergence"}

_SUBCLASS_EXAMPLE = (
    "class MyLoss(npnet.losses.Loss):\n"
    "    def value(self, y_true, y_pred):      # the batch-mean loss, a scalar\n"
    "        return np.mean((y_pred - y_true) ** 2)\n"
    "    def gradient(self, y_true, y_pred):   # dL/dy_pred, shaped like y_pred\n"
    "        return 2 * (y_pred - y_true) / y_pred.size\n"
    "model.compile(loss=MyLoss(), ...)")


def get(identifier):
    """Resolve a loss: an instance, a name (``'mse'``, ``'binary_crossentropy'``,
    ``'Huber'``...), a class, or one of npnet's loss functions. A plain function is refused
    with the way to write it as a :class:`Loss` subclass."""
    if isinstance(identifier, Loss):
        return _check_subclass(identifier)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and getattr(identifier, "loss_class", None) in _CLASSES:
        return identifier.loss_class()
    if callable(identifier):
        raise TypeError(_plain_function_message(identifier))
    if isinstance(identifier, str) and identifier in _KERAS_2_NAMES:
        raise ValueError(f"Unknown loss {identifier!r}: that is a Keras 2 name, which Keras 3 no longer "
                         f"accepts either; write {_KERAS_2_NAMES[identifier]!r}")
    raise ValueError(
        f"Unknown loss {identifier!r}; known losses: {', '.join(sorted(_BY_NAME))} "
        "(or an npnet.losses.Loss instance)"
    )


def _check_subclass(loss):
    """A Keras-style subclass defines only ``call(y_true, y_pred)``; npnet also needs the
    gradient, so say so at compile time rather than fail inside fit."""
    cls = type(loss)
    lacks_gradient = cls.gradient is Loss.gradient and getattr(cls, "gradient_wrt_logits", None) is None
    if hasattr(loss, "call") and lacks_gradient:
        raise TypeError(f"{cls.__name__} defines call(y_true, y_pred), as a Keras loss does; npnet has no "
                        "automatic differentiation, so a loss defines value and gradient instead "
                        f"(call's body is the value):\n{_SUBCLASS_EXAMPLE}")
    return loss


def _plain_function_message(function):
    name = getattr(function, "__name__", type(function).__name__)
    known = _BY_NAME.get(name) or _BY_NAME.get(type(function).__name__)
    hint = f" For this one write loss={known.name!r}." if known else ""
    return (f"loss {function!r} is a plain function. npnet has no automatic differentiation, so "
            f"a loss must give its gradient too.{hint} Write it as a subclass of "
            f"npnet.losses.Loss that defines value and gradient:\n{_SUBCLASS_EXAMPLE}")


def deserialize(name, config_):
    """The loss saved as ``(name, loss.get_config())``, ``name`` its class's name or its own."""
    config_ = dict(config_)
    if config_.get("name") == name:
        config_.pop("name")  # the class's own name; a custom one is kept
    return _BY_NAME[name](**config_)
