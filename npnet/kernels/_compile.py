"""How npnet compiles its kernels: one decorator, one set of numba options, on-disk caching.

Options, and why:

* ``error_model="numpy"``: a float division by zero gives inf/NaN as in NumPy instead of
  raising, which lets LLVM vectorise divisions (the Adam update about ten times faster:
  docs/performance.md).
* ``fastmath=False``: fastmath lets LLVM reorder sums and contract multiply-adds, which
  changes float32 rounding and would break the promise that the numba backend tracks the
  NumPy backend to 1e-6; it also makes ``isnan`` lie. The loops that matter vectorise
  without it (the finiteness check works on the float's bits, see
  :func:`npnet.kernels.dense.too_large_to_square`).
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

The cache is a pickle store: loading an entry runs whatever the pickle says. So npnet
refuses a cache directory that another user could write to or swap: the directory must be
ours and not writable by group or others (a group that is our own user-private group is
fine), and every directory above it must belong to us or root and be writable by nobody
else unless it has the sticky bit (like ``/tmp``). When numba's choice fails that test,
npnet says why in one warning and caches in a private directory instead,
``<npnet cache root>/numba`` (``$NPNET_CACHE_DIR`` or ``platformdirs.user_cache_dir("npnet")``)
created with mode 0700; if that is unsafe too, kernels are compiled per process.

A damaged entry (a truncated ``.nbi`` index or ``.nbc`` data file, after a crash or a full
disk) used to make every run die with numba's raw ``UnpicklingError`` until the cache was
deleted by hand. Now the entry is treated as a miss: its index is removed, the kernel is
compiled again and the entry rewritten, with one warning per process.
"""

import contextlib
import grp
import os
import pwd
import stat
import warnings

import numba
from numba.core import caching

KERNEL_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False, "boundscheck": False}

#: False when no safe cache location was writable and kernels are compiled per process.
caching_enabled = True

_warned = set()  # the warnings given once per process: "corrupt", "unsafe"


def _warn_once(topic, message):
    if topic not in _warned:
        _warned.add(topic)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


class RecoveringFunctionCache(caching.FunctionCache):
    """numba's per-function disk cache, where an unreadable entry is a miss, not a crash."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - unpickling garbage can raise anything
            self._discard_index(error)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except (OSError, caching.pickle.UnpicklingError, EOFError, ValueError) as error:
            # Saving reads the index first; another process may have damaged it since.
            self._discard_index(error)

    def _discard_index(self, error):
        index = self._cache_file._index_path
        _warn_once("corrupt",
                   f"npnet: the numba cache entry {index} (or its data file) is unreadable "
                   f"({type(error).__name__}: {error}); discarding it and compiling the kernel "
                   f"again. Other damaged entries found by this process are replaced silently.")
        with contextlib.suppress(OSError):
            os.remove(index)


_UserProvidedLocator = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
    caching, "_UserProvidedCacheLocator")


def private_cache_root():
    """``<npnet cache root>/numba``: where kernels are cached when numba's choice is unsafe."""
    import platformdirs

    root = os.environ.get("NPNET_CACHE_DIR") or platformdirs.user_cache_dir("npnet")
    return os.path.join(os.path.expanduser(root), "numba")


class _PrivateCacheLocator(_UserProvidedLocator):
    """numba's NUMBA_CACHE_DIR locator, pointed at :func:`private_cache_root` (mode 0700)."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._root = private_cache_root()
        self._cache_path = os.path.join(self._root, self.get_suitable_cache_subpath(py_file))

    def ensure_cache_path(self):
        os.makedirs(self._root, mode=0o700, exist_ok=True)
        if os.stat(self._root).st_uid == os.geteuid():
            os.chmod(self._root, 0o700)
        os.makedirs(self._cache_path, mode=0o700, exist_ok=True)
        super().ensure_cache_path()

    @classmethod
    def from_function(cls, py_func, py_file):
        # Skip the NUMBA_CACHE_DIR check of the parent class, keep the rest of numba's logic.
        return super(_UserProvidedLocator, cls).from_function(py_func, py_file)


class _PrivateCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_PrivateCacheLocator]


class PrivateFunctionCache(RecoveringFunctionCache):
    """:class:`RecoveringFunctionCache` in npnet's private directory."""

    _impl_class = _PrivateCacheImpl


def _group_is_private(gid):
    """True for a user-private group: named like us, with nobody else in it."""
    try:
        group = grp.getgrgid(gid)
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False
    return group.gr_name == user and set(group.gr_mem) <= {user}


def _others_can_write(status):
    mode = stat.S_IMODE(status.st_mode)
    return bool(mode & stat.S_IWOTH) or bool(mode & stat.S_IWGRP and not _group_is_private(status.st_gid))


def unsafe_reason(directory):
    """Why another user could write into ``directory`` or replace it; None if nobody can."""
    me = os.geteuid()
    path = os.path.realpath(directory)
    status = os.stat(path)
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid != me:
        return f"{path} belongs to another user (uid {status.st_uid}, expected {me})"
    if _others_can_write(status):
        return f"{path} is writable by other users (mode {mode:04o}, expected no group/other write)"
    while path != os.path.dirname(path):
        path = os.path.dirname(path)
        status = os.stat(path)
        mode = stat.S_IMODE(status.st_mode)
        if status.st_uid not in (me, 0):
            return f"its parent {path} belongs to another user (uid {status.st_uid}), who could replace it"
        if _others_can_write(status) and not mode & stat.S_ISVTX:
            return f"its parent {path} is writable by other users (mode {mode:04o}), who could replace it"
    return None


def _safe_cache(cache_class, func):
    """An instance of ``cache_class`` for ``func`` and None, or None and why not."""
    try:
        cache = cache_class(func)
    except RuntimeError as error:  # numba: "no locator available" (nothing writable)
        return None, str(error)
    try:
        reason = unsafe_reason(cache.cache_path)
    except OSError as error:
        reason = f"cannot check it ({error})"
    return (None, reason) if reason else (cache, None)


def disk_cache(func):
    """The disk cache for ``func``'s compiled code, or None to compile in every process."""
    global caching_enabled
    if not caching_enabled:
        return None
    cache, problem = _safe_cache(RecoveringFunctionCache, func)
    if cache is not None:
        return cache
    if "no locator available" not in problem:
        _warn_once("unsafe",
                   f"npnet does not use numba's cache directory for its kernels: {problem}. "
                   f"A cache that others can write lets them run code in your processes. "
                   f"Caching in {private_cache_root()} (mode 0700) instead.")
    cache, private_problem = _safe_cache(PrivateFunctionCache, func)
    if cache is not None:
        return cache
    caching_enabled = False
    _warn_once("disabled",
               "npnet cannot cache its compiled numba kernels: neither the package directory, "
               "nor numba's user cache directory (~/.cache/numba or $XDG_CACHE_HOME/numba), nor "
               f"NUMBA_CACHE_DIR is usable ({problem}), nor {private_cache_root()} "
               f"({private_problem}). Every new process will compile them again (a few seconds). "
               "Set NUMBA_CACHE_DIR to a private writable directory to avoid that.")
    return None


def kernel(func, parallel=False):
    """``numba.njit`` with npnet's options and the on-disk cache (see the module docstring)."""
    dispatcher = numba.njit(cache=False, parallel=parallel, **KERNEL_OPTIONS)(func)
    cache = disk_cache(func)
    if cache is not None:
        dispatcher._cache = cache  # what numba's own ``enable_caching`` does, with our cache
    return dispatcher


def parallel_kernel(func):
    """:func:`kernel` whose ``prange`` loops run on numba's threads (``numba.set_num_threads``)."""
    return kernel(func, parallel=True)
