"""The public API on users' functions: check_grads, assert_grads_close, check_vjp.

Each behaviour is shown twice where it can be: failing on a planted wrong gradient, and passing
on correct code. Wrong calls raise InvalidArgument with the path, the expectation, what was
found and the fix.
"""

import json
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import verifier
from verifier import GradientMismatch, InvalidArgument, Verdict, check_grads, check_vjp
from verifier.compare import Blame
from verifier.engine import harness_rng

X = np.random.default_rng(1).normal(size=(6, 3))
Y = np.random.default_rng(2).normal(size=(6, 2))


def mlp_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "hidden": {"W": rng.normal(size=(3, 4)).astype(dtype), "b": rng.normal(size=4).astype(dtype)},
        "out": {"W": rng.normal(size=(4, 2)).astype(dtype), "b": rng.normal(size=2).astype(dtype)},
    }


def mlp_loss(p):
    h = np.tanh(X.astype(p["hidden"]["W"].dtype) @ p["hidden"]["W"] + p["hidden"]["b"])
    o = h @ p["out"]["W"] + p["out"]["b"]
    return 0.5 * np.mean(np.sum((o - Y) ** 2, axis=1))


def mlp_grad(p, bug=None):
    x = X.astype(p["hidden"]["W"].dtype)
    h = np.tanh(x @ p["hidden"]["W"] + p["hidden"]["b"])
    o = h @ p["out"]["W"] + p["out"]["b"]
    d_o = (o - Y.astype(x.dtype)) / len(x)
    d_a = (d_o @ p["out"]["W"].T) * (1 - h**2)
    grads = {"hidden": {"W": x.T @ d_a, "b": d_a.sum(0)}, "out": {"W": h.T @ d_o, "b": d_o.sum(0)}}
    if bug == "hidden-b-doubled":
        grads["hidden"]["b"] = 2 * grads["hidden"]["b"]
    return grads


def jax_mlp_loss(p):
    h = jnp.tanh(X @ p["hidden"]["W"] + p["hidden"]["b"])
    o = h @ p["out"]["W"] + p["out"]["b"]
    return 0.5 * jnp.mean(jnp.sum((o - Y) ** 2, axis=1))


# --- check_grads: verdicts ------------------------------------------------------------------


def test_a_correct_numpy_gradient_passes_on_finite_differences_alone_and_says_why():
    report = check_grads(mlp_loss, mlp_params(), mlp_grad)
    assert report.ok and report.verdict is Verdict.PASS, report.to_markdown()
    assert report.meta["jax"]["used"] is False
    assert "cannot be traced by JAX" in report.meta["jax"]["reason"]
    assert any(note.startswith("JAX not used") for note in report.notes)


def test_a_jax_traceable_loss_brings_the_jax_oracle_in():
    report = check_grads(jax_mlp_loss, mlp_params(), mlp_grad)
    assert report.ok and report.meta["jax"]["used"] is True, report.to_markdown()
    for layer in report.layers:
        for p in layer.params:
            assert p.comparison("hand-written", "jax").status.value == "agree"


def test_a_wrong_layer_fails_there_and_is_the_root_cause():
    report = check_grads(mlp_loss, mlp_params(), lambda p: mlp_grad(p, "hidden-b-doubled"))
    assert not report.ok and report.root_cause == "hidden"
    assert [p.path for p in report.failures] == ["hidden.b"]
    assert report.param("hidden.b").blame is Blame.HAND_WRITTEN
    assert report.layer("out").verdict is Verdict.PASS


def test_with_jax_a_constant_factor_is_named_in_the_next_step():
    report = check_grads(jax_mlp_loss, mlp_params(), lambda p: mlp_grad(p, "hidden-b-doubled"))
    assert report.root_cause == "hidden"
    assert "2 times the expected value" in report.next_step


def test_layers_run_in_the_order_params_lists_them_not_sorted():
    params = {"zeta": {"w": np.array([0.5, -1.0])}, "alpha": {"w": np.array([2.0])}}

    def loss(p):  # iterates: depends on the order of the dict
        h = 1.0
        for layer in p.values():
            h = np.tanh(h * layer["w"].sum() + 0.1)
        return h

    def grad(p):
        (a,), (b,) = p["zeta"]["w"].sum(keepdims=True), p["alpha"]["w"]
        h1 = np.tanh(a + 0.1)
        h2 = np.tanh(h1 * b + 0.1)
        d2 = 1 - h2**2
        d1 = d2 * b * (1 - h1**2)
        return {"zeta": {"w": np.full(2, d1)}, "alpha": {"w": np.array([d2 * h1])}}

    report = check_grads(loss, params, grad)
    assert report.ok, report.to_markdown()
    assert [layer.name for layer in report.layers] == ["zeta", "alpha"]
    assert report.meta["layers"] == ["zeta", "alpha"]


def test_the_layers_keyword_sets_which_failure_is_the_root_cause():
    def wrong(p):
        g = mlp_grad(p)
        g["hidden"]["W"] = -g["hidden"]["W"]
        g["out"]["b"] = -g["out"]["b"]
        return g

    assert check_grads(mlp_loss, mlp_params(), wrong).root_cause == "out"
    assert check_grads(mlp_loss, mlp_params(), wrong, layers=["out", "hidden"]).root_cause == "hidden"


def test_lists_tuples_and_namedtuples_get_dotted_paths():
    Dense = namedtuple("Dense", "W b")
    params = [Dense(np.array([[1.0, 2.0]]), np.array([0.5, -0.5])), (np.array([3.0]),)]

    def loss(p):
        return np.sum(np.sin(p[0].W + p[0].b)) * p[1][0][0]

    def grad(p):
        c = np.cos(p[0].W + p[0].b) * p[1][0][0]
        return [Dense(c, c.sum(0)), (np.array([np.sum(np.sin(p[0].W + p[0].b))]),)]

    report = check_grads(loss, params, grad)
    assert report.ok, report.to_markdown()
    assert [p.path for layer in report.layers for p in layer.params] == ["0.W", "0.b", "1.0"]


def test_float32_params_pass_with_float32_tolerances_and_float64_finite_differences():
    report = check_grads(mlp_loss, mlp_params(np.float32), mlp_grad)
    assert report.ok, report.to_markdown()
    assert report.meta["dtype"] == "float32"
    assert report.meta["finite_differences"]["evaluated_in"] == ["float64"]
    assert report.param("hidden.W").tolerance["rtol"] == pytest.approx(1e4 * np.finfo(np.float32).eps)


def test_a_float32_gradient_with_a_wrong_entry_still_fails():
    def wrong(p):
        g = mlp_grad(p)
        g["out"]["W"][1, 0] += 0.05
        return g

    report = check_grads(mlp_loss, mlp_params(np.float32), wrong)
    assert report.root_cause == "out" and [p.path for p in report.failures] == ["out.W"]


def test_a_loss_that_rejects_float64_is_evaluated_in_float32_with_larger_steps():
    def strict_loss(p):
        if p["hidden"]["W"].dtype != np.float32:
            raise TypeError("this model runs in float32 only")
        return mlp_loss(p)

    report = check_grads(strict_loss, mlp_params(np.float32), mlp_grad)
    assert report.ok, report.to_markdown()
    assert report.meta["finite_differences"]["evaluated_in"] == ["float32"]
    assert report.meta["finite_differences"]["step_factor"] > 10
    assert any("rejected float64" in note for note in report.notes)


def test_a_gradient_that_is_zero_everywhere_is_not_exercised_rather_than_passed():
    params = {"used": np.array([1.0, 2.0]), "unused": np.array([3.0])}
    report = check_grads(
        lambda p: np.sum(p["used"] ** 2), params, lambda p: {"used": 2 * p["used"], "unused": np.zeros(1)}
    )
    assert report.param("used").verdict is Verdict.PASS
    assert report.param("unused").verdict is Verdict.NOT_EXERCISED
    assert report.ok


def test_a_nonzero_gradient_of_an_unused_parameter_fails():
    params = {"used": np.array([1.0, 2.0]), "unused": np.array([3.0])}
    report = check_grads(
        lambda p: np.sum(p["used"] ** 2), params, lambda p: {"used": 2 * p["used"], "unused": np.ones(1)}
    )
    assert [p.path for p in report.failures] == ["unused"]


def test_an_empty_array_is_reported_as_not_exercised():
    params = {"w": np.array([1.0, 2.0]), "nothing": np.zeros((0, 3))}
    report = check_grads(
        lambda p: np.sum(p["w"] ** 3), params, lambda p: {"w": 3 * p["w"] ** 2, "nothing": np.zeros((0, 3))}
    )
    assert report.ok and report.param("nothing").verdict is Verdict.NOT_EXERCISED


# --- user code that misbehaves ----------------------------------------------------------------


def test_a_grad_fn_that_raises_gives_error_verdicts_with_the_exception():
    def broken(p):
        raise RuntimeError("shapes do not line up")

    report = check_grads(mlp_loss, mlp_params(), broken)
    assert not report.ok and report.verdict is Verdict.ERROR
    for layer in report.layers:
        for p in layer.params:
            assert p.verdict is Verdict.ERROR and "RuntimeError: shapes do not line up" in p.error
    assert "shapes do not line up" in report.next_step


def test_a_loss_fn_that_raises_gives_error_verdicts_naming_the_loss():
    def broken(p):
        raise ZeroDivisionError("no data")

    report = check_grads(broken, mlp_params(), mlp_grad)
    assert report.verdict is Verdict.ERROR
    assert "loss_fn(params) raised: ZeroDivisionError: no data" in report.param("out.W").error


def test_a_loss_that_is_nan_at_params_is_an_error_not_a_pass():
    report = check_grads(lambda p: np.float64(np.nan) * np.sum(p["w"]), {"w": np.ones(2)}, lambda p: {"w": np.ones(2)})
    assert report.verdict is Verdict.ERROR and "nan" in report.param("w").error


def test_a_nan_in_the_gradient_fails_that_parameter_and_the_others_are_still_checked():
    def nan_entry(p):
        g = mlp_grad(p)
        g["hidden"]["W"][0, 0] = np.nan
        return g

    report = check_grads(mlp_loss, mlp_params(), nan_entry)
    assert [p.path for p in report.failures] == ["hidden.W"]
    assert report.param("hidden.W").verdict is Verdict.FAIL
    assert report.layer("out").verdict is Verdict.PASS


def test_a_loss_that_is_not_finite_at_some_stencil_points_gives_inconclusive_entries_not_a_failure():
    params = {"x": np.array([1e-9, 2.0])}  # log: the stencil around 1e-9 reaches x <= 0
    report = check_grads(lambda p: np.sum(np.log(p["x"])), params, lambda p: {"x": 1 / p["x"]})
    assert report.ok, report.to_markdown()
    rf = report.param("x").comparison("hand-written", "finite-differences")
    assert rf.n_inconclusive == 1 and rf.n == 2
    assert any("not finite" in note for note in report.notes)


def test_next_to_a_non_finite_region_a_wrong_entry_still_fails():
    params = {"x": np.array([1e-9, 2.0])}
    report = check_grads(lambda p: np.sum(np.log(p["x"])), params, lambda p: {"x": np.array([1e9, 0.7])})
    assert [p.path for p in report.failures] == ["x"]
    rf = report.param("x").comparison("hand-written", "finite-differences")
    assert rf.worst_index == [1]


def test_a_grad_fn_that_writes_to_params_is_caught_and_the_callers_params_are_untouched():
    params = mlp_params()
    before = params["out"]["W"].copy()

    def sgd_inside(p):
        g = mlp_grad(p)
        p["out"]["W"] -= 0.1 * g["out"]["W"]  # an update inside the gradient
        return g

    report = check_grads(mlp_loss, params, sgd_inside)
    mutated = report.param("out.W")
    assert mutated.verdict is Verdict.FAIL and mutated.blame is Blame.USER_CODE
    assert "W = W - step" in mutated.next_step
    assert report.meta["mutated"] == ["out.W"]
    assert report.layer("hidden").verdict is Verdict.PASS
    np.testing.assert_array_equal(params["out"]["W"], before)


def test_a_gradient_that_accumulates_between_calls_fails_as_nondeterministic():
    buffer = {}

    def accumulating(p):
        g = mlp_grad(p)
        for name in g:
            for key in g[name]:
                buffer[(name, key)] = buffer.get((name, key), 0) + g[name][key]
        return {name: {key: buffer[(name, key)].copy() for key in g[name]} for name in g}

    report = check_grads(mlp_loss, mlp_params(), accumulating)
    assert report.verdict is Verdict.FAIL
    assert report.meta["repeat"]["deterministic"] is False
    p = report.param("out.b")
    assert "nondeterministic" in p.explanation
    assert p.comparison("hand-written (2nd call)", "hand-written").status.value == "disagree"


def test_round_off_level_nondeterminism_is_a_note_not_a_failure():
    calls = []

    def jittery(p):
        calls.append(1)
        g = mlp_grad(p)
        g["out"]["W"] = g["out"]["W"] * (1 + len(calls) * 1e-16)
        return g

    report = check_grads(mlp_loss, mlp_params(), jittery)
    assert report.ok, report.to_markdown()
    assert 0 < report.meta["repeat"]["max_abs_diff"] < 1e-14
    assert any("different answers on two calls" in note for note in report.notes)


# --- JAX oracle -----------------------------------------------------------------------------


@jax.custom_vjp
def _square(x):
    return x**2


_square.defvjp(lambda x: (x**2, x), lambda x, g: (g * 3 * x,))  # wrong: 3x instead of 2x


def test_a_loss_with_a_custom_vjp_rule_is_not_used_as_the_jax_oracle():
    def loss(p):
        return jnp.sum(_square(p["w"]))

    def grad(p):  # the hand-written gradient is the wrong rule itself
        return {"w": np.asarray(jax.grad(loss)(p)["w"])}

    report = check_grads(loss, {"w": np.array([1.0, -2.0])}, grad)
    assert report.meta["jax"]["used"] is False and "custom_vjp" in report.meta["jax"]["reason"]
    assert report.param("w").verdict is Verdict.FAIL


def test_an_explicit_jax_loss_fn_is_the_jax_side_and_a_different_function_is_blamed():
    params = {"w": np.array([0.3, -0.7])}

    def loss(p):
        return float(np.sum(np.sin(p["w"])))

    good = check_grads(loss, params, lambda p: {"w": np.cos(p["w"])}, jax_loss_fn=lambda p: jnp.sum(jnp.sin(p["w"])))
    assert good.ok and good.meta["jax"]["used"] and "jax_loss_fn" in good.meta["jax"]["reason"]
    other = check_grads(loss, params, lambda p: {"w": np.cos(p["w"])}, jax_loss_fn=lambda p: jnp.sum(jnp.cos(p["w"])))
    assert other.param("w").blame is Blame.JAX
    assert any("not the same function" in note for note in other.notes)


def test_the_callers_float32_jax_code_on_the_same_numpy_data_still_runs_afterwards():
    data = np.random.default_rng(7).normal(size=(5, 3))  # closed over, as user code does
    params = {"W": np.random.default_rng(8).normal(size=(3, 2))}

    def numpy_loss(p):  # the JAX oracle's attempt to trace it fails part-way, after data @ W
        return np.sum(np.tanh(data @ p["W"]))

    def numpy_grad(p):
        return {"W": data.T @ (1 - np.tanh(data @ p["W"]) ** 2)}

    assert check_grads(numpy_loss, params, numpy_grad).ok
    assert check_grads(jax.jit(lambda p: jnp.sum(jnp.tanh(data @ p["W"]))), params, numpy_grad).ok
    expected = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    assert jnp.asarray(data).dtype == expected
    assert jax.jit(jax.grad(lambda p: jnp.sum(jnp.tanh(data @ p["W"]))))(params)["W"].dtype == expected


def test_the_jax_oracle_leaves_the_global_x64_setting_alone():
    before = jax.config.jax_enable_x64
    check_grads(jax_mlp_loss, mlp_params(), mlp_grad)
    assert jax.config.jax_enable_x64 == before


# --- methods and modes ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["central", "richardson", "complex-step"])
@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_every_method_and_mode_passes_a_correct_gradient_and_fails_a_wrong_one(method, mode):
    assert check_grads(mlp_loss, mlp_params(), mlp_grad, method=method, mode=mode).ok
    wrong = check_grads(mlp_loss, mlp_params(), lambda p: mlp_grad(p, "hidden-b-doubled"), method=method, mode=mode)
    assert wrong.root_cause == "hidden"


def test_complex_step_on_a_loss_that_drops_the_imaginary_part_is_refused():
    with pytest.raises(InvalidArgument, match=r"complex-step.*drops the imaginary part.*richardson"):
        check_grads(
            lambda p: float(np.sum(p["w"].real ** 2)),
            {"w": np.ones(2)},
            lambda p: {"w": 2 * p["w"]},
            method="complex-step",
        )


def test_user_tolerances_replace_the_model_and_are_reported():
    report = check_grads(mlp_loss, mlp_params(), lambda p: mlp_grad(p, "hidden-b-doubled"), rtol=10.0, atol=1.0)
    assert report.ok  # a factor of 2 is within rtol=10
    assert report.param("hidden.b").tolerance == {"source": "user", "rtol": 10.0, "atol": 1.0, "fd_safety": 10.0}


def test_the_report_is_plain_json_and_the_same_seed_gives_the_same_report():
    a = json.loads(check_grads(mlp_loss, mlp_params(), mlp_grad, seed=3).to_json())
    b = json.loads(check_grads(mlp_loss, mlp_params(), mlp_grad, seed=3).to_json())
    assert a == b and a["meta"]["seed"] == 3 and a["meta"]["kind"] == "function"


# --- assert_grads_close -------------------------------------------------------------------------


def test_assert_grads_close_returns_the_report_when_the_gradient_is_right():
    report = verifier.assert_grads_close(mlp_loss, mlp_params(), mlp_grad)
    assert isinstance(report, verifier.Report) and report.ok


def test_assert_grads_close_raises_an_assertion_error_carrying_the_per_layer_table():
    with pytest.raises(GradientMismatch) as info:
        verifier.assert_grads_close(mlp_loss, mlp_params(), lambda p: mlp_grad(p, "hidden-b-doubled"))
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert message == info.value.report.to_markdown()
    assert "root cause: **hidden**" in message and "| hidden | hidden.b | fail |" in message


# --- check_vjp --------------------------------------------------------------------------------------


def dense(x, W, b):
    return np.tanh(x @ W + b)


def dense_vjp(g, x, W, b):
    dz = g * (1 - np.tanh(x @ W + b) ** 2)
    return dz @ W.T, x.T @ dz, dz.sum(axis=0)


def _dense_inputs(dtype=np.float64):
    rng = np.random.default_rng(5)
    return tuple(a.astype(dtype) for a in (rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)))


def test_a_correct_vjp_passes_with_one_layer_per_input():
    report = check_vjp(dense, dense_vjp, _dense_inputs())
    assert report.ok, report.to_markdown()
    assert [layer.name for layer in report.layers] == ["input0", "input1", "input2"]
    assert report.meta["kind"] == "vjp" and report.meta["cotangent"]["shape"] == [4, 5]


def test_a_vjp_with_a_wrong_input_gradient_fails_at_that_input_by_name():
    def wrong(g, x, W, b):
        dx, dW, db = dense_vjp(g, x, W, b)
        return dx, dW, 0.5 * db

    report = check_vjp(dense, wrong, _dense_inputs(), names=["x", "W", "b"])
    assert report.root_cause == "b" and [p.path for p in report.failures] == ["b"]
    assert report.layer("x").verdict is Verdict.PASS


def test_a_float32_vjp_gets_a_float32_cotangent_and_passes():
    seen = []

    def vjp(g, x, W, b):
        seen.append(g.dtype)
        return dense_vjp(g, x, W, b)

    report = check_vjp(dense, vjp, _dense_inputs(np.float32))
    assert report.ok, report.to_markdown()
    assert set(seen) == {np.dtype(np.float32)}


def test_the_cotangent_is_not_the_stream_a_user_draws_data_from():
    seen = []

    def vjp(g, x, W, b):
        seen.append(g.copy())
        return dense_vjp(g, x, W, b)

    check_vjp(dense, vjp, _dense_inputs(), seed=0)
    u = seen[0]
    assert not np.allclose(u, np.random.default_rng(0).standard_normal(u.shape))
    assert not np.allclose(u, harness_rng(0).standard_normal(u.shape))  # nor the direction stream


def test_a_vjp_of_a_jax_function_with_a_wrong_custom_rule_fails_even_though_jax_agrees_with_it():
    @jax.custom_vjp
    def softplus(x):
        return jnp.log1p(jnp.exp(x))

    softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * jax.nn.sigmoid(-x),))  # should be sigmoid(x)

    def vjp(g, x):
        return jax.vjp(softplus, x)[1](g)

    report = check_vjp(softplus, vjp, (np.array([0.3, -1.2, 2.0]),))
    assert report.param("input0").verdict is Verdict.FAIL
    assert report.meta["jax"]["used"] is False


def test_a_vjp_fn_that_raises_is_an_error_for_every_input():
    def broken(g, x, W, b):
        raise ValueError("bad cotangent")

    report = check_vjp(dense, broken, _dense_inputs())
    assert report.counts()["error"] == 3 and "bad cotangent" in report.param("input1").error


# --- wrong calls --------------------------------------------------------------------------------------

P = {"layer1": {"W": np.ones((2, 3)), "b": np.zeros(3)}}


def _loss(p):
    return float(np.sum(p["layer1"]["W"] ** 2) + np.sum(p["layer1"]["b"]))


def _grad(p):
    return {"layer1": {"W": 2 * p["layer1"]["W"], "b": np.ones(3)}}


BAD_CALLS = [
    ("loss-not-callable", dict(loss_fn=3.0), InvalidArgument, r"loss_fn: expected a function, found float"),
    ("grad-not-callable", dict(grad_fn={"W": 1}), InvalidArgument, r"grad_fn: expected a function, found dict"),
    ("jax-loss-not-callable", dict(jax_loss_fn="jnp"), InvalidArgument, r"jax_loss_fn: expected a function"),
    (
        "grad-missing-key",
        dict(grad_fn=lambda p: {"layer1": {"W": 2 * p["layer1"]["W"]}}),
        InvalidArgument,
        r"grad_fn\(params\) returned no gradient for `layer1.b` \(expected shape \(3,\)\).*Return zeros",
    ),
    (
        "grad-extra-key",
        dict(grad_fn=lambda p: {**_grad(p), "layer2": {"W": np.ones(1)}}),
        InvalidArgument,
        r"returned a gradient for `layer2.W`, which is not in params",
    ),
    (
        "grad-wrong-shape",
        dict(grad_fn=lambda p: {"layer1": {"W": np.ones((3, 2)), "b": np.ones(3)}}),
        InvalidArgument,
        r"`layer1.W` with shape \(3, 2\) \(transposed\?\); expected \(2, 3\)",
    ),
    (
        "grad-none-leaf",
        dict(grad_fn=lambda p: {"layer1": {"W": 2 * p["layer1"]["W"], "b": None}}),
        InvalidArgument,
        r"no gradient for `layer1.b`.*None is not a gradient",
    ),
    (
        "params-integer",
        dict(params={"layer1": {"W": np.ones((2, 3), dtype=int), "b": np.zeros(3)}}),
        InvalidArgument,
        r"params: `layer1.W` has dtype int64; expected a floating-point array.*astype\(np.float64\)",
    ),
    ("params-empty", dict(params={}), InvalidArgument, r"params: found no arrays in dict"),
    (
        "loss-not-scalar",
        dict(loss_fn=lambda p: p["layer1"]["W"] ** 2),
        InvalidArgument,
        r"loss_fn\(params\) returned an array of shape \(2, 3\); expected a scalar loss.*\.mean\(\)",
    ),
    ("loss-returns-none", dict(loss_fn=lambda p: None), InvalidArgument, r"returned NoneType None; expected a scalar"),
    ("unknown-method", dict(method="forward"), InvalidArgument, r"method='forward' is not a valid choice.*'central'"),
    ("unknown-mode", dict(mode="all"), InvalidArgument, r"mode='all' is not a valid choice.*'directional'"),
    ("negative-rtol", dict(rtol=-1e-6), InvalidArgument, r"rtol=-1e-06: expected a finite number >= 0"),
    ("nan-atol", dict(atol=float("nan")), InvalidArgument, r"atol=nan: expected a finite number >= 0"),
    ("negative-seed", dict(seed=-1), InvalidArgument, r"seed=-1: expected an integer >= 0"),
    ("layers-unknown", dict(layers=["layer1", "layer9"]), InvalidArgument, r"layers=.*unknown \['layer9'\]"),
    ("layers-string", dict(layers="layer1"), InvalidArgument, r"layers='layer1': expected a list of layer names"),
]


@pytest.mark.parametrize("kwargs,error,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_wrong_calls_to_check_grads_raise_invalid_argument_with_the_fix(kwargs, error, match):
    args = {"loss_fn": _loss, "params": P, "grad_fn": _grad, **kwargs}
    with pytest.raises(error, match=match):
        check_grads(args.pop("loss_fn"), args.pop("params"), args.pop("grad_fn"), **args)


BAD_VJP_CALLS = [
    ("inputs-bare-array", dict(inputs=np.ones((4, 3))), r"inputs: expected a non-empty tuple of arrays.*\(x,\)"),
    ("inputs-integer", dict(inputs=(np.ones((4, 3), dtype=np.int32), *_dense_inputs()[1:])), r"`input0` has dtype"),
    ("names-too-few", dict(names=["x", "W"]), r"names=\['x', 'W'\]: expected 3 distinct non-empty strings"),
    ("names-duplicate", dict(names=["x", "x", "b"]), r"expected 3 distinct"),
    (
        "vjp-too-few-gradients",
        dict(vjp_fn=lambda g, x, W, b: dense_vjp(g, x, W, b)[:2]),
        r"returned 2 gradients; expected a tuple of 3, one gradient per input \(input0, input1, input2\)",
    ),
    (
        "vjp-returns-array",
        dict(vjp_fn=lambda g, x, W, b: dense_vjp(g, x, W, b)[0]),
        r"returned ndarray; expected a tuple of 3",
    ),
    (
        "vjp-wrong-shape",
        dict(vjp_fn=lambda g, x, W, b: (dense_vjp(g, x, W, b)[0].T, *dense_vjp(g, x, W, b)[1:])),
        r"`input0` with shape \(3, 4\) \(transposed\?\); expected \(4, 3\)",
    ),
    ("fn-integer-output", dict(fn=lambda x, W, b: np.ones(3, dtype=int)), r"fn\(\*inputs\) returned int64 values"),
    ("unknown-method", dict(method="newton"), r"method='newton' is not a valid choice"),
]


@pytest.mark.parametrize("kwargs,match", [c[1:] for c in BAD_VJP_CALLS], ids=[c[0] for c in BAD_VJP_CALLS])
def test_wrong_calls_to_check_vjp_raise_invalid_argument_with_the_fix(kwargs, match):
    args = {"fn": dense, "vjp_fn": dense_vjp, "inputs": _dense_inputs(), **kwargs}
    with pytest.raises(InvalidArgument, match=match):
        check_vjp(args.pop("fn"), args.pop("vjp_fn"), args.pop("inputs"), **args)


def test_the_public_names_are_exported():
    assert set(verifier.__all__) >= {
        "check_grads",
        "assert_grads_close",
        "check_vjp",
        "GradientMismatch",
        "InvalidArgument",
        "strategies",
        "verify_network",
        "Report",
        "Verdict",
    }
    assert issubclass(verifier.GradientMismatch, AssertionError)
    assert issubclass(verifier.InvalidArgument, ValueError)
    assert hasattr(verifier.strategies, "networks")
