"""Mirror tests of Keras's one-batch methods: ``train_on_batch``, ``test_on_batch`` and
``predict_on_batch``, as custom training loops and course notebooks call them.

The same model and weights in npnet (both backends) and in Keras 3; the same calls; the
returned values, their types and the weights compared.
"""

import warnings

import numpy as np
import pytest
import keras

import npnet
from npnet import layers

pytestmark = pytest.mark.reference

N, D, K = 48, 6, 3
BACKENDS = ["numpy", "numba"]


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, D), dtype=np.float32), rng.integers(0, K, n)


def pair(backend, metrics=("accuracy",), optimizer="adam"):
    """Compiled npnet and Keras models with equal weights: Input(D) -> Dense(8, relu) -> Dense(K, softmax)."""
    ours = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(8, activation="relu"),
                             layers.Dense(K, activation="softmax")])
    theirs = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(8, activation="relu"),
                               keras.layers.Dense(K, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics), backend=backend)
    theirs.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return ours, theirs


def assert_same_weights(ours, theirs, atol=1e-6):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("metrics", [("accuracy",), ("sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy")])
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_returns_each_batchs_loss_and_metrics_and_trains_like_keras(backend, metrics):
    """Keras 3 resets the metrics for every call: each result is that batch's alone,
    computed before its update (top-k reads the outputs rather than counting argmaxes)."""
    ours, theirs = pair(backend, metrics=metrics)
    x, y = data()
    for start in range(0, N, 16):
        batch = (x[start:start + 16], y[start:start + 16])
        mine, keras_result = ours.train_on_batch(*batch), theirs.train_on_batch(*batch)
        assert isinstance(mine, list) and len(mine) == len(keras_result) == 1 + len(metrics)
        assert all(isinstance(value, float) for value in mine)
        np.testing.assert_allclose(mine, keras_result, rtol=1e-5)
    assert ours.optimizer.iterations == 3
    assert_same_weights(ours, theirs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_three_return_forms_follow_keras(backend):
    """A float without metrics, a list with them, a dict with return_dict=True."""
    x, y = data()
    ours, theirs = pair(backend, metrics=())
    loss, keras_loss = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
    assert isinstance(loss, float) and isinstance(keras_loss, float)
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    assert isinstance(ours.test_on_batch(x, y), float)
    ours, theirs = pair(backend)
    mine, keras_result = ours.train_on_batch(x, y, return_dict=True), theirs.train_on_batch(x, y, return_dict=True)
    assert mine.keys() == keras_result.keys() == {"loss", "accuracy"}
    for key in mine:
        assert mine[key] == pytest.approx(float(keras_result[key]), rel=1e-5)
    mine, keras_result = ours.test_on_batch(x, y, return_dict=True), theirs.test_on_batch(x, y, return_dict=True)
    assert mine.keys() == keras_result.keys()
    for key in mine:
        assert mine[key] == pytest.approx(float(keras_result[key]), rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_test_on_batch_and_predict_on_batch_match_keras_and_change_nothing(backend):
    ours, theirs = pair(backend)
    x, y = data()
    before = [w.copy() for w in ours.get_weights()]
    np.testing.assert_allclose(ours.test_on_batch(x, y), theirs.test_on_batch(x, y), rtol=1e-5)
    outputs = ours.predict_on_batch(x)
    assert isinstance(outputs, np.ndarray) and outputs.shape == (N, K) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, theirs.predict_on_batch(x), rtol=1e-5, atol=1e-7)
    assert ours.optimizer.iterations == 0
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_is_one_step_of_fit_on_that_batch(backend):
    """The same weights, optimizer slots and loss as fit(x, y, batch_size=len(x), shuffle=False),
    Dropout masks included (the same draws from npnet's generator), bit for bit."""
    x, y = data()
    models = []
    for _ in range(2):
        npnet.utils.set_random_seed(0)
        model = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(8, activation="relu"), layers.Dropout(0.3),
                                  layers.Dense(K, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
        models.append(model)
    npnet.utils.set_random_seed(5)
    logs = [models[0].train_on_batch(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, return_dict=True)]
    npnet.utils.set_random_seed(5)
    history = models[1].fit(x, y, batch_size=N, shuffle=False, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    assert logs[0] == {key: values[0] for key, values in history.history.items()}
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    for slot in models[1].optimizer.state:
        for a, b in zip(models[0].optimizer.state[slot], models[1].optimizer.state[slot]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_weight_weighs_the_batch_like_keras(backend):
    ours, theirs = pair(backend, optimizer="sgd")
    x, y = data()
    weights = np.linspace(0.2, 3.0, N).astype(np.float32)
    np.testing.assert_allclose(ours.train_on_batch(x, y, sample_weight=weights),
                               theirs.train_on_batch(x, y, sample_weight=weights), rtol=1e-5)
    assert_same_weights(ours, theirs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_batches_are_refused_before_anything_changes(backend):
    ours, _ = pair(backend)
    x, y = data()
    ours.train_on_batch(x, y)
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ValueError, match="x"):
        ours.train_on_batch(x[:, :4], y)
    with pytest.raises(ValueError, match="label"):
        ours.train_on_batch(x, y + K)
    with pytest.raises(ValueError, match="sample_weight"):
        ours.train_on_batch(x, y, sample_weight=np.ones(N + 1))
    with pytest.raises(ValueError, match="x"):
        ours.predict_on_batch(x[:, :4])
    with pytest.raises(ValueError, match="x"):
        ours.test_on_batch(x[:, :4], y)
    assert ours.optimizer.iterations == 1
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_before_compile_says_so():
    model = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(K)])
    with pytest.raises(RuntimeError, match="train_on_batch"):
        model.train_on_batch(*data())
    with pytest.raises(RuntimeError, match="test_on_batch"):
        model.test_on_batch(*data())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_that_is_not_finite_is_not_applied(backend):
    """Keras would write the NaN into the weights; npnet warns, keeps the model, and returns
    the non-finite loss."""
    ours, _ = pair(backend, optimizer="sgd")
    x, y = data()
    before = [w.copy() for w in ours.get_weights()]
    with pytest.warns(RuntimeWarning, match="train_on_batch: .*not applied"):
        loss, accuracy = ours.train_on_batch(np.full_like(x, 3e38), y)
    assert not np.isfinite(loss) and np.isnan(accuracy)
    assert ours.optimizer.iterations == 0
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(ours.train_on_batch(x, y)[0])
    assert ours.optimizer.iterations == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_metrics_of_several_thresholds_log_arrays_as_keras(backend):
    """Precision and the counts with a list of thresholds: an array per metric in evaluate's
    list, in train_on_batch's and in History, as Keras logs them."""
    x, y = data()
    binary = (y > 0).astype(np.float32)
    ours = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(1, activation="sigmoid")])
    theirs = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(1, activation="sigmoid")])
    theirs.set_weights(ours.get_weights())
    for model, lib, options in ((ours, npnet, {"backend": backend}), (theirs, keras, {})):
        model.compile(optimizer="sgd", loss="binary_crossentropy", **options,
                      metrics=[lib.metrics.Precision(thresholds=[0.3, 0.7]), lib.metrics.TruePositives([0.4, 0.6])])
    mine, keras_result = ours.evaluate(x, binary, verbose=0), theirs.evaluate(x, binary, verbose=0)
    assert [np.shape(v) for v in mine] == [(), (2,), (2,)]
    for a, b in zip(mine, keras_result):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    for a, b in zip(ours.train_on_batch(x, binary), theirs.train_on_batch(x, binary)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    history = ours.fit(x, binary, epochs=1, verbose=0).history
    assert history["precision"][0].shape == history["true_positives"][0].shape == (2,)


def test_thresholds_outside_0_1_are_refused_as_in_keras():
    for bad in (2.0, [0.3, 1.5], "0.5"):
        with pytest.raises((ValueError, TypeError)):  # Keras: ValueError, TypeError for the text
            keras.metrics.TruePositives(thresholds=bad)
        with pytest.raises(ValueError, match="thresholds must be numbers in \\[0, 1\\]"):
            npnet.metrics.TruePositives(thresholds=bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_test_on_batch_weighs_the_loss_by_keyword_and_by_position_like_keras(backend):
    """Keras's order (x, y, sample_weight, return_dict): the weights weigh the loss, not the
    accuracy, by keyword or by position."""
    ours, theirs = pair(backend)
    x, y = data()
    weights = np.linspace(0.2, 3.0, N).astype(np.float32)
    expected = theirs.test_on_batch(x, y, sample_weight=weights)
    np.testing.assert_allclose(ours.test_on_batch(x, y, sample_weight=weights), expected, rtol=1e-5)
    np.testing.assert_allclose(ours.test_on_batch(x, y, weights), expected, rtol=1e-5)
    assert expected[0] != pytest.approx(theirs.test_on_batch(x, y)[0], rel=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_update_that_overflows_is_not_applied_and_its_metrics_are_nan(backend):
    """The loss is finite, the update is not: the warning, the finite loss, NaN metrics."""
    ours, _ = pair(backend, optimizer="sgd")
    ours.optimizer.learning_rate = 3e38
    x, y = data()
    before = [w.copy() for w in ours.get_weights()]
    with pytest.warns(RuntimeWarning, match="not applied"):
        loss, accuracy = ours.train_on_batch(x * 1000, y)
    assert np.isnan(accuracy)
    assert ours.optimizer.iterations == 0
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)
