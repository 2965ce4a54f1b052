"""Starting one child run in a fresh process and collecting its result and peak memory."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import frameworks

#: The repository root, put on the children's PYTHONPATH so they import this npnet,
#: reference/ and benchmarks/ even when the package is not installed.
REPO_ROOT = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    """A child exited with an error, timed out, or wrote no result."""


def child_environment(threads=None, extra=None):
    """The environment of every child: the parent's, plus PYTHONPATH, quiet TF and thread pins.

    ``threads`` None leaves every framework to its default (all cores); an integer pins the
    thread pools of every framework to that many threads through the usual variables.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("NPNET_BACKEND", None)  # each run names its backend; no default may leak in
    if threads:
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                         "TF_NUM_INTEROP_THREADS"):
            env[variable] = str(threads)
    env.update(extra or {})
    return env


def wait_with_rusage(process, timeout):
    """Wait for ``process`` like ``Popen.wait`` but also return its own resource usage.

    ``os.wait4`` reports the child's ``ru_maxrss`` (its peak resident set, KiB on Linux),
    which ``resource.getrusage(RUSAGE_CHILDREN)`` would merge over all children.
    Returns ``(exit_code, rusage)``; kills the child and raises ChildFailed after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, rusage
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            process.returncode = -9
            raise ChildFailed(f"timed out after {timeout:.0f} s")
        time.sleep(0.05)


def run_command(command, env, timeout, stdout=None):
    """Run ``command`` (a list); returns ``(exit_code, peak_rss_bytes, wall_s, stderr_text)``."""
    with tempfile.TemporaryFile() as err:
        launch = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                   stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                   stderr=err, cwd=REPO_ROOT)
        code, rusage = wait_with_rusage(process, timeout)
        wall = time.perf_counter() - launch
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return code, rusage.ru_maxrss * 1024, wall, stderr


def run_child(framework, config, *, threads=None, extra_env=None, timeout=3600):
    """Run one :mod:`benchmarks.child` process; returns its result with the parent's figures.

    The framework's own variables (``frameworks.CHILD_ENV``, e.g. ``KERAS_BACKEND=jax``) and
    ``extra_env`` are added to the child's environment and recorded in ``result["env"]``.
    Adds ``measurements["peak_rss_bytes"]`` (ru_maxrss of the child) and ``wall_s``.
    Raises ChildFailed with the tail of the child's stderr when it fails.
    """
    config = {**config, "threads": threads}
    extra_env = {**frameworks.CHILD_ENV.get(framework, {}), **(extra_env or {})}
    env = child_environment(threads, extra_env)
    with tempfile.TemporaryDirectory(prefix="npnet-bench-") as scratch:
        out = os.path.join(scratch, "result.json")
        launch_time = time.time()
        command = [sys.executable, "-m", "benchmarks.child", "--framework", framework,
                   "--config", json.dumps(config), "--launch-time", repr(launch_time), "--out", out]
        code, peak_rss, wall, stderr = run_command(command, env, timeout)
        if code != 0 or not os.path.exists(out):
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            raise ChildFailed(f"{framework} child exited with code {code}:\n{tail}")
        with open(out) as handle:
            result = json.load(handle)
    result["measurements"]["peak_rss_bytes"] = peak_rss
    result["wall_s"] = wall
    result["env"] = {k: env[k] for k in sorted(extra_env or {})}
    return result
