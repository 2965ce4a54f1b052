"""Mirror tests of the arguments Keras code passes that npnet has only at some values:
optimizers' settings (``name``, ``amsgrad=False``, ``clipnorm=None``, ... or a whole
``get_config()``), the layers' ``dtype``, ``Flatten(data_format)``, ``Dropout(noise_shape)``,
and ``compile``'s ``run_eagerly``, ``jit_compile``, ``auto_scale_loss`` and ``loss_weights``.
Where npnet computes the same thing, the Keras code runs unchanged; a value that would make
Keras compute something else is refused, naming the argument; an argument neither library
knows is refused by both."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import keras  # noqa: E402

import npnet  # noqa: E402
from npnet import config, layers, optimizers  # noqa: E402

pytestmark = pytest.mark.reference

SETTINGS = [("Adam", {}), ("Adam", {"learning_rate": 0.01, "beta_1": 0.8, "epsilon": 1e-5}),
            ("SGD", {}), ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
            ("RMSprop", {}), ("RMSprop", {"rho": 0.8, "momentum": 0.5, "centered": True})]

#: Keras settings npnet does not implement, each at a value that turns it on
TURNED_ON = {"weight_decay": 0.004, "clipnorm": 1.0, "clipvalue": 0.5, "global_clipnorm": 1.0, "use_ema": True,
             "loss_scale_factor": 128.0, "gradient_accumulation_steps": 2}


@pytest.mark.parametrize("class_name, settings", SETTINGS)
def test_a_keras_optimizers_config_makes_the_same_optimizer(class_name, settings):
    """``npnet.optimizers.X(**keras.optimizers.X(...).get_config())``: the same name and the
    same settings (Keras's config holds the learning rate rounded to float32, as it keeps it)."""
    theirs = getattr(keras.optimizers, class_name)(**settings)
    config = theirs.get_config()
    ours = getattr(optimizers, class_name)(**config)
    assert ours.name == theirs.name == config["name"]
    assert ours.get_config() == {key: config[key] for key in ours.get_config()}


@pytest.mark.parametrize("class_name", ["Adam", "SGD", "RMSprop"])
def test_optimizers_made_without_a_name_are_numbered_as_keras_numbers_them(class_name):
    keras.backend.clear_session()
    npnet.backend.clear_session()
    ours = [getattr(optimizers, class_name)().name for _ in range(3)]
    theirs = [getattr(keras.optimizers, class_name)().name for _ in range(3)]
    assert ours == theirs


@pytest.mark.parametrize("class_name, settings", SETTINGS)
def test_settings_spelled_out_at_keras_defaults_train_as_keras_does(class_name, settings):
    """Both libraries train the same model from the same weights with an optimizer made
    from Keras's full config (the settings npnet lacks all off): the same losses and weights."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 5), dtype=np.float32), rng.integers(0, 3, 32)
    config = getattr(keras.optimizers, class_name)(**settings).get_config()
    config["learning_rate"] = settings.get("learning_rate", config["learning_rate"])  # the value Keras was given
    ours = npnet.Sequential([npnet.Input(shape=(5,)), layers.Dense(4, activation="relu"), layers.Dense(3)])
    theirs = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(4, activation="relu"),
                               keras.layers.Dense(3)])
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=getattr(optimizers, class_name)(**config),
                 loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True))
    theirs.compile(optimizer=getattr(keras.optimizers, class_name)(**config),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ours_losses = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    theirs_losses = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours_losses, theirs_losses, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("setting", sorted(TURNED_ON))
@pytest.mark.parametrize("class_name", ["Adam", "SGD", "RMSprop"])
def test_a_keras_setting_npnet_lacks_is_refused_when_on(class_name, setting):
    """Keras takes the setting; npnet refuses it, naming it, its value and Keras's default."""
    value = TURNED_ON[setting]
    getattr(keras.optimizers, class_name)(**{setting: value})
    with pytest.raises(ValueError, match=rf"{class_name}\({setting}={value!r}\): .*{setting} must be"):
        getattr(optimizers, class_name)(**{setting: value})


def test_amsgrad_is_refused_when_on_and_ema_settings_pass_while_it_is_off():
    keras.optimizers.Adam(amsgrad=True)
    with pytest.raises(ValueError, match=r"Adam\(amsgrad=True\): npnet's Adam has no AMSGrad variant"):
        optimizers.Adam(amsgrad=True)
    assert optimizers.Adam(amsgrad=False, use_ema=False, ema_momentum=0.5, ema_overwrite_frequency=10).name == "adam"


@pytest.mark.parametrize("class_name, arguments", [("Adam", {"lr": 0.1}), ("SGD", {"amsgrad": False}),
                                                   ("RMSprop", {"beta_1": 0.9})])
def test_an_argument_neither_knows_is_refused_by_both(class_name, arguments):
    with pytest.raises(ValueError, match="not recognized"):
        getattr(keras.optimizers, class_name)(**arguments)
    with pytest.raises(ValueError, match=rf"Argument\(s\) not recognized: .*{class_name} takes learning_rate"):
        getattr(optimizers, class_name)(**arguments)


def test_the_optimizers_name_travels_through_a_keras_file(tmp_path):
    """``Adam(name=...)`` is written into a .keras file, which Keras and npnet both read back."""
    model = npnet.Sequential([npnet.Input(shape=(4,)), layers.Dense(2)])
    model.compile(optimizer=optimizers.Adam(name="slow_adam"), loss="mse")
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").optimizer.name == "slow_adam"
    assert npnet.load_model(tmp_path / "m.keras").optimizer.name == "slow_adam"


LAYERS = {"Dense": (3,), "Flatten": (), "ReLU": (), "LeakyReLU": (), "Softmax": (), "Activation": ("tanh",),
          "Dropout": (0.2,)}


def _both(class_name, **arguments):
    """(npnet's layer, Keras's layer) of ``class_name`` made with the same arguments."""
    positional = LAYERS[class_name]
    return (getattr(layers, class_name)(*positional, **arguments),
            getattr(keras.layers, class_name)(*positional, **arguments))


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_layers_take_keras_dtype_when_it_is_npnets_float_type(class_name):
    """``dtype='float32'`` (floatx) is what npnet computes in: the same layer, the same outputs."""
    ours, theirs = _both(class_name, dtype="float32")
    x = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    model = npnet.Sequential([npnet.Input(shape=(6,)), ours])
    keras_model = keras.Sequential([keras.Input(shape=(6,)), theirs])
    keras_model.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), keras_model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_a_layer_dtype_other_than_floatx_is_refused(class_name):
    """Keras computes a float64 layer in a float32 model; npnet has one float type per model,
    so it refuses, naming floatx and how to change it; with floatx float64 it takes it."""
    getattr(keras.layers, class_name)(*LAYERS[class_name], dtype="float64")
    with pytest.raises(ValueError, match=rf"{class_name}\(dtype='float64'\).*floatx, 'float32'.*set_floatx"):
        getattr(layers, class_name)(*LAYERS[class_name], dtype="float64")
    previous = config.floatx()
    config.set_floatx("float64")
    try:
        getattr(layers, class_name)(*LAYERS[class_name], dtype="float64")
    finally:
        config.set_floatx(previous)


def test_flatten_takes_channels_last_and_refuses_channels_first():
    """``channels_last`` flattens as npnet does; Keras's ``channels_first`` moves the channels
    last first, a different order, which npnet refuses rather than ignore."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ours, theirs = _both("Flatten", data_format="channels_last")
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))
    channels_first = np.asarray(keras.layers.Flatten(data_format="channels_first")(x))
    assert not np.array_equal(channels_first, ours(x))
    with pytest.raises(ValueError, match=r"Flatten\(data_format='channels_first'\)"):
        layers.Flatten(data_format="channels_first")


def test_dropout_takes_keras_positional_arguments_and_refuses_a_noise_shape():
    ours, theirs = layers.Dropout(0.2, None, 3), keras.layers.Dropout(0.2, None, 3)
    assert (ours.rate, ours.seed) == (theirs.rate, theirs.seed) == (0.2, 3)
    keras.layers.Dropout(0.2, noise_shape=(None, 1))
    with pytest.raises(ValueError, match=r"Dropout\(noise_shape=\(None, 1\)\)"):
        layers.Dropout(0.2, noise_shape=(None, 1))


def _compiled_pair(**arguments):
    ours = npnet.Sequential([npnet.Input(shape=(3,)), layers.Dense(2)])
    theirs = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="sgd", loss="mse", **arguments)
    theirs.compile(optimizer="sgd", loss="mse", **arguments)
    return ours, theirs


@pytest.mark.parametrize("arguments", [{"run_eagerly": True}, {"jit_compile": True}, {"jit_compile": False},
                                       {"auto_scale_loss": False, "loss_weights": None}])
def test_compile_takes_kerass_execution_settings_and_trains_the_same(arguments):
    ours, theirs = _compiled_pair(**arguments)
    assert ours.run_eagerly == theirs.run_eagerly
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3), dtype=np.float32), rng.random((16, 2), dtype=np.float32)
    ours_losses = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    theirs_losses = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours_losses, theirs_losses, rtol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    ({"loss_weights": [0.5]}, r"loss_weights=\[0.5\].*must be None"),
    ({"run_eagerly": "yes"}, r"run_eagerly=...\) must be True or False; received 'yes'"),
    ({"jit_compile": "xla"}, r"jit_compile=...\) must be True, False or 'auto'; received 'xla'")])
def test_compile_refuses_what_npnet_cannot_honour_and_keeps_the_last_compile(arguments, message):
    ours, _ = _compiled_pair()
    optimizer = ours.optimizer
    with pytest.raises(ValueError, match=message):
        ours.compile(optimizer="adam", loss="mae", **arguments)
    assert ours.optimizer is optimizer and ours.loss.name == "mean_squared_error" and not ours.run_eagerly
