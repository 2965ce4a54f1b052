"""Legacy Keras HDF5 model files (``.h5`` / ``.hdf5``), as Keras 2 / tf.keras and Keras 3's
legacy path write them: read, and written as Keras 3 writes them for ``model.save('x.h5')``.

Layout: root attributes ``model_config`` and ``training_config`` (JSON), a ``model_weights``
group with one group per layer *name*, whose ``weight_names`` attribute lists its datasets
(``dense/kernel:0``, ...). The description goes through the same closed tables as a
``.keras`` file (a ``Lambda`` layer is refused by name: CVE-2025-9905 was Keras running it
from an ``.h5`` file). The optimizer's settings are read, its moments are not: training from
a legacy file restarts the optimizer, as the README says; the writer, like Keras 3's, stores
no moments either (Keras 3 keeps only the step count and learning rate there).
"""

import json
import os

from .. import config, utils
from . import _assemble, errors, keras_architecture, limits
from .errors import FileTooLarge, ModelFileError, reading
from .keras_weights import checked_dataset, stored_group


def load(path, backend=None, custom_objects=None, compile=True):
    """An npnet ``Sequential`` or functional ``Model`` (compiled if the file has a training
    config and ``compile`` is True) from a legacy file; layers of the caller's own classes
    are made from ``custom_objects`` (see :mod:`npnet.saving.custom_objects`)."""
    import h5py

    path = os.fsdecode(path)
    errors.require_file(path)
    with reading(path):
        with h5py.File(path, "r") as h5:
            model_config = json_attribute(h5, "model_config", path)
            if model_config is None:
                raise ModelFileError(path, "it holds weights only (no model_config); build the model "
                                           "and call model.load_weights(path)")
            spec = keras_architecture.model_from_keras(model_config, "model_config", custom_objects)
            compile_spec = (keras_architecture.compile_from_keras(
                json_attribute(h5, "training_config", path), "training_config") if compile else None)
            layers = _assemble.make_layers([(s.cls, s.kwargs) for s in spec.layers], spec.floatx)
            expected = _assemble.expected_shapes(layers, spec.input_shape, path)
            arrays = read_named_weights(_weights_root(h5), [layer.name for layer in layers], expected, path)
        model = _assemble.build(spec.name, layers, spec.input_shape, spec.floatx, arrays,
                                spec.functional, spec.input_name)
        _assemble.compile_loaded(model, compile_spec, backend)
    return model


def save(model, path, include_optimizer=True):
    """Write ``model`` as a legacy HDF5 file Keras's ``load_model`` opens: root attributes
    ``model_config`` (and ``training_config`` when compiled), ``model_weights`` with one
    group per layer listing its datasets. Written to a temporary name and renamed; missing
    folders are created, as Keras's legacy writer creates them."""
    import h5py

    from .keras_config import KERAS_VERSION

    model.require_built("save")
    floatx = str(model.weights[0].dtype) if model.weights else config.floatx()
    model_config = keras_architecture.model_to_keras(model, floatx)
    compile_config = model_config.pop("compile_config", None) if include_optimizer else None
    utils.make_parent_folder(path)  # as Keras's legacy writer does
    with utils.atomic_write(path, "wb") as handle, h5py.File(handle, "w") as h5:
        h5.attrs["backend"] = "numpy"
        h5.attrs["keras_version"] = KERAS_VERSION
        h5.attrs["model_config"] = json.dumps(model_config).encode("utf-8")
        if compile_config is not None:
            training_config = dict(compile_config)
            training_config["optimizer_config"] = training_config.pop("optimizer")
            h5.attrs["training_config"] = json.dumps(training_config).encode("utf-8")
        _write_layer_weights(h5.create_group("model_weights"), model)


def _write_layer_weights(group, model):
    """Keras's layout: ``model_weights/<layer>/<model>/<layer>/<param>``, the names listed in
    each layer group's ``weight_names`` (an empty list for a layer without weights)."""
    from .keras_config import KERAS_VERSION

    group.attrs["layer_names"] = [layer.name.encode("utf-8") for layer in model._layers]
    group.attrs["backend"] = "numpy"
    group.attrs["keras_version"] = KERAS_VERSION
    for layer in sorted(model._layers, key=lambda layer: layer.name):
        layer_group = group.create_group(layer.name)
        names = [f"{model.name}/{layer.name}/{param}" for param in layer.params]
        layer_group.attrs["weight_names"] = [name.encode("utf-8") for name in names]
        for name, array in zip(names, layer.params.values()):
            layer_group.create_dataset(name, data=array)
    group.create_group("top_level_model_weights").attrs["weight_names"] = []


def read_weights_for(model, path):
    """The arrays of a legacy file for an existing model (``load_weights``), by layer name."""
    import h5py

    expected = [{name: p.shape for name, p in layer.params.items()} for layer in model._layers]
    with h5py.File(path, "r") as h5:
        return read_named_weights(_weights_root(h5), [layer.name for layer in model._layers], expected, path)


def _weights_root(h5):
    """The ``model_weights`` group (a hard link), or the file's root when there is none."""
    group = stored_group(h5, "model_weights", "model_weights")
    return h5 if group is None else group


def json_attribute(h5, name, path):
    """A JSON attribute of the file's root, its size checked before it is read; None if absent."""
    if name not in h5.attrs:
        return None
    size = h5.attrs.get_id(name).get_storage_size()
    if size > limits.MAX_JSON_BYTES:
        raise FileTooLarge(path, f"attribute {name!r} holds {size:,} bytes; a model description "
                                 f"has at most {limits.MAX_JSON_BYTES:,}")
    value = h5.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"attribute {name!r} is not JSON text")
    return errors.parse_json(value, f"attribute {name!r}")


def _names_attribute(group, where):
    if "weight_names" not in group.attrs or group.attrs.get_id("weight_names").get_storage_size() > 2**20:
        raise ValueError(f"{where} lacks a readable weight_names attribute")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]


def read_named_weights(root, layer_names, expected, path):
    """``[[Stored per parameter] per layer]``, matching each parameter to the stored name that
    ends in it (``.../kernel:0`` -> ``kernel``)."""
    result = []
    for name, shapes in zip(layer_names, expected):
        if not shapes:
            result.append([])
            continue
        group = stored_group(root, name, f"model_weights/{name}")
        if group is None:
            raise ValueError(f"model_weights has no group for layer {name!r}")
        stored = _names_attribute(group, f"model_weights/{name}")
        by_param = {n.rsplit("/", 1)[-1].split(":")[0]: n for n in stored}
        if sorted(by_param) != sorted(shapes):
            raise ValueError(f"layer {name!r} stores weights {stored}; the model expects {list(shapes)}")
        result.append([checked_dataset(group, by_param[param], shape, path,
                                       f"model_weights/{name}/{by_param[param]}")
                       for param, shape in shapes.items()])
    return result
