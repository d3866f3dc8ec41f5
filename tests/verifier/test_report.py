"""The report: JSON checked by the versioned schemas, every field documented, a short Markdown
summary, files replaced atomically, and reading a report back."""

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from tests.verifier.sample_reports import NET
from verifier.campaign import CampaignResult
from verifier.compare import Status
from verifier.report import (
    LATEST,
    SCHEMA_VERSION,
    Report,
    json_text,
    read_report,
    tolerance_ratio,
    write_latest,
)
from verifier.strategies import Case

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    kind: json.loads((ROOT / "reports" / "schema" / f"{kind}.schema.json").read_text())
    for kind in ("report", "campaign")
}
README = (ROOT / "reports" / "README.md").read_text()
REGISTRY = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values())
VALIDATORS = {
    "network": jsonschema.Draft202012Validator(SCHEMAS["report"], registry=REGISTRY),
    "campaign": jsonschema.Draft202012Validator(SCHEMAS["campaign"], registry=REGISTRY),
}


def validate(data):
    """Check `data` (parsed latest.json) against the schema of its kind."""
    jsonschema.Draft202012Validator.check_schema(SCHEMAS["report"])
    VALIDATORS[data["kind"]].validate(data)


def _campaign(passing, failing):
    result = CampaignResult(2, 0, "float64", "auto", "auto")
    for report in (passing, failing):
        result.networks += 1
        result.record(report)
    result.failing_case, result.failing_report = Case(NET, 0, 0, 3), failing
    return result


def _on_disk(data):
    return json.loads(json_text(data))


# --- the schema ----------------------------------------------------------------------------
def test_a_passing_and_a_failing_report_match_the_report_schema(passing, failing):
    assert passing.ok and not failing.ok and failing.root_cause == "layer1"
    for report in (passing, failing):
        validate(_on_disk(report.to_dict()))


def test_a_run_summary_matches_the_campaign_schema_with_and_without_a_failing_case(passing, failing):
    result = _campaign(passing, failing)
    data = _on_disk(result.to_dict(timestamp="2026-01-01T00:00:00+00:00"))
    validate(data)
    assert data["verdict"] == "fail" and data["root_cause"] == "layer1"
    result.failing_case = result.failing_report = None
    validate(_on_disk(result.to_dict()))


def _break(data, path, value):
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    "path,value",
    [
        (["verdict"], "fine"),
        (["schema_version"], SCHEMA_VERSION + 1),
        (["ok"], KeyError),
        (["surprise"], 1),
        (["layers", 0, "params", 0, "comparisons", 0, "max_rel_err"], "big"),
        (["layers", 0, "params", 0, "blame"], "somebody"),
        (["meta", "method"], "newton"),
    ],
    ids=[
        "unknown-verdict",
        "newer-version",
        "missing-ok",
        "unknown-field",
        "error-not-a-number",
        "unknown-blame",
        "unknown-method",
    ],
)
def test_the_report_schema_rejects_what_it_does_not_describe(failing, path, value):
    data = _break(_on_disk(failing.to_dict()), path, value)
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


def test_both_schemas_carry_the_current_schema_version():
    for schema in SCHEMAS.values():
        assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    assert f"currently **{SCHEMA_VERSION}**" in README


def _field_names(node):
    """Every property name a schema defines, at any depth."""
    if isinstance(node, dict):
        for key in ("properties",):
            for name, sub in node.get(key, {}).items():
                yield name
                yield from _field_names(sub)
        for key, sub in node.items():
            if key != "properties":
                yield from _field_names(sub)
    elif isinstance(node, list):
        for sub in node:
            yield from _field_names(sub)


def test_every_field_of_the_schemas_is_documented_in_the_reports_readme():
    names = {n for schema in SCHEMAS.values() for n in _field_names(schema)}
    assert len(names) > 60
    undocumented = sorted(n for n in names if f"`{n}`" not in README)
    assert undocumented == []


def test_the_readme_states_when_the_schema_version_is_bumped():
    rules = README.split("## Schema version", 1)[1].split("##", 1)[0]
    assert "bumped" in rules and "removed or renamed" in rules and "Adding a field is not a bump" in rules


# --- Markdown ------------------------------------------------------------------------------
def test_the_markdown_summary_is_short_and_names_verdict_root_cause_and_every_array(failing):
    text = failing.to_markdown()
    assert text.startswith("## verify-grads: fail")
    assert "**verdict: fail** · root cause: **layer1**" in text and "next step:" in text
    rows = [line for line in text.splitlines() if line.startswith("| layer")]
    assert len(rows) == 1 + 9  # the header and one row per array
    assert len(text.splitlines()) < 25
    # the layer nearest the output comes first
    assert text.index("| layer3 | layer3.W") < text.index("| layer1 | layer1.W")


def test_markdown_renders_user_names_literally(passing):
    report = copy.deepcopy(passing)
    report.layers[0].name = "<script>alert(1)</script>|x"
    report.layers[0].params[0].path = "a|b"
    text = report.to_markdown()
    assert "<script>" not in text and "&lt;script&gt;" in text
    row = next(line for line in text.splitlines() if "a\\|b" in line)
    assert row.count(" | ") == 8  # the escaped pipes did not add columns


# --- the numbers the reports print ---------------------------------------------------------
def test_the_error_over_tolerance_is_above_one_exactly_where_a_comparison_disagrees(passing, failing):
    seen = set()
    for report in (passing, failing):
        for layer in report.layers:
            for p in layer.params:
                for c in p.comparisons:
                    ratio = tolerance_ratio(c)
                    if c.status is Status.DISAGREE:
                        assert ratio > 1
                    elif c.status is Status.AGREE:
                        assert ratio <= 1
                    seen.add(c.status)
    assert {Status.AGREE, Status.DISAGREE} <= seen


def test_a_report_round_trips_through_its_dict(failing):
    data = failing.to_dict()
    assert Report.from_dict(data).to_dict() == data


# --- files ---------------------------------------------------------------------------------
def _write(directory, tag):
    return write_latest(directory, json=f'{{"tag": "{tag}"}}\n', markdown=f"# {tag}\n", html=f"<p>{tag}</p>\n")


def test_write_latest_writes_the_three_files_readable_by_everyone(tmp_path):
    paths = _write(tmp_path, "one")
    assert [p.name for p in paths] == list(LATEST)
    assert (tmp_path / "latest.md").read_text() == "# one\n"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "latest.json").stat().st_mode & 0o777 == 0o666 & ~mask


def _contents(directory):
    return {p.name: p.read_text() for p in directory.iterdir()}


def test_a_failure_while_renaming_leaves_every_old_file_intact(tmp_path, monkeypatch):
    _write(tmp_path, "old")
    before = _contents(tmp_path)
    calls = []

    def replace_then_fail(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        os.rename(src, dst)

    monkeypatch.setattr("verifier.report.os.replace", replace_then_fail)
    with pytest.raises(OSError, match="No space"):
        _write(tmp_path, "new")
    after = _contents(tmp_path)
    assert set(after) == set(before)  # no temporary file left behind
    assert after["latest.md"] == before["latest.md"]  # the failed one is untouched


def test_a_failure_while_encoding_leaves_every_old_file_intact(tmp_path):
    _write(tmp_path, "old")
    before = _contents(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        write_latest(tmp_path, json="{}", markdown="# new\n", html="\ud800 a lone surrogate cannot be UTF-8")
    assert _contents(tmp_path) == before


def test_a_failure_while_serializing_leaves_the_old_file_intact(tmp_path, failing, monkeypatch):
    _write(tmp_path, "old")
    before = _contents(tmp_path)

    def broken(*args, **kwargs):
        raise ValueError("Out of range float values are not JSON compliant")

    monkeypatch.setattr("verifier.report.json.dumps", broken)
    with pytest.raises(ValueError):
        write_latest(tmp_path, json=json_text(failing.to_dict()), markdown="", html="")
    assert _contents(tmp_path) == before


def test_read_report_gives_back_what_was_written(tmp_path, failing):
    path = tmp_path / "latest.json"
    path.write_text(json_text(failing.to_dict()))
    data = read_report(path)
    assert data == _on_disk(failing.to_dict())


def test_non_finite_numbers_are_written_as_strings_and_validate(failing):
    data = failing.to_dict()
    data["layers"][0]["params"][0]["comparisons"][0]["max_rel_err"] = float("inf")
    text = json_text(data)
    assert re.search(r'"max_rel_err": "inf"', text)
    validate(json.loads(text))
