"""The loops of ``fit`` and ``evaluate``: batches in, running means and callback calls out.

A loop hands batches to the model's trainer (:mod:`npnet.backends`), the one place where
arithmetic happens, ``steps_per_execution`` of them per call, and keeps the running means
that the logs and the progress bar show.
"""

import math
import warnings

import numpy as np

from . import utils

#: What ``steps_per_execution='auto'`` runs per call when no callback wants every batch.
AUTO_STEPS_PER_EXECUTION = 64


class RunningMeans:
    """Sample-weighted running loss and accuracy over the batches of one pass."""

    def __init__(self, with_accuracy):
        self.with_accuracy = with_accuracy
        self.loss_sum, self.n_correct, self.n_seen = 0.0, 0, 0

    def add(self, loss, n_correct, n_samples):
        self.loss_sum += float(loss) * n_samples
        self.n_correct += int(n_correct)
        self.n_seen += n_samples

    def logs(self, prefix=""):
        logs = {prefix + "loss": self.loss_sum / self.n_seen}
        if self.with_accuracy:
            logs[prefix + "accuracy"] = self.n_correct / self.n_seen
        return logs


def train_epoch(trainer, x, y, epoch, batch_size, shuffle, steps_per_execution, callbacks, with_accuracy):
    """One pass over ``(x, y)``; returns the RunningMeans of the batches applied. A batch that
    is not finite is not applied and ends the epoch and training (``model.stop_training``):
    the model keeps the weights of the last finite step."""
    n_samples = x.shape[0]
    steps = math.ceil(n_samples / batch_size)
    order = utils.rng().permutation(n_samples) if shuffle else None
    means = RunningMeans(with_accuracy)
    step = 0
    while step < steps:
        callbacks.call("on_train_batch_begin", step)
        count = min(steps_per_execution, steps - step)
        done = trainer.train_steps(x, y, order, batch_size, step, count)
        for k in range(done.n_done - (0 if done.last_applied else 1)):
            first = (step + k) * batch_size
            means.add(done.losses[k], done.corrects[k], min(batch_size, n_samples - first))
        if not done.last_applied:
            warn_non_finite(epoch, step + done.n_done - 1, done.losses[-1])
            callbacks.model.stop_training = True
            return means
        step += done.n_done
        callbacks.call("on_train_batch_end", step - 1, logs=means.logs())
        if callbacks.model.stop_training:  # as in Keras: the epoch ends after this batch
            break
    return means


def warn_non_finite(epoch, step, loss):
    warnings.warn(f"Epoch {epoch + 1}, batch {step}: the loss is {loss} or a gradient is not finite (or too large "
                  "to square); training stopped before applying that update, so the model "
                  "keeps the weights of the last finite step. Try a smaller learning rate or "
                  "check the inputs' scale.", RuntimeWarning, stacklevel=4)


def evaluate(trainer, x, y, batch_size, callbacks, with_accuracy, progbar=None):
    """The sample-weighted mean loss (and accuracy) over ``(x, y)``: RunningMeans."""
    means = RunningMeans(with_accuracy)
    for step, start in enumerate(range(0, x.shape[0], batch_size)):
        stop = min(start + batch_size, x.shape[0])
        callbacks.call("on_test_batch_begin", step)
        loss, n_correct = trainer.test_batch(x[start:stop], y[start:stop])
        means.add(loss, n_correct, stop - start)
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
