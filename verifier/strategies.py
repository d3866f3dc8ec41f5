"""Hypothesis strategies for networks, their parameters and their inputs.

Public, with keyword-only arguments checked at once:

    networks(max_depth=5, max_width=16, activations=None, losses=None, skip_connections=True)
    cases(..., dtype=np.float64, max_batch=8, values="seeded")  -> Case (replayable)

A `Case` holds the network spec and the seeds its parameters and batch are drawn from, so a
failing case found (and shrunk) by hypothesis is stored in a report as plain data and replayed
exactly. With values="seeded" (the default) parameters and inputs are continuous random draws
(normal / uniform), so no pre-activation lands exactly on a ReLU kink; a kink that falls inside
a finite-difference stencil is detected by the oracle and handled with a one-sided difference.
With values="drawn" hypothesis draws every parameter and input itself, from [-1, 1] mixed with
the exact values 0, +-0.5, +-1: exact zeros, ties and pre-activations exactly on a kink occur,
and shrinking goes toward zeros. The drawn values are stored in the case, so it still replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
from reference import Layer, Network, Params
from verifier.errors import InvalidArgument, parse_enum

__all__ = ["Case", "Values", "cases", "networks"]

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


class Values(str, Enum):
    """Where a case's parameters and batch come from."""

    SEEDED = "seeded"  # continuous random draws from params_seed / data_seed
    DRAWN = "drawn"  # drawn by hypothesis entry by entry, stored in the case


@dataclass(frozen=True)
class Case:
    """A network and the seeds of its parameters and batch: enough to rebuild it exactly.

    `drawn`, when set, holds the values themselves (values="drawn"): {"params": {layer: {"W",
    "b"}}, "x", "y"} as nested lists of floats, exact in `dtype`; the seeds are then unused."""

    net: Network
    params_seed: int
    data_seed: int
    batch: int
    dtype: str = "float64"
    drawn: dict[str, Any] | None = None

    def params(self) -> Params:
        dt = np.dtype(self.dtype)
        if self.drawn is not None:
            return {
                name: {key: np.asarray(v, dtype=dt) for key, v in layer.items()}
                for name, layer in self.drawn["params"].items()
            }
        return reference.init_params(self.net, seed=self.params_seed, dtype=dt)

    def data(self) -> tuple[Array, Array]:
        """x: (batch, n_inputs) ~ N(0, 1); y shaped (batch, n_outputs) to suit the loss."""
        dt = np.dtype(self.dtype)
        if self.drawn is not None:
            x = np.asarray(self.drawn["x"], dtype=dt).reshape(self.batch, self.net.n_inputs)
            y = np.asarray(self.drawn["y"], dtype=dt).reshape(self.batch, self.net.n_outputs)
            return x, y
        return make_batch(self.net, self.batch, self.data_seed, dt)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "network": self.net.to_dict(),
            "params_seed": self.params_seed,
            "data_seed": self.data_seed,
            "batch": self.batch,
            "dtype": self.dtype,
        }
        if self.drawn is not None:
            out["drawn"] = self.drawn
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(
            Network.from_dict(data["network"]),
            int(data["params_seed"]),
            int(data["data_seed"]),
            int(data["batch"]),
            str(data.get("dtype", "float64")),
            data.get("drawn"),
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
    values: Values | str = "seeded",
    **network_options: Any,
) -> st.SearchStrategy[Case]:
    """Random cases: a network from `networks(**network_options)`, a batch size, and either
    parameter and data seeds (values="seeded") or the values themselves (values="drawn"; keep
    networks small, max_width <= 8 or so, since hypothesis draws every entry)."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise InvalidArgument(f"dtype={dtype!r}: expected float32 or float64")
    max_batch = _check_range("max_batch", max_batch, 1, 4096)
    min_batch = _check_range("min_batch", min_batch, 1, max_batch)
    if parse_enum(Values, values, "values") is Values.DRAWN:
        return _drawn_cases(networks(**network_options), dt, min_batch, max_batch)
    return st.builds(
        Case,
        networks(**network_options),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(min_batch, max_batch),
        st.just(dt.name),
    )


# exact values mixed into drawn arrays: zeros (the shrink target), ties, and sums that cancel
# exactly (0.5 * 1 - 0.5 = 0), so that pre-activations land exactly on a kink
_EXACT = (0.0, 0.5, -0.5, 1.0, -1.0)


def _drawn_cases(
    nets: st.SearchStrategy[Network], dt: np.dtype, min_batch: int, max_batch: int
) -> st.SearchStrategy[Case]:
    width: Any = 32 if dt == np.float32 else 64
    real = st.one_of(st.sampled_from(_EXACT), st.floats(-1.0, 1.0, width=width, allow_subnormal=False))
    unit = st.one_of(st.sampled_from((0.0, 0.5, 1.0)), st.floats(0.0, 1.0, width=width, allow_subnormal=False))

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        net = draw(nets)
        batch = draw(st.integers(min_batch, max_batch))
        params = {
            name: {key: draw(hnp.arrays(dt, shape, elements=real)).tolist() for key, shape in shapes.items()}
            for name, shapes in net.param_shapes().items()
        }
        n_out = net.n_outputs
        target = reference.get_loss(net.loss).target
        if target == "distribution":
            labels = draw(hnp.arrays(np.int64, batch, elements=st.integers(0, n_out - 1)))
            y = np.eye(n_out, dtype=dt)[labels]
        else:
            y = draw(hnp.arrays(dt, (batch, n_out), elements=unit if target == "binary" else real))
        x = draw(hnp.arrays(dt, (batch, net.n_inputs), elements=real))
        drawn = {"params": params, "x": x.tolist(), "y": y.tolist()}
        return Case(net, 0, 0, batch, dt.name, drawn)

    return build()
