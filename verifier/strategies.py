"""Hypothesis strategies for networks, their parameters and their inputs.

Public, with keyword-only arguments checked at once:

    networks(max_depth=5, max_width=16, activations=None, losses=None, skip_connections=True)
    cases(..., dtype=np.float64, max_batch=8)      -> Case (network + seeds, replayable)

A `Case` holds the network spec and the seeds its parameters and batch are drawn from, so a
failing case found (and shrunk) by hypothesis is stored in a report as plain data and replayed
exactly. Parameters and inputs are continuous random draws (normal / uniform), so no
pre-activation lands exactly on a ReLU kink; a kink that falls inside a finite-difference
stencil is detected by the oracle and handled with a one-sided difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
from reference import Layer, Network, Params
from verifier.errors import InvalidArgument

__all__ = ["Case", "cases", "networks"]

Array = np.ndarray


def _check_range(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name}={value!r}: expected an int from {low} to {high}")
    return value


def _check_names(name: str, given: Sequence[str] | None, valid: dict[str, Any]) -> list[str]:
    if given is None:
        return list(valid)
    names = list(given)
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise InvalidArgument(f"{name}={given!r}: unknown or empty; choose from {sorted(valid)}")
    return names


def networks(
    *,
    min_depth: int = 1,
    max_depth: int = 5,
    min_width: int = 1,
    max_width: int = 16,
    activations: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
    skip_connections: bool = True,
) -> st.SearchStrategy[Network]:
    """Random feed-forward networks. With skip_connections, a layer may also read any earlier
    unit (the network input included), which exercises the Delta sum over several paths."""
    max_depth = _check_range("max_depth", max_depth, 1, 64)
    min_depth = _check_range("min_depth", min_depth, 1, max_depth)
    max_width = _check_range("max_width", max_width, 1, 4096)
    min_width = _check_range("min_width", min_width, 1, max_width)
    acts = _check_names("activations", activations, reference.ACTIVATIONS)
    loss_names = _check_names("losses", losses, reference.LOSSES)
    if not isinstance(skip_connections, bool):
        raise InvalidArgument(f"skip_connections={skip_connections!r}: expected True or False")

    @st.composite
    def build(draw: st.DrawFn) -> Network:
        depth = draw(st.integers(min_depth, max_depth))
        n_inputs = draw(st.integers(min_width, max_width))
        layers = []
        for r in range(1, depth + 1):
            width = draw(st.integers(min_width, max_width))
            act = draw(st.sampled_from(acts))
            inputs: tuple[int, ...] = (r - 1,)
            if skip_connections and r >= 2:
                extra = draw(st.lists(st.integers(0, r - 2), max_size=2, unique=True))
                inputs = tuple(sorted({r - 1, *extra}))
            layers.append(Layer(width, act, inputs))
        loss = draw(st.sampled_from(loss_names))
        return Network(n_inputs, tuple(layers), loss)

    return build()


@dataclass(frozen=True)
class Case:
    """A network and the seeds of its parameters and batch: enough to rebuild it exactly."""

    net: Network
    params_seed: int
    data_seed: int
    batch: int
    dtype: str = "float64"

    def params(self) -> Params:
        return reference.init_params(self.net, seed=self.params_seed, dtype=np.dtype(self.dtype))

    def data(self) -> tuple[Array, Array]:
        """x: (batch, n_inputs) ~ N(0, 1); y shaped (batch, n_outputs) to suit the loss."""
        return make_batch(self.net, self.batch, self.data_seed, np.dtype(self.dtype))

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.net.to_dict(),
            "params_seed": self.params_seed,
            "data_seed": self.data_seed,
            "batch": self.batch,
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(
            Network.from_dict(data["network"]),
            int(data["params_seed"]),
            int(data["data_seed"]),
            int(data["batch"]),
            str(data.get("dtype", "float64")),
        )


def make_batch(net: Network, batch: int, seed: int, dtype: np.dtype) -> tuple[Array, Array]:
    rng = np.random.default_rng([seed, 1])
    x = rng.normal(size=(batch, net.n_inputs))
    target = reference.get_loss(net.loss).target
    n_out = net.n_outputs
    if target == "distribution":
        y = np.eye(n_out)[rng.integers(0, n_out, size=batch)]
    elif target == "binary":
        y = rng.uniform(0.0, 1.0, size=(batch, n_out))
    else:
        y = rng.normal(size=(batch, n_out))
    return x.astype(dtype), y.astype(dtype)


def cases(
    *,
    dtype: Any = np.float64,
    min_batch: int = 1,
    max_batch: int = 8,
    **network_options: Any,
) -> st.SearchStrategy[Case]:
    """Random cases: a network from `networks(**network_options)`, parameter and data seeds,
    and a batch size."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise InvalidArgument(f"dtype={dtype!r}: expected float32 or float64")
    max_batch = _check_range("max_batch", max_batch, 1, 4096)
    min_batch = _check_range("min_batch", min_batch, 1, max_batch)
    return st.builds(
        Case,
        networks(**network_options),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(min_batch, max_batch),
        st.just(dt.name),
    )
