"""``keras.backend``'s session helpers that Keras code calls between models.

npnet keeps no graph or session: the one global state a new model sees is the counters
that name layers and models (``dense``, ``dense_1``, ...), which :func:`clear_session`
resets, as Keras's does, so a script that builds models in a loop gets the same names each
time. The float type lives in :mod:`npnet.config`; this module repeats Keras's spelling.
"""

import numpy as np

from . import config, layers, models, utils

floatx = config.floatx
set_floatx = config.set_floatx


def clear_session(free_memory=True):
    """Restart layer and model names from ``dense``, ``sequential``... as Keras does.

    Models already built are untouched and keep working (npnet has no graph to free);
    ``free_memory`` is accepted for Keras's signature and changes nothing.
    """
    layers._name_counts.clear()
    models.Sequential._count = 0


def get_value(x):
    """The value of ``x`` as NumPy holds it, as Keras's ``get_value``: ``numpy()`` of a
    learning rate (``optimizer.learning_rate``) or a Variable, ``np.asarray(x)`` otherwise."""
    to_numpy = getattr(x, "numpy", None)
    return to_numpy() if callable(to_numpy) else np.asarray(x)


def set_value(x, value):
    """``x.assign(value)``, as Keras's ``set_value``: for ``optimizer.learning_rate`` and
    Variables (a weight of a layer). Anything else has no value to set and is refused."""
    assign = getattr(x, "assign", None)
    if not callable(assign):
        raise TypeError(f"set_value expects optimizer.learning_rate or an npnet.Variable (a weight); "
                        f"received {type(x).__name__}. To change an optimizer's setting, assign the "
                        "attribute: optimizer.learning_rate = 0.01")
    assign(value)


#: keras.backend names npnet lacks, with what to write instead.
_KERAS_NAMES = {
    "backend": "npnet computes with NumPy (and numba kernels): model.backend_name says which "
               "one a model uses ('numpy' or 'numba')",
    "epsilon": "npnet has no global epsilon: write the number (Keras's default is 1e-7)",
    "set_epsilon": "npnet has no global epsilon to set",
    "image_data_format": "npnet has no image layers: Flatten takes any (batch, ...) array",
    "set_image_data_format": "npnet has no image layers: Flatten takes any (batch, ...) array",
}


def __getattr__(name):
    raise utils.missing_name(__name__, name, _KERAS_NAMES)
