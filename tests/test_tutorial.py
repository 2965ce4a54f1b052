"""The TensorFlow basic-classification tutorial's code, run on the real Fashion-MNIST for one
epoch (the tutorial trains for 5).

The data must be present: a missing data set makes these tests FAIL (load_data raises
DatasetNotFoundError with instructions), never skip. Nothing here asserts on wall time.
"""

import numpy as np
import pytest

import npnet


@pytest.fixture(scope="module")
def fashion_mnist():
    return npnet.datasets.fashion_mnist.load_data()


def run_seed_code(fashion_mnist, compile_backend):
    """The seed code verbatim, except ``epochs=1`` and an optional explicit backend."""
    (train_images, train_labels), (test_images, test_labels) = fashion_mnist
    train_images = train_images / 255.0
    test_images = test_images / 255.0
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(28, 28)),
                              npnet.layers.Dense(128, activation='relu'),
                              npnet.layers.Dense(10, activation='softmax')])
    if compile_backend is None:  # whatever compile picks by default
        model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    else:
        model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'],
                      backend=compile_backend)
    history = model.fit(train_images, train_labels, epochs=1)
    test_loss, test_acc = model.evaluate(test_images, test_labels)
    predictions = model.predict(test_images)
    img = np.expand_dims(test_images[0], 0)
    single = model.predict(img)
    return model, history, test_loss, test_acc, predictions, single


@pytest.mark.slow
@pytest.mark.parametrize("backend", [None, "numpy"], ids=["default-backend", "numpy-backend"])
def test_tutorial_one_epoch_on_the_real_data(fashion_mnist, backend, capsys):
    npnet.utils.set_random_seed(0)  # reproducible if it ever fails; any seed reaches 0.80
    model, history, test_loss, test_acc, predictions, single = run_seed_code(fashion_mnist, backend)
    out = capsys.readouterr().out

    if backend is not None:
        assert model.backend_name == backend
    assert model.count_params() == 101_770
    # One epoch of 1875 steps (60,000 / 32), reported on one Keras-style line (not a terminal).
    assert "Epoch " not in out and "1875/1875 - " in out and "313/313 - " in out  # Keras 3: no header for one epoch
    assert history.epoch == [0] and model.optimizer.iterations == 1875
    assert history.history["accuracy"][0] > 0.75

    assert test_acc >= 0.80, f"test accuracy {test_acc:.4f} after one epoch"
    assert 0 < test_loss < 0.6

    assert predictions.shape == (10000, 10) and predictions.dtype == np.float32
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    assert (predictions >= 0).all()
    assert np.argmax(predictions[0]) == 9  # an ankle boot
    assert (np.argmax(predictions, axis=1) == fashion_mnist[1][1]).mean() == pytest.approx(test_acc, abs=1e-12)

    assert single.shape == (1, 10) and single.dtype == np.float32
    np.testing.assert_allclose(single[0], predictions[0], rtol=1e-5, atol=1e-7)
