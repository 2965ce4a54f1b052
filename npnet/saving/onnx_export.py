"""``model.export(path, format='onnx')``: the model as a standard ONNX graph.

Each layer becomes the ONNX operators that compute it (one table entry per layer class and
activation): Flatten -> ``Flatten``, Dense -> ``Gemm`` (x @ kernel + bias) followed by its
activation, ReLU -> ``Relu``, Softmax -> ``Softmax``, Normalization -> ``Sub`` and ``Div``;
Dropout is the identity at inference and adds nothing. The input is ``inputs`` of shape (batch, *input_shape), the output
``output_0``. Needs the ``onnx`` package (``pip install npnet[onnx]``).
"""

import os

import numpy as np

from .. import layers as layers_module, utils

#: ONNX opset: Softmax over the last axis alone needs 13 or later.
OPSET = 17
#: IR version 8 is what opset 17 needs; older runtimes read it too.
IR_VERSION = 8
#: npnet activation name -> ONNX operator (None: nothing to add).
ACTIVATION_OPS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                  "softmax": "Softmax"}


def _dense_nodes(layer, x, out, helper, initializers):
    kernel, bias = f"{layer.name}/kernel", f"{layer.name}/bias"
    initializers += [(kernel, layer.kernel)] + ([(bias, layer.bias)] if layer.use_bias else [])
    operands = [x, kernel, bias] if layer.use_bias else [x, kernel]  # Gemm's C is optional
    op = ACTIVATION_OPS.get(layer.activation.name, "unknown")
    if op == "unknown":
        raise ValueError(f"layer {layer.name!r}: activation {layer.activation.name!r} has no ONNX "
                         f"operator npnet knows ({', '.join(ACTIVATION_OPS)})")
    if op is None:
        return [helper.make_node("Gemm", operands, [out], name=layer.name)]
    return [helper.make_node("Gemm", operands, [f"{layer.name}/z"], name=f"{layer.name}/gemm"),
            _activation_node(helper, op, f"{layer.name}/z", out, f"{layer.name}/{op.lower()}")]


def _activation_node(helper, op, x, out, name):
    extra = {"axis": -1} if op == "Softmax" else {}
    return helper.make_node(op, [x], [out], name=name, **extra)


def _normalization_nodes(layer, x, out, helper, initializers):
    """``(x - mean) / scale`` (inverted: ``x · scale + mean``), with the layer's own scale
    ``max(sqrt(variance), ε)``; mean and scale broadcast against the batch as in NumPy."""
    mean, scale, middle = f"{layer.name}/mean", f"{layer.name}/scale", f"{layer.name}/middle"
    initializers += [(mean, layer.mean), (scale, layer.scale())]
    if layer.invert:
        steps = [("Mul", [x, scale], middle), ("Add", [middle, mean], out)]
    else:
        steps = [("Sub", [x, mean], middle), ("Div", [middle, scale], out)]
    return [helper.make_node(op, inputs, [output], name=f"{layer.name}/{op.lower()}")
            for op, inputs, output in steps]


#: npnet layer class -> ``(layer, input name, output name, onnx.helper, initializers) -> nodes``.
LAYER_NODES = {
    layers_module.Flatten: lambda layer, x, out, helper, inits: [
        helper.make_node("Flatten", [x], [out], name=layer.name, axis=1)],
    layers_module.Dense: _dense_nodes,
    layers_module.ReLU: lambda layer, x, out, helper, inits: [
        _activation_node(helper, "Relu", x, out, layer.name)],
    layers_module.Softmax: lambda layer, x, out, helper, inits: [
        _activation_node(helper, "Softmax", x, out, layer.name)],
    layers_module.Dropout: None,  # the identity at inference
    layers_module.Normalization: _normalization_nodes,
}


def to_onnx(model):
    """The ``onnx.ModelProto`` of a built model (checked with ``onnx.checker``)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'npnet[onnx]'") from None
    model.require_built("export")
    dtype = model.weights[0].dtype if model.weights else np.dtype(np.float32)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    nodes, initializers, current = [], [], "inputs"
    computing = [layer for layer in model._layers if LAYER_NODES.get(type(layer), False) is not None]
    for i, layer in enumerate(computing):
        build = LAYER_NODES.get(type(layer), False)
        if build is False:
            raise ValueError(f"layer {layer.name!r} of class {type(layer).__name__} has no ONNX "
                             "operators npnet knows, so the model cannot be exported")
        out = "output_0" if i == len(computing) - 1 else f"{layer.name}/output"
        nodes += build(layer, current, out, helper, initializers)
        current = out
    if not computing:  # only Dropout: the identity
        nodes.append(helper.make_node("Identity", ["inputs"], ["output_0"]))
    inputs = [helper.make_tensor_value_info("inputs", elem, ["batch", *model.input_shape[1:]])]
    outputs = [helper.make_tensor_value_info("output_0", elem, ["batch", *model.output_shape[1:]])]
    graph = helper.make_graph(nodes, model.name, inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(a), name) for name, a in initializers])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="npnet", ir_version=IR_VERSION)
    onnx.checker.check_model(proto)
    return proto


def export(model, path, verbose=None):
    """Write ``model`` as an ONNX file at ``path``, atomically, creating missing folders as
    Keras's ``export`` does (its SavedModel and ONNX writers both make them)."""
    data = to_onnx(model).SerializeToString()
    utils.make_parent_folder(path)
    with utils.atomic_write(path, "wb") as handle:
        handle.write(data)
    if verbose:
        print(f"Saved the model as ONNX to {os.fsdecode(path)!r} (input 'inputs', output 'output_0')")
