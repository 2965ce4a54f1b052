"""What machine and software the numbers come from, and the hardware's GEMM rate.

Everything here runs in the parent process and imports no framework: versions come from
the installed packages' metadata (the children also record the versions they imported).
"""

import importlib.metadata
import os
import platform
import time

#: The representative float32 matmul timed for the FLOP floor: (M x K) @ (K x N).
SGEMM_SHAPE = (512, 784, 2048)


def _version(*distributions):
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_total_bytes():
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def numpy_blas():
    """numpy's BLAS as ``numpy.show_config(mode='dicts')`` describes it (name, version, ...)."""
    import numpy as np

    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return None


def threadpools():
    """threadpoolctl's view of the BLAS/OpenMP pools loaded in this process, if it is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


def load_average():
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def collect():
    """The environment record stored in the JSON output."""
    import numpy as np

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_total_bytes": memory_total_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "numba": _version("numba"),
        "scipy": _version("scipy"),
        "tensorflow": _version("tensorflow", "tensorflow-cpu"),
        "keras": _version("keras"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "npnet": _version("npnet"),
        "threadpools": threadpools(),
        "thread_variables": {k: os.environ[k] for k in sorted(os.environ)
                             if k.endswith("_NUM_THREADS") or k.startswith("TF_NUM_")},
    }


def measure_sgemm(shape=SGEMM_SHAPE, repeats=20, warmup=3):
    """GFLOP/s of numpy's float32 ``(M x K) @ (K x N)`` into a preallocated output.

    Returns ``{"shape", "flop", "seconds": [...], "gflops_best", "gflops_median"}``; the
    best rate is the one a lower bound on time should use.
    """
    import numpy as np

    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    for _ in range(warmup):
        np.matmul(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        seconds.append(time.perf_counter() - start)
    flop = 2 * m * k * n
    ordered = sorted(seconds)
    return {"shape": [m, k, n], "flop": flop, "seconds": seconds,
            "gflops_best": flop / ordered[0] / 1e9,
            "gflops_median": flop / ordered[len(ordered) // 2] / 1e9}


# ----------------------------------------------------------------------------- FLOP floor

#: The FLOP count the sweep's floor uses, spelled out for the output.
FLOP_FORMULA = ("FLOP per epoch = 2·n·h·(2·784 + 3·10): forward 2·n·(784·h + h·10), backward "
                "2·n·(784·h + h·10) for the two weight gradients plus 2·n·h·10 for the hidden "
                "layer's input gradient (the data's gradient, 2·n·784·h, is not needed); "
                "bias, ReLU, softmax and the optimizer update are left out")


def epoch_flop(n_samples, hidden, n_inputs=784, n_classes=10):
    """The GEMM FLOP of one training epoch of ``n_inputs -> hidden -> n_classes``: see FLOP_FORMULA."""
    forward = 2 * n_samples * (n_inputs * hidden + hidden * n_classes)
    weight_gradients = 2 * n_samples * (n_inputs * hidden + hidden * n_classes)
    hidden_input_gradient = 2 * n_samples * hidden * n_classes
    return forward + weight_gradients + hidden_input_gradient
