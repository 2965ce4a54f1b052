"""The benchmark's bar chart (matplotlib's Figure API, no pyplot), written to a PNG."""

from npnet.utils import atomic_write

from . import frameworks

#: (metric, legend label) groups shown side by side for every framework, one panel each.
PANELS = (
    ("Training: seconds per epoch", (("first_epoch_s", "first epoch"),
                                     ("warm_epoch_s", "warm epoch"),
                                     ("cold_first_epoch_s", "first epoch, cold JIT cache"),
                                     ("compile_s", "pure compile time in fit"))),
    ("Predict {n_test:,} test images: seconds", (("predict_default_s", "default batch size"),
                                             ("predict_large_s", "large batch"))),
)


def figure(result):
    """A Figure with one log-scale panel per group in PANELS (plus the sweep when present).

    Bars are medians; the error bars span min–max over the samples.
    """
    from matplotlib.figure import Figure

    records = result["frameworks"]
    names = [name for name, record in records.items() if record["status"] == "ok"]
    sweep = result.get("sweep")
    n_panels = len(PANELS) + (2 if sweep else 0)
    width = max(6, 0.9 * len(names) + 1.5)  # room for every framework's bars and label
    fig = Figure(figsize=(width * min(n_panels, 2), 5 * ((n_panels + 1) // 2)), layout="constrained")
    axes = fig.subplots((n_panels + 1) // 2, min(n_panels, 2), squeeze=False).ravel()
    settings = result["settings"]
    for ax, (title, series) in zip(axes, PANELS):
        _bars(ax, title.format(n_test=settings["n_test"]), names, records, series)
    if sweep:
        _sweep_lines(axes[len(PANELS)], sweep, "hidden", "hidden width (batch size 32)")
        _sweep_lines(axes[len(PANELS) + 1], sweep, "batch_size", "batch size (hidden width 128)")
    fig.suptitle(f"npnet benchmark: {settings['workload']}"
                 + (" (QUICK MODE: tiny data)" if settings["quick"] else ""), fontsize=10)
    return fig


def _bars(ax, title, names, records, series):
    present = [(metric, text) for metric, text in series
               if any(metric in records[name]["summary"] for name in names)]
    width = 0.8 / max(len(present), 1)
    for i, (metric, text) in enumerate(present):
        xs, heights, low, high = [], [], [], []
        for j, name in enumerate(names):
            stats = records[name]["summary"].get(metric)
            if stats is None:
                continue
            xs.append(j + (i - (len(present) - 1) / 2) * width)
            heights.append(stats["median"])
            low.append(stats["median"] - stats["min"])
            high.append(stats["max"] - stats["median"])
        ax.bar(xs, heights, width, yerr=[low, high], capsize=3, label=text)
    ax.set_xticks(range(len(names)), [frameworks.label(name) for name in names],
                  rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    if present:
        ax.legend(fontsize=8)


def _sweep_lines(ax, sweep, varying, xlabel):
    fixed = {"hidden": ("batch_size", 32), "batch_size": ("hidden", 128)}[varying]
    points = sorted((p for p in sweep["points"] if p[fixed[0]] == fixed[1]), key=lambda p: p[varying])
    xs = [p[varying] for p in points]
    for name in sweep["frameworks"]:
        ys = [p["epoch_s"].get(name) for p in points]
        kept = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if kept:
            ax.plot(*zip(*kept), marker="o", label=frameworks.label(name))
    if points:
        ax.plot(xs, [p["floor_s"] for p in points], "k--", label="GEMM floor")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds per epoch")
    ax.set_title(f"Scaling with {xlabel}", fontsize=10)
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)


def write(result, path):
    """Render the figure to ``path`` as PNG, through a temporary file renamed into place."""
    fig = figure(result)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
