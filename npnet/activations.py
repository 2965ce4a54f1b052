"""Activation functions: callables on arrays that also know their derivative.

``npnet.activations.elu(x)`` works like ``keras.activations.elu(x)`` (keyword arguments
too: ``elu(x, alpha=0.5)``); ``Dense`` also needs the backward, so each activation is an
:class:`Activation` pairing a forward function with its backward from
:mod:`npnet.functional`. The names are Keras's (``'swish'`` is another name for ``'silu'``).
"""

from . import functional as F


class Activation:
    """A named element-wise (or row-wise) function with its backward.

    ``forward(z) -> a``; ``backward(dL_da, z, a) -> dL_dz``. Calling the activation,
    ``act(x, **options)``, passes Keras's keyword arguments (``alpha``, ``negative_slope``,
    ``approximate``...) to the forward. To use your own activation in a ``Dense`` layer,
    wrap it: ``Activation("my_swish", forward, backward)``.
    """

    def __init__(self, name, forward, backward, forward_with_options=None):
        self.name = name
        self.forward = forward
        self.backward = backward
        # relu's options need a slower general function than the one Dense runs
        self._forward_with_options = forward_with_options or forward

    def __call__(self, x, **options):
        import numpy as np

        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return self._forward_with_options(x, **options) if options else self.forward(x)

    def __deepcopy__(self, memo):
        # Activations hold no state, and code recognises the built-ins by identity
        # (``layer.activation is activations.softmax``): a copied layer keeps the same one.
        return self

    def __copy__(self):
        return self

    def __repr__(self):
        return f"<npnet activation {self.name!r}>"


linear = Activation("linear", F.linear_forward, F.linear_backward)
relu = Activation("relu", F.relu_forward, F.relu_backward, F.relu_forward_general)
sigmoid = Activation("sigmoid", F.sigmoid_forward, F.sigmoid_backward)
tanh = Activation("tanh", F.tanh_forward, F.tanh_backward)
softmax = Activation("softmax", F.softmax_forward, F.softmax_backward)
elu = Activation("elu", F.elu_forward, F.elu_backward)
selu = Activation("selu", F.selu_forward, F.selu_backward)
gelu = Activation("gelu", F.gelu_forward, F.gelu_backward)
softplus = Activation("softplus", F.softplus_forward, F.softplus_backward)
softsign = Activation("softsign", F.softsign_forward, F.softsign_backward)
silu = Activation("silu", F.silu_forward, F.silu_backward)
swish = silu  # Keras's other name for it; the activation's own name stays 'silu', as in Keras
leaky_relu = Activation("leaky_relu", F.leaky_relu_forward, F.leaky_relu_backward)
exponential = Activation("exponential", F.exponential_forward, F.exponential_backward)
hard_sigmoid = Activation("hard_sigmoid", F.hard_sigmoid_forward, F.hard_sigmoid_backward)

_BY_NAME = {a.name: a for a in (linear, relu, sigmoid, tanh, softmax, elu, selu, gelu, softplus,
                                softsign, silu, leaky_relu, exponential, hard_sigmoid)}
_BY_NAME["swish"] = silu


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
        raise TypeError(_plain_callable_message(identifier))
    raise TypeError(f"activation must be None, a name or an Activation; received {identifier!r}")


def _plain_callable_message(function):
    """Why a plain function cannot be an activation, and what to write instead."""
    name = getattr(function, "__name__", "")
    module = getattr(function, "__module__", "") or ""
    instead = ""
    if name in _BY_NAME:
        instead = f" Write activation={name!r} instead."
    if module.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch", "jax"):
        where = module.split(".")[0]
        instead = f" npnet cannot run {where} functions: it computes with NumPy.{instead}"
    return (f"activation {function!r} is a plain callable, but training needs its derivative too, "
            f"and npnet has no automatic differentiation.{instead} Use a name ("
            + ", ".join(sorted(_BY_NAME)) + "), an npnet.activations function, or wrap yours as "
            "npnet.activations.Activation(name, forward, backward).")


def names():
    """The names of the built-in activations."""
    return sorted(_BY_NAME)
