"""Compile the kernels of the common models ahead of time, into the shipped read-only layer.

    python -m npnet.kernels.precompile [--into DIR] [--only NAME ...] [--if-stale] [--list]

Installing npnet runs this (``setup.py``'s build step), so a first ``fit`` loads machine code
instead of spending ~10 s of CPU in numba's compiler. It compiles by really running each
model below through the public API — fit for two steps, evaluate, predict — on small
synthetic data shaped and typed like the real thing, so the entries are exactly the
specialisations those calls make, whatever the kernels' signatures are today. The work
happens in a child process whose ``NPNET_PRECOMPILE_INTO`` points at ``DIR`` (default: the
package's own ``npnet/kernels/_precompiled``): there every kernel is cached in ``DIR`` and only
there (see :mod:`npnet.kernels._compile`). Entries are keyed by numba's version and this CPU:
a numba upgrade or another CPU makes them misses, and the kernels are compiled on first use
as they would be without this step.
"""

import argparse
import json
import os
import stat
import subprocess
import sys
import time

from ._compile import PRECOMPILE_INTO_ENV, SHIPPED_DIR, precompiling_into

MANIFEST = "manifest.json"
BATCH = 32
SAMPLES = 2 * BATCH + 5  # two full batches and a partial one, as real epochs end


def _images(rng, n, dtype):
    """Fashion-MNIST-like inputs: uint8 pixels scaled to [0, 1] as the tutorials do."""
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype="uint8")
    return pixels / 255.0 if dtype == "float64" else pixels.astype("float32") / 255


def _tutorial_model(npnet, output_activation="softmax"):
    return npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation="relu"),
        npnet.layers.Dense(10, activation=output_activation),
    ])


def _mnist_mlp(npnet):
    """Keras's MNIST MLP example: 784 -> 512 -> Dropout -> 512 -> Dropout -> 10."""
    return npnet.Sequential([
        npnet.Input((784,)),
        npnet.layers.Dense(512, activation="relu"),
        npnet.layers.Dropout(0.2),
        npnet.layers.Dense(512, activation="relu"),
        npnet.layers.Dropout(0.2),
        npnet.layers.Dense(10, activation="softmax"),
    ])


def _sparse_ce_logits(npnet):
    return npnet.losses.SparseCategoricalCrossentropy(from_logits=True)


#: name -> (what it is, build(npnet) -> (model, compile kwargs), input kind, one-hot labels)
MODELS = {
    "tutorial": ("npnet tutorial / the TF tutorial: Dense(10, softmax), sparse CE, Adam",
                 lambda npnet: (_tutorial_model(npnet), {"optimizer": "adam",
                                                          "loss": "sparse_categorical_crossentropy"}),
                 "images", False),
    "tutorial-logits": ("today's TF tutorial: Dense(10), SparseCategoricalCrossentropy(from_logits=True)",
                        lambda npnet: (_tutorial_model(npnet, None), {"optimizer": "adam",
                                                                      "loss": _sparse_ce_logits(npnet)}),
                        "images", False),
    "tutorial-sgd": ("the tutorial's model with SGD",
                     lambda npnet: (_tutorial_model(npnet), {"optimizer": "sgd",
                                                              "loss": "sparse_categorical_crossentropy"}),
                     "images", False),
    "tutorial-rmsprop": ("the tutorial's model with RMSprop",
                         lambda npnet: (_tutorial_model(npnet), {"optimizer": "rmsprop",
                                                                  "loss": "sparse_categorical_crossentropy"}),
                         "images", False),
    "tutorial-categorical": ("the tutorial's model with one-hot labels, categorical CE",
                             lambda npnet: (_tutorial_model(npnet), {"optimizer": "adam",
                                                                      "loss": "categorical_crossentropy"}),
                             "images", True),
    "mnist-mlp": ("Keras's MNIST MLP example: two Dense(512) with Dropout, categorical CE, RMSprop",
                  lambda npnet: (_mnist_mlp(npnet), {"optimizer": "rmsprop",
                                                     "loss": "categorical_crossentropy"}),
                  "flat", True),
}


def _data(npnet, kind, one_hot, dtype, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = _images(rng, SAMPLES, dtype)
    if kind == "flat":
        x = x.reshape(SAMPLES, 784)
    y = rng.integers(0, 10, size=SAMPLES).astype("uint8")
    return x, (npnet.utils.to_categorical(y, 10) if one_hot else y)


def run_model(name, dtype="float32"):
    """Fit two steps and a bit, evaluate and predict one model of :data:`MODELS`."""
    import npnet

    _, build, kind, one_hot = MODELS[name]
    model, settings = build(npnet)
    model.compile(metrics=["accuracy"], **settings)
    x, y = _data(npnet, kind, one_hot, dtype)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=BATCH, verbose=0)
    model.predict(x, verbose=0)
    model.predict(x[:1], verbose=0)
    return model.backend_name


def _worker(names):
    """In the child process: run the models; every kernel compiled lands in the directory."""
    for name in names:
        # The CLI tutorial scales to float32, the TF tutorial's `/ 255.0` gives float64.
        for dtype in ("float32", "float64"):
            started = time.process_time()
            backend = run_model(name, dtype)
            print(f"precompile: {name} ({dtype} inputs, {backend}): {time.process_time() - started:.1f} s CPU",
                  flush=True)
            if backend != "numba":
                raise RuntimeError(f"{name} ran on the {backend} backend, not numba")


def _make_readable_only(directory):
    """Entries writable by group or others would be refused at load time: drop those bits."""
    for entry in os.scandir(directory):
        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        os.chmod(entry.path, mode & ~(stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(directory, stat.S_IMODE(os.stat(directory).st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))


def _clear_entries(directory):
    """Remove the entries of an earlier run (their source may have changed since) and nothing else."""
    for entry in os.scandir(directory):
        if entry.name.endswith((".nbi", ".nbc")) or entry.name == MANIFEST:
            os.remove(entry.path)


def _write_manifest(directory, names):
    """What the entries were built with: a different numba or CPU at run time makes them misses."""
    import llvmlite.binding
    import numba

    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as file:
        json.dump({"numba": numba.__version__, "python": sys.version.split()[0],
                   "cpu": llvmlite.binding.get_host_cpu_name(), "models": list(names)}, file, indent=1)


def read_manifest(directory=SHIPPED_DIR):
    """The manifest of the kernels in ``directory`` (a dict), or None when there is none."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def stale_reason(directory=SHIPPED_DIR, names=tuple(MODELS)):
    """Why the kernels in ``directory`` would not serve this process (a sentence), or None.

    Checks what numba keys entries by, numba's version and the CPU, plus Python's version (the
    entries' file names carry it) and the models; not the kernels' source, which is checked
    entry by entry at load time.
    """
    import llvmlite.binding
    import numba

    manifest = read_manifest(directory)
    if manifest is None:
        return f"no precompiled kernels in {directory}"
    current = {"numba": numba.__version__, "python": sys.version.split()[0],
               "cpu": llvmlite.binding.get_host_cpu_name()}
    for key, value in current.items():
        if manifest.get(key) != value:
            return f"they were built for {key} {manifest.get(key)}, this is {key} {value}"
    missing = sorted(set(names) - set(manifest.get("models", ())))
    return f"they do not cover {', '.join(missing)}" if missing else None


def precompile(into=SHIPPED_DIR, names=tuple(MODELS)):
    """Fill ``into`` with the kernels of ``names`` in a child process; returns its CPU seconds.

    The child's output goes to ours. Raises ``subprocess.CalledProcessError`` when it fails.
    """
    into = os.path.abspath(into)
    os.makedirs(into, mode=0o755, exist_ok=True)
    _clear_entries(into)
    env = {key: value for key, value in os.environ.items()
           if key not in ("NPNET_PRECOMPILED", "NPNET_PRECOMPILED_DIR", "NPNET_BACKEND")}
    env[PRECOMPILE_INTO_ENV] = into
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    before = os.times()
    subprocess.run([sys.executable, "-m", "npnet.kernels.precompile", "--worker", *names],
                   env=env, check=True)
    after = os.times()
    _write_manifest(into, names)
    _make_readable_only(into)
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m npnet.kernels.precompile",
                                     description="Compile the kernels of common models into npnet's "
                                                 "shipped read-only layer.")
    parser.add_argument("--into", default=SHIPPED_DIR,
                        help=f"directory to fill (default: the installed package's, {SHIPPED_DIR})")
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS), metavar="NAME",
                        help="only these models (default: all)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    parser.add_argument("--if-stale", action="store_true",
                        help="only when DIR's kernels were built for another numba, Python or CPU")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        for name, (what, *_) in MODELS.items():
            print(f"{name:22} {what}")
        return 0
    if args.worker:
        if not precompiling_into():
            parser.error(f"--worker runs only under {PRECOMPILE_INTO_ENV}")
        _worker(args.worker)
        return 0
    if args.if_stale:
        reason = stale_reason(args.into, args.only or tuple(MODELS))
        if reason is None:
            print(f"precompile: the kernels in {args.into} are up to date")
            return 0
        print(f"precompile: rebuilding: {reason}")
    try:
        cpu = precompile(args.into, args.only or tuple(MODELS))
    except subprocess.CalledProcessError as error:
        print(f"precompile failed (exit {error.returncode}); kernels will compile on first use",
              file=sys.stderr)
        return 1
    print(f"precompile: kernels for {len(args.only or MODELS)} models in {args.into} "
          f"({cpu:.1f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
