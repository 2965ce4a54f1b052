"""The keras.io guide "Training & evaluation with the built-in methods" (Keras 3 version,
``guides/training_with_built_in_methods.py``), its Dense parts block by block on npnet: the
functional model, compile with objects and strings, custom losses and metrics, validation
split, streamed data (tf.data -> generators, PyDataset, a PyTorch DataLoader), class and
sample weights, callbacks, checkpoints and learning-rate schedules.

"Blocks" are the guide's code blocks between its text blocks, numbered from 1. The guide
loads MNIST; Fashion-MNIST stands in (3,000 train / 500 validation / 500 test images).
"""

import os
import sys

import numpy as np
import pytest

import npnet
from npnet import layers
from tutorial_cells import check_accounting, covers

TUTORIAL = "keras-team/keras-io guides/training_with_built_in_methods.py (Keras 3)"
TOTAL_CELLS = 48
_MULTI = "multi-input/multi-output model with Conv2D/Conv1D/pooling layers: outside the Dense subset"
NOT_RUN = {14: "a custom layer calling add_loss from call(): npnet layers need a backward, and add_loss is not supported",
           15: "LogisticEndpoint: a two-input layer with add_loss", 16: "a model with a targets input, compiled without a loss",
           34: _MULTI, 35: "keras.utils.plot_model of that model", 36: _MULTI, 37: _MULTI, 38: _MULTI, 39: _MULTI,
           40: _MULTI, 41: _MULTI, 42: _MULTI}
ADAPTED = {3: "Fashion-MNIST for MNIST; 3,000/500/500 images", 18: "tf.data.Dataset -> a Python generator of batches",
           19: "as 18", 20: "as 18, validation from a PyDataset", 21: "as 20",
           33: "tf.data with sample weights -> a generator of (x, y, sample_weight) batches",
           48: "TensorBoard -> CSVLogger"}
DIFFERS = {11: "a plain function as loss: the error shows the Loss subclass with value and gradient",
           12: "CustomMSE defines call(): refused at compile; the npnet subclass defines value and gradient"}

def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def mnist():
    # block 3, Fashion-MNIST standing in for MNIST
    (x_train, y_train), (x_test, y_test) = npnet.datasets.fashion_mnist.load_data()
    x_train = x_train[:3500].reshape(3500, 784).astype("float32") / 255
    x_test = x_test[:500].reshape(500, 784).astype("float32") / 255
    y_train = y_train[:3500].astype("float32")
    y_test = y_test[:500].astype("float32")
    x_val, y_val = x_train[-500:], y_train[-500:]
    x_train, y_train = x_train[:-500], y_train[:-500]
    return x_train, y_train, x_val, y_val, x_test, y_test


def get_uncompiled_model():
    """Block 10 (and block 2): the functional model of three named Dense layers."""
    inputs = npnet.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    return npnet.Model(inputs=inputs, outputs=outputs)


def get_compiled_model():
    model = get_uncompiled_model()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    return model


def batches_of(x, y, batch_size, sample_weight=None, seed=0):
    """What ``Dataset.from_tensor_slices(...).shuffle(...).batch(...)`` yields, once."""
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        rows = order[start:start + batch_size]
        yield (x[rows], y[rows]) if sample_weight is None else (x[rows], y[rows], sample_weight[rows])


class ExamplePyDataset(npnet.utils.PyDataset):
    """Block 22: batches by index."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / float(self.batch_size)))

    def __getitem__(self, idx):
        batch_x = self.x[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch_y = self.y[idx * self.batch_size:(idx + 1) * self.batch_size]
        return batch_x, batch_y


@covers(1, 2, 3, 4, 5, 6, 7)
def test_end_to_end(mnist):
    x_train, y_train, x_val, y_val, x_test, y_test = mnist
    model = get_uncompiled_model()                                           # block 2
    model.compile(optimizer=npnet.optimizers.RMSprop(),                      # block 4
                  loss=npnet.losses.SparseCategoricalCrossentropy(),
                  metrics=[npnet.metrics.SparseCategoricalAccuracy()])
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_data=(x_val, y_val))   # block 5
    assert sorted(history.history) == ["loss", "sparse_categorical_accuracy", "val_loss",             # block 6
                                       "val_sparse_categorical_accuracy"]
    results = model.evaluate(x_test, y_test, batch_size=128)                 # block 7
    assert len(results) == 2 and results[1] > 0.5
    predictions = model.predict(x_test[:3])
    assert predictions.shape == (3, 10)
    # a functional model's layers start with its InputLayer, named after the Input, as in Keras
    assert [layer.name for layer in model.layers] == ["digits", "dense_1", "dense_2", "predictions"]


@covers(8, 9, 10)
def test_compile_with_objects_and_strings(mnist):
    model = get_uncompiled_model()
    model.compile(optimizer=npnet.optimizers.RMSprop(learning_rate=1e-3),    # block 8
                  loss=npnet.losses.SparseCategoricalCrossentropy(),
                  metrics=[npnet.metrics.SparseCategoricalAccuracy()])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",   # block 9
                  metrics=["sparse_categorical_accuracy"])
    assert get_compiled_model().metrics_names == ["loss", "sparse_categorical_accuracy"]   # block 10


@covers(11, 12)
def test_custom_losses(mnist):
    x_train, y_train = mnist[0], mnist[1]

    def custom_mean_squared_error(y_true, y_pred):                           # block 11
        return np.mean(np.square(y_true - y_pred), axis=-1)
    model = get_uncompiled_model()
    with pytest.raises(TypeError, match=r"(?s)no automatic differentiation.*def gradient"):
        model.compile(optimizer=npnet.optimizers.Adam(), loss=custom_mean_squared_error)
    with pytest.raises(AttributeError, match="to_categorical"):
        npnet.one_hot(y_train, depth=10)
    y_train_one_hot = npnet.utils.to_categorical(y_train, num_classes=10)

    class CustomMSE(npnet.losses.Loss):                                      # block 12, as written
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            mse = np.mean(np.square(y_true - y_pred), axis=-1)
            reg = np.mean(np.square(0.5 - y_pred), axis=-1)
            return mse + reg * self.regularization_factor
    with pytest.raises(TypeError, match=r"defines call\(y_true, y_pred\)"):
        model.compile(optimizer=npnet.optimizers.Adam(), loss=CustomMSE())

    class NpnetCustomMSE(npnet.losses.Loss):                                 # block 12, npnet's way
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def value(self, y_true, y_pred):
            return np.mean(np.square(y_true - y_pred)) + np.mean(np.square(0.5 - y_pred)) * self.regularization_factor

        def gradient(self, y_true, y_pred):
            return (2 * (y_pred - y_true) - 2 * (0.5 - y_pred) * self.regularization_factor) / y_pred.size
    model.compile(optimizer=npnet.optimizers.Adam(), loss=NpnetCustomMSE())
    history = model.fit(x_train, y_train_one_hot, batch_size=64, epochs=1)
    assert history.history["loss"][0] > 0
    # the gradient written by hand is the derivative of the value (central differences)
    loss, rng = NpnetCustomMSE(), np.random.default_rng(0)
    y_true, y_pred = rng.random((3, 10)), rng.random((3, 10))
    numeric = np.zeros_like(y_pred)
    for index in np.ndindex(y_pred.shape):
        step = np.zeros_like(y_pred)
        step[index] = 1e-6
        numeric[index] = (loss.value(y_true, y_pred + step) - loss.value(y_true, y_pred - step)) / 2e-6
    np.testing.assert_allclose(loss.gradient(y_true, y_pred), numeric, rtol=1e-6, atol=1e-9)


@covers(13)
def test_custom_metric(mnist):
    x_train, y_train = mnist[0], mnist[1]

    class CategoricalTruePositives(npnet.metrics.Metric):                    # block 13, NumPy for ops
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = np.reshape(np.argmax(y_pred, axis=1), (-1, 1))
            values = np.asarray(y_true).astype("int32") == y_pred.astype("int32")
            values = values.astype("float32")
            if sample_weight is not None:
                values = np.multiply(values, np.asarray(sample_weight, "float32"))
            self.true_positives.assign_add(np.sum(values))

        def result(self):
            return self.true_positives

        def reset_state(self):
            self.true_positives.assign(0.0)

    model = get_uncompiled_model()
    model.compile(optimizer=npnet.optimizers.RMSprop(learning_rate=1e-3),
                  loss=npnet.losses.SparseCategoricalCrossentropy(), metrics=[CategoricalTruePositives()])
    history = model.fit(x_train, y_train, batch_size=64, epochs=3)
    assert len(history.history["categorical_true_positives"]) == 3
    assert all(isinstance(v, float) and v > 0 for v in history.history["categorical_true_positives"])


@covers(17)
def test_validation_split(mnist):
    model = get_compiled_model()                                             # block 17
    history = model.fit(mnist[0], mnist[1], batch_size=64, validation_split=0.2, epochs=1)
    assert history.params["steps"] == 38  # 80% of 3,000 in batches of 64


@covers(18, 19, 20)
def test_streamed_datasets(mnist):
    x_train, y_train, x_val, y_val, x_test, y_test = mnist
    with pytest.raises(AttributeError, match="generator"):
        npnet.data.Dataset.from_tensor_slices((x_train, y_train))
    model = get_compiled_model()                                             # block 18
    for epoch in range(3):  # a generator is read once: one fit call per pass, as the Dataset is re-read
        model.fit(batches_of(x_train, y_train, 64, seed=epoch), epochs=1)
    result = model.evaluate(batches_of(x_test, y_test, 64))
    assert set(dict(zip(model.metrics_names, result))) == {"loss", "sparse_categorical_accuracy"}
    model = get_compiled_model()                                             # block 19

    def repeated(x, y, batch_size):
        epoch = 0
        while True:
            yield from batches_of(x, y, batch_size, seed=epoch)
            epoch += 1
    history = model.fit(repeated(x_train, y_train, 64), epochs=3, steps_per_epoch=10)
    assert history.params["steps"] == 10 and len(history.history["loss"]) == 3
    model = get_compiled_model()                                             # block 20
    history = model.fit(repeated(x_train, y_train, 64), epochs=1, steps_per_epoch=47,
                        validation_data=ExamplePyDataset(x_val, y_val, 64))
    assert "val_sparse_categorical_accuracy" in history.history


@covers(21)
def test_validation_steps(mnist):
    x_train, y_train, x_val, y_val = mnist[:4]
    model = get_compiled_model()                                             # block 21
    model.fit(batches_of(x_train, y_train, 64), epochs=1, validation_data=ExamplePyDataset(x_val, y_val, 64),
              validation_steps=10)


@covers(22, 23, 24, 25, 26)
def test_pydataset(mnist):
    x_train, y_train, x_val, y_val = mnist[:4]
    train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32)     # block 23
    val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=32)
    model = get_compiled_model()                                             # block 24
    history = model.fit(train_py_dataset, batch_size=64, validation_data=val_py_dataset, epochs=1)
    assert history.params["steps"] == len(train_py_dataset) == 94
    result = model.evaluate(val_py_dataset)                                  # block 25
    assert result[0] == pytest.approx(history.history["val_loss"][0])
    train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32, workers=4)   # block 26
    val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=32, workers=4)
    model = get_compiled_model()
    model.fit(train_py_dataset, batch_size=64, validation_data=val_py_dataset, epochs=1)


@covers(27, 28, 29)
def test_torch_dataloader(mnist):
    torch = pytest.importorskip("torch")
    x_train, y_train, x_val, y_val = mnist[:4]

    class ExampleTorchDataset(torch.utils.data.Dataset):                     # block 27
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, idx):
            return self.x[idx], self.y[idx]
    train_dataloader = torch.utils.data.DataLoader(ExampleTorchDataset(x_train, y_train), batch_size=32, shuffle=True)
    val_dataloader = torch.utils.data.DataLoader(ExampleTorchDataset(x_val, y_val), batch_size=32, shuffle=True)   # 28
    model = get_compiled_model()                                             # block 29
    history = model.fit(train_dataloader, batch_size=64, validation_data=val_dataloader, epochs=2)
    assert history.params["steps"] == 94 and len(history.history["val_loss"]) == 2
    loss, accuracy = model.evaluate(val_dataloader)
    assert accuracy > 0.5


@covers(30, 31, 32, 33)
def test_class_and_sample_weights(mnist):
    x_train, y_train = mnist[:2]
    class_weight = {i: 1.0 for i in range(10)}                               # block 30
    class_weight[5] = 2.0
    model = get_compiled_model()                                             # block 31
    model.fit(x_train, y_train, class_weight=class_weight, batch_size=64, epochs=1)
    sample_weight = np.ones(shape=(len(y_train),))                           # block 32
    sample_weight[y_train == 5] = 2.0
    model = get_compiled_model()
    model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=64, epochs=1)
    model = get_compiled_model()                                             # block 33
    model.fit(batches_of(x_train, y_train, 64, sample_weight=sample_weight), epochs=1)


@covers(43, 44)
def test_early_stopping_and_custom_callback(mnist):
    x_train, y_train = mnist[:2]

    class LossHistory(npnet.callbacks.Callback):                             # block 44
        def on_train_begin(self, logs):
            self.per_batch_losses = []

        def on_batch_end(self, batch, logs):
            self.per_batch_losses.append(logs.get("loss"))
    model = get_compiled_model()                                             # block 43
    callbacks = [npnet.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-2, patience=2, verbose=1),
                 LossHistory()]
    history = model.fit(x_train, y_train, epochs=20, batch_size=64, callbacks=callbacks, validation_split=0.2)
    assert len(history.history["loss"]) < 20  # stopped early on 2,400 images
    assert len(callbacks[1].per_batch_losses) == 38 * len(history.history["loss"])


@covers(45, 46)
def test_checkpoints(mnist, in_tmp_dir):
    x_train, y_train = mnist[:2]
    model = get_compiled_model()                                             # block 45
    callbacks = [npnet.callbacks.ModelCheckpoint(filepath="mymodel_{epoch}.keras", save_best_only=True,
                                                 monitor="val_loss", verbose=1)]
    model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks, validation_split=0.2)
    assert "mymodel_1.keras" in os.listdir(".")
    checkpoint_dir = "./ckpt"                                                # block 46
    if not os.path.exists(checkpoint_dir):
        os.makedirs(checkpoint_dir)

    def make_or_restore_model():
        checkpoints = [checkpoint_dir + "/" + name for name in os.listdir(checkpoint_dir)]
        if checkpoints:
            latest_checkpoint = max(checkpoints, key=os.path.getctime)
            print("Restoring from", latest_checkpoint)
            return npnet.models.load_model(latest_checkpoint)
        print("Creating a new model")
        return get_compiled_model()
    model = make_or_restore_model()
    callbacks = [npnet.callbacks.ModelCheckpoint(filepath=checkpoint_dir + "/model-loss={loss:.2f}.keras",
                                                 save_freq=100)]
    model.fit(x_train[:1600], y_train[:1600], epochs=1, callbacks=callbacks)   # 50 batches of 32
    model.fit(x_train[:1600], y_train[:1600], epochs=2, callbacks=callbacks)   # steps 100 and 150... saves at 100
    saved = os.listdir(checkpoint_dir)
    assert len(saved) == 1 and saved[0].startswith("model-loss=") and saved[0].endswith(".keras")
    restored = make_or_restore_model()
    assert restored.metrics_names == ["loss", "sparse_categorical_accuracy"]


@covers(47, 48)
def test_schedule_and_logger(mnist, in_tmp_dir):
    initial_learning_rate = 0.1                                              # block 47
    lr_schedule = npnet.optimizers.schedules.ExponentialDecay(
        initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True)
    optimizer = npnet.optimizers.RMSprop(learning_rate=lr_schedule)
    model = get_uncompiled_model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(mnist[0][:256], mnist[1][:256], batch_size=64, epochs=1, verbose=0)
    assert optimizer.iterations == 4
    logger = npnet.callbacks.CSVLogger("training_log.csv")                   # block 48 (TensorBoard)
    model.fit(mnist[0][:256], mnist[1][:256], batch_size=64, epochs=1, verbose=0, callbacks=[logger])
    assert open("training_log.csv").readline().strip() == "epoch,loss,val_loss"  # Keras's columns
