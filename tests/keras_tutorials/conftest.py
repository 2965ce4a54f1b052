"""Shared fixtures for the tutorial tests and the ``cells run / total`` report."""

import collections
import sys

import matplotlib
import pytest

matplotlib.use("Agg")  # the tutorials' figures are drawn, never shown


def pytest_configure(config):
    config.addinivalue_line("markers", "tutorial_cells(cells): the tutorial code cells a test makes")


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in an empty directory: the tutorials write files relative to the working one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


_cells_by_module = collections.defaultdict(lambda: {"passed": set(), "failed": set()})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("tutorial_cells")
    if marker is None or report.when != "call" and not report.failed:
        return
    record = _cells_by_module[item.module]
    cells = set(marker.args[0])
    if report.passed and report.when == "call" and not hasattr(report, "wasxfail"):
        record["passed"] |= cells
    elif report.failed or report.skipped:
        record["failed"] |= cells


def pytest_terminal_summary(terminalreporter):
    if not _cells_by_module:
        return
    terminalreporter.section("Keras tutorials: cells run / total")
    for module, record in sorted(_cells_by_module.items(), key=lambda kv: kv[0].__name__):
        run = record["passed"] - record["failed"]
        line = f"{module.TUTORIAL}: {len(run)}/{module.TOTAL_CELLS} cells run"
        if getattr(module, "DIFFERS", None):
            line += f" ({len(module.DIFFERS)} where npnet differs, error checked)"
        terminalreporter.write_line(line)
        not_run = {c: why for c, why in module.NOT_RUN.items()}
        not_run.update({c: "its test failed or is expected to fail" for c in record["failed"]})
        for cell, why in sorted(not_run.items()):
            terminalreporter.write_line(f"    cell {cell}: {why}")

