"""forward/backward: against the JAX oracle for every activation and loss (with skip connections),
dL/dx against a complex step, stacked parameters against separate calls, and input_delta.

Tolerance: float64 gradients and Deltas within 1e-10 relative to the largest entry of each array
(the two sides sum the same terms in a different order through a few layers).
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import ACTIVATIONS, LOSSES, Layer, Network, backward, forward, init_params, loss, loss_and_grads
from verifier.autodiff import jax_gradients

RTOL = 1e-10


def batch(net: Network, seed: int = 0, size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, net.n_inputs))
    target = LOSSES[net.loss].target
    y = rng.uniform(size=(size, net.n_outputs)) if target != "real" else rng.normal(size=(size, net.n_outputs))
    if target == "distribution":
        y /= y.sum(axis=-1, keepdims=True)
    return x, y


def skip_net(activation: str, loss_name: str) -> Network:
    """unit 0 feeds layers 1 and 3, unit 1 feeds layers 2 and 3: Deltas sum over several paths."""
    return Network(
        4, (Layer(5, activation), Layer(3, activation), Layer(2, "identity", (1, 0, 2))), loss=loss_name
    )


def assert_close(ours: np.ndarray, truth: np.ndarray, what: str) -> None:
    scale = max(np.abs(truth).max(), 1e-300)
    err = np.abs(ours - truth).max() / scale
    assert err <= RTOL, f"{what}: relative error {err:.2e} > {RTOL:.0e}"


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_gradients_and_deltas_match_the_jax_oracle(activation: str, loss_name: str) -> None:
    net = skip_net(activation, loss_name)
    params = init_params(net, seed=2)
    x, y = batch(net)
    trace = forward(net, params, x)
    grads, deltas = backward(net, params, trace, y)
    value, jax_grads, jax_deltas = jax_gradients(net, params, x, y)
    assert loss(net, trace, y) == pytest.approx(value, rel=1e-12)
    for name in net.layer_names:
        for key in ("W", "b"):
            assert_close(grads[name][key], jax_grads[name][key], f"{name}.{key}")
    for r in range(1, net.depth + 1):
        assert_close(deltas[r], jax_deltas[r], f"Delta(h^{r})")


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
def test_input_delta_equals_a_complex_step_in_x(activation: str) -> None:
    net = skip_net(activation, "sigmoid_binary_cross_entropy")
    params = init_params(net, seed=3)
    x, y = batch(net)
    _, deltas = backward(net, params, forward(net, params, x), y, input_delta=True)
    h = 1e-30
    basis = np.eye(x.size).reshape(x.size, *x.shape)
    # stacking the perturbations as a leading dimension of x evaluates them in one forward pass
    stacked = loss(net, forward(net, params, x + 1j * h * basis), y)
    np.testing.assert_allclose(np.imag(stacked).reshape(x.shape) / h, deltas[0], rtol=1e-13, atol=1e-16)


def test_input_delta_false_skips_dl_dx_and_changes_nothing_else() -> None:
    net = skip_net("tanh", "mse")
    params = init_params(net, seed=4)
    x, y = batch(net)
    trace = forward(net, params, x)
    grads, deltas = backward(net, params, trace, y)
    grads_fast, deltas_fast = backward(net, params, trace, y, input_delta=False)
    assert np.abs(deltas[0]).max() > 0
    np.testing.assert_array_equal(deltas_fast[0], np.zeros_like(x))
    for r in range(1, net.depth + 1):
        np.testing.assert_allclose(deltas_fast[r], deltas[r], rtol=1e-14, atol=1e-300)
    for name in net.layer_names:
        for key in ("W", "b"):
            np.testing.assert_allclose(grads_fast[name][key], grads[name][key], rtol=1e-14, atol=1e-300)
    value, grads_lag = loss_and_grads(net, params, x, y)
    assert value == loss(net, trace, y)
    np.testing.assert_allclose(grads_lag["layer1"]["W"], grads["layer1"]["W"], rtol=1e-14)


def test_a_unit_no_layer_reads_has_zero_delta_and_zero_gradients() -> None:
    net = Network(3, (Layer(4, "tanh"), Layer(2, "identity", (0,))))  # h^1 feeds nothing
    params = init_params(net, seed=5)
    x, y = batch(net)
    grads, deltas = backward(net, params, forward(net, params, x), y)
    np.testing.assert_array_equal(deltas[1], np.zeros((5, 4)))
    np.testing.assert_array_equal(grads["layer1"]["W"], np.zeros((4, 3)))
    np.testing.assert_array_equal(grads["layer1"]["b"], np.zeros(4))


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_a_leading_stack_dimension_equals_separate_calls(loss_name: str) -> None:
    net = skip_net("silu", loss_name)
    x, y = batch(net, seed=6)
    sets = [init_params(net, seed=s) for s in range(3)]
    stacked = {
        name: {key: np.stack([p[name][key] for p in sets]) for key in ("W", "b")} for name in net.layer_names
    }
    trace = forward(net, stacked, x)
    values = loss(net, trace, y)
    grads, deltas = backward(net, stacked, trace, y)
    assert values.shape == (3,) and grads["layer1"]["W"].shape == (3, 5, 4) and deltas[0].shape == (3, 5, 4)
    for j, params in enumerate(sets):
        one = forward(net, params, x)
        g, d = backward(net, params, one, y)
        np.testing.assert_allclose(values[j], loss(net, one, y), rtol=1e-14)
        for name in net.layer_names:
            for key in ("W", "b"):
                np.testing.assert_allclose(grads[name][key][j], g[name][key], rtol=1e-13, atol=1e-300)
        for r in range(net.depth + 1):
            np.testing.assert_allclose(deltas[r][j], d[r], rtol=1e-13, atol=1e-300)


def test_a_forward_pass_resumed_from_a_layer_equals_the_whole_pass():
    from reference import Layer, Network, forward, init_params

    net = Network(3, (Layer(4, "tanh"), Layer(5, "relu", inputs=(0, 1)), Layer(2, "sigmoid", inputs=(1, 2))), "mse")
    params = init_params(net, seed=2)
    x = np.random.default_rng(0).normal(size=(6, 3))
    whole = forward(net, params, x)
    changed = {name: {k: v * 1.5 for k, v in layer.items()} for name, layer in params.items()}
    for start in (1, 2, 3):
        later = {name: changed[name] for name in net.layer_names[start - 1 :]}
        resumed = forward(net, later, x, resume=whole, start=start)
        mixed = {name: (changed if int(name[5:]) >= start else params)[name] for name in net.layer_names}
        np.testing.assert_array_equal(resumed.output, forward(net, mixed, x).output)
