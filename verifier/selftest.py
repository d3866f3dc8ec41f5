"""`verify-grads selftest`: every planted bug of the catalogue through the harness.

Each mutant's backward pass replaces the reference's in a run over random networks with the
harness's default settings. A mutant is killed when the run reports a discrepancy; the blamed
layer (the report's root cause) is right when it is the layer the mutant's bug corrupts first,
counted from the output, in the network that exposed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from verifier.campaign import run_campaign
from verifier.mutants import CATALOGUE, Mutant


@dataclass
class MutantResult:
    """`blamed`/`expected` on the minimal (shrunk) failing network; `first_blamed`/
    `first_expected` on the first failing network hypothesis drew, before shrinking."""

    name: str
    description: str
    killed: bool
    networks: int
    blamed: str | None
    expected: str | None
    first_blamed: str | None
    first_expected: str | None
    first_depth: int
    seconds: float

    @property
    def right_layer(self) -> bool:
        """Right on both networks: the first one found and the minimal one."""
        return (
            self.killed
            and self.blamed is not None
            and self.blamed == self.expected
            and self.first_blamed == self.first_expected
        )


@dataclass
class SelftestResult:
    mutants: list[MutantResult]

    @property
    def killed(self) -> int:
        return sum(m.killed for m in self.mutants)

    @property
    def right(self) -> int:
        return sum(m.right_layer for m in self.mutants)

    @property
    def ok(self) -> bool:
        return self.killed == len(self.mutants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "selftest",
            "ok": self.ok,
            "mutants": [{**asdict(m), "right_layer": m.right_layer} for m in self.mutants],
            "summary": self.summary_lines(),
        }

    def to_markdown(self) -> str:
        lines = [
            "| planted bug | killed | networks | blamed (first found) | expected | blamed (minimal) | expected "
            "| right layer |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in self.mutants:
            lines.append(
                f"| {m.name} | {'killed' if m.killed else 'SURVIVED'} | {m.networks} | {m.first_blamed or '-'} | "
                f"{m.first_expected or '-'} | {m.blamed or '-'} | {m.expected or '-'} | "
                f"{'yes' if m.right_layer else 'no'} |"
            )
        return "\n".join([*lines, "", *self.summary_lines()]) + "\n"

    def summary_lines(self) -> list[str]:
        n = len(self.mutants)
        return [
            f"kill rate: {100.0 * self.killed / n:.1f}% ({self.killed}/{n})",
            f"root-cause accuracy: {100.0 * self.right / n:.1f}% ({self.right}/{n})",
        ]


def run_mutant(mutant: Mutant, *, examples: int, seed: int) -> MutantResult:
    start = time.perf_counter()
    result = run_campaign(examples, seed=seed, backward=mutant.backward())
    expected = first_expected = None
    if result.failing_case is not None:
        expected = mutant.expected_root(result.failing_case.net, result.failing_case.batch)
    first = result.first_failing_case
    if first is not None:
        first_expected = mutant.expected_root(first.net, first.batch)
    return MutantResult(
        mutant.name,
        mutant.description,
        killed=not result.ok,
        networks=result.networks,
        blamed=None if result.failing_report is None else result.failing_report.root_cause,
        expected=expected,
        first_blamed=None if result.first_failing_report is None else result.first_failing_report.root_cause,
        first_expected=first_expected,
        first_depth=0 if first is None else first.net.depth,
        seconds=time.perf_counter() - start,
    )


def run_selftest(
    *,
    examples: int = 200,
    seed: int = 0,
    mutants: Sequence[Mutant] = CATALOGUE,
    on_result: Callable[[MutantResult], None] | None = None,
) -> SelftestResult:
    """Run every mutant through up to `examples` random networks."""
    results = []
    for mutant in mutants:
        r = run_mutant(mutant, examples=examples, seed=seed)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return SelftestResult(results)
