"""A model's architecture without weights: ``to_json``, ``model_from_json``, ``from_config``.

``model.to_json()`` writes Keras 3's JSON for the model, the same description the ``.keras``
writer puts in ``config.json`` (so ``keras.models.model_from_json`` reads it). Reading takes
Keras's JSON and configs (``keras_model.to_json()``, ``keras_model.get_config()``) through the
same reader as ``.keras`` files, with its bounds and errors, and still takes npnet's own older
format (``{"class_name": "Sequential", "config": model.get_config()}``), which ``get_config``
still returns. Either way every class is looked up (npnet's tables, then the caller's
``custom_objects``) and the weight shapes are bounded before any layer is made or built, and
the model gets fresh weights, as in Keras.
"""

import json
import reprlib
import warnings

from .. import config as config_module
from . import _assemble, custom_objects as custom, errors, keras_architecture, limits, npnet_format

#: The keys of npnet's own model config (``model.get_config()``); Keras's has others.
_OWN_KEYS = frozenset({"name", "layers", "build_input_shape", "input_name"})
#: Keys only Keras writes in a layer's config.
_KERAS_LAYER_KEYS = frozenset({"dtype", "batch_shape", "batch_input_shape"})
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def to_json(model, **kwargs):
    """Keras 3's JSON of ``model``: the ``.keras`` file's architecture and, as Keras writes,
    ``compile_config`` (``{}`` when the model is not compiled). ``kwargs`` go to ``json.dumps``."""
    floatx = str(model.weights[0].dtype) if model.weights else config_module.floatx()
    entry = keras_architecture.model_to_keras(model, floatx, with_compile=False)
    entry["compile_config"] = _compile_config(model)
    return json.dumps(entry, **kwargs)


def _compile_config(model):
    """Keras's ``compile_config``, or ``{}``: for a model not compiled (as Keras writes), and,
    with a warning, for compile settings that have no Keras form npnet reads back (a loss of
    your own, a learning-rate schedule); the architecture is what ``to_json`` is for."""
    if not model.compiled:
        return {}
    try:
        config = keras_architecture.compile_to_keras(model)
        keras_architecture.compile_from_keras(config, "compile_config")
    except ValueError as error:
        warnings.warn(f"to_json writes the architecture without the compile settings ({error}); "
                      "model_from_json returns the model uncompiled", UserWarning, stacklevel=4)
        return {}
    return config


def from_json(json_string, custom_objects=None):
    """The model a JSON string describes (Keras's or npnet's older own), with fresh weights;
    compiled when Keras's JSON carries a ``compile_config``, as Keras's ``model_from_json`` does."""
    custom_objects = custom.checked(custom_objects)
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json expects the JSON text of model.to_json(); received "
                        f"{type(json_string).__name__}")
    if len(json_string) > limits.MAX_JSON_BYTES:
        raise ValueError(f"model_from_json: the JSON holds {len(json_string):,} characters; a model "
                         f"description has at most {limits.MAX_JSON_BYTES:,} (npnet.saving.limits.MAX_JSON_BYTES)")
    with errors.describing("model_from_json"):
        spec = errors.parse_json(json_string, "the JSON")
    if not isinstance(spec, dict) or spec.get("class_name") not in _MODEL_CLASSES:
        raise ValueError("model_from_json expects the JSON of model.to_json() "
                         f"(class_name 'Sequential' or 'Functional'); received {reprlib.repr(spec)}")
    with errors.describing("model_from_json"):
        if is_keras_config(spec.get("config")):
            return _from_keras(spec, custom_objects, "model JSON", spec.get("compile_config"))
        model = _from_own(spec.get("config"), custom_objects, "model config")
        return model if spec["class_name"] == "Sequential" else _functional(model, spec["config"])


def from_config(config, functional, custom_objects=None, what="from_config"):
    """The model a config describes (``keras_model.get_config()`` or npnet's
    ``model.get_config()``), with fresh weights and uncompiled, as Keras's ``from_config``.
    ``functional``: return an ``npnet.Model`` (``Model.from_config``)."""
    custom_objects = custom.checked(custom_objects)
    if not isinstance(config, dict):
        raise TypeError(f"{what} expects a model config dict (model.get_config()); received {type(config).__name__}")
    with errors.describing(what):
        if is_keras_config(config):
            class_name = "Functional" if "input_layers" in config else "Sequential"
            model = _from_keras({"class_name": class_name, "config": _as_json(config)}, custom_objects, "model config")
        else:
            model = _from_own(config, custom_objects, "model config")
        return _functional(model, config) if functional else model


def _as_json(config):
    """Keras's ``get_config()`` as its JSON holds it (tuples as lists, NumPy values as
    numbers), so that it is read exactly as ``to_json``'s text and ``.keras`` files are."""
    def plain(value):
        if hasattr(value, "tolist"):  # NumPy arrays and numbers
            return value.tolist()
        raise TypeError(f"the config holds a {type(value).__name__}, which a model config (JSON) cannot hold")
    return errors.parse_json(json.dumps(config, default=plain), "the config")


def is_keras_config(config):
    """Whether a model config is Keras's rather than npnet's own, which holds only
    :data:`_OWN_KEYS` and layers that are ``{"class_name", "config"}`` pairs of npnet settings
    (never an InputLayer or Keras's dtype and batch shapes)."""
    if not isinstance(config, dict) or set(config) - _OWN_KEYS:
        return True
    entries = config.get("layers")
    return isinstance(entries, list) and any(_is_keras_layer(entry) for entry in entries)


def _is_keras_layer(entry):
    if not isinstance(entry, dict):
        return False
    inner = entry.get("config")
    return bool(set(entry) - {"class_name", "config"} or entry.get("class_name") == "InputLayer"
                or isinstance(inner, dict) and _KERAS_LAYER_KEYS & set(inner))


def _from_keras(entry, custom_objects, where, compile_config=None):
    """Keras's description through the ``.keras`` reader: every name and setting checked,
    the weight shapes bounded before any layer is built."""
    spec = keras_architecture.model_from_keras(entry, where, custom_objects)
    compile_spec = keras_architecture.compile_from_keras(compile_config, f"{where} compile_config")
    layers = _assemble.make_layers([(s.cls, s.kwargs) for s in spec.layers], spec.floatx)
    if spec.input_shape is not None:
        _assemble.expected_shapes(layers, spec.input_shape, where)
    model = _assemble.build(spec.name, layers, spec.input_shape, spec.floatx, None,
                            spec.functional, spec.input_name)
    _assemble.compile_loaded(model, compile_spec, None)
    return model


def _from_own(config, custom_objects, where):
    """A Sequential from npnet's own config, checked as an ``.npnet`` file's is, built as
    ``from_config`` always built it (an ``Input`` first when the config names a shape), in
    npnet's current float type."""
    from ..models import Sequential
    from ..symbolic import Input

    npnet_format.check_model_layout(config, where)
    layers = _assemble.make_layers(npnet_format.layer_specs(config, custom_objects), config_module.floatx())
    shape = npnet_format.input_shape(config, layers)
    if shape is not None:
        _assemble.expected_shapes(layers, shape, where)
    model = Sequential(name=config.get("name"))
    if config.get("build_input_shape") and (not layers or layers[0]._declared_input_shape is None):
        model.add(Input(shape=tuple(config["build_input_shape"][1:])))
    for layer in layers:
        model.add(layer)
        if layer._weight_scope is None:  # a layer of the caller's class, built to learn its shapes
            layer._weight_scope = model.name
    return model


def _functional(model, config):
    """``model`` as an ``npnet.Model`` (what ``Model.from_config`` and a ``Functional`` JSON
    give), with the input name npnet's own config holds."""
    from ..models import _as_functional as as_functional

    if getattr(model, "_functional", False):
        return model
    if not model.built:
        raise ValueError("a functional model's config must declare its input shape "
                         "(build_input_shape, or the first layer's input_shape); this one declares none")
    input_name = config.get("input_name") if not is_keras_config(config) else None
    return as_functional(model, npnet_format.checked_input_name(input_name))
