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
from .layers import Layer  # noqa: E402  (keras.Layer too)
from .variables import Variable  # noqa: E402  (keras.Variable too)
from . import backend  # noqa: E402
from .symbolic import Input  # noqa: E402
from . import inspect, regularizers, training  # noqa: E402
# npnet.gradcheck is the function (the module's name is taken over; its code is in
# npnet/gradcheck.py, importable as ``from npnet.gradcheck import GradcheckReport``).
from .gradcheck import gradcheck  # noqa: E402

__all__ = ["Input", "Layer", "Model", "Sequential", "Variable", "load_model", "activations", "backend", "callbacks",
           "config", "data", "datasets", "functional", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "utils", "plot", "gradcheck", "inspect", "regularizers", "training"]


#: TensorFlow / Keras 3 namespaces a tutorial reaches through ``tf.`` or ``keras.``, which
#: npnet does not have (it computes with NumPy), and what to write instead.
_TENSORFLOW_NAMES = {
    "nn": "npnet has no tf.nn: its activations are NumPy functions of arrays, e.g. "
          "npnet.activations.softmax(x) or npnet.activations.relu(x) (the result is already a "
          "NumPy array: no .numpy() needed); in a layer write activation='relu'",
    "ops": "npnet has no keras.ops: write NumPy (np.mean, np.square, np.argmax...) on the arrays "
           "npnet returns",
    "math": "npnet has no tf.math: write NumPy (np.mean, np.square, np.sum...) on the arrays npnet returns",
    "saved_model": "npnet cannot write TensorFlow's SavedModel: save the whole model with "
                   "model.save('my_model.keras') (Keras 3's format) and read it back with "
                   "npnet.models.load_model, or export for inference runtimes with "
                   "model.export('my_model.onnx')",
    "one_hot": "npnet has no tf.one_hot: write npnet.utils.to_categorical(labels, num_classes)",
    "add_n": "npnet has no tf.add_n: the values are NumPy numbers, so write sum(values) (e.g. "
             "sum(model.losses))",
    "reduce_mean": "npnet has no tf.reduce_mean: write np.mean(...) on NumPy arrays",
    "expand_dims": "npnet has no tf.expand_dims: write np.expand_dims(array, axis)",
    "linspace": "npnet has no tf.linspace: write np.linspace(start, stop, num) (predict takes the NumPy "
                "array as it is)",
    "range": "npnet has no tf.range: write np.arange(...)",
    "constant": "npnet has no tensors: pass NumPy arrays (np.asarray(...))",
    "convert_to_tensor": "npnet has no tensors: pass NumPy arrays (np.asarray(...))",
    "Tensor": "npnet has no tensors: its inputs and outputs are NumPy arrays",
    "keras": "npnet is itself the Keras-shaped API: write npnet.layers, npnet.Sequential, "
             "npnet.losses... where the code says tf.keras.layers, tf.keras.Sequential, ...",
}


def __getattr__(name):
    # npnet.plot imports matplotlib when first used, not when npnet is imported.
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    if name in _TENSORFLOW_NAMES:
        raise AttributeError(f"module 'npnet' has no attribute {name!r}: {_TENSORFLOW_NAMES[name]}")
    raise AttributeError(f"module 'npnet' has no attribute {name!r}")
