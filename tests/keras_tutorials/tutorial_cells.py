"""Bookkeeping for the tutorial tests: which of a tutorial's code cells each test makes.

Every test module in this directory mirrors one public Keras tutorial, cell by cell, with
only the mechanical swap (``keras``/``tf.keras`` -> ``npnet``). A module declares

* ``TUTORIAL``: where the tutorial lives (repository and path);
* ``TOTAL_CELLS``: how many code cells (or code blocks of a ``.py`` guide) it has;
* ``NOT_RUN``: ``{cell: why}`` for the cells no test makes (licence text, ``pip install``,
  TensorFlow-only machinery such as SavedModel or TensorBoard's notebook magic);
* ``ADAPTED``: ``{cell: what was swapped}`` for cells that run with a substitution beyond
  the mechanical one (Fashion-MNIST for an internet download, a generator for ``tf.data``);
* ``DIFFERS``: ``{cell: what npnet says}`` for cells where npnet honestly differs: the test
  asserts the error names what to write instead, then runs that.

and marks each test with ``@covers(3, 4, 5)``. ``conftest.py`` counts a cell as run when
every test covering it passed, and prints ``cells run / total`` per tutorial at the end.
"""

import pytest


def covers(*cells):
    """Mark a test as making the calls of these code cells (1-based, as in the notebook)."""
    return pytest.mark.tutorial_cells(cells)


def check_accounting(module):
    """Every code cell is covered by a test or named in NOT_RUN, exactly once."""
    covered = set()
    for name in dir(module):
        test = getattr(module, name)
        for mark in getattr(test, "pytestmark", []):
            if mark.name == "tutorial_cells":
                covered.update(mark.args[0])
    not_run = set(module.NOT_RUN)
    every = set(range(1, module.TOTAL_CELLS + 1))
    assert covered | not_run == every, f"cells neither covered nor explained: {sorted(every - covered - not_run)}"
    assert not covered & not_run, f"cells both covered and listed as not run: {sorted(covered & not_run)}"
    for kind in ("ADAPTED", "DIFFERS"):
        stray = set(getattr(module, kind, {})) - covered
        assert not stray, f"{kind} names cells no test covers: {sorted(stray)}"
