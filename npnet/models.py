"""Sequential: compile / fit / evaluate / predict / summary / weights / save / load.

The model checks its inputs, loops over epochs and batches, keeps the running means the
progress bar shows, and hands each batch to its backend (``npnet.backends``), the one place
where arithmetic happens.
"""

import json
import math
import os
import warnings
import zipfile

import numpy as np

from . import backends, callbacks as callbacks_module, config, layers as layers_module
from . import losses as losses_module, metrics as metrics_module, optimizers as optimizers_module
from . import utils
from .utils import format_shape

FORMAT_NAME = "npnet.model"
FORMAT_VERSION = 1


class Sequential:
    """A linear stack of layers, used exactly like ``keras.Sequential``."""

    _count = 0

    def __init__(self, layers=None, name=None):
        if name is None:
            name = "sequential" if Sequential._count == 0 else f"sequential_{Sequential._count}"
            Sequential._count += 1
        self.name = name
        self.layers = []
        self.optimizer = self.loss = self.accuracy = None
        self.metrics_names = []
        self.backend = None
        self.compiled = False
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------------------

    def add(self, layer):
        """Append a layer; it must be an ``npnet.layers.Layer``."""
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"Sequential.add expects an npnet.layers.Layer; received {layer!r}")
        if self.layers and layer._declared_input_shape is not None:
            raise ValueError(f"Only the first layer may declare input_shape; {layer.name!r} is not first")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"Layer {layer.name!r} is already in the model")
        self.layers.append(layer)
        if self.layers[0]._declared_input_shape is not None and not self.built:
            self.build(self.layers[0]._declared_input_shape)
        if self.compiled:  # the backend was set up for the old stack of layers
            self.backend = backends.create(self.backend_name, self)

    @property
    def built(self):
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_shape(self):
        """e.g. ``(None, 28, 28)``; None until the model knows it."""
        if not self.layers:
            return None
        first = self.layers[0]
        return first.input_shape if first.built else first._declared_input_shape

    @property
    def output_shape(self):
        return self._output_shape_for(self.input_shape) if self.input_shape else None

    def _output_shapes_for(self, input_shape):
        shapes = []
        for layer in self.layers:
            input_shape = layer.compute_output_shape(input_shape)
            shapes.append(input_shape)
        return shapes

    def _output_shape_for(self, input_shape):
        return self._output_shapes_for(input_shape)[-1]

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape`` (batch dimension first)."""
        if not self.layers:
            raise ValueError("The model has no layers; add some before building it")
        if input_shape is None:
            input_shape = self.input_shape
            if input_shape is None:
                raise ValueError("build() needs an input_shape, e.g. model.build((None, 28, 28)), "
                                 "or give the first layer input_shape=...")
        shape = tuple(input_shape)
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    @property
    def weights(self):
        """The parameter arrays themselves, layer by layer (Dense: kernel, bias)."""
        return [p for layer in self.layers for p in layer.params.values()]

    @property
    def trainable_weights(self):
        return self.weights

    def weight_names(self):
        """``["dense/kernel", "dense/bias", ...]`` in the order of ``get_weights()``."""
        return [f"{layer.name}/{name}" for layer in self.layers for name in layer.params]

    def get_weights(self):
        """Copies of all parameters, in the same order as a Keras model's ``get_weights()``."""
        return [p.copy() for p in self.weights]

    def set_weights(self, weights):
        """Set all parameters from a list like ``get_weights()`` returns (e.g. from Keras)."""
        self._require_built("set_weights")
        weights = list(weights)
        expected = [p.shape for p in self.weights]
        received = [np.shape(w) for w in weights]
        if expected != received:
            raise ValueError(f"set_weights expects {len(expected)} arrays of shapes {expected}; "
                             f"received {len(received)} of shapes {received}")
        for param, value in zip(self.weights, weights):
            np.copyto(param, np.asarray(value), casting="same_kind")

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=None):
        """Print a Keras-like table of layers, output shapes and parameter counts."""
        self._require_built("summary")
        rows = [(f"{layer.name} ({type(layer).__name__})", format_shape(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self.layers, self._output_shapes_for(self.input_shape))]
        headers = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers)]
        widths = [max(w, m) for w, m in zip(widths, (33, 24, 15))]

        def line(left, mid, right, fill):
            return left + mid.join(fill * w for w in widths) + right

        def row(cells):
            first, second, third = cells
            return ("│ " + first.ljust(widths[0] - 1) + "│ " + second.ljust(widths[1] - 1)
                    + "│" + third.rjust(widths[2] - 1) + " │")

        total = self.count_params()
        nbytes = sum(p.nbytes for p in self.weights)
        text = [f'Model: "{self.name}"',
                line("┏", "┳", "┓", "━"),
                "┃ " + headers[0].ljust(widths[0] - 1) + "┃ " + headers[1].ljust(widths[1] - 1)
                + "┃" + headers[2].rjust(widths[2] - 1) + " ┃",
                line("┡", "╇", "┩", "━")]
        for i, cells in enumerate(rows):
            if i:
                text.append(line("├", "┼", "┤", "─"))
            text.append(row(cells))
        text += [line("└", "┴", "┘", "─"),
                 f" Total params: {total:,} ({_format_bytes(nbytes)})",
                 f" Trainable params: {total:,} ({_format_bytes(nbytes)})",
                 " Non-trainable params: 0 (0.00 B)"]
        (print_fn or print)("\n".join(text))

    # -- compile --------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, backend=None):
        """Choose the optimizer, the loss, the metrics and the backend.

        ``backend`` is ``'numba'`` (compiled kernels) or ``'numpy'`` (the readable
        reference); the default comes from ``NPNET_BACKEND``, else ``'numba'``.
        """
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'; "
                             f"known losses: {', '.join(sorted(losses_module._BY_NAME))}")
        optimizer_obj = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            raise TypeError(f"metrics must be a list such as ['accuracy']; received the string {metrics!r}")
        metric_objs = [metrics_module.get(m, loss_obj) for m in metrics]
        if len(metric_objs) > 1:
            raise ValueError(f"npnet supports one metric, 'accuracy'; received {list(metrics)}")
        backend_name = backend if backend is not None else backends.default_name()
        previous = (self.optimizer, self.loss, self.accuracy, self.metrics_names, self.compiled, self.backend,
                    getattr(self, "backend_name", None))
        self.optimizer, self.loss = optimizer_obj, loss_obj
        self.accuracy = metrics_module.Accuracy(loss_obj.label_kind)
        self.metrics_names = [m.name for m in metric_objs]
        self.backend_name = backend_name
        self.compiled = True
        try:
            self.backend = backends.create(backend_name, self)
        except Exception:
            (self.optimizer, self.loss, self.accuracy, self.metrics_names,
             self.compiled, self.backend, self.backend_name) = previous
            raise

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}(): the model needs an "
                               "optimizer and a loss, e.g. model.compile(optimizer='adam', "
                               "loss='sparse_categorical_crossentropy', metrics=['accuracy'])")

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}() needs the model's weights, which do not exist yet: give "
                             "the first layer input_shape=..., call model.build(input_shape), or "
                             "call the model on data first")

    # -- input checking -------------------------------------------------------------------

    def _check_x(self, x, what="x"):
        """Validate and convert inputs to a C-contiguous float array of the model's input shape."""
        if not self.layers:
            raise ValueError("The model has no layers")
        if x is None:
            raise ValueError(f"{what} is None; expected an array of samples")
        x = np.asarray(x)
        if x.dtype.kind not in "uif":
            raise TypeError(f"{what} must be a numeric array (uint8, float32 or float64); "
                            f"received dtype {x.dtype}")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{what} is empty (shape {x.shape}); expected at least one sample")
        expected = self.input_shape
        if expected is not None and tuple(x.shape[1:]) != tuple(expected[1:]):
            hint = ""
            if tuple(x.shape) == tuple(expected[1:]):
                hint = " This looks like a single sample: add the batch dimension with np.expand_dims(x, 0)."
            raise ValueError(f'Input of model "{self.name}" is incompatible: expected shape '
                             f"{format_shape(expected)}, received {format_shape(x.shape)}.{hint}")
        # min and max are NaN if any element is, and ±inf if any is infinite; unlike
        # np.isfinite(x).all() they need no temporary as large as x (47 MB for the tutorial).
        if x.dtype.kind == "f" and not (np.isfinite(x.min()) and np.isfinite(x.max())):
            n_bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(f"{what} contains {n_bad} NaN or infinite values; expected finite numbers")
        return np.ascontiguousarray(x, dtype=config.floatx())

    def _check_y(self, y, n_samples, output_shape, what="y"):
        """Validate labels: integer class indices (sparse losses) or one-hot rows."""
        if y is None:
            raise ValueError(f"{what} is None; expected {n_samples} labels")
        y = np.asarray(y)
        n_classes = output_shape[-1]
        if y.ndim == 0 or y.shape[0] != n_samples:
            raise ValueError(f"x and {what} must have the same number of samples; received "
                             f"{n_samples} inputs and {y.shape[0] if y.ndim else 'a scalar'} labels")
        if self.loss.label_kind == "categorical":
            if y.shape != (n_samples, n_classes):
                raise ValueError(f"{what} must be one-hot rows of shape ({n_samples}, {n_classes}) "
                                 f"for {self.loss.name}; received shape {y.shape}")
            if y.dtype.kind not in "uif" or not np.isfinite(y).all():
                raise ValueError(f"{what} must hold finite numbers for {self.loss.name}")
            return np.ascontiguousarray(y, dtype=config.floatx())
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{what} must be integer class labels of shape ({n_samples},) for "
                             f"{self.loss.name}; received shape {y.shape}")
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y) | (y != np.round(y))
            if bad.any():
                raise ValueError(f"{what} must hold integer class labels; received non-integer "
                                 f"values {_some_values(y[bad])}")
        elif y.dtype.kind not in "ui":
            raise TypeError(f"{what} must hold integer class labels; received dtype {y.dtype}")
        out_of_range = (y < 0) | (y >= n_classes)
        if out_of_range.any():
            raise ValueError(f"{what} must hold class labels in [0, {n_classes}) for an output of "
                             f"{n_classes} units; received {int(out_of_range.sum())} outside it: "
                             f"{_some_values(y[out_of_range])}")
        return y.astype(np.int64)

    def _prepare(self, x, y, what=("x", "y")):
        """Check x and y together before anything changes; build the model if needed."""
        x = self._check_x(x, what[0])
        output_shape = self._output_shape_for((None,) + x.shape[1:])
        y = self._check_y(y, x.shape[0], output_shape, what[1])
        if not self.built:
            self.build((None,) + x.shape[1:])
        return x, y

    @staticmethod
    def _check_batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")
        return int(batch_size)

    # -- training and inference -----------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True):
        """Train for ``epochs`` passes over ``(x, y)``; returns a ``History``."""
        self._require_compiled("fit")
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = self._check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer; received {epochs!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1); received {validation_split!r}")
        x, y = self._prepare(x, y)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            validation = self._prepare(*validation_data, what=("validation x", "validation y"))
        elif validation_split:
            # Like Keras: the last fraction of the data, taken before any shuffling.
            split_at = int(math.floor(x.shape[0] * (1.0 - validation_split)))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {x.shape[0]} samples")
            x, validation = x[:split_at], (x[split_at:], y[split_at:])
            y = y[:split_at]

        n_samples = x.shape[0]
        steps = math.ceil(n_samples / batch_size)
        history = callbacks_module.History()
        callback_list = list(callbacks or [])
        for cb in callback_list:
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"callbacks must be npnet.callbacks.Callback instances; received {cb!r}")
        if verbose:
            callback_list.append(callbacks_module.ProgbarLogger(verbose, epochs, steps))
        callback_list.append(history)
        for cb in callback_list:
            cb.set_model(self)

        watch_batches = any(callbacks_module.watches_batches(cb) for cb in callback_list)
        batch_listeners = [cb for cb in callback_list if callbacks_module.has_batch_hook(cb)]
        self.stop_training = False
        self.history = history
        for cb in callback_list:
            cb.on_train_begin()
        for epoch in range(epochs):
            for cb in callback_list:
                cb.on_epoch_begin(epoch)
            order = utils.rng().permutation(n_samples) if shuffle else None
            loss_sum, n_correct, n_seen = 0.0, 0, 0
            for step, (loss, correct, applied) in enumerate(self._train_batches(
                    x, y, order, batch_size, watch_batches)):
                start, stop = step * batch_size, min((step + 1) * batch_size, n_samples)
                if not applied:
                    self._stop_on_non_finite(epoch, step, loss)
                    break
                n_seen += stop - start
                loss_sum += loss * (stop - start)
                n_correct += correct
                if batch_listeners:
                    logs = self._logs(loss_sum / n_seen, n_correct / n_seen)
                    for cb in batch_listeners:
                        cb.on_train_batch_end(step, logs)
                    if self.stop_training:  # as in Keras: the epoch ends after this batch
                        break
            if n_seen == 0:
                break
            logs = self._logs(loss_sum / n_seen, n_correct / n_seen)
            if validation is not None:
                val_loss, val_accuracy = self._evaluate_arrays(*validation, batch_size)
                logs.update(self._logs(val_loss, val_accuracy, prefix="val_"))
            for cb in callback_list:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callback_list:
            cb.on_train_end()
        return history

    def _train_batches(self, x, y, order, batch_size, watch_batches=True):
        """Yield ``(loss, n_correct, applied)`` for each batch of one epoch, in order.

        A backend may offer an optional ``train_epoch(x, y, order, batch_size, watch_batches)``
        generator that does this faster (the numba backend gathers each batch inside its
        kernel, and trains several batches per call unless ``watch_batches``: a callback looks
        at the model after each batch); otherwise each batch is gathered here and handed to
        ``train_batch``.
        """
        train_epoch = getattr(self.backend, "train_epoch", None)
        if train_epoch is not None:
            yield from train_epoch(x, y, order, batch_size, watch_batches=watch_batches)
            return
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            if order is None:
                x_batch, y_batch = x[start:stop], y[start:stop]
            else:
                index = order[start:stop]
                x_batch, y_batch = x[index], y[index]
            yield self.backend.train_batch(x_batch, y_batch)

    def _stop_on_non_finite(self, epoch, step, loss):
        self.stop_training = True
        message = (f"Epoch {epoch + 1}, batch {step}: the loss is {loss} or a gradient is not "
                   "finite; training stopped before applying that update, so the model keeps "
                   "the weights of the last finite step. Try a smaller learning rate or check "
                   "the inputs' scale.")
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _logs(self, loss, accuracy, prefix=""):
        logs = {prefix + "loss": float(loss)}
        if self.metrics_names:
            logs[prefix + "accuracy"] = float(accuracy)
        return logs

    def _evaluate_arrays(self, x, y, batch_size, progbar=None):
        loss_sum, n_correct = 0.0, 0
        n_samples = x.shape[0]
        for step, start in enumerate(range(0, n_samples, batch_size)):
            stop = min(start + batch_size, n_samples)
            loss, correct = self.backend.test_batch(x[start:stop], y[start:stop])
            loss_sum += loss * (stop - start)
            n_correct += correct
            if progbar is not None:
                progbar.update(step + 1, self._logs(loss_sum / stop, n_correct / stop))
        return loss_sum / n_samples, n_correct / n_samples

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto"):
        """Loss and accuracy on ``(x, y)``: ``[loss, accuracy]`` (just the loss without metrics)."""
        self._require_compiled("evaluate")
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = self._check_batch_size(batch_size)
        x, y = self._prepare(x, y)
        steps = math.ceil(x.shape[0] / batch_size)
        progbar = callbacks_module.Progbar(steps, verbose) if verbose else None
        loss, accuracy = self._evaluate_arrays(x, y, batch_size, progbar)
        if progbar is not None:
            progbar.update(steps, self._logs(loss, accuracy), finalize=True)
        return [float(loss), float(accuracy)] if self.metrics_names else float(loss)

    def predict(self, x, batch_size=None, verbose="auto"):
        """Outputs for ``x`` (probabilities for a softmax model), shape (n, units), float32.

        Like Keras, ``verbose='auto'`` prints one progress line (``313/313 ━━━ 0s 1ms/step``);
        ``verbose=0`` is silent.
        """
        verbose = callbacks_module.resolve_verbose(verbose)
        x = self._check_x(x)
        batch_size = self._check_batch_size(batch_size)
        if not self.built:
            self.build((None,) + x.shape[1:])
        backend = self.backend if self.backend is not None else backends.create("numpy", self)
        steps = math.ceil(x.shape[0] / batch_size)
        progbar = callbacks_module.Progbar(steps, verbose) if verbose else None
        outputs = backend.predict(x, batch_size)
        if progbar is not None:
            progbar.update(steps, {}, finalize=True)
        return outputs

    def __call__(self, x, training=False):
        """Apply the model to an array in plain NumPy, like calling a Keras model."""
        from . import training as training_module
        x = self._check_x(x)
        if not self.built:
            self.build((None,) + x.shape[1:])
        return training_module.forward(self.layers, x, training=training)[0]

    # -- save and load --------------------------------------------------------------------

    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "build_input_shape": list(self.input_shape) if self.input_shape else None}

    def save(self, path, include_optimizer=True):
        """Save architecture, compile settings, weights and optimizer state to one file.

        The file is a zip archive holding ``model.json`` (JSON) and the arrays in
        safetensors files: nothing in it can run code when loaded. It is written to a
        temporary name next to ``path`` and renamed into place.
        """
        from safetensors.numpy import save as save_tensors

        self._require_built("save")
        meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "npnet_version": _version(), "floatx": str(self.weights[0].dtype) if self.weights else config.floatx(),
                "model": self.get_config(), "compile": None}
        weights = {f"{i:03d}/{name}": np.ascontiguousarray(p) for i, name, p in self._named_weights()}
        optimizer_arrays = {}
        if self.compiled:
            meta["compile"] = {"optimizer": {"class_name": type(self.optimizer).__name__,
                                             "config": self.optimizer.get_config()},
                               "loss": {"name": self.loss.name, "config": self.loss.get_config()},
                               "metrics": list(self.metrics_names),
                               "backend": self.backend_name}
            if include_optimizer and self.optimizer.state is not None:
                meta["compile"]["optimizer_iterations"] = self.optimizer.iterations
                for slot, arrays in self.optimizer.state.items():
                    for j, array in enumerate(arrays):
                        optimizer_arrays[f"{slot}/{j:03d}"] = np.ascontiguousarray(array)
        with utils.atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("model.json", json.dumps(meta, indent=2))
            archive.writestr("weights.safetensors", save_tensors(weights))
            if optimizer_arrays:
                archive.writestr("optimizer.safetensors", save_tensors(optimizer_arrays))

    def _named_weights(self):
        return [(i, name, p) for i, layer in enumerate(self.layers) for name, p in layer.params.items()]


def load_model(path, backend=None):
    """Load a model written by ``Sequential.save``; compiled again if it was compiled.

    The model is compiled for the backend it was saved with, unless ``backend`` is given.

    Raises ``ValueError`` with the reason for a file that is not an npnet model, is
    truncated or corrupted, or comes from an incompatible format version.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_tensors

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "model.json" not in names or "weights.safetensors" not in names:
                raise ValueError(f"{path!r} is not an npnet model file: it lacks model.json or "
                                 "weights.safetensors")
            meta = json.loads(archive.read("model.json").decode("utf-8"))
            weights = load_tensors(archive.read("weights.safetensors"))
            optimizer_arrays = (load_tensors(archive.read("optimizer.safetensors"))
                                if "optimizer.safetensors" in names else {})
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path!r} is not an npnet model file, or it is truncated or corrupted "
                         f"({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, zipfile.LargeZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path!r} is corrupted: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r} is not an npnet model file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path!r} is an npnet model of format version {version!r}, but this npnet "
                         f"({_version()}) reads version {FORMAT_VERSION}; load it with a matching npnet")
    try:
        model_config = meta["model"]
        previous_floatx = config.floatx()
        config.set_floatx(meta.get("floatx", "float32"))
        try:
            model = Sequential(name=model_config["name"])
            for spec in model_config["layers"]:
                model.add(layers_module.deserialize(spec["class_name"], spec["config"]))
            if not model.built and model_config.get("build_input_shape"):
                model.build(tuple(model_config["build_input_shape"]))
        finally:
            config.set_floatx(previous_floatx)
        named = model._named_weights()
        expected_keys = {f"{i:03d}/{name}" for i, name, _ in named}
        if set(weights) != expected_keys:
            raise ValueError(f"weights {sorted(weights)} do not match the architecture {sorted(expected_keys)}")
        model.set_weights([weights[f"{i:03d}/{name}"] for i, name, _ in named])
        compile_spec = meta.get("compile")
        if compile_spec:
            optimizer = optimizers_module.deserialize(compile_spec["optimizer"]["class_name"],
                                                      compile_spec["optimizer"]["config"])
            loss = losses_module.deserialize(compile_spec["loss"]["name"], compile_spec["loss"]["config"])
            # The backend it was saved with, unless the caller chooses: backends agree only to
            # float32 rounding, and a loaded model should predict bit for bit as the saved one.
            model.compile(optimizer=optimizer, loss=loss, metrics=compile_spec["metrics"],
                          backend=backend if backend is not None else compile_spec.get("backend"))
            if optimizer_arrays:
                params = model.weights
                optimizer.build(params)
                for slot, arrays in optimizer.state.items():
                    for j, array in enumerate(arrays):
                        np.copyto(array, optimizer_arrays[f"{slot}/{j:03d}"])
            if "optimizer_iterations" in compile_spec:  # also for optimizers without state arrays (plain SGD)
                optimizer.iterations = int(compile_spec["optimizer_iterations"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path!r} is corrupted or incompatible: missing or malformed entry {error}") from None
    except ValueError as error:  # e.g. an unknown layer or weights that do not fit: name the file
        raise ValueError(f"{path!r} cannot be loaded: {error}") from None
    return model


def _some_values(values, limit=10):
    unique = np.unique(values)
    shown = ", ".join(str(v.item() if hasattr(v, "item") else v) for v in unique[:limit])
    return f"[{shown}{', ...' if unique.size > limit else ''}]"


def _format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024


def _version():
    from . import __version__
    return __version__
