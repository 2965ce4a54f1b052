"""Mirror tests for Keras 3's other losses: MAPE, MSLE, LogCosh, KLDivergence, Poisson, Hinge,
SquaredHinge, CategoricalHinge and CosineSimilarity, each beside keras.losses.

Values (plain and with sample weights), per-sample functions and gradients w.r.t. ``y_pred``
from ``tf.GradientTape``, in float32 and float64, on data that reaches each loss's edges: zero
targets for MAPE, zero and negative predictions for MSLE and Poisson, probabilities of 0 and 1
for KL, 0/1 hinge labels and hinge kinks, ties for the categorical hinge's maximum, zero vectors
for the cosine. Then the names ``keras.losses.get`` accepts, a few training steps beside Keras,
npnet's finite-difference gradient check, and the backends (both train them; numba by default).
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import keras

import npnet
from npnet import losses

from keras_helpers import keras_loss_value_and_gradient

pytestmark = pytest.mark.reference

N, M = 8, 3
EPS32 = np.float32(1e-7)
TOLERANCES = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}


def assert_close(ours, theirs, what, rtol=1e-6, atol=1e-7):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs Keras's {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} vs Keras's {theirs.dtype}"
    # atol relative to the largest entry: MAPE of a zero target is ~1e9
    scale = max(1.0, float(np.nanmax(np.abs(theirs))) if np.isfinite(theirs).any() else 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale,
                               err_msg=f"{what}\nnpnet:\n{ours}\nkeras:\n{theirs}")


def rng(seed):
    return np.random.default_rng(seed)



def softmax_rows(seed):
    return npnet.functional.softmax_forward(rng(seed).normal(size=(N, M)) * 2)


def edge_data():
    """name -> (y_true, y_pred) in float64; each case is also run in float32."""
    regression_true = rng(1).normal(size=(N, M)) * 2
    regression_true[0, 0] = regression_true[1, :] = 0.0  # MAPE divides by max(|t|, ε)
    regression_pred = rng(2).normal(size=(N, M)) * 2
    regression_pred[2, 1] = regression_true[2, 1]  # zero error: sign 0
    large_errors = regression_pred.copy()
    large_errors[3] = [60.0, -60.0, 0.0]  # cosh would overflow float32

    positive_true = rng(3).uniform(0, 5, size=(N, M))
    positive_true[0, 0] = 0.0
    positive_pred = rng(4).uniform(0, 5, size=(N, M))
    positive_pred[1] = [-1.0, 0.0, float(EPS32)]  # below ε (no gradient), held at ε, at ε (gradient)

    counts = rng(5).integers(0, 5, size=(N, M)).astype(np.float64)
    rates = rng(6).uniform(0.1, 4, size=(N, M))
    rates[0, :2] = [0.0, 1e-3]  # log(0 + ε)
    negative_rates = rates.copy()
    negative_rates[1, 0] = -0.5  # NaN in Keras too

    distributions = softmax_rows(7)
    distributions[0, 1] = 0.0  # clipped up to ε
    probabilities = softmax_rows(8)
    probabilities[0, 0], probabilities[1, 1], probabilities[2, 2] = 0.0, 1.0, 2e-7  # clipped, at 1, inside

    binary = rng(9).integers(0, 2, size=(N, M)).astype(np.float64)
    scores = rng(10).normal(size=(N, M))
    scores[0, 0], binary[0, 0] = 1.0, 1.0  # the hinge's kink: 1 - t p = 0
    signs = 2 * binary - 1
    not_binary = binary.copy()
    not_binary[4, 2] = 0.5  # one target not 0/1: no conversion for the batch

    one_hot = np.eye(M)[rng(11).integers(0, M, size=N)]
    class_scores = rng(12).normal(size=(N, M)) * 2
    class_scores[0] = 0.0  # every entry ties for the maximum
    one_hot[1], class_scores[1] = [1, 0, 0], [2.0, 1.0, 0.5]  # exactly at the margin
    one_hot[2], class_scores[2] = [0, 1, 0], [-1.0, 3.0, 0.5]  # beyond the margin: 0
    class_scores[3, :2] = class_scores[3].max() + 1  # a tie of two

    vectors_true = rng(13).normal(size=(N, M))
    vectors_pred = rng(14).normal(size=(N, M))
    vectors_pred[0] = 0.0  # the scale held at 1/ε
    vectors_true[1] = 0.0  # a zero target: loss 0, no gradient
    vectors_pred[2] = 1e-9  # ‖p‖ < ε: held too
    return {
        "mape": (regression_true, regression_pred),
        "msle": (positive_true, positive_pred),
        "log_cosh": (regression_true, large_errors),
        "kl_divergence": (distributions, probabilities),
        "poisson": (counts, rates),
        "poisson negative rate": (counts, negative_rates),
        "hinge 0/1 targets": (binary, scores),
        "hinge -1/1 targets": (signs, scores),
        "hinge other targets": (not_binary, scores),
        "squared_hinge 0/1 targets": (binary, scores),
        "squared_hinge -1/1 targets": (signs, scores),
        "categorical_hinge": (one_hot, class_scores),
        "cosine_similarity": (vectors_true, vectors_pred),
        "mape (n,) targets": (regression_true[:, 0] + 1, regression_pred[:, :1]),
        "hinge (n,) targets": (binary[:, 0], scores[:, :1]),
    }


EDGE_DATA = edge_data()
#: npnet class -> Keras class, by the case names' first word
CLASSES = {"mape": losses.MeanAbsolutePercentageError, "msle": losses.MeanSquaredLogarithmicError,
           "log_cosh": losses.LogCosh, "kl_divergence": losses.KLDivergence, "poisson": losses.Poisson,
           "hinge": losses.Hinge, "squared_hinge": losses.SquaredHinge,
           "categorical_hinge": losses.CategoricalHinge, "cosine_similarity": losses.CosineSimilarity}
FUNCTIONS = {"mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error"}
CASES = [(case, dtype) for case in EDGE_DATA for dtype in (np.float32, np.float64)]
IDS = [f"{case}-{dtype.__name__}" for case, dtype in CASES]


def pair(case, dtype):
    """(ours, theirs, y_true, y_pred) for a case, Keras's loss computing in ``dtype``."""
    cls = CLASSES[case.split(" ")[0]]
    y_true, y_pred = (a.astype(dtype) for a in EDGE_DATA[case])
    return cls(), getattr(keras.losses, cls.__name__)(dtype=np.dtype(dtype).name), y_true, y_pred


@pytest.mark.parametrize("case, dtype", CASES, ids=IDS)
def test_value_and_gradient_match_keras(case, dtype):
    ours, theirs, y_true, y_pred = pair(case, dtype)
    value, grad = keras_loss_value_and_gradient(theirs, y_true, y_pred)
    prepared = ours.prepare_targets(y_true, y_pred)
    assert_close(ours(y_true, y_pred), value, f"{case} value", **TOLERANCES[dtype])
    assert_close(ours.value(prepared, y_pred), value, f"{case} value()", **TOLERANCES[dtype])
    assert_close(ours.gradient(prepared, y_pred), grad, f"{case} gradient", **TOLERANCES[dtype])


@pytest.mark.parametrize("case, dtype", CASES, ids=IDS)
def test_value_and_gradient_with_sample_weight_match_keras(case, dtype):
    ours, theirs, y_true, y_pred = pair(case, dtype)
    weights = rng(20).uniform(0, 2, size=N).astype(dtype)
    weights[3] = 0.0
    value, grad = keras_loss_value_and_gradient(theirs, y_true, y_pred, sample_weight=weights)
    assert_close(ours(y_true, y_pred, sample_weight=weights), value, f"{case} weighted value", **TOLERANCES[dtype])
    # the documented rule: weight w_i scales row i of the batch-mean gradient
    prepared = ours.prepare_targets(y_true, y_pred)
    assert_close(ours.gradient(prepared, y_pred) * weights[:, None], grad, f"{case} weighted gradient",
                 **TOLERANCES[dtype])


@pytest.mark.parametrize("case, dtype", [c for c in CASES if "(n,)" not in c[0]],
                         ids=[i for i in IDS if "(n,)" not in i])
def test_per_sample_functions_match_keras_functions(case, dtype):
    name = case.split(" ")[0]
    name = FUNCTIONS.get(name, name)
    y_true, y_pred = (a.astype(dtype) for a in EDGE_DATA[case])
    ours, theirs = getattr(losses, name), getattr(keras.losses, name)
    assert_close(ours(y_true, y_pred), theirs(y_true, y_pred).numpy(), f"losses.{name}", **TOLERANCES[dtype])
    assert type(losses.get(ours)) is ours.loss_class


def test_the_edges_are_what_the_cases_say():
    """A few values worked by hand, so that the mirror above is not vacuous."""
    # MAPE of a zero target: |p| / 1e-7, in percent
    assert losses.mean_absolute_percentage_error([[0.0]], np.float32([[0.5]]))[0] == pytest.approx(5e8, rel=1e-6)
    # MSLE: a negative prediction counts as ε and gets no gradient
    grad = losses.MeanSquaredLogarithmicError().gradient(np.float32([[1.0]]), np.float32([[-1.0]]))
    assert grad[0, 0] == 0
    # hinge: 0/1 targets become -1/1 only when all of them are 0 or 1
    assert losses.hinge(np.float32([[1.0, 0.0]]), np.float32([[0.0, 2.0]]))[0] == 2.0  # t = [1, -1]
    assert losses.hinge(np.float32([[1.0, 0.5]]), np.float32([[0.0, 2.0]]))[0] == 0.5  # as given
    # categorical hinge: a three-way tie shares the max's gradient
    grad = losses.CategoricalHinge().gradient(np.float32([[1, 0, 0]]), np.zeros((1, 3), np.float32))
    np.testing.assert_allclose(grad, [[-1, 1 / 3, 1 / 3]], rtol=1e-6)
    # cosine: opposite directions give 1, a zero prediction 0
    assert losses.cosine_similarity(np.float32([[1, 2]]), np.float32([[-2, -4]]))[0] == pytest.approx(1.0)
    assert losses.cosine_similarity(np.float32([[1, 2]]), np.float32([[0, 0]]))[0] == 0.0
    # log-cosh of a zero error: float32 log 2 taken away from an exact log 2, as in Keras
    assert losses.log_cosh(np.zeros((1, 1)), np.zeros((1, 1)))[0] == pytest.approx(-1.9e-9, rel=0.01)


# ----------------------------------------------------------------------------- names and settings

KERAS_NAMES = ["mean_absolute_percentage_error", "mape", "MAPE", "MeanAbsolutePercentageError",
               "mean_squared_logarithmic_error", "msle", "MSLE", "MeanSquaredLogarithmicError",
               "log_cosh", "LogCosh", "kl_divergence", "kld", "KLD", "KLDivergence", "poisson", "Poisson",
               "hinge", "Hinge", "squared_hinge", "SquaredHinge", "categorical_hinge", "CategoricalHinge",
               "cosine_similarity", "CosineSimilarity", "MSE", "MAE", "bce", "BCE"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_loss_strings_resolve_like_keras(name):
    ours, theirs = losses.get(name), keras.losses.get(name)
    y_true = rng(21).uniform(0, 1, size=(N, M)).astype(np.float32)
    y_pred = rng(22).uniform(0.05, 0.95, size=(N, M)).astype(np.float32)
    expected = theirs(y_true, y_pred)
    expected = np.mean(expected) if np.ndim(expected) else expected  # functions give per-sample values
    assert_close(ours(y_true, y_pred), np.float32(expected), f"{name!r}")


@pytest.mark.parametrize("old, new", [("logcosh", "log_cosh"), ("kullback_leibler_divergence", "kl_divergence")])
def test_keras_2_names_are_refused_with_the_keras_3_name(old, new):
    with pytest.raises(ValueError):
        keras.losses.get(old)  # Keras 3 refuses them as well
    with pytest.raises(ValueError, match=f"Keras 2 name.*write '{new}'"):
        losses.get(old)


@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_defaults_and_names_match_keras(cls):
    keras_cls = getattr(keras.losses, cls.__name__)
    ours, theirs = cls().get_config(), keras_cls().get_config()
    defaults = {name: p.default for name, p in inspect.signature(keras_cls).parameters.items()}
    assert ours["name"] == theirs["name"] == defaults["name"] == cls.name
    for key, value in ours.items():
        expected = theirs[key] if key in theirs else defaults[key]  # Keras's config omits axis
        assert expected == value, f"{cls.__name__} {key}: npnet {value!r}, Keras {expected!r}"
    assert cls(name="mine").name == "mine"


@pytest.mark.parametrize("axis", [0, 1, -2, None, "last", True])
def test_cosine_similarity_axis_other_than_last_is_refused(axis):
    with pytest.raises(ValueError, match=rf"expected axis=-1 .*received axis={axis!r}"):
        losses.CosineSimilarity(axis=axis)


@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_only_the_batch_mean_reduction_is_offered(cls):
    with pytest.raises(ValueError, match="received reduction='sum'"):
        cls(reduction="sum")


# ----------------------------------------------------------------------------- models


def twin_models(output_activation, units, loss, seed=0, learning_rate=0.05, backend=None):
    npnet.utils.set_random_seed(seed)
    ours = npnet.Sequential([npnet.layers.Dense(5, activation="tanh", input_shape=(4,)),
                             npnet.layers.Dense(units, activation=output_activation)])
    ours.compile(optimizer=npnet.optimizers.SGD(learning_rate), loss=loss, backend=backend)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                               keras.layers.Dense(units, activation=output_activation)])
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=loss)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def targets(name, x):
    if name in ("hinge", "squared_hinge"):
        return (x[:, :2] > 0).astype(np.float32)  # 0/1 labels, converted by both
    if name in ("categorical_hinge", "kl_divergence"):
        return np.eye(2, dtype=np.float32)[(x[:, 0] > x[:, 1]).astype(int)] * 0.8 + 0.1
    if name in ("poisson", "msle"):
        return np.round(np.abs(x[:, :2]) * 2)
    if name == "mape":
        return np.abs(x[:, :2]) * 2 + 1  # away from zero, where MAPE's slope 100 / |t| is huge
    return x[:, :2] * 2 + 0.5


FIT_CASES = [("mape", None), ("msle", "softplus"), ("log_cosh", None), ("kl_divergence", "softmax"),
             ("poisson", "exponential"), ("hinge", "tanh"), ("squared_hinge", None), ("categorical_hinge", None),
             ("cosine_similarity", None)]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name, output", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_models_train_like_keras(name, output, backend):
    """Nine SGD steps from the same weights: the history and the weights agree, on each backend."""
    # MAPE's slopes are in percent: a step of 0.05 would be chaos
    ours, theirs = twin_models(output, 2, name, seed=1, learning_rate=0.001 if name == "mape" else 0.05,
                               backend=backend)
    assert ours.backend_name == backend
    x = rng(23).normal(size=(24, 4)).astype(np.float32)
    y = targets(name, x).astype(np.float32)
    history = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    keras_history = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert_close(history.history["loss"], keras_history.history["loss"], f"{name} history", rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert_close(a, b, f"{name} weights after 9 steps", rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5,
                               err_msg=f"{name} evaluate")


@pytest.mark.parametrize("name, output", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_gradcheck_passes_in_float64(name, output):
    npnet.utils.set_random_seed(2)
    model = npnet.Sequential([npnet.layers.Dense(4, activation="tanh"), npnet.layers.Dense(2, activation=output)])
    model.build((None, 4))
    x = rng(24).normal(size=(6, 4))
    report = npnet.gradcheck(model, x, targets(name, x), loss=name, max_entries=None)
    assert report.passed, str(report)
    assert report.max_relative_error < 1e-7, str(report)


# ----------------------------------------------------------------------------- backends


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=list(CLASSES))
def test_numba_runs_each_new_loss_and_is_the_automatic_choice(cls, monkeypatch):
    """The numba kernels compute these losses (their equivalence with the NumPy backend:
    tests/test_numba_coverage.py), so ``backend=None`` picks numba, which trains."""
    from npnet.backends import numba_backend

    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    make = lambda: npnet.Sequential([npnet.layers.Dense(2, activation="softmax", input_shape=(4,))])  # noqa: E731
    assert numba_backend.unsupported_reason(make().layers, cls(), npnet.optimizers.Adam()) is None
    model = make()
    model.compile(optimizer="adam", loss=cls.name)
    assert model.backend_name == "numba"
    x = rng(25).normal(size=(16, 4)).astype(np.float32)
    history = model.fit(x, np.eye(2)[(x[:, 0] > 0).astype(int)] * 0.8 + 0.1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
