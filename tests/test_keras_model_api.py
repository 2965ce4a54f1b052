"""Mirror tests of the model-level Keras API: Input, functional chains, nested models,
get_layer/pop/trainable, metric names and history keys, the callback protocol, batch sources.

Each test builds the same thing in npnet and in Keras 3 and compares what users observe.
"""

import json
import warnings

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


@pytest.mark.parametrize("declared", [{"shape": (4, 3)}, {"input_shape": (4, 3)}, {"batch_shape": (None, 4, 3)},
                                      {"shape": (4, 3), "name": "pixels"}])
def test_input_layer_declares_the_input_of_a_sequential_like_keras(declared, tmp_path):
    """``InputLayer`` first in a Sequential builds the model for its shape and is not one of
    ``model.layers``, as in Keras 3 (``input_shape`` is tf.keras's older name for ``shape``);
    its config is Keras's, and a saved model loads in Keras with the same input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3 warns that input_shape is its older name
        keras_input = keras.layers.InputLayer(**declared)
    ours = npnet.Sequential([layers.InputLayer(**declared), layers.Flatten(), layers.Dense(5, activation="relu"),
                             layers.Dense(K)])
    theirs = keras.Sequential([keras_input, keras.layers.Flatten(), keras.layers.Dense(5, activation="relu"),
                               keras.layers.Dense(K)])
    assert ours.built and ours.input_shape == tuple(theirs.input_shape)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(0).random((N, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    config = layers.InputLayer(**declared).get_config()
    keras_config = keras_input.get_config()
    assert config == {key: keras_config[key] for key in config if key != "name"} | {"name": config["name"]}
    if "name" in declared:
        assert config["name"] == keras_config["name"]
    ours.save(tmp_path / "ours.keras")
    loaded = keras.models.load_model(tmp_path / "ours.keras")
    assert tuple(loaded.input_shape) == ours.input_shape
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6)


def test_input_layer_output_starts_a_functional_chain_like_keras():
    """``InputLayer(...).output`` is the symbolic input of a functional model, as in Keras."""
    entry = layers.InputLayer(shape=(D,), name="features")
    ours = npnet.Model(entry.output, layers.Dense(K)(layers.Dense(5, activation="tanh")(entry.output)))
    keras_entry = keras.layers.InputLayer(shape=(D,), name="features")
    theirs = keras.Model(keras_entry.output,
                         keras.layers.Dense(K)(keras.layers.Dense(5, activation="tanh")(keras_entry.output)))
    theirs.set_weights(ours.get_weights())
    x, _ = data()
    np.testing.assert_allclose(ours.predict({"features": x}, verbose=0), theirs.predict({"features": x}, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arguments", [{}, {"shape": (3,), "batch_shape": (None, 3)},
                                       {"batch_size": 4, "batch_shape": (None, 3)}])
def test_input_layer_refuses_what_keras_refuses(arguments):
    with pytest.raises(ValueError):
        keras.layers.InputLayer(**arguments)
    with pytest.raises(ValueError, match="shape"):
        layers.InputLayer(**arguments)


def test_input_layer_refuses_what_npnet_cannot_be_given_and_must_come_first():
    for option in ("sparse", "ragged", "optional"):
        with pytest.raises(ValueError, match=f"takes {option}=False; received {option}=True"):
            layers.InputLayer(shape=(3,), **{option: True})
    with pytest.raises(TypeError, match="input_tensor must be an npnet.Input"):
        layers.InputLayer(input_tensor=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="shape or input_shape"):
        layers.InputLayer(shape=(3,), input_shape=(3,))
    model = npnet.Sequential([layers.Dense(3, input_shape=(3,))])
    before = model.get_weights()
    with pytest.raises(ValueError, match="must come first"):
        model.add(layers.InputLayer(shape=(3,)))
    assert len(model.layers) == 1 and all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


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
    # as Keras's functional model, the layers start with the input's InputLayer
    assert [layer.name for layer in ours.layers[1:]] == [hidden.layer.name, ours.layers[-1].name]
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert ours.get_layer(index=0) is ours.layers[0] and ours.layers[0].output is inputs
    assert ours.layers[0].get_weights() == [] and ours.layers[0].count_params() == 0


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
    # a repeated pipeline becomes an endless generator, which needs steps_per_epoch
    with pytest.raises(TypeError, match=r"generator .*\.repeat\(\).*steps_per_epoch=N"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8), steps_per_epoch=2, verbose=0)


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


@pytest.mark.parametrize("backend", ["numpy", None], ids=["numpy", "auto"])
@pytest.mark.parametrize("targets, loss, output", [
    ("labels", "sparse_categorical_crossentropy", "softmax"),
    ("one-hot", "categorical_crossentropy", "softmax"),
    ("soft rows", "mean_squared_error", "linear"),
    ("soft rows", "kl_divergence", "softmax"),
])
def test_class_weight_finds_each_class_as_keras_does(targets, loss, output, backend):
    """Keras takes the class of a target row of several values from its argmax (one-hot or
    not, whatever the loss), and gives a class the dict does not name the weight 1."""
    ours, theirs = pair(output_activation=output)
    x, y = data()
    if targets == "one-hot":
        y = np.eye(K, dtype=np.float32)[y]
    elif targets == "soft rows":
        y = np.random.default_rng(3).dirichlet(np.ones(K), size=N).astype(np.float32)
    class_weight = {1: 3.0, 2: 0.25}  # class 0 unnamed
    histories = []
    for model, sgd, options in ((ours, npnet.optimizers.SGD(0.1), {"backend": backend}),
                                (theirs, keras.optimizers.SGD(0.1), {})):
        model.compile(optimizer=sgd, loss=loss, **options)
        histories.append(model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                                   class_weight=class_weight).history)
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-5)
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
    with pytest.raises(ValueError, match=r"class_weight's weights must be finite numbers"):
        ours.fit(x, y, class_weight={0: 1.0, 1: float("nan")}, verbose=0)
    with pytest.raises(TypeError, match=r"class_weight must be a dict"):
        ours.fit(x, y, class_weight=[1.0, 2.0, 3.0], verbose=0)
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


# ----------------------------------------------------------------------------- calling in training mode


def dropout_pair(rate=0.5):
    """Input(D) -> Dense(8) -> Dropout(rate) in npnet and Keras, with the same weights."""
    ours = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(8), layers.Dropout(rate)])
    theirs = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(8), keras.layers.Dropout(rate)])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def assert_dropped_like_inverted_dropout(out, inference, rate=0.5):
    """Each entry either dropped (0) or the inference value scaled by 1 / (1 - rate)."""
    out = np.asarray(out)
    dropped = out == 0
    assert 0.25 < dropped.mean() < 0.75
    np.testing.assert_allclose(out[~dropped], inference[~dropped] / (1 - rate), rtol=1e-5)


@pytest.mark.parametrize("backend", [None, "numpy"], ids=["uncompiled", "numpy"])
def test_calling_a_model_with_training_true_runs_dropout_like_keras(backend):
    """``model(x, training=True)`` is Keras's forward pass in training mode (Dropout on, its
    masks drawn from npnet's seeded generator); ``training=False`` or None is inference."""
    ours, theirs = dropout_pair()
    if backend is not None:
        ours.compile(optimizer="sgd", loss="mse", backend=backend)
    x, _ = data()
    inference = np.asarray(theirs(x, training=False))
    for training in (False, None):
        np.testing.assert_allclose(ours(x, training=training), inference, rtol=1e-5, atol=1e-6)
    for model in (ours, theirs):
        assert_dropped_like_inverted_dropout(model(x, training=True), inference)
    npnet.utils.set_random_seed(3)
    first = ours(x, training=True)
    npnet.utils.set_random_seed(3)
    np.testing.assert_array_equal(ours(x, training=True), first)


def test_calling_a_layer_with_training_true_runs_dropout_like_keras():
    x, _ = data()
    for layer in (layers.Dropout(0.5), keras.layers.Dropout(0.5)):
        assert_dropped_like_inverted_dropout(layer(x, training=True), x)
        np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


# ----------------------------------------------------------------------------- the logs of the end hooks


class EndLogs:
    """A callback of ``base`` recording the logs of on_train_end, on_test_end, on_predict_end."""

    @staticmethod
    def make(base):
        seen = {}

        def hook(name):
            return lambda self, logs=None: seen.setdefault(name, []).append(logs)
        names = ("on_train_end", "on_test_end", "on_predict_end")
        return type("EndLogs", (base,), {name: hook(name) for name in names})(), seen


def test_the_end_hooks_receive_the_logs_keras_gives_them():
    """on_train_end: the last epoch's logs (validation included); on_test_end: evaluate's
    results; on_predict_end: an empty dict, as in Keras."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    recorded = []
    for model, base, sgd in ((ours, npnet.callbacks.Callback, npnet.optimizers.SGD(0.1)),
                             (theirs, keras.callbacks.Callback, keras.optimizers.SGD(0.1))):
        model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        callback, seen = EndLogs.make(base)
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                            validation_data=data(12, seed=1), callbacks=[callback])
        assert seen["on_train_end"] == [{key: values[-1] for key, values in history.history.items()}]
        model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[callback])
        model.predict(x, verbose=0, callbacks=[callback])
        model.fit(x, y, epochs=2, initial_epoch=2, verbose=0, callbacks=[callback])  # no epoch ran
        recorded.append(seen)
    ours_seen, keras_seen = recorded
    assert ours_seen.keys() == keras_seen.keys()
    for name in ours_seen:
        assert len(ours_seen[name]) == len(keras_seen[name]), name
        for ours_logs, keras_logs in zip(ours_seen[name], keras_seen[name]):
            assert ours_logs.keys() == keras_logs.keys(), name
            for key in ours_logs:
                assert ours_logs[key] == pytest.approx(keras_logs[key], rel=1e-5), (name, key)


# ----------------------------------------------------------------------------- the progress bar


@pytest.mark.parametrize("epochs", [1, 2])
def test_fit_prints_an_epoch_header_only_for_several_epochs_as_keras(capsys, epochs):
    """Keras 3's ProgbarLogger prints ``Epoch i/n`` only when ``epochs > 1``."""
    ours, theirs = pair(output_activation="softmax")
    headers = []
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        capsys.readouterr()
        model.fit(*data(), epochs=epochs, verbose=2)
        headers.append([line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")])
    expected = [f"Epoch {e + 1}/{epochs}" for e in range(epochs)] if epochs > 1 else []
    assert headers[0] == headers[1] == expected


# ----------------------------------------------------------------------------- weighted evaluation


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_evaluate_with_sample_weight_matches_keras(backend):
    """Keras weighs the loss (Σ w_i l_i / n over the batches, by their sizes) and leaves the
    metrics given as ``metrics=`` unweighted; test_on_batch and validation_data's third
    entry weigh the same way. The weights are not uniform across batches, so the loss of an
    unweighted evaluate differs."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    weights = np.linspace(0.1, 3.0, N).astype(np.float32)
    results = []
    for model, options in ((ours, {"backend": backend}), (theirs, {})):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy", "sparse_categorical_crossentropy"], **options)
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                            validation_data=(x, y, weights)).history
        results.append((model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True),
                        model.test_on_batch(x[:8], y[:8], sample_weight=weights[:8], return_dict=True),
                        {key: values[0] for key, values in history.items() if key.startswith("val_")}))
    for ours_logs, keras_logs in zip(*results):
        assert ours_logs.keys() == keras_logs.keys()
        for key in ours_logs:
            assert ours_logs[key] == pytest.approx(keras_logs[key], rel=1e-5), key
    assert results[0][0]["loss"] != pytest.approx(ours.evaluate(x, y, batch_size=16, verbose=0)[0], rel=1e-3)
    with pytest.raises(ValueError, match=r"sample_weight must hold 40 finite numbers"):
        ours.evaluate(x, y, sample_weight=np.ones(3), verbose=0)


# ----------------------------------------------------------------------------- steps_per_epoch on arrays


def fit_recording_warnings(model, *args, **kwargs):
    """``model.fit(...)``'s history and how many "ran out of data" warnings it gave."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(*args, **kwargs)
    return history, sum("ran out of data" in str(w.message) for w in caught)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("batch_size, steps_per_epoch, epochs", [(8, 2, 4), (8, 7, 2), (8, 5, 2), (None, 3, 2)])
def test_steps_per_epoch_on_arrays_takes_batches_as_keras(backend, batch_size, steps_per_epoch, epochs):
    """On arrays Keras 3 takes ``steps_per_epoch`` batches per epoch, each epoch going on
    where the last one stopped in the data; an epoch that reaches the end of the data
    before its steps ends there ("ran out of data") and the next one starts a new pass.
    Without batch_size the batches are ``ceil(n / steps_per_epoch)`` samples. The
    validation takes the first ``validation_steps`` batches every time. N = 40: 5 batches of 8."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    results = []
    for model, sgd, options in ((ours, npnet.optimizers.SGD(0.1), {"backend": backend}),
                                (theirs, keras.optimizers.SGD(0.1), {})):
        model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy", metrics=["accuracy"], **options)
        results.append(fit_recording_warnings(
            model, x, y, batch_size=batch_size, steps_per_epoch=steps_per_epoch, epochs=epochs, shuffle=False,
            verbose=0, validation_data=data(20, seed=1), validation_steps=2))
    (ours_history, ours_warnings), (keras_history, keras_warnings) = results
    assert ours_history.params == keras_history.params
    assert ours_warnings == keras_warnings
    assert int(ours.optimizer.iterations) == int(theirs.optimizer.iterations)
    assert ours_history.history.keys() == keras_history.history.keys()
    for key, values in ours_history.history.items():
        np.testing.assert_allclose(values, keras_history.history[key], rtol=1e-5, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_epoch_keeps_a_pass_s_shuffle_until_its_data_is_used():
    """With shuffle=True, as Keras: the order is drawn when a pass over the data starts and
    the epochs inside that pass go on through the same order."""
    model, _ = pair(output_activation="softmax")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    calls = []
    train_steps = model.backend.train_steps

    def record(x, y, order, batch_size, first_step, n_steps, **kwargs):
        calls.append((None if order is None else tuple(order), first_step, n_steps))
        return train_steps(x, y, order, batch_size, first_step, n_steps, **kwargs)
    model.backend.train_steps = record
    fit_recording_warnings(model, *data(), batch_size=8, steps_per_epoch=3, epochs=4, verbose=0)
    assert [call[1:] for call in calls] == [(0, 3), (3, 2), (0, 3), (3, 2)]
    assert calls[0][0] == calls[1][0] != calls[2][0] == calls[3][0]
    assert sorted(calls[0][0]) == list(range(N))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("batch_size, steps", [(8, 2), (None, 3), (16, 9)])
def test_evaluate_and_predict_take_the_first_steps_batches_as_keras(backend, batch_size, steps):
    """``steps`` in evaluate and predict: the first ``steps`` batches (of ``ceil(n / steps)``
    samples without batch_size), and all of them with a "ran out of data" warning when the
    data hold fewer. N = 40."""
    import warnings
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    results = []
    for model, options in ((ours, {"backend": backend}), (theirs, {})):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], **options)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = model.evaluate(x, y, batch_size=batch_size, steps=steps, verbose=0)
            outputs = model.predict(x, batch_size=batch_size, steps=steps, verbose=0)
        results.append((scores, outputs, sum("ran out of data" in str(w.message) for w in caught)))
    (our_scores, our_outputs, our_warnings), (keras_scores, keras_outputs, keras_warnings) = results
    np.testing.assert_allclose(our_scores, keras_scores, rtol=1e-5)
    assert our_outputs.shape == keras_outputs.shape
    np.testing.assert_allclose(our_outputs, keras_outputs, rtol=1e-5, atol=1e-6)
    assert (our_warnings > 0) == (keras_warnings > 0)
    if batch_size == 8:
        assert our_outputs.shape[0] == 16
        assert our_scores[0] == pytest.approx(ours.evaluate(x[:16], y[:16], verbose=0)[0], rel=1e-6)


@pytest.mark.parametrize("steps", [0, -1, 2.5, "2", True])
def test_evaluate_and_predict_refuse_steps_that_are_not_positive_integers(steps):
    model, _ = pair()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    x, y = data()
    for call in (lambda: model.evaluate(x, y, steps=steps, verbose=0), lambda: model.predict(x, steps=steps, verbose=0)):
        with pytest.raises(ValueError, match=f"steps must be None or a positive integer; received {steps!r}"):
            call()


def test_input_dtype_is_the_float_type_as_in_keras():
    assert npnet.Input(shape=(3,)).dtype == keras.Input(shape=(3,)).dtype == "float32"
    assert npnet.Input(shape=(3,), dtype="float64").dtype == keras.Input(shape=(3,), dtype="float64").dtype
    assert layers.Dense(2)(npnet.Input(shape=(3,), dtype=np.float64)).dtype == "float64"


def test_a_model_called_on_an_input_joins_the_chain_like_a_keras_model():
    inner = npnet.Sequential([layers.Dense(5, activation="relu"), layers.Dense(K)])
    inputs = npnet.Input(shape=(D,))
    ours = npnet.Model(inputs, layers.Softmax()(inner(inputs)))
    k_inner = keras.Sequential([keras.layers.Dense(5, activation="relu"), keras.layers.Dense(K)])
    k_inputs = keras.Input(shape=(D,))
    theirs = keras.Model(k_inputs, keras.layers.Softmax()(k_inner(k_inputs)))
    theirs.set_weights(ours.get_weights())
    assert ours.layers[1:3] == inner.layers  # the same layers: training either trains both
    x, _ = data()
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(None, 6\); it was called on .*\(None, 4\)"):
        inner(npnet.Input(shape=(4,)))


def test_adding_or_merging_symbolic_tensors_says_models_are_chains():
    a = npnet.Input(shape=(D,))
    b = layers.Dense(D)(a)
    for combine in (lambda: a + b, lambda: b * 2, lambda: 1 - a):
        with pytest.raises(TypeError, match="functional models are chains.*no Add/concatenate"):
            combine()
    with pytest.raises(AttributeError, match="no merge layers or branches"):
        layers.concatenate([a, b])


def test_logs_history_and_return_dict_list_their_keys_in_keras_s_order():
    """Keras 3 sorts the logs' keys (``accuracy`` before ``loss``), the validation's after
    the training's; ``evaluate``'s list stays loss first, then the metrics as compiled."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    seen = []
    for model, base, options in ((ours, npnet.callbacks.Callback, {"backend": "numpy"}),
                                 (theirs, keras.callbacks.Callback, {})):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["sparse_top_k_categorical_accuracy", "accuracy"], **options)
        keys = []
        recorder = type("Keys", (base,), {
            "on_train_batch_end": lambda self, batch, logs=None: keys.append(("batch", list(logs))),
            "on_epoch_end": lambda self, epoch, logs=None: keys.append(("epoch", list(logs)))})()
        history = model.fit(x, y, batch_size=16, epochs=1, validation_split=0.25, verbose=0, callbacks=[recorder])
        scores = model.evaluate(x, y, verbose=0)
        named = model.evaluate(x, y, verbose=0, return_dict=True)
        as_compiled = [named[key] for key in ("loss", "sparse_top_k_categorical_accuracy", "accuracy")]
        assert [float(s) for s in scores] == pytest.approx(as_compiled, rel=1e-6)
        seen.append((keys, list(history.history), list(named)))
    assert seen[0] == seen[1]
    assert seen[0][1] == ["accuracy", "loss", "sparse_top_k_categorical_accuracy", "val_accuracy", "val_loss",
                          "val_sparse_top_k_categorical_accuracy"]


@pytest.mark.parametrize("how", ["sample_weight", "class_weight"])
def test_validation_split_takes_its_share_of_sample_weight_as_keras_does(how):
    """Keras splits sample_weight with the data, so val_loss is weighted by the last rows'
    weights; class_weight weighs the training rows only."""
    ours, theirs = pair(output_activation="softmax")
    x, y = data()
    weighting = ({"sample_weight": np.linspace(0.1, 4.0, N).astype(np.float32)} if how == "sample_weight"
                 else {"class_weight": {0: 0.2, 1: 3.0, 2: 1.0}})
    histories = []
    for model, sgd, options in ((ours, npnet.optimizers.SGD(0.1), {}), (theirs, keras.optimizers.SGD(0.1), {})):
        model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy", **options)
        histories.append(model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                                   validation_split=0.25, **weighting).history)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5, err_msg=key)


def test_layer_and_model_weight_lists_follow_trainable_like_keras():
    """``trainable_weights``, ``non_trainable_weights`` and Keras 3's ``*_variables`` names, on
    layers and models, before and after freezing a layer."""
    ours, theirs = pair()
    for frozen in (False, True):
        ours.layers[0].trainable = theirs.layers[0].trainable = not frozen
        for a, b in [(ours, theirs)] + list(zip(ours.layers, theirs.layers)):
            for name in ("weights", "variables", "trainable_weights", "non_trainable_weights",
                         "trainable_variables", "non_trainable_variables"):
                described = [[(w.path.split("/")[-1], tuple(w.shape)) for w in getattr(m, name)] for m in (a, b)]
                assert described[0] == described[1], (a.name, name)
    assert ours.layers[0].trainable_weights == [] and ours.layers[0].non_trainable_weights[0] is ours.layers[0].kernel
    unbuilt = layers.Dense(2)
    assert unbuilt.trainable_weights == [] == keras.layers.Dense(2).trainable_weights


def test_model_layers_is_a_new_list_like_keras():
    """Changing the list ``model.layers`` returns leaves the model as it was (add and pop change it)."""
    ours, theirs = pair()
    x, _ = data()
    for model in (ours, theirs):
        listed = model.layers
        listed.pop()
        listed.append(layers.Dense(9) if model is ours else keras.layers.Dense(9))
        assert len(model.layers) == 2 and len(model.weights) == 4
        assert tuple(model.predict(x, verbose=0).shape) == (N, K)
    assert ours.layers[0] is ours.get_layer(index=0)


@pytest.mark.parametrize("functional", [False, True])
def test_two_layers_of_one_name_are_refused_like_keras(functional):
    def build(lib):
        hidden, out = lib.layers.Dense(4, name="twin"), lib.layers.Dense(K, name="twin")
        if not functional:
            return lib.Sequential([lib.Input(shape=(D,)), hidden, out])
        inputs = lib.Input(shape=(D,))
        return lib.Model(inputs, out(hidden(inputs)))

    with pytest.raises(ValueError, match="unique") as caught:
        build(npnet)
    assert "'twin'" in str(caught.value)
    with pytest.raises(ValueError, match="unique"):
        build(keras)


def test_a_built_dense_refuses_inputs_of_another_width_clearly():
    """Keras refuses with its input spec; npnet names the layer, the width it was built for
    and the shape received, and runs nothing."""
    ours, theirs = layers.Dense(3, name="narrow"), keras.layers.Dense(3)
    ours(np.ones((1, 4), np.float32)), theirs(np.ones((1, 4), np.float32))
    kernel = ours.kernel.copy()
    for shape in ((1, 5), (2, 3, 4)):
        with pytest.raises(ValueError, match=r"'narrow'.*\(batch, 4\).*received \(" + ", ".join(map(str, shape))):
            ours(np.ones(shape, np.float32))
        np.testing.assert_array_equal(ours.kernel, kernel)
    with pytest.raises(ValueError):
        theirs(np.ones((1, 5), np.float32))
    assert ours(np.ones((2, 4), np.float32)).shape == (2, 3)


def test_importing_ops_from_npnet_says_what_to_write_instead():
    """``from keras import ops`` (the keras-io guides' setup line) with npnet: an ImportError
    that says npnet has no ops and to write NumPy, as ``npnet.ops`` does."""
    with pytest.raises(ImportError, match="no keras.ops: write NumPy"):
        from npnet import ops  # noqa: F401
    with pytest.raises(AttributeError, match="no keras.ops: write NumPy"):
        npnet.ops  # noqa: B018
    assert not hasattr(npnet, "ops")


def test_a_built_layer_refuses_a_symbolic_input_of_another_width_at_the_call_like_keras():
    ours, theirs = layers.Dense(4, name="shared"), keras.layers.Dense(4)
    ours(npnet.Input(shape=(8,))), theirs(keras.Input(shape=(8,)))
    with pytest.raises(ValueError, match=r"'shared'.*\(batch, 8\).*received \(None, 5\)"):
        ours(npnet.Input(shape=(5,)))
    with pytest.raises(ValueError):
        theirs(keras.Input(shape=(5,)))


def test_a_list_holding_one_array_stands_for_that_array_like_keras():
    """A model built as ``Model([inputs], [outputs])`` (or any model) takes ``[x]`` and ``[y]``
    wherever it takes ``x`` and ``y``, as Keras reads a list as one array per input."""
    x, y = data()
    built = {}
    for lib in (npnet, keras):
        inputs = lib.Input(shape=(D,))
        model = lib.Model([inputs], [lib.layers.Dense(K)(inputs)])
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        built[lib.__name__] = model
    built["npnet"].set_weights(built["keras"].get_weights())
    results = {}
    for name, model in built.items():
        history = model.fit([x], [y], epochs=2, batch_size=8, shuffle=False, verbose=0,
                            validation_data=([x], [y]))
        results[name] = (history.history["loss"], history.history["val_loss"],
                         model.evaluate((x,), (y,), verbose=0), model.predict([x], verbose=0))
    for ours, theirs in zip(results["npnet"], results["keras"]):  # float32 sums in another order
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(built["npnet"]([x]), results["npnet"][3], rtol=1e-6)
    # rows given as Python lists are still data, not a list of inputs
    assert built["npnet"].predict([list(x[0])], verbose=0).shape == (1, K)


def test_a_layer_whose_backward_misnames_its_gradients_is_told_which_keys_it_needed():
    """Gradients returned under attribute names instead of ``layer.params`` keys: a clear
    error naming both, before any weight changes."""
    class Affine(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), initializer="ones")

        def forward(self, x, training=False):
            return x @ self.w, x

        def backward(self, dL_dy, x, need_input_grad=True):
            return dL_dy @ np.asarray(self.w).T, {"w": x.T @ dL_dy}

    model = npnet.Sequential([npnet.Input(shape=(D,)), Affine(name="affine")])
    model.compile(optimizer="sgd", loss="mse", backend="numpy")
    before = [w.copy() for w in model.get_weights()]
    x, _ = data()
    with pytest.raises(ValueError, match=r"'affine'.*expected \{'variable': \(6, 2\)\}; received \{'w': \(6, 2\)\}"):
        model.fit(x, np.zeros((N, 2), np.float32), verbose=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_boolean_inputs_read_as_zeros_and_ones_like_keras(backend):
    """Multi-hot features made with ``np.zeros(..., dtype=bool)`` train, evaluate and predict
    as their 0/1 floats do, in npnet as in Keras."""
    ours, theirs = pair()
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = data()
    flags = x > 0.5
    ours_history = ours.fit(flags, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    theirs_history = theirs.fit(flags, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=1e-5)
    # after 2 epochs the weights differ by float32 rounding, summed in another order
    np.testing.assert_allclose(ours.predict(flags, verbose=0), theirs.predict(flags, verbose=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.predict(flags, verbose=0), ours.predict(flags.astype(np.float32), verbose=0))


def nested_pair():
    """npnet and Keras ``Sequential([base, head])`` with ``base`` a Sequential of two Dense."""
    built = {}
    for lib in (npnet, keras):
        base = lib.Sequential([lib.Input(shape=(D,)), lib.layers.Dense(5, activation="relu", name="inner_a"),
                               lib.layers.Dense(4, name="inner_b")], name="base")
        built[lib.__name__] = lib.Sequential([base, lib.layers.Dense(K, name="head")], name="outer")
    built["keras"].set_weights(built["npnet"].get_weights())
    return built["npnet"], built["keras"]


def test_a_model_added_to_a_sequential_is_one_of_its_layers_like_keras():
    ours, theirs = nested_pair()
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers] == ["base", "head"]
    assert [type(layer).__name__ for layer in ours.layers] == ["Sequential", "Dense"]
    assert ours.get_layer("base") is ours.layers[0] and ours.get_layer(index=1).name == "head"
    with pytest.raises(ValueError, match="No such layer: 'inner_a'"):
        ours.get_layer("inner_a")  # as Keras: the layers of a model added are its own
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    lines = {}
    for key, model in (("ours", ours), ("theirs", theirs)):
        captured = []
        model.summary(print_fn=captured.append)
        lines[key] = [line for line in "".join(captured).splitlines() if not line.startswith(" Backend:")]
    assert lines["ours"] == lines["theirs"]
    x, _ = data()
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_freezing_the_model_added_freezes_all_of_it_like_keras(backend):
    """The transfer-learning recipe ``model.layers[0].trainable = False`` after nesting."""
    ours, theirs = nested_pair()
    ours.layers[0].trainable = theirs.layers[0].trainable = False
    assert (len(ours.trainable_weights), len(ours.non_trainable_weights)) == (
        len(theirs.trainable_weights), len(theirs.non_trainable_weights)) == (2, 4)
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    base_before = [w.copy() for w in ours.layers[0].get_weights()]
    x, y = data()
    ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for before, after in zip(base_before, ours.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # float32 sums in another order
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_pop_removes_a_model_added_whole_like_keras():
    ours, theirs = nested_pair()
    assert ours.pop().name == theirs.pop().name == "head"
    popped = ours.pop()
    assert popped.name == theirs.pop().name == "base" and type(popped) is npnet.Sequential
    assert ours.layers == [] and ours.weights == []
    assert popped.predict(data()[0], verbose=0).shape == (N, 4)  # the model popped still works alone


def test_a_model_whose_layers_do_not_all_fit_is_not_added_at_all():
    """Adding a model is all or nothing: here its second layer's name is taken."""
    outer = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(4, name="taken")], name="outer")
    outer.compile(optimizer="sgd", loss="mse")
    clash = npnet.Sequential([layers.Dense(4, name="fresh"), layers.Dense(2, name="taken")], name="clash")
    weights = [w.copy() for w in outer.get_weights()]
    with pytest.raises(ValueError, match="unique names.*'taken'"):
        outer.add(clash)
    assert [layer.name for layer in outer.layers] == ["taken"] and outer.output_shape == (None, 4)
    for before, after in zip(weights, outer.get_weights()):
        np.testing.assert_array_equal(before, after)
    x = data()[0]
    outer.fit(x, np.zeros((N, 4), np.float32), verbose=0)  # still trains as it was
    with pytest.raises(ValueError, match="already in the model"):
        outer.add(outer.layers[0])


def test_a_loss_given_per_output_is_the_one_output_s_loss_like_keras():
    """Keras takes ``loss=[loss]`` and ``loss={output name: loss}`` for a model of one output."""
    x, y = data()
    histories = []
    for loss in ("sparse_categorical_crossentropy", ["sparse_categorical_crossentropy"],
                 {"scores": npnet.losses.SparseCategoricalCrossentropy()}):
        for lib in (npnet, keras):
            npnet.utils.set_random_seed(0)
            inputs = lib.Input(shape=(D,))  # functional: Keras names a Sequential's output None
            model = lib.Model(inputs, lib.layers.Dense(K, activation="softmax", name="scores")(inputs))
            if lib is keras:
                model.set_weights(histories[-1][1])
                loss = {"scores": "sparse_categorical_crossentropy"} if isinstance(loss, dict) else loss
            model.compile(optimizer=lib.optimizers.SGD(0.1), loss=loss)
            weights = [w.copy() for w in model.get_weights()]
            history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
            histories.append((history, weights))
    for ours, theirs in zip(histories[::2], histories[1::2]):
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    model = npnet.Sequential([npnet.Input(shape=(D,)), layers.Dense(K, name="scores")])
    with pytest.raises(ValueError, match=r"one output, 'scores'.*received keys \['other'\]"):
        model.compile(loss={"other": "mse"})
    with pytest.raises(ValueError, match="a list of loss must hold one; received 2"):
        model.compile(loss=["mse", "mae"])


def test_input_takes_keras_s_arguments_in_keras_s_order():
    assert npnet.Input((D,), None, "float64").dtype == keras.Input((D,), None, "float64").dtype == "float64"
    assert npnet.Input((D,), sparse=False, ragged=False, optional=False).shape == (None, D)
    for option in ("sparse", "ragged", "optional"):
        with pytest.raises(ValueError, match=f"Input takes {option}=False"):
            npnet.Input((D,), **{option: True})


def test_unnamed_functional_models_are_numbered_like_keras():
    npnet.backend.clear_session()
    keras.backend.clear_session()
    names = {}
    for lib in (npnet, keras):
        made = []
        for _ in range(2):
            inputs = lib.Input(shape=(D,))
            made.append(lib.Model(inputs, lib.layers.Dense(K)(inputs)).name)
        names[lib.__name__] = made
    assert names["npnet"] == names["keras"] == ["functional", "functional_1"]


def test_a_model_from_an_intermediate_tensor_is_refused_with_the_way_to_write_it():
    inputs = npnet.Input(shape=(D,))
    hidden = layers.Dense(4, name="encoder")(inputs)
    with pytest.raises(ValueError, match=r"not the output of layer 'encoder'.*npnet.Input\(shape=\(4,\)\)"):
        npnet.Model(hidden, layers.Dense(K)(hidden))


class _Table:
    """The part of a pandas DataFrame's interface npnet reads (``columns``, ``dtypes`` with
    ``tolist()``, ``to_numpy(dtype=...)``), with NumPy column types: pandas is not among the
    test dependencies, and ``pd.get_dummies`` makes exactly such a table of floats and bools."""

    def __init__(self, **columns):
        self.columns, self._values = list(columns), list(columns.values())
        self.dtypes = type("Types", (), {"tolist": lambda _: [np.asarray(v).dtype for v in self._values]})()

    def to_numpy(self, dtype=None):
        return np.column_stack([np.asarray(v, dtype=dtype) for v in self._values])

    def __array__(self, dtype=None, copy=None):  # what np.asarray makes of a mixed table: objects
        return np.column_stack([np.asarray(v, dtype=object) for v in self._values])


def test_a_table_of_number_and_boolean_columns_reads_as_its_numbers():
    x, y = data()
    table = _Table(first=x[:, 0], flag=x[:, 1] > 0.5, count=(x[:, 2] * 10).astype(np.int64))
    assert np.asarray(table).dtype == object  # what NumPy alone would hand over
    model = npnet.Sequential([npnet.Input(shape=(3,)), layers.Dense(K)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="numpy")
    np.testing.assert_array_equal(model.predict(table, verbose=0),
                                  model.predict(table.to_numpy(dtype=np.float64), verbose=0))
    model.fit(table, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"columns must be numbers or booleans; received 'name' \(<U1\).*get_dummies"):
        model.predict(_Table(first=x[:2, 0], name=np.array(["a", "b"])), verbose=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_sparse_matrix_of_samples_trains_and_predicts_as_its_dense_array_like_keras(backend):
    """A one-hot encoder's SciPy sparse output, as x and as validation data."""
    import scipy.sparse
    ours, theirs = pair()
    ours.compile(optimizer=npnet.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", backend=backend)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = data()
    x[x < 0.6] = 0.0
    sparse = scipy.sparse.csr_matrix(x)
    histories = [model.fit(sparse, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                           validation_data=(sparse, y)).history for model in (ours, theirs)]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    # after 2 epochs the weights differ by float32 rounding, summed in another order
    np.testing.assert_allclose(ours.predict(sparse, verbose=0), theirs.predict(sparse, verbose=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.predict(sparse, verbose=0), ours.predict(x, verbose=0))


@pytest.mark.parametrize("shape", [(7,), (2, 5), (2, 3, 4)])
def test_the_softmax_activation_normalises_the_last_axis_like_keras(shape):
    z = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    ours = layers.Activation("softmax")(z)
    theirs = np.asarray(keras.layers.Activation("softmax")(z))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.sum(axis=-1), 1.0, rtol=1e-6)
