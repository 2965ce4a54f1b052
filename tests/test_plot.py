"""Tests for npnet.plot, through matplotlib's objects (axes, labels, bars, colours), not pixels."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # before anything could import pyplot; plot.py never does anyway

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from npnet import plot

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
BLUE, RED, GREY = to_rgba("blue"), to_rgba("red"), to_rgba("#777777")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# Small synthetic data
# --------------------------------------------------------------------------------------------

def make_data(n=20, n_classes=10, size=8, seed=0):
    """(images uint8 (n, size, size), labels (n,), predictions (n, n_classes) softmax rows)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 4.0
    predictions = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return images, labels, predictions


def one_hot_predictions(predicted, confidence=0.97, n_classes=10):
    """Rows where class `predicted[k]` gets `confidence` and the rest share what is left."""
    predicted = np.asarray(predicted)
    rows = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    rows[np.arange(len(predicted)), predicted] = confidence
    return rows


class FakeLayer:
    def __init__(self, weights):
        self._weights = weights

    def get_weights(self):
        return list(self._weights)


class FakeModel:
    """Keras-shaped stand-in: .layers with get_weights(), .input_shape (None, h, w)."""

    def __init__(self, input_shape=(None, 6, 6), units=5, with_dense=True):
        rng = np.random.default_rng(1)
        input_dim = int(np.prod(input_shape[1:]))
        self.input_shape = input_shape
        self.layers = [FakeLayer([])]  # Flatten
        if with_dense:
            self.layers.append(FakeLayer([rng.normal(size=(input_dim, units)), np.zeros(units)]))
            self.layers.append(FakeLayer([rng.normal(size=(units, 10)), np.zeros(10)]))


HISTORY = {"loss": [0.5, 0.4, 0.35], "accuracy": [0.8, 0.85, 0.87],
           "val_loss": [0.45, 0.42, 0.4], "val_accuracy": [0.83, 0.84, 0.85]}


def bar_colors(ax):
    return [tuple(patch.get_facecolor()) for patch in ax.patches]


# --------------------------------------------------------------------------------------------
# Lazy import, headless
# --------------------------------------------------------------------------------------------

def test_importing_npnet_plot_does_not_import_matplotlib():
    code = "import sys, npnet.plot; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_drawing_and_saving_never_import_pyplot(tmp_path):
    # pyplot owns global figure state and may pick an interactive backend; we never need it.
    code = (
        "import sys, numpy as np, npnet.plot as plot\n"
        "fig = plot.show_image(np.zeros((4, 4)))\n"
        f"plot.save_figure(fig, {str(tmp_path / 'x.png')!r})\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True False"


# --------------------------------------------------------------------------------------------
# The tutorial's figures
# --------------------------------------------------------------------------------------------

def test_show_image_has_image_and_colorbar_and_no_grid():
    images, _, _ = make_data(n=1)
    fig = plot.show_image(images[0])
    assert len(fig.axes) == 2  # the image and its colorbar
    image_ax = fig.axes[0]
    assert len(image_ax.images) == 1
    assert not any(line.get_visible() for line in image_ax.xaxis.get_gridlines())


def test_show_image_accepts_float_images():
    fig = plot.show_image(np.linspace(0, 1, 16).reshape(4, 4))
    np.testing.assert_allclose(fig.axes[0].images[0].get_clim(), (0, 1))


def test_image_grid_has_25_unlabelled_axes_named_by_class():
    images, labels, _ = make_data(n=30)
    fig = plot.image_grid(images, labels, CLASS_NAMES)
    assert len(fig.axes) == 25
    assert tuple(fig.get_size_inches()) == (10, 10)
    assert [ax.get_xlabel() for ax in fig.axes] == [CLASS_NAMES[label] for label in labels[:25]]
    for ax in fig.axes:
        assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
        assert ax.images[0].get_cmap().name == "binary"


def test_image_grid_other_sizes():
    images, labels, _ = make_data(n=6)
    assert len(plot.image_grid(images, labels, CLASS_NAMES, rows=2, cols=3).axes) == 6


def test_plot_image_label_is_blue_when_right():
    images, _, _ = make_data(n=3)
    predictions = one_hot_predictions([9, 9, 9])
    fig = plot.plot_image(0, predictions, [9, 9, 9], images, CLASS_NAMES)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Ankle boot 97% (Ankle boot)"
    assert to_rgba(ax.xaxis.label.get_color()) == BLUE
    assert ax.images[0].get_cmap().name == "binary"
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0


def test_plot_image_label_is_red_when_wrong():
    images, _, _ = make_data(n=3)
    predictions = one_hot_predictions([9, 5, 9], confidence=0.6)
    fig = plot.plot_image(1, predictions, [9, 7, 9], images, CLASS_NAMES)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Sandal 60% (Sneaker)"
    assert to_rgba(ax.xaxis.label.get_color()) == RED


def test_plot_value_array_bars_are_the_probabilities_predicted_red_true_blue():
    _, _, predictions = make_data(n=4)
    true_labels = np.argmax(predictions, axis=1)
    true_labels[2] = (true_labels[2] + 1) % 10  # sample 2 is a wrong prediction
    fig = plot.plot_value_array(2, predictions, true_labels)
    ax = fig.axes[0]
    np.testing.assert_allclose([patch.get_height() for patch in ax.patches], predictions[2])
    colors = bar_colors(ax)
    predicted = int(np.argmax(predictions[2]))
    assert colors[predicted] == RED
    assert colors[true_labels[2]] == BLUE
    others = set(range(10)) - {predicted, int(true_labels[2])}
    assert all(colors[k] == GREY for k in others)
    assert ax.get_ylim() == (0, 1)
    assert list(ax.get_xticks()) == list(range(10))


def test_plot_value_array_true_blue_wins_when_prediction_is_right():
    predictions = one_hot_predictions([3])
    ax = plot.plot_value_array(0, predictions, [3]).axes[0]
    colors = bar_colors(ax)
    assert colors[3] == BLUE
    assert RED not in colors


def test_plot_image_and_value_array_draw_into_a_given_axes():
    images, labels, predictions = make_data(n=3)
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot.plot_image(1, predictions, labels, images, CLASS_NAMES, ax=left) is fig
    assert plot.plot_value_array(1, predictions, labels, ax=right) is fig
    assert len(fig.axes) == 2
    assert len(left.images) == 1 and len(right.patches) == 10


def test_prediction_pair_is_image_left_bars_right():
    images, labels, predictions = make_data(n=13)
    fig = plot.prediction_pair(12, predictions, labels, images, CLASS_NAMES)
    assert tuple(fig.get_size_inches()) == (6, 3)
    image_ax, bars_ax = fig.axes
    assert len(image_ax.images) == 1 and image_ax.get_xlabel().endswith(f"({CLASS_NAMES[labels[12]]})")
    np.testing.assert_allclose([patch.get_height() for patch in bars_ax.patches], predictions[12])


def test_prediction_grid_has_15_pairs():
    images, labels, predictions = make_data(n=20)
    fig = plot.prediction_grid(predictions, labels, images, CLASS_NAMES)
    assert len(fig.axes) == 30
    assert tuple(fig.get_size_inches()) == (12, 10)
    image_axes, bar_axes = fig.axes[0::2], fig.axes[1::2]
    assert all(len(ax.images) == 1 for ax in image_axes)
    assert all(len(ax.patches) == 10 for ax in bar_axes)
    for i, ax in enumerate(image_axes):
        assert ax.get_xlabel().endswith(f"({CLASS_NAMES[labels[i]]})")
    np.testing.assert_allclose([p.get_height() for p in bar_axes[14].patches], predictions[14])
    assert type(fig.get_layout_engine()).__name__ == "TightLayoutEngine"


@pytest.mark.parametrize("shape", [(10,), (1, 10)])
def test_single_prediction_names_classes_on_rotated_x_axis(shape):
    probabilities = one_hot_predictions([4])[0].reshape(shape)
    ax = plot.single_prediction(probabilities, CLASS_NAMES).axes[0]
    tick_labels = ax.get_xticklabels()
    assert [label.get_text() for label in tick_labels] == CLASS_NAMES
    assert all(label.get_rotation() == 45 for label in tick_labels)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], probabilities.ravel())
    assert bar_colors(ax)[4] == RED  # no true label given: only the prediction is highlighted


def test_single_prediction_with_true_label_colours_it_blue():
    ax = plot.single_prediction(one_hot_predictions([4])[0], CLASS_NAMES, true_label=2).axes[0]
    assert bar_colors(ax)[4] == RED and bar_colors(ax)[2] == BLUE


# --------------------------------------------------------------------------------------------
# For learners
# --------------------------------------------------------------------------------------------

def test_training_curves_with_validation():
    fig = plot.training_curves(HISTORY)
    loss_ax, accuracy_ax = fig.axes
    for ax, key in [(loss_ax, "loss"), (accuracy_ax, "accuracy")]:
        train, validation = ax.get_lines()
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == HISTORY[key]
        assert list(validation.get_ydata()) == HISTORY[f"val_{key}"]
        assert [text.get_text() for text in ax.get_legend().get_texts()] == ["training", "validation"]
        assert ax.get_title()
    assert loss_ax.get_xlabel() == "Epoch"


def test_training_curves_without_validation_from_a_history_object():
    class History:
        history = {"loss": [0.5, 0.4], "accuracy": [0.8, 0.9]}

    fig = plot.training_curves(History())
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 1]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [0.8, 0.9]


def test_confusion_matrix_counts_match_a_hand_computed_example():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 2, 0]
    fig = plot.confusion_matrix(y_true, y_pred, ["a", "b", "c"])
    ax = fig.axes[0]
    expected = np.array([[1, 1, 0],
                         [0, 1, 0],
                         [1, 0, 2]])
    counts = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(y_true)
    # every cell's count is written in it
    assert sorted(text.get_text() for text in ax.texts) == sorted(str(c) for c in expected.ravel())
    assert ax.get_xlabel() == "Predicted label" and ax.get_ylabel() == "True label"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_xticklabels()[0].get_rotation() == 45


def test_confusion_matrix_text_contrasts_with_cell():
    y_true = [0] * 9 + [1]
    fig = plot.confusion_matrix(y_true, y_true, ["a", "b"])
    colors = {text.get_text(): to_rgba(text.get_color()) for text in fig.axes[0].texts}
    assert colors["9"] == to_rgba("white")  # the dark diagonal cell
    assert colors["0"] == to_rgba("black")


def test_confusion_matrix_takes_probabilities():
    images, labels, predictions = make_data(n=50)
    fig = plot.confusion_matrix(labels, predictions, CLASS_NAMES)
    counts = np.asarray(fig.axes[0].images[0].get_array())
    assert counts.shape == (10, 10) and counts.sum() == 50
    assert np.trace(counts) == np.sum(np.argmax(predictions, axis=1) == labels)


def test_first_layer_weights_one_axes_per_unit_plus_colorbar():
    model = FakeModel(input_shape=(None, 6, 6), units=5)
    fig = plot.first_layer_weights(model)
    unit_axes = [ax for ax in fig.axes if ax.images]
    assert len(unit_axes) == 5
    assert len(fig.axes) == 6  # and one shared colorbar
    kernel = model.layers[1].get_weights()[0]
    np.testing.assert_allclose(unit_axes[2].images[0].get_array(), kernel[:, 2].reshape(6, 6))
    vmin, vmax = unit_axes[0].images[0].get_clim()
    assert vmin == -vmax  # centred on 0


def test_first_layer_weights_max_units_and_square_fallback():
    model = FakeModel(input_shape=(None, 16), units=40)  # flat input: 16 = 4 x 4
    fig = plot.first_layer_weights(model, max_units=20)
    unit_axes = [ax for ax in fig.axes if ax.images]
    assert len(unit_axes) == 20
    assert unit_axes[0].images[0].get_array().shape == (4, 4)


# --------------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------------

EXPECTED_FILES = ["sample.png", "grid25.png", "prediction_0.png", "prediction_12.png",
                  "predictions_grid.png", "single_prediction.png", "training_curves.png",
                  "confusion_matrix.png", "first_layer_weights.png"]


def test_write_tutorial_figures_writes_every_file_as_png(tmp_path):
    images, labels, predictions = make_data(n=25)
    out_dir = tmp_path / "figures" / "nested"
    paths = plot.write_tutorial_figures(
        out_dir, history=HISTORY, train_images=images, train_labels=labels,
        test_images=images / 255.0, test_labels=labels, predictions=predictions,
        class_names=CLASS_NAMES, model=FakeModel(units=3),
    )
    assert [path.name for path in paths] == EXPECTED_FILES
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(EXPECTED_FILES)  # no temp files
    for path in paths:
        assert path.parent == out_dir
        data = path.read_bytes()
        assert len(data) > len(PNG_SIGNATURE) and data[:8] == PNG_SIGNATURE


def test_write_tutorial_figures_checks_input_before_writing_anything(tmp_path):
    images, labels, predictions = make_data(n=25)
    with pytest.raises(ValueError, match=r"expected a built Dense layer"):
        plot.write_tutorial_figures(
            tmp_path, history=HISTORY, train_images=images, train_labels=labels,
            test_images=images, test_labels=labels, predictions=predictions,
            class_names=CLASS_NAMES, model=FakeModel(with_dense=False),
        )
    with pytest.raises(ValueError, match=r"needs 15 images, but only 12"):
        plot.write_tutorial_figures(
            tmp_path, history=HISTORY, train_images=images, train_labels=labels,
            test_images=images[:12], test_labels=labels[:12], predictions=predictions[:12],
            class_names=CLASS_NAMES, model=FakeModel(),
        )
    assert list(tmp_path.iterdir()) == []


def test_save_figure_leaves_no_temp_file_when_saving_fails(tmp_path, monkeypatch):
    fig = plot.show_image(np.zeros((4, 4)))

    def broken_savefig(target, **kwargs):
        target.write(b"partial")  # a file object opened by save_figure's atomic write
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        plot.save_figure(fig, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Bad input gets a clear error
# --------------------------------------------------------------------------------------------

def test_show_image_rejects_a_stack_of_images():
    with pytest.raises(ValueError, match=r"expected one 2-D image .* received shape \(2, 4, 4\)"):
        plot.show_image(np.zeros((2, 4, 4)))


def test_image_grid_rejects_flat_images():
    with pytest.raises(ValueError, match=r"\(n, height, width\), received shape \(30, 64\)"):
        plot.image_grid(np.zeros((30, 64)), np.zeros(30, dtype=int), CLASS_NAMES)


def test_image_grid_rejects_too_few_images():
    images, labels, _ = make_data(n=10)
    with pytest.raises(ValueError, match=r"5x5 grid needs 25 images, but only 10"):
        plot.image_grid(images, labels, CLASS_NAMES)


def test_image_grid_rejects_labels_beyond_class_names():
    images, labels, _ = make_data(n=25)
    with pytest.raises(ValueError, match=r"labels in 0\.\.2"):
        plot.image_grid(images, labels, ["a", "b", "c"])


def test_predictions_must_be_2d():
    images, labels, predictions = make_data(n=3)
    with pytest.raises(ValueError, match=r"predictions: expected a 2-D array .* received shape \(10,\)"):
        plot.plot_value_array(0, predictions[0], labels)


def test_index_out_of_range_names_the_valid_range():
    images, labels, predictions = make_data(n=3)
    with pytest.raises(IndexError, match=r"index in 0\.\.2, received 3"):
        plot.plot_image(3, predictions, labels, images, CLASS_NAMES)
    with pytest.raises(IndexError, match=r"0\.\.2, received -1"):
        plot.plot_value_array(-1, predictions, labels)


def test_index_must_be_an_integer():
    images, labels, predictions = make_data(n=3)
    with pytest.raises(TypeError, match="integer index, received float"):
        plot.prediction_pair(1.0, predictions, labels, images, CLASS_NAMES)


def test_mismatched_lengths_are_reported():
    images, labels, predictions = make_data(n=20)
    with pytest.raises(ValueError, match=r"predictions has 20, true_labels has 19, images has 20"):
        plot.prediction_grid(predictions, labels[:19], images, CLASS_NAMES)


def test_prediction_grid_rejects_too_few_images():
    images, labels, predictions = make_data(n=10)
    with pytest.raises(ValueError, match=r"needs 15 images, but only 10"):
        plot.prediction_grid(predictions, labels, images, CLASS_NAMES)


def test_class_names_must_match_number_of_classes():
    images, labels, predictions = make_data(n=3)
    with pytest.raises(ValueError, match=r"expected 10 names .* received 9"):
        plot.plot_image(0, predictions, labels, images, CLASS_NAMES[:9])
    with pytest.raises(ValueError, match=r"expected 10 names .* received 3"):
        plot.single_prediction(predictions[0], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected 10 names .* received 2"):
        plot.confusion_matrix(labels, predictions, ["a", "b"])


def test_single_prediction_rejects_a_batch():
    with pytest.raises(ValueError, match=r"\(n_classes,\) or \(1, n_classes\), received shape \(2, 10\)"):
        plot.single_prediction(np.zeros((2, 10)), CLASS_NAMES)


def test_labels_must_be_integers():
    images, _, predictions = make_data(n=3)
    with pytest.raises(TypeError, match="integer class labels"):
        plot.plot_value_array(0, predictions, [0.5, 1.0, 2.0])
    with pytest.raises(TypeError, match="numeric array"):
        plot.confusion_matrix(["a", "b"], [0, 1], ["a", "b"])


def test_training_curves_needs_loss_and_accuracy():
    with pytest.raises(ValueError, match=r"missing \['accuracy'\]"):
        plot.training_curves({"loss": [1.0]})
    with pytest.raises(TypeError, match="History object"):
        plot.training_curves([0.5, 0.4])
    with pytest.raises(ValueError, match=r"expected 2 values in 'val_loss'"):
        plot.training_curves({"loss": [1, 2], "accuracy": [0.1, 0.2], "val_loss": [1]})


def test_first_layer_weights_needs_a_dense_layer():
    with pytest.raises(ValueError, match=r"expected a built Dense layer .* received layers \['FakeLayer'\]"):
        plot.first_layer_weights(FakeModel(with_dense=False))
    with pytest.raises(TypeError, match=r"\.layers"):
        plot.first_layer_weights(object())


def test_first_layer_weights_needs_an_image_shaped_input():
    with pytest.raises(ValueError, match=r"input_dim=10"):
        plot.first_layer_weights(FakeModel(input_shape=(None, 10)))


# --------------------------------------------------------------------------------------------
# With the real model, once it exists
# --------------------------------------------------------------------------------------------

def test_first_layer_weights_with_a_real_sequential_model():
    npnet = pytest.importorskip("npnet")
    if not hasattr(npnet, "Sequential"):
        pytest.skip("npnet.Sequential is not available yet")
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(4, activation="relu"),
        npnet.layers.Dense(10, activation="softmax"),
    ])
    model.predict(np.zeros((1, 28, 28), dtype=np.float32))
    fig = plot.first_layer_weights(model)
    unit_axes = [ax for ax in fig.axes if ax.images]
    assert len(unit_axes) == 4
    assert unit_axes[0].images[0].get_array().shape == (28, 28)
