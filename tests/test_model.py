"""Sequential: compile, fit, evaluate, predict, batching, dtypes, progress output, determinism.

Everything here runs on a tiny model and synthetic data (milliseconds per test) with
``backend='numpy'`` unless the default is what is being tested.
"""

import io
import re
import sys

import numpy as np
import pytest

import npnet
from npnet import callbacks, functional as F, heads, training
from npnet.layers import Dense, Flatten

from core_helpers import assert_weights_equal, tiny_data, tiny_model

# ----------------------------------------------------------------------------- compile


def test_compile_accepts_names_and_objects():
    npnet.utils.set_random_seed(0)
    by_name = tiny_model(compile=False)
    by_name.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    backend="numpy")
    npnet.utils.set_random_seed(0)
    by_object = tiny_model(compile=False)
    adam = npnet.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    loss = npnet.losses.SparseCategoricalCrossentropy(from_logits=False)
    by_object.compile(optimizer=adam, loss=loss, metrics=["accuracy"], backend="numpy")
    assert by_object.optimizer is adam and by_object.loss is loss
    assert isinstance(by_name.optimizer, npnet.optimizers.Adam)
    assert by_name.optimizer.get_config() == adam.get_config()

    x, y = tiny_data()
    npnet.utils.set_random_seed(1)
    h1 = by_name.fit(x, y, epochs=2, verbose=0)
    npnet.utils.set_random_seed(1)
    h2 = by_object.fit(x, y, epochs=2, verbose=0)
    assert h1.history == h2.history
    assert_weights_equal(by_object.get_weights(), by_name.get_weights())


def test_the_optimizer_owns_its_state():
    model = tiny_model()
    x, y = tiny_data(70)
    assert model.optimizer.state is None
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert model.optimizer.iterations == 6  # 2 epochs x 3 steps
    for slot in ("m", "v"):
        assert [a.shape for a in model.optimizer.state[slot]] == [w.shape for w in model.weights]
        assert all(a.dtype == np.float32 for a in model.optimizer.state[slot])
    # The layers hold parameters only: no optimizer state hidden on them.
    assert all(set(vars(layer)) & {"m", "v", "state"} == set() for layer in model.layers)


def test_learning_rate_is_used():
    x, y = tiny_data()
    moves = []
    for lr in (1e-3, 1e-2):
        npnet.utils.set_random_seed(0)
        model = tiny_model(optimizer=npnet.optimizers.Adam(learning_rate=lr))
        before = model.get_weights()
        model.fit(x[:32], y[:32], batch_size=32, verbose=0, shuffle=False)
        # Adam's first step moves every weight with a non-negligible gradient by about lr.
        moves.append(np.max(np.abs(model.get_weights()[2] - before[2])))
    assert moves[0] == pytest.approx(1e-3, rel=1e-2) and moves[1] == pytest.approx(1e-2, rel=1e-2)


def test_softmax_output_takes_the_loss_and_its_gradient_from_the_logits():
    """A confidently wrong softmax unit: loss 100 from the logits (16.1 if clipped), gradient p - onehot."""
    model = npnet.Sequential([Dense(2, activation="softmax", input_shape=(1,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend="numpy")
    model.set_weights([np.array([[100.0, 0.0]]), np.zeros(2)])
    x, y = np.ones((1, 1), dtype=np.float32), np.array([1])
    assert heads.choose(model.layers, model.loss) == heads.SOFTMAX_CROSSENTROPY

    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(100.0, rel=1e-6) and accuracy == 0.0

    output, caches = training.forward(model.layers, x)
    _, output_grads = training.backward(model.layers, model.loss, output, caches, y)
    np.testing.assert_allclose(output_grads[-1], [[1.0, -1.0]], atol=1e-30)

    model.fit(x, y, verbose=0)  # one Adam step of about lr against the gradient's sign
    np.testing.assert_allclose(model.get_weights()[0], [[100.0 - 1e-3, 1e-3]], rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- fit


def test_fit_returns_history_with_one_value_per_epoch():
    model = tiny_model()
    x, y = tiny_data(70)
    history = model.fit(x, y, epochs=3, verbose=0)
    assert isinstance(history, callbacks.History)
    assert history is model.history
    assert history.epoch == [0, 1, 2]
    assert sorted(history.history) == ["accuracy", "loss"]
    assert all(len(v) == 3 for v in history.history.values())
    assert all(isinstance(v, float) for values in history.history.values() for v in values)
    assert all(0 <= a <= 1 for a in history.history["accuracy"])


def test_fit_with_validation_reports_val_metrics():
    model = tiny_model()
    x, y = tiny_data(70)
    x_val, y_val = tiny_data(20, seed=1)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x_val, y_val))
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    # The last epoch's validation values are those of evaluate() on the trained model.
    val_loss, val_accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert history.history["val_loss"][-1] == val_loss
    assert history.history["val_accuracy"][-1] == val_accuracy


def test_validation_split_holds_out_the_last_samples_before_shuffling():
    model = tiny_model()
    x, y = tiny_data(100)
    seen = BatchRecorder(model)
    history = model.fit(x, y, validation_split=0.2, epochs=1, verbose=0)
    trained_rows = np.concatenate([xb for xb, _ in seen.batches]).reshape(-1, 12)
    assert trained_rows.shape[0] == 80
    assert {row.tobytes() for row in trained_rows} == {row.tobytes() for row in x[:80].reshape(80, -1)}
    val_loss, val_accuracy = model.evaluate(x[80:], y[80:], verbose=0)
    assert history.history["val_loss"] == [val_loss] and history.history["val_accuracy"] == [val_accuracy]


class BatchRecorder:
    """Wraps a model's backend so every training batch, and the loss it returned, is recorded."""

    def __init__(self, model):
        self.batches = []  # (x_batch, y_batch) in the order fit sent them
        self.losses = []
        self._train_batch = model.backend.train_batch
        model.backend.train_batch = self._record

    def _record(self, x_batch, y_batch, *rest):
        result = self._train_batch(x_batch, y_batch, *rest)
        self.batches.append((x_batch.copy(), y_batch.copy()))
        self.losses.append(result[0])
        return result


def test_last_partial_batch_uses_every_sample_exactly_once():
    model = tiny_model()
    x, y = tiny_data(70)
    seen = BatchRecorder(model)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=True)

    sizes = [xb.shape[0] for xb, _ in seen.batches]
    assert sizes == [32, 32, 6]
    assert model.optimizer.iterations == 3
    rows = np.concatenate([xb for xb, _ in seen.batches]).reshape(70, -1)
    labels = np.concatenate([yb for _, yb in seen.batches])
    # Every sample exactly once (rows are unique), with its own label, in a shuffled order.
    index_of = {row.tobytes(): i for i, row in enumerate(x.reshape(70, -1))}
    order = np.array([index_of[row.tobytes()] for row in rows])
    assert sorted(order) == list(range(70))
    np.testing.assert_array_equal(labels, y[order])
    assert not np.array_equal(order, np.arange(70))
    # The epoch's loss is the sample-weighted mean of the batch losses, as Keras reports it.
    expected = sum(loss * n for loss, n in zip(seen.losses, sizes)) / 70
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_fit_equals_manual_steps_including_the_partial_batch():
    """fit(shuffle=False) on 70 samples == three hand-driven steps on [0:32], [32:64], [64:70]."""
    x, y = tiny_data(70)
    npnet.utils.set_random_seed(0)
    fitted = tiny_model()
    npnet.utils.set_random_seed(0)
    manual = tiny_model()
    assert_weights_equal(manual.get_weights(), fitted.get_weights(), "initial weights")

    history = fitted.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)

    losses, correct = [], 0
    for start, stop in [(0, 32), (32, 64), (64, 70)]:
        loss, output, grads = training.loss_and_gradients(manual.layers, manual.loss, x[start:stop], y[start:stop])
        manual.optimizer.apply_gradients(manual.weights, grads)
        losses.append(float(loss) * (stop - start))
        correct += F.count_correct(output, y[start:stop])
    assert_weights_equal(fitted.get_weights(), manual.get_weights(), "weights after fit")
    assert history.history["loss"][0] == pytest.approx(sum(losses) / 70, rel=1e-12)
    assert history.history["accuracy"][0] == correct / 70
    # And the partial batch mattered: two steps alone give different weights.
    npnet.utils.set_random_seed(0)
    two_steps = tiny_model()
    two_steps.fit(x[:64], y[:64], batch_size=32, verbose=0, shuffle=False)
    assert not np.array_equal(two_steps.get_weights()[0], fitted.get_weights()[0])


def test_default_batch_size_is_32():
    model = tiny_model()
    x, y = tiny_data(70)
    seen = BatchRecorder(model)
    model.fit(x, y, verbose=0)
    assert [xb.shape[0] for xb, _ in seen.batches] == [32, 32, 6]


def test_batch_size_larger_than_the_data_is_one_step():
    model = tiny_model()
    x, y = tiny_data(10)
    model.fit(x, y, batch_size=32, verbose=0)
    assert model.optimizer.iterations == 1


def test_fit_continues_from_the_current_weights():
    x, y = tiny_data(64)
    npnet.utils.set_random_seed(0)
    once = tiny_model()
    once.fit(x, y, epochs=2, verbose=0, shuffle=False)
    npnet.utils.set_random_seed(0)
    twice = tiny_model()
    twice.fit(x, y, epochs=1, verbose=0, shuffle=False)
    twice.fit(x, y, epochs=1, verbose=0, shuffle=False)
    assert_weights_equal(twice.get_weights(), once.get_weights())


def test_training_lowers_the_loss():
    npnet.utils.set_random_seed(0)
    model = tiny_model(hidden=16, optimizer=npnet.optimizers.Adam(learning_rate=0.01))
    x, y = tiny_data(256)
    history = model.fit(x, y, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


# ----------------------------------------------------------------------------- dtypes


def test_uint8_float32_and_float64_inputs_train_identically():
    images = (tiny_data(70)[0] * 255).astype(np.uint8)
    y = tiny_data(70)[1]
    results = []
    for x in (images, images.astype(np.float32), images.astype(np.float64)):
        npnet.utils.set_random_seed(0)
        model = tiny_model()
        history = model.fit(x, y, epochs=1, verbose=0)
        results.append((history.history, model.get_weights(), model.predict(x[:5])))
    for history, weights, predictions in results[1:]:
        assert history == results[0][0]
        assert_weights_equal(weights, results[0][1])
        np.testing.assert_array_equal(predictions, results[0][2])
    assert results[0][2].dtype == np.float32


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64, np.float32])
def test_labels_of_any_integer_dtype_train_identically(dtype):
    x, y = tiny_data(40)
    npnet.utils.set_random_seed(0)
    reference = tiny_model()
    reference_history = reference.fit(x, y, epochs=1, verbose=0)
    npnet.utils.set_random_seed(0)
    model = tiny_model()
    history = model.fit(x, y.astype(dtype), epochs=1, verbose=0)
    assert history.history == reference_history.history
    assert_weights_equal(model.get_weights(), reference.get_weights())
    assert model.evaluate(x, y.astype(dtype), verbose=0) == reference.evaluate(x, y, verbose=0)


def test_labels_as_a_column_are_accepted():
    x, y = tiny_data(40)
    model = tiny_model()
    assert model.evaluate(x, y[:, None], verbose=0) == model.evaluate(x, y, verbose=0)


# ----------------------------------------------------------------------------- evaluate and predict


def test_evaluate_returns_loss_and_accuracy_of_the_whole_set():
    model = tiny_model()
    x, y = tiny_data(70)
    model.fit(x, y, epochs=2, verbose=0)
    result = model.evaluate(x, y, batch_size=32, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    loss, accuracy = result
    # The same numbers computed on the whole set in one go.
    output, caches = training.forward(model.layers, x.reshape(70, -1).reshape(x.shape))
    z = caches[-1][1]
    assert loss == pytest.approx(float(F.sparse_categorical_crossentropy_from_logits(z.astype(np.float64), y)), rel=1e-6)
    assert accuracy == F.count_correct(output, y) / 70
    # A different batch size changes only float32 rounding in the loss.
    loss_7, accuracy_7 = model.evaluate(x, y, batch_size=7, verbose=0)
    assert loss_7 == pytest.approx(loss, rel=1e-6) and accuracy_7 == accuracy


def test_evaluate_without_metrics_returns_the_loss():
    model = tiny_model(compile=False)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    x, y = tiny_data(20)
    history = model.fit(x, y, verbose=0)
    assert list(history.history) == ["loss"]
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_predict_returns_float32_probabilities():
    model = tiny_model()
    x, _ = tiny_data(70)
    predictions = model.predict(x)
    assert predictions.shape == (70, 3) and predictions.dtype == np.float32
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-6)
    assert (predictions >= 0).all()
    # Batching does not change the result, and neither does the input dtype.
    np.testing.assert_array_equal(model.predict(x, batch_size=7), predictions)
    np.testing.assert_array_equal(model.predict(x.astype(np.float64)), predictions)
    np.testing.assert_array_equal(model(x), predictions)
    single = model.predict(np.expand_dims(x[0], 0))
    assert single.shape == (1, 3)
    np.testing.assert_array_equal(single[0], predictions[0])


def test_predict_works_before_compile():
    model = tiny_model(compile=False)
    x, _ = tiny_data(5)
    assert model.predict(x).shape == (5, 3)


# ----------------------------------------------------------------------------- progress output

KERAS_FINAL_LINE = re.compile(
    r"^(?P<step>\d+)/(?P<target>\d+) ━{20} \d+s \d+(us|ms|s)/step(?P<metrics>( - \w+: \d+\.\d{4})+)$")
KERAS_VERBOSE_2 = re.compile(
    r"^(?P<step>\d+)/(?P<target>\d+) - \d+s - \d+(us|ms|s)/step(?P<metrics>( - \w+: \d+\.\d{4})+)$")


def metric_names(match):
    return re.findall(r" - (\w+): ", match.group("metrics"))


def test_verbose_0_is_silent(capsys):
    model = tiny_model()
    x, y = tiny_data(70)
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_predict_prints_one_keras_line_by_default(capsys):
    model = tiny_model()
    x, _ = tiny_data(70)
    model.predict(x, batch_size=32)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("3/3 - ") and "/step" in out


@pytest.mark.parametrize("verbose", [2, "auto"])
def test_one_line_per_epoch_when_not_a_terminal(capsys, verbose):
    model = tiny_model()
    x, y = tiny_data(70)
    history = model.fit(x, y, epochs=2, verbose=verbose, validation_data=(x, y))
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for epoch, line in enumerate(lines[1::2]):
        match = KERAS_VERBOSE_2.match(line)
        assert match, line
        assert match.group("step") == match.group("target") == "3"
        assert metric_names(match) == ["accuracy", "loss", "val_accuracy", "val_loss"]
        assert f"loss: {history.history['loss'][epoch]:.4f}" in line
        assert f"val_accuracy: {history.history['val_accuracy'][epoch]:.4f}" in line


def test_verbose_1_redraws_the_bar_in_place(capsys):
    model = tiny_model()
    x, y = tiny_data(70)
    history = model.fit(x, y, epochs=2, verbose=1)
    out = capsys.readouterr().out
    epochs = out.split("Epoch ")[1:]
    assert len(epochs) == 2
    for epoch, text in enumerate(epochs):
        header, _, bar_text = text.partition("\n")
        assert header == f"{epoch + 1}/2"
        assert bar_text.startswith("\r") and bar_text.endswith("\n")
        draws = bar_text[:-1].split("\r")[1:]
        assert len(draws) >= 2  # the first step, then the final line, redrawn in place
        final = draws[-1].rstrip(" ")
        match = KERAS_FINAL_LINE.match(final)
        assert match, final
        assert match.group("step") == "3" and metric_names(match) == ["accuracy", "loss"]
        assert final.endswith(f"accuracy: {history.history['accuracy'][epoch]:.4f} - "
                              f"loss: {history.history['loss'][epoch]:.4f}")
        # Redrawing a shorter line pads it, so no stale characters remain on screen.
        assert all(len(d) >= len(prev) for prev, d in zip(draws, draws[1:]))


def test_evaluate_prints_one_line(capsys):
    model = tiny_model()
    x, y = tiny_data(70)
    loss, accuracy = model.evaluate(x, y, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert KERAS_VERBOSE_2.match(lines[0])
    assert lines[0].endswith(f"accuracy: {accuracy:.4f} - loss: {loss:.4f}")


def test_progbar_matches_the_keras_tutorial_line():
    stream = io.StringIO()
    bar = callbacks.Progbar(1875, verbose=1, stream=stream)
    bar.update(900, {"loss": 0.6, "accuracy": 0.7})
    bar.update(1875, {"loss": 0.4949, "accuracy": 0.8267}, finalize=True)
    first, final = stream.getvalue().split("\r")[1:]
    assert first.startswith(" 900/1875 " + "━" * 9 + "─" * 11 + " ")
    assert KERAS_FINAL_LINE.match(final.rstrip("\n").rstrip(" "))
    assert final.startswith("1875/1875 ━━━━━━━━━━━━━━━━━━━━ ")
    assert final.rstrip().endswith("/step - accuracy: 0.8267 - loss: 0.4949")


def test_progbar_of_a_generator_of_unknown_length_shows_unknown_as_keras():
    """fit(generator) without steps_per_epoch: the number of steps is not known in advance."""
    stream = io.StringIO()
    bar = callbacks.Progbar(None, verbose=1, stream=stream)
    bar.update(12, {"loss": 0.5}, finalize=True)
    assert stream.getvalue().lstrip("\r").lstrip().startswith("12/Unknown ")
    assert stream.getvalue().rstrip().endswith("/step - loss: 0.5000")
    stream = io.StringIO()
    callbacks.Progbar(None, verbose=2, stream=stream).update(12, {"loss": 0.5}, finalize=True)
    assert stream.getvalue().startswith("12/12 - ")


def test_verbose_auto_means_a_redrawn_bar_at_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert callbacks.resolve_verbose("auto") == 1
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert callbacks.resolve_verbose("auto") == 2
    # a Jupyter kernel's output (ipykernel's OutStream) redraws a line too: the bar, as Keras
    # shows it in a notebook; a process that merely imported ipykernel is not a notebook
    OutStream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    monkeypatch.setattr(sys, "stdout", OutStream())
    assert callbacks.resolve_verbose("auto") == 1


# ----------------------------------------------------------------------------- determinism


def seeded_run(seed, epochs=3):
    npnet.utils.set_random_seed(seed)
    model = tiny_model()
    initial = model.get_weights()
    x, y = tiny_data(100)
    history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, validation_split=0.1)
    return initial, history.history, model.get_weights(), model.predict(x)


def test_set_random_seed_makes_the_whole_run_reproducible():
    first, second = seeded_run(7), seeded_run(7)
    assert_weights_equal(second[0], first[0], "initial weights")
    assert second[1] == first[1]
    assert_weights_equal(second[2], first[2], "trained weights")
    np.testing.assert_array_equal(second[3], first[3])


def test_different_seeds_differ():
    first, other = seeded_run(7, epochs=1), seeded_run(8, epochs=1)
    assert not np.array_equal(first[0][0], other[0][0])
    assert first[1] != other[1]


def test_seed_controls_the_shuffle_order():
    x, y = tiny_data(70)
    orders = []
    for seed in (1, 1, 2):
        npnet.utils.set_random_seed(0)
        model = tiny_model()
        seen = BatchRecorder(model)
        npnet.utils.set_random_seed(seed)
        model.fit(x, y, epochs=1, verbose=0)
        orders.append(np.concatenate([yb for _, yb in seen.batches]).tobytes() + np.concatenate([xb for xb, _ in seen.batches]).tobytes())
    assert orders[0] == orders[1] and orders[0] != orders[2]


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_set_random_seed_rejects_non_integers(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        npnet.utils.set_random_seed(seed)


def test_flatten_dense_model_called_like_keras():
    model = npnet.Sequential([Flatten(input_shape=(2, 2)), Dense(3, activation="softmax")])
    out = model(np.ones((4, 2, 2)))
    assert out.shape == (4, 3) and out.dtype == np.float32


def test_a_model_class_overriding_train_step_is_refused_instead_of_ignored():
    class CustomModel(npnet.Model):
        def train_step(self, data):
            raise AssertionError("npnet never calls it")

    class CustomEvaluation(npnet.Sequential):
        def test_step(self, data):
            return {}

    inputs = npnet.Input(shape=(3,))
    outputs = npnet.layers.Dense(2)(inputs)
    with pytest.raises(NotImplementedError, match=r"CustomModel overrides train_step.*cannot run a custom "
                                                  r"train_step.*GradientTape.*losses\.Loss subclass.*train_on_batch"):
        CustomModel(inputs, outputs)
    with pytest.raises(NotImplementedError, match="CustomEvaluation overrides test_step"):
        CustomEvaluation([npnet.layers.Dense(2)])


def test_adding_a_layer_built_for_other_features_is_refused_and_the_model_unchanged():
    """A Dense built for 7 inputs after layers with 3 outputs would fail at every later call
    with a raw product error; add refuses it with both shapes, and the layer does not join.
    A layer built for the right features, or a weightless one, joins."""
    model = npnet.Sequential([Dense(5, input_shape=(4,)), Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4), np.float32), np.ones((8, 3), np.float32), verbose=0)
    wrong = Dense(2)
    wrong.build((None, 7))
    with pytest.raises(ValueError, match=r"built for inputs of shape \(7,\).*has shape \(3,\)"):
        model.add(wrong)
    assert len(model.layers) == 2
    assert model.predict(np.ones((2, 4), np.float32), verbose=0).shape == (2, 3)
    right = Dense(2)
    right.build((None, 3))
    model.add(right)
    flatten = Flatten()
    flatten.build((None, 5, 5))
    model.add(flatten)
    assert model.predict(np.ones((2, 4), np.float32), verbose=0).shape == (2, 2)
