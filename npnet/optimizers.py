"""Optimizers. Each owns its per-parameter state (Adam's moments) and its step counter.

``optimizer.apply_gradients(params, grads)`` updates the list of parameter arrays in place,
one call per training step; the arithmetic of a step lives in :mod:`npnet.functional`.
"""

import numpy as np

from . import functional as F


class Optimizer:
    """Base class: learning rate, step counter and one state array per slot and parameter."""

    #: names of the per-parameter state arrays, e.g. ("m", "v") for Adam
    slots = ()

    def __init__(self, learning_rate=0.001):
        learning_rate = float(learning_rate)
        if not np.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number; received {learning_rate!r}")
        self.learning_rate = learning_rate
        self.iterations = 0
        self.state = None  # {slot: [array per parameter]} once built

    def build(self, params):
        """Create zeroed state shaped like each parameter (done on the first step)."""
        self.state = {slot: [np.zeros_like(p) for p in params] for slot in self.slots}

    def apply_gradients(self, params, grads):
        """One step: update every parameter in ``params`` in place from its gradient."""
        if self.state is None:
            self.build(params)
        self.iterations += 1
        for i, (param, grad) in enumerate(zip(params, grads)):
            self.update(param, grad, {slot: arrays[i] for slot, arrays in self.state.items()})

    def update(self, param, grad, state):
        raise NotImplementedError

    def get_config(self):
        return {"learning_rate": self.learning_rate}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Adam(Optimizer):
    """Adam with Keras's defaults and update form (see :func:`npnet.functional.adam_update`)."""

    slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1); received {value!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive; received {epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def update(self, param, grad, state):
        F.adam_update(param, grad, state["m"], state["v"], self.iterations,
                      self.learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}


_BY_NAME = {"adam": Adam}


def get(identifier):
    """Resolve an optimizer name (with default settings) or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Unknown optimizer {identifier!r}; known optimizers: {', '.join(sorted(_BY_NAME))} "
        "(or an npnet.optimizers.Optimizer instance)"
    )


def deserialize(class_name, config_):
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    return classes[class_name](**config_)
