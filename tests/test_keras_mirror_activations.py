"""Mirror tests: every activation and activation layer of npnet beside Keras's.

Values from ``keras.activations.<name>`` / ``keras.layers.<Layer>`` and gradients of
``Σ upstream · f(z)`` from ``tf.GradientTape``, against npnet's NumPy forward and backward
(:mod:`npnet.functional`). Inputs are float32 of order 3, with the kinks and saturated tails
included; TensorFlow is imported at the top, so without it these tests fail rather than skip.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_helpers import keras_value_and_gradient

import npnet
from npnet import activations, layers

pytestmark = pytest.mark.reference

NEW_ACTIVATIONS = ["elu", "selu", "gelu", "softplus", "softsign", "silu", "swish", "leaky_relu",
                   "exponential", "hard_sigmoid"]
ALL_ACTIVATIONS = NEW_ACTIVATIONS + ["linear", "relu", "sigmoid", "tanh", "softmax"]


def assert_close(ours, theirs, what, rtol=2e-6, atol=2e-7):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs Keras's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol,
                               err_msg=f"{what}\nnpnet:\n{ours}\nkeras:\n{theirs}")


def inputs(seed, shape=(6, 5), scale=3.0):
    """Random float32 z with the interesting points of every activation included."""
    z = (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)
    z.flat[:8] = [-12.0, -3.5, -0.5, 0.25, 2.9, 3.5, 25.0, -40.0]
    upstream = np.random.default_rng(seed + 1).normal(size=shape).astype(np.float32)
    return z, upstream


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_activation_values_and_gradients_match_keras(name):
    z, upstream = inputs(0)
    if name == "exponential":
        z = np.clip(z, -20, 8)  # exp(25) is 7e10: compare at a scale where rtol means something
    ours = activations.get(name)
    a = ours(z)
    theirs_a, theirs_grad = keras_value_and_gradient(keras.activations.get(name), z, upstream)
    assert a.dtype == np.float32, f"{name}: float32 in, {a.dtype} out"
    assert_close(a, theirs_a, f"{name} forward")
    assert_close(ours.backward(upstream, z, a), theirs_grad, f"{name} backward", atol=1e-6)


@pytest.mark.parametrize("name, options", [("elu", {"alpha": 0.5}), ("leaky_relu", {"negative_slope": 0.1}),
                                           ("gelu", {"approximate": True}),
                                           ("relu", {"negative_slope": 0.1, "max_value": 4.0, "threshold": 1.0}),
                                           ("relu", {"max_value": 6.0}), ("relu", {"negative_slope": 0.25})])
def test_activation_options_match_keras(name, options):
    z, upstream = inputs(2)
    ours = activations.get(name)
    theirs = getattr(keras.activations, name)
    theirs_a, theirs_grad = keras_value_and_gradient(lambda t: theirs(t, **options), z, upstream)
    # atol 1e-6 at outputs up to 25: TF's float32 tanh saturates to -1 a little earlier than
    # NumPy's, and 1 + tanh cancels there (approximate gelu of z < -4)
    assert_close(ours(z, **options), theirs_a, f"{name}{options} forward", atol=1e-6)
    backward = npnet.functional.relu_backward_general if name == "relu" else ours.backward
    # (the same cancellation in the derivative: float64 says -0.00242264 at z = -3.5, npnet's
    # float32 -0.00242247, TF's a little further off)
    assert_close(backward(upstream, z, ours(z, **options), **options), theirs_grad,
                 f"{name}{options} backward", atol=3e-6 if name == "gelu" else 1e-6)


def test_swish_is_silu_as_in_keras():
    assert activations.get("swish") is activations.silu
    assert keras.activations.get("swish") is keras.activations.silu
    assert activations.get("swish").name == keras.activations.get("swish").__name__ == "silu"


def test_every_keras_name_we_list_resolves_in_keras():
    for name in activations.names():
        assert keras.activations.get(name) is not None


def test_tensorflow_function_as_activation_says_what_to_write():
    with pytest.raises(TypeError, match="activation='relu'"):
        layers.Dense(3, activation=tf.nn.relu)


# ----------------------------------------------------------------------------- layers

LAYER_PAIRS = [
    (lambda: layers.Activation("gelu"), lambda: keras.layers.Activation("gelu"), "Activation(gelu)"),
    (lambda: layers.Activation("softmax"), lambda: keras.layers.Activation("softmax"), "Activation(softmax)"),
    (layers.ReLU, keras.layers.ReLU, "ReLU()"),
    (lambda: layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
     lambda: keras.layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5), "ReLU(2, 0.1, 0.5)"),
    (lambda: layers.ReLU(max_value=6), lambda: keras.layers.ReLU(max_value=6), "ReLU(6)"),
    (layers.LeakyReLU, keras.layers.LeakyReLU, "LeakyReLU()"),
    (lambda: layers.LeakyReLU(negative_slope=0.05), lambda: keras.layers.LeakyReLU(negative_slope=0.05),
     "LeakyReLU(0.05)"),
    (layers.Softmax, keras.layers.Softmax, "Softmax()"),
]


@pytest.mark.parametrize("make_ours, make_theirs, what", LAYER_PAIRS, ids=[p[2] for p in LAYER_PAIRS])
def test_activation_layers_match_keras(make_ours, make_theirs, what):
    z, upstream = inputs(4)
    ours = make_ours()
    out, cache = ours.forward(z, training=True)
    theirs_out, theirs_grad = keras_value_and_gradient(make_theirs(), z, upstream)
    assert_close(out, theirs_out, f"{what} forward")
    assert_close(ours.backward(upstream, cache)[0], theirs_grad, f"{what} backward", atol=1e-6)


@pytest.mark.parametrize("make_ours, make_theirs, what", LAYER_PAIRS, ids=[p[2] for p in LAYER_PAIRS])
def test_layer_config_has_keras_keys_and_round_trips(make_ours, make_theirs, what):
    ours, theirs = make_ours(), make_theirs()
    config = ours.get_config()
    keras_keys = set(theirs.get_config()) - {"dtype", "trainable", "name"}
    assert keras_keys <= set(config), f"{what}: Keras config keys {sorted(keras_keys - set(config))} missing"
    for key in keras_keys:
        assert config[key] == theirs.get_config()[key], f"{what}: {key} {config[key]!r} vs Keras's"
    again = type(ours).from_config(config)
    z, _ = inputs(5)
    np.testing.assert_array_equal(again(z), ours(z))
    assert layers.deserialize(type(ours).__name__, config).get_config() == config


def test_leaky_relu_layer_default_slope_is_keras_3s():
    assert layers.LeakyReLU().negative_slope == keras.layers.LeakyReLU().negative_slope == 0.3


@pytest.mark.parametrize("kwargs", [{"max_value": -1.0}, {"negative_slope": -0.1}, {"threshold": -2},
                                    {"negative_slope": None}])
def test_relu_layer_refuses_what_keras_refuses(kwargs):
    with pytest.raises(ValueError):
        keras.layers.ReLU(**kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        layers.ReLU(**kwargs)


def test_softmax_layer_refuses_other_axes():
    with pytest.raises(ValueError, match="axis"):
        layers.Softmax(axis=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_model_of_activation_layers_and_other_activations_trains_like_keras(backend):
    """Dense + LeakyReLU, Dense + ReLU(negative_slope), Dense(elu/gelu/selu/softplus/silu/
    hard_sigmoid/softsign) and Dense + Activation('softmax'), 9 SGD steps, on each backend
    (numba folds the layers into the Dense layers before them) against tf.keras."""
    hidden = ["elu", "gelu", "selu", "softplus", "silu", "hard_sigmoid", "softsign"]
    npnet.utils.set_random_seed(3)
    ours = npnet.Sequential([layers.Dense(6, input_shape=(4,)), layers.LeakyReLU(),
                             layers.Dense(6), layers.ReLU(negative_slope=0.1)]
                            + [layers.Dense(6, activation=name) for name in hidden]
                            + [layers.Dense(3), layers.Activation("softmax")])
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6), keras.layers.LeakyReLU(),
                               keras.layers.Dense(6), keras.layers.ReLU(negative_slope=0.1)]
                              + [keras.layers.Dense(6, activation=name) for name in hidden]
                              + [keras.layers.Dense(3), keras.layers.Activation("softmax")])
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(30).normal(size=(24, 4)).astype(np.float32)
    y = np.random.default_rng(31).integers(0, 3, size=24)
    history = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    keras_history = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert ours.backend_name == backend
    assert_close(history.history["loss"], keras_history.history["loss"], "loss history", rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert_close(a, b, "weights after 9 steps", rtol=1e-5, atol=1e-6)
