"""Mirror tests: learning-rate schedules and optimizers that take them, beside Keras's.

Schedule values at many steps against ``keras.optimizers.schedules``; optimizer trajectories
with a schedule as ``learning_rate`` against a Keras optimizer applying the same gradients
to a ``tf.Variable`` (the rate of step t is the schedule at the count before it); and the
checks of hyperparameters in the type the update computes in. TensorFlow is imported at the
top: without it these tests fail rather than skip.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

import npnet
from npnet.optimizers import schedules

pytestmark = pytest.mark.reference

STEPS = [0, 1, 2, 5, 9, 10, 11, 99, 100, 101, 250, 1000, 12345]

SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.96)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 100], values=[1.0, 0.5, 0.1])),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100, alpha=0.2)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(SCHEDULES)]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=IDS)
def test_schedule_values_match_keras(name, kwargs):
    ours, theirs = getattr(schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)
    for step in STEPS:
        np.testing.assert_allclose(ours(step), float(theirs(step)), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} at step {step}")


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=IDS)
def test_schedule_of_an_array_of_steps_matches_keras(name, kwargs):
    """schedule(np.linspace(...)) as the overfit-and-underfit tutorial plots it: an array of
    rates shaped like the steps, float32 as Keras's tensor."""
    ours, theirs = getattr(schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)
    steps = np.linspace(0, 300, 50)
    rates = ours(steps)
    assert isinstance(rates, np.ndarray) and rates.shape == steps.shape and rates.dtype == np.float32
    # Keras's warm-up CosineDecay cannot take an array (a Python branch on the step): step by step
    expected = [float(theirs(s)) for s in steps] if "warmup_target" in kwargs else np.asarray(theirs(steps))
    np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ours(np.array(STEPS).reshape(1, -1))[0], [ours(s) for s in STEPS])


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=IDS)
def test_schedule_config_matches_keras_and_round_trips(name, kwargs):
    ours, theirs = getattr(schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    again = schedules.deserialize(schedules.serialize(ours))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "RMSprop"])
def test_optimizer_with_schedule_follows_keras(optimizer):
    schedule_args = dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5, staircase=True)
    ours = getattr(npnet.optimizers, optimizer)(learning_rate=schedules.ExponentialDecay(**schedule_args))
    theirs = getattr(keras.optimizers, optimizer)(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(**schedule_args))
    start = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    param, variable = start.copy(), tf.Variable(start)
    for step in range(8):
        np.testing.assert_allclose(ours.learning_rate, float(theirs.learning_rate), rtol=1e-6,
                                   err_msg=f"learning_rate before step {step}")
        grad = np.random.default_rng(step + 1).normal(size=(4, 3)).astype(np.float32)
        ours.apply_gradients([param], [grad])
        theirs.apply_gradients([(tf.constant(grad), variable)])
        # Adam: npnet takes 1 - β in float32 after casting β, Keras casts the float64 1 - β, so
        # each Adam step of size ~lr = 0.1 differs by ~7e-7 (bit-equal when npnet casts as Keras)
        atol = 6e-6 if optimizer == "Adam" else 1e-6
        np.testing.assert_allclose(param, variable.numpy(), rtol=1e-5, atol=atol, err_msg=f"after step {step}")
    assert ours.iterations == int(theirs.iterations)


def test_learning_rate_of_a_scheduled_optimizer_cannot_be_set_as_in_keras():
    theirs = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError):
        theirs.learning_rate = 0.01
    ours = npnet.optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="schedule"):
        ours.learning_rate = 0.01
    plain = npnet.optimizers.SGD(0.1)
    plain.learning_rate = 0.05  # what LearningRateScheduler does
    assert plain.learning_rate == 0.05


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_scheduled_model_trains_like_keras_and_saves(backend, tmp_path):
    """A model trained with a schedule on each backend (numba runs one step per call then, at
    the schedule's rate) against tf.keras, and saved with its schedule."""
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(4,)), npnet.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=npnet.optimizers.SGD(schedules.CosineDecay(0.5, 8)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    assert model.backend_name == backend
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    theirs.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.5, 8)),
                   loss="sparse_categorical_crossentropy")
    theirs.set_weights(model.get_weights())
    x = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    y = x[:, :3].argmax(axis=1)
    history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    keras_history = theirs.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-5)
    for ours_weight, theirs_weight in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours_weight, theirs_weight, rtol=1e-5, atol=1e-6)
    assert model.optimizer.iterations == int(theirs.optimizer.iterations) == 10
    model.save(tmp_path / "m.npnet")
    loaded = npnet.load_model(tmp_path / "m.npnet")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate


# ----------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize("kwargs, message", [
    ({"learning_rate": None}, "learning_rate must be a number; received learning_rate=None"),
    ({"learning_rate": "fast"}, "learning_rate must be a number"),
    ({"learning_rate": 1e39}, "learning_rate must be finite in float32"),
    ({"learning_rate": float("nan")}, "learning_rate must be finite"),
    ({"epsilon": float("nan")}, "epsilon must be finite"),
    ({"epsilon": 1e-50}, r"epsilon must be positive; received 1e-50 \(0 in float32\)"),
    ({"beta_1": float("nan")}, "beta_1 must be finite"),
    ({"beta_2": None}, "beta_2 must be a number"),
])
def test_adam_hyperparameters_are_checked_in_the_dtype_they_are_computed_in(kwargs, message):
    with pytest.raises(ValueError, match=message):
        npnet.optimizers.Adam(**kwargs)


def test_float64_model_accepts_what_float32_refuses_and_build_rechecks():
    previous = npnet.config.floatx()
    npnet.config.set_floatx("float64")
    try:
        optimizer = npnet.optimizers.SGD(learning_rate=1e39)
    finally:
        npnet.config.set_floatx(previous)
    assert optimizer.learning_rate == 1e39
    with pytest.raises(ValueError, match="finite in float32"):
        optimizer.apply_gradients([np.zeros(3, np.float32)], [np.zeros(3, np.float32)])
    assert optimizer.state is None and optimizer.iterations == 0
