"""Layers of the caller's own classes in model files and configs: Keras's ``custom_objects``.

A file names classes; it never chooses code. A layer whose class is not one of npnet's is
rebuilt only from a class the caller passes, ``custom_objects={"Scale": Scale}``, with
``Scale.from_config(config)`` (by default ``Scale(**config)``), as Keras does. The name looked
up is the one Keras looks up: the entry's ``registered_name`` (``"Scale"`` for a class that was
not registered under a package, ``"my_package>Scale"`` for one that was), or, when the entry has
none (npnet's own files, Keras 2's), its ``class_name``. A file naming a class the caller did
not pass is refused, naming it, before any layer is made.

Writing is the other half: a layer of the user's own class is written as Keras writes one
(its module and class name, ``get_config()`` as its config), so either side loads it back
given its own equivalent class.
"""

import collections.abc
import json
import reprlib

from .. import layers as layers_module
from . import keras_config as kc


def checked(custom_objects):
    """``custom_objects`` as a dict (``{}`` for None); refused unless a mapping of names."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, collections.abc.Mapping) or not all(
            isinstance(key, str) for key in custom_objects):
        hint = (f" (to choose a backend, write backend={custom_objects!r})"
                if isinstance(custom_objects, str) else "")
        raise TypeError("custom_objects must be a dict from class names to your layer classes, e.g. "
                        f"custom_objects={{'Scale': Scale}}; received {reprlib.repr(custom_objects)}{hint}")
    return dict(custom_objects)


def advice(name):
    """What to write when a file names a layer class npnet does not have (None: no name)."""
    if name is None:
        return None
    return (f"for a layer class of your own, pass custom_objects={{{name!r}: YourLayerClass}} "
            "(an npnet.layers.Layer subclass with forward and backward)")


def lookup_name(entry):
    """The name Keras looks a layer entry up by in ``custom_objects``; None for a built-in."""
    if not isinstance(entry, dict):
        return None
    name = entry.get("registered_name", entry.get("class_name"))
    return name if isinstance(name, str) else None


def named_class(name, custom_objects, where):
    """The caller's class for ``name``, checked to be an npnet layer class; None when the
    caller passed none under that name."""
    if name not in custom_objects:
        return None
    cls = custom_objects[name]
    if not (isinstance(cls, type) and issubclass(cls, layers_module.Layer)):
        kind = ("a Keras layer class (npnet cannot run call(): give it forward and backward, "
                "subclassing npnet.layers.Layer)" if _is_keras_class(cls) else f"{type(cls).__name__} {cls!r:.80}")
        raise ValueError(f"{where}: custom_objects[{name!r}] must be an npnet.layers.Layer subclass; received {kind}")
    return cls


def _is_keras_class(cls):
    return isinstance(cls, type) and any(base.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow")
                                         for base in cls.__mro__)


def entry_config(entry, cls, where):
    """The ``config`` of a Keras layer entry naming the caller's ``cls``, ready for
    ``cls.from_config``: its dtype policy as the float type's name, its name and trainable
    flag checked (the module the entry names is never imported, so it is not checked)."""
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the config of layer {cls.__name__!r} must be a dict; received "
                         f"{type(config).__name__}")
    config = dict(config)
    if "dtype" in config:
        config["dtype"] = kc.dtype_from_keras(config["dtype"], where)
    name = config.get("name")
    if "name" in config and (not isinstance(name, str) or not 0 < len(name) <= 256):
        raise ValueError(f"{where}: a name must be a string of 1 to 256 characters; received {name!r}")
    if not isinstance(config.get("trainable", True), bool):
        raise ValueError(f"{where}: trainable must be true or false; the file has {config['trainable']!r}")
    return config


def is_users(cls):
    """Whether a layer class is the user's own (rebuilt with ``from_config``) rather than npnet's."""
    return not cls.__module__.startswith("npnet.")


def of_model(model):
    """``{class name: class}`` of the user's own layer classes in ``model``: what rebuilds a
    copy of a model the caller already holds (``clone_model``, a backup of it)."""
    return {type(layer).__name__: type(layer) for layer in model._layers if is_users(type(layer))}


def make_layer(cls, config):
    """``cls(**config)`` for npnet's classes; ``cls.from_config(config)`` for the caller's, with
    an error that names the class and what its ``get_config`` must return when it fails."""
    if not is_users(cls):
        return cls(**config)
    try:
        layer = cls.from_config(dict(config))
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - the caller's code: report it with the class's name
        raise ValueError(f"layer {config.get('name')!r}: {cls.__name__}.from_config(config) failed with "
                         f"{type(error).__name__}: {error}; config = {reprlib.repr(config)}. As in Keras, "
                         "get_config() must return the arguments __init__ takes (and __init__ pass **kwargs "
                         "such as name and dtype to super().__init__)") from None
    if not isinstance(layer, layers_module.Layer):
        raise ValueError(f"{cls.__name__}.from_config(config) must return a layer; it returned "
                         f"{type(layer).__name__}")
    return layer


def layer_to_keras(layer, floatx, input_shape):
    """The Keras entry of a layer of the user's own class, as Keras writes one: its module and
    class name (its registered name too), ``get_config()`` with Keras's name, trainable and
    dtype, and ``build_config``. The input shape is the model's InputLayer's to carry."""
    cls = type(layer)
    config = {"name": layer.name, "trainable": layer.trainable, "dtype": kc.dtype_to_keras(floatx),
              **layer.get_config()}
    config.pop("input_shape", None)
    try:
        json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"layer {layer.name!r} ({cls.__name__}): get_config() must return JSON values "
                         f"(numbers, strings, lists, dicts), as Keras asks; {error}") from None
    entry = {"module": cls.__module__, "class_name": cls.__name__, "config": config,
             "registered_name": cls.__name__}
    if input_shape is not None:
        entry["build_config"] = {"input_shape": list(input_shape)}
    return entry
