"""numba kernels for a stack of Dense layers: forward, loss, backward, optimizers, accuracy.

Every kernel names in its docstring the NumPy code it mirrors (a function of
:mod:`npnet.functional` for the arithmetic, :mod:`npnet.training` or the NumPy backend for the
passes) and does the same operations in the weights' dtype (float32 or float64), writing into
preallocated buffers instead of allocating. Where the order of a sum is not the NumPy code's
own — matrix products (SciPy's BLAS or the register-tiled loops here, NumPy's BLAS there),
row sums (left to right here, pairwise in NumPy) — results can differ in the last bit;
nothing else differs. Three entry points are called from Python
(:mod:`npnet.backends.numba_backend`):

* :func:`train_batches` — gather a batch, forward (with dropout), loss (with weight
  penalties), backward, finiteness check, the optimizer's update; for one or more
  consecutive batches per call;
* :func:`evaluate_batch` — forward and loss of one batch, no update;
* :func:`predict` — forward over a whole array, block by block.

The layers of a model travel as tuples of arrays, one entry per Dense layer:
``kernels[i]`` (d_in, units), ``biases[i]`` (units,), their gradients and optimizer state of
the same shapes, and per-layer work buffers of ``capacity`` rows: ``zs[i]`` pre-activations,
``acts[i]`` activations, ``grads[i]`` the gradient w.r.t. ``acts[i]`` and then, in place,
w.r.t. ``zs[i]``. A batch of ``n <= capacity`` rows uses the first ``n`` rows of each buffer,
so the last, partial batch needs nothing new. ``codes[i]`` is layer i's activation (the
constants below) and ``loss_code`` how the loss meets the output layer. They travel
grouped in the named tuples at the end of this file.

What a model does not use costs nothing, not even compile time: an optional part (the
one-hot targets, dropout, weight penalties, each optimizer's family and slots, the softmax
head's ``loss_code``, the buffer of kept outputs, the sample weights, the label
smoothing and the pairwise sum of a one-unit layer) travels as ``None`` when absent, and numba removes a branch
``if part is not None`` before compiling when ``part`` is an argument of the type of None
(not an attribute: that test is made where the part is a function's argument). So each
model compiles only its own optimizer, loss head and options, and a float64 model gets its
own float64 machine code. Where a part cannot be None, its *type* says which code to
compile: the common activations travel as int64 codes, the others as float64 activation
rows; the cross-entropies' ``loss_code`` is None or an int, the binary and regression
losses' a float64 loss row, Keras's other losses of such targets an :data:`OtherLoss`; an
``@overload`` picks the function by that type (and L1 coefficients are None without an L1 term).

Adding an activation: a code below, a branch in :func:`other_activation_forward` and one in
:func:`other_activation_backward`. Adding a loss of targets shaped like the output: a code,
a branch in :func:`target_entry_loss` and one in :func:`target_gradient` (or, to keep it
out of the common models' compile, an :data:`OtherLoss` code with branches in
:func:`other_entry_loss` and :func:`other_entry_gradient`, or row functions).

All kernels live in this one file on purpose: numba's on-disk cache of a function is
invalidated when *its* source file changes, not when a callee in another file does.
"""

import platform
from collections import namedtuple

import llvmlite.binding as llvm_binding
import llvmlite.ir as llvm_ir
import numba
import numpy as np
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array

from ._compile import KERNEL_OPTIONS, kernel, parallel_kernel, summing_kernel

# Activation codes (``codes[i]``), by the name of the npnet activation each mirrors.
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4
#: Keras's other activations: compiled only for a model that uses one (see :func:`activation_forward`).
ELU, SELU, GELU, SOFTPLUS, SOFTSIGN, SILU, LEAKY_RELU, EXPONENTIAL, HARD_SIGMOID = range(5, 14)
ACTIVATION_CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX,
                    "elu": ELU, "selu": SELU, "gelu": GELU, "softplus": SOFTPLUS, "softsign": SOFTSIGN,
                    "silu": SILU, "leaky_relu": LEAKY_RELU, "exponential": EXPONENTIAL,
                    "hard_sigmoid": HARD_SIGMOID}
#: A model whose codes are all below this one has int64 ``codes``; any other has activation
#: rows: ``codes[i] = (code, parameter)`` in float64, the parameter being leaky_relu's slope or
#: elu's alpha (0 for the others). numba compiles the other activations for rows only.
FIRST_OTHER_CODE = ELU
#: Keras's ``ReLU`` layer with a ``max_value`` or a ``threshold`` (a layer's option, no
#: activation name): its row is ``(RELU_GENERAL, negative_slope, threshold, max_value, cap)``,
#: ``cap`` one of the three below (:func:`relu_general_forward`)
RELU_GENERAL = 14
#: no max_value; the slope is 1 up to ``z <= max_value``; relu6's own op: up to ``z < 6``
RELU_NO_CAP, RELU_CAP, RELU6_CAP = 0, 1, 2
#: SELU's constants, as ``npnet.functional.SELU_ALPHA``/``SELU_SCALE`` (a test checks they agree;
#: kept here so that numba's cache of this file sees them)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# How the loss meets the output layer (``loss_code``): the head :func:`npnet.heads.choose`
# decided, and for the general head whether the loss takes logits or probabilities. Sparse
# losses read integer ``labels``; categorical ones one-hot (or soft) ``targets`` rows.
#: ``heads.SOFTMAX_CROSSENTROPY``: loss and gradient from the output layer's logits. None, so
#: that numba compiles only this head's code for it (and only the general head's otherwise).
SOFTMAX_CROSSENTROPY = None
#: ``heads.GENERAL`` with ``from_logits=True``: the output activations are the logits
CROSSENTROPY_OF_LOGITS = 1
#: ``heads.GENERAL`` with ``from_logits=False``: clipped cross-entropy of the probabilities
CROSSENTROPY_OF_PROBABILITIES = 2
#: The losses of targets shaped like the output (binary and regression) travel as a loss row
#: ``(code, delta)`` in float64 (delta: Huber's, else 0), for which alone numba compiles them:
#: mean squared / absolute error, Huber, binary cross-entropy of probabilities or of logits
#: (``heads.GENERAL``), and of a sigmoid output's logits (``heads.SIGMOID_BINARY_CROSSENTROPY``)
MEAN_SQUARED_ERROR, MEAN_ABSOLUTE_ERROR, HUBER = 3, 4, 5
BINARY_OF_PROBABILITIES, BINARY_OF_LOGITS, SIGMOID_BINARY_CROSSENTROPY = 6, 7, 8
#: Keras's other losses of targets shaped like the output travel as an :data:`OtherLoss`, a
#: type of their own, for which alone numba compiles them (:func:`other_loss_value`): a model
#: with a loss row never compiles them, nor one with an ``OtherLoss`` the loss row's code
MEAN_ABSOLUTE_PERCENTAGE_ERROR, MEAN_SQUARED_LOGARITHMIC_ERROR, LOG_COSH, KL_DIVERGENCE, POISSON = range(9, 14)
HINGE, SQUARED_HINGE, CATEGORICAL_HINGE, COSINE_SIMILARITY = range(14, 18)
#: ``Network.loss_code`` of one of the losses above: its int64 ``code``
OtherLoss = namedtuple("OtherLoss", ["code"])
#: ``keras.backend.epsilon()``, as ``npnet.functional.EPSILON`` (a test checks they agree)
EPSILON = 1e-7

# Exact in every float type, so mixing them in never changes a float32 result; constants
# that are not exact (Keras's clip epsilon) travel in ``Network.constants`` in the weights' dtype.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
#: ``Network.constants`` in the weights' dtype (made by :func:`constants`): the clip range of
#: ``functional.sparse_categorical_crossentropy``, and the largest gradient whose square is finite
CLIP_LOW, CLIP_HIGH, SQUARE_LIMIT = 0, 1, 2


def constants(dtype):
    """The array ``Network.constants`` for weights of ``dtype``."""
    return np.array([1e-7, 1 - 1e-7, np.sqrt(np.finfo(dtype).max)], dtype=dtype)


def _vector_bytes():
    """The width in bytes of the widest float vectors numba compiles for on this CPU.

    numba targets the host CPU unless ``NUMBA_CPU_NAME`` names another, in which case only
    the 16-byte vectors every x86-64 and ARM64 CPU has are assumed.
    """
    if numba.config.CPU_NAME not in (None, "host"):
        return 16
    features = llvm_binding.get_host_cpu_features()
    if features.get("avx512f"):
        return 64
    if features.get("avx"):
        return 32
    return 16


#: The register tile of the large products (:func:`matmul_tiled`): TILE_ROWS rows of the
#: result by TILE_VECTORS vectors of VECTOR_BYTES, that is 64 float32 or 32 float64 columns
#: on a CPU with AVX-512, whose 32 vector registers then hold the 16 sums, the 4 vectors of
#: b and a broadcast value; 8 sums on CPUs with 16 vector registers.
VECTOR_BYTES = _vector_bytes()
TILE_ROWS = 4
TILE_VECTORS = 4 if VECTOR_BYTES == 64 else 2
#: The forward product sums over its inner dimension in blocks of this many steps, so that the
#: block of b a tile reads (128 × 256 bytes for the tutorial's first layer) is still in the
#: L1 cache for the next rows of x instead of coming again from L2 (docs/performance.md).
DEPTH_BLOCK = 128
#: In training and evaluation every forward product whose units are a whole number of tiles
#: is tiled (faster than one-thread BLAS at these sizes: docs/performance.md).
#: Prediction blocks of more rows than this go to BLAS instead, which can use its threads.
PREDICT_TILED_MAX_ROWS = 256
#: weight gradients of batches larger than this go to BLAS: the tiles read x by columns, and
#: for larger batches BLAS is faster (docs/performance.md)
GRADIENT_TILED_MAX_ROWS = 128


@intrinsic
def register_tile(typingctx, a, b, out, row, column, k_start, k_stop, accumulate, rows):
    """``out[row:row + rows, column:column + w] (+)= a[row:row + rows, k_start:k_stop] @ b[k_start:k_stop, column:column + w]``
    with ``w = TILE_VECTORS · VECTOR_BYTES / itemsize`` columns, its sums in vector registers.

    a: (m, p) with any strides (the weight gradient passes a transposed view), b: (p, q) and
    out: (m, q) C-contiguous, one float dtype; ``rows`` a literal (TILE_ROWS, or 1 for the
    rows left over). Starts from zero, or from ``out`` when ``accumulate``. For k in order,
    each sum gets ``a[i, k] · b[k, j]`` added with one multiply-add (LLVM's ``fmuladd``: fused
    where the CPU has FMA), so splitting k into blocks gives the same result as one pass.
    numba cannot keep an array in registers, and LLVM's own vectoriser chooses narrower
    vectors than the CPU has on many Intel CPUs; hence this tile written in LLVM's IR.
    """
    if not isinstance(rows, types.IntegerLiteral):
        return None
    if not (b.layout in "CA" and out.layout in "CA" and a.dtype == b.dtype == out.dtype):
        return None
    signature = types.none(a, b, out, row, column, k_start, k_stop, accumulate, rows)

    def codegen(context, builder, signature, args):
        tile = _TileBuilder(context, builder, signature, args)
        tile.emit(rows.literal_value)
        return context.get_dummy_value()
    return signature, codegen


class _TileBuilder:
    """Emits :func:`register_tile`'s IR: load or zero the sums, the loop over k, the stores."""

    def __init__(self, context, builder, signature, args):
        a_type, b_type, out_type = signature.args[:3]
        self.builder = builder
        self.a = make_array(a_type)(context, builder, args[0])
        self.b = make_array(b_type)(context, builder, args[1])
        self.out = make_array(out_type)(context, builder, args[2])
        self.row, self.column, self.k_start, self.k_stop, self.accumulate = args[3:8]
        self.element = context.get_data_type(out_type.dtype)
        self.itemsize = context.get_abi_sizeof(self.element)
        self.lanes = VECTOR_BYTES // self.itemsize
        self.vector = llvm_ir.VectorType(self.element, self.lanes)
        self.intp = context.get_value_type(types.intp)

    def constant(self, value):
        return llvm_ir.Constant(self.intp, value)

    def offset(self, pointer, n_bytes, to=None):
        """``pointer`` moved by ``n_bytes``, as a pointer to ``to`` (default: bytes)."""
        byte_pointer = llvm_ir.IntType(8).as_pointer()
        moved = self.builder.gep(self.builder.bitcast(pointer, byte_pointer), [n_bytes])
        return moved if to is None else self.builder.bitcast(moved, to.as_pointer())

    def row_start(self, array, r):
        """Address of ``array[row + r, column]``'s row start (``column`` for out and b only)."""
        stride = cgutils.unpack_tuple(self.builder, array.strides, 2)[0]
        return self.offset(array.data, self.builder.mul(self.builder.add(self.row, self.constant(r)), stride))

    def out_vector(self, r, v):
        builder = self.builder
        column_bytes = builder.mul(self.column, self.constant(self.itemsize))
        return self.offset(self.row_start(self.out, r), builder.add(column_bytes, self.constant(v * VECTOR_BYTES)),
                           to=self.vector)

    def emit(self, n_rows):
        builder = self.builder
        zero = llvm_ir.Constant(self.vector, None)
        sums = [[cgutils.alloca_once(builder, self.vector) for v in range(TILE_VECTORS)] for r in range(n_rows)]
        for r in range(n_rows):
            for v in range(TILE_VECTORS):
                start = builder.select(self.accumulate, builder.load(self.out_vector(r, v), align=self.itemsize), zero)
                builder.store(start, sums[r][v])
        multiply_add = cgutils.get_or_insert_function(
            builder.module, llvm_ir.FunctionType(self.vector, [self.vector] * 3),
            f"llvm.fmuladd.v{self.lanes}f{self.itemsize * 8}")
        a_rows = [self.row_start(self.a, r) for r in range(n_rows)]
        a_column_stride = cgutils.unpack_tuple(builder, self.a.strides, 2)[1]
        b_row_stride = cgutils.unpack_tuple(builder, self.b.strides, 2)[0]
        b_first = self.offset(self.b.data, builder.mul(self.column, self.constant(self.itemsize)))
        with cgutils.for_range_slice(builder, self.k_start, self.k_stop, self.constant(1)) as (k, _):
            b_row = self.offset(b_first, builder.mul(k, b_row_stride))
            b_vectors = [builder.load(self.offset(b_row, self.constant(v * VECTOR_BYTES), to=self.vector),
                                      align=self.itemsize) for v in range(TILE_VECTORS)]
            for r in range(n_rows):
                value = builder.load(self.offset(a_rows[r], builder.mul(k, a_column_stride), to=self.element))
                broadcast = self.splat(value)
                for v in range(TILE_VECTORS):
                    total = builder.call(multiply_add, [broadcast, b_vectors[v], builder.load(sums[r][v])])
                    builder.store(total, sums[r][v])
        for r in range(n_rows):
            for v in range(TILE_VECTORS):
                builder.store(builder.load(sums[r][v]), self.out_vector(r, v), align=self.itemsize)

    def splat(self, value):
        """A vector with ``value`` in every lane."""
        undefined = llvm_ir.Constant(self.vector, llvm_ir.Undefined)
        first = self.builder.insert_element(undefined, value, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        lanes_zero = llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), self.lanes), None)
        return self.builder.shuffle_vector(first, undefined, lanes_zero)


def same_type(like, value):
    """``value`` as a scalar of the dtype of ``like`` (an array or a scalar), as
    ``like.dtype.type(value)`` in NumPy; numba picks the cast at compile time."""
    raise NotImplementedError  # only ever called from kernels


@overload(same_type)
def _same_type(like, value):
    if getattr(like, "dtype", like) == types.float32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


# ----------------------------------------------------------------------------- data


@kernel
def gather_rows(x, labels, targets, order, start, n, x_out, labels_out, targets_out):
    """Copy samples ``order[start:start + n]`` into the batch buffers.

    Mirrors the fancy indexing ``x[index], y[index]`` of ``Sequential.fit``.
    x: (n_samples, d_in), order: (n_samples,) int64, and either labels: (n_samples,) int64
    or, for a categorical loss, targets: (n_samples, k) -> x_out[:n], labels_out[:n] and
    targets_out[:n]. With targets, ``labels_out`` gets each row's first largest target, the
    class ``Accuracy`` compares with (``y_true.argmax(axis=1)``).
    """
    for row in range(n):
        source = order[start + row]
        for j in range(x.shape[1]):
            x_out[row, j] = x[source, j]
        if targets is not None:
            best = 0
            for j in range(targets.shape[1]):
                targets_out[row, j] = targets[source, j]
                if targets[source, j] > targets[source, best]:
                    best = j
            labels_out[row] = best
        else:
            labels_out[row] = labels[source]
# ----------------------------------------------------------------------------- Dense


#: ``Normalization`` as a model's first layer, laid along the input's rows: ``mean`` and
#: ``scale`` (``max(sqrt(variance), ε)``) per input feature, broadcast as the layer does,
#: and ``invert`` as the layer's.
InputScaling = namedtuple("InputScaling", ["mean", "scale", "invert"])


@kernel
def normalize_rows(rows, scaling):
    """Mirrors ``Normalization.forward`` in place: ``(x - mean) / scale`` per feature, or
    ``mean + x · scale`` inverted.  rows: (n, d_in); scaling: :class:`InputScaling`."""
    mean, scale = scaling.mean, scaling.scale
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            if scaling.invert:
                rows[i, j] = mean[j] + rows[i, j] * scale[j]
            else:
                rows[i, j] = (rows[i, j] - mean[j]) / scale[j]


@kernel
def tile_columns(z):
    """The columns of one register tile for an output like ``z``: 64 float32 or 32 float64
    with AVX-512."""
    return TILE_VECTORS * VECTOR_BYTES // z.itemsize


@kernel
def tiles_fit(z):
    """True when the register-tiled products apply to an output like ``z`` (n, units): the
    units are a whole number of tiles."""
    return z.shape[1] % tile_columns(z) == 0


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
def tile_column_block(a, b, out, depth_block, column):
    """``out[:, column:column + w] = a @ b[:, column:column + w]`` for one tile width ``w``.

    a: (m, p) (a transposed view for the weight gradient), b: (p, q) with rows of unit
    stride -> out: (m, q), those columns written in place. Each register tile of
    ``TILE_ROWS`` rows (one row for the rows left over) sums ``a[i, k] · b[k, j]`` for
    k = 0, 1, ... in order (:func:`register_tile`). k goes in blocks of ``depth_block``
    (:data:`DEPTH_BLOCK`), each block through every tile, the sums resumed from ``out``: the
    same additions in the same order as one pass, with b's block still in cache.
    """
    m, p = a.shape
    whole = m - m % TILE_ROWS
    for k0 in range(0, p, depth_block):
        k1 = min(p, k0 + depth_block)
        for i0 in range(0, whole, TILE_ROWS):
            register_tile(a, b, out, i0, column, k0, k1, k0 > 0, TILE_ROWS)
        for i in range(whole, m):
            register_tile(a, b, out, i, column, k0, k1, k0 > 0, 1)


@kernel
def matmul_tiled(a, b, out, depth_block):
    """``out = a @ b`` without BLAS, for the large products of a Dense layer: every block of
    a tile's columns in turn (:func:`tile_column_block`); q a whole number of tiles
    (:func:`tiles_fit`)."""
    width = tile_columns(out)
    for column in range(0, out.shape[1], width):
        tile_column_block(a, b, out, depth_block, column)


@parallel_kernel
def matmul_tiled_parallel(a, b, out, depth_block):
    """:func:`matmul_tiled` with the blocks of columns shared among numba's threads: each
    entry is computed exactly as there, so the result is the same bit for bit."""
    width = tile_columns(out)
    for block in prange(out.shape[1] // width):
        saved = flush_denormals()  # each thread's own float mode: the same as the calling thread's
        tile_column_block(a, b, out, depth_block, block * width)
        restore_float_mode(saved)


@kernel
def matmul_tiled_on(a, b, out, depth_block, threads):
    """:func:`matmul_tiled`, on numba's threads unless ``threads`` is None."""
    if threads is None:
        matmul_tiled(a, b, out, depth_block)
    else:
        matmul_tiled_parallel(a, b, out, depth_block)


@kernel
def dense_forward_tiled(x, kernel_, bias, z, threads):
    """Mirrors ``functional.dense_forward``: ``z = x @ kernel + bias``, without BLAS.

    x: (n, d_in), kernel_: (d_in, units) with units a whole number of tiles, bias:
    (units,) -> z: (n, units), written in place: :func:`matmul_tiled`, then the bias (each
    sum is complete before the bias is added, as in NumPy).
    """
    matmul_tiled_on(x, kernel_, z, DEPTH_BLOCK, threads)
    for i in range(z.shape[0]):
        row = z[i]
        for j in range(z.shape[1]):
            row[j] += bias[j]


@kernel
def dense_weight_gradient_tiled(dL_dz, x, dL_dkernel, threads):
    """Mirrors the kernel gradient of ``functional.dense_backward``: ``x.T @ dL_dz``, without BLAS.

    dL_dz: (n, units) with units a whole number of tiles, x: (n, d_in) ->
    dL_dkernel: (d_in, units): :func:`matmul_tiled` on the transposed view of x, so a tile
    is ``TILE_ROWS`` input features by a tile's columns of units, each row of dL_dz read
    serves ``TILE_ROWS`` features, and the sum over samples runs in order i = 0, 1, ...
    """
    matmul_tiled_on(x.T, dL_dz, dL_dkernel, DEPTH_BLOCK, threads)


@kernel
def dense_backward(dL_dz, x, kernel_, dL_dkernel, dL_dbias, dL_dx, need_weight_grads, need_input_grad, threads,
                   one_unit=None):
    """Mirrors ``functional.dense_backward``; results written into the given buffers.

    dL_dz: (n, units), x: (n, d_in), kernel_: (d_in, units) ->
    dL_dkernel = x.T @ dL_dz (d_in, units), dL_dbias = column sums of dL_dz (units,)
    when ``need_weight_grads`` (a frozen layer needs none), and dL_dx = dL_dz @ kernel_.T
    (n, d_in) when ``need_input_grad``.
    The kernel gradient is :func:`dense_weight_gradient_tiled` when the units are a whole
    number of tiles (:func:`tiles_fit`) and the batch has at most
    ``GRADIENT_TILED_MAX_ROWS`` rows, BLAS otherwise. The bias gradient adds the rows in the
    order NumPy's ``sum(axis=0)`` does: one after another, or for a single unit, whose column
    NumPy sums as one contiguous run, by :func:`pairwise_sum`. ``one_unit`` is None for a
    model without a one-unit layer (``Network.one_unit``), so that numba compiles that sum
    only for a model that needs it.
    """
    if need_weight_grads:
        if tiles_fit(dL_dz) and dL_dz.shape[0] <= GRADIENT_TILED_MAX_ROWS:
            dense_weight_gradient_tiled(dL_dz, x, dL_dkernel, threads)
        else:
            np.dot(x.T, dL_dz, dL_dkernel)
        bias_gradient(dL_dz, dL_dbias, one_unit)
    if need_input_grad:
        np.dot(dL_dz, kernel_.T, dL_dx)


@kernel
def bias_gradient(dL_dz, dL_dbias, one_unit):
    """The bias gradient of :func:`dense_backward`: ``dL_dz.sum(axis=0)`` in NumPy's order."""
    if one_unit is not None:  # a test of the argument itself: compiled only when not None
        if dL_dz.shape[1] == 1:
            dL_dbias[0] = pairwise_sum(dL_dz[:, 0], 0, dL_dz.shape[0])
            return
    for j in range(dL_dz.shape[1]):
        dL_dbias[j] = dL_dz[0, j]
    for i in range(1, dL_dz.shape[0]):
        for j in range(dL_dz.shape[1]):
            dL_dbias[j] += dL_dz[i, j]


#: NumPy's pairwise summation adds blocks of at most this many numbers with eight running sums
PAIRWISE_BLOCK = 128


@kernel
def pairwise_sum(values, start, n):
    """``values[start:start + n].sum()`` in NumPy's order, bit for bit.

    NumPy sums a contiguous run of numbers (such as the column of a one-unit layer's
    gradient) pairwise: it splits a run into halves, the first a multiple of 8 long, until a
    run has at most ``PAIRWISE_BLOCK`` numbers, sums each such block with
    :func:`pairwise_block`, and adds the two halves of every split. NumPy recurses; here
    the same tree is walked with a stack (numba cannot cache a recursive function), each
    split visited twice: to push its halves, and, once both are summed, to add them.
    """
    if n <= PAIRWISE_BLOCK:
        return pairwise_block(values, start, n)
    depth = 3 * 64  # each of at most 64 levels leaves at most three entries on the stack
    runs = np.empty((depth, 3), np.int64)  # (start, length, halves summed)
    sums = np.empty(depth, values.dtype)
    runs[0, 0], runs[0, 1], runs[0, 2] = start, n, 0
    top, n_sums = 1, 0
    while top > 0:
        top -= 1
        first, length, halves_summed = runs[top, 0], runs[top, 1], runs[top, 2]
        if length <= PAIRWISE_BLOCK:
            sums[n_sums] = pairwise_block(values, first, length)
            n_sums += 1
        elif halves_summed:
            n_sums -= 1
            sums[n_sums - 1] += sums[n_sums]
        else:
            half = length // 2 - (length // 2) % 8
            runs[top, 2] = 1
            runs[top + 1, 0], runs[top + 1, 1], runs[top + 1, 2] = first + half, length - half, 0
            runs[top + 2, 0], runs[top + 2, 1], runs[top + 2, 2] = first, half, 0
            top += 3
    return sums[0]


@kernel
def pairwise_block(values, start, n):
    """One block of :func:`pairwise_sum`: fewer than 8 numbers in order from 0; else eight
    running sums over whole groups of 8, combined as a tree, then the rest in order."""
    if n < 8:
        total = same_type(values, 0.0)
        for i in range(start, start + n):
            total += values[i]
        return total
    # eight running sums in locals: no array is allocated in the training step
    s0, s1, s2, s3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    s4, s5, s6, s7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    whole = n - n % 8
    for i in range(start + 8, start + whole, 8):
        s0, s1, s2, s3 = s0 + values[i], s1 + values[i + 1], s2 + values[i + 2], s3 + values[i + 3]
        s4, s5, s6, s7 = s4 + values[i + 4], s5 + values[i + 5], s6 + values[i + 6], s7 + values[i + 7]
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(start + whole, start + n):
        total += values[i]
    return total


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
    """Mirrors ``functional.softmax_forward``: row-wise softmax.  z: (n, k) -> p: (n, k).
    exp in float64 rounded to z's type, as functional's ``exp``; the row's sum in order (NumPy
    adds 8 or more in a different order, so their last bits can differ)."""
    for i in range(z.shape[0]):
        row_max = row_maximum(z, i)
        total = _ZERO
        for j in range(z.shape[1]):
            p[i, j] = np.exp(np.float64(z[i, j] - row_max))
            total += p[i, j]
        for j in range(z.shape[1]):
            p[i, j] = p[i, j] / total


#: How an ``@overload`` below compiles the function it picks: with the kernels' options (the
#: on-disk cache is the calling kernel's). An int64 code's function is itself that choice, not
#: a wrapper calling a kernel: a wrapper is one more function to compile for every model.
_OVERLOAD_OPTIONS = {"jit_options": KERNEL_OPTIONS}


def activation_forward(code, z, a):
    """Mirrors ``functional.<name>_forward`` of the activation ``code``.  z, a: (n, units).

    ``code`` is an int64 code (:func:`common_activation_forward`) or an activation row
    (:func:`any_activation_forward`). numba picks one by the type, at compile time: the
    model whose ``codes`` are int64 never compiles the other activations.
    """
    raise NotImplementedError  # only ever called from kernels


@overload(activation_forward, **_OVERLOAD_OPTIONS)
def _activation_forward(code, z, a):
    if isinstance(code, types.Integer):
        return common_activation_forward
    return lambda code, z, a: any_activation_forward(code, z, a)


def activation_backward(code, grad, z, a):
    """Mirrors ``functional.<name>_backward`` of the activation ``code``, in place: grad
    (n, units) holds dL_da on entry and dL_dz on return; z, a: (n, units). ``code`` as in
    :func:`activation_forward`."""
    raise NotImplementedError  # only ever called from kernels


@overload(activation_backward, **_OVERLOAD_OPTIONS)
def _activation_backward(code, grad, z, a):
    if isinstance(code, types.Integer):
        return common_activation_backward
    return lambda code, grad, z, a: any_activation_backward(code, grad, z, a)


def common_activation_forward(code, z, a):
    """:func:`activation_forward` of the codes below ``FIRST_OTHER_CODE`` (compiled through it)."""
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
    elif code == SIGMOID:  # exp and tanh in float64, rounded to z's type: as functional's
        for i in range(n):
            for j in range(units):
                e = same_type(z, np.exp(-np.abs(np.float64(z[i, j]))))
                a[i, j] = _ONE / (_ONE + e) if z[i, j] >= _ZERO else e / (_ONE + e)
    elif code == TANH:
        for i in range(n):
            for j in range(units):
                a[i, j] = np.tanh(np.float64(z[i, j]))
    elif code == SOFTMAX:
        softmax_forward(z, a)
    else:
        raise ValueError("unknown activation code")


def common_activation_backward(code, grad, z, a):
    """:func:`activation_backward` of the codes below ``FIRST_OTHER_CODE`` (compiled through it)."""
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
    elif code == SOFTMAX:
        # functional.softmax_backward: p * (dL_dp - Σ_j dL_dp_j p_j), row by row
        for i in range(n):
            dot = _ZERO
            for j in range(units):
                dot += grad[i, j] * a[i, j]
            for j in range(units):
                grad[i, j] = a[i, j] * (grad[i, j] - dot)
    else:
        raise ValueError("unknown activation code")


@kernel
def any_activation_forward(row, z, a):
    """:func:`activation_forward` of an activation row ``(code, parameter)``, any code."""
    code = np.int64(row[0])
    if code < FIRST_OTHER_CODE:
        activation_forward(code, z, a)
    elif code == RELU_GENERAL:
        relu_general_forward(row, z, a)
    else:
        other_activation_forward(code, same_type(z, row[1]), z, a)


@kernel
def any_activation_backward(row, grad, z, a):
    """:func:`activation_backward` of an activation row ``(code, parameter)``, any code."""
    code = np.int64(row[0])
    if code < FIRST_OTHER_CODE:
        activation_backward(code, grad, z, a)
    elif code == RELU_GENERAL:
        relu_general_backward(row, grad, z)
    else:
        other_activation_backward(code, same_type(z, row[1]), grad, z, a)


# Elementwise math: exp, expm1, log1p and erf in float64, written in plain arithmetic (no call
# in the loop body) so that LLVM vectorises the activation loops that use them: numba would
# otherwise call the C library once per element. Each is accurate to about one float64 ulp
# (tests/test_kernel_math.py measures them against mpmath); a float32 activation computes in
# float64 and rounds, as before. Polynomials: Chebyshev interpolants derived by
# tools/fit_polynomials.py, which also prints their error. Multiply-adds are fused explicitly
# (one rounding, the same result on every CPU). LLVM inlines them into the calling loop (erf,
# too large for that, is inlined by numba); the callers' ``error_model="numpy"`` makes a
# division by zero inf instead of an exception.


@intrinsic
def float64_bits(typingctx, x):
    """The bits of a float64 as an int64 (a bitcast, no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def float64_from_bits(typingctx, n):
    """The float64 whose bits are the int64 n (a bitcast, no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def fused_multiply_add(typingctx, a, b, c):
    """a · b + c in float64 with one rounding (llvm.fma: one instruction where the CPU has FMA)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return types.float64(types.float64, types.float64, types.float64), codegen


#: Inlined by numba into each caller before LLVM sees it: for erf, which LLVM would not inline
#: (a call in the loop stops vectorisation). Only there: each inlined copy is compiled again,
#: and with every helper inlined so, a gelu model's cold compile took 29 s instead of 15 s.
inline_kernel = numba.njit(inline="always", **KERNEL_OPTIONS)

#: ln 2 split for Cody and Waite's argument reduction: k · LN2_HIGH is exact for |k| < 2^21
LN2_HIGH, LN2_LOW = 0.6931471803691238, 1.9082149292705877e-10
LOG2_E = 1.4426950408889634
#: 1.5 · 2^52: adding it rounds a float64 below 2^51 to an integer, held in the low bits
ROUNDING_SHIFT = 6755399441055744.0
#: exp overflows above ~709.78 and rounds to 0 below ~-745.13; clamping x keeps 2^k in range
EXP_HIGH, EXP_LOW = 709.8, -745.2
#: (exp(r) - 1 - r) / r² on |r| <= ln(2)/2
EXP_REMAINDER = (0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326141, 0.0013888888888883752,
                 0.00019841269874800493, 2.4801587325533363e-05, 2.7557255425746435e-06,
                 2.7557273661348637e-07, 2.510520637395701e-08, 2.0914679376583935e-09)


@kernel
def power_of_two(k):
    """2^k as a float64, for -1022 <= k <= 1023 (any other k gives some power of two, never an
    integer overflow: the callers' k is garbage only when their result is NaN anyway)."""
    return float64_from_bits(((k + 1023) & 0x7FF) << 52)


@kernel
def reduce_exp(x):
    """x = k ln 2 + r with |r| <= ln(2)/2 (Cody and Waite's reduction, W. J. Cody and W. Waite,
    *Software Manual for the Elementary Functions*, 1980), for |x| < 2^50. Returns k and
    expm1(r) in two parts, ``r_high + tail``: r_high = x - k · LN2_HIGH is exact, the tail
    (r's low part and r² P(r)) small."""
    shifted = x * LOG2_E + ROUNDING_SHIFT
    k_float = shifted - ROUNDING_SHIFT
    r_high = fused_multiply_add(-k_float, LN2_HIGH, x)
    r_low = -k_float * LN2_LOW
    r = r_high + r_low
    p = EXP_REMAINDER[10]
    for i in range(9, -1, -1):
        p = fused_multiply_add(p, r, EXP_REMAINDER[i])
    return float64_bits(shifted) - float64_bits(ROUNDING_SHIFT), r_high, fused_multiply_add(r * r, p, r_low)


@kernel
def exp64(x):
    """exp(x) in float64: (1 + expm1(r)) 2^k (:func:`reduce_exp`), 2^k in two factors so that
    a subnormal result is rounded once. inf above the overflow threshold, 0 far below, NaN for NaN."""
    x = EXP_HIGH if x > EXP_HIGH else x  # a NaN fails both tests and stays NaN
    x = EXP_LOW if x < EXP_LOW else x
    k, r_high, tail = reduce_exp(x)
    half = k >> 1
    return (1.0 + (r_high + tail)) * power_of_two(half) * power_of_two(k - half)


#: below this |x|, expm1(x) rounds to x
EXPM1_IS_X = 2.0 ** -54
#: expm1(x) rounds to -1 below this
EXPM1_LOW = -40.0


@kernel
def expm1_64(x):
    """exp(x) - 1 in float64, accurate near 0 too: 2^k (1 + e) - 1 = (2^k - 1) + 2^k e with
    e = expm1(r) = r_high + tail (:func:`reduce_exp`). 2^k - 1 is exact for |k| <= 53 (it
    rounds to 2^k above), 2^k r_high is exact, and their sum's rounding error is recovered
    (Fast2Sum, the larger first) before the tail is added: one rounding where the sum cancels.
    Above 2^60, 2^k is applied in two factors so that it stays finite until the result
    overflows. inf above the overflow threshold, -1 far below, NaN for NaN, -0.0 for -0.0."""
    clamped = EXP_HIGH if x > EXP_HIGH else x  # a NaN fails both tests and stays NaN
    clamped = EXPM1_LOW if clamped < EXPM1_LOW else clamped
    k, r_high, tail = reduce_exp(clamped)
    k_rest = k - 60 if k > 60 else 0
    scale = power_of_two(k - k_rest)
    larger, smaller = scale - 1.0, scale * r_high
    total = larger + smaller
    lost = smaller - (total - larger)
    result = (total + fused_multiply_add(scale, tail, lost)) * power_of_two(k_rest)
    return x if abs(x) < EXPM1_IS_X else result


#: T(w) / w, w = s², where 2 atanh(s) = 2s + s T(s²), for |s| <= (√2 - 1)/(√2 + 1)
LOG_REMAINDER = (0.6666666666666666, 0.4000000000000088, 0.28571428570803614, 0.22222222391713917,
                 0.18181795640132906, 0.15386239702814658, 0.13268773138656886, 0.13086626147840102)
EXPONENT_BITS, MANTISSA_BITS, ONE_BITS = 0x7FF0000000000000, 0x000FFFFFFFFFFFFF, 0x3FF0000000000000
SQRT_2 = 1.4142135623730951
#: below this |x|, log1p(x) rounds to x (x²/2 is under half an ulp of x)
LOG1P_IS_X = 2.0 ** -54


@kernel
def log1p64(x):
    """log(1 + x) in float64. u = 1 + x is rounded; its rounding error e is exact (Fast2Sum)
    and adds e / u. u = 2^k m with m in [√2/2, √2), log m = log(1 + f) = 2 atanh(s),
    s = f / (2 + f), written f - s (f - T(s²)) so that only small terms carry rounding errors
    (the reduction of Sun's fdlibm ``log``; coefficients our own). -inf at -1, NaN below."""
    u = 1.0 + x
    error = x - (u - 1.0) if abs(x) <= 1.0 else 1.0 - (u - x)
    bits = float64_bits(u)
    k = ((bits & EXPONENT_BITS) >> 52) - 1023
    m = float64_from_bits((bits & MANTISSA_BITS) | ONE_BITS)  # u / 2^k, in [1, 2)
    above = m >= SQRT_2
    m = m * 0.5 if above else m
    k_float = np.float64(k + 1 if above else k)
    f = m - 1.0  # exact
    s = f / (2.0 + f)
    w = s * s
    t = LOG_REMAINDER[7]
    for i in range(6, -1, -1):
        t = fused_multiply_add(t, w, LOG_REMAINDER[i])
    small_terms = fused_multiply_add(k_float, LN2_LOW, error / u) - s * (f - t * w)
    result = fused_multiply_add(k_float, LN2_HIGH, f + small_terms)
    result = x if abs(x) < LOG1P_IS_X else result  # also keeps log1p(-0.0) = -0.0
    result = -np.inf if x == -1.0 else result
    result = np.nan if x < -1.0 else result
    return x if x == np.inf else result


#: erf(x) = x · (2/√π + x² R(x²)) below ERF_SMALL_LIMIT; 2/√π in two parts
TWO_OVER_ROOT_PI, TWO_OVER_ROOT_PI_LOW = 1.1283791670955126, 1.533545961316588e-17
ERF_SMALL_LIMIT = 0.875
#: R on [0, ERF_SMALL_LIMIT²]
ERF_SMALL = (-0.37612638903183754, 0.11283791670955069, -0.026866170645102005, 0.005223977624844939,
             -0.0008548326960832647, 0.00012055329146033164, -1.4925503557300025e-05,
             1.6458493837973355e-06, -1.630814301866023e-07, 1.4229407020866167e-08, -8.925262994122168e-10)
#: erf(x) = 1 - exp(-x²) Q(x) from ERF_SMALL_LIMIT on, Q one polynomial in x - center per piece
#: [0.875, 1.75), [1.75, 3), [3, 6]; beyond 6, erf(x) rounds to 1 in float64
ERF_PIECE_1, ERF_PIECE_2, ERF_LARGE = 1.75, 3.0, 6.0
ERF_CENTERS = (1.3125, 2.375, 4.5)
ERFC_0 = (0.3551767864976341, -0.19604010253922294, 0.09787415191490514, -0.04505351876727457,
          0.019370704266305553, -0.007851787767001732, 0.003021744279188789, -0.0011102138320475403,
          0.00039114705035090286, -0.00013262956927536472, 4.3415328321914e-05, -1.3754589661439176e-05,
          4.219779810694072e-06, -1.2605886839761334e-06, 3.899220899832563e-07, -1.1024943899364327e-07)
ERFC_1 = (0.22050569220490665, -0.08097712912220592, 0.028185010539669517, -0.009358486060330658,
          0.0029793030730893184, -0.000913056504576758, 0.00027026462701502696, -7.747943487828301e-05,
          2.156272106014332e-05, -5.837311235229475e-06, 1.5399374765642987e-06, -3.964324269645123e-07,
          9.93834800604578e-08, -2.4469218474698108e-08, 6.449940973257288e-09, -1.5198332627244804e-09)
ERFC_2 = (0.12248480427383412, -0.026015928630938604, 0.005413125435026951, -0.0011045761168586993,
          0.00022126645066794002, -4.355082792216068e-05, 8.42925566083678e-06, -1.6054992914112449e-06,
          3.0110268308105365e-07, -5.5646832401511234e-08, 1.0161728654988694e-08, -1.8259813431827113e-09,
          3.1183804259638267e-10, -5.470596250566415e-11, 1.2752347155665385e-11, -2.166239027063042e-12)
#: R's coefficients laid out as each Q's, 2/√π's low part first: one Horner scheme serves both
ERF_SMALL_ROW = (TWO_OVER_ROOT_PI_LOW,) + ERF_SMALL + (0.0,) * 4


@inline_kernel
def erf64(x):
    """erf(x) in float64: x R(x²) near 0, 1 - exp(-x²) Q(|x|) beyond, the split of W. J.
    Cody's rational approximations (Math. Comp. 23, 1969), with polynomials here. Every
    element evaluates one Horner scheme whose coefficients are selected by its piece, so the
    loop has no branch. ±1 beyond ±6 and at ±inf, NaN for NaN, -0.0 for -0.0."""
    ax = abs(x)
    ax = ERF_LARGE if ax > ERF_LARGE else ax  # a NaN stays NaN
    small, piece_1, piece_2 = ax < ERF_SMALL_LIMIT, ax >= ERF_PIECE_1, ax >= ERF_PIECE_2
    center = ERF_CENTERS[2] if piece_2 else (ERF_CENTERS[1] if piece_1 else ERF_CENTERS[0])
    row = ERF_SMALL_ROW if small else (ERFC_2 if piece_2 else (ERFC_1 if piece_1 else ERFC_0))
    u = ax * ax if small else ax - center
    p = row[15]
    for i in range(14, -1, -1):
        p = fused_multiply_add(p, u, row[i])
    near_zero = fused_multiply_add(x, TWO_OVER_ROOT_PI, x * p)
    tail = fused_multiply_add(-exp64(-(ax * ax)), p, 1.0)
    return near_zero if small else (tail if x > 0.0 else -tail)


@kernel
def exp_of(x):
    """``np.exp`` of one float of x's type: :func:`exp64`, rounded to float32 for a float32."""
    return same_type(x, exp64(np.float64(x)))


@kernel
def expm1_of(x):
    """``np.expm1`` of one float of x's type: :func:`expm1_64`, rounded to float32 for a float32."""
    return same_type(x, expm1_64(np.float64(x)))


@kernel
def log1p_of(x):
    """``np.log1p`` of one float of x's type: :func:`log1p64`, rounded to float32 for a float32."""
    return same_type(x, log1p64(np.float64(x)))


@kernel
def relu_general_forward(row, z, a):
    """Mirrors ``functional.relu_forward_general`` with a max_value or a threshold: ``z`` above
    the threshold (else 0; ``max(z, 0)`` without one), clipped to [0, max_value], minus
    ``negative_slope · max(threshold - z, 0)``; row as :data:`RELU_GENERAL` says, its numbers
    cast to z's dtype as NumPy casts them. z, a: (n, units)."""
    slope, threshold, cap = same_type(z, row[1]), same_type(z, row[2]), same_type(z, row[3])
    # the options' own values decide the branches, as in NumPy's `if threshold:` (before the cast)
    has_slope, has_threshold, capped = row[1] != 0.0, row[2] != 0.0, np.int64(row[4]) != RELU_NO_CAP
    n, units = z.shape
    for i in range(n):
        for j in range(units):
            x = z[i, j]
            if has_threshold:
                value = x if x > threshold else _ZERO
            else:
                value = _ZERO if x < _ZERO else x  # np.maximum: NaN stays NaN
            if capped:
                value = clip_probability(value, _ZERO, cap)
            if has_slope:
                below = threshold - x
                value = value - slope * (_ZERO if below < _ZERO else below)
            a[i, j] = value


@kernel
def relu_general_backward(row, grad, z):
    """Mirrors ``functional.relu_backward_general``, in place: grad (n, units) times 1 where
    threshold < z (and z <= max_value, or z < 6 for relu6), ``negative_slope`` where
    z < threshold, 0 elsewhere."""
    slope, threshold, cap = same_type(z, row[1]), same_type(z, row[2]), same_type(z, row[3])
    kind, has_slope, (n, units) = np.int64(row[4]), row[1] != 0.0, z.shape
    for i in range(n):
        for j in range(units):
            x = z[i, j]
            inside = x > threshold
            if kind == RELU_CAP:
                inside = inside and x <= cap
            elif kind == RELU6_CAP:
                inside = inside and x < cap
            factor = _ONE if inside else _ZERO
            if has_slope:
                factor = factor + (slope if x < threshold else _ZERO)
            grad[i, j] = grad[i, j] * factor


@kernel
def sigmoid_of(x):
    """``functional.sigmoid_forward`` of one float: no exp of a large positive number."""
    e = exp_of(-np.abs(x))
    return _ONE / (_ONE + e) if x >= _ZERO else e / (_ONE + e)


@inline_kernel
def erf_of(x):
    """SciPy's ``special.erf`` of one float of x's type: computed in float64, then rounded,
    as SciPy's float32 loop does."""
    return same_type(x, erf64(np.float64(x)))


@kernel
def other_activation_forward(code, parameter, z, a):
    """Mirrors ``functional.<name>_forward`` for the codes from ``FIRST_OTHER_CODE`` on, with
    each function's default options (those ``Dense`` uses); ``parameter`` (z's dtype) is
    leaky_relu's ``negative_slope`` or elu's ``alpha``. One loop per code, each doing the
    NumPy function's operations in its order. z, a: (n, units).
    """
    n, units = z.shape
    if code == ELU:  # where(z > 0, z, alpha · expm1(min(z, 0))); min(z, 0) is z in that branch
        for i in range(n):
            for j in range(units):
                a[i, j] = z[i, j] if z[i, j] > _ZERO else parameter * expm1_of(z[i, j])
    elif code == SELU:
        scale, alpha = same_type(z, SELU_SCALE), same_type(z, SELU_ALPHA)
        for i in range(n):
            for j in range(units):
                a[i, j] = scale * (z[i, j] if z[i, j] > _ZERO else alpha * expm1_of(z[i, j]))
    elif code == GELU:  # the exact form: 0.5 · z · (1 + erf(z / √2))
        half, inverse_root_2 = same_type(z, 0.5), same_type(z, 1 / np.sqrt(2))
        for i in range(n):
            for j in range(units):
                a[i, j] = half * z[i, j] * (_ONE + erf_of(z[i, j] * inverse_root_2))
    elif code == SOFTPLUS:  # max(z, 0) + log1p(exp(-|z|))
        for i in range(n):
            for j in range(units):
                a[i, j] = (_ZERO if z[i, j] < _ZERO else z[i, j]) + log1p_of(exp_of(-np.abs(z[i, j])))
    elif code == SOFTSIGN:
        for i in range(n):
            for j in range(units):
                a[i, j] = z[i, j] / (_ONE + np.abs(z[i, j]))
    elif code == SILU:
        for i in range(n):
            for j in range(units):
                a[i, j] = z[i, j] * sigmoid_of(z[i, j])
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(units):
                a[i, j] = z[i, j] if z[i, j] > _ZERO else parameter * z[i, j]
    elif code == EXPONENTIAL:
        for i in range(n):
            for j in range(units):
                a[i, j] = exp_of(z[i, j])
    elif code == HARD_SIGMOID:  # clip(z + 3, 0, 6) / 6; a NaN stays NaN, as in np.clip
        three, six = same_type(z, 3.0), same_type(z, 6.0)
        for i in range(n):
            for j in range(units):
                shifted = z[i, j] + three
                clipped = _ZERO if shifted < _ZERO else (six if shifted > six else shifted)
                a[i, j] = clipped / six
    else:
        raise ValueError("unknown activation code")


@kernel
def other_activation_backward(code, parameter, grad, z, a):
    """Mirrors ``functional.<name>_backward`` for the codes of :func:`other_activation_forward`,
    in place: grad (n, units) holds dL_da on entry and dL_dz on return."""
    n, units = grad.shape
    if code == ELU:  # dL_da · where(z > 0, 1, a + alpha)
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * (_ONE if z[i, j] > _ZERO else a[i, j] + parameter)
    elif code == SELU:
        scale, scale_alpha = same_type(z, SELU_SCALE), same_type(z, SELU_SCALE * SELU_ALPHA)
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * (scale if z[i, j] > _ZERO else a[i, j] + scale_alpha)
    elif code == GELU:  # dL_da · (Φ(z) + z · φ(z))
        half, inverse_root_2 = same_type(z, 0.5), same_type(z, 1 / np.sqrt(2))
        minus_half, inverse_root_2_pi = same_type(z, -0.5), same_type(z, 1 / np.sqrt(2 * np.pi))
        for i in range(n):
            for j in range(units):
                x = z[i, j]
                cdf = half * (_ONE + erf_of(x * inverse_root_2))
                density = exp_of(minus_half * x * x) * inverse_root_2_pi
                grad[i, j] = grad[i, j] * (cdf + x * density)
    elif code == SOFTPLUS:  # dL_da · sigmoid(z)
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * sigmoid_of(z[i, j])
    elif code == SOFTSIGN:  # dL_da / (1 + |z|)²
        for i in range(n):
            for j in range(units):
                denominator = _ONE + np.abs(z[i, j])
                grad[i, j] = grad[i, j] / (denominator * denominator)
    elif code == SILU:  # dL_da · (s (1 + z (1 - s))), s = sigmoid(z)
        for i in range(n):
            for j in range(units):
                s = sigmoid_of(z[i, j])
                grad[i, j] = grad[i, j] * (s * (_ONE + z[i, j] * (_ONE - s)))
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * (_ONE if z[i, j] > _ZERO else parameter)
    elif code == EXPONENTIAL:
        for i in range(n):
            for j in range(units):
                grad[i, j] = grad[i, j] * a[i, j]
    elif code == HARD_SIGMOID:  # 1/6 strictly inside (-3, 3), else 0
        three, sixth = same_type(z, 3.0), same_type(z, 1 / 6)
        for i in range(n):
            for j in range(units):
                inside = z[i, j] > -three and z[i, j] < three
                grad[i, j] = grad[i, j] * (sixth if inside else _ZERO)
    else:
        raise ValueError("unknown activation code")


# ----------------------------------------------------------------------------- losses


@kernel
def log_softmax_sum(z, labels, targets, sample_weight):
    """The cross-entropy of softmax(z), summed over rows (the mean divides by n later).

    Mirrors ``functional.sparse_categorical_crossentropy_from_logits`` (labels: (n,)):
    Σ_i (logsumexp(z_i) - z_i[label_i]), or, with targets: (n, k),
    ``functional.categorical_crossentropy_from_logits``: Σ_i -Σ_k t_ik (z_ik - logsumexp(z_i)),
    each row's term in the dtype of z, times its ``sample_weight`` (n,) unless that is None.
    """
    total = 0.0  # float64 accumulator over samples; each sample's term is in z's dtype
    for i in range(z.shape[0]):
        row_max = row_maximum(z, i)
        exp_sum = _ZERO
        for j in range(z.shape[1]):
            exp_sum += np.exp(z[i, j] - row_max)
        log_sum = np.log(exp_sum)
        if targets is not None:
            row_total = _ZERO
            for j in range(z.shape[1]):
                row_total += targets[i, j] * ((z[i, j] - row_max) - log_sum)
            term = -row_total
        else:
            term = log_sum - (z[i, labels[i]] - row_max)
        if sample_weight is not None:
            term = term * sample_weight[i]
        total += term
    return total


@kernel
def softmax_crossentropy_backward(p, labels, targets, dL_dz):
    """Mirrors ``functional.softmax_crossentropy_backward``: ``dL_dz = (p - onehot) / n``, or
    with targets (n, k) ``functional.softmax_categorical_crossentropy_backward``:
    ``(p Σ_k t_k - t) / n``.

    p: (n, k) probabilities, labels: (n,) -> dL_dz: (n, k) (may be ``p`` itself).
    """
    n, k = p.shape
    n_float = np.float32(n)
    for i in range(n):
        if targets is not None:
            target_sum = _ZERO
            for j in range(k):
                target_sum += targets[i, j]
            for j in range(k):
                dL_dz[i, j] = (p[i, j] * target_sum - targets[i, j]) / n_float
        else:
            for j in range(k):
                value = p[i, j] - _ONE if j == labels[i] else p[i, j]
                dL_dz[i, j] = value / n_float


@kernel
def clip_probability(p, low, high):
    """``np.clip(p, low, high)`` for one float (NaN stays NaN, as in NumPy)."""
    if p < low:
        return low
    if p > high:
        return high
    return p


@kernel
def crossentropy_probabilities_sum(p, labels, constants, sample_weight):
    """Mirrors ``functional.sparse_categorical_crossentropy`` (the sum, not the mean).

    p: (n, k) probabilities, labels: (n,) -> Σ_i (log Σ_k c_ik - log c_i[label_i]) with
    ``c = clip(p, 1e-7, 1 - 1e-7)``, each term in p's dtype (times its ``sample_weight``,
    unless None).
    """
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    total = 0.0
    for i in range(p.shape[0]):
        row_sum = _ZERO
        for j in range(p.shape[1]):
            row_sum += clip_probability(p[i, j], low, high)
        term = np.log(row_sum) - np.log(clip_probability(p[i, labels[i]], low, high))
        if sample_weight is not None:
            term = term * sample_weight[i]
        total += term
    return total


@kernel
def crossentropy_probabilities_backward(p, labels, constants, dL_dp):
    """Mirrors ``functional.sparse_categorical_crossentropy_backward``.

    p: (n, k), labels: (n,) -> dL_dp: (n, k) = ``(1/S - [k = y] / c_y) / n`` with
    ``c = clip(p)`` and ``S = Σ_k c_k`` per row, and zero where the clip was active.
    """
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    n, k = p.shape
    n_float = np.float32(n)
    for i in range(n):
        row_sum = _ZERO
        for j in range(k):
            row_sum += clip_probability(p[i, j], low, high)
        inverse_sum = _ONE / row_sum
        for j in range(k):
            value = inverse_sum
            if j == labels[i]:
                value = inverse_sum - _ONE / clip_probability(p[i, j], low, high)
            inside = p[i, j] >= low and p[i, j] <= high
            dL_dp[i, j] = (value if inside else _ZERO) / n_float


@kernel
def categorical_probabilities_sum(p, targets, constants, sample_weight):
    """Mirrors ``functional.categorical_crossentropy`` (the sum, not the mean).

    p, targets: (n, k) -> Σ_i -Σ_k t_ik log clip(p_ik / Σ_k p_ik), each term in p's dtype
    (times its ``sample_weight``, unless None).
    """
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    total = 0.0
    for i in range(p.shape[0]):
        row_sum = _ZERO
        for j in range(p.shape[1]):
            row_sum += p[i, j]
        row_total = _ZERO
        for j in range(p.shape[1]):
            row_total += targets[i, j] * np.log(clip_probability(p[i, j] / row_sum, low, high))
        term = -row_total
        if sample_weight is not None:
            term = term * sample_weight[i]
        total += term
    return total


@kernel
def categorical_probabilities_backward(p, targets, constants, dL_dp):
    """Mirrors ``CategoricalCrossentropy.gradient_wrt_probabilities`` (npnet.losses).

    p, targets: (n, k) -> dL_dp: (n, k). With ``q = p / Σp`` per row, ``dL/dq = -t / q``
    where the clip is inactive (0 elsewhere), then through the normalisation
    ``dL/dp_j = (dL/dq_j - Σ_k dL/dq_k q_k) / Σp``, divided by n.
    """
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    n, k = p.shape
    n_float = np.float32(n)
    for i in range(n):
        total = _ZERO
        for j in range(k):
            total += p[i, j]
        for j in range(k):
            q = p[i, j] / total
            dL_dp[i, j] = -targets[i, j] / q if q > low and q < high else _ZERO
        dot = _ZERO
        for j in range(k):
            dot += dL_dp[i, j] * (p[i, j] / total)
        for j in range(k):
            dL_dp[i, j] = ((dL_dp[i, j] - dot) / total) / n_float


def output_loss(loss_code, z, a, labels, targets, constants, sample_weight):
    """The batch-mean loss as ``npnet.training.loss_value`` computes it (without penalties):
    :func:`crossentropy_output_loss` for the cross-entropies' codes, :func:`target_loss` for a
    loss row, chosen by the type of ``loss_code`` at compile time. ``sample_weight`` (n,) or
    None: Keras's weighted mean ``Σ w_i l_i / n`` (``training._weighted_value``)."""
    raise NotImplementedError  # only ever called from kernels


@overload(output_loss, **_OVERLOAD_OPTIONS)
def _output_loss(loss_code, z, a, labels, targets, constants, sample_weight):
    if isinstance(loss_code, types.BaseNamedTuple):  # OtherLoss
        return lambda loss_code, z, a, labels, targets, constants, sample_weight: other_loss_value(
            loss_code.code, a, targets, sample_weight)
    if isinstance(loss_code, types.Array):
        return lambda loss_code, z, a, labels, targets, constants, sample_weight: target_loss(
            loss_code, z, a, targets, constants, sample_weight)
    return crossentropy_output_loss


def output_gradient(loss_code, code, z, a, labels, targets, constants, sample_weight, dL_dz):
    """dL/dz of the output layer, as ``npnet.training.backward`` starts it:
    :func:`crossentropy_output_gradient` or :func:`target_gradient`, as :func:`output_loss`;
    with a ``sample_weight``, the loss's gradient rows are scaled by it before the output
    activation's backward (``training._output_gradient``)."""
    raise NotImplementedError  # only ever called from kernels


@overload(output_gradient, **_OVERLOAD_OPTIONS)
def _output_gradient(loss_code, code, z, a, labels, targets, constants, sample_weight, dL_dz):
    if isinstance(loss_code, types.BaseNamedTuple):  # OtherLoss
        return lambda loss_code, code, z, a, labels, targets, constants, sample_weight, dL_dz: other_loss_gradient(
            loss_code.code, code, z, a, targets, sample_weight, dL_dz)
    if isinstance(loss_code, types.Array):
        return lambda loss_code, code, z, a, labels, targets, constants, sample_weight, dL_dz: target_gradient(
            loss_code, code, z, a, targets, constants, sample_weight, dL_dz)
    return crossentropy_output_gradient


def crossentropy_output_loss(loss_code, z, a, labels, targets, constants, sample_weight):
    """:func:`output_loss` of the cross-entropies of classes (softmax head or general head),
    compiled through it.

    z, a: (n, k) the output layer's logits and activations, labels: (n,), targets: (n, k)
    for a categorical loss, else None; sample_weight: (n,) or None. Each sample's loss is in
    the weights' dtype; their mean is accumulated in float64 and rounded once (NumPy takes a
    pairwise mean in the weights' dtype), which touches only the reported loss.
    """
    n = z.shape[0]
    if loss_code is None:  # SOFTMAX_CROSSENTROPY
        total = log_softmax_sum(z, labels, targets, sample_weight)
    elif loss_code == CROSSENTROPY_OF_LOGITS:
        total = log_softmax_sum(a, labels, targets, sample_weight)
    elif targets is not None:
        total = categorical_probabilities_sum(a, targets, constants, sample_weight)
    else:
        total = crossentropy_probabilities_sum(a, labels, constants, sample_weight)
    return same_type(z, total / n)


def crossentropy_output_gradient(loss_code, code, z, a, labels, targets, constants, sample_weight, dL_dz):
    """:func:`output_gradient` of the cross-entropies of classes, compiled through it.

    z, a: (n, k), labels: (n,), targets: (n, k) or None, sample_weight: (n,) or None ->
    dL_dz: (n, k).
    """
    if loss_code is None:  # SOFTMAX_CROSSENTROPY
        softmax_crossentropy_backward(a, labels, targets, dL_dz)
        if sample_weight is not None:
            scale_rows(dL_dz, sample_weight)
        return
    if loss_code == CROSSENTROPY_OF_LOGITS:
        # loss.gradient with from_logits: gradient_wrt_logits(y, softmax_forward(output))
        softmax_forward(a, dL_dz)
        softmax_crossentropy_backward(dL_dz, labels, targets, dL_dz)
    elif targets is not None:
        categorical_probabilities_backward(a, targets, constants, dL_dz)
    else:
        crossentropy_probabilities_backward(a, labels, constants, dL_dz)
    if sample_weight is not None:
        scale_rows(dL_dz, sample_weight)
    activation_backward(code, dL_dz, z, a)


@kernel
def scale_rows(dL_dz, sample_weight):
    """``dL_dz * sample_weight[:, None]`` in place, as ``training._output_gradient`` weighs the
    loss's gradient.  dL_dz: (n, m), sample_weight: (n,) in its dtype."""
    for i in range(dL_dz.shape[0]):
        for j in range(dL_dz.shape[1]):
            dL_dz[i, j] = dL_dz[i, j] * sample_weight[i]


@kernel
def sign_of(x):
    """``np.sign`` of one float: -1, 0 or 1 in x's type, NaN for NaN."""
    if x > _ZERO:
        return same_type(x, 1.0)
    if x < _ZERO:
        return same_type(x, -1.0)
    return x * _ZERO  # 0 for ±0, NaN for NaN


@kernel
def target_entry_loss(code, delta, low, high, p, t):
    """One output's loss, as the per-entry expression of the ``npnet.functional`` function of
    ``code`` (before its mean over the outputs): p the output (the logit for the two
    from-logits codes), t its target; delta Huber's, low/high the probabilities' clip range."""
    if code == MEAN_SQUARED_ERROR:  # functional.mean_squared_error
        error = p - t
        return error * error
    if code == MEAN_ABSOLUTE_ERROR:  # functional.mean_absolute_error
        return np.abs(p - t)
    if code == HUBER:  # functional.huber
        error = p - t
        abs_error = np.abs(error)
        half = same_type(p, 0.5)
        return half * error * error if abs_error <= delta else delta * abs_error - half * delta * delta
    if code == BINARY_OF_PROBABILITIES:  # functional.binary_crossentropy
        clipped = clip_probability(p, low, high)
        return -(t * np.log(clipped) + (_ONE - t) * np.log(_ONE - clipped))
    # functional.binary_crossentropy_from_logits: max(z, 0) - z t + log1p(exp(-|z|))
    return (p if p > _ZERO else _ZERO) - p * t + np.log1p(np.exp(-np.abs(p)))


@kernel
def target_loss(row, z, a, targets, constants, sample_weight):
    """:func:`output_loss` of a loss row ``(code, delta)``: the batch mean of the per-sample
    means over the outputs (each sample's in the weights' dtype, times its ``sample_weight``
    unless None, the batch's accumulated in float64 and rounded once). z, a, targets: (n, m);
    the sigmoid head reads the logits z."""
    code, delta = np.int64(row[0]), same_type(z, row[1])
    outputs = z if code == SIGMOID_BINARY_CROSSENTROPY else a
    if code == SIGMOID_BINARY_CROSSENTROPY:
        code = BINARY_OF_LOGITS
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    n, m = outputs.shape
    total = 0.0
    for i in range(n):
        sample = _ZERO
        for j in range(m):
            sample += target_entry_loss(code, delta, low, high, outputs[i, j], targets[i, j])
        term = sample / same_type(z, m)
        if sample_weight is not None:
            term = term * sample_weight[i]
        total += term
    return same_type(z, total / n)


@kernel
def target_gradient(row, code, z, a, targets, constants, sample_weight, dL_dz):
    """:func:`output_gradient` of a loss row: the loss's gradient w.r.t. the output (the
    ``*_backward`` function of npnet.functional), scaled by ``sample_weight`` unless None,
    then the output activation's backward; for the sigmoid head ``(p - t) / (n m)`` w.r.t.
    the logits directly."""
    loss, delta = np.int64(row[0]), same_type(z, row[1])
    low, high = constants[CLIP_LOW], constants[CLIP_HIGH]
    n, m = a.shape
    size = same_type(z, n * m)
    two_per_size, one_per_size = same_type(z, 2 / (n * m)), same_type(z, 1 / (n * m))
    for i in range(n):
        for j in range(m):
            p, t = a[i, j], targets[i, j]
            if loss == MEAN_SQUARED_ERROR:
                dL_dz[i, j] = (p - t) * two_per_size
            elif loss == MEAN_ABSOLUTE_ERROR:
                dL_dz[i, j] = sign_of(p - t) * one_per_size
            elif loss == HUBER:
                error = p - t
                dL_dz[i, j] = (error if np.abs(error) <= delta else delta * sign_of(error)) * one_per_size
            elif loss == BINARY_OF_PROBABILITIES:  # zero where the clip holds p
                clipped = clip_probability(p, low, high)
                inside = p >= low and p <= high
                dL_dz[i, j] = ((clipped - t) / (clipped * (_ONE - clipped)) if inside else _ZERO) / size
            elif loss == BINARY_OF_LOGITS:  # the sigmoid of the output logits, then (p - t) / (n m)
                dL_dz[i, j] = (sigmoid_of(p) - t) / size
            else:  # SIGMOID_BINARY_CROSSENTROPY: p is the sigmoid of z already
                dL_dz[i, j] = (p - t) / size
    if sample_weight is not None:
        scale_rows(dL_dz, sample_weight)
    if loss != SIGMOID_BINARY_CROSSENTROPY:
        activation_backward(code, dL_dz, z, a)


# ----------------------------------------------------------------------------- Keras's other losses
# Compiled only for a model whose ``loss_code`` is an :data:`OtherLoss` (see
# :func:`output_loss`). Each mirrors its npnet.functional pair in its order of operations,
# in the output's dtype; functional's ``log`` (float64, rounded once) is :func:`log_of`.

#: the float32 constants Keras uses even for float64 outputs (``functional._msle_logs``'s ε,
#: ``functional.log_cosh``'s log 2), as float64 numbers holding their float32 values
EPSILON_FLOAT32 = float(np.float32(EPSILON))
LOG_2_FLOAT32 = float(np.float32(np.log(2.0)))


@kernel
def log_of(x):
    """functional's ``log`` of one float of x's type: np.log in float64, rounded to x's type."""
    return same_type(x, np.log(np.float64(x)))


@kernel
def positive_part(x):
    """``np.maximum(x, 0)`` of one float (NaN stays NaN)."""
    return _ZERO if x < _ZERO else x


@kernel
def softplus_of(x):
    """``functional.softplus_forward`` of one float: ``max(x, 0) + log1p(exp(-|x|))``."""
    return positive_part(x) + log1p_of(exp_of(-np.abs(x)))


@kernel
def binary_targets(targets):
    """Whether every target of the batch is 0 or 1, which ``functional.hinge_targets`` then
    reads as -1 and 1.  targets: (n, m)."""
    for i in range(targets.shape[0]):
        for j in range(targets.shape[1]):
            if targets[i, j] != _ZERO and targets[i, j] != _ONE:
                return False
    return True


@kernel
def hinge_batch(code, targets):
    """Whether a hinge loss reads this batch's targets as binary labels (False for the other codes)."""
    return (code == HINGE or code == SQUARED_HINGE) and binary_targets(targets)


@kernel
def hinge_target(t, binary):
    """One target as ``functional.hinge_targets`` gives it: ``2 t - 1`` for a binary batch."""
    return same_type(t, 2.0) * t - _ONE if binary else t


@kernel
def percentage_scale(t, p):
    """``max(|t|, ε)`` of ``functional.mean_absolute_percentage_error``, in p's dtype."""
    epsilon, scale = same_type(p, EPSILON), np.abs(t)
    return epsilon if scale < epsilon else scale


@kernel
def msle_shifted(x, like):
    """``max(x, ε) + 1`` of ``functional._msle_logs``, ε Keras's float32 1e-7, in like's dtype."""
    epsilon = same_type(like, EPSILON_FLOAT32)
    return (epsilon if x < epsilon else x) + _ONE


@kernel
def other_entry_loss(code, p, t):
    """One output's term of the per-sample mean of the losses of :data:`OtherLoss` that average
    over the outputs: p the output, t its target (a hinge's as :func:`hinge_target` reads it)."""
    if code == MEAN_ABSOLUTE_PERCENTAGE_ERROR:  # |(t - p) / max(|t|, ε)|
        return np.abs((t - p) / percentage_scale(t, p))
    if code == MEAN_SQUARED_LOGARITHMIC_ERROR:
        difference = log_of(msle_shifted(p, p)) - log_of(msle_shifted(t, p))
        return difference * difference
    if code == LOG_COSH:  # e + softplus(-2e) - log 2
        error = p - t
        return error + softplus_of(same_type(p, -2.0) * error) - same_type(p, LOG_2_FLOAT32)
    if code == POISSON:
        return p - t * log_of(p + same_type(p, EPSILON))
    violation = positive_part(_ONE - t * p)
    return violation if code == HINGE else violation * violation  # HINGE, SQUARED_HINGE


@kernel
def kl_divergence_row(p, t, i):
    """``functional.kl_divergence`` of sample i: ``Σ_k t log(t / p)``, both clipped to [ε, 1]."""
    epsilon = same_type(p, EPSILON)
    total = _ZERO
    for j in range(p.shape[1]):
        clipped_t = clip_probability(t[i, j], epsilon, _ONE)
        total += clipped_t * log_of(clipped_t / clip_probability(p[i, j], epsilon, _ONE))
    return total


@kernel
def categorical_hinge_parts(p, t, i):
    """``(neg, pos)`` of ``functional.categorical_hinge`` for sample i: the best other score
    ``max_k (1 - t_k) p_k`` and the true class's ``Σ_k t_k p_k``."""
    neg, pos = (_ONE - t[i, 0]) * p[i, 0], _ZERO
    for j in range(p.shape[1]):
        pos += t[i, j] * p[i, j]
        other = (_ONE - t[i, j]) * p[i, j]
        if other > neg:
            neg = other
    return neg, pos


@kernel
def inverse_norm(x, i, like):
    """``functional._inverse_norm`` of row i of x: ``(min(1 / ‖x_i‖, 1 / ε), whether the bound
    holds)``; ``like``'s dtype for the bound (x's own in NumPy; they are the same here)."""
    squares = _ZERO
    for j in range(x.shape[1]):
        squares += x[i, j] * x[i, j]
    inverse = _ONE / np.sqrt(squares)
    bound = same_type(like, 1 / EPSILON)
    return (bound if inverse > bound else inverse), inverse > bound


@kernel
def unit_dot(p, t, i, r_pred, r_true):
    """``Σ_k t̂_k p̂_k`` of sample i with ``x̂ = x · r`` (``functional.cosine_similarity``)."""
    total = _ZERO
    for j in range(p.shape[1]):
        total += (t[i, j] * r_true) * (p[i, j] * r_pred)
    return total


@kernel
def other_sample_loss(code, p, t, i, binary):
    """Sample i's loss of an :data:`OtherLoss` code, in p's dtype, as the per-sample function of
    npnet.functional computes it (``binary``: :func:`hinge_batch`).  p, t: (n, m)."""
    if code == KL_DIVERGENCE:
        return kl_divergence_row(p, t, i)
    if code == CATEGORICAL_HINGE:
        neg, pos = categorical_hinge_parts(p, t, i)
        return positive_part(neg - pos + _ONE)
    if code == COSINE_SIMILARITY:
        return -unit_dot(p, t, i, inverse_norm(p, i, p)[0], inverse_norm(t, i, p)[0])
    m = p.shape[1]
    total = _ZERO
    for j in range(m):
        total += other_entry_loss(code, p[i, j], hinge_target(t[i, j], binary))
    mean = total / same_type(p, m)
    return same_type(p, 100.0) * mean if code == MEAN_ABSOLUTE_PERCENTAGE_ERROR else mean


@kernel
def other_loss_value(code, a, targets, sample_weight):
    """:func:`output_loss` of an :data:`OtherLoss` code: the batch mean of the per-sample losses
    (each in the weights' dtype, times its ``sample_weight`` unless None, accumulated in
    float64 and rounded once, as :func:`target_loss`).  a, targets: (n, m)."""
    binary = hinge_batch(code, targets)
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        term = other_sample_loss(code, a, targets, i, binary)
        if sample_weight is not None:
            term = term * sample_weight[i]
        total += term
    return same_type(a, total / n)


@kernel
def other_entry_gradient(code, p, t, per_size):
    """One entry of the ``*_backward`` function of npnet.functional for the codes of
    :func:`other_entry_loss`: per_size is ``1 / (n m)`` in p's dtype (``100 / (n m)`` for MAPE)."""
    if code == MEAN_ABSOLUTE_PERCENTAGE_ERROR:
        return sign_of(p - t) / percentage_scale(t, p) * per_size
    if code == MEAN_SQUARED_LOGARITHMIC_ERROR:  # zero where max(p, ε) holds p at ε
        shifted = msle_shifted(p, p)
        slope = same_type(p, 2.0) * (log_of(shifted) - log_of(msle_shifted(t, p))) / shifted
        return (slope if p >= same_type(p, EPSILON_FLOAT32) else _ZERO) * per_size
    if code == LOG_COSH:  # tanh(e) as 1 - 2 sigmoid(-2e)
        return (_ONE - same_type(p, 2.0) * sigmoid_of(same_type(p, -2.0) * (p - t))) * per_size
    if code == POISSON:
        return (_ONE - t / (p + same_type(p, EPSILON))) * per_size
    if code == HINGE:  # -t where 1 - t p >= 0 (the kink included)
        return (-t if _ONE - t * p >= _ZERO else _ZERO) * per_size
    return same_type(p, -2.0) * t * positive_part(_ONE - t * p) * per_size  # SQUARED_HINGE


@kernel
def kl_divergence_gradient_row(p, t, i, per_n, dL_dp):
    """Row i of ``functional.kl_divergence_backward``: ``-t / p`` (clipped) times per_n, zero
    where p lies outside [ε, 1]."""
    epsilon = same_type(p, EPSILON)
    for j in range(p.shape[1]):
        clipped_t = clip_probability(t[i, j], epsilon, _ONE)
        clipped_p = clip_probability(p[i, j], epsilon, _ONE)
        inside = p[i, j] >= epsilon and p[i, j] <= _ONE
        dL_dp[i, j] = (-clipped_t / clipped_p if inside else _ZERO) * per_n


@kernel
def categorical_hinge_gradient_row(p, t, i, per_n, dL_dp):
    """Row i of ``functional.categorical_hinge_backward``: ``(1 - t) · share - t`` times per_n
    where the hinge is active, ``share`` 1 / (the number of entries tied for neg) at them."""
    neg, pos = categorical_hinge_parts(p, t, i)
    ties = 0
    for j in range(p.shape[1]):
        if (_ONE - t[i, j]) * p[i, j] == neg:
            ties += 1
    share = _ONE / same_type(p, ties)
    active = neg - pos + _ONE >= _ZERO
    for j in range(p.shape[1]):
        at_max = (_ONE - t[i, j]) * p[i, j] == neg
        slope = (_ONE - t[i, j]) * (share if at_max else _ZERO) - t[i, j]
        dL_dp[i, j] = (slope if active else _ZERO) * per_n


@kernel
def cosine_similarity_gradient_row(p, t, i, per_n, dL_dp):
    """Row i of ``functional.cosine_similarity_backward``: ``-r (t̂ - (t̂ · p̂) p̂)`` times per_n,
    or ``-t̂ r`` where r = 1 / ‖p‖ is held at 1 / ε."""
    r, held = inverse_norm(p, i, p)
    r_true = inverse_norm(t, i, p)[0]
    along = unit_dot(p, t, i, r, r_true)
    for j in range(p.shape[1]):
        unit_true, unit_pred = t[i, j] * r_true, p[i, j] * r
        slope = -unit_true * r if held else -r * (unit_true - along * unit_pred)
        dL_dp[i, j] = slope * per_n


@kernel
def other_row_gradient(code, p, t, i, binary, dL_dp):
    """Row i of the gradient of the batch-mean loss of an :data:`OtherLoss` code w.r.t. p."""
    n, m = p.shape
    per_n = same_type(p, 1 / n)
    if code == KL_DIVERGENCE:
        kl_divergence_gradient_row(p, t, i, per_n, dL_dp)
    elif code == CATEGORICAL_HINGE:
        categorical_hinge_gradient_row(p, t, i, per_n, dL_dp)
    elif code == COSINE_SIMILARITY:
        cosine_similarity_gradient_row(p, t, i, per_n, dL_dp)
    else:
        per_size = same_type(p, (100.0 if code == MEAN_ABSOLUTE_PERCENTAGE_ERROR else 1.0) / (n * m))
        for j in range(m):
            dL_dp[i, j] = other_entry_gradient(code, p[i, j], hinge_target(t[i, j], binary), per_size)


@kernel
def other_loss_gradient(loss, code, z, a, targets, sample_weight, dL_dz):
    """:func:`output_gradient` of an :data:`OtherLoss` code: the loss's gradient w.r.t. the
    output, scaled by ``sample_weight`` unless None, then the output activation's backward."""
    binary = hinge_batch(loss, targets)
    for i in range(a.shape[0]):
        other_row_gradient(loss, a, targets, i, binary, dL_dz)
    if sample_weight is not None:
        scale_rows(dL_dz, sample_weight)
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


# ----------------------------------------------------------------------------- finiteness


@kernel
def too_large_to_square(array, limit):
    """True if an entry is inf, NaN, or so large that its square overflows (|g| > ``limit``,
    sqrt of the dtype's largest float, :data:`SQUARE_LIMIT` in ``Network.constants``).

    Mirrors ``npnet.training.all_finite`` (negated): Adam and RMSprop square each gradient,
    so such a step would make their state inf. ``|g| <= limit`` is False for NaN too, and
    the and-reduction of those comparisons is associative, so this loop vectorises without
    fastmath (and cannot be fooled the way ``isnan`` is under fastmath).
    """
    flat = array.reshape(array.size)
    fine = True
    for i in range(flat.size):
        fine &= np.abs(flat[i]) <= limit
    return not fine


@kernel
def gradients_finite(trainable, kernel_grads, bias_grads, limit):
    """Mirrors ``npnet.training.all_finite`` over the gradients of the trainable layers."""
    for i in range(len(kernel_grads)):
        if trainable[i] and (too_large_to_square(kernel_grads[i], limit)
                             or too_large_to_square(bias_grads[i], limit)):
            return False
    return True


# ----------------------------------------------------------------------------- optimizers
#
# Every update is checked before it is applied: a step that would make any weight or slot
# inf or NaN is not applied at all (a weight near the float's maximum pushed over it, a huge
# learning rate, centered RMSprop's denominator rounding below zero, ...).
# Computing the update twice (once to check, once to apply) would cost a whole extra pass,
# so the check is usually a proof instead: each optimizer state carries a ``box`` of bounds
# (made by ``npnet.update_box.box``, where the arithmetic behind them is)
# such that a step from weights and slots inside the box, with every gradient
# ``|g| <= box[BOX_GRADIENT]`` (and Adam's step size ``<= box[BOX_ALPHA]``), provably leaves
# every new value finite. Each update pass reports, at no extra read, whether its new values
# are inside the box again (not Adam's slots nor RMSprop's velocity: they stay inside after a
# proven step, see SLOTS_RECHECK), so the next step's proof is ready; the first step of
# a call checks the box with one read-only pass. Outside the box, the update is computed exactly
# without writing anything (``*_update_finite``), and applied only if all of it is finite.
# Centered RMSprop's denominator v - ḡ² + ε depends on this step's gradient and can round
# below zero; its box vouches for it only while every element of the running means keeps a
# margin (``npnet.update_box.centered_margin``, which its update reports on as it writes
# them). Without that margin, a read-only pass over the gradient and the running means computes
# every denominator and proves the step finite from them, without a square root or a division
# (:func:`rmsprop_centered_bounded`), reading the weights and momentum only when the last
# update did not find them inside the box.

#: Positions in an optimizer state's ``box``: the largest gradient, weight, slot (Adam's m,
#: SGD's velocity, RMSprop's momentum), running mean of squares (Adam's v, RMSprop's
#: velocity) and Adam step size inside the box, the largest float of the weights' dtype (the
#: limit of the exact check) and its smallest normal float. The first five are -1 when the
#: box is off: then no proof is attempted and every update is checked exactly. Centered
#: RMSprop's box holds at BOX_ALPHA the largest ``lr·|g|`` of :func:`rmsprop_centered_bounded`
#: and the two numbers of its margin (``npnet.update_box.centered_margin``).
BOX_GRADIENT, BOX_WEIGHT, BOX_SLOT, BOX_SQUARES, BOX_ALPHA, BOX_LARGEST, BOX_TINY = 0, 1, 2, 3, 4, 5, 6
#: Centered RMSprop's condition on its running means, ``npnet.update_box.centered_margin``.
BOX_CENTERED_FLOOR, BOX_CENTERED_PENALTY = 7, 8

#: Adam's slots and RMSprop's velocity are not compared with the box while they are written.
#: After a step that the box proved (every |g| within its limit, which is at most the slot
#: limit S and has g² at most the squares limit Q), each new m = m + (g - m)(1 - β1) lies
#: between the old m and g up to its three roundings, and a running mean of squares (Adam's
#: v, RMSprop's velocity ρ·v + (1 - ρ)·g²) likewise between the old v and g²: with u the unit
#: roundoff, one step raises |m| <= S to at most S·(1 + 6u) and v <= Q to at most
#: Q·(1 + 9u) (g² is rounded too), so only the weights (and the other slots: SGD's velocity,
#: RMSprop's momentum, centered RMSprop's margin) can leave the box. Over k such steps these
#: slots stay within (1 + 9u)^k of their limits, and the box's proof holds with room to
#: spare (it keeps a factor 2 for rounding, see ``npnet.update_box.box``; RMSprop's velocity
#: only divides its step) as long as :func:`train_batches` measures the slots again with
#: :func:`state_in_box` after at most this many steps (a factor below 1 + 3e-3 in float32),
#: and after any step the box did not prove.
SLOTS_RECHECK = 4096


@kernel
def within(array, limit):
    """True when every entry is finite and ``|x| <= limit`` (NaN fails the comparison)."""
    return not too_large_to_square(array, limit)


@kernel
def adam_step_size(step, learning_rate, beta_1, beta_2):
    """Mirrors the step size of ``functional.adam_update``: ``lr·sqrt(1 - β2^t) / (1 - β1^t)``,
    in the dtype of the hyperparameters (the weights'), as NumPy computes it from those scalars."""
    t = same_type(learning_rate, step)
    return learning_rate * np.sqrt(_ONE - beta_2 ** t) / (_ONE - beta_1 ** t)


@kernel
def adam_new_values(p, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One element of ``functional.adam_update``: the new ``(param, m, v)``, in its order of operations."""
    m = m + (g - m) * one_minus_beta_1
    v = v + (g * g - v) * one_minus_beta_2
    return p - (m * alpha) / (np.sqrt(v) + epsilon), m, v


@kernel
def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box):
    """Mirrors ``functional.adam_update`` (given its step size ``alpha`` and ``1 - β`` as
    Keras computes them, in Python before the cast), in place. Returns whether the new
    *weights* are inside ``box``: Adam's m and v stay inside it by themselves after a step the
    box proved (see :data:`SLOTS_RECHECK`), so only the weights are compared here.

    param, grad, m, v: arrays of one shape (C-contiguous), of one float dtype.
    """
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    m_flat = m.reshape(m.size)
    v_flat = v.reshape(v.size)
    # the bound in a local: read from an array in the loop, LLVM would reload it after each store
    weight_limit = box[BOX_WEIGHT]
    inside = True
    for i in range(param_flat.size):
        p, m_new, v_new = adam_new_values(param_flat[i], grad_flat[i], m_flat[i], v_flat[i], alpha,
                                          one_minus_beta_1, one_minus_beta_2, epsilon)
        param_flat[i], m_flat[i], v_flat[i] = p, m_new, v_new
        inside &= np.abs(p) <= weight_limit
    return inside


@kernel
def adam_update_finite(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, limit):
    """Whether :func:`adam_update` would leave every value finite (``|x| <= limit``, the
    largest float), computed exactly as it would be; nothing is written."""
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    m_flat = m.reshape(m.size)
    v_flat = v.reshape(v.size)
    fine = True
    for i in range(param_flat.size):
        p, m_new, v_new = adam_new_values(param_flat[i], grad_flat[i], m_flat[i], v_flat[i], alpha,
                                          one_minus_beta_1, one_minus_beta_2, epsilon)
        fine &= (np.abs(p) <= limit) & (np.abs(m_new) <= limit) & (np.abs(v_new) <= limit)
    return fine


@kernel
def sgd_new_values(p, g, velocity, learning_rate, momentum, nesterov):
    """One element of ``functional.sgd_update`` with momentum: the new ``(param, velocity)``."""
    lr_grad = g * learning_rate
    velocity = velocity * momentum - lr_grad
    if nesterov:
        return p + (velocity * momentum - lr_grad), velocity
    return p + velocity, velocity


@kernel
def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov, box):
    """Mirrors ``functional.sgd_update``, in place; ``velocity`` None: plain gradient descent.
    Returns whether the new values are inside ``box``.

    param, grad, velocity: arrays of one shape (C-contiguous), of one float dtype.
    """
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    weight_limit, slot_limit = box[BOX_WEIGHT], box[BOX_SLOT]
    inside = True
    if velocity is None:
        for i in range(param_flat.size):
            param_flat[i] -= grad_flat[i] * learning_rate
            inside &= np.abs(param_flat[i]) <= weight_limit
        return inside
    velocity_flat = velocity.reshape(velocity.size)
    for i in range(param_flat.size):
        p, v = sgd_new_values(param_flat[i], grad_flat[i], velocity_flat[i], learning_rate, momentum, nesterov)
        param_flat[i], velocity_flat[i] = p, v
        inside &= (np.abs(p) <= weight_limit) & (np.abs(v) <= slot_limit)
    return inside


@kernel
def sgd_update_finite(param, grad, velocity, learning_rate, momentum, nesterov, limit):
    """Whether :func:`sgd_update` would leave every value finite; nothing is written."""
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    fine = True
    if velocity is None:
        for i in range(param_flat.size):
            fine &= np.abs(param_flat[i] - grad_flat[i] * learning_rate) <= limit
        return fine
    velocity_flat = velocity.reshape(velocity.size)
    for i in range(param_flat.size):
        p, v = sgd_new_values(param_flat[i], grad_flat[i], velocity_flat[i], learning_rate, momentum, nesterov)
        fine &= (np.abs(p) <= limit) & (np.abs(v) <= limit)
    return fine


@kernel
def rmsprop_new_values(p, g, velocity, buffer, average, learning_rate, rho, one_minus_rho, epsilon, momentum,
                       momentum_buffer, average_grad):
    """One element of ``functional.rmsprop_update``: the new ``(param, velocity, momentum
    buffer, average gradient)``; ``buffer`` and ``average`` come back as given when the
    optimizer has no such slot (``momentum_buffer`` / ``average_grad`` None, which numba
    prunes)."""
    velocity = rho * velocity + one_minus_rho * (g * g)
    if average_grad is not None:
        average = rho * average + one_minus_rho * g
        denominator = velocity - average * average + epsilon
    else:
        denominator = velocity + epsilon
    step = (learning_rate * g) / np.sqrt(denominator)
    if momentum_buffer is not None:
        buffer = momentum * buffer + step
        return p - buffer, velocity, buffer, average
    return p - step, velocity, buffer, average


@kernel
def centered_margin_met(v, a, velocity_factor, square_factor, least, squares_limit):
    """Whether one element's running means meet ``npnet.update_box.centered_margin``'s
    condition ``ρ(v - ḡ²) + ε >= floor + penalty·(v + ḡ²)``, rearranged as
    ``(ρ - penalty)·v - (ρ + penalty)·ḡ² >= floor - ε`` (:func:`centered_margin_factors`),
    and ``ḡ² <= squares_limit``: then the box vouches for centered RMSprop's next denominator."""
    square = a * a
    return (velocity_factor * v - square_factor * square >= least) & (square <= squares_limit)


@kernel
def centered_margin_factors(rho, epsilon, box):
    """``(ρ - penalty, ρ + penalty, floor - ε)`` of :func:`centered_margin_met`."""
    penalty = box[BOX_CENTERED_PENALTY]
    return rho - penalty, rho + penalty, box[BOX_CENTERED_FLOOR] - epsilon


@kernel
def rmsprop_update(param, grad, velocity, momentum_buffer, average_grad, hyper, box):
    """Mirrors ``functional.rmsprop_update``, in place. ``momentum_buffer`` and
    ``average_grad`` are None unless the optimizer has momentum or is centered;
    hyper: ``[learning_rate, rho, 1 - rho, epsilon, momentum]`` in the weights' dtype
    (1 - ρ taken before the cast, as Keras does). Returns whether the new values are inside
    ``box`` (for centered RMSprop, also whether its running means meet the condition under
    which the box vouches for the next denominator, :func:`centered_margin_met`); the
    velocity is not compared with the box (see :data:`SLOTS_RECHECK`).
    """
    learning_rate, rho, one_minus_rho, epsilon, momentum = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    velocity_flat = velocity.reshape(velocity.size)
    # Flat views of the optional slots (the velocity's stands in for an absent one, never
    # written): the branches test the arguments themselves, which numba prunes when they are None.
    average = velocity_flat if average_grad is None else average_grad.reshape(average_grad.size)
    buffer = velocity_flat if momentum_buffer is None else momentum_buffer.reshape(momentum_buffer.size)
    weight_limit, slot_limit, squares_limit = box[BOX_WEIGHT], box[BOX_SLOT], box[BOX_SQUARES]
    velocity_factor, square_factor, least = centered_margin_factors(rho, epsilon, box)
    inside = True
    for i in range(param_flat.size):
        p, v, b, a = rmsprop_new_values(param_flat[i], grad_flat[i], velocity_flat[i], buffer[i], average[i],
                                        learning_rate, rho, one_minus_rho, epsilon, momentum, momentum_buffer,
                                        average_grad)
        param_flat[i], velocity_flat[i] = p, v
        inside &= np.abs(p) <= weight_limit  # not v: see SLOTS_RECHECK
        if average_grad is not None:
            average[i] = a
            inside &= centered_margin_met(v, a, velocity_factor, square_factor, least, squares_limit)
        if momentum_buffer is not None:
            buffer[i] = b
            inside &= np.abs(b) <= slot_limit
    return inside


@kernel
def rmsprop_update_finite(param, grad, velocity, momentum_buffer, average_grad, hyper, limit):
    """Whether :func:`rmsprop_update` would leave every value finite; nothing is written."""
    learning_rate, rho, one_minus_rho, epsilon, momentum = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    param_flat = param.reshape(param.size)
    grad_flat = grad.reshape(grad.size)
    velocity_flat = velocity.reshape(velocity.size)
    average = velocity_flat if average_grad is None else average_grad.reshape(average_grad.size)
    buffer = velocity_flat if momentum_buffer is None else momentum_buffer.reshape(momentum_buffer.size)
    fine = True
    for i in range(param_flat.size):
        p, v, b, a = rmsprop_new_values(param_flat[i], grad_flat[i], velocity_flat[i], buffer[i], average[i],
                                        learning_rate, rho, one_minus_rho, epsilon, momentum, momentum_buffer,
                                        average_grad)
        fine &= (np.abs(p) <= limit) & (np.abs(v) <= limit)
        if average_grad is not None:
            fine &= np.abs(a) <= limit
        if momentum_buffer is not None:
            fine &= np.abs(b) <= limit
    return fine


@kernel
def within_if_any(array, limit):
    """:func:`within`, True when there is no such array (``array`` None, which numba prunes)."""
    if array is None:
        return True
    return within(array, limit)


@kernel
def rmsprop_centered_bounded(param, grad, velocity, momentum_buffer, average_grad, hyper, box, square_limit,
                             inside):
    """A proof that centered RMSprop's update is finite, in one read-only pass over the
    gradient and the running means, without square roots or divisions: True when every
    element's denominator ``v - ḡ² + ε`` (computed as the update computes it) is at least the
    smallest normal float, ``lr·|g|`` at most ``box[BOX_ALPHA]`` (``sqrt(tiny)·L/16``, so the
    step is at most L/16), ``|g|`` at most ``square_limit`` (so the proof also vouches for
    :func:`gradients_finite`), the new v and ḡ finite, and the weight and momentum within the
    box. ``inside`` says that the last update found them there (:func:`rmsprop_update`
    reports it while writing them), so they are not read again; otherwise they are read
    first. False (no proof: check exactly) when the optimizer is not centered
    (``average_grad`` None)."""
    if average_grad is None:
        return False
    if not (inside or (within(param, box[BOX_WEIGHT]) and within_if_any(momentum_buffer, box[BOX_SLOT]))):
        return False
    learning_rate, rho, one_minus_rho, epsilon = hyper[0], hyper[1], hyper[2], hyper[3]
    numerator_limit, largest, tiny = box[BOX_ALPHA], box[BOX_LARGEST], box[BOX_TINY]
    grad_flat = grad.reshape(grad.size)
    velocity_flat = velocity.reshape(velocity.size)
    average = average_grad.reshape(average_grad.size)
    proven = True
    for i in range(grad_flat.size):
        g = grad_flat[i]
        v = rho * velocity_flat[i] + one_minus_rho * (g * g)
        a = rho * average[i] + one_minus_rho * g
        proven &= ((v - a * a + epsilon >= tiny) & (np.abs(learning_rate * g) <= numerator_limit)
                   & (np.abs(g) <= square_limit) & (v <= largest) & (np.abs(a) <= largest))
    return proven


#: Adam's moments per Dense layer, ``hyper = [learning_rate, beta_1, beta_2, epsilon,
#: 1 - beta_1, 1 - beta_2]`` (the differences taken in Python before the cast, as in Keras)
#: and the ``box`` of the update check (see the notes above).
AdamState = namedtuple("AdamState", ["kernel_m", "kernel_v", "bias_m", "bias_v", "hyper", "box"])
#: SGD's velocities per Dense layer (None without momentum), ``hyper = [learning_rate, momentum]``
#: and the ``box``.
SGDState = namedtuple("SGDState", ["kernel_velocity", "bias_velocity", "hyper", "nesterov", "box"])
#: RMSprop's slots per Dense layer (``momentum``/``average`` None when unused), ``hyper`` as
#: :func:`rmsprop_update` reads it, and the ``box``.
RMSpropState = namedtuple("RMSpropState", ["kernel_velocity", "bias_velocity", "kernel_momentum",
                                           "bias_momentum", "kernel_average", "bias_average", "hyper", "box"])


@kernel
def slot_of(slots, i):
    """``slots[i]``, or None when the optimizer has no such slot (``slots`` is None)."""
    if slots is None:
        return None
    return slots[i]


@parallel_kernel
def adam_update_parallel(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box):
    """:func:`adam_update` of a kernel (d_in, units) with its blocks of tile columns shared
    among numba's threads, the same blocks the threads computed the weight gradient in (so
    each finds them in its own cache); every entry is updated exactly as there. Returns
    whether all the new weights are inside ``box``."""
    width = tile_columns(param)
    blocks_outside = 0  # a sum over the blocks: a reduction prange runs without an array
    for block in prange(param.shape[1] // width):
        saved = flush_denormals()  # each thread's own float mode: the same as the calling thread's
        columns = slice(block * width, (block + 1) * width)
        block_inside = True
        for row in range(param.shape[0]):
            block_inside &= adam_update(param[row, columns], grad[row, columns], m[row, columns], v[row, columns],
                                        alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box)
        blocks_outside += 0 if block_inside else 1
        restore_float_mode(saved)
    return blocks_outside == 0


@kernel
def adam_update_kernel(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box, threads):
    """:func:`adam_update` of a kernel, on numba's threads unless ``threads`` is None (the test
    is on the argument itself, so numba compiles the threaded version only when used)."""
    if threads is None:
        return adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box)
    if tiles_fit(param):
        return adam_update_parallel(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box)
    return adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, box)


@kernel
def adam_apply(kernels, biases, trainable, kernel_grads, bias_grads, adam, step, threads):
    """Mirrors ``Adam.update`` over the trainable layers at step ``step``; kernels whose units
    are whole tiles are updated on numba's threads unless ``threads`` is None. Returns whether
    the new weights are inside ``adam.box`` (the slots: see :data:`SLOTS_RECHECK`)."""
    learning_rate, beta_1, beta_2, epsilon = adam.hyper[0], adam.hyper[1], adam.hyper[2], adam.hyper[3]
    one_minus_beta_1, one_minus_beta_2 = adam.hyper[4], adam.hyper[5]
    alpha = adam_step_size(step, learning_rate, beta_1, beta_2)
    inside = True
    for i in range(len(kernels)):
        if trainable[i]:
            inside &= adam_update_kernel(kernels[i], kernel_grads[i], adam.kernel_m[i], adam.kernel_v[i],
                                         alpha, one_minus_beta_1, one_minus_beta_2, epsilon, adam.box, threads)
            inside &= adam_update(biases[i], bias_grads[i], adam.bias_m[i], adam.bias_v[i],
                                  alpha, one_minus_beta_1, one_minus_beta_2, epsilon, adam.box)
    return inside


@kernel
def sgd_apply(kernels, biases, trainable, kernel_grads, bias_grads, sgd):
    """Mirrors ``SGD.update`` over the trainable layers; returns whether the new values are
    inside ``sgd.box``."""
    learning_rate, momentum = sgd.hyper[0], sgd.hyper[1]
    inside = True
    for i in range(len(kernels)):
        if trainable[i]:
            inside &= sgd_update(kernels[i], kernel_grads[i], slot_of(sgd.kernel_velocity, i),
                                 learning_rate, momentum, sgd.nesterov, sgd.box)
            inside &= sgd_update(biases[i], bias_grads[i], slot_of(sgd.bias_velocity, i),
                                 learning_rate, momentum, sgd.nesterov, sgd.box)
    return inside


@kernel
def rmsprop_apply(kernels, biases, trainable, kernel_grads, bias_grads, rmsprop):
    """Mirrors ``RMSprop.update`` over the trainable layers; returns whether the new values
    are inside ``rmsprop.box`` (the velocity: see :data:`SLOTS_RECHECK`)."""
    inside = True
    for i in range(len(kernels)):
        if trainable[i]:
            inside &= rmsprop_update(kernels[i], kernel_grads[i], rmsprop.kernel_velocity[i],
                                     slot_of(rmsprop.kernel_momentum, i), slot_of(rmsprop.kernel_average, i),
                                     rmsprop.hyper, rmsprop.box)
            inside &= rmsprop_update(biases[i], bias_grads[i], rmsprop.bias_velocity[i],
                                     slot_of(rmsprop.bias_momentum, i), slot_of(rmsprop.bias_average, i),
                                     rmsprop.hyper, rmsprop.box)
    return inside


@kernel
def update_finite(kernels, biases, trainable, kernel_grads, bias_grads, adam, sgd, rmsprop, step, limit):
    """Exactly whether the optimizer's update at ``step`` leaves every weight and slot
    finite (``|x| <= limit``, the largest float), computed as ``*_apply`` would; nothing is
    written. The optimizers not in use are None."""
    fine = True
    for i in range(len(kernels)):
        if not trainable[i]:
            continue
        if adam is not None:
            alpha = adam_step_size(step, adam.hyper[0], adam.hyper[1], adam.hyper[2])
            fine &= adam_update_finite(kernels[i], kernel_grads[i], adam.kernel_m[i], adam.kernel_v[i], alpha,
                                       adam.hyper[4], adam.hyper[5], adam.hyper[3], limit)
            fine &= adam_update_finite(biases[i], bias_grads[i], adam.bias_m[i], adam.bias_v[i], alpha,
                                       adam.hyper[4], adam.hyper[5], adam.hyper[3], limit)
        if sgd is not None:
            fine &= sgd_update_finite(kernels[i], kernel_grads[i], slot_of(sgd.kernel_velocity, i), sgd.hyper[0],
                                      sgd.hyper[1], sgd.nesterov, limit)
            fine &= sgd_update_finite(biases[i], bias_grads[i], slot_of(sgd.bias_velocity, i), sgd.hyper[0],
                                      sgd.hyper[1], sgd.nesterov, limit)
        if rmsprop is not None:
            fine &= rmsprop_update_finite(kernels[i], kernel_grads[i], rmsprop.kernel_velocity[i],
                                          slot_of(rmsprop.kernel_momentum, i), slot_of(rmsprop.kernel_average, i),
                                          rmsprop.hyper, limit)
            fine &= rmsprop_update_finite(biases[i], bias_grads[i], rmsprop.bias_velocity[i],
                                          slot_of(rmsprop.bias_momentum, i), slot_of(rmsprop.bias_average, i),
                                          rmsprop.hyper, limit)
    return fine


@kernel
def box_of(adam, sgd, rmsprop):
    """The ``box`` of the optimizer in use (the other two are None, and numba removes the
    branches that test them, so ``box`` is assigned exactly once)."""
    if adam is not None:
        box = adam.box
    if sgd is not None:
        box = sgd.box
    if rmsprop is not None:
        box = rmsprop.box
    return box


@kernel
def slots_in_box(adam, sgd, rmsprop, i, slot, squares):
    """Whether layer ``i``'s slots of the optimizer in use are within their box limits."""
    fine = True
    if adam is not None:
        fine = (within(adam.kernel_m[i], slot) and within(adam.bias_m[i], slot)
                and within(adam.kernel_v[i], squares) and within(adam.bias_v[i], squares))
    if sgd is not None:
        fine = (within_if_any(slot_of(sgd.kernel_velocity, i), slot)
                and within_if_any(slot_of(sgd.bias_velocity, i), slot))
    if rmsprop is not None:
        fine = (within(rmsprop.kernel_velocity[i], squares) and within(rmsprop.bias_velocity[i], squares)
                and within_if_any(slot_of(rmsprop.kernel_momentum, i), slot)
                and within_if_any(slot_of(rmsprop.bias_momentum, i), slot)
                and centered_means_in_box(rmsprop.kernel_velocity[i], slot_of(rmsprop.kernel_average, i), rmsprop)
                and centered_means_in_box(rmsprop.bias_velocity[i], slot_of(rmsprop.bias_average, i), rmsprop))
    return fine


@kernel
def centered_means_in_box(velocity, average_grad, rmsprop):
    """Whether every element of centered RMSprop's running means meets
    :func:`centered_margin_met` (True when the optimizer is not centered)."""
    if average_grad is None:
        return True
    velocity_factor, square_factor, least = centered_margin_factors(rmsprop.hyper[1], rmsprop.hyper[3], rmsprop.box)
    squares_limit = rmsprop.box[BOX_SQUARES]
    velocity_flat = velocity.reshape(velocity.size)
    average = average_grad.reshape(average_grad.size)
    fine = True
    for i in range(velocity_flat.size):
        fine &= centered_margin_met(velocity_flat[i], average[i], velocity_factor, square_factor, least,
                                    squares_limit)
    return fine


@kernel
def state_in_box(kernels, biases, trainable, adam, sgd, rmsprop):
    """Whether every trainable weight and slot is inside the optimizer's ``box``: one
    read-only pass, made when a call starts (the weights may have been set in between)."""
    box = box_of(adam, sgd, rmsprop)
    weight, slot, squares = box[BOX_WEIGHT], box[BOX_SLOT], box[BOX_SQUARES]
    if box[BOX_GRADIENT] < 0:  # off
        return False
    for i in range(len(kernels)):
        if trainable[i] and not (within(kernels[i], weight) and within(biases[i], weight)
                                 and slots_in_box(adam, sgd, rmsprop, i, slot, squares)):
            return False
    return True


@kernel
def centered_update_bounded(net, work, rmsprop, inside):
    """:func:`rmsprop_centered_bounded` over the trainable layers (``inside``: the last update
    left every weight and momentum inside the box); False for other optimizers."""
    if rmsprop is None:
        return False
    limit = net.constants[SQUARE_LIMIT]
    for i in range(len(net.kernels)):
        if net.trainable[i] and not (
                rmsprop_centered_bounded(net.kernels[i], work.kernel_grads[i], rmsprop.kernel_velocity[i],
                                         slot_of(rmsprop.kernel_momentum, i), slot_of(rmsprop.kernel_average, i),
                                         rmsprop.hyper, rmsprop.box, limit, inside)
                and rmsprop_centered_bounded(net.biases[i], work.bias_grads[i], rmsprop.bias_velocity[i],
                                             slot_of(rmsprop.bias_momentum, i), slot_of(rmsprop.bias_average, i),
                                             rmsprop.hyper, rmsprop.box, limit, inside)):
            return False
    return True


@kernel
def step_size_in_box(adam, step, box):
    """Whether Adam's step size at ``step`` is within the box (True for the other optimizers)."""
    if adam is None:
        return True
    return adam_step_size(step, adam.hyper[0], adam.hyper[1], adam.hyper[2]) <= box[BOX_ALPHA]


@kernel
def box_proves_update(net, work, adam, sgd, rmsprop, step, inside):
    """Whether the box proves the update at ``step`` safe without computing it: ``inside``
    (the weights and slots are inside the optimizer's box), every gradient within the box's
    limit and Adam's step size within its own."""
    box = box_of(adam, sgd, rmsprop)
    return inside and box[BOX_GRADIENT] >= 0 and step_size_in_box(adam, step, box) and gradients_finite(
        net.trainable, work.kernel_grads, work.bias_grads, box[BOX_GRADIENT])


@kernel
def update_is_safe(net, work, adam, sgd, rmsprop, step, inside):
    """Whether the update at ``step`` may be applied, for a step :func:`box_proves_update`
    could not vouch for: every gradient small enough to square (the check fit has always
    made, see :func:`gradients_finite`) and every new weight and slot finite. Centered
    RMSprop's read-only proof (:func:`centered_update_bounded`, ``inside`` as there) vouches
    for both; otherwise the update is computed exactly, writing nothing."""
    if centered_update_bounded(net, work, rmsprop, inside):
        return True
    if not gradients_finite(net.trainable, work.kernel_grads, work.bias_grads, net.constants[SQUARE_LIMIT]):
        return False
    box = box_of(adam, sgd, rmsprop)
    return update_finite(net.kernels, net.biases, net.trainable, work.kernel_grads, work.bias_grads, adam, sgd,
                         rmsprop, step, box[BOX_LARGEST])


# ----------------------------------------------------------------------------- dropout


@kernel
def dropout_forward(x, keep, scale, y):
    """Mirrors ``functional.dropout_forward``: ``y = where(keep, x * scale, 0)``.

    x, keep (bool), y: (n, d) with ``scale = 1 / (1 - rate)`` in x's dtype.
    """
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[i, j] = x[i, j] * scale if keep[i, j] else _ZERO
    return y


@kernel
def dropout_backward(grad, keep, scale):
    """Mirrors ``functional.dropout_backward``, in place: ``grad = where(keep, grad * scale, 0)``."""
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            grad[i, j] = grad[i, j] * scale if keep[i, j] else _ZERO


#: Dropout in training: ``active[i]`` says whether the input of Dense layer i is dropped,
#: ``scales[i]`` its ``1 / (1 - rate)`` in the weights' dtype, ``masks[i][k]`` the keep-mask
#: (bool, (capacity, d_in of layer i)) of the k-th batch of the call, drawn by the backend with
#: the NumPy Dropout layer's generator calls; ``dropped[i]`` the buffer of the dropped input.
Dropout = namedtuple("Dropout", ["active", "scales", "masks", "dropped"])


# ----------------------------------------------------------------------------- weight penalties


#: Weight penalties, as each layer's ``weight_regularizers()`` lists them: ``has_kernel[i]``/
#: ``has_bias[i]`` the terms of the weight's regularizer (``L2_TERM | L1_TERM``, 0 for none),
#: ``kernel_l2[i]``/``bias_l2[i]`` and ``kernel_l1[i]``/``bias_l1[i]`` their coefficients
#: (weights' dtype). ``kernel_l1``/``bias_l1`` are None when no weight has an L1 term: L2
#: models then compile no L1 code.
Penalties = namedtuple("Penalties", ["has_kernel", "kernel_l2", "has_bias", "bias_l2", "kernel_l1", "bias_l1"])
#: the terms of a regularizer: ``L2`` is L2_TERM, ``L1`` L1_TERM, ``L1L2`` those of its nonzero factors
L2_TERM, L1_TERM = 1, 2


@summing_kernel
def l2_penalty(weight, l2):
    """Mirrors ``functional.l2_penalty``: ``l2 · Σ w²`` in the weight's dtype. The squares are
    summed in float64, in an order LLVM may choose (vectorised), and rounded once (NumPy sums
    pairwise in the weight's dtype): the reported loss can differ in the last bit, the
    gradients cannot."""
    flat = weight.reshape(weight.size)
    total = 0.0
    for i in range(flat.size):
        total += flat[i] * flat[i]
    return l2 * same_type(l2, total)


@summing_kernel
def l1_penalty(weight, l1):
    """Mirrors ``functional.l1_penalty``: ``l1 · Σ |w|``, the sum in float64 as in :func:`l2_penalty`."""
    flat = weight.reshape(weight.size)
    total = 0.0
    for i in range(flat.size):
        total += np.abs(flat[i])
    return l1 * same_type(l1, total)


@kernel
def weight_penalty(weight, terms, l2, l1s, i):
    """One weight's penalty, as its regularizer's ``__call__``: ``L1L2`` adds its L1 term, then
    its L2 term; ``l1s`` the L1 coefficients of the layers (None: no L1 term anywhere)."""
    if l1s is not None:
        if terms & L1_TERM:
            value = l1_penalty(weight, l1s[i])
            if terms & L2_TERM:
                value = value + l2_penalty(weight, l2)
            return value
    return l2_penalty(weight, l2)


@kernel
def penalty_loss(kernels, biases, penalties, loss):
    """``loss`` plus every penalty, added as ``npnet.training.regularization_loss`` does."""
    total = _ZERO
    for i in range(len(kernels)):
        if penalties.has_kernel[i]:
            total += weight_penalty(kernels[i], penalties.has_kernel[i], penalties.kernel_l2[i],
                                    penalties.kernel_l1, i)
        if penalties.has_bias[i]:
            total += weight_penalty(biases[i], penalties.has_bias[i], penalties.bias_l2[i], penalties.bias_l1, i)
    return loss + total


@kernel
def add_penalty_gradient(grad, weight, l2):
    """Mirrors ``grads + functional.l2_penalty_backward(w, l2)``: ``g + l2 · (2 w)``, in place."""
    grad_flat = grad.reshape(grad.size)
    weight_flat = weight.reshape(weight.size)
    for i in range(grad_flat.size):
        grad_flat[i] = grad_flat[i] + l2 * (weight_flat[i] + weight_flat[i])


@kernel
def add_l1_penalty_gradient(grad, weight, terms, l2, l1):
    """Mirrors ``grads + regularizer.gradient(w)`` for a regularizer with an L1 term, in place:
    ``g + l1 · sign(w)`` (``functional.l1_penalty_backward``), or with an L2 term too (``L1L2``,
    whose gradient is summed first) ``g + (l1 · sign(w) + l2 · (2 w))``."""
    grad_flat = grad.reshape(grad.size)
    weight_flat = weight.reshape(weight.size)
    if terms & L2_TERM:
        for i in range(grad_flat.size):
            w = weight_flat[i]
            grad_flat[i] = grad_flat[i] + (l1 * sign_of(w) + l2 * (w + w))
    else:
        for i in range(grad_flat.size):
            grad_flat[i] = grad_flat[i] + l1 * sign_of(weight_flat[i])


@kernel
def add_weight_penalty_gradient(grad, weight, terms, l2, l1s, i):
    """Add one weight's penalty gradient (``terms``, ``l1s`` as in :func:`weight_penalty`)."""
    if l1s is not None:
        if terms & L1_TERM:
            add_l1_penalty_gradient(grad, weight, terms, l2, l1s[i])
            return
    add_penalty_gradient(grad, weight, l2)


@kernel
def penalty_gradients(penalties, net, work):
    """Add each trainable weight's penalty gradient, as ``npnet.training.backward`` ends."""
    for i in range(len(net.kernels)):
        if net.trainable[i]:
            if penalties.has_kernel[i]:
                add_weight_penalty_gradient(work.kernel_grads[i], net.kernels[i], penalties.has_kernel[i],
                                            penalties.kernel_l2[i], penalties.kernel_l1, i)
            if penalties.has_bias[i]:
                add_weight_penalty_gradient(work.bias_grads[i], net.biases[i], penalties.has_bias[i],
                                            penalties.bias_l2[i], penalties.bias_l1, i)


# ----------------------------------------------------------------------------- whole passes


@kernel
def forward_pass(x, n, kernels, biases, codes, zs, acts, tiled_max_rows, dropout, step, threads):
    """Mirrors ``npnet.training.forward`` for Dense (and Dropout) layers, on the first ``n`` rows.

    x: (>= n, d_in) -> zs[i][:n], acts[i][:n] for every layer i. Products of up to
    ``tiled_max_rows`` rows are register-tiled (dtype and units permitting), larger ones go
    to BLAS.
    """
    for i in range(len(kernels)):
        inputs = x[:n] if i == 0 else acts[i - 1][:n]
        if dropout is not None:
            if dropout.active[i]:
                inputs = dropout_forward(inputs, dropout.masks[i][step], dropout.scales[i], dropout.dropped[i][:n])
        if n <= tiled_max_rows and tiles_fit(zs[i]):
            dense_forward_tiled(inputs, kernels[i], biases[i], zs[i][:n], threads)
        else:
            dense_forward(inputs, kernels[i], biases[i], zs[i][:n])
        activation_forward(codes[i], zs[i][:n], acts[i][:n])


@kernel
def backward_pass(x, n, kernels, codes, trainable, first_trainable, zs, acts, grads, kernel_grads, bias_grads,
                  dropout, step, threads, one_unit):
    """Mirrors ``npnet.training.backward`` once ``grads[-1][:n]`` holds dL/dz of the
    output layer: the parameter gradients of the trainable layers, going down no further than
    the first trainable layer (the data's gradient is never needed)."""
    for i in range(len(kernels) - 1, first_trainable - 1, -1):
        inputs = x[:n] if i == 0 else acts[i - 1][:n]
        if dropout is not None:
            if dropout.active[i]:
                inputs = dropout.dropped[i][:n]
        below = i - 1 if i > 0 else 0
        need_input_grad = i > first_trainable
        dense_backward(grads[i][:n], inputs, kernels[i], kernel_grads[i], bias_grads[i],
                       grads[below][:n], trainable[i] != 0, need_input_grad, threads, one_unit)
        if trainable[i] == KERNEL_ONLY:  # no bias (use_bias=False): its stand-in of zeros stays zero
            bias_grads[i][:] = 0
        if need_input_grad:
            if dropout is not None:
                if dropout.active[i]:
                    dropout_backward(grads[i - 1][:n], dropout.masks[i][step], dropout.scales[i])
            activation_backward(codes[i - 1], grads[i - 1][:n], zs[i - 1][:n], acts[i - 1][:n])


# ----------------------------------------------------------------------------- entry points

#: ``Network.trainable[i]`` of a trained layer with a bias, and of one without
#: (``use_bias=False``: its bias is a stand-in array of zeros whose gradient is set to zero,
#: so every optimizer's update leaves it, and its slots, at zero).
TRAINED, KERNEL_ONLY = 1, 2
#: The model, as the kernels see it: one entry per Dense layer in each tuple; ``trainable[i]``
#: 0 for a frozen layer, else ``TRAINED`` or ``KERNEL_ONLY``; ``first_trainable`` the index of
#: the first trainable one (the number of layers when none is); ``constants`` from :func:`constants`;
#: ``one_unit`` True when a layer has a single unit (whose bias gradient NumPy sums pairwise,
#: see :func:`bias_gradient`), None otherwise.
Network = namedtuple("Network", ["kernels", "biases", "codes", "loss_code", "trainable", "first_trainable",
                                 "constants", "one_unit"])
#: Preallocated arrays a training call writes: the gathered batch (``targets`` None for a
#: sparse loss), per-layer pre-activations, activations and gradients (``capacity`` rows),
#: and the parameter gradients; ``threads`` None to run on the calling thread, else a
#: number (any) to share the large products among numba's threads (npnet.config.set_num_threads).
Workspace = namedtuple("Workspace", ["x", "labels", "targets", "zs", "acts", "grads", "kernel_grads", "bias_grads",
                                     "threads"], defaults=(None,))
#: ``fit``'s sample weights (or class weights made per sample), in the weights' dtype: ``all``
#: (n_samples,), and ``batch`` (capacity,), where each batch's are gathered.
SampleWeights = namedtuple("SampleWeights", ["all", "batch"])


# ----------------------------------------------------------------------------- float mode
# Why training flushes denormals: npnet/kernels/float_mode.py.

#: MXCSR bits: FTZ (results below the smallest normal float become 0) and DAZ (such inputs
#: are read as 0).
_FLUSH_DENORMALS = 0x8040
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_call(builder, name, slot):
    pointer = builder.bitcast(slot, llvm_ir.IntType(8).as_pointer())
    function_type = llvm_ir.FunctionType(llvm_ir.VoidType(), [llvm_ir.IntType(8).as_pointer()])
    builder.call(builder.module.declare_intrinsic(name, fnty=function_type), [pointer])


@intrinsic
def flush_denormals(typingctx):
    """Set FTZ and DAZ in this thread's SSE control register; return its previous value
    (0, changing nothing, on CPUs other than x86-64)."""
    def codegen(context, builder, signature, args):
        i32 = llvm_ir.IntType(32)
        if not _X86_64:
            return llvm_ir.Constant(llvm_ir.IntType(64), 0)
        slot = builder.alloca(i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        saved = builder.load(slot)
        builder.store(builder.or_(saved, llvm_ir.Constant(i32, _FLUSH_DENORMALS)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return builder.zext(saved, llvm_ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def restore_float_mode(typingctx, saved):
    """Put back the SSE control register :func:`flush_denormals` returned."""
    def codegen(context, builder, signature, args):
        if _X86_64:
            slot = builder.alloca(llvm_ir.IntType(32))
            builder.store(builder.trunc(args[0], llvm_ir.IntType(32)), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.none(types.int64), codegen


@kernel
def enter_flushed_mode():
    """:func:`flush_denormals`, callable from Python: the calling thread's previous mode."""
    return flush_denormals()


@kernel
def leave_flushed_mode(saved):
    """:func:`restore_float_mode`, callable from Python."""
    restore_float_mode(saved)


@kernel
def train_batches(x, labels, targets, order, batch_size, first_step, n_steps, net, penalties, dropout,
                  adam, sgd, rmsprop, step_counter, work, losses, corrects, outputs, weighting, smoothing,
                  scaling):
    """:func:`train_steps_in_float_mode` with denormals flushed, as TensorFlow trains; the
    caller's float mode is restored before returning."""
    saved = flush_denormals()
    result = train_steps_in_float_mode(x, labels, targets, order, batch_size, first_step, n_steps, net,
                                       penalties, dropout, adam, sgd, rmsprop, step_counter, work, losses,
                                       corrects, outputs, weighting, smoothing, scaling)
    restore_float_mode(saved)
    return result


@kernel
def smooth_targets(targets, smoothing):
    """Mirrors ``_SmoothedCrossEntropy._smooth`` of npnet.losses, in place: ``t (1 - ε) + ε / k``
    with ``smoothing = [1 - ε, ε / k]`` in the dtype of the targets as fit was given them,
    in which the arithmetic is done (then stored in the weights' dtype).  targets: (n, k)."""
    keep, add = smoothing[0], smoothing[1]
    for i in range(targets.shape[0]):
        for j in range(targets.shape[1]):
            targets[i, j] = same_type(keep, targets[i, j]) * keep + add


@kernel
def gather_weights(weighting, order, start, n):
    """The sample weights of the batch ``order[start:start + n]``, gathered into
    ``weighting.batch[:n]`` (as ``sample_weight[index]`` in the NumPy backend)."""
    for row in range(n):
        weighting.batch[row] = weighting.all[order[start + row]]
    return weighting.batch[:n]


@kernel
def keep_rows(output, kept):
    """Copy ``output`` (n, units) into the first n rows of ``kept`` (>= n, units), element by
    element (a slice assignment would compile numba's shape-mismatch message too)."""
    for i in range(output.shape[0]):
        for j in range(output.shape[1]):
            kept[i, j] = output[i, j]


@kernel
def train_steps_in_float_mode(x, labels, targets, order, batch_size, first_step, n_steps, net, penalties, dropout,
                  adam, sgd, rmsprop, step_counter, work, losses, corrects, outputs, weighting, smoothing,
                  scaling):
    """Train on batches ``first_step, ..., first_step + n_steps - 1`` of one epoch.

    Mirrors ``NumpyBackend.train_steps``: batch ``s`` is the samples
    ``order[s * batch_size:(s + 1) * batch_size]`` (the last batch may be shorter), and each
    step is forward (with the masks of ``dropout``), loss (plus the L2 ``penalties``),
    backward, the finiteness check and the optimizer's update, advancing ``step_counter``
    (the optimizer's ``iterations``) with the weights, so an interrupt between calls finds
    them consistent.

    x: (n_samples, d_in), and labels: (n_samples,) int64 or targets: (n_samples, k) for a
    categorical loss; order: (n_samples,) int64. ``penalties`` (:class:`Penalties`),
    ``dropout`` (:class:`Dropout`) and all but one of the optimizer states ``adam``, ``sgd``,
    ``rmsprop`` are None when unused: their branches below are then not even compiled.
    Writes each batch's mean loss into ``losses[k]`` and its correct count into
    ``corrects[k]``, and, unless ``outputs`` is None, its output rows (the forward pass before
    the step's update, as the NumPy backend hands them to the metrics) into ``outputs[k][:n]``
    (outputs: (n_steps, capacity, units)). ``weighting`` (:class:`SampleWeights`, or None)
    weighs each sample's loss and gradient row as the NumPy backend's ``sample_weight``;
    ``smoothing`` (:func:`smooth_targets`, or None) is the loss's label smoothing;
    ``scaling`` (:class:`InputScaling`, or None) a first Normalization layer's. A batch
    whose loss or any gradient is not finite, or whose update would make a weight or slot
    non-finite (:func:`update_is_safe`), is *not* applied and ends the call. Returns
    ``(n_done, last_applied)``.
    """
    n_samples = x.shape[0]
    last = len(net.kernels) - 1
    inside = state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)  # see "optimizers"
    for k in range(n_steps):
        start = (first_step + k) * batch_size
        n = min(batch_size, n_samples - start)
        gather_rows(x, labels, targets, order, start, n, work.x, work.labels, work.targets)
        if scaling is not None:
            normalize_rows(work.x[:n], scaling)
        batch_labels = work.labels[:n]
        if targets is not None:
            gathered = work.targets[:n]
            if smoothing is not None:  # after gather_rows took the labels of the targets as given
                smooth_targets(gathered, smoothing)
        else:
            gathered = None
        if weighting is not None:
            batch_weight = gather_weights(weighting, order, start, n)
        else:
            batch_weight = None
        forward_pass(work.x, n, net.kernels, net.biases, net.codes, work.zs, work.acts, n, dropout, k, work.threads)
        output = work.acts[last][:n]
        if outputs is not None:
            keep_rows(output, outputs[k])
        loss = output_loss(net.loss_code, work.zs[last][:n], output, batch_labels, gathered, net.constants,
                           batch_weight)
        if penalties is not None:
            loss = penalty_loss(net.kernels, net.biases, penalties, loss)
        losses[k] = loss
        corrects[k] = count_correct(output, batch_labels)
        output_gradient(net.loss_code, net.codes[last], work.zs[last][:n], output, batch_labels, gathered,
                        net.constants, batch_weight, work.grads[last][:n])
        backward_pass(work.x, n, net.kernels, net.codes, net.trainable, net.first_trainable, work.zs, work.acts,
                      work.grads, work.kernel_grads, work.bias_grads, dropout, k, work.threads, net.one_unit)
        if penalties is not None:
            penalty_gradients(penalties, net, work)
        by_box = box_proves_update(net, work, adam, sgd, rmsprop, step_counter[0] + 1, inside)
        if not (np.isfinite(loss)
                and (by_box or update_is_safe(net, work, adam, sgd, rmsprop, step_counter[0] + 1, inside))):
            return k + 1, False
        # Optimizer.apply_gradients: advance the step counter, update the trainable weights
        step_counter[0] += 1
        if adam is not None:
            inside = adam_apply(net.kernels, net.biases, net.trainable, work.kernel_grads, work.bias_grads, adam,
                                step_counter[0], work.threads)
        if sgd is not None:
            inside = sgd_apply(net.kernels, net.biases, net.trainable, work.kernel_grads, work.bias_grads, sgd)
        if rmsprop is not None:
            inside = rmsprop_apply(net.kernels, net.biases, net.trainable, work.kernel_grads, work.bias_grads,
                                   rmsprop)
        # Adam's slots and RMSprop's velocity were not compared with the box: see SLOTS_RECHECK
        if sgd is None and inside and not (by_box and (k + 1) % SLOTS_RECHECK):
            inside = state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)
    return n_steps, True


@kernel
def evaluate_batch(x, labels, targets, net, penalties, work, smoothing, sample_weight):
    """Mirrors ``NumpyBackend.test_batch``: ``(mean loss, correct count)`` of one batch.

    x: (n, d_in) with n <= the buffers' capacity, labels: (n,) (for a categorical loss, the
    targets' argmax), targets: (n, k) or None; penalties and smoothing as in
    :func:`train_batches` (the targets are smoothed in ``work.targets``, not in place);
    sample_weight: (n,) or None, the loss's weights (Keras's ``Σ w_i l_i / n``).
    """
    n = x.shape[0]
    last = len(net.kernels) - 1
    forward_pass(x, n, net.kernels, net.biases, net.codes, work.zs, work.acts, n, None, 0, work.threads)
    if smoothing is not None:
        smoothed = work.targets[:n]
        keep_rows(targets, smoothed)
        smooth_targets(smoothed, smoothing)
        loss = output_loss(net.loss_code, work.zs[last][:n], work.acts[last][:n], labels, smoothed, net.constants,
                           sample_weight)
    else:
        loss = output_loss(net.loss_code, work.zs[last][:n], work.acts[last][:n], labels, targets, net.constants,
                           sample_weight)
    if penalties is not None:
        loss = penalty_loss(net.kernels, net.biases, penalties, loss)
    return loss, count_correct(work.acts[last][:n], labels)


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
        forward_pass(x[start:start + n], n, net.kernels, net.biases, net.codes, zs, acts, PREDICT_TILED_MAX_ROWS,
                     None, 0, None)
        # Element by element: a slice assignment would also compile numba's shape-mismatch
        # error message, a large part of the first compile, for a check that cannot fail here.
        output = acts[last]
        for i in range(n):
            for j in range(output.shape[1]):
                out[start + i, j] = output[i, j]
