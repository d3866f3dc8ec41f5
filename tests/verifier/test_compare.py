"""The tolerance model, pairwise comparison, arbitration, and the term magnitudes that bound
round-off where a gradient is a cancelling sum."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from reference import Layer, Network
from verifier.compare import (
    SLOPE_ROUNDOFF,
    TERMS_EPS_MULTIPLE,
    Blame,
    Pair,
    Status,
    Tolerance,
    Verdict,
    arbitrate,
    compare,
    compare_segments,
    slope_scale,
    term_magnitudes,
)
from verifier.strategies import cases

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


# --- the tolerance model ------------------------------------------------------------------------


def test_the_model_tolerance_adds_the_error_bar_the_dtype_round_off_and_the_cancelled_terms():
    oracle, bar, terms = np.array([2.0, -0.5]), np.array([1e-9, 0.0]), np.array([0.0, 8.0])
    got = Tolerance().bounds(oracle, bar, 3.0, F32, terms)
    eps = np.finfo(np.float32).eps
    assert got == pytest.approx(10 * bar + 1e4 * eps * (np.abs(oracle) + 3.0) + 64 * eps * terms, rel=1e-15)


def test_the_model_tolerance_scales_with_the_gradient_dtype():
    args = (np.array([1.0]), np.zeros(1), 1.0)
    ratio = Tolerance().bounds(*args, F32)[0] / Tolerance().bounds(*args, F64)[0]
    assert ratio == pytest.approx(np.finfo(np.float32).eps / np.finfo(np.float64).eps)


def test_a_user_tolerance_replaces_the_model_but_keeps_the_finite_difference_error_bar():
    tol = Tolerance(rtol=1e-3, atol=1e-6)
    got = tol.bounds(np.array([2.0]), np.array([1e-5]), 100.0, F32, np.array([1e6]))
    assert got[0] == pytest.approx(1e-6 + 1e-3 * 2.0 + 10 * 1e-5)
    assert tol.describe(F32) == {"source": "user", "rtol": 1e-3, "atol": 1e-6, "fd_safety": 10.0}
    assert Tolerance().describe(F32)["rtol"] == pytest.approx(1e4 * np.finfo(np.float32).eps)


# --- comparing two sides ------------------------------------------------------------------------


def test_entries_within_tolerance_agree_and_the_worst_entry_is_reported_with_its_multi_index():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = a + np.array([[0.0, 1e-3], [0.0, 0.0]])
    c = compare("hand-written", "jax", "entrywise", a, b, np.full(4, 1e-2), shape=(2, 2))
    assert c.status is Status.AGREE and c.n == 4 and c.n_disagree == 0
    assert c.worst_index == [0, 1] and c.worst_a == 2.0 and c.worst_b == pytest.approx(2.001)


def test_one_entry_beyond_its_tolerance_is_a_disagreement():
    c = compare("hand-written", "jax", "entrywise", np.array([1.0, 2.0]), np.array([1.0, 2.1]), np.full(2, 1e-3))
    assert c.status is Status.DISAGREE and c.n_disagree == 1 and c.worst_index == [1]
    assert c.max_rel_err == pytest.approx(0.1 / 2.1)


def test_a_nan_on_the_checked_side_is_a_disagreement_whatever_the_tolerance():
    c = compare("hand-written", "jax", "entrywise", np.array([np.nan, 1.0]), np.array([0.5, 1.0]), np.full(2, 1e9))
    assert c.status is Status.DISAGREE and c.worst_index == [0]


def test_an_item_whose_tolerance_cannot_be_computed_never_agrees():
    same = np.array([1.0, 2.0])
    c = compare("hand-written", "jax", "entrywise", same, same, np.array([1e-3, np.nan]))
    assert c.status is Status.DISAGREE and c.n_disagree == 1
    skipped = compare(
        "hand-written", "jax", "entrywise", np.ones(2), np.array([1.0, np.nan]), np.array([1e-3, np.nan])
    )
    assert skipped.status is Status.AGREE  # a non-finite oracle item is skipped, its tolerance with it


def test_inconclusive_items_count_neither_way_and_all_of_them_make_the_comparison_inconclusive():
    a, b, tol = np.array([1.0, 5.0]), np.array([1.0, 1.0]), np.full(2, 1e-6)
    partly = compare("hand-written", "finite-differences", "entrywise", a, b, tol, inconclusive=np.array([False, True]))
    assert partly.status is Status.AGREE and partly.n_inconclusive == 1 and partly.max_abs_err == 0.0
    allof = compare("hand-written", "finite-differences", "entrywise", a, b, tol, inconclusive=np.array([True, True]))
    assert allof.status is Status.INCONCLUSIVE


@st.composite
def _segments(draw: st.DrawFn) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    value = st.one_of(st.floats(-10, 10), st.sampled_from([0.0, np.nan, np.inf, -np.inf]))
    out = []
    for n in draw(st.lists(st.integers(0, 6), min_size=1, max_size=6)):
        a = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
        b = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
        tol = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=np.float64)
        kink = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        out.append((a, b, tol, kink))
    return out


@given(_segments())
@settings(max_examples=200)
def test_a_batched_comparison_gives_every_segment_what_it_gets_alone_and_the_direct_metrics(segments):
    pairs = [Pair("hand-written", "finite-differences", "entrywise", (len(seg[0]),)) for seg in segments]
    joined = [np.concatenate([seg[k] for seg in segments]) for k in range(4)]
    bar = joined[2] / 7
    batched = compare_segments(pairs, [len(seg[0]) for seg in segments], *joined[:3], bar, joined[3])
    for (a, b, tol, kink), got in zip(segments, batched, strict=True):
        alone = compare("hand-written", "finite-differences", "entrywise", a, b, tol, tol / 7, kink, (len(a),))
        assert repr(got) == repr(alone)  # repr: a NaN worst value equals itself
        if len(a) == 0:
            assert got.status is Status.INCONCLUSIVE and got.n == 0
            continue
        counted = ~kink & np.isfinite(b)
        with np.errstate(invalid="ignore"):
            err = np.where(counted, np.abs(a - b), 0.0)
        err[np.isnan(err)] = np.inf
        assert got.n_disagree == int(np.sum(err > tol)) and got.n_inconclusive == int(np.sum(~counted))
        assert got.max_abs_err == err.max()
        if got.n_disagree:  # the worst entry is one beyond its tolerance, shown with both values
            i = got.worst_index[0]
            assert err[i] > tol[i] and got.worst_tol == tol[i] and got.worst_error_bar == tol[i] / 7


# --- arbitration --------------------------------------------------------------------------------

A, D, I, U = Status.AGREE, Status.DISAGREE, Status.INCONCLUSIVE, Status.UNAVAILABLE
ARBITRATION = [
    ("all-agree", (A, A, A), Verdict.PASS, Blame.NONE),
    ("fd-off-at-a-kink", (A, D, D), Verdict.PASS, Blame.FINITE_DIFFERENCES),
    ("hand-wrong", (D, D, A), Verdict.FAIL, Blame.HAND_WRITTEN),
    ("jax-model-wrong", (D, A, D), Verdict.FAIL, Blame.JAX),
    ("below-fd-resolution", (D, A, A), Verdict.FAIL, Blame.HAND_WRITTEN),
    ("nobody-agrees", (D, D, D), Verdict.FAIL, Blame.UNDETERMINED),
    ("jax-only-at-kinks", (D, I, I), Verdict.FAIL, Blame.HAND_WRITTEN),
    ("fd-only-pass", (U, A, U), Verdict.PASS, Blame.NONE),
    ("fd-only-fail", (U, D, U), Verdict.FAIL, Blame.HAND_WRITTEN),
    ("fd-only-kinks", (U, I, U), Verdict.INCONCLUSIVE, Blame.NONE),
    ("no-oracle", (U, U, U), Verdict.INCONCLUSIVE, Blame.NONE),
]


@pytest.mark.parametrize(
    "statuses,verdict,blame", [row[1:] for row in ARBITRATION], ids=[row[0] for row in ARBITRATION]
)
def test_arbitration_gives_the_verdict_and_names_whose_gradient_is_wrong(statuses, verdict, blame):
    got_verdict, got_blame, why = arbitrate(*statuses)
    assert (got_verdict, got_blame) == (verdict, blame)
    assert why


# --- term magnitudes ------------------------------------------------------------------------------

LINEAR = Network(2, (Layer(1, "identity"),), "mse")


def test_term_magnitudes_of_a_linear_layer_are_the_absolute_values_of_what_its_gradients_sum():
    params = {"layer1": {"W": np.array([[2.0, -3.0]]), "b": np.array([0.5])}}
    x, y = np.array([[1.0, 1.0], [2.0, -1.0]]), np.array([[0.0], [4.0]])
    o = x @ params["layer1"]["W"].T + 0.5  # [[-0.5], [7.5]]
    forward_terms = np.abs(x) @ np.abs(params["layer1"]["W"]).T + 0.5  # |W| |x| + |b|
    slope = 1.0 + (1.0 + np.abs(o)) / 16  # identity' = 1, plus its round-off allowance
    top = np.abs(o - y) / 2 + (np.abs(y) + slope * forward_terms) / 2  # batch 2
    t = term_magnitudes(LINEAR, params, x, y)
    assert t["layer1.Delta"] == pytest.approx(top)
    assert t["layer1.b"] == pytest.approx((top * slope).sum(axis=0))
    assert t["layer1.W"] == pytest.approx((top * slope).T @ np.abs(x))


def test_every_checked_array_of_a_network_gets_term_magnitudes_of_its_shape():
    net = Network(3, (Layer(4, "tanh"), Layer(2, "relu", inputs=(0, 1)), Layer(2, "identity", inputs=(1, 2))), "huber")
    params = reference.init_params(net, seed=3)
    x, y = np.ones((5, 3)), np.zeros((5, 2))
    t = term_magnitudes(net, params, x, y)
    assert set(t) == {f"{name}.{k}" for name in net.layer_names for k in ("W", "b", "Delta")}
    for name, layer in params.items():
        assert t[f"{name}.W"].shape == layer["W"].shape and t[f"{name}.b"].shape == layer["b"].shape
    assert all(np.all(v >= 0) for v in t.values())


def _cancelling_case(dtype):
    """mse on relu(W x + b): the bias gradient mean(o - y) is exactly 0 (2.5 once, -0.5 five times)."""
    net = Network(4, (Layer(1, "relu"),), "mse")
    params = {"layer1": {"W": np.ones((1, 4), dtype), "b": np.array([0.5], dtype)}}
    x = np.zeros((6, 4), dtype)
    x[0, :3] = 1.0
    return net, params, x, np.ones((6, 1), dtype)


def test_a_float32_gradient_that_sums_to_zero_is_off_by_round_off_only_the_term_floor_allows():
    net, params, x, y = _cancelling_case(np.float32)
    g32 = reference.backward(net, params, reference.forward(net, params, x), y)[0]["layer1"]["b"]
    exact = 0.0  # (2.5 - 5 * 0.5) / 6
    err = abs(float(g32[0]) - exact)
    assert err > 0  # float32 does leave round-off here
    terms = term_magnitudes(net, params, x, y)["layer1.b"]
    tol = Tolerance()
    without = tol.bounds(np.zeros(1), np.zeros(1), 0.0, F32)
    with_terms = tol.bounds(np.zeros(1), np.zeros(1), 0.0, F32, terms)
    assert err > without[0] and err <= with_terms[0]


@settings(max_examples=60, deadline=None)
@given(cases(dtype=np.float32, values="drawn", max_width=5, max_depth=3, max_batch=5))
def test_float32_round_off_of_the_reference_stays_within_the_model_tolerance_with_term_magnitudes(case):
    x, y = case.data()
    p32 = case.params()
    g32, d32 = reference.backward(case.net, p32, reference.forward(case.net, p32, x), y)
    p64 = {n: {k: v.astype(np.float64) for k, v in layer.items()} for n, layer in p32.items()}
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    g64, d64 = reference.backward(case.net, p64, reference.forward(case.net, p64, x64), y64)
    terms = term_magnitudes(case.net, p32, x, y)
    for r, name in enumerate(case.net.layer_names, start=1):
        sides = {
            "W": (g32[name]["W"], g64[name]["W"]),
            "b": (g32[name]["b"], g64[name]["b"]),
            "Delta": (d32[r], d64[r]),
        }
        for key, (hand, exact) in sides.items():
            bound = Tolerance().bounds(exact, np.zeros_like(exact), np.max(np.abs(exact)), F32, terms[f"{name}.{key}"])
            assert np.all(np.abs(hand.astype(np.float64) - exact) <= bound), f"{name}.{key}"


@settings(max_examples=60, deadline=None)
@given(cases(dtype=np.float32, max_width=8, max_depth=4))
def test_the_term_floor_leaves_a_one_percent_error_in_a_float32_gradients_largest_entry_detectable(case):
    x, y = case.data()
    params = case.params()
    grads, deltas = reference.backward(case.net, params, reference.forward(case.net, params, x), y)
    terms = term_magnitudes(case.net, params, x, y)
    for r, name in enumerate(case.net.layer_names, start=1):
        for key, g in (("W", grads[name]["W"]), ("b", grads[name]["b"]), ("Delta", deltas[r])):
            g = g.astype(np.float64).ravel()
            t = terms[f"{name}.{key}"].ravel()
            i = int(np.argmax(np.abs(g)))
            # where the terms cancel a thousandfold (|g| ~ 1e-3 of the sum of |terms|), float32
            # round-off itself approaches 1% of the entry: the claim is for the other entries
            if g[i] == 0 or t[i] > 100 * abs(g[i]):
                continue
            bound = Tolerance().bounds(g, np.zeros_like(g), np.max(np.abs(g)), F32, t)
            assert 1e-2 * abs(g[i]) > bound[i], f"{name}.{key}"


# --- the round-off of the JAX oracle's activation derivatives ------------------------------------


def _exact_derivative(name: str, a: float) -> float:
    import mpmath as mp

    with mp.workdps(50):
        x = mp.mpf(a)
        s = 1 / (1 + mp.exp(-x))
        if name == "gelu_tanh":
            c = mp.sqrt(2 / mp.pi)
            u = c * (x + mp.mpf("0.044715") * x**3)
            du = c * (1 + 3 * mp.mpf("0.044715") * x**2)
            return float((1 + mp.tanh(u)) / 2 + x * mp.sech(u) ** 2 * du / 2)
        exact = {
            "sigmoid": lambda: s * (1 - s),
            "tanh": lambda: mp.sech(x) ** 2,
            "softplus": lambda: s,
            "gelu": lambda: mp.ncdf(x) + x * mp.npdf(x),
            "silu": lambda: s + x * s * (1 - s),
            "sin": lambda: mp.cos(x),
            "elu": lambda: mp.exp(x) if x < 0 else mp.mpf(1),
        }
        return float(exact[name]())


SMOOTH = ["sigmoid", "tanh", "softplus", "gelu", "gelu_tanh", "silu", "sin", "elu"]
GRID = np.concatenate([np.linspace(-40.0, 40.0, 161), np.linspace(-9.0, -5.0, 161), np.linspace(5.0, 9.0, 41)])


@pytest.mark.parametrize("name", SMOOTH)
def test_the_jax_oracles_activation_derivatives_stay_within_the_slope_round_off_the_model_allows(name):
    """The model holds JAX's gradients exact up to 4 eps * slope_scale(a) per slope. gelu_tanh's
    derivative by autodiff loses up to 165 eps near a = -7.35 (its true value there: 1.4e-15),
    beyond 4 eps (1 + |a|): slope_scale adds |a u'(a)| for it."""
    import jax

    from verifier.autodiff import _activations

    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(jax.grad(_activations()[name]))(GRID))
    exact = np.array([_exact_derivative(name, a) for a in GRID])
    allowed = TERMS_EPS_MULTIPLE * np.finfo(np.float64).eps * SLOPE_ROUNDOFF * slope_scale(name, GRID)
    worst = np.max(np.abs(got - exact) / allowed)
    assert worst <= 1.0, f"{name}: {worst:.2f} of the allowance"


def test_without_the_cubic_term_gelu_tanhs_round_off_would_exceed_the_allowance():
    """The measurement behind slope_scale's gelu_tanh term: 1 + |a| alone does not cover it."""
    import jax

    from verifier.autodiff import _activations

    a = np.linspace(-7.6, -7.0, 61)
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(jax.grad(_activations()["gelu_tanh"]))(a))
    exact = np.array([_exact_derivative("gelu_tanh", v) for v in a])
    error = np.abs(got - exact)
    assert np.max(error / (TERMS_EPS_MULTIPLE * np.finfo(np.float64).eps * SLOPE_ROUNDOFF * (1 + np.abs(a)))) > 2
    assert np.all(slope_scale("gelu_tanh", a) > 5 * (1 + np.abs(a)))
    np.testing.assert_array_equal(slope_scale("tanh", a), 1 + np.abs(a))
    # where tanh(u) is exactly +-1 both terms are exact: no widening there, in any dtype
    far = np.array([-40.0, -10.0, 10.0, 40.0, 1e200])
    np.testing.assert_array_equal(slope_scale("gelu_tanh", far), 1 + np.abs(far))
