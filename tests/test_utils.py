"""npnet.utils: seeding, atomic writes and aligned arrays."""

import json
import os
import stat

import numpy as np
import pytest

from npnet import utils


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with utils.atomic_write(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"], "temporary file left behind"

    utils.write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with utils.atomic_write(tmp_path / "f.bin") as handle:
            handle.write(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_set_random_seed_rejects_what_is_not_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        utils.set_random_seed(seed)


@pytest.mark.parametrize("shape, dtype", [((784, 128), np.float32), ((10,), np.float64), (7, np.float32),
                                          ((0, 3), np.float32), ((), np.float64)])
def test_aligned_arrays_start_on_a_cache_line(shape, dtype):
    array = utils.aligned_empty(shape, dtype)
    assert array.shape == ((shape,) if isinstance(shape, int) else shape) and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    assert array.size == 0 or array.ctypes.data % utils.MEMORY_ALIGNMENT == 0  # empty: no data
    source = np.arange(np.prod(array.shape), dtype=dtype).reshape(array.shape)
    copy = utils.aligned_copy(source)
    assert (copy.size == 0 or copy.ctypes.data % utils.MEMORY_ALIGNMENT == 0) and copy.dtype == dtype
    assert np.array_equal(copy, source) and not np.shares_memory(copy, source)


def test_weights_and_optimizer_state_are_aligned_after_build_fit_and_load(tmp_path):
    """Parameters and optimizer state start on a cache line (the numba kernels' vector loads
    then never straddle two), whatever the allocator gave the initializer's array."""
    import npnet

    def offsets(model):
        arrays = model.weights + [a for slot in model.optimizer.state.values() for a in slot]
        return {a.ctypes.data % utils.MEMORY_ALIGNMENT for a in arrays}

    utils.set_random_seed(0)
    model = npnet.Sequential([npnet.layers.Flatten(input_shape=(4, 5)),
                              npnet.layers.Dense(7, activation="relu"), npnet.layers.Dense(3)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="numpy")
    x = np.random.default_rng(0).random((10, 4, 5), dtype=np.float32)
    model.fit(x, np.arange(10) % 3, verbose=0)
    assert offsets(model) == {0}
    model.save(tmp_path / "m.npnet")
    assert offsets(npnet.models.load_model(tmp_path / "m.npnet")) == {0}


# ------------------------------------------------ what Keras code reaches for that npnet lacks


def test_keras_utils_names_pydataset_and_sequence():
    import keras

    import npnet
    assert npnet.utils.PyDataset is npnet.data.PyDataset
    assert npnet.utils.Sequence is npnet.data.PyDataset
    assert hasattr(keras.utils, "PyDataset") and hasattr(keras.utils, "Sequence")


def test_get_file_says_how_to_fetch_the_file_instead():
    with pytest.raises(NotImplementedError, match=r"urlretrieve.*HIGGS\.csv\.gz|HIGGS\.csv\.gz.*urlretrieve"):
        utils.get_file("HIGGS.csv.gz", "http://example.invalid/HIGGS.csv.gz")


@pytest.mark.parametrize("name, advice", [
    ("nn", r"npnet\.activations\.softmax\(x\)"),
    ("saved_model", r"model\.save\('my_model\.keras'\)"),
    ("add_n", r"sum\(model\.losses\)"),
    ("one_hot", r"to_categorical"),
    ("ops", r"np\.mean"),
    ("linspace", r"np\.linspace\(start, stop, num\)"),
    ("range", r"np\.arange"),
])
def test_tensorflow_namespaces_say_what_to_write_instead(name, advice):
    import npnet
    with pytest.raises(AttributeError, match=advice):
        getattr(npnet, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'$"):
        npnet.not_a_thing


def test_other_keras_datasets_and_tf_data_point_to_what_npnet_has():
    import npnet
    with pytest.raises(AttributeError, match=r"fashion_mnist\.load_data\(\)"):
        npnet.datasets.mnist.load_data()
    with pytest.raises(AttributeError, match=r"generator of \(x, y\) NumPy batches.*\.repeat\(\).*steps_per_epoch=N"):
        npnet.data.Dataset.from_tensor_slices
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        npnet.datasets.nothing


@pytest.mark.parametrize("module, name, advice", [
    ("layers", "Conv2D", r"chains of Dense-type layers: it has Flatten, Dense.*Normalization"),
    ("layers", "LSTM", r"chains of Dense-type layers"),
    ("layers", "concatenate", r"chains .*no merge layers or branches"),
    ("layers", "Add", r"no merge layers"),
    ("layers", "Lambda", r"FunctionLayer\(forward, backward\)"),
    ("layers", "ActivityRegularization", r"kernel_regularizer='l2'"),
    ("callbacks", "TensorBoard", r"not available.*CSVLogger.*History"),
    ("metrics", "F1Score", r"not available.*RootMeanSquaredError.*Metric subclass"),
    ("optimizers", "AdamW", r"not available.*Adam, SGD .*RMSprop"),
    ("optimizers", "Nadam", r"Adam, SGD"),
    ("utils", "plot_model", r"model\.summary\(\)"),
    ("backend", "image_data_format", r"no image layers"),
])
def test_keras_names_npnet_lacks_say_what_it_has_instead(module, name, advice):
    import npnet
    namespace = getattr(npnet, module)
    with pytest.raises(AttributeError, match=f"has no attribute '{name}': .*{advice}"):
        getattr(namespace, name)
    assert not hasattr(namespace, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_keras_name'$"):
        namespace.not_a_keras_name


def test_keras_layer_and_clear_session_names_exist_as_in_keras():
    import npnet
    assert npnet.Layer is npnet.layers.Layer
    npnet.layers.Dense(2), npnet.Sequential()
    npnet.backend.clear_session()  # Keras's restarts the names; models built before keep working
    assert (npnet.layers.Dense(2).name, npnet.Sequential().name) == ("dense", "sequential")
    assert npnet.backend.floatx() == npnet.config.floatx()
