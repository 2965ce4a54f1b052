"""``npnet.Input`` and the functional API for chains of layers, as in Keras.

``x = npnet.Input(shape=(28, 28))`` is a symbolic tensor: no data, a shape with ``None`` for
the batch. Calling a layer on it (``y = Dense(10)(x)``) builds the layer for that shape and
returns a new symbolic tensor that remembers the layer and its input. ``npnet.Model(x, y)``
walks back from ``y`` to ``x``; when every step is one layer applied to the previous tensor
(a chain), the model is that stack of layers. Graphs that branch or merge are refused.
A model called on a symbolic tensor adds its layers to the chain (a model used as a layer).
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


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None):
    """A symbolic model input of ``shape`` (without the batch dimension), like ``keras.Input``."""
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


def apply_layer(layer, tensor):
    """``layer(tensor)`` on a symbolic tensor: build the layer, return its symbolic output."""
    if not layer.built:
        layer.build(tensor.shape)
    return SymbolicTensor(layer.compute_output_shape(tensor.shape), layer=layer, source=tensor,
                          dtype=tensor.dtype)


def apply_model(model, tensor):
    """``model(tensor)`` on a symbolic tensor: apply its layers one after another, so the
    model's layers (the same objects, sharing weights) join the chain being built."""
    expected = model.input_shape
    if expected is not None and tuple(expected[1:]) != tuple(tensor.shape[1:]):
        raise ValueError(f"Model {model.name!r} takes inputs of shape {format_shape(expected)}; "
                         f"it was called on {tensor!r}")
    for layer in model.layers:
        tensor = apply_layer(layer, tensor)
    return tensor


def chain(inputs, outputs):
    """The layers from ``inputs`` to ``outputs``, in order, when they form one chain."""
    inputs, outputs = _single(inputs, "inputs"), _single(outputs, "outputs")
    layers, tensor = [], outputs
    while tensor is not inputs:
        if tensor.layer is None:
            raise ValueError("outputs are not computed from inputs: walking back from the outputs "
                             f"reached another Input {tensor!r}")
        layers.append(tensor.layer)
        tensor = tensor.source
    layers.reverse()
    if len({id(layer) for layer in layers}) != len(layers):
        raise ValueError("npnet runs chains in which each layer appears once; this graph uses a "
                         "layer twice")
    return layers


def _single(tensors, what):
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            raise NotImplementedError(f"npnet's functional models are chains with one input and one "
                                      f"output; received {len(tensors)} {what}")
        tensors = tensors[0]
    if isinstance(tensors, dict):
        raise NotImplementedError(f"npnet's functional models take one tensor as {what}, not a dict")
    if not isinstance(tensors, SymbolicTensor):
        raise TypeError(f"{what} must be npnet.Input(...) or a layer applied to it; received {tensors!r}")
    return tensors
