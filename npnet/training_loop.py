"""The loops of ``fit`` and ``evaluate``: batches in, running means and callback calls out.

A loop hands batches to the model's trainer (:mod:`npnet.backends`), the one place where
arithmetic happens, ``steps_per_execution`` of them per call, and keeps the running means
that the logs and the progress bar show.
"""

import math
import warnings

import numpy as np

from . import utils, validation

#: What ``steps_per_execution='auto'`` runs per call when no callback wants every batch.
AUTO_STEPS_PER_EXECUTION = 64


class MetricPlan:
    """The compiled metrics, and which of them the backends count themselves (argmax
    accuracies, see :func:`npnet.metrics.counted_by_argmax`); the others see each batch's
    labels and outputs through Keras's ``update_state``. ``weighted``: the metrics of
    ``compile(weighted_metrics=...)``, logged under ``weighted_names`` (see
    :func:`npnet.metrics.logged_names`); they always see the outputs, with each batch's
    sample weights, so both backends weigh them by the same code."""

    def __init__(self, metrics, counted, weighted=(), weighted_names=()):
        self.metrics = list(metrics)
        self.counted = [bool(c) for c in counted]
        self.weighted = list(weighted)
        self.weighted_names = list(weighted_names)

    @property
    def needs_outputs(self):
        return not all(self.counted) or bool(self.weighted)

    @property
    def names(self):
        """The log key of every metric, unweighted ones first, as Keras orders them."""
        return [metric.name for metric in self.metrics] + self.weighted_names


class RunningMeans:
    """The loss (sample-weighted mean over batches) and the metrics of one pass."""

    def __init__(self, plan):
        self.plan = plan
        self.loss_sum, self.n_correct, self.n_seen = 0.0, 0, 0
        for metric in plan.metrics + plan.weighted:
            metric.reset_state()

    def add(self, loss, n_correct, n_samples, y_batch=None, outputs=None, sample_weight=None):
        """One batch: its mean loss, correct count and size, and for the metrics that read
        them its labels, outputs and (for weighted metrics; None: unweighted) sample weights."""
        self.loss_sum += float(loss) * n_samples
        self.n_correct += n_correct
        self.n_seen += n_samples
        for metric, counted in zip(self.plan.metrics, self.plan.counted):
            if not counted:
                metric.update_state(y_batch, outputs)
        for metric in self.plan.weighted:
            metric.update_state(y_batch, outputs, sample_weight=sample_weight)

    def logs(self, prefix=""):
        """The means so far, as Keras 3's logs hold them: keys in sorted order (``accuracy``
        before ``loss``), which History, callbacks and ``return_dict`` results show."""
        logs = {prefix + "loss": self.loss_sum / self.n_seen}
        for metric, counted in zip(self.plan.metrics, self.plan.counted):
            value = self.n_correct / self.n_seen if counted else metric.result()
            logs[prefix + metric.name] = logged(value)
        for metric, name in zip(self.plan.weighted, self.plan.weighted_names):
            logs[prefix + name] = logged(metric.result())
        return dict(sorted(logs.items()))


def logged(value):
    """A metric's result as logs hold it: a float, or a float array for a metric of several
    values (Precision(thresholds=[0.3, 0.7]) and the like), as Keras logs them."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float64)
    return float(value)


class ArrayPasses:
    """Which batches of the arrays each epoch of ``fit`` runs, as Keras 3 takes them: every
    batch, or with ``steps_per_epoch`` that many, each epoch going on where the last one
    stopped in the current pass over the data. The order (shuffled or not) is drawn when a
    pass starts; an epoch that reaches the end of the data before its steps ends there with
    Keras's "ran out of data" warning, and the next epoch starts a new pass."""

    def __init__(self, n_samples, batch_size, shuffle, steps_per_epoch=None):
        self.n_samples, self.batch_size, self.shuffle = n_samples, batch_size, shuffle
        self.n_batches = math.ceil(n_samples / batch_size)
        self.steps_per_epoch = steps_per_epoch
        self.order, self.position = None, 0

    @property
    def steps(self):
        """The steps of an epoch, as callbacks see them in ``params['steps']``."""
        return self.steps_per_epoch or self.n_batches

    def next_epoch(self):
        """``(order, first_step, n_steps)`` of the next epoch's batches (``order`` None: in order)."""
        if self.position == 0:
            self.order = utils.rng().permutation(self.n_samples) if self.shuffle else None
        first = self.position
        count = min(self.steps, self.n_batches - first)
        if count < self.steps:
            warn_ran_out(f"fit(steps_per_epoch={self.steps})", first + count, self.n_batches, self.batch_size)
        self.position = 0 if first + count >= self.n_batches else first + count
        return self.order, first, count


def warn_ran_out(what, used, n_batches, batch_size):
    """Keras's "ran out of data" warning, for arrays of ``n_batches`` batches of ``batch_size``."""
    warnings.warn(f"{what}: your input ran out of data after batch {used} of its {n_batches} batches of "
                  f"{batch_size}; the epoch ends there (the next one starts a new pass over the data), as in "
                  "Keras. Make steps_per_epoch * epochs at most the batches the data hold, or leave it None.",
                  UserWarning, stacklevel=4)


def first_batches(arrays, batch_size, steps, what):
    """The rows of ``arrays`` (each None or with a first axis of samples) in their first
    ``steps`` batches: all of them for None, or when fewer, with Keras's warning."""
    n_samples = next(a for a in arrays if a is not None).shape[0]
    if steps is None:
        return arrays
    n_batches = math.ceil(n_samples / batch_size)
    if steps > n_batches:
        warnings.warn(f"{what}={steps}: your input ran out of data after its {n_batches} batches of "
                      f"{batch_size}; all of them are used, as in Keras.", UserWarning, stacklevel=3)
    rows = slice(0, steps * batch_size)
    return tuple(None if a is None else a[rows] for a in arrays)


def train_epoch(trainer, x, y, epoch, passes, steps_per_execution, callbacks, metrics, sample_weight=None):
    """One epoch over ``(x, y)``, the batches :meth:`ArrayPasses.next_epoch` chooses; returns
    the RunningMeans of the batches applied. A batch whose loss, gradients or update is not
    finite is not applied and ends the epoch and training (``model.stop_training``): the
    model keeps the weights, optimizer slots and iterations of the last finite step."""
    batch_size = passes.batch_size
    order, first, steps = passes.next_epoch()
    means = RunningMeans(metrics)
    options = step_options(metrics, sample_weight)
    step = 0
    while step < steps:
        callbacks.call("on_train_batch_begin", step)
        # stop_training set already (at the epoch's start): Keras runs this one step, then stops
        count = 1 if callbacks.model.stop_training else min(steps_per_execution, steps - step)
        done = trainer.train_steps(x, y, order, batch_size, first + step, count, **options)
        for k in range(done.n_done - (0 if done.last_applied else 1)):
            rows = slice((first + step + k) * batch_size, (first + step + k + 1) * batch_size)
            index = rows if order is None else order[rows]
            labels = y[index]
            means.add(done.losses[k], done.corrects[k], len(labels), labels,
                      done.outputs[k] if metrics.needs_outputs else None,
                      None if sample_weight is None else sample_weight[index])
        if not done.last_applied:
            warn_non_finite(f"Epoch {epoch + 1}, batch {step + done.n_done - 1}", done.losses[-1])
            callbacks.model.stop_training = True
            return means
        step += done.n_done
        callbacks.call("on_train_batch_end", step - 1, logs=means.logs())
        if callbacks.model.stop_training:  # as in Keras: the epoch ends after this batch
            break
    return means


def train_batch(trainer, x, y, metrics, sample_weight=None):
    """One step on all of ``(x, y)`` (``train_on_batch``): the logs of that batch, its loss
    and metrics as the forward pass before the update computed them. A step whose loss,
    gradients or update is not finite is not applied: a warning, and logs holding that loss
    (the metrics NaN)."""
    done = trainer.train_steps(x, y, None, x.shape[0], 0, 1, **step_options(metrics, sample_weight))
    means = RunningMeans(metrics)
    if not done.last_applied:
        warn_non_finite("train_on_batch", done.losses[-1], stopped=False)
        return {"loss": float(done.losses[-1]), **{name: math.nan for name in metrics.names}}
    means.add(done.losses[0], done.corrects[0], x.shape[0], y, done.outputs[0] if metrics.needs_outputs else None,
              sample_weight)
    return means.logs()


def train_epoch_from_source(trainer, model, source, epoch, callbacks, metrics):
    """One epoch over the batches of a :class:`npnet.data.BatchSource`, one step per batch,
    each batch checked as an array argument would be."""
    means = RunningMeans(metrics)
    for step, (x, y, sample_weight) in enumerate(source.epoch()):
        x, y = model.check_data(x, y, what=(f"x of batch {step}", f"y of batch {step}"))
        weights = validation.check_sample_weight(sample_weight, None, y, model.loss.label_kind)
        model.ensure_built(x)
        callbacks.call("on_train_batch_begin", step)
        done = trainer.train_steps(x, y, None, x.shape[0], 0, 1, **step_options(metrics, weights))
        if not done.last_applied:
            warn_non_finite(f"Epoch {epoch + 1}, batch {step}", done.losses[-1])
            model.stop_training = True
            break
        means.add(done.losses[0], done.corrects[0], x.shape[0], y, done.outputs[0] if metrics.needs_outputs else None,
                  weights)
        callbacks.call("on_train_batch_end", step, logs=means.logs())
        if model.stop_training:
            break
    source.end_epoch()
    return means


def evaluate_source(trainer, model, source, callbacks, metrics):
    """The loss and metrics over the batches of a :class:`npnet.data.BatchSource`."""
    means = RunningMeans(metrics)
    keep = metrics.needs_outputs
    for step, (x, y, sample_weight) in enumerate(source.epoch()):
        x, y = model.check_data(x, y, what=(f"x of batch {step}", f"y of batch {step}"))
        weights = validation.check_sample_weight(sample_weight, None, y, model.loss.label_kind)
        model.ensure_built(x)
        callbacks.call("on_test_batch_begin", step)
        loss, n_correct = trainer.test_batch(x, y, weights)
        means.add(loss, n_correct, x.shape[0], y, trainer.predict(x, x.shape[0]) if keep else None, weights)
        callbacks.call("on_test_batch_end", step, logs=means.logs())
    if means.n_seen == 0:
        raise ValueError("the evaluation data produced no batch")
    return means


def step_options(metrics, sample_weight=None):
    """``train_steps``' keyword arguments: keep the outputs when a metric reads them, and
    the per-sample weights when there are any."""
    options = {"keep_outputs": True} if metrics.needs_outputs else {}
    if sample_weight is not None:
        options["sample_weight"] = sample_weight
    return options


def warn_non_finite(where, loss, stopped=True):
    """The warning of a step not applied because it was not finite (``where``: "Epoch 1,
    batch 3" in fit, "train_on_batch"); ``stopped``: training ends with it."""
    consequence = "training stopped before applying that update" if stopped else "that update was not applied"
    warnings.warn(f"{where}: the loss is {loss} or a gradient is not finite (or too large to square), or the "
                  f"update would make a weight or an optimizer slot inf or NaN; {consequence}, so the model "
                  "keeps the weights and optimizer state of the last finite step. Try a smaller learning "
                  "rate or check the inputs' scale.", RuntimeWarning, stacklevel=4)


def evaluate(trainer, x, y, batch_size, callbacks, metrics, progbar=None, sample_weight=None):
    """The mean loss (over batches, by their sizes) and the metrics over ``(x, y)``:
    RunningMeans. ``sample_weight`` (n,) or None weighs each sample's loss and the
    ``weighted_metrics``, not the metrics given as ``metrics=``, as Keras does."""
    means = RunningMeans(metrics)
    keep = metrics.needs_outputs
    for step, start in enumerate(range(0, x.shape[0], batch_size)):
        stop = min(start + batch_size, x.shape[0])
        callbacks.call("on_test_batch_begin", step)
        weights = None if sample_weight is None else sample_weight[start:stop]
        loss, n_correct = trainer.test_batch(x[start:stop], y[start:stop], weights)
        outputs = trainer.predict(x[start:stop], stop - start) if keep else None
        means.add(loss, n_correct, stop - start, y[start:stop], outputs, weights)
        callbacks.call("on_test_batch_end", step, logs=means.logs())
        if progbar is not None:
            progbar.update(step + 1, means.logs())
    return means


def predict(trainer, x, batch_size, callbacks):
    """The outputs for ``x``: in one call, or batch by batch when a callback is listening."""
    if not callbacks.callbacks:
        return np.asarray(trainer.predict(x, batch_size))
    outputs = []
    for step, start in enumerate(range(0, x.shape[0], batch_size)):
        callbacks.call("on_predict_batch_begin", step)
        outputs.append(np.asarray(trainer.predict(x[start:start + batch_size], batch_size)))
        callbacks.call("on_predict_batch_end", step, logs={"outputs": outputs[-1]})
    return np.concatenate(outputs, axis=0)
