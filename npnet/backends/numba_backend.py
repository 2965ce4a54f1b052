"""The fast backend: the whole training step in compiled numba kernels (``npnet/kernels``).

What it runs: a first ``Normalization`` layer; ``Dense`` layers with any npnet activation,
with or without a bias, frozen or trainable, with L1, L2 and L1L2 weight penalties;
``Dropout`` before any of them; ``Flatten`` anywhere (the identity on rows); ``ReLU`` (with
any of its options), ``LeakyReLU``, ``Softmax`` and ``Activation`` layers right after a
linear ``Dense``, which they become the activation of; the sparse, one-hot and
binary cross-entropies (from probabilities or logits, with label smoothing), mean squared and
absolute error, Huber, and Keras's other losses of targets shaped like the output (mean
absolute percentage and squared logarithmic error, log-cosh, KL divergence, Poisson, hinge,
squared and categorical hinge, cosine similarity); fit's sample and class weights; every metric (the kernels count the
argmax accuracies and hand each batch's outputs to the others); SGD (momentum, Nesterov),
RMSprop (momentum, centered) and Adam, with a learning-rate schedule or not (one step per
kernel call with one); float32 or float64 weights.
:func:`unsupported_reason` names whatever else a model holds, including any setting it does
not know by name; ``backend='numba'`` then refuses at ``compile`` and the automatic choice
uses the NumPy backend. A kernel never computes something different from the NumPy backend:
Dropout's masks are drawn here, in Python, by the Dropout layer's own generator calls, batch
by batch and layer by layer as the NumPy forward pass draws them, and handed to the kernels.

How: one call of :func:`npnet.kernels.dense.train_batches` runs ``steps_per_execution``
whole training steps (gather the batch, forward, loss, backward, the finiteness checks of the
gradients and of the update, the optimizer's update), writing into preallocated buffers sized
for the largest batch. What a model does not use travels as None and is not compiled (see
:mod:`npnet.kernels.dense`).
Evaluation is one call per batch, prediction one call for the whole array. Training and
evaluation keep the BLAS that numba calls on one thread; prediction leaves it free. Why these
choices, with the measurements behind them: ``docs/performance.md``.

The work buffers are shared by the calls on one model, so training and evaluation are
serialised by a lock; prediction binds the weights under it and computes in buffers of its
own. Two threads evaluating or predicting with one model get the results of serial calls.
"""

import inspect
import threading
import time
from collections import namedtuple

import numpy as np

from .. import activations, config, functional, heads, regularizers, update_box
from ..layers import Activation, Dense, Dropout, Flatten, LeakyReLU, Normalization, ReLU, Softmax
from ..losses import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge, CosineSimilarity, Hinge, Huber,
                      KLDivergence, LogCosh, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError,
                      MeanSquaredLogarithmicError, Poisson, SparseCategoricalCrossentropy, SquaredHinge)
from ..optimizers import SGD, Adam, RMSprop
from . import base
from ._threads import SingleThreadedBlas

try:
    from ..kernels import dense as K
    _IMPORT_ERROR = None
except ImportError as error:  # numba missing or broken: reported at compile, not at import
    K = None
    _IMPORT_ERROR = error

#: The activations the kernels compute, by name (``npnet.kernels.dense.ACTIVATION_CODES``).
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "softplus", "softsign",
               "silu", "leaky_relu", "exponential", "hard_sigmoid")
#: Activation layers that become the activation of the linear Dense layer before them.
_ACTIVATION_LAYERS = (ReLU, LeakyReLU, Softmax, Activation)
#: Keras's other losses of targets shaped like the output, by their code in the kernels'
#: ``OtherLoss`` (a type of its own, so that only a model using one compiles them).
_OTHER_LOSSES = {MeanAbsolutePercentageError: "MEAN_ABSOLUTE_PERCENTAGE_ERROR",
                 MeanSquaredLogarithmicError: "MEAN_SQUARED_LOGARITHMIC_ERROR", LogCosh: "LOG_COSH",
                 KLDivergence: "KL_DIVERGENCE", Poisson: "POISSON", Hinge: "HINGE", SquaredHinge: "SQUARED_HINGE",
                 CategoricalHinge: "CATEGORICAL_HINGE", CosineSimilarity: "COSINE_SIMILARITY"}
LOSSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError,
          MeanAbsoluteError, Huber) + tuple(_OTHER_LOSSES)
OPTIMIZERS = (Adam, SGD, RMSprop)
DTYPES = ("float32", "float64")

_ANY = object()  # in a settings table: any value is fine
#: Per class, the ``get_config()`` keys the kernels know: ``_ANY`` where they handle every
#: value, else the one value (Keras's default) they compute. Anything else is refused.
_COMMON_OPTIMIZER = {"learning_rate": _ANY, "name": _ANY, "weight_decay": None, "clipnorm": None,
                     "clipvalue": None, "global_clipnorm": None, "use_ema": False, "ema_momentum": _ANY,
                     "ema_overwrite_frequency": None, "loss_scale_factor": None,
                     "gradient_accumulation_steps": None}
_SETTINGS = {
    Flatten: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "data_format": None},
    Dropout: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "rate": _ANY, "seed": _ANY,
              "noise_shape": None},
    ReLU: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "max_value": _ANY, "negative_slope": _ANY,
           "threshold": _ANY},
    LeakyReLU: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "negative_slope": _ANY},
    Softmax: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "axis": -1},
    Activation: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "activation": _ANY},
    Normalization: {"name": _ANY, "input_shape": _ANY, "axis": _ANY, "invert": _ANY, "mean": _ANY,
                    "variance": _ANY},
    Dense: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "units": _ANY, "activation": _ANY,
            "kernel_initializer": _ANY, "bias_initializer": _ANY, "kernel_regularizer": _ANY,
            "bias_regularizer": _ANY, "use_bias": _ANY, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, "lora_rank": None},
    SparseCategoricalCrossentropy: {"from_logits": _ANY, "name": _ANY, "ignore_class": None, "axis": -1,
                                    "reduction": "sum_over_batch_size"},
    CategoricalCrossentropy: {"from_logits": _ANY, "name": _ANY, "label_smoothing": _ANY, "axis": -1,
                              "reduction": "sum_over_batch_size"},
    BinaryCrossentropy: {"from_logits": _ANY, "name": _ANY, "label_smoothing": _ANY,
                         "reduction": "sum_over_batch_size"},
    MeanSquaredError: {"name": _ANY, "reduction": "sum_over_batch_size"},
    MeanAbsoluteError: {"name": _ANY, "reduction": "sum_over_batch_size"},
    Huber: {"name": _ANY, "reduction": "sum_over_batch_size", "delta": _ANY},
    **{cls: {"name": _ANY, "reduction": "sum_over_batch_size"} for cls in _OTHER_LOSSES},
    CosineSimilarity: {"name": _ANY, "reduction": "sum_over_batch_size", "axis": -1},
    Adam: {**_COMMON_OPTIMIZER, "beta_1": _ANY, "beta_2": _ANY, "epsilon": _ANY, "amsgrad": False},
    SGD: {**_COMMON_OPTIMIZER, "momentum": _ANY, "nesterov": _ANY},
    RMSprop: {**_COMMON_OPTIMIZER, "rho": _ANY, "momentum": _ANY, "epsilon": _ANY, "centered": _ANY},
}

#: rows per block in predict: large enough for BLAS to be efficient (and use its threads)
PREDICT_BLOCK = 1024
#: at most this many bytes of Dropout masks per kernel call (longer calls are split)
MASK_BYTES = 1 << 24

_single_threaded_blas = SingleThreadedBlas(linked_by="scipy")

#: The automatic choice considers threads only for models whose tiled products hold at least
#: this many multiply-adds per step (batch × inputs × units): the tutorial's 3.2 million at
#: batch 32 never gain from them on a 2-core machine (docs/performance.md).
AUTO_THREADS_MIN_WORK = 10_000_000


def _tiled_work(net, batch_size):
    """Multiply-adds per step in the products the register tiles compute."""
    return sum(batch_size * k.shape[0] * k.shape[1] for k in net.kernels
               if k.shape[1] % (K.TILE_VECTORS * K.VECTOR_BYTES // k.itemsize) == 0)


class AdaptiveThreads:
    """The automatic thread count of one model: measured, not guessed.

    Results are the same bit for bit on one thread or several, so the choice is free to
    follow the machine: whether a helper thread pays depends on the size of each step and on
    what else the CPUs are running, which changes while a model trains. For a model with
    enough work per step (:data:`AUTO_THREADS_MIN_WORK`), calls alternate between one thread
    and all of numba's until each has been timed ``TRIALS`` times (the first call of each is
    not timed: it may compile), then the faster per step is used, and the other is tried
    again after ``RETRY_EVERY`` calls, twice as long a wait each time it loses again. A trial call runs at most ``TRIAL_STEPS`` steps, so a
    choice that turns out slow costs little. Below that work, one thread, always.
    """

    TRIALS = 2
    RETRY_EVERY = 16
    TRIAL_STEPS = 4

    def __init__(self):
        self.seconds = {}  # thread count -> list of seconds per step
        self.calls = 0
        self.trying = False  # whether the last choice was a trial (the call runs TRIAL_STEPS)
        self.retry_every = self.RETRY_EVERY
        self.last_retry = 0

    def choose(self, net, batch_size, explore=True):
        """The Workspace's ``threads`` for the next call: None (one thread) or a count;
        ``explore=False`` (evaluation) takes the best so far without trying the other."""
        import numba
        wanted = config.num_threads()
        self.trying = False
        if wanted is None:
            many = numba.config.NUMBA_NUM_THREADS
            if many <= 1 or _tiled_work(net, batch_size) < AUTO_THREADS_MIN_WORK:
                return None
            wanted = self._explore_or_exploit((1, many)) if explore else self._best((1, many))
        count = min(wanted, numba.config.NUMBA_NUM_THREADS)
        return None if count <= 1 else count

    def _explore_or_exploit(self, options):
        self.calls += 1
        self.trying = True
        untried = [n for n in options if len(self.seconds.get(n, ())) <= self.TRIALS]
        if untried:
            return untried[self.calls % len(untried)]
        best = self._best(options)
        if self.calls - self.last_retry >= self.retry_every:
            self.last_retry = self.calls
            self.retried_against = best
            return next(n for n in options if n != best)
        self.trying = False
        return best

    def _best(self, options):
        timed = [n for n in options if len(self.seconds.get(n, ())) > self.TRIALS]
        if len(timed) < len(options):
            return 1
        return min(options, key=lambda n: min(self.seconds[n][-self.TRIALS:]))

    def record(self, threads, seconds, steps):
        """Note that a call with ``threads`` (the Workspace's) took ``seconds`` for ``steps``."""
        if steps > 0:
            self.seconds.setdefault(threads or 1, []).append(seconds / steps)
            del self.seconds[threads or 1][:-8]
        if self.trying and self.last_retry == self.calls:  # a retry: back off if it lost again
            lost = self._best(tuple(self.seconds)) == self.retried_against
            self.retry_every = self.retry_every * 2 if lost else self.RETRY_EVERY


class _numba_threads:
    """Context manager: numba's thread count for this thread set to ``count`` (None: unchanged)."""

    def __init__(self, count):
        self.count = count

    def __enter__(self):
        if self.count is not None:
            import numba
            self.saved = numba.get_num_threads()
            numba.set_num_threads(self.count)

    def __exit__(self, *exc):
        if self.count is not None:
            import numba
            numba.set_num_threads(self.saved)


#: What the kernels run, read from the layers: the Dense layers, their activations as
#: ``(code, parameter)`` pairs (:func:`_activation`), per Dense layer the Dropout layer on
#: its input (or None), and a first Normalization layer (or None).
Plan = namedtuple("Plan", ["dense", "codes", "dropouts", "normalization"])

#: The option of an activation that has one, at the default ``Dense`` and ``Activation`` call
#: it with: ``functional.leaky_relu_forward``'s slope and ``functional.elu_forward``'s alpha.
_DEFAULT_PARAMETER = {name: inspect.signature(function).parameters[option].default
                      for name, function, option in (("leaky_relu", functional.leaky_relu_forward, "negative_slope"),
                                                     ("elu", functional.elu_forward, "alpha"))}


def require_numba():
    """Raise a clear ImportError when numba (or SciPy, whose BLAS it uses) is unavailable."""
    problem = _IMPORT_ERROR
    if problem is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls this BLAS)
        except ImportError as error:
            problem = error
    if problem is not None:
        raise ImportError(
            "backend='numba' requires the numba package, and SciPy (numba uses SciPy's BLAS for "
            f"matrix products), but importing them failed: {problem}. Install them with "
            "`pip install numba scipy`, or use the pure-NumPy backend: "
            "model.compile(..., backend='numpy') or the environment variable NPNET_BACKEND=numpy."
        ) from problem


def unsupported_reason(layers, loss=None, optimizer=None):
    """Why the kernels cannot run these parts, or None when they can."""
    return plan(layers)[1] or _loss_reason(loss) or _optimizer_reason(optimizer)


def _unknown_setting(obj):
    """The first setting of ``obj`` the kernels do not compute, as text, or None."""
    known = _SETTINGS[type(obj)]
    for key, value in obj.get_config().items():
        if key not in known or (known[key] is not _ANY and value != known[key]):
            name = getattr(obj, "name", None)
            return f"the setting {key}={value!r} of {type(obj).__name__}" + (f" {name!r}" if name else "")
    return None


def plan(layers):
    """``(Plan, None)`` for layers the kernels run, else ``(None, why not)``."""
    dense, codes, dropouts, folded = [], [], [None], False
    for index, layer in enumerate(layers):
        kind = type(layer)
        if kind not in _SETTINGS:
            return None, f"the layer {layer.name!r} of class {kind.__name__} at position {index}"
        reason = _unknown_setting(layer)
        if reason is None and kind is Dense:
            reason = _dense_reason(layer)
            dense.append(layer)
            codes.append(_activation(layer.activation.name))
            dropouts.append(None)
            folded = False
        elif reason is None and kind is Normalization and index > 0:
            reason = f"the Normalization layer {layer.name!r} at position {index} (only a first one is run)"
        elif reason is None and kind is Dropout and layer.rate > 0:  # rate 0 draws nothing
            if dropouts[-1] is not None:
                reason = f"two Dropout layers in a row ({dropouts[-1].name!r} and {layer.name!r})"
            dropouts[-1] = layer
        elif reason is None and kind in _ACTIVATION_LAYERS:
            reason = _layer_activation_reason(layer, index)
            if reason is None and (not dense or folded or dropouts[-1] is not None
                                   or dense[-1].activation is not activations.linear):
                reason = (f"the {kind.__name__} layer {layer.name!r} at position {index}, which is not "
                          "right after a Dense layer without activation")
            elif reason is None:
                codes[-1], folded = _layer_activation(layer), True
        if reason is not None:
            return None, reason
    if not dense:
        return None, "a model without a Dense layer"
    if dropouts[-1] is not None:
        return None, f"a Dropout layer ({dropouts[-1].name!r}) after the last Dense layer"
    normalization = layers[0] if type(layers[0]) is Normalization else None
    dtype = _dtype(dense)
    if dtype is None:
        return None, f"Dense layers of different dtypes ({sorted({str(d.kernel.dtype) for d in dense if d.built})})"
    if normalization is not None and normalization.built and normalization.mean.dtype != dtype:
        return None, f"a Normalization layer of {normalization.mean.dtype} before Dense layers of {dtype}"
    return Plan(dense, codes, dropouts[:-1], normalization), None


def _activation(name, parameter=None):
    """``(code, parameter)`` of the activation ``name``: its kernel code and its option (the
    default one unless given; 0.0 for an activation without options)."""
    if parameter is None:
        parameter = _DEFAULT_PARAMETER.get(name, 0.0)
    return (K.ACTIVATION_CODES.get(name) if K else None), float(parameter)


def _layer_activation_reason(layer, index):
    """Why an activation layer cannot become its Dense layer's activation, or None."""
    if type(layer) is Activation:
        name = layer.activation.name
        if name not in ACTIVATIONS or layer.activation is not getattr(activations, name, None):
            return f"the activation {name!r} of layer {layer.name!r} (a custom Activation)"
    return None


def _layer_activation(layer):
    """``(code, parameter)`` of an activation layer, computed as its ``forward`` computes it:
    a ReLU with a negative slope alone is ``functional.leaky_relu_forward`` with that slope,
    one with a max_value or a threshold ``functional.relu_forward_general`` (its own row)."""
    kind = type(layer)
    if kind is Softmax:
        return _activation("softmax")
    if kind is Activation:
        return _activation(layer.activation.name)
    if kind is ReLU and (layer.max_value is not None or layer.threshold):
        return _general_relu(layer)
    if kind is LeakyReLU or layer.negative_slope:
        return _activation("leaky_relu", layer.negative_slope)
    return _activation("relu")


def _general_relu(layer):
    """The activation row of a ReLU layer with a max_value or a threshold
    (``npnet.kernels.dense.RELU_GENERAL``): relu6 (max 6, no threshold) ends its slope 1 at
    z < 6, any other max_value at z <= max_value, as ``functional.relu_backward_general``."""
    if layer.max_value is None:
        cap = K.RELU_NO_CAP
    else:
        cap = K.RELU6_CAP if layer.max_value == 6 and not layer.threshold else K.RELU_CAP
    return (K.RELU_GENERAL, float(layer.negative_slope), float(layer.threshold),
            float(layer.max_value or 0.0), cap)


def activation_codes(codes):
    """The kernels' ``Network.codes`` for a plan's ``(code, parameter, ...)`` rows: int64 codes
    when every activation is one of the common five, else float64 activation rows, padded
    with zeros to the longest (2 numbers, 5 with a ``RELU_GENERAL``), for which alone numba
    compiles the others (``npnet.kernels.dense.FIRST_OTHER_CODE``)."""
    if all(row[0] < K.FIRST_OTHER_CODE for row in codes):
        return np.array([row[0] for row in codes], dtype=np.int64)
    width = max(len(row) for row in codes)
    return np.array([tuple(row) + (0.0,) * (width - len(row)) for row in codes], dtype=np.float64)


def _dtype(dense):
    """The one float type of the Dense layers' weights (floatx while unbuilt), or None if mixed."""
    from .. import config
    dtypes = {str(layer.kernel.dtype) if layer.built else config.floatx() for layer in dense}
    return np.dtype(dtypes.pop()) if len(dtypes) == 1 else None


def _dense_reason(layer):
    name = layer.activation.name
    if name not in ACTIVATIONS or layer.activation is not getattr(activations, name, None):
        custom = " (a custom Activation)" if name in ACTIVATIONS else ""
        return f"the activation {name!r} of layer {layer.name!r}{custom}"
    expected = ["kernel", "bias"] if layer.use_bias else ["kernel"]
    if layer.built and (list(layer.params) != expected or layer.kernel.dtype.name not in DTYPES):
        return f"the weights of Dense layer {layer.name!r} ({', '.join(layer.params)} of {layer.kernel.dtype})"
    for weight, regularizer in layer.weight_regularizers().items():
        if weight not in ("kernel", "bias") or type(regularizer) not in _PENALTY_SETTINGS \
                or set(regularizer.get_config()) != _PENALTY_SETTINGS[type(regularizer)]:
            return f"the {weight}_regularizer {regularizer!r} of Dense layer {layer.name!r}"
    return None


def _loss_reason(loss):
    if loss is None:
        return None
    if type(loss) not in LOSSES:
        return f"the loss {getattr(loss, 'name', type(loss).__name__)!r}"
    return _unknown_setting(loss)


def _optimizer_reason(optimizer):
    if optimizer is None:
        return None
    if type(optimizer) not in OPTIMIZERS:
        return f"the optimizer {type(optimizer).__name__}"
    rate = optimizer.learning_rate  # a schedule's at the current step: a number too
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        return f"the learning_rate {rate!r} of {type(optimizer).__name__} (only a number is supported)"
    return _unknown_setting(optimizer)


def _placeholder(ndim, dtype):
    """A zero-size array standing in a tuple for a layer that has no such array."""
    return np.empty((0,) * ndim, dtype=dtype)


class NumbaBackend(base.Trainer):
    """Runs training, evaluation and prediction of a covered model in numba kernels."""

    name = "numba"

    def __init__(self, layers, loss=None, optimizer=None, accuracy=None):
        require_numba()
        reason = unsupported_reason(layers, loss, optimizer)
        if reason is not None:
            raise NotImplementedError(f"backend='numba' does not support {reason}. Use "
                                      "backend='numpy', or leave backend unset to choose automatically.")
        super().__init__(layers, loss, optimizer, accuracy)
        self._lock = threading.Lock()
        self._threads = AdaptiveThreads()
        self._net_key = self._state_key = self._box_key = None
        self._identity_order = None  # see _in_order
        self._net = self._plan = self._optimizer_state = self._work = self._dropped = self._penalties = None
        self._capacity = 0

    # -- binding the parts' arrays to kernel arguments -------------------------------------

    @property
    def takes_target_rows(self):
        """Whether the loss takes target rows shaped like the output (one-hot, binary or
        regression targets) rather than class labels."""
        return self.loss is not None and self.loss.label_kind in ("categorical", "binary", "regression")

    def _loss_code(self):
        if self.head == heads.SOFTMAX_CROSSENTROPY:
            return K.SOFTMAX_CROSSENTROPY
        if type(self.loss) in _TARGET_LOSSES:
            return _loss_row(self.loss, self.head)
        if type(self.loss) in _OTHER_LOSSES:
            return K.OtherLoss(getattr(K, _OTHER_LOSSES[type(self.loss)]))
        return K.CROSSENTROPY_OF_LOGITS if self.loss is not None and self.loss.from_logits \
            else K.CROSSENTROPY_OF_PROBABILITIES

    def _layers_key(self):
        """What the bound Network depends on: every layer, its weights, activation, penalties
        and whether it is trainable (checked on each call, so a change is seen as by NumPy)."""
        # read from each layer's __dict__: a failed attribute lookup costs an AttributeError
        return tuple((id(layer), layer.trainable, id(vars(layer).get("activation")),
                      vars(layer).get("negative_slope"), vars(layer).get("max_value"), vars(layer).get("threshold"),
                      tuple(id(p) for p in layer.params.values()),
                      tuple((n, id(r)) for n, r in layer.weight_regularizers().items()))
                     for layer in self.layers)

    def _bind_network(self):
        """The :class:`~npnet.kernels.dense.Network` of the layers' own arrays (updated in place)."""
        key = self._layers_key()
        if key != self._net_key:
            plan_, reason = plan(self.layers)
            if reason is not None:
                raise NotImplementedError(f"backend='numba' does not support {reason}")
            dense = plan_.dense
            dtype = dense[0].kernel.dtype
            trainable = np.array([(K.TRAINED if layer.use_bias else K.KERNEL_ONLY) if layer.trainable else 0
                                  for layer in dense], dtype=np.int64)
            first = int(np.flatnonzero(trainable)[0]) if trainable.any() else len(dense)
            # Plain ndarray views of the weights' storage: the kernels write the Variables'
            # memory, and numba types and dispatches on exact ndarrays as it always did.
            self._net = K.Network(tuple(np.asarray(d.kernel) for d in dense), tuple(_bias_of(d) for d in dense),
                                  activation_codes(plan_.codes), self._loss_code(), trainable, first,
                                  K.constants(dtype), True if any(d.units == 1 for d in dense) else None)
            self._penalties = _penalties(dense, dtype)
            self._plan, self._net_key, self._capacity = plan_, key, 0
        return self._net

    def _bind_optimizer(self):
        """``(adam, sgd, rmsprop)``: the kernels' state of the optimizer's family, made of the
        optimizer's own arrays, and None for the other two."""
        optimizer, dense = self.optimizer, self._plan.dense
        weights = [p for layer in dense if layer.trainable for p in layer.params.values()]
        if optimizer.state is None:
            optimizer.build(weights)
        optimizer._check_same_params(weights)
        key = (self._net_key, tuple(id(a) for arrays in optimizer.state.values() for a in arrays))
        if key != self._state_key:
            self._optimizer_state, self._state_key = _optimizer_state(optimizer, dense), key
        dtype = dense[0].kernel.dtype
        hyper = _hyperparameters(optimizer, dtype)
        # the box depends on nothing but these (its numbers are read as the kernels read them)
        box_key = (type(optimizer), getattr(optimizer, "centered", False), dtype, hyper.tobytes())
        if box_key != self._box_key:
            self._box, self._box_key = update_box.box(optimizer, dtype), box_key
        state = self._optimizer_state._replace(hyper=hyper, box=self._box)
        return tuple(state if type(optimizer) is family else None for family in OPTIMIZERS)

    def _bind_work(self, capacity):
        """Work buffers for batches of up to ``capacity`` rows (grown, never shrunk)."""
        net = self._net
        if capacity > self._capacity:
            dtype = net.kernels[0].dtype
            units = [k.shape[1] for k in net.kernels]
            buffers = [tuple(_aligned((capacity, u), dtype) for u in units) for _ in range(3)]
            targets = _aligned((capacity, units[-1]), dtype) if self.takes_target_rows else None
            self._work = K.Workspace(_aligned((capacity, net.kernels[0].shape[0]), dtype),
                                     np.empty(capacity, dtype=np.int64), targets, *buffers,
                                     tuple(_aligned(k.shape, dtype) for k in net.kernels),
                                     tuple(np.zeros_like(b) for b in net.biases))
            self._dropped = tuple(_aligned((capacity, k.shape[0]), dtype) if d is not None
                                  else _placeholder(2, dtype) for d, k in zip(self._plan.dropouts, net.kernels))
            self._capacity = capacity
        return self._work

    # -- the backend interface -------------------------------------------------------------

    def train_steps(self, x, y, order, batch_size, first_step, n_steps, keep_outputs=False, sample_weight=None):
        """As :meth:`base.Trainer.train_steps`; with ``keep_outputs`` the kernels also copy each
        batch's output rows out (a variant compiled only for models whose metrics need them);
        ``sample_weight`` (n_samples,) weighs each sample's loss and gradient as the NumPy
        backend does (Keras's ``Σ w_i l_i / n``). Neither is compiled for a model not using it."""
        self.require_training_parts()
        losses, corrects = np.empty(n_steps), np.empty(n_steps, dtype=np.int64)
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            x = _as_rows(x, net)
            # the samples this call's steps read: only their order and labels are checked,
            # so a call of one step costs no pass over the whole data set
            rows = slice(first_step * batch_size, (first_step + n_steps) * batch_size)
            order = self._in_order(x.shape[0]) if order is None else _as_order(order, x.shape[0], rows)
            labels, targets = self._as_labels(y, net, x.shape[0], order[rows])
            optimizer, work = self._bind_optimizer(), self._bind_work(min(batch_size, x.shape[0]))
            kept = _kept_outputs(net, n_steps, work) if keep_outputs else None
            weighting = None if sample_weight is None else _sample_weights(sample_weight, net, x.shape[0], work)
            smoothing = _smoothing(self.loss, y, net)
            done, applied, scheduled = 0, True, self.optimizer.learning_rate_schedule is not None
            while done < n_steps and applied:
                count = min(n_steps - done, self._steps_per_mask_draw(work))
                threads = self._threads.choose(net, min(batch_size, x.shape[0]))
                if self._threads.trying:
                    count = min(count, AdaptiveThreads.TRIAL_STEPS)
                work = work._replace(threads=threads)
                if scheduled:  # the kernels read one rate per call: one step at the schedule's rate
                    count, rate, optimizer = 1, self.optimizer.learning_rate, self._bind_optimizer()
                dropout = self._draw_dropout(x.shape[0], batch_size, first_step + done, count, work)
                started = time.perf_counter()
                with _numba_threads(threads):
                    n, applied = K.train_batches(x, labels, targets, order, batch_size, first_step + done, count,
                                                 net, self._penalties, dropout, *optimizer,
                                                 self.optimizer.step_counter(), work, losses[done:],
                                                 corrects[done:], None if kept is None else kept[done:], weighting,
                                                 smoothing, _input_scaling(self._plan.normalization, net))
                self._threads.record(threads, time.perf_counter() - started, n)
                done += n
                if scheduled and applied:  # as Optimizer.apply_gradients records it
                    self.optimizer._current_learning_rate = rate
        outputs = None if kept is None else _batch_outputs(kept[:done], x.shape[0], batch_size, first_step)
        return base.Steps(losses[:done], corrects[:done], bool(applied), outputs)

    def test_batch(self, x, y, sample_weight=None):
        """As :meth:`base.Trainer.test_batch`; the weights in the model's dtype, as training casts them."""
        self.require_training_parts()
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            x = _normalized(self._plan.normalization, x)
            x, (labels, targets) = _as_rows(x, net), self._as_labels(y, net, x.shape[0])
            if targets is not None:
                labels = np.ascontiguousarray(targets.argmax(axis=1), dtype=np.int64)
            work = self._bind_work(x.shape[0])
            work = work._replace(threads=self._threads.choose(net, x.shape[0], explore=False))
            with _numba_threads(work.threads):
                weights = None if sample_weight is None else _sample_weights(sample_weight, net, x.shape[0], work).all
                loss, correct = K.evaluate_batch(x, labels, targets, net, self._penalties, work,
                                                 _smoothing(self.loss, y, net), weights)
        return float(loss), int(correct)

    def predict(self, x, batch_size):
        """The output layer's activations, in blocks of ``max(batch_size, PREDICT_BLOCK)``
        rows with BLAS free to use its threads. A row's result can differ in the last bits
        with the block it falls in, as the NumPy backend's do."""
        with self._lock:
            net, normalization = self._bind_network(), self._plan.normalization
        x = _as_rows(_normalized(normalization, x), net)
        dtype = net.kernels[0].dtype
        block = min(max(batch_size, PREDICT_BLOCK), x.shape[0])
        zs = tuple(np.empty((block, k.shape[1]), dtype=dtype) for k in net.kernels)
        acts = tuple(np.empty((block, k.shape[1]), dtype=dtype) for k in net.kernels)
        out = np.empty((x.shape[0], net.kernels[-1].shape[1]), dtype=dtype)
        K.predict(x, net, zs, acts, out)
        return out

    # -- labels and dropout ----------------------------------------------------------------

    def _as_labels(self, y, net, n_samples, read=None):
        """``(labels, targets)`` for the kernels: int64 class labels and None for a sparse
        loss, an empty label array and the (n, k) targets for a loss of target rows
        (categorical, binary, regression; argmax labels are made of them, which only the
        categorical accuracy reads); checked, since the kernels index with them: the labels
        at the positions ``read`` (every label when None), the only ones the kernels read."""
        n_classes = net.kernels[-1].shape[1]
        if self.takes_target_rows:
            targets = np.ascontiguousarray(y, dtype=net.kernels[0].dtype)
            if targets.shape != (n_samples, n_classes):
                raise ValueError(f"targets must have shape ({n_samples}, {n_classes}); received {targets.shape}")
            return np.empty(0, dtype=np.int64), targets
        y = np.ascontiguousarray(y, dtype=np.int64)
        checked = y if read is None or y.shape != (n_samples,) else y[read]
        if y.shape != (n_samples,) or _outside(checked, n_classes):
            raise ValueError(f"labels must be in [0, {n_classes}): expected {n_samples} integer labels "
                             f"of shape ({n_samples},); received shape {y.shape} with {_value_range(checked)}")
        return y, None

    def _in_order(self, n_samples):
        """``arange(n_samples)``, kept from call to call (read only by the kernels)."""
        if self._identity_order is None or self._identity_order.shape[0] != n_samples:
            self._identity_order = np.arange(n_samples, dtype=np.int64)
        return self._identity_order

    def _steps_per_mask_draw(self, work):
        widths = sum(k.shape[0] for k, d in zip(self._net.kernels, self._plan.dropouts) if d is not None)
        return max(1, MASK_BYTES // max(1, widths * work.x.shape[0]))

    def _draw_dropout(self, n_samples, batch_size, first_step, n_steps, work):
        """The :class:`~npnet.kernels.dense.Dropout` of these steps (None without Dropout):
        keep-masks drawn by each Dropout layer, batch by batch and layer by layer, as the
        NumPy forward pass draws them."""
        dropouts = self._plan.dropouts
        if all(d is None for d in dropouts):
            return None
        dtype, capacity = self._net.kernels[0].dtype, work.x.shape[0]
        widths = [k.shape[0] for k in self._net.kernels]
        masks = [np.empty((n_steps, capacity, w), dtype=np.bool_) if d is not None else _placeholder(3, np.bool_)
                 for d, w in zip(dropouts, widths)]
        for k in range(n_steps):
            n = min(batch_size, n_samples - (first_step + k) * batch_size)
            for layer, mask, width in zip(dropouts, masks, widths):
                if layer is not None:
                    mask[k, :n] = layer._draw_keep_mask((n,) + tuple(layer.input_shape[1:])).reshape(n, width)
        return K.Dropout(np.array([d is not None for d in dropouts], dtype=np.int64),
                         np.array([1.0 / (1.0 - d.rate) if d else 0.0 for d in dropouts], dtype=dtype),
                         tuple(masks), self._dropped)


def _kept_outputs(net, n_steps, work):
    """A new buffer for the output rows of ``n_steps`` batches (n_steps, capacity, units): new
    for every call, since the metrics may hold on to the rows they are handed."""
    return np.empty((n_steps, work.x.shape[0], net.kernels[-1].shape[1]), dtype=net.kernels[0].dtype)


def _sample_weights(sample_weight, net, n_samples, work):
    """The kernels' :class:`~npnet.kernels.dense.SampleWeights`: the weights in the model's
    dtype (as ``training._weighted_value`` casts them), checked, and a buffer for a batch's."""
    dtype = net.kernels[0].dtype
    weights = np.ascontiguousarray(sample_weight, dtype=dtype)
    if weights.shape != (n_samples,):
        raise ValueError(f"sample_weight must hold one weight per sample, shape ({n_samples},); "
                         f"received shape {weights.shape}")
    return K.SampleWeights(weights, np.empty(work.x.shape[0], dtype=dtype))


def _smoothing(loss, y, net):
    """The kernels' ``smoothing`` of a loss with ``label_smoothing`` ε (None without): ``[1 - ε,
    ε / k]`` computed as ``losses._SmoothedCrossEntropy._smooth`` does, in the dtype of the
    targets ``y`` as given (the weights' when they are not floats), where the NumPy backend
    smooths them."""
    epsilon = getattr(loss, "label_smoothing", 0.0)
    if not epsilon:
        return None
    y = np.asarray(y)
    dtype = y.dtype if y.dtype.kind == "f" else net.kernels[0].dtype
    epsilon = dtype.type(epsilon)
    return np.array([1 - epsilon, epsilon / dtype.type(loss._smoothing_classes(y))], dtype=dtype)


def _batch_outputs(kept, n_samples, batch_size, first_step):
    """Each batch's output rows, as the NumPy backend lists them: ``kept[k]``'s first n rows,
    n the size of batch ``first_step + k`` (the last batch of an epoch may be shorter)."""
    return [kept[k, :min(batch_size, n_samples - (first_step + k) * batch_size)] for k in range(len(kept))]


#: The losses of targets shaped like the output, by their code in the kernels' loss row.
_TARGET_LOSSES = {MeanSquaredError: "MEAN_SQUARED_ERROR", MeanAbsoluteError: "MEAN_ABSOLUTE_ERROR", Huber: "HUBER",
                  BinaryCrossentropy: "BINARY_OF_PROBABILITIES"}


def _loss_row(loss, head):
    """The kernels' loss row ``(code, delta)`` (float64) of a binary or regression loss."""
    code = getattr(K, _TARGET_LOSSES[type(loss)])
    if head == heads.SIGMOID_BINARY_CROSSENTROPY:
        code = K.SIGMOID_BINARY_CROSSENTROPY
    elif type(loss) is BinaryCrossentropy and loss.from_logits:
        code = K.BINARY_OF_LOGITS
    return np.array([code, getattr(loss, "delta", 0.0)], dtype=np.float64)


#: The regularizers the kernels compute, with the settings each has.
_PENALTY_SETTINGS = {regularizers.L2: {"l2"}, regularizers.L1: {"l1"}, regularizers.L1L2: {"l1", "l2"}}


def _penalty_terms(regularizer):
    """``npnet.kernels.dense``'s ``L2_TERM | L1_TERM`` of a regularizer (None: 0), as its
    ``__call__`` adds them: L1L2 leaves out a term whose factor is 0."""
    if regularizer is None:
        return 0
    kind = type(regularizer)
    if kind is regularizers.L1L2:
        return (K.L1_TERM if regularizer.l1 else 0) | (K.L2_TERM if regularizer.l2 else 0)
    return K.L1_TERM if kind is regularizers.L1 else K.L2_TERM


def _penalties(dense, dtype):
    """The kernels' :class:`~npnet.kernels.dense.Penalties`, or None when no layer has one."""
    found = [layer.weight_regularizers() for layer in dense]
    if not any(found):
        return None
    arrays = []
    for weight in ("kernel", "bias"):
        terms = np.array([_penalty_terms(r.get(weight)) for r in found], dtype=np.int64)
        l2 = np.array([getattr(r.get(weight), "l2", 0.0) for r in found], dtype=dtype)
        l1 = np.array([getattr(r.get(weight), "l1", 0.0) for r in found], dtype=dtype)
        arrays += [terms, l2, l1 if (terms & K.L1_TERM).any() else None]
    (has_kernel, kernel_l2, kernel_l1), (has_bias, bias_l2, bias_l1) = arrays[:3], arrays[3:]
    return K.Penalties(has_kernel, kernel_l2, has_bias, bias_l2, kernel_l1, bias_l1)


def _input_scaling(layer, net):
    """The kernels' :class:`~npnet.kernels.dense.InputScaling` of a first Normalization layer
    (None without one): its mean and scale broadcast to the input's shape, one per feature of
    the rows the kernels gather. Made on each call: ``adapt`` may have changed them."""
    if layer is None:
        return None
    shape, dtype = (1,) + tuple(layer.input_shape[1:]), net.kernels[0].dtype
    mean, scale = (np.ascontiguousarray(np.broadcast_to(v, shape).reshape(-1), dtype=dtype)
                   for v in (layer.mean, layer.scale()))
    return K.InputScaling(mean, scale, layer.invert)


def _normalized(layer, x):
    """``x`` through a first Normalization layer (as the NumPy backend computes it), for the
    calls that hand the kernels whole batches rather than letting them gather rows."""
    return x if layer is None else layer.forward(x)[0]


def _bias_of(layer):
    """A Dense layer's bias, or for one without (``use_bias=False``) a stand-in of zeros the
    kernels add and never change (``npnet.kernels.dense.KERNEL_ONLY``)."""
    return np.asarray(layer.bias) if layer.use_bias else np.zeros(layer.units, dtype=layer.kernel.dtype)


def _per_layer(optimizer, dense, slot):
    """``(kernel arrays, bias arrays)`` of one slot, one per Dense layer (placeholders for the
    frozen ones, which the optimizer holds no state for, and zeros for a layer without bias);
    None when the optimizer has no such slot."""
    if slot not in optimizer.state:
        return None
    arrays, kernels, biases = iter(optimizer.state[slot]), [], []
    for layer in dense:
        dtype = layer.kernel.dtype
        kernels.append(next(arrays) if layer.trainable else _placeholder(2, dtype))
        if not layer.trainable:
            biases.append(_placeholder(1, dtype))
        else:
            biases.append(next(arrays) if layer.use_bias else np.zeros(layer.units, dtype=dtype))
    return tuple(kernels), tuple(biases)


def _optimizer_state(optimizer, dense):
    """The kernels' state tuple (``AdamState``, ``SGDState`` or ``RMSpropState`` of
    :mod:`npnet.kernels.dense`) of the optimizer's own arrays, without its ``hyper`` and ``box`` yet."""
    if type(optimizer) is Adam:
        (km, bm), (kv, bv) = _per_layer(optimizer, dense, "m"), _per_layer(optimizer, dense, "v")
        return K.AdamState(km, kv, bm, bv, None, None)
    if type(optimizer) is SGD:
        velocity = _per_layer(optimizer, dense, "momentum") or (None, None)
        return K.SGDState(*velocity, None, optimizer.nesterov, None)
    velocity = _per_layer(optimizer, dense, "velocity")
    momentum = _per_layer(optimizer, dense, "momentum") or (None, None)
    average = _per_layer(optimizer, dense, "average_gradient") or (None, None)
    return K.RMSpropState(*velocity, *momentum, *average, None, None)


def _hyperparameters(optimizer, dtype):
    """The optimizer's scalars as the kernels read them, cast to the weights' dtype as
    :mod:`npnet.functional` casts them."""
    if type(optimizer) is Adam:
        values = [optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2, optimizer.epsilon,
                  1.0 - optimizer.beta_1, 1.0 - optimizer.beta_2]
    elif type(optimizer) is SGD:
        values = [optimizer.learning_rate, optimizer.momentum]
    else:
        values = [optimizer.learning_rate, optimizer.rho, 1.0 - optimizer.rho, optimizer.epsilon,
                  optimizer.momentum]
    return np.array(values, dtype=dtype)


def _aligned(shape, dtype):
    from ..utils import aligned_empty
    return aligned_empty(shape, dtype)


def _as_rows(x, net):
    """(n, ...) samples -> a C-contiguous (n, features) view in the weights' dtype (what Flatten does)."""
    x = np.ascontiguousarray(x, dtype=net.kernels[0].dtype)
    if x.shape[0] == 0:
        raise ValueError("expected at least one sample; received an empty batch")
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _as_order(order, n_samples, rows=slice(None)):
    """The kernel gathers rows by these indices: check them (those at ``rows``, the only
    ones a call reads), as NumPy indexing would."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    read = order[rows] if order.shape == (n_samples,) else order
    if order.shape != (n_samples,) or _outside(read, n_samples):
        raise ValueError(f"order must hold {n_samples} indices in [0, {n_samples}); received "
                         f"shape {order.shape} with {_value_range(read)}")
    return order


def _outside(values, limit):
    """Whether any of the integer ``values`` lies outside ``[0, limit)``."""
    return bool(values.size) and bool(values.min() < 0 or values.max() >= limit)


def _value_range(values):
    """``values from <min> to <max>`` for an error message."""
    return f"values from {values.min()} to {values.max()}" if values.size else "no values"
