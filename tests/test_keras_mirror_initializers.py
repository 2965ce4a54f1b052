"""Mirror tests: npnet's initializer classes beside keras.initializers.

Both draw from their own generators, so the numbers differ; what must agree is each class's
settings (``get_config``), names (``get("random_normal")``, ``he_normal(seed=1)``), the
distribution drawn (bounds, mean and spread on large draws) and the Keras files that carry
them, in both directions.
"""

import numpy as np
import pytest
import keras

import npnet
from npnet import initializers

pytestmark = pytest.mark.reference

#: (npnet instance, Keras instance) pairs with settings other than the defaults
PAIRS = [
    (initializers.RandomNormal(mean=0.5, stddev=0.2, seed=3), keras.initializers.RandomNormal(mean=0.5, stddev=0.2, seed=3)),
    (initializers.TruncatedNormal(mean=-1.0, stddev=0.1), keras.initializers.TruncatedNormal(mean=-1.0, stddev=0.1)),
    (initializers.RandomUniform(minval=-2.0, maxval=3.0), keras.initializers.RandomUniform(minval=-2.0, maxval=3.0)),
    (initializers.VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform"),
     keras.initializers.VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform")),
    (initializers.VarianceScaling(scale=0.5, mode="fan_out", distribution="untruncated_normal"),
     keras.initializers.VarianceScaling(scale=0.5, mode="fan_out", distribution="untruncated_normal")),
    (initializers.VarianceScaling(), keras.initializers.VarianceScaling()),
    (initializers.Orthogonal(gain=2.0), keras.initializers.Orthogonal(gain=2.0)),
    (initializers.HeNormal(seed=7), keras.initializers.HeNormal(seed=7)),
    (initializers.GlorotUniform(), keras.initializers.GlorotUniform()),
    (initializers.LecunNormal(), keras.initializers.LecunNormal()),
    (initializers.Zeros(), keras.initializers.Zeros()),
    (initializers.Ones(), keras.initializers.Ones()),
]
IDS = [f"{type(ours).__name__}-{i}" for i, (ours, _) in enumerate(PAIRS)]


def keras_config(initializer):
    """Keras's get_config without the axes settings npnet does not have (always None here)."""
    config = initializer.get_config()
    assert config.pop("input_axes", None) is None and config.pop("output_axes", None) is None
    return config


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=IDS)
def test_the_settings_are_keras_s(ours, theirs):
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.get_config() == keras_config(theirs)
    assert type(ours)(**ours.get_config()) == ours


@pytest.mark.parametrize("name", ["random_normal", "truncated_normal", "random_uniform", "variance_scaling",
                                  "orthogonal", "glorot_uniform", "he_normal", "lecun_uniform", "zeros", "ones",
                                  "RandomNormal", "HeUniform", "GlorotNormal"])
def test_names_and_lowercase_classes_make_what_keras_makes(name):
    """``get(name)`` and Keras 3's lowercase class names called as classes
    (``initializers.he_normal(seed=1)``)."""
    theirs = keras.initializers.get(name)
    ours = initializers.get(name)
    if callable(ours) and not isinstance(ours, (initializers.Initializer, initializers.Constant)):
        ours = ours()  # one of npnet's named functions: its class form
    assert type(ours).__name__ == type(theirs).__name__ and ours.get_config() == keras_config(theirs)
    lowercase = getattr(initializers, name, None)
    if name.islower() and name not in ("zeros", "ones"):
        made = lowercase(seed=11)
        assert made.get_config() == keras_config(getattr(keras.initializers, name)(seed=11))


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=IDS)
def test_the_draws_have_keras_s_distribution(ours, theirs):
    shape = (400, 300)
    mine, keras_draws = ours(shape, "float32"), np.asarray(theirs(shape, dtype="float32"))
    assert mine.dtype == np.float32 and mine.shape == shape
    if isinstance(ours, initializers.Orthogonal):  # rows x columns with orthogonal columns, times the gain
        for q in (mine.astype(np.float64), keras_draws.astype(np.float64)):
            np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(300), atol=1e-4)
        return
    spread = max(float(keras_draws.std()), 1e-6)
    for q in (0.01, 0.25, 0.5, 0.75, 0.99):
        np.testing.assert_allclose(np.quantile(mine, q), np.quantile(keras_draws, q), atol=0.03 * spread)
    unbounded = type(ours) is initializers.RandomNormal or getattr(ours, "distribution", "") == "untruncated_normal"
    if not unbounded:  # uniform bounds and the cut at two standard deviations
        for statistic in (np.min, np.max):
            np.testing.assert_allclose(statistic(mine), statistic(keras_draws), atol=0.02 * spread)
    np.testing.assert_allclose(mine.mean(), keras_draws.mean(), atol=0.02 * max(keras_draws.std(), 1e-6))
    np.testing.assert_allclose(mine.std(), keras_draws.std(), rtol=0.02, atol=1e-7)


def test_a_seed_of_its_own_repeats_its_draws_and_none_follows_npnet_s_seed():
    seeded = initializers.RandomNormal(seed=5)
    np.testing.assert_array_equal(seeded((20, 3), "float32"), seeded((20, 3), "float32"))
    unseeded = initializers.TruncatedNormal()
    npnet.utils.set_random_seed(1)
    first = unseeded((20, 3), "float32")
    npnet.utils.set_random_seed(1)
    np.testing.assert_array_equal(first, unseeded((20, 3), "float32"))
    assert not np.array_equal(first, unseeded((20, 3), "float32"))


@pytest.mark.parametrize("make", [lambda: initializers.RandomNormal(stddev=-0.1), lambda: initializers.RandomUniform(1, 0),
                                  lambda: initializers.VarianceScaling(scale=0), lambda: initializers.Orthogonal(gain=np.nan),
                                  lambda: initializers.VarianceScaling(mode="fan"), lambda: initializers.HeNormal(seed=1.5)])
def test_bad_settings_are_refused_naming_the_setting(make):
    with pytest.raises(ValueError, match=r"(stddev|maxval|scale|gain|mode|seed) must be"):
        make()


def test_a_keras_file_carries_them_both_ways(tmp_path):
    """npnet's model saved as .keras loads in Keras with the same initializer classes and
    settings, and Keras's loads in npnet with them (He, Glorot and LeCun come back as npnet's
    named functions, Keras's seeds not read)."""
    ours = npnet.Sequential([npnet.Input(shape=(6,))] + [
        npnet.layers.Dense(4, kernel_initializer=mine, bias_initializer=initializers.Ones())
        for mine, _ in PAIRS[:7]])
    ours.save(tmp_path / "ours.keras")
    loaded = keras.models.load_model(tmp_path / "ours.keras")
    for layer, (mine, _) in zip(loaded.layers, PAIRS[:7]):
        assert type(layer.kernel_initializer).__name__ == type(mine).__name__
        assert keras_config(layer.kernel_initializer) == mine.get_config()
        assert type(layer.bias_initializer).__name__ == "Ones"
    theirs = keras.Sequential([keras.Input(shape=(6,))] + [
        keras.layers.Dense(4, kernel_initializer=keras_init, bias_initializer="random_uniform")
        for _, keras_init in PAIRS[:7]])
    theirs.save(tmp_path / "theirs.keras")
    back = npnet.models.load_model(tmp_path / "theirs.keras")
    for layer, (mine, _) in zip(back.layers, PAIRS[:7]):
        assert layer.kernel_initializer == mine
        assert layer.bias_initializer == initializers.RandomUniform()
    for mine, theirs_weights in zip(back.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(mine, theirs_weights)


def test_an_npnet_file_and_a_config_carry_them():
    model = npnet.Sequential([npnet.Input(shape=(5,)), npnet.layers.Dense(3, kernel_initializer="random_normal",
                                                                          bias_initializer=initializers.Constant(0.1))])
    again = npnet.Sequential.from_config(model.get_config())
    assert again.layers[0].kernel_initializer == initializers.RandomNormal()
    assert again.layers[0].bias_initializer == initializers.Constant(0.1)
