"""Training with denormal floats flushed to zero, as TensorFlow's CPU threads train.

Adam's and RMSprop's moments of inputs that are (almost) never active decay geometrically
(Adam's first moment by 0.9 per step) until they fall below float32's smallest normal number,
~1.2e-38. From there every multiply or add that touches them takes the CPU's slow microcode
path, tens of times slower per operation, and the whole update pass slows down with them
(on Fashion-MNIST the border pixels: docs/performance.md). x86-64 CPUs can instead treat such
values as 0, with two bits of the SSE control register (MXCSR): FTZ (a result below the
smallest normal becomes 0) and DAZ (such an input is read as 0). TensorFlow sets both in the
threads that run Keras's training step; npnet sets them for its training steps on both
backends:

* the numba kernels call ``flush_denormals`` and ``restore_float_mode`` around the
  steps of one compiled call (``npnet.kernels.dense.train_batches``);
* the NumPy backend runs its steps inside :func:`denormals_flushed`.

The control register belongs to the thread, so the mode applies only to the thread that
trains (the kernels' parallel loops set it in each of numba's threads for their share of the
work, ``npnet.config.set_num_threads``), and it is put back when the steps end, also when
they end with an exception (Ctrl-C included). Only numbers below ~1.2e-38 (float64:
~2.2e-308) change, to 0. On CPUs other than x86-64 nothing is changed.

The intrinsics and the two small kernels that call them from Python live in
``npnet/kernels/dense.py`` with every other kernel, so that numba's cache of the training
kernels is invalidated when they change (see that module's docstring).
"""

import contextlib

from .dense import enter_flushed_mode, leave_flushed_mode


@contextlib.contextmanager
def denormals_flushed():
    """The calling thread computes with denormals flushed to zero inside this context (NumPy's
    operations included), and in its previous float mode again after it, however it is left.
    Nested uses are fine: each puts back what it found."""
    saved = enter_flushed_mode()
    try:
        yield
    finally:
        leave_flushed_mode(saved)
