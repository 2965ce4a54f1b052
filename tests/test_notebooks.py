"""The notebooks in docs/notebooks run top to bottom (nbclient, a real Jupyter kernel).

They run on the first 2000 images of each set (NPNET_NOTEBOOK_SAMPLES, which the notebooks
read; unset, they use the whole data set). A cell that raises fails its test. Each test also
checks what the notebook shows: its figures and the numbers its prose relies on. The time each
notebook took is printed (``pytest -s``), never asserted.
"""

import base64
import os
import pathlib
import time

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "docs" / "notebooks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def execute(name, tmp_path, monkeypatch):
    """Run the notebook in a fresh kernel that imports this checkout's npnet; return
    ``(text of every output, list of PNG bytes, [(cell source, its text)])``."""
    monkeypatch.setenv("NPNET_NOTEBOOK_SAMPLES", "2000")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"\n{name}: executed in {time.perf_counter() - started:.1f} s")
    texts, pngs, cells = [], [], []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell_text = []
        for output in cell.outputs:
            if output.output_type == "stream":
                cell_text.append(output.text)
            elif "data" in output:
                if "image/png" in output.data:
                    pngs.append(base64.b64decode(output.data["image/png"]))
                cell_text.append(output.data.get("text/plain", ""))
        texts += cell_text
        cells.append((cell.source, "".join(cell_text)))
    assert f"from {ROOT / 'npnet'}" in "".join(texts), "the kernel imported another npnet"
    assert cells[0][1] == "", "the install cell printed something: it must not run when npnet imports"
    for png in pngs:
        assert png[:8] == PNG_SIGNATURE and len(png) > 5000
    return "".join(texts), pngs, cells


def test_every_notebook_is_tested():
    tested = {"basic_classification.ipynb", "inside_backprop.ipynb", "exercises.ipynb",
              "exercises_solutions.ipynb"}
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == tested


def test_basic_classification_follows_the_seed(tmp_path, monkeypatch):
    text, pngs, cells = execute("basic_classification.ipynb", tmp_path, monkeypatch)
    # the image with its colour bar, the 5x5 grid, images 0 and 12, the 5x3 grid, the single image
    assert len(pngs) == 6
    figure_calls = [source for source, _ in cells if "display(plot." in source]
    expected = ["show_image(train_images[0])", "image_grid(", "prediction_pair(0,", "prediction_pair(12,",
                "prediction_grid(", "single_prediction(predictions_single[0]"]
    assert len(figure_calls) == len(expected)
    for source, call in zip(figure_calls, expected):
        assert call in source
    assert "Epoch 5/5" in text and "Test accuracy:" in text
    assert "(28, 28)\n(1, 28, 28)\n" in text  # img = test_images[0], then a batch of one
    assert "(1, 10)\n" in text
    assert "np.argmax(predictions[0]): 9 Ankle boot" in text


def test_inside_backprop(tmp_path, monkeypatch):
    text, pngs, _ = execute("inside_backprop.ipynb", tmp_path, monkeypatch)
    assert len(pngs) == 3  # healthy, learning rate 10, sigmoid stack
    gap = float(text.split("largest difference between the weights: ")[1].split()[0])
    assert gap < 1e-6  # the step by hand is fit's step
    assert "PASSED" in text and "One training step on 32 samples" in text
    assert "general  dL/dz: [[0. 0. 0.]]" in text  # the clipped general path loses the gradient
    first, last = (float(v.rstrip(",")) for v in
                   text.split("gradient norm, first hidden layer ")[1].split("\n")[0].split(" last hidden layer "))
    assert first < last / 100


def test_exercises_report_each_unwritten_function(tmp_path, monkeypatch):
    text, _, _ = execute("exercises.ipynb", tmp_path, monkeypatch)
    for name in ("dense_backward", "relu_backward", "softmax_crossentropy_backward", "adam_update"):
        assert f"✗ {name}: your function raised NotImplementedError" in text
    assert "Finish exercises 1 and 2 first" in text and "✓" not in text


def test_exercises_solutions_pass_every_check(tmp_path, monkeypatch):
    text, _, _ = execute("exercises_solutions.ipynb", tmp_path, monkeypatch)
    assert text.count("✓ ") == 4 and "✗" not in text
    assert "largest difference between the two models' weights: 0.0" in text
