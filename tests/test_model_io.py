"""A model's symbolic inputs and outputs, mirrored against Keras 3: ``model.inputs`` /
``model.outputs`` / ``model.input`` / ``model.output``, ``layer.input`` / ``layer.output``,
feature extraction with ``Model(model.inputs, model.get_layer(name).output)``, and data
passed as ``{"input name": array}``.

Each value test builds the same model on both sides with the same weights and compares what
users observe; the refusals check that the message says what was expected and received.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import npnet  # noqa: E402
from npnet import layers  # noqa: E402

pytestmark = [pytest.mark.reference,
              # Keras 3.15 warns when a functional model given inputs as a list (model.inputs)
              # or a dict receives one array; the values are right.
              pytest.mark.filterwarnings("ignore:The structure of `inputs` doesn't match")]

N, D, K = 24, 6, 3
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, D), dtype=np.float32), rng.integers(0, K, n)


def twins(kind, input_name=None):
    """npnet and Keras models with the same weights and names: (D) -> hidden Dense(5, relu)
    -> Dense(4, tanh) named 'middle' -> out Dense(K, softmax), built as ``kind``."""
    def build(module):
        stack = [module.layers.Dense(5, activation="relu", name="hidden"),
                 module.layers.Dense(4, activation="tanh", name="middle"),
                 module.layers.Dense(K, activation="softmax", name="out")]
        if kind == "functional":
            inputs = outputs = module.Input(shape=(D,), name=input_name)
            for layer in stack:
                outputs = layer(outputs)
            return module.Model(inputs=inputs, outputs=outputs, name="twin")
        if kind == "sequential":
            return module.Sequential([module.Input(shape=(D,), name=input_name)] + stack, name="twin")
        model = module.Sequential(stack, name="twin")  # "built": no input until build()
        model.build((None, D))
        return model

    npnet.utils.set_random_seed(0)
    ours, theirs = build(npnet), build(keras)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def computing(model):
    """The layers after a functional model's InputLayer (which both list first, as Keras 3)."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def classes(model):
    return [type(layer).__name__ for layer in model.layers]


KINDS = ["functional", "sequential", "built"]


# -- model.inputs / outputs and layer.input / output ----------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_model_and_layer_tensors_have_keras_shapes(kind):
    ours, theirs = twins(kind)
    for attribute in ("inputs", "outputs"):
        assert [t.shape for t in getattr(ours, attribute)] == [tuple(t.shape) for t in getattr(theirs, attribute)]
    assert classes(ours) == classes(theirs)
    for mine, their in zip(computing(ours), computing(theirs), strict=True):
        assert mine.name == their.name
        assert mine.output.shape == tuple(their.output.shape), mine.name
        assert mine.input.shape == tuple(their.input.shape), mine.name
    if kind == "functional":  # its InputLayer holds the model's input
        assert ours.layers[0].output is ours.inputs[0] and ours.layers[0].output.shape == (None, D)
    assert computing(ours)[0].input is ours.inputs[0] and ours.layers[-1].output is ours.outputs[0]
    for earlier, later in zip(ours.layers, ours.layers[1:]):
        assert later.input is earlier.output  # one chain of tensors


def test_a_functional_model_keeps_the_callers_tensors():
    inputs = npnet.Input(shape=(D,), name="features")
    hidden = layers.Dense(5, name="hidden")(inputs)
    outputs = layers.Dense(K, name="out")(hidden)
    model = npnet.Model(inputs, outputs)
    assert model.inputs == [inputs] and model.outputs == [outputs]
    assert model.input is inputs and model.output is outputs
    assert model.get_layer("hidden").output is hidden and model.get_layer("hidden").input is inputs
    assert model.inputs[0].name == "features"
    # Keras hands back the structure it was given: a list of one stays a list.
    listed = npnet.Model([inputs], [outputs])
    k_inputs = keras.Input(shape=(D,))
    k_listed = keras.Model([k_inputs], [keras.layers.Dense(K)(k_inputs)])
    assert isinstance(listed.input, list) == isinstance(k_listed.input, list) == True  # noqa: E712
    assert isinstance(listed.output, list) == isinstance(k_listed.output, list) == True  # noqa: E712


def test_a_sequential_input_is_the_input_it_was_given():
    features = npnet.Input(shape=(D,), name="features")
    model = npnet.Sequential([features, layers.Dense(K)])
    assert model.inputs[0] is features and model.input is features
    assert model.output is model.outputs[0] is model.layers[-1].output


def test_a_sequential_without_input_shape_has_no_tensors_until_built_like_keras():
    ours = npnet.Sequential([layers.Dense(K, name="only")], name="lazy")
    theirs = keras.Sequential([keras.layers.Dense(K, name="only")], name="lazy")
    for model in (ours, theirs):
        for attribute in ("inputs", "outputs"):
            with pytest.raises(AttributeError, match="has no defined " + attribute):
                getattr(model, attribute)
        with pytest.raises(AttributeError, match="never been called"):
            model.layers[0].output
    with pytest.raises(AttributeError, match=r"input shape is unknown.*npnet.Input\(shape=...\)"):
        ours.inputs
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    ours.fit(*data(), epochs=1, verbose=0)  # builds it, as Keras's fit does
    theirs.build((None, D))
    assert ours.inputs[0].shape == tuple(theirs.inputs[0].shape) == (None, D)
    assert ours.layers[0].output.shape == tuple(theirs.layers[0].output.shape)


def test_a_layer_never_called_has_no_input_or_output_like_keras():
    for module in (npnet, keras):
        layer = module.layers.Dense(3, name="lonely")
        for attribute in ("input", "output"):
            with pytest.raises(AttributeError, match=f"lonely.*never been called.*{attribute}"):
                getattr(layer, attribute)
        assert not hasattr(layer, "output")
    with pytest.raises(AttributeError, match=r"npnet.Input\(...\)"):
        layers.Dense(3).output
    # A layer used on arrays only still has none: only symbolic calls count.
    used = layers.Dense(3)
    used(np.ones((2, D), np.float32))
    with pytest.raises(AttributeError, match="never been called on a symbolic tensor"):
        used.output


def test_layer_output_cannot_be_assigned_and_says_where_results_go():
    layer = layers.Dense(3)
    with pytest.raises(AttributeError, match=r"cannot be assigned.*cache"):
        layer.output = np.zeros(3)


def test_a_layer_called_twice_answers_with_its_first_call_like_keras():
    for module in (npnet, keras):
        shared = module.layers.Dense(D, name="shared")
        inputs = module.Input(shape=(D,))
        first = shared(inputs)
        second = shared(first)
        assert shared.output is first and shared.input is inputs
        assert second is not first


def test_several_outputs_are_refused_saying_npnet_models_have_one_output():
    ours, theirs = twins("sequential")
    keras.Model(inputs=theirs.inputs, outputs=[layer.output for layer in theirs.layers])  # Keras accepts it
    with pytest.raises(NotImplementedError, match=r"npnet models have one output: expected one output "
                                                  r"tensor, received 3 outputs.*one model per layer"):
        npnet.Model(inputs=ours.inputs, outputs=[layer.output for layer in ours.layers])
    with pytest.raises(NotImplementedError, match="received 2 inputs, expected one input tensor"):
        npnet.Model([ours.input, npnet.Input(shape=(D,))], ours.output)


def test_outputs_of_another_model_are_refused_naming_both_inputs():
    ours, _ = twins("sequential")
    stranger = npnet.Input(shape=(D,), name="stranger")
    with pytest.raises(ValueError, match=r"reached another Input \(shape \(None, 6\)\), not the given "
                                         r"inputs \(shape \(None, 6\), named 'stranger'\)"):
        npnet.Model(stranger, ours.get_layer("middle").output)


# -- feature extraction -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_feature_extraction_predicts_what_keras_predicts(kind):
    ours, theirs = twins(kind)
    x, _ = data()
    for name in ("hidden", "middle", "out"):
        extractor = npnet.Model(inputs=ours.inputs, outputs=ours.get_layer(name).output)
        k_extractor = keras.Model(inputs=theirs.inputs, outputs=theirs.get_layer(name).output)
        assert classes(extractor) == classes(k_extractor) and classes(extractor)[0] == "InputLayer"
        assert [layer.name for layer in computing(extractor)] == [layer.name for layer in computing(k_extractor)]
        assert all(a is b for a, b in zip(computing(extractor), computing(ours)))  # the same layer objects
        assert extractor.output_shape == tuple(k_extractor.output_shape)
        np.testing.assert_allclose(extractor.predict(x, verbose=0), k_extractor.predict(x, verbose=0), **TOLERANCE)
        np.testing.assert_allclose(extractor(x), np.asarray(k_extractor(x)), **TOLERANCE)


def test_the_extractor_shares_the_weights_the_model_trains():
    ours, theirs = twins("functional")
    extractor = npnet.Model(ours.inputs, ours.get_layer("middle").output)
    k_extractor = keras.Model(theirs.inputs, theirs.get_layer("middle").output)
    x, y = data()
    before = extractor.predict(x, verbose=0)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    after = extractor.predict(x, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, k_extractor.predict(x, verbose=0), **TOLERANCE)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_both_backends_predict_the_extractor_identically(kind):
    ours, _ = twins(kind)
    x, y = data(100)
    outputs = {}
    for backend in ("numpy", "numba"):
        extractor = npnet.Model(ours.inputs, ours.get_layer("middle").output)
        extractor.compile(optimizer="adam", loss="mse", backend=backend)
        assert extractor.backend_name == backend
        outputs[backend] = extractor.predict(x, batch_size=32, verbose=0)
    np.testing.assert_allclose(outputs["numba"], outputs["numpy"], rtol=1e-6, atol=1e-7)
    # and after the model trained on the other backend, both still read the shared weights
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numba")
    ours.fit(x, y, epochs=1, verbose=0)
    again = [npnet.Model(ours.inputs, ours.get_layer("middle").output) for _ in range(2)]
    for extractor, backend in zip(again, ("numpy", "numba")):
        extractor.compile(optimizer="adam", loss="mse", backend=backend)
    np.testing.assert_allclose(again[0].predict(x, verbose=0), again[1].predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_a_base_model_called_on_a_new_input_still_extracts_its_own_features():
    """Transfer learning: the base's layers join a new chain; base.get_layer(...).output
    stays the base's own (a layer answers with its first call, as in Keras)."""
    base = npnet.Sequential([layers.Dense(5, activation="relu", input_shape=(D,), name="base_hidden"),
                             layers.Dense(4, name="base_top")])
    base.trainable = False
    inputs = npnet.Input(shape=(D,))
    model = npnet.Model(inputs, layers.Dense(K, activation="softmax")(base(inputs)))
    assert [layer.name for layer in model.layers][1:3] == ["base_hidden", "base_top"]
    x, _ = data()
    extractor = npnet.Model(base.inputs, base.get_layer("base_top").output)
    np.testing.assert_allclose(extractor.predict(x, verbose=0), base.predict(x, verbose=0), **TOLERANCE)
    with pytest.raises(ValueError, match=r"called more than once; layer.output is the output of a layer's first call"):
        npnet.Model(model.inputs, base.get_layer("base_top").output)


# -- saving and summary of such models ---------------------------------------------------------

@pytest.mark.parametrize("suffix", [".keras", ".npnet"])
def test_an_extractor_saves_and_loads_with_its_predictions(tmp_path, suffix):
    ours, _ = twins("functional")
    extractor = npnet.Model(ours.inputs, ours.get_layer("middle").output, name="features")
    extractor.compile(optimizer="adam", loss="mse")
    x, _ = data()
    extractor.save(tmp_path / f"e{suffix}")
    loaded = npnet.models.load_model(tmp_path / f"e{suffix}")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), extractor.predict(x, verbose=0), **TOLERANCE)
    assert loaded.inputs[0].shape == (None, D) and loaded.outputs[0].shape == (None, 4)
    if suffix == ".keras":  # and Keras opens it with the same predictions
        theirs = keras.models.load_model(tmp_path / f"e{suffix}")
        np.testing.assert_allclose(theirs.predict(x, verbose=0), extractor.predict(x, verbose=0), **TOLERANCE)


def test_an_extractor_summary_lists_its_layers_as_keras_does_with_the_input_row():
    ours, theirs = twins("functional", input_name="pixels")
    extractor = npnet.Model(ours.inputs, ours.get_layer("middle").output, name="fe")
    k_extractor = keras.Model(theirs.inputs, theirs.get_layer("middle").output, name="fe")
    lines = {}
    for key, model in (("ours", extractor), ("theirs", k_extractor)):
        captured = []
        model.summary(print_fn=captured.append)
        lines[key] = [line for line in "".join(captured).splitlines() if not line.startswith(" Backend:")]
    assert any("pixels (InputLayer)" in line for line in lines["ours"])
    assert lines["ours"] == lines["theirs"]


# -- dict inputs keyed by the Input's name -------------------------------------------------------

@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_dict_inputs_train_evaluate_and_predict_as_keras_does(kind):
    ours, theirs = twins(kind, input_name="features")
    x, y = data()
    x_val, y_val = data(8, seed=1)
    histories = []
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories.append(model.fit({"features": x}, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                                   validation_data=({"features": x_val}, y_val)).history)
    for key in histories[1]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(ours.evaluate({"features": x}, y, verbose=0),
                               theirs.evaluate({"features": x}, y, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.predict({"features": x}, verbose=0),
                               theirs.predict({"features": x}, verbose=0), **TOLERANCE)
    np.testing.assert_allclose(ours.train_on_batch({"features": x}, y), theirs.train_on_batch({"features": x}, y),
                               rtol=1e-5)
    np.testing.assert_allclose(ours.predict_on_batch({"features": x}), theirs.predict_on_batch({"features": x}),
                               **TOLERANCE)
    # Keras takes the key it needs and ignores the others; so does npnet.
    np.testing.assert_allclose(ours({"features": x, "label": y}), ours.predict(x, verbose=0), **TOLERANCE)


def test_a_dict_without_the_input_name_is_refused_like_keras():
    ours, theirs = twins("functional", input_name="features")
    x, _ = data()
    with pytest.raises(ValueError, match=r"Missing data for input \"features\".*keys \['feature'\]"):
        theirs.predict({"feature": x}, verbose=0)
    with pytest.raises(ValueError, match=r"Missing data for input 'features' of model 'twin': x is a dict "
                                         r"with keys \['feature'\]; expected the key 'features'"):
        ours.predict({"feature": x}, verbose=0)
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    weights = ours.get_weights()
    with pytest.raises(ValueError, match=r"validation x is a dict with keys \['x'\]; expected the key 'features'"):
        ours.fit({"features": x}, data()[1], validation_data=({"x": x}, data()[1]), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(weights, ours.get_weights()))  # refused before training


def test_a_dict_for_an_unnamed_input_is_refused_saying_how_to_name_it():
    ours, _ = twins("sequential")
    with pytest.raises(ValueError, match=r"x is a dict with keys \['features'\], but the input of model 'twin' "
                                         r"has no name.*name='features'"):
        ours.predict({"features": data()[0]}, verbose=0)


def test_a_cloned_functional_model_extracts_features_and_keeps_the_input_name_like_keras():
    ours, theirs = twins("functional", input_name="features")
    x, _ = data()
    for module, model in ((npnet, ours), (keras, theirs)):
        clone = module.models.clone_model(model)
        clone.set_weights(model.get_weights())
        assert clone.inputs[0].name == "features"
        extractor = module.Model(clone.inputs, clone.get_layer("middle").output)
        expected = module.Model(model.inputs, model.get_layer("middle").output).predict(x, verbose=0)
        np.testing.assert_allclose(extractor.predict(x, verbose=0), expected, **TOLERANCE)
