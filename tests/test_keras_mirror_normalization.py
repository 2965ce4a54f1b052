"""Mirror tests: ``npnet.layers.Normalization`` beside ``keras.layers.Normalization``.

adapt() on arrays (every kind of axis, integer data, a 3-D input) and on batches, the forward
pass and its inverse, given mean and variance, the weights Keras lists, a regression model
trained beside its Keras twin (a 1-D column of inputs, as the regression tutorial feeds it),
and the layer crossing over in Keras's files and ONNX. Nothing changes on bad input.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import npnet  # noqa: E402
from npnet.layers import Dense, Normalization  # noqa: E402

pytestmark = pytest.mark.reference


def features(shape=(60, 4), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=np.arange(1, shape[-1] + 1) * 10, scale=np.arange(1, shape[-1] + 1), size=shape)


def both(**kwargs):
    return Normalization(**kwargs), keras.layers.Normalization(**kwargs)


@pytest.mark.parametrize("axis", [-1, 1, None, (1,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_adapt_on_an_array_and_the_forward_pass_match_keras(axis, dtype):
    data = (features() * (1 if dtype != np.int64 else 10)).astype(dtype)
    ours, theirs = both(axis=axis)
    ours.adapt(data)
    theirs.adapt(data)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [w.dtype for w in ours.get_weights()] == [np.dtype(w.dtype) for w in theirs.get_weights()]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
    x = features((7, 4), seed=1)
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))


@pytest.mark.parametrize("axis", [-1, (1, 2), 1, None], ids=str)
def test_a_3d_input_keeps_the_axes_keras_keeps(axis):
    data = features((20, 3, 5))
    ours, theirs = both(axis=axis)
    ours.adapt(data)
    theirs.adapt(data)
    np.testing.assert_array_equal(ours.get_weights()[0], np.asarray(theirs.get_weights()[0]))
    np.testing.assert_array_equal(ours(data[:4]), np.asarray(theirs(data[:4])))


def test_adapt_on_batches_combines_them_as_keras():
    data = features((50, 3)).astype(np.float32)
    batches = [data[:20], data[20:37], data[37:]]
    ours, theirs = both()
    ours.adapt(batches)
    theirs.adapt(batches)
    for a, b in zip(ours.get_weights()[:2], theirs.get_weights()[:2]):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-6)
    mean, variance = data.astype(np.float64).mean(axis=0), data.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(ours.get_weights()[0], mean, rtol=1e-5)
    np.testing.assert_allclose(ours.get_weights()[1], variance, rtol=1e-4)
    generator_layer = Normalization()
    generator_layer.adapt((batch, None) for batch in batches)  # (x, y) pairs: x is used
    np.testing.assert_array_equal(generator_layer.get_weights()[0], ours.get_weights()[0])


def test_invert_undoes_the_normalization_as_keras():
    data = features()
    ours, theirs = both(invert=True)
    ours.adapt(data)
    theirs.adapt(data)
    x = np.random.default_rng(2).normal(size=(5, 4))
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))
    forward = Normalization()
    forward.adapt(data)
    np.testing.assert_allclose(ours(forward(data[:5])), data[:5], rtol=1e-5)


@pytest.mark.parametrize("mean, variance", [(3.0, 2.0), ([1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 0.0, 2.0]),
                                            (np.array([[5.0]]), np.array([[9.0]]))],
                         ids=["scalar", "per-feature with a zero variance", "broadcast"])
def test_a_given_mean_and_variance_are_constants_as_in_keras(mean, variance):
    axis = (1, 2) if np.ndim(mean) == 2 else -1
    shape = (6, 3, 4) if np.ndim(mean) == 2 else (6, 4)
    ours, theirs = both(axis=axis, mean=mean, variance=variance)
    x = np.random.default_rng(3).normal(size=shape)
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))
    assert ours.get_weights() == [] == theirs.get_weights()
    assert ours.get_config()["mean"] == theirs.get_config()["mean"]


def test_errors_name_the_problem_and_change_nothing():
    with pytest.raises(ValueError, match="mean and variance together"):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match="one shape"):
        Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="axis 0 is the batch axis"):
        Normalization(axis=0).adapt(features())
    with pytest.raises(ValueError, match="out of range"):
        Normalization(axis=3).adapt(features())
    with pytest.raises(ValueError, match="finite"):
        Normalization(mean=float("nan"), variance=1.0)
    layer = Normalization()
    layer.adapt(features())
    before = layer.get_weights()
    bad = features()
    bad[3, 1] = np.nan
    for data, message in ((bad, "NaN or infinite"), (features((10, 5)), r"built for inputs of shape \(None, 4\)"),
                          (np.array([["a", "b", "c", "d"]]), "must be numbers"), ([], "without any batch"),
                          (np.zeros((0, 4)), "at least one sample"), (features() * 1e300, "overflows float32")):
        with pytest.raises(ValueError, match=message):
            layer.adapt(data)
        for a, b in zip(layer.get_weights(), before):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="computes them instead"):
        Normalization(mean=1.0, variance=1.0).adapt(features())


def test_the_statistics_are_never_trained_and_keras_counts_them_as_non_trainable():
    data = features()
    norm = Normalization()
    norm.adapt(data)
    model = npnet.Sequential([npnet.Input((4,)), norm, Dense(3, activation="relu"), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(), keras.layers.Dense(3, activation="relu"),
                               keras.layers.Dense(1)])
    theirs.layers[0].adapt(data)
    assert len(model.non_trainable_weights) == len(theirs.non_trainable_weights) == 3
    assert len(model.trainable_weights) == len(theirs.trainable_weights) == 4
    assert model.count_params() == theirs.count_params()
    statistics = [w.copy() for w in norm.get_weights()]
    model.fit(data, data[:, 0], epochs=2, verbose=0)
    for a, b in zip(norm.get_weights(), statistics):
        np.testing.assert_array_equal(a, b)
    norm.trainable = True  # as in Keras, the statistics stay out of training
    assert not norm.trainable and len(model.trainable_weights) == 4


@pytest.mark.parametrize("backend", [None, "numpy", "numba"])
def test_a_regression_on_one_column_trains_like_keras(backend):
    """The regression tutorial's first model: Normalization(input_shape=[1], axis=None) adapted on
    a 1-D column, Dense(1), MAE under Adam(0.1), fed the 1-D column itself (Keras adds the axis)."""
    rng = np.random.default_rng(4)
    column = rng.uniform(50, 200, size=120)
    target = 40 - 0.15 * column + rng.normal(size=120)
    ours_norm = Normalization(input_shape=[1], axis=None)
    ours_norm.adapt(column)
    ours = npnet.Sequential([ours_norm, Dense(units=1)])
    ours.compile(optimizer=npnet.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error", backend=backend)
    assert ours.backend_name == (backend or "numba")  # the automatic choice: numba runs a first Normalization
    theirs_norm = keras.layers.Normalization(axis=None)
    theirs_norm.adapt(column)
    theirs = keras.Sequential([keras.Input((1,)), theirs_norm, keras.layers.Dense(units=1)])
    theirs.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error")
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(column[:10], verbose=0), theirs.predict(column[:10], verbose=0), rtol=1e-6)
    ours_h = ours.fit(column, target, epochs=5, shuffle=False, verbose=0, validation_split=0.2).history
    theirs_h = theirs.fit(column, target, epochs=5, shuffle=False, verbose=0, validation_split=0.2).history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(ours_h[key], theirs_h[key], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(column, target, verbose=0),
                               theirs.evaluate(column, target, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("options", [{}, {"axis": None}, {"invert": True},
                                     {"mean": [1.0, 2.0, 3.0, 4.0], "variance": [1.0, 4.0, 9.0, 16.0]}],
                         ids=["adapted", "axis-None", "invert", "given"])
def test_normalization_crosses_over_in_keras_files(tmp_path, suffix, options):
    data = features().astype(np.float32)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(**options), keras.layers.Dense(2)])
    if "mean" not in options:
        theirs.layers[0].adapt(data)
    theirs.compile(optimizer="adam", loss="mse")
    theirs.save(tmp_path / f"theirs{suffix}")
    ours = npnet.models.load_model(tmp_path / f"theirs{suffix}")
    assert type(ours.layers[0]) is Normalization and ours.layers[0].invert == options.get("invert", False)
    np.testing.assert_allclose(ours.predict(data, verbose=0), theirs.predict(data, verbose=0), rtol=1e-5, atol=1e-5)
    ours.save(tmp_path / f"ours{suffix}")
    back = keras.models.load_model(tmp_path / f"ours{suffix}")
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert back.layers[0].get_config()["axis"] == theirs.layers[0].get_config()["axis"]


def test_normalization_round_trips_through_npnet_files_and_onnx(tmp_path):
    data = features().astype(np.float32)
    norm = Normalization(axis=-1)
    norm.adapt(data)
    model = npnet.Sequential([npnet.Input((4,)), norm, Dense(3, activation="tanh")])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    ort = pytest.importorskip("onnxruntime")
    model.export(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    np.testing.assert_allclose(session.run(None, {"inputs": data})[0], model.predict(data, verbose=0),
                               rtol=1e-6, atol=1e-6)
