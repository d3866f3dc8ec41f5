"""A catalogue of planted backprop bugs: mutants of the reference backward pass.

The backward pass is written here once more, as a sequence of small steps (the loss derivative,
dL/da, the parameter gradients, the Delta sent back along each edge, the accumulation at a unit);
each mutant overrides one step for one layer. `verify-grads selftest` runs every mutant through
the harness and reports whether it was killed and whether the blamed layer was the right one.

Each mutant plants its bug in one layer `at` (chosen from the network) and knows which layer a
correct checker must name as the root cause, or None when the bug cannot show in that network
(for example, a left-out derivative of the identity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reference import Network, Params, Trace, get_activation, get_loss, layer_name
from reference.backprop import layer_input

Array = np.ndarray


class Steps:
    """The reference backward pass, step by step. Mutants subclass it and override one step;
    `self.at` is the layer where the bug is planted."""

    def __init__(self, net: Network, at: int, state: dict[object, Array] | None = None) -> None:
        self.net, self.at = net, at
        self.state = {} if state is None else state  # survives between calls of one backward
        self.deltas: list[Array] = []

    def loss_grad(self, o: Array, y: Array) -> Array:
        return get_loss(self.net.loss).grad(o, y)

    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        return delta * get_activation(self.net.layers[r - 1].activation).df(a)

    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        return d_a.T @ inp

    def grad_b(self, r: int, d_a: Array) -> Array:
        return d_a.sum(axis=0)

    def send_back(self, r: int, d_a: Array, w: Array) -> Array:
        return d_a @ w

    def accumulate(self, unit: int, r: int, current: Array, piece: Array) -> Array:
        return current + piece

    def finish(self, grads: Params, deltas: list[Array]) -> tuple[Params, list[Array]]:
        return grads, deltas

    def __call__(self, params: Params, trace: Trace, y: Array) -> tuple[Params, list[Array]]:
        net = self.net
        deltas = self.deltas = [np.zeros_like(h) for h in trace.h]
        deltas[net.depth] = self.loss_grad(trace.output, y)
        grads: Params = {}
        for r in range(net.depth, 0, -1):
            a = trace.a[r]
            assert a is not None
            d_a = self.d_a(r, deltas[r], a, trace.h[r])
            inp = layer_input(net, trace.h, r)
            grads[layer_name(r)] = {"W": self.grad_w(r, d_a, inp, trace), "b": self.grad_b(r, d_a)}
            d_inp = self.send_back(r, d_a, params[layer_name(r)]["W"])
            col = 0
            for i in net.inputs_of(r):
                w = net.width_of(i)
                deltas[i] = self.accumulate(i, r, deltas[i], d_inp[:, col : col + w])
                col += w
        return self.finish({name: grads[name] for name in net.layer_names}, deltas)


# --- where a bug lands, and where a checker must point -------------------------------------
def middle(net: Network) -> int:
    return (net.depth + 1) // 2


def _act(net: Network, r: int) -> str:
    return net.layers[r - 1].activation


def _top_shared_unit(net: Network, min_consumers: int = 2) -> int | None:
    shared = [i for i in range(1, net.depth + 1) if len(net.consumers(i)) >= min_consumers]
    return max(shared) if shared else None


# --- the mutants ---------------------------------------------------------------------------
class NoActivationDerivative(Steps):
    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        return delta if r == self.at else super().d_a(r, delta, a, h)


class OtherActivationDerivative(Steps):
    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        if r != self.at:
            return super().d_a(r, delta, a, h)
        other = "sigmoid" if _act(self.net, r) == "tanh" else "tanh"
        return delta * get_activation(other).df(a)


class DerivativeAtOutput(Steps):
    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        at = h if r == self.at else a
        return delta * get_activation(_act(self.net, r)).df(at)


class DerivativeTwice(Steps):
    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        d = super().d_a(r, delta, a, h)
        return d * get_activation(_act(self.net, r)).df(a) if r == self.at else d


class TransposedWeight(Steps):
    def send_back(self, r: int, d_a: Array, w: Array) -> Array:
        return d_a @ w.T if r == self.at and w.shape[0] == w.shape[1] else d_a @ w


class SignFlip(Steps):
    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        g = super().grad_w(r, d_a, inp, trace)
        return -g if r == self.at else g


class BatchMeanForgotten(Steps):
    def loss_grad(self, o: Array, y: Array) -> Array:
        return super().loss_grad(o, y) * o.shape[0]


class BatchMeanTwice(Steps):
    def loss_grad(self, o: Array, y: Array) -> Array:
        return super().loss_grad(o, y) / o.shape[0]


class BiasNotSummed(Steps):
    def grad_b(self, r: int, d_a: Array) -> Array:
        return d_a.mean(axis=0) if r == self.at else d_a.sum(axis=0)


class SkipOverwritten(Steps):
    def accumulate(self, unit: int, r: int, current: Array, piece: Array) -> Array:
        return piece


class SkipDropped(Steps):
    def accumulate(self, unit: int, r: int, current: Array, piece: Array) -> Array:
        return current + piece if unit == r - 1 else current


class DeltaSentTwice(Steps):
    def accumulate(self, unit: int, r: int, current: Array, piece: Array) -> Array:
        return current + (2 * piece if r == self.at else piece)


class WrongLayerDelta(Steps):
    """dL/da^r computed from Delta(h^{r+1}), the layer above (off by one), where widths allow."""

    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        if r == self.at and r < self.net.depth and self.deltas[r + 1].shape == delta.shape:
            delta = self.deltas[r + 1]
        return super().d_a(r, delta, a, h)


class WrongLossDerivative(Steps):
    def loss_grad(self, o: Array, y: Array) -> Array:
        other = "softmax_cross_entropy" if self.net.loss == "mse" else "mse"
        return get_loss(other).grad(o, y)


class LossGradientSign(Steps):
    def loss_grad(self, o: Array, y: Array) -> Array:
        return -super().loss_grad(o, y)


class StaleCache(Steps):
    """Returns the layer's weight gradient from the previous call (the previous batch) when
    it has the same shape."""

    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        g = super().grad_w(r, d_a, inp, trace)
        if r != self.at:
            return g
        key = ("W", r, *g.shape)
        previous = self.state.get(key, g)
        self.state[key] = g
        return previous


class TinyScale(Steps):
    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        g = super().grad_w(r, d_a, inp, trace)
        return g * (1 + 1e-6) if r == self.at else g


class SingleWrongEntry(Steps):
    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        g = super().grad_w(r, d_a, inp, trace)
        if r == self.at:
            g = g.copy()
            g[-1, -1] += 1e-3 * np.max(np.abs(g))
        return g


class LastExampleOnly(Steps):
    """dW from the last example of the batch, times the batch size: right only for batch 1."""

    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        if r != self.at:
            return super().grad_w(r, d_a, inp, trace)
        return d_a.shape[0] * np.outer(d_a[-1], inp[-1])


class NegativeSideDropped(Steps):
    """dL/da forced to zero wherever the pre-activation is negative (as if every unit were a ReLU)."""

    def d_a(self, r: int, delta: Array, a: Array, h: Array) -> Array:
        d = super().d_a(r, delta, a, h)
        return np.where(a < 0, 0.0, d) if r == self.at else d


class PreActivationAsInput(Steps):
    """dW^r built from the pre-activations of the layers below instead of their outputs."""

    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        if r != self.at:
            return super().grad_w(r, d_a, inp, trace)
        pre: list[Array] = [trace.h[0] if i == 0 else trace.a[i] for i in self.net.inputs_of(r)]  # type: ignore[misc]
        return d_a.T @ np.concatenate(pre, axis=-1)


class WeightGradTransposed(Steps):
    def grad_w(self, r: int, d_a: Array, inp: Array, trace: Trace) -> Array:
        g = super().grad_w(r, d_a, inp, trace)
        return g.T if r == self.at and g.shape[0] == g.shape[1] else g


@dataclass(frozen=True)
class Mutant:
    """A named planted bug: the steps class, the layer it is planted in, and the root cause a
    checker must name for a given network and batch size (None: the bug cannot show there)."""

    name: str
    description: str
    steps: type[Steps]
    at: Callable[[Network], int]
    expected: Callable[[Network, int, int], int | None]

    def backward(self) -> Callable[[Network, Params, Trace, Array], tuple[Params, list[Array]]]:
        state: dict[object, Array] = {}

        def backward(net: Network, params: Params, trace: Trace, y: Array) -> tuple[Params, list[Array]]:
            return self.steps(net, self.at(net), state)(params, trace, y)

        backward.__name__ = f"backward_{self.name.replace('-', '_')}"
        return backward

    def expected_root(self, net: Network, batch: int) -> str | None:
        unit = self.expected(net, self.at(net), batch)
        return None if unit is None else layer_name(unit)


def _at_layer(net: Network, at: int, batch: int) -> int:
    return at


def _if_act(pred: Callable[[str], bool]) -> Callable[[Network, int, int], int | None]:
    return lambda net, at, batch: at if pred(_act(net, at)) else None


def _output(net: Network, at: int, batch: int) -> int:
    return net.depth


def _output_if_batch(net: Network, at: int, batch: int) -> int | None:
    return net.depth if batch > 1 else None


def _top_input_of(net: Network, at: int, batch: int) -> int | None:
    units = [i for i in net.inputs_of(at) if i >= 1]
    return max(units) if units else None


def _square(net: Network, at: int, batch: int) -> int | None:
    return _top_input_of(net, at, batch) if net.width_of(at) == net.fan_in(at) else None


def _skip_target(net: Network, at: int, batch: int) -> int | None:
    return _top_shared_unit(net)


def _skip_edges(net: Network, at: int, batch: int) -> int | None:
    with_skip = [i for i in range(1, net.depth + 1) if any(r != i + 1 for r in net.consumers(i))]
    return max(with_skip) if with_skip else None


def _lower(net: Network) -> int:
    return max(1, net.depth - 1)


def _upper_half(net: Network) -> int:
    return max(2, middle(net)) if net.depth >= 2 else 1


CURVED = {"sigmoid", "tanh", "softplus", "gelu", "gelu_tanh", "silu", "sin", "elu"}

CATALOGUE: tuple[Mutant, ...] = (
    Mutant(
        "no-activation-derivative",
        "alpha'(a) left out of dL/da in one layer",
        NoActivationDerivative,
        middle,
        _if_act(lambda a: a != "identity"),
    ),
    Mutant(
        "other-activation-derivative",
        "another activation's derivative used (tanh' for sigmoid, ...)",
        OtherActivationDerivative,
        middle,
        _at_layer,
    ),
    Mutant(
        "derivative-at-output",
        "alpha'(h) used instead of alpha'(a)",
        DerivativeAtOutput,
        middle,
        _if_act(lambda a: a in CURVED),
    ),
    Mutant(
        "derivative-twice",
        "alpha'(a) applied twice in one layer",
        DerivativeTwice,
        middle,
        _if_act(lambda a: a != "identity"),
    ),
    Mutant(
        "transposed-weight",
        "W^T instead of W when Delta is sent back (square layers)",
        TransposedWeight,
        _upper_half,
        _square,
    ),
    Mutant("sign-flip", "the sign of one layer's weight gradient flipped", SignFlip, middle, _at_layer),
    Mutant(
        "batch-mean-forgotten",
        "the loss derivative not divided by the batch size",
        BatchMeanForgotten,
        middle,
        _output_if_batch,
    ),
    Mutant(
        "batch-mean-twice",
        "the loss derivative divided by the batch size twice",
        BatchMeanTwice,
        middle,
        _output_if_batch,
    ),
    Mutant(
        "bias-not-summed",
        "the bias gradient averaged over the batch instead of summed",
        BiasNotSummed,
        middle,
        lambda net, at, batch: at if batch > 1 else None,
    ),
    Mutant(
        "skip-overwritten",
        "a unit read by several layers keeps only the last Delta sent to it",
        SkipOverwritten,
        middle,
        _skip_target,
    ),
    Mutant(
        "skip-dropped",
        "Delta sent back only along the edge to the previous layer; skip edges ignored",
        SkipDropped,
        middle,
        _skip_edges,
    ),
    Mutant("delta-sent-twice", "one layer sends its Delta back twice", DeltaSentTwice, _upper_half, _top_input_of),
    Mutant(
        "wrong-layer-delta",
        "dL/da from the Delta of the layer above (off by one), where widths allow",
        WrongLayerDelta,
        _lower,
        lambda net, at, batch: at if at < net.depth and net.width_of(at) == net.width_of(at + 1) else None,
    ),
    Mutant(
        "wrong-loss-derivative",
        "the derivative of the other loss (mse vs softmax cross-entropy)",
        WrongLossDerivative,
        middle,
        _output,
    ),
    Mutant("loss-gradient-sign", "dL/do with the wrong sign", LossGradientSign, middle, _output),
    Mutant("stale-cache", "one layer's weight gradient kept from the previous batch", StaleCache, middle, _at_layer),
    Mutant("tiny-scale", "one layer's weight gradient scaled by 1 + 1e-6", TinyScale, middle, _at_layer),
    Mutant(
        "single-wrong-entry",
        "one entry of one weight gradient off by 1e-3 of the largest",
        SingleWrongEntry,
        middle,
        _at_layer,
    ),
    Mutant(
        "last-example-only",
        "dW from the last example times the batch size (right only for batch 1)",
        LastExampleOnly,
        middle,
        lambda net, at, batch: at if batch > 1 else None,
    ),
    Mutant(
        "negative-side-dropped",
        "dL/da zeroed for negative pre-activations (right only for ReLU)",
        NegativeSideDropped,
        middle,
        _if_act(lambda a: a != "relu"),
    ),
    Mutant(
        "pre-activation-as-input",
        "dW built from the pre-activations below instead of their outputs",
        PreActivationAsInput,
        _upper_half,
        lambda net, at, batch: at if any(i >= 1 and _act(net, i) != "identity" for i in net.inputs_of(at)) else None,
    ),
    Mutant(
        "weight-gradient-transposed",
        "dW returned transposed (square layers)",
        WeightGradTransposed,
        middle,
        lambda net, at, batch: at if net.width_of(at) == net.fan_in(at) else None,
    ),
)

MUTANTS: dict[str, Mutant] = {m.name: m for m in CATALOGUE}


def get_mutant(name: str) -> Mutant:
    try:
        return MUTANTS[name]
    except KeyError:
        raise KeyError(f"unknown planted bug {name!r}; choose one of {sorted(MUTANTS)}") from None
