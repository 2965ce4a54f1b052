"""The readable backend: every step goes through :mod:`npnet.training` in plain NumPy.

Training and evaluation keep NumPy's BLAS on one thread (see :mod:`npnet.backends._threads`
for why); nothing else about the arithmetic differs from calling the functions by hand.
"""

import numpy as np

from .. import training
from ._threads import SingleThreadedBlas
from .base import Steps, Trainer

_single_threaded_blas = SingleThreadedBlas(linked_by="numpy")


class NumpyBackend(Trainer):
    name = "numpy"

    def train_steps(self, x, y, order, batch_size, first_step, n_steps, keep_outputs=False,
                    sample_weight=None):
        """As :meth:`Trainer.train_steps`; ``sample_weight`` (n_samples,) weighs each sample's
        loss (Keras's ``sum(w * loss) / batch size``)."""
        self.require_training_parts()
        losses, corrects, outputs = [], [], []
        applied = True
        for step in range(first_step, first_step + n_steps):
            index = slice(step * batch_size, (step + 1) * batch_size)
            if order is not None:
                index = order[index]
            extra = {} if sample_weight is None else {"sample_weight": sample_weight[index]}
            loss, n_correct, applied = self.train_batch(x[index], y[index], outputs if keep_outputs else None,
                                                        **extra)
            losses.append(loss)
            corrects.append(n_correct)
            if not applied:
                break
        return Steps(np.array(losses), np.array(corrects, dtype=np.int64), applied,
                     outputs if keep_outputs else None)

    def train_batch(self, x, y, outputs=None, sample_weight=None):
        """Forward, loss, backward; the update only when loss and gradients are finite and the
        update keeps every weight and slot finite. Returns ``(loss, n_correct, applied)``;
        appends the batch's output to ``outputs``."""
        with _single_threaded_blas:
            loss, output, grads = training.loss_and_gradients(self.layers, self.loss, x, y, training=True,
                                                              head=self.head, sample_weight=sample_weight)
            n_correct = self.accuracy.count_correct(y, output)
            if outputs is not None:
                outputs.append(output)
            if not (np.isfinite(loss) and training.all_finite(grads)):
                return float(loss), n_correct, False
            applied = self.optimizer.apply_gradients_if_finite(self.trainable_weights(), grads)
        return float(loss), n_correct, applied

    def test_batch(self, x, y):
        self.require_training_parts()
        with _single_threaded_blas:
            output, caches = training.forward(self.layers, x, training=False)
            loss = training.loss_value(self.layers, self.loss, output, caches, y, self.head)
        return float(loss), self.accuracy.count_correct(y, output)

    def predict(self, x, batch_size):
        outputs = [training.forward(self.layers, x[start:start + batch_size])[0]
                   for start in range(0, x.shape[0], batch_size)]
        return np.concatenate(outputs, axis=0)
