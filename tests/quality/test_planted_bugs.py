"""Planted backprop bugs must be reported as failing, in the right layer, with the right root cause."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import Layer, Network, init_params
from tests.quality.planted import planted_backward
from verifier.check import verify_network
from verifier.compare import Blame, Verdict
from verifier.strategies import make_batch

DEEP = Network(3, (Layer(4, "tanh"), Layer(4, "sigmoid"), Layer(4, "tanh"), Layer(2, "identity")), "mse")


def _check(net, bug, at, batch=5, seed=0, **kw):
    params = init_params(net, seed=seed)
    x, y = make_batch(net, batch, seed, np.dtype(np.float64))
    return verify_network(net, params, x, y, backward=planted_backward(bug, at), **kw)


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_a_left_out_activation_derivative_fails_in_its_own_layer(at):
    report = _check(DEEP, "no-activation-derivative", at) if at < 4 else None
    if report is None:  # the identity's derivative is 1: leaving it out is not a bug
        report = _check(DEEP, "no-activation-derivative", 4)
        assert report.ok
        return
    assert not report.ok
    assert report.root_cause == f"layer{at}"
    for key in ("W", "b"):
        p = report.param(f"layer{at}.{key}")
        assert p.verdict is Verdict.FAIL and p.blame is Blame.HAND_WRITTEN
    assert report.param(f"layer{at}.Delta").verdict is Verdict.PASS  # Delta(h^r) itself is right
    assert "alpha'(a)" in report.next_step
    for later in range(at + 1, 5):
        assert report.layer(f"layer{later}").verdict is Verdict.PASS


@pytest.mark.parametrize("at", [2, 3, 4])
def test_a_transposed_weight_in_the_delta_recursion_fails_one_layer_below(at):
    net = Network(3, (Layer(4, "tanh"), Layer(4, "tanh"), Layer(4, "sigmoid"), Layer(4, "identity")), "mse")
    report = _check(net, "transposed-weight", at)
    assert report.root_cause == f"layer{at - 1}"
    delta = report.param(f"layer{at - 1}.Delta")
    assert delta.verdict is Verdict.FAIL and delta.blame is Blame.HAND_WRITTEN
    assert f"layer{at}" in report.next_step and "@ W" in report.next_step
    assert report.layer(f"layer{at}").verdict is Verdict.PASS


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_a_bias_gradient_summed_instead_of_averaged_fails_only_that_bias(at):
    report = _check(DEEP, "bias-summed", at, batch=3)
    assert report.root_cause == f"layer{at}"
    assert [p.path for p in report.failures] == [f"layer{at}.b"]
    worst = report.param(f"layer{at}.b").worst
    assert worst is not None and worst.worst_a == pytest.approx(3 * worst.worst_b, rel=1e-9)


def test_the_bias_bug_is_invisible_with_a_batch_of_one():
    assert _check(DEEP, "bias-summed", 2, batch=1).ok


def test_a_skip_connection_overwritten_instead_of_accumulated_fails_at_the_shared_unit():
    net = Network(
        3,
        (Layer(5, "tanh"), Layer(4, "sigmoid"), Layer(3, "tanh", inputs=(1, 2)), Layer(2, "identity", inputs=(1, 3))),
        "mse",
    )
    report = _check(net, "skip-overwritten", 1)
    assert report.root_cause == "layer1"
    assert report.param("layer1.Delta").verdict is Verdict.FAIL
    assert "summed over every consumer" in report.next_step
    for r in (2, 3, 4):
        assert report.layer(f"layer{r}").verdict is Verdict.PASS


@settings(max_examples=15)
@given(
    depth=st.integers(2, 4),
    width=st.integers(2, 6),
    at=st.integers(1, 4),
    bug=st.sampled_from(["no-activation-derivative", "transposed-weight", "bias-summed"]),
    seed=st.integers(0, 2**16),
)
def test_planted_bugs_are_found_at_the_right_layer_on_random_networks(depth, width, at, bug, seed):
    at = min(at, depth)
    if bug == "transposed-weight":
        at = max(at, 2)
    net = Network(width, tuple(Layer(width, "tanh") for _ in range(depth)), "mse")
    report = _check(net, bug, at, batch=3, seed=seed)
    expected = f"layer{at - 1}" if bug == "transposed-weight" else f"layer{at}"
    assert report.root_cause == expected, report.to_markdown()
