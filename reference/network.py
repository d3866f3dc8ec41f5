"""Network and Layer: the architecture as frozen, validated data, and `init_params`.

Units are numbered as in the derivation: unit 0 is the input h^0, unit r is the output h^r of
layer r (layers count from 1). A layer reads the concatenation of the units listed in `inputs`
(default: the previous one), so a unit may feed several later layers (skip connections).
Parameters live in `{"layer1": {"W": (width, fan_in), "b": (width,)}, ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference.activations import ACTIVATIONS
from reference.losses import LOSSES

Params = dict[str, dict[str, np.ndarray]]


class SpecError(ValueError):
    """An invalid network specification or a parameter set that does not fit it."""


@dataclass(frozen=True)
class Layer:
    """A dense layer h = activation(W @ concat(inputs) + b).

    `inputs` are unit indices (0 = network input, r = output of layer r), each earlier than
    this layer; None means "the previous unit". `Network` fills it in.
    """

    width: int
    activation: str = "tanh"
    inputs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.inputs is not None and not isinstance(self.inputs, tuple):
            object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True)
class Network:
    """A feed-forward network: `n_inputs` input units, `layers`, and a `loss` on the last layer."""

    n_inputs: int
    layers: tuple[Layer, ...] = field(default_factory=tuple)
    loss: str = "mse"

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        _check_int("n_inputs", self.n_inputs, "network")
        if not layers:
            raise SpecError("network: `layers` is empty; give at least one Layer(width, activation)")
        resolved = []
        for r, layer in enumerate(layers, start=1):
            where = f"layer{r}"
            if not isinstance(layer, Layer):
                raise SpecError(f"{where}: expected a Layer, found {type(layer).__name__}")
            _check_int("width", layer.width, where)
            if not isinstance(layer.activation, str) or layer.activation not in ACTIVATIONS:
                raise SpecError(
                    f"{where}: unknown activation {layer.activation!r}; "
                    f"choose one of {sorted(ACTIVATIONS)}"
                )
            inputs = (r - 1,) if layer.inputs is None else layer.inputs
            if not inputs:
                raise SpecError(f"{where}: `inputs` is empty; list at least one earlier unit (0 to {r - 1})")
            for i in inputs:
                if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < r:
                    raise SpecError(
                        f"{where}: input {i!r} is not an earlier unit; "
                        f"valid inputs are 0 (network input) to {r - 1}"
                    )
            if len(set(inputs)) != len(inputs):
                raise SpecError(
                    f"{where}: `inputs` {inputs} lists a unit twice; list each of the units 0 to {r - 1} at most once"
                )
            resolved.append(Layer(layer.width, layer.activation, tuple(int(i) for i in inputs)))
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise SpecError(f"network: unknown loss {self.loss!r}; choose one of {sorted(LOSSES)}")
        object.__setattr__(self, "layers", tuple(resolved))

    # --- shape bookkeeping -------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.layers)

    def width_of(self, unit: int) -> int:
        """Width of unit `unit` (0 = input)."""
        return self.n_inputs if unit == 0 else self.layers[unit - 1].width

    def inputs_of(self, r: int) -> tuple[int, ...]:
        """Units that layer r (1-based) reads, in the column order of its W."""
        inputs = self.layers[r - 1].inputs
        assert inputs is not None  # filled in by __post_init__
        return inputs

    def fan_in(self, r: int) -> int:
        return sum(self.width_of(i) for i in self.inputs_of(r))

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].width

    @property
    def layer_names(self) -> list[str]:
        return [layer_name(r) for r in range(1, self.depth + 1)]

    def param_shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {
            layer_name(r): {"W": (layer.width, self.fan_in(r)), "b": (layer.width,)}
            for r, layer in enumerate(self.layers, start=1)
        }

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for layer in self.param_shapes().values() for s in layer.values())

    def consumers(self, unit: int) -> list[int]:
        """Layers that read unit `unit`: the edges that leave h^unit."""
        return [r for r in range(1, self.depth + 1) if unit in self.inputs_of(r)]

    # --- validation and data round trip ------------------------------------------------
    def check_params(self, params: Mapping[str, Mapping[str, Any]]) -> None:
        """Raise SpecError naming the first parameter whose key or shape does not fit."""
        shapes = self.param_shapes()
        if not isinstance(params, Mapping):
            raise SpecError(f"params: expected a dict of layers, found {type(params).__name__}")
        extra = set(params) - set(shapes)
        if extra:
            raise SpecError(f"params: unexpected layers {sorted(extra)}; expected {list(shapes)}")
        for name, layer_shapes in shapes.items():
            if name not in params:
                raise SpecError(f"params: layer {name!r} is missing; expected keys {list(shapes)}")
            for key, shape in layer_shapes.items():
                value = params[name].get(key) if isinstance(params[name], Mapping) else None
                if value is None:
                    raise SpecError(f"{name}.{key}: missing; expected an array of shape {shape}")
                found = tuple(np.shape(value))[-len(shape) :]
                if found != shape:
                    raise SpecError(
                        f"{name}.{key}: shape {np.shape(value)} does not fit the network; "
                        f"expected {shape} (width {shape[0]}"
                        + (
                            f", fan-in {shape[1]} from units {self.inputs_of(int(name[5:]))})"
                            if key == "W"
                            else ")"
                        )
                    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "loss": self.loss,
            "layers": [
                {"width": layer.width, "activation": layer.activation, "inputs": list(self.inputs_of(r))}
                for r, layer in enumerate(self.layers, start=1)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Network:
        try:
            layers = [
                Layer(d["width"], d["activation"], None if d.get("inputs") is None else tuple(d["inputs"]))
                for d in data["layers"]
            ]
            # values pass through unconverted, so that __post_init__ rejects "3", 2.5 or true
            return cls(data["n_inputs"], tuple(layers), data.get("loss", "mse"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise SpecError(
                f"network spec: missing or malformed field {exc}; expected "
                '{"n_inputs": int, "loss": str, "layers": [{"width", "activation", "inputs"}]}'
            ) from None


def layer_name(r: int) -> str:
    return f"layer{r}"


def _check_int(name: str, value: object, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{where}: `{name}` must be a positive int, found {value!r}")


def init_params(net: Network, seed: int = 0, dtype: Any = np.float64) -> Params:
    """Random parameters: W ~ N(0, 1/fan_in), b uniform in +-[0.1, 0.5] (never zero, since a
    zero bias hides bias-gradient bugs)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fc":
        raise SpecError(f"init_params: dtype must be a float type, found {dtype}")
    rng = np.random.default_rng(seed)
    params: Params = {}
    for name, shapes in net.param_shapes().items():
        width, fan_in = shapes["W"]
        w = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(width, fan_in))
        b = rng.uniform(0.1, 0.5, size=width) * rng.choice([-1.0, 1.0], size=width)
        params[name] = {"W": w.astype(dtype), "b": b.astype(dtype)}
    return params


def build(n_inputs: int, layers: Sequence[tuple[int, str]], loss: str = "mse") -> Network:
    """Shorthand: build(3, [(4, "tanh"), (2, "identity")])."""
    return Network(n_inputs, tuple(Layer(w, a) for w, a in layers), loss)
