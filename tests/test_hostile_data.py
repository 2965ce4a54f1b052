"""Fashion-MNIST loading against hostile or damaged files and servers.

Every hostile input is generated here, in tmp_path or on a server on 127.0.0.1:
a truncated ``.gz`` beside a valid copy, a gzip bomb, symlink loops, a mirror
that trickles bytes, a server that never stops sending. The synthetic data set
and its fixtures come from test_datasets.py.
"""

import gzip
import itertools
import os
import threading
import time
import tracemalloc
import zlib

import pytest

from npnet.datasets import DatasetNotFoundError, DataWarning, _download, _idx, fashion_mnist
from test_datasets import (  # noqa: F401  (synthetic is a fixture)
    NAMES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, QuietHandler, http_server, idx_bytes,
    listing, synthetic,
)


def snapshot(directory):
    """{name: bytes} of every regular file in ``directory`` (symlinks by their target text)."""
    result = {}
    for name in listing(directory):
        path = directory / name
        result[name] = os.readlink(path) if path.is_symlink() else path.read_bytes()
    return result


# ----------------------------------------------------------------------------- keep good copies


def test_a_truncated_gz_does_not_hide_a_valid_uncompressed_copy(synthetic):
    synthetic.write(synthetic.cache_dir, compress=False)
    truncated = synthetic.gz(TRAIN_IMAGES)[:100]
    (synthetic.cache_dir / f"{TRAIN_IMAGES}.gz").write_bytes(truncated)
    before = snapshot(synthetic.cache_dir)

    with pytest.warns(DataWarning, match=r"truncated gzip.*Using the valid copy beside it"):
        synthetic.check(fashion_mnist.load_data())  # offline: BASE_URL is a closed port

    assert snapshot(synthetic.cache_dir) == before, "a file in the cache was changed or removed"


@pytest.mark.parametrize("content, says", [(b"", "empty: expected an IDX file of"),
                                           (b"\x00\x00", "only 2 bytes: expected an IDX file of")])
def test_an_empty_or_tiny_file_is_called_what_it_is(synthetic, content, says):
    synthetic.write(synthetic.cache_dir, compress=False)
    (synthetic.cache_dir / TRAIN_LABELS).write_bytes(content)
    before = snapshot(synthetic.cache_dir)
    with pytest.warns(DataWarning, match=says), pytest.raises(DatasetNotFoundError):
        fashion_mnist.load_data()
    assert snapshot(synthetic.cache_dir) == before


def test_a_failed_download_removes_nothing(synthetic):
    """Bad copies are kept until a verified replacement exists: offline, nothing changes."""
    synthetic.write(synthetic.cache_dir)
    (synthetic.cache_dir / f"{TRAIN_LABELS}.gz").write_bytes(synthetic.gz(TRAIN_LABELS)[:-9])
    (synthetic.cache_dir / TRAIN_LABELS).write_bytes(b"not IDX")
    before = snapshot(synthetic.cache_dir)

    with pytest.warns(DataWarning), pytest.raises(DatasetNotFoundError) as caught:
        fashion_mnist.load_data()

    assert snapshot(synthetic.cache_dir) == before, "the failed download deleted files"
    message = str(caught.value)
    assert "download from" in message and "Connection" in message, message
    assert f"bad file {TRAIN_LABELS}.gz: truncated gzip file" in message, message


def test_a_bad_download_keeps_the_old_copy_and_a_good_one_replaces_it(synthetic, monkeypatch, tmp_path):
    synthetic.write(synthetic.cache_dir)
    (synthetic.cache_dir / f"{TEST_LABELS}.gz").write_bytes(b"\x1f\x8b junk")
    (synthetic.cache_dir / TEST_LABELS).write_bytes(b"also junk")
    served = tmp_path / "served"
    synthetic.write(served, replace={TEST_LABELS: idx_bytes(synthetic.arrays[TEST_LABELS] ^ 1)})
    before = snapshot(synthetic.cache_dir)
    with http_server(served) as url, pytest.warns(DataWarning):
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError, match="discarded it, kept what was there"):
            fashion_mnist.load_data()
    assert snapshot(synthetic.cache_dir) == before

    synthetic.write(served)
    with http_server(served) as url, pytest.warns(DataWarning):
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        synthetic.check(fashion_mnist.load_data())
    # The verified download replaced the bad .gz; the bad uncompressed copy went after it.
    assert listing(synthetic.cache_dir) == sorted(f"{name}.gz" for name in NAMES)


# ----------------------------------------------------------------------------- gzip bomb


def write_gzip_bomb(path, header, inflated_mib):
    """A gzip file of ``header`` then ``inflated_mib`` MiB of zeros (~64 kB on disk per 64 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    zeros = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(compressor.compress(header))
        for _ in range(inflated_mib):
            out.write(compressor.compress(zeros))
        out.write(compressor.flush())


def peak_allocation(function):
    """Run ``function``; return (its result or exception, peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    try:
        try:
            outcome = function()
        except Exception as error:  # noqa: BLE001 - returned for the caller to check
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_not_inflated(synthetic):
    shape = synthetic.arrays[TRAIN_IMAGES].shape
    header = idx_bytes(synthetic.arrays[TRAIN_IMAGES])[:_idx.header_size(shape)]
    synthetic.write(synthetic.path_dir)
    write_gzip_bomb(synthetic.path_dir / f"{TRAIN_IMAGES}.gz", header, inflated_mib=64)
    synthetic.write(synthetic.system_dir)

    with pytest.warns(DataWarning, match="decompresses to more than the 4,720 bytes expected"):
        loaded, peak = peak_allocation(lambda: fashion_mnist.load_data(path=synthetic.path_dir))
    synthetic.check(loaded)  # from the system directory, after skipping the bomb
    assert peak < 8 << 20, f"expected under 8 MiB allocated while loading, got {peak / 2**20:.0f} MiB"


def test_the_idx_reader_stops_at_the_size_asked_for(tmp_path):
    bomb = tmp_path / "bomb.gz"
    write_gzip_bomb(bomb, b"\x00\x00\x08\x01\x00\x00\x00\x10", inflated_mib=32)
    error, peak = peak_allocation(lambda: _idx.read_file(bomb, max_bytes=24))
    assert isinstance(error, _idx.IDXError) and "more than the 24 bytes expected" in str(error)
    assert peak < 4 << 20, f"expected under 4 MiB allocated, got {peak / 2**20:.0f} MiB"
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(100))
    with pytest.raises(_idx.IDXError, match="holds more than the 99 bytes expected"):
        _idx.read_file(plain, max_bytes=99)
    assert _idx.read_file(plain, max_bytes=100) == bytes(100)


# ----------------------------------------------------------------------------- symlinks


def make_loop(path):
    """``path`` -> ``path.loop`` -> ``path``: a symlink loop."""
    partner = path.with_name(path.name + ".loop")
    path.symlink_to(partner.name)
    partner.symlink_to(path.name)


def test_a_symlink_loop_is_reported_as_a_loop_not_as_missing(synthetic):
    synthetic.write(synthetic.path_dir)
    (synthetic.path_dir / f"{TRAIN_IMAGES}.gz").unlink()
    make_loop(synthetic.path_dir / f"{TRAIN_IMAGES}.gz")
    (synthetic.path_dir / f"{TEST_LABELS}.gz").unlink()
    (synthetic.path_dir / f"{TEST_LABELS}.gz").symlink_to("nowhere.gz")

    with pytest.warns(DataWarning) as caught, pytest.raises(DatasetNotFoundError) as error:
        fashion_mnist.load_data(path=synthetic.path_dir)

    first = str(error.value).splitlines()[1]
    assert f"bad file {TRAIN_IMAGES}.gz: symlink loop" in first, first
    assert f"bad file {TEST_LABELS}.gz: broken symlink to 'nowhere.gz'" in first, first
    assert "missing" not in first, first
    assert any("symlink loop" in str(w.message) for w in caught)


def test_a_directory_that_is_a_symlink_loop_is_reported(synthetic):
    make_loop(synthetic.path_dir)
    synthetic.write(synthetic.system_dir)
    with pytest.warns(DataWarning, match="path argument.*symlink loop"):
        synthetic.check(fashion_mnist.load_data(path=synthetic.path_dir))
    synthetic.write(synthetic.data_dir)  # a missing directory stays quiet and says so
    assert fashion_mnist._load_dir(synthetic.keras_dir, synthetic.files, None).reason() == (
        "no such directory")


# ----------------------------------------------------------------------------- slow or endless servers


class TricklingHandler(QuietHandler):
    """Promises the whole file, then sends one byte every 10 ms, at most 300 bytes (3 s)."""

    sent = []  # bytes written per request; replaced per test
    done = None  # a threading.Event set when a request ends; replaced per test

    def do_GET(self):
        content = open(os.path.join(self.directory, self.path.lstrip("/")), "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        count = 0
        try:
            for count in range(min(300, len(content))):
                self.wfile.write(content[count:count + 1])
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.sent.append(count)
        self.done.set()
        self.close_connection = True


def test_a_trickling_mirror_hits_the_overall_deadline(synthetic, monkeypatch, tmp_path):
    served = tmp_path / "served"
    synthetic.write(served)
    ticks = itertools.count()
    monkeypatch.setattr(_download, "clock", lambda: float(next(ticks)))  # one second per look
    monkeypatch.setattr(_download, "DEADLINE", 5)
    monkeypatch.setattr(TricklingHandler, "sent", [])
    monkeypatch.setattr(TricklingHandler, "done", threading.Event())

    with http_server(served, TricklingHandler) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError) as caught:
            fashion_mnist.load_data()

    assert "download deadline (5 s for all files) passed" in str(caught.value), str(caught.value)
    assert TricklingHandler.done.wait(timeout=10), "the server's handler did not finish"
    assert len(TricklingHandler.sent) == 1 and TricklingHandler.sent[0] < 299, (
        f"expected the client to hang up early, the server sent {TricklingHandler.sent} bytes")
    assert listing(synthetic.cache_dir) == [], "a partial download was left behind"


class EndlessHandler(QuietHandler):
    """No Content-Length; sends 64 kB of zeros (more than any synthetic file)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(64):
                self.wfile.write(bytes(1024))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def test_a_server_that_sends_too_much_is_cut_off(synthetic, monkeypatch, tmp_path):
    with http_server(tmp_path, EndlessHandler) as url:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", url)
        with pytest.raises(DatasetNotFoundError, match=r"sent more than the [\d,]+ bytes expected"):
            fashion_mnist.load_data()
    assert listing(synthetic.cache_dir) == []


def test_the_real_file_sizes_bound_decompression():
    sizes = {name: fashion_mnist._expected_size(spec) for name, spec in fashion_mnist.FILES.items()}
    assert sizes == {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
                     "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
