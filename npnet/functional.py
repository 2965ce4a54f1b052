"""READ FIRST: the mathematics of the tutorial model as plain NumPy functions.

Every piece of a training step is here as a forward/backward pair with the array shapes in
its docstring. Layers, losses and optimizers are thin objects around these functions, and the
numba kernels in ``npnet/kernels`` name the function here that each of them mirrors.

Notation, for a batch of ``n`` samples:

* ``x``  (n, d_in)   the input of a Dense layer
* ``z``  (n, units)  its pre-activation, ``z = x @ kernel + bias``
* ``a``  (n, units)  its activation, ``a = f(z)``
* ``dL_dz`` etc.     the gradient of the (batch-mean) loss ``L`` with respect to ``z`` etc.

The formulas follow tf.keras exactly (Keras 3), so that the two libraries agree to float32
rounding: see the comments on the loss and on Adam.
"""

import numpy as np


# ----------------------------------------------------------------------------- elementwise math

def _in_float64(function):
    """``function`` (``np.exp``, ...) computed in float64 and, for float32 input, rounded once.

    That is the correctly rounded float32 result (but for rare double-rounding ties), the same
    on every CPU and the same as the numba kernels compute. NumPy's own float32 loops are SIMD
    code picked per CPU that can be a unit off in the last place, and Adam can turn a
    last-bit difference of a tiny gradient into a step of up to its learning rate.
    """
    def rounded(z):
        if getattr(z, "dtype", None) == np.float32:
            return function(z.astype(np.float64)).astype(np.float32)
        return function(z)

    rounded.__name__ = function.__name__
    return rounded


exp, expm1, log, log1p, tanh = (_in_float64(f) for f in (np.exp, np.expm1, np.log, np.log1p, np.tanh))

# ----------------------------------------------------------------------------- Dense


def dense_forward(x, kernel, bias):
    """Affine map of a Dense layer.

    x: (n, d_in), kernel: (d_in, units), bias: (units,) or None (``use_bias=False``)  ->  z: (n, units)
    """
    z = x @ kernel
    return z if bias is None else z + bias


def dense_backward(dL_dz, x, kernel, need_input_grad=True):
    """Gradients of a Dense layer, given the gradient at its output ``dL_dz`` (n, units).

    Returns ``dL_dx`` (n, d_in), ``dL_dkernel`` (d_in, units), ``dL_dbias`` (units,).
    Each row of ``x`` contributed ``x_i ⊗ dL_dz_i`` to the kernel gradient, hence ``x.T @ dL_dz``;
    the bias was added to every row, hence the sum over the batch. The first layer's input is
    the data, whose gradient nobody needs: ``need_input_grad=False`` skips that product.
    """
    dL_dx = dL_dz @ kernel.T if need_input_grad else None
    dL_dkernel = x.T @ dL_dz
    dL_dbias = dL_dz.sum(axis=0)
    return dL_dx, dL_dkernel, dL_dbias


# ----------------------------------------------------------------------------- activations
# Each backward takes the upstream gradient dL_da and both z and a = f(z), and uses
# whichever makes the derivative cheapest.


def relu_forward(z):
    """a = max(z, 0), element-wise.  z: (n, units) -> a: (n, units)"""
    return np.maximum(z, 0)


def relu_backward(dL_da, z, a):
    """The derivative of ReLU is 1 where z > 0 and 0 elsewhere (0 at the kink, as in TF)."""
    return dL_da * (z > 0)


def linear_forward(z):
    """The identity: a Dense layer without activation outputs its logits."""
    return z


def linear_backward(dL_da, z, a):
    """The identity passes the gradient through unchanged."""
    return dL_da


def sigmoid_forward(z):
    """a = 1 / (1 + exp(-z)), computed without overflow for large negative z."""
    e = exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def sigmoid_backward(dL_da, z, a):
    """sigmoid'(z) = a (1 - a)."""
    return dL_da * a * (1 - a)


def tanh_forward(z):
    """a = tanh(z)."""
    return tanh(z)


def tanh_backward(dL_da, z, a):
    """tanh'(z) = 1 - a²."""
    return dL_da * (1 - a * a)


def softmax_forward(z):
    """Row-wise softmax.  z: (n, k) logits -> p: (n, k) probabilities, rows sum to 1 (over
    the last axis, as Keras's, for inputs of any rank).

    Subtracting the row maximum first changes nothing mathematically and keeps ``exp``
    from overflowing.
    """
    e = exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dL_dp, z, p):
    """The general softmax backward: a Jacobian-vector product per row.

    ``dp_i/dz_j = p_i (δ_ij - p_j)``, so ``dL_dz = p * (dL_dp - Σ_j dL_dp_j p_j)``.
    Training the tutorial model never takes this path: see
    :func:`softmax_crossentropy_backward` for the shortcut Keras uses.
    """
    return p * (dL_dp - np.sum(dL_dp * p, axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- losses


def one_hot(labels, n_classes, dtype):
    """labels: (n,) integers in [0, n_classes) -> (n, n_classes) rows of 0 with a 1."""
    encoded = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    encoded[np.arange(labels.shape[0]), labels] = 1
    return encoded


def sparse_categorical_crossentropy_from_logits(z, labels):
    """Mean over the batch of ``-log softmax(z)[label]``.  z: (n, k), labels: (n,) -> scalar.

    ``-log softmax(z)_y = logsumexp(z) - z_y``, computed with the row maximum subtracted.
    This is how Keras evaluates the loss of a softmax output layer: the layer's output
    remembers its logits and the loss is computed from them, so no probability is clipped.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum_exp = np.log(exp(shifted).sum(axis=1))
    per_sample = log_sum_exp - shifted[np.arange(z.shape[0]), labels]
    return per_sample.mean(dtype=z.dtype)


def softmax_crossentropy_backward(p, labels):
    """The combined gradient of softmax followed by cross-entropy, w.r.t. the logits.

    p: (n, k) softmax probabilities, labels: (n,)  ->  dL_dz: (n, k)

    Chaining ``dL/dp = -onehot / p`` (cross-entropy) through the softmax Jacobian collapses
    to ``p - onehot``; dividing by n accounts for the batch mean. One subtraction replaces
    a division and a Jacobian product, and it cannot blow up when some p is tiny.
    """
    dL_dz = p.copy()
    dL_dz[np.arange(p.shape[0]), labels] -= 1
    dL_dz /= p.shape[0]
    return dL_dz


def sparse_categorical_crossentropy(p, labels, epsilon=1e-7):
    """The general path: cross-entropy of probabilities.  p: (n, k), labels: (n,) -> scalar.

    Like Keras: the probabilities are clipped to [epsilon, 1 - epsilon] into ``c``, and the
    loss is the cross-entropy of the softmax of ``log c``, i.e. ``log Σ_k c_k - log c_y``.
    The first term renormalises rows that do not sum to 1 (sigmoid outputs, say); it is
    about 0 for softmax rows.
    """
    clipped = np.clip(p, epsilon, 1 - epsilon)
    picked = clipped[np.arange(p.shape[0]), labels]
    return (np.log(clipped.sum(axis=1)) - np.log(picked)).mean(dtype=p.dtype)


def sparse_categorical_crossentropy_backward(p, labels, epsilon=1e-7):
    """Gradient of :func:`sparse_categorical_crossentropy` w.r.t. p: (n, k).

    With ``c = clip(p)`` and ``S = Σ_k c_k`` per row, ``d/dc_k (log S - log c_y) =
    1/S - [k = y] / c_y``; divided by n for the batch mean, and zero where the clip was
    active (the clip's derivative is zero there, as in TF's ``clip_by_value``). Dividing by
    the clipped values, never by p itself, keeps p_y = 0 from warning.
    """
    n = p.shape[0]
    rows = np.arange(n)
    clipped = np.clip(p, epsilon, 1 - epsilon)
    dL_dc = np.repeat(1 / clipped.sum(axis=1, keepdims=True), p.shape[1], axis=1)
    dL_dc[rows, labels] -= 1 / clipped[rows, labels]
    inside = (p >= epsilon) & (p <= 1 - epsilon)
    return (np.where(inside, dL_dc, 0) / n).astype(p.dtype, copy=False)


def categorical_crossentropy(p, targets, epsilon=1e-7):
    """Cross-entropy against one-hot (or soft) targets.  p, targets: (n, k) -> scalar.

    Keras first rescales each row of p to sum to 1, then clips to [epsilon, 1 - epsilon].
    """
    p = p / p.sum(axis=1, keepdims=True)
    return (-(targets * np.log(np.clip(p, epsilon, 1 - epsilon))).sum(axis=1)).mean(dtype=p.dtype)


def categorical_crossentropy_from_logits(z, targets):
    """Mean of ``-Σ_k t_k log softmax(z)_k``.  z, targets: (n, k) -> scalar."""
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(exp(shifted).sum(axis=1, keepdims=True))
    return (-(targets * log_p).sum(axis=1)).mean(dtype=z.dtype)


def softmax_categorical_crossentropy_backward(p, targets):
    """Combined softmax + cross-entropy gradient w.r.t. the logits for (n, k) targets.

    In general ``dL_dz = (p Σ_k t_k - t) / n``, which is ``(p - t) / n`` for one-hot or
    label-smoothed targets whose rows sum to 1.
    """
    return (p * targets.sum(axis=1, keepdims=True) - targets) / p.shape[0]


# ----------------------------------------------------------------------------- metrics


def count_correct(p, labels):
    """How many rows of p (n, k) have their largest entry at the label (ties: first index)."""
    return int(np.count_nonzero(p.argmax(axis=1) == labels))


# ----------------------------------------------------------------------------- Adam


def adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon):
    """One Adam step in Keras's form, updating ``param``, ``m`` and ``v`` in place.

    param, grad, m, v: arrays of one shape; step: the 1-based step count ``t``.

        m ← m + (g - m)(1 - β1)            first moment, a running mean of g
        v ← v + (g² - v)(1 - β2)           second moment, a running mean of g²
        α = lr · sqrt(1 - β2^t) / (1 - β1^t) bias correction folded into the step size
        w ← w - α · m / (sqrt(v) + ε)

    The textbook form (Kingma & Ba) corrects both moments for their start at zero:

        m̂ = m / (1 - β1^t),   v̂ = v / (1 - β2^t)
        w ← w - lr · m̂ / (sqrt(v̂) + ε̂)

    Keras folds both corrections into one step size instead: ``lr · m̂ / sqrt(v̂)`` equals
    ``α · m / sqrt(v)`` with ``α`` above, so the two forms are the same update with
    ``ε = ε̂ · sqrt(1 - β2^t)``. Keras's ε is added after the square root and is *not*
    bias-corrected (PyTorch's Adam uses the textbook ε̂), which matters only while ``sqrt(v)``
    is as small as ε. All scalars are cast to the parameter's dtype first, as Keras does, so
    a float32 model is updated in float32 arithmetic throughout.
    """
    dtype = param.dtype.type
    # 1 - β is taken in Python before the cast, as Keras does: float32(1 - 0.9) is not
    # float32(1) - float32(0.9).
    one_minus_beta_1, one_minus_beta_2 = dtype(1.0 - beta_1), dtype(1.0 - beta_2)
    alpha = adam_step_size(step, learning_rate, beta_1, beta_2, dtype)
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    param -= (m * alpha) / (np.sqrt(v) + dtype(epsilon))


def adam_step_size(step, learning_rate, beta_1, beta_2, dtype):
    """Adam's bias-corrected step size ``α = lr · sqrt(1 - β2^t) / (1 - β1^t)`` at step ``t``,
    computed in ``dtype`` (the parameters' float type) as :func:`adam_update` uses it."""
    t, beta_1, beta_2 = dtype(step), dtype(beta_1), dtype(beta_2)
    return dtype(learning_rate) * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)


# ----------------------------------------------------------------------------- Dropout


def dropout_forward(x, keep, rate):
    """Inverted dropout in training mode.  x: (n, ...), keep: bool array of x's shape -> (n, ...)

    Each unit is kept where ``keep`` is True (drawn with probability ``1 - rate``) and the
    kept units are scaled by ``1 / (1 - rate)``: the expected value of every unit is then
    what it is without dropout, so at inference dropout is simply the identity. The scale is
    computed in Python and cast to x's dtype, as TensorFlow does.
    """
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return np.where(keep, x * scale, x.dtype.type(0))


def dropout_backward(dL_dy, keep, rate):
    """The mask and the scale pass the gradient: ``dL_dx = dL_dy / (1 - rate)`` where kept, else 0."""
    scale = dL_dy.dtype.type(1.0 / (1.0 - rate))
    return np.where(keep, dL_dy * scale, dL_dy.dtype.type(0))


# ----------------------------------------------------------------------------- L2 penalty


def l2_penalty(kernel, l2):
    """Keras's L2 regularization term ``l2 · Σ kernel²``, added to the loss.  kernel: any shape -> scalar."""
    dtype = kernel.dtype.type
    return dtype(l2) * np.sum(np.square(kernel), dtype=kernel.dtype)


def l2_penalty_backward(kernel, l2):
    """d(l2 · Σ w²)/dw = 2 · l2 · w, same shape as ``kernel``: weight decay pulling w toward 0."""
    return kernel.dtype.type(l2) * (2 * kernel)


# ----------------------------------------------------------------------------- SGD and RMSprop


def sgd_update(param, grad, velocity, learning_rate, momentum=0.0, nesterov=False):
    """One SGD step in Keras's form, updating ``param`` (and ``velocity``) in place.

    param, grad: arrays of one shape; velocity: an array of that shape, or None when
    ``momentum == 0`` (plain gradient descent keeps no state).

        plain:     w ← w - lr · g
        momentum:  v ← μ · v - lr · g;   w ← w + v
        nesterov:  v ← μ · v - lr · g;   w ← w + μ · v - lr · g   (look ahead along v)

    ``v`` is a velocity: a decaying sum of past steps, so directions that the gradient
    keeps pointing in speed up and directions where it oscillates cancel out.
    """
    dtype = param.dtype.type
    lr_grad = grad * dtype(learning_rate)
    if velocity is None:
        param -= lr_grad
        return
    mu = dtype(momentum)
    velocity[...] = velocity * mu - lr_grad
    if nesterov:
        param += velocity * mu - lr_grad
    else:
        param += velocity


def rmsprop_update(param, grad, velocity, learning_rate, rho=0.9, epsilon=1e-7, momentum_buffer=None,
                   momentum=0.0, average_grad=None, denominator=None):
    """One RMSprop step in Keras's form, updating ``param`` and the state arrays in place.

    param, grad, velocity: arrays of one shape. ``momentum_buffer`` is given when
    ``momentum > 0``; ``average_grad`` when the optimizer is ``centered``.

        v ← ρ v + (1 - ρ) g²                 running mean of g² ("velocity" in Keras)
        centered: ḡ ← ρ ḡ + (1 - ρ) g;  denominator = v - ḡ² + ε   (an estimate of the variance)
        otherwise:                       denominator = v + ε
        step = lr · g / sqrt(denominator)
        momentum: m ← μ m + step;  w ← w - m
        otherwise:                 w ← w - step

    Dividing by the root-mean-square of recent gradients gives every parameter its own
    step size. Unlike Adam, ε sits *inside* the square root and there is no bias correction.
    ``denominator``: given when the caller has already updated the running means with
    :func:`rmsprop_moments` (to look at the denominator before the step is taken).
    """
    if denominator is None:  # the slots take the new running means directly
        _, _, denominator = rmsprop_moments(grad, velocity, rho, epsilon, average_grad,
                                            out=(velocity, average_grad, None))
    dtype = param.dtype.type
    step = (dtype(learning_rate) * grad) / np.sqrt(denominator)
    if momentum_buffer is not None:
        momentum_buffer[...] = dtype(momentum) * momentum_buffer + step
        param -= momentum_buffer
    else:
        param -= step


def rmsprop_moments(grad, velocity, rho=0.9, epsilon=1e-7, average_grad=None, out=(None, None, None)):
    """The new running means of one RMSprop step and its denominator, as
    :func:`rmsprop_update` defines them: ``(v', ḡ' or None, denominator)``.

    ``out``: the arrays to write ``v'``, ``ḡ'`` and the denominator into (None: a new
    array). ``velocity`` and ``average_grad`` are read before their new values are written,
    so they may be their own ``out``.
    """
    dtype = velocity.dtype.type
    # 1 - ρ is taken in Python before the cast, as Keras does: float32(1 - 0.9) is not
    # float32(1) - float32(0.9).
    rho, one_minus_rho = dtype(rho), dtype(1.0 - rho)
    new_velocity, new_average, denominator = out
    new_velocity = np.add(rho * velocity, one_minus_rho * (grad * grad), out=new_velocity)
    if average_grad is None:
        return new_velocity, None, np.add(new_velocity, dtype(epsilon), out=denominator)
    new_average = np.add(rho * average_grad, one_minus_rho * grad, out=new_average)
    # v' - ḡ'² + ε, left to right
    denominator = np.subtract(new_velocity, new_average * new_average, out=denominator)
    denominator += dtype(epsilon)
    return new_velocity, new_average, denominator


# ----------------------------------------------------------------------------- more activations
# Keras's other element-wise activations, each a forward and its derivative as above:
# z, a, dL_da and the result all have one shape, (n, units). Where TensorFlow defines the
# derivative at a kink, the same side is taken here, so that gradients agree bit for bit
# in spirit (at z = 0 for elu/selu/leaky_relu: the z <= 0 branch or the z > 0 branch, as TF).

#: SELU's constants (Klambauer et al. 2017), as Keras and TensorFlow define them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _as(z, value):
    """A Python number as a scalar of z's dtype, so float32 stays float32."""
    return z.dtype.type(value)


def elu_forward(z, alpha=1.0):
    """a = z for z > 0, alpha · (exp(z) - 1) otherwise (``expm1`` keeps small z exact)."""
    return np.where(z > 0, z, _as(z, alpha) * expm1(np.minimum(z, 0)))


def elu_backward(dL_da, z, a, alpha=1.0):
    """elu'(z) = 1 for z > 0, alpha · exp(z) = a + alpha otherwise."""
    return dL_da * np.where(z > 0, _as(z, 1), a + _as(z, alpha))


def selu_forward(z):
    """a = scale · elu(z, alpha) with SELU's fixed alpha and scale (self-normalising)."""
    return _as(z, SELU_SCALE) * np.where(z > 0, z, _as(z, SELU_ALPHA) * expm1(np.minimum(z, 0)))


def selu_backward(dL_da, z, a):
    """selu'(z) = scale for z > 0, scale · alpha · exp(z) = a + scale · alpha otherwise."""
    return dL_da * np.where(z > 0, _as(z, SELU_SCALE), a + _as(z, SELU_SCALE * SELU_ALPHA))


def gelu_forward(z, approximate=False):
    """a = z · Φ(z), Φ the standard normal CDF: ``0.5 z (1 + erf(z / √2))``.

    ``approximate=True`` uses the tanh form ``0.5 z (1 + tanh(√(2/π) (z + 0.044715 z³)))``.
    Keras's ``activations.gelu`` defaults to the exact form (its ``ops.gelu`` to the other).
    """
    if approximate:
        inner = _as(z, np.sqrt(2 / np.pi)) * (z + _as(z, 0.044715) * z ** 3)
        return _as(z, 0.5) * z * (1 + tanh(inner))
    from scipy.special import erf  # scipy is a dependency already (numba's BLAS)

    return (_as(z, 0.5) * z * (1 + erf(z * _as(z, 1 / np.sqrt(2))))).astype(z.dtype, copy=False)


def gelu_backward(dL_da, z, a, approximate=False):
    """gelu'(z) = Φ(z) + z · φ(z) with φ the normal density; the tanh form's own derivative
    when ``approximate``: ``0.5 (1 + t) + 0.5 z (1 - t²) √(2/π) (1 + 3 · 0.044715 z²)``."""
    if approximate:
        c = _as(z, np.sqrt(2 / np.pi))
        t = tanh(c * (z + _as(z, 0.044715) * z ** 3))
        slope = _as(z, 0.5) * (1 + t) + _as(z, 0.5) * z * (1 - t * t) * c * (1 + _as(z, 3 * 0.044715) * z * z)
        return dL_da * slope
    from scipy.special import erf

    cdf = _as(z, 0.5) * (1 + erf(z * _as(z, 1 / np.sqrt(2))))
    density = exp(_as(z, -0.5) * z * z) * _as(z, 1 / np.sqrt(2 * np.pi))
    return (dL_da * (cdf + z * density)).astype(z.dtype, copy=False)


def softplus_forward(z):
    """a = log(1 + exp(z)), as ``max(z, 0) + log1p(exp(-|z|))`` so that exp never overflows."""
    return np.maximum(z, 0) + log1p(exp(-np.abs(z)))


def softplus_backward(dL_da, z, a):
    """softplus'(z) = sigmoid(z)."""
    return dL_da * sigmoid_forward(z)


def softsign_forward(z):
    """a = z / (1 + |z|): like tanh, but approaching ±1 polynomially."""
    return z / (1 + np.abs(z))


def softsign_backward(dL_da, z, a):
    """softsign'(z) = 1 / (1 + |z|)²."""
    denominator = 1 + np.abs(z)
    return dL_da / (denominator * denominator)


def silu_forward(z):
    """a = z · sigmoid(z) (SiLU, also called swish)."""
    return z * sigmoid_forward(z)


def silu_backward(dL_da, z, a):
    """silu'(z) = s + z · s (1 - s) with s = sigmoid(z)."""
    s = sigmoid_forward(z)
    return dL_da * (s * (1 + z * (1 - s)))


def leaky_relu_forward(z, negative_slope=0.2):
    """a = z for z > 0, negative_slope · z otherwise (Keras's function default: 0.2)."""
    return np.where(z > 0, z, _as(z, negative_slope) * z)


def leaky_relu_backward(dL_da, z, a, negative_slope=0.2):
    """The derivative is 1 for z > 0 and negative_slope otherwise (at 0 as well, as in TF)."""
    return dL_da * np.where(z > 0, _as(z, 1), _as(z, negative_slope))


def exponential_forward(z):
    """a = exp(z)."""
    return exp(z)


def exponential_backward(dL_da, z, a):
    """exp'(z) = exp(z) = a."""
    return dL_da * a


def hard_sigmoid_forward(z):
    """Keras 3's piecewise-linear sigmoid: ``relu6(z + 3) / 6``, i.e. 0 below -3, 1 above 3,
    ``z / 6 + 0.5`` between. (The formula of Keras 2 was ``0.2 z + 0.5`` clipped at ±2.5.)"""
    return np.clip(z + _as(z, 3), 0, 6) / _as(z, 6)


def hard_sigmoid_backward(dL_da, z, a):
    """1/6 strictly between -3 and 3, where relu6 has slope 1; 0 outside and at the ends."""
    inside = (z > -3) & (z < 3)
    return dL_da * np.where(inside, _as(z, 1 / 6), _as(z, 0))


def relu_forward_general(z, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's full ReLU: ``z`` for threshold < z (capped at ``max_value``), and
    ``negative_slope · (z - threshold)`` below the threshold.  z: any shape -> same shape."""
    if negative_slope and max_value is None and threshold == 0:
        return leaky_relu_forward(z, negative_slope)
    a = np.where(z > _as(z, threshold), z, _as(z, 0)) if threshold else np.maximum(z, 0)
    if max_value is not None:
        a = np.clip(a, 0, _as(z, max_value))
    if negative_slope:
        a = a - _as(z, negative_slope) * np.maximum(_as(z, threshold) - z, 0)
    return a


def relu_backward_general(dL_da, z, a, negative_slope=0.0, max_value=None, threshold=0.0):
    """Slope 1 above the threshold and up to ``max_value``, ``negative_slope`` below the
    threshold, 0 above ``max_value``; the kinks take the side TensorFlow's ops take."""
    if negative_slope and max_value is None and threshold == 0:
        return leaky_relu_backward(dL_da, z, a, negative_slope)
    inside = z > _as(z, threshold)
    if max_value is not None:
        # relu6 (max 6, no threshold) is one op whose slope is 0 at 6; a clip passes its ends
        inside &= (z < 6) if (max_value == 6 and not threshold) else (z <= _as(z, max_value))
    slope = np.where(inside, _as(z, 1), _as(z, 0))
    if negative_slope:
        slope = slope + np.where(z < _as(z, threshold), _as(z, negative_slope), _as(z, 0))
    return dL_da * slope


# ----------------------------------------------------------------------------- binary and regression losses
# Keras's per-sample losses: y_pred and y_true of shape (n, m), the loss of a sample is the
# mean over its m outputs, and the loss reported is the batch mean of those (n,) values.
# The gradients below are of that batch mean, hence the division by n · m.


def binary_crossentropy(p, targets, epsilon=1e-7):
    """Per-sample binary cross-entropy of probabilities.  p, targets: (n, m) -> (n,)

    ``-(t log p + (1 - t) log(1 - p))`` with p clipped to [epsilon, 1 - epsilon] as Keras does.
    """
    clipped = np.clip(p, epsilon, 1 - epsilon)
    per_entry = -(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped))
    return per_entry.mean(axis=-1, dtype=p.dtype)


def binary_crossentropy_backward(p, targets, epsilon=1e-7):
    """d(batch-mean BCE)/dp: ``(p - t) / (p (1 - p)) / (n m)``, zero where the clip holds p."""
    clipped = np.clip(p, epsilon, 1 - epsilon)
    inside = (p >= epsilon) & (p <= 1 - epsilon)
    dL_dp = (clipped - targets) / (clipped * (1 - clipped))
    return (np.where(inside, dL_dp, 0) / p.size).astype(p.dtype, copy=False)


def binary_crossentropy_from_logits(z, targets):
    """Per-sample BCE of logits.  z, targets: (n, m) -> (n,)

    ``-(t log σ(z) + (1 - t) log(1 - σ(z)))`` rewritten as ``max(z, 0) - z t + log(1 + exp(-|z|))``
    so that no exponential overflows and nothing is clipped (TensorFlow's
    ``sigmoid_cross_entropy_with_logits``).
    """
    per_entry = np.maximum(z, 0) - z * targets + log1p(exp(-np.abs(z)))
    return per_entry.mean(axis=-1, dtype=z.dtype)


def sigmoid_binary_crossentropy_backward(p, targets):
    """The combined gradient of a sigmoid followed by binary cross-entropy, w.r.t. the logits.

    p: (n, m) sigmoid outputs, targets: (n, m)  ->  dL_dz: (n, m)

    As for softmax and cross-entropy: ``dL/dp = (p - t) / (p (1 - p))`` times the sigmoid's
    derivative ``p (1 - p)`` collapses to ``p - t``; divided by n · m for the batch mean of
    the per-sample means. Nothing is divided by a p that may be 0 or 1.
    """
    return (p - targets) / p.size


def mean_squared_error(y_pred, y_true):
    """Per-sample mean of squared errors.  (n, m), (n, m) -> (n,)"""
    error = y_pred - y_true
    return (error * error).mean(axis=-1, dtype=y_pred.dtype)


def mean_squared_error_backward(y_pred, y_true):
    """d(batch mean of MSE)/dy_pred = 2 (y_pred - y_true) / (n m)."""
    return (y_pred - y_true) * y_pred.dtype.type(2 / y_pred.size)


def mean_absolute_error(y_pred, y_true):
    """Per-sample mean of absolute errors.  (n, m), (n, m) -> (n,)"""
    return np.abs(y_pred - y_true).mean(axis=-1, dtype=y_pred.dtype)


def mean_absolute_error_backward(y_pred, y_true):
    """d(batch mean of MAE)/dy_pred = sign(y_pred - y_true) / (n m); 0 where they are equal, as TF's abs."""
    return np.sign(y_pred - y_true) * y_pred.dtype.type(1 / y_pred.size)


def huber(y_pred, y_true, delta=1.0):
    """Per-sample mean Huber loss.  (n, m), (n, m) -> (n,)

    With ``e = y_pred - y_true``: ``e² / 2`` where ``|e| <= delta`` (squared error near the
    target), ``delta (|e| - delta / 2)`` beyond (absolute error for outliers); the two pieces
    meet with equal value and slope at ``|e| = delta``.
    """
    error = y_pred - y_true
    abs_error = np.abs(error)
    d = y_pred.dtype.type(delta)
    half = y_pred.dtype.type(0.5)
    per_entry = np.where(abs_error <= d, half * error * error, d * abs_error - half * d * d)
    return per_entry.mean(axis=-1, dtype=y_pred.dtype)


def huber_backward(y_pred, y_true, delta=1.0):
    """d(batch-mean Huber)/dy_pred: ``e`` inside the delta band, ``delta · sign(e)`` outside, / (n m)."""
    error = y_pred - y_true
    d = y_pred.dtype.type(delta)
    slope = np.where(np.abs(error) <= d, error, d * np.sign(error))
    return slope * y_pred.dtype.type(1 / y_pred.size)


# ----------------------------------------------------------------------------- L1 penalty


def l1_penalty(kernel, l1):
    """Keras's L1 regularization term ``l1 · Σ |kernel|``.  kernel: any shape -> scalar."""
    return kernel.dtype.type(l1) * np.sum(np.abs(kernel), dtype=kernel.dtype)


def l1_penalty_backward(kernel, l1):
    """d(l1 · Σ |w|)/dw = l1 · sign(w) (0 at w = 0, as TF's abs): a constant pull toward 0
    that, unlike L2's, does not fade as w shrinks, so it drives small weights to exactly 0."""
    return kernel.dtype.type(l1) * np.sign(kernel)


# ----------------------------------------------------------------------------- more Keras losses
# Keras 3's other losses of targets shaped like the output: y_pred, y_true (n, m) -> (n,) per
# sample, and the gradient of the batch mean of those values w.r.t. y_pred, (n, m). Where a
# formula clips or clamps with Keras's ε = 1e-7, the gradient is zero where the clip holds,
# and at the clip's edge it passes, as TensorFlow's maximum/minimum/clip gradients do.

#: ``keras.backend.epsilon()``
EPSILON = 1e-7


def mean_absolute_percentage_error(y_pred, y_true, epsilon=EPSILON):
    """Per-sample MAPE: ``100 · mean(|y_true - y_pred| / max(|y_true|, ε))``.  (n, m), (n, m) -> (n,)

    The ε keeps a zero target from dividing by zero: its error counts as |y_pred| / ε.
    """
    scale = np.maximum(np.abs(y_true), _as(y_pred, epsilon))
    ratio = np.abs((y_true - y_pred) / scale)
    return _as(y_pred, 100.0) * ratio.mean(axis=-1, dtype=y_pred.dtype)


def mean_absolute_percentage_error_backward(y_pred, y_true, epsilon=EPSILON):
    """d(batch-mean MAPE)/dy_pred = 100 · sign(y_pred - y_true) / max(|y_true|, ε) / (n m)."""
    scale = np.maximum(np.abs(y_true), _as(y_pred, epsilon))
    return np.sign(y_pred - y_true) / scale * _as(y_pred, 100.0 / y_pred.size)


def _msle_logs(y_pred, y_true, epsilon):
    # Keras makes this ε a float32 constant even for float64 outputs, so float64 uses float32(1e-7)
    eps = _as(y_pred, np.float32(epsilon))
    one = _as(y_pred, 1.0)
    shifted_pred = np.maximum(y_pred, eps) + one
    return log(shifted_pred) - log(np.maximum(y_true, eps) + one), shifted_pred, eps


def mean_squared_logarithmic_error(y_pred, y_true, epsilon=EPSILON):
    """Per-sample MSLE: ``mean((log(max(y_pred, ε) + 1) - log(max(y_true, ε) + 1))²)``.  (n, m), (n, m) -> (n,)

    Values below ε (zero, negative) count as ε: the loss compares orders of magnitude.
    """
    difference = _msle_logs(y_pred, y_true, epsilon)[0]
    return (difference * difference).mean(axis=-1, dtype=y_pred.dtype)


def mean_squared_logarithmic_error_backward(y_pred, y_true, epsilon=EPSILON):
    """d(batch-mean MSLE)/dy_pred = 2 d / (max(y_pred, ε) + 1) / (n m) with d the log difference;
    zero where y_pred < ε (held at ε by the max)."""
    difference, shifted_pred, eps = _msle_logs(y_pred, y_true, epsilon)
    slope = _as(y_pred, 2.0) * difference / shifted_pred
    return np.where(y_pred >= eps, slope, _as(y_pred, 0)) * _as(y_pred, 1 / y_pred.size)


def log_cosh(y_pred, y_true):
    """Per-sample ``mean(log(cosh(e)))`` of the error ``e = y_pred - y_true``.  (n, m), (n, m) -> (n,)

    Like e²/2 for small errors and |e| - log 2 for large ones (Huber without a delta). cosh
    overflows for |e| > ~89 in float32, so it is computed as ``e + softplus(-2e) - log 2``.
    Keras takes log 2 in float32 even for float64 outputs; so does this.
    """
    error = y_pred - y_true
    log_2 = _as(y_pred, np.float32(np.log(2.0)))
    return (error + softplus_forward(_as(y_pred, -2.0) * error) - log_2).mean(axis=-1, dtype=y_pred.dtype)


def log_cosh_backward(y_pred, y_true):
    """d(batch-mean log-cosh)/dy_pred = tanh(e) / (n m), computed as ``1 - 2 sigmoid(-2e)``, the
    derivative of the forward formula term by term, so that float32 rounding agrees with Keras."""
    error = y_pred - y_true
    slope = 1 - _as(y_pred, 2.0) * sigmoid_forward(_as(y_pred, -2.0) * error)
    return slope * _as(y_pred, 1 / y_pred.size)


def kl_divergence(y_pred, y_true, epsilon=EPSILON):
    """Per-sample Kullback-Leibler divergence ``Σ_k t_k log(t_k / p_k)``.  p, t: (n, k) -> (n,)

    Both are clipped to [ε, 1] first, so zeros give no log(0). A *sum* over the k entries,
    not a mean: the divergence of the distribution t from p.
    """
    t = np.clip(y_true, _as(y_pred, epsilon), _as(y_pred, 1))
    p = np.clip(y_pred, _as(y_pred, epsilon), _as(y_pred, 1))
    return (t * log(t / p)).sum(axis=-1, dtype=y_pred.dtype)


def kl_divergence_backward(y_pred, y_true, epsilon=EPSILON):
    """d(batch-mean KL)/dp = -t / p / n (both clipped), zero where p lies outside [ε, 1]."""
    eps = _as(y_pred, epsilon)
    t = np.clip(y_true, eps, _as(y_pred, 1))
    p = np.clip(y_pred, eps, _as(y_pred, 1))
    inside = (y_pred >= eps) & (y_pred <= 1)
    return np.where(inside, -t / p, _as(y_pred, 0)) * _as(y_pred, 1 / y_pred.shape[0])


def poisson(y_pred, y_true, epsilon=EPSILON):
    """Per-sample Poisson loss ``mean(p - t log(p + ε))``, the negative log-likelihood of counts t
    with rate p (up to a term without p).  (n, m), (n, m) -> (n,)

    Rates must be positive (an exponential or softplus output): as in Keras, a prediction
    below -ε gives NaN, the log of a negative number.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y_pred - y_true * log(y_pred + _as(y_pred, epsilon))).mean(axis=-1, dtype=y_pred.dtype)


def poisson_backward(y_pred, y_true, epsilon=EPSILON):
    """d(batch-mean Poisson)/dp = (1 - t / (p + ε)) / (n m)."""
    with np.errstate(divide="ignore"):
        slope = 1 - y_true / (y_pred + _as(y_pred, epsilon))
    return slope * _as(y_pred, 1 / y_pred.size)


def hinge_targets(y_true):
    """Keras's reading of hinge targets: when *every* target of the batch is 0 or 1, they are
    binary labels and become -1 and 1 (``2 t - 1``); any other targets are used as they are."""
    if np.all((y_true == 0) | (y_true == 1)):
        return 2 * y_true - 1
    return y_true


def hinge(y_pred, y_true):
    """Per-sample hinge loss ``mean(max(1 - t p, 0))`` with targets t = ±1 (0/1 converted by
    :func:`hinge_targets`).  (n, m), (n, m) -> (n,)

    Zero once a prediction is on the right side with margin 1 (t p >= 1), linear otherwise.
    """
    margin = 1 - hinge_targets(y_true) * y_pred
    return np.maximum(margin, 0).mean(axis=-1, dtype=y_pred.dtype)


def hinge_backward(y_pred, y_true):
    """d(batch-mean hinge)/dp = -t / (n m) where ``1 - t p >= 0`` (at the kink as well, as
    TensorFlow's maximum), else 0."""
    t = hinge_targets(y_true)
    return np.where(1 - t * y_pred >= 0, -t, _as(y_pred, 0)) * _as(y_pred, 1 / y_pred.size)


def squared_hinge(y_pred, y_true):
    """Per-sample ``mean(max(1 - t p, 0)²)``, targets as for :func:`hinge`.  (n, m), (n, m) -> (n,)"""
    violation = np.maximum(1 - hinge_targets(y_true) * y_pred, 0)
    return (violation * violation).mean(axis=-1, dtype=y_pred.dtype)


def squared_hinge_backward(y_pred, y_true):
    """d(batch-mean squared hinge)/dp = -2 t max(1 - t p, 0) / (n m)."""
    t = hinge_targets(y_true)
    violation = np.maximum(1 - t * y_pred, 0)
    return _as(y_pred, -2.0) * t * violation * _as(y_pred, 1 / y_pred.size)


def categorical_hinge(y_pred, y_true):
    """Per-sample ``max(1 + neg - pos, 0)`` for one-hot targets t: ``pos = Σ_k t_k p_k``, the
    score of the true class, and ``neg = max_k (1 - t_k) p_k``, the best other score.  (n, k), (n, k) -> (n,)

    Zero once the true class beats every other by a margin of 1.
    """
    pos = (y_true * y_pred).sum(axis=-1, dtype=y_pred.dtype)
    neg = ((1 - y_true) * y_pred).max(axis=-1)
    return np.maximum(neg - pos + 1, _as(y_pred, 0))


def categorical_hinge_backward(y_pred, y_true):
    """d(batch-mean categorical hinge)/dp = ((1 - t) · share - t) / n where the hinge is active
    (``1 + neg - pos >= 0``), else 0. ``share`` is 1 at the entry that gave ``neg``; entries
    tied for the maximum share it equally, as TensorFlow's max gradient does."""
    others = (1 - y_true) * y_pred
    neg = others.max(axis=-1, keepdims=True)
    pos = (y_true * y_pred).sum(axis=-1, keepdims=True, dtype=y_pred.dtype)
    at_max = others == neg
    share = at_max / at_max.sum(axis=-1, keepdims=True).astype(y_pred.dtype)
    slope = (1 - y_true) * share - y_true
    return np.where(neg - pos + 1 >= 0, slope, _as(y_pred, 0)) * _as(y_pred, 1 / y_pred.shape[0])


def _inverse_norm(x, epsilon):
    """Per row ``min(1 / ‖x‖, 1 / ε)``, (n, 1): Keras's L2 normalisation scale, and where the
    bound holds it (``1 / ‖x‖ > 1 / ε``): a zero row stays zero instead of becoming 0/0."""
    squares = (x * x).sum(axis=-1, keepdims=True, dtype=x.dtype)
    with np.errstate(divide="ignore"):
        inverse = 1 / np.sqrt(squares)
    bound = _as(x, 1 / epsilon)
    return np.minimum(inverse, bound), inverse > bound


def cosine_similarity(y_pred, y_true, epsilon=EPSILON):
    """Per-sample ``-Σ_k t̂_k p̂_k`` over the last axis, with ``x̂ = x / ‖x‖`` the unit vectors.
    (n, m), (n, m) -> (n,)

    -1 when prediction and target point the same way, 0 when orthogonal (or either is zero),
    1 when opposite: minimising it aligns the directions, whatever the lengths.
    """
    unit_pred = y_pred * _inverse_norm(y_pred, epsilon)[0]
    unit_true = y_true * _inverse_norm(y_true, epsilon)[0]
    return -(unit_true * unit_pred).sum(axis=-1, dtype=y_pred.dtype)


def cosine_similarity_backward(y_pred, y_true, epsilon=EPSILON):
    """d(batch-mean cosine loss)/dp = -r (t̂ - (t̂ · p̂) p̂) / n with r = 1 / ‖p‖: only the part
    of t̂ across p̂ moves p, since growing p along itself leaves the angle alone. Where r is
    held at 1 / ε (p about zero) it is a constant: -t̂ / ε / n."""
    r, held = _inverse_norm(y_pred, epsilon)
    unit_pred = y_pred * r
    unit_true = y_true * _inverse_norm(y_true, epsilon)[0]
    along = (unit_true * unit_pred).sum(axis=-1, keepdims=True, dtype=y_pred.dtype)
    slope = np.where(held, -unit_true * r, -r * (unit_true - along * unit_pred))
    return slope * _as(y_pred, 1 / y_pred.shape[0])
