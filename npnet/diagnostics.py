"""What happens inside the network while it trains: a callback that records, per layer.

    diagnostics = npnet.callbacks.Diagnostics(every=100)
    model.fit(x, y, callbacks=[diagnostics])
    diagnostics.steps                          # [1, 101, 201, ...] optimizer steps recorded
    diagnostics.layers["dense"]["grad_norm"]   # one value per recorded step
    npnet.plot.diagnostics(diagnostics)        # the four panels as a Figure

Every ``every`` optimizer steps (and at the first), on the very batch that step trains on:

* ``grad_norm``: ‖dL/dw‖ over the layer's parameters, before the update. Gradients that
  shrink from the output towards the input (sigmoid stacks) *vanish*; the early layers then
  barely learn.
* ``update_ratio``: ‖w_after - w_before‖ / ‖w_before‖, the step the optimizer took relative
  to the weights. Around 1e-3 is healthy (CS231n); near 1 or above, each step rewrites the
  weights: the learning rate is far too high.
* ``dead_fraction``: for a ReLU layer, the fraction of its units that output 0 for every
  sample of the batch. Units that stay at 0 get no gradient and never recover.
* ``activation_mean`` and ``activation_std``: the mean and spread of the layer's output.
  Saturated sigmoids sit near 0 or 1 with a small spread.

How, without changing training: the callback wraps its model's trainer for the duration of
``fit``. The steps between two records run as the backend would run them (on numba, in
compiled calls of up to ``steps_per_execution`` steps); a recorded step is run alone, after a
forward and backward pass of :mod:`npnet.training` on the layers' current weights (read,
never written; in inference mode, so dropout draws nothing from npnet's generator). The
callback defines no batch hook, so ``steps_per_execution='auto'`` keeps its long compiled
calls, and a model trained without it runs exactly the code it ran before.
"""

import math

import numpy as np

from . import activations, heads, training
from .backends import base
from .backends._threads import SingleThreadedBlas
from .callbacks import Callback
from .layers import Dense, ReLU

#: The quantities recorded per layer, in the order :func:`npnet.plot.diagnostics` draws them.
METRICS = ("grad_norm", "update_ratio", "dead_fraction", "activation_mean", "activation_std")

# The measuring pass is a batch-sized step like the NumPy backend's: BLAS on one thread, as there.
_single_threaded_blas = SingleThreadedBlas(linked_by="numpy")


class Diagnostics(Callback):
    """Record gradient norms, update/weight ratios, dead ReLUs and activation statistics of
    every layer with parameters (and every ReLU layer) every ``every`` optimizer steps.

    After ``fit``: ``steps`` (the 1-based optimizer step of each record), ``losses`` (that
    batch's loss), ``layers`` (``{layer name: {metric: list}}``, NaN where a metric does not
    apply, e.g. ``dead_fraction`` of a softmax layer) and ``every``. Records accumulate over
    several ``fit`` calls; :meth:`reset` clears them.
    """

    def __init__(self, every=100):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every <= 0:
            raise ValueError(f"Diagnostics(every=...) expects a positive number of steps; received {every!r}")
        self.every = int(every)
        self._trainer = self._fit_history = None
        self.reset()

    def reset(self):
        """Forget every record."""
        self.steps, self.losses, self.layers = [], [], {}

    # -- wrapping the trainer for the duration of fit --------------------------------------

    def on_train_begin(self, logs=None):
        trainer = self.model.backend
        self._unwrap()
        self._trainer, self._fit_history = trainer, self.model.history
        self._run_steps = trainer.train_steps
        trainer.train_steps = self._train_steps

    def on_train_end(self, logs=None):
        self._unwrap()

    def _unwrap(self):
        if self._trainer is not None and self._trainer.__dict__.get("train_steps") == self._train_steps:
            del self._trainer.train_steps
        self._trainer = None

    def _train_steps(self, x, y, order, batch_size, first_step, n_steps):
        """The trainer's ``train_steps``, with every ``every``-th optimizer step run alone and
        recorded. (A fit that ended by an exception leaves this in place; the next fit of the
        model, which has a new History, finds it stale and removes it.)"""
        if self.model.history is not self._fit_history:
            run = self._run_steps
            self._unwrap()
            return run(x, y, order, batch_size, first_step, n_steps)
        parts, step, end = [], first_step, first_step + n_steps
        while step < end:
            until_record = -int(self.model.optimizer.iterations) % self.every
            if until_record:
                done = self._run_steps(x, y, order, batch_size, step, min(until_record, end - step))
            else:
                done = self._recorded_step(x, y, order, batch_size, step)
            parts.append(done)
            step += done.n_done
            if not done.last_applied or done.n_done == 0:
                break
        return base.Steps(np.concatenate([p.losses for p in parts]),
                          np.concatenate([p.corrects for p in parts]), parts[-1].last_applied)

    # -- one recorded step -----------------------------------------------------------------

    def _recorded_step(self, x, y, order, batch_size, step):
        index = slice(step * batch_size, (step + 1) * batch_size)
        if order is not None:
            index = order[index]
        layers = self.model._layers
        with _single_threaded_blas:
            measured = measure(layers, self.model.loss, x[index], y[index])
        before = [[p.copy() for p in layer.params.values()] for layer in layers]
        done = self._run_steps(x, y, order, batch_size, step, 1)
        for layer, old, record in zip(layers, before, measured):
            if record is not None:
                record["update_ratio"] = update_ratio(old, list(layer.params.values())) \
                    if done.last_applied and layer.trainable else math.nan
        self._append(int(self.model.optimizer.iterations) + (0 if done.last_applied else 1),
                     float(done.losses[0]), layers, measured)
        return done

    def _append(self, step, loss, layers, measured):
        self.steps.append(step)
        self.losses.append(loss)
        for layer, record in zip(layers, measured):
            if record is None:
                continue
            series = self.layers.setdefault(layer.name, {name: [math.nan] * (len(self.steps) - 1)
                                                         for name in METRICS})
            for name in METRICS:
                series[name].append(record[name])


def is_relu(layer):
    """True for a ReLU layer or a Dense layer with the relu activation."""
    return isinstance(layer, ReLU) or (isinstance(layer, Dense) and layer.activation is activations.relu)


def measure(layers, loss, x, y):
    """Per layer, a dict of the :data:`METRICS` on one batch (``update_ratio`` NaN: it needs
    the step), or None for layers that are not recorded (no parameters and not a ReLU)."""
    outputs, caches, activation = [], [], x
    for layer in layers:
        activation, cache = layer.forward(activation, training=False)
        outputs.append(activation)
        caches.append(cache)
    param_grads, _ = training.backward(layers, loss, activation, caches, y, heads.choose(layers, loss))
    records = []
    for layer, output, grads in zip(layers, outputs, param_grads):
        if not layer.params and not is_relu(layer):
            records.append(None)
            continue
        flat = output.reshape(output.shape[0], -1)
        records.append({
            "grad_norm": _norm(list(grads.values())) if grads else math.nan,
            "update_ratio": math.nan,
            "dead_fraction": float(np.mean(np.all(flat <= 0, axis=0))) if is_relu(layer) else math.nan,
            "activation_mean": float(np.mean(flat)),
            "activation_std": float(np.std(flat)),
        })
    return records


def update_ratio(before, after):
    """‖after - before‖ / ‖before‖ over a list of arrays (inf when the weights were all 0)."""
    change = _norm([a - b for a, b in zip(after, before)])
    size = _norm(before)
    return change / size if size > 0 else math.inf


def _norm(arrays):
    return float(math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)))
