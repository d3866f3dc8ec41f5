"""erf and erfc for real and complex-step arguments (numpy has neither; scipy is not a dependency).

The real part comes from math.erf / math.erfc, applied elementwise: both are accurate to a few
ulp over the whole real line, erfc keeping full relative accuracy in its tail (erfc(27) ~ 5e-319).

A complex argument z = x + it is only ever a real point nudged by a complex step, so |t| is tiny.
The imaginary direction is then handled by the Taylor series of erf about the real point x,

    erf(x + it) = erf(x) + 2/sqrt(pi) e^(-x^2) sum_{n>=1} (-1)^(n-1) H_(n-1)(x) (it)^n / n!,

with H the physicists' Hermite polynomials (d^n/dx^n e^(-x^2) = (-1)^n H_n(x) e^(-x^2)), and
erfc(z) = 1 - erf(z) takes the same series with the opposite sign. erf is entire, so the series
converges for every t; _TERMS terms with |t| <= _MAX_IMAG leave a truncation error below 1e-25
relative to the leading term (the n-th term scales as (2|x| + 2 sqrt(n))^n |t|^n / n!, and
e^(-x^2) is zero to double precision once |x| > 27.3, where x is clamped before the Hermite
recursion). The first-order term, i t 2/sqrt(pi) e^(-x^2), is exactly what the complex-step
derivative reads; the higher terms keep the real part exact for the t that are not negligible.
A larger imaginary part raises ValueError instead of returning a wrong value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray

_TERMS = 12
_MAX_IMAG = 1e-3
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

_erf_real = np.frompyfunc(math.erf, 1, 1)
_erfc_real = np.frompyfunc(math.erfc, 1, 1)


def _taylor_tail(x: Array, t: Array) -> Array:
    """erf(x + it) - erf(x) for real arrays x, t (float64), as a complex128 array."""
    xc = np.clip(x, -30.0, 30.0)
    with np.errstate(under="ignore"):  # e^(-x^2) underflows to 0 for |x| > 27.3: the right answer
        weight = _TWO_OVER_SQRT_PI * np.exp(-xc * xc)
    it = 1j * t
    h_prev, h = np.zeros_like(xc), np.ones_like(xc)  # H_(n-2), H_(n-1), starting at H_(-1) = 0, H_0 = 1
    power, factorial = it, 1.0
    tail = np.zeros(np.broadcast_shapes(x.shape, t.shape), dtype=np.complex128)
    for n in range(1, _TERMS + 1):
        factorial *= n
        tail += (-1) ** (n - 1) * h * power / factorial
        h_prev, h = h, 2.0 * xc * h - 2.0 * (n - 1) * h_prev  # H_n = 2x H_(n-1) - 2(n-1) H_(n-2)
        power = power * it
    return weight * tail


def _evaluate(z: Array, real_fn: Callable[..., object], sign: float) -> Array:
    z = np.asarray(z)
    if z.dtype.kind not in "fciu":
        raise TypeError(f"erf/erfc: expected a numeric array, found dtype {z.dtype}")
    x = np.real(z).astype(np.float64)
    value = np.asarray(real_fn(x), dtype=np.float64)
    if z.dtype.kind != "c":
        return value.astype(z.dtype if z.dtype.kind == "f" else np.float64)
    t = np.imag(z).astype(np.float64)
    too_large = np.abs(t) > _MAX_IMAG
    if np.any(too_large):
        raise ValueError(
            f"erf/erfc: imaginary part {float(t[too_large].flat[0])!r} is too large; this erf serves "
            f"complex-step derivatives and needs |Im z| <= {_MAX_IMAG}"
        )
    return (value + sign * _taylor_tail(x, t)).astype(z.dtype)


def erf(z: Array) -> Array:
    """erf(z) = 2/sqrt(pi) int_0^z e^(-s^2) ds, elementwise; z real or a complex step off the real line."""
    return _evaluate(z, _erf_real, 1.0)


def erfc(z: Array) -> Array:
    """erfc(z) = 1 - erf(z), accurate in its tail; z real or a complex step off the real line."""
    return _evaluate(z, _erfc_real, -1.0)
