"""Layers and the model's structure: building, initialisation, weights, summary, and each
layer's backward against centred finite differences in float64."""

import numpy as np
import pytest

import npnet
from npnet import config, heads, training
from npnet.layers import Dense, Flatten

from core_helpers import max_relative_error, numerical_gradient

TOLERANCE = 1e-7


@pytest.fixture
def float64():
    """Build layers in float64 for gradient checks; restore the default afterwards."""
    previous = config.floatx()
    config.set_floatx("float64")
    yield
    config.set_floatx(previous)


def tutorial_model():
    return npnet.Sequential([
        Flatten(input_shape=(28, 28)),
        Dense(128, activation="relu"),
        Dense(10, activation="softmax"),
    ])


def signed(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# ----------------------------------------------------------------------------- building


def test_dense_builds_on_first_call_from_the_input():
    layer = Dense(3)
    assert not layer.built and layer.params == {}
    out = layer(np.ones((2, 5)))
    assert layer.built and out.shape == (2, 3)
    assert layer.kernel.shape == (5, 3) and layer.bias.shape == (3,)
    assert layer.input_shape == (None, 5)


def test_model_builds_at_once_from_input_shape():
    model = tutorial_model()
    assert model.built
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
    assert [w.shape for w in model.get_weights()] == [(784, 128), (128,), (128, 10), (10,)]


def test_model_without_input_shape_builds_on_first_use():
    model = npnet.Sequential([Flatten(), Dense(4, activation="relu"), Dense(2)])
    assert not model.built and model.input_shape is None
    with pytest.raises(ValueError, match="input_shape"):
        model.count_params()
    out = model.predict(np.zeros((3, 2, 5), dtype=np.uint8))
    assert model.built and out.shape == (3, 2) and out.dtype == np.float32
    assert model.input_shape == (None, 2, 5)
    assert model.count_params() == 10 * 4 + 4 + 4 * 2 + 2


def test_add_is_the_same_as_the_list_constructor():
    npnet.utils.set_random_seed(3)
    from_list = tutorial_model()
    npnet.utils.set_random_seed(3)
    added = npnet.Sequential()
    added.add(Flatten(input_shape=(28, 28)))
    added.add(Dense(128, activation="relu"))
    added.add(Dense(10, activation="softmax"))
    assert [type(layer) for layer in added.layers] == [Flatten, Dense, Dense]
    for a, b in zip(added.get_weights(), from_list.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_add_rejects_what_is_not_a_layer():
    with pytest.raises(TypeError, match=r"expects an npnet.layers.Layer, npnet.Input\(...\), an InputLayer or a model; "
                                        r"received .relu."):
        npnet.Sequential().add("relu")


def test_only_the_first_layer_may_declare_input_shape():
    model = npnet.Sequential([Flatten(input_shape=(28, 28))])
    with pytest.raises(ValueError, match="Only the first layer"):
        model.add(Dense(3, input_shape=(784,)))


def test_dense_needs_2d_input_and_says_to_flatten():
    with pytest.raises(ValueError, match=r"expects 2-D input .* received shape \(None, 28, 28\).*Flatten"):
        npnet.Sequential([Dense(3, input_shape=(28, 28))])


# ----------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("argument, value", [("activity_regularizer", "l2"),
                                             ("kernel_constraint", "non_neg"), ("bias_constraint", "max_norm"),
                                             ("lora_rank", 4)])
def test_keras_dense_arguments_npnet_lacks_are_refused_by_name(argument, value):
    """Keras's own Dense arguments at their defaults are accepted (code passes them
    explicitly); any other value is refused naming the argument, not as a TypeError."""
    assert Dense(3, **{argument: None}).units == 3
    with pytest.raises(ValueError, match=rf"Dense\({argument}={value!r}\) is not supported by npnet"):
        Dense(3, **{argument: value})
    with pytest.raises(TypeError, match="unexpected keyword argument 'kernel_size'"):
        Dense(3, kernel_size=2)
    with pytest.raises(ValueError, match="use_bias must be True or False; received 'no'"):
        Dense(3, use_bias="no")


def test_dense_kernel_is_glorot_uniform_and_bias_zero():
    npnet.utils.set_random_seed(0)
    model = tutorial_model()
    for layer, (d_in, units) in zip(model.layers[1:], [(784, 128), (128, 10)]):
        kernel, bias = layer.get_weights()
        limit = np.sqrt(6 / (d_in + units))
        assert kernel.shape == (d_in, units) and kernel.dtype == np.float32
        assert np.abs(kernel).max() <= limit
        # Uniform on [-limit, limit]: extremes near the limit, mean ≈ 0, variance ≈ limit²/3.
        assert np.abs(kernel).max() > 0.98 * limit
        assert abs(kernel.mean()) < 0.05 * limit
        assert kernel.var() == pytest.approx(limit ** 2 / 3, rel=0.1)
        assert bias.shape == (units,) and bias.dtype == np.float32
        np.testing.assert_array_equal(bias, 0)


def test_initial_weights_differ_between_layers_and_models():
    a, b = tutorial_model(), tutorial_model()
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


# ----------------------------------------------------------------------------- weights


def test_get_weights_order_is_kernel_bias_kernel_bias():
    model = tutorial_model()
    weights = model.get_weights()
    dense_1, dense_2 = model.layers[1], model.layers[2]
    for got, expected in zip(weights, [dense_1.kernel, dense_1.bias, dense_2.kernel, dense_2.bias]):
        np.testing.assert_array_equal(got, expected)
    assert model.weight_names() == [f"{dense_1.name}/kernel", f"{dense_1.name}/bias",
                                    f"{dense_2.name}/kernel", f"{dense_2.name}/bias"]
    # Copies, not views: changing them leaves the model alone.
    weights[0][:] = 7
    assert not np.any(model.layers[1].kernel == 7)


def test_set_weights_round_trip_and_in_place():
    source, target = tutorial_model(), tutorial_model()
    kernel_array = target.layers[1].kernel
    target.set_weights(source.get_weights())
    for a, b in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert target.layers[1].kernel is kernel_array  # updated in place: optimizer state stays attached


def test_set_weights_with_wrong_shapes_names_both_and_changes_nothing():
    model = tutorial_model()
    before = model.get_weights()
    wrong = [w.T for w in before]
    with pytest.raises(ValueError, match=r"expects 4 arrays of shapes \[\(784, 128\).*received 4 of shapes \[\(128, 784\)"):
        model.set_weights(wrong)
    with pytest.raises(ValueError, match="received 3"):
        model.set_weights(before[:3])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_layer_set_weights_checks_shapes():
    layer = Dense(2, input_shape=(3,))
    layer.build((None, 3))
    with pytest.raises(ValueError, match=r"expects weights of shapes \[\(3, 2\), \(2,\)\]; received \[\(2, 2\)"):
        layer.set_weights([np.zeros((2, 2)), np.zeros(2)])


# ----------------------------------------------------------------------------- summary


def test_summary_prints_the_keras_table(capsys):
    model = tutorial_model()
    model.summary()
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f'Model: "{model.name}"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    flatten_row = next(line for line in lines if "(Flatten)" in line)
    dense_rows = [line for line in lines if "(Dense)" in line]
    assert "(None, 784)" in flatten_row and flatten_row.rstrip(" │").endswith(" 0")
    assert "(None, 128)" in dense_rows[0] and "100,480" in dense_rows[0]
    assert "(None, 10)" in dense_rows[1] and "1,290" in dense_rows[1]
    assert " Total params: 101,770 (397.54 KB)" in lines
    assert " Trainable params: 101,770 (397.54 KB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines
    # A table: every row between the borders has the same width.
    table = lines[1:lines.index(" Total params: 101,770 (397.54 KB)")]
    assert len({len(line) for line in table}) == 1


def test_summary_accepts_print_fn_and_count_params():
    model = tutorial_model()
    captured = []
    model.summary(print_fn=captured.append)
    assert len(captured) == 1 and "101,770" in captured[0]
    assert model.count_params() == 101_770
    assert [layer.count_params() for layer in model.layers] == [0, 100_480, 1_290]


def summary_lines(model, **kwargs):
    captured = []
    model.summary(print_fn=captured.append, **kwargs)
    return captured[0].splitlines()


def test_summary_before_build_prints_question_marks_and_unbuilt_counts():
    # Keras 3.15 prints the table with '?' shapes and '0 (unbuilt)' rather than raising.
    lines = summary_lines(npnet.Sequential([Flatten(), Dense(3)]))
    rows = [line for line in lines if "(Flatten)" in line or "(Dense)" in line]
    assert len(rows) == 2 and all(" ? " in row and row.endswith("0 (unbuilt) │") for row in rows)
    assert " Total params: 0 (0.00 B)" in lines


def test_summary_line_length_is_the_table_width():
    for width in (50, 80, 120):
        table = summary_lines(tutorial_model(), line_length=width)[1:-4]
        assert {len(line) for line in table} == {width}


def test_summary_positions_in_characters_place_the_column_edges():
    lines = summary_lines(tutorial_model(), positions=[40, 60, 75])
    assert len(lines[1]) == 75 and lines[1].index("┳") == 40  # the first column's border at 40


@pytest.mark.parametrize("kwargs, match", [
    ({"positions": [0.5, 0.3, 1.0]}, "increasing"),
    ({"positions": [0.5, 1.0]}, "3 increasing"),
    ({"positions": [30, 60, 80], "line_length": 100}, "end at 80"),
    ({"line_length": 10}, "at least 4"),
    ({"layer_range": ["dense"]}, "two layer names"),
    ({"layer_range": ["nope", "dense"]}, "does not match"),
])
def test_summary_refuses_a_layout_it_cannot_draw(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tutorial_model().summary(**kwargs)


def test_summary_show_trainable_marks_frozen_and_weightless_layers():
    model = tutorial_model()
    model.layers[1].trainable = False
    lines = summary_lines(model, show_trainable=True, line_length=90)
    cells = {line.split("│")[1].split()[0]: line.split("│")[4].strip()
             for line in lines if "(Flatten)" in line or "(Dense)" in line}
    assert list(cells.values()) == ["-", "N", "Y"]
    assert "Trai" in lines[2]


def test_summary_layer_range_and_expand_nested():
    model = tutorial_model()
    names = [layer.name for layer in model.layers]
    text = "\n".join(summary_lines(model, layer_range=[names[1], names[2]], expand_nested=True))
    assert "(Flatten)" not in text and text.count("(Dense)") == 2


# ----------------------------------------------------------------------------- activations


def test_activation_names_and_functions_are_the_same_objects():
    assert Dense(2, activation="relu").activation is npnet.activations.relu
    assert Dense(2, activation=npnet.activations.softmax).activation is npnet.activations.softmax
    assert Dense(2).activation is npnet.activations.linear
    assert Dense(2, activation=None).activation.name == "linear"


def test_activation_functions_work_on_arrays():
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(npnet.activations.relu(x), [[0.0, 0.0, 2.0]])
    p = npnet.activations.softmax(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum())


def test_custom_activation_object_trains_and_a_plain_callable_is_explained():
    square = npnet.activations.Activation("square", lambda z: z * z, lambda dL_da, z, a: dL_da * 2 * z)
    layer = Dense(2, activation=square, input_shape=(3,))
    layer.build((None, 3))
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_allclose(layer(x), (x @ layer.kernel) ** 2, rtol=1e-6)
    with pytest.raises(TypeError, match=r"plain callable.*Activation\(name, forward, backward\)"):
        Dense(2, activation=lambda z: z)


# ----------------------------------------------------------------------------- gradient checks


def check_layer_gradients(layer, x, seed):
    """Compare a layer's backward with centred differences of L = Σ upstream * layer(x)."""
    out, cache = layer.forward(x)
    upstream = signed(out.shape, seed)

    def loss():
        return float(np.sum(layer.forward(x)[0] * upstream))

    dL_dx, grads = layer.backward(upstream, cache)
    errors = {"x": max_relative_error(dL_dx, numerical_gradient(loss, x))}
    for name, param in layer.params.items():
        errors[name] = max_relative_error(grads[name], numerical_gradient(loss, param))
    return errors


def test_flatten_forward_and_backward(float64):
    layer = Flatten()
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    out, cache = layer.forward(x)
    assert out.shape == (3, 20)
    np.testing.assert_array_equal(out[1], x[1].ravel())
    errors = check_layer_gradients(layer, x, seed=1)
    assert set(errors) == {"x"} and errors["x"] < TOLERANCE
    assert layer.backward(np.ones((3, 20)), cache, need_input_grad=False) == (None, {})


@pytest.mark.parametrize("activation", [None, "relu", "softmax", "sigmoid", "tanh"])
def test_dense_backward_matches_finite_differences(float64, activation):
    npnet.utils.set_random_seed(1)
    layer = Dense(4, activation=activation)
    x = np.random.default_rng(2).normal(size=(6, 5))
    layer.build((None, 5))
    layer.params["bias"][:] = np.random.default_rng(3).normal(size=4)
    assert layer.kernel.dtype == np.float64
    z = x @ layer.kernel + layer.bias
    # No finite-difference step (h = 1e-6 on x or on a weight) may cross ReLU's kink.
    assert np.abs(z).min() > 1e-3, "pick another seed: a pre-activation sits at the kink"

    errors = check_layer_gradients(layer, x, seed=4)

    assert set(errors) == {"x", "kernel", "bias"}
    assert max(errors.values()) < TOLERANCE, errors


def test_whole_model_gradients_match_finite_differences(float64):
    """The training step's gradients (logits shortcut for the softmax output) for every weight."""
    npnet.utils.set_random_seed(5)
    model = npnet.Sequential([Flatten(input_shape=(2, 3)), Dense(4, activation="tanh"),
                              Dense(5, activation="relu"), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", backend="numpy")
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 2, 3)), rng.integers(0, 3, size=7)
    for weight in model.weights:
        weight += rng.normal(scale=0.1, size=weight.shape)  # biases away from 0 too
    assert heads.choose(model.layers, model.loss) == heads.SOFTMAX_CROSSENTROPY

    _, _, grads = training.loss_and_gradients(model.layers, model.loss, x, y)

    def loss():
        output, caches = training.forward(model.layers, x)
        return float(training.loss_value(model.layers, model.loss, output, caches, y))

    hidden = training.forward(model.layers[:3], x)[1][2][1]  # the relu layer's z
    assert np.abs(hidden).min() > 1e-3, "pick another seed: a pre-activation sits at the kink"
    for name, weight, grad in zip(model.weight_names(), model.weights, grads):
        assert grad.shape == weight.shape
        assert max_relative_error(grad, numerical_gradient(loss, weight)) < TOLERANCE, name


def test_general_probability_path_matches_finite_differences(float64):
    """With a softmax output but a loss object asked for probabilities and no shortcut."""
    npnet.utils.set_random_seed(7)
    model = npnet.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    loss_fn = npnet.losses.SparseCategoricalCrossentropy()
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, size=5)

    output, caches = training.forward(model.layers, x)
    # The general path: dL/dp from the loss, then the softmax Jacobian inside Dense.backward.
    _, grads = model.layers[0].backward(loss_fn.gradient(y, output), caches[0])

    def loss():
        return float(loss_fn.value(y, training.forward(model.layers, x)[0]))

    for name in ("kernel", "bias"):
        numeric = numerical_gradient(loss, model.layers[0].params[name])
        assert max_relative_error(grads[name], numeric) < TOLERANCE, name


# ----------------------------------------------------------------------------- config


def test_layer_config_round_trip():
    layer = Dense(7, activation="tanh", input_shape=(3,), name="my_dense")
    config_ = layer.get_config()
    assert config_ == {"name": "my_dense", "input_shape": [3], "units": 7, "activation": "tanh",
                       "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    clone = npnet.layers.deserialize("Dense", config_)
    assert (clone.units, clone.activation, clone.name) == (7, npnet.activations.tanh, "my_dense")
    with pytest.raises(ValueError, match="Unknown layer class 'Conv2D'; known layers: .*Dense") as error:
        npnet.layers.deserialize("Conv2D", {})
    assert "Flatten" in str(error.value)


@pytest.mark.parametrize("kernel, bias", [("he_normal", "ones"), ("lecun_normal", None),
                                          ("zeros", npnet.initializers.Constant([0.5, -1.0, 2.0, 3.0]))])
def test_initializers_round_trip_through_json_and_npnet_files(tmp_path, kernel, bias):
    model = npnet.Sequential([Dense(4, input_shape=(3,), kernel_initializer=kernel, bias_initializer=bias)])
    expected = (npnet.initializers.get(kernel), npnet.initializers.get(bias))
    clone = npnet.models.model_from_json(model.to_json())
    assert (clone.layers[0].kernel_initializer, clone.layers[0].bias_initializer) == expected
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    assert (loaded.layers[0].kernel_initializer, loaded.layers[0].bias_initializer) == expected


def test_default_layer_names_are_unique():
    names = [Dense(2).name for _ in range(3)]
    assert len(set(names)) == 3 and all(n.startswith("dense") for n in names)


# ----------------------------------------------------------------------------- layers of your own


class KerasStyle(npnet.layers.Layer):
    """A layer written for Keras: call() only."""

    def call(self, x):
        return 2 * x


class Linear(npnet.layers.Layer):
    """The Keras guide's Linear layer, with call() rewritten as forward and backward and its
    build() left as Keras code writes it: add_weight, no super().build()."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="he_normal", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", regularizer="l2")

    def forward(self, x, training=False):
        return x @ self.w + self.b, x

    def backward(self, dL_dy, x, need_input_grad=True):
        dL_dx = dL_dy @ self.w.T if need_input_grad else None
        return dL_dx, {"w": x.T @ dL_dy, "variable_1": dL_dy.sum(axis=0)}


def test_a_layer_defining_only_keras_call_is_refused_when_created_naming_forward_and_backward():
    with pytest.raises(NotImplementedError, match=r"KerasStyle defines call\(\).*forward\(self, x.*"
                                                  r"backward\(self, dL_dy.*FunctionLayer"):
        KerasStyle()


def test_a_layer_without_backward_says_what_fit_needs():
    class ForwardOnly(npnet.layers.Layer):
        def forward(self, x, training=False):
            return x, None

    model = npnet.Sequential([Dense(2, input_shape=(3,)), ForwardOnly()])
    model.compile(optimizer="sgd", loss="mse", backend="numpy")
    with pytest.raises(NotImplementedError, match=r"ForwardOnly defines no backward\(self, dL_dy"):
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def test_add_weight_creates_trained_regularized_parameters_with_keras_names():
    layer = Linear(3)
    model = npnet.Sequential([npnet.Input(shape=(5,)), layer, Dense(2)])
    assert layer.built and list(layer.params) == ["w", "variable_1"]  # Keras's default name
    assert layer.w is layer.params["w"] and layer.params["w"].shape == (5, 3)
    assert model.layers[-1].kernel.shape == (3, 2)  # the output shape found without compute_output_shape
    assert layer.weight_regularizers().keys() == {"variable_1"} and len(layer.losses) == 1
    model.compile(optimizer="adam", loss="mse", backend="numpy")
    before = layer.get_weights()
    x = np.random.default_rng(0).random((16, 5))
    model.fit(x, x[:, :2], epochs=2, verbose=0)
    assert not np.allclose(before[0], layer.w)
    assert npnet.gradcheck(model, x[:4], x[:4, :2]).passed


def test_add_weight_refuses_what_npnet_cannot_train_by_name():
    layer = Linear(3)
    with pytest.raises(NotImplementedError, match=r"trainable=False.*layer\.trainable = False"):
        layer.add_weight(shape=(2,), trainable=False)
    with pytest.raises(ValueError, match=r"keyword argument.*add_weight\(shape=\.\.\., name='kernel'\)"):
        layer.add_weight("kernel", (2,))
    layer.add_weight(shape=(2,), name="k")
    with pytest.raises(ValueError, match="already has a weight named 'k'"):
        layer.add_weight(shape=(2,), name="k")


def test_add_weight_inside_a_parameter_budget_refuses_before_allocating():
    """Loading builds a file's user layers inside a budget, so a file's number cannot make
    add_weight allocate without bound (npnet.saving.shapes)."""
    layer = Linear(3)
    with npnet.layers.parameter_budget(10):
        layer.add_weight(shape=(2, 4), name="fits")
        with pytest.raises(npnet.layers.TooManyParameters, match=r"'big' of shape \(3, 1099511627776\), "
                                                                   r"3,298,534,883,328 parameters; the model may have 2 more"):
            layer.add_weight(shape=(3, 2**40), name="big")
    assert list(layer.params) == ["fits"]
    layer.add_weight(shape=(3, 5), name="unbounded")  # outside the block, no bound
