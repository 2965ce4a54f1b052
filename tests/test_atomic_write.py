"""npnet.utils.atomic_write: durability, permissions, symlinks and killed writers."""

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npnet import utils

REPO = Path(__file__).resolve().parents[1]


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def test_file_and_directory_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def recording_replace(source, destination):
        events.append(("replace", os.fspath(source), os.fspath(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    target = tmp_path / "model.bin"
    with utils.atomic_write(target) as handle:
        handle.write(b"weights")

    kinds = [event[0] for event in events]
    assert kinds == ["fsync", "replace", "fsync"], f"expected fsync, replace, fsync; got {events}"
    temporary = events[1][1]
    assert events[0][1] == temporary, "the data must be synced before it is renamed into place"
    assert events[2][1] == str(tmp_path), "the directory must be synced after the rename"
    assert target.read_bytes() == b"weights"


def test_a_handle_closed_by_the_caller_is_still_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with utils.atomic_write(tmp_path / "f.txt", "w") as handle:
        handle.write("text")
        handle.close()
    assert len(synced) == 2 and (tmp_path / "f.txt").read_text() == "text"


@pytest.mark.parametrize("existing, mask", [(0o600, 0o022), (0o640, 0o077), (0o664, 0o022)])
def test_resaving_keeps_the_existing_files_mode(tmp_path, umask, existing, mask):
    target = tmp_path / "secret.json"
    target.write_text("old")
    os.chmod(target, existing)
    umask(mask)
    utils.write_json_atomic(target, {"new": True})
    assert _mode(target) == existing, f"expected mode {existing:o} kept, got {_mode(target):o}"
    assert '"new": true' in target.read_text()


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_umask_default(tmp_path, umask, mask, expected):
    umask(mask)
    with utils.atomic_write(tmp_path / "new.bin") as handle:
        handle.write(b"x")
    assert _mode(tmp_path / "new.bin") == expected


def test_saving_to_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "model.npnet"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    links = tmp_path / "links"
    links.mkdir()
    link = links / "current.npnet"
    link.symlink_to(os.path.relpath(target, links))

    with utils.atomic_write(link) as handle:
        handle.write(b"new")

    assert link.is_symlink(), "the symlink was replaced by a regular file"
    assert target.read_bytes() == b"new" and _mode(target) == 0o600
    assert sorted(os.listdir(links)) == ["current.npnet"]
    assert sorted(os.listdir(real_dir)) == ["model.npnet"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "later.bin")
    with utils.atomic_write(link) as handle:
        handle.write(b"data")
    assert link.is_symlink() and (tmp_path / "later.bin").read_bytes() == b"data"


def test_a_symlink_loop_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError) as caught:
        with utils.atomic_write(tmp_path / "a") as handle:
            handle.write(b"data")
    assert caught.value.errno == errno.ELOOP and "symlink loop" in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from npnet.utils import atomic_write
    with atomic_write(sys.argv[1]) as handle:
        handle.write(b"half of a model")
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)  # killed here
""")


def _killed_mid_write(target):
    """Run a save in a subprocess, SIGKILL it mid-write; return the temporary file it left."""
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=60)
    left = [name for name in os.listdir(target.parent) if name.startswith(f".{target.name}.{writer.pid}.")]
    assert len(left) == 1, f"expected the killed writer's temporary file, found {os.listdir(target.parent)}"
    return target.parent / left[0]


def test_the_next_save_removes_a_killed_writers_temporary_file(tmp_path):
    target = tmp_path / "model.npnet"
    target.write_bytes(b"good old model")
    stale = _killed_mid_write(target)
    assert target.read_bytes() == b"good old model", "a killed save must not touch the file"
    # Temporary files of a live process (pid 1) and of another destination are not ours to remove.
    live = tmp_path / ".model.npnet.1.abcdef12.tmp"
    live.write_bytes(b"someone is writing")
    other = tmp_path / f".other.npnet.{stale.name.split('.')[3]}.abcdef12.tmp"
    other.write_bytes(b"another file's")

    with utils.atomic_write(target) as handle:
        handle.write(b"new model")

    assert not stale.exists(), "the killed writer's temporary file is still there"
    assert target.read_bytes() == b"new model"
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, live.name, other.name])


def test_the_longest_file_name_a_folder_allows_can_be_saved(tmp_path):
    """The temporary name adds a pid and a random tag to the destination's: for a name near
    the 255-byte limit it is cut, so the save works where ``open`` does, and a dead writer's
    temporary file of that name is still recognised and removed."""
    name = "m" * 249 + ".keras"
    with open(tmp_path / name, "wb") as handle:  # the file system takes the name itself
        handle.write(b"old")
    stale = tmp_path / f".{'m' * 200}.999999.0123abcd.tmp"
    stale.write_bytes(b"half")
    with utils.atomic_write(tmp_path / name) as handle:
        handle.write(b"new")
    assert (tmp_path / name).read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_saving_over_a_folder_or_through_a_dangling_link_names_the_problem(tmp_path):
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder; expected the path of a file"):
        with utils.atomic_write(tmp_path / "model.keras") as handle:
            handle.write(b"x")
    assert (tmp_path / "model.keras").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "model.keras"]
    (tmp_path / "link.keras").symlink_to(tmp_path / "missing" / "target.keras")
    with pytest.raises(FileNotFoundError, match="missing"):
        with utils.atomic_write(tmp_path / "link.keras") as handle:
            handle.write(b"x")


@pytest.mark.parametrize("through_link", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_a_fifo_is_refused_and_left_a_fifo(tmp_path, through_link):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    target = tmp_path / "link.json" if through_link else fifo
    if through_link:
        target.symlink_to(fifo)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(OSError, match="it is a FIFO .*expected the path of a regular file") as error:
        utils.write_json_atomic(target, {"loss": 1.0})
    assert error.value.errno == errno.EINVAL
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(os.listdir(tmp_path)) == listing
