"""JSON and configs cross between npnet and Keras 3 both ways: ``model.to_json()`` writes
Keras's JSON (the ``.keras`` file's architecture), and ``npnet.models.model_from_json`` /
``Sequential.from_config`` / ``Model.from_config`` read Keras's JSON and configs through the
``.keras`` reader (its limits and errors), while npnet's older own JSON still loads.
Mirror tests build the same model in Keras beside ours; hostile JSON is refused with the
``.keras`` reader's errors and without allocating what it declares."""

import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import npnet
from npnet import layers, regularizers
from npnet.saving import limits

#: Peak bytes a refusal may allocate (the hostile descriptions declare gigabytes).
ALLOCATION_BOUND = 20 * 2**20


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras")


def ours_sequential():
    return npnet.Sequential([
        npnet.Input(shape=(28, 28)), layers.Flatten(name="flat"),
        layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                     kernel_regularizer=regularizers.L2(0.01), bias_regularizer=regularizers.L2(0.001), name="hidden"),
        layers.Dropout(0.2, name="drop"), layers.Dense(10, activation="softmax", name="scores")], name="classifier")


def keras_sequential():
    keras = _keras()
    return keras.Sequential([
        keras.Input(shape=(28, 28)), keras.layers.Flatten(name="flat"),
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                           kernel_regularizer=keras.regularizers.L2(0.01),
                           bias_regularizer=keras.regularizers.L2(0.001), name="hidden"),
        keras.layers.Dropout(0.2, name="drop"), keras.layers.Dense(10, activation="softmax", name="scores")],
        name="classifier")


def ours_functional():
    inputs = npnet.Input(shape=(4,), name="features")
    hidden = layers.Dense(6, activation="tanh", kernel_initializer="lecun_normal", name="hidden")(inputs)
    hidden = layers.Dropout(0.25, name="drop")(hidden)
    outputs = layers.Dense(3, activation="sigmoid", name="scores")(hidden)
    return npnet.Model(inputs, outputs, name="chain")


def keras_functional():
    keras = _keras()
    inputs = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(6, activation="tanh", kernel_initializer="lecun_normal", name="hidden")(inputs)
    hidden = keras.layers.Dropout(0.25, name="drop")(hidden)
    outputs = keras.layers.Dense(3, activation="sigmoid", name="scores")(hidden)
    return keras.Model(inputs, outputs, name="chain")


def without_nulls(value):
    """A JSON value with its null-valued keys dropped: Keras lists settings npnet has no
    notion of (an initializer's ``input_axes``) at null."""
    if isinstance(value, dict):
        return {key: without_nulls(v) for key, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def layer_summary(model):
    """``(class, name, units, activation)`` per layer that is not the input, either library's."""
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        activation = getattr(layer, "activation", None)
        rows.append((type(layer).__name__, layer.name, getattr(layer, "units", None),
                     None if activation is None else getattr(activation, "name", getattr(activation, "__name__", None))))
    return rows


def assert_same_architecture(npnet_model, keras_model):
    assert layer_summary(npnet_model) == layer_summary(keras_model)
    assert tuple(npnet_model.input_shape) == tuple(keras_model.input_shape)
    assert npnet_model.name == keras_model.name
    assert [w.shape for w in npnet_model.get_weights()] == [w.shape for w in keras_model.get_weights()]


# --------------------------------------------------------------------------- npnet -> Keras


def test_to_json_writes_what_keras_writes_for_the_same_sequential():
    _keras().backend.clear_session()  # Keras names the Sequential's input by a count of inputs made so far
    ours, theirs = ours_sequential(), keras_sequential()
    assert without_nulls(json.loads(ours.to_json())) == without_nulls(json.loads(theirs.to_json()))


def test_to_json_writes_what_keras_writes_for_the_same_functional_chain():
    ours, theirs = ours_functional(), keras_functional()
    assert without_nulls(json.loads(ours.to_json())) == without_nulls(json.loads(theirs.to_json()))


@pytest.mark.parametrize("make_ours, make_theirs", [(ours_sequential, keras_sequential),
                                                   (ours_functional, keras_functional)],
                         ids=["sequential", "functional"])
def test_keras_model_from_json_rebuilds_npnet_models_with_fresh_weights(make_ours, make_theirs):
    keras = _keras()
    ours, theirs = make_ours(), make_theirs()
    rebuilt = keras.models.model_from_json(ours.to_json())
    assert type(rebuilt) is type(theirs)
    assert_same_architecture(ours, rebuilt)
    for mine, its in zip(rebuilt.layers, theirs.layers):  # every setting, regularizers included
        assert mine.get_config() == its.get_config()
    assert not np.array_equal(rebuilt.get_weights()[0], ours.get_weights()[0])  # fresh, as in Keras


def test_keras_reads_an_npnet_config_with_from_config():
    keras = _keras()
    rebuilt = keras.Sequential.from_config(json.loads(ours_sequential().to_json())["config"])
    assert_same_architecture(ours_sequential(), rebuilt)


def test_a_compiled_models_json_carries_its_compile_settings_to_keras():
    keras = _keras()
    ours = ours_sequential()
    ours.compile(optimizer=npnet.optimizers.Adam(learning_rate=0.005), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    rebuilt = keras.models.model_from_json(ours.to_json())  # Keras compiles from compile_config
    assert rebuilt.compiled and type(rebuilt.optimizer).__name__ == "Adam"
    assert float(rebuilt.optimizer.learning_rate) == pytest.approx(0.005)


def test_compile_settings_without_a_keras_form_are_left_out_with_a_warning():
    model = ours_sequential()
    schedule = npnet.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=npnet.optimizers.Adam(learning_rate=schedule), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="to_json writes the architecture without the compile settings.*schedule"):
        text = model.to_json()
    assert json.loads(text)["compile_config"] == {}
    again = npnet.models.model_from_json(text)
    assert not again.compiled and again.get_config() == model.get_config()


def test_an_unbuilt_sequential_is_written_as_keras_writes_one():
    keras = _keras()
    ours = npnet.Sequential([layers.Dense(3, activation="relu", name="a"), layers.Dense(2, name="b")], name="later")
    theirs = keras.Sequential([keras.layers.Dense(3, activation="relu", name="a"), keras.layers.Dense(2, name="b")],
                              name="later")
    assert without_nulls(json.loads(ours.to_json())) == without_nulls(json.loads(theirs.to_json()))
    again = npnet.models.model_from_json(ours.to_json())
    assert not again.built and layer_summary(again) == layer_summary(ours)


# --------------------------------------------------------------------------- Keras -> npnet


@pytest.mark.parametrize("make_ours, make_theirs", [(ours_sequential, keras_sequential),
                                                   (ours_functional, keras_functional)],
                         ids=["sequential", "functional"])
def test_npnet_model_from_json_rebuilds_keras_models_with_fresh_weights(make_ours, make_theirs):
    ours, theirs = make_ours(), make_theirs()
    rebuilt = npnet.models.model_from_json(theirs.to_json())
    assert type(rebuilt) is type(ours)
    assert_same_architecture(rebuilt, theirs)
    assert [layer.get_config() for layer in rebuilt.layers] == [layer.get_config() for layer in ours.layers]
    assert not np.array_equal(rebuilt.get_weights()[0], theirs.get_weights()[0])
    assert not rebuilt.compiled
    if isinstance(ours, npnet.Model):
        assert rebuilt.input.name == "features"


@pytest.mark.parametrize("cls, make_ours, make_theirs", [
    (npnet.Sequential, ours_sequential, keras_sequential), (npnet.Model, ours_functional, keras_functional)],
    ids=["sequential", "functional"])
def test_from_config_reads_keras_get_config(cls, make_ours, make_theirs):
    ours, theirs = make_ours(), make_theirs()
    rebuilt = cls.from_config(theirs.get_config())  # a Python dict, with Keras's tuples
    assert type(rebuilt) is type(ours)
    assert_same_architecture(rebuilt, theirs)
    assert rebuilt.get_config() == ours.get_config()


def test_model_from_config_of_a_keras_sequential_gives_a_functional_model():
    rebuilt = npnet.Model.from_config(keras_sequential().get_config())
    assert type(rebuilt) is npnet.Model and layer_summary(rebuilt) == layer_summary(ours_sequential())


def test_keras_compile_config_in_json_compiles_the_npnet_model_as_keras_does():
    keras = _keras()
    theirs = keras_sequential()
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rebuilt = npnet.models.model_from_json(theirs.to_json())
    assert keras.models.model_from_json(theirs.to_json()).compiled and rebuilt.compiled
    assert type(rebuilt.optimizer) is npnet.optimizers.SGD
    assert rebuilt.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    x = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    assert set(rebuilt.evaluate(x, np.arange(8), verbose=0, return_dict=True)) == {"loss", "accuracy"}


def test_json_round_trips_in_npnet_alone_keep_the_layers():
    for model in (ours_sequential(), ours_functional()):
        again = npnet.models.model_from_json(model.to_json())
        assert type(again) is type(model) and again.get_config() == model.get_config()


# --------------------------------------------------------------------------- npnet's older JSON


#: What npnet's to_json wrote before it wrote Keras's JSON (saved files and notebooks hold it).
OLD_SEQUENTIAL_JSON = (
    '{"class_name": "Sequential", "config": {"name": "old", "layers": [{"class_name": "Flatten", "config": '
    '{"name": "flatten_7", "input_shape": [28, 28]}}, {"class_name": "Dense", "config": {"name": "dense_9", '
    '"units": 128, "activation": "relu", "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}}, '
    '{"class_name": "Dense", "config": {"name": "dense_10", "units": 10, "activation": "softmax", '
    '"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}}], "build_input_shape": [null, 28, 28]}}')
OLD_FUNCTIONAL_JSON = (
    '{"class_name": "Functional", "config": {"name": "f", "layers": [{"class_name": "Dense", "config": '
    '{"name": "h", "units": 3, "activation": "relu", "kernel_initializer": "glorot_uniform", '
    '"bias_initializer": "zeros"}}], "build_input_shape": [null, 5], "input_name": "pixels"}}')


def test_npnets_older_json_still_loads():
    old = npnet.models.model_from_json(OLD_SEQUENTIAL_JSON)
    assert type(old) is npnet.Sequential and old.input_shape == (None, 28, 28)
    assert [(layer.name, getattr(layer, "units", None)) for layer in old.layers] == [
        ("flatten_7", None), ("dense_9", 128), ("dense_10", 10)]
    functional = npnet.models.model_from_json(OLD_FUNCTIONAL_JSON)
    assert type(functional) is npnet.Model and functional.input.name == "pixels"
    assert functional.input_shape == (None, 5) and functional.layers[1].units == 3  # after its InputLayer


def test_get_config_keeps_npnets_own_format_and_from_config_reads_it():
    model = ours_sequential()
    config = model.get_config()
    assert set(config) == {"name", "layers", "build_input_shape"}
    assert npnet.Sequential.from_config(config).get_config() == config
    functional = ours_functional()
    assert npnet.Model.from_config(functional.get_config()).get_config() == functional.get_config()


# --------------------------------------------------------------------------- hostile JSON


def keras_json(change=None):
    """ours_sequential's Keras JSON, as a dict edited by ``change(description)``."""
    description = json.loads(ours_sequential().to_json())
    if change is not None:
        change(description)
    return description


def dense(description):
    return description["config"]["layers"][2]["config"]


def refused(load, match):
    """``load()`` must raise a ValueError matching ``match``, allocating less than the bound."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as error:
            load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < ALLOCATION_BOUND, f"{peak:,} bytes allocated before the refusal"
    return str(error.value)


HOSTILE = [
    (lambda d: dense(d).update(units="eight"), "units must be an integer >= 1; the file has 'eight'"),
    (lambda d: dense(d).update(units=2**31), "more than 1,073,741,824 parameters"),
    (lambda d: d["config"]["layers"][0]["config"].update(batch_shape=[None, 10**6, 10**6]), "parameters"),
    (lambda d: d["config"].update(layers={"dense": {}}), "'layers' must be a list"),
    (lambda d: d["config"]["layers"][2].update(class_name="Conv2D"), "layer class 'Conv2D' is not one npnet knows"),
    (lambda d: d["config"]["layers"][2].update(module="os", class_name="system"),
     "layer class 'system' is not one npnet knows"),
    (lambda d: d["config"]["layers"][2].update(module="os"), "names module 'os'.*never imports"),
    (lambda d: d["config"]["layers"][2].update(class_name="Lambda"), "'Lambda' carries Python code"),
    (lambda d: dense(d).update(activation={"module": "keras.utils", "class_name": "function",
                                           "config": "get_file", "registered_name": "function"}),
     "names module 'keras.utils'"),
    (lambda d: d.update(compile_config={"loss": "dice", "optimizer": "adam"}), "loss 'dice'"),
]


@pytest.mark.parametrize("change, match", HOSTILE, ids=[
    "units-text", "huge-units", "huge-input", "layers-dict", "unknown-class", "os-system", "foreign-module",
    "lambda", "keras-function", "unknown-loss"])
def test_hostile_keras_json_gets_the_keras_file_readers_errors(tmp_path, change, match):
    description = keras_json(change)
    message = refused(lambda: npnet.models.model_from_json(json.dumps(description)), match)
    assert message.startswith("model_from_json: ")
    if "compile_config" not in description or description["compile_config"] == {}:  # from_config has none
        refused(lambda: npnet.Sequential.from_config(description["config"]), match)
    # the .keras reader says the same about the same description
    ours_sequential().save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["config.json"] = json.dumps(description)
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=match):
        npnet.models.load_model(tmp_path / "bad.keras")


def own_config(change):
    config = npnet.Sequential([npnet.Input(shape=(3,)), layers.Dense(4, name="d")]).get_config()
    change(config)
    return config


@pytest.mark.parametrize("change, match", [
    (lambda c: c["layers"][0]["config"].update(units=2**31), "more than 1,073,741,824 parameters"),
    (lambda c: c.update(layers={"a": 1}), "model config.layers must be a list; the file has dict"),
    (lambda c: c["layers"].__setitem__(0, "Dense"), r"model config.layers\[0\] must be a JSON object"),
    (lambda c: c["layers"][0].update(class_name="Conv2D"), "Unknown layer class 'Conv2D'.*custom_objects"),
    (lambda c: c.update(build_input_shape=[None, -3]), "build_input_shape must be a list of sizes"),
    (lambda c: c.update(input_name=["x"]), "input_name must be a string"),
], ids=["huge-units", "layers-dict", "layer-text", "unknown-class", "negative-shape", "input-name"])
def test_hostile_npnet_configs_get_the_npnet_file_readers_errors(change, match):
    config = own_config(change)
    refused(lambda: npnet.Model.from_config(config), match)
    refused(lambda: npnet.models.model_from_json(json.dumps({"class_name": "Functional", "config": config})), match)


def test_deeply_nested_or_oversized_json_is_refused_before_it_is_built(monkeypatch):
    refused(lambda: npnet.models.model_from_json("[" * 100_000 + "]" * 100_000), "nested too deeply")
    refused(lambda: npnet.models.model_from_json('{"class_name": "Sequential", "config": ' + "1" * 5000 + "}"),
            "integer of 5,000 digits")
    monkeypatch.setattr(limits, "MAX_JSON_BYTES", 1000)
    refused(lambda: npnet.models.model_from_json(ours_sequential().to_json()), "at most 1,000")
    deep = {"layers": []}
    for _ in range(100_000):
        deep = {"layers": [deep], "trainable": True}
    refused(lambda: npnet.Sequential.from_config(deep), "nested too deeply")


def test_model_from_json_and_from_config_refuse_what_is_not_a_description():
    with pytest.raises(TypeError, match="expects the JSON text of model.to_json.*received dict"):
        npnet.models.model_from_json({"class_name": "Sequential"})
    with pytest.raises(TypeError, match="expects a model config dict.*received str"):
        npnet.Sequential.from_config("{}")
    with pytest.raises(ValueError, match="'Sequential' or 'Functional'.*Subclassed"):
        npnet.models.model_from_json(json.dumps({"class_name": "Subclassed", "config": {}}))
