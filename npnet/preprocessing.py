"""``Normalization``: Keras's feature-scaling layer, ``(x - mean) / sqrt(variance)``.

The mean and variance come from :meth:`Normalization.adapt` (NumPy's mean and variance of
the data, kept as the layer's non-trainable weights ``mean``, ``variance`` and Keras's
``count``) or from the ``mean``/``variance`` arguments (constants, no weights). Per feature
along ``axis`` (by default the last), or one scalar pair with ``axis=None``. The divisor is
``max(sqrt(variance), 1e-7)``, Keras's epsilon, so a constant feature does not divide by zero.
No optimizer ever changes the statistics: the layer reports ``trainable`` False.
"""

import collections.abc

import numpy as np

from . import config
from .layers import Layer
from .utils import format_shape
from .validation import finite_in

#: Keras's ``backend.epsilon()``: the smallest standard deviation divided by.
EPSILON = 1e-7


class Normalization(Layer):
    """Shift and scale each feature to mean 0 and variance 1, as ``keras.layers.Normalization``.

    axis: an int or a tuple of ints, the axes that keep a mean and variance per index
    (``-1``: one per feature of (batch, features) inputs), or None for one over everything.
    mean, variance: given together (numbers or arrays that broadcast to the kept axes) in
    place of :meth:`adapt`. invert: apply the inverse, ``mean + x · sqrt(variance)``.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, *, input_shape=None, name=None,
                 trainable=True, **keras_only):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **keras_only)
        self.axis = _axes(axis)
        self.invert = _boolean("invert", invert)
        self.input_mean, self.input_variance = _given_statistics(mean, variance, self.axis)
        self._broadcast_shape = None
        self._constants = None  # (mean, variance) broadcast, when given as arguments

    # Keras's layer stays "trainable" but its weights never are; in npnet a layer's
    # trainable flag is what makes an optimizer update its weights, so it is always False.
    @property
    def trainable(self):
        return False

    @trainable.setter
    def trainable(self, value):
        pass

    def kept_axes(self, input_shape):
        """The axes of ``input_shape`` that keep a mean per index, checked, in order."""
        ndim = len(input_shape)
        for axis in self.axis:
            if not -ndim <= axis < ndim:
                raise ValueError(f"Normalization {self.name!r}: axis {axis} is out of range for inputs of "
                                 f"shape {format_shape(input_shape)}")
        keep = sorted({axis % ndim for axis in self.axis})
        if 0 in keep:
            raise ValueError(f"Normalization {self.name!r}: axis 0 is the batch axis, which cannot keep a "
                             f"mean per index; received axis={self.axis}")
        return keep

    def weight_shapes(self, input_shape):
        """``{name: shape}`` of the weights :meth:`build` creates (none with a given mean)."""
        if self.input_mean is not None:
            return {}
        kept_shape = tuple(int(input_shape[d]) for d in self.kept_axes(input_shape))
        return {"mean": kept_shape, "variance": kept_shape, "count": ()}

    def build(self, input_shape):
        ndim = len(input_shape)
        keep = self.kept_axes(input_shape)
        kept_shape = tuple(int(input_shape[d]) for d in keep)
        self._broadcast_shape = tuple(int(input_shape[d]) if d in keep else 1 for d in range(ndim))
        self._reduce_axes = tuple(d for d in range(ndim) if d not in keep)
        dtype = config.floatx()
        if self.input_mean is None:
            self.params["mean"] = np.zeros(kept_shape, dtype=dtype)
            self.params["variance"] = np.ones(kept_shape, dtype=dtype)
            self.params["count"] = np.zeros((), dtype=np.int64)  # as Keras's, never counted
        else:
            self._constants = tuple(_broadcast(value, keep, self._broadcast_shape, dtype, self.name)
                                    for value in (self.input_mean, self.input_variance))
        super().build(input_shape)

    # -- the statistics ---------------------------------------------------------------------

    @property
    def mean(self):
        """The mean divided out, shaped to broadcast against a batch."""
        return self._statistics()[0]

    @property
    def variance(self):
        return self._statistics()[1]

    def _statistics(self):
        if not self.built:
            raise ValueError(f"Normalization {self.name!r} is not built yet: call adapt(data) or build it "
                             "first")
        if self._constants is not None:
            return self._constants
        return (self.params["mean"].reshape(self._broadcast_shape),
                self.params["variance"].reshape(self._broadcast_shape))

    def adapt(self, data):
        """Set ``mean`` and ``variance`` to those of ``data``: an array (or anything
        ``np.asarray`` reads, e.g. a DataFrame) or an iterable of batches (``x`` or
        ``(x, y, ...)`` tuples), combined as Keras combines them. Nothing changes on error."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization {self.name!r} was given its mean and variance; adapt() "
                             "computes them instead, so create the layer without them")
        if _is_array_like(data):
            array = _finite_array(data, "adapt() data")
            self._check_or_build(array.shape)
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below
                mean, variance = np.mean(array, axis=self._data_axes()), np.var(array, axis=self._data_axes())
        else:
            mean, variance = self._batched_statistics(data)
        with np.errstate(over="ignore"):
            mean, variance = (np.asarray(v).astype(self.params["mean"].dtype) for v in (mean, variance))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
            raise ValueError(f"Normalization {self.name!r}: the data's mean or variance overflows "
                             f"{self.params['mean'].dtype}; scale the data down first")
        np.copyto(self.params["mean"], mean)
        np.copyto(self.params["variance"], variance)

    def _batched_statistics(self, data):
        if not isinstance(data, collections.abc.Iterable):
            raise TypeError("adapt() takes an array or an iterable of batches; received "
                            f"{type(data).__name__}")
        total_mean = total_variance = None
        total_count = 0
        for batch in data:
            batch = _finite_array(batch[0] if isinstance(batch, tuple) else batch, "adapt() batch")
            batch = batch.astype(config.floatx() if not self.built else self.params["mean"].dtype)
            self._check_or_build(batch.shape)
            with np.errstate(over="ignore", invalid="ignore"):
                mean, variance = np.mean(batch, axis=self._data_axes()), np.var(batch, axis=self._data_axes())
            count = batch.size // max(mean.size, 1)
            if total_mean is None:
                total_mean, total_variance = np.zeros_like(mean), np.zeros_like(variance)
            total_count += count
            new_weight = count / total_count
            old_weight = 1.0 - new_weight
            new_mean = total_mean * old_weight + mean * new_weight
            total_variance = ((total_variance + (total_mean - new_mean) ** 2) * old_weight
                              + (variance + (mean - new_mean) ** 2) * new_weight)
            total_mean = new_mean
        if total_mean is None:
            raise ValueError("adapt() received an iterable without any batch; pass an array or batches")
        return total_mean, total_variance

    def _data_axes(self):
        """The axes of the data to average over: all of them for ``axis=None``, whatever the
        data's rank (a 1-D column adapts a layer built for (batch, 1) inputs, as in Keras)."""
        return None if self.axis == () else self._reduce_axes

    def _check_or_build(self, shape):
        if len(shape) < 1 or shape[0] == 0:
            raise ValueError(f"adapt() needs at least one sample; received data of shape {format_shape(shape)}")
        if not self.built:
            declared = self._declared_input_shape
            self.build(declared if declared is not None and self.axis == () else (None,) + tuple(shape[1:]))
        if self.axis == ():  # one mean over everything: data of any shape adapts it
            return
        kept = [d for d in range(len(self._broadcast_shape)) if d not in self._reduce_axes]
        if len(shape) != len(self._broadcast_shape) or any(shape[d] != self._broadcast_shape[d] for d in kept):
            raise ValueError(f"Normalization {self.name!r} was built for inputs of shape "
                             f"{format_shape(self.input_shape)}; adapt() received data of shape "
                             f"{format_shape(shape)}")

    def check_weights(self, values):
        for name in ("variance", "count"):
            if name in values and np.any(np.asarray(values[name]) < 0):
                raise ValueError(f"Normalization {self.name!r}: its {name} cannot be negative; received "
                                 f"values down to {np.min(values[name])}")

    # -- the computation --------------------------------------------------------------------

    def scale(self):
        """The divisor ``max(sqrt(variance), 1e-7)``, shaped to broadcast against a batch."""
        variance = self.variance
        return np.maximum(np.sqrt(variance), variance.dtype.type(EPSILON))

    def forward(self, x, training=False):
        scale = self.scale()
        y = self.mean + x * scale if self.invert else (x - self.mean) / scale
        return y.astype(x.dtype, copy=False), scale

    def backward(self, dL_dy, cache, need_input_grad=True):
        if not need_input_grad:
            return None, {}
        scale = cache
        return (dL_dy * scale if self.invert else dL_dy / scale), {}

    def get_config(self):
        config_ = super().get_config()
        config_.pop("trainable", None)
        config_.update(axis=None if self.axis == () else list(self.axis), invert=self.invert,
                       mean=_as_list(self.input_mean), variance=_as_list(self.input_variance))
        return config_

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if isinstance(config_.get("axis"), list):
            config_["axis"] = tuple(config_["axis"])
        return cls(**config_)


def _axes(axis):
    """Keras's ``axis`` as a tuple of ints: None -> () (one mean for everything)."""
    if axis is None or (isinstance(axis, (tuple, list)) and len(axis) == 0):  # Keras writes None as ()
        return ()
    values = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if not values or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in values):
        raise ValueError(f"Normalization axis must be an int, a tuple of ints or None; received {axis!r}")
    return tuple(int(a) for a in values)


def _boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Normalization {name} must be True or False; received {value!r}")
    return bool(value)


def _given_statistics(mean, variance, axis):
    """``(mean, variance)`` as float64 arrays, checked as Keras checks them, or ``(None, None)``."""
    if (mean is None) != (variance is None):
        raise ValueError(f"Normalization takes mean and variance together or neither; received "
                         f"mean={mean!r} and variance={variance!r}")
    if mean is None:
        return None, None
    arrays = []
    for name, value in (("mean", mean), ("variance", variance)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Normalization {name} must be a number or an array of numbers; received "
                             f"{type(value).__name__}") from None
        if not finite_in(array):
            raise ValueError(f"Normalization {name} must be finite in {config.floatx()}, the type the layer "
                             f"computes in; received {value!r}")
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"Normalization mean and variance must have one shape; received {arrays[0].shape} "
                         f"and {arrays[1].shape}")
    if arrays[0].ndim > len(axis):
        raise ValueError(f"Normalization mean of shape {arrays[0].shape} has more axes than axis={axis} keeps")
    if np.any(arrays[1] < 0):
        raise ValueError("Normalization variance must not be negative")
    return tuple(arrays)


def _broadcast(value, keep, broadcast_shape, dtype, name):
    """A given mean or variance laid along the kept axes (right-aligned, as Keras) and broadcast."""
    shape = [1] * len(broadcast_shape)
    for i in range(1, value.ndim + 1):
        shape[keep[-i]] = value.shape[-i]
    try:
        return np.broadcast_to(value.reshape(shape), broadcast_shape).astype(dtype)
    except ValueError:
        raise ValueError(f"Normalization {name!r}: a mean of shape {value.shape} does not broadcast to the "
                         f"kept axes of shape {tuple(broadcast_shape[d] for d in keep)}") from None


def _is_array_like(data):
    """An array, or what ``np.asarray`` reads as one (a DataFrame); a list is batches, as in Keras."""
    return isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__array__")


def _finite_array(data, what):
    """``data`` as a float array, refused with a clear error unless numeric and finite."""
    array = np.asarray(data)
    if array.dtype == object or array.dtype.kind == "b":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numbers; received an array of {array.dtype}") from None
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be numbers; received an array of {array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds NaN or infinite values; clean them first")
    return array


def _as_list(value):
    return None if value is None else value.tolist()
