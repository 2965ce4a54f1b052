"""Layers: Flatten, Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout (and Normalization, from
:mod:`npnet.preprocessing`), with Keras's names, shapes and defaults.

A layer is a small object holding its parameters (``layer.params``, an ordered dict of
arrays, e.g. ``{"kernel": ..., "bias": ...}``, each stored as a :class:`npnet.variables.Variable`:
an ndarray that also has Keras's ``assign``, ``numpy()``, ``name`` and ``path``) and two methods:

* ``forward(x, training) -> (y, cache)`` — the output and whatever backward will need;
* ``backward(dL_dy, cache) -> (dL_dx, grads)`` — the gradient for the layer below and a dict
  of parameter gradients with the same keys as ``params``.

Nothing is left on ``self`` between the two calls: the cache travels explicitly, so one
layer object can be run on several batches (or by a gradient check) without confusion.
Weights are created on first use (``build``), from the shape of the first input, or at
once when ``input_shape`` is given — as in Keras.
"""

import collections
import contextlib
import contextvars
import functools
import math
import re

import numpy as np

from . import activations as activations_module
from . import config, initializers, regularizers, utils, validation, variables
from . import functional as F
from .symbolic import Input, InputLayer  # noqa: F401  (keras.layers.Input too)
from .utils import format_shape

_name_counts = collections.Counter()

#: What Dense, ReLU and Softmax keep for backward: the input ``x``, the pre-activation ``z``
#: (the input itself for ReLU and Softmax) and the activation ``a``.
ActivationCache = collections.namedtuple("ActivationCache", ["x", "z", "a"])


def _default_name(cls):
    """``Dense`` -> ``dense``, ``dense_1``, ... and ``ReLU`` -> ``re_lu``, as Keras names layers."""
    base = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls.__name__)  # Keras's to_snake_case
    return next_name(re.sub("([a-z])([A-Z])", r"\1_\2", base).lower())


def next_name(base):
    """``base``, then ``base_1``, ``base_2``...: the next of Keras's numbered names (restarted
    by ``npnet.backend.clear_session``)."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _refuse_result_attribute(layer, which):
    raise AttributeError(
        f"layer.{which} is the symbolic tensor of the layer's first call in a functional model (as "
        f"in Keras) and cannot be assigned. Keep what forward computes in the cache it returns "
        f"(forward(x, training) -> (y, cache)), which backward receives, not on the layer "
        f"({type(layer).__name__} {layer.name!r})")


class Layer:
    """Base class: parameters, shape bookkeeping, weights exchange and configuration.

    A layer of your own subclasses it and defines ``forward`` and ``backward`` (the contract
    in this module's docstring), creating its parameters in ``build`` (with
    :meth:`add_weight`, as in Keras, or by filling ``self.params``). Keras's ``call`` alone
    is refused when the layer is created: npnet has no automatic differentiation, so it
    cannot find the backward pass of a ``call``.
    """

    def __init__(self, *, name=None, input_shape=None, trainable=True, dtype=None, **keras_only):
        _refuse_call_only(type(self))
        _refuse_keras_only(type(self).__name__, keras_only, _KERAS_ONLY_LAYER)
        _check_layer_dtype(type(self).__name__, dtype)
        self.name = name if name is not None else _default_name(type(self))
        self._weight_scope = None  # a Sequential model's name, when that model builds the layer
        self.params = {}  # made a _Params, whose arrays are Variables (see __setattr__)
        self._added_weights = {}  # attribute -> params key, for ``self.w = self.add_weight(...)``
        self._added_regularizers = {}  # params key -> regularizer given to add_weight
        self.built = False
        #: False freezes the layer's weights: no gradient, no update (as in Keras). Change it
        #: before ``compile``; a compiled model must be compiled again to see the change.
        self.trainable = bool(trainable)
        self.input_shape = None  # with the batch dimension, e.g. (None, 28, 28)
        self._declared_input_shape = None
        if input_shape is not None:
            try:
                shape = tuple(int(d) for d in input_shape)
            except (TypeError, ValueError):
                raise TypeError(
                    f"input_shape must be a tuple of positive integers without the batch "
                    f"dimension, e.g. (28, 28); received {input_shape!r}"
                ) from None
            if not shape or any(d <= 0 for d in shape):
                raise ValueError(
                    f"input_shape must be a tuple of positive integers without the batch "
                    f"dimension, e.g. (28, 28); received {input_shape!r}"
                )
            self._declared_input_shape = (None,) + shape

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _marking_built(cls.__dict__["build"])
        if cls.compute_output_shape is Layer.compute_output_shape and not cls.__module__.startswith("npnet."):
            cls.compute_output_shape = _probed_output_shape  # a user's layer may change the shape

    # -- shapes and building --------------------------------------------------------------

    def build(self, input_shape):
        """Create the parameters for inputs of ``input_shape`` (batch dimension first).

        A subclass's ``build`` need not call this one (Keras code seldom does): the layer is
        marked built, with its input shape, when it returns.
        """
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -- the computation ------------------------------------------------------------------

    def forward(self, x, training=False):
        raise NotImplementedError(
            f"Layer class {type(self).__name__} defines no forward(self, x, training=False) -> "
            f"(y, cache): {_LAYER_RECIPE}")

    def backward(self, dL_dy, cache, need_input_grad=True):
        raise NotImplementedError(
            f"Layer class {type(self).__name__} defines no backward(self, dL_dy, cache, "
            f"need_input_grad=True) -> (dL_dx, grads), which training needs: {_LAYER_RECIPE}")

    def __call__(self, x, training=None):
        """Apply the layer to an array, building it first if needed (like ``keras_layer(x)``);
        ``training=True`` runs it in training mode (Dropout drops), False or None is inference.

        On a symbolic tensor (``npnet.Input``), record the layer for ``npnet.Model`` instead.
        """
        from . import symbolic

        if isinstance(x, symbolic.SymbolicTensor):
            return symbolic.apply_layer(self, x)
        x = np.asarray(x, dtype=config.floatx())
        if not self.built:
            self.build((None,) + x.shape[1:])
        self._check_call_input(x.shape)
        return self.forward(x, training=training)[0]

    def _check_call_input(self, shape):
        """Refuse, with a clear error, an input of a shape the built layer cannot take (a
        layer with no such limit takes any)."""

    # -- the symbolic tensors of the functional API ----------------------------------------

    @property
    def input(self):
        """The symbolic tensor this layer was first called on (see :mod:`npnet.symbolic`)."""
        from . import symbolic
        return symbolic.layer_tensor(self, "input")

    @property
    def output(self):
        """The symbolic tensor of this layer's first call, e.g. for feature extraction:
        ``npnet.Model(model.inputs, model.get_layer("hidden").output)``."""
        from . import symbolic
        return symbolic.layer_tensor(self, "output")

    @input.setter
    def input(self, value):
        _refuse_result_attribute(self, "input")

    @output.setter
    def output(self, value):
        _refuse_result_attribute(self, "output")

    # -- weights --------------------------------------------------------------------------

    @property
    def weights(self):
        """The parameters themselves (not copies), in Keras's order: Variables, i.e. ndarrays
        with Keras's ``assign``, ``numpy()``, ``name``, ``path`` (see :mod:`npnet.variables`)."""
        return list(self.params.values())

    @property
    def trainable_weights(self):
        """The weights training updates: all of them while the layer is trainable, else none."""
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        """The weights training leaves alone: all of them when the layer is frozen, else none."""
        return [] if self.trainable else self.weights

    # Keras 3's names for the same lists
    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def count_params(self):
        return int(sum(p.size for p in self.params.values()))

    def weight_regularizers(self):
        """``{parameter name: regularizer}`` for the parameters whose penalty joins the loss
        (here: the ``regularizer`` arguments of :meth:`add_weight`)."""
        return dict(self._added_regularizers)

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, regularizer=None,
                   constraint=None, name=None, **keras_only):
        """Create a parameter, as Keras's ``add_weight``, and return it (a Variable, an ndarray).

        The array becomes ``self.params[name]`` (``name`` defaults to ``variable``,
        ``variable_1``, ... as in Keras), so it is trained, saved and exchanged like Dense's
        kernel: ``backward`` returns its gradient under the same key. ``shape`` defaults to a
        scalar, ``initializer`` to ``'glorot_uniform'`` (Keras's default; any name
        :func:`npnet.initializers.get` knows), ``dtype`` to ``npnet.config.floatx()``.
        ``regularizer`` joins the loss as a Dense's ``kernel_regularizer`` does. Assigned to
        an attribute (``self.w = self.add_weight(...)``), the attribute reads
        ``self.params[name]`` from then on, so it follows when npnet replaces the array (a
        gradient check computes with a float64 copy). npnet trains a layer's weights all or
        none (``layer.trainable``), so ``trainable=False`` and constraints are refused.
        """
        if isinstance(shape, str):
            raise ValueError(f"add_weight: name must be given as a keyword argument (as in Keras 3); "
                             f"received add_weight({shape!r}, ...). Write add_weight(shape=..., name={shape!r})")
        _refuse_keras_only("add_weight", keras_only, _KERAS_ONLY_ADD_WEIGHT)
        if not trainable or constraint is not None:
            raise NotImplementedError(
                f"Layer {self.name!r}: add_weight(trainable=False) and constraints are not available: "
                "npnet trains all of a layer's weights or none (layer.trainable = False freezes the "
                "layer); keep a fixed array as a plain attribute (self.table = np.array(...)), "
                "which backward returns no gradient for")
        key = self._new_weight_name(name)
        self.params[key] = utils.aligned_copy(self._initial_weight(shape, initializer, dtype, key))
        if regularizer is not None:
            self._added_regularizers[key] = regularizers.get(regularizer)
        return self.params[key]

    def _new_weight_name(self, name):
        if name is None:
            count = len(self.params)
            name = "variable" if count == 0 else f"variable_{count}"
        if name in self.params:
            raise ValueError(f"Layer {self.name!r} already has a weight named {name!r}; "
                             f"its weights are {list(self.params)}")
        return str(name)

    def _initial_weight(self, shape, initializer, dtype, key):
        """The first value of ``add_weight``'s array, checked."""
        floatx = config.floatx()
        if dtype is not None and np.dtype(dtype).name != floatx:
            raise ValueError(f"Layer {self.name!r}: add_weight dtype must be npnet's float type, "
                             f"{floatx} (npnet.config.set_floatx changes it); received dtype={dtype!r}")
        try:
            shape = () if shape is None else tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise TypeError(f"Layer {self.name!r}: add_weight shape must be a tuple of integers, e.g. "
                            f"(input_shape[-1], self.units); received {shape!r} for {key!r}") from None
        _spend_parameters(self, key, shape)
        make = initializers.get("glorot_uniform" if initializer is None else initializer)
        return _initialized(self, key, make(shape, floatx), shape, floatx)

    def __setattr__(self, attribute, value):
        if attribute == "params" and isinstance(value, dict):
            # Whatever fills the dict (build, add_weight, a FunctionLayer, a gradient check's
            # float64 copies), its arrays become this layer's Variables, sharing their storage.
            if not (isinstance(value, _Params) and value._layer is self):
                value = _Params(self, value)
        aliases = self.__dict__.get("_added_weights")
        if aliases is not None:
            aliases.pop(attribute, None)
            key = next((k for k, p in self.__dict__.get("params", {}).items() if p is value), None)
            if key is not None and isinstance(value, np.ndarray):
                aliases[attribute] = key
                self.__dict__.pop(attribute, None)
                return
        super().__setattr__(attribute, value)

    def __getattr__(self, attribute):
        if attribute in ("input", "output"):  # keep the property's explanation, not a bare "no attribute"
            from . import symbolic
            return symbolic.layer_tensor(self, attribute)
        # Only called when normal lookup fails: the attributes add_weight's arrays were given.
        key = self.__dict__.get("_added_weights", {}).get(attribute)
        if key is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
        return self.params[key]

    @property
    def losses(self):
        """Keras's ``layer.losses``: the penalty of each weight regularizer at the current
        weights (scalars, in the order of ``weight_regularizers``); ``[]`` before ``build``."""
        if not self.built:
            return []
        return [regularizer(self.params[name]) for name, regularizer in self.weight_regularizers().items()]

    def get_weights(self):
        """Copies of the parameters as plain ndarrays, in Keras's order (Dense: ``[kernel, bias]``)."""
        return [np.array(variables.plain(p)) for p in self.params.values()]

    def set_weights(self, weights):
        """Replace the parameter values in place (so optimizer state, bound kernels and any
        ``layer.kernel`` held elsewhere stay attached), after checking every value."""
        weights = [np.asarray(variables.plain(w)) for w in weights]
        expected = [p.shape for p in self.params.values()]
        received = [w.shape for w in weights]
        if expected != received:
            raise ValueError(
                f"Layer {self.name!r} expects weights of shapes {expected}; received {received}"
            )
        # Every value cast before any is written: a refused one leaves all weights as they were.
        converted = [variable._checked(value, "set_weights") if isinstance(variable, variables.Variable)
                     else np.asarray(value) for variable, value in zip(self.params.values(), weights)]
        self.check_weights(dict(zip(self.params, converted)))
        for param, value in zip(self.params.values(), converted):
            np.copyto(variables.plain(param), value, casting="same_kind")

    def check_weights(self, values):
        """Refuse ``{name: array}`` values this layer cannot compute with (before any is set)."""

    # -- configuration, for save/load and summary -----------------------------------------

    def get_config(self):
        config_ = {"name": self.name}
        if not self.trainable:
            config_["trainable"] = False
        if self._declared_input_shape is not None:
            config_["input_shape"] = list(self._declared_input_shape[1:])
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class _Params(dict):
    """A layer's ``{name: weight}``: every ndarray stored in it becomes a
    :class:`~npnet.variables.Variable` of the layer, a view of the same storage (no copy)."""

    def __init__(self, layer, items=()):
        super().__init__()
        self._layer = layer
        self.update(items)

    def __setitem__(self, key, value):
        layer = getattr(self, "_layer", None)  # unset while unpickling: the items are Variables already
        if layer is not None and isinstance(value, np.ndarray):
            value = variables.as_variable(value, key, layer)
        super().__setitem__(key, value)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


def _marking_built(build):
    """``build`` followed by marking the layer built for ``input_shape``, unless it did so
    itself: a Keras-style ``build`` that only calls ``add_weight`` must not run twice."""
    @functools.wraps(build)
    def build_and_mark(self, input_shape):
        build(self, input_shape)
        if not self.built:
            Layer.build(self, input_shape)
    return build_and_mark


def _probed_output_shape(layer, input_shape):
    """The output shape of a user's layer that does not say it (Keras finds it by tracing
    ``call``): ``forward`` run on one sample of zeros, building the layer first if needed."""
    if not layer.built:
        layer.build(input_shape)
    probe = np.zeros((1,) + tuple(input_shape[1:]), dtype=config.floatx())
    y, _ = layer.forward(probe)
    return (input_shape[0],) + np.shape(y)[1:]


#: How a layer of your own computes in npnet, for the errors about ``call``/``forward``.
_LAYER_RECIPE = (
    "an npnet layer computes with forward(self, x, training=False) -> (y, cache) and "
    "backward(self, dL_dy, cache, need_input_grad=True) -> (dL_dx, grads), grads a dict with "
    "the keys of self.params (npnet has no automatic differentiation, so you write the "
    "backward pass); or wrap two functions in npnet.layers.FunctionLayer(forward, backward, "
    "params) (see npnet.exercises)")


def _refuse_call_only(cls):
    """Refuse a Keras-style layer class that defines ``call`` but no ``forward``: npnet would
    only find out in ``fit``, which calls the missing ``forward``/``backward``."""
    if cls.forward is Layer.forward and getattr(cls, "call", None) is not None:
        raise NotImplementedError(
            f"Layer class {cls.__name__} defines call(), Keras's method, which npnet does not "
            f"run: {_LAYER_RECIPE}. Move call's body into forward and add backward.")


class Flatten(Layer):
    """Reshape each sample to a vector: (n, 28, 28) -> (n, 784). No parameters.

    ``data_format``: Keras's ``None`` or ``'channels_last'`` (the same thing for npnet, which has
    no image layers to order channels for)."""

    def __init__(self, data_format=None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten(data_format={data_format!r}) is not supported by npnet: it flattens "
                             "each sample in its own order (data_format=None or 'channels_last')")
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:], dtype=np.int64)))

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dL_dy, cache, need_input_grad=True):
        input_shape = cache
        dL_dx = dL_dy.reshape(input_shape) if need_input_grad else None
        return dL_dx, {}


class Dense(Layer):
    """A fully connected layer: ``a = activation(x @ kernel + bias)``.

    ``kernel`` (d_in, units) starts glorot-uniform and ``bias`` (units,) at zero, with the
    Keras names, shapes and order, so ``get_weights()`` lists line up with a Keras Dense;
    ``use_bias=False`` leaves the bias out (``a = activation(x @ kernel)``).
    """

    def __init__(self, units, activation=None, use_bias=True, *, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_shape=None, name=None, trainable=True, input_dim=None, **keras_only):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive integer; received {units!r}")
        if not isinstance(use_bias, (bool, np.bool_)):
            raise ValueError(f"Dense use_bias must be True or False; received {use_bias!r}")
        _refuse_keras_only("Dense", {k: v for k, v in keras_only.items() if k in _KERAS_ONLY})
        self.use_bias = bool(use_bias)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)  # Keras's older spelling
        super().__init__(name=name, input_shape=input_shape, trainable=trainable,
                         **{k: v for k, v in keras_only.items() if k not in _KERAS_ONLY})
        self.units = int(units)
        self.activation = activations_module.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def weight_regularizers(self):
        """The penalised weights, kernel first (the order of Keras's ``layer.losses``); a
        ``bias_regularizer`` without a bias (``use_bias=False``) penalises nothing, as in Keras."""
        found = {"kernel": self.kernel_regularizer, "bias": self.bias_regularizer if self.use_bias else None}
        return {name: regularizer for name, regularizer in found.items() if regularizer is not None}

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"Dense layer {self.name!r} expects 2-D input (batch, features); received "
                f"shape {format_shape(input_shape)}. Add a Flatten layer before it."
            )
        d_in = int(input_shape[-1])
        dtype = config.floatx()
        # Aligned copies: the weights start on a cache line, so vector loads never straddle two.
        try:
            kernel = utils.aligned_copy(_initialized(self, "kernel", self.kernel_initializer((d_in, self.units), dtype),
                                                     (d_in, self.units), dtype))
            bias = utils.aligned_copy(_initialized(self, "bias", self.bias_initializer((self.units,), dtype),
                                                   (self.units,), dtype)) if self.use_bias else None
        except MemoryError:
            size = d_in * self.units * np.dtype(dtype).itemsize
            raise MemoryError(f"Dense layer {self.name!r} cannot be built: its kernel of shape "
                              f"({d_in}, {self.units}) needs {size / 2**30:,.1f} GiB of {dtype}, more "
                              "than this machine can allocate; use fewer units") from None
        self.params["kernel"] = kernel
        if bias is not None:
            self.params["bias"] = bias
        super().build(input_shape)

    def _check_call_input(self, shape):
        kernel = self.params.get("kernel")
        features = None if kernel is None or kernel.ndim != 2 else kernel.shape[0]
        if features is not None and (len(shape) != 2 or shape[-1] != features):
            raise ValueError(f"Input of Dense layer {self.name!r} is incompatible with it: expected shape "
                             f"(batch, {features}), as it was built; received {format_shape(shape)}")

    @property
    def kernel(self):
        return self.params["kernel"]

    @property
    def bias(self):
        """The bias Variable; None with ``use_bias=False`` (as Keras's ``layer.bias``)."""
        return self.params.get("bias")

    def forward(self, x, training=False):
        z = F.dense_forward(x, variables.plain(self.params["kernel"]), variables.plain(self.params.get("bias")))
        a = self.activation.forward(z)
        return a, ActivationCache(x, z, a)

    def backward(self, dL_da, cache, need_input_grad=True):
        x, z, a = cache
        dL_dz = self.activation.backward(dL_da, z, a)
        return self.backward_from_pre_activation(dL_dz, cache, need_input_grad)

    def backward_from_pre_activation(self, dL_dz, cache, need_input_grad=True):
        """Backward from the gradient w.r.t. the pre-activation ``z`` (skipping the activation).

        Used when the loss hands over ``dL_dz`` directly: softmax + cross-entropy.
        """
        x, z, a = cache
        dL_dx, dL_dkernel, dL_dbias = F.dense_backward(dL_dz, x, variables.plain(self.params["kernel"]), need_input_grad)
        return dL_dx, ({"kernel": dL_dkernel, "bias": dL_dbias} if self.use_bias else {"kernel": dL_dkernel})

    def get_config(self):
        config_ = super().get_config()
        config_.update(units=self.units, activation=self.activation.name)
        if not self.use_bias:
            config_["use_bias"] = False
        for key, init in (("kernel_initializer", self.kernel_initializer),
                          ("bias_initializer", self.bias_initializer)):
            serialized = initializers.serialize(init)
            if serialized is not None:
                config_[key] = serialized
        for key, regularizer in (("kernel_regularizer", self.kernel_regularizer),
                                 ("bias_regularizer", self.bias_regularizer)):
            if regularizer is not None:
                config_[key] = regularizers.serialize(regularizer)
        return config_


#: Keras Dense arguments npnet has only at their defaults, with what to do instead.
_KERAS_ONLY = {
    "activity_regularizer": (None, "penalise weights instead (kernel_regularizer, bias_regularizer)"),
    "kernel_constraint": (None, "npnet has no weight constraints"),
    "bias_constraint": (None, "npnet has no weight constraints"),
    "lora_rank": (None, "npnet has no LoRA"),
}


#: Keras arguments of every layer npnet has only at their defaults (``dtype``: see
#: :func:`_check_layer_dtype`).
_KERAS_ONLY_LAYER = {
    "autocast": (True, "npnet computes in one float type (npnet.config.floatx())"),
}


def _check_layer_dtype(layer, dtype):
    """A layer's ``dtype`` may only name the float type npnet computes every layer in."""
    if dtype is None:
        return
    try:
        name = np.dtype(getattr(dtype, "name", dtype)).name
    except TypeError:
        name = None
    if name != config.floatx():
        raise ValueError(f"{layer}(dtype={dtype!r}) is not supported by npnet: every layer computes in "
                         f"floatx, {config.floatx()!r}; call npnet.config.set_floatx(...) with 'float32' or "
                         "'float64' before making the model instead")


#: Keras ``add_weight`` arguments npnet has only at their defaults.
_KERAS_ONLY_ADD_WEIGHT = {
    "autocast": (True, "npnet computes in one float type (npnet.config.floatx())"),
    "aggregation": ("none", "npnet trains on one device"),
    "overwrite_with_gradient": (False, "the optimizer updates every weight"),
}


def _refuse_keras_only(layer, arguments, known=_KERAS_ONLY):
    """Refuse, by name, a Keras argument npnet does not have or has only at its default."""
    for key, value in arguments.items():
        if key not in known:
            raise TypeError(f"{layer} got an unexpected keyword argument {key!r}")
        default, instead = known[key]
        if not (value is default or (isinstance(value, (bool, np.bool_, str)) and value == default)):
            raise ValueError(f"{layer}({key}={value!r}) is not supported by npnet: {instead}")


class ReLU(Layer):
    """The ReLU activation as a layer of its own: ``Dense(128) + ReLU()`` is ``Dense(128, 'relu')``.

    Keras's arguments: ``max_value`` (None: no cap), ``negative_slope`` (0: plain ReLU) and
    ``threshold`` (0), all non-negative; see :func:`npnet.functional.relu_forward_general`.
    Its cache is ``(x, z, a)`` like Dense's, with the pre-activation ``z`` being the input ``x``.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, *, input_shape=None,
                 name=None, trainable=True, **keras_only):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **keras_only)
        self.max_value = None if max_value is None else _non_negative("ReLU", "max_value", max_value)
        self.negative_slope = _non_negative("ReLU", "negative_slope", negative_slope)
        self.threshold = _non_negative("ReLU", "threshold", threshold)

    def _options(self):
        return {"negative_slope": self.negative_slope, "max_value": self.max_value,
                "threshold": self.threshold}

    def _is_plain(self):
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def forward(self, x, training=False):
        a = F.relu_forward(x) if self._is_plain() else F.relu_forward_general(x, **self._options())
        return a, ActivationCache(x, x, a)

    def backward(self, dL_da, cache, need_input_grad=True):
        if not need_input_grad:
            return None, {}
        _, z, a = cache
        if self._is_plain():
            return F.relu_backward(dL_da, z, a), {}
        return F.relu_backward_general(dL_da, z, a, **self._options()), {}

    def get_config(self):
        config_ = super().get_config()
        config_.update(self._options())
        return config_


#: The parameters ``add_weight`` may still create, as a one-item list, while npnet.saving
#: builds a layer of the caller's own class from a file (see :func:`parameter_budget`).
_parameter_budget = contextvars.ContextVar("npnet_parameter_budget", default=None)


class TooManyParameters(ValueError):
    """``add_weight`` asked for more parameters than the model being loaded may have."""


@contextlib.contextmanager
def parameter_budget(count):
    """Inside this block ``add_weight`` refuses, before allocating, any weight that would take
    the parameters it created beyond ``count``. Loading builds a file's layers of the caller's
    own classes inside one, so numbers in a file cannot make them allocate without bound."""
    token = _parameter_budget.set([int(count)])
    try:
        yield
    finally:
        _parameter_budget.reset(token)


def _spend_parameters(layer, key, shape):
    budget = _parameter_budget.get()
    if budget is None:
        return
    count = math.prod(shape)
    if count > budget[0]:
        raise TooManyParameters(f"layer {layer.name!r} ({type(layer).__name__}) asks add_weight for {key!r} "
                                f"of shape {format_shape(shape)}, {count:,} parameters; the model may have "
                                f"{budget[0]:,} more")
    budget[0] -= count


def _initialized(layer, key, values, shape, dtype):
    """An initializer's ``values`` for ``layer``'s weight ``key`` as an array of ``dtype``,
    checked: of the ``shape`` asked for, and finite (a callable initializer may return anything)."""
    try:
        with np.errstate(over="ignore"):  # a float64 1e39 becomes inf: refused below
            array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"Layer {layer.name!r}: the initializer of {key!r} must return numbers; received "
                        f"{type(values).__name__}") from None
    if array.shape != tuple(shape):
        raise ValueError(f"Layer {layer.name!r}: the initializer of {key!r} must return shape "
                         f"{format_shape(shape)}; received {format_shape(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Layer {layer.name!r}: the initializer of {key!r} returned inf or NaN (in {dtype}); "
                         "expected finite starting weights")
    return array


def _non_negative(layer, argument, value):
    """``value`` as a float when it is a non-negative number, finite in floatx, else Keras's
    kind of error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{argument} of a {layer} layer must be a non-negative number; "
                         f"received {argument}={value!r}")
    if not validation.finite_in(value):
        raise ValueError(f"{argument} of a {layer} layer must be finite in {config.floatx()}, the type the "
                         f"layer computes in; received {argument}={value!r}")
    return float(value)


class LeakyReLU(Layer):
    """``a = x`` for x > 0, ``negative_slope · x`` otherwise; Keras 3's default slope is 0.3
    (the function ``activations.leaky_relu`` defaults to 0.2, as in Keras)."""

    def __init__(self, negative_slope=0.3, *, input_shape=None, name=None, trainable=True, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name for it, still accepted by Keras 3
            negative_slope = kwargs.pop("alpha")
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **kwargs)
        self.negative_slope = _non_negative("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x, training=False):
        a = F.leaky_relu_forward(x, self.negative_slope)
        return a, ActivationCache(x, x, a)

    def backward(self, dL_da, cache, need_input_grad=True):
        _, z, a = cache
        return (F.leaky_relu_backward(dL_da, z, a, self.negative_slope) if need_input_grad else None), {}

    def get_config(self):
        config_ = super().get_config()
        config_["negative_slope"] = self.negative_slope
        return config_


class Activation(Layer):
    """Applies an activation as a layer: ``Activation('relu')``, ``Activation('softmax')``.

    ``activation`` is anything :func:`npnet.activations.get` resolves. As after a Dense layer
    with that activation, a final ``Activation('softmax')`` (or ``'sigmoid'``) hands its
    logits to a cross-entropy loss (see :mod:`npnet.heads`).
    """

    def __init__(self, activation, *, input_shape=None, name=None, trainable=True, **keras_only):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **keras_only)
        self.activation = activations_module.get(activation)

    def forward(self, x, training=False):
        a = self.activation.forward(x)
        return a, ActivationCache(x, x, a)

    def backward(self, dL_da, cache, need_input_grad=True):
        _, z, a = cache
        return (self.activation.backward(dL_da, z, a) if need_input_grad else None), {}

    def backward_from_pre_activation(self, dL_dz, cache, need_input_grad=True):
        """The loss handed over the gradient w.r.t. this layer's input: pass it on."""
        return (dL_dz if need_input_grad else None), {}

    def get_config(self):
        config_ = super().get_config()
        config_["activation"] = self.activation.name
        return config_


class Softmax(Layer):
    """Row-wise softmax as a layer: (n, k) logits -> (n, k) probabilities.

    As in Keras, a cross-entropy loss after a final Softmax layer is computed from the
    logits (see :mod:`npnet.heads`), exactly as after
    ``Dense(k, activation='softmax')``. Only Keras's default ``axis=-1`` exists for the 2-D
    inputs npnet's layers produce (``axis=1`` is the same axis).
    """

    def __init__(self, axis=-1, *, input_shape=None, name=None, trainable=True, **keras_only):
        if axis not in (-1, 1):
            raise ValueError(f"Softmax in npnet normalises the last axis of (batch, classes) "
                             f"inputs: axis must be -1 (or 1); received axis={axis!r}")
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **keras_only)
        self.axis = -1

    def get_config(self):
        config_ = super().get_config()
        config_["axis"] = self.axis
        return config_

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Softmax layer {self.name!r} expects 2-D input (batch, classes); "
                             f"received shape {format_shape(input_shape)}")
        super().build(input_shape)

    def forward(self, x, training=False):
        p = F.softmax_forward(x)
        return p, ActivationCache(x, x, p)

    def backward(self, dL_dp, cache, need_input_grad=True):
        _, z, p = cache
        return (F.softmax_backward(dL_dp, z, p) if need_input_grad else None), {}

    def backward_from_pre_activation(self, dL_dz, cache, need_input_grad=True):
        """The loss handed over the gradient w.r.t. this layer's input, the logits: pass it on."""
        return (dL_dz if need_input_grad else None), {}


class Dropout(Layer):
    """Inverted dropout, as ``keras.layers.Dropout``: in training, each unit is zeroed with
    probability ``rate`` and the others are scaled by ``1 / (1 - rate)``; at inference it is
    the identity. ``fit``'s training step runs layers with ``training=True``, as do
    ``model(x, training=True)`` and ``layer(x, training=True)``.

    The masks are drawn from npnet's generator (so ``npnet.utils.set_random_seed`` makes them
    reproducible), or from the layer's own generator when ``seed`` is given.
    """

    def __init__(self, rate, noise_shape=None, seed=None, *, input_shape=None, name=None, trainable=True,
                 **keras_only):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1) (the fraction of units "
                             f"dropped); received {rate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"Dropout seed must be None or a non-negative integer; received {seed!r}")
        if noise_shape is not None:
            raise ValueError(f"Dropout(noise_shape={noise_shape!r}) is not supported by npnet: it drops each "
                             "unit on its own (noise_shape=None)")
        super().__init__(name=name, input_shape=input_shape, trainable=trainable, **keras_only)
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._generator = None if seed is None else np.random.default_rng(self.seed)

    def _draw_keep_mask(self, shape):
        generator = self._generator if self._generator is not None else utils.rng()
        return generator.random(shape) >= self.rate  # kept with probability 1 - rate

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        keep = self._draw_keep_mask(x.shape)
        return F.dropout_forward(x, keep, self.rate), keep

    def backward(self, dL_dy, cache, need_input_grad=True):
        keep = cache
        if not need_input_grad:
            return None, {}
        return (dL_dy if keep is None else F.dropout_backward(dL_dy, keep, self.rate)), {}

    def get_config(self):
        config_ = super().get_config()
        config_.update(rate=self.rate, seed=self.seed)
        return config_


from .preprocessing import Normalization  # noqa: E402  (it subclasses Layer, defined above)

LAYERS = {cls.__name__: cls for cls in (Flatten, Dense, ReLU, LeakyReLU, Activation, Softmax, Dropout,
                                        Normalization)}


def deserialize(class_name, config_):
    """Build a layer from its class name and ``get_config()`` dict."""
    try:
        cls = LAYERS[class_name]
    except KeyError:
        raise ValueError(
            f"Unknown layer class {class_name!r}; known layers: {', '.join(sorted(LAYERS))}"
        ) from None
    return cls.from_config(dict(config_))


class FunctionLayer(Layer):
    """A layer made of two plain functions: the supported way to plug your own forward and
    backward into a model (e.g. to train with the backward pass you wrote, or to check it
    with ``npnet.gradcheck``).

    The functions follow the layer contract above, with the parameters passed in::

        forward(x, params)              -> (y, cache)
        backward(dL_dy, cache, params)  -> (dL_dx, grads)

    ``params`` is the layer's dict of arrays (``layer.params``; read it, do not replace it),
    ``cache`` is anything ``forward`` wants ``backward`` to have, and ``grads`` is a dict with
    the same keys and shapes as ``params``. Every returned array is checked, and an error
    names what was expected and what was received, so a wrong shape is caught at the first
    step rather than deep inside the optimizer.

    ``params``: a dict of initial arrays, or a function ``params(input_shape) -> dict``
    called when the layer is built (``input_shape`` with the batch dimension, e.g.
    ``(None, 784)``). Arrays are copied to npnet's float type. ``output_shape`` (without the
    batch dimension) is found by running ``forward`` on one sample of zeros when not given.

    Only the NumPy backend runs Python functions: the automatic backend choice uses it, and
    ``backend='numba'`` refuses such a model. A FunctionLayer cannot be saved to a file
    (functions are code); keep its weights with ``model.get_weights()`` instead.
    """

    def __init__(self, forward, backward, params=None, *, output_shape=None, input_shape=None,
                 name=None, trainable=True):
        for role, function in (("forward", forward), ("backward", backward)):
            if not callable(function):
                raise TypeError(f"FunctionLayer: {role} must be a function, e.g. "
                                f"def {role}(...); received {function!r}")
        if params is not None and not (callable(params) or isinstance(params, dict)):
            raise TypeError("FunctionLayer: params must be a dict of arrays (e.g. {'kernel': w, "
                            f"'bias': b}}) or a function of the input shape; received {type(params).__name__}")
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.forward_function, self.backward_function = forward, backward
        self._params_source = params
        self._output_shape = None if output_shape is None else tuple(int(d) for d in output_shape)
        if isinstance(params, dict):
            self.params = self._checked_params(params)

    def _checked_params(self, params):
        if not isinstance(params, dict):
            raise TypeError(f"FunctionLayer {self.name!r}: params(input_shape) must return a dict "
                            f"of arrays; received {type(params).__name__}")
        dtype = config.floatx()
        return {str(key): utils.aligned_copy(np.array(value, dtype=dtype)) for key, value in params.items()}

    def build(self, input_shape):
        if callable(self._params_source) and not self.built:
            self.params = self._checked_params(self._params_source(tuple(input_shape)))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        if self._output_shape is not None:
            return (input_shape[0],) + self._output_shape
        if not self.built:
            self.build(input_shape)
        probe = np.zeros((1,) + tuple(input_shape[1:]), dtype=config.floatx())
        y, _ = self.forward(probe)
        return (input_shape[0],) + y.shape[1:]

    def forward(self, x, training=False):
        result = self.forward_function(x, self.params)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"FunctionLayer {self.name!r}: forward must return (y, cache); "
                            f"received {_describe(result)}")
        y = np.asarray(result[0])
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"FunctionLayer {self.name!r}: forward must return y with one row per "
                             f"sample, shape ({x.shape[0]}, ...); received shape {y.shape}")
        return y, (result[1], x.shape)

    def backward(self, dL_dy, cache, need_input_grad=True):
        user_cache, input_shape = cache
        result = self.backward_function(dL_dy, user_cache, self.params)
        if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
            raise TypeError(f"FunctionLayer {self.name!r}: backward must return (dL_dx, grads) with "
                            f"grads a dict like params; received {_describe(result)}")
        dL_dx, grads = result
        if set(grads) != set(self.params):
            raise ValueError(f"FunctionLayer {self.name!r}: backward must return a gradient for each "
                             f"parameter {sorted(self.params)}; received {sorted(grads)}")
        checked = {}
        for key, param in self.params.items():
            grad = np.asarray(grads[key])
            if grad.shape != param.shape:
                raise ValueError(f"FunctionLayer {self.name!r}: the gradient of {key!r} must have the "
                                 f"shape of {key!r}, {param.shape}; received {grad.shape}")
            checked[key] = grad.astype(param.dtype, copy=False)
        if need_input_grad:
            if dL_dx is None or np.shape(dL_dx) != tuple(input_shape):
                raise ValueError(f"FunctionLayer {self.name!r}: dL_dx must have the shape of the "
                                 f"layer's input, {tuple(input_shape)}; received {_describe(dL_dx)}")
            dL_dx = np.asarray(dL_dx)
        return (dL_dx if need_input_grad else None), checked

    def get_config(self):
        raise NotImplementedError(
            f"FunctionLayer {self.name!r} holds Python functions, which npnet does not write to "
            "files (a file that runs code when loaded is unsafe). Keep the weights with "
            "model.get_weights() and rebuild the model from your code.")


def _describe(value):
    """``shape (3, 4)`` for arrays, else the type's name: for FunctionLayer's errors."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return type(value).__name__


#: What npnet's layers are, for the errors about Keras layers it does not have.
_WHAT_NPNET_HAS = ("npnet covers chains of Dense-type layers: it has Flatten, Dense, Activation, "
                   "ReLU, LeakyReLU, Softmax, Dropout and Normalization, plus FunctionLayer and "
                   "Layer subclasses that define forward and backward")
_MERGE_ADVICE = ("npnet's models are chains (one input, one output, each layer applied to the "
                 "previous one's output), so there are no merge layers or branches; " + _WHAT_NPNET_HAS)
#: Keras layer names npnet lacks, with what to write instead.
_KERAS_NAMES = dict.fromkeys(
    ("Concatenate", "concatenate", "Add", "add", "Average", "average", "Subtract", "subtract",
     "Multiply", "multiply", "Maximum", "maximum", "Minimum", "minimum", "Dot", "dot"), _MERGE_ADVICE)
_KERAS_NAMES.update(dict.fromkeys(
    ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "SeparableConv2D",
     "DepthwiseConv2D", "MaxPooling1D", "MaxPooling2D", "MaxPool2D", "AveragePooling1D",
     "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
     "GlobalMaxPooling2D", "UpSampling2D", "ZeroPadding2D", "Cropping2D", "Embedding", "LSTM", "GRU",
     "SimpleRNN", "RNN", "Bidirectional", "TimeDistributed", "ConvLSTM2D", "MultiHeadAttention",
     "Attention", "LayerNormalization", "GroupNormalization", "UnitNormalization", "Permute",
     "RepeatVector", "Masking", "PReLU", "GaussianNoise", "GaussianDropout", "AlphaDropout",
     "SpatialDropout1D", "SpatialDropout2D", "TextVectorization", "StringLookup", "IntegerLookup",
     "CategoryEncoding", "Hashing", "Discretization", "Resizing", "RandomFlip", "RandomRotation",
     "RandomZoom", "RandomTranslation", "RandomContrast", "RandomCrop", "Identity"),
    "not available: " + _WHAT_NPNET_HAS))
_KERAS_NAMES.update({
    "Lambda": "npnet cannot differentiate a Python function: wrap it with its derivative as "
              "npnet.layers.FunctionLayer(forward, backward), or subclass npnet.layers.Layer and "
              "define forward and backward",
    "Reshape": "not available: Flatten is npnet's only reshaping layer (reshape the NumPy arrays "
               "before fit otherwise); " + _WHAT_NPNET_HAS,
    "BatchNormalization": "not available (npnet has no running statistics updated in training): "
                          "Normalization with adapt(x_train) scales the inputs by the data's mean "
                          "and variance; " + _WHAT_NPNET_HAS,
    "Rescaling": "not available: scale the NumPy arrays before fit (x / 255.0), or use "
                 "Normalization(mean=..., variance=...); " + _WHAT_NPNET_HAS,
    "ActivityRegularization": "npnet has no activity penalties: penalise weights instead, e.g. "
                              "Dense(..., kernel_regularizer='l2')",
    "ELU": "write Activation('elu') (or Dense(..., activation='elu'))",
})


def __getattr__(name):
    raise utils.missing_name(__name__, name, _KERAS_NAMES)
