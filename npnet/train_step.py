"""READ SECOND: the tutorial's whole training step by hand, with no objects.

After :mod:`npnet.functional`, this is the next thing to read: one training step of
``Flatten → Dense(128, relu) → Dense(10, softmax)`` with the sparse categorical
cross-entropy and Adam, written as a straight line of calls to the functional pieces on a
dict of arrays. ``model.fit`` on the NumPy backend computes exactly this (tested)::

    params = {"kernel_1": w1, "bias_1": b1, "kernel_2": w2, "bias_2": b2}   # e.g. model.get_weights()
    state = adam_state(params)
    for step, (images, labels) in enumerate(batches, start=1):
        loss = train_step(params, state, step, images, labels)
"""

import numpy as np

from . import functional as F


def adam_state(params):
    """Adam's two moments for every parameter, at zero: ``{"m": {...}, "v": {...}}``."""
    return {slot: {name: np.zeros_like(value) for name, value in params.items()} for slot in ("m", "v")}


def train_step(params, state, step, images, labels, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
               epsilon=1e-7):
    """One step on a batch; updates ``params`` and ``state`` in place; returns the batch's loss.

    images: (n, 28, 28) floats, labels: (n,) integer classes; step: 1 for the first step.
    """
    x = images.reshape(images.shape[0], -1)                         # Flatten: (n, 784)
    # forward
    z1 = F.dense_forward(x, params["kernel_1"], params["bias_1"])   # (n, 128)
    a1 = F.relu_forward(z1)                                         # (n, 128)
    z2 = F.dense_forward(a1, params["kernel_2"], params["bias_2"])  # (n, 10) logits
    p = F.softmax_forward(z2)                                       # (n, 10) probabilities
    loss = F.sparse_categorical_crossentropy_from_logits(z2, labels)
    # backward: softmax and cross-entropy together give (p - onehot) / n w.r.t. the logits
    grads = {}
    dL_dz2 = F.softmax_crossentropy_backward(p, labels)             # (n, 10)
    dL_da1, grads["kernel_2"], grads["bias_2"] = F.dense_backward(dL_dz2, a1, params["kernel_2"])
    dL_dz1 = F.relu_backward(dL_da1, z1, a1)                        # (n, 128)
    _, grads["kernel_1"], grads["bias_1"] = F.dense_backward(dL_dz1, x, params["kernel_1"],
                                                             need_input_grad=False)
    # update every parameter with Adam
    for name in params:
        F.adam_update(params[name], grads[name], state["m"][name], state["v"][name], step,
                      learning_rate, beta_1, beta_2, epsilon)
    return loss
