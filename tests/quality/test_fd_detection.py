"""The finite-difference oracle must never miss: its accuracy per method on smooth networks,
planted one-entry errors caught with and without the JAX oracle, and a cost of `auto` that
grows with the number of layers, not of parameters.

Relative error of a finite-difference array against the backprop gradient g of the same array:

    max_i |fd_i - g_i| / max(max_i |g_i|, |L|)

with L the loss. The |L| term is there because every finite difference subtracts values of L:
its round-off is eps |L| / h whatever g is, so an array whose gradient is 1e-4 of the loss
cannot honestly be asked for a relative accuracy 1e4 times better than the loss allows.
"""

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings

import reference
import verifier.autodiff
from verifier.check import _network_objective, verify_network
from verifier.compare import Blame, Verdict
from verifier.finite_diff import Items, estimate
from verifier.strategies import cases

SMOOTH = ["tanh", "sigmoid", "identity", "softplus", "gelu", "gelu_tanh", "silu", "sin"]
SMOOTH_LOSSES = ["mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"]
ACCURACY = {"central": 1e-9, "richardson": 1e-11, "complex-step": 1e-14}


def _reference_arrays(net, params, x, y):
    """path -> the reference's gradient of every checked array, float64."""
    grads, deltas = reference.backward(net, params, reference.forward(net, params, x), y)
    out = {}
    for r, name in enumerate(net.layer_names, start=1):
        out[f"{name}.W"], out[f"{name}.b"], out[f"{name}.Delta"] = grads[name]["W"], grads[name]["b"], deltas[r]
    return out


@settings(max_examples=20, deadline=None)
@given(cases(activations=SMOOTH, losses=SMOOTH_LOSSES, max_depth=3, max_width=6, max_batch=4))
def test_each_method_reaches_its_accuracy_on_every_array_of_a_smooth_float64_network(case):
    x, y = case.data()
    params = case.params()
    objective, theta, slots = _network_objective(case.net, params, x, y)
    loss = abs(float(reference.loss(case.net, reference.forward(case.net, params, x), y)))
    exact = _reference_arrays(case.net, params, x, y)
    scale = np.concatenate([s.magnitude for s in slots])
    for method, limit in ACCURACY.items():
        est = estimate(
            objective, theta, Items(entries=np.arange(theta.size)), scale, method=method, supports_complex=True
        )
        assert set(est.method) == {method}
        for s in slots:
            g = exact[s.path].ravel()
            fd = est.value[s.start : s.start + s.size]
            rel = np.max(np.abs(fd - g)) / max(np.max(np.abs(g)), loss, np.finfo(np.float64).tiny)
            assert rel <= limit, f"{method} {s.path}: {rel:.2e}"


# --- planted errors -----------------------------------------------------------------------------


def _planted(path, index, factor):
    """The reference backward with one entry of one array multiplied by `factor`."""
    layer, key = path.split(".")

    def backward(net, params, trace, y):
        grads, deltas = reference.backward(net, params, trace, y)
        grads = {n: {k: v.copy() for k, v in g.items()} for n, g in grads.items()}
        deltas = [d.copy() for d in deltas]
        target = deltas[int(layer.removeprefix("layer"))] if key == "Delta" else grads[layer][key]
        target.reshape(-1)[index] *= factor
        return grads, deltas

    return backward


def _plant(case, relative, at_least):
    """A layer, an array (W, b or Delta) and an entry of it, drawn from a seeded generator of the
    case: the entry is one whose magnitude is at least `at_least` times its array's largest,
    since an entry far below that sits under the round-off floor of its array."""
    rng = np.random.default_rng([case.params_seed, case.data_seed, 11])
    x, y = case.data()
    params = case.params()
    layer = f"layer{rng.integers(1, case.net.depth + 1)}"
    path = f"{layer}.{rng.choice(['W', 'b', 'Delta'])}"
    g = np.abs(_reference_arrays(case.net, params, x, y)[path].astype(np.float64)).ravel()
    assume(g.max() > 0)
    index = int(rng.choice(np.flatnonzero(g >= at_least * g.max())))
    return params, x, y, path, _planted(path, index, 1 + relative)


def _oracles(which):
    """The JAX oracle as it is, or failing as if JAX were not installed: then finite
    differences alone decide."""
    if which == "with-jax":
        return contextlib.nullcontext()
    return mock.patch.object(verifier.autodiff, "jax_gradients", side_effect=RuntimeError("JAX is not installed"))


def _assert_caught(report, path, oracles):
    assert [p.path for p in report.failures] == [path], report.to_markdown()
    assert report.param(path).blame is Blame.HAND_WRITTEN
    assert report.root_cause == path.split(".")[0]
    assert report.meta["jax"]["used"] is (oracles == "with-jax")


@pytest.mark.parametrize("oracles", ["with-jax", "finite-differences-only"])
@pytest.mark.parametrize("mode", ["full", "auto"])
@settings(max_examples=12, deadline=None)
@given(case=cases(max_depth=4, max_width=8, max_batch=4))
def test_a_one_in_a_million_error_in_one_float64_entry_is_caught(oracles, mode, case):
    params, x, y, path, backward = _plant(case, 1e-6, at_least=1e-3)
    with _oracles(oracles):
        report = verify_network(case.net, params, x, y, backward=backward, mode=mode)
    _assert_caught(report, path, oracles)


@settings(max_examples=12, deadline=None)
@given(case=cases(dtype=np.float32, max_depth=4, max_width=8, max_batch=4))
def test_a_one_percent_error_in_one_float32_entry_is_caught_by_jax_in_auto_mode(case):
    params, x, y, path, backward = _plant(case, 1e-2, at_least=0.5)
    report = verify_network(case.net, params, x, y, backward=backward, mode="auto")
    _assert_caught(report, path, "with-jax")


@settings(max_examples=12, deadline=None)
@given(case=cases(dtype=np.float32, max_depth=4, max_width=8, max_batch=4))
def test_a_one_percent_error_in_one_float32_entry_is_caught_by_finite_differences_alone(case):
    params, x, y, path, backward = _plant(case, 1e-2, at_least=0.5)
    with _oracles("finite-differences-only"):
        report = verify_network(case.net, params, x, y, backward=backward, mode="full")
    _assert_caught(report, path, "finite-differences-only")


def test_the_same_error_one_order_of_magnitude_below_round_off_is_not_reported():
    # the other side of detection: 1e-13 in float64 is round-off, not a bug
    net = reference.Network(3, (reference.Layer(4, "tanh"), reference.Layer(2, "identity")), "mse")
    params = reference.init_params(net, seed=1)
    x, y = np.random.default_rng(2).normal(size=(3, 3)), np.zeros((3, 2))
    report = verify_network(net, params, x, y, backward=_planted("layer1.W", 0, 1 + 1e-13), mode="full")
    assert report.ok, report.to_markdown()


# --- cost ---------------------------------------------------------------------------------------


class _Counter:
    def __init__(self):
        self.calls = 0
        self.points = 0


def _count_objective(monkeypatch):
    """Wrap the network objective so that every call and every point it evaluates is counted."""
    import verifier.check as check

    counter = _Counter()
    original = check._network_objective

    def counting(net, params, x, y, **options):
        objective, theta, slots = original(net, params, x, y, **options)

        def wrapped(points):
            counter.calls += 1
            counter.points += len(points)
            return objective(points)

        return wrapped, theta, slots

    monkeypatch.setattr(check, "_network_objective", counting)
    return counter


def _auto_cost(monkeypatch, depth, width):
    net = reference.Network(3, tuple(reference.Layer(width, "tanh") for _ in range(depth)), "mse")
    params = reference.init_params(net, seed=depth)
    x = np.random.default_rng(width).normal(size=(4, 3))
    y = np.zeros((4, width))
    counter = _count_objective(monkeypatch)
    report = verify_network(net, params, x, y, mode="auto")
    assert report.ok and report.verdict is Verdict.PASS, report.to_markdown()
    per_param = {p.finite_differences["evaluations"] for layer in report.layers for p in layer.params}
    assert len(per_param) == 1  # one batched run serves every array
    n_params = sum(v.size for layer in params.values() for v in layer.values())
    return counter.calls, counter.points, per_param.pop(), n_params


def test_auto_mode_costs_the_same_for_networks_of_equal_depth_whatever_their_width(monkeypatch):
    narrow = _auto_cost(monkeypatch, depth=3, width=2)
    wide = _auto_cost(monkeypatch, depth=3, width=16)
    assert wide[3] > 20 * narrow[3]  # very different numbers of parameters...
    assert wide[:3] == narrow[:3]  # ...the same calls, points and evaluations


@pytest.mark.parametrize("with_jax", [True, False], ids=["with-jax", "finite-differences-alone"])
def test_auto_mode_cost_grows_by_a_constant_per_layer_in_a_constant_number_of_calls(monkeypatch, with_jax):
    if not with_jax:
        import verifier.autodiff

        def unavailable(*args):
            raise RuntimeError("no JAX here")

        monkeypatch.setattr(verifier.autodiff, "jax_gradients", unavailable)
    costs = [_auto_cost(monkeypatch, depth=d, width=5) for d in (1, 2, 3, 4)]
    calls = {c[0] for c in costs}
    points = [c[1] for c in costs]
    assert len(calls) == 1 and calls.pop() <= 3  # centre, complex steps: vectorized
    steps = np.diff(points)
    assert np.all(steps == steps[0]) and steps[0] > 0
    # per layer: three arrays (W, b, Delta), one complex step per random direction (the reference
    # is known analytic: one tiny step, no second step, no cross-check); one direction per array
    # when JAX answers every entry beside it, two when finite differences are the only oracle
    assert steps[0] == 3 * (1 if with_jax else 2) * 1
