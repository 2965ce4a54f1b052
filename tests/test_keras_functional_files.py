"""Functional models survive saving: ``npnet.Model(Input(name="features"), ...)`` saved in
every format comes back as a functional ``Model`` with its input name, shape, layer names and
weights (so ``predict({"features": x})`` keeps working), and ``.keras`` / ``.h5`` files of
functional models cross between npnet and Keras both ways."""

import json
import os
import zipfile

import numpy as np
import pytest

import npnet
from npnet.layers import Dense, Dropout

X = np.random.default_rng(5).normal(size=(12, 4)).astype("float32")
Y = np.arange(12) % 3


def functional(input_name="features"):
    inputs = npnet.Input(shape=(4,), name=input_name)
    hidden = Dense(6, activation="relu", name="hidden")(inputs)
    hidden = Dropout(0.25, name="drop")(hidden)
    outputs = Dense(3, activation="softmax", name="scores")(hidden)
    model = npnet.Model(inputs, outputs, name="classifier")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    return model


def assert_same_model(loaded, model):
    assert type(loaded) is npnet.Model
    assert loaded.name == model.name
    assert loaded.input.name == model.input.name
    assert [t.name for t in loaded.inputs] == [t.name for t in model.inputs]
    assert loaded.input_shape == model.input_shape == (None, 4)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for ours, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("suffix", [".keras", ".npnet", ".h5"])
def test_a_functional_model_loads_back_functional_with_its_input_name(tmp_path, suffix):
    model = functional()
    model.save(tmp_path / f"model{suffix}")
    loaded = npnet.models.load_model(tmp_path / f"model{suffix}")
    assert_same_model(loaded, model)
    np.testing.assert_allclose(loaded.predict({"features": X}, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    assert loaded.compiled and loaded.evaluate({"features": X}, Y, verbose=0, return_dict=True)["loss"] > 0
    # it is still a functional model: feature extraction through its layers' outputs works
    hidden = npnet.Model(loaded.inputs, loaded.get_layer("hidden").output)
    assert hidden.predict({"features": X}, verbose=0).shape == (12, 6)


def test_an_unnamed_input_keeps_no_name_in_npnet_files_and_gets_keras_default_in_keras_files(tmp_path):
    model = functional(input_name=None)
    model.save(tmp_path / "m.npnet")
    model.save(tmp_path / "m.keras")
    assert npnet.models.load_model(tmp_path / "m.npnet").input.name is None
    # Keras names an unnamed input's layer input_layer, input_layer_1, ...; the file keeps that name
    loaded = npnet.models.load_model(tmp_path / "m.keras")
    assert loaded.input.name == model.layers[0].name == loaded.layers[0].name
    assert model.layers[0].name.startswith("input_layer")


def test_npnet_writes_keras_functional_config(tmp_path):
    functional().save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "Functional"
    body = config["config"]
    assert body["input_layers"] == ["features", 0, 0] and body["output_layers"] == ["scores", 0, 0]
    assert [entry["name"] for entry in body["layers"]] == ["features", "hidden", "drop", "scores"]
    histories = [entry["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] for entry in body["layers"][1:]]
    assert histories == ["features", "hidden", "drop"]
    # a Sequential model stays one, in the file and loaded back
    sequential = npnet.Sequential([npnet.Input(shape=(4,)), Dense(3, activation="softmax")])
    sequential.save(tmp_path / "seq.keras")
    sequential.save(tmp_path / "seq.npnet")
    assert type(npnet.models.load_model(tmp_path / "seq.keras")) is npnet.Sequential
    assert type(npnet.models.load_model(tmp_path / "seq.npnet")) is npnet.Sequential


def test_to_json_and_model_from_json_keep_a_functional_model():
    model = functional()
    again = npnet.models.model_from_json(model.to_json())
    assert type(again) is npnet.Model and again.input.name == "features"
    assert [layer.name for layer in again.layers] == ["features", "hidden", "drop", "scores"]


def test_model_from_json_refuses_other_classes_naming_both():
    with pytest.raises(ValueError, match="'Sequential' or 'Functional'.*Subclassed"):
        npnet.models.model_from_json(json.dumps({"class_name": "Subclassed", "config": {}}))


# --------------------------------------------------------------------- with Keras, both ways

def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras")


def keras_functional():
    keras = _keras()
    inputs = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="scores")(hidden)
    model = keras.Model(inputs, outputs, name="theirs")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_functional_file_loads_as_an_npnet_functional_model(tmp_path, suffix):
    reference = keras_functional()
    reference.save(tmp_path / f"theirs{suffix}")
    loaded = npnet.models.load_model(tmp_path / f"theirs{suffix}")
    assert type(loaded) is npnet.Model
    assert loaded.input.name == "features" and loaded.name == "theirs"
    assert loaded.input_shape == (None, 4)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in reference.layers] == [
        "features", "hidden", "scores"]
    for ours, theirs in zip(loaded.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(loaded.predict({"features": X}, verbose=0),
                               reference.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_loads_npnet_functional_file_with_the_input_name(tmp_path, suffix):
    keras = _keras()
    model = functional()
    model.save(tmp_path / f"ours{suffix}")
    loaded = keras.models.load_model(tmp_path / f"ours{suffix}")
    assert loaded.input.name == "features"
    assert [layer.name for layer in loaded.layers] == ["features", "hidden", "drop", "scores"]
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
