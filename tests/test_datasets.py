"""Tests for npnet.datasets.fashion_mnist.

Two kinds:
- the real data set, found by the default search (these fail, never skip, when
  the data is missing: the tutorial cannot run without it);
- tiny synthetic IDX files written to tmp_path, with their hashes and shapes
  injected through ``fashion_mnist.FILES``, to exercise the search order,
  verification, the verified-hash index and downloads from a local HTTP server.

Nothing here touches the network beyond 127.0.0.1 or writes outside tmp_path.
"""

import contextlib
import functools
import gzip
import hashlib
import importlib
import http.server
import json
import os
import socket
import struct
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import npnet
from npnet.datasets import DatasetNotFoundError, DataWarning, fashion_mnist
from npnet.datasets._cache import INDEX_NAME

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


# --------------------------------------------------------------------------------------
# The real data set
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """The real Fashion-MNIST, loaded once, through the default search.

    The verified-hash index (and a download, if one were needed) go to a
    temporary cache; npnet's real cache is still searched, read-only, by
    passing it as ``path``.
    """
    real_cache = fashion_mnist.cache_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NPNET_CACHE_DIR", str(tmp_path_factory.mktemp("npnet-cache")))
        return fashion_mnist.load_data(path=real_cache)


def test_real_shapes_and_dtypes(real_data):
    (x_train, y_train), (x_test, y_test) = real_data
    assert x_train.shape == (60000, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28)
    assert y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
        assert array.flags.c_contiguous
        assert array.flags.writeable


def test_real_known_labels(real_data):
    (_, y_train), (_, y_test) = real_data
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[0] == 9


def test_real_classes_are_balanced(real_data):
    (_, y_train), (_, y_test) = real_data
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10


def test_real_pixel_range(real_data):
    (x_train, _), (x_test, _) = real_data
    assert x_train.min() == 0 and x_train.max() == 255
    assert x_test.min() == 0 and x_test.max() == 255


def test_class_names():
    assert fashion_mnist.CLASS_NAMES == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )


# --------------------------------------------------------------------------------------
# Synthetic data: helpers and fixtures
# --------------------------------------------------------------------------------------


def idx_bytes(array, magic=None):
    """IDX encoding of a uint8 array (``magic`` overrides the header's first 4 bytes)."""
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def closed_port():
    """A TCP port on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Synthetic:
    """A tiny data set (6 train, 2 test images) and the five search directories."""

    def __init__(self, tmp_path):
        rng = np.random.default_rng(0)
        self.arrays = {
            TRAIN_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
            TRAIN_LABELS: rng.integers(0, 10, 6, dtype=np.uint8),
            TEST_IMAGES: rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
            TEST_LABELS: rng.integers(0, 10, 2, dtype=np.uint8),
        }
        self.raw = {name: idx_bytes(array) for name, array in self.arrays.items()}
        self.files = {
            name: fashion_mnist.FileSpec(hashlib.sha256(raw).hexdigest(), self.arrays[name].shape)
            for name, raw in self.raw.items()
        }
        self.path_dir = tmp_path / "given"
        self.data_dir = tmp_path / "data-dir"
        self.cache_root = tmp_path / "cache"
        self.cache_dir = self.cache_root / "fashion-mnist"
        self.keras_home = tmp_path / "keras"
        self.keras_dir = self.keras_home / "datasets" / "fashion-mnist"
        self.system_dir = tmp_path / "system"
        # In search order.
        self.locations = [
            self.path_dir, self.data_dir, self.cache_dir, self.keras_dir, self.system_dir
        ]

    def write(self, directory, compress=True, replace=None):
        """Write the four files into ``directory``; ``replace`` maps names to other bytes."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, raw in self.raw.items():
            content = (replace or {}).get(name, raw)
            if compress:
                (directory / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (directory / name).write_bytes(content)

    def gz(self, name):
        return gzip.compress(self.raw[name])

    def check(self, loaded):
        (x_train, y_train), (x_test, y_test) = loaded
        expected = [self.arrays[name] for name in NAMES]
        for got, want in zip((x_train, y_train, x_test, y_test), expected):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.uint8
            assert got.flags.writeable and got.flags.c_contiguous


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """Synthetic hashes/shapes injected; every search location redirected to tmp_path."""
    data = Synthetic(tmp_path)
    monkeypatch.setattr(fashion_mnist, "FILES", data.files)
    monkeypatch.setattr(fashion_mnist, "KERAS_HOME", data.keras_home)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", data.system_dir)
    monkeypatch.setattr(fashion_mnist, "BASE_URL", f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.setenv("NPNET_CACHE_DIR", str(data.cache_root))
    monkeypatch.setenv("NPNET_DATA_DIR", str(data.data_dir))
    monkeypatch.delenv("NPNET_FASHION_MNIST_URL", raising=False)
    # requests honours proxy variables; 127.0.0.1 must be reached directly.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return data


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class TruncatingHandler(QuietHandler):
    """Promises the whole file in Content-Length, sends half, hangs up."""

    def do_GET(self):
        content = Path(self.directory, self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content[: len(content) // 2])
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def http_server(directory, handler=QuietHandler):
    """Serve ``directory`` on 127.0.0.1 (any free port) in a thread; yield the base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def listing(directory):
    """Every entry in ``directory`` (hidden and temporary names included), sorted."""
    return sorted(os.listdir(directory)) if directory.exists() else []


# --------------------------------------------------------------------------------------
# Search order
# --------------------------------------------------------------------------------------


def test_candidate_dirs_order(synthetic):
    locations = fashion_mnist.candidate_dirs(synthetic.path_dir)
    assert [location.directory for location in locations] == synthetic.locations
    sources = [location.source for location in locations]
    assert sources == [
        "path argument", "NPNET_DATA_DIR", "npnet cache", "Keras cache", "system data set"
    ]


def test_candidate_dirs_without_path_or_env(synthetic, monkeypatch):
    monkeypatch.delenv("NPNET_DATA_DIR")
    directories = [location.directory for location in fashion_mnist.candidate_dirs()]
    assert directories == [synthetic.cache_dir, synthetic.keras_dir, synthetic.system_dir]


def test_candidate_dirs_lists_a_directory_once(synthetic, monkeypatch):
    monkeypatch.setenv("NPNET_DATA_DIR", str(synthetic.system_dir))
    directories = [location.directory for location in fashion_mnist.candidate_dirs()]
    assert directories == [synthetic.system_dir, synthetic.cache_dir, synthetic.keras_dir]


@pytest.mark.parametrize("winner", range(5), ids=["path", "env", "cache", "keras", "system"])
def test_search_order_precedence(synthetic, winner):
    # Nothing before the winner, valid data at the winner, and truncated files
    # in every later location: reading any later location first would warn.
    truncated = synthetic.gz(TRAIN_IMAGES)[:100]
    for position, directory in enumerate(synthetic.locations):
        if position == winner:
            synthetic.write(directory)
        elif position > winner:
            synthetic.write(directory)
            (directory / f"{TRAIN_IMAGES}.gz").write_bytes(truncated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))


def test_uncompressed_files_are_accepted(synthetic):
    synthetic.write(synthetic.path_dir, compress=False)
    synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))


def test_partial_location_is_skipped_without_warning(synthetic):
    synthetic.write(synthetic.path_dir)
    (synthetic.path_dir / f"{TEST_LABELS}.gz").unlink()
    synthetic.write(synthetic.system_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))


# --------------------------------------------------------------------------------------
# Bad files: warn, name the file and the reason, fall through
# --------------------------------------------------------------------------------------


def _with_header(array, magic=None, shape=None):
    """IDX bytes of ``array`` with a forged magic number or dimensions."""
    raw = idx_bytes(array, magic)
    if shape is not None:
        raw = struct.pack(">I", 0x0803) + struct.pack(">3I", *shape) + raw[16:]
    return raw


def _bad_variants(data):
    images = data.arrays[TRAIN_IMAGES]
    good_gz = data.gz(TRAIN_IMAGES)
    corrupted_gz = bytearray(good_gz)
    corrupted_gz[len(corrupted_gz) // 2] ^= 0xFF
    wrong_pixels = images.copy()
    wrong_pixels[0, 0, 0] ^= 1
    return {
        "truncated gzip": (good_gz[: len(good_gz) // 2], True, "truncated gzip"),
        "corrupted gzip": (bytes(corrupted_gz), True, "gzip"),
        "wrong magic": (_with_header(images, magic=0x00000802), False, "magic number 0x00000802"),
        "labels as images": (data.raw[TRAIN_LABELS], False, "magic number 0x00000801"),
        "wrong dimensions": (
            _with_header(images[:5], shape=(5, 28, 28)),
            False,
            "wrong dimensions (5, 28, 28), expected (6, 28, 28)",
        ),
        "short body": (data.raw[TRAIN_IMAGES][:-10], False, "wrong length"),
        "wrong content": (idx_bytes(wrong_pixels), False, "wrong content: SHA-256"),
        "empty file": (b"", True, "empty: expected an IDX file of"),
    }


BAD_VARIANT_IDS = [
    "truncated gzip", "corrupted gzip", "wrong magic", "labels as images",
    "wrong dimensions", "short body", "wrong content", "empty file",
]


@pytest.mark.parametrize("variant", BAD_VARIANT_IDS)
def test_bad_file_warns_and_falls_through(synthetic, variant):
    content, already_compressed, reason = _bad_variants(synthetic)[variant]
    synthetic.write(synthetic.path_dir)
    bad_file = synthetic.path_dir / f"{TRAIN_IMAGES}.gz"
    bad_file.write_bytes(content if already_compressed else gzip.compress(content))
    synthetic.write(synthetic.data_dir)

    with pytest.warns(DataWarning) as record:
        loaded = fashion_mnist.load_data(path=synthetic.path_dir)

    synthetic.check(loaded)  # from NPNET_DATA_DIR
    assert len(record) == 1
    message = str(record[0].message)
    assert str(bad_file) in message
    assert reason in message
    assert record[0].filename == __file__  # points at the caller of load_data


def test_bad_uncompressed_file_is_reported(synthetic):
    synthetic.write(synthetic.path_dir, compress=False)
    bad_file = synthetic.path_dir / TEST_IMAGES
    bad_file.write_bytes(synthetic.raw[TEST_IMAGES][:-1])
    synthetic.write(synthetic.system_dir)
    with pytest.warns(DataWarning, match="wrong length") as record:
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))
    assert str(bad_file) in str(record[0].message)


def test_every_bad_file_of_a_location_is_reported(synthetic):
    synthetic.write(synthetic.path_dir)
    for name in (TRAIN_LABELS, TEST_LABELS):
        (synthetic.path_dir / f"{name}.gz").write_bytes(b"\x1f\x8b\x08")
    synthetic.write(synthetic.keras_dir)
    with pytest.warns(DataWarning) as record:
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))
    messages = " ".join(str(warning.message) for warning in record)
    assert f"{TRAIN_LABELS}.gz" in messages and f"{TEST_LABELS}.gz" in messages


# --------------------------------------------------------------------------------------
# Nothing works: one error that explains everything, quickly
# --------------------------------------------------------------------------------------


def test_all_sources_failed_message(synthetic):
    synthetic.write(synthetic.keras_dir)
    (synthetic.keras_dir / f"{TRAIN_IMAGES}.gz").write_bytes(synthetic.gz(TRAIN_IMAGES)[:50])
    synthetic.system_dir.mkdir()

    with pytest.warns(DataWarning), pytest.raises(DatasetNotFoundError) as caught:
        fashion_mnist.load_data(path=synthetic.path_dir)

    assert isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    for directory in synthetic.locations:
        assert str(directory) in message
    assert "no such directory" in message
    assert f"bad file {TRAIN_IMAGES}.gz: truncated gzip" in message
    assert f"missing {TRAIN_IMAGES}[.gz]" in message  # the empty system dir
    assert f"download from {fashion_mnist.BASE_URL}" in message
    assert "Connection refused" in message or "ConnectionError" in message
    # The three remedies.
    assert "internet" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "NPNET_DATA_DIR=/dir/with/the/four/files" in message
    assert len(caught.value.attempts) == 6
    assert listing(synthetic.cache_dir) == []


def test_unreachable_url_from_environment(synthetic, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/mirror/"
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", url)
    with pytest.raises(DatasetNotFoundError, match=f"download from {url}"):
        fashion_mnist.load_data()


def test_upstream_md5_is_checked_only_for_the_upstream_url(synthetic, monkeypatch):
    requested = []

    def fake_download(url, directory, fname, *, known_hash=None, timeout=None, **limits):
        requested.append((url, known_hash))
        raise fashion_mnist._download.DownloadError("offline")

    monkeypatch.setattr(fashion_mnist._download, "download", fake_download)
    monkeypatch.setattr(fashion_mnist, "BASE_URL", fashion_mnist._UPSTREAM_BASE_URL)
    with pytest.raises(DatasetNotFoundError):
        fashion_mnist.load_data()
    assert requested == [
        (fashion_mnist._UPSTREAM_BASE_URL + f"{TRAIN_IMAGES}.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d")
    ]

    requested.clear()
    monkeypatch.setattr(fashion_mnist, "BASE_URL", "http://127.0.0.1:1/elsewhere/")
    with pytest.raises(DatasetNotFoundError):
        fashion_mnist.load_data()
    assert requested == [(f"http://127.0.0.1:1/elsewhere/{TRAIN_IMAGES}.gz", None)]


# --------------------------------------------------------------------------------------
# Downloads, for real, from a local HTTP server
# --------------------------------------------------------------------------------------


def test_download_then_load_from_cache(synthetic, monkeypatch, tmp_path, capfd):
    served = tmp_path / "served"
    synthetic.write(served)
    with http_server(served) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            synthetic.check(fashion_mnist.load_data())

    assert listing(synthetic.cache_dir) == sorted(f"{name}.gz" for name in NAMES)
    for name in NAMES:
        assert (synthetic.cache_dir / f"{name}.gz").read_bytes() == (served / f"{name}.gz").read_bytes()
    assert capfd.readouterr().err == ""  # no progress output when stderr is not a terminal

    # The server is gone (its port is closed): the cache alone must do.
    synthetic.check(fashion_mnist.load_data())


def test_download_replaces_a_bad_cached_file(synthetic, monkeypatch, tmp_path):
    synthetic.write(synthetic.cache_dir)
    (synthetic.cache_dir / f"{TEST_IMAGES}.gz").write_bytes(b"not gzip at all")
    served = tmp_path / "served"
    synthetic.write(served)
    requested = []

    class RecordingHandler(QuietHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    with http_server(served, RecordingHandler) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.warns(DataWarning, match=f"{TEST_IMAGES}.gz"):
            synthetic.check(fashion_mnist.load_data())

    assert requested == [f"/{TEST_IMAGES}.gz"]  # the valid cached files were kept
    assert listing(synthetic.cache_dir) == sorted(f"{name}.gz" for name in NAMES)


def test_download_of_wrong_content_leaves_nothing(synthetic, monkeypatch, tmp_path):
    served = tmp_path / "served"
    synthetic.write(served)
    wrong = synthetic.arrays[TRAIN_IMAGES].copy()
    wrong[-1, -1, -1] ^= 0xFF
    (served / f"{TRAIN_IMAGES}.gz").write_bytes(gzip.compress(idx_bytes(wrong)))

    with http_server(served) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError) as caught:
            fashion_mnist.load_data()

    message = str(caught.value)
    assert f"downloaded {TRAIN_IMAGES}.gz is bad" in message
    assert "wrong content" in message
    assert listing(synthetic.cache_dir) == []


def test_interrupted_download_leaves_nothing(synthetic, monkeypatch, tmp_path):
    served = tmp_path / "served"
    synthetic.write(served)
    with http_server(served, TruncatingHandler) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError, match="download from"):
            fashion_mnist.load_data()
    assert listing(synthetic.cache_dir) == []


def test_missing_file_on_server(synthetic, monkeypatch, tmp_path):
    served = tmp_path / "served"
    synthetic.write(served)
    (served / f"{TEST_LABELS}.gz").unlink()
    with http_server(served) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError, match="404"):
            fashion_mnist.load_data()
    # What did arrive was verified and may stay; nothing partial or temporary.
    assert listing(synthetic.cache_dir) == sorted(f"{name}.gz" for name in NAMES[:3])


# --------------------------------------------------------------------------------------
# The verified-hash index
# --------------------------------------------------------------------------------------


@pytest.fixture
def hash_calls(monkeypatch):
    """Count the files hashed by fashion_mnist (the list of hashed byte lengths)."""
    calls = []
    original = fashion_mnist._sha256_hex

    def counting(data):
        calls.append(len(data))
        return original(data)

    monkeypatch.setattr(fashion_mnist, "_sha256_hex", counting)
    return calls


def test_warm_load_does_not_rehash(synthetic, hash_calls):
    synthetic.write(synthetic.system_dir)
    synthetic.check(fashion_mnist.load_data())
    assert len(hash_calls) == 4
    assert (synthetic.cache_root / INDEX_NAME).is_file()

    hash_calls.clear()
    synthetic.check(fashion_mnist.load_data())
    assert hash_calls == []


def test_changed_mtime_forces_rehash(synthetic, hash_calls):
    synthetic.write(synthetic.system_dir)
    fashion_mnist.load_data()
    file = synthetic.system_dir / f"{TRAIN_LABELS}.gz"
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    hash_calls.clear()
    synthetic.check(fashion_mnist.load_data())
    assert hash_calls == [len(synthetic.raw[TRAIN_LABELS])]


def test_changed_size_forces_rehash(synthetic, hash_calls):
    synthetic.write(synthetic.system_dir)
    fashion_mnist.load_data()
    # Same content, different compression: another size, still valid.
    file = synthetic.system_dir / f"{TEST_IMAGES}.gz"
    file.write_bytes(gzip.compress(synthetic.raw[TEST_IMAGES], compresslevel=1))

    hash_calls.clear()
    synthetic.check(fashion_mnist.load_data())
    assert hash_calls == [len(synthetic.raw[TEST_IMAGES])]


def test_index_does_not_hide_bad_content(synthetic):
    # A file indexed as good, then replaced by bad content under the same name.
    synthetic.write(synthetic.path_dir)
    synthetic.write(synthetic.system_dir)
    fashion_mnist.load_data(path=synthetic.path_dir)
    wrong = synthetic.arrays[TRAIN_IMAGES].copy()
    wrong[0, 0, 0] ^= 1
    (synthetic.path_dir / f"{TRAIN_IMAGES}.gz").write_bytes(gzip.compress(idx_bytes(wrong)))
    with pytest.warns(DataWarning, match="wrong content"):
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))


def test_unwritable_cache_root_is_tolerated(synthetic, monkeypatch, tmp_path, hash_calls):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NPNET_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    synthetic.write(synthetic.system_dir)
    synthetic.check(fashion_mnist.load_data())
    synthetic.check(fashion_mnist.load_data())
    assert len(hash_calls) == 8  # no index, so every load hashes


def test_corrupt_index_is_ignored(synthetic):
    synthetic.cache_root.mkdir()
    (synthetic.cache_root / INDEX_NAME).write_text("{ not json")
    synthetic.write(synthetic.system_dir)
    synthetic.check(fashion_mnist.load_data())
    index = json.loads((synthetic.cache_root / INDEX_NAME).read_text())
    assert len(index["files"]) == 4
    # Written atomically: no temporary files left beside it.
    assert listing(synthetic.cache_root) == [INDEX_NAME]


def test_a_server_that_never_answers_times_out_once_instead_of_hanging(synthetic, monkeypatch):
    """Offline or stuck networks must not hang load_data: every request has a bounded
    timeout, nothing is retried, and the first failed file ends the download."""
    import socket
    import threading

    from npnet.datasets import _download

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    def accept_and_stay_silent():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)  # kept open, never answered

    threading.Thread(target=accept_and_stay_silent, daemon=True).start()
    monkeypatch.setattr(_download, "TIMEOUT", 0.5)
    monkeypatch.setattr(fashion_mnist, "BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/")
    try:
        with pytest.raises(DatasetNotFoundError) as caught:
            fashion_mnist.load_data(path=synthetic.path_dir)
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    assert "timed out" in str(caught.value).lower()
    assert len(accepted) == 1, f"expected one attempt, no retries; the server saw {len(accepted)}"


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing",
                                  "california_housing"])
def test_keras_data_sets_npnet_does_not_ship_say_so_however_they_are_reached(name):
    """``from npnet.datasets import imdb`` (a notebook's first line, with keras swapped for
    npnet), ``import npnet.datasets.imdb`` and ``npnet.datasets.imdb`` all say that npnet
    ships Fashion-MNIST only and what to do instead; ``hasattr`` stays False."""
    advice = rf"npnet.datasets has no '{name}': npnet ships Fashion-MNIST only .* load the arrays yourself"
    with pytest.raises(ImportError, match=advice):
        exec(f"from npnet.datasets import {name}", {})
    with pytest.raises(ImportError, match=advice):
        importlib.import_module(f"npnet.datasets.{name}")
    with pytest.raises(AttributeError, match=advice):
        getattr(npnet.datasets, name)
    assert not hasattr(npnet.datasets, name)
    assert f"npnet.datasets.{name}" not in sys.modules
