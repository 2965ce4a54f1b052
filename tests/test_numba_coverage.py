"""Equivalence of the numba and NumPy backends, piece by piece (issue 13, point 3).

Each test trains one model twice from the same initial weights and the same batch order,
once per backend, for about 100 steps, and compares every weight, the optimizer's state and
step count, the history and the generator's state afterwards (Dropout draws from it, so
equal states mean equal numbers of draws). Tolerances: max |Δw| <= 1e-6 in float32 and
1e-12 in float64. Dropout's masks are equal by construction, so any difference in them would
show as a difference of the size of the weights themselves.

The cases are chosen so that every optimizer, every loss and head, Dropout and L2, frozen
layers, activation layers and both float types each meet the others at least once, without
compiling the full product of them (each combination is its own compiled kernel).
"""

import numpy as np
import pytest

import npnet
from npnet import config, layers, optimizers, regularizers, utils

pytest.importorskip("numba")

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}
LOSS_RTOL = {"float32": 1e-5, "float64": 1e-10}

OPTIMIZERS = {
    "adam": lambda: optimizers.Adam(),  # 1e-3: Adam turns rounding of tiny gradients into ±lr steps
    "sgd": lambda: optimizers.SGD(learning_rate=0.1),
    "sgd-momentum": lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9),
    "sgd-nesterov": lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optimizers.RMSprop(learning_rate=0.003, rho=0.8),
    "rmsprop-momentum-centered": lambda: optimizers.RMSprop(learning_rate=0.002, momentum=0.5, centered=True),
}

#: loss name -> (output activation, loss object, whether targets are one-hot rows)
LOSSES = {
    "sparse, softmax head": ("softmax", lambda: npnet.losses.SparseCategoricalCrossentropy(), False),
    "categorical, softmax head": ("softmax", lambda: npnet.losses.CategoricalCrossentropy(), True),
    "sparse, from logits": ("linear", lambda: npnet.losses.SparseCategoricalCrossentropy(from_logits=True), False),
    "categorical, from logits, softmax output": (
        "softmax", lambda: npnet.losses.CategoricalCrossentropy(from_logits=True), True),
    "sparse, sigmoid probabilities": ("sigmoid", lambda: npnet.losses.SparseCategoricalCrossentropy(), False),
    "categorical, sigmoid probabilities": ("sigmoid", lambda: npnet.losses.CategoricalCrossentropy(), True),
}

N_FEATURES, N_CLASSES = 12, 4


def stack(extras, output_activation, hidden_activation="relu", units=N_CLASSES):
    """Dense(16) -> Dense(8, tanh) -> Dense(units, output), with ``extras`` from
    {"dropout", "input-dropout", "l2", "bias-l2"} inserted."""
    l2 = regularizers.L2(0.01) if "l2" in extras else None
    result = [layers.Dropout(0.1, seed=7)] if "input-dropout" in extras else []
    result.append(layers.Dense(16, activation=hidden_activation, kernel_regularizer=l2))
    if "dropout" in extras:
        result.append(layers.Dropout(0.25))
    result.append(layers.Dense(8, activation="tanh", kernel_regularizer=l2))
    if "dropout" in extras:
        result.append(layers.Dropout(0.5))
    result.append(layers.Dense(units, activation=output_activation))
    return result


def make_pair(make_layers, loss, optimizer, floatx, seed=0, metrics=("accuracy",)):
    """(NumPy model, numba model) of floatx weights with equal initial weights."""
    models = []
    for backend in ("numpy", "numba"):
        previous = config.floatx()
        config.set_floatx(floatx)
        try:
            utils.set_random_seed(seed)
            model = npnet.Sequential(make_layers())
            model.build((None, N_FEATURES))
        finally:
            config.set_floatx(previous)
        model.compile(optimizer=optimizer(), loss=loss(), metrics=list(metrics), backend=backend)
        assert model.backend_name == backend
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


def make_data(n_samples, categorical, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, N_FEATURES))
    y = rng.integers(0, N_CLASSES, n_samples)
    return x, (np.eye(N_CLASSES)[y] if categorical else y)


def train_and_compare(reference, fast, x, y, batch_size, floatx, epochs=1, tolerance=None, **fit_options):
    """Fit both with the same shuffles; compare weights, state, history and generator.
    ``tolerance``: of the weights, when not ``TOLERANCE[floatx]``; ``fit_options`` go to fit."""
    histories, after, before = [], [], reference.optimizer.iterations
    for model in (reference, fast):
        utils.set_random_seed(2)
        histories.append(model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, **fit_options).history)
        after.append(utils.rng().random())  # the generator's state: same draws on both
    steps = epochs * -(-x.shape[0] // batch_size)
    assert reference.optimizer.iterations == fast.optimizer.iterations == before + steps
    differences = {name: float(np.max(np.abs(a - b))) for name, a, b in
                   zip(reference.weight_names(), reference.get_weights(), fast.get_weights())}
    assert max(differences.values()) <= (tolerance or TOLERANCE[floatx]), differences
    assert all(w.dtype == np.dtype(floatx) for w in fast.trainable_weights)
    for slot, arrays in (reference.optimizer.state or {}).items():
        for ours, theirs in zip(fast.optimizer.state[slot], arrays):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=TOLERANCE[floatx], err_msg=slot)
    assert histories[1].keys() == histories[0].keys()
    assert histories[1].get("accuracy") == histories[0].get("accuracy")
    for key in histories[0]:  # the loss, and the metrics that read the outputs
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=LOSS_RTOL[floatx], err_msg=key)
    assert after[0] == after[1]
    # Inference: evaluate and predict agree too (dropout off, penalties in the loss).
    np.testing.assert_allclose(fast.evaluate(x, y, batch_size=48, verbose=0),
                               reference.evaluate(x, y, batch_size=48, verbose=0), rtol=LOSS_RTOL[floatx])
    np.testing.assert_allclose(fast.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=LOSS_RTOL[floatx], atol=TOLERANCE[floatx])
    return differences


# 3190 samples at batch 32: 100 steps, the last of 22 samples.
N_SAMPLES, BATCH = 3190, 32


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("extras", [(), ("dropout", "l2")], ids=["plain", "dropout+l2"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_each_optimizer_with_and_without_dropout_and_l2(optimizer, extras, floatx):
    reference, fast = make_pair(lambda: stack(extras, "softmax"), npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS[optimizer], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("extras", [(), ("input-dropout", "dropout", "l2")], ids=["plain", "dropout+l2"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_each_loss_and_head_with_and_without_dropout_and_l2(loss, extras, floatx):
    output, make_loss, categorical = LOSSES[loss]
    reference, fast = make_pair(lambda: stack(extras, output), make_loss, OPTIMIZERS["adam"], floatx)
    x, y = make_data(N_SAMPLES, categorical)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
def test_batch_sizes(batch_size, n_samples, epochs, floatx):
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), "softmax"),
                                npnet.losses.CategoricalCrossentropy, OPTIMIZERS["rmsprop-momentum-centered"],
                                floatx)
    x, y = make_data(n_samples, categorical=True)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


def _freeze(which):
    def make():
        result = stack(("dropout", "l2"), "softmax")
        dense = [layer for layer in result if isinstance(layer, layers.Dense)]
        for index in which:
            dense[index].trainable = False
        return result
    return make


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("frozen", [(0,), (1,), (2,), (0, 2), (0, 1, 2)],
                         ids=["first", "middle", "output", "first-and-output", "all"])
def test_frozen_layers_get_no_update(frozen, floatx):
    """``trainable = False``: no gradient, no update, no optimizer state; the layers below
    a frozen one still train through it. The penalty of a frozen kernel stays in the loss."""
    reference, fast = make_pair(_freeze(frozen), npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS["sgd-momentum"], floatx)
    before = fast.get_weights()
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)
    after = fast.get_weights()
    for index in range(3):
        unchanged = np.array_equal(before[2 * index], after[2 * index])
        assert unchanged == (index in frozen), index
    assert len(fast.optimizer.state["momentum"]) == 2 * (3 - len(frozen))


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["linear", "sigmoid", "tanh", "softmax"])
def test_every_hidden_activation(hidden, floatx):
    reference, fast = make_pair(lambda: stack(("dropout",), "softmax", hidden_activation=hidden),
                                npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


def test_activation_layers_and_flatten_anywhere():
    """Dense(16) + ReLU(), a Flatten in the middle and Dense(4) + Softmax() are what
    Dense(16, 'relu') and Dense(4, 'softmax') are, on both backends."""
    def make():
        return [layers.Flatten(), layers.Dense(16), layers.ReLU(), layers.Flatten(), layers.Dropout(0.3),
                layers.Dense(N_CLASSES), layers.Softmax()]
    reference, fast = make_pair(make, npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], "float32")
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, "float32")


def test_dropout_masks_are_the_numpy_layers_masks_with_several_steps_per_call():
    """With 64 batches per kernel call (masks drawn ahead for all of them) and one batch per
    call, training is identical, and identical to the NumPy backend's."""
    results = []
    for steps_per_execution in (1, 64):
        reference, fast = make_pair(lambda: stack(("input-dropout", "dropout"), "softmax"),
                                    npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], "float32")
        fast.compile(optimizer=fast.optimizer, loss=fast.loss, metrics=["accuracy"], backend="numba",
                     steps_per_execution=steps_per_execution)
        x, y = make_data(N_SAMPLES, categorical=False)
        train_and_compare(reference, fast, x, y, BATCH, "float32", epochs=2)
        results.append(fast.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_dropout_masks_split_across_calls_when_large(monkeypatch):
    """Masks of many batches are drawn in chunks of at most MASK_BYTES: same training."""
    from npnet.backends import numba_backend
    monkeypatch.setattr(numba_backend, "MASK_BYTES", 3 * 32 * (N_FEATURES + 16 + 8))
    reference, fast = make_pair(lambda: stack(("input-dropout", "dropout"), "softmax"),
                                npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], "float32")
    calls = []
    kernel = numba_backend.K.train_batches

    def counting(*args):
        calls.append(args[6])
        return kernel(*args)
    monkeypatch.setattr(numba_backend.K, "train_batches", counting)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, "float32")
    assert max(calls) == 3 and sum(calls) == 100


def test_changing_trainable_after_compile_is_seen_as_by_the_numpy_backend():
    """The NumPy backend reads ``layer.trainable`` at every step; so does the numba backend
    (an optimizer built for other weights then refuses, on both)."""
    reference, fast = make_pair(lambda: stack((), "softmax"), npnet.losses.SparseCategoricalCrossentropy,
                                lambda: optimizers.SGD(0.1), "float32")
    x, y = make_data(320, categorical=False)
    for model in (reference, fast):
        model.layers[0].trainable = False
    train_and_compare(reference, fast, x, y, BATCH, "float32")
    for model in (reference, fast):
        model.layers[0].trainable = True
    train_and_compare(reference, fast, x, y, BATCH, "float32")


# ----------------------------------------------------------------------------- the other activations

#: the activations numba computes for activation rows only (their code >= FIRST_OTHER_CODE)
OTHER_ACTIVATIONS = ["elu", "selu", "gelu", "softplus", "softsign", "silu", "leaky_relu", "exponential",
                     "hard_sigmoid"]


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("hidden", OTHER_ACTIVATIONS)
def test_every_other_hidden_activation_at_each_batch_size(hidden, batch_size, n_samples, epochs, floatx):
    """About 100 steps with the activation on the first hidden layer, Dropout and L2 around
    it, under Adam in float32 (where a last bit becomes a step of up to lr: gelu at batch 1
    and exponential over 9 epochs reached 1.3e-6 and 3.2e-6 while NumPy's float32 exp was
    its own SIMD code) and :func:`test_batch_sizes`'s centered RMSprop in float64."""
    optimizer = OPTIMIZERS["adam" if floatx == "float32" else "rmsprop-momentum-centered"]
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), "softmax", hidden_activation=hidden),
                                npnet.losses.SparseCategoricalCrossentropy, optimizer, floatx)
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("hidden", OTHER_ACTIVATIONS)
def test_other_hidden_activations_under_adam(hidden, floatx):
    """As :func:`test_every_hidden_activation`, for the other activations. Adam turns a
    last-bit difference of a tiny gradient into a step of up to lr, so this needs the
    activations to agree bit for bit in float32
    (:func:`test_float32_activation_kernels_equal_numpys_bit_for_bit`): with NumPy's own float32
    exp and expm1, selu reached 4.5e-6 here."""
    reference, fast = make_pair(lambda: stack(("dropout",), "softmax", hidden_activation=hidden),
                                npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("output", OTHER_ACTIVATIONS)
def test_every_other_output_activation(output, floatx):
    """The activation on the output layer, under a cross-entropy of its outputs as logits: the
    loss's gradient then goes through the activation's backward."""
    reference, fast = make_pair(lambda: stack((), output),
                                lambda: npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                                OPTIMIZERS["sgd-momentum"], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


def _activation_layers():
    return [layers.Dense(16), layers.LeakyReLU(), layers.Dense(16), layers.ReLU(negative_slope=0.1),
            layers.Dropout(0.2), layers.Dense(8), layers.Activation("gelu"), layers.Dense(N_CLASSES),
            layers.Activation("softmax")]


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_activation_layers_fold_into_the_dense_layer_before_them(floatx):
    """LeakyReLU (Keras's slope 0.3), ReLU with a negative slope, Activation layers, and a
    final Activation('softmax') that hands its logits to the loss, as on the NumPy backend."""
    reference, fast = make_pair(_activation_layers, npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS["rmsprop"], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


def test_a_final_sigmoid_activation_layer_under_a_crossentropy_of_probabilities():
    reference, fast = make_pair(lambda: [layers.Dense(16), layers.Activation("silu"), layers.Dense(N_CLASSES),
                                         layers.Activation("sigmoid")],
                                npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], "float32")
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, "float32")


def test_activation_codes_stay_int64_for_the_common_activations():
    """The tutorial's model keeps int64 codes, for which numba compiles none of the other
    activations (a model using one gets float64 activation rows instead)."""
    from npnet.backends import numba_backend
    from npnet.kernels import dense as K

    common = numba_backend.activation_codes([numba_backend._activation(n) for n in ("relu", "softmax")])
    assert common.dtype == np.int64 and common.tolist() == [K.RELU, K.SOFTMAX]
    rows = numba_backend.activation_codes([numba_backend._activation(n) for n in ("leaky_relu", "softmax")])
    assert rows.dtype == np.float64 and rows.tolist() == [[K.LEAKY_RELU, 0.2], [K.SOFTMAX, 0.0]]
    assert (K.SELU_ALPHA, K.SELU_SCALE) == (npnet.functional.SELU_ALPHA, npnet.functional.SELU_SCALE)


def _edge_values(dtype):
    """Kinks, the edges of hard_sigmoid, overflow of exp, NaN and infinities, and random values."""
    edges = [0.0, -0.0, 3, -3, 2.999, -2.999, 1e-30, -1e-30, 1e30, -1e30, 50, -50, 89, -89, 0.5, -0.5,
             np.nan, np.inf, -np.inf, 1e-8]
    rows = np.random.default_rng(0).standard_normal((3, len(edges))) * 4
    return np.concatenate([np.array([edges]), rows]).astype(dtype)


def _numpy_and_kernel_activation(name, z, dL_da):
    """``(a, dL_dz)`` of activation ``name`` from npnet.activations (NumPy), then from the
    kernels' activation row: ``(expected_a, expected_grad, a, grad)``."""
    from npnet.backends import numba_backend
    from npnet.kernels import dense as K

    activation = getattr(npnet.activations, name)
    with np.errstate(all="ignore"):
        expected_a = activation.forward(z)
        expected_grad = activation.backward(dL_da, z, expected_a)
        row = np.array(numba_backend._activation(name), dtype=np.float64)
        a, grad = np.empty_like(z), dL_da.copy()
        K.any_activation_forward(row, z, a)
        K.any_activation_backward(row, grad, z, expected_a)
    return expected_a, expected_grad, a, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OTHER_ACTIVATIONS)
def test_each_other_activation_kernel_matches_functional_at_its_edges(name, dtype):
    """Forward and backward of one activation row against npnet.functional, with NaN and
    infinities where NumPy has them: equal up to the last bits in float64, where NumPy's
    exp/expm1/log1p/erf are other implementations than the kernels' (float32: bit for bit, below)."""
    z = _edge_values(dtype)
    dL_da = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
    expected_a, expected_grad, a, grad = _numpy_and_kernel_activation(name, z, dL_da)
    eps = np.finfo(dtype).eps
    assert a.dtype == grad.dtype == dtype
    np.testing.assert_allclose(a, expected_a, rtol=4 * eps, atol=0)
    # silu's derivative s (1 + z (1 - s)) cancels near z = -1.28, where a last-bit difference
    # of s is amplified: measured against the size of the terms, not of their sum
    np.testing.assert_allclose(grad, expected_grad, rtol=4 * eps, atol=16 * eps * np.abs(dL_da).max())


@pytest.mark.parametrize("units", [3, 10, 300])
@pytest.mark.parametrize("name", OTHER_ACTIVATIONS + ["sigmoid", "tanh", "softmax"])
def test_float32_activation_kernels_equal_numpys_bit_for_bit(name, units):
    """In float32 both backends compute exp, expm1, log1p and tanh in float64 rounded once
    (the correctly rounded value): forward and backward are the same bits, over about 20,000
    values N(0, 4²) and the edges. (NumPy's own float32 SIMD loops differ from that in the
    last bit for 39% of exp's inputs on this CPU.) Softmax too for rows of fewer than 8: NumPy
    adds 8 or more pairwise, the kernels in order, so wider rows are compared to a few ulps."""
    rng = np.random.default_rng(units)
    z = np.concatenate([(rng.standard_normal((20_000 // units + 1, units)) * 4).astype(np.float32),
                        np.resize(_edge_values(np.float32), (4, units))])
    dL_da = rng.standard_normal(z.shape).astype(np.float32)
    expected_a, expected_grad, a, grad = _numpy_and_kernel_activation(name, z, dL_da)
    if name == "softmax" and units >= 8:
        eps = np.finfo(np.float32).eps
        np.testing.assert_allclose(a, expected_a, rtol=8 * eps, atol=0)
        np.testing.assert_allclose(grad, expected_grad, rtol=8 * eps, atol=units * eps * np.abs(dL_da).max())
        return
    np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_array_equal(grad, expected_grad)


# ----------------------------------------------------------------------------- binary and regression losses

#: loss -> (output units, output activation, loss object, targets: "binary" or "regression")
TARGET_LOSSES = {
    "mse": (3, "linear", lambda: npnet.losses.MeanSquaredError(), "regression"),
    "mae, one unit": (1, "tanh", lambda: npnet.losses.MeanAbsoluteError(), "regression"),
    "huber, delta 0.7": (3, "linear", lambda: npnet.losses.Huber(delta=0.7), "regression"),
    "binary, sigmoid head": (3, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(), "binary"),
    "binary, one sigmoid unit": (1, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(), "binary"),
    "binary, from logits": (3, "linear", lambda: npnet.losses.BinaryCrossentropy(from_logits=True), "binary"),
    "binary, softmax probabilities": (3, "softmax", lambda: npnet.losses.BinaryCrossentropy(), "binary"),
    "binary, from logits of a sigmoid output": (
        1, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(from_logits=True), "binary"),
}


def make_targets(n_samples, units, kind, seed=1):
    """x and targets (n, units): 0/1 for a binary loss; for a regression loss numbers in
    (-0.9, 0.9), which a tanh output can reach. (Targets beyond it drive the tanh into
    saturation, where MAE's gradient, the sign of the error, keeps flipping: the last bits in
    which the backends differ then reach 3.5e-6 after 100 SGD steps.)"""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, N_FEATURES))
    y = (rng.random((n_samples, units)) > 0.5).astype(float) if kind == "binary" \
        else np.tanh(rng.standard_normal((n_samples, units))) * 0.9
    return x, y


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("loss", list(TARGET_LOSSES))
def test_each_binary_and_regression_loss_at_each_batch_size(loss, batch_size, n_samples, epochs, floatx):
    """About 100 steps, with Dropout and L2, Adam; no metric (see
    :func:`test_metrics_that_read_the_outputs_at_each_batch_size` for them)."""
    units, output, make_loss, kind = TARGET_LOSSES[loss]
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), output, units=units), make_loss,
                                OPTIMIZERS["adam"], floatx, metrics=())
    x, y = make_targets(n_samples, units, kind)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


@pytest.mark.parametrize("loss", list(TARGET_LOSSES))
def test_binary_and_regression_losses_with_an_activation_layer_output_and_sgd(loss):
    """The output's activation as a layer of its own (Activation('sigmoid') feeds the sigmoid
    head as a sigmoid Dense layer does), plain SGD; the one-unit targets given as (n,).
    (:func:`test_mae_through_a_one_unit_output_under_momentum` has the optimizers with momentum.)"""
    units, output, make_loss, kind = TARGET_LOSSES[loss]

    def make():
        return stack((), "linear", units=units) + [layers.Activation(output)]
    reference, fast = make_pair(make, make_loss, OPTIMIZERS["sgd"], "float32", metrics=())
    x, y = make_targets(N_SAMPLES, units, kind)
    train_and_compare(reference, fast, x, y[:, 0] if units == 1 else y, BATCH, "float32")


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd-momentum", "sgd-nesterov", "rmsprop-momentum-centered"])
def test_mae_through_a_one_unit_output_under_momentum(optimizer, floatx):
    """MAE's gradient, the sign of the error, never fades, and momentum carries any last bit
    in which the backends differ into every later step: before the kernels summed a one-unit
    layer's bias gradient as NumPy does (pairwise), this reached 5.5e-6 in float32."""
    units, output, make_loss, kind = TARGET_LOSSES["mae, one unit"]
    reference, fast = make_pair(lambda: stack((), "linear", units=units) + [layers.Activation(output)],
                                make_loss, OPTIMIZERS[optimizer], floatx, metrics=())
    x, y = make_targets(N_SAMPLES, units, kind)
    train_and_compare(reference, fast, x, y[:, 0], BATCH, floatx)
    np.testing.assert_allclose(fast.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=0,
                               atol=TOLERANCE[floatx])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_column_is_summed_as_numpy_sums_it(dtype):
    """The bias gradient of a one-unit layer: NumPy's ``sum(axis=0)`` of an (n, 1) column is
    pairwise, and the kernels' sum must give the same bits at every length, across the
    block size of 128 and its splits, and for numbers of very different sizes."""
    from npnet.kernels import dense as K
    rng = np.random.default_rng(3)
    for n in [*range(1, 300), 1000, 1001, 4099, 70001]:
        column = (rng.standard_normal((n, 1)) * 10.0 ** rng.uniform(-4, 4, (n, 1))).astype(dtype)
        assert K.pairwise_sum(column[:, 0], 0, n) == column.sum(axis=0)[0], n
    in_order = column[0, 0]
    for value in column[1:, 0]:
        in_order += value
    assert in_order != column.sum(axis=0)[0], "a sum in order would pass this test too"


# ----------------------------------------------------------------------------- L1 and L1L2 penalties

#: name -> the regularizer of the first and the output layer (the middle one keeps an L2)
PENALTIES = {
    "l1": lambda: regularizers.L1(0.01),
    "l1_l2": lambda: regularizers.L1L2(l1=0.01, l2=0.02),
    "l1_l2 with l1 only": lambda: regularizers.L1L2(l1=0.01),
    "l1_l2 with l2 only": lambda: regularizers.L1L2(l2=0.01),
}


def _penalised(make_regularizer):
    def make():
        return [layers.Dense(16, activation="relu", kernel_regularizer=make_regularizer()), layers.Dropout(0.25),
                layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.L2(0.01)),
                layers.Dense(N_CLASSES, activation="softmax", kernel_regularizer=make_regularizer())]
    return make


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("penalty", list(PENALTIES))
def test_l1_and_l1_l2_penalties_at_each_batch_size(penalty, batch_size, n_samples, epochs, floatx):
    """The penalty in the loss, its gradient (l1 · sign(w), summed with L1L2's L2 term
    first) in the update; about 100 SGD steps."""
    reference, fast = make_pair(_penalised(PENALTIES[penalty]), npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS["sgd"], floatx)
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_l1_penalty_under_adam_and_a_frozen_layer(floatx):
    """A frozen layer's L1 penalty stays in the loss but adds no gradient, as on NumPy."""
    def make():
        result = _penalised(PENALTIES["l1_l2"])()
        result[0].trainable = False
        return result
    reference, fast = make_pair(make, npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


def _bias_penalised():
    return [layers.Dense(16, activation="relu", bias_regularizer=regularizers.L1L2(l1=0.01, l2=0.02)),
            layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.L1(0.01),
                         bias_regularizer=regularizers.L2(0.05)),
            layers.Dense(N_CLASSES, activation="softmax", bias_regularizer=regularizers.L1(0.01))]


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_bias_penalties_at_each_batch_size(optimizer, batch_size, n_samples, epochs, floatx):
    """``bias_regularizer`` of each kind: the bias penalties in the loss, their gradients in
    the bias updates, as on the NumPy backend; about 100 steps."""
    reference, fast = make_pair(_bias_penalised, npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS[optimizer], floatx)
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


def _without_biases():
    return [layers.Dense(16, activation="relu", use_bias=False), layers.Dropout(0.25),
            layers.Dense(8, activation="tanh", use_bias=False, kernel_regularizer=regularizers.L2(0.01)),
            layers.Dense(N_CLASSES, activation="softmax")]


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd-nesterov", "rmsprop-momentum-centered"])
def test_layers_without_bias_at_each_batch_size(optimizer, batch_size, n_samples, epochs, floatx):
    """``use_bias=False``: the kernels add a bias of zeros that no update changes, so the
    weights, history and optimizer state follow the NumPy backend's, which has no bias."""
    reference, fast = make_pair(_without_biases, npnet.losses.SparseCategoricalCrossentropy,
                                OPTIMIZERS[optimizer], floatx)
    assert fast.backend_name == "numba" and fast.layers[0].bias is None
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


def test_a_frozen_layer_without_bias_before_a_trained_one():
    """The first trained layer is found past a frozen one whatever their kinds."""
    def make():
        result = _without_biases()
        result[0].trainable = False
        return result
    reference, fast = make_pair(make, npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], "float32")
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, "float32")


NORMALIZATIONS = {
    "adapted, per feature": {},
    "adapted, one mean": {"axis": None},
    "inverted": {"invert": True},
    "given statistics": {"mean": np.linspace(-1.0, 6.0, N_FEATURES),  # a zero variance divides by 1e-7
                         "variance": np.r_[0.0, np.linspace(1.0, 9.0, N_FEATURES - 1)]},
}


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("kind", list(NORMALIZATIONS))
def test_a_first_normalization_layer_at_each_batch_size(kind, batch_size, n_samples, epochs, floatx):
    """The kernels normalize each gathered batch as ``Normalization.forward`` does (a zero
    variance divides by 1e-7); evaluate and predict get the layer's own output."""
    x, y = make_data(n_samples, categorical=False)
    x = x * 3.0 + 5.0

    def make():
        norm = layers.Normalization(**NORMALIZATIONS[kind])
        if "mean" not in NORMALIZATIONS[kind]:
            norm.adapt(x)
        return [norm, layers.Dense(16, activation="relu"), layers.Dropout(0.25),
                layers.Dense(N_CLASSES, activation="softmax")]
    reference, fast = make_pair(make, npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], floatx)
    assert fast.backend_name == "numba"
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)
    np.testing.assert_allclose(fast.predict(x[:50], verbose=0), reference.predict(x[:50], verbose=0),
                               rtol=0, atol=TOLERANCE[floatx])


def test_l2_models_carry_no_l1_arrays():
    """Penalties' L1 coefficients travel as None without an L1 term, so L2 models compile no L1 code."""
    from npnet.backends import numba_backend

    dense = [layers.Dense(4, kernel_regularizer=regularizers.L2(0.1)),
             layers.Dense(3, kernel_regularizer=regularizers.L1L2(l2=0.1))]
    for layer in dense:
        layer.build((None, 5) if layer is dense[0] else (None, 4))
    penalties = numba_backend._penalties(dense, np.float32)
    assert penalties.kernel_l1 is None and penalties.bias_l1 is None
    assert penalties.has_kernel.tolist() == [1, 1] and penalties.has_bias.tolist() == [0, 0]
    dense[1].kernel_regularizer = regularizers.L1L2(l1=0.1, l2=0.2)
    penalties = numba_backend._penalties(dense, np.float32)
    assert penalties.has_kernel.tolist() == [1, 3]
    np.testing.assert_array_equal(penalties.kernel_l1, np.array([0.0, 0.1], dtype=np.float32))


# ----------------------------------------------------------------------------- learning-rate schedules

SCHEDULES = {
    "exponential, staircase": lambda: optimizers.schedules.ExponentialDecay(0.05, 7, 0.8, staircase=True),
    "inverse time": lambda: optimizers.schedules.InverseTimeDecay(0.05, 10, 0.5),
    "piecewise constant": lambda: optimizers.schedules.PiecewiseConstantDecay([30, 60], [0.05, 0.02, 0.01]),
    "cosine, warmup": lambda: optimizers.schedules.CosineDecay(0.01, 80, alpha=0.1, warmup_target=0.05,
                                                               warmup_steps=20),
}
SCHEDULED_OPTIMIZERS = {"adam": optimizers.Adam, "sgd-momentum": lambda rate: optimizers.SGD(rate, momentum=0.9),
                        "rmsprop-centered": lambda rate: optimizers.RMSprop(rate, centered=True)}


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_each_schedule_at_each_batch_size(schedule, batch_size, n_samples, epochs, floatx):
    """The rate of each step is the schedule's at the optimizer's iterations, on both."""
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), "softmax"), npnet.losses.SparseCategoricalCrossentropy,
                                lambda: optimizers.SGD(SCHEDULES[schedule]()), floatx)
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)
    assert fast.optimizer.learning_rate == reference.optimizer.learning_rate
    assert fast.optimizer._current_learning_rate == reference.optimizer._current_learning_rate


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(SCHEDULED_OPTIMIZERS))
def test_a_schedule_with_each_optimizer_family(optimizer, floatx):
    reference, fast = make_pair(lambda: stack(("dropout",), "softmax"), npnet.losses.SparseCategoricalCrossentropy,
                                lambda: SCHEDULED_OPTIMIZERS[optimizer](SCHEDULES["cosine, warmup"]()), floatx)
    x, y = make_data(N_SAMPLES, categorical=False)
    train_and_compare(reference, fast, x, y, BATCH, floatx)


# ----------------------------------------------------------------------------- metrics that read the outputs

#: name -> (output units, output activation, loss, targets kind ("sparse" or "binary"), metrics)
OUTPUT_METRICS = {
    "one sigmoid unit": (1, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(), "binary",
                         ["accuracy", "auc", "precision", "recall", "mae", "binary_crossentropy"]),
    "softmax, sparse labels": (N_CLASSES, "softmax", lambda: npnet.losses.SparseCategoricalCrossentropy(), "sparse",
                               ["accuracy", "sparse_top_k_categorical_accuracy", "sparse_categorical_crossentropy"]),
}


def _output_metric_case(case, floatx, n_samples):
    units, output, make_loss, kind, metrics = OUTPUT_METRICS[case]
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), output, units=units), make_loss,
                                OPTIMIZERS["adam"], floatx, metrics=metrics)
    if kind == "sparse":
        return reference, fast, make_data(n_samples, categorical=False)
    x, y = make_targets(n_samples, units, "binary")
    return reference, fast, (x, y[:, 0])


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("case", list(OUTPUT_METRICS))
def test_metrics_that_read_the_outputs_at_each_batch_size(case, batch_size, n_samples, epochs, floatx):
    """The numba backend trains a model whose metrics read each batch's outputs (its kernels
    keep them): every metric's history, the weights and the state agree with NumPy's."""
    reference, fast, (x, y) = _output_metric_case(case, floatx, n_samples)
    assert fast.backend_name == "numba"
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples", [(1, 100), (32, 3200), (32, 3190)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
def test_kept_outputs_are_the_forward_pass_before_each_update(batch_size, n_samples, floatx):
    """``train_steps(keep_outputs=True)``: each batch's output rows (Dropout on, before that
    step's update), as the NumPy backend's, over calls of several steps and one ending on the
    partial batch; and the same weights as without keeping them."""
    reference, fast, (x, y) = _output_metric_case("softmax, sparse labels", floatx, n_samples)
    _, plain, _ = _output_metric_case("softmax, sparse labels", floatx, n_samples)
    order = np.random.default_rng(3).permutation(n_samples)
    steps = -(-n_samples // batch_size)
    kept = {}
    for name, model, keep in (("numpy", reference, True), ("numba", fast, True), ("plain", plain, False)):
        utils.set_random_seed(4)
        outputs = []
        for first in range(0, steps, 37):
            done = model.backend.train_steps(x, y, order, batch_size, first, min(37, steps - first),
                                             keep_outputs=keep)
            assert done.last_applied and (done.outputs is None) == (not keep)
            outputs += done.outputs or []
        kept[name] = outputs
    assert [o.shape for o in kept["numba"]] == [o.shape for o in kept["numpy"]]
    assert kept["numba"][-1].shape[0] == n_samples - (steps - 1) * batch_size
    for ours, theirs in zip(kept["numba"], kept["numpy"]):
        assert ours.dtype == np.dtype(floatx)
        np.testing.assert_allclose(ours, theirs, rtol=LOSS_RTOL[floatx], atol=TOLERANCE[floatx])
    assert all(np.array_equal(a, b) for a, b in zip(fast.get_weights(), plain.get_weights()))


# ----------------------------------------------------------------------------- sample and class weights

#: name -> (output units, output activation, loss object, targets: "sparse", "categorical",
#: "binary" or "regression"); each head the kernels weigh
WEIGHTED_LOSSES = {
    "sparse, softmax head": (N_CLASSES, "softmax", lambda: npnet.losses.SparseCategoricalCrossentropy(), "sparse"),
    "categorical, sigmoid probabilities": (N_CLASSES, "sigmoid", lambda: npnet.losses.CategoricalCrossentropy(),
                                           "categorical"),
    "sparse, from logits through tanh": (
        N_CLASSES, "tanh", lambda: npnet.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    "binary, one sigmoid unit": (1, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(), "binary"),
    "mse through tanh": (3, "tanh", lambda: npnet.losses.MeanSquaredError(), "regression"),
}


def _weighted_case(loss, floatx, n_samples):
    """(NumPy model, numba model, x, y) for one of WEIGHTED_LOSSES, with Dropout and L2."""
    units, output, make_loss, kind = WEIGHTED_LOSSES[loss]
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), output, units=units), make_loss,
                                lambda: optimizers.SGD(learning_rate=0.01, momentum=0.5), floatx)
    if kind in ("sparse", "categorical"):
        x, y = make_data(n_samples, categorical=kind == "categorical")
    else:
        x, y = make_targets(n_samples, units, kind)
    return reference, fast, x, y


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("loss", list(WEIGHTED_LOSSES))
def test_sample_weight_with_each_head_at_each_batch_size(loss, batch_size, n_samples, epochs, floatx):
    """fit(sample_weight=...) on the numba backend: each sample's loss and gradient row
    weighed as the NumPy backend does (some weights 0, some above 1), about 100 steps."""
    reference, fast, x, y = _weighted_case(loss, floatx, n_samples)
    weights = np.random.default_rng(5).uniform(0.0, 3.0, n_samples)
    weights[::7] = 0.0
    train_and_compare(reference, fast, x, y, batch_size, floatx, epochs, sample_weight=weights)
    assert fast.backend_name == "numba"


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_class_weight_on_the_numba_backend(floatx):
    """class_weight becomes one weight per sample, as on NumPy; a weighted fit is not a
    different model: the same numba backend trains it, and then trains without weights."""
    reference, fast, x, y = _weighted_case("sparse, softmax head", floatx, N_SAMPLES)
    class_weight = {0: 0.5, 1: 2.0, 2: 1.0, 3: 0.25}
    train_and_compare(reference, fast, x, y, BATCH, floatx, class_weight=class_weight)
    trainer = fast.backend
    train_and_compare(reference, fast, x, y, BATCH, floatx)
    assert fast.backend is trainer and trainer.name == "numba"


# ----------------------------------------------------------------------------- label smoothing

#: name -> (output units, output activation, loss object, targets: "categorical" or "binary")
SMOOTHED_LOSSES = {
    "categorical, softmax head": (
        N_CLASSES, "softmax", lambda: npnet.losses.CategoricalCrossentropy(label_smoothing=0.2), "categorical"),
    "categorical, from logits": (N_CLASSES, "linear", lambda: npnet.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1), "categorical"),
    "categorical, sigmoid probabilities": (
        N_CLASSES, "sigmoid", lambda: npnet.losses.CategoricalCrossentropy(label_smoothing=0.1), "categorical"),
    "binary, one sigmoid unit": (1, "sigmoid", lambda: npnet.losses.BinaryCrossentropy(label_smoothing=0.1), "binary"),
    "binary, from logits": (3, "linear", lambda: npnet.losses.BinaryCrossentropy(from_logits=True,
                                                                                  label_smoothing=0.3), "binary"),
}


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("loss", list(SMOOTHED_LOSSES))
def test_label_smoothing_with_each_head_at_each_batch_size(loss, batch_size, n_samples, epochs, floatx):
    """label_smoothing on the numba backend: the targets of each batch smoothed as
    npnet.losses does, in training and in evaluate (where the caller's targets stay as they
    were); accuracy still reads the targets as given. The data stay in floatx during fit, as
    after ``set_floatx('float64')`` (float32 targets for a float64 model would be smoothed and
    summed in float32 by the NumPy backend, which the kernels do not mimic)."""
    units, output, make_loss, kind = SMOOTHED_LOSSES[loss]
    reference, fast = make_pair(lambda: stack(("dropout", "l2"), output, units=units), make_loss,
                                OPTIMIZERS["adam"], floatx)
    x, y = make_data(n_samples, categorical=True) if kind == "categorical" else make_targets(n_samples, units, kind)
    y = y.astype(floatx)
    given = y.copy()
    previous = config.floatx()
    config.set_floatx(floatx)
    try:
        train_and_compare(reference, fast, x, y, batch_size, floatx, epochs)
    finally:
        config.set_floatx(previous)
    assert fast.backend_name == "numba" and np.array_equal(y, given)


# ----------------------------------------------------------------------------- ReLU's max_value and threshold

#: ReLU layers the kernels compute with their general row (npnet.kernels.dense.RELU_GENERAL)
GENERAL_RELUS = {
    "max_value 6 (relu6)": lambda: layers.ReLU(max_value=6.0),
    "max_value 0.5": lambda: layers.ReLU(max_value=0.5),
    "threshold 0.3": lambda: layers.ReLU(threshold=0.3),
    "all three": lambda: layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
    "max_value 6 with a slope": lambda: layers.ReLU(max_value=6, negative_slope=0.2),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", list(GENERAL_RELUS))
def test_general_relu_kernel_matches_functional_at_its_edges(relu, dtype):
    """Forward and backward of a ReLU layer's row against its NumPy forward and backward,
    equal bit for bit: at the threshold, at max_value (6 for relu6), NaN and infinities."""
    from npnet.backends import numba_backend
    from npnet.kernels import dense as K

    layer = GENERAL_RELUS[relu]()
    edges = [layer.threshold, layer.max_value or 0.0, 6.0, 5.999, 6.001, 0.3, 0.5, 2.0, 0.0, -0.0]
    z = np.concatenate([_edge_values(dtype), np.array([edges * 2], dtype=dtype)[:, :20]])
    dL_da = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
    with np.errstate(all="ignore"):
        expected_a, cache = layer.forward(z)
        expected_grad = layer.backward(dL_da, cache)[0]
    row = numba_backend.activation_codes([numba_backend._layer_activation(layer)])[0]
    assert row[0] == K.RELU_GENERAL
    a, grad = np.empty_like(z), dL_da.copy()
    K.any_activation_forward(row, z, a)
    K.any_activation_backward(row, grad, z, expected_a)
    assert a.dtype == grad.dtype == dtype
    np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_array_equal(grad, expected_grad)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("relu", list(GENERAL_RELUS))
def test_relu_with_max_value_or_threshold_at_each_batch_size(relu, batch_size, n_samples, epochs, floatx):
    """Dense(16) + ReLU(options) (scaled inputs, so the cap and the threshold are crossed),
    Dropout and L2 elsewhere, about 100 steps."""
    def make():
        return [layers.Dense(16), GENERAL_RELUS[relu](), layers.Dropout(0.25),
                layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.L2(0.01)),
                layers.Dense(N_CLASSES, activation="softmax")]
    reference, fast = make_pair(make, npnet.losses.SparseCategoricalCrossentropy, OPTIMIZERS["adam"], floatx)
    x, y = make_data(n_samples, categorical=False)
    train_and_compare(reference, fast, x * 3, y, batch_size, floatx, epochs)


# ----------------------------------------------------------------------------- Keras's other losses

#: loss -> (output units, output activation, loss class, targets: see :func:`make_other_targets`)
OTHER_LOSSES = {
    "mape, zero targets": (3, "linear", npnet.losses.MeanAbsolutePercentageError, "with zeros"),
    "msle": (3, "linear", npnet.losses.MeanSquaredLogarithmicError, "with zeros"),
    "log_cosh": (3, "linear", npnet.losses.LogCosh, "regression"),
    "kl_divergence": (N_CLASSES, "softmax", npnet.losses.KLDivergence, "distributions"),
    "poisson": (3, "sigmoid", npnet.losses.Poisson, "counts"),
    "hinge, 0/1 targets": (3, "linear", npnet.losses.Hinge, "binary"),
    "hinge, -1/1 targets": (3, "tanh", npnet.losses.Hinge, "signs"),
    "squared_hinge, one unit": (1, "linear", npnet.losses.SquaredHinge, "binary"),
    "categorical_hinge": (N_CLASSES, "linear", npnet.losses.CategoricalHinge, "one-hot"),
    "cosine_similarity": (3, "linear", npnet.losses.CosineSimilarity, "regression"),
}


def make_other_targets(n_samples, units, kind, seed=1):
    """x and targets (n, units) of one kind: "regression" as :func:`make_targets`; "with
    zeros" the same with a quarter of them 0 (MAPE divides by ε there, MSLE clips them);
    "distributions" rows summing to 1, a third of them one-hot (zeros: KL's clip);
    "counts" 0, 1 or 2; "binary" 0/1; "signs" -1/1; "one-hot" rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, N_FEATURES))
    if kind in ("binary", "signs"):
        y = (rng.random((n_samples, units)) > 0.5).astype(float)
        return x, (2 * y - 1 if kind == "signs" else y)
    if kind in ("one-hot", "distributions"):
        y = np.eye(units)[rng.integers(0, units, n_samples)]
        if kind == "distributions":
            soft = rng.random((n_samples, units))
            y = np.where(np.arange(n_samples)[:, None] % 3 == 0, y, soft / soft.sum(axis=1, keepdims=True))
        return x, y
    if kind == "counts":
        return x, rng.integers(0, 3, (n_samples, units)).astype(float)
    y = np.tanh(rng.standard_normal((n_samples, units))) * 0.9
    if kind == "with zeros":
        y[rng.random(y.shape) < 0.25] = 0.0
    return x, y


def _other_loss_case(loss, floatx, optimizer="adam", extras=("dropout", "l2")):
    units, output, make_loss, kind = OTHER_LOSSES[loss]
    reference, fast = make_pair(lambda: stack(extras, output, units=units), make_loss, OPTIMIZERS[optimizer],
                                floatx, metrics=())
    assert fast.backend_name == "numba"
    return reference, fast, kind, units


def _train_in_floatx(reference, fast, x, y, batch_size, floatx, epochs=1, **fit_options):
    """:func:`train_and_compare` with floatx set during fit, so the targets are in the weights'
    dtype on both backends: with float32 targets and float64 weights the NumPy backend
    normalises cosine similarity's targets in float32, which the kernels (whose targets are
    in the weights' dtype) do not mimic."""
    previous = config.floatx()
    config.set_floatx(floatx)
    try:
        return train_and_compare(reference, fast, x, y, batch_size, floatx, epochs, **fit_options)
    finally:
        config.set_floatx(previous)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 3200, 1), (32, 327, 9)],
                         ids=["batch-1", "batch-32", "last-partial-batch"])
@pytest.mark.parametrize("loss", list(OTHER_LOSSES))
def test_each_other_loss_at_each_batch_size(loss, batch_size, n_samples, epochs, floatx):
    """About 100 Adam steps with Dropout and L2, then evaluate and predict, as on the NumPy backend."""
    reference, fast, kind, units = _other_loss_case(loss, floatx)
    x, y = make_other_targets(n_samples, units, kind)
    _train_in_floatx(reference, fast, x, y, batch_size, floatx, epochs)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("batch_size, n_samples, epochs", [(1, 100, 1), (32, 327, 9)],
                         ids=["batch-1", "last-partial-batch"])
@pytest.mark.parametrize("loss", list(OTHER_LOSSES))
def test_each_other_loss_with_sample_weight(loss, batch_size, n_samples, epochs, floatx):
    """fit(sample_weight=...) (some 0, some above 1). Under Adam: SGD with momentum drives the
    weights of MAPE (zero targets: a gradient of 100 / ε) and of the hinges to sizes where a
    last-bit difference of the matrix products exceeds 1e-12 in float64."""
    reference, fast, kind, units = _other_loss_case(loss, floatx)
    x, y = make_other_targets(n_samples, units, kind)
    weights = np.random.default_rng(5).uniform(0.0, 3.0, n_samples)
    weights[::7] = 0.0
    _train_in_floatx(reference, fast, x, y, batch_size, floatx, epochs, sample_weight=weights)


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["hinge, 0/1 targets", "categorical_hinge", "poisson"])
def test_other_losses_with_class_weight(loss, floatx):
    """class_weight (read from the targets' first column, as on NumPy) weighs these losses too."""
    reference, fast, kind, units = _other_loss_case(loss, floatx)
    x, y = make_other_targets(N_SAMPLES, units, kind)
    _train_in_floatx(reference, fast, x, y, BATCH, floatx, class_weight={0: 0.5, 1: 2.0, 2: 1.5})


def test_poisson_through_a_softplus_output():
    """A positive rate from an activation row (softplus), the usual Poisson model."""
    reference, fast = make_pair(lambda: stack(("dropout",), "softplus", units=3), npnet.losses.Poisson,
                                OPTIMIZERS["adam"], "float32", metrics=())
    x, y = make_other_targets(N_SAMPLES, 3, "counts")
    train_and_compare(reference, fast, x, y, BATCH, "float32")


def test_hinge_reads_each_batch_s_targets_as_keras_does():
    """Binary labels become -1/1 only in a batch whose targets are all 0 or 1: six samples
    with a target of -1 make the batches the shuffle puts them in keep theirs, on both backends."""
    reference, fast, _, units = _other_loss_case("hinge, 0/1 targets", "float32")
    x, y = make_other_targets(320, units, "binary")
    y[:6, 0] = -1.0
    train_and_compare(reference, fast, x, y, BATCH, "float32")


def test_other_losses_travel_as_their_own_type():
    """A model with one of these losses carries an ``OtherLoss``, the type for which alone
    numba compiles them; MSE keeps its float64 loss row (tests/test_numba_compile_scope.py
    checks what each compiles)."""
    from npnet.kernels import dense as K
    _, fast, _, _ = _other_loss_case("log_cosh", "float32")
    x, y = make_other_targets(64, 3, "regression")
    fast.fit(x, y, epochs=1, verbose=0)
    assert fast.backend._net.loss_code == K.OtherLoss(K.LOG_COSH)
    assert K.EPSILON == npnet.functional.EPSILON
    _, mse = make_pair(lambda: stack((), "linear", units=3), npnet.losses.MeanSquaredError, OPTIMIZERS["sgd"],
                       "float32", metrics=())
    mse.fit(x, y, epochs=1, verbose=0)
    assert mse.backend._net.loss_code.dtype == np.float64


#: loss class -> (p, t) rows at the edges of its formula (5 outputs: the sums are in order)
def _other_loss_edges(name, dtype):
    eps, eps32 = dtype(1e-7), np.float32(1e-7)
    cases = {
        "mean_absolute_percentage_error": ([[0.0, 1e-7, -1e-7, 2.0, -3.0], [0.5, 0.5, 1e-8, -1e-8, 0.0]],
                                           [[0.0, 0.0, 1e-7, 2.0, -1e-8], [0.5, -0.5, 0.0, 1e-8, 1e-7]]),
        "mean_squared_logarithmic_error": ([[eps32, -1.0, 0.0, 3.0, eps32 * 0.5], [1e-6, 100.0, -eps32, 2.0, 0.0]],
                                           [[0.0, 0.0, eps32, 3.0, 1.0], [-2.0, 99.0, 0.0, 0.0, 1e-7]]),
        "log_cosh": ([[0.0, 50.0, -50.0, 100.0, 1e-8], [1.0, -1.0, 0.5, 89.0, -89.0]],
                     [[0.0, 0.0, 0.0, -100.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]),
        "kl_divergence": ([[eps, 0.0, 1.0, 1.5, -0.2], [0.2, 0.2, 0.2, 0.2, 0.2]],
                          [[0.0, 0.3, 0.7, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, eps]]),
        "poisson": ([[0.0, 1e-7, 2.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0]],
                    [[0.0, 1.0, 2.0, 0.0, 5.0], [0.0, 0.0, 1.0, 2.0, 7.0]]),
        "hinge": ([[1.0, -1.0, 0.5, -0.5, 2.0], [1.0, 1.0, -1.0, 0.0, 1e-8]],
                  [[1.0, 0.0, 1.0, 0.0, 1.0], [1.0, -1.0, -1.0, 0.5, 1.0]]),
        "squared_hinge": ([[1.0, -1.0, 0.5, -0.5, 2.0], [1.0, 1.0, -1.0, 0.0, 1e-8]],
                          [[1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0, 1.0]]),
        "categorical_hinge": ([[1.0, 0.0, 0.0, 0.5, 0.5], [2.0, 1.0, 0.3, 1.0, -4.0], [1.0, 0.0, 0.0, 0.0, 0.0]],
                              [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]),
        "cosine_similarity": ([[0.0, 0.0, 0.0, 0.0, 0.0], [1e-8, 0.0, -1e-8, 0.0, 0.0]],
                              [[1.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]),
    }
    p, t = (np.array(rows, dtype=dtype) for rows in cases[name])
    rng = np.random.default_rng(4)
    more_p, more_t = rng.standard_normal((2, 6, 5)).astype(dtype)
    if name in ("hinge", "squared_hinge", "categorical_hinge"):
        more_t = (more_t > 0).astype(dtype)
    elif name in ("kl_divergence", "poisson", "mean_squared_logarithmic_error"):
        more_p, more_t = np.abs(more_p), np.abs(more_t)
    return np.concatenate([p, more_p]), np.concatenate([t, more_t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["mean_absolute_percentage_error", "mean_squared_logarithmic_error", "log_cosh",
                                  "kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge",
                                  "cosine_similarity"])
def test_each_other_loss_kernel_matches_functional_at_its_edges(name, dtype):
    """Each sample's loss and the gradient against npnet.functional at the ε clips, zero
    targets, the hinges' kinks and ties, zero and tiny vectors: the same bits in float32 (logs
    and exps in float64, rounded once, on both), a few ulps in float64 (NumPy's float64 log,
    exp and log1p are other implementations than the kernels')."""
    from npnet.backends import numba_backend
    from npnet.kernels import dense as K

    loss = {cls.name: cls for cls in numba_backend._OTHER_LOSSES}[name]()
    code = getattr(K, numba_backend._OTHER_LOSSES[type(loss)])
    p, t = _other_loss_edges(name, dtype)
    with np.errstate(all="ignore"):
        expected_rows, expected_grad = loss.per_sample(t, p), loss.gradient(t, p)
        binary = K.hinge_batch(code, t)
        rows = np.array([K.other_sample_loss(code, p, t, i, binary) for i in range(p.shape[0])], dtype=dtype)
        grad = np.empty_like(p)
        K.other_loss_gradient(code, np.int64(K.LINEAR), p, p, t, None, grad)
    assert grad.dtype == dtype
    if dtype == np.float32:
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(grad, expected_grad)
    else:
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(rows, expected_rows, rtol=4 * eps, atol=0)
        np.testing.assert_allclose(grad, expected_grad, rtol=4 * eps, atol=0)
