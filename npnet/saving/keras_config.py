"""npnet objects <-> Keras's JSON configs, one table per kind of object.

A Keras config names classes (``{"module": "keras.layers", "class_name": "Dense", ...}``).
Keras imports what such a name points at; npnet never does. Every ``class_name`` is looked
up in the tables below, every ``module`` must be one Keras itself writes for that kind, and
anything else — ``Lambda``, a module such as ``os``, a ``registered_name`` pointing elsewhere,
an unknown class — is a ``ValueError`` naming it. A new npnet layer, activation, loss or
optimizer is one entry here.

Settings npnet cannot honour (``use_bias=False``, a constraint, weight decay, ...) are refused
with their name rather than dropped; settings with no effect on the arithmetic (names of
initializer seeds, ``shared_object_id``) are ignored.
"""

import collections
import reprlib

from .. import activations as activations_module, initializers, layers as layers_module
from .. import losses as losses_module, optimizers as optimizers_module, regularizers

#: The Keras release whose file layout npnet writes and reads (``metadata.json``).
KERAS_VERSION = "3.15.1"

# --------------------------------------------------------------------------- the tables

#: npnet activation name -> Keras activation name.
ACTIVATIONS = {"linear": "linear", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
               "softmax": "softmax", "elu": "elu", "selu": "selu", "gelu": "gelu",
               "softplus": "softplus", "softsign": "softsign", "swish": "silu", "silu": "silu",
               "leaky_relu": "leaky_relu", "exponential": "exponential", "hard_sigmoid": "hard_sigmoid"}
#: npnet initializer name -> Keras initializer class.
INITIALIZERS = {"glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform",
                "he_normal": "HeNormal", "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
                "zeros": "Zeros", "ones": "Ones"}
#: the npnet initializers whose Keras config holds no seed (the others are random)
_FIXED_INITIALIZERS = {"zeros", "ones"}
#: npnet regularizer class -> (Keras class, config keys shared by both).
REGULARIZERS = {regularizers.L2: ("L2", ("l2",)), regularizers.L1: ("L1", ("l1",)),
                regularizers.L1L2: ("L1L2", ("l1", "l2"))}
#: npnet loss class -> Keras loss class (its ``name`` is Keras's string for it).
LOSSES = {losses_module.SparseCategoricalCrossentropy: "SparseCategoricalCrossentropy",
          losses_module.CategoricalCrossentropy: "CategoricalCrossentropy",
          losses_module.BinaryCrossentropy: "BinaryCrossentropy",
          losses_module.MeanSquaredError: "MeanSquaredError",
          losses_module.MeanAbsoluteError: "MeanAbsoluteError",
          losses_module.Huber: "Huber",
          **{cls: cls.__name__ for cls in (
              losses_module.MeanAbsolutePercentageError, losses_module.MeanSquaredLogarithmicError,
              losses_module.LogCosh, losses_module.KLDivergence, losses_module.Poisson, losses_module.Hinge,
              losses_module.SquaredHinge, losses_module.CategoricalHinge, losses_module.CosineSimilarity)}}
#: Keras metric spellings (strings and classes) -> npnet metric name.
METRICS = {"accuracy": "accuracy", "acc": "accuracy",
           "sparse_categorical_accuracy": "sparse_categorical_accuracy",
           "categorical_accuracy": "categorical_accuracy",
           "SparseCategoricalAccuracy": "sparse_categorical_accuracy",
           "CategoricalAccuracy": "categorical_accuracy",
           # metric names given as strings (a class with its own config is not read: its
           # settings could differ from the defaults a name stands for)
           **{name: name for name in ("binary_accuracy", "mae", "mse", "mean_absolute_error",
                                      "mean_squared_error", "sparse_top_k_categorical_accuracy",
                                      "top_k_categorical_accuracy", "auc", "precision", "recall",
                                      "true_positives", "false_positives", "true_negatives",
                                      "false_negatives", "root_mean_squared_error", "mape", "msle",
                                      "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
                                      "log_cosh_error", "r2_score")}}

OptimizerEntry = collections.namedtuple("OptimizerEntry", "keras_class keys slots layout defaults non_negative",
                                        defaults=((),))
#: npnet optimizer class -> how Keras spells it. ``slots``: npnet slot -> Keras variable
#: suffix; ``layout``: Keras stores slot arrays per parameter ("interleaved": m0 v0 m1 v1)
#: or per slot ("blocked": v0 v1 m0 m1); ``defaults``: Keras settings npnet cannot change;
#: ``non_negative``: slots that are running means of squares (a file's values must be >= 0).
def _keras_defaults(optimizer_class):
    """The Keras settings the optimizer class takes only at their defaults, and those defaults."""
    return {key: off for key, (off, _) in optimizer_class._keras_off.items()}


OPTIMIZERS = {
    optimizers_module.Adam: OptimizerEntry(
        "Adam", ("learning_rate", "beta_1", "beta_2", "epsilon"),
        {"m": "momentum", "v": "velocity"}, "interleaved", _keras_defaults(optimizers_module.Adam), ("v",)),
    optimizers_module.SGD: OptimizerEntry(
        "SGD", ("learning_rate", "momentum", "nesterov"), {"momentum": "momentum"}, "interleaved",
        _keras_defaults(optimizers_module.SGD)),
    optimizers_module.RMSprop: OptimizerEntry(
        "RMSprop", ("learning_rate", "rho", "momentum", "epsilon", "centered"),
        {"velocity": "velocity", "momentum": "momentum", "average_gradient": "average_gradient"},
        "blocked", _keras_defaults(optimizers_module.RMSprop), ("velocity",)),
}

LayerEntry = collections.namedtuple("LayerEntry", "keras_class to_keras from_keras")


def _dense_to_keras(layer):
    return {"units": layer.units, "activation": activation_to_keras(layer.activation),
            "use_bias": layer.use_bias,
            "kernel_initializer": initializer_to_keras(layer.kernel_initializer, "kernel_initializer"),
            "bias_initializer": initializer_to_keras(layer.bias_initializer, "bias_initializer"),
            "kernel_regularizer": regularizer_to_keras(layer.kernel_regularizer),
            "bias_regularizer": regularizer_to_keras(layer.bias_regularizer),
            "kernel_constraint": None, "bias_constraint": None}


def _dense_from_keras(config, where):
    use_bias = config.get("use_bias", True)
    if not isinstance(use_bias, bool):
        raise ValueError(f"{where} use_bias must be true or false; the file has {use_bias!r}")
    _require_defaults(config, where, activity_regularizer=None,
                      kernel_constraint=None, bias_constraint=None, quantization_config=None,
                      lora_rank=None)
    return {"units": _integer(config.get("units"), f"{where} units"), "use_bias": use_bias,
            "activation": activation_from_keras(config.get("activation"), where),
            "kernel_initializer": initializer_from_keras(config.get("kernel_initializer", _MISSING), where,
                                                         "glorot_uniform"),
            "bias_initializer": initializer_from_keras(config.get("bias_initializer", _MISSING), where, "zeros"),
            "kernel_regularizer": regularizer_from_keras(config.get("kernel_regularizer"), where),
            "bias_regularizer": regularizer_from_keras(config.get("bias_regularizer"), where)}


def _flatten_from_keras(config, where):
    _require_defaults(config, where, data_format=("channels_last", None))
    return {}


def _relu_to_keras(layer):
    return {"max_value": layer.max_value, "negative_slope": layer.negative_slope, "threshold": layer.threshold}


def _relu_from_keras(config, where):
    max_value = config.get("max_value")
    return {"max_value": None if max_value is None else _number(max_value, f"{where} max_value"),
            "negative_slope": _number(config.get("negative_slope", 0.0), f"{where} negative_slope"),
            "threshold": _number(config.get("threshold", 0.0), f"{where} threshold")}


def _leaky_relu_from_keras(config, where):
    slope = config.get("negative_slope", config.get("alpha", 0.3))
    return {"negative_slope": _number(slope, f"{where} negative_slope")}


def _activation_layer_from_keras(config, where):
    return {"activation": activation_from_keras(config.get("activation"), where)}


def _softmax_from_keras(config, where):
    _require_defaults(config, where, axis=(-1, None))
    return {}


def _dropout_from_keras(config, where):
    _require_defaults(config, where, noise_shape=None)
    seed = config.get("seed")
    return {"rate": _number(config.get("rate"), f"{where} rate"),
            "seed": None if seed is None else _integer(seed, f"{where} seed", minimum=0)}


def _normalization_to_keras(layer):
    as_list = (lambda value: None if value is None else value.tolist())
    return {"axis": list(layer.axis), "invert": layer.invert, "mean": as_list(layer.input_mean),
            "variance": as_list(layer.input_variance)}


def _normalization_from_keras(config, where):
    axis = config.get("axis", -1)
    if isinstance(axis, list):
        axis = tuple(_integer(a, f"{where} axis", minimum=-2**31) for a in axis)
    elif axis is not None:
        axis = _integer(axis, f"{where} axis", minimum=-2**31)
    invert = config.get("invert", False)
    if not isinstance(invert, bool):
        raise ValueError(f"{where} invert must be true or false; the file has {invert!r}")
    return {"axis": axis, "invert": invert, "mean": config.get("mean"), "variance": config.get("variance")}


#: npnet layer class -> its Keras class and the two conversions of its settings.
LAYERS = {
    layers_module.Flatten: LayerEntry("Flatten", lambda layer: {"data_format": "channels_last"},
                                      _flatten_from_keras),
    layers_module.Dense: LayerEntry("Dense", _dense_to_keras, _dense_from_keras),
    layers_module.ReLU: LayerEntry("ReLU", _relu_to_keras, _relu_from_keras),
    layers_module.LeakyReLU: LayerEntry("LeakyReLU", lambda layer: {"negative_slope": layer.negative_slope},
                                        _leaky_relu_from_keras),
    layers_module.Activation: LayerEntry("Activation",
                                         lambda layer: {"activation": activation_to_keras(layer.activation)},
                                         _activation_layer_from_keras),
    layers_module.Softmax: LayerEntry("Softmax", lambda layer: {"axis": -1}, _softmax_from_keras),
    layers_module.Dropout: LayerEntry("Dropout", lambda layer: {"rate": layer.rate, "seed": layer.seed,
                                                                "noise_shape": None},
                                      _dropout_from_keras),
    layers_module.Normalization: LayerEntry("Normalization", _normalization_to_keras, _normalization_from_keras),
}
#: Layer classes that carry Python code; named in their refusal (CVE-2024-3660).
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")

#: The ``module`` values Keras writes for each kind (``None``: Keras 2 files omit it).
MODULES = {
    "layer": {None, "keras.layers"},
    "model": {None, "keras", "keras.models", "keras.src.models.functional",
              "keras.src.models.sequential", "keras.src.models.model"},
    "activation": {None, "keras.activations", "builtins"},
    "initializer": {None, "keras.initializers"},
    "regularizer": {None, "keras.regularizers"},
    "loss": {None, "keras.losses"},
    "metric": {None, "keras.metrics"},
    "optimizer": {None, "keras.optimizers"},
    "dtype": {None, "keras", "keras.mixed_precision"},
}
_KERAS_LAYER_TO_NPNET = {entry.keras_class: cls for cls, entry in LAYERS.items()}
_KERAS_OPTIMIZER_TO_NPNET = {entry.keras_class: cls for cls, entry in OPTIMIZERS.items()}
_KERAS_LOSS_TO_NPNET = {name: cls for cls, name in LOSSES.items()}
FLOAT_TYPES = ("float32", "float64")

# --------------------------------------------------------------------------- checked access


def _integer(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; the file has {value!r}")
    return value


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number; the file has {value!r}")
    return value


def _require_defaults(config, where, **defaults):
    """Refuse a setting npnet cannot honour (absent counts as Keras's default)."""
    for key, allowed in defaults.items():
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if key in config and config[key] not in allowed:
            raise ValueError(f"{where} sets {key}={config[key]!r}, which npnet does not support "
                             f"(npnet computes as with {key}={allowed[0]!r})")


def keras_object(entry, kind, known, where, advice=None):
    """``(class_name, config)`` of a Keras object dict, after checking its names against
    ``known`` and :data:`MODULES`. Nothing named in the file is imported. ``advice`` ends the
    error for a class not in ``known``."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a Keras {kind} object (a dict with class_name), "
                         f"received {type(entry).__name__}")
    class_name = entry.get("class_name")
    if kind == "layer" and class_name in CODE_LAYERS:
        raise ValueError(f"{where}: layer class {class_name!r} carries Python code, and npnet "
                         "never runs code from a file")
    if not isinstance(class_name, str) or class_name not in known:
        raise ValueError(f"{where}: {kind} class {class_name!r} is not one npnet knows; known: "
                         f"{', '.join(sorted(known))}" + (f"; {advice}" if advice else ""))
    module = entry.get("module")
    if module not in MODULES[kind]:
        raise ValueError(f"{where}: {kind} {class_name!r} names module {module!r}; npnet accepts "
                         f"only Keras's own ({', '.join(sorted(m for m in MODULES[kind] if m))}) "
                         "and never imports a module named in a file")
    registered = entry.get("registered_name")
    if registered not in (None, class_name):
        raise ValueError(f"{where}: {kind} {class_name!r} has registered_name {registered!r}; "
                         "npnet resolves only Keras's built-in names")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the config of {kind} {class_name!r} must be a dict; received "
                         f"{type(config).__name__}")
    return class_name, config


# --------------------------------------------------------------------------- small objects


def activation_to_keras(activation):
    if activation.name not in ACTIVATIONS or activations_module.get(activation.name) is not activation:
        raise ValueError(f"activation {activation.name!r} is not one of Keras's built-ins "
                         f"({', '.join(ACTIVATIONS)}), so a Keras file cannot name it")
    return ACTIVATIONS[activation.name]


def activation_from_keras(value, where):
    if value is None:
        return "linear"
    if isinstance(value, dict):  # {"class_name": "function", "config": "relu", ...}
        _, name = keras_object(value, "activation", {"function"}, f"{where} activation")
        value = name
    by_keras = {keras: ours for ours, keras in ACTIVATIONS.items()}
    by_keras["swish"] = "silu"  # Keras's older name of the same function
    if not isinstance(value, str) or value not in by_keras:
        raise ValueError(f"{where}: activation {value!r} is not one npnet knows; known: "
                         f"{', '.join(sorted(by_keras))}")
    return by_keras[value]


def initializer_to_keras(init, what):
    """The Keras entry of an initializer npnet's config can name (:func:`npnet.initializers.serialize`)."""
    own = initializers.serialize(init)
    if isinstance(own, dict) and own["class_name"] == "Constant":  # a number, or Keras's serialized array
        value = own["config"]["value"]
        if isinstance(value, list):
            value = {"class_name": "__numpy__", "config": {"value": value, "dtype": "float64"}}
        class_name, keras_config = "Constant", {"value": value}
    elif isinstance(own, dict):  # Keras's other classes have the same names and settings
        class_name, keras_config = own["class_name"], own["config"]
    elif own in INITIALIZERS:
        class_name, keras_config = INITIALIZERS[own], {} if own in _FIXED_INITIALIZERS else {"seed": None}
    else:
        raise ValueError(f"{what} {init!r} is not one of Keras's built-ins "
                         f"({', '.join(INITIALIZERS)}, Constant), so a Keras file cannot name it")
    return {"module": "keras.initializers", "class_name": class_name, "config": keras_config,
            "registered_name": None}


_MISSING = object()  # a config key the file does not have


def initializer_from_keras(value, where, default):
    """npnet's initializer for a Keras initializer entry: ``default`` when the key is
    missing; ``None`` (Keras 3 writes it for ``Dense(bias_initializer=None)``) is what Keras
    then uses, glorot_uniform. Glorot, He, LeCun, Zeros and Ones come back as npnet's named
    functions (a seed is not read); the classes with settings (RandomNormal, VarianceScaling...)
    with their settings, each checked."""
    if value is _MISSING:
        return default
    if value is None:
        return "glorot_uniform"
    by_keras = {keras: ours for ours, keras in INITIALIZERS.items()}
    if isinstance(value, str):  # Keras 2 may write "glorot_uniform" or "random_normal"
        if value in INITIALIZERS:
            return value
        if value in initializers._CLASS_ALIASES:
            return initializers.get(value)
        raise ValueError(f"{where}: initializer {value!r} is not one npnet knows; known: "
                         f"{', '.join(sorted({*INITIALIZERS, *initializers._CLASS_ALIASES}))}")
    with_settings = set(initializers._CLASSES) - set(by_keras)
    class_name, config = keras_object(value, "initializer", {**by_keras, **dict.fromkeys(with_settings)},
                                      f"{where} initializer")
    if class_name in with_settings - {"Constant"}:
        _require_defaults(config, f"{where} {class_name}", input_axes=None, output_axes=None)
        config = {key: item for key, item in config.items() if key not in ("input_axes", "output_axes")}
        return initializers.from_config(class_name, config, f"{where} initializer")
    if class_name == "Constant":
        try:
            return initializers.Constant(_constant_value(config.get("value", 0.0), where))
        except ValueError as error:
            raise ValueError(f"{where} initializer: {error}") from None
    return by_keras[class_name]


def _constant_value(value, where):
    """A Constant's value as Keras writes it: a number, or a serialized NumPy array."""
    if isinstance(value, dict):
        if value.get("class_name") != "__numpy__" or not isinstance(value.get("config"), dict):
            raise ValueError(f"{where}: a Constant initializer's value must be a number or a NumPy array; "
                             f"received {reprlib.repr(value)}")
        value = value["config"].get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise ValueError(f"{where}: a Constant initializer's value must be a number or a list of numbers; "
                         f"received {type(value).__name__}")
    return value


def regularizer_to_keras(regularizer):
    if regularizer is None:
        return None
    keras_class, keys = REGULARIZERS[type(regularizer)]
    settings = regularizer.get_config()
    return {"module": "keras.regularizers", "class_name": keras_class,
            "config": {key: settings[key] for key in keys}, "registered_name": None}


def regularizer_from_keras(value, where):
    if value is None:
        return None
    by_keras = {keras_class: (cls, keys) for cls, (keras_class, keys) in REGULARIZERS.items()}
    class_name, config = keras_object(value, "regularizer", by_keras, f"{where} regularizer")
    cls, keys = by_keras[class_name]
    return cls(**{key: _number(config[key], f"{where} {key}") for key in keys if key in config})


def dtype_from_keras(value, where):
    """``"float32"`` or ``"float64"`` from a Keras 2 string or a Keras 3 DTypePolicy."""
    if value is None:
        return None
    if isinstance(value, dict):
        _, config = keras_object(value, "dtype", {"DTypePolicy", "Policy"}, f"{where} dtype")
        value = config.get("name")
    if value not in FLOAT_TYPES:
        raise ValueError(f"{where}: dtype {value!r} is not one npnet computes in "
                         f"({', '.join(FLOAT_TYPES)})")
    return value


def dtype_to_keras(floatx):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": floatx},
            "registered_name": None}
