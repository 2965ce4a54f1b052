"""Hostile optimizer state and HDF5 links in model files, and saves over FIFOs.

Every value a file gives the model is checked before anything changes: weights and optimizer
slots finite in the model's float type, Adam's ``v`` and RMSprop's ``velocity`` >= 0, the step
count a whole number within int64; a refused file names itself and the variable and leaves the
model as it was. A load interrupted by a real SIGINT leaves the model entirely as it was or
entirely as the file has it. A file whose optimizer never stepped resets the optimizer; links
on any group above a dataset are refused; saving never replaces a FIFO with a regular file.
"""

import io
import json
import os
import stat
import textwrap
import zipfile

import h5py
import numpy as np
import pytest
from safetensors.numpy import load as load_tensors, save as save_tensors

import npnet
from npnet.layers import Dense
from npnet.saving import ModelFileError
from test_interrupts import interrupt_once



def trained(optimizer="adam", seed=0):
    npnet.utils.set_random_seed(seed)
    model = npnet.Sequential([npnet.Input((6,)), Dense(5, activation="relu"), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    model.fit(rng.random((32, 6), dtype=np.float32), np.arange(32) % 3, batch_size=8, verbose=0)
    return model


def snapshot(model):
    state = model.optimizer.state or {}
    return ([w.copy() for w in model.get_weights()],
            {slot: [a.copy() for a in arrays] for slot, arrays in state.items()}, model.optimizer.iterations)


def assert_unchanged(model, before):
    weights, state, iterations = snapshot(model)
    for a, b in zip(weights, before[0]):
        np.testing.assert_array_equal(a, b)
    assert state.keys() == before[1].keys()
    for slot in state:
        for a, b in zip(state[slot], before[1][slot]):
            np.testing.assert_array_equal(a, b)
    assert iterations == before[2]


def refused(load, path, match):
    with pytest.raises(ModelFileError, match=match) as error:
        load(path)
    assert os.path.basename(str(path)) in str(error.value)
    return str(error.value)


def edited_weights_file(source, path, change):
    """A copy of the .weights.h5 ``source`` at ``path``, its HDF5 edited by ``change(h5)``."""
    path.write_bytes(source.read_bytes())
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


def edited_zip(source, path, member, change):
    """A copy of the zip ``source`` with ``member``'s bytes replaced by ``change(bytes)``."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries[member] = change(entries[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def edited_h5_bytes(change):
    def edit(data):
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as h5:
            change(h5)
        return buffer.getvalue()
    return edit


def replace_dataset(name, value):
    def change(h5):
        del h5[name]
        h5[name] = value
    return change


# ----------------------------------------------------------------- S3: slot and weight values

# Adam's layout: optimizer/vars/2.. = m0 v0 m1 v1 ... ; the first kernel is (6, 5).
BAD_SLOTS = [
    ("optimizer/vars/3", -np.ones((6, 5), "f4"), r"optimizer/vars/3 \(v\) holds 30 value\(s\) that are negative"),
    ("optimizer/vars/2", np.full((6, 5), np.nan, "f4"), r"optimizer/vars/2 \(m\) .* inf or NaN in float32"),
    ("optimizer/vars/2", np.full((6, 5), 1e300), r"optimizer/vars/2 \(m\) .* inf or NaN in float32 .* 1e\+300"),
    ("optimizer/vars/3", np.full((6, 5), np.inf, "f2"), r"optimizer/vars/3 \(v\) .* inf or NaN in float32"),
    ("layers/dense/vars/0", np.full((6, 5), 1e39), r"layers/dense/vars/0 .* inf or NaN in float32"),
]
IDS = ["negative-v", "nan-m", "float64-1e300-m", "float16-inf-v", "float64-1e39-kernel"]


@pytest.mark.parametrize("name, value, match", BAD_SLOTS, ids=IDS)
def test_load_weights_refuses_slot_and_weight_values_and_changes_nothing(tmp_path, name, value, match):
    model = trained()
    model.save_weights(tmp_path / "good.weights.h5")
    path = edited_weights_file(tmp_path / "good.weights.h5", tmp_path / "bad.weights.h5", replace_dataset(name, value))
    target = trained(seed=1)
    before = snapshot(target)
    refused(target.load_weights, path, match)
    assert_unchanged(target, before)


@pytest.mark.parametrize("name, value, match", BAD_SLOTS, ids=IDS)
def test_load_model_of_a_keras_file_refuses_the_same_values(tmp_path, name, value, match):
    trained().save(tmp_path / "good.keras")
    path = edited_zip(tmp_path / "good.keras", tmp_path / "bad.keras", "model.weights.h5",
                      edited_h5_bytes(replace_dataset(name, value)))
    refused(npnet.models.load_model, path, match)


@pytest.mark.parametrize("entry, value, match", [
    ("v/000", -np.ones((6, 5), "f4"), "optimizer.safetensors entry v/000 holds 30 value.s. that are negative"),
    ("m/001", np.full(5, 1e300), "optimizer.safetensors entry m/001 .* inf or NaN in float32"),
    ("m/000", np.zeros((1, 5), "f4"), r"optimizer.safetensors entry m/000 has shape \(1, 5\); expected \(6, 5\)"),
], ids=["negative-v", "float64-1e300-m", "broadcastable-shape"])
def test_load_model_of_an_npnet_file_refuses_bad_slots(tmp_path, entry, value, match):
    trained().save(tmp_path / "good.npnet")

    def change(data):
        arrays = load_tensors(data)
        arrays[entry] = value
        return save_tensors(arrays)
    path = edited_zip(tmp_path / "good.npnet", tmp_path / "bad.npnet", "optimizer.safetensors", change)
    refused(npnet.models.load_model, path, match)


def test_rmsprop_velocity_must_not_be_negative_but_momentum_and_adam_m_may(tmp_path):
    model = trained(npnet.optimizers.RMSprop(momentum=0.5))
    model.save_weights(tmp_path / "rms.weights.h5")
    # RMSprop's layout is blocked: velocity 0..3 at vars/2..5, momentum at vars/6..9
    negative_velocity = edited_weights_file(tmp_path / "rms.weights.h5", tmp_path / "v.weights.h5",
                                            replace_dataset("optimizer/vars/2", -np.ones((6, 5), "f4")))
    refused(model.load_weights, negative_velocity, r"optimizer/vars/2 \(velocity\) .* negative")
    negative_momentum = edited_weights_file(tmp_path / "rms.weights.h5", tmp_path / "mom.weights.h5",
                                            replace_dataset("optimizer/vars/6", -np.ones((6, 5), "f4")))
    model.load_weights(negative_momentum)
    np.testing.assert_array_equal(model.optimizer.state["momentum"][0], -1.0)
    adam = trained()
    adam.save_weights(tmp_path / "adam.weights.h5")
    negative_m = edited_weights_file(tmp_path / "adam.weights.h5", tmp_path / "m.weights.h5",
                                     replace_dataset("optimizer/vars/2", -np.ones((6, 5), "f4")))
    adam.load_weights(negative_m)
    np.testing.assert_array_equal(adam.optimizer.state["m"][0], -1.0)


# ----------------------------------------------------------------- S4: the step count


@pytest.mark.parametrize("value, match", [
    (np.float64(1e30), "from 0 to 9,223,372,036,854,775,807"),
    (np.uint64(2**64 - 1), "from 0 to 9,223,372,036,854,775,807"),
    (np.float32(2.7), "whole number of steps; received 2.7"),
    (np.float64(np.nan), "whole number of steps; received nan"),
    (np.int64(-1), "from 0 to .* received -1"),
], ids=["float-1e30", "uint64-max", "fraction", "nan", "negative"])
def test_an_iteration_count_out_of_int64_or_not_whole_is_refused_before_anything_changes(tmp_path, value, match):
    model = trained()
    model.save_weights(tmp_path / "good.weights.h5")
    path = edited_weights_file(tmp_path / "good.weights.h5", tmp_path / "bad.weights.h5",
                               replace_dataset("optimizer/vars/0", value))
    target = trained(seed=1)
    before = snapshot(target)
    refused(target.load_weights, path, r"optimizer/vars/0 \(iterations\) must be a .*" + match)
    assert_unchanged(target, before)


def test_a_whole_float_iteration_count_loads(tmp_path):
    model = trained()
    model.save_weights(tmp_path / "good.weights.h5")
    path = edited_weights_file(tmp_path / "good.weights.h5", tmp_path / "float.weights.h5",
                               replace_dataset("optimizer/vars/0", np.float64(7.0)))
    model.load_weights(path)
    assert model.optimizer.iterations == 7


@pytest.mark.parametrize("value, match", [
    (2**63, "from 0 to 9,223,372,036,854,775,807"), (2.5, "whole number of steps"),
    (True, "whole number"), ("3", "whole number"),
], ids=["2**63", "fraction", "bool", "text"])
def test_an_npnet_iteration_count_out_of_int64_or_not_whole_is_refused(tmp_path, value, match):
    trained().save(tmp_path / "good.npnet")

    def change(data):
        meta = json.loads(data)
        meta["compile"]["optimizer_iterations"] = value
        return json.dumps(meta)
    path = edited_zip(tmp_path / "good.npnet", tmp_path / "bad.npnet", "model.json", change)
    message = refused(npnet.models.load_model, path, "compile.optimizer_iterations must be a .*" + match)
    assert "OverflowError" not in message and "corrupted" not in message


# ----------------------------------------------------------------- S6: an optimizer that never stepped


def test_a_file_whose_optimizer_never_stepped_resets_the_optimizer(tmp_path):
    npnet.utils.set_random_seed(3)
    never = npnet.Sequential([npnet.Input((6,)), Dense(5, activation="relu"), Dense(3, activation="softmax")])
    never.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    never.save_weights(tmp_path / "never.weights.h5")
    with h5py.File(tmp_path / "never.weights.h5", "r+") as h5:  # as Keras writes an unstepped optimizer
        for key in [k for k in h5["optimizer/vars"] if int(k) >= 2]:
            del h5["optimizer/vars"][key]
    model = trained()
    assert np.abs(model.optimizer.state["m"][0]).max() > 0
    model.load_weights(tmp_path / "never.weights.h5")
    assert model.optimizer.iterations == 0
    assert not model.optimizer.state or all(not a.any() for arrays in model.optimizer.state.values() for a in arrays)
    # the next step is the one a fresh optimizer takes from these weights
    x, y = np.random.default_rng(5).random((8, 6), dtype=np.float32), np.arange(8) % 3
    model.train_on_batch(x, y)
    never.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), never.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- S8: links above datasets


def _soft(target):
    def change(h5):
        h5.move(target, target + "_hidden")
        h5[target] = h5py.SoftLink("/" + target + "_hidden")
    return change


def _external(other, target):
    def change(h5):
        del h5[target]
        h5[target] = h5py.ExternalLink(str(other), "/" + target)
    return change


@pytest.mark.parametrize("kind", ["soft", "external"])
@pytest.mark.parametrize("group", ["layers", "layers/dense", "layers/dense/vars", "optimizer", "optimizer/vars"])
def test_a_link_on_any_group_above_a_dataset_is_refused(tmp_path, kind, group):
    other = trained(seed=2)
    other.save_weights(tmp_path / "other.weights.h5")
    model = trained()
    model.save_weights(tmp_path / "good.weights.h5")
    change = _soft(group) if kind == "soft" else _external(tmp_path / "other.weights.h5", group)
    path = edited_weights_file(tmp_path / "good.weights.h5", tmp_path / "linked.weights.h5", change)
    before = snapshot(model)
    refused(model.load_weights, path, f"is a link \\({kind.capitalize()}Link\\)")
    assert_unchanged(model, before)


@pytest.mark.parametrize("group", ["model_weights", "model_weights/dense_a", "model_weights/dense_a/seq"])
def test_a_link_on_a_group_of_a_legacy_h5_file_is_refused(tmp_path, group):
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([npnet.Input((6,)), Dense(5, name="dense_a")], name="seq")
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "good.h5")
    (tmp_path / "linked.h5").write_bytes((tmp_path / "good.h5").read_bytes())
    with h5py.File(tmp_path / "linked.h5", "r+") as h5:
        assert group in h5
        _soft(group)(h5)
    refused(npnet.models.load_model, tmp_path / "linked.h5", r"is a link \(SoftLink\)")
    refused(model.load_weights, tmp_path / "linked.h5", r"is a link \(SoftLink\)")


def test_a_virtual_dataset_is_refused(tmp_path):
    model = trained()
    model.save_weights(tmp_path / "good.weights.h5")

    def change(h5):
        layout = h5py.VirtualLayout(shape=(6, 5), dtype="f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "good.weights.h5"), "layers/dense/vars/0", shape=(6, 5))
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars"].create_virtual_dataset("0", layout)
    path = edited_weights_file(tmp_path / "good.weights.h5", tmp_path / "virtual.weights.h5", change)
    refused(model.load_weights, path, "not an array stored in the file itself")


# ----------------------------------------------------------------- S7: saving over FIFOs


@pytest.mark.parametrize("name", ["model.keras", "model.npnet", "model.h5", "model.weights.h5"])
@pytest.mark.parametrize("through_link", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_saving_over_a_fifo_is_refused_and_the_fifo_stays(tmp_path, name, through_link):
    model = trained()
    fifo = tmp_path / ("pipe" if through_link else name)
    os.mkfifo(fifo)
    if through_link:
        (tmp_path / name).symlink_to(fifo)
    listing = sorted(os.listdir(tmp_path))
    save = model.save_weights if name.endswith(".weights.h5") else model.save
    with pytest.raises(OSError, match="it is a FIFO \\(named pipe\\).*expected the path of a regular file"):
        save(tmp_path / name)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == listing


@pytest.mark.parametrize("name", ["model.keras", "model.npnet", "model.h5", "model.weights.h5"])
def test_loading_a_fifo_is_refused_before_opening_it(tmp_path, name):
    # Opening a FIFO without a writer blocks: the check must come before any open.
    model = trained()
    os.mkfifo(tmp_path / name)
    load = model.load_weights if name.endswith(".weights.h5") else npnet.models.load_model
    with pytest.raises(OSError, match="is a FIFO \\(named pipe\\); expected a regular (model|weights) file"):
        load(tmp_path / name)


# ----------------------------------------------------------------- S5: Ctrl-C during load_weights

CHILD = textwrap.dedent("""
    import json, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np
    import npnet

    backend, folder = sys.argv[1], sys.argv[2]

    def trained(seed, steps):
        npnet.utils.set_random_seed(seed)
        model = npnet.Sequential([npnet.Input((128,))] + [npnet.layers.Dense(128, activation="relu")
                                  for _ in range(24)] + [npnet.layers.Dense(4, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
        x = np.random.default_rng(seed).random((16, 128), dtype=np.float32)
        for _ in range(steps):
            model.train_on_batch(x, np.arange(16) % 4)
        return model

    def arrays(model):
        return model.get_weights() + [a.copy() for slot in sorted(model.optimizer.state)
                                      for a in model.optimizer.state[slot]]

    new = trained(1, 3)
    new.save_weights(folder + "/new.weights.h5")
    model = trained(2, 5)
    model.save_weights(folder + "/old.weights.h5")
    sources = {"new": (arrays(new), 3), "old": (arrays(model), 5)}
    print("ready", flush=True)
    try:
        while True:
            model.load_weights(folder + "/new.weights.h5")
            model.load_weights(folder + "/old.weights.h5")
    except KeyboardInterrupt:
        pass
    now = arrays(model)
    found = {name: sum(np.array_equal(a, b) for a, b in zip(now, expected))
             for name, (expected, _) in sources.items()}
    print(json.dumps({"arrays": len(now), "matching": found, "iterations": model.optimizer.iterations}))
""")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_ctrl_c_during_load_weights_leaves_the_old_state_or_the_new_one_entirely(backend, tmp_path):
    for trial, delay in enumerate(np.random.default_rng().uniform(0.05, 0.8, size=4)):
        result = interrupt_once(backend, delay, tmp_path, script=CHILD)
        where = f"{backend}, trial {trial}, SIGINT after {delay:.3f} s: {result}"
        whole = [name for name, count in result["matching"].items() if count == result["arrays"]]
        assert len(whole) == 1, f"weights and slots from more than one file ({where})"
        assert result["iterations"] == {"new": 3, "old": 5}[whole[0]], f"iterations from the other file ({where})"


# ----------------------------------------------------------------- raw Python messages


def _f8_weights(data):
    """weights.safetensors with its first array relabelled F8_E4M3 (one byte each, same bytes)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    first = next(key for key in header if key != "__metadata__")
    header[first]["dtype"] = "F8_E4M3"
    header[first]["shape"][-1] *= 4
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def _meta_edit(change):
    def edit(data):
        meta = json.loads(data)
        change(meta)
        return json.dumps(meta)
    return edit


@pytest.mark.parametrize("member, change, match", [
    ("model.json", lambda data: data.replace(b'"format_version": 1', b'"format_version": 1' + b"0" * 5000),
     "model.json holds an integer of 5,001 digits; expected integers of at most 40 digits"),
    ("model.json", _meta_edit(lambda m: m.update(floatx=["float32"])), "floatx must be a string; the file has list"),
    ("model.json", _meta_edit(lambda m: m["compile"].update(backend=[1])), "compile.backend must be a string"),
    ("model.json", _meta_edit(lambda m: m["model"].update(build_input_shape="ab")),
     "model.build_input_shape must be a list; the file has str 'ab'"),
    ("model.json", _meta_edit(lambda m: m["model"].update(build_input_shape=[None, "6"])),
     r"model.build_input_shape must be a list of sizes .*\[None, '6'\]"),
    ("weights.safetensors", _f8_weights, "weights.safetensors holds an array of dtype 'F8_E4M3'"),
], ids=["long-integer", "floatx-list", "backend-list", "shape-text", "shape-of-text", "f8-dtype"])
def test_npnet_descriptions_are_refused_in_words_not_raw_python_messages(tmp_path, member, change, match):
    trained().save(tmp_path / "good.npnet")
    path = edited_zip(tmp_path / "good.npnet", tmp_path / "bad.npnet", member, change)
    message = refused(npnet.models.load_model, path, match)
    assert "corrupted" not in message and "sys.set_int_max_str_digits" not in message


def test_a_keras_config_with_a_huge_integer_is_refused_in_words(tmp_path):
    trained().save(tmp_path / "good.keras")
    path = edited_zip(tmp_path / "good.keras", tmp_path / "bad.keras", "config.json",
                      lambda data: data.replace(b'"units": 5', b'"units": 5' + b"0" * 5000))
    refused(npnet.models.load_model, path, "config.json holds an integer of 5,001 digits")
