"""A user's loss and hand-written gradient: the three sides, and how user code misbehaves.

- The loss: called once at params to check it returns a scalar, then at the same point in float64
  (inside a scoped `jax.enable_x64`, so that a jax.numpy loss computes in float64 too). A loss that
  rejects float64 parameters, or computes in float32 anyway, is evaluated in the parameters' own
  dtypes with finite-difference steps sized for that precision, and the report says so.
- The hand-written gradient: called twice, each time on a fresh copy of params. The copy is
  compared before and after the call (a gradient that writes to its input is reported), and the
  two answers are compared with each other (nondeterminism is reported with its size).
- The JAX oracle: jax.grad of the loss (or of `jax_loss_fn`) in float64, when JAX can trace it.
  A loss that contains a `jax.custom_vjp` rule is not used: JAX would run the backward under test.
- Finite differences: the engine's objective over the flat float64 theta, one loss call per point.
  A point where the loss raises or is not finite is dropped: the slots it touched are checked
  again with those points marked, so the stencil takes its clean side or the item is inconclusive.

verifier.user_check runs them through the engine and into a report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verifier import engine
from verifier.errors import InvalidArgument
from verifier.finite_diff import EPS, Evaluation, Method
from verifier.pytrees import Tree, path_of

Array = np.ndarray
F64 = np.dtype(np.float64)
COMPLEX_PROBE_STEP = 1e-20
STAGING_CACHES = ("trace_to_jaxpr", "_infer_params_cached")  # JAX-internal names, see forget_staged_constants


@dataclass(frozen=True)
class Names:
    """How messages name the user's functions and their argument (check_grads or check_vjp)."""

    loss: str = "loss_fn(params)"
    grad: str = "grad_fn(params)"
    where: str = "params"
    kind: str = "parameter"


@contextlib.contextmanager
def float64_jax() -> Iterator[None]:
    """Scoped float64 for jax.numpy code; the caller's global JAX setting is left alone.

    Without staging (jit disabled; no make_jaxpr or vjp of user code here): a numpy array that
    a user's function closes over, staged into a jaxpr under enable_x64, stays cached as a
    float64 constant, and the caller's next float32 call on it fails with
    RuntimeProgramInputMismatch, even after jax.clear_caches() (seen with jax 0.10). Eager
    evaluation and jax.value_and_grad / jax.jvp leave no such trace."""
    import jax

    with jax.enable_x64(True), jax.disable_jit():
        yield


def forget_staged_constants() -> None:
    """Before evaluating user code under float64: drop the traces that JAX cached for the
    caller's own jitted code, run in float32 just before. They are keyed without the x64 setting
    and hold its closed-over numpy arrays as float32 constants, which a float64 evaluation would
    silently reuse (seen with jax 0.10). Only the tracing caches are dropped (compiled code is
    kept); if JAX's internals no longer have them, every cache is cleared."""
    import jax

    try:
        from jax._src import util

        stale = [c for c, name in list(util._caches.items()) if any(k in name for k in STAGING_CACHES)]
    except (ImportError, AttributeError):
        stale = []
    if len(stale) < len(STAGING_CACHES):
        jax.clear_caches()
    for cache in stale:
        cache.cache_clear()


def scalar_loss(value: Any, who: str) -> Array:
    """`value` as a 0-d array; InvalidArgument unless it is one real or complex number."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiuc":
        raise InvalidArgument(f"{who} returned {type(value).__name__} {value!r:.80}; expected a scalar loss (a float)")
    if arr.size != 1:
        raise InvalidArgument(
            f"{who} returned an array of shape {arr.shape}; expected a scalar loss: reduce it inside the "
            "function (e.g. .sum() or .mean() over the batch)"
        )
    return arr.reshape(())


def _short(exc: BaseException) -> str:
    """The first line of `Type: message`: JAX's tracing errors run to paragraphs."""
    lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return lines[0][:300]


# --- the loss ------------------------------------------------------------------------------


@dataclass
class LossProbe:
    """The loss at params, as finite differences evaluate it: `dtypes` per leaf, the dtype it
    computes in (`precision`), or `error` when it cannot be evaluated there."""

    value: float = float("nan")
    error: str | None = None
    dtypes: list[np.dtype] = field(default_factory=list)
    precision: np.dtype = F64
    notes: list[str] = field(default_factory=list)
    nonfinite_points: int = 0

    def step_factor(self, method: Method) -> float:
        """Finite-difference steps are sized for float64 round-off; a loss computed in lower
        precision needs steps larger by (eps_d / eps_64)^(1/5) (Richardson) or ^(1/3) (central)."""
        ratio = float(np.finfo(self.precision).eps) / EPS
        if method is Method.COMPLEX_STEP or ratio <= 1:
            return 1.0
        return ratio ** (1 / 3) if method is Method.CENTRAL else ratio ** (1 / 5)


def _evaluate(loss_fn: Callable[[Any], Any], tree: Tree, dtypes: list[np.dtype], who: str) -> Array:
    with float64_jax():
        arrays = tree.split(tree.theta, dtypes)
        return scalar_loss(loss_fn(tree.rebuild(arrays)), who)


def loss_at_params(loss_fn: Callable[[Any], Any], tree: Tree, names: Names) -> str | None:
    """Call the loss on (a copy of) params as the caller would: InvalidArgument unless it returns
    a scalar; the error text when it raises (an error verdict, never a crash)."""
    try:
        scalar_loss(loss_fn(tree.copy()), names.loss)
    except InvalidArgument:
        raise
    except Exception as exc:
        return f"{names.loss} raised: {engine.describe_exception(exc)}"
    return None


def probe_loss(loss_fn: Callable[[Any], Any], tree: Tree, method: Method, names: Names) -> LossProbe:
    """The loss at params in float64 where it accepts float64 (else in the params' own dtypes),
    and the precision it computes in; InvalidArgument for a complex step it cannot take."""
    native = [leaf.dtype for leaf in tree.leaves]
    probe = LossProbe(dtypes=[F64] * len(native))
    try:
        value = _evaluate(loss_fn, tree, probe.dtypes, names.loss)
    except InvalidArgument:
        raise
    except Exception as exc:
        if native == probe.dtypes:
            return LossProbe(error=f"{names.loss} raised in float64: {engine.describe_exception(exc)}")
        try:
            value = _evaluate(loss_fn, tree, native, names.loss)
        except Exception as again:
            return LossProbe(error=f"{names.loss} raised: {engine.describe_exception(again)}")
        probe.dtypes = native
        probe.notes.append(
            f"{names.loss} rejected float64 {names.where} ({_short(exc)}): finite differences evaluate it in the "
            f"{names.where}' own dtypes, with steps sized for their round-off"
        )
    if not np.isfinite(value):
        return LossProbe(error=f"{names.loss} is {value} at {names.where}: the gradient is undefined there")
    probe.value = float(np.real(value))
    probe.precision = _precision(value.dtype, probe.dtypes)
    if probe.precision != F64 and all(d == F64 for d in probe.dtypes):
        probe.notes.append(
            f"{names.loss} computes in {probe.precision} even with float64 {names.where}: finite-difference steps "
            f"are sized for {probe.precision} round-off"
        )
    if method is Method.COMPLEX_STEP:
        _probe_complex(loss_fn, tree, names)
    return probe


def _precision(value_dtype: np.dtype, dtypes: list[np.dtype]) -> np.dtype:
    candidates = [d for d in [value_dtype, *dtypes] if d.kind == "f"]
    return max(candidates, key=lambda d: float(np.finfo(d).eps), default=F64)


def _probe_complex(loss_fn: Callable[[Any], Any], tree: Tree, names: Names) -> None:
    """InvalidArgument unless the loss carries a complex perturbation through to its value."""
    point = tree.theta + 1j * COMPLEX_PROBE_STEP
    try:
        with float64_jax():
            value = np.asarray(loss_fn(tree.rebuild(tree.split(point))))
    except Exception as exc:
        raise InvalidArgument(
            f"method='complex-step': {names.loss} rejected complex {names.where} ({_short(exc)}); "
            "use method='richardson', 'central' or 'auto'"
        ) from None
    if not np.iscomplexobj(value):
        raise InvalidArgument(
            f"method='complex-step': {names.loss} returned a real {value.dtype} value for complex {names.where}: it "
            "drops the imaginary part (np.asarray(..., float), float(), .real); use method='richardson' or 'auto'"
        )


class UserObjective:
    """The loss as the engine's f(theta): one call per point (user code cannot be assumed to
    vectorize). A point where the loss raises counts as NaN. Every non-finite point is recorded:
    the leaves it moved, and, for a point that moves one coordinate of theta (an entry's
    stencil, not a direction or a mix of entries), that coordinate.

    With `avoid` (coordinates of theta), every point that moves one of them gets the centre's
    value and the sign signature -1 (other points +1): the stencil then sees both of its sides
    cross a kink, and those items come out inconclusive instead of compared."""

    def __init__(self, loss_fn: Callable[[Any], Any], tree: Tree, probe: LossProbe, avoid: set[int] | None = None):
        self.loss_fn, self.tree, self.probe = loss_fn, tree, probe
        self.theta = tree.theta
        self.avoid = None if avoid is None else np.array(sorted(avoid), dtype=np.int64)
        self.bad_coords: set[int] = set()
        self.bad_moved: set[int] = set()
        self.bad_points = 0

    def __call__(self, points: Array) -> Evaluation:
        losses = np.empty(points.shape[0], dtype=points.dtype)
        with float64_jax(), np.errstate(all="ignore"):  # a NaN is handled here, not warned about
            for j, point in enumerate(points):
                losses[j] = self._loss_at(point)
        finite = np.isfinite(losses)
        moved = points != self.theta
        for row in np.flatnonzero(~finite):
            coords = np.flatnonzero(moved[row])
            self.bad_points += 1
            self.bad_moved.update(int(i) for i in coords)
            if len(coords) == 1:
                self.bad_coords.add(int(coords[0]))
        if self.avoid is None:
            return Evaluation(losses)
        near_bad = ~finite | moved[:, self.avoid].any(axis=1)
        signature = np.where(near_bad, -1, 1).astype(np.int8)[:, None]
        return Evaluation(np.where(near_bad, self.probe.value, losses), signature)

    def bad_leaves(self) -> set[str]:
        starts = np.array([leaf.start for leaf in self.tree.leaves])
        hit = np.searchsorted(starts, sorted(self.bad_moved), side="right") - 1
        return {self.tree.leaves[int(i)].path for i in hit}

    def _loss_at(self, point: Array) -> complex:
        dtypes = self.probe.dtypes
        if np.iscomplexobj(point):
            dtypes = [np.result_type(d, np.complex64) for d in dtypes]
        try:
            value = np.asarray(self.loss_fn(self.tree.rebuild(self.tree.split(point, dtypes))))
            return complex(value.reshape(())) if np.iscomplexobj(point) else float(np.real(value.reshape(())))
        except Exception:  # a point outside the loss's domain: dropped, like a NaN
            return np.nan


# --- the hand-written gradient ---------------------------------------------------------------


@dataclass
class HandSide:
    """grad_fn's answers by path: the first call (checked), the second (repeat check), and the
    leaves it changed in its input (path -> (before, after), flat; NaN where a leaf vanished)."""

    grads: dict[str, Array] = field(default_factory=dict)
    error: str | None = None
    repeat: dict[str, Array] = field(default_factory=dict)
    repeat_error: str | None = None
    mutated: dict[str, tuple[Array, Array]] = field(default_factory=dict)


def hand_gradients(grad_fn: Callable[[Any], Any], tree: Tree, names: Names) -> HandSide:
    side = HandSide()
    given = tree.copy()
    try:
        first = grad_fn(given)
    except InvalidArgument:
        raise
    except Exception as exc:  # user code: an error verdict, never a crash
        side.error = f"{names.grad} raised: {engine.describe_exception(exc)}"
        return side
    side.grads = tree.by_path(first, names.grad)
    side.mutated = _mutations(tree, given)
    try:
        side.repeat = tree.by_path(grad_fn(tree.copy()), names.grad)
    except Exception as exc:
        side.repeat_error = f"the second call of {names.grad} raised: {_short(exc)}"
    return side


def _mutations(tree: Tree, after: Any) -> dict[str, tuple[Array, Array]]:
    """Leaves of the copy handed to grad_fn that differ from the original after the call."""
    from jax import tree_util

    now = {path_of(p): v for p, v in tree_util.tree_flatten_with_path(after)[0]}
    out = {}
    for leaf, before in zip(tree.leaves, tree.values, strict=True):
        try:
            value = np.asarray(now[leaf.path], np.float64).reshape(before.shape)
        except (KeyError, ValueError, TypeError):
            value = np.full(before.shape, np.nan)
        if not np.array_equal(value, before.astype(np.float64), equal_nan=True):
            out[leaf.path] = (before.astype(np.float64).ravel(), value.ravel())
    return out


# --- the JAX oracle -------------------------------------------------------------------------


@dataclass
class JaxSide:
    grads: dict[str, Array] | None
    reason: str
    value: float | None = None


def jax_side(
    loss_fn: Callable[[Any], Any], jax_loss_fn: Callable[[Any], Any] | None, tree: Tree, names: Names
) -> JaxSide:
    """jax.grad of the loss in float64, or why there is none."""
    import jax
    import jax.numpy as jnp

    fn, source = (loss_fn, names.loss) if jax_loss_fn is None else (jax_loss_fn, "jax_loss_fn")

    def scalar(p: Any) -> Any:
        return jnp.reshape(fn(p), ())

    with float64_jax():
        params = tree.rebuild([jnp.asarray(v, jnp.float64) for v in tree.split(tree.theta)])
        try:
            value, grads = jax.value_and_grad(scalar)(params)
        except Exception as exc:
            return JaxSide(None, f"{source} cannot be traced by JAX ({_short(exc)}): finite differences alone")
        rule = custom_vjp_rule(scalar, params)
    if rule and jax_loss_fn is None:
        hint = " (pass jax_loss_fn= to use another JAX model)" if names.kind == "parameter" else ""
        return JaxSide(
            None,
            f"{names.loss} contains a jax.custom_vjp rule: JAX's gradient would run the backward under test, so it "
            f"is no independent oracle{hint}",
        )
    by_path = {path_of(p): np.asarray(g, np.float64) for p, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    reason = f"jax.grad of {source} in float64" + (" (it contains a jax.custom_vjp rule)" if rule else "")
    return JaxSide(by_path, reason, float(value))


def custom_vjp_rule(fn: Callable[[Any], Any], params: Any) -> bool:
    """Whether `fn` runs a user-defined backward under jax.grad. JAX refuses forward-mode
    differentiation through a custom_vjp, which tells without staging `fn`."""
    import jax

    try:
        jax.jvp(fn, (params,), (jax.tree_util.tree_map(jax.numpy.zeros_like, params),))
    except Exception as exc:
        return "custom_vjp" in str(exc)
    return False
