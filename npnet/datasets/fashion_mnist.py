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
preferred) or not (``train-images-idx3-ubyte``). Files from different
directories are never mixed.

Verification
------------
Every file is checked before use: the IDX magic number (``0x00000803`` for
images, ``0x00000801`` for labels: unsigned bytes, 3 or 1 dimensions), the
dimensions, and the SHA-256 of the *decompressed* bytes. Hashing the
decompressed content, not the ``.gz``, is what lets the Debian package's
recompressed files pass. A bad file (truncated, corrupted, wrong header or
content) triggers a :class:`DataWarning` naming the file and the reason, and
the search moves on. If nothing works, :class:`DatasetNotFoundError` lists every
place tried, why each failed, and how to provide the data.

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

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

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
    bad: dict = field(default_factory=dict)  # name -> (file path, reason)
    no_directory: bool = False

    @property
    def complete(self):
        return not self.missing and not self.bad

    def reason(self):
        if self.no_directory:
            return "no such directory"
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(f"{name}[.gz]" for name in self.missing))
        for file, reason in self.bad.values():
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
            if result.complete:
                return _keras_layout(result.arrays, files)
            _warn_bad_files(location, result)
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
    for file, reason in result.bad.values():
        warnings.warn(
            f"Fashion-MNIST file {file} is unusable: {reason}. "
            f"Skipping the {location.source} directory and trying the next location.",
            DataWarning,
            stacklevel=3,  # the caller of load_data
        )


def _find_file(directory, name):
    """``directory/name.gz`` if it exists, else ``directory/name``, else None."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _load_dir(directory, files, index):
    """Read and verify every file of ``files`` found in ``directory``."""
    result = _DirResult()
    directory = Path(directory)
    if not directory.is_dir():
        result.no_directory = True
        result.missing = list(files)
        return result
    for name, spec in files.items():
        file = _find_file(directory, name)
        if file is None:
            result.missing.append(name)
            continue
        try:
            result.arrays[name] = _read_verified(file, spec, index)
        except BadFileError as error:
            result.bad[name] = (file, str(error))
    return result


def _sha256_hex(data):
    """SHA-256 of ``data`` as hex (a separate function so tests can count calls)."""
    return hashlib.sha256(data).hexdigest()


def _shape_text(shape):
    return "(" + ", ".join(str(size) for size in shape) + (",)" if len(shape) == 1 else ")")


def _read_verified(file, spec, index):
    """Read ``file`` and check it against ``spec``; return its array.

    Checks, cheapest first: gzip integrity, IDX magic number (unsigned bytes,
    ``len(spec.shape)`` dimensions), dimensions == ``spec.shape``, data length,
    SHA-256 of the decompressed bytes (skipped if ``index`` knows this file).
    Raises :class:`BadFileError` whose message is the reason.
    """
    try:
        data = _idx.read_file(file)
    except _idx.IDXError as error:
        raise BadFileError(str(error)) from None
    except OSError as error:
        raise BadFileError(f"cannot read it ({error.strerror or error})") from None

    expected_magic = _idx.magic_number(_IDX_UNSIGNED_BYTE, len(spec.shape))
    actual_magic = int.from_bytes(data[:4], "big")
    if len(data) < 4 or actual_magic != expected_magic:
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

    ``cached`` is the :class:`_DirResult` of ``directory``. Each download is
    verified like any other file; a file that fails is deleted. Returns the
    four arrays. Raises ``DownloadError`` or :class:`BadFileError` (with the file
    named) on the first failure, so an offline machine fails after one attempt.
    """
    arrays = dict(cached.arrays)
    for name, spec in files.items():
        if name in arrays:
            continue
        gz_name = f"{name}.gz"
        # A stale or bad copy would otherwise be kept by pooch (no known hash)
        # or shadow the download (the uncompressed name).
        try:
            _remove_if_present(directory / gz_name)
            _remove_if_present(directory / name)
        except OSError as error:
            raise _download.DownloadError(f"cannot replace {directory / name}[.gz]: {error}")

        md5 = UPSTREAM_GZ_MD5.get(name) if base_url == _UPSTREAM_BASE_URL else None
        file = _download.download(
            base_url + gz_name,
            directory,
            gz_name,
            known_hash=f"md5:{md5}" if md5 else None,
        )
        try:
            arrays[name] = _read_verified(file, spec, index)
        except BadFileError as error:
            _remove_if_present(file)
            raise BadFileError(f"downloaded {gz_name} is bad ({error}); deleted it") from None
    return arrays


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
