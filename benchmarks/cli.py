"""``python -m benchmarks``: time npnet against tf.keras, Keras 3 on JAX, PyTorch and JAX on the tutorial workload.

Every framework runs the same workload in its own fresh process, repeated ``--repeats``
times, and the results come back as a Markdown table on stdout, optionally as JSON with
every raw measurement (``--json``) and as a PNG bar chart (``--plot``).
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile

from npnet.cli import positive_int as _positive_int
from npnet.utils import write_json_atomic

from . import child, environment, frameworks, report, runner

WORKLOAD = "Fashion-MNIST, Flatten → Dense(128, relu) → Dense(10, softmax), Adam, sparse categorical cross-entropy"

#: Full-run settings and the --quick overrides (tiny data: proves the pipeline in seconds).
FULL = {"epochs": 5, "repeats": 3, "n_train": 60000, "n_test": 10000, "predict_large_batch": 10000,
        "predict_calls": 3, "single_calls": 50, "single_warmup": 5, "tutorial_epochs": 5,
        "sweep_samples": 60000, "sweep_warmup_batches": 32,
        "sweep_points": [(32, 128), (128, 128), (512, 128), (32, 512), (32, 2048)]}
QUICK = {"epochs": 2, "repeats": 1, "n_train": 2048, "n_test": 2000, "predict_large_batch": 2000,
         "predict_calls": 2, "single_calls": 5, "single_warmup": 2, "tutorial_epochs": 1,
         "sweep_samples": 1024, "sweep_warmup_batches": 4,
         "sweep_points": [(32, 128), (128, 128), (32, 256)]}
#: Child time-outs in seconds (a hung child is killed and reported as failed).
TIMEOUT = {"full": 3600, "quick": 600}


def _framework_list(text):
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in frameworks.FRAMEWORKS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(frameworks.names())}; received {text!r}")
    return list(dict.fromkeys(chosen))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0],
        epilog="Full run: python -m benchmarks --json bench.json --plot bench.png. "
               "Scaling: add --sweep. Smoke test: --quick.")
    parser.add_argument("--frameworks", type=_framework_list, default=frameworks.names(),
                        metavar="LIST", help=f"comma-separated, from {', '.join(frameworks.names())} "
                                             "(default: all; those not installed are reported as skipped)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help=f"training epochs per run (default {FULL['epochs']}; quick {QUICK['epochs']}); "
                             "the warm epoch is the median of the epochs after the first")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help=f"fresh-process runs per framework (default {FULL['repeats']}; quick {QUICK['repeats']})")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="training batch size (default 32)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="pin every framework's thread pools to this many threads (default: "
                             "each framework's own default, which uses all cores)")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny data ({QUICK['n_train']} training, {QUICK['n_test']} test images), "
                             f"{QUICK['epochs']} epochs, 1 repeat: checks the pipeline, measures nothing")
    parser.add_argument("--sweep", action="store_true",
                        help="also time one epoch at batch sizes 32, 128, 512 and hidden widths "
                             "128, 512, 2048 next to the GEMM FLOP floor")
    parser.add_argument("--tutorial-rss", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the peak memory of a whole `python -m npnet tutorial` run "
                             "(default: on)")
    parser.add_argument("--json", metavar="PATH", help="write every raw measurement and the environment here")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG bar chart here")
    return parser


def resolve_settings(args):
    """The run's settings: FULL or QUICK, with the explicit options on top."""
    base = dict(QUICK if args.quick else FULL)
    settings = {**base, "quick": args.quick, "batch_size": args.batch_size, "threads": args.threads,
                "frameworks": args.frameworks, "workload": WORKLOAD, "sweep": args.sweep,
                "hidden": 128, "seed_base": 0}
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.repeats is not None:
        settings["repeats"] = args.repeats
    settings["sweep_points"] = [list(point) for point in settings["sweep_points"]]
    return settings


def fairness_statements(settings):
    threads = (f"every framework's thread pools are pinned to {settings['threads']} thread(s) "
               "(OMP/OpenBLAS/MKL/BLIS/NUMBA/TF variables, plus torch.set_num_threads and TF's "
               "threading config)" if settings["threads"] else
               f"no thread pinning: every framework uses its own default, which is all "
               f"{os.cpu_count()} cores here (numpy's BLAS, numba, TensorFlow's intra-op pool, "
               "torch.get_num_threads()); each child records the counts it saw. npnet's own "
               "choice within that: both backends train and evaluate on one thread (BLAS "
               "limited to one thread, numba loops serial) and predict with BLAS's threads")
    return [
        "Same data: every process loads Fashion-MNIST through npnet's loader and scales it to "
        "float32 exactly as np.float32(images / 255.0); labels are the same uint8 arrays.",
        f"Same work: batch size {settings['batch_size']}, shuffling every epoch, "
        f"{settings['epochs']} epochs, Adam (lr 1e-3, β1 0.9, β2 0.999, ε 1e-7), and fit with "
        "verbose=0 (no progress bar) in Keras and npnet; the PyTorch and JAX loops keep the "
        "same running loss and accuracy that fit keeps.",
        "PyTorch's and optax's Adam put ε elsewhere: they divide by sqrt(v̂) + ε after "
        "bias-correcting v, Keras (and npnet) by sqrt(v) + ε with the correction folded into "
        "the step size. Their weights start like Keras's (glorot-uniform kernels, zero "
        "biases); PyTorch's Adam is its default implementation, optax's is optax.adam.",
        f"Threads: {threads}.",
        "Fresh process per run: import, data loading, model building and JIT compilation or "
        "tracing are inside 'start-up to end of first step' and the first epoch, and excluded "
        "from the warm figures.",
        "npnet (numba) runs with its on-disk JIT cache warm (a directory first filled by the "
        "cold-cache run of the same invocation, through NUMBA_CACHE_DIR); the 'cold JIT cache' "
        "rows come from runs whose NUMBA_CACHE_DIR is a fresh empty directory (1 epoch each), "
        "which still load the kernels npnet's install precompiled for the common models (what "
        "a user's first run gets); the 'no precompiled kernels' rows add NPNET_PRECOMPILED=0, "
        "so every kernel is compiled: a true cold compile.",
        "Predict: each framework's natural call — Keras model.predict(x, batch_size=...), "
        "npnet model.predict(x, batch_size=...), PyTorch `with torch.no_grad(): "
        "softmax(model(x))` on all images at once — at the default batch size and at a large "
        "one, each warmed up first. Single image: predict() on one image, and the direct call "
        "model(x) (Keras model(x, training=False)).",
        "Peak memory: ru_maxrss of each child process (os.wait4), which includes the "
        "framework, the data (about 275 MB in a full run: the uint8 images and their float32 "
        "copies) and the model.",
        "Keras's fit is timed with epoch-begin/end callbacks and a batch-*begin* hook only, "
        "so its asynchronous batch-end dispatch stays on. npnet is compiled with "
        "steps_per_execution=64, what 'auto' gives a user without batch callbacks, so its timing "
        "hook runs once per compiled call of up to 64 batches; the end "
        "of step 1 is then seen when the first call returns (up to 63 steps, ~15 ms, late).",
    ] + compilation_statements()


def compilation_statements():
    """How the compiling frameworks are run and how their compile time is reported."""
    return [
        "JAX + optax: the model is a dict of arrays, the train step (forward, value_and_grad, "
        "optax.adam's update) one jax.jit function with donated buffers; the training arrays "
        "are put on the device once per fit and each batch is gathered by index inside the "
        "compiled code, with the running loss and accuracy summed there too. 'jit step' calls "
        "the step from a Python loop (it waits for the device once, after the first step, and "
        "at each epoch's end); 'lax.scan epoch' runs all full batches of an epoch as one jitted "
        "lax.scan of the same step (a last partial batch goes through the jitted step), so its "
        "'end of first step' is the end of the first epoch's call. predict is a jitted "
        "softmax(forward) on all images at once, like PyTorch's.",
        "Keras 3 (JAX): the same Keras code as tf.keras with KERAS_BACKEND=jax set in that "
        "child's environment before Keras is imported; compile() with Keras's defaults (XLA "
        "jit on, one step per compiled call) and the same timing callbacks as tf.keras.",
        "PyTorch (torch.compile): the model goes through torch.compile(model, dynamic=False) "
        "with the default inductor backend (one static-shape graph per batch shape); the loss, "
        "backward and Adam's step are the eager ones of the PyTorch row.",
        "Compilation is never excluded from the first epoch. Every row shows the first epoch, "
        "the median warm epoch and their difference; 'pure compile time in fit' adds up JAX's "
        "monitoring events (tracing, lowering, XLA compilation) for JAX and Keras 3 (JAX), and "
        "torch._dynamo's compile-time records (forward and backward graphs) for torch.compile; "
        "numba and tf.keras do not expose theirs ('—'). On-disk compilation caches: numba's and "
        "inductor's are both run cold (an empty NUMBA_CACHE_DIR / TORCHINDUCTOR_CACHE_DIR, the "
        "'cold JIT cache' rows) and warm (the cache a cold run of this invocation filled); "
        "JAX's persistent cache is off by default and stays off, so JAX compiles in every process.",
        "XLA's CPU thread pool (JAX, Keras 3 on JAX) has no public thread setting: --threads "
        "does not pin it; without --threads every framework uses all cores by default anyway.",
    ]


def _cold_config(config):
    """A cold-JIT-cache run: only start-up and the first epoch matter."""
    return {**config, "epochs": 1, "predict_calls": 1, "single_calls": 1, "single_warmup": 1}


def jit_cache_env(name, scratch, repeat=0):
    """``{VARIABLE: directory}`` of the framework's on-disk JIT cache, or None if it keeps none.

    Repeat r's cold run fills ``<scratch>/<name>-cache-<r>``; every warm run (and the sweep,
    and the tutorial's memory run) reuses repeat 0's.
    """
    variable = frameworks.JIT_CACHE_ENV.get(name)
    if variable is None:
        return None
    return {variable: os.path.join(scratch, f"{name}-cache-{repeat}")}


def run_workloads(settings, runnable, scratch, say):
    """All workload runs, repeat by repeat (frameworks interleaved); returns the records.

    A framework with an on-disk JIT cache (``frameworks.JIT_CACHE_ENV``) first runs once
    with an empty cache (the cold rows), then with the cache of repeat 0's cold run.
    """
    timeout = TIMEOUT["quick" if settings["quick"] else "full"]
    records = {name: {"status": "ok", "runs": [], "cold_runs": [], "uncompiled_runs": []} for name in runnable}
    for repeat in range(settings["repeats"]):
        config = {"kind": "workload", "epochs": settings["epochs"], "batch_size": settings["batch_size"],
                  "n_train": settings["n_train"], "n_test": settings["n_test"],
                  "hidden": settings["hidden"], "seed": settings["seed_base"] + repeat,
                  "predict_large_batch": settings["predict_large_batch"],
                  "predict_calls": settings["predict_calls"], "single_calls": settings["single_calls"],
                  "single_warmup": settings["single_warmup"]}
        for name in runnable:
            record = records[name]
            if record["status"] != "ok":
                continue
            try:
                _cold_runs(name, record, config, settings, scratch, repeat, say)
                extra_env = jit_cache_env(name, scratch)
                say(f"[repeat {repeat + 1}/{settings['repeats']}] {name} ...")
                record["runs"].append(runner.run_child(name, config, threads=settings["threads"],
                                                       extra_env=extra_env, timeout=timeout))
            except runner.ChildFailed as error:
                record.update(status="failed", reason=str(error))
                say(f"  {name} failed: {error}")
    return records


def _cold_runs(name, record, config, settings, scratch, repeat, say):
    """Repeat ``repeat``'s runs with an empty JIT cache: as installed, then without precompiled code."""
    cold_env = jit_cache_env(name, scratch, repeat)
    if not cold_env:
        return
    timeout = TIMEOUT["quick" if settings["quick"] else "full"]
    variants = [("cold_runs", "cold JIT cache", cold_env)]
    if name in frameworks.PRECOMPILED_OFF_ENV:
        uncompiled_env = {variable: f"{directory}-no-precompiled" for variable, directory in cold_env.items()}
        variants.append(("uncompiled_runs", "cold JIT cache, no precompiled kernels",
                         {**uncompiled_env, **frameworks.PRECOMPILED_OFF_ENV[name]}))
    for key, what, env in variants:
        for variable in jit_cache_env(name, scratch):  # only the cache directories
            os.makedirs(env[variable])
        say(f"[repeat {repeat + 1}/{settings['repeats']}] {name}, {what} ...")
        record[key].append(runner.run_child(name, _cold_config(config), threads=settings["threads"],
                                            extra_env=env, timeout=timeout))


def run_tutorial_rss(settings, runnable, scratch, say):
    """Peak memory (ru_maxrss) of a whole ``python -m npnet tutorial`` process."""
    backend = "numba" if "npnet-numba" in runnable else "numpy"
    display = ["python", "-m", "npnet", "tutorial", "--epochs", str(settings["tutorial_epochs"]),
               "--verbose", "0", "--backend", backend]
    command = [sys.executable] + display[1:]
    extra = jit_cache_env(f"npnet-{backend}", scratch) or {}
    env = runner.child_environment(settings["threads"], extra)
    say(f"npnet tutorial ({backend}) for its peak memory ...")
    record = {"command": command, "display_command": display, "backend": backend}
    try:
        code, peak, wall, stderr = runner.run_command(
            command, env, TIMEOUT["quick" if settings["quick"] else "full"])
    except runner.ChildFailed as error:
        return {**record, "status": "failed", "reason": str(error)}
    if code != 0:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        return {**record, "status": "failed", "reason": f"exit code {code}: {tail}"}
    return {**record, "status": "ok", "peak_rss_bytes": peak, "wall_s": wall}


def run_sweep(settings, runnable, scratch, sgemm, say):
    """Epoch time at each (batch size, hidden width) point, one fresh process per framework."""
    timeout = TIMEOUT["quick" if settings["quick"] else "full"]
    config = {"kind": "sweep", "points": settings["sweep_points"], "n_train": settings["sweep_samples"],
              "warmup_batches": settings["sweep_warmup_batches"], "timed_epochs": 1,
              "seed": settings["seed_base"]}
    gflops = sgemm["gflops_best"]
    points = [{"batch_size": b, "hidden": h, "n_samples": settings["sweep_samples"],
               "gflop": environment.epoch_flop(settings["sweep_samples"], h) / 1e9,
               "epoch_s": {}, "raw": {}} for b, h in settings["sweep_points"]]
    for point in points:
        point["floor_s"] = point["gflop"] / gflops
    measured, not_measured, runs = [], {}, {}
    for name in runnable:
        extra_env = jit_cache_env(name, scratch)
        say(f"sweep: {name} ...")
        try:
            result = runner.run_child(name, config, threads=settings["threads"], extra_env=extra_env,
                                      timeout=timeout)
        except runner.ChildFailed as error:
            not_measured[name] = str(error)
            say(f"  {name} failed: {error}")
            continue
        measured.append(name)
        runs[name] = result
        for point, got in zip(points, result["measurements"]["points"]):
            point["raw"][name] = got["epoch_s"]
            point["epoch_s"][name] = report.summarize(got["epoch_s"])["median"]
    return {"frameworks": measured, "not_measured": not_measured, "points": points,
            "n_samples": settings["sweep_samples"], "warmup_batches": settings["sweep_warmup_batches"],
            "timed_epochs": 1, "flop_formula": environment.FLOP_FORMULA, "gflops": gflops,
            "sgemm_shape": sgemm["shape"], "runs": runs}


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = resolve_settings(args)

    def say(text):
        print(text, file=sys.stderr, flush=True)

    records, runnable = skip_missing(settings["frameworks"], say)

    env = environment.collect()
    load_at_start = environment.load_average()
    say("measuring numpy's float32 GEMM rate ...")
    sgemm = environment.measure_sgemm()
    # One untimed load first: the files are then in the OS page cache and npnet's
    # verified-hash cache for every child alike (no child pays the first-ever read).
    say("loading the data once (untimed) ...")
    child.load_data(1, 1)

    scratch = tempfile.mkdtemp(prefix="npnet-bench-")
    try:
        records.update(run_workloads(settings, runnable, scratch, say))
        ran = [name for name in runnable if records[name]["status"] == "ok"]
        tutorial = None
        if args.tutorial_rss and ("npnet-numba" in ran or "npnet-numpy" in ran):
            tutorial = run_tutorial_rss(settings, ran, scratch, say)
        sweep = run_sweep(settings, ran, scratch, sgemm, say) if args.sweep else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if load_at_start is not None:
        env["load_average"] = {"start": load_at_start, "end": environment.load_average()}
    # Keep the caller's order, with the baseline's runs summarised like everyone's.
    records = {name: records[name] for name in settings["frameworks"]}
    for record in records.values():
        record["summary"] = report.summarize_framework(record) if record["status"] == "ok" else {}
    summaries = {name: record["summary"] for name, record in records.items() if record["status"] == "ok"}
    result = {
        "schema": "npnet-benchmarks/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks"] + list(sys.argv[1:] if argv is None else argv),
        "settings": settings,
        "fairness": fairness_statements(settings),
        "environment": env,
        "sgemm": sgemm,
        "frameworks": records,
        "ratios_to_tf_keras": report.ratios_to_baseline(summaries),
        "tutorial_rss": tutorial,
        "sweep": sweep,
    }
    print(report.markdown(result), end="")
    if args.json:
        write_json_atomic(args.json, result)
        say(f"wrote {args.json}")
    if args.plot:
        from . import plot

        plot.write(result, args.plot)
        say(f"wrote {args.plot}")
    return exit_code(records, tutorial, sweep, say)


def skip_missing(names, say):
    """``(records of the frameworks that are not installed, names of those that can run)``."""
    records, runnable = {}, []
    for name in names:
        reason = frameworks.missing_reason(name)
        if reason:
            records[name] = {"status": "skipped", "reason": reason, "runs": [], "cold_runs": [],
                             "uncompiled_runs": []}
            say(f"{name}: skipped ({reason})")
        else:
            runnable.append(name)
    return records, runnable


def exit_code(records, tutorial, sweep, say):
    """1 when any run failed (a skipped framework is not a failure), else 0."""
    failed = [name for name, record in records.items() if record["status"] == "failed"]
    if tutorial is not None and tutorial["status"] != "ok":
        failed.append("npnet tutorial")
    if sweep is not None and sweep["not_measured"]:
        failed += [f"sweep {name}" for name in sweep["not_measured"]]
    if failed:
        say(f"failed: {', '.join(failed)}")
        return 1
    return 0
