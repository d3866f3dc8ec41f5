"""Activations alpha(a) and their derivatives alpha'(a), side by side.

Every function works elementwise on arrays of any shape, in float32, float64 and complex
(complex input is what a complex-step derivative feeds in). Functions with a kink branch on the
real part, so they stay analytic on each side of it. Conventions at a kink follow the usual
autodiff choice: relu'(0) = 0, leaky_relu'(0) = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Array = np.ndarray
ElementwiseFn = Callable[[Array], Array]


@dataclass(frozen=True)
class Activation:
    """An activation h = f(a) with its derivative df(a) = dh/da.

    `kinks` lists the points where f is not differentiable; a finite-difference stencil that
    crosses one of them measures a one-sided mixture, not the derivative.
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


# sigmoid: h = 1 / (1 + e^-a), written as (1 + tanh(a/2)) / 2, which never overflows
def sigmoid(a: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def sigmoid_grad(a: Array) -> Array:
    s = sigmoid(a)
    return s * (1.0 - s)


# tanh: h' = 1 - tanh(a)^2
def tanh(a: Array) -> Array:
    return np.tanh(a)


def tanh_grad(a: Array) -> Array:
    t = np.tanh(a)
    return 1.0 - t * t


# relu: h = max(a, 0); h' = 1 for a > 0, 0 otherwise (0 at the kink)
def relu(a: Array) -> Array:
    return np.where(_real(a) > 0, a, np.zeros_like(a))


def relu_grad(a: Array) -> Array:
    return np.where(_real(a) > 0, np.ones_like(a), np.zeros_like(a))


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("identity", identity, identity_grad),
        Activation("sigmoid", sigmoid, sigmoid_grad),
        Activation("tanh", tanh, tanh_grad),
        Activation("relu", relu, relu_grad, kinks=(0.0,)),
    )
}


def get_activation(name: str) -> Activation:
    """The activation called `name`; KeyError lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
