"""The Keras 3 ``.keras`` file: a zip of ``config.json``, ``metadata.json`` and
``model.weights.h5`` (the layout of :mod:`npnet.saving.keras_weights`).

npnet writes what Keras writes for the equivalent model, so ``keras.saving.load_model``
opens it, and reads what Keras writes for a Sequential or a functional chain of the layers
npnet has. Reading never imports or calls anything a file names: see
:mod:`npnet.saving.keras_config` for the closed tables every name is checked against.
"""

import json
import os
import time
import zipfile

from .. import config, utils
from . import _assemble, _zip, errors, keras_architecture, keras_weights, limits
from .errors import ModelFileError, reading
from .keras_config import KERAS_VERSION

MEMBERS = ("config.json", "metadata.json", "model.weights.h5")


def save(model, path, include_optimizer=True):
    """Write ``model`` as a ``.keras`` file, atomically; nothing is written if any part of
    the model has no Keras equivalent."""
    from .. import __version__

    model.require_built("save")
    floatx = str(model.weights[0].dtype) if model.weights else config.floatx()
    model_config = keras_architecture.model_to_keras(model, floatx)
    if not include_optimizer:
        model_config.pop("compile_config", None)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
                "saved_by": f"npnet {__version__}"}
    weights = keras_weights.to_bytes(model, include_optimizer)
    with utils.atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(model_config))
        archive.writestr("model.weights.h5", weights)


def load(path, backend=None, custom_objects=None, compile=True):
    """A compiled (if the file says so and ``compile`` is True) npnet ``Sequential``, or
    functional ``Model``, from a ``.keras`` file; layers of the caller's own classes are made
    from ``custom_objects`` (see :mod:`npnet.saving.custom_objects`)."""
    path = os.fsdecode(path)
    errors.require_file(path)
    with reading(path):
        with _zip.open_archive(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFileError(path, "not a Keras model file: it lacks config.json or model.weights.h5")
            model_config = errors.parse_json(_zip.read_member(archive, "config.json", limits.MAX_JSON_BYTES, path),
                                             "config.json")
            spec = keras_architecture.model_from_keras(model_config, "config.json", custom_objects)
            compile_spec = (keras_architecture.compile_from_keras(model_config.get("compile_config"),
                                                                  "config.json compile_config") if compile else None)
            layers = _assemble.make_layers([(s.cls, s.kwargs) for s in spec.layers], spec.floatx)
            expected = _assemble.expected_shapes(layers, spec.input_shape, path)
            data = _zip.read_member(archive, "model.weights.h5", keras_weights.member_limit(expected), path)
        with keras_weights.open_bytes(data) as h5:
            arrays = keras_weights.read_layer_weights(h5, [s.keras_key for s in spec.layers], expected, path)
            state = _optimizer_state(h5, compile_spec, layers, expected, path)
        model = _assemble.build(spec.name, layers, spec.input_shape, spec.floatx, arrays,
                                spec.functional, spec.input_name)
        _assemble.compile_loaded(model, compile_spec, backend, state)
    return model


def _optimizer_state(h5, compile_spec, layers, expected, path):
    if compile_spec is None or not compile_spec.optimizer_in_file:
        return None  # no optimizer in the file: any stored state belongs to none we have
    trainable = [shape for layer, shapes in zip(layers, expected) if layer.trainable
                 for shape in shapes.values()]
    return keras_weights.read_optimizer(h5, compile_spec.optimizer, trainable, path)

