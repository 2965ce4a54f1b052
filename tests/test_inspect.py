"""npnet.inspect.step: one training step, layer by layer, without changing the model.

The update it reports is the one a full-batch ``fit`` step then applies, bit for bit, for
every optimizer and with dropout and a regularizer in the model.
"""

import numpy as np
import pytest

import npnet
from npnet import functional as F, utils
from npnet.inspect import LayerStep, StepReport
from npnet.layers import Dense, Dropout, Flatten, ReLU, Softmax
from npnet.optimizers import SGD, Adam, RMSprop
from npnet.regularizers import L2

N_SAMPLES, N_CLASSES = 12, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((N_SAMPLES, 2, 3)).astype(np.float32), rng.integers(0, N_CLASSES, N_SAMPLES)


def course_model(optimizer):
    """Flatten, a regularized Dense, a ReLU layer, dropout, Dense, Softmax layer."""
    utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)),
                              Dense(5, kernel_regularizer=L2(0.01)), ReLU(), Dropout(0.4),
                              Dense(N_CLASSES), Softmax()])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="numpy")
    return model


def tutorial_like_model(optimizer="adam"):
    utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(5, activation="relu"),
                              Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="numpy")
    return model


def optimizer_state(model):
    if model.optimizer.state is None:
        return None
    return {slot: [a.copy() for a in arrays] for slot, arrays in model.optimizer.state.items()}


OPTIMIZERS = {
    "adam": lambda: Adam(),
    "sgd": lambda: SGD(0.1),
    "sgd-nesterov": lambda: SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop-centered-momentum": lambda: RMSprop(momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_reported_update_is_what_fit_applies_and_the_model_is_unchanged(name):
    model = course_model(OPTIMIZERS[name]())
    x, y = data()
    # one step first, so the optimizer carries state into the inspected step
    model.fit(x, y, batch_size=N_SAMPLES, epochs=1, shuffle=False, verbose=0)
    weights = model.get_weights()
    state = optimizer_state(model)
    iterations = model.optimizer.iterations
    rng_state = utils.rng().bit_generator.state

    report = npnet.inspect.step(model, x, y)

    # nothing moved: weights, optimizer state and step count, npnet's generator
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(after, before)
    for slot, arrays in (state or {}).items():
        for before, after in zip(arrays, model.optimizer.state[slot]):
            np.testing.assert_array_equal(after, before)
    assert model.optimizer.iterations == iterations
    assert utils.rng().bit_generator.state == rng_state

    history = model.fit(x, y, batch_size=N_SAMPLES, epochs=1, shuffle=False, verbose=0)
    after_fit = model.get_weights()
    reported_new = [w for layer in report.layers for w in layer.new_weights.values()]
    reported_old = [w for layer in report.layers for w in layer.weights.values()]
    updates = [u for layer in report.layers for u in layer.update.values()]
    for old, before in zip(reported_old, weights):
        np.testing.assert_array_equal(old, before)
    for new, fitted in zip(reported_new, after_fit):
        np.testing.assert_array_equal(new, fitted)  # bit for bit
    for old, update, fitted in zip(weights, updates, after_fit):
        np.testing.assert_allclose(old + update, fitted, rtol=0, atol=1e-7)
        assert np.abs(update).max() > 0
    assert report.loss == pytest.approx(history.history["loss"][0], rel=1e-6)
    assert report.n_correct / report.n_samples == pytest.approx(history.history["accuracy"][0])
    assert report.iteration == iterations + 1
    if state is not None:
        slots_after = {slot: [s for layer in report.layers for p in layer.optimizer_state_after.values()
                              for s in [p[slot]]] for slot in state}
        for slot, arrays in slots_after.items():
            for reported, actual in zip(arrays, model.optimizer.state[slot]):
                np.testing.assert_array_equal(reported, actual)


def test_first_step_reports_a_fresh_optimizer_state_and_does_not_build_it():
    model = tutorial_like_model()
    x, y = data()
    report = npnet.inspect.step(model, x, y)
    assert model.optimizer.state is None and model.optimizer.iterations == 0
    dense = report.layers[1]
    assert set(dense.optimizer_state["kernel"]) == {"m", "v"}
    assert not dense.optimizer_state["kernel"]["m"].any()
    # Adam's first step: m = 0.1 g, v = 0.001 g², so |update| = lr·√0.001·|g| / (√0.001·|g| + ε),
    # about the learning rate unless g is tiny
    g = np.abs(dense.gradients["kernel"].astype(np.float64))
    expected = 1e-3 * np.sqrt(1e-3) * g / (np.sqrt(1e-3) * g + 1e-7)
    np.testing.assert_allclose(np.abs(dense.update["kernel"]), expected, rtol=1e-4, atol=1e-9)
    assert report.iteration == 1


def test_layer_records_are_consistent_with_backprop():
    model = tutorial_like_model()
    x, y = data()
    report = npnet.inspect.step(model, x, y)
    assert isinstance(report, StepReport) and all(isinstance(r, LayerStep) for r in report.layers)
    flatten, hidden, output = report.layers
    assert report["dense" if hidden.name == "dense" else hidden.name] is hidden
    assert flatten.input.shape == (N_SAMPLES, 2, 3) and flatten.output.shape == (N_SAMPLES, 6)
    assert flatten.pre_activation is None and flatten.grad_output is None and flatten.weights == {}
    kernel, bias = model.layers[1].get_weights()

    np.testing.assert_array_equal(hidden.input, flatten.output)
    np.testing.assert_allclose(hidden.pre_activation, hidden.input @ kernel + bias, rtol=1e-6)
    np.testing.assert_array_equal(hidden.output, np.maximum(hidden.pre_activation, 0))
    np.testing.assert_array_equal(hidden.grad_pre_activation, hidden.grad_output * (hidden.pre_activation > 0))
    np.testing.assert_allclose(hidden.gradients["kernel"], hidden.input.T @ hidden.grad_pre_activation, rtol=1e-6)
    np.testing.assert_allclose(hidden.gradients["bias"], hidden.grad_pre_activation.sum(axis=0), rtol=1e-6)

    # the softmax is folded into the loss: the gradient is w.r.t. the logits, (p - onehot) / n
    assert report.logits_shortcut and output.grad_output is None
    np.testing.assert_allclose(output.grad_pre_activation,
                               (output.output - np.eye(N_CLASSES)[y]) / N_SAMPLES, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(hidden.grad_output, output.grad_pre_activation @ model.layers[2].kernel.T,
                               rtol=1e-5, atol=1e-8)
    expected_ratio = np.linalg.norm(hidden.update["kernel"]) / np.linalg.norm(hidden.weights["kernel"])
    assert hidden.update_ratio["kernel"] == pytest.approx(expected_ratio)
    assert hidden.update_ratio["bias"] == float("inf")  # the bias starts at zero


def test_penalty_is_part_of_the_reported_loss():
    model = course_model(SGD(0.1))
    x, y = data()
    report = npnet.inspect.step(model, x, y)
    kernel = model.layers[1].kernel
    assert report.penalty == pytest.approx(0.01 * float(np.sum(kernel.astype(np.float64) ** 2)), rel=1e-6)
    dense = report.layers[1]
    # the kernel's gradient includes 2 · l2 · kernel
    data_gradient = dense.input.T @ dense.grad_pre_activation
    np.testing.assert_allclose(dense.gradients["kernel"], data_gradient + 2 * 0.01 * kernel, rtol=1e-5, atol=1e-7)


def test_summary_lists_every_layer_and_the_rule_of_thumb():
    model = course_model(RMSprop())
    x, y = data()
    text = str(npnet.inspect.step(model, x, y))
    assert text == npnet.inspect.step(model, x, y).summary()
    for layer in model.layers:
        assert layer.name in text
    for expected in ("loss", "penalties", "RMSprop", "kernel", "bias", "update/‖w‖", "1e-3",
                     "(logits)", "of outputs are 0"):
        assert expected in text


def test_errors_when_not_compiled_or_not_built():
    x, y = data()
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(N_CLASSES, activation="softmax")])
    with pytest.raises(RuntimeError, match="needs a compiled model"):
        npnet.inspect.step(model, x, y)
    unbuilt = npnet.Sequential([Flatten(), Dense(N_CLASSES, activation="softmax")])
    unbuilt.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    with pytest.raises(ValueError, match="weights, which do not exist yet"):
        npnet.inspect.step(unbuilt, x, y)
    assert not unbuilt.built
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    with pytest.raises(ValueError, match="expected shape"):
        npnet.inspect.step(model, x.reshape(N_SAMPLES, 6), y)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf, on purpose
def test_a_non_finite_step_is_reported_as_not_applied():
    model = tutorial_like_model(SGD(0.1))
    x, y = data()
    model.layers[1].params["kernel"][0, 0] = np.inf
    report = npnet.inspect.step(model, x, y)
    assert not report.applied
    assert all(not u.any() for layer in report.layers for u in layer.update.values())
    assert "not finite" in str(report)


def test_dropout_mask_in_the_report_is_the_one_fit_draws():
    model = course_model(SGD(0.1))
    x, y = data()
    report = npnet.inspect.step(model, x, y)
    dropout = report.layers[3]
    kept = dropout.output != 0
    np.testing.assert_allclose(dropout.output[kept], dropout.input[kept] / 0.6, rtol=1e-6)
    # the next draw from npnet's generator is the one this step used
    keep = utils.rng().random(dropout.input.shape) >= 0.4
    np.testing.assert_array_equal(dropout.output, F.dropout_forward(dropout.input, keep, 0.4))


def test_the_printout_marks_weights_no_step_changes():
    """A frozen layer and Normalization's statistics have no gradient: the table says
    'not trained' for them (it used to raise KeyError)."""
    norm = npnet.layers.Normalization()
    norm.adapt(np.random.default_rng(0).normal(size=(16, 6)))
    model = npnet.Sequential([npnet.Input((6,)), norm, Dense(5, activation="relu", trainable=False, name="frozen"),
                              Dense(3, activation="softmax", name="out")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    report = npnet.inspect.step(model, np.ones((4, 6)), np.array([0, 1, 2, 0]))
    lines = str(report).splitlines()
    assert sum("not trained" in line for line in lines) == 5  # mean, variance, count, kernel, bias
    assert report["frozen"].gradients == {} and set(report["out"].gradients) == {"kernel", "bias"}
