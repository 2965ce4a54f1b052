"""The ``npnet`` command's errors: one line on stderr, exit status 2, before any work starts.

Each case runs ``python -m npnet`` in a subprocess, as a user would. "Before any work" is
observed on stdout: the tutorial prints "== Explore the data" once the data is loaded, so an
error found up front leaves stdout empty.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_npnet(*argv, prefix=(), cwd=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([*prefix, sys.executable, "-m", "npnet", *argv], env=env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *expected):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, f"expected exit status 2, got {result.returncode}:\n{result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("npnet") and "Traceback" not in lines[0], lines[0]
    for text in expected:
        assert text in lines[0], f"expected {text!r} in the error, got: {lines[0]}"
    assert result.stdout == "", f"work started before the error was reported:\n{result.stdout[:500]}"
    return lines[0]


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "empty").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    return tmp_path


@pytest.mark.parametrize("argv, expected", [
    (["tutorial", "--data-dir", "/nonexistent"],
     ["--data-dir: expected a directory holding the Fashion-MNIST files, received '/nonexistent'",
      "(no such directory)"]),
    (["tutorial", "--data-dir", "{tmp}/a-file"], ["--data-dir", "(it is not a directory)"]),
    (["tutorial", "--data-dir", "{tmp}/loop"], ["--data-dir", "symbolic links"]),
    (["tutorial", "--data-dir", "{tmp}/empty"], ["--data-dir", "(none of train-images-idx3-ubyte.gz,"]),
    (["tutorial", "--out", "{tmp}/a-file"],
     ["--out: expected a directory to write into, received", "a-file' (a file)"]),
    (["tutorial", "--out", "{tmp}/a-file/sub"], ["--out: expected a directory npnet can write into"]),
    (["tutorial", "--seed", "-1"], ["argument --seed: expected a non-negative integer, received '-1'"]),
    (["tutorial", "--epochs", "five"], ["argument --epochs: expected a non-negative integer, received 'five'"]),
    (["tutorial", "--batch-size", "0"], ["expected a positive integer, received '0'"]),
    (["tutorial", "--backend", "tensorflow"], ["invalid choice: 'tensorflow'"]),
    (["tutorial", "--unknown"], ["unrecognized arguments: --unknown"]),
    (["train"], ["invalid choice: 'train'"]),
    ([], ["the following arguments are required: COMMAND"]),
    (["gradcheck", "--images", "abc"], ["argument --images: expected a positive integer, received 'abc'"]),
    (["gradcheck", "--images", "70000"], ["argument --images: expected at most 60000, received 70000"]),
    (["gradcheck", "--seed", "-1"], ["argument --seed: expected a non-negative integer, received '-1'"]),
    (["gradcheck", "--eps", "abc"], ["argument --eps: expected a positive number, received 'abc'"]),
    (["gradcheck", "--eps", "0"], ["argument --eps: expected a positive number, received '0'"]),
    (["gradcheck", "--entries", "-3"], ["argument --entries: expected a non-negative integer, received '-3'"]),
])
def test_command_line_errors_are_one_line_exit_2_and_up_front(paths, argv, expected):
    argv = [arg.replace("{tmp}", str(paths)) for arg in argv]
    if argv[:1] == ["tutorial"]:  # keeps a regression (an error found only after the run) quick
        argv += ["--epochs", "0", "--backend", "numpy", "--verbose", "0"]
    line = assert_one_line_error(run_npnet(*argv), *expected)
    assert "_positive_int" not in line and "invalid int value" not in line, line


def _as_nobody():
    """Root ignores permission bits, so as root the command runs as 'nobody' (setpriv)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only for us")
    import pwd
    nobody = pwd.getpwnam("nobody")
    return (setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--")


def test_a_read_only_out_directory_is_refused_before_the_tutorial_runs():
    prefix = _as_nobody()
    root = tempfile.mkdtemp(prefix="npnet-cli-")  # in /tmp, reachable by 'nobody'
    try:
        os.chmod(root, 0o755)
        read_only = os.path.join(root, "read-only")
        os.mkdir(read_only, 0o555)
        os.chmod(read_only, 0o555)
        # --epochs 0 keeps a regression (the check done only after the tutorial) quick.
        result = run_npnet("tutorial", "--epochs", "0", "--backend", "numpy", "--verbose", "0",
                           "--out", read_only, prefix=prefix, cwd=root)
        assert_one_line_error(result, f"--out: expected a directory npnet can write into, "
                                      f"received {read_only!r} (Permission denied)")
        assert os.listdir(read_only) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
