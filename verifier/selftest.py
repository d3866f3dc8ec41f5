"""`verify-grads selftest`: every planted bug of the catalogue through the harness.

Each mutant's backward pass replaces the reference's in a run over random networks with the
harness's default settings. A mutant is killed when the run reports a discrepancy; the blamed
layer (the report's root cause) is right when it is the layer the mutant's bug corrupts first,
counted from the output, in the network that exposed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from verifier.campaign import run_campaign
from verifier.mutants import CATALOGUE, Mutant


@dataclass
class MutantResult:
    name: str
    description: str
    killed: bool
    networks: int
    blamed: str | None
    expected: str | None
    seconds: float

    @property
    def right_layer(self) -> bool:
        return self.killed and self.blamed is not None and self.blamed == self.expected


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

    def summary_lines(self) -> list[str]:
        n = len(self.mutants)
        return [
            f"kill rate: {100.0 * self.killed / n:.1f}% ({self.killed}/{n})",
            f"root-cause accuracy: {100.0 * self.right / n:.1f}% ({self.right}/{n})",
        ]


def run_mutant(mutant: Mutant, *, examples: int, seed: int) -> MutantResult:
    start = time.perf_counter()
    result = run_campaign(examples, seed=seed, backward=mutant.backward())
    expected = None
    if result.failing_case is not None:
        expected = mutant.expected_root(result.failing_case.net, result.failing_case.batch)
    blamed = None if result.failing_report is None else result.failing_report.root_cause
    return MutantResult(
        mutant.name,
        mutant.description,
        killed=not result.ok,
        networks=result.networks,
        blamed=blamed,
        expected=expected,
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
