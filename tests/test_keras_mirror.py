"""Mirror tests: each piece of npnet next to the Keras object that does the same thing.

In the micrograd style, every test computes one thing twice — with npnet's NumPy code and with
the corresponding tf.keras object (a ``keras.layers.Dense`` under ``tf.GradientTape``,
``keras.activations.softmax``, ``keras.losses.SparseCategoricalCrossentropy``,
``keras.optimizers.Adam`` on a ``tf.Variable``) — and compares them. Failure messages print
ours next to theirs (``reference.compare.assert_close``).

TensorFlow is imported at the top on purpose: without it these tests fail at collection; they
are never skipped.

Tolerances: float32 inputs of order 1, so one rounding is ~6e-8 relative; the sums inside a
Dense layer (up to 64 terms here) reorder between NumPy's BLAS and TF's oneDNN kernels, so
values agree to a few 1e-7. The bounds below (1e-6, relative to the array's largest entry,
see ``reference.compare``) leave room for that and nothing more.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import npnet  # noqa: E402
from npnet import functional as F  # noqa: E402
from reference.compare import assert_close  # noqa: E402

keras = tf.keras
pytestmark = pytest.mark.reference

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax"]
RTOL = 1e-6


def random_array(shape, seed, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def keras_value_and_grads(function, tensors, upstream):
    """Run ``function(*tensors)`` under a tape; return its value and d(Σ out·upstream)/d(tensors)."""
    variables = [tf.Variable(t) for t in tensors]
    with tf.GradientTape() as tape:
        out = function(*variables)
        total = tf.reduce_sum(out * upstream)
    return out.numpy(), [g.numpy() for g in tape.gradient(total, variables)]


# ------------------------------------------------------------------------------------- Dense


def keras_dense_like(layer, units, activation):
    """A keras.layers.Dense with the npnet layer's current weights."""
    theirs = keras.layers.Dense(units, activation=activation)
    theirs.build((None, layer.kernel.shape[0]))
    theirs.set_weights(layer.get_weights())
    return theirs


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward_matches_keras_dense(activation):
    npnet.utils.set_random_seed(1)
    ours = npnet.layers.Dense(16, activation=activation)
    x = random_array((8, 64), seed=2)
    ours.build((None, 64))
    ours.set_weights([ours.kernel, random_array((16,), seed=3, scale=0.1)])  # non-zero bias
    theirs = keras_dense_like(ours, 16, activation)
    assert_close(ours(x), theirs(x).numpy(), rtol=RTOL, what=f"Dense({activation}) output")


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_backward_matches_gradient_tape(activation):
    """npnet's Dense backward vs tf.GradientTape through a keras Dense, for an upstream gradient.

    For softmax this is the general Jacobian-vector path (``softmax_backward``), not the
    cross-entropy shortcut, which is tested with the losses below.
    """
    npnet.utils.set_random_seed(4)
    ours = npnet.layers.Dense(16, activation=activation)
    ours.build((None, 64))
    ours.set_weights([ours.kernel, random_array((16,), seed=5, scale=0.1)])
    theirs = keras_dense_like(ours, 16, activation)
    x = random_array((8, 64), seed=6)
    upstream = random_array((8, 16), seed=7)

    out, cache = ours.forward(x, training=True)
    dL_dx, grads = ours.backward(upstream, cache)

    x_var = tf.Variable(x)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(theirs(x_var) * upstream)
    g_x, g_kernel, g_bias = tape.gradient(total, [x_var, theirs.kernel, theirs.bias])
    assert_close(dL_dx, g_x.numpy(), rtol=RTOL, what=f"Dense({activation}) dL/dx")
    assert_close(grads["kernel"], g_kernel.numpy(), rtol=RTOL, what=f"Dense({activation}) dL/dkernel")
    assert_close(grads["bias"], g_bias.numpy(), rtol=RTOL, what=f"Dense({activation}) dL/dbias")


def test_flatten_matches_keras_flatten_forward_and_backward():
    ours = npnet.layers.Flatten()
    x = random_array((5, 28, 28), seed=8)
    upstream = random_array((5, 784), seed=9)
    out, cache = ours.forward(x)
    dL_dx, grads = ours.backward(upstream, cache)
    theirs_out, (theirs_dx,) = keras_value_and_grads(keras.layers.Flatten(), [x], upstream)
    np.testing.assert_array_equal(out, theirs_out)
    np.testing.assert_array_equal(dL_dx, theirs_dx)
    assert grads == {}


def test_glorot_uniform_has_keras_bounds_and_spread():
    """Same distribution as keras.initializers.GlorotUniform: U(-l, l), l = sqrt(6 / (in + out)).

    Different generators draw different numbers, so compare the distribution: the bounds, and
    the standard deviation l/√3 to within sampling error (100k draws: ~0.3 %; 2 % allowed).
    """
    shape = (784, 128)
    limit = np.sqrt(6 / sum(shape))
    npnet.utils.set_random_seed(0)
    ours = npnet.initializers.glorot_uniform(shape, "float32")
    theirs = keras.initializers.GlorotUniform(seed=0)(shape).numpy()
    for name, w in (("npnet", ours), ("keras", theirs)):
        assert w.dtype == np.float32, name
        assert np.abs(w).max() <= limit, f"{name}: max |w| {np.abs(w).max()} above the limit {limit}"
        assert np.abs(w).max() > 0.99 * limit, f"{name}: max |w| {np.abs(w).max()} far below {limit}"
        assert abs(w.std() / (limit / np.sqrt(3)) - 1) < 0.02, f"{name}: std {w.std()} vs {limit / np.sqrt(3)}"


#: npnet initializer -> (Keras's class, its bound: the uniform limit or the normal's cut)
RANDOM_INITIALIZERS = {
    "glorot_uniform": (keras.initializers.GlorotUniform, lambda i, o: np.sqrt(6 / (i + o))),
    "glorot_normal": (keras.initializers.GlorotNormal, lambda i, o: 2 * np.sqrt(2 / (i + o)) / 0.87962566103423978),
    "he_uniform": (keras.initializers.HeUniform, lambda i, o: np.sqrt(6 / i)),
    "he_normal": (keras.initializers.HeNormal, lambda i, o: 2 * np.sqrt(2 / i) / 0.87962566103423978),
    "lecun_uniform": (keras.initializers.LecunUniform, lambda i, o: np.sqrt(3 / i)),
    "lecun_normal": (keras.initializers.LecunNormal, lambda i, o: 2 * np.sqrt(1 / i) / 0.87962566103423978),
}


@pytest.mark.parametrize("name", list(RANDOM_INITIALIZERS))
@pytest.mark.parametrize("shape", [(300, 200), (4000,)], ids=["kernel", "bias"])
def test_random_initializers_have_keras_bounds_and_spread(name, shape):
    """Each of Keras's variance-scaling initializers, by its string: the same bound (a uniform
    one's limit, a normal one's cut at two standard deviations) and the same standard
    deviation as Keras's to within sampling error (60k draws: ~0.3-0.5 %; 3 % allowed)."""
    keras_class, bound = RANDOM_INITIALIZERS[name]
    fan_in, fan_out = (shape[0], shape[-1])
    limit = bound(fan_in, fan_out)
    npnet.utils.set_random_seed(0)
    ours = npnet.initializers.get(name)(shape, "float32")
    theirs = keras_class(seed=0)(shape).numpy()
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape == shape
    for who, w in (("npnet", ours), ("keras", theirs)):
        assert np.abs(w).max() <= limit * (1 + 1e-6), f"{who}: max |w| {np.abs(w).max()} above {limit}"
        assert np.abs(w).max() > 0.97 * limit, f"{who}: max |w| {np.abs(w).max()} far below {limit}"
    assert abs(ours.std() / theirs.std() - 1) < 0.03, (ours.std(), theirs.std())
    assert abs(ours.mean()) < 0.05 * ours.std()


def test_constant_initializers_and_none_are_keras_3s():
    """zeros, ones; and None, for which Keras 3's add_weight draws glorot_uniform even for a bias."""
    assert np.array_equal(npnet.initializers.get("ones")((2, 3), "float64"), keras.initializers.get("ones")((2, 3)))
    assert np.array_equal(npnet.initializers.get("zeros")((4,), "float32"), np.zeros(4, np.float32))
    npnet.utils.set_random_seed(0)
    ours = npnet.layers.Dense(2000, bias_initializer=None, input_shape=(3,))
    ours.build((None, 3))
    theirs = keras.layers.Dense(2000, bias_initializer=None)
    theirs.build((None, 3))
    limit = np.sqrt(6 / (2000 + 2000))  # a bias of n entries counts n in and n out
    for who, bias in (("npnet", ours.params["bias"]), ("keras", theirs.bias.numpy())):
        assert np.abs(bias).max() <= limit and np.abs(bias).max() > 0.99 * limit, who
    with pytest.raises(ValueError, match="Unknown initializer 'he_normall'.*he_normal"):
        npnet.layers.Dense(3, kernel_initializer="he_normall")


@pytest.mark.parametrize("value, shape", [(0.25, (3, 2)), (np.log([0.01]), (1,)), ([1.0, -2.0], (4, 2))])
def test_constant_initializer_fills_like_keras(value, shape):
    ours = npnet.initializers.Constant(value)(shape, "float32")
    theirs = keras.initializers.Constant(value)(shape).numpy()
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_constant_initializer_refuses_what_it_cannot_fill():
    for bad in (float("nan"), "abc", "7.5", True, [True], [1, [2]], None):
        with pytest.raises(ValueError, match="finite number"):
            npnet.initializers.Constant(bad)
    with pytest.raises(ValueError, match=r"shape \(2,\) cannot fill a weight of shape \(3,\)"):
        npnet.initializers.Constant([1.0, 2.0])((3,), "float32")
    with pytest.raises(ValueError, match="does not fit in float32"):
        npnet.initializers.Constant(1e39)((3,), "float32")
    layer = npnet.layers.Dense(3, bias_initializer=npnet.initializers.Constant([1.0, 2.0]), input_shape=(2,))
    with pytest.raises(ValueError, match="cannot fill"):
        layer.build((None, 2))


# ------------------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_and_derivative_match_keras(name):
    """Forward on ordinary and extreme values, and the backward, against keras.activations."""
    ours = npnet.activations.get(name)
    theirs = getattr(keras.activations, name)
    z = random_array((6, 10), seed=10, scale=3.0)
    z[0] = [-100, -50, -20, -1e-3, 0.0, 1e-3, 20, 50, 100, 0.5]  # overflow-prone and the kink
    upstream = random_array((6, 10), seed=11)

    a = ours.forward(z)
    dL_dz = ours.backward(upstream, z, a)
    theirs_a, (theirs_dz,) = keras_value_and_grads(theirs, [z], upstream)
    assert np.isfinite(a).all() and np.isfinite(dL_dz).all()
    assert a.dtype == np.float32 and dL_dz.dtype == np.float32
    assert_close(a, theirs_a, rtol=RTOL, what=f"{name}(z)")
    assert_close(dL_dz, theirs_dz, rtol=RTOL, what=f"d {name}(z) / dz · upstream")


def test_softmax_rows_sum_to_one_like_keras_even_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    ours = npnet.activations.softmax(z)
    theirs = keras.activations.softmax(tf.constant(z)).numpy()
    assert_close(ours, theirs, atol=1e-7, what="softmax(z)")
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------ losses


def labels_and_probabilities(n=12, k=10, seed=12):
    """Labels (n,), logits (n, k), softmax probabilities (n, k) and arbitrary positive rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = (rng.normal(size=(n, k)) * 3).astype(np.float32)
    logits[0, labels[0]] = 40.0   # a confident row: p ≈ 1 at the label, p < 1e-7 elsewhere
    logits[1, labels[1]] = -40.0  # p < 1e-7 at the label: the clip path
    probabilities = F.softmax_forward(logits)
    unnormalised = rng.uniform(0.01, 1.0, size=(n, k)).astype(np.float32)  # e.g. sigmoid outputs
    return labels, logits, probabilities, unnormalised


def keras_loss_value_and_grad(loss, labels, y_pred):
    value, (grad,) = keras_value_and_grads(lambda p: loss(labels, p), [y_pred], 1.0)
    return float(value), grad


def test_sparse_crossentropy_from_logits_matches_keras():
    labels, logits, _, _ = labels_and_probabilities()
    ours = npnet.losses.SparseCategoricalCrossentropy(from_logits=True)
    theirs_value, theirs_grad = keras_loss_value_and_grad(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True), labels, logits)
    assert_close(ours.value(labels, logits), theirs_value, rtol=RTOL, what="loss value (from logits)")
    assert_close(ours.gradient(labels, logits), theirs_grad, rtol=RTOL, what="dL/dz (from logits)")


def test_softmax_output_loss_uses_logits_like_keras():
    """The tutorial's path: Keras's loss on a softmax output is computed from its logits.

    ``keras.activations.softmax`` tags its output with the logits; the loss with
    ``from_logits=False`` then works on them. npnet takes the same shortcut: the value from
    the logits and the combined gradient ``(p - onehot) / n``. Checked on rows where the
    probability path would clip (p < 1e-7), where the two paths differ.
    """
    labels, logits, probabilities, _ = labels_and_probabilities()
    loss = keras.losses.SparseCategoricalCrossentropy()
    z = tf.Variable(logits)
    with tf.GradientTape() as tape:
        theirs_value = loss(labels, keras.activations.softmax(z))
    theirs_grad = tape.gradient(theirs_value, z).numpy()
    ours = npnet.losses.SparseCategoricalCrossentropy()
    assert_close(ours.value_of_logits(labels, logits), float(theirs_value), rtol=RTOL,
                 what="loss of a softmax output")
    assert_close(ours.gradient_wrt_logits(labels, probabilities), theirs_grad, rtol=RTOL,
                 what="dL/dz through a softmax output")


@pytest.mark.parametrize("rows", ["softmax", "unnormalised"])
def test_sparse_crossentropy_on_probabilities_matches_keras(rows):
    """from_logits=False on plain probability arrays: Keras clips to [1e-7, 1 - 1e-7], takes the log
    and then a log-softmax, i.e. ``-log(clip(p)_y / Σ_k clip(p)_k)``. Rows that do not sum to
    one (sigmoid outputs, say) show whether that normalisation is reproduced.
    """
    labels, _, probabilities, unnormalised = labels_and_probabilities()
    p = probabilities if rows == "softmax" else unnormalised
    ours = npnet.losses.SparseCategoricalCrossentropy()
    theirs_value, theirs_grad = keras_loss_value_and_grad(
        keras.losses.SparseCategoricalCrossentropy(), labels, p)
    assert_close(ours.value(labels, p), theirs_value, rtol=RTOL, what=f"loss value ({rows} rows)")
    assert_close(ours.gradient(labels, p), theirs_grad, rtol=RTOL, what=f"dL/dp ({rows} rows)")


@pytest.mark.parametrize("rows", ["softmax", "unnormalised"])
def test_categorical_crossentropy_on_probabilities_matches_keras(rows):
    labels, _, probabilities, unnormalised = labels_and_probabilities()
    p = probabilities if rows == "softmax" else unnormalised
    targets = F.one_hot(labels, 10, np.float32)
    ours = npnet.losses.CategoricalCrossentropy()
    theirs_value, theirs_grad = keras_loss_value_and_grad(keras.losses.CategoricalCrossentropy(), targets, p)
    assert_close(ours.value(targets, p), theirs_value, rtol=RTOL, what=f"loss value ({rows} rows)")
    assert_close(ours.gradient(targets, p), theirs_grad, rtol=RTOL, what=f"dL/dp ({rows} rows)")


def test_categorical_crossentropy_from_logits_matches_keras():
    labels, logits, _, _ = labels_and_probabilities()
    targets = F.one_hot(labels, 10, np.float32)
    ours = npnet.losses.CategoricalCrossentropy(from_logits=True)
    theirs_value, theirs_grad = keras_loss_value_and_grad(
        keras.losses.CategoricalCrossentropy(from_logits=True), targets, logits)
    assert_close(ours.value(targets, logits), theirs_value, rtol=RTOL, what="loss value (from logits)")
    assert_close(ours.gradient(targets, logits), theirs_grad, rtol=RTOL, what="dL/dz (from logits)")


# -------------------------------------------------------------------------------------- Adam


@pytest.mark.parametrize("settings", [
    {},
    {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
], ids=["defaults", "custom"])
def test_adam_matches_keras_adam_on_a_variable_step_by_step(settings):
    """Ten steps of npnet.optimizers.Adam vs keras.optimizers.Adam on the same gradients.

    The gradients include exact zeros and tiny values, where ε dominates the update, and a
    sign change, so the moments' running means matter. Each side rounds its own float32
    operations, so a parameter may land a float32 step (ulp) away: measured max |Δ| 1.2e-7,
    one ulp of the largest parameter, not growing over the steps. The bound, 1e-6, is far
    below what a wrong form moves: PyTorch's ε placement or a missing bias correction shift
    the first update of a 1e-8 gradient by ~1e-4.
    """
    shape = (7, 5)
    start = random_array(shape, seed=13)
    ours_param = start.copy()
    ours = npnet.optimizers.Adam(**settings)
    theirs_param = tf.Variable(start)
    theirs = keras.optimizers.Adam(**settings)
    rng = np.random.default_rng(14)
    for step in range(10):
        grad = (rng.normal(size=shape) * 10.0 ** rng.integers(-8, 1, size=shape)).astype(np.float32)
        grad[0, 0] = 0.0
        grad[1, 1] = (-1) ** step * 0.5
        ours.apply_gradients([ours_param], [grad])
        theirs.apply_gradients([(tf.constant(grad), theirs_param)])
        assert_close(ours_param, theirs_param.numpy(), atol=1e-6,
                     what=f"parameter after Adam step {step + 1} {settings or 'defaults'}")
    assert ours.iterations == int(theirs.iterations.numpy()) == 10
    assert not np.array_equal(ours_param, start)
