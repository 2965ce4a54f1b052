"""The weight shapes a model's layers will create, computed without creating them.

Loaders compare these with the shapes stored in a file *before* building the model, so a
file that declares a huge layer but stores small arrays is refused before any allocation.
One entry per layer class with parameters; a class absent from :data:`PARAM_SHAPES` and
listed in :data:`PARAMETER_FREE` has none.
"""

from .. import layers as layers_module
from . import limits
from .errors import FileTooLarge

#: layer class -> ``(layer, input_shape) -> {parameter name: shape}``, in ``params`` order.
PARAM_SHAPES = {
    layers_module.Dense: lambda layer, shape: {"kernel": (int(shape[-1]), layer.units),
                                                **({"bias": (layer.units,)} if layer.use_bias else {})},
    layers_module.Normalization: lambda layer, shape: layer.weight_shapes(shape),
}
#: Layer classes that own no parameters.
PARAMETER_FREE = (layers_module.Flatten, layers_module.ReLU, layers_module.Softmax,
                  layers_module.Dropout, layers_module.LeakyReLU, layers_module.Activation)


def expected_weight_shapes(layers, input_shape, path):
    """``[{name: shape} per layer]`` for inputs of ``input_shape``; refuses more than
    :data:`limits.MAX_PARAMETERS` parameters in all."""
    shape, result, total = tuple(input_shape), [], 0
    for layer in layers:
        if isinstance(layer, PARAMETER_FREE):
            shapes = {}
        elif type(layer) in PARAM_SHAPES:
            shapes = PARAM_SHAPES[type(layer)](layer, shape)
        else:
            raise ValueError(f"npnet.saving.shapes does not know the weights of layer class "
                             f"{type(layer).__name__!r}; add it to PARAM_SHAPES or PARAMETER_FREE")
        for dims in shapes.values():
            count = 1
            for d in dims:
                count *= int(d)
            total += count
        if total > limits.MAX_PARAMETERS:
            raise FileTooLarge(path, f"the architecture declares more than {limits.MAX_PARAMETERS:,} "
                                     "parameters (npnet.saving.limits.MAX_PARAMETERS)")
        result.append(shapes)
        shape = layer.compute_output_shape(shape)
    return result


def byte_count(shape_dicts, itemsize):
    """Bytes the arrays of ``expected_weight_shapes`` take."""
    total = 0
    for shapes in shape_dicts:
        for dims in shapes.values():
            count = 1
            for d in dims:
                count *= int(d)
            total += count
    return total * itemsize
