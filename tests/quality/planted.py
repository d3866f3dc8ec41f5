"""A copy of the reference backward pass with switchable, deliberately planted bugs.

Each bug is planted in one layer `at` (1-based) and must be reported as failing there.
"""

from __future__ import annotations

import numpy as np

from reference import Network, Params, Trace, get_activation, get_loss, layer_name
from reference.backprop import layer_input


def planted_backward(bug: str, at: int):
    """The reference backward with `bug` planted in layer `at`:

    - "no-activation-derivative": dL/da^r = Delta(h^r), alpha'(a^r) left out;
    - "transposed-weight": Delta(h^{r-1}) uses W^r transposed (layer r must be square);
    - "bias-summed": db^r summed over the batch without the batch mean;
    - "skip-overwritten": a unit read by several layers keeps only the last Delta sent to it.
    """

    def backward(net: Network, params: Params, trace: Trace, y: np.ndarray):
        k = net.depth
        deltas = [np.zeros_like(h) for h in trace.h]
        deltas[k] = get_loss(net.loss).grad(trace.output, y)
        grads = {}
        for r in range(k, 0, -1):
            here = r == at
            a_r = trace.a[r]
            alpha_prime = get_activation(net.layers[r - 1].activation).df(a_r)
            d_a = deltas[r] if here and bug == "no-activation-derivative" else deltas[r] * alpha_prime
            W = params[layer_name(r)]["W"]
            db = d_a.sum(axis=0)
            if here and bug == "bias-summed":
                db = db * d_a.shape[0]
            grads[layer_name(r)] = {"W": d_a.T @ layer_input(net, trace.h, r), "b": db}
            d_inp = d_a @ (W.T if here and bug == "transposed-weight" else W)
            col = 0
            for i in net.inputs_of(r):
                w = net.width_of(i)
                piece = d_inp[:, col : col + w]
                overwrite = bug == "skip-overwritten" and i == at and len(net.consumers(i)) > 1
                deltas[i] = piece if overwrite else deltas[i] + piece
                col += w
        return {name: grads[name] for name in net.layer_names}, deltas

    return backward
