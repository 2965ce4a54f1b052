"""The loss head: how the loss meets the output layer, decided once for both backends.

Keras computes a cross-entropy on probabilities that come out of a softmax *from the
softmax's logits*: the output remembers them. The loss is then ``logsumexp(z) - z_y`` with
nothing clipped, and its gradient with respect to the logits collapses to
``(p - onehot) / n`` (:func:`npnet.functional.softmax_crossentropy_backward`). Everything
else takes the general path: the loss's gradient with respect to the output, then the output
layer's own backward. :func:`choose` makes that decision; the NumPy backend
(:mod:`npnet.training`) and the numba backend both read its answer.
"""

from . import activations

#: The softmax is folded into the cross-entropy: loss and gradient come from the logits.
SOFTMAX_CROSSENTROPY = "softmax_crossentropy"
#: The loss's gradient w.r.t. the output, then the output layer's backward.
GENERAL = "general"


def output_is_softmax(layer):
    """True for a ``Softmax`` layer or a ``Dense`` layer with the softmax activation."""
    from .layers import Dense, Softmax

    return isinstance(layer, Softmax) or (isinstance(layer, Dense) and layer.activation is activations.softmax)


def choose(layers, loss):
    """The head for a model ending in ``layers[-1]`` trained with ``loss``.

    ``SOFTMAX_CROSSENTROPY`` when the loss is a cross-entropy that takes probabilities
    (``from_logits=False``) and the last layer is a softmax; ``GENERAL`` otherwise.
    """
    if not layers or loss is None:
        return GENERAL
    takes_probabilities = getattr(loss, "combines_with_softmax", False) and not loss.from_logits
    return SOFTMAX_CROSSENTROPY if takes_probabilities and output_is_softmax(layers[-1]) else GENERAL
