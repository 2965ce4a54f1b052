"""Mirror tests: every npnet loss beside the keras.losses object of the same name.

Values (plain, with sample weights, from logits) and gradients w.r.t. ``y_pred`` from
``tf.GradientTape``, for the classes and the strings; the sigmoid head (binary cross-entropy
computed from a sigmoid layer's logits, as Keras does) is checked on whole models against
``keras.Model.evaluate`` and one training step. TensorFlow is imported at the top: without
it these tests fail rather than skip.
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import keras

import npnet
from npnet import losses

from keras_helpers import keras_loss_value_and_gradient

pytestmark = pytest.mark.reference

N, M = 8, 3


def assert_close(ours, theirs, what, rtol=1e-6, atol=1e-7):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs Keras's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol,
                               err_msg=f"{what}\nnpnet:\n{ours}\nkeras:\n{theirs}")


def rng(seed):
    return np.random.default_rng(seed)



def probabilities(shape, seed):
    p = rng(seed).uniform(0.02, 0.98, size=shape).astype(np.float32)
    p.flat[0], p.flat[1] = 1e-9, 1.0  # clipped by both
    return p


def cases():
    """(name, ours, theirs, y_true, y_pred) for every loss and its settings."""
    labels = rng(1).integers(0, M, size=N)
    one_hot = np.eye(M, dtype=np.float32)[labels]
    softmax = npnet.functional.softmax_forward(rng(2).normal(size=(N, M)).astype(np.float32) * 2)
    logits = (rng(3).normal(size=(N, M)) * 4).astype(np.float32)
    binary = rng(4).integers(0, 2, size=(N, M)).astype(np.float32)
    regression_true = rng(5).normal(size=(N, M)).astype(np.float32) * 2
    regression_pred = rng(6).normal(size=(N, M)).astype(np.float32) * 2
    return [
        ("sparse cce", losses.SparseCategoricalCrossentropy(), keras.losses.SparseCategoricalCrossentropy(), labels, softmax),
        ("sparse cce logits", losses.SparseCategoricalCrossentropy(from_logits=True),
         keras.losses.SparseCategoricalCrossentropy(from_logits=True), labels, logits),
        ("cce", losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy(), one_hot, softmax),
        ("cce logits smoothed", losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
         keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), one_hot, logits),
        ("cce smoothed", losses.CategoricalCrossentropy(label_smoothing=0.2),
         keras.losses.CategoricalCrossentropy(label_smoothing=0.2), one_hot, softmax),
        ("bce", losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), binary, probabilities((N, M), 7)),
        ("bce logits", losses.BinaryCrossentropy(from_logits=True), keras.losses.BinaryCrossentropy(from_logits=True),
         binary, logits),
        ("bce smoothed", losses.BinaryCrossentropy(label_smoothing=0.1),
         keras.losses.BinaryCrossentropy(label_smoothing=0.1), binary, probabilities((N, M), 8)),
        ("bce (n,) targets", losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), binary[:, 0],
         probabilities((N, 1), 9)),
        ("mse", losses.MeanSquaredError(), keras.losses.MeanSquaredError(), regression_true, regression_pred),
        ("mse (n,) targets", losses.MeanSquaredError(), keras.losses.MeanSquaredError(), regression_true[:, 0],
         regression_pred[:, :1]),
        ("mae", losses.MeanAbsoluteError(), keras.losses.MeanAbsoluteError(), regression_true, regression_pred),
        ("huber", losses.Huber(), keras.losses.Huber(), regression_true, regression_pred),
        ("huber delta 0.3", losses.Huber(delta=0.3), keras.losses.Huber(delta=0.3), regression_true, regression_pred),
    ]


CASES = cases()


@pytest.mark.parametrize("what, ours, theirs, y_true, y_pred", CASES, ids=[c[0] for c in CASES])
def test_loss_value_and_gradient_match_keras(what, ours, theirs, y_true, y_pred):
    value, grad = keras_loss_value_and_gradient(theirs, y_true, y_pred)
    prepared = ours.prepare_targets(np.asarray(y_true), y_pred)
    assert_close(ours(y_true, y_pred), value, f"{what} value")
    assert_close(ours.value(prepared, y_pred), value, f"{what} value()")
    assert_close(ours.gradient(prepared, y_pred), grad, f"{what} gradient", atol=1e-6)


@pytest.mark.parametrize("what, ours, theirs, y_true, y_pred", CASES, ids=[c[0] for c in CASES])
def test_loss_with_sample_weight_matches_keras(what, ours, theirs, y_true, y_pred):
    weights = rng(10).uniform(0, 2, size=N).astype(np.float32)
    value, grad = keras_loss_value_and_gradient(theirs, y_true, y_pred, sample_weight=weights)
    assert_close(ours(y_true, y_pred, sample_weight=weights), value, f"{what} weighted value")
    # the documented rule: weight w_i scales row i of the batch-mean gradient
    prepared = ours.prepare_targets(np.asarray(y_true), y_pred)
    assert_close(ours.gradient(prepared, y_pred) * weights[:, None], grad, f"{what} weighted gradient", atol=1e-6)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy", "mse", "mae", "mean_squared_error",
                                  "mean_absolute_error", "huber", "MeanSquaredError", "Huber",
                                  "BinaryCrossentropy"])
def test_loss_strings_resolve_like_keras(name):
    ours, theirs = losses.get(name), keras.losses.get(name)
    y_true = rng(11).integers(0, 2, size=(N, 1)).astype(np.float32)
    y_pred = probabilities((N, 1), 12)
    if "sparse" in name:
        y_true, y_pred = y_true[:, 0].astype(np.int64), np.hstack([1 - y_pred, y_pred])
    if name.startswith("categorical"):
        y_true, y_pred = np.hstack([1 - y_true, y_true]), np.hstack([1 - y_pred, y_pred])
    expected = theirs(y_true, y_pred)
    expected = np.mean(expected) if np.ndim(expected) else expected  # functions give per-sample values
    assert_close(ours(y_true, y_pred), expected, f"{name!r}")


def test_loss_functions_give_keras_per_sample_values():
    y_true, y_pred = rng(13).normal(size=(N, M)).astype(np.float32), rng(14).normal(size=(N, M)).astype(np.float32)
    for ours, theirs in [(losses.mean_squared_error, keras.losses.mean_squared_error),
                         (losses.mean_absolute_error, keras.losses.mean_absolute_error),
                         (losses.huber, keras.losses.huber)]:
        assert_close(ours(y_true, y_pred), theirs(y_true, y_pred).numpy(), ours.__name__)
        assert type(losses.get(ours)) is ours.loss_class


@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy, losses.Huber,
                                 losses.MeanSquaredError, losses.SparseCategoricalCrossentropy])
def test_loss_defaults_and_names_match_keras(cls):
    keras_cls = getattr(keras.losses, cls.__name__)
    ours, theirs = cls().get_config(), keras_cls().get_config()
    defaults = {name: p.default for name, p in inspect.signature(keras_cls).parameters.items()}
    for key, value in ours.items():
        expected = theirs[key] if key in theirs else defaults[key]  # Keras's Huber config omits delta
        assert expected == value, f"{cls.__name__} {key}: npnet {value!r}, Keras {expected!r}"


def test_plain_function_loss_says_no_autodiff_and_shows_subclass():
    def my_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    with pytest.raises(TypeError, match="no automatic differentiation(.|\n)*class MyLoss\\(npnet.losses.Loss\\)"):
        losses.get(my_loss)
    with pytest.raises(TypeError, match="loss='mean_squared_error'"):
        losses.get(keras.losses.mean_squared_error)


# ----------------------------------------------------------------------------- models


def twin_models(output_activation, units, loss_ours, loss_theirs, seed=0, backend=None):
    npnet.utils.set_random_seed(seed)
    ours = npnet.Sequential([npnet.layers.Dense(5, activation="tanh", input_shape=(4,)),
                             npnet.layers.Dense(units, activation=output_activation)])
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss=loss_ours, backend=backend)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                               keras.layers.Dense(units, activation=output_activation)])
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_theirs)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def test_sigmoid_output_binary_crossentropy_is_computed_from_logits_like_keras():
    """Large weights saturate the sigmoid: clipped probabilities would give ~16 per sample;
    from the logits (what Keras does) the loss is far larger and the gradient does not vanish."""
    ours, theirs = twin_models("sigmoid", 1, "binary_crossentropy", "binary_crossentropy")
    big = [w * 30 for w in ours.get_weights()]
    ours.set_weights(big)
    theirs.set_weights(big)
    x = rng(15).normal(size=(16, 4)).astype(np.float32)
    y = rng(16).integers(0, 2, size=16)
    assert npnet.heads.choose(ours.layers, ours.loss) == npnet.heads.SIGMOID_BINARY_CROSSENTROPY
    assert_close(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), "evaluate", rtol=1e-5)
    ours.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert_close(a, b, "weights after one step", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_crossentropy", "binary_crossentropy of logits"])
def test_models_train_like_keras(loss, backend):
    activation = "sigmoid" if loss == "binary_crossentropy" else None
    if loss.endswith("of logits"):
        loss = losses.BinaryCrossentropy(from_logits=True)
        theirs_loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        theirs_loss = loss
    ours, theirs = twin_models(activation, 2, loss, theirs_loss, seed=1, backend=backend)
    loss = getattr(loss, "name", loss)
    x = rng(17).normal(size=(24, 4)).astype(np.float32)
    y = (x[:, :2] > 0).astype(np.float32) if "binary" in loss else x[:, :2] * 2 + 0.5
    history = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    keras_history = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert_close(history.history["loss"], keras_history.history["loss"], f"{loss} history", rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert_close(a, b, f"{loss} weights after 9 steps", rtol=1e-5, atol=1e-6)
    assert ours.backend_name == backend


def test_one_unit_regression_takes_n_targets_and_binary_checks_range():
    ours, _ = twin_models(None, 1, "mse", "mse")
    x = rng(18).normal(size=(10, 4)).astype(np.float32)
    ours.fit(x, x[:, 0], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"shape of the model's output, \(10, 1\) or \(10,\)"):
        ours.fit(x, np.zeros((10, 2)), epochs=1, verbose=0)
    binary, _ = twin_models("sigmoid", 1, "binary_crossentropy", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"0/1 targets.*\[2.0\]"):
        binary.fit(x, np.full(10, 2), epochs=1, verbose=0)


def test_custom_loss_subclass_trains():
    class MeanCubicError(losses.Loss):
        label_kind = "regression"

        def value(self, y_true, y_pred):
            return np.mean(np.abs(y_pred - y_true) ** 3)

        def gradient(self, y_true, y_pred):
            e = y_pred - y_true
            return 3 * e * np.abs(e) / e.size

    ours, _ = twin_models(None, 1, MeanCubicError(), "mse")
    x = rng(19).normal(size=(32, 4)).astype(np.float32)
    history = ours.fit(x, x[:, :1] * 0.5, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert npnet.gradcheck(ours, x[:8], x[:8, :1] * 0.5).passed


# ----------------------------------------------------------------------------- backends

NEW_PIECES = [
    ("activation elu", lambda: [npnet.layers.Dense(4, activation="elu", input_shape=(4,)),
                                npnet.layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy", None),
    ("Activation layer", lambda: [npnet.layers.Dense(3, input_shape=(4,)), npnet.layers.Activation("softmax")],
     "sparse_categorical_crossentropy", None),
    ("LeakyReLU layer", lambda: [npnet.layers.Dense(4, input_shape=(4,)), npnet.layers.LeakyReLU(),
                                 npnet.layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy",
     None),
    ("binary crossentropy", lambda: [npnet.layers.Dense(1, activation="sigmoid", input_shape=(4,))],
     "binary_crossentropy", None),
    ("huber", lambda: [npnet.layers.Dense(1, input_shape=(4,))], "huber", None),
    ("l1 regularizer", lambda: [npnet.layers.Dense(3, activation="softmax", input_shape=(4,), kernel_regularizer="l1")],
     "sparse_categorical_crossentropy", None),
    ("label smoothing", lambda: [npnet.layers.Dense(1, activation="sigmoid", input_shape=(4,))],
     losses.BinaryCrossentropy(label_smoothing=0.1), None),
]


@pytest.mark.parametrize("what, make_layers, loss, named", NEW_PIECES, ids=[p[0] for p in NEW_PIECES])
def test_new_pieces_train_on_the_default_backend_and_numba_runs_them_or_says_why_not(what, make_layers, loss, named):
    """The default backend is numba for what its kernels cover (``named`` None), else NumPy,
    and ``backend='numba'`` then names the piece."""
    model = npnet.Sequential(make_layers())
    model.compile(optimizer="adam", loss=loss)
    assert model.backend_name == ("numba" if named is None else "numpy")
    x = rng(20).normal(size=(16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32) if model.output_shape[-1] == 1 else x[:, :3].argmax(axis=1)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    if named is not None:
        with pytest.raises(NotImplementedError, match=named):
            npnet.Sequential(make_layers()).compile(optimizer="adam", loss=loss, backend="numba")


def test_keras_style_loss_subclass_with_only_call_is_refused_at_compile():
    """The Keras guide's CustomMSE defines call(); npnet needs value and gradient, and says
    so when compiling instead of failing inside fit."""
    class CustomMSE(npnet.losses.Loss):
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            return np.mean(np.square(y_true - y_pred), axis=-1)

    model = npnet.Sequential([npnet.layers.Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match=r"(?s)defines call\(y_true, y_pred\).*def gradient"):
        model.compile(optimizer="adam", loss=CustomMSE())
    assert not model.compiled
