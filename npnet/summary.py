"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

Without layout arguments the columns fit their contents (at least Keras's widths in an
80-column terminal). With ``line_length``, ``positions`` or ``show_trainable`` the columns are
laid out as Keras lays them out: each column gets its share of ``line_length`` from
``positions``, and the borders and cell padding are then taken from every column equally.
Text that does not fit wraps onto more lines; a header that does not fit ends in ``…``.
"""

import re
import shutil
import textwrap

from .utils import format_shape

_HEADERS = ("Layer (type)", "Output Shape", "Param #")
_ALIGN = ("left", "left", "right")
_MIN_WIDTHS = (33, 24, 15)
#: Keras's layout for a chain of layers: column boundaries as fractions of the line length,
#: and the widest default line (before the terminal's width caps it).
_POSITIONS = (0.45, 0.80, 1.0)
_LINE_LENGTH = 88
_TRAINABLE_EXTRA = 12  # characters Keras adds to the default line for the Trainable column
_MIN_COLUMN = 4


def summary_text(model, line_length=None, positions=None, show_trainable=False, layer_range=None):
    """The table ``model.summary()`` prints, with the totals and the backend below it."""
    start, stop = layer_bounds(model.layers, layer_range)
    headers, align = list(_HEADERS), list(_ALIGN)
    if show_trainable:
        headers.append("Trainable")
        align.append("center")
    rows = [_cells(layer, shape, show_trainable)
            for layer, shape in list(zip(model.layers, _output_shapes(model)))[start:stop]]
    if line_length is None and positions is None and not show_trainable:
        widths = _fitted_widths(rows)
    else:
        widths = column_widths(line_length, positions, show_trainable)
    text = [f'Model: "{model.name}"', _rule("┏", "┳", "┓", "━", widths),
            _line("┃", [_clip(h, w - 2) for h, w in zip(headers, widths)], widths, align),
            _rule("┡", "╇", "┩", "━", widths)]
    for i, cells in enumerate(rows):
        if i:
            text.append(_rule("├", "┼", "┤", "─", widths))
        text += _row_lines(cells, widths, align)
    text.append(_rule("└", "┴", "┘", "─", widths))
    text += _totals(model)
    backend = getattr(model, "backend_name", None)
    if backend:
        text.append(f" Backend: {backend}")
    return "\n".join(text)


def _output_shapes(model):
    """Each listed layer's output shape as text: a model added, its last layer's; a functional
    model's InputLayer, the input's; ``?`` for every layer while the model is unbuilt."""
    if not model.built:
        return ["?"] * len(model.layers)
    shapes = [model.input_shape] + model.output_shapes()
    listed, end = [], 0
    for size in model._entry_sizes():
        end += size
        listed.append(format_shape(shapes[end]))
    return listed


def _cells(layer, shape, show_trainable):
    params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
    cells = [f"{layer.name} ({type(layer).__name__})", shape, params]
    if show_trainable:
        cells.append(("Y" if layer.trainable else "N") if layer.built and layer.weights else "-")
    return cells


def _fitted_widths(rows):
    """Cell widths (padding included) that fit every cell, at least Keras's default widths."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(_HEADERS)]
    return [max(w, m) for w, m in zip(widths, _MIN_WIDTHS)]


def column_widths(line_length=None, positions=None, show_trainable=False):
    """Cell widths (padding included) of a table ``line_length`` characters wide, borders
    included, with column boundaries at ``positions``: fractions of the line (Keras's
    ``[0.45, 0.8, 1.0]`` by default) or, when any exceeds 1, character positions whose last
    is the line length. ``show_trainable`` keeps the first 90% for those columns and adds a
    Trainable column, as Keras does. The default line is Keras's: 88 characters (100 with
    the Trainable column), at most the terminal's width less 4."""
    fractions, line_length = _fractions(positions, line_length)
    if show_trainable:
        fractions = [p * 0.9 for p in fractions] + [1.0]
    if line_length is None:
        default = _LINE_LENGTH + (_TRAINABLE_EXTRA if show_trainable else 0)
        line_length = min(default, shutil.get_terminal_size().columns - 4)
    widths, edge = [], 0
    for fraction in fractions:
        width = int(fraction * line_length) - edge
        if width < _MIN_COLUMN:
            raise ValueError(f"summary(): a column would be {width} characters wide (line_length="
                             f"{line_length}, positions={list(positions or _POSITIONS)}); each needs "
                             f"at least {_MIN_COLUMN}: give a larger line_length or wider positions")
        widths.append(width)
        edge += width
    return _shrink_to_fit([w + 2 for w in widths], line_length - (len(widths) + 1))


def _fractions(positions, line_length):
    """``(column boundaries as fractions, line length or None)`` from summary()'s arguments."""
    if positions is None:
        return list(_POSITIONS), line_length
    if (not isinstance(positions, (list, tuple)) or len(positions) != len(_HEADERS)
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and p > 0 for p in positions)
            or list(positions) != sorted(positions)):
        raise ValueError(f"summary(): positions must be {len(_HEADERS)} increasing positive numbers, "
                         "the right edges of the columns as fractions of the line (e.g. [0.45, 0.8, 1.0]) "
                         f"or in characters (e.g. [30, 55, 70]); received {positions!r}")
    if max(positions) <= 1:
        return list(positions), line_length
    last = positions[-1]
    if line_length is not None and line_length != last:
        raise ValueError(f"summary(): positions in characters end at {last}, but line_length="
                         f"{line_length}; give one of them, or make the last position the line length")
    return [p / last for p in positions], int(last)


def _shrink_to_fit(widths, available):
    """Take the excess over ``available`` from every column equally, the remainder rounded
    column by column, as Keras's table renderer (rich) does."""
    excess, shrunk = sum(widths) - available, []
    for i, width in enumerate(widths):
        share = round(excess / (len(widths) - i))
        shrunk.append(width - share)
        excess -= share
    return shrunk


def layer_bounds(layers, layer_range):
    """``(start, stop)`` of the layers ``layer_range`` selects, as Keras chooses them: two
    regular expressions matched at the start of layer names; the table runs from the first
    layer matching either end to the last."""
    if layer_range is None:
        return 0, len(layers)
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2 \
            or not all(isinstance(name, str) for name in layer_range):
        raise ValueError("summary(): layer_range must be two layer names (or patterns), the first "
                         f"and last layer to show, e.g. ['dense', 'dense_2']; received {layer_range!r}")
    first = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    last = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not first or not last:
        raise ValueError(f"summary(): layer_range {list(layer_range)} does not match the model's "
                         f"layer names {[layer.name for layer in layers]}")
    if min(first) > max(last):
        return min(last), max(first) + 1
    return min(first), max(last) + 1


def _totals(model):
    trainable = list(model.trainable_weights) if model.built else []
    frozen = list(model.non_trainable_weights) if model.built else []
    counts = [sum(p.size for p in group) for group in (trainable + frozen, trainable, frozen)]
    sizes = [sum(p.nbytes for p in group) for group in (trainable + frozen, trainable, frozen)]
    return [f" Total params: {counts[0]:,} ({format_bytes(sizes[0])})",
            f" Trainable params: {counts[1]:,} ({format_bytes(sizes[1])})",
            f" Non-trainable params: {counts[2]:,} ({format_bytes(sizes[2])})"]


def _rule(left, middle, right, fill, widths):
    return left + middle.join(fill * w for w in widths) + right


def _clip(text, width):
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _row_lines(cells, widths, align):
    """A row's lines: each cell wrapped at spaces to its column."""
    wrapped = [textwrap.wrap(c, max(w - 2, 1)) or [""] for c, w in zip(cells, widths)]
    height = max(len(lines) for lines in wrapped)
    return [_line("│", [lines[k] if k < len(lines) else "" for lines in wrapped], widths, align)
            for k in range(height)]


def _line(bar, texts, widths, align):
    justify = {"left": str.ljust, "right": str.rjust, "center": str.center}
    return bar + bar.join(" " + justify[a](t, w - 2) + " " for t, w, a in zip(texts, widths, align)) + bar


def format_bytes(n):
    """``406.33 KB`` style text for a byte count, as Keras prints it."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
