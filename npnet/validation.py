"""Checking what users hand to a model, before anything on the model changes.

Every check raises an error that says what was expected and what was received, and returns
the value converted to what the arithmetic needs (C-contiguous arrays of the float type,
int64 labels). ``fit``, ``evaluate``, ``predict``, :func:`npnet.gradcheck` and
:func:`npnet.inspect.step` all validate through these functions.
"""

import math
import sys

import numpy as np

from . import config
from .utils import format_shape


def finite_in(value, dtype=None):
    """Whether ``value`` (a number or an array of numbers) stays finite in ``dtype`` (default:
    npnet's float type, the one the layers compute in): ``1e39`` is a finite float64 but
    ``inf`` in float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.all(np.isfinite(np.asarray(value, dtype=dtype or config.floatx()))))


def check_inputs(x, input_shape, what="x", model_name="model", dtype=None):
    """Samples ``x`` for a model whose inputs have ``input_shape`` (batch first, or None).

    Returns a C-contiguous array of ``dtype`` (default: floatx). Finiteness is checked after
    the cast, in the dtype the model computes in: 1e300 is finite in float64, not in float32.
    """
    if x is None:
        raise ValueError(f"{what} is None; expected an array of samples")
    x = np.asarray(as_dense(x, what))
    if x.dtype.kind not in "buif":  # booleans read as 0 and 1, as in Keras
        raise TypeError(f"{what} must be an array of numbers or booleans (e.g. uint8, float32, float64, "
                        f"bool); received dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {x.shape}); expected at least one sample")
    if input_shape is not None:
        x = _adjust_rank(x, input_shape)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape[1:]):
        hint = ""
        if tuple(x.shape) == tuple(input_shape[1:]):
            hint = " This looks like a single sample: add the batch dimension with np.expand_dims(x, 0)."
        raise ValueError(f'{what} of model "{model_name}" is incompatible: expected shape '
                         f"{format_shape(input_shape)}, received {format_shape(x.shape)}.{hint}")
    x = np.ascontiguousarray(x, dtype=dtype or config.floatx())
    # min and max are NaN if any element is, and ±inf if any is infinite; unlike
    # np.isfinite(x).all() they need no temporary as large as x.
    if not (np.isfinite(x.min()) and np.isfinite(x.max())):
        n_bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{what} contains {n_bad} NaN or infinite values; expected finite "
                         f"numbers (checked as {x.dtype}, the type the model computes in)")
    return x


def as_dense(data, what="x"):
    """Data NumPy would not read as numbers, made into an array as Keras reads it: a SciPy
    sparse matrix (a one-hot encoder's output) becomes dense; a pandas DataFrame whose
    columns are all numbers or booleans (``pd.get_dummies`` makes bool columns) becomes one
    float64 array, where ``np.asarray`` would make an array of objects. Anything else is
    returned as it is."""
    sparse = sys.modules.get("scipy.sparse")  # not imported: the data cannot be one of its matrices
    if sparse is not None and sparse.issparse(data):
        try:
            return data.toarray()
        except MemoryError:
            raise ValueError(f"{what} is a sparse matrix of shape {data.shape}, too large to make dense in "
                             "memory; npnet computes with dense arrays: pass fewer samples at a time") from None
    column_types = getattr(getattr(data, "dtypes", None), "tolist", None)  # a DataFrame's, one per column
    if callable(getattr(data, "to_numpy", None)) and callable(column_types):
        others = [f"{column!r} ({kind})" for column, kind in zip(getattr(data, "columns", ()), column_types())
                  if getattr(kind, "kind", "O") not in "biuf"]
        if others:
            raise TypeError(f"{what} is a table whose columns must be numbers or booleans; received "
                            f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}: encode them as numbers "
                            "first (e.g. pd.get_dummies)")
        return data.to_numpy(dtype=np.float64)
    return data


def _adjust_rank(x, input_shape):
    """As Keras adjusts an input's rank by a trailing axis of 1: a column ``(n,)`` for a
    model of ``(None, 1)`` inputs becomes ``(n, 1)``, and ``(n, d, 1)`` for ``(None, d)``
    becomes ``(n, d)``. Any other shape is left to the check that follows."""
    expected = tuple(input_shape[1:])
    if x.ndim == len(input_shape) - 1 and expected[-1:] == (1,) and x.shape[1:] == expected[:-1]:
        return x[..., np.newaxis]
    if x.ndim == len(input_shape) + 1 and x.shape[-1] == 1 and x.shape[1:-1] == expected:
        return x[..., 0]
    return x


def check_labels(y, n_samples, n_classes, loss, what="y"):
    """Targets for ``loss``, as its ``label_kind`` asks (see :class:`npnet.losses.Loss`):

    * ``"sparse"``: integer classes (n,) or (n, 1) -> int64 (n,);
    * ``"categorical"``: one-hot rows (n, n_classes) -> floatx;
    * ``"binary"``: numbers in [0, 1], (n,) for one output unit or (n, n_classes) -> floatx (n, n_classes);
    * ``"regression"``: finite numbers, (n,) for one output unit or (n, n_classes) -> floatx (n, n_classes);
    * ``"any"`` (your own losses): finite numbers with n rows, passed on in their shape.

    ``n_classes`` is the number of output units.
    """
    if y is None:
        raise ValueError(f"{what} is None; expected {n_samples} labels")
    y = np.asarray(as_dense(y, what))
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ValueError(f"x and {what} must have the same number of samples; received "
                         f"{n_samples} inputs and {y.shape[0] if y.ndim else 'a scalar'} labels")
    kind = getattr(loss, "label_kind", "any")
    if kind == "categorical":
        return _check_one_hot(y, n_samples, n_classes, loss, what)
    if kind == "sparse":
        return _check_class_indices(y, n_samples, n_classes, loss, what)
    if kind in ("binary", "regression"):
        return _check_targets_like_output(y, n_samples, n_classes, loss, what, kind == "binary")
    return _check_numbers(y, loss, what)


def _check_numbers(y, loss, what):
    """Finite numbers (int, uint, float or bool), as floatx unless they are integers."""
    if y.dtype.kind not in "uifb":
        raise TypeError(f"{what} must hold numbers for {_loss_name(loss)}; received dtype {y.dtype}")
    if y.dtype.kind in "ui":
        return np.ascontiguousarray(y, dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=config.floatx())
    if not np.isfinite(y).all():
        raise ValueError(f"{what} contains {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite "
                         f"values; expected finite targets for {_loss_name(loss)}")
    return y


def _check_targets_like_output(y, n_samples, n_units, loss, what, binary):
    """Targets with the output's shape (n, units); (n,) is taken as (n, 1) for one unit."""
    if y.ndim == 1 and n_units == 1:
        y = y[:, None]
    expected = (n_samples, n_units)
    if y.shape != expected:
        one = f" or ({n_samples},)" if n_units == 1 else ""
        raise ValueError(f"{what} must have the shape of the model's output, {expected}{one}, for "
                         f"{_loss_name(loss)}; received shape {y.shape}")
    if y.dtype.kind not in "uifb":
        raise TypeError(f"{what} must hold numbers for {_loss_name(loss)}; received dtype {y.dtype}")
    y = np.ascontiguousarray(y, dtype=config.floatx())
    if not np.isfinite(y).all():
        raise ValueError(f"{what} contains {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite "
                         f"values; expected finite targets for {_loss_name(loss)}")
    if binary:
        outside = (y < 0) | (y > 1)
        if outside.any():
            raise ValueError(f"{what} must hold 0/1 targets (or probabilities in [0, 1]) for "
                             f"{_loss_name(loss)}; received {int(outside.sum())} outside [0, 1]: "
                             f"{some_values(y[outside])}")
    return y


def _loss_name(loss):
    return getattr(loss, "name", type(loss).__name__)


def _check_one_hot(y, n_samples, n_classes, loss, what):
    if y.shape != (n_samples, n_classes):
        raise ValueError(f"{what} must be one-hot rows of shape ({n_samples}, {n_classes}) "
                         f"for {loss.name}; received shape {y.shape}")
    if y.dtype.kind not in "uif" or not np.isfinite(y).all():
        raise ValueError(f"{what} must hold finite numbers for {loss.name}")
    return np.ascontiguousarray(y, dtype=config.floatx())


def _check_class_indices(y, n_samples, n_classes, loss, what):
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what} must be integer class labels of shape ({n_samples},) for "
                         f"{loss.name}; received shape {y.shape}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(f"{what} must hold integer class labels; received non-integer "
                             f"values {some_values(y[bad])}")
    elif y.dtype.kind not in "ui":
        raise TypeError(f"{what} must hold integer class labels; received dtype {y.dtype}")
    out_of_range = (y < 0) | (y >= n_classes)
    if out_of_range.any():
        raise ValueError(f"{what} must hold class labels in [0, {n_classes}) for an output of "
                         f"{n_classes} units; received {int(out_of_range.sum())} outside it: "
                         f"{some_values(y[out_of_range])}")
    return y.astype(np.int64)


def check_batch_size(batch_size, n_samples=None, name="batch_size"):
    """A positive int (default 32), clipped to ``n_samples`` as Keras does; ``name``: the
    argument's, for the error."""
    if batch_size is None:
        batch_size = 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{name} must be a positive integer; received {batch_size!r}")
    return int(batch_size) if n_samples is None else int(min(batch_size, n_samples))


def batch_size_of_arrays(batch_size, n_samples, steps=None):
    """Keras's batch size for arrays of ``n_samples``: ``batch_size`` when given, else
    ``ceil(n_samples / steps)`` when ``steps`` (``steps_per_epoch``, ``validation_steps``)
    is, else 32; clipped to ``n_samples``."""
    if batch_size is None and steps is not None:
        batch_size = -(-n_samples // steps)
    return check_batch_size(batch_size, n_samples)


def check_epochs(epochs, initial_epoch=0):
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer; received {epochs!r}")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be a non-negative integer; received {initial_epoch!r}")
    return int(epochs), int(initial_epoch)


def check_validation_split(validation_split):
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.floating)):
        raise TypeError(f"validation_split must be a number in [0, 1); received {validation_split!r}")
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1); received {validation_split!r}")
    return float(validation_split)


def split_for_validation(x, y, validation_split):
    """Like Keras: the last fraction of the samples, taken before any shuffling."""
    split_at = int(math.floor(x.shape[0] * (1.0 - validation_split)))
    if split_at == 0 or split_at == x.shape[0]:
        raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                         f"validation set for {x.shape[0]} samples")
    return (x[:split_at], y[:split_at]), (x[split_at:], y[split_at:])


def check_sample_weight(sample_weight, class_weight, y, label_kind):
    """The per-sample weights of ``fit``: ``sample_weight`` (n,), or the weight that
    ``class_weight`` ({class: weight}) gives each sample's class; None when neither is given."""
    n_samples = y.shape[0]
    weights = None
    if sample_weight is not None and class_weight is not None:
        raise ValueError("cannot use class_weight and sample_weight at the same time, as in "
                         "Keras: multiply the class weights into sample_weight instead")
    if sample_weight is not None:
        weights = np.asarray(sample_weight)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.shape != (n_samples,) or weights.dtype.kind not in "uif" or not np.isfinite(weights).all():
            raise ValueError(f"sample_weight must hold {n_samples} finite numbers, one per sample; "
                             f"received shape {weights.shape} of dtype {weights.dtype}")
        weights = weights.astype(np.float64)
    if class_weight is not None:
        weights = _class_weights(class_weight, y)
    if weights is not None:
        _check_finite_in_floatx(weights, "sample_weight" if class_weight is None else "class_weight")
    return weights


def _check_finite_in_floatx(weights, name):
    """Weights multiply the loss in floatx: 1e39 is finite in float64, not in float32."""
    if not finite_in(weights):
        raise ValueError(f"{name} must be finite in {config.floatx()}, the type the loss computes in; received weights "
                         f"up to {np.abs(weights).max():g}")


def _class_weights(class_weight, y):
    """Each sample's weight from its class, as Keras finds it: the argmax of a target row of
    several values (one-hot or not), else the rounded label; a class the dict does not name
    weighs 1."""
    if not isinstance(class_weight, dict) or not all(
            isinstance(k, (int, np.integer)) and isinstance(v, (int, float, np.number)) for k, v in class_weight.items()):
        raise TypeError(f"class_weight must be a dict {{class index: weight}}; received {class_weight!r}")
    if not all(np.isfinite(float(v)) for v in class_weight.values()):
        raise ValueError(f"class_weight's weights must be finite numbers; received {class_weight!r}")
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    if labels.ndim != 1:
        raise ValueError(f"class_weight needs one class per sample: targets of shape (n,), (n, 1) or "
                         f"(n, classes); received shape {np.shape(y)}")
    classes = labels.astype(np.int64) if labels.dtype.kind in "iub" else np.rint(labels).astype(np.int64)
    table = {int(k): float(v) for k, v in class_weight.items()}
    return np.array([table.get(int(c), 1.0) for c in classes])


def check_steps(value, name):
    """None or a positive int (``steps_per_epoch`` and the like)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be None or a positive integer; received {value!r}")
    return int(value)


def check_validation_freq(value):
    """Keras's ``validation_freq``: an int (every n epochs) or a list of 1-based epochs.
    Returns a function of ``epochs`` giving the set of epochs (1-based) that validate."""
    if isinstance(value, (list, tuple, set)):
        if not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) and e >= 1 for e in value):
            raise ValueError(f"validation_freq must list epochs as positive integers; received {value!r}")
        chosen = {int(e) for e in value}
        return lambda epochs: chosen
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"validation_freq must be a positive integer or a list of epochs; received {value!r}")
    return lambda epochs: set(range(int(value), epochs + 1, int(value)))


def check_steps_per_execution(value):
    """``'auto'`` or a positive int, as Keras's ``compile(steps_per_execution=...)``."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"steps_per_execution must be 'auto' or a positive integer; received {value!r}")
    return int(value)


def some_values(values, limit=10):
    """``[1, 2, 3, ...]``: a few distinct values, for error messages."""
    unique = np.unique(values)
    shown = ", ".join(str(v.item() if hasattr(v, "item") else v) for v in unique[:limit])
    return f"[{shown}{', ...' if unique.size > limit else ''}]"
