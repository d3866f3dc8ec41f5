"""erf and erfc against mpmath (400 digits) on the real line and a complex step off it.

Tolerances: the real part within 1e-15 relative (math.erf/erfc see the exact float64 input); the
imaginary part, which the complex-step derivative reads, within 1e-14 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.special import erf, erfc

mp = pytest.importorskip("mpmath")

XS = np.concatenate([np.linspace(-6.0, 6.0, 49), [0.0, 1e-300, -1e-300, 1e-8, 26.0, -26.0, 10.0]])


def _mp_value(fn_name: str, x: float, t: float) -> complex:
    with mp.workdps(400):  # erf(26 + 1e-30 i) has an imaginary part near 1e-324: many digits cancel
        return complex(getattr(mp, fn_name)(mp.mpc(x, t)))


@pytest.mark.parametrize("fn, name", [(erf, "erf"), (erfc, "erfc")], ids=["erf", "erfc"])
@pytest.mark.parametrize("t", [0.0, 1e-30, 1e-8, 1e-3], ids=lambda t: f"imag={t:g}")
def test_matches_mpmath_on_and_just_off_the_real_line(fn: object, name: str, t: float) -> None:
    z = XS + 1j * t if t else XS
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ours = np.asarray(fn(z))  # type: ignore[operator]
    for x, value in zip(XS, ours.ravel(), strict=True):
        truth = _mp_value(name, float(x), t)
        assert abs(value.real - truth.real) <= 1e-15 * abs(truth.real), (name, x, t, value, truth)
        if t:
            assert abs(value.imag - truth.imag) <= 1e-14 * abs(truth.imag) + 1e-320, (name, x, t, value, truth)


def test_real_input_keeps_its_dtype_and_equals_math_erf() -> None:
    x = np.array([-2.0, 0.5, 3.0])
    assert erf(x.astype(np.float32)).dtype == np.float32
    assert erfc(x.astype(np.complex64)).dtype == np.complex64
    assert erf(x).tolist() == [math.erf(v) for v in x]
    assert erfc(x).tolist() == [math.erfc(v) for v in x]


def test_complex_step_reads_the_derivative_two_over_sqrt_pi_exp_minus_x_squared() -> None:
    x = np.linspace(-5, 5, 41)
    derivative = 2 / math.sqrt(math.pi) * np.exp(-x * x)
    np.testing.assert_allclose(np.imag(erf(x + 1e-30j)) / 1e-30, derivative, rtol=1e-15)
    np.testing.assert_allclose(np.imag(erfc(x + 1e-30j)) / 1e-30, -derivative, rtol=1e-15)


def test_a_large_imaginary_part_is_refused_rather_than_answered_wrongly() -> None:
    with pytest.raises(ValueError, match=r"imaginary part 0\.5 is too large.*\|Im z\| <= 0\.001"):
        erf(np.array([1.0 + 0.5j]))
