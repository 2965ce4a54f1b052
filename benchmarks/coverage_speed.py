"""Speed of the numba backend's configurations on the tutorial data (issue 13, point 4).

Two measurements, each printed as JSON lines:

* ``warm``: for each configuration, an untimed fit that compiles its kernels, then timed
  one-epoch fits at batch 32 on the 60,000 training images of a new model each time (the
  first epoch of training, kernels compiled), alternating between the configurations
  (interleaved, so a machine that changes speed affects them alike). With ``--baseline DIR`` the tutorial
  model also runs on a copy of an older npnet, importable from DIR as ``npnet_baseline``, in
  the same process, interleaved with today's; with ``--baseline-each`` every selected
  configuration does. Each line gives the best and the median epoch, and their ratios to the
  same package's tutorial epoch in the same run.
* ``cold``: one child process per package with ``NUMBA_CACHE_DIR`` pointing at an empty
  directory: the time (wall and CPU) from ``compile`` to the end of the first tutorial
  epoch (or of each ``--only`` configuration's), which includes compiling the kernels; the
  packages alternate.

Run from the repository root::

    python -m benchmarks.coverage_speed warm --rounds 3 [--baseline /tmp/old [--baseline-each]] [--only NAME ...]
    python -m benchmarks.coverage_speed cold [--baseline /tmp/old]

Wall-clock only; numbers go to docs/performance.md, never into tests.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_SPARSE, _HIDDEN = "sparse_categorical_crossentropy", [("dense", 128, "relu")]
#: name -> (hidden layers after Flatten, output activation, loss, optimizer spec, floatx[, extras]),
#: extras: "metrics" (default ["accuracy"] for class labels), "loss_options" (given to the
#: loss class of that name), "sample_weight" (fit's: a weight per sample, from 0.5 to 1.5)
CONFIGURATIONS = {
    "tutorial (adam)": (_HIDDEN, "softmax", _SPARSE, ("adam", {}), "float32"),
    "sgd": (_HIDDEN, "softmax", _SPARSE, ("sgd", {}), "float32"),
    "sgd momentum nesterov": (_HIDDEN, "softmax", _SPARSE, ("sgd", {"momentum": 0.9, "nesterov": True}), "float32"),
    "rmsprop centered momentum": (_HIDDEN, "softmax", _SPARSE, ("rmsprop", {"momentum": 0.5, "centered": True}),
                                  "float32"),
    "dropout 0.2": (_HIDDEN + [("dropout", 0.2)], "softmax", _SPARSE, ("adam", {}), "float32"),
    "l2 kernel": ([("dense_l2", 128, "relu")], "softmax", _SPARSE, ("adam", {}), "float32"),
    "categorical crossentropy": (_HIDDEN, "softmax", "categorical_crossentropy", ("adam", {}), "float32"),
    "frozen first layer": ([("frozen", 128, "relu")], "softmax", _SPARSE, ("adam", {}), "float32"),
    "hidden softmax": ([("dense", 128, "softmax")], "softmax", _SPARSE, ("adam", {}), "float32"),
    "float64": (_HIDDEN, "softmax", _SPARSE, ("adam", {}), "float64"),
}
#: Keras's other activations on the hidden layer (the kernels' activation rows)
CONFIGURATIONS.update({f"hidden {name}": ([("dense", 128, name)], "softmax", _SPARSE, ("adam", {}), "float32")
                       for name in ("elu", "selu", "gelu", "softplus", "softsign", "silu", "leaky_relu",
                                    "exponential", "hard_sigmoid")})
CONFIGURATIONS.update({
    "l1 kernel": ([("dense_l1", 128, "relu")], "softmax", _SPARSE, ("adam", {}), "float32"),
    "l1_l2 kernel": ([("dense_l1l2", 128, "relu")], "softmax", _SPARSE, ("adam", {}), "float32"),
    "binary crossentropy (10 sigmoid outputs)": (_HIDDEN, "sigmoid", "binary_crossentropy", ("adam", {}), "float32"),
    "mean squared error (10 linear outputs)": (_HIDDEN, "linear", "mse", ("adam", {}), "float32"),
    "huber (10 linear outputs)": (_HIDDEN, "linear", "huber", ("adam", {}), "float32"),
    "exponential-decay schedule": (_HIDDEN, "softmax", _SPARSE, ("adam_schedule", {}), "float32"),
})
#: issue 13's last pieces: metrics that read the outputs, sample weights, label smoothing, ReLU's options
CONFIGURATIONS.update({
    "metrics: accuracy + sparse top-5 (kept outputs)": (_HIDDEN, "softmax", _SPARSE, ("adam", {}), "float32",
                                                        {"metrics": ["accuracy", "sparse_top_k_categorical_accuracy"]}),
    "binary crossentropy + accuracy (kept outputs)": (_HIDDEN, "sigmoid", "binary_crossentropy", ("adam", {}),
                                                      "float32", {"metrics": ["accuracy"]}),
    "sample_weight": (_HIDDEN, "softmax", _SPARSE, ("adam", {}), "float32", {"sample_weight": True}),
    "categorical crossentropy, label_smoothing 0.1": (
        _HIDDEN, "softmax", "categorical_crossentropy", ("adam", {}), "float32",
        {"loss_options": {"label_smoothing": 0.1}}),
    "Dense + ReLU(max_value=6)": ([("dense_relu", 128, {"max_value": 6.0})], "softmax", _SPARSE, ("adam", {}),
                                  "float32"),
})
#: Keras's other losses of targets shaped like the output (the kernels' OtherLoss), one-hot targets
CONFIGURATIONS.update({
    "log_cosh (10 linear outputs)": (_HIDDEN, "linear", "log_cosh", ("adam", {}), "float32"),
    "categorical hinge (10 linear outputs)": (_HIDDEN, "linear", "categorical_hinge", ("adam", {}), "float32"),
})
#: the regularizer of each kind of hidden Dense layer
_REGULARIZERS = {"dense_l2": "l2", "dense_l1": "l1", "dense_l1l2": "l1_l2"}


def build(package, name, seed=0):
    """A compiled numba model of configuration ``name`` built from ``package`` (npnet or npnet_baseline)."""
    npnet = importlib.import_module(package)
    hidden, output, loss, (optimizer, options), floatx, *extras = CONFIGURATIONS[name]
    extras = extras[0] if extras else {}
    npnet.config.set_floatx(floatx)
    try:
        npnet.utils.set_random_seed(seed)
        stack = [npnet.layers.Flatten(input_shape=(28, 28))]
        for kind, value, *rest in hidden:
            if kind == "dropout":
                stack.append(npnet.layers.Dropout(value))
                continue
            if kind == "dense_relu":
                stack += [npnet.layers.Dense(value), npnet.layers.ReLU(**rest[0])]
                continue
            regularizer = _REGULARIZERS.get(kind)
            if regularizer == "l1_l2":
                regularizer = npnet.regularizers.L1L2(l1=0.01, l2=0.01)
            layer = npnet.layers.Dense(value, activation=rest[0], kernel_regularizer=regularizer)
            layer.trainable = kind != "frozen"
            stack.append(layer)
        stack.append(npnet.layers.Dense(10, activation=output))
        model = npnet.Sequential(stack)
        model.build((None, 28, 28))
    finally:
        npnet.config.set_floatx("float32")
    if optimizer == "adam_schedule":
        optimizer_obj = npnet.optimizers.Adam(npnet.optimizers.schedules.ExponentialDecay(1e-3, 1000, 0.9))
    else:
        optimizer_obj = npnet.optimizers.get(optimizer) if not options else \
            getattr(npnet.optimizers, {"sgd": "SGD", "rmsprop": "RMSprop"}[optimizer])(**options)
    # by default no metric for binary or regression targets: these rows time the kernels without kept outputs
    counted = npnet.losses.get(loss).label_kind in ("sparse", "categorical")
    metrics = extras.get("metrics", ["accuracy"] if counted else [])
    if "loss_options" in extras:
        loss = type(npnet.losses.get(loss))(**extras["loss_options"])
    model.compile(optimizer=optimizer_obj, loss=loss, metrics=metrics, backend="numba")
    return model


def load(n_train=60000):
    from npnet.datasets import fashion_mnist
    (x, y), _ = fashion_mnist.load_data()
    table = (np.arange(256) / 255.0).astype(np.float32)
    return table[x[:n_train]], y[:n_train].astype(np.int64)


def timed_epoch(model, x, y, targets, name="tutorial (adam)"):
    """Seconds of one fit epoch at batch 32 (with the configuration's sample weights, if any)."""
    data_y = y if model.loss.label_kind == "sparse" else targets
    extras = (CONFIGURATIONS[name][5:] or [{}])[0]
    options = {"sample_weight": np.linspace(0.5, 1.5, x.shape[0])} if extras.get("sample_weight") else {}
    start = time.perf_counter()
    model.fit(x, data_y, epochs=1, batch_size=32, verbose=0, **options)
    return time.perf_counter() - start


def warm(rounds, baseline, only, baseline_each=False):
    x, y = load()
    targets = np.eye(10, dtype=np.float32)[y]
    # the tutorial always runs: every ratio is to its epoch in the same run
    names = [name for name in CONFIGURATIONS if not only or name in only or name == "tutorial (adam)"]
    packages = ["npnet"]
    if baseline:
        sys.path.insert(0, baseline)
        packages.append("npnet_baseline")
    # each configuration's old and new epochs side by side in the order of the rounds
    entries = [(package, name) for name in names for package in packages
               if package == "npnet" or baseline_each or name == "tutorial (adam)"]
    for package, name in entries:  # compile the kernels once, outside the timings
        timed_epoch(build(package, name), x[:3200], y[:3200], targets[:3200], name)
    times = {key: [] for key in entries}
    for _ in range(rounds):
        for key in entries:
            # A new model (same seed) for every timed epoch: each is a first epoch of training,
            # so no configuration runs on weights it has already trained further than another's.
            times[key].append(timed_epoch(build(*key), x, y, targets, key[1]))
    # each package's configurations against its own tutorial epoch, best and median
    for (package, name), values in times.items():
        own = times[package, "tutorial (adam)"]
        print(json.dumps({"package": package, "configuration": name, "epochs_s": [round(v, 4) for v in values],
                          "best_s": round(min(values), 4), "ratio_to_tutorial": round(min(values) / min(own), 3),
                          "median_s": round(float(np.median(values)), 4),
                          "median_ratio_to_tutorial": round(float(np.median(values) / np.median(own)), 3)}))


def cold_child(package, name="tutorial (adam)"):
    """Run in a fresh process: compile + first epoch of configuration ``name``, with whatever cache is configured."""
    x, y = load()
    targets = np.eye(10, dtype=np.float32)[y]
    start, cpu_start = time.perf_counter(), time.process_time()
    model = build(package, name)
    timed_epoch(model, x, y, targets, name)
    print(json.dumps({"package": package, "configuration": name,
                      "compile_and_first_epoch_s": round(time.perf_counter() - start, 3),
                      "cpu_s": round(time.process_time() - cpu_start, 3)}))


def cold(baseline, repeats, names=("tutorial (adam)",)):
    packages = ["npnet"] + (["npnet_baseline"] if baseline else [])
    for _ in range(repeats):
        for name in names:
            for package in packages:
                with tempfile.TemporaryDirectory(prefix="npnet-cold-") as cache:
                    env = dict(os.environ, NUMBA_CACHE_DIR=cache,
                               PYTHONPATH=os.pathsep.join(filter(None, [baseline, os.getcwd()])))
                    result = subprocess.run([sys.executable, "-m", "benchmarks.coverage_speed", "cold-child", package,
                                             "--only", name], env=env, capture_output=True, text=True, check=True)
                    print(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["warm", "cold", "cold-child"])
    parser.add_argument("package", nargs="?", default="npnet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="directory holding an older copy as npnet_baseline/")
    parser.add_argument("--only", action="append", default=[], help="run only this configuration (repeatable)")
    parser.add_argument("--baseline-each", action="store_true",
                        help="run every selected configuration on the baseline too, not only the tutorial")
    args = parser.parse_args(argv)
    if args.mode == "warm":
        warm(args.rounds, args.baseline, args.only, args.baseline_each)
    elif args.mode == "cold":
        cold(args.baseline, args.rounds, args.only or ["tutorial (adam)"])
    else:
        cold_child(args.package, *args.only[:1])


if __name__ == "__main__":
    main()
