"""Training steps run with denormal floats flushed to zero on both backends, as TensorFlow's
CPU threads run Keras's (npnet/kernels/float_mode.py), and the caller's float mode is back
afterwards, however the steps end."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import npnet
from npnet import functional as F, layers, utils
from npnet.kernels.float_mode import denormals_flushed

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the float mode is set on x86-64 only")

TINY, HALF = np.float32(1e-39), np.float32(0.5)  # 1e-39 is below float32's smallest normal


def denormals_kept():
    return TINY * HALF > 0 and (np.array([TINY]) * HALF)[0] > 0


def model_with_a_dead_input(backend):
    """A Dense layer whose first input is 0 in every sample, so its kernel row never gets a
    gradient, and Adam's moments of that row (set to a denormal) only decay."""
    utils.set_random_seed(0)
    model = npnet.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    rng = np.random.default_rng(1)
    x = rng.random((16, 4), dtype=np.float32)
    x[:, 0] = 0
    y = rng.integers(0, 3, 16)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # builds the optimizer's slots
    return model, x, y


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_denormal_moment_counts_as_zero_in_a_training_step(backend):
    model, x, y = model_with_a_dead_input(backend)
    m, v = model.optimizer.state["m"][0], model.optimizer.state["v"][0]
    m[0, :] = TINY
    v[0, :] = TINY
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.all(m[0, :] == 0) and np.all(v[0, :] == 0)
    assert np.all(m[1:, :] != 0)  # the live rows are untouched by the flush
    assert denormals_kept()  # the caller's mode is back


def test_the_same_update_by_hand_keeps_the_denormal():
    """What the test above would see without the flush: Adam's m decays to 0.9 · 1e-39."""
    param, grad = np.ones(3, np.float32), np.zeros(3, np.float32)
    m, v = np.full(3, TINY), np.full(3, TINY)
    F.adam_update(param, grad, m, v, 1, 1e-3, 0.9, 0.999, 1e-7)
    assert np.all(m > 0) and np.all(m < TINY)


def test_both_backends_train_to_the_same_weights_through_denormals():
    numpy_model, x, y = model_with_a_dead_input("numpy")
    numba_model, _, _ = model_with_a_dead_input("numba")
    numba_model.set_weights(numpy_model.get_weights())
    for model in (numpy_model, numba_model):
        for slot in ("m", "v"):
            model.optimizer.state[slot][0][0, :] = TINY
        utils.set_random_seed(3)
        model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    for a, b in zip(numpy_model.get_weights(), numba_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for slot in ("m", "v"):
        assert np.array_equal(numpy_model.optimizer.state[slot][0][0], numba_model.optimizer.state[slot][0][0])


def test_the_float_mode_is_restored_when_the_steps_end_with_an_exception():
    with pytest.raises(KeyboardInterrupt):
        with denormals_flushed():
            assert TINY * HALF == 0
            raise KeyboardInterrupt
    assert denormals_kept()


def test_nested_uses_put_back_what_each_found():
    with denormals_flushed():
        with denormals_flushed():
            assert TINY * HALF == 0
        assert TINY * HALF == 0
    assert denormals_kept()


def threads_flush_check():
    """One thread and two train the same model through denormal Adam moments: the two-thread
    weights and slots must be those of one thread, with the denormals counted as 0."""
    rng = np.random.default_rng(1)
    x = rng.random((64, 32), dtype=np.float32)
    x[:, :4] = 0  # four dead inputs
    y = rng.integers(0, 3, 64)
    models = []
    for threads in (1, 2):
        npnet.config.set_num_threads(threads)
        utils.set_random_seed(0)
        model = npnet.Sequential([layers.Dense(128, activation="relu", input_shape=(32,)),
                                  layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numba")
        utils.set_random_seed(2)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        for slot in ("m", "v"):
            model.optimizer.state[slot][0][:4, :] = TINY
        utils.set_random_seed(3)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        models.append(model)
    for slot in ("m", "v"):
        assert np.all(models[1].optimizer.state[slot][0][:4, :] == 0)
        assert np.array_equal(models[0].optimizer.state[slot][0], models[1].optimizer.state[slot][0])
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        assert np.array_equal(a, b)
    assert denormals_kept()


_POOL_FIRST = """
import sys
import numba
import numpy as np

@numba.njit(parallel=True)
def halve(a):
    for i in numba.prange(a.size):
        a[i] *= np.float32(0.5)

numba.set_num_threads(2)
halve(np.ones(1000, np.float32))  # numba's threads start here, in this thread's (normal) float mode
sys.path.insert(0, sys.argv[1])
import test_float_mode
test_float_mode.threads_flush_check()
print("checked")
"""


def test_numbas_threads_flush_denormals_in_their_share_of_the_step():
    """With the products and Adam's update shared among numba's threads, each thread flushes
    denormals as the calling thread does, also when numba's thread pool was started outside
    any training step (a fresh process that ran its own parallel code first), so the weights
    stay those of one thread."""
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two numba threads")
    result = subprocess.run([sys.executable, "-c", _POOL_FIRST, os.path.dirname(os.path.abspath(__file__))],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "checked" in result.stdout, result.stderr[-3000:]
