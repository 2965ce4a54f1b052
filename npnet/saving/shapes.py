"""The weight shapes a model's layers will create, computed without creating them.

Loaders compare these with the shapes stored in a file *before* building the model, so a
file that declares a huge layer but stores small arrays is refused before any allocation.
One entry per layer class with parameters; a class absent from :data:`PARAM_SHAPES` and
listed in :data:`PARAMETER_FREE` has none. A layer of the caller's own class (given to
``load_model`` in ``custom_objects``) has no entry: it is built to learn its shapes, with its
``add_weight`` calls bounded by what the model may still have.
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
        output_shape = None
        if isinstance(layer, PARAMETER_FREE):
            shapes = {}
        elif type(layer) in PARAM_SHAPES:
            shapes = PARAM_SHAPES[type(layer)](layer, shape)
        elif type(layer).__module__.startswith("npnet."):
            raise ValueError(f"npnet.saving.shapes does not know the weights of layer class "
                             f"{type(layer).__name__!r}; add it to PARAM_SHAPES or PARAMETER_FREE")
        else:
            shapes, output_shape = _built_shapes(layer, shape, limits.MAX_PARAMETERS - total, path)
        for dims in shapes.values():
            count = 1
            for d in dims:
                count *= int(d)
            total += count
        if total > limits.MAX_PARAMETERS:
            raise FileTooLarge(path, f"the architecture declares more than {limits.MAX_PARAMETERS:,} "
                                     "parameters (npnet.saving.limits.MAX_PARAMETERS)")
        result.append(shapes)
        shape = output_shape if output_shape is not None else layer.compute_output_shape(shape)
    return result


def _built_shapes(layer, input_shape, allowed, path):
    """``(weight shapes, output shape)`` of a layer of the caller's own class, which only
    building it tells: built here for ``input_shape``, refused as soon as ``add_weight`` would
    create more than ``allowed`` parameters. A failure of its code names the layer."""
    probed = type(layer).compute_output_shape is layers_module._probed_output_shape
    sample = 1
    for d in input_shape[1:]:
        sample *= 1 if d is None else int(d)
    if probed and sample > limits.MAX_SAMPLE_ELEMENTS:
        raise FileTooLarge(path, f"layer {layer.name!r} ({type(layer).__name__}) defines no compute_output_shape, "
                                 f"so npnet runs it on one sample to learn it, and its input {tuple(input_shape)} "
                                 f"has more than {limits.MAX_SAMPLE_ELEMENTS:,} elements per sample "
                                 "(npnet.saving.limits.MAX_SAMPLE_ELEMENTS)")
    try:
        with layers_module.parameter_budget(allowed):
            layer.build(tuple(input_shape))
            output_shape = tuple(layer.compute_output_shape(tuple(input_shape)))
    except layers_module.TooManyParameters as error:
        raise FileTooLarge(path, f"{error} (npnet.saving.limits.MAX_PARAMETERS)") from None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - the caller's code: say which layer failed
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) failed to build for inputs of shape "
                         f"{tuple(input_shape)}: {type(error).__name__}: {error}") from None
    return {name: tuple(p.shape) for name, p in layer.params.items()}, output_shape


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
