"""The README's "From Python" and "In pytest" examples run as written, and print what it shows.

Python blocks run in a fresh namespace; a ```text block right after one is its exact output.
The block that uses the `grad_check` fixture is a test file: it runs through pytester.
If an example's output changes on purpose, regenerate the README block by running the example.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import jax  # noqa: F401  (pytester restores sys.modules after a run: JAX must be imported out here)
import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = ("## From Python", "## In pytest")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _sections() -> str:
    """The text of SECTIONS, each up to the next level-2 heading outside a code block."""
    keep, inside, fenced = [], False, False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            inside = line.strip() in SECTIONS
        if inside:
            keep.append(line)
    return "\n".join(keep) + "\n"


def _examples() -> list[tuple[str, str | None]]:
    """(python code, the text block that follows it or None)."""
    blocks = [(m.group(1), m.group(2)) for m in BLOCK.finditer(_sections())]
    out = []
    for i, (lang, code) in enumerate(blocks):
        if lang == "python":
            follows = blocks[i + 1] if i + 1 < len(blocks) else None
            out.append((code, follows[1] if follows and follows[0] == "text" else None))
    return out


SCRIPTS = [(code, shown) for code, shown in _examples() if "grad_check" not in code]
TEST_FILES = [code for code, _ in _examples() if "grad_check" in code]


def test_the_sections_hold_the_three_worked_examples():
    assert len(SCRIPTS) == 2 and len(TEST_FILES) == 1
    assert any("check_vjp" in code and "np.tanh" in code for code, _ in SCRIPTS)
    assert any("jax.custom_vjp" in code and shown for code, shown in SCRIPTS)


@pytest.mark.parametrize("code,shown", SCRIPTS, ids=["numpy-dense-vjp", "jax-custom-vjp-wrong-backward"])
def test_a_readme_script_runs_and_prints_what_the_readme_shows(code, shown):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    if shown is not None:
        assert out.getvalue().rstrip() == shown.rstrip()


def test_the_custom_vjp_example_reports_the_wrong_backward_without_jax():
    shown = next(s for c, s in SCRIPTS if "jax.custom_vjp" in c)
    assert "**verdict: fail** · root cause: **W**" in shown
    assert "| x | x | fail | hand-written |" in shown
    assert "JAX not used: fn(*inputs) contains a jax.custom_vjp rule" in shown


def test_the_pytest_example_passes_under_the_plugin_and_writes_its_report(pytester):
    pytester.makepyfile(test_mlp=TEST_FILES[0])
    out = pytester.path / "reports" / "grads"
    result = pytester.runpytest("test_mlp.py", "--verify-grads-report", str(out))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["verify-grads: seed 0, tolerance: error model*"])
    data = json.loads((out / "latest.json").read_text())
    assert data["ok"] is True and [r["test"] for r in data["results"]] == ["test_mlp.py::test_mlp_gradient"]


def test_the_pytest_example_fails_when_its_gradient_is_broken(pytester):
    broken = TEST_FILES[0].replace('"b": d_a.sum(axis=0)', '"b": d_a.sum(axis=0) * 2')
    assert broken != TEST_FILES[0]
    pytester.makepyfile(test_mlp=broken)
    result = pytester.runpytest("test_mlp.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*root cause: **hidden***"])
