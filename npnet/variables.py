"""``Variable``: a layer's weight, an ``np.ndarray`` that also answers Keras's variable API.

Keras code reaches into weights: ``model.layers[-1].bias.assign(np.log([pos / neg]))``,
``layer.kernel.numpy()``, ``for v in model.trainable_weights: print(v.name, v.shape)``.
In npnet every weight (``layer.params[name]``, ``Dense.kernel``, ``add_weight``'s result,
``model.weights``) is a ``Variable``: a view of the weight's storage with, in addition,

* ``assign(value)``, ``assign_add(value)``, ``assign_sub(value)`` — write the new value into
  the same storage (the optimizer's slots and the numba backend's bound arrays keep
  pointing at it), after checking it: the variable's shape exactly, a number type that casts
  to the variable's (``same_kind``: ints and floats into a float weight), finite values once
  cast, and whatever the layer requires (a Normalization's variance is not negative).
  A refused value raises ``ValueError`` (``TypeError`` for a type that cannot be cast) and
  leaves the weight unchanged. As in Keras, the result is the value assigned (a plain array),
  not the variable;
* ``numpy()`` — a plain ``np.ndarray`` copy (changing it does not change the weight, as with
  a TensorFlow variable); ``value`` — the storage as a plain ``np.ndarray`` view, no copy;
* ``name`` (``'kernel'``), ``path`` (``'sequential/dense/kernel'``, as Keras 3 names it: the
  Sequential model's name first when that model built the layer) and ``trainable`` (the
  layer's flag: npnet trains a layer's weights all or none).

What stays an ndarray: arithmetic, NumPy functions, reductions, slicing and the usual array
methods give **plain ndarrays** (Keras gives tensors): ``kernel * 2``, ``kernel.sum()``,
``kernel.T``, ``kernel[0]``, ``kernel.copy()``, ``np.zeros_like(kernel)``. Only in-place
operations on the variable itself (``kernel -= g``, ``np.copyto(kernel, w)``,
``kernel[0] = 1``) keep and return the Variable, writing its storage. ``copy.deepcopy`` of a
layer gives a layer with Variables of its own; pickling keeps the Variable.
"""

import copy

import numpy as np


def plain(array):
    """``array`` as a plain ``np.ndarray`` (a view of a Variable's storage, no copy)."""
    return array.view(np.ndarray) if isinstance(array, Variable) else array


def _plain_arguments(value):
    """Variables anywhere in (nested lists/tuples of) arguments as plain views."""
    if isinstance(value, Variable):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_arguments(v) for v in value)
    return value


class Variable(np.ndarray):
    """A layer's weight, or a variable of your own: an ndarray with Keras's ``assign``/
    ``numpy``/``name``/``path``/``trainable`` (see the module docstring for what stays an
    ndarray).

    ``npnet.Variable(initializer, shape=None, dtype=None, trainable=True, name=None)`` is
    ``keras.Variable``: ``initializer`` is the value (an array, a list, a number: its own
    dtype for a NumPy array, floatx for Python floats, int32 for Python ints, as Keras
    converts them), or an initializer (``'zeros'``, ``'glorot_uniform'``,
    ``npnet.initializers.Constant(2.0)``, a function ``(shape, dtype) -> array``) with
    ``shape``, in ``dtype`` (floatx by default). Keras's ``autocast``, ``aggregation`` and
    ``synchronization`` are accepted and kept (npnet has no mixed precision or devices).
    A layer's weights are made by :func:`as_variable`.
    """

    def __new__(cls, initializer, shape=None, dtype=None, trainable=True, name=None, autocast=True,
                aggregation="none", synchronization="auto", layout=None):
        value = _initial_value(initializer, shape, dtype)
        variable = value.view(cls)
        variable._name, variable._layer = _variable_name(name), None
        variable._trainable = bool(trainable)
        variable.autocast = bool(autocast)
        variable.aggregation = _one_of(aggregation, "aggregation", (None, "none", "mean", "sum", "only_first_replica"))
        variable.synchronization = _one_of(synchronization, "synchronization",
                                           (None, "none", "on_read", "on_write", "auto"))
        if layout is not None:
            raise ValueError(f"npnet.Variable has no sharding layout (npnet runs on one device); "
                             f"expected layout=None, received layout={layout!r}")
        return variable

    @classmethod
    def _of_layer(cls, array, name, layer):
        """The weight ``name`` of ``layer`` over ``array``'s storage (no copy, no checks)."""
        variable = np.asarray(array).view(cls)
        variable._name, variable._layer = str(name), layer
        return variable

    def __array_finalize__(self, obj):
        # Views and copies made by NumPy itself (copy.copy, a view()) keep the information;
        # the methods below hand out plain arrays for everything a user computes.
        self._name = getattr(obj, "_name", None)
        self._layer = getattr(obj, "_layer", None)
        self._trainable = getattr(obj, "_trainable", True)
        self.autocast = getattr(obj, "autocast", True)
        self.aggregation = getattr(obj, "aggregation", "none")
        self.synchronization = getattr(obj, "synchronization", "auto")

    # -- Keras's variable API ----------------------------------------------------------------

    @property
    def name(self):
        """The weight's name in its layer: ``'kernel'``, ``'bias'``, ``'mean'``, ``'variable'``."""
        return self._name

    @property
    def path(self):
        """``'dense/kernel'``, or ``'sequential/dense/kernel'`` when a Sequential model built
        the layer (Keras 3 builds a Sequential's layers inside the model's name scope)."""
        layer = self._layer
        if layer is None:
            return self._name
        scope = getattr(layer, "_weight_scope", None)
        return "/".join(part for part in (scope, layer.name, self._name) if part)

    @property
    def trainable(self):
        """Whether the optimizer updates this weight: its layer's ``trainable`` flag (for a
        variable of your own, the flag it was made with)."""
        return self._trainable if self._layer is None else bool(self._layer.trainable)

    @trainable.setter
    def trainable(self, value):
        if self._layer is None:
            self._trainable = bool(value)
            return
        raise AttributeError(
            f"Variable {self.path!r}: npnet trains a layer's weights all or none; set the layer's "
            f"flag instead (layer.trainable = {bool(value)}), then compile again")

    @property
    def value(self):
        """The weight's storage as a plain ndarray (a view, not a copy)."""
        return self.view(np.ndarray)

    def numpy(self):
        """A plain ndarray copy of the current value (changing it leaves the weight as it is)."""
        return np.array(self.view(np.ndarray))

    def assign(self, value):
        """Write ``value`` (same shape, a number type) into this weight, in place; returns the
        value assigned, as a plain array. Nothing changes when the value is refused."""
        converted = self._checked(value)
        np.copyto(self.view(np.ndarray), converted)
        return converted

    def assign_add(self, value):
        """``assign(self + value)``: ``value`` may broadcast to the weight's shape."""
        return self.assign(self.view(np.ndarray) + self._cast(value, "assign_add"))

    def assign_sub(self, value):
        """``assign(self - value)``: ``value`` may broadcast to the weight's shape."""
        return self.assign(self.view(np.ndarray) - self._cast(value, "assign_sub"))

    def _cast(self, value, what):
        """``value`` as a new array of the weight's dtype, or TypeError for a type that does not cast."""
        array = np.asarray(plain(value))
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"Variable {self.path!r}: {what} expects numbers that cast to the variable's "
                            f"dtype {self.dtype}; received dtype {array.dtype}. Nothing was changed.")
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(array, dtype=self.dtype)

    def _checked(self, value, what="assign"):
        """The value ``assign`` (or ``set_weights``) writes: cast, and checked against shape,
        finiteness and the layer."""
        converted = self._cast(value, what)
        if converted.shape != self.shape:
            raise ValueError(f"Variable {self.path!r}: {what} expects a value of the variable's shape "
                             f"{self.shape}; received shape {converted.shape}. Nothing was changed.")
        if converted.dtype.kind == "f" and not np.isfinite(converted).all():
            raise ValueError(f"Variable {self.path!r}: {what} received NaN or infinite values (after "
                             f"casting to {self.dtype}); expected finite numbers. Nothing was changed.")
        if self._layer is not None:
            self._layer.check_weights({self._name: converted})
        return converted

    # -- results of computing with a Variable are plain ndarrays ---------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        inputs = tuple(_plain_arguments(x) for x in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain_arguments(o) for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is None:
            return result
        # In place (kernel -= g): return the Variables that were written, not their views.
        if isinstance(result, tuple):
            return tuple(o if r is p else r for r, p, o in zip(result, kwargs["out"], out))
        return out[0] if result is kwargs["out"][0] else result

    def __array_function__(self, func, types, args, kwargs):
        out = kwargs.get("out")
        plain_out = _plain_arguments(out)
        args = _plain_arguments(args)
        kwargs = {key: _plain_arguments(value) for key, value in kwargs.items()}
        result = func(*args, **kwargs)
        if isinstance(out, Variable) and result is plain_out:
            return out
        return result

    def __getitem__(self, index):
        return self.view(np.ndarray)[index]

    def copy(self, order="C"):
        return self.view(np.ndarray).copy(order)

    def astype(self, *args, **kwargs):
        return self.view(np.ndarray).astype(*args, **kwargs)

    def view(self, *args, **kwargs):
        if not args and not kwargs:
            return np.ndarray.view(self, np.ndarray)
        return np.ndarray.view(self, *args, **kwargs)

    @property
    def T(self):
        return self.view(np.ndarray).T

    @property
    def mT(self):
        return self.view(np.ndarray).mT

    @property
    def flat(self):
        return self.view(np.ndarray).flat

    def __iter__(self):
        return iter(self.view(np.ndarray))

    def __copy__(self):
        return self._copied(self._layer)

    def __deepcopy__(self, memo):
        return self._copied(copy.deepcopy(self._layer, memo))

    def _copied(self, layer):
        twin = Variable._of_layer(np.array(self.view(np.ndarray)), self._name, layer)
        twin._trainable, twin.autocast = self._trainable, self.autocast
        twin.aggregation, twin.synchronization = self.aggregation, self.synchronization
        return twin

    def __reduce__(self):
        return (_restored, (self.view(np.ndarray), self._name, self._layer, self._trainable))

    def __repr__(self):
        value = np.array2string(self.view(np.ndarray), separator=" ")
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, value={value}>"

    __str__ = __repr__


def _plain_method(name):
    method = getattr(np.ndarray, name)

    def plain_result(self, *args, **kwargs):
        return method(self.view(np.ndarray), *args, **kwargs)

    plain_result.__name__ = name
    plain_result.__doc__ = method.__doc__
    return plain_result


# The ndarray methods that return views or new arrays without going through a ufunc.
for _name in ("reshape", "ravel", "flatten", "transpose", "squeeze", "swapaxes", "diagonal", "take",
              "repeat", "dot", "argmax", "argmin", "argsort", "nonzero", "compress", "choose",
              "searchsorted", "round", "trace", "tolist", "tobytes", "item"):
    setattr(Variable, _name, _plain_method(_name))
del _name


def _restored(array, name, layer, trainable=True):
    """Unpickling: the Variable again, with storage of its own."""
    variable = Variable._of_layer(np.array(array), name, layer)
    variable._trainable = trainable
    return variable


def as_variable(array, name, layer):
    """``array`` as a Variable of ``layer`` named ``name``, sharing its storage (no copy); an
    array that already is this layer's Variable of that name is returned as it is."""
    if isinstance(array, Variable) and array._layer is layer and array._name == name:
        return array
    return Variable._of_layer(plain(array), name, layer)


def _initial_value(initializer, shape, dtype):
    """The value ``keras.Variable(initializer, shape, dtype)`` starts from, as a new array."""
    from . import config, initializers

    if dtype is not None:
        try:
            dtype = np.dtype(getattr(dtype, "name", dtype))
        except TypeError:
            raise TypeError(f"npnet.Variable: dtype must name a NumPy number type such as 'float32'; "
                            f"received dtype={dtype!r}") from None
    if isinstance(initializer, str) or callable(initializer):
        fill = initializers.get(initializer)
        if shape is None:
            raise ValueError(f"npnet.Variable: an initializer needs the shape to fill, e.g. "
                             f"npnet.Variable({initializer!r}, shape=(3, 3)); received shape=None")
        shape = _checked_shape(shape)
        value = np.array(fill(shape, dtype or np.dtype(config.floatx())), dtype=dtype or config.floatx())
        if value.shape != shape:
            raise ValueError(f"npnet.Variable: the initializer gave shape {value.shape}; expected {shape}")
    else:
        value = np.array(plain(initializer), dtype=dtype)
        if dtype is None and not isinstance(initializer, (np.ndarray, np.generic)):
            # Python numbers convert as Keras converts them: floats to floatx, ints to int32
            value = value.astype({"f": config.floatx(), "i": "int32"}.get(value.dtype.kind, value.dtype))
        if shape is not None and value.shape != _checked_shape(shape):
            raise ValueError(f"npnet.Variable: the initial value has shape {value.shape}, but "
                             f"shape={tuple(shape)} was given; expected the value's shape or shape=None")
    if value.dtype.kind not in "biuf":
        raise TypeError(f"npnet.Variable holds numbers; received a value of dtype {value.dtype}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError("npnet.Variable: the initial value holds NaN or infinite numbers; expected "
                         "finite ones (npnet refuses them in assign too)")
    return value


def _checked_shape(shape):
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"npnet.Variable: shape must be a tuple of sizes, e.g. (3, 3), with no None; "
                         f"received shape={shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"npnet.Variable: shape sizes must be >= 0; received shape={shape!r}")
    return dims


def _variable_name(name):
    """``name``, or Keras's automatic ``variable``, ``variable_1``, ... (restarted by
    ``npnet.backend.clear_session()``, as layer names are)."""
    if name is None:
        from .layers import _name_counts
        count = _name_counts["variable"]
        _name_counts["variable"] += 1
        return "variable" if count == 0 else f"variable_{count}"
    if not isinstance(name, str) or "/" in name:
        raise ValueError(f"npnet.Variable: name must be a string without '/', as in Keras; received name={name!r}")
    return name


def _one_of(value, what, allowed):
    if value not in allowed:
        raise ValueError(f"npnet.Variable: {what} must be one of {', '.join(map(repr, allowed))}; "
                         f"received {what}={value!r}")
    return "none" if value is None else value
