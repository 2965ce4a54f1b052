"""Callbacks: the Keras protocol, History, the progress bar, and Keras's usual callbacks
(EarlyStopping, ModelCheckpoint, CSVLogger, LearningRateScheduler, ReduceLROnPlateau,
TerminateOnNaN, LambdaCallback, BackupAndRestore).

A callback is told about training, evaluation and prediction through Keras's hooks
(``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}``,
``on_{train,test,predict}_batch_{begin,end}`` and the ``on_batch_{begin,end}`` aliases of the
training ones), always with a ``logs`` dict, and can stop training by setting
``model.stop_training = True``, as in Keras.

With ``compile(steps_per_execution=n)`` the batch hooks run once per ``n`` batches, after
the last of them, as in Keras; see :func:`wants_every_batch` for what ``'auto'`` chooses.
"""

import collections
import csv
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np

from .progbar import Progbar, resolve_verbose  # noqa: F401  (resolve_verbose: part of this module's API)

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


class Callback:
    """Base class with no-op hooks; ``self.model`` and ``self.params`` are set by ``fit``."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras: the training hooks call the aliases

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


def wants_every_batch(callback):
    """True if ``callback`` defines a training batch hook of its own (in its class or on the
    instance). ``steps_per_execution='auto'`` runs one batch per execution when a callback
    does, so each hook sees the weights after exactly its batch."""
    if getattr(callback, "_logs_only", False):  # npnet's progress bar reads only the logs
        return False
    return any(name in vars(callback) or getattr(type(callback), name) is not getattr(Callback, name)
               for name in _BATCH_HOOKS)


def as_list(callbacks):
    """``fit``'s ``callbacks`` argument as a list: None is none, and one callback given
    alone is a list of one (as Keras flattens it)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        return list(callbacks)
    except TypeError:
        raise TypeError("callbacks must be a list of npnet.callbacks.Callback instances; received "
                        f"{callbacks!r}") from None


class CallbackList:
    """Calls every hook of every callback in order, always with a ``logs`` dict."""

    def __init__(self, callbacks, model, params):
        self.model = model
        self.callbacks = as_list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be npnet.callbacks.Callback instances; received {callback!r}")
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def call(self, hook, *args, logs=None):
        """``callback.<hook>(*args, logs)`` for each callback; ``logs`` defaults to ``{}``.
        As Keras, the batch hooks get it as ``logs=logs`` (so ``def on_train_batch_end(self,
        batch, **kwargs)`` works), the others positionally."""
        logs = {} if logs is None else logs
        by_keyword = "batch" in hook
        for callback in self.callbacks:
            if by_keyword:
                getattr(callback, hook)(*args, logs=logs)
            else:
                getattr(callback, hook)(*args, logs)


class History(Callback):
    """Records the epoch logs: ``history.history == {"loss": [...], "accuracy": [...], ...}``."""

    def __init__(self):
        super().__init__()
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` (only when ``epochs > 1``, as Keras 3) and a :class:`Progbar` per
    epoch (added by ``fit`` when verbose)."""

    _logs_only = True

    def __init__(self, verbose, epochs, steps):
        super().__init__()
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.progbar = None
        self.seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=sys.stdout, flush=True)
        self.progbar = Progbar(self.steps, self.verbose)
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        self.progbar.update(self.seen, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        self.progbar.update(self.seen, logs or {}, finalize=True)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode='auto'`` minimises losses and maximises accuracies (see :func:`monitor_mode`). With
    ``restore_best_weights=True`` the weights of the best epoch are put back when training
    ends, early or not, as Keras 3 does. A ``baseline`` must be beaten for an improvement to
    reset the patience count; the best value so far is tracked either way.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        mode = monitor_mode(monitor, mode)
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode, self.baseline = mode, baseline
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)

    def _improved(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            warnings.warn(
                f"EarlyStopping is monitoring {self.monitor!r}, which is not among the logged "
                f"values {sorted(logs)}; it cannot stop training.", RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        value = logs[self.monitor]
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def is_finite(value):
    return math.isfinite(float(value)) if np.ndim(value) == 0 else bool(np.isfinite(value).all())


# ----------------------------------------------------------------------------- monitoring

#: Metric names (without ``val_``) that are better when larger; Keras reads this from the
#: metric object's direction, npnet from the object when the model has it, else from here.
_HIGHER_IS_BETTER = ("accuracy", "acc", "auc", "precision", "recall")


def monitor_mode(monitor, mode="auto", model=None):
    """``'min'`` or ``'max'``: how a callback judges ``monitor`` (Keras's rule for ``'auto'``).

    ``'loss'`` (and ``'val_loss'``) is minimised; a metric of the model with a
    ``direction`` (``'up'``/``'down'``) follows it; otherwise names with accuracy, AUC,
    precision or recall in them are maximised and the rest minimised. (Keras raises for a
    name whose direction it cannot tell; npnet minimises it.)
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; received {mode!r}")
    if mode != "auto":
        return mode
    name = monitor[len("val_"):] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    logged = [(getattr(metric, "name", None), metric) for metric in getattr(model, "metrics", None) or []]
    logged += zip(getattr(model, "_weighted_names", None) or [], getattr(model, "weighted_metrics", None) or [])
    for key, metric in logged:
        if key == name and getattr(metric, "direction", None):
            return "max" if metric.direction == "up" else "min"
    return "max" if any(word in name for word in _HIGHER_IS_BETTER) else "min"


class _Monitor:
    """Whether a monitored value improved on the best so far, by more than ``min_delta``."""

    def __init__(self, monitor, mode, min_delta=0.0, best=None):
        self.monitor, self.requested_mode = monitor, mode
        monitor_mode(monitor, mode)  # refuse a bad mode at once
        self.min_delta, self.best, self.mode = abs(float(min_delta)), best, None

    def improved(self, value, model=None):
        if self.mode is None:
            self.mode = monitor_mode(self.monitor, self.requested_mode, model)
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _check_save_freq(save_freq):
    if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0):
        raise ValueError(f"save_freq must be 'epoch' or a positive number of batches; received {save_freq!r}")
    return save_freq


class _BatchCounter:
    """Counts training batches across epochs to act every ``save_freq`` of them, as Keras."""

    def __init__(self, save_freq):
        self.save_freq, self.since_last, self.last_batch = save_freq, 0, None

    def due(self, batch):
        if self.save_freq == "epoch":
            return False
        new_epoch = self.last_batch is None or batch <= self.last_batch
        self.since_last += batch + 1 if new_epoch else batch - self.last_batch
        self.last_batch = batch
        if self.since_last >= self.save_freq:
            self.since_last = 0
            return True
        return False


# ----------------------------------------------------------------------------- the usual callbacks


class ModelCheckpoint(Callback):
    """Save the model (or its weights) during training, as ``keras.callbacks.ModelCheckpoint``.

    ``filepath`` may hold placeholders filled from the epoch (1-based), the batch (1-based,
    with an integer ``save_freq``) and the logs: ``'cp-{epoch:04d}.weights.h5'``,
    ``'best-{val_loss:.2f}.npnet'``. ``save_weights_only`` calls ``model.save_weights``
    (the path must end in ``.weights.h5``), otherwise ``model.save`` (``.keras``, ``.h5``
    or npnet's own ``.npnet``). ``save_best_only`` saves only when ``monitor`` improved
    (``mode`` as in :func:`monitor_mode`; ``initial_value_threshold`` is the best to beat).
    ``save_freq``: ``'epoch'`` or a number of batches.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fsdecode(filepath)
        self.verbose, self.save_best_only = verbose, bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = _check_save_freq(save_freq)
        self._judge = _Monitor(monitor, mode, best=initial_value_threshold)
        self.monitor = monitor
        self._batches = _BatchCounter(self.save_freq)
        self._current_epoch = 0
        if self.save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("With save_weights_only=True the filepath must end in '.weights.h5' "
                             f"(Keras's weights format); received filepath={self.filepath!r}")
        if not self.save_weights_only and not self.filepath.endswith((".keras", ".h5", ".npnet")):
            raise ValueError("The filepath must end in '.keras' (Keras's model format) or '.npnet' "
                             f"(npnet's own); received filepath={self.filepath!r}")

    @property
    def best(self):
        return self._judge.best

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._batches.due(batch):
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs, epoch=epoch + 1)
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(f"Cannot fill the ModelCheckpoint filepath {self.filepath!r}: {error} is not "
                           f"among the epoch, batch and logged values {sorted(fields)}") from None

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            self._say(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", RuntimeWarning, stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._judge.improved(current, self.model):
            self._say(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                      f"saving model to {path}")
            self._judge.best = current
            return True
        self._say(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch, batch, logs):
        path = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint's filepath is an existing directory: {path!r}; "
                                    "give a file name")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self._say(f"\nEpoch {epoch + 1}: finished saving model to {path}")

    def _say(self, message):
        if self.verbose:
            print(message)


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file, as ``keras.callbacks.CSVLogger``.

    Columns: ``epoch`` (0-based), then the log keys in sorted order, fixed at the first
    epoch (with ``val_`` columns added when validation had not run yet); ``NA`` for a
    missing value. ``append=True`` continues an existing file without a second header.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fsdecode(filename), separator, bool(append)
        self.keys, self.writer, self.csv_file = None, None, None
        self.append_header = True

    def on_train_begin(self, logs=None):
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", newline="") as existing:
                    self.append_header = not existing.readline()
            mode = "a"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict(epoch=epoch)
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    """A log value as Keras writes it: lists and arrays as ``"[a, b]"``, the rest as is."""
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if isinstance(value, collections.abc.Iterable):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), and log it as ``learning_rate``, as Keras does."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a one-argument schedule(epoch), as Keras also accepts
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the schedule function should be a float; received "
                             f"{learning_rate!r} for epoch {epoch}")
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by
    ``min_delta`` for ``patience`` epochs, then wait ``cooldown`` epochs; never below
    ``min_lr``. Logs ``learning_rate`` every epoch, as ``keras.callbacks.ReduceLROnPlateau``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0; received factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr, self.mode = min_delta, cooldown, min_lr, mode
        self._judge = _Monitor(monitor, mode, min_delta)
        self.cooldown_counter = self.wait = 0

    def on_train_begin(self, logs=None):
        self._judge = _Monitor(self.monitor, self.mode, self.min_delta)
        self.cooldown_counter = self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric {self.monitor!r}, which is "
                          f"not available. Available metrics are: {','.join(logs)}.", RuntimeWarning, stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._judge.improved(current, self.model):
            self._judge.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        old_lr = float(self.model.optimizer.learning_rate)
        if not old_lr > np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        self.model.optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True

    @property
    def best(self):
        return self._judge.best


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite, as Keras's (``raise_error=True``:
    raise instead). npnet's ``fit`` already refuses such a batch before applying it, so the
    model keeps the last finite weights whether or not this callback is there."""

    _logs_only = True  # reads the logs only: no need to run one batch per execution

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Keras's arguments (``on_epoch_begin``, ``on_epoch_end``, ``on_train_begin``,
    ``on_train_end``, ``on_train_batch_begin``, ``on_train_batch_end``) and any other hook
    by keyword (``on_batch_end=...``, ``on_test_end=...``); hooks not given do nothing.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin, on_train_batch_end=on_train_batch_end)
        for name, function in hooks.items():
            if function is None:
                continue
            if not (name.startswith("on_") and hasattr(Callback, name)):
                raise TypeError(f"LambdaCallback got {name!r}, which is not a callback hook")
            if not callable(function):
                raise TypeError(f"LambdaCallback's {name} must be a function; received {function!r}")
            setattr(self, name, function)


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` where it stopped, as ``keras.callbacks.BackupAndRestore``.

    At the end of every epoch (or every ``save_freq`` batches) the model, its optimizer
    state and the epoch count are written to ``backup_dir`` in npnet's own format
    (``latest.npnet``, written atomically, and ``training_metadata.json``). When ``fit``
    starts with a backup present, the weights and optimizer state are restored and
    ``model._initial_epoch`` is set so that ``fit`` continues with the next epoch. A
    finished ``fit`` deletes the backup (``delete_checkpoint``); ``double_checkpoint``
    keeps the previous backup too, used when the latest cannot be read.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir; received an empty one")
        self.backup_dir = os.fsdecode(backup_dir)
        self.save_freq = _check_save_freq(save_freq)
        self.double_checkpoint, self.delete_checkpoint = bool(double_checkpoint), bool(delete_checkpoint)
        self._model_path = os.path.join(self.backup_dir, "latest.npnet")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._batches = _BatchCounter(self.save_freq)
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("To use BackupAndRestore the model must be built before fit(): give the "
                             "first layer input_shape=..., or call model.build(input_shape)")
        try:
            self._restore(self._model_path, self._metadata_path)
        except (OSError, ValueError):
            if not os.path.exists(self._model_path + ".bkp"):
                raise
            self._restore(self._model_path + ".bkp", self._metadata_path + ".bkp")

    def _restore(self, model_path, metadata_path):
        from .saving import custom_objects as saving_custom, npnet_format

        if os.path.exists(model_path):
            meta, _, weights, optimizer_arrays = npnet_format._read_archive(
                model_path, saving_custom.of_model(self.model))  # the model's own layer classes
            names = [f"{i:03d}/{name}" for i, name, _ in npnet_format.named_weights(self.model)]
            if sorted(weights) != sorted(names):
                raise ValueError(f"The backup {model_path!r} holds weights {sorted(weights)}, not this "
                                 f"model's {names}")
            self.model.set_weights([weights[name] for name in names])
            self._restore_optimizer(optimizer_arrays, meta)
        if os.path.exists(metadata_path):
            with open(metadata_path) as handle:
                metadata = json.load(handle)
            self.model._initial_epoch = int(metadata["epoch"])
            self._current_epoch = int(metadata["epoch"])

    def _restore_optimizer(self, arrays, meta):
        optimizer = self.model.optimizer
        if optimizer is None:
            return
        if arrays:
            optimizer.build(self.model.trainable_weights)
            for slot, slot_arrays in optimizer.state.items():
                for j, array in enumerate(slot_arrays):
                    np.copyto(array, arrays[f"{slot}/{j:03d}"])
        optimizer.iterations = int((meta.get("compile") or {}).get("optimizer_iterations", 0))

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self.save_freq == "epoch":
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._batches.due(batch):
            self._save()

    def _save(self):
        from . import utils
        from .saving import npnet_format

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._model_path, self._metadata_path):
                if os.path.exists(path):
                    shutil.copyfile(path, path + ".bkp")
        npnet_format.save(self.model, self._model_path)
        with utils.atomic_write(self._metadata_path, "w") as handle:
            json.dump({"epoch": self._current_epoch, "batch": self._batches.last_batch or 0}, handle)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


# The training-diagnostics callback lives in its own module; it is a callback like the others.
from .diagnostics import Diagnostics  # noqa: E402,F401


_CALLBACKS = ("BackupAndRestore, CSVLogger, EarlyStopping, History, LambdaCallback, "
              "LearningRateScheduler, ModelCheckpoint, ProgbarLogger, ReduceLROnPlateau, "
              "TerminateOnNaN, Diagnostics, or a Callback subclass of your own")
#: Keras callbacks npnet lacks, with what to write instead.
_KERAS_NAMES = {
    "TensorBoard": "TensorBoard is not available (it writes TensorFlow event files): "
                   "CSVLogger('training.csv') writes each epoch's logs to a file, and the History "
                   "that fit returns holds them (history.history['loss']) to plot; npnet's "
                   f"callbacks are {_CALLBACKS}",
    "RemoteMonitor": f"not available: npnet's callbacks are {_CALLBACKS}",
    "SwapEMAWeights": f"not available (npnet's optimizers keep no moving average of the weights): "
                      f"npnet's callbacks are {_CALLBACKS}",
}


def __getattr__(name):
    from .utils import missing_name
    raise missing_name(__name__, name, _KERAS_NAMES)
