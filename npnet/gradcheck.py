"""Gradient check: compare backpropagation with centred finite differences.

    report = npnet.gradcheck(model, x, y)
    print(report)          # a table per parameter, with a verdict
    report.passed          # True when every checked entry agrees to the tolerance

For a parameter entry ``w``, the numerical derivative of the loss ``L`` is the centred
difference

    n = (L(w + ε) - L(w - ε)) / (2ε)          (its truncation error shrinks like ε²)

and backprop's value ``a`` is compared with it through the relative error (CS231n)

    |a - n| / max(|a| + |n|, tiny)

which reads the same whether gradients are large or small. In float64 with ε = 1e-5, a
correct backward gives errors below 1e-7; above 1e-2 it is certainly wrong.

Three things make the check trustworthy:

* It runs on a float64 *copy* of the model: the model's weights, its optimizer and npnet's
  random generator are left exactly as they were.
* The analytic gradients come from :func:`npnet.training.loss_and_gradients`, the very code
  the NumPy backend trains with, regularization penalties included.
* Randomness is replayed: in training mode every evaluation (analytic and each ±ε) draws the
  same dropout masks, so the loss being differentiated is one fixed function.

ReLU has a kink at 0. If shifting an entry by ±ε moves some ReLU pre-activation across 0,
the finite difference measures a slope across the kink, not the derivative backprop
computed. Such entries are detected, counted in the ``kinks`` column and left out of the
maxima and the verdict.
"""

import argparse
import copy
import dataclasses
import sys

import numpy as np

from . import activations, losses as losses_module, training as training_module, utils, validation
from .layers import Dense, ReLU

#: The CS231n reading of a relative error, from worst to best: (lower bound, verdict, meaning).
THRESHOLDS = (
    (1e-2, "WRONG", "the gradient is wrong"),
    (1e-4, "suspicious", "probably a bug, or eps too large for the function's curvature"),
    (1e-7, "doubtful", "normal in float32 or at kinks; in float64 away from kinks it points to "
                       "a subtle error or a badly chosen eps"),
    (0.0, "excellent", "backprop agrees with the finite differences"),
)


def verdict(relative_error):
    """The word for a relative error: ``'excellent'`` (< 1e-7) ... ``'WRONG'`` (> 1e-2 or NaN)."""
    if not np.isfinite(relative_error):
        return THRESHOLDS[0][1]
    for lower, word, _ in THRESHOLDS:
        if relative_error > lower:
            return word
    return THRESHOLDS[-1][1]


def relative_error(analytic, numeric):
    """``|a - n| / max(|a| + |n|, tiny)`` element-wise; 0 where both are exactly 0."""
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric),
                                                   np.finfo(np.float64).tiny)


@dataclasses.dataclass
class ParameterCheck:
    """The check of one parameter. Arrays have one entry per checked parameter entry (k,).

    An entry *agrees* when its relative error is below ``tolerance``, or when ``|a - n|`` is
    within ``rounding``, the float64 rounding error of its finite difference: a gradient
    entry much smaller than ``rounding / tolerance`` cannot be resolved to ``tolerance`` by a
    finite difference at all (see :func:`gradcheck`). Entries that crossed a kink are
    reported but not judged.
    """

    name: str                  # e.g. "dense/kernel"
    shape: tuple               # the parameter's shape, e.g. (784, 128)
    indices: np.ndarray        # (k,) flat indices of the checked entries, ascending
    analytic: np.ndarray       # (k,) backprop's gradient
    numeric: np.ndarray        # (k,) centred finite difference
    relative_error: np.ndarray  # (k,)
    rounding: np.ndarray       # (k,) estimated rounding error of ``numeric``
    crosses_kink: np.ndarray   # (k,) bool: ±eps moved a ReLU pre-activation across 0
    tolerance: float = 1e-7

    @property
    def n_total(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def n_checked(self):
        return int(self.indices.size)

    @property
    def n_kinks(self):
        return int(np.count_nonzero(self.crosses_kink))

    @property
    def n_zero(self):
        """Entries whose gradient is exactly 0 both ways (dead ReLUs, always-zero pixels)."""
        return int(np.count_nonzero((self.analytic == 0) & (self.numeric == 0)))

    @property
    def at_rounding_level(self):
        """(k,) bool: above the tolerance, but only by float64 rounding (a tiny gradient)."""
        within_rounding = np.abs(self.analytic - self.numeric) <= self.rounding
        return ~self.crosses_kink & (self.relative_error >= self.tolerance) & within_rounding

    @property
    def n_rounding(self):
        return int(np.count_nonzero(self.at_rounding_level))

    @property
    def failing(self):
        """(k,) bool: entries that disagree beyond both the tolerance and rounding."""
        return (~self.crosses_kink & ~(self.relative_error < self.tolerance)
                & ~self.at_rounding_level)

    @property
    def passed(self):
        return self.n_checked > self.n_kinks and not self.failing.any()

    @property
    def max_relative_error(self):
        """The largest relative error among entries that did not cross a kink (0.0 if none)."""
        errors = self.relative_error[~self.crosses_kink]
        return float(errors.max()) if errors.size else 0.0

    @property
    def mean_relative_error(self):
        errors = self.relative_error[~self.crosses_kink]
        return float(errors.mean()) if errors.size else 0.0

    @property
    def max_relative_error_at_kinks(self):
        errors = self.relative_error[self.crosses_kink]
        return float(errors.max()) if errors.size else 0.0

    @property
    def verdict(self):
        """The word for the largest relative error among the entries a finite difference can
        resolve (no kink, not at rounding level)."""
        judged = ~self.crosses_kink & ~self.at_rounding_level
        if not judged.any():
            return "only kinks" if self.n_kinks == self.n_checked else "rounding only"
        return verdict(float(self.relative_error[judged].max()))


@dataclasses.dataclass
class GradcheckReport:
    """What :func:`gradcheck` found; ``print(report)`` shows it as a table."""

    parameters: list           # of ParameterCheck, in the order of model.weights
    loss: float                # the float64 loss at the model's weights
    eps: float
    n_samples: int
    training: bool
    tolerance: float

    @property
    def max_relative_error(self):
        """The largest relative error over every checked entry of every parameter, leaving
        out only the entries that crossed a ReLU kink (see ``n_kinks``)."""
        return max((p.max_relative_error for p in self.parameters), default=0.0)

    @property
    def n_checked(self):
        return sum(p.n_checked for p in self.parameters)

    @property
    def n_kinks(self):
        return sum(p.n_kinks for p in self.parameters)

    @property
    def n_rounding(self):
        return sum(p.n_rounding for p in self.parameters)

    @property
    def passed(self):
        """True when every checked entry away from kinks agrees: relative error below
        ``tolerance``, or a difference within the finite difference's rounding error."""
        return bool(self.parameters) and all(p.passed for p in self.parameters)

    @property
    def verdict(self):
        words = [p.verdict for p in self.parameters]
        for _, word, _ in THRESHOLDS:
            if word in words:
                return word
        return words[0] if words else "nothing checked"

    def summary(self):
        mode = "training mode" if self.training else "inference mode"
        header = ("parameter", "shape", "checked", "kinks", "rounding", "max rel err", "mean rel err",
                  "verdict")
        rows = [(p.name, str(p.shape), f"{p.n_checked:,} of {p.n_total:,}", str(p.n_kinks),
                 str(p.n_rounding), f"{p.max_relative_error:.2e}", f"{p.mean_relative_error:.2e}",
                 p.verdict) for p in self.parameters]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        right = {2, 3, 4, 5, 6}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        text = [f"Gradient check: {self.n_samples} samples, float64, eps {self.eps:g}, {mode}; "
                f"loss {self.loss:.6f}",
                line(header), line(["-" * w for w in widths])]
        text += [line(r) for r in rows]
        judged = self.n_checked - self.n_kinks
        rounding = f", {self.n_rounding} of them at rounding level (below)" if self.n_rounding else ""
        text.append(f"{'PASSED' if self.passed else 'FAILED'}: {self.verdict}; max relative error "
                    f"{self.max_relative_error:.2e} over {judged:,} entries{rounding}; tolerance {self.tolerance:g}.")
        n_failing = sum(int(p.failing.sum()) for p in self.parameters)
        if n_failing:
            worst = max(self.parameters, key=lambda p: p.max_relative_error)
            k = int(np.argmax(np.where(worst.crosses_kink, -1, worst.relative_error)))
            where = tuple(int(i) for i in np.unravel_index(worst.indices[k], worst.shape))
            text.append(f"{n_failing} entries disagree. Worst: {worst.name}{list(where)}: backprop "
                        f"{worst.analytic[k]:.6e}, "
                        f"finite difference {worst.numeric[k]:.6e}.")
        if self.n_rounding:
            diffs = [np.abs(p.analytic - p.numeric)[p.at_rounding_level] for p in self.parameters]
            largest = max(float(d.max()) for d in diffs if d.size)
            text.append(f"rounding: {self.n_rounding} entries exceed the tolerance only because their "
                        f"gradient is tiny: |a - n| <= {largest:.1e}, within the float64 rounding error "
                        f"of a finite difference with eps {self.eps:g} (about 2.2e-16·|L|/eps).")
        if self.n_kinks:
            worst = max(p.max_relative_error_at_kinks for p in self.parameters)
            text.append(f"Warning: {self.n_kinks} entries crossed a ReLU kink (a pre-activation changed "
                        f"sign under ±eps); their finite differences are unreliable and were not judged "
                        f"(largest error there: {worst:.2e}).")
        text.append("Relative error |a - n| / max(|a| + |n|, tiny): > 1e-2 WRONG; 1e-4..1e-2 "
                    "suspicious; 1e-7..1e-4 doubtful; < 1e-7 excellent (float64).")
        for lower, word, meaning in THRESHOLDS[:-1]:
            if any(p.verdict == word for p in self.parameters):
                text.append(f"  {word}: {meaning}.")
        return "\n".join(text)

    __str__ = summary


def gradcheck(model, x, y, eps=1e-5, *, loss=None, max_entries=200, seed=0, training=True,
              tolerance=1e-7):
    """Compare backprop with centred finite differences for every parameter of ``model``.

    Args:
        model: a built ``npnet.Sequential``; it is not modified.
        x: a few input samples, e.g. (n, 28, 28); y: their labels, as ``fit`` takes them.
        eps: the finite-difference step ε.
        loss: the loss to differentiate; defaults to the compiled model's loss.
        max_entries: per parameter, check every entry when it has at most this many, else a
            random sample of this many (the count is reported); None checks every entry.
        seed: seeds the choice of sampled entries (npnet's generator is not used).
        training: run layers in training mode (dropout active, with fixed masks).
        tolerance: the relative error an entry must stay below.

    Returns:
        a :class:`GradcheckReport`; ``report.passed`` is True when every entry away from
        kinks agrees.

    Rounding: each loss value carries a float64 rounding error of about ``2.2e-16·|L|``, so
    the finite difference carries about ``2.2e-16·(|L+| + |L-|) / 2ε`` (≈ 5e-11 for a loss of
    2.3 and ε = 1e-5). A gradient entry of 1e-6 can then show a relative error of 1e-5 however
    correct backprop is. Such entries — relative error above the tolerance, but ``|a - n|``
    within that rounding error — are counted in the ``rounding`` column instead of failing.
    A wrong backward is off by far more than rounding and still fails.
    """
    layers, loss, x, y = _float64_copy(model, x, y, loss)
    if not any(layer.params and layer.trainable for layer in layers):
        raise ValueError("gradcheck: the model has no parameters to check (none in a trainable layer)")
    eps = _check_settings(eps, max_entries)
    sampler = np.random.default_rng(seed)

    with _replayed_randomness(layers) as rewind:
        def evaluate():
            """The loss at the current weights, and which ReLU pre-activations are positive."""
            rewind()
            output, caches = training_module.forward(layers, x, training=training)
            value = float(training_module.loss_value(layers, loss, output, caches, y))
            return value, _relu_signs(layers, caches)

        rewind()
        loss_value, _, grads = training_module.loss_and_gradients(layers, loss, x, y, training=training)
        base_value, base_signs = evaluate()
        if base_value != float(loss_value):
            raise RuntimeError("gradcheck: two evaluations of the same loss differ; some layer is not "
                               "deterministic given npnet's random generator")
        trainable = [layer for layer in layers if layer.trainable]
        names = [f"{layer.name}/{name}" for layer in trainable for name in layer.params]
        params = [p for layer in trainable for p in layer.params.values()]
        checks = [_check_parameter(name, param, grad, _choose_entries(param.size, max_entries, sampler),
                                   evaluate, base_signs, eps, float(tolerance))
                  for name, param, grad in zip(names, params, grads)]
    return GradcheckReport(checks, float(loss_value), eps, int(x.shape[0]), bool(training), float(tolerance))


def _check_settings(eps, max_entries):
    """``eps`` as a float, after checking both settings."""
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive number; received {eps!r}")
    if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, (int, np.integer))
                                    or max_entries <= 0):
        raise ValueError(f"max_entries must be a positive integer or None; received {max_entries!r}")
    return eps


def _check_parameter(name, param, grad, indices, evaluate, base_signs, eps, tolerance):
    """Centred differences of the loss for the ``indices`` entries of ``param``."""
    unit = np.finfo(np.float64).eps
    flat = param.reshape(-1)  # a view: writing to it perturbs the layer's weight
    numeric = np.empty(indices.size)
    rounding = np.empty(indices.size)
    kinks = np.zeros(indices.size, dtype=bool)
    for k, index in enumerate(indices):
        original = flat[index]
        flat[index] = original + eps
        upper = flat[index]
        loss_plus, signs_plus = evaluate()
        flat[index] = original - eps
        lower = flat[index]
        loss_minus, signs_minus = evaluate()
        flat[index] = original
        # Divide by the step actually taken: w ± eps is rounded to a float64.
        numeric[k] = (loss_plus - loss_minus) / (upper - lower)
        rounding[k] = unit * (abs(loss_plus) + abs(loss_minus)) / (upper - lower)
        kinks[k] = _crossed(base_signs, signs_plus) or _crossed(base_signs, signs_minus)
    analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[indices]
    return ParameterCheck(name, tuple(param.shape), indices, analytic, numeric,
                          relative_error(analytic, numeric), rounding, kinks, tolerance)


# ----------------------------------------------------------------------------- helpers


def _float64_copy(model, x, y, loss):
    """Validate the inputs; return float64 copies of the layers, the loss and the data."""
    from .models import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"gradcheck expects an npnet.Sequential model; received {type(model).__name__}")
    if not model.built:
        raise ValueError("gradcheck needs the model's weights, which do not exist yet: give the first "
                         "layer input_shape=... or call model.build(input_shape)")
    loss = losses_module.get(loss) if loss is not None else model.loss
    if loss is None:
        raise ValueError("gradcheck needs a loss: compile the model first or pass loss=..., e.g. "
                         "loss='sparse_categorical_crossentropy'")
    x = validation.check_inputs(x, model.input_shape, "x", model.name, dtype=np.float64)
    n_classes = model.output_shapes((None,) + x.shape[1:])[-1][-1]
    y = validation.check_labels(y, x.shape[0], n_classes, loss)
    if y.dtype.kind == "f":
        y = y.astype(np.float64)
    layers = copy.deepcopy(model._layers)
    for layer in layers:
        for name in layer.params:
            layer.params[name] = np.array(layer.params[name], dtype=np.float64, order="C")
    return layers, loss, x, y


class _replayed_randomness:
    """Within the block, ``rewind()`` puts every random generator the layers draw from back
    where it was on entry, so each forward pass draws the same dropout masks; on exit npnet's
    generator is left as it was found."""

    def __init__(self, layers):
        self.global_rng = utils.rng()
        self.generators = [layer._generator for layer in layers
                           if isinstance(getattr(layer, "_generator", None), np.random.Generator)]

    def __enter__(self):
        self.states = [g.bit_generator.state for g in [self.global_rng] + self.generators]
        return self.rewind

    def rewind(self):
        for generator, state in zip([self.global_rng] + self.generators, self.states):
            generator.bit_generator.state = state

    def __exit__(self, *exc_info):
        self.global_rng.bit_generator.state = self.states[0]
        return False


def _is_relu(layer):
    return isinstance(layer, ReLU) or (isinstance(layer, Dense) and layer.activation is activations.relu)


def _relu_signs(layers, caches):
    """For every ReLU in the network, the boolean array ``z > 0`` of its pre-activation."""
    return [cache.z > 0 for layer, cache in zip(layers, caches) if _is_relu(layer)]


def _crossed(base_signs, signs):
    return any(not np.array_equal(a, b) for a, b in zip(base_signs, signs))


def _choose_entries(size, max_entries, sampler):
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(sampler.choice(size, size=max_entries, replace=False))


# ----------------------------------------------------------------------------- command line


def main(argv=None):
    """``npnet gradcheck``: check the tutorial model on a few real Fashion-MNIST images.

    Builds Flatten → Dense(128, relu) → Dense(10, softmax) with fresh weights, checks it in
    float64 and prints the report. Returns 0 when the check passes, 1 when it fails, 2 when
    the data cannot be loaded.
    """
    from .cli import OneLineParser, non_negative_int, positive_int

    parser = OneLineParser(
        prog="npnet gradcheck",
        description="Compare backprop with finite differences on the tutorial model "
                    "(float64, a few real Fashion-MNIST training images).")
    parser.add_argument("--images", type=positive_int, default=8, help="number of images (default 8)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the weights, the images and the "
                                                            "sampled entries (default 0)")
    parser.add_argument("--eps", type=_positive_number, default=1e-5, help="finite-difference step (default 1e-5)")
    parser.add_argument("--entries", type=non_negative_int, default=200,
                        help="entries checked per parameter, sampled when it has more; 0 checks all "
                             "(default 200)")
    args = parser.parse_args(argv)
    from . import datasets

    n_train = next(iter(datasets.fashion_mnist.FILES.values())).shape[0]
    if args.images > n_train:  # checked before the data is loaded
        parser.error(f"argument --images: expected at most {n_train}, received {args.images}")
    from .layers import Flatten
    from .models import Sequential

    try:
        (x_train, y_train), _ = datasets.fashion_mnist.load_data()
    except datasets.DatasetNotFoundError as error:
        print(f"npnet gradcheck: cannot load Fashion-MNIST: {error}", file=sys.stderr)
        return 2
    utils.set_random_seed(args.seed)
    chosen = np.sort(np.random.default_rng(args.seed).choice(x_train.shape[0], args.images, replace=False))
    model = Sequential([Flatten(input_shape=(28, 28)),
                        Dense(128, activation="relu"),
                        Dense(10, activation="softmax")])
    report = gradcheck(model, x_train[chosen] / 255.0, y_train[chosen], eps=args.eps,
                       loss="sparse_categorical_crossentropy",
                       max_entries=args.entries or None, seed=args.seed)
    print(report)
    return 0 if report.passed else 1


def _positive_number(text):
    """argparse type: a finite float > 0, with an error that names what was received."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}")
    return value

