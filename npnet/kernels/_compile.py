"""How npnet compiles its kernels: one decorator, one set of numba options, on-disk caching.

Options, and why:

* ``error_model="numpy"``: a float division by zero gives inf/NaN as in NumPy instead of
  raising, which lets LLVM vectorise divisions (the Adam update about ten times faster:
  docs/performance.md).
* ``fastmath=False``: fastmath lets LLVM reorder sums and contract multiply-adds, which
  changes float32 rounding and would break the promise that the numba backend tracks the
  NumPy backend to 1e-6; it also makes ``isnan`` lie. The loops that matter vectorise
  without it (the finiteness check works on the float's bits, see
  :func:`npnet.kernels.dense.too_large_to_square`). One exception, :func:`summing_kernel`:
  the weight penalties' sums of squares and absolute values, accumulated in float64, may be
  reordered (``reassoc`` alone), which moves their float64 rounding only, never a float32
  result's, and lets LLVM vectorise them (docs/performance.md).
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

The shipped layer. Installing npnet compiles the kernels of the common models (the tutorial
and a few others, :mod:`npnet.kernels.precompile`) into ``npnet/kernels/_precompiled``, so a
first ``fit`` loads machine code instead of compiling for ~10 s. That directory is a second,
read-only cache, consulted when the one above misses and never written at run time (what is
compiled then goes to the cache above). Its entries are stamped with the SHA-256 of the
kernel's source file rather than with its path or mtime, which the install changes
(:class:`ContentStampLocator`); numba still keys each entry by its version and the CPU, so an
entry built for another numba or CPU is simply a miss. The rules above hold, except that root
may own it (a system-wide install): a directory or entry others could write is refused with
one warning, a damaged entry is a miss with one warning (and is left in place), and a layer
whose ``manifest.json`` names another numba is refused with one warning saying how to rebuild
it. ``NPNET_PRECOMPILED=0`` turns the layer off (to measure a true cold compile);
``NPNET_PRECOMPILED_DIR`` reads another directory instead.
"""

import contextlib
import functools
import grp
import hashlib
import json
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


def unsafe_reason(directory, owners=None):
    """Why another user could write into ``directory`` or replace it; None if nobody can.

    ``owners``: the uids the directory may belong to (default: only us).
    """
    me = os.geteuid()
    owners = owners or (me,)
    path = os.path.realpath(directory)
    status = os.stat(path)
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid not in owners:
        expected = " or ".join(str(uid) for uid in owners)
        return f"{path} belongs to another user (uid {status.st_uid}, expected {expected})"
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


#: The shipped layer inside the installed package, filled by ``python -m npnet.kernels.precompile``.
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_precompiled")
#: Set (to a directory) only in the precompile step's worker: kernels are cached there, and only there.
PRECOMPILE_INTO_ENV = "NPNET_PRECOMPILE_INTO"


def precompiling_into():
    """The directory the precompile step is filling, or None in an ordinary process."""
    return os.environ.get(PRECOMPILE_INTO_ENV) or None


def shipped_directory():
    """The shipped layer's directory, or None when ``NPNET_PRECOMPILED=0`` turns it off."""
    if precompiling_into():
        return precompiling_into()
    if os.environ.get("NPNET_PRECOMPILED", "1").strip() == "0":
        return None
    return os.environ.get("NPNET_PRECOMPILED_DIR") or SHIPPED_DIR


@functools.lru_cache(maxsize=None)
def _content_hash(path):
    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


class ContentStampLocator(caching._CacheLocator):
    """Entries in one flat directory, stamped with the SHA-256 of the kernel's source file.

    numba's own locators place entries under a hash of the source file's directory and (before
    numba 0.68) stamp its mtime and size, both of which an install changes; this locator
    depends on neither, so entries made at build time are still valid where pip copies them.
    """

    def __init__(self, py_func, py_file, directory):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._directory = directory

    def get_cache_path(self):
        return self._directory

    def get_source_stamp(self):
        return ("sha256", _content_hash(os.path.realpath(self._py_file)))

    def get_disambiguator(self):
        return str(self._lineno)

    def ensure_cache_path(self):
        if self._directory != precompiling_into():
            raise OSError(f"{self._directory} is read-only: only the precompile step writes it")
        os.makedirs(self._directory, mode=0o755, exist_ok=True)
        super().ensure_cache_path()

    @classmethod
    def from_function(cls, py_func, py_file):
        directory = shipped_directory()
        if directory is None or not os.path.isfile(py_file):
            return None
        return cls(py_func, py_file, directory)


class _ShippedCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [ContentStampLocator]


class ShippedFunctionCache(caching.FunctionCache):
    """The read-only layer of kernels compiled at install time; written only by the precompile step.

    An unreadable entry is a miss with one warning, and is left in place (the directory
    belongs to the installation, not to this process).
    """

    _impl_class = _ShippedCacheImpl

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - unpickling garbage can raise anything
            _warn_once("shipped-corrupt",
                       f"npnet: the precompiled kernel entry {self._cache_file._index_path} (or its "
                       f"data file) is unreadable ({type(error).__name__}: {error}); compiling the "
                       f"kernel instead. Reinstalling npnet (or python -m npnet.kernels.precompile) "
                       f"rebuilds the precompiled kernels.")
            return None

    def save_overload(self, sig, data):
        if precompiling_into():
            super().save_overload(sig, data)


_shipped_problems = {}  # directory -> why it is refused (None: usable), checked once per process


def shipped_problem(directory):
    """Why the shipped layer in ``directory`` must not be loaded; None if it may.

    The rules of the writable cache, except that root may own it (a system-wide install): the
    directory, every file in it and every directory above it must be writable only by us or
    root, and the entries may not be symbolic links to somewhere else.
    """
    if directory not in _shipped_problems:
        _shipped_problems[directory] = _check_shipped(directory)
    return _shipped_problems[directory]


def _check_shipped(directory):
    trusted = (os.geteuid(), 0)
    try:
        reason = unsafe_reason(directory, owners=trusted) or _foreign_numba(directory)
        if reason:
            return reason
        for entry in os.scandir(directory):
            status = entry.stat(follow_symlinks=False)
            if entry.is_symlink() or status.st_uid not in trusted or _others_can_write(status):
                mode = stat.S_IMODE(status.st_mode)
                return (f"its entry {entry.path} is a link, belongs to another user or is writable "
                        f"by others (uid {status.st_uid}, mode {mode:04o})")
    except OSError as error:
        return f"cannot check it ({error})"
    return None


def _foreign_numba(directory):
    """Why the layer was built for another numba (its manifest says which), or None.

    Each entry would be a miss anyway (numba keys entries by its version); this only makes the
    lost first-run speed visible, with the way to get it back.
    """
    try:
        with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as file:
            built_with = json.load(file).get("numba")
    except (OSError, ValueError, AttributeError):
        return None  # no manifest: nothing to compare, entries are still keyed one by one
    if built_with and built_with != numba.__version__:
        return (f"they were built with numba {built_with} and this is numba {numba.__version__} "
                f"(reinstall npnet, or run python -m npnet.kernels.precompile, to rebuild them)")
    return None


def shipped_cache(func):
    """The read-only shipped layer for ``func``, or None (absent, turned off, or unsafe)."""
    directory = shipped_directory()
    if directory is None or not (precompiling_into() or os.path.isdir(directory)):
        return None
    if not precompiling_into():
        problem = shipped_problem(directory)
        if problem:
            _warn_once("shipped-unsafe",
                       f"npnet does not load the precompiled kernels in {directory}: {problem}. "
                       f"Kernels are compiled on first use instead.")
            return None
    try:
        return ShippedFunctionCache(func)
    except RuntimeError:  # no locator: the function has no source file
        return None


class LayeredFunctionCache(caching._Cache):
    """The user's writable cache, then, on a miss, the shipped read-only layer.

    Newly compiled code is saved in the writable cache only (``writable`` may be None when no
    safe location is writable: the shipped layer is then still read).
    """

    def __init__(self, writable, shipped):
        self._writable = writable
        self._shipped = shipped

    @property
    def cache_path(self):
        """Where newly compiled code is saved (numba's ``stats.cache_path``); None: nowhere."""
        return None if self._writable is None else self._writable.cache_path

    def load_overload(self, sig, target_context):
        if self._writable is not None:
            data = self._writable.load_overload(sig, target_context)
            if data is not None:
                return data
        return self._shipped.load_overload(sig, target_context)

    def save_overload(self, sig, data):
        if self._writable is not None:
            self._writable.save_overload(sig, data)

    def enable(self):
        if self._writable is not None:
            self._writable.enable()

    def disable(self):
        if self._writable is not None:
            self._writable.disable()

    def flush(self):
        if self._writable is not None:
            self._writable.flush()


def kernel_cache(func):
    """The cache a kernel uses: the writable cache and the shipped layer, or just one of them.

    In the precompile step's worker it is the directory being filled alone, so an entry already
    in the user's cache does not keep it out of the shipped layer.
    """
    if precompiling_into():
        return shipped_cache(func)
    writable = disk_cache(func)
    shipped = shipped_cache(func)
    if shipped is None:
        return writable
    return LayeredFunctionCache(writable, shipped)


def kernel(func, parallel=False, fastmath=False):
    """``numba.njit`` with npnet's options and the on-disk cache (see the module docstring),
    compiling whole under Ctrl-C (:func:`_compiles_whole`)."""
    options = dict(KERNEL_OPTIONS, fastmath=fastmath)
    dispatcher = numba.njit(cache=False, parallel=parallel, **options)(func)
    cache = kernel_cache(func)
    if cache is not None:
        dispatcher._cache = cache  # what numba's own ``enable_caching`` does, with our cache
    _compiles_whole(dispatcher)
    return dispatcher


def _compiles_whole(dispatcher):
    """Defer a Ctrl-C that arrives while ``dispatcher`` compiles (or loads from the cache) a
    signature until that is complete, then raise it, before the kernel runs.

    A cold compile takes tens of seconds, when users press Ctrl-C. Raised inside numba, the
    ``KeyboardInterrupt`` could be swallowed by an LLVM callback (the compile went on and the
    interrupt was lost) or leave the dispatcher without its compiled object (numba's
    ``RuntimeError: no compiled object yet`` on the next call). numba's dispatcher compiles
    through ``self.compile`` (from a call, from typing a calling kernel, or explicitly), so
    the instance's own ``compile`` is the one place to wrap."""
    from .. import utils

    compile_signature = dispatcher.compile

    @functools.wraps(compile_signature)
    def compile(sig):
        with utils.interrupts_deferred():
            return compile_signature(sig)
    dispatcher.compile = compile


def parallel_kernel(func):
    """:func:`kernel` whose ``prange`` loops run on numba's threads (``numba.set_num_threads``)."""
    return kernel(func, parallel=True)


def summing_kernel(func):
    """:func:`kernel` for a float64 sum that LLVM may reorder (``fastmath={"reassoc"}``): only
    for sums whose terms are exact in float64 or where the last float64 bit does not matter."""
    return kernel(func, fastmath={"reassoc"})
