"""How two arrays are compared, ours (npnet) against theirs (tf.keras), and how a mismatch is shown.

Two measures are used throughout the cross-check and the mirror tests:

* ``max_abs_diff(ours, theirs)`` — ``max |ours - theirs|`` over all elements: for quantities
  of a known scale (probabilities in [0, 1], weights after a few small Adam steps).
* ``relative_error(ours, theirs)`` — ``max |ours - theirs| / max(max |theirs|, tiny)``: the
  largest element-wise difference measured against the *largest* magnitude of the reference
  array, not element by element. Gradients have many entries near zero (dead ReLUs, zero
  pixels), where an element-wise ratio would blow up on harmless float32 rounding; scaling by
  the array's largest entry asks "is any difference significant at this array's scale?".
  ``tiny`` (the smallest normal float32) only guards against an all-zero reference.

Nothing here imports TensorFlow.
"""

import numpy as np

#: The smallest normal float32, the floor of the denominator in :func:`relative_error`.
TINY = float(np.finfo(np.float32).tiny)


def _as_arrays(ours, theirs):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise ValueError(f"cannot compare arrays of different shapes: ours {ours.shape}, "
                         f"theirs {theirs.shape}")
    return ours, theirs


def max_abs_diff(ours, theirs):
    """``max |ours - theirs|`` (0.0 for empty arrays); both of one shape, compared in float64."""
    ours, theirs = _as_arrays(ours, theirs)
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - theirs)))


def relative_error(ours, theirs):
    """``max |ours - theirs| / max(max |theirs|, TINY)``: see the module docstring."""
    ours, theirs = _as_arrays(ours, theirs)
    if ours.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(theirs))), TINY)
    return float(np.max(np.abs(ours - theirs))) / scale


def describe_mismatch(ours, theirs, what="values", n_worst=5):
    """A few lines showing the worst elements, ours next to theirs, for a failure message.

    ``ours`` and ``theirs`` are arrays (or scalars) of one shape. Lists the ``n_worst``
    largest absolute differences with their index, plus the two measures above.
    """
    ours_f, theirs_f = _as_arrays(ours, theirs)
    lines = [f"{what}: shape {ours_f.shape}, max|Δ| = {max_abs_diff(ours_f, theirs_f):.3e}, "
             f"relative error = {relative_error(ours_f, theirs_f):.3e} "
             f"(max|theirs| = {np.max(np.abs(theirs_f)) if theirs_f.size else 0.0:.6g})"]
    if ours_f.size:
        diff = np.abs(ours_f - theirs_f).ravel()
        worst = np.argsort(diff)[::-1][:n_worst]
        lines.append(f"  {'index':<16} {'npnet (ours)':>16} {'tf.keras (theirs)':>18} {'|Δ|':>11}")
        for flat in worst:
            index = np.unravel_index(flat, ours_f.shape) if ours_f.ndim else ()
            lines.append(f"  {str(tuple(int(i) for i in index)):<16} {ours_f.ravel()[flat]:>16.9g} "
                         f"{theirs_f.ravel()[flat]:>18.9g} {diff[flat]:>11.3e}")
    return "\n".join(lines)


def assert_close(ours, theirs, *, atol=None, rtol=None, what="values"):
    """Fail with ours-next-to-theirs unless within ``atol`` (max |Δ|) and/or ``rtol`` (relative).

    Shapes must be equal too. ``rtol`` is :func:`relative_error`, not NumPy's element-wise
    tolerance. Returns ``(max_abs_diff, relative_error)`` so callers can log the margin.
    """
    if atol is None and rtol is None:
        raise ValueError("assert_close needs atol, rtol or both")
    ours_shape, theirs_shape = np.shape(ours), np.shape(theirs)
    if ours_shape != theirs_shape:
        raise AssertionError(f"{what}: shapes differ: npnet (ours) {ours_shape}, "
                             f"tf.keras (theirs) {theirs_shape}")
    absolute, relative = max_abs_diff(ours, theirs), relative_error(ours, theirs)
    failures = []
    if atol is not None and not absolute <= atol:
        failures.append(f"max|Δ| {absolute:.3e} > atol {atol:.1e}")
    if rtol is not None and not relative <= rtol:
        failures.append(f"relative error {relative:.3e} > rtol {rtol:.1e}")
    if failures:
        raise AssertionError(f"{what} differ: {'; '.join(failures)}\n"
                             + describe_mismatch(ours, theirs, what))
    return absolute, relative
