"""One training step laid bare, layer by layer, without changing the model.

    report = npnet.inspect.step(model, x_batch, y_batch)
    print(report)                      # a compact table
    report["dense"].pre_activation     # the arrays, for a notebook
    report["dense"].update["kernel"]   # what the optimizer would add to the kernel

``step`` runs exactly what ``fit`` runs on one batch with the NumPy backend — forward in
training mode, loss, backward (:mod:`npnet.training`), then the optimizer — on copies of the
layers and of the optimizer. The model's weights, its optimizer state and npnet's random
generator are left as they were, so a ``fit`` on the same batch afterwards (``shuffle=False``,
``batch_size=len(x)``) applies exactly the update reported here.

The update-to-weight ratio ``‖update‖ / ‖w‖`` is a health check (CS231n): around 1e-3 is
typical; far above, the learning rate is probably too high; far below, too low.
"""

import copy
import dataclasses

import numpy as np

from . import heads, training as training_module, utils
from .layers import Dense, ReLU, Softmax

#: The update/weight ratios outside which the summary flags a parameter (rule of thumb ~1e-3).
RATIO_LOW, RATIO_HIGH = 1e-4, 1e-2


@dataclasses.dataclass
class LayerStep:
    """One layer's part in a training step. ``n`` is the batch size; arrays are copies.

    ``pre_activation`` is ``z = x @ kernel + bias`` for a Dense layer and the input for a ReLU
    or Softmax layer (None for layers without one). ``grad_output`` is dL/d(output); it is
    None where backprop does not compute it: below the first layer with parameters, and at a
    softmax output whose softmax is folded into the cross-entropy (then ``grad_pre_activation``
    holds the gradient w.r.t. the logits, ``(p - onehot) / n``).
    """

    name: str
    kind: str                        # the layer's class, e.g. "Dense"
    activation: str                  # e.g. "relu"; "" for layers without an activation
    input: np.ndarray                # (n, ...) what the layer received
    pre_activation: object           # (n, units) or None
    output: np.ndarray               # (n, ...) what the layer passed on
    grad_output: object              # like output, or None
    grad_pre_activation: object      # like pre_activation, or None
    weights: dict                    # {name: array} before the step, e.g. kernel (d_in, units)
    gradients: dict                  # {name: dL/dw}, penalties included (same shapes as weights)
    optimizer_state: dict            # {name: {slot: array}} before the step
    optimizer_state_after: dict      # {name: {slot: array}} after it
    new_weights: dict                # {name: array} after the step
    update: dict                     # {name: new_weights - weights}
    update_ratio: dict               # {name: ‖update‖ / ‖weights‖} (inf where ‖weights‖ = 0)


@dataclasses.dataclass
class StepReport:
    """What :func:`step` found. ``report[i]`` or ``report["dense"]`` gives a :class:`LayerStep`."""

    layers: list                 # of LayerStep, in model order
    loss: float                  # what fit reports for this batch: data loss + penalties
    penalty: float               # the regularization part of ``loss`` (0.0 without regularizers)
    n_samples: int
    n_correct: int
    optimizer: str               # e.g. "Adam(learning_rate=0.001, ...)"
    iteration: int               # the optimizer's step number this update would be (1-based)
    logits_shortcut: bool        # the loss was computed from the output layer's logits
    applied: bool                # False: the loss, a gradient or the update is not finite; fit would skip it
    dtype: str

    def __getitem__(self, key):
        if isinstance(key, str):
            for layer in self.layers:
                if layer.name == key:
                    return layer
            raise KeyError(f"no layer named {key!r}; layers: {[layer.name for layer in self.layers]}")
        return self.layers[key]

    def summary(self):
        accuracy = self.n_correct / self.n_samples
        penalty = f" (penalties {self.penalty:.4g})" if self.penalty else ""
        text = [f"One training step on {self.n_samples} samples ({self.dtype}): loss {self.loss:.4f}{penalty}, "
                f"accuracy {accuracy:.4f}; {self.optimizer}, step {self.iteration}"]
        if self.logits_shortcut:
            text.append("The cross-entropy is taken from the output layer's logits: its gradient there "
                        "is dL/dz = (p - onehot) / n.")
        if not self.applied:
            text.append("The loss, a gradient or the update is not finite: fit would stop without applying "
                        "this update.")
        header = ("layer", "output", "‖dL/dout‖", "param", "‖w‖", "‖dL/dw‖", "‖update‖", "update/‖w‖", "")
        rows = []
        for layer in self.layers:
            shown = layer.activation and layer.activation != layer.kind.lower()
            kind = f"{layer.kind}, {layer.activation}" if shown else layer.kind
            grad = layer.grad_output if layer.grad_output is not None else None
            grad_text = _norm_text(grad) if grad is not None else (
                "(logits) " + _norm_text(layer.grad_pre_activation) if layer.grad_pre_activation is not None else "-")
            note = ""
            if layer.activation == "relu":
                note = f"{np.mean(layer.output == 0):.0%} of outputs are 0"
            first = [f"{layer.name} ({kind})", str(layer.output.shape), grad_text]
            if not layer.weights:
                rows.append(first + ["", "", "", "", "", note])
            for j, name in enumerate(layer.weights):
                ratio = layer.update_ratio[name]
                flag = note if j == 0 else ""
                frozen = name not in layer.gradients  # a frozen layer's, or Normalization's statistics
                if frozen:
                    flag = ("not trained; " + flag).rstrip("; ")
                elif ratio == float("inf"):
                    pass  # weights at 0 (a fresh bias): no ratio to judge
                elif ratio > RATIO_HIGH:
                    flag = ("high ratio; " + flag).rstrip("; ")
                elif ratio < RATIO_LOW:
                    flag = ("low ratio; " + flag).rstrip("; ")
                cells = first if j == 0 else ["", "", ""]
                gradient = "-" if frozen else _norm_text(layer.gradients[name])
                rows.append(cells + [name, _norm_text(layer.weights[name]), gradient,
                                     _norm_text(layer.update[name]), _ratio_text(ratio), flag])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

        def line(cells):
            return "  ".join(c.ljust(w) if i in (0, 1, 3, 8) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        text += [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
        text.append(f"‖·‖ is the Euclidean norm. update/‖w‖ around 1e-3 is healthy; above {RATIO_HIGH:g} the "
                    f"learning rate may be too high, below {RATIO_LOW:g} too low.")
        return "\n".join(text)

    __str__ = summary


def step(model, x, y):
    """Run one training step of ``model`` on the batch ``(x, y)`` on copies; report every layer.

    Args:
        model: a compiled, built ``npnet.Sequential``; it is not modified.
        x, y: one batch, as ``fit`` takes them (validated and converted the same way).

    Returns:
        a :class:`StepReport`.
    """
    if not getattr(model, "compiled", False):
        raise RuntimeError("npnet.inspect.step needs a compiled model (the optimizer and the loss are "
                           "part of a step): call model.compile(optimizer=..., loss=...) first")
    if not model.built:
        raise ValueError("npnet.inspect.step needs the model's weights, which do not exist yet: give the "
                         "first layer input_shape=... or call model.build(input_shape)")
    x, y = model.check_data(x, y)
    layers = copy.deepcopy(model._layers)
    optimizer = copy.deepcopy(model.optimizer)
    loss = model.loss
    head = heads.choose(layers, loss)
    inputs, outputs, caches, value, param_grads, output_grads = _forward_and_backward(layers, loss, x, y, head)
    penalty = training_module.regularization_loss(layers)
    grads = training_module.flat_gradients(layers, param_grads)
    applied = bool(np.isfinite(value) and training_module.all_finite(grads))

    params = [p for layer in layers if layer.trainable for p in layer.params.values()]
    old = {id(p): p.copy() for layer in layers for p in layer.params.values()}
    if optimizer.state is None:
        optimizer.build(params)
    state_before = _state_by_param(optimizer, params, copy_arrays=True)
    if applied:  # updates the copies in place, if the update is finite
        applied = optimizer.apply_gradients_if_finite(params, grads)
    state_after = _state_by_param(optimizer, params, copy_arrays=True)

    shortcut = head == heads.SOFTMAX_CROSSENTROPY
    last = len(layers) - 1
    records = [_layer_step(layer, inputs[i], outputs[i], caches[i], output_grads[i], param_grads[i],
                           old, state_before, state_after, applied, from_loss=shortcut and i == last)
               for i, layer in enumerate(layers)]
    n_correct = model.accuracy.count_correct(y, outputs[-1])
    iteration = optimizer.iterations if applied else optimizer.iterations + 1
    return StepReport(records, float(value), float(penalty), int(x.shape[0]), int(n_correct),
                      repr(model.optimizer), int(iteration), bool(shortcut), applied, str(x.dtype))


def _forward_and_backward(layers, loss, x, y, head):
    """``training.forward``'s loop keeping every layer's input and output, then backward,
    with npnet's generator rewound afterwards (fit must draw the same dropout masks)."""
    generator = utils.rng()
    saved_state = generator.bit_generator.state
    try:
        inputs, outputs, caches, h = [], [], [], x
        for layer in layers:
            inputs.append(h)
            h, cache = layer.forward(h, training=True)
            outputs.append(h)
            caches.append(cache)
        value = training_module.loss_value(layers, loss, h, caches, y, head)
        param_grads, output_grads = training_module.backward(layers, loss, h, caches, y, head)
    finally:
        generator.bit_generator.state = saved_state
    return inputs, outputs, caches, value, param_grads, output_grads


def _state_by_param(optimizer, params, copy_arrays):
    """``{id(param): {slot: array}}`` of the optimizer's state for each trainable parameter."""
    return {id(p): {slot: (arrays[j].copy() if copy_arrays else arrays[j])
                    for slot, arrays in optimizer.state.items()} for j, p in enumerate(params)}


def _layer_step(layer, layer_input, output, cache, grad_output, grads, old, state_before, state_after,
                applied, from_loss):
    """The :class:`LayerStep` of one layer (``from_loss``: the loss handed it dL/dz)."""
    names = list(layer.params)
    weights = {name: old[id(layer.params[name])] for name in names}
    new = {name: layer.params[name].copy() for name in names}
    update = {name: new[name] - weights[name] if applied else np.zeros_like(weights[name]) for name in names}
    return LayerStep(
        name=layer.name, kind=type(layer).__name__, activation=_activation_name(layer),
        input=np.array(layer_input), pre_activation=_pre_activation(layer, cache), output=np.array(output),
        grad_output=None if from_loss else _copy(grad_output),
        grad_pre_activation=_grad_pre_activation(layer, cache, grad_output, from_loss),
        weights=weights,
        gradients={name: np.array(grads[name]) for name in names if name in grads},
        optimizer_state={name: state_before.get(id(layer.params[name]), {}) for name in names},
        optimizer_state_after={name: state_after.get(id(layer.params[name]), {}) for name in names},
        new_weights=new, update=update,
        update_ratio={name: _ratio(update[name], weights[name]) for name in names})


# ----------------------------------------------------------------------------- helpers


def _copy(array):
    return None if array is None else np.array(array)


def _activation_name(layer):
    if isinstance(layer, Dense):
        return layer.activation.name
    if isinstance(layer, (ReLU, Softmax)):
        return type(layer).__name__.lower()
    return ""


def _has_activation_cache(layer):
    """Dense, ReLU and Softmax keep ``(x, z, a)`` as their cache."""
    return isinstance(layer, (Dense, ReLU, Softmax))


def _pre_activation(layer, cache):
    return np.array(cache.z) if _has_activation_cache(layer) else None


def _grad_pre_activation(layer, cache, grad_output, from_loss):
    if from_loss:
        return np.array(grad_output)  # the loss handed over dL/dz directly
    if grad_output is None or not _has_activation_cache(layer):
        return None
    _, z, a = cache
    if isinstance(layer, Dense):
        return np.array(layer.activation.backward(grad_output, z, a))
    return np.array(layer.backward(grad_output, cache)[0])


def _ratio(update, weights):
    update_norm, weight_norm = float(np.linalg.norm(update)), float(np.linalg.norm(weights))
    if weight_norm == 0:
        return float("inf") if update_norm > 0 else 0.0
    return update_norm / weight_norm


def _norm_text(array):
    return f"{float(np.linalg.norm(array)):.3e}"


def _ratio_text(ratio):
    return "inf (w = 0)" if ratio == float("inf") else f"{ratio:.2e}"
