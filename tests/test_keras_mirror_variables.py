"""Mirror tests of weights as variables: the same model in npnet and Keras 3, the same
``assign`` calls, the same names, paths, flags and predictions."""

import numpy as np
import pytest
import keras

import npnet
from npnet import layers

pytestmark = pytest.mark.reference

N, D = 48, 5


def pair():
    """The imbalanced-data tutorial's model, hidden layer and sigmoid output, in both, same weights."""
    ours = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(4, activation="relu", name="hidden"),
                             layers.Dense(1, activation="sigmoid", name="out")], name="imbalanced")
    theirs = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(4, activation="relu", name="hidden"),
                               keras.layers.Dense(1, activation="sigmoid", name="out")], name="imbalanced")
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def test_names_paths_shapes_dtypes_and_trainable_match_keras():
    ours, theirs = pair()
    ours.layers[0].trainable = theirs.layers[0].trainable = False
    assert [(v.name, v.path, v.trainable, tuple(v.shape), str(v.dtype)) for v in ours.weights] == \
        [(v.name, v.path, v.trainable, tuple(v.shape), str(v.dtype)) for v in theirs.weights]
    assert [v.path for v in ours.trainable_weights] == [v.path for v in theirs.trainable_weights]


def test_predictions_after_the_same_assigns_match_keras():
    x = np.random.default_rng(1).normal(size=(N, D)).astype(np.float32)
    ours, theirs = pair()
    bias = np.log([7 / 41])
    for model in (ours, theirs):
        model.layers[-1].bias.assign(bias)
        model.layers[0].kernel.assign_add(np.full((D, 4), 0.125))
        model.layers[0].bias.assign_sub([0.5, 0.0, -0.5, 1.0])
    np.testing.assert_allclose(ours.layers[-1].bias.numpy(), theirs.layers[-1].bias.numpy())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_assign_returns_and_refuses_as_keras():
    ours, theirs = pair()
    for model in (ours, theirs):
        returned = model.layers[-1].bias.assign([0.25])
        assert returned is not model.layers[-1].bias  # the value, not the variable
        np.testing.assert_allclose(np.asarray(returned), [0.25])
        with pytest.raises(ValueError, match="shape"):
            model.layers[-1].bias.assign([[1.0]])
        copied = model.layers[-1].bias.numpy()
        copied[0] = 5.0
        assert model.layers[-1].bias.numpy()[0] == np.float32(0.25)


def test_fit_after_assign_matches_keras_over_a_few_steps():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, 0] > 0.8).astype(np.float32)
    ours, theirs = pair()
    for model in (ours, theirs):
        model.layers[-1].bias.assign(np.log([y.sum() / (N - y.sum())]))
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="binary_crossentropy")
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    ours.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
