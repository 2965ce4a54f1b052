"""The TensorFlow tutorial "Basic regression: Predict fuel efficiency", cell by cell on npnet:
Normalization layers adapted to one feature and to all of them, a linear model and a DNN on
one feature and on all, mean absolute error with Adam, ``validation_split``, the loss curves,
predictions against the truth, then ``.keras`` saving and reloading.

The tutorial reads the Auto MPG table from a URL with pandas; here a synthetic NumPy table of
the same shape stands in (398 cars, MPG and seven columns, six missing horsepowers, an
``Origin`` code one-hot encoded into three columns), with an MPG computed from the features
plus noise. The pandas steps (``dropna``, ``get_dummies``, ``sample``, ``pop``,
``describe``) are written in NumPy on that table. Tests run in the notebook's order.
"""

import sys
import time

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/keras/regression.ipynb"
TOTAL_CELLS = 57
NOT_RUN = {1: "licence text (comments only)", 2: "licence text (comments only)",
           3: "!pip install seaborn (used only for cell 13's pair plot)",
           13: "seaborn's pairplot: seaborn is not installed here, and the figure exercises no "
               "npnet call"}
ADAPTED = {4: "no pandas/seaborn imports (the table is a NumPy array)",
           6: "a synthetic NumPy table of the Auto MPG shape for pd.read_csv of the UCI URL",
           7: "dataset.copy() and the last five rows", 8: "np.isnan(...).sum(axis=0) for isna().sum()",
           9: "rows without NaN for dropna()",
           10: "the Origin codes 1, 2, 3 named USA, Europe, Japan",
           11: "one-hot columns Europe, Japan, USA in get_dummies' (sorted) order",
           12: "a seeded permutation's first 80% for sample(frac=0.8, random_state=0), the rest for drop",
           14: "count/mean/std/min/max per column for describe().transpose()",
           15: "the MPG column split off for pop('MPG')", 16: "as cell 14, mean and std only",
           21: "the Horsepower column of the array for train_features['Horsepower']",
           25: "time.perf_counter for %%time", 26: "a dict of the history plus 'epoch' for the DataFrame",
           29: "the Horsepower column, as cell 21", 31: "as cell 21",
           37: "as cell 25", 43: "as cells 21 and 25", 47: "as cell 21", 49: "as cell 25",
           52: "the results dict printed for the DataFrame", 57: "as cell 52"}
DIFFERS = {19: "the mean is a NumPy array already: no .numpy()",
           20: "the layer's output is a NumPy array already: no .numpy()",
           30: "tf.linspace -> np.linspace, as npnet's error says", 45: "as cell 30"}

COLUMNS = ['MPG', 'Cylinders', 'Displacement', 'Horsepower', 'Weight', 'Acceleration', 'Model Year', 'Origin']
EPOCHS = 100


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def nb():
    return {}


def auto_mpg_like(n_cars=398, seed=0):
    """A table shaped like the Auto MPG data: the columns of COLUMNS, six NaN horsepowers."""
    rng = np.random.default_rng(seed)
    cylinders = rng.choice([4, 6, 8], size=n_cars, p=[0.5, 0.22, 0.28]).astype(float)
    displacement = cylinders * rng.uniform(20, 50, n_cars) + rng.normal(0, 10, n_cars)
    horsepower = 20 + 0.45 * displacement + rng.normal(0, 10, n_cars)
    weight = 1500 + 6.5 * displacement + rng.normal(0, 200, n_cars)
    acceleration = 22 - 0.045 * horsepower + rng.normal(0, 1.2, n_cars)
    model_year = rng.integers(70, 83, n_cars).astype(float)
    origin = rng.choice([1, 2, 3], size=n_cars, p=[0.62, 0.18, 0.2]).astype(float)
    mpg = (48 - 0.0055 * weight - 0.04 * horsepower + 0.75 * (model_year - 76)
           + 1.5 * (origin > 1) + rng.normal(0, 2.5, n_cars))
    table = np.column_stack([np.clip(mpg, 9, 47), cylinders, displacement, horsepower, weight,
                             acceleration, model_year, origin])
    table[rng.choice(n_cars, 6, replace=False), COLUMNS.index('Horsepower')] = np.nan
    return table


@covers(4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16)
def test_data(nb, capsys):
    import matplotlib.pyplot as plt                               # cell 4
    np.set_printoptions(precision=3, suppress=True)
    import npnet                                                  # cell 5
    from npnet import layers
    print(npnet.__version__)
    raw_dataset = auto_mpg_like()                                 # cell 6
    column_names = list(COLUMNS)
    dataset = raw_dataset.copy()                                  # cell 7
    print(dataset[-5:])
    print(dict(zip(column_names, np.isnan(dataset).sum(axis=0))))  # cell 8
    assert np.isnan(dataset).sum() == 6
    dataset = dataset[~np.isnan(dataset).any(axis=1)]             # cell 9
    origin = dataset[:, column_names.index('Origin')]             # cell 10
    origin_names = np.array(['USA', 'Europe', 'Japan'])[origin.astype(int) - 1]
    dummies = sorted(set(origin_names))                           # cell 11
    dataset = np.column_stack([dataset[:, :-1]] + [(origin_names == name).astype(float) for name in dummies])
    column_names = column_names[:-1] + dummies
    print(dataset[-5:])
    assert dataset.shape == (392, 10) and column_names[-3:] == ['Europe', 'Japan', 'USA']
    order = np.random.default_rng(0).permutation(len(dataset))    # cell 12
    train_dataset = dataset[order[:round(0.8 * len(dataset))]]
    test_dataset = dataset[order[round(0.8 * len(dataset)):]]

    def describe(table):                                          # cell 14
        return {name: {'count': len(column), 'mean': column.mean(), 'std': column.std(ddof=1),
                       'min': column.min(), 'max': column.max()}
                for name, column in zip(column_names, table.T)}
    print(describe(train_dataset))
    train_features = train_dataset[:, 1:].copy()                  # cell 15
    test_features = test_dataset[:, 1:].copy()
    train_labels = train_dataset[:, 0]
    test_labels = test_dataset[:, 0]
    feature_names = column_names[1:]
    print({name: (d['mean'], d['std']) for name, d in describe(train_dataset).items()})   # cell 16
    assert train_features.shape == (314, 9) and test_features.shape == (78, 9)
    capsys.readouterr()
    nb.update(npnet=npnet, layers=layers, plt=plt, train_features=train_features, train_labels=train_labels,
              test_features=test_features, test_labels=test_labels,
              horsepower_column=feature_names.index('Horsepower'))


@covers(17, 18, 19, 20)
def test_normalization_layer(nb, capsys):
    npnet, train_features = nb["npnet"], nb["train_features"]
    normalizer = npnet.layers.Normalization(axis=-1)              # cell 17
    normalizer.adapt(np.array(train_features))                    # cell 18
    with pytest.raises(AttributeError, match="numpy"):            # cell 19
        normalizer.mean.numpy()
    print(normalizer.mean)
    assert normalizer.mean.shape == (1, 9)
    np.testing.assert_allclose(normalizer.mean[0], train_features.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(normalizer.variance[0], train_features.var(axis=0), rtol=1e-4)
    first = np.array(train_features[:1])                          # cell 20
    with np.printoptions(precision=2, suppress=True):
        print('First example:', first)
        print()
        with pytest.raises(AttributeError, match="numpy"):
            normalizer(first).numpy()
        print('Normalized:', normalizer(first))
    expected = (first - train_features.mean(axis=0)) / train_features.std(axis=0)
    np.testing.assert_allclose(normalizer(first), expected, rtol=1e-4, atol=1e-5)
    assert "Normalized:" in capsys.readouterr().out
    nb["normalizer"] = normalizer


@covers(21, 22, 23, 24, 25, 26, 27, 28)
def test_linear_regression_one_variable(nb, capsys):
    npnet, layers, plt = nb["npnet"], nb["layers"], nb["plt"]
    train_features, train_labels = nb["train_features"], nb["train_labels"]
    horsepower = np.array(train_features[:, nb["horsepower_column"]])   # cell 21
    horsepower_normalizer = layers.Normalization(input_shape=[1,], axis=None)
    horsepower_normalizer.adapt(horsepower)
    # one scalar pair; Keras shapes it (1,) after adapting 1-D data, npnet (1, 1) from input_shape
    assert horsepower_normalizer.mean.size == 1
    assert horsepower_normalizer.mean.item() == pytest.approx(horsepower.mean(), rel=1e-5)
    horsepower_model = npnet.Sequential([                         # cell 22
        horsepower_normalizer,
        layers.Dense(units=1)
    ])
    horsepower_model.summary()
    assert "Total params: 5" in capsys.readouterr().out            # 2 weights + Keras's 3 statistics
    predictions = horsepower_model.predict(horsepower[:10])       # cell 23
    assert predictions.shape == (10, 1)
    horsepower_model.compile(                                     # cell 24
        optimizer=npnet.optimizers.Adam(learning_rate=0.1),
        loss='mean_absolute_error')
    start = time.perf_counter()                                   # cell 25
    history = horsepower_model.fit(
        train_features[:, nb["horsepower_column"]],
        train_labels,
        epochs=EPOCHS,
        verbose=0,
        validation_split=0.2)
    print(f"Wall time: {time.perf_counter() - start:.2f} s")
    print("backend:", horsepower_model.backend_name)
    hist = dict(history.history)                                  # cell 26
    hist['epoch'] = history.epoch
    assert sorted(hist) == ['epoch', 'loss', 'val_loss'] and hist['epoch'] == list(range(EPOCHS))
    assert hist['loss'][-1] < 0.5 * hist['loss'][0]

    def plot_loss(history):                                       # cell 27
        plt.plot(history.history['loss'], label='loss')
        plt.plot(history.history['val_loss'], label='val_loss')
        plt.ylim([0, 10])
        plt.xlabel('Epoch')
        plt.ylabel('Error [MPG]')
        plt.legend()
        plt.grid(True)
    plot_loss(history)                                            # cell 28
    nb.update(horsepower_normalizer=horsepower_normalizer, horsepower_model=horsepower_model,
              plot_loss=plot_loss, backend_name=horsepower_model.backend_name)


@covers(29, 30, 31, 32)
def test_horsepower_predictions(nb):
    npnet, plt, hp = nb["npnet"], nb["plt"], nb["horsepower_column"]
    horsepower_model = nb["horsepower_model"]
    test_results = {}                                             # cell 29
    test_results['horsepower_model'] = horsepower_model.evaluate(
        nb["test_features"][:, hp],
        nb["test_labels"], verbose=0)
    assert isinstance(test_results['horsepower_model'], float) and test_results['horsepower_model'] < 6
    with pytest.raises(AttributeError, match=r"np\.linspace"):    # cell 30
        npnet.linspace(0.0, 250, 251)
    x = np.linspace(0.0, 250, 251)
    y = horsepower_model.predict(x)
    assert y.shape == (251, 1) and y[0, 0] > y[-1, 0]               # more horsepower, fewer miles

    def plot_horsepower(x, y):                                    # cell 31
        plt.scatter(nb["train_features"][:, hp], nb["train_labels"], label='Data')
        plt.plot(x, y, color='k', label='Predictions')
        plt.xlabel('Horsepower')
        plt.ylabel('MPG')
        plt.legend()
    plot_horsepower(x, y)                                         # cell 32
    nb.update(test_results=test_results, plot_horsepower=plot_horsepower)


@covers(33, 34, 35, 36, 37, 38, 39)
def test_linear_regression_all_features(nb):
    npnet, layers = nb["npnet"], nb["layers"]
    train_features, train_labels = nb["train_features"], nb["train_labels"]
    linear_model = npnet.Sequential([                             # cell 33
        nb["normalizer"],
        layers.Dense(units=1)
    ])
    assert linear_model.predict(train_features[:10]).shape == (10, 1)   # cell 34
    kernel = linear_model.layers[1].kernel                        # cell 35
    print(repr(kernel))
    assert kernel.shape == (9, 1) and kernel.name == "kernel"
    linear_model.compile(                                         # cell 36
        optimizer=npnet.optimizers.Adam(learning_rate=0.1),
        loss='mean_absolute_error')
    start = time.perf_counter()                                   # cell 37
    history = linear_model.fit(
        train_features,
        train_labels,
        epochs=EPOCHS,
        verbose=0,
        validation_split=0.2)
    print(f"Wall time: {time.perf_counter() - start:.2f} s")
    nb["plot_loss"](history)                                      # cell 38
    test_results = nb["test_results"]                             # cell 39
    test_results['linear_model'] = linear_model.evaluate(
        nb["test_features"], nb["test_labels"], verbose=0)
    assert test_results['linear_model'] < test_results['horsepower_model']


def build_and_compile_model(nb, norm):
    """Cell 40's function: the normalizer, two Dense(64, relu) and one output, MAE, Adam(0.001)."""
    npnet, layers = nb["npnet"], nb["layers"]
    model = npnet.Sequential([
        norm,
        layers.Dense(64, activation='relu'),
        layers.Dense(64, activation='relu'),
        layers.Dense(1)
    ])
    model.compile(loss='mean_absolute_error',
                  optimizer=npnet.optimizers.Adam(0.001))
    return model


@covers(40, 41, 42, 43, 44, 45, 46, 47)
def test_dnn_one_variable(nb, capsys):
    npnet, hp = nb["npnet"], nb["horsepower_column"]
    dnn_horsepower_model = build_and_compile_model(nb, nb["horsepower_normalizer"])   # cells 40-41
    dnn_horsepower_model.summary()                                # cell 42
    assert "Total params: 4,356" in capsys.readouterr().out        # 4,353 trainable + 3 statistics
    start = time.perf_counter()                                   # cell 43
    history = dnn_horsepower_model.fit(
        nb["train_features"][:, hp],
        nb["train_labels"],
        validation_split=0.2,
        verbose=0, epochs=EPOCHS)
    print(f"Wall time: {time.perf_counter() - start:.2f} s")
    nb["plot_loss"](history)                                      # cell 44
    with pytest.raises(AttributeError, match=r"np\.linspace"):    # cell 45
        npnet.linspace(0.0, 250, 251)
    x = np.linspace(0.0, 250, 251)
    y = dnn_horsepower_model.predict(x)
    nb["plot_horsepower"](x, y)                                   # cell 46
    test_results = nb["test_results"]                             # cell 47
    test_results['dnn_horsepower_model'] = dnn_horsepower_model.evaluate(
        nb["test_features"][:, hp], nb["test_labels"],
        verbose=0)
    assert test_results['dnn_horsepower_model'] < 6


@covers(48, 49, 50, 51, 52)
def test_dnn_all_features(nb, capsys):
    dnn_model = build_and_compile_model(nb, nb["normalizer"])     # cell 48
    dnn_model.summary()
    assert "Total params: 4,884" in capsys.readouterr().out        # 4,865 trainable + 19 statistics
    start = time.perf_counter()                                   # cell 49
    history = dnn_model.fit(
        nb["train_features"],
        nb["train_labels"],
        validation_split=0.2,
        verbose=0, epochs=EPOCHS)
    print(f"Wall time: {time.perf_counter() - start:.2f} s")
    nb["plot_loss"](history)                                      # cell 50
    test_results = nb["test_results"]                             # cell 51
    test_results['dnn_model'] = dnn_model.evaluate(nb["test_features"], nb["test_labels"], verbose=0)
    print({name: {'Mean absolute error [MPG]': value} for name, value in test_results.items()})   # cell 52
    assert test_results['dnn_model'] < test_results['horsepower_model']
    nb["dnn_model"] = dnn_model


@covers(53, 54)
def test_predictions_and_errors(nb):
    plt, dnn_model, test_labels = nb["plt"], nb["dnn_model"], nb["test_labels"]
    test_predictions = dnn_model.predict(nb["test_features"]).flatten()   # cell 53
    a = plt.axes(aspect='equal')
    plt.scatter(test_labels, test_predictions)
    plt.xlabel('True Values [MPG]')
    plt.ylabel('Predictions [MPG]')
    lims = [0, 50]
    plt.xlim(lims)
    plt.ylim(lims)
    _ = plt.plot(lims, lims)
    assert test_predictions.shape == (78,)
    error = test_predictions - test_labels                        # cell 54
    plt.hist(error, bins=25)
    plt.xlabel('Prediction Error [MPG]')
    _ = plt.ylabel('Count')
    assert np.mean(np.abs(error)) == pytest.approx(nb["test_results"]['dnn_model'], rel=1e-4)


@covers(55, 56, 57)
def test_save_and_reload(nb, in_tmp_dir):
    npnet, dnn_model = nb["npnet"], nb["dnn_model"]
    dnn_model.save('dnn_model.keras')                             # cell 55
    reloaded = npnet.models.load_model('dnn_model.keras')         # cell 56
    test_results = nb["test_results"]
    test_results['reloaded'] = reloaded.evaluate(
        nb["test_features"], nb["test_labels"], verbose=0)
    print({name: {'Mean absolute error [MPG]': value} for name, value in test_results.items()})   # cell 57
    assert test_results['reloaded'] == pytest.approx(test_results['dnn_model'], rel=1e-6)
    np.testing.assert_allclose(reloaded.predict(nb["test_features"]), dnn_model.predict(nb["test_features"]),
                               rtol=1e-6)
