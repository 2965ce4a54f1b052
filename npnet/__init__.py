"""npnet: a from-scratch neural-network library in NumPy, with numba kernels for speed.

It reproduces the TensorFlow "basic classification" tutorial through a Keras-shaped API::

    import npnet
    (x_train, y_train), (x_test, y_test) = npnet.datasets.fashion_mnist.load_data()
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation="relu"),
        npnet.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train / 255.0, y_train, epochs=5)

Start reading at ``npnet/functional.py``: the whole of backpropagation for this model.
"""

__version__ = "0.1.0"

from . import activations, callbacks, config, data, datasets, functional, initializers, layers  # noqa: E402
from . import losses, metrics, models, optimizers, utils  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402
from .symbolic import Input  # noqa: E402
from . import inspect, regularizers, training  # noqa: E402
# npnet.gradcheck is the function (the module's name is taken over; its code is in
# npnet/gradcheck.py, importable as ``from npnet.gradcheck import GradcheckReport``).
from .gradcheck import gradcheck  # noqa: E402

__all__ = ["Input", "Model", "Sequential", "load_model", "activations", "callbacks", "config", "data", "datasets",
           "functional", "initializers", "layers", "losses", "metrics", "models",
           "optimizers", "utils", "plot", "gradcheck", "inspect", "regularizers", "training"]


def __getattr__(name):
    # npnet.plot imports matplotlib when first used, not when npnet is imported.
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'npnet' has no attribute {name!r}")
