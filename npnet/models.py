"""Sequential: a stack of layers that compiles, trains, evaluates, predicts and saves.

The model keeps its layers and its compile settings. Checking inputs lives in
:mod:`npnet.validation`, the loops in :mod:`npnet.training_loop`, the table in
:mod:`npnet.summary`, files in :mod:`npnet.saving`; the arithmetic is reached through one
trainer made by :func:`npnet.backends.create`.
"""

import contextlib
import copy
import os
import threading
import warnings

import numpy as np

from . import backends, callbacks as callbacks_module, layers as layers_module
from . import losses as losses_module, metrics as metrics_module, optimizers as optimizers_module
from . import data as data_module, saving, summary as summary_module, symbolic, training_loop, validation
from .progbar import Progbar, resolve_verbose
from . import utils
from .utils import format_shape


class Sequential:
    """A linear stack of layers, used exactly like ``keras.Sequential``."""

    _count = 0
    #: Keras 3 builds a Sequential's layers inside the model's name scope, so their weights'
    #: paths read ``sequential/dense/kernel``; a functional model's layers are built outside it.
    _scopes_weights = True
    #: Saved as Keras's functional ``Model`` (an InputLayer with the input's name) and loaded
    #: back as an npnet ``Model``; a Sequential is saved and loaded as one.
    _functional = False

    def __init__(self, layers=None, name=None, trainable=True):
        _refuse_custom_steps(type(self))
        if name is None:
            name = "sequential" if Sequential._count == 0 else f"sequential_{Sequential._count}"
            Sequential._count += 1
        self.name = name
        self._layers = []  # the layers that compute, in order: what the backends run
        #: what ``model.layers`` lists, as Keras does: each layer or nested model added, with
        #: the number of computing layers it brought
        self._entries = []
        self._input_shape = None  # declared by npnet.Input(...) as the first entry
        self._input_tensor = None  # that npnet.Input(...) itself
        #: The symbolic tensors [input, each layer's output] once the input shape is known
        #: (``model.inputs``, ``layer.output``); see :meth:`_trace`.
        self._tensors = None
        self._given_as_lists = (False, False)  # a functional Model's inputs / outputs were lists
        self.optimizer = self.loss = self.accuracy = None
        self.run_eagerly, self.jit_compile = False, "auto"  # Keras's compile settings (see compile)
        self.metrics = []
        #: ``compile(weighted_metrics=...)``, weighed by sample_weight / class_weight, and
        #: their log keys (``weighted_accuracy`` when ``metrics`` has an ``accuracy`` too).
        self.weighted_metrics, self._weighted_names = [], []
        self.compiled = False
        self.stop_training = False
        self.steps_per_execution = "auto"
        self._requested_backend = None
        self._trainer = None
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    # -- structure ------------------------------------------------------------------------

    def add(self, layer):
        """Append a layer (or ``npnet.Input(...)`` or an ``InputLayer`` first, or a model, or a
        list of those). A model added is one of ``model.layers``, as in Keras (``model.layers[0]
        .trainable = False`` freezes all of it), and its layers compute in this model's chain,
        sharing their weights with it. A call that fails leaves the model unchanged, including
        a compiled model whose backend cannot run the result."""
        if isinstance(layer, symbolic.InputLayer):
            layer = layer.output
        if isinstance(layer, symbolic.SymbolicTensor):
            return self._declare_input(layer)
        if isinstance(layer, (list, tuple)):
            for inner in layer:
                self.add(inner)
            return None
        if isinstance(layer, Sequential):
            return self._add_model(layer)
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"Sequential.add expects an npnet.layers.Layer, npnet.Input(...), an InputLayer "
                            f"or a model; received {layer!r}")
        self._check_new_entry(layer)
        self._add_layer(layer)
        self._entries.append((layer, 1))
        return None

    def _check_new_entry(self, entry):
        """An entry of ``model.layers`` is there once, under a name no other entry has (Keras)."""
        self._check_new(entry, [existing for existing, _ in self._entries])

    def _check_new(self, item, present):
        """``item`` (a layer or a model) is not among ``present``, and neither is its name."""
        if any(existing is item for existing in present):
            raise ValueError(f"{'Model' if isinstance(item, Sequential) else 'Layer'} {item.name!r} is already "
                             "in the model")
        if any(existing.name == item.name for existing in present):
            raise ValueError(f"All layers of a model must have unique names, as in Keras: {item.name!r} is "
                             f"already the name of a layer in {self.name!r}; pass another name=...")

    def _add_model(self, model):
        """Add ``model`` as one entry, its layers one by one; all of them or none."""
        if model is self:
            raise ValueError(f"Model {self.name!r} cannot be added to itself")
        self._check_new_entry(model)
        inner = list(model._layers)
        if not inner:
            raise ValueError(f"Model {model.name!r} has no layers to add")
        before = len(self._layers)
        try:
            for layer in inner:
                self._add_layer(layer)
        except Exception:
            del self._layers[before:]
            self._adopt(self._make_trainer(self._layers) if self.compiled and self._layers else None)
            self._trace()
            raise
        self._entries.append((model, len(inner)))
        return None

    def _add_layer(self, layer):
        """Append one computing layer, checked; nothing changes when it is refused."""
        declared = layer._declared_input_shape
        if declared is not None and self._layers:
            raise ValueError(f"Only the first layer may declare input_shape; {layer.name!r} is not first")
        if declared is not None and self._input_shape is not None and declared[1:] != self._input_shape[1:]:
            # The layers of a model built with input_shape=..., called on npnet.Input(...), come here.
            raise ValueError(f"Layer {layer.name!r} declares input_shape={declared[1:]}, but the model's "
                             f"input has shape {self._input_shape[1:]}")
        self._check_new(layer, self._layers)  # also among a nested model's layers: files key weights by name
        self._check_built_layer_fits(layer)
        trainer = self._make_trainer(self._layers + [layer]) if self.compiled else None
        built_before = layer.built
        self._layers.append(layer)
        try:
            if self.input_shape is not None and not self.built:
                self.build(self.input_shape)
        except Exception:
            self._layers.pop()
            raise
        if self._scopes_weights and getattr(layer, "_weight_scope", None) is None and not built_before:
            layer._weight_scope = self.name
        self._adopt(trainer)
        self._trace()

    def _check_built_layer_fits(self, layer):
        """A layer whose weights were built for inputs of some number of features cannot follow
        layers whose output has another number (the last axis, the one a kernel reads)."""
        built_for = getattr(layer, "input_shape", None) if layer.built and layer.get_weights() else None
        incoming = self.input_shape
        if built_for is None or incoming is None or len(built_for) < 2:
            return
        for existing in self._layers:
            incoming = existing.compute_output_shape(incoming)
        if len(incoming) >= 2 and None not in (built_for[-1], incoming[-1]) and built_for[-1] != incoming[-1]:
            raise ValueError(f"Layer {layer.name!r} was built for inputs of shape {tuple(built_for[1:])}, but "
                             f"the model's output before it has shape {tuple(incoming[1:])}")

    def _declare_input(self, tensor):
        if self._layers or self._input_shape is not None:
            raise ValueError("npnet.Input(...) or InputLayer(...) must come first in a Sequential model, "
                             "and only once")
        if tensor.layer is not None:
            raise ValueError(f"Sequential takes npnet.Input(...) itself, not a layer's output {tensor!r}")
        self._input_shape = (None,) + tuple(tensor.shape[1:])
        self._input_tensor = tensor

    def _adopt(self, trainer):
        """Use ``trainer`` (made for the current layers) from now on; None: made when needed."""
        self._trainer = trainer
        if trainer is not None:
            trainer.layers = self._layers

    def pop(self):
        """Remove the last of ``model.layers`` (a layer, or a model added) and return it, as
        Keras's ``Sequential.pop``."""
        if not self._entries:
            raise IndexError("pop() on a model without layers")
        entry, count = self._entries[-1]
        kept = self._layers[:-count]
        trainer = self._make_trainer(kept) if self.compiled and kept else None
        del self._layers[-count:]
        self._entries.pop()
        self._adopt(trainer)
        self._trace()
        return entry

    def _entry_sizes(self):
        """How many computing layers each of ``model.layers`` stands for (0: the input)."""
        return [count for _, count in self._entries]

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index``, as Keras's ``get_layer``."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs exactly one of name=... or index=...")
        listed = self.layers
        if index is not None:
            if not -len(listed) <= index < len(listed):
                raise ValueError(f"get_layer: index {index} is out of range for {len(listed)} layers")
            return listed[index]
        for layer in listed:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[layer.name for layer in listed]}")

    @property
    def layers(self):
        """The model's layers in order, a model added counting as one, as a new list each
        time (Keras's ``model.layers``): changing the list does not change the model;
        :meth:`add` and :meth:`pop` do."""
        return [entry for entry, _ in self._entries]

    @property
    def trainable(self):
        return any(layer.trainable for layer in self._layers) if self._layers else True

    @trainable.setter
    def trainable(self, value):
        """Freeze (False) or unfreeze every layer; compile again for training to see it."""
        for layer in self._layers:
            layer.trainable = bool(value)

    @property
    def built(self):
        return bool(self._layers) and all(layer.built for layer in self._layers)

    @property
    def input_shape(self):
        """e.g. ``(None, 28, 28)``; None until the model knows it."""
        if self._input_shape is not None:
            return self._input_shape
        if not self._layers:
            return None
        first = self._layers[0]
        return first.input_shape if first.built else first._declared_input_shape

    def output_shapes(self, input_shape=None):
        """The output shape of every layer for inputs of ``input_shape`` (default: the model's)."""
        shape = input_shape if input_shape is not None else self.input_shape
        shapes = []
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    @property
    def output_shape(self):
        return self.output_shapes()[-1] if self.input_shape else None

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape`` (batch dimension first)."""
        if not self._layers:
            raise ValueError("The model has no layers; add some before building it")
        if input_shape is None:
            input_shape = self.input_shape
            if input_shape is None:
                raise ValueError("build() needs an input_shape, e.g. model.build((None, 28, 28)), "
                                 "or give the first layer input_shape=...")
        shape = tuple(input_shape)
        known = self.input_shape if self._layers[0].built else None
        if known is not None and (len(known) != len(shape)
                                  or any(a is not None and b is not None and a != b for a, b in zip(known, shape))):
            raise ValueError(f"This model is built for inputs of shape {format_shape(known)}; received "
                             f"input_shape={format_shape(shape)}. Make a new model for other inputs.")
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._trace()

    # -- symbolic inputs and outputs (the functional API) ---------------------------------

    def _trace(self):
        """Bring the symbolic tensors in step with the layers: once the input shape is known,
        each layer is applied to the previous symbolic tensor, as a Keras 3 Sequential builds
        its functional graph. Calls made before are reused, so ``layer.output`` stays the
        tensor of the layer's first call."""
        shape = self.input_shape
        if shape is None or not self._layers:
            self._tensors = None
            return
        tensors = self._tensors or []
        if not tensors or tuple(tensors[0].shape[1:]) != tuple(shape[1:]):
            given = self._input_tensor
            fits = given is not None and tuple(given.shape[1:]) == tuple(shape[1:])
            tensors = [given if fits else symbolic.Input(shape=shape[1:])]
        kept = 1
        while kept < len(tensors) and kept <= len(self._layers) and tensors[kept].layer is self._layers[kept - 1]:
            kept += 1
        tensors = tensors[:kept]
        try:
            for layer in self._layers[kept - 1:]:
                tensors.append(symbolic.follow(layer, tensors[-1]))
        except NotImplementedError:
            tensors = None  # a layer that cannot say its output shape: no symbolic tensors, as in Keras
        self._tensors = tensors

    def _symbolic(self, what):
        """The symbolic tensors, or a clear AttributeError when the input shape is unknown."""
        self._trace()
        if self._tensors is None:
            reason = ("it has no layers" if not self._layers else
                      "its input shape is unknown. Start it with npnet.Input(shape=...), give the first "
                      "layer input_shape=..., or build it (model.build((None, ...)), or fit, evaluate or "
                      "predict once)")
            kind = "Sequential model" if type(self) is Sequential else "Model"
            raise AttributeError(f"{kind} {self.name!r} has no defined {what} yet: {reason}")
        return self._tensors

    @property
    def inputs(self):
        """``[input tensor]``: npnet models have one input, as a list, as Keras's ``model.inputs``."""
        return [self._symbolic("inputs")[0]]

    @property
    def outputs(self):
        """``[output tensor]``: the last layer's symbolic output, as Keras's ``model.outputs``."""
        return [self._symbolic("outputs")[-1]]

    @property
    def input(self):
        """The input tensor (a list of one when a functional model was given a list, as in Keras)."""
        tensor = self._symbolic("input")[0]
        return [tensor] if self._given_as_lists[0] else tensor

    @property
    def output(self):
        """The output tensor (a list of one when a functional model was given a list, as in Keras)."""
        tensor = self._symbolic("output")[-1]
        return [tensor] if self._given_as_lists[1] else tensor

    # -- weights --------------------------------------------------------------------------

    @property
    def weights(self):
        """The parameter arrays themselves, layer by layer (Dense: kernel, bias)."""
        return [p for layer in self._layers for p in layer.params.values()]

    @property
    def trainable_weights(self):
        return [p for layer in self._layers if layer.trainable for p in layer.params.values()]

    @property
    def non_trainable_weights(self):
        return [p for layer in self._layers if not layer.trainable for p in layer.params.values()]

    # Keras 3's names for the same lists
    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    @property
    def losses(self):
        """Keras's ``model.losses``: every layer's regularization penalty at the current
        weights; ``sum(model.losses)`` is what training adds to the loss."""
        return [penalty for layer in self._layers for penalty in layer.losses]

    def weight_names(self):
        """``["dense/kernel", "dense/bias", ...]`` in the order of ``get_weights()``."""
        return [f"{layer.name}/{name}" for layer in self._layers for name in layer.params]

    def get_weights(self):
        """Copies of all parameters, in the same order as a Keras model's ``get_weights()``."""
        return [p.copy() for p in self.weights]

    def set_weights(self, weights):
        """Set all parameters from a list like ``get_weights()`` returns (e.g. from Keras).

        Every array is checked (shape, finite values) before any parameter changes.
        """
        self.require_built("set_weights")
        if isinstance(weights, (dict, str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError(f"set_weights expects a list of arrays, as get_weights() returns; "
                            f"received {type(weights).__name__}")
        weights = [np.asarray(w) for w in weights]
        expected = [p.shape for p in self.weights]
        received = [w.shape for w in weights]
        if expected != received:
            raise ValueError(f"set_weights expects {len(expected)} arrays of shapes {expected}; "
                             f"received {len(received)} of shapes {received}")
        for name, value in zip(self.weight_names(), weights):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"set_weights expects arrays of numbers; received an array of dtype "
                                f"{value.dtype} for {name}")
        converted = [w.astype(p.dtype, casting="same_kind") for p, w in zip(self.weights, weights)]
        for name, value in zip(self.weight_names(), converted):
            if not np.isfinite(value).all():
                raise ValueError(f"set_weights received NaN or infinite values for {name}")
        start = 0
        for layer in self._layers:
            layer.check_weights(dict(zip(layer.params, converted[start:start + len(layer.params)])))
            start += len(layer.params)
        with utils.interrupts_deferred():  # Ctrl-C: all the new weights or none
            for param, value in zip(self.weights, converted):
                np.copyto(param, value)

    def count_params(self):
        self.require_built("count_params")
        return sum(layer.count_params() for layer in self._layers)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print a Keras-like table of layers, output shapes and parameter counts.

        Keras's arguments: ``line_length`` (the table's width), ``positions`` (the columns'
        right edges, as fractions of the line or in characters), ``show_trainable`` (a
        Trainable column: Y, N, or - for a layer without weights), ``layer_range`` (the first
        and last layer names to show). ``expand_nested`` changes nothing: a nested model's
        layers are already the model's own in npnet. Before the model is built the shapes
        are ``?`` and the counts ``0 (unbuilt)``, as in Keras.
        """
        del expand_nested  # accepted for Keras code; npnet's layers are never nested
        text = summary_module.summary_text(self, line_length=line_length, positions=positions,
                                           show_trainable=show_trainable, layer_range=layer_range)
        (print_fn or print)(text)

    # -- compile --------------------------------------------------------------------------

    def _one_loss(self, loss):
        """``loss`` given as Keras's structure for the model's one output, or itself."""
        return _one_of(loss, "loss", self._layers[-1].name if self._layers else None)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, backend=None,
                steps_per_execution="auto", weighted_metrics=None, loss_weights=None, run_eagerly=False,
                jit_compile="auto", auto_scale_loss=True):
        """Choose the optimizer, the loss, the metrics and the backend.

        ``metrics`` ignore ``sample_weight`` and ``class_weight``; ``weighted_metrics`` (a
        list, as in Keras) are weighed by them in fit and evaluate, and logged under their
        name, or ``weighted_<name>`` when a metric of ``metrics`` has it.

        ``backend``: ``None`` or ``'auto'`` (numba when it covers the model, else NumPy; the
        default, or ``NPNET_BACKEND``), ``'numba'`` (refuses what its kernels do not cover)
        or ``'numpy'`` (the readable reference). ``steps_per_execution``: batches per
        backend call, as in Keras; ``'auto'`` runs 1 when a callback defines a batch hook
        and :data:`npnet.training_loop.AUTO_STEPS_PER_EXECUTION` otherwise. Nothing on the
        model changes when any argument is refused.

        Keras's ``run_eagerly`` and ``jit_compile`` choose how TensorFlow runs a step; npnet's
        steps are Python and NumPy, or numba's compiled kernels, whatever they say (``backend``
        chooses), so they are checked and kept as ``model.run_eagerly``/``model.jit_compile``.
        ``auto_scale_loss`` (mixed precision) changes nothing in float32 or float64.
        ``loss_weights`` weigh the losses of several outputs: npnet models have one, so it
        must be None.
        """
        _check_keras_compile_arguments(loss_weights, run_eagerly, jit_compile, auto_scale_loss)
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'; "
                             f"known losses: {', '.join(sorted(losses_module._BY_NAME))}")
        optimizer_obj = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(self._one_loss(loss))
        metric_objs = metrics_module.resolve(metrics, loss_obj)
        weighted_objs = metrics_module.resolve_weighted(weighted_metrics, metric_objs, loss_obj)
        steps_per_execution = validation.check_steps_per_execution(steps_per_execution)
        accuracy = metrics_module.Accuracy(label_kind=loss_obj.label_kind)  # what the backends count
        trainer = backends.create(backend, self._layers, loss_obj, optimizer_obj, accuracy)
        self.optimizer, self.loss, self.accuracy = optimizer_obj, loss_obj, accuracy
        self.metrics, self.steps_per_execution = metric_objs, steps_per_execution
        self.weighted_metrics = weighted_objs
        self._weighted_names = metrics_module.logged_names([m.name for m in metric_objs],
                                                           [m.name for m in weighted_objs])
        self._requested_backend, self._trainer, self.compiled = backend, trainer, True
        self.run_eagerly, self.jit_compile = bool(run_eagerly), jit_compile

    def _metric_plan(self, metrics=None, loss=None):
        """The compiled metrics, marking those the backends count (argmax accuracies)."""
        metrics = self.metrics if metrics is None else metrics
        label_kind = (loss or self.loss).label_kind
        units = self._output_units()
        return training_loop.MetricPlan(
            metrics, [metrics_module.counted_by_argmax(m, label_kind, units) for m in metrics],
            self.weighted_metrics, self._weighted_names)

    def _output_units(self):
        if self.input_shape is not None and self._layers:
            return self.output_shape[-1]
        return getattr(self._layers[-1], "units", None) if self._layers else None

    @property
    def metrics_names(self):
        """``['loss', 'accuracy', ...]``: the names of ``evaluate``'s values, as in Keras
        (the weighted metrics' log keys last)."""
        return ["loss"] + [m.name for m in self.metrics] + self._weighted_names

    def _make_trainer(self, layers):
        return backends.create(self._requested_backend, layers, self.loss, self.optimizer,
                               self.accuracy)

    @property
    def backend(self):
        """The trainer every computation goes through (made on first use for a model that
        was never compiled, for prediction only)."""
        if self._trainer is None:
            self._trainer = self._make_trainer(self._layers)
        return self._trainer

    @property
    def backend_name(self):
        """``'numba'`` or ``'numpy'``: the backend this model computes with."""
        return self.backend.name

    def require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}(): the model needs an "
                               "optimizer and a loss, e.g. model.compile(optimizer='adam', "
                               "loss='sparse_categorical_crossentropy', metrics=['accuracy'])")

    def require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}() needs the model's weights, which do not exist yet: give "
                             "the first layer input_shape=..., call model.build(input_shape), or "
                             "call the model on data first")

    # -- checking inputs ------------------------------------------------------------------

    def check_inputs(self, x, what="x"):
        """``x`` validated for this model and converted to its float type (see
        :func:`npnet.validation.check_inputs`)."""
        if not self._layers:
            raise ValueError("The model has no layers")
        x = _one_array(x)
        if isinstance(x, dict):
            x = self._named_input(x, what)
        return validation.check_inputs(x, self.input_shape, what, self.name, self._float_type())

    def _named_input(self, x, what):
        """The array of a dict keyed by the model's input name, ``{"features": x}`` for
        ``npnet.Input(shape=..., name="features")``. Other keys are ignored, as Keras does."""
        name = self._input_tensor.name if self._input_tensor is not None else None
        received = sorted(map(str, x))
        if name is None:
            raise ValueError(f"{what} is a dict with keys {received}, but the input of model {self.name!r} "
                             "has no name: pass the array itself, or name the input, e.g. "
                             "npnet.Input(shape=(784,), name='features'), and pass {'features': array}")
        if name not in x:
            raise ValueError(f"Missing data for input {name!r} of model {self.name!r}: {what} is a dict "
                             f"with keys {received}; expected the key {name!r} (npnet models have one input)")
        return x[name]

    def check_data(self, x, y, what=("x", "y"), loss=None):
        """``(x, y)`` validated together for ``loss`` (default: the compiled one), before
        anything changes; returns them converted. Builds nothing."""
        x = self.check_inputs(x, what[0])
        n_classes = self.output_shapes((None,) + x.shape[1:])[-1][-1]
        y = validation.check_labels(_one_array(y), x.shape[0], n_classes, loss or self.loss, what[1])
        return x, y

    def _float_type(self):
        return self.weights[0].dtype if self.built and self.weights else None

    def ensure_built(self, x):
        """Build the weights for samples shaped like ``x`` if they do not exist yet."""
        if not self.built:
            self.build((None,) + x.shape[1:])

    # -- training and inference -----------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over ``(x, y)`` (arrays, an ``npnet.data.PyDataset`` or a
        generator of batches); returns a ``History``. A batch whose loss, gradients or update
        is not finite is not applied: fit warns and stops, and the model keeps the weights,
        optimizer slots and iterations of the last finite step."""
        self.require_compiled("fit")
        with _one_fit_at_a_time(self):
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                             shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
                             validation_steps, validation_batch_size, validation_freq)

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
             class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
             validation_batch_size, validation_freq):
        verbose = resolve_verbose(verbose)
        epochs, initial_epoch = validation.check_epochs(epochs, initial_epoch)
        validation_freq = validation.check_validation_freq(validation_freq)
        callbacks_module.CallbackList(callbacks, self, {})  # refuse a non-callback before building
        validation_steps = validation.check_steps(validation_steps, "validation_steps")
        validation.check_batch_size(validation_batch_size, name="validation_batch_size")  # before anything is built
        validation_batch_size = batch_size if validation_batch_size is None else validation_batch_size
        validate = self._validation_source(validation_data, validation_batch_size, validation_steps)
        run_epoch, steps, validate = self._fit_plan(x, y, batch_size, validation_split, validate, shuffle,
                                                    (steps_per_epoch, validation_steps), (sample_weight, class_weight))
        history = callbacks_module.History()
        listeners = self._callback_list(callbacks, verbose, epochs, steps, history)
        self.stop_training, self.history, self._initial_epoch = False, history, None
        listeners.call("on_train_begin")
        # A callback (BackupAndRestore) may resume an interrupted run, as in Keras.
        initial_epoch = max(initial_epoch, self._initial_epoch or 0)
        logs = None
        for epoch in range(initial_epoch, epochs):
            listeners.call("on_epoch_begin", epoch)
            means = run_epoch(epoch, listeners)
            if means.n_seen == 0:
                break
            logs = means.logs()
            if validate is not None and (epoch + 1) in validation_freq(epochs):
                logs.update(validate(listeners).logs("val_"))
            listeners.call("on_epoch_end", epoch, logs=logs)
            if self.stop_training:
                break
        listeners.call("on_train_end", logs=logs)  # the last epoch's logs, as Keras passes them
        return history

    def _fit_plan(self, x, y, batch_size, validation_split, val, shuffle, steps, weighting):
        """Check every argument before anything changes; return ``(run_epoch, steps, validate)``
        (``val``: the validation function of :meth:`_validation_source`, or None; ``steps``:
        ``(steps_per_epoch, validation_steps)``)."""
        steps_per_epoch = validation.check_steps(steps[0], "steps_per_epoch")
        validation_split = validation.check_validation_split(validation_split)
        if data_module.is_batch_source(x):
            if y is not None or validation_split or weighting != (None, None):
                raise ValueError("when x is a dataset or generator of (x, y) batches, y, sample_weight, "
                                 "class_weight and validation_split must not be given")
            source = data_module.BatchSource(x, steps_per_epoch)
            run_epoch = lambda epoch, listeners: training_loop.train_epoch_from_source(  # noqa: E731
                self.backend, self, source, epoch, listeners, self._metric_plan())
            return run_epoch, source.steps, val
        return self._array_plan(x, y, batch_size, validation_split, val, shuffle, (steps_per_epoch, steps[1]),
                                weighting)

    def _array_plan(self, x, y, batch_size, validation_split, val, shuffle, steps, weighting):
        """``_fit_plan`` for arrays: checked data, weights, the validation split, the trainer.
        Without ``batch_size``, ``steps_per_epoch`` batches make the data, as in Keras."""
        x, y = self.check_data(x, y)
        weights = validation.check_sample_weight(*weighting, y, self.loss.label_kind)
        steps_per_epoch, validation_steps = steps
        if val is None and validation_split:
            (x, y), (x_val, y_val) = validation.split_for_validation(x, y, validation_split)
            # as Keras, sample_weight is split with the data (class_weight weighs training only)
            w_val = None if weighting[0] is None else weights[x.shape[0]:]
            weights = None if weights is None else weights[:x.shape[0]]
            val = self._split_validation(x_val, y_val, w_val, batch_size, validation_steps)
        passes = training_loop.ArrayPasses(x.shape[0], validation.batch_size_of_arrays(batch_size, x.shape[0], steps_per_epoch),
                                           shuffle, steps_per_epoch)
        if not self.built:
            _check_validation_samples(val, x)
        trainer = self.backend
        self.ensure_built(x)

        def run_epoch(epoch, listeners):
            return training_loop.train_epoch(trainer, x, y, epoch, passes, self._steps_per_call(listeners),
                                             listeners, self._metric_plan(), sample_weight=weights)
        return run_epoch, passes.steps, val

    def _split_validation(self, x_val, y_val, w_val, batch_size, steps):
        """The validation function of ``validation_split``'s last rows (weighted by theirs)."""
        val_size = validation.batch_size_of_arrays(batch_size, x_val.shape[0], steps)

        def validate(listeners):
            x_, y_, w_ = training_loop.first_batches((x_val, y_val, w_val), val_size, steps, "validation_steps")
            return self._evaluate(x_, y_, val_size, listeners, sample_weight=w_)
        return validate

    def _validation_source(self, validation_data, batch_size, steps=None):
        """A function computing the validation means, or None without validation data
        (``steps``: Keras's ``validation_steps``, the batches drawn from a dataset or generator,
        or the first batches of arrays, every time)."""
        if validation_data is None:
            return None
        if data_module.is_batch_source(validation_data):
            source = data_module.BatchSource(validation_data, steps)
            return lambda listeners: self._evaluate_source(source, listeners)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val); received "
                             f"{type(validation_data).__name__}")
        x_val, y_val = self.check_data(*validation_data[:2], what=("validation x", "validation y"))
        weights = validation_data[2] if len(validation_data) == 3 else None
        weights = validation.check_sample_weight(weights, None, y_val, self.loss.label_kind)
        batch_size = validation.batch_size_of_arrays(batch_size, x_val.shape[0], steps)

        def validate(listeners):
            x_, y_, w_ = training_loop.first_batches((x_val, y_val, weights), batch_size, steps, "validation_steps")
            return self._evaluate(x_, y_, batch_size, listeners, sample_weight=w_)
        validate.sample_shape = x_val.shape[1:]  # checked against x's before an unbuilt model is built
        return validate

    def _callback_list(self, callbacks, verbose, epochs, steps, history):
        given = callbacks_module.as_list(callbacks)
        progress = [callbacks_module.ProgbarLogger(verbose, epochs, steps)] if verbose else []
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        history.set_params(params)
        return callbacks_module.CallbackList(given + progress + [history], self, params)

    def _steps_per_call(self, listeners):
        if self.steps_per_execution != "auto":
            return self.steps_per_execution
        if any(callbacks_module.wants_every_batch(cb) for cb in listeners.callbacks):
            return 1
        return training_loop.AUTO_STEPS_PER_EXECUTION

    def _evaluate_source(self, source, callbacks=None):
        listeners = callbacks or callbacks_module.CallbackList([], self, {})
        listeners.call("on_test_begin")
        means = training_loop.evaluate_source(self.backend, self, source, listeners, self._metric_plan())
        listeners.call("on_test_end", logs=means.logs())
        return means

    def _evaluate(self, x, y, batch_size, callbacks=None, progbar=None, sample_weight=None):
        listeners = callbacks or callbacks_module.CallbackList([], self, {})
        listeners.call("on_test_begin")
        means = training_loop.evaluate(self.backend, x, y, batch_size, listeners,
                                       self._metric_plan(), progbar, sample_weight)
        listeners.call("on_test_end", logs=means.logs())
        return means

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics on ``(x, y)``: ``[loss, accuracy]`` (the loss alone without
        metrics; a dict with ``return_dict=True``). ``sample_weight`` (n,) weighs each
        sample's loss as ``fit`` does, and the ``weighted_metrics``; as in Keras, not the
        ``metrics``.
        ``steps``, as in Keras: only the first ``steps`` batches (of ``ceil(n / steps)``
        samples when ``batch_size`` is not given)."""
        self.require_compiled("evaluate")
        verbose = resolve_verbose(verbose)
        steps = validation.check_steps(steps, "steps")
        if data_module.is_batch_source(x):
            listeners = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose})
            logs = self._evaluate_source(data_module.BatchSource(x, steps), listeners).logs()
            return logs if return_dict else self._as_values(logs)
        x, y = self.check_data(x, y)
        weights = validation.check_sample_weight(sample_weight, None, y, self.loss.label_kind)
        batch_size = validation.batch_size_of_arrays(batch_size, x.shape[0], steps)
        x, y, weights = training_loop.first_batches((x, y, weights), batch_size, steps, "steps")
        self.ensure_built(x)
        steps = -(-x.shape[0] // batch_size)
        progbar = Progbar(steps, verbose) if verbose else None
        listeners = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1, "steps": steps})
        logs = self._evaluate(x, y, batch_size, listeners, progbar, weights).logs()
        if progbar is not None:
            progbar.update(steps, logs, finalize=True)
        return logs if return_dict else self._as_values(logs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch ``(x, y)``, as Keras's ``train_on_batch``.

        Returns that batch's loss and metrics, as the forward pass before the update computed
        them (what ``fit`` logs for a batch), in ``evaluate``'s form: the loss alone without
        metrics, else ``[loss, metric, ...]``, or a dict with ``return_dict=True``. No callback
        runs and ``model.history`` is not touched. Bad input is refused before anything
        changes; a step whose loss, gradients or update is not finite is not applied: a
        warning, the batch's loss as computed (finite when only the gradients or the update
        were not) and NaN for every metric.
        """
        self.require_compiled("train_on_batch")
        x, y = self.check_data(x, y)
        weights = validation.check_sample_weight(sample_weight, class_weight, y, self.loss.label_kind)
        self.ensure_built(x)
        logs = training_loop.train_batch(self.backend, x, y, self._metric_plan(), weights)
        return logs if return_dict else self._as_values(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of the batch ``(x, y)`` as one batch, as Keras's ``test_on_batch``
        (``evaluate``'s return value); ``sample_weight`` weighs the loss as in ``evaluate``."""
        self.require_compiled("test_on_batch")
        x, y = self.check_data(x, y)
        weights = validation.check_sample_weight(sample_weight, None, y, self.loss.label_kind)
        self.ensure_built(x)
        logs = self._evaluate(x, y, x.shape[0], sample_weight=weights).logs()
        return logs if return_dict else self._as_values(logs)

    def predict_on_batch(self, x):
        """Outputs for the batch ``x`` in one pass, as Keras's ``predict_on_batch``."""
        x = self.check_inputs(x)
        self.ensure_built(x)
        return _warn_if_overflowed(self, np.asarray(self.backend.predict(x, x.shape[0])))

    def _as_values(self, logs):
        """``logs`` as Keras 3 lists them: the loss and each metric object's *own* name in
        compile order, then the other keys sorted. So a weighted metric named like an
        unweighted one repeats that one's value, and its ``weighted_`` key comes after."""
        names = ["loss"] + [m.name for m in self.metrics + self.weighted_metrics]
        keys = [name for name in names if name in logs] + [key for key in sorted(logs) if key not in names]
        values = [training_loop.logged(logs[key]) for key in keys]
        return values if len(values) > 1 else values[0]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x`` (probabilities for a softmax model), shape (n, units).

        Like Keras, ``verbose='auto'`` prints one progress line (``313/313 ━━━ 0s 1ms/step``);
        ``verbose=0`` is silent. ``steps``: the outputs of the first ``steps`` batches only
        (of ``ceil(n / steps)`` samples when ``batch_size`` is not given), as in Keras.
        """
        verbose = resolve_verbose(verbose)
        steps = validation.check_steps(steps, "steps")
        x = self.check_inputs(x)
        batch_size = validation.batch_size_of_arrays(batch_size, x.shape[0], steps)
        (x,) = training_loop.first_batches((x,), batch_size, steps, "steps")
        self.ensure_built(x)
        steps = -(-x.shape[0] // batch_size)
        progbar = Progbar(steps, verbose) if verbose else None
        listeners = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1, "steps": steps})
        listeners.call("on_predict_begin")
        outputs = training_loop.predict(self.backend, x, batch_size, listeners)
        listeners.call("on_predict_end")
        if progbar is not None:
            progbar.update(steps, {}, finalize=True)
        return _warn_if_overflowed(self, outputs)

    def __call__(self, x, training=None):
        """Apply the model to an array, like calling a Keras model: the same backend as
        ``predict``; ``training=True`` runs the forward pass in training mode (Dropout on,
        the NumPy forward pass), False or None (Keras's default) is inference. On a symbolic
        tensor (``npnet.Input``), the model's layers join the chain, as a Keras model does."""
        if isinstance(x, symbolic.SymbolicTensor):
            return symbolic.apply_model(self, x)
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise ValueError(f"training must be True, False or None; received training={training!r}")
        x = self.check_inputs(x)
        self.ensure_built(x)
        return _warn_if_overflowed(self, np.asarray(self.backend.call(x, training=training)), "model(x)")

    # -- save and load --------------------------------------------------------------------

    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._layers],
                "build_input_shape": list(self.input_shape) if self.input_shape else None}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model with fresh weights from a config: npnet's ``model.get_config()`` or
        Keras's ``keras_model.get_config()`` (read as a ``.keras`` file's, with its checks).
        ``custom_objects``: ``{"ClassName": cls}`` for layers of your own classes. A
        functional config gives an ``npnet.Model``."""
        return saving.model_json.from_config(config, False, custom_objects, "Sequential.from_config")

    def to_json(self, **kwargs):
        """Keras 3's JSON of the architecture (no weights), as ``keras_model.to_json()`` writes
        it: read back by ``npnet.models.model_from_json`` and ``keras.models.model_from_json``.
        ``kwargs`` go to ``json.dumps``."""
        return saving.model_json.to_json(self, **kwargs)

    def save(self, path, include_optimizer=True):
        """Save architecture, compile settings, weights and optimizer state to one file, in
        the format the extension names: ``.keras`` (Keras 3's, which Keras opens) or
        ``.npnet`` (npnet's own); see :mod:`npnet.saving`. Written to a temporary name and
        renamed into place."""
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights (and the optimizer's state) to a Keras ``*.weights.h5`` file."""
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Set the weights from a ``.weights.h5``, ``.keras`` or legacy ``.h5`` file (Keras's
        or npnet's); nothing changes unless every array fits."""
        saving.load_weights(self, filepath)

    def export(self, filepath, format="onnx", verbose=None):
        """Write the model for inference runtimes: ``format='onnx'`` (needs the ``onnx``
        package: ``pip install npnet[onnx]``). Keras's default, ``'tf_saved_model'``, needs
        TensorFlow, so npnet's default is ONNX."""
        saving.export(self, filepath, format=format, verbose=verbose)


#: Keras's hooks for a model's own training logic, which npnet's loops never call.
_KERAS_STEP_HOOKS = ("train_step", "test_step", "predict_step", "compute_loss", "compute_metrics")


def _refuse_custom_steps(cls):
    """Refuse a model class that overrides Keras's ``train_step`` (and kin): fit would
    silently train the usual way, ignoring it."""
    overridden = [hook for hook in _KERAS_STEP_HOOKS if getattr(cls, hook, None) is not None]
    if overridden:
        raise NotImplementedError(
            f"Model class {cls.__name__} overrides {', '.join(overridden)}, which npnet never calls: "
            "npnet cannot run a custom train_step (it has no GradientTape; gradients come from each "
            "layer's backward). Instead: a custom loss as an npnet.losses.Loss subclass with value "
            "and gradient, a layer with forward and backward, a Callback for work between batches "
            "or epochs, or your own loop calling model.train_on_batch(x, y)")


class Model(Sequential):
    """The functional API for chains: ``npnet.Model(inputs, outputs)`` with ``inputs`` an
    ``npnet.Input(...)`` and ``outputs`` the result of applying layers to it one after
    another. It then works as a Sequential model of those layers."""

    _scopes_weights = False
    _functional = True

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        if inputs is None or outputs is None:
            raise NotImplementedError("npnet.Model needs inputs= and outputs= (the functional API "
                                      "for chains of layers); subclassing Model is not supported: "
                                      "use npnet.Sequential or a custom npnet.layers.Layer")
        tensors = symbolic.trace(inputs, outputs)
        if tensors[0].layer is not None:
            raise ValueError(f"npnet.Model takes an npnet.Input(...) as inputs, not the output of layer "
                             f"{tensors[0].layer.name!r} ({tensors[0]!r}): make a new Input of that shape, "
                             f"npnet.Input(shape={tuple(tensors[0].shape[1:])}), and call the layers on it")
        super().__init__(name=name or layers_module.next_name("functional"), trainable=trainable)
        self._declare_input(tensors[0])
        self._input_layer = symbolic.input_layer_of(tensors[0])
        for layer in (tensor.layer for tensor in tensors[1:]):
            Sequential.add(self, layer)
        self._tensors = tensors  # the caller's own tensors: model.outputs[0] is outputs
        self._given_as_lists = (isinstance(inputs, (list, tuple)), isinstance(outputs, (list, tuple)))

    @property
    def layers(self):
        """The input's ``InputLayer`` (no weights), then the layers that compute, as a Keras
        functional model lists them: a new list each time."""
        return [self._input_layer] + list(self._layers)

    def _entry_sizes(self):
        return [0] + [1] * len(self._layers)

    def add(self, layer):
        raise AttributeError("A functional npnet.Model has no add(); build the chain with "
                             "layer calls, or use npnet.Sequential")

    def get_config(self):
        """Sequential's config and the input's name (None when it has none)."""
        return {**super().get_config(), "input_name": self.inputs[0].name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new functional model with fresh weights from a config (npnet's ``get_config()``,
        with its input name, or Keras's); see :meth:`Sequential.from_config`."""
        return saving.model_json.from_config(config, True, custom_objects, "Model.from_config")



def _one_of(structure, what, output_name):
    """The one entry of Keras's per-output ``loss`` structure (a list of one, or a dict keyed
    by the output layer's name) for npnet's one output; anything else is what it is."""
    if isinstance(structure, (list, tuple)):
        if len(structure) != 1:
            raise ValueError(f"compile({what}=list): npnet models have one output, so a list of {what} must hold "
                             f"one; received {len(structure)}")
        return structure[0]
    if isinstance(structure, dict):
        if list(structure) != [output_name]:
            raise ValueError(f"compile({what}=dict): npnet models have one output, {output_name!r}, so a dict of "
                             f"{what} must have that one key; received keys {sorted(map(str, structure))}")
        return structure[output_name]
    return structure


def _one_array(value):
    """Keras reads a list or tuple of arrays as one array per model input (or output); npnet
    models have one of each, so ``[x]`` stands for ``x``, as in Keras. A list of numbers or
    of lists (the rows of a batch) is data and stays as it is."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray) \
            and value[0].ndim >= 1:
        return value[0]
    return value


def model_from_json(json_string, custom_objects=None):
    """The model a JSON string describes, with fresh weights: Keras's (``model.to_json()`` of
    npnet or Keras) or npnet's older own format. Compiled when the JSON carries Keras's
    ``compile_config``, as Keras does. ``custom_objects``: ``{"ClassName": cls}`` for layers
    of your own classes (see :mod:`npnet.saving.model_json`)."""
    return saving.model_json.from_json(json_string, custom_objects)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, backend=None):
    """Load a model from a ``.keras``, legacy ``.h5`` or ``.npnet`` file, with Keras 3's
    arguments (see :func:`npnet.saving.load_model`)."""
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode,
                             backend=backend)


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Keras's function form of ``model.save(filepath)`` (see :func:`npnet.saving.save_model`).
    ``overwrite=False`` refuses an existing file, where Keras would ask on the terminal."""
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{os.fsdecode(filepath)!r} exists and overwrite=False")
    saving.save_model(model, filepath, include_optimizer=include_optimizer)


def clone_model(model, input_tensors=None, clone_function=None, **kwargs):
    """A new model with ``model``'s architecture and freshly initialized weights, as Keras's
    ``clone_model``: the same config and names, new layer objects (nothing shared). A
    compiled model's clone is compiled too, as Keras 3 does, with a fresh optimizer of the
    same settings and the same loss and metrics. Keras's ``input_tensors``,
    ``clone_function`` and ``call_function`` rewrite graphs npnet does not have: refused."""
    if input_tensors is not None or clone_function is not None or kwargs:
        given = ["input_tensors"] * (input_tensors is not None) + ["clone_function"] * (clone_function is not None)
        raise NotImplementedError(f"npnet's clone_model takes the model only; received {given + sorted(kwargs)}: "
                                  "build the new model with npnet.Sequential instead")
    if not isinstance(model, Sequential):
        raise TypeError(f"clone_model expects an npnet model; received {type(model).__name__}")
    # with its own layer classes: a layer of the user's class is rebuilt with its from_config, as in Keras
    clone = Sequential.from_config(model.get_config(), saving.custom_objects.of_model(model))
    if isinstance(model, Model) and clone.built:
        clone = _as_functional(clone, model.inputs[0].name)
    if model.compiled:
        _compile_like(clone, model)
    return clone


def _as_functional(sequential, input_name=None):
    """The same layers as an ``npnet.Model``, so a functional model's clone is functional,
    with the input's name (as Keras's clone keeps it). The calls the discarded ``sequential``
    made are forgotten, so the clone's ``layer.output`` belongs to the clone."""
    symbolic.forget_calls(sequential._layers)
    inputs = symbolic.Input(shape=sequential.input_shape[1:], name=input_name)
    outputs = inputs
    for layer in sequential._layers:
        outputs = layer(outputs)
    return Model(inputs, outputs, name=sequential.name)


def _compile_like(clone, model):
    """Compile ``clone`` as ``model`` was compiled, sharing no state with it."""
    optimizer = model.optimizer
    metrics = [copy.deepcopy(metric) for metric in model.metrics]
    weighted = [copy.deepcopy(metric) for metric in model.weighted_metrics]
    for metric in metrics + weighted:
        metric.reset_state()
    clone.compile(optimizer=optimizers_module.deserialize(type(optimizer).__name__, optimizer.get_config()),
                  loss=copy.deepcopy(model.loss), metrics=metrics, backend=model._requested_backend,
                  steps_per_execution=model.steps_per_execution, weighted_metrics=weighted)


def _check_validation_samples(validate, x):
    """An unbuilt model takes its input shape from ``x``: validation arrays with samples of
    another shape would only fail after the first epoch trained, so refuse them first."""
    shape = getattr(validate, "sample_shape", None)
    if shape is not None and tuple(shape) != tuple(x.shape[1:]):
        raise ValueError(f"validation_data: expected validation x with samples shaped like x's, {tuple(x.shape[1:])}; "
                         f"received samples of shape {tuple(shape)}")


_fitting = {}  # id(model) -> the thread running its fit
_fitting_guard = threading.Lock()


@contextlib.contextmanager
def _one_fit_at_a_time(model):
    """Refuse a fit of ``model`` while another thread runs one: two fits would interleave
    their steps on the same weights and optimizer slots. The same thread may nest fits (a
    callback that trains), as in Keras."""
    me = threading.get_ident()
    with _fitting_guard:
        owner = _fitting.get(id(model))
        if owner is not None and owner != me:
            raise RuntimeError(f"fit is already running on model {model.name!r} in another thread; expected one "
                               "fit at a time per model (wait for it, or train a copy: npnet.models.clone_model)")
        first = owner is None
        _fitting[id(model)] = me
    try:
        yield
    finally:
        if first:
            with _fitting_guard:
                del _fitting[id(model)]


def _warn_if_overflowed(model, outputs, what="predict"):
    """The inputs were checked finite, so inf or NaN outputs mean the model's own numbers
    overflowed: say so once per call rather than hand back NaN silently (Keras does)."""
    bad = int(outputs.size - np.count_nonzero(np.isfinite(outputs))) if outputs.dtype.kind == "f" else 0
    if bad:
        largest = max((float(np.abs(w).max()) for w in model.get_weights() if w.size), default=0.0)
        warnings.warn(f"{what}: {bad} of the {outputs.size} outputs are inf or NaN "
                      f"although the inputs are finite; the model's numbers overflowed {outputs.dtype} (its largest "
                      f"weight is {largest:.3g} in magnitude)", RuntimeWarning, stacklevel=3)
    return outputs


def _check_keras_compile_arguments(loss_weights, run_eagerly, jit_compile, auto_scale_loss):
    """Keras's compile arguments that do not change npnet's step: checked as Keras types them."""
    if loss_weights is not None:
        raise ValueError(f"compile(loss_weights={loss_weights!r}) is not supported by npnet: its models have one "
                         "output and one loss, so loss_weights must be None (scale the loss itself instead)")
    for name, value in (("run_eagerly", run_eagerly), ("auto_scale_loss", auto_scale_loss)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"compile({name}=...) must be True or False; received {value!r}")
    if not (isinstance(jit_compile, (bool, np.bool_)) or jit_compile == "auto"):
        raise ValueError(f"compile(jit_compile=...) must be True, False or 'auto'; received {jit_compile!r}")
