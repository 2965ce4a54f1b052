"""Helpers shared by the mirror tests that compute the same thing in TensorFlow."""

import tensorflow as tf


def keras_value_and_gradient(function, z, upstream):
    """``function(z)`` in TF and the gradient of ``Σ upstream · function(z)`` w.r.t. z."""
    z_tf = tf.Variable(z)
    with tf.GradientTape() as tape:
        out = function(z_tf)
        total = tf.reduce_sum(out * upstream)
    return out.numpy(), tape.gradient(total, z_tf).numpy()
