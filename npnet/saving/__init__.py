"""Saving and loading whole models; the file's extension chooses the format, as in Keras.

* ``.npnet`` (and any extension npnet does not reserve for another format): npnet's own
  zip of JSON and safetensors (:mod:`npnet.saving.npnet_format`), which cannot carry code;
* ``.h5`` / ``.hdf5``: the legacy Keras HDF5 format, which npnet does not write.
"""

import os

from . import npnet_format

_LEGACY_HDF5 = (".h5", ".hdf5")


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` in the format its extension names."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension in _LEGACY_HDF5:
        raise ValueError(f"npnet does not write the legacy HDF5 format ({extension!r}): save to a "
                         "path ending in '.npnet' (npnet's own format) instead")
    npnet_format.save(model, path, include_optimizer=include_optimizer)


def load_model(path, backend=None):
    """Read a model saved by :func:`save_model` (see :func:`npnet.saving.npnet_format.load`)."""
    return npnet_format.load(path, backend=backend)
