"""The command line: exit codes, reports on disk, clear usage errors."""

import json

import pytest

from verifier.cli import main


def test_the_default_job_on_a_few_networks_agrees_and_writes_both_reports(tmp_path, capsys):
    assert main(["--examples", "5", "--report-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["ok"] is True and data["networks"] == 5 and data["schema_version"] == 1
    assert "layer1" in data["layers"]
    assert "all gradients agree" in (tmp_path / "latest.md").read_text()
    out = capsys.readouterr().out
    assert "per-layer summary" in out and "5 networks" in out


def test_the_same_seed_gives_the_same_report_apart_from_the_timestamp(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--examples", "3", "--seed", "7", "--report-dir", str(a)]) == 0
    assert main(["--examples", "3", "--seed", "7", "--report-dir", str(b)]) == 0
    da, db = (json.loads((d / "latest.json").read_text()) for d in (a, b))
    for d in (da, db):
        d.pop("created"), d.pop("elapsed_s")
    assert da == db


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--examples", "-3"], "expected a positive integer"),
        (["--examples", "many"], "expected a positive integer"),
        (["--seed", "-1"], "seed >= 0"),
        (["--bogus"], "unrecognized arguments"),
        (["--method", "newton"], "invalid choice"),
        (["--dtype", "float16"], "invalid choice"),
    ],
    ids=[
        "negative-examples",
        "non-numeric-examples",
        "negative-seed",
        "unknown-flag",
        "unknown-method",
        "unknown-dtype",
    ],
)
def test_bad_arguments_exit_2_with_a_message_and_no_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_unwritable_report_dir_is_a_usage_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--examples", "1", "--report-dir", str(blocker / "sub")]) == 2
    assert "--report-dir" in capsys.readouterr().err
