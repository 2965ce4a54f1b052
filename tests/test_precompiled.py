"""The shipped layer of precompiled kernels (npnet.kernels._compile, npnet.kernels.precompile).

Each case runs fresh Python processes (numba and npnet read their cache settings when a kernel
is decorated): one fills a precompiled directory the way the install step does
(``NPNET_PRECOMPILE_INTO``), later ones read it (``NPNET_PRECOMPILED_DIR``) with an empty
``NUMBA_CACHE_DIR`` of their own, and report the dispatcher's cache hits and misses.
"""

import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npnet.kernels import _compile

from kernel_probe import clean_environment, probe_script, write_probe_module

REPO = Path(__file__).resolve().parents[1]

_RUN = probe_script('npnet')


@pytest.fixture
def probe(tmp_path):
    """run(**env) -> the probe's JSON report, in a fresh process with an empty NUMBA_CACHE_DIR.

    ``run.build()`` fills ``run.shipped`` as the precompile step does; every other run reads it.
    """
    module_dir = tmp_path / "module"
    write_probe_module(module_dir)
    shipped = tmp_path / "shipped"
    counter = iter(range(1000))

    def run(module_dir=module_dir, **overrides):
        numba_cache = tmp_path / f"numba-cache-{next(counter)}"  # empty for every run
        env = dict(clean_environment(), NUMBA_CACHE_DIR=str(numba_cache), XDG_CACHE_HOME=str(tmp_path / "xdg"),
                   PYTHONPATH=os.pathsep.join([str(REPO), str(module_dir)]),
                   NPNET_PRECOMPILED_DIR=str(run.shipped))
        result = subprocess.run([sys.executable, "-c", _RUN], env={**env, **overrides},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"the probe died:\n{result.stderr}"
        report = json.loads(result.stdout.splitlines()[-1])
        report["wrote_numba_cache"] = any(numba_cache.rglob("*.nbi"))
        return report

    def build():
        report = run(NPNET_PRECOMPILE_INTO=str(run.shipped))
        assert (report["result"], report["misses"]) == (5, 1), report
        assert not report["wrote_numba_cache"], "the precompile step also wrote the user's cache"
        return report

    run.shipped = shipped
    run.build = build
    run.module_dir = module_dir
    return run


def entries(directory, suffix):
    return sorted(Path(directory).glob(f"probe_kernels.add-*{suffix}"))


def _load_module(path):
    spec = importlib.util.spec_from_file_location(f"stamp_probe_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_locator_stamps_the_content_of_the_source_not_its_place_or_time(tmp_path, monkeypatch):
    monkeypatch.setenv("NPNET_PRECOMPILED_DIR", str(tmp_path / "shipped"))
    monkeypatch.delenv("NPNET_PRECOMPILED", raising=False)
    source = tmp_path / "a" / "kernels_a.py"
    source.parent.mkdir()
    source.write_text("def f(x):\n    return x + 1\n")
    copy = tmp_path / "b" / "kernels_a.py"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    os.utime(copy, (1_000_000, 1_000_000))  # what an install may do to the mtime

    def stamp(path):
        _compile._content_hash.cache_clear()
        module = _load_module(path)
        locator = _compile.ContentStampLocator.from_function(module.f, str(path))
        assert locator.get_cache_path() == str(tmp_path / "shipped")
        return locator.get_source_stamp()

    expected = ("sha256", hashlib.sha256(source.read_bytes()).hexdigest())
    assert stamp(source) == stamp(copy) == expected
    copy.write_text("def f(x):\n    return x + 2\n")
    assert stamp(copy) != expected


def test_an_entry_made_by_the_precompile_step_is_loaded_without_compiling(probe, tmp_path):
    probe.build()
    assert entries(probe.shipped, ".nbi") and entries(probe.shipped, ".nbc")
    before = {path: path.stat().st_mtime_ns for path in probe.shipped.iterdir()}

    report = probe()
    assert (report["result"], report["hits"], report["misses"], report["warnings"]) == (5, 1, 0, [])
    assert not report["wrote_numba_cache"]
    assert {path: path.stat().st_mtime_ns for path in probe.shipped.iterdir()} == before, \
        "the shipped layer was written at run time"


def test_an_entry_stays_valid_where_an_install_copies_it(probe, tmp_path):
    probe.build()
    moved_module = tmp_path / "site-packages"
    moved_module.mkdir()
    shutil.copy(probe.module_dir / "probe_kernels.py", moved_module)  # new path, new mtime
    probe.shipped = shutil.copytree(probe.shipped, tmp_path / "installed-shipped")
    report = probe(module_dir=moved_module)
    assert (report["result"], report["hits"], report["misses"]) == (5, 1, 0), report


def test_the_layer_serves_where_nothing_is_writable(probe, tmp_path):
    """A read-only container: no cache can be written, the precompiled kernels still load."""
    probe.build()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    shutil.rmtree(probe.module_dir / "__pycache__", ignore_errors=True)  # Python's, from the build
    (probe.module_dir / "__pycache__").write_text("a file where numba wants a directory")
    report = probe(NUMBA_CACHE_DIR=str(blocker / "numba"), NPNET_CACHE_DIR=str(blocker / "npnet"),
                   XDG_CACHE_HOME=str(blocker / "xdg"), HOME=str(blocker))
    assert (report["result"], report["hits"], report["misses"]) == (5, 1, 0), report
    assert len(report["warnings"]) == 1 and "cannot cache" in report["warnings"][0], report


def test_npnet_precompiled_0_turns_the_layer_off(probe):
    probe.build()
    report = probe(NPNET_PRECOMPILED="0")
    assert (report["result"], report["hits"], report["misses"]) == (5, 0, 1), report
    assert report["wrote_numba_cache"] and report["warnings"] == []


def test_the_user_cache_is_still_written_when_the_layer_misses(probe):
    probe.shipped.mkdir()  # present but empty: every kernel misses there
    report = probe()
    assert (report["result"], report["misses"], report["wrote_numba_cache"]) == (5, 1, True), report


def _truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _garble(file):
    file.write_bytes(b"\x80\x04garbage, not a pickle" * 4)


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_a_damaged_entry_is_a_miss_with_one_warning_and_is_left_alone(probe, suffix, damage):
    probe.build()
    [entry] = entries(probe.shipped, suffix)
    damage(entry)
    damaged = entry.read_bytes()

    report = probe()
    assert (report["result"], report["hits"], report["misses"]) == (5, 0, 1), report
    assert len(report["warnings"]) == 1 and "precompiled kernel entry" in report["warnings"][0], report
    assert report["wrote_numba_cache"], "the compiled kernel should go to the user's cache"
    assert entry.read_bytes() == damaged, "the shipped layer was written at run time"


@pytest.mark.parametrize("what", ["directory", "entry"])
def test_a_layer_others_can_write_is_refused_with_one_warning(probe, what):
    probe.build()
    target = probe.shipped if what == "directory" else entries(probe.shipped, ".nbi")[0]
    os.chmod(target, 0o777 if what == "directory" else 0o666)

    report = probe()
    assert (report["result"], report["hits"], report["misses"]) == (5, 0, 1), report
    assert len(report["warnings"]) == 1, report["warnings"]
    assert "does not load the precompiled kernels" in report["warnings"][0]
    expected = "writable by other users (mode 0777" if what == "directory" else "mode 0666"
    assert expected in report["warnings"][0], report["warnings"]


def _rewrite_index(index, change_version=None, change_key=None):
    with open(index, "rb") as file:
        version = pickle.load(file)
        stamp, overloads = pickle.loads(file.read())
    if change_key:
        overloads = {change_key(key): value for key, value in overloads.items()}
    with open(index, "wb") as file:
        pickle.dump(change_version or version, file, protocol=-1)
        file.write(pickle.dumps((stamp, overloads), protocol=-1))


def _other_cpu(key):
    sig, (triple, cpu, features), hashes = key
    return sig, (triple, "a-cpu-from-elsewhere", features), hashes


@pytest.mark.parametrize("change", [{"change_version": "0.1.0"}, {"change_key": _other_cpu}],
                         ids=["other-numba-version", "other-cpu"])
def test_an_entry_built_for_another_numba_or_cpu_is_a_quiet_miss(probe, change):
    probe.build()
    [index] = entries(probe.shipped, ".nbi")
    unchanged = probe()
    assert unchanged["hits"] == 1, "the rewritten index must be the only difference"
    _rewrite_index(index, **change)

    report = probe()
    assert (report["result"], report["hits"], report["misses"], report["warnings"]) == (5, 0, 1, []), report


def test_a_layer_whose_manifest_names_another_numba_is_refused_with_one_warning(probe):
    probe.build()
    (probe.shipped / "manifest.json").write_text(json.dumps({"numba": "0.1.0"}))
    report = probe()
    assert (report["result"], report["hits"], report["misses"]) == (5, 0, 1), report
    assert len(report["warnings"]) == 1 and "built with numba 0.1.0" in report["warnings"][0], report


_TUTORIAL_RUN = textwrap.dedent("""
    import json, warnings
    import numpy as np
    import npnet
    from npnet.kernels import dense

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(203, 28, 28), dtype="uint8") / 255.0
    y = rng.integers(0, 10, size=203)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(28, 28)),
                              npnet.layers.Dense(128, activation="relu"),
                              npnet.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="numba")
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x[:50], y[:50], verbose=0)
    model.predict(x[:7], verbose=0)
    stats = [getattr(dense, name).stats for name in dir(dense)
             if hasattr(getattr(dense, name), "stats")]
    print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats),
                      "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
""")


def test_the_precompile_step_covers_the_tutorial_model(tmp_path):
    """The entries are the very specialisations a real tutorial-shaped fit, evaluate and predict make."""
    shipped = tmp_path / "shipped"
    env = dict(clean_environment(), PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    built = subprocess.run([sys.executable, "-m", "npnet.kernels.precompile", "--into", str(shipped),
                            "--only", "tutorial"], env=dict(env, NUMBA_CACHE_DIR=str(tmp_path / "a")),
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["models"] == ["tutorial"] and manifest["numba"]

    run = subprocess.run([sys.executable, "-c", _TUTORIAL_RUN], capture_output=True, text=True,
                         env=dict(env, NUMBA_CACHE_DIR=str(tmp_path / "b"), NPNET_PRECOMPILED_DIR=str(shipped)),
                         timeout=900)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["misses"] == 0 and report["hits"] >= 3, report
    assert not any((tmp_path / "b").rglob("*.nbi")), "something was compiled"


def test_a_failing_precompile_step_does_not_fail_the_build(tmp_path):
    """setup.py's build_py warns and succeeds when the kernels cannot be compiled."""
    broken = tmp_path / "broken"
    (broken / "numba").mkdir(parents=True)  # a platform where numba cannot be imported
    (broken / "numba" / "__init__.py").write_text("raise ImportError('no numba for this platform')\n")
    env = dict(clean_environment(), PYTHONPATH=str(broken))
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path / "lib")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "npnet could not precompile its kernels" in result.stderr
    assert (tmp_path / "lib" / "npnet" / "__init__.py").is_file()
    assert not list((tmp_path / "lib").rglob("*.nbi"))
