"""npnet against the seed tutorial's tf.keras model, for every backend.

The step-level checks of ``python -m reference.crosscheck`` run here as tests — forward
probabilities, loss and gradients, one and 100 Adam steps, predictions — with the same
functions and thresholds as the report, plus a quick statistical check (one seed, one epoch
per side) and the reference package's own pieces (tutorial model, weight transfer, CLI).

TensorFlow is imported at the top on purpose: without it this module fails at collection.
It is never skipped. The data is the real Fashion-MNIST, read through npnet's loader.
"""

import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402,F401  (must fail, not skip, when TensorFlow is missing)

import npnet  # noqa: E402
from reference import compare, crosscheck, keras_model, npnet_model  # noqa: E402
from reference import data as data_module  # noqa: E402

pytestmark = pytest.mark.reference

BACKENDS = ["numpy", "numba"]
THRESHOLDS = crosscheck.Thresholds()


@pytest.fixture(scope="module")
def data():
    return data_module.load()


def assert_all_passed(results):
    """Fail with the report's own table (ours next to theirs) when any check failed."""
    assert results, "the check returned no results"
    failed = [r for r in results if not r.passed]
    details = "\n".join(r.detail for r in results if r.detail)
    assert not failed, "\n" + crosscheck.results_table(results) + ("\n" + details if details else "")


# ----------------------------------------------------------------------- step-level checks


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_probabilities_match_from_identical_weights(backend, data):
    results = crosscheck.check_forward(backend, data, THRESHOLDS)
    assert_all_passed(results)
    assert results[0].measured <= THRESHOLDS.forward


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_and_gradients_match_gradient_tape(backend, data):
    results = crosscheck.check_loss_and_gradients(backend, data, THRESHOLDS)
    assert_all_passed(results)
    names = [r.name for r in results]
    assert names[0].startswith("loss")
    if backend == "numpy":  # every parameter's gradient was compared
        assert [n.split()[1] for n in names[1:]] == ["dense/kernel", "dense/bias",
                                                      "dense_1/kernel", "dense_1/bias"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_steps", [1, 100])
def test_adam_steps_match_keras_fit_without_shuffling(backend, n_steps, data):
    """Same initial weights, same batches in the same order: weights within 1e-5 (the
    default step seed; see ``crosscheck.STEP_SEED`` for why the seed is fixed)."""
    assert_all_passed(crosscheck.check_adam_steps(backend, data, THRESHOLDS, n_steps))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [2, 3])
def test_trajectories_are_exact_until_a_relu_kink_crossing(backend, seed, data):
    """For seeds where 100-step trajectories separate, they were exact up to a kink crossing.

    Seeds 2 and 3 are ones where (on the numpy backend, measured) a hidden pre-activation
    comes out positive on one side and negative on the other within 100 steps. The property
    asserted holds for any seed: before the first such crossing every step stays within the
    step threshold; that is, divergence is float32 chaos, not arithmetic. (If no crossing
    happens for a backend, all 100 steps must be within the threshold.)
    """
    trajectory = crosscheck.lockstep_trajectory(backend, data, 100, seed)
    first = next((i for i, (_, crossing) in enumerate(trajectory) if crossing is not None), len(trajectory))
    before = [difference for difference, _ in trajectory[:first]]
    assert before, f"seed {seed}: a kink crossing already in step 1"
    assert max(before) <= THRESHOLDS.step, (
        f"seed {seed} [{backend}]: max|Δw| {max(before):.3e} before the first kink crossing "
        f"(step {first + 1}) exceeds {THRESHOLDS.step}: per-step |Δw| "
        + ", ".join(f"{d:.1e}" for d in before[:20]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_predictions_shapes_dtypes_and_values(backend, data):
    results = crosscheck.check_predictions(backend, data, THRESHOLDS)
    assert_all_passed(results)
    assert [r.ours for r in results[:2]] == ["(10000, 10) float32", "(1, 10) float32"]


def test_structure_parameter_count_and_summary_rows():
    results = crosscheck.check_structure()
    assert_all_passed(results)
    assert results[0].ours == results[0].theirs == "101,770"
    assert "Total params: 101,770" in results[1].detail


# ----------------------------------------------------------------------- statistics


@pytest.fixture(scope="module")
def keras_one_epoch(data):
    return crosscheck.train_keras(data, seed=0, epochs=1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_quick_statistical_check_one_epoch(backend, data, keras_one_epoch, monkeypatch):
    """One seed, one epoch per side, each with its own initial weights and shuffles.

    The band is the report's quick band (``crosscheck.QUICK_ACCURACY_PP``, 3 points): single
    1-epoch runs differ by ~1.5 points (sd) between seeds, so this catches a broken training
    loop, not a subtle error; the step-level tests above catch those.
    """
    monkeypatch.setattr(crosscheck, "train_keras", lambda *args: keras_one_epoch)
    thresholds = crosscheck.Thresholds(accuracy_pp=crosscheck.QUICK_ACCURACY_PP)
    results, runs = crosscheck.check_training([backend], data, [0], 1, thresholds, quick=True,
                                              log=lambda *args, **kwargs: None)
    assert_all_passed(results)
    (ours_accuracy, _), = runs[backend]
    (theirs_accuracy, _), = runs["keras"]
    assert ours_accuracy >= 0.80 and theirs_accuracy >= 0.80, (ours_accuracy, theirs_accuracy)


# ----------------------------------------------------------------------- the reference package


def test_tutorial_model_is_built_exactly_as_the_tutorial_without_the_input_shape_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras_model.tutorial_model()
    assert not [w for w in caught if "input_shape" in str(w.message)], [str(w.message) for w in caught]
    flatten, hidden, output = model.layers
    assert type(flatten).__name__ == "Flatten" and model.input_shape == (None, 28, 28)
    assert (hidden.units, hidden.activation.__name__) == (128, "relu")
    assert (output.units, output.activation.__name__) == (10, "softmax")
    assert type(model.optimizer).__name__ == "Adam"
    assert model.loss == "sparse_categorical_crossentropy"
    assert model.count_params() == npnet_model.TUTORIAL_PARAMS


def test_input_shape_warning_is_silenced_only_while_building():
    with keras_model.tutorial_input_shape_allowed():
        pass
    with pytest.warns(UserWarning, match="input_shape"):
        tf.keras.layers.Flatten(input_shape=(28, 28))


def test_weights_go_both_ways_bit_for_bit():
    npnet.utils.set_random_seed(5)
    ours = npnet_model.tutorial_model("numpy")
    theirs = keras_model.npnet_to_keras(ours, keras_model.tutorial_model())
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    tf.keras.utils.set_random_seed(6)
    other = keras_model.tutorial_model()
    keras_model.keras_to_npnet(other, ours)
    for a, b in zip(ours.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_dense_stacks_have_twins_that_compute_the_same(backend):
    """A deeper stack with every activation: the Keras twin of an npnet model, and back."""
    units, activations = (64, 32, 16, 10), ("tanh", "sigmoid", "relu", "softmax")
    npnet.utils.set_random_seed(7)
    ours = npnet_model.dense_stack(units, activations, (12, 12), backend=backend)
    theirs = keras_model.keras_twin(ours)
    assert [layer.units for layer in theirs.layers[1:]] == list(units)
    x = np.random.default_rng(8).uniform(size=(50, 12, 12)).astype(np.float32)
    compare.assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-6,
                         what="probabilities of a (64 tanh, 32 sigmoid, 16 relu, 10 softmax) stack")
    back = keras_model.npnet_twin(theirs, backend=backend)
    assert npnet_model.describe(back) == (units, activations, (12, 12))
    for a, b in zip(back.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weight_transfer_rejects_a_different_architecture():
    ours = npnet_model.dense_stack((32, 10), ("relu", "softmax"))
    with pytest.raises(ValueError, match=r"Keras model expects 4 arrays of shapes \[\(784, 128\)"):
        keras_model.npnet_to_keras(ours, keras_model.tutorial_model())
    with pytest.raises(ValueError, match=r"npnet model expects 4 arrays of shapes \[\(784, 32\)"):
        keras_model.keras_to_npnet(keras_model.tutorial_model(), ours)


def test_stack_descriptions_are_validated():
    with pytest.raises(ValueError, match="one activation per Dense layer"):
        npnet_model.dense_stack((128, 10), ("relu",))
    with pytest.raises(ValueError, match="positive integers"):
        keras_model.dense_stack((128, 0), ("relu", "softmax"))


def test_both_sides_read_identical_arrays(data):
    assert data.x_train.dtype == data.x_test.dtype == np.float32
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    np.testing.assert_array_equal(data.y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    (raw_train, _), _ = npnet.datasets.fashion_mnist.load_data()
    np.testing.assert_array_equal(data.x_train[:100], np.float32(raw_train[:100] / 255.0))
    with pytest.raises(TypeError, match="expected uint8 images"):
        data_module.scale_images(data.x_train[:2])


# ----------------------------------------------------------------------- the report itself


def test_report_exits_non_zero_and_writes_json_when_a_check_fails(data, monkeypatch, tmp_path, capsys):
    """The whole CLI on a small slice of the data, with an impossible forward threshold.

    The slice keeps it fast (3,200 training images: the 100-step check still has its 100
    batches); ``--accuracy-pp 100`` because 100 steps of training say nothing about accuracy.
    """
    small = data_module.Data(data.x_train[:3200], data.y_train[:3200], data.x_test[:500], data.y_test[:500])
    monkeypatch.setattr(data_module, "load", lambda path=None: small)
    path = tmp_path / "report.json"
    code = crosscheck.main(["--quick", "--backend", "numpy", "--forward-tol", "1e-12",
                            "--accuracy-pp", "100", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    report = json.loads(path.read_text())
    assert report["passed"] is False and report["mode"] == "QUICK"
    failed = {r["name"] for r in report["results"] if not r["passed"]}
    assert failed == {"forward probabilities (1000 test images)",
                      "predict(test set) probabilities, same weights"}, failed
    assert report["thresholds"]["forward"] == 1e-12
    assert set(report["versions"]) >= {"tensorflow", "keras", "numpy", "numba", "npnet"}
    assert report["training_runs"]["keras"][0]["fit_seconds"] > 0
    assert "FAILED: forward probabilities" in out and "tf.keras (theirs)" in out
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_report_options_and_their_defaults():
    full = crosscheck.parse_args([])
    assert (full.seeds, full.epochs, full.accuracy_pp, full.backend) == (3, 5, 0.5, "all")
    assert (full.forward_tol, full.gradient_tol, full.step_tol) == (1e-6, 1e-6, 1e-5)
    quick = crosscheck.parse_args(["--quick"])
    assert (quick.seeds, quick.epochs, quick.accuracy_pp) == (1, 1, crosscheck.QUICK_ACCURACY_PP)
    assert crosscheck.parse_args(["--quick", "--seeds", "2", "--accuracy-pp", "1"]).seeds == 2
    with pytest.raises(SystemExit):
        crosscheck.parse_args(["--seeds", "0"])
    for bad in (["--step-tol", "-1"], ["--gradient-tol", "nan"], ["--step-seed", "-1"],
                ["--json", "/no/such/directory/report.json"]):
        with pytest.raises(SystemExit):
            crosscheck.parse_args(bad)


def test_table_printer_pads_columns():
    table = crosscheck.format_table(["a", "bb"], [["xxx", "1"], ["y", "22"]])
    assert table.splitlines() == ["a    bb", "---  --", "xxx  1", "y    22"]
    assert crosscheck.side_by_side("ab\nc", "X\nY\nZ", gap=1).splitlines() == ["ab X", "c  Y", "   Z"]
