"""Forward pass (keeps every a^r and h^r) and backward pass (the Delta recursion).

Shapes: x is (batch, n_inputs); a^r and h^r are (batch, width_r). Every function also accepts
parameters with a leading stack dimension (W: (m, width, fan_in), b: (m, width)), in which case
a^r, h^r gain that leading dimension and the loss has shape (m,): the finite-difference oracle
evaluates m perturbed networks in one call that way.

The backward pass is the derivation's recursion, written for a layer that may feed several
later layers:

    Delta(h^k) = dL/do                                    (o = h^k, the last layer's output)
    dL/da^r    = Delta(h^r) * alpha'(a^r)
    dL/dW^r    = (dL/da^r)^T @ concat(inputs of r),   dL/db^r = sum over the batch of dL/da^r
    Delta(h^i) = sum over every layer r that reads h^i of (dL/da^r @ W^r)[columns of h^i]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from reference.activations import get_activation
from reference.losses import get_loss
from reference.network import Network, Params, layer_name

Array = np.ndarray


@dataclass
class Trace:
    """Everything the backward pass needs: a[r] and h[r] for r = 0..k (a[0] is unused)."""

    a: list[Array | None]
    h: list[Array]

    @property
    def output(self) -> Array:
        return self.h[-1]


def layer_input(net: Network, h: list[Array], r: int) -> Array:
    """concat(h^i for i in inputs of layer r) along the feature axis, broadcasting any stack dim."""
    parts = [h[i] for i in net.inputs_of(r)]
    if len(parts) == 1:
        return parts[0]
    lead = np.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return np.concatenate([np.broadcast_to(p, lead + p.shape[-1:]) for p in parts], axis=-1)


def forward(
    net: Network,
    params: Mapping[str, Mapping[str, Array]],
    x: Array,
    taps: Mapping[int, Array] | None = None,
    *,
    resume: Trace | None = None,
    start: int = 1,
) -> Trace:
    """Run the network on x. `taps[r]`, if given, is added to h^r (zero taps leave the value
    unchanged; differentiating the loss with respect to a tap gives Delta(h^r)).

    With `resume` (a trace of the same network and x) the pass starts at layer `start`, reusing
    h^0..h^{start-1} and a^1..a^{start-1} from it: only the layers from `start` on are computed,
    so `params` needs only those layers. Their arrays may carry a stack dimension the reused
    ones lack; they broadcast."""
    if resume is None:
        h: list[Array] = [np.asarray(x)]
        a: list[Array | None] = [None]
        start = 1
    else:
        h, a = list(resume.h[:start]), list(resume.a[:start])
    for r in range(start, net.depth + 1):
        p = params[layer_name(r)]
        a_r = layer_input(net, h, r) @ np.swapaxes(p["W"], -1, -2) + p["b"][..., None, :]
        h_r = get_activation(net.layers[r - 1].activation).f(a_r)
        if taps is not None and r in taps:
            h_r = h_r + taps[r]
        a.append(a_r)
        h.append(h_r)
    return Trace(a=a, h=h)


def loss(net: Network, trace: Trace, y: Array) -> Array:
    """The batch-mean loss of a forward trace; shape () or (m,) for stacked parameters."""
    return get_loss(net.loss).value(trace.output, y)


def backward(
    net: Network,
    params: Mapping[str, Mapping[str, Array]],
    trace: Trace,
    y: Array,
    *,
    input_delta: bool = True,
) -> tuple[Params, list[Array]]:
    """The Delta recursion. Returns (grads shaped like params, deltas) with
    deltas[r] = Delta(h^r) = dL/dh^r for r = 0..k (deltas[0] is dL/dx).

    `input_delta=False` skips dL/dx, which no parameter gradient needs: a layer that reads only the
    input then saves the matmul dL/da^r @ W^r (a third of the backward pass of a net whose first
    layer dominates), a layer with a skip from the input multiplies only the other columns of W^r;
    deltas[0] is then zeros. A unit that no layer reads gets zeros, its true Delta.
    """
    k = net.depth
    acc: list[Array | None] = [None] * (k + 1)  # Delta(h^i), summed over the layers that read h^i
    acc[k] = get_loss(net.loss).grad(trace.output, y)
    grads: Params = {}
    for r in range(k, 0, -1):
        a_r, delta_r = trace.a[r], acc[r]
        assert a_r is not None
        if delta_r is None:  # no later layer reads h^r: Delta(h^r) = 0
            delta_r = acc[r] = np.zeros_like(trace.h[r])
        p = params[layer_name(r)]
        activation = net.layers[r - 1].activation
        # dL/da^r = Delta(h^r) * alpha'(a^r); alpha' = 1 for identity, so the product is skipped
        d_a = delta_r if activation == "identity" else delta_r * get_activation(activation).df(a_r)
        grads[layer_name(r)] = {
            "W": np.swapaxes(d_a, -1, -2) @ layer_input(net, trace.h, r),
            "b": d_a.sum(axis=-2),
        }
        # Delta(h^i) += (dL/da^r @ W^r)[columns of h^i], for every input i of layer r
        blocks, col = [], 0
        for i in net.inputs_of(r):
            w = net.width_of(i)
            if input_delta or i != 0:
                blocks.append((i, col, w))
            col += w
        if not blocks:
            continue
        if len(blocks) == len(net.inputs_of(r)):
            d_inp = d_a @ p["W"]
            pieces = [d_inp if len(blocks) == 1 else d_inp[..., c : c + w] for _, c, w in blocks]
        else:  # only the columns of the units whose Delta is wanted
            pieces = [d_a @ p["W"][..., c : c + w] for _, c, w in blocks]
        for (i, _, _), piece in zip(blocks, pieces, strict=True):
            prev = acc[i]
            acc[i] = piece if prev is None else prev + piece  # sum over every edge leaving h^i
    deltas = [np.zeros_like(h) if d is None else d for h, d in zip(trace.h, acc, strict=True)]
    return {name: grads[name] for name in net.layer_names}, deltas


def loss_and_grads(
    net: Network, params: Mapping[str, Mapping[str, Array]], x: Array, y: Array
) -> tuple[Array, Params]:
    """(L, dL/dparams) for one batch."""
    trace = forward(net, params, x)
    grads, _ = backward(net, params, trace, y, input_delta=False)
    return loss(net, trace, y), grads
