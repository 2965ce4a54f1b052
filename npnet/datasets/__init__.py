"""Data sets for npnet.

``fashion_mnist.load_data()`` returns the arrays Keras returns; see
:mod:`npnet.datasets.fashion_mnist` for where the files are looked for,
how they are verified and how they are downloaded.
"""

from . import fashion_mnist
from ._errors import DatasetNotFoundError, DataWarning

__all__ = ["fashion_mnist", "DataWarning", "DatasetNotFoundError"]


#: Keras's other built-in data sets, which npnet does not ship.
_KERAS_DATASETS = ("mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing",
                   "california_housing")


def _not_shipped(name):
    """Why ``name``, one of Keras's data sets, is not here, and what to do instead."""
    return (f"npnet.datasets has no {name!r}: npnet ships Fashion-MNIST only "
            "(npnet.datasets.fashion_mnist.load_data(), the same shapes and dtypes as MNIST's "
            f"load_data()); for {name}, load the arrays yourself and pass NumPy arrays")


def refuse_import(module_name):
    """Raise, from the module of one of Keras's data sets (``from npnet.datasets import
    imdb``, as notebooks import ``keras.datasets.imdb``), the ImportError that says why."""
    name = module_name.rsplit(".", 1)[-1]
    raise ImportError(_not_shipped(name), name=module_name)


def __getattr__(name):
    if name in _KERAS_DATASETS:
        raise AttributeError(_not_shipped(name))
    raise AttributeError(f"module 'npnet.datasets' has no attribute {name!r}")
