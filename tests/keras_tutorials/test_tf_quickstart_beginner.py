"""The TensorFlow 2 quickstart for beginners, cell by cell on npnet: a Dropout model ending
in logits, calling the untrained model, the loss object called by hand, fit, evaluate and a
probability model around the trained one.

The tutorial loads MNIST; npnet ships Fashion-MNIST (same shapes and dtypes), used here.
Tests run in the notebook's order and share its state.
"""

import sys

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/quickstart/beginner.ipynb"
TOTAL_CELLS = 13
NOT_RUN = {1: "licence text (comments only)"}
ADAPTED = {3: "Fashion-MNIST (npnet.datasets.fashion_mnist) for MNIST, first 2,000/500 images",
           10: "epochs=2 instead of 5"}
DIFFERS = {5: "model(x) is already a NumPy array: no .numpy()",
           6: "npnet.nn.softmax -> npnet.activations.softmax (the error says so)",
           8: "the loss value is a NumPy float: no .numpy()"}
N_TRAIN, N_TEST, EPOCHS = 2000, 500, 2


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def state():
    return {}


@covers(2, 3)
def test_load_data(state):
    import npnet                                                 # cell 2: npnet.keras -> npnet
    print("npnet version:", npnet.__version__)
    with pytest.raises(AttributeError, match=r"fashion_mnist\.load_data\(\)"):
        npnet.datasets.mnist                                       # what the swap gives for MNIST
    mnist = npnet.datasets.fashion_mnist                            # cell 3
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train, y_train, x_test, y_test = x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST]
    x_train, x_test = x_train / 255.0, x_test / 255.0
    state.update(npnet=npnet, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


@covers(4, 5, 6, 7, 8)
def test_untrained_model_and_loss_by_hand(state):
    npnet, x_train, y_train = state["npnet"], state["x_train"], state["y_train"]
    model = npnet.models.Sequential([                               # cell 4
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation='relu'),
        npnet.layers.Dropout(0.2),
        npnet.layers.Dense(10),
    ])
    with pytest.raises(AttributeError, match="numpy"):           # cell 5, as written
        model(x_train[:1]).numpy()
    predictions = model(x_train[:1])                             # cell 5, npnet's way
    assert isinstance(predictions, np.ndarray) and predictions.shape == (1, 10)
    with pytest.raises(AttributeError, match=r"npnet\.activations\.softmax\(x\)"):
        npnet.nn.softmax(predictions)                               # cell 6, as written
    probabilities = npnet.activations.softmax(predictions)          # cell 6, npnet's way
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
    loss_fn = npnet.losses.SparseCategoricalCrossentropy(from_logits=True)   # cell 7
    with pytest.raises(AttributeError, match="numpy"):           # cell 8, as written
        loss_fn(y_train[:1], predictions).numpy()
    loss = loss_fn(y_train[:1], predictions)                     # cell 8, npnet's way
    assert np.isscalar(loss) and np.isfinite(loss)
    expected = -np.log(probabilities[0, y_train[0]])
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    state.update(model=model, loss_fn=loss_fn)


@covers(9, 10, 11)
def test_compile_fit_evaluate(state):
    model = state["model"]
    model.compile(optimizer='adam', loss=state["loss_fn"], metrics=['accuracy'])   # cell 9
    history = model.fit(state["x_train"], state["y_train"], epochs=EPOCHS)          # cell 10
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(state["x_test"], state["y_test"], verbose=2)    # cell 11
    assert accuracy > 0.6


@covers(12, 13)
def test_probability_model(state):
    npnet, model = state["npnet"], state["model"]
    probability_model = npnet.Sequential([model, npnet.layers.Softmax()])                 # cell 12
    probabilities = probability_model(state["x_test"][:5])                          # cell 13
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, npnet.activations.softmax(model(state["x_test"][:5])), rtol=1e-5)
