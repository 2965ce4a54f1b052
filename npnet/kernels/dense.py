"""numba kernels for a stack of Dense layers: forward, loss, backward, Adam, accuracy.

Every kernel names in its docstring the NumPy code it mirrors (a function of
:mod:`npnet.functional` for the arithmetic, :mod:`npnet.training` or the NumPy backend for the
passes) and does the same float32 operations, writing into preallocated buffers instead of
allocating. Where the order of a sum is not the NumPy code's own — matrix products (SciPy's
BLAS or the register-tiled loops here, NumPy's BLAS there), row sums (left to right here,
pairwise in NumPy) — results can differ in the last bit; nothing else differs. Three entry
points are called from Python (:mod:`npnet.backends.numba_backend`):

* :func:`train_batches` — gather a batch, forward, loss, backward, finiteness check, Adam;
  for one or more consecutive batches per call;
* :func:`evaluate_batch` — forward and loss of one batch, no update;
* :func:`predict` — forward over a whole array, block by block.

The layers of a model travel as tuples of arrays, one entry per Dense layer:
``kernels[i]`` (d_in, units), ``biases[i]`` (units,), their gradients and Adam moments of the
same shapes, and per-layer work buffers of ``capacity`` rows: ``zs[i]`` pre-activations,
``acts[i]`` activations, ``grads[i]`` the gradient w.r.t. ``acts[i]`` and then, in place,
w.r.t. ``zs[i]``. A batch of ``n <= capacity`` rows uses the first ``n`` rows of each buffer,
so the last, partial batch needs nothing new. ``codes[i]`` is layer i's activation (the
constants below) and ``loss_code`` how the loss meets the output layer. They travel
grouped in the named tuples :class:`Network`, :class:`AdamState` and :class:`Workspace`.

All kernels live in this one file on purpose: numba's on-disk cache of a function is
invalidated when *its* source file changes, not when a callee in another file does.
"""

from collections import namedtuple

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ._compile import kernel

# Activation codes (``codes[i]``); softmax is only allowed on the output layer.
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4

# How the loss meets the output layer (``loss_code``): the head :func:`npnet.heads.choose`
# decided, and for the general head whether the loss takes logits or probabilities.
#: ``heads.SOFTMAX_CROSSENTROPY``: loss and gradient from the output layer's logits
SOFTMAX_CROSSENTROPY = 0
#: ``heads.GENERAL`` with ``from_logits=True``: the output activations are the logits
CROSSENTROPY_OF_LOGITS = 1
#: ``heads.GENERAL`` with ``from_logits=False``: clipped cross-entropy of the probabilities
CROSSENTROPY_OF_PROBABILITIES = 2

# float32 constants: one float64 scalar in a loop would silently promote it to float64.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_CLIP_LOW = np.float32(1e-7)        # Keras's epsilon, as functional.sparse_categorical_crossentropy
_CLIP_HIGH = np.float32(1 - 1e-7)
_MAGNITUDE_BITS = np.uint32(0x7FFFFFFF)  # a float32's bits without its sign
#: the bits of sqrt(float32 max): for non-negative floats, larger bits mean a larger number,
#: and inf and NaN have larger bits than any finite float
_SQUARE_LIMIT_BITS = np.sqrt(np.finfo(np.float32).max).view(np.uint32)


#: the register tile of the two large products (:func:`dense_forward_tiled`,
#: :func:`dense_weight_gradient_tiled`): TILE_ROWS rows by TILE_COLUMNS columns of the result,
#: 256 float32 sums, which are 16 of the 32 AVX-512 registers
TILE_ROWS = 4
TILE_COLUMNS = 64
TILE = TILE_ROWS * TILE_COLUMNS
#: In training and evaluation every forward product whose units are a multiple of
#: TILE_COLUMNS is tiled (faster than one-thread BLAS at these sizes: docs/performance.md).
#: Prediction blocks of more rows than this go to BLAS instead, which can use its threads.
PREDICT_TILED_MAX_ROWS = 256
#: weight gradients of batches larger than this go to BLAS: the tiles read x by columns, and
#: for larger batches BLAS is faster (docs/performance.md)
GRADIENT_TILED_MAX_ROWS = 128


@intrinsic
def stack_accumulator(typingctx, size):
    """A float32 array of ``size`` (a literal) elements on the stack, for use as accumulators.

    numba has no stack arrays on the CPU, and an accumulator that lives in an argument array
    must be stored and reloaded on every step, since LLVM cannot prove it does not overlap the
    inputs. A fixed-size stack array provably overlaps nothing, so once its loops (of constant
    length) are unrolled LLVM keeps it in vector registers: the register tile of a matrix
    product. Nothing is allocated on the heap. Uninitialised: the caller writes it first.
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    n = size.literal_value
    array_type = types.Array(types.float32, 1, "C")

    def codegen(context, builder, signature, args):
        array = make_array(array_type)(context, builder)
        data = cgutils.alloca_once(builder, context.get_data_type(types.float32), size=n)
        intp = lambda value: context.get_constant(types.intp, value)  # noqa: E731
        populate_array(array, data=data, shape=[intp(n)], strides=[intp(4)], itemsize=intp(4),
                       meminfo=None)
        return array._getvalue()

    return array_type(size), codegen


# ----------------------------------------------------------------------------- data


@kernel
def gather_rows(x, labels, order, start, n, x_out, labels_out):
    """Copy samples ``order[start:start + n]`` into the batch buffers.

    Mirrors the fancy indexing ``x[index], y[index]`` of ``Sequential.fit``.
    x: (n_samples, d_in), labels: (n_samples,), order: (n_samples,) int64 ->
    x_out[:n]: (n, d_in), labels_out[:n]: (n,)
    """
    for row in range(n):
        source = order[start + row]
        labels_out[row] = labels[source]
        for j in range(x.shape[1]):
            x_out[row, j] = x[source, j]


# ----------------------------------------------------------------------------- Dense


@kernel
def dense_forward(x, kernel_, bias, z):
    """Mirrors ``functional.dense_forward``: ``z = x @ kernel + bias``.

    x: (n, d_in), kernel_: (d_in, units), bias: (units,) -> z: (n, units), written in place.
    The product goes to BLAS (SciPy's, through numba) straight into ``z``.
    """
    np.dot(x, kernel_, z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] += bias[j]


@kernel
def matmul_tiled(a, b, out):
    """``out = a @ b`` without BLAS, for the two large products of a Dense layer.

    a: (m, p), b: (p, q) with q a multiple of ``TILE_COLUMNS`` -> out: (m, q), written in
    place. The sums of a tile of ``TILE_ROWS`` rows by ``TILE_COLUMNS`` columns of ``out``
    stay in registers (:func:`stack_accumulator`) while ``a[i, k] * b[k, j]`` is added for
    k = 0, 1, ... in order, so each row of b read from memory serves ``TILE_ROWS`` rows of a.
    Rows left over (``m % TILE_ROWS``) get one-row tiles, with the same order of sums.
    Compiled for this CPU, this uses its widest vectors, where the BLAS may be limited to
    older ones (``OPENBLAS_CORETYPE``). a may be a transposed view (the weight gradient).
    """
    m, p = a.shape
    whole = m - m % TILE_ROWS
    for i0 in range(0, whole, TILE_ROWS):
        for j0 in range(0, b.shape[1], TILE_COLUMNS):
            total = stack_accumulator(TILE)
            for t in range(TILE):
                total[t] = _ZERO
            for k in range(p):
                b_row = b[k, j0:j0 + TILE_COLUMNS]
                for r in range(TILE_ROWS):
                    value = a[i0 + r, k]
                    for j in range(TILE_COLUMNS):
                        total[r * TILE_COLUMNS + j] += value * b_row[j]
            for r in range(TILE_ROWS):
                out_row = out[i0 + r, j0:j0 + TILE_COLUMNS]
                for j in range(TILE_COLUMNS):
                    out_row[j] = total[r * TILE_COLUMNS + j]
    for i in range(whole, m):
        for j0 in range(0, b.shape[1], TILE_COLUMNS):
            total = stack_accumulator(TILE_COLUMNS)
            for j in range(TILE_COLUMNS):
                total[j] = _ZERO
            for k in range(p):
                value = a[i, k]
                b_row = b[k, j0:j0 + TILE_COLUMNS]
                for j in range(TILE_COLUMNS):
                    total[j] += value * b_row[j]
            out_row = out[i, j0:j0 + TILE_COLUMNS]
            for j in range(TILE_COLUMNS):
                out_row[j] = total[j]


@kernel
def dense_forward_tiled(x, kernel_, bias, z):
    """Mirrors ``functional.dense_forward``: ``z = x @ kernel + bias``, without BLAS.

    x: (n, d_in), kernel_: (d_in, units) with units a multiple of ``TILE_COLUMNS``, bias:
    (units,) -> z: (n, units), written in place: :func:`matmul_tiled`, then the bias (each
    sum is complete before the bias is added, as in NumPy).
    """
    matmul_tiled(x, kernel_, z)
    for i in range(z.shape[0]):
        row = z[i]
        for j in range(z.shape[1]):
            row[j] += bias[j]


@kernel
def dense_weight_gradient_tiled(dL_dz, x, dL_dkernel):
    """Mirrors the kernel gradient of ``functional.dense_backward``: ``x.T @ dL_dz``, without BLAS.

    dL_dz: (n, units) with units a multiple of ``TILE_COLUMNS``, x: (n, d_in) ->
    dL_dkernel: (d_in, units): :func:`matmul_tiled` on the transposed view of x, so a tile
    is ``TILE_ROWS`` input features by ``TILE_COLUMNS`` units, each row of dL_dz read serves
    ``TILE_ROWS`` features, and the sum over samples runs in order i = 0, 1, ...
    """
    matmul_tiled(x.T, dL_dz, dL_dkernel)


@kernel
def dense_backward(dL_dz, x, kernel_, dL_dkernel, dL_dbias, dL_dx, need_input_grad):
    """Mirrors ``functional.dense_backward``; results written into the given buffers.

    dL_dz: (n, units), x: (n, d_in), kernel_: (d_in, units) ->
    dL_dkernel = x.T @ dL_dz (d_in, units), dL_dbias = column sums of dL_dz (units,),
    dL_dx = dL_dz @ kernel_.T (n, d_in) when ``need_input_grad``.
    The kernel gradient is :func:`dense_weight_gradient_tiled` when the units are a multiple
    of ``TILE_COLUMNS`` and the batch has at most ``GRADIENT_TILED_MAX_ROWS`` rows, BLAS
    otherwise. The bias gradient adds the rows one after another, in the order NumPy's
    ``sum(axis=0)`` does.
    """
    if dL_dz.shape[1] % TILE_COLUMNS == 0 and dL_dz.shape[0] <= GRADIENT_TILED_MAX_ROWS:
        dense_weight_gradient_tiled(dL_dz, x, dL_dkernel)
    else:
        np.dot(x.T, dL_dz, dL_dkernel)
    for j in range(dL_dz.shape[1]):
        dL_dbias[j] = dL_dz[0, j]
    for i in range(1, dL_dz.shape[0]):
        for j in range(dL_dz.shape[1]):
            dL_dbias[j] += dL_dz[i, j]
    if need_input_grad:
        np.dot(dL_dz, kernel_.T, dL_dx)


# ----------------------------------------------------------------------------- activations


@kernel
def row_maximum(z, i):
    """The maximum of row i of z, which the stable softmax and log-sum-exp subtract.

    Mirrors ``z.max(axis=1)`` for finite rows. A NaN in the row is skipped here (unless it is
    the first entry) where NumPy returns NaN, but the row's ``exp(z - max)`` then holds that
    NaN either way, so the softmax and the loss are NaN in both.
    """
    row_max = z[i, 0]
    for j in range(1, z.shape[1]):
        if z[i, j] > row_max:
            row_max = z[i, j]
    return row_max


@kernel
def softmax_forward(z, p):
    """Mirrors ``functional.softmax_forward``: row-wise softmax.  z: (n, k) -> p: (n, k)."""
    for i in range(z.shape[0]):
        row_max = row_maximum(z, i)
        total = _ZERO
        for j in range(z.shape[1]):
            p[i, j] = np.exp(z[i, j] - row_max)
            total += p[i, j]
        for j in range(z.shape[1]):
            p[i, j] = p[i, j] / total


@kernel
def activation_forward(code, z, a):
    """Mirrors ``functional.{linear,relu,sigmoid,tanh,softmax}_forward``.  z, a: (n, units)."""
    n, units = z.shape
    if code == LINEAR:
        for i in range(n):
            for j in range(units):
                a[i, j] = z[i, j]
    elif code == RELU:
        # np.maximum(z, 0) keeps z when z >= 0 or z is NaN
        for i in range(n):
            for j in range(units):
                a[i, j] = _ZERO if z[i, j] < _ZERO else z[i, j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(units):
                e = np.exp(-np.abs(z[i, j]))
                a[i, j] = _ONE / (_ONE + e) if z[i, j] >= _ZERO else e / (_ONE + e)
    elif code == TANH:
        for i in range(n):
            for j in range(units):
                a[i, j] = np.tanh(z[i, j])
    elif code == SOFTMAX:
        softmax_forward(z, a)
    else:
        raise ValueError("unknown activation code")


@kernel
def activation_backward(code, grad, z, a):
    """Mirrors ``functional.{linear,relu,sigmoid,tanh}_backward``, in place.

    grad: (n, units) holds dL_da on entry and dL_dz on return; z, a: (n, units).
    (Softmax is only ever an output layer, whose gradient comes from the loss head.)
    """
    n, units = grad.shape
    if code == LINEAR:
        return
    elif code == RELU:
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * (_ONE if z[i, j] > _ZERO else _ZERO)
    elif code == SIGMOID:
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * a[i, j] * (_ONE - a[i, j])
    elif code == TANH:
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * (_ONE - a[i, j] * a[i, j])
    else:
        raise ValueError("activation code without a backward kernel")


# ----------------------------------------------------------------------------- losses


@kernel
def crossentropy_from_logits_sum(z, labels):
    """Mirrors ``functional.sparse_categorical_crossentropy_from_logits`` (the sum, not the mean).

    z: (n, k) logits, labels: (n,) -> Σ_i (logsumexp(z_i) - z_i[label_i]), each term in float32.
    """
    total = 0.0  # float64 accumulator over samples; each sample's term is float32 as in NumPy
    for i in range(z.shape[0]):
        row_max = row_maximum(z, i)
        exp_sum = _ZERO
        for j in range(z.shape[1]):
            exp_sum += np.exp(z[i, j] - row_max)
        total += np.log(exp_sum) - (z[i, labels[i]] - row_max)
    return total


@kernel
def softmax_crossentropy_backward(p, labels, dL_dz):
    """Mirrors ``functional.softmax_crossentropy_backward``: ``dL_dz = (p - onehot) / n``.

    p: (n, k) probabilities, labels: (n,) -> dL_dz: (n, k) (may be ``p`` itself).
    """
    n, k = p.shape
    n_float = np.float32(n)
    for i in range(n):
        for j in range(k):
            value = p[i, j] - _ONE if j == labels[i] else p[i, j]
            dL_dz[i, j] = value / n_float


@kernel
def clip_probability(p):
    """``np.clip(p, 1e-7, 1 - 1e-7)`` for one float32 (NaN stays NaN, as in NumPy)."""
    if p < _CLIP_LOW:
        return _CLIP_LOW
    if p > _CLIP_HIGH:
        return _CLIP_HIGH
    return p


@kernel
def crossentropy_probabilities_sum(p, labels):
    """Mirrors ``functional.sparse_categorical_crossentropy`` (the sum, not the mean).

    p: (n, k) probabilities, labels: (n,) -> Σ_i (log Σ_k c_ik - log c_i[label_i]) with
    ``c = clip(p, 1e-7, 1 - 1e-7)``, each term in float32.
    """
    total = 0.0
    for i in range(p.shape[0]):
        row_sum = _ZERO
        for j in range(p.shape[1]):
            row_sum += clip_probability(p[i, j])
        total += np.log(row_sum) - np.log(clip_probability(p[i, labels[i]]))
    return total


@kernel
def crossentropy_probabilities_backward(p, labels, dL_dp):
    """Mirrors ``functional.sparse_categorical_crossentropy_backward``.

    p: (n, k), labels: (n,) -> dL_dp: (n, k) = ``(1/S - [k = y] / c_y) / n`` with
    ``c = clip(p)`` and ``S = Σ_k c_k`` per row, and zero where the clip was active.
    """
    n, k = p.shape
    n_float = np.float32(n)
    for i in range(n):
        row_sum = _ZERO
        for j in range(k):
            row_sum += clip_probability(p[i, j])
        inverse_sum = _ONE / row_sum
        for j in range(k):
            value = inverse_sum
            if j == labels[i]:
                value = inverse_sum - _ONE / clip_probability(p[i, j])
            inside = p[i, j] >= _CLIP_LOW and p[i, j] <= _CLIP_HIGH
            dL_dp[i, j] = (value if inside else _ZERO) / n_float


@kernel
def output_loss(loss_code, z, a, labels):
    """The batch-mean loss as ``npnet.training.loss_value`` computes it, as a float32.

    z, a: (n, k) the output layer's logits and activations, labels: (n,).
    Each sample's loss is float32; their mean is accumulated in float64 and rounded once
    (NumPy takes a float32 pairwise mean), which touches only the reported loss.
    """
    n = z.shape[0]
    if loss_code == SOFTMAX_CROSSENTROPY:
        total = crossentropy_from_logits_sum(z, labels)
    elif loss_code == CROSSENTROPY_OF_LOGITS:
        total = crossentropy_from_logits_sum(a, labels)
    else:
        total = crossentropy_probabilities_sum(a, labels)
    return np.float32(total / n)


@kernel
def output_gradient(loss_code, code, z, a, labels, dL_dz):
    """dL/dz of the output layer, as ``npnet.training.backward`` starts it.

    z, a: (n, k), labels: (n,) -> dL_dz: (n, k).
    """
    if loss_code == SOFTMAX_CROSSENTROPY:
        softmax_crossentropy_backward(a, labels, dL_dz)
        return
    if loss_code == CROSSENTROPY_OF_LOGITS:
        # loss.gradient with from_logits: gradient_wrt_logits(y, softmax_forward(output))
        softmax_forward(a, dL_dz)
        softmax_crossentropy_backward(dL_dz, labels, dL_dz)
    else:
        crossentropy_probabilities_backward(a, labels, dL_dz)
    activation_backward(code, dL_dz, z, a)


# ----------------------------------------------------------------------------- metrics


@kernel
def count_correct(p, labels):
    """Mirrors ``functional.count_correct``: rows whose argmax is the label.

    p: (n, k), labels: (n,) -> int. Like ``np.argmax``: the first maximum, or the first NaN.
    """
    correct = 0
    for i in range(p.shape[0]):
        best = 0
        for j in range(p.shape[1]):
            if np.isnan(p[i, j]):
                best = j
                break
            if p[i, j] > p[i, best]:
                best = j
        if best == labels[i]:
            correct += 1
    return correct


# ----------------------------------------------------------------------------- Adam


@kernel
def too_large_to_square(array):
    """True if an entry is inf, NaN, or so large that its square overflows (|g| > sqrt(max)).

    Mirrors ``npnet.training.all_finite`` (negated): Adam and RMSprop square each gradient,
    so such a step would make their state inf. Looks at the bits: without the sign bit, a
    float32's bits grow with its magnitude, and inf and NaN come above every finite number.
    An integer maximum is associative, so this loop vectorises without fastmath (and cannot
    be fooled the way ``isnan`` is under fastmath).
    """
    bits = array.reshape(array.size).view(np.uint32)
    largest = np.uint32(0)
    for i in range(bits.size):
        largest = max(largest, bits[i] & _MAGNITUDE_BITS)
    return largest > _SQUARE_LIMIT_BITS


@kernel
def adam_step_size(step, learning_rate, beta_1, beta_2):
    """Mirrors the step size of ``functional.adam_update``: ``lr·sqrt(1 - β2^t) / (1 - β1^t)``.

    All in float32, as NumPy computes it from float32 scalars.
    """
    t = np.float32(step)
    return learning_rate * np.sqrt(_ONE - beta_2 ** t) / (_ONE - beta_1 ** t)


@kernel
def adam_update(param, grad, m, v, alpha, beta_1, beta_2, epsilon):
    """Mirrors ``functional.adam_update`` (given its step size ``alpha``), in place.

    param, grad, m, v: arrays of one shape (C-contiguous), float32.
    """
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    m_flat = m.reshape(m.size)
    v_flat = v.reshape(v.size)
    one_minus_beta_1 = _ONE - beta_1
    one_minus_beta_2 = _ONE - beta_2
    for i in range(param_flat.size):
        g = grad_flat[i]
        m_flat[i] += (g - m_flat[i]) * one_minus_beta_1
        v_flat[i] += (g * g - v_flat[i]) * one_minus_beta_2
        param_flat[i] -= (m_flat[i] * alpha) / (np.sqrt(v_flat[i]) + epsilon)


# ----------------------------------------------------------------------------- whole passes


@kernel
def forward_pass(x, n, kernels, biases, zs, acts, codes, tiled_max_rows):
    """Mirrors ``npnet.training.forward`` for Dense layers, on the first ``n`` rows.

    x: (>= n, d_in) -> zs[i][:n], acts[i][:n] for every layer i. Products of up to
    ``tiled_max_rows`` rows are register-tiled (units permitting), larger ones go to BLAS.
    """
    for i in range(len(kernels)):
        layer_input = x[:n] if i == 0 else acts[i - 1][:n]
        if n <= tiled_max_rows and kernels[i].shape[1] % TILE_COLUMNS == 0:
            dense_forward_tiled(layer_input, kernels[i], biases[i], zs[i][:n])
        else:
            dense_forward(layer_input, kernels[i], biases[i], zs[i][:n])
        activation_forward(codes[i], zs[i][:n], acts[i][:n])


@kernel
def backward_pass(x, n, kernels, zs, acts, grads, codes, kernel_grads, bias_grads):
    """Mirrors ``npnet.training.backward`` once ``grads[-1][:n]`` holds dL/dz of the output layer.

    Fills kernel_grads[i], bias_grads[i] for every layer; the input's gradient is not needed.
    """
    for i in range(len(kernels) - 1, -1, -1):
        layer_input = x[:n] if i == 0 else acts[i - 1][:n]
        below = i - 1 if i > 0 else 0
        dense_backward(grads[i][:n], layer_input, kernels[i], kernel_grads[i], bias_grads[i],
                       grads[below][:n], i > 0)
        if i > 0:
            activation_backward(codes[i - 1], grads[i - 1][:n], zs[i - 1][:n], acts[i - 1][:n])


@kernel
def gradients_finite(kernel_grads, bias_grads):
    """Mirrors ``npnet.training.all_finite`` over every parameter gradient."""
    for i in range(len(kernel_grads)):
        if too_large_to_square(kernel_grads[i]) or too_large_to_square(bias_grads[i]):
            return False
    return True


# ----------------------------------------------------------------------------- entry points

#: The model, as the kernels see it: one entry per Dense layer in each tuple.
Network = namedtuple("Network", ["kernels", "biases", "codes", "loss_code"])
#: Adam's state, owned by the optimizer: moments per Dense layer, the float32
#: ``[learning_rate, beta_1, beta_2, epsilon]`` and the one-element step counter.
AdamState = namedtuple("AdamState", ["kernel_m", "kernel_v", "bias_m", "bias_v", "hyper", "step_counter"])
#: Preallocated arrays a training call writes: the gathered batch, per-layer
#: pre-activations, activations and gradients (``capacity`` rows), and the parameter gradients.
Workspace = namedtuple("Workspace", ["x", "labels", "zs", "acts", "grads", "kernel_grads", "bias_grads"])


@kernel
def adam_apply(net, adam, work):
    """Mirrors ``Adam.apply_gradients``: advance the step counter, update every parameter."""
    learning_rate, beta_1, beta_2, epsilon = adam.hyper[0], adam.hyper[1], adam.hyper[2], adam.hyper[3]
    adam.step_counter[0] += 1
    alpha = adam_step_size(adam.step_counter[0], learning_rate, beta_1, beta_2)
    for i in range(len(net.kernels)):
        adam_update(net.kernels[i], work.kernel_grads[i], adam.kernel_m[i], adam.kernel_v[i],
                    alpha, beta_1, beta_2, epsilon)
        adam_update(net.biases[i], work.bias_grads[i], adam.bias_m[i], adam.bias_v[i],
                    alpha, beta_1, beta_2, epsilon)


@kernel
def train_batches(x, labels, order, batch_size, first_step, n_steps, net, adam, work, losses, corrects):
    """Train on batches ``first_step, ..., first_step + n_steps - 1`` of one epoch.

    Mirrors ``NumpyBackend.train_steps``: batch ``s`` is the samples
    ``order[s * batch_size:(s + 1) * batch_size]`` (the last batch may be shorter), and each
    step is forward, loss, backward, the finiteness check and Adam's update, with the step
    counter advanced with the weights (so an interrupt between calls finds them consistent).

    x: (n_samples, d_in) float32, labels: (n_samples,) int64, order: (n_samples,) int64.
    Writes each batch's mean loss into ``losses[k]`` and its correct count into ``corrects[k]``.
    A batch whose loss or any gradient is not finite is *not* applied and ends the call.
    Returns ``(n_done, last_applied)``.
    """
    n_samples = x.shape[0]
    last = len(net.kernels) - 1
    for k in range(n_steps):
        start = (first_step + k) * batch_size
        n = min(batch_size, n_samples - start)
        gather_rows(x, labels, order, start, n, work.x, work.labels)
        batch_labels = work.labels[:n]
        forward_pass(work.x, n, net.kernels, net.biases, work.zs, work.acts, net.codes, n)
        output = work.acts[last][:n]
        loss = output_loss(net.loss_code, work.zs[last][:n], output, batch_labels)
        losses[k] = loss
        corrects[k] = count_correct(output, batch_labels)
        output_gradient(net.loss_code, net.codes[last], work.zs[last][:n], output, batch_labels,
                        work.grads[last][:n])
        backward_pass(work.x, n, net.kernels, work.zs, work.acts, work.grads, net.codes,
                      work.kernel_grads, work.bias_grads)
        if not (np.isfinite(loss) and gradients_finite(work.kernel_grads, work.bias_grads)):
            return k + 1, False
        adam_apply(net, adam, work)
    return n_steps, True


@kernel
def evaluate_batch(x, labels, net, zs, acts):
    """Mirrors ``NumpyBackend.test_batch``: ``(mean loss, correct count)`` of one batch.

    x: (n, d_in) with n <= the buffers' capacity, labels: (n,).
    """
    n = x.shape[0]
    last = len(net.kernels) - 1
    forward_pass(x, n, net.kernels, net.biases, zs, acts, net.codes, n)
    loss = output_loss(net.loss_code, zs[last][:n], acts[last][:n], labels)
    return loss, count_correct(acts[last][:n], labels)


@kernel
def predict(x, net, zs, acts, out):
    """Mirrors ``NumpyBackend.predict``: the output layer's activations for every row of x.

    x: (n_samples, d_in) -> out: (n_samples, units), computed in blocks of the buffers'
    capacity: blocks of up to ``PREDICT_TILED_MAX_ROWS`` rows with the register-tiled
    products, larger ones with BLAS (which can use its threads). A row's result can
    therefore differ in the last bits with the block it falls in, as BLAS's own results
    differ with the shape of the product.
    """
    n_samples = x.shape[0]
    block = zs[0].shape[0]
    last = len(net.kernels) - 1
    for start in range(0, n_samples, block):
        n = min(block, n_samples - start)
        forward_pass(x[start:start + n], n, net.kernels, net.biases, zs, acts, net.codes,
                     PREDICT_TILED_MAX_ROWS)
        # Element by element: a slice assignment would also compile numba's shape-mismatch
        # error message, a large part of the first compile, for a check that cannot fail here.
        output = acts[last]
        for i in range(n):
            for j in range(output.shape[1]):
                out[start + i, j] = output[i, j]
