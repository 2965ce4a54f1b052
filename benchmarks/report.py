"""From raw runs to summaries (median and min–max), ratios to tf.keras, and Markdown tables."""

import math
import statistics

from . import environment, frameworks

# Each metric: key -> (row label, unit, kind, where its samples come from).
# kind "time" and "memory": smaller is better, the ratio is tf.keras ÷ framework;
# kind "accuracy": the comparison is the difference in percentage points;
# kind "info": shown in the main table only, no ratio (a difference of times can be near 0).
# source "runs" reads the regular runs, "cold_runs" the runs with an empty JIT cache (npnet's
# precompiled kernels still on: what a user's first run after installing gets), "uncompiled_runs"
# the runs with an empty JIT cache and the precompiled kernels off (a true cold compile).
METRICS = {
    "startup_s": ("start-up to end of first step", "s", "time", "runs"),
    "first_epoch_s": ("first epoch", "s", "time", "runs"),
    "warm_epoch_s": ("warm epoch (median of epochs 2+)", "s", "time", "runs"),
    "first_epoch_extra_s": ("first epoch − warm epoch (compilation, tracing, first-call costs)", "s",
                            "info", "runs"),
    "compile_s": ("pure compile time in fit, where the framework exposes it", "s", "time", "runs"),
    "cold_startup_s": ("start-up to end of first step, cold JIT cache", "s", "time", "cold_runs"),
    "cold_first_epoch_s": ("first epoch, cold JIT cache", "s", "time", "cold_runs"),
    "uncompiled_startup_s": ("start-up to end of first step, cold JIT cache, no precompiled kernels", "s",
                             "time", "uncompiled_runs"),
    "uncompiled_first_epoch_s": ("first epoch, cold JIT cache, no precompiled kernels", "s", "time",
                                 "uncompiled_runs"),
    "predict_first_s": ("predict {n_test}, first call (default batch size)", "s", "time", "runs"),
    "predict_default_s": ("predict {n_test}, default batch size (warm)", "s", "time", "runs"),
    "predict_large_s": ("predict {n_test}, large batch (warm)", "s", "time", "runs"),
    "predict_onnxruntime_s": ("predict {n_test} with onnxruntime, on the model npnet exported to ONNX", "s",
                              "time", "runs"),
    "single_predict_ms": ("single-image predict", "ms", "time", "runs"),
    "single_call_ms": ("single-image model(x) call", "ms", "time", "runs"),
    "peak_rss_mib": ("peak resident memory", "MiB", "memory", "runs"),
    "test_accuracy": ("test accuracy", "%", "accuracy", "runs"),
}


def row_label(metric, settings):
    """The metric's row label, with the number of test images filled in (e.g. "predict 10k")."""
    n_test = settings["n_test"]
    count = f"{n_test // 1000}k" if n_test % 1000 == 0 else f"{n_test:,}"
    return METRICS[metric][0].format(n_test=count)


def samples(metric, run):
    """The samples one run contributes to ``metric`` (a list; empty when not measured)."""
    m = run["measurements"]
    epochs = m["epoch_s"]
    predict = m["predict"]
    extract = {
        "startup_s": lambda: [m["startup"]["first_step_end_s"]],
        "first_epoch_s": lambda: epochs[:1],
        "warm_epoch_s": lambda: epochs[1:],
        "first_epoch_extra_s": lambda: [epochs[0] - statistics.median(epochs[1:])] if epochs[1:] else [],
        "compile_s": lambda: _compile_seconds(m),
        "cold_startup_s": lambda: [m["startup"]["first_step_end_s"]],
        "cold_first_epoch_s": lambda: epochs[:1],
        "uncompiled_startup_s": lambda: [m["startup"]["first_step_end_s"]],
        "uncompiled_first_epoch_s": lambda: epochs[:1],
        "predict_first_s": lambda: [predict["first_call_default_batch_s"]],
        "predict_default_s": lambda: predict["default_batch_s"],
        "predict_large_s": lambda: predict["large_batch_s"],
        "predict_onnxruntime_s": lambda: predict.get("onnxruntime_s", []),
        "single_predict_ms": lambda: [1000 * t for t in m["single_predict_s"]],
        "single_call_ms": lambda: [1000 * t for t in m["single_call_s"]],
        "peak_rss_mib": lambda: [m["peak_rss_bytes"] / 2**20],
        "test_accuracy": lambda: [100 * m["test_accuracy"]],
    }
    return list(extract[metric]())


def _compile_seconds(measurements):
    """``[seconds]`` of the run's compile report, or ``[]`` where the framework exposes none."""
    seconds = (measurements.get("compile") or {}).get("compile_s")
    return [] if seconds is None else [seconds]


def summarize(values):
    """``{"median", "min", "max", "n"}`` of a non-empty list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize_framework(record):
    """Summaries of every metric measured for one framework, pooling the samples of all runs.

    E.g. the warm epoch pools epochs 2..E of every repeat; start-up has one sample per repeat.
    """
    summary = {}
    for metric, (_, _, _, source) in METRICS.items():
        pooled = [value for run in record.get(source, []) for value in samples(metric, run)]
        if pooled:
            summary[metric] = summarize(pooled)
    return summary


def ratios_to_baseline(summaries, baseline=frameworks.BASELINE):
    """Per framework and metric: tf.keras median ÷ framework median (times, memory; >1 is
    better than tf.keras) or framework − tf.keras (accuracy, in percentage points)."""
    base = summaries.get(baseline)
    if not base:
        return {}
    ratios = {}
    for name, summary in summaries.items():
        if name == baseline:
            continue
        ratios[name] = {}
        for metric, stats in summary.items():
            if metric not in base:
                continue
            kind = METRICS[metric][2]
            if kind == "info":
                continue
            if kind == "accuracy":
                ratios[name][metric] = stats["median"] - base[metric]["median"]
            else:
                ratios[name][metric] = base[metric]["median"] / stats["median"]
    return ratios


# ----------------------------------------------------------------------------- Markdown


def fmt(value):
    """A number to about three significant figures, without exponents for ordinary sizes."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.001 or magnitude == 0:
        return f"{value:.3g}"
    return f"{value:.2e}"


def cell(stats):
    if stats is None:
        return "—"
    if stats["n"] == 1 or stats["min"] == stats["max"]:
        return fmt(stats["median"])
    return f"{fmt(stats['median'])} ({fmt(stats['min'])}–{fmt(stats['max'])})"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result):
    """The whole report as Markdown (what ``python -m benchmarks`` prints)."""
    settings = result["settings"]
    records = result["frameworks"]
    ok = [name for name, record in records.items() if record["status"] == "ok"]
    summaries = {name: records[name]["summary"] for name in ok}
    out = [f"## npnet benchmark: {settings['workload']}", ""]
    out.append(f"{settings['epochs']} epochs, batch size {settings['batch_size']}, "
               f"{settings['n_train']:,} training and {settings['n_test']:,} test images, "
               f"{settings['repeats']} repeat(s), each run in a fresh process"
               + (" — QUICK MODE (tiny data: a smoke test, not a measurement)" if settings["quick"] else "")
               + ".")
    out.append("Cells: median (min–max) over all samples: one per repeat for start-up, first "
               f"epoch and memory; the epochs after the first for the warm epoch; "
               f"{settings['predict_calls']} warm calls per repeat for predict, "
               f"{settings['single_calls']} calls for the single image.")
    out.append("")
    if ok:
        rows = []
        for metric, (_, unit, _, _) in METRICS.items():
            if not any(metric in summaries[name] for name in ok):
                continue
            rows.append([f"{row_label(metric, settings)} ({unit})"] + [cell(summaries[name].get(metric)) for name in ok])
        out.append(table(["measurement"] + [frameworks.label(name) for name in ok], rows))
        out.append("")
        out.append(f"predict batch sizes: default = each framework's own (Keras and npnet 32; "
                   f"PyTorch and JAX have none: `model(x)` on all images at once, in both rows), "
                   f"large = {settings['predict_large_batch']:,}.")
        out.append("")

    out += _ratio_lines(result, ok)
    out += _tutorial_lines(result.get("tutorial_rss"))
    out += _not_measured_lines(records)

    sweep = result.get("sweep")
    if sweep:
        out.append(sweep_markdown(sweep))

    out.append("### Fairness")
    out.append("")
    out += [f"- {line}" for line in result["fairness"]]
    out.append("")
    out.append("### Environment")
    out.append("")
    out += [f"- {line}" for line in environment_lines(result)]
    return "\n".join(out) + "\n"


def _ratio_lines(result, ok):
    """The table of ratios to tf.keras (or a note that tf.keras did not run)."""
    settings = result["settings"]
    out = []
    ratios = result.get("ratios_to_tf_keras") or {}
    if ratios:
        others = [name for name in ok if name in ratios]
        rows = []
        for metric, (_, _, kind, _) in METRICS.items():
            if not any(metric in ratios[name] for name in others):
                continue
            if kind == "accuracy":
                rendered = [_points(ratios[name].get(metric)) for name in others]
                rows.append([f"{row_label(metric, settings)} (points vs tf.keras)"] + rendered)
            else:
                rendered = [_times(ratios[name].get(metric)) for name in others]
                rows.append([row_label(metric, settings)] + rendered)
        out.append("### Relative to tf.keras (tf.keras median ÷ framework median: above 1× is "
                   "faster or smaller)")
        out.append("")
        out.append(table(["measurement"] + [frameworks.label(name) for name in others], rows))
        out.append("")
    elif ok:
        out.append("(No ratios to tf.keras: tf.keras did not run in this invocation.)")
        out.append("")
    return out


def _tutorial_lines(tutorial):
    """The peak memory of the whole ``npnet tutorial`` run, when it was measured."""
    out = []
    if tutorial:
        if tutorial["status"] == "ok":
            out.append(f"Peak resident memory of a whole `{' '.join(tutorial['display_command'])}` "
                       f"run: {fmt(tutorial['peak_rss_bytes'] / 2**20)} MiB (ru_maxrss; "
                       f"{fmt(tutorial['wall_s'])} s wall).")
        else:
            out.append(f"npnet tutorial run: {tutorial['status']}: {tutorial.get('reason', '')}")
        out.append("")
    return out


def _not_measured_lines(records):
    """The frameworks that were skipped or failed, each with the reason."""
    out = []
    not_run = [(name, record) for name, record in records.items() if record["status"] != "ok"]
    if not_run:
        out.append("### Not measured")
        out.append("")
        for name, record in not_run:
            reason = record.get("reason", "").strip().replace("\n", "\n    ")
            out.append(f"- {frameworks.label(name)}: {record['status']} — {reason}")
        out.append("")
    return out


def _times(value):
    return "—" if value is None else f"{fmt(value)}×"


def _points(value):
    return "—" if value is None else f"{value:+.2f}"


def sweep_markdown(sweep):
    names = sweep["frameworks"]
    out = ["### Scaling: epoch time against batch size and hidden width", ""]
    out.append(f"One timed epoch over {sweep['n_samples']:,} training images per point, after an "
               f"untimed warm-up fit ({sweep['warmup_batches']} batches plus the last partial "
               "batch, so no compilation or tracing is timed); one fresh process per framework.")
    out.append(f"GEMM floor = FLOP ÷ {fmt(sweep['gflops'])} GFLOP/s, the best rate of numpy's float32 "
               f"({' × '.join(map(str, sweep['sgemm_shape'][:2]))}) @ "
               f"({' × '.join(map(str, sweep['sgemm_shape'][1:]))}) matmul measured in this run. "
               f"{environment.FLOP_FORMULA}. "
               "Cells: seconds (multiple of the floor).")
    out.append("")
    rows = []
    for point in sweep["points"]:
        floor = point["floor_s"]
        row = [str(point["batch_size"]), str(point["hidden"]), fmt(point["gflop"]), fmt(floor)]
        for name in names:
            seconds = point["epoch_s"].get(name)
            row.append("—" if seconds is None else f"{fmt(seconds)} ({fmt(seconds / floor)}×)")
        rows.append(row)
    header = ["batch", "hidden", "GFLOP/epoch", "GEMM floor (s)"] + [frameworks.label(n) for n in names]
    out.append(table(header, rows))
    out.append("")
    for name, reason in sweep.get("not_measured", {}).items():
        out.append(f"- {frameworks.label(name)}: not in the sweep — {reason}")
    if sweep.get("not_measured"):
        out.append("")
    return "\n".join(out)


def environment_lines(result):
    env = result["environment"]
    lines = [f"CPU: {env['cpu_model']}, {env['logical_cpus']} logical CPUs "
             f"({env['usable_cpus']} usable), {fmt((env['memory_total_bytes'] or 0) / 2**30)} GiB RAM",
             f"{env['platform']}, Python {env['python']}"]
    blas = env.get("numpy_blas") or {}
    blas_text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip() if blas else "unknown"
    versions = [f"numpy {env['numpy']} (BLAS: {blas_text})"]
    for key, name in (("numba", "numba"), ("scipy", "SciPy"), ("tensorflow", "TensorFlow"),
                      ("keras", "Keras"), ("torch", "PyTorch"), ("jax", "JAX"), ("jaxlib", "jaxlib"),
                      ("optax", "optax")):
        versions.append(f"{name} {env.get(key) or 'not installed'}")
    lines.append(", ".join(versions))
    load = env.get("load_average")
    if load:
        # Either end counts: other work that starts during a run slows it as much.
        busy = max(load["start"], load["end"]) > 0.5 * (env["usable_cpus"] or 1)
        lines.append(f"1-minute load average: {load['start']:.2f} at the start, {load['end']:.2f} at the "
                     f"end" + (" — other processes were busy: these times are not reliable" if busy else ""))
    sgemm = result["sgemm"]
    lines.append(f"numpy float32 GEMM {' × '.join(map(str, sgemm['shape']))}: "
                 f"{fmt(sgemm['gflops_best'])} GFLOP/s best, {fmt(sgemm['gflops_median'])} median")
    return lines
