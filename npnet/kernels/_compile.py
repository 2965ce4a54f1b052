"""How npnet compiles its kernels: one decorator, one set of numba options, on-disk caching.

Options, and why:

* ``error_model="numpy"``: a float division by zero gives inf/NaN as in NumPy instead of
  raising, which lets LLVM vectorise divisions (the Adam update over 101,770 float32
  parameters: 16 µs instead of 180 µs).
* ``fastmath=False``: fastmath lets LLVM reorder sums and contract multiply-adds, which
  changes float32 rounding and would break the promise that the numba backend tracks the
  NumPy backend to 1e-6; it also makes ``isnan`` lie. The loops that matter vectorise
  without it (the finiteness check works on the float's bits, see
  :func:`npnet.kernels.dense.has_non_finite`).
* ``nogil=True``: a kernel releases the GIL, so other Python threads keep running.
* ``cache=True``: compiled machine code is stored on disk and reused by the next process.

Where the cache goes. npnet relies on numba's own, documented chain of cache locations
rather than setting ``NUMBA_CACHE_DIR`` for the whole process (which would also move the
cache of every other numba user in it, and does nothing once numba has been imported):

1. ``NUMBA_CACHE_DIR`` if the user set it;
2. ``npnet/kernels/__pycache__`` when the installed package directory is writable;
3. otherwise numba's user-wide cache directory, ``$XDG_CACHE_HOME/numba`` (by default
   ``~/.cache/numba``), which is where a read-only (system, container, site-packages
   owned by root) install ends up.

numba probes each location by really writing a file there. Only when none of them is
writable (say, a container with a read-only home directory) would ``cache=True`` make numba
raise at import; npnet then compiles without the disk cache and warns once, so the library
still works, just with the compile time paid by every new process.
"""

import warnings

import numba

KERNEL_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False, "boundscheck": False}

#: False when no cache location was writable and kernels are compiled per process.
caching_enabled = True


def kernel(func):
    """``numba.njit`` with npnet's options and the on-disk cache (see the module docstring)."""
    global caching_enabled
    if caching_enabled:
        try:
            return numba.njit(cache=True, **KERNEL_OPTIONS)(func)
        except RuntimeError as error:
            if "no locator available" not in str(error):
                raise
            caching_enabled = False
            warnings.warn(
                "npnet cannot cache its compiled numba kernels: neither the package directory, "
                "nor numba's user cache directory (~/.cache/numba or $XDG_CACHE_HOME/numba), nor "
                "NUMBA_CACHE_DIR is writable. Every new process will compile them again (a few "
                "seconds). Set NUMBA_CACHE_DIR to a writable directory to avoid that.",
                RuntimeWarning, stacklevel=2)
    return numba.njit(cache=False, **KERNEL_OPTIONS)(func)
