"""Helpers shared by the mirror tests that compute the same thing in TensorFlow."""

import numpy as np
import tensorflow as tf


def fit_both_and_compare(ours, theirs, x, y):
    """Three epochs of batch 8 on each side, unshuffled: the losses and weights must agree."""
    ours_h = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    theirs_h = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours_h, theirs_h, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def keras_value_and_gradient(function, z, upstream):
    """``function(z)`` in TF and the gradient of ``Σ upstream · function(z)`` w.r.t. z."""
    z_tf = tf.Variable(z)
    with tf.GradientTape() as tape:
        out = function(z_tf)
        total = tf.reduce_sum(out * upstream)
    return out.numpy(), tape.gradient(total, z_tf).numpy()


def keras_loss_value_and_gradient(loss, y_true, y_pred, sample_weight=None):
    """A Keras loss's value on ``(y_true, y_pred)`` and its gradient w.r.t. ``y_pred``."""
    pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, pred, sample_weight=sample_weight)
    return value.numpy(), tape.gradient(value, pred).numpy()
