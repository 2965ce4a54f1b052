"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts."""

from .utils import format_shape

_HEADERS = ("Layer (type)", "Output Shape", "Param #")
_MIN_WIDTHS = (33, 24, 15)


def summary_text(model):
    """The table ``model.summary()`` prints, with the totals and the backend below it."""
    rows = [(f"{layer.name} ({type(layer).__name__})", format_shape(shape), f"{layer.count_params():,}")
            for layer, shape in zip(model.layers, model.output_shapes())]
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(_HEADERS)]
    widths = [max(w, m) for w, m in zip(widths, _MIN_WIDTHS)]
    text = [f'Model: "{model.name}"',
            _rule("┏", "┳", "┓", "━", widths),
            "┃ " + _HEADERS[0].ljust(widths[0] - 1) + "┃ " + _HEADERS[1].ljust(widths[1] - 1)
            + "┃" + _HEADERS[2].rjust(widths[2] - 1) + " ┃",
            _rule("┡", "╇", "┩", "━", widths)]
    for i, cells in enumerate(rows):
        if i:
            text.append(_rule("├", "┼", "┤", "─", widths))
        text.append(_row(cells, widths))
    text.append(_rule("└", "┴", "┘", "─", widths))
    text += _totals(model)
    backend = getattr(model, "backend_name", None)
    if backend:
        text.append(f" Backend: {backend}")
    return "\n".join(text)


def _totals(model):
    trainable = [p for p in model.trainable_weights]
    frozen = [p for p in model.non_trainable_weights]
    counts = [sum(p.size for p in group) for group in (trainable + frozen, trainable, frozen)]
    sizes = [sum(p.nbytes for p in group) for group in (trainable + frozen, trainable, frozen)]
    return [f" Total params: {counts[0]:,} ({format_bytes(sizes[0])})",
            f" Trainable params: {counts[1]:,} ({format_bytes(sizes[1])})",
            f" Non-trainable params: {counts[2]:,} ({format_bytes(sizes[2])})"]


def _rule(left, middle, right, fill, widths):
    return left + middle.join(fill * w for w in widths) + right


def _row(cells, widths):
    first, second, third = cells
    return ("│ " + first.ljust(widths[0] - 1) + "│ " + second.ljust(widths[1] - 1)
            + "│" + third.rjust(widths[2] - 1) + " │")


def format_bytes(n):
    """``406.33 KB`` style text for a byte count, as Keras prints it."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
