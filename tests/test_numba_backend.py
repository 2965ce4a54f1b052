"""The numba backend computes what the NumPy backend computes, only faster.

Mirror tests: every model is trained twice from the same initial weights and the same batch
order, once per backend, and the results are compared tensor by tensor. The kernels are
compiled on first use (a few seconds per model depth when numba's disk cache is cold).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest

import npnet
from npnet import activations, config, functional as F, layers, losses, optimizers, training, utils

numba = pytest.importorskip("numba")

from npnet.backends import numba_backend  # noqa: E402
from npnet.kernels import dense as K  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- helpers


def make_model(input_shape, spec, backend, from_logits=False, name="model", **compile_kwargs):
    """A compiled Sequential: an optional Flatten (for >1-D samples), then Dense per (units, activation)."""
    stack = []
    if len(input_shape) > 1:
        stack.append(layers.Flatten(input_shape=input_shape))
    for index, (units, activation) in enumerate(spec):
        first = index == 0 and not stack
        stack.append(layers.Dense(units, activation=activation,
                                  **({"input_shape": input_shape} if first else {})))
    model = npnet.Sequential(stack, name=name)
    model.compile(optimizer=compile_kwargs.pop("optimizer", "adam"),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"], backend=backend, **compile_kwargs)
    return model


def make_pair(input_shape, spec, from_logits=False, seed=0):
    """(numpy model, numba model) with identical initial weights."""
    utils.set_random_seed(seed)
    reference = make_model(input_shape, spec, "numpy", from_logits)
    fast = make_model(input_shape, spec, "numba", from_logits)
    fast.set_weights(reference.get_weights())
    return reference, fast


def make_data(n_samples, input_shape, n_classes, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.random((n_samples,) + tuple(input_shape), dtype=np.float32)
    y = rng.integers(0, n_classes, n_samples)
    return x, y


def fit_same_order(model, x, y, seed=2, **kwargs):
    """fit with the shuffling generator reset, so both backends see the same batches."""
    utils.set_random_seed(seed)
    return model.fit(x, y, verbose=0, **kwargs)


def max_weight_difference(a, b):
    return max(float(np.max(np.abs(wa - wb))) for wa, wb in zip(a.get_weights(), b.get_weights()))


def describe_differences(a, b):
    return ", ".join(f"{name}: {np.max(np.abs(wa - wb)):.2e}"
                     for name, wa, wb in zip(a.weight_names(), a.get_weights(), b.get_weights()))


# ----------------------------------------------------------------------------- equivalence

# (id, input shape, [(units, activation)...], from_logits, n_samples, batch_size, epochs):
# each trains for about 100 steps.
CASES = [
    ("tutorial-shape", (28, 28), [(64, "relu"), (10, "softmax")], False, 3200, 32, 1),
    # Units that are a multiple of 64 take the register-tiled kernels (1, 2 or 4 tiles wide).
    ("tutorial-width-128", (28, 28), [(128, "relu"), (10, "softmax")], False, 3200, 32, 1),
    # Batches of 300 rows: tiled forward, BLAS weight gradient; the last one (100 rows) tiled.
    ("large-batches", (20,), [(64, "relu"), (5, "softmax")], False, 30100, 300, 1),
    ("two-forward-tiles", (10, 10), [(256, "relu"), (128, "tanh"), (10, "softmax")], False, 1000, 10, 1),
    ("batch-of-1", (12,), [(16, "relu"), (4, "softmax")], False, 100, 1, 1),
    ("last-partial-batch", (20,), [(16, "tanh"), (5, "softmax")], False, 327, 32, 9),
    ("three-layers-logits", (6, 6), [(24, "sigmoid"), (16, "relu"), (7, "linear")], True, 250, 25, 10),
    ("single-layer", (28, 28), [(10, "softmax")], False, 1000, 10, 1),
    ("tanh-output-logits", (10,), [(8, "relu"), (3, "tanh")], True, 200, 20, 10),
    ("sigmoid-output-probabilities", (10,), [(8, "linear"), (3, "sigmoid")], False, 200, 20, 10),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_100_steps_match_numpy_backend(case):
    _, input_shape, spec, from_logits, n_samples, batch_size, epochs = case
    reference, fast = make_pair(input_shape, spec, from_logits)
    x, y = make_data(n_samples, input_shape, spec[-1][0])
    history_reference = fit_same_order(reference, x, y, batch_size=batch_size, epochs=epochs)
    history_fast = fit_same_order(fast, x, y, batch_size=batch_size, epochs=epochs)

    steps = epochs * -(-n_samples // batch_size)
    assert 99 <= steps <= 110
    assert reference.optimizer.iterations == fast.optimizer.iterations == steps
    difference = max_weight_difference(reference, fast)
    assert difference <= 1e-6, f"max |Δw| = {difference:.2e} after {steps} steps ({describe_differences(reference, fast)})"
    for slot in ("m", "v"):
        for ours, theirs in zip(fast.optimizer.state[slot], reference.optimizer.state[slot]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7, err_msg=f"Adam {slot}")
    np.testing.assert_allclose(history_fast.history["loss"], history_reference.history["loss"], rtol=1e-5)
    assert history_fast.history["accuracy"] == history_reference.history["accuracy"]

    # Inference, with a batch size other than training's (the buffers must grow).
    p_reference = reference.predict(x, batch_size=64, verbose=0)
    p_fast = fast.predict(x, batch_size=64, verbose=0)
    assert p_fast.dtype == np.float32 and p_fast.shape == p_reference.shape
    np.testing.assert_allclose(p_fast, p_reference, rtol=1e-5, atol=1e-6)
    assert np.array_equal(p_fast.argmax(axis=1), p_reference.argmax(axis=1))
    evaluation_reference = reference.evaluate(x, y, batch_size=48, verbose=0)
    evaluation_fast = fast.evaluate(x, y, batch_size=48, verbose=0)
    np.testing.assert_allclose(evaluation_fast, evaluation_reference, rtol=1e-5)


def _record_calls(model):
    """Wrap the backend's ``train_steps``; return the list of batches per call."""
    calls = []
    run = model.backend.train_steps

    def recording(*args):
        calls.append(args[5])  # n_steps
        return run(*args)
    model.backend.train_steps = recording
    return calls


def _compile_again(model, steps_per_execution):
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], backend="numba",
                  steps_per_execution=steps_per_execution)


def test_several_batches_per_call_train_identically():
    """steps_per_execution only groups batches into compiled calls; that changes nothing but
    speed (same weights, same history, bit for bit)."""
    one, several = make_pair((20,), [(16, "tanh"), (5, "softmax")])
    one.compile(optimizer="adam", loss=one.loss, metrics=["accuracy"], backend="numba")
    _compile_again(one, 1)
    _compile_again(several, 4)
    calls_one, calls_several = _record_calls(one), _record_calls(several)
    x, y = make_data(327, (20,), 5)
    history_one = fit_same_order(one, x, y, batch_size=32, epochs=2,
                                 callbacks=[npnet.callbacks.EarlyStopping(monitor="loss", patience=5)])
    history_several = fit_same_order(several, x, y, batch_size=32, epochs=2,
                                     callbacks=[npnet.callbacks.EarlyStopping(monitor="loss", patience=5)])
    assert calls_one == [1] * 22
    assert calls_several == [4, 4, 3] * 2  # 11 batches per epoch
    assert history_several.history == history_one.history
    assert all(np.array_equal(a, b) for a, b in zip(one.get_weights(), several.get_weights()))


@pytest.mark.parametrize("how", ["instance attribute", "subclass"])
def test_auto_steps_per_execution_gives_batch_hooks_the_weights_of_each_batch(how):
    """With steps_per_execution='auto' a callback with a batch hook gets one batch per call:
    the weights it sees are those after exactly that batch, as with the NumPy backend."""
    reference, fast = make_pair((20,), [(16, "relu"), (5, "softmax")])
    calls = _record_calls(fast)
    seen = {}
    for model in (reference, fast):
        snapshots = seen.setdefault(model.backend.name, [])
        if how == "subclass":
            class Snapshot(npnet.callbacks.Callback):
                def on_train_batch_end(self, batch, logs=None):
                    snapshots.append((batch, self.model.get_weights()[0].copy()))
            record = Snapshot()
        else:
            record = npnet.callbacks.Callback()
            record.on_train_batch_end = lambda batch, logs=None, model=model, snapshots=snapshots: \
                snapshots.append((batch, model.get_weights()[0].copy()))
        x, y = make_data(327, (20,), 5)
        fit_same_order(model, x, y, batch_size=32, epochs=1, callbacks=[record])
    assert calls == [1] * 11
    assert [batch for batch, _ in seen["numba"]] == [batch for batch, _ in seen["numpy"]] == list(range(11))
    for (_, fast_kernel), (_, reference_kernel) in zip(seen["numba"], seen["numpy"]):
        assert np.max(np.abs(fast_kernel - reference_kernel)) <= 1e-6
    assert not np.array_equal(seen["numba"][0][1], seen["numba"][1][1])  # a new step each time


def test_only_callbacks_with_their_own_batch_hook_want_every_batch():
    wants = npnet.callbacks.wants_every_batch

    class EpochsOnly(npnet.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class OwnProgress(npnet.callbacks.ProgbarLogger):
        def on_train_batch_end(self, batch, logs=None):
            pass

    class BatchAlias(npnet.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            pass

    assert not wants(npnet.callbacks.Callback())
    assert not wants(npnet.callbacks.History())
    assert not wants(npnet.callbacks.ProgbarLogger(1, 1, 1))  # reads the logs only
    assert not wants(npnet.callbacks.EarlyStopping())
    assert not wants(npnet.callbacks.TerminateOnNaN())
    assert not wants(EpochsOnly())
    assert wants(BatchAlias())
    instance = EpochsOnly()
    instance.on_train_batch_begin = lambda batch, logs=None: None
    assert wants(instance)


def test_batch_hooks_run_once_per_execution_as_in_keras():
    """With steps_per_execution=4 the batch hooks run after every 4th batch (and the last),
    with that batch's number and the running means of one-batch-per-call training."""
    one, several = make_pair((20,), [(16, "relu"), (5, "softmax")])
    one.compile(optimizer="adam", loss=one.loss, metrics=["accuracy"], backend="numba")
    _compile_again(one, 1)
    _compile_again(several, 4)

    class LossLogger(npnet.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append((batch, dict(logs)))

    x, y = make_data(327, (20,), 5)
    loggers, calls = [], []
    for model in (one, several):
        calls.append(_record_calls(model))
        loggers.append(LossLogger())
        fit_same_order(model, x, y, batch_size=32, epochs=2, callbacks=[loggers[-1]])
    assert calls == [[1] * 22, [4, 4, 3] * 2]
    assert [batch for batch, _ in loggers[1].seen] == [3, 7, 10] * 2
    every = dict(enumerate(loggers[0].seen))
    assert loggers[1].seen == [every[i] for i in (3, 7, 10, 14, 18, 21)]


def test_fit_with_a_progress_bar_runs_several_batches_per_call(capsys):
    """verbose=1 (ProgbarLogger) reads only the logs: 'auto' keeps several batches per call,
    and the progress bar still ends at the epoch's last batch with the epoch's logs."""
    _, fast = make_pair((20,), [(16, "relu"), (5, "softmax")])
    calls = _record_calls(fast)
    x, y = make_data(327, (20,), 5)
    utils.set_random_seed(2)
    history = fast.fit(x, y, batch_size=32, epochs=1, verbose=1)
    assert calls == [11]
    output = capsys.readouterr().out
    assert "11/11" in output
    assert f"loss: {history.history['loss'][0]:.4f}" in output


def test_train_batch_api_matches_numpy_backend():
    """The generic backend interface (used outside fit) gives the same step as the NumPy one."""
    reference, fast = make_pair((28, 28), [(32, "relu"), (10, "softmax")])
    x, y = make_data(40, (28, 28), 10)
    for start, stop in ((0, 32), (32, 40), (5, 6)):  # a full, a partial and a single-sample batch
        loss_reference, correct_reference, applied_reference = reference.backend.train_batch(x[start:stop], y[start:stop])
        loss_fast, correct_fast, applied_fast = fast.backend.train_batch(x[start:stop], y[start:stop])
        assert applied_fast is applied_reference is True
        assert correct_fast == correct_reference
        assert loss_fast == pytest.approx(loss_reference, rel=1e-6)
    assert fast.optimizer.iterations == reference.optimizer.iterations == 3
    assert max_weight_difference(reference, fast) <= 1e-6, describe_differences(reference, fast)
    assert fast.backend.test_batch(x, y) == pytest.approx(reference.backend.test_batch(x, y), rel=1e-6)


def test_training_continues_across_backends():
    """The numba backend keeps the model's own weight arrays and the optimizer's state and
    step count, so the NumPy backend can take over mid-training (and vice versa)."""
    reference, fast = make_pair((12,), [(16, "relu"), (4, "softmax")])
    x, y = make_data(320, (12,), 4)
    kernel_before = fast.layers[0].kernel
    fit_same_order(reference, x, y, seed=2)
    fit_same_order(reference, x, y, seed=3)
    fit_same_order(fast, x, y, seed=2)
    assert fast.layers[0].kernel is kernel_before  # updated in place
    fast.compile(optimizer=fast.optimizer, loss=fast.loss, metrics=["accuracy"], backend="numpy")
    fit_same_order(fast, x, y, seed=3)
    assert fast.optimizer.iterations == reference.optimizer.iterations == 20
    assert max_weight_difference(reference, fast) <= 1e-6, describe_differences(reference, fast)


def test_compile_keeps_the_weights_and_training_updates_the_layers_arrays():
    """Compiling with backend='numba' leaves every weight value as it was, and the arrays a
    layer hands out after compile (``layer.kernel``/``layer.bias``) are the ones training updates."""
    utils.set_random_seed(0)
    model = npnet.Sequential([layers.Flatten(input_shape=(6, 2)), layers.Dense(16, activation="relu"),
                              layers.Dense(4, activation="softmax")])
    before = model.get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="numba")
    after = model.get_weights()
    assert [w.dtype for w in after] == [w.dtype for w in before]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    fetched = [(layer.kernel, layer.bias) for layer in model.layers[1:]]
    assert all(a is b for a, b in zip([a for pair in fetched for a in pair], model.weights))
    x, y = make_data(64, (6, 2), 4)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    trained = model.get_weights()
    for (kernel, bias), (kernel_now, bias_now) in zip(fetched, zip(trained[0::2], trained[1::2])):
        assert np.array_equal(kernel, kernel_now) and np.array_equal(bias, bias_now)
    assert not np.array_equal(fetched[0][0], before[0])  # training did change them

@pytest.mark.slow
def test_tutorial_one_epoch_on_real_data():
    """Integration: the tutorial's model on Fashion-MNIST, one epoch on the numba backend."""
    (x_train, y_train), (x_test, y_test) = npnet.datasets.fashion_mnist.load_data()
    x_train = x_train.astype(np.float32) / np.float32(255)
    x_test = x_test.astype(np.float32) / np.float32(255)
    utils.set_random_seed(0)
    model = make_model((28, 28), [(128, "relu"), (10, "softmax")], "numba")
    assert model.backend.name == "numba"
    history = model.fit(x_train, y_train, epochs=1, verbose=0)
    assert model.optimizer.iterations == 1875
    assert history.history["accuracy"][0] > 0.75
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert test_accuracy >= 0.80, test_accuracy
    probabilities = model.predict(x_test, verbose=0)
    assert probabilities.shape == (10000, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == y_test) == pytest.approx(test_accuracy)


# ----------------------------------------------------------------------------- bad input


def _outcome(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the point is to compare whatever is raised
        return type(error), str(error)
    return None


BAD_CALLS = {
    "x of the wrong shape": lambda m, x, y: m.fit(x[:, :, :27], y, verbose=0),
    "a single sample without batch axis": lambda m, x, y: m.predict(x[0], verbose=0),
    "x with NaN": lambda m, x, y: m.fit(np.where(x > 0.99, np.nan, x), y, verbose=0),
    "labels out of range": lambda m, x, y: m.fit(x, y + 5, verbose=0),
    "non-integer labels": lambda m, x, y: m.fit(x, y + 0.5, verbose=0),
    "one-hot labels": lambda m, x, y: m.evaluate(x, np.eye(10)[y], verbose=0),
    "fewer labels than samples": lambda m, x, y: m.fit(x, y[:-1], verbose=0),
    "string x": lambda m, x, y: m.predict(np.full((2, 28, 28), "a"), verbose=0),
    "empty x": lambda m, x, y: m.predict(x[:0], verbose=0),
    "batch_size 0": lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0),
    "x None": lambda m, x, y: m.evaluate(None, y, verbose=0),
}


@pytest.mark.parametrize("what", list(BAD_CALLS))
def test_bad_input_errors_are_the_numpy_backends(what):
    reference, fast = make_pair((28, 28), [(16, "relu"), (10, "softmax")])
    x, y = make_data(64, (28, 28), 10)
    before = fast.get_weights()
    expected = _outcome(lambda: BAD_CALLS[what](reference, x, y))
    received = _outcome(lambda: BAD_CALLS[what](fast, x, y))
    assert expected is not None, f"{what} should be refused"
    assert received == expected
    assert max_weight_difference(fast, reference) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, fast.get_weights()))


# ----------------------------------------------------------------------------- non-finite


def _stop_warnings(model, x, y, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, verbose=0, shuffle=False, **kwargs)
    messages = [str(w.message) for w in caught
                if issubclass(w.category, RuntimeWarning) and "training stopped" in str(w.message)]
    return history, messages


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_non_finite_loss_stops_before_the_update_like_numpy(steps_per_execution):
    """Batch 2 holds a huge (finite) input: its logits overflow and its loss is NaN. Both
    backends apply batches 0 and 1, refuse batch 2, warn, and stop (also when the kernel
    trains several batches per call and meets the bad one in the middle)."""
    reference, fast = make_pair((16,), [(8, "relu"), (3, "softmax")])
    _compile_again(fast, steps_per_execution)
    x, y = make_data(128, (16,), 3)
    x[70] = 3e38
    with np.errstate(over="ignore", invalid="ignore"):  # NumPy's own overflow warnings
        premise, _, _ = training.loss_and_gradients(reference.layers, reference.loss, x[64:96], y[64:96])
        assert not np.isfinite(premise)
        history_reference, warned_reference = _stop_warnings(reference, x, y, epochs=3)
    history_fast, warned_fast = _stop_warnings(fast, x, y, epochs=3)
    assert len(warned_fast) == 1 and warned_fast == warned_reference
    assert "Epoch 1, batch 2: the loss is nan" in warned_fast[0]
    assert fast.stop_training and reference.stop_training
    assert fast.optimizer.iterations == reference.optimizer.iterations == 2
    assert max_weight_difference(reference, fast) <= 1e-7
    assert history_fast.history.keys() == history_reference.history.keys()
    np.testing.assert_allclose(history_fast.history["loss"], history_reference.history["loss"], rtol=1e-6)


def test_non_finite_gradient_with_finite_loss_is_not_applied():
    """A finite loss whose kernel gradient is too large to square (a relu output read as
    probabilities: dL/da = -1/(n p) with p = 2e-7, times a hidden activation of 1e31). The
    kernels' finiteness check looks at the gradients, not only at the loss. (The weights are
    normal floats: the numba backend trains with denormals flushed, as TensorFlow does.)"""
    def build(backend):
        model = npnet.Sequential([layers.Dense(1, input_shape=(1,)), layers.Dense(2, activation="relu")],
                                 name="m")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      backend=backend)
        model.set_weights([np.array([[1e31]], np.float32), np.zeros(1, np.float32),
                           np.array([[2e-38, 0.0]], np.float32), np.zeros(2, np.float32)])
        return model

    reference, fast = build("numpy"), build("numba")
    x, y = np.ones((4, 1), np.float32), np.zeros(4, np.int64)
    with np.errstate(over="ignore"):
        loss, _, grads = training.loss_and_gradients(reference.layers, reference.loss, x[:2], y[:2])
        assert np.isfinite(loss) and not training.all_finite(grads)  # the premise
        before = fast.get_weights()
        _, warned_reference = _stop_warnings(reference, x, y, batch_size=2)
    _, warned_fast = _stop_warnings(fast, x, y, batch_size=2)
    assert len(warned_fast) == 1 and warned_fast == warned_reference
    assert fast.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, fast.get_weights()))


def test_a_finite_gradient_too_large_to_square_stops_fit_on_both_backends():
    """A gradient of 5e19 is finite in float32 but its square (Adam's v) is not: both backends
    refuse the step, stop fit with the same warning and keep every array as it was."""
    def build(backend):
        model = npnet.Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
        model.set_weights([np.zeros((3, 2), np.float32), np.zeros(2, np.float32)])
        return model

    x, y = np.full((4, 3), 1e20, np.float32), np.zeros(4, np.int64)
    warned = {}
    for backend in ("numpy", "numba"):
        model = build(backend)
        _, warned[backend] = _stop_warnings(model, x, y, batch_size=1)
        assert model.optimizer.iterations == 0, backend
        assert all(np.array_equal(w, np.zeros_like(w)) for w in model.get_weights()), backend
        assert all(np.isfinite(a).all() for slot in (model.optimizer.state or {}).values() for a in slot), backend
    assert len(warned["numba"]) == 1 and warned["numba"] == warned["numpy"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "-nan", "1e20", "-1e20", "just above the limit"])
@pytest.mark.parametrize("size", [1, 7, 16, 100, 1027])
def test_too_large_to_square_finds_every_position(bad, size, dtype):
    """The test behind the finiteness check, at the start, middle and vector tail: inf, NaN
    and finite values whose square overflows, as ``training.all_finite`` refuses them."""
    limit = K.constants(dtype)[K.SQUARE_LIMIT]
    assert limit == np.sqrt(np.finfo(dtype).max) and limit.dtype == dtype
    bad = np.nextafter(limit, dtype(np.inf)) if bad == "just above the limit" else dtype(float(bad))
    if dtype is np.float64 and abs(bad) == 1e20:
        bad = dtype(1e160)  # finite in float64, its square is not
    finite = np.array([0.0, -0.0, 1.0, limit, -limit, np.finfo(dtype).tiny, 1e-45], dtype=dtype)
    array = np.resize(finite, size).astype(dtype)
    assert not K.too_large_to_square(array, limit) and training.all_finite([array])
    assert not K.too_large_to_square(array.reshape(1, size), limit)
    for position in {0, size // 2, size - 1}:
        spoiled = array.copy()
        spoiled[position] = bad
        assert K.too_large_to_square(spoiled, limit), position
        assert not training.all_finite([spoiled]), position


def test_kernels_are_compiled_without_fastmath():
    """fastmath would reorder float32 sums and make isnan unreliable (see npnet.kernels._compile)."""
    for name in ("train_batches", "evaluate_batch", "predict", "adam_update", "too_large_to_square"):
        options = getattr(K, name).targetoptions
        assert options.get("fastmath", False) is False, name
        assert options["error_model"] == "numpy", name


# ----------------------------------------------------------------------------- unsupported


class _Doubling(layers.Layer):
    """A layer the kernels do not know."""

    def forward(self, x, training=False):
        return 2 * x, None

    def backward(self, dL_dy, cache, need_input_grad=True):
        return 2 * dL_dy, {}


class _MyDense(layers.Dense):
    pass


class _MyAdam(optimizers.Adam):
    pass


class _MyL2(npnet.regularizers.L2):
    pass


def _dense_with_regularizer():
    layer = layers.Dense(10, activation="softmax")
    layer.kernel_regularizer = _MyL2()  # a regularizer the kernels do not know by class
    return layer


def _flatten(shape=(28, 28)):
    return layers.Flatten(input_shape=shape)


def _softmax_model():
    return [_flatten(), layers.Dense(10, activation="softmax")]


UNSUPPORTED = {
    "layer class": (lambda: [_flatten(), layers.Dense(8), _Doubling(), layers.Dense(10, activation="softmax")],
                    {}, "_Doubling"),
    "Dense subclass": (lambda: [_flatten(), _MyDense(10, activation="softmax")], {}, "_MyDense"),
    "regularizer subclass": (lambda: [_flatten(), _dense_with_regularizer()], {}, "kernel_regularizer"),
    "custom activation": (lambda: [_flatten(), layers.Dense(10, activation=activations.Activation(
        "relu", F.relu_forward, F.relu_backward))], {}, "custom Activation"),
    "Adam subclass": (_softmax_model, {"optimizer": _MyAdam()}, "_MyAdam"),
    "two Dropout layers in a row": (lambda: [_flatten(), layers.Dense(8), layers.Dropout(0.1), layers.Dropout(0.2),
                                             layers.Dense(10, activation="softmax")], {}, "two Dropout layers"),
    "Dropout after the output layer": (lambda: _softmax_model() + [layers.Dropout(0.5)], {}, "after the last Dense"),
    "ReLU layer after an activation": (lambda: [_flatten(), layers.Dense(8, activation="tanh"), layers.ReLU(),
                                                layers.Dense(10, activation="softmax")], {}, "ReLU layer"),
    "activation layer after Dropout": (lambda: [_flatten(), layers.Dense(8), layers.Dropout(0.5), layers.ReLU(),
                                                layers.Dense(10, activation="softmax")], {}, "ReLU layer"),
    "no Dense layer": (lambda: [_flatten(), layers.Softmax()], {}, "Softmax layer"),
}


@pytest.mark.parametrize("what", list(UNSUPPORTED))
def test_unsupported_pieces_are_refused_at_compile(what):
    make_layers, compile_kwargs, named = UNSUPPORTED[what]
    compile_kwargs = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", **compile_kwargs}
    model = npnet.Sequential(make_layers())
    with pytest.raises(NotImplementedError) as info:
        model.compile(metrics=["accuracy"], backend="numba", **compile_kwargs)
    message = str(info.value)
    assert named in message and "backend='numpy'" in message, message
    assert not model.compiled
    # The same model is fine on the NumPy backend: the refusal is the numba backend's alone.
    model.compile(metrics=["accuracy"], backend="numpy", **compile_kwargs)
    assert model.compiled


def test_layers_of_different_dtypes_are_refused_at_compile():
    previous = config.floatx()
    config.set_floatx("float64")
    try:
        first = layers.Dense(4, activation="relu", input_shape=(5,))
        model = npnet.Sequential([first])
    finally:
        config.set_floatx(previous)
    model.add(layers.Dense(3, activation="softmax"))
    model.build((None, 5))
    assert [w.dtype for w in model.get_weights()] == [np.float64] * 2 + [np.float32] * 2
    with pytest.raises(NotImplementedError, match="different dtypes.*backend='numpy'"):
        model.compile(loss="sparse_categorical_crossentropy", backend="numba")


def test_unsupported_layer_added_after_compile_is_refused():
    model = make_model((28, 28), [(8, "relu"), (10, "softmax")], "numba")
    with pytest.raises(NotImplementedError, match="_Doubling"):
        model.add(_Doubling())
    assert len(model.layers) == 3 and model.backend_name == "numba"


# ----------------------------------------------------------------------------- missing numba


def _forget_numba_backend(monkeypatch):
    """Make the next compile(backend='numba') import the backend (and kernels) afresh."""
    import npnet.backends
    monkeypatch.setattr(npnet.backends, "numba_backend", numba_backend, raising=False)
    for name in list(sys.modules):
        if name == "npnet.backends.numba_backend" or name.startswith("npnet.kernels"):
            monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("missing", ["numba", "scipy"])
def test_missing_numba_or_scipy_is_a_clear_error_at_compile(monkeypatch, missing):
    _forget_numba_backend(monkeypatch)
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    model = npnet.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    with pytest.raises(ImportError) as info:
        model.compile(loss="sparse_categorical_crossentropy", backend="numba")
    message = str(info.value)
    assert "backend='numba' requires the numba package" in message
    assert "pip install numba scipy" in message and "backend='numpy'" in message
    assert missing in message
    assert not model.compiled
    model.compile(loss="sparse_categorical_crossentropy", backend="numpy")  # no silent fallback,
    model.fit(*make_data(8, (4,), 3), verbose=0)                            # but numpy still works


# ----------------------------------------------------------------------------- disk cache

_CACHE_PROBE = textwrap.dedent("""
    import json, os, warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import npnet
        from npnet import layers
        npnet.utils.set_random_seed(0)
        model = npnet.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                                  layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numba")
        from npnet.kernels import _compile, dense
        x = np.random.default_rng(0).random((8, 3), dtype=np.float32)
        history = model.fit(x, np.arange(8) % 2, epochs=2, batch_size=4, verbose=0)
    stats = dense.train_batches.stats
    print(json.dumps({
        "npnet": npnet.__file__,
        "package_writable": os.access(os.path.dirname(_compile.__file__), os.W_OK),
        "caching_enabled": _compile.caching_enabled,
        "cache_path": getattr(stats, "cache_path", None),
        "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
        "loss": history.history["loss"],
        "warnings": [str(w.message) for w in caught if "cache" in str(w.message)],
    }))
""")


def _unprivileged_prefix():
    """Root ignores permission bits, so as root the probe runs as 'nobody' (via setpriv)."""
    if os.geteuid() != 0:
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot test a read-only install honestly")
    import pwd
    nobody = pwd.getpwnam("nobody")
    return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"], nobody


def _run_probe(site, home, prefix):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("NUMBA_", "NPNET_", "PYTHON"))}
    env.update(PYTHONPATH=site, HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"),
               PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(prefix + [sys.executable, "-c", _CACHE_PROBE], env=env, cwd=home,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _set_writable(root, writable):
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755 if writable else 0o555)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644 if writable else 0o444)


def test_read_only_install_caches_kernels_in_the_user_cache_dir():
    """npnet installed read-only (a system site-packages, a container image): the kernels'
    cache goes to numba's user cache directory ($XDG_CACHE_HOME/numba), the next process
    loads them from there, and with no writable place at all training still works, with a
    warning. The package is copied to a temporary directory made read-only; since root
    ignores permission bits, as root the probe process runs as 'nobody' (setpriv), so the
    package directory really is unwritable for it (the probe reports os.access to prove it).
    """
    prefix, nobody = _unprivileged_prefix()
    root = tempfile.mkdtemp(prefix="npnet-readonly-")
    try:
        os.chmod(root, 0o755)
        site = os.path.join(root, "site")
        shutil.copytree(os.path.join(REPO_ROOT, "npnet"), os.path.join(site, "npnet"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
        _set_writable(site, False)
        homes = {}
        for name in ("home", "read-only-home"):
            homes[name] = os.path.join(root, name)
            os.makedirs(homes[name])
            if nobody is not None:
                os.chown(homes[name], nobody.pw_uid, nobody.pw_gid)
        os.chmod(homes["read-only-home"], 0o555)

        first = _run_probe(site, homes["home"], prefix)
        assert first["npnet"].startswith(site) and first["package_writable"] is False
        assert first["caching_enabled"] and first["warnings"] == []
        user_cache = os.path.join(homes["home"], ".cache", "numba")
        assert first["cache_path"].startswith(user_cache), first["cache_path"]
        assert first["misses"] >= 1 and first["hits"] == 0
        assert any(name.endswith(".nbi") for _, _, files in os.walk(user_cache) for name in files)
        assert not any(name.endswith((".nbi", ".nbc")) for _, _, files in os.walk(site) for name in files)

        second = _run_probe(site, homes["home"], prefix)
        assert second["hits"] >= 1 and second["misses"] == 0  # loaded, not compiled again
        np.testing.assert_allclose(second["loss"], first["loss"], rtol=1e-6)

        nowhere = _run_probe(site, homes["read-only-home"], prefix)
        assert not nowhere["caching_enabled"]
        assert len(nowhere["warnings"]) == 1 and "NUMBA_CACHE_DIR" in nowhere["warnings"][0]
        np.testing.assert_allclose(nowhere["loss"], first["loss"], rtol=1e-6)
    finally:
        _set_writable(root, True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("linked_by", ["scipy", "numpy"])
def test_blas_is_single_threaded_only_inside_kernel_calls(linked_by):
    from npnet.backends._threads import SingleThreadedBlas

    limiter = SingleThreadedBlas(linked_by)
    libraries = limiter._find_libraries()
    assert libraries, f"threadpoolctl should find the BLAS that {linked_by} uses"
    for lib in libraries:
        lib.set_num_threads(2)
    before = [lib.get_num_threads() for lib in libraries]
    with limiter:
        with limiter:  # re-entrant
            assert [lib.get_num_threads() for lib in libraries] == [1] * len(libraries)
        assert [lib.get_num_threads() for lib in libraries] == [1] * len(libraries)
    assert [lib.get_num_threads() for lib in libraries] == before


def test_direct_backend_calls_check_what_the_kernels_index_with():
    """The model validates its inputs; the backend methods, callable directly, must not let a
    bad label or index reach a kernel (which does not bounds-check)."""
    model = make_model((4,), [(3, "softmax")], "numba")
    x, y = make_data(8, (4,), 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.backend.train_batch(x, y + 3)
    with pytest.raises(ValueError, match="expected 8 integer labels"):
        model.backend.test_batch(x, y[:5])
    with pytest.raises(ValueError, match="empty batch"):
        model.backend.train_batch(x[:0], y[:0])
    with pytest.raises(ValueError, match=r"order must hold 8 indices"):
        model.backend.train_steps(x, y, np.arange(1, 9), 4, 0, 2)
    assert model.optimizer.iterations == 0


def test_a_training_call_checks_the_labels_and_indices_its_steps_read():
    """A call checks what its kernels read (a call of one step costs no pass over the whole
    data set): a bad label or index among its rows is refused with nothing changed, and rows
    only later steps read are checked by the calls that read them."""
    model = make_model((4,), [(3, "softmax")], "numba")
    x, y = make_data(8, (4,), 3)
    before = model.get_weights()
    bad_labels, bad_order, order = y.copy(), np.arange(8), np.arange(8)
    bad_labels[6], bad_order[5] = 3, 8  # read by the second batch of 4
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.backend.train_steps(x, bad_labels, order, 4, 0, 2)
    with pytest.raises(ValueError, match=r"order must hold 8 indices in \[0, 8\); .* to 8"):
        model.backend.train_steps(x, y, bad_order, 4, 1, 1)
    assert model.optimizer.iterations == 0
    for got, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, expected)
    done = model.backend.train_steps(x, bad_labels, bad_order, 4, 0, 1)  # reads positions 0-3 only
    assert done.n_done == 1 and done.last_applied and model.optimizer.iterations == 1


@pytest.mark.parametrize("n, d_in, units", [(1, 3, 128), (32, 784, 128), (7, 50, 256), (6, 9, 64), (4, 4, 192)])
@pytest.mark.parametrize("threads", [None, 2])
def test_register_tiled_products_equal_the_matrix_products(n, d_in, units, threads):
    """The hand-tiled kernels compute x @ W + b and x.T @ g, to float32 rounding, on the
    calling thread or shared among numba's."""
    rng = np.random.default_rng(n + d_in + units)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    kernel_ = rng.standard_normal((d_in, units)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    z = np.full((n, units), np.nan, dtype=np.float32)
    K.dense_forward_tiled(x, kernel_, bias, z, threads)
    expected = x.astype(np.float64) @ kernel_ + bias
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-4 * np.sqrt(d_in))
    g = rng.standard_normal((n, units)).astype(np.float32)
    dL_dkernel = np.full((d_in, units), np.nan, dtype=np.float32)
    K.dense_weight_gradient_tiled(g, x, dL_dkernel, threads)
    np.testing.assert_allclose(dL_dkernel, x.T.astype(np.float64) @ g, rtol=1e-5, atol=1e-4 * np.sqrt(n))


# ----------------------------------------------------------------------------- the automatic choice


def test_auto_uses_numpy_with_one_warning_when_numba_cannot_be_imported(monkeypatch):
    """backend=None ('auto') never fails on numba: without it, NumPy, and one warning per
    process however many models are compiled."""
    import npnet.backends
    _forget_numba_backend(monkeypatch)
    monkeypatch.delattr(npnet.backends, "numba_backend", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setattr(npnet.backends, "_warned_no_numba", False)
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models = [make_model((4,), [(3, "softmax")], None) for _ in range(3)]
    assert [model.backend_name for model in models] == ["numpy"] * 3
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "npnet uses its NumPy backend" in messages[0] and "numba" in messages[0]
    models[0].fit(*make_data(8, (4,), 3), verbose=0)
    with pytest.raises(ImportError, match="backend='numba' requires the numba package"):
        make_model((4,), [(3, "softmax")], "numba")  # an explicit request still refuses


def test_auto_picks_numba_when_it_covers_the_model_and_numpy_otherwise(monkeypatch):
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    covered = npnet.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), layers.Dropout(0.5),
                                layers.Dense(3, activation="softmax")])
    covered.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    assert covered.backend_name == "numba"
    lines = []
    covered.summary(print_fn=lines.append)
    assert " Backend: numba" in lines[0].splitlines()
    uncovered = npnet.Sequential([layers.Dense(8, input_shape=(4,)), _Doubling(), layers.Dense(3)])
    uncovered.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert uncovered.backend_name == "numpy"


def test_the_tutorial_prints_the_backend_it_chose(capsys, monkeypatch):
    from npnet import cli
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    assert cli.main(["tutorial", "--epochs", "0", "--verbose", "0", "--no-plots"]) == 0
    output = capsys.readouterr().out
    assert "backend: numba" in output.splitlines() and " Backend: numba" in output.splitlines()


# ----------------------------------------------------------------------------- threads


@pytest.mark.parametrize("what", ["evaluate", "predict", "evaluate and predict"])
def test_two_threads_on_one_model_get_the_serial_results(what):
    """The kernels release the GIL and the work buffers belong to the model: two threads
    evaluating or predicting with one compiled model at once must get exactly what serial
    calls get (the lock in NumbaBackend; without it, evaluate returned wrong losses)."""
    import threading

    _, model = make_pair((28, 28), [(64, "relu"), (10, "softmax")])
    datasets = [make_data(n, (28, 28), 10, seed=seed) for n, seed in ((700, 3), (450, 4))]
    calls = {
        "evaluate": lambda data: model.evaluate(*data, batch_size=50, verbose=0),
        "predict": lambda data: model.predict(data[0], batch_size=50, verbose=0),
    }
    kinds = ["evaluate", "predict"] if what == "evaluate and predict" else [what, what]
    serial = [calls[kind](data) for kind, data in zip(kinds, datasets)]
    failures, start = [], threading.Barrier(2)

    def worker(index):
        start.wait()
        for _ in range(25):
            result = calls[kinds[index]](datasets[index])
            if not np.array_equal(np.asarray(result), np.asarray(serial[index])):
                failures.append((index, result))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:2]


def test_training_flushes_denormals_inside_the_kernels_and_restores_the_callers_float_mode():
    """Inside the training kernels a float32 below the smallest normal number counts as 0, as
    in TensorFlow's CPU threads; after the call, this thread computes with denormals again."""
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the float mode is set on x86-64 only")

    @numba.njit
    def scaled_inside_flush(value, factor):
        saved = K.flush_denormals()
        result = value * factor
        K.restore_float_mode(saved)
        return result

    tiny, half = np.float32(1e-39), np.float32(0.5)
    assert scaled_inside_flush(tiny, half) == 0 and scaled_inside_flush(np.float32(1e-30), half) > 0
    assert tiny * half > 0  # outside, denormals as usual
    _, fast = make_pair((20,), [(8, "relu"), (3, "softmax")])
    fit_same_order(fast, *make_data(64, (20,), 3), batch_size=16, epochs=1)
    assert tiny * half > 0 and np.float32(2e-39) / np.float32(2) > 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_second_fit_from_another_thread_is_refused_and_the_first_is_undisturbed(backend):
    """Two fits of one model at once would interleave their steps on the same weights and
    slots (on numba they did, silently): the second thread's fit is refused with a clear
    error, and the first trains exactly as it would alone. A fit nested in the same thread
    (a callback that trains) is still allowed."""
    import threading

    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([npnet.layers.Dense(16, activation="relu", input_shape=(6,)),
                              npnet.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    alone = npnet.models.clone_model(model)
    alone.set_weights(model.get_weights())
    alone.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    x, y = make_data(3000, (6,), 3, seed=5)
    inside, release, errors = threading.Event(), threading.Event(), []

    class Hold(npnet.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                inside.set()
                release.wait(60)

    def second():
        inside.wait(60)
        try:
            model.fit(x, y, epochs=1, verbose=0)
        except RuntimeError as error:
            errors.append(str(error))
        finally:
            release.set()

    thread = threading.Thread(target=second)
    thread.start()
    model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=[Hold()])
    thread.join()
    assert len(errors) == 1 and "already running" in errors[0] and "another thread" in errors[0]
    alone.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), alone.get_weights()):
        assert np.array_equal(ours, theirs)

    class Nested(npnet.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.fit(x[:64], y[:64], epochs=1, verbose=0)

    before = model.optimizer.iterations
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0, callbacks=[Nested()])
    assert model.optimizer.iterations == before + 4
