"""The current TensorFlow tutorial "Basic classification: Classify images of clothing",
cell by cell on npnet: logits out of the last Dense layer, a from_logits loss, and a
probability model made by nesting the trained model in a Sequential with a Softmax.

The data is a slice of the same Fashion-MNIST the tutorial loads; epochs are fewer.
"""

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/keras/classification.ipynb"
TOTAL_CELLS = 31
NOT_RUN = {1: "licence text (comments only)", 2: "licence text (comments only)"}
ADAPTED = {16: "epochs=2 on 2,000 training images instead of 10 on 60,000"}
N_TRAIN, N_TEST, EPOCHS = 2000, 500, 2

CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']


def test_every_cell_is_accounted_for():
    import sys
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def tutorial():
    """Cells 3-22 in order; the state later cells read (images, labels, models, predictions)."""
    # cell 3: the imports, with npnet where the tutorial imports TensorFlow
    import npnet
    import matplotlib.pyplot as plt
    assert isinstance(npnet.__version__, str)

    # cell 4: the data set object and load_data()
    fashion_mnist = npnet.datasets.fashion_mnist
    (train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
    # cells 6-10: looking at the arrays (the whole data set, before taking a slice)
    assert train_images.shape == (60000, 28, 28)
    assert len(train_labels) == 60000
    assert list(train_labels[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert test_images.shape == (10000, 28, 28)
    assert len(test_labels) == 10000
    train_images, train_labels = train_images[:N_TRAIN], train_labels[:N_TRAIN]
    test_images, test_labels = test_images[:N_TEST], test_labels[:N_TEST]

    # cell 11: the first image with a colour bar
    plt.figure()
    plt.imshow(train_images[0])
    plt.colorbar()
    plt.grid(False)
    plt.show()

    # cell 12: scale to [0, 1]
    train_images = train_images / 255.0
    test_images = test_images / 255.0

    # cell 13: 25 images with their class names
    plt.figure(figsize=(10, 10))
    for i in range(25):
        plt.subplot(5, 5, i + 1)
        plt.xticks([])
        plt.yticks([])
        plt.grid(False)
        plt.imshow(train_images[i], cmap=plt.cm.binary)
        plt.xlabel(CLASS_NAMES[train_labels[i]])
    plt.show()
    plt.close("all")

    # cell 14: the model ends in logits (no softmax)
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation='relu'),
        npnet.layers.Dense(10),
    ])
    # cell 15: the loss takes the logits
    model.compile(optimizer='adam',
                  loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    # cell 16: train
    history = model.fit(train_images, train_labels, epochs=EPOCHS)
    # cell 17: evaluate, unpacking two values
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
    print('\nTest accuracy:', test_acc)
    # cell 18: a Sequential containing the trained model, then a Softmax
    probability_model = npnet.Sequential([model, npnet.layers.Softmax()])
    # cell 19: predict
    predictions = probability_model.predict(test_images)
    return dict(npnet=npnet, plt=plt, model=model, probability_model=probability_model,
                history=history, test_loss=test_loss, test_acc=test_acc, predictions=predictions,
                train_images=train_images, train_labels=train_labels,
                test_images=test_images, test_labels=test_labels)


@covers(3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
def test_data_cells(tutorial):
    assert tutorial["train_images"].max() == 1.0 and tutorial["train_images"].min() == 0.0


@covers(14, 15, 16, 17)
def test_build_compile_train_evaluate(tutorial):
    history = tutorial["history"].history
    assert sorted(history) == ["accuracy", "loss"]
    assert len(history["loss"]) == EPOCHS and history["loss"][-1] < history["loss"][0]
    assert isinstance(tutorial["test_loss"], float) and isinstance(tutorial["test_acc"], float)
    assert tutorial["test_acc"] > 0.6  # 10 classes: chance is 0.1


@covers(18, 19, 20, 21, 22)
def test_probability_model_and_predictions(tutorial):
    predictions, model = tutorial["predictions"], tutorial["model"]
    # cell 20-22: the first prediction, its argmax and the true label
    assert predictions.shape == (N_TEST, 10)
    np.testing.assert_allclose(predictions[0].sum(), 1.0, rtol=1e-5)
    assert 0 <= np.argmax(predictions[0]) < 10
    assert tutorial["test_labels"][0] == 9
    # the probability model shares the trained layers: its softmax is that of the logits
    logits = model.predict(tutorial["test_images"], verbose=0)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)
    assert (predictions.argmax(1) == tutorial["test_labels"]).mean() == pytest.approx(tutorial["test_acc"])


def plot_image(plt, i, predictions_array, true_label, img):
    """Cell 23's first helper: the image, captioned with the prediction (blue when right)."""
    true_label, img = true_label[i], img[i]
    plt.grid(False)
    plt.xticks([])
    plt.yticks([])
    plt.imshow(img, cmap=plt.cm.binary)
    predicted_label = np.argmax(predictions_array)
    color = 'blue' if predicted_label == true_label else 'red'
    plt.xlabel("{} {:2.0f}% ({})".format(CLASS_NAMES[predicted_label], 100 * np.max(predictions_array),
                                         CLASS_NAMES[true_label]), color=color)


def plot_value_array(plt, i, predictions_array, true_label):
    """Cell 23's second helper: the ten probabilities as bars, predicted red, true blue."""
    true_label = true_label[i]
    plt.grid(False)
    plt.xticks(range(10))
    plt.yticks([])
    thisplot = plt.bar(range(10), predictions_array, color="#777777")
    plt.ylim([0, 1])
    predicted_label = np.argmax(predictions_array)
    thisplot[predicted_label].set_color('red')
    thisplot[true_label].set_color('blue')
    return thisplot


@covers(23, 24, 25, 26)
def test_prediction_figures(tutorial):
    plt, predictions = tutorial["plt"], tutorial["predictions"]
    test_labels, test_images = tutorial["test_labels"], tutorial["test_images"]
    for i in (0, 12):  # cells 24 and 25
        plt.figure(figsize=(6, 3))
        plt.subplot(1, 2, 1)
        plot_image(plt, i, predictions[i], test_labels, test_images)
        plt.subplot(1, 2, 2)
        bars = plot_value_array(plt, i, predictions[i], test_labels)
        plt.show()
        assert len(bars) == 10
    # cell 26: a grid of 15 images and their bars
    num_rows, num_cols = 5, 3
    plt.figure(figsize=(2 * 2 * num_cols, 2 * num_rows))
    for i in range(num_rows * num_cols):
        plt.subplot(num_rows, 2 * num_cols, 2 * i + 1)
        plot_image(plt, i, predictions[i], test_labels, test_images)
        plt.subplot(num_rows, 2 * num_cols, 2 * i + 2)
        plot_value_array(plt, i, predictions[i], test_labels)
    plt.tight_layout()
    plt.show()


@covers(27, 28, 29, 30, 31)
def test_single_image(tutorial):
    plt, test_labels = tutorial["plt"], tutorial["test_labels"]
    img = tutorial["test_images"][1]                    # cell 27
    assert img.shape == (28, 28)
    img = (np.expand_dims(img, 0))                      # cell 28
    assert img.shape == (1, 28, 28)
    predictions_single = tutorial["probability_model"].predict(img)   # cell 29
    assert predictions_single.shape == (1, 10)
    np.testing.assert_allclose(predictions_single[0], tutorial["predictions"][1], rtol=1e-5, atol=1e-7)
    plot_value_array(plt, 1, predictions_single[0], test_labels)       # cell 30
    _ = plt.xticks(range(10), CLASS_NAMES, rotation=45)
    plt.show()
    assert np.argmax(predictions_single[0]) == np.argmax(tutorial["predictions"][1])   # cell 31
