"""Mirror tests of the model-level Keras API: Input, functional chains, nested models,
get_layer/pop/trainable, metric names and history keys, the callback protocol, batch sources.

Each test builds the same thing in npnet and in Keras 3 and compares what users observe.
"""

import json

import numpy as np
import pytest
import keras

import npnet
from npnet import layers

pytestmark = pytest.mark.reference

N, D, K = 40, 6, 3


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, D), dtype=np.float32), rng.integers(0, K, n)


def pair(hidden_activation="relu", output_activation=None):
    """An npnet model and a Keras model with the same weights: Input(D) -> Dense(5) -> Dense(K)."""
    ours = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(5, activation=hidden_activation),
                             layers.Dense(K, activation=output_activation)])
    theirs = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(5, activation=hidden_activation),
                               keras.layers.Dense(K, activation=output_activation)])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def test_input_then_layers_builds_at_once_like_keras():
    ours, theirs = pair()
    assert ours.built and ours.input_shape == (None, D) == tuple(theirs.input_shape)
    assert ours.output_shape == (None, K) == tuple(theirs.output_shape)
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    x, _ = data()
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_functional_chain_equals_keras_functional_model():
    inputs = npnet.Input(shape=(D,))
    hidden = layers.Dense(5, activation="tanh")(inputs)
    ours = npnet.Model(inputs=inputs, outputs=layers.Dense(K, activation="softmax")(hidden))
    k_inputs = keras.Input(shape=(D,))
    k_hidden = keras.layers.Dense(5, activation="tanh")(k_inputs)
    theirs = keras.Model(k_inputs, keras.layers.Dense(K, activation="softmax")(k_hidden))
    theirs.set_weights(ours.get_weights())
    x, _ = data()
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in ours.layers] == [hidden.layer.name, ours.layers[-1].name]


def test_graphs_that_are_not_chains_and_subclassing_are_refused_clearly():
    a, b = npnet.Input(shape=(D,)), npnet.Input(shape=(D,))
    with pytest.raises(NotImplementedError, match="one input and one output; received 2 inputs"):
        npnet.Model([a, b], layers.Dense(2)(a))
    with pytest.raises(ValueError, match="reached another Input"):
        npnet.Model(a, layers.Dense(2)(b))
    with pytest.raises(NotImplementedError, match="subclassing Model is not supported"):
        npnet.Model()
    with pytest.raises(TypeError, match="symbolic tensor"):
        np.asarray(a)


def test_a_model_nested_in_sequential_is_the_probability_model_of_the_current_tutorial():
    ours, theirs = pair()  # logits out, as in the current classification tutorial
    x, y = data()
    ours.compile(optimizer="adam", loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    probability_ours = npnet.Sequential([ours, layers.Softmax()])
    probability_theirs = keras.Sequential([theirs, keras.layers.Softmax()])
    p_ours = probability_ours.predict(x, verbose=0)
    np.testing.assert_allclose(p_ours, probability_theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_ours.sum(axis=1), 1, rtol=1e-6)
    ours.fit(x, y, epochs=1, verbose=0)  # the nested model shares its layers: training shows through
    assert not np.allclose(probability_ours.predict(x, verbose=0), p_ours)


def test_get_layer_pop_and_trainable_like_keras():
    ours, theirs = pair()
    assert ours.get_layer(index=0) is ours.layers[0]
    assert ours.get_layer(name=ours.layers[1].name) is ours.layers[1]
    with pytest.raises(ValueError, match="No such layer: 'nope'"):
        ours.get_layer("nope")
    ours.layers[0].trainable = theirs.layers[0].trainable = False
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 2
    lines = []
    ours.summary(print_fn=lines.append)
    assert "Non-trainable params: 35 (140.00 B)" in lines[0] and "Trainable params: 18" in lines[0]
    popped, popped_keras = ours.pop(), theirs.pop()
    assert len(ours.layers) == len(theirs.layers) == 1 and popped.units == popped_keras.units == K


def summary_twins(built=True):
    """npnet and Keras models with the same names (flatten, hidden, out), the hidden frozen."""
    first = [npnet.Input(shape=(2, 3))] if built else []
    ours = npnet.Sequential(first + [layers.Flatten(name="flatten"), layers.Dense(5, name="hidden"),
                                     layers.Dense(K, name="out")], name="twins")
    first = [keras.Input(shape=(2, 3))] if built else []
    theirs = keras.Sequential(first + [keras.layers.Flatten(name="flatten"), keras.layers.Dense(5, name="hidden"),
                                       keras.layers.Dense(K, name="out")], name="twins")
    ours.layers[1].trainable = theirs.layers[1].trainable = False
    return ours, theirs


def summary_lines(model, **kwargs):
    captured = []
    model.summary(print_fn=captured.append, **kwargs)
    return [line for line in "".join(captured).splitlines() if not line.startswith(" Backend:")]


@pytest.mark.parametrize("kwargs", [
    {"line_length": 80}, {"line_length": 50}, {"positions": [0.5, 0.8, 1.0]},
    {"show_trainable": True, "line_length": 80}, {"show_trainable": True, "line_length": 64},
    {"layer_range": ["hidden", "out"]}, {"layer_range": ["out", "flat"]}, {"expand_nested": True},
], ids=["line-80", "line-50", "positions", "trainable-80", "trainable-64", "range", "range-reversed", "nested"])
def test_summary_arguments_draw_the_table_keras_draws(kwargs):
    ours, theirs = summary_twins()
    assert summary_lines(ours, **kwargs) == summary_lines(theirs, **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"show_trainable": True, "line_length": 76}])
def test_summary_of_an_unbuilt_model_shows_question_marks_as_keras_does(kwargs):
    ours, theirs = summary_twins(built=False)
    assert summary_lines(ours, **kwargs) == summary_lines(theirs, **kwargs)


def layer_configs(model):
    return [layer.get_config() for layer in model.layers if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_clone_model_has_the_same_config_and_fresh_weights_like_keras(functional):
    ours, theirs = pair()
    if functional:
        inputs = npnet.Input(shape=(D,))
        ours = npnet.Model(inputs, layers.Dense(K, name="out")(layers.Dense(5, name="hidden")(inputs)), name="f")
        inputs = keras.Input(shape=(D,))
        theirs = keras.Model(inputs, keras.layers.Dense(K, name="out")(keras.layers.Dense(5, name="hidden")(inputs)),
                             name="f")
    ours.layers[-2].trainable = theirs.layers[-2].trainable = False  # the hidden Dense
    for model, module in ((ours, npnet), (theirs, keras)):
        model.compile(optimizer=module.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        clone = module.models.clone_model(model)
        assert type(clone) is type(model) and clone.name == model.name
        assert layer_configs(clone) == layer_configs(model)
        assert functional or clone.get_config() == model.get_config()  # Keras renames a graph's inputs
        assert not any(a is b for a, b in zip(clone.layers, model.layers))
        assert [layer.trainable for layer in clone.layers] == [layer.trainable for layer in model.layers]
        kernels = [(np.asarray(a), np.asarray(b)) for a, b in zip(clone.get_weights(), model.get_weights())
                   if np.ndim(a) == 2]
        assert kernels and not any(np.array_equal(a, b) for a, b in kernels)  # freshly drawn
        # Keras 3 compiles the clone of a compiled model, with an optimizer of its own.
        assert clone.compiled and clone.optimizer is not model.optimizer
        assert float(np.asarray(clone.optimizer.learning_rate)) == pytest.approx(0.01)
    x, y = data()
    before = ours.get_weights()
    npnet.models.clone_model(ours).fit(x, y, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))  # nothing shared


def test_clone_model_of_an_uncompiled_model_is_uncompiled_and_refuses_graph_rewrites():
    ours, theirs = pair()
    assert not npnet.models.clone_model(ours).compiled and not keras.models.clone_model(theirs).compiled
    with pytest.raises(NotImplementedError, match="clone_function"):
        npnet.models.clone_model(ours, clone_function=lambda layer: layer)


def test_a_frozen_layer_does_not_train_and_the_others_do():
    ours, _ = pair()
    ours.layers[0].trainable = False
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert ours.backend_name == "numba"  # the kernels skip a frozen layer's update
    frozen, trained = ours.layers[0].get_weights(), ours.layers[1].get_weights()
    ours.fit(*data(), epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, ours.layers[0].get_weights()))
    assert not np.array_equal(trained[0], ours.layers[1].get_weights()[0])
    assert len(ours.optimizer.state["m"]) == 2  # state for the trainable kernel and bias only


def test_dense_input_dim_and_json_round_trip():
    model = npnet.Sequential([layers.Dense(4, input_dim=D, activation="relu"), layers.Dense(K)])
    assert model.input_shape == (None, D) and model.built
    copy = npnet.models.model_from_json(model.to_json())
    assert [type(layer).__name__ for layer in copy.layers] == ["Dense", "Dense"]
    assert [w.shape for w in copy.weights] == [w.shape for w in model.weights]
    assert json.loads(model.to_json())["class_name"] == "Sequential"
    with pytest.raises(ValueError, match="model_from_json expects"):
        npnet.models.model_from_json(json.dumps({"class_name": "Lambda"}))


@pytest.mark.parametrize("metric", ["accuracy", "acc", "sparse_categorical_accuracy"])
def test_history_keys_follow_the_metric_names_as_in_keras(metric):
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    histories = []
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[metric])
        histories.append(model.fit(x, y, epochs=1, verbose=0, validation_split=0.25).history)
    assert sorted(histories[0]) == sorted(histories[1])
    results = [model.evaluate(x, y, verbose=0, return_dict=True) for model in (ours, theirs)]
    assert sorted(results[0]) == sorted(results[1])


def test_early_stopping_monitors_the_sparse_categorical_accuracy_key():
    ours, _ = pair(output_activation="softmax")
    ours.compile(optimizer=npnet.optimizers.SGD(1e-12), loss="sparse_categorical_crossentropy",
                 metrics=["sparse_categorical_accuracy"])
    stop = npnet.callbacks.EarlyStopping(monitor="val_sparse_categorical_accuracy", patience=1)
    history = ours.fit(*data(), epochs=10, verbose=0, validation_split=0.25, callbacks=[stop])
    assert len(history.epoch) == 2  # no change with a zero learning rate: stops after patience


class Recorder:
    """Builds a callback of either library that records (hook, argument, logs keys)."""

    HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
             "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin",
             "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
             "on_predict_batch_end"]

    @classmethod
    def make(cls, base):
        calls = []

        def hook(name):
            def record(self, *args, **kwargs):
                args = args + tuple(kwargs.values())
                takes_index = name.endswith(("batch_begin", "batch_end")) or "epoch" in name
                logs = args[1] if takes_index and len(args) > 1 else (args[0] if args and not takes_index else None)
                calls.append((name, args[0] if takes_index else None,
                              None if logs is None else sorted(k for k in logs if k != "outputs")))
            return record
        callback = type("Record", (base,), {name: hook(name) for name in cls.HOOKS})()
        return callback, calls


def test_the_callback_protocol_calls_the_same_hooks_in_the_same_order_as_keras():
    ours, theirs = pair(output_activation="softmax")
    x, y = data(8)
    recorded = []
    for model, base in ((ours, npnet.callbacks.Callback), (theirs, keras.callbacks.Callback)):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        callback, calls = Recorder.make(base)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y), callbacks=[callback])
        model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[callback])
        model.predict(x, batch_size=4, verbose=0, callbacks=[callback])
        recorded.append(calls)
    assert [c[:2] for c in recorded[0]] == [c[:2] for c in recorded[1]]
    assert all(logs is not None for _, _, logs in recorded[0])  # always a dict, never None
    epoch_ends = [(c, k) for c, k in zip(recorded[0], recorded[1]) if c[0] == "on_epoch_end"]
    assert all(ours_call[2] == keras_call[2] for ours_call, keras_call in epoch_ends)


def test_history_params_and_initial_epoch():
    ours, _ = pair(output_activation="softmax")
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = ours.fit(*data(), epochs=3, initial_epoch=1, batch_size=8, verbose=0)
    assert history.epoch == [1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 5}


def test_validation_freq_validates_only_on_the_chosen_epochs():
    ours, _ = pair(output_activation="softmax")
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data()
    history = ours.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=2)
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    history = ours.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=[1, 4])
    assert len(history.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="validation_freq must be a positive integer"):
        ours.fit(x, y, validation_freq=0, verbose=0)


class Batches(npnet.data.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_a_pydataset_and_a_generator_train_like_the_same_arrays():
    x, y = data()
    models = []
    for _ in range(3):
        npnet.utils.set_random_seed(5)
        model, _ = pair(output_activation="softmax")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      backend="numpy")
        models.append(model)
    dataset = Batches(x, y, 8)
    arrays = models[0].fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    from_dataset = models[1].fit(dataset, epochs=2, verbose=0).history
    generator = ((x[i:i + 8], y[i:i + 8]) for _ in range(2) for i in range(0, N, 8))
    from_generator = models[2].fit(generator, steps_per_epoch=5, epochs=2, verbose=0).history
    assert dataset.epochs_ended == 2
    for history in (from_dataset, from_generator):
        np.testing.assert_allclose(history["loss"], arrays["loss"], rtol=1e-6)
        assert history["accuracy"] == arrays["accuracy"]
    assert models[1].evaluate(dataset, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


def test_batches_are_checked_and_tensorflow_pipelines_get_a_clear_error():
    model, _ = pair(output_activation="softmax")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data()
    bad = iter([(x[:8], y[:8] + 10)])
    with pytest.raises(ValueError, match=r"y of batch 0 must hold class labels in \[0, 3\)"):
        model.fit(bad, verbose=0)
    import tensorflow as tf
    with pytest.raises(TypeError, match="runs without TensorFlow. Pass NumPy arrays"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), verbose=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("how", ["sample_weight", "class_weight"])
def test_sample_and_class_weights_train_like_keras(how, backend):
    """Weighted training: the loss is Σ w_i l_i / n and each sample's gradient is scaled by w_i,
    as in Keras; from the same weights, SGD histories and final weights agree, on both backends."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    weights = np.linspace(0.2, 3.0, N).astype(np.float32)
    kwargs = {"sample_weight": weights if how != "class_weight" else None,
              "class_weight": {0: 1.0, 1: 2.5, 2: 0.5} if how != "sample_weight" else None}
    histories = []
    for model, sgd, options in ((ours, npnet.optimizers.SGD(0.1), {"backend": backend}),
                                (theirs, keras.optimizers.SGD(0.1), {})):
        model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy", metrics=["accuracy"], **options)
        histories.append(model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, **kwargs).history)
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-5)
    assert histories[0]["accuracy"] == pytest.approx(histories[1]["accuracy"])
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_and_sample_weight_together_are_refused_as_in_keras():
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        theirs.fit(x, y, sample_weight=np.ones(N), class_weight={0: 1, 1: 1, 2: 1}, verbose=0)
    with pytest.raises(ValueError, match="class_weight and sample_weight at the same time"):
        ours.fit(x, y, sample_weight=np.ones(N), class_weight={0: 1, 1: 1, 2: 1}, verbose=0)


def test_a_weighted_fit_runs_on_the_numba_backend_the_default_chose():
    ours, _ = pair(output_activation="softmax")
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert ours.backend_name == "numba"
    calls = []
    train_steps = ours.backend.train_steps
    ours.backend.train_steps = lambda *args, **kwargs: calls.append(kwargs) or train_steps(*args, **kwargs)
    history = ours.fit(*data(), sample_weight=np.full(N, 2.0), verbose=0)
    assert np.isfinite(history.history["loss"][0]) and ours.optimizer.iterations == 2
    assert calls and all(np.array_equal(call["sample_weight"], np.full(N, 2.0)) for call in calls)


def test_bad_weights_are_refused_before_anything_changes():
    ours, _ = pair(output_activation="softmax")
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = ours.get_weights()
    x, y = data()
    with pytest.raises(ValueError, match=r"sample_weight must hold 40 finite numbers"):
        ours.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match=r"class_weight has no weight for the classes \[2\]"):
        ours.fit(x, y, class_weight={0: 1.0, 1: 1.0}, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))
    assert ours.optimizer.iterations == 0


def test_a_reiterable_of_batches_restarts_every_epoch_like_a_dataloader():
    """A PyTorch DataLoader is neither a sequence nor an iterator: an object with __iter__
    (and __len__). Each epoch reads it afresh, so training on it equals training on the
    arrays in the same order."""
    x, y = np.random.default_rng(0).random((40, 4), dtype=np.float32), np.arange(40) % 3

    class Loader:
        def __len__(self):
            return 4

        def __iter__(self):
            return iter([[x[i:i + 10], y[i:i + 10]] for i in range(0, 40, 10)])

    def model():
        npnet.utils.set_random_seed(3)
        m = npnet.Sequential([layers.Dense(5, activation="relu", input_shape=(4,)), layers.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    on_loader, on_arrays = model(), model()
    history = on_loader.fit(Loader(), epochs=3, validation_data=Loader(), verbose=0)
    on_arrays.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0)
    assert history.params["steps"] == 4 and len(history.history["val_loss"]) == 3
    for ours, theirs in zip(on_loader.get_weights(), on_arrays.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert on_loader.evaluate(Loader(), verbose=0) == pytest.approx(on_arrays.evaluate(x, y, verbose=0))
