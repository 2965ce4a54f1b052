"""Small shared helpers for the core tests (models, snapshots, finite differences).

Kept deliberately tiny: a 3-class model on (4, 3) inputs trains in milliseconds, so the
core suite stays fast on a 2-core machine shared with other people.
"""

import numpy as np

import npnet

INPUT_SHAPE = (4, 3)
N_CLASSES = 3


def tiny_model(hidden=5, n_classes=N_CLASSES, input_shape=INPUT_SHAPE, compile=True,
               optimizer="adam", backend="numpy"):
    """Flatten -> Dense(hidden, relu) -> Dense(n_classes, softmax), built and compiled."""
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=input_shape),
        npnet.layers.Dense(hidden, activation="relu"),
        npnet.layers.Dense(n_classes, activation="softmax"),
    ])
    if compile:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], backend=backend)
    return model


def tiny_data(n_samples=70, seed=0, input_shape=INPUT_SHAPE, n_classes=N_CLASSES):
    """Random float32 inputs (n, *input_shape) in [0, 1) and int64 labels (n,) that are learnable.

    The label is the index of the largest of the first ``n_classes`` features, so a few
    epochs of training do lower the loss (EarlyStopping and determinism tests need that).
    """
    rng = np.random.default_rng(seed)
    x = rng.random((n_samples,) + tuple(input_shape)).astype(np.float32)
    y = x.reshape(n_samples, -1)[:, :n_classes].argmax(axis=1).astype(np.int64)
    return x, y


def snapshot(model):
    """Copies of everything a failed call must leave alone: weights and optimizer state."""
    state = None
    if model.optimizer is not None and model.optimizer.state is not None:
        state = {slot: [a.copy() for a in arrays] for slot, arrays in model.optimizer.state.items()}
    return {
        "weights": model.get_weights(),
        "optimizer": model.optimizer,
        "iterations": getattr(model.optimizer, "iterations", None),
        "state": state,
        "loss": model.loss,
        "compiled": model.compiled,
        "backend": (model.backend, getattr(model, "backend_name", None)),
    }


def assert_unchanged(model, before):
    """Fail, naming what moved, if ``model`` differs from the ``snapshot`` ``before``."""
    after = snapshot(model)
    assert len(after["weights"]) == len(before["weights"])
    for i, (old, new) in enumerate(zip(before["weights"], after["weights"])):
        assert np.array_equal(old, new), f"weight {i} ({model.weight_names()[i]}) changed"
    assert after["optimizer"] is before["optimizer"], "the optimizer object was replaced"
    assert after["loss"] is before["loss"], "the loss object was replaced"
    assert after["compiled"] == before["compiled"]
    assert after["backend"][0] is before["backend"][0], "the backend was replaced"
    assert after["backend"][1] == before["backend"][1], "backend_name changed"
    assert after["iterations"] == before["iterations"], "the optimizer's step count changed"
    if before["state"] is None:
        assert after["state"] is None, "optimizer state was created"
    else:
        for slot, arrays in before["state"].items():
            for i, (old, new) in enumerate(zip(arrays, after["state"][slot])):
                assert np.array_equal(old, new), f"optimizer slot {slot!r}[{i}] changed"


def assert_weights_equal(actual, expected, what="weights"):
    """Bit-for-bit equality of two weight lists, with the first mismatch in the message."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} arrays, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape and a.dtype == e.dtype, f"{what}[{i}]: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
        assert np.array_equal(a, e), f"{what}[{i}] differs: max |Δ| = {np.max(np.abs(a - e))}"


def numerical_gradient(f, x, h=1e-6):
    """Centred finite differences of the scalar function ``f`` w.r.t. every entry of ``x``.

    ``x`` (any shape, float64) is perturbed in place and restored; returns an array like x.
    The truncation error is O(h²) and the rounding error O(ε/h), both ~1e-10 here.
    """
    assert x.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        f_plus = f()
        flat_x[i] = original - h
        f_minus = f()
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def max_relative_error(analytic, numeric):
    """max |a - n| / (|a| + |n|) over entries, with entries where both are ~0 counting as 0."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    assert analytic.shape == numeric.shape, f"shapes {analytic.shape} vs {numeric.shape}"
    return float(np.max(np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-8)))
