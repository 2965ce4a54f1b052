"""The single dispatch point between a model and the code that does its arithmetic.

A backend is created by ``compile`` for one model and offers three methods:

* ``train_batch(x, y) -> (loss, n_correct, applied)``: one optimizer step on a batch;
  ``applied`` is False when the loss or a gradient was not finite and the update was skipped;
* ``test_batch(x, y) -> (loss, n_correct)``: the loss and correct count, no update;
* ``predict(x, batch_size) -> probabilities``.

``numpy`` is the readable reference; ``numba`` runs fused compiled kernels.
"""

import importlib
import os

_BACKENDS = {
    "numpy": ("npnet.backends.numpy_backend", "NumpyBackend"),
    "numba": ("npnet.backends.numba_backend", "NumbaBackend"),
}
DEFAULT = "numba"


def names():
    return sorted(_BACKENDS)


def default_name():
    """``NPNET_BACKEND`` from the environment, else ``'numba'``."""
    return os.environ.get("NPNET_BACKEND", DEFAULT)


def create(name, model):
    """Instantiate backend ``name`` for a compiled ``model`` (validating what it supports)."""
    if name is None:
        name = default_name()
    if name not in _BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; known backends: {', '.join(names())}")
    module_name, class_name = _BACKENDS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(model)
