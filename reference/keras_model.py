"""The seed tutorial's model in tf.keras, other Dense stacks, and weight transfer with npnet.

This is the only module (with the tests that need it) that imports TensorFlow. It quiets TF's
C++ logging first (``TF_CPP_MIN_LOG_LEVEL=2``, unless the user set it).

Weights move between the libraries through the Keras API on both sides: ``get_weights()``
lists ``[kernel_0, bias_0, kernel_1, bias_1, ...]`` with kernels shaped (d_in, units) in
npnet and in Keras alike, and ``set_weights`` takes that list back.

Keras 3 warns when a layer receives ``input_shape`` (it prefers ``keras.Input``). The tutorial
writes ``Flatten(input_shape=(28, 28))``, so that form is kept and only that one warning is
silenced while the model is built; the resulting model is the same as with ``keras.Input``.
"""

import contextlib
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from . import npnet_model  # noqa: E402
from .npnet_model import COMPILE_ARGS, INPUT_SHAPE, TUTORIAL_ACTIVATIONS, TUTORIAL_UNITS  # noqa: E402

keras = tf.keras

_INPUT_SHAPE_WARNING = r"Do not pass an `input_shape`/`input_dim` argument to a layer"


@contextlib.contextmanager
def tutorial_input_shape_allowed():
    """Silence exactly Keras 3's warning about ``Flatten(input_shape=...)``, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_INPUT_SHAPE_WARNING, category=UserWarning)
        yield


def tutorial_model():
    """The seed tutorial's model, built and compiled exactly as the tutorial writes it."""
    with tutorial_input_shape_allowed():
        model = tf.keras.Sequential([
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(128, activation='relu'),
            tf.keras.layers.Dense(10, activation='softmax')
        ])
    model.compile(optimizer='adam',
                  loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    return model


def dense_stack(units=TUTORIAL_UNITS, activations=TUTORIAL_ACTIVATIONS, input_shape=INPUT_SHAPE,
                *, compile=True, **compile_args):
    """``Flatten(input_shape)`` then ``Dense(u, activation=a)`` per pair: the tutorial's shape
    for any Dense stack, compiled like the tutorial (``compile_args`` override) unless
    ``compile=False``. The npnet twin is :func:`reference.npnet_model.dense_stack`.
    """
    units, activations, input_shape = npnet_model.check_stack(units, activations, input_shape)
    with tutorial_input_shape_allowed():
        layers = [keras.layers.Flatten(input_shape=input_shape)]
        layers += [keras.layers.Dense(u, activation=a) for u, a in zip(units, activations)]
        model = keras.Sequential(layers)
    if compile:
        model.compile(**{**COMPILE_ARGS, **compile_args})
    return model


# -------------------------------------------------------------------------- weight transfer


def _check_shapes(weights, target_weights, source, target):
    received = [tuple(np.shape(w)) for w in weights]
    expected = [tuple(np.shape(w)) for w in target_weights]
    if received != expected:
        raise ValueError(f"cannot copy weights from the {source} model to the {target} model: "
                         f"the {target} model expects {len(expected)} arrays of shapes {expected}, "
                         f"the {source} model has {len(received)} of shapes {received}")


def npnet_to_keras(npnet_model_, keras_model):
    """Copy every weight of an npnet model into a Keras model of the same architecture."""
    weights = npnet_model_.get_weights()
    _check_shapes(weights, keras_model.get_weights(), "npnet", "Keras")
    keras_model.set_weights(weights)
    return keras_model


def keras_to_npnet(keras_model, npnet_model_):
    """Copy every weight of a Keras model into an npnet model of the same architecture."""
    weights = keras_model.get_weights()
    _check_shapes(weights, npnet_model_.get_weights(), "Keras", "npnet")
    npnet_model_.set_weights(weights)
    return npnet_model_


def keras_twin(npnet_model_, *, compile=True, **compile_args):
    """A Keras model with the architecture and current weights of an npnet ``[Flatten,] Dense...`` stack."""
    units, activations, input_shape = npnet_model.describe(npnet_model_)
    model = dense_stack(units, activations, input_shape, compile=compile, **compile_args)
    return npnet_to_keras(npnet_model_, model)


def npnet_twin(keras_model, *, backend=None, compile=True, **compile_args):
    """An npnet model with the architecture and current weights of a Keras ``Flatten, Dense...`` stack."""
    layers = list(keras_model.layers)
    if layers and isinstance(layers[0], keras.layers.Flatten):
        layers = layers[1:]
    for layer in layers:
        if type(layer) is not keras.layers.Dense:
            raise ValueError(f"only Flatten, Dense, ... stacks have an npnet twin here; layer "
                             f"{layer.name!r} is a {type(layer).__name__}")
    units = tuple(layer.units for layer in layers)
    activations = tuple(keras.activations.serialize(layer.activation) for layer in layers)
    input_shape = tuple(keras_model.input_shape[1:])
    model = npnet_model.dense_stack(units, activations, input_shape, backend=backend,
                                    compile=compile, **compile_args)
    return keras_to_npnet(keras_model, model)


# -------------------------------------------------------------------------- what Keras computes


def loss_and_gradients(keras_model, x, y):
    """Keras's batch loss and its gradient for every weight, by ``tf.GradientTape``.

    x: (n, 28, 28) float32, y: (n,) integer labels  ->  (loss: float, probabilities: (n, k)
    float32, grads: list of arrays aligned with ``get_weights()``). The loss is
    ``model.compute_loss``, the compiled loss as ``fit`` evaluates it (from the softmax's
    logits when the output layer is a softmax).
    """
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    y = tf.convert_to_tensor(y)
    with tf.GradientTape() as tape:
        probabilities = keras_model(x, training=True)
        loss = keras_model.compute_loss(x=x, y=y, y_pred=probabilities, training=True)
    grads = tape.gradient(loss, keras_model.trainable_weights)
    return float(loss.numpy()), probabilities.numpy(), [g.numpy() for g in grads]


def versions():
    """``{"tensorflow": ..., "keras": ...}``."""
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
