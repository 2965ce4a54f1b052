"""What every backend offers the model: the interface of :mod:`npnet.backends`.

A trainer holds the parts it was made from (the model's list of layers, the loss, the
optimizer and the accuracy metric) and computes with them; it never sees the model. The
optimizer owns its state and its step count: a backend's arithmetic advances them exactly
as :meth:`npnet.optimizers.Optimizer.apply_gradients` would.
"""

import dataclasses

import numpy as np

from .. import heads, training as training_module


@dataclasses.dataclass
class Steps:
    """What :meth:`Trainer.train_steps` did: ``losses[k]`` and ``corrects[k]`` of each batch
    run, and whether the last one was applied (False: its loss or a gradient was not
    finite, so it was skipped and training must stop)."""

    losses: np.ndarray
    corrects: np.ndarray
    last_applied: bool
    outputs: list = None  # each batch's outputs, when asked for with keep_outputs=True

    @property
    def n_done(self):
        return len(self.losses)


class Trainer:
    """Base class; subclasses implement ``train_steps``, ``test_batch`` and ``predict``."""

    name = "base"

    def __init__(self, layers, loss=None, optimizer=None, accuracy=None):
        self.layers = layers
        self.loss = loss
        self.optimizer = optimizer
        self.accuracy = accuracy
        self.head = heads.choose(layers, loss)

    def require_training_parts(self):
        if self.loss is None or self.optimizer is None:
            raise RuntimeError("This backend was made for inference only: compile the model "
                               "with an optimizer and a loss before training or evaluating it")

    def trainable_weights(self):
        """The arrays the optimizer updates: the parameters of every trainable layer."""
        return [p for layer in self.layers if layer.trainable for p in layer.params.values()]

    def train_steps(self, x, y, order, batch_size, first_step, n_steps, keep_outputs=False, sample_weight=None):
        """Steps ``first_step ... first_step + n_steps - 1`` of an epoch: batch ``s`` holds the
        samples ``order[s * batch_size:(s + 1) * batch_size]`` (``order`` None: in order).
        Stops early after a batch that was not applied. Returns a :class:`Steps` (with each
        batch's outputs when ``keep_outputs``, for metrics that need them). ``sample_weight``
        (n_samples,) or None: each sample's loss and gradient weighed, Keras's ``Σ w_i l_i / n``."""
        raise NotImplementedError

    def train_batch(self, x, y):
        """One optimizer step on the batch ``(x, y)``: ``(loss, n_correct, applied)``."""
        steps = self.train_steps(x, y, None, x.shape[0], 0, 1)
        return float(steps.losses[0]), int(steps.corrects[0]), bool(steps.last_applied)

    def test_batch(self, x, y, sample_weight=None):
        """``(loss, n_correct)`` of the batch ``(x, y)``, no update; ``sample_weight`` (n,) or
        None weighs the loss as in training (Keras's ``Σ w_i l_i / n``), never the count."""
        raise NotImplementedError

    def predict(self, x, batch_size):
        raise NotImplementedError

    def call(self, x, training=None):
        """``model(x)``: ``predict`` in one block; ``training=True`` (Keras's argument name,
        hence the module's alias) runs the NumPy forward pass in training mode: Dropout on,
        its masks drawn from npnet's generator as ``fit`` draws them."""
        if training:
            return training_module.forward(self.layers, x, training=True)[0]
        return self.predict(x, x.shape[0])
