"""The TensorFlow tutorial "Save and load models", cell by cell on npnet: weight checkpoints
during training (one file, then one per 5 epochs named by epoch), save_weights/load_weights,
the whole model as ``.keras`` and as legacy HDF5 ``.h5``.

The tutorial loads MNIST; npnet ships Fashion-MNIST (same shapes), used here with the
tutorial's own 1,000-image slices. Every test runs in an empty working directory.
"""

import math
import os
import sys

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/keras/save_and_load.ipynb"
TOTAL_CELLS = 24
NOT_RUN = {1: "licence text (comments only)", 2: "licence text (comments only)",
           3: "!pip install pyyaml h5py (h5py is one of npnet's dependencies)",
           20: "!ls of the SavedModel directory (there is none: see cell 19)",
           21: "tf.saved_model.load: TensorFlow's SavedModel format"}
ADAPTED = {5: "Fashion-MNIST for MNIST (same shapes, the tutorial's 1,000-image slices)",
           7: "epochs=3 instead of 10", 11: "epochs=10 instead of 50",
           16: "epochs=2 instead of 5", 22: "epochs=2 instead of 5"}
DIFFERS = {19: "tf.saved_model.save -> the error names model.save('.keras') and model.export; "
               "the test exports ONNX instead"}


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def data():
    import npnet
    # cell 5, with Fashion-MNIST where the tutorial loads MNIST
    (train_images, train_labels), (test_images, test_labels) = npnet.datasets.fashion_mnist.load_data()
    train_labels = train_labels[:1000]
    test_labels = test_labels[:1000]
    train_images = train_images[:1000].reshape(-1, 28 * 28) / 255.0
    test_images = test_images[:1000].reshape(-1, 28 * 28) / 255.0
    return train_images, train_labels, test_images, test_labels


def create_model():
    """Cell 6's function: Dense(512) + Dropout + logits, with a metric object."""
    import npnet
    model = npnet.Sequential([
        npnet.layers.Dense(512, activation='relu', input_shape=(784,)),
        npnet.layers.Dropout(0.2),
        npnet.layers.Dense(10),
    ])
    model.compile(optimizer='adam',
                  loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[npnet.metrics.SparseCategoricalAccuracy()])
    return model


@covers(4, 5, 6)
def test_create_model_and_summary(data, capsys):
    import npnet                                                  # cell 4
    print(npnet.__version__)
    model = create_model()                                        # cell 6
    model.summary()
    printed = capsys.readouterr().out
    assert "Total params: 407,050" in printed and "Trainable params: 407,050" in printed
    assert len(data[0]) == 1000 and data[0].shape == (1000, 784)


@covers(7, 8, 9, 10)
def test_checkpoint_callback_then_restore(data, in_tmp_dir):
    import npnet
    train_images, train_labels, test_images, test_labels = data
    checkpoint_path = "training_1/cp.weights.h5"                  # cell 7
    checkpoint_dir = os.path.dirname(checkpoint_path)
    cp_callback = npnet.callbacks.ModelCheckpoint(filepath=checkpoint_path,
                                                  save_weights_only=True,
                                                  verbose=1)
    model = create_model()
    history = model.fit(train_images, train_labels, epochs=3,
                        validation_data=(test_images, test_labels), callbacks=[cp_callback])
    assert sorted(history.history) == ["loss", "sparse_categorical_accuracy",
                                       "val_loss", "val_sparse_categorical_accuracy"]
    assert os.listdir(checkpoint_dir) == ["cp.weights.h5"]       # cell 8
    model = create_model()                                        # cell 9
    loss, acc = model.evaluate(test_images, test_labels, verbose=2)
    print("Untrained model, accuracy: {:5.2f}%".format(100 * acc))
    model.load_weights(checkpoint_path)                           # cell 10
    loss, restored_acc = model.evaluate(test_images, test_labels, verbose=2)
    print("Restored model, accuracy: {:5.2f}%".format(100 * restored_acc))
    assert restored_acc == pytest.approx(history.history["val_sparse_categorical_accuracy"][-1])
    assert restored_acc > acc + 0.3


@covers(11, 12, 13, 14, 15)
def test_checkpoint_every_five_epochs_and_latest(data, in_tmp_dir):
    import npnet
    train_images, train_labels, test_images, test_labels = data
    checkpoint_path = "training_2/cp-{epoch:04d}.weights.h5"      # cell 11
    checkpoint_dir = os.path.dirname(checkpoint_path)
    os.mkdir(checkpoint_dir)
    batch_size = 32
    n_batches = len(train_images) / batch_size
    n_batches = math.ceil(n_batches)
    cp_callback = npnet.callbacks.ModelCheckpoint(
        filepath=checkpoint_path, verbose=1, save_weights_only=True, save_freq=5 * n_batches)
    model = create_model()
    model.save_weights(checkpoint_path.format(epoch=0))
    model.fit(train_images, train_labels, epochs=10, batch_size=batch_size, callbacks=[cp_callback],
              validation_data=(test_images, test_labels), verbose=0)
    assert sorted(os.listdir(checkpoint_dir)) == [               # cell 12
        "cp-0000.weights.h5", "cp-0005.weights.h5", "cp-0010.weights.h5"]

    def load_latest_checkpoint(checkpoint_dir):                   # cell 13
        latest = max(os.listdir(checkpoint_dir), key=lambda f: int(f.split('-')[1].split('.')[0]))
        return os.path.join(checkpoint_dir, latest)
    latest = load_latest_checkpoint(checkpoint_dir)
    assert latest == os.path.join("training_2", "cp-0010.weights.h5")
    trained = model
    model = create_model()                                        # cell 14
    model.load_weights(latest)
    loss, acc = model.evaluate(test_images, test_labels, verbose=2)
    for mine, theirs in zip(model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    os.mkdir('./checkpoints')                                     # cell 15
    model.save_weights('./checkpoints/my_checkpoint.weights.h5')
    model = create_model()
    model.load_weights('./checkpoints/my_checkpoint.weights.h5')
    loss, acc_again = model.evaluate(test_images, test_labels, verbose=2)
    assert acc_again == pytest.approx(acc)


@covers(16, 17, 18)
def test_whole_model_as_keras_file(data, in_tmp_dir, capsys):
    import npnet
    train_images, train_labels, test_images, test_labels = data
    model = create_model()                                        # cell 16
    model.fit(train_images, train_labels, epochs=2)
    model.save('my_model.keras')
    new_model = npnet.models.load_model('my_model.keras')        # cell 17
    capsys.readouterr()
    new_model.summary()
    assert "Total params: 407,050" in capsys.readouterr().out
    loss, acc = new_model.evaluate(test_images, test_labels, verbose=2)   # cell 18
    print('Restored model, accuracy: {:5.2f}%'.format(100 * acc))
    assert new_model.predict(test_images).shape == (1000, 10)
    assert acc == pytest.approx(model.evaluate(test_images, test_labels, verbose=0)[1])
    # the optimizer comes back too: one more step is the same step on both
    assert new_model.optimizer.iterations == model.optimizer.iterations


@covers(19)
def test_saved_model_says_what_to_write_instead(data, in_tmp_dir):
    import npnet
    train_images, train_labels, test_images, _ = data
    model = create_model()                                        # cell 19
    model.fit(train_images, train_labels, epochs=1, verbose=0)
    os.makedirs("saved_model", exist_ok=True)
    with pytest.raises(AttributeError, match=r"model\.save\('my_model\.keras'\).*model\.export"):
        npnet.saved_model.save(model, 'saved_model/my_model')
    pytest.importorskip("onnxruntime")
    model.export('saved_model/my_model.onnx')
    assert os.path.getsize('saved_model/my_model.onnx') > 4 * 407_050


@covers(22, 23, 24)
def test_whole_model_as_legacy_h5(data, in_tmp_dir, capsys):
    import h5py
    import npnet
    train_images, train_labels, test_images, test_labels = data
    model = create_model()                                        # cell 22
    model.fit(train_images, train_labels, epochs=2)
    model.save('my_model.h5')
    with h5py.File('my_model.h5', 'r') as handle:                 # an HDF5 file, as the name says
        assert "model_weights" in handle
    new_model = npnet.models.load_model('my_model.h5')           # cell 23
    new_model.summary()
    loss, acc = new_model.evaluate(test_images, test_labels, verbose=2)   # cell 24
    print('Restored model, accuracy: {:5.2f}%'.format(100 * acc))
    assert acc == pytest.approx(model.evaluate(test_images, test_labels, verbose=0)[1])
