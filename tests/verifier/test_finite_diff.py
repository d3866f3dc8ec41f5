"""The numerical oracle on functions whose derivatives are known: accuracy and honest error bars
per method, the complex step's safety net, kinks with and without a signature, round-off noise,
non-finite points, and what it costs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.errors import InvalidArgument
from verifier.finite_diff import (
    EPS,
    Estimate,
    Evaluation,
    Items,
    _step,
    estimate,
    random_directions,
    random_directions_for,
)

THETA = np.array([0.3, -1.2, 2.5, 0.0, 7.0])


def smooth(points):
    """f = sum sin(t) exp(t / 3) + t^4 / 20, vectorized over a stack of points (m, n)."""
    return np.sum(np.sin(points) * np.exp(points / 3) + points**4 / 20, axis=-1)


def smooth_grad(t):
    return np.cos(t) * np.exp(t / 3) + np.sin(t) * np.exp(t / 3) / 3 + t**3 / 5


class Counting:
    """An objective that counts its calls and the points it evaluated."""

    def __init__(self, f, signature=None):
        self.f, self.signature, self.calls, self.points = f, signature, 0, 0

    def __call__(self, points):
        self.calls += 1
        self.points += len(points)
        sig = None if self.signature is None else self.signature(np.real(points))
        return Evaluation(self.f(points), sig)


def run(f, theta=THETA, method="auto", supports_complex=True, signature=None, entries=None, **kw):
    objective = Counting(f, signature)
    items = Items(entries=np.arange(theta.size) if entries is None else np.asarray(entries))
    scale = np.abs(theta[items.entries])
    est = estimate(objective, theta, items, scale, method=method, supports_complex=supports_complex, **kw)
    return est, objective


# --- accuracy and error bars on smooth functions ------------------------------------------------

ACCURACY = [("central", 1e-9), ("richardson", 1e-11), ("complex-step", 1e-14), ("auto", 1e-14)]


@pytest.mark.parametrize("method,limit", ACCURACY, ids=[m for m, _ in ACCURACY])
def test_every_method_reaches_its_accuracy_on_a_smooth_function_and_its_error_bar_covers_the_error(method, limit):
    est, _ = run(smooth, method=method)
    truth = smooth_grad(THETA)
    err = np.abs(est.value - truth)
    assert np.max(err) / np.max(np.abs(truth)) <= limit
    assert np.all(err <= est.error)
    assert not est.kink.any()


def test_the_method_of_every_item_is_recorded():
    assert set(run(smooth, method="central")[0].method) == {"central"}
    assert set(run(smooth, method="richardson")[0].method) == {"richardson"}
    assert set(run(smooth, method="auto")[0].method) == {"complex-step"}
    assert set(run(smooth, method="auto", supports_complex=False)[0].method) == {"richardson"}


@settings(max_examples=40, deadline=None)
@given(
    coef=st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    freq=st.floats(0.1, 4.0),
    center=st.floats(-5, 5),
    method=st.sampled_from(["central", "richardson", "complex-step"]),
)
def test_error_bars_cover_the_actual_error_on_random_smooth_functions(coef, freq, center, method):
    a, b, c = coef

    def f(p):
        return np.sum(a * np.sin(freq * p) + b * np.cosh(p / 4) + c * p**3, axis=-1)

    theta = np.array([center, center / 2 + 0.1])
    truth = a * freq * np.cos(freq * theta) + b * np.sinh(theta / 4) / 4 + 3 * c * theta**2
    est, _ = run(f, theta=theta, method=method)
    assert np.all(np.abs(est.value - truth) <= est.error)


def test_along_dense_directions_the_derivative_is_the_projection_of_the_gradient():
    rng = np.random.default_rng(5)
    dirs = rng.standard_normal((3, THETA.size))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    truth = dirs @ smooth_grad(THETA)
    for method in ("richardson", "complex-step"):
        items = Items(directions=dirs)
        est = estimate(Counting(smooth), THETA, items, np.full(3, 7.0), method=method, supports_complex=True)
        assert np.all(np.abs(est.value - truth) <= est.error)


def test_a_derivative_that_is_exactly_zero_next_to_tiny_values_is_not_a_false_nonzero():
    # everything near 1e-38: the complex step's h^2 f''' term is then as large as the derivative
    def f(p):
        return np.sum(0.5 * np.sin(p) ** 2, axis=-1)

    theta = np.array([1e-38, 0.0])
    est, _ = run(f, theta=theta, method="complex-step")
    truth = np.sin(theta) * np.cos(theta)
    assert np.all(np.abs(est.value - truth) <= est.error)


def test_round_off_noise_in_the_function_widens_the_error_bars_instead_of_faking_precision():
    def noisy(p):  # a deterministic 1e-9 noise, as from a long float32-ish computation
        jitter = np.sin(np.sum(p, axis=-1) * 1e9) * 1e-9
        return smooth(p) + jitter

    for method in ("central", "richardson"):
        est, _ = run(noisy, method=method, supports_complex=False)
        err = np.abs(est.value - smooth_grad(THETA))
        assert np.all(err <= est.error)
        assert np.max(err) > 1e-6  # the noise is really there: 1e-9 / h


# --- the method option and the complex step's safety net ----------------------------------------

BAD_METHODS = [("misspelt", "richardsen"), ("empty", ""), ("number", 3)]


@pytest.mark.parametrize("value", [v for _, v in BAD_METHODS], ids=[i for i, _ in BAD_METHODS])
def test_an_unknown_method_raises_invalid_argument_naming_the_choices(value):
    with pytest.raises(InvalidArgument, match=r"method=.*is not a valid choice.*'richardson'"):
        run(smooth, method=value)


def test_complex_step_on_a_function_declared_real_only_raises_a_clear_error():
    with pytest.raises(InvalidArgument, match="method='complex-step': the function does not accept complex input"):
        run(smooth, method="complex-step", supports_complex=False)


def _rejects_complex(points):
    if np.iscomplexobj(points):
        raise TypeError("complex input not supported")
    return smooth(points)


def _drops_imaginary(points):
    return smooth(np.asarray(points, dtype=np.float64))  # warns: ComplexWarning


def _real_part(points):
    return smooth(np.real(points)) + 0 * points[:, 0]


def _absolute_value(points):
    return np.sum(np.abs(points - 0.5) + np.sin(points), axis=-1)  # |z| is not analytic


NOT_ANALYTIC = [
    ("raises", _rejects_complex, "raised TypeError"),
    ("casts-to-float", _drops_imaginary, "raised ComplexWarning"),
    ("takes-the-real-part", _real_part, "not analytic"),
    ("absolute-value", _absolute_value, "not analytic"),
]


@pytest.mark.parametrize("f,why", [(f, w) for _, f, w in NOT_ANALYTIC], ids=[i for i, _, _ in NOT_ANALYTIC])
def test_auto_falls_back_to_richardson_when_the_complex_step_cannot_be_trusted(f, why):
    est, _ = run(f, method="auto")
    assert set(est.method) == {"richardson"}
    assert any(why in note for note in est.notes)
    truth = smooth_grad(THETA) if f is not _absolute_value else np.sign(THETA - 0.5) + np.cos(THETA)
    assert np.all(np.abs(est.value - truth) <= est.error)


@pytest.mark.parametrize("f,why", [(f, w) for _, f, w in NOT_ANALYTIC], ids=[i for i, _, _ in NOT_ANALYTIC])
def test_an_explicit_complex_step_on_such_a_function_raises_instead_of_answering_wrong(f, why):
    with pytest.raises(InvalidArgument, match=f"method='complex-step': .*{why}.*use method='auto'"):
        run(f, method="complex-step")


def test_a_cross_check_that_cannot_decide_falls_back_in_auto_and_keeps_an_explicit_complex_step():
    # |t - 0.8| written per side of the kink, so that complex input goes through; at theta = 0.8
    # every real stencil meets the kink and the cross-check cannot decide
    def f(points):
        return np.sum(np.where(np.real(points) > 0.8, points - 0.8, 0.8 - points), axis=-1)

    theta = np.array([0.8, 0.8])
    auto, _ = run(f, theta=theta, method="auto")
    assert set(auto.method) == {"kink"} and "met a kink" in auto.notes[0]
    explicit, _ = run(f, theta=theta, method="complex-step")
    assert set(explicit.method) == {"complex-step"} and "not cross-checked" in explicit.notes[0]


def test_the_cross_check_costs_a_constant_number_of_points_whatever_the_number_of_items():
    costs = []
    for n in (3, 300):
        theta = np.linspace(-1, 1, n)
        est, objective = run(smooth, theta=theta, method="auto")
        assert objective.points == est.evaluations
        costs.append(est.evaluations - 1 - 2 * n)  # less the centre and two complex steps per item
    assert costs[0] == costs[1] == 6 + 6  # a richardson stencil along one combination, and its noise probe


# --- kinks with a signature (the reference's pre-activation signs) -------------------------------


def relu_sum(kink):
    """f = sum relu(t - kink) + 0.1 t^2 with its signature sign(t - kink)."""

    def f(points):
        return np.sum(np.where(np.real(points) > kink, points - kink, 0.0) + 0.1 * points**2, axis=-1)

    def signature(points):
        return np.sign(points - kink).astype(np.int8)

    return f, signature


@pytest.mark.parametrize("offset", [0.7, 1.5, 3.0, -0.7, -1.5, -3.0])
@pytest.mark.parametrize("method", ["central", "richardson"])
def test_a_kink_inside_the_stencil_is_skipped_by_a_one_sided_difference_from_the_clean_side(offset, method):
    theta = np.array([1.0])
    h = _step(np.array([1.0]), method)[0]
    f, signature = relu_sum(1.0 + offset * h)  # the kink is `offset` steps away
    est, _ = run(f, theta=theta, method=method, signature=signature)
    truth = (1.0 if offset < 0 else 0.0) + 0.2
    assert not est.kink[0]
    assert abs(est.value[0] - truth) <= est.error[0] <= 1e-6


def test_a_centre_exactly_on_a_kink_that_the_item_moves_is_a_kink():
    f, signature = relu_sum(1.0)
    est, _ = run(f, theta=np.array([1.0, 2.0]), method="auto", signature=signature)
    assert est.kink.tolist() == [True, False]
    assert est.method[0] == "kink" and est.method[1] == "complex-step"
    assert est.value[1] == pytest.approx(1.0 + 0.4, rel=1e-14)


def test_a_centre_on_a_kink_whose_two_sides_agree_gives_the_common_derivative():
    # the kinked unit's output is multiplied by zero: both one-sided derivatives are equal
    def f(points):
        return np.sum(0.0 * np.maximum(np.real(points) - 1.0, 0.0) + np.sin(points), axis=-1)

    est, _ = run(f, theta=np.array([1.0]), signature=lambda p: np.sign(p - 1.0).astype(np.int8))
    assert not est.kink[0]
    assert abs(est.value[0] - np.cos(1.0)) <= est.error[0] <= 1e-5  # a one-sided difference's bar


def test_complex_steps_are_kept_for_items_that_do_not_move_a_unit_sitting_on_a_kink():
    f, signature = relu_sum(0.0)
    theta = np.array([0.0, 0.5, -0.5])
    est, _ = run(f, theta=theta, method="auto", signature=signature)
    assert est.method == ["kink", "complex-step", "complex-step"]
    assert est.value[1:] == pytest.approx([1.0 + 0.1, -0.1], rel=1e-14)


# --- kinks without a signature (black boxes) ----------------------------------------------------


def abs_sum(kink):
    def f(points):
        return np.sum(np.abs(points - kink) + np.sin(points), axis=-1)

    return f


@settings(max_examples=60, deadline=None)
@given(offset=st.floats(-10, 10), method=st.sampled_from(["central", "richardson"]))
def test_a_kink_near_a_black_box_point_never_yields_a_value_outside_its_error_bar(offset, method):
    theta = np.array([0.8])
    h = _step(np.array([1.0]), method)[0]
    kink = 0.8 + offset * h
    est, _ = run(abs_sum(kink), theta=theta, method=method, supports_complex=False)
    if not est.kink[0]:
        truth = np.sign(0.8 - kink) + np.cos(0.8)
        assert abs(est.value[0] - truth) <= est.error[0]


def test_a_black_box_kink_exactly_at_the_point_is_reported_as_a_kink():
    est, _ = run(abs_sum(0.8), theta=np.array([0.8]), method="richardson", supports_complex=False)
    assert est.kink[0] and est.method[0] == "kink"


def test_a_black_box_kink_within_the_richardson_stencil_falls_back_to_the_smaller_central_step():
    h = _step(np.array([1.0]), "richardson")[0]
    est, objective = run(abs_sum(0.8 + 1.5 * h), theta=np.array([0.8]), method="richardson", supports_complex=False)
    assert not est.kink[0] and est.method[0] == "central"
    assert abs(est.value[0] - (-1 + np.cos(0.8))) <= est.error[0] <= 1e-8
    assert objective.points == 1 + 2 * (6 + 6)  # two stencils, each with its noise probe


@pytest.mark.parametrize("offset", [0.0, 0.5, 1.5, 3.0])
def test_a_jump_in_the_second_derivative_is_covered_by_the_error_bar(offset):
    # huber-like: f'' jumps at the kink, f' is continuous; a richardson step loses its order
    h = _step(np.array([1.0]), "richardson")[0]
    kink = 0.8 + offset * h

    def f(points):
        r = np.real(points) - kink
        return np.sum(np.where(r > 0, 0.5 * (points - kink) ** 2, 0.0) + np.sin(points), axis=-1)

    est, _ = run(f, theta=np.array([0.8]), method="richardson", supports_complex=False)
    truth = max(0.8 - kink, 0.0) + np.cos(0.8)
    assert not est.kink[0], est.method
    assert abs(est.value[0] - truth) <= est.error[0]


# --- non-finite values --------------------------------------------------------------------------


def _log_sum(points):
    with np.errstate(invalid="ignore"):
        return np.sum(np.log(np.real(points)) + 0 * points, axis=-1)


def test_a_stencil_that_leaves_the_domain_makes_the_item_inconclusive_not_a_crash():
    est, _ = run(_log_sum, theta=np.array([1e-6, 2.0]), method="richardson", supports_complex=False)
    assert est.kink.tolist() == [True, False]
    assert est.method[0] == "non-finite"
    assert est.value[1] == pytest.approx(0.5, rel=1e-11)


def test_a_richardson_stencil_that_leaves_the_domain_falls_back_to_the_smaller_central_step():
    est, _ = run(_log_sum, theta=np.array([1e-4]), method="richardson", supports_complex=False)
    assert not est.kink[0] and est.method[0] == "central"
    assert abs(est.value[0] - 1e4) <= est.error[0] <= 1e-2 * 1e4


def test_a_non_finite_value_at_the_point_itself_makes_every_item_inconclusive():
    est, objective = run(lambda p: np.full(len(p), np.nan), method="auto")
    assert est.kink.all() and objective.calls == 1
    assert "no derivative can be estimated" in est.notes[0]


# --- cost and layout ----------------------------------------------------------------------------


@pytest.mark.parametrize("method,per_item", [("central", 6), ("richardson", 6), ("complex-step", 2)])
def test_each_method_costs_a_fixed_number_of_points_per_item_in_one_vectorized_call(method, per_item):
    for n in (4, 200):
        theta = np.linspace(-1, 1, n)
        est, objective = run(smooth, theta=theta, method=method)
        assert est.cost is not None and set(est.cost.tolist()) == {per_item}
        # shared: the stencil's noise probe (6 points, the centre reused); the complex step has
        # no stencil but its cross-check, a richardson stencil along a combination of the items
        shared = 6 + 6 if method == "complex-step" else 6
        assert est.evaluations == objective.points == 1 + per_item * n + shared
        assert objective.calls == (3 if method == "complex-step" else 2)


def test_items_are_split_into_chunks_of_the_given_size():
    theta = np.linspace(-1, 1, 10)
    _, objective = run(smooth, theta=theta, method="richardson", chunk=4)
    assert objective.calls == 1 + 3


def test_a_long_theta_is_sent_in_smaller_chunks_so_that_a_call_stays_within_the_point_budget(monkeypatch):
    import verifier.finite_diff as fd

    monkeypatch.setattr(fd, "POINT_BUDGET", 6 * 10 * 3)  # 3 items of a 10-entry theta per call
    theta = np.linspace(-1, 1, 10)
    _, objective = run(smooth, theta=theta, method="richardson")
    assert objective.calls == 1 + 4


def test_steps_are_powers_of_two_so_that_a_coordinate_moves_exactly():
    scale = np.array([1.0, 3.0, 1000.0])
    for kind in ("central", "richardson"):
        h = _step(scale, kind)
        assert np.all(np.log2(h) == np.round(np.log2(h)))
        base = EPS ** (1 / 3) if kind == "central" else EPS ** (1 / 5)
        assert np.all((h / (base * scale) > 0.7) & (h / (base * scale) < 1.42))
        theta = np.array([0.3, 2.9, 700.1])
        for k in (1, 2, 4):
            assert np.all((theta + k * h) - theta == k * h)


def test_a_combination_of_items_is_the_weighted_sum_of_their_directions():
    weights = np.array([0.5, -2.0])
    entries = Items(entries=np.array([1, 3])).combine(weights, 5)
    assert entries.directions.tolist() == [[0.0, 0.5, 0.0, -2.0, 0.0]]
    dirs = Items(start=2, directions=np.array([[1.0, 0.0], [0.0, 1.0]])).combine(weights, 5)
    assert dirs.start == 2 and dirs.directions.tolist() == [[0.5, -2.0]]


def test_taking_a_slice_of_an_estimate_counts_only_its_own_evaluations():
    est, _ = run(smooth, method="richardson")
    part = est.take(slice(1, 3))
    assert isinstance(part, Estimate) and part.evaluations == 12 and len(part.value) == 2
    assert part.value.tolist() == est.value[1:3].tolist()


def test_directions_for_many_arrays_are_unit_vectors_and_the_stream_drawn_one_array_at_a_time():
    counts, sizes = [2, 1, 0, 3], [3, 7, 4, 1]
    together = random_directions_for(np.random.default_rng(3), counts, sizes)
    one_by_one = np.random.default_rng(3)
    for k, n, got in zip(counts, sizes, together, strict=True):
        assert got.shape == (k, n)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-15)
        np.testing.assert_allclose(got, random_directions(one_by_one, k, n), rtol=1e-15)
    assert random_directions_for(np.random.default_rng(0), [1, 2], [0, 2])[0].shape == (1, 0)
