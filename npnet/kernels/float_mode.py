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

* the numba kernels call :func:`flush_denormals` and :func:`restore_float_mode` around the
  steps of one compiled call (``npnet.kernels.dense.train_batches``);
* the NumPy backend runs its steps inside :func:`denormals_flushed`.

The control register belongs to the thread, so the mode applies only to the thread that
trains (the kernels' parallel loops set it in each of numba's threads for their share of
the work, ``npnet.config.set_num_threads``), and it is put back when the steps end, also when they end with an exception (Ctrl-C
included). Only numbers below ~1.2e-38 (float64: ~2.2e-308) change, to 0. On CPUs other than
x86-64 nothing is changed.
"""

import contextlib
import platform

import llvmlite.ir as llvm_ir
from numba import types
from numba.extending import intrinsic

from ._compile import kernel

#: MXCSR bits: FTZ (results below the smallest normal float become 0) and DAZ (such inputs
#: are read as 0).
_FLUSH_DENORMALS = 0x8040
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_call(builder, name, slot):
    pointer = builder.bitcast(slot, llvm_ir.IntType(8).as_pointer())
    function_type = llvm_ir.FunctionType(llvm_ir.VoidType(), [llvm_ir.IntType(8).as_pointer()])
    builder.call(builder.module.declare_intrinsic(name, fnty=function_type), [pointer])


@intrinsic
def flush_denormals(typingctx):
    """Set FTZ and DAZ in this thread's SSE control register; return its previous value
    (0, changing nothing, on CPUs other than x86-64)."""
    def codegen(context, builder, signature, args):
        i32 = llvm_ir.IntType(32)
        if not _X86_64:
            return llvm_ir.Constant(llvm_ir.IntType(64), 0)
        slot = builder.alloca(i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        saved = builder.load(slot)
        builder.store(builder.or_(saved, llvm_ir.Constant(i32, _FLUSH_DENORMALS)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return builder.zext(saved, llvm_ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def restore_float_mode(typingctx, saved):
    """Put back the SSE control register :func:`flush_denormals` returned."""
    def codegen(context, builder, signature, args):
        if _X86_64:
            slot = builder.alloca(llvm_ir.IntType(32))
            builder.store(builder.trunc(args[0], llvm_ir.IntType(32)), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.none(types.int64), codegen


@kernel
def enter_flushed_mode():
    """:func:`flush_denormals`, callable from Python: the calling thread's previous mode."""
    return flush_denormals()


@kernel
def leave_flushed_mode(saved):
    """:func:`restore_float_mode`, callable from Python."""
    restore_float_mode(saved)


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
