"""Fashion-MNIST: 70,000 grayscale 28x28 images of clothing in 10 classes.

``load_data()`` returns the same arrays as ``keras.datasets.fashion_mnist.load_data()``::

    (x_train, y_train), (x_test, y_test) = load_data()
    # x_train: (60000, 28, 28) uint8, y_train: (60000,) uint8 labels 0..9
    # x_test:  (10000, 28, 28) uint8, y_test:  (10000,) uint8
    CLASS_NAMES[y_train[0]]  # 'Ankle boot'

Where the data comes from
-------------------------
The data set is four gzip'd IDX files (see :data:`FILES`). ``load_data`` looks
for a directory holding all four, in this order, and uses the first one where
every file is valid:

1. the ``path`` argument;
2. the directory in the environment variable ``NPNET_DATA_DIR``;
3. npnet's cache, ``<cache root>/fashion-mnist``, where the cache root is
   ``$NPNET_CACHE_DIR`` or ``platformdirs.user_cache_dir("npnet")``
   (``~/.cache/npnet`` on Linux);
4. Keras's cache, ``$KERAS_HOME/datasets/fashion-mnist`` (``~/.keras/...``),
   so a machine that already ran the TensorFlow tutorial downloads nothing;
5. ``/usr/share/datasets/fashion-mnist``, installed on Debian/Ubuntu by
   ``sudo apt-get install dataset-fashion-mnist``;
6. a download from :data:`BASE_URL` (or ``$NPNET_FASHION_MNIST_URL``) into
   npnet's cache, with pooch.

In each directory a file may be gzip'd (``train-images-idx3-ubyte.gz``,
tried first) or not (``train-images-idx3-ubyte``); a bad copy under one name
never hides a valid copy under the other. Files from different directories are
never mixed. A broken symlink or a symlink loop is reported as such, not as a
missing file.

Verification
------------
Every file is checked before use: its size (decompression stops one byte past
the size the known shape implies, so a gzip bomb is never inflated), the IDX magic number (``0x00000803`` for
images, ``0x00000801`` for labels: unsigned bytes, 3 or 1 dimensions), the
dimensions, and the SHA-256 of the *decompressed* bytes. Hashing the
decompressed content, not the ``.gz``, is what lets the Debian package's
recompressed files pass. A bad file (truncated, corrupted, wrong header or
content) triggers a :class:`DataWarning` naming the file and the reason, and
the search moves on. If nothing works, :class:`DatasetNotFoundError` lists every
place tried, why each failed, and how to provide the data.

Downloading never removes a file before its replacement is verified and in
place: each file is downloaded to a hidden name beside the old one, verified,
and renamed over it; a failed or bad download leaves the directory as it was.
All downloads of one call share an overall deadline (``_download.DEADLINE``,
20 minutes) on top of the per-read timeout, so a mirror that trickles bytes
cannot hold ``load_data`` forever.

Hashes already checked are remembered per file (path, size, mtime, ctime) in
the cache root, so a warm ``load_data()`` only decompresses and checks headers
(gzip's own CRC-32 still guards the content).

For tests and mirrors
---------------------
:data:`BASE_URL`, :data:`FILES`, :data:`KERAS_HOME` and :data:`SYSTEM_DIR` are
read at call time, so tests can monkeypatch them (e.g. point ``BASE_URL`` at a
local server and ``FILES`` at the hashes and shapes of small synthetic files).
The upstream ``.gz`` MD5s in :data:`UPSTREAM_GZ_MD5` are passed to pooch only
when downloading from the upstream URL; other sources are checked by the
decompressed SHA-256 alone. ``NPNET_FASHION_MNIST_URL`` overrides ``BASE_URL``.
"""

import contextlib
import errno
import hashlib
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _download, _idx
from ._cache import VerifiedIndex, cache_root
from ._errors import BadFileError, DatasetNotFoundError, DataWarning

__all__ = [
    "CLASS_NAMES",
    "FILES",
    "BASE_URL",
    "load_data",
    "candidate_dirs",
    "cache_dir",
    "DataWarning",
    "DatasetNotFoundError",
]

#: Label i is the class CLASS_NAMES[i].
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class FileSpec(NamedTuple):
    """What one data file must contain once decompressed."""

    sha256: str  # of the decompressed IDX bytes (header included)
    shape: tuple  # array shape stated by the IDX header, e.g. (60000, 28, 28)


#: The four files (names without ``.gz``), in ``load_data``'s return order.
FILES = {
    "train-images-idx3-ubyte": FileSpec(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", (60000, 28, 28)
    ),
    "train-labels-idx1-ubyte": FileSpec(
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", (60000,)
    ),
    "t10k-images-idx3-ubyte": FileSpec(
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", (10000, 28, 28)
    ),
    "t10k-labels-idx1-ubyte": FileSpec(
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", (10000,)
    ),
}

#: Where Keras downloads Fashion-MNIST from.
BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_UPSTREAM_BASE_URL = BASE_URL

#: MD5 of the upstream ``.gz`` files (from the data set's README).
UPSTREAM_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}

DATA_DIR_ENV_VAR = "NPNET_DATA_DIR"
URL_ENV_VAR = "NPNET_FASHION_MNIST_URL"
SUBDIR = "fashion-mnist"

#: Keras's home directory; its downloads live in ``KERAS_HOME/datasets/fashion-mnist``.
KERAS_HOME = Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()

#: Where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the files.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_UNSIGNED_BYTE = 0x08


class Location(NamedTuple):
    """A directory to search, with a description for messages (``source``)."""

    source: str
    directory: Path


@dataclass
class _DirResult:
    """What one directory yielded: valid arrays, and why the rest failed."""

    arrays: dict = field(default_factory=dict)  # name -> ndarray
    missing: list = field(default_factory=list)  # names with no file at all
    failed: list = field(default_factory=list)  # names whose every file is unusable
    bad: list = field(default_factory=list)  # (file path, reason) of every unusable file
    directory_problem: str = None  # why the directory itself cannot be searched

    @property
    def complete(self):
        return not self.directory_problem and not self.missing and not self.failed

    def reason(self):
        if self.directory_problem:
            return self.directory_problem
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(f"{name}[.gz]" for name in self.missing))
        for file, reason in self.bad:
            parts.append(f"bad file {file.name}: {reason}")
        return "; ".join(parts)


def cache_dir():
    """npnet's Fashion-MNIST cache directory: ``<cache root>/fashion-mnist``."""
    return cache_root() / SUBDIR


def candidate_dirs(path=None):
    """The directories ``load_data(path)`` searches, in order: a list of :class:`Location`.

    Duplicates (the same directory reached twice) are listed once, at their
    first position. The download (step 6) is not a directory to search and is
    not included; it writes into :func:`cache_dir`.
    """
    locations = []
    if path is not None:
        locations.append(Location("path argument", Path(path).expanduser()))
    data_dir = os.environ.get(DATA_DIR_ENV_VAR)
    if data_dir:
        locations.append(Location(DATA_DIR_ENV_VAR, Path(data_dir).expanduser()))
    locations.append(Location("npnet cache", cache_dir()))
    locations.append(Location("Keras cache", Path(KERAS_HOME) / "datasets" / SUBDIR))
    locations.append(Location("system data set", Path(SYSTEM_DIR)))

    unique = []
    seen = set()
    for location in locations:
        key = os.path.realpath(location.directory)
        if key not in seen:
            seen.add(key)
            unique.append(location)
    return unique


def download_url():
    """Base URL for downloads: ``$NPNET_FASHION_MNIST_URL`` or :data:`BASE_URL`."""
    url = os.environ.get(URL_ENV_VAR) or BASE_URL
    if not url.endswith("/"):
        url += "/"
    return url


def load_data(path=None):
    """Load Fashion-MNIST, like ``keras.datasets.fashion_mnist.load_data()``.

    Args:
        path: optional directory holding the four files; searched first
            (see the module docstring for the full search order).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: writeable, C-contiguous uint8
        arrays of shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``,
        ``(10000,)``. Labels are 0..9, see :data:`CLASS_NAMES`.

    Warns:
        DataWarning: for each invalid file found (then the search continues).

    Raises:
        DatasetNotFoundError: no location had valid data and the download failed.
    """
    files = dict(FILES)
    index = VerifiedIndex.load()
    attempts = []
    try:
        results_by_dir = {}
        for location in candidate_dirs(path):
            result = _load_dir(location.directory, files, index)
            _warn_bad_files(location, result)
            if result.complete:
                return _keras_layout(result.arrays, files)
            attempts.append((f"{location.source} {location.directory}", result.reason()))
            results_by_dir[os.path.realpath(location.directory)] = result

        target = cache_dir()
        base_url = download_url()
        cached = results_by_dir.get(os.path.realpath(target))
        if cached is None:
            cached = _load_dir(target, files, index)
        try:
            arrays = _download_missing(target, base_url, files, cached, index)
        except (_download.DownloadError, BadFileError) as error:
            attempts.append((f"download from {base_url} into {target}", str(error)))
        else:
            return _keras_layout(arrays, files)
    finally:
        index.save()

    raise DatasetNotFoundError(_not_found_message(attempts, files), attempts)


def _keras_layout(arrays, files):
    """Order the four arrays as Keras does: ``(x_train, y_train), (x_test, y_test)``."""
    x_train, y_train, x_test, y_test = (arrays[name] for name in files)
    return (x_train, y_train), (x_test, y_test)


def _warn_bad_files(location, result):
    if result.directory_problem and result.directory_problem != _NO_DIRECTORY:
        warnings.warn(
            f"Fashion-MNIST directory {location.directory} ({location.source}) is unusable: "
            f"{result.directory_problem}. Trying the next location.",
            DataWarning,
            stacklevel=3,  # the caller of load_data
        )
    for file, reason in result.bad:
        then = (
            "Using the valid copy beside it."
            if result.complete
            else f"Skipping the {location.source} directory and trying the next location."
        )
        warnings.warn(
            f"Fashion-MNIST file {file} is unusable: {reason}. {then}",
            DataWarning,
            stacklevel=3,  # the caller of load_data
        )


_NO_DIRECTORY = "no such directory"


def _problem_with(path, kind):
    """Why ``path`` is not a usable ``kind`` ("file" or "directory"); None if it is.

    Returns :data:`_MISSING` when nothing is there at all, so that an absent
    file (not an error) is told apart from a broken symlink or a symlink loop.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symlink to {os.readlink(path)!r}"
        return _MISSING
    except NotADirectoryError:  # part of the path is a file: nothing can be there
        return _MISSING
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop: too many levels of symbolic links"
        return f"cannot access it ({error.strerror or error})"
    wanted = stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISREG(mode)
    return None if wanted else f"not a regular {kind}" if kind == "file" else "not a directory"


_MISSING = "missing"


def _load_dir(directory, files, index):
    """Read and verify every file of ``files`` found in ``directory``.

    For each name, ``name.gz`` is tried first, then ``name``: a bad copy never
    hides a valid one beside it (the bad one is still reported in ``bad``).
    """
    result = _DirResult()
    directory = Path(directory)
    problem = _problem_with(directory, "directory")
    if problem is not None:
        result.directory_problem = _NO_DIRECTORY if problem == _MISSING else problem
        result.missing = list(files)
        return result
    for name, spec in files.items():
        found_any = False
        for file in (directory / f"{name}.gz", directory / name):
            problem = _problem_with(file, "file")
            if problem == _MISSING:
                continue
            found_any = True
            try:
                if problem is not None:
                    raise BadFileError(problem)
                result.arrays[name] = _read_verified(file, spec, index)
                break
            except BadFileError as error:
                result.bad.append((file, str(error)))
        if not found_any:
            result.missing.append(name)
        elif name not in result.arrays:
            result.failed.append(name)
    return result


def _sha256_hex(data):
    """SHA-256 of ``data`` as hex (a separate function so tests can count calls)."""
    return hashlib.sha256(data).hexdigest()


def _shape_text(shape):
    return "(" + ", ".join(str(size) for size in shape) + (",)" if len(shape) == 1 else ")")


def _expected_size(spec):
    """Bytes of the decompressed IDX file described by ``spec``: header and uint8 body."""
    return _idx.header_size(spec.shape) + int(np.prod(spec.shape, dtype=np.int64))


def _read_verified(file, spec, index):
    """Read ``file`` and check it against ``spec``; return its array.

    Checks, cheapest first: the decompressed size (never more than
    :func:`_expected_size` bytes are inflated), gzip integrity, IDX magic number (unsigned bytes,
    ``len(spec.shape)`` dimensions), dimensions == ``spec.shape``, data length,
    SHA-256 of the decompressed bytes (skipped if ``index`` knows this file).
    Raises :class:`BadFileError` whose message is the reason.
    """
    try:
        data = _idx.read_file(file, max_bytes=_expected_size(spec))
    except _idx.IDXError as error:
        raise BadFileError(str(error)) from None
    except OSError as error:
        raise BadFileError(f"cannot read it ({error.strerror or error})") from None

    expected_magic = _idx.magic_number(_IDX_UNSIGNED_BYTE, len(spec.shape))
    if len(data) < 4:
        raise BadFileError(f"{'empty' if not data else f'only {len(data)} bytes'}: expected an IDX file of "
                           f"{_expected_size(spec)} bytes, starting with the magic number 0x{expected_magic:08X}")
    actual_magic = int.from_bytes(data[:4], "big")
    if actual_magic != expected_magic:
        raise BadFileError(
            f"wrong IDX magic number 0x{actual_magic:08X}, expected 0x{expected_magic:08X} "
            f"(unsigned bytes, {len(spec.shape)} dimension{'s' if len(spec.shape) > 1 else ''})"
        )
    try:
        _, shape = _idx.read_header(data)
        if shape != tuple(spec.shape):
            raise BadFileError(
                f"wrong dimensions {_shape_text(shape)}, expected {_shape_text(spec.shape)}"
            )
        array = _idx.parse(data)
    except _idx.IDXError as error:
        raise BadFileError(str(error)) from None

    digest = index.lookup(file)
    if digest is None:
        digest = _sha256_hex(data)
        index.record(file, digest)
    if digest != spec.sha256:
        raise BadFileError(
            f"wrong content: SHA-256 of the decompressed data is {digest}, "
            f"expected {spec.sha256}"
        )
    return array


def _remove_if_present(file):
    try:
        os.remove(file)
    except FileNotFoundError:
        pass


def _download_missing(directory, base_url, files, cached, index):
    """Download into ``directory`` every file not already valid there.

    ``cached`` is the :class:`_DirResult` of ``directory``. All the downloads
    share one deadline (``_download.DEADLINE`` seconds). Returns the four
    arrays. Raises ``DownloadError`` or :class:`BadFileError` (with the file
    named) on the first failure, so an offline machine fails after one attempt.
    """
    arrays = dict(cached.arrays)
    deadline = _download.clock() + _download.DEADLINE
    for name, spec in files.items():
        if name not in arrays:
            arrays[name] = _download_one(directory, base_url, name, spec, index, deadline)
    return arrays


def _download_one(directory, base_url, name, spec, index, deadline):
    """Download ``name.gz`` beside whatever is there, verify it, then put it in place.

    Nothing already in ``directory`` is removed until the verified download has
    replaced it: a failed or bad download leaves the directory as it was. Only
    then is a bad uncompressed ``name`` (which a valid copy would otherwise keep
    being warned about) removed.
    """
    gz_name = f"{name}.gz"
    staged_name = f".{gz_name}.{os.getpid()}.download"
    _remove_if_present(directory / staged_name)  # this process's own leftover
    md5 = UPSTREAM_GZ_MD5.get(name) if base_url == _UPSTREAM_BASE_URL else None
    expected = _expected_size(spec)
    staged = _download.download(
        base_url + gz_name,
        directory,
        staged_name,
        known_hash=f"md5:{md5}" if md5 else None,
        deadline=deadline,
        max_bytes=expected + expected // 100 + 4096,  # gzip never grows data by more
    )
    try:
        array = _read_verified(staged, spec, index)
    except BadFileError as error:
        _remove_if_present(staged)
        raise BadFileError(
            f"downloaded {gz_name} is bad ({error}); discarded it, kept what was there"
        ) from None
    final = directory / gz_name
    try:
        os.replace(staged, final)
    except OSError as error:
        _remove_if_present(staged)
        raise _download.DownloadError(f"cannot put the download in place at {final}: {error}")
    with contextlib.suppress(OSError):  # best effort: it is only a warning's source
        _remove_if_present(directory / name)
    index.record(final, spec.sha256)
    return array


def _not_found_message(attempts, files):
    lines = ["Fashion-MNIST could not be found or downloaded. Looked in:"]
    for number, (place, reason) in enumerate(attempts, start=1):
        lines.append(f"  {number}. {place}: {reason}")
    file_names = ", ".join(f"{name}.gz" for name in files)
    lines += [
        "",
        "Provide the data in one of these ways:",
        f"  - Connect to the internet: load_data() downloads the files (about 30 MB)"
        f" into {cache_dir()}.",
        "  - On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist",
        f"  - Put the four files ({file_names}; uncompressed copies without .gz also work)"
        f" in a directory and set {DATA_DIR_ENV_VAR}=/dir/with/the/four/files",
    ]
    return "\n".join(lines)
