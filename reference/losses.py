"""Losses L(o, y) and their derivatives dL/do, side by side.

o (the network output) and y (the targets) have shape (..., batch, n_out); a leading `...`
stacks several parameter sets, which the finite-difference oracle uses to evaluate many
perturbed networks in one call. Every loss is the mean over the batch of a per-example loss, so
its derivative carries the factor 1/batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reference.activations import sigmoid, softplus

Array = np.ndarray
LossFn = Callable[[Array, Array], Array]


@dataclass(frozen=True)
class Loss:
    """A loss with value(o, y) -> shape (...) and grad(o, y) = dL/do, shaped like o."""

    name: str
    value: LossFn
    grad: LossFn
    target: str  # "real": any real targets; "distribution": rows of probabilities; "binary": in [0, 1]
    # Values of the residual o - y where the loss is not smooth. For huber only the second
    # derivative jumps there, so a central difference across one loses its error order.
    kinks: tuple[float, ...] = ()


def _batch(o: Array) -> int:
    return int(o.shape[-2])


# mse: L = mean_b 1/2 sum_j (o_bj - y_bj)^2;  dL/do = (o - y) / batch
def mse(o: Array, y: Array) -> Array:
    d = o - y
    return 0.5 * np.sum(d * d, axis=-1).mean(axis=-1)


def mse_grad(o: Array, y: Array) -> Array:
    return (o - y) / _batch(o)


# softmax cross-entropy on logits: L = mean_b [logsumexp(o_b) - sum_j y_bj o_bj]
# (equal to -sum_j y_bj log softmax(o_b)_j when the row y_b sums to one);
# dL/do = (softmax(o) * sum_j y_j - y) / batch.
# logsumexp subtracts the row maximum (of the real part) so that no exponential overflows.
def _logsumexp(o: Array) -> Array:
    m = np.max(np.real(o), axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(o - m), axis=-1, keepdims=True)))[..., 0]


def softmax(o: Array) -> Array:
    m = np.max(np.real(o), axis=-1, keepdims=True)
    e = np.exp(o - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def softmax_cross_entropy(o: Array, y: Array) -> Array:
    per_example = _logsumexp(o) * np.sum(y, axis=-1) - np.sum(y * o, axis=-1)
    return per_example.mean(axis=-1)


def softmax_cross_entropy_grad(o: Array, y: Array) -> Array:
    return (softmax(o) * np.sum(y, axis=-1, keepdims=True) - y) / _batch(o)


# sigmoid binary cross-entropy on logits, summed over outputs, batch mean:
# L = mean_b sum_j [y softplus(-o) + (1 - y) softplus(o)]  (= -y log s(o) - (1 - y) log(1 - s(o)));
# dL/do = (s(o) - y) / batch = ((1 - y) s(o) - y s(-o)) / batch.
# Both forms are equal to softplus(o) - y o but keep full relative accuracy for y in {0, 1} even
# at |o| = 1e4; softplus and sigmoid branch on Re o and are analytic on each side.
def sigmoid_binary_cross_entropy(o: Array, y: Array) -> Array:
    per_example = np.sum(y * softplus(-o) + (1.0 - y) * softplus(o), axis=-1)
    return per_example.mean(axis=-1)


def sigmoid_binary_cross_entropy_grad(o: Array, y: Array) -> Array:
    return ((1.0 - y) * sigmoid(o) - y * sigmoid(-o)) / _batch(o)


# huber (delta = 1), on r = o - y, summed over outputs, batch mean:
# l(r) = r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) otherwise;  dl/dr = clip(r, -delta, delta).
# Branches on Re r, so each piece stays analytic for complex input. l'' jumps at |r| = delta.
HUBER_DELTA = 1.0


def huber(o: Array, y: Array) -> Array:
    r = o - y
    re = np.real(r)
    linear = HUBER_DELTA * (np.where(re > 0, r, -r) - 0.5 * HUBER_DELTA)
    inside = np.abs(re) <= HUBER_DELTA
    r_in = np.where(inside, r, 0.0)  # squares only |r| <= delta: o = 1e300 cannot overflow
    per_example = np.sum(np.where(inside, 0.5 * r_in * r_in, linear), axis=-1)
    return per_example.mean(axis=-1)


def huber_grad(o: Array, y: Array) -> Array:
    r = o - y
    re = np.real(r)
    clipped = np.where(re > HUBER_DELTA, HUBER_DELTA, np.where(re < -HUBER_DELTA, -HUBER_DELTA, r))
    return clipped / _batch(o)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("mse", mse, mse_grad, target="real"),
        Loss(
            "softmax_cross_entropy",
            softmax_cross_entropy,
            softmax_cross_entropy_grad,
            target="distribution",
        ),
        Loss(
            "sigmoid_binary_cross_entropy",
            sigmoid_binary_cross_entropy,
            sigmoid_binary_cross_entropy_grad,
            target="binary",
        ),
        Loss("huber", huber, huber_grad, target="real", kinks=(-HUBER_DELTA, HUBER_DELTA)),
    )
}


def get_loss(name: str) -> Loss:
    """The loss called `name`; KeyError lists the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
