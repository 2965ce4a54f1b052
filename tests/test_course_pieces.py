"""The pieces a neural-network course uses, without TensorFlow: SGD, RMSprop, Dropout, the
ReLU and Softmax layers, the L2 regularizer, categorical cross-entropy and float64 mode.

Formulas are checked against hand-written float64 arithmetic, layers against their Dense
equivalents, and the whole against fit/evaluate/predict/save/load. Gradients are checked in
test_gradcheck.py and the Keras equivalents in test_keras_mirror_course.py.
"""

import numpy as np
import pytest

import npnet
from npnet import config, functional as F, losses, optimizers, regularizers, utils
from npnet.layers import Dense, Dropout, Flatten, ReLU, Softmax
from npnet.optimizers import SGD, RMSprop
from npnet.regularizers import L2

N_SAMPLES, N_CLASSES = 16, 3


def data(seed=0, n=N_SAMPLES):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2, 3)).astype(np.float32)
    return x, x.reshape(n, -1)[:, :N_CLASSES].argmax(axis=1)


@pytest.fixture
def float64():
    """float64 for the test; float32 is restored afterwards even if the test fails."""
    config.set_floatx("float64")
    try:
        yield
    finally:
        config.set_floatx("float32")


# ----------------------------------------------------------------------------- SGD and RMSprop formulas

GRADS = [np.array([0.5, -2.0, 1e-3]), np.array([0.25, 1.0, -3.0]), np.array([-1.0, 0.5, 0.0])]
START = np.array([1.0, -0.5, 0.25])


def run(optimizer, dtype=np.float64):
    param = START.astype(dtype)
    for grad in GRADS:
        optimizer.apply_gradients([param], [grad.astype(dtype)])
    return param


def test_sgd_plain_is_w_minus_lr_g():
    expected = START - 0.1 * sum(GRADS)
    np.testing.assert_allclose(run(SGD(0.1)), expected, rtol=1e-15)
    assert SGD(0.1).slots == ()


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_nesterov_follow_keras(nesterov):
    w, v = START.copy(), np.zeros(3)
    for g in GRADS:
        v = 0.9 * v - 0.1 * g
        w = w + (0.9 * v - 0.1 * g if nesterov else v)
    np.testing.assert_allclose(run(SGD(0.1, momentum=0.9, nesterov=nesterov)), w, rtol=1e-14)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_follows_keras(momentum, centered):
    w, v, m, mean_g = START.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    lr, rho, eps = 0.01, 0.8, 1e-7
    for g in GRADS:
        v = rho * v + (1 - rho) * g * g
        if centered:
            mean_g = rho * mean_g + (1 - rho) * g
            step = lr * g / np.sqrt(v - mean_g ** 2 + eps)  # ε inside the square root
        else:
            step = lr * g / np.sqrt(v + eps)
        if momentum:
            m = momentum * m + step
            w = w - m
        else:
            w = w - step
    optimizer = RMSprop(lr, rho=rho, momentum=momentum, epsilon=eps, centered=centered)
    np.testing.assert_allclose(run(optimizer), w, rtol=1e-13)
    assert set(optimizer.state) == ({"velocity"} | ({"momentum"} if momentum else set())
                                    | ({"average_gradient"} if centered else set()))


@pytest.mark.parametrize("optimizer", [SGD(0.1, momentum=0.9), RMSprop(momentum=0.5, centered=True)],
                         ids=["sgd", "rmsprop"])
def test_float32_stays_float32(optimizer):
    param = run(optimizer, np.float32)
    assert param.dtype == np.float32
    assert all(a.dtype == np.float32 for arrays in optimizer.state.values() for a in arrays)


def test_optimizer_names_defaults_and_errors():
    sgd, rms = optimizers.get("sgd"), optimizers.get("RMSprop")
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    for optimizer in (SGD(0.05, momentum=0.8, nesterov=True), RMSprop(0.01, rho=0.95, momentum=0.1, centered=True)):
        again = optimizers.deserialize(type(optimizer).__name__, optimizer.get_config())
        assert type(again) is type(optimizer) and again.get_config() == optimizer.get_config()
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]; received 1.5"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\)"):
        RMSprop(rho=1.0)
    with pytest.raises(ValueError, match="epsilon must be positive"):
        RMSprop(epsilon=0)
    with pytest.raises(ValueError, match="learning_rate must be a number >= 0"):
        SGD(learning_rate=-1)
    with pytest.raises(ValueError, match="known optimizers: adam, rmsprop, sgd"):
        optimizers.get("adagrad")


# ----------------------------------------------------------------------------- dropout


def test_dropout_forward_and_backward_scale_kept_units():
    x = np.arange(1, 9, dtype=np.float32).reshape(2, 4)
    keep = np.array([[True, False, True, True], [False, False, True, True]])
    y = F.dropout_forward(x, keep, 0.2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.where(keep, x * np.float32(1 / 0.8), 0))
    upstream = np.ones_like(x)
    np.testing.assert_array_equal(F.dropout_backward(upstream, keep, 0.2), np.where(keep, np.float32(1.25), 0))


def test_dropout_layer_trains_with_masks_and_infers_as_the_identity():
    utils.set_random_seed(0)
    layer = Dropout(0.3)
    x = np.ones((100, 100), dtype=np.float32)
    np.testing.assert_array_equal(layer(x), x)  # inference
    y, keep = layer.forward(x, training=True)
    assert 0.27 < 1 - keep.mean() < 0.33  # about `rate` of the units dropped
    np.testing.assert_array_equal(y[keep], np.float32(1 / 0.7))
    assert (y[~keep] == 0).all()
    dL_dx, grads = layer.backward(np.ones_like(x), keep)
    np.testing.assert_array_equal(dL_dx, y)
    assert grads == {}
    y0, _ = Dropout(0.0).forward(x, training=True)
    np.testing.assert_array_equal(y0, x)


def test_dropout_masks_are_reproducible():
    x = np.ones((4, 50), dtype=np.float32)
    utils.set_random_seed(5)
    first = Dropout(0.5).forward(x, training=True)[1]
    utils.set_random_seed(5)
    np.testing.assert_array_equal(Dropout(0.5).forward(x, training=True)[1], first)
    # with a seed, the layer draws from its own generator and leaves npnet's alone
    state = utils.rng().bit_generator.state
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    np.testing.assert_array_equal(a.forward(x, training=True)[1], b.forward(x, training=True)[1])
    assert utils.rng().bit_generator.state == state


@pytest.mark.parametrize("rate", [1.0, -0.1, "0.5", True, float("nan")])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match=r"Dropout rate must be a number in \[0, 1\)"):
        Dropout(rate)
    with pytest.raises(ValueError, match="seed must be None or a non-negative integer"):
        Dropout(0.5, seed=-1)


def test_dropout_is_active_only_in_fit():
    utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(8, activation="relu"), Dropout(0.5),
                              Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    plain = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(8, activation="relu"),
                              Dense(N_CLASSES, activation="softmax")])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    plain.set_weights(model.get_weights())
    x, y = data()
    np.testing.assert_array_equal(model.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(model(x), plain(x))
    with_dropout = model.fit(x, y, batch_size=N_SAMPLES, shuffle=False, verbose=0).history["loss"][0]
    without = plain.fit(x, y, batch_size=N_SAMPLES, shuffle=False, verbose=0).history["loss"][0]
    assert with_dropout != without  # the training step did drop units


# ----------------------------------------------------------------------------- ReLU and Softmax layers


def test_relu_and_softmax_layers_equal_dense_activations():
    utils.set_random_seed(1)
    x, y = data()
    split = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(5), ReLU(), Dense(N_CLASSES), Softmax()])
    fused = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(5, activation="relu"),
                              Dense(N_CLASSES, activation="softmax")])
    fused.set_weights(split.get_weights())
    # Uncompiled, the fused model predicts on the numba backend and the split one on NumPy's:
    # equal to float32 rounding.
    np.testing.assert_allclose(split.predict(x, verbose=0), fused.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    for model in (split, fused):
        model.compile(optimizer=SGD(0.5), loss="sparse_categorical_crossentropy", backend="numpy")
    h_split = split.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h_fused = fused.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert h_split.history == h_fused.history
    for a, b in zip(split.get_weights(), fused.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [type(layer).__name__ for layer in split.layers][2:] == ["ReLU", "Dense", "Softmax"]
    assert split.layers[2].name.startswith("re_lu")  # Keras's name for a ReLU layer


def test_softmax_layer_needs_2d_input():
    with pytest.raises(ValueError, match=r"Softmax layer .* expects 2-D input \(batch, classes\); "
                                         r"received shape \(None, 2, 3\)"):
        npnet.Sequential([Softmax(input_shape=(2, 3))])


# ----------------------------------------------------------------------------- L2 regularizer


def test_l2_regularizer_names_values_and_errors():
    assert regularizers.get("l2").l2 == 0.01 and L2().l2 == 0.01 and regularizers.get(None) is None
    w = np.array([[1.0, -2.0], [0.5, 0.0]], dtype=np.float32)
    assert L2(0.1)(w) == pytest.approx(0.1 * 5.25) and L2(0.1)(w).dtype == np.float32
    np.testing.assert_allclose(L2(0.1).gradient(w), 0.2 * w)
    assert regularizers.get(regularizers.serialize(L2(0.3))).l2 == 0.3
    for bad in (-1, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="l2 must be a non-negative finite number"):
            L2(bad)
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        Dense(3, kernel_regularizer="l3")


def test_fit_and_evaluate_report_the_penalty_in_the_loss():
    utils.set_random_seed(2)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(4, activation="tanh", kernel_regularizer=L2(0.05)),
                              Dense(N_CLASSES, activation="softmax", kernel_regularizer="l2")])
    model.compile(optimizer=SGD(0.1), loss="sparse_categorical_crossentropy", backend="numpy")
    x, y = data()
    hidden, output = model.layers[1], model.layers[2]
    logits = np.tanh(x.reshape(N_SAMPLES, -1) @ hidden.kernel + hidden.bias) @ output.kernel + output.bias
    data_loss = F.sparse_categorical_crossentropy_from_logits(logits.astype(np.float64), y)
    penalty = 0.05 * np.sum(hidden.kernel.astype(np.float64) ** 2) + 0.01 * np.sum(output.kernel.astype(np.float64) ** 2)
    assert penalty > 0.01
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data_loss + penalty, rel=1e-5)
    history = model.fit(x, y, batch_size=N_SAMPLES, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-5)


# ----------------------------------------------------------------------------- categorical cross-entropy


def test_categorical_crossentropy_with_one_hot_labels_matches_sparse():
    x, labels = data()
    one_hot = np.eye(N_CLASSES, dtype=np.float32)[labels]
    models = []
    for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        utils.set_random_seed(4)
        model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(6, activation="relu"),
                                  Dense(N_CLASSES, activation="softmax")])
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"], backend="numpy")
        models.append(model)
    sparse, categorical = models
    h_sparse = sparse.fit(x, labels, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    h_categorical = categorical.fit(x, one_hot, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_categorical["loss"], h_sparse["loss"], rtol=1e-5)
    assert h_categorical["accuracy"] == h_sparse["accuracy"]  # argmax against argmax
    for a, b in zip(sparse.get_weights(), categorical.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    loss, accuracy = categorical.evaluate(x, one_hot, verbose=0)
    assert accuracy == pytest.approx(np.mean(categorical.predict(x, verbose=0).argmax(axis=1) == labels))
    with pytest.raises(ValueError, match=r"one-hot rows of shape \(16, 3\) for categorical_crossentropy; "
                                         r"received shape \(16,\)"):
        categorical.fit(x, labels, verbose=0)


def test_categorical_crossentropy_on_probabilities_normalises_and_clips_like_keras():
    p = np.array([[0.2, 0.2, 0.4], [1.0, 0.0, 0.0]])  # the first row sums to 0.8
    t = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    expected = np.mean([-np.log(0.5), -np.log(1e-7)])
    assert losses.CategoricalCrossentropy()(t, p) == pytest.approx(expected)


# ----------------------------------------------------------------------------- float64 mode


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_numpy_backend_runs_end_to_end_in_float64(float64, optimizer):
    utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(5, kernel_regularizer="l2"), ReLU(),
                              Dropout(0.2), Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="numpy")
    x, y = data()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert all(w.dtype == np.float64 for w in model.weights)
    assert all(a.dtype == np.float64 for arrays in model.optimizer.state.values() for a in arrays)
    assert model.predict(x, verbose=0).dtype == np.float64
    assert model(x).dtype == np.float64
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    report = npnet.inspect.step(model, x, y)
    assert report.dtype == "float64" and report.layers[1].update["kernel"].dtype == np.float64


def test_the_float64_fixture_restored_float32():
    assert config.floatx() == "float32"
    assert npnet.Sequential([Dense(2, input_shape=(3,))]).weights[0].dtype == np.float32


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip_with_the_course_pieces(tmp_path):
    utils.set_random_seed(6)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(5, kernel_regularizer=L2(0.02)), ReLU(),
                              Dropout(0.25), Dense(N_CLASSES), Softmax()])
    model.compile(optimizer=RMSprop(0.01, momentum=0.5, centered=True), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], backend="numpy")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "course.npnet"
    model.save(path)
    loaded = npnet.load_model(path, backend="numpy")

    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    assert loaded.layers[1].kernel_regularizer.l2 == 0.02 and loaded.layers[3].rate == 0.25
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for slot, arrays in model.optimizer.state.items():
        for a, b in zip(arrays, loaded.optimizer.state[slot]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)  # penalty included in both

    # training continues identically (same dropout masks from the same seed)
    utils.set_random_seed(7)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    utils.set_random_seed(7)
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_plain_sgd_keeps_its_step_count_through_save_load(tmp_path):
    utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "sgd.npnet")
    loaded = npnet.load_model(tmp_path / "sgd.npnet", backend="numpy")
    assert isinstance(loaded.optimizer, SGD) and loaded.optimizer.iterations == 4


# ----------------------------------------------------------------------------- the numba backend runs them too
# (issue 13: equivalence piece by piece in tests/test_numba_coverage.py, the full table in
# tests/test_backend_coverage.py)


def tutorial_layers():
    return [Flatten(input_shape=(2, 3)), Dense(5, activation="relu"), Dense(N_CLASSES, activation="softmax")]


COURSE_PIECES = {
    "relu-layer": (lambda: [Flatten(input_shape=(2, 3)), Dense(5), ReLU(), Dense(N_CLASSES, activation="softmax")],
                   "adam", "sparse_categorical_crossentropy"),
    "softmax-layer": (lambda: [Flatten(input_shape=(2, 3)), Dense(N_CLASSES), Softmax()],
                      "adam", "sparse_categorical_crossentropy"),
    "dropout": (lambda: [Flatten(input_shape=(2, 3)), Dense(5, activation="relu"), Dropout(0.5),
                         Dense(N_CLASSES, activation="softmax")], "adam", "sparse_categorical_crossentropy"),
    "l2": (lambda: [Flatten(input_shape=(2, 3)), Dense(N_CLASSES, activation="softmax", kernel_regularizer="l2")],
           "adam", "sparse_categorical_crossentropy"),
    "sgd": (tutorial_layers, "sgd", "sparse_categorical_crossentropy"),
    "rmsprop": (tutorial_layers, "rmsprop", "sparse_categorical_crossentropy"),
    "categorical": (tutorial_layers, "adam", "categorical_crossentropy"),
}


@pytest.mark.parametrize("case", sorted(COURSE_PIECES))
def test_the_default_backend_is_numba_for_the_course_pieces(case, monkeypatch):
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    make_layers, optimizer, loss = COURSE_PIECES[case]
    model = npnet.Sequential(make_layers())
    model.compile(optimizer=optimizer, loss=loss)
    assert model.backend_name == "numba"


def test_the_default_backend_is_numba_for_float64_weights(float64, monkeypatch):
    monkeypatch.delenv("NPNET_BACKEND", raising=False)
    model = npnet.Sequential(tutorial_layers())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert model.backend_name == "numba"
    model.fit(*data(), batch_size=4, epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())
