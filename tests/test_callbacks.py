"""Callbacks: the hooks fit calls, EarlyStopping (stopping and restoring the best weights),
and stopping on a NaN/inf loss with the last finite weights left in place."""

import warnings

import numpy as np
import pytest

import npnet
from npnet import callbacks, training

from core_helpers import assert_unchanged, assert_weights_equal, snapshot, tiny_data, tiny_model


class Scripted(callbacks.Callback):
    """Writes a scripted value into the epoch logs (so EarlyStopping's decisions are exact)
    and records the weights at the end of every epoch, before anything can restore them."""

    def __init__(self, name, values):
        super().__init__()
        self.name, self.values = name, values
        self.weights_at_epoch_end = []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]
        self.weights_at_epoch_end.append(self.model.get_weights())


def fit_with_script(values, epochs=None, **early_stopping):
    npnet.utils.set_random_seed(0)
    model = tiny_model()
    x, y = tiny_data(40)
    script = Scripted(early_stopping.get("monitor", "score"), values)
    early_stopping.setdefault("monitor", "score")
    stopper = callbacks.EarlyStopping(**early_stopping)
    history = model.fit(x, y, epochs=epochs or len(values), verbose=0, callbacks=[script, stopper])
    return model, history, script, stopper


# ----------------------------------------------------------------------------- hooks


class Log(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_fit_calls_every_hook_in_order():
    model = tiny_model()
    x, y = tiny_data(70)
    log = Log()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[log], validation_split=0.1)
    assert log.model is model
    steps = [("batch_end", i, ["accuracy", "loss"]) for i in range(2)]  # 63 samples -> 2 steps
    epoch_end = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert log.calls == ([("train_begin",), ("epoch_begin", 0)] + steps + [("epoch_end", 0, epoch_end)]
                         + [("epoch_begin", 1)] + steps + [("epoch_end", 1, epoch_end), ("train_end",)])


def test_a_callback_can_stop_training():
    class StopAfterFirstEpoch(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    model = tiny_model()
    x, y = tiny_data(40)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert history.epoch == [0]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_batch_hook_can_stop_training_after_that_batch(backend):
    """As in Keras: the epoch ends right after the batch whose hook set stop_training, its
    logs reach on_epoch_end, and no later batch is trained."""
    class StopAtBatch2(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches, self.epochs = [], []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(batch)
            if batch == 2:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((epoch, logs))

    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend)
    x, y = tiny_data(200)
    stopper = StopAtBatch2()
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[stopper])
    assert stopper.batches == [0, 1, 2]
    assert model.optimizer.iterations == 3
    assert history.epoch == [0] and [epoch for epoch, _ in stopper.epochs] == [0]
    assert set(stopper.epochs[0][1]) == {"loss", "accuracy"}


def test_callbacks_must_be_callback_objects():
    model = tiny_model()
    x, y = tiny_data(40)
    before = snapshot(model)
    with pytest.raises(TypeError, match="npnet.callbacks.Callback instances; received"):
        model.fit(x, y, verbose=0, callbacks=[lambda: None])
    assert_unchanged(model, before)


# ----------------------------------------------------------------------------- EarlyStopping


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    model, history, script, stopper = fit_with_script(
        [1.0, 0.8, 0.9, 0.85, 0.7, 0.6], patience=2, restore_best_weights=True)
    # Best at epoch 1; epochs 2 and 3 do not improve -> stop at the end of epoch 3.
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best == 0.8 and stopper.best_epoch == 1
    assert_weights_equal(model.get_weights(), script.weights_at_epoch_end[1], "restored weights")
    # ... which really differ from where training stopped.
    assert not np.array_equal(script.weights_at_epoch_end[3][0], script.weights_at_epoch_end[1][0])


def test_early_stopping_without_restore_keeps_the_last_weights():
    model, history, script, _ = fit_with_script([1.0, 0.8, 0.9, 0.85, 0.7], patience=2)
    assert history.epoch == [0, 1, 2, 3]
    assert_weights_equal(model.get_weights(), script.weights_at_epoch_end[3])


def test_early_stopping_min_delta_and_max_mode():
    # Improvements smaller than min_delta do not count: best stays at epoch 0.
    model, history, script, stopper = fit_with_script(
        [1.0, 0.95, 0.93, 0.5], patience=2, min_delta=0.1, restore_best_weights=True)
    assert history.epoch == [0, 1, 2] and stopper.best_epoch == 0
    assert_weights_equal(model.get_weights(), script.weights_at_epoch_end[0])
    # 'acc' in the name means higher is better (mode='auto').
    _, history, _, stopper = fit_with_script([0.5, 0.7, 0.6, 0.65, 0.9], monitor="val_accuracy", patience=2)
    assert stopper.mode == "max" and history.epoch == [0, 1, 2, 3] and stopper.best == 0.7


def test_early_stopping_restores_the_best_weights_even_without_stopping_early():
    """Keras 3 restores the best weights at the end of training when restore_best_weights is set."""
    model, history, script, stopper = fit_with_script([1.0, 0.5, 0.7], patience=5, restore_best_weights=True)
    assert history.epoch == [0, 1, 2] and stopper.stopped_epoch == 0
    assert_weights_equal(model.get_weights(), script.weights_at_epoch_end[1])


def test_early_stopping_baseline_gates_the_patience_not_the_best():
    """As in Keras 3: a value that misses the baseline still becomes the best (and is what
    gets restored) but does not reset the patience count."""
    model, history, script, stopper = fit_with_script(
        [1.0, 0.9, 1.1, 1.2, 1.3], patience=2, baseline=0.5, restore_best_weights=True)
    assert history.epoch == [0, 1, 2]
    assert stopper.best == 0.9 and stopper.best_epoch == 1
    assert_weights_equal(model.get_weights(), script.weights_at_epoch_end[1])
    # Without the baseline, epoch 1's improvement resets the count: two more epochs run.
    _, history, _, _ = fit_with_script([1.0, 0.9, 1.1, 1.2, 1.3], patience=2)
    assert history.epoch == [0, 1, 2, 3]


def test_early_stopping_prints_when_verbose(capsys):
    fit_with_script([1.0, 2.0, 3.0], patience=1, restore_best_weights=True, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out


def test_early_stopping_on_a_real_validation_loss():
    """Validation labels of which 40% contradict the training labels: val_loss first falls,
    then rises as the model grows confident, so EarlyStopping stops and puts back the
    weights of the epoch with the lowest val_loss."""
    npnet.utils.set_random_seed(0)
    model = tiny_model(hidden=16, optimizer=npnet.optimizers.Adam(learning_rate=0.01))
    x, y = tiny_data(128)
    y_val = y.copy()
    y_val[:51] = (y[:51] + 1) % 3
    recorder = Scripted("unused", [0.0] * 40)
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=40, verbose=0, validation_data=(x, y_val),
                        callbacks=[recorder, stopper])
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert best > 0, "the scenario should improve before it worsens"
    assert len(val_loss) == best + 3 < 40  # stopped 2 epochs after the best one
    assert stopper.best_epoch == best
    assert_weights_equal(model.get_weights(), recorder.weights_at_epoch_end[best])
    assert model.evaluate(x, y_val, verbose=0)[0] == pytest.approx(val_loss[best], rel=1e-12)


def test_early_stopping_warns_about_an_unknown_monitor():
    model = tiny_model()
    x, y = tiny_data(40)
    with pytest.warns(RuntimeWarning, match=r"'val_loss'.*not among the logged values \['accuracy', 'loss'\]"):
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping()])
    assert history.epoch == [0, 1]


def test_early_stopping_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'; received 'up'"):
        callbacks.EarlyStopping(mode="up")


# ----------------------------------------------------------------------------- NaN / inf


def test_overflow_on_the_first_batch_stops_with_the_weights_untouched():
    model = tiny_model()
    x, y = tiny_data(64)
    before = snapshot(model)
    with pytest.warns(RuntimeWarning, match=r"Epoch 1, batch 0: .*not finite.*training stopped") as record:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow notices
            warnings.filterwarnings("always", message="Epoch", category=RuntimeWarning)
            history = model.fit(x * 1e30, y, epochs=3, verbose=0)
    assert len([w for w in record if "training stopped" in str(w.message)]) == 1
    assert model.stop_training
    assert history.history == {} and history.epoch == []
    assert_unchanged(model, before)  # weights, optimizer state and step count


def test_a_later_overflowing_batch_keeps_the_weights_of_the_last_finite_step():
    x, y = tiny_data(64)
    npnet.utils.set_random_seed(0)
    model = tiny_model()
    npnet.utils.set_random_seed(0)
    one_step = tiny_model()
    _, _, grads = training.loss_and_gradients(one_step.layers, one_step.loss, x[:32], y[:32])
    one_step.optimizer.apply_gradients(one_step.weights, grads)

    bad_x = np.concatenate([x[:32], x[32:] * 1e30])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(bad_x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    stops = [w for w in record if issubclass(w.category, RuntimeWarning) and "training stopped" in str(w.message)]
    assert len(stops) == 1 and "Epoch 1, batch 1" in str(stops[0].message)
    assert model.optimizer.iterations == 1
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert_weights_equal(model.get_weights(), one_step.get_weights(), "weights after the stop")
    for slot in ("m", "v"):
        assert_weights_equal(model.optimizer.state[slot], one_step.optimizer.state[slot], slot)
    assert history.epoch == [0]  # no further epochs


def test_terminate_on_nan_is_accepted_for_keras_compatibility():
    model = tiny_model()
    x, y = tiny_data(40)
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert history.epoch == [0, 1]


def test_one_callback_given_alone_works_as_a_list_of_one():
    """Keras flattens ``callbacks``, so ``callbacks=EarlyStopping(...)`` is a list of one;
    something that is neither a callback nor a list of them is refused by name."""
    model, (x, y) = tiny_model(), tiny_data()
    stopper = npnet.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=stopper)
    assert len(history.history["loss"]) == 2 and stopper.stopped_epoch == 1
    model.evaluate(x, y, verbose=0, callbacks=npnet.callbacks.Callback())
    with pytest.raises(TypeError, match="callbacks must be a list of npnet.callbacks.Callback instances; received 3"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=3)
