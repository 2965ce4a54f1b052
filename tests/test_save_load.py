"""model.save / npnet.models.load_model: a zip of JSON and safetensors, no pickle.

A round trip keeps architecture, compile settings, weights and optimizer state, so a loaded
model predicts bit for bit the same and continues training exactly as the original would.
Bad files are refused with a ValueError that says why, and a failed save leaves nothing.
"""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import npnet
from npnet.layers import Dense, Flatten

from core_helpers import assert_weights_equal, tiny_data, tiny_model


@pytest.fixture
def trained():
    """A compiled tiny model after a few steps, so the optimizer has state, and its data."""
    npnet.utils.set_random_seed(0)
    model = tiny_model(optimizer=npnet.optimizers.Adam(learning_rate=0.005, beta_1=0.8, beta_2=0.99, epsilon=1e-6))
    x, y = tiny_data(70)
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


def saved_file(model, tmp_path, name="model.npnet"):
    path = tmp_path / name
    model.save(path)
    return path


def test_round_trip_keeps_architecture_compile_settings_weights_and_optimizer_state(trained, tmp_path):
    model, x, _ = trained
    loaded = npnet.models.load_model(saved_file(model, tmp_path))

    assert loaded.name == model.name
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    assert loaded.input_shape == (None, 4, 3) and loaded.count_params() == model.count_params()

    assert loaded.compiled
    assert type(loaded.optimizer) is npnet.optimizers.Adam
    assert loaded.optimizer.get_config() == {"learning_rate": 0.005, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}
    assert type(loaded.loss) is npnet.losses.SparseCategoricalCrossentropy and not loaded.loss.from_logits
    assert loaded.metrics_names == ["loss", "accuracy"]

    assert_weights_equal(loaded.get_weights(), model.get_weights())
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    for slot in ("m", "v"):
        assert_weights_equal(loaded.optimizer.state[slot], model.optimizer.state[slot], slot)

    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # bit for bit
    assert loaded.evaluate(x, trained[2], verbose=0) == model.evaluate(x, trained[2], verbose=0)


def test_training_after_load_continues_exactly(trained, tmp_path):
    model, x, y = trained
    loaded = npnet.models.load_model(saved_file(model, tmp_path), backend="numpy")
    npnet.utils.set_random_seed(11)
    expected = model.fit(x, y, epochs=2, verbose=0)
    npnet.utils.set_random_seed(11)
    continued = loaded.fit(x, y, epochs=2, verbose=0)
    assert continued.history == expected.history
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    for slot in ("m", "v"):
        assert_weights_equal(loaded.optimizer.state[slot], model.optimizer.state[slot], slot)


def test_without_the_optimizer_state_training_restarts_adam(trained, tmp_path):
    model, x, y = trained
    path = tmp_path / "no-opt.npnet"
    model.save(path, include_optimizer=False)
    loaded = npnet.models.load_model(path)
    assert loaded.compiled and loaded.optimizer.state is None and loaded.optimizer.iterations == 0
    assert_weights_equal(loaded.get_weights(), model.get_weights())


@pytest.mark.parametrize("suffix", [".npnet", ".keras", ".h5"])
def test_a_bytes_path_saves_and_loads_like_a_str_path(trained, tmp_path, suffix):
    """Paths as bytes (``os.fsencode``), which Python's own file functions take, name the same
    file as the str; anything else is refused saying what a path may be."""
    model, x, _ = trained
    path = os.fsencode(tmp_path / f"model{suffix}")
    model.save(path)
    loaded = npnet.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save_weights(os.fsencode(tmp_path / "model.weights.h5"))
    loaded.load_weights(os.fsencode(tmp_path / "model.weights.h5"))
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object, not int"):
        npnet.models.load_model(5)


def test_uncompiled_model_round_trip(tmp_path):
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(8, activation="relu"), Dense(10, activation="softmax")])
    loaded = npnet.models.load_model(saved_file(model, tmp_path))
    assert not loaded.compiled and loaded.optimizer is None
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    assert [layer.activation.name for layer in loaded.layers[1:]] == ["relu", "softmax"]


def test_model_built_from_data_round_trip(tmp_path):
    model = npnet.Sequential([Dense(4, activation="tanh"), Dense(2)])
    model.build((None, 3))
    loaded = npnet.models.load_model(saved_file(model, tmp_path))
    assert loaded.input_shape == (None, 3)
    assert_weights_equal(loaded.get_weights(), model.get_weights())


def test_float64_model_round_trip(tmp_path):
    previous = npnet.config.floatx()
    npnet.config.set_floatx("float64")
    try:
        model = tiny_model()
    finally:
        npnet.config.set_floatx(previous)
    loaded = npnet.models.load_model(saved_file(model, tmp_path))
    assert all(w.dtype == np.float64 for w in loaded.get_weights())
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    assert npnet.config.floatx() == previous


def test_save_before_build_is_refused(tmp_path):
    with pytest.raises(ValueError, match="save\\(\\) needs the model's weights"):
        npnet.Sequential([Dense(2)]).save(tmp_path / "x.npnet")
    assert list(tmp_path.iterdir()) == []


def test_the_file_is_a_zip_of_json_and_safetensors(trained, tmp_path):
    from safetensors.numpy import load

    model, _, _ = trained
    path = saved_file(model, tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["model.json", "optimizer.safetensors", "weights.safetensors"]
        meta = json.loads(archive.read("model.json"))
        weights = load(archive.read("weights.safetensors"))
        slots = load(archive.read("optimizer.safetensors"))
    assert meta["format"] == "npnet.model" and meta["format_version"] == 1
    assert meta["compile"]["loss"]["name"] == "sparse_categorical_crossentropy"
    assert sorted(weights) == ["001/bias", "001/kernel", "002/bias", "002/kernel"]
    np.testing.assert_array_equal(weights["001/kernel"], model.layers[1].kernel)
    assert sorted(slots) == [f"{s}/{i:03d}" for s in ("m", "v") for i in range(4)]


# ----------------------------------------------------------------------------- bad files


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def rewrite_meta(source, target, change):
    """Copy a saved model, editing its model.json with ``change(meta)``."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(entries["model.json"])
    change(meta)
    entries["model.json"] = json.dumps(meta)
    return write_zip(target, entries)


class Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_file_renamed_is_rejected_without_running_it(tmp_path, trained):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.npnet"
    path.write_bytes(pickle.dumps({"weights": trained[0].get_weights(), "payload": Exploit(marker)}))
    with pytest.raises(npnet.saving.ModelFileError, match="not a zip archive"):
        npnet.models.load_model(path)
    assert not marker.exists()
    # A pickle tucked inside an otherwise valid-looking archive is not read either.
    good = saved_file(trained[0], tmp_path, "good.npnet")
    with zipfile.ZipFile(good) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["weights.safetensors"] = pickle.dumps(Exploit(marker))
    with pytest.raises(ValueError, match="corrupted"):
        npnet.models.load_model(write_zip(tmp_path / "mixed.npnet", entries))
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, world\n", bytes(range(256)) * 8, b"PK\x03\x04garbage"],
                         ids=["empty", "text", "binary", "zip-magic-then-garbage"])
def test_a_file_that_is_not_a_model_is_rejected(tmp_path, content):
    path = tmp_path / "junk.npnet"
    path.write_bytes(content)
    with pytest.raises(npnet.saving.ModelFileError, match="junk.npnet.* not a zip archive"):
        npnet.models.load_model(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_rejected(trained, tmp_path, fraction):
    data = saved_file(trained[0], tmp_path).read_bytes()
    path = tmp_path / "truncated.npnet"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError, match="npnet model|corrupted|truncated"):
        npnet.models.load_model(path)


def test_another_zip_is_rejected(tmp_path):
    path = write_zip(tmp_path / "other.npnet", {"config.json": "{}", "model.weights.h5": b"\x89HDF"})
    with pytest.raises(ValueError, match="lacks model.json or weights.safetensors"):
        npnet.models.load_model(path)


def test_an_incompatible_version_is_rejected(trained, tmp_path):
    source = saved_file(trained[0], tmp_path)
    path = rewrite_meta(source, tmp_path / "future.npnet", lambda meta: meta.update(format_version=99))
    with pytest.raises(ValueError, match="future.npnet.*format version 99.*reads version 1"):
        npnet.models.load_model(path)


def test_a_foreign_format_name_is_rejected(trained, tmp_path):
    source = saved_file(trained[0], tmp_path)
    path = rewrite_meta(source, tmp_path / "foreign.npnet", lambda meta: meta.update(format="something.else"))
    with pytest.raises(ValueError, match="not an npnet model file \\(format 'something.else'\\)"):
        npnet.models.load_model(path)


@pytest.mark.parametrize("change", [
    lambda meta: meta.pop("model"),
    lambda meta: meta["model"]["layers"][1]["config"].update(units=6),
    lambda meta: meta["model"]["layers"][1].update(class_name="Conv2D"),
    lambda meta: meta["model"]["layers"][1]["config"].update(activation="swishy"),
    lambda meta: meta["compile"]["optimizer"].update(class_name="Adagrad"),
    lambda meta: meta["compile"]["loss"].update(name="dice", class_name="Dice"),  # a Keras loss npnet lacks
    lambda meta: meta["compile"]["loss"].update(name="dice") or meta["compile"]["loss"].pop("class_name"),
    lambda meta: meta["model"]["layers"].pop(2),
    lambda meta: meta["compile"]["optimizer"]["config"].update(beta_1=2.0),
], ids=["no-model", "units-mismatch", "unknown-layer", "unknown-activation", "unknown-optimizer",
        "unknown-loss", "unknown-loss-by-name", "layer-removed", "invalid-optimizer-setting"])
def test_inconsistent_contents_are_rejected_with_a_value_error(trained, tmp_path, change):
    source = saved_file(trained[0], tmp_path)
    path = rewrite_meta(source, tmp_path / "bad.npnet", change)
    with pytest.raises(ValueError) as error:
        npnet.models.load_model(path)
    assert "bad.npnet" in str(error.value)  # the message names the file


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        npnet.models.load_model(tmp_path / "absent.npnet")


# ----------------------------------------------------------------------------- failed saves


def fail_on_second_entry(monkeypatch):
    """Make zipfile fail after model.json was written: a crash in the middle of a save."""
    original = zipfile.ZipFile.writestr
    calls = []

    def writestr(self, name, data, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return original(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    return calls


def test_a_failed_save_leaves_no_file(trained, tmp_path, monkeypatch):
    calls = fail_on_second_entry(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        trained[0].save(tmp_path / "model.npnet")
    assert calls[0] == "model.json" and len(calls) == 2  # it did fail mid-write
    assert os.listdir(tmp_path) == []


def test_a_failed_save_keeps_the_previous_file_intact(trained, tmp_path, monkeypatch):
    model, x, y = trained
    path = saved_file(model, tmp_path)
    before = path.read_bytes()
    model.fit(x, y, verbose=0)  # something new to save
    fail_on_second_entry(monkeypatch)
    with pytest.raises(OSError):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npnet"]
    monkeypatch.undo()
    assert npnet.models.load_model(path).optimizer.iterations == 6


def test_save_accepts_str_and_path_and_overwrites(trained, tmp_path):
    model, x, _ = trained
    model.save(str(tmp_path / "a.npnet"))
    model.save(tmp_path / "a.npnet")
    assert os.listdir(tmp_path) == ["a.npnet"]
    np.testing.assert_array_equal(npnet.load_model(str(tmp_path / "a.npnet")).predict(x), model.predict(x))


def test_load_model_of_bytes_like_content_is_not_supported(tmp_path):
    # The API takes a path; an in-memory buffer is a TypeError from os.fspath, not a crash inside.
    with pytest.raises(TypeError):
        npnet.models.load_model(io.BytesIO(b"PK"))


# ----------------------------------------------------------------------------- paths Keras refuses


@pytest.mark.parametrize("name", ["path_to_my_model", "model.zip", "model.onnx", "model.keras.bak"])
def test_save_refuses_an_extension_it_does_not_write_and_writes_nothing(trained, tmp_path, name):
    # Keras 3: "Invalid filepath extension for saving" for anything but .keras / .h5.
    with pytest.raises(ValueError, match=r"Invalid filepath extension.*'\.keras'.*'\.h5'.*'\.npnet'") as error:
        trained[0].save(tmp_path / name)
    assert name in str(error.value)
    assert os.listdir(tmp_path) == []


def test_save_to_onnx_points_to_export(trained, tmp_path):
    with pytest.raises(ValueError, match=r"model\.export\(path, format='onnx'\)"):
        trained[0].save(tmp_path / "model.onnx")


@pytest.mark.parametrize("name", ["model.keras", "model.npnet"])
def test_save_into_a_missing_folder_names_the_folder_and_leaves_nothing(trained, tmp_path, name):
    # Keras 3 raises FileNotFoundError for a .keras file in a missing folder.
    with pytest.raises(FileNotFoundError, match="the folder '.*nodir' does not exist") as error:
        trained[0].save(tmp_path / "nodir" / name)
    assert ".tmp" not in str(error.value)
    assert os.listdir(tmp_path) == []


def test_save_weights_into_a_missing_folder_names_the_folder(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder '.*nodir' does not exist"):
        trained[0].save_weights(tmp_path / "nodir" / "w.weights.h5")
    assert os.listdir(tmp_path) == []


def test_legacy_h5_save_creates_missing_folders_as_keras_does(trained, tmp_path):
    model, x, _ = trained
    model.save(tmp_path / "a" / "b" / "model.h5")
    assert os.listdir(tmp_path / "a" / "b") == ["model.h5"]
    np.testing.assert_array_equal(npnet.models.load_model(tmp_path / "a" / "b" / "model.h5").predict(x),
                                  model.predict(x))


def test_load_model_still_reads_an_npnet_file_under_another_name(trained, tmp_path):
    # Older npnet saved its own format under any extension; those files still open.
    model, x, _ = trained
    path = saved_file(model, tmp_path)
    os.rename(path, tmp_path / "old_model")
    np.testing.assert_array_equal(npnet.models.load_model(tmp_path / "old_model").predict(x), model.predict(x))


def test_models_save_model_is_keras_function_form_of_save(trained, tmp_path):
    model, x, _ = trained
    npnet.models.save_model(model, tmp_path / "m.keras")
    np.testing.assert_array_equal(npnet.models.load_model(tmp_path / "m.keras").predict(x), model.predict(x))
    with pytest.raises(FileExistsError, match="overwrite=False"):
        npnet.models.save_model(model, tmp_path / "m.keras", overwrite=False)
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        npnet.models.save_model(model, tmp_path / "m")


@pytest.mark.parametrize("loss", ["mape", "msle", "log_cosh", "kld", "poisson", "hinge", "squared_hinge",
                                  "categorical_hinge", npnet.losses.CosineSimilarity(name="cosine")])
def test_the_keras_regression_and_hinge_losses_round_trip(loss, tmp_path):
    model = npnet.Sequential([npnet.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    assert type(loaded.loss) is type(model.loss)
    assert loaded.loss.get_config() == model.loss.get_config()


def test_a_file_naming_its_loss_without_the_class_still_loads(trained, tmp_path):
    """Files written before the loss's class_name was stored name the loss by its name only."""
    source = saved_file(trained[0], tmp_path)
    path = rewrite_meta(source, tmp_path / "older.npnet", lambda meta: meta["compile"]["loss"].pop("class_name"))
    assert type(npnet.models.load_model(path).loss) is npnet.losses.SparseCategoricalCrossentropy
