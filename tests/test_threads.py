"""Training on several threads: ``npnet.config.set_num_threads`` and the automatic choice."""

import numpy as np
import pytest

import npnet
from npnet import config

pytest.importorskip("numba")

from npnet.backends import numba_backend  # noqa: E402
from npnet.backends.numba_backend import AdaptiveThreads  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_threads():
    saved = config.num_threads()
    yield
    config.set_num_threads(saved)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match="positive integer or None"):
        config.set_num_threads(bad)
    assert config.num_threads() is None


def test_set_num_threads_round_trip():
    config.set_num_threads(2)
    assert config.num_threads() == 2
    config.set_num_threads(None)
    assert config.num_threads() is None


def _fit(threads, dtype="float32"):
    config.set_num_threads(threads)
    npnet.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.random((300, 40)).astype(dtype)
    y = rng.integers(0, 5, 300)
    model = npnet.Sequential([npnet.layers.Input((40,)), npnet.layers.Dense(128, activation="relu"),
                              npnet.layers.Dense(64, activation="tanh"), npnet.layers.Dense(5)])
    model.compile(optimizer="adam", loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], backend="numba")
    history = model.fit(x.astype(dtype), y, batch_size=32, epochs=2, verbose=0)
    return model.get_weights(), history.history["loss"], model.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_several_threads_give_the_single_thread_results_bit_for_bit(dtype):
    weights_1, losses_1, evaluation_1 = _fit(1, dtype)
    weights_2, losses_2, evaluation_2 = _fit(2, dtype)
    for a, b in zip(weights_1, weights_2):
        np.testing.assert_array_equal(a, b)
    assert losses_1 == losses_2 and evaluation_1 == evaluation_2


class _Net:
    def __init__(self, *shapes):
        self.kernels = [np.empty(shape, np.float32) for shape in shapes]


def test_small_models_stay_on_one_thread():
    chooser = AdaptiveThreads()
    tutorial = _Net((784, 128), (128, 10))
    assert all(chooser.choose(tutorial, 32) is None for _ in range(50))
    assert not chooser.trying


def _run(chooser, net, per_step, calls):
    """Drive ``chooser`` as the backend does, with made-up seconds per step per choice."""
    steps_run = {1: 0, "many": 0}
    for _ in range(calls):
        threads = chooser.choose(net, 512)
        steps = AdaptiveThreads.TRIAL_STEPS if chooser.trying else 64
        key = "many" if threads else 1
        steps_run[key] += steps
        chooser.record(threads, per_step[key] * steps, steps)
    return steps_run


@pytest.mark.parametrize("faster", [1, "many"])
def test_the_automatic_choice_settles_on_the_faster_and_trials_stay_short(monkeypatch, faster):
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    config.set_num_threads(None)
    big = _Net((784, 512), (512, 10))
    per_step = {1: 1.0, "many": 4.0} if faster == 1 else {1: 2.0, "many": 1.0}
    steps = _run(AdaptiveThreads(), big, per_step, calls=200)
    slower = "many" if faster == 1 else 1
    # all but the trials go to the faster choice; the retries of the slower back off
    assert steps[faster] > 50 * steps[slower]


def test_an_explicit_count_is_used_as_given():
    import numba
    config.set_num_threads(1)
    assert AdaptiveThreads().choose(_Net((784, 2048)), 512) is None
    config.set_num_threads(64)
    assert AdaptiveThreads().choose(_Net((784, 128)), 1) == min(64, numba.config.NUMBA_NUM_THREADS) or \
        numba.config.NUMBA_NUM_THREADS == 1


def test_workspace_threads_default_to_the_calling_thread():
    assert numba_backend.K.Workspace(*[None] * 8).threads is None


def test_the_threaded_adam_update_reports_its_box_as_the_serial_one_does():
    """Each block's 'inside the box' reaches the caller: all inside, or one block outside."""
    K = numba_backend.K
    rng = np.random.default_rng(1)
    width = int(K.TILE_VECTORS * K.VECTOR_BYTES // 4)
    shape = (5, 2 * width)
    hyper = [np.float32(v) for v in (1e-3, 0.1, 0.001, 1e-7)]
    largest = float(np.finfo(np.float32).max)
    wide_box = np.array([1e18, 1e30, 1e30, 1e30, 1.0, largest, 1e-38], np.float32)
    for outside_block in (None, 0, 1):
        param = rng.standard_normal(shape).astype(np.float32)
        if outside_block is not None:
            param[2, outside_block * width] = 1e31  # a weight outside the box's 1e30
        grad = rng.standard_normal(shape).astype(np.float32)
        m, v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        serial = [a.copy() for a in (param, grad, m, v)]
        inside = K.adam_update_parallel(param, grad, m, v, *hyper, wide_box)
        expected = K.adam_update(*serial, *hyper, wide_box)
        assert inside == expected == (outside_block is None)
        np.testing.assert_array_equal(param, serial[0])
