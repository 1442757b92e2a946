"""Portable floating point: ``exp``, ``log`` and random variates with the same bits everywhere.

numpy computes ``np.exp``, ``np.log`` and powers of float64 arrays with SIMD code chosen
for the CPU it runs on, and the choices (AVX2, AVX-512, NEON, ...) differ in the last bit.
The C library's scalar ``exp`` and ``log`` are not bound to agree across machines either.
A simulator whose latency draws went through them would give one history on one machine
and another on the next, so capsim never lets them near a random draw or a time.

Everything here is built from operations IEEE 754 defines exactly (addition, subtraction,
multiplication, division and square root, correctly rounded, and the exact ``frexp``,
``ldexp``, ``rint``, ``floor`` and comparisons). numpy evaluates each such operation
element by element with one rounding whatever the vector width, and never fuses a
multiply and an add across separate ufunc calls, so the results are bit-identical on
every IEEE 754 machine: x86-64 with or without AVX-512, aarch64, and in any process.
They are accurate to a few units in the last place (the tests check against ``math``),
which is all a latency distribution needs; determinism is the point.

Random variates start from ``Generator.random`` (53 random bits scaled by 2**-53, exact)
and are transformed here: exponential by inversion, normal by Box and Muller (1958)
with a portable sine and cosine of ``2 pi u``, so no variate depends on numpy's ziggurat
tables or the C library.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np

__all__ = [
    "exp",
    "log",
    "power",
    "cos_sin_2pi",
    "uniforms",
    "open_uniforms",
    "exponentials",
    "normals",
    "exponential",
]


def _split_ln2() -> tuple[float, float]:
    """ln 2 as ``hi + lo``: ``hi`` with 42 significant bits (so ``k * hi`` is exact for
    ``|k| < 2**11``) and ``lo`` the correctly rounded rest."""
    with localcontext() as ctx:
        ctx.prec = 60
        ln2 = Decimal(2).ln()
        hi = math.ldexp(int((ln2 * 2**42).to_integral_value()), -42)
        lo = float(ln2 - Decimal(hi))
    return hi, lo


_LN2_HI, _LN2_LO = _split_ln2()
_INV_LN2 = 1.0 / math.log(2.0)  # only picks the reduction's k; any nearby value would do
_SQRT_HALF = math.sqrt(0.5)
_HALF_PI = math.pi / 2
# Taylor coefficients, each 1 / i! correctly rounded (factorials are exact integers).
_EXP_COEFFS = tuple(1.0 / math.factorial(i) for i in range(15))
# log(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1), |s| <= 0.172.
_ATANH_COEFFS = tuple(1.0 / (2 * i + 1) for i in range(14))
_SIN_COEFFS = tuple((-1) ** i / math.factorial(2 * i + 1) for i in range(11))
_COS_COEFFS = tuple((-1) ** i / math.factorial(2 * i) for i in range(11))
# Beyond these, exp is 0 or infinite in float64.
_EXP_MIN, _EXP_MAX = -746.0, 710.0


def _horner(coeffs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """sum(coeffs[i] * x**i), one rounding per operation."""
    out = np.full(x.shape, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * x + c
    return out


def exp(x) -> np.ndarray:
    """``e ** x`` elementwise, identical on every machine (0 and ``inf`` past the range)."""
    x = np.asarray(x, dtype=np.float64)
    clipped = np.minimum(np.maximum(np.where(np.isnan(x), 0.0, x), _EXP_MIN), _EXP_MAX)
    k = np.rint(clipped * _INV_LN2)
    r = (clipped - k * _LN2_HI) - k * _LN2_LO  # |r| <= 0.35
    p = _horner(_EXP_COEFFS, r)
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(p, k.astype(np.int64))
    return np.where(np.isnan(x), np.nan, out)


def log(x) -> np.ndarray:
    """Natural logarithm elementwise for ``x > 0``, identical on every machine.

    ``log(0)`` is ``-inf``, ``log(inf)`` is ``inf``; negative or NaN input gives NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x) & (x > 0)
    safe = np.where(finite, x, 1.0)
    m, e = np.frexp(safe)  # safe = m * 2**e, m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # now in [0.707, 1.414)
    e = (e - low).astype(np.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (f + 2.0)
    series = 2.0 * s * _horner(_ATANH_COEFFS, s * s)
    out = e * _LN2_HI + (e * _LN2_LO + series)
    out = np.where(finite, out, np.nan)
    out = np.where(x == 0, -np.inf, out)
    return np.where(x == np.inf, np.inf, out)


def power(x, y) -> np.ndarray:
    """``x ** y`` for ``x > 0`` as ``exp(y * log(x))``, identical on every machine."""
    return exp(np.asarray(y, dtype=np.float64) * log(x))


def cos_sin_2pi(u) -> tuple[np.ndarray, np.ndarray]:
    """``(cos(2 pi u), sin(2 pi u))`` elementwise, identical on every machine.

    The reduction works on ``u`` itself (quarter turns), where it is exact.
    """
    u = np.asarray(u, dtype=np.float64)
    turns = u - np.floor(u)  # [0, 1)
    quarters = turns * 4.0  # exact
    q = np.floor(quarters)
    t = quarters - q  # [0, 1), exact
    up = t > 0.5
    t = np.where(up, t - 1.0, t)  # [-0.5, 0.5], exact
    q = (q + up) % 4
    a = t * _HALF_PI  # |a| <= pi / 4
    a2 = a * a
    s = a * _horner(_SIN_COEFFS, a2)
    c = _horner(_COS_COEFFS, a2)
    # Rotate by q quarter turns.
    cos = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    sin = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    return cos, sin


# -- random variates -------------------------------------------------------------------------


def uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform draws on [0, 1): ``k / 2**53`` for 53 random bits ``k`` (exact)."""
    return rng.random(n)


def open_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform draws on (0, 1]: one minus :func:`uniforms` (exact), safe for ``log``."""
    return 1.0 - rng.random(n)


def exponentials(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """``n`` exponential draws with mean ``mean``, by inversion: ``-mean * log(U)``."""
    return -mean * log(open_uniforms(rng, n))


def exponential(rng: np.random.Generator, mean: float) -> float:
    """One exponential draw with mean ``mean`` (see :func:`exponentials`)."""
    return float(exponentials(rng, mean, 1)[0])


def normals(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` standard normal draws by Box and Muller: two uniforms give two normals."""
    pairs = (n + 1) // 2
    u1 = open_uniforms(rng, pairs)
    u2 = uniforms(rng, pairs)
    radius = np.sqrt(-2.0 * log(u1))  # sqrt is correctly rounded everywhere
    cos, sin = cos_sin_2pi(u2)
    out = np.empty(2 * pairs)
    out[0::2] = radius * cos
    out[1::2] = radius * sin
    return out[:n]
