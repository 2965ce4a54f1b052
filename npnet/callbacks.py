"""Callbacks: History, the Keras-style progress bar, EarlyStopping and TerminateOnNaN.

A callback is told about training through ``on_train_begin``, ``on_epoch_begin``,
``on_train_batch_end``, ``on_epoch_end`` and ``on_train_end``, and can stop training by
setting ``model.stop_training = True``, as in Keras.
"""

import math
import sys
import time
import warnings

import numpy as np


class Callback:
    """Base class with no-op hooks; ``self.model`` is set by ``fit``."""

    #: Whether ``on_train_batch_end`` looks at the model (its weights after that batch).
    #: None (the default): decided by :func:`watches_batches` from whether the hook is
    #: overridden. Set it to False in a callback whose batch hook reads only its ``logs``
    #: (a progress display, a loss logger): ``fit`` may then train several batches before
    #: calling the hook for each of them, so such a hook must not change the model nor set
    #: ``model.stop_training`` (the batches after it may already be trained). ``fit`` reads
    #: the hooks and this attribute once, when it starts, as Keras does.
    needs_weights_per_batch = None

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


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


def _format_value(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


def _format_duration(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def _format_per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progbar:
    """Keras 3's progress line: ``1875/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 1ms/step - accuracy: 0.8267 - loss: 0.4949``.

    ``verbose=1`` redraws the line in place (at most every ``interval`` seconds);
    ``verbose=2`` prints only the final line, in Keras's ``- 2s - 1ms/step -`` form.
    """

    width = 20

    def __init__(self, target, verbose=1, stream=None, interval=0.05):
        self.target = int(target)
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0
        self._color = verbose == 1 and _isatty(self.stream)

    def update(self, current, values, finalize=False):
        """Show progress ``current``/target with ``values`` (a dict of running means)."""
        if self.verbose == 0:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        metrics = "".join(f" - {name}: {_format_value(v)}" for name, v in sorted(values.items()))
        if self.verbose == 2:
            if finalize:
                per_step = elapsed / max(current, 1)
                self.stream.write(
                    f"{current}/{self.target} - {_format_duration(elapsed)} - "
                    f"{_format_per_step(per_step)}{metrics}\n"
                )
                self.stream.flush()
            return
        if not finalize and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        per_step = elapsed / max(current, 1)
        time_text = _format_duration(elapsed if finalize else per_step * (self.target - current))
        digits = len(str(self.target))
        line = (f"{current:>{digits}}/{self.target} {self._bar(current)} {time_text} "
                f"{_format_per_step(per_step)}{metrics}")
        padding = " " * max(self._last_len - len(line), 0)
        self._last_len = len(line)
        self.stream.write("\r" + line + padding + ("\n" if finalize else ""))
        self.stream.flush()

    def _bar(self, current):
        done = int(self.width * current / self.target) if self.target else self.width
        if self._color:
            return "\x1b[32m" + "━" * done + "\x1b[0m" + "\x1b[37m" + "━" * (self.width - done) + "\x1b[0m"
        return "━" * done + "─" * (self.width - done)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_verbose(verbose):
    """``'auto'`` becomes 1 at a terminal (redrawn bar) and 2 otherwise (one line per epoch)."""
    if verbose == "auto":
        return 1 if _isatty(sys.stdout) else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}")
    return verbose


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and a :class:`Progbar` per epoch (added by ``fit`` when verbose)."""

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


def has_batch_hook(callback):
    """True if ``callback`` does something in ``on_train_batch_end`` (overridden in its class
    or set on the instance); ``fit`` builds each batch's logs only for such callbacks."""
    hook = getattr(callback, "on_train_batch_end", None)
    return getattr(hook, "__func__", hook) is not Callback.on_train_batch_end


def watches_batches(callback):
    """True if ``callback`` has an ``on_train_batch_end`` hook that may look at the model.

    A callback's own ``needs_weights_per_batch`` (True or False) decides when set. Otherwise
    npnet's own batch hook (:class:`ProgbarLogger`'s) only reads the logs, and any other one,
    defined in a subclass or set on the instance, counts as watching. ``fit`` then has the
    backend finish each batch before its hook runs, so the hook sees the weights after exactly
    that batch, as in Keras. When no callback watches, a backend may train several batches
    in one call and run their hooks afterwards, with the same logs.
    """
    declared = getattr(callback, "needs_weights_per_batch", None)
    if declared is not None:
        return bool(declared)
    hook = getattr(callback, "on_train_batch_end", None)
    return has_batch_hook(callback) and getattr(hook, "__func__", hook) is not ProgbarLogger.on_train_batch_end


def is_finite(value):
    return math.isfinite(float(value)) if np.ndim(value) == 0 else bool(np.isfinite(value).all())
