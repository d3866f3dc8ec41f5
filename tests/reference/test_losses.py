"""Each loss and dL/do against jax.grad of the independently written JAX loss, at extreme logits,
with a stacked leading dimension, and against complex steps.

Tolerances: float64 against jax, |ours - jax| <= 1e-12 |jax| + 1e-15 (values) and the same for
gradients relative to the largest entry; complex step |Im L(o + ihE)/h - dL/do| <= 1e-14 scale.
Overflow, invalid and divide-by-zero raise; underflow is allowed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference.losses import LOSSES
from verifier.autodiff import batch_loss

NAMES = sorted(LOSSES)
RTOL, ATOL = 1e-12, 1e-15
CS_STEP, CS_RTOL = 1e-30, 1e-14


def strict() -> np.errstate:
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


def targets(name: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    kind = LOSSES[name].target
    if kind == "distribution":
        y = rng.uniform(size=shape)
        return y / y.sum(axis=-1, keepdims=True)
    if kind == "binary":
        y = rng.uniform(size=shape)
        y[..., 0] = 0.0  # hard labels included: the accurate form matters most there
        y[..., 1] = 1.0
        return y
    assert kind == "real"
    return rng.normal(size=shape)


def outputs(scale: float, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    o = rng.normal(size=shape)
    if scale:
        o = scale * np.sign(o)  # every entry at +-scale
    return o


def jax_value_and_grad(name: str, o: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    fn = batch_loss(name)
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(fn)(jnp.asarray(o), jnp.asarray(y))
        return float(value), np.asarray(grad)


SCALES = [0.0, 3.0, 50.0, 1e3, 1e4]


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: f"o=+-{s:g}" if s else "o~N(0,1)")
@pytest.mark.parametrize("name", NAMES)
def test_value_and_gradient_match_jax(name: str, scale: float) -> None:
    rng = np.random.default_rng(7)
    shape = (6, 4)
    o, y = outputs(scale, rng, shape), targets(name, rng, shape)
    truth_value, truth_grad = jax_value_and_grad(name, o, y)
    with strict():
        value, grad = LOSSES[name].value(o, y), LOSSES[name].grad(o, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert grad.shape == o.shape and np.shape(value) == ()
    assert abs(value - truth_value) <= RTOL * abs(truth_value) + ATOL, (value, truth_value)
    np.testing.assert_allclose(grad, truth_grad, rtol=RTOL, atol=ATOL * max(1.0, np.abs(truth_grad).max()))


def test_huber_beyond_the_kink_and_mse_agree_inside_it() -> None:
    o = np.array([[0.3, -0.7, 2.0, -5.0]])
    y = np.zeros_like(o)
    # 1/2 r^2 inside |r| <= 1, |r| - 1/2 outside
    assert LOSSES["huber"].value(o, y) == pytest.approx(0.045 + 0.245 + 1.5 + 4.5, rel=1e-15)
    np.testing.assert_array_equal(LOSSES["huber"].grad(o, y), [[0.3, -0.7, 1.0, -1.0]])
    assert LOSSES["huber"].kinks == (-1.0, 1.0)
    assert LOSSES["sigmoid_binary_cross_entropy"].target == "binary"


def test_binary_cross_entropy_keeps_relative_accuracy_for_confident_correct_logits() -> None:
    o = np.array([[50.0, -50.0, 30.0]])
    y = np.array([[1.0, 0.0, 1.0]])
    expected = 2 * np.log1p(np.exp(-50.0)) + np.log1p(np.exp(-30.0))
    assert LOSSES["sigmoid_binary_cross_entropy"].value(o, y) == pytest.approx(expected, rel=1e-15)
    g = LOSSES["sigmoid_binary_cross_entropy"].grad(o, y)
    np.testing.assert_allclose(g, [[-np.exp(-50.0), np.exp(-50.0), -np.exp(-30.0) / (1 + np.exp(-30.0))]], rtol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_a_leading_stack_dimension_equals_separate_calls(name: str) -> None:
    rng = np.random.default_rng(3)
    o, y = rng.normal(size=(5, 6, 4)), targets(name, rng, (6, 4))
    value, grad = LOSSES[name].value(o, y), LOSSES[name].grad(o, y)
    assert value.shape == (5,) and grad.shape == (5, 6, 4)
    for j in range(5):
        np.testing.assert_allclose(value[j], LOSSES[name].value(o[j], y), rtol=1e-15)
        np.testing.assert_allclose(grad[j], LOSSES[name].grad(o[j], y), rtol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_complex_step_of_every_entry_equals_the_gradient(name: str) -> None:
    rng = np.random.default_rng(11)
    shape = (5, 3)
    o, y = 2.0 * rng.normal(size=shape), targets(name, rng, shape)
    o[0] = [40.0, -40.0, 0.4]  # saturated logits and, for huber, both pieces
    for kink in LOSSES[name].kinks:  # keep every residual away from a kink
        r = o - y
        o = np.where(np.abs(r - kink) < 1e-3, o + 0.1, o)
    # one stacked call: entry j of the stack perturbs entry j of o by ih
    basis = np.eye(o.size).reshape(o.size, *shape)
    with strict():
        stacked = LOSSES[name].value(o + 1j * CS_STEP * basis, y)
        grad = LOSSES[name].grad(o, y)
    cs = (np.imag(stacked) / CS_STEP).reshape(shape)
    np.testing.assert_allclose(cs, grad, rtol=CS_RTOL, atol=1e-16 * np.abs(grad).max())
