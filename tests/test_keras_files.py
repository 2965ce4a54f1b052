"""Files Keras reads and writes, checked against Keras 3 itself (mirror tests).

Every format in both directions: ``.keras`` (npnet -> Keras and Keras -> npnet, Sequential
and functional chain, optimizer state carried so one more training step matches),
``.weights.h5`` both ways, legacy ``.h5`` both ways (Keras 3's legacy writer, npnet's) and from genuine
Keras 2 (the committed ``tests/data/keras2_tiny.h5``), and ONNX through onnxruntime.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import npnet  # noqa: E402
from npnet.layers import Dense, Dropout, Flatten, ReLU, Softmax  # noqa: E402

pytestmark = pytest.mark.reference
DATA = os.path.join(os.path.dirname(__file__), "data")
TOLERANCE = 1e-6


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 3), dtype=np.float32), rng.integers(0, 3, n)


def npnet_model(optimizer=None, activation="relu", dropout=0.0):
    """Keras's twin below, with a Dropout layer (off unless ``dropout``: masks differ by side)."""
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(4, 3)), Dense(6, activation=activation, kernel_regularizer="l2"),
                              Dropout(dropout), Dense(5, activation="tanh", name="middle"), ReLU(), Dense(3), Softmax()])
    model.compile(optimizer=optimizer or npnet.optimizers.Adam(0.01, beta_1=0.8),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def keras_model(optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(6, activation="relu", kernel_regularizer="l2"),
                              keras.layers.Dense(5, activation="tanh"), keras.layers.Activation("relu"),
                              keras.layers.Dense(3), keras.layers.Softmax()])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(0.01, beta_1=0.8),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def max_difference(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def one_more_step(npnet_side, keras_side, x, y):
    """One training step on each side from the loaded state: the weights must agree."""
    npnet_side.fit(x[:8], y[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    keras_side.fit(x[:8], y[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(npnet_side.get_weights(), keras_side.get_weights()):
        assert max_difference(ours, theirs) < 1e-5
    assert npnet_side.optimizer.iterations == int(keras_side.optimizer.iterations)


OPTIMIZERS = [
    ("adam", lambda: npnet.optimizers.Adam(0.01, beta_1=0.8), lambda: keras.optimizers.Adam(0.01, beta_1=0.8)),
    ("sgd-nesterov", lambda: npnet.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
     lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    ("rmsprop-centered", lambda: npnet.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
     lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True)),
]


@pytest.mark.parametrize("name, ours, _", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_npnet_keras_file_opens_in_keras_and_trains_on_identically(tmp_path, name, ours, _):
    x, y = data()
    model = npnet_model(ours())
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert max_difference(loaded.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.layers[1].kernel_regularizer.l2 == pytest.approx(0.01)
    assert int(loaded.optimizer.iterations) == model.optimizer.iterations == 6
    one_more_step(model, loaded, x, y)


@pytest.mark.parametrize("name, _, theirs", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_keras_file_opens_in_npnet_and_trains_on_identically(tmp_path, name, _, theirs):
    x, y = data()
    model = keras_model(theirs())
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "k.keras")
    loaded = npnet.models.load_model(tmp_path / "k.keras")
    assert max_difference(loaded.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE
    assert [type(layer).__name__ for layer in loaded.layers] == ["Flatten", "Dense", "Dense", "Activation", "Dense", "Softmax"]
    assert loaded.layers[1].kernel_regularizer.l2 == pytest.approx(0.01)
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.optimizer.iterations == 6
    one_more_step(loaded, model, x, y)


def test_a_keras_functional_chain_opens_in_npnet(tmp_path):
    inputs = keras.Input((28, 28), name="image")
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden), name="chain")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "f.keras")
    loaded = npnet.models.load_model(tmp_path / "f.keras")
    x = np.random.default_rng(1).random((50, 28, 28), dtype=np.float32)
    assert loaded.name == "chain" and loaded.loss.from_logits
    assert max_difference(loaded.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE


def test_a_keras_file_compiled_without_an_optimizer_opens_with_a_warning(tmp_path):
    # Keras writes compile_config["optimizer"] = null after compile(optimizer=None); Keras 3.15
    # itself fails to load such a file once the model is built. npnet keeps loss and metrics.
    theirs = keras_model()
    theirs.compile(optimizer=None, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.save(tmp_path / "no_optimizer.keras")
    with pytest.warns(UserWarning, match="names no optimizer"):
        ours = npnet.models.load_model(tmp_path / "no_optimizer.keras")
    x, y = data()
    assert type(ours.optimizer).__name__ == "RMSprop"
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)


def test_a_keras_model_with_two_branches_is_refused_by_name(tmp_path):
    inputs = keras.Input((4,))
    merged = keras.layers.Add()([keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)])
    keras.Model(inputs, merged).save(tmp_path / "branches.keras")
    with pytest.raises(npnet.saving.ModelFileError, match="branches.keras.*one chain"):
        npnet.models.load_model(tmp_path / "branches.keras")


@pytest.mark.parametrize("activation", npnet.activations.names())
def test_every_activation_and_layer_round_trips_through_keras(tmp_path, activation):
    x, _ = data()
    model = npnet_model(activation=activation, dropout=0.25)
    model.save(tmp_path / "a.keras")
    theirs = keras.models.load_model(tmp_path / "a.keras")
    theirs.save(tmp_path / "back.keras")
    ours = npnet.models.load_model(tmp_path / "back.keras")
    assert ours.layers[1].activation is npnet.activations.get(activation)  # swish is silu
    assert max_difference(theirs.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE
    assert max_difference(ours.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE


@pytest.mark.parametrize("kernel, bias", [("he_normal", "ones"), ("lecun_uniform", None), ("glorot_normal", "zeros"),
                                          ("he_uniform", 0.25), ("glorot_uniform", np.log([0.01, 0.02, 1.0, 2.0]))])
def test_initializers_cross_over_by_keras_class(tmp_path, kernel, bias):
    """Dense initializers travel as Keras's classes both ways; ``None`` (Keras 3's config for
    ``bias_initializer=None``) reads as the glorot_uniform Keras then draws; a number or an
    array stands for ``Constant(value)``."""
    constant = not (bias is None or isinstance(bias, str))
    theirs_bias = keras.initializers.Constant(bias) if constant else bias
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, kernel_initializer=kernel,
                                                                     bias_initializer=theirs_bias)])
    theirs.save(tmp_path / "theirs.keras")
    ours = npnet.models.load_model(tmp_path / "theirs.keras")
    assert ours.layers[0].kernel_initializer is npnet.initializers.get(kernel)
    if constant:
        assert ours.layers[0].bias_initializer == npnet.initializers.Constant(bias)
    else:
        assert ours.layers[0].bias_initializer is npnet.initializers.get(bias)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    ours.save(tmp_path / "ours.keras")
    config = keras.models.load_model(tmp_path / "ours.keras").layers[0].get_config()
    assert config["kernel_initializer"]["class_name"] == type(keras.initializers.get(kernel)).__name__
    expected = "Constant" if constant else type(keras.initializers.get(bias or "glorot_uniform")).__name__
    assert config["bias_initializer"]["class_name"] == expected
    rebuilt = keras.layers.Dense.from_config(config)
    rebuilt.build((None, 3))
    if constant:  # the value itself crossed over: Keras's rebuilt layer fills the same bias
        np.testing.assert_array_equal(rebuilt.bias.numpy(), theirs.layers[0].bias.numpy())


REGULARIZED = [("l1", None), ("l1l2", "l2"), (None, "l1"), ("l2", "l1l2")]  # Keras spells L1L2 "l1l2"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("kernel, bias", REGULARIZED, ids=[f"{k}-{b}" for k, b in REGULARIZED])
def test_regularizers_of_kernel_and_bias_cross_over(tmp_path, suffix, kernel, bias):
    """Every regularizer class on the kernel and on the bias, both ways, in both Keras
    formats: the other side lists the same penalties (``model.losses``) at the same weights."""
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, kernel_regularizer=kernel,
                                                                     bias_regularizer=bias, bias_initializer="ones")])
    theirs.compile(optimizer="sgd", loss="mse")
    theirs.save(tmp_path / f"theirs{suffix}")
    ours = npnet.models.load_model(tmp_path / f"theirs{suffix}")
    for name in ("kernel", "bias"):
        mine, keras_side = (getattr(layer, f"{name}_regularizer") for layer in (ours.layers[0], theirs.layers[0]))
        assert (mine is None) == (keras_side is None)
        if mine is not None:
            assert type(mine).__name__ == type(keras_side).__name__
            assert mine.get_config() == pytest.approx(keras_side.get_config())
    np.testing.assert_allclose([float(v) for v in ours.losses], [float(v) for v in theirs.losses], rtol=1e-6)
    ours.save(tmp_path / f"ours{suffix}")
    back = keras.models.load_model(tmp_path / f"ours{suffix}")
    for name in ("kernel", "bias"):
        ours_config = getattr(theirs.layers[0], f"{name}_regularizer")
        back_config = getattr(back.layers[0], f"{name}_regularizer")
        assert (back_config is None) == (ours_config is None)
        if back_config is not None:
            assert type(back_config) is type(ours_config)
            assert back_config.get_config() == pytest.approx(ours_config.get_config())
    np.testing.assert_allclose([float(v) for v in back.losses], [float(v) for v in theirs.losses], rtol=1e-6)


def test_categorical_crossentropy_from_logits_and_float64_cross_over(tmp_path):
    npnet.config.set_floatx("float64")
    try:
        model = npnet.Sequential([Dense(3, input_shape=(5,))])
    finally:
        npnet.config.set_floatx("float32")
    model.compile(optimizer="rmsprop", loss=npnet.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["categorical_accuracy"])
    model.save(tmp_path / "c.keras")
    theirs = keras.models.load_model(tmp_path / "c.keras")
    assert theirs.loss.from_logits and theirs.layers[0].kernel.dtype == "float64"
    theirs.save(tmp_path / "c2.keras")
    ours = npnet.models.load_model(tmp_path / "c2.keras")
    assert ours.loss.from_logits and type(ours.loss) is npnet.losses.CategoricalCrossentropy
    assert ours.get_weights()[0].dtype == np.float64
    np.testing.assert_array_equal(ours.get_weights()[0], model.get_weights()[0])


def test_weights_files_move_both_ways(tmp_path):
    x, y = data()
    ours, theirs = npnet_model(), keras_model()
    ours.fit(x, y, batch_size=8, verbose=0)
    theirs.fit(x, y, batch_size=8, verbose=0)
    ours_file, theirs_file = tmp_path / "ours.weights.h5", tmp_path / "theirs.weights.h5"
    # Layer structure differs (Dropout, Activation); only the Dense weights must line up.
    ours.save_weights(ours_file)
    theirs.save_weights(theirs_file)
    target = npnet_model()
    target.load_weights(theirs_file)
    assert max_difference(target.predict(x, verbose=0), theirs.predict(x, verbose=0)) < TOLERANCE
    assert target.optimizer.iterations == int(theirs.optimizer.iterations) == 3
    mirror = keras_model()
    mirror.load_weights(ours_file)
    assert max_difference(mirror.predict(x, verbose=0), ours.predict(x, verbose=0)) < TOLERANCE


def test_save_weights_needs_the_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match="'.weights.h5'"):
        npnet_model().save_weights(tmp_path / "w.h5")
    assert os.listdir(tmp_path) == []


def test_keras3_legacy_h5_opens_in_npnet(tmp_path):
    x, y = data()
    model = keras_model()
    model.fit(x, y, batch_size=8, verbose=0)
    model.save(tmp_path / "legacy.h5")
    loaded = npnet.models.load_model(tmp_path / "legacy.h5")
    assert max_difference(loaded.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE
    assert loaded.compiled and type(loaded.optimizer) is npnet.optimizers.Adam


def test_a_keras2_h5_file_opens_in_npnet():
    expected = np.load(os.path.join(DATA, "keras2_tiny_expected.npz"))
    assert str(expected["keras_version"]).startswith("2.")
    loaded = npnet.models.load_model(os.path.join(DATA, "keras2_tiny.h5"))
    assert [type(layer).__name__ for layer in loaded.layers] == ["Flatten", "Dense", "Dropout", "Dense"]
    assert max_difference(loaded.predict(expected["x"], verbose=0), expected["predictions"]) < TOLERANCE
    assert loaded.compiled and loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert loaded.metrics_names == ["loss", "accuracy"]


def test_npnet_legacy_h5_opens_in_keras_and_in_npnet(tmp_path):
    """model.save('x.h5') writes the legacy HDF5 layout Keras 3 writes (the save-and-load
    tutorial's last cells), not npnet's zip under an .h5 name."""
    import h5py

    x, y = data()
    model = npnet_model()
    model.fit(x, y, batch_size=8, verbose=0)
    model.save(tmp_path / "model.h5")
    assert h5py.is_hdf5(tmp_path / "model.h5")
    theirs = keras.models.load_model(tmp_path / "model.h5")
    assert max_difference(theirs.predict(x, verbose=0), model.predict(x, verbose=0)) < TOLERANCE
    assert type(theirs.optimizer).__name__ == "Adam" and theirs.optimizer.learning_rate.numpy() == pytest.approx(0.01)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in model.get_weights()]
    ours = npnet.models.load_model(tmp_path / "model.h5")
    for mine, loaded in zip(model.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(mine, loaded)
    assert ours.metrics_names == model.metrics_names and ours.optimizer.beta_1 == pytest.approx(0.8)


def test_onnx_export_predicts_as_npnet(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    x, y = data(200)
    model = npnet_model()
    model.fit(x, y, batch_size=8, verbose=0)
    model.export(tmp_path / "m.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert max_difference(session.run(None, {"inputs": x})[0], model.predict(x, verbose=0)) < TOLERANCE
    with pytest.raises(ValueError, match="format='onnx' only"):
        model.export(tmp_path / "m.pb", format="tf_saved_model")


def test_export_creates_a_missing_folder_as_keras_does(tmp_path):
    pytest.importorskip("onnx")
    model = npnet_model()
    theirs = keras_model()
    theirs.export(str(tmp_path / "keras" / "my_model"), verbose=False)  # Keras makes the folder
    assert os.path.isdir(tmp_path / "keras" / "my_model")
    model.export(tmp_path / "nodir" / "my_model", format="onnx")
    assert os.listdir(tmp_path / "nodir") == ["my_model"]  # no temporary file left beside it


def test_regression_metric_strings_cross_over_both_ways(tmp_path):
    """A Keras file compiled with the regression metrics' strings opens in npnet with the
    same history keys, and npnet's file opens in Keras with them."""
    names = ["root_mean_squared_error", "mape", "msle", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error", "log_cosh_error", "r2_score"]
    x = np.random.default_rng(0).random((10, 3), dtype=np.float32)
    y = x[:, :2] + 0.5
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    theirs.compile(optimizer="sgd", loss="mse", metrics=names)
    theirs.save(tmp_path / "k.keras")
    ours = npnet.models.load_model(tmp_path / "k.keras")
    expected = theirs.evaluate(x, y, verbose=0, return_dict=True)
    got = ours.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == set(expected) == {"loss", *names}
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, err_msg=key)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    assert set(back.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", *names}


MORE_LOSSES = {"mape": "MeanAbsolutePercentageError", "msle": "MeanSquaredLogarithmicError", "log_cosh": "LogCosh",
               "kld": "KLDivergence", "poisson": "Poisson", "hinge": "Hinge", "squared_hinge": "SquaredHinge",
               "categorical_hinge": "CategoricalHinge", "cosine_similarity": "CosineSimilarity"}


@pytest.mark.parametrize("form", ["string", "object"])
@pytest.mark.parametrize("name", sorted(MORE_LOSSES))
def test_more_keras_losses_cross_over_both_ways(tmp_path, name, form):
    """A Keras file compiled with loss='mape' (or MeanAbsolutePercentageError()...) opens in
    npnet with that loss; npnet's file of it opens in Keras and in npnet with it again."""
    class_name = MORE_LOSSES[name]
    rng = np.random.default_rng(3)
    x, y = rng.random((10, 3), dtype=np.float32), rng.random((10, 2), dtype=np.float32) + 0.5
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softplus")])
    theirs.compile(optimizer="sgd", loss=name if form == "string" else getattr(keras.losses, class_name)())
    theirs.save(tmp_path / "k.keras")
    ours = npnet.models.load_model(tmp_path / "k.keras")
    assert type(ours.loss).__name__ == class_name
    expected = theirs.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    assert type(back.loss).__name__ == class_name
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    again = npnet.models.load_model(tmp_path / "n.keras")
    assert type(again.loss) is type(ours.loss) and again.loss.get_config() == ours.loss.get_config()
