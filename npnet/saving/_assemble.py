"""Building a loaded model in two steps: layer objects first (no weights), arrays last.

Every loader makes the layers from the file's description, computes the weight shapes they
will need (:mod:`npnet.saving.shapes`), checks the stored arrays against them, and only then
builds the model, so nothing large is allocated for a file that lies about its sizes.
"""

import contextlib

from .. import config
from . import custom_objects, restore, shapes


@contextlib.contextmanager
def float_type(floatx):
    previous = config.floatx()
    config.set_floatx(floatx)
    try:
        yield
    finally:
        config.set_floatx(previous)


def make_layers(layer_specs, floatx):
    """Layer objects from ``(class, kwargs)`` pairs; no weights are created yet (a class of the
    caller's own is made with its ``from_config``, see :mod:`npnet.saving.custom_objects`)."""
    with float_type(floatx):
        return [custom_objects.make_layer(cls, kwargs) for cls, kwargs in layer_specs]


def expected_shapes(layers, input_shape, path):
    if input_shape is None:
        raise ValueError("the file declares no input shape, so the model's weights cannot be built")
    return shapes.expected_weight_shapes(layers, input_shape, path)


def build(name, layers, input_shape, floatx, arrays, functional=False, input_name=None):
    """A built ``Sequential`` with ``arrays`` (one list of :class:`~npnet.saving.restore.Stored`
    per layer, already shape-checked; None keeps the fresh weights, as a model read from JSON
    has), or with ``functional`` an ``npnet.Model`` whose input is named ``input_name``. A
    Sequential without ``input_shape`` is left unbuilt."""
    with float_type(floatx):
        model = (chain_model(name, layers, input_shape, input_name) if functional
                 else stacked_model(name, layers, input_shape))
    if arrays is not None:
        model.set_weights(restore.checked_weights(model, [a for per_layer in arrays for a in per_layer]))
    return model


def stacked_model(name, layers, input_shape):
    from ..models import Sequential

    model = Sequential(name=name)
    for layer in layers:
        model.add(layer)
        if layer._weight_scope is None:  # a layer of the caller's class, built to learn its shapes
            layer._weight_scope = model.name
    if not model.built and input_shape is not None:
        model.build(input_shape)
    return model


def chain_model(name, layers, input_shape, input_name):
    """``npnet.Model(inputs, outputs)`` of ``layers`` applied one after another to an Input."""
    from ..models import Model
    from ..symbolic import Input

    if input_shape is None:
        raise ValueError("the file declares no input shape for the functional model")
    inputs = outputs = Input(shape=tuple(input_shape[1:]), name=input_name)
    for layer in layers:
        outputs = layer(outputs)
    return Model(inputs, outputs, name=name)


def compile_loaded(model, spec, backend, stored_optimizer=None):
    """Compile ``model`` from a ``CompileSpec``; ``stored_optimizer`` is a
    :class:`~npnet.saving.restore.StoredOptimizer` with shapes already checked (its values are
    checked here, see :mod:`npnet.saving.restore`)."""
    if spec is None:
        return
    model.compile(optimizer=spec.optimizer, loss=spec.loss, metrics=spec.metrics, backend=backend,
                  weighted_metrics=spec.weighted_metrics)
    restore_loaded_optimizer(model, stored_optimizer)


def restore_loaded_optimizer(model, stored_optimizer):
    """The file's optimizer state, checked, into a freshly loaded and compiled ``model``."""
    if stored_optimizer is not None:
        restore.restore_optimizer(model.optimizer, restore.prepared_optimizer(
            model.optimizer, model.trainable_weights, stored_optimizer))
