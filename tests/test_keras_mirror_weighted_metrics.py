"""``compile(weighted_metrics=...)`` against tf.keras: the same model, weights and batches
on both sides, the history, ``evaluate`` and the log keys compared; then numba against NumPy,
the errors, and the compile config in ``.keras`` files both ways."""

import json
import os
import zipfile

import numpy as np
import pytest

import npnet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

RNG = np.random.default_rng(7)
X = RNG.normal(size=(48, 4)).astype("float32")
Y = RNG.integers(0, 3, size=48)
WEIGHTS = RNG.uniform(0.1, 3.0, size=48)
CLASS_WEIGHT = {0: 0.5, 1: 2.0, 2: 1.25}
FLOAT32 = {"rtol": 2e-5, "atol": 2e-6}


def _weights():
    rng = np.random.default_rng(3)
    return [rng.normal(scale=0.5, size=(4, 5)).astype("float32"), np.zeros(5, "float32"),
            rng.normal(scale=0.5, size=(5, 3)).astype("float32"), np.zeros(3, "float32")]


def ours(metrics, weighted, backend="numpy"):
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.layers.Dense(5, activation="relu"),
                              npnet.layers.Dense(3, activation="softmax")])
    model.set_weights(_weights())
    model.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=metrics, weighted_metrics=weighted, backend=backend)
    return model


def theirs(metrics, weighted):
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.set_weights(_weights())
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=metrics, weighted_metrics=weighted)
    return model


def assert_logs_close(mine, keras_logs, what):
    assert sorted(mine) == sorted(keras_logs), f"{what}: npnet keys {sorted(mine)}, Keras keys {sorted(keras_logs)}"
    for key in keras_logs:
        np.testing.assert_allclose(mine[key], keras_logs[key], err_msg=f"{what} {key}", **FLOAT32)


CASES = [
    (["accuracy"], ["accuracy"]),  # the same name: the weighted one is logged as weighted_accuracy
    (None, ["accuracy", "sparse_categorical_crossentropy"]),  # alone: their own names, weighted
    (["accuracy"], ["accuracy", "sparse_categorical_crossentropy"]),
]


@pytest.mark.parametrize("metrics, weighted", CASES)
@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_fit_history_matches_keras(metrics, weighted, weighting):
    given = {"sample_weight": WEIGHTS} if weighting == "sample_weight" else {"class_weight": CLASS_WEIGHT}
    mine = ours(metrics, weighted).fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, **given)
    keras_history = theirs(metrics, weighted).fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                                                  **given)
    assert_logs_close(mine.history, keras_history.history, f"fit with {weighting}")


def test_weighted_accuracy_differs_from_the_unweighted_one():
    history = ours(["accuracy"], ["accuracy"]).fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                                                   sample_weight=WEIGHTS).history
    assert abs(history["accuracy"][0] - history["weighted_accuracy"][0]) > 1e-3


@pytest.mark.parametrize("metrics, weighted", CASES)
def test_evaluate_matches_keras(metrics, weighted):
    model, reference = ours(metrics, weighted), theirs(metrics, weighted)
    mine = model.evaluate(X, Y, sample_weight=WEIGHTS, batch_size=16, return_dict=True, verbose=0)
    keras_logs = reference.evaluate(X, Y, sample_weight=WEIGHTS, batch_size=16, return_dict=True, verbose=0)
    assert_logs_close(mine, keras_logs, "evaluate")
    # without sample weights a weighted metric equals its unweighted value
    plain = model.evaluate(X, Y, batch_size=16, return_dict=True, verbose=0)
    keras_plain = reference.evaluate(X, Y, batch_size=16, return_dict=True, verbose=0)
    assert_logs_close(plain, keras_plain, "evaluate without weights")
    # the list form: loss, then the metrics, then the weighted ones, as Keras orders them
    as_list = model.evaluate(X, Y, sample_weight=WEIGHTS, batch_size=16, verbose=0)
    keras_list = reference.evaluate(X, Y, sample_weight=WEIGHTS, batch_size=16, verbose=0)
    np.testing.assert_allclose(as_list, keras_list, **FLOAT32)
    assert model.metrics_names[0] == "loss" and sorted(model.metrics_names) == sorted(mine)


def test_validation_data_with_weights_matches_keras():
    validation = (X[:16], Y[:16], WEIGHTS[:16])
    mine = ours(["accuracy"], ["accuracy"]).fit(X[16:], Y[16:], batch_size=8, epochs=2, shuffle=False,
                                                verbose=0, validation_data=validation)
    keras_history = theirs(["accuracy"], ["accuracy"]).fit(X[16:], Y[16:], batch_size=8, epochs=2, shuffle=False,
                                                           verbose=0, validation_data=validation)
    assert_logs_close(mine.history, keras_history.history, "fit with weighted validation data")


def test_train_and_test_on_batch_match_keras():
    model, reference = ours(["accuracy"], ["accuracy"]), theirs(["accuracy"], ["accuracy"])
    mine = model.train_on_batch(X, Y, sample_weight=WEIGHTS, return_dict=True)
    keras_logs = reference.train_on_batch(X, Y, sample_weight=WEIGHTS, return_dict=True)
    assert_logs_close(mine, keras_logs, "train_on_batch")
    mine = model.test_on_batch(X, Y, sample_weight=WEIGHTS, return_dict=True)
    keras_logs = reference.test_on_batch(X, Y, sample_weight=WEIGHTS, return_dict=True)
    assert_logs_close(mine, keras_logs, "test_on_batch")


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_numba_weighs_as_numpy_does(weighting):
    pytest.importorskip("numba")
    given = {"sample_weight": WEIGHTS} if weighting == "sample_weight" else {"class_weight": CLASS_WEIGHT}
    runs = {}
    for backend in ("numpy", "numba"):
        weighted = ["accuracy", "sparse_categorical_crossentropy", npnet.metrics.SparseTopKCategoricalAccuracy(k=2)]
        model = ours(["accuracy"], weighted, backend=backend)
        assert model.backend_name == backend
        history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, **given).history
        runs[backend] = (history, model.evaluate(X, Y, sample_weight=WEIGHTS, return_dict=True, verbose=0))
    assert "weighted_accuracy" in runs["numba"][0]
    assert_logs_close(runs["numba"][0], runs["numpy"][0], "numba vs numpy history")
    assert_logs_close(runs["numba"][1], runs["numpy"][1], "numba vs numpy evaluate")


def test_early_stopping_reads_a_weighted_metrics_direction():
    model = ours(None, [npnet.metrics.AUC(name="auc")])
    assert npnet.callbacks.monitor_mode("val_auc", "auto", model) == "max"
    model = ours(["accuracy"], [npnet.metrics.SparseCategoricalCrossentropy()])
    assert npnet.callbacks.monitor_mode("sparse_categorical_crossentropy", "auto", model) == "min"


def test_refused_weighted_metrics_say_what_was_expected():
    with pytest.raises(TypeError, match=r"weighted_metrics must be a list.*received 'accuracy'"):
        ours(None, "accuracy")
    shared = npnet.metrics.SparseCategoricalAccuracy()
    with pytest.raises(ValueError, match="same metric objects"):
        ours([shared], [shared])
    with pytest.raises(ValueError, match="Unknown metric 'nope'"):
        ours(None, ["nope"])


def _compile_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["compile_config"]


def test_keras_files_keep_weighted_metrics_both_ways(tmp_path):
    weighted = ["accuracy", "sparse_categorical_accuracy"]
    model = ours(["accuracy"], weighted)
    model.save(tmp_path / "ours.keras")
    assert _compile_config(tmp_path / "ours.keras")["weighted_metrics"] == weighted
    back = npnet.models.load_model(tmp_path / "ours.keras")
    assert [m.name for m in back.weighted_metrics] == weighted
    assert back.metrics_names == ["loss", "accuracy", "weighted_accuracy", "sparse_categorical_accuracy"]
    in_keras = keras.models.load_model(tmp_path / "ours.keras")
    assert in_keras.get_compile_config()["weighted_metrics"] == weighted
    keras_logs = in_keras.evaluate(X, Y, sample_weight=WEIGHTS, return_dict=True, verbose=0)
    assert_logs_close(back.evaluate(X, Y, sample_weight=WEIGHTS, return_dict=True, verbose=0), keras_logs,
                      "npnet's file in both")

    theirs(None, ["accuracy"]).save(tmp_path / "theirs.keras")
    loaded = npnet.models.load_model(tmp_path / "theirs.keras")
    assert [m.name for m in loaded.weighted_metrics] == ["accuracy"] and loaded.metrics == []


@pytest.mark.parametrize("suffix", [".npnet", ".h5"])
def test_npnet_and_legacy_files_keep_weighted_metrics(tmp_path, suffix):
    model = ours(["accuracy"], ["accuracy"])
    model.save(tmp_path / f"m{suffix}")
    back = npnet.models.load_model(tmp_path / f"m{suffix}")
    assert back.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
    np.testing.assert_allclose(back.evaluate(X, Y, sample_weight=WEIGHTS, verbose=0),
                               model.evaluate(X, Y, sample_weight=WEIGHTS, verbose=0), rtol=1e-6)


def test_clone_model_keeps_weighted_metrics():
    clone = npnet.models.clone_model(ours(["accuracy"], ["accuracy"]))
    assert clone.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
