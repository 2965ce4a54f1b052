"""``model.save_weights`` / ``model.load_weights`` with Keras's ``.weights.h5`` files.

Written in Keras 3's layout (:mod:`npnet.saving.keras_weights`), so the file moves between
npnet and Keras in both directions. ``load_weights`` also takes a ``.keras`` file (its
weights) and a legacy ``.h5`` file, as Keras does. The model's weights change only after
every array was read and checked; the optimizer's state is restored too when the model is
compiled and the file carries one that fits.
"""

import os

from .. import utils
from . import _zip, errors, keras_weights, legacy_h5, restore
from .errors import ModelFileError, reading


def save_weights(model, path, overwrite=True):
    """Write the weights (and the optimizer's state, when compiled) to ``*.weights.h5``."""
    path = os.fsdecode(path)
    if not path.lower().endswith(".weights.h5"):
        raise ValueError(f"save_weights writes Keras weights files, whose names end in "
                         f"'.weights.h5'; received {path!r}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")
    model.require_built("save_weights")
    data = keras_weights.to_bytes(model, include_optimizer=True)
    with utils.atomic_write(path, "wb") as handle:
        handle.write(data)


def load_weights(model, path):
    """Set ``model``'s weights from a ``.weights.h5``, ``.keras`` or legacy ``.h5`` file.

    Everything is read and checked first (shapes, values finite in the model's float type,
    the optimizer's slots and step count, see :mod:`npnet.saving.restore`); then weights,
    slots and step count are assigned in one step that Ctrl-C cannot split."""
    path = os.fsdecode(path)
    model.require_built("load_weights")
    errors.require_file(path, "weights")
    lowered = path.lower()
    if not lowered.endswith((".weights.h5", ".keras", ".h5", ".hdf5")):
        raise ValueError(f"load_weights reads '.weights.h5', '.keras' or legacy '.h5' files; "
                         f"received {path!r} (npnet's own files: npnet.models.load_model)")
    with reading(path):
        if lowered.endswith((".h5", ".hdf5")) and not lowered.endswith(".weights.h5"):
            arrays, stored_optimizer = legacy_h5.read_weights_for(model, path), None
        else:
            arrays, stored_optimizer = _read_keras_weights(model, path, lowered.endswith(".keras"))
        weights = restore.checked_weights(model, [a for per_layer in arrays for a in per_layer])
        optimizer_state = (None if stored_optimizer is None else
                           restore.prepared_optimizer(model.optimizer, model.trainable_weights, stored_optimizer))
        restore.assign(model, weights, optimizer_state)


def _read_keras_weights(model, path, zipped):
    import h5py

    expected = [{name: p.shape for name, p in layer.params.items()} for layer in model._layers]
    if zipped:
        with _zip.open_archive(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise ModelFileError(path, "not a Keras model file: it lacks model.weights.h5")
            data = _zip.read_member(archive, "model.weights.h5", keras_weights.member_limit(expected), path)
        h5 = keras_weights.open_bytes(data)
    else:
        h5 = h5py.File(path, "r")
    with h5:
        arrays = keras_weights.read_layer_weights(h5, keras_weights.layer_keys(model._layers), expected, path)
        state = None
        if model.compiled:
            shapes = [p.shape for p in model.trainable_weights]
            state = keras_weights.read_optimizer(h5, model.optimizer, shapes, path)
    return arrays, state
