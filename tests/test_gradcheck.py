"""npnet.gradcheck: backprop against centred finite differences, on small random models.

Every layer, activation, loss and regularizer of the course passes below 1e-7 in float64;
planted bugs in a backward are caught and named; kinks are detected; the model, its
optimizer and npnet's random generator are left untouched.
"""

import re

import numpy as np
import pytest

import npnet
from npnet import activations, config, functional as F, losses, utils
from npnet.gradcheck import GradcheckReport, relative_error, verdict
from npnet.layers import Dense, Dropout, Flatten, ReLU, Softmax
from npnet.regularizers import L2

N_SAMPLES, N_FEATURES, N_CLASSES = 6, 5, 3


def data(seed=0, categorical=False, input_shape=(N_FEATURES,)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES,) + input_shape)
    labels = rng.integers(0, N_CLASSES, N_SAMPLES)
    y = np.eye(N_CLASSES)[labels] if categorical else labels
    return x, y


def built(layer_list, input_shape=(N_FEATURES,)):
    utils.set_random_seed(1)
    model = npnet.Sequential(layer_list)
    model.build((None,) + input_shape)
    return model


# name -> (layers factory, loss, categorical labels, input shape)
CASES = {
    "dense-linear/sparse-ce-from-logits": (
        lambda: [Dense(N_CLASSES)], losses.SparseCategoricalCrossentropy(from_logits=True), False, (N_FEATURES,)),
    "dense-sigmoid": (
        lambda: [Dense(4, activation="sigmoid"), Dense(N_CLASSES, activation="softmax")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "dense-tanh": (
        lambda: [Dense(4, activation="tanh"), Dense(N_CLASSES, activation="softmax")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "dense-relu": (
        lambda: [Dense(4, activation="relu"), Dense(N_CLASSES, activation="softmax")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "flatten-relu-layer-softmax-layer": (
        lambda: [Flatten(), Dense(4), ReLU(), Dense(N_CLASSES), Softmax()],
        "sparse_categorical_crossentropy", False, (2, 3)),
    "hidden-softmax-layer": (
        lambda: [Dense(4), Softmax(), Dense(N_CLASSES, activation="softmax")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "sparse-ce-on-probabilities": (  # no softmax output: the general -log p path
        lambda: [Dense(4, activation="tanh"), Dense(N_CLASSES, activation="sigmoid")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "categorical-ce-softmax": (
        lambda: [Dense(4, activation="tanh"), Dense(N_CLASSES, activation="softmax")],
        "categorical_crossentropy", True, (N_FEATURES,)),
    "categorical-ce-on-probabilities": (
        lambda: [Dense(4, activation="tanh"), Dense(N_CLASSES, activation="sigmoid")],
        "categorical_crossentropy", True, (N_FEATURES,)),
    "categorical-ce-from-logits": (
        lambda: [Dense(4, activation="sigmoid"), Dense(N_CLASSES)],
        losses.CategoricalCrossentropy(from_logits=True), True, (N_FEATURES,)),
    "dropout-training-mode": (
        lambda: [Dense(8, activation="tanh"), Dropout(0.5), Dense(N_CLASSES, activation="softmax")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
    "l2-regularizer": (
        lambda: [Dense(4, activation="tanh", kernel_regularizer=L2(0.1)),
                 Dense(N_CLASSES, activation="softmax", kernel_regularizer="l2")],
        "sparse_categorical_crossentropy", False, (N_FEATURES,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_course_piece_passes_below_1e_7_in_float64(case):
    make_layers, loss, categorical, input_shape = CASES[case]
    model = built(make_layers(), input_shape)
    x, y = data(categorical=categorical, input_shape=input_shape)
    report = npnet.gradcheck(model, x, y, loss=loss, max_entries=None)
    assert isinstance(report, GradcheckReport)
    assert report.passed, str(report)
    assert report.max_relative_error < 1e-7, str(report)
    assert report.n_rounding == 0, str(report)
    # every entry of every parameter was checked
    assert [p.n_checked for p in report.parameters] == [w.size for w in model.weights]
    assert [p.name for p in report.parameters] == model.weight_names()


def test_dropout_is_checked_with_a_fixed_mask():
    # One sample: the units dropped in the analytic pass must be dropped in every ±eps pass
    # too, so their outgoing weights get exactly zero gradient both ways.
    model = built([Dense(8, activation="tanh"), Dropout(0.5), Dense(N_CLASSES, activation="softmax")])
    x, y = data()
    report = npnet.gradcheck(model, x[:1], y[:1], loss="sparse_categorical_crossentropy", max_entries=None)
    second_kernel = report.parameters[2]
    dropped = (second_kernel.analytic.reshape(8, N_CLASSES) == 0).all(axis=1)
    assert 0 < dropped.sum() < 8
    assert (second_kernel.numeric.reshape(8, N_CLASSES)[dropped] == 0).all()
    assert (second_kernel.numeric.reshape(8, N_CLASSES)[~dropped] != 0).all()
    assert report.passed, str(report)


# ----------------------------------------------------------------------------- planted bugs


def tanh_model():
    return built([Dense(4, activation="tanh"), Dense(N_CLASSES, activation="softmax")])


def test_a_backward_off_by_a_factor_is_wrong(monkeypatch):
    monkeypatch.setattr(activations.tanh, "backward", lambda dL_da, z, a: 1.5 * F.tanh_backward(dL_da, z, a))
    x, y = data()
    report = npnet.gradcheck(tanh_model(), x, y, loss="sparse_categorical_crossentropy")
    assert not report.passed
    assert report.verdict == "WRONG"
    # the tanh layer's kernel and bias are wrong; the layer above the bug is untouched by it
    assert [p.verdict for p in report.parameters] == ["WRONG", "WRONG", "excellent", "excellent"]
    assert report.max_relative_error == pytest.approx(0.5 / 2.5, rel=1e-6)  # |1.5n - n| / 2.5|n|
    text = str(report)
    assert "FAILED" in text and "WRONG" in text and "the gradient is wrong" in text
    assert report.parameters[0].name in text and "disagree" in text


def test_a_slightly_wrong_backward_is_suspicious(monkeypatch):
    monkeypatch.setattr(activations.tanh, "backward", lambda dL_da, z, a: 1.001 * F.tanh_backward(dL_da, z, a))
    x, y = data()
    report = npnet.gradcheck(tanh_model(), x, y, loss="sparse_categorical_crossentropy")
    assert not report.passed
    assert report.verdict == "suspicious"


def test_dropout_backward_without_its_scale_is_caught(monkeypatch):
    monkeypatch.setattr(F, "dropout_backward", lambda dL_dy, keep, rate: dL_dy * keep)
    model = built([Dense(8, activation="tanh"), Dropout(0.5), Dense(N_CLASSES, activation="softmax")])
    x, y = data()
    report = npnet.gradcheck(model, x, y, loss="sparse_categorical_crossentropy")
    assert not report.passed
    assert report.parameters[0].verdict == "WRONG"


def test_l2_gradient_missing_its_factor_2_is_caught(monkeypatch):
    monkeypatch.setattr(L2, "gradient", lambda self, w: self.l2 * w)
    model = built([Dense(4, activation="tanh", kernel_regularizer=L2(0.5)), Dense(N_CLASSES, activation="softmax")])
    x, y = data()
    report = npnet.gradcheck(model, x, y, loss="sparse_categorical_crossentropy")
    assert not report.passed
    kernel, bias = report.parameters[:2]
    assert kernel.verdict in ("WRONG", "suspicious") and bias.verdict == "excellent"


# ----------------------------------------------------------------------------- kinks


@pytest.fixture
def float64():
    """Build in float64 for the test; always restore float32 afterwards."""
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")
    assert config.floatx() == "float32"


def test_entries_that_cross_a_relu_kink_are_flagged_and_not_judged(float64):
    model = built([Dense(2, activation="relu"), Dense(2, activation="softmax")], input_shape=(2,))
    x = np.array([[1.0, 2.0], [0.5, -1.0]])
    kernel, bias = model.layers[0].get_weights()
    kernel[:, 0] = [0.5, -0.25 + 5e-8]  # z[0, 0] = 1e-7: a ±1e-5 step on most weights crosses 0
    model.layers[0].set_weights([kernel, bias])
    report = npnet.gradcheck(model, x, np.array([0, 1]), loss="sparse_categorical_crossentropy",
                             max_entries=None)
    first_kernel, first_bias = report.parameters[0], report.parameters[1]
    assert first_kernel.n_kinks > 0 and first_bias.n_kinks == 1
    # the flagged entries are among those feeding unit 0; across the kink the slope is off
    assert set(np.flatnonzero(first_kernel.crosses_kink)) <= {0, 2}
    assert first_kernel.max_relative_error_at_kinks > 1e-3
    assert report.max_relative_error < 1e-7  # the other entries are judged as usual
    assert report.n_kinks == first_kernel.n_kinks + 1
    assert report.passed
    assert f"{report.n_kinks} entries crossed a ReLU kink" in str(report)


# ----------------------------------------------------------------------------- the model is not touched


def test_model_optimizer_and_random_state_are_unchanged():
    utils.set_random_seed(3)
    model = npnet.Sequential([Flatten(input_shape=(N_FEATURES,)), Dense(6, activation="relu"),
                              Dropout(0.3), Dropout(0.3, seed=7), Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=N_SAMPLES, verbose=0)
    weights = model.get_weights()
    state = {slot: [a.copy() for a in arrays] for slot, arrays in model.optimizer.state.items()}
    iterations = model.optimizer.iterations
    global_state = utils.rng().bit_generator.state
    seeded_state = model.layers[3]._generator.bit_generator.state

    report = npnet.gradcheck(model, x, y, max_entries=10)
    assert report.passed, str(report)

    for before, after in zip(weights, model.get_weights()):
        assert after.dtype == np.float32
        np.testing.assert_array_equal(after, before)
    for slot, arrays in state.items():
        for before, after in zip(arrays, model.optimizer.state[slot]):
            np.testing.assert_array_equal(after, before)
    assert model.optimizer.iterations == iterations
    assert utils.rng().bit_generator.state == global_state
    assert model.layers[3]._generator.bit_generator.state == seeded_state
    assert config.floatx() == "float32"


def test_sampled_entries_and_their_count_are_reported():
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"),
                              Dense(10, activation="softmax")])
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 28, 28)), np.array([1, 2, 3])
    report = npnet.gradcheck(model, x, y, loss="sparse_categorical_crossentropy", max_entries=20, seed=5)
    assert [p.n_checked for p in report.parameters] == [20, 20, 20, 10]
    assert [p.n_total for p in report.parameters] == [100352, 128, 1280, 10]
    kernel = report.parameters[0]
    assert len(set(kernel.indices.tolist())) == 20 and kernel.indices.max() < 100352
    again = npnet.gradcheck(model, x, y, loss="sparse_categorical_crossentropy", max_entries=20, seed=5)
    np.testing.assert_array_equal(again.parameters[0].indices, kernel.indices)
    text = str(report)
    for expected in ("parameter", "shape", "checked", "max rel err", "mean rel err", "verdict",
                     report.parameters[0].name, "(784, 128)", "20 of 100,352", "10 of 10"):
        assert expected in text
    assert report.passed, text


# ----------------------------------------------------------------------------- inputs and helpers


def test_errors_say_what_was_expected():
    x, y = data()
    with pytest.raises(ValueError, match="needs a loss"):
        npnet.gradcheck(built([Dense(3)]), x, y)
    with pytest.raises(ValueError, match="weights, which do not exist yet"):
        npnet.gradcheck(npnet.Sequential([Dense(3)]), x, y, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="eps must be a positive number"):
        npnet.gradcheck(built([Dense(3)]), x, y, eps=0, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="expected shape"):
        npnet.gradcheck(built([Dense(3)]), x[:, :4], y, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\)"):
        npnet.gradcheck(built([Dense(3)]), x, y + 3, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="no parameters"):
        npnet.gradcheck(built([Softmax()], input_shape=(3,)), x[:, :3], y, loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="Sequential"):
        npnet.gradcheck(object(), x, y)


def test_relative_error_and_verdicts_follow_cs231n():
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(1.0, -1.0) == 1.0
    assert relative_error(2.0, 1.0) == pytest.approx(1 / 3)
    assert [verdict(e) for e in (0.5, 1e-3, 1e-5, 1e-9, float("nan"))] == [
        "WRONG", "suspicious", "doubtful", "excellent", "WRONG"]


def test_npnet_gradcheck_is_the_function_and_main_is_importable():
    from npnet.gradcheck import GradcheckReport, main
    assert callable(npnet.gradcheck) and callable(main) and GradcheckReport is not None


def test_main_checks_the_tutorial_model_on_real_images(capsys):
    from npnet.gradcheck import main
    status = main(["--images", "2", "--entries", "10", "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASSED" in out and "10 of 100,352" in out and "2 samples" in out
    assert re.search(r"dense(_\d+)?/kernel +\(784, 128\)", out)
