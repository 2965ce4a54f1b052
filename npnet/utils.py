"""Random seeding and small helpers shared by the library."""

import random

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed every source of randomness npnet uses: initial weights, shuffling and dropout.

    After ``set_random_seed(s)`` the same code produces the same History, weights and
    predictions, as ``keras.utils.set_random_seed`` promises. Python's ``random`` and NumPy's
    legacy global generator are seeded too, for user code that relies on them.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; received {seed!r}")
    global _rng
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def rng():
    """The generator npnet draws from (weights, shuffles, dropout masks)."""
    return _rng


def format_shape(shape):
    """``(None, 28, 28)`` style text for a shape tuple."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
