"""The JAX oracle: the padded program for many architectures gives the same gradients as a
program compiled for each architecture, and compiles once per size bucket."""

import jax
import numpy as np
from hypothesis import given, settings

import reference
from reference import Layer, Network, init_params
from verifier import autodiff
from verifier.strategies import cases


def _per_architecture(net, params, x, y):
    taps = [np.zeros((x.shape[0], layer.width)) for layer in net.layers]
    with jax.enable_x64(True):
        value, (grads, tap_grads) = autodiff._compiled(net)(params, taps, x, y)
        return float(value), grads, [None, *(np.asarray(t) for t in tap_grads)]


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))


def test_the_padded_program_knows_every_activation_and_loss_of_the_reference():
    assert set(autodiff.ACTIVATION_ORDER) == set(reference.ACTIVATIONS)
    assert set(autodiff.LOSS_ORDER) == set(reference.LOSSES)


@settings(max_examples=40)
@given(cases())
def test_padding_changes_no_gradient_beyond_the_last_bits(case):
    params = case.params()
    x, y = case.data()
    assert autodiff.bucket_for(case.net, case.batch) is not None
    value, grads, deltas = autodiff.jax_gradients(case.net, params, x, y)
    value2, grads2, deltas2 = _per_architecture(case.net, params, x, y)
    assert abs(value - value2) <= 1e-14 * abs(value2)
    for name in case.net.layer_names:
        for key in ("W", "b"):
            assert _rel(grads[name][key], grads2[name][key]) <= 1e-14
    for r in range(1, case.net.depth + 1):
        assert _rel(deltas[r], deltas2[r]) <= 1e-14


def test_many_architectures_share_one_compiled_program():
    autodiff._padded_program.cache_clear()
    rng = np.random.default_rng(3)
    for depth in range(1, 6):
        for width in (1, 5, 16):
            net = Network(
                width, tuple(Layer(width, a) for a in ("tanh", "relu", "sin", "elu", "gelu")[:depth]), "huber"
            )
            x, y = rng.normal(size=(4, width)), rng.normal(size=(4, width))
            autodiff.jax_gradients(net, init_params(net), x, y)
    assert autodiff._padded_program.cache_info().misses == 1


def test_networks_too_large_to_pad_use_their_own_program():
    net = Network(40, (Layer(64, "tanh"), Layer(3, "identity")), "mse")
    assert autodiff.bucket_for(net, 8) is None
    params = init_params(net)
    x, y = np.ones((8, 40)), np.zeros((8, 3))
    _, grads, _ = autodiff.jax_gradients(net, params, x, y)
    _, ref_grads = reference.loss_and_grads(net, params, x, y)
    assert _rel(grads["layer1"]["W"], ref_grads["layer1"]["W"]) <= 1e-12
