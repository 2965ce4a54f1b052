"""The data both sides train on, read once through npnet's loader.

The tutorial scales the uint8 images with ``train_images / 255.0`` (float64), and each library
then casts them to float32. Doing that cast once here hands npnet and tf.keras the very same
float32 arrays, so no difference in the cross-check can come from the data.

Nothing here imports TensorFlow.
"""

from typing import NamedTuple

import numpy as np

from npnet.datasets import fashion_mnist


class Data(NamedTuple):
    """Fashion-MNIST as the tutorial feeds it to the model.

    x_train: (60000, 28, 28) float32 in [0, 1], y_train: (60000,) uint8 labels 0..9,
    x_test: (10000, 28, 28) float32 in [0, 1], y_test: (10000,) uint8 labels 0..9.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def scale_images(images):
    """uint8 images (n, 28, 28) -> float32 in [0, 1], exactly ``np.float32(images / 255.0)``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images as load_data() returns them; received dtype {images.dtype}")
    return (images / 255.0).astype(np.float32)


def load(path=None):
    """Load Fashion-MNIST with ``npnet.datasets.fashion_mnist.load_data`` and scale the images."""
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path)
    return Data(scale_images(x_train), y_train, scale_images(x_test), y_test)
