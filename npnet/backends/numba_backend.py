"""The fast backend: the whole training step in compiled numba kernels (``npnet/kernels``).

What it runs
    Sequential models made of an optional leading ``Flatten`` and ``Dense`` layers with
    activations linear, relu, sigmoid or tanh (softmax on the output layer only), the
    ``sparse_categorical_crossentropy`` loss, the ``Adam`` optimizer and float32 weights.
    Anything else is refused at ``compile`` with a ``NotImplementedError`` that names the
    piece and points to ``backend='numpy'``: a kernel never computes something different
    from the NumPy backend.

What is fused, and how many compiled calls
    One call of :func:`npnet.kernels.dense.train_batches` does a whole training step:
    gather the shuffled rows of the batch into a preallocated buffer, forward through every
    layer, loss, accuracy, the combined softmax + cross-entropy gradient, backward, the
    finiteness check and the Adam update of every parameter, for one or more consecutive
    batches. ``Sequential.fit`` reaches it through the optional
    :meth:`NumbaBackend.train_epoch`: one compiled call per batch when a callback looks at
    the model after each batch (it then sees the weights of exactly that batch, as with the
    NumPy backend), up to :attr:`NumbaBackend.batches_per_call` batches per call when none
    does (:func:`npnet.callbacks.watches_batches`). The generic :meth:`train_batch` does one
    given batch. Nothing is allocated per batch:
    buffers are sized for the largest batch and the last, partial batch uses their first rows.
    Evaluation is one call per batch, prediction one call for the whole array.

Numerics
    The kernels do the NumPy backend's float32 operations (see each kernel's docstring), with
    ``fastmath`` off. The large matrix products of a training step are register-tiled numba
    loops for layers whose units are a multiple of 64: the forward product
    (:func:`npnet.kernels.dense.dense_forward_tiled`) at any batch size, the weight gradient
    (:func:`~npnet.kernels.dense.dense_weight_gradient_tiled`) at batches of up to 128 rows;
    the others, and prediction blocks of more than 256 rows, go to BLAS (SciPy's OpenBLAS,
    through numba). Either way the summation order
    may differ from NumPy's BLAS in the last bits, as may row sums; after 100 steps the
    weights stay within 1e-6 of the NumPy backend's (tested; about 5e-7 for the tutorial
    model on Fashion-MNIST). A batch whose loss or any gradient is not finite is not applied,
    and ``fit`` stops with the same warning as with the NumPy backend.

Threads (decided for 2 cores, measured on the 2-core development machine)
    Training and evaluation run on one thread: the numba loops are serial (no ``prange``)
    and, for the duration of each kernel call, the BLAS that numba uses is limited to one
    thread (:class:`SingleThreadedBlas`). At batch 32 every step is four small matrix
    products separated by serial loops; with OpenBLAS's default two threads each product
    pays a fork/join, and when the machine has other work (other processes, or the user's)
    the helper thread is often descheduled and the main thread waits for it: an epoch took
    2.7-7.4 s with two BLAS threads against 0.43 s with one on the busy machine. Splitting
    layer 1's products and its Adam update between two numba threads (``prange`` over column
    halves, OpenMP threading layer, ~1 µs per fork/join) was measured too: a warm epoch of
    0.18 s against 0.23-0.24 s on one thread when the machine was otherwise idle, but
    0.72-0.86 s against 0.29 s while a single other process kept one CPU busy, since every
    step then waits for the descheduled thread. On a 2-core machine that is shared, one
    thread is the steadier choice; threaded BLAS inside ``prange`` would also oversubscribe.
    Prediction is different: a few large products (1024 x 784 x 128 per block) where BLAS
    threads pay off, so ``predict`` leaves BLAS at its default (10k images: ~12 ms with two
    threads on a quiet machine, ~20 ms with one; slower with two when the machine is busy).
    ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` bound the threads as usual.

Why the tiled loops, not BLAS (measured on the 2-core AVX-512 development machine)
    At batch 32 the two products of the first layer were ~75% of a step with BLAS (about half
    of it now, ~56 of ~110 µs). Adam's update takes ~16-19 µs alone but ~50 µs in place, most
    likely because the first layer's kernel, gradient and moments (1.6 MB) exceed the 1 MB L2
    cache and each step moves them to and from L3. Applying the update as the weight
    gradient is computed (in the tiles' epilogue, or 16 rows at a time) was measured slower:
    0.226-0.230 s against 0.203-0.206 s per epoch, interleaved in one process. This machine's
    environment sets ``OPENBLAS_CORETYPE=Haswell``, which limits OpenBLAS to 256-bit
    vectors, and at these shapes OpenBLAS then runs at that kernel's peak: forward
    (32x784 @ 784x128) ~86 µs, weight gradient ~64 µs. numba compiles for the host CPU
    (512-bit vectors), and with the sums of a tile kept in registers
    (:func:`npnet.kernels.dense.stack_accumulator`) the same products take ~30 µs and
    ~26 µs: a tile of 4 rows by 64 columns (16 registers of sums) reuses every row of the
    kernel read from cache for 4 rows of x, where a one-row tile of 128 columns needed one
    load per multiply-add and ran at ~63 µs and ~34 µs. The warm epoch went from ~0.41 s
    (BLAS) to ~0.29 s (one-row tiles) to ~0.25 s (pinned to one CPU, same process). The
    work buffers, like the model's weights and the optimizer's state, are 64-byte aligned
    (:data:`npnet.utils.MEMORY_ALIGNMENT`): with NumPy's 16-byte alignment vector loads span
    two cache lines (the weight gradient 62 µs instead of 39 µs with the one-row tiles; the
    whole epoch ~10% slower with the weights and Adam's moments 16 bytes off). Skipping the
    zero pixels of the input (half of Fashion-MNIST's) did not pay: index lists cost as much as
    the skipped products save, and a branch that skips a pixel zero in all rows of a tile
    (21% of them in the forward product, 38% in the weight gradient) made the tiled loops
    2.4-2.9x slower, as the sums no longer stay in registers.

Caching
    Kernels are compiled once and cached on disk; see :mod:`npnet.kernels._compile` for
    where the cache goes when the installed package is read-only.
"""

import math

import numpy as np

from .. import activations, config, utils
from ..layers import Dense, Flatten
from ..losses import SparseCategoricalCrossentropy
from ..optimizers import Adam
from ._threads import SingleThreadedBlas

try:
    from ..kernels import dense as K
    _IMPORT_ERROR = None
except ImportError as error:  # numba missing or broken: reported at compile, not at import
    K = None
    _IMPORT_ERROR = error

_ACTIVATION_CODES = None if K is None else {
    activations.linear: K.LINEAR, activations.relu: K.RELU, activations.sigmoid: K.SIGMOID,
    activations.tanh: K.TANH, activations.softmax: K.SOFTMAX,
}

SUPPORTED = ("Sequential models of an optional leading Flatten followed by Dense layers "
             "(activations linear, relu, sigmoid, tanh; softmax on the output layer only), the "
             "sparse_categorical_crossentropy loss, the Adam optimizer and float32 weights")

# Attributes that would change a Dense layer's or Adam's arithmetic if some future version
# of npnet (or a user) sets them; the kernels implement none of them.
_DENSE_MUST_BE_NONE = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                       "kernel_constraint", "bias_constraint")
_ADAM_MUST_BE_NONE = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")

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


def _unsupported(what):
    raise NotImplementedError(f"backend='numba' does not support {what}. It supports {SUPPORTED}. "
                              "Use backend='numpy' for this model.")


def check_supported(model):
    """Validate that the kernels compute exactly this model; return ``(codes, head)``.

    ``codes`` is the activation code of each Dense layer (None for a model without layers
    yet: layers added later are checked when ``add`` recreates the backend).
    """
    layers = model.layers
    codes = []
    for index, layer in enumerate(layers):
        if type(layer) is Flatten:
            if index != 0:
                _unsupported(f"a Flatten layer after the first position ({layer.name!r} is layer {index})")
            continue
        if type(layer) is not Dense:
            _unsupported(f"the layer {layer.name!r} of class {type(layer).__name__}")
        for attribute in _DENSE_MUST_BE_NONE:
            if getattr(layer, attribute, None) is not None:
                _unsupported(f"{attribute} on Dense layer {layer.name!r}")
        if getattr(layer, "use_bias", True) is not True:
            _unsupported(f"a Dense layer without bias ({layer.name!r})")
        if getattr(layer, "trainable", True) is not True:
            _unsupported(f"a non-trainable Dense layer ({layer.name!r})")
        if layer.built and list(layer.params) != ["kernel", "bias"]:
            _unsupported(f"Dense layer {layer.name!r} with parameters {list(layer.params)}")
        code = _ACTIVATION_CODES.get(layer.activation)
        if code is None:
            _unsupported(f"the activation {layer.activation.name!r} of layer {layer.name!r} "
                         "(a custom Activation)")
        if code == K.SOFTMAX and index != len(layers) - 1:
            _unsupported(f"softmax on a hidden layer ({layer.name!r})")
        codes.append(code)

    loss = model.loss
    if type(loss) is not SparseCategoricalCrossentropy:
        _unsupported(f"the loss {getattr(loss, 'name', type(loss).__name__)!r}")
    if getattr(loss, "ignore_class", None) is not None:
        _unsupported("ignore_class in the loss")
    if getattr(loss, "reduction", "sum_over_batch_size") not in ("sum_over_batch_size", "mean"):
        _unsupported(f"the loss reduction {loss.reduction!r}")

    optimizer = model.optimizer
    if type(optimizer) is not Adam:
        _unsupported(f"the optimizer {type(optimizer).__name__}")
    for attribute in _ADAM_MUST_BE_NONE:
        if getattr(optimizer, attribute, None) is not None:
            _unsupported(f"{attribute} in the Adam optimizer")
    for attribute in ("amsgrad", "use_ema"):
        if getattr(optimizer, attribute, False):
            _unsupported(f"{attribute}=True in the Adam optimizer")
    if not isinstance(optimizer.learning_rate, (int, float)):
        _unsupported(f"a learning rate of type {type(optimizer.learning_rate).__name__}")

    if model.built:
        for name, weight in zip(model.weight_names(), model.weights):
            if weight.dtype != np.float32:
                _unsupported(f"{weight.dtype} weights ({name} is {weight.dtype}; the kernels are float32)")
    elif config.floatx() != "float32":
        _unsupported(f"floatx {config.floatx()!r} (the kernels are float32)")

    if not layers:
        return None, None
    if not codes or type(layers[-1]) is not Dense:
        _unsupported(f"a model whose last layer is not Dense (layers: "
                     f"{[type(layer).__name__ for layer in layers]})")
    if codes[-1] == K.SOFTMAX:
        if loss.from_logits:
            _unsupported("a softmax output layer with from_logits=True (the softmax would be "
                         "applied twice); use activation=None with from_logits=True, or "
                         "from_logits=False")
        head = K.HEAD_SOFTMAX_LOGITS
    else:
        head = K.HEAD_FROM_LOGITS if loss.from_logits else K.HEAD_PROBABILITIES
    return np.array(codes, dtype=np.int64), head


def _as_rows(x):
    """(n, ...) float32 samples -> a C-contiguous (n, features) view (what Flatten does)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _as_labels(y, n_classes, n_samples):
    """Integer labels as int64; the kernels index with them, so they are checked here."""
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.shape != (n_samples,):
        raise ValueError(f"expected {n_samples} integer labels of shape ({n_samples},); received shape {y.shape}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}); received values from {y.min()} to {y.max()}")
    return y


def _require_samples(n_samples):
    if n_samples == 0:
        raise ValueError("expected at least one sample; received an empty batch")


class NumbaBackend:
    """Runs training, evaluation and prediction of a supported model in numba kernels."""

    name = "numba"

    #: most batches per compiled call in :meth:`train_epoch` when no callback looks at the
    #: model between batches; each call costs ~6-10 µs in Python and numba's dispatch
    #: (~5% of a step at batch 32), and 64 steps of the tutorial model take ~8 ms.
    batches_per_call = 64

    def __init__(self, model):
        require_numba()
        self.model = model
        self._codes, self._head = check_supported(model)
        self._weights = None         # the parameter arrays the tuples below were made from
        self._state = None           # the optimizer state arrays they were made from
        self._capacity = 0
        self._hyper = None

    # -- binding the model's arrays to kernel arguments ------------------------------------

    def _bind_weights(self):
        """(kernels, biases) tuples of the model's own arrays (updated in place by training)."""
        weights = self.model.weights
        if self._weights is None or len(weights) != len(self._weights) or any(
                a is not b for a, b in zip(weights, self._weights)):
            self._codes, self._head = check_supported(self.model)
            for name, weight in zip(self.model.weight_names(), weights):
                if not weight.flags.c_contiguous:
                    raise ValueError(f"weight {name} is not C-contiguous; the numba kernels update "
                                     "weights in place and need contiguous arrays")
            self._weights = weights
            self._kernels = tuple(weights[0::2])
            self._biases = tuple(weights[1::2])
            self._capacity = 0   # layer sizes may have changed: reallocate the buffers,
            self._state = None   # the gradients and bind the optimizer state again
        return self._kernels, self._biases

    def _bind_training(self, capacity):
        """Everything a training call needs: weights, optimizer state, gradients, buffers."""
        kernels, biases = self._bind_weights()
        optimizer = self.model.optimizer
        if optimizer.state is None:
            optimizer.build(self._weights)
        state = (optimizer.state["m"], optimizer.state["v"])
        if self._state is None or any(a is not b for a, b in zip(
                self._state[0] + self._state[1], state[0] + state[1])):
            for slot, arrays in zip(("m", "v"), state):
                shapes = [a.shape for a in arrays]
                if shapes != [w.shape for w in self._weights] or any(
                        a.dtype != np.float32 or not a.flags.c_contiguous for a in arrays):
                    raise ValueError(f"the optimizer's {slot!r} state (shapes {shapes}) does not "
                                     "match the model's float32 weights; recompile the model")
            self._state = (list(state[0]), list(state[1]))
            self._kernel_m, self._bias_m = tuple(state[0][0::2]), tuple(state[0][1::2])
            self._kernel_v, self._bias_v = tuple(state[1][0::2]), tuple(state[1][1::2])
            self._kernel_grads = tuple(utils.aligned_empty(k.shape) for k in kernels)
            self._bias_grads = tuple(np.zeros_like(b) for b in biases)
        self._hyper = np.array([optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2,
                                optimizer.epsilon], dtype=np.float32)
        self._ensure_buffers(capacity)
        return kernels, biases

    def _ensure_buffers(self, capacity):
        """Work buffers for batches of up to ``capacity`` rows (grown, never shrunk)."""
        if capacity <= self._capacity:
            return
        units = [k.shape[1] for k in self._kernels]
        self._x_buffer = utils.aligned_empty((capacity, self._kernels[0].shape[0]))
        self._labels_buffer = np.empty(capacity, dtype=np.int64)
        self._zs = tuple(utils.aligned_empty((capacity, u)) for u in units)
        self._acts = tuple(utils.aligned_empty((capacity, u)) for u in units)
        self._grads = tuple(utils.aligned_empty((capacity, u)) for u in units)
        self._capacity = capacity

    def _n_classes(self):
        return self._kernels[-1].shape[1]

    # -- the backend interface -------------------------------------------------------------

    def _run_training(self, x, y, order, batch_size, first_step, n_steps, losses, corrects):
        """One compiled call over ``n_steps`` batches; updates ``optimizer.iterations``."""
        optimizer = self.model.optimizer
        with _single_threaded_blas:
            n_done, last_applied = K.train_batches(
                x, y, order, batch_size, first_step, n_steps,
                self._kernels, self._biases, self._kernel_grads, self._bias_grads,
                self._kernel_m, self._kernel_v, self._bias_m, self._bias_v,
                self._x_buffer, self._labels_buffer, self._zs, self._acts, self._grads,
                self._codes, self._head, self._hyper, optimizer.iterations, losses, corrects)
        optimizer.iterations += n_done if last_applied else n_done - 1
        return n_done, last_applied

    def train_batch(self, x, y):
        """One optimizer step on the batch ``(x, y)``: ``(loss, n_correct, applied)``."""
        x = _as_rows(x)
        n = x.shape[0]
        _require_samples(n)
        self._bind_training(n)
        y = _as_labels(y, self._n_classes(), n)
        losses, corrects = np.empty(1), np.empty(1, dtype=np.int64)
        _, applied = self._run_training(x, y, np.arange(n, dtype=np.int64), n, 0, 1, losses, corrects)
        return float(losses[0]), int(corrects[0]), bool(applied)

    def train_epoch(self, x, y, order, batch_size, watch_batches=True):
        """Optional fast path of ``Sequential.fit``: train one epoch batch by batch.

        x: (n_samples, ...) float32, y: (n_samples,) int64 labels (validated by the model),
        order: the permutation of the samples for this epoch (None: in order).
        Yields ``(loss, n_correct, applied)`` per batch, as ``train_batch`` returns them;
        the batch is gathered from ``order`` inside the kernel, so no batch array is made
        in Python. After a non-finite batch (not applied) it stops.

        With ``watch_batches`` (a callback looks at the model after each batch) every batch
        is its own compiled call, so when a result is yielded the weights are those after
        exactly that batch. Otherwise up to :attr:`batches_per_call` batches run per call and
        their results are yielded afterwards; the training itself is the same.
        """
        x = _as_rows(x)
        n_samples = x.shape[0]
        _require_samples(n_samples)
        self._bind_training(batch_size)
        y = _as_labels(y, self._n_classes(), n_samples)
        order = (np.arange(n_samples, dtype=np.int64) if order is None
                 else np.ascontiguousarray(order, dtype=np.int64))
        # The kernel gathers rows by these indices: check them, as NumPy indexing would.
        if order.shape != (n_samples,) or order.min() < 0 or order.max() >= n_samples:
            raise ValueError(f"order must hold {n_samples} indices in [0, {n_samples}); received "
                             f"shape {order.shape} with values from {order.min()} to {order.max()}")
        steps = math.ceil(n_samples / batch_size)
        per_call = 1 if watch_batches else max(1, int(self.batches_per_call))
        losses = np.empty(per_call)
        corrects = np.empty(per_call, dtype=np.int64)
        step = 0
        while step < steps:
            self._bind_training(batch_size)  # a callback may have replaced arrays
            count = min(per_call, steps - step)
            n_done, last_applied = self._run_training(x, y, order, batch_size, step, count,
                                                      losses, corrects)
            for k in range(n_done):
                yield float(losses[k]), int(corrects[k]), bool(last_applied or k < n_done - 1)
            if not last_applied:
                return
            step += n_done

    def test_batch(self, x, y):
        """Loss and correct count of one batch, no update: ``(loss, n_correct)``."""
        x = _as_rows(x)
        _require_samples(x.shape[0])
        self._bind_weights()
        self._ensure_buffers(x.shape[0])
        y = _as_labels(y, self._n_classes(), x.shape[0])
        with _single_threaded_blas:
            loss, correct = K.evaluate_batch(x, y, self._kernels, self._biases, self._zs,
                                             self._acts, self._codes, self._head)
        return float(loss), int(correct)

    def predict(self, x, batch_size):
        """The output layer's activations for every sample: (n_samples, units) float32.

        Computed in blocks of ``max(batch_size, PREDICT_BLOCK)`` rows, with BLAS free to use
        its threads. A row's result can differ in the last bits (~1e-7) with the block it
        falls in and the block's size (tiled loops up to 256 rows, BLAS above, and BLAS
        splits products of different shapes differently), as the NumPy backend's do.
        """
        x = _as_rows(x)
        kernels, biases = self._bind_weights()
        if x.shape[0] == 0:
            return np.empty((0, kernels[-1].shape[1]), dtype=np.float32)
        block = min(max(batch_size, PREDICT_BLOCK), x.shape[0])
        zs = tuple(np.empty((block, k.shape[1]), dtype=np.float32) for k in kernels)
        acts = tuple(np.empty((block, k.shape[1]), dtype=np.float32) for k in kernels)
        out = np.empty((x.shape[0], kernels[-1].shape[1]), dtype=np.float32)
        K.predict(x, kernels, biases, zs, acts, self._codes, out)
        return out
