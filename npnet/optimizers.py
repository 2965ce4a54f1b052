"""Optimizers. Each owns its per-parameter state (Adam's moments) and its step counter.

``optimizer.apply_gradients(params, grads)`` updates the list of parameter arrays in place,
one call per training step; the arithmetic of a step lives in :mod:`npnet.functional`.

The step counter is a one-element array (:meth:`Optimizer.step_counter`) so that the numba
backend's kernels, which do the same update, advance it together with the weights and the
state, step by step, as Keras's compiled train step advances ``optimizer.iterations``.
"""

import numpy as np

from . import functional as F
from . import utils


class Optimizer:
    """Base class: learning rate, step counter and one state array per slot and parameter."""

    #: names of the per-parameter state arrays, e.g. ("m", "v") for Adam
    slots = ()

    def __init__(self, learning_rate=0.001):
        learning_rate = float(learning_rate)
        if not np.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number; received {learning_rate!r}")
        self.learning_rate = learning_rate
        self._step_counter = np.zeros(1, dtype=np.int64)
        self.state = None  # {slot: [array per parameter]} once built

    @property
    def iterations(self):
        """The number of steps applied so far (Keras's ``optimizer.iterations``)."""
        return int(self._step_counter[0])

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"iterations must be a non-negative integer; received {value!r}")
        self._step_counter[0] = value

    def step_counter(self):
        """The one-element int64 array holding ``iterations``, for kernels that do the update."""
        return self._step_counter

    def build(self, params):
        """Create zeroed state shaped like each parameter (done on the first step)."""
        self.state = {slot: [utils.aligned_copy(np.zeros_like(p)) for p in params]
                      for slot in self.slots}  # on a cache line, like the parameters

    def apply_gradients(self, params, grads):
        """One step: update every parameter in ``params`` in place from its gradient."""
        if self.state is None:
            self.build(params)
        else:
            self._check_same_params(params)
        # Ctrl-C waits until every parameter has its update: never half a step.
        with utils.interrupts_deferred():
            self._step_counter[0] += 1
            for i, (param, grad) in enumerate(zip(params, grads)):
                self.update(param, grad, {slot: arrays[i] for slot, arrays in self.state.items()})

    def _check_same_params(self, params):
        """The state was built for one model's parameters; refuse others rather than misalign."""
        if not self.state:  # no slots (e.g. plain SGD): nothing can be misaligned
            return
        first_slot = next(iter(self.state.values()))  # every slot has one array per parameter
        built_for = [a.shape for a in first_slot]
        received = [p.shape for p in params]
        if built_for != received:
            raise ValueError(
                f"This optimizer's state was built for parameters of shapes {built_for}; "
                f"received {received}. An optimizer instance serves one model: after adding "
                "layers, or for another model, compile again with a new optimizer.")

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


def _check_fraction(name, value, upper_inclusive=False):
    value = float(value)
    if not (0 <= value <= 1 if upper_inclusive else 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1{']' if upper_inclusive else ')'}; received {value!r}")
    return value


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, Keras's defaults and
    form (see :func:`npnet.functional.sgd_update`). Keeps a ``momentum`` slot only when
    ``momentum > 0``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _check_fraction("momentum", momentum, upper_inclusive=True)
        self.nesterov = bool(nesterov)
        self.slots = ("momentum",) if self.momentum != 0 else ()

    def update(self, param, grad, state):
        F.sgd_update(param, grad, state.get("momentum"), self.learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop with Keras's defaults and form (see :func:`npnet.functional.rmsprop_update`).

    Slots: ``velocity`` (running mean of g²), plus ``momentum`` when ``momentum > 0`` and
    ``average_gradient`` when ``centered``.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
        super().__init__(learning_rate)
        self.rho = _check_fraction("rho", rho)
        self.momentum = _check_fraction("momentum", momentum)
        epsilon = float(epsilon)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive; received {epsilon!r}")
        self.epsilon = epsilon
        self.centered = bool(centered)
        self.slots = (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                      + (("average_gradient",) if self.centered else ()))

    def update(self, param, grad, state):
        F.rmsprop_update(param, grad, state["velocity"], self.learning_rate, self.rho, self.epsilon,
                         momentum_buffer=state.get("momentum"), momentum=self.momentum,
                         average_grad=state.get("average_gradient"))

    def get_config(self):
        return {"learning_rate": self.learning_rate, "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_BY_NAME = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}


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
