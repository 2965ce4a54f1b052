"""The kernels' own exp, log1p and erf (npnet/kernels/dense.py, "Elementwise math"), in the
loops that use them: against the exact value (tests/exact_math.py), NumPy and SciPy, over dense
sweeps and at the edges (0, -0, tiny and subnormal arguments, overflow and underflow, ±inf, NaN).
"""

from decimal import Decimal

import numba
import numpy as np
import pytest
import scipy.special

from exact_math import exact_erf, exact_exp, exact_expm1, exact_log1p
from npnet.kernels import dense as K
from npnet.kernels._compile import KERNEL_OPTIONS


@numba.njit(**KERNEL_OPTIONS)
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = K.exp64(x[i])


@numba.njit(**KERNEL_OPTIONS)
def _expm1_all(x, out):
    for i in range(x.size):
        out[i] = K.expm1_64(x[i])


@numba.njit(**KERNEL_OPTIONS)
def _log1p_all(x, out):
    for i in range(x.size):
        out[i] = K.log1p64(x[i])


@numba.njit(**KERNEL_OPTIONS)
def _erf_all(x, out):
    for i in range(x.size):
        out[i] = K.erf64(x[i])


@numba.njit(**KERNEL_OPTIONS)
def _float32_all(x, out, which):
    """erf_of, exp_of, log1p_of or expm1_of on float32: what the float32 activations call."""
    for i in range(x.size):
        if which == 0:
            out[i] = K.erf_of(x[i])
        elif which == 1:
            out[i] = K.exp_of(x[i])
        elif which == 2:
            out[i] = K.log1p_of(x[i])
        else:
            out[i] = K.expm1_of(x[i])


LOOPS = {"exp": (_exp_all, exact_exp, np.exp), "expm1": (_expm1_all, exact_expm1, np.expm1),
         "log1p": (_log1p_all, exact_log1p, np.log1p), "erf": (_erf_all, exact_erf, scipy.special.erf)}


def run(name, x):
    out = np.empty_like(x)
    LOOPS[name][0](x, out)
    return out


def ulp_errors(name, x, ours):
    """|ours - exact| in ulps of the exact value (of the smallest subnormal below the normals)."""
    exact_function = LOOPS[name][1]
    errors = []
    for xi, oi in zip(x, ours):
        exact = exact_function(float(xi))
        ulp = np.spacing(abs(float(exact)))
        errors.append(float(abs(Decimal(float(oi)) - exact) / Decimal(ulp)))
    return np.array(errors)


def sweep(name):
    rng = np.random.default_rng(7)
    if name == "exp":
        parts = [rng.uniform(-745.1, 709.78, 4000), rng.uniform(-2, 2, 3000), rng.uniform(-0.35, 0.35, 1000),
                 rng.uniform(-745.1, -708.4, 1000)]  # the last: subnormal results
    elif name == "expm1":
        parts = [rng.uniform(-50, 709.78, 3000), rng.uniform(-2, 2, 3000), rng.uniform(-0.35, 0.35, 1000),
                 10.0 ** rng.uniform(-300, 0, 1000), -(10.0 ** rng.uniform(-300, 0, 1000))]
    elif name == "log1p":
        parts = [rng.uniform(-1, 1, 3000), 10.0 ** rng.uniform(-300, 307, 3000), -1 + 10.0 ** rng.uniform(-16, 0, 1000),
                 -(10.0 ** rng.uniform(-300, 0, 1000)), rng.uniform(0, 1, 1000)]
    else:
        parts = [rng.uniform(-6.5, 6.5, 5000), rng.uniform(-1, 1, 2000), rng.uniform(0.8, 3.1, 1000),
                 10.0 ** rng.uniform(-300, 0, 1000)]
    # and evenly spaced points, so that every piece of each polynomial is visited
    low, high = {"exp": (-745.1, 709.78), "expm1": (-45.0, 709.78), "log1p": (-0.999, 4.0), "erf": (-6.5, 6.5)}[name]
    return np.concatenate(parts + [np.linspace(low, high, 3001)])


@pytest.mark.parametrize("name", ["exp", "expm1", "log1p", "erf"])
def test_within_one_ulp_of_the_exact_value(name):
    x = sweep(name)
    errors = ulp_errors(name, x, run(name, x))
    worst = int(np.argmax(errors))
    assert errors[worst] < 1.0, f"{name}({x[worst]!r}): {errors[worst]:.3f} ulp"


@pytest.mark.parametrize("name", ["exp", "expm1", "log1p", "erf"])
def test_close_to_numpy_and_scipy(name):
    """The library function numba used to call (or SciPy's erf) agrees to the last bit or two
    (to one step of the smallest subnormal for exp's subnormal results)."""
    x = sweep(name)
    reference = LOOPS[name][2](x)
    np.testing.assert_allclose(run(name, x), reference, rtol=2 * np.finfo(np.float64).eps, atol=SUBNORMAL)


TINY = np.finfo(np.float64).tiny
SUBNORMAL = 5e-324

#: argument -> exact result, the edges of each function (a NaN result: np.nan)
EDGES = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (SUBNORMAL, 1.0), (-SUBNORMAL, 1.0), (1e-300, 1.0), (709.78, np.exp(709.78)),
            (709.79, np.inf), (710.0, np.inf), (1e300, np.inf), (np.inf, np.inf), (-708.0, np.exp(-708.0)),
            (-740.0, np.exp(-740.0)), (-745.1, np.exp(-745.1)), (-745.2, 0.0), (-1e300, 0.0), (-np.inf, 0.0),
            (1.0, np.e), (np.nan, np.nan)],
    "expm1": [(0.0, 0.0), (-0.0, -0.0), (SUBNORMAL, SUBNORMAL), (-SUBNORMAL, -SUBNORMAL), (TINY, TINY),
              (1e-17, 1e-17), (-1e-17, -1e-17), (709.78, np.expm1(709.78)), (709.79, np.inf), (1e300, np.inf),
              (np.inf, np.inf), (-38.0, np.expm1(-38.0)), (-40.0, -1.0), (-1e300, -1.0), (-np.inf, -1.0),
              (1.0, np.e - 1), (np.log(2), 1.0), (np.nan, np.nan)],
    "log1p": [(0.0, 0.0), (-0.0, -0.0), (SUBNORMAL, SUBNORMAL), (-SUBNORMAL, -SUBNORMAL), (TINY, TINY),
              (1e-17, 1e-17), (-1.0, -np.inf), (-1.0 - 2 ** -52, np.nan), (-2.0, np.nan), (-np.inf, np.nan),
              (np.finfo(np.float64).max, np.log1p(np.finfo(np.float64).max)), (np.inf, np.inf), (np.nan, np.nan),
              (-1 + 2 ** -53, np.log1p(-1 + 2 ** -53)), (np.e - 1, 1.0)],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (SUBNORMAL, scipy.special.erf(SUBNORMAL)),
            (-SUBNORMAL, scipy.special.erf(-SUBNORMAL)), (TINY, scipy.special.erf(TINY)), (6.0, 1.0), (-6.0, -1.0),
            (5.9, 1.0), (27.0, 1.0), (1e300, 1.0), (-1e300, -1.0), (np.inf, 1.0), (-np.inf, -1.0), (np.nan, np.nan)],
}


@pytest.mark.parametrize("name", ["exp", "expm1", "log1p", "erf"])
def test_edges(name):
    """Signed zeros keep their sign where the function does, overflow gives inf, underflow 0,
    NaN gives NaN; finite results within one ulp (also subnormal ones)."""
    x = np.array([argument for argument, _ in EDGES[name]])
    expected = np.array([result for _, result in EDGES[name]])
    ours = run(name, x)
    for xi, oi, ei in zip(x, ours, expected):
        if np.isnan(ei) or np.isinf(ei) or ei == 0:
            assert oi == ei or (np.isnan(oi) and np.isnan(ei)), f"{name}({xi!r}) = {oi!r}, expected {ei!r}"
            assert ei != 0 or np.signbit(oi) == np.signbit(ei), f"{name}({xi!r}) = {oi!r}, expected {ei!r}"
        else:
            assert abs(oi - ei) <= np.spacing(abs(ei)), f"{name}({xi!r}) = {oi!r}, expected {ei!r}"


def every_float32(low, high, step):
    """Every ``step``-th float32 from low to high (bit patterns are ordered like the numbers)."""
    def non_negative(limit):
        return np.arange(0, np.float32(limit).view(np.int32), step, dtype=np.int32).view(np.float32)

    if low >= 0:
        return non_negative(high)[non_negative(high) >= low]
    return np.concatenate([-non_negative(-low)[:0:-1], non_negative(high)])


def ulps_apart_float32(a, b):
    """How many float32 values lie between a and b (finite, same sign or zero)."""
    as_int = lambda v: np.where(v < 0, -(v.view(np.int32) & 0x7FFFFFFF), v.view(np.int32)).astype(np.int64)
    return np.abs(as_int(a) - as_int(b))


def test_float32_erf_matches_scipys_float32_erf():
    """SciPy's float32 erf computes in float64 and rounds; so does erf_of. Both float64 values
    are within an ulp of erf, so the float32 results could differ only where erf lies within
    ~2^-29 of a midpoint between two float32; over all 2.2e9 float32 in [-6, 6] none does
    (docs/performance.md). Here every 101st of them, and beyond."""
    x = every_float32(-6.5, 6.5, 101)
    ours = np.empty_like(x)
    _float32_all(x, ours, 0)
    theirs = scipy.special.erf(x)
    assert theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("which, name", [(1, "exp"), (2, "log1p"), (3, "expm1")])
def test_float32_exp_expm1_and_log1p_are_the_rounded_float64_values(which, name):
    """exp_of, expm1_of and log1p_of of a float32: the float64 function rounded once, so within half an
    ulp of the exact value except where it lies within ~2^-29 of a float32 midpoint."""
    low, high = {"exp": (-104.0, 89.0), "log1p": (-0.999, 1e30), "expm1": (-20.0, 89.0)}[name]
    x = every_float32(low, high, 211)
    ours = np.empty_like(x)
    _float32_all(x, ours, which)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = LOOPS[name][2](x.astype(np.float64)).astype(np.float32)
        apart = ulps_apart_float32(ours, rounded)
    assert apart.max() <= 1
    assert np.count_nonzero(apart) <= 1e-5 * x.size, np.count_nonzero(apart)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45], dtype=np.float32)
    ours = np.empty_like(edges)
    _float32_all(edges, ours, which)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal(ours, LOOPS[name][2](edges.astype(np.float64)).astype(np.float32))
