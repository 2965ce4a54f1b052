"""npnet.exercises: each check passes npnet's own function and, for the usual mistakes,
fails saying which output and which entry is wrong, without raising."""

import numpy as np
import pytest

import npnet
from npnet import exercises as E
from npnet import functional as F


def not_written(*args):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize("check, right", [
    (E.check_dense_backward, F.dense_backward),
    (E.check_relu_backward, F.relu_backward),
    (E.check_softmax_crossentropy_backward, F.softmax_crossentropy_backward),
    (E.check_adam_update, F.adam_update),
])
def test_npnets_own_passes_and_a_stub_is_reported_not_raised(check, right):
    state = npnet.utils.rng().bit_generator.state
    result = check(right)
    assert result.passed, str(result)
    assert str(result).startswith("✓ ")
    stub = check(not_written)
    assert not stub.passed and "raised NotImplementedError: your code here" in str(stub)
    assert npnet.utils.rng().bit_generator.state == state  # the learner's randomness is untouched
    assert npnet.config.floatx() == "float32"


def test_dense_mistakes_name_the_output_and_entry():
    mean_not_sum = E.check_dense_backward(lambda dz, x, k: (dz @ k.T, x.T @ dz, dz.mean(axis=0)))
    assert not mean_not_sum.passed and "dL_dbias is wrong in 3 of 3 entries; e.g. dL_dbias[" in mean_not_sum.message
    transposed = E.check_dense_backward(lambda dz, x, k: (dz @ k.T, dz.T @ x, dz.sum(axis=0)))
    assert transposed.message == "dL_dkernel has shape (3, 4); expected (4, 3)"
    two = E.check_dense_backward(lambda dz, x, k: (x.T @ dz, dz.sum(axis=0)))
    assert "return three arrays" in two.message


def test_relu_mistake_names_the_entry():
    result = E.check_relu_backward(lambda dL_da, z, a: dL_da * (a > 0.5))
    assert not result.passed and result.message.startswith("dL_dz is wrong in ")


def test_softmax_crossentropy_without_the_batch_mean_gets_the_hint():
    def without_mean(p, labels):
        grad = p.copy()
        grad[np.arange(len(labels)), labels] -= 1
        return grad
    result = E.check_softmax_crossentropy_backward(without_mean)
    assert not result.passed and "divide by the batch size n" in result.message


def test_adam_mistakes():
    def rebinds(param, grad, m, v, step, lr, b1, b2, eps):
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        param -= lr * m / (np.sqrt(v) + eps)

    def textbook_epsilon(param, grad, m, v, step, lr, b1, b2, eps):
        m[...] = b1 * m + (1 - b1) * grad
        v[...] = b2 * v + (1 - b2) * grad ** 2
        param -= lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps)

    result = E.check_adam_update(rebinds)
    assert not result.passed and "after step 1: m is wrong" in result.message and "in place" in result.message
    result = E.check_adam_update(textbook_epsilon)
    assert not result.passed and "param is wrong" in result.message and "m and v are right" in result.message
