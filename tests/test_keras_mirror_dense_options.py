"""Mirror tests: ``Dense(use_bias=False)`` beside Keras's: no bias weight, training (on both
backends), penalties, files both ways and ONNX."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import npnet  # noqa: E402
from keras_helpers import fit_both_and_compare  # noqa: E402

pytestmark = pytest.mark.reference


def twin(lib):
    """Two Dense layers, the first without a bias; its bias_regularizer penalises nothing."""
    return [lib.layers.Dense(6, activation="tanh", use_bias=False, bias_regularizer="l2", kernel_regularizer="l1"),
            lib.layers.Dense(3, activation="softmax")]


def pair(backend=None):
    npnet.utils.set_random_seed(0)
    ours = npnet.Sequential([npnet.Input((5,))] + twin(npnet))
    ours.compile(optimizer=npnet.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", backend=backend)
    theirs = keras.Sequential([keras.Input((5,))] + twin(keras))
    theirs.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def data():
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    return x, x[:, :3].argmax(axis=1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_dense_layer_without_bias_has_keras_weights_and_trains_like_keras(backend):
    ours, theirs = pair(backend)
    assert ours.backend_name == backend
    assert ours.layers[0].bias is None and theirs.layers[0].bias is None
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [name.split("/")[1] for name in ours.weight_names()] == ["kernel", "kernel", "bias"]
    assert len(ours.losses) == len(theirs.losses) == 1  # the kernel's L1 alone
    assert ours.count_params() == theirs.count_params()
    fit_both_and_compare(ours, theirs, *data())


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_use_bias_false_crosses_over_in_keras_files(tmp_path, suffix):
    ours, theirs = pair()
    x, _ = data()
    ours.save(tmp_path / f"ours{suffix}")
    loaded = keras.models.load_model(tmp_path / f"ours{suffix}")
    assert loaded.layers[0].use_bias is False
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / f"theirs{suffix}")
    back = npnet.models.load_model(tmp_path / f"theirs{suffix}")
    assert back.layers[0].use_bias is False and back.layers[0].bias is None
    np.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_use_bias_false_in_npnet_files_and_onnx(tmp_path):
    ours, _ = pair()
    x, _ = data()
    ours.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    assert loaded.layers[0].use_bias is False
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ours.predict(x, verbose=0))
    ort = pytest.importorskip("onnxruntime")
    ours.export(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    np.testing.assert_allclose(session.run(None, {"inputs": x})[0], ours.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_gradient_check_passes_without_a_bias():
    ours, _ = pair()
    x, y = data()
    report = npnet.gradcheck(ours, x[:8], y[:8])
    assert report.passed and "dense/bias" not in str(report)
