"""npnet.kernels._compile: a damaged numba cache is recompiled, an unsafe one is not used.

Each case runs a fresh Python process (numba reads its cache settings at import) with
``NUMBA_CACHE_DIR`` and ``XDG_CACHE_HOME`` in tmp_path, on a one-line kernel compiled through
npnet's ``kernel`` decorator, and damages the real ``.nbi``/``.nbc`` files numba wrote.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_probe import clean_environment, probe_script, write_probe_module

REPO = Path(__file__).resolve().parents[1]

_RUN = probe_script('cache')


@pytest.fixture
def probe(tmp_path):
    """run() -> the probe's JSON report; a fresh process each call, same cache directories."""
    module_dir = tmp_path / "module"
    write_probe_module(module_dir)
    env = clean_environment()
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=os.pathsep.join([str(REPO), str(module_dir)]))

    def run(**overrides):
        result = subprocess.run([sys.executable, "-c", _RUN], env={**env, **overrides},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"the probe died:\n{result.stderr}"
        return json.loads(result.stdout.splitlines()[-1])

    run.numba_cache = tmp_path / "numba-cache"
    run.private_root = tmp_path / "xdg" / "npnet" / "numba"
    return run


def cache_files(directory, suffix):
    return sorted(Path(directory).rglob(f"probe_kernels.add-*{suffix}"))


def truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def garble(file):
    file.write_bytes(b"\x80\x04garbage, not a pickle" * 4)


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
@pytest.mark.parametrize("damage", [truncate, garble])
def test_a_damaged_cache_entry_is_recompiled_with_one_warning(probe, suffix, damage):
    first = probe()
    assert first["result"] == 5 and first["misses"] == 1 and first["warnings"] == []
    [entry] = cache_files(probe.numba_cache, suffix)
    damage(entry)

    second = probe()
    assert second["result"] == 5 and second["misses"] == 1, second
    assert len(second["warnings"]) == 1, second["warnings"]
    assert "is unreadable" in second["warnings"][0] and "compiling the kernel again" in second["warnings"][0]

    third = probe()  # the entry was rewritten: a clean hit
    assert (third["hits"], third["misses"], third["warnings"]) == (1, 0, [])


def test_a_cache_directory_writable_by_others_is_not_used(probe):
    probe.numba_cache.mkdir()
    os.chmod(probe.numba_cache, 0o777)

    first = probe()
    assert first["result"] == 5
    assert len(first["warnings"]) == 1, first["warnings"]
    assert "writable by other users (mode 0777)" in first["warnings"][0]
    assert first["cache_path"].startswith(str(probe.private_root)), first["cache_path"]
    assert stat.S_IMODE(probe.private_root.stat().st_mode) == 0o700
    assert cache_files(probe.numba_cache, ".nbi") == [], "code was cached in the unsafe directory"

    second = probe()  # the private cache works
    assert (second["hits"], second["misses"]) == (1, 0), second


def test_a_cache_directory_of_another_user_is_not_used(probe):
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    import pwd
    nobody = pwd.getpwnam("nobody")
    probe.numba_cache.mkdir()
    shutil.chown(probe.numba_cache, nobody.pw_uid, nobody.pw_gid)
    os.chmod(probe.numba_cache, 0o755)

    report = probe()
    assert report["result"] == 5 and len(report["warnings"]) == 1, report
    assert f"belongs to another user (uid {nobody.pw_uid})" in report["warnings"][0]
    assert report["cache_path"].startswith(str(probe.private_root))


def test_a_safe_numba_cache_directory_is_used_quietly(probe):
    report = probe()
    assert report["cache_path"].startswith(str(probe.numba_cache)) and report["warnings"] == []
    assert not probe.private_root.exists()


def test_no_usable_cache_compiles_in_process_with_one_warning(probe, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Nothing can be created under a file: numba's chain and npnet's private root all fail.
    (tmp_path / "module" / "__pycache__").write_text("a file where numba wants a directory")
    report = probe(NUMBA_CACHE_DIR=str(blocker / "numba"), NPNET_CACHE_DIR=str(blocker / "npnet"),
                   XDG_CACHE_HOME=str(blocker / "xdg"), HOME=str(blocker))
    assert report["result"] == 5 and report["cache_path"] is None
    assert len(report["warnings"]) == 1 and "cannot cache" in report["warnings"][0], report
