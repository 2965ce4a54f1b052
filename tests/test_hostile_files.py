"""Hostile model files, generated here: each is refused with a ModelFileError naming the
file, no code runs, and nothing large is allocated before the refusal.

The Keras CVEs on this path (CVE-2024-3660, CVE-2025-1550, CVE-2025-8747, CVE-2025-9905,
CVE-2025-9906) each have a file below shaped like its exploit; the reliability issue's
files (a small file declaring 50,000 units, a zip member inflating to hundreds of MB,
optimizer moments of the wrong shape, raw exceptions escaping) too. No TensorFlow needed.
"""

import base64
import copy
import io
import json
import marshal
import os
import tracemalloc
import warnings
import zipfile

import h5py
import numpy as np
import pytest

import npnet
from npnet.layers import Dense, Flatten
from npnet.saving import FileTooLarge, ModelFileError

#: Peak bytes any refusal below may allocate (the hostile files declare hundreds of MB).
ALLOCATION_BOUND = 20 * 2**20


@pytest.fixture
def good(tmp_path):
    """A trained tiny model saved in every format npnet writes."""
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(8, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, 28, 28), dtype=np.float32)
    model.fit(x, np.arange(16) % 10, batch_size=8, verbose=0)
    model.save(tmp_path / "good.keras")
    model.save(tmp_path / "good.npnet")
    model.save_weights(tmp_path / "good.weights.h5")
    return model


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def edited_keras(tmp_path, name, change):
    """good.keras with its config.json edited by ``change(config)``."""
    entries = members(tmp_path / "good.keras")
    config = json.loads(entries["config.json"])
    change(config)
    entries["config.json"] = json.dumps(config)
    return write_zip(tmp_path / name, entries)


def refused(path, match, load=npnet.models.load_model):
    """Load ``path``; it must fail with a ModelFileError naming it and matching ``match``,
    allocating less than ALLOCATION_BOUND. Returns the message."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match) as error:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert os.path.basename(str(path)) in str(error.value)
    assert peak < ALLOCATION_BOUND, f"{peak:,} bytes allocated before the refusal"
    return str(error.value)


def layer(config, index):
    return config["config"]["layers"][index]


# ----------------------------------------------------------------------- code named in a file


def test_cve_2024_3660_lambda_with_bytecode_is_refused_without_running(tmp_path, good):
    marker = tmp_path / "code-ran"
    code = compile(f"open({str(marker)!r}, 'w')", "<payload>", "exec")
    payload = base64.b64encode(marshal.dumps(code)).decode()
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                    "config": {"name": "lambda", "function": {"class_name": "__lambda__",
                               "config": {"code": payload, "defaults": None, "closure": None}}}}
    path = edited_keras(tmp_path, "lambda.keras", lambda c: c["config"]["layers"].insert(2, lambda_layer))
    refused(path, "'Lambda' carries Python code")
    assert not marker.exists()


def test_cve_2025_1550_a_module_pointing_elsewhere_is_refused(tmp_path, good):
    def point_elsewhere(config):
        layer(config, 2).update(module="os", class_name="Dense")
    refused(edited_keras(tmp_path, "module.keras", point_elsewhere), "names module 'os'.*never imports")


def test_a_config_naming_os_system_is_refused(tmp_path, good):
    def os_system(config):
        layer(config, 2).update(module="os", class_name="system", config={"command": "touch pwned"})
    refused(edited_keras(tmp_path, "system.keras", os_system), "layer class 'system' is not one npnet knows")


def test_cve_2025_8747_a_keras_function_as_activation_is_refused(tmp_path, good):
    get_file = {"module": "keras.utils", "class_name": "function", "config": "get_file",
                "registered_name": "function"}
    path = edited_keras(tmp_path, "getfile.keras", lambda c: layer(c, 2)["config"].update(activation=get_file))
    refused(path, "names module 'keras.utils'")


def test_cve_2025_9906_enable_unsafe_deserialization_is_refused(tmp_path, good):
    unsafe = {"module": "keras.config", "class_name": "function",
              "config": "enable_unsafe_deserialization", "registered_name": "function"}
    path = edited_keras(tmp_path, "unsafe.keras", lambda c: layer(c, 2)["config"].update(activation=unsafe))
    refused(path, "names module 'keras.config'")


def test_a_registered_name_pointing_elsewhere_is_refused(tmp_path, good):
    path = edited_keras(tmp_path, "registered.keras",
                        lambda c: layer(c, 2).update(registered_name="mypackage>Evil"))
    refused(path, "registered_name 'mypackage>Evil'")


def test_cve_2025_9905_lambda_in_a_legacy_h5_is_refused(tmp_path, good):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "in"}},
        {"class_name": "Lambda", "config": {"name": "l", "function": ["payload", None, None]}}]}}
    path = tmp_path / "lambda.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
    refused(path, "'Lambda' carries Python code")


# ----------------------------------------------------------------------- sizes that lie


def test_a_keras_file_declaring_50000_units_over_small_arrays_is_refused_before_allocating(tmp_path, good):
    path = edited_keras(tmp_path, "huge.keras", lambda c: layer(c, 2)["config"].update(units=50_000))
    assert path.stat().st_size < 200_000
    refused(path, "inflates|declares|shape")


def test_an_npnet_file_declaring_50000_units_is_refused_before_allocating(tmp_path, good):
    entries = members(tmp_path / "good.npnet")
    meta = json.loads(entries["model.json"])
    meta["model"]["layers"][1]["config"]["units"] = 50_000
    entries["model.json"] = json.dumps(meta)
    refused(write_zip(tmp_path / "huge.npnet", entries), "shape")


def test_an_absurd_layer_size_is_refused_by_the_parameter_bound(tmp_path, good):
    path = edited_keras(tmp_path, "absurd.keras", lambda c: layer(c, 2)["config"].update(units=10**30))
    refused(path, "MAX_PARAMETERS")


def zip_with_inflating_member(path, name, n_bytes, others):
    """A zip whose member ``name`` inflates to ``n_bytes`` zeros, written in chunks."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for other, data in others.items():
            archive.writestr(other, data)
        with archive.open(name, "w") as member:
            chunk = bytes(2**20)
            for _ in range(n_bytes // 2**20):
                member.write(chunk)
    return path


@pytest.mark.parametrize("name, fmt", [("weights.safetensors", "npnet"), ("model.weights.h5", "keras"),
                                       ("config.json", "keras")])
def test_a_member_that_inflates_to_hundreds_of_mb_is_refused_unread(tmp_path, good, name, fmt):
    others = {k: v for k, v in members(tmp_path / f"good.{fmt}").items() if k != name}
    path = zip_with_inflating_member(tmp_path / f"bomb.{fmt}", name, 300 * 2**20, others)
    assert path.stat().st_size < 1_000_000
    message = refused(path, f"member '{name}' declares")
    assert "more than" in message


@pytest.mark.parametrize("fmt, name", [("keras", "config.json"), ("keras", "model.weights.h5"),
                                       ("npnet", "weights.safetensors")])
def test_a_member_stored_twice_is_refused(tmp_path, good, fmt, name):
    """Zip readers differ on which of two members of one name counts (Python's takes the last,
    others the first), so a file could load as one model here and another elsewhere."""
    entries = members(tmp_path / f"good.{fmt}")
    path = tmp_path / f"twice.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in entries.items():
                archive.writestr(member, data)
            archive.writestr(name, entries[name])
    refused(path, f"more than one member named '{name}'")
    if fmt == "keras":
        refused(path, f"more than one member named '{name}'", load=good.load_weights)


def test_a_member_lying_about_its_size_is_refused(tmp_path, good):
    """The directory says 100 bytes; reading stops there and the CRC check fails."""
    source = tmp_path / "good.keras"
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("config.json")
    offset = data.rfind(b"config.json", 0, len(data) - 10)  # the central directory entry
    central = data.rfind(b"PK\x01\x02", 0, offset)
    data[central + 24:central + 28] = (100).to_bytes(4, "little")  # uncompressed size
    assert info.file_size > 100
    path = tmp_path / "lying.keras"
    path.write_bytes(bytes(data))
    refused(path, "corrupted|truncated|CRC|JSON|Expecting|Unterminated")


def h5_with_unstored_dataset(path, units):
    """A weights file whose first kernel is declared (784, units) but never written."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", shape=(784, units), dtype="f4")
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(units, "f4"))
        h5.create_dataset("layers/dense_1/vars/0", data=np.zeros((units, 10), "f4"))
        h5.create_dataset("layers/dense_1/vars/1", data=np.zeros(10, "f4"))
    return path


def test_an_oversized_dataset_in_a_weights_file_is_refused_before_reading(tmp_path, good):
    huge = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(8), Dense(10)])
    path = h5_with_unstored_dataset(tmp_path / "unstored.weights.h5", 8)
    refused(path, "declares .* bytes but the file stores 0", load=huge.load_weights)
    wrong = h5_with_unstored_dataset(tmp_path / "wrong.weights.h5", 50_000)
    before = huge.get_weights()
    refused(wrong, "shape", load=huge.load_weights)
    for a, b in zip(huge.get_weights(), before):  # the model is unchanged
        np.testing.assert_array_equal(a, b)


def test_a_dataset_stored_in_another_file_is_refused(tmp_path, good):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(784 * 8, dtype="f4").tobytes())
    path = tmp_path / "external.weights.h5"
    with h5py.File(tmp_path / "good.weights.h5") as source, h5py.File(path, "w") as h5:
        source.copy("layers", h5)
        del h5["layers/dense/vars/0"]
        h5.create_dataset("layers/dense/vars/0", shape=(784, 8), dtype="f4", external=[(str(secret), 0, 784 * 8 * 4)])
    refused(path, "not an array stored in the file itself", load=good.load_weights)


def test_a_link_to_another_file_is_refused(tmp_path, good):
    path = tmp_path / "link.weights.h5"
    with h5py.File(tmp_path / "good.weights.h5") as source, h5py.File(path, "w") as h5:
        source.copy("layers", h5)
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "good.weights.h5"), "layers/dense/vars/0")
    refused(path, "ExternalLink", load=good.load_weights)


def test_optimizer_moments_of_the_wrong_shape_are_refused(tmp_path, good):
    entries = members(tmp_path / "good.keras")
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        del h5["optimizer/vars/2"]
        h5["optimizer/vars/2"] = np.zeros((1, 8), "f4")  # broadcastable to (784, 8): must not be
    entries["model.weights.h5"] = buffer.getvalue()
    refused(write_zip(tmp_path / "moments.keras", entries), r"optimizer/vars/2 .* shape \(1, 8\)")


# ----------------------------------------------------------------------- broken structure


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
@pytest.mark.parametrize("fmt", ["keras", "npnet"])
def test_a_truncated_file_is_refused(tmp_path, good, fraction, fmt):
    data = (tmp_path / f"good.{fmt}").read_bytes()
    path = tmp_path / f"truncated.{fmt}"
    path.write_bytes(data[:int(len(data) * fraction)])
    refused(path, "truncated|corrupted|not a")


def test_a_truncated_legacy_h5_is_refused(tmp_path):
    data = open(os.path.join(os.path.dirname(__file__), "data", "keras2_tiny.h5"), "rb").read()
    path = tmp_path / "truncated.h5"
    path.write_bytes(data[:len(data) // 2])
    refused(path, "corrupted")


def test_deeply_nested_json_is_refused(tmp_path, good):
    entries = members(tmp_path / "good.keras")
    entries["config.json"] = "[" * 100_000 + "]" * 100_000
    refused(write_zip(tmp_path / "deep.keras", entries), "nested too deeply|corrupted|expected")


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("config"), "layers"),
    (lambda c: layer(c, 2)["config"].update(units="eight"), "units must be an integer"),
    (lambda c: layer(c, 2)["config"].update(use_bias="no"), "use_bias must be true or false"),
    (lambda c: layer(c, 2)["config"].update(dtype="mixed_float16"), "dtype 'mixed_float16'"),
    (lambda c: layer(c, 0)["config"].update(batch_shape=[None, -3]), "input shape"),
    (lambda c: c["compile_config"].update(loss="dice"), "loss 'dice'"),
    (lambda c: c["compile_config"]["optimizer"].update(class_name="Adagrad"), "optimizer class 'Adagrad'"),
    (lambda c: c["compile_config"]["optimizer"]["config"].update(weight_decay=0.1), "weight_decay=0.1"),
    (lambda c: c["compile_config"]["optimizer"]["config"].update(beta_1=2.0), "beta_1"),
    (lambda c: c["compile_config"].update(metrics=["f1_score"]), "metric .f1_score."),
    (lambda c: layer(c, 2)["config"].update(bias_initializer={
        "module": "keras.initializers", "class_name": "Constant", "config": {"value": "1; import os"}}),
     "Constant initializer's value"),
    (lambda c: layer(c, 2)["config"].update(bias_initializer={
        "module": "keras.initializers", "class_name": "Constant", "config": {"value": [1e400]}}),
     "finite number"),
    (lambda c: layer(c, 2)["config"].update(bias_initializer={
        "module": "keras.initializers", "class_name": "Identity", "config": {}}), "initializer class 'Identity'"),
    (lambda c: layer(c, 2)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "RandomNormal", "config": {"stddev": -1.0}}),
     "stddev must be a finite number >= 0; received stddev=-1.0"),
    (lambda c: layer(c, 2)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "RandomUniform", "config": {"maxval": "1; import os"}}),
     "maxval must be a finite number"),
    (lambda c: layer(c, 2)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "VarianceScaling", "config": {"mode": "fan_sideways"}}),
     "mode must be one of fan_in, fan_out, fan_avg"),
    (lambda c: layer(c, 2)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "Orthogonal", "config": {"gain": 1.0, "hook": "os.system"}}),
     "Orthogonal has no setting 'hook'"),
    (lambda c: layer(c, 2)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "TruncatedNormal", "config": {"seed": -4}}),
     "seed must be None or an integer"),
], ids=["no-config", "units-text", "no-bias", "mixed-precision", "negative-shape", "unknown-loss",
        "unknown-optimizer", "weight-decay", "invalid-setting", "unknown-metric", "constant-text",
        "constant-inf", "unknown-initializer", "negative-stddev", "text-maxval", "unknown-mode", "unknown-setting",
        "negative-seed"])
def test_contents_npnet_cannot_honour_are_refused_by_name(tmp_path, good, change, match):
    refused(edited_keras(tmp_path, "bad.keras", change), match)


def test_a_null_optimizer_loads_with_the_default_one_and_a_warning(tmp_path, good):
    # Keras writes "optimizer": null after compile(optimizer=None); the Adam moments stored
    # beside it belong to no optimizer the file names, so they are not read.
    path = edited_keras(tmp_path, "null_optimizer.keras", lambda c: c["compile_config"].update(optimizer=None))
    with pytest.warns(UserWarning, match="names no optimizer.*RMSprop"):
        model = npnet.models.load_model(path)
    assert type(model.optimizer).__name__ == "RMSprop" and model.optimizer.iterations == 0
    assert model.metrics_names == good.metrics_names
    for mine, loaded in zip(good.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, loaded)


@pytest.mark.parametrize("value", [42, True, ["adam"], {"config": {}}], ids=["number", "bool", "list", "no-class"])
def test_an_optimizer_entry_of_another_type_is_still_refused(tmp_path, good, value):
    path = edited_keras(tmp_path, "odd_optimizer.keras", lambda c: c["compile_config"].update(optimizer=value))
    refused(path, "optimizer")


def test_a_weights_only_file_given_to_load_model_says_what_to_do(tmp_path, good):
    with pytest.raises(ValueError, match="load_weights"):
        npnet.models.load_model(tmp_path / "good.weights.h5")


def test_failed_load_weights_leaves_the_model_unchanged(tmp_path, good):
    path = tmp_path / "nan.weights.h5"
    with h5py.File(tmp_path / "good.weights.h5") as source, h5py.File(path, "w") as h5:
        for key in ("layers", "optimizer"):
            source.copy(key, h5)
        h5["layers/dense_1/vars/0"][0, 0] = np.nan
    before, iterations = good.get_weights(), good.optimizer.iterations
    refused(path, "NaN", load=good.load_weights)
    for a, b in zip(good.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert good.optimizer.iterations == iterations


def test_file_too_large_is_a_model_file_error():
    assert issubclass(FileTooLarge, ModelFileError) and issubclass(ModelFileError, ValueError)


# ----------------------------------------------------------------------- Normalization layers


@pytest.fixture
def normalized(tmp_path):
    """A model whose first layer is an adapted Normalization, saved as .keras and .npnet."""
    norm = npnet.layers.Normalization()
    norm.adapt(np.random.default_rng(0).normal(size=(32, 6)))
    model = npnet.Sequential([npnet.Input((6,)), norm, Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "norm.keras")
    model.save(tmp_path / "norm.npnet")
    return model


@pytest.mark.parametrize("change, match", [
    (lambda c: c.update(axis="last"), "axis must be an integer"),
    (lambda c: c.update(axis=[0]), "axis 0 is the batch axis"),
    (lambda c: c.update(invert="yes"), "invert must be true or false"),
    (lambda c: c.update(mean="1; import os", variance=1.0), "mean must be a number or an array"),
    (lambda c: c.update(mean=[1e400] * 6, variance=[1.0] * 6), "mean must be finite"),
    (lambda c: c.update(mean=[0.0] * 6, variance=[-1.0] * 6), "variance must not be negative"),
    (lambda c: c.update(mean=[[[0.0]]], variance=[[[1.0]]]), "more axes than axis"),
], ids=["axis-text", "batch-axis", "invert-text", "mean-text", "mean-inf", "negative-variance", "mean-rank"])
def test_normalization_settings_npnet_cannot_honour_are_refused_by_name(tmp_path, normalized, change, match):
    entries = members(tmp_path / "norm.keras")
    config = json.loads(entries["config.json"])
    change(layer(config, 1)["config"])
    entries["config.json"] = json.dumps(config)
    refused(write_zip(tmp_path / "bad.keras", entries), match)


@pytest.mark.parametrize("name, array, match", [
    ("1", -np.ones(6, "f4"), "variance cannot be negative"),
    ("2", np.zeros(5, "i8"), r"shape \(5,\)"),
    ("0", np.full(6, np.nan, "f4"), "NaN"),
])
def test_normalization_statistics_that_would_poison_predictions_are_refused(tmp_path, normalized, name, array, match):
    entries = members(tmp_path / "norm.keras")
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        del h5[f"layers/normalization/vars/{name}"]
        h5[f"layers/normalization/vars/{name}"] = array
    entries["model.weights.h5"] = buffer.getvalue()
    refused(write_zip(tmp_path / "stats.keras", entries), match)


# ----------------------------------------------------------------------- functional graphs


@pytest.fixture
def functional_good(tmp_path):
    """A functional chain features -> hidden -> scores, saved as .keras and .npnet."""
    inputs = npnet.Input(shape=(4,), name="features")
    outputs = Dense(3, activation="softmax", name="scores")(Dense(5, activation="relu", name="hidden")(inputs))
    model = npnet.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "functional.keras")
    model.save(tmp_path / "functional.npnet")
    return model


def edited_functional(tmp_path, change):
    entries = members(tmp_path / "functional.keras")
    config = json.loads(entries["config.json"])
    change(config["config"])
    entries["config.json"] = json.dumps(config)
    return write_zip(tmp_path / "bad_functional.keras", entries)


def fed_by(name):
    """An inbound_nodes value: one call on the output of the layer called ``name``."""
    return [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [None, 5], "dtype": "float32",
                                                                    "keras_history": [name, 0, 0]}}],
             "kwargs": {}}]


def _merge(body):
    body["layers"][2]["inbound_nodes"][0]["args"].append(body["layers"][2]["inbound_nodes"][0]["args"][0])


def _deep_history(body):
    body["layers"][1]["inbound_nodes"] = "@DEEP@"


@pytest.mark.parametrize("change, match", [
    (lambda b: b["layers"][2].update(inbound_nodes=fed_by("features")), r"takes \['features'\].*one chain"),
    (lambda b: b["layers"][2].update(inbound_nodes=fed_by("ghost")), r"takes \['ghost'\].*one chain"),
    (lambda b: b["layers"][0].update(inbound_nodes=fed_by("scores")), "first layer must be its InputLayer"),
    (lambda b: b["layers"].pop(0), "first layer must be its InputLayer"),
    (lambda b: b["layers"].reverse(), "first layer must be its InputLayer"),
    (lambda b: b["layers"][2].update(name="hidden"), "distinct names"),
    (lambda b: b["layers"][1].update(inbound_nodes=fed_by("features") * 2), "one inbound node"),
    (_merge, "one chain"),
    (lambda b: b.update(input_layers=[["features", 0, 0], ["other", 0, 0]]), "input_layers"),
    (lambda b: b.update(output_layers=[["hidden", 0, 0], ["scores", 0, 0]]), "output_layers"),
    (lambda b: b.update(output_layers=["hidden", 0, 0]), "output_layers"),
    (lambda b: b["layers"][0].update(name=7), "distinct names"),
], ids=["branch-from-input", "unknown-inbound", "cycle-into-input", "no-input-layer", "reversed",
        "duplicate-name", "layer-used-twice", "merge", "two-inputs", "two-outputs", "output-not-at-end",
        "name-not-text"])
def test_functional_graphs_npnet_cannot_run_are_refused(tmp_path, functional_good, change, match):
    refused(edited_functional(tmp_path, change), match)


def test_deeply_nested_functional_graphs_are_refused(tmp_path, functional_good):
    # unedited, the file loads as the functional model it is
    assert npnet.models.load_model(tmp_path / "functional.keras").input.name == "features"
    entries = members(tmp_path / "functional.keras")
    config = json.loads(entries["config.json"])
    _deep_history(config["config"])
    entries["config.json"] = json.dumps(config).replace('"@DEEP@"', "[" * 100_000 + "]" * 100_000)
    refused(write_zip(tmp_path / "deep_functional.keras", entries), "nested too deeply|corrupted")

    # a model used as a layer, itself holding a model as a layer, 300 levels down
    def nest(body):
        inner = copy.deepcopy(body["layers"][1])
        for _ in range(300):
            inner = {"module": "keras.src.models.functional", "class_name": "Functional",
                     "config": {"name": "inner", "layers": [inner]}, "registered_name": "Functional",
                     "name": "hidden", "inbound_nodes": body["layers"][1]["inbound_nodes"]}
        body["layers"][1] = inner
    refused(edited_functional(tmp_path, nest), "layer class 'Functional' is not one npnet knows")


def _edited_npnet(tmp_path, change, source="functional.npnet"):
    """``source`` (an .npnet file in tmp_path) with its model.json edited by ``change(meta)``."""
    entries = members(tmp_path / source)
    meta = json.loads(entries["model.json"])
    change(meta)
    entries["model.json"] = json.dumps(meta)
    return write_zip(tmp_path / f"edited_{source}", entries)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.update(model_class="os.system"), "model_class 'os.system'"),
    (lambda m: m["model"].update(input_name=["features"]), "input_name must be a string"),
    (lambda m: m["model"].update(input_name="x" * 10_000), "input_name must be a string"),
], ids=["unknown-class", "name-not-text", "name-too-long"])
def test_npnet_functional_descriptions_are_checked(tmp_path, functional_good, change, match):
    refused(_edited_npnet(tmp_path, change), match)


# ----------------------------------------------------------------------- metrics in a compile config

def _auc(**config):
    return {"module": "keras.metrics", "class_name": "AUC", "config": {"name": "auc", **config},
            "registered_name": None}


@pytest.mark.parametrize("metric, match", [
    (_auc(num_thresholds=10**9), "num_thresholds 1000000000 is more than"),
    (_auc(thresholds=[0.5] * 200_000), "list of up to 100000 numbers"),
    (_auc(thresholds={"__class__": "os.system"}), "setting thresholds must be a number"),
    (_auc(run="os.system('true')"), r"settings \['run'\] are not ones npnet's AUC takes"),
    ({"module": "os", "class_name": "AUC", "config": {}}, "names module 'os'"),
    ({"module": "keras.metrics", "class_name": "Lambda", "config": {}}, "metric class 'Lambda' is not one"),
    ({"module": "keras.losses", "class_name": "BinaryCrossentropy", "config": {"from_logits": "yes"}},
     "from_logits must be true or false"),
], ids=["huge num_thresholds", "huge thresholds list", "dict setting", "unknown setting", "foreign module",
        "unknown class", "bad loss as metric"])
def test_metric_objects_in_a_compile_config_are_checked_before_anything_is_built(tmp_path, good, metric, match):
    def change(config):
        config["compile_config"]["metrics"] = ["accuracy", metric]
    refused(edited_keras(tmp_path, "metric.keras", change), match)


@pytest.mark.parametrize("name", ["model.keras", "model.npnet", "model.h5", "model.weights.h5"])
def test_a_folder_or_a_symlink_loop_is_named_as_such_not_as_missing(tmp_path, good, name):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / name).mkdir()
    (tmp_path / f"a.{name}").symlink_to(tmp_path / f"b.{name}")
    (tmp_path / f"b.{name}").symlink_to(tmp_path / f"a.{name}")
    load = good.load_weights if name.endswith(".weights.h5") else npnet.models.load_model
    with pytest.raises(IsADirectoryError, match="is a folder; expected a"):
        load(tmp_path / "folder" / name)
    with pytest.raises(OSError, match="is a loop of symbolic links; expected a"):
        load(tmp_path / f"a.{name}")
    with pytest.raises(FileNotFoundError, match="No (model|weights) file at"):
        load(tmp_path / f"missing.{name}")


@pytest.mark.parametrize("change, match", [
    (lambda m: m["model"].update(layers={"a": 1}), "model.layers must be a list; the file has dict"),
    (lambda m: m["model"]["layers"].__setitem__(1, "Dense"), r"model.layers\[1\] must be a JSON object"),
    (lambda m: m["model"]["layers"][1].update(config=[]), r"model.layers\[1\].config must be a JSON object"),
    (lambda m: m["compile"].update(loss="evil"), "compile.loss must be a JSON object; the file has str 'evil'"),
    (lambda m: m["compile"]["optimizer"].update(class_name=7), "compile.optimizer.class_name must be a string"),
    (lambda m: m["compile"]["optimizer"]["config"].update(iterations=-1),
     "Adam has no setting 'iterations'; expected some of beta_1, beta_2, epsilon, learning_rate"),
    (lambda m: m["compile"]["optimizer"].update(class_name="Lion"), "unknown optimizer class 'Lion'"),
], ids=["layers-dict", "layer-str", "config-list", "loss-str", "optimizer-class-int", "unknown-setting",
        "unknown-optimizer"])
def test_an_npnet_description_of_the_wrong_layout_is_refused_saying_what_was_expected(tmp_path, good, change, match):
    message = refused(_edited_npnet(tmp_path, change, source="good.npnet"), match)
    assert "corrupted" not in message
