"""``keras.backend``'s session helpers that Keras code calls between models.

npnet keeps no graph or session: the one global state a new model sees is the counters
that name layers and models (``dense``, ``dense_1``, ...), which :func:`clear_session`
resets, as Keras's does, so a script that builds models in a loop gets the same names each
time. The float type lives in :mod:`npnet.config`; this module repeats Keras's spelling.
"""

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
