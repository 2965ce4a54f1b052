"""The TensorFlow tutorial "Classification on imbalanced data", cell by cell on npnet: a
Dense(16) + Dropout + sigmoid classifier of rare positives with eleven named metric objects
(cross-entropy, Brier score, the confusion counts, accuracy, precision, recall, ROC and PR
AUC), an output bias started at the classes' log-odds through ``initializers.Constant``,
initial weights saved and reloaded, EarlyStopping on ``val_prc``, then class weights and
oversampling, with confusion matrices, ROC and precision-recall curves.

The tutorial reads Kaggle's credit-card CSV (284,807 rows) with pandas; here a synthetic
NumPy table of the same columns stands in (Time, V1..V28, Amount, Class; about 1% positives,
whose V columns are shifted so that they can be found), with fewer rows and epochs. sklearn's
split, scaler, confusion matrix and curves are written in NumPy here; seaborn's plots become
matplotlib's. The ``tf.data`` oversampling pipeline becomes a Python generator of balanced
batches with ``steps_per_epoch``, as npnet's error says. Tests run in the notebook's order.
"""

import itertools
import os
import sys
import tempfile

import numpy as np
import pytest

from tutorial_cells import check_accounting, covers

TUTORIAL = "tensorflow/docs site/en/tutorials/structured_data/imbalanced_data.ipynb"
TOTAL_CELLS = 58
NOT_RUN = {1: "licence text (comments only)"}
ADAPTED = {2: "no pandas/seaborn/sklearn imports (NumPy stands in for them, see cells 8, 10, 29, 32, 34)",
           4: "a synthetic NumPy table of the credit-card CSV's columns for pd.read_csv",
           5: "min/mean/max of the chosen columns for describe()",
           7: "column arithmetic on the array for the DataFrame's pop and assignment",
           8: "a seeded permutation split 80/20 twice for sklearn's train_test_split",
           10: "the training rows' mean and standard deviation for sklearn's StandardScaler",
           11: "matplotlib's hexbin for seaborn's jointplot",
           13: "EPOCHS=20 instead of 100",
           21: "epochs=10 instead of 20", 22: "as cell 21",
           29: "a NumPy confusion matrix for sklearn's, matplotlib's imshow for seaborn's heatmap",
           32: "a NumPy roc_curve for sklearn.metrics.roc_curve",
           34: "a NumPy precision_recall_curve for sklearn.metrics'",
           47: "itertools.islice(pos_ds, 1) for pos_ds.take(1); the rows are NumPy already",
           49: "itertools.islice(resampled_ds, 1) for resampled_ds.take(1)",
           53: "epochs=EPOCHS instead of 10*EPOCHS (20-step epochs of 2048 rows)"}
DIFFERS = {46: "tf.data.Dataset: the error says to pass a Python generator (with steps_per_epoch when "
               "it never ends); make_ds is a generator of shuffled rows, repeated",
           48: "Dataset.sample_from_datasets(...).batch(): a generator drawing each row of a batch "
               "from either generator with probability 0.5",
           51: "validation_data: the tf.data pipeline is refused with a TypeError saying to pass "
               "NumPy arrays or a generator; the arrays are passed",
           }

EPOCHS = 20
SHORT_EPOCHS = 10
N_ROWS = 12_000
COLUMNS = ['Time'] + [f'V{i}' for i in range(1, 29)] + ['Amount', 'Class']


def test_every_cell_is_accounted_for():
    check_accounting(sys.modules[__name__])


@pytest.fixture(scope="module")
def nb():
    # not a tutorial call: the comparisons between models below (recall, false positives)
    # should not depend on the draw of initial weights and dropout masks
    import npnet
    npnet.utils.set_random_seed(0)
    return {}


def credit_card_like(n_rows=N_ROWS, seed=0):
    """A table with the CSV's columns: ~1% positives whose V columns are shifted."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n_rows) < 0.01).astype(float)
    time = np.sort(rng.uniform(0, 172_792, n_rows))
    shift = rng.normal(0, 1.5, 28)
    v = rng.normal(size=(n_rows, 28)) + np.outer(label, shift) * rng.uniform(0.3, 1.7, (n_rows, 1))
    amount = np.round(rng.lognormal(3, 1.6, n_rows), 2)
    amount[rng.random(n_rows) < 0.01] = 0.0
    return np.column_stack([time, v, amount, label])


def roc_curve(labels, predictions):
    """sklearn.metrics.roc_curve's (fpr, tpr, thresholds) for 0/1 labels, in NumPy."""
    tps, fps, thresholds = _counts_above_thresholds(labels, predictions)
    return np.r_[0, fps / fps[-1]], np.r_[0, tps / tps[-1]], np.r_[np.inf, thresholds]


def precision_recall_curve(labels, predictions):
    """sklearn.metrics.precision_recall_curve's (precision, recall, thresholds), in NumPy:
    thresholds rising, with the point (precision 1, recall 0) appended."""
    tps, fps, thresholds = _counts_above_thresholds(labels, predictions)
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def _counts_above_thresholds(labels, predictions):
    labels, scores = np.ravel(labels).astype(float), np.ravel(predictions)
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    last_of_each = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(labels)[last_of_each]
    return tps, last_of_each + 1 - tps, scores[last_of_each]


def confusion_matrix(labels, predicted):
    """sklearn.metrics.confusion_matrix for 0/1 labels: rows actual, columns predicted."""
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (np.ravel(labels).astype(int), np.ravel(predicted).astype(int)), 1)
    return cm


@covers(2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
def test_data(nb, capsys):
    import npnet                                                  # cell 2
    from npnet import layers  # noqa: F401  (the tutorial's `from tensorflow import keras`)
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    mpl.rcParams['figure.figsize'] = (12, 10)                     # cell 3
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    file = npnet.utils                                            # cell 4
    raw_df = credit_card_like()
    print(raw_df[:5])
    shown = ['Time', 'V1', 'V2', 'V3', 'V4', 'V5', 'V26', 'V27', 'V28', 'Amount', 'Class']   # cell 5
    chosen = raw_df[:, [COLUMNS.index(c) for c in shown]]
    print({c: (col.min(), col.mean(), col.max()) for c, col in zip(shown, chosen.T)})
    neg, pos = np.bincount(raw_df[:, COLUMNS.index('Class')].astype(int))   # cell 6
    total = neg + pos
    print('Examples:\n    Total: {}\n    Positive: {} ({:.2f}% of total)\n'.format(
        total, pos, 100 * pos / total))
    assert total == N_ROWS and 0.002 < pos / total < 0.02
    eps = 0.001                                                   # cell 7
    log_amount = np.log(raw_df[:, COLUMNS.index('Amount')] + eps)
    cleaned_df = np.column_stack([raw_df[:, 1:COLUMNS.index('Amount')], raw_df[:, -1], log_amount])
    columns = COLUMNS[1:-2] + ['Class', 'Log Amount']
    rng = np.random.default_rng(42)                               # cell 8

    def train_test_split(rows, test_size):
        order = rng.permutation(len(rows))
        n_test = int(np.ceil(test_size * len(rows)))
        return rows[order[n_test:]], rows[order[:n_test]]
    train_df, test_df = train_test_split(cleaned_df, test_size=0.2)
    train_df, val_df = train_test_split(train_df, test_size=0.2)
    label_column = columns.index('Class')
    feature_columns = [i for i in range(len(columns)) if i != label_column]
    feature_names = [columns[i] for i in feature_columns]
    train_labels = np.array(train_df[:, label_column]).reshape(-1, 1)
    bool_train_labels = train_labels[:, 0] != 0
    val_labels = np.array(val_df[:, label_column]).reshape(-1, 1)
    test_labels = np.array(test_df[:, label_column]).reshape(-1, 1)
    train_features = np.array(train_df[:, feature_columns])
    val_features = np.array(val_df[:, feature_columns])
    test_features = np.array(test_df[:, feature_columns])
    print(f'Average class probability in training set:   {train_labels.mean():.4f}')   # cell 9
    print(f'Average class probability in validation set: {val_labels.mean():.4f}')
    print(f'Average class probability in test set:       {test_labels.mean():.4f}')
    mean, scale = train_features.mean(axis=0), train_features.std(axis=0)   # cell 10: StandardScaler
    train_features = (train_features - mean) / scale
    val_features = (val_features - mean) / scale
    test_features = (test_features - mean) / scale
    train_features = np.clip(train_features, -5, 5)
    val_features = np.clip(val_features, -5, 5)
    test_features = np.clip(test_features, -5, 5)
    print('Training labels shape:', train_labels.shape)
    print('Training features shape:', train_features.shape)
    assert train_features.shape == (7680, 29) and val_features.shape == (1920, 29)
    assert test_features.shape == (2400, 29) and test_labels.shape == (2400, 1)
    pos_df = train_features[bool_train_labels]                    # cell 11
    neg_df = train_features[~bool_train_labels]
    v5, v6 = feature_names.index('V5'), feature_names.index('V6')
    for rows, title in ((pos_df, "Positive distribution"), (neg_df, "Negative distribution")):
        plt.figure()
        plt.hexbin(rows[:, v5], rows[:, v6], gridsize=20, extent=(-5, 5, -5, 5))
        plt.suptitle(title)
    capsys.readouterr()
    nb.update(npnet=npnet, plt=plt, colors=colors, file=file, neg=neg, pos=pos, total=total,
              train_features=train_features, train_labels=train_labels, bool_train_labels=bool_train_labels,
              val_features=val_features, val_labels=val_labels,
              test_features=test_features, test_labels=test_labels)


def metrics_list(npnet):
    """Cell 12's METRICS: eleven metric objects, each with the name its history key takes."""
    keras = npnet
    return [
        keras.metrics.BinaryCrossentropy(name='cross entropy'),  # same as model's loss
        keras.metrics.MeanSquaredError(name='Brier score'),
        keras.metrics.TruePositives(name='tp'),
        keras.metrics.FalsePositives(name='fp'),
        keras.metrics.TrueNegatives(name='tn'),
        keras.metrics.FalseNegatives(name='fn'),
        keras.metrics.BinaryAccuracy(name='accuracy'),
        keras.metrics.Precision(name='precision'),
        keras.metrics.Recall(name='recall'),
        keras.metrics.AUC(name='auc'),
        keras.metrics.AUC(name='prc', curve='PR'),  # precision-recall curve
    ]


METRIC_NAMES = ['cross entropy', 'Brier score', 'tp', 'fp', 'tn', 'fn', 'accuracy', 'precision', 'recall',
                'auc', 'prc']


@covers(12, 13, 14, 15, 16)
def test_model_and_first_evaluation(nb, capsys):
    npnet = keras = nb["npnet"]
    train_features = nb["train_features"]
    METRICS = metrics_list(npnet)                                 # cell 12

    def make_model(metrics=METRICS, output_bias=None):
        if output_bias is not None:
            output_bias = npnet.initializers.Constant(output_bias)
        model = keras.Sequential([
            keras.layers.Dense(
                16, activation='relu',
                input_shape=(train_features.shape[-1],)),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1, activation='sigmoid',
                               bias_initializer=output_bias),
        ])
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=1e-3),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=metrics)
        return model

    BATCH_SIZE = 2048                                             # cell 13

    def early_stopping():
        return npnet.callbacks.EarlyStopping(
            monitor='val_prc',
            verbose=1,
            patience=10,
            mode='max',
            restore_best_weights=True)

    model = make_model()                                          # cell 14
    model.summary()
    assert "Total params: 497" in capsys.readouterr().out
    predictions = model.predict(train_features[:10])              # cell 15
    assert predictions.shape == (10, 1) and np.all((predictions > 0) & (predictions < 1))
    results = model.evaluate(nb["train_features"], nb["train_labels"], batch_size=BATCH_SIZE, verbose=0)   # cell 16
    print("Loss: {:0.4f}".format(results[0]))
    assert len(results) == 12 and model.metrics_names == ['loss'] + METRIC_NAMES
    # the cross-entropy metric is the loss (no regularization), the counts add up to the rows
    assert results[1] == pytest.approx(results[0], rel=1e-5)
    assert sum(results[3:7]) == len(train_features)
    nb.update(make_model=make_model, early_stopping=early_stopping, BATCH_SIZE=BATCH_SIZE)


@covers(17, 18, 19, 20)
def test_initial_bias(nb, capsys):
    neg, pos, BATCH_SIZE = nb["neg"], nb["pos"], nb["BATCH_SIZE"]
    initial_bias = np.log([pos / neg])                            # cell 17
    print(repr(initial_bias))
    model = nb["make_model"](output_bias=initial_bias)            # cell 18
    predictions = model.predict(nb["train_features"][:10])
    np.testing.assert_allclose(model.layers[-1].bias, initial_bias, rtol=1e-6)
    results = model.evaluate(nb["train_features"], nb["train_labels"], batch_size=BATCH_SIZE, verbose=0)   # cell 19
    print("Loss: {:0.4f}".format(results[0]))
    # started near the base rate, the loss is near the labels' entropy, not log(2)
    p0 = pos / (pos + neg)
    entropy = -p0 * np.log(p0) - (1 - p0) * np.log(1 - p0)
    assert results[0] < 0.5 and results[0] == pytest.approx(entropy, abs=0.2)
    assert predictions.mean() < 0.2
    initial_weights = os.path.join(tempfile.mkdtemp(), 'initial.weights.h5')   # cell 20
    model.save_weights(initial_weights)
    assert os.path.exists(initial_weights)
    nb.update(initial_bias=initial_bias, initial_weights=initial_weights, initial_model=model)


def fit_from_initial_weights(nb, zero_bias, **fit_kwargs):
    model = nb["make_model"]()
    model.load_weights(nb["initial_weights"])
    if zero_bias:
        model.layers[-1].bias.assign([0.0])
    return model, model.fit(
        nb["train_features"],
        nb["train_labels"],
        batch_size=nb["BATCH_SIZE"],
        validation_data=(nb["val_features"], nb["val_labels"]),
        **fit_kwargs)


def history_keys():
    return sorted(['loss'] + METRIC_NAMES + ['val_loss'] + ['val_' + name for name in METRIC_NAMES])


@covers(21, 22, 23, 24)
def test_zero_and_careful_bias(nb):
    plt, colors = nb["plt"], nb["colors"]
    model, zero_bias_history = fit_from_initial_weights(nb, zero_bias=True, epochs=SHORT_EPOCHS,   # cell 21
                                                        verbose=0)
    assert model.layers[-1].bias[0] != nb["initial_bias"][0]
    model, careful_bias_history = fit_from_initial_weights(nb, zero_bias=False, epochs=SHORT_EPOCHS,   # cell 22
                                                           verbose=0)
    for history in (zero_bias_history, careful_bias_history):
        assert sorted(history.history) == history_keys() and history.epoch == list(range(SHORT_EPOCHS))
    # the careful bias starts (and stays, these few epochs) below the zero bias's loss
    assert careful_bias_history.history['loss'][0] < zero_bias_history.history['loss'][0]

    def plot_loss(history, label, n):                             # cell 23
        plt.semilogy(history.epoch, history.history['loss'],
                     color=colors[n], label='Train ' + label)
        plt.semilogy(history.epoch, history.history['val_loss'],
                     color=colors[n], label='Val ' + label,
                     linestyle="--")
        plt.xlabel('Epoch')
        plt.ylabel('Loss')
        plt.legend()
    plot_loss(zero_bias_history, "Zero Bias", 0)                  # cell 24
    plot_loss(careful_bias_history, "Careful Bias", 1)


def plot_metrics(nb, history):
    """Cell 26's function: loss, PR AUC, precision and recall, training and validation."""
    plt, colors = nb["plt"], nb["colors"]
    metrics = ['loss', 'prc', 'precision', 'recall']
    for n, metric in enumerate(metrics):
        name = metric.replace("_", " ").capitalize()
        plt.subplot(2, 2, n + 1)
        plt.plot(history.epoch, history.history[metric], color=colors[0], label='Train')
        plt.plot(history.epoch, history.history['val_' + metric],
                 color=colors[0], linestyle="--", label='Val')
        plt.xlabel('Epoch')
        plt.ylabel(name)
        if metric == 'loss':
            plt.ylim([0, plt.ylim()[1]])
        elif metric == 'auc':
            plt.ylim([0.8, 1])
        else:
            plt.ylim([0, 1])
        plt.legend()


@covers(25, 26, 27, 28)
def test_baseline(nb, capsys):
    BATCH_SIZE = nb["BATCH_SIZE"]
    model, baseline_history = fit_from_initial_weights(nb, zero_bias=False, epochs=EPOCHS,   # cell 25
                                                       callbacks=[nb["early_stopping"]()])
    printed = capsys.readouterr().out
    assert "val_prc:" in printed and "val_Brier score:" in printed
    print("backend:", model.backend_name)
    assert sorted(baseline_history.history) == history_keys()
    plot_metrics(nb, baseline_history)                            # cells 26-27
    train_predictions_baseline = model.predict(nb["train_features"], batch_size=BATCH_SIZE)   # cell 28
    test_predictions_baseline = model.predict(nb["test_features"], batch_size=BATCH_SIZE)
    assert test_predictions_baseline.shape == (2400, 1)
    nb.update(model=model, backend_name=model.backend_name,
              train_predictions_baseline=train_predictions_baseline,
              test_predictions_baseline=test_predictions_baseline)


def plot_cm(nb, labels, predictions, threshold=0.5):
    """Cell 29's function, with NumPy's confusion matrix and matplotlib's imshow."""
    plt = nb["plt"]
    cm = confusion_matrix(labels, predictions > threshold)
    plt.figure(figsize=(5, 5))
    plt.imshow(cm)
    for (row, column), count in np.ndenumerate(cm):
        plt.text(column, row, f"{count:d}", ha="center", va="center")
    plt.title('Confusion matrix @{:.2f}'.format(threshold))
    plt.ylabel('Actual label')
    plt.xlabel('Predicted label')
    print('Legitimate Transactions Detected (True Negatives): ', cm[0][0])
    print('Legitimate Transactions Incorrectly Detected (False Positives): ', cm[0][1])
    print('Fraudulent Transactions Missed (False Negatives): ', cm[1][0])
    print('Fraudulent Transactions Detected (True Positives): ', cm[1][1])
    print('Total Fraudulent Transactions: ', np.sum(cm[1]))
    return cm


def evaluate_and_plot_cm(nb, model, predictions):
    """Cells 30, 40 and 56: evaluate on the test set, print metrics_names beside the values,
    and check the confusion matrix against the tp/fp/tn/fn metrics at 0.5."""
    results = model.evaluate(nb["test_features"], nb["test_labels"],
                             batch_size=nb["BATCH_SIZE"], verbose=0)
    for name, value in zip(model.metrics_names, results):
        print(name, ': ', value)
    print()
    cm = plot_cm(nb, nb["test_labels"], predictions)
    named = dict(zip(model.metrics_names, results))
    assert len(named) == 12   # Keras 3.15 names only ['loss', 'compile_metrics'] here
    assert [[named['tn'], named['fp']], [named['fn'], named['tp']]] == cm.tolist()
    return named


@covers(29, 30, 31)
def test_confusion_matrices(nb, capsys):
    model, predictions = nb["model"], nb["test_predictions_baseline"]
    baseline_results = evaluate_and_plot_cm(nb, model, predictions)   # cells 29-30
    plot_cm(nb, nb["test_labels"], predictions, threshold=0.1)    # cell 31
    plot_cm(nb, nb["test_labels"], predictions, threshold=0.01)
    assert "Total Fraudulent Transactions:  " in capsys.readouterr().out
    nb["baseline_results"] = baseline_results


def plot_roc(nb, name, labels, predictions, **kwargs):
    """Cell 32's function, with the NumPy roc_curve."""
    plt = nb["plt"]
    fp, tp, _ = roc_curve(labels, predictions)
    plt.plot(100 * fp, 100 * tp, label=name, linewidth=2, **kwargs)
    plt.xlabel('False positives [%]')
    plt.ylabel('True positives [%]')
    plt.xlim([-0.5, 20])
    plt.ylim([80, 100.5])
    plt.grid(True)
    ax = plt.gca()
    ax.set_aspect('equal')


def plot_prc(nb, name, labels, predictions, **kwargs):
    """Cell 34's function, with the NumPy precision_recall_curve."""
    plt = nb["plt"]
    precision, recall, _ = precision_recall_curve(labels, predictions)
    plt.plot(precision, recall, label=name, linewidth=2, **kwargs)
    plt.xlabel('Precision')
    plt.ylabel('Recall')
    plt.grid(True)
    ax = plt.gca()
    ax.set_aspect('equal')


@covers(32, 33, 34, 35)
def test_roc_and_prc(nb):
    plt, colors = nb["plt"], nb["colors"]
    train_labels, test_labels = nb["train_labels"], nb["test_labels"]
    train_predictions, test_predictions = nb["train_predictions_baseline"], nb["test_predictions_baseline"]
    plot_roc(nb, "Train Baseline", train_labels, train_predictions, color=colors[0])   # cells 32-33
    plot_roc(nb, "Test Baseline", test_labels, test_predictions, color=colors[0], linestyle='--')
    plt.legend(loc='lower right')
    plot_prc(nb, "Train Baseline", train_labels, train_predictions, color=colors[0])   # cells 34-35
    plot_prc(nb, "Test Baseline", test_labels, test_predictions, color=colors[0], linestyle='--')
    plt.legend(loc='lower right')
    # npnet's AUC metric (200 thresholds, interpolated) is the area under the exact curve
    fpr, tpr, _ = roc_curve(test_labels, test_predictions)
    assert nb["baseline_results"]['auc'] == pytest.approx(np.trapezoid(tpr, fpr), abs=0.02)
    assert nb["baseline_results"]['auc'] > 0.8


@covers(36, 37, 38, 39, 40, 41, 42)
def test_class_weights(nb, capsys):
    neg, pos, total, BATCH_SIZE = nb["neg"], nb["pos"], nb["total"], nb["BATCH_SIZE"]
    weight_for_0 = (1 / neg) * (total / 2.0)                      # cell 36
    weight_for_1 = (1 / pos) * (total / 2.0)
    class_weight = {0: weight_for_0, 1: weight_for_1}
    print('Weight for class 0: {:.2f}'.format(weight_for_0))
    print('Weight for class 1: {:.2f}'.format(weight_for_1))
    weighted_model, weighted_history = fit_from_initial_weights(   # cell 37
        nb, zero_bias=False, epochs=EPOCHS, callbacks=[nb["early_stopping"]()], class_weight=class_weight)
    assert sorted(weighted_history.history) == history_keys()
    plot_metrics(nb, weighted_history)                            # cell 38
    train_predictions_weighted = weighted_model.predict(nb["train_features"], batch_size=BATCH_SIZE)   # cell 39
    test_predictions_weighted = weighted_model.predict(nb["test_features"], batch_size=BATCH_SIZE)
    weighted_results = evaluate_and_plot_cm(nb, weighted_model, test_predictions_weighted)   # cell 40
    # weighting the rare class finds more of it than the baseline, at the price of precision
    assert weighted_results['recall'] >= nb["baseline_results"]['recall']
    assert weighted_results['fp'] >= nb["baseline_results"]['fp']
    train_labels, test_labels, colors = nb["train_labels"], nb["test_labels"], nb["colors"]
    for plot in (plot_roc, plot_prc):                             # cells 41, 42
        plot(nb, "Train Baseline", train_labels, nb["train_predictions_baseline"], color=colors[0])
        plot(nb, "Test Baseline", test_labels, nb["test_predictions_baseline"], color=colors[0], linestyle='--')
        plot(nb, "Train Weighted", train_labels, train_predictions_weighted, color=colors[1])
        plot(nb, "Test Weighted", test_labels, test_predictions_weighted, color=colors[1], linestyle='--')
        nb["plt"].legend(loc='lower right')
    nb.update(train_predictions_weighted=train_predictions_weighted,
              test_predictions_weighted=test_predictions_weighted)


@covers(43, 44, 45)
def test_oversampling_with_numpy(nb):
    train_features, train_labels, bool_train_labels = nb["train_features"], nb["train_labels"], nb["bool_train_labels"]
    pos_features = train_features[bool_train_labels]              # cell 43
    neg_features = train_features[~bool_train_labels]
    pos_labels = train_labels[bool_train_labels]
    neg_labels = train_labels[~bool_train_labels]
    ids = np.arange(len(pos_features))                            # cell 44
    choices = np.random.choice(ids, len(neg_features))
    res_pos_features = pos_features[choices]
    res_pos_labels = pos_labels[choices]
    assert res_pos_features.shape == neg_features.shape
    resampled_features = np.concatenate([res_pos_features, neg_features], axis=0)   # cell 45
    resampled_labels = np.concatenate([res_pos_labels, neg_labels], axis=0)
    order = np.arange(len(resampled_labels))
    np.random.shuffle(order)
    resampled_features = resampled_features[order]
    resampled_labels = resampled_labels[order]
    assert resampled_features.shape == (2 * len(neg_features), 29) and resampled_labels.mean() == 0.5
    nb.update(pos_features=pos_features, neg_features=neg_features, pos_labels=pos_labels, neg_labels=neg_labels)


@covers(46, 47, 48, 49, 50)
def test_balanced_batches_from_generators(nb, capsys):
    npnet, BATCH_SIZE = nb["npnet"], nb["BATCH_SIZE"]
    BUFFER_SIZE = 100000                                          # cell 46
    with pytest.raises(AttributeError, match=r"generator of \(x, y\) NumPy batches.*steps_per_epoch"):
        npnet.data.Dataset.from_tensor_slices((nb["pos_features"], nb["pos_labels"]))

    def make_ds(features, labels, seed=None):
        """shuffle(BUFFER_SIZE).repeat(): the rows, reshuffled on every pass, forever."""
        rng = np.random.default_rng(seed)
        while True:
            for row in rng.permutation(len(features)):
                yield features[row], labels[row]

    pos_ds = make_ds(nb["pos_features"], nb["pos_labels"], seed=1)
    neg_ds = make_ds(nb["neg_features"], nb["neg_labels"], seed=2)
    for features, label in itertools.islice(pos_ds, 1):           # cell 47
        print("Features:\n", features)
        print()
        print("Label: ", label)
    assert features.shape == (29,) and label.tolist() == [1.0]

    def sample_from_datasets(datasets, weights, batch_size, seed=3):   # cell 48
        """Each row of each batch from datasets[i] with probability weights[i]."""
        rng = np.random.default_rng(seed)
        while True:
            picks = rng.choice(len(datasets), size=batch_size, p=weights)
            features, labels = zip(*(next(datasets[i]) for i in picks))
            yield np.array(features), np.array(labels)

    resampled_ds = sample_from_datasets([pos_ds, neg_ds], weights=[0.5, 0.5], batch_size=BATCH_SIZE)
    for features, label in itertools.islice(resampled_ds, 1):     # cell 49
        print(label.mean())
    assert features.shape == (BATCH_SIZE, 29) and abs(label.mean() - 0.5) < 0.05
    resampled_steps_per_epoch = int(np.ceil(2.0 * nb["neg"] / BATCH_SIZE))   # cell 50
    print(resampled_steps_per_epoch)
    nb.update(resampled_ds=resampled_ds, resampled_steps_per_epoch=resampled_steps_per_epoch)


def make_resampled_model(nb):
    resampled_model = nb["make_model"]()
    resampled_model.load_weights(nb["initial_weights"])
    output_layer = resampled_model.layers[-1]
    output_layer.bias.assign([0])
    return resampled_model


@covers(51, 52)
def test_train_on_oversampled_data(nb, capsys):
    BATCH_SIZE = nb["BATCH_SIZE"]
    resampled_model = make_resampled_model(nb)                    # cell 51
    assert resampled_model.layers[-1].bias.tolist() == [0.0]
    tf = pytest.importorskip("tensorflow")
    val_ds = tf.data.Dataset.from_tensor_slices((nb["val_features"], nb["val_labels"])).cache()
    val_ds = val_ds.batch(BATCH_SIZE).prefetch(2)
    with pytest.raises(TypeError, match=r"NumPy arrays.*generator of \(x, y\) NumPy batches.*steps_per_epoch"):
        resampled_model.fit(nb["resampled_ds"], epochs=EPOCHS, steps_per_epoch=nb["resampled_steps_per_epoch"],
                            validation_data=val_ds)
    resampled_history = resampled_model.fit(
        nb["resampled_ds"],
        epochs=EPOCHS,
        steps_per_epoch=nb["resampled_steps_per_epoch"],
        callbacks=[nb["early_stopping"]()],
        validation_data=(nb["val_features"], nb["val_labels"]))
    assert "val_prc:" in capsys.readouterr().out
    assert sorted(resampled_history.history) == history_keys()
    # balanced batches: the training rows seen are half positive
    h = resampled_history.history
    assert all(0.4 < (tp + fn) / (tp + fn + fp + tn) < 0.6 for tp, fn, fp, tn in zip(h['tp'], h['fn'], h['fp'], h['tn']))
    assert h['tp'][0] + h['fn'][0] + h['fp'][0] + h['tn'][0] == BATCH_SIZE * nb["resampled_steps_per_epoch"]
    plot_metrics(nb, resampled_history)                           # cell 52


@covers(53, 54, 55, 56, 57, 58)
def test_short_epochs_and_comparison(nb, capsys):
    BATCH_SIZE = nb["BATCH_SIZE"]
    resampled_model = make_resampled_model(nb)                    # cell 53
    resampled_history = resampled_model.fit(
        nb["resampled_ds"],
        steps_per_epoch=20,
        epochs=EPOCHS,
        callbacks=[nb["early_stopping"]()],
        validation_data=(nb["val_features"], nb["val_labels"]))
    assert resampled_history.params["steps"] == 20
    plot_metrics(nb, resampled_history)                           # cell 54
    train_predictions_resampled = resampled_model.predict(nb["train_features"], batch_size=BATCH_SIZE)   # cell 55
    test_predictions_resampled = resampled_model.predict(nb["test_features"], batch_size=BATCH_SIZE)
    resampled_results = evaluate_and_plot_cm(nb, resampled_model, test_predictions_resampled)   # cell 56
    assert resampled_results['recall'] >= nb["baseline_results"]['recall']
    train_labels, test_labels, colors = nb["train_labels"], nb["test_labels"], nb["colors"]
    for plot in (plot_roc, plot_prc):                             # cells 57, 58
        plot(nb, "Train Baseline", train_labels, nb["train_predictions_baseline"], color=colors[0])
        plot(nb, "Test Baseline", test_labels, nb["test_predictions_baseline"], color=colors[0], linestyle='--')
        plot(nb, "Train Weighted", train_labels, nb["train_predictions_weighted"], color=colors[1])
        plot(nb, "Test Weighted", test_labels, nb["test_predictions_weighted"], color=colors[1], linestyle='--')
        plot(nb, "Train Resampled", train_labels, train_predictions_resampled, color=colors[2])
        plot(nb, "Test Resampled", test_labels, test_predictions_resampled, color=colors[2], linestyle='--')
        nb["plt"].legend(loc='lower right')
