"""The coverage table: every piece npnet offers, and which backend trains it.

``COVERAGE`` lists each piece once with a minimal model that uses it. For every row the
NumPy backend must train it, and the numba backend must either train it too (the automatic
choice then picks numba) or refuse it with a reason that names it (the automatic choice then
picks NumPy). ``test_every_registered_piece_is_in_the_table`` fails as soon as npnet
registers an activation, loss, optimizer, regularizer, layer or metric that is not listed
here, so the table cannot fall behind. README's table is generated from this one
(``python -m tests.test_backend_coverage``) and checked to be current.

Equivalence (numba == NumPy to 1e-6 / 1e-12) is tested piece by piece in
``tests/test_numba_coverage.py``; this file only says who runs what.
"""

import os
import sys

import numpy as np
import pytest

import npnet
from npnet import activations, config, layers, losses, metrics, optimizers, regularizers, utils

N_FEATURES, N_CLASSES = 5, 3


@pytest.fixture(autouse=True)
def _automatic_backend(monkeypatch):
    """backend=None must mean the automatic choice here, whatever the environment says."""
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Doubling(layers.Layer):
    """A user's own layer class."""

    def forward(self, x, training=False):
        return 2 * x, None

    def backward(self, dL_dy, cache, need_input_grad=True):
        return 2 * dL_dy, {}


def _model(hidden=None, output="softmax", extra=None):
    """Dense(6, hidden) -> [extra layers] -> Dense(N_CLASSES, output), built."""
    stack = [layers.Dense(6, activation=hidden or "relu")] + list(extra or []) + \
        [layers.Dense(N_CLASSES, activation=output)]
    return stack


def _frozen():
    stack = _model()
    stack[0].trainable = False
    return stack


def _schedule():
    return optimizers.SGD(learning_rate=optimizers.schedules.ExponentialDecay(0.01, 10, 0.9))


def _custom_activation():
    return _model(hidden=activations.Activation("relu", npnet.functional.relu_forward,
                                                npnet.functional.relu_backward))


# (kind, piece, make layers, compile settings, numba: True or a word its refusal names)
COVERAGE = [("layer", "Flatten", lambda: [layers.Flatten()] + _model(), {}, True),
            ("layer", "Dense", _model, {}, True),
            ("layer", "Dropout", lambda: _model(extra=[layers.Dropout(0.3)]), {}, True),
            ("layer", "Dropout on the input", lambda: [layers.Dropout(0.3, seed=1)] + _model(), {}, True),
            ("layer", "ReLU (after a linear Dense)", lambda: _model(hidden="linear", extra=[layers.ReLU()]), {}, True),
            ("layer", "Softmax (after a linear Dense)",
             lambda: _model(output="linear") + [layers.Softmax()], {}, True),
            ("layer", "a layer class of your own", lambda: _model(extra=[_Doubling()]), {}, "_Doubling"),
            ("layer", "two Dropout layers in a row",
             lambda: _model(extra=[layers.Dropout(0.1), layers.Dropout(0.2)]), {}, "two Dropout"),
            ("layer", "Dropout after the output layer", lambda: _model() + [layers.Dropout(0.5)], {}, "after the last"),
            ("layer", "ReLU/Softmax layer after a non-linear Dense",
             lambda: _model(hidden="tanh", extra=[layers.ReLU()]), {}, "ReLU layer"),
            ("option", "frozen layer (trainable = False)", _frozen, {}, True),
            ("option", "float32 weights", _model, {}, True),
            ("option", "float64 weights (set_floatx('float64'))", _model, {"floatx": "float64"}, True),
            ("option", "learning-rate schedule object", _model, {"optimizer": _schedule}, True),
            ("option", "fit(sample_weight=...)", _model, {"fit": {"sample_weight": np.linspace(0.0, 2.0, 40)}}, True),
            ("option", "fit(class_weight=...)", _model, {"fit": {"class_weight": {0: 1.0, 1: 2.5, 2: 0.5}}}, True),
            ("activation", "custom Activation object", _custom_activation, {}, "custom Activation")]
from npnet.kernels import dense as _kernels  # noqa: E402

NUMBA_ACTIVATIONS = set(_kernels.ACTIVATION_CODES)
NUMBA_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
                "mean_squared_error", "mean_absolute_error", "huber_loss")
#: Keras's other losses of targets shaped like the output (the kernels' ``OtherLoss``)
OTHER_NUMBA_LOSSES = ("mean_absolute_percentage_error", "mean_squared_logarithmic_error", "log_cosh",
                      "kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity")
#: the accuracies the kernels count themselves
NUMBA_METRICS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")
#: the metrics that read each batch's outputs, which the kernels keep for them
OTHER_METRICS = ("binary_accuracy", "mse", "mae", "mean_squared_error", "mean_absolute_error",
                 "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy", "auc", "precision",
                 "recall", "true_positives", "false_positives", "true_negatives", "false_negatives",
                 "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                 "root_mean_squared_error", "mape", "msle", "mean_absolute_percentage_error",
                 "mean_squared_logarithmic_error", "log_cosh_error", "r2_score", "kl_divergence", "poisson",
                 "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity")
#: the losses the kernels do not compute (numba's refusal names each, and the automatic choice
#: is NumPy): none today
NUMPY_ONLY_LOSSES = ()
LOSS_CLASSES = {cls.name: cls for cls in losses._BY_NAME.values() if isinstance(cls, type)}


def _numba_says(name, covered):
    return True if covered else activations.get(name).name if name in activations.names() else name


def _numba_computes(name):
    """Whether the kernels compute the activation ``name`` (an alias such as swish by its own name)."""
    return activations.get(name).name in NUMBA_ACTIVATIONS


COVERAGE += [("activation", f"{name} (hidden)", lambda name=name: _model(hidden=name), {},
              _numba_says(name, _numba_computes(name))) for name in activations.names()]
COVERAGE += [("activation", f"{name} (output)", lambda name=name: _model(output=name),
              {"loss": lambda: losses.SparseCategoricalCrossentropy(from_logits=name != "softmax")},
              _numba_says(name, _numba_computes(name))) for name in activations.names()]
COVERAGE += [("loss", f"{name}{suffix}", _model if not from_logits else (lambda: _model(output="linear")),
              {"loss": lambda cls=cls, f=from_logits: cls(from_logits=f)}, True)
             for name, cls in LOSS_CLASSES.items()
             if name in NUMBA_LOSSES and cls.label_kind in ("sparse", "categorical")
             for suffix, from_logits in (("", False), (" (from_logits=True)", True))]
# binary and regression targets, with 'accuracy' (a threshold, or the outputs' argmax)
COVERAGE += [("loss", f"{name}{suffix}", lambda output=output: _model(output=output),
              {"loss": lambda make=make: make()}, True)
             for name, suffix, output, make in (
                 ("binary_crossentropy", " (sigmoid output)", "sigmoid", losses.BinaryCrossentropy),
                 ("binary_crossentropy", " (from_logits=True)", "linear",
                  lambda: losses.BinaryCrossentropy(from_logits=True)),
                 ("mean_squared_error", "", "linear", losses.MeanSquaredError),
                 ("mean_absolute_error", "", "tanh", losses.MeanAbsoluteError),
                 ("huber_loss", "", "linear", lambda: losses.Huber(delta=0.5)))]
COVERAGE += [("loss", "binary_crossentropy with label_smoothing", lambda: _model(output="sigmoid"),
              {"loss": lambda: losses.BinaryCrossentropy(label_smoothing=0.1)}, True),
             ("loss", "categorical_crossentropy with label_smoothing", _model,
              {"loss": lambda: losses.CategoricalCrossentropy(label_smoothing=0.1)}, True)]
COVERAGE += [("loss", name, lambda: _model(output="sigmoid"), {"loss": lambda name=name: LOSS_CLASSES[name]()},
              True if name in OTHER_NUMBA_LOSSES else name)
             for name in OTHER_NUMBA_LOSSES + NUMPY_ONLY_LOSSES]
COVERAGE += [("optimizer", f"{name}{suffix}", _model, {"optimizer": lambda cls=cls, kw=kw: cls(**kw)}, True)
             for name, cls in optimizers._BY_NAME.items()
             for suffix, kw in {"sgd": [("", {}), (" momentum", {"momentum": 0.9}),
                                        (" nesterov", {"momentum": 0.9, "nesterov": True})],
                                "rmsprop": [("", {}), (" momentum", {"momentum": 0.5}),
                                            (" centered", {"centered": True})]}.get(name, [("", {})])]
COVERAGE += [("regularizer", f"{name} on the kernel", lambda name=name: [layers.Dense(6, kernel_regularizer=name)]
              + _model()[1:], {}, True)
             for name in regularizers._BY_NAME]
COVERAGE += [("regularizer", f"{name} on the bias", lambda name=name: [layers.Dense(6, bias_regularizer=name)]
              + _model()[1:], {}, True)
             for name in regularizers._BY_NAME]
COVERAGE += [("layer", f"{name} (after a linear Dense)", lambda name=name, args=args: _model(
                  hidden="linear", extra=[getattr(layers, name)(*args)]), {}, True)
             for name, args in (("LeakyReLU", ()), ("Activation", ("elu",)))]
COVERAGE += [("layer", "ReLU with negative_slope (after a linear Dense)",
              lambda: _model(hidden="linear", extra=[layers.ReLU(negative_slope=0.1)]), {}, True),
             ("layer", "ReLU with max_value", lambda: _model(hidden="linear", extra=[layers.ReLU(max_value=6.0)]), {},
              True),
             ("layer", "ReLU with threshold", lambda: _model(hidden="linear", extra=[layers.ReLU(threshold=0.5)]), {},
              True),
             ("layer", "LeakyReLU/Activation layer after a non-linear Dense",
              lambda: _model(hidden="tanh", extra=[layers.LeakyReLU()]), {}, "LeakyReLU layer"),
             ("layer", "Activation layer of a custom Activation", lambda: _model(hidden="linear", extra=[
                 layers.Activation(activations.Activation("relu", npnet.functional.relu_forward,
                                                          npnet.functional.relu_backward))]), {},
              "custom Activation"),
             ("layer", "Dense with use_bias=False", lambda: [layers.Dense(6, use_bias=False)] + _model()[1:], {},
              True),
             ("layer", "Normalization (first)", lambda: [layers.Normalization(mean=0.5, variance=2.0)] + _model(), {},
              True),
             ("layer", "Normalization after another layer", lambda: [layers.Flatten(), layers.Normalization(
                 mean=0.5, variance=2.0)] + _model(), {}, "only a first one")]


def _metric_loss(name):
    """The loss a metric's row trains with: sparse labels for the sparse metrics and 'accuracy',
    one-hot targets for the others."""
    sparse = name.startswith("sparse") or name in ("accuracy", "acc")
    return losses.get("sparse_categorical_crossentropy" if sparse else "categorical_crossentropy")


COVERAGE += [("metric", name, _model, {"metrics": [name], "loss": lambda name=name: _metric_loss(name)}, True)
             for name in NUMBA_METRICS + OTHER_METRICS]
COVERAGE += [("metric", f"accuracy of {kind} targets ({output} output)", lambda output=output: _model(output=output),
              {"loss": make}, True)
             for kind, output, make in (("binary", "sigmoid", losses.BinaryCrossentropy),
                                        ("regression", "linear", losses.MeanSquaredError))]


def _compile_settings(settings):
    loss = settings.get("loss", lambda: losses.SparseCategoricalCrossentropy())()
    optimizer = settings.get("optimizer", lambda: optimizers.Adam())()
    return loss, optimizer, settings.get("metrics", ["accuracy"]), settings.get("floatx", "float32")


def _build(make_layers, floatx):
    previous = config.floatx()
    config.set_floatx(floatx)
    try:
        utils.set_random_seed(0)
        model = npnet.Sequential(make_layers())
        model.build((None, N_FEATURES))
    finally:
        config.set_floatx(previous)
    return model


def _data(loss):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, N_FEATURES))
    y = rng.integers(0, N_CLASSES, 40)
    return x, (y if loss.label_kind == "sparse" else np.eye(N_CLASSES)[y])


@pytest.mark.parametrize("row", COVERAGE, ids=[f"{kind}: {piece}" for kind, piece, *_ in COVERAGE])
def test_each_piece_runs_on_numpy_and_numba_runs_it_or_names_it(row):
    kind, piece, make_layers, settings, numba = row
    loss, optimizer, metric_names, floatx = _compile_settings(settings)
    from npnet.backends import numba_backend

    model = _build(make_layers, floatx)
    reason = numba_backend.unsupported_reason(model.layers, loss, optimizer)
    if numba is True:
        assert reason is None, f"{piece}: {reason}"
    else:
        assert reason is not None and numba in reason, f"{piece}: the numba backend's reason was {reason!r}"
    x, y = _data(loss)
    losses_by_backend = {}
    for backend in ("numpy", None) if numba is True else ("numpy",):
        model = _build(make_layers, floatx)
        model.compile(optimizer=_compile_settings(settings)[1], loss=_compile_settings(settings)[0],
                      metrics=metric_names, backend=backend)
        utils.set_random_seed(1)
        losses_by_backend[model.backend_name] = model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                                                          **settings.get("fit", {})).history
    if numba is True:  # the loss and every metric
        assert losses_by_backend["numba"].keys() == losses_by_backend["numpy"].keys()
        for key, values in losses_by_backend["numpy"].items():
            np.testing.assert_allclose(losses_by_backend["numba"][key], values, rtol=1e-5, err_msg=key)
    else:
        model = _build(make_layers, floatx)
        with pytest.raises(NotImplementedError, match="backend='numpy'"):
            model.compile(optimizer=optimizer, loss=loss, metrics=metric_names, backend="numba")
        model.compile(optimizer=_compile_settings(settings)[1], loss=_compile_settings(settings)[0],
                      metrics=metric_names)
        assert model.backend_name == "numpy"  # the automatic choice falls back


def test_every_registered_piece_is_in_the_table():
    """A new activation, loss, optimizer, regularizer, layer or metric must be added to
    COVERAGE (and so to README's table), covered by numba or named as not covered."""
    pieces = {(kind, piece.split(" ")[0]) for kind, piece, *_ in COVERAGE}
    registered = ([("activation", name) for name in activations.names()]
                  + [("loss", name) for name in LOSS_CLASSES]
                  + [("optimizer", name) for name in optimizers._BY_NAME]
                  + [("regularizer", name) for name in regularizers._BY_NAME]
                  + [("layer", name) for name in layers.LAYERS]
                  + [("metric", name) for name in metrics._BY_NAME if name.islower()])
    missing = [entry for entry in registered if entry not in pieces]
    assert not missing, f"add these to COVERAGE in tests/test_backend_coverage.py: {missing}"


def markdown_table():
    """README's coverage table: one row per piece, the backends as columns."""
    lines = ["| piece | NumPy backend | numba backend |", "|---|---|---|"]
    for kind, piece, _, _, numba in COVERAGE:
        lines.append(f"| {kind}: {piece} | yes | {'yes' if numba is True else 'no: NumPy is used'} |")
    return "\n".join(lines)


def test_readme_table_is_current():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as readme:
        text = readme.read()
    assert markdown_table() in text, "regenerate it: python -m tests.test_backend_coverage"


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
