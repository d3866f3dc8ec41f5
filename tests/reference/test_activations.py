"""Each activation and its derivative against jax.nn and jax.grad, and against complex steps.

Tolerances (stated once, used below):
- float64 against jax (x64): |ours - jax| <= 1e-12 |jax| + 1e-13. The absolute part is there
  because jax's own float64 formulas cancel in the tails (jax.grad(sigmoid)(50) = s(1 - s) = 0,
  jax.grad(elu)(-50) = expm1(a) + 1 = 0, and jax.grad of gelu_tanh at a = -7.3 is off by 3.4e-14:
  1 - tanh(u)^2 cancels and is then multiplied by a c (1 + 3k a^2) ~ 24), where ours keep full
  relative accuracy. That relative accuracy is checked without jax twice: against mpmath in the
  tails (relative 1e-14 times max(1, condition number |a g'/g|), no absolute part) and against
  complex steps everywhere.
- float32: our float32 result against jax's float64 value at the same (float32-rounded) point,
  |ours - truth| <= 32 ulp(float32) |truth| + 1e-7 (32 * 2^-23 = 3.8e-6; the absolute part covers
  values near a zero crossing, e.g. silu'(-1.28) = 0, whose relative error is unbounded).
- complex step: |Im f(a + ih)/h - f'(a)| <= 1e-14 |f'(a)| + 1e-16 with h = 1e-30.
Every evaluation runs with numpy overflow, invalid and divide-by-zero raising; underflow to 0 or
a subnormal is the correctly rounded answer in the tails and stays allowed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference.activations import ACTIVATIONS
from verifier.autodiff import _activations

NAMES = sorted(ACTIVATIONS)
KINKED = {name for name, act in ACTIVATIONS.items() if act.kinks}
SMOOTH = sorted(set(NAMES) - KINKED)

RTOL64, ATOL64 = 1e-12, 1e-13
RTOL32, ATOL32 = 32 * 2.0**-23, 1e-7
CS_STEP, CS_RTOL, CS_ATOL = 1e-30, 1e-14, 1e-16

EXTREMES = [0.0, -0.0, 1e-300, -1e-300, 50.0, -50.0, 1e3, -1e3, 1e4, -1e4]
POINTS = np.array(
    EXTREMES
    + list(np.linspace(-10.0, 10.0, 161))
    + list(np.random.default_rng(20261204).normal(0.0, 4.0, size=200))
    + [-0.7518, -1.2785, 1e-8, -1e-8, 30.0, -30.0]  # near zeros of gelu' and silu'
)

def strict() -> np.errstate:
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


def jax_value_and_grad(name: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """jax.nn's function and jax.grad of it, vmapped, in float64."""
    fn = _activations()[name]
    with jax.enable_x64(True):
        a = jnp.asarray(points, dtype=jnp.float64)
        return np.asarray(jax.vmap(fn)(a)), np.asarray(jax.vmap(jax.grad(fn))(a))


def assert_close(
    ours: np.ndarray, truth: np.ndarray, rtol: float, atol: float, what: str, points: np.ndarray = POINTS
) -> None:
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values at {points[~np.isfinite(ours)]}"
    err = np.abs(ours.astype(np.float64) - truth)
    bound = rtol * np.abs(truth) + atol
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} points out of tolerance (rtol {rtol:.1e}, atol {atol:.1e}); worst at "
        f"a = {points[np.argmax(err - bound)]!r}: ours {ours.flat[np.argmax(err - bound)]!r}, "
        f"truth {truth.flat[np.argmax(err - bound)]!r}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_float64_value_and_derivative_match_jax_nn(name: str) -> None:
    act = ACTIVATIONS[name]
    truth_f, truth_df = jax_value_and_grad(name, POINTS)
    with strict():
        f, df = act.f(POINTS), act.df(POINTS)
    assert f.dtype == np.float64 and df.dtype == np.float64
    assert_close(f, truth_f, RTOL64, ATOL64, f"{name}(a)")
    assert_close(df, truth_df, RTOL64, ATOL64, f"{name}'(a)")


@pytest.mark.parametrize("name", NAMES)
def test_float32_value_and_derivative_match_the_float64_truth(name: str) -> None:
    act = ACTIVATIONS[name]
    points32 = POINTS.astype(np.float32)
    truth_f, truth_df = jax_value_and_grad(name, points32.astype(np.float64))
    with strict():
        f, df = act.f(points32), act.df(points32)
    assert f.dtype == np.float32 and df.dtype == np.float32
    assert_close(f, truth_f, RTOL32, ATOL32, f"{name}(a) float32")
    assert_close(df, truth_df, RTOL32, ATOL32, f"{name}'(a) float32")


@pytest.mark.parametrize("name", NAMES)
def test_tiny_inputs_keep_full_relative_accuracy(name: str) -> None:
    tiny = np.array([1e-300, -1e-300, 1e-200, -1e-20])
    truth_f, _ = jax_value_and_grad(name, tiny)
    with strict():
        f = ACTIVATIONS[name].f(tiny)
    np.testing.assert_allclose(f, truth_f, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_huge_inputs_give_finite_values_without_warnings(name: str) -> None:
    huge = np.array([1e300, -1e300, np.finfo(np.float64).max, -np.finfo(np.float64).max])
    with strict():
        f, df = ACTIVATIONS[name].f(huge), ACTIVATIONS[name].df(huge)
        cs = ACTIVATIONS[name].f(huge + 1e-30j)
    assert np.isfinite(f).all() and np.isfinite(df).all() and np.isfinite(cs).all()
    truth_f, truth_df = jax_value_and_grad(name, huge)
    finite = np.isfinite(truth_df)  # jax.grad of gelu_tanh is itself nan at 1e300
    np.testing.assert_allclose(f, truth_f, rtol=1e-15, atol=0)
    np.testing.assert_allclose(df[finite], truth_df[finite], rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_at_the_kink_follows_jax(name: str) -> None:
    for kink in ACTIVATIONS[name].kinks or (0.0,):
        at = np.array([kink, -0.0 if kink == 0.0 else kink])
        _, truth_df = jax_value_and_grad(name, at)
        np.testing.assert_array_equal(ACTIVATIONS[name].df(at), truth_df)


def test_kink_conventions_are_the_documented_ones() -> None:
    zero = np.array(0.0)
    assert ACTIVATIONS["relu"].df(zero) == 0.0
    assert ACTIVATIONS["leaky_relu"].df(zero) == 1.0
    assert ACTIVATIONS["elu"].df(zero) == 1.0
    assert ACTIVATIONS["leaky_relu"].f(np.array(-2.0)) == -0.02
    assert {n: a.kinks for n, a in ACTIVATIONS.items() if a.kinks} == {
        "relu": (0.0,),
        "leaky_relu": (0.0,),
        "elu": (0.0,),  # C1 only: f'' jumps, a central difference across 0 is O(step)
    }


@pytest.mark.parametrize("name", SMOOTH)
def test_complex_step_of_a_smooth_activation_equals_its_derivative(name: str) -> None:
    act = ACTIVATIONS[name]
    with strict():
        cs = np.imag(act.f(POINTS + CS_STEP * 1j)) / CS_STEP
        df = act.df(POINTS)
    assert_close(cs, df, CS_RTOL, CS_ATOL, f"complex step of {name}")


@pytest.mark.parametrize("name", sorted(KINKED))
def test_complex_step_of_a_kinked_activation_takes_the_side_of_the_real_part(name: str) -> None:
    act = ACTIVATIONS[name]
    away = POINTS[np.abs(POINTS) > 1e-6]
    with strict():
        cs = np.imag(act.f(away + CS_STEP * 1j)) / CS_STEP
        cs_at_kink = np.imag(act.f(np.array([1e-300, -1e-300]) + CS_STEP * 1j)) / CS_STEP
    assert_close(cs, act.df(away), CS_RTOL, CS_ATOL, f"complex step of {name}", away)
    np.testing.assert_allclose(cs_at_kink, act.df(np.array([1e-300, -1e-300])), rtol=CS_RTOL)


@pytest.mark.parametrize("name", NAMES)
def test_complex64_and_stacked_inputs_keep_dtype_and_shape(name: str) -> None:
    a = np.random.default_rng(1).normal(size=(3, 4, 5))
    act = ACTIVATIONS[name]
    assert act.f(a.astype(np.complex64)).dtype == np.complex64
    assert act.df(a.astype(np.complex128)).dtype == np.complex128
    assert act.f(a).shape == a.shape and act.df(a).shape == a.shape


def _mp_functions() -> dict[str, object]:
    mp = pytest.importorskip("mpmath")
    c, k = mp.sqrt(2 / mp.pi), mp.mpf("0.044715")
    sig = lambda a: 1 / (1 + mp.exp(-a))  # noqa: E731
    return {
        "identity": lambda a: a,
        "sigmoid": sig,
        "tanh": mp.tanh,
        "relu": lambda a: a if a > 0 else 0 * a,
        "leaky_relu": lambda a: a if a >= 0 else a / 100,
        "elu": lambda a: a if a > 0 else mp.expm1(a),
        "softplus": lambda a: mp.log1p(mp.exp(a)),
        "gelu": lambda a: a / 2 * mp.erfc(-a / mp.sqrt(2)),
        "gelu_tanh": lambda a: a / 2 * (1 + mp.tanh(c * (a + k * a**3))),
        "silu": lambda a: a * sig(a),
        "sin": mp.sin,
    }


TAILS = np.array([50.0, -50.0, 30.0, -30.0, -7.324132290537464, -20.0, 20.0, -12.5, 3.0, -0.5])


@pytest.mark.parametrize("name", NAMES)
def test_tails_keep_full_relative_accuracy_against_mpmath(name: str) -> None:
    mp = pytest.importorskip("mpmath")
    fn = _mp_functions()[name]
    with mp.workdps(400):  # 1 + tanh(u) at a = -20 is 1e-261: far below 60 digits
        a = [mp.mpf(x) for x in TAILS]
        f0 = [fn(x) for x in a]  # type: ignore[operator]
        f1 = [mp.diff(fn, x) for x in a]
        f2 = [mp.diff(fn, x, 2) for x in a]
        truth_f, truth_df = np.array([float(v) for v in f0]), np.array([float(v) for v in f1])
        # condition numbers |a g'(a) / g(a)| of g = f and g = f': the relative error any float64
        # evaluation inherits from rounding an intermediate (a/sqrt2 in gelu, u in gelu_tanh)
        cond_f = np.array([float(abs(x * d / v)) if v else 1.0 for x, v, d in zip(a, f0, f1, strict=True)])
        cond_df = np.array([float(abs(x * d / v)) if v else 1.0 for x, v, d in zip(a, f1, f2, strict=True)])
    with strict():
        f, df = ACTIVATIONS[name].f(TAILS), ACTIVATIONS[name].df(TAILS)
    for ours, truth, cond, what in ((f, truth_f, cond_f, "f"), (df, truth_df, cond_df, "f'")):
        bound = 1e-14 * np.maximum(1.0, cond)
        err = np.abs(ours - truth) / np.where(truth == 0, 1.0, np.abs(truth))
        assert np.all(err <= bound), f"{name} {what}: relative errors {err} exceed {bound} at {TAILS}"
