"""``npnet.Variable(initializer, shape, dtype, trainable, name)`` against ``keras.Variable``:
value, shape, dtype, name, trainable and assign, for the ways Keras code makes one."""

import copy
import os
import pickle

import numpy as np
import pytest

import npnet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")


def assert_like_keras(ours, theirs):
    np.testing.assert_array_equal(np.asarray(ours), keras.ops.convert_to_numpy(theirs.value))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == theirs.dtype, f"npnet dtype {ours.dtype}, Keras dtype {theirs.dtype}"
    assert ours.name == theirs.name and ours.path == theirs.path
    assert ours.trainable == theirs.trainable


CONSTRUCTIONS = {
    "float64 array": lambda V: V(np.arange(6.0).reshape(2, 3), name="a"),
    "float32 array, not trainable": lambda V: V(np.ones((3, 3), "float32"), trainable=False, name="b"),
    "python floats": lambda V: V([1.5, -2.0], name="c"),
    "python ints": lambda V: V([1, 2, 3], name="d"),
    "a number": lambda V: V(0.25, name="e"),
    "array cast by dtype": lambda V: V(np.arange(4), dtype="float32", name="f"),
    "'zeros' and a shape": lambda V: V("zeros", shape=(2, 2), name="g"),
    "'ones', float64": lambda V: V("ones", shape=(3,), dtype="float64", name="h"),
}


@pytest.mark.parametrize("make", CONSTRUCTIONS.values(), ids=CONSTRUCTIONS.keys())
def test_construction_matches_keras(make):
    assert_like_keras(make(npnet.Variable), make(keras.Variable))


def test_a_constant_initializer_fills_the_shape_as_keras():
    ours = npnet.Variable(npnet.initializers.Constant(2.5), shape=(2, 3), name="k")
    theirs = keras.Variable(keras.initializers.Constant(2.5), shape=(2, 3), name="k")
    assert_like_keras(ours, theirs)


def test_a_random_initializer_gives_the_shape_and_dtype():
    ours = npnet.Variable("glorot_uniform", shape=(4, 5), name="r")
    theirs = keras.Variable("glorot_uniform", shape=(4, 5), name="r")
    assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.dtype
    assert np.abs(ours).max() <= np.sqrt(6 / 9)


def test_unnamed_variables_are_named_as_keras_names_them():
    npnet.backend.clear_session()
    keras.backend.clear_session()
    ours = [npnet.Variable(1.0), npnet.Variable(2.0)]
    theirs = [keras.Variable(1.0), keras.Variable(2.0)]
    assert [v.name for v in ours] == [v.name for v in theirs] == ["variable", "variable_1"]


def test_assign_and_trainable_behave_as_keras():
    ours, theirs = npnet.Variable(np.zeros((2, 2), "float32"), name="v"), keras.Variable(np.zeros((2, 2), "float32"), name="v")
    for variable in (ours, theirs):
        variable.assign(np.full((2, 2), 3.0))
        variable.assign_add(np.ones((2, 2)))
        variable.assign_sub(np.full((2, 2), 0.5))
        variable.trainable = False
    assert_like_keras(ours, theirs)
    np.testing.assert_array_equal(ours.numpy(), np.full((2, 2), 3.5, "float32"))
    with pytest.raises(ValueError, match=r"shape \(2, 2\); received shape \(3,\)"):
        ours.assign(np.ones(3))
    with pytest.raises(ValueError):
        theirs.assign(np.ones(3))


def test_it_is_the_class_of_layer_weights_and_copies_keep_its_flags():
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)])
    assert all(isinstance(weight, npnet.Variable) for weight in model.weights)
    frozen = npnet.Variable(np.ones(2), trainable=False, name="frozen")
    for twin in (copy.copy(frozen), copy.deepcopy(frozen), pickle.loads(pickle.dumps(frozen))):
        assert twin.trainable is False and twin.name == "frozen"
        np.testing.assert_array_equal(twin, frozen)
    # arithmetic still gives plain arrays
    assert type(frozen * 2) is np.ndarray


@pytest.mark.parametrize("call, error, match", [
    (lambda: npnet.Variable("ones"), ValueError, r"needs the shape.*received shape=None"),
    (lambda: npnet.Variable(np.ones(2), name="a/b"), ValueError, r"without '/'.*received name='a/b'"),
    (lambda: npnet.Variable(np.ones(2), shape=(3,)), ValueError, r"has shape \(2,\).*shape=\(3,\) was given"),
    (lambda: npnet.Variable(["a", "b"]), TypeError, "holds numbers; received a value of dtype"),
    (lambda: npnet.Variable(np.ones(2), aggregation="max"), ValueError, r"aggregation must be one of.*'max'"),
    (lambda: npnet.Variable(np.ones(2), layout="sharded"), ValueError, "expected layout=None"),
    (lambda: npnet.Variable("nope", shape=(2,)), ValueError, "Unknown initializer 'nope'"),
    (lambda: npnet.Variable([np.nan]), ValueError, "NaN or infinite"),
], ids=["initializer-without-shape", "slash-in-name", "shape-mismatch", "text", "aggregation", "layout",
        "unknown-initializer", "nan"])
def test_unsupported_uses_say_what_was_expected(call, error, match):
    with pytest.raises(error, match=match):
        call()
