"""Data sets for npnet.

``fashion_mnist.load_data()`` returns the arrays Keras returns; see
:mod:`npnet.datasets.fashion_mnist` for where the files are looked for,
how they are verified and how they are downloaded.
"""

from . import fashion_mnist
from ._errors import DatasetNotFoundError, DataWarning

__all__ = ["fashion_mnist", "DataWarning", "DatasetNotFoundError"]
