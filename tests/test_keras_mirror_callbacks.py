"""Mirror tests: npnet's callbacks beside keras.callbacks, on twin tiny models.

The two models start from the same weights and train with plain SGD on unshuffled data, so
their losses agree to float32 rounding; each callback is given the same arguments in both,
and what it did (files written and their names, CSV rows, learning rates and history keys,
the epoch training stopped at, the hooks called) is compared. Where a decision must not
hinge on rounding, a scripting callback writes the monitored value into the logs.
TensorFlow is imported at the top: without it these tests fail rather than skip.
"""

import csv
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf  # Keras's backend; tf.keras.backend.get_value
import keras

import npnet
from npnet import callbacks

pytestmark = pytest.mark.reference

EPOCHS = 4


def data(n=24, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return x, x[:, :3].argmax(axis=1)


def twins(learning_rate=0.1):
    npnet.utils.set_random_seed(0)
    ours = npnet.Sequential([npnet.layers.Dense(5, activation="relu", input_shape=(4,)),
                             npnet.layers.Dense(3, activation="softmax")])
    ours.compile(optimizer=npnet.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                               keras.layers.Dense(3, activation="softmax")])
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def fit_both(make_callbacks, epochs=EPOCHS, **kwargs):
    """Fit both twins with ``make_callbacks(framework)``; return the two histories."""
    ours, theirs = twins(kwargs.pop("learning_rate", 0.1))
    x, y = data()
    settings = dict(batch_size=8, epochs=epochs, shuffle=False, verbose=0, validation_data=data(12, seed=1))
    settings.update(kwargs)
    ours_history = ours.fit(x, y, callbacks=make_callbacks(callbacks), **settings)
    theirs_history = theirs.fit(x, y, callbacks=make_callbacks(keras.callbacks), **settings)
    return ours_history, theirs_history, ours, theirs


def make_scripted(module, name, values):
    """A callback of ``module`` writing ``values[epoch]`` into the logs as ``name``."""
    class Scripted(module.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[name] = values[epoch]
    return Scripted()


# ----------------------------------------------------------------------------- ModelCheckpoint


def stub_saving(monkeypatch):
    """save_weights/save write a marker file (the .weights.h5 and .keras writers are another
    engineer's work); ModelCheckpoint's job here is which paths it saves to, and when."""
    def write(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("saved")
    monkeypatch.setattr(npnet.Sequential, "save_weights", write, raising=False)
    monkeypatch.setattr(npnet.Sequential, "save", write)


@pytest.mark.parametrize("pattern", ["cp-{epoch:04d}.weights.h5", "w-{epoch:02d}-{val_loss:.2f}.weights.h5"])
def test_model_checkpoint_formats_file_names_like_keras(tmp_path, monkeypatch, pattern):
    stub_saving(monkeypatch)
    names = {}
    for framework in ("ours", "theirs"):
        directory = tmp_path / framework
        names[framework] = directory

    def make(module):
        where = names["ours" if module is callbacks else "theirs"]
        return [module.ModelCheckpoint(str(where / pattern), save_weights_only=True)]

    fit_both(make)
    assert sorted(os.listdir(names["ours"])) == sorted(os.listdir(names["theirs"]))
    assert len(os.listdir(names["ours"])) == EPOCHS


@pytest.mark.parametrize("mode, values", [("max", [0.2, 0.5, 0.4, 0.9]), ("min", [3.0, 2.0, 2.5, 1.0]),
                                          ("auto", [0.3, 0.1, 0.6, 0.6])])
def test_model_checkpoint_save_best_only_saves_the_same_epochs(tmp_path, monkeypatch, mode, values):
    stub_saving(monkeypatch)
    monitor = "val_accuracy_scripted" if mode != "auto" else "val_loss_script"
    saved = {}

    def make(module):
        where = tmp_path / ("ours" if module is callbacks else "theirs")
        saved[module is callbacks] = where
        return [make_scripted(module, monitor, values),
                module.ModelCheckpoint(str(where / "m-{epoch}.keras"), monitor=monitor,
                                       save_best_only=True, mode="min" if mode == "auto" else mode)]

    fit_both(make)
    assert sorted(os.listdir(saved[True])) == sorted(os.listdir(saved[False]))


def test_model_checkpoint_every_n_batches_and_batch_placeholder(tmp_path, monkeypatch):
    stub_saving(monkeypatch)
    saved = {}

    def make(module):
        where = tmp_path / ("ours" if module is callbacks else "theirs")
        saved[module is callbacks] = where
        return [module.ModelCheckpoint(str(where / "e{epoch}-b{batch}.weights.h5"), save_weights_only=True,
                                       save_freq=2)]

    fit_both(make, epochs=2)
    assert sorted(os.listdir(saved[True])) == sorted(os.listdir(saved[False]))


def test_model_checkpoint_refuses_the_paths_keras_refuses(tmp_path):
    with pytest.raises(ValueError):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)
    with pytest.raises(ValueError, match="must end in '.weights.h5'"):
        callbacks.ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)
    with pytest.raises(ValueError):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.txt"))
    with pytest.raises(ValueError, match="must end in '.keras'"):
        callbacks.ModelCheckpoint(str(tmp_path / "m.txt"))


def test_model_checkpoint_writes_a_loadable_npnet_model(tmp_path):
    ours, _ = twins()
    x, y = data()
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "best.npnet"), monitor="loss", save_best_only=True)
    ours.fit(x, y, epochs=3, verbose=0, callbacks=[checkpoint])
    loaded = npnet.load_model(tmp_path / "best.npnet")
    assert checkpoint.best == pytest.approx(loaded.evaluate(x, y, verbose=0)[0], abs=0.5)


# ----------------------------------------------------------------------------- CSVLogger


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("with_validation", [True, False])
def test_csv_logger_writes_keras_rows(tmp_path, with_validation):
    def make(module):
        return [module.CSVLogger(str(tmp_path / ("ours.csv" if module is callbacks else "theirs.csv")))]

    extra = {} if with_validation else {"validation_data": None}
    fit_both(make, **extra)
    ours, theirs = read_csv(tmp_path / "ours.csv"), read_csv(tmp_path / "theirs.csv")
    assert ours[0] == theirs[0], "header"
    assert len(ours) == len(theirs) == EPOCHS + 1
    for row_ours, row_theirs in zip(ours[1:], theirs[1:]):
        assert row_ours[0] == row_theirs[0]
        for a, b in zip(row_ours[1:], row_theirs[1:]):
            assert (a == b == "NA") or float(a) == pytest.approx(float(b), rel=1e-4, abs=1e-6)


def test_csv_logger_appends_without_a_second_header(tmp_path):
    for module, name in ((callbacks, "ours.csv"), (keras.callbacks, "theirs.csv")):
        path = tmp_path / name
        model = twins()[0 if module is callbacks else 1]
        x, y = data()
        model.fit(x, y, epochs=1, verbose=0, callbacks=[module.CSVLogger(str(path))])
        model.fit(x, y, epochs=2, verbose=0, callbacks=[module.CSVLogger(str(path), append=True, separator=";")])
    ours, theirs = read_csv(tmp_path / "ours.csv"), read_csv(tmp_path / "theirs.csv")
    assert [r[0].split(";")[0] for r in ours] == [r[0].split(";")[0] for r in theirs]


# ----------------------------------------------------------------------------- learning rates


def test_learning_rate_scheduler_matches_keras():
    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.5

    ours, theirs, _, _ = fit_both(lambda m: [m.LearningRateScheduler(schedule)])
    assert set(ours.history) == set(theirs.history)
    np.testing.assert_allclose(ours.history["learning_rate"], theirs.history["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(ours.history["loss"], theirs.history["loss"], rtol=1e-5)


def test_learning_rate_scheduler_one_argument_and_verbose(capsys):
    ours, theirs, _, _ = fit_both(lambda m: [m.LearningRateScheduler(lambda epoch: 0.05 / (epoch + 1), verbose=1)],
                                  epochs=2)
    np.testing.assert_allclose(ours.history["learning_rate"], theirs.history["learning_rate"], rtol=1e-6)
    printed = [line for line in capsys.readouterr().out.splitlines() if "LearningRateScheduler" in line]
    assert printed[:2] == printed[2:] and len(printed) == 4


def test_learning_rate_scheduler_refuses_a_non_float():
    for module, twin in ((callbacks, 0), (keras.callbacks, 1)):
        model = twins()[twin]
        with pytest.raises(ValueError, match="should be a float"):
            model.fit(*data(), epochs=1, verbose=0, callbacks=[module.LearningRateScheduler(lambda e, lr: "x")])


@pytest.mark.parametrize("kwargs", [dict(patience=1), dict(patience=1, cooldown=1, factor=0.5),
                                    dict(patience=0, min_lr=0.02), dict(patience=2, min_delta=0.1)])
def test_reduce_lr_on_plateau_matches_keras(kwargs):
    values = [1.0, 0.99, 0.995, 0.9, 0.95, 0.96, 0.97, 0.5]

    def make(module):
        return [make_scripted(module, "val_score", values), module.ReduceLROnPlateau(monitor="val_score", mode="min",
                                                                                     **kwargs)]
    ours, theirs, _, _ = fit_both(make, epochs=len(values))
    assert set(ours.history) == set(theirs.history)
    np.testing.assert_allclose(ours.history["learning_rate"], theirs.history["learning_rate"], rtol=1e-6)


def test_reduce_lr_on_plateau_on_a_real_val_loss_matches_keras():
    ours, theirs, _, _ = fit_both(lambda m: [m.ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0.02)],
                                  epochs=6, learning_rate=0.5)
    np.testing.assert_allclose(ours.history["learning_rate"], theirs.history["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(ours.history["val_loss"], theirs.history["val_loss"], rtol=1e-4)


def test_reduce_lr_refuses_factor_of_one_as_keras():
    with pytest.raises(ValueError):
        keras.callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)


# ----------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("kwargs, values", [
    (dict(patience=1), [0.5, 0.6, 0.55, 0.7, 0.8]),
    (dict(patience=2, min_delta=0.05), [1.0, 0.97, 0.9, 0.88, 0.87, 0.86]),
    (dict(patience=1, baseline=0.3), [0.5, 0.4, 0.35, 0.2, 0.25, 0.3]),
    (dict(patience=1, restore_best_weights=True), [0.5, 0.3, 0.4, 0.45, 0.2]),
    (dict(patience=0, start_from_epoch=2), [0.5, 0.6, 0.7, 0.8, 0.9]),
])
def test_early_stopping_stops_at_the_same_epoch_as_keras(kwargs, values):
    stoppers = {}

    def make(module):
        stoppers[module is callbacks] = module.EarlyStopping(monitor="val_score", mode="min", **kwargs)
        return [make_scripted(module, "val_score", values), stoppers[module is callbacks]]

    ours, theirs, ours_model, theirs_model = fit_both(make, epochs=len(values))
    assert ours.epoch == theirs.epoch
    assert stoppers[True].stopped_epoch == stoppers[False].stopped_epoch
    assert stoppers[True].best_epoch == stoppers[False].best_epoch
    for a, b in zip(ours_model.get_weights(), theirs_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("monitor, mode", [("val_accuracy", "max"), ("val_loss", "min"), ("loss", "min")])
def test_monitor_direction_is_keras_s(monitor, mode):
    ours, theirs = twins()
    theirs.fit(*data(), epochs=1, verbose=0)  # Keras builds its metrics on the first batch
    stopper = keras.callbacks.EarlyStopping(monitor=monitor)
    stopper.set_model(theirs)
    stopper._set_monitor_op()
    keras_mode = "max" if stopper.monitor_op is keras.ops.greater else "min"
    assert keras_mode == mode == callbacks.monitor_mode(monitor, "auto", ours)
    for name in ("val_auc", "precision", "val_recall", "val_binary_accuracy", "acc"):
        assert callbacks.monitor_mode(name) == "max", name
    for name in ("val_mse", "mae", "val_mean_squared_error"):
        assert callbacks.monitor_mode(name) == "min", name


def test_terminate_on_nan_acts_and_prints_like_keras(capsys):
    for module in (callbacks, keras.callbacks):
        callback = module.TerminateOnNaN()
        callback.set_model(types.SimpleNamespace(stop_training=False))
        callback.on_batch_end(3, {"loss": 0.5})
        assert not callback.model.stop_training
        callback.on_batch_end(4, {"loss": float("nan")})
        assert callback.model.stop_training
        with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 7"):
            raising = module.TerminateOnNaN(raise_error=True)
            raising.set_model(types.SimpleNamespace(stop_training=False))
            raising.on_batch_end(7, {"loss": float("inf")})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Batch 4: Invalid loss, terminating training"] * 2


def test_terminate_on_nan_in_fit_stops_with_finite_weights():
    ours, _ = twins(learning_rate=1e30)
    x, y = data()
    with pytest.warns(RuntimeWarning, match="not finite"):
        history = ours.fit(x * 1e20, y, epochs=3, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.epoch) <= 1
    assert all(np.isfinite(w).all() for w in ours.get_weights())


# ----------------------------------------------------------------------------- LambdaCallback


def test_lambda_callback_calls_the_same_hooks_as_keras():
    calls = {True: [], False: []}

    def make(module):
        record = calls[module is callbacks]
        return [module.LambdaCallback(
            on_train_begin=lambda logs: record.append(("train_begin",)),
            on_epoch_begin=lambda epoch, logs: record.append(("epoch_begin", epoch)),
            on_epoch_end=lambda epoch, logs: record.append(("epoch_end", epoch, sorted(logs))),
            on_batch_end=lambda batch, logs: record.append(("batch_end", batch)),
            on_train_end=lambda logs: record.append(("train_end",)))]

    fit_both(make, epochs=2)
    assert calls[True] == calls[False]


def test_lambda_callback_refuses_a_name_that_is_no_hook():
    with pytest.raises(TypeError, match="on_epoch_ending"):
        callbacks.LambdaCallback(on_epoch_ending=print)


# ----------------------------------------------------------------------------- BackupAndRestore


class Crash(Exception):
    pass


def make_crasher(module, at_epoch, seen):
    class Crasher(module.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([w.copy() for w in self.model.get_weights()])
            if epoch == at_epoch:
                raise Crash()
    return Crasher()


def test_backup_and_restore_writes_keras_metadata_and_restores_the_state(tmp_path):
    seen = {}
    for module, twin, name in ((callbacks, 0, "ours"), (keras.callbacks, 1, "theirs")):
        model, seen[name] = twins()[twin], []
        with pytest.raises(Crash):
            model.fit(*data(), epochs=EPOCHS, batch_size=8, verbose=0,
                      callbacks=[module.BackupAndRestore(str(tmp_path / name)), make_crasher(module, 1, seen[name])])
    ours_meta = json.loads((tmp_path / "ours" / "training_metadata.json").read_text())
    theirs_meta = json.loads((tmp_path / "theirs" / "training_metadata.json").read_text())
    assert ours_meta == theirs_meta == {"epoch": 2, "batch": 0}  # backed up before the crash hook ran

    ours = twins()[0]
    backup = callbacks.BackupAndRestore(str(tmp_path / "ours"))
    backup.set_model(ours)
    backup.on_train_begin({})
    assert ours._initial_epoch == 2
    assert ours.optimizer.iterations == 6  # two epochs of 3 batches of 8
    for restored, at_crash in zip(ours.get_weights(), seen["ours"][-1]):
        np.testing.assert_array_equal(restored, at_crash)


def test_backup_and_restore_resumes_like_keras(tmp_path):
    epochs_run = {}
    for module, twin, name in ((callbacks, 0, "ours"), (keras.callbacks, 1, "theirs")):
        model, seen = twins()[twin], []
        with pytest.raises(Crash):
            model.fit(*data(), epochs=EPOCHS, verbose=0, shuffle=False,
                      callbacks=[module.BackupAndRestore(str(tmp_path / name)), make_crasher(module, 1, seen)])
        history = model.fit(*data(), epochs=EPOCHS, verbose=0, shuffle=False,
                            callbacks=[module.BackupAndRestore(str(tmp_path / name))])
        epochs_run[name] = (history.epoch, model.get_weights())
        assert not os.path.exists(tmp_path / name)  # deleted after the finished fit
    assert epochs_run["ours"][0] == epochs_run["theirs"][0]
    for a, b in zip(epochs_run["ours"][1], epochs_run["theirs"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- callbacks as the keras-io guide writes them


def test_batch_hooks_get_logs_as_a_keyword_like_keras():
    """Keras calls ``on_train_batch_end(batch, logs=logs)``: a hook written with ``**kwargs``
    works, and sees the same keys."""
    def make(module):
        class KeywordHooks(module.Callback):
            seen = []

            def on_train_batch_end(self, batch, **kwargs):
                self.seen.append((batch, sorted(kwargs["logs"])))

            def on_test_batch_end(self, batch, **kwargs):
                self.seen.append(("test", batch, sorted(kwargs["logs"])))
        KeywordHooks.seen = []
        return KeywordHooks()
    made = {}
    fit_both(lambda module: [made.setdefault(module.__name__, make(module))], epochs=1)
    assert made["npnet.callbacks"].seen == made["keras.callbacks"].seen != []


def test_evaluate_and_predict_callbacks_see_epochs_in_params_like_keras():
    params = {}

    def make(module, key):
        class Params(module.Callback):
            def on_test_begin(self, logs=None):
                params[key, "test"] = dict(self.params)

            def on_predict_begin(self, logs=None):
                params[key, "predict"] = dict(self.params)
        return Params()
    ours, theirs = twins()
    x, y = data()
    for key, model, module in (("ours", ours, callbacks), ("theirs", theirs, keras.callbacks)):
        model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[make(module, key)])
        model.predict(x, batch_size=8, verbose=0, callbacks=[make(module, key)])
    for kind in ("test", "predict"):
        assert params["ours", kind] == params["theirs", kind] == {"verbose": 0, "epochs": 1, "steps": 3}


@pytest.mark.parametrize("hook", ["on_train_begin", "on_epoch_begin"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_stop_training_set_before_the_first_step_stops_after_one_step_like_keras(hook, backend):
    """Keras checks ``stop_training`` after every step: set at the start of training or of an
    epoch, one step runs. npnet, which runs up to 64 steps per call without batch hooks,
    runs that one step too."""
    def make(module):
        class Stop(module.Callback):
            pass
        setattr(Stop, hook, lambda self, *args, **kwargs: setattr(self.model, "stop_training", True))
        return Stop()
    ours, theirs = twins()
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    x, y = data(96)
    ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[make(callbacks)])
    theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[make(keras.callbacks)])
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 1
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_callback_assigning_the_learning_rate_variable_trains_like_keras():
    """The guide's ``self.model.optimizer.learning_rate.assign(...)``, ``backend.get_value``
    (``tf.keras.backend``'s, as the older guide reads the rate) and a schedule that reaches 0
    (which trains nothing that epoch)."""
    rates = [0.2, 0.1, 0.0, 0.05]

    def make(module, backend):
        class Assigning(module.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                current = float(backend.get_value(self.model.optimizer.learning_rate))
                assert current == pytest.approx(0.1 if epoch == 0 else rates[epoch - 1])
                self.model.optimizer.learning_rate.assign(rates[epoch])
        return Assigning()
    ours, theirs = twins()
    x, y = data()
    settings = dict(batch_size=8, epochs=4, shuffle=False, verbose=0)
    ours_history = ours.fit(x, y, callbacks=[make(callbacks, npnet.backend)], **settings)
    theirs_history = theirs.fit(x, y, callbacks=[make(keras.callbacks, tf.keras.backend)], **settings)
    np.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours.optimizer.learning_rate.numpy() == np.float32(0.05) == theirs.optimizer.learning_rate.numpy()
