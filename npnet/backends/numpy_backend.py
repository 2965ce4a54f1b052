"""The readable backend: every step goes through :mod:`npnet.training` in plain NumPy.

Training and evaluation keep NumPy's BLAS on one thread (see :mod:`npnet.backends._threads`
for why), and training steps run with denormal floats flushed to zero, as TensorFlow's and the
numba backend's do (see :mod:`npnet.kernels.float_mode` for why: values below ~1.2e-38 count
as 0). Nothing else about the arithmetic differs from calling the functions by hand.
"""

import contextlib

import numpy as np

from .. import training, update_box, utils
from ..variables import plain
from ._threads import SingleThreadedBlas
from .base import Steps, Trainer

_single_threaded_blas = SingleThreadedBlas(linked_by="numpy")


def _denormals_flushed():
    """:func:`npnet.kernels.float_mode.denormals_flushed`; without numba, the float mode as it is
    (correct, only slower once Adam's moments decay below the smallest normal float)."""
    try:
        from ..kernels.float_mode import denormals_flushed
    except ImportError:
        return contextlib.nullcontext()
    return denormals_flushed()


class NumpyBackend(Trainer):
    name = "numpy"

    def train_steps(self, x, y, order, batch_size, first_step, n_steps, keep_outputs=False,
                    sample_weight=None):
        """As :meth:`Trainer.train_steps`; ``sample_weight`` (n_samples,) weighs each sample's
        loss (Keras's ``sum(w * loss) / batch size``)."""
        self.require_training_parts()
        losses, corrects, outputs = [], [], []
        applied = True
        bounds = self._running_bounds()
        # each step's update defers Ctrl-C to its end
        with utils.interrupts_watched(), _denormals_flushed():
            for step in range(first_step, first_step + n_steps):
                index = slice(step * batch_size, (step + 1) * batch_size)
                if order is not None:
                    index = order[index]
                weights = None if sample_weight is None else sample_weight[index]
                loss, n_correct, applied = self.train_batch(x[index], y[index], outputs if keep_outputs else None,
                                                            weights, bounds)
                losses.append(loss)
                corrects.append(n_correct)
                if not applied:
                    break
        return Steps(np.array(losses), np.array(corrects, dtype=np.int64), applied,
                     outputs if keep_outputs else None)

    def train_batch(self, x, y, outputs=None, sample_weight=None, bounds=None):
        """Forward, loss, backward; the update only when loss and gradients are finite and the
        update keeps every weight and slot finite (proven from ``bounds`` when it can be, see
        :mod:`npnet.update_box`). Returns ``(loss, n_correct, applied)``; appends the batch's
        output to ``outputs``."""
        with _single_threaded_blas:
            loss, output, grads = training.loss_and_gradients(self.layers, self.loss, x, y, training=True,
                                                              head=self.head, sample_weight=sample_weight)
            n_correct = self.accuracy.count_correct(y, output)
            if outputs is not None:
                outputs.append(output)
            largest = update_box.magnitude_bound(grads)
            if not (np.isfinite(loss) and training.squares_finite(largest, output.dtype)):
                return float(loss), n_correct, False
            # plain views of the Variables: the update writes the same memory without the
            # per-operation hook that keeps results of arithmetic on a Variable plain arrays
            params = [plain(p) for p in self.trainable_weights()]
            applied = self.optimizer.apply_gradients_if_finite(params, grads, bounds, largest)
        return float(loss), n_correct, applied

    def _running_bounds(self):
        """The update check's :class:`~npnet.update_box.RunningBounds` for this call's steps:
        kept from call to call for the same optimizer and weights, but measured again, since
        anything may have written the arrays in between."""
        params = self.trainable_weights()
        key = (id(self.optimizer), tuple(id(p) for p in params))
        cached = getattr(self, "_bounds", None)
        if cached is None or cached[0] != key or cached[1].optimizer is not self.optimizer:
            cached = self._bounds = (key, update_box.RunningBounds(self.optimizer, params))
        cached[1].forget()
        if self.optimizer.state is not None:
            self.optimizer._check_same_params(params)
        return cached[1]

    def test_batch(self, x, y, sample_weight=None):
        self.require_training_parts()
        with _single_threaded_blas:
            output, caches = training.forward(self.layers, x, training=False)
            loss = training.loss_value(self.layers, self.loss, output, caches, y, self.head, sample_weight)
        return float(loss), self.accuracy.count_correct(y, output)

    def predict(self, x, batch_size):
        outputs = [training.forward(self.layers, x[start:start + batch_size])[0]
                   for start in range(0, x.shape[0], batch_size)]
        return np.concatenate(outputs, axis=0)
