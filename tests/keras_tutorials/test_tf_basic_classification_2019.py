"""The 2019 TensorFlow tutorial "Train your first neural network: basic classification"
(``basic_classification.ipynb``, before it became ``classification.ipynb``), cell by cell on
npnet: ``keras`` is npnet, the last layer is a softmax and the loss is the string.
"""

import sys

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/keras/basic_classification.ipynb (2019)"
TOTAL_CELLS = 31
NOT_RUN = {1: "licence text (comments only)", 2: "licence text (comments only)",
           3: "Colab's %tensorflow_version switch (imports TensorFlow itself)"}
ADAPTED = {4: "tf.enable_v2_behavior() left out: a TensorFlow 1 switch",
           17: "epochs=2 on 2,000 training images instead of 10 on 60,000"}
N_TRAIN, N_TEST, EPOCHS = 2000, 500, 2
CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def session():
    # cell 4: "from tensorflow import keras" becomes npnet under the name the tutorial uses
    import npnet as keras
    import matplotlib.pyplot as plt
    # cell 5
    fashion_mnist = keras.datasets.fashion_mnist
    (train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
    return dict(keras=keras, plt=plt, train_images=train_images[:N_TRAIN], train_labels=train_labels[:N_TRAIN],
                test_images=test_images[:N_TEST], test_labels=test_labels[:N_TEST])


@covers(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
def test_explore_and_preprocess(session):
    plt = session["plt"]
    assert session["train_images"].shape == (N_TRAIN, 28, 28)           # cell 7
    assert len(session["train_labels"]) == N_TRAIN                        # cell 8
    assert session["train_labels"].dtype == np.uint8                      # cell 9
    assert session["test_images"].shape == (N_TEST, 28, 28)             # cell 10
    assert len(session["test_labels"]) == N_TEST                          # cell 11
    plt.figure()                                                          # cell 12
    plt.imshow(session["train_images"][0])
    plt.colorbar()
    plt.grid(False)
    plt.show()
    session["train_images"] = session["train_images"] / 255.0            # cell 13
    session["test_images"] = session["test_images"] / 255.0
    plt.figure(figsize=(10, 10))                                          # cell 14
    for i in range(25):
        plt.subplot(5, 5, i + 1)
        plt.xticks([])
        plt.yticks([])
        plt.grid(False)
        plt.imshow(session["train_images"][i], cmap=plt.cm.binary)
        plt.xlabel(CLASS_NAMES[session["train_labels"][i]])
    plt.show()


@covers(15, 16, 17, 18, 19, 20, 21, 22)
def test_model_train_evaluate_predict(session):
    keras = session["keras"]
    model = keras.Sequential([                                            # cell 15
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(128, activation='relu'),
        keras.layers.Dense(10, activation='softmax'),
    ])
    model.compile(optimizer='adam',                                       # cell 16
                  loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    history = model.fit(session["train_images"], session["train_labels"], epochs=EPOCHS)   # cell 17
    assert len(history.history["accuracy"]) == EPOCHS
    test_loss, test_acc = model.evaluate(session["test_images"], session["test_labels"])  # cell 18
    print('\nTest accuracy:', test_acc)
    assert test_acc > 0.6
    predictions = model.predict(session["test_images"])                  # cell 19
    np.testing.assert_allclose(predictions[0].sum(), 1.0, rtol=1e-5)     # cell 20
    assert np.argmax(predictions[0]) in range(10)                         # cell 21
    assert session["test_labels"][0] == 9                                 # cell 22
    session.update(model=model, predictions=predictions)


def plot_image(plt, i, predictions_array, true_label, img):
    """Cell 23's first helper (2019 form: it also re-binds the predictions)."""
    predictions_array, true_label, img = predictions_array, true_label[i], img[i]
    plt.grid(False)
    plt.xticks([])
    plt.yticks([])
    plt.imshow(img, cmap=plt.cm.binary)
    predicted_label = np.argmax(predictions_array)
    color = 'blue' if predicted_label == true_label else 'red'
    plt.xlabel("{} {:2.0f}% ({})".format(CLASS_NAMES[predicted_label], 100 * np.max(predictions_array),
                                         CLASS_NAMES[true_label]), color=color)


def plot_value_array(plt, i, predictions_array, true_label):
    """Cell 23's second helper."""
    predictions_array, true_label = predictions_array, true_label[i]
    plt.grid(False)
    plt.xticks(range(10))
    plt.yticks([])
    thisplot = plt.bar(range(10), predictions_array, color="#777777")
    plt.ylim([0, 1])
    predicted_label = np.argmax(predictions_array)
    thisplot[predicted_label].set_color('red')
    thisplot[true_label].set_color('blue')


@covers(23, 24, 25, 26, 27, 28, 29, 30, 31)
def test_figures_and_single_image(session):
    plt, predictions = session["plt"], session["predictions"]
    labels, images = session["test_labels"], session["test_images"]
    for i in (0, 12):                                                     # cells 24, 25
        plt.figure(figsize=(6, 3))
        plt.subplot(1, 2, 1)
        plot_image(plt, i, predictions[i], labels, images)
        plt.subplot(1, 2, 2)
        plot_value_array(plt, i, predictions[i], labels)
        plt.show()
    num_rows, num_cols = 5, 3                                             # cell 26
    plt.figure(figsize=(2 * 2 * num_cols, 2 * num_rows))
    for i in range(num_rows * num_cols):
        plt.subplot(num_rows, 2 * num_cols, 2 * i + 1)
        plot_image(plt, i, predictions[i], labels, images)
        plt.subplot(num_rows, 2 * num_cols, 2 * i + 2)
        plot_value_array(plt, i, predictions[i], labels)
    plt.show()
    img = images[1]                                                       # cell 27
    img = (np.expand_dims(img, 0))                                        # cell 28
    assert img.shape == (1, 28, 28)
    predictions_single = session["model"].predict(img)                    # cell 29
    print(predictions_single)
    plot_value_array(plt, 1, predictions_single[0], labels)               # cell 30
    _ = plt.xticks(range(10), CLASS_NAMES, rotation=45)
    assert np.argmax(predictions_single[0]) == np.argmax(predictions[1])  # cell 31
