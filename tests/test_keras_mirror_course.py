"""Mirror tests: each course piece computed by npnet right beside tf.keras (Keras 3).

Activations, the ReLU / Softmax / Dropout layers, the L2 regularizer, SGD and RMSprop,
categorical cross-entropy, and whole models using them: forward values, gradients (from
``tf.GradientTape``), optimizer trajectories, and fit/evaluate histories from the same
initial weights. TensorFlow is imported at the top: without it these tests fail, they do
not skip.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_helpers import keras_value_and_gradient

import npnet
from npnet import activations, functional as F, losses, utils
from npnet.layers import Dense, Dropout, Flatten, ReLU, Softmax
from npnet.optimizers import SGD, RMSprop
from npnet.regularizers import L2

pytestmark = pytest.mark.reference

N_SAMPLES, N_CLASSES = 12, 3


def assert_close(ours, theirs, what, rtol=1e-6, atol=1e-7):
    """Compare arrays; on failure print npnet's next to Keras's."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol,
                               err_msg=f"{what}\nnpnet:\n{ours}\nkeras:\n{theirs}")


def random(shape, seed, scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "linear", "relu", "softmax"])
def test_activation_forward_and_backward_match_keras(name):
    z, upstream = random((6, 4), 0), random((6, 4), 1, scale=1.0)
    z[0, 0] = 30.0 if name != "relu" else z[0, 0]  # a saturated unit
    ours = activations.get(name)
    a = ours(z)
    theirs_a, theirs_grad = keras_value_and_gradient(keras.activations.get(name), z, upstream)
    assert a.dtype == np.float32
    assert_close(a, theirs_a, f"{name} forward")
    # given TF's own forward values, the backward formula matches to float32 rounding
    assert_close(ours.backward(upstream, z, theirs_a), theirs_grad, f"{name} backward from Keras's a")
    # from our forward: TF's tanh/sigmoid differ in the last bit, and 1 - a² amplifies that near ±1
    assert_close(ours.backward(upstream, z, a), theirs_grad, f"{name} backward", atol=1e-6)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("pair", [(ReLU, keras.layers.ReLU), (Softmax, keras.layers.Softmax)],
                         ids=["ReLU", "Softmax"])
def test_activation_layers_match_keras(pair):
    ours_cls, keras_cls = pair
    z, upstream = random((5, 4), 2), random((5, 4), 3, scale=1.0)
    layer = ours_cls()
    out, cache = layer.forward(z, training=True)
    theirs_out, theirs_grad = keras_value_and_gradient(keras_cls(), z, upstream)
    assert_close(out, theirs_out, f"{ours_cls.__name__} forward")
    assert_close(layer.backward(upstream, cache)[0], theirs_grad, f"{ours_cls.__name__} backward")


def test_dropout_matches_keras_given_its_mask():
    rate = 0.3
    x = np.abs(random((40, 25), 4)) + 0.1  # nonzero, so Keras's zeros reveal its mask
    upstream = random((40, 25), 5, scale=1.0)
    theirs_out, theirs_grad = keras_value_and_gradient(
        lambda v: keras.layers.Dropout(rate, seed=1)(v, training=True), x, upstream)
    keep = theirs_out != 0
    assert 0.2 < 1 - keep.mean() < 0.4
    # Keras scales kept units by float32(1 / (1 - rate)), exactly as npnet does
    np.testing.assert_array_equal(F.dropout_forward(x, keep, rate), theirs_out)
    np.testing.assert_array_equal(F.dropout_backward(upstream, keep, rate), theirs_grad)
    # and at inference both are the identity
    np.testing.assert_array_equal(Dropout(rate)(x), keras.layers.Dropout(rate)(x, training=False).numpy())


def test_dense_with_l2_regularizer_matches_keras():
    x, upstream = random((5, 6), 6, scale=1.0), random((5, 4), 7, scale=1.0)
    theirs = keras.layers.Dense(4, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.05))
    theirs.build((None, 6))
    ours = npnet.Sequential([Dense(4, activation="tanh", kernel_regularizer=L2(0.05), input_shape=(6,))])
    theirs.set_weights(ours.get_weights())
    layer = ours.layers[0]
    with tf.GradientTape() as tape:
        out = theirs(x)
        total = tf.reduce_sum(out * upstream) + tf.add_n(theirs.losses)
    keras_grads = tape.gradient(total, theirs.trainable_weights)
    a, cache = layer.forward(x)
    assert_close(a, out.numpy(), "Dense(tanh) forward")
    assert_close(layer.kernel_regularizer(layer.kernel), theirs.losses[0].numpy(), "L2 penalty")
    _, grads = layer.backward(upstream, cache)
    kernel_grad = grads["kernel"] + layer.kernel_regularizer.gradient(layer.kernel)
    # sums of O(1) terms in float32, in a different order: agreement to ~1e-7 absolute
    assert_close(kernel_grad, keras_grads[0].numpy(), "kernel gradient with penalty", rtol=1e-5, atol=1e-6)
    assert_close(grads["bias"], keras_grads[1].numpy(), "bias gradient", rtol=1e-5, atol=1e-6)
    assert L2().get_config() == keras.regularizers.get("l2").get_config()


# ----------------------------------------------------------------------------- optimizers

OPTIMIZER_PAIRS = {
    "sgd": (lambda: SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    "sgd-momentum": (lambda: SGD(0.1, momentum=0.9), lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
    "sgd-nesterov": (lambda: SGD(0.05, momentum=0.8, nesterov=True),
                     lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True)),
    "rmsprop": (lambda: RMSprop(), lambda: keras.optimizers.RMSprop()),
    "rmsprop-momentum": (lambda: RMSprop(0.01, momentum=0.5), lambda: keras.optimizers.RMSprop(0.01, momentum=0.5)),
    "rmsprop-centered": (lambda: RMSprop(0.01, rho=0.8, centered=True),
                         lambda: keras.optimizers.RMSprop(0.01, rho=0.8, centered=True)),
    "rmsprop-centered-momentum": (lambda: RMSprop(0.01, momentum=0.3, centered=True),
                                  lambda: keras.optimizers.RMSprop(0.01, momentum=0.3, centered=True)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_PAIRS))
def test_optimizer_steps_match_keras(name):
    ours_factory, keras_factory = OPTIMIZER_PAIRS[name]
    ours, theirs = ours_factory(), keras_factory()
    shapes = [(7, 5), (5,)]
    params = [random(shape, 10 + i, scale=0.5) for i, shape in enumerate(shapes)]
    variables = [tf.Variable(p.copy()) for p in params]
    for step in range(20):
        grads = [random(shape, 100 * step + i, scale=0.1) for i, shape in enumerate(shapes)]
        ours.apply_gradients(params, grads)
        theirs.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    for i, (p, v) in enumerate(zip(params, variables)):
        assert p.dtype == np.float32
        assert_close(p, v.numpy(), f"{name}: parameter {i} after 20 steps", rtol=1e-6, atol=1e-7)


def test_optimizer_defaults_match_keras():
    keras_sgd, keras_rms = keras.optimizers.SGD(), keras.optimizers.RMSprop()
    ours_sgd, ours_rms = npnet.optimizers.get("sgd"), npnet.optimizers.get("rmsprop")
    assert ours_sgd.learning_rate == pytest.approx(float(keras_sgd.learning_rate))
    assert (ours_sgd.momentum, ours_sgd.nesterov) == (keras_sgd.momentum, keras_sgd.nesterov)
    assert ours_rms.learning_rate == pytest.approx(float(keras_rms.learning_rate))
    assert (ours_rms.rho, ours_rms.momentum, ours_rms.epsilon, ours_rms.centered) == (
        keras_rms.rho, keras_rms.momentum, keras_rms.epsilon, keras_rms.centered)


# ----------------------------------------------------------------------------- categorical cross-entropy


def test_categorical_crossentropy_matches_keras():
    rng = np.random.default_rng(8)
    targets = np.eye(N_CLASSES, dtype=np.float32)[rng.integers(0, N_CLASSES, 6)]
    p = rng.random((6, N_CLASSES)).astype(np.float32)
    p[0] = [1.0, 0.0, 0.0]  # clipped in the log
    targets[0] = [0.0, 1.0, 0.0]
    ours, theirs = losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy()
    assert_close(ours(targets, p), theirs(targets, p).numpy(), "loss on probabilities")
    p_tf = tf.Variable(p)
    with tf.GradientTape() as tape:
        value = theirs(targets, p_tf)
    assert_close(ours.gradient(targets, p), tape.gradient(value, p_tf).numpy(), "gradient w.r.t. p")

    logits = random((6, N_CLASSES), 9)
    from_logits = keras.losses.CategoricalCrossentropy(from_logits=True)
    assert_close(losses.CategoricalCrossentropy(from_logits=True)(targets, logits),
                 from_logits(targets, logits).numpy(), "loss from logits")


# ----------------------------------------------------------------------------- whole models


def keras_twin(ours, keras_layers, optimizer, loss):
    model = keras.Sequential([keras.Input(ours.input_shape[1:])] + keras_layers)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
    model.set_weights(ours.get_weights())
    return model


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N_SAMPLES, 2, 3)).astype(np.float32)
    return x, x.reshape(N_SAMPLES, -1)[:, :N_CLASSES].argmax(axis=1)


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "rmsprop-centered-momentum"])
def test_course_model_trains_like_keras(optimizer):
    """Flatten, Dense with L2, ReLU layer, Dense, Softmax layer: same losses, same weights."""
    utils.set_random_seed(0)
    ours = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(6, kernel_regularizer=L2(0.01)), ReLU(),
                             Dense(N_CLASSES), Softmax()])
    ours_optimizer, keras_optimizer = OPTIMIZER_PAIRS[optimizer]
    ours.compile(optimizer=ours_optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                 backend="numpy")
    theirs = keras_twin(ours, [keras.layers.Flatten(),
                               keras.layers.Dense(6, kernel_regularizer=keras.regularizers.L2(0.01)),
                               keras.layers.ReLU(), keras.layers.Dense(N_CLASSES), keras.layers.Softmax()],
                        keras_optimizer(), "sparse_categorical_crossentropy")
    x, y = data()
    assert_close(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), "evaluate before training "
                 "(the penalty is part of the loss in both)", rtol=1e-6)
    h_ours = ours.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    h_theirs = theirs.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    assert_close(h_ours["loss"], h_theirs["loss"], "fit's loss per epoch (penalty included)", rtol=1e-5)
    assert h_ours["accuracy"] == pytest.approx(h_theirs["accuracy"])
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        assert_close(a, b, f"weight {i} after 3 epochs", rtol=1e-5, atol=1e-6)
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), "predict", rtol=1e-5, atol=1e-6)


def test_categorical_crossentropy_model_trains_like_keras():
    utils.set_random_seed(1)
    ours = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(6, activation="tanh"),
                             Dense(N_CLASSES, activation="softmax")])
    ours.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], backend="numpy")
    theirs = keras_twin(ours, [keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(N_CLASSES, activation="softmax")],
                        keras.optimizers.Adam(), "categorical_crossentropy")
    x, labels = data()
    one_hot = np.eye(N_CLASSES, dtype=np.float32)[labels]
    h_ours = ours.fit(x, one_hot, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    h_theirs = theirs.fit(x, one_hot, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    assert_close(h_ours["loss"], h_theirs["loss"], "fit's loss per epoch", rtol=1e-5)
    assert h_ours["accuracy"] == pytest.approx(h_theirs["accuracy"])
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        assert_close(a, b, f"weight {i}", rtol=1e-5, atol=1e-6)


def test_a_final_softmax_layer_gives_keras_the_logits_too():
    """With a confidently wrong prediction, -log of the clipped probability would be 16.1;
    Keras (and npnet) compute the loss from the logits and get the true, larger value."""
    ours = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(N_CLASSES), Softmax()])
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    kernel = np.zeros((6, N_CLASSES), dtype=np.float32)
    kernel[:, 0] = 10.0
    ours.set_weights([kernel, np.zeros(N_CLASSES, dtype=np.float32)])
    theirs = keras_twin(ours, [keras.layers.Flatten(), keras.layers.Dense(N_CLASSES), keras.layers.Softmax()],
                        keras.optimizers.SGD(), "sparse_categorical_crossentropy")
    x = np.ones((4, 2, 3), dtype=np.float32)
    y = np.full(4, 2)
    ours_loss, theirs_loss = ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0)[0]
    assert ours_loss == pytest.approx(60.0, rel=1e-5)
    assert_close(ours_loss, theirs_loss, "loss of a final Softmax layer", rtol=1e-6)


def test_dropout_model_predicts_and_evaluates_like_keras():
    utils.set_random_seed(2)
    ours = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(6, activation="relu"), Dropout(0.5),
                             Dense(N_CLASSES, activation="softmax")])
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend="numpy")
    theirs = keras_twin(ours, [keras.layers.Flatten(), keras.layers.Dense(6, activation="relu"),
                               keras.layers.Dropout(0.5), keras.layers.Dense(N_CLASSES, activation="softmax")],
                        keras.optimizers.Adam(), "sparse_categorical_crossentropy")
    x, y = data()
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), "predict with dropout (inactive)")
    assert_close(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), "evaluate with dropout")
