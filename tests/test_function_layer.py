"""npnet.layers.FunctionLayer: a learner's own forward/backward inside a model.

It must train exactly as the built-in layer it re-implements, be checkable by gradcheck
(which must catch a wrong backward and name the parameter), refuse bad returns with errors
that say what was expected, send the automatic backend choice to NumPy, be refused by
backend='numba', refuse to be saved, and (mirror) give the gradients tf.keras's Dense does.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import npnet  # noqa: E402
from npnet import functional as F  # noqa: E402
from npnet.backends import numba_backend  # noqa: E402
from reference.compare import assert_close  # noqa: E402

from core_helpers import tiny_data, tiny_model  # noqa: E402


def dense_relu_forward(x, params):
    z = F.dense_forward(x, params["kernel"], params["bias"])
    a = F.relu_forward(z)
    return a, (x, z, a)


def dense_relu_backward(dL_da, cache, params):
    x, z, a = cache
    dL_dz = F.relu_backward(dL_da, z, a)
    dL_dx, dL_dkernel, dL_dbias = F.dense_backward(dL_dz, x, params["kernel"])
    return dL_dx, {"kernel": dL_dkernel, "bias": dL_dbias}


def with_function_layer(reference, backward=dense_relu_backward, backend=None):
    """The tiny model with its hidden Dense(relu) replaced by a FunctionLayer of its weights."""
    kernel, bias = reference.layers[1].get_weights()
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=reference.input_shape[1:]),
        npnet.layers.FunctionLayer(dense_relu_forward, backward, {"kernel": kernel, "bias": bias}),
        npnet.layers.Dense(reference.layers[2].units, activation="softmax"),
    ])
    model.set_weights(reference.get_weights())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend)
    return model


def test_trains_exactly_like_the_dense_layer_it_rewrites():
    npnet.utils.set_random_seed(3)
    reference = tiny_model()
    model = with_function_layer(reference)
    assert model.backend_name == "numpy"  # the automatic choice
    x, y = tiny_data()
    h_ref = reference.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    h_fun = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert h_ref.history == h_fun.history
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_gradcheck_passes_a_right_backward_and_names_the_wrong_parameter():
    npnet.utils.set_random_seed(4)
    reference = tiny_model()
    x, y = tiny_data(8)
    assert npnet.gradcheck(with_function_layer(reference), x, y).passed

    def forgets_the_batch_sum(dL_da, cache, params):
        dL_dx, grads = dense_relu_backward(dL_da, cache, params)
        grads["bias"] = grads["bias"] / len(dL_da)  # a learner's typical slip
        return dL_dx, grads

    report = npnet.gradcheck(with_function_layer(reference, forgets_the_batch_sum), x, y)
    verdicts = {check.name: check.passed for check in report.parameters}
    assert not report.passed
    failed = [name for name, passed in verdicts.items() if not passed]
    assert len(failed) == 1 and failed[0].startswith("function_layer") and failed[0].endswith("/bias")
    assert "bias" in str(report).split("Worst: ")[1].split(":")[0]


def test_params_from_a_function_of_the_input_shape_and_output_shape_by_probe():
    layer = npnet.layers.FunctionLayer(
        dense_relu_forward, dense_relu_backward,
        lambda shape: {"kernel": np.full((shape[-1], 7), 0.1), "bias": np.zeros(7)})
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(4, 3)), layer])
    assert model.output_shape == (None, 7)
    assert layer.params["kernel"].shape == (12, 7) and layer.params["kernel"].dtype == np.float32
    assert model.count_params() == 12 * 7 + 7


def test_bad_returns_are_explained():
    reference = tiny_model()
    x, y = tiny_data(8)

    def wrong_kernel_shape(dL_da, cache, params):
        dL_dx, grads = dense_relu_backward(dL_da, cache, params)
        grads["kernel"] = grads["kernel"].T
        return dL_dx, grads

    def missing_bias(dL_da, cache, params):
        dL_dx, grads = dense_relu_backward(dL_da, cache, params)
        del grads["bias"]
        return dL_dx, grads

    def three_things(dL_da, cache, params):
        return dense_relu_backward(dL_da, cache, params) + (None,)

    cases = [(wrong_kernel_shape, r"gradient of 'kernel' must have the shape of 'kernel', \(12, 5\); received \(5, 12\)"),
             (missing_bias, r"gradient for each parameter \['bias', 'kernel'\]; received \['kernel'\]"),
             (three_things, r"must return \(dL_dx, grads\)")]
    for backward, message in cases:
        model = with_function_layer(reference, backward)
        before = model.get_weights()
        with pytest.raises((ValueError, TypeError), match=message):
            model.fit(x, y, verbose=0)
        for ours, theirs in zip(model.get_weights(), before):
            np.testing.assert_array_equal(ours, theirs)  # nothing was applied

    bad_forward = npnet.layers.FunctionLayer(lambda x, p: x, dense_relu_backward)
    with pytest.raises(TypeError, match=r"forward must return \(y, cache\)"):
        bad_forward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="forward must be a function"):
        npnet.layers.FunctionLayer(None, dense_relu_backward)


def test_numba_refuses_it_and_the_automatic_choice_is_numpy():
    model = with_function_layer(tiny_model())
    reason = numba_backend.unsupported_reason(model.layers, model.loss, model.optimizer)
    assert reason is not None and "FunctionLayer" in reason
    with pytest.raises(NotImplementedError, match="class FunctionLayer"):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numba")
    assert model.backend_name == "numpy"  # the refused compile left the model as it was


def test_saving_is_refused_before_any_file_is_written(tmp_path):
    model = with_function_layer(tiny_model())
    path = tmp_path / "m.npnet"
    with pytest.raises(NotImplementedError, match="holds Python functions"):
        model.save(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.reference
def test_mirror_gradients_equal_keras_dense_relu_under_gradient_tape():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 12)).astype(np.float32)
    upstream = rng.normal(size=(16, 5)).astype(np.float32)
    kernel = rng.normal(size=(12, 5)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32) * 0.1
    ours = npnet.layers.FunctionLayer(dense_relu_forward, dense_relu_backward, {"kernel": kernel, "bias": bias})
    ours.build((None, 12))
    y, cache = ours.forward(x)
    dL_dx, grads = ours.backward(upstream, cache)

    theirs = tf.keras.layers.Dense(5, activation="relu")
    theirs.build((None, 12))
    theirs.set_weights([kernel, bias])
    x_var = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = theirs(x_var)
        total = tf.reduce_sum(out * upstream)
    g_x, g_kernel, g_bias = tape.gradient(total, [x_var, theirs.kernel, theirs.bias])
    assert_close(y, out.numpy(), rtol=1e-6, what="output")
    assert_close(dL_dx, g_x.numpy(), rtol=1e-6, what="dL_dx")
    assert_close(grads["kernel"], g_kernel.numpy(), rtol=1e-6, what="dL_dkernel")
    assert_close(grads["bias"], g_bias.numpy(), rtol=1e-6, what="dL_dbias")
