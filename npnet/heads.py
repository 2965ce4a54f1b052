"""The loss head: how the loss meets the output layer, decided once for both backends.

Keras computes a cross-entropy on probabilities that come out of a softmax *from the
softmax's logits*: the output remembers them. The loss is then ``logsumexp(z) - z_y`` with
nothing clipped, and its gradient with respect to the logits collapses to
``(p - onehot) / n`` (:func:`npnet.functional.softmax_crossentropy_backward`). A binary
cross-entropy on a sigmoid output is treated the same way: loss from the logits, gradient
``(p - t) / (n m)`` (:func:`npnet.functional.sigmoid_binary_crossentropy_backward`).
Everything else takes the general path: the loss's gradient with respect to the output,
then the output layer's own backward. :func:`choose` makes that decision; the NumPy backend
(:mod:`npnet.training`) and the numba backend both read its answer.
"""

from . import activations

#: The softmax is folded into the cross-entropy: loss and gradient come from the logits.
SOFTMAX_CROSSENTROPY = "softmax_crossentropy"
#: The sigmoid is folded into the binary cross-entropy, likewise.
SIGMOID_BINARY_CROSSENTROPY = "sigmoid_binary_crossentropy"
#: The loss's gradient w.r.t. the output, then the output layer's backward.
GENERAL = "general"

#: The heads whose loss comes from the output layer's logits (``caches[-1].z``) and whose
#: gradient is handed to that layer's ``backward_from_pre_activation``.
FROM_LOGITS = (SOFTMAX_CROSSENTROPY, SIGMOID_BINARY_CROSSENTROPY)


def _output_activation(layer):
    """The activation a layer applies last, or None (Softmax layer: softmax)."""
    from .layers import Activation, Dense, Softmax

    if isinstance(layer, Softmax):
        return activations.softmax
    if isinstance(layer, (Dense, Activation)):
        return layer.activation
    return None


def output_is_softmax(layer):
    """True for a ``Softmax`` layer, or a ``Dense`` or ``Activation`` layer with the softmax."""
    return _output_activation(layer) is activations.softmax


def output_is_sigmoid(layer):
    """True for a ``Dense`` or ``Activation`` layer with the sigmoid activation."""
    return _output_activation(layer) is activations.sigmoid


def choose(layers, loss):
    """The head for a model ending in ``layers[-1]`` trained with ``loss``.

    ``SOFTMAX_CROSSENTROPY`` when the loss is a cross-entropy that takes probabilities
    (``from_logits=False``) and the last layer is a softmax; ``SIGMOID_BINARY_CROSSENTROPY``
    for a binary cross-entropy of probabilities after a sigmoid; ``GENERAL`` otherwise.
    """
    if not layers or loss is None or getattr(loss, "from_logits", False):
        return GENERAL
    if getattr(loss, "combines_with_softmax", False) and output_is_softmax(layers[-1]):
        return SOFTMAX_CROSSENTROPY
    if getattr(loss, "combines_with_sigmoid", False) and output_is_sigmoid(layers[-1]):
        return SIGMOID_BINARY_CROSSENTROPY
    return GENERAL
