"""Ctrl-C while numba compiles a kernel (a cold compile takes tens of seconds, when users
press it) is raised once the compile is complete: the dispatcher keeps its compiled code and
the next call works, instead of the interrupt being lost in an LLVM callback or leaving
numba's "no compiled object yet"."""

import signal

import numba
import pytest
from numba.core import event

from npnet.kernels._compile import _compiles_whole


class _CtrlCWhileCompiling(event.Listener):
    """Sends SIGINT to this process as soon as a compile starts."""

    def on_start(self, ev):
        signal.raise_signal(signal.SIGINT)

    def on_end(self, ev):
        pass


@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """Python's own SIGINT handler, as in an interactive session: a test runner started in
    the background (``cmd &`` in a script) inherits SIGINT ignored, and then no Ctrl-C arrives."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _fresh_dispatcher():
    return numba.njit(lambda x: x + 1.5)  # a lambda: never in any cache, always compiled


def test_a_ctrl_c_during_a_compile_is_raised_when_the_compile_is_complete():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    dispatcher = _fresh_dispatcher()
    _compiles_whole(dispatcher)
    with event.install_listener("numba:compile", _CtrlCWhileCompiling()), pytest.raises(KeyboardInterrupt):
        dispatcher(1.0)
    assert len(dispatcher.signatures) == 1  # compiled whole
    assert dispatcher(1.0) == 2.5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back


def test_without_it_the_interrupt_breaks_into_numbas_compile():
    """What the wrapper prevents: raised inside numba, the interrupt leaves no compiled code."""
    dispatcher = _fresh_dispatcher()
    with event.install_listener("numba:compile", _CtrlCWhileCompiling()), pytest.raises(KeyboardInterrupt):
        dispatcher(1.0)
    assert dispatcher.signatures == []


def test_every_npnet_kernel_compiles_whole():
    """Every kernel but the few inlined into their callers (compiled within the callers'
    compile, itself deferred)."""
    from npnet.kernels import dense

    kernels = [value for value in vars(dense).values() if isinstance(value, numba.core.registry.CPUDispatcher)
               and value.targetoptions.get("inline") != "always"]
    assert len(kernels) > 50
    assert all(getattr(kernel.compile, "__wrapped__", None) is not None for kernel in kernels)
