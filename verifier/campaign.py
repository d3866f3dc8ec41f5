"""Many random networks through verify_network, driven by hypothesis.

Hypothesis draws cases (network + seeds); every case is verified. At the first discrepancy
hypothesis shrinks the case to a minimal one, and the summary keeps that minimal case with its
report, so `verify-grads replay` can reproduce it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

import reference
from verifier.check import Backward, verify_network
from verifier.compare import Status, Verdict
from verifier.report import SCHEMA_VERSION, Report
from verifier.strategies import Case, cases

COMPARISONS = (("hand-written", "jax"), ("hand-written", "finite-differences"), ("jax", "finite-differences"))


class _Discrepancy(Exception):
    pass


@dataclass
class LayerStats:
    verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    max_rel_err: dict[str, float] = field(default_factory=lambda: {f"{a} vs {b}": 0.0 for a, b in COMPARISONS})


@dataclass
class CampaignResult:
    """What a run over many random networks found."""

    examples: int
    seed: int
    dtype: str
    method: str
    mode: str
    networks: int = 0
    shrink_steps: int = 0
    params: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    layers: dict[str, LayerStats] = field(default_factory=dict)
    failing_case: Case | None = None
    failing_report: Report | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failing_report is None

    def record(self, report: Report) -> None:
        for layer in report.layers:
            stats = self.layers.setdefault(layer.name, LayerStats())
            for p in layer.params:
                self.params[p.verdict.value] += 1
                stats.verdicts[p.verdict.value] += 1
                for c in p.comparisons:
                    key = f"{c.a} vs {c.b}"
                    if c.status in (Status.AGREE, Status.DISAGREE) and key in stats.max_rel_err:
                        stats.max_rel_err[key] = max(stats.max_rel_err[key], c.max_rel_err)

    def to_dict(self, timestamp: str | None = None) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "campaign",
            "ok": self.ok,
            "created": timestamp,
            "settings": {
                "examples": self.examples,
                "seed": self.seed,
                "dtype": self.dtype,
                "method": self.method,
                "mode": self.mode,
            },
            "networks": self.networks,
            "shrink_steps": self.shrink_steps,
            "params": self.params,
            "layers": {
                name: {"verdicts": s.verdicts, "max_rel_err": s.max_rel_err}
                for name, s in sorted(self.layers.items(), key=lambda kv: int(kv[0].removeprefix("layer")))
            },
            "failing_case": None if self.failing_case is None else self.failing_case.to_dict(),
            "failing_report": None if self.failing_report is None else self.failing_report.to_dict(),
            "elapsed_s": round(self.elapsed, 3),
        }


def verify_case(
    case: Case, *, backward: Backward = reference.backward, method: str = "auto", mode: str = "auto", seed: int = 0
) -> Report:
    x, y = case.data()
    report = verify_network(case.net, case.params(), x, y, backward=backward, method=method, mode=mode, seed=seed)
    report.meta["case"] = case.to_dict()
    return report


def run_campaign(
    examples: int,
    *,
    seed: int = 0,
    dtype: str = "float64",
    method: str = "auto",
    mode: str = "auto",
    backward: Backward = reference.backward,
    on_example: Callable[[int], None] | None = None,
    network_options: dict[str, Any] | None = None,
) -> CampaignResult:
    """Verify `examples` random networks (fewer if a discrepancy is found first, which is then
    shrunk to a minimal case)."""
    result = CampaignResult(examples, seed, dtype, method, mode)
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
    @given(cases(dtype=np.dtype(dtype), **(network_options or {})))
    def one(case: Case) -> None:
        report = verify_case(case, backward=backward, method=method, mode=mode, seed=seed)
        if result.failing_report is None:
            result.networks += 1
            result.record(report)
            if on_example is not None:
                on_example(result.networks)
        else:
            result.shrink_steps += 1
        if not report.ok:
            result.failing_case, result.failing_report = case, report
            raise _Discrepancy

    with contextlib.suppress(_Discrepancy):
        one()
    result.elapsed = time.perf_counter() - start
    return result
