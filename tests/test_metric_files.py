"""Compiled metrics survive files as Keras keeps them: a metric object's class, name and
settings (not only its name), a loss used as a metric, and Keras's strings. In npnet's three
formats, from Keras's ``.keras`` files and into them."""

import numpy as np
import pytest
import keras

import npnet
from npnet.layers import Dense

X = np.random.default_rng(2).random((48, 5)).astype("float32")
Y = (X[:, 0] + 0.3 * X[:, 1] > 0.7).astype("float32")[:, None]


def metric_list(m, losses):
    """The TF imbalanced-data tutorial's kind of list, with settings away from the defaults."""
    return [m.BinaryCrossentropy(name="cross entropy", label_smoothing=0.1), m.MeanSquaredError(name="Brier score"),
            m.TruePositives(name="tp"), m.AUC(name="prc", curve="PR", num_thresholds=50),
            m.Precision(name="precision", thresholds=[0.3, 0.6]), m.Recall(name="recall_at_0.7", thresholds=0.7),
            m.BinaryAccuracy(name="accuracy", threshold=0.4),
            losses.BinaryCrossentropy(name="bce_as_metric"), "mse", "kl_divergence"]


def ours():
    npnet.utils.set_random_seed(3)
    model = npnet.Sequential([npnet.Input(shape=(5,)), Dense(6, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=metric_list(npnet.metrics, npnet.losses))
    model.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    return model


def assert_same_evaluation(model, reference):
    """Both evaluate X, Y to the same keys and values (float32 rounding apart)."""
    expected = reference.evaluate(X, Y, verbose=0, return_dict=True)
    got = model.evaluate(X, Y, verbose=0, return_dict=True)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=1e-5, atol=1e-6,
                                   err_msg=key)


def settings(model):
    return [(type(m).__name__, m.name, m.get_config()) for m in model.metrics]


@pytest.mark.parametrize("suffix", [".keras", ".npnet", ".h5"])
def test_metric_objects_come_back_with_their_class_name_and_settings(tmp_path, suffix):
    model = ours()
    model.save(tmp_path / f"m{suffix}")
    loaded = npnet.models.load_model(tmp_path / f"m{suffix}")
    assert settings(loaded) == settings(model)
    expected = model.evaluate(X, Y, verbose=0, return_dict=True)
    got = loaded.evaluate(X, Y, verbose=0, return_dict=True)
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=key)


def test_a_keras_file_with_metric_objects_loads_and_evaluates_as_keras(tmp_path):
    theirs = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(6, activation="relu"),
                               keras.layers.Dense(1, activation="sigmoid")])
    theirs.compile(optimizer="adam", loss="binary_crossentropy", metrics=metric_list(keras.metrics, keras.losses))
    theirs.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    theirs.save(tmp_path / "k.keras")
    loaded = npnet.models.load_model(tmp_path / "k.keras")
    assert_same_evaluation(loaded, theirs)


def test_keras_reads_the_metric_objects_npnet_writes(tmp_path):
    model = ours()
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert_same_evaluation(theirs, model)


def test_a_loss_used_as_a_metric_is_logged_under_its_name_as_in_keras():
    """The TF overfitting tutorial's metrics=[BinaryCrossentropy(from_logits=True, name=...)]."""
    histories = []
    for lib in (npnet, keras):
        model = lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(1)])
        model.compile(optimizer="sgd", loss=lib.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[lib.losses.BinaryCrossentropy(from_logits=True, name="bce"), "accuracy"])
        histories.append(model.fit(X, Y, epochs=1, verbose=0).history)
    assert sorted(histories[0]) == sorted(histories[1]) == ["accuracy", "bce", "loss"]
