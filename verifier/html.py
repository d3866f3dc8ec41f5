"""The HTML report: one self-contained file a person reads in a browser.

No JavaScript, no network, no external asset: the style sheet is inline and both figures (the
errors of every comparison against the tolerance, and the network drawn as layers with its skip
edges) are inline SVG drawn by matplotlib (Agg canvas, no pyplot, so no global backend is
touched; imported only here, when a report is written). Every name that comes from the user (a
layer or array name is any pytree key) goes through html.escape, and matplotlib draws text as
paths, with math parsing off for names, so a name never becomes markup.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from verifier.report import (
    COMPARISONS,
    VERDICT_ORDER,
    ParamResult,
    Report,
    comparison_cell,
    tolerance_line,
    tolerance_ratio,
    worst_ratio,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from verifier.campaign import CampaignResult

VERDICT_COLORS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "inconclusive": "#ef6c00",
    "not-exercised": "#757575",
    "error": "#6a1b9a",
}
STATUS_COLORS = {  # of one comparison
    "agree": VERDICT_COLORS["pass"],
    "disagree": VERDICT_COLORS["fail"],
    "inconclusive": VERDICT_COLORS["inconclusive"],
    "unavailable": VERDICT_COLORS["not-exercised"],
}
SIDES = {"hand-written": "hand", "jax": "jax", "finite-differences": "fd"}
STYLES = {  # marker and colour of each comparison in the error plot
    COMPARISONS[0]: ("o", "#1f77b4"),
    COMPARISONS[1]: ("s", "#d62728"),
    COMPARISONS[2]: ("^", "#2ca02c"),
}
FLOOR, CEILING = 1e-18, 1e6  # plot range: an exact zero sits on the floor, inf on the ceiling
WORST_ENTRIES = 10
LABEL_CHARS = 28

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.verdict { padding: .05em .45em; border-radius: .3em; color: #fff; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, monospace; } pre { background: #f6f6f6; padding: .7em; overflow-x: auto; }
figure { margin: .5em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
""" + "".join(f".v-{v} {{ background: {c}; }}\n" for v, c in {**VERDICT_COLORS, **STATUS_COLORS}.items())


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _verdict(v: str) -> str:
    return f'<span class="verdict v-{esc(v)}">{esc(v)}</span>'


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """`header` is plain text (escaped here); cells of `rows` are HTML, escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>\n"
        for r in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _replay_section(commands: Sequence[str]) -> str:
    if not commands:
        return ""
    code = "\n".join(esc(c) for c in commands)
    return f"<section>\n<h2>Replay</h2>\n<pre><code>{code}</code></pre>\n</section>"


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if math.isfinite(x) else esc(str(x))


# --- the single-network report -------------------------------------------------------------
def report_html(report: Report, *, replay: Sequence[str] = (), title: str = "verify-grads") -> str:
    """The whole page for one report. `replay`: the commands that reproduce it, one per line."""
    verdict = report.verdict.value
    body = [f"<h1>{esc(title)}: {_verdict(verdict)}</h1>"]
    body += _report_sections(report)
    body.append(_replay_section(replay))
    return _page(f"{title}: {verdict}", body)


def _report_sections(report: Report) -> list[str]:
    out = []
    if report.root_cause:
        out.append(f"<p><strong>root cause:</strong> <code>{esc(report.root_cause)}</code></p>")
    if report.next_step:
        out.append(f"<p><strong>next step:</strong> {esc(report.next_step)}</p>")
    counts = ", ".join(f"{n} {esc(k)}" for k, n in report.counts().items() if n)
    out.append(f"<p>{len(report.layers)} layers, arrays checked: {counts or 'none'}.</p>")
    out.append(_settings_table(report.meta))
    out.append(_figure(_array_plot(report), _ERROR_CAPTION))
    out.append(
        _figure(
            _network_plot(report),
            "The network, input on the left: each box a layer coloured by its verdict, each arrow an "
            "edge of the forward pass (Delta flows back along it; skip edges arch above).",
        )
    )
    out.append("<h2>Worst entries</h2>\n" + _worst_entries(report))
    out.append("<h2>Every array</h2>\n" + _arrays_table(report))
    if report.notes:
        out.append("<h2>Notes</h2>\n<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>")
    return out


_ERROR_CAPTION = (
    "Top: the largest relative error of each comparison, per array, on a log scale; the dashed line is "
    "the model's rtol. Bottom: the error at the entry nearest to failing divided by that entry's own "
    "tolerance (which grows with the finite-difference error bar and the magnitudes the entry is "
    "computed from): above the line at 1 the comparison fails. Exact zeros sit on the bottom edge."
)


def _settings_table(meta: Mapping[str, Any]) -> str:
    rows = [
        [esc(k), f"<code>{esc(meta[k])}</code>"]
        for k in ("dtype", "batch", "method", "mode", "seed", "backward", "command")
        if k in meta
    ]
    tol = tolerance_line(meta)
    if tol:
        rows.append(["tolerance", esc(tol.removeprefix("tolerance: "))])
    jax = meta.get("jax")
    if isinstance(jax, Mapping):
        rows.append(["JAX oracle", "used" if jax.get("used") else esc(f"not used: {jax.get('reason', '')}")])
    if isinstance(meta.get("case"), Mapping):
        rows.append(["case", f"<code>{esc(json.dumps(meta['case']))}</code>"])
    return "<h2>Settings</h2>\n" + _table(["setting", "value"], rows)


def _worst_entries(report: Report) -> str:
    items = []
    for layer in report.layers:
        for p in layer.params:
            for c in p.comparisons:
                ratio = tolerance_ratio(c)
                if ratio is not None:
                    items.append((ratio, p, c))
    items.sort(key=lambda t: -t[0])
    rows = []
    for ratio, p, c in items[:WORST_ENTRIES]:
        item = f"entry {tuple(c.worst_index or ())}" if c.kind == "entrywise" else f"direction {c.worst_index}"
        rows.append(
            [
                f"<code>{esc(p.path)}</code>",
                esc(f"{SIDES.get(c.a, c.a)} vs {SIDES.get(c.b, c.b)}"),
                esc(item),
                _num(c.worst_a),
                _num(c.worst_b),
                _num(abs(c.worst_a - c.worst_b) if c.worst_a is not None and c.worst_b is not None else None),
                _num(c.worst_tol),
                _num(c.worst_error_bar),
                _num(ratio),
                _verdict(c.status.value),
            ]
        )
    if not rows:
        return "<p>No comparison could be made.</p>"
    header = ["array", "comparison", "item", "a", "b", "|a - b|", "tolerance", "fd error bar", "err/tol", "status"]
    return _table(header, rows, numeric=(3, 4, 5, 6, 7, 8))


def _arrays_table(report: Report) -> str:
    rows = []
    for layer in reversed(report.layers):
        for p in layer.params:
            rows.append(
                [
                    esc(layer.name),
                    f"<code>{esc(p.path)}</code>",
                    esc(" x ".join(map(str, p.shape))),
                    _verdict(p.verdict.value),
                    esc("" if p.blame.value == "none" else p.blame.value),
                    *(esc(comparison_cell(p.comparison(a, b))) for a, b in COMPARISONS),
                    _num(worst_ratio(p)),
                    esc(p.error or p.explanation),
                ]
            )
    header = ["layer", "array", "shape", "verdict", "blame", "hand vs jax", "hand vs fd", "jax vs fd", "err/tol", "why"]
    return _table(header, rows, numeric=(8,))


# --- the run summary -----------------------------------------------------------------------
def campaign_html(result: CampaignResult, *, replay: Sequence[str] = ()) -> str:
    """The whole page for a run over random networks; on a discrepancy, the minimal failing
    network's own report follows the per-layer summary."""
    verdict = result.verdict.value
    headline = "all gradients agree" if result.ok else "DISCREPANCY"
    s = result.settings()
    body = [
        f"<h1>verify-grads: {esc(headline)} {_verdict(verdict)}</h1>",
        f"<p>{esc(result.summary_line())} in {result.elapsed:.1f} s.</p>",
        "<h2>Settings</h2>\n"
        + _table(
            ["setting", "value"],
            [
                [esc(k), f"<code>{esc(json.dumps(v) if isinstance(v, dict) else v)}</code>"]
                for k, v in s.items()
                if v != {}
            ],
        ),
        _figure(_layer_plot(result), _ERROR_CAPTION.replace("per array", "per layer over every network")),
        "<h2>Per layer</h2>\n" + _layer_table(result),
    ]
    if result.failing_report is not None:
        body.append(f"<h2>Minimal failing network (after {result.shrink_steps} shrink steps)</h2>")
        body += _report_sections(result.failing_report)
    body.append(_replay_section(replay))
    return _page(f"verify-grads: {headline}", body)


# --- a pytest session (the plugin's --verify-grads-report) ----------------------------------
def session_html(data: Mapping[str, Any], summary: str, replay: str) -> str:
    """The page for a pytest session: every recorded check, then each failing check's report."""
    headline = "all gradients agree" if data["ok"] else "DISCREPANCY"
    rows = [
        [
            f"<code>{esc(r['test'])}</code>",
            f"{esc(r['entry'])} #{esc(r['call'])}",
            _verdict(r["verdict"]),
            esc(r["root_cause"] or ""),
            esc(r["next_step"]),
        ]
        for r in data["results"]
    ]
    body = [
        f"<h1>verify-grads: {esc(headline)}</h1>",
        f"<p>{esc(summary)}.</p>",
        "<h2>Checks</h2>\n" + _table(["test", "check", "verdict", "root cause", "next step"], rows),
    ]
    for r in data["results"]:
        if not r["ok"]:
            body.append(f"<h2>{esc(r['test'])} ({esc(r['entry'])} #{esc(r['call'])})</h2>")
            body += _report_sections(Report.from_dict(r["report"]))
    body.append(_replay_section([replay]))
    return _page(f"verify-grads: {headline}", body)


def _layer_table(result: CampaignResult) -> str:
    rows = []
    for name, stats in result.to_dict()["layers"].items():
        rows.append(
            [
                esc(name),
                *(str(stats["verdicts"][k]) for k in VERDICT_ORDER),
                *(_num(x) for x in stats["max_rel_err"].values()),
                _num(max(stats["max_err_over_tol"].values())),
            ]
        )
    header = ["layer", *VERDICT_ORDER, "max rel err hand/jax", "hand/fd", "jax/fd", "max err/tol"]
    return _table(header, rows, numeric=tuple(range(1, 10)))


# --- figures -------------------------------------------------------------------------------
@dataclass
class _Column:
    """One x position of the error plot: an array (or a layer), its verdict, and per comparison
    the max relative error and the error/tolerance ratio (None: not compared)."""

    label: str
    verdict: str
    rel: dict[tuple[str, str], float | None]
    ratio: dict[tuple[str, str], float | None]


def _param_column(p: ParamResult) -> _Column:
    rel: dict[tuple[str, str], float | None] = {}
    ratio: dict[tuple[str, str], float | None] = {}
    for key in COMPARISONS:
        c = p.comparison(*key)
        usable = c is not None and c.status.value in ("agree", "disagree")
        rel[key] = c.max_rel_err if usable and c is not None else None
        ratio[key] = tolerance_ratio(c) if usable and c is not None else None
    return _Column(p.path, p.verdict.value, rel, ratio)


def _model_rtol(meta: Mapping[str, Any]) -> float | None:
    tol = meta.get("tolerance")
    rtol = tol.get("rtol") if isinstance(tol, Mapping) else None
    return float(rtol) if isinstance(rtol, (int, float)) and rtol > 0 else None


def _array_plot(report: Report) -> str:
    columns = [_param_column(p) for layer in report.layers for p in layer.params]
    return _error_plot(columns, "every array of the network", _model_rtol(report.meta))


def _layer_plot(result: CampaignResult) -> str:
    columns = []
    for name, stats in result.to_dict()["layers"].items():
        verdict = next((v for v in reversed(VERDICT_ORDER) if stats["verdicts"][v]), "pass")
        keys = [f"{a} vs {b}" for a, b in COMPARISONS]
        columns.append(
            _Column(
                name,
                verdict,
                {k: stats["max_rel_err"][s] for k, s in zip(COMPARISONS, keys, strict=True)},
                {k: stats["max_err_over_tol"][s] for k, s in zip(COMPARISONS, keys, strict=True)},
            )
        )
    import numpy as np

    from verifier.compare import Tolerance

    loosest = "float32" if result.dtype == "both" else result.dtype  # a mixed run: the float32 line
    rtol = Tolerance().model_rtol(np.dtype(loosest))
    return _error_plot(columns, "every layer, largest over all networks", rtol)


@contextmanager
def _figure_context() -> Iterator[type[Figure]]:
    import matplotlib
    from matplotlib.figure import Figure

    rc: dict[Any, Any] = {
        "svg.fonttype": "path",  # text as glyph paths: no user string survives as SVG text
        "svg.hashsalt": "verify-grads",  # stable element ids: the same report gives the same file
        "font.size": 9,
    }
    with matplotlib.rc_context(rc):
        yield Figure


def _svg(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{esc(caption)}</figcaption>\n</figure>"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def _clip(x: float | None) -> float | None:
    if x is None:
        return None
    if math.isnan(x) or x == math.inf:
        return CEILING
    return min(max(x, FLOOR), CEILING)


def _error_plot(columns: list[_Column], what: str, rtol: float | None) -> str:
    with _figure_context() as Figure:
        width = min(16.0, max(6.0, 0.45 * len(columns) + 2.5))
        fig = Figure(figsize=(width, 5.2), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        xs = range(len(columns))
        for j, key in enumerate(COMPARISONS):
            marker, color = STYLES[key]
            label = f"{SIDES[key[0]]} vs {SIDES[key[1]]}"
            for ax, attr in ((top, "rel"), (bottom, "ratio")):
                pts = [(x + 0.18 * (j - 1), _clip(getattr(col, attr)[key])) for x, col in zip(xs, columns, strict=True)]
                pts = [(x, y) for x, y in pts if y is not None]
                if pts:
                    ax.scatter(*zip(*pts, strict=True), marker=marker, color=color, s=22, label=label, zorder=3)
        if rtol is not None:
            top.axhline(rtol, color="#555", linestyle="--", linewidth=1, label=f"model rtol {rtol:.1e}")
        bottom.axhline(1.0, color=VERDICT_COLORS["fail"], linestyle="-", linewidth=1, label="tolerance (fails above)")
        top.set_yscale("log")
        bottom.set_yscale("log")
        top.set_ylabel("max relative error")
        bottom.set_ylabel("error / tolerance")
        top.set_title(f"Errors of each comparison, {what}")
        for ax in (top, bottom):
            ax.grid(True, axis="y", which="major", alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        bottom.set_xticks(list(xs))
        bottom.set_xticklabels(
            [_short(c.label) for c in columns], rotation=45 if len(columns) > 4 else 0, ha="right", parse_math=False
        )
        for tick, col in zip(bottom.get_xticklabels(), columns, strict=True):
            tick.set_color(VERDICT_COLORS.get(col.verdict, "#222") if col.verdict != "pass" else "#222")
        bottom.set_xlim(-0.6, len(columns) - 0.4)
        return _svg(fig)


def _network_plot(report: Report) -> str:
    """Boxes for the input, every layer and the loss; arrows for every edge. A reference network's
    spec (meta.network) gives widths, activations and skip edges; any other report is drawn as a
    chain of its layers in order."""
    names = [layer.name for layer in report.layers]
    verdicts = {layer.name: layer.verdict.value for layer in report.layers}
    spec = report.meta.get("network")
    if isinstance(spec, Mapping) and len(spec.get("layers", ())) == len(names):
        details = [f"{lay['activation']} x{lay['width']}" for lay in spec["layers"]]
        inputs = [tuple(lay["inputs"]) for lay in spec["layers"]]
        first, last = f"input x{spec.get('n_inputs', '?')}", f"loss\n{spec.get('loss', '')}"
    else:
        details = ["" for _ in names]
        inputs = [(r,) for r in range(len(names))]
        first, last = "input", "loss"
    with _figure_context() as Figure:
        n = len(names) + 2
        fig = Figure(figsize=(min(16.0, 1.5 * n + 1), 2.8), layout="constrained")
        ax = fig.subplots()
        ax.set_axis_off()
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(-0.6, 1.3)
        boxes = [
            ax.text(
                0,
                0,
                first,
                ha="center",
                va="center",
                parse_math=False,
                bbox={"boxstyle": "round", "fc": "#eeeeee", "ec": "#888"},
            )
        ]
        for r, (name, detail) in enumerate(zip(names, details, strict=True), start=1):
            color = VERDICT_COLORS.get(verdicts[name], "#888")
            root = name == report.root_cause
            label = _short(name) + (f"\n{detail}" if detail else "") + ("\nroot cause" if root else "")
            bbox = {"boxstyle": "round", "fc": color + "22", "ec": color, "lw": 2.5 if root else 1.2}
            boxes.append(ax.text(r, 0, label, ha="center", va="center", parse_math=False, bbox=bbox))
        boxes.append(
            ax.text(
                n - 1,
                0,
                last,
                ha="center",
                va="center",
                parse_math=False,
                bbox={"boxstyle": "round", "fc": "#eeeeee", "ec": "#888"},
            )
        )
        arrow = {"arrowstyle": "-|>", "color": "#555", "lw": 1.0, "shrinkA": 0, "shrinkB": 0}
        for r, ins in enumerate([*inputs, (len(names),)], start=1):
            for i in ins:
                if not 0 <= i < r:
                    continue
                if i == r - 1:
                    ax.annotate(
                        "", xy=(0.0, 0.5), xycoords=boxes[r], xytext=(1.0, 0.5), textcoords=boxes[i], arrowprops=arrow
                    )
                else:  # a skip edge: an arch above the chain, higher for a longer jump
                    style = {**arrow, "connectionstyle": f"arc3,rad={-0.25 - 0.04 * (r - i)}", "color": "#1f77b4"}
                    ax.annotate(
                        "", xy=(0.5, 1.0), xycoords=boxes[r], xytext=(0.5, 1.0), textcoords=boxes[i], arrowprops=style
                    )
        return _svg(fig)
