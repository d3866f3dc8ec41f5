"""pytest plugin: the `grad_check` fixture, and one report of every gradient check of a session.

Registered through the pytest11 entry point `verify_grads`, so installing verify-grads is enough:

    def test_my_layer(grad_check):
        grad_check(loss_fn, params, grad_fn)          # assert_grads_close, recorded
        grad_check.vjp(fn, vjp_fn, (x, W))            # check_vjp, raising like assert_grads_close

Options (namespaced, like pytest-randomly's):

    --verify-grads-report DIR   write DIR/latest.json, latest.md and latest.html when the session ends
    --verify-grads-seed S       the seed of every call that does not pass its own (default 0)
    --verify-grads-rtol R, --verify-grads-atol A
                                tolerances for calls that do not pass their own (default: the
                                error model)

The header line prints the seed and the tolerances with the flags that replay them. Under
pytest-xdist each worker hands its results to the controller through xdist's `workeroutput`;
the controller merges them when a worker goes down and writes the one report at the end.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from verifier.arguments import seed as seed_arg
from verifier.arguments import tolerance as tolerance_arg
from verifier.check import check_grads, check_vjp
from verifier.errors import GradientMismatch
from verifier.finite_diff import Method, Mode
from verifier.report import SCHEMA_VERSION, Report, write_latest

WORKER_OUTPUT_KEY = "verify_grads_results"
VERDICTS = ("pass", "fail", "inconclusive", "not-exercised", "error")


class _Session:
    """The default of seed/rtol/atol in a grad_check call: the session's setting."""

    def __repr__(self) -> str:
        return "<session setting>"


SESSION: Any = _Session()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verify-grads", "gradient checks (verify-grads)")
    group.addoption(
        "--verify-grads-report",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the session's gradient-check report to DIR/latest.json, latest.md and latest.html",
    )
    group.addoption(
        "--verify-grads-seed", type=seed_arg, default=0, metavar="S", help="seed of grad_check calls (default 0)"
    )
    group.addoption(
        "--verify-grads-rtol", type=tolerance_arg, default=None, metavar="R", help="rtol of grad_check calls"
    )
    group.addoption(
        "--verify-grads-atol", type=tolerance_arg, default=None, metavar="A", help="atol of grad_check calls"
    )


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    rtol: float | None = None
    atol: float | None = None
    report_dir: Path | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        return cls(
            config.getoption("verify_grads_seed"),
            config.getoption("verify_grads_rtol"),
            config.getoption("verify_grads_atol"),
            config.getoption("verify_grads_report"),
        )

    def replay_flags(self) -> str:
        flags = [f"--verify-grads-seed={self.seed}"]
        flags += [f"--verify-grads-{k}={v!r}" for k, v in (("rtol", self.rtol), ("atol", self.atol)) if v is not None]
        return " ".join(flags)

    def header(self) -> str:
        if self.rtol is None and self.atol is None:
            tol = "tolerance: error model (rtol 1e4*eps(dtype) + finite-difference error bars)"
        else:
            tol = f"tolerance: rtol {self.rtol or 0.0:g}, atol {self.atol or 0.0:g}"
        return f"verify-grads: seed {self.seed}, {tol}; replay with {self.replay_flags()}"

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rtol": self.rtol, "atol": self.atol}


@dataclass(eq=False)  # registered as a plugin: hashed by identity
class Recorder:
    """Every check of the session, as plain JSON data (what xdist workers can send)."""

    settings: Settings
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, test: str, entry: str, report: Report) -> None:
        self.records.append(
            {
                "test": test,
                "call": sum(1 for r in self.records if r["test"] == test),
                "entry": entry,
                "ok": report.ok,
                "verdict": report.verdict.value,
                "root_cause": report.root_cause,
                "next_step": report.next_step,
                "markdown": report.to_markdown(),
                "report": json.loads(report.to_json()),
            }
        )

    # --- hooks ------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> str:
        return self.settings.header()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if sent:
            self.records.extend(json.loads(sent))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if hasattr(config, "workeroutput"):  # an xdist worker: the controller writes
            config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(self.records)
        elif self.settings.report_dir is not None:
            from verifier.html import session_html

            data = session_report(self.records, self.settings)
            write_latest(
                self.settings.report_dir,
                json=json.dumps(data, indent=2) + "\n",
                markdown=session_markdown(data),
                html=session_html(data, summary_line(data), f"pytest {self.settings.replay_flags()}"),
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(terminalreporter.config, "workerinput") or not self.records:
            return
        line = summary_line(session_report(self.records, self.settings))
        where = self.settings.report_dir
        terminalreporter.write_line(line + (f"; report in {where / 'latest.md'}" if where else ""))


RECORDER = pytest.StashKey[Recorder]()


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    if settings.report_dir is not None and not hasattr(config, "workerinput"):
        try:
            settings.report_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(
                f"--verify-grads-report {settings.report_dir}: cannot create it ({exc.strerror}); give a writable "
                "directory"
            ) from None
    recorder = Recorder(settings)
    config.stash[RECORDER] = recorder
    config.pluginmanager.register(recorder, "verify-grads-recorder")


class GradCheck:
    """assert_grads_close (and check_vjp, as `.vjp`) with the session's seed and tolerances as
    defaults; every result is recorded for the session report, failed or not."""

    def __init__(self, recorder: Recorder, test: str) -> None:
        self.recorder, self.test = recorder, test

    def __call__(
        self,
        loss_fn: Callable[[Any], Any],
        params: Any,
        grad_fn: Callable[[Any], Any],
        *,
        jax_loss_fn: Callable[[Any], Any] | None = None,
        method: Method | str = "auto",
        mode: Mode | str = "auto",
        rtol: float | None = SESSION,
        atol: float | None = SESSION,
        seed: int = SESSION,
        layers: Sequence[str] | None = None,
    ) -> Report:
        __tracebackhide__ = True
        report = check_grads(
            loss_fn, params, grad_fn, jax_loss_fn=jax_loss_fn, method=method, mode=mode, layers=layers,
            **self._defaults(rtol, atol, seed),
        )  # fmt: skip
        return self._record("check_grads", report)

    def vjp(
        self,
        fn: Callable[..., Any],
        vjp_fn: Callable[..., Any],
        inputs: Sequence[Any],
        *,
        seed: int = SESSION,
        names: Sequence[str] | None = None,
        method: Method | str = "auto",
        mode: Mode | str = "auto",
        rtol: float | None = SESSION,
        atol: float | None = SESSION,
    ) -> Report:
        __tracebackhide__ = True
        report = check_vjp(
            fn, vjp_fn, inputs, names=names, method=method, mode=mode, **self._defaults(rtol, atol, seed)
        )
        return self._record("check_vjp", report)

    def _defaults(self, rtol: Any, atol: Any, seed: Any) -> dict[str, Any]:
        s = self.recorder.settings
        return {
            "rtol": s.rtol if rtol is SESSION else rtol,
            "atol": s.atol if atol is SESSION else atol,
            "seed": s.seed if seed is SESSION else seed,
        }

    def _record(self, entry: str, report: Report) -> Report:
        __tracebackhide__ = True
        self.recorder.add(self.test, entry, report)
        if not report.ok:
            raise GradientMismatch(report.to_markdown(), report)
        return report


@pytest.fixture
def grad_check(request: pytest.FixtureRequest) -> GradCheck:
    """Check a hand-written gradient like verifier.assert_grads_close; recorded for the report."""
    return GradCheck(request.config.stash[RECORDER], request.node.nodeid)


# --- the session report ----------------------------------------------------------------------


def session_report(records: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    ordered = sorted(records, key=lambda r: (r["test"], r["call"]))
    counts = dict.fromkeys(VERDICTS, 0)
    for r in ordered:
        for verdict, n in r["report"]["counts"].items():
            counts[verdict] = counts.get(verdict, 0) + n
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "pytest",
        "ok": all(r["ok"] for r in ordered),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": settings.to_dict(),
        "checks": len(ordered),
        "failed_checks": sum(not r["ok"] for r in ordered),
        "params": counts,
        "results": ordered,
    }


def summary_line(data: dict[str, Any]) -> str:
    p = data["params"]
    total = sum(p.values())
    share = 100.0 * p["inconclusive"] / total if total else 0.0
    return (
        f"verify-grads: {data['checks']} gradient checks, {data['failed_checks']} failed; arrays: {p['pass']} pass, "
        f"{p['fail']} fail, {p['inconclusive']} inconclusive ({share:.1f}%), {p['not-exercised']} not-exercised, "
        f"{p['error']} error"
    )


def session_markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    flags = Settings(s["seed"], s["rtol"], s["atol"]).replay_flags()
    lines = [
        f"# verify-grads: {'all gradients agree' if data['ok'] else 'DISCREPANCY'}",
        "",
        summary_line(data) + ".",
        "",
        f"seed {s['seed']}, rtol {s['rtol']}, atol {s['atol']} (None: the error model); replay: `pytest {flags}`",
        "",
        "| test | check | verdict | root cause | next step |",
        "|---|---|---|---|---|",
    ]
    for r in data["results"]:
        cells = [r["test"], f"{r['entry']} #{r['call']}", r["verdict"], r["root_cause"] or "", r["next_step"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for r in data["results"]:
        if not r["ok"]:
            lines += ["", f"## {_cell(r['test'])} ({r['entry']} #{r['call']})", "", r["markdown"]]
    return "\n".join(lines) + "\n"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
