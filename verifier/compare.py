"""Per-parameter comparison: metrics, the tolerance model, verdicts, arbitration, root cause.

Tolerance model. Entry i of a gradient g (dtype d) is held against an oracle value o_i whose own
absolute error bar is e_i (zero for JAX, the finite-difference error estimate otherwise):

    tol_i = fd_safety * e_i + rtol_d * (|o_i| + s)

where rtol_d = 10^4 * eps(d) is the round-off a backprop in dtype d can honestly accumulate, and
s is the magnitude the entry is computed from (for an entry: the largest |o| of its parameter,
since an entry can be a difference of terms that large; for a directional derivative <g, v>:
sum_j |o_j v_j|). A user-given rtol/atol replaces the model: tol_i = atol + rtol * |o_i|.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

Array = np.ndarray
RTOL_EPS_MULTIPLE = 1e4
FD_SAFETY = 10.0


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_EXERCISED = "not-exercised"
    ERROR = "error"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {
    Verdict.PASS: 0,
    Verdict.NOT_EXERCISED: 1,
    Verdict.INCONCLUSIVE: 2,
    Verdict.FAIL: 3,
    Verdict.ERROR: 4,
}


def worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=lambda v: v.severity, default=Verdict.PASS)


class Status(str, Enum):
    """The outcome of one pairwise comparison."""

    AGREE = "agree"
    DISAGREE = "disagree"
    INCONCLUSIVE = "inconclusive"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Tolerance:
    """How entries are judged equal. Model (rtol=None, atol=None) or a user override."""

    rtol: float | None = None
    atol: float | None = None
    fd_safety: float = FD_SAFETY

    @property
    def source(self) -> str:
        return "user" if self.rtol is not None or self.atol is not None else "model"

    def model_rtol(self, dtype: np.dtype) -> float:
        return RTOL_EPS_MULTIPLE * float(np.finfo(dtype).eps)

    def bounds(self, oracle: Array, error: Array, floor: Array | float, dtype: np.dtype) -> Array:
        """The per-entry tolerance for a gradient of `dtype` against `oracle` +- `error`."""
        if self.source == "user":
            rtol = self.rtol if self.rtol is not None else 0.0
            atol = self.atol if self.atol is not None else 0.0
            return atol + rtol * np.abs(oracle) + self.fd_safety * error
        return self.fd_safety * error + self.model_rtol(dtype) * (np.abs(oracle) + floor)

    def describe(self, dtype: np.dtype) -> dict[str, float | str | None]:
        rtol = self.rtol if self.source == "user" else self.model_rtol(dtype)
        return {"source": self.source, "rtol": rtol, "atol": self.atol, "fd_safety": self.fd_safety}


@dataclass
class Comparison:
    """One pair of sides (`a` is checked against `b`) over `n` items (entries or directions)."""

    a: str
    b: str
    kind: str  # "entrywise" | "directional"
    status: Status
    n: int = 0
    n_disagree: int = 0
    n_inconclusive: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    rel_norm_err: float = 0.0
    worst_index: list[int] | None = None
    worst_a: float | None = None
    worst_b: float | None = None
    worst_tol: float | None = None
    worst_error_bar: float | None = None
    note: str = ""

    @classmethod
    def unavailable(cls, a: str, b: str, kind: str, note: str) -> Comparison:
        return cls(a, b, kind, Status.UNAVAILABLE, note=note)


def compare(
    a_name: str,
    b_name: str,
    kind: str,
    a: Array,
    b: Array,
    tol: Array,
    error_bar: Array | None = None,
    inconclusive: Array | None = None,
    shape: tuple[int, ...] | None = None,
) -> Comparison:
    """Compare item by item. `inconclusive` items (a kink in the stencil) count neither way.
    `shape` maps a flat worst index back to a multi-index (entrywise comparisons)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    n = a.size
    skip = np.zeros(n, bool) if inconclusive is None else np.asarray(inconclusive, bool).ravel()
    err = np.abs(a - b)
    nonfinite = ~np.isfinite(a) | ~np.isfinite(b)
    err = np.where(nonfinite, np.inf, err)
    bad = (err > tol) & ~skip
    ratio = np.where(skip, -1.0, np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0)))
    if n == 0:
        return Comparison(a_name, b_name, kind, Status.INCONCLUSIVE, note="nothing to compare")
    i = int(np.argmax(ratio)) if np.any(~skip) else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(skip, 0.0, err / np.maximum(np.abs(b), np.finfo(np.float64).tiny))
        norm_b = float(np.linalg.norm(np.where(skip, 0.0, b)))
        norm_d = (
            float(np.linalg.norm(np.where(skip | nonfinite, 0.0, a - b))) if not np.any(nonfinite & ~skip) else np.inf
        )
    n_incon = int(skip.sum())
    if np.any(bad):
        status = Status.DISAGREE
    elif n_incon == n:
        status = Status.INCONCLUSIVE
    else:
        status = Status.AGREE
    index = list(np.unravel_index(i, shape)) if shape is not None and kind == "entrywise" else [i]
    return Comparison(
        a_name,
        b_name,
        kind,
        status,
        n=n,
        n_disagree=int(bad.sum()),
        n_inconclusive=n_incon,
        max_abs_err=float(np.max(np.where(skip, 0.0, err))),
        max_rel_err=float(np.max(rel)),
        rel_norm_err=norm_d / norm_b if norm_b > 0 else (0.0 if norm_d == 0 else np.inf),
        worst_index=[int(k) for k in index],
        worst_a=float(a[i]),
        worst_b=float(b[i]),
        worst_tol=float(tol[i]),
        worst_error_bar=None if error_bar is None else float(np.ravel(error_bar)[i]),
    )


class Blame(str, Enum):
    NONE = "none"
    HAND_WRITTEN = "hand-written"
    JAX = "jax-oracle"
    FINITE_DIFFERENCES = "finite-differences"
    UNDETERMINED = "undetermined"
    USER_CODE = "user-code"


def arbitrate(rj: Status, rf: Status, jf: Status) -> tuple[Verdict, Blame, str]:
    """The verdict for one parameter from the three pairwise outcomes (R: hand-written,
    J: JAX, F: finite differences), and whose gradient is wrong."""
    A, D, I, U = Status.AGREE, Status.DISAGREE, Status.INCONCLUSIVE, Status.UNAVAILABLE
    if rj is A:
        if rf is D:
            return (
                Verdict.PASS,
                Blame.FINITE_DIFFERENCES,
                "the hand-written gradient equals JAX's; finite differences differ from both "
                "(a non-smooth point or an ill-conditioned loss)",
            )
        return Verdict.PASS, Blame.NONE, "all available sides agree"
    if rj is D:
        if rf is A:
            return (
                Verdict.FAIL,
                Blame.JAX,
                "the hand-written gradient matches finite differences but not JAX: "
                "the JAX model of the function differs from the function",
            )
        if rf is D and jf is A:
            return Verdict.FAIL, Blame.HAND_WRITTEN, "the hand-written gradient disagrees with both oracles"
        if rf is D:
            return Verdict.FAIL, Blame.UNDETERMINED, "all three sides disagree with each other"
        return (
            Verdict.FAIL,
            Blame.HAND_WRITTEN,
            "the hand-written gradient disagrees with JAX; finite differences could not decide "
            "(kinks in every stencil)",
        )
    # no usable JAX side: finite differences alone
    if rf is A:
        return Verdict.PASS, Blame.NONE, "the hand-written gradient matches finite differences"
    if rf is D:
        return Verdict.FAIL, Blame.HAND_WRITTEN, "the hand-written gradient disagrees with finite differences"
    if rf is I:
        return Verdict.INCONCLUSIVE, Blame.NONE, "every finite-difference stencil crossed a kink"
    assert rf is U and rj in (I, U)
    return Verdict.INCONCLUSIVE, Blame.NONE, "no oracle could be evaluated"
