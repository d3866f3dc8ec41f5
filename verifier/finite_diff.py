"""The numerical oracle: derivatives of a scalar function along directions, each with an error bar.

The function is seen as f(theta) with theta a flat float64 vector of n entries. It is called on
a stack of points, `objective(points (m, n)) -> Evaluation`, so that many perturbed copies are
evaluated in one vectorized call. An item is one derivative to estimate: along a basis vector
(an entry of theta) or along a dense unit direction restricted to a slice of theta.

Methods (each estimate carries `error`, an absolute error bar):

- central: D(h) = (f(+h) - f(-h)) / 2h at h = eps^(1/3) * scale. Truncation is estimated from
  D(2h): |D(h) - D(2h)| / 3; round-off as c * eps * max|f| / h.
- richardson: one extrapolation step of the central table at h = eps^(1/5) * scale,
  R(h) = (4 D(h) - D(2h)) / 3, with truncation |R(h) - R(2h)| / 15.
- complex-step: Im f(theta + i h v) / h with h = 1e-20 * scale. No subtraction, so no
  round-off blow-up; needs a function analytic in theta (the reference is).

Kinks. When the objective reports a sign signature (the signs of the pre-activations of kinked
units), a stencil point whose signature differs from the centre's crossed a kink. The side of
the stencil that stays on one smooth piece then gives a one-sided second-order difference; if
both sides are clean and disagree, or neither is clean, the item is marked `kink` (the caller
turns that into `inconclusive`). Without a signature, the two one-sided differences are still
compared, and a disagreement beyond their error bars also marks a kink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

Array = np.ndarray
EPS = float(np.finfo(np.float64).eps)
ROUNDOFF_FACTOR = 64.0  # f is a long float64 computation: allow a few dozen ulps of |f|


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
            if self.entries is not None:
                yield sl, Items(entries=self.entries[sl])
            else:
                assert self.directions is not None
                yield sl, Items(start=self.start, directions=self.directions[sl])

    def displace(self, theta: Array, steps: Array) -> Array:
        """Points theta + steps[j] * item_j, shape (m, n); steps may be complex."""
        points = np.repeat(theta[None, :].astype(steps.dtype), len(self), axis=0)
        if self.entries is not None:
            points[np.arange(len(self)), self.entries] += steps
        else:
            assert self.directions is not None
            width = self.directions.shape[1]
            points[:, self.start : self.start + width] += steps[:, None] * self.directions
        return points


@dataclass
class Estimate:
    """Per item: the derivative, its absolute error bar, whether a kink made it unusable, and
    the method that produced it ("complex-step", "central", "one-sided", "richardson")."""

    value: Array
    error: Array
    kink: Array
    method: list[str]
    evaluations: int

    @classmethod
    def empty(cls, m: int) -> Estimate:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m, bool), [""] * m, 0)


def estimate(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    *,
    method: Method,
    supports_complex: bool,
    chunk: int = 512,
) -> Estimate:
    """Derivatives of f along every item, with error bars. `scale` (one per item) sets the step:
    the magnitude of the coordinate being moved, at least 1."""
    m = len(items)
    out = Estimate.empty(m)
    if m == 0:
        return out
    scale = np.maximum(1.0, np.asarray(scale, dtype=np.float64))
    center = objective(theta[None, :])
    out.evaluations += 1
    f0 = float(center.losses[0])
    center_sig = None if center.signature is None else center.signature[0]
    use_complex = method in (Method.COMPLEX_STEP, Method.AUTO) and supports_complex
    if method is Method.COMPLEX_STEP and not supports_complex:
        raise ValueError(
            "method='complex-step': the function does not accept complex input; "
            "use method='richardson' or 'central' (or 'auto', which picks one)"
        )
    for sl, part in items.chunks(chunk):
        if use_complex and (center_sig is None or np.all(center_sig != 0)):
            est = _complex_step(objective, theta, part, scale[sl], f0)
        else:
            richardson = method is Method.RICHARDSON or (method is Method.AUTO and not supports_complex)
            est = _stencil(objective, theta, part, scale[sl], f0, center_sig, richardson)
        out.value[sl], out.error[sl], out.kink[sl] = est.value, est.error, est.kink
        out.method[sl] = est.method
        out.evaluations += est.evaluations
    return out


def _complex_step(objective: Objective, theta: Array, items: Items, scale: Array, f0: float) -> Estimate:
    h = 1e-20 * scale
    ev = objective(items.displace(theta, 1j * h))
    value = np.imag(ev.losses) / h
    # no cancellation: the error is round-off in the derivative itself, and in the loss's terms
    error = ROUNDOFF_FACTOR * EPS * (np.abs(value) + np.abs(f0) / scale)
    return Estimate(value, error, np.zeros(len(items), bool), ["complex-step"] * len(items), len(items))


def _stencil(
    objective: Objective,
    theta: Array,
    items: Items,
    scale: Array,
    f0: float,
    center_sig: Array | None,
    richardson: bool,
) -> Estimate:
    """Central (or Richardson) differences on the stencil 0, +-h, +-2h (+-4h), with one-sided
    fallbacks when the stencil crosses a kink."""
    m = len(items)
    h = (EPS ** (1 / 5) if richardson else EPS ** (1 / 3)) * scale
    multiples = (1, 2, 4) if richardson else (1, 2)
    f: dict[int, Array] = {}
    sig: dict[int, Array | None] = {}
    for k in multiples:
        for sign in (1, -1):
            ev = objective(items.displace(theta, (sign * k) * h))
            f[sign * k] = np.asarray(ev.losses, dtype=np.float64)
            sig[sign * k] = ev.signature
    evaluations = m * 2 * len(multiples)
    fmax = np.max(np.abs(np.stack(list(f.values()))), axis=0)
    roundoff = ROUNDOFF_FACTOR * EPS * np.maximum(fmax, abs(f0)) / h

    d1 = (f[1] - f[-1]) / (2 * h)
    d2 = (f[2] - f[-2]) / (4 * h)
    if richardson:
        d4 = (f[4] - f[-4]) / (8 * h)
        r1, r2 = (4 * d1 - d2) / 3, (4 * d2 - d4) / 3
        value, error, name = r1, np.abs(r1 - r2) / 15 + roundoff, "richardson"
    else:
        value, error, name = d1, np.abs(d1 - d2) / 3 + roundoff, "central"

    # one-sided second-order differences from each side
    fwd = (-3 * f0 + 4 * f[1] - f[2]) / (2 * h)
    bwd = (3 * f0 - 4 * f[-1] + f[-2]) / (2 * h)

    # For smooth f the two one-sided formulas differ by O(h^3); a kink inside the stencil
    # separates them by the jump in slope.
    split = np.abs(fwd - bwd) > 10 * (np.abs(d1 - d2) + 4 * roundoff)
    if center_sig is None:
        clean_fwd = clean_bwd = np.ones(m, bool)
        crossed = split
    else:
        clean_fwd = _clean_side(center_sig, sig[1], sig[2])
        clean_bwd = _clean_side(center_sig, sig[-1], sig[-2])
        assert sig[1] is not None and sig[-1] is not None
        crossed = ~clean_fwd | ~clean_bwd | np.any(sig[1] != sig[-1], axis=1)
    one_sided_err = np.abs(d1 - d2) + 4 * roundoff  # O(h^2) truncation, as for central
    kink = np.zeros(m, bool)
    methods = [name] * m
    for j in np.flatnonzero(crossed):
        if clean_fwd[j] and clean_bwd[j] and not split[j]:
            value[j], error[j] = (fwd[j] + bwd[j]) / 2, one_sided_err[j] + abs(fwd[j] - bwd[j])
        elif clean_fwd[j] and not clean_bwd[j]:
            value[j], error[j] = fwd[j], one_sided_err[j]
        elif clean_bwd[j] and not clean_fwd[j]:
            value[j], error[j] = bwd[j], one_sided_err[j]
        else:
            kink[j] = True
            continue
        methods[j] = "one-sided"
    return Estimate(value, error, kink, methods, evaluations)


def _clean_side(center: Array, near: Array | None, far: Array | None) -> Array:
    """True per point where the half-stencil stays on one smooth piece: the two points share
    a signature, and the centre agrees with it except where the centre sits exactly on a kink."""
    assert near is not None and far is not None
    same = np.all(near == far, axis=1)
    agrees = np.all((center[None, :] == near) | (center[None, :] == 0), axis=1)
    return same & agrees


def random_directions(rng: np.random.Generator, k: int, size: int) -> Array:
    """k random unit vectors in R^size (Gaussian, normalized), shape (k, size)."""
    v = rng.standard_normal((k, size))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample_entries(rng: np.random.Generator, size: int, k: int) -> Array:
    """k distinct flat indices out of `size` (all of them when k >= size), sorted."""
    if k >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=k, replace=False))
