"""The figures of the TensorFlow "basic classification" tutorial, plus a few for learners.

Every function returns a :class:`matplotlib.figure.Figure` and never blocks: figures are built
with ``Figure`` objects directly, not through ``pyplot``, so nothing opens a window, nothing
needs a display (the Agg renderer is used when saving) and no global pyplot state is touched.
Show a returned figure in a notebook with ``display(fig)``, or write it with ``fig.savefig``
or :func:`save_figure`.

matplotlib is imported only when a figure is actually drawn, so ``import npnet.plot`` stays
cheap for code (training, benchmarks) that never plots.

The tutorial's figures, in order::

    show_image(train_images[0])                                  # one image + colorbar
    image_grid(train_images, train_labels, class_names)          # 5x5 samples with names
    prediction_pair(0, predictions, test_labels, test_images, class_names)
    prediction_grid(predictions, test_labels, test_images, class_names)
    single_prediction(predictions[1], class_names)

and, for learners: :func:`training_curves`, :func:`confusion_matrix`,
:func:`first_layer_weights` and :func:`diagnostics` (what
:class:`npnet.callbacks.Diagnostics` recorded). :func:`write_tutorial_figures` writes all of them as PNG files.

Shapes used below: ``images`` is ``(n, height, width)`` (uint8 0-255 or float 0-1 both display
fine), ``predictions`` is ``(n, n_classes)`` probabilities, ``true_labels`` is ``(n,)`` integers.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # only for annotations; never imports matplotlib at runtime
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "show_image",
    "image_grid",
    "plot_image",
    "plot_value_array",
    "prediction_pair",
    "prediction_grid",
    "single_prediction",
    "training_curves",
    "confusion_matrix",
    "first_layer_weights",
    "diagnostics",
    "save_figure",
    "write_tutorial_figures",
    "DEFAULT_DPI",
]

#: Resolution used by :func:`save_figure`: sharp on a projector without huge files.
DEFAULT_DPI = 130

# The tutorial's colours: a right prediction is blue, a wrong one red, other bars grey.
CORRECT_COLOR = "blue"
WRONG_COLOR = "red"
BAR_COLOR = "#777777"

# first_layer_weights lays units out in rows of at most this many (128 units -> 16 x 8).
_WEIGHT_GRID_COLUMNS = 16


# --------------------------------------------------------------------------------------------
# matplotlib, imported lazily
# --------------------------------------------------------------------------------------------

def _new_figure(**figure_kwargs: Any) -> Figure:
    """A fresh Figure, not registered with pyplot: nothing to show, close or leak."""
    from matplotlib.figure import Figure

    return Figure(**figure_kwargs)


def _hide_ticks(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


# --------------------------------------------------------------------------------------------
# Input checks: each says what was expected and what was received
# --------------------------------------------------------------------------------------------

def _as_numeric_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name}: expected a numeric array, received dtype {array.dtype}")
    return array


def _as_array_of_rank(values: Any, name: str, ndim: int, expected: str) -> np.ndarray:
    """A numeric array with ``ndim`` dimensions, or a ValueError describing ``expected``."""
    array = _as_numeric_array(values, name)
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {expected}, received shape {array.shape}")
    return array


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    return _as_array_of_rank(image, name, 2, "one 2-D image of shape (height, width)")


def _as_images(images: Any, name: str = "images") -> np.ndarray:
    return _as_array_of_rank(images, name, 3, "a stack of images of shape (n, height, width)")


def _as_predictions(predictions: Any, name: str = "predictions") -> np.ndarray:
    return _as_array_of_rank(predictions, name, 2, "a 2-D array of shape (n, n_classes)")


def _as_labels(labels: Any, n_classes: int, name: str = "true_labels") -> np.ndarray:
    """Integer class labels of shape (n,), each in 0..n_classes-1."""
    labels = _as_numeric_array(labels, name)
    if labels.ndim != 1:
        raise ValueError(
            f"{name}: expected a 1-D array of shape (n,), received shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        # Labels loaded as floats (1.0, 9.0, ...) are fine; 0.5 is not a class.
        if labels.size and not np.all(np.mod(labels, 1) == 0):
            raise TypeError(f"{name}: expected integer class labels, received dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{name}: expected labels in 0..{n_classes - 1} (one per class), "
            f"received values from {labels.min()} to {labels.max()}"
        )
    return labels


def _as_class_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str):
        raise TypeError("class_names: expected a sequence of names, received a single string")
    return [str(name) for name in class_names]


def _check_class_names(class_names: Sequence[str], n_classes: int, source: str) -> list[str]:
    names = _as_class_names(class_names)
    if len(names) != n_classes:
        raise ValueError(
            f"class_names: expected {n_classes} names (one per class, from {source}), "
            f"received {len(names)}"
        )
    return names


def _check_same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise ValueError(
            f"expected the same number of samples in each array, received: {described}"
        )
    return next(iter(lengths.values()))


def _check_index(i: Any, n_samples: int) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"i: expected an integer index, received {type(i).__name__}")
    if not 0 <= i < n_samples:
        raise IndexError(f"i: expected an index in 0..{n_samples - 1}, received {i}")
    return int(i)


def _check_grid_size(rows: int, cols: int, n_available: int) -> int:
    if rows < 1 or cols < 1:
        raise ValueError(
            f"rows and cols: expected positive integers, received rows={rows}, cols={cols}"
        )
    if rows * cols > n_available:
        raise ValueError(
            f"rows*cols: a {rows}x{cols} grid needs {rows * cols} images, "
            f"but only {n_available} were given"
        )
    return rows * cols


def _validate_predictions(
    predictions: Any, true_labels: Any, images: Any | None, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str] | None]:
    """Check the tutorial's (predictions, true_labels, images, class_names) quadruple together."""
    predictions = _as_predictions(predictions)
    n_classes = predictions.shape[1]
    true_labels = _as_labels(true_labels, n_classes)
    if images is None:
        _check_same_length(predictions=predictions, true_labels=true_labels)
    else:
        images = _as_images(images)
        _check_same_length(predictions=predictions, true_labels=true_labels, images=images)
    names = None
    if class_names is not None:
        names = _check_class_names(class_names, n_classes, "predictions.shape[1]")
    return predictions, true_labels, images, names


# --------------------------------------------------------------------------------------------
# Drawing into one Axes (inputs already checked)
# --------------------------------------------------------------------------------------------

def _draw_image(
    ax: Axes, i: int, predictions: np.ndarray, true_labels: np.ndarray,
    images: np.ndarray, class_names: list[str], fontsize: float | None = None,
) -> None:
    """The tutorial's ``plot_image``: the image, and "<predicted> <confidence>% (<true>)" below."""
    probabilities = predictions[i]
    predicted_label = int(np.argmax(probabilities))
    true_label = int(true_labels[i])
    color = CORRECT_COLOR if predicted_label == true_label else WRONG_COLOR

    _hide_ticks(ax)
    ax.imshow(images[i], cmap="binary")
    ax.set_xlabel(
        "{} {:2.0f}% ({})".format(
            class_names[predicted_label], 100 * np.max(probabilities), class_names[true_label]
        ),
        color=color,
        fontsize=fontsize,
    )


def _draw_value_array(ax: Axes, probabilities: np.ndarray, true_label: int | None) -> None:
    """The tutorial's ``plot_value_array``: one grey bar per class, predicted red, true blue."""
    n_classes = len(probabilities)
    ax.grid(False)
    ax.set_xticks(range(n_classes))
    ax.set_yticks([])
    bars = ax.bar(range(n_classes), probabilities, color=BAR_COLOR)
    ax.set_ylim(0, 1)
    predicted_label = int(np.argmax(probabilities))
    # Same order as the tutorial: when the prediction is right, blue (true) wins over red.
    bars[predicted_label].set_color(WRONG_COLOR)
    if true_label is not None:
        bars[true_label].set_color(CORRECT_COLOR)


# --------------------------------------------------------------------------------------------
# The tutorial's figures
# --------------------------------------------------------------------------------------------

def show_image(image: Any) -> Figure:
    """One image with a colorbar and no grid: the tutorial's first look at the data.

    image: (height, width). With raw uint8 pixels the colorbar reads 0..255, which is why the
    tutorial then divides by 255.
    """
    image = _as_image(image)
    fig = _new_figure(figsize=(5, 4))
    ax = fig.add_subplot()
    picture = ax.imshow(image)
    fig.colorbar(picture, ax=ax)
    ax.grid(False)
    return fig


def image_grid(
    images: Any, labels: Any, class_names: Sequence[str], rows: int = 5, cols: int = 5
) -> Figure:
    """The first rows*cols images, each with its class name underneath (the tutorial's 5x5).

    images: (n, height, width); labels: (n,) integers indexing class_names.
    """
    images = _as_images(images)
    names = _as_class_names(class_names)
    labels = _as_labels(labels, len(names), name="labels")
    _check_same_length(images=images, labels=labels)
    n_shown = _check_grid_size(rows, cols, len(images))

    fig = _new_figure(figsize=(2 * cols, 2 * rows), layout="tight")
    for i in range(n_shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        _hide_ticks(ax)
        ax.imshow(images[i], cmap="binary")
        ax.set_xlabel(names[labels[i]])
    return fig


def plot_image(
    i: int, predictions: Any, true_labels: Any, images: Any, class_names: Sequence[str],
    ax: Axes | None = None,
) -> Figure:
    """Image i with "<predicted> <confidence>% (<true>)" below, blue if right, red if wrong.

    predictions: (n, n_classes); true_labels: (n,); images: (n, height, width).
    Draws into ``ax`` when given (and returns ``ax.figure``), else into a new Figure.
    """
    predictions, true_labels, images, names = _validate_predictions(
        predictions, true_labels, images, class_names
    )
    i = _check_index(i, len(predictions))
    if ax is None:
        fig = _new_figure(figsize=(3, 3), layout="tight")
        ax = fig.add_subplot()
    _draw_image(ax, i, predictions, true_labels, images, names)
    return ax.figure


def plot_value_array(
    i: int, predictions: Any, true_labels: Any, ax: Axes | None = None
) -> Figure:
    """The probabilities predicted for sample i as bars: predicted class red, true class blue.

    predictions: (n, n_classes); true_labels: (n,). When the prediction is right the single
    highlighted bar is blue. Draws into ``ax`` when given (and returns ``ax.figure``).
    """
    predictions, true_labels, _, _ = _validate_predictions(predictions, true_labels, None, None)
    i = _check_index(i, len(predictions))
    if ax is None:
        fig = _new_figure(figsize=(3, 3), layout="tight")
        ax = fig.add_subplot()
    _draw_value_array(ax, predictions[i], int(true_labels[i]))
    return ax.figure


def prediction_pair(
    i: int, predictions: Any, true_labels: Any, images: Any, class_names: Sequence[str]
) -> Figure:
    """Image i (left) beside its probability bars (right), as the tutorial shows i=0 and i=12."""
    predictions, true_labels, images, names = _validate_predictions(
        predictions, true_labels, images, class_names
    )
    i = _check_index(i, len(predictions))
    fig = _new_figure(figsize=(6, 3), layout="tight")
    _draw_image(fig.add_subplot(1, 2, 1), i, predictions, true_labels, images, names)
    _draw_value_array(fig.add_subplot(1, 2, 2), predictions[i], int(true_labels[i]))
    return fig


def prediction_grid(
    predictions: Any, true_labels: Any, images: Any, class_names: Sequence[str],
    rows: int = 5, cols: int = 3,
) -> Figure:
    """The first rows*cols test images, each beside its bars: 2*cols columns of subplots."""
    predictions, true_labels, images, names = _validate_predictions(
        predictions, true_labels, images, class_names
    )
    n_shown = _check_grid_size(rows, cols, len(images))
    fig = _new_figure(figsize=(2 * 2 * cols, 2 * rows), layout="tight")
    for i in range(n_shown):
        image_ax = fig.add_subplot(rows, 2 * cols, 2 * i + 1)
        _draw_image(image_ax, i, predictions, true_labels, images, names, fontsize=9)
        bars_ax = fig.add_subplot(rows, 2 * cols, 2 * i + 2)
        _draw_value_array(bars_ax, predictions[i], int(true_labels[i]))
    return fig


def single_prediction(
    prediction: Any, class_names: Sequence[str], true_label: int | None = None
) -> Figure:
    """The bars for one image, with the class names (rotated 45 degrees) on the x axis.

    prediction: (n_classes,) or (1, n_classes), e.g. ``model.predict(image[None])``.
    The predicted class is red; pass ``true_label`` to colour the true class blue, as the
    tutorial does.
    """
    probabilities = _as_numeric_array(prediction, "prediction")
    if probabilities.ndim == 2 and probabilities.shape[0] == 1:
        probabilities = probabilities[0]
    if probabilities.ndim != 1:
        raise ValueError(
            "prediction: expected the probabilities for one image, of shape (n_classes,) or "
            f"(1, n_classes), received shape {probabilities.shape}"
        )
    n_classes = len(probabilities)
    names = _check_class_names(class_names, n_classes, "prediction")
    if true_label is not None:
        true_label = int(_as_labels([true_label], n_classes, name="true_label")[0])

    fig = _new_figure(figsize=(5, 4), layout="tight")
    ax = fig.add_subplot()
    _draw_value_array(ax, probabilities, true_label)
    ax.set_xticks(range(n_classes), names, rotation=45, ha="right", rotation_mode="anchor")
    # Alone on a slide the bars need a readable scale, which the tutorial's small pairs omit.
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_ylabel("Probability")
    predicted_label = int(np.argmax(probabilities))
    ax.set_title(f"Predicted: {names[predicted_label]} ({probabilities[predicted_label]:.0%})")
    return fig


# --------------------------------------------------------------------------------------------
# Beyond the tutorial, for learners
# --------------------------------------------------------------------------------------------

def _history_record(history: Any) -> Mapping[str, Sequence[float]]:
    """The dict of per-epoch lists inside a History (or the dict itself), checked."""
    record = getattr(history, "history", history)
    if not isinstance(record, Mapping):
        raise TypeError(
            "history: expected a History object (with a .history dict) or a dict of lists, "
            f"received {type(history).__name__}"
        )
    missing = [key for key in ("loss", "accuracy") if key not in record]
    if missing:
        raise ValueError(
            f"history: expected keys 'loss' and 'accuracy' (optionally 'val_loss', "
            f"'val_accuracy'), missing {missing}; received keys {sorted(record)}"
        )
    n_epochs = len(record["loss"])
    for key in ("accuracy", "val_loss", "val_accuracy"):
        if key in record and len(record[key]) != n_epochs:
            raise ValueError(
                f"history: expected {n_epochs} values in '{key}' (one per epoch, like 'loss'), "
                f"received {len(record[key])}"
            )
    return record


def training_curves(history: Any) -> Figure:
    """Loss (left) and accuracy (right) per epoch, training and, when present, validation.

    history: a Keras-style History (anything with a ``.history`` dict) or a plain dict of
    per-epoch lists with keys 'loss' and 'accuracy', optionally 'val_loss' and 'val_accuracy'.
    """
    from matplotlib.ticker import MaxNLocator

    record = _history_record(history)
    n_epochs = len(record["loss"])
    epochs = np.arange(1, n_epochs + 1)

    fig = _new_figure(figsize=(10, 4), layout="tight")
    for column, (metric, title) in enumerate([("loss", "Loss"), ("accuracy", "Accuracy")]):
        ax = fig.add_subplot(1, 2, column + 1)
        ax.plot(epochs, record[metric], marker="o", label="training")
        if f"val_{metric}" in record:
            ax.plot(epochs, record[f"val_{metric}"], marker="o", label="validation")
        ax.set_title(f"{title} per epoch")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(title)
        # Whole epochs only, with a margin, even for a one-epoch run.
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(True, alpha=0.3)
        ax.legend()
    return fig


def _confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[t, p] = how many samples of true class t were predicted as class p."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def confusion_matrix(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> Figure:
    """Counts of (true class, predicted class) as an image, each cell's count written in it.

    y_true: (n,) integer labels. y_pred: (n,) integer labels, or (n, n_classes) probabilities
    (then the argmax is the prediction). Rows are true classes, columns predicted ones, so the
    diagonal holds the right answers.
    """
    names = _as_class_names(class_names)
    n_classes = len(names)
    y_pred = _as_numeric_array(y_pred, "y_pred")
    if y_pred.ndim == 2:
        _check_class_names(names, y_pred.shape[1], "y_pred.shape[1]")
        y_pred = np.argmax(y_pred, axis=1)
    elif y_pred.ndim != 1:
        raise ValueError(
            "y_pred: expected integer labels of shape (n,) or probabilities of shape "
            f"(n, n_classes), received shape {y_pred.shape}"
        )
    y_pred = _as_labels(y_pred, n_classes, name="y_pred")
    y_true = _as_labels(y_true, n_classes, name="y_true")
    n_samples = _check_same_length(y_true=y_true, y_pred=y_pred)
    counts = _confusion_counts(y_true, y_pred, n_classes)

    side = max(4.0, 0.6 * n_classes + 1.5)
    fig = _new_figure(figsize=(side + 0.5, side), layout="tight")
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0)
    # Dark cells get white text, light cells black, so the (dark) diagonal stays readable.
    threshold = counts.max() / 2
    for true_class in range(n_classes):
        for predicted_class in range(n_classes):
            count = counts[true_class, predicted_class]
            ax.text(
                predicted_class, true_class, str(count), ha="center", va="center",
                fontsize=9, color="white" if count > threshold else "black",
            )
    ax.set_xticks(range(n_classes), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n_classes), names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    accuracy = np.trace(counts) / n_samples if n_samples else float("nan")
    ax.set_title(f"Confusion matrix ({n_samples} samples, accuracy {accuracy:.1%})")
    return fig


def _first_dense_kernel(model: Any) -> np.ndarray:
    """The kernel (input_dim, units) of the model's first Dense-like layer.

    Duck-typed so it works with any Keras-shaped model: the first layer whose ``get_weights()``
    starts with a 2-D array.
    """
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(
            f"model: expected a model with a .layers list, received {type(model).__name__}"
        )
    for layer in layers:
        weights = layer.get_weights()
        if weights and np.ndim(weights[0]) == 2:
            return np.asarray(weights[0])
    layer_names = [type(layer).__name__ for layer in layers]
    raise ValueError(
        "model: expected a built Dense layer (get_weights() -> [kernel (in, units), bias]), "
        f"received layers {layer_names}; build the model (model.build() or model.predict) first"
    )


def _unit_image_shape(input_dim: int, model: Any) -> tuple[int, int]:
    """How to lay one unit's input_dim weights out as an image."""
    try:
        sample_shape = tuple(getattr(model, "input_shape", None) or ())[1:]
    except Exception:  # an unbuilt model may raise instead of answering
        sample_shape = ()
    if len(sample_shape) == 2 and None not in sample_shape and math.prod(sample_shape) == input_dim:
        return int(sample_shape[0]), int(sample_shape[1])
    side = math.isqrt(input_dim)
    if side * side == input_dim:
        return side, side
    raise ValueError(
        f"first_layer_weights: expected a 2-D input shape or a square number of inputs to draw "
        f"each unit as an image, received input_dim={input_dim} and input_shape={sample_shape}"
    )


def first_layer_weights(model: Any, max_units: int | None = None) -> Figure:
    """Each unit of the first Dense layer as an image of its input weights.

    A unit's column of the kernel (input_dim, units) is reshaped to the input image (e.g.
    28x28): red pixels push the unit up, blue ones down, white ones do not matter. One colour
    scale, centred on 0, is shared by all units so they can be compared.
    """
    kernel = _first_dense_kernel(model)
    input_dim, n_units = kernel.shape
    if max_units is not None:
        if max_units < 1:
            raise ValueError(
                f"max_units: expected a positive integer or None, received {max_units}"
            )
        n_units = min(n_units, max_units)
    height, width = _unit_image_shape(input_dim, model)

    shown = kernel[:, :n_units]
    limit = float(np.max(np.abs(shown))) or 1.0  # all-zero weights: any symmetric range works
    cols = min(_WEIGHT_GRID_COLUMNS, n_units)
    rows = math.ceil(n_units / cols)
    cell = 0.8  # inches per unit
    fig = _new_figure(figsize=(cols * cell + 1.0, rows * cell + 0.7))
    # Fixed margins (in inches, turned into fractions): a layout engine is slow with 128 axes.
    width_inches, height_inches = fig.get_size_inches()
    fig.subplots_adjust(left=0.1 / width_inches, right=1 - 0.9 / width_inches,
                        bottom=0.1 / height_inches, top=1 - 0.6 / height_inches,
                        wspace=0.08, hspace=0.08)
    unit_axes = []
    for unit in range(n_units):
        ax = fig.add_subplot(rows, cols, unit + 1)
        picture = ax.imshow(shown[:, unit].reshape(height, width), cmap="seismic",
                            vmin=-limit, vmax=limit)
        _hide_ticks(ax)
        unit_axes.append(ax)
    # Beside the grid, as tall as it: one shared scale for every unit.
    grid_box = fig.subplotpars
    colorbar_ax = fig.add_axes((1 - 0.75 / width_inches, grid_box.bottom,
                                0.15 / width_inches, grid_box.top - grid_box.bottom))
    fig.colorbar(picture, cax=colorbar_ax, label="weight")
    total_units = kernel.shape[1]
    if n_units == total_units:
        which = f"{n_units} units"
    else:
        which = f"first {n_units} of {total_units} units"
    fig.suptitle(
        f"First Dense layer, {which}: each unit's {input_dim} input weights as a "
        f"{height}\u00d7{width} image (red positive, blue negative)",
        y=1 - 0.2 / height_inches, va="top",
    )
    return fig


# Where the update/weight ratio is usually healthy (CS231n's rule of thumb), drawn as a guide.
_HEALTHY_UPDATE_RATIO = 1e-3


def _diagnostics_record(recorded: Any) -> tuple[np.ndarray, dict]:
    """(steps, {layer: {metric: array}}) from a Diagnostics callback, checked."""
    steps = getattr(recorded, "steps", None)
    layers = getattr(recorded, "layers", None)
    if steps is None or not isinstance(layers, Mapping):
        raise TypeError("diagnostics: expected an npnet.callbacks.Diagnostics callback (with .steps "
                        f"and .layers), received {type(recorded).__name__}")
    if not steps:
        raise ValueError("diagnostics: the callback has no records yet; pass it to fit first, e.g. "
                         "model.fit(x, y, callbacks=[diagnostics])")
    series = {}
    for name, metrics in layers.items():
        series[name] = {}
        for metric, values in metrics.items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (len(steps),):
                raise ValueError(f"diagnostics: expected {len(steps)} values of {metric!r} for layer "
                                 f"{name!r} (one per recorded step), received shape {values.shape}")
            series[name][metric] = np.where(np.isfinite(values), values, np.nan)
    return np.asarray(steps), series


def diagnostics(recorded: Any) -> Figure:
    """Four panels of what :class:`npnet.callbacks.Diagnostics` recorded, one line per layer
    (the same colour in every panel), against the training step:

    * gradient norm ‖dL/dw‖ (log scale): vanishing gradients show as early layers far below;
    * update/weight ratio ‖Δw‖/‖w‖ (log scale), with the healthy 1e-3 as a dashed guide;
    * the fraction of dead ReLU units (0 to 1), for ReLU layers;
    * the activations' mean, with a band of ± one standard deviation.
    """
    steps, series = _diagnostics_record(recorded)
    every = getattr(recorded, "every", None)
    fig = _new_figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    colors = {name: f"C{i % 10}" for i, name in enumerate(series)}
    panels = [(axes[0, 0], "grad_norm", "Gradient norm ‖dL/dw‖", True),
              (axes[0, 1], "update_ratio", "Update / weight ratio ‖Δw‖ / ‖w‖", True),
              (axes[1, 0], "dead_fraction", "Dead ReLU units (fraction)", False)]
    for ax, metric, title, log_scale in panels:
        for name, metrics in series.items():
            if np.isfinite(metrics[metric]).any():
                ax.plot(steps, metrics[metric], marker=".", color=colors[name], label=name)
        ax.set_title(title)
        if log_scale:
            ax.set_yscale("log", nonpositive="mask")
    axes[0, 1].axhline(_HEALTHY_UPDATE_RATIO, color="black", linestyle="--", linewidth=1,
                       label="1e-3, typical of healthy training")
    dead_ax = axes[1, 0]
    dead_ax.set_ylim(-0.02, 1.02)
    if not dead_ax.lines:
        dead_ax.text(0.5, 0.5, "no ReLU layers", ha="center", va="center", transform=dead_ax.transAxes)
    spread_ax = axes[1, 1]
    for name, metrics in series.items():
        mean, std = metrics["activation_mean"], metrics["activation_std"]
        spread_ax.plot(steps, mean, marker=".", color=colors[name], label=name)
        spread_ax.fill_between(steps, mean - std, mean + std, color=colors[name], alpha=0.2)
    spread_ax.set_title("Activations: mean ± one standard deviation")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("Training step")
    # One legend for the whole figure, outside the panels, so it never hides a line.
    handles = [spread_ax.lines[i] for i in range(len(series))] + [axes[0, 1].lines[-1]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside right upper", title="layer")
    cadence = f", every {every} steps" if every else ""
    fig.suptitle(f"Training diagnostics ({len(steps)} records{cadence})")
    return fig


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------

def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DEFAULT_DPI) -> pathlib.Path:
    """Write fig as a PNG atomically: to a temporary file in the same folder, then rename.

    A reader (or a crashed run) never sees a half-written file at ``path``.
    """
    from .utils import atomic_write

    path = pathlib.Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _single_prediction_of(predictions: np.ndarray, predictions_single: Any | None) -> np.ndarray:
    """The (1, n_classes) prediction for the seed's single image, checked (default: row 0)."""
    if predictions_single is None:
        return predictions[:1]
    single = _as_predictions(predictions_single, "predictions_single")
    if single.shape != (1, predictions.shape[1]):
        raise ValueError(f"predictions_single: expected the output for one image, shape "
                         f"(1, {predictions.shape[1]}), received shape {single.shape}")
    return single


def write_tutorial_figures(
    out_dir: str | os.PathLike, *, history: Any, train_images: Any, train_labels: Any,
    test_images: Any, test_labels: Any, predictions: Any, class_names: Sequence[str], model: Any,
    predictions_single: Any | None = None, diagnostics_record: Any | None = None,
) -> list[pathlib.Path]:
    """Write the tutorial's figures (and the learners' extras) as PNGs into out_dir.

    predictions: (n_test, n_classes), the model's output on test_images.
    predictions_single: (1, n_classes), the output for the seed's single image, the batch
    ``test_images[0][None]`` (default: ``predictions[:1]``). diagnostics_record: a
    :class:`npnet.callbacks.Diagnostics` that watched training; adds diagnostics.png.
    Returns the paths written, in this order: sample, grid25, prediction_0, prediction_12,
    predictions_grid, single_prediction, training_curves, confusion_matrix,
    first_layer_weights[, diagnostics].
    """
    # Check everything first, so bad input fails before any file is written.
    predictions, test_labels, test_images, _ = _validate_predictions(
        predictions, test_labels, test_images, class_names
    )
    _check_grid_size(5, 3, len(test_images))  # the prediction grid, which also covers i=12
    train_images = _as_images(train_images, name="train_images")
    train_labels = _as_labels(train_labels, len(class_names), name="train_labels")
    _check_same_length(train_images=train_images, train_labels=train_labels)
    _check_grid_size(5, 5, len(train_images))
    _history_record(history)
    _first_dense_kernel(model)
    single = _single_prediction_of(predictions, predictions_single)
    if diagnostics_record is not None:
        _diagnostics_record(diagnostics_record)

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Callables, so each figure is built, saved and freed before the next one.
    figures = [
        ("sample.png", lambda: show_image(train_images[0])),
        ("grid25.png", lambda: image_grid(train_images, train_labels, class_names)),
        ("prediction_0.png",
         lambda: prediction_pair(0, predictions, test_labels, test_images, class_names)),
        ("prediction_12.png",
         lambda: prediction_pair(12, predictions, test_labels, test_images, class_names)),
        ("predictions_grid.png",
         lambda: prediction_grid(predictions, test_labels, test_images, class_names)),
        ("single_prediction.png",
         lambda: single_prediction(single[0], class_names, true_label=test_labels[0])),
        ("training_curves.png", lambda: training_curves(history)),
        ("confusion_matrix.png", lambda: confusion_matrix(test_labels, predictions, class_names)),
        ("first_layer_weights.png", lambda: first_layer_weights(model)),
    ]
    if diagnostics_record is not None:
        figures.append(("diagnostics.png", lambda: diagnostics(diagnostics_record)))
    written = []
    for file_name, make_figure in figures:
        fig = make_figure()
        try:
            written.append(save_figure(fig, out_dir / file_name))
        finally:
            fig.clear()  # pyplot never held this figure, so dropping it frees it
    return written
