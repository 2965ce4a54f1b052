"""The cross-check rows that compare SGD(momentum), RMSprop and Dropout with tf.keras, run as
tests on both backends (``reference/crosscheck.py``; issue 13, point 3).

Each trains the tutorial model 100 steps on each side from identical weights, in the same
batch order, and compares the weights: max |Δw| <= 1e-5 as for the Adam rows. For Dropout,
npnet's layer is handed the masks Keras's Dropout drew, so everything else is compared.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402,F401  (must fail, not skip, when TensorFlow is missing)

from reference import crosscheck  # noqa: E402
from reference import data as data_module  # noqa: E402

pytestmark = pytest.mark.reference

THRESHOLDS = crosscheck.Thresholds()


@pytest.fixture(scope="module")
def data():
    return data_module.load()


def assert_all_passed(results):
    failed = [r for r in results if not r.passed]
    assert results and not failed, "\n" + crosscheck.results_table(results)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer", list(crosscheck.OTHER_OPTIMIZERS))
def test_100_steps_of_other_optimizers_match_keras(data, backend, optimizer):
    assert_all_passed(crosscheck.check_optimizer_steps(backend, data, THRESHOLDS, 100, optimizer))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_100_steps_with_dropout_match_keras_given_its_masks(data, backend):
    assert_all_passed(crosscheck.check_dropout_steps(backend, data, THRESHOLDS, 100))
