"""A one-line kernel compiled through ``npnet.kernels._compile.kernel`` in a fresh process: the
probe the cache tests (tests/test_numba_cache.py, tests/test_precompiled.py) run to see where
numba looked, what it found and what npnet warned."""

import os
import textwrap

PROBE_MODULE = textwrap.dedent("""
    from npnet.kernels._compile import kernel

    @kernel
    def add(a, b):
        return a + b
""")


def probe_script(warnings_about):
    """The child's code: call the kernel, print its cache report as JSON, keeping the warnings
    whose message contains ``warnings_about``."""
    return textwrap.dedent(f"""
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import probe_kernels
            result = probe_kernels.add(2, 3)
        stats = probe_kernels.add.stats
        print(json.dumps({{
            "result": result,
            "cache_path": stats.cache_path,
            "hits": sum(stats.cache_hits.values()),
            "misses": sum(stats.cache_misses.values()),
            "warnings": [str(w.message) for w in caught if {warnings_about!r} in str(w.message)],
        }}))
    """)


def write_probe_module(directory):
    """``directory/probe_kernels.py``; ``directory`` goes on the child's PYTHONPATH."""
    directory.mkdir()
    (directory / "probe_kernels.py").write_text(PROBE_MODULE)


def clean_environment():
    """os.environ without the settings that would steer numba's or npnet's caches."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("NUMBA_", "NPNET_", "PYTHON", "XDG_"))}
