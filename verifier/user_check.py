"""A user's loss and gradient through the engine, into a report (check_grads, check_vjp).

The sides come from verifier.functions. After the engine's verdicts, two checks of the
hand-written side itself can fail a parameter: two calls that disagree beyond the tolerance
(nondeterminism; a difference at round-off level is only a note), and a write to the params it
was given. A failing hand-written gradient gets a hint when it is a simple function of the right
one (a constant factor, a flipped sign, a transpose, a single wrong entry).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier import engine
from verifier.compare import Blame, Status, Tolerance, Verdict, compare
from verifier.errors import InvalidArgument
from verifier.finite_diff import Items, Method, Mode, estimate
from verifier.functions import (
    HandSide,
    JaxSide,
    LossProbe,
    Names,
    UserObjective,
    forget_staged_constants,
    hand_gradients,
    jax_side,
    loss_at_params,
    probe_loss,
)
from verifier.pytrees import Tree
from verifier.report import LayerResult, ParamResult, Report

Array = np.ndarray
HAND, JAX, FD = engine.HAND, engine.JAX, engine.FD


@dataclass
class Sides:
    """Everything gathered about one check before the engine runs."""

    tree: Tree
    probe: LossProbe
    hand: HandSide
    oracle: JaxSide
    names: Names


def gather(
    loss_fn: Callable[[Any], Any],
    grad_fn: Callable[[Any], Any],
    tree: Tree,
    jax_loss_fn: Callable[[Any], Any] | None,
    method: Method,
    names: Names,
) -> Sides:
    """The caller's functions as the caller runs them first (the loss at params, grad_fn twice),
    then everything under float64 JAX (the loss's precision, the JAX oracle)."""
    center_error = loss_at_params(loss_fn, tree, names)
    hand = hand_gradients(grad_fn, tree, names)
    forget_staged_constants()
    probe = LossProbe(error=center_error) if center_error else probe_loss(loss_fn, tree, method, names)
    if probe.error is not None and jax_loss_fn is None:
        oracle = JaxSide(None, f"{names.loss} cannot be evaluated at {names.where}")
    else:
        oracle = jax_side(loss_fn, jax_loss_fn, tree, names)
    return Sides(tree, probe, hand, oracle, names)


def slots_of(sides: Sides, method: Method) -> list[engine.Slot]:
    """One engine slot per non-empty leaf."""
    tree, hand, oracle = sides.tree, sides.hand, sides.oracle
    factor = sides.probe.step_factor(method)
    slots = []
    for leaf, value in zip(tree.leaves, tree.values, strict=True):
        if leaf.size == 0:
            continue
        grad = hand.grads.get(leaf.path)
        dtype = grad.dtype if grad is not None and grad.dtype.kind == "f" else leaf.dtype
        jax_grad = None if oracle.grads is None else oracle.grads.get(leaf.path)
        slot = engine.Slot(
            leaf.layer,
            leaf.path,
            sides.names.kind,
            leaf.shape,
            leaf.start,
            np.maximum(1.0, np.abs(value.astype(np.float64))).ravel() * factor,
            dtype,
            hand=grad,
            jax=jax_grad if jax_grad is None or np.all(np.isfinite(jax_grad)) else None,
            error=sides.probe.error or hand.error,
        )
        if jax_grad is not None and slot.jax is None:
            slot.notes.append("JAX's gradient has NaN or Inf entries here: not used")
        slots.append(slot)
    return slots


def run_slots(
    loss_fn: Callable[[Any], Any], sides: Sides, slots: list[engine.Slot], plan: engine.Plan
) -> dict[str, ParamResult]:
    """The engine over every slot. Slots whose stencils met a non-finite loss are checked again
    entry by entry (Richardson instead of a complex step): once to find the entries whose
    stencils meet one, then with those entries avoided, so that they come out inconclusive and
    every other entry is compared as usual."""
    theta = sides.tree.theta
    first = UserObjective(loss_fn, sides.tree, sides.probe)
    results = {r.path: r for r in engine.run(slots, first, theta, plan)}
    hit = first.bad_leaves()
    again = [s for s in slots if s.path in hit and s.error is None and s.hand is not None]
    if not again:
        return results
    method = Method.RICHARDSON if plan.method is Method.COMPLEX_STEP else plan.method
    fallback = engine.Plan(method, Mode.FULL, plan.tolerance, plan.seed, False, plan.jax_note)
    finder = UserObjective(loss_fn, sides.tree, sides.probe)
    engine.run(again, finder, theta, fallback)
    avoiding = UserObjective(loss_fn, sides.tree, sides.probe, avoid=finder.bad_coords)
    for r in engine.run(again, avoiding, theta, fallback):
        r.explanation += (
            f"; {sides.names.loss} raised or was not finite near some entries: their finite differences "
            "are inconclusive, the other entries were compared"
        )
        results[r.path] = r
    sides.probe.nonfinite_points = first.bad_points + finder.bad_points
    sides.probe.notes.append(
        f"{sides.names.loss} raised or was not finite at finite-difference points near {len(finder.bad_coords)} "
        f"entries of {sorted(hit)}: those entries are inconclusive for finite differences"
    )
    return results


def check_function(
    loss_fn: Callable[[Any], Any],
    grad_fn: Callable[[Any], Any],
    tree: Tree,
    *,
    jax_loss_fn: Callable[[Any], Any] | None,
    method: Method,
    mode: Mode,
    tolerance: Tolerance,
    seed: int,
    names: Names,
) -> Report:
    sides = gather(loss_fn, grad_fn, tree, jax_loss_fn, method, names)
    jax_note = "" if sides.oracle.grads is not None else sides.oracle.reason
    plan = engine.Plan(method, mode, tolerance, seed, method is Method.COMPLEX_STEP, jax_note)
    slots = slots_of(sides, method)
    results = run_slots(loss_fn, sides, slots, plan) if slots else {}
    for slot in slots:
        settle_kink_disagreement(results[slot.path], slot, loss_fn, sides, plan)
        _annotate(results[slot.path], slot, sides)
    params = [results.get(leaf.path) or _empty_result(leaf.path, leaf.layer, names.kind) for leaf in tree.leaves]
    repeat = [_check_repeat(r, sides, tolerance) for r in params]
    for r in params:
        _check_mutation(r, sides)
    layers = [LayerResult(name, [r for r in params if r.layer == name]) for name in tree.layers]
    return Report(layers, _meta(sides, method, mode, tolerance, seed, repeat), _notes(sides, repeat))


def settle_kink_disagreement(
    r: ParamResult, slot: engine.Slot, loss_fn: Callable[[Any], Any], sides: Sides, plan: engine.Plan
) -> None:
    """At a kink the derivative is undefined and every one-sided choice is defensible (JAX's
    maximum gives 1/2 to each side at a tie, a hand-written ReLU mask usually 0). When the
    hand-written gradient differs from JAX only at entries whose finite-difference stencils
    find a kink, and finite differences do not fault it elsewhere, the array is inconclusive."""
    rj, rf = r.comparison(HAND, JAX), r.comparison(HAND, FD)
    if r.verdict is not Verdict.FAIL or rj is None or rj.status is not Status.DISAGREE or slot.jax is None:
        return
    if slot.hand is None or (rf is not None and rf.status is Status.DISAGREE):
        return
    hand, jax = np.asarray(slot.hand, np.float64).ravel(), np.asarray(slot.jax, np.float64).ravel()
    tol = plan.tolerance.bounds(jax, np.zeros_like(jax), float(np.max(np.abs(jax), initial=0.0)), slot.dtype)
    differ = np.flatnonzero(~(np.abs(hand - jax) <= tol))
    method = Method.RICHARDSON if plan.method in (Method.AUTO, Method.COMPLEX_STEP) else plan.method
    est = estimate(
        UserObjective(loss_fn, sides.tree, sides.probe),
        sides.tree.theta,
        Items(entries=slot.start + differ),
        slot.magnitude[differ],
        method=method,
        supports_complex=False,
    )
    if len(differ) and np.all(est.kink | ~np.isfinite(est.value)):
        r.verdict, r.blame = Verdict.INCONCLUSIVE, Blame.NONE
        r.explanation = (
            f"the hand-written gradient differs from JAX only at {len(differ)} entries where the loss has a kink "
            "(finite differences find one in every stencil there): both are one-sided choices, nothing to decide"
        )
        r.next_step = ""


def _empty_result(path: str, layer: str, kind: str) -> ParamResult:
    return ParamResult(path, layer, kind, [0], Verdict.NOT_EXERCISED, explanation="an empty array: nothing to check")


def _annotate(r: ParamResult, slot: engine.Slot, sides: Sides) -> None:
    if r.verdict is Verdict.ERROR:
        r.explanation = f"no comparison was possible: {r.error}"
        r.next_step = f"{r.path}: fix the user code first: {r.error}"
    for note in slot.notes:
        for c in r.comparisons:
            if "jax" in (c.a, c.b) and c.status is Status.UNAVAILABLE:
                c.note = note
    if r.verdict is Verdict.FAIL and r.blame is Blame.HAND_WRITTEN and slot.hand is not None:
        hint = mistake_hint(np.asarray(slot.hand, np.float64), slot.jax, r)
        generic = f"{r.path} is wrong in the backward of {r.layer};"
        what = f"{sides.names.grad} is wrong for {r.path};"
        r.next_step = f"{r.next_step.replace(generic, what)} {hint}".strip()


def mistake_hint(hand: Array, oracle: Array | None, r: ParamResult) -> str:
    """The likely mistake, when the hand-written gradient is a simple function of the right one."""
    entrywise = next((c for c in r.comparisons if c.kind == "entrywise" and c.status is Status.DISAGREE), None)
    if oracle is not None and np.all(np.isfinite(hand)):
        o = np.asarray(oracle, np.float64)
        norm = float(np.vdot(o, o))
        c = float(np.vdot(hand, o)) / norm if norm > 0 else 0.0
        if norm > 0 and np.linalg.norm(hand - c * o) <= 1e-6 * np.linalg.norm(o) * max(1.0, abs(c)):
            if abs(c + 1) < 1e-6:
                return "Maybe the sign is flipped: every entry is minus the expected value."
            return (
                f"Every entry is {c:.6g} times the expected value: maybe a constant factor is missing or extra "
                "(a 1/batch mean, a 2 from a square, a scale)."
            )
        if o.ndim == 2 and o.shape[0] == o.shape[1] and np.allclose(hand, o.T, rtol=1e-6, atol=0.0):
            return "Maybe it is transposed: it equals the transpose of the expected gradient."
    if entrywise is not None and entrywise.n_disagree == 1 and entrywise.n > 1:
        return f"Only entry {tuple(entrywise.worst_index or [])} is wrong: look for an indexing slip."
    return ""


def _check_repeat(r: ParamResult, sides: Sides, tolerance: Tolerance) -> float:
    """Compare grad_fn's two answers; beyond the tolerance the parameter fails. Returns the
    largest difference (0.0 when identical, inf when the second call raised)."""
    hand = sides.hand
    first = hand.grads.get(r.path)
    if first is None or r.verdict is Verdict.ERROR:
        return 0.0
    second = hand.repeat.get(r.path)
    if second is not None and np.array_equal(first, second, equal_nan=True):
        return 0.0
    a = np.asarray(first, np.float64).ravel()
    b = np.full_like(a, np.nan) if second is None else np.asarray(second, np.float64).ravel()
    ref = np.where(np.isfinite(a), np.abs(a), 0.0)
    tol = tolerance.bounds(a, np.zeros_like(a), ref.max(initial=0.0), first.dtype)
    comp = compare("hand-written (2nd call)", "hand-written", "entrywise", b, a, tol, shape=tuple(r.shape))
    if hand.repeat_error is not None:
        comp.note = hand.repeat_error
    diff = float(np.max(np.abs(a - b), initial=0.0)) if second is not None else float("inf")
    if comp.status is not Status.DISAGREE:
        return diff  # round-off level: a note, not a failure
    r.comparisons.append(comp)
    where = f"entry {tuple(comp.worst_index or [])}: {comp.worst_b:.9g} then {comp.worst_a:.9g}"
    r.explanation = (
        f"{sides.names.grad} is nondeterministic: two calls on the same {sides.names.where} differ by up to "
        f"{diff:.3g} (tolerance {comp.worst_tol:.2e}); " + r.explanation
    )
    if r.verdict is not Verdict.FAIL:
        r.verdict, r.blame = Verdict.FAIL, Blame.HAND_WRITTEN
    r.next_step = (
        f"{r.path}: two calls of {sides.names.grad} on the same {sides.names.where} disagree (worst at {where}); "
        "look for random state, an accumulator kept between calls (a buffer not reset), or np.empty read before "
        "it is written."
    )
    return diff


def _check_mutation(r: ParamResult, sides: Sides) -> None:
    change = sides.hand.mutated.get(r.path)
    if change is None:
        return
    before, after = change
    comp = compare(
        f"{sides.names.where} before",
        f"{sides.names.where} after",
        "entrywise",
        after,
        before,
        np.zeros_like(before),
        shape=tuple(r.shape),
    )
    r.comparisons.append(comp)
    r.explanation = f"{sides.names.grad} modified its input in place; " + r.explanation
    if r.verdict is not Verdict.ERROR:
        r.verdict = Verdict.FAIL
        r.blame = Blame.USER_CODE if r.blame is Blame.NONE else r.blame
    r.next_step = (
        f"{r.path}: {sides.names.grad} wrote to its input ({comp.n_disagree} entries changed, e.g. entry "
        f"{tuple(comp.worst_index or [])}: {comp.worst_b:.9g} -> {comp.worst_a:.9g}); a gradient must not modify "
        "params: write W = W - step rather than W -= step, or copy first. " + r.next_step
    ).strip()


def _meta(
    sides: Sides, method: Method, mode: Mode, tolerance: Tolerance, seed: int, repeat: list[float]
) -> dict[str, Any]:
    dtypes = sorted({str(leaf.dtype) for leaf in sides.tree.leaves})
    probe = sides.probe
    return {
        "kind": "vjp" if sides.names.kind == "input" else "function",
        "dtype": ", ".join(dtypes),
        "gradient_dtype": ", ".join(sorted({str(d) for d in _gradient_dtypes(sides)})),
        "method": method.value,
        "mode": mode.value,
        "seed": seed,
        "tolerance": tolerance.describe(max(_gradient_dtypes(sides), key=lambda d: float(np.finfo(d).eps))),
        "jax": {"used": sides.oracle.grads is not None, "reason": sides.oracle.reason},
        "layers": list(sides.tree.layers),
        "finite_differences": {
            "evaluated_in": sorted({str(d) for d in probe.dtypes}),
            "loss_precision": str(probe.precision),
            "step_factor": probe.step_factor(method),
            "nonfinite_points": probe.nonfinite_points,
        },
        "repeat": {"deterministic": not any(repeat), "max_abs_diff": max(repeat, default=0.0)},
        "mutated": sorted(sides.hand.mutated),
        "python": platform.python_version(),
    }


def _gradient_dtypes(sides: Sides) -> list[np.dtype]:
    """The dtype each array is judged in: its hand-written gradient's, else its parameter's."""
    grads = sides.hand.grads
    return [
        grads[leaf.path].dtype if leaf.path in grads and grads[leaf.path].dtype.kind == "f" else leaf.dtype
        for leaf in sides.tree.leaves
    ]


def _notes(sides: Sides, repeat: list[float]) -> list[str]:
    notes = [] if sides.oracle.grads is not None else [f"JAX not used: {sides.oracle.reason}"]
    lower = sorted(
        {
            f"{d} for {leaf.dtype}"
            for leaf, d in zip(sides.tree.leaves, _gradient_dtypes(sides), strict=True)
            if np.finfo(d).eps > np.finfo(leaf.dtype).eps
        }
    )
    if lower:
        notes.append(
            f"{sides.names.grad} returns gradients in lower precision than its {sides.names.where} "
            f"({', '.join(lower)}; JAX without x64 computes in float32): judged with that dtype's tolerance"
        )
    notes += sides.probe.notes
    if any(repeat):
        notes.append(
            f"{sides.names.grad} gave different answers on two calls with the same {sides.names.where} "
            f"(largest difference {max(repeat):.3g}); differences beyond the tolerance fail the parameter"
        )
    if sides.hand.mutated:
        notes.append(f"{sides.names.grad} modified {sides.names.where} in place: {sorted(sides.hand.mutated)}")
    if sides.oracle.grads is not None and sides.oracle.value is not None and np.isfinite(sides.probe.value):
        gap = abs(sides.oracle.value - sides.probe.value)
        if gap > 1e-8 * max(1.0, abs(sides.probe.value)):
            notes.append(
                f"the JAX model's loss ({sides.oracle.value:.12g}) differs from {sides.names.loss} "
                f"({sides.probe.value:.12g}): they are not the same function"
            )
    return notes


# --- check_vjp: a vector-Jacobian product as the gradient of <cotangent, fn(inputs)> ----------


def input_names(inputs: Sequence[Any], names: Sequence[str] | None) -> list[str]:
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise InvalidArgument(
            f"inputs: expected a non-empty tuple of arrays, one per argument of fn, found {type(inputs).__name__}; "
            "wrap a single input as (x,)"
        )
    if names is None:
        return [f"input{i}" for i in range(len(inputs))]
    labels = list(names) if isinstance(names, (tuple, list)) else []
    if (
        len(labels) != len(inputs)
        or len(set(labels)) != len(labels)
        or not all(isinstance(n, str) and n for n in labels)
    ):
        raise InvalidArgument(
            f"names={names!r}: expected {len(inputs)} distinct non-empty strings, one per input, in the order of inputs"
        )
    return labels


def draw_cotangent(fn: Callable[..., Any], tree: Tree, labels: list[str], seed: int) -> tuple[Array, Exception | None]:
    """A random cotangent shaped like fn(*inputs), from the harness's own stream (a child of
    it, so that it is not the stream the finite-difference directions come from)."""
    p = tree.copy()
    try:
        y = np.asarray(fn(*[p[n] for n in labels]))
    except Exception as exc:  # user code: an error verdict, never a crash
        return np.zeros(()), exc
    if y.dtype.kind != "f":
        raise InvalidArgument(
            f"fn(*inputs) returned {y.dtype} values of shape {y.shape}; expected one float array (a function with "
            "several outputs: check each output, or concatenate them)"
        )
    rng = engine.harness_rng(seed).spawn(1)[0]
    return rng.standard_normal(y.shape).astype(y.dtype), None


def per_input(out: Any, labels: list[str]) -> dict[str, Any]:
    if not isinstance(out, (tuple, list)) or len(out) != len(labels):
        found = f"{len(out)} gradients" if isinstance(out, (tuple, list)) else type(out).__name__
        raise InvalidArgument(
            f"vjp_fn(cotangent, *inputs) returned {found}; expected a tuple of {len(labels)}, one gradient per "
            f"input ({', '.join(labels)}), in the order of inputs"
        )
    return dict(zip(labels, out, strict=True))
