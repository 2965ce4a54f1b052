"""Keras 3's progress line, as ``fit``, ``evaluate`` and ``predict`` print it."""

import sys
import time

import numpy as np


def _format_value(value):
    if isinstance(value, np.ndarray):  # a metric of several values (a list of thresholds)
        return "[" + " ".join(_format_value(float(v)) for v in value.reshape(-1)) + "]"
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


def _format_duration(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def _format_per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progbar:
    """Keras 3's progress line: ``1875/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 1ms/step - accuracy: 0.8267 - loss: 0.4949``.

    ``verbose=1`` redraws the line in place (at most every ``interval`` seconds);
    ``verbose=2`` prints only the final line, in Keras's ``- 2s - 1ms/step -`` form.
    """

    width = 20

    def __init__(self, target, verbose=1, stream=None, interval=0.05):
        self.target = None if target is None else int(target)  # None: a generator of unknown length
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0
        self._color = verbose == 1 and _isatty(self.stream)

    def update(self, current, values, finalize=False):
        """Show progress ``current``/target with ``values`` (a dict of running means)."""
        if self.verbose == 0:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        metrics = "".join(f" - {name}: {_format_value(v)}" for name, v in sorted(values.items()))
        if self.verbose == 2:
            if finalize:
                per_step = elapsed / max(current, 1)
                self.stream.write(
                    f"{current}/{self.target or current} - {_format_duration(elapsed)} - "
                    f"{_format_per_step(per_step)}{metrics}\n"
                )
                self.stream.flush()
            return
        if not finalize and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        per_step = elapsed / max(current, 1)
        if self.target is None:  # Keras's form for an unknown number of steps
            line = f"{current:>7}/Unknown {_format_duration(elapsed)} {_format_per_step(per_step)}{metrics}"
        else:
            time_text = _format_duration(elapsed if finalize else per_step * (self.target - current))
            digits = len(str(self.target))
            line = (f"{current:>{digits}}/{self.target} {self._bar(current)} {time_text} "
                    f"{_format_per_step(per_step)}{metrics}")
        padding = " " * max(self._last_len - len(line), 0)
        self._last_len = len(line)
        self.stream.write("\r" + line + padding + ("\n" if finalize else ""))
        self.stream.flush()

    def _bar(self, current):
        done = int(self.width * current / self.target) if self.target else self.width
        if self._color:
            return "\x1b[32m" + "━" * done + "\x1b[0m" + "\x1b[37m" + "━" * (self.width - done) + "\x1b[0m"
        return "━" * done + "─" * (self.width - done)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _in_notebook(stream):
    """Whether ``stream`` is a Jupyter kernel's output (ipykernel's OutStream), which redraws
    a line as a terminal does."""
    return type(stream).__module__.startswith("ipykernel.")


def resolve_verbose(verbose):
    """``'auto'`` becomes 1 (a redrawn bar, as Keras draws it) at a terminal and in a Jupyter
    notebook, whose output redraws a line too, and 2 otherwise (one line per epoch, for logs)."""
    if verbose == "auto":
        return 1 if _isatty(sys.stdout) or _in_notebook(sys.stdout) else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}")
    return verbose
