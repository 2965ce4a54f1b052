"""The readable backend: every step goes through :mod:`npnet.training` in plain NumPy.

Training and evaluation keep NumPy's BLAS on one thread (see :mod:`npnet.backends._threads`
for why); nothing else about the arithmetic differs from calling the functions by hand.
"""

import numpy as np

from .. import training
from ._threads import SingleThreadedBlas

_single_threaded_blas = SingleThreadedBlas(linked_by="numpy")


class NumpyBackend:
    name = "numpy"

    def __init__(self, model):
        self.model = model

    def train_batch(self, x, y):
        model = self.model
        with _single_threaded_blas:
            loss, output, grads = training.loss_and_gradients(model.layers, model.loss, x, y, training=True)
            n_correct = model.accuracy.count_correct(y, output)
            if not (np.isfinite(loss) and training.all_finite(grads)):
                return float(loss), n_correct, False
            model.optimizer.apply_gradients(model.weights, grads)
        return float(loss), n_correct, True

    def test_batch(self, x, y):
        model = self.model
        with _single_threaded_blas:
            output, caches = training.forward(model.layers, x, training=False)
            loss = training.loss_value(model.layers, model.loss, output, caches, y)
        return float(loss), model.accuracy.count_correct(y, output)

    def predict(self, x, batch_size):
        outputs = [training.forward(self.model.layers, x[start:start + batch_size])[0]
                   for start in range(0, x.shape[0], batch_size)]
        return np.concatenate(outputs, axis=0)
