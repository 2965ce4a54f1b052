"""The benchmark harness (``python -m benchmarks``): its pipeline, its arithmetic, its reporting.

The smoke tests run the real command in ``--quick`` mode (tiny data, every installed
framework) and check the JSON it writes; nothing here asserts on how fast anything is.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import child, cli, environment, frameworks, report, runner

REPO = Path(__file__).resolve().parent.parent
#: The frameworks whose runs report a pure compile time (the others report None and why).
COMPILE_TIME_EXPOSED = {"keras-jax", "pytorch-compile", "jax-loop", "jax-scan"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_benchmarks(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def numbers_in(tree, path="measurements"):
    """Every (path, number) in a nested dict/list, booleans excluded."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from numbers_in(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from numbers_in(value, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def assert_positive_finite(tree, where):
    found = list(numbers_in(tree))
    assert found, f"{where}: no numbers at all"
    bad = [(path, value) for path, value in found if not (math.isfinite(value) and value > 0)]
    assert not bad, f"{where}: numbers that are not positive and finite: {bad}"


def assert_compile_report(report_, name):
    """A run's compile report: a number where the framework exposes it, else None, and always how."""
    assert set(report_) == {"compile_s", "how"} and report_["how"], f"{name}: {report_}"
    if name in COMPILE_TIME_EXPOSED:
        assert isinstance(report_["compile_s"], float) and math.isfinite(report_["compile_s"]), name
    else:
        assert report_["compile_s"] is None, name


# ----------------------------------------------------------------------------- smoke tests


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``python -m benchmarks --quick`` with every installed framework, JSON and PNG."""
    out = tmp_path_factory.mktemp("bench")
    json_path, png_path = out / "bench.json", out / "bench.png"
    completed = run_benchmarks("--quick", "--json", str(json_path), "--plot", str(png_path))
    assert completed.returncode == 0, f"exit code {completed.returncode}\nstderr:\n{completed.stderr}"
    return completed, json.loads(json_path.read_text()), png_path


def test_quick_run_measures_every_installed_framework(quick_run):
    _, result, _ = quick_run
    assert set(result["frameworks"]) == set(frameworks.names())
    settings = result["settings"]
    assert settings["quick"] is True
    installed = [name for name in frameworks.names() if frameworks.missing_reason(name) is None]
    # TensorFlow is a dev dependency (the suite runs complete): tf.keras must have run.
    assert "tf.keras" in installed and "npnet-numpy" in installed
    for name, record in result["frameworks"].items():
        if name not in installed:
            assert record["status"] == "skipped" and record["reason"]
            continue
        assert record["status"] == "ok", f"{name}: {record.get('reason')}"
        assert len(record["runs"]) == settings["repeats"]
        for run in record["runs"]:
            m = run["measurements"]
            assert len(m["epoch_s"]) == settings["epochs"]
            assert len(m["train_loss"]) == settings["epochs"]
            assert len(m["predict"]["default_batch_s"]) == settings["predict_calls"]
            assert len(m["single_predict_s"]) == settings["single_calls"]
            assert run["shapes"]["predictions"] == [settings["n_test"], 10]
            assert 0 < m["test_accuracy"] <= 1
            assert_positive_finite(m, f"{name} run")
            # start-up stages happen in this order, all after the launch
            s = m["startup"]
            assert s["imports_done_s"] <= s["data_loaded_s"] <= s["model_built_s"] <= s["first_step_end_s"]
            assert_compile_report(m["compile"], name)
        if name == "keras-jax":
            for run in record["runs"]:
                assert run["env"]["KERAS_BACKEND"] == "jax"
                assert run["info"]["keras_backend"] == "jax" and run["info"]["tensorflow_imported"] is False
        expected = {"startup_s", "first_epoch_s", "warm_epoch_s", "first_epoch_extra_s", "predict_first_s",
                    "predict_default_s", "predict_large_s", "single_predict_ms", "single_call_ms",
                    "peak_rss_mib", "test_accuracy"}
        if name in COMPILE_TIME_EXPOSED:
            expected.add("compile_s")
        if name.startswith("npnet") and importlib.util.find_spec("onnxruntime") is not None:
            expected.add("predict_onnxruntime_s")  # onnxruntime on the model npnet exported
        cache_variable = frameworks.JIT_CACHE_ENV.get(name)
        if cache_variable:
            expected |= {"cold_startup_s", "cold_first_epoch_s"}
            assert len(record["cold_runs"]) == settings["repeats"]
            # each cold run gets its own empty cache; the warm runs reuse the first one's
            cold_dirs = [run["env"][cache_variable] for run in record["cold_runs"]]
            assert len(set(cold_dirs)) == len(cold_dirs)
            assert {run["env"][cache_variable] for run in record["runs"]} == {cold_dirs[0]}
            for run in record["cold_runs"]:
                assert len(run["measurements"]["epoch_s"]) == 1
                assert_positive_finite(run["measurements"], f"{name} cold run")
        off_env = frameworks.PRECOMPILED_OFF_ENV.get(name)
        if off_env:  # a true cold compile too: its own empty cache, the shipped kernels off
            expected |= {"uncompiled_startup_s", "uncompiled_first_epoch_s"}
            assert len(record["uncompiled_runs"]) == settings["repeats"]
            uncompiled_dirs = {run["env"][cache_variable] for run in record["uncompiled_runs"]}
            assert len(uncompiled_dirs) == settings["repeats"] and not uncompiled_dirs & set(cold_dirs)
            for run in record["uncompiled_runs"]:
                assert off_env.items() <= run["env"].items()
                assert len(run["measurements"]["epoch_s"]) == 1
        assert set(record["summary"]) == expected
        for stats in record["summary"].values():
            assert stats["min"] <= stats["median"] <= stats["max"]
    ratios = result["ratios_to_tf_keras"]
    assert set(ratios) == {name for name in installed if name != "tf.keras"}
    for name, by_metric in ratios.items():
        times = {k: v for k, v in by_metric.items() if k != "test_accuracy"}
        assert_positive_finite(times, f"ratios of {name}")


def test_quick_run_records_environment_and_gemm_rate(quick_run):
    _, result, _ = quick_run
    env = result["environment"]
    assert env["python"] and env["numpy"] and env["logical_cpus"] >= 1
    assert env["tensorflow"] and env["keras"]
    assert result["sgemm"]["shape"] == list(environment.SGEMM_SHAPE)
    assert_positive_finite({k: result["sgemm"][k] for k in ("gflops_best", "gflops_median", "seconds")}, "sgemm")
    assert result["sgemm"]["gflops_best"] >= result["sgemm"]["gflops_median"]
    assert len(result["fairness"]) >= 5


def test_quick_run_measures_the_tutorial_process(quick_run):
    _, result, _ = quick_run
    tutorial = result["tutorial_rss"]
    assert tutorial["status"] == "ok", tutorial.get("reason")
    assert tutorial["display_command"][:4] == ["python", "-m", "npnet", "tutorial"]
    # The process holds at least the training images as float32 (60000 x 784 x 4 bytes).
    assert tutorial["peak_rss_bytes"] > 60000 * 784 * 4
    assert tutorial["wall_s"] > 0


def test_quick_run_prints_markdown_and_writes_a_png(quick_run):
    completed, result, png_path = quick_run
    stdout = completed.stdout
    ran = [name for name, record in result["frameworks"].items() if record["status"] == "ok"]
    header = "| measurement | " + " | ".join(frameworks.label(name) for name in ran) + " |"
    assert header in stdout
    assert "| warm epoch (median of epochs 2+) (s) |" in stdout
    assert "### Relative to tf.keras" in stdout and "### Fairness" in stdout
    for name, record in result["frameworks"].items():
        if record["status"] == "skipped":
            assert f"- {frameworks.label(name)}: skipped" in stdout
    assert png_path.read_bytes()[:8] == PNG_MAGIC


def test_quick_sweep_reports_epoch_time_next_to_the_flop_floor(tmp_path):
    json_path = tmp_path / "sweep.json"
    completed = run_benchmarks("--quick", "--sweep", "--frameworks", "npnet-numpy", "--no-tutorial-rss",
                               "--json", str(json_path))
    assert completed.returncode == 0, completed.stderr
    result = json.loads(json_path.read_text())
    sweep = result["sweep"]
    assert sweep["frameworks"] == ["npnet-numpy"]
    assert [[p["batch_size"], p["hidden"]] for p in sweep["points"]] == result["settings"]["sweep_points"]
    for point in sweep["points"]:
        assert point["gflop"] == pytest.approx(environment.epoch_flop(sweep["n_samples"], point["hidden"]) / 1e9)
        assert point["floor_s"] == pytest.approx(point["gflop"] / sweep["gflops"])
        assert_positive_finite(point["raw"], f"sweep point {point['batch_size']}/{point['hidden']}")
    assert "### Scaling" in completed.stdout and "GEMM floor" in completed.stdout
    assert result["tutorial_rss"] is None


# ----------------------------------------------------------------------------- pieces


def test_scaling_matches_the_tutorials_float64_division_exactly():
    from reference.data import scale_images

    every_pixel = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    ours = child.scale_images(every_pixel)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, scale_images(every_pixel))


def test_epoch_flop_counts_forward_and_the_needed_backward_products():
    n, h = 60000, 128
    forward = 2 * n * (784 * h + h * 10)
    backward = 2 * n * (784 * h + h * 10) + 2 * n * h * 10  # weight gradients + hidden input gradient
    assert environment.epoch_flop(n, h) == forward + backward == 2 * n * h * (2 * 784 + 3 * 10)


def test_summaries_pool_warm_epochs_and_ratios_divide_keras_by_the_framework():
    def run(epochs, accuracy):
        return {"measurements": {
            "startup": {"first_step_end_s": 2.0}, "epoch_s": epochs,
            "predict": {"first_call_default_batch_s": 0.5, "default_batch_s": [0.2], "large_batch_s": [0.1]},
            "single_predict_s": [0.001], "single_call_s": [0.0005],
            "peak_rss_bytes": 100 * 2**20, "test_accuracy": accuracy}}

    fast = {"runs": [run([5.0, 1.0, 2.0], 0.88), run([6.0, 3.0, 10.0], 0.86)], "cold_runs": []}
    fast["runs"][0]["measurements"]["compile"] = {"compile_s": 0.5, "how": "..."}
    fast["runs"][1]["measurements"]["compile"] = {"compile_s": 1.5, "how": "..."}
    keras = {"runs": [run([8.0, 4.0, 4.0], 0.87)], "cold_runs": []}
    keras["runs"][0]["measurements"]["compile"] = {"compile_s": None, "how": "not exposed"}
    fast_summary = report.summarize_framework(fast)
    # first epoch minus that run's median warm epoch, one sample per run
    assert fast_summary["first_epoch_extra_s"] == {"median": 1.5, "min": -0.5, "max": 3.5, "n": 2}
    assert fast_summary["compile_s"] == {"median": 1.0, "min": 0.5, "max": 1.5, "n": 2}
    assert "compile_s" not in report.summarize_framework(keras)
    assert fast_summary["warm_epoch_s"] == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert fast_summary["first_epoch_s"] == {"median": 5.5, "min": 5.0, "max": 6.0, "n": 2}
    assert fast_summary["single_predict_ms"]["median"] == pytest.approx(1.0)
    assert "cold_first_epoch_s" not in fast_summary
    ratios = report.ratios_to_baseline({"tf.keras": report.summarize_framework(keras), "fast": fast_summary})
    assert set(ratios) == {"fast"}
    assert ratios["fast"]["warm_epoch_s"] == pytest.approx(4.0 / 2.5)
    assert ratios["fast"]["test_accuracy"] == pytest.approx(87.0 - 87.0)
    assert "first_epoch_extra_s" not in ratios["fast"] and "compile_s" not in ratios["fast"]
    assert report.ratios_to_baseline({"fast": fast_summary}) == {}


def test_unknown_framework_is_refused_with_the_known_names(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--frameworks", "npnet-numba,jax"])
    err = capsys.readouterr().err
    assert "jax" in err and "tf.keras" in err and "pytorch" in err


def test_frameworks_that_are_not_installed_are_reported_as_skipped(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(frameworks.FRAMEWORKS, "pytorch",
                        ("PyTorch", ("no_such_module_for_npnet_tests",), "PyTorch is not installed"))
    json_path = tmp_path / "skipped.json"
    code = cli.main(["--quick", "--frameworks", "pytorch", "--json", str(json_path)])
    assert code == 0
    result = json.loads(json_path.read_text())
    assert result["frameworks"]["pytorch"]["status"] == "skipped"
    assert result["frameworks"]["pytorch"]["reason"] == "PyTorch is not installed"
    assert "- PyTorch: skipped — PyTorch is not installed" in capsys.readouterr().out


def test_threads_option_pins_every_frameworks_pool_and_default_pins_none(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pinned = runner.child_environment(threads=3)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        assert pinned[variable] == "3"
    assert "OMP_NUM_THREADS" not in runner.child_environment(threads=None)
    assert str(REPO) in runner.child_environment()["PYTHONPATH"].split(os.pathsep)


def test_wait_with_rusage_reports_the_childs_own_peak_memory():
    allocate = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    code, peak, wall, _ = runner.run_command([sys.executable, "-c", allocate], runner.child_environment(), 60)
    assert code == 0 and wall > 0
    assert peak >= 200 * 2**20


def test_a_hung_child_is_killed_and_reported():
    with pytest.raises(runner.ChildFailed, match="timed out"):
        runner.run_command([sys.executable, "-c", "import time; time.sleep(30)"],
                           runner.child_environment(), timeout=0.5)


def test_a_failing_child_reports_its_error():
    with pytest.raises(runner.ChildFailed, match="unknown framework 'no-such-framework'"):
        runner.run_child("no-such-framework", {"kind": "workload"}, timeout=120)


# ----------------------------------------------------------------------------- compiling peers


def tiny_data(n=70, seed=0):
    """n random images and labels: 70 at batch 32 is two full batches and a partial one."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.uint8)


def check_adapter_run(adapter, x, y, epochs=2, batch_size=32):
    """Build, fit and predict through an adapter; check the shapes of everything it returns."""
    adapter.build(16, seed=0)
    timer = frameworks.FitTimer()
    history = adapter.fit(x, y, epochs, batch_size, timer)
    assert len(timer.epoch_s) == epochs and timer.first_step_end is not None
    assert set(history) == {"loss", "accuracy"}
    assert len(history["loss"]) == len(history["accuracy"]) == epochs
    assert all(math.isfinite(v) for v in history["loss"]) and all(0 <= a <= 1 for a in history["accuracy"])
    for probabilities in (adapter.predict(x), adapter.predict(x[:1]), adapter.call(x[:3])):
        assert probabilities.dtype == np.float32 and probabilities.shape[1] == 10
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    return history


@pytest.mark.parametrize("style", ["loop", "scan"])
def test_jax_adapter_trains_and_reports_its_compile_time(style):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from benchmarks.jax_adapters import JaxAdapter

    adapter = frameworks.create(f"jax-{style}")
    assert isinstance(adapter, JaxAdapter) and adapter.style == style
    assert adapter.compiles_whole_epochs is (style == "scan")
    x, y = tiny_data()
    check_adapter_run(adapter, x, y)
    report_ = adapter.compile_report()
    assert_compile_report(report_, f"jax-{style}")
    assert report_["compile_s"] > 0  # something was compiled, not how long it took
    assert adapter.info()["style"] == style and adapter.info()["jax"]


def test_jax_scan_epoch_trains_exactly_like_the_jitted_step_loop():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    x, y = tiny_data(100)
    loop = check_adapter_run(frameworks.create("jax-loop"), x, y, epochs=3)
    scan = check_adapter_run(frameworks.create("jax-scan"), x, y, epochs=3)
    np.testing.assert_allclose(scan["loss"], loop["loss"], rtol=1e-5)
    assert scan["accuracy"] == loop["accuracy"]


def test_torch_compile_is_the_eager_loop_through_torch_compile():
    """In a fresh process, as the harness runs every framework: torch must not share a
    process with TensorFlow and JAX, which the test session has loaded."""
    import importlib.util
    import textwrap

    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    code = textwrap.dedent("""
        from benchmarks import frameworks
        eager, compiled = frameworks.create("pytorch"), frameworks.create("pytorch-compile")
        assert (eager.compiled, compiled.compiled) == (False, True)
        report = eager.compile_report()
        assert set(report) == {"compile_s", "how"} and report["how"], report
        compiled.build(16, seed=0)
        assert compiled.forward is not compiled.model and eager.info()["compiled"] is False
        assert compiled.compile_report()["compile_s"] == 0.0  # nothing compiled before the first fit
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_keras_on_jax_runs_in_a_child_with_its_backend_set(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("keras")
    config = {"kind": "workload", "epochs": 2, "batch_size": 32, "n_train": 70, "n_test": 40, "hidden": 16,
              "seed": 0, "predict_large_batch": 40, "predict_calls": 1, "single_calls": 1, "single_warmup": 1}
    result = runner.run_child("keras-jax", config, timeout=600)
    assert result["env"] == {"KERAS_BACKEND": "jax"}
    assert result["info"]["keras_backend"] == "jax" and result["info"]["tensorflow_imported"] is False
    m = result["measurements"]
    assert len(m["epoch_s"]) == 2 and result["shapes"]["predictions"] == [40, 10]
    assert_compile_report(m["compile"], "keras-jax")


def test_the_compiling_peers_are_known_with_their_labels_and_environments():
    for name in ("keras-jax", "pytorch-compile", "jax-loop", "jax-scan"):
        assert name in frameworks.names() and frameworks.label(name)
    assert frameworks.CHILD_ENV["keras-jax"] == {"KERAS_BACKEND": "jax"}
    assert frameworks.JIT_CACHE_ENV["pytorch-compile"] == "TORCHINDUCTOR_CACHE_DIR"
    assert cli.jit_cache_env("jax-scan", "/scratch") is None
    assert cli.jit_cache_env("pytorch-compile", "/scratch", 2) == {
        "TORCHINDUCTOR_CACHE_DIR": os.path.join("/scratch", "pytorch-compile-cache-2")}
    joined = " ".join(cli.fairness_statements(cli.resolve_settings(cli.build_parser().parse_args([]))))
    for phrase in ("lax.scan", "KERAS_BACKEND=jax", "torch.compile", "optax", "pure compile time"):
        assert phrase in joined


MISSING = ("no_such_module_for_npnet_tests",)


def test_missing_compiling_peers_are_skipped_and_said_so(monkeypatch, tmp_path, capsys):
    names = ["keras-jax", "pytorch-compile", "jax-loop", "jax-scan"]
    for name in names:
        monkeypatch.setitem(frameworks.FRAMEWORKS, name, (frameworks.label(name), MISSING, f"{name} is absent"))
    json_path = tmp_path / "skipped.json"
    code = cli.main(["--quick", "--sweep", "--frameworks", ",".join(names), "--json", str(json_path)])
    assert code == 0
    result = json.loads(json_path.read_text())
    out = capsys.readouterr()
    for name in names:
        assert result["frameworks"][name] == {"status": "skipped", "reason": f"{name} is absent", "runs": [],
                                              "cold_runs": [], "uncompiled_runs": [], "summary": {}}
        assert f"- {frameworks.label(name)}: skipped — {name} is absent" in out.out
        assert f"{name}: skipped ({name} is absent)" in out.err
    assert result["sweep"]["frameworks"] == []


def test_quick_sweep_includes_the_jax_peers(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    pytest.importorskip("keras")
    json_path = tmp_path / "sweep.json"
    completed = run_benchmarks("--quick", "--sweep", "--frameworks", "jax-loop,jax-scan,keras-jax",
                               "--no-tutorial-rss", "--json", str(json_path))
    assert completed.returncode == 0, completed.stderr
    sweep = json.loads(json_path.read_text())["sweep"]
    assert sweep["frameworks"] == ["jax-loop", "jax-scan", "keras-jax"]
    for name in sweep["frameworks"]:
        got = sweep["runs"][name]["measurements"]["points"]
        assert [[p["batch_size"], p["hidden"]] for p in got] == [[p["batch_size"], p["hidden"]] for p in sweep["points"]]
        for point in got:
            assert_compile_report(point["compile"], name)
            # lax.scan's length is a shape: its warm-up is a whole epoch, the others' a few batches
            whole_epoch = point["warmup_samples"] == point["n_samples"]
            assert whole_epoch is (name == "jax-scan")
    for point in sweep["points"]:
        assert set(point["epoch_s"]) == set(sweep["frameworks"])
    assert "JAX + optax (lax.scan epoch)" in completed.stdout


def test_npnet_entries_time_onnxruntime_on_the_exported_model():
    """Next to npnet's predict, the harness times onnxruntime on the model npnet exported."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    adapter = frameworks.create("npnet-numba")
    adapter.build(16, seed=0)
    x = np.random.default_rng(0).random((50, 28, 28), dtype=np.float32)
    predictor = adapter.onnx_predictor()
    np.testing.assert_allclose(predictor(x), adapter.predict(x), rtol=1e-5, atol=1e-6)
