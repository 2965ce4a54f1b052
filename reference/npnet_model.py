"""npnet's side of the comparison: the tutorial model and other Dense stacks, built like Keras's.

These mirror :mod:`reference.keras_model` line for line, so that a model built here and one
built there have the same layers, the same weight shapes in the same order, and the same
compile settings. Nothing here imports TensorFlow.
"""

import npnet

#: The tutorial's input: one 28x28 image per sample (without the batch dimension).
INPUT_SHAPE = (28, 28)
#: The tutorial's Dense layers: 128 ReLU units, then 10 softmax outputs.
TUTORIAL_UNITS = (128, 10)
TUTORIAL_ACTIVATIONS = ("relu", "softmax")
#: 784·128 + 128 + 128·10 + 10
TUTORIAL_PARAMS = 101_770

#: The tutorial's compile arguments, shared by both sides.
COMPILE_ARGS = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def check_stack(units, activations, input_shape):
    """Validate a Dense-stack description; returns ``(units, activations, input_shape)`` as tuples.

    units: positive ints, one per Dense layer; activations: one name per Dense layer;
    input_shape: the sample shape without the batch dimension, e.g. (28, 28).
    """
    units, activations = tuple(units), tuple(activations)
    if not units:
        raise ValueError("a Dense stack needs at least one layer; received units=()")
    if len(units) != len(activations):
        raise ValueError(f"need one activation per Dense layer: received {len(units)} units "
                         f"{units} and {len(activations)} activations {activations}")
    if any(isinstance(u, bool) or not isinstance(u, int) or u <= 0 for u in units):
        raise ValueError(f"units must be positive integers; received {units}")
    input_shape = tuple(input_shape)
    if not input_shape or any(not isinstance(d, int) or d <= 0 for d in input_shape):
        raise ValueError(f"input_shape must be positive integers without the batch dimension, "
                         f"e.g. (28, 28); received {input_shape}")
    return units, activations, input_shape


def dense_stack(units=TUTORIAL_UNITS, activations=TUTORIAL_ACTIVATIONS, input_shape=INPUT_SHAPE,
                *, backend=None, compile=True, **compile_args):
    """``Flatten(input_shape)`` followed by ``Dense(u, activation=a)`` for each pair, in npnet.

    Compiled like the tutorial (``COMPILE_ARGS``, overridable through ``compile_args``) on
    ``backend`` ('numpy', 'numba' or None for npnet's default) unless ``compile=False``.
    """
    units, activations, input_shape = check_stack(units, activations, input_shape)
    layers = [npnet.layers.Flatten(input_shape=input_shape)]
    layers += [npnet.layers.Dense(u, activation=a) for u, a in zip(units, activations)]
    model = npnet.Sequential(layers)
    if compile:
        model.compile(**{**COMPILE_ARGS, **compile_args}, backend=backend)
    return model


def tutorial_model(backend=None):
    """The seed tutorial's model in npnet, written as the tutorial writes it in tf.keras."""
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation="relu"),
        npnet.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend)
    return model


def describe(model):
    """``(units, activations, input_shape)`` of an npnet Sequential ``[Flatten,] Dense, ...``.

    Raises ValueError naming the first layer that is neither a leading Flatten nor a Dense,
    since only such stacks have a Keras twin here.
    """
    layers = list(model.layers)
    if model.input_shape is None:
        raise ValueError("the npnet model has no input shape yet: give Flatten input_shape=... "
                         "or build it first")
    if layers and type(layers[0]) is npnet.layers.Flatten:
        layers = layers[1:]
    for layer in layers:
        if type(layer) is not npnet.layers.Dense:
            raise ValueError(f"only [Flatten,] Dense, ... stacks have a Keras twin here; layer "
                             f"{layer.name!r} is a {type(layer).__name__}")
    if not layers:
        raise ValueError("the npnet model has no Dense layer")
    input_shape = tuple(model.input_shape[1:])
    return (tuple(layer.units for layer in layers), tuple(layer.activation.name for layer in layers),
            input_shape)
