"""Weights are Variables: Keras's ``assign``/``numpy()``/``name``/``path``/``trainable`` on an
ndarray whose computed results are plain ndarrays and whose in-place updates keep the object.
(The comparisons with Keras itself are in test_keras_mirror_variables.py.)"""

import copy
import pickle

import numpy as np
import pytest

import npnet
from npnet import layers
from npnet.variables import Variable

N, D = 64, 5


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 1.0).astype(np.float32)  # imbalanced: few positives
    return x, y


def imbalanced_model(name="model"):
    npnet.utils.set_random_seed(3)
    return npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(4, activation="relu", name="hidden"),
                             layers.Dense(1, activation="sigmoid", name="out")], name=name)


def test_every_weight_is_a_variable_named_as_in_keras():
    model = imbalanced_model()
    assert all(isinstance(w, Variable) for w in model.weights + model.trainable_weights)
    assert [(w.name, w.path) for w in model.weights] == [
        ("kernel", "model/hidden/kernel"), ("bias", "model/hidden/bias"),
        ("kernel", "model/out/kernel"), ("bias", "model/out/bias")]
    dense = model.layers[-1]
    assert dense.kernel is dense.params["kernel"] is model.weights[2]
    assert dense.kernel.shape == (4, 1) and dense.kernel.dtype == np.float32
    assert dense.kernel.trainable


def test_layers_built_outside_a_sequential_have_no_model_in_their_path():
    dense = layers.Dense(2, name="alone")
    dense.build((None, 3))
    npnet.Sequential([dense], name="later")
    assert dense.kernel.path == "alone/kernel"
    inputs = npnet.Input(shape=(3,))
    functional = npnet.Model(inputs, layers.Dense(2, name="f_dense")(inputs), name="f")
    assert [w.path for w in functional.weights] == ["f_dense/kernel", "f_dense/bias"]


def test_imbalanced_tutorial_bias_assign_then_fit_and_predict():
    x, y = data()
    model = imbalanced_model()
    pos, neg = y.sum(), N - y.sum()
    initial_bias = np.log([pos / neg])
    result = model.layers[-1].bias.assign(initial_bias)
    np.testing.assert_allclose(model.layers[-1].bias, initial_bias.astype(np.float32))
    assert type(result) is np.ndarray and result.dtype == np.float32  # Keras returns the value
    # with a zero kernel the prediction is exactly the prior pos / (pos + neg)
    model.layers[-1].kernel.assign(np.zeros((4, 1)))
    np.testing.assert_allclose(model.predict(x, verbose=0), np.full((N, 1), pos / N), rtol=1e-5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(model.predict(x, verbose=0)).all()


def test_assign_with_a_wrong_shape_or_values_changes_nothing():
    model = imbalanced_model()
    bias, kernel = model.layers[-1].bias, model.layers[-1].kernel
    before = model.get_weights()
    for bad in ([1.0, 2.0], [[1.0]], 0.5, np.ones((1, 4))):
        with pytest.raises(ValueError, match=r"expects a value of the variable's shape \(1,\); received shape"):
            bias.assign(bad)
    with pytest.raises(ValueError, match=r"kernel.*shape \(4, 1\); received shape \(1, 4\)"):
        kernel.assign(np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        bias.assign([np.nan])
    with pytest.raises(ValueError, match="NaN or infinite"):
        bias.assign(np.array([1e39]))  # finite in float64, inf once cast to float32
    with pytest.raises(TypeError, match="dtype float32; received dtype"):
        bias.assign(["a"])
    with pytest.raises(ValueError, match="shape"):
        bias.assign_add([1.0, 2.0])
    for ours, then in zip(model.get_weights(), before):
        np.testing.assert_array_equal(ours, then)


def test_assign_casts_writes_in_place_and_add_sub_broadcast():
    model = imbalanced_model()
    kernel = model.layers[0].kernel
    storage = kernel.ctypes.data
    kernel.assign(np.arange(20, dtype=np.int64).reshape(D, 4))
    assert kernel.dtype == np.float32 and kernel.ctypes.data == storage
    np.testing.assert_array_equal(kernel, np.arange(20).reshape(D, 4))
    kernel.assign_add(1)
    kernel.assign_sub(np.full((D, 4), 0.5))
    np.testing.assert_array_equal(kernel, np.arange(20).reshape(D, 4) + 0.5)
    assert model.layers[0].kernel is kernel


def test_numpy_is_a_plain_copy_and_value_a_plain_view():
    bias = imbalanced_model().layers[-1].bias
    copied = bias.numpy()
    assert type(copied) is np.ndarray
    copied[0] = 7.0  # as a TensorFlow variable's numpy(): the weight does not change
    assert bias[0] == 0.0
    view = bias.value
    assert type(view) is np.ndarray and np.shares_memory(view, bias)


def test_computing_with_a_variable_gives_plain_ndarrays():
    kernel = imbalanced_model().layers[0].kernel
    results = [kernel * 2, kernel + kernel, -kernel, kernel.sum(axis=0), kernel.T, kernel[0], kernel[:, 1:],
               kernel.copy(), kernel.reshape(-1), kernel.astype(np.float64), np.zeros_like(kernel),
               np.concatenate([kernel, kernel]), np.ones((2, D), np.float32) @ kernel, np.maximum(kernel, 0),
               np.mean(kernel, axis=1), np.where(kernel > 0, kernel, 0), np.array(kernel), np.asarray(kernel)]
    assert [type(r).__name__ for r in results] == ["ndarray"] * len(results)
    assert type(kernel.sum()) is np.float32
    assert isinstance(copy.deepcopy(kernel), Variable)


def test_in_place_updates_keep_the_variable():
    kernel = imbalanced_model().layers[0].kernel
    start = kernel.numpy()
    same = kernel
    same -= 1.0
    same *= 2.0
    np.multiply(same, 0.5, out=same)
    np.copyto(same, same + 1.0)
    same[0, 0] = 42.0
    assert same is kernel
    expected = start.copy()
    expected[0, 0] = 42.0
    np.testing.assert_allclose(kernel, expected, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_optimizer_updates_keep_identity(backend):
    x, y = data()
    model = imbalanced_model()
    held = list(model.weights)
    before = model.get_weights()
    model.compile(optimizer="adam", loss="binary_crossentropy", backend=backend)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert all(a is b for a, b in zip(held, model.weights))
    assert all(not np.array_equal(w, b) for w, b in zip(held, before))
    assert all(isinstance(w, Variable) for w in model.weights)


def test_both_backends_train_identically_after_an_assign():
    x, y = data()
    finals = []
    for backend in ("numpy", "numba"):
        model = imbalanced_model()
        model.layers[-1].bias.assign(np.log([0.25]))
        model.compile(optimizer="adam", loss="binary_crossentropy", backend=backend)
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        finals.append(model.get_weights())
    for ours, theirs in zip(*finals):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_an_assign_between_fits_is_seen_by_the_numba_backend():
    x, y = data()
    model = imbalanced_model()
    model.compile(optimizer="sgd", loss="binary_crossentropy", backend="numba")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.layers[-1].kernel.assign(np.zeros((4, 1)))
    model.layers[-1].bias.assign([2.0])
    expected = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(model.predict(x, verbose=0), np.full((N, 1), expected), rtol=1e-6)


def test_set_weights_writes_in_place_and_refuses_without_changing_anything():
    model = imbalanced_model()
    kernel = model.layers[0].kernel
    new = [np.full(w.shape, 0.5, np.float32) for w in model.get_weights()]
    model.set_weights(new)
    assert model.layers[0].kernel is kernel and np.all(kernel == 0.5)
    layer = model.layers[-1]
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer.set_weights([np.ones((4, 1)), [np.inf]])
    with pytest.raises(ValueError):
        layer.set_weights([np.ones((4, 1)), [1.0, 2.0]])
    np.testing.assert_array_equal(layer.kernel, np.full((4, 1), 0.5))


def test_get_weights_returns_plain_copies():
    model = imbalanced_model()
    for weights in (model.get_weights(), model.layers[0].get_weights()):
        assert all(type(w) is np.ndarray for w in weights)
        weights[0][...] = 9.0
        assert not np.any(model.layers[0].kernel == 9.0)


@pytest.mark.parametrize("filename", ["model.keras", "model.npnet", "model.weights.h5", "model.h5"])
def test_save_and_load_after_assign(tmp_path, filename):
    pytest.importorskip("h5py")
    x, _ = data()
    model = imbalanced_model()
    model.layers[-1].bias.assign([-1.25])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        model.save_weights(path)
        loaded = imbalanced_model()
        held = loaded.layers[-1].bias
        loaded.load_weights(path)
        assert loaded.layers[-1].bias is held  # loading writes in place
    else:
        model.save(path)
        loaded = npnet.load_model(path)
    assert loaded.layers[-1].bias[0] == np.float32(-1.25)
    assert all(isinstance(w, Variable) for w in loaded.weights)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_trainable_follows_the_layer_and_cannot_be_set_on_the_variable():
    model = imbalanced_model()
    hidden = model.layers[0]
    hidden.trainable = False
    assert [w.trainable for w in model.weights] == [False, False, True, True]
    assert [w.path for w in model.trainable_weights] == ["model/out/kernel", "model/out/bias"]
    with pytest.raises(AttributeError, match="layer.trainable"):
        hidden.kernel.trainable = True


def test_normalization_weights_are_variables_checked_by_the_layer():
    norm = layers.Normalization(name="norm")
    norm.adapt(np.arange(12, dtype=np.float32).reshape(4, 3))
    assert [(w.name, w.path, w.trainable) for w in norm.weights] == [
        ("mean", "norm/mean", False), ("variance", "norm/variance", False), ("count", "norm/count", False)]
    variance = norm.params["variance"]
    before = variance.numpy()
    with pytest.raises(ValueError, match="cannot be negative"):
        variance.assign([-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(variance, before)
    norm.params["mean"].assign([1.0, 2.0, 3.0])
    np.testing.assert_allclose(norm(np.array([[1.0, 2.0, 3.0]])), [[0.0, 0.0, 0.0]])


def test_add_weight_returns_a_variable_and_the_attribute_follows():
    class Scale(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def forward(self, x, training=False):
            return x * self.w, x

        def backward(self, dL_dy, cache, need_input_grad=True):
            return dL_dy * self.w, {"variable": (dL_dy * cache).sum(axis=0)}

    layer = Scale(name="scale")
    layer.build((None, 3))
    assert isinstance(layer.w, Variable) and layer.w.name == "variable" and layer.w.path == "scale/variable"
    layer.w.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer(np.ones((1, 3))), [[1.0, 2.0, 3.0]])
    assert type(layer(np.ones((1, 3)))) is np.ndarray


def test_deepcopy_and_pickle_give_variables_of_their_own_layer():
    model = imbalanced_model()
    copied = copy.deepcopy(model.layers[0])
    assert isinstance(copied.kernel, Variable) and not np.shares_memory(copied.kernel, model.layers[0].kernel)
    copied.kernel.assign(np.zeros((D, 4)))
    assert np.any(model.layers[0].kernel != 0)
    copied.trainable = False
    assert not copied.kernel.trainable and model.layers[0].kernel.trainable
    restored = pickle.loads(pickle.dumps(model.layers[0]))
    assert isinstance(restored.kernel, Variable) and restored.kernel.path == "model/hidden/kernel"
    np.testing.assert_array_equal(restored.kernel, model.layers[0].kernel)
    restored.trainable = False
    assert not restored.kernel.trainable


def test_repr_reads_like_keras():
    bias = imbalanced_model().layers[-1].bias
    assert repr(bias) == "<Variable path=model/out/bias, shape=(1,), dtype=float32, value=[0.]>"
    assert str(bias) == repr(bias)
