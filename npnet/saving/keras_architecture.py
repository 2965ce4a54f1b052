"""Whole models and compile settings <-> Keras's ``config.json`` (and legacy HDF5 attributes).

Reading gives a :class:`ModelSpec` — layer classes and settings, the input shape, the float
type, the compile settings — from which nothing has been built yet, so the loader can check
the file's arrays against it before allocating. A Keras ``Sequential`` becomes an npnet
``Sequential``; a functional ``Model`` whose layers form a single chain becomes an npnet
functional ``Model`` with the same input name. Any other graph is refused.
"""

import collections
import inspect
import re
import reprlib
import warnings

from .. import losses as losses_module, metrics as metrics_module, optimizers as optimizers_module
from . import custom_objects as custom, keras_config as kc, limits

LayerSpec = collections.namedtuple("LayerSpec", "cls kwargs keras_key")
#: ``input_name``: the functional model's input name; None for a Sequential.
ModelSpec = collections.namedtuple("ModelSpec", "name layers input_shape floatx compile input_name functional",
                                   defaults=(None, False))
#: ``optimizer_in_file``: False when the file names no optimizer and ``optimizer`` is the default.
CompileSpec = collections.namedtuple("CompileSpec", "optimizer loss metrics optimizer_in_file weighted_metrics",
                                     defaults=(True, None))
_MAX_INPUT_ELEMENTS = 2**40
#: The Keras layer classes npnet reads (Keras's Activation layer becomes ReLU or Softmax).
_KNOWN_LAYERS = frozenset(kc._KERAS_LAYER_TO_NPNET) | {"InputLayer", "Activation"}
#: Keras layers built when made (no build step), for which Keras writes no build_config.
_BUILT_WHEN_MADE = frozenset({"ReLU", "LeakyReLU", "Activation", "Softmax", "Dropout"})
#: The call arguments Keras records for a layer in a functional graph, besides its input.
_CALL_KWARGS = {"Dropout": {"training": False}, "Softmax": {"mask": None}}
#: Where a Keras 2 layer declares the model's input shape (read into the ModelSpec).
_SHAPE_KEYS = ("batch_shape", "batch_input_shape")


def snake_case(class_name):
    """Keras's key for a layer in weight files: ``Dense`` -> ``dense``, ``ReLU`` -> ``re_lu``."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def numbered_keys(class_names):
    """``["dense", "flatten", "dense_1"]``: Keras numbers repeated keys in layer order."""
    seen, keys = collections.Counter(), []
    for class_name in class_names:
        base = snake_case(class_name)
        keys.append(base if seen[base] == 0 else f"{base}_{seen[base]}")
        seen[base] += 1
    return keys


# --------------------------------------------------------------------------- writing


def model_to_keras(model, floatx, with_compile=True):
    """The ``config.json`` dict Keras writes for an equivalent ``keras.Sequential`` (or, for
    a functional npnet ``Model``, an equivalent functional ``keras.Model``); with
    ``with_compile``, a compiled model's ``compile_config`` too. A Sequential whose input
    shape is not known yet is written as Keras writes an unbuilt one: no InputLayer, no shapes."""
    if getattr(model, "_functional", False):
        config = functional_to_keras(model, floatx)
    else:
        config = sequential_to_keras(model, floatx)
    if with_compile and model.compiled:
        config["compile_config"] = compile_to_keras(model)
    return config


def sequential_to_keras(model, floatx):
    shape = None if model.input_shape is None else list(model.input_shape)
    entries = [] if shape is None else [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": shape, "dtype": floatx, "sparse": False, "ragged": False,
                    "name": "input_layer", "optional": False}, "registered_name": None}]
    layer_shape = model.input_shape
    for layer in model._layers:
        entries.append(layer_to_keras(layer, floatx, layer_shape))
        layer_shape = None if layer_shape is None else layer.compute_output_shape(layer_shape)
    body = {"name": model.name, "trainable": True, "dtype": kc.dtype_to_keras(floatx), "layers": entries}
    config = {"module": "keras", "class_name": "Sequential", "config": body, "registered_name": None}
    if shape is not None:
        body["build_input_shape"] = shape
        config["build_config"] = {"input_shape": shape}
    return config


def functional_to_keras(model, floatx):
    """What Keras writes for ``keras.Model(inputs, outputs)`` over a chain: an InputLayer
    named as the model's input, each layer fed by the one before (``inbound_nodes``)."""
    input_name = model.layers[0].name  # its InputLayer's: the Input's name, else Keras's input_layer...
    shape = model.input_shape
    entries = [{"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": list(shape), "dtype": floatx, "sparse": False, "ragged": False,
                           "name": input_name, "optional": False},
                "registered_name": None, "name": input_name, "inbound_nodes": []}]
    source = input_name
    for layer in model._layers:
        entry = layer_to_keras(layer, floatx, shape)
        tensor = {"class_name": "__keras_tensor__",
                  "config": {"shape": list(shape), "dtype": floatx, "keras_history": [source, 0, 0]}}
        kwargs = dict(_CALL_KWARGS.get(entry["class_name"], {}))
        entry.update(name=layer.name, inbound_nodes=[{"args": [tensor], "kwargs": kwargs}])
        entries.append(entry)
        shape, source = layer.compute_output_shape(shape), layer.name
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": model.name, "trainable": True, "layers": entries,
                       "input_layers": [input_name, 0, 0], "output_layers": [source, 0, 0]},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def layer_to_keras(layer, floatx, input_shape):
    """A layer's Keras entry; ``input_shape`` None (not known yet) leaves out its build_config."""
    entry = kc.LAYERS.get(type(layer))
    if entry is None and custom.is_users(type(layer)):
        return custom.layer_to_keras(layer, floatx, input_shape)
    if entry is None:
        raise ValueError(f"layer {layer.name!r} of class {type(layer).__name__} has no Keras "
                         "equivalent npnet knows, so it cannot be written to a Keras file")
    config = {"name": layer.name, "trainable": layer.trainable, "dtype": kc.dtype_to_keras(floatx),
              **entry.to_keras(layer)}
    keras_entry = {"module": "keras.layers", "class_name": entry.keras_class, "config": config,
                   "registered_name": None}
    if input_shape is not None and entry.keras_class not in _BUILT_WHEN_MADE:
        keras_entry["build_config"] = {"input_shape": list(input_shape)}
    return keras_entry


def compile_to_keras(model):
    optimizer, loss = model.optimizer, model.loss
    entry = kc.OPTIMIZERS.get(type(optimizer))
    if entry is None or type(loss) not in kc.LOSSES:
        raise ValueError(f"the optimizer {type(optimizer).__name__} or the loss "
                         f"{type(loss).__name__} has no Keras equivalent npnet knows")
    settings = optimizer.get_config()
    optimizer_config = {"name": optimizer.name, **entry.defaults,
                        **{key: settings[key] for key in entry.keys}}
    loss_config = {"name": loss.name, "reduction": "sum_over_batch_size", **loss.get_config()}
    return {"optimizer": {"module": "keras.optimizers", "class_name": entry.keras_class,
                          "config": optimizer_config, "registered_name": None},
            "loss": {"module": "keras.losses", "class_name": kc.LOSSES[type(loss)],
                     "config": loss_config, "registered_name": None},
            "loss_weights": None, "metrics": metrics_to_keras(model.metrics),
            "weighted_metrics": metrics_to_keras(model.weighted_metrics),
            "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def metrics_to_keras(metrics):
    """Compiled metrics as Keras's compile_config lists them (None for none): one given as a
    string as that string; an object of a metric class Keras has as its serialized object,
    with its name and settings; a loss used as a metric as that loss's object; anything else
    (a function of the user's) by its name."""
    return [metric_to_keras(metric) for metric in metrics] or None


def metric_to_keras(metric):
    if isinstance(getattr(metric, "_given_as", None), str):  # compile(metrics=['mse']): the string
        return metric._given_as
    cls = type(metric)
    if metrics_module._BY_NAME.get(cls.__name__) is cls:  # one of Keras's metric classes
        config = {key: _plain(value) for key, value in metric.get_config().items()}
        return {"module": "keras.metrics", "class_name": cls.__name__, "config": config, "registered_name": None}
    loss = getattr(metric, "_fn", None)
    if isinstance(loss, losses_module.Loss) and type(loss) in kc.LOSSES:
        config = {"name": metric.name, "reduction": "sum_over_batch_size", **loss.get_config()}
        return {"module": "keras.losses", "class_name": kc.LOSSES[type(loss)], "config": config,
                "registered_name": None}
    return metric.name


def _plain(value):
    """A config value as JSON holds it (NumPy numbers as Python's)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)) else value


# --------------------------------------------------------------------------- reading


def model_from_keras(config, where="model config", custom_objects=None):
    """A :class:`ModelSpec` from a Keras model config (Sequential or a functional chain).
    A layer of a class npnet does not have is read only when ``custom_objects`` (checked by
    :func:`npnet.saving.custom_objects.checked`) gives its class: see that module."""
    custom_objects = custom_objects or {}
    class_name, body = kc.keras_object(config, "model", {"Sequential", "Functional", "Model"}, where)
    entries = body.get("layers")
    if not isinstance(entries, list) or not entries or len(entries) > limits.MAX_LAYERS:
        raise ValueError(f"{where}: 'layers' must be a list of 1 to {limits.MAX_LAYERS} layers")
    functional = class_name != "Sequential"
    if functional:
        entries = _chain_order(body, entries, where)
    input_shape = _shape(body.get("build_input_shape"), where) if body.get("build_input_shape") else None
    specs, floatxs, keras_classes = [], set(), []
    for i, entry in enumerate(entries):
        layer_class, layer_config, spec = _read_layer(entry, custom_objects, f"{where} layer {i}")
        keras_classes.append(layer_class)
        floatxs.add(kc.dtype_from_keras(layer_config.get("dtype"), f"{where} layer {i}"))
        declared = layer_config.get("batch_shape", layer_config.get("batch_input_shape"))
        if declared is not None:
            if specs:
                raise ValueError(f"{where} layer {i} declares an input shape but is not first")
            input_shape = _shape(declared, f"{where} layer {i}")
        if spec is not None:
            specs.append(spec)
    # A functional model's weight file counts its InputLayer among the keys; a Sequential's does not.
    in_weights = keras_classes if class_name != "Sequential" else [c for c in keras_classes if c != "InputLayer"]
    keys = [key for key, c in zip(numbered_keys(in_weights), in_weights) if c != "InputLayer"]
    specs = [spec._replace(keras_key=key) for spec, key in zip(specs, keys)]
    floatxs.discard(None)
    if len(floatxs) > 1:
        raise ValueError(f"{where}: layers mix float types {sorted(floatxs)}; npnet uses one")
    if not specs:
        raise ValueError(f"{where}: the model has no layers besides its input")
    input_name = _name(entries[0].get("name"), f"{where} input layer") if functional else None
    return ModelSpec(_name(body.get("name", "sequential"), where), specs, input_shape,
                     floatxs.pop() if floatxs else "float32", None, input_name, functional)


def _read_layer(entry, custom_objects, where):
    """``(class name, config, LayerSpec or None for an InputLayer)`` of one layer entry: the
    caller's class when ``custom_objects`` has the name Keras looks up (its weights are then
    keyed by that class's name, as Keras keys them), else one of npnet's."""
    users = custom.named_class(custom.lookup_name(entry), custom_objects, where)
    if users is not None:
        config = custom.entry_config(entry, users, where)
        settings = {key: value for key, value in config.items() if key not in _SHAPE_KEYS}
        return users.__name__, config, LayerSpec(users, settings, None)
    layer_class, config = kc.keras_object(entry, "layer", _KNOWN_LAYERS, where,
                                          custom.advice(custom.lookup_name(entry)))
    spec = None if layer_class == "InputLayer" else _layer_spec(layer_class, config, f"{where} ({layer_class})")
    return layer_class, config, spec


def _layer_spec(layer_class, config, where):
    cls = kc._KERAS_LAYER_TO_NPNET[layer_class]
    kwargs = kc.LAYERS[cls].from_keras(config, where)
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"{where}: trainable must be true or false; the file has {trainable!r}")
    return LayerSpec(cls, {**kwargs, "name": _name(config.get("name"), where), "trainable": trainable}, None)


def _name(value, where):
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise ValueError(f"{where}: a name must be a string of 1 to 256 characters; received {value!r}")
    return value


def _shape(value, where):
    """``(None, 28, 28)`` from a Keras batch shape; sizes positive and bounded."""
    if not isinstance(value, list) or not 2 <= len(value) <= 8:
        raise ValueError(f"{where}: an input shape must be a list like [null, 28, 28]; received {value!r}")
    dims = [kc._integer(d, f"{where} input shape") for d in value[1:]]
    count = 1
    for d in dims:
        count *= d
    if count > _MAX_INPUT_ELEMENTS:
        raise ValueError(f"{where}: input shape {value} has more than {_MAX_INPUT_ELEMENTS:,} elements")
    return (None,) + tuple(dims)


def _chain_order(body, entries, where):
    """The layers of a functional model, checked to form one chain from its InputLayer to
    its output: npnet's functional models are chains, so a branch, a merge, a cycle, a layer
    fed by a name the file does not define, a layer used twice or a second input is refused."""
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in entries]
    first = entries[0] if isinstance(entries[0], dict) else {}
    if first.get("class_name") != "InputLayer" or first.get("inbound_nodes") not in (None, []):
        raise ValueError(f"{where}: a functional model's first layer must be its InputLayer, fed by "
                         f"nothing; the file has {first.get('class_name')!r} named {names[0]!r}")
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: a functional model's layers need distinct names; the file has "
                         f"{reprlib.repr(names)}")
    for i, entry in enumerate(entries[1:], start=1):
        sources = _inbound_names(entry.get("inbound_nodes"), f"{where} layer {i}")
        if sources != [names[i - 1]]:
            raise ValueError(f"{where}: layer {names[i]!r} takes {reprlib.repr(sources)} as input, expected "
                             f"[{names[i - 1]!r}]; npnet loads functional models whose layers form one chain, "
                             "each fed by the one before (no branches, merges or cycles)")
    for key, expected in (("input_layers", names[0]), ("output_layers", names[-1])):
        value = body.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            value = value[0]  # [["img", 0, 0]] (one tensor in a list) is ["img", 0, 0]
        if not isinstance(value, list) or not value or value[0] != expected:
            raise ValueError(f"{where}: {key} is {body.get(key)!r}; expected the chain's end {expected!r}")
    return entries


def _inbound_names(nodes, where):
    """Names of the layers feeding one layer, in Keras 3 or Keras 2 notation."""
    if not isinstance(nodes, list) or len(nodes) != 1:
        raise ValueError(f"{where}: expected one inbound node (a layer used once); received {nodes!r:.200}")
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [{"config": {"keras_history": [name, 0, 0]}}]}
        tensors = node.get("args", [])
        return [t.get("config", {}).get("keras_history", [None])[0] if isinstance(t, dict) else None
                for t in tensors]
    return [t[0] if isinstance(t, list) and t else None for t in node]  # Keras 2: [[name, 0, 0, {}]]


# --------------------------------------------------------------------------- compile settings


def compile_from_keras(config, where="compile config"):
    """A :class:`CompileSpec` (npnet optimizer, loss and metric names) from Keras's
    ``compile_config`` (or a legacy ``training_config``), or None when there is none."""
    if not config:
        return None
    if not isinstance(config, dict):
        raise ValueError(f"{where} must be a dict; received {type(config).__name__}")
    loss = loss_from_keras(config.get("loss"), where)
    metrics = metrics_from_keras(config.get("metrics"), where)
    weighted = metrics_from_keras(config.get("weighted_metrics"), f"{where} weighted_metrics")
    # refuse now what compile() would refuse later
    metrics_module.resolve_weighted(weighted, metrics_module.resolve(metrics, loss), loss)
    value = config.get("optimizer", config.get("optimizer_config"))
    if value is None:
        return CompileSpec(_default_optimizer(where), loss, metrics, optimizer_in_file=False,
                           weighted_metrics=weighted)
    return CompileSpec(optimizer_from_keras(value, where), loss, metrics, weighted_metrics=weighted)


def _default_optimizer(where):
    """compile()'s default optimizer, with a warning, for a compile config whose optimizer is
    null or absent. Keras writes null after ``compile(optimizer=None)``; Keras 3.15 then loads
    such a file only while the model is unbuilt (compiled, with no optimizer: ``fit`` fails),
    and otherwise fails with an AttributeError. npnet keeps the file's loss and metrics, so
    ``evaluate`` works, and says which optimizer ``fit`` would use."""
    warnings.warn(f"{where} names no optimizer (Keras writes null after compile(optimizer=None)); "
                  "the model is compiled with the file's loss and metrics and compile()'s default "
                  "optimizer, RMSprop. Call model.compile(...) to choose another before fit().",
                  UserWarning, stacklevel=4)
    return optimizers_module.RMSprop()


def optimizer_from_keras(value, where):
    if isinstance(value, str):
        value = {"class_name": value, "config": {}}
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        class_name = value["class_name"]  # Keras 2 writes its built-ins as "Custom>Adam"
        value = {**value, "class_name": class_name[len("Custom>"):] if class_name.startswith("Custom>")
                 else {k.lower(): k for k in kc._KERAS_OPTIMIZER_TO_NPNET}.get(class_name.lower(), class_name)}
    class_name, config = kc.keras_object(value, "optimizer", kc._KERAS_OPTIMIZER_TO_NPNET, f"{where} optimizer")
    cls = kc._KERAS_OPTIMIZER_TO_NPNET[class_name]
    entry = kc.OPTIMIZERS[cls]
    kc._require_defaults(config, f"{where} optimizer {class_name}", **entry.defaults)
    if isinstance(config.get("learning_rate"), dict):
        raise ValueError(f"{where}: the optimizer's learning rate is a schedule "
                         f"({config['learning_rate'].get('class_name')!r}); npnet loads a constant rate")
    name = config.get("name")
    return cls(**{key: config[key] for key in entry.keys if key in config},
               name=name if isinstance(name, str) else None)


def loss_from_keras(value, where):
    if isinstance(value, str):
        if value not in losses_module._BY_NAME:
            raise ValueError(f"{where}: loss {value!r} is not one npnet knows; known: "
                             f"{', '.join(sorted(losses_module._BY_NAME))}")
        return losses_module.get(value)
    class_name, config = kc.keras_object(value, "loss", kc._KERAS_LOSS_TO_NPNET, f"{where} loss")
    kc._require_defaults(config, f"{where} loss {class_name}", axis=(-1, None), ignore_class=None,
                         reduction=("sum_over_batch_size", "auto", None))
    cls = kc._KERAS_LOSS_TO_NPNET[class_name]
    accepted = set(cls().get_config()) - {"name", "reduction"}
    settings = {key: config[key] for key in accepted if key in config}
    if not isinstance(settings.get("from_logits", False), bool):
        raise ValueError(f"{where}: from_logits must be true or false; the file has {settings['from_logits']!r}")
    for key, number in settings.items():
        if key != "from_logits" and (isinstance(number, bool) or not isinstance(number, (int, float))):
            raise ValueError(f"{where}: loss setting {key} must be a number; the file has {number!r}")
    return cls(**settings)


def metrics_from_keras(value, where):
    """The ``metrics`` of a compile config as ``compile()`` takes them: names, metric objects
    built from their class and settings, and losses used as metrics."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{where}: metrics must be a list; received {type(value).__name__}")
    flat = [m for item in value for m in (item if isinstance(item, list) else [item])]  # Keras 2 nests
    return [_metric_from_keras(item, f"{where} metric") for item in flat]


def _metric_from_keras(item, where):
    if isinstance(item, dict) and item.get("module") == "keras.losses":  # a loss used as a metric
        loss = loss_from_keras(item, where)
        name = item.get("config", {}).get("name")
        if isinstance(name, str) and name:
            loss.name = name
        return loss
    if isinstance(item, dict):
        known = {name for name in metrics_module._BY_NAME if name[:1].isupper()}
        class_name, config = kc.keras_object(item, "metric", known | {"MeanMetricWrapper"}, where)
        if class_name != "MeanMetricWrapper":
            return _metric_object(metrics_module._BY_NAME[class_name], config, f"{where} {class_name}")
        item = config.get("name")
    if isinstance(item, str) and item not in kc.METRICS and item in metrics_module._BY_NAME:
        return item  # Keras's strings, kept as written: the history key
    if not isinstance(item, str) or item not in kc.METRICS:
        raise ValueError(f"{where}: metric {item!r} is not one npnet computes; known: "
                         f"{', '.join(sorted(set(kc.METRICS.values()) | set(metrics_module._BY_NAME)))}")
    return kc.METRICS[item]


def _metric_object(cls, config, where):
    """``cls(**config)`` for a metric class, after checking each setting is one it takes and
    a plain JSON value, and that it asks for no more than
    :data:`~npnet.saving.limits.MAX_METRIC_THRESHOLDS` thresholds."""
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise ValueError(f"{where}: settings {unknown} are not ones npnet's {cls.__name__} takes "
                         f"({', '.join(sorted(accepted))})")
    for key, setting in config.items():
        values = setting if isinstance(setting, list) else [setting]
        if len(values) > limits.MAX_METRIC_THRESHOLDS or not all(
                v is None or isinstance(v, (bool, int, float, str)) for v in values):
            raise ValueError(f"{where}: setting {key} must be a number, a string or a list of up to "
                             f"{limits.MAX_METRIC_THRESHOLDS} numbers; the file has {str(setting)[:80]}")
    count = config.get("num_thresholds", 0)
    if isinstance(count, (int, float)) and not isinstance(count, bool) and count > limits.MAX_METRIC_THRESHOLDS:
        raise ValueError(f"{where}: num_thresholds {count} is more than the {limits.MAX_METRIC_THRESHOLDS} "
                         "npnet reads from a file")
    return cls(**{key: setting for key, setting in config.items() if key != "dtype"})
