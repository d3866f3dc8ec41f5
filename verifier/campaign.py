"""Many random networks through verify_network, driven by hypothesis; and replaying a report.

Hypothesis draws cases (network + seeds); every case is verified. At the first discrepancy
hypothesis shrinks the case to a minimal one, and the summary keeps that minimal case with its
report. The summary records everything needed to reproduce it (settings, seed, the backward
pass by name), so `replay` re-verifies exactly that case and gives exactly that verdict.

A backward pass is named "reference" (reference.backward) or by a planted bug of the catalogue
in verifier.mutants; a function given from Python is recorded as `python:<module>.<name>` and
can be replayed only from Python, by passing the same function to `replay`.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

import reference
from verifier.check import Backward, verify_network
from verifier.compare import Status, Verdict, worst
from verifier.errors import InvalidArgument
from verifier.finite_diff import Method, Mode
from verifier.report import COMPARISONS, SCHEMA_VERSION, Report, markdown_table, md, tolerance_ratio
from verifier.strategies import Case, cases

REFERENCE = "reference"
PYTHON_PREFIX = "python:"
FLAKY_NOTE = (
    "this case failed, then passed when run again with the same inputs: the backward pass keeps state "
    "between calls or is not deterministic, so a replay may not reproduce the failure"
)


class _Discrepancy(Exception):
    pass


# --- backward passes by name ---------------------------------------------------------------
def backward_named(name: str, argument: str = "backward") -> Backward:
    """The backward pass a report names: "reference", or a planted bug of verifier.mutants."""
    if name == REFERENCE:
        return reference.backward
    if name.startswith(PYTHON_PREFIX):
        raise InvalidArgument(
            f"{argument}={name!r} is a function given from Python, which a report cannot rebuild; "
            "replay from Python: verifier.campaign.replay(data, backward=<the same function>)"
        )
    try:
        mutants = importlib.import_module("verifier.mutants")
    except ImportError:
        raise InvalidArgument(
            f"{argument}={name!r}: no catalogue of planted bugs (verifier.mutants) in this installation; "
            f"use {REFERENCE!r}"
        ) from None
    try:
        backward: Backward = mutants.get_mutant(name).backward()
    except KeyError:
        names = sorted(getattr(mutants, "MUTANTS", {}))
        raise InvalidArgument(
            f"{argument}={name!r} is not a planted bug; choose {REFERENCE!r} or one of {names}"
        ) from None
    return backward


def resolve_backward(backward: Backward | str, argument: str = "backward") -> tuple[Backward, str]:
    """(function, name) for a backward given by name or as a function."""
    if isinstance(backward, str):
        return backward_named(backward, argument), backward
    if not callable(backward):
        raise InvalidArgument(f"{argument}={backward!r}: expected a name or a function (net, params, trace, y)")
    if backward is reference.backward:
        return backward, REFERENCE
    qualname = getattr(backward, "__qualname__", type(backward).__qualname__)
    return backward, f"{PYTHON_PREFIX}{getattr(backward, '__module__', '?')}.{qualname}"


# --- the run summary -----------------------------------------------------------------------
def _comparison_keys() -> dict[str, float]:
    return {f"{a} vs {b}": 0.0 for a, b in COMPARISONS}


@dataclass
class LayerStats:
    """One layer over every network: verdict counts, and per comparison the largest relative
    error and the largest error/tolerance ratio of any array (above 1 it failed)."""

    verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    max_rel_err: dict[str, float] = field(default_factory=_comparison_keys)
    max_err_over_tol: dict[str, float] = field(default_factory=_comparison_keys)


@dataclass
class CampaignResult:
    """What a run over many random networks found."""

    examples: int
    seed: int
    dtype: str
    method: str
    mode: str
    backward: str = REFERENCE
    network_options: dict[str, Any] = field(default_factory=dict)
    networks: int = 0
    shrink_steps: int = 0
    params: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    network_verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    layers: dict[str, LayerStats] = field(default_factory=dict)
    failing_case: Case | None = None
    failing_report: Report | None = None
    first_failing_case: Case | None = None  # before shrinking
    first_failing_report: Report | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failing_report is None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of any checked array (a failure is always that of the minimal case)."""
        if self.failing_report is not None:
            return self.failing_report.verdict
        return worst([Verdict(k) for k, n in self.params.items() if n])

    @property
    def root_cause(self) -> str | None:
        return None if self.failing_report is None else self.failing_report.root_cause

    def record(self, report: Report) -> None:
        self.network_verdicts[report.verdict.value] += 1
        for layer in report.layers:
            stats = self.layers.setdefault(layer.name, LayerStats())
            for p in layer.params:
                self.params[p.verdict.value] += 1
                stats.verdicts[p.verdict.value] += 1
                for c in p.comparisons:
                    key = f"{c.a} vs {c.b}"
                    if c.status in (Status.AGREE, Status.DISAGREE) and key in stats.max_rel_err:
                        stats.max_rel_err[key] = max(stats.max_rel_err[key], c.max_rel_err)
                        ratio = tolerance_ratio(c)
                        if ratio is not None:
                            stats.max_err_over_tol[key] = max(stats.max_err_over_tol[key], ratio)

    def settings(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "seed": self.seed,
            "dtype": self.dtype,
            "method": self.method,
            "mode": self.mode,
            "backward": self.backward,
            "network_options": self.network_options,
        }

    def to_dict(self, timestamp: str | None = None) -> dict[str, Any]:
        """The run summary. `timing` (when it ran, how long it took) is the only field that
        differs between two runs with the same settings."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "campaign",
            "ok": self.ok,
            "verdict": self.verdict.value,
            "root_cause": self.root_cause,
            "settings": self.settings(),
            "networks": self.networks,
            "shrink_steps": self.shrink_steps,
            "params": self.params,
            "network_verdicts": self.network_verdicts,
            "layers": {
                name: {"verdicts": s.verdicts, "max_rel_err": s.max_rel_err, "max_err_over_tol": s.max_err_over_tol}
                for name, s in sorted(self.layers.items(), key=lambda kv: _layer_number(kv[0]))
            },
            "failing_case": None if self.failing_case is None else self.failing_case.to_dict(),
            "failing_report": None if self.failing_report is None else self.failing_report.to_dict(),
            "timing": {"created": timestamp, "elapsed_s": round(self.elapsed, 3)},
        }

    def campaign_line(self) -> str:
        """`campaign: N networks, F fail, I inconclusive, E error in T s`, counting each network by
        its worst verdict (a failing run counts its networks up to the first failure)."""
        v = self.network_verdicts
        return (
            f"campaign: {self.networks} networks, {v['fail']} fail, {v['inconclusive']} inconclusive, "
            f"{v['error']} error in {self.elapsed:.1f} s"
        )

    def summary_line(self) -> str:
        p = self.params
        return (
            f"{self.networks} networks, {sum(p.values())} arrays checked: {p['pass']} pass, {p['fail']} fail, "
            f"{p['inconclusive']} inconclusive ({_share(p['inconclusive'], sum(p.values()))}), "
            f"{p['not-exercised']} not-exercised, {p['error']} error"
        )

    def to_markdown(self, replay_command: str | None = None) -> str:
        """A short summary for a CI job page: the verdict, the root cause, the per-layer table and,
        on a discrepancy, the minimal failing network's own table."""
        s = self.settings()
        headline = "all gradients agree" if self.ok else "DISCREPANCY"
        lines = [f"## verify-grads: {headline}", ""]
        lines.append(
            f"**verdict: {self.verdict.value}**"
            + (f" · root cause: **{md(self.root_cause)}**" if self.root_cause else "")
        )
        lines += [
            "",
            f"{self.summary_line()} (seed {s['seed']}, {s['dtype']}, method {s['method']}, mode {s['mode']}"
            + ("" if self.backward == REFERENCE else f", backward {md(self.backward)}")
            + ").",
            "",
            "| layer | pass | fail | inconclusive | not-exercised | error | max rel err hand/jax | hand/fd | jax/fd | "
            "max err/tol |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, stats in sorted(self.layers.items(), key=lambda kv: -_layer_number(kv[0])):
            v = stats.verdicts
            lines.append(
                f"| {md(name)} | "
                + " | ".join(str(v[k]) for k in ("pass", "fail", "inconclusive", "not-exercised", "error"))
                + " | "
                + " | ".join(f"{x:.1e}" for x in stats.max_rel_err.values())
                + f" | {max(stats.max_err_over_tol.values()):.1e} |"
            )
        if self.failing_report is not None and self.failing_case is not None:
            lines += [
                "",
                f"### Minimal failing network (after {self.shrink_steps} shrink steps)",
                "",
                f"`{md(json.dumps(self.failing_case.to_dict()))}`",
                "",
            ]
            if replay_command:
                lines += [f"replay: `{replay_command}`", ""]
            lines.append(markdown_table(self.failing_report, heading=None))
        return "\n".join(lines).rstrip("\n") + "\n"


def _layer_number(name: str) -> int:
    digits = name.removeprefix("layer")
    return int(digits) if digits.isdigit() else 0


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "0.0%"


# --- running -------------------------------------------------------------------------------
def verify_case(
    case: Case,
    *,
    backward: Backward | str = REFERENCE,
    method: str = "auto",
    mode: str = "auto",
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
) -> Report:
    """verify_network on one case; the report records the case and the backward's name."""
    fn, name = resolve_backward(backward)
    x, y = case.data()
    report = verify_network(
        case.net, case.params(), x, y, backward=fn, method=method, mode=mode, seed=seed, rtol=rtol, atol=atol
    )
    report.meta["case"] = case.to_dict()
    report.meta["backward"] = name
    return report


DTYPES = ("float64", "float32", "both")


def _cases(dtype: str, options: dict[str, Any]) -> st.SearchStrategy[Case]:
    """Cases in one dtype, or in both (each network drawn in float64 or float32)."""
    if dtype not in DTYPES:
        raise InvalidArgument(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype == "both":
        return st.one_of(cases(dtype=np.float64, **options), cases(dtype=np.float32, **options))
    return cases(dtype=np.dtype(dtype), **options)


def run_campaign(
    examples: int,
    *,
    seed: int = 0,
    dtype: str = "float64",
    method: str = "auto",
    mode: str = "auto",
    backward: Backward | str = REFERENCE,
    on_example: Callable[[int], None] | None = None,
    on_shrink: Callable[[int], None] | None = None,
    network_options: dict[str, Any] | None = None,
) -> CampaignResult:
    """Verify `examples` random networks (fewer if a discrepancy is found first, which is then
    shrunk to a minimal case). `on_example(networks)` is called after each network,
    `on_shrink(steps)` after each case tried while shrinking."""
    fn, name = resolve_backward(backward)
    options = dict(network_options or {})
    result = CampaignResult(examples, seed, dtype, method, mode, name, options)
    start = time.perf_counter()

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @hypothesis_seed(seed)
    @given(_cases(dtype, options))
    def one(case: Case) -> None:
        report = verify_case(case, backward=fn, method=method, mode=mode, seed=seed)
        report.meta["backward"] = name
        if result.failing_report is None:
            result.networks += 1
            result.record(report)
            if on_example is not None:
                on_example(result.networks)
        else:
            result.shrink_steps += 1
            if on_shrink is not None:
                on_shrink(result.shrink_steps)
        if not report.ok:
            if result.failing_report is None:
                result.first_failing_case, result.first_failing_report = case, report
            result.failing_case, result.failing_report = case, report
            raise _Discrepancy

    try:
        one()
    except _Discrepancy:
        pass
    except Flaky:  # the failing case passed when hypothesis ran it again: keep it, and say so
        assert result.failing_report is not None
        result.failing_report.notes.append(FLAKY_NOTE)
    result.elapsed = time.perf_counter() - start
    return result


# --- replaying a report --------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a replay must reproduce: the verdict, the root cause, the count of arrays per verdict."""

    verdict: str
    root_cause: str | None
    counts: dict[str, int]

    def describe(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        return (
            f"verdict {self.verdict}"
            + (f", root cause {self.root_cause}" if self.root_cause else "")
            + (f" ({counts})" if counts else "")
        )


@dataclass
class Replay:
    """A report's recorded outcome beside the outcome of running it again."""

    source: str  # "case" (one network re-verified) or "campaign" (the whole run again)
    recorded: Outcome
    report: Report | None = None
    campaign: CampaignResult | None = None

    @property
    def replayed(self) -> Outcome:
        if self.report is not None:
            return Outcome(self.report.verdict.value, self.report.root_cause, self.report.counts())
        assert self.campaign is not None
        return Outcome(self.campaign.verdict.value, self.campaign.root_cause, dict(self.campaign.params))

    @property
    def reproduced(self) -> bool:
        return self.replayed == self.recorded

    @property
    def ok(self) -> bool:
        return self.report.ok if self.report is not None else bool(self.campaign and self.campaign.ok)


def replay(
    data: Mapping[str, Any] | ReplayPlan,
    *,
    backward: Backward | None = None,
    on_example: Callable[[int], None] | None = None,
    on_shrink: Callable[[int], None] | None = None,
) -> Replay:
    """Run a report (as `verifier.report.read_report` returns it, or its plan_replay) again.

    A campaign that found a discrepancy: its minimal failing case is verified again with the same
    method, mode, seed and backward. A campaign that found none: the whole run again, with the same
    settings. A network report with its case: that case again. `backward` replaces the recorded
    backward (needed for a function given from Python; the report keeps the recorded name)."""
    plan = data if isinstance(data, ReplayPlan) else plan_replay(data, backward=backward)
    if plan.case is not None:
        report = verify_case(
            plan.case,
            backward=plan.function,
            method=plan.method,
            mode=plan.mode,
            seed=plan.seed,
            rtol=plan.rtol,
            atol=plan.atol,
        )
        report.meta["backward"] = plan.backward
        return Replay("case", plan.recorded, report=report)
    assert plan.campaign is not None
    s = plan.campaign
    result = run_campaign(
        int(s["examples"]),
        seed=plan.seed,
        dtype=str(s["dtype"]),
        method=plan.method,
        mode=plan.mode,
        backward=plan.function,
        on_example=on_example,
        on_shrink=on_shrink,
        network_options=dict(s.get("network_options") or {}),
    )
    result.backward = plan.backward
    return Replay("campaign", plan.recorded, campaign=result)


@dataclass
class ReplayPlan:
    """What `replay` runs again, read and checked from a report before anything runs."""

    recorded: Outcome
    backward: str  # the name the report records
    function: Backward  # the backward pass it names (or the one given from Python)
    method: str
    mode: str
    seed: int
    case: Case | None = None  # one network again
    campaign: Mapping[str, Any] | None = None  # or the whole run again, with these settings
    rtol: float | None = None
    atol: float | None = None

    def describe(self) -> str:
        what = "its minimal failing network" if self.campaign is None else "its whole run"
        bug = "" if self.backward == REFERENCE else f", backward {self.backward}"
        return f"{what} again (method {self.method}, mode {self.mode}, seed {self.seed}{bug})"


def plan_replay(data: Mapping[str, Any], *, backward: Backward | None = None) -> ReplayPlan:
    """The plan of a replay; InvalidArgument when a part of the report is missing or malformed,
    or it names a backward pass that cannot be rebuilt (and none is given)."""
    try:
        fields = _campaign_plan(data) if data.get("kind") == "campaign" else _network_plan(data)
    except InvalidArgument:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgument(
            f"the report is incomplete or malformed ({type(exc).__name__}: {exc}), so it cannot be replayed; "
            "run verify-grads again to write a new one"
        ) from None
    name = fields["backward"]
    function = backward if backward is not None else backward_named(name, "backward")
    return ReplayPlan(function=function, **fields)


def _outcome(report: Mapping[str, Any]) -> Outcome:
    return Outcome(
        str(Verdict(report["verdict"]).value), report["root_cause"], {k: int(n) for k, n in report["counts"].items()}
    )


def _campaign_plan(data: Mapping[str, Any]) -> dict[str, Any]:
    s = data["settings"]
    name = str(s.get("backward", REFERENCE))
    if data.get("failing_case") is not None:
        failing = data["failing_report"]
        meta = failing["meta"]
        case = Case.from_dict(data["failing_case"])
        return _fields(_outcome(failing), name, meta["method"], meta["mode"], meta["seed"], case=case)
    counts = {k: int(n) for k, n in data["params"].items()}
    recorded = Outcome(worst([Verdict(k) for k, n in counts.items() if n]).value, None, counts)
    if s["dtype"] not in DTYPES or int(s["examples"]) < 1:
        raise ValueError(f"settings: dtype {s['dtype']!r} and examples {s['examples']!r} do not describe a run")
    return _fields(recorded, name, s["method"], s["mode"], s["seed"], campaign=s)


def _network_plan(data: Mapping[str, Any]) -> dict[str, Any]:
    meta = data["meta"]
    if meta.get("case") is None:
        command = meta.get("command")
        hint = f"run its command again: {command}" if command else "run the check that wrote it again"
        raise InvalidArgument(f"the report records no random case to replay (it did not come from a campaign); {hint}")
    tol = meta.get("tolerance") or {}
    user_tol = tol.get("source") == "user"
    return _fields(
        _outcome(data),
        str(meta.get("backward", REFERENCE)),
        meta["method"],
        meta["mode"],
        meta["seed"],
        case=Case.from_dict(meta["case"]),
        rtol=tol.get("rtol") if user_tol else None,
        atol=tol.get("atol") if user_tol else None,
    )


def _fields(recorded: Outcome, backward: Any, method: Any, mode: Any, seed: Any, **rest: Any) -> dict[str, Any]:
    return {
        "recorded": recorded,
        "backward": str(backward),
        "method": Method(method).value,
        "mode": Mode(mode).value,
        "seed": int(seed),
        **rest,
    }
