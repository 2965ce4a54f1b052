"""A user's first run: the whole ``npnet tutorial`` with an empty numba cache, CPU and wall time.

    python -m benchmarks.first_run [--rounds 3] [--epochs 5] [--variant LABEL=PYTHON[:ENV=VALUE,...]] ...

Each round runs every variant once, interleaved, as a fresh process
``PYTHON -m npnet tutorial --epochs E --no-plots --out DIR`` whose ``NUMBA_CACHE_DIR`` is a new
empty directory (so nothing compiled by an earlier run is reused; kernels precompiled at install
time are, unless the variant sets ``NPNET_PRECOMPILED=0``). ``PYTHON`` chooses the install
being measured (e.g. a virtual environment's ``bin/python``). Reported per variant, as median
(min–max): wall seconds and CPU seconds (user + system, from ``os.wait4``) of the whole
process, and the first epoch as the tutorial's own timer saw it (``metrics.json``). Default
variants: this interpreter with the precompiled kernels and without them.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def parse_variant(text):
    """``LABEL=PYTHON[:VAR=VALUE,...]`` -> (label, python, {VAR: VALUE})."""
    label, _, rest = text.partition("=")
    python, _, assignments = rest.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    if not label or not python:
        raise argparse.ArgumentTypeError(f"expected LABEL=PYTHON[:VAR=VALUE,...], received {text!r}")
    return label, python, env


def run_once(python, extra_env, epochs, scratch):
    """One fresh tutorial process: {"wall_s", "cpu_s", "first_epoch_s"}."""
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=scratch)
    out = tempfile.mkdtemp(prefix="out-", dir=scratch)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("NUMBA_", "NPNET_PRECOMPILED"))}
    env.update(extra_env, NUMBA_CACHE_DIR=cache)
    command = [python, "-m", "npnet", "tutorial", "--epochs", str(epochs), "--no-plots", "--out", out,
               "--verbose", "0"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=scratch)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    with open(os.path.join(out, "metrics.json")) as file:
        first_epoch = json.load(file)["timings"]["epoch_s"][0]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "first_epoch_s": first_epoch}


def _cell(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--variant", action="append", type=parse_variant, metavar="LABEL=PYTHON[:VAR=VALUE,...]")
    args = parser.parse_args(argv)
    variants = args.variant or [("precompiled kernels", sys.executable, {}),
                                ("no precompiled kernels", sys.executable, {"NPNET_PRECOMPILED": "0"})]
    results = {label: [] for label, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="npnet-first-run-") as scratch:
        for round_ in range(args.rounds):
            for label, python, env in variants:
                results[label].append(run_once(python, env, args.epochs, scratch))
                print(f"round {round_ + 1}/{args.rounds} {label}: {results[label][-1]}", file=sys.stderr, flush=True)
    print(f"| variant | whole tutorial, wall (s) | whole tutorial, CPU (s) | first epoch (s) |")
    print("|---|---|---|---|")
    for label, runs in results.items():
        print(f"| {label} | {_cell([r['wall_s'] for r in runs])} | {_cell([r['cpu_s'] for r in runs])} "
              f"| {_cell([r['first_epoch_s'] for r in runs])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
