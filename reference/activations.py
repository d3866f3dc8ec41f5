"""Activations alpha(a) and their derivatives alpha'(a), side by side.

Every function works elementwise on arrays of any shape, in float32, float64 and complex
(complex input is what a complex-step derivative feeds in). Functions with a kink branch on the
real part, so they stay analytic on each side of it. Conventions at a kink follow jax.nn:
relu'(0) = 0 (jax tests a > 0), leaky_relu'(0) = 1 (jax tests a >= 0), elu'(0) = 1 (both sides).
Every function is stable far beyond |a| = 50 (1e4 and more): exponentials only ever see an
argument with non-positive real part, and no branch np.where discards can overflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reference.special import erfc

Array = np.ndarray
ElementwiseFn = Callable[[Array], Array]


@dataclass(frozen=True)
class Activation:
    """An activation h = f(a) with its derivative df(a) = dh/da.

    `kinks` lists the points where f is not smooth: where f' jumps (relu, leaky_relu), a
    finite-difference stencil that crosses one measures a one-sided mixture, not the derivative;
    where only f'' jumps (elu), it loses its error order (O(step) instead of O(step^2)).
    """

    name: str
    f: ElementwiseFn
    df: ElementwiseFn
    kinks: tuple[float, ...] = ()


def _real(a: Array) -> Array:
    return np.real(a)


# identity: h = a, h' = 1
def identity(a: Array) -> Array:
    return a


def identity_grad(a: Array) -> Array:
    return np.ones_like(a)


# sigmoid: h = 1 / (1 + e^-a) = e^a / (1 + e^a), h' = sigmoid(a) * sigmoid(-a).
# With e = exp(-|a|) (never overflows) the two forms read 1 / (1 + e) for a > 0 and e / (1 + e)
# otherwise; both are the same analytic function, so branching on the real part is exact for
# complex input too. Unlike 1 - sigmoid(a), sigmoid(-a) keeps full relative accuracy in the tail.
def _exp_neg_abs(a: Array) -> tuple[Array, Array]:
    """(Re a > 0, exp(-a) where Re a > 0 else exp(a)): the exponent's real part is <= 0."""
    pos = _real(a) > 0
    return pos, np.exp(np.where(pos, -a, a))


def sigmoid(a: Array) -> Array:
    pos, e = _exp_neg_abs(a)
    return np.where(pos, 1.0, e) / (1.0 + e)


def sigmoid_grad(a: Array) -> Array:
    return sigmoid(a) * sigmoid(-a)


# tanh: h' = 1 - tanh(a)^2 = sech(a)^2 = 4 e / (1 + e)^2 with e = e^(-2|a|).
# The last form keeps full relative accuracy where tanh(a) rounds to +-1 (1 - t^2 would give 0),
# and, e being e^(-2a) or e^(2a) by the side of Re a = 0, is analytic on each side.
def tanh(a: Array) -> Array:
    return np.tanh(a)


def tanh_grad(a: Array) -> Array:
    _, e = _exp_neg_abs(a)
    e2 = e * e  # e^(-2|a|), without forming 2a (which overflows at |a| > 9e307)
    return 4.0 * e2 / ((1.0 + e2) * (1.0 + e2))


# relu: h = max(a, 0); h' = 1 for a > 0, 0 otherwise (0 at the kink, as jax.nn.relu)
def relu(a: Array) -> Array:
    return np.where(_real(a) > 0, a, np.zeros_like(a))


def relu_grad(a: Array) -> Array:
    return np.where(_real(a) > 0, np.ones_like(a), np.zeros_like(a))


# leaky_relu: h = a for a >= 0, 0.01 a otherwise; h' = 1 for a >= 0, 0.01 otherwise
# (1 at the kink, as jax.nn.leaky_relu, which tests a >= 0)
LEAKY_SLOPE = 0.01


def leaky_relu(a: Array) -> Array:
    return np.where(_real(a) >= 0, a, LEAKY_SLOPE * a)


def leaky_relu_grad(a: Array) -> Array:
    return np.where(_real(a) >= 0, np.ones_like(a), np.full_like(a, LEAKY_SLOPE))


# elu (alpha = 1): h = a for a > 0, e^a - 1 otherwise; h' = 1 for a > 0, e^a otherwise.
# h' is continuous (both sides give 1 at 0) but h'' jumps from 1 to 0, so a central difference
# across 0 has error O(step) instead of O(step^2): 0 is listed as a kink for that reason.
# The exponential only sees min(a, 0), so a = 1e4 does not overflow in the unused branch.
def elu(a: Array) -> Array:
    pos = _real(a) > 0
    return np.where(pos, a, np.expm1(np.where(pos, 0.0, a)))


def elu_grad(a: Array) -> Array:
    pos = _real(a) > 0
    return np.where(pos, 1.0, np.exp(np.where(pos, 0.0, a)))


# softplus: h = log(1 + e^a) = max(a, 0) + log(1 + e^-|a|); h' = sigmoid(a).
# Written per side of Re a = 0 (a + log1p(e^-a), log1p(e^a)): one analytic function on both.
def softplus(a: Array) -> Array:
    pos, e = _exp_neg_abs(a)
    return np.where(pos, a, 0.0) + np.log1p(e)


def softplus_grad(a: Array) -> Array:
    return sigmoid(a)


# gelu (exact): h = a Phi(a) = a/2 erfc(-a/sqrt2); h' = Phi(a) + a phi(a), phi(a) = e^(-a^2/2)/sqrt(2 pi).
# erfc (not 1 + erf) keeps full relative accuracy for large negative a, as jax.nn.gelu does. erfc
# works in double precision anyway, so float32 input is promoted first: rounding a/sqrt2 to float32
# would cost ~2x^2 ulp in erfc's tail (30 ulp at a = -10); the result is cast back.
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _double(a: Array) -> Array:
    return np.asarray(a, dtype=np.result_type(a, np.float64))


def gelu(a: Array) -> Array:
    a64 = _double(a)
    return (0.5 * a64 * erfc(-_SQRT_HALF * a64)).astype(np.result_type(a), copy=False)


def gelu_grad(a: Array) -> Array:
    a64 = _double(a)
    re = np.real(a64)
    a_c = np.where(np.abs(re) > 40.0, np.sign(re) * 40.0, a64)  # e^(-800) is 0: no a^2 overflow
    d = 0.5 * erfc(-_SQRT_HALF * a64) + a64 * _INV_SQRT_2PI * np.exp(-0.5 * a_c * a_c)
    return d.astype(np.result_type(a), copy=False)


# gelu_tanh: h = a/2 (1 + tanh(u)) = a sigmoid(2u), u = c (a + k a^3), c = sqrt(2/pi), k = 0.044715;
# h' = sigmoid(2u) + a 2 sigmoid(2u) sigmoid(-2u) c (1 + 3 k a^2)   (d sigmoid(2u)/du = 2 s(2u) s(-2u)).
# sigmoid(2u) instead of (1 + tanh(u))/2 avoids the cancellation for negative a (at a = -7, 1 + tanh(u)
# ~ 7e-16 loses every digit). Where |Re a| > 30, |u| > 900 and sigmoid(-2|u|) is 0 to double precision,
# so a is clamped there before the cube: a = 1e4 (or 1e13 in float32) cannot overflow.
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def _gelu_tanh_u(a: Array) -> tuple[Array, Array]:
    """(u, clamped a)"""
    re = _real(a)
    a_c = np.where(np.abs(re) > 30.0, np.sign(re) * 30.0, a)
    return _GELU_C * (a_c + _GELU_K * a_c * a_c * a_c), a_c


def gelu_tanh(a: Array) -> Array:
    u, _ = _gelu_tanh_u(a)
    return a * sigmoid(2.0 * u)


def gelu_tanh_grad(a: Array) -> Array:
    u, a_c = _gelu_tanh_u(a)
    s_pos, s_neg = sigmoid(2.0 * u), sigmoid(-2.0 * u)
    return s_pos + a * (2.0 * s_pos * s_neg * _GELU_C * (1.0 + 3.0 * _GELU_K * a_c * a_c))


# silu: h = a sigmoid(a); h' = sigmoid(a) (1 + a sigmoid(-a))
def silu(a: Array) -> Array:
    return a * sigmoid(a)


def silu_grad(a: Array) -> Array:
    return sigmoid(a) * (1.0 + a * sigmoid(-a))


# sin: h' = cos(a)
def sin(a: Array) -> Array:
    return np.sin(a)


def sin_grad(a: Array) -> Array:
    return np.cos(a)


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("identity", identity, identity_grad),
        Activation("sigmoid", sigmoid, sigmoid_grad),
        Activation("tanh", tanh, tanh_grad),
        Activation("relu", relu, relu_grad, kinks=(0.0,)),
        Activation("leaky_relu", leaky_relu, leaky_relu_grad, kinks=(0.0,)),
        Activation("elu", elu, elu_grad, kinks=(0.0,)),
        Activation("softplus", softplus, softplus_grad),
        Activation("gelu", gelu, gelu_grad),
        Activation("gelu_tanh", gelu_tanh, gelu_tanh_grad),
        Activation("silu", silu, silu_grad),
        Activation("sin", sin, sin_grad),
    )
}


def get_activation(name: str) -> Activation:
    """The activation called `name`; KeyError lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
