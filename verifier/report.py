"""The report: per-layer, per-parameter results, as data, JSON and Markdown.

The JSON layout is described in reports/README.md and versioned by SCHEMA_VERSION.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from verifier.compare import Blame, Comparison, Status, Verdict, worst

SCHEMA_VERSION = 1


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
        return json.dumps(_jsonable(self.to_dict()), indent=indent, allow_nan=False)

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


def _jsonable(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so that the file stays standard JSON."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


SIDE_SHORT = {"hand-written": "hand", "jax": "jax", "finite-differences": "fd"}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def markdown_table(report: Report) -> str:
    """A short Markdown summary: verdict, root cause, next step, then one row per array."""
    lines = [
        f"**verdict: {report.verdict.value}**" + (f" · root cause: `{report.root_cause}`" if report.root_cause else ""),
        "",
    ]
    if report.next_step:
        lines += [f"next step: {report.next_step}", ""]
    lines += [
        "| layer | array | verdict | blame | hand vs jax | hand vs fd | jax vs fd | tolerance | worst entry |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in reversed(report.layers):
        for p in layer.params:
            cells = []
            for a, b in (
                ("hand-written", "jax"),
                ("hand-written", "finite-differences"),
                ("jax", "finite-differences"),
            ):
                c = p.comparison(a, b)
                cells.append(
                    "n/a" if c is None or c.status is Status.UNAVAILABLE else f"{c.status.value} {_fmt(c.max_rel_err)}"
                )
            w = p.worst
            worst_cell = (
                "-"
                if w is None or w.worst_index is None
                else f"{w.kind[:3]} {w.worst_index}: {SIDE_SHORT.get(w.a, w.a)}={w.worst_a:.6g} "
                f"{SIDE_SHORT.get(w.b, w.b)}={w.worst_b:.6g} (tol {_fmt(w.worst_tol)})"
            )
            rtol = p.tolerance.get("rtol")
            tol_cell = f"rtol {_fmt(rtol)}" if isinstance(rtol, float) else "-"
            blame = "" if p.blame is Blame.NONE else p.blame.value
            lines.append(
                f"| {layer.name} | {p.path} | {p.verdict.value} | {blame} | "
                + " | ".join(cells)
                + f" | {tol_cell} | {worst_cell} |"
            )
    for note in report.notes:
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
