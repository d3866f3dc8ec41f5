"""Users' hand-written gradients with the bugs people actually write must be caught, in the
right layer; correct code on tricky ground (kinks, zeros, float32, odd pytrees) must not raise a
false alarm.

The model is a user-style numpy MLP: x -> tanh (l1) -> sigmoid (l2) -> identity (l3), mean
squared error over the batch. Every bug is checked twice: with finite differences alone (a numpy
loss JAX cannot trace) and with the JAX oracle too (the same loss in jax.numpy).
"""

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from verifier import Verdict, check_grads, check_vjp
from verifier.compare import Blame

RNG = np.random.default_rng(11)
X = RNG.normal(size=(5, 4))
Y = RNG.normal(size=(5, 2))
FAILING = (Verdict.FAIL, Verdict.ERROR)


def init(dtype=np.float64):
    rng = np.random.default_rng(0)
    shapes = {"l1": (4, 4), "l2": (4, 4), "l3": (4, 2)}
    return {
        name: {"W": rng.normal(size=s).astype(dtype), "b": (0.1 * rng.normal(size=s[1])).astype(dtype)}
        for name, s in shapes.items()
    }


def forward(p, xp=np):
    def sigmoid(a):
        return 1 / (1 + xp.exp(-a))

    a1 = X @ p["l1"]["W"] + p["l1"]["b"]
    h1 = xp.tanh(a1)
    a2 = h1 @ p["l2"]["W"] + p["l2"]["b"]
    h2 = sigmoid(a2)
    out = h2 @ p["l3"]["W"] + p["l3"]["b"]
    return a1, h1, a2, h2, out


def numpy_loss(p):
    out = forward(p)[-1]
    return 0.5 * np.mean(np.sum((out - Y) ** 2, axis=1))


def jax_loss(p):
    out = forward(p, jnp)[-1]
    return 0.5 * jnp.mean(jnp.sum((out - Y) ** 2, axis=1))


def backward(p, bug=None):
    """The user's backprop; `bug` plants one mistake."""
    _, h1, _, h2, out = forward(p)
    n = X.shape[0]
    d_out = (out - Y) / n
    g3 = {"W": h2.T @ d_out, "b": d_out.sum(0) * (n if bug == "bias-summed-not-averaged" else 1)}
    d_h2 = d_out @ p["l3"]["W"].T
    d_a2 = d_h2 if bug == "missing-sigmoid-derivative" else d_h2 * h2 * (1 - h2)
    g2 = {"W": h1.T @ d_a2, "b": d_a2.sum(0)}
    d_h1 = d_a2 @ (p["l2"]["W"] if bug == "transposed-weight" else p["l2"]["W"].T)
    d_a1 = d_h1 * (1 - (np.tanh(h1) if bug == "derivative-at-h-not-a" else h1) ** 2)
    g1 = {"W": X.T @ d_a1, "b": d_a1[0] if bug == "bias-first-sample-only" else d_a1.sum(0)}
    if bug == "one-wrong-entry":
        g1["W"][2, 1] *= 1.001
    if bug == "sign-flip":
        g3["W"] = -g3["W"]
    if bug == "layers-swapped":
        g1, g2 = g2, g1
    return {"l1": g1, "l2": g2, "l3": g3}


def _in_place_update(p):
    grads = backward(p)
    p["l3"]["W"] -= 0.01 * grads["l3"]["W"]  # an SGD step inside the gradient
    return grads


UNSEEDED = np.random.default_rng()


def _nondeterministic(p):
    grads = backward(p)
    keep = UNSEEDED.random(grads["l2"]["W"].shape) > 0.1  # a dropout mask drawn in backward only
    grads["l2"]["W"] = grads["l2"]["W"] * keep / 0.9
    return grads


# (id, grad_fn, root cause, paths that must fail, paths that must pass)
BUGS = [
    ("layers-swapped", lambda p: backward(p, "layers-swapped"), "l2", {"l1.W", "l1.b", "l2.W", "l2.b"}, {"l3.W"}),
    (
        "missing-chain-rule-factor",
        lambda p: backward(p, "missing-sigmoid-derivative"),
        "l2",
        {"l2.W", "l2.b"},
        {"l3.W"},
    ),
    ("wrong-batch-reduction", lambda p: backward(p, "bias-summed-not-averaged"), "l3", {"l3.b"}, {"l3.W", "l1.W"}),
    ("one-wrong-entry", lambda p: backward(p, "one-wrong-entry"), "l1", {"l1.W"}, {"l1.b", "l2.W"}),
    ("in-place-mutation", _in_place_update, "l3", {"l3.W"}, {"l3.b", "l1.W"}),
    ("nondeterministic-backward", _nondeterministic, "l2", {"l2.W"}, {"l2.b", "l1.W"}),
    ("transposed-weight", lambda p: backward(p, "transposed-weight"), "l1", {"l1.W", "l1.b"}, {"l2.W", "l3.W"}),
    ("sign-flip", lambda p: backward(p, "sign-flip"), "l3", {"l3.W"}, {"l3.b", "l2.W"}),
    ("derivative-at-h-not-a", lambda p: backward(p, "derivative-at-h-not-a"), "l1", {"l1.W", "l1.b"}, {"l2.W"}),
    ("bias-first-sample-only", lambda p: backward(p, "bias-first-sample-only"), "l1", {"l1.b"}, {"l1.W", "l2.b"}),
]


@pytest.mark.parametrize("oracle", ["finite-differences", "jax"])
@pytest.mark.parametrize("grad_fn,root,failing,passing", [b[1:] for b in BUGS], ids=[b[0] for b in BUGS])
def test_a_planted_bug_is_caught_in_the_right_layer(grad_fn, root, failing, passing, oracle):
    loss = numpy_loss if oracle == "finite-differences" else jax_loss
    report = check_grads(loss, init(), grad_fn)
    assert report.meta["jax"]["used"] is (oracle == "jax")
    assert report.root_cause == root, report.to_markdown()
    failed = {p.path for p in report.failures}
    assert failing <= failed, report.to_markdown()
    assert not (passing & failed), report.to_markdown()


def test_the_right_backward_passes_with_both_oracles():
    for loss in (numpy_loss, jax_loss):
        report = check_grads(loss, init(), backward)
        assert report.ok and report.verdict is Verdict.PASS, report.to_markdown()


def test_a_mutating_gradient_is_blamed_on_the_user_code():
    report = check_grads(numpy_loss, init(), _in_place_update)
    assert report.param("l3.W").blame is Blame.USER_CODE


def test_with_jax_a_flipped_sign_and_a_missing_batch_mean_are_named():
    assert "sign is flipped" in check_grads(jax_loss, init(), lambda p: backward(p, "sign-flip")).next_step
    hint = check_grads(jax_loss, init(), lambda p: backward(p, "bias-summed-not-averaged")).next_step
    assert "5 times the expected value" in hint


def test_a_single_wrong_entry_is_located_exactly():
    report = check_grads(numpy_loss, init(), lambda p: backward(p, "one-wrong-entry"))
    rf = report.param("l1.W").comparison("hand-written", "finite-differences")
    assert rf.kind == "entrywise" and rf.n_disagree == 1 and rf.worst_index == [2, 1]


# --- vector-Jacobian products ------------------------------------------------------------------


def _layernorm(x):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)


def _layernorm_vjp(g, x, bug=None):
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
    xhat = (x - mu) / sigma
    if bug == "mean-term-dropped":
        return ((g - (g * xhat).mean(-1, keepdims=True) * xhat) / sigma,)
    return ((g - g.mean(-1, keepdims=True) - (g * xhat).mean(-1, keepdims=True) * xhat) / sigma,)


def test_a_layernorm_vjp_is_checked_and_a_dropped_mean_term_fails():
    x = (np.random.default_rng(4).normal(size=(3, 5)),)
    assert check_vjp(_layernorm, _layernorm_vjp, x).ok
    report = check_vjp(_layernorm, lambda g, x: _layernorm_vjp(g, x, "mean-term-dropped"), x)
    assert report.root_cause == "input0"


def test_a_custom_vjp_with_a_wrong_backward_fails_at_the_input_it_gets_wrong():
    @jax.custom_vjp
    def scaled_tanh(x, s):
        return s * jnp.tanh(x)

    def fwd(x, s):
        return scaled_tanh(x, s), (x, s)

    def bwd(res, g):
        x, s = res
        return g * s * (1 - jnp.tanh(x) ** 2), jnp.sum(g * jnp.tanh(x)) * 0.5  # ds off by a factor 1/2

    scaled_tanh.defvjp(fwd, bwd)

    def vjp(g, x, s):
        return jax.vjp(scaled_tanh, x, s)[1](g)

    report = check_vjp(scaled_tanh, vjp, (np.array([0.2, -0.4, 1.1]), np.array(1.5)), names=["x", "s"])
    assert report.param("x").verdict is Verdict.PASS
    assert report.param("s").verdict is Verdict.FAIL and report.root_cause == "s"


# --- correct but tricky: never a failure ----------------------------------------------------------


def _never_fails(report):
    assert report.ok, report.to_markdown()
    assert all(p.verdict not in FAILING for layer in report.layers for p in layer.params)


@pytest.mark.parametrize("loss", [numpy_loss, jax_loss], ids=["numpy", "jax"])
def test_float32_params_and_gradients_pass(loss):
    report = check_grads(loss, init(np.float32), backward)
    _never_fails(report)
    assert report.verdict is Verdict.PASS


def _relu_net(xp=np):
    x = np.array([[1.0, -1.0], [0.0, 0.0], [2.0, 1.0]])  # row 1 puts every unit exactly on the kink

    def loss(p):
        a = x @ p["l1"]["W"] + p["l1"]["b"]
        return xp.mean(xp.maximum(a, 0.0) @ p["l2"]["w"])

    def grad(p):
        a = x @ p["l1"]["W"] + p["l1"]["b"]
        d_a = np.outer(np.ones(len(x)), p["l2"]["w"]) * (a > 0) / len(x)
        return {"l1": {"W": x.T @ d_a, "b": d_a.sum(0)}, "l2": {"w": np.maximum(a, 0.0).mean(0)}}

    params = {"l1": {"W": np.array([[1.0, -2.0], [0.5, 1.0]]), "b": np.zeros(2)}, "l2": {"w": np.array([1.0, -1.0])}}
    return loss, params, grad


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_relu_exactly_at_its_kink_is_never_a_failure(xp):
    loss, params, grad = _relu_net(xp)
    report = check_grads(loss, params, grad)
    _never_fails(report)
    assert report.param("l2.w").verdict is Verdict.PASS  # smooth in l2.w: decided


def test_dead_relu_units_give_not_exercised_not_pass():
    loss, params, grad = _relu_net()
    params["l1"]["b"] = np.array([-100.0, -100.0])  # every unit off: no gradient anywhere
    report = check_grads(loss, params, grad)
    _never_fails(report)
    for path in ("l1.W", "l1.b", "l2.w"):
        assert report.param(path).verdict is Verdict.NOT_EXERCISED


def test_a_list_of_tuples_and_nested_namedtuples_passes():
    Dense = namedtuple("Dense", "W b")
    rng = np.random.default_rng(2)
    params = [Dense(rng.normal(size=(4, 3)), rng.normal(size=3)), (Dense(rng.normal(size=(3, 2)), np.zeros(2)),)]

    def loss(p):
        h = np.tanh(X @ p[0].W + p[0].b)
        return np.mean((h @ p[1][0].W + p[1][0].b) ** 2)

    def grad(p):
        h = np.tanh(X @ p[0].W + p[0].b)
        out = h @ p[1][0].W + p[1][0].b
        d_out = 2 * out / out.size
        d_a = (d_out @ p[1][0].W.T) * (1 - h**2)
        return [Dense(X.T @ d_a, d_a.sum(0)), (Dense(h.T @ d_out, d_out.sum(0)),)]

    report = check_grads(loss, params, grad)
    _never_fails(report)
    assert [layer.name for layer in report.layers] == ["0", "1"] and report.verdict is Verdict.PASS


def test_jax_grad_as_the_hand_written_gradient_passes():
    report = check_grads(jax_loss, init(), jax.grad(jax_loss))
    _never_fails(report)


def test_a_loss_with_a_log_barrier_near_its_domain_edge_is_never_a_failure():
    params = {"x": np.array([1e-7, 3e-4, 0.5])}  # stencils around 1e-7 and 3e-4 leave the domain
    report = check_grads(lambda p: -np.sum(np.log(p["x"])), params, lambda p: {"x": -1 / p["x"]})
    _never_fails(report)


def test_an_abs_at_exactly_zero_is_never_a_failure():
    params = {"w": np.array([0.0, 1.5, -2.0])}
    report = check_grads(lambda p: np.sum(np.abs(p["w"])), params, lambda p: {"w": np.sign(p["w"])})
    _never_fails(report)


def test_softmax_cross_entropy_with_large_logits_passes():
    labels = np.eye(3)[[0, 2]]

    def loss(p):
        z = p["logits"] - p["logits"].max(axis=1, keepdims=True)
        return -np.mean(np.sum(labels * (z - np.log(np.exp(z).sum(axis=1, keepdims=True))), axis=1))

    def grad(p):
        z = np.exp(p["logits"] - p["logits"].max(axis=1, keepdims=True))
        return {"logits": (z / z.sum(axis=1, keepdims=True) - labels) / len(labels)}

    report = check_grads(loss, {"logits": np.array([[300.0, 1.0, -2.0], [0.5, 250.0, 249.0]])}, grad)
    _never_fails(report)
