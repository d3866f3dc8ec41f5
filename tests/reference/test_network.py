"""Network validation (a table of invalid specs and their messages), the JSON round trip, init_params."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from reference import Layer, Network, SpecError, init_params

VALID_ACTIVATIONS = r"choose one of \['elu', 'gelu', 'gelu_tanh', 'identity', 'leaky_relu', 'relu', 'sigmoid'"
VALID_LOSSES = r"choose one of \['huber', 'mse', 'sigmoid_binary_cross_entropy', 'softmax_cross_entropy'\]"

INVALID_SPECS = [
    pytest.param(
        lambda: Network(3, (Layer(4, "tanh"), Layer(2, "swish"))),
        rf"layer2: unknown activation 'swish'; {VALID_ACTIVATIONS}",
        id="unknown-activation",
    ),
    pytest.param(
        lambda: Network(3, (Layer(2, "tanh"),), loss="hinge"),
        rf"network: unknown loss 'hinge'; {VALID_LOSSES}",
        id="unknown-loss",
    ),
    pytest.param(
        lambda: Network(3, (Layer(4, "tanh"), Layer(0, "tanh"))),
        r"layer2: `width` must be a positive int, found 0",
        id="width-zero",
    ),
    pytest.param(
        lambda: Network(3, (Layer(-2, "tanh"),)),
        r"layer1: `width` must be a positive int, found -2",
        id="width-negative",
    ),
    pytest.param(
        lambda: Network(3, (Layer(True, "tanh"),)),  # type: ignore[arg-type]
        r"layer1: `width` must be a positive int, found True",
        id="width-bool",
    ),
    pytest.param(
        lambda: Network(0, (Layer(2, "tanh"),)),
        r"network: `n_inputs` must be a positive int, found 0",
        id="n-inputs-zero",
    ),
    pytest.param(
        lambda: Network(3, (Layer(4, "tanh"), Layer(2, "tanh", (2,)))),
        r"layer2: input 2 is not an earlier unit; valid inputs are 0 \(network input\) to 1",
        id="input-not-earlier",
    ),
    pytest.param(
        lambda: Network(3, (Layer(4, "tanh"), Layer(2, "tanh", (0, 0)))),
        r"layer2: `inputs` \(0, 0\) lists a unit twice; list each of the units 0 to 1 at most once",
        id="input-duplicate",
    ),
    pytest.param(
        lambda: Network(3, (Layer(4, "tanh"), Layer(2, "tanh", ()))),
        r"layer2: `inputs` is empty; list at least one earlier unit \(0 to 1\)",
        id="inputs-empty",
    ),
    pytest.param(
        lambda: Network(3, ()),
        r"network: `layers` is empty; give at least one Layer",
        id="no-layers",
    ),
]


@pytest.mark.parametrize("make, message", INVALID_SPECS)
def test_an_invalid_spec_raises_spec_error_naming_the_layer_and_the_valid_choices(
    make: Any, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        make()
    assert issubclass(SpecError, ValueError)


NET = Network(3, (Layer(4, "tanh"), Layer(2, "relu", (0, 1))), loss="huber")


def _params_with(change: Any) -> dict[str, Any]:
    params: dict[str, Any] = init_params(NET, seed=0)
    change(params)
    return params


INVALID_PARAMS = [
    pytest.param(
        lambda p: p["layer1"].update(W=np.zeros((4, 2))),
        r"layer1\.W: shape \(4, 2\) does not fit the network; "
        r"expected \(4, 3\) \(width 4, fan-in 3 from units \(0,\)\)",
        id="W-wrong-shape",
    ),
    pytest.param(
        lambda p: p["layer2"].update(W=np.zeros((2, 4))),
        r"layer2\.W: shape \(2, 4\) does not fit the network; "
        r"expected \(2, 7\) \(width 2, fan-in 7 from units \(0, 1\)\)",
        id="W-misses-the-skip-columns",
    ),
    pytest.param(
        lambda p: p["layer2"].update(b=np.zeros(3)),
        r"layer2\.b: shape \(3,\) does not fit the network; expected \(2,\) \(width 2\)",
        id="b-wrong-shape",
    ),
    pytest.param(
        lambda p: p["layer2"].pop("b"),
        r"layer2\.b: missing; expected an array of shape \(2,\)",
        id="b-missing",
    ),
    pytest.param(
        lambda p: p.pop("layer2"),
        r"params: layer 'layer2' is missing; expected keys \['layer1', 'layer2'\]",
        id="layer-missing",
    ),
    pytest.param(
        lambda p: p.update(layer3={"W": np.zeros((1, 2)), "b": np.zeros(1)}),
        r"params: unexpected layers \['layer3'\]; expected \['layer1', 'layer2'\]",
        id="layer-extra",
    ),
]


@pytest.mark.parametrize("change, message", INVALID_PARAMS)
def test_params_that_do_not_fit_raise_spec_error_naming_the_parameter(change: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        NET.check_params(_params_with(change))


def test_fitting_params_pass_check_params() -> None:
    NET.check_params(init_params(NET))


def test_json_round_trip_keeps_skip_connections() -> None:
    net = Network(5, (Layer(4, "gelu"), Layer(3, "silu", (0, 1)), Layer(2, "identity", (1, 2, 0))), "huber")
    data = json.loads(json.dumps(net.to_dict()))
    assert data["layers"][2]["inputs"] == [1, 2, 0]
    back = Network.from_dict(data)
    assert back == net
    assert back.inputs_of(3) == (1, 2, 0) and back.fan_in(3) == 4 + 3 + 5


MALFORMED = [
    pytest.param(
        {"layers": [{"width": 2, "activation": "tanh"}]}, r"missing or malformed field 'n_inputs'", id="no-n-inputs"
    ),
    pytest.param({"n_inputs": 3}, r"missing or malformed field 'layers'", id="no-layers"),
    pytest.param(
        {"n_inputs": 3, "layers": [{"activation": "tanh"}]}, r"missing or malformed field 'width'", id="no-width"
    ),
    pytest.param({"n_inputs": 3, "layers": [7]}, r"network spec: missing or malformed field", id="layer-not-a-dict"),
    pytest.param([1, 2], r"network spec: missing or malformed field", id="not-a-dict"),
    pytest.param(
        {"n_inputs": 3, "layers": [{"width": 2.5, "activation": "tanh"}]},
        r"layer1: `width` must be a positive int, found 2\.5",
        id="width-float",
    ),
    pytest.param(
        {"n_inputs": "3", "layers": [{"width": 2, "activation": "tanh"}]},
        r"network: `n_inputs` must be a positive int, found '3'",
        id="n-inputs-string",
    ),
    pytest.param(
        {"n_inputs": 3, "layers": [{"width": True, "activation": "tanh"}]},
        r"layer1: `width` must be a positive int, found True",
        id="width-json-true",
    ),
    pytest.param(
        {"n_inputs": 3, "layers": [{"width": 2, "activation": ["tanh"]}]},
        r"layer1: unknown activation \['tanh'\]; choose one of",
        id="activation-not-a-string",
    ),
    pytest.param(
        {"n_inputs": 3, "layers": [{"width": 2, "activation": "tanh", "inputs": [1]}]},
        r"layer1: input 1 is not an earlier unit",
        id="input-not-earlier",
    ),
]


@pytest.mark.parametrize("data, message", MALFORMED)
def test_from_dict_on_malformed_data_raises_spec_error(data: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Network.from_dict(data)


def test_init_params_shapes_dtypes_nonzero_biases_and_determinism() -> None:
    for dtype in (np.float32, np.float64):
        params = init_params(NET, seed=5, dtype=dtype)
        assert list(params) == ["layer1", "layer2"]
        for name, shapes in NET.param_shapes().items():
            for key, shape in shapes.items():
                assert params[name][key].shape == shape and params[name][key].dtype == dtype
            assert np.all(np.abs(params[name]["b"]) >= 0.1)
    a, b, c = init_params(NET, seed=5), init_params(NET, seed=5), init_params(NET, seed=6)
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key])
            assert not np.array_equal(a[name][key], c[name][key])


def test_init_params_refuses_a_non_float_dtype() -> None:
    with pytest.raises(SpecError, match=r"init_params: dtype must be a float type, found int64"):
        init_params(NET, dtype=np.int64)
