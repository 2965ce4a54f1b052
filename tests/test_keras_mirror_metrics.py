"""Mirror tests: npnet's metrics beside keras.metrics, batch by batch.

Each metric object is fed the same batches (with and without sample weights) as the Keras
one and the results compared after every batch, then after ``reset_state``; names (the
history keys) and the resolution of ``'accuracy'`` are compared with what ``keras.Model``
logs. TensorFlow is imported at the top: without it these tests fail rather than skip.
"""

import re

import numpy as np
import pytest
import tensorflow as tf  # noqa: F401  (Keras's backend)
import keras

from npnet import metrics

pytestmark = pytest.mark.reference

K = 6


def rng(seed):
    return np.random.default_rng(seed)


def batches(kind, seed=0, n_batches=3, n=10):
    """Batches (y_true, y_pred) of ``kind``: sparse / categorical / binary / multilabel / regression."""
    out = []
    for b in range(n_batches):
        r = rng(seed + b)
        if kind in ("sparse", "categorical"):
            logits = r.normal(size=(n, K)).astype(np.float32)
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            labels = r.integers(0, K, size=n)
            out.append((labels if kind == "sparse" else np.eye(K, dtype=np.float32)[labels], p))
        elif kind in ("binary", "multilabel"):
            m = 1 if kind == "binary" else 3
            y = r.integers(0, 2, size=(n, m)).astype(np.float32)
            p = np.clip(r.uniform(size=(n, m)) * 0.7 + y * 0.3, 0, 1).astype(np.float32)
            p.flat[0] = 0.5  # exactly at the threshold
            out.append((y[:, 0] if kind == "binary" and b == 1 else y, p))
        else:
            y_true = r.normal(size=(n, 2)).astype(np.float32)
            if kind == "regression with zeros":
                y_true[0, 0] = 0.0  # MAPE's epsilon and MSLE's clipping at work
                y_true[1] = np.abs(y_true[1])
                y_true[2] = 0.0  # a zero vector: cosine similarity's norm held at its bound
            out.append((y_true, r.normal(size=(n, 2)).astype(np.float32)))
    return out


PAIRS = [
    ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy, keras.metrics.SparseCategoricalAccuracy, "sparse", {}),
    ("categorical_accuracy", metrics.CategoricalAccuracy, keras.metrics.CategoricalAccuracy, "categorical", {}),
    ("binary_accuracy", metrics.BinaryAccuracy, keras.metrics.BinaryAccuracy, "binary", {}),
    ("binary_accuracy 0.7", metrics.BinaryAccuracy, keras.metrics.BinaryAccuracy, "multilabel", {"threshold": 0.7}),
    ("top-5", metrics.SparseTopKCategoricalAccuracy, keras.metrics.SparseTopKCategoricalAccuracy, "sparse", {}),
    ("top-2", metrics.SparseTopKCategoricalAccuracy, keras.metrics.SparseTopKCategoricalAccuracy, "sparse", {"k": 2}),
    ("top-3 one-hot", metrics.TopKCategoricalAccuracy, keras.metrics.TopKCategoricalAccuracy, "categorical", {"k": 3}),
    ("mse", metrics.MeanSquaredError, keras.metrics.MeanSquaredError, "regression", {}),
    ("mae", metrics.MeanAbsoluteError, keras.metrics.MeanAbsoluteError, "regression", {}),
    ("rmse", metrics.RootMeanSquaredError, keras.metrics.RootMeanSquaredError, "regression", {}),
    ("mape", metrics.MeanAbsolutePercentageError, keras.metrics.MeanAbsolutePercentageError,
     "regression with zeros", {}),
    ("msle", metrics.MeanSquaredLogarithmicError, keras.metrics.MeanSquaredLogarithmicError,
     "regression with zeros", {}),
    ("r2", metrics.R2Score, keras.metrics.R2Score, "regression", {}),
    ("r2 per column", metrics.R2Score, keras.metrics.R2Score, "regression", {"class_aggregation": None}),
    ("r2 variance weighted adjusted", metrics.R2Score, keras.metrics.R2Score, "regression",
     {"class_aggregation": "variance_weighted_average", "num_regressors": 3}),
    ("logcosh", metrics.LogCoshError, keras.metrics.LogCoshError, "regression", {}),
    ("precision", metrics.Precision, keras.metrics.Precision, "binary", {}),
    ("precision multilabel", metrics.Precision, keras.metrics.Precision, "multilabel", {"thresholds": [0.3, 0.6]}),
    ("recall", metrics.Recall, keras.metrics.Recall, "multilabel", {}),
    ("recall class 1", metrics.Recall, keras.metrics.Recall, "multilabel", {"class_id": 1}),
    ("true positives", metrics.TruePositives, keras.metrics.TruePositives, "binary", {}),
    ("false positives 0.3 0.6", metrics.FalsePositives, keras.metrics.FalsePositives, "multilabel",
     {"thresholds": [0.3, 0.6]}),
    ("true negatives", metrics.TrueNegatives, keras.metrics.TrueNegatives, "multilabel", {"thresholds": 0.7}),
    ("false negatives", metrics.FalseNegatives, keras.metrics.FalseNegatives, "binary", {}),
    ("auc", metrics.AUC, keras.metrics.AUC, "binary", {}),
    ("auc multilabel", metrics.AUC, keras.metrics.AUC, "multilabel", {}),
    ("auc PR", metrics.AUC, keras.metrics.AUC, "multilabel", {"curve": "PR"}),
    ("auc PR majoring", metrics.AUC, keras.metrics.AUC, "multilabel", {"curve": "PR", "summation_method": "majoring"}),
    ("auc 7 minoring", metrics.AUC, keras.metrics.AUC, "binary", {"num_thresholds": 7, "summation_method": "minoring"}),
    ("accuracy (equality)", metrics.Accuracy, keras.metrics.Accuracy, "binary", {}),
    ("binary crossentropy", metrics.BinaryCrossentropy, keras.metrics.BinaryCrossentropy, "multilabel", {}),
    ("binary crossentropy logits", metrics.BinaryCrossentropy, keras.metrics.BinaryCrossentropy, "multilabel",
     {"from_logits": True, "label_smoothing": 0.1}),
    ("categorical crossentropy", metrics.CategoricalCrossentropy, keras.metrics.CategoricalCrossentropy,
     "categorical", {"label_smoothing": 0.2}),
    ("categorical crossentropy logits", metrics.CategoricalCrossentropy, keras.metrics.CategoricalCrossentropy,
     "categorical", {"from_logits": True}),
    ("sparse crossentropy", metrics.SparseCategoricalCrossentropy, keras.metrics.SparseCategoricalCrossentropy,
     "sparse", {}),
    ("sparse crossentropy logits", metrics.SparseCategoricalCrossentropy,
     keras.metrics.SparseCategoricalCrossentropy, "sparse", {"from_logits": True}),
    ("kl divergence", metrics.KLDivergence, keras.metrics.KLDivergence, "categorical", {}),
    ("kl divergence of 0/1 rows", metrics.KLDivergence, keras.metrics.KLDivergence, "multilabel", {}),
    ("poisson", metrics.Poisson, keras.metrics.Poisson, "multilabel", {}),
    ("hinge 0/1", metrics.Hinge, keras.metrics.Hinge, "multilabel", {}),
    ("hinge", metrics.Hinge, keras.metrics.Hinge, "regression", {}),
    ("squared hinge 0/1", metrics.SquaredHinge, keras.metrics.SquaredHinge, "multilabel", {}),
    ("squared hinge", metrics.SquaredHinge, keras.metrics.SquaredHinge, "regression", {}),
    ("categorical hinge", metrics.CategoricalHinge, keras.metrics.CategoricalHinge, "categorical", {}),
    ("cosine similarity", metrics.CosineSimilarity, keras.metrics.CosineSimilarity, "regression", {}),
    ("cosine similarity of zeros", metrics.CosineSimilarity, keras.metrics.CosineSimilarity,
     "regression with zeros", {}),
]


@pytest.mark.parametrize("what, ours_cls, theirs_cls, kind, kwargs", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_metric_matches_keras_batch_by_batch(what, ours_cls, theirs_cls, kind, kwargs, weighted):
    ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
    # Keras numbers the names of later instances (precision_1, ...): compare the base name
    assert ours.name == re.sub(r"_\d+$", "", theirs.name), f"{what}: name {ours.name!r} vs Keras's {theirs.name!r}"
    for i, (y_true, y_pred) in enumerate(batches(kind)):
        if kind == "binary" and what.startswith("accuracy"):
            y_pred = (y_pred > 0.5).astype(np.float32)  # so that equality happens
        weights = rng(50 + i).uniform(0, 2, size=y_pred.shape[0]).astype(np.float32) if weighted else None
        ours.update_state(y_true, y_pred, sample_weight=weights)
        theirs.update_state(y_true, y_pred, sample_weight=weights)
        np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-6, atol=1e-7,
                                   err_msg=f"{what} after batch {i}")
    ours.reset_state()
    theirs.reset_state()
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), err_msg=f"{what} after reset")


def test_auc_from_logits_matches_keras():
    ours, theirs = metrics.AUC(from_logits=True), keras.metrics.AUC(from_logits=True)
    y = rng(3).integers(0, 2, size=(40, 1)).astype(np.float32)
    z = (rng(4).normal(size=(40, 1)) * 3 + y).astype(np.float32)
    np.testing.assert_allclose(ours(y, z), theirs(y, z).numpy(), rtol=1e-6)


def test_metric_functions_match_keras_per_sample():
    (y_sparse, p), = batches("sparse", n_batches=1)
    (y_bin, q), = batches("multilabel", n_batches=1)
    for ours, theirs, y, pred in [
        (metrics.sparse_categorical_accuracy, keras.metrics.sparse_categorical_accuracy, y_sparse, p),
        (metrics.categorical_accuracy, keras.metrics.categorical_accuracy, np.eye(K)[y_sparse], p),
        (metrics.binary_accuracy, keras.metrics.binary_accuracy, y_bin, q),
        (metrics.sparse_top_k_categorical_accuracy, keras.metrics.sparse_top_k_categorical_accuracy, y_sparse, p),
        (metrics.mean_squared_error, keras.metrics.mean_squared_error, y_bin, q),
        (metrics.mean_absolute_percentage_error, keras.metrics.mean_absolute_percentage_error, y_bin, q),
        (metrics.mean_squared_logarithmic_error, keras.metrics.mean_squared_logarithmic_error, y_bin, q - 0.5),
        (metrics.log_cosh, keras.metrics.log_cosh, y_bin, q * 40),
    ]:
        np.testing.assert_allclose(ours(y, pred), np.asarray(theirs(y, pred)), rtol=1e-6, err_msg=ours.__name__)


@pytest.mark.parametrize("kind, expected", [("sparse", "sparse_categorical_accuracy"),
                                            ("categorical", "categorical_accuracy"),
                                            ("binary", "binary_accuracy"),
                                            ("multilabel", "categorical_accuracy")])
@pytest.mark.parametrize("written", ["accuracy", "acc"])
def test_accuracy_string_resolves_as_keras_and_keeps_the_name(kind, expected, written):
    """Keras picks the accuracy from the shapes (a multi-label output gets categorical
    accuracy, as in Keras) and logs it under the name written: compare with keras.Model."""
    y_true, y_pred = batches(kind, n_batches=1)[0]
    model = keras.Sequential([keras.Input(y_pred.shape[1:]), keras.layers.Identity()])
    model.compile(loss="mse" if kind != "sparse" else "sparse_categorical_crossentropy", metrics=[written])
    logs = model.evaluate(y_pred, y_true, verbose=0, return_dict=True)
    ours = metrics.get(written, None)
    ours.update_state(y_true, y_pred)
    assert ours.name == written and written in logs
    assert ours.kind == expected
    np.testing.assert_allclose(ours.result(), logs[written], rtol=1e-6)


@pytest.mark.parametrize("identifier", ["mse", "mae", "MSE", "mean_squared_error", "root_mean_squared_error",
                                        "RootMeanSquaredError", "mape", "MAPE", "mean_absolute_percentage_error",
                                        "msle", "MSLE", "mean_squared_logarithmic_error", "log_cosh_error",
                                        "LogCoshError", "r2_score", "R2Score", "binary_accuracy", "binary_crossentropy",
                                        "sparse_top_k_categorical_accuracy", "precision", "recall", "auc",
                                        "AUC", "Precision", "categorical_accuracy", "true_positives",
                                        "FalseNegatives"])
def test_metric_strings_are_logged_under_keras_history_keys(identifier):
    y_true, y_pred = batches("binary", n_batches=1)[0]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    model.compile(loss="mse", metrics=[identifier])
    keras_keys = set(model.evaluate(y_pred, y_true, verbose=0, return_dict=True)) - {"loss"}
    assert {metrics.get(identifier).name} == keras_keys


def test_metric_objects_and_functions_keep_their_names():
    def my_metric(y_true, y_pred):
        return np.abs(y_true - y_pred).max(axis=-1)

    assert metrics.get(metrics.AUC(name="roc")).name == "roc"
    wrapped = metrics.get(my_metric)
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "my_metric"
    wrapped.update_state(np.zeros((2, 2)), np.array([[1.0, 3.0], [2.0, 0.0]]))
    assert wrapped.result() == 2.5
    keras_wrapped = keras.metrics.MeanMetricWrapper(my_metric)
    keras_wrapped.update_state(np.zeros((2, 2)), np.array([[1.0, 3.0], [2.0, 0.0]]))
    # Keras numbers a name already used in the process (mean_metric_wrapper_3): compare the base
    assert re.sub(r"_\d+$", "", keras_wrapped.name) == metrics.MeanMetricWrapper(my_metric).name == "mean_metric_wrapper"
    assert float(keras_wrapped.result()) == 2.5


def test_subclassed_metric_follows_the_protocol():
    class Largest(metrics.Metric):
        def reset_state(self):
            self.largest = 0.0

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.largest = max(self.largest, float(np.max(y_pred)))

        def result(self):
            return self.largest

    metric = Largest()
    assert metric.name == "largest"
    assert metric(None, np.array([[0.2, 0.9]])) == 0.9
    metric.reset_state()
    assert metric.result() == 0.0


def test_keras_function_metric_is_refused_with_the_string_to_write():
    with pytest.raises(TypeError, match="metrics=\\['mean_squared_error'\\]"):
        metrics.get(keras.metrics.mean_squared_error)


def test_legacy_accuracy_count_correct_still_counts():
    y_true, y_pred = batches("sparse", n_batches=1)[0]
    assert metrics.Accuracy("sparse").count_correct(y_true, y_pred) == int((y_pred.argmax(1) == y_true).sum())
    y_bin, q = batches("binary", n_batches=1)[0]
    assert metrics.Accuracy("binary").count_correct(y_bin, q) == int(((q > 0.5) == y_bin).sum())


def test_keras_style_subclass_with_add_variable_matches_keras():
    """A metric written as the Keras guide writes one (state from add_variable after
    super().__init__(), result() returning the variable) works on npnet, NumPy for ops."""
    from keras import ops

    class OursTruePositives(metrics.Metric):
        def __init__(self, name="true_positives_count", **kwargs):
            super().__init__(name=name, **kwargs)
            self.hits = self.add_variable(shape=(), name="hits", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = (np.asarray(y_true).astype("int32") == np.argmax(y_pred, axis=1)).astype("float32")
            if sample_weight is not None:
                values = values * np.asarray(sample_weight, "float32")
            self.hits.assign_add(np.sum(values))

        def result(self):
            return self.hits

    class TheirsTruePositives(keras.metrics.Metric):
        def __init__(self, name="true_positives_count", **kwargs):
            super().__init__(name=name, **kwargs)
            self.hits = self.add_variable(shape=(), name="hits", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = ops.cast(ops.cast(y_true, "int32") == ops.cast(ops.argmax(y_pred, axis=1), "int32"), "float32")
            if sample_weight is not None:
                values = values * ops.cast(sample_weight, "float32")
            self.hits.assign_add(ops.sum(values))

        def result(self):
            return self.hits

    ours, theirs = OursTruePositives(), TheirsTruePositives()
    for i, (y_true, y_pred) in enumerate(batches("sparse")):
        weights = rng(i).uniform(0, 2, size=len(y_true)).astype(np.float32)
        ours.update_state(y_true, y_pred, sample_weight=weights)
        theirs.update_state(y_true, y_pred, sample_weight=weights)
        assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)
    ours.reset_state()
    theirs.reset_state()  # Keras's default reset: every variable back to its initializer
    assert float(ours.result()) == float(theirs.result()) == 0.0
    assert np.asarray(ours.result()).shape == () and ours.hits.numpy() == 0.0


def test_root_mean_squared_error_is_the_root_of_the_mean_over_all_batches():
    """Keras's RMSE averages the squared errors of every batch seen and then takes the root:
    two batches of errors 1 and 3 give sqrt(5), not the mean of the roots, 2."""
    ours = metrics.RootMeanSquaredError()
    ours.update_state(np.zeros((1, 1)), np.ones((1, 1)))
    ours.update_state(np.zeros((1, 1)), np.full((1, 1), 3.0))
    assert ours.result() == pytest.approx(np.sqrt(5.0))
    assert isinstance(ours.result(), float) and ours.get_config()["name"] == "root_mean_squared_error"


def test_keras_strings_keras_3_refuses_are_refused():
    """Keras 3 accepts 'log_cosh_error' and 'LogCoshError', not 'logcosh' (the metric's name)."""
    with pytest.raises(ValueError):
        keras.metrics.get("logcosh")
    with pytest.raises(ValueError, match="Unknown metric 'logcosh'"):
        metrics.get("logcosh")


REGRESSION_METRICS = ["root_mean_squared_error", "mape", "msle", "log_cosh_error", "r2_score", "mae"]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_regression_metrics_in_fit_and_evaluate_match_a_keras_model(backend):
    """compile(metrics=[...]) with the new names: the same history keys and values as a Keras
    model with the same weights, in fit (per epoch, batches of different sizes) and evaluate."""
    import npnet

    r = rng(7)
    x = r.normal(size=(30, 3)).astype(np.float32)
    y = np.abs(r.normal(size=(30, 2))).astype(np.float32)
    y[0, 0] = 0.0
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
    ours = npnet.Sequential([npnet.layers.Dense(4, activation="tanh"), npnet.layers.Dense(2)])
    ours.build((None, 3))
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=REGRESSION_METRICS)
    ours.compile(optimizer=npnet.optimizers.SGD(0.05), loss="mse", metrics=REGRESSION_METRICS, backend=backend)
    assert ours.backend_name == backend
    ours_h = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    theirs_h = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert set(ours_h) == set(theirs_h) == {"loss", *REGRESSION_METRICS}
    for key in theirs_h:
        np.testing.assert_allclose(ours_h[key], theirs_h[key], rtol=2e-5, err_msg=key)
    ours_e = ours.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    theirs_e = theirs.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert set(ours_e) == set(theirs_e)
    for key in theirs_e:
        np.testing.assert_allclose(ours_e[key], theirs_e[key], rtol=2e-5, err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["mean_absolute_percentage_error", "mean_squared_logarithmic_error", "log_cosh"])
def test_regression_metric_functions_are_their_losses_bit_for_bit(name, dtype):
    """As in Keras, the metric and the loss of one name are one function: a model's logged
    loss and metric of that name agree to the last bit, zero targets and large errors included."""
    from npnet import losses
    generator = rng(4)
    y_pred = (generator.normal(size=(16, 5)) * 60).astype(dtype)
    y_true = np.concatenate([np.zeros((4, 5)), generator.normal(size=(12, 5)) * 3]).astype(dtype)
    metric_values = getattr(metrics, name)(y_true, y_pred)
    loss_values = getattr(losses, name)(y_true, y_pred)  # keras.losses.<name>: per sample
    assert metric_values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(metric_values, loss_values)


@pytest.mark.parametrize("name", ["kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge",
                                  "cosine_similarity"])
def test_more_keras_metric_strings_resolve_and_log_under_their_names(name):
    """The strings of Keras 3's probabilistic, hinge and cosine metrics give the same class and
    history key as Keras's compile does."""
    ours, theirs = metrics.get(name), keras.metrics.get(name)
    assert type(ours).__name__ == type(theirs).__name__ and ours.name == name
    (y_true, y_pred), = batches("categorical", n_batches=1)
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [metrics.AUC, metrics.Precision, metrics.Recall, metrics.TruePositives])
def test_confusion_metrics_refuse_class_labels_for_several_outputs_clearly(cls):
    """Keras fails there too, deep in TensorFlow; npnet says what it expected and received."""
    (labels, probabilities), = batches("sparse", n_batches=1)
    with pytest.raises(ValueError, match=r"expects targets shaped like the outputs \(10, 6\); received \(10,\)"):
        cls().update_state(labels, probabilities)
