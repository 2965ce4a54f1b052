"""One measurement run of one framework, in its own fresh process.

The parent (``python -m benchmarks``) starts::

    python -m benchmarks.child --framework NAME --config JSON --launch-time T --out PATH

and reads the JSON result written to PATH. Two kinds of run (``config["kind"]``):

* ``"workload"``: the tutorial workload. Import the framework, load the data through npnet's
  loader, build the model, ``fit`` for ``epochs`` epochs (each epoch timed, and the pure compile
  time of ``fit`` where the framework exposes it), then time predict on the test images
  (first call, then warm calls at the default and at a large batch size), single-image
  latency, test accuracy, and the process's peak resident memory.
* ``"sweep"``: epoch time for each (batch size, hidden width) of ``config["points"]``; each
  point gets a new model, an untimed warm-up fit, then one timed epoch.

Times are wall-clock: ``time.perf_counter`` inside the process, and ``time.time`` against
the parent's launch stamp for "start-up to first step".
"""

import argparse
import gc
import json
import os
import sys
import time


def _stamp(launch_time):
    """Seconds since the parent launched this process."""
    return time.time() - launch_time


def scale_images(images):
    """uint8 images (n, 28, 28) -> float32 in [0, 1], the same values as ``np.float32(images / 255.0)``.

    A 256-entry table of exactly those values, indexed by the pixels, gives every framework
    the tutorial's scaling without the tutorial's float64 temporary (470 MB for the training
    images), which would otherwise dominate every process's peak memory.
    """
    import numpy as np

    table = (np.arange(256) / 255.0).astype(np.float32)
    return table[images]


def load_data(n_train, n_test):
    """The first n_train training and n_test test samples through npnet's loader, scaled.

    Returns x_train (n_train, 28, 28) float32, y_train (n_train,) uint8, x_test, y_test.
    """
    from npnet.datasets import fashion_mnist

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    return (scale_images(x_train[:n_train]), y_train[:n_train].copy(),
            scale_images(x_test[:n_test]), y_test[:n_test].copy())


def _timed(function, repeats):
    """Call ``function()`` ``repeats`` times; the list of durations in seconds."""
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def peak_rss_bytes():
    """VmHWM from /proc/self/status (the peak resident set), or ru_maxrss where that is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_workload(name, config, launch_time):
    """The tutorial workload; returns the result dict (see the module docstring)."""
    from . import frameworks

    startup = {}
    adapter = frameworks.create(name, config.get("threads"))
    startup["imports_done_s"] = _stamp(launch_time)
    x_train, y_train, x_test, y_test = load_data(config["n_train"], config["n_test"])
    startup["data_loaded_s"] = _stamp(launch_time)
    adapter.build(config["hidden"], config["seed"])
    startup["model_built_s"] = _stamp(launch_time)

    timer = frameworks.FitTimer()
    history = adapter.fit(x_train, y_train, config["epochs"], config["batch_size"], timer)
    startup["first_step_end_s"] = timer.first_step_end - launch_time
    compile_report = adapter.compile_report()  # before predict, which may compile more
    del x_train, y_train
    gc.collect()

    predict = {}
    large = config["predict_large_batch"]
    calls = config["predict_calls"]
    start = time.perf_counter()
    probabilities = adapter.predict(x_test)
    predict["first_call_default_batch_s"] = time.perf_counter() - start
    predict["default_batch_s"] = _timed(lambda: adapter.predict(x_test), calls)
    adapter.predict(x_test, batch_size=large)  # warm-up at this batch size (Keras may retrace)
    predict["large_batch_s"] = _timed(lambda: adapter.predict(x_test, batch_size=large), calls)
    onnx_predict = getattr(adapter, "onnx_predictor", lambda: None)()
    if onnx_predict is not None:
        onnx_predict(x_test)  # warm-up: onnxruntime allocates on its first run
        predict["onnxruntime_s"] = _timed(lambda: onnx_predict(x_test), calls)

    image = x_test[1:2]
    for _ in range(config["single_warmup"]):
        adapter.predict(image)
        adapter.call(image)
    single_predict_s = _timed(lambda: adapter.predict(image), config["single_calls"])
    single_call_s = _timed(lambda: adapter.call(image), config["single_calls"])

    test_accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    return {
        "framework": name,
        "kind": "workload",
        "measurements": {
            "startup": startup,
            "epoch_s": timer.epoch_s,
            "compile": compile_report,
            "train_loss": [float(v) for v in history["loss"]],
            "train_accuracy": [float(v) for v in history["accuracy"]],
            "predict": predict,
            "single_predict_s": single_predict_s,
            "single_call_s": single_call_s,
            "test_accuracy": test_accuracy,
            "peak_rss_bytes_vmhwm": peak_rss_bytes(),
        },
        "shapes": {"x_test": list(x_test.shape), "predictions": list(probabilities.shape)},
        "info": adapter.info(),
    }


def run_sweep(name, config, launch_time):
    """Epoch time at each (batch_size, hidden) point; see the module docstring."""
    from . import frameworks

    adapter = frameworks.create(name, config.get("threads"))
    x_train, y_train, _, _ = load_data(config["n_train"], 0)
    n_train = x_train.shape[0]
    points = []
    for batch_size, hidden in config["points"]:
        adapter.build(hidden, config["seed"])
        # The warm-up sees the same batch shapes as the timed epoch (full batches and the
        # last, partial one), so no tracing or compilation falls inside the timed epoch. An
        # epoch compiled as one call (lax.scan over the batches) is shaped by the number of
        # batches too, so it warms up on a whole epoch.
        n_warmup = min(n_train, config["warmup_batches"] * batch_size) + n_train % batch_size
        n_warmup = n_train if getattr(adapter, "compiles_whole_epochs", False) else min(n_warmup, n_train)
        adapter.fit(x_train[:n_warmup], y_train[:n_warmup], 1, batch_size, frameworks.FitTimer())
        timer = frameworks.FitTimer()
        history = adapter.fit(x_train, y_train, config["timed_epochs"], batch_size, timer)
        points.append({"batch_size": batch_size, "hidden": hidden, "n_samples": n_train,
                       "epoch_s": timer.epoch_s, "warmup_samples": n_warmup,
                       "compile": adapter.compile_report(),
                       "train_loss": [float(v) for v in history["loss"]]})
        adapter.model = None
        gc.collect()
    return {"framework": name, "kind": "sweep", "measurements": {"points": points},
            "info": adapter.info()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child",
                                     description="One benchmark run (started by python -m benchmarks).")
    parser.add_argument("--framework", required=True)
    parser.add_argument("--config", required=True, help="the run's settings as JSON")
    parser.add_argument("--launch-time", type=float, required=True,
                        help="time.time() in the parent just before it started this process")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    run = {"workload": run_workload, "sweep": run_sweep}[config["kind"]]
    result = run(args.framework, config, args.launch_time)
    result["config"] = config
    from npnet.utils import write_json_atomic  # after the measurements: import time is measured

    write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
