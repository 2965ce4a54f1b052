"""Random seeding and small helpers shared by the library."""

import contextlib
import errno
import json
import os
import random
import signal
import stat
import threading
import uuid

import numpy as np

try:  # the C functions under the signal module: its enum conversions cost 10x the call
    from _signal import getsignal as _get_handler, signal as _set_handler
except ImportError:  # pragma: no cover - an interpreter without CPython's _signal
    _get_handler, _set_handler = signal.getsignal, signal.signal

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed every source of randomness npnet uses: initial weights, shuffling and dropout.

    After ``set_random_seed(s)`` the same code produces the same History, weights and
    predictions, as ``keras.utils.set_random_seed`` promises. Python's ``random`` and NumPy's
    legacy global generator are seeded too, for user code that relies on them.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; received {seed!r}")
    global _rng
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


#: Byte boundary on which parameters, optimizer state and the numba backend's buffers start:
#: a cache line, and the width of an AVX-512 vector. NumPy promises only 16 bytes, and a
#: vector load that spans two cache lines is slower (measured in docs/performance.md).
MEMORY_ALIGNMENT = 64


def aligned_empty(shape, dtype=np.float32):
    """An uninitialised C-contiguous array whose data starts on a ``MEMORY_ALIGNMENT`` boundary."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n_bytes + MEMORY_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % MEMORY_ALIGNMENT
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


def aligned_copy(array):
    """A copy of ``array`` (same shape and dtype) whose data starts on a ``MEMORY_ALIGNMENT`` boundary."""
    array = np.asarray(array)
    out = aligned_empty(array.shape, array.dtype)
    np.copyto(out, array)
    return out


def rng():
    """The generator npnet draws from (weights, shuffles, dropout masks)."""
    return _rng


def format_shape(shape):
    """``(None, 28, 28)`` style text for a shape tuple."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


_TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Write a file so that nobody ever sees it half-written, and a crash loses nothing.

    Yields a file opened on a hidden temporary name, ``.<name>.<pid>.<random>.tmp`` (the name
    cut to 200 bytes), in the
    directory of the destination; when the block ends without error the file is flushed and
    ``fsync``-ed, renamed over the destination (an atomic replace on one file system), and the
    directory is ``fsync``-ed so the rename itself survives a power cut. If the block raises,
    the temporary file is removed and the destination is left as it was::

        with atomic_write("model.npnet") as handle:
            handle.write(data)

    Deliberate choices:

    * **Permissions.** Re-saving over an existing file keeps that file's permission bits (a
      ``0600`` file stays ``0600``; they are set before any data is written). A new file gets
      the usual mode of a new file, ``0666`` minus the umask (not ``mkstemp``'s ``0600``).
      The owner and group are not copied: the file belongs to whoever saves it.
    * **Symbolic links.** If ``path`` is a symlink (or has one among its directories), the
      link's final target is written, and the link itself stays. A dangling link creates its
      target; a symlink loop raises ``OSError`` (ELOOP).
    * **Not a regular file.** A destination (or a link's final target) that is a folder, a
      FIFO, a device or a socket is refused before anything is written: the rename would
      replace the node itself (a save through a link to ``/dev/null`` once did).
    * **Killed writers.** A process killed mid-save (SIGKILL, power cut) cannot remove its
      temporary file. Each save therefore first removes the temporary files of the *same
      destination* whose writer process (the pid in the name) no longer exists on this
      machine. Files of live processes, and files it cannot remove, are left alone.
    * **Missing folder.** Not created: a ``FileNotFoundError`` names the folder (rather than
      the hidden temporary name the operating system would report). Callers that create
      folders, as Keras's ``.h5`` writer and ``export`` do, call :func:`make_parent_folder`.
    """
    target = _resolve_destination(os.fsdecode(path))
    directory, name = os.path.split(target)
    _require_folder(os.fsdecode(path), directory, target)
    _require_replaceable(os.fsdecode(path), target)
    _remove_stale_temporaries(directory, name)
    temporary = os.path.join(directory, f"{_temporary_prefix(name)}{os.getpid()}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")
    try:
        with _open_temporary(temporary, target, mode) as handle:
            yield handle
            if handle.closed:  # the caller closed it: its data is flushed, not yet synced
                _fsync_file(temporary)
            else:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def make_parent_folder(path):
    """Create the folders above ``path`` that do not exist yet (``os.makedirs``)."""
    parent = os.path.dirname(os.fsdecode(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def _temporary_prefix(name):
    """``.<name>.``, with the name cut to 200 bytes so that the temporary name of the longest
    file name a folder allows (255 bytes) fits too."""
    return "." + os.fsdecode(os.fsencode(name)[:200]) + "."


def _require_folder(path, directory, target):
    """Raise, naming the folder, unless ``directory`` (where ``path``, resolved to
    ``target``, goes) is one."""
    if os.path.isdir(directory):
        return
    folder = os.path.dirname(path) or "."
    if os.path.abspath(path) != target:  # through a symlink: the folder missing is its target's
        folder = directory
    if os.path.exists(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write {path!r}: {folder!r} is not a folder")
    raise FileNotFoundError(errno.ENOENT, f"cannot write {path!r}: the folder {folder!r} does not "
                            "exist; create it first (os.makedirs)")


_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_file_kind(mode):
    """What a file of ``st_mode`` ``mode`` that is neither a regular file nor a folder is:
    ``'a FIFO (named pipe)'``, ``'a character device'``..."""
    return next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")


def _require_replaceable(path, target):
    """Raise unless ``target`` (``path`` with its symlinks followed) is absent or a regular
    file: the rename would replace a folder, FIFO or device node itself (a save through a
    link to ``/dev/null`` once made it a regular file)."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path!r}: it is a folder; expected the path of a file")
    kind = special_file_kind(mode)
    via = "" if os.path.abspath(path) == target else f" (through symbolic links, {target!r})"
    raise OSError(errno.EINVAL, f"cannot write {path!r}: it is {kind}{via}; expected the path of a regular "
                  "file or of none (saving replaces the file, which would replace that node)")


def _resolve_destination(path):
    """The absolute path that a save to ``path`` must replace: symlinks followed."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops where it cannot go on: a loop
        raise OSError(errno.ELOOP, f"cannot save through a symlink loop: {path!r}", path)
    return target


def _open_temporary(temporary, target, mode):
    """Create ``temporary`` exclusively, with ``target``'s permission bits if it exists."""
    try:
        existing_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        existing_mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    # A new file: 0666 and the umask decides. An existing one: its own bits, which fchmod
    # sets exactly (os.open would apply the umask) before any byte is written.
    fd = os.open(temporary, flags, 0o666 if existing_mode is None else existing_mode & 0o777)
    try:
        if existing_mode is not None:
            os.fchmod(fd, existing_mode)
        return os.fdopen(fd, mode.replace("x", "w"))
    except BaseException:
        os.close(fd)
        raise


def _fsync_file(file):
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def _writer_is_dead(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, under another user
        return False
    return False


def _remove_stale_temporaries(directory, name):
    """Remove ``.<name>.<pid>.<random>.tmp`` files in ``directory`` left by dead writers."""
    prefix = _temporary_prefix(name)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(_TEMP_SUFFIX)):
            continue
        parts = entry[len(prefix):-len(_TEMP_SUFFIX)].split(".")
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 8:
            continue
        if int(parts[0]) != os.getpid() and _writer_is_dead(int(parts[0])):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def write_json_atomic(path, data):
    """Write ``data`` as indented JSON through :func:`atomic_write`."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


class interrupts_deferred:
    """Context manager: a Ctrl-C (SIGINT) that arrives inside the block is raised as
    ``KeyboardInterrupt`` when the block ends, so the block is never left half done.

    Only the main thread receives signals; elsewhere, and when SIGINT is not Python's
    default handler (the user installed their own), it does nothing. Installing a handler
    costs two ``signal.signal`` calls; a loop that opens such a block every step opens
    :func:`interrupts_watched` around the loop, and the blocks inside it only count.
    """

    _holder = None  # the open block of the main thread that installed the handler, if any

    def __init__(self, defer=True):
        self._depth = 1 if defer else 0  # deferred blocks open in the holder (itself included)
        self._previous, self._received, self._outer = None, False, None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        holder = interrupts_deferred._holder
        if holder is not None:  # inside a holder's block: only count this one
            self._outer = holder
            holder._depth += self._depth
        elif _get_handler(signal.SIGINT) is signal.default_int_handler:
            self._previous = _set_handler(signal.SIGINT, self._record)
            interrupts_deferred._holder = self
        return self

    def _record(self, signum, frame):
        if self._depth == 0:  # no deferred block open: interrupt now, as Python's handler does
            raise KeyboardInterrupt
        self._received = True

    def __exit__(self, exc_type, exc, traceback):
        holder = self._outer
        if holder is not None:
            holder._depth -= self._depth
            if holder._depth == 0 and holder._received and exc_type is None:
                holder._received = False
                raise KeyboardInterrupt
        elif self._previous is not None:
            interrupts_deferred._holder = None
            _set_handler(signal.SIGINT, self._previous)
            if self._received and exc_type is None:
                raise KeyboardInterrupt
        return False


def interrupts_watched():
    """Context manager for a loop of :class:`interrupts_deferred` blocks: installs the SIGINT
    handler once for the whole loop. A Ctrl-C between the blocks interrupts at once, as
    usual; one inside a block is raised when that block ends."""
    return interrupts_deferred(defer=False)


def to_categorical(x, num_classes=None):
    """Class labels to one-hot rows, as ``keras.utils.to_categorical``.

    x: integer labels of any shape (a trailing axis of 1 is dropped, so (n, 1) acts as (n,))
    -> float64 array of shape ``x.shape + (num_classes,)`` with a 1 at each label.
    ``num_classes`` defaults to ``max(x) + 1``. Labels must be integers in
    ``[0, num_classes)``; anything else is refused with the values found.
    """
    labels = np.asarray(x)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("to_categorical expects integer class labels; received non-integer values")
    elif labels.dtype.kind not in "uib":
        raise TypeError(f"to_categorical expects integer class labels; received dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    labels = labels.reshape(-1)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("to_categorical needs num_classes for an empty array of labels")
        num_classes = int(labels.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer; received {num_classes!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical expects labels in [0, {num_classes}); received values from "
                         f"{labels.min()} to {labels.max()}")
    categorical = np.zeros((labels.size, int(num_classes)))
    categorical[np.arange(labels.size), labels] = 1
    return categorical.reshape(tuple(shape) + (int(num_classes),))


def get_file(fname=None, origin=None, **kwargs):
    """Keras's downloader, refused: npnet reads local files only (it fetches nothing but its
    own verified Fashion-MNIST files). The error says what to write instead."""
    raise NotImplementedError(
        f"npnet.utils.get_file does not download files (asked for {origin or fname!r}): download "
        "it yourself (e.g. urllib.request.urlretrieve(url, path) or pooch.retrieve(url, known_hash)) "
        "and load the arrays with NumPy; Fashion-MNIST is npnet.datasets.fashion_mnist.load_data()")


def missing_name(module, name, keras_names):
    """The AttributeError for ``module.name``: with what to write instead when ``name`` is a
    Keras name npnet lacks (``keras_names``: ``{name: advice}``), the plain one otherwise
    (so ``hasattr`` stays False and a typo reads as usual)."""
    if name in keras_names:
        return AttributeError(f"module {module!r} has no attribute {name!r}: {keras_names[name]}")
    return AttributeError(f"module {module!r} has no attribute {name!r}")


#: keras.utils names npnet lacks, with what to write instead.
_KERAS_NAMES = dict.fromkeys(
    ("plot_model", "model_to_dot"),
    "npnet does not draw model graphs (Keras needs pydot and graphviz for it): model.summary() "
    "prints the layers, their output shapes and parameter counts; npnet's models are chains")
_KERAS_NAMES.update(dict.fromkeys(
    ("image_dataset_from_directory", "text_dataset_from_directory", "audio_dataset_from_directory",
     "timeseries_dataset_from_array", "load_img", "img_to_array", "array_to_img", "pad_sequences",
     "split_dataset", "normalize"),
    "npnet has no data loading or preprocessing helpers beyond to_categorical: build NumPy arrays "
    "yourself (e.g. with Pillow or pandas) and pass them, or an npnet.utils.PyDataset of batches"))


def __getattr__(name):
    raise missing_name(__name__, name, _KERAS_NAMES)


# keras.utils.PyDataset (and its older name keras.utils.Sequence): batches fit/evaluate read.
from .data import PyDataset  # noqa: E402
Sequence = PyDataset
