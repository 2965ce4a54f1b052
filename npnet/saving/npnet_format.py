"""npnet's own model file: a zip of ``model.json`` and safetensors arrays, no pickle.

Layout (``format_version`` 1):

* ``model.json`` — the architecture (``model.get_config()``), the float type, and the
  compile settings: optimizer, loss, metrics, backend and the optimizer's step count;
* ``weights.safetensors`` — ``"{layer index:03d}/{weight name}"`` -> array;
* ``optimizer.safetensors`` — ``"{slot}/{parameter index:03d}"`` -> array, when the
  optimizer has state and ``include_optimizer`` is True.

Nothing in such a file can run code when it is loaded: JSON and raw arrays only, and class
names are looked up in npnet's own tables.
"""

import json
import os
import zipfile

import numpy as np

from .. import config, layers as layers_module, losses as losses_module
from .. import optimizers as optimizers_module, utils

FORMAT_NAME = "npnet.model"
FORMAT_VERSION = 1


def save(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place)."""
    from safetensors.numpy import save as save_tensors

    model.require_built("save")
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "npnet_version": _version(),
            "floatx": str(model.weights[0].dtype) if model.weights else config.floatx(),
            "model": model.get_config(), "compile": _compile_spec(model, include_optimizer)}
    weights = {f"{i:03d}/{name}": np.ascontiguousarray(p) for i, name, p in named_weights(model)}
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
            "loss": {"name": model.loss.name, "config": model.loss.get_config()},
            "metrics": [metric.name for metric in model.metrics],
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
    return [(i, name, p) for i, layer in enumerate(model.layers) for name, p in layer.params.items()]


def _read_archive(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_tensors

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "model.json" not in names or "weights.safetensors" not in names:
                raise ValueError(f"{path!r} is not an npnet model file: it lacks model.json or "
                                 "weights.safetensors")
            meta = json.loads(archive.read("model.json").decode("utf-8"))
            weights = load_tensors(archive.read("weights.safetensors"))
            optimizer_arrays = (load_tensors(archive.read("optimizer.safetensors"))
                                if "optimizer.safetensors" in names else {})
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path!r} is not an npnet model file, or it is truncated or corrupted "
                         f"({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, zipfile.LargeZipFile,
            OSError, EOFError) as error:
        raise ValueError(f"{path!r} is corrupted: {error}") from None
    _check_format(path, meta)
    return meta, weights, optimizer_arrays


def _check_format(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path!r} is not an npnet model file (format {found!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path!r} is an npnet model of format version {version!r}, but this npnet "
                         f"({_version()}) reads version {FORMAT_VERSION}; load it with a matching npnet")


def load(path, backend=None):
    """Load a model written by :func:`save`; compiled again if it was compiled.

    The model is compiled for the backend it was saved with, unless ``backend`` is given.
    Raises ``ValueError`` with the reason for a file that is not an npnet model, is
    truncated or corrupted, or comes from an incompatible format version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    meta, weights, optimizer_arrays = _read_archive(path)
    try:
        model = _build_model(meta["model"], meta.get("floatx", "float32"))
        _set_weights(model, weights)
        if meta.get("compile"):
            _compile(model, meta["compile"], optimizer_arrays, backend)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path!r} is corrupted or incompatible: missing or malformed entry {error}") from None
    except ValueError as error:  # e.g. an unknown layer or weights that do not fit: name the file
        raise ValueError(f"{path!r} cannot be loaded: {error}") from None
    return model


def _build_model(model_config, floatx):
    from ..models import Sequential

    previous_floatx = config.floatx()
    config.set_floatx(floatx)
    try:
        model = Sequential(name=model_config["name"])
        for spec in model_config["layers"]:
            model.add(layers_module.deserialize(spec["class_name"], spec["config"]))
        if not model.built and model_config.get("build_input_shape"):
            model.build(tuple(model_config["build_input_shape"]))
    finally:
        config.set_floatx(previous_floatx)
    return model


def _set_weights(model, weights):
    named = named_weights(model)
    expected_keys = {f"{i:03d}/{name}" for i, name, _ in named}
    if set(weights) != expected_keys:
        raise ValueError(f"weights {sorted(weights)} do not match the architecture {sorted(expected_keys)}")
    model.set_weights([weights[f"{i:03d}/{name}"] for i, name, _ in named])


def _compile(model, spec, optimizer_arrays, backend):
    optimizer = optimizers_module.deserialize(spec["optimizer"]["class_name"], spec["optimizer"]["config"])
    loss = losses_module.deserialize(spec["loss"]["name"], spec["loss"]["config"])
    # The backend it was saved with, unless the caller chooses: backends agree only to
    # float32 rounding, and a loaded model should predict bit for bit as the saved one.
    model.compile(optimizer=optimizer, loss=loss, metrics=spec["metrics"],
                  backend=backend if backend is not None else spec.get("backend"))
    if optimizer_arrays:
        optimizer.build(model.trainable_weights)
        for slot, arrays in optimizer.state.items():
            for j, array in enumerate(arrays):
                _copy_exact(array, optimizer_arrays[f"{slot}/{j:03d}"], f"optimizer slot {slot}/{j:03d}")
    # also for optimizers without state arrays (plain SGD)
    optimizer.iterations = spec.get("optimizer_iterations", 0)


def _copy_exact(target, stored, what):
    """Copy ``stored`` into ``target`` only when the shapes are equal: no broadcasting."""
    if stored.shape != target.shape:
        raise ValueError(f"{what} has shape {stored.shape}; expected {target.shape}")
    np.copyto(target, stored, casting="same_kind")


def _version():
    from .. import __version__
    return __version__
