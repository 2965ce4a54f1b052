"""Optimizers. Each owns its per-parameter state (Adam's moments) and its step counter.

``optimizer.apply_gradients(params, grads)`` updates the list of parameter arrays in place,
one call per training step; the arithmetic of a step lives in :mod:`npnet.functional`. A step
that would make any value inf or NaN changes nothing (it is undone from a saved copy).

The step counter is a one-element array (:meth:`Optimizer.step_counter`) so that the numba
backend's kernels, which do the same update, advance it together with the weights and the
state, step by step, as Keras's compiled train step advances ``optimizer.iterations``.
"""

import copy
import functools
import inspect
import math

import numpy as np

from . import config, schedules, utils
from . import functional as F


def _check_fraction(name, value, upper_inclusive=False):
    value = check_hyperparameter(name, value)
    if not (0 <= value <= 1 if upper_inclusive else 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1{']' if upper_inclusive else ')'}; received {value!r}")
    return value


def _positive(name, value):
    return check_hyperparameter(name, value, positive=True)


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; received {name}={value!r}")
    return bool(value)


class LearningRate(float):
    """``optimizer.learning_rate``: the rate as a float, which also answers the calls Keras
    code makes on its learning-rate variable. ``assign(value)`` (and ``assign_add``,
    ``assign_sub``) sets the optimizer's rate as ``optimizer.learning_rate = value`` does,
    checked the same way; ``numpy()`` is the rate in npnet's float type."""

    __slots__ = ("_optimizer",)

    def __new__(cls, value, optimizer):
        rate = super().__new__(cls, value)
        rate._optimizer = optimizer
        return rate

    def assign(self, value):
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate

    def assign_add(self, value):
        return self.assign(float(self) + value)

    def assign_sub(self, value):
        return self.assign(float(self) - value)

    def numpy(self):
        return np.dtype(config.floatx()).type(float(self))

    def __reduce__(self):  # a copy or a pickle is the number alone
        return float, (float(self),)

    def __deepcopy__(self, memo):
        return float(self)


class Optimizer:
    """Base class: learning rate, step counter and one state array per slot and parameter.

    ``learning_rate`` is a number (at least 0) or a schedule (:mod:`npnet.optimizers.schedules`,
    or any callable ``step -> rate`` that subclasses ``LearningRateSchedule``); reading
    ``optimizer.learning_rate`` gives the rate the next step will use. Hyperparameters are
    checked in the float type the update computes in (``floatx`` when made, the weights'
    type when built): ``1e39`` is a finite float64 but ``inf`` in float32.
    """

    #: names of the per-parameter state arrays, e.g. ("m", "v") for Adam
    slots = ()
    #: ``{name: check(name, value) -> value to keep}`` of the hyperparameters that every
    #: assignment checks as the constructor does (Keras lets users set them between fits: an
    #: unchecked ``epsilon = nan`` would reach the update) and, once built, again in the
    #: weights' float type and against the slots built (see :meth:`_check_as_built`).
    _checked = {}

    def __setattr__(self, name, value):
        check = self._checked.get(name)
        if check is None:
            object.__setattr__(self, name, value)
            return
        value = check(name, value)
        unset = object()
        previous = self.__dict__.get(name, unset)
        self.__dict__[name] = value
        try:
            self._check_as_built()
        except ValueError:
            if previous is unset:
                del self.__dict__[name]
            else:
                self.__dict__[name] = previous
            raise

    #: Keras's settings that npnet does not implement: ``{setting: (value that leaves it off,
    #: why another is refused)}``; the constructor takes them at that value (Keras's default)
    #: so that Keras code spelling them out runs unchanged.
    _keras_off = {
        "weight_decay": (None, "npnet's optimizers have no weight decay; for a penalty on large weights, "
                               "give the layers kernel_regularizer='l2'"),
        "clipnorm": (None, "npnet does not clip gradients"),
        "clipvalue": (None, "npnet does not clip gradients"),
        "global_clipnorm": (None, "npnet does not clip gradients"),
        "use_ema": (False, "npnet keeps no moving average of the weights"),
        "loss_scale_factor": (None, "npnet does not scale the loss"),
        "gradient_accumulation_steps": (None, "npnet applies each batch's gradients in a step of its own"),
    }
    #: settings of ``use_ema`` that Keras takes, and ignores, while it is off
    _ema_settings = ("ema_momentum", "ema_overwrite_frequency")

    def __init__(self, learning_rate=0.001, name=None, **keras_settings):
        self._refuse_keras_settings(keras_settings)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__} name must be a string; received {name!r}")
        from .layers import _default_name  # Keras numbers optimizers' names as it does layers'

        self.name = _default_name(type(self)) if name is None else name
        self._step_counter = np.zeros(1, dtype=np.int64)
        self.learning_rate = learning_rate
        self.state = None  # {slot: [array per parameter]} once built

    def _refuse_keras_settings(self, settings):
        """Keras's settings that npnet lacks (:attr:`_keras_off`) pass only at the value that
        leaves them off; an unknown keyword is refused as Keras refuses it."""
        cls = type(self).__name__
        unknown = {key: value for key, value in settings.items()
                   if key not in self._keras_off and key not in self._ema_settings}
        if unknown:
            takes = [key for key in inspect.signature(type(self)).parameters if key != "keras_settings"]
            raise ValueError(f"Argument(s) not recognized: {unknown}; {cls} takes {', '.join(takes)}, "
                             f"and Keras's {', '.join(self._keras_off)} at their defaults")
        for key, value in settings.items():
            off, why = self._keras_off.get(key, (None, None))
            if key in self._keras_off and (value is not None if off is None else bool(value)):
                raise ValueError(f"{cls}({key}={value!r}): {why}; {key} must be {off!r} (Keras's default)")

    @property
    def learning_rate(self):
        """The learning rate of the next step (the schedule at ``iterations`` when there is
        one): a float with the methods of Keras's learning-rate variable that callbacks use,
        ``learning_rate.assign(0.01)`` and ``.numpy()`` (see :class:`LearningRate`)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return LearningRate(self._learning_rate(self.iterations), self)
        return LearningRate(self._learning_rate, self)

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(getattr(self, "_learning_rate", None), schedules.LearningRateSchedule):
            raise TypeError("This optimizer was made with a learning-rate schedule, so its learning rate "
                            "cannot be set; make the optimizer with a number to set it later")
        if not isinstance(value, schedules.LearningRateSchedule):
            # 0 trains nothing (a schedule written by hand may end there), as Keras allows
            value = check_hyperparameter("learning_rate", value, positive=True, zero=True)
        self._learning_rate = value
        self._current_learning_rate = self.learning_rate  # for update() called by hand

    @property
    def learning_rate_schedule(self):
        """The schedule given as ``learning_rate``, or None."""
        lr = self._learning_rate
        return lr if isinstance(lr, schedules.LearningRateSchedule) else None

    def _float_hyperparameters(self):
        """``{name: value}`` of the numbers the update computes with (checked at build)."""
        return {} if self.learning_rate_schedule else {"learning_rate": self._learning_rate}

    def _below_one(self):
        """``{name: value}`` of the decay rates that must stay below 1 in the weights' type."""
        return {}

    @property
    def iterations(self):
        """The number of steps applied so far (Keras's ``optimizer.iterations``)."""
        return int(self._step_counter[0])

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= _INT64_MAX:
            raise ValueError(f"iterations must be an integer from 0 to {_INT64_MAX} (int64); received {value!r}")
        self._step_counter[0] = value

    def step_counter(self):
        """The one-element int64 array holding ``iterations``, for kernels that do the update."""
        return self._step_counter

    def build(self, params):
        """Create zeroed state shaped like each parameter (done on the first step), after
        checking the hyperparameters in the parameters' float type."""
        if params:
            self._check_in_dtype(params[0].dtype)
        self.state = {slot: [utils.aligned_copy(np.zeros_like(p)) for p in params]
                      for slot in self.slots}  # on a cache line, like the parameters
        self._built_dtype = params[0].dtype if params else None
        self._built_for = self._checked_params = None
        if params:
            self._check_same_params(params)  # records their memory

    def _check_in_dtype(self, dtype):
        """The hyperparameters as the update computes with them, in ``dtype``."""
        for name, value in self._float_hyperparameters().items():
            check_hyperparameter(name, value, dtype=dtype, positive=name in _POSITIVE, flushed=True,
                                 zero=name == "learning_rate")
        for name, value in self._below_one().items():
            check_below_one(name, value, dtype)

    def _check_as_built(self):
        """After a hyperparameter changed: once built, check it in the weights' type, and
        refuse a change of the slots the state was built with (momentum from 0, centered)."""
        if getattr(self, "state", None) is None:
            return
        if tuple(self.state) != tuple(self.slots):
            raise ValueError(f"This {type(self).__name__} was built with the slots {tuple(self.state)}; the new "
                             f"setting needs {tuple(self.slots)}. Make a new optimizer (and compile again) "
                             "to change momentum between 0 and non-zero, or centered.")
        if getattr(self, "_built_dtype", None) is not None:
            self._check_in_dtype(self._built_dtype)

    def apply_gradients(self, params, grads):
        """One step: update every parameter in ``params`` in place from its gradient.

        Unlike Keras, which would write inf or NaN into the weights, a step that would make
        any parameter or optimizer slot non-finite (a huge learning rate, a weight near the
        float's maximum, RMSprop's centered denominator rounding to zero...) is not applied:
        it raises FloatingPointError and leaves the parameters, every slot and
        ``iterations`` as they were. ``fit`` stops with a warning instead (see
        :meth:`apply_gradients_if_finite`).
        """
        if not self.apply_gradients_if_finite(params, grads):
            raise FloatingPointError(
                f"{type(self).__name__}.apply_gradients: the update of step {self.iterations + 1} would make a "
                "parameter or an optimizer slot inf or NaN; expected an update that keeps every value finite. "
                "Nothing was changed. Check the gradients for inf/NaN and try a smaller learning rate.")

    def apply_gradients_if_finite(self, params, grads, bounds=None, largest_gradient=None):
        """Apply one step if it keeps every value finite: True when every new parameter and
        slot value is finite and the step was applied; False, with nothing changed, otherwise.

        Save, update, check: the arrays the step writes are copied first, :meth:`update`
        then runs in place as always (so a step's numbers do not change), and if any new
        value is inf or NaN the copies are put back. A training loop that owns the arrays
        between its steps passes ``bounds`` (:class:`npnet.update_box.RunningBounds`) and
        an upper bound ``largest_gradient`` of the gradients' magnitudes: when they prove
        the step finite, it is applied without the copy and the check (the numbers are the
        same).
        """
        built_now = self.state is None
        if built_now:
            self.build(params)
        # a training loop (``bounds``) checks the memory once per call, not every step
        self._check_same_params(params, memory=bounds is None)
        # Ctrl-C waits until every parameter has its update (or its copy back): never half a step.
        with utils.interrupts_deferred():
            if bounds is not None and self._proven(params, grads, bounds, largest_gradient):
                return True
            written = list(params) + [a for arrays in self.state.values() for a in arrays]
            saved = self._saved_copies(written)
            self._count_step(self.learning_rate)
            self._update_all(params, grads)
            finite = _all_finite(written)
            if not finite:  # as if never called
                _copy_all(written, saved)
                self._step_counter[0] -= 1
                if built_now:
                    self.state = None
            if bounds is not None:
                bounds.forget()
        return finite

    def _proven(self, params, grads, bounds, largest_gradient):
        """Apply the step unchecked and return True when ``bounds`` prove it keeps every
        value finite; return False, having done nothing, otherwise."""
        rate = self.learning_rate
        if not bounds.proves(largest_gradient, rate):
            return False
        self._count_step(rate)
        self._update_all(params, grads)
        bounds.advance(largest_gradient, rate)
        return True

    def _count_step(self, rate):
        """Count the step about to be applied at learning rate ``rate``."""
        self._current_learning_rate = rate  # at the count before this step, as Keras
        self._step_counter[0] += 1

    def _update_all(self, params, grads, prepared=None):
        """:meth:`update` of every parameter, in place (``prepared``: one value per parameter
        for :meth:`update`'s keyword of that name). NumPy's overflow warnings are silenced:
        an inf or NaN here is what the caller checks for."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i, (param, grad) in enumerate(zip(params, grads)):
                slots = {slot: arrays[i] for slot, arrays in self.state.items()}
                if prepared is None:
                    self.update(param, grad, slots)
                else:
                    self.update(param, grad, slots, prepared=prepared[i])

    def _saved_copies(self, arrays, name="copies", indices=None):
        """Copies of ``arrays`` (of those at ``indices`` only, when given), in buffers kept
        from step to step under ``name``."""
        copies = [buffers[0] for buffers in self._kept_buffers(name, arrays, 1)]
        if indices is not None:
            arrays, copies = [arrays[i] for i in indices], [copies[i] for i in indices]
        _copy_all(copies, arrays)
        return copies

    def _kept_buffers(self, name, arrays, count):
        """``count`` arrays shaped like each of ``arrays``, kept from step to step under
        ``name`` (fresh arrays of this size each step cost page faults that would double the
        cost of saving, docs/performance.md)."""
        layout = [(a.shape, a.dtype) for a in arrays]
        kept = self.__dict__.setdefault("_buffers", {})
        if name not in kept or kept[name][0] != layout:
            kept[name] = (layout, [tuple(utils.aligned_empty(shape, dtype) for _ in range(count))
                                   for shape, dtype in layout])
        return kept[name][1]

    def _check_same_params(self, params, memory=True):
        """The state (and ``iterations``) belong to the parameters the optimizer was built
        for: refuse others, of other shapes or (``memory``) in other memory, such as another
        model's of the same shapes, rather than train them from this model's moments, as
        Keras refuses variables its optimizer was not built with. An optimizer without slots
        (plain SGD) keeps nothing to misalign and serves any parameters. A copy of the
        optimizer (``copy.deepcopy``) serves the parameters of its first step."""
        if not self.state:  # no slots (e.g. plain SGD): nothing can be misaligned
            return
        received = [p.shape for p in params]
        built_for = [a.shape for a in next(iter(self.state.values()))]  # one array per parameter
        if built_for != received:
            raise ValueError(
                f"This optimizer's state was built for parameters of shapes {built_for}; "
                f"received {received}. An optimizer instance serves one model: after adding "
                "layers, or for another model, compile again with a new optimizer.")
        if not memory or _same_objects(params, self.__dict__.get("_checked_params")):
            return  # an array's memory is fixed for its life: these objects passed already
        addresses = [p.ctypes.data for p in params]
        if getattr(self, "_built_for", None) is None:
            self._built_for = addresses
        elif addresses != self._built_for:
            raise ValueError(
                "This optimizer's moments were built for other parameters of the same shapes (another "
                "model's, or this model's before a layer's trainable flag changed); they belong to those. "
                "An optimizer instance serves one model: compile this one with a new optimizer "
                "(e.g. optimizer='adam' or Adam()).")
        self._checked_params = tuple(params)

    def __deepcopy__(self, memo):
        duplicate = object.__new__(type(self))
        memo[id(self)] = duplicate
        # it serves the copies of the parameters: the record of which ones it served stays here
        own = {name: value for name, value in self.__dict__.items() if name not in ("_built_for", "_checked_params")}
        duplicate.__dict__.update(copy.deepcopy(own, memo))
        duplicate._built_for = duplicate._checked_params = None
        return duplicate

    def update(self, param, grad, state):
        raise NotImplementedError

    def _learning_rate_config(self):
        schedule = self.learning_rate_schedule
        return schedules.serialize(schedule) if schedule else self._learning_rate

    def get_config(self):
        return {"learning_rate": self._learning_rate_config()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Adam(Optimizer):
    """Adam with Keras's defaults and update form (see :func:`npnet.functional.adam_update`)."""

    slots = ("m", "v")

    _keras_off = {**Optimizer._keras_off, "amsgrad": (False, "npnet's Adam has no AMSGrad variant")}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **keras_settings):
        super().__init__(learning_rate, name, **keras_settings)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    _checked = {"beta_1": _check_fraction, "beta_2": _check_fraction, "epsilon": _positive}

    def _float_hyperparameters(self):
        return {**super()._float_hyperparameters(), "epsilon": self.epsilon}

    def _below_one(self):
        # at 1, Adam's bias correction 1 - β^t is 0: a step of m / 0 (β1) or of 0 (β2)
        return {"beta_1": self.beta_1, "beta_2": self.beta_2}

    def update(self, param, grad, state):
        F.adam_update(param, grad, state["m"], state["v"], self.iterations,
                      self._current_learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        return {"learning_rate": self._learning_rate_config(), "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, Keras's defaults and
    form (see :func:`npnet.functional.sgd_update`). Keeps a ``momentum`` slot only when
    ``momentum > 0``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **keras_settings):
        super().__init__(learning_rate, name, **keras_settings)
        self.momentum, self.nesterov = momentum, bool(nesterov)

    _checked = {"momentum": functools.partial(_check_fraction, upper_inclusive=True),
                "nesterov": _flag}

    @property
    def slots(self):
        return ("momentum",) if self.momentum != 0 else ()

    def update(self, param, grad, state):
        F.sgd_update(param, grad, state.get("momentum"), self._current_learning_rate, self.momentum,
                     self.nesterov)

    def get_config(self):
        return {"learning_rate": self._learning_rate_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop with Keras's defaults and form (see :func:`npnet.functional.rmsprop_update`).

    Slots: ``velocity`` (running mean of g²), plus ``momentum`` when ``momentum > 0`` and
    ``average_gradient`` when ``centered``.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name=None,
                 **keras_settings):
        super().__init__(learning_rate, name, **keras_settings)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, bool(centered)

    _checked = {"rho": _check_fraction, "momentum": _check_fraction, "epsilon": _positive,
                "centered": _flag}

    @property
    def slots(self):
        return (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                + (("average_gradient",) if self.centered else ()))

    def update(self, param, grad, state, prepared=None):
        """``prepared``: this step's denominator, when the running means are updated already."""
        F.rmsprop_update(param, grad, state["velocity"], self._current_learning_rate, self.rho, self.epsilon,
                         momentum_buffer=state.get("momentum"), momentum=self.momentum,
                         average_grad=state.get("average_gradient"), denominator=prepared)

    def _proven(self, params, grads, bounds, largest_gradient):
        """Centered, the bounds cannot vouch for the denominator ``v' - ḡ'² + ε``, which
        rounding can take to 0 or below. So the running means are updated first and the step
        is taken only when every denominator is at least the smallest normal float (then
        ``lr·|g| / sqrt(denominator)`` is within the bounds' step limit, see
        :func:`npnet.update_box.box`); otherwise the running means are put back and nothing
        has changed. Only the means at risk are saved first: those of a parameter whose last
        step left them with :func:`npnet.update_box.centered_margin` have every next
        denominator at least tiny (:meth:`npnet.update_box.RunningBounds.margins_kept`)."""
        if not self.centered:
            return super()._proven(params, grads, bounds, largest_gradient)
        rate = self.learning_rate
        if not bounds.proves(largest_gradient, rate):
            return False
        kept = bounds.margins_kept(self.state["velocity"])
        at_risk = [i for i, margin in enumerate(kept) if not margin]
        new = {}
        if at_risk:  # these first: a refused step has written no others
            means = self.state["velocity"] + self.state["average_gradient"]
            risky = at_risk + [len(params) + i for i in at_risk]  # their v and ḡ
            saved = self._saved_copies(means, "running means", risky)
            new = self._new_means(grads, at_risk)
            tiny = float(np.finfo(params[0].dtype).tiny)
            if not all(least >= tiny for _, least in new.values()):  # NaN fails too
                _copy_all([means[j] for j in risky], saved)
                return False
        if len(at_risk) < len(params):
            new.update(self._new_means(grads, [i for i, margin in enumerate(kept) if margin]))
        denominators, smallest = [new[i][0] for i in range(len(params))], [new[i][1] for i in range(len(params))]
        self._count_step(rate)
        self._update_all(params, grads, prepared=denominators)
        bounds.advance(largest_gradient, rate, smallest_denominator=min(smallest, default=math.inf))
        bounds.note_denominators(smallest)
        return True

    def _new_means(self, grads, indices):
        """Write the new running means of the parameters at ``indices`` (centered); return
        ``{index: (denominators, smallest denominator)}`` of their step, the denominators in
        buffers kept from step to step."""
        velocities, averages = self.state["velocity"], self.state["average_gradient"]
        buffers = [kept[0] for kept in self._kept_buffers("denominators", grads, 1)]
        new = {}
        with np.errstate(over="ignore", invalid="ignore"):
            for i in indices:
                denominator = F.rmsprop_moments(grads[i], velocities[i], self.rho, self.epsilon, averages[i],
                                                out=(velocities[i], averages[i], buffers[i]))[2]
                new[i] = denominator, _smallest(denominator)
        return new

    def _float_hyperparameters(self):
        return {**super()._float_hyperparameters(), "epsilon": self.epsilon}

    def get_config(self):
        return {"learning_rate": self._learning_rate_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


def _all_finite(arrays):
    """True when no entry of any array is inf or NaN."""
    return all(np.isfinite(a).all() for a in arrays)


def _smallest(array):
    """The smallest entry of ``array`` as a Python float (inf for none, NaN if any is NaN)."""
    return float(array.min()) if array.size else math.inf


def _same_objects(arrays, others):
    """Whether ``arrays`` are exactly the objects of ``others`` (None: no), in order."""
    return others is not None and len(arrays) == len(others) and all(a is b for a, b in zip(arrays, others))


def _copy_all(targets, sources):
    """Copy each source array into its target, in place."""
    for target, source in zip(targets, sources):
        np.copyto(target, source)


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
    """The optimizer saved as ``(class name, get_config())``; a schedule comes back as one."""
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if class_name not in classes:
        raise ValueError(f"unknown optimizer class {class_name!r}; expected one of {', '.join(sorted(classes))}")
    config_ = dict(config_)
    accepted = set(inspect.signature(classes[class_name]).parameters) - {"keras_settings"}
    unknown = sorted(set(config_) - accepted)
    if unknown:
        raise ValueError(f"{class_name} has no setting {', '.join(map(repr, unknown))}; expected some of "
                         f"{', '.join(sorted(accepted))}")
    if isinstance(config_.get("learning_rate"), dict):
        config_["learning_rate"] = schedules.deserialize(config_["learning_rate"])
    return classes[class_name](**config_)


#: Hyperparameters that must be strictly positive (the others are checked by their own range).
_POSITIVE = ("learning_rate", "epsilon")
_INT64_MAX = int(np.iinfo(np.int64).max)


def check_hyperparameter(name, value, dtype=None, positive=False, flushed=False, zero=False):
    """``value`` as a float after checking it is a real number (a NumPy scalar or 0-d array
    too), finite in ``dtype`` (default: floatx, the type the update computes in) and, with
    ``positive``, above 0 in that type (with ``flushed``, at least its smallest normal number:
    training flushes smaller ones to 0, as TensorFlow's CPU kernels do), or exactly 0 with
    ``zero``. The error names the argument and says what was received."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if value is None or isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; received {name}={value!r}")
    dtype = np.dtype(dtype or config.floatx())
    with np.errstate(over="ignore"):
        in_dtype = dtype.type(value)
    if not np.isfinite(in_dtype):
        raise ValueError(f"{name} must be finite in {dtype}, the type the update computes in; "
                         f"received {name}={value!r}, which is {in_dtype} in {dtype}")
    # compared as Python floats: under the flushing float mode a float32 denormal reads as 0
    tiny = float(np.finfo(dtype).tiny) if flushed and dtype.kind == "f" else 0.0
    if positive and not (in_dtype > 0 and value >= tiny) and not (zero and value == 0):
        what = "a number >= 0" if zero else "positive"
        detail = ""
        if 0 < value < tiny:
            detail = f" (below {dtype}'s smallest normal number, {tiny:g}, which training flushes to 0)"
        elif value > 0:
            detail = f" (0 in {dtype})"
        raise ValueError(f"{name} must be {what}; received {value!r}{detail}")
    return float(value)


def check_below_one(name, value, dtype):
    """Refuse a decay rate that is below 1 as a Python float but rounds to 1 in ``dtype``."""
    dtype = np.dtype(dtype)
    if not dtype.type(value) < 1:
        raise ValueError(f"{name} must be below 1 in {dtype}, the type the update computes in; "
                         f"received {name}={value!r}, which is {dtype.type(value)} in {dtype}")


#: Keras optimizers npnet lacks.
_KERAS_NAMES = dict.fromkeys(
    ("AdamW", "Adamax", "Nadam", "Adagrad", "Adadelta", "Adafactor", "Ftrl", "Lion", "Lamb", "Muon",
     "LossScaleOptimizer"),
    "not available in npnet. Its optimizers are Adam, SGD (with momentum and nesterov) and RMSprop "
    "(as strings: 'adam', 'sgd', 'rmsprop'); the nearest to AdamW's weight decay is an L2 penalty "
    "in the loss, Dense(..., kernel_regularizer='l2')")


def __getattr__(name):
    raise utils.missing_name(__name__, name, _KERAS_NAMES)
