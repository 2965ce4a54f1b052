"""Numbers given to layers are checked in the float type the layers compute in (floatx),
and an initializer's output before it becomes a weight: 1e39 is a finite float64 but inf
in float32, and a callable initializer can return anything."""

import numpy as np
import pytest

import npnet
from npnet import layers, regularizers, schedules


@pytest.mark.parametrize("make, message", [
    (lambda: layers.ReLU(negative_slope=1e39), "negative_slope of a ReLU layer must be finite in float32"),
    (lambda: layers.ReLU(max_value=1e39), "max_value of a ReLU layer must be finite in float32"),
    (lambda: layers.LeakyReLU(negative_slope=1e39), "negative_slope of a LeakyReLU layer must be finite in float32"),
    (lambda: layers.Normalization(mean=1e39, variance=1.0), "Normalization mean must be finite in float32"),
    (lambda: layers.Normalization(mean=0.0, variance=[1.0, 1e39]), "Normalization variance must be finite in float32"),
    (lambda: regularizers.l2(1e39), "l2 must be finite in float32"),
    (lambda: regularizers.L1L2(l1=1e39), "l1 must be finite in float32"),
    (lambda: schedules.CosineDecay(0.01, 4, warmup_target=1e39, warmup_steps=2), "warmup_target must be finite in float32"),
    (lambda: schedules.ExponentialDecay(1e39, 10, 0.5), "initial_learning_rate must be finite in float32"),
    (lambda: schedules.PiecewiseConstantDecay([10], [0.1, -1e40]), "values must be finite in float32"),
])
def test_numbers_beyond_float32_are_refused_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_in_float64_the_same_numbers_are_accepted():
    previous = npnet.config.floatx()
    npnet.config.set_floatx("float64")
    try:
        assert layers.ReLU(negative_slope=1e39).negative_slope == 1e39
        assert regularizers.l2(1e39).l2 == 1e39
        layers.Normalization(mean=1e39, variance=1.0)
    finally:
        npnet.config.set_floatx(previous)


@pytest.mark.parametrize("values, error, message", [
    (lambda shape, dtype: np.full(shape, np.inf, dtype), ValueError, "initializer of 'kernel' returned inf or NaN"),
    (lambda shape, dtype: np.full(shape, 1e39), ValueError, "initializer of 'kernel' returned inf or NaN"),
    (lambda shape, dtype: np.zeros((3, 3), dtype), ValueError, r"initializer of 'kernel' must return shape \(8, 4\)"),
    (lambda shape, dtype: "zeros", TypeError, "initializer of 'kernel' must return numbers"),
])
def test_a_callable_initializers_output_is_checked_at_build(values, error, message):
    with pytest.raises(error, match=message):
        npnet.Sequential([npnet.Input((8,)), layers.Dense(4, kernel_initializer=values)])
    unbuilt = layers.Dense(4, kernel_initializer=values, name="dense_probe")
    with pytest.raises(error, match="dense_probe"):
        unbuilt.build((None, 8))
    assert not unbuilt.built and not unbuilt.params


def test_add_weight_checks_its_initializer_too():
    class Scale(layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), name="scale",
                                         initializer=lambda shape, dtype: np.full(shape, np.nan))

        def forward(self, x, training=False):
            return x * self.scale, None

        def backward(self, dL_dy, cache, need_input_grad=True):
            return dL_dy * self.scale, {"scale": np.zeros_like(self.scale)}

    with pytest.raises(ValueError, match="initializer of 'scale' returned inf or NaN"):
        Scale().build((None, 3))
