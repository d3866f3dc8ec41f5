"""Speed of the reference backward pass relative to its forward pass.

Run as `python benchmarks/bench_reference.py`. BLAS is pinned to one thread (threadpoolctl), so
the figures compare arithmetic, not how many cores a matmul grabbed. For three MLP sizes and a
batch of 32 it prints the median time of the forward pass (forward + the loss value: what a
training step evaluates) and of forward + backward (`loss_and_grads`: the same plus every
parameter gradient), and their ratio. Backprop costs about two matmuls per layer for each one of
the forward pass, one of them skipped in the first layer (dL/dx is not needed), so a ratio of at
most 3 is the target. For information, the last column also times `backward` with
input_delta=True, which adds dL/dx (one more matmul in the first layer).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import blas_line, median_seconds
from reference import Network, backward, build, forward, init_params, loss, loss_and_grads

BATCH = 32
TARGET = 3.0
SIZES: dict[str, Network] = {
    "small": build(8, [(16, "tanh"), (4, "identity")], loss="softmax_cross_entropy"),
    "medium": build(64, [(128, "tanh"), (128, "tanh"), (10, "identity")], loss="softmax_cross_entropy"),
    "large": build(784, [(512, "tanh"), (10, "identity")], loss="softmax_cross_entropy"),
}


def measure(net: Network, repeats: int) -> list[float]:
    """Median seconds of (forward + loss, loss_and_grads, forward + loss + backward with dL/dx)."""
    rng = np.random.default_rng(0)
    params = init_params(net, seed=1)
    x = rng.normal(size=(BATCH, net.n_inputs))
    y = np.eye(net.n_outputs)[rng.integers(net.n_outputs, size=BATCH)]

    def forward_and_loss() -> object:
        return loss(net, forward(net, params, x), y)

    def with_input_delta() -> object:
        trace = forward(net, params, x)
        return loss(net, trace, y), backward(net, params, trace, y, input_delta=True)

    return median_seconds([forward_and_loss, lambda: loss_and_grads(net, params, x, y), with_input_delta], repeats)


def main() -> int:
    with threadpool_limits(1):
        print(blas_line())
        print(f"batch {BATCH}, float64, median over many repeats after warm-up; target (fwd+bwd)/fwd <= {TARGET}")
        print(f"{'size':<8}{'params':>9}{'forward':>13}{'fwd+bwd':>13}{'ratio':>8}{'ratio with dL/dx':>19}")
        worst = 0.0
        for name, net in SIZES.items():
            repeats = 5000 if net.n_params < 1e4 else 2000 if net.n_params < 1e5 else 400
            fwd, both, full = measure(net, repeats)
            worst = max(worst, both / fwd)
            print(
                f"{name:<8}{net.n_params:>9}{fwd * 1e6:>10.1f} us{both * 1e6:>10.1f} us"
                f"{both / fwd:>8.2f}{full / fwd:>19.2f}"
            )
        print(f"worst ratio {worst:.2f} ({'within' if worst <= TARGET else 'above'} the target {TARGET})")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
