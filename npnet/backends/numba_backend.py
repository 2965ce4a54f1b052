"""The fast backend: the whole training step in compiled numba kernels (``npnet/kernels``).

What it runs: an optional leading ``Flatten`` then trainable ``Dense`` layers (activations
linear, relu, sigmoid, tanh; softmax on the output layer only), the sparse categorical
cross-entropy, Adam, float32 weights. :func:`unsupported_reason` says why anything else is
not covered; ``backend='numba'`` then refuses at ``compile`` and the automatic choice uses
the NumPy backend. A kernel never computes something different from the NumPy backend.

How: one call of :func:`npnet.kernels.dense.train_batches` runs ``steps_per_execution``
whole training steps (gather the batch, forward, loss, backward, finiteness check, Adam),
writing into preallocated buffers sized for the largest batch. Evaluation is one call per
batch, prediction one call for the whole array. Training and evaluation keep the BLAS that
numba calls on one thread; prediction leaves it free. Why these choices, with the
measurements behind them: ``docs/performance.md``.

The work buffers are shared by the calls on one model, so calls are serialised by a lock:
two threads evaluating one model get the results of two serial calls.
"""

import threading

import numpy as np

from .. import activations, heads
from ..layers import Dense, Flatten
from ..losses import SparseCategoricalCrossentropy
from ..optimizers import Adam
from . import base
from ._threads import SingleThreadedBlas

try:
    from ..kernels import dense as K
    _IMPORT_ERROR = None
except ImportError as error:  # numba missing or broken: reported at compile, not at import
    K = None
    _IMPORT_ERROR = error

_ACTIVATION_NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax")

#: rows per block in predict: large enough for BLAS to be efficient (and use its threads)
PREDICT_BLOCK = 1024

_single_threaded_blas = SingleThreadedBlas(linked_by="scipy")


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
    return _layers_reason(layers) or _loss_reason(layers, loss) or _optimizer_reason(optimizer)


def _layers_reason(layers):
    for index, layer in enumerate(layers):
        if type(layer) is Flatten and index == 0:
            continue
        if type(layer) is not Dense:
            return f"the layer {layer.name!r} of class {type(layer).__name__} at position {index}"
        if not layer.trainable:
            return f"a non-trainable Dense layer ({layer.name!r})"
        if layer.kernel_regularizer is not None:
            return f"kernel_regularizer on Dense layer {layer.name!r}"
        name = layer.activation.name
        if name not in _ACTIVATION_NAMES or layer.activation is not getattr(activations, name):
            custom = " (a custom Activation)" if name in _ACTIVATION_NAMES else ""
            return f"the activation {name!r} of layer {layer.name!r}{custom}"
        if name == "softmax" and index != len(layers) - 1:
            return f"softmax on a hidden layer ({layer.name!r})"
        if layer.built and layer.kernel.dtype != np.float32:
            return f"{layer.kernel.dtype} weights ({layer.name!r}; the kernels are float32)"
    from .. import config
    if any(not layer.built for layer in layers) and config.floatx() != "float32":
        return f"floatx {config.floatx()!r} (the kernels are float32)"
    if layers and type(layers[-1]) is not Dense:
        return f"a model whose last layer is not Dense (it is {type(layers[-1]).__name__})"
    return None


def _loss_reason(layers, loss):
    if loss is None:
        return None
    if type(loss) is not SparseCategoricalCrossentropy:
        return f"the loss {loss.name!r}"
    if layers and heads.output_is_softmax(layers[-1]) and loss.from_logits:
        return ("a softmax output layer with from_logits=True (the softmax would be applied twice); "
                "use activation=None with from_logits=True, or from_logits=False")
    return None


def _optimizer_reason(optimizer):
    if optimizer is not None and type(optimizer) is not Adam:
        return f"the optimizer {type(optimizer).__name__}"
    if optimizer is not None and getattr(optimizer, "learning_rate_schedule", None) is not None:
        # the kernels read one learning rate per call of several steps
        return f"a learning-rate schedule ({type(optimizer.learning_rate_schedule).__name__})"
    return None


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
        self._bound_weights = None   # the parameter arrays the kernel tuples were made from
        self._bound_state = None     # the optimizer state arrays the Adam tuple was made from
        self._net = self._adam = self._work = None
        self._capacity = 0

    # -- binding the parts' arrays to kernel arguments -------------------------------------

    def _loss_code(self):
        if self.head == heads.SOFTMAX_CROSSENTROPY:
            return K.SOFTMAX_CROSSENTROPY
        return K.CROSSENTROPY_OF_LOGITS if self.loss is not None and self.loss.from_logits \
            else K.CROSSENTROPY_OF_PROBABILITIES

    def _bind_network(self):
        """The :class:`~npnet.kernels.dense.Network` of the layers' own arrays (updated in place)."""
        weights = [p for layer in self.layers for p in layer.params.values()]
        if self._bound_weights is None or len(weights) != len(self._bound_weights) or any(
                a is not b for a, b in zip(weights, self._bound_weights)):
            reason = _layers_reason(self.layers)
            if reason is not None:
                raise NotImplementedError(f"backend='numba' does not support {reason}")
            dense = [layer for layer in self.layers if type(layer) is Dense]
            codes = np.array([_ACTIVATION_NAMES.index(layer.activation.name) for layer in dense])
            self._net = K.Network(tuple(layer.kernel for layer in dense), tuple(layer.bias for layer in dense),
                                  codes.astype(np.int64), self._loss_code())
            self._bound_weights, self._bound_state, self._capacity = weights, None, 0
        return self._net

    def _bind_adam(self):
        """The :class:`~npnet.kernels.dense.AdamState` of the optimizer's own arrays."""
        optimizer = self.optimizer
        if optimizer.state is None:
            optimizer.build(self._bound_weights)
        state = optimizer.state["m"] + optimizer.state["v"]
        if self._bound_state is None or any(a is not b for a, b in zip(state, self._bound_state)):
            optimizer._check_same_params(self._bound_weights)
            m, v = optimizer.state["m"], optimizer.state["v"]
            self._adam = K.AdamState(tuple(m[0::2]), tuple(v[0::2]), tuple(m[1::2]), tuple(v[1::2]),
                                     None, optimizer.step_counter())
            self._bound_state = state
        hyper = np.array([optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2,
                          optimizer.epsilon], dtype=np.float32)
        self._adam = self._adam._replace(hyper=hyper, step_counter=optimizer.step_counter())
        return self._adam

    def _bind_work(self, capacity):
        """Work buffers for batches of up to ``capacity`` rows (grown, never shrunk)."""
        net = self._net
        if capacity > self._capacity:
            units = [k.shape[1] for k in net.kernels]
            buffers = [tuple(_aligned((capacity, u)) for u in units) for _ in range(3)]
            self._work = K.Workspace(_aligned((capacity, net.kernels[0].shape[0])),
                                     np.empty(capacity, dtype=np.int64), *buffers,
                                     tuple(_aligned(k.shape) for k in net.kernels),
                                     tuple(np.zeros_like(b) for b in net.biases))
            self._capacity = capacity
        return self._work

    # -- the backend interface -------------------------------------------------------------

    def train_steps(self, x, y, order, batch_size, first_step, n_steps):
        self.require_training_parts()
        x, y = _as_rows(x), _as_labels(y)
        order = np.arange(x.shape[0], dtype=np.int64) if order is None else _as_order(order, x.shape[0])
        losses, corrects = np.empty(n_steps), np.empty(n_steps, dtype=np.int64)
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            _check_labels(y, net, x.shape[0])
            adam, work = self._bind_adam(), self._bind_work(min(batch_size, x.shape[0]))
            n_done, last_applied = K.train_batches(x, y, order, batch_size, first_step, n_steps,
                                                   net, adam, work, losses, corrects)
        return base.Steps(losses[:n_done], corrects[:n_done], bool(last_applied))

    def test_batch(self, x, y):
        self.require_training_parts()
        x, y = _as_rows(x), _as_labels(y)
        with self._lock, _single_threaded_blas:
            net = self._bind_network()
            _check_labels(y, net, x.shape[0])
            work = self._bind_work(x.shape[0])
            loss, correct = K.evaluate_batch(x, y, net, work.zs, work.acts)
        return float(loss), int(correct)

    def predict(self, x, batch_size):
        """The output layer's activations, in blocks of ``max(batch_size, PREDICT_BLOCK)``
        rows with BLAS free to use its threads. A row's result can differ in the last bits
        with the block it falls in, as the NumPy backend's do."""
        x = _as_rows(x)
        with self._lock:
            net = self._bind_network()
        block = min(max(batch_size, PREDICT_BLOCK), x.shape[0])
        zs = tuple(np.empty((block, k.shape[1]), dtype=np.float32) for k in net.kernels)
        acts = tuple(np.empty((block, k.shape[1]), dtype=np.float32) for k in net.kernels)
        out = np.empty((x.shape[0], net.kernels[-1].shape[1]), dtype=np.float32)
        K.predict(x, net, zs, acts, out)
        return out


def _aligned(shape):
    from ..utils import aligned_empty
    return aligned_empty(shape)


def _as_rows(x):
    """(n, ...) float32 samples -> a C-contiguous (n, features) view (what Flatten does)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[0] == 0:
        raise ValueError("expected at least one sample; received an empty batch")
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _as_labels(y):
    return np.ascontiguousarray(y, dtype=np.int64)


def _check_labels(y, net, n_samples):
    """The kernels index with the labels, so they are checked here, as NumPy indexing would."""
    n_classes = net.kernels[-1].shape[1]
    if y.shape != (n_samples,) or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}): expected {n_samples} integer labels "
                         f"of shape ({n_samples},); received shape {y.shape} with values from "
                         f"{y.min() if y.size else None} to {y.max() if y.size else None}")


def _as_order(order, n_samples):
    """The kernel gathers rows by these indices: check them, as NumPy indexing would."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.shape != (n_samples,) or order.min() < 0 or order.max() >= n_samples:
        raise ValueError(f"order must hold {n_samples} indices in [0, {n_samples}); received "
                         f"shape {order.shape} with values from {order.min()} to {order.max()}")
    return order
