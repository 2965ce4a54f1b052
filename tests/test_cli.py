"""The ``npnet`` command: the tutorial end to end on the real data, its outputs and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import npnet
from npnet import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["sample.png", "grid25.png", "prediction_0.png", "prediction_12.png",
           "predictions_grid.png", "single_prediction.png", "training_curves.png",
           "confusion_matrix.png", "first_layer_weights.png", "diagnostics.png"]


@pytest.fixture(scope="module")
def tutorial_out(tmp_path_factory):
    """One real run of ``npnet tutorial --epochs 1 --out DIR`` (NumPy backend, seeded)."""
    out = tmp_path_factory.mktemp("tutorial")
    result = subprocess.run(
        [sys.executable, "-m", "npnet", "tutorial", "--epochs", "1", "--seed", "1",
         "--backend", "numpy", "--verbose", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_tutorial_prints_the_tutorials_steps(tutorial_out):
    _, stdout = tutorial_out
    assert "train_images.shape: (60000, 28, 28)" in stdout
    assert "test_images.shape: (10000, 28, 28)" in stdout
    assert "Total params: 101,770" in stdout
    assert "Epoch " not in stdout and "1875/1875 - " in stdout  # no header for one epoch, as Keras 3
    assert "Test accuracy: " in stdout
    assert "predictions.shape: (10000, 10) float32" in stdout
    assert "np.argmax(predictions[0]): 9 (Ankle boot)" in stdout
    # the seed's single image, test_images[0], as a batch of one, and its one row of results
    assert "img.shape: (1, 28, 28)   model.predict(img).shape: (1, 10)" in stdout
    assert "np.argmax(predictions_single[0]): 9 (Ankle boot); test_labels[0]: 9 (Ankle boot)" in stdout


def test_tutorial_out_writes_metrics_model_and_every_figure(tutorial_out):
    out, _ = tutorial_out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"] == {"epochs": 1, "batch_size": 32, "seed": 1, "backend": "numpy"}
    assert len(metrics["history"]["loss"]) == 1
    assert 0.80 <= metrics["test_accuracy"] <= 1.0
    assert metrics["timings"]["fit_s"] > 0
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    model = npnet.models.load_model(out / "model.npnet", backend="numpy")
    (_, _), (x_test, y_test) = npnet.datasets.fashion_mnist.load_data()
    accuracy = np.mean(model.predict(x_test.astype(np.float32) / 255, verbose=0).argmax(1) == y_test)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-9)


def test_no_plots_skips_the_figures(tmp_path):
    code = cli.main(["tutorial", "--epochs", "0", "--backend", "numpy", "--verbose", "0",
                     "--out", str(tmp_path), "--no-plots"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.npnet"]


@pytest.mark.parametrize("argv, message", [
    (["tutorial", "--epochs", "-1"], "expected a non-negative integer, received '-1'"),
    (["tutorial", "--batch-size", "0"], "expected a positive integer, received '0'"),
    (["tutorial", "--backend", "tensorflow"], "invalid choice: 'tensorflow'"),
    (["tutorial", "--verbose", "3"], "expected auto, 0, 1 or 2, received '3'"),
    (["train"], "invalid choice: 'train'"),
])
def test_bad_arguments_are_explained(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    from npnet.datasets import fashion_mnist
    monkeypatch.setenv("NPNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    monkeypatch.setattr(fashion_mnist, "KERAS_HOME", tmp_path / "keras")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    # exists and holds a file of the data's (a missing or empty --data-dir is refused up front), but a bad one
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.warns(fashion_mnist.DataWarning):
        code = cli.main(["tutorial", "--data-dir", str(tmp_path / "bad"), "--backend", "numpy"])
    assert code == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "NPNET_DATA_DIR" in err
