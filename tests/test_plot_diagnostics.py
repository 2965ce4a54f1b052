"""npnet.plot.diagnostics and the tutorial's single-image and diagnostics figures, checked
through matplotlib's objects (axes, titles, scales, lines, colours), not pixels."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import npnet  # noqa: E402
from npnet import plot  # noqa: E402

from core_helpers import tiny_data, tiny_model  # noqa: E402
from test_plot import CLASS_NAMES, FakeModel, HISTORY, bar_colors, make_data  # noqa: E402


@pytest.fixture(scope="module")
def recorded():
    npnet.utils.set_random_seed(0)
    model = tiny_model()
    diagnostics = npnet.callbacks.Diagnostics(every=2)
    x, y = tiny_data(64)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[diagnostics])
    return diagnostics


def test_four_panels_one_line_per_layer_in_one_colour_everywhere(recorded):
    fig = plot.diagnostics(recorded)
    axes = fig.axes
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles == ["Gradient norm ‖dL/dw‖", "Update / weight ratio ‖Δw‖ / ‖w‖",
                      "Dead ReLU units (fraction)", "Activations: mean ± one standard deviation"]
    assert [ax.get_yscale() for ax in axes] == ["log", "log", "linear", "linear"]
    assert [ax.get_xlabel() for ax in axes[2:]] == ["Training step", "Training step"]
    assert fig.get_suptitle() == "Training diagnostics (8 records, every 2 steps)"
    names = list(recorded.layers)  # dense (relu), dense_1 (softmax)
    for ax in axes[:2]:
        labels = [line.get_label() for line in ax.lines if not line.get_label().startswith("1e-3")]
        assert labels == names
    assert [line.get_label() for line in axes[2].lines] == names[:1]  # only the ReLU layer
    colors = {}
    for ax in axes:
        for line in ax.lines:
            if line.get_label() in names:
                colors.setdefault(line.get_label(), set()).add(to_rgba(line.get_color()))
    assert all(len(c) == 1 for c in colors.values()) and len({next(iter(c)) for c in colors.values()}) == 2
    for line in axes[0].lines:  # x: the recorded steps; y: the records
        np.testing.assert_array_equal(line.get_xdata(), recorded.steps)
        np.testing.assert_allclose(line.get_ydata(), recorded.layers[line.get_label()]["grad_norm"])
    guide = [line for line in axes[1].lines if line.get_linestyle() == "--"]
    assert len(guide) == 1 and list(guide[0].get_ydata()) == [1e-3, 1e-3]
    assert len(axes[3].collections) == 2  # a ±std band per layer
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == names + ["1e-3, typical of healthy training"]


def test_no_relu_layer_says_so_and_bad_input_is_explained():
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(4, 3)),
                              npnet.layers.Dense(5, activation="tanh"),
                              npnet.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    diagnostics = npnet.callbacks.Diagnostics(every=1)
    with pytest.raises(ValueError, match="no records yet; pass it to fit first"):
        plot.diagnostics(diagnostics)
    x, y = tiny_data(16)
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[diagnostics])
    dead_ax = plot.diagnostics(diagnostics).axes[2]
    assert not dead_ax.lines and [t.get_text() for t in dead_ax.texts] == ["no ReLU layers"]
    with pytest.raises(TypeError, match="expected an npnet.callbacks.Diagnostics"):
        plot.diagnostics({"loss": [1.0]})


def test_write_tutorial_figures_single_image_is_test_image_0_and_diagnostics_png(tmp_path, recorded,
                                                                                monkeypatch):
    images, labels, predictions = make_data(n=30, size=6)
    single = predictions[:1] * 0.5 + 0.05  # distinguishable from predictions[0]
    seen = {}
    original = plot.single_prediction

    def spy(prediction, class_names, true_label=None):
        seen.update(prediction=np.array(prediction), true_label=true_label)
        return original(prediction, class_names, true_label)

    monkeypatch.setattr(plot, "single_prediction", spy)
    paths = plot.write_tutorial_figures(
        tmp_path, history=HISTORY, train_images=images, train_labels=labels, test_images=images, test_labels=labels, predictions=predictions, class_names=CLASS_NAMES,
        model=FakeModel(), predictions_single=single, diagnostics_record=recorded)
    np.testing.assert_array_equal(seen["prediction"], single[0])
    assert seen["true_label"] == labels[0]
    assert paths[-1].name == "diagnostics.png" and paths[-1].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"predictions_single: expected the output for one image"):
        plot.write_tutorial_figures(
            tmp_path / "bad", history=HISTORY, train_images=images, train_labels=labels, test_images=images, test_labels=labels,
            predictions=predictions, class_names=CLASS_NAMES, model=FakeModel(),
            predictions_single=predictions[:2])
    assert not (tmp_path / "bad").exists()


def test_single_prediction_of_the_seed_image_colours_true_blue_predicted_red():
    probabilities = np.full(10, 0.02)
    probabilities[7], probabilities[9] = 0.6, 0.22  # predicted Sneaker, truly an Ankle boot
    ax = plot.single_prediction(probabilities[None], CLASS_NAMES, true_label=9).axes[0]
    colors = bar_colors(ax)
    assert colors[7] == to_rgba("red") and colors[9] == to_rgba("blue")
    assert all(c == to_rgba("#777777") for i, c in enumerate(colors) if i not in (7, 9))
