"""npnet.functional: every backward against centred finite differences, and Adam by hand.

All gradient checks run in float64 with max relative error < 1e-7, at points chosen away
from ReLU's kink and from the loss's probability clip. A check that a deliberately wrong
gradient *fails* the same criterion shows the criterion can fail.
"""

import math

import numpy as np
import pytest

from npnet import functional as F
from npnet import losses, optimizers

from core_helpers import max_relative_error, numerical_gradient

TOLERANCE = 1e-7


def random(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def signed(shape, seed):
    """Entries of magnitude 0.5..1 with random signs: an upstream gradient with no tiny entry.

    (A tiny upstream entry makes its gradient tiny next to the summed loss, and the loss's
    own rounding then dominates that entry's finite difference.)
    """
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def projection_loss(output_fn, weights):
    """L = Σ weights * output: its gradient w.r.t. the output is ``weights``, any upstream value."""
    return lambda: float(np.sum(output_fn() * weights))


# ----------------------------------------------------------------------------- the checker


def test_gradient_check_rejects_a_slightly_wrong_gradient():
    x = random((4, 5), seed=0)
    numeric = numerical_gradient(lambda: float(np.sum(np.sin(x))), x)
    assert max_relative_error(np.cos(x), numeric) < TOLERANCE
    # A 0.1% error (e.g. a forgotten factor in a backward) is 4 orders of magnitude above it.
    assert max_relative_error(np.cos(x) * 1.001, numeric) > 1e-4


# ----------------------------------------------------------------------------- Dense


def test_dense_forward_is_the_affine_map():
    x, kernel, bias = random((3, 4), 1), random((4, 2), 2), random((2,), 3)
    expected = np.array([[sum(x[i, k] * kernel[k, j] for k in range(4)) + bias[j]
                          for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(F.dense_forward(x, kernel, bias), expected, rtol=1e-12)


def test_dense_backward_matches_finite_differences():
    x, kernel, bias = random((6, 4), 1), random((4, 3), 2), random((3,), 3)
    upstream = signed((6, 3), 4)
    loss = projection_loss(lambda: F.dense_forward(x, kernel, bias), upstream)

    dL_dx, dL_dkernel, dL_dbias = F.dense_backward(upstream, x, kernel)

    assert dL_dx.shape == x.shape and dL_dkernel.shape == kernel.shape and dL_dbias.shape == bias.shape
    assert max_relative_error(dL_dx, numerical_gradient(loss, x)) < TOLERANCE
    assert max_relative_error(dL_dkernel, numerical_gradient(loss, kernel)) < TOLERANCE
    assert max_relative_error(dL_dbias, numerical_gradient(loss, bias)) < TOLERANCE


def test_dense_backward_can_skip_the_input_gradient():
    x, kernel, upstream = random((5, 4), 1), random((4, 3), 2), random((5, 3), 3)
    dL_dx, dL_dkernel, dL_dbias = F.dense_backward(upstream, x, kernel, need_input_grad=False)
    assert dL_dx is None
    np.testing.assert_array_equal(dL_dkernel, x.T @ upstream)
    np.testing.assert_array_equal(dL_dbias, upstream.sum(axis=0))


# ----------------------------------------------------------------------------- activations

ELEMENTWISE = {
    "linear": (F.linear_forward, F.linear_backward),
    "relu": (F.relu_forward, F.relu_backward),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward),
    "tanh": (F.tanh_forward, F.tanh_backward),
    "softmax": (F.softmax_forward, F.softmax_backward),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_activation_backward_matches_finite_differences(name):
    forward, backward = ELEMENTWISE[name]
    z = random((5, 4), seed=10, low=-3, high=3)
    # Keep every z well away from ReLU's kink, so no finite-difference step crosses it.
    z[np.abs(z) < 0.05] += 0.1
    upstream = signed((5, 4), seed=11)
    loss = projection_loss(lambda: forward(z), upstream)

    analytic = backward(upstream, z, forward(z))

    assert max_relative_error(analytic, numerical_gradient(loss, z)) < TOLERANCE


def test_relu_derivative_at_the_kink_is_zero_as_in_tensorflow():
    z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(F.relu_backward(np.ones_like(z), z, F.relu_forward(z)), [[0.0, 0.0, 1.0]])


def test_softmax_rows_sum_to_one_and_survive_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    p = F.softmax_forward(z)
    assert p.dtype == np.float32
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])


def test_sigmoid_is_finite_for_large_inputs_and_keeps_the_dtype():
    z = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0], dtype=np.float32)
    a = F.sigmoid_forward(z)
    assert a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a[1:4], 1 / (1 + np.exp(-z[1:4])), rtol=1e-6)
    assert a[0] == 0.0 and a[-1] == 1.0


# ----------------------------------------------------------------------------- losses


def probabilities(n, k, seed):
    """Positive rows summing to 1, every entry well inside the clip [1e-7, 1 - 1e-7]."""
    p = random((n, k), seed, low=0.1, high=1.0)
    return p / p.sum(axis=1, keepdims=True)


LABELS = np.array([0, 2, 1, 2, 0])


def test_sparse_crossentropy_value_is_the_mean_negative_log_probability():
    p = probabilities(5, 3, seed=20)
    expected = -sum(math.log(p[i, LABELS[i]]) for i in range(5)) / 5
    assert F.sparse_categorical_crossentropy(p, LABELS) == pytest.approx(expected, rel=1e-12)


def test_sparse_crossentropy_probability_gradient_matches_finite_differences():
    p = probabilities(5, 3, seed=21)
    loss = lambda: float(F.sparse_categorical_crossentropy(p, LABELS))  # noqa: E731
    analytic = F.sparse_categorical_crossentropy_backward(p, LABELS)
    assert max_relative_error(analytic, numerical_gradient(loss, p)) < TOLERANCE


def test_sparse_crossentropy_clips_probabilities_like_keras():
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    labels = np.array([0, 0])
    # -log(clip(0)) = -log(1e-7); the clipped entry gets no gradient.
    assert F.sparse_categorical_crossentropy(p, labels) == pytest.approx((-math.log(1e-7) - math.log(0.5)) / 2)
    grad = F.sparse_categorical_crossentropy_backward(p, labels)
    # Keras renormalises by Σ clip(p) (loss = log Σc - log c_y), so every unclipped entry
    # gets 1/(nS) and the label's gets 1/(nS) - 1/(n p_y): tf.GradientTape gives exactly this.
    np.testing.assert_allclose(grad, [[0.0, 0.0], [1 / 2 - 1 / (2 * 0.5), 1 / 2]])


def test_sparse_crossentropy_from_logits_matches_finite_differences():
    z = random((5, 3), seed=22, low=-4, high=4)
    loss = lambda: float(F.sparse_categorical_crossentropy_from_logits(z, LABELS))  # noqa: E731
    analytic = F.softmax_crossentropy_backward(F.softmax_forward(z), LABELS)
    assert max_relative_error(analytic, numerical_gradient(loss, z)) < TOLERANCE


def test_logits_shortcut_equals_the_general_path():
    """(p - onehot) / n is the chain rule through cross-entropy and the softmax Jacobian."""
    z = random((5, 3), seed=23, low=-2, high=2)
    p = F.softmax_forward(z)
    general = F.softmax_backward(F.sparse_categorical_crossentropy_backward(p, LABELS), z, p)
    shortcut = F.softmax_crossentropy_backward(p, LABELS)
    np.testing.assert_allclose(shortcut, general, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(shortcut, (p - np.eye(3)[LABELS]) / 5, rtol=1e-12)
    # ... and both loss values agree where no clip is active.
    assert F.sparse_categorical_crossentropy_from_logits(z, LABELS) == pytest.approx(
        F.sparse_categorical_crossentropy(p, LABELS), rel=1e-12)


def test_loss_from_logits_is_not_clipped():
    """A confidently wrong softmax output costs its true loss (100), not -log(1e-7) ≈ 16.1."""
    z = np.array([[100.0, 0.0]], dtype=np.float32)
    assert F.sparse_categorical_crossentropy_from_logits(z, np.array([1])) == pytest.approx(100.0)
    assert F.sparse_categorical_crossentropy(F.softmax_forward(z), np.array([1])) == pytest.approx(-math.log(1e-7))


def test_categorical_crossentropy_gradients_match_finite_differences():
    targets = np.eye(3)[LABELS]
    loss_fn = losses.CategoricalCrossentropy()
    p = probabilities(5, 3, seed=24) * 1.3  # not normalised: Keras rescales rows first
    loss = lambda: float(loss_fn.value(targets, p))  # noqa: E731
    assert max_relative_error(loss_fn.gradient(targets, p), numerical_gradient(loss, p)) < TOLERANCE

    z = random((5, 3), seed=25, low=-3, high=3)
    logits_loss = lambda: float(F.categorical_crossentropy_from_logits(z, targets))  # noqa: E731
    analytic = F.softmax_categorical_crossentropy_backward(F.softmax_forward(z), targets)
    assert max_relative_error(analytic, numerical_gradient(logits_loss, z)) < TOLERANCE


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_loss_object_gradient_matches_finite_differences(from_logits):
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    y_pred = random((5, 3), 26, -2, 2) if from_logits else probabilities(5, 3, seed=26)
    loss = lambda: float(loss_fn(LABELS, y_pred))  # noqa: E731
    assert max_relative_error(loss_fn.gradient(LABELS, y_pred), numerical_gradient(loss, y_pred)) < TOLERANCE


def test_count_correct_counts_argmax_hits():
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    assert F.count_correct(p, np.array([1, 1, 0])) == 2  # a tie goes to the first index


# ----------------------------------------------------------------------------- Adam


def adam_by_hand(w, grads, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras's Adam on a Python float, written out from the textbook formulas.

    m_t = β1 m + (1 - β1) g;  v_t = β2 v + (1 - β2) g²;
    w  -= lr · sqrt(1 - β2^t) / (1 - β1^t) · m_t / (sqrt(v_t) + ε)   (ε not bias-corrected)
    """
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w = w - lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (math.sqrt(v) + epsilon)
    return w


def adam_pytorch_form(w, grads, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """PyTorch's form, with ε added to the bias-corrected sqrt(v̂): differs for tiny gradients."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
        w = w - lr * m_hat / (math.sqrt(v_hat) + epsilon)
    return w


def test_first_adam_step_has_the_closed_form_value():
    # Step 1: m = 0.1 g, v = 0.001 g², α = lr·sqrt(0.001)/0.1, so
    # Δw = -lr · |g|·sqrt(0.001) / (|g|·sqrt(0.001) + ε) · sign(g).
    w, g = np.array([1.0]), np.array([0.5])
    m, v = np.zeros(1), np.zeros(1)
    F.adam_update(w, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-7)
    root = 0.5 * math.sqrt(0.001)
    assert w[0] == pytest.approx(1.0 - 1e-3 * root / (root + 1e-7), rel=1e-14)
    assert m[0] == pytest.approx(0.05, rel=1e-14) and v[0] == pytest.approx(0.00025, rel=1e-14)


@pytest.mark.parametrize("scale", [1.0, 1e-6], ids=["ordinary", "tiny-gradients"])
def test_two_adam_steps_match_the_hand_computation(scale):
    w0 = np.array([0.3, -1.2, 2.0, 0.0])
    g1 = np.array([0.5, -0.25, 1e-3, 2.0]) * scale
    g2 = np.array([-0.1, -0.5, 4e-3, 2.0]) * scale
    expected = [adam_by_hand(w0[i], [g1[i], g2[i]], lr=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
                for i in range(4)]

    w, m, v = w0.copy(), np.zeros(4), np.zeros(4)
    F.adam_update(w, g1, m, v, 1, 0.01, 0.8, 0.99, 1e-7)
    F.adam_update(w, g2, m, v, 2, 0.01, 0.8, 0.99, 1e-7)

    np.testing.assert_allclose(w, expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(m, [0.8 * 0.2 * a + 0.2 * b for a, b in zip(g1, g2)], rtol=1e-13)
    if scale < 1:
        # With gradients near ε, Keras's form and PyTorch's differ: the test can tell them apart.
        torch_like = [adam_pytorch_form(w0[i], [g1[i], g2[i]], lr=0.01, beta_1=0.8, beta_2=0.99)
                      for i in range(4)]
        assert np.max(np.abs(np.array(torch_like) - expected)) > 1e-4


def test_adam_in_float32_stays_float32_and_tracks_the_float64_result():
    w0 = random((50,), seed=30).astype(np.float32)
    grads = [random((50,), seed=31 + t).astype(np.float32) for t in range(3)]
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        F.adam_update(w, g, m, v, t, 1e-3, 0.9, 0.999, 1e-7)
    assert w.dtype == m.dtype == v.dtype == np.float32
    expected = [adam_by_hand(float(w0[i]), [float(g[i]) for g in grads]) for i in range(50)]
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)


def test_adam_optimizer_owns_its_state_and_counts_steps():
    params = [np.array([[0.3, -1.2]]), np.array([2.0])]
    grads_1 = [np.array([[0.5, -0.25]]), np.array([1e-3])]
    grads_2 = [np.array([[-0.1, -0.5]]), np.array([4e-3])]
    optimizer = optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    assert optimizer.state is None and optimizer.iterations == 0
    start = [p.copy() for p in params]

    optimizer.apply_gradients(params, grads_1)
    optimizer.apply_gradients(params, grads_2)

    assert optimizer.iterations == 2
    assert set(optimizer.state) == {"m", "v"}
    for slot in ("m", "v"):
        assert [a.shape for a in optimizer.state[slot]] == [p.shape for p in params]
    flat = lambda arrays: np.concatenate([np.ravel(a) for a in arrays])  # noqa: E731
    expected = [adam_by_hand(w, [a, b], lr=0.01, beta_1=0.8, beta_2=0.99)
                for w, a, b in zip(flat(start), flat(grads_1), flat(grads_2))]
    np.testing.assert_allclose(flat(params), expected, rtol=1e-13)
    np.testing.assert_allclose(flat(optimizer.state["v"]),
                               [0.99 * 0.01 * a * a + 0.01 * b * b for a, b in zip(flat(grads_1), flat(grads_2))],
                               rtol=1e-13)


def test_adam_defaults_are_keras_defaults():
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
