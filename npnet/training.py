"""One training step of a Sequential model in plain NumPy: forward, loss, backward.

This is the readable path through backpropagation; the NumPy backend, the gradient check and
``npnet.inspect`` all go through it. The numba backend computes the same thing in fused
kernels (``npnet/kernels``).
"""

import numpy as np

from . import heads, update_box
from .variables import plain


def forward(layers, x, training=False):
    """Run ``x`` through ``layers``; return the output and the list of per-layer caches."""
    caches = []
    for layer in layers:
        x, cache = layer.forward(x, training=training)
        caches.append(cache)
    return x, caches


def regularization_loss(layers):
    """The sum of the layers' weight penalties (Keras's ``model.losses``); 0.0 without any."""
    total = 0.0
    for layer in layers:
        for name, regularizer in layer.weight_regularizers().items():
            total = total + regularizer(plain(layer.params[name]))
    return total


def loss_value(layers, loss, output, caches, y, head=None, sample_weight=None):
    """The batch-mean loss of ``output`` (computed from the logits when the head says so), plus
    the weight penalties of regularized layers, which Keras includes in the loss it reports.

    ``head`` is :func:`npnet.heads.choose` of ``(layers, loss)``, computed when not given.
    ``sample_weight`` (n,): Keras's weighted mean ``Σ w_i l_i / n``.
    """
    if head is None:
        head = heads.choose(layers, loss)
    if sample_weight is not None:
        value = _weighted_value(loss, head, output, caches[-1], y, sample_weight)
    elif head in heads.FROM_LOGITS:
        _, z, _ = caches[-1]
        value = loss.value_of_logits(y, z)
    else:
        value = loss.value(y, output)
    if any(layer.weight_regularizers() for layer in layers):
        value = value + regularization_loss(layers)
    return value


def _weighted_value(loss, head, output, cache, y, sample_weight):
    """``Σ w_i l_i / n``, each sample's loss taken from the logits when the head says so."""
    if head in heads.FROM_LOGITS:
        output = cache.z
        loss = type(loss)(**{**loss.get_config(), "from_logits": True})
    per_sample = loss.per_sample(y, output)
    weights = np.asarray(sample_weight, dtype=per_sample.dtype)
    return (per_sample * weights).sum(dtype=per_sample.dtype) / per_sample.dtype.type(len(weights))


def _output_gradient(loss, head, output, y, sample_weight):
    """dL/d(output), or dL/d(logits) for a head that folds the activation into the loss;
    row i scaled by its sample weight, as the weighted mean asks."""
    gradient = loss.gradient_wrt_logits(y, output) if head in heads.FROM_LOGITS else loss.gradient(y, output)
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=gradient.dtype)
        gradient = gradient * weights.reshape((-1,) + (1,) * (gradient.ndim - 1))
    return gradient


def backward(layers, loss, output, caches, y, head=None, sample_weight=None):
    """Backpropagate the loss through ``layers`` (``head`` and ``sample_weight`` as in
    :func:`loss_value`).

    Returns one dict of parameter gradients per layer (``{}`` for layers without
    parameters) and the gradient w.r.t. each layer's output, both in layer order.
    """
    n_layers = len(layers)
    param_grads = [None] * n_layers
    output_grads = [None] * n_layers
    # The data's own gradient is never needed: stop at the first layer with parameters.
    first_trainable = next((i for i, layer in enumerate(layers) if layer.params and layer.trainable),
                           n_layers)

    if head is None:
        head = heads.choose(layers, loss)
    if head in heads.FROM_LOGITS:
        last = layers[-1]
        dL_dz = _output_gradient(loss, head, output, y, sample_weight)
        output_grads[-1] = dL_dz  # w.r.t. the logits: the softmax (sigmoid) is folded into the loss
        dL_dy, param_grads[-1] = last.backward_from_pre_activation(
            dL_dz, caches[-1], need_input_grad=n_layers - 1 > first_trainable)
        remaining = range(n_layers - 2, -1, -1)
    else:
        dL_dy = _output_gradient(loss, head, output, y, sample_weight)
        remaining = range(n_layers - 1, -1, -1)

    for i in remaining:
        if i < first_trainable:
            param_grads[i] = {}
            continue
        output_grads[i] = dL_dy
        dL_dy, param_grads[i] = layers[i].backward(dL_dy, caches[i], need_input_grad=i > first_trainable)
    for i in range(n_layers):
        if param_grads[i] is None:
            param_grads[i] = {}
    # A penalty on a weight adds its own gradient to that weight's (e.g. 2·l2·kernel).
    for layer, grads in zip(layers, param_grads):
        if not layer.trainable:
            grads.clear()  # a frozen layer's weights get no gradient, as in Keras
            continue
        if not type(layer).__module__.startswith("npnet."):
            _check_returned_gradients(layer, grads)
        for name, regularizer in layer.weight_regularizers().items():
            grads[name] = grads[name] + regularizer.gradient(plain(layer.params[name]))
    return param_grads, output_grads


def _check_returned_gradients(layer, grads):
    """A layer of your own returns one gradient per weight, under the weight's key in
    ``layer.params`` and of its shape: say so clearly when it does not."""
    expected = {name: tuple(p.shape) for name, p in layer.params.items()}
    if isinstance(grads, dict):
        received = {name: tuple(np.shape(g)) for name, g in grads.items()}
        if received == expected:
            return
    else:
        received = f"a {type(grads).__name__}"
    raise ValueError(f"{type(layer).__name__} {layer.name!r}: backward must return the gradients as a dict with "
                     f"one entry per weight, keyed and shaped as layer.params: expected {expected}; received "
                     f"{received}")


def flat_gradients(layers, param_grads):
    """Flatten per-layer gradient dicts into a list aligned with the trainable weights."""
    return [grads[name] for layer, grads in zip(layers, param_grads) if layer.trainable
            for name in layer.params]


def loss_and_gradients(layers, loss, x, y, training=True, head=None, sample_weight=None):
    """Forward and backward for one batch (``sample_weight``: (n,) or None).

    Returns ``(loss, output, grads)`` with ``grads`` aligned with the trainable weights
    (``[kernel_0, bias_0, kernel_1, bias_1, ...]`` when every layer is trainable).
    """
    output, caches = forward(layers, x, training=training)
    value = loss_value(layers, loss, output, caches, y, head, sample_weight)
    param_grads, _ = backward(layers, loss, output, caches, y, head, sample_weight)
    return value, output, flat_gradients(layers, param_grads)


def all_finite(arrays):
    """True when every entry is finite *and* can be squared without overflowing.

    Adam (and RMSprop) square each gradient: a finite gradient above sqrt(max float),
    about 1.8e19 in float32, would turn the second moment into inf, then NaN, and the
    weights with it. Refusing such a step like a non-finite one keeps the last finite
    weights in the model. (``not max <= limit`` is also True for NaN.)
    """
    return all(squares_finite(update_box.largest_magnitude([a]), a.dtype) for a in arrays)


def squares_finite(largest, dtype):
    """True when ``largest`` (a largest ``|gradient|``) is finite and its square is too, in ``dtype``."""
    return largest <= float(np.sqrt(np.finfo(dtype).max))
