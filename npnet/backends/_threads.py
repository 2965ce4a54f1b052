"""Keeping BLAS on one thread while a training step runs.

At batch 32 a training step is a few small matrix products separated by short loops. With
OpenBLAS's default of one thread per core, each product pays a fork/join, and when the
machine has any other work the helper thread is often descheduled while the main thread
waits for it, which makes epochs many times slower (docs/performance.md). Both backends
therefore train and evaluate with BLAS on one thread; ``predict``, whose products are large
enough to gain from threads, keeps BLAS's default.
"""

import os
import threading


class SingleThreadedBlas:
    """Context manager: a BLAS library runs on one thread inside it.

    ``linked_by`` names the package whose BLAS is limited: ``"numpy"`` (what ``@`` in the
    NumPy backend calls) or ``"scipy"`` (what ``np.dot`` inside numba kernels calls; on a
    wheel install SciPy bundles its own OpenBLAS, distinct from NumPy's). Uses threadpoolctl,
    the library scikit-learn relies on for this; without it, does nothing. Re-entrant and
    thread-safe: the previous setting is restored when the last user leaves.
    """

    def __init__(self, linked_by):
        if linked_by not in ("numpy", "scipy"):
            raise ValueError(f"linked_by must be 'numpy' or 'scipy'; received {linked_by!r}")
        self.linked_by = linked_by
        self._libraries = None
        self._saved = []
        self._users = 0
        self._lock = threading.Lock()

    def _find_libraries(self):
        try:
            import threadpoolctl
        except ImportError:
            return []
        if self.linked_by == "scipy":
            import scipy as package
            import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS before looking)
        else:
            import numpy as package
        package_dir = os.path.dirname(os.path.abspath(package.__file__))
        # Wheels keep their bundled libraries in e.g. site-packages/numpy.libs/.
        prefixes = (package_dir + os.sep, package_dir + ".libs" + os.sep)
        blas = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers
                if lib.user_api == "blas"]
        own = [lib for lib in blas if os.path.abspath(lib.filepath).startswith(prefixes)]
        return own or blas

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                if self._libraries is None:
                    self._libraries = self._find_libraries()
                self._saved = [(lib, lib.get_num_threads()) for lib in self._libraries]
                for lib, threads in self._saved:
                    if threads != 1:
                        lib.set_num_threads(1)
            self._users += 1
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in self._saved:
                    if threads != 1:
                        lib.set_num_threads(threads)
                self._saved = []
        return False
