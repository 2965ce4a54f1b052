"""Callbacks: the Keras protocol, History, the progress bar, EarlyStopping, TerminateOnNaN.

A callback is told about training, evaluation and prediction through Keras's hooks
(``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}``,
``on_{train,test,predict}_batch_{begin,end}`` and the ``on_batch_{begin,end}`` aliases of the
training ones), always with a ``logs`` dict, and can stop training by setting
``model.stop_training = True``, as in Keras.

With ``compile(steps_per_execution=n)`` the batch hooks run once per ``n`` batches, after
the last of them, as in Keras; see :func:`wants_every_batch` for what ``'auto'`` chooses.
"""

import math
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


class CallbackList:
    """Calls every hook of every callback in order, always with a ``logs`` dict."""

    def __init__(self, callbacks, model, params):
        self.model = model
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be npnet.callbacks.Callback instances; received {callback!r}")
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def call(self, hook, *args, logs=None):
        """``callback.<hook>(*args, logs)`` for each callback; ``logs`` defaults to ``{}``."""
        logs = {} if logs is None else logs
        for callback in self.callbacks:
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
    """Prints ``Epoch i/n`` and a :class:`Progbar` per epoch (added by ``fit`` when verbose)."""

    _logs_only = True

    def __init__(self, verbose, epochs, steps):
        super().__init__()
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.progbar = None
        self.seen = 0

    def on_epoch_begin(self, epoch, logs=None):
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

    ``mode='auto'`` minimises losses and maximises accuracies. With
    ``restore_best_weights=True`` the weights of the best epoch are put back when training
    ends, early or not, as Keras 3 does. A ``baseline`` must be beaten for an improvement to
    reset the patience count; the best value so far is tracked either way.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; received {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor) else "min"
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


class TerminateOnNaN(Callback):
    """Kept for Keras compatibility: npnet's ``fit`` always stops on a NaN or inf loss.

    ``fit`` checks every batch's loss *before* applying its update, so the weights left in
    the model are the last finite ones; adding this callback changes nothing.
    """


def is_finite(value):
    return math.isfinite(float(value)) if np.ndim(value) == 0 else bool(np.isfinite(value).all())


# The training-diagnostics callback lives in its own module; it is a callback like the others.
from .diagnostics import Diagnostics  # noqa: E402,F401
