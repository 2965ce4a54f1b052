"""npnet.train_step: the tutorial's step by hand computes what model.fit computes."""

import numpy as np
import threadpoolctl

import npnet
from npnet import train_step as by_hand
from npnet.layers import Dense, Flatten

NAMES = ["kernel_1", "bias_1", "kernel_2", "bias_2"]


def tutorial_model():
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"),
                              Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    return model


def test_five_steps_by_hand_equal_model_fit():
    npnet.utils.set_random_seed(3)
    rng = np.random.default_rng(4)
    images = rng.random((160, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 160)
    model = tutorial_model()
    params = dict(zip(NAMES, model.get_weights()))
    state = by_hand.adam_state(params)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # the NumPy backend's BLAS setting
        losses = [by_hand.train_step(params, state, step, images[start:start + 32], labels[start:start + 32])
                  for step, start in enumerate(range(0, 160, 32), start=1)]
    history = model.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)

    assert model.optimizer.iterations == 5
    for name, ours, theirs in zip(NAMES, params.values(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    for slot in ("m", "v"):
        for name, theirs in zip(NAMES, model.optimizer.state[slot]):
            np.testing.assert_array_equal(state[slot][name], theirs, err_msg=f"{slot} of {name}")
    assert abs(np.mean(losses) - history.history["loss"][0]) < 1e-6
    assert all(p.dtype == np.float32 for p in params.values())
