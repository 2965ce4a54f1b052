"""Activation functions: callables on arrays that also know their derivative.

``npnet.activations.relu(x)`` works like ``keras.activations.relu(x)``; ``Dense`` also needs
the backward, so each activation is an :class:`Activation` pairing a forward function with
its backward from :mod:`npnet.functional`.
"""

from . import functional as F


class Activation:
    """A named element-wise (or row-wise) function with its backward.

    ``forward(z) -> a``; ``backward(dL_da, z, a) -> dL_dz``. To use your own activation in a
    ``Dense`` layer, wrap it: ``Activation("swish", forward, backward)``.
    """

    def __init__(self, name, forward, backward):
        self.name = name
        self.forward = forward
        self.backward = backward

    def __call__(self, x):
        return self.forward(x)

    def __deepcopy__(self, memo):
        # Activations hold no state, and code recognises the built-ins by identity
        # (``layer.activation is activations.softmax``): a copied layer keeps the same one.
        return self

    def __copy__(self):
        return self

    def __repr__(self):
        return f"<npnet activation {self.name!r}>"


linear = Activation("linear", F.linear_forward, F.linear_backward)
relu = Activation("relu", F.relu_forward, F.relu_backward)
sigmoid = Activation("sigmoid", F.sigmoid_forward, F.sigmoid_backward)
tanh = Activation("tanh", F.tanh_forward, F.tanh_backward)
softmax = Activation("softmax", F.softmax_forward, F.softmax_backward)

_BY_NAME = {a.name: a for a in (linear, relu, sigmoid, tanh, softmax)}


def get(identifier):
    """Resolve ``None``, a name such as ``'relu'`` or an :class:`Activation` to an Activation."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown activation {identifier!r}; known activations: {', '.join(sorted(_BY_NAME))}"
            ) from None
    if callable(identifier):
        raise TypeError(
            f"activation {identifier!r} is a plain callable, but training needs its derivative too. "
            "Use a name (" + ", ".join(sorted(_BY_NAME)) + "), an npnet.activations function, or wrap "
            "yours as npnet.activations.Activation(name, forward, backward)."
        )
    raise TypeError(f"activation must be None, a name or an Activation; received {identifier!r}")


def names():
    """The names of the built-in activations."""
    return sorted(_BY_NAME)
