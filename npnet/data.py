"""What ``fit``, ``evaluate`` and ``predict`` accept besides arrays: batches from Python.

* an :class:`PyDataset` (or any Keras-style sequence with ``__len__`` and ``__getitem__``)
  whose item ``i`` is the batch ``(x, y)`` (or ``(x, y, sample_weight)``);
* a Python generator or iterator of such batches; ``steps_per_epoch`` says how many make an
  epoch (without it, the iterator is read until it is exhausted, once);
* a re-iterable of such batches, such as a PyTorch ``DataLoader`` (its tensors become NumPy
  arrays): each epoch iterates it afresh, ``len()`` batches when it has a length.

Every batch is checked like an array argument. ``tf.data`` pipelines cannot run without
TensorFlow: the error says to pass NumPy arrays or a generator instead.
"""

import itertools
import sys
import warnings


class PyDataset:
    """Base class for a sequence of batches, as ``keras.utils.PyDataset``.

    Subclasses define ``__len__`` (batches per epoch) and ``__getitem__(index)`` returning
    ``(x_batch, y_batch)``; ``on_epoch_end`` runs after each epoch. ``workers``,
    ``use_multiprocessing`` and ``max_queue_size`` are accepted for compatibility; npnet
    reads the batches in order in the calling thread.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers, self.use_multiprocessing, self.max_queue_size = workers, use_multiprocessing, max_queue_size

    def __len__(self):
        raise NotImplementedError("A PyDataset defines __len__: the number of batches per epoch")

    def __getitem__(self, index):
        raise NotImplementedError("A PyDataset defines __getitem__(index) -> (x_batch, y_batch)")

    def on_epoch_end(self):
        pass


#: How a ``.repeat()``-ed pipeline translates: without ``steps_per_epoch`` an endless
#: generator would make one endless epoch.
_ENDLESS = ("one that never ends (what .repeat() makes) needs fit(..., steps_per_epoch=N) to say how "
            "many batches make an epoch")


def __getattr__(name):
    # ``tf.data.Dataset`` after the mechanical swap: say what to write instead.
    if name in ("Dataset", "experimental", "AUTOTUNE", "TFRecordDataset", "TextLineDataset"):
        raise AttributeError(
            f"npnet.data has no {name!r}: tf.data pipelines need TensorFlow. Pass NumPy arrays "
            "(fit shuffles and batches them), an npnet.utils.PyDataset, or a Python generator "
            f"of (x, y) NumPy batches; {_ENDLESS}")
    raise AttributeError(f"module 'npnet.data' has no attribute {name!r}")


def is_batch_source(x):
    """True for a sequence of batches or an iterator of batches (not an array or a list)."""
    refuse_tensorflow(x)
    if isinstance(x, PyDataset):
        return True
    if hasattr(x, "__array__") or isinstance(x, (list, tuple, dict, str, bytes, set, frozenset)) or x is None:
        return False
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(x):  # samples, read as a dense array (validation.as_dense)
        return False
    # a sequence, an iterator, or a re-iterable such as a PyTorch DataLoader
    return (hasattr(x, "__getitem__") and hasattr(x, "__len__")) or hasattr(x, "__next__") or hasattr(x, "__iter__")


def refuse_tensorflow(x):
    module = type(x).__module__ or ""
    if module.startswith(("tensorflow", "tf_keras", "keras")):
        raise TypeError(f"npnet cannot read a {type(x).__name__} from {module}: it runs without "
                        "TensorFlow. Pass NumPy arrays (e.g. np.asarray(...)), an npnet.data.PyDataset, "
                        f"or a Python generator of (x, y) NumPy batches instead; {_ENDLESS}.")


class BatchSource:
    """The batches of a sequence or an iterator, epoch by epoch."""

    def __init__(self, source, steps_per_epoch=None):
        self.source = source
        self.is_sequence = hasattr(source, "__getitem__") and hasattr(source, "__len__")
        # An iterator is read on across epochs; a re-iterable (a DataLoader) starts again.
        self.restarts = not self.is_sequence and not hasattr(source, "__next__")
        if not self.is_sequence and not self.restarts:
            self.iterator = iter(source)
        known_length = self.is_sequence or (self.restarts and hasattr(source, "__len__"))
        self.steps = steps_per_epoch if steps_per_epoch is not None else (
            len(source) if known_length else None)
        if self.is_sequence and self.steps is not None and self.steps > len(source):
            warnings.warn(f"{self.steps} steps were asked of a dataset of {len(source)} batches; "
                          f"each pass reads its {len(source)} batches", RuntimeWarning, stacklevel=4)
            self.steps = len(source)

    def epoch(self):
        """The batches of one epoch: ``(x, y, sample_weight or None)`` tuples."""
        if self.is_sequence:
            items = (self.source[i] for i in range(self.steps))
        else:
            iterator = iter(self.source) if self.restarts else self.iterator
            items = itertools.islice(iterator, self.steps) if self.steps else iterator
        for item in items:
            yield unpack(item)

    def end_epoch(self):
        if hasattr(self.source, "on_epoch_end"):
            self.source.on_epoch_end()


def unpack(item):
    """A batch as ``(x, y, sample_weight)``, with a clear error for anything else."""
    if isinstance(item, tuple) and len(item) in (2, 3):
        return item if len(item) == 3 else (item[0], item[1], None)
    if isinstance(item, list) and len(item) in (2, 3):
        return unpack(tuple(item))
    raise ValueError("each batch must be a tuple (x, y) or (x, y, sample_weight); received "
                     f"{type(item).__name__}{' of length ' + str(len(item)) if hasattr(item, '__len__') else ''}")
