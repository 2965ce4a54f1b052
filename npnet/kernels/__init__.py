"""Compiled (numba) versions of the arithmetic in :mod:`npnet.functional`.

Importing this package imports numba (and so requires it); :mod:`npnet.backends.numba_backend`
turns a missing numba into a clear error at ``compile``. See :mod:`npnet.kernels.dense` for
the kernels and :mod:`npnet.kernels._compile` for the compile options and the disk cache.
"""

from . import dense
from ._compile import KERNEL_OPTIONS, caching_enabled

__all__ = ["dense", "KERNEL_OPTIONS", "caching_enabled"]
