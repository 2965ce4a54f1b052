"""Putting a file's arrays into a model: all of it checked first, then assigned in one step.

Every loader reads a file's weights, optimizer slots and step count, and hands them here.
Each value is converted to the float type the model computes in and refused, naming the
variable, unless it is finite there (``1e300`` in a float64 file is ``inf`` in float32);
slots the update takes a square root of (Adam's ``v``, RMSprop's ``velocity``) must be
``>= 0``; the step count must be a whole number from 0 to the int64 maximum. Only then is
anything assigned, and :func:`assign` does it inside :class:`npnet.utils.interrupts_deferred`,
so a Ctrl-C leaves the model entirely as it was or entirely as the file has it.

A file whose optimizer never took a step (Keras then writes only the step count and the
learning rate) restores exactly that: the count from the file and no slots, as after
``compile`` (the slots are made as zeros at the first step), never the moments of an earlier
training beside the file's weights. Keras 3 itself skips the optimizer with a warning when
the number of variables differs, which keeps moments of one training beside weights of
another; npnet takes the optimizer state of the file as a whole, in both directions.
"""

import collections
import copy

import numpy as np

from .. import utils
from . import keras_config as kc

#: ``what`` names the variable in the file for errors, ``array`` is its stored value.
Stored = collections.namedtuple("Stored", "what array")

#: ``iterations``: the checked step count; ``slots``: ``{slot: [Stored per trainable
#: parameter]}``, or None when the file's optimizer never took a step.
StoredOptimizer = collections.namedtuple("StoredOptimizer", "iterations slots")

_INT64_MAX = int(np.iinfo(np.int64).max)


def checked_values(stored, dtype, non_negative=False):
    """``stored.array`` converted to ``dtype``; ValueError naming ``stored.what`` unless every
    value is finite in ``dtype`` (and, with ``non_negative``, at least 0)."""
    array = np.asarray(stored.array)
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise ValueError(f"{stored.what} has dtype {array.dtype}; expected numbers that convert to {np.dtype(dtype)}")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    bad = ~np.isfinite(converted)
    if bad.any():
        _refuse(stored, array, bad, f"inf or NaN in {np.dtype(dtype)}", "finite numbers")
    if non_negative and (converted < 0).any():
        _refuse(stored, array, converted < 0, "negative", "values >= 0 (a running mean of squares)")
    return converted


def _refuse(stored, array, bad, kind, expected):
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(f"{stored.what} holds {int(bad.sum()):,} value(s) that are {kind} (the first, at "
                     f"index {first}, is {_short(array[first])}); expected {expected}")


def checked_iterations(value, what):
    """``value`` as a Python int; ValueError unless it is a whole number from 0 to the int64
    maximum (an HDF5 scalar of any number type, or a JSON number)."""
    number = np.asarray(value)
    if number.shape != () or number.dtype.kind not in "iuf" or isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number; received {_short(value)}")
    if number.dtype.kind == "f" and not (np.isfinite(number) and float(number).is_integer()):
        raise ValueError(f"{what} must be a whole number of steps; received {_short(value)}")
    count = int(number)
    if not 0 <= count <= _INT64_MAX:
        raise ValueError(f"{what} must be a count from 0 to {_INT64_MAX:,} (int64); received {_short(value)}")
    return count


def _short(value):
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def checked_weights(model, stored):
    """``[Stored]`` in ``get_weights()`` order -> arrays in each weight's own float type."""
    return [checked_values(s, p.dtype) for p, s in zip(model.weights, stored)]


def prepared_optimizer(optimizer, params, stored):
    """``(iterations, {slot: [array]} or None)`` ready to assign: fresh slot arrays holding the
    checked values, or None (an optimizer that has not stepped: its slots are made as zeros at
    its first step) when ``stored.slots`` is None. ``build`` runs on a copy of the optimizer,
    so its hyperparameters are checked in ``params``' type and the optimizer is not touched."""
    if stored.slots is None:
        return stored.iterations, None
    scratch = copy.copy(optimizer)
    scratch.build(params)
    entry = kc.OPTIMIZERS.get(type(optimizer))
    non_negative = entry.non_negative if entry is not None else ()
    for slot, targets in scratch.state.items():
        for target, value in zip(targets, stored.slots[slot]):
            if np.shape(value.array) != target.shape:  # no broadcasting
                raise ValueError(f"{value.what} has shape {np.shape(value.array)}; expected {target.shape}")
            np.copyto(target, checked_values(value, target.dtype, slot in non_negative))
    return stored.iterations, scratch.state


def assign(model, weights, optimizer_state=None):
    """Set ``model``'s weights and, given ``(iterations, state)`` from :func:`prepared_optimizer`,
    its optimizer, as one step a Ctrl-C cannot split. ``set_weights`` goes first: it checks
    every array before changing any, so if it refuses, nothing has changed."""
    with utils.interrupts_deferred():
        model.set_weights(weights)
        if optimizer_state is not None:
            restore_optimizer(model.optimizer, optimizer_state)


def restore_optimizer(optimizer, optimizer_state):
    """Assign a prepared ``(iterations, state)``; neither assignment can fail."""
    iterations, state = optimizer_state
    optimizer.state = state
    optimizer.iterations = iterations
