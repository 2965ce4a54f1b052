"""The TensorFlow tutorial "Overfit and underfit", cell by cell on npnet: binary classifiers
(Dense(1) logits, BinaryCrossentropy(from_logits=True)) of growing size trained from an
endless stream of batches with an InverseTimeDecay schedule, a cross-entropy metric object,
EarlyStopping on it, then L2 weight penalties, Dropout and both.

The tutorial streams the 11-million-row HIGGS CSV through tf.data; here synthetic arrays of
the same shape (28 features, a 0/1 label that depends on them) stand in, streamed by a
Python generator (training) and an npnet.utils.PyDataset (validation), on fewer rows and
epochs. tensorflow_docs' EpochDots and HistoryPlotter become a LambdaCallback and plain
matplotlib; TensorBoard becomes CSVLogger. Tests run in the notebook's order.
"""

import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/keras/overfit_and_underfit.ipynb"
TOTAL_CELLS = 42
NOT_RUN = {1: "licence text (comments only)", 2: "licence text (comments only)",
           4: "pip install of tensorflow_docs (its EpochDots/HistoryPlotter: see cells 19, 24)",
           32: "%tensorboard notebook magic", 42: "%tensorboard notebook magic"}
ADAPTED = {9: "synthetic (n, 28) float32 features and 0/1 labels for the HIGGS CSV",
           10: "pack_row's job done by the generator", 11: "as cell 10",
           12: "a histogram of the synthetic features",
           13: "N_VALIDATION=200, N_TRAIN=2000 instead of 1e3, 1e4",
           14: "the training and validation slices of the arrays",
           16: "an endless generator of shuffled batches and a PyDataset for validation",
           19: "EpochDots -> LambdaCallback printing dots, TensorBoard -> CSVLogger",
           20: "expand_dims on NumPy batches; max_epochs=2 instead of 10000",
           24: "tensorflow_docs' HistoryPlotter -> plt.plot of the histories", 31: "as cell 24",
           33: "copies the CSV log instead of the TensorBoard directory",
           36: "as cell 24", 39: "as cell 24", 41: "as cell 24"}
DIFFERS = {7: "get_file: the error says to download it yourself (the test makes synthetic data)",
           37: "tf.add_n -> sum(model.losses), as the error says"}

FEATURES = 28
MAX_EPOCHS = 2


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def nb(tmp_path_factory):
    return {"tmp": tmp_path_factory.mktemp("overfit")}


@covers(3, 5, 6, 7, 8, 9, 10, 11, 12)
def test_setup_and_data(nb):
    import npnet
    from npnet import layers, regularizers                       # cell 3
    import matplotlib.pyplot as plt                               # cell 5
    logdir = pathlib.Path(tempfile.mkdtemp(dir=nb["tmp"])) / "tensorboard_logs"   # cell 6
    shutil.rmtree(logdir, ignore_errors=True)
    with pytest.raises(NotImplementedError, match="urlretrieve"):  # cell 7
        npnet.utils.get_file('HIGGS.csv.gz', 'http://mlphysics.ics.uci.edu/data/higgs/HIGGS.csv.gz')
    assert FEATURES == 28                                         # cell 8
    # cells 9-11: rows of (label, 28 features), packed into (features, label)
    rng = np.random.default_rng(0)
    features_all = rng.normal(size=(2200, FEATURES)).astype(np.float32)
    direction = rng.normal(size=FEATURES).astype(np.float32)
    labels_all = (features_all @ direction + rng.normal(scale=2.0, size=2200) > 0).astype(np.float32)
    features = features_all[:1000]                                # cell 12: one batch of 1000
    print(features[0])
    plt.hist(features.flatten(), bins=101)
    nb.update(npnet=npnet, layers=layers, regularizers=regularizers, plt=plt, logdir=logdir,
              features_all=features_all, labels_all=labels_all, features=features)


@covers(13, 14, 15, 16, 17, 18)
def test_datasets_and_schedule(nb):
    npnet, plt = nb["npnet"], nb["plt"]
    N_VALIDATION, N_TRAIN, BATCH_SIZE = 200, 2000, 500            # cell 13
    STEPS_PER_EPOCH = N_TRAIN // BATCH_SIZE
    x, y = nb["features_all"], nb["labels_all"]                   # cell 14
    validate = (x[:N_VALIDATION], y[:N_VALIDATION])
    train = (x[N_VALIDATION:N_VALIDATION + N_TRAIN], y[N_VALIDATION:N_VALIDATION + N_TRAIN])
    assert train[0].shape == (N_TRAIN, FEATURES)                  # cell 15

    class Batches(npnet.utils.PyDataset):                          # cell 16: validation, batched
        def __init__(self, features, labels, batch_size):
            super().__init__()
            self.features, self.labels, self.batch_size = features, labels, batch_size

        def __len__(self):
            return -(-len(self.features) // self.batch_size)

        def __getitem__(self, index):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            return self.features[rows], self.labels[rows]

    def shuffled_forever(features, labels, batch_size, seed=0):   # cell 16: shuffle().repeat().batch()
        order_rng = np.random.default_rng(seed)
        while True:
            order = order_rng.permutation(len(features))
            for start in range(0, len(order) - batch_size + 1, batch_size):
                rows = order[start:start + batch_size]
                yield features[rows], labels[rows]

    lr_schedule = npnet.optimizers.schedules.InverseTimeDecay(    # cell 17
        0.001, decay_steps=STEPS_PER_EPOCH * 1000, decay_rate=1, staircase=False)

    def get_optimizer():
        return npnet.optimizers.Adam(lr_schedule)

    step = np.linspace(0, 100000)                                 # cell 18
    lr = lr_schedule(step)
    plt.figure(figsize=(8, 6))
    plt.plot(step / STEPS_PER_EPOCH, lr)
    plt.ylim([0, max(plt.ylim())])
    assert lr.shape == step.shape and lr[0] == pytest.approx(0.001) and np.all(np.diff(lr) < 0)
    nb.update(STEPS_PER_EPOCH=STEPS_PER_EPOCH, BATCH_SIZE=BATCH_SIZE, train=train,
              validate_ds=Batches(*validate, BATCH_SIZE), shuffled_forever=shuffled_forever,
              get_optimizer=get_optimizer)


def compile_and_fit(nb, model, name, optimizer=None, max_epochs=MAX_EPOCHS):
    """Cells 19-20: the callbacks and the compile-and-fit function every model goes through."""
    npnet = nb["npnet"]

    def get_callbacks(name):                                      # cell 19
        csv_path = nb["logdir"] / f"{name}.csv"
        os.makedirs(csv_path.parent, exist_ok=True)
        return [
            npnet.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print('.', end='')),
            npnet.callbacks.EarlyStopping(monitor='val_binary_crossentropy', patience=200),
            npnet.callbacks.CSVLogger(str(csv_path)),
        ]

    if optimizer is None:                                         # cell 20
        optimizer = nb["get_optimizer"]()
    model.compile(optimizer=optimizer,
                  loss=npnet.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[npnet.metrics.BinaryCrossentropy(from_logits=True, name='binary_crossentropy'),
                           'accuracy'])
    model.summary()
    train_ds = ((x, np.expand_dims(y, axis=-1)) for x, y in nb["shuffled_forever"](*nb["train"], nb["BATCH_SIZE"]))
    history = model.fit(
        train_ds,
        steps_per_epoch=nb["STEPS_PER_EPOCH"],
        epochs=max_epochs,
        validation_data=nb["validate_ds"],
        callbacks=get_callbacks(name),
        verbose=0)
    return history


def check_history(history, epochs=MAX_EPOCHS):
    assert sorted(history.history) == ["accuracy", "binary_crossentropy", "loss", "val_accuracy",
                                       "val_binary_crossentropy", "val_loss"]
    assert len(history.history["loss"]) == epochs
    assert history.params["steps"] == 4 and history.params["epochs"] == epochs


def plot_histories(plt, histories, metric="binary_crossentropy"):
    """What tensorflow_docs' HistoryPlotter draws: training (solid) and validation (dashed)."""
    plt.figure()
    for name, history in histories.items():
        line, = plt.plot(history.epoch, history.history[metric], label=f"{name} train")
        plt.plot(history.epoch, history.history["val_" + metric], "--", color=line.get_color(),
                 label=f"{name} val")
    plt.legend()


@covers(19, 20, 21, 22, 23, 24)
def test_tiny_model(nb, capsys):
    layers = nb["layers"]
    tiny_model = nb["npnet"].Sequential([                         # cell 21
        layers.Dense(16, activation='elu', input_shape=(FEATURES,)),
        layers.Dense(1),
    ])
    size_histories = {}                                           # cell 22
    size_histories['Tiny'] = compile_and_fit(nb, tiny_model, 'sizes/Tiny')   # cell 23
    printed = capsys.readouterr().out
    assert "Total params: 481" in printed and printed.rstrip().endswith("..")
    check_history(size_histories['Tiny'])
    logged = (nb["logdir"] / "sizes/Tiny.csv").read_text().splitlines()
    assert logged[0].split(",") == ["epoch", "accuracy", "binary_crossentropy", "loss", "val_accuracy",
                                    "val_binary_crossentropy", "val_loss"]
    # without penalties the loss is the cross-entropy metric (the same batches, the same weights)
    h = size_histories['Tiny'].history
    np.testing.assert_allclose(h["val_loss"], h["val_binary_crossentropy"], rtol=1e-5)
    plot_histories(nb["plt"], size_histories)                     # cell 24
    nb["plt"].ylim([0.5, 0.7])
    nb["size_histories"] = size_histories


@covers(25, 26, 27, 28, 29, 30, 31)
def test_small_medium_large(nb):
    layers, Sequential, size_histories = nb["layers"], nb["npnet"].Sequential, nb["size_histories"]
    small_model = Sequential([                                    # cell 25
        layers.Dense(16, activation='elu', input_shape=(FEATURES,)),
        layers.Dense(16, activation='elu'),
        layers.Dense(1),
    ])
    size_histories['Small'] = compile_and_fit(nb, small_model, 'sizes/Small')   # cell 26
    medium_model = Sequential([                                   # cell 27
        layers.Dense(64, activation='elu', input_shape=(FEATURES,)),
        layers.Dense(64, activation='elu'),
        layers.Dense(64, activation='elu'),
        layers.Dense(1),
    ])
    size_histories['Medium'] = compile_and_fit(nb, medium_model, "sizes/Medium")   # cell 28
    large_model = Sequential([                                    # cell 29
        layers.Dense(512, activation='elu', input_shape=(FEATURES,)),
        layers.Dense(512, activation='elu'),
        layers.Dense(512, activation='elu'),
        layers.Dense(512, activation='elu'),
        layers.Dense(1),
    ])
    size_histories['large'] = compile_and_fit(nb, large_model, "sizes/large")     # cell 30
    for history in size_histories.values():
        check_history(history)
    assert large_model.count_params() == 28 * 512 + 512 + 3 * (512 * 512 + 512) + 513
    plot_histories(nb["plt"], size_histories)                     # cell 31
    a = nb["plt"].xscale('log')
    nb["plt"].xlabel("Epochs [Log Scale]")


@covers(33, 34, 35, 36, 37)
def test_weight_regularization(nb):
    npnet, layers, regularizers = nb["npnet"], nb["layers"], nb["regularizers"]
    logdir = nb["logdir"]                                         # cell 33
    os.makedirs(logdir / 'regularizers', exist_ok=True)
    shutil.copy(logdir / 'sizes/Tiny.csv', logdir / 'regularizers/Tiny.csv')
    regularizer_histories = {}                                    # cell 34
    regularizer_histories['Tiny'] = nb["size_histories"]['Tiny']
    l2_model = npnet.Sequential([                                 # cell 35
        layers.Dense(512, activation='elu', kernel_regularizer=regularizers.l2(0.001), input_shape=(FEATURES,)),
        layers.Dense(512, activation='elu', kernel_regularizer=regularizers.l2(0.001)),
        layers.Dense(512, activation='elu', kernel_regularizer=regularizers.l2(0.001)),
        layers.Dense(512, activation='elu', kernel_regularizer=regularizers.l2(0.001)),
        layers.Dense(1),
    ])
    regularizer_histories['l2'] = compile_and_fit(nb, l2_model, "regularizers/l2")
    check_history(regularizer_histories['l2'])
    plot_histories(nb["plt"], regularizer_histories)              # cell 36
    result = l2_model(nb["features"])                             # cell 37
    assert result.shape == (1000, 1)
    with pytest.raises(AttributeError, match=r"sum\(model\.losses\)"):
        npnet.add_n(l2_model.losses)
    regularization_loss = sum(l2_model.losses)
    assert len(l2_model.losses) == 4
    expected = sum(0.001 * float(np.sum(layer.get_weights()[0] ** 2)) for layer in l2_model.layers[:4])
    assert float(regularization_loss) == pytest.approx(expected, rel=1e-5)
    # the penalty is part of the training loss, not of the cross-entropy metric
    h = regularizer_histories['l2'].history
    assert all(loss > metric for loss, metric in zip(h["val_loss"], h["val_binary_crossentropy"]))
    nb["regularizer_histories"] = regularizer_histories


@covers(38, 39, 40, 41)
def test_dropout_and_combined(nb):
    npnet, layers, regularizers = nb["npnet"], nb["layers"], nb["regularizers"]
    regularizer_histories = nb["regularizer_histories"]
    dropout_model = npnet.Sequential([                            # cell 38
        layers.Dense(512, activation='elu', input_shape=(FEATURES,)),
        layers.Dropout(0.5),
        layers.Dense(512, activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(512, activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(512, activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(1),
    ])
    regularizer_histories['dropout'] = compile_and_fit(nb, dropout_model, "regularizers/dropout")
    plot_histories(nb["plt"], regularizer_histories)              # cell 39
    combined_model = npnet.Sequential([                           # cell 40
        layers.Dense(512, kernel_regularizer=regularizers.l2(0.0001), activation='elu', input_shape=(FEATURES,)),
        layers.Dropout(0.5),
        layers.Dense(512, kernel_regularizer=regularizers.l2(0.0001), activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(512, kernel_regularizer=regularizers.l2(0.0001), activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(512, kernel_regularizer=regularizers.l2(0.0001), activation='elu'),
        layers.Dropout(0.5),
        layers.Dense(1),
    ])
    regularizer_histories['combined'] = compile_and_fit(nb, combined_model, "regularizers/combined")
    for history in regularizer_histories.values():
        check_history(history)
    plot_histories(nb["plt"], regularizer_histories)              # cell 41
    nb["plt"].ylim([0.5, 0.7])
