"""The numerical oracle: derivatives of a scalar function along directions, each with an error bar.

The function is seen as f(theta) with theta a flat float64 vector of n entries. It is called on
a stack of points, `objective(points (m, n)) -> Evaluation`, so that many perturbed copies are
evaluated in one vectorized call. An item is one derivative to estimate: along a basis vector
(an entry of theta) or along a dense unit direction restricted to a slice of theta.

Methods. Every stencil evaluates f at theta + k h v for k in (+-1, +-2, +-4) (6 evaluations per
item), with h a power of two times max(1, |theta_i|), so that theta_i + k h is exact for an
entry. D(h) = (f(+h) - f(-h)) / 2h.

- central: h ~ eps^(1/3); the value is D(h), its truncation bar |D(h) - D(2h)|.
- richardson: h ~ eps^(1/5); R(h) = (4 D(h) - D(2h)) / 3 (error O(h^4)), extrapolated once more
  from the same points, (16 R(h) - R(2h)) / 15 (error O(h^6)); truncation bar |R(h) - R(2h)|,
  which is the error of R(h) and also bounds the value's error under an O(h) law.
- complex-step: V(h) = Im f(theta + i h v) / h at h = 1e-20 and 2h, extrapolated: no
  subtraction, 2 evaluations per item, exact to a few ulps, but only for a function analytic in
  theta (the reference is).
- auto: complex-step where the function accepts complex input, otherwise richardson.

The truncation bars are |E(h) - E(2h)| without the 1/3 (central) or 1/15 (richardson) factor of
the smooth error law: the bar then also covers an O(h) law, which is what a jump of f'' inside
the stencil (elu, huber) produces. Round-off: the noise of f is measured. Per item, the unit
combination of the 7 stencil values that annihilates every polynomial of degree <= 5 leaves one
sample of it (a kink in the stencil inflates that sample, so it only counts for an item known to
be smooth); the level shared by a call is the median of those samples over the items whose
points all share the centre's signature or, without a signature, the RMS of 4 such combinations
on a probe of 7 points at 1/1024 of the step along a mix of the items. Never less than 16 ulps
of max|f|. A formula with weights c (per unit h) then gets the bar 3 ||c|| noise / h.

Complex step on a black box. A function can accept complex input without being analytic
(np.abs, .real, np.maximum, a cast to float): the imaginary part is then silently wrong. So
`auto` cross-checks: the complex-step values, combined with random weights c, must match a
real-arithmetic Richardson derivative along the same combination sum_j c_j v_j, within both
error bars. A function that raises, warns about discarding an imaginary part (ComplexWarning),
returns real values, or fails the cross-check falls back to Richardson (method="complex-step"
raises InvalidArgument instead). The cross-check costs one Richardson stencil per call, whatever
the number of items. With a signature, an item that moves a unit sitting exactly on a kink
(signature 0 at theta) would get the derivative of whichever branch the code picks there; a
probe at +-h finds those items and sends them to the stencils.

Kinks. When the objective reports a sign signature (the signs of the pre-activations of kinked
units), every stencil point is placed on its smooth piece:
- all points on the centre's piece: the smooth formula;
- only +-4h crossed: the formula that does not use +-4h (R(h) or D(h), bar |D(h) - D(2h)|);
- one side stays on the centre's piece: the one-sided difference (-3 f0 + 4 f(h) - f(2h)) / 2h
  from that side, bar from the same at 2h;
- the centre sits exactly on a kink that the item moves (signature 0 there): the derivative
  exists only if both one-sided differences agree; they are averaged if they do.
Without a signature, a kink shows as a fourth difference f(2h) - 4 f(h) + 6 f0 - ... that does
not shrink like h^4 between the steps h and 2h (it is fwd - bwd, the split of the one-sided
differences), or as R(h) - R(2h) not being O(h^2) smaller than D(h) - D(2h) (each test has blind
spots, at different kink positions); the noise these tests allow comes from the probe, which no
kink but one at theta itself can reach. At the last stage, two one-sided differences that agree
are averaged (f'' jumps, f' does not), else a side is kept if it is self-consistent across two
step sizes while the other is not. An item that no rule resolves at the richardson step is
retried at the central step (a kink further than 8 eps^(1/3) away is then outside the stencil);
if that fails too, the item is a `kink` and the caller turns it into `inconclusive`. A stencil
point where f is not finite leaves its item unresolved the same way.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from verifier.errors import InvalidArgument, parse_enum

Array = np.ndarray
EPS = float(np.finfo(np.float64).eps)
ROUNDOFF_FACTOR = 64.0  # complex step: a few dozen ulps of the derivative (and of f0 / scale)
NOISE_ULPS = 16.0  # the smallest noise assumed for f: 16 ulps of max |f| on the stencil
NOISE_SIGMAS = 3.0  # a round-off bar is this many standard deviations of the noise
COMPLEX_STEP = 1e-20
# For a function known to be analytic, one step small enough that the h^2 f^(3) term of
# Im f(theta + i h v) / h lies below the smallest normal number: no second step is needed.
TINY_COMPLEX_STEP = 2.0**-520  # ~3e-157; h^2 ~ 1e-313
POINT_BUDGET = 2**24  # floats of theta-sized points passed to the objective in one call
OFFSETS = (1, -1, 2, -2, 4, -4)
CROSS_CHECK_SAFETY = 10.0  # complex step vs richardson along a random combination
AGREE_FACTOR = 2.0  # two one-sided derivatives agree within this many times their bars
SMOOTH_RATE = 4.0  # |Delta4(h)| may be up to SMOOTH_RATE / 16 of |Delta4(2h)| for smooth f
SELF_CONSISTENT = 0.1  # a side is self-consistent when its h/2h change is < 10% of the split
ORDER_RATIO = 0.1  # smooth f: |R(h) - R(2h)| / |D(h) - D(2h)| ~ 5 h^2 f^(5) / f''', far below this


class Method(str, Enum):
    AUTO = "auto"
    CENTRAL = "central"
    RICHARDSON = "richardson"
    COMPLEX_STEP = "complex-step"


class Mode(str, Enum):
    AUTO = "auto"
    FULL = "full"
    DIRECTIONAL = "directional"
    SAMPLED = "sampled"


@dataclass
class Evaluation:
    """What the objective returns for a stack of m points: losses (m,) and optionally the sign
    signature (m, s) of the kinked units' pre-activations (+1, -1, or 0 exactly at the kink)."""

    losses: Array
    signature: Array | None = None


Objective = Callable[[Array], Evaluation]


@dataclass
class Items:
    """Derivatives to estimate. Either basis vectors (`entries`: flat indices into theta) or
    dense unit directions living on theta[start : start + size] (`directions`: (m, size))."""

    entries: Array | None = None
    start: int = 0
    directions: Array | None = None

    def __len__(self) -> int:
        if self.entries is not None:
            return len(self.entries)
        assert self.directions is not None
        return len(self.directions)

    def chunks(self, size: int) -> Iterator[tuple[slice, Items]]:
        for lo in range(0, len(self), size):
            sl = slice(lo, min(lo + size, len(self)))
            yield sl, self.subset(sl)

    def subset(self, which: slice | Array) -> Items:
        if isinstance(which, slice) and which.indices(len(self))[:2] == (0, len(self)) and which.step in (None, 1):
            return self  # all of it: no copy
        if not isinstance(which, slice) and which.dtype != bool and np.array_equal(which, np.arange(len(self))):
            return self
        if self.entries is not None:
            return Items(entries=self.entries[which])
        assert self.directions is not None
        return Items(start=self.start, directions=self.directions[which])

    def combine(self, weights: Array, n: int) -> Items:
        """The single direction sum_j weights[j] * item_j (not normalized)."""
        if self.entries is not None:
            return Items(start=0, directions=self.vector(weights, n)[None, :])
        assert self.directions is not None
        return Items(start=self.start, directions=(weights @ self.directions)[None, :])

    def vector(self, weights: Array, n: int) -> Array:
        """sum_j weights[j] * item_j as a dense vector of R^n."""
        dense = np.zeros(n)
        if self.entries is not None:
            np.add.at(dense, self.entries, weights)
        else:
            assert self.directions is not None
            dense[self.start : self.start + self.directions.shape[1]] = weights @ self.directions
        return dense

    def displace(self, theta: Array, steps: Array) -> Array:
        """Points theta + steps[j] * item_j, shape (m, n); steps may be complex."""
        if self.entries is not None:
            points = np.repeat(theta[None, :].astype(steps.dtype), len(self), axis=0)
            points[np.arange(len(self)), self.entries] += steps
            return points
        assert self.directions is not None
        width = self.directions.shape[1]
        if self.start == 0 and width == theta.size:  # dense directions over all of theta: two passes
            points = self.directions * steps[:, None]
            points += theta
            return points
        points = np.repeat(theta[None, :].astype(steps.dtype), len(self), axis=0)
        points[:, self.start : self.start + width] += steps[:, None] * self.directions
        return points


@dataclass
class Estimate:
    """Per item: the derivative, its absolute error bar, whether a kink made it unusable, and
    the method that produced it ("complex-step", "richardson", "central", "one-sided").

    `evaluations` counts every point the call evaluated (shared ones included); `cost` (m,)
    the evaluations spent on each item alone; `notes` says why a method was abandoned."""

    value: Array
    error: Array
    kink: Array
    method: list[str]
    evaluations: int
    cost: Array | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, m: int) -> Estimate:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m, bool), [""] * m, 0, np.zeros(m, np.int64))

    def take(self, which: slice) -> Estimate:
        """The items `which`; `evaluations` becomes their own cost."""
        cost = None if self.cost is None else self.cost[which]
        evaluations = self.evaluations if cost is None else int(cost.sum())
        return Estimate(
            self.value[which], self.error[which], self.kink[which], self.method[which], evaluations, cost, self.notes
        )

    def _put(self, where: Array, part: Estimate) -> None:
        self.value[where] = part.value
        self.error[where] = part.error
        self.kink[where] = part.kink
        for j, name in zip(np.flatnonzero(where) if where.dtype == bool else where, part.method, strict=True):
            self.method[j] = name


def estimate(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    *,
    method: Method | str,
    supports_complex: bool,
    analytic: bool = False,
    chunk: int = 512,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Derivatives of f along every item, with error bars. `scale` (one per item) sets the step:
    the magnitude of the coordinate being moved, at least 1. `analytic`: the function is known
    to be analytic in theta off its kinks (the reference is written so, and tested), so the
    complex step needs no richardson cross-check. `rng` draws the cross-check's
    weights (default: a fixed stream of the harness's own). Items go to the objective `chunk` at
    a time (fewer when theta is so long that a stencil's points would pass POINT_BUDGET floats),
    all the points of a stencil in one call."""
    method = parse_enum(Method, method, "method")
    chunk = max(1, min(chunk, POINT_BUDGET // (len(OFFSETS) * max(theta.size, 1))))
    if method is Method.COMPLEX_STEP and not supports_complex:
        raise InvalidArgument(
            "method='complex-step': the function does not accept complex input; "
            "use method='richardson' or 'central' (or 'auto', which picks one)"
        )
    m = len(items)
    out = Estimate.empty(m)
    if m == 0:
        return out
    assert out.cost is not None
    rng = np.random.default_rng([0x5EED, 0xFD]) if rng is None else rng
    scale = np.maximum(1.0, np.asarray(scale, dtype=np.float64))
    center = objective(theta[None, :])
    out.evaluations = 1
    f0 = float(np.real(center.losses[0]))
    sig0 = None if center.signature is None else np.asarray(center.signature[0])
    if not math.isfinite(f0):
        out.kink[:] = True
        out.method = ["non-finite"] * m
        out.notes.append(f"f(theta) = {f0}: no derivative can be estimated")
        return out

    todo = np.ones(m, bool)  # items still without an estimate
    shared = 1  # evaluations no single item owns: the centre, the cross-check, noise probes
    if method in (Method.AUTO, Method.COMPLEX_STEP) and supports_complex:
        todo, spent = _try_complex_step(objective, theta, items, scale, f0, sig0, method, chunk, rng, out, analytic)
        shared += spent

    idx = np.flatnonzero(todo)
    stages = ("central",) if method is Method.CENTRAL else ("richardson", "central")
    for lo in range(0, idx.size, chunk):
        part_idx = idx[lo : lo + chunk]
        part = _staged_stencil(objective, theta, items.subset(part_idx), scale[part_idx], f0, sig0, stages)
        out._put(part_idx, part)
        assert part.cost is not None
        out.cost[part_idx] += part.cost
        shared += part.evaluations - int(part.cost.sum())
    out.evaluations = shared + int(out.cost.sum())
    return out


def _step(scale: Array, kind: str) -> Array:
    """A power of two near eps^(1/5) * scale (richardson) or eps^(1/3) * scale (central): then
    theta_i + k h is exact for |theta_i| <= scale (short of a binade crossing)."""
    base = EPS ** (1 / 5) if kind == "richardson" else EPS ** (1 / 3)
    return np.exp2(np.round(np.log2(base * scale)))


# --- complex step -------------------------------------------------------------------------------


def _try_complex_step(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    f0: float,
    sig0: Array | None,
    method: Method,
    chunk: int,
    rng: np.random.Generator,
    out: Estimate,
    analytic: bool = False,
) -> tuple[Array, int]:
    """Fill `out` with complex-step values where they can be trusted. Returns the items still
    to do (moving a unit that sits exactly on a kink, or all of them when the complex step is
    abandoned) and the evaluations shared by all items (the cross-check)."""
    assert out.cost is not None
    m = len(items)
    todo = np.ones(m, bool)
    usable = np.ones(m, bool)
    if sig0 is not None and np.any(sig0 == 0):
        # the complex step would give the derivative of the branch the code picks at the kink
        touching = _touching_kinks(objective, theta, items, scale, sig0, chunk)
        out.cost += 2
        usable = ~touching
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        return todo, 0
    sub = items.subset(idx)
    if analytic:
        values, errors, reason = _single_complex_step(objective, theta, sub, scale[idx], f0, chunk)
        out.cost[idx] += 1
    else:
        values, errors, reason = _complex_values(objective, theta, sub, scale[idx], f0, chunk)
        out.cost[idx] += 2
    shared = 0
    finite = np.isfinite(values) & np.isfinite(errors)
    if reason is None and not analytic:
        decided, reason, shared = _cross_check(
            objective, theta, sub.subset(finite), scale[idx][finite], values[finite], errors[finite], f0, sig0, rng
        )
        if not decided and method is Method.COMPLEX_STEP:  # asked for: kept, with the caveat
            out.notes.append(f"complex step not cross-checked: {reason}")
            reason = None
    if reason is not None:
        if method is Method.COMPLEX_STEP:
            raise InvalidArgument(
                f"method='complex-step': {reason}; use method='auto' (which falls back to richardson) "
                "or method='richardson'"
            )
        out.notes.append(f"complex step abandoned for richardson: {reason}")
        return todo, shared
    keep = idx[finite]
    out.value[keep], out.error[keep] = values[finite], errors[finite]
    for j in keep:
        out.method[j] = "complex-step"
    todo[keep] = False
    return todo, shared


def _complex_values(
    objective: Objective, theta: Array, items: Items, scale: Array, f0: float, chunk: int
) -> tuple[Array, Array, str | None]:
    """Per item the complex-step derivative and its error bar, or the reason the function does
    not take complex input. V(h) = Im f(theta + i h v) / h has error -f'''(theta) h^2 / 6, so
    (4 V(h) - V(2h)) / 3 removes it and |V(h) - V(2h)| bounds what is left. That bound matters
    only where the derivative is tiny next to h^2 f''' (a gradient of 1e-40 when every value is
    near zero); there it keeps an exact 0 from failing against 1e-41."""
    h = COMPLEX_STEP * scale
    v1, v2 = np.empty(len(items)), np.empty(len(items))
    for sl, part in items.chunks(chunk):
        k = len(part)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", np.exceptions.ComplexWarning)
                points = np.concatenate([part.displace(theta, 1j * h[sl]), part.displace(theta, 2j * h[sl])])
                losses = np.asarray(objective(points).losses)
        except Exception as exc:
            return v1, v2, f"the function raised {type(exc).__name__}: {exc} on complex input"
        if not np.iscomplexobj(losses):
            return v1, v2, "the function returned real values for complex input (the imaginary part was dropped)"
        v1[sl], v2[sl] = np.imag(losses[:k]) / h[sl], np.imag(losses[k:]) / (2 * h[sl])
    value = (4 * v1 - v2) / 3
    error = np.abs(v1 - v2) + ROUNDOFF_FACTOR * EPS * (np.abs(value) + abs(f0) / scale)
    return value, error, None


def _single_complex_step(
    objective: Objective, theta: Array, items: Items, scale: Array, f0: float, chunk: int
) -> tuple[Array, Array, str | None]:
    """Im f(theta + i h v) / h at h = TINY_COMPLEX_STEP, not scaled: the step's own error,
    h^2 f^(3) / 6, is below the smallest normal number for any third derivative up to about 1e5.
    Round-off: a few dozen eps of the value and of the loss per unit step."""
    values = np.empty(len(items))
    for sl, part in items.chunks(chunk):
        steps = np.full(len(part), 1j * TINY_COMPLEX_STEP)
        losses = np.asarray(objective(part.displace(theta, steps)).losses)
        if not np.iscomplexobj(losses):
            return values, values, "the function returned real values for complex input"
        values[sl] = np.imag(losses) / TINY_COMPLEX_STEP
    errors = ROUNDOFF_FACTOR * EPS * (np.abs(values) + abs(f0) / scale) + np.finfo(np.float64).tiny
    return values, errors, None


def _cross_check(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    values: Array,
    errors: Array,
    f0: float,
    sig0: Array | None,
    rng: np.random.Generator,
) -> tuple[bool, str | None, int]:
    """Do the complex-step values, combined with random weights c, match a richardson
    derivative along sum_j c_j item_j? Returns whether the check could decide, why it failed
    (None when it passed), and the evaluations spent."""
    spent = 0
    if len(items) == 0:
        return True, None, spent
    for _ in range(2):
        c = rng.standard_normal(len(items))
        c /= np.linalg.norm(c)
        combined = items.combine(c, theta.size)
        s = np.array([math.sqrt(float(np.sum(c**2 * scale**2)))])
        ref = _staged_stencil(objective, theta, combined, s, f0, sig0, ("richardson", "central"))
        spent += ref.evaluations
        if ref.kink[0]:
            continue
        expected, bar = float(c @ values), float(np.abs(c) @ errors)
        if abs(ref.value[0] - expected) <= CROSS_CHECK_SAFETY * (ref.error[0] + bar):
            return True, None, spent
        return (
            True,
            f"along a random combination of the items the complex step gives {expected:.9g}, richardson "
            f"{ref.value[0]:.9g} +- {ref.error[0]:.1e}: the function is not analytic "
            "(abs, .real, maximum, a cast to float?)",
            spent,
        )
    return False, "the richardson cross-check met a kink along two random combinations", spent


def _touching_kinks(objective: Objective, theta: Array, items: Items, scale: Array, sig0: Array, chunk: int) -> Array:
    """Per item: does it move a unit that sits exactly on a kink (signature 0 at the centre)?"""
    zero = sig0 == 0
    h = _step(scale, "central")
    touching = np.zeros(len(items), bool)
    for sl, part in items.chunks(chunk):
        k = len(part)
        ev = objective(np.concatenate([part.displace(theta, h[sl]), part.displace(theta, -h[sl])]))
        if ev.signature is None:
            touching[sl] = True
            continue
        moved = np.asarray(ev.signature)[:, zero] != 0
        touching[sl] = np.any(moved[:k], axis=1) | np.any(moved[k:], axis=1)
    return touching


# --- real stencils --------------------------------------------------------------------------------


def _null_basis(degree: int) -> Array:
    """Orthonormal weights on the offsets (-4, -2, -1, 0, 1, 2, 4) that annihilate every
    polynomial of degree <= `degree`, shape (6 - degree, 7): applied to f, each leaves noise of
    the noise's standard deviation and a truncation of order h^(degree + 1)."""
    x = np.array([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    v = np.vander(x, degree + 1, increasing=True).T
    return np.linalg.svd(v)[2][degree + 1 :]


NULL_WEIGHTS = _null_basis(5)[0]  # one combination, truncation O(h^6): the stencil's own noise sample
NULL_PROBE = _null_basis(2)  # four combinations, truncation O(delta^3): the noise probe at a tiny step
PROBE_RATIO = 1024.0  # the probe's step is the stencil's / 1024
# ||coefficients|| (per 1/h) of D(h), R(h), (16 R(h) - R(2h)) / 15 and the one-sided difference
NORM_CENTRAL = math.sqrt(0.5)
NORM_RICHARDSON = math.sqrt(2 * (2 / 3) ** 2 + 2 * (1 / 12) ** 2)
NORM_RICHARDSON2 = math.sqrt(2 * ((32 / 45) ** 2 + (5 / 45) ** 2 + (1 / 360) ** 2))
NORM_ONE_SIDED = math.sqrt(9 + 16 + 1) / 2
NORM_R_DIFF = math.sqrt(2 * (4 + 1.25**2 + 1 / 64)) / 3  # R(h) - R(2h)


def _staged_stencil(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    f0: float,
    sig0: Array | None,
    stages: tuple[str, ...],
) -> Estimate:
    """The stencil at each stage's step in turn, for the items the previous stage left unresolved
    (a kink it could not place); what the last stage leaves is a kink."""
    m = len(items)
    out = Estimate.empty(m)
    assert out.cost is not None
    unresolved = np.ones(m, bool)
    evaluations = 0
    for n, kind in enumerate(stages):
        idx = np.flatnonzero(unresolved)
        if idx.size == 0:
            break
        part = _stencil(objective, theta, items.subset(idx), scale[idx], f0, sig0, kind, n == len(stages) - 1)
        out._put(idx, part)
        assert part.cost is not None
        out.cost[idx] += part.cost
        evaluations += part.evaluations
        unresolved[idx] = part.kink
    out.evaluations = evaluations
    return out


def _stencil(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    f0: float,
    sig0: Array | None,
    kind: str,
    final: bool,
) -> Estimate:
    """One stencil (+-h, +-2h, +-4h) per item, in one call: the smooth formula of `kind`
    (central or richardson) where every point lies on the centre's smooth piece, else a
    one-sided difference from a clean side, else a kink."""
    m = len(items)
    h = _step(scale, kind)
    points = [items.displace(theta, k * h) for k in OFFSETS]
    signed = sig0 is not None
    if not signed:  # a noise probe along a mix of the items, at a step too small to meet a kink
        signs = np.where(np.arange(m) % 2 == 0, 1.0, -1.0) / math.sqrt(m)
        mix = items.vector(signs * h / PROBE_RATIO, theta.size)
        points.append(theta[None, :] + np.array(OFFSETS, dtype=np.float64)[:, None] * mix[None, :])
    ev = objective(np.concatenate(points))
    raw = np.real(np.asarray(ev.losses)).astype(np.float64)
    losses = raw[: len(OFFSETS) * m].reshape(len(OFFSETS), m)
    f = {k: losses[i] for i, k in enumerate(OFFSETS)}
    finite = np.all(np.isfinite(losses), axis=0)

    d1, d2, d4 = ((f[k] - f[-k]) / (2 * k * h) for k in (1, 2, 4))
    r1, r2 = (4 * d1 - d2) / 3, (4 * d2 - d4) / 3
    rr = (16 * r1 - r2) / 15  # the second extrapolation: error O(h^6)
    fwd1, fwd2 = (-3 * f0 + 4 * f[1] - f[2]) / (2 * h), (-3 * f0 + 4 * f[2] - f[4]) / (4 * h)
    bwd1, bwd2 = (3 * f0 - 4 * f[-1] + f[-2]) / (2 * h), (3 * f0 - 4 * f[-2] + f[-4]) / (4 * h)

    # Noise of f. Each item's own sample is contaminated by a kink in its stencil, so it only
    # counts for an item known to be smooth; the pooled level comes from the items whose points
    # all share the centre's signature or, without a signature, from the probe.
    table = np.stack([f[-4], f[-2], f[-1], np.full(m, f0), f[1], f[2], f[4]])
    own = np.abs(NULL_WEIGHTS @ np.where(finite, table, 0.0))
    floor = NOISE_ULPS * EPS * np.max(np.abs(np.where(finite, table, 0.0)), axis=0)
    sig = None if not signed or ev.signature is None else np.asarray(ev.signature)[: len(OFFSETS) * m]
    if sig is not None:
        s = {k: blk for k, blk in zip(OFFSETS, sig.reshape(len(OFFSETS), m, -1), strict=True)}
        same = {k: np.all(s[k] == sig0, axis=1) for k in OFFSETS}
        clean = np.all([same[k] for k in OFFSETS], axis=0) & finite
        pooled = float(np.median(own[clean])) / 0.6745 if np.any(clean) else 0.0
    else:
        p = dict(zip(OFFSETS, raw[len(OFFSETS) * m :], strict=True))
        samples = NULL_PROBE @ np.array([p[-4], p[-2], p[-1], f0, p[1], p[2], p[4]])
        pooled = float(np.sqrt(np.mean(samples**2))) if np.all(np.isfinite(samples)) else 0.0
    noise = np.maximum(floor, pooled)

    def roundoff(norm: float, own_sample: Array | None = None) -> Array:
        n = noise if own_sample is None else np.maximum(noise, own_sample)
        return NOISE_SIGMAS * norm * n / h

    if kind == "richardson":
        smooth_value, smooth_error = rr, np.abs(r1 - r2) + roundoff(NORM_RICHARDSON2, own)
        inner_value, inner_norm = r1, NORM_RICHARDSON
    else:
        smooth_value, smooth_error = d1, np.abs(d1 - d2) + roundoff(NORM_CENTRAL, own)
        inner_value, inner_norm = d1, NORM_CENTRAL
    fwd_error = np.abs(fwd1 - fwd2) + roundoff(NORM_ONE_SIDED)
    bwd_error = np.abs(bwd1 - bwd2) + roundoff(NORM_ONE_SIDED)

    value, error = np.zeros(m), np.zeros(m)
    resolved = np.zeros(m, bool)
    methods = [kind] * m

    def use(mask: Array, v: Array, e: Array, name: str) -> None:
        mask = mask & ~resolved & finite
        value[mask], error[mask] = v[mask], e[mask]
        resolved[mask] = True
        for j in np.flatnonzero(mask):
            methods[j] = name

    if sig is not None:
        assert sig0 is not None
        zero = sig0 == 0
        moves_zero = np.zeros(m, bool)
        for k in OFFSETS:
            moves_zero |= np.any((s[k] != 0) & zero, axis=1)
        use(clean, smooth_value, smooth_error, kind)
        inner = same[1] & same[-1] & same[2] & same[-2]
        use(inner, inner_value, np.abs(d1 - d2) + roundoff(inner_norm), kind)
        use(same[1] & same[2] & same[4], fwd1, fwd_error, "one-sided")
        use(same[-1] & same[-2] & same[-4], bwd1, bwd_error, "one-sided")
        # the centre sits on a kink the item moves: the derivative exists if both sides agree
        on_piece = {k: np.all((s[k] == sig0) | zero, axis=1) for k in OFFSETS}
        side_f = on_piece[1] & np.all(s[1] == s[2], axis=1) & np.all(s[2] == s[4], axis=1)
        side_b = on_piece[-1] & np.all(s[-1] == s[-2], axis=1) & np.all(s[-2] == s[-4], axis=1)
        split = np.abs(fwd1 - bwd1)
        agree = moves_zero & side_f & side_b & (split <= AGREE_FACTOR * (fwd_error + bwd_error))
        use(agree, (fwd1 + bwd1) / 2, split / 2 + np.maximum(fwd_error, bwd_error), "one-sided")
    elif not signed:
        # without a signature a kink shows as a fourth difference that does not shrink like h^4
        d4_h = f[2] - 4 * f[1] + 6 * f0 - 4 * f[-1] + f[-2]
        d4_2h = f[4] - 4 * f[2] + 6 * f0 - 4 * f[-2] + f[-4]
        # and where it does, R(h) - R(2h) is not O(h^2) smaller than D(h) - D(2h)
        rates = np.abs(d4_h) <= SMOOTH_RATE / 16 * np.abs(d4_2h) + NOISE_SIGMAS * math.sqrt(70) * noise
        order = np.abs(r1 - r2) <= ORDER_RATIO * np.abs(d1 - d2) + roundoff(NORM_R_DIFF)
        smooth = rates & order
        use(smooth, smooth_value, smooth_error, kind)
        if final:
            # both one-sided differences agree (f'' jumps, f' does not): their mean; else the side
            # that is self-consistent across h and 2h while the other is not
            split = np.abs(fwd1 - bwd1)
            agree = split <= AGREE_FACTOR * (fwd_error + bwd_error)
            use(agree, (fwd1 + bwd1) / 2, split / 2 + np.maximum(fwd_error, bwd_error), "one-sided")
            f_ok = np.abs(fwd1 - fwd2) <= SELF_CONSISTENT * split
            b_ok = np.abs(bwd1 - bwd2) <= SELF_CONSISTENT * split
            use(f_ok & ~b_ok, fwd1, fwd_error, "one-sided")
            use(b_ok & ~f_ok, bwd1, bwd_error, "one-sided")

    kink = ~resolved
    for j in np.flatnonzero(kink):
        methods[j] = "kink" if finite[j] else "non-finite"
    # no usable value: keep the smooth formula's and, as its spread, the split of the two sides
    value[kink] = np.where(finite[kink], smooth_value[kink], 0.0)
    error[kink] = np.where(finite[kink], np.abs(fwd1 - bwd1)[kink], 0.0)
    cost = np.full(m, len(OFFSETS), np.int64)
    return Estimate(value, error, kink, methods, len(OFFSETS) * (m + (0 if signed else 1)), cost)


def random_directions(rng: np.random.Generator, k: int, size: int) -> Array:
    """k random unit vectors in R^size (Gaussian, normalized), shape (k, size)."""
    return random_directions_for(rng, [k], [size])[0]


def random_directions_for(rng: np.random.Generator, counts: Sequence[int], sizes: Sequence[int]) -> list[Array]:
    """`random_directions(rng, counts[j], sizes[j])` for every j, from one draw of the stream."""
    lengths = np.repeat(np.asarray(sizes, np.int64), counts)  # one entry per direction
    if lengths.size == 0:
        return [np.zeros((0, n)) for n in sizes]
    v = rng.standard_normal(int(lengths.sum()))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    filled = lengths > 0
    norms = np.ones(lengths.size)
    if filled.any():
        norms[filled] = np.sqrt(np.add.reduceat(v * v, starts[filled]))
    v /= np.repeat(norms, lengths)
    out, at = [], 0
    for k, n in zip(counts, sizes, strict=True):
        out.append(v[at : at + k * n].reshape(k, n))
        at += k * n
    return out


def sample_entries(rng: np.random.Generator, size: int, k: int) -> Array:
    """k distinct flat indices out of `size` (all of them when k >= size), sorted."""
    if k >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=k, replace=False))
