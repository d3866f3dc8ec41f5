"""The finite-difference oracle must never cry wolf: a correct gradient never fails, in float32,
at kinks, at exact zeros. Every campaign here also counts its inconclusive share, so that
`inconclusive` cannot quietly become the place where problems go."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import find

import reference
import verifier.autodiff
from verifier.campaign import CampaignResult, run_campaign
from verifier.check import verify_network
from verifier.errors import InvalidArgument
from verifier.strategies import Case, cases

KINKED = {"activations": ["relu", "leaky_relu"], "max_width": 6, "max_depth": 3}
DRAWN = {"values": "drawn", **KINKED}


def _inconclusive_share(result: CampaignResult) -> float:
    total = sum(result.params.values())
    return result.params["inconclusive"] / total if total else 0.0


def _assert_no_false_alarm(result: CampaignResult, examples: int, max_inconclusive: float, record) -> None:
    share = _inconclusive_share(result)
    record("inconclusive_share", share)
    record("verdicts", result.params)
    detail = "" if result.failing_report is None else result.failing_report.to_markdown()
    assert result.ok, f"{result.failing_case}\n{detail}"
    assert result.networks == examples
    assert result.params["fail"] == 0 and result.params["error"] == 0
    assert result.params["pass"] > 0
    assert share <= max_inconclusive, f"inconclusive share {share:.1%} of {sum(result.params.values())} arrays"


def test_a_hundred_random_float32_networks_with_every_activation_raise_no_false_alarm(record_property):
    result = run_campaign(100, seed=20261204, dtype="float32")
    _assert_no_false_alarm(result, 100, max_inconclusive=0.01, record=record_property)


@pytest.mark.slow
def test_two_thousand_random_float32_networks_with_every_activation_raise_no_false_alarm(record_property):
    result = run_campaign(2000, seed=20261204, dtype="float32")
    record_property("elapsed_s", result.elapsed)
    _assert_no_false_alarm(result, 2000, max_inconclusive=0.01, record=record_property)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_networks_with_drawn_values_full_of_exact_zeros_never_fail(dtype, record_property):
    result = run_campaign(80, seed=7, dtype=dtype, network_options=DRAWN)
    _assert_no_false_alarm(result, 80, max_inconclusive=0.02, record=record_property)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_with_finite_differences_alone_drawn_relu_networks_are_inconclusive_at_kinks_never_failed(
    dtype, record_property
):
    # without JAX nothing arbitrates: every kink the stencils meet must come out inconclusive
    with mock.patch.object(verifier.autodiff, "jax_gradients", side_effect=RuntimeError("JAX is not installed")):
        result = run_campaign(80, seed=7, dtype=dtype, network_options=DRAWN)
    _assert_no_false_alarm(result, 80, max_inconclusive=0.2, record=record_property)
    assert result.params["inconclusive"] > 0  # the kinks are really there


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_every_mode_stays_quiet_on_drawn_relu_networks_with_finite_differences_alone(mode, record_property):
    with mock.patch.object(verifier.autodiff, "jax_gradients", side_effect=RuntimeError("JAX is not installed")):
        result = run_campaign(40, seed=3, dtype="float64", mode=mode, network_options=DRAWN)
    _assert_no_false_alarm(result, 40, max_inconclusive=0.2, record=record_property)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_bias_gradient_that_cancels_to_exactly_zero_over_the_batch_is_not_a_false_alarm(dtype):
    # mse on relu(W x + b): dL/db = mean(o - y) = (2.5 - 5 * 0.5) / 6 = 0, computed with round-off
    net = reference.Network(4, (reference.Layer(1, "relu"),), "mse")
    params = {"layer1": {"W": np.ones((1, 4), dtype), "b": np.array([0.5], dtype)}}
    x = np.zeros((6, 4), dtype)
    x[0, :3] = 1.0
    report = verify_network(net, params, x, np.ones((6, 1), dtype))
    assert report.ok, report.to_markdown()


def test_a_gelu_tanh_unit_deep_in_its_negative_tail_where_jax_loses_digits_is_not_a_false_alarm():
    # found by the 10,000-network campaign: a = 8 * 0.84375 * -1 - 0.5 = -7.25, where the true
    # gelu_tanh'(a) is 1.35e-15 and jax.grad of jax.nn.gelu(approximate=True) says 3.4e-14
    net = reference.Network(
        8, (reference.Layer(1, "gelu_tanh"), reference.Layer(1, "identity"), reference.Layer(1, "identity", (0, 1, 2)))
    )
    params = {
        "layer1": {"W": np.full((1, 8), 0.84375), "b": np.array([-0.5])},
        "layer2": {"W": np.zeros((1, 1)), "b": np.zeros(1)},
        "layer3": {"W": np.full((1, 10), 0.5), "b": np.zeros(1)},
    }
    report = verify_network(net, params, -np.ones((1, 8)), np.zeros((1, 1)))
    assert report.ok, report.to_markdown()
    w = next(p for layer in report.layers for p in layer.params if p.path == "layer1.W")
    assert w.verdict.value == "pass" and w.comparisons[0].max_abs_err > 1e-14  # JAX really is off


def _jax_flip_case():
    # found by the campaign: gelu_tanh(-7.5) is -4.3e-18 by the reference's stable formula and
    # exactly 0 in jax.nn, so the relu after it has a = +2e-18 in the reference and exactly 0
    # (on its kink) in JAX
    net = reference.Network(
        1,
        (
            reference.Layer(3, "identity"),
            reference.Layer(5, "identity"),
            reference.Layer(1, "gelu_tanh"),
            reference.Layer(1, "relu"),
        ),
    )
    params = {
        "layer1": {"W": np.zeros((3, 1)), "b": np.full(3, 0.5)},
        "layer2": {"W": -np.ones((5, 3)), "b": np.zeros(5)},
        "layer3": {"W": np.ones((1, 5)), "b": np.zeros(1)},
        "layer4": {"W": np.full((1, 1), -0.5), "b": np.zeros(1)},
    }
    return net, params, np.zeros((1, 1)), np.full((1, 1), 0.5)


def test_a_pre_activation_that_jax_rounds_onto_the_other_side_of_a_kink_is_not_a_false_alarm():
    net, params, x, y = _jax_flip_case()
    report = verify_network(net, params, x, y)
    assert report.ok, report.to_markdown()
    b = next(p for layer in report.layers for p in layer.params if p.path == "layer4.b")
    assert b.comparisons[0].status.value == "disagree"  # JAX really takes the other piece...
    assert "layer4 moved on the kink" in b.explanation  # ...and the report says why that is not a failure


def test_a_real_bug_next_to_a_pre_activation_jax_rounds_across_a_kink_still_fails():
    net, params, x, y = _jax_flip_case()

    def halved_bias_gradient(net, params, trace, y):
        grads, deltas = reference.backward(net, params, trace, y)
        grads["layer4"]["b"] = grads["layer4"]["b"] / 2
        return grads, deltas

    report = verify_network(net, params, x, y, backward=halved_bias_gradient)
    assert not report.ok and report.root_cause == "layer4", report.to_markdown()
    b = next(p for layer in report.layers for p in layer.params if p.path == "layer4.b")
    # no two sides agree here (hand -0.25, JAX 0 on the other piece, finite differences -0.5)
    assert b.verdict.value == "fail" and b.blame.value == "undetermined"


def test_a_bug_shared_by_forward_and_backward_is_not_excused_by_a_unit_sitting_on_a_kink(monkeypatch):
    # forward and derivative agree with each other (and so with finite differences) but not with
    # jax.nn's leaky_relu: only JAX sees it. A dead relu unit (a == 0 exactly) must not excuse it.
    import reference.activations

    monkeypatch.setattr(reference.activations, "LEAKY_SLOPE", 0.02)
    net = reference.Network(
        2, (reference.Layer(3, "leaky_relu"), reference.Layer(2, "relu"), reference.Layer(1, "identity"))
    )
    params = reference.init_params(net, seed=1)
    params["layer2"]["W"][1] = 0.0
    params["layer2"]["b"][1] = 0.0
    x = np.array([[-1.0, -2.0], [1.5, -0.5], [-0.3, 0.7]])
    report = verify_network(net, params, x, np.ones((3, 1)))
    assert not report.ok
    verdicts = {p.path: (p.verdict.value, p.blame.value) for layer in report.layers for p in layer.params}
    assert verdicts["layer1.W"] == ("fail", "jax-oracle") and verdicts["layer2.b"] == ("fail", "jax-oracle")


@pytest.mark.parametrize("seed", range(6))
def test_a_diluted_bug_beside_a_real_jax_kink_flip_fails_when_finite_differences_only_screened_it(seed):
    # JAX's forward does put the output relu on its kink here; one entry of layer2.W is 10% off,
    # which one random direction may not see: without an entrywise finite-difference match the
    # flip excuses nothing
    rng = np.random.default_rng(0)
    net = reference.Network(
        8,
        (
            reference.Layer(8, "tanh"),
            reference.Layer(8, "tanh"),
            reference.Layer(1, "gelu_tanh", (0,)),
            reference.Layer(1, "relu", (2, 3)),
        ),
    )
    params = {
        "layer1": {"W": rng.normal(size=(8, 8)) / 3, "b": rng.normal(size=8) / 3},
        "layer2": {"W": np.zeros((8, 8)), "b": np.zeros(8)},
        "layer3": {"W": np.zeros((1, 8)), "b": np.array([-7.5])},
        "layer4": {"W": np.concatenate([rng.choice([-0.75, 0.75], 8), [-0.5]])[None], "b": np.zeros(1)},
    }
    params = {n: {k: v.astype(np.float32) for k, v in layer.items()} for n, layer in params.items()}
    x, y = rng.normal(size=(4, 8)).astype(np.float32), np.full((4, 1), 0.5, np.float32)

    def one_entry_off(net, params, trace, y):
        grads, deltas = reference.backward(net, params, trace, y)
        grads["layer2"]["W"] = grads["layer2"]["W"].copy()
        grads["layer2"]["W"][0, 0] *= 1.1
        return grads, deltas

    report = verify_network(net, params, x, y, backward=one_entry_off, mode="directional", seed=seed)
    w = next(p for layer in report.layers for p in layer.params if p.path == "layer2.W")
    assert not report.ok and w.verdict.value == "fail"


# --- the drawn values ---------------------------------------------------------------------------


def _pre_activations(case: Case) -> list[np.ndarray]:
    x, _ = case.data()
    trace = reference.forward(case.net, case.params(), x)
    return [a for a in trace.a[1:] if a is not None]


def test_drawn_values_put_pre_activations_exactly_on_the_kink():
    case = find(cases(values="drawn", **KINKED), lambda c: any(np.any(a == 0) for a in _pre_activations(c)))
    assert any(np.any(a == 0) for a in _pre_activations(case))


def test_drawn_values_shrink_toward_zeros():
    case = find(cases(values="drawn", **KINKED), lambda c: c.net.depth >= 2)
    values = np.concatenate([v.ravel() for layer in case.params().values() for v in layer.values()])
    assert np.all(values == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_drawn_case_replays_exactly_from_its_dict(dtype):
    case = find(cases(dtype=dtype, values="drawn", **KINKED), lambda c: c.net.depth >= 2 and c.batch >= 2)
    again = Case.from_dict(case.to_dict())
    for name, layer in case.params().items():
        for key, value in layer.items():
            assert again.params()[name][key].dtype == np.dtype(dtype)
            assert np.array_equal(again.params()[name][key], value)
    for a, b in zip(case.data(), again.data(), strict=True):
        assert a.dtype == np.dtype(dtype) and np.array_equal(a, b)


BAD_VALUES = [("unknown", "random"), ("not-a-string", 3), ("capitalised", "Drawn")]


@pytest.mark.parametrize("value", [v for _, v in BAD_VALUES], ids=[i for i, _ in BAD_VALUES])
def test_an_unknown_values_option_raises_invalid_argument_naming_the_choices(value):
    with pytest.raises(InvalidArgument, match=r"values=.* is not a valid choice; use one of 'seeded', 'drawn'"):
        cases(values=value)
