"""npnet's own model file: a zip of ``model.json`` and safetensors arrays, no pickle.

Layout (``format_version`` 1):

* ``model.json`` — the architecture (``model.get_config()``), the float type, and the
  compile settings: optimizer, loss, metrics, weighted metrics, backend and the optimizer's
  step count;
* ``weights.safetensors`` — ``"{layer index:03d}/{weight name}"`` -> array;
* ``optimizer.safetensors`` — ``"{slot}/{parameter index:03d}"`` -> array, when the
  optimizer has state and ``include_optimizer`` is True.

Nothing in such a file can run code when it is loaded: JSON and raw arrays only, and class
names are looked up in npnet's own tables.
"""

import json
import os
import reprlib
import zipfile

import numpy as np

from .. import config, layers as layers_module, losses as losses_module
from .. import optimizers as optimizers_module, utils
from . import _assemble, _zip, custom_objects as custom, errors, keras_architecture, limits, restore, shapes
from .errors import ModelFileError, reading
from .restore import Stored, StoredOptimizer

FORMAT_NAME = "npnet.model"
FORMAT_VERSION = 1


def save(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place)."""
    from safetensors.numpy import save as save_tensors

    model.require_built("save")
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "npnet_version": _version(),
            "floatx": str(model.weights[0].dtype) if model.weights else config.floatx(),
            "model": model.get_config(), "compile": _compile_spec(model, include_optimizer)}
    if model._functional:
        meta["model_class"] = "Functional"
    # reshaped: np.ascontiguousarray makes a 0-d array (Normalization's count) 1-d
    weights = {f"{i:03d}/{name}": np.ascontiguousarray(p).reshape(p.shape) for i, name, p in named_weights(model)}
    optimizer_arrays = _optimizer_arrays(model) if meta["compile"] and include_optimizer else {}
    with utils.atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model.json", json.dumps(meta, indent=2))
        archive.writestr("weights.safetensors", save_tensors(weights))
        if optimizer_arrays:
            archive.writestr("optimizer.safetensors", save_tensors(optimizer_arrays))


def _compile_spec(model, include_optimizer):
    if not model.compiled:
        return None
    spec = {"optimizer": {"class_name": type(model.optimizer).__name__,
                          "config": model.optimizer.get_config()},
            # the class too: a loss named by its user (name="cosine") is not found by its name
            "loss": {"name": model.loss.name, "class_name": type(model.loss).__name__,
                     "config": model.loss.get_config()},
            # as Keras's compile_config holds them: a metric's class and settings, not only its name
            "metrics": keras_architecture.metrics_to_keras(model.metrics) or [],
            "weighted_metrics": keras_architecture.metrics_to_keras(model.weighted_metrics) or [],
            "backend": model.backend_name}
    if include_optimizer and model.optimizer.iterations:
        spec["optimizer_iterations"] = int(model.optimizer.iterations)
    return spec


def _optimizer_arrays(model):
    state = model.optimizer.state or {}
    return {f"{slot}/{j:03d}": np.ascontiguousarray(array)
            for slot, arrays in state.items() for j, array in enumerate(arrays)}


def named_weights(model):
    """``(layer index, weight name, array)`` for every weight, in ``get_weights()`` order."""
    return [(i, name, p) for i, layer in enumerate(model._layers) for name, p in layer.params.items()]


def _read_archive(path, custom_objects=None):
    """``(meta, layers, expected shapes, weights, optimizer arrays)``, every member's size
    bounded and the stored shapes checked against the architecture before the model exists."""
    with _zip.open_archive(path) as archive:
        names = set(archive.namelist())
        if "model.json" not in names or "weights.safetensors" not in names:
            raise ModelFileError(path, "not an npnet model file: it lacks model.json or weights.safetensors")
        meta = errors.parse_json(_zip.read_member(archive, "model.json", limits.MAX_JSON_BYTES, path).decode("utf-8"),
                                 "model.json")
        _check_format(path, meta)
        layers = _assemble.make_layers(layer_specs(meta["model"], custom_objects or {}), meta.get("floatx", "float32"))
        expected = _assemble.expected_shapes(layers, input_shape(meta["model"], layers), path)
        limit = shapes.byte_count(expected, 8) + limits.CONTAINER_OVERHEAD_BYTES
        weights = _tensors(_zip.read_member(archive, "weights.safetensors", limit, path), "weights.safetensors")
        _check_weight_shapes(weights, expected)
        optimizer_arrays = (_tensors(_zip.read_member(archive, "optimizer.safetensors", 3 * limit, path),
                                     "optimizer.safetensors")
                            if "optimizer.safetensors" in names else {})
    return meta, layers, weights, optimizer_arrays


def _tensors(data, member):
    """The arrays of a safetensors ``member``; a dtype NumPy has no type for is named."""
    from safetensors.numpy import load as load_tensors

    try:
        return load_tensors(data)
    except KeyError as error:  # safetensors.numpy looks the file's dtype up in its own table
        raise ValueError(f"{member} holds an array of dtype {error.args[0]!r}, which npnet does not read; "
                         "expected float arrays (F16, F32 or F64)") from None


def layer_specs(model_config, custom_objects):
    """``[(class, config)]`` of the layers of npnet's own model config (its layout checked),
    every class found before any layer is made: npnet's, or the caller's in ``custom_objects``."""
    return [(_layer_class(spec["class_name"], custom_objects, f"layer {i}"), dict(spec["config"]))
            for i, spec in enumerate(model_config["layers"])]


def _layer_class(class_name, custom_objects, where):
    users = custom.named_class(class_name, custom_objects, where)
    if users is not None:
        return users
    if class_name not in layers_module.LAYERS:
        raise ValueError(f"Unknown layer class {class_name!r}; known layers: "
                         f"{', '.join(sorted(layers_module.LAYERS))}; {custom.advice(class_name)}")
    return layers_module.LAYERS[class_name]


def input_shape(model_config, layers):
    """The input shape npnet's own model config declares (its first layer's, or the model's
    ``build_input_shape``); None when it declares none."""
    if layers and layers[0]._declared_input_shape is not None:
        return layers[0]._declared_input_shape
    declared = model_config.get("build_input_shape")
    return tuple(declared) if declared else None


def _check_weight_shapes(weights, expected):
    wanted = {f"{i:03d}/{name}": tuple(shape) for i, per_layer in enumerate(expected)
              for name, shape in per_layer.items()}
    if set(weights) != set(wanted):
        raise ValueError(f"weights {sorted(weights)} do not match the architecture {sorted(wanted)}")
    for key, shape in wanted.items():
        if weights[key].shape != shape:
            raise ValueError(f"weight {key} has shape {weights[key].shape}; the architecture expects {shape}")


def _check_format(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(path, f"not an npnet model file (format {found!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"an npnet model of format version {version!r}, but this npnet "
                                   f"({_version()}) reads version {FORMAT_VERSION}; load it with a matching npnet")
    _check_layout(path, meta)


def _check_layout(path, meta):
    """The entries model.json must have, of the types they must have, before any is used."""
    _expect_optional(path, "floatx", meta.get("floatx"), str)
    check_model_layout(meta.get("model"), "model.json's model", path)
    spec = meta.get("compile")
    if spec is None:
        return
    _expect(path, "compile", spec, dict)
    for entry in ("optimizer", "loss"):
        _expect(path, f"compile.{entry}", spec.get(entry), dict)
        _expect(path, f"compile.{entry}.config", spec[entry].get("config"), dict)
    _expect(path, "compile.optimizer.class_name", spec["optimizer"].get("class_name"), str)
    _expect(path, "compile.loss.name", spec["loss"].get("name"), str)
    _expect_optional(path, "compile.backend", spec.get("backend"), str)


def check_model_layout(model, name, path=None):
    """The entries npnet's own model config (``model.get_config()``) must have, of the types
    they must have; ``name`` starts each error (``"model.json's model"``)."""
    _expect(path, "", model, dict, name)
    _expect(path, ".layers", model.get("layers"), list, name)
    if model.get("name") is not None:
        _expect(path, ".name", model["name"], str, name)
    if len(model["layers"]) > limits.MAX_LAYERS:
        raise ValueError(f"{name}.layers lists {len(model['layers']):,} layers; a model has at most {limits.MAX_LAYERS:,}")
    _expect_shape(path, ".build_input_shape", model.get("build_input_shape"), name)
    for i, spec in enumerate(model["layers"]):
        _expect(path, f".layers[{i}]", spec, dict, name)
        _expect(path, f".layers[{i}].class_name", spec.get("class_name"), str, name)
        _expect(path, f".layers[{i}].config", spec.get("config"), dict, name)


def _expect_optional(path, where, value, kind):
    if value is not None:
        _expect(path, where, value, kind)


def _expect_shape(path, where, value, name):
    """An absent shape, or a list of sizes (whole numbers >= 0, or null for the batch)."""
    if value is not None:
        _expect(path, where, value, list, name)
    if value is not None and not all(d is None or type(d) is int and d >= 0 for d in value):
        raise _layout_error(path, f"{name}{where} must be a list of sizes (whole numbers >= 0 or null); "
                                  f"the file has {reprlib.repr(value)}")


def _expect(path, where, value, kind, name="model.json's "):
    if not isinstance(value, kind):
        raise _layout_error(path, f"{name}{where} must be a {'JSON object' if kind is dict else 'list' if kind is list else 'string'}; "
                                  f"the file has {type(value).__name__} {str(value)[:60]!r}")


def _layout_error(path, problem):
    """A ModelFileError for a file; a ValueError for a config that is not one (``path`` None)."""
    return ValueError(problem) if path is None else ModelFileError(path, problem)


def load(path, backend=None, custom_objects=None, compile=True):
    """Load a model written by :func:`save`; compiled again if it was compiled (and
    ``compile`` is True). Layers of classes of the caller's own are made from
    ``custom_objects`` (see :mod:`npnet.saving.custom_objects`).

    The model is compiled for the backend it was saved with, unless ``backend`` is given.
    Raises :class:`~npnet.saving.errors.ModelFileError` (a ``ValueError``) naming the file
    and the reason for a file that is not an npnet model, is truncated, corrupted, too
    large for what it declares, or comes from an incompatible format version.
    """
    path = os.fsdecode(path)
    errors.require_file(path)
    with reading(path):
        meta, layers, weights, optimizer_arrays = _read_archive(path, custom_objects)
        model = _build_model(meta, layers)
        _set_weights(model, weights)
        if compile and meta.get("compile"):
            _compile(model, meta["compile"], optimizer_arrays, backend)
    return model


def _build_model(meta, layers):
    """A ``Sequential``, or for ``model_class`` ``'Functional'`` an ``npnet.Model`` with the
    saved input name (files of npnet before this key are Sequential)."""
    model_config, kind = meta["model"], meta.get("model_class", "Sequential")
    if kind not in ("Sequential", "Functional"):
        raise ValueError(f"model_class {kind!r} is not one npnet builds; expected 'Sequential' or 'Functional'")
    with _assemble.float_type(meta.get("floatx", "float32")):
        if kind == "Functional":
            return _assemble.chain_model(model_config["name"], layers, input_shape(model_config, layers),
                                         checked_input_name(model_config.get("input_name")))
        declared = model_config.get("build_input_shape")
        return _assemble.stacked_model(model_config["name"], layers, tuple(declared) if declared else None)


def checked_input_name(input_name):
    """A functional model's input name from npnet's own config: None, or a short string."""
    if input_name is not None and (not isinstance(input_name, str) or not 0 < len(input_name) <= 256):
        raise ValueError(f"input_name must be a string of 1 to 256 characters; received "
                         f"{reprlib.repr(input_name)}")
    return input_name


def _set_weights(model, weights):
    named = named_weights(model)
    expected_keys = {f"{i:03d}/{name}" for i, name, _ in named}
    if set(weights) != expected_keys:
        raise ValueError(f"weights {sorted(weights)} do not match the architecture {sorted(expected_keys)}")
    stored = [Stored(f"weights.safetensors entry {i:03d}/{name}", weights[f"{i:03d}/{name}"]) for i, name, _ in named]
    model.set_weights(restore.checked_weights(model, stored))


def _compile(model, spec, optimizer_arrays, backend):
    optimizer = optimizers_module.deserialize(spec["optimizer"]["class_name"], spec["optimizer"]["config"])
    loss = losses_module.deserialize(spec["loss"].get("class_name", spec["loss"]["name"]), spec["loss"]["config"])
    # The backend it was saved with, unless the caller chooses: backends agree only to
    # float32 rounding, and a loaded model should predict bit for bit as the saved one.
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=keras_architecture.metrics_from_keras(spec["metrics"], "compile settings"),
                  backend=backend if backend is not None else spec.get("backend"),
                  weighted_metrics=keras_architecture.metrics_from_keras(spec.get("weighted_metrics"),
                                                                         "compile settings weighted_metrics"))
    # also for optimizers without state arrays (plain SGD): the step count
    iterations = restore.checked_iterations(spec.get("optimizer_iterations", 0),
                                            "model.json's compile.optimizer_iterations")
    _assemble.restore_loaded_optimizer(model, StoredOptimizer(iterations, _stored_slots(model, optimizer_arrays)))


def _stored_slots(model, optimizer_arrays):
    """``{slot: [Stored per trainable parameter]}`` from optimizer.safetensors, or None when
    the file has no optimizer arrays (an optimizer that never stepped)."""
    if not optimizer_arrays:
        return None
    count = len(model.trainable_weights)
    wanted = [f"{slot}/{j:03d}" for slot in model.optimizer.slots for j in range(count)]
    if set(optimizer_arrays) != set(wanted):
        raise ValueError(f"optimizer.safetensors holds {reprlib.repr(sorted(optimizer_arrays))}; "
                         f"{type(model.optimizer).__name__} for this model has {reprlib.repr(wanted)}")
    return {slot: [Stored(f"optimizer.safetensors entry {slot}/{j:03d}", optimizer_arrays[f"{slot}/{j:03d}"])
                   for j in range(count)] for slot in model.optimizer.slots}


def _version():
    from .. import __version__
    return __version__
