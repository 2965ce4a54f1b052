"""Optimizer settings that reach the update: a schedule's rate, whatever it returns, and
hyperparameters set after the optimizer was made (Keras lets users assign them) are
checked like the constructor's arguments, so neither can write inf or NaN into a model."""

import warnings

import numpy as np
import pytest

import npnet
from npnet import optimizers, schedules, utils

BACKENDS = ["numba", "numpy"]


class _NaNFrom(schedules.LearningRateSchedule):
    """0.01, then NaN from step ``start`` on (a user's schedule gone wrong)."""

    def __init__(self, start):
        self.start = start

    def __call__(self, step):
        return float("nan") if step >= self.start else 0.01

    def get_config(self):
        return {"start": self.start}


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64)


def _model(optimizer, backend, seed=1):
    utils.set_random_seed(seed)
    model = npnet.Sequential([npnet.Input((8,)), npnet.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", backend=backend)
    return model


def _fit_recording(model, **options):
    x, y = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=16, verbose=0, **options)
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _all_finite(model):
    slots = [a for arrays in (model.optimizer.state or {}).values() for a in arrays]
    return all(np.isfinite(a).all() for a in model.get_weights() + slots)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", [optimizers.SGD, optimizers.RMSprop, optimizers.Adam])
def test_a_schedule_that_turns_nan_stops_training_before_the_step(family, backend):
    model = _model(family(_NaNFrom(3)), backend)
    messages = _fit_recording(model, epochs=2)
    assert _all_finite(model)
    assert model.optimizer.iterations == 3
    assert any("Epoch 1, batch 3" in m and "update would make" in m for m in messages)


class _Huge(schedules.LearningRateSchedule):
    """1e39: a finite float64, inf in the float32 weights' type."""

    def __call__(self, step):
        return 1e39

    def get_config(self):
        return {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_schedule_whose_rate_overflows_the_weights_type_is_not_applied(backend):
    model = _model(optimizers.SGD(_Huge()), backend)
    _fit_recording(model, epochs=1)
    assert _all_finite(model) and model.optimizer.iterations == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_at_a_nan_rate_changes_nothing(backend):
    model = _model(optimizers.SGD(_NaNFrom(3)), backend)
    x, y = _data()
    model.train_on_batch(x, y)
    model.optimizer.iterations = 3
    before = model.get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.train_on_batch(x, y)
    assert model.optimizer.iterations == 3
    for got, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, expected)


BAD_SETTINGS = [
    (optimizers.Adam, "beta_2", -1.0, "beta_2 must be in [0, 1)"),
    (optimizers.Adam, "beta_1", 1.0, "beta_1 must be in [0, 1)"),
    (optimizers.Adam, "epsilon", float("nan"), "epsilon must be finite"),
    (optimizers.Adam, "epsilon", 0.0, "epsilon must be positive"),
    (optimizers.RMSprop, "rho", 2.0, "rho must be in [0, 1)"),
    (optimizers.RMSprop, "epsilon", "small", "epsilon must be a number"),
    (optimizers.SGD, "momentum", -0.5, "momentum must be in [0, 1]"),
    (optimizers.SGD, "nesterov", "yes", "nesterov must be True or False"),
    (optimizers.RMSprop, "centered", None, "centered must be True or False"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family, name, value, message", BAD_SETTINGS)
def test_a_bad_setting_is_refused_when_assigned_and_changes_nothing(family, name, value, message, backend):
    model = _model(family(), backend)
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    previous = getattr(model.optimizer, name)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        setattr(model.optimizer, name, value)
    assert getattr(model.optimizer, name) == previous
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # trains on as before
    assert _all_finite(model) and model.optimizer.iterations == 8


def test_settings_are_checked_in_the_weights_type_once_built():
    """Before build a setting is checked in floatx; after, in the weights' type, as build
    checks it: float32 flushes 1e-40 to 0 and rounds 1 - 1e-9 to 1."""
    optimizer = optimizers.Adam()
    optimizer.epsilon = 1e-40  # not built: accepted here, refused at build, as a constructor argument
    optimizer.epsilon = 1e-7
    model = _model(optimizer, "numpy")
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="smallest normal"):
        optimizer.epsilon = 1e-40
    with pytest.raises(ValueError, match="must be below 1 in float32"):
        optimizer.beta_2 = 1 - 1e-9
    assert (optimizer.epsilon, optimizer.beta_2) == (1e-7, 0.999)


@pytest.mark.parametrize("family, name, value", [(optimizers.SGD, "momentum", 0.9),
                                                 (optimizers.RMSprop, "momentum", 0.5),
                                                 (optimizers.RMSprop, "centered", True)])
def test_a_setting_that_would_change_the_slots_is_refused_once_built(family, name, value):
    optimizer = family()
    setattr(optimizer, name, value)  # before build: the slots follow
    assert getattr(optimizer, name) == value
    setattr(optimizer, name, type(value)(0))
    model = _model(optimizer, "numpy")
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="built with the slots"):
        setattr(optimizer, name, value)
    assert getattr(optimizer, name) == type(value)(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_good_setting_takes_effect_on_the_next_fit(backend):
    """beta_1 changed between fits is what the next steps use: both backends agree with a
    model that had it from the start of the second fit's state."""
    x, y = _data()
    changed = _model(optimizers.Adam(), backend)
    changed.fit(x, y, batch_size=16, epochs=1, verbose=0)
    reference = _model(optimizers.Adam(), "numpy")
    reference.fit(x, y, batch_size=16, epochs=1, verbose=0)
    changed.optimizer.beta_1 = 0.5
    reference.optimizer.beta_1 = 0.5
    changed.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    reference.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for got, expected in zip(changed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    unchanged = _model(optimizers.Adam(), "numpy")
    unchanged.fit(x, y, batch_size=16, epochs=1, verbose=0)
    unchanged.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert not np.allclose(unchanged.get_weights()[0], reference.get_weights()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_optimizer_for_two_models_is_refused_and_changes_nothing(backend):
    """The second model of the same shapes would train from the first's moments and step
    count: refused at its first training call, neither model nor the optimizer changed."""
    x, y = _data()
    shared = optimizers.Adam()
    first, second = _model(shared, backend, seed=1), _model(shared, backend, seed=2)
    first.fit(x, y, batch_size=16, epochs=1, verbose=0)
    slots = [a.copy() for arrays in shared.state.values() for a in arrays]
    weights = second.get_weights()
    with pytest.raises(ValueError, match="built for other parameters of the same shapes"):
        second.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="built for other parameters of the same shapes"):
        second.train_on_batch(x, y)
    assert shared.iterations == 4
    for got, expected in zip([a for arrays in shared.state.values() for a in arrays], slots):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(second.get_weights(), weights):
        np.testing.assert_array_equal(got, expected)
    first.compile(optimizer=shared, loss="sparse_categorical_crossentropy", backend=backend)  # its own: fine
    first.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert shared.iterations == 8


def test_a_copied_optimizer_serves_the_copied_parameters():
    import copy

    model = _model(optimizers.Adam(), "numpy")
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    duplicate = copy.deepcopy(model.optimizer)
    params = [w.copy() for w in model.backend.trainable_weights()]
    assert duplicate.apply_gradients_if_finite(params, [np.zeros_like(p) for p in params])
    assert duplicate.iterations == 5 and model.optimizer.iterations == 4


@pytest.mark.parametrize("value", [2**63, 2**64, -1, 2.0, True])
def test_iterations_takes_an_int64_count(value):
    optimizer = optimizers.Adam()
    optimizer.iterations = 5
    with pytest.raises(ValueError, match="iterations must be an integer from 0 to 9223372036854775807"):
        optimizer.iterations = value
    assert optimizer.iterations == 5


def test_set_weights_under_ctrl_c_sets_all_the_weights_or_none(monkeypatch):
    """A Ctrl-C arriving while set_weights copies is raised once every weight is copied."""
    import signal

    model = _model(optimizers.Adam(), "numpy")
    new = [np.full_like(w, 0.25) for w in model.get_weights()]
    copyto = np.copyto
    calls = []

    def interrupted_copyto(target, source, *args, **kwargs):
        if not calls:
            signal.raise_signal(signal.SIGINT)
        calls.append(1)
        return copyto(target, source, *args, **kwargs)

    monkeypatch.setattr(np, "copyto", interrupted_copyto)
    with pytest.raises(KeyboardInterrupt):
        model.set_weights(new)
    monkeypatch.undo()
    for got, expected in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [optimizers.Adam, optimizers.SGD, lambda rate: optimizers.RMSprop(rate, centered=True)])
def test_a_learning_rate_of_zero_trains_nothing_and_counts_the_steps(backend, make):
    """Keras accepts a rate of 0 (a hand-written schedule may end there): the steps run and are
    counted, the weights do not move. A negative rate is refused, naming what is expected."""
    model = _model(make(0.0), backend)
    x, y = _data()
    model.fit(x[:8], y[:8], batch_size=4, verbose=0)  # builds
    before = [w.copy() for w in model.get_weights()]
    iterations = model.optimizer.iterations
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert model.optimizer.iterations == iterations + 2 * (len(x) // 4)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match="learning_rate must be a number >= 0; received -0.5"):
        model.optimizer.learning_rate = -0.5
    assert model.optimizer.learning_rate == 0.0


def test_the_learning_rate_reads_as_a_float_and_sets_like_keras_variable():
    optimizer = optimizers.SGD(0.1)
    rate = optimizer.learning_rate
    assert isinstance(rate, float) and rate == 0.1 and f"{rate:6.4f}" == "0.1000"
    assert rate.numpy() == np.float32(0.1) and rate.numpy().dtype == np.float32
    rate.assign(np.array(0.25))  # a 0-d array, as np.float32 or a NumPy computation gives
    assert optimizer.learning_rate == 0.25
    optimizer.learning_rate.assign_sub(0.05)
    assert optimizer.learning_rate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="learning_rate must be a number; received learning_rate='fast'"):
        optimizer.learning_rate.assign("fast")
    assert optimizer.learning_rate == pytest.approx(0.2)
    scheduled = optimizers.SGD(schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5))
    with pytest.raises(TypeError, match="learning-rate schedule"):
        scheduled.learning_rate.assign(0.01)
