"""The checking engine shared by every entry point.

A check is a list of slots (one per checked array: a parameter, or a layer's Delta), each with
the hand-written gradient, the JAX gradient when there is one, and its place in a flat vector
theta over which an objective evaluates the loss. The engine plans the finite differences
(full, sampled, directional, or auto: a directional screen, then entry-by-entry localization
where the screen fails), runs them in vectorized batches, compares every pair of sides with
the tolerance model, and arbitrates a verdict per slot.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field

import numpy as np

from verifier.compare import Blame, Comparison, Pair, Status, Tolerance, Verdict, arbitrate, compare_segments
from verifier.finite_diff import (
    Estimate,
    Items,
    Method,
    Mode,
    Objective,
    estimate,
    random_directions_for,
    sample_entries,
)
from verifier.report import ParamResult

Array = np.ndarray
HAND, JAX, FD = "hand-written", "jax", "finite-differences"
DIRECTIONS_PER_SLOT = 2  # without JAX: the directional screen is the only check of the slot
SAMPLED_ENTRIES = 16
FULL_LOCALIZATION_LIMIT = 4096


@dataclass
class Slot:
    """One checked array. `start`/`size` place it in theta; `magnitude` (size,) sets the
    finite-difference step of each entry; `dtype` is the hand-written gradient's dtype."""

    layer: str
    path: str
    kind: str
    shape: tuple[int, ...]
    start: int
    magnitude: Array
    dtype: np.dtype
    hand: Array | None = None
    jax: Array | None = None
    terms: Array | None = None  # per entry, the sum of |terms| it adds up (round-off scale), if known
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Plan:
    method: Method
    mode: Mode
    tolerance: Tolerance
    seed: int
    supports_complex: bool
    jax_note: str = ""
    analytic: bool = False  # known analytic off its kinks: the complex step needs no cross-check


def describe_exception(exc: BaseException) -> str:
    """`Type: message` plus the innermost frame, for a verdict of `error`."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def harness_rng(seed: int) -> np.random.Generator:
    """The harness's own stream: seeded, but never the stream a user draws data from with a
    plain default_rng(seed)."""
    return np.random.default_rng([seed, 0x9E3779B9, 0x6A09E667])


def run(slots: list[Slot], objective: Objective, theta: Array, plan: Plan) -> list[ParamResult]:
    rng = harness_rng(plan.seed)
    checkable = [s for s in slots if s.error is None and s.hand is not None]
    first_mode = Mode.DIRECTIONAL if plan.mode is Mode.AUTO else plan.mode
    fd = _finite_differences(checkable, objective, theta, plan, first_mode, rng)
    results = _judge_all(checkable, fd, plan)
    if plan.mode is Mode.AUTO:
        suspects = [s for s in checkable if _needs_localization(results[s.path])]
        if suspects:
            fd2 = _finite_differences(suspects, objective, theta, plan, Mode.FULL, rng)
            results.update(_judge_all(suspects, fd2, plan))
    out = []
    for s in slots:
        if s.path in results:
            out.append(results[s.path])
        else:
            out.append(
                ParamResult(
                    s.path,
                    s.layer,
                    s.kind,
                    list(s.shape),
                    Verdict.ERROR,
                    Blame.USER_CODE,
                    explanation="the hand-written gradient could not be computed",
                    error=s.error,
                    next_step=f"fix the exception raised while computing {s.path}: {s.error}",
                )
            )
    return out


@dataclass
class _SlotFD:
    kind: str  # "entrywise" | "directional"
    estimate: Estimate
    entries: Array | None = None  # local flat indices (entrywise)
    directions: Array | None = None  # (k, size) (directional)


def _finite_differences(
    slots: list[Slot], objective: Objective, theta: Array, plan: Plan, mode: Mode, rng: np.random.Generator
) -> dict[str, _SlotFD]:
    """One batched finite-difference run over every slot, in the given (non-auto) mode."""
    n = theta.size
    if not slots:
        return {}
    if mode is Mode.DIRECTIONAL:
        dirs = random_directions_for(rng, [_directions_for(s) for s in slots], [s.size for s in slots])
        dense = np.zeros((sum(len(d) for d in dirs), n))
        scale = np.empty(len(dense))
        row = 0
        for s, d in zip(slots, dirs, strict=True):
            dense[row : row + len(d), s.start : s.start + s.size] = d
            scale[row : row + len(d)] = math.sqrt(float(s.magnitude @ s.magnitude) / s.size)  # RMS
            row += len(d)
        est = _estimate(objective, theta, Items(directions=dense), scale, plan)
        return _per_slot(slots, est, "directional", dirs)
    local = []
    for s in slots:
        if mode is Mode.FULL and s.size <= FULL_LOCALIZATION_LIMIT:
            local.append(np.arange(s.size))
        elif mode is Mode.FULL:  # too many entries: the worst suspects plus a random sample
            local.append(_suspect_entries(s, rng))
        else:
            local.append(sample_entries(rng, s.size, SAMPLED_ENTRIES))
    flat = np.concatenate([s.start + idx for s, idx in zip(slots, local, strict=True)])
    scale = np.concatenate([s.magnitude[idx] for s, idx in zip(slots, local, strict=True)])
    est = _estimate(objective, theta, Items(entries=flat), scale, plan)
    return _per_slot(slots, est, "entrywise", local)


def _per_slot(slots: list[Slot], est: Estimate, kind: str, items: list[Array]) -> dict[str, _SlotFD]:
    """Split one batched estimate back into the slots' own items (entries or directions), in turn."""
    out: dict[str, _SlotFD] = {}
    row = 0
    for s, part in zip(slots, items, strict=True):
        own = est.take(slice(row, row + len(part)))
        out[s.path] = _SlotFD(kind, own, entries=part) if kind == "entrywise" else _SlotFD(kind, own, directions=part)
        row += len(part)
    return out


def _directions_for(s: Slot) -> int:
    """Random directions of the screen: two when finite differences are the only oracle, one
    when JAX answers every entry. The entrywise comparison with JAX then judges the hand-written
    gradient; the screen only confirms the JAX side against the function itself, where a random
    direction sees any systematic difference, and a failing screen or a JAX disagreement sends
    the slot to entry-by-entry localization. Each direction costs one pass of the network
    from the slot's layer, whatever the slot's size."""
    return 1 if s.jax is not None else DIRECTIONS_PER_SLOT


def _estimate(objective: Objective, theta: Array, items: Items, scale: Array, plan: Plan) -> Estimate:
    return estimate(
        objective,
        theta,
        items,
        scale,
        method=plan.method,
        supports_complex=plan.supports_complex,
        analytic=plan.analytic,
    )


def _suspect_entries(s: Slot, rng: np.random.Generator) -> Array:
    picks = [sample_entries(rng, s.size, FULL_LOCALIZATION_LIMIT // 2)]
    if s.jax is not None and s.hand is not None:
        diff = np.abs(np.ravel(s.hand) - np.ravel(s.jax))
        picks.append(np.argsort(diff)[-FULL_LOCALIZATION_LIMIT // 2 :])
    return np.unique(np.concatenate(picks))


def _needs_localization(r: ParamResult) -> bool:
    """Entry by entry where the directional screen failed or met a kink (entries away from the
    kink can still decide), or where JAX rejects the hand-written gradient (one wrong entry is
    diluted along a random direction)."""
    return any(
        (c.kind == "directional" and (c.status is Status.DISAGREE or c.n_inconclusive > 0))
        or (c.b == JAX and c.status is Status.DISAGREE)
        for c in r.comparisons
    )


class _Batch:
    """The pairwise comparisons of many slots, gathered, then judged in one vectorized pass
    (small networks have a dozen arrays, each too small for numpy to pay per call)."""

    COLUMNS = ("a", "b", "error", "floor", "terms", "kink")

    def __init__(self, tolerance: Tolerance) -> None:
        self.tolerance = tolerance
        self.pairs: list[Pair] = []
        self.columns: dict[str, list[Array]] = {name: [] for name in self.COLUMNS}
        self.lengths: list[int] = []
        self.exact: list[bool] = []  # no error bar on the oracle side (JAX)
        self.eps: list[float] = []
        self.tiny: list[float] = []

    def add(
        self,
        pair: Pair,
        a: Array,
        b: Array,
        error: Array | None,
        floor: Array | float,
        dtype: np.dtype,
        terms: Array | float,
        inconclusive: Array | None = None,
    ) -> int:
        """Queue `a` checked against oracle `b` +- `error` for a gradient of `dtype`; `floor` and
        `terms` as in Tolerance.bounds. Returns the handle of the comparison in `run()`."""
        b = np.asarray(b, np.float64).ravel()
        n = b.size
        info = np.finfo(dtype)
        row = {
            "a": np.asarray(a, np.float64).ravel(),
            "b": b,
            "error": np.zeros(n) if error is None else error,
            "floor": np.full(n, floor) if isinstance(floor, float) else floor,
            "terms": np.full(n, terms) if isinstance(terms, float) else terms,
            "kink": np.zeros(n, bool) if inconclusive is None else inconclusive,
        }
        for name, value in row.items():
            self.columns[name].append(value)
        self.pairs.append(pair)
        self.lengths.append(n)
        self.exact.append(error is None)
        self.eps.append(float(info.eps))
        self.tiny.append(float(info.tiny))
        return len(self.pairs) - 1

    def run(self) -> list[Comparison]:
        if not self.pairs:
            return []
        c = {name: np.concatenate(parts) for name, parts in self.columns.items()}
        eps, tiny = np.repeat(self.eps, self.lengths), np.repeat(self.tiny, self.lengths)
        tol = self.tolerance.bounds_for(c["b"], c["error"], c["floor"], eps, tiny, c["terms"])
        out = compare_segments(self.pairs, self.lengths, c["a"], c["b"], tol, c["error"], c["kink"])
        for comparison, exact in zip(out, self.exact, strict=True):
            if exact:  # an exact oracle: no error bar to show
                comparison.worst_error_bar = None
        return out


def _judge_all(slots: list[Slot], fds: dict[str, _SlotFD], plan: Plan) -> dict[str, ParamResult]:
    """Every slot's three comparisons, batched, then a verdict per slot."""
    batch = _Batch(plan.tolerance)
    f64 = np.dtype(np.float64)
    staged = []
    for s in slots:
        assert s.hand is not None
        fd = fds.get(s.path)
        hand = np.asarray(s.hand, np.float64).ravel()
        jax = None if s.jax is None else np.asarray(s.jax, np.float64).ravel()
        scale_ref = np.abs(np.where(np.isfinite(hand if jax is None else jax), hand if jax is None else jax, 0.0))
        terms: Array | float = 0.0 if s.terms is None else np.asarray(s.terms, np.float64).ravel()
        largest = scale_ref.max(initial=0.0)
        jax_note = "; ".join(s.notes) or plan.jax_note
        rj: Comparison | int = (
            Comparison.unavailable(HAND, JAX, "entrywise", jax_note)
            if jax is None
            else batch.add(Pair(HAND, JAX, "entrywise", s.shape), hand, jax, None, largest, s.dtype, terms)
        )
        rf: Comparison | int
        jf: Comparison | int
        fd_info: dict[str, object] = {}
        if fd is None:
            rf = Comparison.unavailable(HAND, FD, "-", "no finite differences were run")
            jf = Comparison.unavailable(JAX, FD, "-", "no finite differences were run")
        else:
            e = fd.estimate
            if fd.kind == "entrywise":
                assert fd.entries is not None
                h_items = hand[fd.entries]
                j_items = None if jax is None else jax[fd.entries]
                floor: Array | float = largest
                item_terms: Array | float = terms if isinstance(terms, float) else terms[fd.entries]
                shape: tuple[int, ...] | None = s.shape
            else:
                assert fd.directions is not None
                h_items = fd.directions @ np.where(np.isfinite(hand), hand, 0.0)
                h_items = np.where(np.all(np.isfinite(hand)), h_items, np.nan)
                j_items = None if jax is None else fd.directions @ jax
                floor = np.abs(fd.directions) @ scale_ref
                item_terms = terms if isinstance(terms, float) else np.abs(fd.directions) @ terms
                shape = None
            rf = batch.add(
                Pair(HAND, FD, fd.kind, shape), h_items, e.value, e.error, floor, s.dtype, item_terms, e.kink
            )
            jf = (
                Comparison.unavailable(JAX, FD, fd.kind, jax_note)
                if j_items is None
                else batch.add(Pair(JAX, FD, fd.kind, shape), j_items, e.value, e.error, floor, f64, item_terms, e.kink)
            )
            fd_info = {
                "mode": fd.kind,
                "items": len(e.value),
                "methods": sorted(set(e.method)),
                "evaluations": int(e.evaluations),
                "max_error_estimate": float(np.max(e.error[~e.kink], initial=0.0)),
                "kinks": int(e.kink.sum()),
            }
        staged.append((s, fd, (rj, rf, jf), fd_info, hand, jax))

    done = batch.run()
    results: dict[str, ParamResult] = {}
    described: dict[np.dtype, dict[str, float | str | None]] = {}
    for s, fd, handles, fd_info, hand, jax in staged:
        rj_, rf_, jf_ = (done[h] if isinstance(h, int) else h for h in handles)
        if (
            fd is not None
            and fd.kind == "entrywise"
            and rf_.worst_index is not None
            and fd.entries is not None
            and len(fd.entries) < s.size
        ):
            rf_.note = "entries checked: a sample (the worst suspects and a random draw)"
        if s.dtype not in described:
            described[s.dtype] = plan.tolerance.describe(s.dtype)
        verdict, blame, why = arbitrate(rj_.status, rf_.status, jf_.status)
        if verdict is Verdict.PASS and _all_zero(hand, jax, rf_):
            verdict, why = (
                Verdict.NOT_EXERCISED,
                "the gradient is exactly zero on every side: this check proves nothing",
            )
        result = ParamResult(
            s.path,
            s.layer,
            s.kind,
            list(s.shape),
            verdict,
            blame,
            why,
            [rj_, rf_, jf_],
            tolerance=dict(described[s.dtype]),
            finite_differences=fd_info,
        )
        result.next_step = next_step(result) if verdict is Verdict.FAIL else ""
        results[s.path] = result
    return results


def _all_zero(hand: Array, jax: Array | None, rf: Comparison) -> bool:
    if hand.any() or (jax is not None and jax.any()):  # NaN counts as nonzero, as in `!= 0`
        return False
    return rf.status in (Status.AGREE, Status.UNAVAILABLE, Status.INCONCLUSIVE)


def next_step(r: ParamResult) -> str:
    """A generic next step from the deciding comparison; entry points may refine it."""
    w = r.worst
    where = ""
    if w is not None and w.worst_index is not None:
        item = f"entry {tuple(w.worst_index)}" if w.kind == "entrywise" else f"random direction {w.worst_index[0]}"
        where = f" worst at {item}: {w.a}={w.worst_a:.9g}, {w.b}={w.worst_b:.9g}, tolerance {w.worst_tol:.2e}."
    if r.blame is Blame.JAX:
        return (
            f"{r.path}: the JAX model disagrees with the function's own finite differences;{where} "
            "compare the JAX version of the function with the function."
        )
    if r.blame is Blame.UNDETERMINED:
        return (
            f"{r.path}: no two sides agree;{where} check that the function is deterministic and smooth "
            "near these parameters."
        )
    return f"{r.path} is wrong in the backward of {r.layer};{where}"
