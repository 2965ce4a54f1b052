"""npnet's build step: the usual package build, plus its kernels compiled ahead of time.

Everything about the package is in pyproject.toml; this file only adds one thing to setuptools'
``build_py``: running ``python -m npnet.kernels.precompile`` so that the installed package
carries the machine code of the common models' kernels (``npnet/kernels/_precompiled``) and a
first ``fit`` does not spend ~10 s compiling. In an editable install (``pip install -e .``,
what ``./dev`` does) the package is imported from this source tree, so the directory is made
here, in ``npnet/kernels/_precompiled`` (ignored by git). If the step fails (no numba for this
platform, an odd CPU, ...) the install still succeeds with a warning, and kernels are compiled
on first use as they would be without it. ``NPNET_BUILD_PRECOMPILE=0`` skips it.
"""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


class build_py_with_kernels(build_py):  # noqa: N801 - setuptools' command naming
    """``build_py``, then the kernels of the common models compiled into the package."""

    def run(self):
        super().run()
        if os.environ.get("NPNET_BUILD_PRECOMPILE", "1").strip() == "0":
            self.announce("npnet: NPNET_BUILD_PRECOMPILE=0, kernels will compile on first use", level=2)
            return
        base = ROOT if self.editable_mode else self.build_lib
        target = os.path.abspath(os.path.join(base, "npnet", "kernels", "_precompiled"))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        try:
            subprocess.run([sys.executable, "-m", "npnet.kernels.precompile", "--into", target],
                           cwd=ROOT, env=env, check=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as error:
            message = (f"WARNING: npnet could not precompile its kernels ({error}); the install "
                       f"goes on and kernels are compiled on first use instead (~10 s once).")
            print(message, file=sys.stderr)
            self.warn(message)


setup(cmdclass={"build_py": build_py_with_kernels})
