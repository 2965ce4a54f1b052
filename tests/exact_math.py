"""Exact values of exp, expm1, log1p and erf for float arguments, by the standard library's decimal
arithmetic carried to 40 significant digits and more (tests/test_kernel_math.py rounds them).
A float converts to a Decimal exactly, so the only error is the 40-digit arithmetic's own.
"""

import decimal
import functools
from decimal import Decimal

DIGITS = 40


def _digits(extra):
    """A decimal context with DIGITS + extra significant digits and room for any float's exponent."""
    return decimal.localcontext(prec=DIGITS + extra, Emin=-999999, Emax=999999)


def _leading_zeros(d):
    return max(0, -d.adjusted()) if d else 0


@functools.lru_cache(maxsize=None)
def _sqrt_pi(digits):
    """sqrt(pi) to ``digits`` significant digits, pi by Machin's formula,
    pi = 16 atan(1/5) - 4 atan(1/239), each arctangent by its series."""
    def arctan_of_inverse(n):
        total, power, k, sign = Decimal(0), 1 / Decimal(n), 1, 1
        while power > Decimal(10) ** -(digits + 5):
            total += sign * power / k
            power, k, sign = power / (n * n), k + 2, -sign
        return total
    with decimal.localcontext(prec=digits):
        return (16 * arctan_of_inverse(5) - 4 * arctan_of_inverse(239)).sqrt()


def exact_exp(x):
    with _digits(0):
        return Decimal(x).exp()


def exact_expm1(x):
    d = Decimal(x)
    with _digits(_leading_zeros(d)):  # exp(x) - 1 cancels as many digits as x has leading zeros
        return d.exp() - 1


def exact_log1p(x):
    d = Decimal(x)
    if d <= -1:
        return Decimal("-Infinity") if d == -1 else Decimal("NaN")
    with _digits(_leading_zeros(d) + 20):  # 1 + x is exact with these digits (x's down to 2^-1074 aside)
        return (1 + d).ln()


def exact_erf(x):
    """2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)); the terms grow to ~e^(x^2) before they
    shrink, so carry that many more digits."""
    d = Decimal(x)
    with _digits(int(float(x) ** 2 / 2.3) + 5):
        term, total, n = d, d, 0
        while term and abs(term) > abs(total) * Decimal(10) ** -(decimal.getcontext().prec + 2):
            n += 1
            term = -term * d * d / n
            total += term / (2 * n + 1)
        return 2 * total / _sqrt_pi(decimal.getcontext().prec)
