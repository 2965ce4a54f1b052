"""Keras 3's weights layout in HDF5, read and written with h5py.

The layout (``model.weights.h5`` inside a ``.keras`` file, and ``*.weights.h5`` files)::

    layers/<key>/vars/0, 1, ...     one group per layer; <key> is the Keras class name in
                                    snake case, numbered in layer order (dense, dense_1, ...)
    optimizer/vars/0                iterations (int64 scalar)
    optimizer/vars/1                learning rate (float32 scalar)
    optimizer/vars/2...             the slot arrays, in the order of ``OptimizerEntry.layout``
    vars                            the model's own (none for a Sequential)

Every dataset is checked before it is read: a plain dataset in this file (no link, external
file or virtual source), of a float type, of exactly the shape the architecture expects, and
backed by as many bytes as it declares (so a tiny file cannot decompress into gigabytes).
"""

import io

import numpy as np

from . import keras_config as kc, limits
from .errors import FileTooLarge
from .keras_architecture import numbered_keys
from .restore import Stored, StoredOptimizer, checked_iterations

#: A compressed dataset may expand at most this much (zeros compress far better; bounded anyway).
_MAX_COMPRESSION_RATIO = 1000


def layer_keys(layers):
    return numbered_keys([kc.LAYERS[type(layer)].keras_class if type(layer) in kc.LAYERS
                          else type(layer).__name__ for layer in layers])


# --------------------------------------------------------------------------- writing


def to_bytes(model, include_optimizer=True):
    """The bytes of a Keras weights file for ``model``."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        write(h5, model, include_optimizer)
    return buffer.getvalue()


def write(h5, model, include_optimizer=True):
    layers_group = h5.create_group("layers")
    for key, layer in zip(layer_keys(model._layers), model._layers):
        group = layers_group.create_group(key).create_group("vars")
        group.attrs["name"] = layer.name
        for i, array in enumerate(layer.params.values()):
            group.create_dataset(str(i), data=array)
    h5.create_group("vars").attrs["name"] = model.name
    if include_optimizer and model.compiled:
        _write_optimizer(h5.create_group("optimizer").create_group("vars"), model)


def _write_optimizer(group, model):
    """Keras builds a compiled model's optimizer when it loads it, so the slots are always
    written: zeros (a fresh optimizer) when npnet's has taken no step yet."""
    optimizer = model.optimizer
    entry = kc.OPTIMIZERS[type(optimizer)]
    group.attrs["name"] = entry.keras_class.lower()
    group.create_dataset("0", data=np.int64(optimizer.iterations))
    group.create_dataset("1", data=np.float32(optimizer.learning_rate))
    params = model.trainable_weights
    state = optimizer.state or {slot: [np.zeros_like(p) for p in params] for slot in optimizer.slots}
    for i, (slot, j) in enumerate(slot_order(optimizer, len(params)), start=2):
        group.create_dataset(str(i), data=state[slot][j])


def slot_order(optimizer, n_params):
    """``[(slot, parameter index), ...]`` in the order Keras stores them."""
    slots = tuple(optimizer.slots)
    if kc.OPTIMIZERS[type(optimizer)].layout == "interleaved":
        return [(slot, j) for j in range(n_params) for slot in slots]
    return [(slot, j) for slot in slots for j in range(n_params)]


# --------------------------------------------------------------------------- reading


def stored_object(group, path, what):
    """The object at the slash ``path`` below ``group``, or None if nothing is there. Every
    link on the way must be a hard link in this file: a soft or external link on a group
    would make npnet read another part of the file, or another file."""
    import h5py

    node = group
    for name in (part for part in path.split("/") if part):
        if not isinstance(node, h5py.Group):
            raise ValueError(f"{what}: {name!r} is below an array; expected a group")
        link = node.get(name, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{what}: {name!r} on its path is a link ({type(link).__name__}); npnet reads "
                             "only groups and arrays stored in the file itself")
        node = node[name]
    return node


def stored_group(group, path, what):
    """:func:`stored_object` that must be a group when present."""
    import h5py

    node = stored_object(group, path, what)
    if node is not None and not isinstance(node, h5py.Group):
        raise ValueError(f"{what} is an array; expected a group")
    return node


def checked_dataset(group, name, shape, path, what):
    """``Stored(what, array)`` of ``group[name]`` (a slash path), after checking it is safe
    and of ``shape``."""
    import h5py

    dataset = stored_object(group, name, what)
    if dataset is None:
        raise ValueError(f"{what} is missing")
    if not isinstance(dataset, h5py.Dataset) or dataset.is_virtual or dataset.external:
        raise ValueError(f"{what} is not an array stored in the file itself")
    if tuple(dataset.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(dataset.shape)}; the architecture expects {tuple(shape)}")
    if dataset.dtype.kind not in "fiu" or dataset.dtype.itemsize > 8:
        raise ValueError(f"{what} has dtype {dataset.dtype}; expected a float array")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if dataset.compression is None and stored < nbytes or nbytes > stored * _MAX_COMPRESSION_RATIO + 2**20:
        raise FileTooLarge(path, f"{what} declares {nbytes:,} bytes but the file stores {stored:,} for it")
    return Stored(what, dataset[()])


def read_layer_weights(h5, keys, expected, path):
    """``[[Stored per parameter] per layer]`` from ``layers/<key>/vars``, shapes checked first."""
    layers_group = stored_group(h5, "layers", "layers")
    if layers_group is None:
        raise ValueError("the weights file has no 'layers' group; it is not a Keras 3 weights file")
    counts = {key: _count(layers_group, key) for key in layers_group}
    unused = {key for key, count in counts.items() if count > 0} - set(keys)
    if unused:
        raise ValueError(f"the file has weights for layers {sorted(unused)} that the model does not have")
    result = []
    for key, shapes in zip(keys, expected):
        stored = counts.get(key, 0)
        if stored != len(shapes):
            raise ValueError(f"layer {key!r} has {stored} weight arrays in the file; the model "
                             f"expects {len(shapes)}")
        group = layers_group[key]["vars"] if shapes else None  # both checked by _count
        result.append([checked_dataset(group, str(i), shape, path, f"layers/{key}/vars/{i}")
                       for i, shape in enumerate(shapes.values())])
    return result


def _count(layers_group, key):
    vars_group = stored_group(layers_group, f"{key}/vars", f"layers/{key}/vars")
    return len(vars_group) if vars_group is not None else 0


def read_optimizer(h5, optimizer, param_shapes, path):
    """``StoredOptimizer(iterations, {slot: [Stored per parameter]} or None)`` from
    ``optimizer/vars``, or None when the file has no optimizer.

    ``slots`` None: the file's optimizer never took a step (Keras then stores only the
    iteration count and the learning rate).
    """
    group = stored_group(h5, "optimizer/vars", "optimizer/vars")
    if group is None:
        return None
    order = slot_order(optimizer, len(param_shapes))
    if len(group) not in (2, 2 + len(order)):
        raise ValueError(f"the optimizer in the file has {len(group)} variables; npnet's "
                         f"{type(optimizer).__name__} for this model has {2 + len(order)} (or 2 before its first step)")
    what = "optimizer/vars/0 (iterations)"
    iterations = checked_iterations(checked_dataset(group, "0", (), path, what).array, what)
    if len(group) == 2:
        return StoredOptimizer(iterations, None)
    slots = {slot: [None] * len(param_shapes) for slot in optimizer.slots}
    for i, (slot, j) in enumerate(order, start=2):
        slots[slot][j] = checked_dataset(group, str(i), param_shapes[j], path, f"optimizer/vars/{i} ({slot})")
    return StoredOptimizer(iterations, slots)


def open_bytes(data):
    import h5py
    return h5py.File(io.BytesIO(data), "r")


def member_limit(expected, n_slot_arrays=3):
    """Bytes a weights member may hold: the arrays (float64 at most), optimizer slots and headers."""
    from .shapes import byte_count
    return byte_count(expected, 8) * (1 + n_slot_arrays) + limits.CONTAINER_OVERHEAD_BYTES
