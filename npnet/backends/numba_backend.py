"""The fast backend: the whole training step in compiled numba kernels (``npnet/kernels``).

What it runs: ``Dense`` layers with any npnet activation, frozen or trainable, with L2 weight
penalties; ``Dropout`` before any of them; ``Flatten`` anywhere (the identity on rows);
``ReLU`` and ``Softmax`` layers right after a linear ``Dense``, which they become the
activation of; the sparse and one-hot cross-entropies (from probabilities or logits); SGD
(momentum, Nesterov), RMSprop (momentum, centered) and Adam; float32 or float64 weights.
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

import math
import threading
from collections import namedtuple

import numpy as np

from .. import activations, heads, regularizers
from ..layers import Dense, Dropout, Flatten, ReLU, Softmax
from ..losses import CategoricalCrossentropy, SparseCategoricalCrossentropy
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
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
#: Activation layers that become the activation of the linear Dense layer before them.
_ACTIVATION_LAYERS = {ReLU: "relu", Softmax: "softmax"}
LOSSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy)
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
    ReLU: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "max_value": None, "negative_slope": 0.0,
           "threshold": 0.0},
    Softmax: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "axis": -1},
    Dense: {"name": _ANY, "trainable": _ANY, "input_shape": _ANY, "units": _ANY, "activation": _ANY,
            "kernel_initializer": _ANY, "bias_initializer": _ANY, "kernel_regularizer": _ANY,
            "bias_regularizer": _ANY, "use_bias": True, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, "lora_rank": None},
    SparseCategoricalCrossentropy: {"from_logits": _ANY, "name": _ANY, "ignore_class": None, "axis": -1,
                                    "reduction": "sum_over_batch_size"},
    CategoricalCrossentropy: {"from_logits": _ANY, "name": _ANY, "label_smoothing": 0.0, "axis": -1,
                              "reduction": "sum_over_batch_size"},
    Adam: {**_COMMON_OPTIMIZER, "beta_1": _ANY, "beta_2": _ANY, "epsilon": _ANY, "amsgrad": False},
    SGD: {**_COMMON_OPTIMIZER, "momentum": _ANY, "nesterov": _ANY},
    RMSprop: {**_COMMON_OPTIMIZER, "rho": _ANY, "momentum": _ANY, "epsilon": _ANY, "centered": _ANY},
}

#: rows per block in predict: large enough for BLAS to be efficient (and use its threads)
PREDICT_BLOCK = 1024
#: at most this many bytes of Dropout masks per kernel call (longer calls are split)
MASK_BYTES = 1 << 24

_single_threaded_blas = SingleThreadedBlas(linked_by="scipy")

#: What the kernels run, read from the layers: the Dense layers, their activation codes, and
#: per Dense layer the Dropout layer on its input (or None).
Plan = namedtuple("Plan", ["dense", "codes", "dropouts"])


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
            codes.append(K.ACTIVATION_CODES.get(layer.activation.name) if K else None)
            dropouts.append(None)
            folded = False
        elif reason is None and kind is Dropout and layer.rate > 0:  # rate 0 draws nothing
            if dropouts[-1] is not None:
                reason = f"two Dropout layers in a row ({dropouts[-1].name!r} and {layer.name!r})"
            dropouts[-1] = layer
        elif reason is None and kind in _ACTIVATION_LAYERS:
            if not dense or folded or dropouts[-1] is not None or dense[-1].activation is not activations.linear:
                reason = (f"the {kind.__name__} layer {layer.name!r} at position {index}, which is not "
                          "right after a Dense layer without activation")
            else:
                codes[-1], folded = K.ACTIVATION_CODES[_ACTIVATION_LAYERS[kind]] if K else None, True
        if reason is not None:
            return None, reason
    if not dense:
        return None, "a model without a Dense layer"
    if dropouts[-1] is not None:
        return None, f"a Dropout layer ({dropouts[-1].name!r}) after the last Dense layer"
    return (Plan(dense, codes, dropouts[:-1]), None) if _dtype(dense) else \
        (None, f"Dense layers of different dtypes ({sorted({str(d.kernel.dtype) for d in dense if d.built})})")


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
    if layer.built and (list(layer.params) != ["kernel", "bias"] or layer.kernel.dtype.name not in DTYPES):
        return f"the weights of Dense layer {layer.name!r} ({', '.join(layer.params)} of {layer.kernel.dtype})"
    for weight, regularizer in layer.weight_regularizers().items():
        if weight not in ("kernel", "bias") or type(regularizer) is not regularizers.L2 \
                or set(regularizer.get_config()) != {"l2"}:
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
    if getattr(optimizer, "learning_rate_schedule", None) is not None:
        # the kernels read one learning rate per call of several steps
        return f"a learning-rate schedule ({type(optimizer.learning_rate_schedule).__name__})"
    rate = optimizer.learning_rate
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
        self._net_key = self._state_key = None
        self._net = self._plan = self._optimizer_state = self._work = self._dropped = self._penalties = None
        self._capacity = 0

    # -- binding the parts' arrays to kernel arguments -------------------------------------

    @property
    def categorical(self):
        return self.loss is not None and self.loss.label_kind == "categorical"

    def _loss_code(self):
        if self.head == heads.SOFTMAX_CROSSENTROPY:
            return K.SOFTMAX_CROSSENTROPY
        return K.CROSSENTROPY_OF_LOGITS if self.loss is not None and self.loss.from_logits \
            else K.CROSSENTROPY_OF_PROBABILITIES

    def _layers_key(self):
        """What the bound Network depends on: every layer, its weights, activation, penalties
        and whether it is trainable (checked on each call, so a change is seen as by NumPy)."""
        return tuple((id(layer), layer.trainable, id(getattr(layer, "activation", None)),
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
            trainable = np.array([layer.trainable for layer in dense], dtype=np.int64)
            first = int(np.argmax(trainable)) if trainable.any() else len(dense)
            self._net = K.Network(tuple(d.kernel for d in dense), tuple(d.bias for d in dense),
                                  np.array(plan_.codes, dtype=np.int64), self._loss_code(), trainable, first,
                                  K.constants(dtype))
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
        state = self._optimizer_state._replace(hyper=_hyperparameters(optimizer, dtype), box=_box(optimizer, dtype))
        return tuple(state if type(optimizer) is family else None for family in OPTIMIZERS)

    def _bind_work(self, capacity):
        """Work buffers for batches of up to ``capacity`` rows (grown, never shrunk)."""
        net = self._net
        if capacity > self._capacity:
            dtype = net.kernels[0].dtype
            units = [k.shape[1] for k in net.kernels]
            buffers = [tuple(_aligned((capacity, u), dtype) for u in units) for _ in range(3)]
            targets = _aligned((capacity, units[-1]), dtype) if self.categorical else None
            self._work = K.Workspace(_aligned((capacity, net.kernels[0].shape[0]), dtype),
                                     np.empty(capacity, dtype=np.int64), targets, *buffers,
                                     tuple(_aligned(k.shape, dtype) for k in net.kernels),
                                     tuple(np.zeros_like(b) for b in net.biases))
            self._dropped = tuple(_aligned((capacity, k.shape[0]), dtype) if d is not None
                                  else _placeholder(2, dtype) for d, k in zip(self._plan.dropouts, net.kernels))
            self._capacity = capacity
        return self._work

    # -- the backend interface -------------------------------------------------------------

    def train_steps(self, x, y, order, batch_size, first_step, n_steps):
        self.require_training_parts()
        losses, corrects = np.empty(n_steps), np.empty(n_steps, dtype=np.int64)
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            x, (labels, targets) = _as_rows(x, net), self._as_labels(y, net, x.shape[0])
            order = np.arange(x.shape[0], dtype=np.int64) if order is None else _as_order(order, x.shape[0])
            optimizer, work = self._bind_optimizer(), self._bind_work(min(batch_size, x.shape[0]))
            done, applied = 0, True
            while done < n_steps and applied:
                count = min(n_steps - done, self._steps_per_mask_draw(work))
                dropout = self._draw_dropout(x.shape[0], batch_size, first_step + done, count, work)
                n, applied = K.train_batches(x, labels, targets, order, batch_size, first_step + done, count,
                                             net, self._penalties, dropout, *optimizer,
                                             self.optimizer.step_counter(), work, losses[done:], corrects[done:])
                done += n
        return base.Steps(losses[:done], corrects[:done], bool(applied))

    def test_batch(self, x, y):
        self.require_training_parts()
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            x, (labels, targets) = _as_rows(x, net), self._as_labels(y, net, x.shape[0])
            if targets is not None:
                labels = np.ascontiguousarray(targets.argmax(axis=1), dtype=np.int64)
            work = self._bind_work(x.shape[0])
            loss, correct = K.evaluate_batch(x, labels, targets, net, self._penalties, work)
        return float(loss), int(correct)

    def predict(self, x, batch_size):
        """The output layer's activations, in blocks of ``max(batch_size, PREDICT_BLOCK)``
        rows with BLAS free to use its threads. A row's result can differ in the last bits
        with the block it falls in, as the NumPy backend's do."""
        with self._lock:
            net = self._bind_network()
        x = _as_rows(x, net)
        dtype = net.kernels[0].dtype
        block = min(max(batch_size, PREDICT_BLOCK), x.shape[0])
        zs = tuple(np.empty((block, k.shape[1]), dtype=dtype) for k in net.kernels)
        acts = tuple(np.empty((block, k.shape[1]), dtype=dtype) for k in net.kernels)
        out = np.empty((x.shape[0], net.kernels[-1].shape[1]), dtype=dtype)
        K.predict(x, net, zs, acts, out)
        return out

    # -- labels and dropout ----------------------------------------------------------------

    def _as_labels(self, y, net, n_samples):
        """``(labels, targets)`` for the kernels: int64 class labels and None for a sparse
        loss, an empty label array and the (n, k) targets for a categorical one; checked,
        since the kernels index with them."""
        n_classes = net.kernels[-1].shape[1]
        if self.categorical:
            targets = np.ascontiguousarray(y, dtype=net.kernels[0].dtype)
            if targets.shape != (n_samples, n_classes):
                raise ValueError(f"targets must have shape ({n_samples}, {n_classes}); received {targets.shape}")
            return np.empty(0, dtype=np.int64), targets
        y = np.ascontiguousarray(y, dtype=np.int64)
        if y.shape != (n_samples,) or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must be in [0, {n_classes}): expected {n_samples} integer labels "
                             f"of shape ({n_samples},); received shape {y.shape} with values from "
                             f"{y.min() if y.size else None} to {y.max() if y.size else None}")
        return y, None

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


def _penalties(dense, dtype):
    """The kernels' :class:`~npnet.kernels.dense.Penalties`, or None when no layer has one."""
    found = [layer.weight_regularizers() for layer in dense]
    if not any(found):
        return None
    has = {w: np.array([w in r for r in found], dtype=np.int64) for w in ("kernel", "bias")}
    l2 = {w: np.array([r[w].l2 if w in r else 0.0 for r in found], dtype=dtype) for w in ("kernel", "bias")}
    return K.Penalties(has["kernel"], l2["kernel"], has["bias"], l2["bias"])


def _per_layer(optimizer, dense, slot):
    """``(kernel arrays, bias arrays)`` of one slot, one per Dense layer (placeholders for the
    frozen ones, which the optimizer holds no state for); None when the optimizer has no such slot."""
    if slot not in optimizer.state:
        return None
    arrays, kernels, biases = iter(optimizer.state[slot]), [], []
    for layer in dense:
        dtype = layer.kernel.dtype
        kernels.append(next(arrays) if layer.trainable else _placeholder(2, dtype))
        biases.append(next(arrays) if layer.trainable else _placeholder(1, dtype))
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


def _box(optimizer, dtype):
    """The bounds of the kernels' update check (``box`` in :mod:`npnet.kernels.dense`, the
    notes of its optimizer section): a step from weights and slots within them, with every
    gradient ``|g| <= box[BOX_GRADIENT]``, leaves every new value finite, so the kernels need
    not compute the update twice to know that.

    Why, with L the largest float of ``dtype`` (every bound leaves at least a factor 2 for
    the rounding of the few operations of one step):

    * weights ``|w| <= L/4``, and each family's step moves a weight by at most L/4 (below);
      gradients ``|g| <= sqrt(L)/2``, so ``g² <= L/4``, and running means of squares
      (Adam's v, RMSprop's velocity) ``<= L/4``: their new value, between the old one and
      g², stays below L/2.
    * Adam: the denominator ``sqrt(v) + ε`` is at least ε, and α_t = lr·sqrt(1-β2^t)/(1-β1^t)
      <= lr/(1-β1) for every t, so its step is at most ``A·|m|/ε`` with A = 2·lr/(1-β1) (the
      kernels also compare the α they computed with A); m moves between m and g, so
      ``|m|, |g| <= L·ε/(8A)`` bound the step by L/8.
    * SGD: velocity ``|v| <= L/8`` and ``lr·|g| <= L/16``: the new velocity is below 3L/16
      and Nesterov's step, the largest, below L/4.
    * RMSprop: the denominator ``v + ε`` is at least ε, so ``lr·|g| / sqrt(ε) <= L/16``
      bounds its step, and a momentum buffer ``<= L/8`` keeps the step below L/4.

    Off (the first five entries -1, every update then checked exactly) for ε below the
    smallest normal float (the kernels flush it to 0) and when a bound is not a positive
    finite number in ``dtype``. Centered RMSprop, whose ``v - ḡ² + ε`` can round to zero or
    below, has no box but its weight and momentum bounds and, in place of the step size,
    ``sqrt(tiny)·L/16``: a denominator of at least tiny (the smallest normal float) and
    ``lr·|g|`` below that bound keep its step below L/16
    (:func:`npnet.kernels.dense.rmsprop_centered_bounded` checks both per element).
    The last two entries are L and tiny."""
    info = np.finfo(dtype)
    largest, tiny = float(info.max), float(info.tiny)
    epsilon = float(dtype.type(getattr(optimizer, "epsilon", 1.0)))
    gradient, slot, alpha = _family_limits(optimizer, dtype, largest, epsilon)
    box = [gradient, largest / 4, slot, largest / 4, alpha]
    with np.errstate(over="ignore"):
        in_dtype = np.array(box, dtype=np.float64).astype(dtype)
    if epsilon < tiny or not (np.all(np.isfinite(in_dtype)) and gradient > 0 and slot > 0):
        box = [-1.0] * 5
    elif getattr(optimizer, "centered", False):
        box = [-1.0, largest / 4, largest / 8, -1.0, math.sqrt(tiny) * largest / 16]
    return np.array(box + [largest, tiny], dtype=dtype)


def _family_limits(optimizer, dtype, largest, epsilon):
    """``(gradient, slot, alpha)`` limits of :func:`_box` for the optimizer's family, from
    its hyperparameters as the kernels read them (cast to ``dtype``), in float64."""
    learning_rate = float(dtype.type(optimizer.learning_rate))
    gradient, slot, alpha = math.sqrt(largest) / 2, largest / 8, 0.0
    if type(optimizer) is Adam:
        beta_1 = float(dtype.type(optimizer.beta_1))
        alpha = 2 * learning_rate / (1 - beta_1) if beta_1 < 1 else math.inf
        slot = largest * epsilon / (8 * alpha)
        return min(gradient, slot), slot, alpha
    if type(optimizer) is SGD:
        return min(gradient, largest / (16 * learning_rate)), slot, alpha
    return min(gradient, largest * math.sqrt(epsilon) / (16 * learning_rate)), slot, alpha


def _aligned(shape, dtype):
    from ..utils import aligned_empty
    return aligned_empty(shape, dtype)


def _as_rows(x, net):
    """(n, ...) samples -> a C-contiguous (n, features) view in the weights' dtype (what Flatten does)."""
    x = np.ascontiguousarray(x, dtype=net.kernels[0].dtype)
    if x.shape[0] == 0:
        raise ValueError("expected at least one sample; received an empty batch")
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _as_order(order, n_samples):
    """The kernel gathers rows by these indices: check them, as NumPy indexing would."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.shape != (n_samples,) or order.min() < 0 or order.max() >= n_samples:
        raise ValueError(f"order must hold {n_samples} indices in [0, {n_samples}); received "
                         f"shape {order.shape} with values from {order.min()} to {order.max()}")
    return order
