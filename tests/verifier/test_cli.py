"""The command line: exit codes, reports on disk, output for a person and for a pipe, replay, check."""

import io
import json
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.quality.planted import planted_backward
from verifier import cli
from verifier.campaign import run_campaign
from verifier.cli import main
from verifier.report import SCHEMA_VERSION, json_text

from .test_report import validate


def run(argv, capsys):
    """(exit code, stdout, stderr) of main(argv), whether it returns or raises SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """A main job with a planted bug (from the catalogue): its report directory."""
    pytest.importorskip("verifier.mutants")
    directory = tmp_path_factory.mktemp("failing")
    code = main(["--examples", "20", "--plant", "sign-flip", "--report-dir", str(directory)])
    assert code == 1
    return directory


# --- the main job --------------------------------------------------------------------------
def test_the_default_job_on_a_few_networks_agrees_and_writes_all_three_reports(tmp_path, capsys):
    code, out, _ = run(["--examples", "5", "--report-dir", str(tmp_path)], capsys)
    assert code == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["ok"] is True and data["networks"] == 5 and data["schema_version"] == SCHEMA_VERSION
    assert data["settings"]["backward"] == "reference" and data["verdict"] == "pass"
    validate(data)
    assert "layer1" in data["layers"]
    assert "all gradients agree" in (tmp_path / "latest.md").read_text()
    assert (tmp_path / "latest.html").read_text().startswith("<!DOCTYPE html>")
    assert "per-layer summary" in out and "5 networks" in out and "latest.html" in out


def test_the_same_seed_gives_the_same_report_apart_from_one_timing_field(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(["--examples", "3", "--seed", "7", "--report-dir", str(a)], capsys)[0] == 0
    assert run(["--examples", "3", "--seed", "7", "--report-dir", str(b)], capsys)[0] == 0
    da, db = (json.loads((d / "latest.json").read_text()) for d in (a, b))
    assert set(da) == set(db)
    # Only the timing block may differ (elapsed_s and created are wall-clock readings, which can
    # also coincide at their rounding); everything else is a function of the seed.
    assert set(da["timing"]) == set(db["timing"]) == {"created", "elapsed_s"}
    assert {k: v for k, v in da.items() if k != "timing"} == {k: v for k, v in db.items() if k != "timing"}
    assert (a / "latest.md").read_text() == (b / "latest.md").read_text()


def test_format_json_prints_exactly_the_report_written_to_disk(tmp_path, capsys):
    code, out, err = run(["--examples", "2", "--format", "json", "--report-dir", str(tmp_path)], capsys)
    assert code == 0
    assert json.loads(out) == json.loads((tmp_path / "latest.json").read_text())
    assert "reports written" in err  # remarks go to stderr, so stdout stays parseable


def test_format_markdown_prints_the_short_summary(tmp_path, capsys):
    code, out, _ = run(["--examples", "2", "--format", "markdown", "--report-dir", str(tmp_path)], capsys)
    assert code == 0
    assert out == (tmp_path / "latest.md").read_text()
    assert out.startswith("## verify-grads: all gradients agree") and "| layer | pass |" in out
    assert len(out.splitlines()) < 20


def test_piped_output_is_plain_and_the_table_is_not_squeezed_to_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["--examples", "2", "--report-dir", str(tmp_path)], capsys)
    assert code == 0
    assert "\x1b[" not in out
    row = next(line for line in out.splitlines() if line.strip().startswith("layer1 "))
    assert len(row) > 80 and len(row.split()) == 10  # every column on one line, nothing folded


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("no_color,expect_ansi", [("", True), ("1", False)], ids=["colour", "NO_COLOR"])
def test_a_terminal_gets_colour_unless_no_color_is_set(no_color, expect_ansi, tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert main(["--examples", "1", "--report-dir", str(tmp_path)]) == 0
    assert ("\x1b[" in terminal.getvalue()) is expect_ansi


def test_a_progress_bar_goes_to_stderr_only_when_it_is_a_terminal(tmp_path, capsys, monkeypatch):
    code, _, err = run(["--examples", "2", "--report-dir", str(tmp_path / "a")], capsys)
    assert code == 0 and "checking random networks" not in err
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli._Progress, "DELAY", 0.0)
    code, out, err = run(["--examples", "2", "--report-dir", str(tmp_path / "b")], capsys)
    assert code == 0 and "checking random networks" in err and "checking random networks" not in out


def test_help_imports_neither_jax_nor_matplotlib():
    probe = textwrap.dedent(
        """
        import sys
        from verifier.cli import main
        for argv in (["--help"], ["replay", "--help"], ["check", "--help"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"jax", "jaxlib", "matplotlib"})
        print("HEAVY", heavy)
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert "replay" in done.stdout and "check" in done.stdout and "--examples" in done.stdout


def test_subcommands_come_from_one_registry():
    assert {"replay", "check"} <= set(cli.SUBCOMMANDS)
    parser = cli.build_parser()
    assert all(name in parser.format_help() for name in cli.SUBCOMMANDS)


def test_an_unwritable_report_dir_is_a_usage_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(["--examples", "1", "--report-dir", str(blocker / "sub")], capsys)
    assert code == 2 and "--report-dir" in err and "Traceback" not in err


def test_a_failure_while_writing_keeps_the_old_reports_and_exits_2(tmp_path, capsys, monkeypatch):
    assert run(["--examples", "1", "--report-dir", str(tmp_path)], capsys)[0] == 0
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("verifier.report.os.replace", disk_full)
    code, _, err = run(["--examples", "2", "--report-dir", str(tmp_path)], capsys)
    assert code == 2 and "No space left on device" in err and "old ones are intact" in err
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # no temporary left behind either


# --- a planted bug, reported and replayed --------------------------------------------------
def test_a_planted_bug_makes_the_main_job_fail_with_a_minimal_case(failing_run):
    data = json.loads((failing_run / "latest.json").read_text())
    validate(data)
    assert data["ok"] is False and data["verdict"] == "fail"
    assert data["settings"]["backward"] == "sign-flip"
    assert data["failing_case"] is not None and data["failing_report"]["meta"]["backward"] == "sign-flip"
    assert data["root_cause"] == data["failing_report"]["root_cause"] is not None
    assert "verify-grads replay" in (failing_run / "latest.html").read_text()
    assert "DISCREPANCY" in (failing_run / "latest.md").read_text()


def test_replay_reproduces_the_failing_verdict_and_exit_code(failing_run, capsys):
    recorded = json.loads((failing_run / "latest.json").read_text())["failing_report"]
    code, out, _ = run(["replay", str(failing_run / "latest.json")], capsys)
    assert code == 1
    assert f"root cause: {recorded['root_cause']}" in out and "reproduced:" in out and "NOT" not in out
    assert "\u2026" not in out  # piped: no column of the per-array table is cut short


def test_replay_in_json_prints_the_replayed_report(failing_run, capsys):
    recorded = json.loads((failing_run / "latest.json").read_text())["failing_report"]
    code, out, err = run(["replay", str(failing_run / "latest.json"), "--format", "json"], capsys)
    assert code == 1 and "reproduced:" in err
    replayed = json.loads(out)
    validate(replayed)
    for key in ("verdict", "root_cause", "counts", "layers"):
        assert replayed[key] == recorded[key]


def test_replay_writes_reports_only_when_given_a_report_dir(failing_run, tmp_path, capsys):
    code, _, _ = run(["replay", str(failing_run / "latest.json"), "--report-dir", str(tmp_path)], capsys)
    assert code == 1
    data = json.loads((tmp_path / "latest.json").read_text())
    validate(data)
    assert data["kind"] == "network" and data["meta"]["backward"] == "sign-flip"
    # the replayed report replays in turn, to the same verdict
    assert run(["replay", str(tmp_path / "latest.json")], capsys)[0] == 1


def test_a_backward_given_from_python_replays_from_python_but_not_from_the_command_line(tmp_path, capsys):
    from verifier.campaign import replay
    from verifier.report import read_report

    bug = planted_backward("skip-overwritten", 1)
    result = run_campaign(25, seed=0, backward=bug, network_options={"min_depth": 3})
    assert not result.ok
    path = tmp_path / "latest.json"
    path.write_text(json_text(result.to_dict()))
    data = read_report(path)
    assert data["settings"]["backward"].startswith("python:")

    again = replay(data, backward=bug)
    assert again.reproduced and not again.ok
    assert again.replayed.root_cause == result.root_cause == "layer1"

    code, _, err = run(["replay", str(path)], capsys)
    assert code == 2 and "replay from Python" in err and "Traceback" not in err


def test_a_case_drawn_as_values_is_kept_with_its_values_and_replays_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("verifier.mutants")
    result = run_campaign(20, seed=1, backward="sign-flip", network_options={"values": "drawn", "max_depth": 2})
    assert not result.ok
    data = json.loads(json_text(result.to_dict()))
    validate(data)
    assert "drawn" in data["failing_case"] and data["settings"]["network_options"]["values"] == "drawn"
    (tmp_path / "latest.json").write_text(json_text(result.to_dict()))
    code, out, _ = run(["replay", str(tmp_path / "latest.json")], capsys)
    assert code == 1 and "reproduced:" in out and f"root cause {result.root_cause}" in out


def test_a_failure_that_does_not_repeat_is_kept_with_a_note_and_replay_says_so(tmp_path):
    import reference
    from verifier.campaign import FLAKY_NOTE, replay
    from verifier.report import read_report

    calls = []

    def wrong_once(net, params, trace, y):
        calls.append(1)
        grads, deltas = reference.backward(net, params, trace, y)
        if len(calls) == 1:  # state between calls: only the very first answer is wrong
            grads = {name: {k: -v for k, v in g.items()} for name, g in grads.items()}
        return grads, deltas

    result = run_campaign(3, seed=0, backward=wrong_once)
    assert not result.ok and FLAKY_NOTE in result.failing_report.notes
    path = tmp_path / "latest.json"
    path.write_text(json_text(result.to_dict()))
    again = replay(read_report(path), backward=wrong_once)
    assert again.ok and not again.reproduced


def test_replay_of_a_run_that_agreed_runs_it_again(tmp_path, capsys):
    assert run(["--examples", "2", "--seed", "3", "--report-dir", str(tmp_path)], capsys)[0] == 0
    code, out, _ = run(["replay", str(tmp_path / "latest.json")], capsys)
    assert code == 0 and "its whole run" in out and "reproduced:" in out and "2 networks" in out


def test_a_version_1_report_still_replays(failing_run, tmp_path, capsys):
    data = json.loads((failing_run / "latest.json").read_text())
    data["schema_version"] = 1
    timing = data.pop("timing")
    data["created"], data["elapsed_s"] = timing["created"], timing["elapsed_s"]
    for key in ("verdict", "root_cause"):
        data.pop(key)
    data["settings"].pop("network_options")
    data["failing_report"].pop("kind")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    assert run(["replay", str(path)], capsys)[0] == 1


# --- check: the user's own functions -------------------------------------------------------
USER_MODULE = """
import numpy as np

def params():
    rng = np.random.default_rng(5)
    return {"dense": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}, "head": {"v": rng.normal(size=2)}}

X = np.random.default_rng(6).normal(size=(4, 3))

def loss(p):
    h = np.tanh(X @ p["dense"]["w"] + p["dense"]["b"])
    return float(np.mean((h @ p["head"]["v"]) ** 2))

def grad(p):
    a = X @ p["dense"]["w"] + p["dense"]["b"]
    h = np.tanh(a)
    out = h @ p["head"]["v"]
    d_out = 2 * out / len(out)
    d_a = np.outer(d_out, p["head"]["v"]) * (1 - h**2)
    return {"dense": {"w": X.T @ d_a, "b": d_a.sum(0)}, "head": {"v": h.T @ d_out}}

def wrong_grad(p):
    g = grad(p)
    g["dense"]["w"] = -g["dense"]["w"]
    return g
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"usermodel_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _require_check_grads():
    import verifier.check

    if not hasattr(verifier.check, "check_grads"):
        pytest.skip("verifier.check.check_grads is not available yet")


def test_check_passes_a_correct_gradient_and_writes_its_reports(user_module, tmp_path, capsys):
    _require_check_grads()
    argv = ["check", f"{user_module}:loss", "--grad", f"{user_module}:grad", "--params", f"{user_module}:params"]
    code, out, err = run([*argv, "--report-dir", "out"], capsys)
    assert code == 0, out + err
    data = json.loads((tmp_path / "out" / "latest.json").read_text())
    validate(data)
    assert data["ok"] and data["meta"]["command"].startswith(f"verify-grads check {user_module}:loss")
    assert [layer["name"] for layer in data["layers"]] == ["dense", "head"]


def test_check_fails_a_wrong_gradient_in_its_layer(user_module, tmp_path, capsys):
    _require_check_grads()
    argv = ["check", f"{user_module}:loss", "--grad", f"{user_module}:wrong_grad", "--params", f"{user_module}:params"]
    code, out, _ = run([*argv, "--report-dir", "out", "--format", "json"], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["root_cause"] == "dense" and data["verdict"] == "fail"
    html = (tmp_path / "out" / "latest.html").read_text()
    assert "verify-grads check" in html and "wrong_grad" in html
