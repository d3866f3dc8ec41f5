"""The report: per-layer, per-parameter results, as data, JSON and Markdown (HTML: verifier.html).

The JSON layout is described in reports/README.md, checked by the JSON schemas in
reports/schema/, and versioned by SCHEMA_VERSION. Reading a report back (`read_report`) checks
the file, the version and the kind, with a message that names the file and the fix.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from verifier.compare import Blame, Comparison, Status, Verdict, worst
from verifier.errors import InvalidArgument

# Bump on any change a reader of the previous version could misread: a field removed or renamed,
# a type or a meaning changed. Adding a field is not a bump (readers ignore fields they do not know).
SCHEMA_VERSION = 2
OLDEST_READABLE_SCHEMA = 1
REPORT_KINDS = ("campaign", "network")
COMPARISONS = (("hand-written", "jax"), ("hand-written", "finite-differences"), ("jax", "finite-differences"))


@dataclass
class ParamResult:
    """One checked array: a parameter (`layer2.W`) or a layer's Delta (`layer2.Delta`)."""

    path: str
    layer: str
    kind: str  # "parameter" | "delta"
    shape: list[int]
    verdict: Verdict
    blame: Blame = Blame.NONE
    explanation: str = ""
    comparisons: list[Comparison] = field(default_factory=list)
    tolerance: dict[str, Any] = field(default_factory=dict)
    finite_differences: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    next_step: str = ""

    def comparison(self, a: str, b: str) -> Comparison | None:
        return next((c for c in self.comparisons if (c.a, c.b) == (a, b)), None)

    @property
    def worst(self) -> Comparison | None:
        """The comparison that decided a failure (or the first available one)."""
        ranked = [c for c in self.comparisons if c.status is Status.DISAGREE] or [
            c for c in self.comparisons if c.status is not Status.UNAVAILABLE
        ]
        return ranked[0] if ranked else None


@dataclass
class LayerResult:
    name: str
    params: list[ParamResult]

    @property
    def verdict(self) -> Verdict:
        return worst([p.verdict for p in self.params])


@dataclass
class Report:
    """The outcome of one gradient check."""

    layers: list[LayerResult]
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(layer.verdict in (Verdict.FAIL, Verdict.ERROR) for layer in self.layers)

    @property
    def verdict(self) -> Verdict:
        return worst([layer.verdict for layer in self.layers])

    @property
    def root_cause(self) -> str | None:
        """The first failing layer counted from the output (layers are listed input first)."""
        for layer in reversed(self.layers):
            if layer.verdict in (Verdict.FAIL, Verdict.ERROR):
                return layer.name
        return None

    def layer(self, name: str) -> LayerResult:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the report; layers: {[lay.name for lay in self.layers]}")

    def param(self, path: str) -> ParamResult:
        for layer in self.layers:
            for p in layer.params:
                if p.path == path:
                    return p
        raise KeyError(f"no parameter {path!r} in the report")

    @property
    def failures(self) -> list[ParamResult]:
        return [p for layer in self.layers for p in layer.params if p.verdict in (Verdict.FAIL, Verdict.ERROR)]

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for layer in self.layers:
            for p in layer.params:
                out[p.verdict.value] += 1
        return out

    @property
    def next_step(self) -> str:
        root = self.root_cause
        if root is None:
            return ""
        failing = [p for p in self.layer(root).params if p.verdict in (Verdict.FAIL, Verdict.ERROR)]
        # a failing Delta explains the layer's other failures, so it leads
        lead = next((p for p in failing if p.kind == "delta"), failing[0])
        return lead.next_step

    # --- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "network",
            "ok": self.ok,
            "verdict": self.verdict.value,
            "root_cause": self.root_cause,
            "next_step": self.next_step,
            "counts": self.counts(),
            "meta": self.meta,
            "notes": self.notes,
            "layers": [
                {
                    "name": layer.name,
                    "verdict": layer.verdict.value,
                    "params": [_param_to_dict(p) for p in layer.params],
                }
                for layer in self.layers
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(jsonable(self.to_dict()), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        layers = [
            LayerResult(layer["name"], [_param_from_dict(p) for p in layer["params"]]) for layer in data["layers"]
        ]
        return cls(layers, dict(data.get("meta", {})), list(data.get("notes", [])))

    def to_markdown(self) -> str:
        return markdown_table(self)


def _param_to_dict(p: ParamResult) -> dict[str, Any]:
    d = asdict(p)
    d["verdict"] = p.verdict.value
    d["blame"] = p.blame.value
    d["comparisons"] = [{**asdict(c), "status": c.status.value} for c in p.comparisons]
    return d


def _param_from_dict(d: dict[str, Any]) -> ParamResult:
    comps = [Comparison(**{**c, "status": Status(c["status"])}) for c in d.get("comparisons", [])]
    fields = {k: v for k, v in d.items() if k not in ("comparisons", "verdict", "blame")}
    return ParamResult(**fields, verdict=Verdict(d["verdict"]), blame=Blame(d["blame"]), comparisons=comps)


def jsonable(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so that the file stays standard JSON."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


SIDE_SHORT = {"hand-written": "hand", "jax": "jax", "finite-differences": "fd"}
VERDICT_ORDER = ("pass", "fail", "inconclusive", "not-exercised", "error")


def json_text(data: Mapping[str, Any]) -> str:
    """Standard JSON (inf/nan as strings), indented, with a final newline: what goes on disk."""
    return json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"


def tolerance_ratio(c: Comparison) -> float | None:
    """|a - b| / tol at the comparison's worst item, the one nearest to failing: above 1 it fails.
    None when the comparison has no item (unavailable, nothing compared)."""
    if c.status is Status.UNAVAILABLE or c.worst_a is None or c.worst_b is None or c.worst_tol is None:
        return None
    err = abs(c.worst_a - c.worst_b)
    if not math.isfinite(err):
        return math.inf
    if c.worst_tol > 0:
        return err / c.worst_tol
    return math.inf if err > 0 else 0.0


def md(text: object) -> str:
    """A table cell of Markdown that renders `text` literally: no HTML, no broken table."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def comparison_cell(c: Comparison | None) -> str:
    """`agree 1.2e-14`: the status and the max relative error of one comparison."""
    return "n/a" if c is None or c.status is Status.UNAVAILABLE else f"{c.status.value} {_fmt(c.max_rel_err)}"


def worst_entry_cell(c: Comparison | None) -> str:
    """`ent [0, 1]: hand=0.5 jax=0.51 (tol 1e-12)`: the item nearest to failing, both values, its tolerance."""
    if c is None or c.worst_index is None or c.worst_a is None or c.worst_b is None:
        return "-"
    return (
        f"{c.kind[:3]} {c.worst_index}: {SIDE_SHORT.get(c.a, c.a)}={c.worst_a:.6g} "
        f"{SIDE_SHORT.get(c.b, c.b)}={c.worst_b:.6g} (tol {_fmt(c.worst_tol)})"
    )


def worst_ratio(p: ParamResult) -> float | None:
    ratios = [r for r in (tolerance_ratio(c) for c in p.comparisons) if r is not None]
    return max(ratios) if ratios else None


def tolerance_line(meta: Mapping[str, Any]) -> str:
    tol = meta.get("tolerance")
    if not isinstance(tol, Mapping):
        return ""
    parts = [f"tolerance: {tol.get('source', '?')}"]
    for key in ("rtol", "atol", "fd_safety"):
        if isinstance(tol.get(key), (int, float)):
            parts.append(f"{key} {tol[key]:.3g}")
    return ", ".join(parts)


def markdown_table(report: Report, heading: str | None = "verify-grads") -> str:
    """A short Markdown summary for a CI job page: verdict, root cause, next step, then one row per
    array, the layer nearest the output first."""
    lines = []
    if heading:  # under a heading of its own; nested in a run summary, the summary says it
        lines += [f"## {md(heading)}: {report.verdict.value}", ""]
        lines.append(
            f"**verdict: {report.verdict.value}**"
            + (f" · root cause: **{md(report.root_cause)}**" if report.root_cause else "")
        )
        lines.append("")
    if report.next_step:
        lines += [f"next step: {md(report.next_step)}", ""]
    settings = ", ".join(
        f"{k} {md(report.meta[k])}" for k in ("dtype", "batch", "method", "mode", "seed") if k in report.meta
    )
    tol = tolerance_line(report.meta)
    if settings or tol:
        lines += ["; ".join(x for x in (settings, tol) if x), ""]
    lines += [
        "| layer | array | verdict | blame | hand vs jax | hand vs fd | jax vs fd | err/tol | worst entry |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in reversed(report.layers):
        for p in layer.params:
            cells = [comparison_cell(p.comparison(a, b)) for a, b in COMPARISONS]
            blame = "" if p.blame is Blame.NONE else p.blame.value
            lines.append(
                f"| {md(layer.name)} | {md(p.path)} | {p.verdict.value} | {blame} | "
                + " | ".join(cells)
                + f" | {_fmt(worst_ratio(p))} | {md(worst_entry_cell(p.worst))} |"
            )
    for note in report.notes:
        lines.append(f"\n> {md(note)}")
    return "\n".join(lines) + "\n"


# --- files ---------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a truncated file."""
    write_all_atomic({path: text})


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def write_all_atomic(files: Mapping[Path, str]) -> None:
    """Write every file to a temporary beside it first, then rename each into place: a failure
    while writing (disk full, an exception while encoding) leaves every old file intact."""
    temps: dict[Path, str] = {}
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = tmp
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp makes 0600; a report is for everyone to read
                os.fsync(f.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)


LATEST = ("latest.json", "latest.md", "latest.html")


def write_latest(directory: Path, *, json: str, markdown: str, html: str) -> list[Path]:
    """latest.json, latest.md and latest.html in `directory`, replaced together (design.md)."""
    paths = [directory / name for name in LATEST]
    write_all_atomic(dict(zip(paths, (json, markdown, html), strict=True)))
    return paths


def read_report(path: Path, argument: str = "REPORT") -> dict[str, Any]:
    """A report file as data, checked: a readable file, JSON, a known kind, a schema version this
    code reads. InvalidArgument names `argument`, the file, what is wrong and the fix."""
    where = f"{argument} {str(path)!r}"
    if path.is_dir():
        raise InvalidArgument(f"{where} is a directory; give a report file inside it, e.g. {path / 'latest.json'}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidArgument(f"{where}: no such file; reports are written as latest.json in --report-dir") from None
    except OSError as exc:
        raise InvalidArgument(
            f"{where}: cannot read it ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidArgument(f"{where} is not a text file: not a verify-grads JSON report") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): the file is "
            "truncated or corrupt; run verify-grads again to write a new one"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise InvalidArgument(
            f"{where} is not a verify-grads report: expected a JSON object with an integer 'schema_version'"
        )
    version = data["schema_version"]
    if version > SCHEMA_VERSION:
        raise InvalidArgument(
            f"{where} has schema version {version}, newer than this verify-grads reads "
            f"(up to {SCHEMA_VERSION}): upgrade verify-grads to read it"
        )
    if version < OLDEST_READABLE_SCHEMA:
        raise InvalidArgument(f"{where} has schema version {version}; versions start at {OLDEST_READABLE_SCHEMA}")
    kind = data.get("kind")
    if kind is None and version == 1 and isinstance(data.get("meta"), dict) and "layers" in data:
        kind = "network"  # version 1 wrote a single report's kind only inside meta
    if kind not in REPORT_KINDS:
        raise InvalidArgument(
            f"{where} is a report of kind {kind!r}, not one of {list(REPORT_KINDS)}: "
            "give a report written by verify-grads (latest.json)"
        )
    data["kind"] = kind
    return data
