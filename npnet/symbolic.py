"""``npnet.Input`` and the functional API for chains of layers, as in Keras.

``x = npnet.Input(shape=(28, 28))`` is a symbolic tensor: no data, a shape with ``None`` for
the batch. Calling a layer on it (``y = Dense(10)(x)``) builds the layer for that shape and
returns a new symbolic tensor that remembers the layer and its input. ``npnet.Model(x, y)``
walks back from ``y`` to ``x``; when every step is one layer applied to the previous tensor
(a chain), the model is that stack of layers. Graphs that branch or merge are refused.
A model called on a symbolic tensor adds its layers to the chain (a model used as a layer).

A layer remembers the symbolic tensors of its calls: ``layer.output`` (and ``layer.input``)
is that of its first call, as in Keras 3, so ``npnet.Model(model.inputs,
model.get_layer("hidden").output)`` is a model of the first layers of ``model`` (the same
layer objects, sharing their weights) whose ``predict`` gives the hidden activations.
"""

from . import config
from .utils import format_shape

#: Why ``a + b`` and merges of symbolic tensors are refused.
_CHAINS_ONLY = ("npnet's functional models are chains: each layer is applied to the previous "
                "layer's output, with one input and one output, so tensors cannot be added, "
                "multiplied or merged (no branches, no Add/concatenate). Write the model as one "
                "chain of layers, or as npnet.Sequential([...])")


class SymbolicTensor:
    """A placeholder for data of ``shape`` (batch first, ``None``), produced by ``layer``
    from ``source`` (both None for an :func:`Input`)."""

    def __init__(self, shape, layer=None, source=None, name=None, dtype=None):
        self.shape = tuple(shape)
        self.layer = layer
        self.source = source
        self.name = name
        #: ``'float32'`` or ``'float64'``, as Keras's ``KerasTensor.dtype``.
        self.dtype = dtype or config.floatx()

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        made_by = f", made by {self.layer.name!r}" if self.layer is not None else ""
        return f"<npnet.SymbolicTensor shape={format_shape(self.shape)}{made_by}>"

    def _refuse_arithmetic(self, *other):
        raise TypeError(f"Cannot compute with {self!r}: {_CHAINS_ONLY}")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse_arithmetic
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __neg__ = _refuse_arithmetic

    def __array__(self, *args, **kwargs):
        raise TypeError("This is a symbolic tensor (npnet.Input or a layer applied to one): it "
                        "holds no data. Build a model with npnet.Model(inputs, outputs) and call "
                        "model.predict(array) to compute.")


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic model input of ``shape`` (without the batch dimension), like ``keras.Input``
    (its arguments in its order). npnet's inputs are dense float arrays that every call
    provides: ``sparse``, ``ragged`` and ``optional`` must be off, and ``tensor`` None."""
    for option, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
        if value:
            raise ValueError(f"npnet's inputs are dense arrays that every call provides: Input takes "
                             f"{option}=False; received {option}={value!r}")
    if tensor is not None:
        raise ValueError("npnet.Input makes its own symbolic tensor: tensor= must be None (pass NumPy arrays "
                         "to fit, evaluate and predict)")
    if batch_shape is not None:
        shape = tuple(batch_shape)[1:]
    if shape is None:
        raise ValueError("Input needs a shape, e.g. npnet.Input(shape=(28, 28))")
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"Input shape must be a tuple of positive integers, e.g. (28, 28); "
                        f"received {shape!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"Input shape must be a tuple of positive integers, e.g. (28, 28); "
                         f"received {shape!r}")
    dtype_name = None if dtype is None else getattr(dtype, "name", None) or getattr(dtype, "__name__", str(dtype))
    if dtype is not None and dtype_name not in ("float32", "float64"):
        raise ValueError(f"Input dtype must be float32 or float64; received {dtype!r}")
    return SymbolicTensor((batch_size,) + dims, name=name, dtype=dtype_name)


def _default_input_name():
    """``input_layer``, ``input_layer_1``, ...: Keras's names for unnamed inputs' layers."""
    from .layers import _default_name
    return _default_name(InputLayer)


def input_layer_of(tensor):
    """The InputLayer of an ``npnet.Input`` (the one that made it, or a new one wrapping it)."""
    return tensor.__dict__.get("input_layer") or InputLayer(input_tensor=tensor)


class InputLayer:
    """A model's entry, as ``keras.layers.InputLayer``: ``Sequential([InputLayer(shape=(28, 28)),
    ...])`` declares the model's input as ``npnet.Input(shape=(28, 28))`` does, and, as in a
    Keras ``Sequential``, is not one of ``model.layers`` (it computes nothing); a functional
    model's ``layers`` start with it, as in Keras (a layer without weights). ``output`` is
    its symbolic tensor, for the functional API. ``input_shape`` is the name older tf.keras
    code uses for ``shape``. npnet's inputs are dense float arrays, so ``sparse``, ``ragged``
    and ``optional`` must be off, and ``input_tensor`` can only be an ``npnet.Input``."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, input_shape=None):
        if input_shape is not None:
            if shape is not None:
                raise ValueError("InputLayer takes shape or input_shape (its older name), not both; "
                                 f"received shape={shape!r} and input_shape={input_shape!r}")
            shape = input_shape
        if shape is not None and batch_shape is not None:
            raise ValueError(f"InputLayer takes shape or batch_shape, not both; received shape={shape!r} "
                             f"and batch_shape={batch_shape!r}")
        if batch_size is not None and batch_shape is not None:
            raise ValueError(f"InputLayer takes batch_size or batch_shape, not both; received "
                             f"batch_size={batch_size!r} and batch_shape={batch_shape!r}")
        for option, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(f"npnet's inputs are dense arrays that every call provides: InputLayer "
                                 f"takes {option}=False; received {option}={value!r}")
        self.output = self._tensor(input_tensor, shape, batch_size, dtype, batch_shape, name)
        if name is None and self.output.name is not None:
            name = self.output.name  # Keras names the layer of Input(name="img") "img"
        self.name = name if name is not None else _default_input_name()
        self.batch_shape, self.dtype = self.output.shape, self.output.dtype
        self.output.__dict__.setdefault("input_layer", self)  # the layer a functional model lists first
        # the rest of a layer's interface, for code that walks a functional model's layers
        self.trainable, self.built, self.params = True, True, {}

    weights = trainable_weights = non_trainable_weights = property(lambda self: [])
    variables = trainable_variables = non_trainable_variables = weights
    losses = weights

    def get_weights(self):
        return []

    def set_weights(self, weights):
        if len(weights):
            raise ValueError(f"InputLayer {self.name!r} has no weights; set_weights expected an empty list, "
                             f"received {len(weights)} arrays")

    def count_params(self):
        return 0

    @staticmethod
    def _tensor(input_tensor, shape, batch_size, dtype, batch_shape, name):
        """The symbolic tensor: ``input_tensor`` (an ``npnet.Input``) or a new one."""
        if input_tensor is None:
            return Input(shape=shape, batch_size=batch_size, name=name, dtype=dtype, batch_shape=batch_shape)
        if not isinstance(input_tensor, SymbolicTensor) or input_tensor.layer is not None:
            raise TypeError(f"InputLayer's input_tensor must be an npnet.Input(...); received {input_tensor!r}")
        return input_tensor

    @property
    def input(self):
        return self.output

    def get_config(self):
        """As Keras writes an InputLayer's config."""
        return {"batch_shape": self.batch_shape, "dtype": self.dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": False}

    def __repr__(self):
        return f"<npnet.layers.InputLayer name={self.name}, batch_shape={format_shape(self.batch_shape)}>"


def apply_layer(layer, tensor):
    """``layer(tensor)`` on a symbolic tensor: build the layer, return its symbolic output,
    which the layer keeps among its calls (for ``layer.output``)."""
    if not layer.built:
        layer.build(tensor.shape)
    layer._check_call_input(tensor.shape)
    output = SymbolicTensor(layer.compute_output_shape(tensor.shape), layer=layer, source=tensor,
                            dtype=tensor.dtype)
    # Kept in __dict__ directly: a layer made by a user need not have called Layer.__init__'s
    # bookkeeping for it, and Layer.__setattr__ has weight aliases to look after.
    layer.__dict__.setdefault("_symbolic_outputs", []).append(output)
    return output


def follow(layer, tensor):
    """``layer(tensor)`` again: the output of an earlier call of ``layer`` on ``tensor`` when
    there was one (so tracing a model twice adds no calls), else a new call."""
    for output in layer.__dict__.get("_symbolic_outputs", ()):
        if output.source is tensor:
            return output
    return apply_layer(layer, tensor)


def forget_calls(layers):
    """Drop the symbolic calls of ``layers`` (new layers whose first model is thrown away)."""
    for layer in layers:
        layer.__dict__.pop("_symbolic_outputs", None)


def layer_tensor(layer, which):
    """``layer.input`` or ``layer.output`` (``which``): the tensor of the layer's first call
    on a symbolic tensor, as Keras 3 answers for a layer called several times."""
    calls = layer.__dict__.get("_symbolic_outputs")
    if not calls:
        raise AttributeError(
            f"Layer {layer.name!r} has never been called on a symbolic tensor, so it has no defined "
            f"{which}. A layer gets one when it is applied to npnet.Input(...) or to another layer's "
            "output, or when it is in a model whose input shape is known (a Sequential starting with "
            "npnet.Input(shape=...) or built, a functional npnet.Model)")
    return calls[0] if which == "output" else calls[0].source


def apply_model(model, tensor):
    """``model(tensor)`` on a symbolic tensor: apply its layers one after another, so the
    model's layers (the same objects, sharing weights) join the chain being built."""
    expected = model.input_shape
    if expected is not None and tuple(expected[1:]) != tuple(tensor.shape[1:]):
        raise ValueError(f"Model {model.name!r} takes inputs of shape {format_shape(expected)}; "
                         f"it was called on {tensor!r}")
    for layer in model._layers:
        tensor = apply_layer(layer, tensor)
    return tensor


def chain(inputs, outputs):
    """The layers from ``inputs`` to ``outputs``, in order, when they form one chain."""
    return [tensor.layer for tensor in trace(inputs, outputs)[1:]]


def trace(inputs, outputs):
    """The tensors from ``inputs`` to ``outputs``, ``[input, first layer's output, ...,
    outputs]``, when each is one layer applied to the one before (a chain)."""
    inputs, outputs = _single(inputs, "inputs"), _single(outputs, "outputs")
    tensors = [outputs]
    while tensors[-1] is not inputs:
        if tensors[-1].layer is None:
            raise ValueError(_disconnected(inputs, outputs, tensors))
        tensors.append(tensors[-1].source)
    tensors.reverse()
    layers = [tensor.layer for tensor in tensors[1:]]
    if len({id(layer) for layer in layers}) != len(layers):
        raise ValueError("npnet runs chains in which each layer appears once; this graph uses a "
                         "layer twice")
    return tensors


def _disconnected(inputs, outputs, tensors):
    """Why walking back from ``outputs`` reached another Input than ``inputs``."""
    reached = tensors[-1]
    text = (f"outputs are not computed from inputs: walking back from the outputs {outputs!r} reached "
            f"another Input ({_described(reached)}), not the given inputs ({_described(inputs)})")
    reused = [t.layer.name for t in tensors if t.layer is not None
              and len(t.layer.__dict__.get("_symbolic_outputs", ())) > 1]
    if reused:
        text += (f". Layers {reused} were called more than once; layer.output is the output of a "
                 "layer's first call (as in Keras), which may belong to another model")
    return text


def _described(tensor):
    name = f", named {tensor.name!r}" if tensor.name else ""
    return f"shape {format_shape(tensor.shape)}{name}"


#: Why a functional model takes one input and one output, and what to write instead.
_ONE_OF_EACH = {
    "inputs": ("npnet's functional models are chains with one input and one output; received {n} "
               "inputs, expected one input tensor. Concatenate the features into one array with one "
               "npnet.Input(shape=...)"),
    "outputs": ("npnet models have one output: expected one output tensor, received {n} outputs. For "
                "the activations of several layers, build one model per layer, e.g. "
                "[npnet.Model(model.inputs, layer.output) for layer in model.layers], and predict "
                "with each (they share the layers' weights)"),
}


def _single(tensors, what):
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            raise NotImplementedError(_ONE_OF_EACH[what].format(n=len(tensors)))
        tensors = tensors[0]
    if isinstance(tensors, dict):
        raise NotImplementedError(f"npnet's functional models take one tensor as {what}, not a dict")
    if not isinstance(tensors, SymbolicTensor):
        raise TypeError(f"{what} must be npnet.Input(...) or a layer applied to it; received {tensors!r}")
    return tensors
