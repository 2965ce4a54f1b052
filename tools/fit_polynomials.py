"""Derive the polynomial coefficients of the vectorisable exp, log1p and erf in
``npnet/kernels/dense.py`` (the block "elementwise math in plain arithmetic").

Method: interpolation at the Chebyshev nodes of each interval, computed with mpmath at
50 digits, then rewritten in the monomial basis of ``t - center`` and rounded to float64.
Chebyshev interpolation is within a small factor of the best (minimax) polynomial of the
same degree (Trefethen, *Approximation Theory and Approximation Practice*, ch. 16), which is
all the accuracy needed here; the degrees were chosen so that the truncation error is below
1/16 of a float64 ulp of the result (the script prints it). Run it to check or regenerate:

    python tools/fit_polynomials.py

It needs mpmath (a SymPy dependency); npnet itself does not.
"""

import textwrap

import mpmath as mp

mp.mp.dps = 50


def chebyshev_fit(f, a, b, degree, center):
    """Coefficients c_j of sum c_j (t - center)^j interpolating f at the Chebyshev nodes of [a, b]."""
    a, b = mp.mpf(a), mp.mpf(b)
    nodes = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / (degree + 1))
             for k in range(degree + 1)]
    vandermonde = mp.matrix([[(t - center) ** j for j in range(degree + 1)] for t in nodes])
    return list(mp.lu_solve(vandermonde, mp.matrix([f(t) for t in nodes])))


def horner(coefficients, u):
    total = mp.mpf(0)
    for c in reversed(coefficients):
        total = total * u + c
    return total


def worst_error(f, coefficients, a, b, center, scale, points=1000):
    """max |p(t) - f(t)| / scale(t) over a grid of [a, b], p with the float64-rounded coefficients."""
    rounded = [mp.mpf(float(c)) for c in coefficients]
    a, b = mp.mpf(a), mp.mpf(b)
    grid = (a + (b - a) * k / points for k in range(points + 1))
    return max(abs(horner(rounded, t - center) - f(t)) / scale(t) for t in grid)


def exp_remainder(r):
    """(exp(r) - 1 - r) / r², by its series near 0 (the quotient cancels there)."""
    if abs(r) < mp.mpf(10) ** -10:
        return mp.mpf(1) / 2 + r / 6 + r * r / 24
    return (mp.exp(r) - 1 - r) / r ** 2


def log_remainder(w):
    """T(w) / w with 2 atanh(s) = 2s + s T(s²), w = s²: T(w) = sum_k 2 w^k / (2k + 1)."""
    if w < mp.mpf(10) ** -20:
        return mp.mpf(2) / 3 + 2 * w / 5
    s = mp.sqrt(w)
    return (2 * mp.atanh(s) - 2 * s) / (s * w)


TWO_OVER_ROOT_PI = 2 / mp.sqrt(mp.pi)


def erf_over_x(v):
    """erf(x) / x as a function of v = x²."""
    if v == 0:
        return TWO_OVER_ROOT_PI
    x = mp.sqrt(v)
    return mp.erf(x) / x


def erf_small_remainder(v):
    """(erf(x) / x - 2/√π) / v, v = x²: erf(x) = x (2/√π + v R(v)), the constant split in two floats."""
    if v < mp.mpf(10) ** -20:
        return TWO_OVER_ROOT_PI * (-mp.mpf(1) / 3 + v / 10)
    return (erf_over_x(v) - TWO_OVER_ROOT_PI) / v


def scaled_erfc(x):
    """exp(x²) erfc(x)."""
    return mp.erfc(x) * mp.exp(x * x)


HALF_LN2 = mp.log(2) / 2
S_MAX = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)  # s = f / (2 + f) for 1 + f in [1/√2, √2)
ERF_SMALL = mp.mpf("0.875")  # erf as x·P(x²) below, as 1 - exp(-x²) Q(x) from here
ERF_PIECES = [(mp.mpf("0.875"), mp.mpf("1.75")), (mp.mpf("1.75"), mp.mpf(3)), (mp.mpf(3), mp.mpf(6))]
ULP_OF_HALF_TO_ONE = mp.mpf(2) ** -53
ULP_OF_ONE = mp.mpf(2) ** -52

#: name -> (function, interval, degree, center, error scale)
FITS = {
    "EXP_REMAINDER": (exp_remainder, (-HALF_LN2, HALF_LN2), 10, 0, lambda r: ULP_OF_ONE * exp_remainder(r)),
    "LOG_REMAINDER": (log_remainder, (0, S_MAX ** 2), 7, 0, lambda w: ULP_OF_ONE * log_remainder(w)),
    "ERF_SMALL": (erf_small_remainder, (0, ERF_SMALL ** 2), 10, 0,
                  lambda v: mp.mpf(2) ** -53 * erf_over_x(v) / max(v, mp.mpf(2) ** -60)),
}
for number, (low, high) in enumerate(ERF_PIECES):
    FITS[f"ERFC_{number}"] = (scaled_erfc, (low, high), 15, (low + high) / 2,
                              lambda x: ULP_OF_HALF_TO_ONE * mp.exp(x * x))


def main():
    two_over_root_pi = float(TWO_OVER_ROOT_PI)
    print(f"TWO_OVER_ROOT_PI = {two_over_root_pi!r}, {float(TWO_OVER_ROOT_PI - two_over_root_pi)!r}  # 2/√π, high + low")
    ln2_high = mp.floor(mp.log(2) * 2 ** 32) / 2 ** 32  # 32 bits: k · LN2_HIGH is exact for |k| < 2^21
    print(f"LN2_HIGH, LN2_LOW = {float(ln2_high)!r}, {float(mp.log(2) - ln2_high)!r}")
    for name, (f, (a, b), degree, center, scale) in FITS.items():
        coefficients = chebyshev_fit(f, a, b, degree, center)
        error = worst_error(f, coefficients, a, b, center, scale)
        print(f"# {name}: degree {degree} on [{mp.nstr(a, 8)}, {mp.nstr(b, 8)}] around {mp.nstr(center, 8)}, "
              f"truncation error {mp.nstr(error, 2)} ulp")
        numbers = ", ".join(repr(float(c)) for c in coefficients)
        print(textwrap.fill(f"{name} = ({numbers})", width=108, subsequent_indent=" " * (len(name) + 4)))


if __name__ == "__main__":
    main()
