"""The pytest plugin, run from outside with pytester: fixture, options, header, report, xdist."""

import json

import jax  # noqa: F401  (see below)
import pytest

# pytester's in-process runs restore sys.modules afterwards, so a JAX first imported inside one
# would be imported again by the next, and jaxlib aborts on a second load: import it out here.

pytest_plugins = ["pytester"]

MODEL = """
import numpy as np

X = np.random.default_rng(1).normal(size=(5, 3))


def loss(p):
    return np.mean(np.tanh(X @ p["layer1"]["W"]) @ p["layer2"]["w"])


def grad(p, factor=1.0):
    h = np.tanh(X @ p["layer1"]["W"])
    d_a = np.outer(np.ones(len(X)), p["layer2"]["w"]) * (1 - h**2) / len(X)
    return {"layer1": {"W": factor * X.T @ d_a}, "layer2": {"w": h.mean(axis=0)}}


def params():
    rng = np.random.default_rng(0)
    return {"layer1": {"W": rng.normal(size=(3, 4))}, "layer2": {"w": rng.normal(size=4)}}
"""

TESTS = (
    MODEL
    + """

def test_right(grad_check):
    report = grad_check(loss, params(), grad)
    assert report.ok


def test_wrong(grad_check):
    grad_check(loss, params(), lambda p: grad(p, factor=2.0))
"""
)


def _report(directory):
    return json.loads((directory / "latest.json").read_text()), (directory / "latest.md").read_text()


def test_a_right_gradient_passes_and_a_wrong_one_fails_the_test_with_the_per_layer_table(pytester):
    pytester.makepyfile(test_model=TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*GradientMismatch*", "*root cause: **layer1***", "*| layer1 | layer1.W | fail |*"])
    result.stdout.fnmatch_lines(["verify-grads: 2 gradient checks, 1 failed; arrays: 3 pass, 1 fail, 0 inconclusive*"])


def test_the_header_prints_the_seed_the_tolerances_and_the_flags_that_replay_them(pytester):
    pytester.makepyfile(test_model=TESTS)
    result = pytester.runpytest("--verify-grads-seed", "7", "--verify-grads-rtol", "1e-6")
    header = "verify-grads: seed 7, tolerance: rtol 1e-06, atol 0; replay with"
    result.stdout.fnmatch_lines([f"{header} --verify-grads-seed=7 --verify-grads-rtol=1e-06"])


def test_the_default_header_names_the_error_model(pytester):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["verify-grads: seed 0, tolerance: error model*replay with --verify-grads-seed=0"])


def test_the_report_option_writes_every_check_to_latest_json_md_and_html(pytester):
    pytester.makepyfile(test_model=TESTS)
    out = pytester.path / "grads"
    pytester.runpytest("--verify-grads-report", str(out)).assert_outcomes(passed=1, failed=1)
    data, markdown = _report(out)
    assert data["kind"] == "pytest" and data["ok"] is False and data["checks"] == 2 and data["failed_checks"] == 1
    by_test = {r["test"]: r for r in data["results"]}
    assert by_test["test_model.py::test_wrong"]["root_cause"] == "layer1"
    assert by_test["test_model.py::test_right"]["report"]["meta"]["seed"] == 0
    assert data["params"] == {"pass": 3, "fail": 1, "inconclusive": 0, "not-exercised": 0, "error": 0}
    assert "# verify-grads: DISCREPANCY" in markdown
    assert "| test_model.py::test_wrong | check_grads #0 | fail | layer1 |" in markdown
    assert "## test_model.py::test_wrong (check_grads #0)" in markdown
    page = (out / "latest.html").read_text()
    assert "test_model.py::test_wrong" in page and "<script" not in page
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained
    assert sorted(p.name for p in out.iterdir()) == ["latest.html", "latest.json", "latest.md"]  # no temporary left


def test_the_session_seed_and_tolerances_are_defaults_that_an_explicit_argument_overrides(pytester):
    pytester.makepyfile(
        test_seeds=MODEL
        + """

def test_session_defaults(grad_check):
    grad_check(loss, params(), grad)


def test_explicit_arguments(grad_check):
    grad_check(loss, params(), grad, seed=9, rtol=None, atol=None)
"""
    )
    out = pytester.path / "grads"
    pytester.runpytest("--verify-grads-report", str(out), "--verify-grads-seed", "5", "--verify-grads-atol", "1e-9")
    data, _ = _report(out)
    meta = {r["test"].split("::")[1]: r["report"]["meta"] for r in data["results"]}
    assert meta["test_session_defaults"]["seed"] == 5
    assert meta["test_session_defaults"]["tolerance"]["source"] == "user"
    assert meta["test_session_defaults"]["tolerance"]["atol"] == 1e-9
    assert meta["test_explicit_arguments"]["seed"] == 9
    assert meta["test_explicit_arguments"]["tolerance"]["source"] == "model"


def test_grad_check_vjp_checks_a_vjp_and_is_recorded(pytester):
    pytester.makepyfile(
        test_vjp="""
import numpy as np


def dense(x, W):
    return np.tanh(x @ W)


def dense_vjp(g, x, W):
    dz = g * (1 - np.tanh(x @ W) ** 2)
    return dz @ W.T, x.T @ dz


def test_dense(grad_check):
    rng = np.random.default_rng(3)
    report = grad_check.vjp(dense, dense_vjp, (rng.normal(size=(2, 3)), rng.normal(size=(3, 4))), names=["x", "W"])
    assert [layer.name for layer in report.layers] == ["x", "W"]
"""
    )
    out = pytester.path / "grads"
    pytester.runpytest("--verify-grads-report", str(out)).assert_outcomes(passed=1)
    data, _ = _report(out)
    assert data["ok"] is True and [r["entry"] for r in data["results"]] == ["check_vjp"]


def test_under_xdist_the_controller_merges_every_workers_results_into_one_report(pytester):
    many = MODEL + "".join(
        f"\n\ndef test_case_{i}(grad_check):\n    grad_check(loss, params(), grad, seed={i})\n" for i in range(4)
    )
    pytester.makepyfile(test_many=many)
    out = pytester.path / "grads"
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--verify-grads-report", str(out))
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*2 workers*"])
    data, markdown = _report(out)
    assert data["ok"] is True and data["checks"] == 4
    assert sorted(r["test"] for r in data["results"]) == [f"test_many.py::test_case_{i}" for i in range(4)]
    assert sorted(r["report"]["meta"]["seed"] for r in data["results"]) == [0, 1, 2, 3]
    assert "# verify-grads: all gradients agree" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["latest.html", "latest.json", "latest.md"]


BAD_OPTIONS = [
    ("negative-rtol", ["--verify-grads-rtol", "-1"], "expected a finite number >= 0, found -1"),
    ("word-atol", ["--verify-grads-atol", "tiny"], "expected a finite number >= 0, found 'tiny'"),
    ("negative-seed", ["--verify-grads-seed", "-3"], "expected an integer seed >= 0, found -3"),
]


@pytest.mark.parametrize("args,message", [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS])
def test_bad_option_values_are_usage_errors_that_say_what_was_expected(pytester, args, message):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_an_unwritable_report_directory_is_a_usage_error(pytester):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    (pytester.path / "file").write_text("not a directory")
    result = pytester.runpytest("--verify-grads-report", str(pytester.path / "file" / "sub"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--verify-grads-report*cannot create it*"])
