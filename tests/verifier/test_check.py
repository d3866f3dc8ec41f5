"""verify_network: the reference agrees with both oracles; wrong calls are refused clearly."""

import numpy as np
import pytest
from hypothesis import given, settings

from reference import Layer, Network, backward, forward, init_params
from verifier.autodiff import jax_gradients
from verifier.check import verify_network
from verifier.compare import Verdict
from verifier.errors import InvalidArgument
from verifier.strategies import cases

NET = Network(3, (Layer(4, "tanh"), Layer(2, "identity")), "mse")


def _rel(a, b):
    scale = max(np.max(np.abs(b)), np.finfo(float).tiny)
    return float(np.max(np.abs(a - b)) / scale)


@settings(max_examples=40)
@given(cases())
def test_the_reference_agrees_with_jax_to_1e_10_in_float64(case):
    params = case.params()
    x, y = case.data()
    grads, deltas = backward(case.net, params, forward(case.net, params, x), y)
    _, jgrads, jdeltas = jax_gradients(case.net, params, x, y)
    for name in case.net.layer_names:
        for key in ("W", "b"):
            assert _rel(grads[name][key], jgrads[name][key]) <= 1e-10
    for r in range(1, case.net.depth + 1):
        assert _rel(deltas[r], jdeltas[r]) <= 1e-10


@settings(max_examples=25)
@given(cases())
def test_the_reference_passes_verification_on_random_networks(case):
    x, y = case.data()
    report = verify_network(case.net, case.params(), x, y)
    assert report.ok, report.to_markdown()
    assert all(p.verdict is not Verdict.FAIL for layer in report.layers for p in layer.params)


@settings(max_examples=10)
@given(cases(max_depth=3, max_width=5, max_batch=3))
def test_full_finite_differences_agree_with_the_reference_entry_by_entry(case):
    x, y = case.data()
    report = verify_network(case.net, case.params(), x, y, mode="full", method="central")
    assert report.ok, report.to_markdown()
    for layer in report.layers:
        for p in layer.params:
            rf = p.comparison("hand-written", "finite-differences")
            assert rf is not None and rf.kind == "entrywise" and rf.n == np.prod(p.shape)


def test_a_report_names_every_layer_and_array_with_its_tolerance():
    params = init_params(NET)
    x, y = np.ones((2, 3)), np.zeros((2, 2))
    report = verify_network(NET, params, x, y)
    assert [lay.name for lay in report.layers] == ["layer1", "layer2"]
    assert [p.path for p in report.layer("layer1").params] == ["layer1.W", "layer1.b", "layer1.Delta"]
    for p in report.layer("layer2").params:
        assert p.tolerance["source"] == "model" and p.tolerance["rtol"] > 0
        assert {(c.a, c.b) for c in p.comparisons} == {
            ("hand-written", "jax"),
            ("hand-written", "finite-differences"),
            ("jax", "finite-differences"),
        }


def test_a_backward_that_raises_becomes_an_error_verdict_not_a_crash():
    def broken(net, params, trace, y):
        raise RuntimeError("boom")

    params = init_params(NET)
    report = verify_network(NET, params, np.ones((2, 3)), np.zeros((2, 2)), backward=broken)
    assert not report.ok and report.root_cause == "layer2"
    assert all(p.verdict is Verdict.ERROR and "boom" in p.error for lay in report.layers for p in lay.params)


def test_a_nan_in_the_hand_written_gradient_fails_that_parameter_only():
    def nan_bias(net, params, trace, y):
        grads, deltas = backward(net, params, trace, y)
        grads["layer1"]["b"] = grads["layer1"]["b"].copy()
        grads["layer1"]["b"][0] = np.nan
        return grads, deltas

    params = init_params(NET)
    report = verify_network(NET, params, np.ones((2, 3)), np.zeros((2, 2)), backward=nan_bias)
    assert [p.path for p in report.failures] == ["layer1.b"]


BAD_CALLS = [
    ("unknown-method", dict(method="newton"), "method='newton' is not a valid choice"),
    ("unknown-mode", dict(mode="everything"), "mode='everything' is not a valid choice"),
    ("negative-rtol", dict(rtol=-1.0), "rtol=-1.0"),
    ("x-wrong-width", dict(x=np.ones((2, 4))), r"x: expected shape \(batch, 3\)"),
    ("y-wrong-shape", dict(y=np.ones((2, 3))), r"y: expected shape \(2, 2\)"),
    ("x-nan", dict(x=np.full((2, 3), np.nan)), "NaN"),
    ("params-missing-layer", dict(params={"layer1": init_params(NET)["layer1"]}), "layer2"),
    (
        "params-int",
        dict(params={k: {n: v.astype(int) for n, v in p.items()} for k, p in init_params(NET).items()}),
        "float32 or float64",
    ),
]


@pytest.mark.parametrize("kwargs,match", [(k, m) for _, k, m in BAD_CALLS], ids=[i for i, _, _ in BAD_CALLS])
def test_wrong_calls_raise_invalid_argument_naming_the_argument(kwargs, match):
    args = dict(net=NET, params=init_params(NET), x=np.ones((2, 3)), y=np.zeros((2, 2)))
    args.update(kwargs)
    net, params, x, y = args.pop("net"), args.pop("params"), args.pop("x"), args.pop("y")
    with pytest.raises(InvalidArgument, match=match):
        verify_network(net, params, x, y, **args)


def test_the_jax_oracle_leaves_the_global_x64_setting_alone():
    import jax
    import jax.numpy as jnp

    before = jax.config.jax_enable_x64
    jax_gradients(NET, init_params(NET), np.ones((2, 3)), np.zeros((2, 2)))
    assert jax.config.jax_enable_x64 == before
    assert jnp.ones(1).dtype == (jnp.float64 if before else jnp.float32)


def test_a_subnormal_gradient_that_jax_flushes_to_zero_is_no_false_alarm():
    # found by the campaign: dL/db^2 = b^3 * W^3 = 9e-284 * 1.2e-38 = 1e-321, subnormal; XLA says 0
    net = Network(1, (Layer(1, "identity"), Layer(1, "identity"), Layer(1, "identity")), "mse")
    params = {
        "layer1": {"W": np.zeros((1, 1)), "b": np.zeros(1)},
        "layer2": {"W": np.zeros((1, 1)), "b": np.zeros(1)},
        "layer3": {"W": np.array([[1.1754943508222875e-38]]), "b": np.array([9.042415847995043e-284])},
    }
    report = verify_network(net, params, np.zeros((1, 1)), np.zeros((1, 1)))
    assert report.ok, report.to_markdown()
    assert report.param("layer2.b").tolerance["source"] == "model"


def test_a_float32_pre_activation_rounded_across_a_kink_is_inconclusive_not_a_false_alarm():
    # found in CI: 0.5 - 3e-8 rounds to 0.5 in float32, so a = 0 (slope 1) where float64 has
    # a = -3e-8 (slope 0.01): the float32 gradient is exact for the piece it computed on
    net = Network(4, (Layer(1, "leaky_relu"), Layer(1, "relu"), Layer(1, "leaky_relu", inputs=(0, 1, 2))), "mse")
    params = {
        "layer1": {"W": np.full((1, 4), -0.5, np.float32), "b": np.array([-0.5], np.float32)},
        "layer2": {"W": np.zeros((1, 1), np.float32), "b": np.zeros(1, np.float32)},
        "layer3": {"W": np.full((1, 6), 0.5, np.float32), "b": np.zeros(1, np.float32)},
    }
    x = np.array([[5.960464477539063e-08, -1 / 3, -1 / 3, -1 / 3]], np.float32)
    report = verify_network(net, params, x, np.zeros((1, 1), np.float32))
    assert report.ok, report.to_markdown()
    w = report.param("layer1.W")
    assert w.verdict is Verdict.INCONCLUSIVE and "other side of its kink" in w.explanation
    # the same numbers in float64 sit on one piece: nothing to excuse, and a planted bug still fails
    params64 = {k: {n: v.astype(np.float64) for n, v in p.items()} for k, p in params.items()}

    def wrong_bias(net, params, trace, y):
        grads, deltas = backward(net, params, trace, y)
        grads["layer3"]["b"] = grads["layer3"]["b"] * 1.01
        return grads, deltas

    bad = verify_network(net, params64, x.astype(np.float64), np.zeros((1, 1)), backward=wrong_bias)
    assert bad.root_cause == "layer3"


def test_a_kink_flip_excuses_only_the_layers_it_can_explain():
    net = Network(4, (Layer(1, "leaky_relu"), Layer(1, "relu"), Layer(1, "leaky_relu", inputs=(0, 1, 2))), "mse")
    params = {
        "layer1": {"W": np.full((1, 4), -0.5, np.float32), "b": np.array([-0.5], np.float32)},
        "layer2": {"W": np.zeros((1, 1), np.float32), "b": np.zeros(1, np.float32)},
        "layer3": {"W": np.full((1, 6), 0.5, np.float32), "b": np.array([0.25], np.float32)},
    }
    x = np.array([[5.960464477539063e-08, -1 / 3, -1 / 3, -1 / 3]], np.float32)

    def wrong_top_bias(net, params, trace, y):
        grads, deltas = backward(net, params, trace, y)
        grads["layer3"]["b"] = grads["layer3"]["b"] * 1.05
        return grads, deltas

    report = verify_network(net, params, x, np.zeros((1, 1), np.float32), backward=wrong_top_bias)
    assert report.root_cause == "layer3" and report.param("layer3.b").verdict is Verdict.FAIL


def test_a_sum_of_subnormal_terms_that_jax_flushes_is_no_false_alarm():
    # found by the campaign: dL/db^2 adds two subnormal terms to 2.3e-308; XLA flushes each to 0
    net = Network(
        1,
        (Layer(1, "identity"), Layer(1, "identity"), Layer(1, "identity"), Layer(2, "sigmoid")),
        "softmax_cross_entropy",
    )
    zero = {"W": np.zeros((1, 1)), "b": np.zeros(1)}
    params = {
        "layer1": zero,
        "layer2": zero,
        "layer3": {"W": np.array([[1.192092896e-07]]), "b": np.zeros(1)},
        "layer4": {"W": np.full((2, 1), 2.418616816375445e-299), "b": np.array([0.0, 0.5])},
    }
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    report = verify_network(net, params, np.zeros((2, 1)), y)
    assert report.ok, report.to_markdown()


def _jax_with_nan_layer1_w(monkeypatch):
    import verifier.autodiff

    real = verifier.autodiff.jax_gradients

    def nan_layer1_w(*args):
        value, grads, deltas = real(*args)
        grads["layer1"]["W"] = np.full_like(grads["layer1"]["W"], np.nan)
        return value, grads, deltas

    monkeypatch.setattr(verifier.autodiff, "jax_gradients", nan_layer1_w)


def test_a_non_finite_jax_gradient_is_no_oracle_and_finite_differences_judge_that_array(monkeypatch):
    _jax_with_nan_layer1_w(monkeypatch)
    net = Network(3, (Layer(4, "tanh"), Layer(2, "identity")))
    params = init_params(net, seed=2)
    x, y = np.random.default_rng(2).normal(size=(5, 3)), np.zeros((5, 2))
    report = verify_network(net, params, x, y)
    assert report.ok, report.to_markdown()
    w = report.layers[0].params[0]
    assert w.path == "layer1.W" and w.comparisons[0].status.value == "unavailable"
    assert "not finite" in w.comparisons[0].note
    assert w.finite_differences["items"] == 2  # the screen without JAX: two directions

    def wrong_layer1_w(net, params, trace, y):
        grads, deltas = backward(net, params, trace, y)
        grads["layer1"]["W"] = grads["layer1"]["W"] * 1.5
        return grads, deltas

    failing = verify_network(net, params, x, y, backward=wrong_layer1_w)
    w = failing.layers[0].params[0]
    assert w.verdict is Verdict.FAIL and w.comparisons[1].status.value == "disagree"
