"""File round trips for ``python -m reference.crosscheck``: the tutorial model, trained, saved
by one side and loaded by the other, its predictions on the test set compared.

Rows: Keras -> npnet through ``.keras``, ``.weights.h5`` and legacy ``.h5``; npnet -> Keras
through ``.keras`` and ``.weights.h5``; npnet -> onnxruntime through ONNX (when onnxruntime
is installed). Each row: the loaded weights equal the saved ones bit for bit, and max |Δp|
over the 10,000 test images (float32 forward passes of two implementations).
"""

import os
import tempfile

import numpy as np

import npnet

from . import keras_model, npnet_model

keras = keras_model.keras


def _trained_pair(data, backend, seed, epochs, n_train):
    keras.utils.set_random_seed(seed)
    theirs = keras_model.tutorial_model()
    theirs.fit(data.x_train[:n_train], data.y_train[:n_train], epochs=epochs, verbose=0)
    npnet.utils.set_random_seed(seed)
    ours = npnet_model.tutorial_model(backend)
    ours.fit(data.x_train[:n_train], data.y_train[:n_train], epochs=epochs, verbose=0)
    return ours, theirs


def _round_trips(ours, theirs, backend, directory):
    """``[(row name, the npnet-side model, the Keras-side model)]``, one side loaded from the
    file the other saved."""
    def path(name):
        return os.path.join(directory, name)

    theirs.save(path("keras.keras"))
    theirs.save_weights(path("keras.weights.h5"))
    theirs.save(path("keras_legacy.h5"))
    ours.save(path("npnet.keras"))
    ours.save_weights(path("npnet.weights.h5"))
    from_weights = npnet_model.tutorial_model(backend)
    from_weights.load_weights(path("keras.weights.h5"))
    keras_from_weights = keras_model.tutorial_model()
    keras_from_weights.load_weights(path("npnet.weights.h5"))
    rows = [("Keras -> npnet, .keras", npnet.models.load_model(path("keras.keras"), backend=backend), theirs),
            ("Keras -> npnet, .weights.h5", from_weights, theirs),
            ("Keras -> npnet, legacy .h5", npnet.models.load_model(path("keras_legacy.h5"), backend=backend), theirs),
            ("npnet -> Keras, .keras", ours, keras.models.load_model(path("npnet.keras"))),
            ("npnet -> Keras, .weights.h5", ours, keras_from_weights)]
    return rows


def check_files(backend, data, result, seed=0, epochs=1, n_train=None):
    """Report rows, made by ``result(name, npnet's predictions, the other side's, weights
    equal bit for bit or None)``."""
    ours, theirs = _trained_pair(data, backend, seed, epochs, n_train or len(data.x_train))
    results = []
    with tempfile.TemporaryDirectory(prefix="npnet-crosscheck-") as directory:
        for name, npnet_side, keras_side in _round_trips(ours, theirs, backend, directory):
            same = all(np.array_equal(np.asarray(a), np.asarray(b))
                       for a, b in zip(npnet_side.get_weights(), keras_side.get_weights()))
            results.append(result(name, npnet_side.predict(data.x_test, verbose=0),
                                  keras_side.predict(data.x_test, verbose=0), same))
        onnx_predictions = _onnx_predictions(ours, data.x_test, os.path.join(directory, "npnet.onnx"))
        if onnx_predictions is not None:
            results.append(result("npnet -> onnxruntime, ONNX", ours.predict(data.x_test, verbose=0),
                                  onnx_predictions, None))
    return results


def _onnx_predictions(model, x, path):
    try:
        import onnxruntime
    except ImportError:
        return None
    model.export(path, format="onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"inputs": np.ascontiguousarray(x, dtype=np.float32)})[0]

