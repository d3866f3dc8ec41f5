"""Per-parameter comparison: metrics, the tolerance model, verdicts, arbitration, root cause.

Tolerance model. Entry i of a gradient g (dtype d) is held against an oracle value o_i whose own
absolute error bar is e_i (zero for JAX, the finite-difference error estimate otherwise):

    tol_i = fd_safety * e_i + rtol_d * (|o_i| + s) + 64 eps(d) * t_i + 1024 tiny(d)

where rtol_d = 10^4 * eps(d) is the round-off a backprop in dtype d can honestly accumulate, and
s is the magnitude the entry is computed from (for an entry: the largest |o| of its parameter,
since an entry can be a difference of terms that large; for a directional derivative <g, v>:
sum_j |o_j v_j|). t_i, when the caller knows it, is the sum of the absolute values of the terms
entry i adds up (`term_magnitudes` computes it for a network): where those terms cancel, say a
bias gradient that sums to exactly 0 over the batch, round-off in dtype d is a few eps(d) * t_i
however small the sum, and s alone would call a correct float32 gradient wrong. tiny(d) is the
smallest normal number of dtype d: below it numbers are subnormal, with fewer significant bits,
and XLA on CPU flushes them to zero, so JAX says 0 where numpy computes 1e-321, or 0 for a sum
of subnormal terms that numpy adds up to 2.3e-308; 1024 of them bounds what a sum can lose. A user-given
rtol/atol replaces the model: tol_i = atol + rtol * |o_i| + fd_safety * e_i.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

import reference
from reference import Network
from reference.backprop import layer_input

Array = np.ndarray
RTOL_EPS_MULTIPLE = 1e4
TERMS_EPS_MULTIPLE = 64.0
FLUSH = 1024.0  # x tiny(d): what flushing subnormal intermediates to zero can lose, summed over the terms
SLOPE_ROUNDOFF = 1.0 / 16  # x slope_scale(a): an activation derivative's absolute round-off, in units of 64 eps
FD_SAFETY = 10.0
GELU_TANH_C = math.sqrt(2.0 / math.pi)
GELU_TANH_SATURATED = 22.0  # |u| beyond which tanh(u) rounds to +-1 and both derivative terms are exact


def slope_scale(activation: str, a: Array) -> Array:
    """What the absolute round-off of alpha'(a), computed the usual way (by autodiff, as jax.nn
    does), scales with: 1 + |a| for every activation, plus |a u'(a)| for gelu_tanh where its
    inner u(a) = c (a + 0.044715 a^3) has |u| < 22: its derivative 0.5 (1 + tanh u) +
    0.5 a sech^2(u) u'(a) carries a few eps of |a u'(a)| where tanh(u) is near, but not yet, +-1
    (seen: jax.jit of jax.grad of jax.nn.gelu(approximate=True) off by 165 eps at a = +-7.34, where
    |u| = 20; by 0 beyond |a| = 7.6, where tanh(u) is exactly +-1)."""
    absa = np.abs(a)
    scale = 1.0 + absa
    if activation == "gelu_tanh":
        with np.errstate(over="ignore", invalid="ignore"):
            u = GELU_TANH_C * absa * (1.0 + 0.044715 * absa * absa)
            inner = np.where(u < GELU_TANH_SATURATED, absa * GELU_TANH_C * (1.0 + 3 * 0.044715 * absa * absa), 0.0)
        scale = scale + inner
    return scale


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

    def bounds(
        self, oracle: Array, error: Array, floor: Array | float, dtype: np.dtype, terms: Array | float = 0.0
    ) -> Array:
        """The per-entry tolerance for a gradient of `dtype` against `oracle` +- `error`; `floor`
        is s and `terms` is t of the module's formula (per item, or one number)."""
        info = np.finfo(dtype)
        return self.bounds_for(oracle, error, floor, float(info.eps), float(info.tiny), terms)

    def bounds_for(
        self,
        oracle: Array,
        error: Array,
        floor: Array | float,
        eps: Array | float,
        tiny: Array | float,
        terms: Array | float = 0.0,
    ) -> Array:
        """`bounds` with the gradient's dtype given by its eps and tiny (numbers, or one per item
        when items of several dtypes are judged together)."""
        if self.source == "user":
            rtol = self.rtol if self.rtol is not None else 0.0
            atol = self.atol if self.atol is not None else 0.0
            return atol + rtol * np.abs(oracle) + self.fd_safety * error
        cancellation = TERMS_EPS_MULTIPLE * eps * terms
        return self.fd_safety * error + RTOL_EPS_MULTIPLE * eps * (np.abs(oracle) + floor) + cancellation + FLUSH * tiny

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
    """Compare item by item. `inconclusive` items (a kink in the stencil), and items where the
    oracle `b` is not finite, count neither way; a non-finite `a` is a disagreement.
    `shape` maps a flat worst index back to a multi-index (entrywise comparisons)."""
    a = np.asarray(a, np.float64).ravel()
    tol = np.asarray(tol, np.float64).ravel()
    if tol.size != a.size:
        tol = np.broadcast_to(tol, a.shape)
    return compare_segments([Pair(a_name, b_name, kind, shape)], [a.size], a, b, tol, error_bar, inconclusive)[0]


@dataclass(frozen=True)
class Pair:
    """Who is compared with whom in one segment of a batched comparison."""

    a: str
    b: str
    kind: str
    shape: tuple[int, ...] | None = None


def compare_segments(
    pairs: Sequence[Pair],
    lengths: Sequence[int],
    a: Array,
    b: Array,
    tol: Array,
    error_bar: Array | None = None,
    inconclusive: Array | None = None,
) -> list[Comparison]:
    """`compare` for many comparisons at once: the flat arrays hold the items of every pair in
    turn, `lengths[k]` of them for pairs[k]. One vectorized pass, whatever the number of pairs."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    tol = np.asarray(tol, np.float64).ravel()
    counts = np.asarray(lengths, np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    finite_b = np.isfinite(b)
    skip = ~finite_b if inconclusive is None else (np.asarray(inconclusive, bool).ravel() | ~finite_b)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.abs(np.where(skip, 0.0, a - b))
        err[np.isnan(err)] = np.inf  # a NaN in the checked side is as wrong as it gets
        bad = (err > tol) | (np.isnan(tol) & ~skip)  # a tolerance that cannot be computed never agrees
        ratio = np.where(err > 0, err / tol, 0.0)  # err > 0 with tol 0: inf
        ratio[skip] = -1.0
        ratio[np.isnan(ratio)] = np.inf
        absb = np.where(skip, 0.0, np.abs(b))
        rel = err / np.maximum(absb, np.finfo(np.float64).tiny)
        filled = counts > 0
        at = starts[filled]
        per: dict[str, list[float]] = {}
        if at.size:
            segment = np.repeat(np.arange(at.size), counts[filled])
            top = np.maximum.reduceat(ratio, at)
            position = np.where(ratio == top[segment], np.arange(a.size), a.size)
            per = {
                "bad": np.add.reduceat(bad, at).tolist(),
                "skip": np.add.reduceat(skip, at).tolist(),
                "max_abs": np.maximum.reduceat(err, at).tolist(),
                "max_rel": np.maximum.reduceat(rel, at).tolist(),
                "norm_b": np.sqrt(np.add.reduceat(absb * absb, at)).tolist(),
                "norm_d": np.sqrt(np.add.reduceat(err * err, at)).tolist(),
                "worst": np.minimum.reduceat(position, at).tolist(),
            }
            picked = np.asarray(per["worst"], np.int64)  # every segment's worst item, gathered at once
            per["a"], per["b"], per["tol"] = a[picked].tolist(), b[picked].tolist(), tol[picked].tolist()
            if error_bar is not None:
                per["bar"] = np.asarray(error_bar, np.float64).ravel()[picked].tolist()
    out: list[Comparison] = []
    k = 0
    for pair, n, start in zip(pairs, counts.tolist(), starts.tolist(), strict=True):
        if n == 0:
            out.append(Comparison(pair.a, pair.b, pair.kind, Status.INCONCLUSIVE, note="nothing to compare"))
            continue
        n_bad, n_incon, i = int(per["bad"][k]), int(per["skip"][k]), int(per["worst"][k])
        norm_b, norm_d = per["norm_b"][k], per["norm_d"][k]
        status = Status.DISAGREE if n_bad else Status.INCONCLUSIVE if n_incon == n else Status.AGREE
        local = i - start
        index = _unravel(local, pair.shape) if pair.shape is not None and pair.kind == "entrywise" else [local]
        out.append(
            Comparison(
                pair.a,
                pair.b,
                pair.kind,
                status,
                n=n,
                n_disagree=n_bad,
                n_inconclusive=n_incon,
                max_abs_err=per["max_abs"][k],
                max_rel_err=per["max_rel"][k],
                rel_norm_err=norm_d / norm_b if norm_b > 0 else (0.0 if norm_d == 0 else math.inf),
                worst_index=index,
                worst_a=per["a"][k],
                worst_b=per["b"][k],
                worst_tol=per["tol"][k],
                worst_error_bar=per["bar"][k] if error_bar is not None else None,
            )
        )
        k += 1
    return out


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    """np.unravel_index for one index, in plain ints (C order)."""
    out = []
    for extent in reversed(shape):
        flat, rest = divmod(flat, extent) if extent else (flat, 0)
        out.append(rest)
    return out[::-1]


def unit_magnitudes(trace: reference.Trace) -> list[Array]:
    """Per unit, the magnitude its value carries into round-off: |x| for the input, |h| + |a| for
    a layer's output (see term_magnitudes)."""
    return [np.abs(trace.h[0])] + [np.abs(h) + np.abs(a) for h, a in zip(trace.h[1:], trace.a[1:], strict=True)]  # type: ignore[arg-type]


def preactivation_terms(net: Network, p64: Mapping[str, Mapping[str, Array]], units: list[Array], r: int) -> Array:
    """The sum of the absolute values of the terms layer r's pre-activation a^r adds up:
    |layer input| @ |W|^T + |b|, from `unit_magnitudes`."""
    name = reference.layer_name(r)
    return layer_input(net, units, r) @ np.abs(p64[name]["W"]).T + np.abs(p64[name]["b"])


def term_magnitudes(
    net: Network,
    params: Mapping[str, Mapping[str, Array]],
    x: Array,
    y: Array,
    *,
    trace: reference.Trace | None = None,
) -> dict[str, Array]:
    """For every checked array of a network (`layer2.W`, `layer2.b`, `layer2.Delta`), shaped like
    it: the sum of the absolute values of the terms each entry adds up, in float64.

    It is the Delta recursion run on absolute values, |Delta(h^r)| -> |Delta * alpha'(a)| @ |W|,
    started from the terms of dL/do: |dL/do| + (|y| + |alpha'(a^k)| (|W^k| @ |input| + |b^k|)) / batch,
    the last part for the forward pass's own cancellations in o. Round-off in any dtype is a
    few eps times these, entry by entry, whatever the sum comes to. A slope counts as
    |alpha'(a)| + slope_scale(a) / 16: an activation's derivative computed the usual way
    (1 - tanh(a)^2, s (1 - s), or gelu's Phi(a) + a phi(a) by autodiff, as jax.nn does) carries an
    absolute round-off of a few eps (1 + |a|) however small it is (gelu_tanh's more: see
    slope_scale), and 64 eps / 16 = 4 eps. A unit's output h = alpha(a) counts as |h| + |a|: an
    activation evaluated the usual way can lose digits to cancellation inside it (gelu_tanh(a) =
    a (1 + tanh(.)) / 2 for a << 0 is a tiny difference of terms of size |a|), so two correct
    implementations may differ by eps * |a| there, not eps * |h|. `trace`, if given, is the
    float64 forward trace at params and x."""
    p64 = {n: {k: np.asarray(v, np.float64) for k, v in layer.items()} for n, layer in params.items()}
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if trace is None:  # else: the float64 forward trace at params and x, already computed
        trace = reference.forward(net, p64, x64)
    k, batch = net.depth, x64.shape[0]
    slope = [np.zeros_like(h) for h in trace.h]
    for r in range(1, k + 1):
        a_r = trace.a[r]
        assert a_r is not None
        df = reference.get_activation(net.layers[r - 1].activation).df(a_r)
        slope[r] = np.abs(df) + slope_scale(net.layers[r - 1].activation, a_r) * SLOPE_ROUNDOFF
    units = unit_magnitudes(trace)
    forward_terms = preactivation_terms(net, p64, units, k)
    mag = [np.zeros_like(h) for h in trace.h]
    grad_o = reference.get_loss(net.loss).grad(trace.output, y64)
    mag[k] = np.abs(grad_o) + (np.abs(y64) + slope[k] * forward_terms) / batch
    out: dict[str, Array] = {}
    for r in range(k, 0, -1):
        name = reference.layer_name(r)
        d = mag[r] * slope[r]
        out[f"{name}.W"] = d.T @ layer_input(net, units, r)
        out[f"{name}.b"] = d.sum(axis=0)
        out[f"{name}.Delta"] = mag[r]
        back = d @ np.abs(p64[name]["W"])
        col = 0
        for i in net.inputs_of(r):
            w = net.width_of(i)
            mag[i] = mag[i] + back[:, col : col + w]
            col += w
    return out


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
        if rf is A and jf is A:
            # JAX matches finite differences at float64 precision, the hand-written gradient only
            # at its own dtype's (or along random directions, which dilute one wrong entry)
            return (
                Verdict.FAIL,
                Blame.HAND_WRITTEN,
                "the hand-written gradient disagrees with JAX; finite differences agree with both "
                "only within their coarser resolution",
            )
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
