"""Saving and loading models; the file's extension chooses the format, as in Keras.

* ``.keras``: Keras 3's zip (:mod:`npnet.saving.keras_format`), read and written, the same
  file Keras opens;
* ``.weights.h5``: Keras's weights file, through ``save_weights`` / ``load_weights``
  (:mod:`npnet.saving.weights_file`);
* ``.h5`` / ``.hdf5``: the legacy Keras HDF5 format, read and written as Keras 3 writes it
  (:mod:`npnet.saving.legacy_h5`);
* ``.npnet``: npnet's own zip of JSON and safetensors (:mod:`npnet.saving.npnet_format`);
  ``load_model`` also reads it under any other name (older npnet saved to any extension).

``save_model`` refuses any other extension before writing anything, as Keras 3 does.
``model.to_json()`` / ``model_from_json`` / ``from_config`` carry the architecture alone
(:mod:`npnet.saving.model_json`). Layers of the caller's own classes travel in every format
and are loaded back only from the classes passed as ``custom_objects``
(:mod:`npnet.saving.custom_objects`).

No format runs code from a file; every failure to load is a :class:`ModelFileError`
(a ``ValueError``) naming the file. See README, "Loading files safely".
"""

import os

from . import custom_objects as custom, keras_format, legacy_h5, model_json, npnet_format, weights_file
from .errors import FileTooLarge, ModelFileError

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "export",
           "ModelFileError", "FileTooLarge"]


#: The extensions ``save_model`` writes, in the order its error lists them.
SAVE_EXTENSIONS = (".keras", ".h5", ".hdf5", ".npnet")


def file_format(path):
    """``'keras'``, ``'weights.h5'``, ``'legacy_h5'``, ``'npnet'`` or (no known extension)
    ``'other'`` for a path's extension."""
    lowered = os.fsdecode(path).lower()
    if lowered.endswith(".weights.h5"):
        return "weights.h5"
    if lowered.endswith(".keras"):
        return "keras"
    if lowered.endswith((".h5", ".hdf5")):
        return "legacy_h5"
    if lowered.endswith(".npnet"):
        return "npnet"
    return "other"


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` in the format its extension names; any other extension is
    refused before anything is written (Keras 3 refuses it too, rather than guess a format).
    A legacy ``.h5`` file's missing folders are created, as Keras does; for the other
    formats a missing folder is a ``FileNotFoundError`` naming it."""
    kind = file_format(path)
    if kind == "weights.h5":
        raise ValueError(f"{os.fsdecode(path)!r} names a weights file: use model.save_weights(path), "
                         "or save the whole model to a path ending in '.keras'")
    if kind == "other":
        raise ValueError(_bad_extension_message(path))
    if kind == "keras":
        keras_format.save(model, path, include_optimizer=include_optimizer)
    elif kind == "legacy_h5":
        legacy_h5.save(model, path, include_optimizer=include_optimizer)
    else:
        npnet_format.save(model, path, include_optimizer=include_optimizer)


def _bad_extension_message(path):
    path = os.fsdecode(path)
    hint = ("; to export for inference runtimes use model.export(path, format='onnx')"
            if path.lower().endswith(".onnx") else
            "; model.export(path) writes an ONNX file for inference runtimes")
    return (f"Invalid filepath extension for saving: model.save() writes '.keras' (Keras 3's "
            f"format, recommended), '.h5' / '.hdf5' (legacy Keras HDF5) or '.npnet' (npnet's own); "
            f"add one of these{hint}. Received: filepath={path!r}")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, backend=None):
    """Read a model written by :func:`save_model`, by Keras 3 (``.keras``) or by Keras 2 /
    tf.keras (legacy ``.h5``), with Keras 3's arguments. Raises :class:`ModelFileError`
    naming the file and the problem.

    ``custom_objects``: ``{"ClassName": cls}`` for layers of your own classes (npnet layer
    classes, see :mod:`npnet.saving.custom_objects`); only these are ever instantiated.
    ``compile=False`` returns the model uncompiled, without the file's optimizer state.
    ``safe_mode`` is accepted as Keras's is; npnet never runs code from a file, so ``False``
    changes nothing (a ``Lambda`` is refused either way). ``backend`` is npnet's own: the
    backend to compile for (default: the one the model was saved with, or the automatic one).
    """
    custom_objects = custom.checked(custom_objects)
    for name, value in (("compile", compile), ("safe_mode", safe_mode)):
        if not isinstance(value, bool):
            raise TypeError(f"load_model({name}=...) must be True or False; received {value!r}")
    kind = file_format(filepath)
    if kind == "weights.h5":
        raise ValueError(f"{os.fsdecode(filepath)!r} holds weights only: build the model, then call "
                         "model.load_weights(path)")
    loader = {"keras": keras_format.load, "legacy_h5": legacy_h5.load}.get(kind, npnet_format.load)
    return loader(filepath, backend=backend, custom_objects=custom_objects, compile=compile)


def save_weights(model, path, overwrite=True):
    weights_file.save_weights(model, path, overwrite=overwrite)


def load_weights(model, path):
    weights_file.load_weights(model, path)


def export(model, path, format="onnx", verbose=None):
    """Write ``model`` for an inference runtime; ``format='onnx'`` only (see
    :mod:`npnet.saving.onnx_export`)."""
    if format != "onnx":
        raise ValueError(f"npnet exports format='onnx' only; received format={format!r} "
                         "(Keras's 'tf_saved_model' needs TensorFlow)")
    from . import onnx_export
    onnx_export.export(model, path, verbose=verbose)
