"""Layers of the user's own classes in files and JSON, loaded with Keras's ``custom_objects``.

A user layer (forward/backward, weights from ``add_weight``) is written in every format as
Keras writes a custom layer (its class name, ``get_config()``), and comes back only from the
class the caller passes: ``load_model(path, custom_objects={"Scale": Scale})``, the same for
``model_from_json`` and ``from_config``. Without it the error names the class and says to
pass ``custom_objects``; a file naming a class the caller did not pass is refused before
anything is made. Keras loads npnet's file with its own ``Scale`` (a Layer with ``call``),
and npnet loads Keras's.
"""

import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import npnet
from npnet import layers
from npnet.saving import ModelFileError

X = np.random.default_rng(3).normal(size=(10, 3)).astype("float32")
Y = np.random.default_rng(4).normal(size=(10, 2)).astype("float32")


class Scale(npnet.layers.Layer):
    """``y = factor * x * w``, one trained weight per feature."""


    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def forward(self, x, training=False):
        return self.factor * x * self.w, x

    def backward(self, dL_dy, x, need_input_grad=True):
        dL_dx = self.factor * dL_dy * self.w if need_input_grad else None
        return dL_dx, {"w": (self.factor * dL_dy * x).sum(axis=0)}

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Widen(npnet.layers.Layer):
    """A layer whose weight's size comes from its config (``units``), as Dense's does."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        return x @ self.kernel, x

    def backward(self, dL_dy, x, need_input_grad=True):
        return (dL_dy @ self.kernel.T if need_input_grad else None), {"kernel": x.T @ dL_dy}

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def trained_model():
    npnet.utils.set_random_seed(1)
    model = npnet.Sequential([npnet.Input(shape=(3,)), Scale(3.0, name="scale"), layers.Dense(2, name="out")],
                             name="scaled")
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, batch_size=5, epochs=3, verbose=0)
    return model


@pytest.fixture
def saved(tmp_path):
    model = trained_model()
    for suffix in (".keras", ".npnet", ".h5"):
        model.save(tmp_path / f"model{suffix}")
    return model


# --------------------------------------------------------------------------- with custom_objects


@pytest.mark.parametrize("suffix", [".keras", ".npnet", ".h5"])
def test_load_model_with_custom_objects_gives_the_same_predictions(tmp_path, saved, suffix):
    loaded = npnet.models.load_model(tmp_path / f"model{suffix}", custom_objects={"Scale": Scale})
    assert type(loaded.layers[0]) is Scale and loaded.layers[0].factor == 3.0
    assert [w.path for w in loaded.weights] == [w.path for w in saved.weights]
    for ours, theirs in zip(loaded.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), saved.predict(X, verbose=0))
    assert loaded.compiled


def test_training_resumes_exactly_from_a_keras_file_with_a_user_layer(tmp_path, saved):
    loaded = npnet.models.load_model(tmp_path / "model.keras", custom_objects={"Scale": Scale})
    for model in (saved, loaded):
        model.fit(X, Y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(loaded.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_from_config_and_model_from_json_with_custom_objects():
    model = trained_model()
    for rebuilt in (npnet.models.model_from_json(model.to_json(), custom_objects={"Scale": Scale}),
                    npnet.Sequential.from_config(model.get_config(), custom_objects={"Scale": Scale}),
                    npnet.Model.from_config(model.get_config(), custom_objects={"Scale": Scale})):
        computing = [layer for layer in rebuilt.layers if type(layer).__name__ != "InputLayer"]  # functional: first
        assert [type(layer) for layer in computing] == [Scale, layers.Dense]
        assert computing[0].factor == 3.0 and rebuilt.input_shape == (None, 3)
        np.testing.assert_array_equal(computing[0].get_weights()[0], np.ones(3))  # fresh weights


def test_clone_model_rebuilds_a_user_layer_with_its_own_class():
    clone = npnet.models.clone_model(trained_model())
    assert type(clone.layers[0]) is Scale and clone.layers[0].factor == 3.0


def test_a_layer_of_a_registered_name_is_found_under_that_name(tmp_path, saved):
    entries = _members(tmp_path / "model.keras")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][1]["registered_name"] = "my_package>Scale"
    entries["config.json"] = json.dumps(config)
    path = _write_zip(tmp_path / "registered.keras", entries)
    with pytest.raises(ModelFileError, match=r"custom_objects=\{'my_package>Scale'"):
        npnet.models.load_model(path, custom_objects={"Scale": Scale})
    loaded = npnet.models.load_model(path, custom_objects={"my_package>Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), saved.predict(X, verbose=0))


# --------------------------------------------------------------------------- without, or wrong


@pytest.mark.parametrize("suffix", [".keras", ".npnet", ".h5"])
def test_without_custom_objects_the_error_names_the_class_and_what_to_pass(tmp_path, saved, suffix):
    with pytest.raises(ModelFileError, match=r"'Scale'.*pass custom_objects=\{'Scale': YourLayerClass\}"):
        npnet.models.load_model(tmp_path / f"model{suffix}")


def test_without_custom_objects_json_and_configs_say_the_same():
    model = trained_model()
    with pytest.raises(ValueError, match=r"model_from_json: .*'Scale'.*custom_objects=\{'Scale'"):
        npnet.models.model_from_json(model.to_json())
    with pytest.raises(ValueError, match=r"Sequential.from_config: .*'Scale'.*custom_objects=\{'Scale'"):
        npnet.Sequential.from_config(model.get_config())


def test_a_file_naming_a_class_not_given_is_refused_before_anything_is_made(tmp_path, saved, monkeypatch):
    made = []
    monkeypatch.setattr(layers.Layer, "__init__", _recording(layers.Layer.__init__, made))
    for suffix in (".keras", ".npnet", ".h5"):
        with pytest.raises(ModelFileError, match="'Scale'"):
            npnet.models.load_model(tmp_path / f"model{suffix}", custom_objects={"Widen": Widen})
    with pytest.raises(ValueError, match="'Scale'"):
        npnet.models.model_from_json(saved.to_json(), custom_objects={"Widen": Widen})
    assert made == []  # not the Dense after it, not Widen, nothing


def _recording(init, made):
    def recording_init(self, *args, **kwargs):
        made.append(type(self).__name__)
        init(self, *args, **kwargs)
    return recording_init


def test_a_custom_entry_naming_another_module_runs_nothing_from_it(tmp_path, saved):
    entries = _members(tmp_path / "model.keras")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][1].update(module="os", class_name="system", registered_name="system")
    entries["config.json"] = json.dumps(config)
    path = _write_zip(tmp_path / "system.keras", entries)
    with pytest.raises(ModelFileError, match="layer class 'system' is not one npnet knows"):
        npnet.models.load_model(path, custom_objects={"Scale": Scale})


@pytest.mark.parametrize("value, match", [
    (len, "must be an npnet.layers.Layer subclass; received builtin_function_or_method"),
    (int, "must be an npnet.layers.Layer subclass"),
    (Scale(), "must be an npnet.layers.Layer subclass; received Scale"),
], ids=["function", "other class", "an instance"])
def test_custom_objects_must_map_to_npnet_layer_classes(tmp_path, saved, value, match):
    with pytest.raises(ModelFileError, match=match):
        npnet.models.load_model(tmp_path / "model.keras", custom_objects={"Scale": value})


def test_custom_objects_of_another_type_is_refused_saying_what_to_write(tmp_path, saved):
    with pytest.raises(TypeError, match=r"custom_objects must be a dict.*write backend='numpy'"):
        npnet.models.load_model(tmp_path / "model.keras", "numpy")
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        npnet.models.model_from_json(saved.to_json(), custom_objects=[Scale])


def test_a_class_whose_config_does_not_rebuild_it_is_named(tmp_path):
    class NoConfig(Scale):
        def __init__(self, factor, **kwargs):  # required, but get_config below forgets it
            super().__init__(factor, **kwargs)

        def get_config(self):
            return {"name": self.name}

    model = npnet.Sequential([npnet.Input(shape=(3,)), NoConfig(2.0)])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ModelFileError, match=r"NoConfig.from_config\(config\) failed with TypeError.*"
                                             r"get_config\(\) must return the arguments __init__ takes"):
        npnet.models.load_model(tmp_path / "m.keras", custom_objects={"NoConfig": NoConfig})


def test_a_layer_whose_build_fails_on_the_files_shape_is_named(tmp_path):
    class Picky(Scale):
        def build(self, input_shape):
            if input_shape[-1] != 3:
                raise ValueError(f"Picky takes 3 features; received {input_shape[-1]}")
            super().build(input_shape)

    npnet.Sequential([npnet.Input(shape=(3,)), Picky()]).save(tmp_path / "m.keras")
    entries = _members(tmp_path / "m.keras")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 5]
    entries["config.json"] = json.dumps(config)
    with pytest.raises(ModelFileError, match=r"layer 'picky' \(Picky\) failed to build for inputs of shape "
                                             r"\(None, 5\): ValueError: Picky takes 3 features; received 5"):
        npnet.models.load_model(_write_zip(tmp_path / "five.keras", entries), custom_objects={"Picky": Picky})


def test_a_config_that_json_cannot_hold_is_refused_when_saving(tmp_path):
    class Tabled(Scale):
        def get_config(self):
            return {**super().get_config(), "table": np.arange(3)}

    model = npnet.Sequential([npnet.Input(shape=(3,)), Tabled()])
    with pytest.raises(ValueError, match=r"get_config\(\) must return JSON values"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_a_user_layer_asking_a_file_sized_weight_is_refused_before_allocating(tmp_path):
    npnet.Sequential([npnet.Input(shape=(3,)), Widen(4)]).save(tmp_path / "m.keras")
    entries = _members(tmp_path / "m.keras")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 2**31
    entries["config.json"] = json.dumps(config)
    path = _write_zip(tmp_path / "huge.keras", entries)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="asks add_weight for 'kernel'.*MAX_PARAMETERS"):
            npnet.models.load_model(path, custom_objects={"Widen": Widen})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_a_user_layer_probed_on_a_file_sized_sample_is_refused_before_allocating(tmp_path):
    npnet.Sequential([npnet.Input(shape=(3,)), Scale()]).save(tmp_path / "m.keras")
    entries = _members(tmp_path / "m.keras")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**9]
    entries["config.json"] = json.dumps(config)
    with pytest.raises(ModelFileError, match="MAX_SAMPLE_ELEMENTS"):
        npnet.models.load_model(_write_zip(tmp_path / "wide.keras", entries), custom_objects={"Scale": Scale})


# --------------------------------------------------------------------------- Keras's arguments


def test_load_model_takes_keras_arguments(tmp_path, saved):
    loaded = npnet.models.load_model(tmp_path / "model.keras", custom_objects={"Scale": Scale}, compile=False,
                                     safe_mode=True)
    assert not loaded.compiled and loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), saved.predict(X, verbose=0))
    for suffix in (".npnet", ".h5"):
        assert not npnet.load_model(tmp_path / f"model{suffix}", {"Scale": Scale}, False).compiled
    assert npnet.models.load_model(filepath=tmp_path / "model.npnet", custom_objects={"Scale": Scale},
                                   safe_mode=False).compiled  # npnet runs no code either way
    with pytest.raises(TypeError, match=r"load_model\(compile=...\) must be True or False; received 'no'"):
        npnet.models.load_model(tmp_path / "model.keras", compile="no")


# --------------------------------------------------------------------------- with Keras


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras")


def keras_scale_class():
    """Keras's equivalent of Scale: the same class name, ``call`` instead of forward/backward."""
    keras = _keras()

    class Scale(keras.layers.Layer):  # noqa: F811 - the Keras twin of the npnet class above
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return self.factor * x * self.w

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return Scale


def test_keras_loads_npnets_file_with_its_own_class(tmp_path, saved):
    keras = _keras()
    theirs = keras.models.load_model(tmp_path / "model.keras", custom_objects={"Scale": keras_scale_class()})
    assert theirs.layers[0].factor == 3.0
    for ours, its in zip(saved.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(ours, its)
    np.testing.assert_allclose(theirs.predict(X, verbose=0), saved.predict(X, verbose=0), rtol=1e-6, atol=1e-6)


def test_npnet_loads_keras_file_with_its_own_class(tmp_path):
    keras = _keras()
    theirs = keras.Sequential([keras.Input(shape=(3,)), keras_scale_class()(1.5, name="scale"),
                               keras.layers.Dense(2, name="out")], name="keras_scaled")
    theirs.layers[0].set_weights([np.array([0.5, -1.0, 2.0], dtype="float32")])
    theirs.save(tmp_path / "theirs.keras")
    ours = npnet.models.load_model(tmp_path / "theirs.keras", custom_objects={"Scale": Scale})
    assert type(ours.layers[0]) is Scale and ours.layers[0].factor == 1.5
    for mine, its in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(mine, its)
    np.testing.assert_allclose(ours.predict(X, verbose=0), theirs.predict(X, verbose=0), rtol=1e-6, atol=1e-6)


def test_json_with_a_user_layer_crosses_both_ways():
    keras = _keras()
    rebuilt = keras.models.model_from_json(trained_model().to_json(), custom_objects={"Scale": keras_scale_class()})
    assert [layer.name for layer in rebuilt.layers] == ["scale", "out"] and rebuilt.layers[0].factor == 3.0
    back = npnet.models.model_from_json(rebuilt.to_json(), custom_objects={"Scale": Scale})
    assert [type(layer) for layer in back.layers] == [Scale, layers.Dense] and back.layers[0].factor == 3.0


# --------------------------------------------------------------------------- helpers


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path
