"""The Keras example ``examples/mnist_mlp.py`` (Keras 2 form: ``Sequential()`` grown with
``add``, ``input_shape`` on the first Dense, two Dropout layers, one-hot targets from
``to_categorical``, RMSprop, validation on the test set), block by block on npnet.

The script loads MNIST; npnet ships Fashion-MNIST (same shapes and dtypes), used here on
4,000/1,000 images for 2 epochs instead of 60,000/10,000 for 20.
"""

import sys

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "keras-team/keras examples/mnist_mlp.py (Keras 2)"
TOTAL_CELLS = 10  # blocks of the script: imports, settings, data, reshape+scale, to_categorical,
                  # model, summary, compile, fit, evaluate+print
NOT_RUN = {}
ADAPTED = {3: "Fashion-MNIST for MNIST, first 4,000 / 1,000 images", 2: "epochs = 2 instead of 20"}
N_TRAIN, N_TEST = 4000, 1000


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@covers(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
def test_mnist_mlp(capsys):
    # block 1: the imports, keras -> npnet (the script also seeds NumPy's global generator;
    # npnet draws from its own, seeded by npnet.utils.set_random_seed, so this seeds nothing here)
    np.random.seed(1337)
    import npnet
    from npnet.datasets import fashion_mnist
    from npnet.models import Sequential
    from npnet.layers import Dense, Dropout
    from npnet.optimizers import RMSprop

    batch_size, num_classes, epochs = 128, 10, 2                 # block 2
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()   # block 3
    x_train, y_train, x_test, y_test = x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST]
    x_train = x_train.reshape(N_TRAIN, 784)                       # block 4
    x_test = x_test.reshape(N_TEST, 784)
    x_train = x_train.astype('float32')
    x_test = x_test.astype('float32')
    x_train /= 255
    x_test /= 255
    print(x_train.shape[0], 'train samples')
    print(x_test.shape[0], 'test samples')
    y_train = npnet.utils.to_categorical(y_train, num_classes)   # block 5
    y_test = npnet.utils.to_categorical(y_test, num_classes)
    assert y_train.shape == (N_TRAIN, 10) and (y_train.sum(axis=1) == 1).all()

    model = Sequential()                                          # block 6
    model.add(Dense(512, activation='relu', input_shape=(784,)))
    model.add(Dropout(0.2))
    model.add(Dense(512, activation='relu'))
    model.add(Dropout(0.2))
    model.add(Dense(num_classes, activation='softmax'))
    capsys.readouterr()
    model.summary()                                               # block 7
    printed = capsys.readouterr().out
    assert "Total params: 669,706" in printed
    assert printed.count("(Dropout)") == 2 and printed.count("(Dense)") == 3

    model.compile(loss='categorical_crossentropy',                # block 8
                  optimizer=RMSprop(),
                  metrics=['accuracy'])
    history = model.fit(x_train, y_train,                         # block 9
                        batch_size=batch_size, epochs=epochs,
                        verbose=1, validation_data=(x_test, y_test))
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    score = model.evaluate(x_test, y_test, verbose=0)             # block 10
    print('Test loss:', score[0])
    print('Test accuracy:', score[1])
    assert score[1] == pytest.approx(history.history["val_accuracy"][-1])
    assert score[1] > 0.5  # 10 classes: chance is 0.1; 2 epochs of RMSprop reach 0.6-0.75
    np.testing.assert_allclose(score[0], history.history["val_loss"][-1], rtol=1e-5)
