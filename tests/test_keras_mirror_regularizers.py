"""Mirror tests: npnet.regularizers (penalty and gradient) and npnet.utils.to_categorical
beside keras.regularizers (under tf.GradientTape) and keras.utils.to_categorical, plus one
regularized model trained beside its Keras twin. TensorFlow is imported at the top: without
it these tests fail rather than skip."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import npnet
from npnet import regularizers
from keras_helpers import fit_both_and_compare

pytestmark = pytest.mark.reference

PAIRS = [
    ("l1", regularizers.l1(0.03), keras.regularizers.l1(0.03)),
    ("L1()", regularizers.L1(), keras.regularizers.L1()),
    ("l2", regularizers.l2(0.02), keras.regularizers.l2(0.02)),
    ("l1_l2", regularizers.l1_l2(l1=0.01, l2=0.05), keras.regularizers.l1_l2(l1=0.01, l2=0.05)),
    ("L1L2(l2 only)", regularizers.L1L2(l2=0.1), keras.regularizers.L1L2(l2=0.1)),
    ("'l1' string", regularizers.get("l1"), keras.regularizers.get("l1")),
    ("'l1l2' string", regularizers.get("l1l2"), keras.regularizers.get("l1l2")),  # Keras's snake case of L1L2
]


@pytest.mark.parametrize("what, ours, theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_penalty_and_gradient_match_keras(what, ours, theirs):
    w = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    w[0, 0] = 0.0  # |w| has its kink here: both take slope 0
    variable = tf.Variable(w)
    with tf.GradientTape() as tape:
        penalty = theirs(variable)
    grad = tape.gradient(penalty, variable)
    grad = np.zeros_like(w) if grad is None else grad.numpy()
    np.testing.assert_allclose(ours(w), float(penalty), rtol=1e-6, err_msg=f"{what} penalty")
    np.testing.assert_allclose(ours.gradient(w), grad, rtol=1e-6, atol=1e-9, err_msg=f"{what} gradient")
    # Keras's L1 keeps l1 as a float32 tensor, so its config says 0.029999999329447746
    assert ours.get_config() == pytest.approx({k: float(v) for k, v in theirs.get_config().items()}, rel=1e-7)


def test_regularizers_refuse_what_keras_refuses():
    for kwargs in ({"l1": -1.0}, {"l1": float("nan")}):
        with pytest.raises(ValueError):
            keras.regularizers.L1(**kwargs)
        with pytest.raises(ValueError, match="l1 must be a non-negative finite number"):
            regularizers.L1(**kwargs)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_l1_l2_model_trains_like_keras(backend):
    npnet.utils.set_random_seed(0)
    ours = npnet.Sequential([npnet.layers.Dense(6, activation="relu", input_shape=(4,),
                                                kernel_regularizer=regularizers.l1_l2(l1=0.01, l2=0.02)),
                             npnet.layers.Dense(3, activation="softmax", kernel_regularizer="l1")])
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    assert ours.backend_name == backend
    theirs = keras.Sequential([keras.Input((4,)),
                               keras.layers.Dense(6, activation="relu",
                                                  kernel_regularizer=keras.regularizers.l1_l2(l1=0.01, l2=0.02)),
                               keras.layers.Dense(3, activation="softmax", kernel_regularizer="l1")])
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(1).normal(size=(24, 4)).astype(np.float32)
    fit_both_and_compare(ours, theirs, x, x[:, :3].argmax(axis=1))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bias_regularizers_train_like_keras(backend):
    """``bias_regularizer`` beside ``kernel_regularizer``: the penalties in the reported loss,
    their gradients in the bias updates, under Adam."""
    def twin(lib, regs):
        return [lib.layers.Dense(6, activation="tanh", kernel_regularizer=regs.l2(0.02),
                                 bias_regularizer=regs.l1_l2(l1=0.05, l2=0.1)),
                lib.layers.Dense(3, activation="softmax", bias_regularizer=regs.L1(0.2))]
    npnet.utils.set_random_seed(0)
    ours = npnet.Sequential(twin(npnet, regularizers))
    ours.build((None, 4))
    ours.compile(optimizer=npnet.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", backend=backend)
    assert ours.backend_name == backend
    theirs = keras.Sequential([keras.Input((4,))] + twin(keras, keras.regularizers))
    theirs.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    weights = [w + rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    np.testing.assert_allclose([float(v) for v in ours.losses], [float(v) for v in theirs.losses], rtol=1e-6)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = x[:, :3].argmax(axis=1)
    fit_both_and_compare(ours, theirs, x, y)
    # the biases moved by their penalties: without them the run ends elsewhere
    plain = npnet.Sequential([npnet.layers.Dense(6, activation="tanh", kernel_regularizer=regularizers.l2(0.02)),
                              npnet.layers.Dense(3, activation="softmax")])
    plain.build((None, 4))
    plain.compile(optimizer=npnet.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", backend=backend)
    plain.set_weights(weights)
    plain.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert np.abs(plain.layers[1].bias - ours.layers[1].bias).max() > 1e-3


@pytest.mark.parametrize("labels, num_classes", [
    ([0, 2, 1, 2], None), ([0, 2, 1, 2], 5), ([[1], [0], [3]], None), ([[0, 1], [2, 1]], 4),
    (np.array([3.0, 1.0]), None), (np.array([[2]]), None),
])
def test_to_categorical_matches_keras(labels, num_classes):
    ours = npnet.utils.to_categorical(labels, num_classes)
    theirs = keras.utils.to_categorical(labels, num_classes)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, 3], 3, r"labels in \[0, 3\); received values from 0 to 3"),
    ([-1, 0], None, "received values from -1"),
    ([0.5], None, "non-integer"),
    (["a"], None, "dtype"),
    ([0, 1], 0, "num_classes must be a positive integer"),
])
def test_to_categorical_refuses_bad_labels_clearly(labels, num_classes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        npnet.utils.to_categorical(labels, num_classes)


def test_model_losses_are_the_penalties_keras_lists():
    """``model.losses`` (the overfit-and-underfit tutorial sums it): one penalty per
    regularized weight, at the current weights, as Keras's list."""
    ours = npnet.Sequential([npnet.layers.Dense(5, activation="elu", kernel_regularizer=npnet.regularizers.l2(0.001),
                                                bias_regularizer="l1", input_shape=(7,)),
                             npnet.layers.Dense(4, kernel_regularizer=npnet.regularizers.l1_l2(0.01, 0.02)),
                             npnet.layers.Dense(1)])
    theirs = keras.Sequential([keras.Input((7,)),
                               keras.layers.Dense(5, activation="elu", kernel_regularizer=keras.regularizers.l2(0.001),
                                                  bias_regularizer="l1"),
                               keras.layers.Dense(4, kernel_regularizer=keras.regularizers.l1_l2(0.01, 0.02)),
                               keras.layers.Dense(1)])
    ours.layers[0].bias[...] = np.linspace(-1, 1, 5)
    theirs.set_weights(ours.get_weights())
    assert len(ours.losses) == len(theirs.losses) == 3
    np.testing.assert_allclose([float(v) for v in ours.losses], [float(v) for v in theirs.losses], rtol=1e-6)
    assert ours.layers[2].losses == [] and npnet.layers.Dense(3).losses == []
