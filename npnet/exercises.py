"""Checks for the exercises in ``docs/notebooks/exercises.ipynb``: write a piece of
backpropagation yourself, and be told whether it is right and, if not, where.

    result = npnet.exercises.check_dense_backward(my_dense_backward)
    result            # ✓ ... or ✗ <which output, which entry, yours vs expected>
    result.passed     # True / False

Each check calls your function on small random float64 arrays and compares every output
with npnet's own (:mod:`npnet.functional`), entry by entry. The Dense and ReLU checks then
plug your backward into a model through :class:`npnet.layers.FunctionLayer` and run
:func:`npnet.gradcheck` on it, so the verdict also says that your function, used inside a
network, gives the gradients that finite differences measure. A check never raises because
of your code: an exception in it, a wrong shape or a wrong value is reported in the result.
"""

import dataclasses

import numpy as np

from . import config, functional as F, layers, utils
from .gradcheck import gradcheck, relative_error
from .models import Sequential

#: Entries agree when within this relative tolerance of npnet's own (float64 inputs).
RTOL, ATOL = 1e-6, 1e-9


@dataclasses.dataclass
class CheckResult:
    """What a check found: ``passed`` and a message saying what is right or what is wrong."""

    exercise: str
    passed: bool
    message: str

    def __str__(self):
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.exercise}: {self.message}"

    __repr__ = __str__


def _compare(name, yours, expected):
    """None when ``yours`` matches ``expected``, else what is wrong, down to the entry."""
    if yours is None:
        return f"{name} is None; expected an array of shape {expected.shape}"
    yours = np.asarray(yours)
    if yours.shape != expected.shape:
        return f"{name} has shape {yours.shape}; expected {expected.shape}"
    wrong = ~np.isclose(yours, expected, rtol=RTOL, atol=ATOL)
    if not wrong.any():
        return None
    worst = np.unravel_index(np.argmax(np.where(wrong, np.abs(yours - expected), -1)), yours.shape)
    where = list(int(i) for i in worst)
    return (f"{name} is wrong in {int(wrong.sum())} of {wrong.size} entries; e.g. {name}{where} is "
            f"{yours[worst]:.6g}, expected {expected[worst]:.6g}")


def _call(exercise, function, *args):
    """``(outputs, None)``, or ``(None, CheckResult)`` saying what the call raised."""
    try:
        return function(*args), None
    except Exception as error:  # the learner's code: report, never raise
        return None, CheckResult(exercise, False, f"your function raised {type(error).__name__}: {error}")


def _arrays(seed):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- Dense


def check_dense_backward(dense_backward):
    """Check ``dense_backward(dL_dz, x, kernel) -> (dL_dx, dL_dkernel, dL_dbias)``."""
    exercise = "dense_backward"
    rng = _arrays(0)
    dL_dz, x, kernel = rng.normal(size=(5, 3)), rng.normal(size=(5, 4)), rng.normal(size=(4, 3))
    outputs, failure = _call(exercise, dense_backward, dL_dz.copy(), x.copy(), kernel.copy())
    if failure:
        return failure
    if not isinstance(outputs, tuple) or len(outputs) != 3:
        return CheckResult(exercise, False, "return three arrays: (dL_dx, dL_dkernel, dL_dbias)")
    expected = F.dense_backward(dL_dz, x, kernel)
    for name, yours, theirs in zip(("dL_dx", "dL_dkernel", "dL_dbias"), outputs, expected):
        problem = _compare(name, yours, theirs)
        if problem:
            return CheckResult(exercise, False, problem)

    def forward(x, params):
        return F.dense_forward(x, params["kernel"], params["bias"]), x

    def backward(dL_dz, x, params):
        dL_dx, dL_dkernel, dL_dbias = dense_backward(dL_dz, x, params["kernel"])
        return dL_dx, {"kernel": dL_dkernel, "bias": dL_dbias}

    your_layer = layers.FunctionLayer(forward, backward, lambda shape: {
        "kernel": utils.rng().normal(size=(shape[-1], 4)), "bias": np.zeros(4)}, name="your_dense")
    return _gradcheck(exercise, [your_layer, layers.Softmax(name="softmax")])


# ----------------------------------------------------------------------------- ReLU


def check_relu_backward(relu_backward):
    """Check ``relu_backward(dL_da, z, a) -> dL_dz``."""
    exercise = "relu_backward"
    rng = _arrays(1)
    z = rng.normal(size=(6, 5))
    dL_da = rng.normal(size=(6, 5))
    yours, failure = _call(exercise, relu_backward, dL_da.copy(), z.copy(), F.relu_forward(z))
    if failure:
        return failure
    problem = _compare("dL_dz", yours, F.relu_backward(dL_da, z, F.relu_forward(z)))
    if problem:
        return CheckResult(exercise, False, problem)

    def forward(z, params):
        a = F.relu_forward(z)
        return a, (z, a)

    def backward(dL_da, cache, params):
        return relu_backward(dL_da, *cache), {}

    your_relu = layers.FunctionLayer(forward, backward, name="your_relu")
    return _gradcheck(exercise, [layers.Dense(6, name="layer_below"), your_relu,
                                 layers.Dense(4, activation="softmax", name="output")])


def _gradcheck(exercise, stack):
    """The verdict of :func:`npnet.gradcheck` on ``Flatten`` + ``stack`` in float64."""
    previous = config.floatx()
    config.set_floatx("float64")
    # The model's weights come from a generator of its own: npnet's stays where it was.
    saved = utils.rng().bit_generator.state
    try:
        utils.rng().bit_generator.state = np.random.default_rng(5).bit_generator.state
        model = Sequential([layers.Flatten(input_shape=(2, 3))] + stack)
        model.build()
        utils.rng().bit_generator.state = saved
        rng = _arrays(2)
        x, y = rng.normal(size=(8, 2, 3)), rng.integers(0, 4, 8)
        report = gradcheck(model, x, y, loss="sparse_categorical_crossentropy")
    except Exception as error:
        return CheckResult(exercise, False, f"inside a model, your function raised {type(error).__name__}: {error}")
    finally:
        config.set_floatx(previous)
        utils.rng().bit_generator.state = saved
    if report.passed:
        return CheckResult(exercise, True, "matches npnet's own entry for entry, and inside a model "
                           f"gradcheck agrees (max relative error {report.max_relative_error:.1e}).")
    failing = [check.name for check in report.parameters if not check.passed]
    return CheckResult(exercise, False, f"inside a model, gradcheck finds wrong gradients for {failing}:\n"
                       + str(report))


# ----------------------------------------------------------------------------- softmax + cross-entropy


def check_softmax_crossentropy_backward(softmax_crossentropy_backward):
    """Check ``softmax_crossentropy_backward(p, labels) -> dL_dz`` (the batch-mean loss's
    gradient w.r.t. the logits), against npnet's own and against finite differences of
    :func:`npnet.functional.sparse_categorical_crossentropy_from_logits`."""
    exercise = "softmax_crossentropy_backward"
    rng = _arrays(3)
    z, labels = rng.normal(size=(4, 5)), rng.integers(0, 5, 4)
    p = F.softmax_forward(z)
    yours, failure = _call(exercise, softmax_crossentropy_backward, p.copy(), labels.copy())
    if failure:
        return failure
    numeric = np.zeros_like(z)
    eps = 1e-6
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = eps
        numeric[index] = (F.sparse_categorical_crossentropy_from_logits(z + step, labels)
                          - F.sparse_categorical_crossentropy_from_logits(z - step, labels)) / (2 * eps)
    problem = _compare("dL_dz", yours, F.softmax_crossentropy_backward(p, labels))
    if problem:
        hint = " (did you divide by the batch size n?)" if np.allclose(yours, numeric * len(z)) else ""
        return CheckResult(exercise, False, problem + hint)
    error = float(np.max(relative_error(yours, numeric)))
    return CheckResult(exercise, True, "matches npnet's own (p - onehot) / n, and finite differences of "
                       f"the loss (max relative error {error:.1e}).")


# ----------------------------------------------------------------------------- Adam


def check_adam_update(adam_update, steps=3):
    """Check ``adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon)``,
    which updates ``param``, ``m`` and ``v`` in place, over ``steps`` steps against npnet's own
    :func:`npnet.functional.adam_update` (Keras's form)."""
    exercise = "adam_update"
    rng = _arrays(4)
    hyper = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    yours = {"param": rng.normal(size=(3, 4)), "m": np.zeros((3, 4)), "v": np.zeros((3, 4))}
    theirs = {name: array.copy() for name, array in yours.items()}
    for step in range(1, steps + 1):
        grad = rng.normal(size=(3, 4))
        _, failure = _call(exercise, adam_update, yours["param"], grad.copy(), yours["m"], yours["v"],
                           step, *hyper.values())
        if failure:
            return failure
        F.adam_update(theirs["param"], grad, theirs["m"], theirs["v"], step, *hyper.values())
        for name in ("m", "v", "param"):
            problem = _compare(name, yours[name], theirs[name])
            if problem:
                return CheckResult(exercise, False, f"after step {step}: {problem}{_adam_hint(name, step, yours)}")
    return CheckResult(exercise, True, f"param, m and v match npnet's own Adam (Keras's form) after "
                       f"{steps} steps.")


def _adam_hint(name, step, yours):
    """What usually causes a wrong ``name`` in a learner's Adam."""
    if name != "param" and step == 1 and not yours[name].any():
        return " (update the arrays in place: m[...] = ... or m += ...)"
    if name == "param":
        return (" (m and v are right, so look at the step: Keras folds both bias corrections into "
                "alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) and adds epsilon after the square "
                "root of the uncorrected v)")
    return ""
