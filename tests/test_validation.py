"""Bad input: a clear error that says what was expected and what was received, and nothing
changes — not the weights, not the optimizer's state or step count, not the random stream."""

import warnings

import numpy as np
import pytest

import npnet
from npnet import utils, validation
from npnet.layers import Dense, Flatten

from core_helpers import assert_unchanged, snapshot

N = 5


@pytest.fixture
def model():
    """A tutorial-shaped model (28x28 inputs, 10 classes), compiled and trained one step."""
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(4, activation="relu"),
                              Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend="numpy")
    model.fit(good_x(), good_y(), verbose=0)
    assert model.optimizer.iterations == 1 and model.optimizer.state is not None
    return model


def good_x(n=N):
    return np.random.default_rng(1).random((n, 28, 28)).astype(np.float32)


def good_y(n=N):
    return np.arange(n) % 10


def with_nan(x, value):
    x = x.copy()
    x[2, 3, 4] = value
    return x


def assert_refused(model, call, error, match):
    """``call(model)`` raises ``error`` matching ``match`` and leaves everything as it was."""
    before = snapshot(model)
    rng_state = utils.rng().bit_generator.state
    with pytest.raises(error, match=match):
        call(model)
    assert_unchanged(model, before)
    assert utils.rng().bit_generator.state == rng_state, "random numbers were drawn"


FIT_CASES = {
    "x-flat-for-28x28": (lambda m: m.fit(np.zeros((N, 784)), good_y(), verbose=0), ValueError,
                         r"expected shape \(None, 28, 28\), received \(5, 784\)"),
    "x-y-lengths": (lambda m: m.fit(good_x(), good_y(4), verbose=0), ValueError,
                    r"same number of samples; received 5 inputs and 4 labels"),
    "labels-out-of-range": (lambda m: m.fit(good_x(), np.array([0, 10, -1, 12, 10]), verbose=0), ValueError,
                            r"labels in \[0, 10\) .* received 4 outside it: \[-1, 10, 12\]"),
    "labels-non-integer": (lambda m: m.fit(good_x(), np.array([0, 1.5, 2, 3, 0.25]), verbose=0), ValueError,
                           r"integer class labels; received non-integer values \[0.25, 1.5\]"),
    "labels-nan": (lambda m: m.fit(good_x(), np.array([0, np.nan, 2, 3, 4]), verbose=0), ValueError,
                   r"non-integer values \[nan\]"),
    "labels-strings": (lambda m: m.fit(good_x(), np.array(list("abcde")), verbose=0), TypeError,
                       r"integer class labels; received dtype <U1"),
    "labels-one-hot-for-sparse-loss": (lambda m: m.fit(good_x(), np.eye(10)[good_y()], verbose=0), ValueError,
                                       r"shape \(5,\) for sparse_categorical_crossentropy; received shape \(5, 10\)"),
    "x-nan": (lambda m: m.fit(with_nan(good_x(), np.nan), good_y(), verbose=0), ValueError,
              r"x contains 1 NaN or infinite values; expected finite numbers"),
    "x-inf": (lambda m: m.fit(with_nan(good_x(), -np.inf), good_y(), verbose=0), ValueError,
              r"x contains 1 NaN or infinite values"),
    "x-empty": (lambda m: m.fit(np.zeros((0, 28, 28)), np.zeros(0, int), verbose=0), ValueError,
                r"x is empty \(shape \(0, 28, 28\)\); expected at least one sample"),
    "y-empty": (lambda m: m.fit(good_x(), np.zeros(0, int), verbose=0), ValueError,
                r"received 5 inputs and 0 labels"),
    "x-none": (lambda m: m.fit(None, good_y(), verbose=0), ValueError, r"x is None"),
    "y-none": (lambda m: m.fit(good_x(), None, verbose=0), ValueError, r"y is None; expected 5 labels"),
    "x-strings": (lambda m: m.fit(np.full((N, 28, 28), "a"), good_y(), verbose=0), TypeError,
                  r"array of numbers or booleans .* received dtype <U1"),
    "batch-size-0": (lambda m: m.fit(good_x(), good_y(), batch_size=0, verbose=0), ValueError,
                     r"batch_size must be a positive integer; received 0"),
    "epochs-negative": (lambda m: m.fit(good_x(), good_y(), epochs=-1, verbose=0), ValueError,
                        r"epochs must be a non-negative integer; received -1"),
    "validation-split-1": (lambda m: m.fit(good_x(), good_y(), validation_split=1.0, verbose=0), ValueError,
                           r"validation_split must be in \[0, 1\); received 1.0"),
    "validation-split-empty": (lambda m: m.fit(good_x(), good_y(), validation_split=0.99, verbose=0), ValueError,
                               r"leaves an empty training or validation set for 5 samples"),
    "validation-labels": (lambda m: m.fit(good_x(), good_y(), validation_data=(good_x(), good_y() + 10), verbose=0),
                          ValueError, r"validation y must hold class labels in \[0, 10\)"),
    "validation-shape": (lambda m: m.fit(good_x(), good_y(), validation_data=(np.zeros((N, 784)), good_y()), verbose=0),
                         ValueError, r"expected shape \(None, 28, 28\), received \(5, 784\)"),
    "validation-not-a-pair": (lambda m: m.fit(good_x(), good_y(), validation_data=good_x(), verbose=0),
                              ValueError, r"validation_data must be a tuple \(x_val, y_val\)"),
    "verbose-3": (lambda m: m.fit(good_x(), good_y(), verbose=3), ValueError,
                  r"verbose must be 'auto', 0, 1 or 2; received 3"),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_refuses_bad_input_and_changes_nothing(model, case):
    call, error, match = FIT_CASES[case]
    assert_refused(model, call, error, match)


OTHER_CASES = {
    "evaluate-shape": (lambda m: m.evaluate(np.zeros((N, 784)), good_y(), verbose=0), ValueError,
                       r"expected shape \(None, 28, 28\), received \(5, 784\)"),
    "evaluate-labels": (lambda m: m.evaluate(good_x(), good_y() - 1, verbose=0), ValueError,
                        r"received 1 outside it: \[-1\]"),
    "predict-shape": (lambda m: m.predict(np.zeros((N, 28, 27))), ValueError,
                      r"expected shape \(None, 28, 28\), received \(5, 28, 27\)"),
    "predict-one-image-without-batch-axis": (lambda m: m.predict(np.zeros((28, 28))), ValueError,
                                             r"received \(28, 28\)\. .*np.expand_dims\(x, 0\)"),
    "predict-nan": (lambda m: m.predict(with_nan(good_x(), np.nan)), ValueError, r"NaN or infinite"),
    "predict-batch-size": (lambda m: m.predict(good_x(), batch_size=-2), ValueError,
                           r"batch_size must be a positive integer; received -2"),
    "compile-unknown-optimizer": (lambda m: m.compile(optimizer="adamw2", loss="sparse_categorical_crossentropy"),
                                  ValueError, r"Unknown optimizer 'adamw2'; known optimizers: .*adam"),
    "compile-unknown-loss": (lambda m: m.compile(optimizer="adam", loss="mse2"), ValueError,
                             r"Unknown loss 'mse2'; known losses: .*sparse_categorical_crossentropy"),
    "compile-no-loss": (lambda m: m.compile(optimizer="adam"), ValueError,
                        r"compile\(\) needs a loss.*known losses: .*sparse_categorical_crossentropy"),
    "compile-unknown-metric": (lambda m: m.compile(loss="sparse_categorical_crossentropy", metrics=["f1"]),
                               ValueError, r"Unknown metric 'f1'; known metrics: accuracy"),
    "compile-metrics-string": (lambda m: m.compile(loss="sparse_categorical_crossentropy", metrics="accuracy"),
                               TypeError, r"metrics must be a list such as \['accuracy'\]; received the string"),
    "compile-unknown-backend": (lambda m: m.compile(loss="sparse_categorical_crossentropy", backend="cuda"),
                                ValueError, r"Unknown backend 'cuda'; known backends: .*numpy"),
    "set-weights-shapes": (lambda m: m.set_weights([w.T for w in m.get_weights()]), ValueError,
                           r"expects 4 arrays of shapes"),
}


@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_other_calls_refuse_bad_input_and_change_nothing(model, case):
    call, error, match = OTHER_CASES[case]
    assert_refused(model, call, error, match)


def test_the_model_still_trains_after_refusing_bad_input(model):
    for call, error, _ in FIT_CASES.values():
        with pytest.raises(error):
            call(model)
    history = model.fit(good_x(), good_y(), epochs=2, verbose=0)
    assert model.optimizer.iterations == 3 and len(history.epoch) == 2


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_fit_and_evaluate_before_compile_say_so(method):
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(10, activation="softmax")])
    before = model.get_weights()
    with pytest.raises(RuntimeError, match=rf"You must call compile\(\) before {method}\(\).*model.compile\(optimizer='adam'"):
        getattr(model, method)(good_x(), good_y())
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer is None


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown activation 'relu6'; known activations: .*relu.*softmax"):
        Dense(3, activation="relu6")


@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True])
def test_dense_units_must_be_a_positive_integer(units):
    with pytest.raises(ValueError, match=f"Dense units must be a positive integer; received {units!r}"):
        Dense(units)


@pytest.mark.parametrize("shape", [(), (0, 28), (28, -1), "28x28"])
def test_input_shape_must_be_positive_integers(shape):
    with pytest.raises((ValueError, TypeError), match=r"input_shape must be a tuple of positive integers"):
        Flatten(input_shape=shape)


def test_optimizer_settings_are_checked():
    with pytest.raises(ValueError, match=r"learning_rate must be a number >= 0; received -0.1"):
        npnet.optimizers.Adam(learning_rate=-0.1)
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\); received 1.0"):
        npnet.optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match=r"epsilon must be positive; received 0"):
        npnet.optimizers.Adam(epsilon=0)


def test_a_bad_call_on_an_unbuilt_model_leaves_it_unbuilt():
    model = npnet.Sequential([Flatten(), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", backend="numpy")
    with pytest.raises(ValueError, match=r"received 1 outside it: \[3\]"):
        model.fit(np.zeros((2, 4)), np.array([0, 3]), verbose=0)
    assert not model.built and model.weights == []


def test_adding_a_layer_after_training_asks_for_a_new_compile():
    npnet.utils.set_random_seed(0)
    model = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(4, activation="relu")])
    model.compile(loss="sparse_categorical_crossentropy", backend="numpy")
    model.fit(good_x(), good_y() % 4, verbose=0)
    model.add(Dense(10, activation="softmax"))
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"state was built for parameters of shapes \[\(784, 4\), \(4,\)\]; "
                                         r"received \[\(784, 4\), \(4,\), \(4, 10\), \(10,\)\].*compile again"):
        model.fit(good_x(), good_y(), verbose=0)
    assert_unchanged(model, before)
    model.compile(loss="sparse_categorical_crossentropy", backend="numpy")
    model.fit(good_x(), good_y(), verbose=0)
    assert model.optimizer.iterations == 1


def test_one_optimizer_cannot_silently_serve_two_different_models():
    adam = npnet.optimizers.Adam()
    first = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(10, activation="softmax")])
    second = npnet.Sequential([Flatten(input_shape=(28, 28)), Dense(3, activation="relu"), Dense(10, activation="softmax")])
    first.compile(optimizer=adam, loss="sparse_categorical_crossentropy", backend="numpy")
    second.compile(optimizer=adam, loss="sparse_categorical_crossentropy", backend="numpy")
    first.fit(good_x(), good_y(), verbose=0)
    before = snapshot(second)
    with pytest.raises(ValueError, match="An optimizer instance serves one model"):
        second.fit(good_x(), good_y(), verbose=0)
    assert_unchanged(second, before)


def test_a_trailing_axis_of_one_is_added_or_dropped_as_keras_does():
    """A column (n,) feeds a model of (None, 1) inputs and (n, d, 1) one of (None, d); any
    other rank mismatch is still refused."""
    column = np.arange(5.0)
    assert validation.check_inputs(column, (None, 1)).shape == (5, 1)
    assert validation.check_inputs(column[:, None, None], (None, 1)).shape == (5, 1)
    assert validation.check_inputs(np.ones((5, 3, 1)), (None, 3)).shape == (5, 3)
    for x, shape in ((column, (None, 2)), (np.ones((5, 3, 2)), (None, 3)), (np.ones((5, 3)), (None, 3, 2))):
        with pytest.raises(ValueError, match="incompatible"):
            validation.check_inputs(x, shape)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_validation_data_of_other_samples_is_refused_before_an_unbuilt_model_is_built(backend):
    """A model without a declared input takes its shape from x: validation samples of another
    shape used to fail only after the first epoch had trained, with NumPy's or numba's own
    message. Now fit refuses them first, saying which data, and the model stays unbuilt."""
    utils.set_random_seed(0)
    model = npnet.Sequential([Dense(5), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    x, y = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    with pytest.raises(ValueError, match=r"validation_data.*\(4,\).*\(7,\)"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(np.zeros((5, 7), np.float32), np.zeros(5, np.int64)))
    assert not model.built and model.optimizer.iterations == 0
    model.fit(x, y, epochs=1, verbose=0, validation_data=(np.zeros((5, 4), np.float32), np.zeros(5, np.int64)))
    assert model.optimizer.iterations == 1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name, value", [("beta_1", 1 - 1e-11), ("beta_2", 1 - 1e-12)])
def test_an_adam_decay_rate_that_is_one_in_float32_is_refused(name, value, backend):
    """Below 1 in Python, 1.0 in float32: β2 = 1 made every step 0 (the model silently learnt
    nothing), β1 = 1 divided by 0 (fit stopped blaming the loss). Both are refused at the
    first fit, naming the type, with the model unchanged; float64 computes them fine."""
    utils.set_random_seed(0)
    model = npnet.Sequential([Dense(5, input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer=npnet.optimizers.Adam(**{name: value}), loss="sparse_categorical_crossentropy",
                  backend=backend)
    before = snapshot(model)
    with pytest.raises(ValueError, match=f"{name} must be below 1 in float32.*which is 1.0 in float32"):
        model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=1, verbose=0)
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=f"{name} must be below 1 in float32"):
        npnet.optimizers.Adam(**{name: value}).build([np.zeros(3, np.float32)])
    npnet.optimizers.Adam(**{name: value}).build([np.zeros(3, np.float64)])


@pytest.mark.parametrize("weights, match", [
    (None, "expects a list of arrays, as get_weights\\(\\) returns; received NoneType"),
    ({"kernel": 1}, "received dict"),
    ("weights", "received str"),
    ([np.zeros((3, 2), complex), np.zeros(2)], "arrays of numbers; received an array of dtype complex128 for "),
    ([np.full((3, 2), "x"), np.zeros(2)], "arrays of numbers; received an array of dtype <U1 for "),
    ([np.zeros((3, 2)), np.zeros(2, object)], "arrays of numbers; received an array of dtype object for "),
])
def test_set_weights_refuses_what_is_not_a_list_of_numeric_arrays_by_name(weights, match):
    model = npnet.Sequential([Dense(2, input_shape=(3,))])
    before = snapshot(model)
    with pytest.raises(TypeError, match=match):
        model.set_weights(weights)
    assert_unchanged(model, before)


@pytest.mark.parametrize("kind", ["sample_weight", "class_weight"])
def test_weights_beyond_float32_are_refused_up_front_with_the_model_unchanged(kind):
    """1e39 passes as a Python float but is inf in float32, where the loss is weighted: fit
    used to start and stop at the first batch blaming the loss."""
    utils.set_random_seed(0)
    model = npnet.Sequential([Dense(5, input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    model.fit(x, y, verbose=0)
    before = snapshot(model)
    weighting = {"sample_weight": np.full(8, 1e39)} if kind == "sample_weight" else {"class_weight": {0: 1e39}}
    with pytest.raises(ValueError, match=f"{kind} must be finite in float32, the type the loss computes in"):
        model.fit(x, y, verbose=0, **weighting)
    assert_unchanged(model, before)


def test_a_validation_batch_size_of_zero_is_refused_by_its_name():
    """0 used to fall back silently to batch_size (``0 or batch_size``)."""
    model = npnet.Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    before = snapshot(model)
    with pytest.raises(ValueError, match="validation_batch_size must be a positive integer; received 0"):
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0, validation_batch_size=0,
                  validation_data=(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)))
    assert_unchanged(model, before)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("epsilon", [1e-45, 1e-39])
def test_a_denormal_epsilon_is_refused_alike_on_both_backends(epsilon, backend):
    """Positive in float32 but below its smallest normal number, which training flushes to 0:
    the NumPy backend refused it (its check ran in the flushing mode) and numba trained."""
    model = npnet.Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer=npnet.optimizers.RMSprop(epsilon=epsilon), loss="mse", backend=backend)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"epsilon must be positive; received .*\(below float32's smallest normal"):
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    assert_unchanged(model, before)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_outputs_that_overflow_are_reported_not_handed_back_silently(backend):
    """Finite inputs and finite weights can still overflow float32 in the forward pass (after
    a training run with a huge learning rate, say): predict warns, with the largest weight."""
    model = npnet.Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(2)])
    model.compile(optimizer="sgd", loss="mse", backend=backend)
    model.set_weights([np.full((4, 3), 1e20, np.float32), np.zeros(3, np.float32),
                       np.full((3, 2), 1e20, np.float32), np.zeros(2, np.float32)])
    x = np.ones((5, 4), np.float32)
    with pytest.warns(RuntimeWarning, match=r"predict: 10 of the 10 outputs are inf or NaN .* largest weight is 1e\+20"):
        model.predict(x, verbose=0)
    with pytest.warns(RuntimeWarning, match="overflowed float32"):
        model.predict_on_batch(x)
    for training in (None, True):
        with pytest.warns(RuntimeWarning, match=r"model\(x\): 10 of the 10 outputs are inf or NaN"):
            model(x, training=training)
    model.set_weights([w / 1e20 for w in model.get_weights()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(model.predict(x, verbose=0)).all()
        assert np.isfinite(model(x)).all()


def test_calling_a_model_takes_training_as_a_bool_or_none():
    model = npnet.Sequential([Dense(2, input_shape=(4,))])
    with pytest.raises(ValueError, match="training must be True, False or None; received training='maybe'"):
        model(np.ones((1, 4), np.float32), training="maybe")
    assert model(np.ones((1, 4), np.float32), training=np.bool_(False)).shape == (1, 2)


def test_build_on_a_built_model_refuses_other_inputs():
    model = npnet.Sequential([npnet.Input((8,)), Dense(3)])
    model.build((None, 8))
    model.build((32, 8))  # the same features, a batch size given: fine
    kernel = model.layers[0].kernel.copy()
    with pytest.raises(ValueError, match=r"built for inputs of shape \(None, 8\); received input_shape=\(None, 4\)"):
        model.build((None, 4))
    with pytest.raises(ValueError, match="built for inputs"):
        model.build((None, 8, 1))
    np.testing.assert_array_equal(model.layers[0].kernel, kernel)
    assert model.input_shape == (None, 8)
