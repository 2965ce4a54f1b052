"""The single dispatch point between a model and the code that does its arithmetic.

``create(name, layers, loss, optimizer, accuracy)`` builds a trainer from explicit parts
(never from the model) and raises *before* anything changes when it cannot run them. A
trainer (:class:`npnet.backends.base.Trainer`) offers:

* ``train_steps(x, y, order, batch_size, first_step, n_steps)``: consecutive optimizer steps;
* ``train_batch(x, y)``: one step on one batch;
* ``test_batch(x, y, sample_weight=None) -> (loss, n_correct)``: no update;
* ``predict(x, batch_size)``: the outputs; ``model(x)`` and ``predict`` both come here.

``numpy`` is the readable reference; ``numba`` runs fused compiled kernels. ``None`` (or
``"auto"``) chooses numba when it covers the parts and NumPy otherwise.
"""

import importlib
import os
import warnings

_BACKENDS = {
    "numpy": ("npnet.backends.numpy_backend", "NumpyBackend"),
    "numba": ("npnet.backends.numba_backend", "NumbaBackend"),
}
AUTO = "auto"
_warned_no_numba = False


def names():
    """The backend names ``compile(backend=...)`` accepts, ``'auto'`` included."""
    return sorted(_BACKENDS) + [AUTO]


def default_name():
    """``NPNET_BACKEND`` from the environment, else ``'auto'``."""
    return os.environ.get("NPNET_BACKEND", AUTO) or AUTO


def create(name, layers, loss=None, optimizer=None, accuracy=None):
    """A trainer of backend ``name`` for these parts (loss and optimizer None: inference only)."""
    if name is None:
        name = default_name()
    if name == AUTO:
        return _create_auto(layers, loss, optimizer, accuracy)
    if name not in _BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; known backends: {', '.join(names())}")
    module_name, class_name = _BACKENDS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(layers, loss, optimizer, accuracy)


def _create_auto(layers, loss, optimizer, accuracy):
    """numba when it covers the parts, else NumPy; one warning if numba cannot be imported."""
    global _warned_no_numba
    from . import numba_backend, numpy_backend

    try:
        numba_backend.require_numba()
    except ImportError as error:
        if not _warned_no_numba:
            _warned_no_numba = True
            warnings.warn(f"npnet uses its NumPy backend: {error}", RuntimeWarning, stacklevel=3)
        return numpy_backend.NumpyBackend(layers, loss, optimizer, accuracy)
    if numba_backend.unsupported_reason(layers, loss, optimizer) is None:
        return numba_backend.NumbaBackend(layers, loss, optimizer, accuracy)
    return numpy_backend.NumpyBackend(layers, loss, optimizer, accuracy)
