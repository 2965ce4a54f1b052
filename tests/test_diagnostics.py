"""npnet.callbacks.Diagnostics: what happens inside the network while it trains.

It must record the right steps, change nothing about training, record the same on both
backends, agree with tf.keras's gradients and activations (mirror), and show the two sick
networks of a course: a learning rate of 10 (exploding updates, then dead ReLUs) and a
sigmoid stack (gradients shrinking towards the input).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import npnet  # noqa: E402
from npnet import callbacks as callbacks_module  # noqa: E402
from npnet.diagnostics import METRICS, Diagnostics  # noqa: E402

from core_helpers import tiny_data, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def fashion_subset():
    (x, y), _ = npnet.datasets.fashion_mnist.load_data()
    return (x[:3200] / 255.0).astype(np.float32), y[:3200]


def tutorial_model(learning_rate=1e-3, backend=None, seed=0):
    npnet.utils.set_random_seed(seed)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(28, 28)),
                              npnet.layers.Dense(128, activation="relu"),
                              npnet.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=npnet.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], backend=backend)
    return model


def test_exported_as_a_callback_without_a_batch_hook():
    assert callbacks_module.Diagnostics is Diagnostics
    # no batch hook: steps_per_execution='auto' keeps its long compiled calls
    assert not callbacks_module.wants_every_batch(Diagnostics(every=10))
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="positive number of steps"):
            Diagnostics(every=bad)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("steps_per_execution", ["auto", 3])
def test_records_every_n_steps_and_leaves_training_unchanged(backend, steps_per_execution):
    x, y = tiny_data(70)  # 5 batches of 16 per epoch (the last has 6)
    runs = []
    for with_diagnostics in (False, True):
        npnet.utils.set_random_seed(1)
        model = tiny_model(backend=backend)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      backend=backend, steps_per_execution=steps_per_execution)
        diagnostics = Diagnostics(every=4)
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                            callbacks=[diagnostics] if with_diagnostics else None)
        runs.append((model, history))
    (plain, plain_history), (watched, watched_history) = runs
    assert watched_history.history == plain_history.history
    for ours, theirs in zip(watched.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert diagnostics.steps == [1, 5, 9, 13]  # 15 steps in all
    assert sorted(diagnostics.layers) == sorted(layer.name for layer in watched.layers[1:])
    for series in diagnostics.layers.values():
        assert sorted(series) == sorted(METRICS) and all(len(v) == 4 for v in series.values())
    assert "train_steps" not in vars(watched.backend)  # the trainer is itself again


def test_both_backends_record_the_same(fashion_subset):
    x, y = fashion_subset
    records = []
    for backend in ("numpy", "numba"):
        model = tutorial_model(backend=backend)
        assert model.backend_name == backend
        diagnostics = Diagnostics(every=25)
        model.fit(x, y, epochs=1, verbose=0, callbacks=[diagnostics])
        records.append(diagnostics)
    numpy_run, numba_run = records
    assert numpy_run.steps == numba_run.steps == list(range(1, 101, 25))
    for (_, ours), (_, theirs) in zip(numpy_run.layers.items(), numba_run.layers.items()):
        for name in METRICS:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=2e-4, atol=1e-6, err_msg=name)


def test_a_fit_that_failed_leaves_no_wrapper_behind():
    model = tiny_model()
    x, y = tiny_data(32)
    diagnostics = Diagnostics(every=1)

    class Boom(npnet.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=8, verbose=0, callbacks=[diagnostics, Boom()])
    assert len(diagnostics.steps) == 4
    model.fit(x, y, batch_size=8, verbose=0)  # a later fit without it: nothing recorded
    assert len(diagnostics.steps) == 4 and "train_steps" not in vars(model.backend)


def test_learning_rate_10_shows_exploding_updates_then_dead_relus(fashion_subset):
    x, y = fashion_subset
    healthy, sick = Diagnostics(every=10), Diagnostics(every=10)
    tutorial_model(1e-3).fit(x, y, epochs=1, verbose=0, callbacks=[healthy])
    tutorial_model(10.0).fit(x, y, epochs=1, verbose=0, callbacks=[sick])
    hidden_healthy, hidden_sick = (d.layers[next(iter(d.layers))] for d in (healthy, sick))
    # Adam's first step moves every weight by about the learning rate: 10 rewrites the layer.
    assert max(hidden_healthy["update_ratio"]) < 0.05
    assert hidden_sick["update_ratio"][0] > 10
    assert max(sick.losses) > 50 * max(healthy.losses)
    # ... and most hidden ReLUs are dead for whole batches afterwards.
    assert np.mean(hidden_sick["dead_fraction"][1:]) > 0.5
    assert max(hidden_healthy["dead_fraction"]) < 0.3


def stack(activation, depth=6, width=64):
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(28, 28))]
                             + [npnet.layers.Dense(width, activation=activation) for _ in range(depth)]
                             + [npnet.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_sigmoid_stack_shows_gradients_shrinking_towards_the_input(fashion_subset):
    x, y = fashion_subset
    ratios = {}
    for activation in ("sigmoid", "relu"):
        diagnostics = Diagnostics(every=20)
        stack(activation).fit(x[:640], y[:640], epochs=1, verbose=0, callbacks=[diagnostics])
        norms = [series["grad_norm"] for series in diagnostics.layers.values()]
        ratios[activation] = np.median(np.array(norms[0]) / np.array(norms[-2]))  # first / last hidden
        if activation == "sigmoid":
            first = list(diagnostics.layers.values())[0]
            assert max(first["update_ratio"]) < 1e-5  # the first layer barely moves
    assert ratios["sigmoid"] < 1e-2
    assert ratios["relu"] > 0.2


@pytest.mark.reference
def test_mirror_gradient_norms_and_activations_equal_tf_keras(fashion_subset):
    import tensorflow as tf

    from reference import keras_model

    x, y = fashion_subset
    model = tutorial_model(backend="numpy")
    theirs = keras_model.tutorial_model()
    theirs.set_weights(model.get_weights())
    batch_x, batch_y = x[:32], y[:32]
    with tf.GradientTape() as tape:
        hidden = theirs.layers[1](theirs.layers[0](batch_x))
        probabilities = theirs.layers[2](hidden)
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(batch_y, probabilities)
    grads = tape.gradient(loss, theirs.trainable_weights)
    keras_norms = [math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in grads[i:i + 2])) for i in (0, 2)]

    diagnostics = Diagnostics(every=1000)
    model.fit(batch_x, batch_y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[diagnostics])
    ours = list(diagnostics.layers.values())
    for series, norm in zip(ours, keras_norms):
        assert series["grad_norm"][0] == pytest.approx(norm, rel=1e-5)
    hidden = hidden.numpy()
    assert ours[0]["dead_fraction"][0] == pytest.approx(np.mean(np.all(hidden <= 0, axis=0)))
    assert ours[0]["activation_mean"][0] == pytest.approx(float(np.mean(hidden)), rel=1e-5)
    assert ours[0]["activation_std"][0] == pytest.approx(float(np.std(hidden)), rel=1e-5)
    assert ours[1]["activation_mean"][0] == pytest.approx(float(np.mean(probabilities)), rel=1e-5)
